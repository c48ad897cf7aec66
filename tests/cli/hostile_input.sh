#!/usr/bin/env bash
# hostile_input.sh TOLK — careless and hostile input that needs no model
# (issue 12, defects 2, 5 and 7):
#   2. endless non-regular input is refused quickly in bounded memory:
#      `tolk mel /dev/zero`, random bytes on a pipe, a valid WAV stream that
#      never ends (TOLK_AUDIO_PIPE_MAX_MB), `tolk bench /dev/zero`;
#   5. truncated audio decodes what is there with a warning naming the file,
#      what the header promised and what decoded (WAV claiming 4 GB, a cut
#      WAV, and MP3 / Ogg Vorbis / Opus cut at 50 % when ffmpeg is at hand);
#      complete files give no warning;
#   7. messages: `--model /dev/null`, a manifest with a UTF-8 BOM, `tolk mel
#      -` naming <stdin> once, `tolk mel` accepting `--`, one sample giving an
#      empty [80, 0] spectrogram, and --clip_timestamps / --suppress_tokens
#      checked as usage errors (exit 2) before any model is looked for.
# Every run is bounded by `timeout` and `ulimit -v`, so the old behaviour
# (reading /dev/zero into memory) fails instead of eating the machine.
set -u
TOLK=${1:?usage: hostile_input.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
DATA=${TOLK_DATA:-$(dirname "$0")/../../data}
DATA=$(cd "$DATA" 2>/dev/null && pwd) || { echo "FAIL: no data/ folder (TOLK_DATA)"; exit 1; }
JFK=$DATA/speech/jfk.flac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# bounded CMD...: at most 60 s and 3 GiB of memory: address space, or under
# AddressSanitizer (whose shadow needs terabytes of address space) resident size
if ldd "$TOLK" 2>/dev/null | grep -q 'libasan'; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=3072"
    bounded() { timeout 60 "$@"; }
else
    bounded() { (ulimit -v 3145728 && timeout 60 "$@"); }
fi

# wav RATE DATA_BYTES_DECLARED DATA_BYTES_PRESENT > file: a 16-bit mono PCM WAV
wav() {
    local rate=$1 declared=$2 present=$3
    le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
    le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"; }
    printf 'RIFF'; le32 $(((36 + declared) & 0xFFFFFFFF)); printf 'WAVEfmt '; le32 16; le16 1; le16 1
    le32 "$rate"; le32 $((rate * 2)); le16 2; le16 16; printf 'data'; le32 "$declared"
    head -c "$present" /dev/urandom
}

# ---- 2. endless input --------------------------------------------------------
bounded "$TOLK" mel /dev/zero -o z.npy >/dev/null 2>z.err
rc=$?
[ "$rc" = 1 ] && grep -q "/dev/zero: not a recognised audio format" z.err && [ ! -e z.npy ] &&
    ok "tolk mel /dev/zero: refused at once" || { fail "tolk mel /dev/zero (rc $rc)"; cat z.err; }

head -c 4000000 /dev/urandom | bounded "$TOLK" mel - -o r.npy >/dev/null 2>r.err
rc=$?
[ "$rc" = 1 ] && grep -q "<stdin>: not a recognised audio format" r.err ||
    { fail "random bytes on stdin (rc $rc)"; cat r.err; }

# a WAV stream whose header says "length unknown", then zeros for ever
(wav 16000 4294967295 0; cat /dev/zero) |
    TOLK_AUDIO_PIPE_MAX_MB=8 bounded "$TOLK" mel - -o s.npy >/dev/null 2>s.err
rc=$?
[ "$rc" = 1 ] && grep -q "more than 8 MiB from a pipe" s.err && [ ! -e s.npy ] &&
    ok "an endless WAV stream stops at the pipe limit" || { fail "endless stream (rc $rc)"; cat s.err; }

# the same header with a short body: a streamed WAV, decoded, no truncation warning
(wav 16000 4294967295 32000) | bounded "$TOLK" mel - -o s2.npy >/dev/null 2>s2.err
rc=$?
[ "$rc" = 0 ] && [ ! -s s2.err ] || { fail "short streamed WAV (rc $rc)"; cat s2.err; }

bounded "$TOLK" bench /dev/zero --model tiny.en --check >/dev/null 2>b.err
rc=$?
[ "$rc" = 1 ] && grep -q "line longer than" b.err &&
    ok "tolk bench /dev/zero: refused at once" || { fail "tolk bench /dev/zero (rc $rc)"; cat b.err; }

# ---- 5. truncated audio ------------------------------------------------------
# expect_truncated NAME FILE PROMISE: exit 0, a .npy, and one warning that
# names the file, "truncated" and PROMISE (text of the expected length)
expect_truncated() {
    local name=$1 file=$2 promise=$3
    rm -f t.npy
    bounded "$TOLK" mel "$file" -o t.npy >/dev/null 2>t.err
    local rc=$?
    if [ "$rc" = 0 ] && [ -s t.npy ] && grep -q "warning: $file: truncated" t.err &&
        grep -q -- "$promise" t.err; then
        ok "$name: $(grep truncated t.err)"
    else
        fail "$name (rc $rc)"
        cat t.err
    fi
}
expect_complete() {
    local name=$1 file=$2
    bounded "$TOLK" mel "$file" -o c.npy >/dev/null 2>c.err
    local rc=$?
    [ "$rc" = 0 ] && ! grep -q truncated c.err || { fail "$name: complete file (rc $rc)"; cat c.err; }
}
wav 16000 4294967040 1600 >claim4g.wav # the header claims 4 GB, the file holds 1,600 bytes
expect_truncated "WAV claiming 4 GB" claim4g.wav "promises 134217.72 s"
wav 16000 320000 160000 >cut.wav # 10 s declared, 5 s present
expect_truncated "WAV cut at 50 %" cut.wav "promises 10.00 s of audio, only 5.00 s"
wav 16000 160000 160000 >whole.wav
expect_complete "WAV" whole.wav
if command -v ffmpeg >/dev/null 2>&1; then
    for ext in mp3 ogg opus; do
        ffmpeg -nostdin -loglevel error -y -i "$JFK" "jfk.$ext" || { fail "ffmpeg $ext"; continue; }
        size=$(stat -c %s "jfk.$ext")
        head -c $((size / 2)) "jfk.$ext" >"cut.$ext"
        expect_complete "$ext" "jfk.$ext"
        if [ "$ext" = mp3 ]; then
            expect_truncated "MP3 cut at 50 %" cut.mp3 "promises 11.00 s"
        else
            expect_truncated "$ext cut at 50 %" "cut.$ext" "without its final page"
        fi
    done
    head -c $(($(stat -c %s jfk.mp3) * 9 / 10)) jfk.mp3 >cut90.mp3
    expect_truncated "MP3 cut at 90 %" cut90.mp3 "promises 11.00 s"
else
    echo "SKIP: MP3 / Ogg / Opus truncation (no ffmpeg)"
fi
# a cut FLAC stays an error: its frame count is exact
head -c 300000 "$JFK" >cut.flac
bounded "$TOLK" mel cut.flac -o f.npy >/dev/null 2>f.err
[ $? = 1 ] && grep -q "truncated or corrupt" f.err && [ ! -e f.npy ] || { fail "cut FLAC"; cat f.err; }

# ---- 7. messages -----------------------------------------------------------------
bounded "$TOLK" mel - -o e.npy </dev/null >/dev/null 2>e.err
[ "$(cat e.err)" = "tolk mel: <stdin>: empty input (0 bytes)" ] &&
    ok "tolk mel -: <stdin> named once" || { fail "tolk mel - message"; cat e.err; }

# an output that is a FIFO (or a device: /dev/null, /dev/stdout) is written in
# place; a rename over it would replace it with a regular file
mkfifo out.npy
timeout 120 cat out.npy >got.npy &
reader=$!
bounded "$TOLK" mel "$JFK" -o out.npy >/dev/null 2>o.err
rc=$?
wait "$reader"
[ "$rc" = 0 ] && [ -p out.npy ] && head -c 6 got.npy | grep -q NUMPY &&
    ok "an output FIFO stays a FIFO" || { fail "output FIFO (rc $rc)"; cat o.err; }

bounded "$TOLK" mel -o dd.npy -- "$JFK" >/dev/null 2>dd.err && [ -s dd.npy ] &&
    ok "tolk mel accepts --" || { fail "tolk mel --"; cat dd.err; }

wav 16000 2 2 >one.wav # one sample
bounded "$TOLK" mel one.wav -o one.npy >/dev/null 2>one.err
rc=$?
if [ "$rc" = 0 ] && head -c 128 one.npy | grep -q "'shape': (80, 0)"; then
    ok "one sample: an empty [80, 0] spectrogram"
else
    fail "one sample (rc $rc)"; cat one.err
fi

bounded "$TOLK" transcribe --model /dev/null "$JFK" >/dev/null 2>m.err
rc=$?
[ "$rc" = 1 ] && grep -q "/dev/null: not a model: a character device" m.err &&
    ! grep -q "no such file" m.err || { fail "--model /dev/null (rc $rc)"; cat m.err; }

printf '\xEF\xBB\xBFfile\tlanguage\n%s\ten\n' "$JFK" >bom.tsv
bounded "$TOLK" bench bom.tsv --check >/dev/null 2>bom.err && grep -q "manifest ok" bom.err &&
    ok "a manifest with a UTF-8 BOM" || { fail "BOM manifest"; cat bom.err; }

# usage_error NAME WORD ARGS...: exit 2 naming WORD, before the (missing) model is looked for
usage_error() {
    local name=$1 word=$2
    shift 2
    bounded "$TOLK" transcribe --model /nonexistent/model "$@" "$JFK" >u.out 2>u.err
    local rc=$?
    if [ "$rc" = 2 ] && grep -q -- "$word" u.err && ! grep -q nonexistent u.err && [ ! -s u.out ]
    then
        ok "$name: $(head -n 1 u.err)"
    else
        fail "$name (rc $rc)"
        cat u.err
    fi
}
usage_error "clip 1e300" "1e300 s is out of range" --clip_timestamps 1e300
usage_error "clip 5,1" "clip 1 ends at 1 s, not after its start at 5 s" --clip_timestamps 5,1
usage_error "clip 0,5,7,6" "clip 2 ends at 6 s" --clip_timestamps 0,5,7,6
usage_error "suppress 999999" "token id 999999 is outside every Whisper vocabulary" \
    --suppress_tokens 999999
usage_error "suppress -5,abc" "token id -5 is outside" --suppress_tokens -5,abc
usage_error "suppress 1,abc" "'abc' is not a token id" --suppress_tokens 1,abc

if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo "hostile_input: all passed"

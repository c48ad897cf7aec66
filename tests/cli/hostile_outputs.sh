#!/usr/bin/env bash
# hostile_outputs.sh TOLK — `tolk transcribe` with a real model (tiny.en or
# base; skipped when none is installed unless TOLK_REQUIRE_MODELS=1) on
# careless input (issue 12, defects 3, 4, 5 and 7):
#   3. the set of output files is all or nothing: when one format cannot be
#      written (here: the file-size limit stops the json, the last one), the
#      previous run's files stay exactly as they were and no temporary file
#      is left;
#   4. an output name equal to an input (talk.txt that is audio, with -f txt;
#      jfk.json that is audio, with -f all) is refused before anything runs;
#      the input is untouched;
#   5. a truncated input is transcribed with a warning on stderr, and the
#      JSON output carries "input_truncated" (absent for complete input);
#   7. translate with an English-only model warns; --suppress_tokens beyond
#      the model's vocabulary is a usage error (exit 2).
# ctest-labels: models
set -u
TOLK=${1:?usage: hostile_outputs.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
DATA=${TOLK_DATA:-$(dirname "$0")/../../data}
DATA=$(cd "$DATA" 2>/dev/null && pwd) || { echo "FAIL: no data/ folder (TOLK_DATA)"; exit 1; }
JFK=$DATA/speech/jfk.flac
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}
EN=""
for m in tiny.en base; do
    if [ -f "$ROOT/$m/model.bin" ] || [ -f "$ROOT/$m/config.json" ]; then EN=$m; break; fi
done
if [ -z "$EN" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        echo "FAIL: no model in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model tiny.en)"
        exit 1
    fi
    echo "SKIP: no model installed in $ROOT (scripts/get-model tiny.en)"
    exit 0
fi
export TOLK_MODELS=$ROOT
G="--model $EN --beam_size None --verbose False"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# ---- 3. all or nothing ---------------------------------------------------------
# a 17 s clip: its json (written last) is over 1 KiB, the other four are not
CLIP=$DATA/speech/en/librispeech/test-clean_1221-135766-0001.flac
B=test-clean_1221-135766-0001
"$TOLK" transcribe $G -f all -o out "$CLIP" 2>/dev/null
json_size=$(stat -c %s "out/$B.json" 2>/dev/null || echo 0)
small=1
for ext in txt vtt srt tsv; do [ "$(stat -c %s "out/$B.$ext" 2>/dev/null || echo 9999)" -lt 1024 ] || small=0; done
if [ "$json_size" -gt 1100 ] && [ "$small" = 1 ]; then
    for ext in txt vtt srt tsv json; do echo "OLD $ext" >"out/$B.$ext"; done
    # a 1 KiB file-size limit (as a full disk): the json cannot be written
    (trap '' XFSZ && ulimit -f 1 && "$TOLK" transcribe $G -f all -o out "$CLIP") >/dev/null 2>w.err
    rc=$?
    same=1
    for ext in txt vtt srt tsv json; do
        [ "$(cat "out/$B.$ext" 2>/dev/null)" = "OLD $ext" ] || same=0
    done
    if [ "$rc" = 1 ] && [ "$same" = 1 ] && [ "$(ls out | wc -l)" = 5 ] && grep -q "$B.json" w.err
    then
        ok "a failed write leaves the previous outputs: $(head -n 1 w.err)"
    else
        fail "all-or-nothing outputs (rc $rc): $(ls out | tr '\n' ' ')"
        cat w.err
    fi
else
    fail "output sizes do not suit the test: json $json_size bytes; $(ls -l out)"
fi

# ---- 4. an output that is an input --------------------------------------------
mkdir dir
cp "$JFK" dir/talk.txt
"$TOLK" transcribe $G -f txt -o dir dir/talk.txt >/dev/null 2>i.err
rc=$?
[ "$rc" = 1 ] && grep -q "would overwrite the input dir/talk.txt" i.err && cmp -s "$JFK" dir/talk.txt &&
    ok "output = input refused: $(head -n 1 i.err)" || { fail "talk.txt (rc $rc)"; cat i.err; }
cp "$JFK" dir/jfk.json
"$TOLK" transcribe $G -f all -o dir dir/jfk.json >/dev/null 2>j.err
rc=$?
[ "$rc" = 1 ] && grep -q "would overwrite the input" j.err && cmp -s "$JFK" dir/jfk.json &&
    [ ! -e dir/jfk.txt ] || { fail "jfk.json with -f all (rc $rc)"; cat j.err; }
# an input that another input's outputs would replace
cp "$JFK" dir/a.flac
cp "$JFK" dir/a.vtt
"$TOLK" transcribe $G -o dir dir/a.flac dir/a.vtt >/dev/null 2>k.err
rc=$?
[ "$rc" = 1 ] && grep -q "dir/a.flac: the output file dir/a.vtt would overwrite the input" k.err &&
    cmp -s "$JFK" dir/a.vtt || { fail "another input's output (rc $rc)"; cat k.err; }

# ---- 5. truncated input: warning and JSON --------------------------------------
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"; }
# jfk as 16-bit PCM WAV whose header declares twice the samples it holds
if command -v sox >/dev/null 2>&1; then
    sox "$JFK" -r 16000 -c 1 -b 16 -t raw pcm.raw
    n=$(stat -c %s pcm.raw)
    {
        printf 'RIFF'; le32 $((36 + 2 * n)); printf 'WAVEfmt '; le32 16; le16 1; le16 1
        le32 16000; le32 32000; le16 2; le16 16; printf 'data'; le32 $((2 * n)); cat pcm.raw
    } >cut.wav
    "$TOLK" transcribe $G -f json -o tr cut.wav >/dev/null 2>t.err
    rc=$?
    if [ "$rc" = 0 ] && grep -q "warning: cut.wav: truncated: the header promises 22.00 s" t.err &&
        grep -q '"input_truncated":{"expected_s":22.000,"decoded_s":11.000}' tr/cut.json; then
        ok "truncated WAV: warned, marked in the JSON"
    else
        fail "truncated WAV (rc $rc)"; cat t.err; tail -c 200 tr/cut.json; echo
    fi
    cat cut.wav | "$TOLK" transcribe $G -f json -o trs - >/dev/null 2>ts.err
    grep -q "warning: <stdin>: truncated" ts.err && grep -q input_truncated trs/stdin.json ||
        { fail "truncated WAV on stdin"; cat ts.err; }
    grep -q input_truncated "out/$B.json" && fail "input_truncated in a complete file's JSON"
else
    echo "SKIP: truncated WAV (no sox)"
fi

# an output that is a FIFO (or a device such as /dev/stdout) is written in
# place, never replaced by a renamed regular file
mkdir fifo
mkfifo fifo/jfk.txt
cat fifo/jfk.txt >fifo-got.txt &
reader=$!
"$TOLK" transcribe $G -f txt -o fifo "$JFK" >/dev/null 2>fi.err
rc=$?
wait "$reader"
[ "$rc" = 0 ] && [ -p fifo/jfk.txt ] && grep -qi "fellow americans" fifo-got.txt &&
    ok "an output FIFO stays a FIFO" || { fail "output FIFO (rc $rc)"; cat fi.err; }

# ---- 7. English-only model: translate warns, token ids beyond its vocabulary --
if [ "$EN" = tiny.en ]; then
    "$TOLK" translate $G "$JFK" >tl.out 2>tl.err
    rc=$?
    [ "$rc" = 0 ] && grep -q "English-only model: it cannot translate" tl.err &&
        grep -qi "fellow americans" tl.out || { fail "translate with tiny.en (rc $rc)"; cat tl.err; }
    "$TOLK" transcribe $G --suppress_tokens 51864 "$JFK" >s.out 2>s.err
    rc=$?
    [ "$rc" = 2 ] && grep -q "token id 51864 is outside the vocabulary of tiny.en" s.err &&
        [ ! -s s.out ] || { fail "--suppress_tokens 51864 with tiny.en (rc $rc)"; cat s.err; }
fi

if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo "hostile_outputs: all passed"

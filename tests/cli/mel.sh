#!/usr/bin/env bash
# mel.sh — end-to-end test of `tolk mel`: the .npy it writes for jfk.flac
# (header, dtype, shape [n_mels, samples / 160], size), and that bad inputs
# and options exit non-zero with a message on stderr and leave no output
# file (nor a temporary one) behind.
#
# usage: bash tests/cli/mel.sh /path/to/tolk
# env:   TOLK_DATA (default: data/ in the checkout)
set -u
TOLK=${1:?usage: mel.sh /path/to/tolk}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${TOLK_DATA:-$HERE/../../data}
JFK=$DATA/speech/jfk.flac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# npy_check FILE ROWS COLS: magic, version 1.0, '<f4', C order, the shape, and
# a file size of exactly header + rows * cols * 4 bytes.
npy_check() {
    local f=$1 rows=$2 cols=$3
    [ -f "$f" ] || { fail "$f missing"; return; }
    local magic
    magic=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
    [ "$magic" = "934e554d50590100" ] || fail "$f: bad magic/version $magic"
    local hlen
    hlen=$(od -An -tu2 -j8 -N2 --endian=little "$f" | tr -d ' ')
    [ $(((10 + hlen) % 64)) -eq 0 ] || fail "$f: header not 64-byte aligned ($hlen)"
    local header
    header=$(head -c $((10 + hlen)) "$f" | tail -c "$hlen")
    case $header in
    *"'descr': '<f4'"*"'fortran_order': False"*"'shape': ($rows, $cols)"*) ;;
    *) fail "$f: unexpected header: $header" ;;
    esac
    local size
    size=$(stat -c %s "$f")
    [ "$size" -eq $((10 + hlen + rows * cols * 4)) ] || fail "$f: size $size for ($rows, $cols)"
}

# expect_fail NAME OUT ARGS...: non-zero exit, a message, no OUT, no temporaries.
expect_fail() {
    local name=$1 out=$2
    shift 2
    local rc=0
    "$TOLK" mel "$@" >"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
    [ "$rc" -ne 0 ] || fail "$name: exit status 0"
    [ -s "$TMP/stderr" ] || fail "$name: no message on stderr"
    grep -q "tolk mel" "$TMP/stderr" || fail "$name: message does not say 'tolk mel'"
    [ ! -e "$out" ] || fail "$name: output $out was left behind"
    if ls "$TMP"/*.tmp.* >/dev/null 2>&1; then fail "$name: temporary file left behind"; fi
    echo "ok: $name -> exit $rc: $(head -n 1 "$TMP/stderr")"
}

if [ ! -f "$JFK" ]; then
    echo "SKIP: $JFK not found (set TOLK_DATA)"
else
    # 80 bins: jfk.flac is 11.0 s -> 176000 samples at 16 kHz -> 1100 frames
    "$TOLK" mel "$JFK" -o "$TMP/jfk.npy" || fail "tolk mel jfk.flac exited $?"
    npy_check "$TMP/jfk.npy" 80 1100
    # 128 bins, option=value forms, one thread
    "$TOLK" mel "$JFK" --output="$TMP/jfk128.npy" --n_mels=128 --threads 1 --device cpu ||
        fail "tolk mel --n_mels 128 exited $?"
    npy_check "$TMP/jfk128.npy" 128 1100
    # auto device works everywhere (CPU without CUDA)
    "$TOLK" mel "$JFK" -o "$TMP/jfk_auto.npy" --device auto || fail "--device auto exited $?"
    npy_check "$TMP/jfk_auto.npy" 80 1100
    # overwriting an existing file replaces it
    "$TOLK" mel "$JFK" -o "$TMP/jfk.npy" --threads 2 || fail "overwrite exited $?"
    npy_check "$TMP/jfk.npy" 80 1100
    # standard input
    "$TOLK" mel - -o "$TMP/stdin.npy" <"$JFK" || fail "tolk mel - exited $?"
    npy_check "$TMP/stdin.npy" 80 1100
    cmp -s "$TMP/stdin.npy" "$TMP/jfk.npy" || fail "stdin and file outputs differ"
    echo "ok: jfk.flac -> (80, 1100) and (128, 1100)"

    expect_fail "bad n_mels" "$TMP/x.npy" "$JFK" -o "$TMP/x.npy" --n_mels 64
    expect_fail "bad threads" "$TMP/x.npy" "$JFK" -o "$TMP/x.npy" --threads zero
    expect_fail "bad device" "$TMP/x.npy" "$JFK" -o "$TMP/x.npy" --device tpu
    expect_fail "no output" "$TMP/x.npy" "$JFK"
    expect_fail "missing value" "$TMP/x.npy" "$JFK" -o
    expect_fail "unwritable dir" "$TMP/nodir/x.npy" "$JFK" -o "$TMP/nodir/x.npy"
fi
expect_fail "missing file" "$TMP/x.npy" "$TMP/does-not-exist.flac" -o "$TMP/x.npy"
printf 'this is not audio at all, just some text\n' >"$TMP/garbage.flac"
expect_fail "garbage input" "$TMP/x.npy" "$TMP/garbage.flac" -o "$TMP/x.npy"
: >"$TMP/empty.wav"
expect_fail "empty input" "$TMP/x.npy" "$TMP/empty.wav" -o "$TMP/x.npy"
expect_fail "directory input" "$TMP/x.npy" "$TMP" -o "$TMP/x.npy"
expect_fail "no args" "$TMP/x.npy"
expect_fail "unknown option" "$TMP/x.npy" --bogus
# too short for one frame: a valid 16 kHz WAV of 100 samples (sox, when present)
# gives an empty [80, 0] spectrogram (frames = samples / 160), as
# `tolk transcribe` accepts it
if command -v sox >/dev/null 2>&1; then
    sox -n -r 16000 -c 1 -b 16 "$TMP/short.wav" trim 0 100s 2>/dev/null &&
        "$TOLK" mel "$TMP/short.wav" -o "$TMP/x.npy" && head -c 128 "$TMP/x.npy" |
        grep -q "'shape': (80, 0)" || fail "too short: not an empty [80, 0] spectrogram"
    rm -f "$TMP/x.npy"
fi
"$TOLK" mel --help | grep -q "usage: tolk mel" || fail "--help"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)" >&2
    exit 1
fi
echo "all mel CLI checks passed"

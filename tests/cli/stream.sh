#!/usr/bin/env bash
# stream.sh TOLK — `tolk stream`: bad options and PCM parameters are usage
# errors (exit 2, a message, nothing on stdout) and a missing input fails
# (exit 1) without a model; with a real model (tiny.en, else base): an audio
# file, raw s16le from standard input (the arecord pipeline of the README),
# f32le stereo at 44.1 kHz, --simulate, several streams at once, each speech
# gate (--gate auto takes the installed silero-vad, else energy) — JSON lines
# of partial / final events with the committed words of the clip, times that
# never go back, and one "end" last. Skips the model part (a SKIP line) when
# no model is installed, unless TOLK_REQUIRE_MODELS=1.
set -u
TOLK=${1:?usage: stream.sh /path/to/tolk}
TOLK=$(cd "$(dirname "$TOLK")" && pwd)/$(basename "$TOLK")
SHARED=${TOLK_DATA:-$(dirname "$0")/../../data}
SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || { echo "FAIL: no data/ folder (TOLK_DATA)"; exit 1; }
JFK=$SHARED/speech/jfk.flac
[ -f "$JFK" ] || { echo "FAIL: $JFK not found (TOLK_DATA)"; exit 1; }
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect RC PATTERN ARGS...: tolk stream ARGS exits RC, stderr matches
# PATTERN, stdout stays empty.
expect() {
    local want=$1 pat=$2
    shift 2
    TOLK_MODELS=$work/none "$TOLK" stream "$@" </dev/null >stdout 2>stderr
    local rc=$?
    if [ "$rc" != "$want" ]; then
        fail "tolk stream $*: exit $rc, expected $want"
        sed 's/^/    /' stderr
    elif ! grep -Eq -- "$pat" stderr; then
        fail "tolk stream $*: stderr does not match /$pat/:"
        sed 's/^/    /' stderr
    elif [ -s stdout ]; then
        fail "tolk stream $*: wrote to stdout"
    else
        echo "ok: tolk stream $* -> $rc"
    fi
}

# --- usage errors ---------------------------------------------------------------
expect 2 "--format: invalid choice" --format s24le -
expect 2 "--format: invalid choice" --format wav -
expect 2 "--rate" --format s16le --rate 0 -
expect 2 "--rate" --format s16le --rate -16000 -
expect 2 "--rate" --format s16le --rate 1000000 -
expect 2 "--rate" --format s16le --rate fast -
expect 2 "--channels" --format f32le --channels 0 -
expect 2 "--channels" --format f32le --channels 65 -
expect 2 "give --format too" --rate 8000 -
expect 2 "give --format too" --channels 2 "$JFK"
expect 2 "give --realtime too" --speed 2 "$JFK"
expect 2 "exclude each other" --realtime --simulate "$JFK"
expect 2 "one input at most" "$JFK" "$JFK"
expect 2 "--policy: invalid choice" --policy eager "$JFK"
expect 2 "--agreement" --policy agreement --agreement 1 "$JFK"
expect 2 "--pause" --pause 0 "$JFK"
expect 2 "--min_update" --min_update 0 "$JFK"
expect 2 "--encoder_pad" --encoder_pad -1 "$JFK"
expect 2 "--streams" --streams 0 "$JFK"
expect 2 "--output: invalid choice" --output xml "$JFK"
expect 2 "--gate: invalid choice" --gate vad "$JFK"
expect 2 "--vad_model: empty" --vad_model "" "$JFK"
expect 2 "give --gate silero or auto" --gate energy --vad_model silero-vad "$JFK"
expect 2 "--agreement_gap" --agreement_gap -1 "$JFK"
expect 2 "--language: invalid choice" --language klingon "$JFK"
expect 2 "unrecognized argument: --bogus" --bogus "$JFK"
# --- input errors (before any model is loaded) --------------------------------------
expect 1 "nothing.wav: No such file" "$work/nothing.wav"
expect 1 "nothing.raw: No such file" --format s16le "$work/nothing.raw"
expect 1 "named 'missing'|not found|no such" --model missing "$JFK"
if "$TOLK" stream --help | grep -q "arecord -f S16_LE -r 16000 -c 1 | tolk stream --format s16le -"; then
    echo "ok: --help shows the microphone pipeline"
else
    fail "--help does not show the arecord pipeline"
fi

# --- with a model -----------------------------------------------------------------
have() { [ -f "$ROOT/$1/model.bin" ] || [ -f "$ROOT/$1/config.json" ]; }
M=""
for m in tiny.en base; do
    if have $m; then M=$m; break; fi
done
if [ -z "$M" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        echo "FAIL: no model in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model tiny.en)"
        exit 1
    fi
    echo "SKIP: no model installed in $ROOT (scripts/get-model tiny.en)"
    [ "$fails" = 0 ] && exit 0 || exit 1
fi
export TOLK_MODELS=$ROOT

# check_events FILE WHAT [STREAMS]: JSON lines with partial / final events,
# one end per stream and last for it, FINAL times never going back, and the
# committed text holding the clip's words.
check_events() {
    local f=$1 what=$2 n=${3:-1}
    if ! python3 - "$f" "$n" <<'EOF'; then
import json, re, sys
path, n = sys.argv[1], int(sys.argv[2])
ev = [json.loads(l) for l in open(path) if l.strip()]
for i in range(n):
    e = [x for x in ev if x.get("stream", 0) == i]
    assert e and e[-1]["type"] == "end" and "error" not in e[-1], f"stream {i}: no clean end"
    assert sum(x["type"] == "end" for x in e) == 1, f"stream {i}: end twice"
    assert all(x["type"] in ("partial", "final", "end") for x in e)
    last = 0.0
    for x in e:
        assert x["end"] >= x["start"] - 1e-6, x
        if x["type"] == "final":
            assert x["start"] >= last - 1e-6, ("time went back", x)
            last = x["end"]
    text = re.sub(r"[^a-z ]", "", "".join(x["text"] for x in e if x["type"] == "final").lower())
    assert "your country" in text and "ask" in text, text
EOF
        fail "$what: bad events:"
        sed 's/^/    /' "$f" | tail -5
    else
        echo "ok: $what"
    fi
}

"$TOLK" stream --model "$M" "$JFK" >file.jsonl 2>err.txt || fail "file input: exit $? ($(cat err.txt))"
check_events file.jsonl "an audio file"

sox "$JFK" -t raw -e signed -b 16 -r 16000 -c 1 jfk.s16 2>/dev/null || fail "sox"
cat jfk.s16 | "$TOLK" stream --model "$M" --format s16le - >s16.jsonl 2>err.txt \
    || fail "s16le stdin: exit $? ($(cat err.txt))"
check_events s16.jsonl "raw s16le from standard input"

sox "$JFK" -t raw -e float -b 32 -r 44100 -c 2 jfk.f32 2>/dev/null || fail "sox"
"$TOLK" stream --model "$M" --format f32le --rate 44100 --channels 2 jfk.f32 >f32.jsonl \
    2>err.txt || fail "f32le file: exit $? ($(cat err.txt))"
check_events f32.jsonl "raw f32le stereo 44.1 kHz"

# a frame cut in half at the end: a warning, the rest is transcribed
head -c $(($(stat -c %s jfk.s16) - 1)) jfk.s16 | "$TOLK" stream --model "$M" --format s16le - \
    >cut.jsonl 2>err.txt || fail "cut frame: exit $?"
grep -q "ends inside a frame" err.txt && echo "ok: a cut frame is reported" \
    || fail "no warning for a cut frame ($(cat err.txt))"
check_events cut.jsonl "raw input ending inside a frame"

"$TOLK" stream --model "$M" --simulate --wall --policy agreement "$JFK" >sim.jsonl 2>err.txt \
    || fail "--simulate: exit $? ($(cat err.txt))"
check_events sim.jsonl "--simulate with LocalAgreement-2"
grep -q '"wall"' sim.jsonl && echo "ok: --wall" || fail "--wall: no wall field"

"$TOLK" stream --model "$M" --streams 3 "$JFK" >multi.jsonl 2>err.txt \
    || fail "--streams 3: exit $? ($(cat err.txt))"
check_events multi.jsonl "three streams at once" 3

# speech gates: --stats names the one used
gate_run() { # WANT MODELS ARGS...: tolk stream with $TOLK_MODELS = MODELS
    local want=$1 models=$2
    shift 2
    TOLK_MODELS=$models "$TOLK" stream --model "$ROOT/$M" --stats "$@" "$JFK" >gate.jsonl \
        2>err.txt || { fail "gate $want: exit $? ($(cat err.txt))"; return; }
    check_events gate.jsonl "gate $want ($*)"
    grep -q "gate $want" err.txt && echo "ok: $* -> gate $want" || fail "$*: not gate $want: $(cat err.txt)"
}
gate_run energy "$ROOT" --gate energy
gate_run none "$ROOT" --gate none
mkdir -p nomodels
gate_run "energy (no Silero model)" "$work/nomodels"
if [ -d "$ROOT/silero-vad" ]; then
    gate_run silero "$ROOT" --gate silero
    gate_run silero "$ROOT"
else
    echo "SKIP: silero-vad is not installed (scripts/get-model silero-vad)"
fi
"$TOLK" stream --model "$M" --gate silero --vad_model "$work/nothing" "$JFK" >out.txt 2>err.txt
rc=$?
[ "$rc" = 1 ] && grep -q "nothing" err.txt && [ ! -s out.txt ] \
    && echo "ok: --gate silero with a missing --vad_model -> 1" \
    || fail "--gate silero --vad_model missing: exit $rc ($(cat err.txt))"

# a live display on a terminal: --output text (final lines with times)
"$TOLK" stream --model "$M" --output text "$JFK" >text.txt 2>err.txt || fail "text output: exit $?"
# (a partial's line is redrawn: carriage return, escape sequences)
tr '\r' '\n' <text.txt | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -q "^\[00:0" \
    && grep -qi "country" text.txt \
    && echo "ok: --output text" \
    || fail "--output text: $(cat text.txt)"

[ "$fails" = 0 ] && echo "all ok" || echo "$fails failure(s)"
[ "$fails" = 0 ]

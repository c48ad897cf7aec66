#!/usr/bin/env bash
# vad.sh — `tolk vad` and `tolk transcribe --vad_filter` end to end: speech
# segments as tsv and json, a silent file with no segments, bad --vad_*
# values as usage errors (exit 2, before anything is loaded), a missing or
# bad VAD model (exit 1), --vad_filter with --clip_timestamps refused, and
# transcription with the filter on: no text for silence, jfk's words with
# times on the original timeline when it follows 5 s of silence. Needs the
# silero-vad model (scripts/get-model silero-vad) and tiny.en or base; skips
# without them unless TOLK_REQUIRE_MODELS=1.
#
# usage: bash tests/cli/vad.sh /path/to/tolk
set -u
TOLK=${1:?usage: vad.sh /path/to/tolk}
SHARED=${TOLK_SHARED_DATA:-$(dirname "$0")/../../shared/data}
[ -d "$SHARED" ] || SHARED=$(dirname "$0")/../../../shared/data
SHARED=$(cd "$SHARED" 2>/dev/null && pwd) || { echo "FAIL: no shared data"; exit 1; }
JFK=$SHARED/speech/jfk.flac
ROOT=${TOLK_MODELS:-$HOME/.cache/tolk/models}
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# --- usage errors need no model -------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
usage() { # usage PATTERN ARGS...: exit 2 and PATTERN on stderr
    local pat=$1
    shift
    "$TOLK" "$@" >out 2>err
    local rc=$?
    if [ $rc -eq 2 ] && grep -Eq -- "$pat" err; then ok "$* -> usage error"; else
        fail "$*: rc=$rc, stderr: $(cat err)"
    fi
}
usage "vad_threshold: 1.5 is out of range" vad --vad_threshold 1.5 "$JFK"
usage "vad_neg_threshold: 0.6 exceeds" vad --vad_neg_threshold 0.6 "$JFK"
usage "vad_min_silence_duration_ms" vad --vad_min_silence_duration_ms -1 "$JFK"
usage "vad_speech_pad_ms" vad --vad_speech_pad_ms x "$JFK"
usage "vad_max_speech_duration_s" vad --vad_max_speech_duration_s 0 "$JFK"
usage "invalid choice" vad -f srt "$JFK"
usage "required: AUDIO" vad
usage "cannot be combined with --clip_timestamps" transcribe --vad_filter True \
    --clip_timestamps 1,3 "$JFK"
usage "vad_filter: expected True or False" transcribe --vad_filter yes "$JFK"
usage "vad_threshold" transcribe --vad_filter True --vad_threshold -0.1 "$JFK"

if [ ! -f "$ROOT/silero-vad/.tolk-complete" ]; then
    if [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ]; then
        echo "FAIL: no silero-vad in $ROOT (TOLK_REQUIRE_MODELS=1; run scripts/get-model silero-vad)"
        exit 1
    fi
    echo "SKIP: the rest needs scripts/get-model silero-vad"
    [ "$fails" -eq 0 ] && exit 0 || exit 1
fi
export TOLK_MODELS=$ROOT

# --- tolk vad ---------------------------------------------------------------------
"$TOLK" vad "$JFK" >out 2>err
if [ $? -eq 0 ] && [ "$(head -n 1 out)" = "file	start	end" ] &&
    grep -q "jfk.flac	0.000	11.000" out; then ok "vad tsv"; else fail "vad tsv: $(cat out err)"; fi
"$TOLK" vad -f json "$JFK" >out 2>err &&
    python3 -c 'import json,sys; d=json.load(open("out")); assert d[0]["speech"][0]["end_sample"]==176000' &&
    ok "vad json" || fail "vad json: $(cat out err)"
sox -n -r 16000 -c 1 -b 16 silence.wav trim 0 4 2>/dev/null || python3 -c '
import struct, wave; w = wave.open("silence.wav", "wb"); w.setnchannels(1); w.setsampwidth(2)
w.setframerate(16000); w.writeframes(b"\0\0" * 64000)'
"$TOLK" vad silence.wav >out 2>err
[ $? -eq 0 ] && [ "$(wc -l <out)" -eq 1 ] && ok "silence: no segments" || fail "silence: $(cat out err)"
"$TOLK" vad "$JFK" missing.wav >out 2>err
[ $? -eq 1 ] && grep -q "missing.wav: no such file" err && grep -q jfk out &&
    ok "a missing file is reported, the others done" || fail "missing file: $(cat out err)"
"$TOLK" vad --vad_model "$work/nosuch" "$JFK" >out 2>err
[ $? -eq 1 ] && grep -q "nosuch" err && ok "missing model" || fail "missing model: $(cat err)"
echo garbage >bad.safetensors
"$TOLK" vad --vad_model "$work/bad.safetensors" "$JFK" >out 2>err
[ $? -eq 1 ] && grep -q "bad.safetensors: not a Silero VAD model" err && ok "bad model" ||
    fail "bad model: $(cat err)"

# --- transcribe --vad_filter ------------------------------------------------------
EN=""
for m in tiny.en base; do
    if [ -f "$ROOT/$m/model.bin" ]; then EN=$m; break; fi
done
if [ -z "$EN" ]; then
    [ "${TOLK_REQUIRE_MODELS:-0}" = 1 ] && { echo "FAIL: no whisper model"; exit 1; }
    echo "SKIP: transcription needs tiny.en or base"
else
    G="--model $EN --beam_size None --language en --threads 2"
    "$TOLK" transcribe $G --vad_filter True --verbose False silence.wav >out 2>err
    [ $? -eq 0 ] && [ ! -s out ] && ok "vad_filter on silence: no text" ||
        fail "vad_filter on silence: $(cat out err)"
    if sox -n -r 16000 -c 1 -b 16 gap.wav trim 0 5 2>/dev/null &&
        sox "$JFK" -r 16000 -c 1 -b 16 jfk16.wav 2>/dev/null &&
        sox gap.wav jfk16.wav gapjfk.wav 2>/dev/null; then
        "$TOLK" transcribe $G --vad_filter True gapjfk.wav >out 2>err
        first=$(head -n 1 out)
        case $first in
        "[00:04."*|"[00:05."*) ok "vad_filter: times on the original timeline: $first" ;;
        *) fail "vad_filter times: $(cat out err)" ;;
        esac
        grep -qi "ask not what your country" out && ok "vad_filter: the words" ||
            fail "vad_filter words: $(cat out)"
        "$TOLK" transcribe $G --vad_filter True --vad_model "$work/bad.safetensors" gapjfk.wav \
            >out 2>err
        [ $? -eq 1 ] && grep -q "not a Silero VAD model" err && ok "transcribe: bad VAD model" ||
            fail "transcribe bad VAD model: $(cat err)"
    else
        echo "SKIP: sox is needed for the gap test"
    fi
fi

if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo "all vad checks passed"

#!/usr/bin/env bash
# bench/vad.sh — voice activity detection, the figures of issue 14, in one run:
#
#   1. words emitted on the project's non-speech clips (bench/nonspeech/manifest.tsv: silence,
#      noises, hum, tones, clicks, Debian sound effects) by tolk base greedy with and without
#      --vad_filter, and by faster-whisper (beam_size=1, its defaults; vad_filter False / True);
#   2. WER on the shared asr.tsv, tolk base greedy with the filter off and on (bench/suite.py's
#      scoring: Whisper's normalisers + jiwer);
#   3. VAD speed in audio seconds per CPU second: tolk (bench_vad: whole files, a live stream,
#      8 streams batched) against silero-vad's ONNX model in onnxruntime.
# The speed step runs first and alone; the others (deterministic counts and scores) side by side.
#
#   bench/vad.sh [--py VENV_PYTHON] [--tolk build/tolk] [--model base] [--threads 2] [--out DIR]
#
# VENV_PYTHON: a Python with faster-whisper, silero-vad, onnxruntime, soundfile, jiwer and
# whisper-normalizer (default: $TOLK_BENCH_PY, else python3). The whisper model is the CTranslate2
# directory scripts/get-model installs (used by both engines), the VAD model scripts/get-model
# silero-vad. Results: DIR (default bench/results/<date>-vad) holds the JSON files, the tables of
# bench_vad, the transcripts, and summary.md. Measures; never fails on a number.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=${TOLK_BENCH_PY:-python3} tolk=$root/build/tolk model=base threads=2 out=
while [ $# -gt 0 ]; do
    case $1 in
    --py) py=$2; shift 2 ;;
    --tolk) tolk=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "vad.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
models=${TOLK_MODELS:-$HOME/.cache/tolk/models}
speech=$root/shared/data/speech
[ -d "$speech" ] || speech=$root/../shared/data/speech
out=${out:-$root/bench/results/$(date +%Y-%m-%d)-vad}
bench_vad=$(dirname "$tolk")/bench_vad
for f in "$tolk" "$bench_vad"; do [ -x "$f" ] || { echo "vad.sh: $f: not built" >&2; exit 2; }; done
[ -d "$models/$model" ] || { echo "vad.sh: scripts/get-model $model first" >&2; exit 2; }
[ -d "$models/silero-vad" ] || { echo "vad.sh: scripts/get-model silero-vad first" >&2; exit 2; }
mkdir -p "$out"
# passive OpenMP waits: spinning threads waste a shared machine's cores
export TOLK_MODELS=$models OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "threads: $threads; model: $model"
} >"$out/machine.txt"
cat "$out/machine.txt"

echo "== VAD speed (alone, first)" >&2
mapfile -t clips < <(find "$speech" -name '*.flac' | sort)
for t in 1 "$threads"; do
    "$bench_vad" "$models/silero-vad" "$t" "${clips[@]}" >"$out/speed-tolk-$t.tsv"
done
# OpenBLAS picks its kernels from the CPU model; on CPUs it does not know (virtual machines) it
# falls back to old SSE3 ones. Once more with the kernels the CPU's flags allow, named by hand.
core=
if grep -qw avx512f /proc/cpuinfo; then core=SkylakeX; elif grep -qw avx2 /proc/cpuinfo; then core=Haswell; fi
if [ -n "$core" ]; then
    OPENBLAS_CORETYPE=$core "$bench_vad" "$models/silero-vad" 1 "${clips[@]}" \
        >"$out/speed-tolk-1-OPENBLAS_CORETYPE=$core.tsv"
fi
"$py" "$here/vad.py" onnx-speed "$out/speed-onnx.json" "${clips[@]}"
# the rest only counts words and scores text: the four jobs run side by side
echo "== non-speech words (tolk, faster-whisper) and asr.tsv WER, side by side" >&2
pids=()
"$py" "$here/vad.py" tolk-words "$out/nonspeech-tolk.json" "$tolk" "$model" "$threads" \
    "$here/nonspeech/manifest.tsv" & pids+=($!)
"$py" "$here/vad.py" fw-words "$out/nonspeech-faster-whisper.json" "$models/$model" "$threads" \
    "$here/nonspeech/manifest.tsv" & pids+=($!)
"$py" "$here/vad.py" wer "$out/wer.json" "$tolk" "$model" "$threads" "$speech/asr.tsv" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
"$py" "$here/vad.py" summary "$out"

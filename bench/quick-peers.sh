#!/usr/bin/env bash
# quick-peers.sh — a small side-by-side speed check, in one run on the same files and weights:
# tolk (float32 and bfloat16) vs faster-whisper (int8, float32) vs whisper.cpp (f16 ggml made from the
# same CT2 weights by scripts/convert-model). Greedy, temperature 0 without fallback, language given,
# N threads. Wall time of each engine's whole process (model load included), REPEAT times.
#
#   bench/quick-peers.sh [MODEL=base] [THREADS=2] [REPEAT=2]
#   env: FILES (default: the 8 LibriSpeech test-clean clips of data/speech),
#        PYTHON_FW (a python with faster_whisper; default bench/.venv/bin/python, made by bench/suite),
#        WHISPER_CPP_DIR (a built whisper.cpp checkout; skipped when unset)
# Measures only; run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-base}
threads=${2:-2}
repeat=${3:-2}
dir=$("$root/scripts/get-model" "$model")
tolk="$root/build/tolk"
[ -x "$tolk" ] || "$root/scripts/build" build >&2
files=${FILES:-$(ls "$root"/data/speech/en/librispeech/test-clean_*.flac | head -n 8)}
py=${PYTHON_FW:-$root/bench/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

i=0
wavs=()
for f in $files; do
    sox "$f" -r 16000 -c 1 -b 16 "$work/w$i.wav"
    wavs+=(-f "$work/w$i.wav")
    i=$((i + 1))
done
audio=$(soxi -D "$work"/w*.wav | paste -sd+ | bc)
echo "files: $i, audio: $audio s, model: $model, threads: $threads, load: $(cut -d' ' -f1 /proc/loadavg)"

cat > "$work/fw.py" <<'EOF'
import sys
from faster_whisper import WhisperModel
m = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[2], cpu_threads=int(sys.argv[3]))
for f in sys.argv[4:]:
    segs, _ = m.transcribe(f, language="en", beam_size=1, best_of=1, temperature=0.0, vad_filter=False)
    list(segs)
EOF

t() { # t NAME CMD...: print NAME and the wall seconds of CMD
    local name=$1
    shift
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" || { echo "| $name | failed: $(tail -n 1 "$work/err") |"; return; }
    e=$(date +%s.%N)
    printf '| %s | %.2f | %.1f |\n' "$name" "$(echo "$e - $s" | bc)" "$(echo "$audio / ($e - $s)" | bc -l)"
}

echo "| engine | wall s | RTFx |"
echo "|---|---|---|"
for _ in $(seq "$repeat"); do
    common=(transcribe --model "$dir" --language en --beam_size 1 --temperature_increment_on_fallback None
        --threads "$threads" --verbose False)
    t "tolk float32" "$tolk" "${common[@]}" $files
    t "tolk bfloat16" "$tolk" "${common[@]}" --compute_type bfloat16 $files
    if "$py" -c 'import faster_whisper' 2>/dev/null; then
        t "faster-whisper int8" "$py" "$work/fw.py" "$dir" int8 "$threads" $files
        t "faster-whisper float32" "$py" "$work/fw.py" "$dir" float32 "$threads" $files
    else
        echo "| faster-whisper | skipped: no faster_whisper in $py (run bench/suite once) |"
    fi
    if [ -n "${WHISPER_CPP_DIR:-}" ] && [ -x "$WHISPER_CPP_DIR/build/bin/whisper-cli" ]; then
        ggml=${TOLK_MODELS:-$HOME/.cache/tolk/models}/$model.ggml.bin
        [ -f "$ggml" ] || "$py" "$root/scripts/convert-model" "$dir" --ggml "$ggml" >&2
        t "whisper.cpp f16" "$WHISPER_CPP_DIR/build/bin/whisper-cli" -m "$ggml" -t "$threads" -l en \
            -bs 1 -bo 1 -nf -np "${wavs[@]}"
    else
        echo "| whisper.cpp | skipped: set WHISPER_CPP_DIR to a built checkout |"
    fi
done

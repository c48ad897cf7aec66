#!/usr/bin/env bash
# gpu-check.sh — one-shot check of the CUDA backend on a machine with a GPU:
# configure + build with CUDA (default architectures 80;90), run every GPU
# test (ctest -R cuda), then the GPU benchmarks, and print a timing table.
#
# Usage: bench/gpu-check.sh [build-dir] [bench-iterations]
#   build-dir         default: build-gpu-check (relative to the repository)
#   bench-iterations  default: 20
# Environment: CMAKE_ARGS (extra configure arguments, e.g.
#   -DCMAKE_CUDA_ARCHITECTURES=90 for a faster build), JOBS (build jobs),
#   GPU_SANITIZE (1, the default: also run test_cuda_kernels under
#   compute-sanitizer memcheck; 2: memcheck + racecheck + synccheck; 0: none).
# Exit status: non-zero when the build or a test fails (benchmarks only
# measure; a benchmark failure is reported but does not fail the check).
# Real weights: the tests and benchmarks that need tiny.en / base look in
# $TOLK_MODELS (scripts/get-model's cache) and skip without them. The device
# machine reaches no network and a call carries at most 64 MiB, so bring the
# models in pieces over consecutive calls while the machine stays warm:
# bench/gpu-models.sh pack NAME writes .gpu-models/NAME.partNN (each < 32 MiB,
# git-ignored through .git/info/exclude); carry a few parts per call, then
# `bench/gpu-models.sh unpack` there reassembles them into .gpu-models/NAME
# and this script uses TOLK_MODELS=.gpu-models when that directory exists.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build-gpu-check}"
iters="${2:-20}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
jobs="${JOBS:-$(nproc 2>/dev/null || echo 4)}"

echo "== tolk GPU check: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
    echo "nvidia-smi not found (no driver?): tests will skip"
fi

if [ -z "${TOLK_MODELS:-}" ] && [ -d "$here/.gpu-models" ]; then
    "$here/bench/gpu-models.sh" unpack || true
    export TOLK_MODELS="$here/.gpu-models"
fi
echo "models: ${TOLK_MODELS:-~/.cache/tolk/models} ($(ls "${TOLK_MODELS:-$HOME/.cache/tolk/models}" 2>/dev/null | tr '\n' ' '))"

echo "== configure + build ($build)"
mkdir -p "$build"
# shellcheck disable=SC2086
cmake -S "$here" -B "$build" -DTOLK_CUDA=ON -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} \
    >"$build/gpu-check-configure.log" 2>&1 || {
    cat "$build/gpu-check-configure.log"
    echo "configure FAILED"
    exit 1
}
t0=$(date +%s)
cmake --build "$build" -j"$jobs" >"$build/gpu-check-build.log" 2>&1 || {
    grep -E "error|warning" "$build/gpu-check-build.log" | head -50
    echo "build FAILED (full log: $build/gpu-check-build.log)"
    exit 1
}
n_warn=$(grep -c 'warning' "$build/gpu-check-build.log")
echo "built in $(( $(date +%s) - t0 )) s; warnings: $n_warn"

echo "== GPU tests (ctest -R cuda)"
test_rc=0
ctest --test-dir "$build" -R cuda --output-on-failure || test_rc=$?
# Skips print "SKIPPED"; on a GPU machine nothing should skip.
for t in "$build"/test_*cuda*; do
    [ -x "$t" ] || continue
    n=$("$t" 2>/dev/null | grep -c "SKIPPED" || true)
    [ "$n" -gt 0 ] && echo "WARNING: $(basename "$t") skipped $n tests (no device visible?)"
done

san="${GPU_SANITIZE:-1}"
cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ "$san" != 0 ] && [ -x "$cs" ] && [ -x "$build/test_cuda_kernels" ]; then
    tools="memcheck"
    [ "$san" = 2 ] && tools="memcheck racecheck synccheck"
    for tool in $tools; do
        for t in test_cuda_kernels test_cuda_attention test_cuda_select; do
            [ -x "$build/$t" ] || continue
            echo "== compute-sanitizer --tool $tool $t"
            log="$build/sanitize-$tool-$t.log"
            (cd "$build" && TOLK_TEST_SKIP_NET=1 "$cs" --tool "$tool" --error-exitcode 3 \
                ./"$t" >"$log" 2>&1)
            rc=$?
            tail -3 "$log"
            [ $rc -ne 0 ] && { echo "$tool $t: FAILED (rc $rc, log $log)"; test_rc=1; }
        done
    done
fi

echo "== end to end (test_cuda_transcribe: CUDA FP32 vs CPU text, graphs on/off, beam, FP16 WER)"
if [ -x "$build/test_cuda_transcribe" ]; then
    (cd "$build" && ./test_cuda_transcribe 2>&1 | grep -E "GPU |differs|cpu:|gpu:|SKIPPED|asserts")
else
    echo "test_cuda_transcribe not built"
fi

echo "== GPU benchmarks"
bench_out="$build/bench_gpu.txt"
bench_rc=0
if [ -x "$build/bench_gpu" ]; then
    "$build/bench_gpu" "$iters" | tee "$bench_out" || bench_rc=$?
    # the decoder steps again without CUDA graphs (op-by-op launches), for the table
    echo "-- bench_gpu with TOLK_CUDA_GRAPHS=0 (decoder steps without graphs)"
    TOLK_CUDA_GRAPHS=0 "$build/bench_gpu" "$iters" 2>&1 | grep -iE "decod|step" |
        sed -e 's/^/  [no graphs] /' | tee -a "$bench_out" || true
else
    echo "bench_gpu not built"; bench_rc=1
fi
for b in "$build"/bench_*; do # other benchmarks that mention the GPU (e.g. mel)
    case "$(basename "$b")" in bench_gpu) continue ;; esac
    [ -x "$b" ] || continue
    if grep -qi cuda "$here/bench/$(basename "$b").c" 2>/dev/null; then
        echo "-- $(basename "$b")"
        "$b" || echo "($(basename "$b") exited $?)"
    fi
done

echo "== timing table (ms per call; from $bench_out)"
if [ -s "$bench_out" ]; then
    grep -E '^==| ms' "$bench_out" | sed -e 's/^/  /'
fi

echo "== summary: tests rc=$test_rc, benchmarks rc=$bench_rc"
exit "$test_rc"

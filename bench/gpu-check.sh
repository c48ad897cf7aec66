#!/usr/bin/env bash
# gpu-check.sh — what a lent GPU must answer, in the order that matters, then
# the rest. Reference: issue 19's "Measure without a GPU" list.
#
# Stage "checks" (the five checks; ~8-10 minutes on an H100 with 16 cores,
# build included, so that one 10-minute device call can finish them):
#   build   configure + build only what the checks run, for the device's
#           own architecture (nvidia-smi compute_cap; CMAKE_CUDA_ARCHITECTURES
#           overrides), with a time limit;
#   1 driver  nvidia-smi: driver >= R580 (what the static CUDA 13 runtime
#           needs, or every test skips), then the runtime sees the device and
#           the warp-level PTX layouts the kernels (and the CPU emulator)
#           assume hold on the hardware (test_cuda_attention ptx_fragments);
#   2 sanitizers  compute-sanitizer memcheck on test_cuda_attention,
#           test_cuda_select and test_cuda_norm_linear, racecheck + synccheck
#           on the tensor-core, grouped split-KV, select and norm_linear kernels;
#   3 graphs  bench_gpu --graph-check base: graphs captured / replayed and
#           graph-vs-eager selected-token equality at batch 1 and 5;
#   4 nsys    one large-v3 encoder window and decoder steps at batch 1 / 5 / 32
#           (bench_gpu --census large-v3, run for real) under nsys with
#           CUDA-graph node tracing: kernels per step and the cuBLASLt kernels
#           chosen (nsys stats cuda_gpu_kern_sum);
#   5 ncu     ncu --set full on the encoder attention kernel (fa2_kernel, f16
#           and f32 q/k/v at large-v3's 20 heads).
# Stage "rest": every GPU test (ctest -R cuda), bench_gpu (all kernels and
# the model-level rows), the large-v3 decoder step's wall time with the
# LayerNorms fused into their products and apart (--graph-check), the
# census of base (with and without beam groups) and large-v3, the other GPU
# benchmarks, and the exact against the tanh GELU (tolk bench on the shared
# asr set, bench/ab_bench.py).
#
# Usage: bench/gpu-check.sh [build-dir]        (default build-gpu-check)
# Environment:
#   GPU_CHECK_STAGES  "checks", "rest" or "checks,rest" (default: checks,rest)
#   OUT               when set, every log, report and profile is written
#                     under $OUT (else under BUILD/gpu-check)
#   CMAKE_ARGS        extra configure arguments; JOBS build jobs
#   BUILD_TIMEOUT     seconds for the build (default 420)
# Exit status: non-zero when the build or a check fails (timings only
# measure). Real weights (tiny.en / base for test_cuda_transcribe in "rest")
# come from $TOLK_MODELS, or .gpu-models/ unpacked by bench/gpu-models.sh
# (the device machine reaches no network; a call carries at most 64 MiB).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build-gpu-check}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
stages="${GPU_CHECK_STAGES:-checks,rest}"
out="${OUT:-$build/gpu-check}"
mkdir -p "$out" "$build"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
summary="$out/summary.txt"
: >"$summary"
rc_all=0
t_start=$(date +%s)

say() { echo "$*" | tee -a "$summary"; }
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }
# run NAME TIMEOUT CMD...: log to $out/NAME.log, tail it, record the result
run() {
    local name="$1" limit="$2"
    shift 2
    local log="$out/$name.log" t0 rc
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    tail -n 12 "$log"
    if [ $rc -eq 0 ]; then
        say "  [$name] ok ($(( $(date +%s) - t0 )) s)"
    else
        say "  [$name] FAILED rc=$rc ($(( $(date +%s) - t0 )) s; log $log)"
        rc_all=1
    fi
    return $rc
}

say "== tolk GPU check $(date -u '+%Y-%m-%d %H:%M:%S UTC'), stages: $stages, output: $out"

if [ -z "${TOLK_MODELS:-}" ] && [ -d "$here/.gpu-models" ]; then
    "$here/bench/gpu-models.sh" unpack >"$out/models.log" 2>&1 || true
    export TOLK_MODELS="$here/.gpu-models"
fi

# ---- check 1a: driver ------------------------------------------------------
say "== 1. driver and runtime"
arch="${CMAKE_CUDA_ARCHITECTURES:-}"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
    q=$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader \
        2>/dev/null | head -1)
    say "  device: $q"
    drv=$(echo "$q" | awk -F', ' '{print $2}' | cut -d. -f1)
    cc=$(echo "$q" | awk -F', ' '{print $3}' | tr -d '.')
    [ -z "$arch" ] && [ -n "$cc" ] && arch="$cc"
    if [ -n "$drv" ] && [ "$drv" -ge 580 ] 2>/dev/null; then
        say "  driver $drv >= R580: the CUDA 13 runtime can run"
    else
        say "  driver '$drv' < R580 (or unknown): the static CUDA 13 runtime reports no device,"
        say "  every GPU test would skip: STOP"
        exit 1
    fi
else
    say "  nvidia-smi not found: no driver, nothing can run: STOP"
    exit 1
fi
[ -z "$arch" ] && arch="80;90"

# ---- build -----------------------------------------------------------------
say "== build ($build, CUDA architectures $arch, $jobs jobs) at $(elapsed)"
# shellcheck disable=SC2086
cmake -S "$here" -B "$build" -DTOLK_CUDA=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" ${CMAKE_ARGS:-} >"$out/configure.log" 2>&1 || {
    tail -30 "$out/configure.log"
    say "configure FAILED"
    exit 1
}
targets="test_cuda_attention test_cuda_select test_cuda_norm_linear bench_gpu"
case "$stages" in *rest*) targets="$targets test_cuda_kernels test_mel_cuda test_cuda_transcribe" ;; esac
t0=$(date +%s)
# shellcheck disable=SC2086
timeout "${BUILD_TIMEOUT:-420}" cmake --build "$build" -j"$jobs" --target $targets \
    >"$out/build.log" 2>&1 || {
    grep -E "error|warning" "$out/build.log" | head -40
    say "build FAILED or timed out after $(( $(date +%s) - t0 )) s (log $out/build.log)"
    exit 1
}
say "  built in $(( $(date +%s) - t0 )) s; warnings: $(grep -c 'warning' "$out/build.log")"

cd "$build" || exit 1
case "$stages" in
*checks*)
    # ---- check 1b: runtime + PTX layouts -----------------------------------
    if "$build/bench_gpu" --attn base 1 2>&1 | grep -q "no CUDA device"; then
        say "  the runtime sees no device (driver/runtime mismatch?): STOP"
        exit 1
    fi
    run 1-ptx-layouts 120 env TOLK_TESTS=ptx_fragments ./test_cuda_attention
    grep -q "SKIPPED" "$out/1-ptx-layouts.log" && { say "  ptx_fragments SKIPPED: no device"; rc_all=1; }

    # ---- check 2: sanitizers -----------------------------------------------
    say "== 2. compute-sanitizer (at $(elapsed))"
    cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
    if [ -x "$cs" ]; then
        run 2-memcheck-attention 240 "$cs" --tool memcheck --error-exitcode 3 ./test_cuda_attention
        run 2-memcheck-select 120 "$cs" --tool memcheck --error-exitcode 3 ./test_cuda_select
        run 2-memcheck-norm-linear 120 "$cs" --tool memcheck --error-exitcode 3 \
            ./test_cuda_norm_linear
        for tool in racecheck synccheck; do
            run "2-$tool-norm-linear" 120 "$cs" --tool "$tool" --error-exitcode 3 \
                ./test_cuda_norm_linear
            run "2-$tool-attention" 180 env TOLK_TESTS=ptx_fragments,tc_aligned,groups \
                "$cs" --tool "$tool" --error-exitcode 3 ./test_cuda_attention
            run "2-$tool-select" 120 "$cs" --tool "$tool" --error-exitcode 3 ./test_cuda_select
        done
    else
        say "  compute-sanitizer not found"
        rc_all=1
    fi

    # ---- check 3: graphs ---------------------------------------------------
    say "== 3. graph capture and graph-vs-eager tokens (at $(elapsed))"
    run 3-graph-check 180 "$build/bench_gpu" --graph-check base

    # ---- check 4: nsys -----------------------------------------------------
    say "== 4. nsys: large-v3 window + decoder steps at batch 1 / 5 / 32 (at $(elapsed))"
    nsys="$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)"
    if [ -n "$nsys" ] && [ -x "$nsys" ]; then
        run 4-nsys 300 "$nsys" profile --trace=cuda --cuda-graph-trace=node --force-overwrite=true \
            -o "$out/nsys-large-v3" "$build/bench_gpu" --census large-v3
        cp "$out/4-nsys.log" "$out/census-large-v3-measured.txt" 2>/dev/null || true
        run 4-nsys-stats 120 "$nsys" stats --report cuda_gpu_kern_sum --format csv \
            --output "$out/nsys-large-v3" "$out/nsys-large-v3.nsys-rep"
        ls "$out"/nsys-large-v3*cuda_gpu_kern_sum*.csv >/dev/null 2>&1 &&
            say "  kernels (incl. cuBLASLt's choices): $(ls "$out"/nsys-large-v3*cuda_gpu_kern_sum*.csv)"
    else
        say "  nsys not found: the census without it"
        run 4-census 240 "$build/bench_gpu" --census large-v3
    fi

    # ---- check 5: ncu ------------------------------------------------------
    say "== 5. ncu on the encoder attention kernel (at $(elapsed))"
    ncu="$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
    if [ -n "$ncu" ] && [ -x "$ncu" ]; then
        run 5-ncu 240 "$ncu" --kernel-name regex:fa2_kernel --launch-skip 3 --launch-count 2 \
            --set full --force-overwrite -o "$out/ncu-fa2" "$build/bench_gpu" --attn large-v3 5
        "$ncu" --import "$out/ncu-fa2.ncu-rep" --page details >"$out/ncu-fa2-details.txt" 2>&1 || true
    else
        say "  ncu not found"
        rc_all=1
    fi
    say "== checks done at $(elapsed), rc $rc_all"
    ;;
esac

case "$stages" in
*rest*)
    say "== rest: build everything (at $(elapsed))"
    timeout "${BUILD_TIMEOUT:-420}" cmake --build "$build" -j"$jobs" >"$out/build-all.log" 2>&1 ||
        say "  full build FAILED (log $out/build-all.log)"
    say "== GPU tests (ctest -R cuda)"
    run ctest-cuda 600 ctest --test-dir "$build" -R cuda --output-on-failure
    grep -h "SKIPPED" "$out/ctest-cuda.log" | head -5 | sed -e 's/^/  WARNING: /'
    grep -E "GPU |differs|near-tie|first difference|cpu:|gpu:|SKIPPED|asserts" \
        "$out/ctest-cuda.log" >"$out/transcribe-summary.txt" 2>/dev/null
    cat "$out/transcribe-summary.txt"
    say "== benchmarks"
    run bench-attn 120 "$build/bench_gpu" --attn large-v3 20
    # the decoder step's wall time on large-v3 shapes (issue 19's goal: <= 1.5 ms at batch 1
    # and 5), with each LayerNorm inside its product (norm_linear, the default) and apart
    for f in "" --no-norm-fuse; do
        run "bench-step-large-v3${f:+-unfused}" 300 "$build/bench_gpu" --graph-check large-v3 $f
    done
    run bench-gpu 600 "$build/bench_gpu" 20
    run census-base-ungrouped 180 env TOLK_ATTN_GROUPS=0 TOLK_CUDA_BATCHED=0 \
        "$build/bench_gpu" --census base
    run census-base 180 "$build/bench_gpu" --census base
    for b in "$build"/bench_*; do # other benchmarks that mention the GPU (e.g. mel)
        case "$(basename "$b")" in bench_gpu) continue ;; esac
        [ -x "$b" ] || continue
        grep -qi cuda "$here/bench/$(basename "$b").c" 2>/dev/null &&
            run "$(basename "$b")" 300 "$b"
    done
    # the tanh GELU inside fc1's product (opt-in, tolk_model_params.gelu)
    # against the exact one: same transcripts? accuracy? time? (base, the
    # shared asr set, float16 on the GPU)
    if [ -x "$build/tolk" ] && [ -f "$here/data/speech/asr.tsv" ] && command -v python3 >/dev/null; then
        say "== GELU exact vs tanh (tolk bench, base, float16)"
        for g in exact tanh; do
            run "bench-gelu-$g" 300 "$build/tolk" bench "$here/data/speech/asr.tsv" --model base \
                --device cuda --gelu "$g" -o "$out/gelu-$g.jsonl"
        done
        python3 "$here/bench/ab_bench.py" "$out/gelu-exact.jsonl" "$out/gelu-tanh.jsonl" \
            --label-a exact --label-b tanh 2>&1 | tee -a "$summary"
    fi
    say "== timing rows (ms per call)"
    grep -hE '^==| ms' "$out"/bench-*.log 2>/dev/null | sed -e 's/^/  /' | tee -a "$summary"
    ;;
esac

say "== done at $(elapsed); exit $rc_all (summary: $summary)"
exit "$rc_all"

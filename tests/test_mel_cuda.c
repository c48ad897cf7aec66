/*
 * test_mel_cuda.c — the GPU log-mel spectrogram (kernels/mel.cu through
 * src/cuda_mel.c) against its CPU twin (src/mel.c) and against
 * openai-whisper's log_mel_spectrogram fixtures (tests/fixtures/mel, made by
 * make_mel.py): random audio of many lengths, real clips, the raw stage and
 * its running max, the batched device-memory entry point, concurrent
 * streams, non-finite input. Max abs error <= 1e-4 on every element; the
 * figures are printed. Every test skips cleanly when the build has no CUDA
 * backend or no device is present.
 *
 * ctest-labels: gpu
 */
#include "mel_internal.h"
#include "support/clips.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define MEL_TOL 1e-4

static int need_cuda(void) {
    if (tolk_cuda_available()) return 1;
#ifdef TOLK_HAVE_CUDA
    tu_skip("no CUDA device");
#else
    tu_skip("built without CUDA");
#endif
    return 0;
}

static tolk_ctx *new_ctx(tolk_device device, int threads) {
    tolk_ctx_params p = tolk_ctx_default_params();
    p.n_threads = threads;
    p.device = device;
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &ctx), TOLK_OK);
    return ctx;
}

/* max |a - b| over raw log10 values after clamping both at floor_v (the
 * values below max - 8 never reach the output, and a float32 FFT resolves
 * them only relative to the frame's energy). */
static double clamped_diff(const float *a, const float *b, size_t n, float floor_v) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = a[i] > floor_v ? a[i] : floor_v, y = b[i] > floor_v ? b[i] : floor_v;
        const double d = fabs(x - y);
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* Random audio of many lengths (short ones exercise repeated reflection),
 * GPU against CPU, full and raw forms, 80 and 128 bins. */
static void test_random_vs_cpu(void) {
    if (!need_cuda()) return;
    const size_t lens[] = {160, 201, 399, 1000, 16000 + 77, TOLK_N_SAMPLES, 1200000};
    tolk_ctx *cpu = new_ctx(TOLK_DEVICE_CPU, 2), *gpu = new_ctx(TOLK_DEVICE_CUDA, 1);
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_device(gpu), TOLK_DEVICE_CUDA);
    tu_seed(3);
    for (int s = 0; s < 2; s++) {
        const int n_mels = s ? 128 : 80;
        tolk_mel *mel = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_mel_new(cpu, n_mels, &mel), TOLK_OK);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            const size_t n = lens[i], cnt = tolk_mel_n_frames(n) * (size_t)n_mels;
            float *x = malloc(n * sizeof *x), *a = malloc(cnt * sizeof *a);
            float *b = malloc(cnt * sizeof *b);
            CU_ASSERT_FATAL(x && a && b);
            tu_fill_uniform(x, n, -0.3f, 0.3f);
            for (size_t j = n / 4; j < n / 2; j++)
                x[j] *= 1e-5f; /* quiet stretch */
            CU_ASSERT_EQUAL(tolk_mel_compute(cpu, mel, x, n, a), TOLK_OK);
            tolk_status st = tolk_mel_compute(gpu, mel, x, n, b);
            CU_ASSERT_EQUAL(st, TOLK_OK);
            if (st != TOLK_OK) printf("\n    %s ", tolk_ctx_last_error(gpu));
            const double err = tu_max_abs_diff(b, a, cnt);
            printf("\n    random n_mels %3d %8zu samples: GPU vs CPU max abs error %.3g ", n_mels,
                   n, err);
            CU_ASSERT(err <= MEL_TOL);
            /* raw stage: values and running max */
            float ma = -INFINITY, mb = 5.0f; /* mb: an earlier, larger max stays */
            CU_ASSERT_EQUAL(tolk_mel_compute_raw(cpu, mel, x, n, a, &ma), TOLK_OK);
            CU_ASSERT_EQUAL(tolk_mel_compute_raw(gpu, mel, x, n, b, &mb), TOLK_OK);
            CU_ASSERT_EQUAL(mb, 5.0f);
            mb = -INFINITY;
            CU_ASSERT_EQUAL(tolk_mel_compute_raw(gpu, mel, x, n, b, &mb), TOLK_OK);
            CU_ASSERT(fabsf(ma - mb) <= 4 * MEL_TOL);
            CU_ASSERT(clamped_diff(b, a, cnt, ma - 8.0f) <= 4 * MEL_TOL);
            free(x);
            free(a);
            free(b);
        }
        tolk_mel_free(mel);
    }
    tolk_ctx_free(cpu);
    tolk_ctx_free(gpu);
}

/* Real clips: GPU against the openai-whisper fixtures and against the CPU. */
static void test_clips(void) {
    if (!need_cuda()) return;
    FILE *f = fopen(tu_src("tests/fixtures/mel/clips.tsv"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    tolk_ctx *cpu = new_ctx(TOLK_DEVICE_CPU, 2), *gpu = new_ctx(TOLK_DEVICE_CUDA, 1);
    tolk_mel *mels[2] = {NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(cpu, 80, &mels[0]), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(cpu, 128, &mels[1]), TOLK_OK);
    char line[1024], name[96], input[256];
    int n_mels, rows = 0;
    size_t n_samples, n_frames;
    if (!fgets(line, sizeof line, f)) line[0] = '\0'; /* header */
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%95[^\t]\t%255[^\t]\t%d\t%zu\t%zu", name, input, &n_mels, &n_samples,
                   &n_frames) != 5)
            continue;
        char rel[600];
        size_t n = 0;
        float *x;
        if (strstr(input, ".npy")) {
            snprintf(rel, sizeof rel, "tests/fixtures/mel/%s", input);
            x = tu_load_npy_s16(tu_src(rel), &n);
        } else {
            snprintf(rel, sizeof rel, "speech/%s", input);
            x = tu_load_flac_s16(tu_data(rel), &n);
        }
        if (!x) {
            tu_skip("%s: input %s not readable", name, input);
            continue;
        }
        snprintf(rel, sizeof rel, "tests/fixtures/mel/%s_%d.npy", name, n_mels);
        int64_t shape[4];
        int nd = 0;
        float *ref = tu_load_npy(tu_src(rel), shape, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        CU_ASSERT_FATAL(nd == 2 && shape[0] == n_mels && (size_t)shape[1] == n_frames);
        const tolk_mel *mel = mels[n_mels == 128];
        float *a = NULL, *b = NULL;
        size_t nfa = 0, nfb = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(cpu, mel, x, n, &a, &nfa), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(gpu, mel, x, n, &b, &nfb), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(nfb, n_frames);
        const size_t cnt = n_frames * (size_t)n_mels;
        const double e_ref = tu_max_abs_diff(b, ref, cnt), e_cpu = tu_max_abs_diff(b, a, cnt);
        printf("\n    %-24s n_mels %3d  GPU vs whisper %.3g  GPU vs CPU %.3g ", name, n_mels, e_ref,
               e_cpu);
        CU_ASSERT(e_ref <= MEL_TOL);
        CU_ASSERT(e_cpu <= MEL_TOL);
        rows++;
        free(a);
        free(b);
        free(ref);
        free(x);
    }
    fclose(f);
    CU_ASSERT(rows >= 5);
    tolk_mel_free(mels[0]);
    tolk_mel_free(mels[1]);
    tolk_ctx_free(cpu);
    tolk_ctx_free(gpu);
}

/* The batched device entry point: 5 signals of 30 s with padded strides,
 * normalised and raw, against the CPU one signal at a time. */
static void test_batched_device(void) {
    if (!need_cuda()) return;
#ifdef TOLK_HAVE_CUDA
    enum { B = 5 };
    const size_t n = TOLK_N_SAMPLES - 123, stride = TOLK_N_SAMPLES + 64;
    const size_t nf = tolk_mel_n_frames(n), ostride = nf + 7;
    tolk_ctx *cpu = new_ctx(TOLK_DEVICE_CPU, 2), *gpu = new_ctx(TOLK_DEVICE_CUDA, 1);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(cpu, 80, &mel), TOLK_OK);
    float *x = calloc(B * stride, sizeof *x);
    float *got = malloc(B * 80 * ostride * sizeof *got), *ref = malloc(nf * 80 * sizeof *ref);
    CU_ASSERT_FATAL(x && got && ref);
    tu_seed(5);
    for (int b = 0; b < B; b++)
        tu_fill_uniform(x + b * stride, n, -0.1f * (b + 1), 0.1f * (b + 1));
    float *d_x = NULL, *d_out = NULL, *d_max = NULL;
    CU_ASSERT_EQUAL_FATAL(cudaSetDevice(0), cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&d_x, B * stride * sizeof(float)), cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&d_out, B * 80 * ostride * sizeof(float)),
                          cudaSuccess);
    CU_ASSERT_EQUAL_FATAL(cudaMalloc((void **)&d_max, B * sizeof(float)), cudaSuccess);
    CU_ASSERT_EQUAL(cudaMemcpy(d_x, x, B * stride * sizeof(float), cudaMemcpyHostToDevice),
                    cudaSuccess);
    for (int normalize = 1; normalize >= 0; normalize--) {
        CU_ASSERT_EQUAL(tolk_cuda_mel_device(gpu, mel, d_x, stride, n, B, d_out, ostride, d_max,
                                             normalize, NULL),
                        TOLK_OK);
        CU_ASSERT_EQUAL(
            cudaMemcpy(got, d_out, B * 80 * ostride * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
        float maxes[B];
        CU_ASSERT_EQUAL(cudaMemcpy(maxes, d_max, sizeof maxes, cudaMemcpyDeviceToHost),
                        cudaSuccess);
        double worst = 0;
        for (int b = 0; b < B; b++) {
            float m = -INFINITY;
            const tolk_status st = normalize
                                       ? tolk_mel_compute(cpu, mel, x + b * stride, n, ref)
                                       : tolk_mel_compute_raw(cpu, mel, x + b * stride, n, ref, &m);
            CU_ASSERT_EQUAL(st, TOLK_OK);
            for (int r = 0; r < 80; r++) {
                const float *g = got + ((size_t)b * 80 + r) * ostride;
                const double e = normalize ? tu_max_abs_diff(g, ref + (size_t)r * nf, nf)
                                           : clamped_diff(g, ref + (size_t)r * nf, nf, m - 8.0f);
                worst = e > worst ? e : worst;
            }
            if (!normalize) CU_ASSERT(fabsf(maxes[b] - m) <= 4 * MEL_TOL);
        }
        printf("\n    batch of %d x 30 s, %s: max abs error vs CPU %.3g ", B,
               normalize ? "normalised" : "raw", worst);
        CU_ASSERT(worst <= (normalize ? MEL_TOL : 4 * MEL_TOL));
    }
    /* bad layouts are refused with a message */
    CU_ASSERT_EQUAL(
        tolk_cuda_mel_device(gpu, mel, d_x, n - 1, n, B, d_out, ostride, d_max, 1, NULL),
        TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        tolk_cuda_mel_device(gpu, mel, d_x, stride, n, B, d_out, nf - 1, d_max, 1, NULL),
        TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        tolk_cuda_mel_device(gpu, mel, d_x, stride, 100, B, d_out, ostride, d_max, 1, NULL),
        TOLK_ERR_EMPTY);
    CU_ASSERT(strlen(tolk_ctx_last_error(gpu)) > 0);
    cudaFree(d_x);
    cudaFree(d_out);
    cudaFree(d_max);
    free(x);
    free(got);
    free(ref);
    tolk_mel_free(mel);
    tolk_ctx_free(cpu);
    tolk_ctx_free(gpu);
#endif
}

/* Non-finite input and too-short input on the GPU: the same statuses as
 * the CPU. */
static void test_errors(void) {
    if (!need_cuda()) return;
    tolk_ctx *gpu = new_ctx(TOLK_DEVICE_CUDA, 1);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(gpu, 80, &mel), TOLK_OK);
    float x[4000], out[80 * 25];
    tu_seed(9);
    tu_fill_uniform(x, 4000, -1, 1);
    CU_ASSERT_EQUAL(tolk_mel_compute(gpu, mel, x, 100, out), TOLK_ERR_EMPTY);
    x[1234] = NAN;
    CU_ASSERT_EQUAL(tolk_mel_compute(gpu, mel, x, 4000, out), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(gpu), "NaN") != NULL);
    x[1234] = INFINITY;
    float run = 1.0f;
    CU_ASSERT_EQUAL(tolk_mel_compute_raw(gpu, mel, x, 4000, out, &run), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(run, 1.0f);
    x[1234] = 0.5f;
    CU_ASSERT_EQUAL(tolk_mel_compute(gpu, mel, x, 4000, out), TOLK_OK); /* recovers */
    memset(x, 0, sizeof x); /* silence: the floor everywhere */
    CU_ASSERT_EQUAL(tolk_mel_compute(gpu, mel, x, 4000, out), TOLK_OK);
    for (int i = 0; i < 80 * 25; i++)
        CU_ASSERT(fabsf(out[i] + 1.5f) < 1e-6f);
    tolk_mel_free(mel);
    tolk_ctx_free(gpu);
}

/* Several threads, each with its own CUDA context, share one tolk_mel. */
typedef struct {
    const tolk_mel *mel;
    const float *x;
    size_t n;
    float *out;
    int status;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CUDA;
    tolk_ctx *ctx = NULL;
    a->status = tolk_ctx_new(&cp, &ctx);
    for (int rep = 0; rep < 4 && a->status == TOLK_OK; rep++)
        a->status = tolk_mel_compute(ctx, a->mel, a->x, a->n, a->out);
    tolk_ctx_free(ctx);
    return NULL;
}

static void test_threads(void) {
    if (!need_cuda()) return;
    enum { N_WORKERS = 4 };
    const size_t n = TOLK_N_SAMPLES, cnt = tolk_mel_n_frames(n) * 80;
    float *x = malloc(n * sizeof *x), *ref = malloc(cnt * sizeof *ref);
    float *outs = malloc(N_WORKERS * cnt * sizeof *outs);
    CU_ASSERT_FATAL(x && ref && outs);
    tu_seed(13);
    tu_fill_uniform(x, n, -0.5f, 0.5f);
    tolk_ctx *gpu = new_ctx(TOLK_DEVICE_CUDA, 1);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(gpu, 80, &mel), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_compute(gpu, mel, x, n, ref), TOLK_OK);
    pthread_t th[N_WORKERS];
    worker_arg args[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        args[i] = (worker_arg){mel, x, n, outs + (size_t)i * cnt, -1};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N_WORKERS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].status, TOLK_OK);
        CU_ASSERT(memcmp(args[i].out, ref, cnt * sizeof *ref) == 0); /* deterministic */
    }
    tolk_mel_free(mel);
    tolk_ctx_free(gpu);
    free(x);
    free(ref);
    free(outs);
}

int main(void) {
    CU_TestInfo tests[] = {{"random_vs_cpu", test_random_vs_cpu},
                           {"clips", test_clips},
                           {"batched_device", test_batched_device},
                           {"errors", test_errors},
                           {"threads", test_threads},
                           CU_TEST_INFO_NULL};
    tu_add_suite("mel_cuda", tests);
    return tu_run();
}

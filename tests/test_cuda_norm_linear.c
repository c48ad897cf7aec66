/*
 * test_cuda_norm_linear.c — backend.h norm_linear on CUDA (the decoder
 * step's LayerNorm inside the product reading it: kernels/norm_linear.cu)
 * against its CPU twin tolk_host_norm_linear (src/backend_host_half.c),
 * from a table of cases: row counts 1 .. 16, Whisper's widths and odd
 * ones (K = 96: rows 0 mod 128 bytes apart in shared memory), column counts
 * that are no multiple of 8 and large enough for each column share per
 * block (1, 2, 4, 8 tiles of 8 columns on the emulator's 132 SMs), strided
 * x and y, float32 and float16 outputs, with and without bias, unit and
 * random gamma and beta, the exact GELU. Also: what it refuses (17 rows, weights that are not
 * float16, a width that is no multiple of 32, unknown flags, no gamma) and that a row's
 * result does not depend on the other rows (one row alone and the same row
 * among 16: bit for bit).
 *
 * Bound: both sides round the normalised rows to float16 (the GPU's
 * statistics differ in the last float32 bits, which can move a rounding
 * by one unit: ~2^-11 of one input of the product), then sum in float32 in
 * different orders: |got - twin| <= 2e-3 + 2e-3 |twin|, plus one float16
 * unit of the result for a float16 y.
 *
 * Without a CUDA device (or in a CPU-only build) every test skips.
 *
 * ctest-labels: gpu
 */
#include "backend.h"
#include "backend_host_half.h"
#include "internal.h"
#include "testutil.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "support/cuda_guard.h"

typedef struct nl_case {
    int M, K, N, flags;
    int bias;   /* a bias (else NULL) */
    int affine; /* random gamma and beta (else 1 and 0) */
    int ldx_pad, ldy_pad;
} nl_case;

static const nl_case CASES[] = {
    {1, 384, 1152, 0, 1, 1, 0, 0}, /* tiny qkv, 1 row */
    {5, 512, 512, 0, 1, 1, 8, 4},  /* base cross q, 5 beams */
    {16, 384, 1536, TOLK_NORM_LINEAR_Y_F16 | TOLK_NORM_LINEAR_GELU, 1, 1, 0, 0}, /* fc1 */
    {3, 64, 1003, 0, 0, 1, 0, 3},                        /* logits-like: no bias */
    {7, 96, 77, 0, 0, 0, 4, 0},                          /* odd width */
    {16, 1280, 300, TOLK_NORM_LINEAR_Y_F16, 1, 1, 0, 2}, /* large-v3 width */
    {2, 64, 5000, TOLK_NORM_LINEAR_GELU, 1, 1, 0, 0},    /* 2 tiles a block */
    {9, 64, 9000, 0, 1, 1, 0, 0},                        /* 4 tiles a block */
    {4, 64, 17003, TOLK_NORM_LINEAR_Y_F16, 0, 1, 0, 0},  /* 8 tiles a block */
};

typedef struct env {
    tolk_ctx *ctx;
    tolk_backend *cpu, *gpu;
} env;

static void *up(env *e, const void *h, size_t bytes) {
    void *d = e->gpu->alloc(e->ctx, e->gpu, bytes);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_EQUAL_FATAL(e->gpu->upload(e->ctx, e->gpu, d, h, bytes), TOLK_OK);
    return d;
}

static float *rnd_f(size_t n, float lo, float hi) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    CU_ASSERT_FATAL(f != NULL);
    for (size_t i = 0; i < n; i++)
        f[i] = tu_uniform(lo, hi);
    return f;
}

/* A [N, K] weight stored as dt, prepared on both backends. */
static void weight_pair(env *e, int N, int K, tolk_dtype dt, tolk_bweight *wc, tolk_bweight *wg,
                        void **host) {
    const size_t n = (size_t)N * (size_t)K;
    float *f = rnd_f(n, -0.1f, 0.1f);
    void *data = malloc(n * tolk_dtype_size(dt));
    CU_ASSERT_FATAL(data != NULL);
    for (size_t i = 0; i < n; i++)
        if (dt == TOLK_DT_F16)
            ((uint16_t *)data)[i] = tolk_f32_to_f16(f[i]);
        else
            ((float *)data)[i] = f[i];
    free(f);
    tolk_tensor t = {.name = (char *)"w", .dtype = dt, .ndim = 2, .shape = {N, K}, .data = data};
    const tolk_tensor *parts[1] = {&t};
    CU_ASSERT_EQUAL_FATAL(e->cpu->weight_prepare(e->ctx, e->cpu, parts, 1, wc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(e->gpu->weight_prepare(e->ctx, e->gpu, parts, 1, wg), TOLK_OK);
    *host = data; /* the CPU's float16 weight may point into it */
}

/* y's element i as a float (float16 or float32 storage). */
static double elem(const void *y, int y16, size_t i) {
    return y16 ? tolk_f16_to_f32(((const uint16_t *)y)[i]) : ((const float *)y)[i];
}

static void run_case(env *e, const nl_case *c) {
    const size_t M = (size_t)c->M, K = (size_t)c->K, N = (size_t)c->N;
    const size_t ldx = K + (size_t)c->ldx_pad, ldy = N + (size_t)c->ldy_pad;
    const int y16 = (c->flags & TOLK_NORM_LINEAR_Y_F16) != 0;
    const size_t es = y16 ? 2 : 4, ybytes = M * ldy * es;
    tolk_bweight wc, wg;
    void *wh;
    weight_pair(e, c->N, c->K, TOLK_DT_F16, &wc, &wg, &wh);
    float *x = rnd_f(M * ldx, -3, 3), *g = rnd_f(K, 0.5f, 1.5f), *be = rnd_f(K, -1, 1);
    for (size_t k = 0; k < K && !c->affine; k++)
        g[k] = 1.0f, be[k] = 0.0f;
    float *bias = rnd_f(N, -1, 1);
    for (size_t r = 0; r < M; r++) /* rows with an offset and a scale of their own */
        for (size_t k = 0; k < K; k++)
            x[r * ldx + k] = x[r * ldx + k] * (1.0f + (float)r) + 0.5f * (float)r;
    unsigned char *yc = malloc(ybytes), *yg = malloc(ybytes);
    CU_ASSERT_FATAL(yc && yg);
    memset(yc, 0x55, ybytes); /* the gaps must keep this on both sides */
    float *dx = up(e, x, M * ldx * 4), *dg = up(e, g, K * 4), *dbe = up(e, be, K * 4);
    float *db = up(e, bias, N * 4);
    void *dy = up(e, yc, ybytes);
    const float *hg = g, *hb = be, *gg = dg, *gb = dbe;
    CU_ASSERT_EQUAL(tolk_host_norm_linear(e->ctx, e->cpu, yc, ldy, x, ldx, M, hg, hb, 1e-5f, &wc,
                                          c->bias ? bias : NULL, c->flags),
                    TOLK_OK);
    CU_ASSERT_EQUAL(e->gpu->norm_linear(e->ctx, e->gpu, dy, ldy, dx, ldx, M, gg, gb, 1e-5f, &wg,
                                        c->bias ? db : NULL, c->flags),
                    TOLK_OK);
    CU_ASSERT_EQUAL(e->gpu->download(e->ctx, e->gpu, yg, dy, ybytes), TOLK_OK);
    size_t bad = 0, gap_bad = 0;
    double worst = 0;
    for (size_t r = 0; r < M; r++)
        for (size_t n = 0; n < ldy; n++) {
            const size_t i = r * ldy + n;
            if (n >= N) {
                gap_bad += memcmp(yc + i * es, yg + i * es, es) != 0;
                continue;
            }
            const double t = elem(yc, y16, i), v = elem(yg, y16, i);
            const double err = fabs(v - t), tol = 2e-3 + (2e-3 + (y16 ? 1.0 / 1024 : 0)) * fabs(t);
            if (!(err <= tol)) bad++;
            if (err > worst) worst = err;
        }
    if (bad || gap_bad)
        fprintf(stderr,
                "norm_linear M=%zu K=%zu N=%zu flags=%d: %zu of %zu off (worst %.3g), %zu "
                "gap elements written\n",
                M, K, N, c->flags, bad, M * N, worst, gap_bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(gap_bad, 0);

    /* batch invariance: every row alone gives its bits among the others */
    if (c->M > 1) {
        unsigned char *y1 = malloc(ldy * es);
        CU_ASSERT_FATAL(y1 != NULL);
        size_t diff = 0;
        for (size_t r = 0; r < M; r += M - 1) { /* the first and the last row */
            CU_ASSERT_EQUAL(e->gpu->norm_linear(e->ctx, e->gpu, dy, ldy, dx + r * ldx, ldx, 1, gg,
                                                gb, 1e-5f, &wg, c->bias ? db : NULL, c->flags),
                            TOLK_OK);
            CU_ASSERT_EQUAL(e->gpu->download(e->ctx, e->gpu, y1, dy, N * es), TOLK_OK);
            diff += memcmp(y1, yg + r * ldy * es, N * es) != 0;
        }
        CU_ASSERT_EQUAL(diff, 0);
        free(y1);
    }
    void *dev[] = {dx, dg, dbe, db, dy};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        e->gpu->free(e->gpu, dev[i]);
    e->cpu->weight_free(e->cpu, &wc);
    e->gpu->weight_free(e->gpu, &wg);
    free(wh), free(x), free(g), free(be), free(bias), free(yc), free(yg);
}

static void env_open(env *e) {
    memset(e, 0, sizeof *e);
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &e->ctx), TOLK_OK);
    tolk_backend_params bp = {.keep_f16 = 1};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(e->ctx, &bp, &e->cpu), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cuda_new(e->ctx, &bp, &e->gpu), TOLK_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->gpu->norm_linear);
    CU_ASSERT_PTR_NULL(e->cpu->norm_linear); /* the CPU network keeps its two ops */
}

static void env_close(env *e) {
    e->gpu->destroy(e->gpu);
    e->cpu->destroy(e->cpu);
    tolk_ctx_free(e->ctx);
}

static void test_cases(void) {
    NEED_DEVICE();
    env e;
    env_open(&e);
    tu_seed(1900);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        run_case(&e, &CASES[i]);
    env_close(&e);
}

static void test_refusals(void) {
    NEED_DEVICE();
    env e;
    env_open(&e);
    tu_seed(1901);
    tolk_bweight wc, wg, wnc, wng;
    void *h1, *h3;
    weight_pair(&e, 40, 64, TOLK_DT_F16, &wc, &wg, &h1);
    weight_pair(&e, 40, 40, TOLK_DT_F16, &wnc, &wng, &h3); /* width not a multiple of 32 */
    tolk_bweight wbf = wg; /* read as bfloat16: refused before anything reads it */
    wbf.dtype = TOLK_DT_BF16;
    float *x = rnd_f(17 * 64, -1, 1), *dx = up(&e, x, 17 * 64 * 4);
    float *gam = rnd_f(64, 1, 1), *dgam = up(&e, gam, 64 * 4);
    float *dy = e.gpu->alloc(e.ctx, e.gpu, 17 * 40 * 4);
    CU_ASSERT_FATAL(dy != NULL);
    const tolk_backend *g = e.gpu;
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 64, 17, dgam, dgam, 1e-5f, &wg, NULL, 0),
                    TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(e.ctx), "17 rows"));
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 64, 2, dgam, dgam, 1e-5f, &wbf, NULL, 0),
                    TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 40, 2, dgam, dgam, 1e-5f, &wng, NULL, 0),
                    TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 64, 2, dgam, dgam, 1e-5f, &wg, NULL, 8),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 39, dx, 64, 2, dgam, dgam, 1e-5f, &wg, NULL, 0),
                    TOLK_ERR_INVALID_ARG); /* ldy < N */
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 64, 2, NULL, dgam, 1e-5f, &wg, NULL, 0),
                    TOLK_ERR_INVALID_ARG); /* gamma and beta are required, as for layernorm */
    CU_ASSERT_EQUAL(g->norm_linear(e.ctx, g, dy, 40, dx, 64, 0, dgam, dgam, 1e-5f, &wg, NULL, 0),
                    TOLK_OK); /* nothing to do */
    /* the twin refuses unknown flags too */
    float y[40];
    CU_ASSERT_EQUAL(
        tolk_host_norm_linear(e.ctx, e.cpu, y, 40, x, 64, 1, gam, gam, 1e-5f, &wc, NULL, 8),
        TOLK_ERR_INVALID_ARG);
    g->free(g, dx), g->free(g, dy), g->free(g, dgam);
    tolk_bweight *ws[] = {&wc, &wnc};
    tolk_bweight *wgs[] = {&wg, &wng};
    for (int i = 0; i < 2; i++) {
        e.cpu->weight_free(e.cpu, ws[i]);
        g->weight_free(g, wgs[i]);
    }
    free(h1), free(h3), free(x), free(gam);
    env_close(&e);
}

int main(void) {
    CU_TestInfo tests[] = {{"cases", test_cases}, {"refusals", test_refusals}, CU_TEST_INFO_NULL};
    tu_add_suite("cuda_norm_linear", tests);
    return tu_run();
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    return tu_run_without_cuda("cuda_norm_linear");
}

#endif

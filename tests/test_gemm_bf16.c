/*
 * test_gemm_bf16.c — the bf16 GEMM of gemm_bf16.c (Y = X W^T + bias, the
 * product of torch's linear / cblas_sgemm NoTrans,Trans) against plain
 * reference loops: double accumulation over bf16-rounded inputs (must
 * match to ~1e-5 of max |Y|) and the exact float32 product (bf16
 * tolerance); odd shapes, M = 1, NULL bias, float16 weights, the guard
 * area around Y (ldY > N), padded X rows (ldX > K), the portable path, and argument checks.
 */
#include "gemm_cpu.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 1234.5f

/* Reference: Y[m, n] = sum_k bf16(X[m, k]) bf16(W[n, k]) (+ bias), double. */
static void ref_bf16(const float *X, int ldX, int M, int K, const float *W, int N,
                     const float *bias, float *Y) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)tolk_bf16_to_f32(tolk_f32_to_bf16(X[(size_t)m * ldX + k])) *
                     (double)tolk_bf16_to_f32(tolk_f32_to_bf16(W[(size_t)n * K + k]));
            Y[(size_t)m * N + n] = (float)s;
        }
}

/* Exact: the same in double over the unrounded inputs. */
static void ref_exact(const float *X, int ldX, int M, int K, const float *W, int N,
                      const float *bias, float *Y) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)X[(size_t)m * ldX + k] * W[(size_t)n * K + k];
            Y[(size_t)m * N + n] = (float)s;
        }
}

/* Run one shape through the packed GEMM with ldY = N + pad, check the
 * results and that the padding columns and the rows after Y are intact. */
static void check_shape(int M, int N, int K, int use_bias, int threads, unsigned flags) {
    int ldX = K + (K % 3) * 3; /* row padding of X on some shapes */
    float *X = malloc((size_t)M * ldX * sizeof(float));
    float *W = malloc((size_t)N * K * sizeof(float));
    float *bias = malloc((size_t)N * sizeof(float));
    int pad = 7, ldY = N + pad;
    size_t ysz = (size_t)(M + 1) * ldY; /* one guard row after Y */
    float *Y = malloc(ysz * sizeof(float));
    float *R = malloc((size_t)M * N * sizeof(float));
    float *E = malloc((size_t)M * N * sizeof(float));
    float *G = malloc((size_t)M * N * sizeof(float));
    size_t pbytes = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_gemm_bf16_packed_size(N, K, &pbytes), TOLK_OK);
    void *P = aligned_alloc(64, (pbytes + 63) / 64 * 64);
    CU_ASSERT_FATAL(X && W && bias && Y && R && E && G && P);
    tu_fill_uniform(X, (size_t)M * ldX, -1.0f, 1.0f);
    tu_fill_uniform(W, (size_t)N * K, -0.5f, 0.5f);
    tu_fill_uniform(bias, (size_t)N, -2.0f, 2.0f);
    int acc = (flags & TOLK_GEMM_ACCUMULATE) != 0;
    /* accumulate: Y starts with small exact values, subtracted after */
#define Y0(m, n) (acc ? (float)(((m) + 2 * (n)) % 5) * 0.25f : 0.0f)
    for (size_t i = 0; i < ysz; i++)
        Y[i] = GUARD;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            if (acc) Y[(size_t)m * ldY + n] = Y0(m, n);
    CU_ASSERT_EQUAL_FATAL(tolk_gemm_bf16_pack(NULL, W, TOLK_GEMM_SRC_F32, N, K, P, pbytes),
                          TOLK_OK);
    const float *b = use_bias ? bias : NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_gemm_bf16_ex(NULL, X, M, K, ldX, P, N, b, Y, ldY, threads, flags),
                          TOLK_OK);
    int guard_ok = 1;
    for (int m = 0; m <= M; m++)
        for (int n = 0; n < ldY; n++) {
            float v = Y[(size_t)m * ldY + n];
            if (m < M && n < N)
                G[(size_t)m * N + n] = v - Y0(m, n);
            else if (v != GUARD)
                guard_ok = 0;
        }
    CU_ASSERT(guard_ok);
    ref_bf16(X, ldX, M, K, W, N, b, R);
    ref_exact(X, ldX, M, K, W, N, b, E);
    double rel = tu_max_rel_diff(G, R, (size_t)M * N);
    double rel_exact = tu_max_rel_diff(G, E, (size_t)M * N);
    /* bf16 keeps 8 significant bits: each product is off by <= ~2^-8 in
     * relative terms; random signs make the sum error ~ 2^-8 sqrt(K) |x||w|,
     * a few 1e-3 of max |Y|. */
    if (rel > 1e-5 || rel_exact > 2e-2)
        fprintf(stderr, "  M %d N %d K %d bias %d thr %d flags %u: rel %.3g exact %.3g\n", M, N, K,
                use_bias, threads, flags, rel, rel_exact);
    CU_ASSERT(rel <= 1e-5);
    CU_ASSERT(rel_exact <= 2e-2);
    free(X);
    free(W);
    free(bias);
    free(Y);
    free(R);
    free(E);
    free(G);
    free(P);
}

static const int shapes[][3] = {
    /* M, N, K */
    {1, 1, 1},      {1, 33, 7},     {1, 517, 512}, {5, 100, 64},   {8, 64, 129},
    {3, 31, 2},     {12, 32, 32},   {13, 65, 300}, {25, 47, 513},  {200, 96, 256},
    {197, 130, 77}, {64, 1000, 31}, {7, 17, 1025}, {400, 70, 600},
};

static void run_all(unsigned flags) {
    tu_seed(flags ? 77 : 42);
    int n = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < n; i++) {
        check_shape(shapes[i][0], shapes[i][1], shapes[i][2], i % 3 != 1, 1, flags);
        check_shape(shapes[i][0], shapes[i][1], shapes[i][2], i % 2, 2, flags);
    }
}

static void test_native(void) {
    if (!tolk_gemm_bf16_native()) {
        tu_skip("no AVX-512 BF16 on this CPU (or TOLK_NO_AVX512 set)");
        return;
    }
    run_all(0);
}

/* Y += X W^T + bias (the residual / accumulate form), both paths. */
static void test_accumulate(void) {
    tu_seed(11);
    for (int port = 0; port < 2; port++) {
        unsigned f = TOLK_GEMM_ACCUMULATE | (port ? TOLK_GEMM_FORCE_PORTABLE : 0);
        if (!port && !tolk_gemm_bf16_native()) continue;
        check_shape(1, 70, 33, 1, 1, f);
        check_shape(29, 100, 600, 1, 2, f);
        check_shape(13, 33, 257, 0, 2, f);
    }
}

static void test_portable(void) {
    run_all(TOLK_GEMM_FORCE_PORTABLE);
}

/* Whisper-like encoder shape, several threads: checks the task split. */
static void test_large(void) {
    tu_seed(5);
    check_shape(301, 384, 520, 1, 2, 0);
    check_shape(301, 384, 520, 1, 3, 0);
}

static void test_rounding(void) {
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(-2.0f), 0xc000);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1.0) */
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3 * 2^-8 is a tie between 1 + 2^-7 (odd) and 1 + 2^-6: up */
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(INFINITY), 0x7f80);
    uint16_t nan = tolk_f32_to_bf16(NAN);
    CU_ASSERT((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
    CU_ASSERT_EQUAL(tolk_bf16_to_f32(0x3f82), 1.0f + 0x1p-6f);
}

/* float16 weights pack to the same bf16 as their float32 values. */
static void test_pack_f16(void) {
    enum { N = 37, K = 11 };
    uint16_t h[N * K];
    float f[N * K];
    tu_seed(9);
    for (int i = 0; i < N * K; i++) {
        /* random half bits, no inf/NaN; includes subnormals */
        uint16_t v = (uint16_t)(tu_uniform(0.0f, 65536.0f));
        if (((v >> 10) & 0x1f) == 0x1f) v &= 0xbfff;
        h[i] = v;
        uint32_t s = (v & 0x8000u) << 16, e = (v >> 10) & 0x1f, m = v & 0x3ff;
        f[i] = (s ? -1.0f : 1.0f) *
               (e ? ldexpf((float)(m | 0x400), (int)e - 25) : ldexpf((float)m, -24));
    }
    size_t bytes = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_gemm_bf16_packed_size(N, K, &bytes), TOLK_OK);
    CU_ASSERT_EQUAL(bytes, (size_t)2 * 6 * 32 * 4);
    uint32_t *a = malloc(bytes), *b = malloc(bytes);
    CU_ASSERT_FATAL(a && b);
    memset(a, 0xaa, bytes);
    memset(b, 0x55, bytes);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(NULL, h, TOLK_GEMM_SRC_F16, N, K, a, bytes), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(NULL, f, TOLK_GEMM_SRC_F32, N, K, b, bytes), TOLK_OK);
    CU_ASSERT(memcmp(a, b, bytes) == 0);
    /* layout: word (panel 1, pair 2, column 3) = W[35][4], W[35][5] */
    uint32_t w = b[(size_t)1 * 6 * 32 + 2 * 32 + 3];
    CU_ASSERT_EQUAL(w & 0xffff, tolk_f32_to_bf16(f[35 * K + 4]));
    CU_ASSERT_EQUAL(w >> 16, tolk_f32_to_bf16(f[35 * K + 5]));
    /* odd K tail and rows past N are zero */
    CU_ASSERT_EQUAL(b[(size_t)1 * 6 * 32 + 5 * 32 + 4] >> 16, 0u);
    CU_ASSERT_EQUAL(b[(size_t)1 * 6 * 32 + 0 * 32 + 5], 0u);
    free(a);
    free(b);
}

static void test_args(void) {
    size_t bytes;
    float x[4] = {0}, y[4];
    uint32_t p[64] = {0};
    CU_ASSERT_EQUAL(tolk_gemm_bf16_packed_size(0, 4, &bytes), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_packed_size(4, -1, &bytes), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_packed_size(4, 4, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_packed_size(INT32_MAX, INT32_MAX, &bytes),
                    sizeof(size_t) > 4 ? TOLK_OK : TOLK_ERR_NOMEM);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(NULL, x, TOLK_GEMM_SRC_F32, 1, 4, p, 8),
                    TOLK_ERR_INVALID_ARG); /* too small */
    CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(NULL, x, (tolk_gemm_src)7, 1, 4, p, sizeof p),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(NULL, x, TOLK_GEMM_SRC_F32, 1, 4, p, sizeof p), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, 1, 4, 3, p, 1, NULL, y, 1, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, 1, 4, 4, p, 2, NULL, y, 1, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, 1, 4, 4, p, 1, NULL, y, 1, 0), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, NULL, 1, 4, 4, p, 1, NULL, y, 1, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, -1, 4, 4, p, 1, NULL, y, 1, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, 0, 4, 4, p, 1, NULL, y, 1, 1), TOLK_OK);
    y[0] = 3.0f;
    CU_ASSERT_EQUAL(tolk_gemm_bf16(NULL, x, 1, 4, 4, p, 1, NULL, y, 1, 1), TOLK_OK);
    CU_ASSERT_EQUAL(y[0], 0.0f);
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_gemm_bf16(ctx, x, 1, 4, 4, p, 1, NULL, y, 0, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "gemm_bf16") != NULL);
    tolk_ctx_free(ctx);
}

int main(void) {
    static CU_TestInfo tests[] = {
        {"rounding", test_rounding},
        {"pack_f16", test_pack_f16},
        {"native", test_native},
        {"portable", test_portable},
        {"accumulate", test_accumulate},
        {"large", test_large},
        {"args", test_args},
        CU_TEST_INFO_NULL,
    };
    tu_add_suite("gemm_bf16", tests);
    return tu_run();
}

/*
 * test_backend_cpu.c — every entry of the CPU backend op table (backend.h)
 * against a plain reference loop (double accumulation) on random inputs,
 * with sizes that are not multiples of any tile or block, row strides wider
 * than the rows, every weight dtype, both f16 modes (widened / on the fly),
 * both attention paths (few queries; sgemm row blocks), causal masks, and
 * argument validation. The bf16 mode (packed weights, AVX-512 BF16 GEMM
 * for M >= 2) is checked against the same loop on bf16-rounded inputs.
 */
#include "backend.h"
#include "gemm_cpu.h"
#include "testutil.h"
#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tolk_ctx *g_ctx;

/* ---- helpers ------------------------------------------------------------ */

static float *rnd(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof(float));
    tu_fill_uniform(p, n, lo, hi);
    return p;
}

static tolk_backend *make_be(int keep_f16) {
    tolk_backend *be = NULL;
    tolk_backend_params bp = {.keep_f16 = keep_f16};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(g_ctx, &bp, &be), TOLK_OK);
    return be;
}

static tolk_tensor tensor2(const char *name, tolk_dtype dt, int64_t r, int64_t c,
                           const void *data) {
    tolk_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = 2;
    t.shape[0] = r;
    t.shape[1] = c;
    t.data = data;
    return t;
}

/* Reference y[m, n] = (acc ? y : 0) + sum_k x[m, k] W[n, k] + b[n]. */
static void ref_linear(float *y, size_t ldy, const float *x, size_t ldx, size_t M, const float *W,
                       size_t N, size_t K, const float *b, int acc) {
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = acc ? y[m * ldy + n] : 0.0;
            for (size_t k = 0; k < K; k++)
                s += (double)x[m * ldx + k] * W[n * K + k];
            if (b) s += b[n];
            y[m * ldy + n] = (float)s;
        }
}

/* Relative error of the M x N block of a vs b (both with stride ld). */
static double rel_err2d(const float *a, const float *b, size_t M, size_t N, size_t ld) {
    double mx = 0.0, mb = 0.0;
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double d = fabs((double)a[m * ld + n] - b[m * ld + n]);
            if (d > mx || d != d) mx = d;
            if (fabs(b[m * ld + n]) > mb) mb = fabs(b[m * ld + n]);
        }
    return mb > 0 ? mx / mb : mx;
}

/* ---- linear ------------------------------------------------------------- */

/* One linear case: W [N, K] of dtype dt, x [M, K] (stride K + 3), y stride
 * N + 5, bias or not, accumulate or not. */
static void linear_case(tolk_backend *be, tolk_dtype dt, size_t M, size_t N, size_t K, int bias,
                        int acc) {
    size_t ldx = K + 3, ldy = N + 5;
    float *W = rnd(N * K, -1, 1), *x = rnd(M * ldx, -1, 1), *b = rnd(N, -1, 1);
    float *y = rnd(M * ldy, -1, 1), *yr = malloc(M * ldy * sizeof(float));
    uint16_t *W16 = malloc(N * K * 2);
    int8_t *W8 = malloc(N * K);
    float *scale = malloc(N * sizeof(float));
    const void *data = W;
    for (size_t i = 0; i < N * K; i++) {
        if (dt == TOLK_DT_F16) {
            W16[i] = tu_f2h(W[i]);
            W[i] = tu_h2f(W16[i]);
        } else if (dt == TOLK_DT_BF16) {
            uint32_t u;
            memcpy(&u, &W[i], 4);
            W16[i] = (uint16_t)(u >> 16);
            u = (uint32_t)W16[i] << 16;
            memcpy(&W[i], &u, 4);
        }
    }
    if (dt == TOLK_DT_F16 || dt == TOLK_DT_BF16) data = W16;
    if (dt == TOLK_DT_I8) {
        for (size_t n = 0; n < N; n++) {
            scale[n] = 127.0f / (1.0f + (float)n * 0.01f); /* q = w * scale */
            for (size_t k = 0; k < K; k++) {
                long q = lrintf(W[n * K + k] * scale[n] * 0.99f);
                W8[n * K + k] = (int8_t)q;
                W[n * K + k] = (float)q / scale[n];
            }
        }
        data = W8;
    }
    memcpy(yr, y, M * ldy * sizeof(float));
    tolk_tensor t = tensor2("w", dt, (int64_t)N, (int64_t)K, data);
    t.scale = dt == TOLK_DT_I8 ? scale : NULL;
    const tolk_tensor *parts[1] = {&t};
    tolk_bweight bw;
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &bw), TOLK_OK);
    CU_ASSERT_EQUAL(bw.rows, (int64_t)N);
    CU_ASSERT_EQUAL(bw.cols, (int64_t)K);
    CU_ASSERT_EQUAL(be->linear(g_ctx, be, y, ldy, x, ldx, M, &bw, bias ? b : NULL, acc), TOLK_OK);
    ref_linear(yr, ldy, x, ldx, M, W, N, K, bias ? b : NULL, acc);
    double e = rel_err2d(y, yr, M, N, ldy);
    if (!(e < 2e-6))
        printf("\n  linear dt=%d keep=%d M=%zu N=%zu K=%zu bias=%d acc=%d: rel err %.2e\n", (int)dt,
               (int)bw.dtype, M, N, K, bias, acc, e);
    CU_ASSERT(e < 2e-6);
    /* the padding between rows is untouched */
    for (size_t m = 0; m < M; m++)
        for (size_t n = N; n < ldy; n++)
            CU_ASSERT_EQUAL(y[m * ldy + n], yr[m * ldy + n]);
    be->weight_free(be, &bw);
    free(W), free(x), free(b), free(y), free(yr), free(W16), free(W8), free(scale);
}

static void test_linear(void) {
    tu_seed(1);
    for (int keep = 0; keep <= 1; keep++) {
        tolk_backend *be = make_be(keep);
        const size_t Ms[] = {1, 3, 8, 9, 37};
        for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
            for (int dt = TOLK_DT_F32; dt <= TOLK_DT_I8; dt++)
                for (int bias = 0; bias <= 1; bias++)
                    for (int acc = 0; acc <= 1; acc++)
                        linear_case(be, (tolk_dtype)dt, Ms[i], 67, 45, bias, acc);
        /* f16 in several converted chunks (chunk = 2^20 / K rows): with one
         * thread the whole width is one piece of two chunks */
        linear_case(be, TOLK_DT_F16, 11, 1100, 1001, 1, 0);
        linear_case(be, TOLK_DT_F16, 2, 1100, 1001, 1, 1);
        tolk_ctx *two = g_ctx, *one = NULL;
        tolk_ctx_params p = tolk_ctx_default_params();
        p.n_threads = 1;
        CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &one), TOLK_OK);
        g_ctx = one;
        linear_case(be, TOLK_DT_F16, 11, 1100, 1001, 1, 1);
        linear_case(be, TOLK_DT_F32, 5, 67, 45, 1, 1);
        g_ctx = two;
        tolk_ctx_free(one);
        be->destroy(be);
    }
}

/* TOLK_LINEAR_ROW_EXACT: a row's result is bit-identical whatever the
 * other rows and their number (the engine's batches) — each row of an
 * M-row product against the same row alone (M = 1), for f16 and f32
 * weights, widths with and without a tail past the 16-element blocks, with
 * bias and accumulation; the plain products (no flag) stay within the
 * reference tolerance. */
static void test_linear_row_exact(void) {
    tu_seed(5);
    tolk_backend *be = make_be(1), *be2 = NULL; /* be2: the AVX2 kernels only */
    tolk_backend_params bp2 = {.keep_f16 = 1, .no_avx512 = 1};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(g_ctx, &bp2, &be2), TOLK_OK);
    const size_t Ks[] = {64, 77, 512};
    const size_t Ms[] = {2, 3, 4, 5, 8, 9, 17, 40, 130};
    for (int f16 = 0; f16 <= 1; f16++)
        for (size_t ki = 0; ki < 3; ki++) {
            const size_t N = 150, K = Ks[ki], ldx = K + 2, ldy = N + 3;
            float *W = rnd(N * K, -1, 1), *b = rnd(N, -1, 1);
            uint16_t *W16 = malloc(N * K * 2);
            for (size_t i = 0; i < N * K; i++)
                W16[i] = tu_f2h(W[i]);
            tolk_tensor t = tensor2("w", f16 ? TOLK_DT_F16 : TOLK_DT_F32, (int64_t)N, (int64_t)K,
                                    f16 ? (const void *)W16 : (const void *)W);
            const tolk_tensor *parts[1] = {&t};
            tolk_bweight bw, bw2;
            CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &bw), TOLK_OK);
            CU_ASSERT_EQUAL_FATAL(be2->weight_prepare(g_ctx, be2, parts, 1, &bw2), TOLK_OK);
            float *x = rnd(130 * ldx, -1, 1), *y0 = rnd(130 * ldy, -1, 1);
            float *one = malloc(ldy * sizeof(float)), *y = malloc(130 * ldy * sizeof(float));
            int exact = 1;
            for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
                size_t M = Ms[mi];
                for (int acc = 0; acc <= 1; acc++) {
                    memcpy(y, y0, M * ldy * sizeof(float));
                    int fl = TOLK_LINEAR_ROW_EXACT | (acc ? TOLK_LINEAR_ACCUMULATE : 0);
                    CU_ASSERT_EQUAL(be->linear(g_ctx, be, y, ldy, x, ldx, M, &bw, b, fl), TOLK_OK);
                    for (size_t m = 0; m < M; m++) {
                        memcpy(one, y0 + m * ldy, ldy * sizeof(float));
                        CU_ASSERT_EQUAL(
                            be->linear(g_ctx, be, one, ldy, x + m * ldx, ldx, 1, &bw, b, fl),
                            TOLK_OK);
                        if (memcmp(one, y + m * ldy, N * sizeof(float)) != 0) exact = 0;
                    }
                    /* the AVX-512 tiles (dot_avx512.c) equal the AVX2 kernels */
                    float *y2 = malloc(M * ldy * sizeof(float));
                    memcpy(y2, y0, M * ldy * sizeof(float));
                    CU_ASSERT_EQUAL(be2->linear(g_ctx, be2, y2, ldy, x, ldx, M, &bw2, b, fl),
                                    TOLK_OK);
                    for (size_t m = 0; m < M; m++)
                        if (memcmp(y2 + m * ldy, y + m * ldy, N * sizeof(float)) != 0) exact = 0;
                    free(y2);
                }
            }
            if (!exact) printf("\n  row-exact linear differs (f16 %d, K %zu)\n", f16, K);
            CU_ASSERT(exact);
            be->weight_free(be, &bw);
            be2->weight_free(be2, &bw2);
            free(W), free(b), free(W16), free(x), free(y0), free(one), free(y);
        }
    /* and the reference tolerance with the flag */
    for (size_t M = 1; M <= 40; M += 13)
        linear_case(be, TOLK_DT_F16, M, 67, 45, 1, TOLK_LINEAR_ROW_EXACT | TOLK_LINEAR_ACCUMULATE);
    be->destroy(be);
    be2->destroy(be2);
}

/* ---- linear, bf16 mode ----------------------------------------------------- */

/* One linear of a bf16-mode backend: W [N, K] float16 (in place, packed)
 * or float32 (copied, packed); x stride K + 3, y stride N + 5. M >= 2 with
 * native bf16: y matches the double-accumulated product of bf16-rounded x
 * and W (1e-5 relative) and the float32 product within bf16 precision;
 * otherwise (one row / no native bf16) the exact 2e-6 of linear_case. */
static void linear_bf16_case(tolk_backend *be, tolk_dtype dt, size_t M, size_t N, size_t K,
                             int bias, int acc) {
    size_t ldx = K + 3, ldy = N + 5;
    float *W = rnd(N * K, -1, 1), *x = rnd(M * ldx, -1, 1), *b = rnd(N, -1, 1);
    float *y = rnd(M * ldy, -1, 1), *yr = malloc(M * ldy * sizeof(float));
    float *yb = malloc(M * ldy * sizeof(float));
    float *Wb = malloc(N * K * sizeof(float)), *xb = malloc(M * ldx * sizeof(float));
    uint16_t *W16 = malloc(N * K * 2);
    for (size_t i = 0; i < N * K; i++) {
        if (dt == TOLK_DT_F16) {
            W16[i] = tu_f2h(W[i]);
            W[i] = tu_h2f(W16[i]);
        }
        Wb[i] = tolk_bf16_to_f32(tolk_f32_to_bf16(W[i]));
    }
    for (size_t i = 0; i < M * ldx; i++)
        xb[i] = tolk_bf16_to_f32(tolk_f32_to_bf16(x[i]));
    memcpy(yr, y, M * ldy * sizeof(float));
    memcpy(yb, y, M * ldy * sizeof(float));
    tolk_tensor t =
        tensor2("w", dt, (int64_t)N, (int64_t)K, dt == TOLK_DT_F16 ? (void *)W16 : (void *)W);
    const tolk_tensor *parts[1] = {&t};
    tolk_bweight bw;
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &bw), TOLK_OK);
    int native = tolk_gemm_bf16_native();
    size_t need = 0;
    CU_ASSERT_EQUAL(tolk_gemm_bf16_packed_size((int)N, (int)K, &need), TOLK_OK);
    CU_ASSERT_EQUAL(bw.packed != NULL, native);
    CU_ASSERT_EQUAL(bw.packed_bytes, native ? need : 0);
    CU_ASSERT_PTR_NOT_NULL(bw.data); /* kept for embed and few-row products */
    if (bw.packed) { /* the backend's own packer writes tolk_gemm_bf16_pack's bytes */
        void *ref = malloc(need);
        CU_ASSERT_EQUAL(
            tolk_gemm_bf16_pack(g_ctx, dt == TOLK_DT_F16 ? (void *)W16 : (void *)W,
                                dt == TOLK_DT_F16 ? TOLK_GEMM_SRC_F16 : TOLK_GEMM_SRC_F32, (int)N,
                                (int)K, ref, need),
            TOLK_OK);
        CU_ASSERT(memcmp(bw.packed, ref, need) == 0);
        free(ref);
    }
    CU_ASSERT_EQUAL(be->linear(g_ctx, be, y, ldy, x, ldx, M, &bw, bias ? b : NULL, acc), TOLK_OK);
    ref_linear(yr, ldy, x, ldx, M, W, N, K, bias ? b : NULL, acc);
    ref_linear(yb, ldy, xb, ldx, M, Wb, N, K, bias ? b : NULL, acc);
    double e = rel_err2d(y, yr, M, N, ldy);
    if (native && M >= 2) {
        double eb = rel_err2d(y, yb, M, N, ldy);
        if (!(eb < 1e-5) || !(e < 2e-2))
            printf("\n  bf16 linear dt=%d M=%zu N=%zu K=%zu: rel err %.2e (bf16 ref), %.2e\n",
                   (int)dt, M, N, K, eb, e);
        CU_ASSERT(eb < 1e-5);
        CU_ASSERT(e < 2e-2);
    } else {
        CU_ASSERT(e < 2e-6);
    }
    for (size_t m = 0; m < M; m++)
        for (size_t n = N; n < ldy; n++)
            CU_ASSERT_EQUAL(y[m * ldy + n], yr[m * ldy + n]);
    be->weight_free(be, &bw);
    CU_ASSERT_PTR_NULL(bw.packed);
    free(W), free(x), free(b), free(y), free(yr), free(yb), free(Wb), free(xb), free(W16);
}

static void test_linear_bf16(void) {
    tu_seed(11);
    for (int keep = 0; keep <= 1; keep++) {
        tolk_backend *be = NULL;
        tolk_backend_params bp = {.keep_f16 = keep, .bf16 = 1};
        CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(g_ctx, &bp, &be), TOLK_OK);
        const size_t Ms[] = {1, 2, 5, 9, 37, 130};
        for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
            for (int f16 = 0; f16 <= 1; f16++)
                for (int acc = 0; acc <= 1; acc++)
                    linear_bf16_case(be, f16 ? TOLK_DT_F16 : TOLK_DT_F32, Ms[i], 67, 45, !acc, acc);
        /* many panels (packed in parallel) with a short last one */
        linear_bf16_case(be, TOLK_DT_F16, 40, 600, 129, 1, 0);
        linear_bf16_case(be, TOLK_DT_F32, 40, 600, 129, 1, 1);
        be->destroy(be);
    }
    /* special values pack as tolk_gemm_bf16_pack packs them: f16 NaN, inf,
     * subnormals, -0, rounding ties; f32 NaN and values that round up */
    {
        tolk_backend *be = NULL;
        tolk_backend_params bp = {.keep_f16 = 1, .bf16 = 1};
        CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(g_ctx, &bp, &be), TOLK_OK);
        enum { SN = 35, SK = 19 };
        uint16_t h[SN * SK];
        float f[SN * SK];
        const uint16_t hs[] = {0x7e00, 0x7c01, 0xfc00, 0x0001, 0x03ff, 0x8000, 0x3c01, 0x3c08};
        const uint32_t fs[] = {0x7fc00001u, 0xff800001u, 0x3f808000u,
                               0x3f818000u, 0x00000001u, 0x7f7fffffu};
        for (int i = 0; i < SN * SK; i++) {
            h[i] = (uint16_t)(i % 9 == 0 ? hs[(i / 9) % 8] : (uint16_t)(i * 2654435761u >> 17));
            uint32_t u = i % 7 == 0 ? fs[(i / 7) % 6] : i * 2654435761u;
            memcpy(&f[i], &u, 4);
        }
        for (int src = 0; src < 2 && tolk_gemm_bf16_native(); src++) {
            tolk_tensor t =
                tensor2("w", src ? TOLK_DT_F16 : TOLK_DT_F32, SN, SK, src ? (void *)h : (void *)f);
            const tolk_tensor *parts[1] = {&t};
            tolk_bweight bw;
            CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &bw), TOLK_OK);
            CU_ASSERT_PTR_NOT_NULL_FATAL(bw.packed);
            void *ref = malloc(bw.packed_bytes);
            CU_ASSERT_EQUAL(tolk_gemm_bf16_pack(g_ctx, src ? (void *)h : (void *)f,
                                                src ? TOLK_GEMM_SRC_F16 : TOLK_GEMM_SRC_F32, SN, SK,
                                                ref, bw.packed_bytes),
                            TOLK_OK);
            CU_ASSERT(memcmp(bw.packed, ref, bw.packed_bytes) == 0);
            free(ref);
            be->weight_free(be, &bw);
        }
        be->destroy(be);
    }
    /* the default backend does not pack */
    tolk_backend *be = make_be(1);
    float w[6] = {1, 2, 3, 4, 5, 6};
    tolk_tensor t = tensor2("w", TOLK_DT_F32, 2, 3, w);
    const tolk_tensor *parts[1] = {&t};
    tolk_bweight bw;
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &bw), TOLK_OK);
    CU_ASSERT_PTR_NULL(bw.packed);
    be->weight_free(be, &bw);
    be->destroy(be);
}

/* Fused parts: contiguous f16 slices are used in place; separate ones and
 * mixed dtypes are concatenated; a column mismatch is refused. */
static void test_weight_parts(void) {
    tu_seed(2);
    tolk_backend *be = make_be(1);
    size_t K = 13;
    uint16_t *h = malloc(3 * 5 * K * 2);
    float *f = rnd(3 * 5 * K, -1, 1);
    for (size_t i = 0; i < 3 * 5 * K; i++)
        h[i] = tu_f2h(f[i]);
    tolk_tensor a = tensor2("a", TOLK_DT_F16, 5, (int64_t)K, h);
    tolk_tensor b = tensor2("b", TOLK_DT_F16, 5, (int64_t)K, h + 5 * K);
    tolk_tensor c = tensor2("c", TOLK_DT_F16, 5, (int64_t)K, h + 10 * K);
    const tolk_tensor *p3[3] = {&a, &b, &c};
    tolk_bweight w;
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, p3, 3, &w), TOLK_OK);
    CU_ASSERT_EQUAL(w.rows, 15);
    CU_ASSERT_EQUAL(w.owned, 0);
    CU_ASSERT_PTR_EQUAL(w.data, h);
    be->weight_free(be, &w);
    const tolk_tensor *p2[2] = {&a, &c}; /* not contiguous: copied */
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, p2, 2, &w), TOLK_OK);
    CU_ASSERT_EQUAL(w.owned, 1);
    CU_ASSERT_EQUAL(w.dtype, TOLK_DT_F16);
    CU_ASSERT(memcmp(w.data, h, 5 * K * 2) == 0);
    CU_ASSERT(memcmp((uint16_t *)w.data + 5 * K, h + 10 * K, 5 * K * 2) == 0);
    be->weight_free(be, &w);
    tolk_tensor d = tensor2("d", TOLK_DT_F32, 5, (int64_t)K, f); /* mixed: widened */
    const tolk_tensor *pm[2] = {&a, &d};
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, pm, 2, &w), TOLK_OK);
    CU_ASSERT_EQUAL(w.dtype, TOLK_DT_F32);
    for (size_t i = 0; i < 5 * K; i++) {
        CU_ASSERT_EQUAL(((float *)w.data)[i], tu_h2f(h[i]));
        CU_ASSERT_EQUAL(((float *)w.data)[5 * K + i], f[i]);
    }
    be->weight_free(be, &w);
    tolk_tensor e = tensor2("e", TOLK_DT_F32, 5, (int64_t)K + 1, f);
    const tolk_tensor *pe[2] = {&a, &e};
    CU_ASSERT_EQUAL(be->weight_prepare(g_ctx, be, pe, 2, &w), TOLK_ERR_FORMAT);
    tolk_tensor q = tensor2("q", TOLK_DT_I8, 5, (int64_t)K, h); /* int8 without scales */
    const tolk_tensor *pq[1] = {&q};
    CU_ASSERT_EQUAL(be->weight_prepare(g_ctx, be, pq, 1, &w), TOLK_ERR_FORMAT);
    /* vectors: a NULL part is zeros */
    tolk_tensor v1 = a;
    v1.ndim = 1;
    v1.shape[0] = 7;
    const tolk_tensor *pv[3] = {&v1, NULL, &d};
    int64_t zl[3] = {0, 4, 0};
    float *v = NULL;
    CU_ASSERT_EQUAL_FATAL(be->vector_prepare(g_ctx, be, pv, zl, 3, &v), TOLK_OK);
    for (int i = 0; i < 7; i++)
        CU_ASSERT_EQUAL(v[i], tu_h2f(h[i]));
    for (int i = 7; i < 11; i++)
        CU_ASSERT_EQUAL(v[i], 0.0f);
    for (size_t i = 0; i < 5 * K; i++)
        CU_ASSERT_EQUAL(v[11 + i], f[i]);
    be->free(be, v);
    zl[1] = 0;
    CU_ASSERT_EQUAL(be->vector_prepare(g_ctx, be, pv, zl, 3, &v), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(v);
    be->destroy(be);
    free(h), free(f);
}

/* ---- elementwise -------------------------------------------------------- */

static void test_layernorm_gelu_add(void) {
    tu_seed(3);
    tolk_backend *be = make_be(1);
    size_t M = 29, D = 131;
    float *x = rnd(M * D, -3, 5), *g = rnd(D, 0.5f, 1.5f), *b = rnd(D, -1, 1);
    float *y = malloc(M * D * sizeof(float)), *yr = malloc(M * D * sizeof(float));
    CU_ASSERT_EQUAL(be->layernorm(g_ctx, be, y, x, M, D, g, b, 1e-5f), TOLK_OK);
    for (size_t m = 0; m < M; m++) {
        double s = 0, v = 0;
        for (size_t i = 0; i < D; i++)
            s += x[m * D + i];
        s /= (double)D;
        for (size_t i = 0; i < D; i++)
            v += (x[m * D + i] - s) * (x[m * D + i] - s);
        v /= (double)D;
        for (size_t i = 0; i < D; i++)
            yr[m * D + i] = (float)((x[m * D + i] - s) / sqrt(v + 1e-5) * g[i] + b[i]);
    }
    CU_ASSERT(tu_max_abs_diff(y, yr, M * D) < 1e-5);
    /* in place */
    memcpy(y, x, M * D * sizeof(float));
    CU_ASSERT_EQUAL(be->layernorm(g_ctx, be, y, y, M, D, g, b, 1e-5f), TOLK_OK);
    CU_ASSERT(tu_max_abs_diff(y, yr, M * D) < 1e-5);

    /* GELU (exact erf) with and without bias, row stride > N */
    size_t N = 97, ld = 101;
    float *z = rnd(M * ld, -9, 9), *zr = malloc(M * ld * sizeof(float));
    memcpy(zr, z, M * ld * sizeof(float));
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        memcpy(z, zr, M * ld * sizeof(float));
        CU_ASSERT_EQUAL(be->bias_gelu(g_ctx, be, z, ld, M, N, with_bias ? b : NULL), TOLK_OK);
        double mx = 0;
        for (size_t m = 0; m < M; m++)
            for (size_t i = 0; i < ld; i++) {
                double v = zr[m * ld + i];
                if (i >= N) {
                    CU_ASSERT_EQUAL(z[m * ld + i], zr[m * ld + i]);
                    continue;
                }
                if (with_bias) v += b[i];
                double r = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
                double d = fabs(r - z[m * ld + i]) / (1.0 + fabs(r));
                if (d > mx) mx = d;
            }
        CU_ASSERT(mx < 1e-6);
        printf("[gelu max err %.1e] ", mx);
    }
    /* add, also in place */
    CU_ASSERT_EQUAL(be->add(g_ctx, be, y, x, yr, M * D), TOLK_OK);
    for (size_t i = 0; i < M * D; i++)
        CU_ASSERT_EQUAL(y[i], x[i] + yr[i]);
    CU_ASSERT_EQUAL(be->add(g_ctx, be, y, y, x, M * D), TOLK_OK);
    for (size_t i = 0; i < M * D; i++)
        CU_ASSERT_EQUAL(y[i], (x[i] + yr[i]) + x[i]);
    CU_ASSERT_EQUAL(be->layernorm(g_ctx, be, y, x, M, D, NULL, b, 1e-5f), TOLK_ERR_INVALID_ARG);
    be->destroy(be);
    free(x), free(g), free(b), free(y), free(yr), free(z), free(zr);
}

/* ---- attention ---------------------------------------------------------- */

static void ref_attention(const tolk_attn_seq *s, int nh, int dh, size_t ldq, size_t ldkv,
                          size_t ldo, float scale, float *outr) {
    double *sc = malloc((size_t)s->n_kv * sizeof(double));
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < s->n_q; i++) {
            int nk = s->causal ? s->q_pos0 + i + 1 : s->n_kv;
            double mx = -1e300, sum = 0;
            for (int j = 0; j < nk; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++)
                    d += (double)s->q[(size_t)i * ldq + (size_t)(h * dh + c)] *
                         s->k[(size_t)j * ldkv + (size_t)(h * dh + c)];
                sc[j] = d * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j < nk; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = 0; j < nk; j++)
                    o += sc[j] / sum * s->v[(size_t)j * ldkv + (size_t)(h * dh + c)];
                outr[(size_t)i * ldo + (size_t)(h * dh + c)] = (float)o;
            }
        }
    free(sc);
}

/* n_seqs sequences with the given (n_q, n_kv, causal, pos0); q, k, v with
 * strides wider than nh * dh; compares every output row. */
static void attention_case(tolk_backend *be, int n_seqs, const int (*cfg)[4], int nh, int dh) {
    size_t w = (size_t)nh * (size_t)dh, ldq = w * 3 + 1, ldkv = w * 2 + 3, ldo = w + 2;
    tolk_attn_seq *seqs = calloc((size_t)n_seqs, sizeof *seqs);
    float **bufs = calloc((size_t)n_seqs * 4, sizeof(float *));
    float scale = 1.0f / sqrtf((float)dh);
    for (int i = 0; i < n_seqs; i++) {
        int nq = cfg[i][0], nkv = cfg[i][1];
        bufs[4 * i] = rnd((size_t)nq * ldq, -2, 2);
        bufs[4 * i + 1] = rnd((size_t)nkv * ldkv, -2, 2);
        bufs[4 * i + 2] = rnd((size_t)nq * ldo, 0, 1);
        bufs[4 * i + 3] = malloc((size_t)nq * ldo * sizeof(float));
        memcpy(bufs[4 * i + 3], bufs[4 * i + 2], (size_t)nq * ldo * sizeof(float));
        seqs[i] = (tolk_attn_seq){
            bufs[4 * i], bufs[4 * i + 1], bufs[4 * i + 1] + w, bufs[4 * i + 2], nq, nkv,
            cfg[i][2],   cfg[i][3]};
    }
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, seqs, n_seqs, nh, dh, ldq, ldkv, ldo, scale, 0),
                    TOLK_OK);
    for (int i = 0; i < n_seqs; i++) {
        ref_attention(&seqs[i], nh, dh, ldq, ldkv, ldo, scale, bufs[4 * i + 3]);
        double e = rel_err2d(bufs[4 * i + 2], bufs[4 * i + 3], (size_t)cfg[i][0], ldo, ldo);
        if (!(e < 1e-5))
            printf("\n  attention seq %d (nq %d nkv %d causal %d pos0 %d): rel err %.2e\n", i,
                   cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3], e);
        CU_ASSERT(e < 1e-5);
    }
    for (int i = 0; i < 4 * n_seqs; i++)
        free(bufs[i]);
    free(bufs);
    free(seqs);
}

/* Beams of one window: few-query sequences sharing one K/V buffer (grouped
 * by the backend, groups capped in rows), next to a causal one and one with
 * the same keys but a different length (not grouped). */
static void attention_shared_case(tolk_backend *be) {
    int nh = 2, dh = 12, nkv = 203;
    size_t w = (size_t)(nh * dh), ldq = w + 5, ldkv = 2 * w + 1, ldo = w;
    float *kv = rnd((size_t)nkv * ldkv, -2, 2);
    const int nq[7] = {1, 1, 2, 1, 30, 3, 1};
    tolk_attn_seq seqs[7];
    float *q[7], *o[7], *r[7];
    for (int i = 0; i < 7; i++) {
        q[i] = rnd((size_t)nq[i] * ldq, -2, 2);
        o[i] = rnd((size_t)nq[i] * ldo, 0, 1);
        r[i] = malloc((size_t)nq[i] * ldo * sizeof(float));
        seqs[i] = (tolk_attn_seq){q[i], kv, kv + w, o[i], nq[i], nkv, 0, 0};
    }
    seqs[5].causal = 1; /* 3 queries at positions 200..202 */
    seqs[5].q_pos0 = nkv - 3;
    seqs[6].n_kv = nkv - 50;
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, seqs, 7, nh, dh, ldq, ldkv, ldo, 0.3f, 0), TOLK_OK);
    for (int i = 0; i < 7; i++) {
        ref_attention(&seqs[i], nh, dh, ldq, ldkv, ldo, 0.3f, r[i]);
        double e = rel_err2d(o[i], r[i], (size_t)nq[i], w, ldo);
        if (!(e < 1e-5)) printf("\n  shared attention seq %d: rel err %.2e\n", i, e);
        CU_ASSERT(e < 1e-5);
        free(q[i]), free(o[i]), free(r[i]);
    }
    free(kv);
}

static void test_attention(void) {
    tu_seed(4);
    tolk_backend *be = make_be(1);
    /* decoder-like: few queries, causal over a cache, and cross (full) */
    const int small[][4] = {{1, 1, 1, 0}, {1, 17, 1, 16}, {3, 20, 1, 17}, {2, 151, 0, 0}};
    attention_case(be, 4, small, 3, 24);
    /* encoder-like: many queries (sgemm row blocks: 130 = 128 + 2) */
    const int big[][4] = {{301, 301, 0, 0}, {130, 77, 0, 0}};
    attention_case(be, 2, big, 2, 40);
    /* a long prompt (causal, sgemm path) next to a single-token step */
    const int mixed[][4] = {{200, 205, 1, 5}, {1, 9, 1, 8}, {33, 33, 1, 0}};
    attention_case(be, 3, mixed, 4, 16);
    attention_shared_case(be);
    /* a decoder step's shapes over 8 heads: one row (heads cut into ranges
     * for the threads), then several windows (all heads per task) */
    const int one[][4] = {{1, 301, 0, 0}};
    attention_case(be, 1, one, 8, 16);
    const int step[][4] = {{1, 301, 0, 0}, {1, 64, 0, 0}, {2, 40, 1, 38},
                           {1, 301, 0, 0}, {5, 99, 0, 0}, {1, 7, 1, 6}};
    attention_case(be, 6, step, 8, 16);
    /* invalid: causal window past the keys */
    float q[64] = {0};
    tolk_attn_seq bad = {q, q, q, q, 2, 2, 1, 1};
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, &bad, 1, 1, 8, 8, 8, 8, 1.0f, 0),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, &bad, 1, 2, 8, 8, 8, 8, 1.0f, 0),
                    TOLK_ERR_INVALID_ARG); /* stride narrower than 2 heads */
    be->destroy(be);
}

/* attention_desc with TOLK_ATTN_KV_F16 against the reference over the same
 * rounded keys and values, through descriptors: single rows sharing one
 * window (grouped), a causal row over a cache, a 40-row prompt (the sgemm
 * row-block path, K/V widened per head); and convert_rows both ways. */
static void test_attention_kvh(void) {
    tu_seed(9);
    tolk_backend *be = make_be(1);
    const int nh = 4, dh = 16, nkv = 150;
    const size_t w = (size_t)(nh * dh), ld = 2 * w + 8; /* K at 0, V at w */
    float *kv = rnd((size_t)nkv * ld, -2, 2);
    uint16_t *kv16 = malloc((size_t)nkv * ld * sizeof(uint16_t));
    for (size_t i = 0; i < (size_t)nkv * ld; i++) {
        kv16[i] = tu_f2h(kv[i]);
        kv[i] = tu_h2f(kv16[i]); /* the reference sees the rounded values */
    }
    /* convert_rows: float32 -> float16 -> float32 is the rounding above */
    uint16_t *h = malloc((size_t)nkv * ld * sizeof(uint16_t));
    float *back = malloc((size_t)nkv * ld * sizeof(float));
    CU_ASSERT_EQUAL(be->convert_rows(g_ctx, be, h, 1, ld, kv, 0, ld, (size_t)nkv, 2 * w), TOLK_OK);
    CU_ASSERT_EQUAL(be->convert_rows(g_ctx, be, back, 0, ld, h, 1, ld, (size_t)nkv, 2 * w),
                    TOLK_OK);
    int same = 1;
    for (size_t r = 0; r < (size_t)nkv; r++)
        for (size_t c = 0; c < 2 * w; c++)
            if (h[r * ld + c] != kv16[r * ld + c] || back[r * ld + c] != kv[r * ld + c]) same = 0;
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(be->convert_rows(g_ctx, be, h, 1, 1, kv, 0, ld, 2, 2), TOLK_ERR_INVALID_ARG);
    /* q rows: 1, 1, 1 (one window), 2 (causal at 120..121), 40 (prompt) */
    const int nq[5] = {1, 1, 1, 2, 40};
    const size_t ldq = w + 3, ldo = w + 1;
    int rows = 0;
    for (int i = 0; i < 5; i++)
        rows += nq[i];
    float *q = rnd((size_t)rows * ldq, -2, 2), *o = rnd((size_t)rows * ldo, 0, 1);
    float *r = malloc((size_t)rows * ldo * sizeof(float));
    tolk_attn_desc d[5];
    for (int i = 0, row = 0; i < 5; row += nq[i], i++)
        d[i] = (tolk_attn_desc){row, 0, nq[i], i == 2 ? 77 : nkv, i == 3, i == 3 ? 120 : 0};
    float scale = 1.0f / sqrtf((float)dh);
    CU_ASSERT_EQUAL(be->attention_desc(g_ctx, be, q, ldq, kv16, kv16 + w, ld, o, ldo, d, 5, 40, nkv,
                                       nh, dh, scale, TOLK_ATTN_KV_F16),
                    TOLK_OK);
    for (int i = 0, row = 0; i < 5; row += nq[i], i++) {
        tolk_attn_seq s = {q + (size_t)row * ldq, kv,         kv + w, NULL, nq[i], d[i].n_kv,
                           d[i].causal,           d[i].q_pos0};
        ref_attention(&s, nh, dh, ldq, ld, ldo, scale, r + (size_t)row * ldo);
        double e = rel_err2d(o + (size_t)row * ldo, r + (size_t)row * ldo, (size_t)nq[i], w, ldo);
        if (!(e < 1e-5)) printf("\n  kvh attention seq %d: rel err %.2e\n", i, e);
        CU_ASSERT(e < 1e-5);
    }
    free(kv), free(kv16), free(h), free(back), free(q), free(o), free(r);
    be->destroy(be);
}

/* The half-activation forms (backend.h: _F16 flags, TOLK_LINEAR_GELU,
 * layernorm_h, bias_gelu_h) on the CPU are its float32 ops over widened inputs, rounded
 * once: bit for bit what widening / rounding around the float32 op gives.
 * Also the refusals (a float16 y with accumulation, GELU without a float16
 * y, unknown attention flags). */
static float gelu_tanh(float v) { /* cuBLASLt's GELU epilogue */
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

static int same_h(const uint16_t *a, const float *f, size_t rows, size_t cols, size_t lda,
                  size_t ldf) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            if (a[r * lda + c] != tolk_f32_to_f16(f[r * ldf + c])) return 0; /* subnormals too */
    return 1;
}

static void test_half_twins(void) {
    tu_seed(12);
    tolk_backend *be = make_be(1);
    CU_ASSERT_EQUAL(be->half_acts, 0);
    const size_t M = 9, K = 40, N = 24, ldx = K + 3, ldy = N + 5;
    float *W = rnd(N * K, -0.5f, 0.5f), *b = rnd(N, -1, 1), *xf = rnd(M * ldx, -2, 2);
    uint16_t *W16 = malloc(N * K * sizeof *W16), *xh = malloc(M * ldx * sizeof *xh);
    for (size_t i = 0; i < N * K; i++)
        W16[i] = tu_f2h(W[i]);
    for (size_t i = 0; i < M * ldx; i++) {
        xh[i] = tu_f2h(xf[i]);
        xf[i] = tu_h2f(xh[i]); /* the float32 op sees the widened values */
    }
    tolk_tensor t = tensor2("w", TOLK_DT_F16, (int64_t)N, (int64_t)K, W16);
    const tolk_tensor *parts[1] = {&t};
    tolk_bweight w;
    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, parts, 1, &w), TOLK_OK);
    float *y0 = rnd(M * ldy, -1, 1), *y1 = malloc(M * ldy * sizeof *y1);
    memcpy(y1, y0, M * ldy * sizeof *y1);
    for (int acc = 0; acc <= 1; acc++) { /* float16 x: equal to the float32 op on its widening */
        const int fl = TOLK_LINEAR_ROW_EXACT | (acc ? TOLK_LINEAR_ACCUMULATE : 0);
        CU_ASSERT_EQUAL(be->linear(g_ctx, be, y0, ldy, xf, ldx, M, &w, b, fl), TOLK_OK);
        CU_ASSERT_EQUAL(be->linear(g_ctx, be, y1, ldy, xh, ldx, M, &w, b, fl | TOLK_LINEAR_X_F16),
                        TOLK_OK);
        CU_ASSERT_EQUAL(memcmp(y0, y1, M * ldy * sizeof *y0), 0);
    }
    /* a float16 y, without and with its float16 bias (the float32 op on the
     * widened bias); then with the GELU epilogue (tanh form, in float32) */
    uint16_t *yh = calloc(M * ldy, sizeof *yh), *bh = malloc(N * sizeof *bh);
    float *bw = malloc(N * sizeof *bw);
    for (size_t i = 0; i < N; i++)
        bh[i] = tu_f2h(b[i]), bw[i] = tu_h2f(bh[i]);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        CU_ASSERT_EQUAL(be->linear(g_ctx, be, y0, ldy, xf, ldx, M, &w, with_bias ? bw : NULL,
                                   TOLK_LINEAR_ROW_EXACT),
                        TOLK_OK);
        CU_ASSERT_EQUAL(be->linear(g_ctx, be, yh, ldy, xh, ldx, M, &w, with_bias ? bh : NULL,
                                   TOLK_LINEAR_ROW_EXACT | TOLK_LINEAR_X_F16 | TOLK_LINEAR_Y_F16),
                        TOLK_OK);
        CU_ASSERT(same_h(yh, y0, M, N, ldy, ldy));
    }
    for (size_t r = 0; r < M; r++)
        for (size_t c = 0; c < N; c++)
            y0[r * ldy + c] = gelu_tanh(y0[r * ldy + c]);
    CU_ASSERT_EQUAL(be->linear(g_ctx, be, yh, ldy, xh, ldx, M, &w, bh,
                               TOLK_LINEAR_ROW_EXACT | TOLK_LINEAR_X_F16 | TOLK_LINEAR_Y_F16 |
                                   TOLK_LINEAR_GELU),
                    TOLK_OK);
    CU_ASSERT(same_h(yh, y0, M, N, ldy, ldy));
    /* the tanh form against the exact erf form: within 5e-4 everywhere (below
     * float16's rounding at |GELU| >= 1) */
    double worst = 0;
    for (int i = -8000; i <= 8000; i++) {
        const double v = i / 1000.0, e = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        worst = fmax(worst, fabs(gelu_tanh((float)v) - e));
    }
    CU_ASSERT(worst < 5e-4);
    CU_ASSERT_EQUAL(be->linear(g_ctx, be, yh, ldy, xh, ldx, M, &w, NULL,
                               TOLK_LINEAR_Y_F16 | TOLK_LINEAR_ACCUMULATE),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        be->linear(g_ctx, be, y0, ldy, xh, ldx, M, &w, b, TOLK_LINEAR_X_F16 | TOLK_LINEAR_GELU),
        TOLK_ERR_INVALID_ARG);
    free(bh), free(bw);
    /* layernorm_h */
    float *g = rnd(K, 0.5f, 1.5f), *bb = rnd(K, -1, 1), *a = rnd(M * K, -3, 3);
    float *z = malloc(M * K * sizeof *z);
    uint16_t *zh = malloc(M * K * sizeof *zh);
    CU_ASSERT_EQUAL(be->layernorm(g_ctx, be, z, a, M, K, g, bb, 1e-5f), TOLK_OK);
    CU_ASSERT_EQUAL(be->layernorm_h(g_ctx, be, zh, a, M, K, g, bb, 1e-5f), TOLK_OK);
    CU_ASSERT(same_h(zh, z, M, K, K, K));
    /* bias_gelu_h in place on [M, N - 2] of yh (the rest untouched) */
    for (size_t i = 0; i < M * ldy; i++)
        y0[i] = tu_h2f(yh[i]);
    CU_ASSERT_EQUAL(be->bias_gelu(g_ctx, be, y0, ldy, M, N - 2, b), TOLK_OK);
    CU_ASSERT_EQUAL(be->bias_gelu_h(g_ctx, be, yh, ldy, M, N - 2, b), TOLK_OK);
    CU_ASSERT(same_h(yh, y0, M, N, ldy, ldy));
    /* attention and attention_desc with a float16 output: 2 heads of 8 */
    const int nh = 2, dh = 8, nkv = 30;
    const size_t wd = (size_t)(nh * dh), ldq = wd + 1, ldkv = 2 * wd, ldo = wd + 2;
    float *q = rnd(4 * ldq, -1, 1), *kv = rnd((size_t)nkv * ldkv, -1, 1);
    float *of = rnd(4 * ldo, -1, 1);
    uint16_t *oh = calloc(4 * ldo, sizeof *oh);
    const tolk_attn_desc d[2] = {{0, 0, 1, nkv, 0, 0}, {1, 0, 3, 20, 1, 17}};
    CU_ASSERT_EQUAL(be->attention_desc(g_ctx, be, q, ldq, kv, kv + wd, ldkv, of, ldo, d, 2, 3, nkv,
                                       nh, dh, 0.3f, 0),
                    TOLK_OK);
    CU_ASSERT_EQUAL(be->attention_desc(g_ctx, be, q, ldq, kv, kv + wd, ldkv, oh, ldo, d, 2, 3, nkv,
                                       nh, dh, 0.3f, TOLK_ATTN_OUT_F16),
                    TOLK_OK);
    CU_ASSERT(same_h(oh, of, 4, wd, ldo, ldo));
    const tolk_attn_seq sf[2] = {{q, kv, kv + wd, of, 1, nkv, 0, 0},
                                 {q + ldq, kv, kv + wd, of + ldo, 3, 20, 1, 17}};
    tolk_attn_seq sh[2];
    memcpy(sh, sf, sizeof sh);
    sh[0].out = (float *)(void *)oh;
    sh[1].out = (float *)(void *)(oh + ldo);
    memset(oh, 0, 4 * ldo * sizeof *oh);
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, sf, 2, nh, dh, ldq, ldkv, ldo, 0.3f, 0), TOLK_OK);
    CU_ASSERT_EQUAL(
        be->attention(g_ctx, be, sh, 2, nh, dh, ldq, ldkv, ldo, 0.3f, TOLK_ATTN_OUT_F16), TOLK_OK);
    CU_ASSERT(same_h(oh, of, 4, wd, ldo, ldo));
    /* float16 q, k, v as well: the float32 op on their widenings */
    uint16_t *qh = malloc(4 * ldq * sizeof *qh), *kvh = malloc((size_t)nkv * ldkv * sizeof *kvh);
    for (size_t i = 0; i < 4 * ldq; i++)
        qh[i] = tu_f2h(q[i]), q[i] = tu_h2f(qh[i]);
    for (size_t i = 0; i < (size_t)nkv * ldkv; i++)
        kvh[i] = tu_f2h(kv[i]), kv[i] = tu_h2f(kvh[i]);
    tolk_attn_seq sq[2];
    memcpy(sq, sh, sizeof sq);
    for (int i = 0; i < 2; i++) {
        sq[i].q = (const float *)(const void *)(qh + (sf[i].q - q));
        sq[i].k = (const float *)(const void *)kvh;
        sq[i].v = (const float *)(const void *)(kvh + wd);
    }
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, sf, 2, nh, dh, ldq, ldkv, ldo, 0.3f, 0), TOLK_OK);
    memset(oh, 0, 4 * ldo * sizeof *oh);
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, sq, 2, nh, dh, ldq, ldkv, ldo, 0.3f,
                                  TOLK_ATTN_OUT_F16 | TOLK_ATTN_QKV_F16),
                    TOLK_OK);
    CU_ASSERT(same_h(oh, of, 4, wd, ldo, ldo));
    CU_ASSERT_EQUAL(
        be->attention(g_ctx, be, sq, 2, nh, dh, ldq, ldkv, ldo, 0.3f, TOLK_ATTN_QKV_F16),
        TOLK_ERR_INVALID_ARG);
    free(qh), free(kvh);
    CU_ASSERT_EQUAL(be->attention(g_ctx, be, sh, 2, nh, dh, ldq, ldkv, ldo, 0.3f, 16),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(be->attention_desc(g_ctx, be, q, ldq, kv, kv + wd, ldkv, oh, ldo, d, 2, 3, nkv,
                                       nh, dh, 0.3f, 4),
                    TOLK_ERR_INVALID_ARG);
    be->weight_free(be, &w);
    free(W), free(b), free(xf), free(W16), free(xh), free(y0), free(y1), free(yh);
    free(g), free(bb), free(a), free(z), free(zh), free(q), free(kv), free(of), free(oh);
    be->destroy(be);
}

/* ---- conv1d ------------------------------------------------------------- */

static void test_conv1d(void) {
    tu_seed(5);
    for (int keep = 0; keep <= 1; keep++) {
        tolk_backend *be = make_be(keep);
        size_t Ci = 7, Co = 11;
        const size_t Ts[] = {1, 2, 37, 38};
        for (size_t ti = 0; ti < 4; ti++)
            for (int stride = 1; stride <= 2; stride++)
                for (int layout = 0; layout <= 1; layout++) {
                    size_t T = Ts[ti], To = (T - 1) / (size_t)stride + 1;
                    float *W = rnd(Co * Ci * 3, -1, 1), *b = rnd(Co, -1, 1);
                    float *x = rnd(Ci * T, -1, 1);
                    float *y = malloc(To * Co * sizeof(float)), *yr = malloc(To * Co * 4);
                    uint16_t *W16 = malloc(Co * Ci * 3 * 2);
                    for (size_t i = 0; i < Co * Ci * 3; i++) {
                        W16[i] = tu_f2h(W[i]);
                        W[i] = tu_h2f(W16[i]);
                    }
                    tolk_tensor t;
                    memset(&t, 0, sizeof t);
                    t.name = "conv";
                    t.dtype = TOLK_DT_F16;
                    t.ndim = 3;
                    t.shape[0] = (int64_t)Co;
                    t.shape[1] = (int64_t)Ci;
                    t.shape[2] = 3;
                    t.data = W16;
                    const tolk_tensor *p[1] = {&t};
                    tolk_bweight bw;
                    CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, p, 1, &bw), TOLK_OK);
                    CU_ASSERT_EQUAL(be->conv1d(g_ctx, be, y, x, (tolk_conv_layout)layout, Ci, T,
                                               stride, &bw, b),
                                    TOLK_OK);
                    for (size_t to = 0; to < To; to++)
                        for (size_t o = 0; o < Co; o++) {
                            double s = b[o];
                            for (size_t c = 0; c < Ci; c++)
                                for (int k = 0; k < 3; k++) {
                                    long tin = (long)(stride * to) + k - 1;
                                    if (tin < 0 || tin >= (long)T) continue;
                                    float xv = layout == TOLK_CONV_IN_CT ? x[c * T + (size_t)tin]
                                                                         : x[(size_t)tin * Ci + c];
                                    s += (double)W[(o * Ci + c) * 3 + (size_t)k] * xv;
                                }
                            yr[to * Co + o] = (float)s;
                        }
                    double e = tu_max_rel_diff(y, yr, To * Co);
                    CU_ASSERT(e < 1e-5);
                    be->weight_free(be, &bw);
                    free(W), free(b), free(x), free(y), free(yr), free(W16);
                }
        float dummy[4] = {0};
        /* 5 != 3 * C_in */
        tolk_bweight bw = {.dtype = TOLK_DT_F32, .rows = 2, .cols = 5, .data = dummy};
        CU_ASSERT_EQUAL(be->conv1d(g_ctx, be, dummy, dummy, TOLK_CONV_IN_CT, 2, 2, 1, &bw, NULL),
                        TOLK_ERR_INVALID_ARG);
        be->destroy(be);
    }
}

/* ---- embedding, logits, copies ------------------------------------------ */

static void test_embed_logits_copy(void) {
    tu_seed(6);
    for (int keep = 0; keep <= 1; keep++) {
        tolk_backend *be = make_be(keep);
        size_t V = 301, D = 37, P = 19;
        float *E = rnd(V * D, -1, 1), *pos = rnd(P * D, -1, 1);
        uint16_t *E16 = malloc(V * D * 2);
        for (size_t i = 0; i < V * D; i++) {
            E16[i] = tu_f2h(E[i]);
            E[i] = tu_h2f(E16[i]);
        }
        tolk_tensor t = tensor2("tok", TOLK_DT_F16, (int64_t)V, (int64_t)D, E16);
        const tolk_tensor *p[1] = {&t};
        tolk_bweight tok;
        CU_ASSERT_EQUAL_FATAL(be->weight_prepare(g_ctx, be, p, 1, &tok), TOLK_OK);
        int ids[5] = {0, 300, 7, 7, 123}, ps[5] = {0, 18, 3, 4, 5};
        float *y = malloc(5 * D * sizeof(float));
        CU_ASSERT_EQUAL(be->embed_rows(g_ctx, be, y, &tok, ids, ps, 5, pos, P), TOLK_OK);
        for (size_t i = 0; i < 5; i++)
            for (size_t c = 0; c < D; c++)
                CU_ASSERT_EQUAL(y[i * D + c],
                                E[(size_t)ids[i] * D + c] + pos[(size_t)ps[i] * D + c]);
        float *lg = malloc(5 * V * sizeof(float)), *lr = malloc(5 * V * sizeof(float));
        CU_ASSERT_EQUAL(be->logits(g_ctx, be, lg, y, 5, &tok), TOLK_OK);
        ref_linear(lr, V, y, D, 5, E, V, D, NULL, 0);
        CU_ASSERT(tu_max_rel_diff(lg, lr, 5 * V) < 2e-6);
        int bad_id[1] = {301}, bad_pos[1] = {19}, ok[1] = {0};
        /* the CPU backend checks host ids and positions as well */
        CU_ASSERT_EQUAL(be->embed_rows(g_ctx, be, y, &tok, bad_id, ok, 1, pos, P),
                        TOLK_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(be->embed_rows(g_ctx, be, y, &tok, ok, bad_pos, 1, pos, P),
                        TOLK_ERR_INVALID_ARG);
        /* copy_rows: a column block between different strides (no indices), then a
         * gather + scatter with a skipped row; alloc/upload/download */
        float *src = rnd(9 * 13, -1, 1);
        float *dev = be->alloc(g_ctx, be, 9 * 20 * sizeof(float));
        CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
        CU_ASSERT_EQUAL(be->upload(g_ctx, be, dev, src, 9 * 13 * sizeof(float)), TOLK_OK);
        float *dst = calloc(9 * 20, sizeof(float));
        CU_ASSERT_EQUAL(be->copy_rows(g_ctx, be, dst + 1, 20, NULL, dev + 2, 13, NULL, 9, 5),
                        TOLK_OK);
        for (size_t r = 0; r < 9; r++)
            for (size_t c = 0; c < 20; c++)
                CU_ASSERT_EQUAL(dst[r * 20 + c], (c >= 1 && c < 6) ? src[r * 13 + c + 1] : 0.0f);
        const int di[3] = {4, -1, 0}, si[3] = {8, 2, 3};
        CU_ASSERT_EQUAL(be->copy_rows(g_ctx, be, dst, 20, di, dev, 13, si, 3, 13), TOLK_OK);
        for (size_t c = 0; c < 13; c++) {
            CU_ASSERT_EQUAL(dst[4 * 20 + c], src[8 * 13 + c]);
            CU_ASSERT_EQUAL(dst[0 * 20 + c], src[3 * 13 + c]);
            CU_ASSERT_EQUAL(dst[2 * 20 + c], (c >= 1 && c < 6) ? src[2 * 13 + c + 1] : 0.0f);
        }
        CU_ASSERT_EQUAL(be->download(g_ctx, be, dst, dev, 4 * sizeof(float)), TOLK_OK);
        CU_ASSERT(memcmp(dst, src, 4 * sizeof(float)) == 0);
        CU_ASSERT_PTR_NULL(be->alloc(g_ctx, be, 0));
        CU_ASSERT_PTR_NULL(be->alloc(g_ctx, be, SIZE_MAX - 10));
        CU_ASSERT(strlen(tolk_ctx_last_error(g_ctx)) > 0);
        be->free(be, dev);
        be->weight_free(be, &tok);
        be->destroy(be);
        free(E), free(pos), free(E16), free(y), free(lg), free(lr), free(src), free(dst);
    }
}

int main(void) {
    tolk_ctx_params p = tolk_ctx_default_params();
    p.n_threads = 2;
    if (tolk_ctx_new(&p, &g_ctx) != TOLK_OK) return 1;
    CU_TestInfo tests[] = {{"linear", test_linear},
                           {"linear_row_exact", test_linear_row_exact},
                           {"attention_kvh", test_attention_kvh},
                           {"half_twins", test_half_twins},
                           {"linear_bf16", test_linear_bf16},
                           {"weight_parts", test_weight_parts},
                           {"layernorm_gelu_add", test_layernorm_gelu_add},
                           {"attention", test_attention},
                           {"conv1d", test_conv1d},
                           {"embed_logits_copy", test_embed_logits_copy},
                           CU_TEST_INFO_NULL};
    tu_add_suite("backend_cpu", tests);
    int rc = tu_run();
    tolk_ctx_free(g_ctx);
    return rc;
}

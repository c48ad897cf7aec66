/*
 * backend_host_half.c — the half-activation forms of the backend ops
 * (backend.h: TOLK_LINEAR_X_F16 / _Y_F16 / _GELU, layernorm_h, bias_gelu_h,
 * TOLK_ATTN_OUT_F16 / _QKV_F16, norm_linear) for a backend whose memory is host memory (the CPU):
 * the float16 operands are widened into float32 scratch, the backend's own
 * op runs on them with the half flags cleared (its float32 path), and a
 * float16 result is rounded once. They are the CPU
 * twins the CUDA half-activation path is tested against (the CPU network
 * itself keeps float32 activations: backend.h half_acts = 0), so they are
 * plain rather than fast. Rounding: round to nearest even
 * (tolk_f32_to_f16_n), as the CUDA kernels' __float2half_rn.
 */
#include "backend_host_half.h"

#include "weights.h"

#include <math.h>
#include <stdlib.h>

/* Rows of float16 src (row stride ld) widened into float32 dst [rows,
 * cols] (row stride cols). */
static void widen_into(float *dst, const void *src, size_t ld, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        tolk_f16_to_f32_n((const uint16_t *)src + r * ld, dst + r * cols, cols);
}

/* A [rows, cols] float32 copy of float16 src (row stride ld) with row
 * stride cols; NULL when out of memory. */
static float *widen(const uint16_t *src, size_t ld, size_t rows, size_t cols) {
    const size_t n = rows * cols;
    float *f = tolk_malloc_array(n > 0 ? n : 1, sizeof(float));
    if (f) widen_into(f, src, ld, rows, cols);
    return f;
}

/* Round rows of float32 src (row stride lds) into float16 dst (stride ldd). */
static void narrow(uint16_t *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                   size_t cols) {
    for (size_t r = 0; r < rows; r++)
        tolk_f32_to_f16_n(src + r * lds, dst + r * ldd, cols);
}

tolk_status tolk_host_half_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  const void *x, size_t ldx, size_t M, const tolk_bweight *W,
                                  const void *bias, int flags) {
    if (M == 0) return TOLK_OK;
    if (!y || !x || !W || W->rows <= 0 || W->cols <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear: NULL argument", be->name);
    const size_t N = (size_t)W->rows, K = (size_t)W->cols;
    const int yh = (flags & TOLK_LINEAR_Y_F16) != 0, xh = (flags & TOLK_LINEAR_X_F16) != 0;
    const int gelu = (flags & TOLK_LINEAR_GELU) != 0;
    if (yh && (flags & TOLK_LINEAR_ACCUMULATE))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: linear: a float16 output takes no accumulation", be->name);
    if (gelu && !yh)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: linear: the GELU epilogue needs a float16 output", be->name);
    if (ldx < K || ldy < N || M > SIZE_MAX / (N > K ? N : K) / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear: bad sizes", be->name);
    float *xf = xh ? widen(x, ldx, M, K) : NULL;
    float *yf = yh ? tolk_malloc_array(M * N, sizeof(float)) : NULL;
    float *bf = yh && bias ? widen(bias, N, 1, N) : NULL; /* a float16 y's bias is float16 */
    if ((xh && !xf) || (yh && !yf) || (yh && bias && !bf)) {
        free(xf), free(yf), free(bf);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: linear: out of memory", be->name);
    }
    const int rest = flags & ~(TOLK_LINEAR_X_F16 | TOLK_LINEAR_Y_F16 | TOLK_LINEAR_GELU);
    tolk_status st = be->linear(ctx, be, yh ? yf : y, yh ? N : ldy, xh ? (const void *)xf : x,
                                xh ? K : ldx, M, W, yh ? (const void *)bf : bias, rest);
    if (!st && gelu) /* cuBLASLt's GELU epilogue: the tanh form, in float32 */
        for (size_t i = 0; i < M * N; i++) {
            const float v = yf[i];
            yf[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        }
    if (!st && yh) narrow(y, ldy, yf, N, M, N);
    free(xf), free(yf), free(bf);
    return st;
}

tolk_status tolk_host_half_layernorm(tolk_ctx *ctx, const tolk_backend *be, uint16_t *y,
                                     const float *x, size_t M, size_t D, const float *gamma,
                                     const float *beta, float eps) {
    if (M == 0) return TOLK_OK;
    if (!y || D == 0 || M > SIZE_MAX / D / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: layernorm_h: bad arguments", be->name);
    float *yf = tolk_malloc_array(M * D, sizeof(float));
    if (!yf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: layernorm_h: out of memory", be->name);
    tolk_status st = be->layernorm(ctx, be, yf, x, M, D, gamma, beta, eps);
    if (!st) narrow(y, D, yf, D, M, D);
    free(yf);
    return st;
}

tolk_status tolk_host_half_bias_gelu(tolk_ctx *ctx, const tolk_backend *be, uint16_t *x, size_t ldx,
                                     size_t M, size_t N, const float *bias) {
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || M > SIZE_MAX / N / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bias_gelu_h: bad arguments", be->name);
    float *xf = widen(x, ldx, M, N);
    if (!xf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: bias_gelu_h: out of memory", be->name);
    tolk_status st = be->bias_gelu(ctx, be, xf, N, M, N, bias);
    if (!st) narrow(x, ldx, xf, N, M, N);
    free(xf);
    return st;
}

tolk_status tolk_host_half_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                          size_t ldq, const void *k, const void *v, size_t ldkv,
                                          void *out, size_t ldo, const tolk_attn_desc *desc,
                                          int n_seqs, int max_n_q, int max_n_kv, int n_head,
                                          int d_head, float scale, int flags) {
    if (n_seqs <= 0) return TOLK_OK;
    if (!out || !desc)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention_desc: NULL argument", be->name);
    /* the float32 result in rows [0, end) of a scratch with out's stride */
    size_t end = 0;
    for (int i = 0; i < n_seqs; i++)
        if (desc[i].n_q > 0 && desc[i].q_row >= 0 && (size_t)desc[i].q_row + desc[i].n_q > end)
            end = (size_t)desc[i].q_row + (size_t)desc[i].n_q;
    if (end == 0) return TOLK_OK;
    if (ldo == 0 || end > SIZE_MAX / ldo / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention_desc: bad sizes", be->name);
    float *of = tolk_malloc_array(end * ldo, sizeof(float));
    if (!of) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: attention_desc: out of memory", be->name);
    tolk_status st =
        be->attention_desc(ctx, be, q, ldq, k, v, ldkv, of, ldo, desc, n_seqs, max_n_q, max_n_kv,
                           n_head, d_head, scale, flags & ~TOLK_ATTN_OUT_F16);
    const size_t width = (size_t)n_head * (size_t)d_head;
    for (int i = 0; i < n_seqs && !st; i++)
        if (desc[i].n_q > 0 && desc[i].q_row >= 0)
            narrow((uint16_t *)out + (size_t)desc[i].q_row * ldo, ldo,
                   of + (size_t)desc[i].q_row * ldo, ldo, (size_t)desc[i].n_q, width);
    free(of);
    return st;
}

tolk_status tolk_host_half_attention(tolk_ctx *ctx, const tolk_backend *be,
                                     const tolk_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                                     size_t ldq, size_t ldkv, size_t ldo, float scale,
                                     int qkv_f16) {
    if (n_seqs <= 0) return TOLK_OK;
    if (!seqs || ldo == 0 || n_head < 1 || d_head < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention: bad arguments", be->name);
    const size_t width = (size_t)n_head * (size_t)d_head;
    /* every sequence's float32 result in its own rows of one scratch; with
     * float16 q, k, v their widenings too (row stride width) */
    size_t rows = 0, kv_rows = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (seqs[i].n_q < 0 || seqs[i].n_kv < 0 || !seqs[i].out ||
            (qkv_f16 && (!seqs[i].q || !seqs[i].k || !seqs[i].v)))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention: bad sequence %d", be->name,
                             i);
        rows += (size_t)seqs[i].n_q;
        kv_rows += (size_t)seqs[i].n_kv;
    }
    if (rows == 0) return TOLK_OK;
    if (rows > SIZE_MAX / ldo / sizeof(float) || kv_rows > SIZE_MAX / width / sizeof(float) / 2 ||
        rows > SIZE_MAX / width / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention: bad sizes", be->name);
    float *of = tolk_malloc_array(rows * ldo, sizeof(float));
    float *qf = qkv_f16 ? tolk_malloc_array(rows * width, sizeof(float)) : NULL;
    float *kvf = qkv_f16 ? tolk_malloc_array(kv_rows * 2 * width + 1, sizeof(float)) : NULL;
    tolk_attn_seq *s2 = tolk_malloc_array((size_t)n_seqs, sizeof *s2);
    if (!of || !s2 || (qkv_f16 && (!qf || !kvf))) {
        free(of), free(s2), free(qf), free(kvf);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: attention: out of memory", be->name);
    }
    size_t r = 0, rk = 0;
    for (int i = 0; i < n_seqs; i++) {
        s2[i] = seqs[i];
        s2[i].out = of + r * ldo;
        if (qkv_f16) {
            const size_t nq = (size_t)seqs[i].n_q, nk = (size_t)seqs[i].n_kv;
            float *q = qf + r * width, *k = kvf + rk * 2 * width, *v = k + nk * width;
            widen_into(q, seqs[i].q, ldq, nq, width);
            widen_into(k, seqs[i].k, ldkv, nk, width);
            widen_into(v, seqs[i].v, ldkv, nk, width);
            s2[i].q = q, s2[i].k = k, s2[i].v = v;
            rk += nk;
        }
        r += (size_t)seqs[i].n_q;
    }
    tolk_status st = be->attention(ctx, be, s2, n_seqs, n_head, d_head, qkv_f16 ? width : ldq,
                                   qkv_f16 ? width : ldkv, ldo, scale, 0);
    for (int i = 0; i < n_seqs && !st; i++)
        narrow((uint16_t *)(void *)seqs[i].out, ldo, s2[i].out, ldo, (size_t)seqs[i].n_q, width);
    free(of), free(s2), free(qf), free(kvf);
    return st;
}

tolk_status tolk_host_norm_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  const float *x, size_t ldx, size_t M, const float *gamma,
                                  const float *beta, float eps, const tolk_bweight *W,
                                  const float *bias, int flags) {
    if (M == 0) return TOLK_OK;
    if (!y || !x || !W || W->rows <= 0 || W->cols <= 0 ||
        (flags & ~(TOLK_NORM_LINEAR_Y_F16 | TOLK_NORM_LINEAR_GELU)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: norm_linear: bad arguments", be->name);
    const size_t N = (size_t)W->rows, K = (size_t)W->cols;
    if (ldx < K || ldy < N || M > SIZE_MAX / (N > K ? N : K) / sizeof(float))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: norm_linear: bad sizes", be->name);
    const int yh = (flags & TOLK_NORM_LINEAR_Y_F16) != 0;
    float *h = tolk_malloc_array(M * K, sizeof(float));
    uint16_t *hh = tolk_malloc_array(M * K, sizeof(uint16_t));
    float *yf = yh ? tolk_malloc_array(M * N, sizeof(float)) : NULL; /* a float16 y's float32 */
    if (!h || !hh || (yh && !yf)) {
        free(h), free(hh), free(yf);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: norm_linear: out of memory", be->name);
    }
    /* the LayerNorm (rows of x at stride ldx), rounded to float16 and
     * widened again: the product's input */
    tolk_status st = TOLK_OK;
    for (size_t r = 0; r < M && !st; r++)
        st = be->layernorm(ctx, be, h + r * K, x + r * ldx, 1, K, gamma, beta, eps);
    if (!st) {
        narrow(hh, K, h, K, M, K);
        widen_into(h, hh, K, M, K);
    }
    float *out = yh ? yf : (float *)y;
    const size_t ldo = yh ? N : ldy;
    if (!st) st = be->linear(ctx, be, out, ldo, h, K, M, W, bias, 0);
    if (!st && (flags & TOLK_NORM_LINEAR_GELU)) st = be->bias_gelu(ctx, be, out, ldo, M, N, NULL);
    if (!st && yh) narrow(y, ldy, yf, N, M, N);
    free(h), free(hh), free(yf);
    return st;
}

/*
 * gemm_i8.c — Bergamot's int8 product (intgemm Int8Shift with precomputed
 * activation scales) on the CPU: an AVX-512 VNNI kernel and its plain
 * reference loop (see gemm_i8.h).
 */
#include "gemm_i8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TOLK_I8_X86 1
#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

int tolk_i8_native(void) {
#ifdef TOLK_I8_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vnni") && !getenv("TOLK_NO_AVX512");
    }
    return cached;
#else
    return 0;
#endif
}

void tolk_i8_free(tolk_i8_weight *w) {
    if (!w) return;
    free(w->packed);
    free(w->w);
    free(w->colsum);
    free(w->qw);
    memset(w, 0, sizeof *w);
}

tolk_status tolk_i8_pack(tolk_ctx *ctx, const int8_t *const *parts, const int *rows,
                         const float *qw, int n_parts, int K, tolk_i8_weight *out) {
    memset(out, 0, sizeof *out);
    int N = 0;
    for (int i = 0; i < n_parts; i++) {
        if (!parts || !parts[i] || rows[i] < 1 || !(qw[i] > 0.0f) || N > INT32_MAX - rows[i])
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "gemm_i8: bad weight");
        N += rows[i];
    }
    if (n_parts < 1 || K < 1) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "gemm_i8: bad weight");
    const int nb = (N + TOLK_I8_NB - 1) / TOLK_I8_NB, K4 = (K + 3) / 4;
    const size_t bytes = (size_t)nb * (size_t)K4 * 64;
    out->packed = aligned_alloc(64, bytes);
    out->w = malloc((size_t)N * (size_t)K);
    out->colsum = malloc((size_t)N * sizeof(int32_t));
    out->qw = malloc((size_t)N * sizeof(float));
    if (!out->packed || !out->w || !out->colsum || !out->qw) {
        tolk_i8_free(out);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "gemm_i8: out of memory");
    }
    memset(out->packed, 0, bytes);
    for (int i = 0, n0 = 0; i < n_parts; n0 += rows[i], i++) {
        memcpy(out->w + (size_t)n0 * (size_t)K, parts[i], (size_t)rows[i] * (size_t)K);
        for (int r = 0; r < rows[i]; r++)
            out->qw[n0 + r] = qw[i];
    }
    for (int n = 0; n < N; n++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) {
            const int8_t v = out->w[(size_t)n * (size_t)K + (size_t)k];
            s += v;
            /* block n / 16, group k / 4: byte (n % 16) * 4 + k % 4 */
            out->packed[((size_t)(n / TOLK_I8_NB) * (size_t)K4 + (size_t)(k / 4)) * 64 +
                        (size_t)(n % TOLK_I8_NB) * 4 + (size_t)(k % 4)] = v;
        }
        out->colsum[n] = s;
    }
    out->N = N, out->K = K, out->K4 = K4;
    return TOLK_OK;
}

/* intgemm's quantisation of an activation: round half to even, clamp. */
static inline int quant(float x, float qa) {
    float v = nearbyintf(x * qa);
    return v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
}

void tolk_gemm_i8_ref(const float *X, int M, int ldx, float qa, const tolk_i8_weight *W,
                      const float *bias, float *Y, int ldy) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < W->N; n++) {
            const float unq = 1.0f / (qa * W->qw[n]);
            int32_t acc = 0;
            for (int k = 0; k < W->K; k++)
                acc += (quant(X[(size_t)m * ldx + k], qa) + 127) *
                       (int32_t)W->w[(size_t)n * (size_t)W->K + (size_t)k];
            acc -= 127 * W->colsum[n];
            Y[(size_t)m * ldy + n] = (float)acc * unq + (bias ? bias[n] : 0.0f);
        }
}

#ifdef TOLK_I8_X86
/* Rows [m0, m1) x blocks [b0, b1): quantised rows aq (K4 * 4 bytes each). */
AVX512VNNI static void kernel(const uint8_t *aq, int rows, int K4, const tolk_i8_weight *W, int b0,
                              int b1, const float *bias, float qa, float *Y, int ldy) {
    const __m512i c127 = _mm512_set1_epi32(127);
    for (int b = b0; b < b1; b++) {
        const int8_t *wp = W->packed + (size_t)b * (size_t)K4 * 64;
        const int n0 = b * TOLK_I8_NB, nn = W->N - n0 < TOLK_I8_NB ? W->N - n0 : TOLK_I8_NB;
        const __mmask16 mask = (__mmask16)((1u << nn) - 1u);
        const __m512i cs = _mm512_maskz_loadu_epi32(mask, W->colsum + n0);
        const __m512 bi = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
        const __m512 qw = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), mask, W->qw + n0);
        const __m512 unq =
            _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(_mm512_set1_ps(qa), qw));
        int r = 0;
        for (; r + 4 <= rows; r += 4) { /* four rows share each weight load */
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            const uint8_t *q0 = aq + (size_t)r * (size_t)K4 * 4;
            const size_t st = (size_t)K4 * 4;
            for (int g = 0; g < K4; g++) {
                const __m512i w = _mm512_load_si512((const void *)(wp + (size_t)g * 64));
                int32_t v0, v1, v2, v3;
                memcpy(&v0, q0 + 4 * (size_t)g, 4), memcpy(&v1, q0 + st + 4 * (size_t)g, 4);
                memcpy(&v2, q0 + 2 * st + 4 * (size_t)g, 4);
                memcpy(&v3, q0 + 3 * st + 4 * (size_t)g, 4);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(v0), w);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(v1), w);
                a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(v2), w);
                a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(v3), w);
            }
            __m512i acc[4] = {a0, a1, a2, a3};
            for (int j = 0; j < 4; j++) {
                __m512i t = _mm512_sub_epi32(acc[j], _mm512_mullo_epi32(c127, cs));
                __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(t), unq), bi);
                _mm512_mask_storeu_ps(Y + (size_t)(r + j) * (size_t)ldy + n0, mask, y);
            }
        }
        for (; r < rows; r++) {
            __m512i a0 = _mm512_setzero_si512();
            const uint8_t *q0 = aq + (size_t)r * (size_t)K4 * 4;
            for (int g = 0; g < K4; g++) {
                int32_t v0;
                memcpy(&v0, q0 + 4 * (size_t)g, 4);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(v0),
                                         _mm512_load_si512((const void *)(wp + (size_t)g * 64)));
            }
            __m512i t = _mm512_sub_epi32(a0, _mm512_mullo_epi32(c127, cs));
            __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(t), unq), bi);
            _mm512_mask_storeu_ps(Y + (size_t)r * (size_t)ldy + n0, mask, y);
        }
    }
}
#endif

tolk_status tolk_gemm_i8(tolk_ctx *ctx, const float *X, int M, int ldx, float qa,
                         const tolk_i8_weight *W, const float *bias, float *Y, int ldy,
                         int n_threads) {
    if (M == 0) return TOLK_OK;
    if (!X || !W || !W->packed || !Y || M < 0 || ldx < W->K || ldy < W->N || !(qa > 0.0f))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "gemm_i8: bad arguments");
#ifdef TOLK_I8_X86
    if (tolk_i8_native()) {
        const int K4 = W->K4;
        uint8_t *aq = malloc((size_t)M * (size_t)K4 * 4);
        if (!aq) return tolk_fail(ctx, TOLK_ERR_NOMEM, "gemm_i8: out of memory");
        for (int m = 0; m < M; m++) { /* shifted unsigned activations, zero padded */
            uint8_t *q = aq + (size_t)m * (size_t)K4 * 4;
            for (int k = 0; k < W->K; k++)
                q[k] = (uint8_t)(quant(X[(size_t)m * ldx + k], qa) + 127);
            for (int k = W->K; k < K4 * 4; k++)
                q[k] = 0;
        }
        const int nb = (W->N + TOLK_I8_NB - 1) / TOLK_I8_NB;
        int nt = n_threads < 1 ? 1 : n_threads;
        if ((double)M * W->N * W->K < 4e5) nt = 1;
        if (nt > nb) nt = nb;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), per = (nb + nt - 1) / nt;
            const int b0 = t * per, b1 = b0 + per < nb ? b0 + per : nb;
            if (b0 < b1) kernel(aq, M, K4, W, b0, b1, bias, qa, Y, ldy);
        }
#else
        kernel(aq, M, K4, W, 0, nb, bias, qa, Y, ldy);
#endif
        free(aq);
        return TOLK_OK;
    }
#endif
    (void)n_threads;
    tolk_gemm_i8_ref(X, M, ldx, qa, W, bias, Y, ldy);
    return TOLK_OK;
}

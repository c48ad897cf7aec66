/*
 * norm_linear.h — a LayerNorm fused into the product that reads it, for
 * the few rows of a decoder step (kernels/norm_linear.cu). Reference:
 * openai-whisper's ResidualAttentionBlock, where every attention and MLP
 * input is LayerNorm(x) followed by a Linear (and the final ln before the
 * tied logits); here the normalised rows are rounded to float16 and the
 * product runs on tensor cores with float32 accumulation, as the half
 * modes' layernorm_h + cuBLASLt product do. CPU twin:
 * tolk_host_norm_linear (src/backend_host_half.c).
 */
#ifndef TOLK_KERNELS_NORM_LINEAR_H
#define TOLK_KERNELS_NORM_LINEAR_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* The most rows one call takes (one 16-row tensor-core tile). */
#define TOLK_CU_NORM_LINEAR_ROWS 16

/* For r < M, n < N:
 *   h[r, :] = half(LayerNorm(x[r, :]) * gamma + beta)    (two-pass mean and
 *             biased variance over K, 1 / sqrt(var + eps); float32, rounded
 *             once to float16)
 *   v       = sum_k h[r, k] W[n, k] + bias[n]            (float32)
 *   y[r, n] = gelu ? 0.5 v (1 + erf(v / sqrt 2)) : v     (y_dtype: float32
 *             or float16, rounded once)
 * x float32 [M, K] (row stride ldx), W float16 [N, K] row-major with
 * 16-byte aligned rows, gamma / beta / bias float32 [K] / [K] / [N] or NULL
 * (1, 0, 0); y [M, N] row stride ldy, not overlapping x. Each row's result
 * depends on that row alone (fixed summation order whatever M is).
 * Requires 1 <= M <= TOLK_CU_NORM_LINEAR_ROWS, K a multiple of 32 with
 * tolk_cu_norm_linear_fits(K), N >= 1; else TOLK_CU_EINVAL. */
int tolk_cu_norm_linear(void *y, int y_dtype, long long ldy, const float *x, long long ldx, int M,
                        int K, const float *gamma, const float *beta, float eps, const void *W,
                        int N, const float *bias, int gelu, void *stream);

/* 1 when a row width K fits the kernel's shared memory (K <= 1504: every
 * Whisper width), 0 otherwise. */
int tolk_cu_norm_linear_fits(int K);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_NORM_LINEAR_H */

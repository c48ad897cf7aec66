/*
 * layernorm.h — row LayerNorm on the GPU (kernels/layernorm.cu).
 * Reproduces torch.nn.LayerNorm as openai-whisper uses it: statistics in
 * float32 whatever the storage type, biased variance, eps inside the root.
 */
#ifndef TOLK_KERNELS_LAYERNORM_H
#define TOLK_KERNELS_LAYERNORM_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* For each row r < rows of x [rows, cols] (row stride ldx, type x_dtype):
 *   mean = sum_c x[r,c] / cols;  var = sum_c (x[r,c] - mean)^2 / cols
 *   y[r,c] = (x[r,c] - mean) / sqrt(var + eps) * gamma[c] + beta[c]
 * into y [rows, cols] (row stride ldy, type y_dtype; e.g. float32 in,
 * float16 out to feed a half-precision GEMM). gamma, beta: float32 [cols]
 * device vectors, NULL meaning 1 and 0. y may equal x only when the types
 * and strides are equal. Requires 1 <= cols, 0 <= rows <= INT32_MAX,
 * ld* >= cols. Two-pass statistics (mean, then centred squares). */
int tolk_cu_layernorm(void *y, int y_dtype, long long ldy, const void *x, int x_dtype,
                      long long ldx, long long rows, int cols, const float *gamma,
                      const float *beta, float eps, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_LAYERNORM_H */

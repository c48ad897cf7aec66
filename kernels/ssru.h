/*
 * ssru.h — the elementwise ops of the translation decoder (src/mt_net.c)
 * on the GPU (kernels/ssru.cu): the SSRU cell step of Marian's rnn::SSRU
 * and the fused bias + ReLU of its feed-forward layers. Float32 storage
 * (activations are float32 on every backend). CPU twins: backend_cpu.c's
 * ssru and bias_relu.
 */
#ifndef TOLK_KERNELS_SSRU_H
#define TOLK_KERNELS_SSRU_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* x[r, c] = max(0, x[r, c] + bias[c]) in place for r < rows, c < cols;
 * row stride ldx >= cols; bias [cols] or NULL. */
int tolk_cu_bias_relu(float *x, long long ldx, long long rows, int cols, const float *bias,
                      void *stream);

/* One SSRU step on rows x d: with xw = xf[r, 0:d], f = xf[r, d:2d] (row
 * stride ldxf >= 2d), s = sigmoid(f) in Marian's form,
 *   c[r, i] = s c[r, i] + (1 - s) xw;   out[r, i] = max(0, c[r, i]).
 * c and out [rows, d] contiguous, out not aliasing c or xf. */
int tolk_cu_ssru(float *out, float *c, const float *xf, long long ldxf, long long rows, int d,
                 void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_SSRU_H */

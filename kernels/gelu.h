/*
 * gelu.h — fused bias + GELU on the GPU (kernels/gelu.cu): the exact (erf)
 * GELU of torch.nn.GELU() / F.gelu that openai-whisper applies after the
 * convolutions and the first MLP layer.
 */
#ifndef TOLK_KERNELS_GELU_H
#define TOLK_KERNELS_GELU_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* y[r, c] = g(x[r, c] + bias[c]) with g(v) = 0.5 v (1 + erf(v / sqrt 2)),
 * for r < rows, c < cols. x [rows, cols] row stride ldx, y row stride ldy,
 * both of type dtype; bias float32 [cols] or NULL. y may equal x (same ld).
 * Requires cols >= 1, rows >= 0, ld* >= cols. */
int tolk_cu_bias_gelu(void *y, long long ldy, const void *x, long long ldx, long long rows,
                      int cols, const float *bias, int dtype, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_GELU_H */

/*
 * conv1d.h — the im2col half of Whisper's convolutional stem on the GPU
 * (kernels/conv1d.cu). Conv1d(kernel 3, padding 1, stride 1 or 2) is
 *   y[t, o] = bias[o] + sum_{c,k} W[o, c, k] x[stride t + k - 1, c]
 * = (cols · W'^T)[t, o] with W' = W viewed as [C_out, C_in * 3] and
 *   cols[t, c * 3 + k] = x[stride t + k - 1, c]   (0 outside [0, T_in)),
 * so the caller runs im2col, then a GEMM (tolk_cu_gemm), then bias + GELU.
 * Reproduces torch.nn.Conv1d(n, d, kernel_size=3, stride=s, padding=1).
 */
#ifndef TOLK_KERNELS_CONV1D_H
#define TOLK_KERNELS_CONV1D_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Input layouts. */
enum {
    TOLK_CU_CONV_CT = 0, /* x [batch, C_in, T_in]: channel-major (mel windows) */
    TOLK_CU_CONV_TC = 1  /* x [batch, T_in, C_in]: time-major (activations) */
};

/* T_out of a kernel-3, padding-1 convolution: (t_in - 1) / stride + 1. */
static inline long long tolk_cu_conv_t_out(long long t_in, int stride) {
    return (t_in - 1) / stride + 1;
}

/* Write cols [batch, T_out, C_in * 3] (type cols_dtype, contiguous) from x
 * (type x_dtype, contiguous, layout TOLK_CU_CONV_CT or _TC) as above. The
 * rows of cols for window b are b * T_out .. b * T_out + T_out - 1, so one
 * GEMM covers every window. Requires batch >= 0, c_in >= 1, t_in >= 1,
 * stride 1 or 2; cols must not overlap x. */
int tolk_cu_im2col_k3(void *cols, int cols_dtype, const void *x, int x_dtype, int layout,
                      long long batch, int c_in, int t_in, int stride, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_CONV1D_H */

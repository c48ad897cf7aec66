/*
 * softmax.h — row softmax on the GPU (kernels/softmax.cu), used by the
 * translation network's attention-free paths (mt_net.c through the backend's
 * softmax op). CPU twin: backend_cpu.c's cpu_softmax; checked against it in
 * tests/test_cuda_kernels.c (backend) and tests/test_mt.c (the network).
 */
#ifndef TOLK_KERNELS_SOFTMAX_H
#define TOLK_KERNELS_SOFTMAX_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* y = softmax(x * inv_temp) over each row (log_out = 0) or its logarithm,
 * log_softmax (log_out = 1): max-subtracted, float32 sums. x, y: DEVICE
 * float32 [rows, n] with row strides ldx, ldy (>= n); y may equal x (same
 * ld). A row that is entirely -inf gives 0 (softmax) or -inf (log-softmax)
 * instead of NaN. Requires n >= 1, 0 <= rows < 2^31, inv_temp > 0.
 * Returns 0, TOLK_CU_EINVAL or a cudaError_t (launch). */
int tolk_cu_softmax(float *y, long long ldy, const float *x, long long ldx, long long rows, int n,
                    float inv_temp, int log_out, void *stream);

TOLK_CU_END_DECLS

#endif

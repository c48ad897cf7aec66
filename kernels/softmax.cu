/*
 * softmax.cu — row softmax / log-softmax (see softmax.h): one block of 256
 * threads per row, three passes over the row (max, sum of exponentials,
 * output), float32 throughout. CPU twin: backend_cpu.c's cpu_softmax.
 */
#include "kcommon.cuh"
#include "softmax.h"

using namespace tolkcu;

#define LT 256 /* threads per row block */

static __global__ void __launch_bounds__(LT)
    softmax_kernel(float *y, long long ldy, const float *x, long long ldx, int n, float inv_temp,
                   int log_out) {
    __shared__ float red[32];
    const float *xr = x + (long long)blockIdx.x * ldx;
    float *yr = y + (long long)blockIdx.x * ldy;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += LT)
        mx = fmaxf(mx, xr[j] * inv_temp);
    mx = block_max(mx, red);
    if (mx == -INFINITY) { /* block-uniform: the whole row is masked */
        for (int j = threadIdx.x; j < n; j += LT)
            yr[j] = log_out ? -INFINITY : 0.0f;
        return;
    }
    float s = 0.0f;
    for (int j = threadIdx.x; j < n; j += LT)
        s += expf(xr[j] * inv_temp - mx);
    s = block_sum(s, red);
    const float ls = logf(s), inv = 1.0f / s;
    for (int j = threadIdx.x; j < n; j += LT) {
        const float t = xr[j] * inv_temp - mx;
        yr[j] = log_out ? t - ls : expf(t) * inv;
    }
}

extern "C" int tolk_cu_softmax(float *y, long long ldy, const float *x, long long ldx,
                               long long rows, int n, float inv_temp, int log_out, void *stream) {
    if (n < 1 || rows < 0 || rows > 2147483647LL || ldx < n || ldy < n || !(inv_temp > 0.0f))
        return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !y) return TOLK_CU_EINVAL;
    softmax_kernel<<<(unsigned)rows, LT, 0, (cudaStream_t)stream>>>(y, ldy, x, ldx, n, inv_temp,
                                                                    log_out != 0);
    return (int)cudaGetLastError();
}

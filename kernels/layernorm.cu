/*
 * layernorm.cu — row LayerNorm (see layernorm.h). CPU twin: the
 * backend_cpu.c layernorm op and ref_layernorm in tests/test_cuda_kernels.c.
 * One block of 256 threads per row; the row is read three times (mean,
 * variance, output) and stays in L1/L2 between passes for Whisper widths.
 */
#include "kcommon.cuh"
#include "layernorm.h"

using namespace tolkcu;

template <typename TI, typename TO>
static __global__ void __launch_bounds__(256)
    layernorm_kernel(TO *y, long long ldy, const TI *x, long long ldx, int cols,
                     const float *__restrict__ gamma, const float *__restrict__ beta, float eps) {
    __shared__ float red[32];
    const TI *xr = x + (long long)blockIdx.x * ldx;
    TO *yr = y + (long long)blockIdx.x * ldy;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        s += to_f(xr[c]);
    const float mean = block_sum(s, red) / (float)cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float d = to_f(xr[c]) - mean;
        v += d * d;
    }
    const float var = block_sum(v, red) / (float)cols;
    const float rstd = rsqrtf(var + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float t = (to_f(xr[c]) - mean) * rstd;
        if (gamma) t *= gamma[c];
        if (beta) t += beta[c];
        yr[c] = from_f<TO>(t);
    }
}

extern "C" int tolk_cu_layernorm(void *y, int y_dtype, long long ldy, const void *x, int x_dtype,
                                 long long ldx, long long rows, int cols, const float *gamma,
                                 const float *beta, float eps, void *stream) {
    if (cols < 1 || rows < 0 || rows > 2147483647LL || ldx < cols || ldy < cols)
        return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !y) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(x_dtype, TI, TOLK_CU_DISPATCH(y_dtype, TO, {
                         layernorm_kernel<TI, TO><<<(unsigned)rows, 256, 0, st>>>(
                             (TO *)y, ldy, (const TI *)x, ldx, cols, gamma, beta, eps);
                     }));
    return (int)cudaGetLastError();
}

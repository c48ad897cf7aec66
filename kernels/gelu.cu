/*
 * gelu.cu — fused bias + exact GELU (see gelu.h). CPU twin: backend_cpu.c's
 * bias_gelu and ref_gelu in tests/test_cuda_kernels.c. 2-D grid: x over
 * columns, y over rows (looping when rows > 65535).
 */
#include "gelu.h"
#include "kcommon.cuh"

using namespace tolkcu;

template <typename T>
static __global__ void bias_gelu_kernel(T *y, long long ldy, const T *x, long long ldx,
                                        long long rows, int cols, const float *bias) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const float bc = bias ? bias[c] : 0.0f;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const float v = to_f(x[r * ldx + c]) + bc;
        y[r * ldy + c] = from_f<T>(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
    }
}

extern "C" int tolk_cu_bias_gelu(void *y, long long ldy, const void *x, long long ldx,
                                 long long rows, int cols, const float *bias, int dtype,
                                 void *stream) {
    if (cols < 1 || rows < 0 || ldx < cols || ldy < cols) return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !y) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((cols + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(dtype, T, {
        bias_gelu_kernel<T><<<grid, 256, 0, st>>>((T *)y, ldy, (const T *)x, ldx, rows, cols, bias);
    });
    return (int)cudaGetLastError();
}

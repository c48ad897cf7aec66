/*
 * ssru.cu — the SSRU cell step and bias + ReLU of the translation decoder
 * (see ssru.h). CPU twins: backend_cpu.c's ssru and bias_relu; tested
 * against reference loops in tests/test_cuda_kernels.c. 2-D grid: x over
 * columns, y over rows (looping when rows > 65535).
 */
#include "kcommon.cuh"
#include "ssru.h"

static __global__ void bias_relu_kernel(float *x, long long ldx, long long rows, int cols,
                                        const float *bias) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const float bc = bias ? bias[c] : 0.0f;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const float v = x[r * ldx + c] + bc;
        x[r * ldx + c] = v > 0.0f ? v : 0.0f;
    }
}

static __device__ __forceinline__ float marian_sigmoid(float f) {
    if (f > 0.0f) return 1.0f / (1.0f + expf(-f));
    const float e = expf(f);
    return e / (1.0f + e);
}

static __global__ void ssru_kernel(float *out, float *c, const float *xf, long long ldxf,
                                   long long rows, int d) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= d) return;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y) {
        const float xw = xf[r * ldxf + i], s = marian_sigmoid(xf[r * ldxf + d + i]);
        const float v = __fadd_rn(__fmul_rn(s, c[r * d + i]), __fmul_rn(1.0f - s, xw));
        c[r * d + i] = v;
        out[r * d + i] = v > 0.0f ? v : 0.0f;
    }
}

extern "C" int tolk_cu_bias_relu(float *x, long long ldx, long long rows, int cols,
                                 const float *bias, void *stream) {
    if (cols < 1 || rows < 0 || ldx < cols) return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((cols + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
    bias_relu_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(x, ldx, rows, cols, bias);
    return (int)cudaGetLastError();
}

extern "C" int tolk_cu_ssru(float *out, float *c, const float *xf, long long ldxf, long long rows,
                            int d, void *stream) {
    if (d < 1 || rows < 0 || ldxf < 2LL * d) return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!out || !c || !xf) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((d + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
    ssru_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>(out, c, xf, ldxf, rows, d);
    return (int)cudaGetLastError();
}

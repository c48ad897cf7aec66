/*
 * conv1d.cu — im2col for the kernel-3 convolutions of Whisper's stem (see
 * conv1d.h). CPU twin: ref_conv1d in tests/test_cuda_kernels.c (a direct
 * convolution loop) and backend_cpu.c's conv1d. One thread per (window,
 * output frame, input channel) writes the 3 taps; consecutive threads
 * write consecutive cols elements.
 */
#include "conv1d.h"
#include "kcommon.cuh"

using namespace tolkcu;

template <typename TI, typename TO>
static __global__ void im2col_k3_kernel(TO *__restrict__ cols, const TI *__restrict__ x, int layout,
                                        long long batch, int c_in, int t_in, int t_out,
                                        int stride) {
    const long long n = batch * t_out * (long long)c_in;
    const long long gs = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gs) {
        const int c = (int)(i % c_in);
        const long long bt = i / c_in; /* b * t_out + t */
        const int t = (int)(bt % t_out);
        const long long b = bt / t_out;
        const TI *xb = x + b * (long long)c_in * t_in;
#pragma unroll
        for (int k = 0; k < 3; k++) {
            const int ti = t * stride + k - 1;
            float v = 0.0f;
            if (ti >= 0 && ti < t_in)
                v = to_f(layout == TOLK_CU_CONV_CT ? xb[(long long)c * t_in + ti]
                                                   : xb[(long long)ti * c_in + c]);
            cols[i * 3 + k] = from_f<TO>(v);
        }
    }
}

extern "C" int tolk_cu_im2col_k3(void *cols, int cols_dtype, const void *x, int x_dtype, int layout,
                                 long long batch, int c_in, int t_in, int stride, void *stream) {
    if (batch < 0 || c_in < 1 || t_in < 1 || (stride != 1 && stride != 2) ||
        (layout != TOLK_CU_CONV_CT && layout != TOLK_CU_CONV_TC))
        return TOLK_CU_EINVAL;
    const int t_out = (int)tolk_cu_conv_t_out(t_in, stride);
    /* 3 * batch * t_out * c_in must fit in 63 bits */
    if (batch > 0 && (long long)t_out * c_in > 3000000000000000000LL / batch) return TOLK_CU_EINVAL;
    if (batch == 0) return 0;
    if (!cols || !x) return TOLK_CU_EINVAL;
    const long long n = batch * t_out * (long long)c_in;
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(x_dtype, TI, TOLK_CU_DISPATCH(cols_dtype, TO, {
                         im2col_k3_kernel<TI, TO><<<tolk_cu_grid(n, 256), 256, 0, st>>>(
                             (TO *)cols, (const TI *)x, layout, batch, c_in, t_in, t_out, stride);
                     }));
    return (int)cudaGetLastError();
}

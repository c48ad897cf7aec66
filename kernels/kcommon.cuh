/*
 * kcommon.cuh — device-side helpers shared by the kernels in kernels/
 * (CUDA C++ only, never included from C): float conversions of the storage
 * types, warp and block reductions, and the dtype dispatch macro.
 */
#ifndef TOLK_KCOMMON_CUH
#define TOLK_KCOMMON_CUH

#include "kcommon.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

namespace tolkcu {

/* Storage type -> float32. */
__device__ __forceinline__ float to_f(float x) {
    return x;
}
__device__ __forceinline__ float to_f(__half x) {
    return __half2float(x);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

/* float32 -> storage type, round to nearest even. */
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ __half from_f<__half>(float x) {
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum / max of v over the whole block; every thread gets the result.
 * blockDim.x must be a multiple of 32 and <= 1024; every thread of the
 * block must call it (it synchronises). scratch: 32 floats of shared memory
 * that are free for the duration of the call. */
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous reduction */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

} /* namespace tolkcu */

/* Run the statements in ... with the typedef T bound to the storage type of
 * dtype (TOLK_CU_F32/F16/BF16); return TOLK_CU_EINVAL from the enclosing
 * function for any other value. */
#define TOLK_CU_DISPATCH(dtype, T, ...)                                                            \
    switch (dtype) {                                                                               \
    case TOLK_CU_F32: {                                                                            \
        typedef float T;                                                                           \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case TOLK_CU_F16: {                                                                            \
        typedef __half T;                                                                          \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case TOLK_CU_BF16: {                                                                           \
        typedef __nv_bfloat16 T;                                                                   \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    default:                                                                                       \
        return TOLK_CU_EINVAL;                                                                     \
    }

/* Blocks for a grid-stride loop over n elements with `threads` per block. */
static inline unsigned tolk_cu_grid(long long n, int threads) {
    long long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 8) b = 65535LL * 8;
    return (unsigned)b;
}

#endif /* TOLK_KCOMMON_CUH */

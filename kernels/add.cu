/*
 * add.cu — broadcast additions (see add.h). CPU twin: backend_cpu.c's add
 * and ref_add in tests/test_cuda_kernels.c. A grid-stride loop; the modulo
 * is skipped when an operand is elementwise (period == n).
 */
#include "add.h"
#include "kcommon.cuh"

using namespace tolkcu;

template <typename T>
static __global__ void add_kernel(T *y, const T *a, const T *b, long long pb, const float *c,
                                  long long pc, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = to_f(a[i]);
        if (b) v += to_f(b[pb == n ? i : i % pb]);
        if (c) v += c[pc == n ? i : i % pc];
        y[i] = from_f<T>(v);
    }
}

extern "C" int tolk_cu_add(void *y, const void *a, const void *b, long long period_b,
                           const float *c, long long period_c, long long n, int dtype,
                           void *stream) {
    if (n < 0 || (b && period_b < 1) || (c && period_c < 1)) return TOLK_CU_EINVAL;
    if (n == 0) return 0;
    if (!y || !a) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(dtype, T, {
        add_kernel<T><<<tolk_cu_grid(n, 256), 256, 0, st>>>((T *)y, (const T *)a, (const T *)b,
                                                            period_b, c, period_c, n);
    });
    return (int)cudaGetLastError();
}

/*
 * convert.cu — strided storage-type conversion (see convert.h). CPU twin:
 * tolk_f32_to_f16 / tolk_f16_to_f32 (weights.h) in the tests. Grid-stride
 * over rows * cols with one 64-bit division per element (a copy is
 * bandwidth-bound; the division is hidden).
 */
#include "convert.h"
#include "kcommon.cuh"

using namespace tolkcu;

template <typename TI, typename TO>
static __global__ void convert_kernel(TO *__restrict__ y, long long ldy, const TI *__restrict__ x,
                                      long long ldx, long long rows, long long cols) {
    const long long n = rows * cols;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const long long r = i / cols, c = i - r * cols;
        y[r * ldy + c] = from_f<TO>(to_f(x[r * ldx + c]));
    }
}

extern "C" int tolk_cu_convert(void *y, int y_dtype, long long ldy, const void *x, int x_dtype,
                               long long ldx, long long rows, long long cols, void *stream) {
    if (cols < 1 || rows < 0 || ldx < cols || ldy < cols) return TOLK_CU_EINVAL;
    if (rows > 0 && cols > 9223372036854775807LL / rows) return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !y) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(x_dtype, TI, TOLK_CU_DISPATCH(y_dtype, TO, {
                         convert_kernel<TI, TO><<<tolk_cu_grid(rows * cols, 256), 256, 0, st>>>(
                             (TO *)y, ldy, (const TI *)x, ldx, rows, cols);
                     }));
    return (int)cudaGetLastError();
}

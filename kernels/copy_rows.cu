/*
 * copy_rows.cu — batched row gather / scatter (see copy_rows.h). CPU twin:
 * the reference loop in tests/test_cuda_select.c.
 *
 * A bitwise copy in units of U bytes: 16, 8 or 4 when both pointers, both
 * row strides (in bytes) and the row length (in bytes) are multiples of it,
 * else one element. Blocks of CR_THREADS threads; a row is covered by tpr
 * threads (32..CR_THREADS, from the row length in 16-byte units, so that
 * short rows do not leave most of a block idle) and a block handles
 * CR_THREADS / tpr rows at a time, grid-striding over the row groups.
 * tpr and the grid come from (rows, cols, dtype) only; the unit only picks
 * which instantiation runs.
 */
#include "copy_rows.h"
#include "kcommon.cuh"

#define CR_THREADS 256

struct alignas(16) cr_unit16 {
    unsigned long long a, b;
};
struct alignas(8) cr_unit8 {
    unsigned long long a;
};

template <typename U>
static __global__ void __launch_bounds__(CR_THREADS)
    copy_rows_kernel(U *dst, long long ld_dst, const int *dst_idx, const U *src, long long ld_src,
                     const int *src_idx, long long rows, long long units, int tpr) {
    const int rpb = CR_THREADS / tpr;
    const int sub = threadIdx.x / tpr, c0 = threadIdx.x % tpr;
    for (long long g = blockIdx.x; g * rpb < rows; g += gridDim.x) {
        const long long r = g * rpb + sub;
        if (r >= rows) continue;
        const long long d = dst_idx ? (long long)dst_idx[r] : r;
        const long long s = src_idx ? (long long)src_idx[r] : r;
        if (d < 0 || s < 0) continue;
        U *dr = dst + d * ld_dst;
        const U *sr = src + s * ld_src;
        for (long long c = c0; c < units; c += tpr)
            dr[c] = sr[c];
    }
}

template <typename U>
static int launch(void *dst, long long ld_dst, const int *dst_idx, const void *src,
                  long long ld_src, const int *src_idx, long long rows, long long row_bytes,
                  int tpr, unsigned blocks, cudaStream_t st) {
    const long long u = (long long)sizeof(U);
    copy_rows_kernel<U><<<blocks, CR_THREADS, 0, st>>>((U *)dst, ld_dst / u, dst_idx,
                                                       (const U *)src, ld_src / u, src_idx, rows,
                                                       row_bytes / u, tpr);
    return (int)cudaGetLastError();
}

extern "C" int tolk_cu_copy_rows(void *dst, long long ld_dst, const int *dst_idx, const void *src,
                                 long long ld_src, const int *src_idx, long long rows, int cols,
                                 int dtype, void *stream) {
    long long es;
    switch (dtype) {
    case TOLK_CU_F32:
        es = 4;
        break;
    case TOLK_CU_F16:
    case TOLK_CU_BF16:
        es = 2;
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    if (rows < 0 || cols < 0 || ld_dst < cols || ld_src < cols) return TOLK_CU_EINVAL;
    if (!dst || !src) return TOLK_CU_EINVAL;
    if (rows == 0 || cols == 0) return 0;

    /* geometry from (rows, cols, dtype) only */
    const long long max_units = ((long long)cols * es + 15) / 16;
    int tpr = 32;
    while (tpr < CR_THREADS && tpr < max_units)
        tpr *= 2;
    const long long groups = (rows + CR_THREADS / tpr - 1) / (CR_THREADS / tpr);
    const unsigned blocks = (unsigned)(groups < 65535LL * 8 ? groups : 65535LL * 8);

    /* the widest unit everything is a multiple of */
    const long long bd = ld_dst * es, bs = ld_src * es, rb = (long long)cols * es;
    const unsigned long long pa = (unsigned long long)(uintptr_t)dst | (uintptr_t)src;
    const unsigned long long all =
        pa | (unsigned long long)bd | (unsigned long long)bs | (unsigned long long)rb;
    cudaStream_t st = (cudaStream_t)stream;
    if (all % 16 == 0)
        return launch<cr_unit16>(dst, bd, dst_idx, src, bs, src_idx, rows, rb, tpr, blocks, st);
    if (all % 8 == 0)
        return launch<cr_unit8>(dst, bd, dst_idx, src, bs, src_idx, rows, rb, tpr, blocks, st);
    if (all % 4 == 0)
        return launch<unsigned int>(dst, bd, dst_idx, src, bs, src_idx, rows, rb, tpr, blocks, st);
    return launch<unsigned short>(dst, bd, dst_idx, src, bs, src_idx, rows, rb, tpr, blocks, st);
}

/*
 * convert.h — storage-type conversion of a strided matrix on the GPU
 * (kernels/convert.cu): float32 activations to float16/bfloat16 ahead of a
 * half-precision GEMM, half weights widened to float32, or a plain strided
 * copy when the types are equal.
 */
#ifndef TOLK_KERNELS_CONVERT_H
#define TOLK_KERNELS_CONVERT_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* y[r, c] = (y_dtype) x[r, c] for r < rows, c < cols; x row stride ldx,
 * y row stride ldy; round to nearest even (overflow to +-inf in float16).
 * The buffers must not overlap. Requires cols >= 1, rows >= 0, ld* >= cols. */
int tolk_cu_convert(void *y, int y_dtype, long long ldy, const void *x, int x_dtype, long long ldx,
                    long long rows, long long cols, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_CONVERT_H */

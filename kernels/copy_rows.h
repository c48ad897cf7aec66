/*
 * copy_rows.h — batched row gather / scatter on the GPU (kernels/copy_rows.cu):
 * KV-cache append, beam reordering of caches, gathering the last row of each
 * sequence. Index arrays live on the device, so one launch can be captured
 * in a CUDA graph and replayed with new indices.
 */
#ifndef TOLK_KERNELS_COPY_ROWS_H
#define TOLK_KERNELS_COPY_ROWS_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* For r < rows: dst[(dst_idx ? dst_idx[r] : r) * ld_dst + c] = src[(src_idx ? src_idx[r] : r) *
 * ld_src + c] for c < cols; rows whose dst_idx[r] or src_idx[r] is negative are skipped
 * (fixed-capacity index arrays). dst_idx, src_idx: DEVICE int32 [rows] or NULL; dtype
 * TOLK_CU_F32/F16/BF16 for both; element strides. Rows of one call must not overlap between the
 * rows written and the rows read (caller's contract). The copy is bitwise (no conversion; NaN
 * payloads survive). It uses 16-, 8- or 4-byte accesses when both pointers, both row strides and
 * the row length allow, else element-sized ones. Returns TOLK_CU_EINVAL for rows < 0, cols < 0,
 * ld_dst < cols, ld_src < cols, a bad dtype or NULL dst / src (checked even when there is nothing
 * to copy); rows == 0 or cols == 0 launches nothing. Launch configuration depends only on (rows,
 * cols, dtype). */
int tolk_cu_copy_rows(void *dst, long long ld_dst, const int *dst_idx, const void *src,
                      long long ld_src, const int *src_idx, long long rows, int cols, int dtype,
                      void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_COPY_ROWS_H */

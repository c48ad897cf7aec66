/*
 * ptx_probe.h — a self-check of the warp-level PTX instructions the
 * tensor-core kernels use (kernels/ptx.cuh): one warp runs ldmatrix,
 * ldmatrix.trans, mma.sync m16n8k16 and cp.async with zero fill on known
 * inputs and writes what every lane received. tests/test_cuda_attention.c
 * compares that with the per-lane layouts the PTX ISA documents — on the
 * CPU emulator (is its emulation faithful?) and on a GPU (does the
 * documentation, and so the emulator, match the hardware?).
 */
#ifndef TOLK_KERNELS_PTX_PROBE_H
#define TOLK_KERNELS_PTX_PROBE_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Words per lane in the probe's output. */
#define TOLK_CU_PTX_PROBE_WORDS 16

/* Run the probe on one warp. out: DEVICE memory of 32 *
 * TOLK_CU_PTX_PROBE_WORDS words; lane l writes out[l * 16 + w]:
 *   w 0..3   ldmatrix.x4 of the 32 x 8 matrix M[r][c] = r * 8 + c (16-bit),
 *            lane l supplying the address of row l (matrix m = rows
 *            8m..8m+7)
 *   w 4..7   the same with .trans
 *   w 8..11  mma.sync m16n8k16 (H = f16, or bf16 when bf16 != 0) D = A B + C
 *            with A[i][k] = (3i + k) % 7 - 3, B[k][j] = (5k + j) % 5 - 2,
 *            C[i][j] = i - j (exact in every type), fragments built by the
 *            documented layouts; the 4 float bit patterns of lane l's D
 *   w 12..15 a 16-byte cp.async of in[4l .. 4l + 3] with source size 4 (l % 5)
 *            bytes into shared words pre-set to 0xAAAAAAAA, after
 *            wait_group 0: the four words
 * in: DEVICE, 128 words. Returns 0 or a cudaError_t. */
int tolk_cu_ptx_probe(unsigned *out, const unsigned *in, int bf16, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_PTX_PROBE_H */

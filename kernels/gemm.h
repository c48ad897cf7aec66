/*
 * gemm.h — the matrix products of the network on the GPU (kernels/gemm.cu):
 * a linear layer y = x W^T (+ bias) (+ beta y) through cuBLASLt, FP16 or
 * BF16 inputs with FP32 accumulation, or FP32 throughout for the
 * exact-parity mode; with a plain tiled CUDA kernel as the fallback for a
 * shape or alignment cuBLASLt has no algorithm for. Reproduces
 * torch.nn.functional.linear (openai-whisper's Linear) in float32.
 */
#ifndef TOLK_KERNELS_GEMM_H
#define TOLK_KERNELS_GEMM_H

#include "kcommon.h"

#include <stddef.h>

TOLK_CU_BEGIN_DECLS

/* A cuBLASLt handle plus a cache of descriptors and chosen algorithms per
 * problem (a hash table): create once per device, share between threads. */
typedef struct tolk_cu_gemm_ctx tolk_cu_gemm_ctx;

/* Counts of a context since its creation. */
typedef struct tolk_cu_gemm_counts {
    unsigned long long products;           /* tolk_cu_gemm / _batched calls */
    unsigned long long fallbacks;          /* of them, run by the slow tiled kernel because
                                              cuBLASLt had no algorithm (not the
                                              TOLK_CU_GEMM_FALLBACK flag) */
    unsigned long long unsupported_shapes; /* problems cuBLASLt answered "not supported" */
} tolk_cu_gemm_counts;

/* The counts of g (zeros for NULL). Thread-safe. */
void tolk_cu_gemm_stats(const tolk_cu_gemm_ctx *g, tolk_cu_gemm_counts *out);

/* Create / destroy. Returns 0, or TOLK_CU_GEMM_EBLAS + cublasStatus_t. */
int tolk_cu_gemm_create(tolk_cu_gemm_ctx **out);
void tolk_cu_gemm_destroy(tolk_cu_gemm_ctx *g);

/* Flags of tolk_cu_gemm. */
#define TOLK_CU_GEMM_TF32 1     /* FP32 inputs may use TF32 tensor cores (not exact) */
#define TOLK_CU_GEMM_FALLBACK 2 /* skip cuBLASLt, use the tiled kernel (tests, debugging) */
/* y = gelu(alpha x w^T + bias) in the tanh form of cuBLASLt's GELU epilogue,
 * 0.5 v (1 + tanh(sqrt(2 / pi) (v + 0.044715 v^3))); beta must be 0 */
#define TOLK_CU_GEMM_GELU 4

/* cuBLAS(Lt) failures are returned as TOLK_CU_GEMM_EBLAS + cublasStatus_t. */
#define TOLK_CU_GEMM_EBLAS 1000

/* y [M, N] = alpha * x [M, K] . w[N, K]^T + beta * y + bias[N] (broadcast
 * over rows), all row-major with row strides ldy, ldx, ldw (elements).
 *   x_dtype == w_dtype: TOLK_CU_F32, F16 or BF16 (convert float32
 *     activations with tolk_cu_convert before a half-precision product);
 *   y_dtype: TOLK_CU_F32, or x_dtype; accumulation is always float32;
 *   bias: [N] of y's type (float32, or the half type of a half y: the
 *     cuBLASLt epilogue's default bias type) or NULL;
 *   beta = 0: y is not read (may hold garbage); beta = 1: accumulate
 *     (residual connections). y must not overlap x or w;
 *   flags: TOLK_CU_GEMM_TF32, _FALLBACK, _GELU (the half modes' fc1:
 *     bias and GELU in the product's epilogue, rounded once to y's type).
 * workspace (device, may be NULL) of workspace_bytes lets cuBLASLt use
 * split-K algorithms; 32 MiB suits Hopper. A shape cuBLASLt has no
 * algorithm for runs a slow tiled kernel and is counted (tolk_cu_gemm_stats). M, N, K >= 1 (M or N
 * == 0 is a no-op); ldx >= K, ldw >= K, ldy >= N. Thread-safe for one g. Returns 0, TOLK_CU_EINVAL,
 * a cudaError_t, or TOLK_CU_GEMM_EBLAS + status. */
int tolk_cu_gemm(tolk_cu_gemm_ctx *g, void *y, int y_dtype, long long ldy, const void *x,
                 int x_dtype, long long ldx, const void *w, int w_dtype, long long ldw, long long M,
                 long long N, long long K, float alpha, float beta, const void *bias, int flags,
                 void *workspace, size_t workspace_bytes, void *stream);

/* batch products in one call (one strided-batched cuBLASLt product):
 * product b uses y + b * y_stride, x + b * x_stride, w + b * w_stride and
 * bias + b * bias_stride (elements; a stride of 0 shares the operand, e.g.
 * one x against every layer's weight). y_stride >= M * ldy when batch > 1
 * (outputs must not overlap). Otherwise as tolk_cu_gemm, which is this with
 * batch 1. */
int tolk_cu_gemm_batched(tolk_cu_gemm_ctx *g, void *y, int y_dtype, long long ldy,
                         long long y_stride, const void *x, int x_dtype, long long ldx,
                         long long x_stride, const void *w, int w_dtype, long long ldw,
                         long long w_stride, long long M, long long N, long long K, float alpha,
                         float beta, const void *bias, long long bias_stride, int batch, int flags,
                         void *workspace, size_t workspace_bytes, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_GEMM_H */

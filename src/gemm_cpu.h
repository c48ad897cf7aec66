/*
 * gemm_cpu.h — CPU matrix products in reduced precision for the linear
 * layers: Y[M, N] = X[M, K] W[N, K]^T + bias, the same product as
 * torch.nn.functional.linear (and cblas_sgemm NoTrans/Trans), with the
 * weights stored once as bfloat16 (8 mantissa bits) and X rounded to
 * bfloat16 on the fly; products are accumulated in float32.
 *
 * Fast path: AVX-512 BF16 (vdpbf16ps) behind a runtime CPU check; else a
 * portable path (bf16 -> float32 + cblas_sgemm) with the same rounding of
 * the inputs. Thread-safe: no global mutable state except a CPU-feature
 * flag computed once (idempotently).
 */
#ifndef TOLK_GEMM_CPU_H
#define TOLK_GEMM_CPU_H

#include "internal.h"
#include "weights.h" /* tolk_f32_to_bf16 / tolk_bf16_to_f32: the same rounding */

#include <stddef.h>
#include <stdint.h>

/* Columns of W (output features) per packed panel. */
#define TOLK_GEMM_BF16_NR 32

/* Source types for tolk_gemm_bf16_pack. */
typedef enum {
    TOLK_GEMM_SRC_F32 = 0, /* float32 */
    TOLK_GEMM_SRC_F16 = 1  /* IEEE binary16, as uint16_t bits */
} tolk_gemm_src;

/* Flags for tolk_gemm_bf16_ex. */
#define TOLK_GEMM_FORCE_PORTABLE 1u /* skip the AVX-512 path (tests) */
#define TOLK_GEMM_ACCUMULATE 2u     /* Y += X W^T + bias instead of Y = ... */

/* Bytes of the packed form of a W[N, K]: ceil(N / 32) panels, each
 * ceil(K / 2) pairs x 32 columns x 2 bf16 (zero padded). Sets *bytes and
 * returns TOLK_OK, or TOLK_ERR_INVALID_ARG (N, K < 1, NULL) /
 * TOLK_ERR_NOMEM (size overflow). */
tolk_status tolk_gemm_bf16_packed_size(int N, int K, size_t *bytes);

/* Pack W[N, K] (row-major; y = x W^T, N = out features, K = in features)
 * of type src (float32 or float16 bits) into packed (caller-owned,
 * packed_bytes >= tolk_gemm_bf16_packed_size, any alignment of 4 bytes;
 * 64 is best). Layout: panel p holds columns [32p, 32p + 32); inside it,
 * for each K pair kk, 32 uint32 words, word j = bf16(W[32p + j][2kk]) in
 * the low half and bf16(W[32p + j][2kk + 1]) in the high half, the pairing
 * that vdpbf16ps expects. Conversion: round to nearest even, NaN kept
 * quiet NaN. Rows past N and the odd K tail are zero. ctx (may be NULL)
 * gets the message on failure. */
tolk_status tolk_gemm_bf16_pack(tolk_ctx *ctx, const void *W, tolk_gemm_src src, int N, int K,
                                void *packed, size_t packed_bytes);

/* Y[m, n] = sum_k bf16(X[m, k]) * Wb[n, k] + (bias ? bias[n] : 0) for
 * m < M, n < N, with Wb = the packed bf16 weights of tolk_gemm_bf16_pack
 * (same N, K). X is [M, ldX] float32 (ldX >= K), Y is [M, ldY] float32
 * (ldY >= N); only Y[m, 0..N) is written. bias is [N] or NULL. n_threads
 * >= 1 (OpenMP; 1 runs in the caller's thread; the portable path runs
 * cblas_sgemm with OpenBLAS's own thread setting). X and Y must not
 * overlap. Returns TOLK_OK, TOLK_ERR_INVALID_ARG or TOLK_ERR_NOMEM (the
 * per-thread scratch of ~128 KB). The environment variable TOLK_NO_AVX512
 * (read once per process) forces the portable path. */
tolk_status tolk_gemm_bf16(tolk_ctx *ctx, const float *X, int M, int K, int ldX, const void *packed,
                           int N, const float *bias, float *Y, int ldY, int n_threads);

/* As tolk_gemm_bf16, with flags: TOLK_GEMM_FORCE_PORTABLE,
 * TOLK_GEMM_ACCUMULATE (Y[m, n] += the product + bias: the residual add /
 * the backend's "accumulate" linear). */
tolk_status tolk_gemm_bf16_ex(tolk_ctx *ctx, const float *X, int M, int K, int ldX,
                              const void *packed, int N, const float *bias, float *Y, int ldY,
                              int n_threads, unsigned flags);

/* 1 when this CPU and OS run the AVX-512 BF16 path (and TOLK_NO_AVX512 is
 * unset), else 0. */
int tolk_gemm_bf16_native(void);

#endif

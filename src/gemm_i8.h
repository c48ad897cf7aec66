/*
 * gemm_i8.h — the int8 matrix product of Bergamot's "int8shiftAlphaAll"
 * GEMM (intgemm's Int8Shift with precomputed activation scales, as
 * marian-dev src/tensors/cpu/intgemm_interface.h uses it) on the CPU:
 *
 *   Y[m, n] = (sum_k a[m, k] W[n, k]) * (1 / (qa * qw[n])) + bias[n]
 *   a[m, k] = clamp(round_half_even(X[m, k] * qa), -127, 127)
 *
 * with W the model's int8 weights (tolk's [out, in] layout, multiplier qw)
 * and qa the model's activation scale for that matrix ("*_QuantMultA").
 * As intgemm, a is shifted to unsigned (a + 127) for the u8 x s8 dot
 * product and the shift removed with the weights' column sums — here in
 * exact integer arithmetic, then one float multiply and the bias.
 *
 * Fast path: AVX-512 VNNI (vpdpbusd) behind a runtime CPU check; the plain
 * reference loop (tolk_gemm_i8_ref) gives the same integers, so both give
 * bit-identical results. Used by the translation network's optional int8
 * mode (mt_net.c), which the issue-18 measurement compares with the
 * dequantised float32 path.
 */
#ifndef TOLK_GEMM_I8_H
#define TOLK_GEMM_I8_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* Output columns per packed block. */
#define TOLK_I8_NB 16

/* A packed int8 weight: ceil(N / 16) blocks x ceil(K / 4) groups x 64
 * bytes (16 columns x 4 consecutive k, zero padded), column sums, and one
 * weight multiplier per output column (a fused [Wq; Wk; Wv] keeps each
 * part's). */
typedef struct tolk_i8_weight {
    int N, K, K4;
    int8_t *packed;  /* owned, 64-byte aligned */
    int8_t *w;       /* [N, K] row-major copy (the reference loop reads it), owned */
    int32_t *colsum; /* [N] sum_k W[n, k], owned */
    float *qw;       /* [N] weight multipliers, owned */
} tolk_i8_weight;

/* Pack n_parts int8 matrices parts[i] [rows[i], K] (row-major), stacked
 * along the output columns, with multipliers qw[i]. The sources are
 * copied. TOLK_ERR_NOMEM / INVALID_ARG. */
tolk_status tolk_i8_pack(tolk_ctx *ctx, const int8_t *const *parts, const int *rows,
                         const float *qw, int n_parts, int K, tolk_i8_weight *out);
void tolk_i8_free(tolk_i8_weight *w);

/* Y [M, ldy] = the product above for X [M, ldx] (float32), bias [N] or
 * NULL; n_threads >= 1. Fast path when tolk_i8_native(), else the
 * reference loop. */
tolk_status tolk_gemm_i8(tolk_ctx *ctx, const float *X, int M, int ldx, float qa,
                         const tolk_i8_weight *W, const float *bias, float *Y, int ldy,
                         int n_threads);

/* The plain reference loop (same results). */
void tolk_gemm_i8_ref(const float *X, int M, int ldx, float qa, const tolk_i8_weight *W,
                      const float *bias, float *Y, int ldy);

/* 1 when this CPU runs the AVX-512 VNNI path. */
int tolk_i8_native(void);

#endif /* TOLK_GEMM_I8_H */

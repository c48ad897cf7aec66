/*
 * dot_avx512.h — AVX-512 tiles of the decoder's row-exact dot products
 * (see dot_avx512.c; the reference is backend_cpu.c's AVX2 dot_rows).
 */
#ifndef TOLK_DOT_AVX512_H
#define TOLK_DOT_AVX512_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU runs the AVX-512 tiles (checked once). */
int tolk_dot_avx512_native(void);

/* y[m * ldy + n] += sum_k x[m * ldx + k] * w[n * ldw + k] for m < M,
 * n < N, k < K; w float16 bits (f16 = 1) or float32, ldw in elements.
 * Each result is bit-identical to backend_cpu.c's dot_rows on the same
 * row pair, whatever M and N. Returns 1 when done, 0 (nothing written)
 * when the CPU lacks AVX-512 or K is not a multiple of 16: the caller
 * then runs dot_rows. */
int tolk_dot_rows_avx512(float *y, size_t ldy, const float *x, size_t ldx, size_t M, const void *w,
                         size_t ldw, int f16, size_t N, size_t K);

#endif

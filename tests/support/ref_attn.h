/*
 * ref_attn.h — the plain reference of the backend op attn_weights
 * (backend.h), shared by test_align.c (CPU op) and test_cuda_align.c (the
 * CUDA kernel).
 */
#ifndef TOLK_TEST_REF_ATTN_H
#define TOLK_TEST_REF_ATTN_H

#include <stddef.h>

/* out[(p * n_q + i) * n_keys + j] = softmax_j(scale * q[i, h..h+dh) .
 * k[j, h..h+dh)) with h = heads[p] * dh: double dot products and sums,
 * host arrays. */
void ref_attn_weights(const float *q, size_t ldq, const float *k, size_t ldk, int n_q, int n_keys,
                      const int *heads, int n_heads, int dh, float scale, float *out);

#endif

/*
 * attn_weights.h — the attention weights of selected heads on the GPU
 * (kernels/attn_weights.cu), for word timestamps: the alignment heads'
 * cross-attention softmax over the audio frames, which the fused attention
 * kernels never store. CPU twin: cpu_attn_weights in src/backend_cpu.c
 * (and the plain loop ref_attn_weights in tests/test_align.c).
 */
#ifndef TOLK_KERNELS_ATTN_WEIGHTS_H
#define TOLK_KERNELS_ATTN_WEIGHTS_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Most heads one call takes (the launcher passes them by value). */
#define TOLK_CU_AW_MAX_HEADS 64

/* For p < n_heads, i < n_q, j < n_keys (float32, DEVICE):
 *   out[(p * n_q + i) * n_keys + j] = softmax_j(scale * sum_c q[i * ldq + h + c] * k[j * ldk + h +
 * c]) with h = heads[p] * d_head (heads: a HOST array, copied into the launch), the softmax over
 * the n_keys keys (max-subtracted, float32 sums). Returns TOLK_CU_EINVAL for NULL pointers, n_q <
 * 0, n_keys < 1, d_head < 1, n_heads outside [0, TOLK_CU_AW_MAX_HEADS], a head whose slice passes
 * ldq or ldk; n_q == 0 or n_heads == 0 launches nothing. */
int tolk_cu_attn_weights(const float *q, long long ldq, const float *k, long long ldk, int n_q,
                         int n_keys, const int *heads, int n_heads, int d_head, float scale,
                         float *out, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_ATTN_WEIGHTS_H */

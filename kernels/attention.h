/*
 * attention.h — fused multi-head scaled dot-product attention on the GPU
 * (kernels/attention.cu), batched over sequences of different lengths:
 * encoder self-attention over 1500 frames, decoder causal self-attention
 * over a KV cache, and cross-attention over cached encoder K/V. Reproduces
 * openai-whisper's MultiHeadAttention.qkv_attention (softmax(q k^T * scale)
 * v with scale = d_head^-0.5, the reference's d_head^-0.25 on q and on k)
 * without ever storing a full score matrix in global memory.
 */
#ifndef TOLK_KERNELS_ATTENTION_H
#define TOLK_KERNELS_ATTENTION_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* One sequence of a batched call (the same contract as backend.h's
 * tolk_attn_seq, with untyped pointers). All pointers are DEVICE memory of
 * the call's dtype:
 *   q   [n_q,  n_head * d_head]  row stride ldq
 *   k,v [n_kv, n_head * d_head]  row stride ldkv (a KV cache, or the K/V
 *                                 columns of a fused QKV product)
 *   out [n_q,  n_head * d_head]  row stride ldo (must not overlap q, k, v)
 * Query row i sits at absolute position q_pos0 + i; when causal it attends
 * to keys j <= q_pos0 + i only, otherwise to all n_kv keys. */
typedef struct tolk_cu_attn_seq {
    const void *q;
    const void *k;
    const void *v;
    void *out;
    int n_q;    /* >= 0 (0: nothing to do) */
    int n_kv;   /* >= 1 */
    int causal; /* 0 or 1; when 1: q_pos0 >= 0 and q_pos0 + n_q <= n_kv */
    int q_pos0;
} tolk_cu_attn_seq;

/* Head widths the kernels are built for (every Whisper model uses 64). */
#define TOLK_CU_ATTN_HEAD_DIMS {32, 64, 128}

/* For every sequence s of seqs (a HOST array of n_seqs), head h < n_head,
 * query row i < n_q:
 *   out[i, h*dh:(h+1)*dh] = sum_j softmax_j(scale * q[i,h] . k[j,h]) v[j,h]
 * over the keys the mask allows. Arithmetic is float32 (online softmax,
 * exp2 form); dtype (TOLK_CU_F32/F16/BF16) is the storage type of q, k, v,
 * out. Sequences with many queries (n_q >= 64, the encoder and long
 * prompts) go to a flash-attention kernel (K/V tiles in shared memory,
 * one query per thread); the others (decoder steps) to a kernel with one
 * block per (query row, head). seqs is packed into kernel parameters, in
 * launches of up to 32 sequences; nothing is allocated.
 * Returns TOLK_CU_EINVAL for d_head not in TOLK_CU_ATTN_HEAD_DIMS,
 * n_head < 1, a row stride < n_head * d_head, or a sequence that breaks
 * the contract above. */
int tolk_cu_attention(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                      long long ldq, long long ldkv, long long ldo, float scale, int dtype,
                      void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_ATTENTION_H */

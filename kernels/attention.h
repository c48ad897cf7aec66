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

#include <stddef.h>

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
#define TOLK_CU_ATTN_HEAD_DIMS                                                                     \
    { 32, 64, 128 }

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

/* tolk_cu_attention with a choice of arithmetic and a workspace.
 *
 * tc: the arithmetic of the many-query (flash) path, sequences with
 *   n_q >= 64:
 *   TOLK_CU_F32   float32 throughout: exactly tolk_cu_attention's kernels
 *                 (the FP32 parity mode).
 *   TOLK_CU_F16 / TOLK_CU_BF16
 *                 tensor cores (kernels/attention_tc.cu): q, k, v (stored
 *                 as dtype) are rounded to tc's half type in shared memory,
 *                 S = q k^T and O += P v are WMMA m16n16k16 products with
 *                 float32 accumulation, the online softmax is float32 and P
 *                 is rounded to the half type for the P v product. Values
 *                 must fit the half type (|x| < 65504 for F16).
 *   The few-query path (n_q < 64, decoder steps) is float32 whatever tc.
 * ws, ws_bytes: DEVICE workspace (4-byte aligned) for the split-KV
 *   ("flash-decoding") path (kernels/attention_split.cu): few-query
 *   sequences whose (row, head) pairs are too few to fill the GPU have
 *   their keys split into chunks of >= 64 handled by separate blocks, and a
 *   second kernel combines the partial results. Used only where it helps
 *   and ws_bytes suffices (see tolk_cu_attention_ws_bytes); ws NULL or
 *   ws_bytes 0: never (the results agree within float32 rounding).
 * Other arguments, results and errors as tolk_cu_attention, plus
 * TOLK_CU_EINVAL for a tc other than the three above or a misaligned ws.
 * tolk_cu_attention(...) == tolk_cu_attention_ex(..., TOLK_CU_F32, NULL, 0). */
int tolk_cu_attention_ex(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                         long long ldq, long long ldkv, long long ldo, float scale, int dtype,
                         int tc, void *ws, size_t ws_bytes, void *stream);

/* tolk_cu_attention_ex with out stored as out_dtype: equal to dtype, or
 * TOLK_CU_F16 with dtype TOLK_CU_F32 and tc TOLK_CU_F16 (float32 q, k, v,
 * the output rounded once to float16: the encoder of the half modes, whose
 * attention output feeds a half product). Other pairs: TOLK_CU_EINVAL. */
int tolk_cu_attention_ex_out(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                             long long ldq, long long ldkv, long long ldo, float scale, int dtype,
                             int out_dtype, int tc, void *ws, size_t ws_bytes, void *stream);

/* Workspace bytes that enable the split-KV path for every call with at
 * most total_q_rows query rows in all its few-query sequences (for
 * tolk_cu_attention_desc: n_seqs * max_n_q) and keys up to max_n_kv per
 * sequence, on the current device (the split target is 2 blocks per SM).
 * 0 when no such call would split (or for invalid arguments). Small: at
 * most ~530 partial results of d_head + 2 floats per row slot, times 8
 * when total_q_rows >= 2 (sequences that share K/V — beams of one window —
 * are scored together and split their keys 8 ways at most): < 2.2 MiB. */
size_t tolk_cu_attention_ws_bytes(int total_q_rows, int n_head, int d_head, int max_n_kv);

/* One sequence of tolk_cu_attention_desc, in DEVICE memory. Rows are
 * relative to the call's base pointers q, k, v, out. */
typedef struct tolk_cu_attn_desc {
    int q_row;  /* first query row of the sequence in q and out */
    int kv_row; /* first key row of the sequence in k and v */
    int n_q;    /* >= 0, <= max_n_q */
    int n_kv;   /* >= 1, <= max_n_kv */
    int causal; /* 0 or 1; when 1: q_pos0 >= 0 and q_pos0 + n_q <= n_kv */
    int q_pos0;
} tolk_cu_attn_desc;

/* Attention over sequences described in DEVICE memory, for CUDA-graph
 * capture: the launch configuration depends only on (n_seqs, max_n_q,
 * max_n_kv, n_head, d_head, dtype, tc, ws_bytes), so one captured launch
 * replays correctly after the descriptors (not their count) change.
 * For sequence s, query i < desc[s].n_q (row desc[s].q_row + i of q, with
 * row stride ldq) writes row desc[s].q_row + i of out (stride ldo); key j
 * < n_kv is row desc[s].kv_row + j of k and v (stride ldkv); head h at
 * column h * d_head; the mask as tolk_cu_attn_seq's. Grids and shared
 * memory are sized from max_n_q and max_n_kv; blocks past a sequence's
 * real lengths do nothing. A descriptor that breaks its contract (n_q >
 * max_n_q, n_kv > max_n_kv, a bad causal range) is clamped into it: the
 * kernels stay inside their buffers, its results are unspecified.
 * Routing: max_n_q >= 64 -> the flash path of tc for every sequence; else
 * the split-KV path when ws allows (tolk_cu_attention_ws_bytes with
 * total_q_rows = n_seqs * max_n_q), else the row kernel. Any n_seqs (one
 * launch per 65535 / n_head sequences). n_seqs 0 or max_n_q 0: nothing.
 * sync: NULL, or DEVICE int32 [n_seqs * max_n_q * n_head] (4-byte
 * aligned), all zero: the split path then runs ONE kernel — the last
 * partial block of each (query row, head) combines it (a counter per row
 * in sync, reset to zero by that block, so sync is zero again after the
 * call and can serve the next one on the stream) — instead of partial +
 * combine kernels. A call that fails or is cut short may leave sync
 * non-zero: zero it again. Same results either way.
 * Errors as tolk_cu_attention_ex (the descriptors are never read on the
 * host). */
int tolk_cu_attention_desc(const void *q, long long ldq, const void *k, const void *v,
                           long long ldkv, void *out, long long ldo, const tolk_cu_attn_desc *desc,
                           int n_seqs, int max_n_q, int max_n_kv, int n_head, int d_head,
                           float scale, int dtype, int tc, void *ws, size_t ws_bytes, int *sync,
                           void *stream);

/* tolk_cu_attention_desc with q float32, k and v of kv_dtype and out of
 * out_dtype (each TOLK_CU_F32 or TOLK_CU_F16, IEEE binary16), float32
 * arithmetic (half operands widened as read, the output rounded once): the
 * decoder step of the half modes, whose cross-attention cache is float16
 * (TOLK_KV_F16) and whose attention output feeds a half product directly.
 * Any half operand: always the few-query path (split-KV when ws allows,
 * else the row kernel), whatever max_n_q; TOLK_CU_EINVAL when max_n_kv's
 * scores do not fit the row kernel's shared memory. All float32: exactly
 * tolk_cu_attention_desc with dtype = tc = TOLK_CU_F32.
 * append = 1: the decoder step's K/V append fused into its self-
 * attention — q's rows are the fused [q | k | v] rows of the QKV product
 * (ldq >= 3 n_head d_head), and each causal sequence's query row i first
 * has its own key and value (columns n_head d_head.. and 2 n_head d_head..
 * of its q row) written into key row q_pos0 + i of k and v (which are
 * written, despite the const), then attends over them; needs max_n_q <= 1
 * (one new token per sequence: no block reads another block's new row)
 * and the few-query path (TOLK_CU_EINVAL otherwise). Non-causal sequences
 * append nothing. append = 0: k and v are only read.
 * Other arguments and errors as tolk_cu_attention_desc. */
int tolk_cu_attention_desc_mixed(const float *q, long long ldq, const void *k, const void *v,
                                 int kv_dtype, long long ldkv, void *out, int out_dtype,
                                 long long ldo, const tolk_cu_attn_desc *desc, int n_seqs,
                                 int max_n_q, int max_n_kv, int n_head, int d_head, float scale,
                                 int append, void *ws, size_t ws_bytes, int *sync, void *stream);

/* What a call would launch, without launching (the backend's census):
 * launches of the flash kernel (one kernel each), of the row kernel (one)
 * and of the split-KV path (two: partial + combine; one when fused). */
typedef struct tolk_cu_attn_plan {
    int flash, rows, split;
    int fused;             /* of the split launches, those with the combine fused (sync) */
    int grouped;           /* a split launch scores sequences sharing K/V together */
    double partial_floats; /* split workspace floats written (and read by the combine) */
} tolk_cu_attn_plan;

/* The plan of tolk_cu_attention_ex(seqs, ..., tc, ws, ws_bytes) (ws
 * non-NULL when ws_bytes > 0) / of tolk_cu_attention_desc with these
 * bounds. Host only; the same routing as the calls. Returns 0 or
 * TOLK_CU_EINVAL. */
int tolk_cu_attention_plan(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head, int tc,
                           size_t ws_bytes, tolk_cu_attn_plan *plan);
int tolk_cu_attention_desc_plan(int n_seqs, int max_n_q, int max_n_kv, int n_head, int d_head,
                                int tc, size_t ws_bytes, int with_sync, tolk_cu_attn_plan *plan);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_ATTENTION_H */

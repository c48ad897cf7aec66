/*
 * attention_common.cuh — what the attention kernels (attention.cu,
 * attention_tc.cu, attention_split.cu; see attention.h) share: the
 * sequence source of a launch (host-packed sequences or device
 * descriptors), the one-row attention body of the row and split kernels,
 * and the internal host launchers one file calls in another. CUDA C++
 * only. The reference reproduced is openai-whisper's
 * MultiHeadAttention.qkv_attention: softmax(q k^T * scale) v per head.
 *
 * All kernels do the softmax in base 2: scores are multiplied by
 * scale_log2 = scale * log2(e), then p = 2^(s - max).
 */
#ifndef TOLK_ATTENTION_COMMON_CUH
#define TOLK_ATTENTION_COMMON_CUH

#include "attention.h"
#include "kcommon.cuh"

#define ATTN_SEQS_PER_LAUNCH 32 /* host-packed sequences per launch */
#define ATTN_FLASH_MIN_Q 64     /* sequences with n_q >= this take the flash path */
#define ATTN_LOG2E 1.4426950408889634f
/* Split-KV: launches with fewer (query row, head) pairs than this split
 * their keys (2 blocks per SM of a 132-SM H100), in chunks of >= 64 keys. */
#define ATTN_SPLIT_TARGET 264
#define ATTN_SPLIT_MIN_CHUNK 64

namespace tolkcu {

/* The sequences of one launch, passed by value as a kernel parameter
 * (~1.8 KB). Host mode (desc == NULL): s[0 .. n) are the sequences, with
 * pointers already at their first rows; slot0[si] is the first workspace
 * row slot of sequence si (split path: the prefix sum of n_q). Device mode
 * (desc != NULL): sequence si is desc[seq0 + si] over the base pointers
 * q, k, v, out; its workspace row slots are si * max_nq + i. */
struct attn_src {
    tolk_cu_attn_seq s[ATTN_SEQS_PER_LAUNCH];
    int slot0[ATTN_SEQS_PER_LAUNCH];
    const tolk_cu_attn_desc *desc;
    const void *q, *k, *v;
    void *out;
    long long ldq, ldkv, ldo;
    int seq0, max_nq, max_nkv;
};

/* Sequence si of the launch. In device mode the descriptor is read here
 * (every thread reads the same 24 bytes: a broadcast) and clamped into its
 * contract (n_q <= max_nq, 1 <= n_kv <= max_nkv, causal ranges inside
 * n_kv), so that a broken descriptor cannot take a kernel outside its
 * shared memory, workspace or buffers. */
template <typename T>
__device__ __forceinline__ tolk_cu_attn_seq attn_get(const attn_src &src, int si) {
    if (!src.desc) return src.s[si];
    const tolk_cu_attn_desc d = src.desc[src.seq0 + si];
    tolk_cu_attn_seq r;
    int n_q = min(d.n_q, src.max_nq), n_kv = min(d.n_kv, src.max_nkv), pos0 = d.q_pos0;
    if (n_q < 0 || n_kv < 1) n_q = 0, n_kv = 1;
    const int causal = d.causal != 0;
    if (causal) {
        n_q = min(n_q, n_kv);
        pos0 = max(0, min(pos0, n_kv - n_q));
    }
    r.q = (const T *)src.q + (long long)d.q_row * src.ldq;
    r.k = (const T *)src.k + (long long)d.kv_row * src.ldkv;
    r.v = (const T *)src.v + (long long)d.kv_row * src.ldkv;
    r.out = (T *)src.out + (long long)d.q_row * src.ldo;
    r.n_q = n_q;
    r.n_kv = n_kv;
    r.causal = causal;
    r.q_pos0 = pos0;
    return r;
}

/* Workspace row slot of query row i of sequence si (split path). */
__device__ __forceinline__ int attn_slot(const attn_src &src, int si, int i) {
    return src.desc ? si * src.max_nq + i : src.slot0[si] + i;
}

/* Shared memory floats of row_attend for chunks of up to n_keys keys. */
static inline size_t row_attend_smem(int D, int n_keys, int threads) {
    const int part_len = D > threads ? D : threads;
    return (size_t)(((D + 3) & ~3) + part_len + n_keys) * sizeof(float);
}

__device__ __forceinline__ float *row_attend_part(float *sh, int D) {
    return sh + ((D + 3) & ~3);
}

/* One query row of one head against keys [j0, j1) (j1 > j0), by a block of
 * NT threads (every thread must call it: it synchronises):
 *   mx  = max_j s_j, s_j = scale_log2 * q . k_j      (all threads get it)
 *   sum = sum_j 2^(s_j - mx)                          (all threads get it)
 *   part[g * D + c] for g < G = max(1, NT / D): the partial sums over
 *     j = j0 + g, j0 + g + G, ... of 2^(s_j - mx) v_j[c]; the caller sums
 *     the G groups (part is published by a final barrier).
 * qp: the row's q (D values), K, V: the head's column 0 of key row 0, row
 * stride ldkv. sh: row_attend_smem(D, j1 - j0, NT) bytes of shared memory
 * (q at sh, part at row_attend_part(sh, D), the scores after part); red:
 * 32 floats. Returns G.
 * Pass 1: thread t scores keys j0 + t, j0 + t + NT, ...; block max;
 * pass 2: p in place, block sum; pass 3: thread (g, c) reads V rows
 * coalesced along c. */
template <typename T, int NT>
__device__ __forceinline__ int row_attend(const T *qp, const T *K, const T *V, long long ldkv,
                                          int D, int j0, int j1, float scale_log2, float *sh,
                                          float *red, float &mx_out, float &sum_out) {
    const int part_len = D > NT ? D : NT;
    float *qs = sh;                    /* [D] */
    float *part = sh + ((D + 3) & ~3); /* [part_len] */
    float *sc = part + part_len;       /* [j1 - j0] */
    const int tid = threadIdx.x, n = j1 - j0;
    for (int c = tid; c < D; c += NT)
        qs[c] = to_f(qp[c]) * scale_log2;
    __syncthreads();

    float mx = -INFINITY;
    for (int jj = tid; jj < n; jj += NT) {
        const T *kr = K + (long long)(j0 + jj) * ldkv;
        float d0 = 0.0f, d1 = 0.0f;
        int c = 0;
        for (; c + 1 < D; c += 2) {
            d0 = fmaf(qs[c], to_f(kr[c]), d0);
            d1 = fmaf(qs[c + 1], to_f(kr[c + 1]), d1);
        }
        if (c < D) d0 = fmaf(qs[c], to_f(kr[c]), d0);
        const float s = d0 + d1;
        sc[jj] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int jj = tid; jj < n; jj += NT) {
        const float p = exp2f(sc[jj] - mx);
        sc[jj] = p;
        sum += p;
    }
    sum = block_sum(sum, red); /* its barriers also publish sc[] */

    const int G = D >= NT ? 1 : NT / D;
    const T *V0 = V + (long long)j0 * ldkv;
    for (int e = tid; e < G * D; e += NT) {
        const int c = e % D, g = e / D;
        float a0 = 0.0f, a1 = 0.0f;
        int j = g;
        for (; j + G < n; j += 2 * G) {
            a0 = fmaf(sc[j], to_f(V0[(long long)j * ldkv + c]), a0);
            a1 = fmaf(sc[j + G], to_f(V0[(long long)(j + G) * ldkv + c]), a1);
        }
        if (j < n) a0 = fmaf(sc[j], to_f(V0[(long long)j * ldkv + c]), a0);
        part[e] = a0 + a1;
    }
    __syncthreads();
    mx_out = mx;
    sum_out = sum;
    return G;
}

/* ---- internal host launchers (one file calls them in another) ---------- */

/* attention_tc.cu: the WMMA flash kernel over the n sequences of src (all
 * with n_q <= max_nq), tc = TOLK_CU_F16 or TOLK_CU_BF16. */
int attn_launch_tc(const attn_src &src, int n, int max_nq, int n_head, int d_head, float scale_log2,
                   int dtype, int tc, cudaStream_t st);

/* attention_split.cu: the split count for `pairs` (query row, head) pairs
 * over up to nk keys; 1 = do not split. *chunk gets the keys per split. */
int attn_split_plan(long long pairs, int nk, int *chunk);
/* Workspace bytes of a split launch of `pairs` pairs into ns chunks. */
size_t attn_split_ws(long long pairs, int ns, int d_head);
/* Partial + combine kernels over the n sequences of src (n_q <= max_nq,
 * visible keys <= ns * chunk); ws holds attn_split_ws(pairs, ns, d_head)
 * bytes, pairs = (last slot + 1) * n_head. */
int attn_launch_split(const attn_src &src, int n, int max_nq, int ns, int chunk, long long pairs,
                      int n_head, int d_head, float scale_log2, int dtype, void *ws,
                      cudaStream_t st);

} /* namespace tolkcu */

#endif /* TOLK_ATTENTION_COMMON_CUH */

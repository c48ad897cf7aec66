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
/* Split-KV: launches with fewer (query row, head) pairs than
 * attn_split_target() (2 blocks per SM of the device) split their keys, in
 * chunks of >= 64 keys; ATTN_SPLIT_TARGET is the fallback when the device
 * cannot be queried (a 132-SM H100). */
#define ATTN_SPLIT_TARGET 264
#define ATTN_SPLIT_MIN_CHUNK 64
/* Mixed storage of a few-query launch (the decoder step of the half
 * modes), q always float32: bit 0 k and v are float16 (a float16 cross-
 * attention cache), bit 1 out is float16 (the input of the next half
 * product). 0: q, k, v, out all of the call's dtype. */
#define ATTN_MIX_KVH 1
#define ATTN_MIX_OUTH 2

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
    int append; /* device mode: q rows are fused [q | k | v] rows whose own key
                   and value are written into the cache first (attn_append) */
};

/* Sequence si of the launch. In device mode the descriptor is read here
 * (every thread reads the same 24 bytes: a broadcast) and clamped into its
 * contract (n_q <= max_nq, 1 <= n_kv <= max_nkv, causal ranges inside
 * n_kv), so that a broken descriptor cannot take a kernel outside its
 * shared memory, workspace or buffers. */
template <typename T, typename TK = T, typename TO = T> /* TK: storage of k and v, TO of out */
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
    r.k = (const TK *)src.k + (long long)d.kv_row * src.ldkv;
    r.v = (const TK *)src.v + (long long)d.kv_row * src.ldkv;
    r.out = (TO *)src.out + (long long)d.q_row * src.ldo;
    r.n_q = n_q;
    r.n_kv = n_kv;
    r.causal = causal;
    r.q_pos0 = pos0;
    return r;
}

/* The K/V append fused into the decoder's self-attention (src.append; the
 * launch has max_nq == 1, so a sequence's only query row i = 0 is the
 * newest token): its key and value, columns [n_head D, 2 n_head D) and
 * [2 n_head D, 3 n_head D) of its fused q row, head h's D of them, are
 * written into key row q_pos0 + i of the cache (sq.k / sq.v, causal
 * sequences only) by each block whose keys [j0, j1) hold that row, then a
 * barrier makes them visible to the block before it reads them (global
 * writes of a block are visible to it after __syncthreads; the key loads
 * are plain, not read-only-cache, loads). Every thread must call it with
 * block-uniform arguments. No other block reads that row: a sequence's
 * other query rows do not exist (max_nq == 1) and the blocks of other key
 * chunks stop before it. Padding rows of a bucketed step all write the
 * scratch sequence's row 0 with the same values. */
template <typename T, typename TK>
__device__ __forceinline__ void attn_append(const attn_src &src, const tolk_cu_attn_seq &sq, int i,
                                            int h, int n_head, int D, int j0, int j1) {
    const int p = sq.q_pos0 + i;
    if (!src.append || !sq.causal || p < j0 || p >= j1) return; /* block-uniform */
    const long long w = (long long)n_head * D;
    const T *qr = (const T *)sq.q + (long long)i * src.ldq + w + (long long)h * D;
    TK *kr = (TK *)sq.k + (long long)p * src.ldkv + (long long)h * D;
    TK *vr = (TK *)sq.v + (long long)p * src.ldkv + (long long)h * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        kr[c] = from_f<TK>(to_f(qr[c]));
        vr[c] = from_f<TK>(to_f(qr[w + c]));
    }
    __syncthreads();
}

/* Workspace row slot of query row i of sequence si (split path). */
__device__ __forceinline__ int attn_slot(const attn_src &src, int si, int i) {
    return src.desc ? si * src.max_nq + i : src.slot0[si] + i;
}

/* ---- few-query rows: groups that share K/V, and their attention --------- */

/* Sequences of a split launch that attend to the SAME keys (the beams of
 * one window in a decoder step's cross-attention) form a group of up to
 * ATTN_GROUP_MAX; the group's blocks share out the keys, each reading its
 * K/V rows once for every row of the group (attention_split.cu). */
#define ATTN_GROUP_MAX 8

/* Whether sequences a and b read the same keys with the same mask: equal
 * K and V pointers and key counts, neither causal. */
__device__ __forceinline__ bool attn_same_kv(const tolk_cu_attn_seq &a, const tolk_cu_attn_seq &b) {
    return a.k == b.k && a.v == b.v && a.n_kv == b.n_kv && !a.causal && !b.causal;
}

/* The group of sequence s (= sq) of the n sequences of a launch: the
 * launch is cut into aligned runs of `cap` sequences (1 or
 * ATTN_GROUP_MAX); inside a run, maximal stretches of consecutive
 * sequences with attn_same_kv are the groups. Returns the group's size R
 * (1 when cap is 1), its first sequence in *s0 and s's position in *pos.
 * Every thread computes the same (descriptors are broadcast reads). */
template <typename T, typename TK = T>
__device__ __forceinline__ int attn_group_of(const attn_src &src, int n, int s, int cap,
                                             const tolk_cu_attn_seq &sq, int *s0, int *pos) {
    int b = s, e = s + 1;
    if (cap > 1) {
        while (b % cap != 0 && attn_same_kv(attn_get<T, TK>(src, b - 1), sq))
            b--;
        while (e < n && e % cap != 0 && attn_same_kv(sq, attn_get<T, TK>(src, e)))
            e++;
    }
    *s0 = b;
    *pos = s - b;
    return e - b;
}

/* Shared-memory floats of row_attend for up to `cap` rows over chunks of
 * up to n_keys keys in all (R rows of n keys each: R * n <= n_keys + cap),
 * NT threads: q [cap][DP], part [cap][PL], scores [R][n], with DP = D
 * rounded up to 4 and PL = max(D, NT). */
static inline size_t row_attend_floats(int D, int n_keys, int threads, int cap) {
    const size_t dp = (size_t)((D + 3) & ~3), pl = (size_t)(D > threads ? D : threads);
    return (size_t)cap * (dp + pl) + (size_t)n_keys + (size_t)cap;
}
static inline size_t row_attend_smem(int D, int n_keys, int threads, int cap) {
    return row_attend_floats(D, n_keys, threads, cap) * sizeof(float);
}

/* part of row r (layout above). */
__device__ __forceinline__ float *row_attend_part(float *sh, int D, int cap, int r) {
    const int dp = (D + 3) & ~3, pl = D > (int)blockDim.x ? D : (int)blockDim.x;
    return sh + cap * dp + r * pl;
}

/* Max (sum) of v[r] over the whole block for r < R, every thread gets them;
 * every thread calls (barriers). red: NT / 32 * RM floats of shared memory. */
template <int RM, bool MAX>
__device__ __forceinline__ void block_reduce_n(float (&v)[RM], int R, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int r = 0; r < RM; r++) {
        if (r >= R) break;
        v[r] = MAX ? warp_max(v[r]) : warp_sum(v[r]);
    }
    __syncthreads(); /* red may still be read by a previous reduction */
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < RM; r++)
            if (r < R) red[r * nw + warp] = v[r];
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < RM; r++) {
        if (r >= R) break;
        float a = MAX ? -INFINITY : 0.0f;
        for (int w = 0; w < nw; w++)
            a = MAX ? fmaxf(a, red[r * nw + w]) : a + red[r * nw + w];
        v[r] = a;
    }
}

/* R (<= RM) query rows of one head against the same keys [j0, j1)
 * (j1 > j0), by a block of NT threads (every thread must call it: it
 * synchronises):
 *   mx[r]  = max_j s_rj, s_rj = scale_log2 * q_r . k_j   (all threads)
 *   sum[r] = sum_j 2^(s_rj - mx[r])                       (all threads)
 *   row_attend_part(sh, D, cap, r)[g * D + c] for g < G = NT / D: the
 *     partial sums over j = j0 + g, j0 + g + G, ... of 2^(s_rj - mx[r])
 *     v_j[c]; the caller sums the G groups (published by a final barrier).
 * qp[r]: row r's q (D values); K, V: the head's column 0 of key row 0, row
 * stride ldkv. sh: row_attend_smem(D, j1 - j0, NT, cap) bytes (cap >= R);
 * red: NT / 32 * RM floats. Returns G.
 * Pass 1 (scores): a warp scores 4 keys at a time, 8 lanes per key, lane
 * k of a key reading columns k, k + 8, ...: each load instruction reads 4
 * whole 32-byte sectors (float) of 4 rows instead of 32 rows' single
 * words; the 8 partial dots are summed by 3 shuffles; each K row is read
 * once for all R rows. Pass 2: p in place, block sums. Pass 3: thread
 * (g, c) reads V rows coalesced along c, once for all R rows. */
template <typename T, int NT, int RM, typename TK = T> /* TK: storage of K and V */
__device__ __forceinline__ int row_attend(const T *const *qp, int R, const TK *K, const TK *V,
                                          long long ldkv, int D, int j0, int j1, float scale_log2,
                                          float *sh, int cap, float *red, float (&mx)[RM],
                                          float (&sum)[RM]) {
    static_assert(NT % 32 == 0 && NT >= 128, "block size");
    const int dp = (D + 3) & ~3, pl = D > NT ? D : NT;
    const int tid = threadIdx.x, n = j1 - j0;
    float *qs = sh;                   /* [cap][dp] */
    float *sc = sh + cap * (dp + pl); /* [cap][n] */
#pragma unroll
    for (int r = 0; r < RM; r++) {
        if (r >= R) break;
        for (int c = tid; c < D; c += NT)
            qs[r * dp + c] = to_f(qp[r][c]) * scale_log2;
    }
    __syncthreads();

    const int lane = tid & 31, lig = lane & 7, kq = (tid >> 5) * 4 + (lane >> 3);
#pragma unroll
    for (int r = 0; r < RM; r++)
        mx[r] = -INFINITY;
    const TK *K0 = K + (long long)j0 * ldkv;
    for (int jb = 0; jb < n; jb += NT / 8) { /* uniform trip count: shuffles below converge */
        const int jj = jb + kq;
        const bool ok = jj < n;
        const TK *kr = K0 + (long long)(ok ? jj : 0) * ldkv;
        float d[RM];
#pragma unroll
        for (int r = 0; r < RM; r++)
            d[r] = 0.0f;
        for (int c = lig; c < D; c += 8) {
            const float kx = ok ? to_f(kr[c]) : 0.0f;
#pragma unroll
            for (int r = 0; r < RM; r++)
                if (r < R) d[r] = fmaf(qs[r * dp + c], kx, d[r]);
        }
#pragma unroll
        for (int r = 0; r < RM; r++) {
            if (r >= R) break;
            d[r] += __shfl_xor_sync(0xffffffffu, d[r], 1);
            d[r] += __shfl_xor_sync(0xffffffffu, d[r], 2);
            d[r] += __shfl_xor_sync(0xffffffffu, d[r], 4);
            if (ok) {
                if (lig == 0) sc[r * n + jj] = d[r];
                mx[r] = fmaxf(mx[r], d[r]);
            }
        }
    }
    block_reduce_n<RM, true>(mx, R, red);
#pragma unroll
    for (int r = 0; r < RM; r++)
        sum[r] = 0.0f;
    for (int jj = tid; jj < n; jj += NT) {
#pragma unroll
        for (int r = 0; r < RM; r++) {
            if (r >= R) break;
            const float p = exp2f(sc[r * n + jj] - mx[r]);
            sc[r * n + jj] = p;
            sum[r] += p;
        }
    }
    block_reduce_n<RM, false>(sum, R, red); /* its barriers also publish sc[] */

    const int G = D >= NT ? 1 : NT / D;
    const TK *V0 = V + (long long)j0 * ldkv;
    for (int e = tid; e < G * D; e += NT) {
        const int c = e % D, g = e / D;
        float a0[RM], a1[RM];
#pragma unroll
        for (int r = 0; r < RM; r++)
            a0[r] = a1[r] = 0.0f;
        int j = g;
        for (; j + G < n; j += 2 * G) {
            const float v0 = to_f(V0[(long long)j * ldkv + c]);
            const float v1 = to_f(V0[(long long)(j + G) * ldkv + c]);
#pragma unroll
            for (int r = 0; r < RM; r++) {
                if (r >= R) break;
                a0[r] = fmaf(sc[r * n + j], v0, a0[r]);
                a1[r] = fmaf(sc[r * n + j + G], v1, a1[r]);
            }
        }
        if (j < n) {
            const float v0 = to_f(V0[(long long)j * ldkv + c]);
#pragma unroll
            for (int r = 0; r < RM; r++)
                if (r < R) a0[r] = fmaf(sc[r * n + j], v0, a0[r]);
        }
#pragma unroll
        for (int r = 0; r < RM; r++)
            if (r < R) sh[cap * dp + r * pl + e] = a0[r] + a1[r];
    }
    __syncthreads();
    return G;
}

/* ---- internal host launchers (one file calls them in another) ---------- */

/* attention_tc.cu: the FA2 kernel over the n sequences of src (all with
 * n_q <= max_nq), tc = TOLK_CU_F16 or TOLK_CU_BF16; out_h: out is
 * float16 (dtype TOLK_CU_F32, tc TOLK_CU_F16 only). */
int attn_launch_tc(const attn_src &src, int n, int max_nq, int n_head, int d_head, float scale_log2,
                   int dtype, int tc, cudaStream_t st, int out_h = 0);

/* attention_split.cu: the split target of the current device (2 blocks per
 * SM); the split count for `pairs` (query row, head) pairs over up to nk
 * keys, 1 = do not split, *chunk gets the keys per split. */
int attn_split_target(void);
int attn_split_plan(long long pairs, int nk, int *chunk);
/* Workspace bytes of a split launch of `pairs` pairs into ns chunks with
 * groups of up to cap (1 or ATTN_GROUP_MAX) sequences. */
size_t attn_split_ws(long long pairs, int ns, int d_head, int cap);
/* Partial + combine kernels over the n sequences of src (n_q <= max_nq,
 * visible keys <= ns * chunk); ws holds attn_split_ws(pairs, ns, d_head,
 * cap) bytes, pairs = (last slot + 1) * n_head. mix: ATTN_MIX_* bits (q
 * float32, dtype TOLK_CU_F32), 0: every operand of dtype. sync: NULL, or
 * `pairs` zero ints (device descriptors only): the partial kernel's last
 * block of each row combines it (one kernel) and leaves sync zero. */
int attn_launch_split(const attn_src &src, int n, int max_nq, int ns, int chunk, int cap,
                      long long pairs, int n_head, int d_head, float scale_log2, int dtype,
                      void *ws, int *sync, cudaStream_t st, int mix = 0);

} /* namespace tolkcu */

#endif /* TOLK_ATTENTION_COMMON_CUH */

/*
 * attention_split.cu — split-KV ("flash-decoding") attention for sequences
 * with few queries and many keys (see attention.h, tolk_cu_attention_ex's
 * ws): decoder cross-attention over 1500 encoder frames, where the row
 * kernel's one block per (query row, head) gives batch 1 only n_head blocks
 * for a GPU with 132 SMs. Reference: openai-whisper's
 * MultiHeadAttention.qkv_attention, softmax(q k^T * scale) v per head;
 * float32 arithmetic, the softmax in base 2 (scale_log2 = scale * log2 e).
 *
 * Plan (attn_split_plan): a launch with P (query row, head) pairs below
 * the split target (attn_split_target: 2 blocks per SM of the current
 * device, 264 on a 132-SM H100) over up to nk keys is split into
 * ns = min(ceil(target / P), floor(nk / 64)) chunks of chunk = ceil(nk /
 * ns) >= 64 keys (ns recomputed as ceil(nk / chunk)); ns < 2 (or chunk >
 * 8192): no split. Chunk boundaries are c * chunk for every row of the
 * launch, so they depend only on the launch's bounds (device descriptors:
 * max_n_kv), never on a row's real key count.
 *
 * Groups (attention_common.cuh, attn_group_of): with cap = ATTN_GROUP_MAX
 * (launches of >= 2 sequences), consecutive sequences that attend to the
 * same keys (the beams of one window) form a group of R <= 8; the R blocks
 * of a group for chunk c split the chunk into R sub-chunks of
 * ceil(chunk / R) keys, and block `pos` scores ITS sub-chunk for ALL the
 * group's rows: each K/V row is read once per group instead of once per
 * beam, and the number of blocks is unchanged.
 *
 *  split_partial_kernel  grid (max_nq * ns, sequences * n_head), 128
 *      threads: block (i, c) of sequence s (group s0 .. s0 + R - 1,
 *      position pos) runs row_attend (attention_common.cuh) over sub-chunk
 *      pos of [c * chunk, min((c + 1) * chunk, nk)) for the group's rows i
 *      (members with n_q > i), and writes for each member r the partial
 *      result of entry e = ((slot_r * n_head + h) * ns + c) * cap + pos:
 *        ws_o [e][D]  unnormalised sum_j 2^(s_j - m) v_j
 *        ws_ml[e][2]  m = max_j s_j, l = sum_j 2^(s_j - m)
 *      (an empty sub-chunk: m = -inf, l = 0, o = 0). Blocks whose chunk
 *      starts at or after nk (or whose group has no row i) exit before
 *      writing anything: the chunk count of row i is ceil(nk_i / chunk),
 *      every counted chunk non-empty.
 *  split_combine_kernel  grid (max_nq, sequences * n_head), d_head
 *      threads: M = max m_e, out = sum_e 2^(m_e - M) o_e / sum_e
 *      2^(m_e - M) l_e over the row's ceil(nk_i / chunk) chunks times its
 *      group's R sub-chunks.
 *
 * Workspace (float32, 4-byte aligned): ws_o [P * ns * cap * D], then ws_ml
 * [P * ns * cap * 2]; slots: host-packed sequences number their rows
 * consecutively (slot0 = prefix sum of n_q), device descriptors use
 * si * max_nq + i. Each launch reuses the workspace from its start (launches
 * on one stream run in order).
 */
#include "attention_common.cuh"

#include <atomic>

using namespace tolkcu;

#define SPLIT_THREADS 128
#define SPLIT_MAX_CHUNK 8192 /* scores in shared memory: <= 41 KiB in all */

/* out row i of sequence si (its descriptor sq, group of R), head h, from
 * the row's partial results: M = max m_e, out = sum_e 2^(m_e - M) o_e /
 * sum_e 2^(m_e - M) l_e over its nv = ceil(nk / chunk) chunks times R
 * sub-chunks; the block's threads stride over the D columns. Partials of
 * other blocks are read through L2 (__ldcg): in the fused form they were
 * written by blocks of the same launch. No barriers. */
template <typename TO>
__device__ __forceinline__ void combine_row(const attn_src &src, const tolk_cu_attn_seq &sq, int si,
                                            int i, int h, int n_head, int D, int ns, int chunk,
                                            int cap, int R, const float *ws_o, const float *ws_ml) {
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    const int nv = min(ns, (nk + chunk - 1) / chunk);
    const long long base = ((long long)attn_slot(src, si, i) * n_head + h) * ns * cap;
    float M = -INFINITY;
    for (int s = 0; s < nv; s++)
        for (int p = 0; p < R; p++)
            M = fmaxf(M, __ldcg(&ws_ml[2 * (base + s * cap + p)]));
    TO *op = (TO *)sq.out + (long long)i * src.ldo + (long long)h * D;
    for (int cc = threadIdx.x; cc < D; cc += blockDim.x) {
        float acc = 0.0f, L = 0.0f;
        for (int s = 0; s < nv; s++)
            for (int p = 0; p < R; p++) {
                const long long e = base + s * cap + p;
                const float w = exp2f(__ldcg(&ws_ml[2 * e]) - M); /* 0 for an empty sub-chunk */
                L = fmaf(w, __ldcg(&ws_ml[2 * e + 1]), L);
                acc = fmaf(w, __ldcg(&ws_o[e * D + cc]), acc);
            }
        op[cc] = from_f<TO>(acc / L); /* L >= 1: the part holding M contributes l >= 1 */
    }
}

template <typename T, typename TK, typename TO>
static __global__ void __launch_bounds__(SPLIT_THREADS)
    split_partial_kernel(const attn_src src, int n_head, int D, int ns, int chunk, int cap,
                         float scale_log2, float *ws_o, float *ws_ml, int *sync) {
    extern __shared__ float sh[];
    __shared__ float red[SPLIT_THREADS / 32 * ATTN_GROUP_MAX];
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T, TK>(src, si);
    const int i = blockIdx.x / ns, c = blockIdx.x % ns;
    int s0, pos;
    const int R = attn_group_of<T, TK>(src, (int)gridDim.y / n_head, si, cap, sq, &s0, &pos);
    /* the group's rows i (members with i < n_q) */
    const T *qp[ATTN_GROUP_MAX];
    long long ent[ATTN_GROUP_MAX];
    int mem[ATTN_GROUP_MAX]; /* the members' sequence numbers */
    int na = 0;
    for (int r = 0; r < R; r++) {
        const tolk_cu_attn_seq m = r == pos ? sq : attn_get<T, TK>(src, s0 + r);
        if (i >= m.n_q) continue;
        qp[na] = (const T *)m.q + (long long)i * src.ldq + (long long)h * D;
        mem[na] = s0 + r;
        ent[na++] = (((long long)attn_slot(src, s0 + r, i) * n_head + h) * ns + c) * cap + pos;
    }
    if (na == 0) return; /* block-uniform */
    /* a group is never causal, its members' key counts are equal */
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    if (c * chunk >= nk) return; /* block-uniform: an empty chunk is never counted */
    /* sub-chunk pos of R of chunk c */
    const int c1 = min((c + 1) * chunk, nk), sub = (chunk + R - 1) / R;
    const int j0 = c * chunk + pos * sub, j1 = min(j0 + sub, c1);
    const TK *K = (const TK *)sq.k + (long long)h * D;
    const TK *V = (const TK *)sq.v + (long long)h * D;
    attn_append<T, TK>(src, sq, i, h, n_head, D, j0, j1);
    float mx[ATTN_GROUP_MAX], sum[ATTN_GROUP_MAX];
    int G = 0;
    if (j0 < j1) {
        if (na == 1) {
            float m1[1], s1[1];
            G = row_attend<T, SPLIT_THREADS, 1, TK>(qp, 1, K, V, src.ldkv, D, j0, j1, scale_log2,
                                                    sh, cap, red, m1, s1);
            mx[0] = m1[0], sum[0] = s1[0];
        } else {
            G = row_attend<T, SPLIT_THREADS, ATTN_GROUP_MAX, TK>(qp, na, K, V, src.ldkv, D, j0, j1,
                                                                 scale_log2, sh, cap, red, mx, sum);
        }
    }
    for (int r = 0; r < na; r++) {
        const float *part = row_attend_part(sh, D, cap, r);
        for (int cc = threadIdx.x; cc < D; cc += SPLIT_THREADS) {
            float a = 0.0f;
            for (int g = 0; g < G; g++)
                a += part[g * D + cc];
            ws_o[ent[r] * D + cc] = a; /* an empty sub-chunk: o = 0 */
        }
        if (threadIdx.x == 0) {
            ws_ml[2 * ent[r]] = G ? mx[r] : -INFINITY;
            ws_ml[2 * ent[r] + 1] = G ? sum[r] : 0.0f;
        }
    }
    if (!sync) return; /* the combine kernel follows */
    /* Fused combine: the last of a row's R * nv contributing blocks (every
     * block of its group for each non-empty chunk) combines it and resets
     * its counter. Each thread's partials are made visible device-wide
     * before thread 0 counts the block in. */
    __shared__ int last[ATTN_GROUP_MAX];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const int want = R * min(ns, (nk + chunk - 1) / chunk);
        for (int r = 0; r < na; r++) {
            int *cnt = &sync[(long long)attn_slot(src, mem[r], i) * n_head + h];
            last[r] = atomicAdd(cnt, 1) == want - 1;
            if (last[r]) *cnt = 0; /* every other contributor has counted */
        }
        __threadfence();
    }
    __syncthreads();
    for (int r = 0; r < na; r++)
        if (last[r]) /* sq's out pointer is of type T: read the member's as TO */
            combine_row<TO>(src, attn_get<T, TK, TO>(src, mem[r]), mem[r], i, h, n_head, D, ns,
                            chunk, cap, R, ws_o, ws_ml);
}

template <typename T, typename TK, typename TO>
static __global__ void split_combine_kernel(const attn_src src, int n_head, int D, int ns,
                                            int chunk, int cap, const float *ws_o,
                                            const float *ws_ml) {
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T, TK, TO>(src, si);
    const int i = blockIdx.x;
    if (i >= sq.n_q) return; /* no barriers in this kernel */
    int s0, pos;
    const int R = attn_group_of<T, TK>(src, (int)gridDim.y / n_head, si, cap, sq, &s0, &pos);
    combine_row<TO>(src, sq, si, i, h, n_head, D, ns, chunk, cap, R, ws_o, ws_ml);
}

namespace tolkcu {

int attn_split_target(void) {
    /* 2 blocks per SM of the current device, read once per device */
    static std::atomic<int> cache[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        (void)cudaGetLastError();
        return ATTN_SPLIT_TARGET;
    }
    int t = cache[dev].load(std::memory_order_relaxed);
    if (t == 0) {
        int sms = 0;
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            sms < 1 || sms > 4096) {
            (void)cudaGetLastError();
            sms = ATTN_SPLIT_TARGET / 2;
        }
        t = 2 * sms;
        cache[dev].store(t, std::memory_order_relaxed);
    }
    return t;
}

int attn_split_plan(long long pairs, int nk, int *chunk) {
    *chunk = nk;
    const int target = attn_split_target();
    if (pairs < 1 || pairs >= target) return 1;
    const int max_chunks = nk / ATTN_SPLIT_MIN_CHUNK;
    if (max_chunks < 2) return 1;
    const long long want = (target + pairs - 1) / pairs;
    const int ns = want < max_chunks ? (int)want : max_chunks;
    if (ns < 2) return 1;
    const int c = (nk + ns - 1) / ns;
    if (c > SPLIT_MAX_CHUNK) return 1;
    *chunk = c;
    return (nk + c - 1) / c;
}

size_t attn_split_ws(long long pairs, int ns, int d_head, int cap) {
    return (size_t)pairs * (size_t)ns * (size_t)cap * (size_t)(d_head + 2) * sizeof(float);
}

/* The two kernels of a split launch with q of type T, k / v of TK, out of
 * TO. */
template <typename T, typename TK, typename TO = T>
static int launch_split_t(const attn_src &src, dim3 g1, dim3 g2, size_t smem, int n_head,
                          int d_head, int ns, int chunk, int cap, float scale_log2, float *ws_o,
                          float *ws_ml, int *sync, cudaStream_t st) {
    split_partial_kernel<T, TK, TO><<<g1, SPLIT_THREADS, smem, st>>>(
        src, n_head, d_head, ns, chunk, cap, scale_log2, ws_o, ws_ml, sync);
    const int rc = (int)cudaGetLastError();
    if (rc || sync) return rc;
    split_combine_kernel<T, TK, TO>
        <<<g2, d_head, 0, st>>>(src, n_head, d_head, ns, chunk, cap, ws_o, ws_ml);
    return (int)cudaGetLastError();
}

int attn_launch_split(const attn_src &src, int n, int max_nq, int ns, int chunk, int cap,
                      long long pairs, int n_head, int d_head, float scale_log2, int dtype,
                      void *ws, int *sync, cudaStream_t st, int mix) {
    float *ws_o = (float *)ws;
    float *ws_ml = ws_o + pairs * ns * cap * d_head;
    const dim3 g1((unsigned)(max_nq * ns), (unsigned)(n * n_head));
    const dim3 g2((unsigned)max_nq, (unsigned)(n * n_head));
    const size_t smem = row_attend_smem(d_head, chunk, SPLIT_THREADS, cap);
    if (mix && dtype != TOLK_CU_F32) return TOLK_CU_EINVAL;
    switch (mix) {
    case ATTN_MIX_KVH:
        return launch_split_t<float, __half, float>(src, g1, g2, smem, n_head, d_head, ns, chunk,
                                                    cap, scale_log2, ws_o, ws_ml, sync, st);
    case ATTN_MIX_OUTH:
        return launch_split_t<float, float, __half>(src, g1, g2, smem, n_head, d_head, ns, chunk,
                                                    cap, scale_log2, ws_o, ws_ml, sync, st);
    case ATTN_MIX_KVH | ATTN_MIX_OUTH:
        return launch_split_t<float, __half, __half>(src, g1, g2, smem, n_head, d_head, ns, chunk,
                                                     cap, scale_log2, ws_o, ws_ml, sync, st);
    case 0:
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    TOLK_CU_DISPATCH(dtype, T, {
        return launch_split_t<T, T>(src, g1, g2, smem, n_head, d_head, ns, chunk, cap, scale_log2,
                                    ws_o, ws_ml, sync, st);
    });
    return TOLK_CU_EINVAL;
}

} /* namespace tolkcu */

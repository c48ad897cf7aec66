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
 * ATTN_SPLIT_TARGET = 264 (2 blocks per SM of an H100) over up to nk keys
 * is split into ns = min(ceil(264 / P), floor(nk / 64)) chunks of
 * chunk = ceil(nk / ns) >= 64 keys (ns recomputed as ceil(nk / chunk));
 * ns < 2 (or chunk > 8192): no split. Chunk boundaries are c * chunk for
 * every row of the launch, so they depend only on the launch's bounds
 * (device descriptors: max_n_kv), never on a row's real key count.
 *
 *  split_partial_kernel  grid (max_nq * ns, sequences * n_head), 128
 *      threads: block (i, c) runs row_attend (attention_common.cuh) over
 *      the keys [c * chunk, min((c + 1) * chunk, nk_i)) of row i (nk_i the
 *      row's visible keys), and writes the partial result of entry
 *      e = (slot * n_head + h) * ns + c:
 *        ws_o [e][D]  unnormalised sum_j 2^(s_j - m) v_j
 *        ws_ml[e][2]  m = max_j s_j, l = sum_j 2^(s_j - m)
 *      Blocks whose chunk starts at or after nk_i (or rows i >= n_q) exit
 *      before writing anything: the chunk count of row i is
 *      ceil(nk_i / chunk), every counted chunk non-empty.
 *  split_combine_kernel  grid (max_nq, sequences * n_head), d_head
 *      threads: M = max m_c, out = sum_c 2^(m_c - M) o_c / sum_c 2^(m_c - M)
 *      l_c over the row's ceil(nk_i / chunk) chunks.
 *
 * Workspace (float32, 4-byte aligned): ws_o [P * ns * D], then ws_ml
 * [P * ns * 2]; slots: host-packed sequences number their rows
 * consecutively (slot0 = prefix sum of n_q), device descriptors use
 * si * max_nq + i. Each launch reuses the workspace from its start (launches
 * on one stream run in order).
 */
#include "attention_common.cuh"

using namespace tolkcu;

#define SPLIT_THREADS 128
#define SPLIT_MAX_CHUNK 8192 /* scores in shared memory: <= 33.5 KiB in all */

template <typename T>
static __global__ void __launch_bounds__(SPLIT_THREADS)
    split_partial_kernel(const attn_src src, int n_head, int D, int ns, int chunk, float scale_log2,
                         float *ws_o, float *ws_ml) {
    extern __shared__ float sh[];
    __shared__ float red[32];
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T>(src, si);
    const int i = blockIdx.x / ns, c = blockIdx.x % ns;
    if (i >= sq.n_q) return; /* block-uniform */
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    const int j0 = c * chunk;
    if (j0 >= nk) return; /* block-uniform: an empty chunk is never counted */
    const int j1 = min(j0 + chunk, nk);
    const T *qp = (const T *)sq.q + (long long)i * src.ldq + (long long)h * D;
    const T *K = (const T *)sq.k + (long long)h * D;
    const T *V = (const T *)sq.v + (long long)h * D;
    float mx, sum;
    const int G =
        row_attend<T, SPLIT_THREADS>(qp, K, V, src.ldkv, D, j0, j1, scale_log2, sh, red, mx, sum);
    const float *part = row_attend_part(sh, D);
    const long long e = ((long long)attn_slot(src, si, i) * n_head + h) * ns + c;
    for (int cc = threadIdx.x; cc < D; cc += SPLIT_THREADS) {
        float a = 0.0f;
        for (int g = 0; g < G; g++)
            a += part[g * D + cc];
        ws_o[e * D + cc] = a;
    }
    if (threadIdx.x == 0) {
        ws_ml[2 * e] = mx;
        ws_ml[2 * e + 1] = sum;
    }
}

template <typename T>
static __global__ void split_combine_kernel(const attn_src src, int n_head, int D, int ns,
                                            int chunk, const float *ws_o, const float *ws_ml) {
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T>(src, si);
    const int i = blockIdx.x;
    if (i >= sq.n_q) return; /* no barriers in this kernel */
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    const int nv = min(ns, (nk + chunk - 1) / chunk);
    const long long base = ((long long)attn_slot(src, si, i) * n_head + h) * ns;
    float M = -INFINITY;
    for (int s = 0; s < nv; s++)
        M = fmaxf(M, ws_ml[2 * (base + s)]);
    T *op = (T *)sq.out + (long long)i * src.ldo + (long long)h * D;
    for (int cc = threadIdx.x; cc < D; cc += blockDim.x) {
        float acc = 0.0f, L = 0.0f;
        for (int s = 0; s < nv; s++) {
            const float w = exp2f(ws_ml[2 * (base + s)] - M);
            L = fmaf(w, ws_ml[2 * (base + s) + 1], L);
            acc = fmaf(w, ws_o[(base + s) * D + cc], acc);
        }
        op[cc] = from_f<T>(acc / L); /* L >= 1: the chunk holding M contributes l >= 1 */
    }
}

namespace tolkcu {

int attn_split_plan(long long pairs, int nk, int *chunk) {
    *chunk = nk;
    if (pairs < 1 || pairs >= ATTN_SPLIT_TARGET) return 1;
    const int max_chunks = nk / ATTN_SPLIT_MIN_CHUNK;
    if (max_chunks < 2) return 1;
    const long long want = (ATTN_SPLIT_TARGET + pairs - 1) / pairs;
    const int ns = want < max_chunks ? (int)want : max_chunks;
    if (ns < 2) return 1;
    const int c = (nk + ns - 1) / ns;
    if (c > SPLIT_MAX_CHUNK) return 1;
    *chunk = c;
    return (nk + c - 1) / c;
}

size_t attn_split_ws(long long pairs, int ns, int d_head) {
    return (size_t)pairs * (size_t)ns * (size_t)(d_head + 2) * sizeof(float);
}

int attn_launch_split(const attn_src &src, int n, int max_nq, int ns, int chunk, long long pairs,
                      int n_head, int d_head, float scale_log2, int dtype, void *ws,
                      cudaStream_t st) {
    float *ws_o = (float *)ws;
    float *ws_ml = ws_o + pairs * ns * d_head;
    const dim3 g1((unsigned)(max_nq * ns), (unsigned)(n * n_head));
    const dim3 g2((unsigned)max_nq, (unsigned)(n * n_head));
    const size_t smem = row_attend_smem(d_head, chunk, SPLIT_THREADS);
    TOLK_CU_DISPATCH(dtype, T, {
        split_partial_kernel<T><<<g1, SPLIT_THREADS, smem, st>>>(src, n_head, d_head, ns, chunk,
                                                                 scale_log2, ws_o, ws_ml);
        const int rc = (int)cudaGetLastError();
        if (rc) return rc;
        split_combine_kernel<T><<<g2, d_head, 0, st>>>(src, n_head, d_head, ns, chunk, ws_o, ws_ml);
    });
    return (int)cudaGetLastError();
}

} /* namespace tolkcu */

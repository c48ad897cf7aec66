/*
 * attention.cu — fused multi-head attention (see attention.h): the float32
 * kernels and the host side of every attention launcher. CPU twin:
 * backend_cpu.c's attention and the double-precision reference loops in
 * tests/test_cuda_kernels.c and tests/test_cuda_attention.c. Reference:
 * openai-whisper's MultiHeadAttention.qkv_attention, softmax(q k^T * scale) v
 * per head, scale = d_head^-0.5 (the reference's d_head^-0.25 on q and k).
 *
 * Layouts (all launchers): q, out [n_q, n_head * d_head], k, v [n_kv,
 * n_head * d_head], row-major with row strides ldq / ldkv / ldo; head h is
 * columns [h * d_head, (h + 1) * d_head). Blocks: blockIdx.y = (sequence
 * of the launch) * n_head + head.
 *
 * Two float32 kernels here, both with the softmax in base 2 (q is
 * pre-multiplied by scale * log2(e), then p = 2^(s - max)):
 *
 *  flash_kernel  (n_q >= 64, tc = TOLK_CU_F32): a block of 128 threads owns
 *      128 consecutive query rows of one (sequence, head), one row per
 *      thread, q and the output accumulator in registers. K and V stream
 *      through shared memory in tiles of BK keys (32 for d_head 32 and 64,
 *      16 for 128); each thread keeps a running max m and sum l (online
 *      softmax) and rescales its accumulator once per tile. All threads
 *      read the same K/V row at a time (shared-memory broadcast). Causal
 *      blocks stop at the last key their last row may see.
 *
 *  rows_kernel   (n_q < 64, decoder steps): a block of 256 threads owns one
 *      query row of one (sequence, head): row_attend (attention_common.cuh)
 *      scores all visible keys into shared memory (8 lanes per key, K rows
 *      read as whole sectors), block max, p in place, block sum, then
 *      G = 256 / d_head thread groups sum p_j v_j with coalesced V reads;
 *      the groups are summed and normalised.
 *
 * The tensor-core flash kernel (tc = F16 / BF16) is in attention_tc.cu, the
 * split-KV path for few queries over many keys in attention_split.cu.
 *
 * Host-packed sequences go to the kernels in the parameters, 32 per launch
 * (flash-sized and row-sized ones in separate launches); device descriptors
 * (tolk_cu_attention_desc) are read by the kernels, 65535 / n_head
 * sequences per launch, routed by max_n_q only.
 */
#include "attention_common.cuh"

#include <stdlib.h>
#include <string.h>

using namespace tolkcu;

#define FLASH_BQ 128
#define ROWS_THREADS 256
#define ROWS_MAX_SMEM (46 * 1024) /* below the 48 KiB default limit (plus red[]) */

/* ------------------------------------------------------------------------ */

template <typename T, int D, int BK>
static __global__ void __launch_bounds__(FLASH_BQ)
    flash_kernel(const attn_src src, int n_head, float scale_log2) {
    __shared__ __align__(16) float Ks[BK][D];
    __shared__ __align__(16) float Vs[BK][D];
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T>(src, si);
    const int q0 = blockIdx.x * FLASH_BQ;
    if (q0 >= sq.n_q) return; /* block-uniform */
    const long long ldq = src.ldq, ldkv = src.ldkv, ldo = src.ldo;
    const int i = q0 + threadIdx.x;
    const bool active = i < sq.n_q;
    const int q_last = min(q0 + FLASH_BQ, sq.n_q) - 1;
    /* keys [0, kv_end) are visible to some row of this block; [0, my_end) to this row */
    const int kv_end = sq.causal ? min(sq.n_kv, sq.q_pos0 + q_last + 1) : sq.n_kv;
    const int my_end = !active ? 0 : (sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv);
    const T *K = (const T *)sq.k + (long long)h * D;
    const T *V = (const T *)sq.v + (long long)h * D;

    float q[D], acc[D];
    {
        const T *qp = (const T *)sq.q + (long long)(active ? i : 0) * ldq + (long long)h * D;
#pragma unroll
        for (int c = 0; c < D; c++) {
            q[c] = active ? to_f(qp[c]) * scale_log2 : 0.0f;
            acc[c] = 0.0f;
        }
    }
    float m = -INFINITY, l = 0.0f;

    for (int k0 = 0; k0 < kv_end; k0 += BK) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int e = threadIdx.x; e < BK * D; e += FLASH_BQ) {
            const int r = e / D, c = e % D, j = k0 + r;
            float kv = 0.0f, vv = 0.0f;
            if (j < kv_end) {
                kv = to_f(K[(long long)j * ldkv + c]);
                vv = to_f(V[(long long)j * ldkv + c]);
            }
            Ks[r][c] = kv;
            Vs[r][c] = vv;
        }
        __syncthreads();

        float s[BK];
        float mt = m;
#pragma unroll
        for (int r = 0; r < BK; r++) {
            const float4 *kr = reinterpret_cast<const float4 *>(&Ks[r][0]);
            float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
            for (int c4 = 0; c4 < D / 4; c4++) {
                const float4 kk = kr[c4];
                d0 = fmaf(q[4 * c4 + 0], kk.x, d0);
                d1 = fmaf(q[4 * c4 + 1], kk.y, d1);
                d0 = fmaf(q[4 * c4 + 2], kk.z, d0);
                d1 = fmaf(q[4 * c4 + 3], kk.w, d1);
            }
            s[r] = (k0 + r < my_end) ? d0 + d1 : -INFINITY;
            mt = fmaxf(mt, s[r]);
        }
        if (mt == -INFINITY) continue;    /* no visible key in this tile for this row */
        const float corr = exp2f(m - mt); /* 0 on the first visible tile (m = -inf) */
        l *= corr;
#pragma unroll
        for (int c = 0; c < D; c++)
            acc[c] *= corr;
#pragma unroll
        for (int r = 0; r < BK; r++) {
            const float p = exp2f(s[r] - mt); /* 0 for masked keys */
            l += p;
            const float4 *vr = reinterpret_cast<const float4 *>(&Vs[r][0]);
#pragma unroll
            for (int c4 = 0; c4 < D / 4; c4++) {
                const float4 vv = vr[c4];
                acc[4 * c4 + 0] = fmaf(p, vv.x, acc[4 * c4 + 0]);
                acc[4 * c4 + 1] = fmaf(p, vv.y, acc[4 * c4 + 1]);
                acc[4 * c4 + 2] = fmaf(p, vv.z, acc[4 * c4 + 2]);
                acc[4 * c4 + 3] = fmaf(p, vv.w, acc[4 * c4 + 3]);
            }
        }
        m = mt;
    }
    if (active) {
        const float inv = 1.0f / l; /* l >= 1: the row's maximum contributes 2^0 */
        T *op = (T *)sq.out + (long long)i * ldo + (long long)h * D;
#pragma unroll
        for (int c = 0; c < D; c++)
            op[c] = from_f<T>(acc[c] * inv);
    }
}

/* ------------------------------------------------------------------------ */

template <typename T, typename TK, typename TO> /* TK: storage of k and v, TO of out */
static __global__ void __launch_bounds__(ROWS_THREADS)
    rows_kernel(const attn_src src, int n_head, int D, float scale_log2) {
    extern __shared__ float sh[];
    __shared__ float red[ROWS_THREADS / 32];
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T, TK, TO>(src, si);
    const int i = blockIdx.x;
    if (i >= sq.n_q) return; /* block-uniform */
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    attn_append<T, TK>(src, sq, i, h, n_head, D, 0, nk);
    const T *qp = (const T *)sq.q + (long long)i * src.ldq + (long long)h * D;
    const TK *K = (const TK *)sq.k + (long long)h * D;
    const TK *V = (const TK *)sq.v + (long long)h * D;
    float mx[1], sum[1];
    const int G = row_attend<T, ROWS_THREADS, 1, TK>(&qp, 1, K, V, src.ldkv, D, 0, nk, scale_log2,
                                                     sh, 1, red, mx, sum);
    const float *part = row_attend_part(sh, D, 1, 0);
    const float inv = 1.0f / sum[0];
    TO *op = (TO *)sq.out + (long long)i * src.ldo + (long long)h * D;
    for (int c = threadIdx.x; c < D; c += ROWS_THREADS) {
        float a = 0.0f;
        for (int g = 0; g < G; g++)
            a += part[g * D + c];
        op[c] = from_f<TO>(a * inv);
    }
}

static size_t rows_smem(int D, int n_keys) {
    return row_attend_smem(D, n_keys, ROWS_THREADS, 1);
}

/* ------------------------------------------------------------------------ */

template <typename T>
static int launch_flash_f32(const attn_src &src, int n, int max_nq, int n_head, int d_head,
                            float scale_log2, cudaStream_t st) {
    dim3 grid((unsigned)((max_nq + FLASH_BQ - 1) / FLASH_BQ), (unsigned)(n * n_head));
    switch (d_head) {
    case 32:
        flash_kernel<T, 32, 32><<<grid, FLASH_BQ, 0, st>>>(src, n_head, scale_log2);
        break;
    case 64:
        flash_kernel<T, 64, 32><<<grid, FLASH_BQ, 0, st>>>(src, n_head, scale_log2);
        break;
    case 128:
        flash_kernel<T, 128, 16><<<grid, FLASH_BQ, 0, st>>>(src, n_head, scale_log2);
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    return (int)cudaGetLastError();
}

/* The flash path of tc over the n sequences of src; out_h: out float16
 * (dtype TOLK_CU_F32, tc TOLK_CU_F16). */
static int launch_flash(const attn_src &src, int n, int max_nq, int n_head, int d_head,
                        float scale_log2, int dtype, int tc, cudaStream_t st, int out_h = 0) {
    if (tc != TOLK_CU_F32 || out_h)
        return attn_launch_tc(src, n, max_nq, n_head, d_head, scale_log2, dtype, tc, st, out_h);
    TOLK_CU_DISPATCH(
        dtype, T, { return launch_flash_f32<T>(src, n, max_nq, n_head, d_head, scale_log2, st); });
    return 0;
}

/* The split decision of the few-query path over the n sequences of src
 * (visible keys <= max_nk, `rows` workspace row slots): the chunk count
 * (1 = row kernel), keys per chunk and group cap. */
static int rows_plan(const attn_src &src, int n, int max_nk, long long rows, int n_head, int d_head,
                     void *ws, size_t ws_bytes, int *chunk, int *cap) {
    *chunk = max_nk;
    *cap = 1;
    if (!ws || !ws_bytes) return 1;
    const long long pairs = rows * n_head;
    const int ns = attn_split_plan(pairs, max_nk, chunk);
    if (ns <= 1) return 1;
    /* groups of sequences sharing K/V: possible in any device-descriptor
     * launch of >= 2 sequences; host-packed ones are checked here.
     * TOLK_ATTN_GROUPS=0 in the environment turns groups off (A/B timing). */
    static const int groups_off = [] {
        const char *e = getenv("TOLK_ATTN_GROUPS");
        return e && strcmp(e, "0") == 0;
    }();
    int c = 1;
    if (groups_off) {
    } else if (src.desc) {
        c = n >= 2 ? ATTN_GROUP_MAX : 1;
    } else {
        for (int s = 1; s < n && c == 1; s++) {
            const tolk_cu_attn_seq &a = src.s[s - 1], &b = src.s[s];
            if (a.k == b.k && a.v == b.v && a.n_kv == b.n_kv && !a.causal && !b.causal)
                c = ATTN_GROUP_MAX;
        }
    }
    if (c > 1 && attn_split_ws(pairs, ns, d_head, c) > ws_bytes) c = 1;
    if (attn_split_ws(pairs, ns, d_head, c) > ws_bytes) return 1;
    *cap = c;
    return ns;
}

/* Record a few-query launch of `pairs` (row, head) pairs in a plan. */
static void plan_rows(tolk_cu_attn_plan *plan, int ns, int cap, long long pairs, int d_head) {
    if (ns <= 1) {
        plan->rows++;
        return;
    }
    plan->split++;
    if (cap > 1) plan->grouped = 1;
    plan->partial_floats += (double)pairs * ns * (d_head + 2);
}

/* The few-query path over the n sequences of src (n_q <= max_nq, visible
 * keys <= max_nk, `rows` workspace row slots): split-KV when it helps and
 * the workspace allows, else rows_kernel. mix: ATTN_MIX_* storage bits (q
 * float32, dtype TOLK_CU_F32); 0: every operand of dtype. */
static int launch_rows(const attn_src &src, int n, int max_nq, int max_nk, long long rows,
                       int n_head, int d_head, float scale_log2, int dtype, void *ws,
                       size_t ws_bytes, int *sync, cudaStream_t st, int mix = 0) {
    int chunk = 0, cap = 1;
    const int ns = rows_plan(src, n, max_nk, rows, n_head, d_head, ws, ws_bytes, &chunk, &cap);
    if (ns > 1)
        return attn_launch_split(src, n, max_nq, ns, chunk, cap, rows * n_head, n_head, d_head,
                                 scale_log2, dtype, ws, sync, st, mix);
    dim3 grid((unsigned)max_nq, (unsigned)(n * n_head));
    const size_t smem = rows_smem(d_head, max_nk);
    if (mix && dtype != TOLK_CU_F32) return TOLK_CU_EINVAL;
    switch (mix) {
    case ATTN_MIX_KVH:
        rows_kernel<float, __half, float>
            <<<grid, ROWS_THREADS, smem, st>>>(src, n_head, d_head, scale_log2);
        return (int)cudaGetLastError();
    case ATTN_MIX_OUTH:
        rows_kernel<float, float, __half>
            <<<grid, ROWS_THREADS, smem, st>>>(src, n_head, d_head, scale_log2);
        return (int)cudaGetLastError();
    case ATTN_MIX_KVH | ATTN_MIX_OUTH:
        rows_kernel<float, __half, __half>
            <<<grid, ROWS_THREADS, smem, st>>>(src, n_head, d_head, scale_log2);
        return (int)cudaGetLastError();
    case 0:
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    TOLK_CU_DISPATCH(dtype, T, {
        rows_kernel<T, T, T><<<grid, ROWS_THREADS, smem, st>>>(src, n_head, d_head, scale_log2);
    });
    return (int)cudaGetLastError();
}

static void src_init(attn_src *src, long long ldq, long long ldkv, long long ldo) {
    memset(src, 0, sizeof *src);
    src->ldq = ldq;
    src->ldkv = ldkv;
    src->ldo = ldo;
}

static int check_common(int n_head, int d_head, long long ldq, long long ldkv, long long ldo,
                        int dtype, int tc, const void *ws) {
    if (n_head < 1 || n_head > 2047) return TOLK_CU_EINVAL;
    if (d_head != 32 && d_head != 64 && d_head != 128) return TOLK_CU_EINVAL;
    const long long width = (long long)n_head * d_head;
    if (ldq < width || ldkv < width || ldo < width) return TOLK_CU_EINVAL;
    if (dtype != TOLK_CU_F32 && dtype != TOLK_CU_F16 && dtype != TOLK_CU_BF16)
        return TOLK_CU_EINVAL;
    if (tc != TOLK_CU_F32 && tc != TOLK_CU_F16 && tc != TOLK_CU_BF16) return TOLK_CU_EINVAL;
    if (ws && ((uintptr_t)ws & 3u)) return TOLK_CU_EINVAL;
    return 0;
}

/* ------------------------------------------------------------------------ */

static int run_ex(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head, long long ldq,
                  long long ldkv, long long ldo, float scale, int dtype, int tc, void *ws,
                  size_t ws_bytes, cudaStream_t st, tolk_cu_attn_plan *plan, int out_h = 0);

/* The checks of tolk_cu_attention_ex: common arguments, then every host
 * sequence's contract. */
static int check_ex(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head, long long ldq,
                    long long ldkv, long long ldo, int dtype, int tc, const void *ws) {
    if (n_seqs < 0 || (n_seqs > 0 && !seqs)) return TOLK_CU_EINVAL;
    int rc = check_common(n_head, d_head, ldq, ldkv, ldo, dtype, tc, ws);
    if (rc) return rc;
    for (int s = 0; s < n_seqs; s++) {
        const tolk_cu_attn_seq *a = &seqs[s];
        if (a->n_q < 0 || a->n_kv < 1 || (a->causal != 0 && a->causal != 1)) return TOLK_CU_EINVAL;
        if (a->n_q == 0) continue;
        if (!a->q || !a->k || !a->v || !a->out) return TOLK_CU_EINVAL;
        if (a->causal && (a->q_pos0 < 0 || (long long)a->q_pos0 + a->n_q > a->n_kv))
            return TOLK_CU_EINVAL;
    }
    return 0;
}

extern "C" int tolk_cu_attention_ex(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head,
                                    int d_head, long long ldq, long long ldkv, long long ldo,
                                    float scale, int dtype, int tc, void *ws, size_t ws_bytes,
                                    void *stream) {
    const int rc = check_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, dtype, tc, ws);
    if (rc) return rc;
    if (!ws) ws_bytes = 0;
    return run_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, dtype, tc, ws, ws_bytes,
                  (cudaStream_t)stream, NULL);
}

extern "C" int tolk_cu_attention_ex_out(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head,
                                        int d_head, long long ldq, long long ldkv, long long ldo,
                                        float scale, int dtype, int out_dtype, int tc, void *ws,
                                        size_t ws_bytes, void *stream) {
    if (out_dtype == dtype)
        return tolk_cu_attention_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, dtype, tc,
                                    ws, ws_bytes, stream);
    if (dtype != TOLK_CU_F32 || out_dtype != TOLK_CU_F16 || tc != TOLK_CU_F16)
        return TOLK_CU_EINVAL;
    const int rc = check_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, dtype, tc, ws);
    if (rc) return rc;
    if (!ws) ws_bytes = 0;
    return run_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, dtype, tc, ws, ws_bytes,
                  (cudaStream_t)stream, NULL, 1);
}

/* tolk_cu_attention_ex after its checks; plan != NULL: count the launches
 * instead of making them. out_h: out float16 (dtype TOLK_CU_F32, tc
 * TOLK_CU_F16). */
static int run_ex(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head, long long ldq,
                  long long ldkv, long long ldo, float scale, int dtype, int tc, void *ws,
                  size_t ws_bytes, cudaStream_t st, tolk_cu_attn_plan *plan, int out_h) {
    const float scale_log2 = scale * ATTN_LOG2E;
    int rc = 0;
    /* Two tables per pass over the input: flash-sized and row-sized sequences. */
    attn_src ft, rt;
    src_init(&ft, ldq, ldkv, ldo);
    src_init(&rt, ldq, ldkv, ldo);
    int nf = 0, nr = 0, f_maxq = 0, r_maxq = 0, r_maxk = 0;
    long long r_rows = 0;
    for (int s = 0; s <= n_seqs; s++) {
        const bool last = s == n_seqs;
        if (!last) {
            const tolk_cu_attn_seq *a = &seqs[s];
            if (a->n_q == 0) continue;
            const int nk = a->causal ? a->q_pos0 + a->n_q : a->n_kv;
            if (a->n_q >= ATTN_FLASH_MIN_Q || rows_smem(d_head, nk) > ROWS_MAX_SMEM) {
                ft.s[nf++] = *a;
                if (a->n_q > f_maxq) f_maxq = a->n_q;
            } else {
                rt.slot0[nr] = (int)r_rows;
                rt.s[nr++] = *a;
                r_rows += a->n_q;
                if (a->n_q > r_maxq) r_maxq = a->n_q;
                if (nk > r_maxk) r_maxk = nk;
            }
        }
        if (nf == ATTN_SEQS_PER_LAUNCH || (last && nf > 0)) {
            if (plan)
                plan->flash++;
            else
                rc = launch_flash(ft, nf, f_maxq, n_head, d_head, scale_log2, dtype, tc, st, out_h);
            if (rc) return rc;
            nf = f_maxq = 0;
        }
        if (nr == ATTN_SEQS_PER_LAUNCH || (last && nr > 0)) {
            if (plan) {
                int chunk, cap;
                const int ns =
                    rows_plan(rt, nr, r_maxk, r_rows, n_head, d_head, ws, ws_bytes, &chunk, &cap);
                plan_rows(plan, ns, cap, r_rows * n_head, d_head);
            } else {
                rc = launch_rows(rt, nr, r_maxq, r_maxk, r_rows, n_head, d_head, scale_log2, dtype,
                                 ws, ws_bytes, NULL, st, out_h ? ATTN_MIX_OUTH : 0);
            }
            if (rc) return rc;
            nr = r_maxq = r_maxk = 0;
            r_rows = 0;
        }
    }
    return 0;
}

extern "C" int tolk_cu_attention_plan(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head,
                                      int d_head, int tc, size_t ws_bytes,
                                      tolk_cu_attn_plan *plan) {
    if (!plan || n_seqs < 0 || (n_seqs > 0 && !seqs)) return TOLK_CU_EINVAL;
    memset(plan, 0, sizeof *plan);
    const long long w = (long long)n_head * d_head;
    const int rc = check_common(n_head, d_head, w, w, w, TOLK_CU_F32, tc, NULL);
    if (rc) return rc;
    /* a non-NULL stand-in: the plan only tests whether a workspace exists */
    void *ws = ws_bytes ? (void *)plan : NULL;
    return run_ex(seqs, n_seqs, n_head, d_head, w, w, w, 1.0f, TOLK_CU_F32, tc, ws, ws_bytes, NULL,
                  plan);
}

extern "C" int tolk_cu_attention(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                                 long long ldq, long long ldkv, long long ldo, float scale,
                                 int dtype, void *stream) {
    return tolk_cu_attention_ex(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, dtype,
                                TOLK_CU_F32, NULL, 0, stream);
}

/* The launches of a descriptor call (plan != NULL: counted, not made).
 * mix (ATTN_MIX_* storage): always the few-query path. */
static int run_desc(attn_src &src, int n_seqs, int max_n_q, int max_n_kv, int n_head, int d_head,
                    float scale_log2, int dtype, int tc, void *ws, size_t ws_bytes, int *sync,
                    cudaStream_t st, tolk_cu_attn_plan *plan, int mix = 0) {
    if (mix && rows_smem(d_head, max_n_kv) > ROWS_MAX_SMEM) return TOLK_CU_EINVAL;
    const bool flash =
        !mix && (max_n_q >= ATTN_FLASH_MIN_Q || rows_smem(d_head, max_n_kv) > ROWS_MAX_SMEM);
    if (src.append && (flash || max_n_q > 1)) return TOLK_CU_EINVAL; /* row and split kernels */
    const int per = 65535 / n_head; /* gridDim.y = sequences * n_head */
    for (int s0 = 0; s0 < n_seqs; s0 += per) {
        const int n = n_seqs - s0 < per ? n_seqs - s0 : per;
        src.seq0 = s0;
        int rc = 0;
        if (plan) {
            int chunk, cap;
            if (flash)
                plan->flash++;
            else {
                const int ns = rows_plan(src, n, max_n_kv, (long long)n * max_n_q, n_head, d_head,
                                         ws, ws_bytes, &chunk, &cap);
                plan_rows(plan, ns, cap, (long long)n * max_n_q * n_head, d_head);
                if (ns > 1 && sync) plan->fused++;
            }
        } else {
            rc = flash ? launch_flash(src, n, max_n_q, n_head, d_head, scale_log2, dtype, tc, st)
                       : launch_rows(src, n, max_n_q, max_n_kv, (long long)n * max_n_q, n_head,
                                     d_head, scale_log2, dtype, ws, ws_bytes, sync, st, mix);
        }
        if (rc) return rc;
    }
    return 0;
}

/* tolk_cu_attention_desc and its mixed-storage form (mix: ATTN_MIX_*
 * bits): the checks, the source table, the launches. */
static int desc_call(const void *q, long long ldq, const void *k, const void *v, long long ldkv,
                     void *out, long long ldo, const tolk_cu_attn_desc *desc, int n_seqs,
                     int max_n_q, int max_n_kv, int n_head, int d_head, float scale, int dtype,
                     int tc, void *ws, size_t ws_bytes, int *sync, void *stream, int mix,
                     int append = 0) {
    if (n_seqs < 0 || max_n_q < 0 || max_n_kv < 1) return TOLK_CU_EINVAL;
    int rc = check_common(n_head, d_head, ldq, ldkv, ldo, dtype, tc, ws);
    if (rc) return rc;
    if (n_seqs == 0 || max_n_q == 0) return 0;
    if (!desc || !q || !k || !v || !out) return TOLK_CU_EINVAL;
    if ((long long)n_seqs * max_n_q > 0x7fffffffLL) return TOLK_CU_EINVAL; /* int row slots */
    if (!ws) ws_bytes = 0;
    if (sync && ((uintptr_t)sync & 3u)) return TOLK_CU_EINVAL;
    if (append && (max_n_q > 1 || ldq < 3LL * n_head * d_head)) return TOLK_CU_EINVAL;
    attn_src src;
    src_init(&src, ldq, ldkv, ldo);
    src.desc = desc;
    src.q = q;
    src.k = k;
    src.v = v;
    src.out = out;
    src.max_nq = max_n_q;
    src.max_nkv = max_n_kv;
    src.append = append;
    return run_desc(src, n_seqs, max_n_q, max_n_kv, n_head, d_head, scale * ATTN_LOG2E, dtype, tc,
                    ws, ws_bytes, sync, (cudaStream_t)stream, NULL, mix);
}

extern "C" int tolk_cu_attention_desc(const void *q, long long ldq, const void *k, const void *v,
                                      long long ldkv, void *out, long long ldo,
                                      const tolk_cu_attn_desc *desc, int n_seqs, int max_n_q,
                                      int max_n_kv, int n_head, int d_head, float scale, int dtype,
                                      int tc, void *ws, size_t ws_bytes, int *sync, void *stream) {
    return desc_call(q, ldq, k, v, ldkv, out, ldo, desc, n_seqs, max_n_q, max_n_kv, n_head, d_head,
                     scale, dtype, tc, ws, ws_bytes, sync, stream, 0);
}

extern "C" int tolk_cu_attention_desc_mixed(const float *q, long long ldq, const void *k,
                                            const void *v, int kv_dtype, long long ldkv, void *out,
                                            int out_dtype, long long ldo,
                                            const tolk_cu_attn_desc *desc, int n_seqs, int max_n_q,
                                            int max_n_kv, int n_head, int d_head, float scale,
                                            int append, void *ws, size_t ws_bytes, int *sync,
                                            void *stream) {
    if ((kv_dtype != TOLK_CU_F32 && kv_dtype != TOLK_CU_F16) ||
        (out_dtype != TOLK_CU_F32 && out_dtype != TOLK_CU_F16) || (append != 0 && append != 1))
        return TOLK_CU_EINVAL;
    const int mix = (kv_dtype == TOLK_CU_F16 ? ATTN_MIX_KVH : 0) |
                    (out_dtype == TOLK_CU_F16 ? ATTN_MIX_OUTH : 0);
    /* all float32: the plain call's routing (flash included; the append
     * refuses the flash path) */
    return desc_call(q, ldq, k, v, ldkv, out, ldo, desc, n_seqs, max_n_q, max_n_kv, n_head, d_head,
                     scale, TOLK_CU_F32, TOLK_CU_F32, ws, ws_bytes, sync, stream, mix, append);
}

extern "C" int tolk_cu_attention_desc_plan(int n_seqs, int max_n_q, int max_n_kv, int n_head,
                                           int d_head, int tc, size_t ws_bytes, int with_sync,
                                           tolk_cu_attn_plan *plan) {
    if (!plan || n_seqs < 0 || max_n_q < 0 || max_n_kv < 1) return TOLK_CU_EINVAL;
    memset(plan, 0, sizeof *plan);
    const long long w = (long long)n_head * d_head;
    const int rc = check_common(n_head, d_head, w, w, w, TOLK_CU_F32, tc, NULL);
    if (rc) return rc;
    if (n_seqs == 0 || max_n_q == 0) return 0;
    attn_src src;
    src_init(&src, w, w, w);
    src.desc = (const tolk_cu_attn_desc *)plan; /* device mode; never read */
    src.max_nq = max_n_q;
    src.max_nkv = max_n_kv;
    void *ws = ws_bytes ? (void *)plan : NULL;
    /* a non-NULL stand-in: the plan only tests whether counters exist */
    int *sync = with_sync ? (int *)(void *)plan : NULL;
    return run_desc(src, n_seqs, max_n_q, max_n_kv, n_head, d_head, 0.0f, TOLK_CU_F32, tc, ws,
                    ws_bytes, sync, NULL, plan);
}

extern "C" size_t tolk_cu_attention_ws_bytes(int total_q_rows, int n_head, int d_head,
                                             int max_n_kv) {
    if (total_q_rows < 1 || n_head < 1 || max_n_kv < 1) return 0;
    if (d_head != 32 && d_head != 64 && d_head != 128) return 0;
    /* The largest workspace a launch of at most total_q_rows * n_head pairs
     * asks for; only launches below the split target split at all, and the
     * split count never grows with fewer keys. */
    const long long pairs = (long long)total_q_rows * n_head;
    const int target = attn_split_target();
    const long long p_end = pairs < target ? pairs : target;
    const int cap = total_q_rows >= 2 ? ATTN_GROUP_MAX : 1; /* groups need >= 2 sequences */
    size_t best = 0;
    for (long long p = 1; p <= p_end; p++) {
        int chunk = 0;
        const int ns = attn_split_plan(p, max_n_kv, &chunk);
        if (ns <= 1) continue;
        const size_t b = attn_split_ws(p, ns, d_head, cap);
        if (b > best) best = b;
    }
    return best;
}

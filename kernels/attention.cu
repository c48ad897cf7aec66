/*
 * attention.cu — fused multi-head attention (see attention.h). CPU twin:
 * backend_cpu.c's attention and ref_attention in tests/test_cuda_kernels.c
 * (a plain three-loop softmax attention in double).
 *
 * Two kernels, both float32 arithmetic with the softmax in base 2
 * (q is pre-multiplied by scale * log2(e), then p = 2^(s - max)):
 *
 *  flash_kernel  (n_q >= 64): a block of 128 threads owns 128 consecutive
 *      query rows of one (sequence, head), one row per thread, q and the
 *      output accumulator in registers. K and V stream through shared
 *      memory in tiles of BK keys; each thread keeps a running max m and sum
 *      l (online softmax) and rescales its accumulator once per tile. All
 *      threads read the same K/V row at a time (shared-memory broadcast).
 *      Causal blocks stop at the last key their last row may see.
 *
 *  rows_kernel   (n_q < 64, decoder steps): a block of 256 threads owns one
 *      query row of one (sequence, head). Pass 1: each thread scores keys
 *      j = tid, tid + 256, ... into shared memory; block max; pass 2:
 *      p = 2^(s - max) in place, block sum; pass 3: threads split into
 *      G = 256 / d_head groups, thread (g, c) sums p_j v[j, c] over
 *      j = g, g + G, ... (coalesced reads of V rows); groups are summed.
 *
 * Sequences are passed by value in the kernel parameters (32 per launch).
 */
#include "attention.h"
#include "kcommon.cuh"

using namespace tolkcu;

#define SEQS_PER_LAUNCH 32
#define FLASH_MIN_Q 64
#define FLASH_BQ 128
#define ROWS_THREADS 256
#define LOG2E 1.4426950408889634f

struct seq_table {
    tolk_cu_attn_seq s[SEQS_PER_LAUNCH];
};

/* ------------------------------------------------------------------------ */

template <typename T, int D, int BK>
static __global__ void __launch_bounds__(FLASH_BQ)
    flash_kernel(const seq_table tab, int n_head, long long ldq, long long ldkv, long long ldo,
                 float scale_log2) {
    __shared__ __align__(16) float Ks[BK][D];
    __shared__ __align__(16) float Vs[BK][D];
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = tab.s[si];
    const int q0 = blockIdx.x * FLASH_BQ;
    if (q0 >= sq.n_q) return; /* block-uniform */
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
        if (mt == -INFINITY) continue; /* no visible key in this tile for this row */
        const float corr = exp2f(m - mt); /* 0 on the first visible tile (m = -inf) */
        l *= corr;
#pragma unroll
        for (int c = 0; c < D; c++) acc[c] *= corr;
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
        for (int c = 0; c < D; c++) op[c] = from_f<T>(acc[c] * inv);
    }
}

/* ------------------------------------------------------------------------ */

template <typename T>
static __global__ void __launch_bounds__(ROWS_THREADS)
    rows_kernel(const seq_table tab, int n_head, int D, long long ldq, long long ldkv,
                long long ldo, float scale_log2) {
    extern __shared__ float sh[];
    __shared__ float red[32];
    const int part_len = D > ROWS_THREADS ? D : ROWS_THREADS;
    float *qs = sh;                          /* [D] */
    float *part = sh + ((D + 3) & ~3);       /* [part_len] */
    float *sc = part + part_len;             /* [n_keys] */
    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = tab.s[si];
    const int i = blockIdx.x;
    if (i >= sq.n_q) return; /* block-uniform */
    const int nk = sq.causal ? sq.q_pos0 + i + 1 : sq.n_kv;
    const int tid = threadIdx.x;

    const T *qp = (const T *)sq.q + (long long)i * ldq + (long long)h * D;
    for (int c = tid; c < D; c += ROWS_THREADS) qs[c] = to_f(qp[c]) * scale_log2;
    __syncthreads();

    const T *K = (const T *)sq.k + (long long)h * D;
    float mx = -INFINITY;
    for (int j = tid; j < nk; j += ROWS_THREADS) {
        const T *kr = K + (long long)j * ldkv;
        float d0 = 0.0f, d1 = 0.0f;
        int c = 0;
        for (; c + 1 < D; c += 2) {
            d0 = fmaf(qs[c], to_f(kr[c]), d0);
            d1 = fmaf(qs[c + 1], to_f(kr[c + 1]), d1);
        }
        if (c < D) d0 = fmaf(qs[c], to_f(kr[c]), d0);
        const float s = d0 + d1;
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = tid; j < nk; j += ROWS_THREADS) {
        const float p = exp2f(sc[j] - mx);
        sc[j] = p;
        sum += p;
    }
    sum = block_sum(sum, red); /* its barriers also publish sc[] */

    const T *V = (const T *)sq.v + (long long)h * D;
    const int G = D >= ROWS_THREADS ? 1 : ROWS_THREADS / D;
    for (int e = tid; e < G * D; e += ROWS_THREADS) {
        const int c = e % D, g = e / D;
        float a0 = 0.0f, a1 = 0.0f;
        int j = g;
        for (; j + G < nk; j += 2 * G) {
            a0 = fmaf(sc[j], to_f(V[(long long)j * ldkv + c]), a0);
            a1 = fmaf(sc[j + G], to_f(V[(long long)(j + G) * ldkv + c]), a1);
        }
        if (j < nk) a0 = fmaf(sc[j], to_f(V[(long long)j * ldkv + c]), a0);
        part[e] = a0 + a1;
    }
    __syncthreads();
    const float inv = 1.0f / sum;
    T *op = (T *)sq.out + (long long)i * ldo + (long long)h * D;
    for (int c = tid; c < D; c += ROWS_THREADS) {
        float a = 0.0f;
        for (int g = 0; g < G; g++) a += part[g * D + c];
        op[c] = from_f<T>(a * inv);
    }
}

/* Shared memory bytes of rows_kernel for keys up to n_keys. */
static size_t rows_smem(int D, int n_keys) {
    const int part_len = D > ROWS_THREADS ? D : ROWS_THREADS;
    return (size_t)(((D + 3) & ~3) + part_len + n_keys) * sizeof(float);
}
#define ROWS_MAX_SMEM (46 * 1024) /* below the 48 KiB default limit (plus red[]) */

/* ------------------------------------------------------------------------ */

template <typename T>
static int launch_flash(const seq_table &tab, int n, int max_nq, int n_head, int d_head,
                        long long ldq, long long ldkv, long long ldo, float scale_log2,
                        cudaStream_t st) {
    dim3 grid((unsigned)((max_nq + FLASH_BQ - 1) / FLASH_BQ), (unsigned)(n * n_head));
    switch (d_head) {
    case 32:
        flash_kernel<T, 32, 32><<<grid, FLASH_BQ, 0, st>>>(tab, n_head, ldq, ldkv, ldo,
                                                            scale_log2);
        break;
    case 64:
        flash_kernel<T, 64, 32><<<grid, FLASH_BQ, 0, st>>>(tab, n_head, ldq, ldkv, ldo,
                                                            scale_log2);
        break;
    case 128:
        flash_kernel<T, 128, 16><<<grid, FLASH_BQ, 0, st>>>(tab, n_head, ldq, ldkv, ldo,
                                                             scale_log2);
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    return (int)cudaGetLastError();
}

template <typename T>
static int attention_t(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                       long long ldq, long long ldkv, long long ldo, float scale_log2,
                       cudaStream_t st) {
    /* Two tables per pass over the input: flash-sized and row-sized sequences. */
    seq_table ft, rt;
    int nf = 0, nr = 0, f_maxq = 0, r_maxq = 0, r_maxk = 0;
    for (int s = 0; s <= n_seqs; s++) {
        const bool last = s == n_seqs;
        if (!last) {
            const tolk_cu_attn_seq *a = &seqs[s];
            if (a->n_q == 0) continue;
            const int nk = a->causal ? a->q_pos0 + a->n_q : a->n_kv;
            if (a->n_q >= FLASH_MIN_Q || rows_smem(d_head, nk) > ROWS_MAX_SMEM) {
                ft.s[nf++] = *a;
                if (a->n_q > f_maxq) f_maxq = a->n_q;
            } else {
                rt.s[nr++] = *a;
                if (a->n_q > r_maxq) r_maxq = a->n_q;
                if (nk > r_maxk) r_maxk = nk;
            }
        }
        if (nf == SEQS_PER_LAUNCH || (last && nf > 0)) {
            const int rc =
                launch_flash<T>(ft, nf, f_maxq, n_head, d_head, ldq, ldkv, ldo, scale_log2, st);
            if (rc) return rc;
            nf = f_maxq = 0;
        }
        if (nr == SEQS_PER_LAUNCH || (last && nr > 0)) {
            dim3 grid((unsigned)r_maxq, (unsigned)(nr * n_head));
            rows_kernel<T><<<grid, ROWS_THREADS, rows_smem(d_head, r_maxk), st>>>(
                rt, n_head, d_head, ldq, ldkv, ldo, scale_log2);
            const int rc = (int)cudaGetLastError();
            if (rc) return rc;
            nr = r_maxq = r_maxk = 0;
        }
    }
    return 0;
}

extern "C" int tolk_cu_attention(const tolk_cu_attn_seq *seqs, int n_seqs, int n_head,
                                 int d_head, long long ldq, long long ldkv, long long ldo,
                                 float scale, int dtype, void *stream) {
    if (n_seqs < 0 || n_head < 1 || n_head > 2047 || (n_seqs > 0 && !seqs)) return TOLK_CU_EINVAL;
    if (d_head != 32 && d_head != 64 && d_head != 128) return TOLK_CU_EINVAL;
    const long long width = (long long)n_head * d_head;
    if (ldq < width || ldkv < width || ldo < width) return TOLK_CU_EINVAL;
    for (int s = 0; s < n_seqs; s++) {
        const tolk_cu_attn_seq *a = &seqs[s];
        if (a->n_q < 0 || a->n_kv < 1 || (a->causal != 0 && a->causal != 1)) return TOLK_CU_EINVAL;
        if (a->n_q == 0) continue;
        if (!a->q || !a->k || !a->v || !a->out) return TOLK_CU_EINVAL;
        if (a->causal && (a->q_pos0 < 0 || (long long)a->q_pos0 + a->n_q > a->n_kv))
            return TOLK_CU_EINVAL;
    }
    const float scale_log2 = scale * LOG2E;
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(dtype, T, {
        return attention_t<T>(seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale_log2, st);
    });
    return 0;
}

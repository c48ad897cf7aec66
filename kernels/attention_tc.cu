/*
 * attention_tc.cu — flash attention on tensor cores (WMMA m16n16k16, half
 * or bfloat16 inputs, float32 accumulation) for sequences with many queries
 * (n_q >= 64: the encoder's 1500 x 1500 self-attention, long prompts);
 * tolk_cu_attention_ex / _desc with tc = TOLK_CU_F16 or TOLK_CU_BF16 (see
 * attention.h). Reference: openai-whisper's MultiHeadAttention.qkv_attention,
 * softmax(q k^T * scale) v per head, here on q, k, v rounded to the half
 * type H (the test's reference loop rounds its inputs the same way).
 *
 * tc_flash_kernel<T, H, D, BK>: storage type T (float / half / bf16), MMA
 * type H (__half / __nv_bfloat16), head width D (32, 64, 128), key tile BK
 * (64; 32 for D = 128). A block of 128 threads (4 warps) owns BQ = 64
 * consecutive query rows of one (sequence, head); warp w owns rows
 * [16 w, 16 w + 16). Shared memory (static, < 48 KiB; leading dimensions
 * padded by 8 halves / 4 floats against bank conflicts, every WMMA pointer
 * 32-byte aligned, ldm a multiple of 8 halves / 4 floats):
 *   Ks [BK][D+8] H  the key tile        (also the Q staging tile once, and
 *   Ps [BQ][BK+8] H the probabilities    P, which aliases K after S = Q K^T)
 *   Vs [BK][D+8] H  the value tile
 *   Ss [BQ][BK+4] float  the scores of the tile
 *   Cs [4][16][16] float per warp: a row-broadcast matrix (row r = the
 *                   factor of query row r) loaded as an accumulator fragment
 *   (the whole buffer is the output staging tile [BQ][D+4] float at the end)
 * Q stays in registers as D/16 matrix_a fragments per warp, the output in
 * D/16 float accumulator fragments. Per key tile (4 barriers):
 *   1. K, V tile -> H in shared memory (keys past the block's last visible
 *      key are 0, so masked products are exact zeros, never NaN);
 *   2. each warp: S[16 x BK] = Q K^T (matrix_b col_major over Ks) -> Ss;
 *   3. two threads per query row (the owning warp's lanes): s * scale_log2
 *      with the mask (-inf), row max (pair shuffle), p = 2^(s - m_new)
 *      rounded to H -> Ps, l = l * 2^(m_old - m_new) + sum of the rounded p,
 *      the factor 2^(m_old - m_new) broadcast along its row of Cs;
 *   4. each warp: O *= C elementwise (C loaded from Cs as an accumulator
 *      fragment has the same element-to-register mapping as O, so this is
 *      the per-row rescale without knowing the register layout), then
 *      O += P V (matrix_b row_major over Vs).
 * At the end O *= (1 / l row broadcast), the fragments go to the staging
 * tile and the block writes its n_rows x D outputs converted to T. Rows
 * past n_q have no visible key (l = 0, P = 0) and are never written.
 * Causal blocks stop at the last key their last row may see.
 */
#include "attention_common.cuh"

#include <mma.h>

using namespace tolkcu;

#define TC_BQ 64
#define TC_WARPS 4
#define TC_THREADS (32 * TC_WARPS)

namespace {

constexpr int cmax(int a, int b) {
    return a > b ? a : b;
}
constexpr int round32(int b) {
    return (b + 31) & ~31;
}

template <typename H, int D, int BK> struct tc_layout {
    static constexpr int LDH = D + 8;  /* Ks, Vs, Q staging (halves) */
    static constexpr int LDP = BK + 8; /* Ps (halves) */
    static constexpr int LDS = BK + 4; /* Ss (floats) */
    static constexpr int LDO = D + 4;  /* output staging (floats) */
    static constexpr int A_BYTES = round32(cmax(BK * LDH, TC_BQ *LDP) * 2);
    static constexpr int V_BYTES = round32(BK * LDH * 2);
    static constexpr int S_BYTES = TC_BQ * LDS * 4;
    static constexpr int Q_BYTES = TC_BQ * LDH * 2;
    static constexpr int O_BYTES = TC_BQ * LDO * 4;
    static constexpr int RAW = cmax(A_BYTES + V_BYTES + S_BYTES, cmax(Q_BYTES, O_BYTES));
};

} /* namespace */

template <typename T, typename H, int D, int BK>
static __global__ void __launch_bounds__(TC_THREADS)
    tc_flash_kernel(const attn_src src, int n_head, float scale_log2) {
    using namespace nvcuda;
    typedef tc_layout<H, D, BK> L;
    static_assert(D % 16 == 0 && BK % 16 == 0 && BK % 2 == 0, "tile shapes");
    static_assert(TC_BQ == 16 * TC_WARPS && TC_THREADS == 2 * TC_BQ, "two threads per row");
    static_assert(L::RAW + TC_WARPS * 256 * 4 <= 48 * 1024, "static shared memory");
    __shared__ __align__(128) unsigned char raw[L::RAW];
    __shared__ __align__(128) float Cs[TC_WARPS][16 * 16];
    H *const Ks = reinterpret_cast<H *>(raw);
    H *const Ps = reinterpret_cast<H *>(raw);
    H *const Qs = reinterpret_cast<H *>(raw);
    H *const Vs = reinterpret_cast<H *>(raw + L::A_BYTES);
    float *const Ss = reinterpret_cast<float *>(raw + L::A_BYTES + L::V_BYTES);
    float *const Os = reinterpret_cast<float *>(raw);

    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T>(src, si);
    const int q0 = blockIdx.x * TC_BQ;
    if (q0 >= sq.n_q) return; /* block-uniform */
    const int tid = threadIdx.x, warp = tid >> 5;
    const int n_rows = min(TC_BQ, sq.n_q - q0);
    /* keys [0, kv_end) are visible to some row of this block */
    const int kv_end = sq.causal ? min(sq.n_kv, sq.q_pos0 + q0 + n_rows) : sq.n_kv;
    const long long ldq = src.ldq, ldkv = src.ldkv, ldo = src.ldo;
    const T *Qg = (const T *)sq.q + (long long)q0 * ldq + (long long)h * D;
    const T *Kg = (const T *)sq.k + (long long)h * D;
    const T *Vg = (const T *)sq.v + (long long)h * D;

    /* Q tile -> H (rows past n_rows: 0) -> fragments */
    for (int e = tid; e < TC_BQ * D; e += TC_THREADS) {
        const int r = e / D, c = e % D;
        const float x = r < n_rows ? to_f(Qg[(long long)r * ldq + c]) : 0.0f;
        Qs[r * L::LDH + c] = from_f<H>(x);
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, H, wmma::row_major> qf[D / 16];
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> of[D / 16];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        wmma::load_matrix_sync(qf[kk], Qs + warp * 16 * L::LDH + kk * 16, L::LDH);
        wmma::fill_fragment(of[kk], 0.0f);
    }

    /* softmax state of query row r, kept by both threads of the pair */
    const int r = tid >> 1, half_ = tid & 1;
    const int my_end = r < n_rows ? (sq.causal ? sq.q_pos0 + q0 + r + 1 : sq.n_kv) : 0;
    float m = -INFINITY, l = 0.0f;
    float *const crow = &Cs[warp][(r & 15) * 16 + half_ * 8];

    for (int k0 = 0; k0 < kv_end; k0 += BK) {
        __syncthreads(); /* the previous P and V (and the Q staging) are no longer read */
        for (int e = tid; e < BK * D; e += TC_THREADS) {
            const int rr = e / D, c = e % D, j = k0 + rr;
            float kx = 0.0f, vx = 0.0f;
            if (j < kv_end) {
                kx = to_f(Kg[(long long)j * ldkv + c]);
                vx = to_f(Vg[(long long)j * ldkv + c]);
            }
            Ks[rr * L::LDH + c] = from_f<H>(kx);
            Vs[rr * L::LDH + c] = from_f<H>(vx);
        }
        __syncthreads();

        /* S = Q K^T for the warp's 16 rows */
#pragma unroll
        for (int n = 0; n < BK / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, H, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + n * 16 * L::LDH + kk * 16, L::LDH);
                wmma::mma_sync(sf, qf[kk], kf, sf);
            }
            wmma::store_matrix_sync(Ss + warp * 16 * L::LDS + n * 16, sf, L::LDS,
                                    wmma::mem_row_major);
        }
        __syncthreads(); /* Ss complete; Ks free for Ps */

        /* online softmax of row r over columns c = 2 t + half_ */
        const float *srow = Ss + r * L::LDS;
        float mt = m;
#pragma unroll 8
        for (int t = 0; t < BK / 2; t++) {
            const int c = 2 * t + half_;
            mt = fmaxf(mt, k0 + c < my_end ? srow[c] * scale_log2 : -INFINITY);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        const bool any = mt != -INFINITY; /* false only for rows without visible keys so far */
        H *prow = Ps + r * L::LDP;
        float ps = 0.0f;
#pragma unroll 8
        for (int t = 0; t < BK / 2; t++) {
            const int c = 2 * t + half_;
            const float p = (any && k0 + c < my_end) ? exp2f(srow[c] * scale_log2 - mt) : 0.0f;
            const H ph = from_f<H>(p);
            prow[c] = ph;
            ps += to_f(ph);
        }
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        const float corr = any ? exp2f(m - mt) : 1.0f; /* 0 on the first visible tile */
        l = l * corr + ps;
        m = mt;
#pragma unroll
        for (int u = 0; u < 8; u++)
            crow[u] = corr;
        __syncthreads(); /* Ps and Cs complete */

        /* O = diag(corr) O + P V */
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> cf;
            wmma::load_matrix_sync(cf, &Cs[warp][0], 16, wmma::mem_row_major);
#pragma unroll
            for (int n = 0; n < D / 16; n++)
                for (int x = 0; x < of[n].num_elements; x++)
                    of[n].x[x] *= cf.x[x];
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, H, wmma::row_major> pf;
            wmma::load_matrix_sync(pf, Ps + warp * 16 * L::LDP + kk * 16, L::LDP);
#pragma unroll
            for (int n = 0; n < D / 16; n++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, H, wmma::row_major> vf;
                wmma::load_matrix_sync(vf, Vs + kk * 16 * L::LDH + n * 16, L::LDH);
                wmma::mma_sync(of[n], pf, vf, of[n]);
            }
        }
    }

    /* O /= l (row broadcast), stage, write the block's rows */
    __syncthreads(); /* Cs, Ps, Vs no longer read: the staging tile overlays them */
    {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int u = 0; u < 8; u++)
            crow[u] = inv;
    }
    __syncthreads();
    {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> cf;
        wmma::load_matrix_sync(cf, &Cs[warp][0], 16, wmma::mem_row_major);
#pragma unroll
        for (int n = 0; n < D / 16; n++) {
            for (int x = 0; x < of[n].num_elements; x++)
                of[n].x[x] *= cf.x[x];
            wmma::store_matrix_sync(Os + warp * 16 * L::LDO + n * 16, of[n], L::LDO,
                                    wmma::mem_row_major);
        }
    }
    __syncthreads();
    T *Og = (T *)sq.out + (long long)q0 * ldo + (long long)h * D;
    for (int e = tid; e < n_rows * D; e += TC_THREADS) {
        const int rr = e / D, c = e % D;
        Og[(long long)rr * ldo + c] = from_f<T>(Os[rr * L::LDO + c]);
    }
}

/* ------------------------------------------------------------------------ */

template <typename T, typename H>
static int launch_tc_t(const attn_src &src, int n, int max_nq, int n_head, int d_head,
                       float scale_log2, cudaStream_t st) {
    const dim3 grid((unsigned)((max_nq + TC_BQ - 1) / TC_BQ), (unsigned)(n * n_head));
    switch (d_head) {
    case 32:
        tc_flash_kernel<T, H, 32, 64><<<grid, TC_THREADS, 0, st>>>(src, n_head, scale_log2);
        break;
    case 64:
        tc_flash_kernel<T, H, 64, 64><<<grid, TC_THREADS, 0, st>>>(src, n_head, scale_log2);
        break;
    case 128:
        tc_flash_kernel<T, H, 128, 32><<<grid, TC_THREADS, 0, st>>>(src, n_head, scale_log2);
        break;
    default:
        return TOLK_CU_EINVAL;
    }
    return (int)cudaGetLastError();
}

namespace tolkcu {

int attn_launch_tc(const attn_src &src, int n, int max_nq, int n_head, int d_head, float scale_log2,
                   int dtype, int tc, cudaStream_t st) {
    if (tc == TOLK_CU_F16) {
        TOLK_CU_DISPATCH(dtype, T, {
            return launch_tc_t<T, __half>(src, n, max_nq, n_head, d_head, scale_log2, st);
        });
    } else if (tc == TOLK_CU_BF16) {
        TOLK_CU_DISPATCH(dtype, T, {
            return launch_tc_t<T, __nv_bfloat16>(src, n, max_nq, n_head, d_head, scale_log2, st);
        });
    }
    return TOLK_CU_EINVAL;
}

} /* namespace tolkcu */

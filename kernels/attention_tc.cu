/*
 * attention_tc.cu — flash attention on tensor cores in the FlashAttention-2
 * pattern (mma.sync m16n8k16, half or bfloat16 operands, float32
 * accumulation) for sequences with many queries (n_q >= 64: the encoder's
 * 1500 x 1500 self-attention, long prompts); tolk_cu_attention_ex / _desc
 * with tc = TOLK_CU_F16 or TOLK_CU_BF16 (see attention.h). Reference:
 * openai-whisper's MultiHeadAttention.qkv_attention, softmax(q k^T * scale) v
 * per head, here on q, k, v rounded to the half type H (the test's reference
 * loop rounds its inputs the same way); CPU twin: backend_cpu.c's attention.
 *
 * fa2_kernel<T, H, D, VEC>: storage type T (float / half / bf16), MMA type H
 * (__half / __nv_bfloat16), head width D (32, 64, 128), VEC = every row of
 * q, k, v, out starts 16-byte aligned (host-checked: pointers and row
 * strides). A block of 256 threads (8 warps) owns BQ = 128 consecutive query
 * rows of one (sequence, head); warp w owns rows [16 w, 16 w + 16).
 *
 * Dynamic shared memory (H, rows padded to D + 8 halves: 16-byte aligned and
 * free of ldmatrix bank conflicts): Qs [128][D+8], Ks [2][BK][D+8],
 * Vs [2][BK][D+8], BK = 64 keys per tile (32 for D = 128); 30 / 54 / 68 KiB
 * for D = 32 / 64 / 128.
 *
 * Per block:
 *   1. Q (rows past n_q: 0) and the first K/V tile -> shared memory; each
 *      warp loads its 16 x D slice of Q into registers as mma A fragments
 *      (ldmatrix.x4), once.
 *   2. For each key tile t (one barrier per tile): the loads of tile t + 1
 *      into the other buffer are issued first — cp.async 16-byte copies with
 *      zero fill past the last visible key when T == H and VEC (double
 *      buffering without registers), else 16-byte (VEC) or scalar loads into
 *      registers that are rounded to H and stored after the tile's math.
 *      Then, per warp, in registers only:
 *        S [16 x BK] = Q K^T      (K B-fragments by ldmatrix.x4 from Ks)
 *        mask (only on tiles that reach past the first row's last visible
 *        key), row max over the 4 lanes of a row (two shuffles), the online
 *        softmax in base 2 (p = 2^(s * scale_log2 - m)), l and O rescaled,
 *        P rounded to H: the S accumulator layout of two adjacent n-tiles is
 *        exactly the A-fragment layout of one k16 slice, so P never leaves
 *        the registers;
 *        O [16 x D] += P V        (V B-fragments by ldmatrix.x4.trans)
 *      then the tile t + 1 loads complete (cp.async.wait_group 0, or the
 *      register stores) and a barrier publishes them.
 *   3. l is summed over the row's 4 lanes, O /= l; float outputs are stored
 *      from registers (two adjacent floats per lane: a quad writes 32
 *      contiguous bytes), 16-bit outputs are staged in the warp's own rows
 *      of Qs and written as 16-byte rows. Rows past n_q are never written.
 * Rows past n_q compute on Q = 0 and are discarded; keys past the block's
 * last visible key are zero in K and V, so no NaN can arise; causal blocks
 * stop at the last key their last row may see.
 */
#include "attention_common.cuh"
#include "ptx.cuh"

#include <atomic>
#include <type_traits>

using namespace tolkcu;

#define FA_BQ 128
#define FA_WARPS 8
#define FA_THREADS (32 * FA_WARPS)

namespace {

template <int D> struct fa_cfg {
    static constexpr int BK = D <= 64 ? 64 : 32; /* keys per tile */
    static constexpr int LD = D + 8;             /* halves per shared-memory row */
    static constexpr int CH = D / 8;             /* 16-byte chunks of H per row */
    static constexpr int Q_EL = FA_BQ * LD;
    static constexpr int KV_EL = BK * LD;
    static constexpr int SMEM = (Q_EL + 4 * KV_EL) * 2;
    static constexpr int Q_CH = FA_BQ * CH / FA_THREADS; /* chunks per thread: Q */
    static constexpr int KV_CH = BK * CH / FA_THREADS;   /* chunks per thread: a K or V tile */
    static_assert(Q_CH * FA_THREADS == FA_BQ * CH && KV_CH * FA_THREADS == BK * CH, "chunks");
};

/* Eight consecutive elements of T in registers. */
template <typename T> struct alignas(16) raw8 { T v[8]; };

/* rows x D tile of a head: chunk i of this thread is c = tid + i * 256 (row
 * c / CH, columns 8 (c % CH) ..), source row row0 + row of G (row stride
 * ld); rows at or past limit read as zeros. */

/* cp.async version (T == H, 16-byte aligned rows). */
template <typename H, int D, int N>
__device__ __forceinline__ void tile_async(H *sm, const H *G, long long ld, int row0, int limit) {
    typedef fa_cfg<D> C;
#pragma unroll
    for (int i = 0; i < N; i++) {
        const int c = threadIdx.x + i * FA_THREADS, r = c / C::CH, col = (c % C::CH) * 8;
        const int j = row0 + r;
        const bool ok = j < limit;
        cp_async_16(sm + r * C::LD + col, ok ? G + (long long)j * ld + col : G, ok ? 16 : 0);
    }
}

/* Register version, phase 1: load the thread's chunks. */
template <typename T, bool VEC, int D, int N>
__device__ __forceinline__ void tile_fetch(raw8<T> (&rg)[N], const T *G, long long ld, int row0,
                                           int limit) {
    typedef fa_cfg<D> C;
#pragma unroll
    for (int i = 0; i < N; i++) {
        const int c = threadIdx.x + i * FA_THREADS, r = c / C::CH, col = (c % C::CH) * 8;
        const int j = row0 + r;
        const bool ok = j < limit;
        const T *p = G + (long long)(ok ? j : 0) * ld + col;
        if (VEC) {
            constexpr int N16 = (int)sizeof(raw8<T>) / 16;
            uint4 *d = reinterpret_cast<uint4 *>(rg[i].v);
#pragma unroll
            for (int u = 0; u < N16; u++)
                d[u] = ok ? reinterpret_cast<const uint4 *>(p)[u] : make_uint4(0u, 0u, 0u, 0u);
        } else {
#pragma unroll
            for (int u = 0; u < 8; u++)
                rg[i].v[u] = ok ? p[u] : from_f<T>(0.0f);
        }
    }
}

/* Register version, phase 2: round to H and store (one 16-byte store per chunk). */
template <typename H, typename T, int D, int N>
__device__ __forceinline__ void tile_put(H *sm, const raw8<T> (&rg)[N]) {
    typedef fa_cfg<D> C;
#pragma unroll
    for (int i = 0; i < N; i++) {
        const int c = threadIdx.x + i * FA_THREADS, r = c / C::CH, col = (c % C::CH) * 8;
        uint4 u;
        u.x = pack2<H>(to_f(rg[i].v[0]), to_f(rg[i].v[1]));
        u.y = pack2<H>(to_f(rg[i].v[2]), to_f(rg[i].v[3]));
        u.z = pack2<H>(to_f(rg[i].v[4]), to_f(rg[i].v[5]));
        u.w = pack2<H>(to_f(rg[i].v[6]), to_f(rg[i].v[7]));
        *reinterpret_cast<uint4 *>(sm + r * C::LD + col) = u;
    }
}

} /* namespace */

template <typename T, typename H, int D, bool VEC, typename TO = T> /* TO: storage of out */
static __global__ void __launch_bounds__(FA_THREADS,
                                         ((VEC && std::is_same<T, H>::value && D <= 64) ? 2 : 1))
    fa2_kernel(const attn_src src, int n_head, float scale_log2) {
    typedef fa_cfg<D> C;
    constexpr int BK = C::BK, LD = C::LD;
    constexpr bool ASYNC = VEC && std::is_same<T, H>::value;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    H *const Qs = reinterpret_cast<H *>(fa_smem);
    H *const Ks = Qs + C::Q_EL; /* [2][BK][LD] */
    H *const Vs = Ks + 2 * C::KV_EL;

    const int si = blockIdx.y / n_head, h = blockIdx.y % n_head;
    const tolk_cu_attn_seq sq = attn_get<T>(src, si);
    const int q0 = blockIdx.x * FA_BQ;
    if (q0 >= sq.n_q) return; /* block-uniform */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int n_rows = min(FA_BQ, sq.n_q - q0);
    /* keys [0, kv_end) are visible to some row of the block, [0, all_end) to all */
    const int kv_end = sq.causal ? min(sq.n_kv, sq.q_pos0 + q0 + n_rows) : sq.n_kv;
    const int all_end = sq.causal ? sq.q_pos0 + q0 + 1 : sq.n_kv;
    const int n_tiles = (kv_end + BK - 1) / BK;
    const long long ldq = src.ldq, ldkv = src.ldkv, ldo = src.ldo;
    const T *Qg = (const T *)sq.q + (long long)q0 * ldq + (long long)h * D;
    const T *Kg = (const T *)sq.k + (long long)h * D;
    const T *Vg = (const T *)sq.v + (long long)h * D;

    /* 1. Q and the first K/V tile */
    if constexpr (ASYNC) {
        tile_async<H, D, C::Q_CH>(Qs, (const H *)Qg, ldq, 0, n_rows);
        tile_async<H, D, C::KV_CH>(Ks, (const H *)Kg, ldkv, 0, kv_end);
        tile_async<H, D, C::KV_CH>(Vs, (const H *)Vg, ldkv, 0, kv_end);
        cp_async_commit();
        cp_async_wait<0>();
    } else {
        {
            raw8<T> rq[C::Q_CH];
            tile_fetch<T, VEC, D>(rq, Qg, ldq, 0, n_rows);
            tile_put<H, T, D>(Qs, rq);
        }
        raw8<T> rk[C::KV_CH], rv[C::KV_CH];
        tile_fetch<T, VEC, D>(rk, Kg, ldkv, 0, kv_end);
        tile_fetch<T, VEC, D>(rv, Vg, ldkv, 0, kv_end);
        tile_put<H, T, D>(Ks, rk);
        tile_put<H, T, D>(Vs, rv);
    }
    __syncthreads();

    unsigned qa[D / 16][4];
    {
        const H *qrow =
            Qs + (warp * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + (lane >> 4) * 8;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldsm_x4(qa[kk], qrow + kk * 16);
    }
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    /* this lane's rows: local rl and rl + 8; their visible keys [0, end) */
    const int rl = warp * 16 + g;
    const int end0 = sq.causal ? sq.q_pos0 + q0 + rl + 1 : sq.n_kv;
    const int end1 = sq.causal ? end0 + 8 : sq.n_kv;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    /* ldmatrix row addresses of this lane within a tile */
    const int krow = ((lane >> 4) * 8 + (lane & 7)) * LD + ((lane >> 3) & 1) * 8;
    const int vrow = (((lane >> 3) & 1) * 8 + (lane & 7)) * LD + (lane >> 4) * 8;

    /* 2. key tiles */
    for (int t = 0; t < n_tiles; t++) {
        const int cur = t & 1;
        const bool more = t + 1 < n_tiles;
        raw8<T> rk[ASYNC ? 1 : C::KV_CH] = {}, rv[ASYNC ? 1 : C::KV_CH] = {};
        if (more) {
            H *Kn = Ks + (cur ^ 1) * C::KV_EL, *Vn = Vs + (cur ^ 1) * C::KV_EL;
            if constexpr (ASYNC) {
                tile_async<H, D, C::KV_CH>(Kn, (const H *)Kg, ldkv, (t + 1) * BK, kv_end);
                tile_async<H, D, C::KV_CH>(Vn, (const H *)Vg, ldkv, (t + 1) * BK, kv_end);
                cp_async_commit();
            } else {
                tile_fetch<T, VEC, D>(rk, Kg, ldkv, (t + 1) * BK, kv_end);
                tile_fetch<T, VEC, D>(rv, Vg, ldkv, (t + 1) * BK, kv_end);
            }
        }
        const H *Kt = Ks + cur * C::KV_EL, *Vt = Vs + cur * C::KV_EL;

        /* S = Q K^T */
        float s[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < BK / 16; np++) {
                unsigned b[4];
                ldsm_x4(b, Kt + krow + np * 16 * LD + kk * 16);
                mma_16816<H>(s[2 * np], qa[kk], b[0], b[1]);
                mma_16816<H>(s[2 * np + 1], qa[kk], b[2], b[3]);
            }
        }

        /* online softmax (base 2) of rows rl (s[.][0..1]) and rl + 8 (s[.][2..3]) */
        const int k0 = t * BK;
        const bool mask = k0 + BK > all_end;
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int n = 0; n < BK / 8; n++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int j = k0 + n * 8 + 2 * t4 + e;
                float v0 = s[n][e] * scale_log2, v1 = s[n][2 + e] * scale_log2;
                if (mask) {
                    if (j >= end0) v0 = -INFINITY;
                    if (j >= end1) v1 = -INFINITY;
                }
                s[n][e] = v0;
                s[n][2 + e] = v1;
                mx0 = fmaxf(mx0, v0);
                mx1 = fmaxf(mx1, v1);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        /* a row without a visible key so far keeps m = -inf: p = 0 against base 0 */
        const float b0 = mx0 == -INFINITY ? 0.0f : mx0, b1 = mx1 == -INFINITY ? 0.0f : mx1;
        const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1); /* 0 on the first visible tile */
        m0 = mx0;
        m1 = mx1;
        float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
        for (int n = 0; n < BK / 8; n++) {
            s[n][0] = exp2f(s[n][0] - b0);
            s[n][1] = exp2f(s[n][1] - b0);
            s[n][2] = exp2f(s[n][2] - b1);
            s[n][3] = exp2f(s[n][3] - b1);
            ps0 += s[n][0] + s[n][1];
            ps1 += s[n][2] + s[n][3];
        }
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            o[n][0] *= c0;
            o[n][1] *= c0;
            o[n][2] *= c1;
            o[n][3] *= c1;
        }

        /* O += P V, P from the S registers */
#pragma unroll
        for (int kc = 0; kc < BK / 16; kc++) {
            const unsigned pa[4] = {pack2<H>(s[2 * kc][0], s[2 * kc][1]),
                                    pack2<H>(s[2 * kc][2], s[2 * kc][3]),
                                    pack2<H>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                    pack2<H>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                unsigned b[4];
                ldsm_x4_trans(b, Vt + vrow + kc * 16 * LD + dp * 16);
                mma_16816<H>(o[2 * dp], pa, b[0], b[1]);
                mma_16816<H>(o[2 * dp + 1], pa, b[2], b[3]);
            }
        }

        if (more) {
            if constexpr (ASYNC) {
                cp_async_wait<0>();
            } else {
                tile_put<H, T, D>(Ks + (cur ^ 1) * C::KV_EL, rk);
                tile_put<H, T, D>(Vs + (cur ^ 1) * C::KV_EL, rv);
            }
        }
        __syncthreads(); /* tile t + 1 visible; tile t no longer read */
    }

    /* 3. normalise and write */
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    TO *Og = (TO *)sq.out + (long long)q0 * ldo + (long long)h * D;
    if constexpr (std::is_same<TO, float>::value) {
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int r = rl + 8 * hr;
            if (r >= n_rows) continue;
            const float inv = hr ? i1 : i0;
            float *op = Og + (long long)r * ldo + 2 * t4;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                const float x = o[n][2 * hr] * inv, y = o[n][2 * hr + 1] * inv;
                if (VEC) {
                    *reinterpret_cast<float2 *>(op + n * 8) = make_float2(x, y);
                } else {
                    op[n * 8] = x;
                    op[n * 8 + 1] = y;
                }
            }
        }
    } else {
        /* stage the warp's 16 rows (its own rows of Qs, read only by it) */
        unsigned short *stg = reinterpret_cast<unsigned short *>(Qs) + warp * 16 * LD;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<unsigned *>(stg + g * LD + n * 8 + 2 * t4) =
                pack2<TO>(o[n][0] * i0, o[n][1] * i0);
            *reinterpret_cast<unsigned *>(stg + (g + 8) * LD + n * 8 + 2 * t4) =
                pack2<TO>(o[n][2] * i1, o[n][3] * i1);
        }
        __syncwarp();
        for (int c = lane; c < 16 * C::CH; c += 32) {
            const int r = c / C::CH, col = (c % C::CH) * 8;
            if (warp * 16 + r >= n_rows) continue;
            TO *op = Og + (long long)(warp * 16 + r) * ldo + col;
            const unsigned short *sp = stg + r * LD + col;
            if (VEC) {
                *reinterpret_cast<uint4 *>(op) = *reinterpret_cast<const uint4 *>(sp);
            } else {
#pragma unroll
                for (int u = 0; u < 8; u++)
                    memcpy(&op[u], &sp[u], 2);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */

template <typename T, typename H, int D, bool VEC, typename TO>
static int launch_fa2(const attn_src &src, int n, int max_nq, int n_head, float scale_log2,
                      cudaStream_t st) {
    typedef fa_cfg<D> C;
    /* the shared-memory opt-in, once per device (a function attribute is
     * per device) */
    static std::atomic<int> attr_set[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return (int)cudaGetLastError();
    if (dev < 0 || dev >= 64 || !attr_set[dev].load(std::memory_order_acquire)) {
        const cudaError_t e = cudaFuncSetAttribute(
            fa2_kernel<T, H, D, VEC, TO>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM);
        if (e != cudaSuccess) return (int)e;
        if (dev >= 0 && dev < 64) attr_set[dev].store(1, std::memory_order_release);
    }
    const dim3 grid((unsigned)((max_nq + FA_BQ - 1) / FA_BQ), (unsigned)(n * n_head));
    fa2_kernel<T, H, D, VEC, TO><<<grid, FA_THREADS, C::SMEM, st>>>(src, n_head, scale_log2);
    return (int)cudaGetLastError();
}

template <typename T, typename H, bool VEC, typename TO>
static int launch_fa2_d(const attn_src &src, int n, int max_nq, int n_head, int d_head,
                        float scale_log2, cudaStream_t st) {
    switch (d_head) {
    case 32:
        return launch_fa2<T, H, 32, VEC, TO>(src, n, max_nq, n_head, scale_log2, st);
    case 64:
        return launch_fa2<T, H, 64, VEC, TO>(src, n, max_nq, n_head, scale_log2, st);
    case 128:
        return launch_fa2<T, H, 128, VEC, TO>(src, n, max_nq, n_head, scale_log2, st);
    default:
        return TOLK_CU_EINVAL;
    }
}

static bool al16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

/* Whether every row of every sequence of src starts 16-byte aligned (q,
 * k, v of es bytes per element, out of eo). */
static bool rows_aligned(const attn_src &src, int n, size_t es, size_t eo) {
    if ((src.ldq * (long long)es) % 16 || (src.ldkv * (long long)es) % 16 ||
        (src.ldo * (long long)eo) % 16)
        return false;
    if (src.desc) return al16(src.q) && al16(src.k) && al16(src.v) && al16(src.out);
    for (int i = 0; i < n; i++)
        if (src.s[i].n_q > 0 &&
            !(al16(src.s[i].q) && al16(src.s[i].k) && al16(src.s[i].v) && al16(src.s[i].out)))
            return false;
    return true;
}

template <typename T, typename H, typename TO = T>
static int launch_tc_t(const attn_src &src, int n, int max_nq, int n_head, int d_head,
                       float scale_log2, cudaStream_t st) {
    if (rows_aligned(src, n, sizeof(T), sizeof(TO)))
        return launch_fa2_d<T, H, true, TO>(src, n, max_nq, n_head, d_head, scale_log2, st);
    return launch_fa2_d<T, H, false, TO>(src, n, max_nq, n_head, d_head, scale_log2, st);
}

namespace tolkcu {

int attn_launch_tc(const attn_src &src, int n, int max_nq, int n_head, int d_head, float scale_log2,
                   int dtype, int tc, cudaStream_t st, int out_h) {
    if (out_h) { /* float32 q / k / v, float16 out: the encoder of the half modes */
        if (dtype != TOLK_CU_F32 || tc != TOLK_CU_F16) return TOLK_CU_EINVAL;
        return launch_tc_t<float, __half, __half>(src, n, max_nq, n_head, d_head, scale_log2, st);
    }
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

/*
 * norm_linear.cu — LayerNorm + product + bias (+ exact GELU) in one kernel
 * for the decoder step's few rows (see norm_linear.h). Reference:
 * openai-whisper's LayerNorm -> Linear pairs (attn_ln -> query/key/value,
 * cross_attn_ln -> query, mlp_ln -> mlp[0] -> GELU, ln -> logits); CPU twin
 * tolk_host_norm_linear (src/backend_host_half.c).
 *
 * One block of 256 threads (8 warps) owns NT tiles of 8 output columns:
 *  1. every warp normalises rows warp, warp + 8 of x into the shared tile
 *     A [16][K + 32] (float16; rows >= M zero). Each block repeats this
 *     (M * K floats from L2) instead of a separate LayerNorm launch.
 *  2. the warps split K in 32-wide blocks (warp w takes blocks w, w + 8,
 *     ...) and run mma.sync m16n8k16 (float16 in, float32 accumulate) of A
 *     against W's rows streamed from global memory: lane (g = l / 4, t =
 *     l % 4) loads the 16 bytes W[n + g][k + 8t .. k + 8t + 7] with one
 *     vector load and the matching 16 bytes of A rows g and g + 8. The
 *     products sum over k, so any permutation of k applied to A and B
 *     alike gives the same dot products: physical halves 8t .. 8t + 3 play
 *     the fragment's k = 2t, 2t + 1, 2t + 8, 2t + 9 of a first m16n8k16,
 *     8t + 4 .. 8t + 7 those of a second (ptx.cuh's fragment layouts).
 *  3. the per-warp partial tiles go to shared memory (over A, which is no
 *     longer read), and each output is the sum of the 8 warps' partials in
 *     warp order, + bias, GELU, rounded once.
 * The summation order depends on K and on nothing else (not on M, N or
 * the other rows): a row's result is the same alone or among others.
 *
 * Shared memory (dynamic): max(16 (K + 32) * 2, 8 * NT * 16 * 8 * 4) bytes,
 * <= 48 KiB for K <= 1504. Rows of A padded by 32 halves: with K a multiple
 * of 64 consecutive rows start 64 bytes apart modulo 128, so the 16-byte A
 * loads of a quarter warp (rows g, g + 1) hit distinct banks.
 */
#include "kcommon.cuh"
#include "norm_linear.h"
#include "ptx.cuh"
#include "attention_common.cuh"

using namespace tolkcu;

namespace {
constexpr int NL_WARPS = 8;
constexpr int NL_THREADS = NL_WARPS * 32;
constexpr int NL_ROWS = TOLK_CU_NORM_LINEAR_ROWS;
constexpr int NL_PAD = 32;             /* halves of padding per A row */
constexpr int NL_SMEM_MAX = 48 * 1024; /* no opt-in needed */

size_t nl_smem(int K, int nt) {
    const size_t a = (size_t)NL_ROWS * (size_t)(K + NL_PAD) * 2;
    const size_t r = (size_t)NL_WARPS * (size_t)nt * NL_ROWS * 8 * sizeof(float);
    return a > r ? a : r;
}
} // namespace

template <int NT, typename TO, bool GELU>
static __global__ void __launch_bounds__(NL_THREADS)
    norm_linear_kernel(TO *__restrict__ y, long long ldy, const float *__restrict__ x,
                       long long ldx, int M, int K, const float *__restrict__ gamma,
                       const float *__restrict__ beta, float eps, const __half *__restrict__ W,
                       int N, const float *__restrict__ bias) {
    extern __shared__ __align__(16) unsigned char nl_smem_buf[];
    __half *A = reinterpret_cast<__half *>(nl_smem_buf);
    float *red = reinterpret_cast<float *>(nl_smem_buf);
    const int lda = K + NL_PAD;
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);

    /* 1. the LayerNorm of the block's rows, float16 into A */
    for (int r = warp; r < NL_ROWS; r += NL_WARPS) {
        __half *ar = A + (size_t)r * lda;
        if (r >= M) {
            for (int c = lane; c < K; c += 32)
                ar[c] = __float2half_rn(0.0f);
            continue;
        }
        const float *xr = x + (long long)r * ldx;
        float s = 0.0f;
        for (int c = lane; c < K; c += 32)
            s += xr[c];
        const float mean = warp_sum(s) / (float)K;
        float v = 0.0f;
        for (int c = lane; c < K; c += 32) {
            const float d = xr[c] - mean;
            v += d * d;
        }
        const float rstd = rsqrtf(warp_sum(v) / (float)K + eps);
        for (int c = lane; c < K; c += 32) {
            float t = (xr[c] - mean) * rstd;
            if (gamma) t *= gamma[c];
            if (beta) t += beta[c];
            ar[c] = __float2half_rn(t);
        }
    }
    __syncthreads();

    /* 2. the warp's share of K against the block's NT column tiles */
    const int g = lane >> 2, t = lane & 3;
    const int n_base = (int)blockIdx.x * NT * 8;
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++)
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const int nkb = K / 32;
#pragma unroll 4 /* several k-blocks' weight loads in flight per warp */
    for (int kb = warp; kb < nkb; kb += NL_WARPS) {
        const int k0 = kb * 32 + 8 * t;
        uint4 b[NT];
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const int n = n_base + 8 * j + g;
            b[j] = n < N ? __ldg(reinterpret_cast<const uint4 *>(W + (size_t)n * K + k0))
                         : make_uint4(0u, 0u, 0u, 0u);
        }
        const uint4 lo = *reinterpret_cast<const uint4 *>(A + (size_t)g * lda + k0);
        const uint4 hi = *reinterpret_cast<const uint4 *>(A + (size_t)(g + 8) * lda + k0);
        const unsigned a0[4] = {lo.x, hi.x, lo.y, hi.y};
        const unsigned a1[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
        for (int j = 0; j < NT; j++) {
            mma_16816<__half>(acc[j], a0, b[j].x, b[j].y);
            mma_16816<__half>(acc[j], a1, b[j].z, b[j].w);
        }
    }
    __syncthreads(); /* A is dead: red reuses its memory */

    /* 3. partial tiles [warp][j][16][8], then the sum over warps */
#pragma unroll
    for (int j = 0; j < NT; j++) {
        float *p = red + ((size_t)(warp * NT + j) * NL_ROWS) * 8;
        p[g * 8 + 2 * t] = acc[j][0];
        p[g * 8 + 2 * t + 1] = acc[j][1];
        p[(g + 8) * 8 + 2 * t] = acc[j][2];
        p[(g + 8) * 8 + 2 * t + 1] = acc[j][3];
    }
    __syncthreads();
    for (int i = (int)threadIdx.x; i < M * NT * 8; i += NL_THREADS) {
        const int r = i / (NT * 8), cj = i % (NT * 8), j = cj >> 3, c = cj & 7;
        const int n = n_base + cj;
        if (n >= N) continue;
        float v = 0.0f;
        for (int w = 0; w < NL_WARPS; w++)
            v += red[((size_t)(w * NT + j) * NL_ROWS + r) * 8 + c];
        if (bias) v += bias[n];
        if (GELU) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        y[(long long)r * ldy + n] = from_f<TO>(v);
    }
}

template <int NT, typename TO>
static int nl_launch(void *y, long long ldy, const float *x, long long ldx, int M, int K,
                     const float *gamma, const float *beta, float eps, const void *W, int N,
                     const float *bias, int gelu, cudaStream_t st) {
    const unsigned blocks = (unsigned)((N + NT * 8 - 1) / (NT * 8));
    const size_t smem = nl_smem(K, NT);
    if (gelu)
        norm_linear_kernel<NT, TO, true><<<blocks, NL_THREADS, smem, st>>>(
            (TO *)y, ldy, x, ldx, M, K, gamma, beta, eps, (const __half *)W, N, bias);
    else
        norm_linear_kernel<NT, TO, false><<<blocks, NL_THREADS, smem, st>>>(
            (TO *)y, ldy, x, ldx, M, K, gamma, beta, eps, (const __half *)W, N, bias);
    return (int)cudaGetLastError();
}

template <typename TO>
static int nl_dispatch(void *y, long long ldy, const float *x, long long ldx, int M, int K,
                       const float *gamma, const float *beta, float eps, const void *W, int N,
                       const float *bias, int gelu, cudaStream_t st) {
    /* the widest column share per block that still gives every SM two
     * blocks (fewer re-normalisations of the rows for the vocabulary) */
    const long long tiles = (N + 7) / 8, target = attn_split_target();
    if ((tiles + 7) / 8 >= target)
        return nl_launch<8, TO>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
    if ((tiles + 3) / 4 >= target)
        return nl_launch<4, TO>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
    if ((tiles + 1) / 2 >= target)
        return nl_launch<2, TO>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
    return nl_launch<1, TO>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
}

extern "C" int tolk_cu_norm_linear_fits(int K) {
    return K >= 32 && K % 32 == 0 && nl_smem(K, 8) <= (size_t)NL_SMEM_MAX;
}

extern "C" int tolk_cu_norm_linear(void *y, int y_dtype, long long ldy, const float *x,
                                   long long ldx, int M, int K, const float *gamma,
                                   const float *beta, float eps, const void *W, int N,
                                   const float *bias, int gelu, void *stream) {
    if (!y || !x || !W || M < 1 || M > NL_ROWS || N < 1 || !tolk_cu_norm_linear_fits(K) ||
        ldx < K || ldy < N || (y_dtype != TOLK_CU_F32 && y_dtype != TOLK_CU_F16) ||
        ((unsigned long long)(size_t)W & 15u) != 0)
        return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    if (y_dtype == TOLK_CU_F16)
        return nl_dispatch<__half>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
    return nl_dispatch<float>(y, ldy, x, ldx, M, K, gamma, beta, eps, W, N, bias, gelu, st);
}

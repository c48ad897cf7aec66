/*
 * gemm_bf16.c — Y = X W^T + bias with bfloat16 inputs and float32
 * accumulation (see gemm_cpu.h): the linear layer of torch / cblas_sgemm
 * NoTrans/Trans, with W packed once to bf16 and X rounded to bf16 per
 * block. The rounding is round-to-nearest-even, as torch's
 * tensor.to(torch.bfloat16).
 *
 * Fast path (AVX-512 F/BW/VL/BF16, chosen at run time): X is converted per
 * [MC, KC] block into a thread-local scratch (vcvtne2ps2bf16); a
 * register-blocked micro-kernel of up to 12 rows x 32 columns (24 zmm
 * accumulators) runs vdpbf16ps over the packed W panel (KC x 32 bf16 =
 * 16 KB, stays in L1) with X broadcast from the scratch. Work is split
 * into (row block x column chunk) tasks handed out dynamically by OpenMP.
 * Note: vcvtne2ps2bf16 / vdpbf16ps treat denormal inputs as zero.
 *
 * Portable path: X rounded to bf16 (kept as float32), W panels expanded to
 * float32, cblas_sgemm. Products of two bf16 values are exact in float32,
 * so both paths agree to float32 summation-order noise.
 */
#include "gemm_cpu.h"
#include "scratch.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define GEMM_X86 1
#endif

#ifdef _OPENMP
#include <omp.h>
#define GEMM_PRAGMA(x) _Pragma(#x)
#else
#define GEMM_PRAGMA(x)
#endif

#define NR TOLK_GEMM_BF16_NR
#define MR 12       /* rows per micro-kernel call */
#define KC 256      /* K per block (even): a W panel slice is KC * 32 * 2 B = 16 KB */
#define MC 192      /* rows per block (multiple of MR): X scratch MC * KC * 2 B = 96 KB */
#define PORT_NC 256 /* portable path: W columns expanded per sgemm */

/* ------------------------------------------------------------- CPU check */

/* 0 unknown, 1 native, 2 portable. Idempotent, so a benign race. */
static atomic_int g_gemm_mode;

static int detect_native(void) {
#ifdef GEMM_X86
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0xe6u) != 0xe6u) return 0; /* XMM, YMM, opmask, ZMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    unsigned need = (1u << 16) | (1u << 30) | (1u << 31); /* AVX512F, BW, VL */
    if ((b & need) != need) return 0;
    if (a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1u; /* AVX512_BF16 */
#else
    return 0;
#endif
}

int tolk_gemm_bf16_native(void) {
    int m = atomic_load_explicit(&g_gemm_mode, memory_order_relaxed);
    if (m == 0) {
        const char *env = getenv("TOLK_NO_AVX512");
        int off = env && *env && strcmp(env, "0") != 0;
        m = (!off && detect_native()) ? 1 : 2;
        atomic_store_explicit(&g_gemm_mode, m, memory_order_relaxed);
    }
    return m == 1;
}

/* --------------------------------------------------------------- packing */

tolk_status tolk_gemm_bf16_packed_size(int N, int K, size_t *bytes) {
    if (!bytes || N < 1 || K < 1) return TOLK_ERR_INVALID_ARG;
    size_t panels = ((size_t)N + NR - 1) / NR, kp = ((size_t)K + 1) / 2, r;
    if (!tolk_mul_size(panels, kp, &r) || !tolk_mul_size(r, NR * 4, &r)) return TOLK_ERR_NOMEM;
    *bytes = r;
    return TOLK_OK;
}

tolk_status tolk_gemm_bf16_pack(tolk_ctx *ctx, const void *W, tolk_gemm_src src, int N, int K,
                                void *packed, size_t packed_bytes) {
    size_t need;
    if (!W || !packed || (src != TOLK_GEMM_SRC_F32 && src != TOLK_GEMM_SRC_F16))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "gemm_bf16: pack: bad argument");
    tolk_status st = tolk_gemm_bf16_packed_size(N, K, &need);
    if (st != TOLK_OK) return tolk_fail(ctx, st, "gemm_bf16: pack: bad size %d x %d", N, K);
    if (packed_bytes < need || ((uintptr_t)packed & 3u))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "gemm_bf16: pack: buffer too small/unaligned");
    uint32_t *out = (uint32_t *)packed;
    size_t panels = ((size_t)N + NR - 1) / NR, kp = ((size_t)K + 1) / 2;
    const float *wf = (const float *)W;
    const uint16_t *wh = (const uint16_t *)W;
    for (size_t p = 0; p < panels; p++) {
        uint32_t *po = out + p * kp * NR; /* [kp][32] */
        for (size_t j = 0; j < NR; j++) {
            size_t n = p * NR + j;
            for (size_t kk = 0; kk < kp; kk++) {
                uint16_t lo = 0, hi = 0;
                if (n < (size_t)N) {
                    size_t k = 2 * kk, base = n * (size_t)K;
                    float a =
                        src == TOLK_GEMM_SRC_F32 ? wf[base + k] : tolk_f16_to_f32(wh[base + k]);
                    lo = tolk_f32_to_bf16(a);
                    if (k + 1 < (size_t)K) {
                        float b = src == TOLK_GEMM_SRC_F32 ? wf[base + k + 1]
                                                           : tolk_f16_to_f32(wh[base + k + 1]);
                        hi = tolk_f32_to_bf16(b);
                    }
                }
                po[kk * NR + j] = (uint32_t)lo | ((uint32_t)hi << 16);
            }
        }
    }
    return TOLK_OK;
}

/* ------------------------------------------------------ AVX-512 BF16 path */
#ifdef GEMM_X86
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* Convert rows [0, mr) of X (stride ldX floats, columns [k0, k0 + kc)) to
 * bf16 pairs: xp[r * ldp + kk] = (bf16 x[2kk], bf16 x[2kk + 1]) with the
 * odd tail padded by zero. ldp >= ceil(kc / 2) words. */
AVX512BF16 static void convert_x(uint32_t *xp, size_t ldp, const float *X, size_t ldX, int mr,
                                 size_t k0, int kc) {
    for (int r = 0; r < mr; r++) {
        const float *x = X + (size_t)r * ldX + k0;
        uint32_t *o = xp + (size_t)r * ldp;
        int k = 0;
        for (; k + 32 <= kc; k += 32) {
            __m512 lo = _mm512_loadu_ps(x + k), hi = _mm512_loadu_ps(x + k + 16);
            __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512((void *)(o + k / 2), (__m512i)v);
        }
        if (k < kc) {
            int rem = kc - k; /* 1..31 */
            __mmask16 m0 = rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1);
            __mmask16 m1 = rem > 16 ? (__mmask16)((1u << (rem - 16)) - 1) : 0;
            __m512 lo = _mm512_maskz_loadu_ps(m0, x + k),
                   hi = _mm512_maskz_loadu_ps(m1, x + k + 16);
            __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            int words = (rem + 1) / 2;
            _mm512_mask_storeu_epi32(o + k / 2, (__mmask16)((1u << words) - 1), (__m512i)v);
        }
    }
}

/* The micro-kernel: rows [0, mr) x the 32 columns of one panel.
 * acc[r][j] = sum_kk xp[r][kk] . wp[kk][j] (bf16 pair dot products), then
 * y[r][j] = (first == 1 ? 0 : y[r][j]) + (first ? bias[j] or 0 : 0) + acc
 * (first: 0 a later K block, 1 the first (overwrite), 2 the first
 * (accumulate into y)) for the columns in
 * masks m0 (0..15) / m1 (16..31). xp: [mr][ldp] words; wp: [kcp][32] words;
 * bias: the panel's 32-column slice or NULL. mr is a constant at each call
 * site so the accumulators stay in registers. */
AVX512BF16 static inline __attribute__((always_inline)) void
kernel(const int mr, const uint32_t *xp, size_t ldp, const uint32_t *wp, int kcp, float *y,
       size_t ldy, __mmask16 m0, __mmask16 m1, const float *bias, int first) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm512_setzero_ps();
    for (int kk = 0; kk < kcp; kk++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(wp + (size_t)kk * NR));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(wp + (size_t)kk * NR + 16));
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)xp[(size_t)r * ldp + kk]);
            c0[r] = _mm512_dpbf16_ps(c0[r], a, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], a, b1);
        }
    }
    __m512 i0 = _mm512_setzero_ps(), i1 = _mm512_setzero_ps();
    if (first && bias) {
        i0 = _mm512_maskz_loadu_ps(m0, bias);
        i1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        float *yr = y + (size_t)r * ldy;
        __m512 p0 = first == 1 ? i0 : _mm512_add_ps(_mm512_maskz_loadu_ps(m0, yr), i0);
        __m512 p1 = first == 1 ? i1 : _mm512_add_ps(_mm512_maskz_loadu_ps(m1, yr + 16), i1);
        _mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(p0, c0[r]));
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_add_ps(p1, c1[r]));
    }
}

AVX512BF16 static void kernel_any(int mr, const uint32_t *xp, size_t ldp, const uint32_t *wp,
                                  int kcp, float *y, size_t ldy, __mmask16 m0, __mmask16 m1,
                                  const float *bias, int first) {
    /* clang-format off */
    switch (mr) {
#define KCASE(n)                                                                                   \
    case n:                                                                                        \
        kernel(n, xp, ldp, wp, kcp, y, ldy, m0, m1, bias, first);                                  \
        break;
        KCASE(1) KCASE(2) KCASE(3) KCASE(4) KCASE(5) KCASE(6)
        KCASE(7) KCASE(8) KCASE(9) KCASE(10) KCASE(11) KCASE(12)
#undef KCASE
    default:
        break;
    }
    /* clang-format on */
}

/* One task: rows [m0, m0 + mc) x panels [p0, p1), all of K, scratch xp of
 * MC * KC / 2 words. */
AVX512BF16 static void task_native(const float *X, size_t ldX, int K, const uint32_t *W, int N,
                                   const float *bias, float *Y, size_t ldY, int m0, int mc, int p0,
                                   int p1, uint32_t *xp, int accumulate) {
    size_t kp_all = ((size_t)K + 1) / 2;
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC, kcp = (kc + 1) / 2;
        size_t ldp = (size_t)kcp;
        convert_x(xp, ldp, X + (size_t)m0 * ldX, ldX, mc, (size_t)k0, kc);
        int first = k0 == 0 ? (accumulate ? 2 : 1) : 0;
        for (int p = p0; p < p1; p++) {
            int n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
            __mmask16 mk0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
            __mmask16 mk1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
            const uint32_t *wp = W + (size_t)p * kp_all * NR + (size_t)(k0 / 2) * NR;
            const float *bp = bias ? bias + n0 : NULL;
            for (int r = 0; r < mc; r += MR) {
                int mr = mc - r < MR ? mc - r : MR;
                kernel_any(mr, xp + (size_t)r * ldp, ldp, wp, kcp, Y + (size_t)(m0 + r) * ldY + n0,
                           ldY, mk0, mk1, bp, first);
            }
        }
    }
}

static tolk_status gemm_native(tolk_ctx *ctx, const float *X, int M, int K, size_t ldX,
                               const uint32_t *W, int N, const float *bias, float *Y, size_t ldY,
                               int n_threads, int accumulate) {
    int n_panels = (N + NR - 1) / NR;
    int n_mb = (M + MC - 1) / MC;
    /* Row blocks of equal size (a multiple of MR) so tasks balance. */
    int mcb = (M + n_mb - 1) / n_mb;
    mcb = (mcb + MR - 1) / MR * MR;
    if (mcb > MC) mcb = MC;
    n_mb = (M + mcb - 1) / mcb;
    /* Column chunks: about 4 tasks per thread in all, but whole panels
     * and at least 4 panels (128 columns) per chunk when N allows. */
    int nt = n_threads < 1 ? 1 : n_threads;
    double flops = 2.0 * M * (double)N * K;
    if (flops < 4e5) nt = 1;
    int want = 4 * nt;
    int n_nc = (want + n_mb - 1) / n_mb;
    if (nt == 1) n_nc = 1;
    if (n_nc > (n_panels + 3) / 4) n_nc = (n_panels + 3) / 4;
    if (n_nc < 1) n_nc = 1;
    int chunk = (n_panels + n_nc - 1) / n_nc;
    n_nc = (n_panels + chunk - 1) / chunk;
    long long n_tasks = (long long)n_mb * n_nc;
    if (nt > n_tasks) nt = (int)n_tasks;
    int failed = 0;
    size_t scratch = (size_t)MC * (KC / 2) * sizeof(uint32_t);
    GEMM_PRAGMA(omp parallel num_threads(nt) if (nt > 1)) {
        uint32_t *xp = tolk_thread_scratch(TOLK_SCRATCH_GEMM, scratch);
        if (!xp) {
            GEMM_PRAGMA(omp atomic write)
            failed = 1;
        }
        long long t;
        GEMM_PRAGMA(omp for schedule(dynamic, 1))
        for (t = 0; t < n_tasks; t++) {
            if (!xp) continue;
            /* chunk-major order: tasks next in line share a W chunk */
            int ic = (int)(t / n_mb), ib = (int)(t % n_mb);
            int m0 = ib * mcb, mc = M - m0 < mcb ? M - m0 : mcb;
            int p0 = ic * chunk, p1 = p0 + chunk < n_panels ? p0 + chunk : n_panels;
            task_native(X, ldX, K, W, N, bias, Y, ldY, m0, mc, p0, p1, xp, accumulate);
        }
    }
    if (failed) return tolk_fail(ctx, TOLK_ERR_NOMEM, "gemm_bf16: out of memory (scratch)");
    return TOLK_OK;
}
#endif /* GEMM_X86 */

/* ---------------------------------------------------------- portable path */

static tolk_status gemm_portable(tolk_ctx *ctx, const float *X, int M, int K, size_t ldX,
                                 const uint32_t *W, int N, const float *bias, float *Y, size_t ldY,
                                 int accumulate) {
    size_t xb, wb;
    if (!tolk_mul_size((size_t)M, (size_t)K, &xb) || !tolk_mul_size(xb, sizeof(float), &xb) ||
        !tolk_mul_size((size_t)PORT_NC, (size_t)K, &wb) || !tolk_mul_size(wb, sizeof(float), &wb))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "gemm_bf16: size overflow");
    float *xr = malloc(xb), *wf = malloc(wb);
    if (!xr || !wf) {
        free(xr);
        free(wf);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "gemm_bf16: out of memory (portable path)");
    }
    for (size_t m = 0; m < (size_t)M; m++)
        for (size_t k = 0; k < (size_t)K; k++)
            xr[m * K + k] = tolk_bf16_to_f32(tolk_f32_to_bf16(X[m * ldX + k]));
    size_t kp = ((size_t)K + 1) / 2;
    for (int n0 = 0; n0 < N; n0 += PORT_NC) {
        int nb = N - n0 < PORT_NC ? N - n0 : PORT_NC;
        for (int j = 0; j < nb; j++) { /* expand rows n0 + j of W: [nb, K] float32 */
            int n = n0 + j;
            const uint32_t *pw = W + (size_t)(n / NR) * kp * NR + (size_t)(n % NR);
            float *o = wf + (size_t)j * K;
            for (size_t k = 0; k < (size_t)K; k++) {
                uint32_t w = pw[(k / 2) * NR];
                o[k] = tolk_bf16_to_f32((uint16_t)(k & 1 ? w >> 16 : w & 0xffffu));
            }
        }
        for (int m = 0; m < M; m++)
            for (int j = 0; j < nb; j++) {
                float *yv = &Y[(size_t)m * ldY + n0 + j];
                *yv = (accumulate ? *yv : 0.0f) + (bias ? bias[n0 + j] : 0.0f);
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, xr, K, wf, K, 1.0f,
                    Y + n0, (int)ldY);
    }
    free(xr);
    free(wf);
    return TOLK_OK;
}

/* ----------------------------------------------------------------- entry */

tolk_status tolk_gemm_bf16_ex(tolk_ctx *ctx, const float *X, int M, int K, int ldX,
                              const void *packed, int N, const float *bias, float *Y, int ldY,
                              int n_threads, unsigned flags) {
    if (M == 0) return TOLK_OK;
    if (!X || !packed || !Y || M < 0 || N < 1 || K < 1 || ldX < K || ldY < N || n_threads < 1 ||
        ((uintptr_t)packed & 3u))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "gemm_bf16: bad argument (M %d, N %d, K %d, ldX %d, ldY %d)", M, N, K, ldX,
                         ldY);
    const uint32_t *W = (const uint32_t *)packed;
    int acc = (flags & TOLK_GEMM_ACCUMULATE) != 0;
#ifdef GEMM_X86
    if (!(flags & TOLK_GEMM_FORCE_PORTABLE) && tolk_gemm_bf16_native())
        return gemm_native(ctx, X, M, K, (size_t)ldX, W, N, bias, Y, (size_t)ldY, n_threads, acc);
#endif
    return gemm_portable(ctx, X, M, K, (size_t)ldX, W, N, bias, Y, (size_t)ldY, acc);
}

tolk_status tolk_gemm_bf16(tolk_ctx *ctx, const float *X, int M, int K, int ldX, const void *packed,
                           int N, const float *bias, float *Y, int ldY, int n_threads) {
    return tolk_gemm_bf16_ex(ctx, X, M, K, ldX, packed, N, bias, Y, ldY, n_threads, 0);
}

/*
 * dot_avx512.c — the decoder's row-exact products with AVX-512: y[m, n] +=
 * x[m, :] · w[n, :] over K for a tile of rows of x and rows of W (float32
 * or float16 weights), each result bit-identical to backend_cpu.c's
 * dot_rows / dot_f32_f16 (the batch-1 path), so a sequence decodes the
 * same alone or in an engine batch of any size.
 *
 * Why identical: the AVX2 kernels keep two 8-lane accumulators over each
 * 16 elements of K (lanes k .. k+7 and k+8 .. k+15), add them and sum the
 * 8 lanes (hsum8). One 16-lane accumulator holds exactly those two (its
 * low half is the first, its high half the second); every lane sees the
 * same fused multiply-adds in the same order, and the final low + high
 * and 8-lane sum are done as there. Only K a multiple of 16 is taken
 * (every Whisper and Marian width); anything else returns 0 and the
 * caller uses the AVX2 kernels.
 *
 * Why faster: 4 rows of x x 4 weight rows per tile (16 accumulators) load
 * each x and weight vector once per 16 fused multiply-adds of 16 lanes,
 * where the AVX2 tile (4 rows x 1 weight row) loads 10 vectors per 8
 * multiply-adds of 8 lanes: the batched decoder step was bound by those
 * loads and conversions, not by memory.
 */
#include "dot_avx512.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TOLK_DOT512 1
#define AVX512 __attribute__((target("avx512f,avx512vl,f16c,fma")))
#endif

int tolk_dot_avx512_native(void) {
#ifdef TOLK_DOT512
    static int cached = -1; /* idempotent: every thread computes the same */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    }
    return cached;
#else
    return 0;
#endif
}

#ifdef TOLK_DOT512
/* The 16 lanes of a folded as the AVX2 kernels fold their two 8-lane
 * accumulators: low 8 + high 8, then (0..3 + 4..7), (0,1 + 2,3), 0 + 1. */
AVX512 static inline float fold16(__m512 a) {
    __m256 lo = _mm512_castps512_ps256(a);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    __m256 s = _mm256_add_ps(lo, hi);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* 16 weights at w + k (float16 when f16) as float32. */
AVX512 static inline __m512 wload(const void *w, int f16, size_t k) {
    if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)));
    return _mm512_loadu_ps((const float *)w + k);
}

/* MR rows of x (stride ldx) against NR weight rows (stride ldw elements),
 * K a multiple of 16: y[r * ldy + c] += the (r, c) dot product. */
#define TILE(MR, NR)                                                                               \
    AVX512 static void tile_##MR##x##NR(float *y, size_t ldy, const float *x, size_t ldx,          \
                                        const void *w, size_t ldw, int f16, size_t K) {            \
        __m512 acc[MR][NR];                                                                        \
        for (int r = 0; r < MR; r++)                                                               \
            for (int c = 0; c < NR; c++)                                                           \
                acc[r][c] = _mm512_setzero_ps();                                                   \
        const size_t esz = f16 ? 2 : 4;                                                            \
        for (size_t k = 0; k < K; k += 16) {                                                       \
            __m512 wv[NR];                                                                         \
            for (int c = 0; c < NR; c++)                                                           \
                wv[c] = wload((const char *)w + (size_t)c * ldw * esz, f16, k);                    \
            for (int r = 0; r < MR; r++) {                                                         \
                __m512 xv = _mm512_loadu_ps(x + (size_t)r * ldx + k);                              \
                for (int c = 0; c < NR; c++)                                                       \
                    acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);                             \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int c = 0; c < NR; c++)                                                           \
                y[(size_t)r * ldy + (size_t)c] += fold16(acc[r][c]);                               \
    }
TILE(4, 4)
TILE(1, 4)
TILE(4, 1)
TILE(1, 1)
#undef TILE
#endif

int tolk_dot_rows_avx512(float *y, size_t ldy, const float *x, size_t ldx, size_t M, const void *w,
                         size_t ldw, int f16, size_t N, size_t K) {
#ifdef TOLK_DOT512
    if (K == 0 || K % 16 != 0 || !tolk_dot_avx512_native()) return 0;
    const size_t esz = f16 ? 2 : 4;
    size_t m = 0;
    for (; m + 4 <= M; m += 4) {
        const float *xm = x + m * ldx;
        float *ym = y + m * ldy;
        size_t n = 0;
        for (; n + 4 <= N; n += 4)
            tile_4x4(ym + n, ldy, xm, ldx, (const char *)w + n * ldw * esz, ldw, f16, K);
        for (; n < N; n++)
            tile_4x1(ym + n, ldy, xm, ldx, (const char *)w + n * ldw * esz, ldw, f16, K);
    }
    for (; m < M; m++) {
        const float *xm = x + m * ldx;
        float *ym = y + m * ldy;
        size_t n = 0;
        for (; n + 4 <= N; n += 4)
            tile_1x4(ym + n, ldy, xm, ldx, (const char *)w + n * ldw * esz, ldw, f16, K);
        for (; n < N; n++)
            tile_1x1(ym + n, ldy, xm, ldx, (const char *)w + n * ldw * esz, ldw, f16, K);
    }
    return 1;
#else
    (void)y, (void)ldy, (void)x, (void)ldx, (void)M, (void)w, (void)ldw, (void)f16, (void)N,
        (void)K;
    return 0;
#endif
}

/*
 * backend_cpu.c — the CPU implementation of the backend op table
 * (backend.h): matrix products through OpenBLAS cblas_sgemm, everything
 * else in plain C loops that the compiler vectorises, parallelised with
 * OpenMP over rows / heads. Activations are float32; weights are widened to
 * float32 once, or kept as float16 and converted inside linear
 * (tolk_backend_params.keep_f16). With tolk_backend_params.bf16 on a CPU
 * with AVX-512 BF16, each weight is also packed as bfloat16 and products of
 * M >= BF16_MIN_M rows (encoder, convolutions, cross K/V, prompts, batched
 * decoder steps) run through tolk_gemm_bf16 (gemm_cpu.h): 2-3x faster
 * products, inputs rounded to bfloat16 (not bit-exact; float32
 * accumulation). One-row products (greedy steps) keep the exact path.
 * The attention ops are in backend_cpu_attention.c, the half-activation
 * twins in backend_host_half.c; what the files share in
 * backend_cpu_internal.h.
 *
 * Threads: OpenBLAS is kept single-threaded (openblas_set_num_threads(1))
 * and every product is split by this file over the context's threads in ONE
 * OpenMP region (output columns per thread; attention row blocks per
 * thread). Mixing OpenBLAS's own pthreads with OpenMP loops made the two
 * pools spin against each other on the 2-core target (a tiny.en window took
 * 15 s instead of < 1 s under load); with one pool there is nothing to
 * fight over.
 *
 * Reference behaviour: openai-whisper model.py in float32 — LayerNorm
 * (biased variance, eps), exact erf GELU, softmax attention with a
 * 1/sqrt(d_head) scale, Conv1d(kernel 3, padding 1, stride 1 or 2).
 */
#include "backend.h"
#include "backend_cpu_internal.h"
#include "backend_host_half.h"
#include "dot_avx512.h"
#include "gemm_cpu.h"
#include "scratch.h"
#include "select.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Linear: at most this many rows of x use the direct dot-product kernels
 * (f16 converted on the fly, or f32); more go through sgemm (f16 weights
 * converted in chunks first). */
#define F16_GEMV_MAX_M 8
/* Weight rows per block of the dot-product kernels (64 x 1280 f16 = 160 KB,
 * within L2), each block swept by every 4-row tile of x. */
#define DOT_COLS 64
/* bf16 mode: products of at least this many rows use the packed bf16 GEMM
 * (measured, base, 2 threads: faster than the f16 dot products from M = 2,
 * e.g. [5 x 512] x [512 x 51865] 2.1 vs 3.2 ms, and 3x on [512 x 2048];
 * at M = 1 no faster in a whole decoder step, so one row stays exact). */
#define BF16_MIN_M 2
/* Floats of converted weight one f16 sgemm chunk holds (4 MB). */
#define F16_CHUNK_FLOATS (1u << 20)

/* ------------------------------------------------------------------------ */
/* Backend state and helpers                                               */
/* ------------------------------------------------------------------------ */

typedef struct cpu_impl {
    int keep_f16;
    int bf16;      /* pack weights for tolk_gemm_bf16 (only when native) */
    int no_avx512; /* the model asked for no AVX-512 products */
} cpu_impl;

static void *cpu_alloc(tolk_ctx *ctx, const tolk_backend *be, size_t bytes) {
    (void)be;
    size_t rounded;
    if (bytes == 0 || !tolk_add_size(bytes, 63, &rounded)) {
        tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: bad allocation size %zu", bytes);
        return NULL;
    }
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: out of memory (%zu bytes)", bytes);
    return p;
}

static void cpu_free(const tolk_backend *be, void *p) {
    (void)be;
    free(p);
}

static tolk_status cpu_upload(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                              size_t bytes) {
    (void)be;
    if (bytes == 0) return TOLK_OK;
    if (!dst || !src) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: NULL copy");
    memmove(dst, src, bytes);
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Weights                                                                 */
/* ------------------------------------------------------------------------ */

/* Pack the prepared weight W [rows, cols] (F16 or F32 data) for
 * tolk_gemm_bf16 into W->packed (owned, 64-byte aligned), in the layout
 * that tolk_gemm_bf16_pack writes (gemm_cpu.h): panel p holds rows
 * [32p, 32p + 32) as [ceil(K / 2)][32] uint32 words, word j of pair kk =
 * bf16(W[32p + j][2kk]) | bf16(W[32p + j][2kk + 1]) << 16, zeros past the
 * last row and in the odd-K tail. Own loop instead of tolk_gemm_bf16_pack
 * (which converts one element per call): panels in parallel, each row
 * widened once with F16C (the same bytes; the test compares them). Returns
 * TOLK_OK or TOLK_ERR_NOMEM; on failure W->packed stays NULL. */
static tolk_status pack_bf16(tolk_ctx *ctx, tolk_bweight *W) {
    if (W->rows > INT32_MAX || W->cols > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: weight too large for bf16 packing");
    int N = (int)W->rows, K = (int)W->cols;
    const size_t NR = TOLK_GEMM_BF16_NR;
    size_t bytes, rounded, tmp_floats;
    tolk_status st = tolk_gemm_bf16_packed_size(N, K, &bytes);
    if (st != TOLK_OK || !tolk_add_size(bytes, 63, &rounded) ||
        !tolk_mul_size(NR, (size_t)K + 1, &tmp_floats))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: bf16 pack of %d x %d: bad size", N, K);
    uint32_t *packed = aligned_alloc(64, rounded & ~(size_t)63);
    if (!packed) return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: out of memory (bf16 pack)");
    int f16 = W->dtype == TOLK_DT_F16;
    size_t kp = ((size_t)K + 1) / 2;
    long long n_panels = ((long long)N + (long long)NR - 1) / (long long)NR, p;
    int failed = 0;
    OMP(parallel num_threads(tolk_cpu_threads(ctx)) if (n_panels > 4)) {
        /* [32][K + 1] floats: the panel's rows widened, a zero past K */
        float *tmp = malloc(tmp_floats * sizeof(float));
        if (!tmp) {
            OMP(atomic write)
            failed = 1;
        }
        OMP(for schedule(dynamic, 4))
        for (p = 0; p < n_panels; p++) {
            if (!tmp) continue;
            uint32_t *po = packed + (size_t)p * kp * NR; /* [kp][32] */
            size_t n0 = (size_t)p * NR, nr = (size_t)N - n0 < NR ? (size_t)N - n0 : NR;
            for (size_t j = 0; j < NR; j++) {
                float *row = tmp + j * ((size_t)K + 1);
                row[K] = 0.0f;
                if (j >= nr)
                    memset(row, 0, (size_t)K * sizeof(float));
                else if (f16)
                    tolk_f16_to_f32_n((const uint16_t *)W->data + (n0 + j) * (size_t)K, row,
                                      (size_t)K);
                else
                    memcpy(row, (const float *)W->data + (n0 + j) * (size_t)K,
                           (size_t)K * sizeof(float));
            }
            for (size_t kk = 0; kk < kp; kk++)
                for (size_t j = 0; j < NR; j++) {
                    const float *row = tmp + j * ((size_t)K + 1) + 2 * kk;
                    /* row[1] is the zero at K for the odd tail */
                    po[kk * NR + j] =
                        tolk_f32_to_bf16(row[0]) | ((uint32_t)tolk_f32_to_bf16(row[1]) << 16);
                }
        }
        free(tmp);
    }
    if (failed) {
        free(packed);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: out of memory (bf16 pack scratch)");
    }
    W->packed = packed;
    W->packed_bytes = bytes;
    return TOLK_OK;
}

static tolk_status cpu_weight_prepare(tolk_ctx *ctx, const tolk_backend *be,
                                      const tolk_tensor *const *parts, int n_parts,
                                      tolk_bweight *out) {
    const cpu_impl *im = (const cpu_impl *)be->impl;
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: NULL weight");
    memset(out, 0, sizeof *out);
    if (!parts || n_parts < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: no weight parts");
    int64_t rows = 0, cols = -1;
    int all_f16 = 1;
    for (int p = 0; p < n_parts; p++) {
        int64_t r = 0, c = 0;
        if (!tolk_tensor_matrix(parts[p], &r, &c))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "backend_cpu: weight %s: bad shape or dtype",
                             parts[p] && parts[p]->name ? parts[p]->name : "(null)");
        if (cols >= 0 && c != cols)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "backend_cpu: weight %s: %lld columns, expected %lld", parts[p]->name,
                             (long long)c, (long long)cols);
        if (parts[p]->dtype == TOLK_DT_I8 && !parts[p]->scale)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "backend_cpu: weight %s: int8 without scales",
                             parts[p]->name);
        cols = c;
        if (rows > INT64_MAX - r)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: weight too large");
        rows += r;
        if (parts[p]->dtype != TOLK_DT_F16) all_f16 = 0;
    }
    tolk_dtype dt = (all_f16 && im->keep_f16) ? TOLK_DT_F16 : TOLK_DT_F32;
    size_t n, bytes;
    if ((uint64_t)rows > SIZE_MAX || (uint64_t)cols > SIZE_MAX ||
        !tolk_mul_size((size_t)rows, (size_t)cols, &n) ||
        !tolk_mul_size(n, dt == TOLK_DT_F16 ? 2 : 4, &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: weight too large");
    if (dt == TOLK_DT_F16) {
        /* Parts that follow each other in memory (a fused tensor presented as
         * slices) are used in place: no copy of mmapped weights. */
        int contiguous = 1;
        const uint16_t *next = (const uint16_t *)parts[0]->data;
        for (int p = 0; p < n_parts && contiguous; p++) {
            int64_t r = 0, c = 0;
            tolk_tensor_matrix(parts[p], &r, &c);
            if ((const uint16_t *)parts[p]->data != next) contiguous = 0;
            next = (const uint16_t *)parts[p]->data + (size_t)r * (size_t)c;
        }
        if (contiguous) {
            out->dtype = dt;
            out->rows = rows;
            out->cols = cols;
            out->data = (void *)(uintptr_t)parts[0]->data;
            out->owned = 0;
            if (!(im->bf16 && !im->no_avx512 && tolk_gemm_bf16_native())) return TOLK_OK;
            tolk_status st = pack_bf16(ctx, out);
            if (st != TOLK_OK) memset(out, 0, sizeof *out);
            return st;
        }
    }
    void *data = cpu_alloc(ctx, be, bytes);
    if (!data) return TOLK_ERR_NOMEM;
    size_t row0 = 0;
    for (int p = 0; p < n_parts; p++) {
        const tolk_tensor *t = parts[p];
        int64_t r = 0, c = 0;
        tolk_tensor_matrix(t, &r, &c);
        if (dt == TOLK_DT_F16) {
            memcpy((uint16_t *)data + row0 * (size_t)cols, t->data, (size_t)r * (size_t)c * 2);
        } else {
            float *dst = (float *)data + row0 * (size_t)cols;
            int64_t rr;
            OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided))
            for (rr = 0; rr < r; rr++)
                tolk_tensor_rows_to_f32(t, rr, 1, dst + (size_t)rr * (size_t)c);
        }
        row0 += (size_t)r;
    }
    out->dtype = dt;
    out->rows = rows;
    out->cols = cols;
    out->data = data;
    out->owned = 1;
    if (im->bf16 && !im->no_avx512 && tolk_gemm_bf16_native()) {
        tolk_status st = pack_bf16(ctx, out);
        if (st != TOLK_OK) {
            free(data);
            memset(out, 0, sizeof *out);
            return st;
        }
    }
    return TOLK_OK;
}

static void cpu_weight_free(const tolk_backend *be, tolk_bweight *w) {
    (void)be;
    if (!w) return;
    if (w->owned) free(w->data);
    free(w->packed);
    memset(w, 0, sizeof *w);
}

static tolk_status cpu_vector_prepare(tolk_ctx *ctx, const tolk_backend *be,
                                      const tolk_tensor *const *parts, const int64_t *zero_len,
                                      int n_parts, float **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: NULL vector output");
    *out = NULL;
    if (!parts || n_parts < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: no vector parts");
    size_t total = 0;
    for (int p = 0; p < n_parts; p++) {
        int64_t r, c, n;
        if (parts[p]) {
            if (!tolk_tensor_matrix(parts[p], &r, &c) || r > INT64_MAX / c)
                return tolk_fail(ctx, TOLK_ERR_FORMAT, "backend_cpu: tensor %s: bad shape or dtype",
                                 parts[p]->name ? parts[p]->name : "(null)");
            if (parts[p]->dtype == TOLK_DT_I8 && !parts[p]->scale)
                return tolk_fail(ctx, TOLK_ERR_FORMAT,
                                 "backend_cpu: tensor %s: int8 without scales", parts[p]->name);
            n = r * c;
        } else {
            n = zero_len ? zero_len[p] : 0;
            if (n <= 0)
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: bad zero vector length");
        }
        if ((uint64_t)n > SIZE_MAX || !tolk_add_size(total, (size_t)n, &total))
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: vector too large");
    }
    size_t bytes;
    if (!tolk_mul_size(total, sizeof(float), &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: vector too large");
    float *v = cpu_alloc(ctx, be, bytes);
    if (!v) return TOLK_ERR_NOMEM;
    size_t off = 0;
    for (int p = 0; p < n_parts; p++) {
        if (parts[p]) {
            int64_t r = 0, c = 0;
            tolk_tensor_matrix(parts[p], &r, &c);
            tolk_tensor_to_f32(parts[p], v + off);
            off += (size_t)r * (size_t)c;
        } else {
            memset(v + off, 0, (size_t)zero_len[p] * sizeof(float));
            off += (size_t)zero_len[p];
        }
    }
    *out = v;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* linear                                                                  */
/* ------------------------------------------------------------------------ */

/* Columns [n0, n1) of y's rows := bias (or 0) so that a following beta = 1
 * product adds to them; with accumulate, += bias. */
static void init_cols(float *y, size_t ldy, size_t M, size_t n0, size_t n1, const float *bias,
                      int accumulate) {
    if (accumulate && !bias) return;
    for (size_t m = 0; m < M; m++) {
        float *row = y + m * ldy;
        if (accumulate) {
            for (size_t n = n0; n < n1; n++)
                row[n] += bias[n];
        } else if (bias) {
            memcpy(row + n0, bias + n0, (n1 - n0) * sizeof(float));
        } else {
            memset(row + n0, 0, (n1 - n0) * sizeof(float));
        }
    }
}

/* sum_k x[k] * float(w[k]) over K elements, w float16. */
static float dot_f32_f16(const float *x, const uint16_t *w, size_t K) {
    size_t k = 0;
    float s = 0.0f;
#ifdef TOLK_HAVE_F16C_FMA
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 8)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), w0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), w1, a1);
    }
    s = tolk_cpu_hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; k < K; k++)
        s += x[k] * tolk_f16_to_f32(w[k]);
    return s;
}

/* sum_k x[k] * w[k] over K floats. */
static float dot_f32(const float *x, const float *w, size_t K) {
    size_t k = 0;
    float s = 0.0f;
#ifdef TOLK_HAVE_F16C_FMA
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(w + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), _mm256_loadu_ps(w + k + 8), a1);
    }
    s = tolk_cpu_hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; k < K; k++)
        s += x[k] * w[k];
    return s;
}

/* Weight element k of a float16 (f16 = 1) or float32 row, as float. */
static inline float weight_at(const void *w, int f16, size_t k) {
    return f16 ? tolk_f16_to_f32(((const uint16_t *)w)[k]) : ((const float *)w)[k];
}

/* y[m * ldy] += x[m, :] · w over K elements for the M rows of x (row
 * stride ldx); w one weight row, float16 (f16 = 1) or float32. Every row
 * gets exactly the arithmetic of dot_f32_f16 / dot_f32 (two 8-lane
 * accumulators over 16 elements, lanes summed by hsum8, then the scalar
 * tail), so a row's result depends on that row alone, never on M or on
 * the other rows (TOLK_LINEAR_ROW_EXACT). Rows go in tiles of 4 so each
 * weight vector is loaded and converted once per tile. */
static void dot_rows(float *y, size_t ldy, const float *x, size_t ldx, size_t M, const void *w,
                     int f16, size_t K) {
    size_t m = 0;
#ifdef TOLK_HAVE_F16C_FMA
    const size_t K16 = K / 16 * 16;
    for (; m + 4 <= M; m += 4) {
        const float *x0 = x + m * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
        __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
        __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
        __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
        for (size_t k = 0; k < K16; k += 16) {
            __m256 w0, w1;
            if (f16) {
                const uint16_t *wh = (const uint16_t *)w + k;
                w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wh));
                w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wh + 8)));
            } else {
                w0 = _mm256_loadu_ps((const float *)w + k);
                w1 = _mm256_loadu_ps((const float *)w + k + 8);
            }
            a00 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + k), w0, a00);
            a01 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + k + 8), w1, a01);
            a10 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + k), w0, a10);
            a11 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + k + 8), w1, a11);
            a20 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + k), w0, a20);
            a21 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + k + 8), w1, a21);
            a30 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + k), w0, a30);
            a31 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + k + 8), w1, a31);
        }
        float s[4] = {
            tolk_cpu_hsum8(_mm256_add_ps(a00, a01)), tolk_cpu_hsum8(_mm256_add_ps(a10, a11)),
            tolk_cpu_hsum8(_mm256_add_ps(a20, a21)), tolk_cpu_hsum8(_mm256_add_ps(a30, a31))};
        for (size_t k = K16; k < K; k++) {
            const float wf = weight_at(w, f16, k);
            s[0] += x0[k] * wf;
            s[1] += x1[k] * wf;
            s[2] += x2[k] * wf;
            s[3] += x3[k] * wf;
        }
        for (int r = 0; r < 4; r++)
            y[(m + (size_t)r) * ldy] += s[r];
    }
#endif
    for (; m < M; m++)
        y[m * ldy] += f16 ? dot_f32_f16(x + m * ldx, w, K) : dot_f32(x + m * ldx, w, K);
}

/* The columns [n0, n1) of one linear: y[:, n0:n1] += x W^T
 * (y already holds the bias / previous values). Few rows of x, or
 * row_exact: dot products (dot_rows), f16 converted on the fly, each
 * weight row read once for all rows. More rows: sgemm, f16 weights
 * converted in row chunks into buf (chunk * K floats). Runs in one
 * thread. */
static void linear_cols(float *y, size_t ldy, const float *x, size_t ldx, size_t M,
                        const tolk_bweight *W, size_t n0, size_t n1, float *buf, size_t chunk,
                        int row_exact, int avx512) {
    size_t K = (size_t)W->cols;
    if (n1 <= n0) return;
    int f16 = W->dtype == TOLK_DT_F16;
    if (row_exact || M <= F16_GEMV_MAX_M) { /* memory-bound dot products beat sgemm's packing */
        /* blocks of DOT_COLS weight rows (kept in L2) against tiles of 4 rows
         * of x (kept in L1): each weight is read from memory once per call,
         * each x tile once per block. */
        size_t esz = f16 ? 2 : 4;
        for (size_t c0 = n0; c0 < n1; c0 += DOT_COLS) {
            size_t c1 = c0 + DOT_COLS < n1 ? c0 + DOT_COLS : n1;
            for (size_t m0 = 0; m0 < M; m0 += 4) {
                size_t mt = M - m0 < 4 ? M - m0 : 4;
                if (avx512 &&
                    tolk_dot_rows_avx512(y + m0 * ldy + c0, ldy, x + m0 * ldx, ldx, mt,
                                         (const char *)W->data + c0 * K * esz, K, f16, c1 - c0, K))
                    continue; /* the same results, 4 x 4 tiles of AVX-512 */
                for (size_t n = c0; n < c1; n++)
                    dot_rows(y + m0 * ldy + n, ldy, x + m0 * ldx, ldx, mt,
                             (const char *)W->data + n * K * esz, f16, K);
            }
        }
        return;
    }
    if (!f16) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)(n1 - n0), (int)K, 1.0f,
                    x, (int)ldx, (const float *)W->data + n0 * K, (int)K, 1.0f, y + n0, (int)ldy);
        return;
    }
    const uint16_t *w = (const uint16_t *)W->data;
    for (size_t c0 = n0; c0 < n1; c0 += chunk) {
        size_t nb = n1 - c0 < chunk ? n1 - c0 : chunk;
        tolk_f16_to_f32_n(w + c0 * K, buf, nb * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nb, (int)K, 1.0f, x,
                    (int)ldx, buf, (int)K, 1.0f, y + c0, (int)ldy);
    }
}

static tolk_status cpu_linear_f32(tolk_ctx *ctx, const tolk_backend *be, float *y, size_t ldy,
                                  const float *x, size_t ldx, size_t M, const tolk_bweight *W,
                                  const float *bias, int flags) {
    if (M == 0) return TOLK_OK;
    if (!y || !x || !W || !W->data || W->rows <= 0 || W->cols <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: linear: NULL argument");
    const int avx512 = !((const cpu_impl *)be->impl)->no_avx512;
    const int accumulate = (flags & TOLK_LINEAR_ACCUMULATE) != 0;
    const int row_exact = (flags & TOLK_LINEAR_ROW_EXACT) != 0;
    size_t N = (size_t)W->rows, K = (size_t)W->cols;
    if (ldy < N || ldx < K || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || ldx > INT32_MAX ||
        ldy > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: linear: bad sizes");
    if (W->dtype != TOLK_DT_F32 && W->dtype != TOLK_DT_F16)
        return tolk_fail(ctx, TOLK_ERR_INTERNAL, "backend_cpu: linear: weight dtype %d",
                         (int)W->dtype);
    tolk_cpu_blas_single();
    /* bf16 packed weights: the AVX-512 BF16 GEMM (it splits the work over
     * the threads itself) from BF16_MIN_M rows; one row (a greedy decoder
     * step) stays on the exact dot-product path below. */
    if (W->packed && M >= BF16_MIN_M)
        return tolk_gemm_bf16_ex(ctx, x, (int)M, (int)K, (int)ldx, W->packed, (int)N, bias, y,
                                 (int)ldy, tolk_cpu_threads(ctx),
                                 accumulate ? TOLK_GEMM_ACCUMULATE : 0);
    /* Output columns in pieces of whole 16-column groups handed out
     * dynamically (a thread that the OS preempts delays only its current
     * piece): about 4 per thread for small M; small products run in one
     * thread. */
    int nt = tolk_cpu_threads(ctx);
    double flops = 2.0 * (double)M * (double)N * (double)K;
    if (flops < 2e5) nt = 1;
    /* Large products (the encoder) take one piece per thread: OpenBLAS is
     * ~15% faster on 2 wide pieces than on 8 narrow ones (measured: 178 vs
     * 148 GFLOP/s on [1500, 512] x [512, 2048], 2 threads). */
    size_t per_thread = M >= 512 ? 1 : 4;
    size_t piece =
        nt == 1 ? N
                : ((N + per_thread * (size_t)nt - 1) / (per_thread * (size_t)nt) + 15) / 16 * 16;
    if (piece < 64) piece = 64;
    size_t n_pieces = (N + piece - 1) / piece;
    if ((size_t)nt > n_pieces) nt = (int)n_pieces;
    /* f16 scratch per thread for sgemm: a chunk of converted rows */
    int need_buf = W->dtype == TOLK_DT_F16 && M > F16_GEMV_MAX_M && !row_exact;
    size_t chunk = F16_CHUNK_FLOATS / K;
    if (chunk < 16) chunk = 16;
    if (chunk > piece) chunk = piece;
    int failed = 0;
    OMP(parallel num_threads(nt)) {
        float *buf =
            need_buf ? tolk_thread_scratch(TOLK_SCRATCH_WORK, chunk * K * sizeof(float)) : NULL;
        if (need_buf && !buf) {
            OMP(atomic write)
            failed = 1;
        }
        long long pi;
        OMP(for schedule(dynamic, 1))
        for (pi = 0; pi < (long long)n_pieces; pi++) {
            if (need_buf && !buf) continue;
            size_t n0 = (size_t)pi * piece, n1 = n0 + piece < N ? n0 + piece : N;
            init_cols(y, ldy, M, n0, n1, bias, accumulate);
            linear_cols(y, ldy, x, ldx, M, W, n0, n1, buf, chunk, row_exact, avx512);
        }
    }
    if (failed) return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: linear: out of memory");
    return TOLK_OK;
}

/* backend.h linear: float16 x or y (and the GELU epilogue) through the
 * host twins. */
static tolk_status cpu_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                              const void *x, size_t ldx, size_t M, const tolk_bweight *W,
                              const void *bias, int flags) {
    if (flags & (TOLK_LINEAR_X_F16 | TOLK_LINEAR_Y_F16 | TOLK_LINEAR_GELU))
        return tolk_host_half_linear(ctx, be, y, ldy, x, ldx, M, W, bias, flags);
    return cpu_linear_f32(ctx, be, y, ldy, x, ldx, M, W, bias, flags);
}

static tolk_status cpu_logits(tolk_ctx *ctx, const tolk_backend *be, float *logits, const float *x,
                              size_t M, const tolk_bweight *tok) {
    if (!tok) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: logits: NULL weight");
    /* the decoder's last op: rows are sequences of a batch (row exact) */
    return cpu_linear_f32(ctx, be, logits, (size_t)tok->rows, x, (size_t)tok->cols, M, tok, NULL,
                          TOLK_LINEAR_ROW_EXACT);
}

/* ------------------------------------------------------------------------ */
/* Elementwise and row ops                                                 */
/* ------------------------------------------------------------------------ */

static tolk_status cpu_layernorm(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                                 size_t M, size_t D, const float *gamma, const float *beta,
                                 float eps) {
    (void)be;
    if (M == 0) return TOLK_OK;
    if (!y || !x || !gamma || !beta || D == 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: layernorm: bad arguments");
    long long m;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (M * D > 32768))
    for (m = 0; m < (long long)M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        float s = 0.0f;
        OMP(simd reduction(+ : s))
        for (size_t i = 0; i < D; i++)
            s += xr[i];
        float mean = s / (float)D;
        float v = 0.0f;
        OMP(simd reduction(+ : v))
        for (size_t i = 0; i < D; i++)
            v += (xr[i] - mean) * (xr[i] - mean);
        float rstd = 1.0f / sqrtf(v / (float)D + eps);
        for (size_t i = 0; i < D; i++)
            yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
    return TOLK_OK;
}

/* exp(x) for x <= 0 (softmax, erf): 2^k * p(r), r = x - k ln 2,
 * |r| <= ln2/2, degree-6 Taylor polynomial (relative error < 2e-7);
 * vectorisable. Below -80 it returns 0 rather than a number near the
 * denormal range: products with denormals cost ~100 cycles each. */
static inline float exp_neg(float x) {
    float xc = fmaxf(x, -80.0f);
    float kf = floorf(xc * 1.44269504089f + 0.5f);
    float r = xc - kf * 0.693145751953125f - kf * 1.428606765330187e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k = (int32_t)kf;
    union {
        uint32_t u;
        float f;
    } s;
    s.u = (uint32_t)(k + 127) << 23;
    return p * s.f * (float)(x >= -80.0f);
}

/* erf(x), |error| < 2e-7: Abramowitz & Stegun 7.1.26 form
 * 1 - t(a1 + t(a2 + ...)) e^{-x^2}, t = 1 / (1 + p|x|). */
static inline float erf_approx(float x) {
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly =
        t * (0.254829592f +
             t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float e = 1.0f - poly * exp_neg(-ax * ax);
    return copysignf(e, x);
}

#ifdef TOLK_HAVE_F16C_FMA
/* 8-lane forms of exp_neg and erf_approx (same formulas, same constants);
 * the compiler does not vectorise the scalar ones reliably. */
static inline __m256 exp_neg8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-80.0f);
    __m256 valid = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    __m256 xc = _mm256_max_ps(x, lo);
    __m256 kf =
        _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504089f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693145751953125f), xc);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i k = _mm256_cvtps_epi32(kf);
    __m256 sc =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
    return _mm256_and_ps(_mm256_mul_ps(p, sc), valid);
}

static inline __m256 gelu8(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 x = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, one));
    __m256 poly = _mm256_set1_ps(1.061405429f);
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
    poly = _mm256_mul_ps(poly, t);
    __m256 e = _mm256_fnmadd_ps(poly, exp_neg8(_mm256_mul_ps(_mm256_xor_ps(ax, sign), ax)), one);
    e = _mm256_or_ps(e, _mm256_and_ps(x, sign)); /* erf(x), sign of x */
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(one, e));
}
#endif

/* r[i] = GELU(r[i] + (bias ? bias[i] : 0)) for i < n. */
static void gelu_row(float *r, const float *bias, size_t n) {
    size_t i = 0;
#ifdef TOLK_HAVE_F16C_FMA
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(r + i);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
        _mm256_storeu_ps(r + i, gelu8(v));
    }
#endif
    for (; i < n; i++) {
        float v = r[i] + (bias ? bias[i] : 0.0f);
        r[i] = 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f));
    }
}

static tolk_status cpu_bias_gelu(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                                 size_t M, size_t N, const float *bias) {
    (void)be;
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: bias_gelu: bad arguments");
    long long m;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (M * N > 32768))
    for (m = 0; m < (long long)M; m++) {
        gelu_row(x + (size_t)m * ldx, bias, N);
    }
    return TOLK_OK;
}

static tolk_status cpu_bias_relu(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                                 size_t M, size_t N, const float *bias) {
    (void)be;
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: bias_relu: bad arguments");
    long long m;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (M * N > 65536))
    for (m = 0; m < (long long)M; m++) {
        float *r = x + (size_t)m * ldx;
        OMP(simd)
        for (size_t i = 0; i < N; i++) {
            float v = r[i] + (bias ? bias[i] : 0.0f);
            r[i] = v > 0.0f ? v : 0.0f;
        }
    }
    return TOLK_OK;
}

/* Marian's sigmoid (functional/operators.h), in float with expf. */
static inline float ssru_sigmoid(float f) {
    if (f > 0.0f) return 1.0f / (1.0f + expf(-f));
    float e = expf(f);
    return e / (1.0f + e);
}

static tolk_status cpu_ssru(tolk_ctx *ctx, const tolk_backend *be, float *out, float *c,
                            const float *xf, size_t ldxf, size_t M, size_t D) {
    (void)be;
    if (M == 0 || D == 0) return TOLK_OK;
    if (!out || !c || !xf || ldxf < 2 * D)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: ssru: bad arguments");
    long long m;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (M * D > 65536))
    for (m = 0; m < (long long)M; m++) {
        const float *xw = xf + (size_t)m * ldxf, *f = xw + D;
        float *cr = c + (size_t)m * D, *o = out + (size_t)m * D;
        for (size_t i = 0; i < D; i++) {
            const float s = ssru_sigmoid(f[i]);
            const float v = s * cr[i] + (1.0f - s) * xw[i];
            cr[i] = v;
            o[i] = v > 0.0f ? v : 0.0f;
        }
    }
    return TOLK_OK;
}

/* In place softmax of one row of n floats. */
void tolk_cpu_softmax_row(float *r, size_t n) {
    size_t i = 0;
    float mx = r[0], sum = 0.0f;
#ifdef TOLK_HAVE_F16C_FMA
    if (n >= 8) {
        __m256 m8 = _mm256_loadu_ps(r);
        for (i = 8; i + 8 <= n; i += 8)
            m8 = _mm256_max_ps(m8, _mm256_loadu_ps(r + i));
        float tmp[8];
        _mm256_storeu_ps(tmp, m8);
        for (int k = 0; k < 8; k++)
            mx = tmp[k] > mx ? tmp[k] : mx;
    }
    for (; i < n; i++)
        mx = r[i] > mx ? r[i] : mx;
    __m256 mv = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(r + i), mv));
        _mm256_storeu_ps(r + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float tmp[8];
    _mm256_storeu_ps(tmp, s8);
    for (int k = 0; k < 8; k++)
        sum += tmp[k];
#else
    for (i = 1; i < n; i++)
        mx = r[i] > mx ? r[i] : mx;
    i = 0;
#endif
    for (; i < n; i++) {
        r[i] = exp_neg(r[i] - mx);
        sum += r[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++)
        r[i] *= inv;
}

/* In place row softmax of x [M, N] (row stride ldx): the backend's softmax
 * op (the translation network's attention, mt_net.c). */
static tolk_status cpu_softmax(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                               size_t M, size_t N) {
    (void)be;
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: softmax: bad arguments");
    long long m;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (M * N > 32768))
    for (m = 0; m < (long long)M; m++)
        tolk_cpu_softmax_row(x + (size_t)m * ldx, N);
    return TOLK_OK;
}

static tolk_status cpu_add(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *a,
                           const float *b, size_t n) {
    (void)be;
    if (n == 0) return TOLK_OK;
    if (!y || !a || !b) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: add: NULL");
    long long i;
    OMP(parallel for simd num_threads(tolk_cpu_threads(ctx)) schedule(guided) if (n > 65536))
    for (i = 0; i < (long long)n; i++)
        y[i] = a[i] + b[i];
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* conv1d and embedding                                                    */
/* ------------------------------------------------------------------------ */

static tolk_status cpu_conv1d(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                              tolk_conv_layout layout, size_t C_in, size_t T_in, int stride,
                              const tolk_bweight *W, const float *bias) {
    if (!y || !x || !W || (stride != 1 && stride != 2) || C_in == 0 || T_in == 0 ||
        (layout != TOLK_CONV_IN_CT && layout != TOLK_CONV_IN_TC))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: conv1d: bad arguments");
    size_t K3;
    if (!tolk_mul_size(C_in, 3, &K3) || (size_t)W->cols != K3)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "backend_cpu: conv1d: weight has %lld columns, expected %zu * 3",
                         (long long)W->cols, C_in);
    size_t T_out = (T_in - 1) / (size_t)stride + 1;
    size_t n, bytes;
    if (!tolk_mul_size(T_out, K3, &n) || !tolk_mul_size(n, sizeof(float), &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: conv1d: too large");
    /* im2col: cols[t, c * 3 + k] = x(stride * t + k - 1, c), zero outside. */
    float *cols = tolk_thread_scratch(TOLK_SCRATCH_COLS, bytes);
    if (!cols) return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: conv1d: out of memory");
    long long t;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) schedule(guided))
    for (t = 0; t < (long long)T_out; t++) {
        float *row = cols + (size_t)t * K3;
        for (int k = 0; k < 3; k++) {
            long long ti = (long long)stride * t + k - 1;
            int inside = ti >= 0 && ti < (long long)T_in;
            if (layout == TOLK_CONV_IN_TC) {
                const float *xr = x + (size_t)ti * C_in;
                for (size_t c = 0; c < C_in; c++)
                    row[c * 3 + (size_t)k] = inside ? xr[c] : 0.0f;
            } else {
                for (size_t c = 0; c < C_in; c++)
                    row[c * 3 + (size_t)k] = inside ? x[c * T_in + (size_t)ti] : 0.0f;
            }
        }
    }
    return cpu_linear(ctx, be, y, (size_t)W->rows, cols, K3, T_out, W, bias, 0);
}

/* ------------------------------------------------------------------------ */
/* Decoder-step operations over index arrays (host memory here)            */
/* ------------------------------------------------------------------------ */

/* The ids and positions are host memory on the CPU, so they are checked
 * here as well (TOLK_ERR_INVALID_ARG) although the caller validates them. */
static tolk_status cpu_embed_rows(tolk_ctx *ctx, const tolk_backend *be, float *y,
                                  const tolk_bweight *tok, const int *ids, const int *positions,
                                  size_t n, const float *pos, size_t n_pos) {
    (void)be;
    if (n == 0) return TOLK_OK;
    if (!y || !tok || !tok->data || !ids || !positions || !pos)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: embed_rows: NULL argument");
    size_t D = (size_t)tok->cols;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->rows)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "backend_cpu: embed_rows: token id %d of %lld", ids[i],
                             (long long)tok->rows);
        if (positions[i] < 0 || (size_t)positions[i] >= n_pos)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "backend_cpu: embed_rows: position %d of %zu", positions[i], n_pos);
    }
    for (size_t i = 0; i < n; i++) {
        float *yr = y + i * D;
        size_t id = (size_t)ids[i];
        if (tok->dtype == TOLK_DT_F16)
            tolk_f16_to_f32_n((const uint16_t *)tok->data + id * D, yr, D);
        else
            memcpy(yr, (const float *)tok->data + id * D, D * sizeof(float));
        const float *pr = pos + (size_t)positions[i] * D;
        for (size_t c = 0; c < D; c++)
            yr[c] += pr[c];
    }
    return TOLK_OK;
}

static tolk_status cpu_copy_rows(tolk_ctx *ctx, const tolk_backend *be, float *dst, size_t ld_dst,
                                 const int *dst_idx, const float *src, size_t ld_src,
                                 const int *src_idx, size_t rows, size_t cols) {
    (void)be;
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: bad copy_rows arguments");
    for (size_t r = 0; r < rows; r++) {
        const long di = dst_idx ? dst_idx[r] : (long)r, si = src_idx ? src_idx[r] : (long)r;
        if (di < 0 || si < 0) continue;
        memcpy(dst + (size_t)di * ld_dst, src + (size_t)si * ld_src, cols * sizeof(float));
    }
    return TOLK_OK;
}

static tolk_status cpu_convert_rows(tolk_ctx *ctx, const tolk_backend *be, void *dst, int dst_f16,
                                    size_t ld_dst, const void *src, int src_f16, size_t ld_src,
                                    size_t rows, size_t cols) {
    (void)be;
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: convert_rows: bad arguments");
    long long r;
    OMP(parallel for num_threads(tolk_cpu_threads(ctx)) if (rows * cols > 65536))
    for (r = 0; r < (long long)rows; r++) {
        const size_t i = (size_t)r;
        if (dst_f16 && !src_f16)
            tolk_f32_to_f16_n((const float *)src + i * ld_src, (uint16_t *)dst + i * ld_dst, cols);
        else if (!dst_f16 && src_f16)
            tolk_f16_to_f32_n((const uint16_t *)src + i * ld_src, (float *)dst + i * ld_dst, cols);
        else
            memcpy((char *)dst + i * ld_dst * (dst_f16 ? 2 : 4),
                   (const char *)src + i * ld_src * (src_f16 ? 2 : 4), cols * (dst_f16 ? 2 : 4));
    }
    return TOLK_OK;
}

static tolk_status cpu_select(tolk_ctx *ctx, const tolk_backend *be, float *logits, size_t ld,
                              int rows, int n, const int *range_off, const int *ranges,
                              const int *row_ts, int k, int *out_idx, float *out_lp) {
    (void)be;
    if (tolk_select_rows_ts(logits, ld, rows, n, range_off, ranges, 0, row_ts, k, out_idx, out_lp))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "backend_cpu: select: bad arguments (rows %d, n %d, k %d) or no memory",
                         rows, n, k);
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                */
/* ------------------------------------------------------------------------ */

static void cpu_destroy(tolk_backend *be) {
    if (!be) return;
    free(be->impl);
    free(be);
}

tolk_status tolk_backend_cpu_new(tolk_ctx *ctx, const tolk_backend_params *params,
                                 tolk_backend **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend_cpu: NULL output");
    *out = NULL;
    tolk_backend *be = calloc(1, sizeof *be);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend_cpu: out of memory");
    }
    im->keep_f16 = params ? params->keep_f16 != 0 : 1;
    im->no_avx512 = params ? params->no_avx512 != 0 : 0;
    im->bf16 = params ? params->bf16 != 0 : 0;
    be->name = "cpu";
    be->impl = im;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_upload;
    be->weight_prepare = cpu_weight_prepare;
    be->weight_free = cpu_weight_free;
    be->vector_prepare = cpu_vector_prepare;
    be->linear = cpu_linear;
    be->layernorm = cpu_layernorm;
    be->layernorm_h = tolk_host_half_layernorm;
    be->bias_gelu = cpu_bias_gelu;
    be->bias_gelu_h = tolk_host_half_bias_gelu;
    be->bias_relu = cpu_bias_relu;
    be->ssru = cpu_ssru;
    be->softmax = cpu_softmax;
    be->add = cpu_add;
    be->attention = tolk_cpu_attention;
    be->conv1d = cpu_conv1d;
    be->logits = cpu_logits;
    be->embed_rows = cpu_embed_rows;
    be->copy_rows = cpu_copy_rows;
    be->attention_desc = tolk_cpu_attention_desc;
    be->convert_rows = cpu_convert_rows;
    be->select = cpu_select;
    be->attn_weights = tolk_cpu_attn_weights;
    /* no graphs: graph_* stay NULL and the network runs its ops directly */
    *out = be;
    return TOLK_OK;
}

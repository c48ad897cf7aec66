/*
 * backend_cpu_internal.h — what the CPU backend's files (backend_cpu.c,
 * backend_cpu_attention.c) share: the OpenMP pragma macro, the thread
 * count, OpenBLAS kept single-threaded, lane sums, the row softmax, and
 * the attention ops one file registers for the other.
 */
#ifndef TOLK_BACKEND_CPU_INTERNAL_H
#define TOLK_BACKEND_CPU_INTERNAL_H

#include "backend.h"
#include "internal.h"

#include <stddef.h>

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TOLK_HAVE_F16C_FMA 1
#endif

#ifdef _OPENMP
#include <omp.h>
#define TOLK_PRAGMA(x) _Pragma(#x)
#else
#define TOLK_PRAGMA(x)
#endif
#define OMP(x) TOLK_PRAGMA(omp x)

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* The context's thread count, at least 1. */
static inline int tolk_cpu_threads(const tolk_ctx *ctx) {
    int n = tolk_ctx_threads(ctx);
    return n < 1 ? 1 : n;
}

/* OpenBLAS runs in the calling thread: the parallelism is ours (see
 * backend_cpu.c). openblas_set_num_threads is process-wide; 1 is the only
 * value the backend ever sets, so concurrent callers agree. */
static inline void tolk_cpu_blas_single(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

#ifdef TOLK_HAVE_F16C_FMA
/* The sum of a's 8 lanes. */
static inline float tolk_cpu_hsum8(__m256 a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
#endif

/* In place softmax of r [n], max-subtracted (backend_cpu.c). */
void tolk_cpu_softmax_row(float *r, size_t n);

/* backend.h attention / attention_desc / attn_weights of the CPU backend
 * (backend_cpu_attention.c). */
tolk_status tolk_cpu_attention(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                               int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                               size_t ldo, float scale, int flags);
tolk_status tolk_cpu_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                    size_t ldq, const void *k, const void *v, size_t ldkv,
                                    void *out, size_t ldo, const tolk_attn_desc *desc, int n_seqs,
                                    int max_n_q, int max_n_kv, int n_head, int d_head, float scale,
                                    int flags);
tolk_status tolk_cpu_attn_weights(tolk_ctx *ctx, const tolk_backend *be, const float *q, size_t ldq,
                                  const float *k, size_t ldk, int n_q, int n_keys, const int *heads,
                                  int n_heads, int d_head, float scale, float *out);

#endif /* TOLK_BACKEND_CPU_INTERNAL_H */

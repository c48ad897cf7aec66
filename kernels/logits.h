/*
 * logits.h — logits post-processing on the GPU (kernels/logits.cu), so that
 * a decoder step returns token ids and a few floats to the host instead of
 * [B, n_vocab] logits: suppression masks (openai-whisper's SuppressTokens,
 * SuppressBlank and the timestamp rules' masks), softmax / log-softmax,
 * per-row max / argmax / logsumexp over a column range (greedy decoding and
 * the timestamp-vs-text probability test), top-k (beam search) and
 * categorical sampling at a temperature.
 *
 * All logits are float32 [rows, n] with row stride ld (>= n). NaN inputs
 * are ignored by the max/argmax/top-k searches; elsewhere they propagate.
 */
#ifndef TOLK_KERNELS_LOGITS_H
#define TOLK_KERNELS_LOGITS_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Largest k of tolk_cu_topk. */
#define TOLK_CU_TOPK_MAX 16

/* y = softmax(x * inv_temp) over each row (log_out = 0) or its logarithm,
 * log_softmax (log_out = 1): max-subtracted, float32 sums. A row that is
 * entirely -inf gives 0 (softmax) or -inf (log-softmax) instead of NaN.
 * y may equal x (same ld). Requires n >= 1, rows >= 0, ld* >= n,
 * inv_temp > 0. */
int tolk_cu_softmax(float *y, long long ldy, const float *x, long long ldx, long long rows, int n,
                    float inv_temp, int log_out, void *stream);

/* Set x[r, j] = value for every j in the half-open ranges of row r
 * (clipped to [0, n)). ranges: DEVICE int32 pairs lo0, hi0, lo1, hi1, ...
 * With row_off (DEVICE int32 [rows + 1], CSR style) row r uses pairs
 * row_off[r] .. row_off[r+1]-1; with row_off NULL every row uses pairs
 * 0 .. n_pairs-1. A single token t is the range [t, t + 1). */
int tolk_cu_mask_ranges(float *x, long long ldx, long long rows, int n, const int *row_off,
                        const int *ranges, int n_pairs, float value, void *stream);

/* Per row r, over the columns [lo, hi) (0 <= lo < hi <= ld):
 *   max_out[r]    = max_j x[r, j]
 *   argmax_out[r] = the smallest j reaching it (-1 if every value is NaN)
 *   lse_out[r]    = log sum_j exp(x[r, j])  (-inf when every value is -inf)
 * Any output may be NULL (DEVICE arrays of rows elements). The log-softmax
 * of the argmax is max - lse over the full row. */
int tolk_cu_row_stats(const float *x, long long ldx, long long rows, int lo, int hi,
                      float *max_out, int *argmax_out, float *lse_out, void *stream);

/* The k largest values of each row, sorted descending, ties by smaller
 * column first: idx_out [rows, k] (DEVICE int32, required), val_out
 * [rows, k] (DEVICE float32 or NULL). Requires 1 <= k <= TOLK_CU_TOPK_MAX,
 * k <= n. Entries beyond the number of non-NaN values get index -1. */
int tolk_cu_topk(const float *x, long long ldx, long long rows, int n, int k, int *idx_out,
                 float *val_out, void *stream);

/* Categorical sampling from softmax(x[r] * inv_temp) by inversion: out[r]
 * is the smallest j whose cumulative probability exceeds u[r] (u: DEVICE
 * float32 [rows] uniforms in [0, 1), drawn by the caller's seeded RNG so
 * that results are reproducible). Never picks a zero-probability (-inf)
 * column; out[r] = -1 when the whole row is -inf. inv_temp > 0. */
int tolk_cu_sample(const float *x, long long ldx, long long rows, int n, float inv_temp,
                   const float *u, int *out, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_LOGITS_H */

/*
 * select.h — the token selection at the end of a decoder step, on the host:
 * the CPU backend's `select` op and the reference the CUDA kernel
 * (kernels/select.cu) is tested against. With it a step can return token
 * ids and log-probabilities instead of [rows, n_vocab] logits.
 *
 * Per row, in this order (openai-whisper decoding.py: the logit filters,
 * then GreedyDecoder's argmax or BeamSearchDecoder's top-k of log_softmax):
 *   1. mask ranges: logits[lo, hi) = -inf for each of the row's pairs (the
 *      suppression and timestamp-rule masks, computed from the token
 *      history by tolk_dec_filter_ranges, decode.h);
 *   2. timestamp_begin > 0: ApplyTimestampRules' probability-mass test
 *      (tolk_dec_timestamp_rule);
 *   3. k == 1: the argmax of the masked logits (first on ties) and its
 *      log-softmax value; k >= 2: the k largest log-softmax values,
 *      descending, first index on ties.
 * Log-softmax values are those of tolk_dec_log_softmax (double sums, then
 * rounded to float), so the results equal the search's own host path.
 */
#ifndef TOLK_SELECT_H
#define TOLK_SELECT_H

#include <stddef.h>

/* Largest k of a selection (beam size + 1 <= 32). */
#define TOLK_SELECT_MAX_K 32

/* Select on logits [rows, n] (row stride ld >= n), modified in place by the
 * masks. range_off [rows + 1] (CSR offsets into the pairs of ranges) and
 * ranges [2 * pairs] may both be NULL (no masks). ts_begin: 0 = no
 * timestamp rule, else the first timestamp token (0 < ts_begin < n).
 * 1 <= k <= min(n, TOLK_SELECT_MAX_K). out_idx / out_lp [rows * k].
 * Returns 0, or -1 for bad arguments or no memory (nothing written then). */
int tolk_select_rows(float *logits, size_t ld, int rows, int n, const int *range_off,
                     const int *ranges, int ts_begin, int k, int *out_idx, float *out_lp);

/* The same with a timestamp rule per row: row r uses row_ts[r] (0: off)
 * instead of ts_begin when row_ts is not NULL. */
int tolk_select_rows_ts(float *logits, size_t ld, int rows, int n, const int *range_off,
                        const int *ranges, int ts_begin, const int *row_ts, int k, int *out_idx,
                        float *out_lp);

/* Indices of the k largest entries of x [n], descending, first index on
 * ties (k <= n), into idx [k]. */
void tolk_topk_desc(const float *x, int n, int k, int *idx);

#endif /* TOLK_SELECT_H */

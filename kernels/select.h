/*
 * select.h — the whole logits post-processing of one decode step on the GPU
 * (kernels/select.cu), so that the step returns only token ids and their
 * log-probabilities to the host and can be captured in a CUDA graph:
 * suppression masks, the timestamp probability-mass rule of openai-whisper's
 * ApplyTimestampRules, the log-softmax normaliser, then the argmax (greedy,
 * k = 1) or the top-k of the log-probabilities (beam search, k >= 2).
 *
 * It reproduces the host code: tolk_dec_apply_filters' last part (the
 * timestamp rule, src/decode_filters.c), tolk_dec_log_softmax, and the
 * argmax of src/decode_greedy.c / the topk of src/decode_beam.c. The double
 * sums are summed in another order than the host's sequential loops (a block
 * tree), so a log-probability may differ from the host's in its last bit;
 * everything else (masks, indices, tie rules) is exact.
 */
#ifndef TOLK_KERNELS_SELECT_H
#define TOLK_KERNELS_SELECT_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Largest k of tolk_cu_select. */
#define TOLK_CU_SELECT_MAX_K 32

/* Per row r < rows of logits [rows, n] (float32, row stride ld >= n; DEVICE), in this order:
 * 1. masks: for each pair p in [range_off[r], range_off[r+1]) set logits[r, j] = -inf for j in
 *    [ranges[2p], ranges[2p+1]) clipped to [0, n)  (range_off: DEVICE int32 [rows + 1]; ranges: DEVICE
 *    int32 pairs). The masked logits are written back (the row is modified in place).
 * 2. timestamp rule, when 0 < ts_begin < n: max_text = max over [0, ts_begin) (float), max_ts = max over
 *    [ts_begin, n); if max_ts != -inf: ts_lse = (double)max_ts + log(sum_{j >= ts_begin} exp((double)x_j -
 *    (double)max_ts)) computed in DOUBLE; if ts_lse > (double)max_text then set [0, ts_begin) = -inf
 *    (written back too).
 * 3. log-softmax normaliser over the whole (masked) row: mx = max_j x_j; if mx == -inf: every lp = -inf;
 *    else lse = (double)mx + log(sum_j exp((double)x_j - (double)mx)) in DOUBLE.
 * 4. k == 1: out_idx[r] = the smallest j with x_j == mx (argmax of the masked logits; 0 when the whole row
 *    is -inf), out_lp[r] = (float)((double)x_idx - lse) (-inf if the row is all -inf).
 *    2 <= k <= TOLK_CU_SELECT_MAX_K (and k <= n): with lp_j = (float)((double)x_j - lse) (rounded to float
 *    FIRST, then compared), out_idx[r*k + c], out_lp[r*k + c] for c < k are the k largest lp_j in
 *    descending order, ties broken by smaller j (for an all -inf row: indices 0..k-1, lp -inf).
 * out_idx, out_lp: DEVICE [rows * k]. NaN inputs are not expected (no special handling required).
 * Returns TOLK_CU_EINVAL for rows < 0, n < 1, ld < n, k out of range, NULL pointers (range_off/ranges may
 * be NULL only together, meaning no masks); the pointer checks apply even when rows == 0. rows == 0
 * launches nothing. Launch configuration depends only on (rows, n, k), so the call can be captured in a
 * CUDA graph and replayed with new contents of range_off/ranges/logits. */
int tolk_cu_select(float *logits, long long ld, int rows, int n, const int *range_off, const int *ranges,
                   int ts_begin, int k, int *out_idx, float *out_lp, void *stream);

/* The same with a timestamp rule per row: row r uses row_ts[r] (DEVICE int32 [rows]; 0: off) instead of
 * ts_begin when row_ts is not NULL (each row's value must satisfy ts_begin's bounds). */
int tolk_cu_select_rows(float *logits, long long ld, int rows, int n, const int *range_off,
                        const int *ranges, int ts_begin, const int *row_ts, int k, int *out_idx,
                        float *out_lp, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_SELECT_H */

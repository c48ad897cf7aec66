/*
 * select.c — host token selection (select.h): mask ranges, the timestamp
 * probability-mass rule, argmax / top-k of the log-softmax. Reproduces the
 * selection of openai-whisper's GreedyDecoder (argmax) and
 * BeamSearchDecoder (logprobs.topk(beam_size + 1)) after its logit filters.
 */
#include "select.h"

#include "decode.h"
#include "scratch.h"

#include <math.h>

void tolk_topk_desc(const float *x, int n, int k, int *idx) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && !(x[i] > x[idx[m - 1]])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && x[i] > x[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
}

int tolk_select_rows(float *logits, size_t ld, int rows, int n, const int *range_off,
                     const int *ranges, int ts_begin, int k, int *out_idx, float *out_lp) {
    return tolk_select_rows_ts(logits, ld, rows, n, range_off, ranges, ts_begin, NULL, k, out_idx,
                               out_lp);
}

int tolk_select_rows_ts(float *logits, size_t ld, int rows, int n, const int *range_off,
                        const int *ranges, int ts_begin, const int *row_ts, int k, int *out_idx,
                        float *out_lp) {
    if (!logits || rows < 0 || n < 1 || ld < (size_t)n || k < 1 || k > TOLK_SELECT_MAX_K || k > n ||
        !out_idx || !out_lp || (!range_off) != (!ranges) || ts_begin < 0 || ts_begin >= n)
        return -1;
    if (row_ts)
        for (int r = 0; r < rows; r++)
            if (row_ts[r] < 0 || row_ts[r] >= n) return -1;
    float *lp = NULL;
    if (k > 1 && rows > 0) {
        lp = tolk_thread_scratch(TOLK_SCRATCH_COLS, (size_t)n * sizeof(float));
        if (!lp) return -1;
    }
    for (int r = 0; r < rows; r++) {
        float *x = logits + (size_t)r * ld;
        if (range_off)
            for (int p = range_off[r]; p < range_off[r + 1]; p++) {
                int lo = ranges[2 * p] < 0 ? 0 : ranges[2 * p];
                int hi = ranges[2 * p + 1] > n ? n : ranges[2 * p + 1];
                for (int j = lo; j < hi; j++)
                    x[j] = -INFINITY;
            }
        const int tb = row_ts ? row_ts[r] : ts_begin;
        if (tb > 0) tolk_dec_timestamp_rule(x, n, tb);
        int *oi = out_idx + (size_t)r * k;
        float *ol = out_lp + (size_t)r * k;
        if (k == 1) {
            int best = 0;
            for (int j = 1; j < n; j++)
                if (x[j] > x[best]) best = j;
            float mx = x[best];
            if (mx == -INFINITY) {
                oi[0] = 0;
                ol[0] = -INFINITY;
                continue;
            }
            double sum = 0.0;
            for (int j = 0; j < n; j++)
                sum += exp((double)x[j] - (double)mx);
            double lse = (double)mx + log(sum);
            oi[0] = best;
            ol[0] = (float)((double)x[best] - lse);
        } else {
            tolk_dec_log_softmax(x, n, lp);
            tolk_topk_desc(lp, n, k, oi);
            for (int c = 0; c < k; c++)
                ol[c] = lp[oi[c]];
        }
    }
    return 0;
}

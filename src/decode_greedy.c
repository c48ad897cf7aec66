/*
 * decode_greedy.c — one decode of one window (openai-whisper
 * DecodingTask.run / _main_loop) and its independent-sequence search
 * (GreedyDecoder): argmax at temperature 0, or best_of independent samples
 * from softmax(logits / T) at T > 0, ranked by MaximumLikelihoodRanker.
 *
 * The initial tokens are fed in two pieces — up to and including SOT, then
 * the rest — so that the logits at the SOT position give the no-speech
 * probability (the reference reads logits[:, sot_index] of its first
 * forward pass) while the network only ever returns the last position.
 */
#include "decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tolk_dec_result_clear(tolk_dec_result *r) {
    if (!r) return;
    free(r->tokens);
    free(r->logprobs);
    free(r->text);
    memset(r, 0, sizeof *r);
}

int tolk_dec_rank(const double *sum_logprobs, const int *lengths, int n, float length_penalty) {
    int best = 0;
    double best_score = -INFINITY;
    for (int i = 0; i < n; i++) {
        double penalty;
        if (length_penalty < 0.0f)
            penalty = (double)lengths[i];
        else
            penalty = pow((5.0 + (double)lengths[i]) / 6.0, (double)length_penalty);
        double score = sum_logprobs[i] / penalty; /* length 0: +-inf or NaN as the reference */
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

tolk_status tolk_dec_step_select(const tolk_dec_backend *be, const tolk_dec_filter *f,
                                 const int *seqs, int n_seqs, const int *const *tokens,
                                 const int *n_tokens, const int *const *hist, const int *hist_len,
                                 int k, int *off, int *ranges, int *out_idx, float *out_lp) {
    const int cap = tolk_dec_filter_max_ranges(f);
    off[0] = 0;
    for (int i = 0; i < n_seqs; i++) {
        int n = tolk_dec_filter_ranges(f, hist[i], hist_len[i], ranges + 2 * off[i], cap);
        off[i + 1] = off[i] + (n < cap ? n : cap); /* n <= cap by construction */
    }
    tolk_dec_select sel = {
        .range_off = off, .ranges = ranges, .ts_begin = tolk_dec_filter_ts_begin(f), .k = k};
    return be->step_select(be->user, seqs, n_seqs, tokens, n_tokens, &sel, out_idx, out_lp);
}

tolk_status tolk_dec_greedy(tolk_ctx *ctx, const tolk_dec_backend *be, const tolk_dec_filter *f,
                            const tolk_dec_options *opt, int n_initial, const float *first_logits,
                            tolk_dec_result *res) {
    const int nv = be->n_vocab;
    const int eot = f->tok->eot;
    const int sampling = opt->temperature > 0.0f;
    const int G = sampling ? (opt->best_of > 1 ? opt->best_of : 1) : 1;
    const int max_new = opt->sample_len;
    if (sampling && !opt->rng)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: sampling needs a random state");
    if (G > be->max_seqs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: best_of %d exceeds %d sequences", G,
                         be->max_seqs);

    tolk_status st = TOLK_OK;
    size_t vb;
    int *toks = tolk_calloc_array((size_t)G * (size_t)(max_new + 1), sizeof(int));
    float *lps = tolk_calloc_array((size_t)G * (size_t)(max_new + 1), sizeof(float));
    int *len = tolk_calloc_array((size_t)G, sizeof(int));
    int *done = tolk_calloc_array((size_t)G, sizeof(int));
    double *sum = tolk_calloc_array((size_t)G, sizeof(double));
    int *seqs = tolk_calloc_array((size_t)G, sizeof(int));
    int *ntok = tolk_calloc_array((size_t)G, sizeof(int));
    const int **tp = tolk_calloc_array((size_t)G, sizeof(int *));
    int *active = tolk_calloc_array((size_t)G, sizeof(int));
    float *logits = NULL, *work = NULL;
    if (tolk_mul_size((size_t)G, (size_t)nv, &vb)) logits = tolk_malloc_array(vb, sizeof(float));
    work = tolk_malloc_array((size_t)nv, sizeof(float));
    /* temperature 0: the selection may run where the logits are */
    const int use_sel = !sampling && G == 1 && be->step_select;
    int *sel_off = NULL, *sel_ranges = NULL, *sel_idx = NULL;
    float *sel_lp = NULL;
    const int **hist = NULL;
    if (use_sel) {
        sel_off = tolk_calloc_array((size_t)G + 1, sizeof(int));
        sel_ranges =
            tolk_calloc_array((size_t)G * 2, (size_t)tolk_dec_filter_max_ranges(f) * sizeof(int));
        sel_idx = tolk_calloc_array((size_t)G, sizeof(int));
        sel_lp = tolk_calloc_array((size_t)G, sizeof(float));
        hist = tolk_calloc_array((size_t)G, sizeof(int *));
    }
    if (!toks || !lps || !len || !done || !sum || !seqs || !ntok || !tp || !active || !logits ||
        !work || (use_sel && (!sel_off || !sel_ranges || !sel_idx || !sel_lp || !hist))) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory for %d sequences", G);
        goto out;
    }
    for (int g = 0; g < G; g++)
        memcpy(logits + (size_t)g * nv, first_logits, nv * sizeof(float));
    for (int g = 1; g < G; g++) {
        be->reset(be->user, g);
        be->copy(be->user, g, 0);
    }
    int n_active = G;
    for (int g = 0; g < G; g++)
        active[g] = g;

    if (max_new > 0) {
        for (int i = 0; i < max_new; i++) {
            /* choose the next token of every unfinished sequence */
            for (int a = 0; a < n_active; a++) {
                int g = active[a];
                int *gt = toks + (size_t)g * (max_new + 1);
                int next;
                float lp;
                if (use_sel && i > 0) { /* chosen by the step */
                    next = sel_idx[a];
                    lp = sel_lp[a];
                } else {
                    memcpy(work, logits + (size_t)a * nv, nv * sizeof(float));
                    tolk_dec_apply_filters(f, work, gt, len[g]);
                    next = sampling ? tolk_dec_sample(work, nv, opt->temperature, opt->rng)
                                    : argmax(work, nv);
                    tolk_dec_log_softmax(work, nv, work);
                    lp = work[next];
                }
                sum[g] += (double)lp;
                gt[len[g]] = next;
                lps[(size_t)g * (max_new + 1) + len[g]] = lp;
                len[g]++;
                if (next == eot) done[g] = 1;
            }
            int k = 0;
            for (int a = 0; a < n_active; a++)
                if (!done[active[a]]) active[k++] = active[a];
            n_active = k;
            if (n_active == 0) break;
            if (n_initial + i + 1 > opt->n_ctx) break;
            if (i + 1 >= max_new) break;
            for (int a = 0; a < n_active; a++) {
                int g = active[a];
                seqs[a] = g;
                tp[a] = toks + (size_t)g * (max_new + 1) + len[g] - 1;
                ntok[a] = 1;
            }
            if (use_sel) {
                for (int a = 0; a < n_active; a++)
                    hist[a] = toks + (size_t)active[a] * (max_new + 1);
                /* G == 1: one history, the sampled tokens (the fed one included) */
                const int hist_len = len[active[0]];
                st = tolk_dec_step_select(be, f, seqs, n_active, tp, ntok, hist, &hist_len, 1,
                                          sel_off, sel_ranges, sel_idx, sel_lp);
            } else {
                st = be->step(be->user, seqs, n_active, tp, ntok, logits);
            }
            if (st != TOLK_OK) goto out;
        }
    }

    /* finalize: strip the EOT, rank the candidates */
    int *lengths = ntok; /* reuse: G ints */
    for (int g = 0; g < G; g++)
        lengths[g] = done[g] ? len[g] - 1 : len[g];
    int best = G > 1 ? tolk_dec_rank(sum, lengths, G, opt->length_penalty) : 0;
    int n = lengths[best];
    res->tokens = tolk_malloc_array((size_t)n + 1, sizeof(int));
    res->logprobs = tolk_malloc_array((size_t)n + 1, sizeof(float));
    if (!res->tokens || !res->logprobs) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
        goto out;
    }
    memcpy(res->tokens, toks + (size_t)best * (max_new + 1), (size_t)n * sizeof(int));
    memcpy(res->logprobs, lps + (size_t)best * (max_new + 1), (size_t)n * sizeof(float));
    res->n_tokens = n;
    res->sum_logprob = sum[best];
    res->avg_logprob = (float)(sum[best] / (double)(n + 1));
out:
    free(toks);
    free(lps);
    free(len);
    free(done);
    free(sum);
    free(seqs);
    free(ntok);
    free(tp);
    free(active);
    free(logits);
    free(work);
    free(sel_off);
    free(sel_ranges);
    free(sel_idx);
    free(sel_lp);
    free(hist);
    return st;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

tolk_status tolk_dec_decode(tolk_ctx *ctx, const tolk_dec_backend *be, const tolk_dec_tokens *tok,
                            const int *initial, int n_initial, int sot_index,
                            const tolk_dec_options *opt, tolk_dec_text_fn text_fn, void *text_user,
                            tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (!be || !tok || !initial || !opt || !be->step || !be->reset || !be->copy)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    if (be->n_vocab != tok->n_vocab || tok->n_vocab <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: vocabulary size mismatch");
    if (n_initial < 1 || n_initial >= opt->n_ctx || sot_index < 0 || sot_index >= n_initial ||
        initial[sot_index] != tok->sot)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "decode: bad initial tokens (%d tokens, SOT at %d, context %d)", n_initial,
                         sot_index, opt->n_ctx);
    for (int i = 0; i < n_initial; i++)
        if (initial[i] < 0 || initial[i] >= tok->n_vocab)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: initial token %d out of range",
                             initial[i]);
    if (opt->sample_len < 0 || opt->n_ctx <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: bad sample length");
    if (!(opt->temperature >= 0.0f) || !isfinite(opt->temperature))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: bad temperature");
    if (be->max_seqs < 1) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: no sequences");

    const int nv = tok->n_vocab;
    float *l1 = tolk_malloc_array((size_t)nv, sizeof(float));
    float *l2 = tolk_malloc_array((size_t)nv, sizeof(float));
    if (!l1 || !l2) {
        free(l1);
        free(l2);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    }
    tolk_status st;
    be->reset(be->user, 0);
    int seq0 = 0;
    const int *p1 = initial;
    int n1 = sot_index + 1;
    st = be->step(be->user, &seq0, 1, &p1, &n1, l1);
    if (st != TOLK_OK) goto out;
    res->no_speech_prob = NAN;
    if (tok->no_speech >= 0 && tok->no_speech < nv) {
        tolk_dec_log_softmax(l1, nv, l2);
        res->no_speech_prob = expf(l2[tok->no_speech]);
    }
    const float *first = l1;
    if (n_initial > n1) {
        const int *p2 = initial + n1;
        int n2 = n_initial - n1;
        st = be->step(be->user, &seq0, 1, &p2, &n2, l2);
        if (st != TOLK_OK) goto out;
        first = l2;
    }

    tolk_dec_filter f = {.tok = tok,
                         .sample_begin = n_initial,
                         .suppress_blank = opt->suppress_blank,
                         .suppress = opt->suppress,
                         .n_suppress = opt->n_suppress,
                         .timestamps = opt->timestamps,
                         .max_initial_timestamp_index = opt->max_initial_timestamp_index};
    float nsp = res->no_speech_prob;
    if (opt->temperature == 0.0f && opt->beam_size >= 2)
        st = tolk_dec_beam(ctx, be, &f, opt, n_initial, first, res);
    else
        st = tolk_dec_greedy(ctx, be, &f, opt, n_initial, first, res);
    res->no_speech_prob = nsp;
    res->temperature = opt->temperature;
    if (st != TOLK_OK) goto out;

    if (text_fn) {
        char *text = text_fn(text_user, res->tokens, res->n_tokens);
        if (!text) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory for the text");
            goto out;
        }
        size_t a = 0, b = strlen(text);
        while (a < b && is_space((unsigned char)text[a]))
            a++;
        while (b > a && is_space((unsigned char)text[b - 1]))
            b--;
        memmove(text, text + a, b - a);
        text[b - a] = '\0';
        res->text = text;
        res->compression_ratio = tolk_compression_ratio(text, b - a);
        if (res->compression_ratio < 0.0f) {
            st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "decode: zlib compression failed");
            goto out;
        }
    }
out:
    free(l1);
    free(l2);
    if (st != TOLK_OK) tolk_dec_result_clear(res);
    return st;
}

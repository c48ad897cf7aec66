/*
 * decode_beam.c — beam search at temperature 0, reproducing openai-whisper's
 * BeamSearchDecoder and MaximumLikelihoodRanker:
 *   - every step, each live beam proposes its beam_size + 1 most probable
 *     next tokens (score = the beam's sum of log-probabilities + the token's
 *     log-probability after the logit filters); candidates are ranked by
 *     score (ties keep proposal order); candidates ending in EOT are set
 *     aside as "finished this step", the others fill the beam_size new
 *     beams, and the scan stops once the beams are full;
 *   - finished candidates join the finished list in score order until it
 *     holds round(beam_size * patience) sequences; decoding stops when it
 *     is full (or at the sample length / context limit);
 *   - at the end, when fewer than beam_size sequences finished, live beams
 *     are added by descending score; the winner maximises
 *     sum_logprob / length (or / ((5 + length) / 6) ^ length_penalty).
 * At the first step all beams are the same sequence, so only one proposes
 * (the reference's dictionary of candidates merges the duplicates).
 *
 * KV reordering: beam k lives in cache slot slot[k]. A new beam takes over
 * the slot of its source when it is the first to claim it, otherwise it is
 * copied (tolk_dec_backend.copy) into a slot no new beam claimed; so at most
 * beam_size slots are used and only duplicated beams are copied.
 */
#include "decode.h"
#include "select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    double score;
    int src; /* beam index */
    int token;
    float lp;
    int order; /* proposal order, for stable ranking */
} cand;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return (x->order > y->order) - (x->order < y->order);
}

tolk_status tolk_dec_beam(tolk_ctx *ctx, const tolk_dec_backend *be, const tolk_dec_filter *f,
                          const tolk_dec_options *opt, int n_initial, const float *first_logits,
                          tolk_dec_result *res) {
    const int B = opt->beam_size;
    const int nv = be->n_vocab;
    const int eot = f->tok->eot;
    const int max_new = opt->sample_len;
    const int W = max_new + 1; /* row width of token arrays */
    double pat = opt->patience > 0.0f ? (double)opt->patience : 1.0;
    int max_cand = (int)nearbyint((double)B * pat);
    if (B < 1 || B > be->max_seqs || B > 4096)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: beam size %d exceeds %d sequences", B,
                         be->max_seqs);
    if (max_cand <= 0 || max_cand > 1 << 16)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: invalid beam size %d or patience %g",
                         B, (double)opt->patience);

    tolk_status st = TOLK_OK;
    const int K = B + 1;
    const int FC = max_cand + B; /* finished capacity */
    size_t vb;
    float *logits = tolk_mul_size((size_t)B, (size_t)nv, &vb) ? tolk_malloc_array(vb, 4) : NULL;
    float *work = tolk_malloc_array((size_t)nv, sizeof(float));
    int *toks = tolk_calloc_array((size_t)B * W, sizeof(int));
    float *lps = tolk_calloc_array((size_t)B * W, sizeof(float));
    int *ntoks = tolk_calloc_array((size_t)B * W, sizeof(int));
    float *nlps = tolk_calloc_array((size_t)B * W, sizeof(float));
    double *sum = tolk_calloc_array((size_t)B, sizeof(double));
    double *nsum = tolk_calloc_array((size_t)B, sizeof(double));
    int *slot = tolk_calloc_array((size_t)B, sizeof(int));
    int *nslot = tolk_calloc_array((size_t)B, sizeof(int));
    int *src = tolk_calloc_array((size_t)B, sizeof(int));
    int *claimed = tolk_calloc_array((size_t)B, sizeof(int));
    cand *cands = tolk_calloc_array((size_t)B * K, sizeof(cand));
    cand *fin_step = tolk_calloc_array((size_t)B * K, sizeof(cand));
    int *idx = tolk_calloc_array((size_t)K, sizeof(int));
    int *ftoks = tolk_calloc_array((size_t)FC * W, sizeof(int));
    float *flps = tolk_calloc_array((size_t)FC * W, sizeof(float));
    int *flen = tolk_calloc_array((size_t)FC, sizeof(int));
    double *fsum = tolk_calloc_array((size_t)FC, sizeof(double));
    int *seqs = tolk_calloc_array((size_t)B, sizeof(int));
    int *one = tolk_calloc_array((size_t)B, sizeof(int));
    const int **tp = tolk_calloc_array((size_t)B, sizeof(int *));
    /* the selection may run where the logits are (K <= TOLK_SELECT_MAX_K) */
    const int use_sel = be->step_select && K <= TOLK_SELECT_MAX_K;
    int *sel_off = NULL, *sel_ranges = NULL, *sel_idx = NULL, *hist_len = NULL;
    float *sel_lp = NULL;
    const int **hist = NULL;
    if (use_sel) {
        sel_off = tolk_calloc_array((size_t)B + 1, sizeof(int));
        sel_ranges =
            tolk_calloc_array((size_t)B * 2, (size_t)tolk_dec_filter_max_ranges(f) * sizeof(int));
        sel_idx = tolk_calloc_array((size_t)B * K, sizeof(int));
        sel_lp = tolk_calloc_array((size_t)B * K, sizeof(float));
        hist_len = tolk_calloc_array((size_t)B, sizeof(int));
        hist = tolk_calloc_array((size_t)B, sizeof(int *));
        if (!sel_off || !sel_ranges || !sel_idx || !sel_lp || !hist_len || !hist) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory for beam search");
            goto out;
        }
    }
    if (!logits || !work || !toks || !lps || !ntoks || !nlps || !sum || !nsum || !slot || !nslot ||
        !src || !claimed || !cands || !fin_step || !idx || !ftoks || !flps || !flen || !fsum ||
        !seqs || !one || !tp) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory for beam search");
        goto out;
    }
    int n_fin = 0;
    int len = 0; /* sampled tokens per live beam */
    for (int k = 0; k < B; k++)
        slot[k] = 0; /* all beams start as the initial sequence */
    memcpy(logits, first_logits, (size_t)nv * sizeof(float));

    for (int i = 0; i < max_new; i++) {
        /* STEP 1: candidates from every (distinct) beam */
        int nc = 0;
        int n_prop = i == 0 ? 1 : B;
        for (int j = 0; j < n_prop; j++) {
            const int *ci = idx;
            const float *cl = NULL;
            if (use_sel && i > 0) { /* selected by the step */
                ci = sel_idx + (size_t)j * K;
                cl = sel_lp + (size_t)j * K;
            } else {
                memcpy(work, logits + (size_t)(i == 0 ? 0 : j) * nv, (size_t)nv * sizeof(float));
                tolk_dec_apply_filters(f, work, toks + (size_t)j * W, len);
                tolk_dec_log_softmax(work, nv, work);
                tolk_topk_desc(work, nv, K, idx);
            }
            for (int c = 0; c < K; c++) {
                const float lp = cl ? cl[c] : work[ci[c]];
                cands[nc].score = sum[j] + (double)lp;
                cands[nc].src = j;
                cands[nc].token = ci[c];
                cands[nc].lp = lp;
                cands[nc].order = nc;
                nc++;
            }
        }
        /* STEP 2: rank; keep B live beams, set aside finished ones */
        qsort(cands, (size_t)nc, sizeof(cand), cmp_cand);
        int saved = 0, nf = 0;
        for (int c = 0; c < nc && saved < B; c++) {
            if (cands[c].token == eot) {
                fin_step[nf++] = cands[c];
            } else {
                int s = cands[c].src;
                memcpy(ntoks + (size_t)saved * W, toks + (size_t)s * W, (size_t)len * sizeof(int));
                memcpy(nlps + (size_t)saved * W, lps + (size_t)s * W, (size_t)len * sizeof(float));
                ntoks[(size_t)saved * W + len] = cands[c].token;
                nlps[(size_t)saved * W + len] = cands[c].lp;
                nsum[saved] = cands[c].score;
                src[saved] = s;
                saved++;
            }
        }
        /* newly finished join the finished list (already in score order) */
        for (int c = 0; c < nf && n_fin < max_cand; c++) {
            int s = fin_step[c].src;
            memcpy(ftoks + (size_t)n_fin * W, toks + (size_t)s * W, (size_t)len * sizeof(int));
            memcpy(flps + (size_t)n_fin * W, lps + (size_t)s * W, (size_t)len * sizeof(float));
            flen[n_fin] = len;
            fsum[n_fin] = fin_step[c].score;
            n_fin++;
        }
        /* reorder the caches: first claimant keeps the source slot */
        for (int k = 0; k < B; k++)
            claimed[k] = 0;
        for (int k = 0; k < saved; k++) {
            int ps = slot[src[k]];
            if (!claimed[ps]) {
                claimed[ps] = 1;
                nslot[k] = ps;
            } else {
                nslot[k] = -1;
            }
        }
        int free_slot = 0;
        for (int k = 0; k < saved; k++) {
            if (nslot[k] >= 0) continue;
            while (claimed[free_slot])
                free_slot++;
            claimed[free_slot] = 1;
            nslot[k] = free_slot;
            be->copy(be->user, free_slot, slot[src[k]]);
        }
        for (int k = 0; k < saved; k++)
            slot[k] = nslot[k];
        /* swap live arrays */
        int *ti = toks;
        toks = ntoks;
        ntoks = ti;
        float *tf = lps;
        lps = nlps;
        nlps = tf;
        double *td = sum;
        sum = nsum;
        nsum = td;
        len++;

        if (n_fin >= max_cand) break;
        if (n_initial + i + 1 > opt->n_ctx) break;
        if (i + 1 >= max_new) break;
        if (saved < B) { /* fewer live beams than B: cannot happen with K = B + 1 */
            st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "decode: beam search lost its beams");
            goto out;
        }
        for (int k = 0; k < B; k++) {
            seqs[k] = slot[k];
            tp[k] = toks + (size_t)k * W + len - 1;
            one[k] = 1;
        }
        if (use_sel) {
            for (int k = 0; k < B; k++) {
                hist[k] = toks + (size_t)k * W;
                hist_len[k] = len;
            }
            st = tolk_dec_step_select(be, f, seqs, B, tp, one, hist, hist_len, K, sel_off,
                                      sel_ranges, sel_idx, sel_lp);
        } else {
            st = be->step(be->user, seqs, B, tp, one, logits);
        }
        if (st != TOLK_OK) goto out;
    }

    /* finalize: add live beams by descending score when too few finished */
    if (n_fin < B) {
        int *order = src; /* reuse: B ints */
        for (int k = 0; k < B; k++)
            order[k] = k;
        /* insertion sort ascending by sum (stable), then walk backwards */
        for (int a = 1; a < B; a++) {
            int v = order[a], b = a;
            while (b > 0 && sum[order[b - 1]] > sum[v]) {
                order[b] = order[b - 1];
                b--;
            }
            order[b] = v;
        }
        for (int a = B - 1; a >= 0 && n_fin < B; a--) {
            int k = order[a];
            memcpy(ftoks + (size_t)n_fin * W, toks + (size_t)k * W, (size_t)len * sizeof(int));
            memcpy(flps + (size_t)n_fin * W, lps + (size_t)k * W, (size_t)len * sizeof(float));
            flen[n_fin] = len;
            fsum[n_fin] = sum[k];
            n_fin++;
        }
    }
    int best = tolk_dec_rank(fsum, flen, n_fin, opt->length_penalty);
    int n = flen[best];
    res->tokens = tolk_malloc_array((size_t)n + 1, sizeof(int));
    res->logprobs = tolk_malloc_array((size_t)n + 1, sizeof(float));
    if (!res->tokens || !res->logprobs) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
        goto out;
    }
    memcpy(res->tokens, ftoks + (size_t)best * W, (size_t)n * sizeof(int));
    memcpy(res->logprobs, flps + (size_t)best * W, (size_t)n * sizeof(float));
    res->n_tokens = n;
    res->sum_logprob = fsum[best];
    res->avg_logprob = (float)(fsum[best] / (double)(n + 1));
out:
    free(sel_off);
    free(sel_ranges);
    free(sel_idx);
    free(sel_lp);
    free(hist_len);
    free(hist);
    free(logits);
    free(work);
    free(toks);
    free(lps);
    free(ntoks);
    free(nlps);
    free(sum);
    free(nsum);
    free(slot);
    free(nslot);
    free(src);
    free(claimed);
    free(cands);
    free(fin_step);
    free(idx);
    free(ftoks);
    free(flps);
    free(flen);
    free(fsum);
    free(seqs);
    free(one);
    free(tp);
    return st;
}

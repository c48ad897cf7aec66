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
 * As a state machine (decode_search.h): start consumes the first logits,
 * each feed the results of one step (logits, or each beam's top
 * beam_size + 1 tokens when the asker selects, k = beam_size + 1 <=
 * TOLK_SELECT_MAX_K); after a consume the body finishes or asks for the
 * next step of its beam_size beams.
 *
 * KV reordering: beam k lives in cache slot slot[k]. A new beam takes over
 * the slot of its source when it is the first to claim it, otherwise it is
 * copied (tolk_dec_backend.copy) into a slot no new beam claimed; so at most
 * beam_size slots are used and only duplicated beams are copied.
 */
#include "decode_search.h"
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

struct tolk_dec_beam {
    int B, K, W;  /* beams, candidates per beam (B + 1), row width (sample_len + 1) */
    int max_cand; /* round(B * patience): finished sequences wanted */
    int max_new;
    int use_sel;
    int i;      /* index of the step whose results are consumed next */
    int len;    /* sampled tokens per live beam */
    int n_fin;  /* finished sequences */
    int asking; /* an ask for step i is pending */
    float *logits, *work;
    int *toks, *ntoks;  /* [B][W] live beams' tokens (and the next ones) */
    float *lps, *nlps;  /* [B][W] their log-probabilities */
    double *sum, *nsum; /* [B] */
    int *slot, *nslot, *src, *claimed;
    cand *cands, *fin_step; /* [B * K] */
    int *idx;               /* [K] */
    int *ftoks;             /* [FC][W] finished */
    float *flps;
    int *flen;
    double *fsum;
    int *seqs, *one;
    const int **tp;
    int *sel_off, *sel_ranges, *sel_idx, *hist_len;
    float *sel_lp;
    const int **hist;
    tolk_dec_select sel;
};

void tolk_dec_beam_free(tolk_dec_beam *b) {
    if (!b) return;
    free(b->sel_off);
    free(b->sel_ranges);
    free(b->sel_idx);
    free(b->sel_lp);
    free(b->hist_len);
    free(b->hist);
    free(b->logits);
    free(b->work);
    free(b->toks);
    free(b->lps);
    free(b->ntoks);
    free(b->nlps);
    free(b->sum);
    free(b->nsum);
    free(b->slot);
    free(b->nslot);
    free(b->src);
    free(b->claimed);
    free(b->cands);
    free(b->fin_step);
    free(b->idx);
    free(b->ftoks);
    free(b->flps);
    free(b->flen);
    free(b->fsum);
    free(b->seqs);
    free(b->one);
    free(b->tp);
    free(b);
}

/* One step of the search on the results of step b->i: candidates from
 * every distinct beam, ranking, the finished list, cache reordering; then
 * finish or prepare the next ask. */
static tolk_status consume(tolk_dec_search *s) {
    tolk_dec_beam *b = s->beam;
    const int B = b->B, K = b->K, W = b->W, nv = s->tok->n_vocab, eot = s->tok->eot;
    const int i = b->i, len = b->len;
    /* STEP 1: candidates from every (distinct) beam */
    int nc = 0;
    int n_prop = i == 0 ? 1 : B;
    for (int j = 0; j < n_prop; j++) {
        const int *ci = b->idx;
        const float *cl = NULL;
        if (b->use_sel && i > 0) { /* selected by the step */
            ci = b->sel_idx + (size_t)j * K;
            cl = b->sel_lp + (size_t)j * K;
        } else {
            memcpy(b->work, b->logits + (size_t)(i == 0 ? 0 : j) * nv, (size_t)nv * sizeof(float));
            tolk_dec_apply_filters(&s->f, b->work, b->toks + (size_t)j * W, len);
            tolk_dec_log_softmax(b->work, nv, b->work);
            tolk_topk_desc(b->work, nv, K, b->idx);
        }
        for (int c = 0; c < K; c++) {
            const float lp = cl ? cl[c] : b->work[ci[c]];
            b->cands[nc].score = b->sum[j] + (double)lp;
            b->cands[nc].src = j;
            b->cands[nc].token = ci[c];
            b->cands[nc].lp = lp;
            b->cands[nc].order = nc;
            nc++;
        }
    }
    /* STEP 2: rank; keep B live beams, set aside finished ones */
    qsort(b->cands, (size_t)nc, sizeof(cand), cmp_cand);
    int saved = 0, nf = 0;
    for (int c = 0; c < nc && saved < B; c++) {
        if (b->cands[c].token == eot) {
            b->fin_step[nf++] = b->cands[c];
        } else {
            int sj = b->cands[c].src;
            memcpy(b->ntoks + (size_t)saved * W, b->toks + (size_t)sj * W, (size_t)len * sizeof(int));
            memcpy(b->nlps + (size_t)saved * W, b->lps + (size_t)sj * W, (size_t)len * sizeof(float));
            b->ntoks[(size_t)saved * W + len] = b->cands[c].token;
            b->nlps[(size_t)saved * W + len] = b->cands[c].lp;
            b->nsum[saved] = b->cands[c].score;
            b->src[saved] = sj;
            saved++;
        }
    }
    /* newly finished join the finished list (already in score order) */
    for (int c = 0; c < nf && b->n_fin < b->max_cand; c++) {
        int sj = b->fin_step[c].src;
        memcpy(b->ftoks + (size_t)b->n_fin * W, b->toks + (size_t)sj * W, (size_t)len * sizeof(int));
        memcpy(b->flps + (size_t)b->n_fin * W, b->lps + (size_t)sj * W, (size_t)len * sizeof(float));
        b->flen[b->n_fin] = len;
        b->fsum[b->n_fin] = b->fin_step[c].score;
        b->n_fin++;
    }
    /* reorder the caches: first claimant keeps the source slot */
    for (int k = 0; k < B; k++)
        b->claimed[k] = 0;
    for (int k = 0; k < saved; k++) {
        int ps = b->slot[b->src[k]];
        if (!b->claimed[ps]) {
            b->claimed[ps] = 1;
            b->nslot[k] = ps;
        } else {
            b->nslot[k] = -1;
        }
    }
    int free_slot = 0;
    for (int k = 0; k < saved; k++) {
        if (b->nslot[k] >= 0) continue;
        while (b->claimed[free_slot])
            free_slot++;
        b->claimed[free_slot] = 1;
        b->nslot[k] = free_slot;
        tolk_status st = s->be.copy(s->be.user, free_slot, b->slot[b->src[k]]);
        if (st != TOLK_OK) return st;
    }
    for (int k = 0; k < saved; k++)
        b->slot[k] = b->nslot[k];
    /* swap live arrays */
    int *ti = b->toks;
    b->toks = b->ntoks;
    b->ntoks = ti;
    float *tf = b->lps;
    b->lps = b->nlps;
    b->nlps = tf;
    double *td = b->sum;
    b->sum = b->nsum;
    b->nsum = td;
    b->len = len + 1;
    b->asking = 0;

    if (b->n_fin >= b->max_cand) return TOLK_OK;
    if (s->n_initial + i + 1 > s->opt.n_ctx) return TOLK_OK;
    if (i + 1 >= b->max_new) return TOLK_OK;
    if (saved < B) /* fewer live beams than B: cannot happen with K = B + 1 */
        return tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: beam search lost its beams");
    for (int k = 0; k < B; k++) {
        b->seqs[k] = b->slot[k];
        b->tp[k] = b->toks + (size_t)k * W + b->len - 1;
        b->one[k] = 1;
    }
    if (b->use_sel) {
        for (int k = 0; k < B; k++) {
            b->hist[k] = b->toks + (size_t)k * W;
            b->hist_len[k] = b->len;
        }
        tolk_dec_fill_select(&s->f, B, b->hist, b->hist_len, K, b->sel_off, b->sel_ranges, &b->sel);
    }
    b->i = i + 1;
    b->asking = 1;
    return TOLK_OK;
}

tolk_status tolk_dec_beam_start(tolk_dec_search *s, const float *first) {
    const int B = s->opt.beam_size;
    const int nv = s->tok->n_vocab;
    double pat = s->opt.patience > 0.0f ? (double)s->opt.patience : 1.0;
    int max_cand = (int)nearbyint((double)B * pat);
    if (B < 1 || B > s->be.max_seqs || B > 4096)
        return tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "decode: beam size %d exceeds %d sequences",
                         B, s->be.max_seqs);
    if (max_cand <= 0 || max_cand > 1 << 16)
        return tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG,
                         "decode: invalid beam size %d or patience %g", B,
                         (double)s->opt.patience);
    tolk_dec_beam *b = calloc(1, sizeof *b);
    if (!b) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory for beam search");
    s->beam = b;
    b->B = B;
    b->K = B + 1;
    b->max_new = s->opt.sample_len;
    b->W = b->max_new + 1;
    b->max_cand = max_cand;
    const int K = b->K, W = b->W;
    const int FC = max_cand + B; /* finished capacity */
    size_t vb;
    b->logits = tolk_mul_size((size_t)B, (size_t)nv, &vb) ? tolk_malloc_array(vb, 4) : NULL;
    b->work = tolk_malloc_array((size_t)nv, sizeof(float));
    b->toks = tolk_calloc_array((size_t)B * W, sizeof(int));
    b->lps = tolk_calloc_array((size_t)B * W, sizeof(float));
    b->ntoks = tolk_calloc_array((size_t)B * W, sizeof(int));
    b->nlps = tolk_calloc_array((size_t)B * W, sizeof(float));
    b->sum = tolk_calloc_array((size_t)B, sizeof(double));
    b->nsum = tolk_calloc_array((size_t)B, sizeof(double));
    b->slot = tolk_calloc_array((size_t)B, sizeof(int));
    b->nslot = tolk_calloc_array((size_t)B, sizeof(int));
    b->src = tolk_calloc_array((size_t)B, sizeof(int));
    b->claimed = tolk_calloc_array((size_t)B, sizeof(int));
    b->cands = tolk_calloc_array((size_t)B * K, sizeof(cand));
    b->fin_step = tolk_calloc_array((size_t)B * K, sizeof(cand));
    b->idx = tolk_calloc_array((size_t)K, sizeof(int));
    b->ftoks = tolk_calloc_array((size_t)FC * W, sizeof(int));
    b->flps = tolk_calloc_array((size_t)FC * W, sizeof(float));
    b->flen = tolk_calloc_array((size_t)FC, sizeof(int));
    b->fsum = tolk_calloc_array((size_t)FC, sizeof(double));
    b->seqs = tolk_calloc_array((size_t)B, sizeof(int));
    b->one = tolk_calloc_array((size_t)B, sizeof(int));
    b->tp = tolk_calloc_array((size_t)B, sizeof(int *));
    int ok = b->logits && b->work && b->toks && b->lps && b->ntoks && b->nlps && b->sum &&
             b->nsum && b->slot && b->nslot && b->src && b->claimed && b->cands && b->fin_step &&
             b->idx && b->ftoks && b->flps && b->flen && b->fsum && b->seqs && b->one && b->tp;
    /* the selection may run where the logits are (K <= TOLK_SELECT_MAX_K) */
    b->use_sel = s->can_select && K <= TOLK_SELECT_MAX_K;
    if (b->use_sel) {
        b->sel_off = tolk_calloc_array((size_t)B + 1, sizeof(int));
        b->sel_ranges = tolk_calloc_array((size_t)B * 2,
                                          (size_t)tolk_dec_filter_max_ranges(&s->f) * sizeof(int));
        b->sel_idx = tolk_calloc_array((size_t)B * K, sizeof(int));
        b->sel_lp = tolk_calloc_array((size_t)B * K, sizeof(float));
        b->hist_len = tolk_calloc_array((size_t)B, sizeof(int));
        b->hist = tolk_calloc_array((size_t)B, sizeof(int *));
        ok = ok && b->sel_off && b->sel_ranges && b->sel_idx && b->sel_lp && b->hist_len && b->hist;
    }
    if (!ok) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory for beam search");
    for (int k = 0; k < B; k++)
        b->slot[k] = 0; /* all beams start as the initial sequence */
    memcpy(b->logits, first, (size_t)nv * sizeof(float));
    b->i = 0;
    if (b->max_new > 0) return consume(s);
    return TOLK_OK;
}

int tolk_dec_beam_ask(tolk_dec_beam *b, tolk_dec_ask *ask) {
    if (!b->asking) return 0;
    *ask = (tolk_dec_ask){.n_seqs = b->B,
                          .seqs = b->seqs,
                          .tokens = b->tp,
                          .n_tokens = b->one,
                          .k = b->use_sel ? b->K : 0,
                          .sel = b->sel,
                          .logits = b->logits,
                          .idx = b->sel_idx,
                          .lp = b->sel_lp};
    return 1;
}

tolk_status tolk_dec_beam_feed(tolk_dec_search *s) {
    if (!s->beam->asking)
        return tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: beam search fed without an ask");
    return consume(s);
}

tolk_status tolk_dec_beam_finish(tolk_dec_search *s, tolk_dec_result *res) {
    tolk_dec_beam *b = s->beam;
    const int B = b->B, W = b->W, len = b->len;
    /* add live beams by descending score when too few finished */
    if (b->n_fin < B) {
        int *order = b->src; /* reuse: B ints */
        for (int k = 0; k < B; k++)
            order[k] = k;
        /* insertion sort ascending by sum (stable), then walk backwards */
        for (int a = 1; a < B; a++) {
            int v = order[a], c = a;
            while (c > 0 && b->sum[order[c - 1]] > b->sum[v]) {
                order[c] = order[c - 1];
                c--;
            }
            order[c] = v;
        }
        for (int a = B - 1; a >= 0 && b->n_fin < B; a--) {
            int k = order[a];
            memcpy(b->ftoks + (size_t)b->n_fin * W, b->toks + (size_t)k * W, (size_t)len * sizeof(int));
            memcpy(b->flps + (size_t)b->n_fin * W, b->lps + (size_t)k * W, (size_t)len * sizeof(float));
            b->flen[b->n_fin] = len;
            b->fsum[b->n_fin] = b->sum[k];
            b->n_fin++;
        }
    }
    int best = tolk_dec_rank(b->fsum, b->flen, b->n_fin, s->opt.length_penalty);
    int n = b->flen[best];
    res->tokens = tolk_malloc_array((size_t)n + 1, sizeof(int));
    res->logprobs = tolk_malloc_array((size_t)n + 1, sizeof(float));
    if (!res->tokens || !res->logprobs) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    memcpy(res->tokens, b->ftoks + (size_t)best * W, (size_t)n * sizeof(int));
    memcpy(res->logprobs, b->flps + (size_t)best * W, (size_t)n * sizeof(float));
    res->n_tokens = n;
    res->sum_logprob = b->fsum[best];
    res->avg_logprob = (float)(b->fsum[best] / (double)(n + 1));
    return TOLK_OK;
}

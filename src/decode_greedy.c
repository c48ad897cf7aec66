/*
 * decode_greedy.c — the independent-sequence body of a search (openai-
 * whisper GreedyDecoder): argmax at temperature 0, or best_of independent
 * samples from softmax(logits / T) at T > 0, ranked at the end by
 * MaximumLikelihoodRanker. One sequence per candidate; they step together
 * and leave the step when they end with EOT.
 *
 * As a state machine (decode_search.h): start consumes the first logits
 * (step 0), each feed consumes the results of step i; after a consume the
 * body either finishes (every candidate ended, the sample length or the
 * context is reached) or asks for the next step of the unfinished ones.
 * At temperature 0 with one candidate and an asker that can select, steps
 * ask for the argmax where the logits are (k = 1) instead of the logits.
 */
#include "decode_search.h"

#include <stdlib.h>
#include <string.h>

struct tolk_dec_greedy {
    int G;        /* candidates */
    int max_new;  /* sample_len */
    int W;        /* row width of toks / lps: max_new + 1 */
    int sampling; /* temperature > 0 */
    int use_sel;  /* steps return the argmax instead of logits */
    int *toks;    /* [G][W] sampled tokens */
    float *lps;   /* [G][W] their log-probabilities */
    int *len;     /* [G] */
    int *done;    /* [G] ended with EOT */
    double *sum;  /* [G] sum of log-probabilities */
    int *active;  /* [n_active] unfinished candidates, in step row order */
    int n_active;
    int i;        /* index of the step whose results are consumed next */
    int asking;   /* an ask for step i is pending */
    /* the ask: rows = active candidates */
    int *seqs, *ntok;
    const int **tp;
    float *logits; /* [G, n_vocab] */
    float *work;   /* [n_vocab] */
    int *sel_off, *sel_ranges, *sel_idx, *hist_len;
    float *sel_lp;
    const int **hist;
    tolk_dec_select sel;
};

void tolk_dec_greedy_free(tolk_dec_greedy *g) {
    if (!g) return;
    free(g->toks);
    free(g->lps);
    free(g->len);
    free(g->done);
    free(g->sum);
    free(g->active);
    free(g->seqs);
    free(g->ntok);
    free(g->tp);
    free(g->logits);
    free(g->work);
    free(g->sel_off);
    free(g->sel_ranges);
    free(g->sel_idx);
    free(g->hist_len);
    free(g->sel_lp);
    free(g->hist);
    free(g);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Choose the next token of every active candidate from the results of
 * step g->i (logits rows or selections, in active order), retire the
 * finished ones, then either finish or prepare the ask of the next step. */
static void consume(tolk_dec_search *s) {
    tolk_dec_greedy *g = s->greedy;
    const int nv = s->tok->n_vocab, eot = s->tok->eot;
    const int i = g->i;
    for (int a = 0; a < g->n_active; a++) {
        const int c = g->active[a];
        int *ct = g->toks + (size_t)c * g->W;
        int next;
        float lp;
        if (g->use_sel && i > 0) { /* chosen by the step */
            next = g->sel_idx[a];
            lp = g->sel_lp[a];
        } else {
            memcpy(g->work, g->logits + (size_t)a * nv, (size_t)nv * sizeof(float));
            tolk_dec_apply_filters(&s->f, g->work, ct, g->len[c]);
            next = g->sampling ? tolk_dec_sample(g->work, nv, s->opt.temperature, s->opt.rng)
                               : argmax(g->work, nv);
            tolk_dec_log_softmax(g->work, nv, g->work);
            lp = g->work[next];
        }
        g->sum[c] += (double)lp;
        ct[g->len[c]] = next;
        g->lps[(size_t)c * g->W + g->len[c]] = lp;
        g->len[c]++;
        if (next == eot) g->done[c] = 1;
    }
    int k = 0;
    for (int a = 0; a < g->n_active; a++)
        if (!g->done[g->active[a]]) g->active[k++] = g->active[a];
    g->n_active = k;
    g->asking = 0;
    if (g->n_active == 0 || s->n_initial + i + 1 > s->opt.n_ctx || i + 1 >= g->max_new) return;
    for (int a = 0; a < g->n_active; a++) {
        const int c = g->active[a];
        g->seqs[a] = c;
        g->tp[a] = g->toks + (size_t)c * g->W + g->len[c] - 1;
        g->ntok[a] = 1;
    }
    if (g->use_sel) {
        for (int a = 0; a < g->n_active; a++) {
            const int c = g->active[a];
            g->hist[a] = g->toks + (size_t)c * g->W;
            g->hist_len[a] = g->len[c];
        }
        tolk_dec_fill_select(&s->f, g->n_active, g->hist, g->hist_len, 1, g->sel_off,
                             g->sel_ranges, &g->sel);
    }
    g->i = i + 1;
    g->asking = 1;
}

tolk_status tolk_dec_greedy_start(tolk_dec_search *s, const float *first) {
    const int nv = s->tok->n_vocab;
    tolk_dec_greedy *g = calloc(1, sizeof *g);
    if (!g) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    s->greedy = g;
    g->sampling = s->opt.temperature > 0.0f;
    g->G = tolk_dec_group_size(&s->opt);
    g->max_new = s->opt.sample_len;
    g->W = g->max_new + 1;
    g->use_sel = !g->sampling && g->G == 1 && s->can_select;
    const size_t G = (size_t)g->G;
    size_t vb = 0;
    g->toks = tolk_calloc_array(G * (size_t)g->W, sizeof(int));
    g->lps = tolk_calloc_array(G * (size_t)g->W, sizeof(float));
    g->len = tolk_calloc_array(G, sizeof(int));
    g->done = tolk_calloc_array(G, sizeof(int));
    g->sum = tolk_calloc_array(G, sizeof(double));
    g->active = tolk_calloc_array(G, sizeof(int));
    g->seqs = tolk_calloc_array(G, sizeof(int));
    g->ntok = tolk_calloc_array(G, sizeof(int));
    g->tp = tolk_calloc_array(G, sizeof(int *));
    if (tolk_mul_size(G, (size_t)nv, &vb)) g->logits = tolk_malloc_array(vb, sizeof(float));
    g->work = tolk_malloc_array((size_t)nv, sizeof(float));
    int ok = g->toks && g->lps && g->len && g->done && g->sum && g->active && g->seqs && g->ntok &&
             g->tp && g->logits && g->work;
    if (g->use_sel) {
        g->sel_off = tolk_calloc_array(G + 1, sizeof(int));
        g->sel_ranges =
            tolk_calloc_array(G * 2, (size_t)tolk_dec_filter_max_ranges(&s->f) * sizeof(int));
        g->sel_idx = tolk_calloc_array(G, sizeof(int));
        g->sel_lp = tolk_calloc_array(G, sizeof(float));
        g->hist_len = tolk_calloc_array(G, sizeof(int));
        g->hist = tolk_calloc_array(G, sizeof(int *));
        ok = ok && g->sel_off && g->sel_ranges && g->sel_idx && g->sel_lp && g->hist_len && g->hist;
    }
    if (!ok)
        return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory for %d sequences", g->G);
    for (int c = 0; c < g->G; c++)
        memcpy(g->logits + (size_t)c * nv, first, (size_t)nv * sizeof(float));
    for (int c = 1; c < g->G; c++) {
        tolk_status st = s->be.reset(s->be.user, c);
        if (st == TOLK_OK) st = s->be.copy(s->be.user, c, 0);
        if (st != TOLK_OK) return st;
    }
    g->n_active = g->G;
    for (int c = 0; c < g->G; c++)
        g->active[c] = c;
    g->i = 0;
    if (g->max_new > 0) consume(s);
    return TOLK_OK;
}

int tolk_dec_greedy_ask(tolk_dec_greedy *g, tolk_dec_ask *ask) {
    if (!g->asking) return 0;
    *ask = (tolk_dec_ask){.n_seqs = g->n_active,
                          .seqs = g->seqs,
                          .tokens = g->tp,
                          .n_tokens = g->ntok,
                          .k = g->use_sel ? 1 : 0,
                          .sel = g->sel,
                          .logits = g->logits,
                          .idx = g->sel_idx,
                          .lp = g->sel_lp};
    return 1;
}

tolk_status tolk_dec_greedy_feed(tolk_dec_search *s) {
    if (!s->greedy->asking)
        return tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: greedy fed without an ask");
    consume(s);
    return TOLK_OK;
}

tolk_status tolk_dec_greedy_finish(tolk_dec_search *s, tolk_dec_result *res) {
    tolk_dec_greedy *g = s->greedy;
    /* strip the EOT, rank the candidates */
    int *lengths = g->ntok; /* reuse: G ints */
    for (int c = 0; c < g->G; c++)
        lengths[c] = g->done[c] ? g->len[c] - 1 : g->len[c];
    int best = g->G > 1 ? tolk_dec_rank(g->sum, lengths, g->G, s->opt.length_penalty) : 0;
    int n = lengths[best];
    res->tokens = tolk_malloc_array((size_t)n + 1, sizeof(int));
    res->logprobs = tolk_malloc_array((size_t)n + 1, sizeof(float));
    if (!res->tokens || !res->logprobs) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    memcpy(res->tokens, g->toks + (size_t)best * g->W, (size_t)n * sizeof(int));
    memcpy(res->logprobs, g->lps + (size_t)best * g->W, (size_t)n * sizeof(float));
    res->n_tokens = n;
    res->sum_logprob = g->sum[best];
    res->avg_logprob = (float)(g->sum[best] / (double)(n + 1));
    return TOLK_OK;
}

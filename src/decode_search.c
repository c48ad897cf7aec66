/*
 * decode_search.c — one decode of one window (openai-whisper
 * DecodingTask.run / _main_loop) as a resumable state machine: the initial
 * tokens are fed in two pieces — up to and including SOT, then the rest —
 * so that the logits at the SOT position give the no-speech probability
 * (the reference reads logits[:, sot_index] of its first forward pass)
 * while the network only ever returns the last position; then a body runs
 * the search proper (decode_greedy.c: GreedyDecoder and best-of sampling;
 * decode_beam.c: BeamSearchDecoder); at the end the text and its
 * compression ratio (for the fallback rule) are made.
 *
 * The search never calls the network: it asks (tolk_dec_search_next) and
 * is fed (tolk_dec_search_feed). tolk_dec_drive runs any such machine
 * through a blocking tolk_dec_backend, which is how tolk_dec_decode, the
 * tests and tolk_detect_language use it; the engine (engine.c) instead
 * gathers the asks of many requests into one decoder step.
 */
#include "decode_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Phases of a search. */
enum { PH_SOT = 0, PH_REST = 1, PH_BODY = 2, PH_DONE = 3 };

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

void tolk_dec_fill_select(const tolk_dec_filter *f, int n, const int *const *hist,
                          const int *hist_len, int k, int *off, int *ranges, tolk_dec_select *sel) {
    const int cap = tolk_dec_filter_max_ranges(f);
    off[0] = 0;
    for (int i = 0; i < n; i++) {
        int m = tolk_dec_filter_ranges(f, hist[i], hist_len[i], ranges + 2 * off[i], cap);
        off[i + 1] = off[i] + (m < cap ? m : cap); /* m <= cap by construction */
    }
    *sel = (tolk_dec_select){
        .range_off = off, .ranges = ranges, .ts_begin = tolk_dec_filter_ts_begin(f), .k = k};
}

int tolk_dec_group_size(const tolk_dec_options *opt) {
    if (opt->temperature > 0.0f) return opt->best_of > 1 ? opt->best_of : 1;
    return opt->beam_size >= 2 ? opt->beam_size : 1;
}

static int use_beam(const tolk_dec_options *opt) {
    return opt->temperature == 0.0f && opt->beam_size >= 2;
}

tolk_status tolk_dec_search_new(tolk_ctx *ctx, const tolk_dec_backend *be,
                                const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                int sot_index, const tolk_dec_options *opt, int can_select,
                                tolk_dec_text_fn text_fn, void *text_user,
                                tolk_dec_search **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    *out = NULL;
    if (!be || !tok || !initial || !opt || !be->reset || !be->copy)
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
    if (opt->temperature > 0.0f && !opt->rng)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: sampling needs a random state");
    const int group = tolk_dec_group_size(opt);
    if (group > be->max_seqs || group > 4096)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: %s %d exceeds %d sequences",
                         use_beam(opt) ? "beam size" : "best_of", group, be->max_seqs);

    tolk_dec_search *s = calloc(1, sizeof *s);
    if (!s) return tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    s->ctx = ctx;
    s->be = *be;
    s->tok = tok;
    s->opt = *opt;
    s->n_initial = n_initial;
    s->sot_index = sot_index;
    s->can_select = can_select;
    s->text_fn = text_fn;
    s->text_user = text_user;
    s->no_speech_prob = NAN;
    s->f = (tolk_dec_filter){.tok = tok,
                             .sample_begin = n_initial,
                             .suppress_blank = opt->suppress_blank,
                             .suppress = opt->suppress,
                             .n_suppress = opt->n_suppress,
                             .timestamps = opt->timestamps,
                             .max_initial_timestamp_index = opt->max_initial_timestamp_index};
    s->initial = tolk_malloc_array((size_t)n_initial, sizeof(int));
    s->l1 = tolk_malloc_array((size_t)tok->n_vocab, sizeof(float));
    s->l2 = tolk_malloc_array((size_t)tok->n_vocab, sizeof(float));
    if (!s->initial || !s->l1 || !s->l2) {
        tolk_dec_search_free(s);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    }
    memcpy(s->initial, initial, (size_t)n_initial * sizeof(int));
    s->phase = PH_SOT;
    *out = s;
    return TOLK_OK;
}

void tolk_dec_search_free(tolk_dec_search *s) {
    if (!s) return;
    tolk_dec_greedy_free(s->greedy);
    tolk_dec_beam_free(s->beam);
    free(s->initial);
    free(s->l1);
    free(s->l2);
    free(s);
}

/* A prefill ask: feed tokens [0, n) to sequence 0, logits into dst. */
static void prefill_ask(tolk_dec_search *s, const int *tokens, int n, float *dst,
                        tolk_dec_ask *ask) {
    s->seq0 = 0;
    s->p_tok = tokens;
    s->p_n = n;
    *ask = (tolk_dec_ask){.n_seqs = 1,
                          .seqs = &s->seq0,
                          .tokens = &s->p_tok,
                          .n_tokens = &s->p_n,
                          .k = 0,
                          .logits = dst};
}

tolk_status tolk_dec_search_next(tolk_dec_search *s, tolk_dec_ask *ask, int *asked) {
    *asked = 0;
    if (s->err) return s->err;
    switch (s->phase) {
    case PH_SOT: {
        tolk_status st = s->be.reset(s->be.user, 0);
        if (st != TOLK_OK) return s->err = st;
        prefill_ask(s, s->initial, s->sot_index + 1, s->l1, ask);
        *asked = 1;
        break;
    }
    case PH_REST:
        prefill_ask(s, s->initial + s->sot_index + 1, s->n_initial - s->sot_index - 1, s->l2, ask);
        *asked = 1;
        break;
    case PH_BODY:
        *asked = s->greedy ? tolk_dec_greedy_ask(s->greedy, ask) : tolk_dec_beam_ask(s->beam, ask);
        if (!*asked) s->phase = PH_DONE;
        break;
    default:
        break;
    }
    return TOLK_OK;
}

/* Start the body with the first logits [n_vocab]. */
static tolk_status start_body(tolk_dec_search *s, const float *first) {
    s->phase = PH_BODY;
    return use_beam(&s->opt) ? tolk_dec_beam_start(s, first) : tolk_dec_greedy_start(s, first);
}

tolk_status tolk_dec_search_feed(tolk_dec_search *s) {
    if (s->err) return s->err;
    tolk_status st = TOLK_OK;
    const int nv = s->tok->n_vocab;
    switch (s->phase) {
    case PH_SOT:
        if (s->tok->no_speech >= 0 && s->tok->no_speech < nv) {
            tolk_dec_log_softmax(s->l1, nv, s->l2);
            s->no_speech_prob = expf(s->l2[s->tok->no_speech]);
        }
        if (s->n_initial > s->sot_index + 1)
            s->phase = PH_REST;
        else
            st = start_body(s, s->l1);
        break;
    case PH_REST:
        st = start_body(s, s->l2);
        break;
    case PH_BODY:
        st = s->greedy ? tolk_dec_greedy_feed(s) : tolk_dec_beam_feed(s);
        break;
    default:
        st = tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: fed a finished search");
        break;
    }
    if (st != TOLK_OK) s->err = st;
    return st;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

tolk_status tolk_dec_search_finish(tolk_dec_search *s, tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (s->err) return s->err;
    if (s->phase != PH_BODY && s->phase != PH_DONE)
        return tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: search not finished");
    tolk_status st =
        s->greedy ? tolk_dec_greedy_finish(s, res) : tolk_dec_beam_finish(s, res);
    res->no_speech_prob = s->no_speech_prob;
    res->temperature = s->opt.temperature;
    if (st == TOLK_OK && s->text_fn) {
        char *text = s->text_fn(s->text_user, res->tokens, res->n_tokens);
        if (!text) {
            st = tolk_fail(s->ctx, TOLK_ERR_NOMEM, "decode: out of memory for the text");
        } else {
            size_t a = 0, b = strlen(text);
            while (a < b && is_space((unsigned char)text[a]))
                a++;
            while (b > a && is_space((unsigned char)text[b - 1]))
                b--;
            memmove(text, text + a, b - a);
            text[b - a] = '\0';
            res->text = text;
            res->compression_ratio = tolk_compression_ratio(text, b - a);
            if (res->compression_ratio < 0.0f)
                st = tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "decode: zlib compression failed");
        }
    }
    if (st != TOLK_OK) {
        tolk_dec_result_clear(res);
        s->err = st;
    }
    return st;
}

tolk_status tolk_dec_drive(tolk_ctx *ctx, const tolk_dec_backend *be, void *m,
                           tolk_dec_next_fn next, tolk_dec_feed_fn feed) {
    for (;;) {
        tolk_dec_ask ask;
        int asked = 0;
        tolk_status st = next(m, &ask, &asked);
        if (st != TOLK_OK || !asked) return st;
        if (ask.k == 0) {
            st = be->step(be->user, ask.seqs, ask.n_seqs, ask.tokens, ask.n_tokens, ask.logits);
        } else if (be->step_select) {
            st = be->step_select(be->user, ask.seqs, ask.n_seqs, ask.tokens, ask.n_tokens,
                                 &ask.sel, ask.idx, ask.lp);
        } else {
            st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "decode: a selection asked of a backend without");
        }
        if (st == TOLK_OK) st = feed(m);
        if (st != TOLK_OK) return st;
    }
}

static tolk_status search_next(void *m, tolk_dec_ask *ask, int *asked) {
    return tolk_dec_search_next(m, ask, asked);
}
static tolk_status search_feed(void *m) {
    return tolk_dec_search_feed(m);
}

tolk_status tolk_dec_decode(tolk_ctx *ctx, const tolk_dec_backend *be, const tolk_dec_tokens *tok,
                            const int *initial, int n_initial, int sot_index,
                            const tolk_dec_options *opt, tolk_dec_text_fn text_fn, void *text_user,
                            tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (!be || !be->step)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    tolk_dec_search *s = NULL;
    tolk_status st = tolk_dec_search_new(ctx, be, tok, initial, n_initial, sot_index, opt,
                                         be->step_select != NULL, text_fn, text_user, &s);
    if (st == TOLK_OK) st = tolk_dec_drive(ctx, be, s, search_next, search_feed);
    if (st == TOLK_OK) st = tolk_dec_search_finish(s, res);
    tolk_dec_search_free(s);
    return st;
}

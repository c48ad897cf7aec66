/*
 * decode_window.c — one 30 s window decoded with the temperature fallback
 * of openai-whisper's transcribe() (decode_with_fallback): try each
 * temperature of the schedule in turn (beam search / greedy at 0 with
 * best_of dropped, best_of sampling above 0 with beam_size and patience
 * dropped); a result fails when its compression ratio is above the
 * threshold (too repetitive) or its average log-probability below the
 * threshold, except that a window the model calls silent (no_speech_prob
 * above its threshold AND a low log-probability) is accepted as is. When
 * every temperature fails, the last result is returned.
 *
 * As a state machine (decode.h's ask / feed protocol) it holds one search
 * at a time; when a search finishes and fails the rule, the next
 * temperature's search starts inside the same next() call, so only the
 * window that failed is decoded again — still inside whatever batch the
 * asker is gathering.
 */
#include "decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tolk_dec_window {
    tolk_ctx *ctx;
    tolk_dec_backend be;
    const tolk_dec_tokens *tok;
    int *initial;
    int n_initial, sot_index;
    tolk_dec_options base;
    tolk_dec_fallback fb;
    int can_select;
    tolk_dec_text_fn text_fn;
    void *text_user;
    int t;                   /* index of the current temperature */
    tolk_dec_search *search; /* the current attempt, NULL when none */
    tolk_dec_result res;     /* the last finished attempt */
    int done;
    tolk_status err;
};

int tolk_dec_needs_fallback(const tolk_dec_fallback *fb, const tolk_dec_result *r) {
    int needs = 0;
    int lp_on = fb->logprob_threshold > -INFINITY && !isnan(fb->logprob_threshold);
    if (fb->compression_ratio_threshold > 0.0f &&
        r->compression_ratio > fb->compression_ratio_threshold)
        needs = 1;
    if (lp_on && r->avg_logprob < fb->logprob_threshold) needs = 1;
    if (fb->no_speech_threshold > 0.0f && r->no_speech_prob > fb->no_speech_threshold && lp_on &&
        r->avg_logprob < fb->logprob_threshold)
        needs = 0;
    return needs;
}

/* The options of attempt t. */
static tolk_dec_options attempt_options(const tolk_dec_options *base, const tolk_dec_fallback *fb,
                                        int t) {
    tolk_dec_options o = *base;
    o.temperature = fb->temperatures[t];
    if (o.temperature > 0.0f) {
        o.beam_size = 0;
        o.patience = 1.0f;
    } else {
        o.best_of = 1;
    }
    return o;
}

int tolk_dec_window_max_group(const tolk_dec_options *base, const tolk_dec_fallback *fb) {
    int g = 1;
    for (int t = 0; fb && t < fb->n_temperatures; t++) {
        tolk_dec_options o = attempt_options(base, fb, t);
        int n = tolk_dec_group_size(&o);
        if (n > g) g = n;
    }
    return g;
}

static tolk_status start_attempt(tolk_dec_window *w) {
    tolk_dec_options o = attempt_options(&w->base, &w->fb, w->t);
    return tolk_dec_search_new(w->ctx, &w->be, w->tok, w->initial, w->n_initial, w->sot_index, &o,
                               w->can_select, w->text_fn, w->text_user, &w->search);
}

tolk_status tolk_dec_window_new(tolk_ctx *ctx, const tolk_dec_backend *be,
                                const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                int sot_index, const tolk_dec_options *base,
                                const tolk_dec_fallback *fb, int can_select,
                                tolk_dec_text_fn text_fn, void *text_user, tolk_dec_window **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    *out = NULL;
    if (!fb || fb->n_temperatures < 1 || !fb->temperatures)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: empty temperature schedule");
    if (!be || !base || !initial || n_initial < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    tolk_dec_window *w = calloc(1, sizeof *w);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    *w = (tolk_dec_window){.ctx = ctx,
                           .be = *be,
                           .tok = tok,
                           .n_initial = n_initial,
                           .sot_index = sot_index,
                           .base = *base,
                           .fb = *fb,
                           .can_select = can_select,
                           .text_fn = text_fn,
                           .text_user = text_user};
    w->initial = tolk_malloc_array((size_t)n_initial, sizeof(int));
    if (!w->initial) {
        free(w);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "decode: out of memory");
    }
    memcpy(w->initial, initial, (size_t)n_initial * sizeof(int));
    tolk_status st = start_attempt(w);
    if (st != TOLK_OK) {
        tolk_dec_window_free(w);
        return st;
    }
    *out = w;
    return TOLK_OK;
}

void tolk_dec_window_free(tolk_dec_window *w) {
    if (!w) return;
    tolk_dec_search_free(w->search);
    tolk_dec_result_clear(&w->res);
    free(w->initial);
    free(w);
}

tolk_status tolk_dec_window_next(tolk_dec_window *w, tolk_dec_ask *ask, int *asked) {
    *asked = 0;
    while (!w->err && !w->done) {
        tolk_status st = tolk_dec_search_next(w->search, ask, asked);
        if (st != TOLK_OK) return w->err = st;
        if (*asked) return TOLK_OK;
        /* the attempt is finished: keep it, then accept it or fall back */
        tolk_dec_result_clear(&w->res);
        st = tolk_dec_search_finish(w->search, &w->res);
        tolk_dec_search_free(w->search);
        w->search = NULL;
        if (st != TOLK_OK) return w->err = st;
        if (!tolk_dec_needs_fallback(&w->fb, &w->res) || w->t + 1 >= w->fb.n_temperatures) {
            w->done = 1;
            break;
        }
        w->t++;
        st = start_attempt(w);
        if (st != TOLK_OK) return w->err = st;
    }
    return w->err;
}

tolk_status tolk_dec_window_feed(tolk_dec_window *w) {
    if (w->err) return w->err;
    if (!w->search) return w->err = tolk_fail(w->ctx, TOLK_ERR_INTERNAL, "decode: fed a finished window");
    tolk_status st = tolk_dec_search_feed(w->search);
    if (st != TOLK_OK) w->err = st;
    return st;
}

tolk_status tolk_dec_window_finish(tolk_dec_window *w, tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (w->err) return w->err;
    if (!w->done) return tolk_fail(w->ctx, TOLK_ERR_INTERNAL, "decode: window not finished");
    *res = w->res;
    memset(&w->res, 0, sizeof w->res);
    return TOLK_OK;
}

static tolk_status window_next(void *m, tolk_dec_ask *ask, int *asked) {
    return tolk_dec_window_next(m, ask, asked);
}
static tolk_status window_feed(void *m) {
    return tolk_dec_window_feed(m);
}

tolk_status tolk_dec_decode_fallback(tolk_ctx *ctx, const tolk_dec_backend *be,
                                     const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                     int sot_index, const tolk_dec_options *base,
                                     const tolk_dec_fallback *fb, tolk_dec_text_fn text_fn,
                                     void *text_user, tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (!be || !be->step) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: NULL argument");
    tolk_dec_window *w = NULL;
    tolk_status st = tolk_dec_window_new(ctx, be, tok, initial, n_initial, sot_index, base, fb,
                                         be->step_select != NULL, text_fn, text_user, &w);
    if (st == TOLK_OK) st = tolk_dec_drive(ctx, be, w, window_next, window_feed);
    if (st == TOLK_OK) st = tolk_dec_window_finish(w, res);
    tolk_dec_window_free(w);
    return st;
}

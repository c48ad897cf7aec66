/*
 * state.c — tolk_state: the blocking, one-request-at-a-time face of the
 * engine. A state owns an engine of its own (no thread, one request slot,
 * a KV pool sized by what its requests need), and tolk_transcribe /
 * tolk_transcribe_file / tolk_detect_language submit one request to it and
 * drive it on the calling thread until it ends: the same code path as
 * many requests served at once (engine.c, longform.c).
 */
#include "engine.h"
#include "longform.h"
#include "model.h"
#include "net.h"

#include <stdlib.h>
#include <string.h>

struct tolk_state {
    tolk_ctx *ctx;           /* owned; copy of the creating ctx's params */
    const tolk_model *model; /* borrowed; outlives the state */
    tolk_engine *engine;     /* owned; no thread, one request at a time */
};

tolk_status tolk_state_new_ex(tolk_ctx *ctx, const tolk_model *model,
                              const tolk_engine_params *params, tolk_state **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_state_new: NULL out");
    *out = NULL;
    if (!model || !model->w)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_state_new: NULL model");
    if (!model->net)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_state_new: the model has no network");
    tolk_state *st = calloc(1, sizeof *st);
    if (!st) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_state_new: out of memory");
    tolk_ctx_params cp = ctx ? ctx->params : tolk_ctx_default_params();
    tolk_status s = tolk_ctx_new(&cp, &st->ctx);
    if (s != TOLK_OK) {
        free(st);
        return tolk_fail(ctx, s, "tolk_state_new: cannot create a context");
    }
    st->model = model;
    tolk_engine_params ep = params ? *params : tolk_engine_default_params();
    ep.background = 0;
    ep.max_requests = 1;
    s = tolk_engine_new(st->ctx, model, &ep, &st->engine);
    if (s != TOLK_OK) {
        if (ctx) tolk_fail(ctx, s, "%s", tolk_ctx_last_error(st->ctx));
        tolk_state_free(st);
        return s;
    }
    *out = st;
    return TOLK_OK;
}

tolk_status tolk_state_new(tolk_ctx *ctx, const tolk_model *model, tolk_state **out) {
    return tolk_state_new_ex(ctx, model, NULL, out);
}

void tolk_state_free(tolk_state *st) {
    if (!st) return;
    tolk_engine_free(st->engine);
    tolk_ctx_free(st->ctx);
    free(st);
}

const char *tolk_state_last_error(const tolk_state *st) {
    return st ? tolk_ctx_last_error(st->ctx) : "";
}

void tolk_state_timings(const tolk_state *s, tolk_timings *out) {
    if (!out) return;
    if (!s) {
        memset(out, 0, sizeof *out);
        return;
    }
    tolk_engine_timings(s->engine, out);
}

void tolk_state_reset_timings(tolk_state *s) {
    if (s) tolk_engine_reset_timings(s->engine);
}

tolk_ctx *tolk_state_ctx(tolk_state *st) {
    return st ? st->ctx : NULL;
}

const tolk_model *tolk_state_model(const tolk_state *st) {
    return st ? st->model : NULL;
}

tolk_engine *tolk_state_engine(tolk_state *st) {
    return st ? st->engine : NULL;
}

struct tolk_kvcache *tolk_state_kvcache(tolk_state *st) {
    return st ? tolk_engine_kvcache(st->engine) : NULL;
}

/* Run one submitted request to its end; its result or failure. */
static tolk_status run_one(tolk_state *st, tolk_status s, tolk_request *rq, tolk_result **out) {
    if (s != TOLK_OK) return tolk_fail(st->ctx, s, "%s", tolk_engine_last_error(st->engine));
    s = tolk_request_wait(rq);
    if (s == TOLK_OK) s = tolk_request_result(rq, out);
    if (s != TOLK_OK) tolk_fail(st->ctx, s, "%s", tolk_request_last_error(rq));
    tolk_request_free(rq);
    return s;
}

tolk_status tolk_transcribe(tolk_state *state, const float *samples, size_t n_samples,
                            const tolk_transcribe_params *params, tolk_result **out) {
    if (!out)
        return state ? tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "NULL out")
                     : TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_clear_error(state->ctx);
    if (!samples && n_samples)
        return tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "tolk_transcribe: NULL samples");
    if (n_samples == 0) return tolk_fail(state->ctx, TOLK_ERR_EMPTY, "tolk_transcribe: no samples");
    if (n_samples > (size_t)1 << 40)
        return tolk_fail(state->ctx, TOLK_ERR_NOMEM, "tolk_transcribe: absurd input length");
    tolk_request *rq = NULL;
    tolk_status s = tolk_engine_submit_samples(state->engine, samples, n_samples, params, &rq);
    return run_one(state, s, rq, out);
}

tolk_status tolk_transcribe_file(tolk_state *state, const char *path,
                                 const tolk_transcribe_params *params, tolk_result **out) {
    if (!out)
        return state ? tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "NULL out")
                     : TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_clear_error(state->ctx);
    if (!path)
        return tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "tolk_transcribe_file: NULL path");
    tolk_request *rq = NULL;
    tolk_status s = tolk_engine_submit_file(state->engine, path, params, &rq);
    return run_one(state, s, rq, out);
}

/*
 * models.c — the models a `tolk serve` process serves, each with its own
 * engine (scheduler and KV pool), and the choice of one by a request's
 * `model` field: OpenAI's API names models, never paths, so a request
 * picks one of the served names; with a single model any name (OpenAI's
 * "whisper-1" included) selects it, as speaches / faster-whisper-server
 * do for their default model.
 */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Requests decoding at once per model when --max_requests is not given.
 * On a GPU 16: a decoder step's extra rows are nearly free there. On the
 * CPU 2 per thread (2..16): the batched decoder products gain most from the
 * first few rows (tiny.en greedy 13.6 ms per token alone, 8.1 ms at 5-8
 * rows; bench/results/2026-12-06-engine), while every request admitted
 * beyond what the cores keep busy only slows the others down — with 16 in
 * flight on 2 cores all of them finished at the end (p50 latency 32.8 s
 * for 16 clients vs 13.7 s for faster-whisper-server, which decodes one
 * at a time); fewer finish in arrival order. */
static int default_slots(tolk_device device, int n_threads) {
    if (device == TOLK_DEVICE_CUDA) return 16;
    int k = 2 * n_threads;
    return k < 2 ? 2 : k > 16 ? 16 : k;
}

int srv_models_load(const srv_config *c, tolk_ctx *ctx, srv_models *out, char *err, size_t n) {
    memset(out, 0, sizeof *out);
    out->created = (int64_t)time(NULL);
    for (int i = 0; i < c->n_models; i++) {
        srv_model *m = &out->m[i];
        snprintf(m->name, sizeof m->name, "%s", c->models[i].name);
        m->path = strdup(c->models[i].path);
        if (!m->path) {
            snprintf(err, n, "out of memory");
            srv_models_free(out);
            return -1;
        }
        out->n = i + 1;
        tolk_model_params mp = tolk_model_default_params();
        mp.device = tolk_ctx_device(ctx);
        mp.compute_type = c->compute_type;
        mp.kv_cache = c->kv_cache;
        mp.gelu = c->gelu;
        tolk_status st = tolk_model_load(ctx, m->path, &mp, &m->model);
        if (st != TOLK_OK) {
            const char *e = tolk_ctx_last_error(ctx);
            snprintf(err, n, "%s: %s", m->path, e[0] ? e : tolk_strerror(st));
            srv_models_free(out);
            return -1;
        }
        tolk_model_desc d;
        tolk_model_describe(m->model, &d);
        m->multilingual = d.multilingual;
        tolk_engine_params ep = c->engine;
        ep.background = 1;
        if (ep.max_requests <= 0) ep.max_requests = default_slots(mp.device, tolk_ctx_threads(ctx));
        m->slots = ep.max_requests;
        st = tolk_engine_new(ctx, m->model, &ep, &m->engine);
        if (st != TOLK_OK) {
            const char *e = tolk_ctx_last_error(ctx);
            snprintf(err, n, "%s: cannot start the engine: %s", m->name,
                     e[0] ? e : tolk_strerror(st));
            srv_models_free(out);
            return -1;
        }
    }
    return 0;
}

void srv_models_free(srv_models *ms) {
    for (int i = 0; i < ms->n; i++) {
        tolk_engine_free(ms->m[i].engine);
        tolk_model_free(ms->m[i].model);
        free(ms->m[i].path);
    }
    memset(ms, 0, sizeof *ms);
}

srv_model *srv_models_pick(srv_models *ms, const char *name) {
    if (ms->n == 1) return &ms->m[0];
    if (!name) return NULL;
    for (int i = 0; i < ms->n; i++)
        if (!strcmp(ms->m[i].name, name)) return &ms->m[i];
    return NULL;
}

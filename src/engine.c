/*
 * engine.c — the scheduler (tolk.h's tolk_engine): many requests, one
 * model, one pool of decoder KV caches, and a tick that shares every
 * encoder batch and decoder step among the requests (continuous batching,
 * llama.cpp's batch + slot loop with Whisper's long-form semantics kept
 * per request by longform.c).
 *
 * A tick:
 *   1. admit waiting requests, first come first served, while the pool
 *      has a window slot and the sequences the head request needs (a
 *      request that does not fit yet blocks those behind it: no
 *      starvation); an idle pool that is too small is rebuilt larger
 *      (params.max_seqs = 0);
 *   2. ask every admitted request what it needs next (longform.h);
 *   3. encode the windows asked for, params.encoder_batch per pass, each
 *      into its request's window slot; those requests then ask again
 *      (normally for the prefill step of the window);
 *   4. one decoder step over the asked rows of as many requests as fit in
 *      max_batch sequences, starting after the last request served (round
 *      robin), and hand each request its rows' results;
 *   5. publish new final segments for polling; end finished requests and
 *      free their slots.
 * A request's sequences are numbered 0..n-1 by its search; the engine maps
 * them to pool slots and binds them to the request's window slot.
 *
 * Threads: submissions, pushes, cancellation and polling take the engine
 * mutex; the tick runs on one thread (the engine's own, or the caller's in
 * tolk_engine_step / tolk_engine_run / tolk_request_wait) and holds the
 * mutex only while it moves requests between lists and publishes, never
 * while it computes or calls a request's callbacks.
 */
#include "engine.h"
#include "longform.h"
#include "model.h"
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RQ_QUEUED = 0, RQ_ACTIVE = 1, RQ_DONE = 2 };

struct tolk_request {
    tolk_engine *e;
    tolk_ctx *ctx; /* the request's messages */
    tolk_transcribe_params params;
    char *s_language, *s_prompt, *s_prefix, *s_suppress, *s_clips; /* copied strings */
    char *s_prepend, *s_append;
    float *samples; /* owned copy (memory input) */
    tolk_live live; /* live input */
    int is_live;
    tolk_lf *lf;
    int state;  /* RQ_*, under the engine mutex */
    int cancel; /* under the engine mutex */
    int freed;  /* the caller freed the handle: the engine frees it at the end */
    tolk_status status;
    /* scheduling (tick thread only) */
    int *slots; /* [n_slots] pool sequences */
    int n_slots;
    int window; /* pool window slot, -1 */
    int have_ask;
    tolk_lf_ask ask;
    uint64_t order; /* submission order */
    /* published (under the engine mutex) */
    tolk_seg_rec *pub; /* copies of the final segments (words included) */
    int n_pub, cap_pub;
    int has_words;
    char language[8];
    float language_prob;
    tolk_result *result;
    double duration;
    float lang_probs[100]; /* language identification, in token order */
    int n_lang;
    struct tolk_vad_job *job; /* speech-only request standing for its pieces
                                 (vad_filter.c); never queued itself */
    /* a stream update (tolk_engine_submit_window) */
    int one_window;
    tolk_dec_result wres; /* its decode, taken at the end */
    int wres_skip;
    void (*done_fn)(void *user, tolk_request *r);
    void *done_user;
    struct tolk_request *next; /* in the queue or the active list */
};

struct tolk_engine {
    tolk_ctx *ctx; /* the engine's messages and threads */
    const tolk_model *model;
    const tolk_net *net;
    const tolk_asr *asr;
    tolk_engine_params p;
    int on_gpu;
    /* pool (tick thread) */
    tolk_kvcache *kv;
    int pool_seqs, pool_windows;
    uint64_t pool_bytes;
    char *seq_used; /* [pool_seqs] */
    char *win_used; /* [pool_windows] */
    int free_seqs, free_windows;
    /* lists (engine mutex) */
    pthread_mutex_t mu;
    pthread_cond_t work; /* something to do for the tick thread */
    pthread_cond_t done; /* a request ended */
    tolk_request *queue, *queue_tail;
    tolk_request *active;
    int n_queued, n_active;
    uint64_t n_submitted;
    pthread_mutex_t tick_mu; /* one tick at a time (threads driving an engine without its own) */
    /* thread */
    pthread_t thread;
    int has_thread, stop;
    /* step buffers (tick thread) */
    int *st_seqs, *st_ntok;
    const int **st_tok;
    float *st_logits;
    size_t st_cap_rows, st_cap_logits;
    int *sl_k, *sl_ts, *sl_off, *sl_pairs, *sl_idx; /* a mixed step's selections */
    float *sl_lp;
    size_t sl_cap_rows, sl_cap_out, sl_cap_pairs;
    tolk_request **served;
    size_t served_cap;
    uint64_t rr;      /* order after which the next step starts serving */
    uint64_t signals; /* counts broadcasts of `work` (no lost wake-ups) */
    int refs;         /* the caller's reference + one per request handle */
    int closed;       /* tolk_engine_free was called */
    /* numbers */
    tolk_timings timings;     /* tick thread only */
    tolk_timings timings_pub; /* a copy, under the mutex, after each tick */
    tolk_engine_stats stats;  /* under the mutex */
};

/* Wake whoever waits for work (the mutex is held). */
static void wake(tolk_engine *e) {
    e->signals++;
    pthread_cond_broadcast(&e->work);
}

static void engine_destroy(tolk_engine *e);

/* Drop one reference (the mutex is NOT held); the last one frees e. */
static void engine_unref(tolk_engine *e) {
    pthread_mutex_lock(&e->mu);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last) engine_destroy(e);
}

/* ---- parameters ------------------------------------------------------------ */

tolk_engine_params tolk_engine_default_params(void) {
    tolk_engine_params p;
    memset(&p, 0, sizeof p);
    p.max_batch = 0;
    p.max_requests = 0;
    p.max_seqs = 0;
    p.memory_budget = 0;
    p.encoder_batch = 0;
    p.background = 1;
    p.cuda_graphs = 1;
    p.device_select = -1;
    return p;
}

int tolk_engine_bucket_min(int b) {
    if (b <= 0) return 1;
    if (b >= TOLK_ENGINE_BUCKETS) return 0;
    return b == 1 ? 2 : (1 << (b - 1)) + 1; /* 1, 2, 3, 5, 9, ..., 257 */
}

static int bucket_of(int rows) {
    int b = 0;
    while (b + 1 < TOLK_ENGINE_BUCKETS && rows >= tolk_engine_bucket_min(b + 1))
        b++;
    return b;
}

/* ---- requests: helpers --------------------------------------------------- */

/* Free r's memory (not its engine reference). */
static void request_release(tolk_request *r) {
    if (!r) return;
    tolk_vad_job_free(r->job);
    tolk_lf_free(r->lf);
    free(r->samples);
    if (r->is_live) tolk_live_destroy(&r->live);
    for (int i = 0; i < r->n_pub; i++)
        tolk_seg_rec_clear(&r->pub[i]);
    free(r->pub);
    tolk_result_free(r->result);
    tolk_dec_result_clear(&r->wres);
    free(r->slots);
    free(r->s_language);
    free(r->s_prompt);
    free(r->s_prefix);
    free(r->s_suppress);
    free(r->s_clips);
    free(r->s_prepend);
    free(r->s_append);
    tolk_ctx_free(r->ctx);
    free(r);
}

/* Free a request handle that holds a reference on its engine. */
static void request_free_now(tolk_request *r) {
    tolk_engine *e = r->e;
    request_release(r);
    engine_unref(e);
}

static int dup_str(const char *s, char **out) {
    *out = NULL;
    if (!s) return 1;
    *out = strdup(s);
    return *out != NULL;
}

/* Sequence operations of a request's search, on the pool. */
static tolk_status rq_reset(void *user, int seq) {
    tolk_request *r = user;
    if (seq < 0 || seq >= r->n_slots)
        return tolk_fail(r->ctx, TOLK_ERR_INTERNAL, "engine: sequence %d of %d", seq, r->n_slots);
    return tolk_kvcache_reset(r->ctx, r->e->kv, r->slots[seq], r->window);
}
static tolk_status rq_copy(void *user, int dst, int src) {
    tolk_request *r = user;
    if (dst < 0 || src < 0 || dst >= r->n_slots || src >= r->n_slots)
        return tolk_fail(r->ctx, TOLK_ERR_INTERNAL, "engine: copy %d -> %d of %d", src, dst,
                         r->n_slots);
    return tolk_kvcache_copy(r->ctx, r->e->kv, r->slots[dst], r->slots[src]);
}

static int can_select(const tolk_engine *e) {
    if (e->p.device_select == 0 || e->p.device_select == 1) return e->p.device_select;
    return e->on_gpu;
}

/* ---- messages of the caller's calls ------------------------------------- */

/* Calls made on an engine from any thread (submit, run, step, a stream's
 * open) record their failure for the CALLING thread, like errno: threads
 * submitting at once never write one buffer, and the engine's own thread
 * (whose tick failures go to e->ctx and then to the requests) never races
 * with them. tolk_engine_last_error reads the calling thread's message when
 * its last call was on this engine, the engine's own message otherwise. */
static _Thread_local tolk_ctx t_caller;
static _Thread_local const tolk_engine *t_caller_engine;

/* The calling thread's message context for e, its message cleared; the
 * thread settings are e's (immutable after tolk_engine_new). */
static tolk_ctx *caller_ctx(const tolk_engine *e) {
    t_caller.params = e->ctx->params;
    t_caller.device = e->ctx->device;
    t_caller.n_threads = e->ctx->n_threads;
    t_caller.last_error[0] = '\0';
    t_caller_engine = e;
    return &t_caller;
}

/* Hand a failure of a tick driven on the calling thread (its message on
 * e->ctx, written under e->tick_mu) to the caller's context. */
static tolk_status caller_tick_fail(tolk_engine *e, tolk_status s) {
    if (s == TOLK_OK) return s;
    tolk_ctx *c = caller_ctx(e);
    pthread_mutex_lock(&e->tick_mu);
    tolk_fail(c, s, "%s", tolk_ctx_last_error(e->ctx));
    pthread_mutex_unlock(&e->tick_mu);
    return s;
}

/* ---- submission ---------------------------------------------------------- */

static tolk_status submit(tolk_engine *e, const tolk_lf_input *in_, const float *samples, size_t n,
                          int live, const tolk_transcribe_params *params,
                          void (*done)(void *, tolk_request *), void *done_user, tolk_ctx *ec,
                          tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (!ec) ec = caller_ctx(e); /* where the messages go */
    if (!out) return tolk_fail(ec, TOLK_ERR_INVALID_ARG, "engine: NULL out");
    *out = NULL;
    tolk_clear_error(ec);
    tolk_transcribe_params defaults = tolk_transcribe_default_params();
    const tolk_transcribe_params *p = params ? params : &defaults;
    tolk_request *r = calloc(1, sizeof *r);
    if (!r) return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory");
    r->e = e;
    r->window = -1;
    r->one_window = in_->one_window;
    r->done_fn = done;
    r->done_user = done_user;
    tolk_status s = tolk_ctx_new(&e->ctx->params, &r->ctx);
    if (s != TOLK_OK) {
        free(r);
        return tolk_fail(ec, s, "engine: cannot create a context");
    }
    r->params = *p;
    if (!dup_str(p->language, &r->s_language) || !dup_str(p->initial_prompt, &r->s_prompt) ||
        !dup_str(p->prefix, &r->s_prefix) || !dup_str(p->suppress_tokens, &r->s_suppress) ||
        !dup_str(p->clip_timestamps, &r->s_clips)) {
        request_release(r);
        return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory");
    }
    r->params.language = r->s_language;
    r->params.initial_prompt = r->s_prompt;
    r->params.prefix = r->s_prefix;
    r->params.suppress_tokens = r->s_suppress;
    r->params.clip_timestamps = r->s_clips;
    if (!dup_str(p->prepend_punctuations, &r->s_prepend) ||
        !dup_str(p->append_punctuations, &r->s_append)) {
        request_release(r);
        return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory");
    }
    r->params.prepend_punctuations = r->s_prepend;
    r->params.append_punctuations = r->s_append;
    r->has_words = p->word_timestamps != 0;
    tolk_lf_input in = *in_;
    if (samples) {
        if (n > ((size_t)1 << 40)) {
            request_release(r);
            return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: absurd input length");
        }
        r->samples = tolk_malloc_array(n ? n : 1, sizeof(float));
        if (!r->samples) {
            request_release(r);
            return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory for the samples");
        }
        memcpy(r->samples, samples, n * sizeof(float));
        in.samples = r->samples;
        in.n_samples = n;
    }
    if (live) {
        if (tolk_live_init(&r->live) != TOLK_OK) {
            request_release(r);
            return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory");
        }
        r->is_live = 1;
        in.live = &r->live;
    }
    /* the pool numbers of the sequences are set at admission; until then
     * the search cannot run (it only runs on the tick thread after it) */
    tolk_lf_env env = {.ctx = r->ctx,
                       .asr = e->asr,
                       .model = e->model,
                       .seqs = {.user = r,
                                .n_vocab = e->asr->hp.n_vocab,
                                .max_seqs = 64,
                                .reset = rq_reset,
                                .copy = rq_copy},
                       .can_select = can_select(e),
                       .timings = &e->timings};
    s = tolk_lf_new(&env, &r->params, &in, &r->lf);
    if (s != TOLK_OK) {
        tolk_fail(ec, s, "%s", tolk_ctx_last_error(r->ctx));
        request_release(r);
        return s;
    }
    r->n_slots = tolk_lf_max_seqs(r->lf);
    r->slots = tolk_calloc_array((size_t)r->n_slots, sizeof(int));
    if (!r->slots) {
        request_release(r);
        return tolk_fail(ec, TOLK_ERR_NOMEM, "engine: out of memory");
    }
    if (e->p.max_seqs > 0 && r->n_slots > e->p.max_seqs) {
        const int need = r->n_slots;
        request_release(r);
        return tolk_fail(ec, TOLK_ERR_INVALID_ARG,
                         "engine: the request needs %d decoder sequences, the pool has %d", need,
                         e->p.max_seqs);
    }
    pthread_mutex_lock(&e->mu);
    if (e->closed) {
        pthread_mutex_unlock(&e->mu);
        request_release(r);
        return tolk_fail(ec, TOLK_ERR_INVALID_ARG, "engine: it is being freed");
    }
    e->refs++;
    r->order = ++e->n_submitted;
    r->state = RQ_QUEUED;
    if (e->queue_tail)
        e->queue_tail->next = r;
    else
        e->queue = r;
    e->queue_tail = r;
    e->n_queued++;
    e->stats.submitted++;
    wake(e);
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return TOLK_OK;
}

tolk_status tolk_engine_submit_file(tolk_engine *e, const char *path,
                                    const tolk_transcribe_params *params, tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (!path) return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: NULL path");
    if (strcmp(path, "-") == 0 || (params && params->vad)) {
        /* standard input cannot be read twice, the speech filter needs the
         * whole input: decode it whole */
        float *x = NULL;
        size_t n = 0;
        tolk_lf_input in = {.kind = TOLK_LF_MEMORY};
        tolk_status s = tolk_audio_load_facts(caller_ctx(e), path, &x, &n, &in.facts);
        if (s != TOLK_OK) return s;
        if (params && params->vad)
            s = tolk_engine_submit_samples(e, x, n, params, out);
        else
            s = submit(e, &in, x, n, 0, params, NULL, NULL, NULL, out);
        tolk_free(x);
        return s;
    }
    tolk_lf_input in = {.kind = TOLK_LF_FILE, .path = path};
    return submit(e, &in, NULL, 0, 0, params, NULL, NULL, NULL, out);
}

tolk_status tolk_engine_submit_detect(tolk_engine *e, const float *samples, size_t n_samples,
                                      tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (!samples && n_samples)
        return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: NULL samples");
    if (n_samples == 0) return tolk_fail(caller_ctx(e), TOLK_ERR_EMPTY, "engine: no samples");
    tolk_lf_input in = {.kind = TOLK_LF_MEMORY, .detect_only = 1};
    return submit(e, &in, samples, n_samples, 0, NULL, NULL, NULL, NULL, out);
}

int tolk_request_language_probs(const tolk_request *r, float *probs) {
    if (!r || r->state != RQ_DONE) return 0;
    memcpy(probs, r->lang_probs, (size_t)r->n_lang * sizeof(float));
    return r->n_lang;
}

tolk_status tolk_engine_submit_samples(tolk_engine *e, const float *samples, size_t n_samples,
                                       const tolk_transcribe_params *params, tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (!samples && n_samples)
        return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: NULL samples");
    if (n_samples == 0) return tolk_fail(caller_ctx(e), TOLK_ERR_EMPTY, "engine: no samples");
    if (params && params->vad) {
        if (!out) return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: NULL out");
        return tolk_vad_job_submit(e, samples, n_samples, params, out);
    }
    tolk_lf_input in = {.kind = TOLK_LF_MEMORY};
    return submit(e, &in, samples, n_samples, 0, params, NULL, NULL, NULL, out);
}

tolk_status tolk_engine_submit_live(tolk_engine *e, const tolk_transcribe_params *params,
                                    tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (params && params->vad)
        return tolk_fail(caller_ctx(e), TOLK_ERR_UNSUPPORTED,
                         "engine: vad_filter needs the whole input; a live input filters its "
                         "speech with the streaming API");
    tolk_lf_input in = {.kind = TOLK_LF_LIVE};
    return submit(e, &in, NULL, 0, 1, params, NULL, NULL, NULL, out);
}

tolk_status tolk_engine_submit_window(tolk_engine *e, const float *samples, size_t n_samples,
                                      const tolk_transcribe_params *params,
                                      const tolk_lf_input *win,
                                      void (*done)(void *user, tolk_request *r), void *user,
                                      tolk_ctx *err, tolk_request **out) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    tolk_ctx *ec = err ? err : caller_ctx(e);
    if (!win) return tolk_fail(ec, TOLK_ERR_INVALID_ARG, "engine: NULL window options");
    if (!samples && n_samples) return tolk_fail(ec, TOLK_ERR_INVALID_ARG, "engine: NULL samples");
    if (n_samples == 0) return tolk_fail(ec, TOLK_ERR_EMPTY, "engine: no samples");
    if (n_samples > TOLK_N_SAMPLES)
        return tolk_fail(ec, TOLK_ERR_INVALID_ARG,
                         "engine: a window holds at most %d samples, not %zu", TOLK_N_SAMPLES,
                         n_samples);
    tolk_lf_input in = *win;
    in.kind = TOLK_LF_MEMORY;
    in.one_window = 1;
    in.detect_only = 0;
    in.path = NULL;
    in.live = NULL;
    return submit(e, &in, samples, n_samples, 0, params, done, user, ec, out);
}

tolk_status tolk_request_window(tolk_request *r, tolk_dec_result *res, int *skipped, char *lang) {
    if (!res || !skipped || !lang) return TOLK_ERR_INVALID_ARG;
    memset(res, 0, sizeof *res);
    *skipped = 0;
    lang[0] = '\0';
    if (!r) return TOLK_ERR_INVALID_ARG;
    pthread_mutex_lock(&r->e->mu);
    tolk_status s = TOLK_OK;
    if (!r->one_window)
        s = tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: not a window request");
    else if (r->state != RQ_DONE)
        s = tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: still running");
    else if (r->status != TOLK_OK)
        s = r->status;
    else if (!r->wres.tokens)
        s = tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: the window result was already taken");
    if (s == TOLK_OK) {
        *res = r->wres;
        memset(&r->wres, 0, sizeof r->wres);
        *skipped = r->wres_skip;
        memcpy(lang, r->language, sizeof r->language);
    }
    pthread_mutex_unlock(&r->e->mu);
    return s;
}

tolk_ctx *tolk_engine_caller_ctx(const tolk_engine *e) {
    return e ? caller_ctx(e) : NULL;
}

int tolk_engine_has_thread(const tolk_engine *e) {
    return e && e->has_thread;
}

const tolk_asr *tolk_engine_asr(const tolk_engine *e) {
    return e ? e->asr : NULL;
}

tolk_status tolk_request_new_job(tolk_engine *e, struct tolk_vad_job *job, tolk_request **out) {
    tolk_request *r = calloc(1, sizeof *r);
    if (!r) return tolk_fail(caller_ctx(e), TOLK_ERR_NOMEM, "engine: out of memory");
    r->e = e;
    r->window = -1;
    r->state = RQ_DONE; /* never queued: its pieces are */
    if (tolk_ctx_new(&e->ctx->params, &r->ctx) != TOLK_OK) {
        free(r);
        return tolk_fail(caller_ctx(e), TOLK_ERR_NOMEM, "engine: cannot create a context");
    }
    r->job = job;
    tolk_vad_job_bind(job, r->ctx);
    pthread_mutex_lock(&e->mu);
    e->refs++;
    e->stats.submitted++;
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return TOLK_OK;
}

const char *tolk_engine_language_code(const tolk_engine *e, int i) {
    if (!e || i < 0 || i >= e->asr->dt.n_languages) return NULL;
    return tolk_asr_lang_code(e->asr, e->asr->dt.lang_ids[i]);
}

tolk_status tolk_request_push(tolk_request *r, const float *samples, size_t n) {
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (!r->is_live) return tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: not a live input");
    if (!samples && n) return tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: NULL samples");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(samples[i]))
            return tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG,
                             "request: sample %zu of the piece is not a finite number", i);
    tolk_status s = tolk_live_push(&r->live, r->ctx, samples, n);
    if (s == TOLK_OK) {
        pthread_mutex_lock(&r->e->mu);
        wake(r->e);
        pthread_mutex_unlock(&r->e->mu);
    }
    return s;
}

tolk_status tolk_request_close(tolk_request *r) {
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (!r->is_live) return tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: not a live input");
    tolk_live_close(&r->live);
    pthread_mutex_lock(&r->e->mu);
    wake(r->e);
    pthread_mutex_unlock(&r->e->mu);
    return TOLK_OK;
}

void tolk_request_cancel(tolk_request *r) {
    if (!r) return;
    if (r->job) {
        tolk_vad_job_cancel(r->job);
        return;
    }
    pthread_mutex_lock(&r->e->mu);
    r->cancel = 1;
    wake(r->e);
    pthread_mutex_unlock(&r->e->mu);
}

int tolk_request_done(const tolk_request *r) {
    if (!r) return 1;
    if (r->job) return tolk_vad_job_done(r->job);
    pthread_mutex_lock(&r->e->mu);
    int d = r->state == RQ_DONE;
    pthread_mutex_unlock(&r->e->mu);
    return d;
}

tolk_status tolk_request_status(const tolk_request *r) {
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (r->job) return tolk_vad_job_status(r->job);
    pthread_mutex_lock(&r->e->mu);
    tolk_status s = r->status;
    pthread_mutex_unlock(&r->e->mu);
    return s;
}

const char *tolk_request_last_error(const tolk_request *r) {
    if (r && r->job && !tolk_ctx_last_error(r->ctx)[0]) return tolk_vad_job_error(r->job);
    return r ? tolk_ctx_last_error(r->ctx) : "";
}

int tolk_request_n_segments(const tolk_request *r) {
    if (!r) return 0;
    if (r->job) return tolk_vad_job_n_segments(r->job);
    pthread_mutex_lock(&r->e->mu);
    int n = r->n_pub;
    pthread_mutex_unlock(&r->e->mu);
    return n;
}

tolk_status tolk_request_segments(tolk_request *r, int from, tolk_result **out) {
    if (!out) return TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (r->job) return tolk_vad_job_segments(r->job, from, out);
    tolk_result *res = tolk_result_new();
    if (!res) return TOLK_ERR_NOMEM;
    tolk_status s = TOLK_OK;
    pthread_mutex_lock(&r->e->mu);
    if (from < 0) from = 0;
    int n = from < r->n_pub ? r->n_pub - from : 0;
    for (int i = 0; i < n && s == TOLK_OK; i++) {
        tolk_seg_rec rec;
        if (!tolk_seg_rec_copy(&rec, &r->pub[from + i]) || !tolk_result_push(res, &rec)) {
            tolk_seg_rec_clear(&rec);
            s = TOLK_ERR_NOMEM;
        }
    }
    tolk_result_set_language(res, r->language);
    res->language_prob = r->language_prob;
    res->duration = r->duration;
    res->has_words = r->has_words;
    pthread_mutex_unlock(&r->e->mu);
    if (s != TOLK_OK) {
        tolk_result_free(res);
        return tolk_fail(r->ctx, s, "request: out of memory");
    }
    *out = res;
    return TOLK_OK;
}

tolk_status tolk_request_result(tolk_request *r, tolk_result **out) {
    if (!out) return TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (r->job) return tolk_vad_job_result(r->job, out);
    pthread_mutex_lock(&r->e->mu);
    tolk_status s = TOLK_OK;
    if (r->state != RQ_DONE) {
        s = tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: still running");
    } else if (r->status != TOLK_OK) {
        s = r->status;
    } else if (!r->result) {
        s = tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG, "request: the result was already taken");
    } else {
        *out = r->result;
        r->result = NULL;
    }
    pthread_mutex_unlock(&r->e->mu);
    return s;
}

void tolk_request_free(tolk_request *r) {
    if (!r) return;
    if (r->job) { /* its pieces end on their own (cancelled) */
        tolk_vad_job_cancel(r->job);
        request_free_now(r);
        return;
    }
    tolk_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    if (r->state != RQ_DONE) {
        r->cancel = 1;
        r->freed = 1; /* the tick thread frees it when it ends */
        wake(e);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    pthread_mutex_unlock(&e->mu);
    request_free_now(r);
}

/* ---- the pool ------------------------------------------------------------ */

/* Bytes of one decoder sequence's self-attention cache (float32) and one
 * window's cross-attention K/V (float32, or float16: tolk_net_kv_f16). */
static uint64_t seq_bytes(const tolk_hparams *h) {
    return (uint64_t)h->n_text_layer * (uint64_t)h->n_text_ctx * 2u * (uint64_t)h->n_text_state *
           4u;
}
static uint64_t win_bytes_of(const tolk_engine *e) {
    const tolk_hparams *h = &e->asr->hp;
    return (uint64_t)h->n_text_layer * (uint64_t)h->n_audio_ctx * 2u * (uint64_t)h->n_text_state *
           (tolk_net_kv_f16(e->net) ? 2u : 4u);
}

/* (Re)build the pool with n_seqs sequences and n_windows windows (nothing
 * admitted). */
static tolk_status pool_build(tolk_engine *e, int n_seqs, int n_windows) {
    const tolk_hparams *h = &e->asr->hp;
    if (e->p.memory_budget > 0) {
        uint64_t need = (uint64_t)n_seqs * seq_bytes(h) + (uint64_t)n_windows * win_bytes_of(e);
        if (need > e->p.memory_budget)
            return tolk_fail(e->ctx, TOLK_ERR_NOMEM,
                             "engine: %d sequences and %d windows need %llu bytes, the budget is "
                             "%llu",
                             n_seqs, n_windows, (unsigned long long)need,
                             (unsigned long long)e->p.memory_budget);
    }
    tolk_kvcache *kv = NULL;
    tolk_status s = tolk_kvcache_new(e->ctx, e->net, n_seqs, h->n_text_ctx, n_windows, &kv);
    if (s != TOLK_OK) return s;
    char *su = calloc((size_t)n_seqs, 1), *wu = calloc((size_t)n_windows, 1);
    if (!su || !wu) {
        free(su);
        free(wu);
        tolk_kvcache_free(kv);
        return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
    }
    tolk_kvcache_set_graphs(kv, e->p.cuda_graphs);
    tolk_kvcache_free(e->kv);
    free(e->seq_used);
    free(e->win_used);
    e->kv = kv;
    e->seq_used = su;
    e->win_used = wu;
    e->pool_seqs = e->free_seqs = n_seqs;
    e->pool_windows = e->free_windows = n_windows;
    e->pool_bytes = (uint64_t)n_seqs * seq_bytes(h) + (uint64_t)n_windows * win_bytes_of(e);
    pthread_mutex_lock(&e->mu);
    e->stats.pool_seqs = n_seqs;
    e->stats.pool_windows = n_windows;
    e->stats.pool_bytes = e->pool_bytes;
    pthread_mutex_unlock(&e->mu);
    return TOLK_OK;
}

/* The sizes the pool should have when the largest request needs `need`
 * sequences: the configured ones; or what the memory budget allows (a
 * window slot per request first, at least `need` sequences each); or, with
 * neither, `need` sequences for each of max_requests requests (grown,
 * never shrunk). */
static void pool_want(const tolk_engine *e, int need, int *seqs, int *wins) {
    const tolk_hparams *h = &e->asr->hp;
    const uint64_t sb = seq_bytes(h), wb = win_bytes_of(e), budget = e->p.memory_budget;
    *wins = e->p.max_requests;
    if (e->p.max_seqs > 0) {
        *seqs = e->p.max_seqs;
    } else if (budget > 0) {
        while (*wins > 1 && (uint64_t)*wins * (wb + (uint64_t)need * sb) > budget)
            (*wins)--;
        uint64_t left = budget > (uint64_t)*wins * wb ? budget - (uint64_t)*wins * wb : 0;
        uint64_t n = left / sb;
        if (n > 65536) n = 65536;
        *seqs = n < (uint64_t)need ? need : (int)n;
    } else {
        long want = (long)*wins * need;
        if (want > 65536) want = 65536;
        *seqs = e->pool_seqs > want ? e->pool_seqs : (int)want;
    }
}

static int pool_take_seq(tolk_engine *e) {
    for (int i = 0; i < e->pool_seqs; i++)
        if (!e->seq_used[i]) {
            e->seq_used[i] = 1;
            e->free_seqs--;
            return i;
        }
    return -1;
}

static int pool_take_window(tolk_engine *e) {
    for (int i = 0; i < e->pool_windows; i++)
        if (!e->win_used[i]) {
            e->win_used[i] = 1;
            e->free_windows--;
            return i;
        }
    return -1;
}

static void pool_release(tolk_engine *e, tolk_request *r) {
    if (r->window >= 0) {
        e->win_used[r->window] = 0;
        e->free_windows++;
        r->window = -1;
    }
    for (int i = 0; i < r->n_slots; i++)
        if (r->slots[i] >= 0 && e->seq_used && r->slots[i] < e->pool_seqs &&
            e->seq_used[r->slots[i]]) {
            tolk_kvcache_reset(e->ctx, e->kv, r->slots[i], -1);
            e->seq_used[r->slots[i]] = 0;
            e->free_seqs++;
            r->slots[i] = -1;
        }
}

/* ---- the tick ------------------------------------------------------------ */

/* Copy segs [r->n_pub, n) into r's published list (the mutex is held). */
static void publish_locked(tolk_request *r, const tolk_seg_rec *const *segs, int n) {
    if (r->cap_pub < n) {
        int cap = r->cap_pub ? r->cap_pub : 16;
        while (cap < n)
            cap *= 2;
        tolk_seg_rec *v = realloc(r->pub, (size_t)cap * sizeof *v);
        if (!v) return; /* polling sees fewer; the result keeps them all */
        r->pub = v;
        r->cap_pub = cap;
    }
    while (r->n_pub < n && tolk_seg_rec_copy(&r->pub[r->n_pub], segs[r->n_pub]))
        r->n_pub++;
}

/* End request r (active or queued) with status s: publish, move it off the
 * lists, wake waiters. Called without the mutex; takes it. */
static void finish(tolk_engine *e, tolk_request *r, tolk_status s) {
    tolk_result *res = NULL;
    tolk_dec_result wres;
    int wskip = 0;
    memset(&wres, 0, sizeof wres);
    if (s == TOLK_OK && r->one_window) s = tolk_lf_window_result(r->lf, &wres, &wskip);
    if (s == TOLK_OK) s = tolk_lf_take_result(r->lf, &res);
    if (s != TOLK_OK) tolk_dec_result_clear(&wres);
    /* the search's state goes before the request is published as done:
     * from then on its owner may free it */
    if (r->lf) {
        tolk_lf_language_probs(r->lf, r->lang_probs, &r->n_lang);
        tolk_lf_free(r->lf);
        r->lf = NULL;
    }
    if (r->state == RQ_ACTIVE) pool_release(e, r);
    pthread_mutex_lock(&e->mu);
    /* unlink */
    tolk_request **pp = r->state == RQ_ACTIVE ? &e->active : &e->queue, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) *pp = r->next;
    if (r->state == RQ_QUEUED) {
        if (e->queue_tail == r) e->queue_tail = prev;
        e->n_queued--;
    } else {
        e->n_active--;
    }
    r->next = NULL;
    r->status = s;
    r->result = res;
    if (res && res->n_segs > r->n_pub) { /* the last window's, made in the final call */
        const tolk_seg_rec **v = malloc((size_t)res->n_segs * sizeof *v);
        for (int i = 0; v && i < res->n_segs; i++)
            v[i] = &res->segs[i];
        if (v) publish_locked(r, v, res->n_segs);
        free(v);
    }
    r->wres = wres;
    r->wres_skip = wskip;
    if (res) {
        memcpy(r->language, res->language, sizeof r->language);
        r->language_prob = res->language_prob;
        r->duration = res->duration;
        e->stats.audio_s_done += res->duration;
    }
    r->state = RQ_DONE;
    if (s == TOLK_OK)
        e->stats.completed++;
    else if (s == TOLK_ERR_CANCELLED)
        e->stats.cancelled++;
    else
        e->stats.failed++;
    int freed = r->freed;
    void (*done)(void *, tolk_request *) = r->done_fn;
    void *done_user = r->done_user;
    pthread_cond_broadcast(&e->done);
    wake(e);
    pthread_mutex_unlock(&e->mu);
    if (freed)
        request_free_now(r);
    else if (done)
        done(done_user, r); /* may free r */
}

/* Move the new final segments of r's search into its published list. */
static void publish(tolk_engine *e, tolk_request *r) {
    int n = tolk_lf_n_segments(r->lf);
    if (n <= r->n_pub) return;
    const tolk_seg_rec **v = malloc((size_t)n * sizeof *v);
    if (!v) return;
    for (int i = 0; i < n; i++)
        v[i] = tolk_lf_segment(r->lf, i);
    pthread_mutex_lock(&e->mu);
    publish_locked(r, v, n);
    pthread_mutex_unlock(&e->mu);
    free(v);
}

/* Admit queued requests that fit (FIFO: the head waits for room). Cancelled
 * queued requests end here. Returns a failure of the pool only. */
static tolk_status admit(tolk_engine *e) {
    for (;;) {
        pthread_mutex_lock(&e->mu);
        tolk_request *r = e->queue;
        int cancelled = r && r->cancel;
        pthread_mutex_unlock(&e->mu);
        if (!r) return TOLK_OK;
        if (cancelled) {
            finish(e, r, tolk_fail(r->ctx, TOLK_ERR_CANCELLED, "request: cancelled"));
            continue;
        }
        if (e->n_active >= e->p.max_requests) return TOLK_OK;
        int need = r->n_slots;
        if (!e->kv || (e->n_active == 0 && e->pool_seqs < need)) {
            int seqs, wins;
            pool_want(e, need, &seqs, &wins);
            tolk_status s = pool_build(e, seqs, wins);
            if (s != TOLK_OK) {
                finish(e, r, tolk_fail(r->ctx, s, "%s", tolk_ctx_last_error(e->ctx)));
                continue;
            }
        }
        if (need > e->pool_seqs) {
            /* the pool is rebuilt (grown) only when nothing runs: the head
             * waits for that; an idle pool that still cannot hold it fails */
            if (e->n_active > 0) return TOLK_OK;
            finish(e, r,
                   tolk_fail(r->ctx, TOLK_ERR_INVALID_ARG,
                             "engine: the request needs %d decoder sequences, the pool has %d",
                             need, e->pool_seqs));
            continue;
        }
        if (e->free_seqs < need || e->free_windows < 1) return TOLK_OK;
        r->window = pool_take_window(e);
        for (int i = 0; i < need; i++)
            r->slots[i] = pool_take_seq(e);
        pthread_mutex_lock(&e->mu);
        e->queue = r->next;
        if (e->queue_tail == r) e->queue_tail = NULL;
        e->n_queued--;
        r->next = e->active;
        e->active = r;
        e->n_active++;
        r->state = RQ_ACTIVE;
        pthread_mutex_unlock(&e->mu);
    }
}

/* Ask r what it needs, ending it when it is done or failed. Returns 1 when
 * r is still active afterwards. */
static int ask_request(tolk_engine *e, tolk_request *r) {
    if (r->have_ask) return 1;
    tolk_status s = tolk_lf_next(r->lf, &r->ask);
    publish(e, r);
    if (s != TOLK_OK) {
        finish(e, r, s);
        return 0;
    }
    if (r->ask.need == TOLK_LF_DONE) {
        finish(e, r, TOLK_OK);
        return 0;
    }
    r->have_ask = r->ask.need != TOLK_LF_AUDIO;
    return 1;
}

/* A snapshot of the active list (the tick may end requests while it walks). */
static int active_snapshot(tolk_engine *e, tolk_request ***out) {
    pthread_mutex_lock(&e->mu);
    int n = e->n_active;
    if ((size_t)n > e->served_cap) {
        size_t cap = (size_t)n * 2;
        tolk_request **v = realloc(e->served, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&e->mu);
            return -1;
        }
        e->served = v;
        e->served_cap = cap;
    }
    int k = 0;
    for (tolk_request *r = e->active; r && k < n; r = r->next)
        e->served[k++] = r;
    pthread_mutex_unlock(&e->mu);
    /* oldest first: the list is newest first */
    for (int i = 0; i < k / 2; i++) {
        tolk_request *t = e->served[i];
        e->served[i] = e->served[k - 1 - i];
        e->served[k - 1 - i] = t;
    }
    *out = e->served;
    return k;
}

static tolk_status grow_step(tolk_engine *e, size_t rows) {
    if (rows > e->st_cap_rows) {
        size_t cap = rows * 2;
        int *a = realloc(e->st_seqs, cap * sizeof(int));
        if (a) e->st_seqs = a;
        int *b = realloc(e->st_ntok, cap * sizeof(int));
        if (b) e->st_ntok = b;
        const int **c = realloc(e->st_tok, cap * sizeof(int *));
        if (c) e->st_tok = c;
        if (!a || !b || !c) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
        e->st_cap_rows = cap;
    }
    size_t want = rows * (size_t)e->asr->hp.n_vocab;
    if (want > e->st_cap_logits) {
        float *l = realloc(e->st_logits, want * sizeof(float));
        if (!l) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory for logits");
        e->st_logits = l;
        e->st_cap_logits = want;
    }
    return TOLK_OK;
}

/* Encode every asked window (encoder_batch per pass). */
static void encode_all(tolk_engine *e, tolk_request **act, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (act[i] && act[i]->have_ask && act[i]->ask.need == TOLK_LF_ENCODE) k++;
    if (k == 0) return;
    int *wins = malloc((size_t)k * sizeof(int));
    int *actx = malloc((size_t)k * sizeof(int));
    const float **mels = malloc((size_t)k * sizeof(float *));
    tolk_request **who = malloc((size_t)k * sizeof(tolk_request *));
    if (!wins || !actx || !mels || !who) {
        free(wins), free(actx), free(mels), free(who);
        for (int i = 0; i < n; i++)
            if (act[i] && act[i]->have_ask && act[i]->ask.need == TOLK_LF_ENCODE) {
                finish(e, act[i], tolk_fail(act[i]->ctx, TOLK_ERR_NOMEM, "engine: out of memory"));
                act[i] = NULL;
            }
        return;
    }
    k = 0;
    for (int i = 0; i < n; i++)
        if (act[i] && act[i]->have_ask && act[i]->ask.need == TOLK_LF_ENCODE) {
            wins[k] = act[i]->window;
            mels[k] = act[i]->ask.mel;
            actx[k] = act[i]->ask.audio_ctx > 0 ? act[i]->ask.audio_ctx : e->asr->hp.n_audio_ctx;
            who[k++] = act[i];
        }
    double t0 = tolk_time_now();
    tolk_status s = tolk_kvcache_encode_windows_ctx(e->ctx, e->net, e->kv, wins, mels, actx, k,
                                                    e->p.encoder_batch);
    tolk_timings_since(&e->timings, TOLK_STAGE_ENCODER, t0);
    pthread_mutex_lock(&e->mu);
    e->stats.encoder_passes += (k + e->p.encoder_batch - 1) / e->p.encoder_batch;
    e->stats.windows_encoded += k;
    pthread_mutex_unlock(&e->mu);
    for (int j = 0; j < k; j++) {
        tolk_request *r = who[j];
        r->have_ask = 0;
        tolk_status rs = s != TOLK_OK ? tolk_fail(r->ctx, s, "%s", tolk_ctx_last_error(e->ctx))
                                      : tolk_lf_encoded(r->lf);
        if (rs != TOLK_OK) {
            finish(e, r, rs);
            for (int i = 0; i < n; i++)
                if (act[i] == r) act[i] = NULL;
            continue;
        }
        if (!ask_request(e, r))
            for (int i = 0; i < n; i++)
                if (act[i] == r) act[i] = NULL;
    }
    free(wins), free(actx), free(mels), free(who);
}

/* Run every asked alignment pass (word timestamps): one decoder pass per
 * request over its window's text against its window slot. */
static void align_all(tolk_engine *e, tolk_request **act, int n) {
    for (int i = 0; i < n; i++) {
        tolk_request *r = act[i];
        if (!r || !r->have_ask || r->ask.need != TOLK_LF_ALIGN) continue;
        const tolk_words_align *a = &r->ask.align;
        double t0 = tolk_time_now();
        tolk_status s = tolk_net_align(e->ctx, e->net, e->kv, r->window, a->tokens, a->n_tokens,
                                       a->heads, a->n_heads, a->n_frames, a->weights, a->prob_row0,
                                       a->n_probs, a->prob_vocab, a->probs);
        tolk_timings_since(&e->timings, TOLK_STAGE_DECODER, t0);
        r->have_ask = 0;
        tolk_status rs = s != TOLK_OK ? tolk_fail(r->ctx, s, "%s", tolk_ctx_last_error(e->ctx))
                                      : tolk_lf_aligned(r->lf);
        if (rs != TOLK_OK) {
            finish(e, r, rs);
            act[i] = NULL;
            continue;
        }
        if (!ask_request(e, r)) act[i] = NULL;
    }
}

/* Step buffers for rows rows, kmax selections each and pairs mask pairs. */
static tolk_status grow_select(tolk_engine *e, size_t rows, size_t kmax, size_t pairs) {
    if (rows + 1 > e->sl_cap_rows) {
        size_t cap = (rows + 1) * 2;
        int *a = realloc(e->sl_k, cap * sizeof(int));
        if (a) e->sl_k = a;
        int *b = realloc(e->sl_ts, cap * sizeof(int));
        if (b) e->sl_ts = b;
        int *c = realloc(e->sl_off, cap * sizeof(int));
        if (c) e->sl_off = c;
        if (!a || !b || !c) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
        e->sl_cap_rows = cap;
    }
    if (rows * kmax > e->sl_cap_out) {
        size_t cap = rows * kmax * 2;
        int *a = realloc(e->sl_idx, cap * sizeof(int));
        if (a) e->sl_idx = a;
        float *b = realloc(e->sl_lp, cap * sizeof(float));
        if (b) e->sl_lp = b;
        if (!a || !b) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
        e->sl_cap_out = cap;
    }
    if (2 * pairs > e->sl_cap_pairs) {
        size_t cap = 4 * pairs;
        int *a = realloc(e->sl_pairs, cap * sizeof(int));
        if (!a) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
        e->sl_pairs = a;
        e->sl_cap_pairs = cap;
    }
    return TOLK_OK;
}

/* Run the step over the gathered rows: logits for every row, or (when
 * some request asked for selections) one mixed step. */
static tolk_status run_rows(tolk_engine *e, tolk_request **sel, int nreq, int rows, int *kmax) {
    *kmax = 0;
    size_t pairs = 0;
    for (int q = 0; q < nreq; q++) {
        const tolk_dec_ask *a = &sel[q]->ask.step;
        if (a->k > *kmax) *kmax = a->k;
        if (a->k > 0) pairs += (size_t)a->sel.range_off[a->n_seqs];
    }
    if (*kmax == 0)
        return tolk_net_decode(e->ctx, e->net, e->kv, e->st_seqs, rows, e->st_tok, e->st_ntok,
                               e->st_logits);
    tolk_status s = grow_select(e, (size_t)rows, (size_t)*kmax, pairs);
    if (s != TOLK_OK) return s;
    int row = 0, p = 0;
    e->sl_off[0] = 0;
    for (int q = 0; q < nreq; q++) {
        const tolk_dec_ask *a = &sel[q]->ask.step;
        for (int i = 0; i < a->n_seqs; i++, row++) {
            e->sl_k[row] = a->k;
            e->sl_ts[row] = a->k > 0 ? a->sel.ts_begin : 0;
            if (a->k > 0)
                for (int j = a->sel.range_off[i]; j < a->sel.range_off[i + 1]; j++, p++) {
                    e->sl_pairs[2 * p] = a->sel.ranges[2 * j];
                    e->sl_pairs[2 * p + 1] = a->sel.ranges[2 * j + 1];
                }
            e->sl_off[row + 1] = p;
        }
    }
    const tolk_net_select ns = {.range_off = e->sl_off,
                                .ranges = e->sl_pairs,
                                .ts_begin = 0,
                                .k = *kmax,
                                .row_ts = e->sl_ts,
                                .row_k = e->sl_k};
    return tolk_net_decode_mixed(e->ctx, e->net, e->kv, e->st_seqs, rows, e->st_tok, e->st_ntok,
                                 &ns, e->st_logits, e->sl_idx, e->sl_lp);
}

/* Copy row `row` onward of the step's results into the ask of r. */
static void scatter(tolk_engine *e, const tolk_dec_ask *a, int row, int kmax) {
    const size_t nv = (size_t)e->asr->hp.n_vocab;
    if (a->k == 0) {
        memcpy(a->logits, e->st_logits + (size_t)row * nv, (size_t)a->n_seqs * nv * sizeof(float));
        return;
    }
    for (int i = 0; i < a->n_seqs; i++) {
        memcpy(a->idx + (size_t)i * a->k, e->sl_idx + (size_t)(row + i) * kmax,
               (size_t)a->k * sizeof(int));
        memcpy(a->lp + (size_t)i * a->k, e->sl_lp + (size_t)(row + i) * kmax,
               (size_t)a->k * sizeof(float));
    }
}

/* One decoder step over the asked rows of as many requests as fit. */
static void step_all(tolk_engine *e, tolk_request **act, int n) {
    /* requests in round-robin order, starting after the last one served */
    int start = 0;
    for (int i = 0; i < n; i++)
        if (act[i] && act[i]->order > e->rr) {
            start = i;
            break;
        }
    int rows = 0, nreq = 0;
    tolk_request **sel = malloc((size_t)(n > 0 ? n : 1) * sizeof *sel);
    if (!sel) return;
    for (int j = 0; j < n; j++) {
        tolk_request *r = act[(start + j) % n];
        if (!r || !r->have_ask || r->ask.need != TOLK_LF_STEP) continue;
        int m = r->ask.step.n_seqs;
        if (rows > 0 && rows + m > e->p.max_batch) continue;
        sel[nreq++] = r;
        rows += m;
    }
    if (nreq == 0) {
        free(sel);
        return;
    }
    tolk_status s = grow_step(e, (size_t)rows);
    int row = 0;
    for (int q = 0; q < nreq && s == TOLK_OK; q++) {
        const tolk_dec_ask *a = &sel[q]->ask.step;
        for (int i = 0; i < a->n_seqs; i++, row++) {
            e->st_seqs[row] = sel[q]->slots[a->seqs[i]];
            e->st_tok[row] = a->tokens[i];
            e->st_ntok[row] = a->n_tokens[i];
        }
    }
    double t0 = tolk_time_now();
    int kmax = 0;
    if (s == TOLK_OK) s = run_rows(e, sel, nreq, rows, &kmax);
    double dt = tolk_time_now() - t0;
    tolk_timings_add(&e->timings, TOLK_STAGE_DECODER, dt);
    tolk_timings_count(&e->timings, 0, 0, 1);
    pthread_mutex_lock(&e->mu);
    int b = bucket_of(rows);
    e->stats.steps++;
    e->stats.rows += rows;
    e->stats.steps_by_batch[b]++;
    e->stats.rows_by_batch[b] += rows;
    e->stats.step_s_by_batch[b] += dt;
    pthread_mutex_unlock(&e->mu);
    row = 0;
    for (int q = 0; q < nreq; q++) {
        tolk_request *r = sel[q];
        const tolk_dec_ask *a = &r->ask.step;
        tolk_status rs = s;
        if (rs != TOLK_OK)
            rs = tolk_fail(r->ctx, s, "%s", tolk_ctx_last_error(e->ctx));
        else
            scatter(e, a, row, kmax);
        row += a->n_seqs;
        r->have_ask = 0;
        if (rs == TOLK_OK) rs = tolk_lf_feed(r->lf);
        if (rs != TOLK_OK) {
            finish(e, r, rs);
            for (int i = 0; i < n; i++)
                if (act[i] == r) act[i] = NULL;
            continue;
        }
        e->rr = r->order;
        if (!ask_request(e, r))
            for (int i = 0; i < n; i++)
                if (act[i] == r) act[i] = NULL;
    }
    free(sel);
}

/* One tick; *busy: whether any admitted request could make progress. */
static tolk_status tick(tolk_engine *e, int *busy) {
    *busy = 0;
    tolk_status s = admit(e);
    if (s != TOLK_OK) return s;
    tolk_request **act = NULL;
    int n = active_snapshot(e, &act);
    if (n < 0) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
    /* copy: the snapshot array is reused by nested calls */
    tolk_request **mine = malloc((size_t)(n > 0 ? n : 1) * sizeof *mine);
    if (!mine) return tolk_fail(e->ctx, TOLK_ERR_NOMEM, "engine: out of memory");
    if (n) memcpy(mine, act, (size_t)n * sizeof *mine);
    for (int i = 0; i < n; i++) {
        tolk_request *r = mine[i];
        pthread_mutex_lock(&e->mu);
        int cancel = r->cancel;
        pthread_mutex_unlock(&e->mu);
        if (cancel) {
            finish(e, r, tolk_fail(r->ctx, TOLK_ERR_CANCELLED, "request: cancelled"));
            mine[i] = NULL;
            continue;
        }
        if (!ask_request(e, r)) mine[i] = NULL;
    }
    const uint64_t f0 = tolk_net_gemm_fallbacks(e->net);
    encode_all(e, mine, n);
    align_all(e, mine, n);
    step_all(e, mine, n);
    const uint64_t f1 = tolk_net_gemm_fallbacks(e->net); /* slow products of this tick */
    if (f1 > f0) e->timings.gemm_fallbacks += f1 - f0;
    for (int i = 0; i < n; i++)
        if (mine[i] && mine[i]->have_ask) *busy = 1;
    free(mine);
    /* requests admitted after ends made room are asked on the next tick */
    pthread_mutex_lock(&e->mu);
    if (e->queue && e->free_windows > 0 && e->n_active < e->p.max_requests) *busy = 1;
    e->timings_pub = e->timings;
    pthread_mutex_unlock(&e->mu);
    return TOLK_OK;
}

/* One tick under the tick lock. */
static tolk_status tick_locked(tolk_engine *e, int *busy) {
    pthread_mutex_lock(&e->tick_mu);
    tolk_status s = tick(e, busy);
    pthread_mutex_unlock(&e->tick_mu);
    return s;
}

/* ---- driving ------------------------------------------------------------- */

static void *engine_thread(void *arg) {
    tolk_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        if (e->stop) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        uint64_t g = e->signals;
        pthread_mutex_unlock(&e->mu);
        int busy = 0;
        tick_locked(e, &busy);
        pthread_mutex_lock(&e->mu);
        /* sleep until a submission, push, close or cancellation */
        if (!busy && !e->stop && e->signals == g) pthread_cond_wait(&e->work, &e->mu);
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

tolk_status tolk_engine_step(tolk_engine *e, int *n_active) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (e->has_thread)
        return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: it runs its own thread");
    int busy = 0;
    tolk_status s = caller_tick_fail(e, tick_locked(e, &busy));
    if (n_active) {
        pthread_mutex_lock(&e->mu);
        *n_active = e->n_active + e->n_queued;
        pthread_mutex_unlock(&e->mu);
    }
    return s;
}

/* Drive e on this thread until done() holds (checked under the mutex). */
static tolk_status drive(tolk_engine *e, int (*done)(tolk_engine *, void *), void *arg) {
    for (;;) {
        pthread_mutex_lock(&e->mu);
        if (done(e, arg)) {
            pthread_mutex_unlock(&e->mu);
            return TOLK_OK;
        }
        uint64_t g = e->signals;
        pthread_mutex_unlock(&e->mu);
        int busy = 0;
        tolk_status s = tick_locked(e, &busy);
        if (s != TOLK_OK) return caller_tick_fail(e, s);
        pthread_mutex_lock(&e->mu);
        /* nothing runnable (live input waiting): sleep until woken */
        if (!busy && !done(e, arg) && e->signals == g) pthread_cond_wait(&e->work, &e->mu);
        pthread_mutex_unlock(&e->mu);
    }
}

static int all_ended(tolk_engine *e, void *arg) {
    (void)arg;
    return e->n_active + e->n_queued == 0;
}

static int request_ended(tolk_engine *e, void *arg) {
    (void)e;
    return ((tolk_request *)arg)->state == RQ_DONE;
}

tolk_status tolk_engine_run(tolk_engine *e) {
    if (!e) return TOLK_ERR_INVALID_ARG;
    if (e->has_thread)
        return tolk_fail(caller_ctx(e), TOLK_ERR_INVALID_ARG, "engine: it runs its own thread");
    return drive(e, all_ended, NULL);
}

tolk_status tolk_request_wait(tolk_request *r) {
    if (!r) return TOLK_ERR_INVALID_ARG;
    if (r->job) return tolk_vad_job_wait(r->job);
    tolk_engine *e = r->e;
    if (e->has_thread) {
        pthread_mutex_lock(&e->mu);
        while (r->state != RQ_DONE)
            pthread_cond_wait(&e->done, &e->mu);
        tolk_status s = r->status;
        pthread_mutex_unlock(&e->mu);
        return s;
    }
    tolk_status s = drive(e, request_ended, r);
    if (s != TOLK_OK) return s;
    return tolk_request_status(r);
}

/* ---- engine -------------------------------------------------------------- */

tolk_status tolk_engine_new(tolk_ctx *ctx, const tolk_model *model,
                            const tolk_engine_params *params, tolk_engine **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_engine_new: NULL out");
    *out = NULL;
    if (!model || !model->net)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_engine_new: NULL model");
    tolk_engine_params p = params ? *params : tolk_engine_default_params();
    if (p.max_batch < 0 || p.max_requests < 0 || p.max_seqs < 0 || p.encoder_batch < 0 ||
        p.max_batch > 65536 || p.max_requests > 65536 || p.max_seqs > 65536 ||
        p.device_select < -1 || p.device_select > 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "tolk_engine_new: bad parameters (batch %d, requests %d, sequences %d, "
                         "device_select %d)",
                         p.max_batch, p.max_requests, p.max_seqs, p.device_select);
    tolk_engine *e = calloc(1, sizeof *e);
    if (!e) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_engine_new: out of memory");
    tolk_ctx_params cp = ctx ? ctx->params : tolk_ctx_default_params();
    tolk_status s = tolk_ctx_new(&cp, &e->ctx);
    if (s != TOLK_OK) {
        free(e);
        return tolk_fail(ctx, s, "tolk_engine_new: cannot create a context");
    }
    e->model = model;
    e->net = model->net;
    e->on_gpu = strcmp(tolk_net_device(e->net), "cpu") != 0;
    if (p.max_batch == 0) p.max_batch = 256;
    if (p.max_requests == 0) p.max_requests = 16;
    if (p.encoder_batch == 0) p.encoder_batch = e->on_gpu ? 8 : 1;
    if (p.encoder_batch > 4) p.encoder_batch = 4;
    e->p = p;
    e->refs = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->tick_mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, NULL);
    s = tolk_asr_of(e->ctx, model, &e->asr);
    if (s == TOLK_OK && p.background) {
        if (pthread_create(&e->thread, NULL, engine_thread, e) != 0)
            s = tolk_fail(e->ctx, TOLK_ERR_NOMEM, "tolk_engine_new: cannot start a thread");
        else
            e->has_thread = 1;
    }
    if (s != TOLK_OK) {
        tolk_fail(ctx, s, "%s", tolk_ctx_last_error(e->ctx));
        tolk_engine_free(e);
        return s;
    }
    *out = e;
    return TOLK_OK;
}

static void engine_destroy(tolk_engine *e) {
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
    pthread_mutex_destroy(&e->tick_mu);
    pthread_mutex_destroy(&e->mu);
    tolk_ctx_free(e->ctx);
    free(e);
}

void tolk_engine_free(tolk_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->closed = 1;
    for (tolk_request *r = e->queue; r; r = r->next)
        r->cancel = 1;
    for (tolk_request *r = e->active; r; r = r->next)
        r->cancel = 1;
    wake(e);
    pthread_mutex_unlock(&e->mu);
    if (e->has_thread) {
        /* let the thread end what is left, then stop it */
        pthread_mutex_lock(&e->mu);
        while (e->n_active + e->n_queued > 0)
            pthread_cond_wait(&e->done, &e->mu);
        e->stop = 1;
        wake(e);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        e->has_thread = 0;
    } else {
        int busy = 0;
        while (e->n_active + e->n_queued > 0 && tick_locked(e, &busy) == TOLK_OK) {
        }
    }
    /* the pool and buffers go now; the handle lives while requests do */
    tolk_kvcache_free(e->kv);
    e->kv = NULL;
    free(e->seq_used);
    free(e->win_used);
    e->seq_used = e->win_used = NULL;
    free(e->st_seqs);
    free(e->st_ntok);
    free(e->st_tok);
    free(e->st_logits);
    free(e->sl_k);
    free(e->sl_ts);
    free(e->sl_off);
    free(e->sl_pairs);
    free(e->sl_idx);
    free(e->sl_lp);
    free(e->served);
    e->st_seqs = e->st_ntok = NULL;
    e->st_tok = NULL;
    e->st_logits = NULL;
    e->served = NULL;
    engine_unref(e);
}

const char *tolk_engine_last_error(const tolk_engine *e) {
    if (!e) return "";
    if (t_caller_engine == e) return t_caller.last_error;
    return tolk_ctx_last_error(e->ctx);
}

void tolk_engine_get_stats(const tolk_engine *e, tolk_engine_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!e) return;
    pthread_mutex_lock((pthread_mutex_t *)&e->mu);
    *out = e->stats;
    out->queued = e->n_queued;
    out->active = e->n_active;
    pthread_mutex_unlock((pthread_mutex_t *)&e->mu);
}

void tolk_engine_timings(const tolk_engine *e, tolk_timings *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!e) return;
    pthread_mutex_lock((pthread_mutex_t *)&e->mu);
    *out = e->timings_pub;
    pthread_mutex_unlock((pthread_mutex_t *)&e->mu);
}

void tolk_engine_reset_timings(tolk_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->tick_mu);
    pthread_mutex_lock(&e->mu);
    tolk_timings_clear(&e->timings);
    tolk_timings_clear(&e->timings_pub);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&e->tick_mu);
}

tolk_kvcache *tolk_engine_kvcache(tolk_engine *e) {
    return e ? e->kv : NULL;
}

/*
 * test_engine.c — the scheduler (tolk_engine) with real weights (tiny.en,
 * and base for language identification and translation): many requests at
 * once must give each the transcript it gets alone (tolk_state, one
 * request at a time) — bit for bit in float32 on the CPU — whatever the
 * batch: different decoding options side by side (greedy, beam search with
 * the fallback, best-of sampling, no timestamps, prompts, clips), a small
 * max_batch that splits steps, a pool too small for everyone (admission
 * waits), submissions from several threads, live input pushed in pieces,
 * device-side selection run on the CPU. Also: cancellation, a bad request
 * among good ones, polling final segments, argument checks.
 *
 * ctest-labels: tsan models
 */
#include "testutil.h"
#include "tolk.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct clip {
    const char *rel;
    float *x;
    size_t n;
} clip;

static clip g_clips[] = {
    {"speech/jfk.flac", NULL, 0},
    {"speech/en/librispeech/test-clean_1089-134686-0000.flac", NULL, 0},
    {"speech/en/ljspeech/LJ001-0001.flac", NULL, 0},
    {"speech/en/pocketsphinx/goforward.flac", NULL, 0},
    {"speech/en/librispeech/dev-clean_1272-128104-0000.flac", NULL, 0},
};
#define N_CLIPS ((int)(sizeof g_clips / sizeof g_clips[0]))

static tolk_ctx *g_ctx;
static tolk_model *g_tiny;

/* Load tiny.en and the clips once; 0 when the model is missing (skipped). */
static int setup(void) {
    if (g_tiny) return 1;
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return 0;
    if (!g_ctx) CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &g_ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(g_ctx, dir, NULL, &g_tiny), TOLK_OK);
    for (int i = 0; i < N_CLIPS; i++) {
        CU_ASSERT_EQUAL_FATAL(
            tolk_audio_load(g_ctx, tu_data(g_clips[i].rel), &g_clips[i].x, &g_clips[i].n), TOLK_OK);
    }
    return 1;
}

/* Two results are the same transcript: text, language, every segment's
 * times, tokens and scores. */
static int same_result(const tolk_result *a, const tolk_result *b) {
    if (!a || !b) return 0;
    if (strcmp(tolk_result_text(a), tolk_result_text(b)) ||
        strcmp(tolk_result_language(a), tolk_result_language(b)) ||
        tolk_result_n_segments(a) != tolk_result_n_segments(b) ||
        tolk_result_language_prob(a) != tolk_result_language_prob(b))
        return 0;
    for (int i = 0; i < tolk_result_n_segments(a); i++) {
        const tolk_segment *s = tolk_result_segment(a, i), *t = tolk_result_segment(b, i);
        if (s->start != t->start || s->end != t->end || s->seek != t->seek ||
            strcmp(s->text, t->text) || s->n_tokens != t->n_tokens ||
            memcmp(s->tokens, t->tokens, (size_t)s->n_tokens * sizeof(int)) ||
            s->avg_logprob != t->avg_logprob || s->temperature != t->temperature ||
            s->no_speech_prob != t->no_speech_prob)
            return 0;
    }
    return 1;
}

/* The parameter sets the tests mix (index % N_PARAMS). */
#define N_PARAMS 5
static tolk_transcribe_params params_of(int k) {
    tolk_transcribe_params p = tolk_transcribe_default_params();
    switch (k % N_PARAMS) {
    case 0: /* greedy with the fallback */
        break;
    case 1: /* beam search 5 with the fallback and best_of 5 */
        p.beam_size = 5;
        p.best_of = 5;
        break;
    case 2: /* text only, a prompt */
        p.without_timestamps = 1;
        p.initial_prompt = "Quotes from speeches.";
        break;
    case 3: /* sampling from the start: best_of 3 at T = 0.4, then 0.8 */
        p.temperatures[0] = 0.4f;
        p.temperatures[1] = 0.8f;
        p.n_temperatures = 2;
        p.best_of = 3;
        p.seed = 7;
        break;
    default: /* a clip range, no previous-text conditioning */
        p.clip_timestamps = "1.5,8";
        p.condition_on_previous_text = 0;
        break;
    }
    return p;
}

/* Reference: each (clip, params) alone through a tolk_state. */
static tolk_result *g_ref[N_CLIPS][N_PARAMS];

static const tolk_result *reference(int c, int k) {
    if (!g_ref[c][k]) {
        tolk_state *st = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, g_tiny, &st), TOLK_OK);
        tolk_transcribe_params p = params_of(k);
        tolk_status s = tolk_transcribe(st, g_clips[c].x, g_clips[c].n, &p, &g_ref[c][k]);
        if (s != TOLK_OK) fprintf(stderr, "reference %d/%d: %s\n", c, k, tolk_state_last_error(st));
        CU_ASSERT_EQUAL_FATAL(s, TOLK_OK);
        tolk_state_free(st);
    }
    return g_ref[c][k];
}

/* Submit n requests (clip i % N_CLIPS, params (i * 3 + shift) % N_PARAMS),
 * run them to the end, and check each result against its reference. */
static void run_mix(tolk_engine *e, int n, int shift, int drive) {
    tolk_request **rq = calloc((size_t)n, sizeof *rq);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rq);
    for (int i = 0; i < n; i++) {
        tolk_transcribe_params p = params_of(i * 3 + shift);
        const clip *c = &g_clips[i % N_CLIPS];
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, c->x, c->n, &p, &rq[i]), TOLK_OK);
    }
    if (drive) CU_ASSERT_EQUAL(tolk_engine_run(e), TOLK_OK);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(tolk_request_wait(rq[i]), TOLK_OK);
        tolk_result *res = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(rq[i], &res), TOLK_OK);
        int ok = same_result(res, reference(i % N_CLIPS, (i * 3 + shift) % N_PARAMS));
        if (!ok) fprintf(stderr, "  request %d differs from its run alone\n", i);
        CU_ASSERT(ok);
        tolk_result_free(res);
        tolk_request_free(rq[i]);
    }
    free(rq);
}

static void test_identical_background(void) {
    if (!setup()) return;
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = 8;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e), TOLK_OK);
    run_mix(e, 10, 0, 0);
    tolk_engine_stats s;
    tolk_engine_get_stats(e, &s);
    CU_ASSERT_EQUAL(s.completed, 10);
    CU_ASSERT(s.rows > s.steps); /* steps were shared */
    printf("  %lld steps, %lld rows, %lld windows encoded\n", (long long)s.steps, (long long)s.rows,
           (long long)s.windows_encoded);
    tolk_engine_free(e);
}

static void test_small_batch_and_pool(void) {
    if (!setup()) return;
    /* steps of at most 3 sequences; 6 sequences for 4 requests of up to 5 */
    tolk_engine_params ep = tolk_engine_default_params();
    ep.background = 0;
    ep.max_requests = 4;
    ep.max_batch = 3;
    ep.max_seqs = 6;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e), TOLK_OK);
    run_mix(e, 7, 1, 1);
    tolk_engine_stats s;
    tolk_engine_get_stats(e, &s);
    CU_ASSERT_EQUAL(s.pool_seqs, 6);
    CU_ASSERT_EQUAL(s.steps_by_batch[5] + s.steps_by_batch[6] + s.steps_by_batch[7], 0);
    tolk_engine_free(e);
    /* a request that can never fit fails alone */
    ep.max_seqs = 2;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e), TOLK_OK);
    tolk_transcribe_params p = params_of(1); /* beam 5 */
    tolk_request *r = NULL;
    CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, g_clips[0].x, g_clips[0].n, &p, &r),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT(strstr(tolk_engine_last_error(e), "sequences") != NULL);
    tolk_engine_free(e);
}

static void test_device_select_on_cpu(void) {
    if (!setup()) return;
    /* the selection the GPU runs, through the CPU backend's select op:
     * per-row timestamp rules and k in one mixed step */
    tolk_engine_params ep = tolk_engine_default_params();
    ep.device_select = 1;
    ep.max_requests = 6;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e), TOLK_OK);
    run_mix(e, 6, 2, 0);
    tolk_engine_free(e);
}

typedef struct thread_arg {
    tolk_engine *e;
    int first;
    int ok;
} thread_arg;

static void *submitter(void *arg) {
    thread_arg *t = arg;
    t->ok = 1;
    for (int j = 0; j < 2; j++) {
        int i = t->first + j;
        tolk_transcribe_params p = params_of(i);
        const clip *c = &g_clips[i % N_CLIPS];
        tolk_request *r = NULL;
        if (tolk_engine_submit_samples(t->e, c->x, c->n, &p, &r) != TOLK_OK) {
            t->ok = 0;
            continue;
        }
        tolk_result *res = NULL;
        if (tolk_request_wait(r) != TOLK_OK || tolk_request_result(r, &res) != TOLK_OK ||
            !same_result(res, g_ref[i % N_CLIPS][i % N_PARAMS]))
            t->ok = 0;
        tolk_result_free(res);
        tolk_request_free(r);
    }
    return NULL;
}

static void test_threads(void) {
    if (!setup()) return;
    for (int i = 0; i < 8; i++)
        reference(i % N_CLIPS, i % N_PARAMS); /* made before the threads read them */
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, NULL, &e), TOLK_OK);
    pthread_t th[4];
    thread_arg ta[4];
    for (int t = 0; t < 4; t++) {
        ta[t] = (thread_arg){e, 2 * t, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, submitter, &ta[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CU_ASSERT(ta[t].ok);
    }
    tolk_engine_free(e);
}

static void test_live(void) {
    if (!setup()) return;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, NULL, &e), TOLK_OK);
    /* two live inputs pushed in uneven pieces beside one whole request */
    tolk_request *lr[2] = {NULL, NULL}, *whole = NULL;
    tolk_transcribe_params p0 = params_of(0);
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_live(e, &p0, &lr[k]), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, g_clips[1].x, g_clips[1].n, &p0, &whole),
                          TOLK_OK);
    size_t at[2] = {0, 0}, piece[2] = {1601, 4800};
    const clip *lc[2] = {&g_clips[0], &g_clips[4]};
    while (at[0] < lc[0]->n || at[1] < lc[1]->n)
        for (int k = 0; k < 2; k++) {
            size_t m = lc[k]->n - at[k] < piece[k] ? lc[k]->n - at[k] : piece[k];
            if (m) CU_ASSERT_EQUAL(tolk_request_push(lr[k], lc[k]->x + at[k], m), TOLK_OK);
            at[k] += m;
        }
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(tolk_request_close(lr[k]), TOLK_OK);
        CU_ASSERT_NOT_EQUAL(tolk_request_push(lr[k], lc[k]->x, 1), TOLK_OK); /* closed */
    }
    tolk_result *res = NULL;
    CU_ASSERT_EQUAL(tolk_request_wait(whole), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_result(whole, &res), TOLK_OK);
    CU_ASSERT(same_result(res, reference(1, 0)));
    tolk_result_free(res);
    int cl[2] = {0, 4};
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(tolk_request_wait(lr[k]), TOLK_OK);
        res = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(lr[k], &res), TOLK_OK);
        int ok = same_result(res, reference(cl[k], 0));
        if (!ok && res) fprintf(stderr, "  live %d: \"%s\"\n", k, tolk_result_text(res));
        CU_ASSERT(ok);
        tolk_result_free(res);
        tolk_request_free(lr[k]);
    }
    tolk_request_free(whole);
    /* bad pushes */
    tolk_request *r = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_live(e, &p0, &r), TOLK_OK);
    float bad[3] = {0.1f, NAN, 0.0f};
    CU_ASSERT_EQUAL(tolk_request_push(r, bad, 3), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_request_push(r, NULL, 3), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_request_close(r), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_wait(r), TOLK_ERR_EMPTY); /* nothing was pushed */
    tolk_request_free(r);
    tolk_request *notlive = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, g_clips[0].x, 16000, &p0, &notlive),
                          TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_push(notlive, g_clips[0].x, 10), TOLK_ERR_INVALID_ARG);
    tolk_request_free(notlive);
    tolk_engine_free(e);
}

static void test_cancel_and_bad_inputs(void) {
    if (!setup()) return;
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = 2; /* some requests wait in the queue */
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e), TOLK_OK);
    /* a long input (the clips twice over), cancelled at once */
    size_t n = 0;
    for (int i = 0; i < N_CLIPS; i++)
        n += g_clips[i].n;
    float *longx = malloc(2 * n * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(longx);
    size_t at = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N_CLIPS; i++) {
            memcpy(longx + at, g_clips[i].x, g_clips[i].n * sizeof(float));
            at += g_clips[i].n;
        }
    /* a corrupt file and a truncated WAV among good requests */
    const char *junk = tu_tmp("junk.wav");
    FILE *f = fopen(junk, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    tolk_transcribe_params p = params_of(0);
    tolk_request *cancelled = NULL, *good[3] = {NULL}, *bad = NULL, *freed_early = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, longx, 2 * n, &p, &cancelled), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, longx, 2 * n, &p, &freed_early), TOLK_OK);
    tolk_request_cancel(cancelled);
    tolk_request_free(freed_early); /* cancelled, freed by the engine when it ends */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(
            tolk_engine_submit_samples(e, g_clips[i].x, g_clips[i].n, &p, &good[i]), TOLK_OK);
    tolk_status s = tolk_engine_submit_file(e, junk, &p, &bad);
    if (s == TOLK_OK) {
        /* found bad while decoding: fails alone */
        CU_ASSERT_NOT_EQUAL(tolk_request_wait(bad), TOLK_OK);
        CU_ASSERT(strlen(tolk_request_last_error(bad)) > 0);
        tolk_request_free(bad);
    } else {
        CU_ASSERT(strstr(tolk_engine_last_error(e), "junk.wav") != NULL);
    }
    tolk_request *missing = NULL;
    CU_ASSERT_EQUAL(tolk_engine_submit_file(e, tu_tmp("no-such.flac"), &p, &missing), TOLK_ERR_IO);
    CU_ASSERT(strstr(tolk_engine_last_error(e), "no-such.flac") != NULL);
    tolk_transcribe_params badp = p;
    badp.beam_size = -3;
    CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, g_clips[0].x, g_clips[0].n, &badp, &missing),
                    TOLK_ERR_INVALID_ARG);
    badp = p;
    badp.language = "xx-not-a-language";
    CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, g_clips[0].x, g_clips[0].n, &badp, &missing),
                    TOLK_OK); /* English-only model: the language is not used */
    tolk_request_free(missing);
    CU_ASSERT_EQUAL(tolk_request_wait(cancelled), TOLK_ERR_CANCELLED);
    tolk_result *res = NULL;
    CU_ASSERT_EQUAL(tolk_request_result(cancelled, &res), TOLK_ERR_CANCELLED);
    tolk_request_free(cancelled);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tolk_request_wait(good[i]), TOLK_OK);
        /* polling: the published segments are the final ones */
        int ns = tolk_request_n_segments(good[i]);
        tolk_result *part = NULL;
        CU_ASSERT_EQUAL(tolk_request_segments(good[i], 1, &part), TOLK_OK);
        res = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(good[i], &res), TOLK_OK);
        CU_ASSERT(same_result(res, reference(i, 0)));
        CU_ASSERT_EQUAL(ns, tolk_result_n_segments(res));
        CU_ASSERT_EQUAL(tolk_result_n_segments(part), ns > 1 ? ns - 1 : 0);
        for (int j = 0; part && j < tolk_result_n_segments(part); j++)
            CU_ASSERT_STRING_EQUAL(tolk_result_segment(part, j)->text,
                                   tolk_result_segment(res, j + 1)->text);
        tolk_result *again = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(good[i], &again),
                        TOLK_ERR_INVALID_ARG); /* handed over once */
        tolk_result_free(part);
        tolk_result_free(res);
        tolk_request_free(good[i]);
    }
    tolk_engine_stats st;
    tolk_engine_get_stats(e, &st);
    CU_ASSERT(st.cancelled >= 2);
    free(longx);
    tolk_engine_free(e);
}

static void test_language_and_translate(void) {
    const char *dir = tu_require_model("base");
    if (!dir) return;
    if (!setup()) return;
    tolk_model *base = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(g_ctx, dir, NULL, &base), TOLK_OK);
    float *x[2] = {NULL, NULL};
    size_t n[2];
    const char *rel[2] = {"speech/multi/fleurs/fleurs-de-000.flac", "speech/jfk.flac"};
    for (int i = 0; i < 2; i++)
        if (tolk_audio_load(g_ctx, tu_data(rel[i]), &x[i], &n[i]) != TOLK_OK) {
            x[i] = g_clips[0].x; /* missing data: fall back to jfk */
            n[i] = g_clips[0].n;
        }
    tolk_transcribe_params pp[3];
    pp[0] = tolk_transcribe_default_params(); /* detect, transcribe */
    pp[1] = pp[0];
    pp[1].task = TOLK_TASK_TRANSLATE;
    pp[2] = pp[0];
    pp[2].language = "en";
    tolk_result *ref[3][2] = {{NULL}};
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, base, &st), TOLK_OK);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++)
            CU_ASSERT_EQUAL(tolk_transcribe(st, x[i], n[i], &pp[k], &ref[k][i]), TOLK_OK);
    tolk_state_free(st);
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, base, NULL, &e), TOLK_OK);
    tolk_request *rq[3][2];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++)
            CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x[i], n[i], &pp[k], &rq[k][i]),
                                  TOLK_OK);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2; i++) {
            tolk_result *res = NULL;
            CU_ASSERT_EQUAL(tolk_request_wait(rq[k][i]), TOLK_OK);
            CU_ASSERT_EQUAL(tolk_request_result(rq[k][i], &res), TOLK_OK);
            CU_ASSERT(same_result(res, ref[k][i]));
            tolk_result_free(res);
            tolk_result_free(ref[k][i]);
            tolk_request_free(rq[k][i]);
        }
    tolk_engine_free(e);
    for (int i = 0; i < 2; i++)
        if (x[i] != g_clips[0].x) tolk_free(x[i]);
    tolk_model_free(base);
}

/* Speech-only requests (vad_filter, batched long-form) as engine requests:
 * silence + jfk + silence + a clip, beside ordinary requests. The filtered
 * request equals the same request through a tolk_state; its times are on
 * the original timeline (after the leading silence); the batched one
 * decodes its pieces in parallel; silence alone gives no segment. */
static void test_vad_jobs(void) {
    const char *vdir = tu_require_model("silero-vad");
    if (!vdir || !setup()) return;
    tolk_vad *vad = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load(g_ctx, vdir, &vad), TOLK_OK);
    const size_t sil = 3 * 16000, gap = 2 * 16000;
    size_t n = sil + g_clips[0].n + gap + g_clips[1].n;
    float *x = calloc(n, sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    memcpy(x + sil, g_clips[0].x, g_clips[0].n * sizeof(float));
    memcpy(x + sil + g_clips[0].n + gap, g_clips[1].x, g_clips[1].n * sizeof(float));
    tolk_transcribe_params p = params_of(0);
    p.vad = vad;
    tolk_result *ref = NULL;
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, g_tiny, &st), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &ref), TOLK_OK);
    tolk_state_free(st);
    CU_ASSERT(tolk_result_n_segments(ref) > 0 && tolk_result_segment(ref, 0)->start >= 2.5);
    CU_ASSERT(strstr(tolk_result_text(ref), "ellow") != NULL);
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, NULL, &e), TOLK_OK);
    tolk_request *plain = NULL, *filt = NULL, *bat = NULL, *quiet = NULL;
    tolk_transcribe_params p0 = params_of(0), pb = p;
    pb.vad_batched = 1;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, g_clips[2].x, g_clips[2].n, &p0, &plain),
                          TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x, n, &p, &filt), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x, n, &pb, &bat), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x, sil, &p, &quiet), TOLK_OK);
    tolk_result *res = NULL;
    CU_ASSERT_EQUAL(tolk_request_wait(filt), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_n_segments(filt), tolk_result_n_segments(ref));
    CU_ASSERT_EQUAL(tolk_request_result(filt, &res), TOLK_OK);
    CU_ASSERT(same_result(res, ref));
    tolk_result_free(res);
    res = NULL;
    CU_ASSERT_EQUAL(tolk_request_wait(bat), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_result(bat, &res), TOLK_OK);
    if (res) {
        CU_ASSERT(tolk_result_n_segments(res) > 0 &&
                  strstr(tolk_result_text(res), "ellow") != NULL);
        for (int i = 0; i < tolk_result_n_segments(res); i++) {
            CU_ASSERT(tolk_result_segment(res, i)->start >= 2.5 &&
                      tolk_result_segment(res, i)->end <= n / 16000.0 + 0.5);
            CU_ASSERT(tolk_result_segment(res, i)->start <= tolk_result_segment(res, i)->end);
            CU_ASSERT_EQUAL(tolk_result_segment(res, i)->id, i);
        }
        printf("\n  batched: %d segments \"%.60s...\"", tolk_result_n_segments(res),
               tolk_result_text(res));
    }
    tolk_result_free(res);
    res = NULL;
    CU_ASSERT_EQUAL(tolk_request_wait(quiet), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_result(quiet, &res), TOLK_OK);
    if (res) CU_ASSERT_EQUAL(tolk_result_n_segments(res), 0);
    tolk_result_free(res);
    res = NULL;
    CU_ASSERT_EQUAL(tolk_request_wait(plain), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_request_result(plain, &res), TOLK_OK);
    CU_ASSERT(same_result(res, reference(2, 0)));
    tolk_result_free(res);
    /* a live input cannot be filtered as a whole */
    tolk_request *live = NULL;
    CU_ASSERT_EQUAL(tolk_engine_submit_live(e, &p, &live), TOLK_ERR_UNSUPPORTED);
    tolk_request_free(plain);
    tolk_request_free(filt);
    tolk_request_free(bat);
    tolk_request_free(quiet);
    tolk_engine_free(e);
    tolk_result_free(ref);
    tolk_vad_free(vad);
    free(x);
}

static void test_arguments(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL(tolk_engine_new(ctx, NULL, NULL, &e), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_engine_new(ctx, NULL, NULL, NULL), TOLK_ERR_INVALID_ARG);
    tolk_engine_free(NULL);
    tolk_request_free(NULL);
    tolk_request_cancel(NULL);
    CU_ASSERT(tolk_request_done(NULL));
    CU_ASSERT_EQUAL(tolk_request_wait(NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_engine_run(NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_engine_bucket_min(0), 1);
    CU_ASSERT_EQUAL(tolk_engine_bucket_min(1), 2);
    CU_ASSERT_EQUAL(tolk_engine_bucket_min(2), 3);
    CU_ASSERT_EQUAL(tolk_engine_bucket_min(3), 5);
    CU_ASSERT_EQUAL(tolk_engine_bucket_min(9), 257);
    if (setup()) {
        tolk_engine_params ep = tolk_engine_default_params();
        ep.max_batch = -1;
        CU_ASSERT_EQUAL(tolk_engine_new(ctx, g_tiny, &ep, &e), TOLK_ERR_INVALID_ARG);
        ep = tolk_engine_default_params();
        ep.device_select = 2;
        CU_ASSERT_EQUAL(tolk_engine_new(ctx, g_tiny, &ep, &e), TOLK_ERR_INVALID_ARG);
        ep = tolk_engine_default_params();
        CU_ASSERT_EQUAL_FATAL(tolk_engine_new(ctx, g_tiny, &ep, &e), TOLK_OK);
        tolk_request *r = NULL;
        CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, NULL, 10, NULL, &r), TOLK_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, g_clips[0].x, 0, NULL, &r), TOLK_ERR_EMPTY);
        CU_ASSERT_EQUAL(tolk_engine_submit_file(e, NULL, NULL, &r), TOLK_ERR_INVALID_ARG);
        CU_ASSERT_EQUAL(tolk_engine_step(e, NULL), TOLK_ERR_INVALID_ARG); /* has a thread */
        /* freed before its end: the engine ends it */
        CU_ASSERT_EQUAL(tolk_engine_submit_samples(e, g_clips[0].x, g_clips[0].n, NULL, &r),
                        TOLK_OK);
        tolk_engine_free(e); /* cancels it; the handle stays valid */
        CU_ASSERT(tolk_request_done(r));
        CU_ASSERT_EQUAL(tolk_request_status(r), TOLK_ERR_CANCELLED);
        tolk_request_free(r);
    }
    tolk_ctx_free(ctx);
}

/* TOLK_KV_F16 (float16 cross-attention K/V): the engine still gives every
 * request what it gets alone with the same model; the pool's windows take
 * half the bytes; the text stays the float32 model's on these clips. Also
 * admission: the pool is first sized for the greedy head (4 requests x 1
 * sequence); the beam requests behind it wait until it can grow instead of
 * failing ("needs 5 decoder sequences, the pool has 4" before). */
static void test_kv_f16(void) {
    if (!setup()) return;
    tolk_model_params mp = tolk_model_default_params();
    mp.kv_cache = TOLK_KV_F16;
    tolk_model *m16 = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(g_ctx, tu_require_model("tiny.en"), &mp, &m16), TOLK_OK);
    mp.kv_cache = 7;
    tolk_model *bad = NULL;
    CU_ASSERT_EQUAL(tolk_model_load(g_ctx, tu_require_model("tiny.en"), &mp, &bad),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(g_ctx), "kv_cache") != NULL);
    mp.kv_cache = TOLK_KV_F16;
    mp.gelu = 3; /* tolk_gelu_type ends at TOLK_GELU_TANH */
    CU_ASSERT_EQUAL(tolk_model_load(g_ctx, tu_require_model("tiny.en"), &mp, &bad),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(g_ctx), "gelu") != NULL);
    enum { N = 4 };
    tolk_result *alone[N] = {0};
    for (int i = 0; i < N; i++) {
        tolk_state *st = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, m16, &st), TOLK_OK);
        tolk_transcribe_params p = params_of(i % 2); /* greedy, beam 5 */
        CU_ASSERT_EQUAL(
            tolk_transcribe(st, g_clips[i % N_CLIPS].x, g_clips[i % N_CLIPS].n, &p, &alone[i]),
            TOLK_OK);
        tolk_state_free(st);
        /* float16 K/V moves logits by ~1e-3: these clips keep their text */
        const tolk_result *r32 = reference(i % N_CLIPS, i % 2);
        if (alone[i] && strcmp(tolk_result_text(alone[i]), tolk_result_text(r32)))
            printf("\n  kv f16 text differs on clip %d: '%s' vs '%s'", i % N_CLIPS,
                   tolk_result_text(alone[i]), tolk_result_text(r32));
        CU_ASSERT(alone[i] && !strcmp(tolk_result_text(alone[i]), tolk_result_text(r32)));
    }
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = N;
    ep.background = 0;
    tolk_engine *e = NULL, *e32 = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, m16, &ep, &e), TOLK_OK);
    tolk_request *rq[N];
    for (int i = 0; i < N; i++) {
        tolk_transcribe_params p = params_of(i % 2);
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, g_clips[i % N_CLIPS].x,
                                                         g_clips[i % N_CLIPS].n, &p, &rq[i]),
                              TOLK_OK);
    }
    CU_ASSERT_EQUAL(tolk_engine_run(e), TOLK_OK);
    for (int i = 0; i < N; i++) {
        tolk_result *res = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(rq[i], &res), TOLK_OK);
        if (!res) printf("\n  kv f16 request %d: %s", i, tolk_request_last_error(rq[i]));
        CU_ASSERT(same_result(res, alone[i]));
        tolk_result_free(res);
        tolk_request_free(rq[i]);
        tolk_result_free(alone[i]);
    }
    /* the same pool in float32 takes more bytes: the windows' half */
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e32), TOLK_OK);
    tolk_request *r = NULL;
    tolk_transcribe_params p = params_of(0);
    CU_ASSERT_EQUAL(tolk_engine_submit_samples(e32, g_clips[0].x, g_clips[0].n, &p, &r), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_engine_run(e32), TOLK_OK);
    tolk_request_free(r);
    tolk_engine_stats s16, s32;
    tolk_engine_get_stats(e, &s16);
    tolk_engine_get_stats(e32, &s32);
    if (s16.pool_windows == s32.pool_windows && s16.pool_seqs == s32.pool_seqs)
        CU_ASSERT(s16.pool_bytes < s32.pool_bytes);
    printf("  pool: %d windows, %llu bytes with float16 K/V, %d windows, %llu with float32",
           s16.pool_windows, (unsigned long long)s16.pool_bytes, s32.pool_windows,
           (unsigned long long)s32.pool_bytes);
    tolk_engine_free(e);
    tolk_engine_free(e32);
    tolk_model_free(m16);
}

static void cleanup(void) {
    for (int c = 0; c < N_CLIPS; c++) {
        for (int k = 0; k < N_PARAMS; k++)
            tolk_result_free(g_ref[c][k]);
        tolk_free(g_clips[c].x);
    }
    tolk_model_free(g_tiny);
    tolk_ctx_free(g_ctx);
}

int main(void) {
    static CU_TestInfo tests[] = {
        {"identical_background", test_identical_background},
        {"small_batch_and_pool", test_small_batch_and_pool},
        {"device_select_on_cpu", test_device_select_on_cpu},
        {"threads", test_threads},
        {"live", test_live},
        {"cancel_and_bad_inputs", test_cancel_and_bad_inputs},
        {"language_and_translate", test_language_and_translate},
        {"vad_jobs", test_vad_jobs},
        {"arguments", test_arguments},
        {"kv_f16", test_kv_f16},
        CU_TEST_INFO_NULL,
    };
    tu_add_suite("engine", tests);
    int r = tu_run();
    cleanup();
    return r;
}

/*
 * test_transcribe.c — end to end with real weights: tolk_transcribe_file
 * (greedy, temperature 0 only, every other option at its default) against
 * the faster-whisper transcripts of tests/fixtures/transcripts/<model>.json
 * (tests/fixtures/make_transcripts.py): detected language, text, segment
 * boundaries and texts. A file whose text differs is reported with the
 * reference's log-probability margin at the first differing token; it fails
 * the test only when that margin is large (a confident token changed: a
 * bug, not float rounding between two engines).
 *
 * Also: API argument checks, callbacks and cancellation, in-memory input
 * equal to file input, tolk_detect_language, beam search and best-of
 * sampling smoke runs.
 *
 * Environment:
 *   TOLK_PARITY_FIXTURE=path.json  run that fixture instead (e.g. the full
 *                                  set in /work/fixtures-full) on its model
 *   TOLK_PARITY_MAX=n              the first n files of each fixture (0:
 *                                  all); by default every third file and
 *                                  the long one (index 7), to stay fast
 *
 * ctest-labels: models
 */
#include "testutil.h"
#include "tolk.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A difference at a token the reference chose by more than this margin (in
 * log-probability) is a failure. */
#define MARGIN_FAIL 1.0

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

typedef struct loaded {
    tolk_ctx *ctx;
    tolk_model *model;
    tolk_state *st;
} loaded;

static int load(const char *name, loaded *L) {
    memset(L, 0, sizeof *L);
    const char *dir = tu_require_model(name);
    if (!dir) return 0;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &L->ctx), TOLK_OK);
    tolk_status s = tolk_model_load(L->ctx, dir, NULL, &L->model);
    if (s != TOLK_OK) {
        CU_FAIL("model load");
        fprintf(stderr, "load %s: %s\n", dir, tolk_ctx_last_error(L->ctx));
        tolk_ctx_free(L->ctx);
        return 0;
    }
    s = tolk_state_new(L->ctx, L->model, &L->st);
    if (s != TOLK_OK) {
        CU_FAIL("state");
        fprintf(stderr, "state: %s\n", tolk_ctx_last_error(L->ctx));
        tolk_model_free(L->model);
        tolk_ctx_free(L->ctx);
        return 0;
    }
    return 1;
}

static void unload(loaded *L) {
    tolk_state_free(L->st);
    tolk_model_free(L->model);
    tolk_ctx_free(L->ctx);
}

static tolk_transcribe_params greedy_params(void) {
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.temperatures[0] = 0.0f;
    p.n_temperatures = 1;
    return p;
}

/* The reference margin of the k-th token of segment tokens seg[0, n) in the
 * reference windows (first window holding that token run). */
static double ref_margin(const cJSON *windows, const cJSON *seg_tokens, int k) {
    int n = cJSON_GetArraySize(seg_tokens);
    const cJSON *w;
    cJSON_ArrayForEach(w, windows) {
        const cJSON *wt = cJSON_GetObjectItem(w, "tokens");
        const cJSON *wm = cJSON_GetObjectItem(w, "margins");
        int m = cJSON_GetArraySize(wt);
        for (int off = 0; off + n <= m; off++) {
            int ok = 1;
            for (int j = 0; ok && j < n; j++)
                ok = cJSON_GetArrayItem(wt, off + j)->valueint ==
                     cJSON_GetArrayItem(seg_tokens, j)->valueint;
            if (ok && off + k < cJSON_GetArraySize(wm))
                return cJSON_GetArrayItem(wm, off + k)->valuedouble;
        }
    }
    return NAN;
}

typedef struct tally {
    int files, same_text, same_segments, lang_same, failed;
} tally;

static void check_file(loaded *L, const cJSON *e, int multilingual, tally *t) {
    const char *rel = cJSON_GetObjectItem(e, "file")->valuestring;
    const char *task = cJSON_GetObjectItem(e, "task")->valuestring;
    tolk_transcribe_params p = greedy_params();
    p.task = strcmp(task, "translate") == 0 ? TOLK_TASK_TRANSLATE : TOLK_TASK_TRANSCRIBE;
    char rpath[1024];
    snprintf(rpath, sizeof rpath, "speech/%s", rel);
    tolk_result *r = NULL;
    tolk_status s = tolk_transcribe_file(L->st, tu_data(rpath), &p, &r);
    CU_ASSERT_EQUAL(s, TOLK_OK);
    if (s != TOLK_OK) {
        fprintf(stderr, "%s: %s\n", rel, tolk_state_last_error(L->st));
        t->failed++;
        return;
    }
    t->files++;
    const char *ref_lang = cJSON_GetObjectItem(e, "language")->valuestring;
    int lang_ok = strcmp(tolk_result_language(r), ref_lang) == 0;
    t->lang_same += lang_ok;
    if (multilingual) CU_ASSERT(lang_ok);
    const char *ref_text = cJSON_GetObjectItem(e, "text")->valuestring;

    /* the reference drops empty and instantaneous segments */
    const cJSON *segs = cJSON_GetObjectItem(e, "segments");
    int nref = cJSON_GetArraySize(segs), k = 0, seg_same = 1, first_bad = -1;
    for (int i = 0; i < tolk_result_n_segments(r); i++) {
        const tolk_segment *g = tolk_result_segment(r, i);
        if (g->text[0] == '\0') continue;
        if (k >= nref) {
            seg_same = 0;
            break;
        }
        const cJSON *rs = cJSON_GetArrayItem(segs, k++);
        double a = cJSON_GetObjectItem(rs, "start")->valuedouble;
        double b = cJSON_GetObjectItem(rs, "end")->valuedouble;
        const char *tx = cJSON_GetObjectItem(rs, "text")->valuestring;
        if (fabs(g->start - a) > 0.002 || fabs(g->end - b) > 0.002 || strcmp(g->text, tx) != 0) {
            seg_same = 0;
            if (first_bad < 0) first_bad = k - 1;
        }
    }
    if (k != nref) seg_same = 0;
    t->same_segments += seg_same;

    /* text: the reference joins its segments; compare to the concatenation */
    size_t tl = 0;
    for (int i = 0; i < tolk_result_n_segments(r); i++)
        tl += strlen(tolk_result_segment(r, i)->text);
    char *joined = calloc(tl + 1, 1);
    for (int i = 0; i < tolk_result_n_segments(r); i++)
        strcat(joined, tolk_result_segment(r, i)->text);
    int text_same = strcmp(joined, ref_text) == 0;
    t->same_text += text_same;
    if (!text_same || !seg_same) {
        /* locate the first differing token of the first differing segment */
        double margin = NAN;
        int seg_i = first_bad >= 0 ? first_bad : 0, tok_i = 0;
        const cJSON *rs = cJSON_GetArrayItem(segs, seg_i);
        int gi = -1, kk = 0;
        for (int i = 0; i < tolk_result_n_segments(r); i++) {
            if (tolk_result_segment(r, i)->text[0] == '\0') continue;
            if (kk++ == seg_i) {
                gi = i;
                break;
            }
        }
        if (rs && gi >= 0) {
            const cJSON *rt = cJSON_GetObjectItem(rs, "tokens");
            const tolk_segment *g = tolk_result_segment(r, gi);
            int n = cJSON_GetArraySize(rt);
            while (tok_i < n && tok_i < g->n_tokens &&
                   cJSON_GetArrayItem(rt, tok_i)->valueint == g->tokens[tok_i])
                tok_i++;
            margin = ref_margin(cJSON_GetObjectItem(e, "windows"), rt, tok_i);
        }
        fprintf(stderr,
                "  DIFF %s (%s): segment %d token %d, reference margin %.3f\n"
                "    tolk: %s\n    ref:  %s\n",
                rel, task, seg_i, tok_i, margin, joined, ref_text);
        if (!isnan(margin) && margin > MARGIN_FAIL) {
            t->failed++;
            CU_FAIL("a confident token differs from the reference");
        }
    }
    free(joined);
    tolk_result_free(r);
}

static void run_fixture(const char *model, const char *fixture, int max_files) {
    char *json = read_all(fixture);
    if (!json) {
        CU_FAIL("fixture missing");
        fprintf(stderr, "cannot read %s\n", fixture);
        return;
    }
    cJSON *root = cJSON_Parse(json);
    free(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    loaded L;
    if (!load(model, &L)) {
        cJSON_Delete(root);
        return;
    }
    const char *env = getenv("TOLK_PARITY_MAX");
    if (env) max_files = atoi(env);
    tally t = {0};
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "files")) {
        int idx = i++;
        /* the default: every third file and the long (multi-window) one */
        if (max_files < 0 && !(idx % 3 == 0 || idx == 7)) continue;
        if (max_files > 0 && idx >= max_files) break;
        check_file(&L, e, strstr(model, ".en") == NULL, &t);
    }
    fprintf(stderr,
            "  PARITY %s: %d files, text identical %d, segments identical %d, language same %d, "
            "confident differences %d\n",
            model, t.files, t.same_text, t.same_segments, t.lang_same, t.failed);
    unload(&L);
    cJSON_Delete(root);
}

static void test_parity_tiny_en(void) {
    if (getenv("TOLK_PARITY_FIXTURE")) return;
    run_fixture("tiny.en", tu_src("tests/fixtures/transcripts/tiny.en.json"), -1);
}

static void test_parity_base(void) {
    if (getenv("TOLK_PARITY_FIXTURE")) return;
    run_fixture("base", tu_src("tests/fixtures/transcripts/base.json"), -1);
}

static void test_parity_env(void) {
    const char *f = getenv("TOLK_PARITY_FIXTURE");
    if (!f) {
        tu_skip("TOLK_PARITY_FIXTURE not set");
        return;
    }
    char *json = read_all(f);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    free(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    char model[64];
    snprintf(model, sizeof model, "%s", cJSON_GetObjectItem(root, "model")->valuestring);
    cJSON_Delete(root);
    run_fixture(model, f, 0);
}

/* ---- API behaviour ------------------------------------------------------- */

typedef struct cb {
    int n_progress, n_segments, cancel_after;
    double last_pos, total;
} cb;

static int on_progress(void *user, double pos, double total) {
    cb *c = user;
    CU_ASSERT(pos >= c->last_pos);
    c->last_pos = pos;
    c->total = total;
    c->n_progress++;
    return c->cancel_after > 0 && c->n_progress >= c->cancel_after;
}
static void on_segment(void *user, const tolk_segment *s) {
    cb *c = user;
    CU_ASSERT_PTR_NOT_NULL(s->text);
    c->n_segments++;
}

static void test_api(void) {
    loaded L;
    if (!load("tiny.en", &L)) return;
    tolk_result *r = NULL;
    tolk_transcribe_params p = greedy_params();
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, NULL, 10, &p, &r), TOLK_ERR_INVALID_ARG);
    float z[16] = {0};
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, z, 0, &p, &r), TOLK_ERR_EMPTY);
    CU_ASSERT_EQUAL(tolk_transcribe(NULL, z, 16, &p, &r), TOLK_ERR_INVALID_ARG);
    p.n_temperatures = 0;
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, z, 16, &p, &r), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strlen(tolk_state_last_error(L.st)) > 0);
    p = greedy_params();
    p.suppress_tokens = "1,x";
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, z, 16, &p, &r), TOLK_ERR_INVALID_ARG);
    p = greedy_params();
    p.clip_timestamps = "a,b";
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, z, 16, &p, &r), TOLK_ERR_INVALID_ARG);
    p = greedy_params();
    p.length_penalty = 2.0f;
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, z, 16, &p, &r), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(tolk_transcribe_file(L.st, "/nonexistent.flac", NULL, &r), TOLK_ERR_IO);

    /* memory input equals file input; callbacks; silence */
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(L.ctx, tu_data("speech/jfk.flac"), &x, &n), TOLK_OK);
    cb c = {0};
    p = greedy_params();
    p.progress = on_progress;
    p.on_segment = on_segment;
    p.user = &c;
    tolk_result *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n, &p, &a), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe_file(L.st, tu_data("speech/jfk.flac"), NULL, &b),
                          TOLK_OK);
    CU_ASSERT_STRING_EQUAL(tolk_result_text(a), tolk_result_text(b));
    CU_ASSERT_EQUAL(tolk_result_n_segments(a), tolk_result_n_segments(b));
    CU_ASSERT_EQUAL(c.n_segments, tolk_result_n_segments(a));
    CU_ASSERT(c.n_progress >= 1);
    CU_ASSERT_DOUBLE_EQUAL(c.total, 11.0, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(tolk_result_duration(a), 11.0, 0.01);
    CU_ASSERT_STRING_EQUAL(tolk_result_language(a), "en");
    CU_ASSERT(strstr(tolk_result_text(a), "ask not what your country can do for you") != NULL);
    for (int i = 0; i < tolk_result_n_segments(a); i++) {
        CU_ASSERT_EQUAL(tolk_result_segment(a, i)->id, i);
        CU_ASSERT(tolk_result_segment(a, i)->end >= tolk_result_segment(a, i)->start);
        CU_ASSERT(tolk_result_segment(a, i)->avg_logprob < 0.0f);
    }
    tolk_result_free(a);
    tolk_result_free(b);

    /* cancellation at the first window */
    c = (cb){.cancel_after = 1};
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, x, n, &p, &a), TOLK_ERR_CANCELLED);
    CU_ASSERT_PTR_NULL(a);

    /* clip_timestamps: only [2 s, 6 s) is decoded */
    p = greedy_params();
    p.clip_timestamps = "2,6";
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n, &p, &a), TOLK_OK);
    for (int i = 0; i < tolk_result_n_segments(a); i++) {
        CU_ASSERT(tolk_result_segment(a, i)->start >= 2.0 - 1e-9);
        CU_ASSERT(tolk_result_segment(a, i)->seek >= 200);
    }
    tolk_result_free(a);

    /* silence: nothing said, no crash */
    float *sil = calloc(16000 * 5, sizeof(float));
    p = greedy_params();
    CU_ASSERT_EQUAL(tolk_transcribe(L.st, sil, 16000 * 5, &p, &a), TOLK_OK);
    if (a) {
        for (int i = 0; i < tolk_result_n_segments(a); i++)
            CU_ASSERT(strlen(tolk_result_segment(a, i)->text) < 200);
        tolk_result_free(a);
    }
    free(sil);

    /* beam search and best-of sampling with the full fallback schedule */
    p = greedy_params();
    p.beam_size = 3;
    p.best_of = 3;
    p.seed = 7;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n, &p, &a), TOLK_OK);
    CU_ASSERT(strstr(tolk_result_text(a), "what you can do for your country") != NULL);
    tolk_result_free(a);
    p.temperatures[0] = 0.5f;
    size_t n3 = 16000 * 3; /* sampling on the first 3 s */
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n3, &p, &a), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n3, &p, &b), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(tolk_result_text(a), tolk_result_text(b)); /* seeded: reproducible */
    tolk_result_free(a);
    tolk_result_free(b);

    /* prompt, prefix, without timestamps */
    p = greedy_params();
    p.initial_prompt = "President Kennedy.";
    p.prefix = "And so";
    p.without_timestamps = 1;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(L.st, x, n, &p, &a), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_result_n_segments(a), 1);
    /* the prefix is fed, not returned: the text goes on after it */
    CU_ASSERT(strstr(tolk_result_text(a), "Americans") != NULL);
    CU_ASSERT(strncmp(tolk_result_text(a), " And so", 7) != 0);
    tolk_result_free(a);

    const char *codes[100];
    float probs[100];
    int nl = 0;
    CU_ASSERT_EQUAL(tolk_detect_language(L.st, x, n, codes, probs, &nl), TOLK_ERR_UNSUPPORTED);
    tolk_free(x);
    unload(&L);
}

static void test_detect_language(void) {
    loaded L;
    if (!load("base", &L)) return;
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(
        tolk_audio_load(L.ctx, tu_data("speech/multi/fleurs/fleurs-de-000.flac"), &x, &n), TOLK_OK);
    const char *codes[100];
    float probs[100];
    int nl = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_detect_language(L.st, x, n, codes, probs, &nl), TOLK_OK);
    CU_ASSERT_EQUAL(nl, 99);
    CU_ASSERT_STRING_EQUAL(codes[0], "de");
    double sum = 0;
    for (int i = 0; i < nl; i++) {
        sum += probs[i];
        if (i) CU_ASSERT(probs[i] <= probs[i - 1]);
    }
    CU_ASSERT_DOUBLE_EQUAL(sum, 1.0, 1e-3);
    tolk_free(x);
    unload(&L);
}

int main(void) {
    CU_TestInfo tests[] = {{"api", test_api},
                           {"detect_language", test_detect_language},
                           {"parity_tiny_en", test_parity_tiny_en},
                           {"parity_base", test_parity_base},
                           {"parity_env", test_parity_env},
                           CU_TEST_INFO_NULL};
    tu_add_suite("transcribe", tests);
    return tu_run();
}

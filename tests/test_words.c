/*
 * test_words.c — word-level timestamps (src/words.c, src/net_align.c).
 *
 * Pure steps against openai-whisper's own functions
 * (tests/fixtures/words/units.json, tests/fixtures/make_words.py --units):
 * DTW (timing.dtw_cpu: the fast tolk_dtw and the plain tolk_dtw_ref, random
 * costs and costs full of ties), the median filter (timing.median_filter),
 * the split into words (Tokenizer.split_to_word_tokens: spaces,
 * punctuation, characters for ja / zh, a character split between tokens),
 * add_word_timestamps on given alignments (punctuation merging, long
 * words, the distribution over segments, the boundary adjustments). The
 * hallucination rules on hand-made windows, the alignment heads table.
 *
 * An engine serving requests with and without words at once: each result
 * equals the request run alone.
 *
 * End to end with real weights (tests/fixtures/words/<model>.json, a subset
 * of the shared clips; skipped without the models): tolk with
 * word_timestamps (greedy, temperature 0, no fallback) against openai-whisper
 * word_timestamps=True on the same weights: on every clip whose text is the
 * reference's, the same words in the same order, start / end within 0.02 s
 * on at least 98 % of the words, and the srt / vtt of max_line_width 42 +
 * highlight_words byte-identical to openai-whisper's.
 */
#include "result.h"
#include "support/model_writer.h"
#include "testutil.h"
#include "tokenizer.h"
#include "tolk.h"
#include "words.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static cJSON *units(void) {
    static cJSON *u;
    if (!u) {
        char *s = read_all(tu_src("tests/fixtures/words/units.json"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        u = cJSON_Parse(s);
        free(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    }
    return u;
}

static double num(const cJSON *o, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}

/* ---- DTW, median filter, normalisation --------------------------------- */

static void test_dtw(void) {
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(units(), "dtw")) {
        const int n = (int)num(c, "n"), m = (int)num(c, "m");
        double *x = calloc((size_t)n * m, sizeof *x);
        int *j1 = calloc((size_t)n, sizeof *j1), *j2 = calloc((size_t)n, sizeof *j2);
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "x")) x[k++] = v->valuedouble;
        CU_ASSERT_EQUAL(tolk_dtw(x, n, m, j1), 0);
        CU_ASSERT_EQUAL(tolk_dtw_ref(x, n, m, j2), 0);
        k = 0;
        int same = 1;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "jump")) {
            same &= j1[k] == v->valueint && j2[k] == v->valueint;
            k++;
        }
        if (!same) fprintf(stderr, "  dtw %dx%d differs\n", n, m);
        CU_ASSERT(same);
        free(x);
        free(j1);
        free(j2);
        n_cases++;
    }
    CU_ASSERT(n_cases >= 10);
    /* the fast and the plain DTW agree on larger random and tied costs */
    tu_seed(7);
    for (int t = 0; t < 20; t++) {
        const int n = 1 + (int)tu_uniform(0, 60), m = (int)tu_uniform(0, 400);
        double *x = malloc(((size_t)n * m + 1) * sizeof *x);
        for (int i = 0; i < n * m; i++)
            x[i] = t % 2 ? floor(tu_uniform(-2, 2)) : tu_uniform(-1, 1);
        int *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        CU_ASSERT_EQUAL(tolk_dtw(x, n, m, a), 0);
        CU_ASSERT_EQUAL(tolk_dtw_ref(x, n, m, b), 0);
        CU_ASSERT(memcmp(a, b, (size_t)n * sizeof *a) == 0);
        for (int i = 1; i < n; i++)
            CU_ASSERT(a[i] >= a[i - 1]); /* monotone */
        if (m == 0) CU_ASSERT_EQUAL(a[0], -1);
        free(x);
        free(a);
        free(b);
    }
}

static void test_median_filter(void) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(units(), "median")) {
        const int rows = (int)num(c, "rows"), f = (int)num(c, "f");
        float *x = calloc((size_t)rows * f, sizeof *x), *tmp = calloc((size_t)f + 8, sizeof *tmp);
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "x")) x[k++] =
            (float)v->valuedouble;
        tolk_words_median_filter(x, rows, f, 7, tmp);
        k = 0;
        int same = 1;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "y")) {
            same &= x[k] == (float)v->valuedouble;
            k++;
        }
        if (!same) fprintf(stderr, "  median filter, %d frames, differs\n", f);
        CU_ASSERT(same);
        free(x);
        free(tmp);
    }
}

static void test_normalize(void) {
    enum { H = 2, T = 5, F = 9 };
    float w[H * T * F];
    tu_seed(3);
    tu_fill_uniform(w, H * T * F, 0.0f, 1.0f);
    tolk_words_normalize(w, H, T, F);
    for (int p = 0; p < H; p++)
        for (int f = 0; f < F; f++) {
            double s = 0, s2 = 0;
            for (int t = 0; t < T; t++) {
                double v = w[(p * T + t) * F + f];
                s += v;
                s2 += v * v;
            }
            CU_ASSERT(fabs(s / T) < 1e-5);
            CU_ASSERT(fabs(s2 / T - 1.0) < 1e-4); /* biased: divides by T */
        }
}

/* ---- words ------------------------------------------------------------- */

static void test_split(void) {
    tolk_tokenizer *tk[2] = {NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_new_from_tiktoken(
                              NULL, tu_shared("whisper-assets/gpt2.tiktoken"), 0, 51864, &tk[0]),
                          TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(
        tolk_tokenizer_new_from_tiktoken(NULL, tu_shared("whisper-assets/multilingual.tiktoken"), 1,
                                         51865, &tk[1]),
        TOLK_OK);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(units(), "split")) {
        const int multi = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "multilingual"));
        const char *lang = cJSON_GetObjectItemCaseSensitive(c, "language")->valuestring;
        const int by_unicode = !strcmp(lang, "ja") || !strcmp(lang, "zh");
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(c, "tokens");
        int n = cJSON_GetArraySize(toks), *ids = calloc((size_t)n, sizeof *ids), k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, toks) ids[k++] = v->valueint;
        tolk_wtiming *w = NULL;
        int nw = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_words_split(tk[multi], ids, n, by_unicode, &w, &nw), TOLK_OK);
        const cJSON *words = cJSON_GetObjectItemCaseSensitive(c, "words");
        const cJSON *counts = cJSON_GetObjectItemCaseSensitive(c, "n_tokens");
        int same = nw == cJSON_GetArraySize(words);
        for (int i = 0; same && i < nw; i++)
            same = !strcmp(w[i].word, cJSON_GetArrayItem(words, i)->valuestring) &&
                   w[i].n_tokens == cJSON_GetArrayItem(counts, i)->valueint;
        if (!same) {
            fprintf(stderr, "  split (%s) differs:", lang);
            for (int i = 0; i < nw; i++)
                fprintf(stderr, " [%s|%d]", w[i].word, w[i].n_tokens);
            fprintf(stderr, "\n");
        }
        CU_ASSERT(same);
        tolk_wtiming_free(w, nw);
        free(ids);
        n_cases++;
    }
    CU_ASSERT(n_cases >= 6);
    tolk_tokenizer_free(tk[0]);
    tolk_tokenizer_free(tk[1]);
}

/* add_word_timestamps on a given alignment: clip, merge, assign. */
static void test_add_words(void) {
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(units(), "add")) {
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(c, "alignment");
        const int na = cJSON_GetArraySize(al);
        tolk_wtiming *a = calloc((size_t)na + 1, sizeof *a);
        for (int i = 0; i < na; i++) {
            const cJSON *x = cJSON_GetArrayItem(al, i);
            a[i].word = strdup(cJSON_GetArrayItem(x, 0)->valuestring);
            a[i].n_tokens = cJSON_GetArrayItem(x, 1)->valueint;
            a[i].start = cJSON_GetArrayItem(x, 2)->valuedouble;
            a[i].end = cJSON_GetArrayItem(x, 3)->valuedouble;
            a[i].probability = cJSON_GetArrayItem(x, 4)->valuedouble;
        }
        const cJSON *sin = cJSON_GetObjectItemCaseSensitive(c, "segments_in");
        const int ns = cJSON_GetArraySize(sin);
        tolk_seg_rec *segs = calloc((size_t)ns, sizeof *segs);
        int *counts = calloc((size_t)ns, sizeof *counts);
        for (int s = 0; s < ns; s++) {
            const cJSON *x = cJSON_GetArrayItem(sin, s);
            tolk_segment f;
            memset(&f, 0, sizeof f);
            f.seek = (int)num(x, "seek");
            f.start = num(x, "start");
            f.end = num(x, "end");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(x, "tokens");
            int nt = cJSON_GetArraySize(t), *ids = calloc((size_t)nt + 1, sizeof *ids);
            for (int i = 0; i < nt; i++) {
                ids[i] = cJSON_GetArrayItem(t, i)->valueint;
                counts[s] += ids[i] < 50257;
            }
            CU_ASSERT_FATAL(tolk_seg_rec_init(&segs[s], &f, "", ids, nt));
            free(ids);
        }
        double median = 0, last = num(c, "last_speech");
        tolk_words_clip_long(a, na, &median);
        CU_ASSERT(tolk_words_merge_punctuations(
            a, na, cJSON_GetObjectItemCaseSensitive(c, "prepend")->valuestring,
            cJSON_GetObjectItemCaseSensitive(c, "append")->valuestring));
        const double offset = segs[0].pub.seek * 160.0 / 16000.0;
        CU_ASSERT(tolk_words_assign(segs, ns, counts, a, na, offset, median, &last));
        const cJSON *sout = cJSON_GetObjectItemCaseSensitive(c, "segments_out");
        int same = 1;
        for (int s = 0; s < ns; s++) {
            const cJSON *x = cJSON_GetArrayItem(sout, s);
            const cJSON *ws = cJSON_GetObjectItemCaseSensitive(x, "words");
            same &= fabs(segs[s].pub.start - num(x, "start")) < 1e-9 &&
                    fabs(segs[s].pub.end - num(x, "end")) < 1e-9 &&
                    segs[s].pub.n_words == cJSON_GetArraySize(ws);
            for (int i = 0; same && i < segs[s].pub.n_words; i++) {
                const cJSON *e = cJSON_GetArrayItem(ws, i);
                const tolk_word *w = &segs[s].words[i];
                same &= !strcmp(w->word, cJSON_GetArrayItem(e, 0)->valuestring) &&
                        fabs(w->start - cJSON_GetArrayItem(e, 1)->valuedouble) < 1e-9 &&
                        fabs(w->end - cJSON_GetArrayItem(e, 2)->valuedouble) < 1e-9 &&
                        fabs(w->probability - cJSON_GetArrayItem(e, 3)->valuedouble) < 1e-9;
            }
        }
        if (!same) {
            fprintf(stderr, "  add_word_timestamps case %d differs:\n", n_cases);
            for (int s = 0; s < ns; s++) {
                fprintf(stderr, "    [%g %g]", segs[s].pub.start, segs[s].pub.end);
                for (int i = 0; i < segs[s].pub.n_words; i++)
                    fprintf(stderr, " '%s' %g %g", segs[s].words[i].word, segs[s].words[i].start,
                            segs[s].words[i].end);
                fprintf(stderr, "\n");
            }
        }
        CU_ASSERT(same);
        for (int s = 0; s < ns; s++)
            tolk_seg_rec_clear(&segs[s]);
        free(segs);
        free(counts);
        tolk_wtiming_free(a, na);
        n_cases++;
    }
    CU_ASSERT(n_cases >= 5);
}

/* ---- hallucination rules ------------------------------------------------ */

/* A segment [a, b] with words (w, start, end, probability) quadruples. */
static void mkseg(tolk_seg_rec *r, double a, double b, int nw, const tolk_word *w) {
    tolk_segment f;
    memset(&f, 0, sizeof f);
    f.start = a;
    f.end = b;
    int tok = 100;
    CU_ASSERT_FATAL(tolk_seg_rec_init(r, &f, " x", &tok, 1));
    CU_ASSERT_FATAL(tolk_seg_rec_set_words(r, w, nw));
}

#define W(word, a, b, p)                                                                           \
    { sizeof(tolk_word), word, a, b, p }

static void test_hallucination(void) {
    /* window at 10 s: a good segment, then a suspect one (low probability,
     * very short words) after 5 s of silence, then nothing */
    const tolk_word good[] = {W(" We", 10.5, 10.8, 0.9), W(" went", 10.8, 11.2, 0.95),
                              W(" home.", 11.2, 11.8, 0.9)};
    const tolk_word bad[] = {W(" Thank", 17.0, 17.02, 0.1), W(" you.", 17.02, 17.04, 0.05)};
    tolk_seg_rec segs[2];
    mkseg(&segs[0], 10.5, 11.8, 3, good);
    mkseg(&segs[1], 17.0, 17.04, 2, bad);
    CU_ASSERT(!tolk_words_segment_anomaly(&segs[0]));
    CU_ASSERT(tolk_words_segment_anomaly(&segs[1]));
    tolk_words_window win = {.previous_seek = 1000,
                             .segment_size = 3000,
                             .content_frames = 6000,
                             .single_timestamp_ending = 0,
                             .seek = 2700};
    tolk_words_decision d;
    double last = 10.0;
    /* off: seek to the last word's end (17.04 s), keep both */
    tolk_words_decide(segs, 2, &win, -1.0, &last, &d);
    CU_ASSERT_EQUAL(d.seek, 1704);
    CU_ASSERT_EQUAL(d.n_keep, 2);
    CU_ASSERT_EQUAL(d.skip_window, 0);
    CU_ASSERT_DOUBLE_EQUAL(last, 17.04, 1e-12);
    /* threshold 2 s: the suspect segment has silence on both sides: cut
     * there, seek to its start */
    last = 10.0;
    tolk_words_decide(segs, 2, &win, 2.0, &last, &d);
    CU_ASSERT_EQUAL(d.n_keep, 1);
    CU_ASSERT_EQUAL(d.skip_window, 0);
    CU_ASSERT_EQUAL(d.seek, 1700);
    CU_ASSERT_DOUBLE_EQUAL(last, 11.8, 1e-12);
    /* ... near the end of the content: seek to the end */
    win.content_frames = 1800;
    last = 10.0;
    tolk_words_decide(segs, 2, &win, 2.0, &last, &d);
    CU_ASSERT_EQUAL(d.seek, 1800);
    win.content_frames = 6000;
    /* a suspect FIRST segment after 7 s of silence: drop the window, seek
     * over the silence */
    tolk_seg_rec one[1];
    mkseg(&one[0], 17.0, 17.04, 2, bad);
    last = 10.0;
    tolk_words_decide(one, 1, &win, 2.0, &last, &d);
    CU_ASSERT_EQUAL(d.skip_window, 1);
    CU_ASSERT_EQUAL(d.seek, 1700);
    CU_ASSERT_DOUBLE_EQUAL(last, 10.0, 1e-12); /* unchanged */
    /* a single timestamp ending keeps the timestamp rule's seek */
    win.single_timestamp_ending = 1;
    last = 10.0;
    tolk_words_decide(segs, 2, &win, -1.0, &last, &d);
    CU_ASSERT_EQUAL(d.seek, 2700);
    /* remaining time of the window under the threshold: the whole window */
    win.single_timestamp_ending = 0;
    last = 10.0;
    tolk_words_decide(segs, 1, &win, 30.0, &last, &d);
    CU_ASSERT_EQUAL(d.seek, 1000 + 3000);
    /* only punctuation: an anomaly (no words counted) */
    const tolk_word punct[] = {W(",", 1.0, 1.5, 0.9)};
    tolk_seg_rec p1;
    mkseg(&p1, 1.0, 1.5, 1, punct);
    CU_ASSERT(tolk_words_segment_anomaly(&p1));
    tolk_seg_rec_clear(&p1);
    tolk_seg_rec_clear(&one[0]);
    tolk_seg_rec_clear(&segs[0]);
    tolk_seg_rec_clear(&segs[1]);
}

static void test_heads_table(void) {
    int n = 0;
    const int(*h)[2] = tolk_alignment_heads_default("base", &n);
    CU_ASSERT_EQUAL_FATAL(n, 8);
    CU_ASSERT(h[0][0] == 3 && h[0][1] == 1 && h[7][0] == 5 && h[7][1] == 6);
    h = tolk_alignment_heads_default("tiny.en", &n);
    CU_ASSERT(n == 8 && h[0][0] == 1 && h[0][1] == 0);
    const char *names[] = {"tiny",   "base.en",  "small.en", "small",         "medium.en",
                           "medium", "large-v2", "large-v3", "large-v3-turbo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CU_ASSERT_PTR_NOT_NULL(tolk_alignment_heads_default(names[i], &n));
        CU_ASSERT(n > 0);
    }
    CU_ASSERT_PTR_NULL(tolk_alignment_heads_default("custom", &n));
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NULL(tolk_alignment_heads_default(NULL, &n));
    /* a model without heads of its own and no published set: a clear error */
    tolk_weights w;
    memset(&w, 0, sizeof w);
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_alignment_heads(ctx, &w, "distil-large-v3", "/m/x", &h, &n),
                    TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "/m/x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "alignment heads"));
    CU_ASSERT_EQUAL(tolk_alignment_heads(ctx, &w, "small", "/m/x", &h, &n), TOLK_OK);
    CU_ASSERT_EQUAL(n, 10);
    int own[1][2] = {{0, 1}};
    w.cfg.alignment_heads = own;
    w.cfg.n_alignment_heads = 1;
    CU_ASSERT_EQUAL(tolk_alignment_heads(ctx, &w, "small", "/m/x", &h, &n), TOLK_OK);
    CU_ASSERT(n == 1 && h[0][1] == 1);
    tolk_ctx_free(ctx);
}

/* ---- end to end ---------------------------------------------------------- */

typedef struct tally {
    int files, same_text, words, within, subs_same, subs;
    double max_diff;
} tally;

static tolk_transcribe_params word_params(void) {
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.n_temperatures = 1;
    p.temperatures[0] = 0.0f;
    p.beam_size = 0;
    p.best_of = 1;
    p.word_timestamps = 1;
    return p;
}

/* A model without alignment heads of its own and of no published size (a
 * random-weight CTranslate2 directory with tiny.en's tokenizer): word
 * timestamps fail before transcribing, naming the model. */
static void test_no_heads(void) {
    const char *en = tu_require_model("tiny.en");
    if (!en) return;
    mw_spec spec = mw_spec_make(80, 51864, 64, 1, 1);
    char path[1024], src[1024], dst[1100];
    snprintf(path, sizeof path, "%s", tu_tmp("custom"));
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(path, &spec), 0);
    snprintf(src, sizeof src, "%s/tokenizer.json", en);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", path);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    CU_ASSERT_FATAL(in && out);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        CU_ASSERT_FATAL(fwrite(buf, 1, k, out) == k);
    fclose(in);
    fclose(out);
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_status s = tolk_model_load(ctx, path, NULL, &m);
    if (s != TOLK_OK) fprintf(stderr, "  %s\n", tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL_FATAL(s, TOLK_OK);
    s = tolk_state_new(ctx, m, &st);
    if (s != TOLK_OK) fprintf(stderr, "  %s\n", tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL_FATAL(s, TOLK_OK);
    float *x = calloc(16000, sizeof *x);
    tolk_transcribe_params p = word_params();
    tolk_result *r = NULL;
    /* the heads its config.json carries: words (of random weights) */
    CU_ASSERT_EQUAL(tolk_transcribe(st, x, 16000, &p, &r), TOLK_OK);
    CU_ASSERT(tolk_result_has_words(r));
    tolk_result_free(r);
    r = NULL;
    tolk_state_free(st);
    tolk_model_free(m);
    /* config.json without "alignment_heads" */
    snprintf(dst, sizeof dst, "%s/config.json", path);
    char *cfg = read_all(dst);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    cJSON *j = cJSON_Parse(cfg);
    free(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "alignment_heads");
    cfg = cJSON_Print(j);
    out = fopen(dst, "wb");
    CU_ASSERT_FATAL(out && fputs(cfg, out) >= 0);
    fclose(out);
    cJSON_free(cfg);
    cJSON_Delete(j);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, path, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, m, &st), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_transcribe(st, x, 16000, &p, &r), TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_state_last_error(st), "alignment heads"));
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_state_last_error(st), path));
    free(x);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
    mw_remove_dir(path);
}

static void check_clip(tolk_state *st, const cJSON *e, tally *t) {
    const char *rel = cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring;
    char path[1024];
    snprintf(path, sizeof path, "speech/%s", rel);
    tolk_transcribe_params p = word_params();
    p.language = cJSON_GetObjectItemCaseSensitive(e, "language")->valuestring;
    tolk_result *r = NULL;
    tolk_status s = tolk_transcribe_file(st, tu_shared(path), &p, &r);
    CU_ASSERT_EQUAL_FATAL(s, TOLK_OK);
    t->files++;
    CU_ASSERT(tolk_result_has_words(r));
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(e, "openai");
    const char *ref_text = cJSON_GetObjectItemCaseSensitive(ref, "text")->valuestring;
    if (strcmp(tolk_result_text(r), ref_text) != 0) {
        fprintf(stderr, "  %s: text differs (words not compared)\n", rel);
        tolk_result_free(r);
        return;
    }
    t->same_text++;
    /* the reference's words in order, and tolk's */
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(ref, "segments"), *sg;
    int ri = 0, same_words = 1;
    const int ns = tolk_result_n_segments(r);
    int gi = 0, wi = 0;
    cJSON_ArrayForEach(sg, segs) {
        const cJSON *w;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(sg, "words")) {
            while (gi < ns && wi >= tolk_result_segment(r, gi)->n_words) {
                gi++;
                wi = 0;
            }
            if (gi >= ns) {
                same_words = 0;
                break;
            }
            const tolk_word *tw = tolk_segment_word(tolk_result_segment(r, gi), wi++);
            ri++;
            if (strcmp(tw->word, cJSON_GetObjectItemCaseSensitive(w, "word")->valuestring)) {
                same_words = 0;
                break;
            }
            double d = fmax(fabs(tw->start - num(w, "start")), fabs(tw->end - num(w, "end")));
            t->words++;
            t->within += d <= 0.02 + 1e-9;
            if (d > t->max_diff) t->max_diff = d;
            if (d > 0.02 + 1e-9)
                fprintf(stderr, "  %s: '%s' %.2f-%.2f vs %.2f-%.2f\n", rel, tw->word, tw->start,
                        tw->end, num(w, "start"), num(w, "end"));
        }
    }
    if (!same_words) fprintf(stderr, "  %s: the words differ from word %d\n", rel, ri);
    CU_ASSERT(same_words);
    /* subtitles: --max_line_width 42 --highlight_words True */
    tolk_writer_options wo = tolk_writer_default_options();
    wo.max_line_width = 42;
    wo.highlight_words = 1;
    static const char *const keys[2] = {"openai_vtt", "openai_srt"};
    for (int f = 0; f < 2; f++) {
        char *got = NULL;
        CU_ASSERT_EQUAL(
            tolk_render_ex(NULL, r, f ? TOLK_OUTPUT_SRT : TOLK_OUTPUT_VTT, &wo, &got, NULL),
            TOLK_OK);
        const char *want = cJSON_GetObjectItemCaseSensitive(e, keys[f])->valuestring;
        t->subs++;
        int eq = got && !strcmp(got, want);
        t->subs_same += eq;
        if (!eq) fprintf(stderr, "  %s: %s differs\n", rel, keys[f]);
        CU_ASSERT(eq);
        tolk_free(got);
    }
    tolk_result_free(r);
}

static void run_fixture(const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/words/%s.json", model);
    char *src = read_all(tu_src(rel));
    if (!src) {
        tu_skip("no fixture %s", rel);
        return;
    }
    const char *dir = tu_require_model(model);
    if (!dir) {
        free(src);
        return;
    }
    cJSON *root = cJSON_Parse(src);
    free(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, m, &st), TOLK_OK);
    tally t = {0};
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "files")) check_clip(st, e, &t);
    fprintf(stderr,
            "\n  %s: %d clips, %d with the reference's text; %d words, %d (%.1f %%) within "
            "0.02 s (max %.2f s); subtitles %d/%d identical\n",
            model, t.files, t.same_text, t.words, t.within,
            t.words ? 100.0 * t.within / t.words : 100.0, t.max_diff, t.subs_same, t.subs);
    CU_ASSERT(t.same_text >= 1);
    CU_ASSERT(t.within >= 0.98 * t.words);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
    cJSON_Delete(root);
}

static void test_e2e_tiny_en(void) {
    run_fixture("tiny.en");
}

static void test_e2e_base(void) {
    run_fixture("base");
}

/* The API: options checked, a result without words by default. */
static void test_api(void) {
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return;
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, m, &st), TOLK_OK);
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx, tu_shared("speech/jfk.flac"), &x, &n), TOLK_OK);
    tolk_transcribe_params p = word_params();
    p.word_timestamps = 0;
    tolk_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &r), TOLK_OK);
    CU_ASSERT(!tolk_result_has_words(r));
    for (int i = 0; i < tolk_result_n_segments(r); i++)
        CU_ASSERT_EQUAL(tolk_result_segment(r, i)->n_words, 0);
    tolk_result_free(r);
    /* words; every segment's words inside the audio, in order */
    p = word_params();
    p.hallucination_silence_threshold = 2.0f;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &r), TOLK_OK);
    CU_ASSERT(tolk_result_has_words(r));
    double prev = 0;
    int total = 0;
    for (int i = 0; i < tolk_result_n_segments(r); i++) {
        const tolk_segment *s = tolk_result_segment(r, i);
        for (int k = 0; k < s->n_words; k++) {
            const tolk_word *w = tolk_segment_word(s, k);
            CU_ASSERT(w->start >= prev - 1e-9 && w->end >= w->start && w->end <= 11.01);
            CU_ASSERT(w->probability > 0 && w->probability <= 1);
            prev = w->start;
            total++;
        }
    }
    CU_ASSERT(total >= 20);
    tolk_result_free(r);
    /* custom punctuation sets: nothing merged */
    p = word_params();
    p.prepend_punctuations = "";
    p.append_punctuations = "";
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &r), TOLK_OK);
    tolk_result_free(r);
    tolk_free(x);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
}

/* Requests with and without words served together by one engine (their
 * alignment passes on different window slots, between shared decoder
 * steps): each result equals the request run alone. */
static int same_words(const tolk_result *a, const tolk_result *b) {
    if (strcmp(tolk_result_text(a), tolk_result_text(b)) ||
        tolk_result_n_segments(a) != tolk_result_n_segments(b) ||
        tolk_result_has_words(a) != tolk_result_has_words(b))
        return 0;
    for (int i = 0; i < tolk_result_n_segments(a); i++) {
        const tolk_segment *x = tolk_result_segment(a, i), *y = tolk_result_segment(b, i);
        if (x->start != y->start || x->end != y->end || x->n_words != y->n_words) return 0;
        for (int k = 0; k < x->n_words; k++) {
            const tolk_word *u = tolk_segment_word(x, k), *v = tolk_segment_word(y, k);
            if (strcmp(u->word, v->word) || u->start != v->start || u->end != v->end) return 0;
        }
    }
    return 1;
}

static void test_engine(void) {
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return;
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, m, &st), TOLK_OK);
    tolk_engine_params ep = tolk_engine_default_params();
    ep.background = 0;
    ep.max_requests = 4;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(ctx, m, &ep, &e), TOLK_OK);
    const char *files[3] = {"speech/jfk.flac",
                            "speech/en/librispeech/test-clean_1089-134686-0000.flac",
                            "speech/jfk.flac"};
    const int words[3] = {1, 1, 0};
    tolk_request *rq[3] = {NULL};
    tolk_result *alone[3] = {NULL};
    for (int i = 0; i < 3; i++) {
        tolk_transcribe_params p = word_params();
        p.word_timestamps = words[i];
        CU_ASSERT_EQUAL_FATAL(tolk_transcribe_file(st, tu_shared(files[i]), &p, &alone[i]),
                              TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_file(e, tu_shared(files[i]), &p, &rq[i]), TOLK_OK);
    }
    CU_ASSERT_EQUAL(tolk_engine_run(e), TOLK_OK);
    for (int i = 0; i < 3; i++) {
        tolk_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_request_result(rq[i], &r), TOLK_OK);
        CU_ASSERT(same_words(r, alone[i]));
        CU_ASSERT_EQUAL(tolk_result_has_words(r), words[i]);
        /* the polled segments carry the words too */
        tolk_result *polled = NULL;
        CU_ASSERT_EQUAL(tolk_request_segments(rq[i], 0, &polled), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_result_n_segments(polled), tolk_result_n_segments(r));
        CU_ASSERT_EQUAL(tolk_result_has_words(polled), words[i]);
        if (tolk_result_n_segments(r) > 0)
            CU_ASSERT_EQUAL(tolk_result_segment(polled, 0)->n_words,
                            tolk_result_segment(r, 0)->n_words);
        tolk_result_free(polled);
        tolk_result_free(r);
        tolk_result_free(alone[i]);
        tolk_request_free(rq[i]);
    }
    tolk_engine_free(e);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
}

int main(void) {
    CU_TestInfo tests[] = {{"dtw", test_dtw},
                           {"median_filter", test_median_filter},
                           {"normalize", test_normalize},
                           {"split", test_split},
                           {"add_words", test_add_words},
                           {"hallucination", test_hallucination},
                           {"heads_table", test_heads_table},
                           {"no_heads", test_no_heads},
                           {"api", test_api},
                           {"engine", test_engine},
                           {"e2e_tiny_en", test_e2e_tiny_en},
                           {"e2e_base", test_e2e_base},
                           CU_TEST_INFO_NULL};
    tu_add_suite("words", tests);
    int rc = tu_run();
    cJSON_Delete(units());
    return rc;
}

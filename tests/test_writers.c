/*
 * test_writers.c — output writers (src/writers.c) against openai-whisper's
 * writers: tests/fixtures/writers/results.json holds synthetic results and
 * NAME.{txt,vtt,srt,tsv,json} what openai-whisper wrote for them
 * (tests/fixtures/make_writers.py). Text formats must match byte for byte;
 * JSON must parse to the same keys (in order) and values. Also: argument
 * checks, invalid UTF-8, and tolk_write_file's atomic replace.
 */
#include "result.h"
#include "testutil.h"
#include "tolk.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const formats[] = {"txt", "vtt", "srt", "tsv", "json"};

/* Read a whole file into a NUL-terminated malloc'd buffer (*len bytes), or
 * NULL. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len) *len = (size_t)n;
    }
    return buf;
}

/* Build a tolk_result from the reference's result dict (as stored in
 * results.json), words included. Free with tolk_result_free. */
static tolk_result *result_from_json(const cJSON *j) {
    tolk_result *r = tolk_result_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    tolk_result_set_text(r, cJSON_GetObjectItemCaseSensitive(j, "text")->valuestring);
    tolk_result_set_language(r, cJSON_GetObjectItemCaseSensitive(j, "language")->valuestring);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "segments")) {
        tolk_segment g;
        memset(&g, 0, sizeof g);
        g.id = cJSON_GetObjectItemCaseSensitive(s, "id")->valueint;
        g.seek = cJSON_GetObjectItemCaseSensitive(s, "seek")->valueint;
        g.start = cJSON_GetObjectItemCaseSensitive(s, "start")->valuedouble;
        g.end = cJSON_GetObjectItemCaseSensitive(s, "end")->valuedouble;
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(s, "tokens");
        int n = cJSON_GetArraySize(toks);
        int *tokens = calloc((size_t)n + 1, sizeof *tokens);
        for (int k = 0; k < n; k++)
            tokens[k] = cJSON_GetArrayItem(toks, k)->valueint;
        g.temperature = (float)cJSON_GetObjectItemCaseSensitive(s, "temperature")->valuedouble;
        g.avg_logprob = (float)cJSON_GetObjectItemCaseSensitive(s, "avg_logprob")->valuedouble;
        g.compression_ratio =
            (float)cJSON_GetObjectItemCaseSensitive(s, "compression_ratio")->valuedouble;
        g.no_speech_prob =
            (float)cJSON_GetObjectItemCaseSensitive(s, "no_speech_prob")->valuedouble;
        tolk_seg_rec *rec = tolk_result_add_segment(
            r, &g, cJSON_GetObjectItemCaseSensitive(s, "text")->valuestring, tokens, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
        free(tokens);
        const cJSON *words = cJSON_GetObjectItemCaseSensitive(s, "words");
        int nw = cJSON_GetArraySize(words);
        if (!words) continue;
        r->has_words = 1; /* the reference: "words" in the first segment */
        tolk_word *w = calloc((size_t)nw + 1, sizeof *w);
        for (int k = 0; k < nw; k++) {
            const cJSON *x = cJSON_GetArrayItem(words, k);
            w[k].word = cJSON_GetObjectItemCaseSensitive(x, "word")->valuestring;
            w[k].start = cJSON_GetObjectItemCaseSensitive(x, "start")->valuedouble;
            w[k].end = cJSON_GetObjectItemCaseSensitive(x, "end")->valuedouble;
            w[k].probability = cJSON_GetObjectItemCaseSensitive(x, "probability")->valuedouble;
        }
        CU_ASSERT_FATAL(tolk_seg_rec_set_words(rec, w, nw));
        free(w);
    }
    return r;
}

/* Structural equality of two JSON values: same types, object keys in the
 * same order, equal strings, numbers equal as doubles. Reports the first
 * difference under path. */
static int json_equal(const cJSON *a, const cJSON *b, const char *path) {
    if ((a->type & 0xFF) != (b->type & 0xFF)) {
        fprintf(stderr, "  %s: type %d vs %d\n", path, a->type & 0xFF, b->type & 0xFF);
        return 0;
    }
    if (cJSON_IsNumber(a)) {
        if (a->valuedouble != b->valuedouble) {
            fprintf(stderr, "  %s: %.17g vs %.17g\n", path, a->valuedouble, b->valuedouble);
            return 0;
        }
        return 1;
    }
    if (cJSON_IsString(a)) {
        if (strcmp(a->valuestring, b->valuestring)) {
            fprintf(stderr, "  %s: \"%s\" vs \"%s\"\n", path, a->valuestring, b->valuestring);
            return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
        const cJSON *x = a->child, *y = b->child;
        char sub[256];
        for (int i = 0; x && y; x = x->next, y = y->next, i++) {
            if (cJSON_IsObject(a)) {
                if (strcmp(x->string, y->string)) {
                    fprintf(stderr, "  %s: key \"%s\" vs \"%s\"\n", path, x->string, y->string);
                    return 0;
                }
                snprintf(sub, sizeof sub, "%s.%s", path, x->string);
            } else {
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
            }
            if (!json_equal(x, y, sub)) return 0;
        }
        if (x || y) {
            fprintf(stderr, "  %s: different lengths\n", path);
            return 0;
        }
        return 1;
    }
    return 1; /* null, true, false */
}

/* Every case in results.json, every format, against the reference files. */
static void test_reference_outputs(void) {
    const char *dir = tu_src("tests/fixtures/writers");
    char path[4096];
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *src = read_all(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    cJSON *cases = cJSON_Parse(src);
    free(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cases);
    CU_ASSERT(cJSON_GetArraySize(cases) >= 3);

    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        tolk_result *r = result_from_json(c);
        for (int f = 0; f < 5; f++) {
            snprintf(path, sizeof path, "%s/%s.%s", dir, c->string, formats[f]);
            size_t want_len = 0;
            char *want = read_all(path, &want_len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(want);
            char *got = NULL;
            size_t got_len = 0;
            int fmt = tolk_output_format_from_name(formats[f]);
            CU_ASSERT_EQUAL(fmt, f);
            CU_ASSERT_EQUAL_FATAL(tolk_render(ctx, r, (tolk_output_format)fmt, &got, &got_len),
                                  TOLK_OK);
            CU_ASSERT_EQUAL(strlen(got), got_len);
            if (f == TOLK_OUTPUT_JSON) {
                cJSON *a = cJSON_Parse(got), *b = cJSON_Parse(want);
                CU_ASSERT_PTR_NOT_NULL(a);
                CU_ASSERT_PTR_NOT_NULL(b);
                int eq = a && b && json_equal(a, b, c->string);
                if (!eq) fprintf(stderr, "  %s differs\n", path);
                CU_ASSERT(eq);
                cJSON_Delete(a);
                cJSON_Delete(b);
            } else {
                int eq = got_len == want_len && memcmp(got, want, want_len) == 0;
                if (!eq)
                    fprintf(stderr, "  %s differs:\n---got---\n%s---want---\n%s", path, got, want);
                CU_ASSERT(eq);
            }
            tolk_free(got);
            free(want);
        }
        tolk_result_free(r);
    }
    tolk_ctx_free(ctx);
    cJSON_Delete(cases);
}

/* Results with words, every subtitle option set of options.json, against
 * NAME.OPT.srt / .vtt (openai-whisper's writers with those options). */
static void test_word_options(void) {
    const char *dir = tu_src("tests/fixtures/writers");
    char path[4096];
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *src = read_all(path, NULL);
    snprintf(path, sizeof path, "%s/options.json", dir);
    char *osrc = read_all(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(osrc);
    cJSON *cases = cJSON_Parse(src), *opts = cJSON_Parse(osrc);
    free(src);
    free(osrc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cases);
    CU_ASSERT_PTR_NOT_NULL_FATAL(opts);
    int n_checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (strncmp(c->string, "words_", 6) != 0) continue;
        tolk_result *r = result_from_json(c);
        CU_ASSERT(tolk_result_has_words(r));
        const cJSON *o;
        cJSON_ArrayForEach(o, opts) {
            tolk_writer_options wo = tolk_writer_default_options();
            const cJSON *v;
            if ((v = cJSON_GetObjectItemCaseSensitive(o, "highlight_words")))
                wo.highlight_words = cJSON_IsTrue(v);
            if ((v = cJSON_GetObjectItemCaseSensitive(o, "max_line_width")))
                wo.max_line_width = v->valueint;
            if ((v = cJSON_GetObjectItemCaseSensitive(o, "max_line_count")))
                wo.max_line_count = v->valueint;
            if ((v = cJSON_GetObjectItemCaseSensitive(o, "max_words_per_line")))
                wo.max_words_per_line = v->valueint;
            for (int f = TOLK_OUTPUT_VTT; f <= TOLK_OUTPUT_SRT; f++) {
                snprintf(path, sizeof path, "%s/%s.%s.%s", dir, c->string, o->string, formats[f]);
                size_t want_len = 0, got_len = 0;
                char *want = read_all(path, &want_len), *got = NULL;
                CU_ASSERT_PTR_NOT_NULL_FATAL(want);
                CU_ASSERT_EQUAL_FATAL(
                    tolk_render_ex(NULL, r, (tolk_output_format)f, &wo, &got, &got_len), TOLK_OK);
                int eq = got_len == want_len && memcmp(got, want, want_len) == 0;
                if (!eq)
                    fprintf(stderr, "  %s differs:\n---got---\n%s---want---\n%s", path, got, want);
                CU_ASSERT(eq);
                n_checked++;
                tolk_free(got);
                free(want);
            }
        }
        /* txt, tsv and json ignore the options */
        tolk_writer_options wo = tolk_writer_default_options();
        wo.max_line_width = 10;
        wo.highlight_words = 1;
        for (int f = 0; f < 5; f++) {
            if (f == TOLK_OUTPUT_VTT || f == TOLK_OUTPUT_SRT) continue;
            char *a = NULL, *b = NULL;
            CU_ASSERT_EQUAL(tolk_render_ex(NULL, r, (tolk_output_format)f, &wo, &a, NULL), TOLK_OK);
            CU_ASSERT_EQUAL(tolk_render(NULL, r, (tolk_output_format)f, &b, NULL), TOLK_OK);
            CU_ASSERT(a && b && strcmp(a, b) == 0);
            tolk_free(a);
            tolk_free(b);
        }
        /* an older caller's smaller options struct: later fields default */
        wo = tolk_writer_default_options();
        wo.highlight_words = 1;
        wo.max_line_width = 5;
        wo.struct_size = offsetof(tolk_writer_options, max_line_width);
        char *a = NULL, *b = NULL;
        tolk_writer_options hl = tolk_writer_default_options();
        hl.highlight_words = 1;
        CU_ASSERT_EQUAL(tolk_render_ex(NULL, r, TOLK_OUTPUT_SRT, &wo, &a, NULL), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_render_ex(NULL, r, TOLK_OUTPUT_SRT, &hl, &b, NULL), TOLK_OK);
        CU_ASSERT(a && b && strcmp(a, b) == 0);
        tolk_free(a);
        tolk_free(b);
        tolk_result_free(r);
    }
    CU_ASSERT(n_checked >= 40);
    cJSON_Delete(cases);
    cJSON_Delete(opts);
}

static void test_format_names(void) {
    for (int f = 0; f < 5; f++) {
        CU_ASSERT_EQUAL(tolk_output_format_from_name(formats[f]), f);
        CU_ASSERT_STRING_EQUAL(tolk_output_format_ext((tolk_output_format)f), formats[f]);
    }
    CU_ASSERT_EQUAL(tolk_output_format_from_name("all"), -1);
    CU_ASSERT_EQUAL(tolk_output_format_from_name("TXT"), -1);
    CU_ASSERT_EQUAL(tolk_output_format_from_name(""), -1);
    CU_ASSERT_EQUAL(tolk_output_format_from_name(NULL), -1);
    CU_ASSERT_PTR_NULL(tolk_output_format_ext((tolk_output_format)5));
    CU_ASSERT_PTR_NULL(tolk_output_format_ext((tolk_output_format)-1));
}

/* A one-segment result (tolk_result_free); its segment's public fields are
 * changed in place through seg0. */
static tolk_result *one_segment(const char *text, double start, double end) {
    tolk_result *r = tolk_result_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    tolk_segment f;
    memset(&f, 0, sizeof f);
    f.start = start;
    f.end = end;
    CU_ASSERT_PTR_NOT_NULL_FATAL(tolk_result_add_segment(r, &f, text, NULL, 0));
    tolk_result_set_text(r, text);
    tolk_result_set_language(r, "en");
    return r;
}

static tolk_segment *seg0(tolk_result *r) {
    return &r->segs[0].pub;
}

static void expect_invalid(tolk_ctx *ctx, const tolk_result *r, int fmt) {
    char *out = (char *)1;
    size_t len = 7;
    CU_ASSERT_EQUAL(tolk_render(ctx, r, (tolk_output_format)fmt, &out, &len), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT(strlen(tolk_ctx_last_error(ctx)) > 0);
}

static void test_bad_arguments(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_result *r = one_segment(" hi", 0.0, 1.0);
    tolk_segment *s = seg0(r);
    char *out = NULL;
    CU_ASSERT_EQUAL(tolk_render(ctx, NULL, TOLK_OUTPUT_TXT, &out, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_render(ctx, r, TOLK_OUTPUT_TXT, NULL, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_render(NULL, r, TOLK_OUTPUT_TXT, NULL, NULL), TOLK_ERR_INVALID_ARG);
    expect_invalid(ctx, r, 5);
    expect_invalid(ctx, r, -1);
    for (int f = 0; f < 5; f++) {
        s->start = NAN;
        expect_invalid(ctx, r, f);
        s->start = -0.5;
        expect_invalid(ctx, r, f);
        s->start = 0.0;
        s->end = INFINITY;
        expect_invalid(ctx, r, f);
        s->end = 1e300;
        expect_invalid(ctx, r, f);
        s->end = 1.0;
        const int *tokens = s->tokens;
        s->tokens = NULL;
        s->n_tokens = 3; /* no token array */
        expect_invalid(ctx, r, f);
        s->tokens = tokens;
        s->n_tokens = -1;
        expect_invalid(ctx, r, f);
        s->n_tokens = 0;
        /* and the same result renders again once repaired */
        CU_ASSERT_EQUAL(tolk_render(ctx, r, (tolk_output_format)f, &out, NULL), TOLK_OK);
        tolk_free(out);
    }
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_TXT, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_TXT, ""), TOLK_ERR_INVALID_ARG);
    tolk_result_free(r);
    tolk_ctx_free(ctx);
}

/* Bad UTF-8 becomes U+FFFD as Python's decode(errors="replace") makes it
 * (one per maximal ill-formed subpart), NULL texts are empty, whitespace-only text
 * strips to nothing, and the JSON stays valid. */
static void test_text_cleaning(void) {
    tolk_result *r = one_segment(" a\xff"
                                 "b \xc3",
                                 0.0, 1.0);
    tolk_segment f = *seg0(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tolk_result_add_segment(
        r, &f, "\xc0\xaf\xed\xa0\x80 \xe2\x82\xac\xf0\x9f\x8e\x89 \xe2\x82x\xf0\x9f\x8ez\xf4\x90",
        NULL, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(tolk_result_add_segment(r, &f, "", NULL, 0));
    r->segs[2].pub.text = NULL;
    free(r->text);
    r->text = NULL;
    char *out = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_TXT, &out, &len), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "a\xef\xbf\xbd"
                                "b \xef\xbf\xbd\n"
                                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                " \xe2\x82\xac\xf0\x9f\x8e\x89 \xef\xbf\xbdx\xef\xbf\xbdz"
                                "\xef\xbf\xbd\xef\xbf\xbd\n\n");
    tolk_free(out);

    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_JSON, &out, &len), TOLK_OK);
    cJSON *j = cJSON_Parse(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItemCaseSensitive(j, "text")->valuestring, "");
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(j, "segments");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(segs), 3);
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(segs, 0), "text")->valuestring,
        " a\xef\xbf\xbd"
        "b \xef\xbf\xbd");
    CU_ASSERT_EQUAL(
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(segs, 0), "tokens")),
        0);
    cJSON_Delete(j);
    tolk_free(out);

    /* only whitespace (ASCII, NBSP, ideographic space, line separator) */
    seg0(r)->text = " \t\xc2\xa0\xe3\x80\x80\xe2\x80\xa8\n";
    r->n_segs = 1; /* the other two stay owned by the record array */
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_SRT, &out, &len), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "1\n00:00:00,000 --> 00:00:01,000\n\n\n");
    tolk_free(out);
    /* zero-width space (U+200B) is not whitespace for Python */
    seg0(r)->text = "\xe2\x80\x8bx\xe2\x80\x8b";
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_TXT, &out, &len), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "\xe2\x80\x8bx\xe2\x80\x8b\n");
    tolk_free(out);
    r->n_segs = 3;
    seg0(r)->text = r->segs[0].text;
    tolk_result_free(r);
}

/* Round half to even on the millisecond product, hours past 99. */
static void test_timestamps(void) {
    tolk_result *r = one_segment("x", 0.0625, 0.1875); /* 62.5 ms, 187.5 ms */
    tolk_segment *s = seg0(r);
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_TSV, &out, NULL), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "start\tend\ttext\n62\t188\tx\n");
    tolk_free(out);
    s->start = 3599.9996; /* rounds up into the next hour */
    s->end = 400000.0;    /* 111 hours */
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_VTT, &out, NULL), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "WEBVTT\n\n01:00:00.000 --> 111:06:40.000\nx\n\n");
    tolk_free(out);
    tolk_result_free(r);
}

/* Many segments: the buffer grows; lengths add up. */
static void test_many_segments(void) {
    enum { N = 20000 };
    tolk_result *r = tolk_result_new();
    for (int i = 0; i < N; i++) {
        tolk_segment f;
        memset(&f, 0, sizeof f);
        f.id = i;
        f.start = i * 1.5;
        f.end = i * 1.5 + 1.0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(tolk_result_add_segment(r, &f, " hello world", NULL, 0));
    }
    char *out = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_TXT, &out, &len), TOLK_OK);
    CU_ASSERT_EQUAL(len, (size_t)N * strlen("hello world\n"));
    tolk_free(out);
    CU_ASSERT_EQUAL_FATAL(tolk_render(NULL, r, TOLK_OUTPUT_JSON, &out, &len), TOLK_OK);
    cJSON *j = cJSON_Parse(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "segments")), N);
    cJSON_Delete(j);
    tolk_free(out);
    tolk_result_free(r);
}

/* Number of entries in dir whose name contains needle. */
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

static void test_write_file(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_result *r = one_segment(" first", 0.0, 2.0);
    tolk_segment *s = seg0(r);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("w"));
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/out.srt", dir);

    CU_ASSERT_EQUAL_FATAL(tolk_write_file(ctx, r, TOLK_OUTPUT_SRT, path), TOLK_OK);
    char *got = read_all(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, "1\n00:00:00,000 --> 00:00:02,000\nfirst\n\n");
    free(got);

    /* replacing an existing file */
    s->text = " second";
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_SRT, path), TOLK_OK);
    got = read_all(path, NULL);
    CU_ASSERT_STRING_EQUAL(got, "1\n00:00:00,000 --> 00:00:02,000\nsecond\n\n");
    free(got);

    /* a failed render leaves the old file as it was */
    s->start = NAN;
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_SRT, path), TOLK_ERR_INVALID_ARG);
    s->start = 0.0;
    got = read_all(path, NULL);
    CU_ASSERT_STRING_EQUAL(got, "1\n00:00:00,000 --> 00:00:02,000\nsecond\n\n");
    free(got);

    /* a missing directory: IO error naming the path, nothing created */
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/missing/out.txt", dir);
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_TXT, bad), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), bad));
    CU_ASSERT(!tu_exists(bad));

    /* the target is a directory: rename fails, no temporary file remains */
    snprintf(bad, sizeof bad, "%s/sub", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(bad, 0700), 0);
    CU_ASSERT_EQUAL(tolk_write_file(ctx, r, TOLK_OUTPUT_JSON, bad), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), bad));
    CU_ASSERT_EQUAL(count_entries(dir, ".tmp-"), 0);
    CU_ASSERT_EQUAL(count_entries(dir, ""), 4); /* ".", "..", out.srt, sub */

    /* every format through the file path equals tolk_render */
    for (int f = 0; f < 5; f++) {
        snprintf(path, sizeof path, "%s/all.%s", dir, formats[f]);
        CU_ASSERT_EQUAL(tolk_write_file(ctx, r, (tolk_output_format)f, path), TOLK_OK);
        char *want = NULL;
        size_t want_len = 0, got_len = 0;
        CU_ASSERT_EQUAL(tolk_render(ctx, r, (tolk_output_format)f, &want, &want_len), TOLK_OK);
        got = read_all(path, &got_len);
        CU_ASSERT(got && got_len == want_len && !memcmp(got, want, want_len));
        free(got);
        tolk_free(want);
    }
    CU_ASSERT_EQUAL(count_entries(dir, ".tmp-"), 0);
    tolk_result_free(r);
    tolk_ctx_free(ctx);
}

/* Words with invalid times are refused like segments. */
static void test_word_checks(void) {
    tolk_result *r = one_segment(" a b", 0.0, 1.0);
    r->has_words = 1;
    tolk_word w[2] = {{sizeof(tolk_word), " a", 0.0, 0.5, 0.9},
                      {sizeof(tolk_word), " b", 0.5, 1.0, 0.8}};
    CU_ASSERT_FATAL(tolk_seg_rec_set_words(&r->segs[0], w, 2));
    const tolk_segment *s = tolk_result_segment(r, 0);
    CU_ASSERT_EQUAL(s->n_words, 2);
    CU_ASSERT(TOLK_HAS_FIELD(s, tolk_segment, n_words));
    const tolk_word *w1 = tolk_segment_word(s, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w1);
    CU_ASSERT_STRING_EQUAL(w1->word, " b");
    CU_ASSERT(TOLK_HAS_FIELD(w1, tolk_word, probability));
    CU_ASSERT_PTR_NULL(tolk_segment_word(s, 2));
    CU_ASSERT_PTR_NULL(tolk_segment_word(s, -1));
    CU_ASSERT_PTR_NULL(tolk_result_segment(r, 1));
    char *out = NULL;
    CU_ASSERT_EQUAL(tolk_render(NULL, r, TOLK_OUTPUT_SRT, &out, NULL), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(out, "1\n00:00:00,000 --> 00:00:01,000\na b\n\n");
    tolk_free(out);
    r->segs[0].words[1].end = NAN;
    for (int f = 0; f < 5; f++) {
        CU_ASSERT_EQUAL(tolk_render(NULL, r, (tolk_output_format)f, &out, NULL),
                        TOLK_ERR_INVALID_ARG);
    }
    r->segs[0].words[1].end = 1.0;
    r->segs[0].words[0].start = -0.02;
    CU_ASSERT_EQUAL(tolk_render(NULL, r, TOLK_OUTPUT_VTT, &out, NULL), TOLK_ERR_INVALID_ARG);
    tolk_result_free(r);
}

int main(void) {
    CU_TestInfo tests[] = {{"reference_outputs", test_reference_outputs},
                           {"word_options", test_word_options},
                           {"word_checks", test_word_checks},
                           {"format_names", test_format_names},
                           {"bad_arguments", test_bad_arguments},
                           {"text_cleaning", test_text_cleaning},
                           {"timestamps", test_timestamps},
                           {"many_segments", test_many_segments},
                           {"write_file", test_write_file},
                           CU_TEST_INFO_NULL};
    tu_add_suite("writers", tests);
    return tu_run();
}

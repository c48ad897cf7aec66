/*
 * test_vad.c — Silero VAD (src/vad*.c): the loader on good, bad and hostile
 * files, the fast path against the plain reference loop, streams in pieces
 * of any size and batched streams against whole signals, the speech
 * timestamp options, and — with the model that scripts/get-model
 * silero-vad installs — equality with silero-vad itself on every shared
 * clip (tests/fixtures/make_vad.py: probabilities within 1e-4 of the
 * package's ONNX model in onnxruntime, speech timestamps identical to its
 * get_speech_timestamps for five option sets), whisper.cpp's ggml file,
 * and transcription with vad_filter (base model).
 *
 * ctest-labels: models
 */
#include "testutil.h"
#include "vad_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a synthetic model: random weights as a safetensors file ------------ */

typedef struct synth {
    const char *name;
    int ndim;
    int64_t shape[3];
} synth;

static const synth synth_tensors[15] = {
    {"stft_conv.weight", 3, {258, 1, 256}},
    {"conv1.weight", 3, {128, 129, 3}},
    {"conv1.bias", 1, {128}},
    {"conv2.weight", 3, {64, 128, 3}},
    {"conv2.bias", 1, {64}},
    {"conv3.weight", 3, {64, 64, 3}},
    {"conv3.bias", 1, {64}},
    {"conv4.weight", 3, {128, 64, 3}},
    {"conv4.bias", 1, {128}},
    {"lstm_cell.weight_ih", 2, {512, 128}},
    {"lstm_cell.weight_hh", 2, {512, 128}},
    {"lstm_cell.bias_ih", 1, {512}},
    {"lstm_cell.bias_hh", 1, {512}},
    {"final_conv.weight", 3, {1, 128, 1}},
    {"final_conv.bias", 1, {1}},
};

/* A safetensors file of the 15 tensors with random weights (skip: index of
 * a tensor to leave out, or -1; bad_shape: index whose first dimension is
 * doubled, or -1; nan_at: index holding a NaN, or -1). *size set. */
static uint8_t *synth_file(size_t *size, int skip, int bad_shape, int nan_at) {
    char header[4096] = "{";
    size_t off = 0;
    for (int i = 0; i < 15; i++) {
        if (i == skip) continue;
        const synth *t = &synth_tensors[i];
        int64_t n = 1, d0 = t->shape[0] * (i == bad_shape ? 2 : 1);
        char dims[64];
        snprintf(dims, sizeof dims, "%lld", (long long)d0);
        n *= d0;
        for (int d = 1; d < t->ndim; d++) {
            snprintf(dims + strlen(dims), sizeof dims - strlen(dims), ",%lld",
                     (long long)t->shape[d]);
            n *= t->shape[d];
        }
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                 strlen(header) > 1 ? "," : "", t->name, dims, off, off + 4 * (size_t)n);
        off += 4 * (size_t)n;
    }
    strcat(header, "}");
    size_t hl = strlen(header);
    uint8_t *b = malloc(8 + hl + off);
    uint64_t h64 = hl;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(h64 >> (8 * i));
    memcpy(b + 8, header, hl);
    float *w = (float *)malloc(off);
    tu_seed(14);
    size_t nf = off / 4;
    for (size_t i = 0; i < nf; i++)
        w[i] = tu_uniform(-0.15f, 0.15f);
    if (nan_at >= 0) w[nf / 2] = NAN;
    memcpy(b + 8 + hl, w, off);
    free(w);
    *size = 8 + hl + off;
    return b;
}

static tolk_vad *synth_model(tolk_ctx *ctx) {
    size_t n;
    uint8_t *b = synth_file(&n, -1, -1, -1);
    tolk_vad *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load_memory(ctx, "synth", b, n, &v), TOLK_OK);
    free(b);
    return v;
}

static float *noise_signal(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof *x);
    tu_seed(seed);
    for (size_t i = 0; i < n; i++) /* bursts of noise and quiet */
        x[i] = tu_uniform(-1, 1) * ((i / 4000) % 3 ? 0.3f : 0.01f);
    return x;
}

/* ---- loader ------------------------------------------------------------- */

static void expect_fail(tolk_ctx *ctx, const uint8_t *b, size_t n, tolk_status want,
                        const char *needle) {
    tolk_vad *v = (tolk_vad *)1;
    tolk_status st = tolk_vad_load_memory(ctx, "bad.model", b, n, &v);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(v);
    const char *m = tolk_ctx_last_error(ctx);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "bad.model"));
    if (needle && !strstr(m, needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", m, needle);
        CU_FAIL("message");
    }
}

static void test_load_errors(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    size_t n;
    uint8_t *good = synth_file(&n, -1, -1, -1);
    tolk_vad *v = NULL;
    CU_ASSERT_EQUAL(tolk_vad_load_memory(ctx, "good", good, n, &v), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(v->format, "safetensors");
    tolk_vad_free(v);
    /* truncated anywhere */
    for (size_t cut = 0; cut < n; cut += cut < 64 ? 1 : n / 97)
        expect_fail(ctx, good, cut, TOLK_ERR_FORMAT, NULL);
    /* garbage */
    uint8_t junk[64];
    memset(junk, 'x', sizeof junk);
    expect_fail(ctx, junk, sizeof junk, TOLK_ERR_FORMAT, "not a Silero VAD model");
    free(good);
    uint8_t *b = synth_file(&n, 13, -1, -1);
    expect_fail(ctx, b, n, TOLK_ERR_FORMAT, "final_conv.weight is missing");
    free(b);
    b = synth_file(&n, -1, 2, -1);
    expect_fail(ctx, b, n, TOLK_ERR_FORMAT, "conv1.bias has shape [256]");
    free(b);
    b = synth_file(&n, -1, -1, 1);
    expect_fail(ctx, b, n, TOLK_ERR_FORMAT, "non-finite");
    free(b);
    /* ggml: wrong model type, wrong architecture, truncated */
    uint8_t g[256];
    size_t k = 0;
    const int32_t hdr[] = {0x67676d6c, 10};
    memcpy(g, hdr, 8), k = 8;
    memcpy(g + k, "whisper-xx", 10), k += 10;
    expect_fail(ctx, g, k, TOLK_ERR_UNSUPPORTED, "not a Silero VAD");
    memcpy(g + 8, "silero-16k", 10);
    expect_fail(ctx, g, k, TOLK_ERR_FORMAT, "truncated");
    int32_t arch[22] = {6, 2,  0,  512, 64, 4,   129, 128, 3,   128, 64,
                        3, 64, 64, 3,   64, 128, 3,   128, 128, 128, 1};
    memcpy(g + k, arch, sizeof arch);
    /* a ggml file with the header only: every tensor missing */
    expect_fail(ctx, g, k + sizeof arch, TOLK_ERR_FORMAT, "is missing");
    arch[3] = 256;
    memcpy(g + k, arch, sizeof arch);
    expect_fail(ctx, g, k + sizeof arch, TOLK_ERR_UNSUPPORTED, "architecture");
    /* files */
    CU_ASSERT_EQUAL(tolk_vad_load(ctx, tu_tmp("missing.safetensors"), &v), TOLK_ERR_IO);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(tolk_vad_load(ctx, tu_tmp(""), &v), TOLK_ERR_IO); /* a directory */
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "no Silero VAD model"));
    FILE *f = fopen(tu_tmp("empty.bin"), "wb");
    fclose(f);
    CU_ASSERT_EQUAL(tolk_vad_load(ctx, tu_tmp("empty.bin"), &v), TOLK_ERR_FORMAT);
    CU_ASSERT_EQUAL(tolk_vad_load(ctx, NULL, &v), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_vad_load(ctx, "x", NULL), TOLK_ERR_INVALID_ARG);
    tolk_vad_free(NULL);
    tolk_ctx_free(ctx);
}

/* ---- network -------------------------------------------------------------- */

/* The fast path against the plain reference, on a synthetic model. */
static void test_fast_vs_reference(void) {
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 2;
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &ctx), TOLK_OK);
    tolk_vad *v = synth_model(ctx);
    const size_t n = 512 * 300 + 77; /* several blocks, a partial last chunk */
    float *x = noise_signal(n, 1);
    float *p = NULL;
    size_t np = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_probs(ctx, v, x, n, &p, &np), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(np, 301);
    float h[128] = {0}, c[128] = {0}, frame[576];
    double worst = 0, spread = 0;
    for (size_t j = 0; j < np; j++) {
        for (int i = 0; i < 576; i++) {
            int64_t s = (int64_t)j * 512 - 64 + i;
            frame[i] = s >= 0 && (size_t)s < n ? x[s] : 0.0f;
        }
        float r = tolk_vad_ref_step(v, frame, h, c);
        worst = fmax(worst, fabs(r - p[j]));
        spread = fmax(spread, fabs(r - p[0]));
    }
    printf("\n  fast vs reference loop: max |diff| %.3g over %zu chunks (spread %.3g)\n", worst, np,
           spread);
    CU_ASSERT(worst < 1e-5);
    CU_ASSERT(spread > 1e-3); /* the synthetic model is not constant */
    free(p);
    free(x);
    tolk_vad_free(v);
    tolk_ctx_free(ctx);
}

/* Probabilities of a stream pushed in pieces of many sizes. */
static float *stream_probs(tolk_ctx *ctx, tolk_vad_stream *s, const float *x, size_t n,
                           const size_t *pieces, int n_pieces, size_t *np) {
    float *out = malloc((n / 512 + 2) * sizeof *out);
    size_t k = 0, at = 0;
    for (int i = 0; at < n; i = (i + 1) % n_pieces) {
        size_t len = pieces[i] < n - at ? pieces[i] : n - at, got = 0;
        CU_ASSERT_EQUAL(tolk_vad_stream_push(ctx, s, x + at, len, out + k, n / 512 + 2 - k, &got),
                        TOLK_OK);
        k += got;
        at += len;
        CU_ASSERT_EQUAL(tolk_vad_stream_pending(s), at % 512);
    }
    size_t got = 0;
    CU_ASSERT_EQUAL(tolk_vad_stream_flush(ctx, s, out + k, &got), TOLK_OK);
    k += got;
    *np = k;
    return out;
}

static void test_streams(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_vad *v = synth_model(ctx);
    const size_t n = 512 * 90 + 300;
    float *x = noise_signal(n, 2);
    float *ref = NULL;
    size_t nref = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_probs(ctx, v, x, n, &ref, &nref), TOLK_OK);
    tolk_vad_stream *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_stream_new(ctx, v, &s), TOLK_OK);
    const size_t a[] = {1, 7, 511, 512, 513, 3000, 160, 10000, 2};
    const size_t b[] = {512};
    const size_t c[] = {n};
    const size_t *sets[] = {a, b, c};
    const int counts[] = {9, 1, 1};
    for (int t = 0; t < 3; t++) {
        tolk_vad_stream_reset(s);
        size_t np = 0;
        float *p = stream_probs(ctx, s, x, n, sets[t], counts[t], &np);
        CU_ASSERT_EQUAL(np, nref);
        double worst = tu_max_abs_diff(p, ref, np < nref ? np : nref);
        CU_ASSERT(worst < 1e-6);
        if (worst >= 1e-6) printf("\n  piece set %d: max |diff| %g\n", t, worst);
        free(p);
    }
    /* a push whose output does not fit changes nothing */
    tolk_vad_stream_reset(s);
    float one[2];
    size_t got = 9;
    CU_ASSERT_EQUAL(tolk_vad_stream_push(ctx, s, x, 1024, one, 1, &got), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tolk_vad_stream_pending(s), 0);
    CU_ASSERT_EQUAL(tolk_vad_stream_push(ctx, s, x, 1024, one, 2, &got), TOLK_OK);
    CU_ASSERT_EQUAL(got, 2);
    CU_ASSERT(fabs(one[0] - ref[0]) < 1e-6 && fabs(one[1] - ref[1]) < 1e-6);
    tolk_vad_stream_free(s);
    tolk_vad_stream_free(NULL);
    free(ref);
    free(x);
    tolk_vad_free(v);
    tolk_ctx_free(ctx);
}

/* N streams' chunks at once equal each stream run alone. */
static void test_batched_streams(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_vad *v = synth_model(ctx);
    enum { NS = 5, NCH = 40 };
    float *x[NS], *ref[NS];
    tolk_vad_stream *s[NS];
    for (int i = 0; i < NS; i++) {
        x[i] = noise_signal(512 * NCH, 10 + (uint64_t)i);
        size_t np;
        CU_ASSERT_EQUAL_FATAL(tolk_vad_probs(ctx, v, x[i], 512 * NCH, &ref[i], &np), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_vad_stream_new(ctx, v, &s[i]), TOLK_OK);
    }
    double worst = 0;
    for (int j = 0; j < NCH; j++) {
        const float *chunks[NS];
        float p[NS];
        for (int i = 0; i < NS; i++)
            chunks[i] = x[i] + 512 * j;
        CU_ASSERT_EQUAL(tolk_vad_stream_chunks(ctx, s, NS, chunks, p), TOLK_OK);
        for (int i = 0; i < NS; i++)
            worst = fmax(worst, fabs(p[i] - ref[i][j]));
    }
    CU_ASSERT(worst < 1e-6);
    /* refused: a stream with pending samples, a stream given twice */
    size_t got;
    float dummy;
    CU_ASSERT_EQUAL(tolk_vad_stream_push(ctx, s[1], x[1], 5, &dummy, 0, &got), TOLK_OK);
    const float *chunks[2] = {x[0], x[1]};
    float p[2];
    CU_ASSERT_EQUAL(tolk_vad_stream_chunks(ctx, s, 2, chunks, p), TOLK_ERR_INVALID_ARG);
    tolk_vad_stream *twice[2] = {s[0], s[0]};
    CU_ASSERT_EQUAL(tolk_vad_stream_chunks(ctx, twice, 2, chunks, p), TOLK_ERR_INVALID_ARG);
    for (int i = 0; i < NS; i++) {
        tolk_vad_stream_free(s[i]);
        free(x[i]);
        free(ref[i]);
    }
    tolk_vad_free(v);
    tolk_ctx_free(ctx);
}

/* ---- options and segments -------------------------------------------------- */

static void test_params(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_vad_params d = tolk_vad_default_params();
    CU_ASSERT_DOUBLE_EQUAL(d.threshold, 0.5, 0);
    CU_ASSERT(d.neg_threshold < 0);
    CU_ASSERT_EQUAL(d.min_speech_duration_ms, 0);
    CU_ASSERT(isinf(d.max_speech_duration_s));
    CU_ASSERT_EQUAL(d.min_silence_duration_ms, 2000);
    CU_ASSERT_EQUAL(d.speech_pad_ms, 400);
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &d), TOLK_OK);
    tolk_vad_params p = d;
    p.threshold = 1.5;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "vad_threshold"));
    p = d;
    p.threshold = NAN;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    p = d;
    p.neg_threshold = 0.7;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "vad_neg_threshold"));
    p = d;
    p.max_speech_duration_s = 0;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    p = d;
    p.min_silence_duration_ms = -1;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    p = d;
    p.speech_pad_ms = -5;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    p = d;
    p.min_speech_duration_ms = -5;
    CU_ASSERT_EQUAL(tolk_vad_check_params(ctx, &p), TOLK_ERR_INVALID_ARG);
    /* segments: one speech burst in the middle, padded */
    float probs[100];
    for (int i = 0; i < 100; i++)
        probs[i] = i >= 40 && i < 60 ? 0.9f : 0.05f;
    tolk_speech_segment *seg = NULL;
    size_t ns = 0;
    CU_ASSERT_EQUAL(tolk_vad_segments_from_probs(ctx, probs, 100, 51200, &d, &seg, &ns), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(ns, 1);
    CU_ASSERT_EQUAL(seg[0].start, 40 * 512 - 6400);
    CU_ASSERT_EQUAL(seg[0].end, 51200); /* silence shorter than 2 s: speech to the end */
    tolk_free(seg);
    p = tolk_vad_silero_params();
    CU_ASSERT_EQUAL(tolk_vad_segments_from_probs(ctx, probs, 100, 51200, &p, &seg, &ns), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(ns, 1);
    CU_ASSERT_EQUAL(seg[0].start, 40 * 512 - 480);
    CU_ASSERT_EQUAL(seg[0].end, 60 * 512 + 480);
    tolk_free(seg);
    CU_ASSERT_EQUAL(tolk_vad_segments_from_probs(ctx, probs, 0, 0, &p, &seg, &ns), TOLK_OK);
    CU_ASSERT_EQUAL(ns, 0);
    CU_ASSERT_PTR_NULL(seg);
    tolk_ctx_free(ctx);
}

/* The batched long-form hook: groups of <= 30 s of joined speech. */
static void test_pack_groups(void) {
    tolk_speech_segment sp[] = {{0, 160000},       {200000, 400000},   {500000, 700000},
                                {800000, 1400000}, {1500000, 1510000}, {1600000, 1620000}};
    tolk_vad_group *g = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(tolk_vad_pack_groups(NULL, sp, 6, 480000, &g, &n), TOLK_OK);
    /* 160k + 200k = 360k; + 200k > 480k -> new; 200k; + 600k -> new (alone, too long);
       10k + 20k together */
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT(g[0].first == 0 && g[0].count == 2 && g[0].samples == 360000 &&
              g[0].joined_offset == 0);
    CU_ASSERT(g[1].first == 2 && g[1].count == 1 && g[1].joined_offset == 360000);
    CU_ASSERT(g[2].first == 3 && g[2].count == 1 && g[2].samples == 600000);
    CU_ASSERT(g[3].first == 4 && g[3].count == 2 && g[3].samples == 30000 &&
              g[3].joined_offset == 1160000);
    free(g);
    CU_ASSERT_EQUAL(tolk_vad_pack_groups(NULL, sp, 0, 480000, &g, &n), TOLK_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tolk_vad_pack_groups(NULL, sp, 6, 0, &g, &n), TOLK_ERR_INVALID_ARG);
    tolk_vad_params bp = tolk_vad_batched_params();
    CU_ASSERT_DOUBLE_EQUAL(bp.max_speech_duration_s, 30.0, 0);
    CU_ASSERT_EQUAL(bp.min_silence_duration_ms, 160);
}

/* ---- against silero-vad (needs scripts/get-model silero-vad) --------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The fixture's options of a set into tolk_vad_params (silero defaults
 * where the set says nothing). */
static tolk_vad_params set_params(const cJSON *o) {
    tolk_vad_params p = tolk_vad_silero_params();
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        const char *k = e->string;
        double v = cJSON_IsNumber(e) ? e->valuedouble : cJSON_IsString(e) ? INFINITY : -1;
        if (cJSON_IsBool(e)) v = cJSON_IsTrue(e);
        if (!strcmp(k, "threshold")) p.threshold = v;
        if (!strcmp(k, "neg_threshold")) p.neg_threshold = cJSON_IsNull(e) ? -1 : v;
        if (!strcmp(k, "min_speech_duration_ms")) p.min_speech_duration_ms = (int)v;
        if (!strcmp(k, "max_speech_duration_s")) p.max_speech_duration_s = v;
        if (!strcmp(k, "min_silence_duration_ms")) p.min_silence_duration_ms = (int)v;
        if (!strcmp(k, "speech_pad_ms")) p.speech_pad_ms = (int)v;
        if (!strcmp(k, "min_silence_at_max_speech")) p.min_silence_at_max_speech_ms = (int)v;
        if (!strcmp(k, "use_max_poss_sil_at_max_speech")) p.use_max_poss_sil_at_max_speech = (int)v;
    }
    return p;
}

static int same_segments(const tolk_speech_segment *s, size_t n, const cJSON *want) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *pair = cJSON_GetArrayItem(want, (int)i);
        if (s[i].start != (int64_t)cJSON_GetArrayItem(pair, 0)->valuedouble ||
            s[i].end != (int64_t)cJSON_GetArrayItem(pair, 1)->valuedouble)
            return 0;
    }
    return 1;
}

/* Every shared clip: probabilities within 1e-4, timestamps identical. */
static void check_clips(const char *model_file, double tol, const char *what) {
    const char *dir = tu_require_model("silero-vad");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, model_file);
    if (!tu_exists(path)) {
        tu_skip("%s not installed", path);
        return;
    }
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 2;
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &ctx), TOLK_OK);
    tolk_vad *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load(ctx, path, &v), TOLK_OK);
    char *json = read_text(tu_src("tests/fixtures/vad/clips.json"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    cJSON *root = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    int64_t shape[4];
    int nd;
    float *ref = tu_load_npy(tu_src("tests/fixtures/vad/probs.npy"), shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    const cJSON *sets = cJSON_GetObjectItem(root, "options");
    const cJSON *clip;
    double worst = 0;
    const char *worst_clip = "";
    int n_clips = 0, n_sets_ok = 0, n_sets = 0, n_ts_from_ref_ok = 0;
    cJSON_ArrayForEach(clip, cJSON_GetObjectItem(root, "clips")) {
        const char *file = cJSON_GetObjectItem(clip, "file")->valuestring;
        char rel[512];
        snprintf(rel, sizeof rel, "speech/%s", file);
        float *x = NULL;
        size_t n = 0;
        if (tolk_audio_load(ctx, tu_shared(rel), &x, &n) != TOLK_OK) {
            CU_FAIL("clip");
            fprintf(stderr, "%s: %s\n", rel, tolk_ctx_last_error(ctx));
            continue;
        }
        CU_ASSERT_EQUAL(n, (size_t)cJSON_GetObjectItem(clip, "n_samples")->valuedouble);
        const size_t off = (size_t)cJSON_GetObjectItem(clip, "offset")->valuedouble;
        const size_t nref = (size_t)cJSON_GetObjectItem(clip, "n_probs")->valuedouble;
        float *p = NULL;
        size_t np = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_vad_probs(ctx, v, x, n, &p, &np), TOLK_OK);
        CU_ASSERT_EQUAL(np, nref);
        double d = tu_max_abs_diff(p, ref + off, np < nref ? np : nref);
        if (d > worst) worst = d, worst_clip = file;
        if (tol <= 1e-4) {
            const cJSON *set;
            cJSON_ArrayForEach(set, sets) {
                tolk_vad_params vp = set_params(set);
                const cJSON *want =
                    cJSON_GetObjectItem(cJSON_GetObjectItem(clip, "timestamps"), set->string);
                tolk_speech_segment *seg = NULL;
                size_t ns = 0;
                CU_ASSERT_EQUAL(tolk_vad_segments_from_probs(ctx, p, np, n, &vp, &seg, &ns),
                                TOLK_OK);
                n_sets++;
                if (same_segments(seg, ns, want))
                    n_sets_ok++;
                else
                    fprintf(stderr, "\n  %s, options %s: speech segments differ\n", file,
                            set->string);
                tolk_free(seg);
                CU_ASSERT_EQUAL(
                    tolk_vad_segments_from_probs(ctx, ref + off, nref, n, &vp, &seg, &ns), TOLK_OK);
                n_ts_from_ref_ok += same_segments(seg, ns, want);
                tolk_free(seg);
            }
        }
        free(p);
        tolk_free(x);
        n_clips++;
    }
    printf("\n  %s: %d clips, probabilities max |diff| %.3g (%s)", what, n_clips, worst,
           worst_clip);
    if (n_sets)
        printf("; speech timestamps identical in %d of %d (clip, option set) cases (%d of %d "
               "from the fixture's probabilities)",
               n_sets_ok, n_sets, n_ts_from_ref_ok, n_sets);
    printf("\n");
    CU_ASSERT(n_clips >= 100);
    CU_ASSERT(worst < tol);
    CU_ASSERT_EQUAL(n_sets_ok, n_sets);
    CU_ASSERT_EQUAL(n_ts_from_ref_ok, n_sets);
    free(ref);
    cJSON_Delete(root);
    free(json);
    tolk_vad_free(v);
    tolk_ctx_free(ctx);
}

static void test_silero_onnx_equality(void) {
    check_clips("silero_vad_16k_op15.safetensors", 1e-4, "safetensors (package model)");
}

/* whisper.cpp's file stores the convolutions in float16: close, not equal. */
static void test_ggml_file(void) {
    check_clips("ggml-silero-v6.2.0.bin", 2e-2, "whisper.cpp ggml (float16 convolutions)");
}

/* The wheel's silero_vad_16k.safetensors: the first chunks of one clip as
 * the package's tinygrad_model.py computes them with that file. */
static void test_wheel_safetensors(void) {
    const char *dir = tu_require_model("silero-vad");
    if (!dir) return;
    char *json = read_text(tu_src("tests/fixtures/vad/wheel_tinygrad.json"));
    if (!json) {
        tu_skip("no tinygrad fixture");
        return;
    }
    cJSON *root = cJSON_Parse(json);
    char path[1024];
    snprintf(path, sizeof path, "%s/silero_vad_16k.safetensors", dir);
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_vad *v = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load(ctx, path, &v), TOLK_OK);
    char rel[512];
    snprintf(rel, sizeof rel, "speech/%s", cJSON_GetObjectItem(root, "file")->valuestring);
    float *x = NULL, *p = NULL;
    size_t n = 0, np = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx, tu_shared(rel), &x, &n), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_vad_probs(ctx, v, x, n, &p, &np), TOLK_OK);
    const cJSON *want = cJSON_GetObjectItem(root, "probs");
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(want) && (size_t)i < np; i++)
        worst = fmax(worst, fabs(p[i] - cJSON_GetArrayItem(want, i)->valuedouble));
    printf("\n  wheel safetensors vs tinygrad_model.py: max |diff| %.3g over %d chunks\n", worst,
           cJSON_GetArraySize(want));
    CU_ASSERT(worst < 1e-4);
    free(p);
    tolk_free(x);
    tolk_vad_free(v);
    tolk_ctx_free(ctx);
    cJSON_Delete(root);
    free(json);
}

/* ---- transcription with vad_filter (base model) ----------------------------- */

static void test_vad_filter_transcribe(void) {
    const char *vdir = tu_require_model("silero-vad");
    const char *mdir = vdir ? tu_require_model("base") : NULL;
    if (!vdir || !mdir) return;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 2;
    cp.device = TOLK_DEVICE_CPU;
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &ctx), TOLK_OK);
    tolk_vad *vad = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load(ctx, vdir, &vad), TOLK_OK);
    tolk_model *model = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, mdir, NULL, &model), TOLK_OK);
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, model, &st), TOLK_OK);
    float *jfk = NULL;
    size_t nj = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx, tu_shared("speech/jfk.flac"), &jfk, &nj), TOLK_OK);
    /* 8 s of silence, jfk, 8 s of silence */
    const size_t gap = 8 * 16000, n = gap + nj + gap;
    float *x = calloc(n, sizeof *x);
    memcpy(x + gap, jfk, nj * sizeof *x);
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.language = "en";
    p.vad = vad;
    tolk_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &r), TOLK_OK);
    CU_ASSERT_DOUBLE_EQUAL(tolk_result_duration(r), (double)n / 16000, 1e-9);
    CU_ASSERT(tolk_result_n_segments(r) >= 1);
    if (tolk_result_n_segments(r) >= 1) {
        printf("\n  vad_filter: %d segments, first [%.2f, %.2f] last end %.2f: %s\n",
               tolk_result_n_segments(r), tolk_result_segment(r, 0)->start,
               tolk_result_segment(r, 0)->end,
               tolk_result_segment(r, tolk_result_n_segments(r) - 1)->end, tolk_result_text(r));
        CU_ASSERT(tolk_result_segment(r, 0)->start >= 7.5 &&
                  tolk_result_segment(r, 0)->start < 9.0);
        CU_ASSERT(tolk_result_segment(r, tolk_result_n_segments(r) - 1)->end <= 8.0 + 11.0 + 0.5);
        CU_ASSERT_PTR_NOT_NULL(strstr(tolk_result_text(r), "ask not what your country"));
    }
    tolk_result_free(r);
    /* silence only: no segments, no invented text */
    memset(x, 0, n * sizeof *x);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &r), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_result_n_segments(r), 0);
    CU_ASSERT_STRING_EQUAL(tolk_result_text(r), "");
    CU_ASSERT_STRING_EQUAL(tolk_result_language(r), "en");
    tolk_result_free(r);
    /* bad options, exclusive with clip_timestamps */
    p.vad_params.threshold = 2;
    CU_ASSERT_EQUAL(tolk_transcribe(st, jfk, nj, &p, &r), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    p.vad_params = tolk_vad_default_params();
    p.clip_timestamps = "1,5";
    CU_ASSERT_EQUAL(tolk_transcribe(st, jfk, nj, &p, &r), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    free(x);
    tolk_free(jfk);
    tolk_state_free(st);
    tolk_model_free(model);
    tolk_vad_free(vad);
    tolk_ctx_free(ctx);
}

int main(void) {
    CU_TestInfo tests[] = {{"load_errors", test_load_errors},
                           {"fast_vs_reference", test_fast_vs_reference},
                           {"streams", test_streams},
                           {"batched_streams", test_batched_streams},
                           {"params", test_params},
                           {"pack_groups", test_pack_groups},
                           {"silero_onnx_equality", test_silero_onnx_equality},
                           {"ggml_file", test_ggml_file},
                           {"wheel_safetensors", test_wheel_safetensors},
                           {"vad_filter_transcribe", test_vad_filter_transcribe},
                           CU_TEST_INFO_NULL};
    tu_add_suite("vad", tests);
    return tu_run();
}

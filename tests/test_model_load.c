/*
 * test_model_load.c — the model loaders (CTranslate2, safetensors, ggml)
 * and the public model API.
 *
 *  - half/bfloat16 conversions against plain reference loops;
 *  - the real CTranslate2 models (tiny.en, base, base-alt): dimensions,
 *    config, vocabulary, and every fused-slice tensor against a plain
 *    reference reader of model.bin;
 *  - base converted by scripts/convert-model to safetensors and ggml: the
 *    three loaders give bit-identical float32 values for every canonical
 *    tensor (skipped when numpy + safetensors are not importable);
 *  - random-weight models of the large-v3, turbo and distil shapes (small
 *    widths) in every format, dtype and CTranslate2 binary version,
 *    checked element by element; full large-v3 / turbo shapes at header
 *    level (sparse safetensors files);
 *  - hostile files: truncations, byte flips, missing tensors, wrong
 *    shapes, absurd dimensions, bad JSON, quantized ggml: a clear error
 *    naming the file (and the tensor), never a crash.
 *
 * ctest-labels: models
 */
#include "internal.h"
#include "model.h"
#include "net.h"
#include "support/model_writer.h"
#include "testutil.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tolk_ctx *ctx;

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static tolk_weights *load(const char *path, int use_mmap) {
    tolk_weights *w = NULL;
    tolk_status st = tolk_weights_load(ctx, path, use_mmap, &w);
    if (st) printf("\n    load %s: %s\n", path, tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL(st, TOLK_OK);
    return w;
}

static float *to_f32(const tolk_tensor *t) {
    float *x = malloc(sizeof(float) * (size_t)tolk_tensor_nelem(t));
    tolk_tensor_to_f32(t, x);
    return x;
}

/* Compare two tables tensor by tensor: same names, shapes, float32 bits. */
static int same_tensors(const tolk_weights *a, const tolk_weights *b) {
    int bad = 0;
    if (a->n_tensors != b->n_tensors) {
        printf("\n    %d vs %d tensors\n", a->n_tensors, b->n_tensors);
        bad++;
    }
    for (int i = 0; i < a->n_tensors; i++) {
        const tolk_tensor *x = &a->tensors[i], *y = tolk_weights_get(b, x->name);
        if (!y) {
            if (!bad++) printf("\n    %s missing in %s\n", x->name, b->path);
            continue;
        }
        int ok = x->ndim == y->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            ok = x->shape[d] == y->shape[d];
        if (!ok) {
            if (!bad++) printf("\n    %s: shapes differ\n", x->name);
            continue;
        }
        float *p = to_f32(x), *q = to_f32(y);
        if (memcmp(p, q, sizeof(float) * (size_t)tolk_tensor_nelem(x)) != 0) {
            if (!bad++) printf("\n    %s: values differ\n", x->name);
        }
        free(p);
        free(q);
    }
    return bad;
}

/* Every tensor of w against the writer's values (plain loop). */
static int check_values(const tolk_weights *w, uint64_t seed) {
    int bad = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const tolk_tensor *t = &w->tensors[i];
        float *x = to_f32(t);
        int64_t n = tolk_tensor_nelem(t);
        for (int64_t k = 0; k < n; k++) {
            float want =
                t->dtype == TOLK_DT_I8 ? mw_value_i8(t->name, k, seed) : mw_value(t->name, k, seed);
            if (x[k] != want) {
                if (!bad)
                    printf("\n    %s[%lld] = %g, expected %g\n", t->name, (long long)k, x[k], want);
                bad++;
                break;
            }
        }
        free(x);
    }
    return bad;
}

static int hp_equal(const tolk_hparams *a, const tolk_hparams *b) {
    return memcmp(a, b, sizeof *a) == 0;
}

/* The number of canonical tensors of hp (without key biases). */
static int n_canonical(const tolk_hparams *hp) {
    return 11 + 15 * hp->n_audio_layer + 24 * hp->n_text_layer;
}

static int contains(const char *hay, const char *needle) {
    return hay && needle && strstr(hay, needle) != NULL;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_str(const char *path, const char *text) {
    return write_file(path, text, strlen(text));
}

/* ------------------------------------------------------------------------ */
/* conversions                                                              */
/* ------------------------------------------------------------------------ */

/* Reference binary16 decode with ldexp. */
static float ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

/* Reference round-to-nearest-even encode: the nearest of all finite halves. */
static uint16_t ref_to_f16(float f) {
    if (isnan(f)) return 0x7e00;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    /* binary search over the monotone positive halves 0..0x7bff */
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((double)ref_f16((uint16_t)mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | (uint16_t)lo;
    double d0 = a - (double)ref_f16((uint16_t)lo), d1 = (double)ref_f16((uint16_t)(lo + 1)) - a;
    int r = d0 < d1 ? lo : d1 < d0 ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return sign | (uint16_t)r;
}

static void test_half_conversions(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = tolk_f16_to_f32((uint16_t)h), b = ref_f16((uint16_t)h);
        if (!(isnan(a) && isnan(b)) && memcmp(&a, &b, 4) != 0) bad++;
        if (!isnan(a) && tolk_f32_to_f16(a) != h) bad++; /* round trip */
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* random floats over the whole half range incl. subnormals and ties */
    tu_seed(7);
    enum { N = 200000 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint16_t *h1 = malloc(2 * N);
    for (int i = 0; i < N; i++) {
        float m = tu_uniform(-1.0f, 1.0f);
        int e = (int)tu_uniform(-30.0f, 17.0f);
        x[i] = ldexpf(m, e);
        if (i % 7 == 0) /* exact ties between two halves */
            x[i] = (ref_f16((uint16_t)(i % 0x7bff)) + ref_f16((uint16_t)(i % 0x7bff + 1))) / 2;
    }
    tolk_f32_to_f16_n(x, h1, N); /* F16C bulk path */
    int bad_s = 0, bad_b = 0;
    for (int i = 0; i < N; i++) {
        uint16_t r = ref_to_f16(x[i]);
        if (tolk_f32_to_f16(x[i]) != r) bad_s++;
        if (h1[i] != r) bad_b++;
    }
    CU_ASSERT_EQUAL(bad_s, 0);
    CU_ASSERT_EQUAL(bad_b, 0);
    tolk_f16_to_f32_n(h1, y, N);
    bad = 0;
    for (int i = 0; i < N; i++)
        if (y[i] != ref_f16(h1[i])) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    /* bfloat16: exact widening, round to nearest even */
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.00390625f), 0x3f80); /* tie -> even */
    CU_ASSERT_EQUAL(tolk_f32_to_bf16(1.01171875f), 0x3f82); /* tie -> even (up) */
    CU_ASSERT_EQUAL(tolk_bf16_to_f32(0xc040), -3.0f);
    CU_ASSERT(isnan(tolk_bf16_to_f32(tolk_f32_to_bf16(NAN))));
    CU_ASSERT(isnan(tolk_f16_to_f32(tolk_f32_to_f16(NAN))));
    CU_ASSERT_EQUAL(tolk_f32_to_f16(1e6f), 0x7c00);
    CU_ASSERT_EQUAL(tolk_f32_to_f16(-1e-9f), 0x8000);
    free(x), free(y), free(h1);
    CU_ASSERT_STRING_EQUAL(tolk_dtype_name(TOLK_DT_BF16), "bfloat16");
    CU_ASSERT_EQUAL(tolk_dtype_size(TOLK_DT_I8), 1);
}

/* ------------------------------------------------------------------------ */
/* real CTranslate2 models                                                  */
/* ------------------------------------------------------------------------ */

/* A plain reference reader of model.bin (version >= 4): the data pointer
 * and dims of a variable, following aliases. */
typedef struct ref_ct2 {
    uint8_t *buf;
    size_t n;
} ref_ct2;

static const uint8_t *ref_find(const ref_ct2 *r, const char *want, uint32_t dims[8], int *rank) {
    size_t off = 4;
    uint32_t u;
    memcpy(&u, r->buf + off, 2);
    off += 2 + (u & 0xffff) + 4; /* spec name + revision */
    uint32_t nv;
    memcpy(&nv, r->buf + off, 4);
    off += 4;
    for (uint32_t i = 0; i < nv; i++) {
        uint16_t sl;
        memcpy(&sl, r->buf + off, 2);
        const char *name = (const char *)r->buf + off + 2;
        off += 2 + sl;
        int rk = r->buf[off++];
        for (int k = 0; k < rk; k++)
            memcpy(&dims[k], r->buf + off + 4 * k, 4);
        off += 4 * (size_t)rk + 1;
        uint32_t nb;
        memcpy(&nb, r->buf + off, 4);
        off += 4;
        if (!strcmp(name, want)) {
            *rank = rk;
            return r->buf + off;
        }
        off += nb;
    }
    uint32_t na;
    memcpy(&na, r->buf + off, 4);
    off += 4;
    for (uint32_t i = 0; i < na; i++) {
        uint16_t sl;
        memcpy(&sl, r->buf + off, 2);
        const char *alias = (const char *)r->buf + off + 2;
        off += 2 + sl;
        memcpy(&sl, r->buf + off, 2);
        const char *target = (const char *)r->buf + off + 2;
        off += 2 + sl;
        if (!strcmp(alias, want)) return ref_find(r, target, dims, rank);
    }
    return NULL;
}

/* Tensor `canon` equals rows [r0, r0 + rows) of float16 CT2 variable `var`. */
static int ref_rows_equal(const ref_ct2 *r, const tolk_weights *w, const char *canon,
                          const char *var, int64_t r0) {
    uint32_t dims[8];
    int rank = 0;
    const uint8_t *p = ref_find(r, var, dims, &rank);
    const tolk_tensor *t = tolk_weights_get(w, canon);
    if (!p || !t || t->dtype != TOLK_DT_F16) return 0;
    size_t row = 1;
    for (int k = 1; k < rank; k++)
        row *= dims[k];
    return memcmp(t->data, p + (size_t)r0 * row * 2, tolk_tensor_nbytes(t)) == 0;
}

static void check_real_ct2(const char *name, int n_layer, int d, int n_vocab) {
    const char *dir = tu_require_model(name);
    if (!dir) return;
    char path[4200];
    snprintf(path, sizeof path, "%s", dir);
    tolk_weights *w = load(path, 1);
    if (!w) return;
    const tolk_hparams *hp = &w->hp;
    CU_ASSERT_EQUAL(w->format, TOLK_FORMAT_CT2);
    CU_ASSERT_EQUAL(hp->n_mels, 80);
    CU_ASSERT_EQUAL(hp->n_vocab, n_vocab);
    CU_ASSERT_EQUAL(hp->n_audio_ctx, 1500);
    CU_ASSERT_EQUAL(hp->n_text_ctx, 448);
    CU_ASSERT_EQUAL(hp->n_audio_state, d);
    CU_ASSERT_EQUAL(hp->n_text_state, d);
    CU_ASSERT_EQUAL(hp->n_audio_head, d / 64);
    CU_ASSERT_EQUAL(hp->n_text_head, d / 64);
    CU_ASSERT_EQUAL(hp->n_audio_layer, n_layer);
    CU_ASSERT_EQUAL(hp->n_text_layer, n_layer);
    CU_ASSERT_EQUAL(w->n_tensors, n_canonical(hp));
    CU_ASSERT_PTR_NULL(tolk_weights_get(w, "encoder.blocks.0.attn.key.bias"));
    CU_ASSERT_PTR_NOT_NULL(
        tolk_weights_getf(w, "decoder.blocks.%d.cross_attn.value.bias", n_layer - 1));
    CU_ASSERT_PTR_NULL(tolk_weights_getf(w, "decoder.blocks.%d.mlp.0.weight", n_layer));
    CU_ASSERT_EQUAL(tolk_weights_validate(ctx, w), TOLK_OK);
    /* config */
    int ml = n_vocab >= 51865;
    CU_ASSERT_EQUAL(w->cfg.multilingual, ml);
    CU_ASSERT_EQUAL(w->cfg.n_languages, ml ? 99 : 0);
    if (ml) {
        CU_ASSERT_EQUAL(w->cfg.lang_ids[0], 50259);
        CU_ASSERT_EQUAL(w->cfg.lang_ids[98], 50357);
    }
    CU_ASSERT(w->cfg.n_suppress_ids > 80);
    CU_ASSERT_EQUAL(w->cfg.n_begin_suppress_ids, 2);
    CU_ASSERT_EQUAL(w->cfg.begin_suppress_ids[0], 220);
    CU_ASSERT_EQUAL(w->cfg.begin_suppress_ids[1], ml ? 50257 : 50256);
    CU_ASSERT(w->cfg.n_alignment_heads > 0);
    /* vocabulary */
    CU_ASSERT_EQUAL(w->vocab.n, n_vocab);
    CU_ASSERT_EQUAL(w->vocab.raw_bytes, 0);
    if (w->vocab.n == n_vocab) {
        CU_ASSERT_STRING_EQUAL(w->vocab.tokens[0], "!");
        CU_ASSERT_STRING_EQUAL(w->vocab.tokens[ml ? 50257 : 50256], "<|endoftext|>");
        CU_ASSERT_STRING_EQUAL(w->vocab.tokens[n_vocab - 1], "<|30.00|>");
        CU_ASSERT_EQUAL(w->vocab.lengths[0], 1);
    }
    CU_ASSERT(contains(w->tokenizer_path, "tokenizer.json"));
    /* alignment guarantee */
    for (int i = 0; i < w->n_tensors; i++)
        CU_ASSERT((uintptr_t)w->tensors[i].data % tolk_dtype_size(w->tensors[i].dtype) == 0);
    /* slices and renames against a plain reader of model.bin */
    char bin[4300];
    snprintf(bin, sizeof bin, "%s/model.bin", dir);
    ref_ct2 r;
    r.buf = read_file(bin, &r.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.buf);
    int ok = 1;
    char c[160], v[160];
    for (int l = 0; l < n_layer; l++) {
        for (int dec = 0; dec < 2; dec++) {
            const char *s = dec ? "decoder" : "encoder";
            static const char *const part[] = {"query", "key", "value"};
            for (int k = 0; k < 3; k++) {
                snprintf(c, sizeof c, "%s.blocks.%d.attn.%s.weight", s, l, part[k]);
                snprintf(v, sizeof v, "%s/layer_%d/self_attention/linear_0/weight", s, l);
                ok &= ref_rows_equal(&r, w, c, v, (int64_t)k * d);
            }
            snprintf(c, sizeof c, "%s.blocks.%d.attn.value.bias", s, l);
            snprintf(v, sizeof v, "%s/layer_%d/self_attention/linear_0/bias", s, l);
            ok &= ref_rows_equal(&r, w, c, v, 2 * (int64_t)d);
            snprintf(c, sizeof c, "%s.blocks.%d.mlp.2.weight", s, l);
            snprintf(v, sizeof v, "%s/layer_%d/ffn/linear_1/weight", s, l);
            ok &= ref_rows_equal(&r, w, c, v, 0);
            snprintf(c, sizeof c, "%s.blocks.%d.attn_ln.weight", s, l);
            snprintf(v, sizeof v, "%s/layer_%d/self_attention/layer_norm/gamma", s, l);
            ok &= ref_rows_equal(&r, w, c, v, 0);
        }
        snprintf(c, sizeof c, "decoder.blocks.%d.cross_attn.value.weight", l);
        snprintf(v, sizeof v, "decoder/layer_%d/attention/linear_1/weight", l);
        ok &= ref_rows_equal(&r, w, c, v, d);
        snprintf(c, sizeof c, "decoder.blocks.%d.cross_attn.key.weight", l);
        ok &= ref_rows_equal(&r, w, c, v, 0);
        snprintf(c, sizeof c, "decoder.blocks.%d.cross_attn.query.weight", l);
        snprintf(v, sizeof v, "decoder/layer_%d/attention/linear_0/weight", l);
        ok &= ref_rows_equal(&r, w, c, v, 0);
        snprintf(c, sizeof c, "decoder.blocks.%d.cross_attn_ln.bias", l);
        snprintf(v, sizeof v, "decoder/layer_%d/attention/layer_norm/beta", l);
        ok &= ref_rows_equal(&r, w, c, v, 0);
    }
    ok &= ref_rows_equal(&r, w, "decoder.token_embedding.weight", "decoder/projection/weight", 0);
    ok &= ref_rows_equal(&r, w, "encoder.conv1.weight", "encoder/conv1/weight", 0);
    ok &= ref_rows_equal(&r, w, "encoder.positional_embedding",
                         "encoder/position_encodings/encodings", 0);
    ok &= ref_rows_equal(&r, w, "decoder.ln.bias", "decoder/layer_norm/beta", 0);
    CU_ASSERT(ok);
    free(r.buf);
    /* read instead of mmap: identical */
    tolk_weights *w2 = load(path, 0);
    if (w2) {
        CU_ASSERT_EQUAL(same_tensors(w, w2), 0);
        CU_ASSERT_EQUAL(w2->n_maps, 0);
        tolk_weights_free(w2);
    }
    CU_ASSERT_EQUAL(w->n_maps, 1);
    tolk_weights_free(w);
}

static void test_ct2_base(void) {
    check_real_ct2("base", 6, 512, 51865);
}

static void test_ct2_tiny_en(void) {
    check_real_ct2("tiny.en", 4, 384, 51864);
}

static void test_ct2_base_alt(void) {
    const char *d1 = tu_require_model("base");
    if (!d1) return;
    char p1[4200];
    snprintf(p1, sizeof p1, "%s", d1);
    const char *d2 = tu_require_model("base-alt");
    if (!d2) return;
    tolk_weights *a = load(p1, 1), *b = load(d2, 1);
    if (a && b) {
        CU_ASSERT_EQUAL(same_tensors(a, b), 0);
        CU_ASSERT(hp_equal(&a->hp, &b->hp));
        /* vocabulary.json and vocabulary.txt agree */
        CU_ASSERT_EQUAL(a->vocab.n, b->vocab.n);
        int diff = 0;
        for (int i = 0; i < a->vocab.n && i < b->vocab.n; i++)
            diff += a->vocab.lengths[i] != b->vocab.lengths[i] ||
                    memcmp(a->vocab.tokens[i], b->vocab.tokens[i], a->vocab.lengths[i]) != 0;
        CU_ASSERT(diff <= 1); /* 50362: <|nocaptions|> vs <|nospeech|> in the two conversions */
    }
    tolk_weights_free(a);
    tolk_weights_free(b);
}

/* ------------------------------------------------------------------------ */
/* base in three formats (scripts/convert-model)                            */
/* ------------------------------------------------------------------------ */

/* Make (or find) base-hf/ and base.ggml.bin next to base/. */
static int ensure_converted(const char *base, char *hf, char *gg, size_t cap) {
    snprintf(hf, cap, "%s-hf", base);
    snprintf(gg, cap, "%s.ggml.bin", base);
    char st[4400];
    snprintf(st, sizeof st, "%s/model.safetensors", hf);
    if (tu_exists(st) && tu_exists(gg)) return 1;
    const char *py = getenv("TOLK_PYTHON");
    if (!py || !*py) py = "python3";
    char cmd[13000];
    snprintf(cmd, sizeof cmd, "%s -c 'import numpy, safetensors' >/dev/null 2>&1", py);
    if (system(cmd) != 0) return 0;
    snprintf(cmd, sizeof cmd, "%s %s %s --hf %s --ggml %s >/dev/null", py,
             tu_src("scripts/convert-model"), base, hf, gg);
    int rc = system(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    return rc == 0;
}

static void test_three_formats_real(void) {
    const char *d = tu_require_model("base");
    if (!d) return;
    char base[4096], hf[4200], gg[4200];
    snprintf(base, sizeof base, "%s", d);
    if (!ensure_converted(base, hf, gg, sizeof hf)) {
        tu_skip("numpy + safetensors not importable by python3: cannot convert base");
        return;
    }
    tolk_weights *a = load(base, 1), *b = load(hf, 1), *c = load(gg, 1);
    if (a && b && c) {
        CU_ASSERT_EQUAL(b->format, TOLK_FORMAT_SAFETENSORS);
        CU_ASSERT_EQUAL(c->format, TOLK_FORMAT_GGML);
        CU_ASSERT(hp_equal(&a->hp, &b->hp));
        CU_ASSERT(hp_equal(&a->hp, &c->hp));
        CU_ASSERT_EQUAL(same_tensors(a, b), 0);
        CU_ASSERT_EQUAL(same_tensors(a, c), 0);
        CU_ASSERT_EQUAL(a->n_tensors, n_canonical(&a->hp));
        /* generation defaults carried to generation_config.json */
        CU_ASSERT_EQUAL(a->cfg.n_suppress_ids, b->cfg.n_suppress_ids);
        CU_ASSERT_EQUAL(a->cfg.n_languages, b->cfg.n_languages);
        CU_ASSERT_EQUAL(a->cfg.n_alignment_heads, b->cfg.n_alignment_heads);
        if (a->cfg.n_suppress_ids == b->cfg.n_suppress_ids)
            CU_ASSERT(!memcmp(a->cfg.suppress_ids, b->cfg.suppress_ids,
                              sizeof(int) * (size_t)a->cfg.n_suppress_ids));
        if (a->cfg.n_languages == b->cfg.n_languages && a->cfg.n_languages == c->cfg.n_languages) {
            CU_ASSERT(!memcmp(a->cfg.lang_ids, b->cfg.lang_ids, sizeof(int) * 99));
            CU_ASSERT(!memcmp(a->cfg.lang_ids, c->cfg.lang_ids, sizeof(int) * 99));
        }
        /* ggml: raw-byte vocabulary of the 50257 regular tokens, mel filters */
        CU_ASSERT_EQUAL(c->vocab.raw_bytes, 1);
        CU_ASSERT_EQUAL(c->vocab.n, 50257);
        if (c->vocab.n > 220) {
            CU_ASSERT_EQUAL(c->vocab.lengths[220], 1);
            CU_ASSERT_EQUAL(c->vocab.tokens[220][0], ' '); /* "Ġ" decoded */
        }
        CU_ASSERT_EQUAL(c->mel_n_mels, 80);
        CU_ASSERT_EQUAL(c->mel_n_fft, 201);
        CU_ASSERT_PTR_NOT_NULL(c->mel_filters);
        CU_ASSERT(contains(b->tokenizer_path, "tokenizer.json"));
    }
    tolk_weights_free(a);
    tolk_weights_free(b);
    tolk_weights_free(c);
}

/* ------------------------------------------------------------------------ */
/* random-weight models of every shape                                      */
/* ------------------------------------------------------------------------ */

/* Write s in all three formats, load each, check values and shapes. */
static void roundtrip_all(const char *tag, const mw_spec *s, const char *size_name) {
    char ct2[4096], st[4200], gg[4200];
    snprintf(ct2, sizeof ct2, "%s", tu_tmp(tag));
    snprintf(st, sizeof st, "%s-st", ct2);
    snprintf(gg, sizeof gg, "%s.ggml", ct2);
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(ct2, s), 0);
    CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(st, s), 0);
    CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, s), 0);
    const char *paths[3] = {ct2, st, gg};
    tolk_weights *w[3] = {0};
    for (int f = 0; f < 3; f++) {
        w[f] = load(paths[f], 1);
        if (!w[f]) continue;
        CU_ASSERT_EQUAL(w[f]->format, (tolk_model_format)f);
        CU_ASSERT(hp_equal(&w[f]->hp, &s->hp));
        CU_ASSERT_EQUAL(w[f]->n_tensors, n_canonical(&s->hp));
        CU_ASSERT_EQUAL(check_values(w[f], s->seed), 0);
        CU_ASSERT_STRING_EQUAL(tolk_weights_size_name(&w[f]->hp), size_name);
        int ml = s->hp.n_vocab >= 51865;
        CU_ASSERT_EQUAL(w[f]->cfg.multilingual, ml);
        CU_ASSERT_EQUAL(w[f]->cfg.n_languages, ml ? s->hp.n_vocab - 51766 : 0);
        if (ml) CU_ASSERT_EQUAL(w[f]->cfg.lang_ids[0], 50259);
    }
    if (w[0] && w[1] && w[2]) {
        CU_ASSERT_EQUAL(same_tensors(w[0], w[1]), 0);
        CU_ASSERT_EQUAL(same_tensors(w[0], w[2]), 0);
    }
    for (int f = 0; f < 3; f++)
        tolk_weights_free(w[f]);
    mw_remove_dir(ct2);
    mw_remove_dir(st);
    unlink(gg);
}

static void test_shapes_small_width(void) {
    /* large-v3: 128 mels, 51866 tokens, 32 + 32 layers (width 64 here) */
    mw_spec s = mw_spec_make(128, 51866, 64, 32, 32);
    roundtrip_all("large-v3", &s, "custom");
    /* large-v3-turbo: 4-layer decoder */
    s = mw_spec_make(128, 51866, 64, 32, 4);
    s.seed = 2;
    roundtrip_all("turbo", &s, "custom");
    /* distil-large-v3: 2-layer decoder; distil-small.en: English vocabulary */
    s = mw_spec_make(128, 51866, 64, 32, 2);
    s.seed = 3;
    roundtrip_all("distil-v3", &s, "custom");
    s = mw_spec_make(80, 51864, 128, 12, 2);
    s.seed = 4;
    roundtrip_all("distil-small-en", &s, "custom");
}

static void test_dtypes_and_versions(void) {
    mw_spec s = mw_spec_make(80, 300, 64, 2, 2);
    s.hp.n_audio_ctx = 32;
    s.hp.n_text_ctx = 16;
    const struct {
        tolk_dtype dt, dt1;
        int ver, no_heads;
    } v[] = {
        {TOLK_DT_F32, TOLK_DT_F32, 6, 0}, {TOLK_DT_BF16, TOLK_DT_BF16, 6, 0},
        {TOLK_DT_F16, TOLK_DT_F16, 5, 1}, {TOLK_DT_I8, TOLK_DT_F16, 6, 0},
        {TOLK_DT_F32, TOLK_DT_F32, 3, 0}, {TOLK_DT_F32, TOLK_DT_F32, 1, 1},
        {TOLK_DT_I8, TOLK_DT_F32, 2, 0},
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("ct2v"));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        s.dtype = v[i].dt;
        s.dtype_1d = v[i].dt1;
        s.ct2_version = v[i].ver;
        s.ct2_no_num_heads = v[i].no_heads;
        s.seed = 10 + i;
        CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
        tolk_weights *w = load(dir, 1);
        if (!w) continue;
        CU_ASSERT(hp_equal(&w->hp, &s.hp));
        CU_ASSERT_EQUAL(check_values(w, s.seed), 0);
        const tolk_tensor *t = tolk_weights_get(w, "decoder.blocks.1.cross_attn.value.weight");
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(t->dtype, v[i].dt);
        if (t->dtype == TOLK_DT_I8) {
            CU_ASSERT_PTR_NOT_NULL(t->scale);
            CU_ASSERT_EQUAL(t->scale[0], 128.0f);
            const tolk_tensor *e = tolk_weights_get(w, "decoder.token_embedding.weight");
            CU_ASSERT(e && e->dtype == TOLK_DT_I8 && e->scale);
        }
        CU_ASSERT_PTR_NULL(tolk_weights_get(w, "decoder.blocks.1.cross_attn.key.bias"));
        tolk_weights_free(w);
        mw_remove_dir(dir);
    }
    /* safetensors: sharded, bfloat16, no generation config */
    s.dtype = TOLK_DT_BF16;
    s.dtype_1d = TOLK_DT_BF16;
    s.n_shards = 3;
    s.write_generation_config = 0;
    s.seed = 30;
    CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
    tolk_weights *w = load(dir, 1);
    if (w) {
        CU_ASSERT_EQUAL(check_values(w, s.seed), 0);
        CU_ASSERT_EQUAL(w->n_maps, 3);
        CU_ASSERT_EQUAL(w->cfg.n_suppress_ids, 0);
        tolk_weights_free(w);
    }
    w = load(dir, 0); /* read, not mapped */
    if (w) {
        CU_ASSERT_EQUAL(check_values(w, s.seed), 0);
        tolk_weights_free(w);
    }
    mw_remove_dir(dir);
    /* ggml: float32 and bfloat16 */
    char gg[4096];
    snprintf(gg, sizeof gg, "%s", tu_tmp("v.ggml"));
    for (int k = 0; k < 2; k++) {
        s.dtype = k ? TOLK_DT_BF16 : TOLK_DT_F32;
        s.seed = 40 + k;
        CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, &s), 0);
        w = load(gg, k);
        if (w) {
            CU_ASSERT_EQUAL(check_values(w, s.seed), 0);
            CU_ASSERT_EQUAL(w->vocab.n, 300);
            CU_ASSERT_EQUAL(w->vocab.raw_bytes, 1);
            CU_ASSERT_EQUAL(w->vocab.lengths[0], 2);
            CU_ASSERT_EQUAL(w->vocab.tokens[0][0], '\0'); /* raw bytes, NUL included */
            CU_ASSERT_EQUAL(w->mel_n_fft, 201);
            CU_ASSERT_EQUAL(w->mel_filters[5], mw_value("mel_filters", 5, s.seed));
            tolk_weights_free(w);
        }
    }
    unlink(gg);
}

/* Full shapes, header level: sparse safetensors files (data never read). */
static void test_full_shapes_header(void) {
    const struct {
        int el, dl, mels, vocab, d;
        const char *name;
    } v[] = {
        {32, 32, 128, 51866, 1280, "large-v3"},
        {32, 4, 128, 51866, 1280, "large-v3-turbo"},
        {32, 2, 128, 51866, 1280, "distil-large-v3"},
        {32, 32, 80, 51865, 1280, "large-v2"},
        {24, 24, 80, 51864, 1024, "medium.en"},
        {12, 2, 80, 51864, 768, "distil-small.en"},
        {12, 12, 80, 51865, 768, "small"},
        {6, 6, 80, 51865, 512, "base"},
        {4, 4, 80, 51864, 384, "tiny.en"},
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("full"));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int d = v[i].d;
        mw_spec s = mw_spec_make(v[i].mels, v[i].vocab, d, v[i].el, v[i].dl);
        s.sparse = 1;
        CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
        tolk_model_params p = tolk_model_default_params();
        p.use_mmap = 1; /* sparse: mapped, nothing is read */
        tolk_model *m = NULL;
        tolk_status st = tolk_model_load(ctx, dir, &p, &m);
        CU_ASSERT_EQUAL(st, TOLK_OK);
        if (st) printf("\n    %s: %s\n", v[i].name, tolk_ctx_last_error(ctx));
        if (m) {
            tolk_model_desc desc;
            tolk_model_describe(m, &desc);
            CU_ASSERT_STRING_EQUAL(desc.size_name, v[i].name);
            CU_ASSERT_EQUAL(desc.n_mels, v[i].mels);
            CU_ASSERT_EQUAL(desc.n_vocab, v[i].vocab);
            CU_ASSERT_EQUAL(desc.n_audio_layer, v[i].el);
            CU_ASSERT_EQUAL(desc.n_text_layer, v[i].dl);
            CU_ASSERT_EQUAL(desc.n_audio_head, d / 64);
            CU_ASSERT_EQUAL(desc.n_languages, v[i].vocab == 51866   ? 100
                                              : v[i].vocab == 51865 ? 99
                                                                    : 0);
            CU_ASSERT_EQUAL(desc.multilingual, v[i].vocab >= 51865);
            /* resident compute weights: the stored tensors plus small float32
             * copies (norms, biases, positional embeddings) */
            CU_ASSERT(desc.mem_bytes > desc.file_bytes / 2 && desc.mem_bytes < desc.file_bytes * 2);
            CU_ASSERT_EQUAL(m->w->n_tensors, n_canonical(&s.hp));
            tolk_model_free(m);
        }
        mw_remove_dir(dir);
    }
}

/* ------------------------------------------------------------------------ */
/* hostile files                                                            */
/* ------------------------------------------------------------------------ */

static mw_spec small_spec(void) {
    mw_spec s = mw_spec_make(80, 120, 64, 1, 1);
    s.hp.n_audio_ctx = 8;
    s.hp.n_text_ctx = 4;
    s.seed = 99;
    return s;
}

/* Load must fail with a status in {FORMAT, UNSUPPORTED, IO, NOMEM} and a
 * message that names `name_part`. */
static int expect_fail(const char *path, const char *name_part, const char *detail) {
    tolk_weights *w = NULL;
    tolk_ctx_last_error(ctx);
    tolk_status st = tolk_weights_load(ctx, path, 1, &w);
    int ok = st != TOLK_OK && w == NULL && contains(tolk_ctx_last_error(ctx), name_part) &&
             (!detail || contains(tolk_ctx_last_error(ctx), detail));
    if (!ok)
        printf("\n    %s: status %d, message '%s' (want '%s' / '%s')\n", path, st,
               tolk_ctx_last_error(ctx), name_part, detail ? detail : "");
    tolk_weights_free(w);
    return ok;
}

static void test_hostile_missing_and_shapes(void) {
    char dir[4096], gg[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("h1"));
    snprintf(gg, sizeof gg, "%s", tu_tmp("h1.ggml"));
    const char *names[] = {"encoder.conv2.weight", "decoder.blocks.0.mlp.2.bias",
                           "decoder.positional_embedding", "decoder.blocks.0.cross_attn_ln.weight"};
    for (int k = 0; k < 4; k++) {
        mw_spec s = small_spec();
        s.omit = names[k];
        /* CT2 names its own variables; the others the canonical tensor */
        CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
        CU_ASSERT(expect_fail(dir, "model.bin", "missing"));
        mw_remove_dir(dir);
        CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
        CU_ASSERT(expect_fail(dir, dir, names[k]));
        mw_remove_dir(dir);
        CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, &s), 0);
        CU_ASSERT(expect_fail(gg, gg, names[k]));
        s.omit = NULL;
        s.bad_shape = names[k];
        CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
        if (strstr(names[k], "positional")) { /* CT2 takes n_text_ctx from this shape */
            tolk_weights *w = load(dir, 1);
            CU_ASSERT(w && w->hp.n_text_ctx == s.hp.n_text_ctx + 1);
            tolk_weights_free(w);
        } else {
            CU_ASSERT(expect_fail(dir, dir, "shape"));
        }
        mw_remove_dir(dir);
        CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
        CU_ASSERT(expect_fail(dir, dir, names[k]));
        mw_remove_dir(dir);
        CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, &s), 0);
        CU_ASSERT(expect_fail(gg, gg, names[k]));
    }
    /* a fused q,k,v that does not split in three */
    mw_spec s = small_spec();
    s.bad_shape = "encoder.blocks.0.attn.key.weight";
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
    CU_ASSERT(expect_fail(dir, "encoder/layer_0/self_attention/linear_0/weight", "split"));
    mw_remove_dir(dir);
    unlink(gg);
}

/* Truncate `path` at many lengths; every load must fail cleanly. */
static int truncations(const char *path, const char *load_path, size_t keep_tail) {
    size_t n;
    uint8_t *orig = read_file(path, &n);
    if (!orig) return 0;
    int bad = 0;
    for (size_t cut = 0; cut + keep_tail < n; cut += cut < 600 ? 1 : n / 150 + 1) {
        if (write_file(path, orig, cut)) return 0;
        tolk_weights *w = NULL;
        tolk_status st = tolk_weights_load(ctx, load_path, 1, &w);
        if (st == TOLK_OK || w || !contains(tolk_ctx_last_error(ctx), path)) {
            if (!bad)
                printf("\n    cut %zu of %s: status %d '%s'\n", cut, path, st,
                       tolk_ctx_last_error(ctx));
            bad++;
        }
        tolk_weights_free(w);
    }
    write_file(path, orig, n);
    free(orig);
    return bad;
}

/* Flip random bytes; the loader may accept or refuse but must not crash. */
static void byte_flips(const char *path, const char *load_path, int iters, uint64_t seed) {
    size_t n;
    uint8_t *orig = read_file(path, &n);
    if (!orig) return;
    uint8_t *buf = malloc(n);
    tu_seed(seed);
    int ok = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(buf, orig, n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            size_t pos = it % 2 ? (size_t)tu_uniform(0, (float)(n < 4096 ? n : 4096))
                                : (size_t)tu_uniform(0, (float)n);
            if (pos >= n) pos = n - 1;
            buf[pos] = (uint8_t)(it % 3 == 0 ? 0xff : (int)tu_uniform(0, 256));
        }
        write_file(path, buf, n);
        tolk_weights *w = NULL;
        if (tolk_weights_load(ctx, load_path, 1, &w) == TOLK_OK) {
            ok++;
            CU_ASSERT_EQUAL(tolk_weights_validate(ctx, w), TOLK_OK);
        }
        tolk_weights_free(w);
    }
    write_file(path, orig, n);
    free(orig);
    free(buf);
    CU_ASSERT(ok < iters); /* most flips in headers must be caught */
}

static void test_hostile_truncation_and_flips(void) {
    mw_spec s = small_spec();
    char dir[4096], gg[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", tu_tmp("h2"));
    snprintf(gg, sizeof gg, "%s", tu_tmp("h2.ggml"));
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
    snprintf(p, sizeof p, "%s/model.bin", dir);
    CU_ASSERT_EQUAL(truncations(p, dir, 0), 0);
    byte_flips(p, dir, 300, 1);
    snprintf(p, sizeof p, "%s/config.json", dir);
    CU_ASSERT_EQUAL(truncations(p, dir, 3), 0); /* truncated JSON (not just its newline) */
    mw_remove_dir(dir);
    CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CU_ASSERT_EQUAL(truncations(p, dir, 0), 0);
    byte_flips(p, dir, 300, 2);
    mw_remove_dir(dir);
    CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, &s), 0);
    CU_ASSERT_EQUAL(truncations(gg, gg, 0), 0);
    byte_flips(gg, gg, 300, 3);
    unlink(gg);
}

/* Patch 4 little-endian bytes at off. */
static void patch_u32(uint8_t *b, size_t off, uint32_t v) {
    for (int i = 0; i < 4; i++)
        b[off + i] = (uint8_t)(v >> (8 * i));
}

static void test_hostile_patches(void) {
    mw_spec s = small_spec();
    char dir[4096], gg[4096], p[4200];
    size_t n;
    snprintf(dir, sizeof dir, "%s", tu_tmp("h3"));
    snprintf(gg, sizeof gg, "%s", tu_tmp("h3.ggml"));
    /* CT2: absurd first dimension, unsupported version, bad config JSON */
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
    snprintf(p, sizeof p, "%s/model.bin", dir);
    uint8_t *b = read_file(p, &n);
    /* first variable: u32 version, str "WhisperSpec" (2+12), u32 rev, u32 n,
     * str name, u8 rank, dims */
    size_t name_at = 4 + 2 + 12 + 4 + 4;
    uint16_t sl = (uint16_t)(b[name_at] | b[name_at + 1] << 8);
    size_t dim_at = name_at + 2 + sl + 1;
    patch_u32(b, dim_at, 0xffffffffu);
    write_file(p, b, n);
    CU_ASSERT(expect_fail(dir, p, "encoder/conv1/weight"));
    patch_u32(b, dim_at, 64);
    patch_u32(b, 0, 7);
    write_file(p, b, n);
    CU_ASSERT(expect_fail(dir, p, "version 7"));
    patch_u32(b, 0, 6);
    write_file(p, b, n);
    free(b);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_str(p, "{\"suppress_ids\": [1, 2,");
    CU_ASSERT(expect_fail(dir, "config.json", "JSON"));
    write_str(p, "{\"suppress_ids\": [1, 99999999]}");
    CU_ASSERT(expect_fail(dir, "config.json", "suppress_ids"));
    write_str(p, "{\"alignment_heads\": [[5, 0]]}");
    CU_ASSERT(expect_fail(dir, "config.json", "alignment head"));
    write_str(p, "{\"lang_ids\": \"x\"}");
    CU_ASSERT(expect_fail(dir, "config.json", "lang_ids"));
    mw_remove_dir(dir);

    /* safetensors: header length, dtype, offsets, config */
    CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    b = read_file(p, &n);
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    patch_u32(c, 0, 0xfffffff0u);
    write_file(p, c, n);
    CU_ASSERT(expect_fail(dir, p, "header length"));
    memcpy(c, b, n);
    char *hdr = (char *)c + 8;
    char *f16 = strstr(hdr, "\"F16\"");
    if (f16) memcpy(f16, "\"I64\"", 5);
    write_file(p, c, n);
    CU_ASSERT(expect_fail(dir, p, "I64"));
    memcpy(c, b, n);
    char *offs = strstr(hdr, "\"data_offsets\":[0,");
    if (offs) memcpy(offs + 16, "9", 1); /* first begin offset 0 -> 9: size mismatch */
    write_file(p, c, n);
    CU_ASSERT(expect_fail(dir, p, "bytes"));
    memcpy(c, b, n);
    c[8] = '[';
    write_file(p, c, n);
    CU_ASSERT(expect_fail(dir, p, "JSON"));
    write_file(p, b, n);
    CU_ASSERT(expect_fail(p, p, "safetensors file")); /* the file, not its directory */
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_str(p, "{\"d_model\": -3}");
    CU_ASSERT(expect_fail(dir, "config.json", NULL));
    unlink(p);
    CU_ASSERT(expect_fail(dir, "config.json", "missing"));
    free(b);
    free(c);
    mw_remove_dir(dir);

    /* ggml: quantized file type and tensor type, absurd hparams */
    CU_ASSERT_EQUAL_FATAL(mw_write_ggml(gg, &s), 0);
    b = read_file(gg, &n);
    c = malloc(n);
    memcpy(c, b, n);
    patch_u32(c, 44, 1008); /* ftype: qnt version 1, q5_0 */
    write_file(gg, c, n);
    CU_ASSERT(expect_fail(gg, gg, "quantization type q5_0 not supported"));
    memcpy(c, b, n);
    patch_u32(c, 12, 1u << 30); /* n_audio_state */
    write_file(gg, c, n);
    CU_ASSERT(expect_fail(gg, gg, "n_audio_state"));
    memcpy(c, b, n);
    /* first tensor header after filters and vocabulary */
    size_t off = 48 + 8 + (size_t)80 * 201 * 4;
    uint32_t nt;
    memcpy(&nt, c + off, 4);
    off += 4;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t len;
        memcpy(&len, c + off, 4);
        off += 4 + len;
    }
    patch_u32(c, off + 8, 8); /* type q8_0 */
    write_file(gg, c, n);
    CU_ASSERT(expect_fail(gg, gg, "quantization type q8_0 not supported"));
    memcpy(c, b, n);
    memcpy(c, "GGUF", 4);
    write_file(gg, c, n);
    CU_ASSERT(expect_fail(gg, gg, "GGUF"));
    free(b);
    free(c);
    unlink(gg);

    /* sharded safetensors: an index naming a file outside the directory */
    mw_spec sh = small_spec();
    sh.n_shards = 2;
    CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &sh), 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_str(p, "{\"weight_map\": {\"a\": \"../x.safetensors\"}}");
    CU_ASSERT(expect_fail(dir, "index.json", "shard"));
    write_str(p, "{\"weight_map\": {\"a\": \"nope.safetensors\"}}");
    CU_ASSERT(expect_fail(dir, "nope.safetensors", NULL));
    mw_remove_dir(dir);

    /* not a model at all */
    CU_ASSERT(expect_fail("/nonexistent/model", "/nonexistent/model", "no such"));
    snprintf(p, sizeof p, "%s", tu_tmp("empty.bin"));
    write_str(p, "");
    CU_ASSERT(expect_fail(p, p, "not a model"));
    snprintf(p, sizeof p, "%s", tu_tmp("emptydir"));
    mkdir(p, 0755);
    CU_ASSERT(expect_fail(p, p, "model.bin"));
    rmdir(p);
}

/* Hyper-parameters that a file states consistently (config, header and
 * tensor shapes agree) but that the network cannot run: the table loads,
 * tolk_model_load refuses with TOLK_ERR_UNSUPPORTED naming the parameter.
 * (Issue 12, defect 1: max_source_positions 1600 with a matching
 * embed_positions passed and the encoder read past the mel window.) */
static void test_hostile_hparams(void) {
    const struct {
        const char *what;
        int n_audio_ctx, n_mels, n_vocab, d;
        const char *needle;
    } v[] = {
        {"1600 positions", 1600, 80, 51864, 64, "n_audio_ctx (max_source_positions) = 1600"},
        {"1000 positions", 1000, 80, 51864, 64, "n_audio_ctx (max_source_positions) = 1000"},
        {"100 mel bins", 1500, 100, 51864, 64, "n_mels = 100"},
        {"a vocabulary of 51800", 1500, 80, 51800, 64, "n_vocab = 51800"},
        {"heads of width 48", 1500, 80, 51864, 96, "head width 48"},
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("hp"));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        mw_spec s = mw_spec_make(v[i].n_mels, v[i].n_vocab, v[i].d, 1, 1);
        s.hp.n_audio_ctx = v[i].n_audio_ctx;
        if (v[i].d == 96) s.hp.n_audio_head = s.hp.n_text_head = 2;
        s.sparse = 1;
        CU_ASSERT_EQUAL_FATAL(mw_write_safetensors(dir, &s), 0);
        tolk_weights *w = load(dir, 1); /* a consistent file: the table loads */
        CU_ASSERT_PTR_NOT_NULL(w);
        tolk_weights_free(w);
        tolk_model_params p = tolk_model_default_params();
        p.use_mmap = 1; /* sparse: nothing is read */
        tolk_model *m = NULL;
        tolk_status st = tolk_model_load(ctx, dir, &p, &m);
        const char *msg = tolk_ctx_last_error(ctx);
        int ok =
            st == TOLK_ERR_UNSUPPORTED && !m && contains(msg, v[i].needle) && contains(msg, dir);
        if (!ok) printf("\n    %s: status %d, message '%s'\n", v[i].what, st, msg);
        CU_ASSERT(ok);
        tolk_model_free(m);
        mw_remove_dir(dir);
    }
}

/* A model file truncated by another process after the model was loaded
 * (issue 12, defect 6): with the default parameters the weights are read
 * into memory, so every tensor stays readable and the network still runs
 * (with the file mapped, the first access beyond the new end of the file
 * would kill this whole test process with SIGBUS). The same for a file
 * rewritten in place. */
static void test_truncated_while_loaded(void) {
    for (int fmt = 0; fmt < 2; fmt++) {
        char dir[4096], file[4200];
        snprintf(dir, sizeof dir, "%s", tu_tmp(fmt ? "trunc_hf" : "trunc_ct2"));
        mw_spec s = mw_spec_make(80, 51864, 64, 1, 1);
        s.seed = 77;
        CU_ASSERT_EQUAL_FATAL(fmt ? mw_write_safetensors(dir, &s) : mw_write_ct2(dir, &s), 0);
        snprintf(file, sizeof file, "%s/%s", dir, fmt ? "model.safetensors" : "model.bin");
        tolk_model *m = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(truncate(file, 0), 0); /* another process cuts the file */
        /* every tensor's bytes, then the encoder over a window of silence */
        uint64_t sum = 0;
        for (int i = 0; i < m->w->n_tensors; i++) {
            const tolk_tensor *t = &m->w->tensors[i];
            const unsigned char *b = t->data;
            for (size_t k = 0; k < tolk_tensor_nbytes(t); k += 512)
                sum += b[k];
        }
        CU_ASSERT(sum > 0);
        CU_ASSERT_EQUAL(check_values(m->w, s.seed), 0);
        float *mel = calloc((size_t)80 * 3000, sizeof(float));
        float *enc = malloc((size_t)1500 * 64 * sizeof(float));
        CU_ASSERT_FATAL(mel && enc);
        CU_ASSERT_EQUAL(tolk_net_encode(ctx, (const tolk_net *)m->net, mel, 1, enc), TOLK_OK);
        CU_ASSERT(isfinite(enc[0]) && isfinite(enc[1500 * 64 - 1]));
        free(mel);
        free(enc);
        tolk_model_free(m);
        mw_remove_dir(dir);
    }
}

/* ------------------------------------------------------------------------ */
/* public API                                                               */
/* ------------------------------------------------------------------------ */

static void test_public_api(void) {
    CU_ASSERT_STRING_EQUAL(tolk_model_format_name(TOLK_FORMAT_CT2), "ctranslate2");
    CU_ASSERT_STRING_EQUAL(tolk_model_format_name(TOLK_FORMAT_SAFETENSORS), "safetensors");
    CU_ASSERT_STRING_EQUAL(tolk_model_format_name(TOLK_FORMAT_GGML), "ggml");
    tolk_model_params p = tolk_model_default_params();
    CU_ASSERT_EQUAL(p.use_mmap, 0); /* read: see test_truncated_while_loaded */
    tolk_model *m = (tolk_model *)1;
    CU_ASSERT_EQUAL(tolk_model_load(ctx, NULL, NULL, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(tolk_model_load(ctx, "x", NULL, NULL), TOLK_ERR_INVALID_ARG);
    /* per-model switches (formerly environment variables): checked first */
    CU_ASSERT_EQUAL(p.attention_type, TOLK_ATTENTION_AUTO);
    CU_ASSERT_EQUAL(p.no_avx512, 0);
    p.attention_type = 9;
    CU_ASSERT_EQUAL(tolk_model_load(ctx, "x", &p, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "attention_type") != NULL);
    p = tolk_model_default_params();
    tolk_model_free(NULL);
    tolk_model_desc d;
    tolk_model_describe(NULL, &d);
    CU_ASSERT_EQUAL(d.n_vocab, 0);
    /* an empty table */
    tolk_weights *e = tolk_weights_new(TOLK_FORMAT_GGML, "empty");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NULL(tolk_weights_get(e, "decoder.ln.bias"));
    CU_ASSERT_PTR_NULL(tolk_weights_getf(e, "encoder.blocks.%d.mlp.0.weight", 0));
    CU_ASSERT_EQUAL(tolk_weights_mem_bytes(e), 0);
    char dts[32];
    tolk_weights_dtypes(e, dts, sizeof dts);
    CU_ASSERT_STRING_EQUAL(dts, "");
    CU_ASSERT_NOT_EQUAL(tolk_weights_finish(ctx, e), TOLK_OK); /* zero hparams */
    tolk_weights_free(e);
    tolk_weights_free(NULL);

    /* a random model of Whisper's dimensions (one narrow layer per stack),
     * then the real one when installed */
    mw_spec s = mw_spec_make(80, 51864, 64, 1, 1);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("api"));
    CU_ASSERT_EQUAL_FATAL(mw_write_ct2(dir, &s), 0);
    CU_ASSERT_EQUAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
    if (m) {
        tolk_model_describe(m, &d);
        CU_ASSERT_EQUAL(d.format, TOLK_FORMAT_CT2);
        CU_ASSERT_STRING_EQUAL(d.size_name, "custom");
        CU_ASSERT_STRING_EQUAL(d.dtypes, "float32,float16");
        CU_ASSERT_EQUAL(d.multilingual, 0);
        tolk_model_free(m);
    }
    mw_remove_dir(dir);

    const char *base = tu_require_model("base");
    if (!base) return;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, base, &p, &m), TOLK_OK);
    tolk_model_describe(m, &d);
    CU_ASSERT_EQUAL(d.format, TOLK_FORMAT_CT2);
    CU_ASSERT_EQUAL(d.n_mels, 80);
    CU_ASSERT_EQUAL(d.n_vocab, 51865);
    CU_ASSERT_EQUAL(d.n_audio_layer, 6);
    CU_ASSERT_EQUAL(d.n_text_head, 8);
    CU_ASSERT_EQUAL(d.multilingual, 1);
    CU_ASSERT_EQUAL(d.n_languages, 99);
    CU_ASSERT_STRING_EQUAL(d.dtypes, "float16");
    CU_ASSERT_STRING_EQUAL(d.size_name, "base");
    CU_ASSERT(d.file_bytes > 140000000ull);
    CU_ASSERT(d.mem_bytes > 140000000ull && d.mem_bytes <= d.file_bytes + d.file_bytes / 20);
    tolk_model_free(m);
    p.use_mmap = 1;
    CU_ASSERT_EQUAL(tolk_model_load(ctx, base, &p, &m), TOLK_OK);
    tolk_model_free(m);
}

int main(void) {
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 1;
    CU_TestInfo conv[] = {{"half_conversions", test_half_conversions}, CU_TEST_INFO_NULL};
    CU_TestInfo real[] = {{"ct2_base", test_ct2_base},
                          {"ct2_tiny_en", test_ct2_tiny_en},
                          {"ct2_base_alt", test_ct2_base_alt},
                          {"three_formats_base", test_three_formats_real},
                          CU_TEST_INFO_NULL};
    CU_TestInfo shapes[] = {{"small_width_shapes", test_shapes_small_width},
                            {"dtypes_and_versions", test_dtypes_and_versions},
                            {"full_shapes_header", test_full_shapes_header},
                            CU_TEST_INFO_NULL};
    CU_TestInfo hostile[] = {{"missing_and_shapes", test_hostile_missing_and_shapes},
                             {"truncation_and_flips", test_hostile_truncation_and_flips},
                             {"patches", test_hostile_patches},
                             {"hparams", test_hostile_hparams},
                             {"truncated_while_loaded", test_truncated_while_loaded},
                             CU_TEST_INFO_NULL};
    CU_TestInfo api[] = {{"public_api", test_public_api}, CU_TEST_INFO_NULL};
    tu_add_suite("conversions", conv);
    tu_add_suite("real_models", real);
    tu_add_suite("random_shapes", shapes);
    tu_add_suite("hostile", hostile);
    tu_add_suite("api", api);
    int rc = tu_run();
    tolk_ctx_free(ctx);
    return rc;
}

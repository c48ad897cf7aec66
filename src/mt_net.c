/*
 * mt_net.c — the Bergamot transformer (encoder + SSRU decoder) over the
 * backend op table: weight preparation from a Marian model, the encoder of
 * a batch, one decoder step. See mt_net.h for the structure and the
 * reference behaviour (marian-dev models/transformer.h, rnn/cells.h).
 *
 * Each sub-layer computes t = f(x) into a scratch buffer, then x = t + x
 * (the `add` op) and x = LayerNorm(x): the order of Marian's
 * postProcess("dan"), so the float rounding is that of the reference.
 */
#include "mt_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f

/* ------------------------------------------------------------------------ */
/* Weights                                                                  */
/* ------------------------------------------------------------------------ */

/* Host float32 tensor view of buf [rows, cols] for weight_prepare. */
static tolk_tensor host_tensor(const char *name, float *buf, int64_t rows, int64_t cols) {
    tolk_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = TOLK_DT_F32;
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data = buf;
    return t;
}

typedef struct prep {
    tolk_ctx *ctx;
    const tolk_backend *be;
    const tolk_marian_model *m;
    tolk_mt_net *net;
    float *buf; /* host scratch, large enough for any one matrix pair */
} prep;

/* The int8 form of [W_a; W_b; ...]: the stored int8 (already [out, in]),
 * each part's multiplier, and the activation scale the parts share. */
static tolk_status prep_i8(prep *p, tolk_mt_i8 *q, int n, const char *const *names) {
    const int8_t *parts[3];
    int rows[3];
    float qw[3];
    int K = 0;
    for (int i = 0; i < n; i++) {
        const tolk_marian_item *it = tolk_marian_get(p->m, names[i]);
        const tolk_marian_item *a = tolk_marian_getf(p->m, "%s_QuantMultA", names[i]);
        if (it->type != TOLK_MARIAN_INTGEMM8 || !a || a->type != TOLK_MARIAN_FLOAT32)
            return tolk_fail(p->ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: %s: int8 mode needs intgemm8 weights with an activation scale "
                             "(%s_QuantMultA)",
                             p->m->path, names[i], names[i]);
        float qa;
        tolk_marian_vector_f32(a, &qa);
        if (!(qa > 0.0f && qa < 1e20f) || (i > 0 && qa != q->qa))
            return tolk_fail(p->ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: %s_QuantMultA: bad or unshared "
                             "activation scale %g",
                             p->m->path, names[i], (double)qa);
        q->qa = qa;
        parts[i] = (const int8_t *)it->data;
        rows[i] = (int)it->cols; /* stored transposed: [out = cols, in = rows] */
        K = (int)it->rows;
        qw[i] = it->quant_mult;
    }
    tolk_status st = tolk_i8_pack(p->ctx, parts, rows, qw, n, K, &q->w);
    if (!st) p->net->weight_bytes += (uint64_t)q->w.N * (uint64_t)K;
    return st;
}

/* Prepare the linear weight [W_a; W_b; ...] (n Marian matrices, each
 * [in, out] in the file, stacked as tolk's [out, in] rows), or its int8
 * form q in the int8 mode. */
static tolk_status prep_linear(prep *p, tolk_bweight *w, tolk_mt_i8 *q, int n,
                               const char *const *names) {
    if (p->net->int8) return prep_i8(p, q, n, names);
    tolk_tensor parts[3];
    const tolk_tensor *pp[3];
    float *at = p->buf;
    for (int i = 0; i < n; i++) {
        const tolk_marian_item *it = tolk_marian_get(p->m, names[i]);
        int64_t r, c;
        tolk_marian_matrix_f32(it, 0, at, &r, &c);
        parts[i] = host_tensor(names[i], at, r, c);
        pp[i] = &parts[i];
        at += r * c;
    }
    tolk_status st = p->be->weight_prepare(p->ctx, p->be, pp, n, w);
    if (!st) p->net->weight_bytes += (uint64_t)w->rows * (uint64_t)w->cols * 4;
    return st;
}

/* Concatenated float32 vectors (NULL name: zeros of zero_len) -> device. */
static tolk_status prep_vector(prep *p, float **out, int n, const char *const *names,
                               const int64_t *zero_len) {
    tolk_tensor parts[3];
    const tolk_tensor *pp[3];
    int64_t zl[3] = {0, 0, 0};
    float *at = p->buf;
    for (int i = 0; i < n; i++) {
        if (!names[i]) {
            pp[i] = NULL;
            zl[i] = zero_len[i];
            continue;
        }
        const tolk_marian_item *it = tolk_marian_get(p->m, names[i]);
        tolk_marian_vector_f32(it, at);
        parts[i] = host_tensor(names[i], at, 1, it->rows * it->cols);
        pp[i] = &parts[i];
        at += it->rows * it->cols;
    }
    tolk_status st = p->be->vector_prepare(p->ctx, p->be, pp, zl, n, out);
    return st;
}

#define NM(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

static tolk_status prep_enc_layer(prep *p, int l, tolk_mt_enc_layer *L) {
    char a[96], b[96], c[96];
    const char *n3[3];
    tolk_status st;
    n3[0] = NM(a, "encoder_l%d_self_Wq", l), n3[1] = NM(b, "encoder_l%d_self_Wk", l);
    n3[2] = NM(c, "encoder_l%d_self_Wv", l);
    if ((st = prep_linear(p, &L->qkv, &L->qkv8, 3, n3))) return st;
    n3[0] = NM(a, "encoder_l%d_self_bq", l), n3[1] = NM(b, "encoder_l%d_self_bk", l);
    n3[2] = NM(c, "encoder_l%d_self_bv", l);
    if ((st = prep_vector(p, &L->b_qkv, 3, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_self_Wo", l);
    if ((st = prep_linear(p, &L->o, &L->o8, 1, n3))) return st;
    n3[0] = NM(a, "encoder_l%d_self_bo", l);
    if ((st = prep_vector(p, &L->b_o, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_self_Wo_ln_scale", l);
    if ((st = prep_vector(p, &L->ln1_g, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_self_Wo_ln_bias", l);
    if ((st = prep_vector(p, &L->ln1_b, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_W1", l);
    if ((st = prep_linear(p, &L->w1, &L->w18, 1, n3))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_b1", l);
    if ((st = prep_vector(p, &L->b1, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_W2", l);
    if ((st = prep_linear(p, &L->w2, &L->w28, 1, n3))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_b2", l);
    if ((st = prep_vector(p, &L->b2, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_ffn_ln_scale", l);
    if ((st = prep_vector(p, &L->ln2_g, 1, n3, NULL))) return st;
    n3[0] = NM(a, "encoder_l%d_ffn_ffn_ln_bias", l);
    return prep_vector(p, &L->ln2_b, 1, n3, NULL);
}

static tolk_status prep_dec_layer(prep *p, int l, tolk_mt_dec_layer *L) {
    char a[96], b[96];
    const char *n2[3];
    const int64_t zd[2] = {p->net->d, 0};
    tolk_status st;
    n2[0] = NM(a, "decoder_l%d_rnn_W", l), n2[1] = NM(b, "decoder_l%d_rnn_Wf", l);
    if ((st = prep_linear(p, &L->rnn, &L->rnn8, 2, n2))) return st;
    n2[0] = NULL, n2[1] = NM(b, "decoder_l%d_rnn_bf", l); /* x W has no bias */
    if ((st = prep_vector(p, &L->b_rnn, 2, n2, zd))) return st;
    n2[0] = NM(a, "decoder_l%d_rnn_ffn_ln_scale", l);
    if ((st = prep_vector(p, &L->ln_rnn_g, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_rnn_ffn_ln_bias", l);
    if ((st = prep_vector(p, &L->ln_rnn_b, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_context_Wq", l);
    if ((st = prep_linear(p, &L->q, &L->q8, 1, n2))) return st;
    n2[0] = NM(a, "decoder_l%d_context_bq", l);
    if ((st = prep_vector(p, &L->b_q, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_context_Wk", l), n2[1] = NM(b, "decoder_l%d_context_Wv", l);
    if ((st = prep_linear(p, &L->kv, &L->kv8, 2, n2))) return st;
    n2[0] = NM(a, "decoder_l%d_context_bk", l), n2[1] = NM(b, "decoder_l%d_context_bv", l);
    if ((st = prep_vector(p, &L->b_kv, 2, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_context_Wo", l);
    if ((st = prep_linear(p, &L->o, &L->o8, 1, n2))) return st;
    n2[0] = NM(a, "decoder_l%d_context_bo", l);
    if ((st = prep_vector(p, &L->b_o, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_context_Wo_ln_scale", l);
    if ((st = prep_vector(p, &L->ln_ctx_g, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_context_Wo_ln_bias", l);
    if ((st = prep_vector(p, &L->ln_ctx_b, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_W1", l);
    if ((st = prep_linear(p, &L->w1, &L->w18, 1, n2))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_b1", l);
    if ((st = prep_vector(p, &L->b1, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_W2", l);
    if ((st = prep_linear(p, &L->w2, &L->w28, 1, n2))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_b2", l);
    if ((st = prep_vector(p, &L->b2, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_ffn_ln_scale", l);
    if ((st = prep_vector(p, &L->ln_ffn_g, 1, n2, NULL))) return st;
    n2[0] = NM(a, "decoder_l%d_ffn_ffn_ln_bias", l);
    return prep_vector(p, &L->ln_ffn_b, 1, n2, NULL);
}

/* An embedding table: rows of the Marian item * scale (sqrtf(d), as
 * Marian's float multiply), plus extra zero rows, prepared as a weight. */
static tolk_status prep_embedding(prep *p, const char *name, float scale, int extra_rows,
                                  tolk_bweight *w) {
    const tolk_marian_item *it = tolk_marian_get(p->m, name);
    int64_t r, c;
    tolk_marian_matrix_f32(it, 1, p->buf, &r, &c);
    if (scale != 1.0f)
        for (int64_t i = 0; i < r * c; i++)
            p->buf[i] = scale * p->buf[i];
    memset(p->buf + r * c, 0, (size_t)(extra_rows * c) * sizeof(float));
    tolk_tensor t = host_tensor(name, p->buf, r + extra_rows, c);
    const tolk_tensor *pp[1] = {&t};
    tolk_status st = p->be->weight_prepare(p->ctx, p->be, pp, 1, w);
    if (!st) p->net->weight_bytes += (uint64_t)w->rows * (uint64_t)w->cols * 4;
    return st;
}

/* Marian's inits::sinusoidalPositionEmbeddings: for position p and
 * i < d/2, sin(p e^{-i log(10000) / (d/2 - 1)}) then the cosines. */
static void sinusoids(float *pos, int n, int d) {
    const float nts = (float)d / 2;
    const float inc = logf(10000.f) / (nts - 1.f);
    const int half = d / 2;
    for (int p = 0; p < n; p++)
        for (int i = 0; i < half; i++) {
            const float v = (float)p * expf((float)i * -inc);
            pos[(size_t)p * (size_t)d + (size_t)i] = sinf(v);
            pos[(size_t)p * (size_t)d + (size_t)(half + i)] = cosf(v);
        }
}

static void free_w(const tolk_backend *be, tolk_bweight *w) {
    if (w->data || w->packed) be->weight_free(be, w);
}

void tolk_mt_net_free(tolk_mt_net *net) {
    if (!net) return;
    const tolk_backend *be = net->be;
    if (!net->emb_shared) free_w(be, &net->emb_src);
    free_w(be, &net->emb_tgt);
    free_w(be, &net->out);
    be->free(be, net->out_b);
    be->free(be, net->pos);
    for (int l = 0; net->enc && l < net->n_enc; l++) {
        tolk_mt_enc_layer *L = &net->enc[l];
        free_w(be, &L->qkv), free_w(be, &L->o), free_w(be, &L->w1), free_w(be, &L->w2);
        tolk_i8_free(&L->qkv8.w), tolk_i8_free(&L->o8.w), tolk_i8_free(&L->w18.w);
        tolk_i8_free(&L->w28.w);
        float *v[] = {L->b_qkv, L->b_o, L->b1, L->b2, L->ln1_g, L->ln1_b, L->ln2_g, L->ln2_b};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            be->free(be, v[i]);
    }
    for (int l = 0; net->dec && l < net->n_dec; l++) {
        tolk_mt_dec_layer *L = &net->dec[l];
        free_w(be, &L->rnn), free_w(be, &L->q), free_w(be, &L->kv), free_w(be, &L->o);
        free_w(be, &L->w1), free_w(be, &L->w2);
        tolk_i8_free(&L->rnn8.w), tolk_i8_free(&L->q8.w), tolk_i8_free(&L->kv8.w);
        tolk_i8_free(&L->o8.w), tolk_i8_free(&L->w18.w), tolk_i8_free(&L->w28.w);
        float *v[] = {L->b_rnn,    L->b_q,      L->b_kv,     L->b_o,      L->b1,       L->b2,
                      L->ln_rnn_g, L->ln_rnn_b, L->ln_ctx_g, L->ln_ctx_b, L->ln_ffn_g, L->ln_ffn_b};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            be->free(be, v[i]);
    }
    free(net->enc);
    free(net->dec);
    free(net);
}

tolk_status tolk_mt_net_new(tolk_ctx *ctx, const tolk_backend *be, const tolk_marian_model *m,
                            int int8, tolk_mt_net **out) {
    if (!out || !be || !m) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mt_net: NULL argument");
    *out = NULL;
    const tolk_marian_config *c = &m->cfg;
    tolk_mt_net *net = calloc(1, sizeof *net);
    if (!net) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", m->path);
    net->be = be;
    net->d = c->dim, net->heads = c->heads, net->ffn = c->ffn;
    net->n_enc = c->enc_depth, net->n_dec = c->dec_depth;
    net->vocab_src = c->vocab_src, net->vocab_tgt = c->vocab_tgt, net->relu = c->relu;
    net->int8 = int8 && !strcmp(be->name, "cpu");
    net->enc = calloc((size_t)net->n_enc, sizeof *net->enc);
    net->dec = calloc((size_t)net->n_dec, sizeof *net->dec);
    /* host scratch: the largest of an embedding (+1 row), 3 d x d, 2 d x ffn */
    const size_t d = (size_t)net->d;
    size_t vmax = (size_t)(c->vocab_src > c->vocab_tgt ? c->vocab_src : c->vocab_tgt) + 1;
    size_t need = vmax * d;
    if (need < 3 * d * d) need = 3 * d * d;
    if (need < 2 * d * (size_t)net->ffn) need = 2 * d * (size_t)net->ffn;
    if (need < (size_t)TOLK_MT_MAX_POS * d) need = (size_t)TOLK_MT_MAX_POS * d;
    prep p = {ctx, be, m, net, malloc(need * sizeof(float))};
    tolk_status st = TOLK_OK;
    if (!net->enc || !net->dec || !p.buf) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", m->path);
        goto fail;
    }
    const float scale = sqrtf((float)net->d);
    if (c->tied_all) {
        if ((st = prep_embedding(&p, "Wemb", scale, 1, &net->emb_tgt))) goto fail;
        net->emb_src = net->emb_tgt;
        net->emb_shared = 1;
        if ((st = prep_embedding(&p, "Wemb", 1.0f, 0, &net->out))) goto fail;
    } else {
        if ((st = prep_embedding(&p, "encoder_Wemb", scale, 0, &net->emb_src)) ||
            (st = prep_embedding(&p, "decoder_Wemb", scale, 1, &net->emb_tgt)) ||
            (st = prep_embedding(&p, "decoder_Wemb", 1.0f, 0, &net->out)))
            goto fail;
    }
    {
        const char *nb[1] = {c->output_bias ? "decoder_ff_logit_out_b" : NULL};
        const int64_t zl[1] = {net->vocab_tgt};
        if ((st = prep_vector(&p, &net->out_b, 1, nb, zl))) goto fail;
    }
    for (int l = 0; l < net->n_enc; l++)
        if ((st = prep_enc_layer(&p, l + 1, &net->enc[l]))) goto fail;
    for (int l = 0; l < net->n_dec; l++)
        if ((st = prep_dec_layer(&p, l + 1, &net->dec[l]))) goto fail;
    sinusoids(p.buf, TOLK_MT_MAX_POS, net->d);
    net->pos = be->alloc(ctx, be, (size_t)TOLK_MT_MAX_POS * d * sizeof(float));
    if (!net->pos) {
        st = TOLK_ERR_NOMEM;
        goto fail;
    }
    if ((st = be->upload(ctx, be, net->pos, p.buf, (size_t)TOLK_MT_MAX_POS * d * sizeof(float))))
        goto fail;
    free(p.buf);
    *out = net;
    return TOLK_OK;
fail:
    free(p.buf);
    tolk_mt_net_free(net);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Work buffers                                                             */
/* ------------------------------------------------------------------------ */

void tolk_mt_work_free(tolk_mt_work *w) {
    if (!w) return;
    const tolk_backend *be = w->net->be;
    float *bufs[] = {w->ex, w->eqkv, w->eatt, w->etmp, w->eh, w->y,
                     w->xf, w->q,    w->att,  w->tmp,  w->h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(be, bufs[i]);
    for (int l = 0; l < w->net->n_dec; l++) {
        if (w->kv) be->free(be, w->kv[l]);
        if (w->c) be->free(be, w->c[l]);
        if (w->c2) be->free(be, w->c2[l]);
    }
    be->free(be, w->d_idx);
    be->free(be, w->d_emb);
    free(w->kv), free(w->c), free(w->c2), free(w->off), free(w->len);
    free(w->h_ids), free(w->h_pos), free(w->seqs);
    free(w);
}

static float *dalloc(tolk_ctx *ctx, const tolk_backend *be, size_t rows, size_t cols, int *failed) {
    float *p = be->alloc(ctx, be, rows * cols * sizeof(float));
    if (!p) *failed = 1;
    return p;
}

tolk_status tolk_mt_work_new(tolk_ctx *ctx, const tolk_mt_net *net, int n_sent, const int *len,
                             int cap, tolk_mt_work **out) {
    *out = NULL;
    if (n_sent < 1 || cap < 1 || !len)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mt_net: empty batch");
    tolk_mt_work *w = calloc(1, sizeof *w);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt_net: out of memory");
    w->net = net;
    w->n_sent = n_sent;
    w->cap = cap;
    w->off = malloc((size_t)n_sent * sizeof(int));
    w->len = malloc((size_t)n_sent * sizeof(int));
    w->kv = calloc((size_t)net->n_dec, sizeof(float *));
    w->c = calloc((size_t)net->n_dec, sizeof(float *));
    w->c2 = calloc((size_t)net->n_dec, sizeof(float *));
    w->h_ids = malloc((size_t)cap * sizeof(int));
    w->h_pos = malloc((size_t)cap * sizeof(int));
    size_t nseq = (size_t)(cap > n_sent ? cap : n_sent);
    w->seqs = malloc(nseq * sizeof *w->seqs);
    if (!w->off || !w->len || !w->kv || !w->c || !w->c2 || !w->h_ids || !w->h_pos || !w->seqs) {
        tolk_mt_work_free(w);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt_net: out of memory");
    }
    int T = 0;
    for (int i = 0; i < n_sent; i++) {
        if (len[i] < 1 || len[i] > TOLK_MT_MAX_POS) {
            tolk_mt_work_free(w);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mt_net: sentence of %d tokens", len[i]);
        }
        w->off[i] = T;
        w->len[i] = len[i];
        T += len[i];
    }
    w->T = T;
    const tolk_backend *be = net->be;
    const size_t d = (size_t)net->d, f = (size_t)net->ffn, Tn = (size_t)T, C = (size_t)cap;
    int failed = 0;
    w->ex = dalloc(ctx, be, Tn, d, &failed);
    w->eqkv = dalloc(ctx, be, Tn, 3 * d, &failed);
    w->eatt = dalloc(ctx, be, Tn, d, &failed);
    w->etmp = dalloc(ctx, be, Tn, d, &failed);
    w->eh = dalloc(ctx, be, Tn, f, &failed);
    w->y = dalloc(ctx, be, C, d, &failed);
    w->xf = dalloc(ctx, be, C, 2 * d, &failed);
    w->q = dalloc(ctx, be, C, d, &failed);
    w->att = dalloc(ctx, be, C, d, &failed);
    w->tmp = dalloc(ctx, be, C, d, &failed);
    w->h = dalloc(ctx, be, C, f, &failed);
    for (int l = 0; l < net->n_dec; l++) {
        w->kv[l] = dalloc(ctx, be, Tn, 2 * d, &failed);
        w->c[l] = dalloc(ctx, be, C, d, &failed);
        w->c2[l] = dalloc(ctx, be, C, d, &failed);
    }
    w->d_idx = be->alloc(ctx, be, C * sizeof(int));
    w->n_emb = 2 * (Tn > C ? Tn : C); /* the encoder's T rows, then cap rows a step */
    w->d_emb = be->alloc(ctx, be, w->n_emb * sizeof(int));
    if (failed || !w->d_idx || !w->d_emb) {
        tolk_mt_work_free(w);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt_net: out of device memory for a batch");
    }
    *out = w;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* The layers                                                               */
/* ------------------------------------------------------------------------ */

/* y [M, ldy] = x W^T + bias: the backend's linear, or the int8 product. */
static tolk_status lin(tolk_ctx *ctx, const tolk_mt_net *net, float *y, size_t ldy, const float *x,
                       size_t ldx, size_t M, const tolk_bweight *w, const tolk_mt_i8 *q,
                       const float *bias) {
    if (q->w.packed)
        return tolk_gemm_i8(ctx, x, (int)M, (int)ldx, q->qa, &q->w, bias, y, (int)ldy,
                            tolk_ctx_threads(ctx));
    return net->be->linear(ctx, net->be, y, ldy, x, ldx, M, w, bias, 0);
}

/* x = LayerNorm(t + x) over M rows of width D (postProcess "dan"). */
static tolk_status add_norm(tolk_ctx *ctx, const tolk_backend *be, float *x, const float *t,
                            size_t M, size_t D, const float *g, const float *b) {
    tolk_status st = be->add(ctx, be, x, t, x, M * D);
    if (st) return st;
    return be->layernorm(ctx, be, x, x, M, D, g, b, LN_EPS);
}

/* x = LN(x + W2 act(W1 x + b1) + b2); h [M, ffn] and t [M, d] scratch. */
static tolk_status ffn(tolk_ctx *ctx, const tolk_mt_net *net, float *x, float *h, float *t,
                       size_t M, const tolk_bweight *w1, const tolk_mt_i8 *w18, const float *b1,
                       const tolk_bweight *w2, const tolk_mt_i8 *w28, const float *b2,
                       const float *g, const float *b) {
    const tolk_backend *be = net->be;
    const size_t d = (size_t)net->d, f = (size_t)net->ffn;
    tolk_status st;
    if ((st = lin(ctx, net, h, f, x, d, M, w1, w18, NULL)) ||
        (st = be->bias_relu(ctx, be, h, f, M, f, b1)) ||
        (st = lin(ctx, net, t, d, h, f, M, w2, w28, b2)))
        return st;
    return add_norm(ctx, be, x, t, M, d, g, b);
}

tolk_status tolk_mt_encode(tolk_ctx *ctx, tolk_mt_work *w, const int *ids) {
    const tolk_mt_net *net = w->net;
    const tolk_backend *be = net->be;
    const size_t d = (size_t)net->d, T = (size_t)w->T;
    const int dh = net->d / net->heads;
    const float scale = 1.0f / sqrtf((float)dh);
    if (!net->relu)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "mt_net: swish feed-forward layers");
    int *pos = malloc(T * sizeof(int));
    if (!pos) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt_net: out of memory");
    for (int s = 0; s < w->n_sent; s++)
        for (int i = 0; i < w->len[s]; i++)
            pos[w->off[s] + i] = i;
    tolk_status st = tolk_backend_embed_host(ctx, be, w->ex, &net->emb_src, ids, pos, T, net->pos,
                                             TOLK_MT_MAX_POS, w->d_emb, w->n_emb);
    free(pos);
    if (st) return st;
    for (int s = 0; s < w->n_sent; s++) {
        const size_t o = (size_t)w->off[s];
        w->seqs[s] = (tolk_attn_seq){w->eqkv + o * 3 * d,
                                     w->eqkv + o * 3 * d + d,
                                     w->eqkv + o * 3 * d + 2 * d,
                                     w->eatt + o * d,
                                     w->len[s],
                                     w->len[s],
                                     0,
                                     0};
    }
    for (int l = 0; l < net->n_enc; l++) {
        const tolk_mt_enc_layer *L = &net->enc[l];
        if ((st = lin(ctx, net, w->eqkv, 3 * d, w->ex, d, T, &L->qkv, &L->qkv8, L->b_qkv)) ||
            (st = be->attention(ctx, be, w->seqs, w->n_sent, net->heads, dh, 3 * d, 3 * d, d, scale,
                                0)) ||
            (st = lin(ctx, net, w->etmp, d, w->eatt, d, T, &L->o, &L->o8, L->b_o)) ||
            (st = add_norm(ctx, be, w->ex, w->etmp, T, d, L->ln1_g, L->ln1_b)) ||
            (st = ffn(ctx, net, w->ex, w->eh, w->etmp, T, &L->w1, &L->w18, L->b1, &L->w2, &L->w28,
                      L->b2, L->ln2_g, L->ln2_b)))
            return st;
    }
    for (int l = 0; l < net->n_dec; l++) {
        const tolk_mt_dec_layer *L = &net->dec[l];
        if ((st = lin(ctx, net, w->kv[l], 2 * d, w->ex, d, T, &L->kv, &L->kv8, L->b_kv))) return st;
    }
    return TOLK_OK;
}

tolk_status tolk_mt_step(tolk_ctx *ctx, tolk_mt_work *w, int B, int t, const int *tok,
                         const int *sent, const int *parent) {
    const tolk_mt_net *net = w->net;
    const tolk_backend *be = net->be;
    const size_t d = (size_t)net->d, M = (size_t)B;
    const int dh = net->d / net->heads;
    const float scale = 1.0f / sqrtf((float)dh);
    tolk_status st;
    if (B < 1 || B > w->cap || t < 0 || t >= TOLK_MT_MAX_POS)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mt_net: step of %d rows at %d", B, t);
    /* inputs: the zero row (start) or the previous tokens, at position t */
    for (int r = 0; r < B; r++) {
        w->h_ids[r] = t == 0 ? net->vocab_tgt : tok[r];
        w->h_pos[r] = t;
    }
    if ((st = tolk_backend_embed_host(ctx, be, w->y, &net->emb_tgt, w->h_ids, w->h_pos, M, net->pos,
                                      TOLK_MT_MAX_POS, w->d_emb, w->n_emb)))
        return st;
    /* SSRU states: zero at the start, else gathered from the parent rows */
    if (t == 0) {
        float *z = calloc(M * d, sizeof(float));
        if (!z) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mt_net: out of memory");
        for (int l = 0; l < net->n_dec && !st; l++)
            st = be->upload(ctx, be, w->c[l], z, M * d * sizeof(float));
        free(z);
        if (st) return st;
    } else if (parent) {
        int identity = 1;
        for (int r = 0; r < B; r++)
            if (parent[r] != r) identity = 0;
        if (!identity) {
            if ((st = be->upload(ctx, be, w->d_idx, parent, M * sizeof(int)))) return st;
            for (int l = 0; l < net->n_dec; l++) {
                if ((st = be->copy_rows(ctx, be, w->c2[l], d, NULL, w->c[l], d, w->d_idx, M, d)))
                    return st;
                float *sw = w->c[l];
                w->c[l] = w->c2[l];
                w->c2[l] = sw;
            }
        }
    }
    for (int l = 0; l < net->n_dec; l++) {
        const tolk_mt_dec_layer *L = &net->dec[l];
        /* SSRU */
        if ((st = lin(ctx, net, w->xf, 2 * d, w->y, d, M, &L->rnn, &L->rnn8, L->b_rnn)) ||
            (st = be->ssru(ctx, be, w->tmp, w->c[l], w->xf, 2 * d, M, d)) ||
            (st = add_norm(ctx, be, w->y, w->tmp, M, d, L->ln_rnn_g, L->ln_rnn_b)))
            return st;
        /* cross-attention over the row's sentence */
        for (int r = 0; r < B; r++) {
            const size_t o = (size_t)w->off[sent[r]];
            w->seqs[r] = (tolk_attn_seq){w->q + (size_t)r * d,
                                         w->kv[l] + o * 2 * d,
                                         w->kv[l] + o * 2 * d + d,
                                         w->att + (size_t)r * d,
                                         1,
                                         w->len[sent[r]],
                                         0,
                                         0};
        }
        if ((st = lin(ctx, net, w->q, d, w->y, d, M, &L->q, &L->q8, L->b_q)) ||
            (st = be->attention(ctx, be, w->seqs, B, net->heads, dh, d, 2 * d, d, scale, 0)) ||
            (st = lin(ctx, net, w->tmp, d, w->att, d, M, &L->o, &L->o8, L->b_o)) ||
            (st = add_norm(ctx, be, w->y, w->tmp, M, d, L->ln_ctx_g, L->ln_ctx_b)) ||
            (st = ffn(ctx, net, w->y, w->h, w->tmp, M, &L->w1, &L->w18, L->b1, &L->w2, &L->w28,
                      L->b2, L->ln_ffn_g, L->ln_ffn_b)))
            return st;
    }
    return TOLK_OK;
}

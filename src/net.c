/*
 * net.c — the Whisper encoder-decoder network over the backend op table
 * (backend.h): weight preparation, the encoder (conv stem + pre-LN
 * transformer blocks), the per-window cross-attention K/V, and the batched
 * decoder step over per-sequence self-attention KV caches. Calls only the op
 * table (never BLAS or CUDA directly).
 *
 * Reference behaviour: openai-whisper model.py (AudioEncoder, TextDecoder,
 * ResidualAttentionBlock): x = GELU(conv1(mel)); x = GELU(conv2(x)) with
 * stride 2; x += positional embedding; each block x += attn(ln(x)),
 * [x += cross_attn(ln(x), xa)], x += mlp(ln(x)); final LayerNorm; decoder
 * logits = ln(x) · token_embedding^T. Attention scores scaled by
 * 1/sqrt(d_head) (the reference's d_head^-0.25 on q and on k), causal in
 * the decoder's self-attention. K/V of earlier tokens come from the cache,
 * so a step over new tokens equals the reference's full forward pass.
 */
#include "net_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Windows the encoder processes in one pass (bounds its workspace). */
#define ENC_MAX_BATCH 4

/* ------------------------------------------------------------------------ */
/* Weight preparation                                                      */
/* ------------------------------------------------------------------------ */

typedef struct prep {
    tolk_ctx *ctx;
    const tolk_weights *w;
    tolk_net *net;
    tolk_status st;
} prep;

/* The tensor `name` with exactly the given shape (ndim dims), or NULL with
 * p->st set (optional tensors: when !required a missing one returns NULL
 * without failing). */
static const tolk_tensor *need(prep *p, int required, int ndim, const int64_t *shape,
                               const char *name) {
    if (p->st != TOLK_OK) return NULL;
    const tolk_tensor *t = tolk_weights_get(p->w, name);
    if (!t) {
        if (required)
            p->st = tolk_fail(p->ctx, TOLK_ERR_FORMAT, "%s: missing tensor %s",
                              p->w->path ? p->w->path : "model", name);
        return NULL;
    }
    int ok = t->ndim == ndim && t->data != NULL;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        p->st = tolk_fail(p->ctx, TOLK_ERR_FORMAT, "%s: tensor %s has an unexpected shape",
                          p->w->path ? p->w->path : "model", name);
        return NULL;
    }
    return t;
}

static const tolk_tensor *need1(prep *p, int required, int64_t a, const char *name) {
    int64_t s[1] = {a};
    return need(p, required, 1, s, name);
}
static const tolk_tensor *need2(prep *p, int64_t a, int64_t b, const char *name) {
    int64_t s[2] = {a, b};
    return need(p, 1, 2, s, name);
}

static void prep_weight(prep *p, tolk_bweight *dst, const tolk_tensor *const *parts, int n) {
    if (p->st != TOLK_OK) return;
    for (int i = 0; i < n; i++)
        if (!parts[i]) return;
    p->st = p->net->be->weight_prepare(p->ctx, p->net->be, parts, n, dst);
    if (p->st == TOLK_OK)
        p->net->mem_bytes +=
            (uint64_t)dst->rows * (uint64_t)dst->cols * (dst->dtype == TOLK_DT_F16 ? 2u : 4u) +
            (uint64_t)dst->packed_bytes;
}

/* One float32 vector from parts (NULL parts: zero_len zeros). */
static float *prep_vec(prep *p, const tolk_tensor *const *parts, const int64_t *zero_len, int n) {
    if (p->st != TOLK_OK) return NULL;
    float *v = NULL;
    p->st = p->net->be->vector_prepare(p->ctx, p->net->be, parts, zero_len, n, &v);
    if (p->st != TOLK_OK) return NULL;
    for (int i = 0; i < n; i++)
        p->net->mem_bytes +=
            4u * (uint64_t)(parts[i]
                                ? (parts[i]->ndim == 2 ? parts[i]->shape[0] * parts[i]->shape[1]
                                                       : parts[i]->shape[0])
                                : zero_len[i]);
    return v;
}

static float *prep_vec1(prep *p, int64_t len, const char *name) {
    const tolk_tensor *t = need1(p, 1, len, name);
    if (!t) return NULL;
    return prep_vec(p, &t, NULL, 1);
}

/* A float16 copy (device, n elements) of the prepared float32 vector v,
 * for a product writing float16 whose epilogue adds it (half activations:
 * the encoder's QKV bias; fc1's with the tanh GELU epilogue); NULL after
 * an earlier failure. */
static uint16_t *prep_half(prep *p, const float *v, size_t n) {
    if (p->st != TOLK_OK || !v) return NULL;
    const tolk_backend *be = p->net->be;
    uint16_t *h = be->alloc(p->ctx, be, n * sizeof(uint16_t));
    if (!h) {
        p->st = TOLK_ERR_NOMEM; /* alloc set the message */
        return NULL;
    }
    p->st = be->convert_rows(p->ctx, be, h, 1, n, v, 0, n, 1, n);
    if (p->st != TOLK_OK) {
        be->free(be, h);
        return NULL;
    }
    p->net->mem_bytes += 2u * (uint64_t)n;
    return h;
}

/* LayerNorm pair `<prefix>.weight` / `<prefix>.bias`. */
static void prep_ln(prep *p, float **g, float **b, int64_t d, const char *prefix) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", prefix);
    *g = prep_vec1(p, d, n);
    snprintf(n, sizeof n, "%s.bias", prefix);
    *b = prep_vec1(p, d, n);
}

/* Attention sub-layer `<prefix>` (e.g. "decoder.blocks.3.cross_attn"). */
static void prep_attn(prep *p, attn_w *a, int64_t d, int cross, const char *prefix,
                      const char *ln_prefix) {
    char n[4][200];
    static const char *const parts[3] = {"query", "key", "value"};
    const tolk_tensor *W[3], *B[3];
    for (int i = 0; i < 3; i++) {
        snprintf(n[0], sizeof n[0], "%s.%s.weight", prefix, parts[i]);
        W[i] = need2(p, d, d, n[0]);
        snprintf(n[0], sizeof n[0], "%s.%s.bias", prefix, parts[i]);
        B[i] = need1(p, i != 1, d, n[0]); /* key bias optional (absent in the reference) */
    }
    int64_t zl[3] = {d, d, d};
    if (!cross) {
        prep_weight(p, &a->qkv, W, 3);
        a->qkv_b = prep_vec(p, B, zl, 3);
    } else {
        prep_weight(p, &a->qkv, W, 1);
        a->qkv_b = prep_vec(p, B, zl, 1);
        if (!p->net->be->linear_batched) { /* else stacked for all layers: prep_cross_kv */
            prep_weight(p, &a->kv, W + 1, 2);
            a->kv_b = prep_vec(p, B + 1, zl, 2);
        }
    }
    snprintf(n[1], sizeof n[1], "%s.out.weight", prefix);
    const tolk_tensor *o = need2(p, d, d, n[1]);
    prep_weight(p, &a->out, &o, 1);
    snprintf(n[2], sizeof n[2], "%s.out.bias", prefix);
    a->out_b = prep_vec1(p, d, n[2]);
    prep_ln(p, &a->ln_g, &a->ln_b, d, ln_prefix);
}

static void prep_block(prep *p, block_w *b, int64_t d, const char *side, int i, int decoder) {
    char pre[160], ln[160];
    snprintf(pre, sizeof pre, "%s.blocks.%d.attn", side, i);
    snprintf(ln, sizeof ln, "%s.blocks.%d.attn_ln", side, i);
    prep_attn(p, &b->attn, d, 0, pre, ln);
    if (decoder) {
        snprintf(pre, sizeof pre, "%s.blocks.%d.cross_attn", side, i);
        snprintf(ln, sizeof ln, "%s.blocks.%d.cross_attn_ln", side, i);
        prep_attn(p, &b->cross, d, 1, pre, ln);
    }
    char n[200];
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.0.weight", side, i);
    const tolk_tensor *t = need2(p, 4 * d, d, n);
    prep_weight(p, &b->fc1, &t, 1);
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.0.bias", side, i);
    b->fc1_b = prep_vec1(p, 4 * d, n);
    if (p->net->gelu_tanh) b->fc1_bh = prep_half(p, b->fc1_b, (size_t)(4 * d));
    if (p->net->half_acts && !decoder)
        b->attn.qkv_bh = prep_half(p, b->attn.qkv_b, (size_t)(3 * d));
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.2.weight", side, i);
    t = need2(p, d, 4 * d, n);
    prep_weight(p, &b->fc2, &t, 1);
    snprintf(n, sizeof n, "%s.blocks.%d.mlp.2.bias", side, i);
    b->fc2_b = prep_vec1(p, d, n);
    snprintf(n, sizeof n, "%s.blocks.%d.mlp_ln", side, i);
    prep_ln(p, &b->mlp_ln_g, &b->mlp_ln_b, d, n);
}

/* Every decoder layer's cross-attention key and value weights stacked into
 * net->cross_kv_all [L * 2d, d] (layer l's K at rows 2 l d, its V after),
 * their biases into net->cross_kv_b_all (absent key biases: zeros; with
 * float16 weights and cache also as float16, cross_kv_bh_all). */
static void prep_cross_kv(prep *p, int64_t d) {
    const int L = p->net->hp.n_text_layer;
    const tolk_tensor **W = calloc((size_t)2 * (size_t)L, sizeof *W);
    const tolk_tensor **B = calloc((size_t)2 * (size_t)L, sizeof *B);
    int64_t *zl = calloc((size_t)2 * (size_t)L, sizeof *zl);
    if (!W || !B || !zl) {
        if (p->st == TOLK_OK) p->st = tolk_fail(p->ctx, TOLK_ERR_NOMEM, "net: out of memory");
    } else {
        char n[200];
        static const char *const parts[2] = {"key", "value"};
        for (int l = 0; l < L && p->st == TOLK_OK; l++)
            for (int i = 0; i < 2; i++) {
                snprintf(n, sizeof n, "decoder.blocks.%d.cross_attn.%s.weight", l, parts[i]);
                W[2 * l + i] = need2(p, d, d, n);
                snprintf(n, sizeof n, "decoder.blocks.%d.cross_attn.%s.bias", l, parts[i]);
                B[2 * l + i] = need1(p, i != 0, d, n);
                zl[2 * l + i] = d;
            }
        prep_weight(p, &p->net->cross_kv_all, W, 2 * L);
        p->net->cross_kv_b_all = prep_vec(p, B, zl, 2 * L);
        /* the float16 cache written by the product: its bias in float16 */
        if (p->net->kv_f16 && p->net->cross_kv_all.dtype == TOLK_DT_F16)
            p->net->cross_kv_bh_all = prep_half(p, p->net->cross_kv_b_all, (size_t)(2 * L * d));
    }
    free(W);
    free(B);
    free(zl);
}

static void free_attn(const tolk_backend *be, attn_w *a) {
    be->weight_free(be, &a->qkv);
    be->weight_free(be, &a->kv);
    be->weight_free(be, &a->out);
    be->free(be, a->qkv_b);
    be->free(be, a->qkv_bh);
    be->free(be, a->kv_b);
    be->free(be, a->out_b);
    be->free(be, a->ln_g);
    be->free(be, a->ln_b);
}

static void free_block(const tolk_backend *be, block_w *b) {
    free_attn(be, &b->attn);
    free_attn(be, &b->cross);
    be->weight_free(be, &b->fc1);
    be->weight_free(be, &b->fc2);
    be->free(be, b->fc1_b);
    be->free(be, b->fc1_bh);
    be->free(be, b->fc2_b);
    be->free(be, b->mlp_ln_g);
    be->free(be, b->mlp_ln_b);
}

void tolk_net_free(tolk_net *net) {
    if (!net) return;
    const tolk_backend *be = net->be;
    if (be) {
        be->weight_free(be, &net->conv1);
        be->weight_free(be, &net->conv2);
        be->free(be, net->conv1_b);
        be->free(be, net->conv2_b);
        be->free(be, net->enc_pos);
        if (net->enc)
            for (int i = 0; i < net->hp.n_audio_layer; i++)
                free_block(be, &net->enc[i]);
        be->free(be, net->ln_post_g);
        be->free(be, net->ln_post_b);
        be->weight_free(be, &net->tok);
        be->free(be, net->dec_pos);
        if (net->dec)
            for (int i = 0; i < net->hp.n_text_layer; i++)
                free_block(be, &net->dec[i]);
        be->free(be, net->dec_ln_g);
        be->free(be, net->dec_ln_b);
        be->weight_free(be, &net->cross_kv_all);
        be->free(be, net->cross_kv_b_all);
        be->free(be, net->cross_kv_bh_all);
        net->be->destroy(net->be);
    }
    free(net->enc);
    free(net->dec);
    free(net);
}

tolk_status tolk_net_new_ex(tolk_ctx *ctx, const tolk_weights *w, const tolk_net_params *params,
                            tolk_net **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: NULL output");
    *out = NULL;
    if (!w) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: NULL weights");
    tolk_status st = tolk_hparams_check(ctx, w->path, &w->hp, TOLK_HP_NET);
    if (st != TOLK_OK) return st;
    tolk_net *net = calloc(1, sizeof *net);
    if (!net) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: out of memory");
    net->hp = w->hp;
    const tolk_hparams *h = &net->hp;
    /* The context's device picks the backend: CUDA (CUDA builds, device
     * resolved to CUDA) or the CPU. */
    tolk_backend_params bp = {.keep_f16 = (!params || params->keep_f16 < 0) ? 1 : params->keep_f16,
                              .bf16 = params ? params->bf16 != 0 : 0,
                              .attn = params ? params->attn : 0,
                              .no_avx512 = params ? params->no_avx512 != 0 : 0};
#ifdef TOLK_HAVE_CUDA
    if (ctx && tolk_ctx_device(ctx) == TOLK_DEVICE_CUDA)
        st = tolk_backend_cuda_new(ctx, &bp, &net->be);
    else
#endif
        st = tolk_backend_cpu_new(ctx, &bp, &net->be);
    if (st != TOLK_OK) {
        free(net);
        return st;
    }
    net->pad_steps = bp.keep_f16 || bp.bf16;
    net->kv_f16 = params && params->kv_f16;
    /* half activations where the backend asks for them and has the ops */
    net->half_acts =
        net->be->half_acts && net->be->layernorm_h && net->be->bias_gelu_h && net->be->convert_rows;
    net->gelu_tanh = net->half_acts && params && params->gelu_tanh;
    net->norm_fuse = net->half_acts && net->be->norm_linear && !(params && params->no_norm_fuse);
    if (net->kv_f16 && !net->be->convert_rows) {
        tolk_status u = tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                                  "%s: a float16 cross-attention cache is not supported on %s yet",
                                  w->path, net->be->name);
        net->be->destroy(net->be);
        free(net);
        return u;
    }
    net->enc = calloc((size_t)h->n_audio_layer, sizeof *net->enc);
    net->dec = calloc((size_t)h->n_text_layer, sizeof *net->dec);
    if (!net->enc || !net->dec) {
        tolk_net_free(net);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: out of memory");
    }
    prep p = {ctx, w, net, TOLK_OK};
    int64_t d = h->n_audio_state;
    int64_t s3[3] = {d, h->n_mels, 3};
    const tolk_tensor *t = need(&p, 1, 3, s3, "encoder.conv1.weight");
    prep_weight(&p, &net->conv1, &t, 1);
    net->conv1_b = prep_vec1(&p, d, "encoder.conv1.bias");
    s3[1] = d;
    t = need(&p, 1, 3, s3, "encoder.conv2.weight");
    prep_weight(&p, &net->conv2, &t, 1);
    net->conv2_b = prep_vec1(&p, d, "encoder.conv2.bias");
    t = need2(&p, h->n_audio_ctx, d, "encoder.positional_embedding");
    if (t) net->enc_pos = prep_vec(&p, &t, NULL, 1);
    for (int i = 0; i < h->n_audio_layer; i++)
        prep_block(&p, &net->enc[i], d, "encoder", i, 0);
    prep_ln(&p, &net->ln_post_g, &net->ln_post_b, d, "encoder.ln_post");
    t = need2(&p, h->n_vocab, d, "decoder.token_embedding.weight");
    prep_weight(&p, &net->tok, &t, 1);
    t = need2(&p, h->n_text_ctx, d, "decoder.positional_embedding");
    if (t) net->dec_pos = prep_vec(&p, &t, NULL, 1);
    for (int i = 0; i < h->n_text_layer; i++)
        prep_block(&p, &net->dec[i], d, "decoder", i, 1);
    if (net->be->linear_batched) prep_cross_kv(&p, d);
    prep_ln(&p, &net->dec_ln_g, &net->dec_ln_b, d, "decoder.ln");
    if (p.st != TOLK_OK) {
        tolk_net_free(net);
        return p.st;
    }
    *out = net;
    return TOLK_OK;
}

tolk_status tolk_net_new(tolk_ctx *ctx, const tolk_weights *w, tolk_net **out) {
    return tolk_net_new_ex(ctx, w, NULL, out);
}

int tolk_net_kv_f16(const tolk_net *net) {
    return net ? net->kv_f16 : 0;
}

const tolk_hparams *tolk_net_hparams(const tolk_net *net) {
    return net ? &net->hp : NULL;
}

uint64_t tolk_net_mem_bytes(const tolk_net *net) {
    return net ? net->mem_bytes : 0;
}

const struct tolk_backend *tolk_net_backend(const tolk_net *net) {
    return net ? net->be : NULL;
}

uint64_t tolk_net_gemm_fallbacks(const tolk_net *net) {
    if (!net || !net->be || !net->be->stats) return 0;
    tolk_backend_stats s = {0};
    net->be->stats(net->be, &s);
    return s.fallbacks;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                 */
/* ------------------------------------------------------------------------ */

/* h [M, D] = LayerNorm(x [M, D]) (float16 h with half_acts). */
static tolk_status norm(tolk_ctx *ctx, const tolk_net *net, float *h, const float *x, size_t M,
                        size_t D, const float *gamma, const float *beta) {
    const tolk_backend *be = net->be;
    if (net->half_acts)
        return be->layernorm_h(ctx, be, (uint16_t *)(void *)h, x, M, D, gamma, beta, LN_EPS);
    return be->layernorm(ctx, be, h, x, M, D, gamma, beta, LN_EPS);
}

/* x [M, d] += fc2(mlp [M, 4d]) + fc2_b: the MLP's second product. */
static tolk_status mlp_out(tolk_ctx *ctx, const tolk_net *net, const block_w *b, float *x,
                           const float *mlp, size_t M, int exact) {
    const tolk_backend *be = net->be;
    return be->linear(ctx, be, x, (size_t)b->fc2.rows, mlp, (size_t)b->fc2.cols, M, &b->fc2,
                      b->fc2_b, exact | tolk_net_xflag(net) | TOLK_LINEAR_ACCUMULATE);
}

/* x [M, d] += fc2(GELU(fc1(h) + fc1_b)) + fc2_b, mlp [M, 4d] its
 * workspace (float16 with half_acts: fc1 writes float16 and the GELU runs
 * in place on it, or in fc1's epilogue with gelu_tanh). */
static tolk_status mlp_run(tolk_ctx *ctx, const tolk_net *net, const block_w *b, float *x,
                           const float *h, float *mlp, size_t M, int exact) {
    const tolk_backend *be = net->be;
    const size_t d = (size_t)b->fc1.cols, n = (size_t)b->fc1.rows;
    const int xh = tolk_net_xflag(net);
    tolk_status st;
    if (net->gelu_tanh) { /* bias and GELU (tanh form) in the product's epilogue */
        st = be->linear(ctx, be, mlp, n, h, d, M, &b->fc1, b->fc1_bh,
                        exact | xh | TOLK_LINEAR_Y_F16 | TOLK_LINEAR_GELU);
    } else if (net->half_acts) {
        uint16_t *mh = (uint16_t *)(void *)mlp;
        st = be->linear(ctx, be, mh, n, h, d, M, &b->fc1, NULL, exact | xh | TOLK_LINEAR_Y_F16);
        if (!st) st = be->bias_gelu_h(ctx, be, mh, n, M, n, b->fc1_b);
    } else {
        st = be->linear(ctx, be, mlp, n, h, d, M, &b->fc1, NULL, exact);
        if (!st) st = be->bias_gelu(ctx, be, mlp, n, M, n, b->fc1_b);
    }
    return st ? st : mlp_out(ctx, net, b, x, mlp, M, exact);
}

/* The backend's fused LayerNorm + product when it takes these rows:
 * TOLK_ERR_UNSUPPORTED (*done = 0) when it does not (nothing ran). */
static tolk_status try_norm_linear(tolk_ctx *ctx, const tolk_net *net, void *y, size_t ldy,
                                   const float *x, size_t M, const float *gamma, const float *beta,
                                   const tolk_bweight *W, const float *bias, int flags, int *done) {
    *done = 0;
    /* (the backend refuses other weight types too; asked first, no message
     * is formatted for a refusal every step would repeat) */
    if (!net->norm_fuse || M > TOLK_NORM_LINEAR_ROWS || W->dtype != TOLK_DT_F16) return TOLK_OK;
    const size_t D = (size_t)W->cols;
    tolk_status st =
        net->be->norm_linear(ctx, net->be, y, ldy, x, D, M, gamma, beta, LN_EPS, W, bias, flags);
    if (st == TOLK_ERR_UNSUPPORTED) return TOLK_OK;
    *done = 1;
    return st;
}

tolk_status tolk_net_norm_linear(tolk_ctx *ctx, const tolk_net *net, float *y, size_t ldy, float *h,
                                 const float *x, size_t M, const float *gamma, const float *beta,
                                 const tolk_bweight *W, const float *bias, int flags) {
    int done;
    tolk_status st = try_norm_linear(ctx, net, y, ldy, x, M, gamma, beta, W, bias, 0, &done);
    if (done || st) return st;
    const size_t D = (size_t)W->cols;
    st = norm(ctx, net, h, x, M, D, gamma, beta);
    if (!st)
        st = net->be->linear(ctx, net->be, y, ldy, h, D, M, W, bias, flags | tolk_net_xflag(net));
    return st;
}

tolk_status tolk_net_norm_mlp(tolk_ctx *ctx, const tolk_net *net, const block_w *b, float *x,
                              float *h, float *mlp, size_t M, int exact) {
    const size_t d = (size_t)b->fc1.cols, n = (size_t)b->fc1.rows;
    int done;
    tolk_status st =
        try_norm_linear(ctx, net, mlp, n, x, M, b->mlp_ln_g, b->mlp_ln_b, &b->fc1, b->fc1_b,
                        TOLK_NORM_LINEAR_Y_F16 | TOLK_NORM_LINEAR_GELU, &done);
    if (st) return st;
    if (!done) {
        st = norm(ctx, net, h, x, M, d, b->mlp_ln_g, b->mlp_ln_b);
        return st ? st : mlp_run(ctx, net, b, x, h, mlp, M, exact);
    }
    return mlp_out(ctx, net, b, x, mlp, M, exact);
}

/* One pre-LN transformer block, self-attention only, over nw windows of
 * T[w] rows each (stacked): x [M, d] updated in place, M = sum of T[w].
 * Workspace: h [M, d], qkv [M, 3d], att [M, d], mlp [M, 4d] (h, qkv,
 * att, mlp float16 with half activations: the QKV product writes float16
 * q, k, v with its float16 bias, which the attention reads). */
static tolk_status enc_block(tolk_ctx *ctx, const tolk_net *net, const block_w *b, float *x,
                             float *h, float *qkv, float *att, float *mlp, int nw, const int *T) {
    const tolk_backend *be = net->be;
    size_t d = (size_t)net->hp.n_audio_state, M = 0;
    int nh = net->hp.n_audio_head, dh = (int)d / nh;
    const int ha = net->half_acts, xh = tolk_net_xflag(net);
    const int ao = ha ? TOLK_ATTN_OUT_F16 | TOLK_ATTN_QKV_F16 : 0;
    const size_t ae = ha ? sizeof(uint16_t) : sizeof(float); /* activation bytes / element */
    tolk_status st;
    tolk_attn_seq seqs[ENC_MAX_BATCH];
    for (int w = 0; w < nw; w++) {
        const char *q = (const char *)qkv + M * 3 * d * ae;
        float *o = (float *)(void *)((char *)att + M * d * ae);
        seqs[w] = (tolk_attn_seq){(const float *)(const void *)q,
                                  (const float *)(const void *)(q + d * ae),
                                  (const float *)(const void *)(q + 2 * d * ae),
                                  o,
                                  T[w],
                                  T[w],
                                  0,
                                  0};
        M += (size_t)T[w];
    }
    if ((st = norm(ctx, net, h, x, M, d, b->attn.ln_g, b->attn.ln_b)) ||
        (st = be->linear(ctx, be, qkv, 3 * d, h, d, M, &b->attn.qkv,
                         ha ? (const void *)b->attn.qkv_bh : (const void *)b->attn.qkv_b,
                         xh | (ha ? TOLK_LINEAR_Y_F16 : 0))) ||
        (st = be->attention(ctx, be, seqs, nw, nh, dh, 3 * d, 3 * d, d, 1.0f / sqrtf((float)dh),
                            ao)) ||
        (st = be->linear(ctx, be, x, d, att, d, M, &b->attn.out, b->attn.out_b,
                         xh | TOLK_LINEAR_ACCUMULATE)))
        return st;
    return tolk_net_norm_mlp(ctx, net, b, x, h, mlp, M, 0);
}

/* Floats of encoder workspace for passes of nb windows: x, h, att [M, d];
 * qkv [M, 3d]; mlp [M, 4d] (conv1's [T_mel, d] output fits per window);
 * mel [n_mels, T_mel], M = nb * T. 0 when the size overflows. */
static size_t enc_ws_floats(const tolk_hparams *hp, int nb) {
    size_t d = (size_t)hp->n_audio_state, T = (size_t)hp->n_audio_ctx;
    size_t per, total;
    if (!tolk_mul_size((size_t)nb * T, d, &per) || !tolk_mul_size(per, 10, &total) ||
        !tolk_add_size(total, (size_t)hp->n_mels * 2 * T, &total) ||
        !tolk_mul_size(total, sizeof(float), &per))
        return 0;
    return total;
}

/* One encoder pass over nw <= nb windows of host mel, mels[w] [n_mels, 2 *
 * n_audio_ctx] each (3000 frames), in the workspace ws (enc_ws_floats(hp,
 * nb) floats, device). Window w runs over its first T[w] <= n_audio_ctx
 * positions: mel frames [0, 2 T[w]), the first T[w] positional embeddings
 * (whisper.cpp's reduced audio_ctx; the full window when T[w] ==
 * n_audio_ctx). *result points into ws at the outputs stacked [sum T[w],
 * d] (device), valid until ws is reused. */
static tolk_status encode_pass(tolk_ctx *ctx, const tolk_net *net, float *ws, int nb,
                               const float *const *mels, const int *T, int nw, float **result) {
    const tolk_backend *be = net->be;
    const tolk_hparams *hp = &net->hp;
    size_t d = (size_t)hp->n_audio_state, Tf = (size_t)hp->n_audio_ctx;
    size_t n_mels = (size_t)hp->n_mels;
    size_t per = (size_t)nb * Tf * d, Mw = 0;
    float *x = ws, *h = x + per, *att = h + per, *qkv = att + per, *mlp = qkv + 3 * per;
    float *melbuf = mlp + 4 * per;
    float *packed = NULL; /* host copy of a reduced window's first 2 T frames */
    tolk_status st = TOLK_OK;
    for (int w = 0; w < nw && st == TOLK_OK; w++) {
        const size_t Tw = (size_t)T[w], T_mel = 2 * Tw;
        float *xw = x + Mw * d;
        if (Tw == Tf) {
            st = be->upload(ctx, be, melbuf, mels[w], n_mels * T_mel * sizeof(float));
        } else {
            if (!packed && !(packed = tolk_malloc_array(n_mels * 2 * Tf, sizeof(float)))) {
                st = tolk_fail(ctx, TOLK_ERR_NOMEM, "net: encode: out of memory");
                break;
            }
            for (size_t c = 0; c < n_mels; c++)
                memcpy(packed + c * T_mel, mels[w] + c * 2 * Tf, T_mel * sizeof(float));
            st = be->upload(ctx, be, melbuf, packed, n_mels * T_mel * sizeof(float));
        }
        /* conv1 + GELU: [n_mels, T_mel] -> [T_mel, d] (in mlp) */
        if (!st)
            st = be->conv1d(ctx, be, mlp, melbuf, TOLK_CONV_IN_CT, n_mels, T_mel, 1, &net->conv1,
                            NULL);
        if (!st) st = be->bias_gelu(ctx, be, mlp, d, T_mel, d, net->conv1_b);
        /* conv2 (stride 2) + GELU: [T_mel, d] -> [T, d] */
        if (!st) st = be->conv1d(ctx, be, xw, mlp, TOLK_CONV_IN_TC, d, T_mel, 2, &net->conv2, NULL);
        if (!st) st = be->bias_gelu(ctx, be, xw, d, Tw, d, net->conv2_b);
        if (!st) st = be->add(ctx, be, xw, xw, net->enc_pos, Tw * d);
        Mw += Tw;
    }
    free(packed);
    for (int l = 0; l < hp->n_audio_layer && st == TOLK_OK; l++)
        st = enc_block(ctx, net, &net->enc[l], x, h, qkv, att, mlp, nw, T);
    if (!st) st = be->layernorm(ctx, be, h, x, Mw, d, net->ln_post_g, net->ln_post_b, LN_EPS);
    *result = h;
    return st;
}

tolk_status tolk_net_encode(tolk_ctx *ctx, const tolk_net *net, const float *mel, int n_windows,
                            float *out) {
    if (!net || !mel || !out || n_windows < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: encode: bad arguments");
    const tolk_backend *be = net->be;
    const tolk_hparams *hp = &net->hp;
    size_t d = (size_t)hp->n_audio_state, T = (size_t)hp->n_audio_ctx;
    size_t win_floats = (size_t)hp->n_mels * 2 * T;
    int nb = n_windows < ENC_MAX_BATCH ? n_windows : ENC_MAX_BATCH;
    size_t floats = enc_ws_floats(hp, nb);
    if (!floats) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: encode: workspace too large");
    float *ws = be->alloc(ctx, be, floats * sizeof(float));
    if (!ws) return TOLK_ERR_NOMEM;
    tolk_status st = TOLK_OK;
    for (int w0 = 0; w0 < n_windows && st == TOLK_OK; w0 += nb) {
        int nw = n_windows - w0 < nb ? n_windows - w0 : nb;
        float *res = NULL;
        const float *mels[ENC_MAX_BATCH];
        int Ts[ENC_MAX_BATCH];
        for (int w = 0; w < nw; w++) {
            mels[w] = mel + (size_t)(w0 + w) * win_floats;
            Ts[w] = (int)T;
        }
        st = encode_pass(ctx, net, ws, nb, mels, Ts, nw, &res);
        if (!st)
            st = be->download(ctx, be, out + (size_t)w0 * T * d, res,
                              (size_t)nw * T * d * sizeof(float));
    }
    be->free(be, ws);
    return st;
}

/* ------------------------------------------------------------------------ */
/* KV cache                                                                */
/* ------------------------------------------------------------------------ */

void tolk_kvcache_free(tolk_kvcache *kv) {
    if (!kv) return;
    const tolk_backend *be = kv->net->be;
    tolk_kvcache_step_free(kv);
    be->free(be, kv->self_kv);
    be->free(be, kv->cross_kv);
    be->free(be, kv->cross_tmp);
    be->free(be, kv->ws);
    be->free(be, kv->enc_ws);
    be->free(be, kv->xa);
    be->free(be, kv->align_ws);
    free(kv->len);
    free(kv->win);
    free(kv->win_set);
    free(kv);
}

tolk_status tolk_kvcache_new(tolk_ctx *ctx, const tolk_net *net, int max_seqs, int max_len,
                             int max_windows, tolk_kvcache **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: kvcache: NULL output");
    *out = NULL;
    if (!net || max_seqs < 1 || max_len < 1 || max_windows < 1 || max_len > net->hp.n_text_ctx ||
        max_seqs > 65536 || max_windows > 65536)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "net: kvcache: bad sizes (seqs %d, len %d of %d, windows %d)", max_seqs,
                         max_len, net ? net->hp.n_text_ctx : 0, max_windows);
    const tolk_backend *be = net->be;
    size_t d2 = 2 * (size_t)net->hp.n_text_state, L = (size_t)net->hp.n_text_layer;
    size_t self_n, cross_n;
    if (!tolk_mul_size(L * ((size_t)max_seqs + 1), (size_t)max_len, &self_n) ||
        !tolk_mul_size(self_n, d2 * sizeof(float), &self_n) ||
        !tolk_mul_size(L * (size_t)max_windows, (size_t)net->hp.n_audio_ctx, &cross_n) ||
        !tolk_mul_size(cross_n, d2 * (net->kv_f16 ? 2 : sizeof(float)), &cross_n))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: kvcache: too large");
    tolk_kvcache *kv = calloc(1, sizeof *kv);
    if (!kv) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: kvcache: out of memory");
    kv->net = net;
    kv->max_seqs = max_seqs;
    kv->seq_stride = max_seqs + 1;
    kv->max_len = max_len;
    kv->max_windows = max_windows;
    kv->len = calloc((size_t)max_seqs, sizeof(int));
    kv->win = malloc((size_t)max_seqs * sizeof(int));
    kv->win_set = calloc((size_t)max_windows, sizeof(int));
    kv->pend = malloc((size_t)max_seqs * 3 * sizeof(int));
    kv->graphs = calloc(TOLK_STEP_GRAPHS, sizeof(step_graph));
    kv->use_graphs = be->graph_begin && be->graph_end && be->graph_launch && be->graph_free;
    kv->self_kv = be->alloc(ctx, be, self_n);
    kv->cross_kv = kv->self_kv ? be->alloc(ctx, be, cross_n) : NULL;
    if (!kv->len || !kv->win || !kv->win_set || !kv->pend || !kv->graphs || !kv->self_kv ||
        !kv->cross_kv) {
        tolk_kvcache_free(kv);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: kvcache: out of memory");
    }
    for (int i = 0; i < max_seqs; i++)
        kv->win[i] = -1;
    *out = kv;
    return TOLK_OK;
}

tolk_status tolk_net_dev_reserve(tolk_ctx *ctx, const tolk_backend *be, float **buf, size_t *cap,
                                 size_t n, const char *what, int *moved) {
    if (moved) *moved = 0;
    if (*cap >= n) return TOLK_OK;
    size_t bytes;
    if (!tolk_mul_size(n, sizeof(float), &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: %s too large", what);
    float *p = be->alloc(ctx, be, bytes);
    if (!p) return TOLK_ERR_NOMEM; /* alloc set the message */
    be->free(be, *buf);
    *buf = p;
    *cap = n;
    if (moved) *moved = 1;
    return TOLK_OK;
}

float *tolk_kvcache_cross_tmp(tolk_ctx *ctx, tolk_kvcache *kv, size_t n) {
    return tolk_net_dev_reserve(ctx, kv->net->be, &kv->cross_tmp, &kv->cross_tmp_floats, n,
                                "kvcache: scratch", NULL) == TOLK_OK
               ? kv->cross_tmp
               : NULL;
}

/* Cross-attention K/V of every decoder layer for window slot `window`
 * from the encoder output xa [T, d] (device), T <= n_audio_ctx positions;
 * win_set records T (the keys the window's decoder steps attend to). */
static tolk_status set_cross(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, int window,
                             const float *xa, int T) {
    const tolk_backend *be = net->be;
    size_t d = (size_t)net->hp.n_text_state;
    tolk_status st = TOLK_OK;
    kv->win_set[window] = 0;
    const size_t y_stride = (size_t)kv->max_windows * (size_t)net->hp.n_audio_ctx * 2 * d;
    if (net->kv_f16 && net->cross_kv_all.data && net->cross_kv_bh_all) {
        /* one batched product writing float16 straight into the cache */
        st = be->linear_batched(ctx, be, tolk_cross_kv_at(kv, 0, window), 2 * d, y_stride, xa, d, T,
                                &net->cross_kv_all, net->hp.n_text_layer, net->cross_kv_bh_all,
                                TOLK_LINEAR_Y_F16);
        if (st == TOLK_OK) kv->win_set[window] = T;
        return st;
    }
    if (net->kv_f16) { /* the products in float32, stored as float16 */
        const size_t L = (size_t)net->hp.n_text_layer, layer = (size_t)T * 2 * d;
        const int all = net->cross_kv_all.data != NULL; /* every layer in one product */
        float *tmp = tolk_kvcache_cross_tmp(ctx, kv, all ? L * layer : layer);
        if (!tmp) return TOLK_ERR_NOMEM;
        if (all)
            st = be->linear_batched(ctx, be, tmp, 2 * d, layer, xa, d, T, &net->cross_kv_all,
                                    net->hp.n_text_layer, net->cross_kv_b_all, 0);
        for (size_t l = 0; l < L && st == TOLK_OK; l++) {
            const attn_w *c = &net->dec[l].cross;
            float *y = all ? tmp + l * layer : tmp;
            if (!all) st = be->linear(ctx, be, y, 2 * d, xa, d, (size_t)T, &c->kv, c->kv_b, 0);
            if (!st)
                st = be->convert_rows(ctx, be, tolk_cross_kv_at(kv, (int)l, window), 1, 2 * d, y, 0,
                                      2 * d, (size_t)T, 2 * d);
        }
        if (st == TOLK_OK) kv->win_set[window] = T;
        return st;
    }
    if (net->cross_kv_all.data) { /* one batched product: xa rounded once */
        /* layer to layer: the cache's stride (every window holds n_audio_ctx
         * rows), whatever the window's T */
        st = be->linear_batched(ctx, be, tolk_cross_kv_at(kv, 0, window), 2 * d, y_stride, xa, d, T,
                                &net->cross_kv_all, net->hp.n_text_layer, net->cross_kv_b_all, 0);
        if (st == TOLK_OK) kv->win_set[window] = T;
        return st;
    }
    for (int l = 0; l < net->hp.n_text_layer && st == TOLK_OK; l++) {
        const attn_w *c = &net->dec[l].cross;
        st = be->linear(ctx, be, tolk_cross_kv_at(kv, l, window), 2 * d, xa, d, (size_t)T, &c->kv,
                        c->kv_b, 0);
    }
    if (st == TOLK_OK) kv->win_set[window] = T;
    return st;
}

tolk_status tolk_kvcache_set_window(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                    int window, const float *enc) {
    if (!net || !kv || !enc || kv->net != net || window < 0 || window >= kv->max_windows)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: set_window: bad arguments (window %d)",
                         window);
    const tolk_backend *be = net->be;
    size_t d = (size_t)net->hp.n_text_state, T = (size_t)net->hp.n_audio_ctx;
    if (!kv->xa && !(kv->xa = be->alloc(ctx, be, T * d * sizeof(float)))) return TOLK_ERR_NOMEM;
    kv->win_set[window] = 0;
    tolk_status st = be->upload(ctx, be, kv->xa, enc, T * d * sizeof(float));
    return st ? st : set_cross(ctx, net, kv, window, kv->xa, (int)T);
}

tolk_status tolk_kvcache_encode_windows(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                        const int *windows, const float *const *mels, int n,
                                        int batch) {
    return tolk_kvcache_encode_windows_ctx(ctx, net, kv, windows, mels, NULL, n, batch);
}

tolk_status tolk_kvcache_encode_windows_ctx(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                            const int *windows, const float *const *mels,
                                            const int *audio_ctx, int n, int batch) {
    if (!net || !kv || !windows || !mels || kv->net != net || n < 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: encode_windows: bad arguments");
    const int Tf = net->hp.n_audio_ctx;
    for (int i = 0; i < n; i++) {
        if (windows[i] < 0 || windows[i] >= kv->max_windows || !mels[i])
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: encode_windows: bad window %d",
                             windows[i]);
        if (audio_ctx && (audio_ctx[i] < 1 || audio_ctx[i] > Tf))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "net: encode_windows: audio context %d outside 1..%d", audio_ctx[i],
                             Tf);
    }
    const tolk_backend *be = net->be;
    const size_t d = (size_t)net->hp.n_audio_state;
    int nb = batch < 1 ? 1 : batch > ENC_MAX_BATCH ? ENC_MAX_BATCH : batch;
    if (nb > n) nb = n > 0 ? n : 1;
    if (!kv->enc_ws || kv->enc_ws_windows < nb) {
        size_t floats = enc_ws_floats(&net->hp, nb);
        if (!floats) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: encode: workspace too large");
        float *ws = be->alloc(ctx, be, floats * sizeof(float));
        if (!ws) return TOLK_ERR_NOMEM;
        be->free(be, kv->enc_ws);
        kv->enc_ws = ws;
        kv->enc_ws_windows = nb;
    }
    tolk_status st = TOLK_OK;
    for (int i = 0; i < n; i++)
        kv->win_set[windows[i]] = 0;
    for (int w0 = 0; w0 < n && st == TOLK_OK; w0 += nb) {
        int nw = n - w0 < nb ? n - w0 : nb;
        int Ts[ENC_MAX_BATCH];
        for (int w = 0; w < nw; w++)
            Ts[w] = audio_ctx ? audio_ctx[w0 + w] : Tf;
        float *res = NULL;
        st = encode_pass(ctx, net, kv->enc_ws, kv->enc_ws_windows, mels + w0, Ts, nw, &res);
        size_t row = 0;
        for (int w = 0; w < nw && st == TOLK_OK; w++) {
            st = set_cross(ctx, net, kv, windows[w0 + w], res + row * d, Ts[w]);
            row += (size_t)Ts[w];
        }
    }
    return st;
}

tolk_status tolk_kvcache_encode_window(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                       int window, const float *mel, float *enc_out) {
    if (!net || !kv || !mel || kv->net != net || window < 0 || window >= kv->max_windows)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: encode_window: bad arguments (window %d)",
                         window);
    if (!enc_out) return tolk_kvcache_encode_windows(ctx, net, kv, &window, &mel, 1, 1);
    const tolk_backend *be = net->be;
    if (!kv->enc_ws) {
        size_t floats = enc_ws_floats(&net->hp, 1);
        if (!floats) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: encode: workspace too large");
        if (!(kv->enc_ws = be->alloc(ctx, be, floats * sizeof(float)))) return TOLK_ERR_NOMEM;
        kv->enc_ws_windows = 1;
    }
    kv->win_set[window] = 0;
    float *res = NULL;
    const int Tf = net->hp.n_audio_ctx;
    tolk_status st = encode_pass(ctx, net, kv->enc_ws, kv->enc_ws_windows, &mel, &Tf, 1, &res);
    if (!st)
        st = be->download(ctx, be, enc_out, res,
                          (size_t)net->hp.n_audio_ctx * (size_t)net->hp.n_audio_state *
                              sizeof(float));
    return st ? st : set_cross(ctx, net, kv, window, res, Tf);
}

int tolk_kvcache_length(const tolk_kvcache *kv, int seq) {
    if (!kv || seq < 0 || seq >= kv->max_seqs) return 0;
    return kv->len[seq];
}

/*
 * net_align.c — the alignment pass of word timestamps: one decoder forward
 * over a whole token sequence (the SOT sequence, <|notimestamps|>, a
 * window's text tokens, <|endoftext|>) against that window's cross K/V,
 * returning only what openai-whisper's timing.find_alignment reads from
 * its forward pass: the alignment heads' cross-attention weights and the
 * probability of each text token.
 *
 * Reference behaviour: timing.py find_alignment runs model(mel, tokens)
 * with hooks on the cross-attention blocks (QK logits), then
 * softmax(QK[:, :, :num_frames // 2]) per alignment head, and
 * softmax(logits[len(sot_sequence):, :eot]) for the token probabilities.
 * Here the same forward (model.py TextDecoder: embeddings + positions,
 * causal self-attention, cross-attention, MLP, final LayerNorm, tied
 * output projection) is written over the op table (backend.h), with the
 * sequence attending to itself directly (no KV cache: it runs once per
 * window, never per decoder step); at the layers holding alignment heads
 * the backend's attn_weights op computes those heads' softmax over the
 * first n_frames audio positions. Token probabilities: logits in chunks of
 * rows, softmax over [0, prob_vocab) on the host (double sums).
 */
#include "net_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows of logits computed (and downloaded) at a time. */
#define ALIGN_LOGIT_ROWS 16

/* Make kv's alignment workspace hold at least n floats. */
static tolk_status align_reserve(tolk_ctx *ctx, tolk_kvcache *kv, size_t n) {
    return tolk_net_dev_reserve(ctx, kv->net->be, &kv->align_ws, &kv->align_floats, n,
                                "align: workspace", NULL);
}

/* Probability of token `want` under the softmax over row[0, nv), the
 * maximum subtracted, the sum in double. */
static float token_prob(const float *row, int nv, int want) {
    float mx = row[0];
    for (int j = 1; j < nv; j++)
        mx = row[j] > mx ? row[j] : mx;
    double s = 0.0;
    for (int j = 0; j < nv; j++)
        s += exp((double)row[j] - (double)mx);
    return (float)(exp((double)row[want] - (double)mx) / s);
}

tolk_status tolk_net_align(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, int window,
                           const int *tokens, int n, const int (*heads)[2], int n_heads,
                           int n_frames, float *weights, int prob_row0, int n_probs, int prob_vocab,
                           float *probs) {
    if (!net || !kv || kv->net != net || !tokens || !heads || !weights)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: align: NULL argument");
    const tolk_backend *be = net->be;
    const tolk_hparams *hp = &net->hp;
    const size_t d = (size_t)hp->n_text_state, V = (size_t)hp->n_vocab;
    const int nh = hp->n_text_head, dh = (int)d / nh;
    if (n < 1 || n > hp->n_text_ctx || n_heads < 1 || n_heads > 1024 || n_frames < 1 ||
        n_frames > hp->n_audio_ctx)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "net: align: bad sizes (%d tokens, %d heads, %d frames)", n, n_heads,
                         n_frames);
    if (n_probs < 0 || (n_probs > 0 && (!probs || prob_row0 < 0 || prob_row0 + n_probs >= n ||
                                        prob_vocab < 1 || prob_vocab > hp->n_vocab)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: align: bad probability rows");
    if (window < 0 || window >= kv->max_windows || !kv->win_set[window])
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: align: window %d has no K/V", window);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: align: token id %d of %d", tokens[i],
                             hp->n_vocab);
    for (int i = 0; i < n_probs; i++)
        if (tokens[prob_row0 + i + 1] >= prob_vocab)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "net: align: token %d outside the probability vocabulary",
                             tokens[prob_row0 + i + 1]);
    for (int p = 0; p < n_heads; p++)
        if (heads[p][0] < 0 || heads[p][0] >= hp->n_text_layer || heads[p][1] < 0 ||
            heads[p][1] >= nh)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: align: bad alignment head (%d, %d)",
                             heads[p][0], heads[p][1]);

    const size_t T = (size_t)n, F = (size_t)n_frames, H = (size_t)n_heads;
    const size_t C = ALIGN_LOGIT_ROWS;
    /* x, h, att [T, d]; qkv [T, 3d]; mlp [T, 4d]; weights [H, T, F]; logits [C, V] */
    tolk_status st = align_reserve(ctx, kv, T * d * 10 + H * T * F + C * V);
    if (st) return st;
    float *x = kv->align_ws, *h = x + T * d, *att = h + T * d, *qkv = att + T * d;
    float *mlp = qkv + 3 * T * d, *w = mlp + 4 * T * d, *lg = w + H * T * F;

    int *pos = tolk_malloc_array(T, sizeof(int));
    int *lheads = tolk_malloc_array(H, sizeof(int));
    float *lrow = n_probs > 0 ? tolk_malloc_array(C * V, sizeof(float)) : NULL;
    if (!pos || !lheads || (n_probs > 0 && !lrow)) {
        free(pos);
        free(lheads);
        free(lrow);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: align: out of memory");
    }
    for (size_t i = 0; i < T; i++)
        pos[i] = (int)i;
    const float scale = 1.0f / sqrtf((float)dh);
    st = tolk_backend_embed_host(ctx, be, x, &net->tok, tokens, pos, T, net->dec_pos,
                                 (size_t)hp->n_text_ctx, NULL, 0);
    for (int l = 0; l < hp->n_text_layer && st == TOLK_OK; l++) {
        const block_w *b = &net->dec[l];
        const float *ckv = tolk_cross_kv_at(kv, l, window);
        if (net->kv_f16) { /* a float32 view of the layer's float16 K/V */
            const size_t nw = (size_t)hp->n_audio_ctx;
            float *tmp = tolk_kvcache_cross_tmp(ctx, kv, nw * 2 * d);
            if (!tmp) {
                st = TOLK_ERR_NOMEM;
                break;
            }
            st = be->convert_rows(ctx, be, tmp, 0, 2 * d, ckv, 1, 2 * d, nw, 2 * d);
            if (st) break;
            ckv = tmp;
        }
        /* causal self-attention of the sequence over itself */
        st = be->layernorm(ctx, be, h, x, T, d, b->attn.ln_g, b->attn.ln_b, LN_EPS);
        if (!st) st = be->linear(ctx, be, qkv, 3 * d, h, d, T, &b->attn.qkv, b->attn.qkv_b, 0);
        if (!st) {
            const tolk_attn_seq sa = {qkv, qkv + d, qkv + 2 * d, att, n, n, 1, 0};
            st = be->attention(ctx, be, &sa, 1, nh, dh, 3 * d, 3 * d, d, scale, 0);
        }
        if (!st) st = be->linear(ctx, be, x, d, att, d, T, &b->attn.out, b->attn.out_b, 1);
        /* cross-attention over the window; the alignment heads' weights */
        if (!st) st = be->layernorm(ctx, be, h, x, T, d, b->cross.ln_g, b->cross.ln_b, LN_EPS);
        if (!st) st = be->linear(ctx, be, qkv, d, h, d, T, &b->cross.qkv, b->cross.qkv_b, 0);
        if (!st) {
            const tolk_attn_seq ca = {qkv, ckv, ckv + d, att, n, hp->n_audio_ctx, 0, 0};
            st = be->attention(ctx, be, &ca, 1, nh, dh, d, 2 * d, d, scale, 0);
        }
        /* the heads of this layer, in the caller's order within the layer */
        for (int p = 0; p < n_heads && !st;) {
            if (heads[p][0] != l) {
                p++;
                continue;
            }
            int m = 0, p0 = p;
            while (p < n_heads && heads[p][0] == l)
                lheads[m++] = heads[p++][1];
            st = be->attn_weights(ctx, be, qkv, d, ckv, 2 * d, n, n_frames, lheads, m, dh, scale,
                                  w + (size_t)p0 * T * F);
        }
        if (!st) st = be->linear(ctx, be, x, d, att, d, T, &b->cross.out, b->cross.out_b, 1);
        /* MLP */
        if (!st) st = be->layernorm(ctx, be, h, x, T, d, b->mlp_ln_g, b->mlp_ln_b, LN_EPS);
        if (!st) st = be->linear(ctx, be, mlp, 4 * d, h, d, T, &b->fc1, NULL, 0);
        if (!st) st = be->bias_gelu(ctx, be, mlp, 4 * d, T, 4 * d, b->fc1_b);
        if (!st) st = be->linear(ctx, be, x, d, mlp, 4 * d, T, &b->fc2, b->fc2_b, 1);
    }
    if (!st) st = be->download(ctx, be, weights, w, H * T * F * sizeof(float));
    /* token probabilities: final LayerNorm and logits of the rows asked for */
    if (!st && n_probs > 0) {
        float *xr = x + (size_t)prob_row0 * d;
        st = be->layernorm(ctx, be, xr, xr, (size_t)n_probs, d, net->dec_ln_g, net->dec_ln_b,
                           LN_EPS);
        for (size_t r0 = 0; r0 < (size_t)n_probs && !st; r0 += C) {
            const size_t c = (size_t)n_probs - r0 < C ? (size_t)n_probs - r0 : C;
            st = be->logits(ctx, be, lg, xr + r0 * d, c, &net->tok);
            if (!st) st = be->download(ctx, be, lrow, lg, c * V * sizeof(float));
            for (size_t r = 0; r < c && !st; r++) {
                const int want = tokens[(size_t)prob_row0 + r0 + r + 1];
                probs[r0 + r] = token_prob(lrow + r * V, prob_vocab, want);
            }
        }
    }
    free(pos);
    free(lheads);
    free(lrow);
    return st;
}

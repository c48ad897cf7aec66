/*
 * net_decode.c — the batched decoder step of the Whisper network (openai-
 * whisper model.py TextDecoder.forward with its kv_cache: token + position
 * embedding, per block causal self-attention over the cached K/V, cross-
 * attention over the window's encoder K/V, MLP; final LayerNorm; logits =
 * x · token_embedding^T), written once over the backend op table.
 *
 * Everything that changes from one step to the next — token ids,
 * positions, the cache rows the new K/V go to, each sequence's length and
 * window, the selection's masks — is written by the host into one "step
 * block" of int32 and uploaded once per step; the ops read it from device
 * memory (backend.h: embed_rows, copy_rows, attention_desc, select). So a
 * single-token step of B sequences is the same sequence of launches every
 * time, and on a backend with graphs (CUDA) it is captured once per
 * (B, k, timestamp rule) and replayed: one graph launch, one small upload
 * and one small download per token.
 *
 * Step block layout (int32, offsets in ints; T rows fed, B sequences,
 * P mask pairs): ids [T] | positions [T] | cache row of each new K/V [T]
 * (seq * max_len + position, within a layer) | row of each sequence's last
 * token [B] | self-attention descriptors [B] | cross-attention descriptors
 * [B] (tolk_attn_desc, 6 ints) | each row's timestamp rule [B] |
 * selection offsets [B + 1] | mask pairs [2P]. For T = B the offsets
 * depend on B alone, which keeps a captured graph's pointers valid; the
 * graph of a step is keyed by (B, k), everything per row being data.
 *
 * Beam reordering (tolk_kvcache_copy) is queued and run as one batched row
 * copy over all layers before the next step (tolk_kvcache_flush).
 */
#include "net_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Graph cache and step-block storage                                       */
/* ------------------------------------------------------------------------ */

static void graphs_clear(tolk_kvcache *kv) {
    const tolk_backend *be = kv->net->be;
    if (!kv->graphs) return;
    for (int i = 0; i < TOLK_STEP_GRAPHS; i++) {
        if (kv->graphs[i].graph && be->graph_free) be->graph_free(be, kv->graphs[i].graph);
        memset(&kv->graphs[i], 0, sizeof kv->graphs[i]);
    }
}

void tolk_kvcache_step_free(tolk_kvcache *kv) {
    const tolk_backend *be = kv->net->be;
    graphs_clear(kv);
    free(kv->graphs);
    kv->graphs = NULL;
    be->free(be, kv->step_dev);
    be->free(be, kv->cp_dev);
    be->free(be, kv->scr);
    if (be->upload_async) {
        be->host_free(be, kv->step_host); /* waits for the device */
        be->host_free(be, kv->cp_host);
    } else {
        free(kv->step_host);
        free(kv->cp_host);
    }
    free(kv->pend);
}

/* Make *host / *dev hold at least n ints (grow-only, with slack); pinned:
 * the host side from be->host_alloc (uploaded with upload_async). in_graphs:
 * the captured graphs point into *dev (the step block, not the beam-copy
 * indices), so moving it drops them. */
static tolk_status ints_reserve(tolk_ctx *ctx, tolk_kvcache *kv, int **host, int **dev, size_t *cap,
                                size_t n, int pinned, int in_graphs) {
    if (*cap >= n) return TOLK_OK;
    const tolk_backend *be = kv->net->be;
    size_t want = n < 4096 ? 4096 : n;
    if (want < *cap * 2 && *cap <= SIZE_MAX / 4) want = *cap * 2;
    if (want > SIZE_MAX / sizeof(int))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: decode: step block too large");
    int *h =
        pinned ? be->host_alloc(ctx, be, want * sizeof(int)) : tolk_malloc_array(want, sizeof(int));
    int *d = h ? be->alloc(ctx, be, want * sizeof(int)) : NULL;
    if (!h || !d) {
        if (pinned)
            be->host_free(be, h);
        else
            free(h);
        if (pinned && !h) return TOLK_ERR_NOMEM; /* host_alloc set the message */
        return h ? TOLK_ERR_NOMEM : tolk_fail(ctx, TOLK_ERR_NOMEM, "net: decode: out of memory");
    }
    if (in_graphs) graphs_clear(kv);
    if (pinned)
        be->host_free(be, *host);
    else
        free(*host);
    be->free(be, *dev);
    *host = h;
    *dev = d;
    *cap = want;
    return TOLK_OK;
}

/* Make kv's workspace hold at least n floats (invalidates the graphs when
 * it moves). */
static tolk_status ws_reserve(tolk_ctx *ctx, tolk_kvcache *kv, size_t n) {
    int moved = 0;
    const tolk_status st = tolk_net_dev_reserve(ctx, kv->net->be, &kv->ws, &kv->ws_floats, n,
                                                "decode: workspace", &moved);
    if (moved) graphs_clear(kv); /* they point into the old one */
    return st;
}

/* Zeros for the bound scratch's counters (backend.h scratch_bind). */
static const char sync_zeros[TOLK_SCRATCH_SYNC_BYTES];

/* Grow the steps' bound scratch to n bytes (with slack), its counters
 * zeroed; the captured graphs point into the old one and are dropped. */
static tolk_status scr_reserve(tolk_ctx *ctx, tolk_kvcache *kv, size_t n) {
    const tolk_backend *be = kv->net->be;
    if (n > SIZE_MAX / 2) return tolk_fail(ctx, TOLK_ERR_NOMEM, "net: decode: scratch too large");
    size_t want = n + n / 4;
    if (want < TOLK_SCRATCH_SYNC_BYTES) want = TOLK_SCRATCH_SYNC_BYTES;
    void *p = be->alloc(ctx, be, want);
    if (!p) return TOLK_ERR_NOMEM;
    tolk_status st = be->upload(ctx, be, p, sync_zeros, sizeof sync_zeros);
    if (st) {
        be->free(be, p);
        return st;
    }
    graphs_clear(kv);
    be->free(be, kv->scr);
    kv->scr = p;
    kv->scr_bytes = want;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Sequence management and batched cache copies                            */
/* ------------------------------------------------------------------------ */

tolk_status tolk_kvcache_flush(tolk_ctx *ctx, tolk_kvcache *kv) {
    if (kv->n_pend == 0) return TOLK_OK;
    const tolk_backend *be = kv->net->be;
    const size_t L = (size_t)kv->net->hp.n_text_layer, d2 = 2 * (size_t)kv->net->hp.n_text_state;
    size_t rows = 0;
    for (int p = 0; p < kv->n_pend; p++)
        rows += L * (size_t)kv->pend[3 * p + 2];
    tolk_status st = TOLK_OK;
    const int async = be->upload_async != NULL;
    if (rows > 0) {
        if (kv->cp_inflight) { /* the previous flush's indices may still be in flight */
            int done;
            st = be->download(ctx, be, &done, kv->cp_dev, sizeof done);
            if (st) return st;
            kv->cp_inflight = 0;
        }
        st = ints_reserve(ctx, kv, &kv->cp_host, &kv->cp_dev, &kv->cp_cap, 2 * rows, async, 0);
        if (st) return st;
        /* absolute rows of self_kv viewed as [L * seq_stride * max_len, 2d] */
        int *dst = kv->cp_host, *src = kv->cp_host + rows;
        size_t r = 0;
        for (size_t l = 0; l < L; l++)
            for (int p = 0; p < kv->n_pend; p++) {
                const size_t db =
                    (l * (size_t)kv->seq_stride + (size_t)kv->pend[3 * p]) * (size_t)kv->max_len;
                const size_t sb = (l * (size_t)kv->seq_stride + (size_t)kv->pend[3 * p + 1]) *
                                  (size_t)kv->max_len;
                for (int t = 0; t < kv->pend[3 * p + 2]; t++, r++) {
                    dst[r] = (int)(db + (size_t)t);
                    src[r] = (int)(sb + (size_t)t);
                }
            }
        /* asynchronous where it can be: the next step's download waits */
        st = async ? be->upload_async(ctx, be, kv->cp_dev, kv->cp_host, 2 * rows * sizeof(int))
                   : be->upload(ctx, be, kv->cp_dev, kv->cp_host, 2 * rows * sizeof(int));
        if (!st && async) kv->cp_inflight = 1;
        if (!st)
            st = be->copy_rows(ctx, be, kv->self_kv, d2, kv->cp_dev, kv->self_kv, d2,
                               kv->cp_dev + rows, rows, d2);
    }
    kv->n_pend = 0;
    return st;
}

/* Whether seq is the destination (role 0) or the source (role 1) of a
 * pending copy. */
static int pending_as(const tolk_kvcache *kv, int seq, int role) {
    for (int p = 0; p < kv->n_pend; p++)
        if (kv->pend[3 * p + role] == seq) return 1;
    return 0;
}

tolk_status tolk_kvcache_reset(tolk_ctx *ctx, tolk_kvcache *kv, int seq, int window) {
    if (!kv || seq < 0 || seq >= kv->max_seqs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: kvcache: no sequence %d", seq);
    tolk_status st = TOLK_OK;
    if (pending_as(kv, seq, 1)) st = tolk_kvcache_flush(ctx, kv); /* its rows are still read */
    int k = 0;                                                    /* copies into seq are moot now */
    for (int p = 0; p < kv->n_pend; p++)
        if (kv->pend[3 * p] != seq) {
            memmove(kv->pend + 3 * k, kv->pend + 3 * p, 3 * sizeof(int));
            k++;
        }
    kv->n_pend = k;
    kv->len[seq] = 0;
    kv->win[seq] = (window >= 0 && window < kv->max_windows) ? window : -1;
    return st;
}

tolk_status tolk_kvcache_copy(tolk_ctx *ctx, tolk_kvcache *kv, int dst, int src) {
    if (!kv || dst < 0 || src < 0 || dst >= kv->max_seqs || src >= kv->max_seqs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: kvcache: bad copy %d -> %d", src, dst);
    if (dst == src) return TOLK_OK;
    tolk_status st = TOLK_OK;
    /* one batch must not write rows it reads, nor write a sequence twice */
    if (pending_as(kv, src, 0) || pending_as(kv, dst, 1) || pending_as(kv, dst, 0) ||
        kv->n_pend >= kv->max_seqs)
        st = tolk_kvcache_flush(ctx, kv);
    if (st != TOLK_OK) return st;
    if (kv->len[src] > 0) {
        kv->pend[3 * kv->n_pend] = dst;
        kv->pend[3 * kv->n_pend + 1] = src;
        kv->pend[3 * kv->n_pend + 2] = kv->len[src];
        kv->n_pend++;
    }
    kv->len[dst] = kv->len[src];
    kv->win[dst] = kv->win[src];
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* The step                                                                 */
/* ------------------------------------------------------------------------ */

size_t tolk_step_bucket(size_t B) {
    if (B <= 8) return B;                    /* 1 .. 8 as they are */
    if (B <= 64) return (B + 7) / 8 * 8;     /* 16, 24, ..., 64 */
    if (B <= 256) return (B + 31) / 32 * 32; /* 96, 128, ..., 256 */
    return (B + 127) / 128 * 128;            /* 384, 512, ... */
}

/* Every product of the step keeps each row's numbers independent of the
 * other rows (backend.h): a sequence decodes the same alone or batched. */
#define EXACT TOLK_LINEAR_ROW_EXACT
#define EXACT_ACC (TOLK_LINEAR_ROW_EXACT | TOLK_LINEAR_ACCUMULATE)

typedef struct step_layout {
    size_t ids, pos, kv_dst, last, self_d, cross_d, row_ts, sel_off, ranges, total;
} step_layout;

static step_layout layout_of(size_t T, size_t B, size_t P) {
    step_layout L;
    size_t o = 0;
    L.ids = o, o += T;
    L.pos = o, o += T;
    L.kv_dst = o, o += T;
    L.last = o, o += B;
    L.self_d = o, o += 6 * B;
    L.cross_d = o, o += 6 * B;
    L.row_ts = o, o += B;
    L.sel_off = o, o += B + 1;
    L.ranges = o, o += 2 * (P > 0 ? P : 1);
    L.total = o;
    return L;
}

_Static_assert(sizeof(tolk_attn_desc) == 6 * sizeof(int), "tolk_attn_desc is 6 ints");
_Static_assert(sizeof(float) == sizeof(int), "selection results share one int32 buffer");

/* Where a step's outputs live in the workspace. */
typedef struct step_bufs {
    float *x, *h, *att, *qkv, *mlp, *last, *lg;
    int *res_idx;
    float *res_lp;
} step_bufs;

/* The whole step over the uploaded step block: T rows of B sequences,
 * max_nq the most rows of one sequence; k > 0 adds the selection. Only
 * launches work (no host round trip): this is what a graph captures. */
static tolk_status run_step(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, size_t T,
                            size_t B, int max_nq, const step_layout *L, const step_bufs *w, int k) {
    const tolk_backend *be = net->be;
    const tolk_hparams *hp = &net->hp;
    const size_t d = (size_t)hp->n_text_state, V = (size_t)hp->n_vocab;
    const int nh = hp->n_text_head, dh = (int)d / nh;
    const float scale = 1.0f / sqrtf((float)dh);
    const int *sd = kv->step_dev;
    const tolk_attn_desc *self_d = (const tolk_attn_desc *)(sd + L->self_d);
    const tolk_attn_desc *cross_d = (const tolk_attn_desc *)(sd + L->cross_d);
    float *x = w->x, *h = w->h, *att = w->att, *qkv = w->qkv, *mlp = w->mlp;

    /* Half activations (backend.h half_acts): the products' inputs h, att
     * and mlp are float16, written by their producers; x (the residual
     * stream), qkv and the caches stay as they are. */
    const int ha = net->half_acts, XH = tolk_net_xflag(net);
    const int AO = ha ? TOLK_ATTN_OUT_F16 : 0;
    tolk_status st = be->embed_rows(ctx, be, x, &net->tok, sd + L->ids, sd + L->pos, T,
                                    net->dec_pos, (size_t)hp->n_text_ctx);
    for (int l = 0; l < hp->n_text_layer && st == TOLK_OK; l++) {
        const block_w *b = &net->dec[l];
        float *cache = tolk_self_kv_at(kv, l, 0);
        /* the window's K/V rows [K | V], 2d elements, float32 or float16 */
        const void *ck = tolk_cross_kv_at(kv, l, 0);
        const void *cv = net->kv_f16 ? (const void *)((const uint16_t *)ck + d)
                                     : (const void *)((const float *)ck + d);
        /* causal self-attention over the cache, the new K/V appended first:
         * by the attention itself when each sequence brings one token (a
         * CUDA kernel fewer per layer), else by copy_rows (prompt rows) */
        st = tolk_net_norm_linear(ctx, net, qkv, 3 * d, h, x, T, b->attn.ln_g, b->attn.ln_b,
                                  &b->attn.qkv, b->attn.qkv_b, EXACT);
        if (!st && max_nq > 1)
            st = be->copy_rows(ctx, be, cache, 2 * d, sd + L->kv_dst, qkv + d, 3 * d, NULL, T,
                               2 * d);
        if (!st)
            st = be->attention_desc(ctx, be, qkv, 3 * d, cache, cache + d, 2 * d, att, d, self_d,
                                    (int)B, max_nq, kv->max_len, nh, dh, scale,
                                    AO | (max_nq == 1 ? TOLK_ATTN_APPEND : 0));
        if (!st)
            st = be->linear(ctx, be, x, d, att, d, T, &b->attn.out, b->attn.out_b, EXACT_ACC | XH);
        /* cross-attention over the sequence's window */
        if (!st)
            st = tolk_net_norm_linear(ctx, net, qkv, d, h, x, T, b->cross.ln_g, b->cross.ln_b,
                                      &b->cross.qkv, b->cross.qkv_b, EXACT);
        if (!st)
            st = be->attention_desc(ctx, be, qkv, d, ck, cv, 2 * d, att, d, cross_d, (int)B, max_nq,
                                    hp->n_audio_ctx, nh, dh, scale,
                                    AO | (net->kv_f16 ? TOLK_ATTN_KV_F16 : 0));
        if (!st)
            st =
                be->linear(ctx, be, x, d, att, d, T, &b->cross.out, b->cross.out_b, EXACT_ACC | XH);
        if (!st) st = tolk_net_norm_mlp(ctx, net, b, x, h, mlp, T, EXACT);
    }
    /* the last fed row of each sequence -> final LN -> logits; with one row
     * per sequence those are the rows of x themselves */
    float *last = x;
    if (!st && T != B) {
        last = w->last;
        st = be->copy_rows(ctx, be, last, d, NULL, x, d, sd + L->last, B, d);
    }
    if (ha) { /* the normalised rows as float16 (in h or inside the product) */
        if (!st)
            st = tolk_net_norm_linear(ctx, net, w->lg, V, h, last, B, net->dec_ln_g, net->dec_ln_b,
                                      &net->tok, NULL, 0);
    } else {
        if (!st)
            st = be->layernorm(ctx, be, last, last, B, d, net->dec_ln_g, net->dec_ln_b, LN_EPS);
        if (!st) st = be->logits(ctx, be, w->lg, last, B, &net->tok);
    }
    if (!st && k > 0)
        st = be->select(ctx, be, w->lg, V, (int)B, (int)V, sd + L->sel_off, sd + L->ranges,
                        sd + L->row_ts, k, w->res_idx, w->res_lp);
    return st;
}

/* The captured graph of a single-token step with this key, made on first
 * use; NULL when the backend has none or capture failed (run directly). */
static void *step_graph_for(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, size_t B,
                            const step_layout *L, const step_bufs *w, int k) {
    const tolk_backend *be = net->be;
    step_graph *g = NULL, *lru = &kv->graphs[0];
    for (int i = 0; i < TOLK_STEP_GRAPHS; i++) {
        step_graph *e = &kv->graphs[i];
        if ((e->graph || e->failed) && e->B == (int)B && e->k == k) {
            g = e;
            break;
        }
        if ((!e->graph && !e->failed) || e->used < lru->used) lru = e;
    }
    if (!g) {
        g = lru;
        if (g->graph) be->graph_free(be, g->graph);
        memset(g, 0, sizeof *g);
        g->B = (int)B;
        g->k = k;
        void *graph = NULL;
        if (be->graph_begin(ctx, be) == TOLK_OK) {
            tolk_status st = run_step(ctx, net, kv, B, B, 1, L, w, k);
            tolk_status end = be->graph_end(ctx, be, &graph);
            if (st || end) graph = NULL;
        }
        g->graph = graph;
        g->failed = graph == NULL;
        if (graph)
            kv->n_captured++;
        else
            kv->n_capture_failed++;
    }
    g->used = ++kv->clock;
    return g->graph;
}

/* The step of tolk_net_decode (sel NULL: every row's logits into logits)
 * and of tolk_net_decode_select (sel: selections into out_idx / out_lp;
 * with sel->row_k, the rows whose k is 0 get their logits too, into the
 * same rows of logits). */
static tolk_status decode_impl(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                               const int *seqs, int n_seqs, const int *const *tokens,
                               const int *n_tokens, float *logits, const tolk_net_select *sel,
                               int *out_idx, float *out_lp) {
    if (!net || !kv || kv->net != net || !seqs || !tokens || !n_tokens || n_seqs < 1 ||
        n_seqs > kv->max_seqs || (!logits && !sel) || (sel && (!out_idx || !out_lp)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad arguments");
    int logit_rows = 0; /* rows of a selection step that want their logits */
    if (sel && sel->row_k) {
        for (int i = 0; i < n_seqs; i++) {
            if (sel->row_k[i] < 0 || sel->row_k[i] > sel->k)
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad row k %d",
                                 sel->row_k[i]);
            if (sel->row_k[i] == 0) {
                logit_rows++;
                if ((sel->range_off && sel->range_off[i + 1] != sel->range_off[i]) ||
                    (sel->row_ts ? sel->row_ts[i] : sel->ts_begin) != 0)
                    return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                                     "net: decode: row %d wants logits but carries masks", i);
            }
        }
        if (logit_rows && !logits)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: no room for logits");
    }
    const tolk_backend *be = net->be;
    const tolk_hparams *hp = &net->hp;
    const size_t d = (size_t)hp->n_text_state, V = (size_t)hp->n_vocab;
    const int k = sel ? sel->k : 0;
    if (sel) {
        if (k < 1 || k > 32 || k > hp->n_vocab || !sel->range_off || sel->range_off[0] != 0 ||
            sel->ts_begin < 0 || sel->ts_begin >= hp->n_vocab ||
            (sel->range_off[n_seqs] > 0 && !sel->ranges))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad selection (k %d)", k);
        if (sel->row_ts)
            for (int i = 0; i < n_seqs; i++)
                if (sel->row_ts[i] < 0 || sel->row_ts[i] >= hp->n_vocab)
                    return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                                     "net: decode: bad timestamp rule %d", sel->row_ts[i]);
        for (int i = 0; i < n_seqs; i++)
            if (sel->range_off[i + 1] < sel->range_off[i])
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad mask offsets");
    }
    /* Validate every sequence before touching the cache. */
    size_t T = 0;
    int max_nq = 1;
    for (int i = 0; i < n_seqs; i++) {
        int s = seqs[i];
        if (s < 0 || s >= kv->max_seqs || !tokens[i] || n_tokens[i] < 1)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad sequence %d", s);
        for (int j = 0; j < i; j++)
            if (seqs[j] == s)
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                                 "net: decode: sequence %d appears twice in one step", s);
        if (kv->win[s] < 0 || !kv->win_set[kv->win[s]])
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "net: decode: sequence %d has no encoded window", s);
        if (n_tokens[i] > kv->max_len - kv->len[s])
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "net: decode: sequence %d would exceed %d tokens", s, kv->max_len);
        for (int j = 0; j < n_tokens[i]; j++)
            if (tokens[i][j] < 0 || tokens[i][j] >= hp->n_vocab)
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: token id %d of %d",
                                 tokens[i][j], hp->n_vocab);
        if (n_tokens[i] > max_nq) max_nq = n_tokens[i];
        T += (size_t)n_tokens[i];
    }
    const size_t B = (size_t)n_seqs, P = sel ? (size_t)sel->range_off[n_seqs] : 0;
    const size_t kk = k > 0 ? (size_t)k : 1;
    /* A graphed step (one token per sequence) of a half-precision net runs
     * Bs >= B rows, B rounded up to a bucket, so one captured graph serves
     * every batch size of its bucket as sequences join and leave; the
     * padding rows feed token 0 at position 0 of the scratch sequence and
     * their outputs are dropped. */
    const size_t Bs = kv->use_graphs && T == B && net->pad_steps ? tolk_step_bucket(B) : B;
    const size_t Ts = T + (Bs - B);
    /* workspace: x, h, att [T, d]; qkv [T, 3d]; mlp [T, 4d]; last [B, d];
     * logits [B, V]; selection [B, k] ids + [B, k] log-probabilities */
    tolk_status st = tolk_kvcache_flush(ctx, kv);
    if (!st) st = ws_reserve(ctx, kv, Ts * d * 10 + Bs * d + Bs * V + 2 * Bs * kk);
    const step_layout L = layout_of(Ts, Bs, P);
    if (!st)
        st = ints_reserve(ctx, kv, &kv->step_host, &kv->step_dev, &kv->step_cap,
                          L.total > 2 * Bs * kk ? L.total : 2 * Bs * kk, be->upload_async != NULL,
                          1);
    if (st) return st;

    /* the step block */
    int *hb = kv->step_host;
    size_t r = 0;
    for (int i = 0; i < n_seqs; i++) {
        const int s = seqs[i], len = kv->len[s];
        const int row0 = (int)r;
        for (int j = 0; j < n_tokens[i]; j++, r++) {
            hb[L.ids + r] = tokens[i][j];
            hb[L.pos + r] = len + j;
            hb[L.kv_dst + r] = s * kv->max_len + len + j;
        }
        hb[L.last + (size_t)i] = (int)r - 1;
        const tolk_attn_desc sa = {row0, s * kv->max_len, n_tokens[i], len + n_tokens[i], 1, len};
        /* the window's keys: its encoded positions (win_set, <= n_audio_ctx) */
        const tolk_attn_desc ca = {
            row0, kv->win[s] * hp->n_audio_ctx, n_tokens[i], kv->win_set[kv->win[s]], 0, 0};
        memcpy(hb + L.self_d + 6 * (size_t)i, &sa, sizeof sa);
        memcpy(hb + L.cross_d + 6 * (size_t)i, &ca, sizeof ca);
    }
    const int scratch = kv->max_seqs; /* the padding rows' sequence */
    for (size_t i = B; i < Bs; i++, r++) {
        hb[L.ids + r] = 0;
        hb[L.pos + r] = 0;
        hb[L.kv_dst + r] = scratch * kv->max_len;
        hb[L.last + i] = (int)r;
        const tolk_attn_desc sa = {(int)r, scratch * kv->max_len, 1, 1, 1, 0};
        const tolk_attn_desc ca = {
            (int)r, kv->win[seqs[0]] * hp->n_audio_ctx, 1, hp->n_audio_ctx, 0, 0};
        memcpy(hb + L.self_d + 6 * i, &sa, sizeof sa);
        memcpy(hb + L.cross_d + 6 * i, &ca, sizeof ca);
    }
    if (sel) {
        memcpy(hb + L.sel_off, sel->range_off, (B + 1) * sizeof(int));
        if (P > 0) memcpy(hb + L.ranges, sel->ranges, 2 * P * sizeof(int));
        for (size_t i = 0; i < B; i++)
            hb[L.row_ts + i] = sel->row_ts ? sel->row_ts[i] : sel->ts_begin;
    } else {
        memset(hb + L.sel_off, 0, (B + 1) * sizeof(int));
        memset(hb + L.row_ts, 0, B * sizeof(int));
    }
    for (size_t i = B; i < Bs; i++) { /* padding rows: no masks, no rule */
        hb[L.sel_off + i + 1] = hb[L.sel_off + B];
        hb[L.row_ts + i] = 0;
    }
    /* with upload_async the block goes up without a wait: the download of
     * the results below is the step's only host synchronisation (hb is not
     * written again before it, or before the wait after a failure) */
    const int async = be->upload_async != NULL;
    st = async ? be->upload_async(ctx, be, kv->step_dev, hb, L.total * sizeof(int))
               : be->upload(ctx, be, kv->step_dev, hb, L.total * sizeof(int));
    if (st) return st;

    step_bufs w;
    w.x = kv->ws;
    w.h = w.x + Ts * d;
    w.att = w.h + Ts * d;
    w.qkv = w.att + Ts * d;
    w.mlp = w.qkv + 3 * Ts * d;
    w.last = w.mlp + 4 * Ts * d;
    w.lg = w.last + Bs * d;
    w.res_idx = (int *)(w.lg + Bs * V);
    w.res_lp = (float *)(w.res_idx + Bs * kk);

    /* the operations' scratch from the cache's own buffer: no allocation
     * per operation (no memory nodes in a captured graph) */
    if (be->scratch_bind) be->scratch_bind(be, kv->scr, kv->scr_bytes);
    void *graph = NULL;
    if (kv->use_graphs && Ts == Bs) graph = step_graph_for(ctx, net, kv, Bs, &L, &w, k);
    if (graph) {
        st = be->graph_launch(ctx, be, graph);
        kv->n_replayed++;
    } else
        st = run_step(ctx, net, kv, Ts, Bs, max_nq, &L, &w, k);
    if (be->scratch_bind) {
        const size_t need = be->scratch_bind(be, NULL, 0);
        if (st && kv->scr) /* a step cut short may leave counters set */
            (void)be->upload(NULL, be, kv->scr, sync_zeros, sizeof sync_zeros);
        if (!st && need > kv->scr_bytes) st = scr_reserve(ctx, kv, need);
    }
    if (!st) {
        if (sel) {
            /* ids and log-probabilities: one copy, one synchronisation, through
             * the step block's host staging (no longer needed this step) */
            st = be->download(ctx, be, kv->step_host, w.res_idx, 2 * Bs * kk * sizeof(int));
            if (!st) {
                memcpy(out_idx, kv->step_host, B * kk * sizeof(int));
                memcpy(out_lp, kv->step_host + Bs * kk, B * kk * sizeof(float));
            }
            /* rows that asked for their logits (unmasked: no ranges, no rule) */
            for (size_t i = 0; i < B && !st && logit_rows; i++)
                if (sel->row_k && sel->row_k[i] == 0)
                    st = be->download(ctx, be, logits + i * V, w.lg + i * V, V * sizeof(float));
        } else {
            st = be->download(ctx, be, logits, w.lg, B * V * sizeof(float));
        }
    }
    if (st && async) { /* a failed step: the upload must be over before hb is reused */
        int done;
        (void)be->download(NULL, be, &done, kv->step_dev, sizeof done);
    }
    kv->cp_inflight = 0; /* a download (or that wait) followed the flush's upload */
    if (!st)
        for (int i = 0; i < n_seqs; i++)
            kv->len[seqs[i]] += n_tokens[i];
    return st;
}

tolk_status tolk_net_decode(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, const int *seqs,
                            int n_seqs, const int *const *tokens, const int *n_tokens,
                            float *logits) {
    if (!logits) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: bad arguments");
    return decode_impl(ctx, net, kv, seqs, n_seqs, tokens, n_tokens, logits, NULL, NULL, NULL);
}

tolk_status tolk_net_decode_select(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                   const int *seqs, int n_seqs, const int *const *tokens,
                                   const int *n_tokens, const tolk_net_select *sel, int *out_idx,
                                   float *out_lp) {
    if (!sel) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: no selection");
    return decode_impl(ctx, net, kv, seqs, n_seqs, tokens, n_tokens, NULL, sel, out_idx, out_lp);
}

tolk_status tolk_net_decode_mixed(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                  const int *seqs, int n_seqs, const int *const *tokens,
                                  const int *n_tokens, const tolk_net_select *sel, float *logits,
                                  int *out_idx, float *out_lp) {
    if (!sel) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "net: decode: no selection");
    return decode_impl(ctx, net, kv, seqs, n_seqs, tokens, n_tokens, logits, sel, out_idx, out_lp);
}

void tolk_kvcache_set_graphs(tolk_kvcache *kv, int on) {
    if (!kv) return;
    const tolk_backend *be = kv->net->be;
    int can = be->graph_begin && be->graph_end && be->graph_launch && be->graph_free;
    if (!on) graphs_clear(kv);
    kv->use_graphs = can && on;
}

const char *tolk_net_device(const tolk_net *net) {
    return net && net->be ? net->be->name : "";
}

void tolk_kvcache_graph_stats(const tolk_kvcache *kv, long *captured, long *replayed,
                              long *failed) {
    if (captured) *captured = kv ? kv->n_captured : 0;
    if (replayed) *replayed = kv ? kv->n_replayed : 0;
    if (failed) *failed = kv ? kv->n_capture_failed : 0;
}

/*
 * net_internal.h — the network's private structures, shared by net.c
 * (weights, encoder, KV cache) and net_decode.c (the decoder step). Not a
 * public header: nothing outside the network includes it.
 */
#ifndef TOLK_NET_INTERNAL_H
#define TOLK_NET_INTERNAL_H

#include "backend.h"
#include "internal.h"
#include "net.h"

#define LN_EPS 1e-5f

/* Attention sub-layer weights. Self-attention: qkv fused [3d, d] with bias
 * [3d] (key part zero when absent). Cross-attention: q [d, d] + bias [d],
 * and kv fused [2d, d] + bias [2d], applied to the encoder output once per
 * window (tolk_kvcache_set_window). */
typedef struct attn_w {
    tolk_bweight qkv;   /* self: [3d, d]; cross: [d, d] (query only) */
    float *qkv_b;       /* self: [3d]; cross: [d] */
    uint16_t *qkv_bh;   /* encoder, half activations: qkv_b as float16 (the
                           product writing float16 q, k, v adds it) */
    tolk_bweight kv;    /* cross only: [2d, d] */
    float *kv_b;        /* cross only: [2d] */
    tolk_bweight out;   /* [d, d] */
    float *out_b;       /* [d] */
    float *ln_g, *ln_b; /* the pre-LN of this sub-layer, [d] */
} attn_w;

typedef struct block_w {
    attn_w attn;
    attn_w cross;          /* decoder only */
    tolk_bweight fc1, fc2; /* mlp.0 [4d, d], mlp.2 [d, 4d] */
    float *fc1_b, *fc2_b;  /* [4d], [d] */
    uint16_t *fc1_bh;      /* gelu_tanh: fc1_b as float16 (the GELU epilogue's bias) */
    float *mlp_ln_g, *mlp_ln_b;
} block_w;

struct tolk_net {
    tolk_hparams hp;
    tolk_backend *be;
    /* encoder */
    tolk_bweight conv1, conv2; /* [d, n_mels * 3], [d, d * 3] */
    float *conv1_b, *conv2_b;  /* [d] */
    float *enc_pos;            /* [n_audio_ctx, d] */
    block_w *enc;              /* n_audio_layer */
    float *ln_post_g, *ln_post_b;
    /* decoder */
    tolk_bweight tok; /* [n_vocab, d], also the output projection */
    float *dec_pos;   /* [n_text_ctx, d] */
    block_w *dec;     /* n_text_layer */
    float *dec_ln_g, *dec_ln_b;
    /* backends with linear_batched: every layer's cross-attention K/V
     * weight stacked [n_text_layer * 2d, d] and bias [n_text_layer * 2d]
     * (the per-layer cross.kv / kv_b are then not prepared): set_cross is
     * one batched product */
    tolk_bweight cross_kv_all;
    float *cross_kv_b_all;
    uint16_t *cross_kv_bh_all; /* the bias as float16 when the product writes the
                                  float16 cache (float16 weights, kv_f16); else NULL */
    uint64_t mem_bytes;
    int kv_f16;    /* cross-attention K/V stored float16 (TOLK_KV_F16) */
    int half_acts; /* the products' inputs float16, written by their producers
                      (backend.h half_acts: CUDA's half modes) */
    int gelu_tanh; /* half_acts and TOLK_GELU_TANH: fc1 + GELU (tanh form) as one
                      product (TOLK_LINEAR_GELU); else bias_gelu_h's exact erf */
    int norm_fuse; /* half_acts and the backend's norm_linear: a few-row step's
                      LayerNorm runs inside the product reading it */
    int pad_steps; /* half-precision modes: graphed steps padded to batch buckets
                      (products of a few more rows; float32 parity mode keeps
                      every step's exact shape) */
};

struct tolk_kvcache {
    const tolk_net *net;
    int max_seqs, max_len, max_windows;
    int seq_stride;   /* sequences per layer block of self_kv: max_seqs + 1, the last
                         the scratch sequence of padding rows (graph buckets) */
    int *len;         /* [max_seqs] cached positions */
    int *win;         /* [max_seqs] window slot, -1 unbound */
    int *win_set;     /* [max_windows] encoded positions of the window (0: not set) */
    float *self_kv;   /* [n_text_layer][seq_stride][max_len][2d]: K at 0, V at d */
    void *cross_kv;   /* [n_text_layer][max_windows][n_audio_ctx][2d], float32 or
                         float16 (net->kv_f16) */
    float *cross_tmp; /* kv_f16: a window's K/V in float32 before rounding
                         (set_cross: one layer, or every layer with
                         linear_batched) and the alignment pass's float32 view
                         of one layer; tolk_kvcache_cross_tmp */
    size_t cross_tmp_floats;
    float *ws; /* decoder step workspace (device), ws_floats */
    size_t ws_floats;
    float *enc_ws;      /* encoder workspace for one window (device), made on
                           the first tolk_kvcache_encode_window and kept: a
                           long file reuses it instead of allocating ~40
                           n_audio_ctx n_audio_state bytes per window */
    int enc_ws_windows; /* windows one pass of enc_ws holds */
    float *xa;          /* [n_audio_ctx, d] set_window's upload buffer, kept */
    float *align_ws;    /* tolk_net_align's workspace (device), align_floats,
                           made on its first call and kept (net_align.c) */
    size_t align_floats;

    /* decoder step (net_decode.c) */
    int *step_host; /* the step's index block on the host (staging; page-locked
                       from be->host_alloc where the backend has upload_async) */
    int *step_dev;  /* ... and on the device; step_cap ints each */
    size_t step_cap;
    int *pend; /* pending cache copies: [max_seqs][3] dst, src, rows */
    int n_pend;
    int *cp_host;    /* their row indices: [2][cp_cap] (host, device; the host side
                        page-locked where the backend has upload_async) */
    int cp_inflight; /* cp_host's upload_async not yet waited for (a download
                        of this thread waits for it) */
    int *cp_dev;
    size_t cp_cap;
    void *scr;        /* the steps' bound operation scratch (backend scratch_bind), scr_bytes */
    size_t scr_bytes; /* grown to what the steps asked for; graphs point into it */
    struct step_graph *graphs; /* [TOLK_STEP_GRAPHS] captured steps */
    int use_graphs;            /* backend has graphs and they are on (tolk_kvcache_set_graphs) */
    unsigned long long clock;  /* graph use stamps (LRU) */
    long n_captured, n_replayed, n_capture_failed; /* tolk_kvcache_graph_stats */
};

/* Captured decoder steps kept per KV cache: one per (batch bucket, k) in use. */
#define TOLK_STEP_GRAPHS 32

/* One captured single-token step: replayable while ws and step_dev stay. */
typedef struct step_graph {
    void *graph; /* backend graph, NULL = empty slot */
    int B;       /* sequences (= rows) */
    int k;       /* 0: logits returned; else the selection's k */
    int failed;  /* capture failed once: run this key directly */
    unsigned long long used;
} step_graph;

/* Row-major [layer][seq][max_len][2d] self-attention cache of one sequence. */
static inline float *tolk_self_kv_at(const tolk_kvcache *kv, int layer, int seq) {
    size_t d2 = 2 * (size_t)kv->net->hp.n_text_state;
    return kv->self_kv +
           (((size_t)layer * (size_t)kv->seq_stride + (size_t)seq) * (size_t)kv->max_len) * d2;
}

/* [layer][window][n_audio_ctx][2d] cross-attention K/V of one window slot:
 * float32, or float16 bits when kv->net->kv_f16. */
static inline void *tolk_cross_kv_at(const tolk_kvcache *kv, int layer, int window) {
    size_t d2 = 2 * (size_t)kv->net->hp.n_text_state, esz = kv->net->kv_f16 ? 2 : 4;
    return (char *)kv->cross_kv + (((size_t)layer * (size_t)kv->max_windows + (size_t)window) *
                                   (size_t)kv->net->hp.n_audio_ctx) *
                                      d2 * esz;
}

/* kv->cross_tmp with room for at least n floats (grown, contents lost);
 * NULL when out of memory (message on ctx). */
float *tolk_kvcache_cross_tmp(tolk_ctx *ctx, tolk_kvcache *kv, size_t n);

/* The rows a graphed step of B sequences runs in a half-precision net: B up
 * to 8, then rounded up to 8, 32, 128 (net_decode.c). */
size_t tolk_step_bucket(size_t B);

/* Release the decoder-step state of kv (graphs, index blocks). */
void tolk_kvcache_step_free(tolk_kvcache *kv);
/* Run the pending cache copies (tolk_kvcache_copy) now. */
tolk_status tolk_kvcache_flush(tolk_ctx *ctx, tolk_kvcache *kv);

/* Shared by the encoder blocks (net.c) and the decoder step
 * (net_decode.c); with net->half_acts the products' inputs are float16,
 * written by their producers (backend.h half_acts), and the products read
 * them with TOLK_LINEAR_X_F16 (tolk_net_xflag).
 *   tolk_net_norm_linear: y [M, N] = LayerNorm(x) W^T + bias (bias float32
 *     or NULL; y float32, row stride ldy; flags: TOLK_LINEAR_ROW_EXACT or
 *     0): with net->norm_fuse and M <= TOLK_NORM_LINEAR_ROWS one backend
 *     op (norm_linear), else the LayerNorm into h [M, D] (float16 with
 *     half_acts) then linear.
 *   tolk_net_norm_mlp: x [M, d] += fc2(GELU(fc1(LayerNorm(x)) + fc1_b)) +
 *     fc2_b with mlp_ln; h [M, d] and mlp [M, 4d] its workspace (float16
 *     with half_acts); fc1 with the LayerNorm, its bias and the exact GELU
 *     as one norm_linear where tolk_net_norm_linear would fuse; exact:
 *     TOLK_LINEAR_ROW_EXACT or 0.
 * net.c. */
static inline int tolk_net_xflag(const tolk_net *net) {
    return net->half_acts ? TOLK_LINEAR_X_F16 : 0;
}
tolk_status tolk_net_norm_linear(tolk_ctx *ctx, const tolk_net *net, float *y, size_t ldy, float *h,
                                 const float *x, size_t M, const float *gamma, const float *beta,
                                 const tolk_bweight *W, const float *bias, int flags);
tolk_status tolk_net_norm_mlp(tolk_ctx *ctx, const tolk_net *net, const block_w *b, float *x,
                              float *h, float *mlp, size_t M, int exact);

/* Make *buf (device memory of be, *cap floats) hold at least n floats: a
 * new buffer when it is smaller, the old one freed (contents not kept), *moved
 * (NULL allowed) set to whether it changed. Returns TOLK_OK, or
 * TOLK_ERR_NOMEM with ctx's message ("net: <what> too large", or the
 * allocator's). The decoder step's workspace, the cross K/V staging, the
 * alignment pass's workspace. net.c. */
tolk_status tolk_net_dev_reserve(tolk_ctx *ctx, const tolk_backend *be, float **buf, size_t *cap,
                                 size_t n, const char *what, int *moved);

#endif /* TOLK_NET_INTERNAL_H */

/*
 * mt_net.h — the translation network of the Bergamot student models
 * (a Marian transformer encoder and an SSRU decoder) written against the
 * backend op table (backend.h), the same ops and kernels as the Whisper
 * network (linear, layernorm, attention, embed, copy_rows, select) plus
 * two of its own (bias_relu, ssru). mt_net.c builds it from a Marian model
 * and runs the encoder and one decoder step of a batch of sentences;
 * mt_search.c runs greedy and beam search over it.
 *
 * Batches: the sentences of a batch are encoded together without padding
 * (their rows concatenated; attention per sentence). The decoder steps all
 * live hypotheses of all sentences as one set of rows, ordered by
 * sentence, each row attending to its own sentence's encoder output.
 *
 * Reference behaviour: marian-dev models/transformer.h (EncoderTransformer,
 * DecoderTransformer with transformer-decoder-autoreg rnn) and rnn/cells.h
 * (SSRU), inference mode: embeddings * sqrt(dim) + sinusoidal positions;
 * per layer attention / FFN, then add the input, then LayerNorm (eps 1e-6)
 * ("dan"); the first target embedding is a zero vector; logits = y Wemb^T
 * + b over the vocabulary or a shortlist.
 */
#ifndef TOLK_MT_NET_H
#define TOLK_MT_NET_H

#include "backend.h"
#include "gemm_i8.h"
#include "marian_model.h"

/* The longest sequence the position table covers (source or target). */
#define TOLK_MT_MAX_POS 4096

/* An int8 product (the optional int8 mode): the packed weights and the
 * model's activation scale. w.packed NULL: the float32 weight is used. */
typedef struct tolk_mt_i8 {
    tolk_i8_weight w;
    float qa;
} tolk_mt_i8;

typedef struct tolk_mt_enc_layer {
    tolk_bweight qkv, o, w1, w2;
    tolk_mt_i8 qkv8, o8, w18, w28;
    float *b_qkv, *b_o, *b1, *b2, *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} tolk_mt_enc_layer;

typedef struct tolk_mt_dec_layer {
    tolk_bweight rnn, q, kv, o, w1, w2; /* rnn: [W; Wf] fused [2d, d]; kv: [Wk; Wv] */
    tolk_mt_i8 rnn8, q8, kv8, o8, w18, w28;
    float *b_rnn, *b_q, *b_kv, *b_o, *b1, *b2;
    float *ln_rnn_g, *ln_rnn_b, *ln_ctx_g, *ln_ctx_b, *ln_ffn_g, *ln_ffn_b;
} tolk_mt_dec_layer;

/* Immutable after tolk_mt_net_new; shared by threads. */
typedef struct tolk_mt_net {
    const tolk_backend *be;
    int d, heads, ffn, n_enc, n_dec, vocab_src, vocab_tgt, relu;
    int int8;             /* the layers' products in int8 (gemm_i8.h), CPU only */
    tolk_bweight emb_src; /* sqrt(d)-scaled source embeddings [vocab_src (+1), d] */
    tolk_bweight emb_tgt; /* scaled target embeddings [vocab_tgt + 1, d], last row 0 */
    int emb_shared;       /* emb_src is emb_tgt (tied-embeddings-all) */
    tolk_bweight out;     /* output layer [vocab_tgt, d] (unscaled embeddings) */
    float *out_b;         /* [vocab_tgt] (zeros when the model has no bias) */
    float *pos;           /* sinusoidal positions [TOLK_MT_MAX_POS, d] */
    tolk_mt_enc_layer *enc;
    tolk_mt_dec_layer *dec;
    uint64_t weight_bytes; /* device memory held */
} tolk_mt_net;

/* Build the network on be from a validated Marian model: the int8 weights
 * dequantised to float32 once (int8 = 0), or (int8 = 1, a CPU backend and
 * a model with int8 weights and activation scales) kept as int8 for the
 * layers' products (Bergamot's int8shiftAlphaAll arithmetic; embeddings
 * and the output layer stay float32). *out: tolk_mt_net_free. */
tolk_status tolk_mt_net_new(tolk_ctx *ctx, const tolk_backend *be, const tolk_marian_model *m,
                            int int8, tolk_mt_net **out);
void tolk_mt_net_free(tolk_mt_net *net);

/* Working memory of one batch (device buffers of the net's backend). */
typedef struct tolk_mt_work {
    const tolk_mt_net *net;
    int n_sent, T;                       /* sentences, encoder rows (sum of lengths) */
    int *off, *len;                      /* host [n_sent]: first encoder row, length (with </s>) */
    float *ex, *eqkv, *eatt, *etmp, *eh; /* encoder [T, ...] */
    float **kv;                          /* per decoder layer: cross K|V [T, 2d] */
    int cap;                             /* decoder rows the buffers hold */
    float *y, *xf, *q, *att, *tmp, *h;
    float **c, **c2; /* per decoder layer: SSRU state and its reorder target */
    int *d_idx;      /* device int [cap] */
    int *d_emb;      /* device int [n_emb]: embedding ids + positions */
    size_t n_emb;
    int *h_ids, *h_pos;  /* host int [cap] */
    tolk_attn_seq *seqs; /* host [cap] */
} tolk_mt_work;

/* Allocate the work of a batch: n_sent sentences of len[i] tokens each
 * (1 .. TOLK_MT_MAX_POS), decoder rows up to cap. */
tolk_status tolk_mt_work_new(tolk_ctx *ctx, const tolk_mt_net *net, int n_sent, const int *len,
                             int cap, tolk_mt_work **out);
void tolk_mt_work_free(tolk_mt_work *w);

/* Encode the batch: ids [T] (the sentences' token ids concatenated, each
 * ending with </s>, every id < vocab_src) -> the cross-attention K|V of
 * every decoder layer in w->kv. */
tolk_status tolk_mt_encode(tolk_ctx *ctx, tolk_mt_work *w, const int *ids);

/* One decoder step for B rows at target position t (0-based): row r
 * continues row parent[r] of the previous step (NULL: row r itself; at t
 * = 0 the states start at zero and parent is ignored), belongs to sentence
 * sent[r] (rows ordered by sentence) and feeds token tok[r] (ignored at t
 * = 0, where the input is the zero embedding). Leaves the decoder output
 * [B, d] in w->y. */
tolk_status tolk_mt_step(tolk_ctx *ctx, tolk_mt_work *w, int B, int t, const int *tok,
                         const int *sent, const int *parent);

#endif /* TOLK_MT_NET_H */

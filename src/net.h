/*
 * net.h — the Whisper network: prepared compute weights, the encoder, the
 * cross-attention K/V, and the batched decoder step over per-sequence
 * self-attention KV caches. Written once over the backend op table
 * (backend.h); knows nothing of file formats (weights.h gives it tensors)
 * nor of search (decode_*.c give it tokens and read logits).
 *
 * Shapes (row-major):
 *   mel      [n_mels, 3000]            one 30 s window (tolk_mel_pad_or_trim)
 *   enc out  [1500, d_audio]           per window
 *   logits   [B, n_vocab]              one row per sequence in the step
 */
#ifndef TOLK_NET_H
#define TOLK_NET_H

#include "weights.h"

typedef struct tolk_net tolk_net;         /* immutable, shareable across threads */
typedef struct tolk_kvcache tolk_kvcache; /* per stream/batch; one thread at a time */

/* Prepare compute weights for the context's device from a loaded table
 * (e.g. float16 widened to float32, or kept as float16 and converted on the
 * fly). w must outlive the net. */
tolk_status tolk_net_new(tolk_ctx *ctx, const tolk_weights *w, tolk_net **out);

/* Options for tolk_net_new_ex (tolk_net_new uses the defaults). */
typedef struct tolk_net_params {
    int keep_f16;     /* float16 weights: 1 keep as float16 and convert inside
                         the products (half the memory), 0 widen to float32 once,
                         -1 the backend's default (CPU: keep) */
    int bf16;         /* CPU: 1 = bfloat16 products for linears of >= 2 rows
                         where the CPU has AVX-512 BF16
                         (tolk_backend_params.bf16); 0 = exact float32 */
    int attn;         /* CUDA encoder attention: a tolk_attention_type (0: auto) */
    int no_avx512;    /* CPU: 1 = no AVX-512 kernels */
    int kv_f16;       /* 1: cross-attention K/V stored float16 (TOLK_KV_F16; the
                         backend must have convert_rows,
                         else tolk_net_new_ex fails with TOLK_ERR_UNSUPPORTED) */
    int gelu_tanh;    /* 1: with half activations, fc1's GELU in the tanh form
                         inside its product (TOLK_LINEAR_GELU; TOLK_GELU_TANH) */
    int no_norm_fuse; /* 1: the decoder step runs each LayerNorm and the product
                         reading it as two operations even where the backend
                         fuses them (backend.h norm_linear; a comparison
                         switch of bench_gpu); 0: fused where possible */
} tolk_net_params;
tolk_status tolk_net_new_ex(tolk_ctx *ctx, const tolk_weights *w, const tolk_net_params *params,
                            tolk_net **out);
void tolk_net_free(tolk_net *net);
/* 1 when the net stores cross-attention K/V as float16 (TOLK_KV_F16). */
int tolk_net_kv_f16(const tolk_net *net);
const tolk_hparams *tolk_net_hparams(const tolk_net *net);
/* Bytes of weights resident for compute (for tolk_model_desc.mem_bytes). */
uint64_t tolk_net_mem_bytes(const tolk_net *net);

/* Matrix products of the network's backend (all its users) that ran a slow
 * fallback kernel since creation (backend stats; 0 on the CPU). */
uint64_t tolk_net_gemm_fallbacks(const tolk_net *net);

/* Encode n_windows mel windows: mel [n_windows, n_mels, 2 * n_audio_ctx]
 * (3000 frames) -> out [n_windows, n_audio_ctx, n_audio_state]
 * (caller-allocated, float32). Windows are processed up to 4 per pass; the
 * call allocates its workspace (about 40 * n_audio_ctx * n_audio_state
 * bytes per window of a pass) and frees it before returning. */
tolk_status tolk_net_encode(tolk_ctx *ctx, const tolk_net *net, const float *mel, int n_windows,
                            float *out);

/* A KV cache for up to max_seqs decoder sequences of up to max_len tokens
 * (<= n_text_ctx), attending to up to max_windows encoded windows. */
tolk_status tolk_kvcache_new(tolk_ctx *ctx, const tolk_net *net, int max_seqs, int max_len,
                             int max_windows, tolk_kvcache **out);
void tolk_kvcache_free(tolk_kvcache *kv);

/* Compute and store the cross-attention K/V of encoded window `window`
 * (slot in [0, max_windows)) from enc [n_audio_ctx, n_audio_state]. */
tolk_status tolk_kvcache_set_window(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                    int window, const float *enc);

/* Encode one mel window [n_mels, 2 * n_audio_ctx] (host) and store its
 * cross-attention K/V in slot `window`, without the encoder output leaving
 * the device; enc_out (host [n_audio_ctx, n_audio_state], may be NULL)
 * receives a copy. The encoder workspace is made on the first call and kept
 * by kv, so a long file allocates nothing per window. Same numbers as
 * tolk_net_encode + tolk_kvcache_set_window. */
tolk_status tolk_kvcache_encode_window(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                       int window, const float *mel, float *enc_out);

/* Encode n mel windows mels[i] [n_mels, 2 * n_audio_ctx] (host) into the
 * window slots windows[i] (distinct), batch windows per encoder pass (1 ..
 * 4): the same numbers as one tolk_kvcache_encode_window each (every op of
 * the encoder treats a window alone or as whole rows of a product whose
 * rows are independent). The workspace is kept by kv. */
tolk_status tolk_kvcache_encode_windows(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                        const int *windows, const float *const *mels, int n,
                                        int batch);

/* The same, window i over its first audio_ctx[i] encoder positions (1 ..
 * n_audio_ctx; NULL: all): mel frames [0, 2 audio_ctx[i]) of its [n_mels,
 * 3000] window and the first audio_ctx[i] positional embeddings, as
 * whisper.cpp's reduced audio_ctx; the decoder's cross-attention of
 * sequences bound to that slot then reads those positions only. A shorter
 * encoder for audio shorter than 30 s (live streams): attention costs
 * fall with its square, the products linearly. */
tolk_status tolk_kvcache_encode_windows_ctx(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                            const int *windows, const float *const *mels,
                                            const int *audio_ctx, int n, int batch);

/* Sequence management: seq in [0, max_seqs). reset empties a sequence and
 * binds it to a window slot (-1: unbound); copy duplicates src's cached
 * tokens and window into dst (beam search reordering; dst's old content is
 * lost, so permute through a spare sequence); length is the number of cached
 * positions. Out-of-range arguments fail with TOLK_ERR_INVALID_ARG (length
 * returns 0). Copies are queued and run together, as one batched row copy,
 * before the next decoder step, or earlier when a later copy or reset
 * depends on them: then a failure of that copy is returned here. */
tolk_status tolk_kvcache_reset(tolk_ctx *ctx, tolk_kvcache *kv, int seq, int window);
tolk_status tolk_kvcache_copy(tolk_ctx *ctx, tolk_kvcache *kv, int dst, int src);
int tolk_kvcache_length(const tolk_kvcache *kv, int seq);

/* One batched decoder step. For each of the n_seqs DISTINCT sequences
 * seqs[i] (each bound to a window whose K/V were set), feed
 * n_tokens[i] new tokens (tokens[i] points to them; > 1 for the prompt on
 * the first step) at positions length..length+n-1, append their K/V to the
 * cache, and write the logits of the LAST fed token of each sequence to
 * logits[i * n_vocab ...] (float32, caller-allocated [n_seqs, n_vocab]).
 * Fails with TOLK_ERR_INVALID_ARG when a sequence would exceed max_len, a
 * token id is outside [0, n_vocab), a sequence repeats or has no window;
 * the cache lengths are then unchanged. Sequences that share a window are
 * read together in cross-attention (beams cost little extra bandwidth). */
tolk_status tolk_net_decode(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, const int *seqs,
                            int n_seqs, const int *const *tokens, const int *n_tokens,
                            float *logits);

/* The token selection of tolk_net_decode_select (HOST arrays; select.h):
 * per sequence i the mask pairs range_off[i] .. range_off[i + 1] - 1 of
 * ranges, the timestamp rule row_ts[i] (or ts_begin for every row when
 * row_ts is NULL; 0: off), k tokens. With row_k, row i wants row_k[i] <= k
 * of them (the first row_k[i] of its k are those) or, for row_k[i] == 0,
 * its logits (it must then carry no masks and no rule). */
typedef struct tolk_net_select {
    const int *range_off; /* [n_seqs + 1] */
    const int *ranges;    /* [2 * range_off[n_seqs]] lo, hi pairs */
    int ts_begin;
    int k;             /* 1 .. TOLK_SELECT_MAX_K */
    const int *row_ts; /* [n_seqs] or NULL */
    const int *row_k;  /* [n_seqs] or NULL */
} tolk_net_select;

/* tolk_net_decode, but the logits stay on the device: each sequence's are
 * masked and selected there (sel) and only out_idx / out_lp [n_seqs *
 * sel->k] (token ids and log-softmax values) come back. The same numbers
 * as filtering the logits of tolk_net_decode on the host. On a GPU the
 * single-token steps are captured as CUDA graphs and replayed (unless
 * tolk_kvcache_set_graphs turned that off). */
tolk_status tolk_net_decode_select(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                   const int *seqs, int n_seqs, const int *const *tokens,
                                   const int *n_tokens, const tolk_net_select *sel, int *out_idx,
                                   float *out_lp);

/* The engine's mixed step: selections as tolk_net_decode_select, and the
 * rows with sel->row_k[i] == 0 get their logits in logits [n_seqs,
 * n_vocab] (row i; the other rows are left alone). */
tolk_status tolk_net_decode_mixed(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv,
                                  const int *seqs, int n_seqs, const int *const *tokens,
                                  const int *n_tokens, const tolk_net_select *sel, float *logits,
                                  int *out_idx, float *out_lp);

/* Whether kv's single-token steps are captured as graphs (where the
 * backend has them; on by default). */
void tolk_kvcache_set_graphs(tolk_kvcache *kv, int on);

/* Counters of kv's captured decoder steps (any pointer may be NULL):
 * graphs captured, graph launches, captures that failed (those steps ran
 * op by op). All 0 on the CPU or with graphs off. */
void tolk_kvcache_graph_stats(const tolk_kvcache *kv, long *captured, long *replayed, long *failed);

/* The alignment pass of word timestamps (net_align.c): the decoder run
 * over tokens[0, n) (<= n_text_ctx; the SOT sequence, <|notimestamps|>,
 * the text tokens, <|endoftext|>) at positions 0..n-1 against window
 * slot `window`'s cross K/V, without any self-attention cache (the
 * sequence attends to itself; no kv sequence is read or changed). Fills
 *   weights [n_heads, n, n_frames] (HOST, caller-allocated): for alignment
 *     head p = (heads[p][0] layer, heads[p][1] head) and token row i, the
 *     cross-attention softmax over audio positions [0, n_frames) only
 *     (1 <= n_frames <= n_audio_ctx; the reference trims the logits to
 *     the window's content, num_frames // 2, before its softmax);
 *   probs [n_probs] (HOST; may be NULL when n_probs is 0): for i < n_probs
 *     the probability of tokens[prob_row0 + i + 1] under the softmax over
 *     ids [0, prob_vocab) of the logits at row prob_row0 + i (the
 *     reference's text_token_probs; prob_row0 + n_probs < n).
 * The workspace is made on the first call and kept by kv. Fails with
 * TOLK_ERR_INVALID_ARG on bad sizes, heads, tokens or an unset window. */
tolk_status tolk_net_align(tolk_ctx *ctx, const tolk_net *net, tolk_kvcache *kv, int window,
                           const int *tokens, int n, const int (*heads)[2], int n_heads,
                           int n_frames, float *weights, int prob_row0, int n_probs, int prob_vocab,
                           float *probs);

/* The backend the network runs on: "cpu" or "cuda". */
const char *tolk_net_device(const tolk_net *net);

/* The network's backend object (benchmarks: census, stats); NULL for NULL. */
const struct tolk_backend *tolk_net_backend(const tolk_net *net);

#endif /* TOLK_NET_H */

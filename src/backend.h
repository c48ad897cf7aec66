/*
 * backend.h — the tensor-operation table the Whisper network (net.c,
 * net_decode.c) is written against. One table per device with the same
 * entries and the same semantics: backend_cpu.c (OpenBLAS + OpenMP loops)
 * and cuda_backend.c (cuBLAS / cuBLASLt + the kernels in kernels/); every entry is
 * compared between the two by tests/test_cuda_kernels.c.
 *
 * Memory model
 *   - The backend owns its memory: `alloc` returns a device pointer (host
 *     memory for the CPU backend), `upload` / `download` copy between host
 *     and device, `copy_rows` copies rows between device buffers. Device
 *     pointers may be offset with ordinary pointer arithmetic (float units)
 *     by the caller.
 *   - Activations are float32 on every backend, except where an op's flag
 *     says float16 (IEEE binary16 bits): a backend whose half-precision
 *     products would round their float32 inputs anyway sets half_acts, and
 *     the network then has the producers of those inputs (layernorm_h,
 *     bias_gelu_h, attention_desc / attention with TOLK_ATTN_OUT_F16, linear
 *     with TOLK_LINEAR_Y_F16) write them as float16 for linear with
 *     TOLK_LINEAR_X_F16 — no separate conversion. Every matrix is row-major;
 *     `ld*` arguments are row strides in elements (>= the row length), so a
 *     column slice of a wider matrix (e.g. the K part of a fused [T, 3d] QKV
 *     product) can be passed without a copy.
 *   - Weights of linear layers are prepared once into the backend's own
 *     format (tolk_bweight): float32, or float16 converted on the fly, ...
 *   - `attention` (the encoder) takes a HOST array of sequences; the
 *     decoder-step ops (embed_rows, copy_rows, attention_desc, select) read
 *     their index arrays from DEVICE memory, written by the network once
 *     per step, so that a step can be captured and replayed as a graph.
 *
 * Threads: a backend object is immutable after creation and may be used by
 * several threads at once; each call gets the caller's tolk_ctx (thread
 * count, error message). Every call that can fail returns a tolk_status and
 * sets ctx's message; the backend never prints or aborts.
 *
 * Reference behaviour: the operations are those of openai-whisper's
 * model.py (LayerNorm eps 1e-5, exact erf GELU, softmax attention with the
 * 1/sqrt(d_head) scale, Conv1d k=3 padding 1) in float32.
 */
#ifndef TOLK_BACKEND_H
#define TOLK_BACKEND_H

#include "internal.h"
#include "weights.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tolk_backend tolk_backend;

/* A prepared linear weight W [rows = out_features, cols = in_features],
 * row-major, in the backend's memory. dtype is the STORED type: TOLK_DT_F32
 * (widened at preparation) or TOLK_DT_F16 (converted on the fly by the
 * matmul). Filled by weight_prepare, released by weight_free. */
typedef struct tolk_bweight {
    tolk_dtype dtype;
    int64_t rows;
    int64_t cols;
    void *data;          /* rows * cols elements of dtype, device memory */
    int owned;           /* 1: data belongs to the weight; 0: it points into the
                            host tensors (CPU, F16 kept, parts contiguous), which
                            must outlive it */
    void *packed;        /* CPU with tolk_backend_params.bf16 on a CPU with
                            AVX-512 BF16: the same matrix packed for
                            tolk_gemm_bf16 (gemm_cpu.h), owned; else NULL.
                            data stays valid (embedding lookup, few-row
                            products). */
    size_t packed_bytes; /* bytes of packed (0 when NULL) */
} tolk_bweight;

/* One sequence of a batched attention call. All pointers are device
 * memory; rows of q/out have stride ldq/ldo, rows of k/v stride ldkv (see
 * attention). Query row i (0-based) sits at absolute position q_pos0 + i
 * and, when causal, attends to keys j <= q_pos0 + i only; otherwise to all
 * n_kv keys. n_q >= 1, n_kv >= 1, and when causal q_pos0 + n_q <= n_kv. */
typedef struct tolk_attn_seq {
    const float *q; /* [n_q, n_head * d_head] with row stride ldq */
    const float *k; /* [n_kv, n_head * d_head] with row stride ldkv */
    const float *v; /* [n_kv, n_head * d_head] with row stride ldkv */
    float *out;     /* [n_q, n_head * d_head] with row stride ldo */
    int n_q;
    int n_kv;
    int causal; /* 0: full attention; 1: causal from q_pos0 */
    int q_pos0;
} tolk_attn_seq;

/* One sequence of attention_desc, in DEVICE memory (so that a captured
 * decoder step replays with new lengths): row numbers are relative to the
 * q / out and k / v base pointers of the call. Query i < n_q reads q row
 * q_row + i and writes out row q_row + i; key j < n_kv is row kv_row + j
 * of k and v. Mask as tolk_attn_seq (causal: q_pos0 + n_q <= n_kv). The
 * layout equals kernels/attention.h's tolk_cu_attn_desc. */
typedef struct tolk_attn_desc {
    int q_row;
    int kv_row;
    int n_q; /* >= 0 (0: nothing) */
    int n_kv;
    int causal;
    int q_pos0;
} tolk_attn_desc;

/* Layout of a conv1d input. */
typedef enum tolk_conv_layout {
    TOLK_CONV_IN_CT = 0, /* x [C_in, T_in]: channel-major (a mel window [n_mels, 3000]) */
    TOLK_CONV_IN_TC = 1  /* x [T_in, C_in]: time-major (the encoder activations) */
} tolk_conv_layout;

/* Counters of a backend since its creation (backend stats). */
typedef struct tolk_backend_stats {
    uint64_t products;  /* matrix products run (linear, conv, logits, batched) */
    uint64_t fallbacks; /* of them, run by a slow fallback kernel because the device
                           library had no algorithm for the shape (CUDA: cuBLASLt) */
} tolk_backend_stats;

/* Census of the work a backend enqueues, counted by the backend itself
 * (bench_gpu --census): one row per kernel kind. */
#define TOLK_CENSUS_ROWS 24
typedef struct tolk_census_row {
    const char *name; /* kernel kind: "gemm", "convert", "attn_flash_tc", ... (static) */
    uint64_t kernels; /* launches (a cuBLASLt product counts 1) */
    uint64_t nodes;   /* of them, recorded into a graph (launched while capturing) */
    double bytes;     /* global-memory bytes the launches must move: every operand read
                         or written once (attention K/V: at the launch's key bound) */
    double flops;     /* multiply-adds count 2 */
} tolk_census_row;
typedef struct tolk_census {
    int n;                                 /* rows used */
    tolk_census_row row[TOLK_CENSUS_ROWS]; /* in order of first use */
    uint64_t mem_nodes;                    /* graph memory nodes (stream-ordered alloc / free while
                                              capturing) */
    uint64_t copy_nodes;                   /* graph copy / memset nodes */
    int dry;                               /* 1: counted without running anything (see census) */
} tolk_census;

/* The zero-kept head of a bound scratch buffer (scratch_bind). */
#define TOLK_SCRATCH_SYNC_BYTES 65536

/* Flags of the linear op. */
#define TOLK_LINEAR_ACCUMULATE 1 /* y += x W^T + bias */
#define TOLK_LINEAR_ROW_EXACT 2  /* each row's numbers independent of the batch */
#define TOLK_LINEAR_X_F16 4      /* x is float16 (a half activation) */
#define TOLK_LINEAR_Y_F16 8      /* y is float16, rounded once (no accumulate; a bias float16) */
#define TOLK_LINEAR_GELU 16      /* y = GELU(x W^T + bias), tanh form; only with _Y_F16 */

/* Flags of norm_linear. */
#define TOLK_NORM_LINEAR_Y_F16 1 /* y is float16, rounded once */
#define TOLK_NORM_LINEAR_GELU 2  /* y = GELU(...), the exact erf form of bias_gelu */
/* The most rows norm_linear takes (kernels/norm_linear.h). */
#define TOLK_NORM_LINEAR_ROWS 16

/* Flags of attention_desc: the storage of k / v and of out (q and the
 * arithmetic are float32). */
#define TOLK_ATTN_KV_F16 1  /* k and v float16: the cross-attention cache with TOLK_KV_F16 */
#define TOLK_ATTN_OUT_F16 2 /* out float16: the input of the next half product */
#define TOLK_ATTN_APPEND 4  /* attention_desc: append each sequence's new K/V first */
#define TOLK_ATTN_QKV_F16 8 /* attention: q, k, v float16 too (with _OUT_F16 only) */

struct tolk_backend {
    const char *name; /* "cpu", "cuda" */
    void *impl;       /* backend-private state (immutable after creation) */
    int half_acts;    /* 1: the network should hand its products float16
                         activations (layernorm_h, bias_gelu_h, the _F16
                         flags): CUDA in its half modes, whose products
                         round float32 inputs to half anyway; 0: float32
                         (the twins of the half ops still work, for tests) */

    /* Release the backend itself (not the buffers it handed out). */
    void (*destroy)(tolk_backend *be);

    /* ---- memory --------------------------------------------------------- */

    /* Allocate `bytes` of device memory (uninitialised; 64-byte aligned on
     * the CPU). Returns NULL and sets ctx's message on failure or bytes == 0. */
    void *(*alloc)(tolk_ctx *ctx, const tolk_backend *be, size_t bytes);
    /* Free device memory from alloc; NULL is ignored. */
    void (*free)(const tolk_backend *be, void *p);
    /* Host -> device / device -> host / device -> device copies of bytes. */
    tolk_status (*upload)(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                          size_t bytes);
    tolk_status (*download)(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                            size_t bytes);
    /* Optional (NULL where upload is as cheap: the CPU). Page-locked host
     * memory (host_alloc: NULL and ctx's message on failure; host_free
     * ignores NULL), and an upload from it that does not wait: ordered
     * before the calling thread's later operations, complete at its next
     * download (which waits), so src must not change until then. The
     * decoder step's block goes up this way: one host synchronisation per
     * step (the download of its results) instead of two. */
    void *(*host_alloc)(tolk_ctx *ctx, const tolk_backend *be, size_t bytes);
    void (*host_free)(const tolk_backend *be, void *p);
    tolk_status (*upload_async)(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                                size_t bytes);

    /* ---- weights -------------------------------------------------------- */

    /* Prepare a linear weight from n_parts host tensors stacked along rows
     * (e.g. query, key, value -> one fused [3d, d] matrix): every part is
     * 2-D (or 3-D conv [out, in, k], flattened to [out, in * k]) with the
     * same column count; any tensor dtype. keep_f16 (from
     * tolk_backend_params) decides whether F16 tensors stay F16. */
    tolk_status (*weight_prepare)(tolk_ctx *ctx, const tolk_backend *be,
                                  const tolk_tensor *const *parts, int n_parts, tolk_bweight *out);
    /* Release a prepared weight (a zeroed struct is ignored). */
    void (*weight_free)(const tolk_backend *be, tolk_bweight *w);
    /* Convert n_parts host tensors (any dtype, any shape) to one float32
     * device vector *out of their concatenated elements; a NULL part stands
     * for zero_len[i] zeros (an absent bias). Release *out with free. */
    tolk_status (*vector_prepare)(tolk_ctx *ctx, const tolk_backend *be,
                                  const tolk_tensor *const *parts, const int64_t *zero_len,
                                  int n_parts, float **out);

    /* ---- operations ---------------------------------------------------- */

    /* y [M, N] (row stride ldy) = x [M, K] (row stride ldx) · W^T + bias,
     * with W [N, K] prepared and bias [N] float32 or NULL. flags:
     * TOLK_LINEAR_ACCUMULATE adds the result into y (residual connections):
     * y += x W^T + bias; TOLK_LINEAR_ROW_EXACT asks that each row's result
     * be a function of that row alone, bit for bit, whatever M and the other
     * rows are (the decoder step: a sequence's numbers must not depend on
     * what else is in the batch; the CPU keeps it, float32 mode; CUDA's
     * cuBLASLt picks kernels by shape and cannot promise it).
     * TOLK_LINEAR_X_F16: x holds float16 (the product is the same as for
     * its float32 widening); TOLK_LINEAR_Y_F16: y is float16, the float32
     * result rounded once (not with ACCUMULATE), and bias, if any, is
     * float16 [N] (prepared once: the product's epilogue adds it in the
     * output's type); TOLK_LINEAR_GELU (only with _Y_F16): y =
     * GELU(x W^T + bias) before the rounding, in the tanh form
     * 0.5 v (1 + tanh(sqrt(2 / pi) (v + 0.044715 v^3))) of cuBLASLt's GELU
     * epilogue (the half modes' fc1 with tolk_model_params.gelu = TANH:
     * one kernel instead of the product and bias_gelu_h, whisper.cpp's
     * GELU form; bias_gelu's exact erf otherwise). x and y are
     * float32 otherwise, and must not overlap. */
    tolk_status (*linear)(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy, const void *x,
                          size_t ldx, size_t M, const tolk_bweight *W, const void *bias, int flags);

    /* y [M, D] = LayerNorm(x [M, D]) * gamma + beta over each row: two-pass
     * mean and biased variance, 1 / sqrt(var + eps). y may equal x; rows
     * are contiguous (stride D). */
    tolk_status (*layernorm)(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                             size_t M, size_t D, const float *gamma, const float *beta, float eps);
    /* layernorm into float16 y [M, D] (contiguous): the float32 result
     * rounded once (the input of a half product). */
    tolk_status (*layernorm_h)(tolk_ctx *ctx, const tolk_backend *be, uint16_t *y, const float *x,
                               size_t M, size_t D, const float *gamma, const float *beta,
                               float eps);

    /* In place on x [M, N] (row stride ldx): x = GELU(x + bias), exact erf
     * form 0.5 x (1 + erf(x / sqrt 2)); bias [N] may be NULL. */
    tolk_status (*bias_gelu)(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx, size_t M,
                             size_t N, const float *bias);

    /* bias_gelu in place on float16 x [M, N] (row stride ldx): widened,
     * GELU(x + bias) in float32, rounded once. */
    tolk_status (*bias_gelu_h)(tolk_ctx *ctx, const tolk_backend *be, uint16_t *x, size_t ldx,
                               size_t M, size_t N, const float *bias);

    /* In place on x [M, N] (row stride ldx): x = max(0, x + bias); bias
     * [N] may be NULL (the ReLU feed-forward layers of Marian's
     * transformer, mt_net.c). */
    tolk_status (*bias_relu)(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx, size_t M,
                             size_t N, const float *bias);

    /* One step of an SSRU cell (Marian rnn::SSRU, the translation
     * decoder's autoregressive layer) on M rows of width D: xf [M, 2D]
     * (row stride ldxf) holds x W in columns [0, D) and f = x Wf + bf in
     * [D, 2D); the cell state c [M, D] (contiguous) is updated in place and
     * out [M, D] (contiguous, not aliasing c or xf) receives the output:
     *   s = sigmoid(f)  (Marian's form: f > 0 ? 1 / (1 + e^-f) : e^f / (1 + e^f))
     *   c = s c + (1 - s) xW;   out = max(0, c). */
    tolk_status (*ssru)(tolk_ctx *ctx, const tolk_backend *be, float *out, float *c,
                        const float *xf, size_t ldxf, size_t M, size_t D);

    /* In place row softmax of x [M, N] (row stride ldx), max-subtracted. */
    tolk_status (*softmax)(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx, size_t M,
                           size_t N);

    /* y [n] = a [n] + b [n] (elementwise; y may equal a or b). */
    tolk_status (*add)(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *a,
                       const float *b, size_t n);

    /* Multi-head scaled dot-product attention, batched over n_seqs
     * sequences of different lengths (seqs is a HOST array). For each
     * sequence s, head h, query row i:
     *   out[i, h*dh:(h+1)*dh] = softmax_j(scale * q[i,h] · k[j,h]) v[j,h]
     * over the keys j allowed by the mask (see tolk_attn_seq). ldq, ldkv,
     * ldo are row strides in floats; n_head * d_head <= each of them.
     * Whisper: scale = 1 / sqrt(d_head) (the reference's d_head^-0.25 on
     * both q and k). Scratch is bounded by the backend (no full score
     * matrix: at most a row block per head at a time). flags:
     * TOLK_ATTN_OUT_F16 stores out as float16 (each sequence's out then
     * points to uint16_t rows, ldo in elements); TOLK_ATTN_QKV_F16 (only
     * with _OUT_F16: the encoder of the half modes, whose QKV product
     * writes float16) reads q, k and v as float16 too (ldq, ldkv in
     * elements); 0: float32. */
    tolk_status (*attention)(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                             int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                             size_t ldo, float scale, int flags);

    /* 1-D convolution, kernel 3, padding 1 on both sides, stride 1 or 2:
     *   y[t, o] = bias[o] + sum_{c, k} W[o, c, k] x[stride*t + k - 1, c]
     * x is [C_in, T_in] (TOLK_CONV_IN_CT) or [T_in, C_in] (TOLK_CONV_IN_TC);
     * y is [T_out, C_out] time-major with T_out = (T_in - 1) / stride + 1.
     * W is prepared from the [C_out, C_in, 3] tensor (cols = C_in * 3),
     * bias [C_out] float32 or NULL. No activation (use bias_gelu). */
    tolk_status (*conv1d)(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                          tolk_conv_layout layout, size_t C_in, size_t T_in, int stride,
                          const tolk_bweight *W, const float *bias);

    /* logits [M, n_vocab] = x [M, D] · tok^T, the tied output projection
     * (a linear without bias; its own entry so a GPU backend may pick a
     * different kernel / precision for the large vocabulary product). */
    tolk_status (*logits)(tolk_ctx *ctx, const tolk_backend *be, float *logits, const float *x,
                          size_t M, const tolk_bweight *tok);

    /* Attention weights of selected heads (word timestamps: the alignment
     * heads' cross-attention, computed apart from the fused attention,
     * which never stores them). For p < n_heads, i < n_q, j < n_keys:
     *   out[(p * n_q + i) * n_keys + j] =
     *       softmax_j(scale * q[i, h*d_head : (h+1)*d_head] . k[j, same])
     * with h = heads[p] (HOST int array), the softmax over the n_keys keys
     * given only (the reference trims the logits to the audio's frames
     * before its softmax). q [n_q, .] row stride ldq, k [n_keys, .] row
     * stride ldk (DEVICE); out DEVICE float32 [n_heads, n_q, n_keys]. */
    tolk_status (*attn_weights)(tolk_ctx *ctx, const tolk_backend *be, const float *q, size_t ldq,
                                const float *k, size_t ldk, int n_q, int n_keys, const int *heads,
                                int n_heads, int d_head, float scale, float *out);

    /* ---- decoder-step operations over DEVICE index arrays ---------------
     * Everything a step depends on (token ids, positions, cache rows,
     * sequence lengths, masks) is read from device memory, so the same
     * sequence of calls can be captured once (graph_begin / graph_end) and
     * replayed with new contents. The caller validates the indices before
     * uploading them; these ops do not (an index out of range is a
     * programming error, not bad input). */

    /* Token embedding lookup plus positional embedding:
     *   y[i, :] = tok[ids[i], :] + pos[positions[i], :]     for i < n
     * tok is a prepared weight [n_vocab, D] (the tied embedding), pos a
     * float32 device matrix [n_pos, D]; ids and positions are DEVICE int32
     * [n], validated by the caller against tok->rows and n_pos (the CPU
     * backend checks them too: TOLK_ERR_INVALID_ARG). */
    tolk_status (*embed_rows)(tolk_ctx *ctx, const tolk_backend *be, float *y,
                              const tolk_bweight *tok, const int *ids, const int *positions,
                              size_t n, const float *pos, size_t n_pos);

    /* For r < rows: dst row (dst_idx ? dst_idx[r] : r) = src row
     * (src_idx ? src_idx[r] : r), cols floats each; a negative index skips
     * the row. dst_idx / src_idx are DEVICE int32 [rows] or NULL; row
     * strides ld_dst / ld_src. Rows written and rows read must not overlap.
     * (KV-cache append, beam reordering, last-row gather.) */
    tolk_status (*copy_rows)(tolk_ctx *ctx, const tolk_backend *be, float *dst, size_t ld_dst,
                             const int *dst_idx, const float *src, size_t ld_src,
                             const int *src_idx, size_t rows, size_t cols);

    /* attention with the sequences in DEVICE memory (desc [n_seqs]); the
     * same arithmetic as attention. max_n_q / max_n_kv bound every
     * sequence's n_q / n_kv (they size the launch, never the descriptors).
     * flags (TOLK_ATTN_*): k and v float16 (ldkv in elements), out
     * float16; float32 otherwise. q and the arithmetic are float32.
     * TOLK_ATTN_APPEND (the decoder step's self-attention, one new token
     * per sequence: max_n_q <= 1): q's rows are the fused [q | k | v] rows
     * of the QKV product (ldq >= 3 n_head d_head) and each causal
     * sequence's new key and value are first written into key row q_pos0
     * of k and v (which are then written, despite the const) — the KV
     * append and the attention as one operation (one kernel on CUDA). */
    tolk_status (*attention_desc)(tolk_ctx *ctx, const tolk_backend *be, const float *q, size_t ldq,
                                  const void *k, const void *v, size_t ldkv, void *out, size_t ldo,
                                  const tolk_attn_desc *desc, int n_seqs, int max_n_q, int max_n_kv,
                                  int n_head, int d_head, float scale, int flags);

    /* dst[r, c] = src[r, c] for r < rows, c < cols (DEVICE, row strides
     * ld_dst / ld_src in elements), converting between float32 (0) and
     * float16 (1) as dst_f16 / src_f16 say: float16 storage of the
     * cross-attention K/V (round to nearest even; beyond 65504 becomes
     * infinity) and its float32 view for the alignment pass. NULL when the
     * backend has none. */
    tolk_status (*convert_rows)(tolk_ctx *ctx, const tolk_backend *be, void *dst, int dst_f16,
                                size_t ld_dst, const void *src, int src_f16, size_t ld_src,
                                size_t rows, size_t cols);

    /* Token selection on logits [rows, n] (row stride ld, modified in place
     * by the masks), select.h's semantics: mask pairs range_off[r] ..
     * range_off[r+1]-1 of ranges (DEVICE int32 [rows + 1] and pairs, or
     * both NULL), the timestamp rule of each row from row_ts[r] (DEVICE
     * int32 [rows]: the first timestamp token, 0: off; NULL: off for every
     * row), then k tokens: out_idx / out_lp DEVICE [rows * k]. */
    tolk_status (*select)(tolk_ctx *ctx, const tolk_backend *be, float *logits, size_t ld, int rows,
                          int n, const int *range_off, const int *ranges, const int *row_ts, int k,
                          int *out_idx, float *out_lp);

    /* ---- graphs (optional: NULL where unsupported, e.g. the CPU) ---------
     * graph_begin: the calling thread's following ops are recorded, not
     * run, until graph_end, which returns a replayable graph (*graph) or a
     * failure (the recording is then discarded; the ops did not run).
     * graph_launch: run a graph on the calling thread's stream, after its
     * earlier work. graph_free: release one (NULL ignored). */
    tolk_status (*graph_begin)(tolk_ctx *ctx, const tolk_backend *be);
    tolk_status (*graph_end)(tolk_ctx *ctx, const tolk_backend *be, void **graph);
    tolk_status (*graph_launch)(tolk_ctx *ctx, const tolk_backend *be, void *graph);
    void (*graph_free)(const tolk_backend *be, void *graph);

    /* ---- optional extras (NULL where a backend has none) ---------------- */

    /* y_b [M, N] (row stride ldy) = x [M, K] (row stride ldx) · W_b^T +
     * bias_b for b < batch: W was prepared from the batch's weights stacked
     * along rows (batch * N rows), W_b is its rows [b N, (b + 1) N); bias
     * [batch * N] or NULL (bias_b = bias + b N); y_b = y + b *
     * y_stride floats (y_stride >= M * ldy). The cross-attention K/V of
     * every decoder layer from one encoder output: on the GPU one
     * strided-batched product, x rounded to W's type once. flags:
     * TOLK_LINEAR_Y_F16 writes y as float16 (ldy, y_stride in elements;
     * bias, if any, float16 [batch * N], prepared once, added in the
     * product's epilogue: the cross-attention cache with TOLK_KV_F16,
     * without a float32 copy); 0: float32 y and bias. */
    tolk_status (*linear_batched)(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  size_t y_stride, const float *x, size_t ldx, size_t M,
                                  const tolk_bweight *W, int batch, const void *bias, int flags);

    /* A LayerNorm and the product that reads it as one operation, for the
     * few rows of a decoder step (CUDA: one kernel, kernels/norm_linear.h):
     *   y [M, N] (row stride ldy) = h · W^T + bias,
     *   h = float16(LayerNorm(x [M, K], row stride ldx) * gamma + beta)
     * (layernorm's statistics and eps, each normalised value rounded to
     * float16 as layernorm_h writes it; gamma, beta float32 [K]), bias
     * float32 [N] or NULL; with
     * TOLK_NORM_LINEAR_GELU y = GELU(h W^T + bias), bias_gelu's exact erf
     * form; y float16 (rounded once) with TOLK_NORM_LINEAR_Y_F16, else
     * float32; y must not overlap x. Takes only M <= TOLK_NORM_LINEAR_ROWS
     * and float16 weights with a row width K the kernel holds (a multiple of
     * 32 up to 1504: every Whisper width): else TOLK_ERR_UNSUPPORTED,
     * nothing run, and the caller runs layernorm_h then linear
     * (net.c's tolk_net_norm_linear). Each row's result depends on that row
     * alone. NULL where a backend has none (the CPU; its twin for the tests
     * is tolk_host_norm_linear, backend_host_half.h). */
    tolk_status (*norm_linear)(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                               const float *x, size_t ldx, size_t M, const float *gamma,
                               const float *beta, float eps, const tolk_bweight *W,
                               const float *bias, int flags);

    /* Bind buf (DEVICE, bytes; NULL: none) as the calling thread's
     * scratch for this backend's operations until the next call: an
     * operation that needs at most `bytes` of scratch takes it from buf
     * (its operations run in stream order, so they can share it) instead
     * of allocating per operation — which a captured graph would record
     * as memory nodes. buf must stay allocated as long as a graph captured
     * while it was bound exists. Its first TOLK_SCRATCH_SYNC_BYTES are
     * counters that operations keep at zero between calls (CUDA: the split
     * attention's fused combine): they must be zero when buf is bound
     * first, and zeroed again after an operation failed. Returns the most
     * scratch any operation asked for since the previous call, that head
     * included (the caller binds, runs its operations, binds NULL and
     * grows buf to the returned size). NULL when the backend needs no
     * scratch (CPU). */
    size_t (*scratch_bind)(const tolk_backend *be, void *buf, size_t bytes);

    /* Counters since creation (products, slow fallbacks); no failure. */
    void (*stats)(const tolk_backend *be, tolk_backend_stats *out);

    /* The census counted since creation or the last reset (reset = 1 zeroes
     * it after copying). Counting is off unless the environment variable
     * TOLK_CUDA_CENSUS is set when the backend is created: "1" counts while
     * running normally, "dry" counts WITHOUT running anything (kernels and
     * products are not launched, weights are not uploaded, results are
     * garbage: the shapes of large models on machines that cannot run them).
     * out->n = 0 when counting is off. */
    void (*census)(const tolk_backend *be, tolk_census *out, int reset);
};

/* Options for creating a backend. */
typedef struct tolk_backend_params {
    int keep_f16;  /* 1: keep F16 weights as F16 and convert inside linear;
                      0: widen every weight to F32 at preparation */
    int bf16;      /* CPU: 1 = also pack each weight as bfloat16 and run the
                      products of >= 2 rows (encoder, conv, prompts, batched
                      steps) through the AVX-512 BF16 GEMM when the CPU has it
                      (inputs rounded to bf16, float32 accumulation; not
                      bit-exact); 0 (default) = exact float32 sgemm. Ignored
                      by the CUDA backend. */
    int attn;      /* CUDA encoder attention: a tolk_attention_type; 0 (auto):
                      f16 with half weights, f32 in the parity mode, or
                      $TOLK_ATTN_TC's process default */
    int no_avx512; /* CPU: 1 = never the AVX-512 BF16 products */
} tolk_backend_params;

/* Embedding lookup from HOST ids / positions [n], validated here (bad
 * ones: TOLK_ERR_INVALID_ARG): they are uploaded to a device buffer and
 * passed to be->embed_rows (y [n, D] = tok[ids] + pos[positions]). For
 * callers outside the graph-captured decoder step (alignment pass,
 * translation network). scratch: a device int buffer of scratch_ints
 * (>= 2n) the caller keeps for repeated calls (a decoder loop), or NULL:
 * one is allocated for this call. backend.c. */
tolk_status tolk_backend_embed_host(tolk_ctx *ctx, const tolk_backend *be, float *y,
                                    const tolk_bweight *tok, const int *ids, const int *positions,
                                    size_t n, const float *pos, size_t n_pos, int *scratch,
                                    size_t scratch_ints);

/* Create the CPU backend (OpenBLAS sgemm + OpenMP loops). params NULL:
 * keep_f16 = 1. *out is released with (*out)->destroy. */
tolk_status tolk_backend_cpu_new(tolk_ctx *ctx, const tolk_backend_params *params,
                                 tolk_backend **out);

#ifdef TOLK_HAVE_CUDA
/* The CUDA backend (src/cuda_backend.c; also declared in cuda_util.h). */
tolk_status tolk_backend_cuda_new(tolk_ctx *ctx, const tolk_backend_params *params,
                                  tolk_backend **out);
#endif

#endif /* TOLK_BACKEND_H */

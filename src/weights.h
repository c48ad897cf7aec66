/*
 * weights.h — the uniform weights table every model-file loader produces
 * (model_ct2.c, model_safetensors.c, model_ggml.c) and the network code
 * (encoder.c, decoder.c) consumes. File-format code knows nothing of the
 * network; the network knows nothing of file formats.
 *
 * Tensor names are canonical, those of openai-whisper's state dict:
 *
 *   encoder.conv1.weight [d, n_mels, 3]   encoder.conv1.bias [d]
 *   encoder.conv2.weight [d, d, 3]        encoder.conv2.bias [d]
 *   encoder.positional_embedding [n_audio_ctx, d]
 *   encoder.blocks.{i}.attn.query.weight [d, d]  .attn.query.bias [d]
 *   encoder.blocks.{i}.attn.key.weight   [d, d]  (no bias)
 *   encoder.blocks.{i}.attn.value.weight [d, d]  .attn.value.bias [d]
 *   encoder.blocks.{i}.attn.out.weight   [d, d]  .attn.out.bias [d]
 *   encoder.blocks.{i}.attn_ln.weight/.bias [d]
 *   encoder.blocks.{i}.mlp.0.weight [4d, d]  .mlp.0.bias [4d]
 *   encoder.blocks.{i}.mlp.2.weight [d, 4d]  .mlp.2.bias [d]
 *   encoder.blocks.{i}.mlp_ln.weight/.bias [d]
 *   encoder.ln_post.weight/.bias [d]
 *   decoder.token_embedding.weight [n_vocab, d]   (also the output projection)
 *   decoder.positional_embedding [n_text_ctx, d]
 *   decoder.blocks.{i}.attn.*        as the encoder's (causal self-attention)
 *   decoder.blocks.{i}.attn_ln.*
 *   decoder.blocks.{i}.cross_attn.{query,key,value,out}.*   (key: no bias)
 *   decoder.blocks.{i}.cross_attn_ln.*
 *   decoder.blocks.{i}.mlp.0.* / mlp.2.* / mlp_ln.*
 *   decoder.ln.weight/.bias [d]
 *
 * Linear weights are [out_features, in_features] row-major (y = x W^T + b).
 * A loader may present a slice of a fused tensor (CTranslate2 stores q,k,v
 * as one [3d, d] matrix) as separate tensors pointing into it: rows are
 * contiguous, so no copy is needed. A bias that a format does not store
 * (attn.key.bias) is simply absent.
 */
#ifndef TOLK_WEIGHTS_H
#define TOLK_WEIGHTS_H

#include "tolk.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tolk_dtype {
    TOLK_DT_F32 = 0,
    TOLK_DT_F16 = 1,
    TOLK_DT_BF16 = 2,
    TOLK_DT_I8 = 3 /* symmetric int8 with one float scale per row (CT2 style) */
} tolk_dtype;

/* Bytes per element; "float32" ... names. */
size_t tolk_dtype_size(tolk_dtype dt);
const char *tolk_dtype_name(tolk_dtype dt);

#define TOLK_MAX_DIMS 4

typedef struct tolk_tensor {
    char *name;                  /* canonical name (owned by the table) */
    tolk_dtype dtype;
    int ndim;
    int64_t shape[TOLK_MAX_DIMS]; /* row-major, outermost first */
    const void *data;            /* into an mmapped file or an owned buffer */
    const float *scale;          /* TOLK_DT_I8 only: shape[0] per-row scales; y = q / scale
                                    as CTranslate2 stores it */
} tolk_tensor;

typedef struct tolk_hparams {
    int n_mels;
    int n_vocab;
    int n_audio_ctx;
    int n_audio_state;
    int n_audio_head;
    int n_audio_layer;
    int n_text_ctx;
    int n_text_state;
    int n_text_head;
    int n_text_layer;
} tolk_hparams;

/* Model configuration beyond the tensor shapes (config.json, generation
 * config, or derived from the vocabulary size when a format lacks it). */
typedef struct tolk_model_config {
    int multilingual;      /* n_vocab >= 51865 */
    int n_languages;       /* 99 (51865) or 100 (51866); 0 English-only */
    int *suppress_ids;     /* the model's default suppress_tokens (owned) */
    int n_suppress_ids;
    int *begin_suppress_ids; /* suppressed at the first sampled position */
    int n_begin_suppress_ids;
    int *lang_ids;         /* token ids of the language tokens, n_languages */
    int (*alignment_heads)[2]; /* (layer, head) pairs, may be NULL */
    int n_alignment_heads;
} tolk_model_config;

/* A vocabulary carried by the model file (CT2 vocabulary.txt/json, ggml's
 * embedded one): token id -> bytes as stored (byte-level BPE text form for
 * CT2; raw bytes for ggml). May be empty when the format keeps the
 * tokenizer in separate files (then tokenizer_path is set). */
typedef struct tolk_vocab {
    char **tokens;         /* n entries, each NUL-terminated (owned) */
    uint32_t *lengths;     /* byte length of each token */
    int n;
    int raw_bytes;         /* 1: tokens are raw bytes (ggml); 0: GPT-2 byte-to-unicode text */
} tolk_vocab;

typedef struct tolk_weights {
    tolk_model_format format;
    char *path;              /* the directory or file that was loaded (owned) */
    char *tokenizer_path;    /* tokenizer.json next to the model, or NULL (owned) */
    tolk_hparams hp;
    tolk_model_config cfg;
    tolk_vocab vocab;
    tolk_tensor *tensors;    /* n_tensors entries (owned) */
    int n_tensors;
    uint64_t file_bytes;     /* bytes of the model file(s) on disk */
    /* Mappings and owned buffers, released by tolk_weights_free. */
    void **maps;
    size_t *map_sizes;
    int n_maps;
    void **owned;
    int n_owned;
    /* --- additions (model loaders, issue 4) --- */
    const float *mel_filters; /* ggml only: embedded filterbank [mel_n_mels, mel_n_fft], or NULL */
    int mel_n_mels;
    int mel_n_fft;
    int n_tensors_cap;        /* allocated entries of tensors */
    int sorted;               /* tensors sorted by name (tolk_weights_finish) */
} tolk_weights;

/* Load any supported format; the format is found from content:
 *   a directory with model.bin (CT2 magic) -> CT2;
 *   a directory with *.safetensors / model.safetensors.index.json -> HF;
 *   a file starting with the ggml magic -> ggml.
 * On failure *out is NULL and ctx's message names the file and the tensor. */
tolk_status tolk_weights_load(tolk_ctx *ctx, const char *path, int use_mmap, tolk_weights **out);
void tolk_weights_free(tolk_weights *w);

/* The tensor with this canonical name, or NULL. */
const tolk_tensor *tolk_weights_get(const tolk_weights *w, const char *name);

/* printf-style lookup: tolk_weights_getf(w, "encoder.blocks.%d.attn.query.weight", i). */
const tolk_tensor *tolk_weights_getf(const tolk_weights *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Check that every tensor the network needs is present with the shape the
 * hyper-parameters imply (and dtype in {F32, F16, BF16, I8}); a message
 * naming the file and the tensor otherwise. Called by every loader. */
tolk_status tolk_weights_validate(tolk_ctx *ctx, const tolk_weights *w);

/* Per-format entry points (used by tolk_weights_load). */
tolk_status tolk_load_ct2(tolk_ctx *ctx, const char *dir, int use_mmap, tolk_weights **out);
tolk_status tolk_load_safetensors(tolk_ctx *ctx, const char *dir, int use_mmap,
                                  tolk_weights **out);
tolk_status tolk_load_ggml(tolk_ctx *ctx, const char *file, int use_mmap, tolk_weights **out);

/* ------------------------------------------------------------------------
 * Additions (issue 4). Guarantees of every loaded table:
 *  - every tensor's data is aligned to at least its element size (64 bytes
 *    for the buffers a loader copies into) and lies wholly inside a mapping
 *    or buffer the table owns, so `((const uint16_t *)t->data)[i]` is
 *    always defined; use unaligned SIMD loads on mapped data;
 *  - the tensors are sorted by name (tolk_weights_get is a binary search);
 *  - the shapes match the hyper-parameters (tolk_weights_validate);
 *  - attn.key.bias / cross_attn.key.bias are present only when a file stores
 *    a non-zero one (CTranslate2 stores zeros in its fused bias): network
 *    code should add them when present;
 *  - cfg.lang_ids is set for multilingual models; cfg.suppress_ids may be
 *    empty (n_suppress_ids == 0) when the format does not carry the list
 *    (ggml; HF without generation_config.json): then compute openai-whisper's
 *    non-speech set from the tokenizer.
 * ---------------------------------------------------------------------- */

/* Elements and bytes of a tensor (I8: the int8 payload, scales excluded). */
int64_t tolk_tensor_nelem(const tolk_tensor *t);
size_t tolk_tensor_nbytes(const tolk_tensor *t);

/* Rows and columns of a tensor seen as a matrix [d0, d1 * d2 * ...] (a 1-D
 * tensor is one row). Returns 1 and sets them when t has data, positive
 * dimensions whose product fits int64, a supported dtype, and (I8) its
 * scales; 0 otherwise. Used by every backend's weight preparation. */
int tolk_tensor_matrix(const tolk_tensor *t, int64_t *rows, int64_t *cols);

/* Convert a whole tensor to float32 into dst (tolk_tensor_nelem floats,
 * caller-allocated). I8 rows are dequantised as q / scale[row]. */
void tolk_tensor_to_f32(const tolk_tensor *t, float *dst);

/* Convert n halves (IEEE binary16 / bfloat16) to float32, and back (round
 * to nearest even). Bulk forms use F16C where compiled in. */
void tolk_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void tolk_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void tolk_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);

/* The size name of a table's dimensions: "tiny", "base.en", "large-v3",
 * "large-v3-turbo", "distil-large-v3", ... or "custom". Static storage. */
const char *tolk_weights_size_name(const tolk_hparams *hp);

/* Stored dtypes of a table, comma-separated in enum order ("float16",
 * "float16,float32"); writes at most cap bytes (NUL included). */
void tolk_weights_dtypes(const tolk_weights *w, char *buf, size_t cap);

/* Sum of tensor bytes (what stays resident for compute if used as is). */
uint64_t tolk_weights_mem_bytes(const tolk_weights *w);

/* The canonical shape of a tensor name under hp: returns 1 and fills
 * *ndim/shape for a name of the canonical list (layer index in range),
 * 0 for any other name. */
int tolk_weights_expected_shape(const tolk_hparams *hp, const char *name, int *ndim,
                                int64_t shape[TOLK_MAX_DIMS]);

/* Sanity limits on hyper-parameters (positive, bounded, heads divide
 * widths): TOLK_ERR_FORMAT naming path otherwise. */
tolk_status tolk_hparams_check(tolk_ctx *ctx, const char *path, const tolk_hparams *hp);

/* --- Loader helpers (weights.c; used by model_*.c only) --- */

/* A new empty table for path (copied); NULL when out of memory. */
tolk_weights *tolk_weights_new(tolk_model_format format, const char *path);

/* Hand a file mapping (mapped = 1: munmap) or heap buffer (0: free) to w
 * for release by tolk_weights_free. Returns 0 on success, -1 when out of
 * memory (then the caller still owns it). */
int tolk_weights_keep(tolk_weights *w, void *base, size_t size, int mapped);

/* A zeroed 64-byte-aligned buffer owned by w; NULL when out of memory or
 * bytes == 0. */
void *tolk_weights_alloc(tolk_weights *w, size_t bytes);

/* Append a tensor: name is copied; data must stay valid for w's lifetime
 * (inside a mapping or buffer w keeps) and hold the shape's bytes. Data not
 * aligned to its element size is copied into an aligned buffer of w. scale: I8 only
 * (shape[0] floats, copied likewise if unaligned). */
tolk_status tolk_weights_add(tolk_ctx *ctx, tolk_weights *w, const char *name, tolk_dtype dtype,
                             int ndim, const int64_t *shape, const void *data, const float *scale);

/* Check cfg's token ids against n_vocab and alignment heads against the
 * decoder's layers/heads; messages name path (the config file). */
tolk_status tolk_weights_check_config(tolk_ctx *ctx, const char *path, const tolk_weights *w);

/* Fill what cfg lacks from the vocabulary size (multilingual, languages,
 * language ids, begin-suppress {220, eot}); sort the tensors, reject
 * duplicates, then tolk_weights_validate. Every loader ends with it. */
tolk_status tolk_weights_finish(tolk_ctx *ctx, tolk_weights *w);

/* From-memory entry points (fuzzing, tests). The buffers are borrowed and
 * must outlive the returned table; name is used in messages only.
 * config_json (CT2 config.json / HF config.json text) may be NULL for CT2. */
tolk_status tolk_load_ct2_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                 const char *config_json, tolk_weights **out);
tolk_status tolk_load_safetensors_memory(tolk_ctx *ctx, const char *name, const void *data,
                                         size_t size, const char *config_json,
                                         tolk_weights **out);
tolk_status tolk_load_ggml_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                  tolk_weights **out);

/* --- Generic file readers shared by the Whisper and the VAD loaders --- */

/* One tensor of a safetensors file, as tolk_safetensors_walk hands it over:
 * name points into the parsed header (valid during the callback only);
 * data into the caller's buffer (unaligned possible); shape outermost
 * first; bytes = nelem * element size, checked against the file. */
typedef struct tolk_st_tensor {
    const char *name;
    tolk_dtype dtype; /* F32, F16 or BF16 */
    int ndim;
    int64_t shape[TOLK_MAX_DIMS];
    uint64_t nelem;
    const void *data;
    size_t bytes;
} tolk_st_tensor;
/* Whether a tensor name is of interest (1) or skipped unchecked (0). */
typedef int (*tolk_st_want_fn)(void *user, const char *name);
/* Called for each wanted tensor once it is validated; a non-OK status
 * stops the walk and is returned. */
typedef tolk_status (*tolk_st_visit_fn)(void *user, const tolk_st_tensor *t);

/* Parse a whole .safetensors buffer (model_safetensors.c): the u64 header
 * length, the JSON header, then for every tensor entry (not
 * __metadata__) that want accepts (want NULL: all) check dtype, shape and
 * data_offsets against the data section and call visit. Failures are
 * TOLK_ERR_FORMAT / TOLK_ERR_UNSUPPORTED naming path and the tensor. */
tolk_status tolk_safetensors_walk(tolk_ctx *ctx, const char *path, const uint8_t *data,
                                  size_t size, tolk_st_want_fn want, tolk_st_visit_fn visit,
                                  void *user);

/* A cursor over a little-endian ggml file in memory (model_ggml.c). */
typedef struct tolk_ggml_reader {
    const uint8_t *p;
    size_t size, off;
} tolk_ggml_reader;

#define TOLK_GGML_MAX_NAME 1024

/* One ggml tensor record: i32 n_dims, i32 name_length, i32 type,
 * i32 ne[n_dims] (innermost first), name, data. shape is outermost first
 * (ne reversed); a 0-dimensional record (a scalar) has ndim 0 and one
 * element. data points into the reader's buffer (maybe unaligned). */
typedef struct tolk_ggml_tensor {
    char name[TOLK_GGML_MAX_NAME + 1];
    tolk_dtype dtype; /* F32, F16 or BF16 */
    int ndim;
    int64_t shape[TOLK_MAX_DIMS];
    uint64_t nelem;
    const void *data;
    size_t bytes;
} tolk_ggml_tensor;

/* Read an i32 at the cursor: 0, or -1 at the end of the buffer. */
int tolk_ggml_i32(tolk_ggml_reader *r, int32_t *v);

/* Read the tensor record at the cursor into *t and advance past its data.
 * min_dims: the fewest dimensions accepted (1 for Whisper files; 0 where a
 * scalar may be stored). Truncation, absurd sizes, a NUL in the name and
 * quantized or unknown types fail with a message naming path, the byte
 * offset and the tensor. */
tolk_status tolk_ggml_read_tensor(tolk_ctx *ctx, const char *path, tolk_ggml_reader *r,
                                  int min_dims, tolk_ggml_tensor *t);

/* Half-precision conversions used by loaders and the CPU backend. */
/* The canonical names of the tensors outside the residual blocks (conv
 * stem, positional embeddings, final norms, token embedding). */
#define TOLK_N_GLOBAL_TENSORS 11
extern const char *const tolk_global_tensor_names[TOLK_N_GLOBAL_TENSORS];

float tolk_f16_to_f32(uint16_t h);
uint16_t tolk_f32_to_f16(float f);
float tolk_bf16_to_f32(uint16_t h);
uint16_t tolk_f32_to_bf16(float f);

#endif /* TOLK_WEIGHTS_H */

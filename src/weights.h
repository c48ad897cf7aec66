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

/* Half-precision conversions used by loaders and the CPU backend. */
float tolk_f16_to_f32(uint16_t h);
uint16_t tolk_f32_to_f16(float f);
float tolk_bf16_to_f32(uint16_t h);
uint16_t tolk_f32_to_bf16(float f);

#endif /* TOLK_WEIGHTS_H */

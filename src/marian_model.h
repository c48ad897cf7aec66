/*
 * marian_model.h — the Marian binary model format (marian-dev
 * src/common/binary.cpp) as the Bergamot / Firefox translation models ship
 * it, read and validated; the transformer hyper-parameters from the
 * embedded "special:model.yml". Used by the translation network (mt_net.c)
 * and nothing else; knows nothing of the network beyond the tensor names
 * and shapes it checks.
 *
 * Layout (little-endian):
 *   u64 version (1), u64 n
 *   n headers of 4 u64: name length (with its NUL), type, shape length,
 *       data length
 *   n names (NUL-terminated), then n shapes (i32 each dimension)
 *   u64 pad, pad bytes (the data starts 256-byte aligned), then the n data
 *       blocks in header order, each of its data length.
 * Types: float32 0x404, float16 0x402, int8 0x101 and friends, intgemm8
 * 0x4101 (int8 quantised weights, "architecture independent": the matrix
 * [rows, cols] stored TRANSPOSED, i.e. [cols, rows] row-major, then one
 * float multiplier q: value = int8 * (1 / q); the embedding "Wemb" is not
 * transposed). "*_QuantMultA" tensors are the int8 activation scales the
 * int8shiftAlpha GEMM uses (kept, optional).
 */
#ifndef TOLK_MARIAN_MODEL_H
#define TOLK_MARIAN_MODEL_H

#include "internal.h"
#include "mapfile.h"

#include <stddef.h>
#include <stdint.h>

/* Marian element types (common/types.h). */
#define TOLK_MARIAN_INT8 0x0101u
#define TOLK_MARIAN_FLOAT16 0x0402u
#define TOLK_MARIAN_FLOAT32 0x0404u
#define TOLK_MARIAN_INTGEMM8 0x4101u
#define TOLK_MARIAN_INTGEMM16 0x4102u

/* Sanity limits: anything larger is refused as absurd. */
#define TOLK_MARIAN_MAX_ITEMS 100000
#define TOLK_MARIAN_MAX_NAME 1024
#define TOLK_MARIAN_MAX_DIMS 4
#define TOLK_MARIAN_MAX_DIM (1 << 24)
#define TOLK_MARIAN_MAX_ELEMS ((int64_t)1 << 31)

typedef struct tolk_marian_item {
    const char *name; /* into the file (NUL-terminated, checked) */
    uint32_t type;    /* TOLK_MARIAN_* */
    int ndim;         /* 1 .. TOLK_MARIAN_MAX_DIMS */
    int shape[TOLK_MARIAN_MAX_DIMS];
    int64_t rows, cols;  /* the matrix view: cols = last dim, rows = the rest */
    const uint8_t *data; /* into the file */
    uint64_t bytes;      /* data length as stored (>= what the shape needs) */
    float quant_mult;    /* intgemm8: the stored multiplier (finite, > 0) */
} tolk_marian_item;

/* The transformer hyper-parameters of a Bergamot student model. */
typedef struct tolk_marian_config {
    int dim;       /* dim-emb = model width */
    int heads;     /* transformer-heads */
    int ffn;       /* transformer-dim-ffn */
    int ffn_depth; /* transformer-ffn-depth (2) */
    int enc_depth, dec_depth;
    int vocab_src, vocab_tgt; /* dim-vocabs */
    int tied_all;             /* tied-embeddings-all: one "Wemb" for source, target, output */
    int tied;                 /* tied-embeddings: decoder_Wemb is the output layer */
    int relu;                 /* ffn activation: 1 relu, 0 swish */
    int ssru;                 /* decoder autoregression: 1 SSRU (rnn/ssru) */
    int output_bias;          /* decoder_ff_logit_out_b present */
} tolk_marian_config;

typedef struct tolk_marian_model {
    char *path;          /* the file (owned) */
    tolk_mapfile map;    /* the whole file (mapped or read) */
    const uint8_t *base; /* file bytes (map.data, or borrowed memory) */
    size_t size;
    tolk_marian_item *items; /* n_items (owned), sorted by name */
    int n_items;
    tolk_marian_config cfg;
} tolk_marian_model;

/* Load and validate the Marian file at path: the container (truncation,
 * absurd counts and sizes, overlapping or out-of-file data, duplicate
 * names, unknown types), the model.yml (a transformer with an SSRU
 * decoder, post-norm "dan"), and every tensor the network needs with the
 * shape the configuration implies. Failures name the file and the tensor:
 * TOLK_ERR_IO / FORMAT / UNSUPPORTED / NOMEM. *out: tolk_marian_free. */
tolk_status tolk_marian_load(tolk_ctx *ctx, const char *path, int use_mmap,
                             tolk_marian_model **out);

/* The same from bytes in memory (borrowed: must outlive *out); name is used
 * in messages. For the fuzzer and tests. */
tolk_status tolk_marian_load_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                    tolk_marian_model **out);

void tolk_marian_free(tolk_marian_model *m);

/* The item called name, or NULL. */
const tolk_marian_item *tolk_marian_get(const tolk_marian_model *m, const char *name);
const tolk_marian_item *tolk_marian_getf(const tolk_marian_model *m, const char *fmt, ...)
    TOLK_PRINTF(2, 3);

/* A weight matrix as tolk's linear layers use it, W [out, in] row-major
 * float32, into dst (out * in floats): intgemm8 (stored transposed) is
 * dequantised as int8 * (1 / q) in place; a float32 [in, out] matrix is
 * transposed. For "Wemb" / embeddings (embedding = 1) the matrix is used
 * as stored, [vocab, dim]. Returns rows (out) and cols (in). */
void tolk_marian_matrix_f32(const tolk_marian_item *it, int embedding, float *dst, int64_t *rows,
                            int64_t *cols);

/* A float32 vector item (biases, layer-norm parameters) into dst
 * (it->rows * it->cols floats). */
void tolk_marian_vector_f32(const tolk_marian_item *it, float *dst);

/* The value text of top-level "key: value" in YAML text yml [len] into
 * buf [cap] (quotes stripped); 1 when found, 0 otherwise. A list value
 * ("key:" then "  - a" lines) gives its items joined by commas. Marian's
 * model.yml and decoder configs use only this subset. */
int tolk_marian_yml_get(const char *yml, size_t len, const char *key, char *buf, size_t cap);

#endif /* TOLK_MARIAN_MODEL_H */

/*
 * model_writer.h — a test helper that writes random-weight Whisper models
 * of any shape in the three formats tolk reads (CTranslate2 directory,
 * Hugging Face safetensors directory, whisper.cpp ggml file), for tests of
 * the loaders on shapes without real weights (large-v3, turbo, distil) and
 * for hostile-file tests (omitted tensors, wrong shapes; truncation and
 * byte patches are done by the tests on the written files).
 *
 * Every canonical tensor (weights.h) holds deterministic values
 * mw_value(name, i, seed) = k / 256 with k in [-255, 255], exactly
 * representable in float32, float16 and bfloat16, so all formats and
 * dtypes load to bit-identical float32 values. int8 (CT2 only) stores
 * q = k / 2 with a per-row scale of 128 (q / scale = k / 256 rounded
 * towards zero to even k: mw_value_i8 gives the loaded value).
 */
#ifndef TOLK_MODEL_WRITER_H
#define TOLK_MODEL_WRITER_H

#include "weights.h"

#include <stdint.h>

typedef struct mw_spec {
    tolk_hparams hp;
    tolk_dtype dtype;    /* storage of 2-D+ weights: F32, F16, BF16 (CT2: also I8) */
    tolk_dtype dtype_1d; /* storage of 1-D tensors (biases, norms) */
    uint64_t seed;
    int ct2_version;             /* CT2 binary version 1..6 (0: 6); < 4 only float32/int8 */
    int ct2_no_num_heads;        /* omit encoder/num_heads, decoder/num_heads */
    int n_shards;                /* safetensors: 0/1 = model.safetensors, >1 = sharded + index */
    int write_vocab;             /* CT2: vocabulary.txt; ggml: tokens (n_vocab - 1608 of them) */
    int write_generation_config; /* safetensors: generation_config.json */
    int sparse;            /* safetensors: leave the data section as a hole (header-level tests) */
    const char *omit;      /* a canonical tensor name to leave out, or NULL */
    const char *bad_shape; /* a canonical tensor written with one row too many, or NULL */
} mw_spec;

/* A spec with the given dimensions (d = width of both stacks, heads = d/64
 * but at least 1) and defaults: float16 weights, float32 1-D tensors,
 * seed 1, n_audio_ctx 1500, n_text_ctx 448. */
mw_spec mw_spec_make(int n_mels, int n_vocab, int d, int n_audio_layer, int n_text_layer);

/* The value of element i (row-major) of canonical tensor name. */
float mw_value(const char *name, int64_t i, uint64_t seed);
/* The value an int8 CT2 tensor loads to for the same element. */
float mw_value_i8(const char *name, int64_t i, uint64_t seed);

/* Write a model; the directory is created if needed (files replaced).
 * Return 0 on success, -1 on an I/O error (printed to stderr). */
int mw_write_ct2(const char *dir, const mw_spec *s);
int mw_write_safetensors(const char *dir, const mw_spec *s);
int mw_write_ggml(const char *path, const mw_spec *s);

/* Remove a directory written above and its files (one level). */
void mw_remove_dir(const char *dir);

#endif /* TOLK_MODEL_WRITER_H */

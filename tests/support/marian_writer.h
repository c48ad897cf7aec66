/*
 * marian_writer.h — tiny Marian binary models and lexical shortlists for
 * the tests (test_mt.c) and the fuzz seed corpus: a complete Bergamot-shaped
 * transformer (SSRU decoder, tied embeddings, int8 "intgemm8" weights) of
 * small dimensions with seeded random values, written the way marian-dev's
 * io::binary::saveItems writes it, and hooks to make it hostile (change an
 * item, drop it, truncate or corrupt the bytes).
 */
#ifndef TOLK_TEST_MARIAN_WRITER_H
#define TOLK_TEST_MARIAN_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mw_item {
    char name[96];
    uint32_t type; /* Marian type code (0x404 float32, 0x4101 intgemm8, 0x101 int8) */
    int ndim;
    int shape[4];
    uint8_t *data; /* owned */
    size_t bytes;
} mw_item;

typedef struct mw_model {
    mw_item *items;
    int n, cap;
} mw_model;

typedef struct mw_dims {
    int dim, heads, ffn, enc, dec, vocab;
    int int8;              /* 1: intgemm8 matrices (+ multiplier), 0: float32 */
    const char *yml_extra; /* appended to the model.yml (may be NULL) */
} mw_dims;

/* A complete tiny model of these dimensions, values from seed. */
void mw_tiny(mw_model *m, const mw_dims *d, uint64_t seed);
void mw_free(mw_model *m);

/* The item called name, or NULL; remove it (returns 1 when it existed). */
mw_item *mw_find(mw_model *m, const char *name);
int mw_remove(mw_model *m, const char *name);

/* Add a float32 item of the given shape filled with v. */
void mw_add_f32(mw_model *m, const char *name, int rows, int cols, float v);

/* The file bytes (malloc'd); *size set. */
uint8_t *mw_serialize(const mw_model *m, size_t *size);

/* Write bytes to path; 0 on success. */
int mw_write_file(const char *path, const void *data, size_t size);

/* A binary shortlist for vocabularies vs / vt: each source id s lists the
 * targets (s * 7 + j) % vt for j < per, firstNum first; checksum correct.
 * Returns malloc'd bytes, *size set. */
uint8_t *mw_shortlist(int vs, int vt, int per, int first, size_t *size);

/* Recompute a shortlist's checksum in place (after a deliberate edit). */
void mw_shortlist_fix_checksum(uint8_t *b, size_t size);

#endif

/*
 * mt_shortlist.h — the lexical shortlist of a Bergamot translation model
 * (lex.*.s2t.bin): for each source token the target tokens it may
 * translate to, so that the output layer scores a few hundred words
 * instead of the whole vocabulary. Reproduces marian-dev's
 * data::BinaryShortlistGenerator (src/data/shortlist.cpp): the binary
 * layout, its checksum and content checks, and generate(): the firstNum
 * most frequent target ids, the lists of the source ids, the source ids
 * themselves when the vocabulary is shared, padded with the next unused
 * ids to a multiple of 8, sorted.
 *
 * Layout (little-endian u64 header, then arrays):
 *   magic 0xF11A48D5013417F5, checksum, firstNum, bestNum,
 *   wordToOffsetSize, shortListsSize,
 *   u64 wordToOffset[wordToOffsetSize], u32 shortLists[shortListsSize]
 * The list of source id s is shortLists[wordToOffset[s] .. wordToOffset[s+1]).
 */
#ifndef TOLK_MT_SHORTLIST_H
#define TOLK_MT_SHORTLIST_H

#include "internal.h"
#include "mapfile.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tolk_mt_shortlist {
    tolk_mapfile map;
    const uint8_t *base;
    size_t size;
    uint64_t first_num, best_num;
    uint64_t n_offsets; /* source vocabulary size + 1 */
    uint64_t n_lists;
    const uint8_t *offsets; /* u64 [n_offsets] */
    const uint8_t *lists;   /* u32 [n_lists] */
    int vocab_tgt;
} tolk_mt_shortlist;

/* Load path and check it against the vocabulary sizes: the magic, the
 * sizes against the file size, the checksum, offsets non-decreasing and
 * inside the lists, every target id < vocab_tgt, one offset per source id
 * (+1). Errors name the file. *out: tolk_mt_shortlist_free. */
tolk_status tolk_mt_shortlist_load(tolk_ctx *ctx, const char *path, int vocab_src, int vocab_tgt,
                                   tolk_mt_shortlist **out);

/* The same from memory (borrowed; fuzzing, tests). */
tolk_status tolk_mt_shortlist_load_memory(tolk_ctx *ctx, const char *name, const void *data,
                                          size_t size, int vocab_src, int vocab_tgt,
                                          tolk_mt_shortlist **out);

void tolk_mt_shortlist_free(tolk_mt_shortlist *s);

/* The sorted target ids for source ids src [n] (each < the source
 * vocabulary, checked by the caller), as marian's generate(): shared = 1
 * adds the source ids themselves (Bergamot does when source and target
 * share one vocabulary). out must hold vocab_tgt ints; returns the count
 * (a multiple of 8 unless the vocabulary runs out). mark: scratch of
 * vocab_tgt + vocab_src bytes. */
int tolk_mt_shortlist_generate(const tolk_mt_shortlist *s, const int *src, int n, int shared,
                               unsigned char *mark, int *out);

#endif /* TOLK_MT_SHORTLIST_H */

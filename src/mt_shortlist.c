/*
 * mt_shortlist.c — Bergamot's binary lexical shortlist (mt_shortlist.h):
 * load, validate, and the per-sentence target vocabulary of marian-dev's
 * BinaryShortlistGenerator::generate.
 */
#include "mt_shortlist.h"

#include <stdlib.h>
#include <string.h>

#define SHORTLIST_MAGIC 0xF11A48D5013417F5ull
#define HEADER_BYTES 48

static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void tolk_mt_shortlist_free(tolk_mt_shortlist *s) {
    if (!s) return;
    tolk_mapfile_close(&s->map);
    free(s);
}

static tolk_status check(tolk_ctx *ctx, const char *path, tolk_mt_shortlist *s, int vocab_src,
                         int vocab_tgt) {
    const uint8_t *b = s->base;
    size_t size = s->size;
    if (size < HEADER_BYTES)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated shortlist (%zu bytes)", path, size);
    if (rd_u64(b) != SHORTLIST_MAGIC)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a binary lexical shortlist (bad magic)",
                         path);
    s->first_num = rd_u64(b + 16);
    s->best_num = rd_u64(b + 24);
    s->n_offsets = rd_u64(b + 32);
    s->n_lists = rd_u64(b + 40);
    if (s->n_offsets != (uint64_t)vocab_src + 1)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: %llu source offsets for a source vocabulary of %d", path,
                         (unsigned long long)s->n_offsets, vocab_src);
    if (s->n_lists > (uint64_t)1 << 40 || s->first_num > (uint64_t)1 << 31)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: absurd shortlist sizes", path);
    uint64_t want = HEADER_BYTES + s->n_offsets * 8 + s->n_lists * 4;
    if (want != size)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: the header says %llu bytes, the file has %zu (truncated?)", path,
                         (unsigned long long)want, size);
    /* checksum: boost-style hash_combine of the u64 words after it (std::hash
     * of an integer is the identity in libstdc++, as Marian was built) */
    uint64_t seed = 0;
    size_t words = (size - 16) / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = rd_u64(b + 16 + 8 * i);
        seed ^= v + 0x9e3779b9ull + (seed << 6) + (seed >> 2);
    }
    if (seed != rd_u64(b + 8))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: shortlist checksum mismatch (corrupted)", path);
    s->offsets = b + HEADER_BYTES;
    s->lists = s->offsets + s->n_offsets * 8;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < s->n_offsets; i++) {
        uint64_t o = rd_u64(s->offsets + 8 * i);
        if (o < prev || o > s->n_lists)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: shortlist offset %llu of source id %llu "
                             "is out of order or past the lists",
                             path, (unsigned long long)o, (unsigned long long)i);
        prev = o;
    }
    if (prev != s->n_lists)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: the last shortlist offset is %llu, not %llu",
                         path, (unsigned long long)prev, (unsigned long long)s->n_lists);
    for (uint64_t j = 0; j < s->n_lists; j++)
        if (rd_u32(s->lists + 4 * j) >= (uint32_t)vocab_tgt)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: shortlist entry %llu is target id %u, past the vocabulary of %d",
                             path, (unsigned long long)j, rd_u32(s->lists + 4 * j), vocab_tgt);
    s->vocab_tgt = vocab_tgt;
    return TOLK_OK;
}

tolk_status tolk_mt_shortlist_load_memory(tolk_ctx *ctx, const char *name, const void *data,
                                          size_t size, int vocab_src, int vocab_tgt,
                                          tolk_mt_shortlist **out) {
    if (!out || !name || (!data && size) || vocab_src < 1 || vocab_tgt < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "shortlist: bad arguments");
    *out = NULL;
    tolk_mt_shortlist *s = calloc(1, sizeof *s);
    if (!s) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    s->base = data;
    s->size = size;
    tolk_status st = check(ctx, name, s, vocab_src, vocab_tgt);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return TOLK_OK;
}

tolk_status tolk_mt_shortlist_load(tolk_ctx *ctx, const char *path, int vocab_src, int vocab_tgt,
                                   tolk_mt_shortlist **out) {
    if (!out || !path || vocab_src < 1 || vocab_tgt < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "shortlist: bad arguments");
    *out = NULL;
    tolk_mt_shortlist *s = calloc(1, sizeof *s);
    if (!s) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    tolk_status st = tolk_mapfile_open(ctx, path, 1, &s->map);
    if (!st) {
        s->base = s->map.data;
        s->size = s->map.size;
        st = check(ctx, path, s, vocab_src, vocab_tgt);
    }
    if (st) {
        tolk_mt_shortlist_free(s);
        return st;
    }
    *out = s;
    return TOLK_OK;
}

int tolk_mt_shortlist_generate(const tolk_mt_shortlist *s, const int *src, int n, int shared,
                               unsigned char *mark, int *out) {
    const int V = s->vocab_tgt;
    const int S = (int)(s->n_offsets - 1);
    unsigned char *tgt = mark, *seen = mark + V;
    memset(mark, 0, (size_t)V + (size_t)S);
    for (uint64_t i = 0; i < s->first_num && i < (uint64_t)V; i++)
        tgt[i] = 1;
    for (int i = 0; i < n; i++) {
        int w = src[i];
        if (w < 0 || w >= S) continue;
        if (shared && w < V) tgt[w] = 1;
        if (seen[w]) continue;
        seen[w] = 1;
        uint64_t a = rd_u64(s->offsets + 8 * (size_t)w), b = rd_u64(s->offsets + 8 * (size_t)w + 8);
        for (uint64_t j = a; j < b; j++)
            tgt[rd_u32(s->lists + 4 * j)] = 1;
    }
    int count = 0;
    for (int i = 0; i < V; i++)
        count += tgt[i];
    for (int i = (int)(s->first_num < (uint64_t)V ? s->first_num : (uint64_t)V);
         i < V && count % 8 != 0; i++)
        if (!tgt[i]) {
            tgt[i] = 1;
            count++;
        }
    int k = 0;
    for (int i = 0; i < V; i++)
        if (tgt[i]) out[k++] = i;
    return k;
}

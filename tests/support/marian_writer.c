/*
 * marian_writer.c — tiny Marian models and shortlists for the tests (see
 * marian_writer.h). The byte layout is that of marian-dev's
 * io::binary::saveItems and data::BinaryShortlistGenerator::saveBlobToFile.
 */
#include "marian_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng;
static float rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static mw_item *push(mw_model *m, const char *name, uint32_t type, int ndim, const int *shape,
                     size_t bytes) {
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->items = realloc(m->items, (size_t)m->cap * sizeof *m->items);
        if (!m->items) abort();
    }
    mw_item *it = &m->items[m->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->type = type;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
    it->bytes = bytes;
    it->data = calloc(bytes ? bytes : 1, 1);
    if (!it->data) abort();
    return it;
}

void mw_add_f32(mw_model *m, const char *name, int rows, int cols, float v) {
    int shape[2] = {rows, cols};
    mw_item *it = push(m, name, 0x404, 2, shape, (size_t)rows * (size_t)cols * 4);
    for (int i = 0; i < rows * cols; i++)
        memcpy(it->data + 4 * (size_t)i, &v, 4);
}

static void add_vec(mw_model *m, const char *name, int n, float base, float spread);

/* A matrix [rows, cols] (Marian [in, out]) of random values * scale. */
static void add_matrix(mw_model *m, const char *name, int rows, int cols, float scale, int int8,
                       int embedding) {
    int shape[2] = {rows, cols};
    const size_t n = (size_t)rows * (size_t)cols;
    if (!int8) {
        mw_item *it = push(m, name, 0x404, 2, shape, n * 4);
        for (size_t i = 0; i < n; i++) {
            float v = rnd() * scale;
            memcpy(it->data + 4 * i, &v, 4);
        }
        return;
    }
    /* intgemm8: int8 of the transposed matrix (not for embeddings), then
     * the multiplier; padded to a 256-byte multiple like Marian's allocator */
    size_t bytes = (n + 4 + 255) / 256 * 256;
    mw_item *it = push(m, name, 0x4101, 2, shape, bytes);
    const float qm = 127.0f / scale;
    for (size_t i = 0; i < n; i++) {
        float v = rnd() * scale * qm;
        it->data[i] = (uint8_t)(int8_t)lrintf(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    (void)embedding; /* random values: transposing changes nothing measurable */
    memcpy(it->data + n, &qm, 4);
    if (!embedding) { /* the activation scale of int8shiftAlphaAll models */
        char an[128];
        snprintf(an, sizeof an, "%s_QuantMultA", name);
        add_vec(m, an, 1, 20.0f, 0.0f);
    }
}

static void add_vec(mw_model *m, const char *name, int n, float base, float spread) {
    int shape[2] = {1, n};
    mw_item *it = push(m, name, 0x404, 2, shape, (size_t)n * 4);
    for (int i = 0; i < n; i++) {
        float v = base + rnd() * spread;
        memcpy(it->data + 4 * (size_t)i, &v, 4);
    }
}

void mw_tiny(mw_model *m, const mw_dims *d, uint64_t seed) {
    memset(m, 0, sizeof *m);
    rng = seed * 2654435761u + 88172645463325252ull;
    const int D = d->dim, F = d->ffn;
    char nm[96];
    add_matrix(m, "Wemb", d->vocab, D, 0.5f, d->int8, 1);
    add_vec(m, "decoder_ff_logit_out_b", d->vocab, 0.0f, 1.0f);
    static const char *const att[4] = {"q", "k", "v", "o"};
    for (int l = 1; l <= d->enc; l++) {
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "encoder_l%d_self_W%s", l, att[i]);
            add_matrix(m, nm, D, D, 0.3f, d->int8, 0);
            snprintf(nm, sizeof nm, "encoder_l%d_self_b%s", l, att[i]);
            add_vec(m, nm, D, 0.0f, 0.1f);
        }
        snprintf(nm, sizeof nm, "encoder_l%d_self_Wo_ln_scale", l), add_vec(m, nm, D, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "encoder_l%d_self_Wo_ln_bias", l), add_vec(m, nm, D, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_W1", l), add_matrix(m, nm, D, F, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_b1", l), add_vec(m, nm, F, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_W2", l), add_matrix(m, nm, F, D, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_b2", l), add_vec(m, nm, D, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_ffn_ln_scale", l), add_vec(m, nm, D, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "encoder_l%d_ffn_ffn_ln_bias", l), add_vec(m, nm, D, 0.0f, 0.1f);
    }
    for (int l = 1; l <= d->dec; l++) {
        snprintf(nm, sizeof nm, "decoder_l%d_rnn_W", l), add_matrix(m, nm, D, D, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "decoder_l%d_rnn_Wf", l), add_matrix(m, nm, D, D, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "decoder_l%d_rnn_bf", l), add_vec(m, nm, D, 0.0f, 0.5f);
        snprintf(nm, sizeof nm, "decoder_l%d_rnn_ffn_ln_scale", l), add_vec(m, nm, D, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_rnn_ffn_ln_bias", l), add_vec(m, nm, D, 0.0f, 0.1f);
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "decoder_l%d_context_W%s", l, att[i]);
            add_matrix(m, nm, D, D, 0.3f, d->int8, 0);
            snprintf(nm, sizeof nm, "decoder_l%d_context_b%s", l, att[i]);
            add_vec(m, nm, D, 0.0f, 0.1f);
        }
        snprintf(nm, sizeof nm, "decoder_l%d_context_Wo_ln_scale", l);
        add_vec(m, nm, D, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_context_Wo_ln_bias", l);
        add_vec(m, nm, D, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_W1", l), add_matrix(m, nm, D, F, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_b1", l), add_vec(m, nm, F, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_W2", l), add_matrix(m, nm, F, D, 0.3f, d->int8, 0);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_b2", l), add_vec(m, nm, D, 0.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_ffn_ln_scale", l), add_vec(m, nm, D, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "decoder_l%d_ffn_ffn_ln_bias", l), add_vec(m, nm, D, 0.0f, 0.1f);
    }
    char yml[2048];
    int n = snprintf(yml, sizeof yml,
                     "dec-cell: ssru\ndec-depth: %d\ndim-emb: %d\ndim-vocabs:\n  - %d\n  - %d\n"
                     "enc-depth: %d\ntied-embeddings-all: true\ntransformer-decoder-autoreg: rnn\n"
                     "transformer-dim-ffn: %d\ntransformer-ffn-activation: relu\n"
                     "transformer-ffn-depth: 2\ntransformer-heads: %d\n"
                     "transformer-postprocess: dan\ntransformer-postprocess-emb: d\n"
                     "transformer-preprocess: \"\"\ntype: transformer\n%s",
                     d->dec, D, d->vocab, d->vocab, d->enc, F, d->heads,
                     d->yml_extra ? d->yml_extra : "");
    int shape[1] = {n};
    mw_item *y = push(m, "special:model.yml", 0x101, 1, shape, (size_t)n);
    memcpy(y->data, yml, (size_t)n);
}

void mw_free(mw_model *m) {
    for (int i = 0; i < m->n; i++)
        free(m->items[i].data);
    free(m->items);
    memset(m, 0, sizeof *m);
}

mw_item *mw_find(mw_model *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->items[i].name, name)) return &m->items[i];
    return NULL;
}

int mw_remove(mw_model *m, const char *name) {
    mw_item *it = mw_find(m, name);
    if (!it) return 0;
    free(it->data);
    int i = (int)(it - m->items);
    memmove(it, it + 1, (size_t)(m->n - i - 1) * sizeof *it);
    m->n--;
    return 1;
}

static void put64(uint8_t **p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

uint8_t *mw_serialize(const mw_model *m, size_t *size) {
    size_t hdr = 16 + 32 * (size_t)m->n;
    for (int i = 0; i < m->n; i++)
        hdr += strlen(m->items[i].name) + 1 + 4 * (size_t)m->items[i].ndim;
    size_t next = ((hdr + 8) / 256 + 1) * 256, pad = next - hdr - 8;
    size_t total = next;
    for (int i = 0; i < m->n; i++)
        total += m->items[i].bytes;
    uint8_t *b = calloc(total, 1), *p = b;
    if (!b) abort();
    put64(&p, 1);
    put64(&p, (uint64_t)m->n);
    for (int i = 0; i < m->n; i++) {
        put64(&p, strlen(m->items[i].name) + 1);
        put64(&p, m->items[i].type);
        put64(&p, (uint64_t)m->items[i].ndim);
        put64(&p, m->items[i].bytes);
    }
    for (int i = 0; i < m->n; i++) {
        size_t l = strlen(m->items[i].name) + 1;
        memcpy(p, m->items[i].name, l);
        p += l;
    }
    for (int i = 0; i < m->n; i++)
        for (int d = 0; d < m->items[i].ndim; d++) {
            int32_t v = m->items[i].shape[d];
            memcpy(p, &v, 4);
            p += 4;
        }
    put64(&p, pad);
    p += pad;
    for (int i = 0; i < m->n; i++) {
        memcpy(p, m->items[i].data, m->items[i].bytes);
        p += m->items[i].bytes;
    }
    *size = total;
    return b;
}

int mw_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    return (fclose(f) != 0 || w != size) ? -1 : 0;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void mw_shortlist_fix_checksum(uint8_t *b, size_t size) {
    uint64_t seed = 0;
    for (size_t i = 0; i < (size - 16) / 8; i++)
        seed ^= rd64(b + 16 + 8 * i) + 0x9e3779b9ull + (seed << 6) + (seed >> 2);
    uint8_t *p = b + 8;
    put64(&p, seed);
}

uint8_t *mw_shortlist(int vs, int vt, int per, int first, size_t *size) {
    size_t n_off = (size_t)vs + 1, n_list = (size_t)vs * (size_t)per;
    size_t total = 48 + 8 * n_off + 4 * n_list;
    uint8_t *b = calloc(total, 1), *p = b;
    if (!b) abort();
    put64(&p, 0xF11A48D5013417F5ull);
    put64(&p, 0);
    put64(&p, (uint64_t)first);
    put64(&p, (uint64_t)first);
    put64(&p, n_off);
    put64(&p, n_list);
    for (size_t s = 0; s < n_off; s++)
        put64(&p, s * (size_t)per);
    for (int s = 0; s < vs; s++)
        for (int j = 0; j < per; j++) {
            uint32_t t = (uint32_t)((s * 7 + j) % vt);
            memcpy(p, &t, 4);
            p += 4;
        }
    mw_shortlist_fix_checksum(b, total);
    *size = total;
    return b;
}

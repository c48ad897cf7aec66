/*
 * marian_model.c — read and validate a Marian binary model (see
 * marian_model.h for the layout). Reproduces the reading side of
 * marian-dev's io::binary::loadItems (src/common/binary.cpp) and of
 * cpu::integer::prepareAndTransposeB / unquantizeWemb for the intgemm8
 * items, and the model options of models/transformer.h that the Bergamot
 * student models use (post-norm "dan", SSRU decoder, tied embeddings).
 *
 * Unlike Marian, which trusts the file, every count, length and offset is
 * checked before it is used, so a truncated or hostile file gives a clear
 * error naming the file and the item, never a read outside the buffer.
 */
#include "marian_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YML_NAME "special:model.yml"
#define YML_MAX_BYTES (1u << 20)

/* Little-endian loads from possibly unaligned bytes. */
static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static int32_t rd_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}
static float rd_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)rd_i32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Bytes per element of a Marian type, 0 for types tolk does not read. */
static size_t type_size(uint32_t t) {
    switch (t) {
    case TOLK_MARIAN_FLOAT32:
        return 4;
    case TOLK_MARIAN_FLOAT16:
        return 2;
    case TOLK_MARIAN_INTGEMM8:
    case TOLK_MARIAN_INT8:
    case 0x0201u: /* uint8 */
        return 1;
    case 0x0102u: /* int16 */
    case 0x0202u: /* uint16 */
        return 2;
    case 0x0104u: /* int32 */
    case 0x0204u: /* uint32 */
        return 4;
    case 0x0108u: /* int64 */
    case 0x0208u: /* uint64 */
    case 0x0408u: /* float64 */
        return 8;
    default:
        return 0;
    }
}

static const char *type_name(uint32_t t) {
    switch (t) {
    case TOLK_MARIAN_FLOAT32:
        return "float32";
    case TOLK_MARIAN_FLOAT16:
        return "float16";
    case TOLK_MARIAN_INTGEMM8:
        return "intgemm8";
    case TOLK_MARIAN_INTGEMM16:
        return "intgemm16";
    case TOLK_MARIAN_INT8:
        return "int8";
    default:
        return "other";
    }
}

static int item_cmp(const void *a, const void *b) {
    return strcmp(((const tolk_marian_item *)a)->name, ((const tolk_marian_item *)b)->name);
}

const tolk_marian_item *tolk_marian_get(const tolk_marian_model *m, const char *name) {
    if (!m || !name) return NULL;
    tolk_marian_item key;
    memset(&key, 0, sizeof key);
    key.name = name;
    return bsearch(&key, m->items, (size_t)m->n_items, sizeof *m->items, item_cmp);
}

const tolk_marian_item *tolk_marian_getf(const tolk_marian_model *m, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) return NULL;
    return tolk_marian_get(m, name);
}

void tolk_marian_free(tolk_marian_model *m) {
    if (!m) return;
    tolk_mapfile_close(&m->map);
    free(m->items);
    free(m->path);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* The container                                                            */
/* ------------------------------------------------------------------------ */

/* Parse the item table of m->base[0, m->size). */
static tolk_status parse_items(tolk_ctx *ctx, tolk_marian_model *m) {
    const char *path = m->path;
    const uint8_t *b = m->base;
    size_t size = m->size;
    if (size < 16)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: truncated Marian model (%zu bytes; the header needs 16)", path, size);
    uint64_t version = rd_u64(b), n = rd_u64(b + 8);
    if (version != 1)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a Marian binary model (version field %llu, expected 1)", path,
                         (unsigned long long)version);
    if (n == 0 || n > TOLK_MARIAN_MAX_ITEMS)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: absurd number of items %llu (1 .. %d)", path,
                         (unsigned long long)n, TOLK_MARIAN_MAX_ITEMS);
    size_t off = 16;
    if ((size - off) / 32 < n)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: truncated: %llu item headers do not fit in %zu bytes", path,
                         (unsigned long long)n, size);
    const uint8_t *hdr = b + off;
    off += (size_t)n * 32;
    m->items = calloc((size_t)n, sizeof *m->items);
    if (!m->items) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    m->n_items = (int)n;
    /* names */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = rd_u64(hdr + i * 32);
        if (len < 2 || len > TOLK_MARIAN_MAX_NAME)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: item %llu: absurd name length %llu", path,
                             (unsigned long long)i, (unsigned long long)len);
        if (size - off < len)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated in the name of item %llu", path,
                             (unsigned long long)i);
        const char *name = (const char *)b + off;
        if (memchr(name, '\0', (size_t)len) != name + len - 1)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: item %llu: name is not one NUL-terminated string of %llu bytes",
                             path, (unsigned long long)i, (unsigned long long)len);
        m->items[i].name = name;
        off += (size_t)len;
    }
    /* shapes */
    for (uint64_t i = 0; i < n; i++) {
        tolk_marian_item *it = &m->items[i];
        uint64_t nd = rd_u64(hdr + i * 32 + 16);
        if (nd < 1 || nd > TOLK_MARIAN_MAX_DIMS)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: %llu dimensions (1 .. %d)", path,
                             it->name, (unsigned long long)nd, TOLK_MARIAN_MAX_DIMS);
        if ((size - off) / 4 < nd)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated in the shape of %s", path,
                             it->name);
        it->ndim = (int)nd;
        int64_t elems = 1;
        for (int d = 0; d < it->ndim; d++) {
            int32_t v = rd_i32(b + off + 4 * (size_t)d);
            if (v < 1 || v > TOLK_MARIAN_MAX_DIM)
                return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: dimension %d is %d (1 .. %d)", path,
                                 it->name, d, (int)v, TOLK_MARIAN_MAX_DIM);
            it->shape[d] = v;
            elems *= v;
            if (elems > TOLK_MARIAN_MAX_ELEMS)
                return tolk_fail(ctx, TOLK_ERR_FORMAT,
                                 "%s: %s: absurd size (more than %lld "
                                 "elements)",
                                 path, it->name, (long long)TOLK_MARIAN_MAX_ELEMS);
        }
        it->cols = it->shape[it->ndim - 1];
        it->rows = elems / it->cols;
        off += 4 * (size_t)nd;
    }
    /* padding to the data */
    if (size - off < 8)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated before the data offset", path);
    uint64_t pad = rd_u64(b + off);
    off += 8;
    if (pad > size - off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: truncated: data padding of %llu bytes past the end of the file", path,
                         (unsigned long long)pad);
    off += (size_t)pad;
    /* data blocks, in order, each at least what its shape needs */
    for (uint64_t i = 0; i < n; i++) {
        tolk_marian_item *it = &m->items[i];
        uint64_t type = rd_u64(hdr + i * 32 + 8), len = rd_u64(hdr + i * 32 + 24);
        if (type > 0xffffu || type_size((uint32_t)type) == 0) {
            if (type == TOLK_MARIAN_INTGEMM16)
                return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                                 "%s: %s: intgemm16 weights are not supported (int8 and float32 "
                                 "are)",
                                 path, it->name);
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: unknown element type 0x%llx", path,
                             it->name, (unsigned long long)type);
        }
        it->type = (uint32_t)type;
        uint64_t need = (uint64_t)(it->rows * it->cols) * type_size(it->type);
        if (it->type == TOLK_MARIAN_INTGEMM8) need += 4; /* the multiplier after the matrix */
        if (len < need)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: %llu data bytes, the shape needs %llu",
                             path, it->name, (unsigned long long)len, (unsigned long long)need);
        if (len > size - off)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: truncated in the data of %s (%llu bytes at offset %zu, file "
                             "%zu bytes)",
                             path, it->name, (unsigned long long)len, off, size);
        it->data = b + off;
        it->bytes = len;
        if (it->type == TOLK_MARIAN_INTGEMM8)
            it->quant_mult = rd_f32(it->data + (size_t)(it->rows * it->cols));
        off += (size_t)len;
    }
    qsort(m->items, (size_t)n, sizeof *m->items, item_cmp);
    for (int i = 1; i < m->n_items; i++)
        if (!strcmp(m->items[i - 1].name, m->items[i].name))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: item %s appears twice", path,
                             m->items[i].name);
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* model.yml: the scalar keys the network needs                             */
/* ------------------------------------------------------------------------ */

int tolk_marian_yml_get(const char *yml, size_t len, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key), i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && yml[e] != '\n')
            e++;
        if (e - i > kl && !memcmp(yml + i, key, kl) && yml[i + kl] == ':') {
            size_t v = i + kl + 1;
            while (v < e && (yml[v] == ' ' || yml[v] == '\t'))
                v++;
            size_t ve = e;
            while (ve > v && (yml[ve - 1] == ' ' || yml[ve - 1] == '\r'))
                ve--;
            if (ve - v >= 2 && (yml[v] == '"' || yml[v] == '\'') && yml[ve - 1] == yml[v])
                v++, ve--;
            size_t n = 0;
            if (ve > v) {
                n = ve - v < cap - 1 ? ve - v : cap - 1;
                memcpy(buf, yml + v, n);
            } else { /* a list on the following lines */
                size_t j = e + 1;
                while (j < len) {
                    size_t je = j;
                    while (je < len && yml[je] != '\n')
                        je++;
                    size_t p = j;
                    while (p < je && yml[p] == ' ')
                        p++;
                    if (p >= je || yml[p] != '-') break;
                    p++;
                    while (p < je && yml[p] == ' ')
                        p++;
                    size_t pe = je;
                    while (pe > p && (yml[pe - 1] == ' ' || yml[pe - 1] == '\r'))
                        pe--;
                    if (n && n < cap - 1) buf[n++] = ',';
                    size_t c = pe - p < cap - 1 - n ? pe - p : cap - 1 - n;
                    memcpy(buf + n, yml + p, c);
                    n += c;
                    j = je + 1;
                }
            }
            buf[n] = '\0';
            return 1;
        }
        i = e + 1;
    }
    return 0;
}

/* An integer option in [lo, hi]. */
static tolk_status yml_int(tolk_ctx *ctx, const char *path, const char *yml, size_t len,
                           const char *key, int lo, int hi, int *out) {
    char buf[64], *end;
    if (!tolk_marian_yml_get(yml, len, key, buf, sizeof buf))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: model.yml has no '%s'", path, key);
    long v = strtol(buf, &end, 10);
    if (end == buf || *end || v < lo || v > hi)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: model.yml: %s is '%s' (an integer %d .. %d)",
                         path, key, buf, lo, hi);
    *out = (int)v;
    return TOLK_OK;
}

/* A boolean option (absent: def). */
static int yml_bool(const char *yml, size_t len, const char *key, int def) {
    char buf[16];
    if (!tolk_marian_yml_get(yml, len, key, buf, sizeof buf)) return def;
    return !strcmp(buf, "true") || !strcmp(buf, "True") || !strcmp(buf, "1");
}

/* The string option must be one of the accepted values. */
static tolk_status yml_expect(tolk_ctx *ctx, const char *path, const char *yml, size_t len,
                              const char *key, const char *def, const char *const *ok, char *val,
                              size_t cap) {
    if (!tolk_marian_yml_get(yml, len, key, val, cap)) snprintf(val, cap, "%s", def);
    for (int i = 0; ok[i]; i++)
        if (!strcmp(val, ok[i])) return TOLK_OK;
    return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                     "%s: model.yml: %s '%s' is not supported (tolk runs the Bergamot students: "
                     "%s%s%s)",
                     path, key, val, ok[0], ok[1] ? " or " : "", ok[1] ? ok[1] : "");
}

static tolk_status parse_config(tolk_ctx *ctx, tolk_marian_model *m) {
    const char *path = m->path;
    const tolk_marian_item *y = tolk_marian_get(m, YML_NAME);
    if (!y)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: no '%s' item (not a Marian model?)", path,
                         YML_NAME);
    if (y->bytes > YML_MAX_BYTES)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: absurd size %llu bytes", path, YML_NAME,
                         (unsigned long long)y->bytes);
    const char *yml = (const char *)y->data;
    size_t len = (size_t)y->bytes;
    if (memchr(yml, '\0', len)) len = (size_t)((const char *)memchr(yml, '\0', len) - yml);
    tolk_marian_config *c = &m->cfg;
    char val[256];
    static const char *const t_type[] = {"transformer", NULL};
    static const char *const t_autoreg[] = {"rnn", NULL};
    static const char *const t_cell[] = {"ssru", NULL};
    static const char *const t_post[] = {"dan", NULL};
    static const char *const t_empty[] = {"", NULL};
    static const char *const t_act[] = {"relu", "swish", NULL};
    tolk_status st;
    if ((st = yml_expect(ctx, path, yml, len, "type", "", t_type, val, sizeof val)) ||
        (st = yml_expect(ctx, path, yml, len, "transformer-decoder-autoreg", "self-attention",
                         t_autoreg, val, sizeof val)) ||
        (st = yml_expect(ctx, path, yml, len, "dec-cell", "gru", t_cell, val, sizeof val)) ||
        (st = yml_expect(ctx, path, yml, len, "transformer-postprocess", "dan", t_post, val,
                         sizeof val)) ||
        (st = yml_expect(ctx, path, yml, len, "transformer-preprocess", "", t_empty, val,
                         sizeof val)) ||
        (st = yml_expect(ctx, path, yml, len, "transformer-postprocess-top", "", t_empty, val,
                         sizeof val)))
        return st;
    if ((st = yml_expect(ctx, path, yml, len, "transformer-ffn-activation", "swish", t_act, val,
                         sizeof val)))
        return st;
    c->relu = !strcmp(val, "relu");
    c->ssru = 1;
    char emb_ops[16];
    if (!tolk_marian_yml_get(yml, len, "transformer-postprocess-emb", emb_ops, sizeof emb_ops))
        snprintf(emb_ops, sizeof emb_ops, "d");
    if (strchr(emb_ops, 'n') || strchr(emb_ops, 'a'))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: model.yml: transformer-postprocess-emb '%s' is not supported", path,
                         emb_ops);
    if (yml_bool(yml, len, "transformer-train-position-embeddings", 0) ||
        yml_bool(yml, len, "transformer-train-positions", 0))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: model.yml: trained position embeddings are not supported", path);
    if (yml_bool(yml, len, "transformer-no-projection", 0) ||
        yml_bool(yml, len, "transformer-pool", 0) || yml_bool(yml, len, "layer-normalization", 0))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: model.yml: a transformer variant tolk does not run (no-projection, "
                         "pool or SSRU layer normalisation)",
                         path);
    if ((st = yml_int(ctx, path, yml, len, "dim-emb", 8, 4096, &c->dim)) ||
        (st = yml_int(ctx, path, yml, len, "transformer-heads", 1, 64, &c->heads)) ||
        (st = yml_int(ctx, path, yml, len, "transformer-dim-ffn", 1, 65536, &c->ffn)) ||
        (st = yml_int(ctx, path, yml, len, "enc-depth", 1, 64, &c->enc_depth)) ||
        (st = yml_int(ctx, path, yml, len, "dec-depth", 1, 64, &c->dec_depth)))
        return st;
    if (tolk_marian_yml_get(yml, len, "transformer-ffn-depth", val, sizeof val)) {
        if ((st = yml_int(ctx, path, yml, len, "transformer-ffn-depth", 2, 2, &c->ffn_depth)))
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: model.yml: transformer-ffn-depth %s (tolk runs depth 2)", path,
                             val);
    }
    c->ffn_depth = 2;
    if (c->dim % c->heads)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: model.yml: dim-emb %d is not a multiple of "
                         "transformer-heads %d",
                         path, c->dim, c->heads);
    if (!tolk_marian_yml_get(yml, len, "dim-vocabs", val, sizeof val) ||
        sscanf(val, "%d,%d", &c->vocab_src, &c->vocab_tgt) != 2 || c->vocab_src < 8 ||
        c->vocab_tgt < 8 || c->vocab_src > (1 << 22) || c->vocab_tgt > (1 << 22))
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: model.yml: dim-vocabs must list two sizes (8 .. 4194304)", path);
    c->tied_all = yml_bool(yml, len, "tied-embeddings-all", 0);
    c->tied = yml_bool(yml, len, "tied-embeddings", 0);
    if (!c->tied_all && !c->tied)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: model.yml: untied output layers are not supported (tied-embeddings "
                         "or tied-embeddings-all)",
                         path);
    if (c->tied_all && c->vocab_src != c->vocab_tgt)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: model.yml: tied-embeddings-all with vocabularies of %d and %d", path,
                         c->vocab_src, c->vocab_tgt);
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* The tensors the network needs                                            */
/* ------------------------------------------------------------------------ */

/* Check item name: a matrix [rows, cols] (float32 or intgemm8 with a sane
 * multiplier) or, vector = 1, a float32 [1, cols]. */
static tolk_status need(tolk_ctx *ctx, const tolk_marian_model *m, int vector, int64_t rows,
                        int64_t cols, const char *fmt, ...) TOLK_PRINTF(6, 7);
static tolk_status need(tolk_ctx *ctx, const tolk_marian_model *m, int vector, int64_t rows,
                        int64_t cols, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const tolk_marian_item *it = tolk_marian_get(m, name);
    if (!it) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: missing tensor %s", m->path, name);
    if (it->rows != rows || it->cols != cols || it->ndim > 2)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: %s has shape [%lld, %lld] (%d dims), expected [%lld, %lld]", m->path,
                         name, (long long)it->rows, (long long)it->cols, it->ndim, (long long)rows,
                         (long long)cols);
    if (vector ? it->type != TOLK_MARIAN_FLOAT32
               : it->type != TOLK_MARIAN_FLOAT32 && it->type != TOLK_MARIAN_INTGEMM8)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: %s: element type %s is not supported "
                         "(%s)",
                         m->path, name, type_name(it->type),
                         vector ? "float32" : "float32 or intgemm8");
    if (it->type == TOLK_MARIAN_INTGEMM8 &&
        !(isfinite(it->quant_mult) && it->quant_mult > 1e-20f && it->quant_mult < 1e20f))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s: bad int8 multiplier %g", m->path, name,
                         (double)it->quant_mult);
    return TOLK_OK;
}

static tolk_status check_tensors(tolk_ctx *ctx, const tolk_marian_model *m) {
    const tolk_marian_config *c = &m->cfg;
    const int64_t d = c->dim, f = c->ffn;
    tolk_status st;
    if (c->tied_all) {
        if ((st = need(ctx, m, 0, c->vocab_src, d, "Wemb"))) return st;
    } else {
        if ((st = need(ctx, m, 0, c->vocab_src, d, "encoder_Wemb")) ||
            (st = need(ctx, m, 0, c->vocab_tgt, d, "decoder_Wemb")))
            return st;
    }
    /* the output bias is optional */
    const tolk_marian_item *ob = tolk_marian_get(m, "decoder_ff_logit_out_b");
    if (ob && (st = need(ctx, m, 1, 1, c->vocab_tgt, "decoder_ff_logit_out_b"))) return st;
    static const char *const att[4] = {"q", "k", "v", "o"};
    for (int l = 1; l <= c->enc_depth; l++) {
        for (int i = 0; i < 4; i++)
            if ((st = need(ctx, m, 0, d, d, "encoder_l%d_self_W%s", l, att[i])) ||
                (st = need(ctx, m, 1, 1, d, "encoder_l%d_self_b%s", l, att[i])))
                return st;
        if ((st = need(ctx, m, 1, 1, d, "encoder_l%d_self_Wo_ln_scale", l)) ||
            (st = need(ctx, m, 1, 1, d, "encoder_l%d_self_Wo_ln_bias", l)) ||
            (st = need(ctx, m, 0, d, f, "encoder_l%d_ffn_W1", l)) ||
            (st = need(ctx, m, 1, 1, f, "encoder_l%d_ffn_b1", l)) ||
            (st = need(ctx, m, 0, f, d, "encoder_l%d_ffn_W2", l)) ||
            (st = need(ctx, m, 1, 1, d, "encoder_l%d_ffn_b2", l)) ||
            (st = need(ctx, m, 1, 1, d, "encoder_l%d_ffn_ffn_ln_scale", l)) ||
            (st = need(ctx, m, 1, 1, d, "encoder_l%d_ffn_ffn_ln_bias", l)))
            return st;
    }
    for (int l = 1; l <= c->dec_depth; l++) {
        if ((st = need(ctx, m, 0, d, d, "decoder_l%d_rnn_W", l)) ||
            (st = need(ctx, m, 0, d, d, "decoder_l%d_rnn_Wf", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_rnn_bf", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_rnn_ffn_ln_scale", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_rnn_ffn_ln_bias", l)))
            return st;
        for (int i = 0; i < 4; i++)
            if ((st = need(ctx, m, 0, d, d, "decoder_l%d_context_W%s", l, att[i])) ||
                (st = need(ctx, m, 1, 1, d, "decoder_l%d_context_b%s", l, att[i])))
                return st;
        if ((st = need(ctx, m, 1, 1, d, "decoder_l%d_context_Wo_ln_scale", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_context_Wo_ln_bias", l)) ||
            (st = need(ctx, m, 0, d, f, "decoder_l%d_ffn_W1", l)) ||
            (st = need(ctx, m, 1, 1, f, "decoder_l%d_ffn_b1", l)) ||
            (st = need(ctx, m, 0, f, d, "decoder_l%d_ffn_W2", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_ffn_b2", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_ffn_ffn_ln_scale", l)) ||
            (st = need(ctx, m, 1, 1, d, "decoder_l%d_ffn_ffn_ln_bias", l)))
            return st;
    }
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

static tolk_status finish(tolk_ctx *ctx, tolk_marian_model *m) {
    tolk_status st = parse_items(ctx, m);
    if (!st) st = parse_config(ctx, m);
    if (!st) st = check_tensors(ctx, m);
    if (!st) m->cfg.output_bias = tolk_marian_get(m, "decoder_ff_logit_out_b") != NULL;
    return st;
}

tolk_status tolk_marian_load_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                    tolk_marian_model **out) {
    if (!out || !name || (!data && size))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "marian: NULL argument");
    *out = NULL;
    tolk_marian_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(name))) {
        free(m);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    }
    m->base = data;
    m->size = size;
    tolk_status st = finish(ctx, m);
    if (st) {
        tolk_marian_free(m);
        return st;
    }
    *out = m;
    return TOLK_OK;
}

tolk_status tolk_marian_load(tolk_ctx *ctx, const char *path, int use_mmap,
                             tolk_marian_model **out) {
    if (!out || !path) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "marian: NULL argument");
    *out = NULL;
    tolk_marian_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    tolk_status st = tolk_mapfile_open(ctx, path, use_mmap, &m->map);
    if (st) {
        tolk_marian_free(m);
        return st;
    }
    m->base = m->map.data;
    m->size = m->map.size;
    st = finish(ctx, m);
    if (st) {
        tolk_marian_free(m);
        return st;
    }
    *out = m;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Conversion                                                               */
/* ------------------------------------------------------------------------ */

void tolk_marian_matrix_f32(const tolk_marian_item *it, int embedding, float *dst, int64_t *rows,
                            int64_t *cols) {
    const int64_t R = it->rows, C = it->cols; /* as the header states them */
    if (it->type == TOLK_MARIAN_INTGEMM8) {
        /* stored [C, R] (transposed) for weights, [R, C] for embeddings:
         * either way the bytes are already tolk's [out, in] */
        const int8_t *q = (const int8_t *)it->data;
        const float inv = 1.0f / it->quant_mult;
        const size_t n = (size_t)(R * C);
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)q[i] * inv;
        *rows = embedding ? R : C;
        *cols = embedding ? C : R;
        return;
    }
    /* float32 [in = R, out = C]: transpose to [out, in] (embeddings as stored) */
    const uint8_t *p = it->data;
    if (embedding) {
        for (int64_t i = 0; i < R * C; i++)
            dst[i] = rd_f32(p + 4 * (size_t)i);
        *rows = R;
        *cols = C;
        return;
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            dst[(size_t)(c * R + r)] = rd_f32(p + 4 * (size_t)(r * C + c));
    *rows = C;
    *cols = R;
}

void tolk_marian_vector_f32(const tolk_marian_item *it, float *dst) {
    for (int64_t i = 0; i < it->rows * it->cols; i++)
        dst[i] = rd_f32(it->data + 4 * (size_t)i);
}

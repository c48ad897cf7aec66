/*
 * model_ct2.c — load a CTranslate2 Whisper model directory into the uniform
 * weights table (weights.h).
 *
 * Reproduces the reading side of CTranslate2's model.bin serialisation
 * (python/ctranslate2/specs/model_spec.py, src/models/model.cc), binary
 * versions 1 to 6, little-endian:
 *
 *   u32 binary_version
 *   (version >= 2) str spec_name, u32 spec_revision
 *   u32 n_variables, then per variable:
 *       str name, u8 rank, u32 dims[rank],
 *       version >= 4: u8 dtype id (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16),
 *                     u32 n_bytes
 *       version <  4: u8 item size (4 f32, 2 i16, 1 i8), u32 n_elements
 *       n_bytes of data (no alignment padding)
 *   (version >= 3) u32 n_aliases, then per alias: str alias, str target
 *   where str = u16 length (NUL included) + bytes.
 *
 * The Whisper spec (specs/whisper_spec.py) names variables
 * encoder/conv1/weight, encoder/layer_N/self_attention/linear_0/weight
 * (fused q,k,v [3d, d]), decoder/layer_N/attention/linear_1/weight (fused
 * cross k,v [2d, d]), .../layer_norm/gamma|beta, int8 weights carry a
 * "<name>_scale" [rows] variable; they are mapped to openai-whisper names
 * with fused tensors presented as zero-copy row slices. config.json gives
 * suppress_ids, suppress_ids_begin, lang_ids, alignment_heads;
 * vocabulary.txt (one token per line) or vocabulary.json (an array) the
 * tokens in GPT-2 byte-to-unicode form.
 */
#include "internal.h"
#include "mapfile.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT2_MAX_VERSION 6
#define CT2_MAX_NAME 1024

enum { CT2_F32 = 0, CT2_I8 = 1, CT2_I16 = 2, CT2_I32 = 3, CT2_F16 = 4, CT2_BF16 = 5 };

typedef struct ct2_var {
    char *name; /* heap copy */
    int rank;
    int64_t dims[8];
    int dtype;           /* CT2 type id */
    const uint8_t *data; /* into the file */
    uint64_t nbytes;
    const char *alias_of; /* for aliases: the target name (heap, in names pool) */
} ct2_var;

typedef struct ct2_reader {
    const uint8_t *p;
    size_t size, off;
    const char *path;
    tolk_ctx *ctx;
} ct2_reader;

typedef struct ct2_file {
    ct2_var *vars;
    int n_vars;
    int version, revision;
} ct2_file;

static tolk_status trunc_err(ct2_reader *r, const char *what) {
    return tolk_fail(r->ctx, TOLK_ERR_FORMAT, "%s: truncated at byte %zu reading %s", r->path,
                     r->off, what);
}

static int rd(ct2_reader *r, void *dst, size_t n) {
    if (n > r->size - r->off) return -1;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 0;
}

static int rd_u8(ct2_reader *r, uint32_t *v) {
    uint8_t b;
    if (rd(r, &b, 1)) return -1;
    *v = b;
    return 0;
}

static int rd_u16(ct2_reader *r, uint32_t *v) {
    uint8_t b[2];
    if (rd(r, b, 2)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    return 0;
}

static int rd_u32(ct2_reader *r, uint32_t *v) {
    uint8_t b[4];
    if (rd(r, b, 4)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

/* A CT2 string: u16 length (NUL included), bytes. Returns a heap copy of
 * the bytes up to the first NUL, or NULL with the error recorded. */
static char *rd_str(ct2_reader *r, const char *what, tolk_status *st) {
    uint32_t len;
    if (rd_u16(r, &len) || len > r->size - r->off) {
        *st = trunc_err(r, what);
        return NULL;
    }
    if (len == 0 || len > CT2_MAX_NAME) {
        *st = tolk_fail(r->ctx, TOLK_ERR_FORMAT, "%s: bad %s length %u at byte %zu", r->path, what,
                        len, r->off);
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    size_t n = strnlen(s, len);
    char *out = malloc(n + 1);
    if (!out) {
        *st = tolk_fail(r->ctx, TOLK_ERR_NOMEM, "%s: out of memory", r->path);
        return NULL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    r->off += len;
    return out;
}

static void ct2_file_free(ct2_file *f) {
    for (int i = 0; i < f->n_vars; i++) {
        free(f->vars[i].name);
        free((char *)f->vars[i].alias_of);
    }
    free(f->vars);
    memset(f, 0, sizeof *f);
}

static size_t ct2_dtype_size(int dt) {
    switch (dt) {
    case CT2_F32:
        return 4;
    case CT2_I8:
        return 1;
    case CT2_I16:
        return 2;
    case CT2_I32:
        return 4;
    case CT2_F16:
        return 2;
    case CT2_BF16:
        return 2;
    }
    return 0;
}

static const char *ct2_dtype_name(int dt) {
    switch (dt) {
    case CT2_F32:
        return "float32";
    case CT2_I8:
        return "int8";
    case CT2_I16:
        return "int16";
    case CT2_I32:
        return "int32";
    case CT2_F16:
        return "float16";
    case CT2_BF16:
        return "bfloat16";
    }
    return "unknown";
}

static int cmp_var(const void *a, const void *b) {
    return strcmp(((const ct2_var *)a)->name, ((const ct2_var *)b)->name);
}

/* Parse the whole model.bin structure (no interpretation of names). */
static tolk_status ct2_parse(tolk_ctx *ctx, const char *path, const uint8_t *data, size_t size,
                             ct2_file *f) {
    ct2_reader r = {data, size, 0, path, ctx};
    tolk_status st = TOLK_OK;
    uint32_t version, nvars;
    memset(f, 0, sizeof *f);
    if (rd_u32(&r, &version)) return trunc_err(&r, "the binary version");
    if (version < 1 || version > CT2_MAX_VERSION)
        return tolk_fail(ctx,
                         version > CT2_MAX_VERSION && version < 1000 ? TOLK_ERR_UNSUPPORTED
                                                                     : TOLK_ERR_FORMAT,
                         "%s: CTranslate2 binary version %u not supported (1 to %d)", path, version,
                         CT2_MAX_VERSION);
    f->version = (int)version;
    f->revision = 1;
    if (version >= 2) {
        char *spec = rd_str(&r, "the spec name", &st);
        if (!spec) return st;
        int ok = !strcmp(spec, "WhisperSpec");
        uint32_t rev;
        if (rd_u32(&r, &rev)) {
            free(spec);
            return trunc_err(&r, "the spec revision");
        }
        if (!ok) {
            st = tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: a CTranslate2 '%s' model, not Whisper",
                           path, spec);
            free(spec);
            return st;
        }
        free(spec);
        f->revision = (int)rev;
    }
    if (rd_u32(&r, &nvars)) return trunc_err(&r, "the variable count");
    /* each variable needs at least 2 + 1 + 1 + 1 + 4 bytes */
    if ((uint64_t)nvars * 9 > size - r.off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %u variables cannot fit in %zu bytes", path,
                         nvars, size);
    uint32_t cap = nvars + 16;
    f->vars = calloc(cap, sizeof(ct2_var));
    if (!f->vars) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < nvars; i++) {
        ct2_var *v = &f->vars[f->n_vars];
        v->name = rd_str(&r, "a variable name", &st);
        if (!v->name) goto fail;
        f->n_vars++;
        uint32_t rank;
        if (rd_u8(&r, &rank)) {
            st = trunc_err(&r, v->name);
            goto fail;
        }
        if (rank > 8) {
            st =
                tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: variable %s has rank %u", path, v->name, rank);
            goto fail;
        }
        v->rank = (int)rank;
        uint64_t nel = 1;
        for (uint32_t k = 0; k < rank; k++) {
            uint32_t d;
            if (rd_u32(&r, &d)) {
                st = trunc_err(&r, v->name);
                goto fail;
            }
            v->dims[k] = d;
            if (d != 0 && nel > UINT64_MAX / d)
                nel = UINT64_MAX; /* saturate: caught below */
            else
                nel *= d;
        }
        uint32_t a, b;
        if (rd_u8(&r, &a) || rd_u32(&r, &b)) {
            st = trunc_err(&r, v->name);
            goto fail;
        }
        if (version >= 4) {
            v->dtype = (int)a;
            v->nbytes = b;
        } else {
            v->dtype = a == 4 ? CT2_F32 : a == 2 ? CT2_I16 : a == 1 ? CT2_I8 : -1;
            v->nbytes = (uint64_t)b * a;
        }
        size_t esz = ct2_dtype_size(v->dtype);
        if (esz == 0) {
            st = tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: variable %s has unknown dtype %u", path,
                           v->name, a);
            goto fail;
        }
        if (nel == UINT64_MAX || nel > UINT64_MAX / esz || nel * esz != v->nbytes) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: variable %s: %llu bytes stored, its shape needs %llu x %zu", path,
                           v->name, (unsigned long long)v->nbytes, (unsigned long long)nel, esz);
            goto fail;
        }
        if (v->nbytes > size - r.off) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: variable %s: %llu bytes at offset %zu run past the end (%zu bytes)",
                           path, v->name, (unsigned long long)v->nbytes, r.off, size);
            goto fail;
        }
        v->data = data + r.off;
        r.off += (size_t)v->nbytes;
    }
    if (version >= 3) {
        uint32_t nal;
        if (rd_u32(&r, &nal)) {
            st = trunc_err(&r, "the alias count");
            goto fail;
        }
        if (nal > 16) {
            if ((uint64_t)nal * 6 > size - r.off) {
                st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %u aliases cannot fit", path, nal);
                goto fail;
            }
            ct2_var *nv = realloc(f->vars, sizeof(ct2_var) * ((size_t)nvars + nal));
            if (!nv) {
                st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            f->vars = nv;
        }
        for (uint32_t i = 0; i < nal; i++) {
            ct2_var *v = &f->vars[f->n_vars];
            memset(v, 0, sizeof *v);
            v->name = rd_str(&r, "an alias", &st);
            if (!v->name) goto fail;
            f->n_vars++;
            v->alias_of = rd_str(&r, "an alias target", &st);
            if (!v->alias_of) goto fail;
        }
    }
    qsort(f->vars, (size_t)f->n_vars, sizeof(ct2_var), cmp_var);
    for (int i = 1; i < f->n_vars; i++)
        if (!strcmp(f->vars[i - 1].name, f->vars[i].name)) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: variable %s appears twice", path,
                           f->vars[i].name);
            goto fail;
        }
    return TOLK_OK;
fail:
    ct2_file_free(f);
    return st;
}

/* Find a variable by name, following aliases (at most 8 hops). */
static const ct2_var *ct2_find(const ct2_file *f, const char *name) {
    for (int hop = 0; hop < 8; hop++) {
        ct2_var key;
        key.name = (char *)name;
        const ct2_var *v = bsearch(&key, f->vars, (size_t)f->n_vars, sizeof key, cmp_var);
        if (!v || !v->alias_of) return v;
        name = v->alias_of;
    }
    return NULL;
}

static const ct2_var *ct2_findf(const ct2_file *f, const char *fmt, int layer, const char *leaf) {
    char buf[256];
    snprintf(buf, sizeof buf, fmt, layer, leaf);
    return ct2_find(f, buf);
}

/* A small integer scalar (num_heads), or fallback when absent/unreadable. */
static int ct2_scalar_int(const ct2_file *f, const char *name, int fallback) {
    const ct2_var *v = ct2_find(f, name);
    if (!v || v->rank != 0) return fallback;
    switch (v->dtype) {
    case CT2_I8:
        return (int8_t)v->data[0];
    case CT2_I16:
        return (int16_t)((uint16_t)v->data[0] | (uint16_t)v->data[1] << 8);
    case CT2_I32: {
        uint32_t u = (uint32_t)v->data[0] | (uint32_t)v->data[1] << 8 | (uint32_t)v->data[2] << 16 |
                     (uint32_t)v->data[3] << 24;
        return (int)(int32_t)u;
    }
    default:
        return fallback;
    }
}

/* Value i of a float variable (any float dtype), read without alignment. */
static float ct2_value(const ct2_var *v, size_t i) {
    if (v->dtype == CT2_F32) {
        float x;
        memcpy(&x, v->data + 4 * i, 4);
        return x;
    }
    uint16_t h;
    memcpy(&h, v->data + 2 * i, 2);
    return v->dtype == CT2_F16 ? tolk_f16_to_f32(h) : tolk_bf16_to_f32(h);
}

typedef struct ct2_ctx {
    tolk_ctx *ctx;
    tolk_weights *w;
    const ct2_file *f;
    const char *path; /* model.bin, for messages */
} ct2_ctx;

static tolk_status map_dtype(ct2_ctx *c, const ct2_var *v, tolk_dtype *dt) {
    switch (v->dtype) {
    case CT2_F32:
        *dt = TOLK_DT_F32;
        return TOLK_OK;
    case CT2_F16:
        *dt = TOLK_DT_F16;
        return TOLK_OK;
    case CT2_BF16:
        *dt = TOLK_DT_BF16;
        return TOLK_OK;
    case CT2_I8:
        *dt = TOLK_DT_I8;
        return TOLK_OK;
    default:
        return tolk_fail(c->ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: variable %s has dtype %s (not supported)", c->path, v->name,
                         ct2_dtype_name(v->dtype));
    }
}

/* The float32 per-row scales of int8 variable v (found as <name>_scale,
 * also through an alias of v's own name). */
static tolk_status get_scale(ct2_ctx *c, const char *name, const ct2_var *v, const float **scale) {
    char buf[CT2_MAX_NAME + 16];
    snprintf(buf, sizeof buf, "%s_scale", name);
    const ct2_var *s = ct2_find(c->f, buf);
    if (!s) {
        snprintf(buf, sizeof buf, "%s_scale", v->name);
        s = ct2_find(c->f, buf);
    }
    if (!s)
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: int8 variable %s has no %s_scale", c->path,
                         name, name);
    int64_t rows = v->rank ? v->dims[0] : 1;
    int64_t nel = 1;
    for (int i = 0; i < s->rank; i++)
        nel *= s->dims[i];
    if (nel != rows || (s->dtype != CT2_F32 && s->dtype != CT2_F16 && s->dtype != CT2_BF16))
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT,
                         "%s: scale %s has %lld %s values, expected %lld float values", c->path,
                         s->name, (long long)nel, ct2_dtype_name(s->dtype), (long long)rows);
    if (s->dtype == CT2_F32 && (uintptr_t)s->data % 4 == 0) {
        *scale = (const float *)(const void *)s->data;
        return TOLK_OK;
    }
    float *copy = tolk_weights_alloc(c->w, (size_t)rows * sizeof(float));
    if (!copy) return tolk_fail(c->ctx, TOLK_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < rows; i++)
        copy[i] = ct2_value(s, (size_t)i);
    *scale = copy;
    return TOLK_OK;
}

/* Add rows [row0, row0 + nrows) of variable v (rank 1 or more) as tensor
 * `name`; nrows < 0 means all rows. */
static tolk_status add_rows(ct2_ctx *c, const char *name, const ct2_var *v, const char *src_name,
                            int64_t row0, int64_t nrows) {
    tolk_dtype dt = TOLK_DT_F32;
    tolk_status st = map_dtype(c, v, &dt);
    if (st) return st;
    if (v->rank < 1)
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: variable %s is a scalar", c->path, src_name);
    if (nrows < 0) nrows = v->dims[0];
    if (row0 + nrows > v->dims[0])
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: variable %s has %lld rows, need %lld",
                         c->path, src_name, (long long)v->dims[0], (long long)(row0 + nrows));
    int64_t shape[TOLK_MAX_DIMS];
    int nd = v->rank;
    if (nd > TOLK_MAX_DIMS)
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: variable %s has rank %d", c->path, src_name,
                         nd);
    uint64_t row_elems = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = v->dims[i];
        if (i > 0) row_elems *= (uint64_t)v->dims[i];
    }
    if (nrows == 0 || row_elems == 0)
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: variable %s is empty", c->path, src_name);
    shape[0] = nrows;
    const float *scale = NULL;
    if (dt == TOLK_DT_I8) {
        if ((st = get_scale(c, src_name, v, &scale))) return st;
        scale += row0;
    }
    const uint8_t *p = v->data + (uint64_t)row0 * row_elems * ct2_dtype_size(v->dtype);
    return tolk_weights_add(c->ctx, c->w, name, dt, nd, shape, p, scale);
}

/* A variable that must exist. */
static tolk_status need(ct2_ctx *c, const char *name, const ct2_var **v) {
    *v = ct2_find(c->f, name);
    if (!*v) return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: variable %s missing", c->path, name);
    return TOLK_OK;
}

static tolk_status add_whole(ct2_ctx *c, const char *canon, const char *src) {
    const ct2_var *v;
    tolk_status st = need(c, src, &v);
    return st ? st : add_rows(c, canon, v, src, 0, -1);
}

/* Split a fused [k*d, in] linear (weight + bias) into parts named
 * <canon_prefix>.<part>.weight/.bias; d = rows / k. A key part's bias is
 * added only when it holds a non-zero value (openai-whisper's key has none). */
static tolk_status add_fused(ct2_ctx *c, const char *src_prefix, const char *canon_prefix,
                             const char *const *parts, int k) {
    char wn[256], bn[256], cn[256];
    snprintf(wn, sizeof wn, "%s/weight", src_prefix);
    snprintf(bn, sizeof bn, "%s/bias", src_prefix);
    const ct2_var *w, *b;
    tolk_status st;
    if ((st = need(c, wn, &w)) || (st = need(c, bn, &b))) return st;
    if (w->rank != 2 || w->dims[0] % k != 0 || b->rank != 1 || b->dims[0] != w->dims[0])
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT,
                         "%s: fused variable %s has a shape that does not split in %d", c->path, wn,
                         k);
    int64_t d = w->dims[0] / k;
    for (int i = 0; i < k; i++) {
        snprintf(cn, sizeof cn, "%s.%s.weight", canon_prefix, parts[i]);
        if ((st = add_rows(c, cn, w, wn, i * d, d))) return st;
        if (!strcmp(parts[i], "key")) {
            if (b->dtype != CT2_F32 && b->dtype != CT2_F16 && b->dtype != CT2_BF16)
                return tolk_fail(c->ctx, TOLK_ERR_UNSUPPORTED, "%s: bias %s has dtype %s", c->path,
                                 bn, ct2_dtype_name(b->dtype));
            int nonzero = 0;
            for (int64_t j = 0; j < d && !nonzero; j++)
                nonzero = ct2_value(b, (size_t)(i * d + j)) != 0.0f;
            if (!nonzero) continue;
        }
        snprintf(cn, sizeof cn, "%s.%s.bias", canon_prefix, parts[i]);
        if ((st = add_rows(c, cn, b, bn, i * d, d))) return st;
    }
    return TOLK_OK;
}

/* Weight + bias of a plain linear or layer norm. */
static tolk_status add_pair(ct2_ctx *c, const char *src_prefix, const char *wleaf,
                            const char *bleaf, const char *canon_prefix) {
    char s[256], d[256];
    snprintf(s, sizeof s, "%s/%s", src_prefix, wleaf);
    snprintf(d, sizeof d, "%s.weight", canon_prefix);
    tolk_status st = add_whole(c, d, s);
    if (st) return st;
    snprintf(s, sizeof s, "%s/%s", src_prefix, bleaf);
    snprintf(d, sizeof d, "%s.bias", canon_prefix);
    return add_whole(c, d, s);
}

/* Number of layers: the first N for which <stack>/layer_N/ffn/linear_0/weight is missing. */
static int count_layers(const ct2_file *f, const char *stack) {
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s/layer_%%d/%%s", stack);
    int n = 0;
    while (n < 4096 && ct2_findf(f, fmt, n, "ffn/linear_0/weight"))
        n++;
    return n;
}

/* Map the parsed variables to canonical tensors and hyper-parameters. */
static tolk_status ct2_build(ct2_ctx *c) {
    const ct2_file *f = c->f;
    tolk_hparams *hp = &c->w->hp;
    const ct2_var *conv1, *epos, *emb, *dpos;
    tolk_status st;
    if ((st = need(c, "encoder/conv1/weight", &conv1)) ||
        (st = need(c, "encoder/position_encodings/encodings", &epos)) ||
        (st = need(c, "decoder/embeddings/weight", &emb)) ||
        (st = need(c, "decoder/position_encodings/encodings", &dpos)))
        return st;
    if (conv1->rank != 3 || epos->rank != 2 || emb->rank != 2 || dpos->rank != 2)
        return tolk_fail(c->ctx, TOLK_ERR_FORMAT,
                         "%s: encoder/conv1/weight, position encodings or embeddings have the "
                         "wrong rank",
                         c->path);
    for (int i = 0; i < 3; i++)
        if (conv1->dims[i] > (1 << 20) ||
            (i < 2 &&
             (epos->dims[i] > (1 << 20) || emb->dims[i] > (1 << 24) || dpos->dims[i] > (1 << 20))))
            return tolk_fail(c->ctx, TOLK_ERR_FORMAT, "%s: absurd model dimensions", c->path);
    hp->n_audio_state = (int)conv1->dims[0];
    hp->n_mels = (int)conv1->dims[1];
    hp->n_audio_ctx = (int)epos->dims[0];
    hp->n_vocab = (int)emb->dims[0];
    hp->n_text_state = (int)emb->dims[1];
    hp->n_text_ctx = (int)dpos->dims[0];
    hp->n_audio_layer = count_layers(f, "encoder");
    hp->n_text_layer = count_layers(f, "decoder");
    /* Whisper's heads are 64 wide; older specs did not store num_heads. */
    hp->n_audio_head = ct2_scalar_int(f, "encoder/num_heads", hp->n_audio_state / 64);
    hp->n_text_head = ct2_scalar_int(f, "decoder/num_heads", hp->n_text_state / 64);
    if ((st = tolk_hparams_check(c->ctx, c->path, hp, TOLK_HP_TABLE))) return st;

    /* An untied output projection is not supported (Whisper ties it). */
    const ct2_var *proj = ct2_find(f, "decoder/projection/weight");
    if (proj && proj != emb &&
        (proj->nbytes != emb->nbytes || proj->dtype != emb->dtype ||
         memcmp(proj->data, emb->data, (size_t)emb->nbytes) != 0))
        return tolk_fail(c->ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: decoder/projection/weight differs from the token embedding "
                         "(untied output projection)",
                         c->path);

    if ((st = add_pair(c, "encoder/conv1", "weight", "bias", "encoder.conv1")) ||
        (st = add_pair(c, "encoder/conv2", "weight", "bias", "encoder.conv2")) ||
        (st = add_whole(c, "encoder.positional_embedding",
                        "encoder/position_encodings/encodings")) ||
        (st = add_pair(c, "encoder/layer_norm", "gamma", "beta", "encoder.ln_post")) ||
        (st = add_whole(c, "decoder.token_embedding.weight", "decoder/embeddings/weight")) ||
        (st = add_whole(c, "decoder.positional_embedding",
                        "decoder/position_encodings/encodings")) ||
        (st = add_pair(c, "decoder/layer_norm", "gamma", "beta", "decoder.ln")))
        return st;

    static const char *const qkv[] = {"query", "key", "value"};
    static const char *const kv[] = {"key", "value"};
    char s[128], d[128];
    for (int dec = 0; dec < 2; dec++) {
        const char *stack = dec ? "decoder" : "encoder";
        int nl = dec ? hp->n_text_layer : hp->n_audio_layer;
        for (int l = 0; l < nl; l++) {
            snprintf(s, sizeof s, "%s/layer_%d/self_attention/linear_0", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.attn", stack, l);
            if ((st = add_fused(c, s, d, qkv, 3))) return st;
            snprintf(s, sizeof s, "%s/layer_%d/self_attention/linear_1", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.attn.out", stack, l);
            if ((st = add_pair(c, s, "weight", "bias", d))) return st;
            snprintf(s, sizeof s, "%s/layer_%d/self_attention/layer_norm", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.attn_ln", stack, l);
            if ((st = add_pair(c, s, "gamma", "beta", d))) return st;
            snprintf(s, sizeof s, "%s/layer_%d/ffn/linear_0", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.mlp.0", stack, l);
            if ((st = add_pair(c, s, "weight", "bias", d))) return st;
            snprintf(s, sizeof s, "%s/layer_%d/ffn/linear_1", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.mlp.2", stack, l);
            if ((st = add_pair(c, s, "weight", "bias", d))) return st;
            snprintf(s, sizeof s, "%s/layer_%d/ffn/layer_norm", stack, l);
            snprintf(d, sizeof d, "%s.blocks.%d.mlp_ln", stack, l);
            if ((st = add_pair(c, s, "gamma", "beta", d))) return st;
            if (!dec) continue;
            snprintf(s, sizeof s, "decoder/layer_%d/attention/linear_0", l);
            snprintf(d, sizeof d, "decoder.blocks.%d.cross_attn.query", l);
            if ((st = add_pair(c, s, "weight", "bias", d))) return st;
            snprintf(s, sizeof s, "decoder/layer_%d/attention/linear_1", l);
            snprintf(d, sizeof d, "decoder.blocks.%d.cross_attn", l);
            if ((st = add_fused(c, s, d, kv, 2))) return st;
            snprintf(s, sizeof s, "decoder/layer_%d/attention/linear_2", l);
            snprintf(d, sizeof d, "decoder.blocks.%d.cross_attn.out", l);
            if ((st = add_pair(c, s, "weight", "bias", d))) return st;
            snprintf(s, sizeof s, "decoder/layer_%d/attention/layer_norm", l);
            snprintf(d, sizeof d, "decoder.blocks.%d.cross_attn_ln", l);
            if ((st = add_pair(c, s, "gamma", "beta", d))) return st;
        }
    }
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* config.json and vocabulary                                               */
/* ------------------------------------------------------------------------ */

/* Fill w->cfg from CTranslate2's config.json text (NULL: nothing). */
static tolk_status ct2_config(tolk_ctx *ctx, const char *path, const char *text, tolk_weights *w) {
    if (!text) return TOLK_OK;
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: invalid JSON", path);
    }
    tolk_model_config *c = &w->cfg;
    tolk_status st;
    if ((st = tolk_json_int_array(ctx, path, cJSON_GetObjectItemCaseSensitive(root, "suppress_ids"),
                                  "suppress_ids", &c->suppress_ids, &c->n_suppress_ids)) ||
        (st = tolk_json_int_array(
             ctx, path, cJSON_GetObjectItemCaseSensitive(root, "suppress_ids_begin"),
             "suppress_ids_begin", &c->begin_suppress_ids, &c->n_begin_suppress_ids)) ||
        (st = tolk_json_int_array(ctx, path, cJSON_GetObjectItemCaseSensitive(root, "lang_ids"),
                                  "lang_ids", &c->lang_ids, &c->n_languages)) ||
        (st = tolk_json_alignment_heads(ctx, path,
                                        cJSON_GetObjectItemCaseSensitive(root, "alignment_heads"),
                                        &c->alignment_heads, &c->n_alignment_heads))) {
        cJSON_Delete(root);
        return st;
    }
    cJSON_Delete(root);
    return tolk_weights_check_config(ctx, path, w);
}

/* Append one token (bytes s[0..n)) to the vocabulary. */
static int vocab_push(tolk_vocab *v, int *cap, const char *s, size_t n) {
    if (v->n == *cap) {
        int nc = *cap ? *cap * 2 : 1024;
        char **t = realloc(v->tokens, sizeof(char *) * (size_t)nc);
        if (!t) return -1;
        v->tokens = t;
        uint32_t *l = realloc(v->lengths, sizeof(uint32_t) * (size_t)nc);
        if (!l) return -1;
        v->lengths = l;
        *cap = nc;
    }
    char *tok = malloc(n + 1);
    if (!tok) return -1;
    memcpy(tok, s, n);
    tok[n] = '\0';
    v->tokens[v->n] = tok;
    v->lengths[v->n] = (uint32_t)n;
    v->n++;
    return 0;
}

#define MAX_VOCAB (1 << 21)

static tolk_status ct2_vocab_txt(tolk_ctx *ctx, const char *path, tolk_vocab *v) {
    char *text;
    size_t len;
    tolk_status st = tolk_read_text_file(ctx, path, (size_t)64 << 20, &text, &len);
    if (st) return st;
    int cap = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        size_t n = j - i;
        if (n > 0 && text[i + n - 1] == '\r') n--;
        if (v->n >= MAX_VOCAB || vocab_push(v, &cap, text + i, n)) {
            free(text);
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: vocabulary too large", path);
        }
        i = j + 1;
    }
    free(text);
    return TOLK_OK;
}

static tolk_status ct2_vocab_json(tolk_ctx *ctx, const char *path, tolk_vocab *v) {
    char *text;
    tolk_status st = tolk_read_text_file(ctx, path, (size_t)64 << 20, &text, NULL);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a JSON array of tokens", path);
    }
    int cap = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!cJSON_IsString(e) || v->n >= MAX_VOCAB) {
            cJSON_Delete(root);
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: token %d is not a string", path, v->n);
        }
        if (vocab_push(v, &cap, e->valuestring, strlen(e->valuestring))) {
            cJSON_Delete(root);
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    cJSON_Delete(root);
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

/* Parse model.bin bytes into w (tensors + hparams); binpath for messages. */
static tolk_status ct2_fill(tolk_ctx *ctx, tolk_weights *w, const char *binpath, const void *data,
                            size_t size) {
    ct2_file f;
    tolk_status st = ct2_parse(ctx, binpath, data, size, &f);
    if (st) return st;
    ct2_ctx c = {ctx, w, &f, binpath};
    st = ct2_build(&c);
    ct2_file_free(&f);
    return st;
}

tolk_status tolk_load_ct2_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                 const char *config_json, tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ct2_memory: NULL out");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL data", name);
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_CT2, name);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    tolk_status st = ct2_fill(ctx, w, name, data, size);
    if (!st) st = ct2_config(ctx, name, config_json, w);
    if (!st) st = tolk_weights_finish(ctx, w);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    *out = w;
    return TOLK_OK;
}

tolk_status tolk_load_ct2(tolk_ctx *ctx, const char *dir, int use_mmap, tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ct2: NULL out");
    *out = NULL;
    if (!dir) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ct2: NULL path");
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_CT2, dir);
    char *bin = tolk_path_join(dir, "model.bin"), *cfg = tolk_path_join(dir, "config.json");
    char *vtxt = tolk_path_join(dir, "vocabulary.txt"),
         *vjson = tolk_path_join(dir, "vocabulary.json");
    char *tok = tolk_path_join(dir, "tokenizer.json");
    char *cfg_text = NULL;
    tolk_status st = TOLK_OK;
    if (!w || !bin || !cfg || !vtxt || !vjson || !tok) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    tolk_mapfile m;
    if ((st = tolk_mapfile_open(ctx, bin, use_mmap, &m))) goto done;
    if (tolk_weights_keep(w, m.data, m.size, m.mapped)) {
        tolk_mapfile_close(&m);
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    w->file_bytes = m.size;
    if ((st = ct2_fill(ctx, w, bin, m.data, m.size))) goto done;
    if (tolk_is_file(cfg)) {
        if ((st = tolk_read_text_file(ctx, cfg, (size_t)16 << 20, &cfg_text, NULL))) goto done;
        if ((st = ct2_config(ctx, cfg, cfg_text, w))) goto done;
    }
    if (tolk_is_file(vtxt))
        st = ct2_vocab_txt(ctx, vtxt, &w->vocab);
    else if (tolk_is_file(vjson))
        st = ct2_vocab_json(ctx, vjson, &w->vocab);
    if (st) goto done;
    if (w->vocab.n > w->hp.n_vocab) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: the vocabulary has %d tokens, the model %d",
                       tolk_is_file(vtxt) ? vtxt : vjson, w->vocab.n, w->hp.n_vocab);
        goto done;
    }
    if (tolk_is_file(tok)) {
        w->tokenizer_path = tok;
        tok = NULL;
    }
    st = tolk_weights_finish(ctx, w);
done:
    free(bin), free(cfg), free(vtxt), free(vjson), free(tok), free(cfg_text);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    *out = w;
    return TOLK_OK;
}

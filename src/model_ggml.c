/*
 * model_ggml.c — load a whisper.cpp ggml model file into the uniform
 * weights table (weights.h).
 *
 * Reproduces the reading side of the layout whisper.cpp's
 * models/convert-pt-to-ggml.py writes (and whisper.cpp's whisper.cpp
 * loader reads), little-endian, no padding:
 *
 *   u32 magic 0x67676d6c ("ggml")
 *   i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
 *       n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
 *   i32 filters_n_mel, filters_n_fft, then f32 filters[n_mel][n_fft]
 *   i32 n_tokens, then per token: u32 length, bytes (raw bytes)
 *   tensors to the end of file: i32 n_dims, i32 name_length, i32 type,
 *       i32 ne[n_dims] (innermost first), name, data (row-major bytes)
 *
 * Names are openai-whisper's; shapes are read outermost-first (ne
 * reversed); size-1 dimensions (the [d, 1] conv biases, squeezed ones) are
 * matched against the canonical shape. Types: 0 f32, 1 f16, 30 bf16;
 * quantized types are refused ("quantization type q5_0 not supported").
 */
#include "internal.h"
#include "mapfile.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGML_MAGIC 0x67676d6cu
#define GGML_MAX_TOKEN 4096
#define GGML_MAX_TOKENS (1 << 21)

typedef tolk_ggml_reader gg_reader;

int tolk_ggml_i32(tolk_ggml_reader *r, int32_t *v) {
    if (r->size - r->off < 4) return -1;
    const uint8_t *b = r->p + r->off;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    r->off += 4;
    return 0;
}

/* ggml tensor type names (ggml.h enum ggml_type) for messages. */
static const char *ggml_type_name(int t) {
    static const char *const names[] = {
        "f32",     "f16",    "q4_0",    "q4_1",  "q4_2",   "q4_3",  "q5_0",  "q5_1",
        "q8_0",    "q8_1",   "q2_K",    "q3_K",  "q4_K",   "q5_K",  "q6_K",  "q8_K",
        "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs",
        "i8",      "i16",    "i32",     "i64",   "f64",    "iq1_m", "bf16",
    };
    if (t >= 0 && t < (int)(sizeof names / sizeof names[0])) return names[t];
    return NULL;
}

/* The file-level ftype (llama/whisper "mostly" types) for messages. */
static const char *ggml_ftype_name(int f) {
    switch (f) {
    case 2:
        return "q4_0";
    case 3:
        return "q4_1";
    case 4:
        return "q4_1_some_f16";
    case 7:
        return "q8_0";
    case 8:
        return "q5_0";
    case 9:
        return "q5_1";
    case 10:
        return "q2_K";
    case 11:
        return "q3_K";
    case 12:
        return "q4_K";
    case 13:
        return "q5_K";
    case 14:
        return "q6_K";
    }
    return NULL;
}

/* Fit a file shape to the canonical one when they differ only by size-1
 * dimensions (conv biases stored [d, 1], squeezed tensors). */
static int squeeze_equal(int na, const int64_t *a, int nb, const int64_t *b) {
    int i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (j < nb && b[j] == 1)
            j++;
        if (i == na || j == nb) return i == na && j == nb;
        if (a[i++] != b[j++]) return 0;
    }
}

static tolk_status ggml_fill(tolk_ctx *ctx, tolk_weights *w, const char *path, const uint8_t *data,
                             size_t size) {
    gg_reader r = {data, size, 0};
    int32_t magic, h[11];
    if (tolk_ggml_i32(&r, &magic) || (uint32_t)magic != GGML_MAGIC)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a ggml file (bad magic)", path);
    for (int i = 0; i < 11; i++)
        if (tolk_ggml_i32(&r, &h[i]))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated in the hyper-parameters", path);
    tolk_hparams *hp = &w->hp;
    hp->n_vocab = h[0];
    hp->n_audio_ctx = h[1];
    hp->n_audio_state = h[2];
    hp->n_audio_head = h[3];
    hp->n_audio_layer = h[4];
    hp->n_text_ctx = h[5];
    hp->n_text_state = h[6];
    hp->n_text_head = h[7];
    hp->n_text_layer = h[8];
    hp->n_mels = h[9];
    tolk_status st = tolk_hparams_check(ctx, path, hp);
    if (st) return st;
    int ftype = h[10] % 1000; /* whisper.cpp adds 1000 x quantization version */
    if (ftype < 0 || (ftype > 1 && ftype != 30 && ftype != 32)) {
        const char *n = ggml_ftype_name(ftype);
        if (n)
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: quantization type %s not supported",
                             path, n);
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: quantization type %d not supported", path,
                         h[10]);
    }

    /* mel filterbank */
    int32_t fm, ff;
    if (tolk_ggml_i32(&r, &fm) || tolk_ggml_i32(&r, &ff))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated in the mel filters", path);
    if (fm < 1 || fm > 512 || ff < 1 || ff > 8192 || (uint64_t)fm * (uint64_t)ff * 4 > size - r.off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: mel filters [%d, %d] do not fit the file", path,
                         fm, ff);
    size_t fbytes = (size_t)fm * (size_t)ff * 4;
    const void *filters = data + r.off;
    if ((uintptr_t)filters % 4 != 0) {
        void *copy = tolk_weights_alloc(w, fbytes);
        if (!copy) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
        memcpy(copy, filters, fbytes);
        filters = copy;
    }
    w->mel_filters = filters;
    w->mel_n_mels = fm;
    w->mel_n_fft = ff;
    r.off += fbytes;

    /* vocabulary (raw bytes) */
    int32_t nt;
    if (tolk_ggml_i32(&r, &nt))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated before the vocabulary", path);
    if (nt < 0 || nt > GGML_MAX_TOKENS || (uint64_t)nt * 4 > size - r.off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: vocabulary of %d tokens does not fit", path,
                         nt);
    if (nt > hp->n_vocab)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %d vocabulary tokens for n_vocab %d", path, nt,
                         hp->n_vocab);
    tolk_vocab *v = &w->vocab;
    v->raw_bytes = 1;
    if (nt > 0) {
        v->tokens = calloc((size_t)nt, sizeof(char *));
        v->lengths = calloc((size_t)nt, sizeof(uint32_t));
        if (!v->tokens || !v->lengths)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int32_t i = 0; i < nt; i++) {
        int32_t len;
        if (tolk_ggml_i32(&r, &len) || len < 0 || len > GGML_MAX_TOKEN ||
            (size_t)len > size - r.off)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: vocabulary token %d is truncated or too long", path, i);
        char *t = malloc((size_t)len + 1);
        if (!t) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
        memcpy(t, data + r.off, (size_t)len);
        t[len] = '\0';
        v->tokens[i] = t;
        v->lengths[i] = (uint32_t)len;
        v->n = i + 1;
        r.off += (size_t)len;
    }

    /* tensors */
    tolk_ggml_tensor t;
    while (r.off < size) {
        if ((st = tolk_ggml_read_tensor(ctx, path, &r, 1, &t))) return st;
        int64_t want[TOLK_MAX_DIMS];
        int wn;
        if (!tolk_weights_expected_shape(hp, t.name, &wn, want)) continue; /* not used by tolk */
        if (!squeeze_equal(t.ndim, t.shape, wn, want)) {
            /* keep the file's shape: validation names the mismatch */
            if ((st = tolk_weights_add(ctx, w, t.name, t.dtype, t.ndim, t.shape, t.data, NULL)))
                return st;
            continue;
        }
        if ((st = tolk_weights_add(ctx, w, t.name, t.dtype, wn, want, t.data, NULL))) return st;
    }
    return TOLK_OK;
}

tolk_status tolk_ggml_read_tensor(tolk_ctx *ctx, const char *path, tolk_ggml_reader *r,
                                  int min_dims, tolk_ggml_tensor *t) {
    int32_t nd, nl, tt;
    size_t at = r->off;
    const size_t size = r->size;
    if (tolk_ggml_i32(r, &nd) || tolk_ggml_i32(r, &nl) || tolk_ggml_i32(r, &tt))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated tensor header at byte %zu", path, at);
    if (nd < min_dims || nd > 4 || nl < 1 || nl > TOLK_GGML_MAX_NAME)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: bad tensor header at byte %zu (%d dims, name length %d)", path, at,
                         nd, nl);
    int32_t ne[4];
    uint64_t nel = 1;
    for (int i = 0; i < nd; i++) {
        if (tolk_ggml_i32(r, &ne[i]))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated tensor header at byte %zu", path,
                             at);
        if (ne[i] < 1)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor at byte %zu has dimension %d", path,
                             at, ne[i]);
        nel *= (uint64_t)ne[i]; /* < 2^40 * 2^31: no overflow */
        if (nel > ((uint64_t)1 << 40))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor at byte %zu is absurdly large", path,
                             at);
    }
    if ((size_t)nl > size - r->off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated tensor name at byte %zu", path, at);
    memcpy(t->name, r->p + r->off, (size_t)nl);
    t->name[nl] = '\0';
    r->off += (size_t)nl;
    if (strlen(t->name) != (size_t)nl)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor name at byte %zu holds a NUL", path, at);
    const char *name = t->name;
    size_t esz;
    if (tt == 0)
        t->dtype = TOLK_DT_F32, esz = 4;
    else if (tt == 1)
        t->dtype = TOLK_DT_F16, esz = 2;
    else if (tt == 30)
        t->dtype = TOLK_DT_BF16, esz = 2;
    else {
        const char *n = ggml_type_name(tt);
        if (n)
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: tensor %s: quantization type %s not supported", path, name, n);
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: tensor %s: unknown ggml type %d", path,
                         name, tt);
    }
    uint64_t bytes = nel * esz;
    if (bytes > size - r->off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: tensor %s: %llu bytes at offset %zu run past the end (%zu bytes)",
                         path, name, (unsigned long long)bytes, r->off, size);
    t->data = r->p + r->off;
    t->bytes = (size_t)bytes;
    t->nelem = nel;
    r->off += (size_t)bytes;
    t->ndim = nd;
    for (int i = 0; i < TOLK_MAX_DIMS; i++)
        t->shape[i] = i < nd ? ne[nd - 1 - i] : 0;
    return TOLK_OK;
}

tolk_status tolk_load_ggml_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                  tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ggml_memory: NULL out");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL data", name);
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_GGML, name);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    tolk_status st = ggml_fill(ctx, w, name, data, size);
    if (!st) st = tolk_weights_finish(ctx, w);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    w->file_bytes = size;
    *out = w;
    return TOLK_OK;
}

tolk_status tolk_load_ggml(tolk_ctx *ctx, const char *file, int use_mmap, tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ggml: NULL out");
    *out = NULL;
    if (!file) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_ggml: NULL path");
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_GGML, file);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", file);
    tolk_mapfile m;
    tolk_status st = tolk_mapfile_open(ctx, file, use_mmap, &m);
    if (!st && tolk_weights_keep(w, m.data, m.size, m.mapped)) {
        tolk_mapfile_close(&m);
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", file);
    }
    if (!st) {
        w->file_bytes = m.size;
        st = ggml_fill(ctx, w, file, m.data, m.size);
    }
    if (!st) st = tolk_weights_finish(ctx, w);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    *out = w;
    return TOLK_OK;
}

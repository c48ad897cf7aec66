/*
 * weights.c — the uniform weights table (weights.h): format dispatch
 * (tolk_weights_load), lookup, validation against the hyper-parameters,
 * release, dtype helpers and IEEE half / bfloat16 conversions.
 *
 * The canonical names and shapes are those of openai-whisper's model state
 * dict (whisper/model.py); the defaults derived from the vocabulary size
 * (languages, language token ids, begin-suppress tokens) reproduce
 * openai-whisper's tokenizer conventions (sot = eot + 1, languages follow).
 */
#include "weights.h"

#include "internal.h"
#include "mapfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define TOLK_HAVE_F16C 1
#endif

/* ------------------------------------------------------------------------ */
/* dtypes and half-precision conversions                                    */
/* ------------------------------------------------------------------------ */

size_t tolk_dtype_size(tolk_dtype dt) {
    switch (dt) {
    case TOLK_DT_F32:
        return 4;
    case TOLK_DT_F16:
        return 2;
    case TOLK_DT_BF16:
        return 2;
    case TOLK_DT_I8:
        return 1;
    }
    return 0;
}

const char *tolk_dtype_name(tolk_dtype dt) {
    switch (dt) {
    case TOLK_DT_F32:
        return "float32";
    case TOLK_DT_F16:
        return "float16";
    case TOLK_DT_BF16:
        return "bfloat16";
    case TOLK_DT_I8:
        return "int8";
    }
    return "unknown";
}

/* binary32 -> binary16, round to nearest even; overflow gives infinity. */
uint16_t tolk_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN (keep a quiet NaN) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* <= 2^-25 rounds to 0 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - (112u << 23);
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | r);
}

void tolk_f16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef TOLK_HAVE_F16C
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++)
        dst[i] = tolk_f16_to_f32(src[i]);
}

void tolk_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = tolk_bf16_to_f32(src[i]);
}

void tolk_f32_to_f16_n(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
#ifdef TOLK_HAVE_F16C
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++)
        dst[i] = tolk_f32_to_f16(src[i]);
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

int64_t tolk_tensor_nelem(const tolk_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t tolk_tensor_nbytes(const tolk_tensor *t) {
    return (size_t)tolk_tensor_nelem(t) * tolk_dtype_size(t->dtype);
}

void tolk_tensor_rows_to_f32(const tolk_tensor *t, int64_t r0, int64_t n_rows, float *dst) {
    const int64_t rows = t->ndim > 1 ? t->shape[0] : 1; /* the tolk_tensor_matrix view */
    const size_t cols = rows > 0 ? (size_t)(tolk_tensor_nelem(t) / rows) : 0;
    const size_t off = (size_t)r0 * cols, n = (size_t)n_rows * cols;
    switch (t->dtype) {
    case TOLK_DT_F32:
        memcpy(dst, (const float *)t->data + off, n * sizeof(float));
        break;
    case TOLK_DT_F16:
        tolk_f16_to_f32_n((const uint16_t *)t->data + off, dst, n);
        break;
    case TOLK_DT_BF16:
        tolk_bf16_to_f32_n((const uint16_t *)t->data + off, dst, n);
        break;
    case TOLK_DT_I8: {
        const int8_t *q = (const int8_t *)t->data + off;
        for (int64_t r = 0; r < n_rows; r++) {
            float s = t->scale ? t->scale[r0 + r] : 1.0f;
            float inv = s != 0.0f ? 1.0f / s : 0.0f;
            for (size_t c = 0; c < cols; c++)
                dst[(size_t)r * cols + c] = (float)q[(size_t)r * cols + c] * inv;
        }
        break;
    }
    }
}

void tolk_tensor_to_f32(const tolk_tensor *t, float *dst) {
    tolk_tensor_rows_to_f32(t, 0, t->ndim > 1 ? t->shape[0] : 1, dst);
}

/* ------------------------------------------------------------------------ */
/* Canonical names and shapes                                               */
/* ------------------------------------------------------------------------ */

/* Per-block tensors. width: 0 = the stack's width d, 1 = 4d, 2 = the encoder
 * width (cross-attention keys/values read encoder states). */
typedef struct block_entry {
    const char *suffix;
    int ndim;
    int rows; /* 0: d, 1: 4d */
    int cols; /* 0: d, 1: 4d, 2: encoder width; ignored for 1-D */
    int optional;
    int decoder_only;
} block_entry;

static const block_entry k_block[] = {
    {"attn.query.weight", 2, 0, 0, 0, 0},
    {"attn.query.bias", 1, 0, 0, 0, 0},
    {"attn.key.weight", 2, 0, 0, 0, 0},
    {"attn.key.bias", 1, 0, 0, 1, 0},
    {"attn.value.weight", 2, 0, 0, 0, 0},
    {"attn.value.bias", 1, 0, 0, 0, 0},
    {"attn.out.weight", 2, 0, 0, 0, 0},
    {"attn.out.bias", 1, 0, 0, 0, 0},
    {"attn_ln.weight", 1, 0, 0, 0, 0},
    {"attn_ln.bias", 1, 0, 0, 0, 0},
    {"cross_attn.query.weight", 2, 0, 0, 0, 1},
    {"cross_attn.query.bias", 1, 0, 0, 0, 1},
    {"cross_attn.key.weight", 2, 0, 2, 0, 1},
    {"cross_attn.key.bias", 1, 0, 0, 1, 1},
    {"cross_attn.value.weight", 2, 0, 2, 0, 1},
    {"cross_attn.value.bias", 1, 0, 0, 0, 1},
    {"cross_attn.out.weight", 2, 0, 0, 0, 1},
    {"cross_attn.out.bias", 1, 0, 0, 0, 1},
    {"cross_attn_ln.weight", 1, 0, 0, 0, 1},
    {"cross_attn_ln.bias", 1, 0, 0, 0, 1},
    {"mlp.0.weight", 2, 1, 0, 0, 0},
    {"mlp.0.bias", 1, 1, 0, 0, 0},
    {"mlp.2.weight", 2, 0, 1, 0, 0},
    {"mlp.2.bias", 1, 0, 0, 0, 0},
    {"mlp_ln.weight", 1, 0, 0, 0, 0},
    {"mlp_ln.bias", 1, 0, 0, 0, 0},
};
#define N_BLOCK ((int)(sizeof k_block / sizeof k_block[0]))

static void set_shape(int *ndim, int64_t *shape, int n, int64_t a, int64_t b, int64_t c) {
    *ndim = n;
    shape[0] = a;
    shape[1] = b;
    shape[2] = c;
    shape[3] = 0;
}

int tolk_weights_expected_shape(const tolk_hparams *hp, const char *name, int *ndim,
                                int64_t shape[TOLK_MAX_DIMS]) {
    const int64_t da = hp->n_audio_state, dt = hp->n_text_state;
    if (!strcmp(name, "encoder.conv1.weight"))
        return set_shape(ndim, shape, 3, da, hp->n_mels, 3), 1;
    if (!strcmp(name, "encoder.conv2.weight")) return set_shape(ndim, shape, 3, da, da, 3), 1;
    if (!strcmp(name, "encoder.conv1.bias") || !strcmp(name, "encoder.conv2.bias") ||
        !strcmp(name, "encoder.ln_post.weight") || !strcmp(name, "encoder.ln_post.bias"))
        return set_shape(ndim, shape, 1, da, 0, 0), 1;
    if (!strcmp(name, "encoder.positional_embedding"))
        return set_shape(ndim, shape, 2, hp->n_audio_ctx, da, 0), 1;
    if (!strcmp(name, "decoder.token_embedding.weight"))
        return set_shape(ndim, shape, 2, hp->n_vocab, dt, 0), 1;
    if (!strcmp(name, "decoder.positional_embedding"))
        return set_shape(ndim, shape, 2, hp->n_text_ctx, dt, 0), 1;
    if (!strcmp(name, "decoder.ln.weight") || !strcmp(name, "decoder.ln.bias"))
        return set_shape(ndim, shape, 1, dt, 0, 0), 1;

    int dec;
    const char *p;
    if (!strncmp(name, "encoder.blocks.", 15)) {
        dec = 0;
        p = name + 15;
    } else if (!strncmp(name, "decoder.blocks.", 15)) {
        dec = 1;
        p = name + 15;
    } else {
        return 0;
    }
    /* layer index: 1-4 decimal digits without leading zeros */
    int layer = 0, nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 5) {
        layer = layer * 10 + (*p - '0');
        p++;
        nd++;
    }
    if (nd == 0 || nd > 4 || *p != '.' || (nd > 1 && p[-nd] == '0')) return 0;
    p++;
    if (layer >= (dec ? hp->n_text_layer : hp->n_audio_layer)) return 0;
    const int64_t d = dec ? dt : da;
    for (int i = 0; i < N_BLOCK; i++) {
        const block_entry *e = &k_block[i];
        if (strcmp(p, e->suffix) != 0) continue;
        if (e->decoder_only && !dec) return 0;
        int64_t rows = e->rows ? 4 * d : d;
        int64_t cols = e->cols == 0 ? d : e->cols == 1 ? 4 * d : da;
        if (e->ndim == 1)
            set_shape(ndim, shape, 1, rows, 0, 0);
        else
            set_shape(ndim, shape, 2, rows, cols, 0);
        return 1;
    }
    return 0;
}

tolk_status tolk_hparams_check(tolk_ctx *ctx, const char *path, const tolk_hparams *hp,
                               tolk_hparams_level level) {
    if (!path) path = "model";
    struct {
        const char *name;
        int v, lo, hi;
    } f[] = {
        {"n_mels", hp->n_mels, 1, 512},
        {"n_vocab", hp->n_vocab, 1, 1 << 20},
        {"n_audio_ctx", hp->n_audio_ctx, 1, 1 << 16},
        {"n_audio_state", hp->n_audio_state, 1, 1 << 15},
        {"n_audio_head", hp->n_audio_head, 1, 1 << 12},
        {"n_audio_layer", hp->n_audio_layer, 1, 1024},
        {"n_text_ctx", hp->n_text_ctx, 1, 1 << 16},
        {"n_text_state", hp->n_text_state, 1, 1 << 15},
        {"n_text_head", hp->n_text_head, 1, 1 << 12},
        {"n_text_layer", hp->n_text_layer, 1, 1024},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: hyper-parameter %s = %d out of range [%d, %d]", path, f[i].name,
                             f[i].v, f[i].lo, f[i].hi);
    if (hp->n_audio_state % hp->n_audio_head != 0)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: n_audio_state %d not divisible by %d heads",
                         path, hp->n_audio_state, hp->n_audio_head);
    if (hp->n_text_state % hp->n_text_head != 0)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: n_text_state %d not divisible by %d heads",
                         path, hp->n_text_state, hp->n_text_head);
    if (level == TOLK_HP_TABLE) return TOLK_OK;

    /* net.c: one width for both stacks (cross-attention keys and values are
     * [d, d] products of the encoder output, the decoder's residual is d) */
    if (hp->n_audio_state != hp->n_text_state)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: audio width n_audio_state = %d differs from text width "
                         "n_text_state = %d; tolk's network needs them equal",
                         path, hp->n_audio_state, hp->n_text_state);
    if (level == TOLK_HP_NET) return TOLK_OK;

    /* the transcription pipeline: 30 s windows of 3000 mel frames (the conv
     * stem halves them, so the encoder has exactly n_audio_ctx positions),
     * the mel filterbanks it builds, the special-token layout of Whisper's
     * vocabularies, and the CUDA attention kernels' head widths */
    if (hp->n_audio_ctx != TOLK_N_FRAMES / 2)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: n_audio_ctx (max_source_positions) = %d is not supported: tolk "
                         "encodes 30 s windows of %d mel frames, which need n_audio_ctx = %d",
                         path, hp->n_audio_ctx, TOLK_N_FRAMES, TOLK_N_FRAMES / 2);
    if (hp->n_mels != 80 && hp->n_mels != 128)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: n_mels = %d is not supported (Whisper uses 80 or 128 mel bins)", path,
                         hp->n_mels);
    if (hp->n_vocab != 51864 && hp->n_vocab != 51865 && hp->n_vocab != 51866)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: n_vocab = %d is not a Whisper vocabulary (51864 English-only, "
                         "51865 or 51866 multilingual)",
                         path, hp->n_vocab);
    const int dha = hp->n_audio_state / hp->n_audio_head, dht = hp->n_text_state / hp->n_text_head;
    if ((dha != 32 && dha != 64 && dha != 128) || (dht != 32 && dht != 64 && dht != 128))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: attention head width %d (encoder) / %d (decoder) is not supported "
                         "(32, 64 or 128; Whisper uses 64)",
                         path, dha, dht);
    return TOLK_OK;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Check one present tensor against its canonical shape and dtype. */
static tolk_status check_tensor(tolk_ctx *ctx, const tolk_weights *w, const tolk_tensor *t) {
    int nd;
    int64_t sh[TOLK_MAX_DIMS];
    if (!tolk_weights_expected_shape(&w->hp, t->name, &nd, sh))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: unexpected tensor %s", w->path, t->name);
    int same = nd == t->ndim;
    for (int i = 0; same && i < nd; i++)
        same = sh[i] == t->shape[i];
    if (!same) {
        char a[96], b[96];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, nd, sh);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", w->path,
                         t->name, a, b);
    }
    if (t->dtype != TOLK_DT_F32 && t->dtype != TOLK_DT_F16 && t->dtype != TOLK_DT_BF16 &&
        t->dtype != TOLK_DT_I8)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: tensor %s has an unsupported dtype",
                         w->path, t->name);
    if (!t->data)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has no data", w->path, t->name);
    if (t->dtype == TOLK_DT_I8 && !t->scale)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: int8 tensor %s has no scale", w->path, t->name);
    return TOLK_OK;
}

const char *const tolk_global_tensor_names[TOLK_N_GLOBAL_TENSORS] = {
    "encoder.conv1.weight",
    "encoder.conv1.bias",
    "encoder.conv2.weight",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "encoder.ln_post.weight",
    "encoder.ln_post.bias",
    "decoder.token_embedding.weight",
    "decoder.positional_embedding",
    "decoder.ln.weight",
    "decoder.ln.bias",
};

tolk_status tolk_weights_validate(tolk_ctx *ctx, const tolk_weights *w) {
    if (!w) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_weights_validate: NULL table");
    const char *path = w->path ? w->path : "(model)";
    tolk_status st = tolk_hparams_check(ctx, path, &w->hp, TOLK_HP_TABLE);
    if (st) return st;
    for (int i = 0; i < w->n_tensors; i++)
        if ((st = check_tensor(ctx, w, &w->tensors[i]))) return st;
    for (int i = 0; i < TOLK_N_GLOBAL_TENSORS; i++)
        if (!tolk_weights_get(w, tolk_global_tensor_names[i]))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s missing", path,
                             tolk_global_tensor_names[i]);
    for (int dec = 0; dec < 2; dec++) {
        int nl = dec ? w->hp.n_text_layer : w->hp.n_audio_layer;
        for (int l = 0; l < nl; l++)
            for (int i = 0; i < N_BLOCK; i++) {
                const block_entry *e = &k_block[i];
                if (e->optional || (e->decoder_only && !dec)) continue;
                const char *stack = dec ? "decoder" : "encoder";
                if (!tolk_weights_getf(w, "%s.blocks.%d.%s", stack, l, e->suffix))
                    return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s.blocks.%d.%s missing",
                                     path, stack, l, e->suffix);
            }
    }
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Table building and lookup                                                */
/* ------------------------------------------------------------------------ */

tolk_weights *tolk_weights_new(tolk_model_format format, const char *path) {
    tolk_weights *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->format = format;
    w->path = strdup(path ? path : "(memory)");
    if (!w->path) {
        free(w);
        return NULL;
    }
    return w;
}

/* Grow a pointer array by one slot; 0 on success. */
static int grow_ptrs(void ***arr, size_t **sizes, int n) {
    void **a = realloc(*arr, sizeof(void *) * (size_t)(n + 1));
    if (!a) return -1;
    *arr = a;
    if (sizes) {
        size_t *s = realloc(*sizes, sizeof(size_t) * (size_t)(n + 1));
        if (!s) return -1;
        *sizes = s;
    }
    return 0;
}

int tolk_weights_keep(tolk_weights *w, void *base, size_t size, int mapped) {
    if (!base) return 0;
    if (mapped) {
        if (grow_ptrs(&w->maps, &w->map_sizes, w->n_maps)) return -1;
        w->maps[w->n_maps] = base;
        w->map_sizes[w->n_maps] = size;
        w->n_maps++;
    } else {
        if (grow_ptrs(&w->owned, NULL, w->n_owned)) return -1;
        w->owned[w->n_owned++] = base;
    }
    return 0;
}

void *tolk_weights_alloc(tolk_weights *w, size_t bytes) {
    size_t rounded;
    if (bytes == 0 || !tolk_add_size(bytes, 63, &rounded)) return NULL;
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) return NULL;
    memset(p, 0, rounded);
    if (tolk_weights_keep(w, p, rounded, 0)) {
        free(p);
        return NULL;
    }
    return p;
}

tolk_status tolk_weights_add(tolk_ctx *ctx, tolk_weights *w, const char *name, tolk_dtype dtype,
                             int ndim, const int64_t *shape, const void *data, const float *scale) {
    if (ndim < 1 || ndim > TOLK_MAX_DIMS)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has %d dimensions", w->path, name,
                         ndim);
    size_t esz = tolk_dtype_size(dtype), nel = 1, bytes;
    if (esz == 0)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: tensor %s: bad dtype", w->path, name);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > ((int64_t)1 << 40) ||
            !tolk_mul_size(nel, (size_t)shape[i], &nel))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has an absurd dimension %lld",
                             w->path, name, (long long)shape[i]);
    }
    if (!tolk_mul_size(nel, esz, &bytes))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s is too large", w->path, name);
    if (!data) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has no data", w->path, name);
    if (dtype == TOLK_DT_I8 && !scale)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: int8 tensor %s has no scale", w->path, name);
    if (w->n_tensors == w->n_tensors_cap) {
        int cap = w->n_tensors_cap ? w->n_tensors_cap * 2 : 256;
        if (cap > (1 << 20))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: too many tensors", w->path);
        tolk_tensor *t = realloc(w->tensors, sizeof *t * (size_t)cap);
        if (!t) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", w->path);
        w->tensors = t;
        w->n_tensors_cap = cap;
    }
    if ((uintptr_t)data % esz != 0) { /* misaligned in the file: copy */
        void *copy = tolk_weights_alloc(w, bytes);
        if (!copy)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: tensor %s: cannot allocate %zu bytes",
                             w->path, name, bytes);
        memcpy(copy, data, bytes);
        data = copy;
    }
    if (scale && (uintptr_t)scale % sizeof(float) != 0) {
        size_t sb = (size_t)shape[0] * sizeof(float);
        float *copy = tolk_weights_alloc(w, sb);
        if (!copy)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: tensor %s: out of memory", w->path, name);
        memcpy(copy, scale, sb);
        scale = copy;
    }
    tolk_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", w->path);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->scale = dtype == TOLK_DT_I8 ? scale : NULL;
    w->n_tensors++;
    w->sorted = 0;
    return TOLK_OK;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const tolk_tensor *)a)->name, ((const tolk_tensor *)b)->name);
}

const tolk_tensor *tolk_weights_get(const tolk_weights *w, const char *name) {
    if (!w || !name || w->n_tensors <= 0) return NULL;
    if (w->sorted) {
        tolk_tensor key;
        key.name = (char *)name;
        return bsearch(&key, w->tensors, (size_t)w->n_tensors, sizeof key, cmp_tensor);
    }
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) return &w->tensors[i];
    return NULL;
}

const tolk_tensor *tolk_weights_getf(const tolk_weights *w, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) return NULL;
    return tolk_weights_get(w, buf);
}

/* Check that every id of a config list lies in [0, n_vocab). */
static tolk_status check_ids(tolk_ctx *ctx, const char *path, const tolk_weights *w,
                             const char *what, const int *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= w->hp.n_vocab)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s holds token id %d outside [0, %d)", path,
                             what, ids[i], w->hp.n_vocab);
    return TOLK_OK;
}

tolk_status tolk_weights_check_config(tolk_ctx *ctx, const char *path, const tolk_weights *w) {
    const tolk_model_config *c = &w->cfg;
    tolk_status st;
    if ((st = check_ids(ctx, path, w, "suppress_ids", c->suppress_ids, c->n_suppress_ids)) ||
        (st = check_ids(ctx, path, w, "suppress_ids_begin", c->begin_suppress_ids,
                        c->n_begin_suppress_ids)) ||
        (st = check_ids(ctx, path, w, "lang_ids", c->lang_ids, c->n_languages)))
        return st;
    for (int i = 0; i < c->n_alignment_heads; i++) {
        int l = c->alignment_heads[i][0], h = c->alignment_heads[i][1];
        if (l < 0 || l >= w->hp.n_text_layer || h < 0 || h >= w->hp.n_text_head)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: alignment head (%d, %d) out of range (%d layers, %d heads)", path,
                             l, h, w->hp.n_text_layer, w->hp.n_text_head);
    }
    return TOLK_OK;
}

tolk_status tolk_weights_finish(tolk_ctx *ctx, tolk_weights *w) {
    tolk_status st = tolk_hparams_check(ctx, w->path, &w->hp, TOLK_HP_TABLE);
    if (st) return st;
    tolk_model_config *c = &w->cfg;
    const int nv = w->hp.n_vocab;
    c->multilingual = tolk_vocab_is_multilingual(nv);
    const int eot = c->multilingual ? 50257 : 50256;
    if (c->lang_ids) {
        c->n_languages = c->multilingual ? c->n_languages : 0;
    } else if (c->multilingual) {
        int nl = nv - 51765 - 1; /* 99 for 51865, 100 for 51866 */
        if (nl > 0) {
            c->lang_ids = tolk_malloc_array((size_t)nl, sizeof(int));
            if (!c->lang_ids) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", w->path);
            for (int i = 0; i < nl; i++)
                c->lang_ids[i] = eot + 2 + i; /* sot + 1 + i */
            c->n_languages = nl;
        }
    }
    if (!c->begin_suppress_ids && nv > eot) {
        c->begin_suppress_ids = malloc(2 * sizeof(int));
        if (!c->begin_suppress_ids)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", w->path);
        c->begin_suppress_ids[0] = 220;
        c->begin_suppress_ids[1] = eot;
        c->n_begin_suppress_ids = 2;
    }
    if ((st = tolk_weights_check_config(ctx, w->path, w))) return st;
    if (w->n_tensors > 1) qsort(w->tensors, (size_t)w->n_tensors, sizeof(tolk_tensor), cmp_tensor);
    for (int i = 1; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i - 1].name, w->tensors[i].name))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s appears twice", w->path,
                             w->tensors[i].name);
    w->sorted = 1;
    return tolk_weights_validate(ctx, w);
}

void tolk_weights_release_data(tolk_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_tensors; i++) {
        w->tensors[i].data = NULL;
        w->tensors[i].scale = NULL;
    }
    w->mel_filters = NULL;
    for (int i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    w->owned = NULL;
    w->n_owned = 0;
    for (int i = 0; i < w->n_maps; i++)
        munmap(w->maps[i], w->map_sizes[i]);
    free(w->maps);
    free(w->map_sizes);
    w->maps = NULL;
    w->map_sizes = NULL;
    w->n_maps = 0;
}

void tolk_weights_free(tolk_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->cfg.suppress_ids);
    free(w->cfg.begin_suppress_ids);
    free(w->cfg.lang_ids);
    free(w->cfg.alignment_heads);
    for (int i = 0; i < w->vocab.n; i++)
        if (w->vocab.tokens) free(w->vocab.tokens[i]);
    free(w->vocab.tokens);
    free(w->vocab.lengths);
    for (int i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    for (int i = 0; i < w->n_maps; i++)
        munmap(w->maps[i], w->map_sizes[i]);
    free(w->maps);
    free(w->map_sizes);
    free(w->path);
    free(w->tokenizer_path);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Descriptions                                                             */
/* ------------------------------------------------------------------------ */

const char *tolk_weights_size_name(const tolk_hparams *hp) {
    const int el = hp->n_audio_layer, dl = hp->n_text_layer, d = hp->n_audio_state;
    const int ml = tolk_vocab_is_multilingual(hp->n_vocab);
    if (hp->n_text_state != d || hp->n_audio_ctx != 1500 || hp->n_text_ctx != 448) return "custom";
    if (hp->n_vocab != 51864 && hp->n_vocab != 51865 && hp->n_vocab != 51866) return "custom";
    if (el == dl) {
        if (hp->n_mels == 80) {
            if (el == 4 && d == 384) return ml ? "tiny" : "tiny.en";
            if (el == 6 && d == 512) return ml ? "base" : "base.en";
            if (el == 12 && d == 768) return ml ? "small" : "small.en";
            if (el == 24 && d == 1024) return ml ? "medium" : "medium.en";
            if (el == 32 && d == 1280 && ml) return "large-v2";
        }
        if (hp->n_mels == 128 && el == 32 && d == 1280 && ml) return "large-v3";
        return "custom";
    }
    if (el == 32 && d == 1280 && dl == 4 && hp->n_mels == 128 && ml) return "large-v3-turbo";
    if (dl == 2) {
        if (el == 32 && d == 1280 && ml)
            return hp->n_mels == 128 ? "distil-large-v3" : "distil-large-v2";
        if (el == 24 && d == 1024 && !ml && hp->n_mels == 80) return "distil-medium.en";
        if (el == 12 && d == 768 && !ml && hp->n_mels == 80) return "distil-small.en";
    }
    return "custom";
}

void tolk_weights_dtypes(const tolk_weights *w, char *buf, size_t cap) {
    if (cap == 0) return;
    buf[0] = '\0';
    unsigned seen = 0;
    for (int i = 0; i < w->n_tensors; i++)
        seen |= 1u << (unsigned)w->tensors[i].dtype;
    size_t k = 0;
    for (int dt = 0; dt <= TOLK_DT_I8 && k < cap; dt++)
        if (seen & (1u << dt))
            k += (size_t)snprintf(buf + k, cap - k, "%s%s", k ? "," : "",
                                  tolk_dtype_name((tolk_dtype)dt));
}

uint64_t tolk_weights_mem_bytes(const tolk_weights *w) {
    uint64_t b = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        b += tolk_tensor_nbytes(&w->tensors[i]);
        if (w->tensors[i].dtype == TOLK_DT_I8) b += (uint64_t)w->tensors[i].shape[0] * 4;
    }
    return b;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

tolk_status tolk_weights_load(tolk_ctx *ctx, const char *path, int use_mmap, tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_weights_load: NULL out");
    *out = NULL;
    if (!path || !*path) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_weights_load: no path");
    if (tolk_is_dir(path)) {
        char *bin = tolk_path_join(path, "model.bin");
        char *st1 = tolk_path_join(path, "model.safetensors");
        char *st2 = tolk_path_join(path, "model.safetensors.index.json");
        if (!bin || !st1 || !st2) {
            free(bin), free(st1), free(st2);
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
        }
        int is_ct2 = tolk_is_file(bin), is_st = tolk_is_file(st1) || tolk_is_file(st2);
        free(bin), free(st1), free(st2);
        if (is_ct2) return tolk_load_ct2(ctx, path, use_mmap, out);
        if (is_st) return tolk_load_safetensors(ctx, path, use_mmap, out);
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: no model.bin (CTranslate2) nor model.safetensors / "
                         "model.safetensors.index.json (Hugging Face) in this directory",
                         path);
    }
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", path,
                         errno == ENOENT ? "no such file or directory" : strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: not a model: a %s, not a regular file (expected a CTranslate2 or "
                         "Hugging Face directory, or a whisper.cpp ggml file)",
                         path,
                         S_ISCHR(sb.st_mode)    ? "character device"
                         : S_ISBLK(sb.st_mode)  ? "block device"
                         : S_ISFIFO(sb.st_mode) ? "pipe"
                         : S_ISSOCK(sb.st_mode) ? "socket"
                                                : "special file");
    /* A file: sniff the first bytes. */
    FILE *f = fopen(path, "rb");
    if (!f) return tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot open", path);
    unsigned char m[8] = {0};
    size_t got = fread(m, 1, sizeof m, f);
    fclose(f);
    uint32_t magic =
        (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    if (got >= 4 && magic == 0x67676d6cu) return tolk_load_ggml(ctx, path, use_mmap, out);
    if (got == 8 && m[7] == 0 && m[6] == 0 && m[5] == 0) { /* a small u64: safetensors? */
        unsigned char c = 0;
        f = fopen(path, "rb");
        if (f) {
            if (fseek(f, 8, SEEK_SET) != 0 || fread(&c, 1, 1, f) != 1) c = 0;
            fclose(f);
        }
        if (c == '{')
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: a safetensors file; give the Hugging Face directory that holds "
                             "it with config.json",
                             path);
    }
    if (got >= 4 && (magic == 0x67676a74u || magic == 0x67676d66u || !memcmp(m, "GGUF", 4)))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: a ggjt/ggmf/GGUF file; only whisper.cpp's ggml format is supported",
                         path);
    return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                     "%s: not a model (expected a CTranslate2 or Hugging Face directory, or a "
                     "whisper.cpp ggml file)",
                     path);
}

int tolk_tensor_matrix(const tolk_tensor *t, int64_t *rows, int64_t *cols) {
    if (!t || !t->data || t->ndim < 1 || t->ndim > TOLK_MAX_DIMS) return 0;
    int64_t r = t->shape[0], c = 1;
    if (t->ndim == 1) {
        c = r;
        r = 1;
    }
    for (int i = 1; i < t->ndim; i++) {
        if (t->shape[i] <= 0 || c > INT64_MAX / t->shape[i]) return 0;
        c *= t->shape[i];
    }
    if (r <= 0 || c <= 0 || r > INT64_MAX / c) return 0;
    if (t->dtype != TOLK_DT_F32 && t->dtype != TOLK_DT_F16 && t->dtype != TOLK_DT_BF16 &&
        t->dtype != TOLK_DT_I8)
        return 0;
    if (t->dtype == TOLK_DT_I8 && !t->scale) return 0;
    *rows = r;
    *cols = c;
    return 1;
}

/*
 * vad_model.c — load a Silero VAD v6 16 kHz model (vad_internal.h) from
 * either of the files that carry it:
 *
 *   - safetensors (silero-vad's silero_vad_16k.safetensors; the names of
 *     its tinygrad_model.py: stft_conv.weight [258, 1, 256],
 *     conv{1..4}.weight [out, in, 3] / .bias, lstm_cell.weight_ih,
 *     weight_hh [512, 128], bias_ih, bias_hh [512], final_conv.weight
 *     [1, 128, 1], final_conv.bias [1]). The state-dict names of the
 *     package's JIT / ONNX models (model.stft.forward_basis_buffer,
 *     model.encoder.N.reparam_conv.*, model.decoder.rnn.*,
 *     model.decoder.decoder.2.*, with or without a leading "_") are
 *     accepted too. Parsed by tolk_safetensors_walk (model_safetensors.c).
 *   - whisper.cpp's ggml Silero file (models/convert-silero-vad-to-ggml.py):
 *     u32 magic "ggml", i32 length + "silero-16k", i32 version major, minor,
 *     patch, i32 window 512, context 64, encoder layers 4, per layer i32
 *     in, out, kernel, i32 LSTM input, hidden, i32 final conv in, out; then
 *     ggml tensor records (tolk_ggml_read_tensor, model_ggml.c) named
 *     "_model.<state-dict name>", size-1 dimensions squeezed (the final bias
 *     is a 0-dimensional record), convolution weights and the STFT basis
 *     in float16.
 *
 * Every tensor is converted to float32 into one owned buffer; shapes are
 * checked (size-1 dimensions ignored), duplicates, missing tensors and
 * non-finite values refused with a message naming the file and the tensor.
 */
#include "mapfile.h"
#include "vad_internal.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const int tolk_vad_conv_in[VAD_N_CONV] = {VAD_BINS, 128, 64, 64};
const int tolk_vad_conv_out[VAD_N_CONV] = {128, 64, 64, 128};
const int tolk_vad_conv_stride[VAD_N_CONV] = {1, 2, 2, 1};

#define VAD_MAX_FILE ((size_t)64 << 20)

enum {
    SLOT_STFT,
    SLOT_W1,
    SLOT_B1,
    SLOT_W2,
    SLOT_B2,
    SLOT_W3,
    SLOT_B3,
    SLOT_W4,
    SLOT_B4,
    SLOT_WIH,
    SLOT_WHH,
    SLOT_BIH,
    SLOT_BHH,
    SLOT_WOUT,
    SLOT_BOUT,
    N_SLOTS
};

/* Each weight: its tinygrad name, its state-dict name (after "model."),
 * and its shape. */
static const struct {
    const char *tiny, *sd;
    int ndim;
    int64_t shape[3];
} slots[N_SLOTS] = {
    {"stft_conv.weight", "stft.forward_basis_buffer", 3, {2 * VAD_BINS, 1, VAD_NFFT}},
    {"conv1.weight", "encoder.0.reparam_conv.weight", 3, {128, VAD_BINS, 3}},
    {"conv1.bias", "encoder.0.reparam_conv.bias", 1, {128}},
    {"conv2.weight", "encoder.1.reparam_conv.weight", 3, {64, 128, 3}},
    {"conv2.bias", "encoder.1.reparam_conv.bias", 1, {64}},
    {"conv3.weight", "encoder.2.reparam_conv.weight", 3, {64, 64, 3}},
    {"conv3.bias", "encoder.2.reparam_conv.bias", 1, {64}},
    {"conv4.weight", "encoder.3.reparam_conv.weight", 3, {128, 64, 3}},
    {"conv4.bias", "encoder.3.reparam_conv.bias", 1, {128}},
    {"lstm_cell.weight_ih", "decoder.rnn.weight_ih", 2, {VAD_GATES, VAD_HIDDEN}},
    {"lstm_cell.weight_hh", "decoder.rnn.weight_hh", 2, {VAD_GATES, VAD_HIDDEN}},
    {"lstm_cell.bias_ih", "decoder.rnn.bias_ih", 1, {VAD_GATES}},
    {"lstm_cell.bias_hh", "decoder.rnn.bias_hh", 1, {VAD_GATES}},
    {"final_conv.weight", "decoder.decoder.2.weight", 3, {1, VAD_HIDDEN, 1}},
    {"final_conv.bias", "decoder.decoder.2.bias", 1, {1}},
};

/* The slot of a tensor name, or -1 for a name the model does not use. */
static int slot_of(const char *name) {
    const char *sd = name;
    if (!strncmp(sd, "_model.", 7))
        sd += 7;
    else if (!strncmp(sd, "model.", 6))
        sd += 6;
    else
        sd = NULL;
    for (int i = 0; i < N_SLOTS; i++)
        if (!strcmp(name, slots[i].tiny) || (sd && !strcmp(sd, slots[i].sd))) return i;
    return -1;
}

static int64_t slot_nelem(int i) {
    int64_t n = 1;
    for (int d = 0; d < slots[i].ndim; d++)
        n *= slots[i].shape[d];
    return n;
}

/* Whether two shapes are equal once size-1 dimensions are dropped. */
static int same_squeezed(int na, const int64_t *a, int nb, const int64_t *b) {
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

/* What a load gathers: the destination of every slot in the buffer. */
typedef struct vad_load {
    tolk_ctx *ctx;
    const char *path;
    float *dst[N_SLOTS];
    int seen[N_SLOTS];
} vad_load;

/* Check one tensor against its slot and convert it into place. */
static tolk_status put_tensor(vad_load *L, int slot, const char *name, tolk_dtype dt, int ndim,
                              const int64_t *shape, uint64_t nelem, const void *data) {
    if (L->seen[slot])
        return tolk_fail(L->ctx, TOLK_ERR_FORMAT, "%s: tensor %s is stored twice", L->path, name);
    if (nelem != (uint64_t)slot_nelem(slot) ||
        !same_squeezed(ndim, shape, slots[slot].ndim, slots[slot].shape)) {
        char got[96] = "", want[96] = "";
        for (int d = 0; d < ndim && d < TOLK_MAX_DIMS; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)shape[d]);
        for (int d = 0; d < slots[slot].ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                     (long long)slots[slot].shape[d]);
        return tolk_fail(L->ctx, TOLK_ERR_FORMAT, "%s: tensor %s has shape [%s], expected [%s]",
                         L->path, name, got, want);
    }
    float *dst = L->dst[slot];
    const size_t n = (size_t)nelem;
    if (dt == TOLK_DT_F32)
        memcpy(dst, data, n * sizeof(float));
    else if (dt == TOLK_DT_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)data + 2 * i, 2);
            dst[i] = tolk_f16_to_f32(h);
        }
    } else if (dt == TOLK_DT_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)data + 2 * i, 2);
            dst[i] = tolk_bf16_to_f32(h);
        }
    } else {
        return tolk_fail(L->ctx, TOLK_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s", L->path, name,
                         tolk_dtype_name(dt));
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return tolk_fail(L->ctx, TOLK_ERR_FORMAT, "%s: tensor %s holds a non-finite value",
                             L->path, name);
    L->seen[slot] = 1;
    return TOLK_OK;
}

static int st_want(void *user, const char *name) {
    (void)user;
    return slot_of(name) >= 0;
}

static tolk_status st_visit(void *user, const tolk_st_tensor *t) {
    return put_tensor(user, slot_of(t->name), t->name, t->dtype, t->ndim, t->shape, t->nelem,
                      t->data);
}

/* whisper.cpp's header: model type, version, and the architecture, which
 * must be Silero v5/v6 16 kHz's. */
static tolk_status ggml_header(vad_load *L, tolk_ggml_reader *r, int version[3]) {
    tolk_ctx *ctx = L->ctx;
    const char *path = L->path;
    int32_t magic, len;
    if (tolk_ggml_i32(r, &magic) || (uint32_t)magic != 0x67676d6cu)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a ggml file (bad magic)", path);
    if (tolk_ggml_i32(r, &len) || len < 1 || len > 64 || (size_t)len > r->size - r->off)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated or bad model type", path);
    char type[65];
    memcpy(type, r->p + r->off, (size_t)len);
    type[len] = '\0';
    r->off += (size_t)len;
    if (strcmp(type, "silero-16k") != 0) {
        for (char *q = type; *q; q++)
            if (*q < 32 || *q > 126) *q = '?';
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: ggml model type '%s' is not a Silero VAD (silero-16k)", path, type);
    }
    int32_t h[3 + 3 + 3 * VAD_N_CONV + 2 + 2];
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
        if (tolk_ggml_i32(r, &h[i]))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated in the header", path);
    for (int i = 0; i < 3; i++)
        version[i] = h[i];
    int ok = h[3] == TOLK_VAD_CHUNK && h[4] == TOLK_VAD_CONTEXT && h[5] == VAD_N_CONV;
    for (int i = 0; ok && i < VAD_N_CONV; i++)
        ok = h[6 + 3 * i] == tolk_vad_conv_in[i] && h[7 + 3 * i] == tolk_vad_conv_out[i] &&
             h[8 + 3 * i] == 3;
    ok = ok && h[18] == VAD_HIDDEN && h[19] == VAD_HIDDEN && h[20] == VAD_HIDDEN && h[21] == 1;
    if (!ok)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: the architecture in the header (window %d, context %d, %d encoder "
                         "layers, ...) is not Silero VAD v6 16 kHz's",
                         path, h[3], h[4], h[5]);
    return TOLK_OK;
}

static tolk_status ggml_tensors(vad_load *L, tolk_ggml_reader *r) {
    tolk_ggml_tensor t;
    while (r->off < r->size) {
        tolk_status st = tolk_ggml_read_tensor(L->ctx, L->path, r, 0, &t);
        if (st) return st;
        int slot = slot_of(t.name);
        if (slot < 0) continue;
        if ((st = put_tensor(L, slot, t.name, t.dtype, t.ndim, t.shape, t.nelem, t.data)))
            return st;
    }
    return TOLK_OK;
}

/* Parse a model file held in memory into v (its buffer already laid out). */
static tolk_status vad_parse(tolk_ctx *ctx, const char *path, const uint8_t *data, size_t size,
                             struct tolk_vad *v) {
    vad_load L;
    memset(&L, 0, sizeof L);
    L.ctx = ctx;
    L.path = path;
    float *p = v->buf;
    for (int i = 0; i < N_SLOTS; i++) {
        L.dst[i] = p;
        p += slot_nelem(i);
    }
    tolk_status st;
    if (size >= 4 && data[0] == 'l' && data[1] == 'm' && data[2] == 'g' && data[3] == 'g') {
        tolk_ggml_reader r = {data, size, 0};
        v->format = "ggml";
        st = ggml_header(&L, &r, v->version);
        if (!st) st = ggml_tensors(&L, &r);
    } else if (size >= 9 && data[8] == '{') {
        v->format = "safetensors";
        st = tolk_safetensors_walk(ctx, path, data, size, st_want, st_visit, &L);
    } else {
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a Silero VAD model (neither safetensors nor ggml)", path);
    }
    if (st) return st;
    for (int i = 0; i < N_SLOTS; i++)
        if (!L.seen[i])
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s is missing", path, slots[i].tiny);
    v->stft = L.dst[SLOT_STFT];
    for (int i = 0; i < VAD_N_CONV; i++) {
        v->conv_w[i] = L.dst[SLOT_W1 + 2 * i];
        v->conv_b[i] = L.dst[SLOT_B1 + 2 * i];
    }
    v->w_ih = L.dst[SLOT_WIH];
    v->w_hh = L.dst[SLOT_WHH];
    v->b_ih = L.dst[SLOT_BIH];
    v->b_hh = L.dst[SLOT_BHH];
    v->w_out = L.dst[SLOT_WOUT];
    v->b_out = L.dst[SLOT_BOUT][0];
    float *bg = p; /* after the slots */
    for (int i = 0; i < VAD_GATES; i++)
        bg[i] = v->b_ih[i] + v->b_hh[i];
    v->b_gates = bg;
    return TOLK_OK;
}

tolk_status tolk_vad_load_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                 tolk_vad **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_load_memory: NULL out");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL data", name);
    struct tolk_vad *v = calloc(1, sizeof *v);
    size_t total = VAD_GATES;
    for (int i = 0; i < N_SLOTS; i++)
        total += (size_t)slot_nelem(i);
    if (v) {
        v->buf = calloc(total, sizeof(float));
        v->path = strdup(name);
    }
    if (!v || !v->buf || !v->path) {
        tolk_vad_free(v);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    }
    tolk_status st = vad_parse(ctx, name, data, size, v);
    if (st) {
        tolk_vad_free(v);
        return st;
    }
    *out = v;
    return TOLK_OK;
}

/* The model file inside a directory: the first present of these. */
static const char *const dir_files[] = {
    "silero_vad_16k_op15.safetensors", /* scripts/get-model: the package's model */
    "silero_vad_16k.safetensors",      /* as the silero-vad wheel ships it */
    "ggml-silero-v6.2.0.bin",          /* whisper.cpp's */
    NULL,
};

tolk_status tolk_vad_load(tolk_ctx *ctx, const char *path, tolk_vad **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_load: NULL out");
    *out = NULL;
    tolk_clear_error(ctx);
    if (!path) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_load: NULL path");
    char *file = NULL;
    if (tolk_is_dir(path)) {
        for (int i = 0; dir_files[i] && !file; i++) {
            char *p = tolk_path_join(path, dir_files[i]);
            if (!p) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
            if (tolk_is_file(p))
                file = p;
            else
                free(p);
        }
        if (!file)
            return tolk_fail(ctx, TOLK_ERR_IO,
                             "%s: no Silero VAD model in this directory (%s, %s or %s)", path,
                             dir_files[0], dir_files[1], dir_files[2]);
        path = file;
    }
    int64_t fsz = tolk_file_size(path);
    tolk_status st;
    if (fsz > (int64_t)VAD_MAX_FILE) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %lld bytes is too large for a Silero VAD model",
                       path, (long long)fsz);
    } else {
        tolk_mapfile m;
        st = tolk_mapfile_open(ctx, path, 0, &m);
        if (!st) {
            st = tolk_vad_load_memory(ctx, path, m.data, m.size, out);
            tolk_mapfile_close(&m);
        }
    }
    free(file);
    return st;
}

void tolk_vad_free(tolk_vad *v) {
    if (!v) return;
    free(v->buf);
    free(v->path);
    free(v);
}

/*
 * model_writer.c — writes random-weight Whisper models in the CTranslate2,
 * Hugging Face safetensors and whisper.cpp ggml layouts (see
 * model_writer.h). The layouts follow the published formats (CTranslate2
 * specs/model_spec.py serialisation, the safetensors header format,
 * whisper.cpp's convert-pt-to-ggml.py output); values are deterministic.
 */
#include "model_writer.h"

#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int mw_k(const char *name, int64_t i, uint64_t seed) {
    uint64_t h = mix64(name_hash(name) ^ mix64(seed) ^ mix64((uint64_t)i * 0x2545f4914f6cdd1dull));
    return (int)(h % 511) - 255;
}

float mw_value(const char *name, int64_t i, uint64_t seed) {
    return (float)mw_k(name, i, seed) / 256.0f;
}

float mw_value_i8(const char *name, int64_t i, uint64_t seed) {
    return (float)(mw_k(name, i, seed) / 2) / 128.0f;
}

mw_spec mw_spec_make(int n_mels, int n_vocab, int d, int n_audio_layer, int n_text_layer) {
    mw_spec s;
    memset(&s, 0, sizeof s);
    int heads = d / 64 > 0 ? d / 64 : 1;
    s.hp.n_mels = n_mels;
    s.hp.n_vocab = n_vocab;
    s.hp.n_audio_ctx = 1500;
    s.hp.n_audio_state = d;
    s.hp.n_audio_head = heads;
    s.hp.n_audio_layer = n_audio_layer;
    s.hp.n_text_ctx = 448;
    s.hp.n_text_state = d;
    s.hp.n_text_head = heads;
    s.hp.n_text_layer = n_text_layer;
    s.dtype = TOLK_DT_F16;
    s.dtype_1d = TOLK_DT_F32;
    s.seed = 1;
    s.write_vocab = 1;
    s.write_generation_config = 1;
    return s;
}

/* ------------------------------------------------------------------------ */
/* Canonical tensor list                                                    */
/* ------------------------------------------------------------------------ */

typedef struct mw_tensor {
    char name[128];
    int ndim;
    int64_t shape[4];
} mw_tensor;

static const char *const k_block_suffix[] = {
    "attn.query.weight",
    "attn.query.bias",
    "attn.key.weight",
    "attn.value.weight",
    "attn.value.bias",
    "attn.out.weight",
    "attn.out.bias",
    "attn_ln.weight",
    "attn_ln.bias",
    "cross_attn.query.weight",
    "cross_attn.query.bias",
    "cross_attn.key.weight",
    "cross_attn.value.weight",
    "cross_attn.value.bias",
    "cross_attn.out.weight",
    "cross_attn.out.bias",
    "cross_attn_ln.weight",
    "cross_attn_ln.bias",
    "mlp.0.weight",
    "mlp.0.bias",
    "mlp.2.weight",
    "mlp.2.bias",
    "mlp_ln.weight",
    "mlp_ln.bias",
};

/* Every canonical tensor of s (no key biases); *n set; heap array. */
static mw_tensor *mw_list(const mw_spec *s, int *n) {
    int nb = (int)(sizeof k_block_suffix / sizeof k_block_suffix[0]);
    int cap = TOLK_N_GLOBAL_TENSORS + (s->hp.n_audio_layer + s->hp.n_text_layer) * nb;
    mw_tensor *t = calloc((size_t)cap, sizeof *t);
    int k = 0;
    for (int i = 0; i < TOLK_N_GLOBAL_TENSORS; i++)
        snprintf(t[k++].name, sizeof t->name, "%s", tolk_global_tensor_names[i]);
    for (int dec = 0; dec < 2; dec++) {
        int nl = dec ? s->hp.n_text_layer : s->hp.n_audio_layer;
        for (int l = 0; l < nl; l++)
            for (int j = 0; j < nb; j++) {
                if (!dec && !strncmp(k_block_suffix[j], "cross_", 6)) continue;
                snprintf(t[k++].name, sizeof t->name, "%s.blocks.%d.%s",
                         dec ? "decoder" : "encoder", l, k_block_suffix[j]);
            }
    }
    for (int i = 0; i < k; i++) {
        tolk_weights_expected_shape(&s->hp, t[i].name, &t[i].ndim, t[i].shape);
        if (s->bad_shape && !strcmp(s->bad_shape, t[i].name)) t[i].shape[0] += 1;
    }
    *n = k;
    return t;
}

static int64_t mw_nelem(const mw_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static const mw_tensor *mw_find(const mw_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}

static int omitted(const mw_spec *s, const char *name) {
    return s->omit && !strcmp(s->omit, name);
}

/* Encode n values of tensor `name` from element offset i0 in dtype into
 * out (bytes written returned). zero: write zeros instead. */
static size_t encode(const mw_spec *s, const char *name, int64_t i0, int64_t n, tolk_dtype dt,
                     int zero, uint8_t *out) {
    for (int64_t i = 0; i < n; i++) {
        float v = zero ? 0.0f : mw_value(name, i0 + i, s->seed);
        if (dt == TOLK_DT_F32) {
            memcpy(out + 4 * i, &v, 4);
        } else if (dt == TOLK_DT_F16 || dt == TOLK_DT_BF16) {
            uint16_t h = dt == TOLK_DT_F16 ? tolk_f32_to_f16(v) : tolk_f32_to_bf16(v);
            memcpy(out + 2 * i, &h, 2);
        } else { /* I8 */
            out[i] = (uint8_t)(int8_t)(zero ? 0 : mw_k(name, i0 + i, s->seed) / 2);
        }
    }
    return (size_t)n * tolk_dtype_size(dt);
}

static int write_all(FILE *f, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int mkdir_p(const char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "model_writer: mkdir %s: %s\n", dir, strerror(errno));
    return -1;
}

static FILE *open_in(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) fprintf(stderr, "model_writer: cannot write %s\n", p);
    return f;
}

void mw_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* CTranslate2                                                              */
/* ------------------------------------------------------------------------ */

typedef struct ct2_out {
    FILE *f;
    int version;
    int err;
    int count; /* variables written */
} ct2_out;

static void ct2_u8(ct2_out *o, uint32_t v) {
    uint8_t b = (uint8_t)v;
    o->err |= write_all(o->f, &b, 1);
}
static void ct2_u16(ct2_out *o, uint32_t v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    o->err |= write_all(o->f, b, 2);
}
static void ct2_u32(ct2_out *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    o->err |= write_all(o->f, b, 4);
}
static void ct2_str(ct2_out *o, const char *s) {
    size_t n = strlen(s);
    ct2_u16(o, (uint32_t)n + 1);
    o->err |= write_all(o->f, s, n + 1);
}

static int ct2_type_id(tolk_dtype dt) {
    switch (dt) {
    case TOLK_DT_F32:
        return 0;
    case TOLK_DT_I8:
        return 1;
    case TOLK_DT_F16:
        return 4;
    case TOLK_DT_BF16:
        return 5;
    }
    return 0;
}

/* One variable header + data. */
static void ct2_var(ct2_out *o, const char *name, int rank, const int64_t *dims, tolk_dtype dt,
                    const void *data, size_t nbytes) {
    ct2_str(o, name);
    ct2_u8(o, (uint32_t)rank);
    for (int i = 0; i < rank; i++)
        ct2_u32(o, (uint32_t)dims[i]);
    size_t esz = tolk_dtype_size(dt);
    if (o->version >= 4) {
        ct2_u8(o, (uint32_t)ct2_type_id(dt));
        ct2_u32(o, (uint32_t)nbytes);
    } else {
        ct2_u8(o, (uint32_t)esz);
        ct2_u32(o, (uint32_t)(nbytes / esz));
    }
    o->err |= write_all(o->f, data, nbytes);
    o->count++;
}

static void ct2_scalar_i16(ct2_out *o, const char *name, int v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    o->count++;
    if (o->version >= 4) {
        ct2_str(o, name);
        ct2_u8(o, 0);
        ct2_u8(o, 2);
        ct2_u32(o, 2);
        o->err |= write_all(o->f, b, 2);
    } else {
        ct2_str(o, name);
        ct2_u8(o, 0);
        ct2_u8(o, 2);
        ct2_u32(o, 1);
        o->err |= write_all(o->f, b, 2);
    }
}

/* Write canonical parts (concatenated rows) as one CT2 variable; int8 for
 * quantizable weights when the spec asks, plus <name>_scale. */
static void ct2_parts(ct2_out *o, const mw_spec *s, const mw_tensor *list, int nlist,
                      const char *ct2name, const char *const *parts, int nparts, int quantizable) {
    const mw_tensor *t[3];
    int64_t rows = 0;
    for (int i = 0; i < nparts; i++) {
        if (omitted(s, parts[i])) return;
        t[i] = parts[i][0] == '!' ? NULL : mw_find(list, nlist, parts[i]);
    }
    /* parts named "!zero:<like>" are zero rows shaped like <like> */
    const mw_tensor *like = NULL;
    for (int i = 0; i < nparts; i++) {
        if (!t[i]) t[i] = like = mw_find(list, nlist, parts[i] + 6);
        rows += t[i]->shape[0];
    }
    (void)like;
    int nd = t[0]->ndim;
    int64_t dims[4];
    for (int i = 0; i < nd; i++)
        dims[i] = t[0]->shape[i];
    dims[0] = rows;
    int64_t row_elems = 1;
    for (int i = 1; i < nd; i++)
        row_elems *= dims[i];
    tolk_dtype dt = nd >= 2 ? s->dtype : s->dtype_1d;
    if (dt == TOLK_DT_I8 && (!quantizable || nd != 2)) dt = TOLK_DT_F32;
    if (o->version < 4 && dt != TOLK_DT_I8) dt = TOLK_DT_F32;
    size_t esz = tolk_dtype_size(dt);
    uint8_t *buf = malloc((size_t)(rows * row_elems) * esz + 1);
    size_t off = 0;
    for (int i = 0; i < nparts; i++) {
        int zero = parts[i][0] == '!';
        off += encode(s, t[i]->name, 0, mw_nelem(t[i]), dt, zero, buf + off);
    }
    ct2_var(o, ct2name, nd, dims, dt, buf, off);
    free(buf);
    if (dt == TOLK_DT_I8) {
        float *sc = malloc(sizeof(float) * (size_t)rows);
        for (int64_t r = 0; r < rows; r++)
            sc[r] = 128.0f;
        char sn[256];
        snprintf(sn, sizeof sn, "%s_scale", ct2name);
        ct2_var(o, sn, 1, &rows, TOLK_DT_F32, sc, sizeof(float) * (size_t)rows);
        free(sc);
    }
}

static void ct2_one(ct2_out *o, const mw_spec *s, const mw_tensor *l, int n, const char *ct2name,
                    const char *canon, int quantizable) {
    const char *parts[1] = {canon};
    ct2_parts(o, s, l, n, ct2name, parts, 1, quantizable);
}

int mw_write_ct2(const char *dir, const mw_spec *s) {
    if (mkdir_p(dir)) return -1;
    int n;
    mw_tensor *l = mw_list(s, &n);
    ct2_out o = {open_in(dir, "model.bin"), s->ct2_version ? s->ct2_version : 6, 0, 0};
    if (!o.f) {
        free(l);
        return -1;
    }
    const tolk_hparams *hp = &s->hp;
    /* count variables first: write a placeholder and patch it */
    ct2_u32(&o, (uint32_t)o.version);
    if (o.version >= 2) {
        ct2_str(&o, "WhisperSpec");
        ct2_u32(&o, 3);
    }
    long count_at = ftell(o.f);
    ct2_u32(&o, 0);
    char a[160], b[160], q[160], k[160], v[160], z[160];
    ct2_one(&o, s, l, n, "encoder/conv1/weight", "encoder.conv1.weight", 0);
    ct2_one(&o, s, l, n, "encoder/conv1/bias", "encoder.conv1.bias", 0);
    ct2_one(&o, s, l, n, "encoder/conv2/weight", "encoder.conv2.weight", 0);
    ct2_one(&o, s, l, n, "encoder/conv2/bias", "encoder.conv2.bias", 0);
    ct2_one(&o, s, l, n, "encoder/position_encodings/encodings", "encoder.positional_embedding", 0);
    ct2_one(&o, s, l, n, "encoder/layer_norm/gamma", "encoder.ln_post.weight", 0);
    ct2_one(&o, s, l, n, "encoder/layer_norm/beta", "encoder.ln_post.bias", 0);
    ct2_one(&o, s, l, n, "decoder/embeddings/weight", "decoder.token_embedding.weight", 1);
    ct2_one(&o, s, l, n, "decoder/position_encodings/encodings", "decoder.positional_embedding", 0);
    ct2_one(&o, s, l, n, "decoder/layer_norm/gamma", "decoder.ln.weight", 0);
    ct2_one(&o, s, l, n, "decoder/layer_norm/beta", "decoder.ln.bias", 0);
    if (!s->ct2_no_num_heads) {
        ct2_scalar_i16(&o, "encoder/num_heads", hp->n_audio_head);
        ct2_scalar_i16(&o, "decoder/num_heads", hp->n_text_head);
    }
    for (int dec = 0; dec < 2; dec++) {
        const char *st = dec ? "decoder" : "encoder";
        int nl = dec ? hp->n_text_layer : hp->n_audio_layer;
        for (int i = 0; i < nl; i++) {
            snprintf(q, sizeof q, "%s.blocks.%d.attn.query.weight", st, i);
            snprintf(k, sizeof k, "%s.blocks.%d.attn.key.weight", st, i);
            snprintf(v, sizeof v, "%s.blocks.%d.attn.value.weight", st, i);
            const char *w3[3] = {q, k, v};
            snprintf(a, sizeof a, "%s/layer_%d/self_attention/linear_0/weight", st, i);
            ct2_parts(&o, s, l, n, a, w3, 3, 1);
            snprintf(q, sizeof q, "%s.blocks.%d.attn.query.bias", st, i);
            snprintf(z, sizeof z, "!zero:%s.blocks.%d.attn.value.bias", st, i);
            snprintf(v, sizeof v, "%s.blocks.%d.attn.value.bias", st, i);
            const char *b3[3] = {q, z, v};
            snprintf(a, sizeof a, "%s/layer_%d/self_attention/linear_0/bias", st, i);
            ct2_parts(&o, s, l, n, a, b3, 3, 0);
            static const char *const simple[][3] = {
                {"self_attention/linear_1/weight", "attn.out.weight", "1"},
                {"self_attention/linear_1/bias", "attn.out.bias", "0"},
                {"self_attention/layer_norm/gamma", "attn_ln.weight", "0"},
                {"self_attention/layer_norm/beta", "attn_ln.bias", "0"},
                {"ffn/linear_0/weight", "mlp.0.weight", "1"},
                {"ffn/linear_0/bias", "mlp.0.bias", "0"},
                {"ffn/linear_1/weight", "mlp.2.weight", "1"},
                {"ffn/linear_1/bias", "mlp.2.bias", "0"},
                {"ffn/layer_norm/gamma", "mlp_ln.weight", "0"},
                {"ffn/layer_norm/beta", "mlp_ln.bias", "0"},
                {"attention/linear_0/weight", "cross_attn.query.weight", "1"},
                {"attention/linear_0/bias", "cross_attn.query.bias", "0"},
                {"attention/linear_2/weight", "cross_attn.out.weight", "1"},
                {"attention/linear_2/bias", "cross_attn.out.bias", "0"},
                {"attention/layer_norm/gamma", "cross_attn_ln.weight", "0"},
                {"attention/layer_norm/beta", "cross_attn_ln.bias", "0"},
            };
            for (size_t j = 0; j < sizeof simple / sizeof simple[0]; j++) {
                if (!dec && !strncmp(simple[j][0], "attention/", 10)) continue;
                snprintf(a, sizeof a, "%s/layer_%d/%s", st, i, simple[j][0]);
                snprintf(b, sizeof b, "%s.blocks.%d.%s", st, i, simple[j][1]);
                ct2_one(&o, s, l, n, a, b, simple[j][2][0] == '1');
            }
            if (!dec) continue;
            snprintf(k, sizeof k, "decoder.blocks.%d.cross_attn.key.weight", i);
            snprintf(v, sizeof v, "decoder.blocks.%d.cross_attn.value.weight", i);
            const char *w2[2] = {k, v};
            snprintf(a, sizeof a, "decoder/layer_%d/attention/linear_1/weight", i);
            ct2_parts(&o, s, l, n, a, w2, 2, 1);
            snprintf(z, sizeof z, "!zero:decoder.blocks.%d.cross_attn.value.bias", i);
            snprintf(v, sizeof v, "decoder.blocks.%d.cross_attn.value.bias", i);
            const char *b2[2] = {z, v};
            snprintf(a, sizeof a, "decoder/layer_%d/attention/linear_1/bias", i);
            ct2_parts(&o, s, l, n, a, b2, 2, 0);
        }
    }
    if (o.version >= 3) {
        ct2_u32(&o, 1);
        ct2_str(&o, "decoder/projection/weight");
        ct2_str(&o, "decoder/embeddings/weight");
    }
    fseek(o.f, count_at, SEEK_SET);
    ct2_u32(&o, (uint32_t)o.count);
    o.err |= fclose(o.f) != 0;
    free(l);
    if (o.err) {
        fprintf(stderr, "model_writer: write failed in %s\n", dir);
        return -1;
    }
    /* config.json */
    FILE *f = open_in(dir, "config.json");
    if (!f) return -1;
    int ml = hp->n_vocab >= 51865, eot = ml ? 50257 : 50256;
    fprintf(f, "{\n  \"alignment_heads\": [[%d, 0]],\n  \"lang_ids\": [", hp->n_text_layer - 1);
    int nlang = ml ? hp->n_vocab - 51765 - 1 : 0;
    for (int i = 0; i < nlang; i++)
        fprintf(f, "%s%d", i ? ", " : "", eot + 2 + i);
    if (hp->n_vocab > eot)
        fprintf(f, "],\n  \"suppress_ids\": [1, 2, 7],\n  \"suppress_ids_begin\": [220, %d]\n}\n",
                eot);
    else
        fprintf(f, "],\n  \"suppress_ids\": [1, 2, 7],\n  \"suppress_ids_begin\": []\n}\n");
    if (fclose(f)) return -1;
    if (s->write_vocab) {
        f = open_in(dir, "vocabulary.txt");
        if (!f) return -1;
        /* Whisper's special tokens under their names (CTranslate2 finds them
         * by name): multilingual layout, languages between <|startoftranscript|>
         * and <|translate|> */
        const int nl = ml ? hp->n_vocab - 51765 - 1 : 0, tr = eot + 2 + nl;
        static const char *const after[] = {"<|translate|>", "<|transcribe|>",
                                            "<|startoflm|>", "<|startofprev|>",
                                            "<|nospeech|>",  "<|notimestamps|>"};
        for (int i = 0; i < hp->n_vocab; i++) {
            if (ml && i == eot)
                fprintf(f, "<|endoftext|>\n");
            else if (ml && i == eot + 1)
                fprintf(f, "<|startoftranscript|>\n");
            else if (ml && i > eot + 1 && i < tr)
                fprintf(f, "<|lang%d|>\n", i - eot - 2);
            else if (ml && i >= tr && i < tr + 6)
                fprintf(f, "%s\n", after[i - tr]);
            else if (ml && i >= tr + 6)
                fprintf(f, "<|%.2f|>\n", 0.02 * (i - tr - 6));
            else
                fprintf(f, "tok%d\n", i);
        }
        if (fclose(f)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* safetensors                                                              */
/* ------------------------------------------------------------------------ */

/* canonical -> transformers name */
static void hf_name(const char *c, char *out, size_t cap) {
    static const char *const fixed[][2] = {
        {"encoder.positional_embedding", "model.encoder.embed_positions.weight"},
        {"encoder.ln_post.weight", "model.encoder.layer_norm.weight"},
        {"encoder.ln_post.bias", "model.encoder.layer_norm.bias"},
        {"decoder.token_embedding.weight", "model.decoder.embed_tokens.weight"},
        {"decoder.positional_embedding", "model.decoder.embed_positions.weight"},
        {"decoder.ln.weight", "model.decoder.layer_norm.weight"},
        {"decoder.ln.bias", "model.decoder.layer_norm.bias"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(c, fixed[i][0])) {
            snprintf(out, cap, "%s", fixed[i][1]);
            return;
        }
    const char *bl = strstr(c, ".blocks.");
    if (!bl) {
        snprintf(out, cap, "model.%s", c);
        return;
    }
    int layer = atoi(bl + 8);
    const char *rest = strchr(bl + 8, '.') + 1;
    static const char *const subs[][2] = {
        {"cross_attn_ln.", "encoder_attn_layer_norm."},
        {"cross_attn.query.", "encoder_attn.q_proj."},
        {"cross_attn.key.", "encoder_attn.k_proj."},
        {"cross_attn.value.", "encoder_attn.v_proj."},
        {"cross_attn.out.", "encoder_attn.out_proj."},
        {"attn_ln.", "self_attn_layer_norm."},
        {"attn.query.", "self_attn.q_proj."},
        {"attn.key.", "self_attn.k_proj."},
        {"attn.value.", "self_attn.v_proj."},
        {"attn.out.", "self_attn.out_proj."},
        {"mlp_ln.", "final_layer_norm."},
        {"mlp.0.", "fc1."},
        {"mlp.2.", "fc2."},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        size_t k = strlen(subs[i][0]);
        if (!strncmp(rest, subs[i][0], k)) {
            snprintf(out, cap, "model.%.7s.layers.%d.%s%s", c, layer, subs[i][1], rest + k);
            return;
        }
    }
    snprintf(out, cap, "%s", c);
}

static const char *st_dtype_name(tolk_dtype dt) {
    return dt == TOLK_DT_F32 ? "F32" : dt == TOLK_DT_BF16 ? "BF16" : "F16";
}

/* Write one shard holding tensors l[i] with i % nshards == shard. */
static int st_write_shard(const char *dir, const char *file, const mw_spec *s, const mw_tensor *l,
                          int n, int shard, int nshards) {
    size_t hcap = 1 << 20, hl = 0;
    char *h = malloc(hcap);
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    char hn[160];
    for (int i = 0; i < n; i++) {
        if (i % nshards != shard || omitted(s, l[i].name)) continue;
        tolk_dtype dt = l[i].ndim >= 2 ? s->dtype : s->dtype_1d;
        if (dt == TOLK_DT_I8) dt = TOLK_DT_F16;
        uint64_t nb = (uint64_t)mw_nelem(&l[i]) * tolk_dtype_size(dt);
        hf_name(l[i].name, hn, sizeof hn);
        if (hcap - hl < 512) h = realloc(h, hcap *= 2);
        hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", hn,
                               st_dtype_name(dt));
        for (int d = 0; d < l[i].ndim; d++)
            hl += (size_t)snprintf(h + hl, hcap - hl, "%s%lld", d ? "," : "",
                                   (long long)l[i].shape[d]);
        hl += (size_t)snprintf(h + hl, hcap - hl, "],\"data_offsets\":[%llu,%llu]}",
                               (unsigned long long)off, (unsigned long long)(off + nb));
        off += nb;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "}");
    while (hl % 8)
        h[hl++] = ' ';
    FILE *f = open_in(dir, file);
    if (!f) {
        free(h);
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    int err = write_all(f, len, 8) | write_all(f, h, hl);
    free(h);
    if (s->sparse) {
        err |= fflush(f) != 0 || ftruncate(fileno(f), (off_t)(8 + hl + off)) != 0;
    } else {
        for (int i = 0; i < n && !err; i++) {
            if (i % nshards != shard || omitted(s, l[i].name)) continue;
            tolk_dtype dt = l[i].ndim >= 2 ? s->dtype : s->dtype_1d;
            if (dt == TOLK_DT_I8) dt = TOLK_DT_F16;
            int64_t ne = mw_nelem(&l[i]);
            uint8_t *buf = malloc((size_t)ne * 4 + 1);
            size_t nb = encode(s, l[i].name, 0, ne, dt, 0, buf);
            err |= write_all(f, buf, nb);
            free(buf);
        }
    }
    err |= fclose(f) != 0;
    return err ? -1 : 0;
}

int mw_write_safetensors(const char *dir, const mw_spec *s) {
    if (mkdir_p(dir)) return -1;
    const tolk_hparams *hp = &s->hp;
    FILE *f = open_in(dir, "config.json");
    if (!f) return -1;
    fprintf(
        f,
        "{\"architectures\": [\"WhisperForConditionalGeneration\"], \"model_type\": \"whisper\",\n"
        " \"vocab_size\": %d, \"num_mel_bins\": %d, \"d_model\": %d,\n"
        " \"encoder_layers\": %d, \"encoder_attention_heads\": %d,\n"
        " \"decoder_layers\": %d, \"decoder_attention_heads\": %d,\n"
        " \"encoder_ffn_dim\": %d, \"decoder_ffn_dim\": %d,\n"
        " \"max_source_positions\": %d, \"max_target_positions\": %d}\n",
        hp->n_vocab, hp->n_mels, hp->n_audio_state, hp->n_audio_layer, hp->n_audio_head,
        hp->n_text_layer, hp->n_text_head, 4 * hp->n_audio_state, 4 * hp->n_text_state,
        hp->n_audio_ctx, hp->n_text_ctx);
    if (fclose(f)) return -1;
    if (s->write_generation_config) {
        f = open_in(dir, "generation_config.json");
        if (!f) return -1;
        int ml = hp->n_vocab >= 51865, eot = ml ? 50257 : 50256;
        if (hp->n_vocab > eot)
            fprintf(f,
                    "{\"suppress_tokens\": [1, 2, 7], \"begin_suppress_tokens\": [220, %d],\n"
                    " \"alignment_heads\": [[%d, 0]]",
                    eot, hp->n_text_layer - 1);
        else
            fprintf(f,
                    "{\"suppress_tokens\": [1, 2, 7], \"begin_suppress_tokens\": [],\n"
                    " \"alignment_heads\": [[%d, 0]]",
                    hp->n_text_layer - 1);
        if (ml) {
            fprintf(f, ",\n \"lang_to_id\": {");
            for (int i = 0; i < hp->n_vocab - 51765 - 1; i++)
                fprintf(f, "%s\"<|l%d|>\": %d", i ? ", " : "", i, eot + 2 + i);
            fprintf(f, "}");
        }
        fprintf(f, "}\n");
        if (fclose(f)) return -1;
    }
    int n;
    mw_tensor *l = mw_list(s, &n);
    int err = 0;
    int ns = s->n_shards > 1 ? s->n_shards : 1;
    if (ns == 1) {
        err = st_write_shard(dir, "model.safetensors", s, l, n, 0, 1);
    } else {
        char file[128], hn[160];
        f = open_in(dir, "model.safetensors.index.json");
        if (!f) {
            free(l);
            return -1;
        }
        fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
        int first = 1;
        for (int i = 0; i < n; i++) {
            if (omitted(s, l[i].name)) continue;
            hf_name(l[i].name, hn, sizeof hn);
            fprintf(f, "%s\"%s\": \"model-%05d-of-%05d.safetensors\"", first ? "" : ", ", hn,
                    i % ns + 1, ns);
            first = 0;
        }
        fprintf(f, "}}\n");
        err |= fclose(f) != 0;
        for (int k = 0; k < ns && !err; k++) {
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, ns);
            err = st_write_shard(dir, file, s, l, n, k, ns);
        }
    }
    free(l);
    return err;
}

/* ------------------------------------------------------------------------ */
/* ggml                                                                     */
/* ------------------------------------------------------------------------ */

static int put_i32(FILE *f, int32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return write_all(f, b, 4);
}

int mw_write_ggml(const char *path, const mw_spec *s) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "model_writer: cannot write %s\n", path);
        return -1;
    }
    const tolk_hparams *hp = &s->hp;
    int err = put_i32(f, 0x67676d6c);
    int32_t h[11] = {hp->n_vocab,
                     hp->n_audio_ctx,
                     hp->n_audio_state,
                     hp->n_audio_head,
                     hp->n_audio_layer,
                     hp->n_text_ctx,
                     hp->n_text_state,
                     hp->n_text_head,
                     hp->n_text_layer,
                     hp->n_mels,
                     s->dtype == TOLK_DT_F32 ? 0 : 1};
    for (int i = 0; i < 11; i++)
        err |= put_i32(f, h[i]);
    err |= put_i32(f, hp->n_mels) | put_i32(f, 201);
    for (int i = 0; i < hp->n_mels * 201; i++) {
        float v = mw_value("mel_filters", i, s->seed);
        err |= write_all(f, &v, 4);
    }
    int eot = hp->n_vocab >= 51865 ? 50257 : 50256;
    int nt = s->write_vocab ? (hp->n_vocab > eot ? eot : hp->n_vocab) : 0;
    err |= put_i32(f, nt);
    char tok[32];
    for (int i = 0; i < nt; i++) {
        tok[0] = (char)(i & 0xff);
        int len = 1 + snprintf(tok + 1, sizeof tok - 1, "%d", i);
        err |= put_i32(f, len) | write_all(f, tok, (size_t)len);
    }
    int n;
    mw_tensor *l = mw_list(s, &n);
    for (int i = 0; i < n && !err; i++) {
        if (omitted(s, l[i].name)) continue;
        int conv_bias =
            !strcmp(l[i].name, "encoder.conv1.bias") || !strcmp(l[i].name, "encoder.conv2.bias");
        int pos = strstr(l[i].name, "positional_embedding") != NULL;
        tolk_dtype dt = (l[i].ndim < 2 || pos) ? TOLK_DT_F32 : s->dtype;
        if (dt == TOLK_DT_I8) dt = TOLK_DT_F16;
        int nd = conv_bias ? 2 : l[i].ndim;
        int64_t shape[4] = {l[i].shape[0], 1, 1, 1};
        for (int d = 1; d < l[i].ndim; d++)
            shape[d] = l[i].shape[d];
        size_t nl = strlen(l[i].name);
        err |= put_i32(f, nd) | put_i32(f, (int32_t)nl) |
               put_i32(f, dt == TOLK_DT_F32   ? 0
                          : dt == TOLK_DT_F16 ? 1
                                              : 30);
        for (int d = nd - 1; d >= 0; d--)
            err |= put_i32(f, (int32_t)shape[d]);
        err |= write_all(f, l[i].name, nl);
        int64_t ne = mw_nelem(&l[i]);
        uint8_t *buf = malloc((size_t)ne * 4 + 1);
        size_t nb = encode(s, l[i].name, 0, ne, dt, 0, buf);
        err |= write_all(f, buf, nb);
        free(buf);
    }
    free(l);
    err |= fclose(f) != 0;
    if (err) fprintf(stderr, "model_writer: write failed: %s\n", path);
    return err ? -1 : 0;
}

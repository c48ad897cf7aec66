/*
 * model_safetensors.c — load a Hugging Face Whisper directory
 * (transformers' WhisperForConditionalGeneration) into the uniform weights
 * table (weights.h).
 *
 * Reproduces the reading side of the safetensors format
 * (huggingface/safetensors, docs "format"): u64 little-endian header length
 * N, N bytes of JSON {"name": {"dtype": "F16", "shape": [..],
 * "data_offsets": [begin, end]}, "__metadata__": {..}}, then the data
 * section; offsets are relative to byte 8 + N. Sharded checkpoints list
 * their files in model.safetensors.index.json ("weight_map").
 *
 * Hyper-parameters come from config.json (transformers' WhisperConfig:
 * num_mel_bins, vocab_size, d_model, encoder_layers, ...); generation
 * defaults from generation_config.json when present (suppress_tokens,
 * begin_suppress_tokens, alignment_heads, lang_to_id). transformers' names
 * (model.encoder.layers.N.self_attn.q_proj.weight, fc1, final_layer_norm,
 * encoder_attn, embed_tokens, embed_positions, ...) are mapped to the
 * openai-whisper names; the tied proj_out.weight is checked and dropped.
 */
#include "internal.h"
#include "mapfile.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_MAX_SHARDS 256

/* What one load gathers besides tensors: the tied output projection. */
typedef struct st_state {
    tolk_ctx *ctx;
    tolk_weights *w;
    const void *proj_data; /* proj_out.weight, if stored */
    size_t proj_bytes;
    tolk_dtype proj_dtype;
    const char *proj_file;
    const char *path; /* the file being parsed */
} st_state;

/* Map a transformers name (without "model.") to the canonical one in out;
 * returns 1 when mapped, 0 for names tolk does not use. */
static int hf_to_canonical(const char *n, char *out, size_t cap) {
    static const struct {
        const char *hf, *canon;
    } globals[] = {
        {"encoder.conv1.weight", "encoder.conv1.weight"},
        {"encoder.conv1.bias", "encoder.conv1.bias"},
        {"encoder.conv2.weight", "encoder.conv2.weight"},
        {"encoder.conv2.bias", "encoder.conv2.bias"},
        {"encoder.embed_positions.weight", "encoder.positional_embedding"},
        {"encoder.layer_norm.weight", "encoder.ln_post.weight"},
        {"encoder.layer_norm.bias", "encoder.ln_post.bias"},
        {"decoder.embed_tokens.weight", "decoder.token_embedding.weight"},
        {"decoder.embed_positions.weight", "decoder.positional_embedding"},
        {"decoder.layer_norm.weight", "decoder.ln.weight"},
        {"decoder.layer_norm.bias", "decoder.ln.bias"},
    };
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (!strcmp(n, globals[i].hf)) {
            snprintf(out, cap, "%s", globals[i].canon);
            return 1;
        }
    static const struct {
        const char *hf, *canon;
    } block[] = {
        {"self_attn.q_proj.", "attn.query."},
        {"self_attn.k_proj.", "attn.key."},
        {"self_attn.v_proj.", "attn.value."},
        {"self_attn.out_proj.", "attn.out."},
        {"self_attn_layer_norm.", "attn_ln."},
        {"encoder_attn.q_proj.", "cross_attn.query."},
        {"encoder_attn.k_proj.", "cross_attn.key."},
        {"encoder_attn.v_proj.", "cross_attn.value."},
        {"encoder_attn.out_proj.", "cross_attn.out."},
        {"encoder_attn_layer_norm.", "cross_attn_ln."},
        {"fc1.", "mlp.0."},
        {"fc2.", "mlp.2."},
        {"final_layer_norm.", "mlp_ln."},
    };
    const char *stack;
    if (!strncmp(n, "encoder.layers.", 15))
        stack = "encoder";
    else if (!strncmp(n, "decoder.layers.", 15))
        stack = "decoder";
    else
        return 0;
    const char *p = n + 15;
    int layer = 0, nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 6)
        layer = layer * 10 + (*p++ - '0'), nd++;
    if (nd == 0 || nd > 5 || *p != '.') return 0;
    p++;
    for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
        size_t k = strlen(block[i].hf);
        if (strncmp(p, block[i].hf, k) != 0) continue;
        const char *leaf = p + k;
        if (strcmp(leaf, "weight") != 0 && strcmp(leaf, "bias") != 0) return 0;
        snprintf(out, cap, "%s.blocks.%d.%s%s", stack, layer, block[i].canon, leaf);
        return 1;
    }
    return 0;
}

static int st_dtype(const char *s, tolk_dtype *dt, size_t *esz) {
    if (!strcmp(s, "F32")) return *dt = TOLK_DT_F32, *esz = 4, 1;
    if (!strcmp(s, "F16")) return *dt = TOLK_DT_F16, *esz = 2, 1;
    if (!strcmp(s, "BF16")) return *dt = TOLK_DT_BF16, *esz = 2, 1;
    return 0;
}

/* Whether every value of a float tensor is zero (bytes read unaligned). */
static int all_zero(const void *data, tolk_dtype dt, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        if (dt == TOLK_DT_F32) {
            float x;
            memcpy(&x, p + 4 * i, 4);
            if (x != 0.0f) return 0;
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if ((h & 0x7fffu) != 0) return 0; /* +-0 in both f16 and bf16 */
        }
    }
    return 1;
}

tolk_status tolk_safetensors_walk(tolk_ctx *ctx, const char *path, const uint8_t *data, size_t size,
                                  tolk_st_want_fn want, tolk_st_visit_fn visit, void *user) {
    if (size < 8) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: truncated (%zu bytes)", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | data[i];
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: header length %llu does not fit the file (%zu bytes)", path,
                         (unsigned long long)n, size);
    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)n);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    const uint8_t *base = data + 8 + n;
    const uint64_t avail = size - 8 - n;
    tolk_status st = TOLK_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (!strcmp(name, "__metadata__")) continue;
        if (!cJSON_IsObject(e)) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s: entry is not an object", path,
                           name);
            break;
        }
        if (want && !want(user, name)) continue; /* unused */
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) ||
            cJSON_GetArraySize(jo) != 2) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s: bad dtype/shape/data_offsets",
                           path, name);
            break;
        }
        tolk_st_tensor t;
        memset(&t, 0, sizeof t);
        t.name = name;
        size_t esz;
        if (!st_dtype(jd->valuestring, &t.dtype, &esz)) {
            st = tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (not supported)",
                           path, name, jd->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd < 1 || nd > TOLK_MAX_DIMS) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has %d dimensions", path, name, nd);
            break;
        }
        uint64_t nel = 1;
        int k = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, js) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 1e12 ||
                d->valuedouble != (double)(int64_t)d->valuedouble) {
                st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s has an absurd dimension", path,
                               name);
                break;
            }
            t.shape[k] = (int64_t)d->valuedouble;
            if (nel > UINT64_MAX / (uint64_t)t.shape[k]) {
                st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s is too large", path, name);
                break;
            }
            nel *= (uint64_t)t.shape[k++];
        }
        if (st) break;
        t.ndim = nd;
        const cJSON *o0 = cJSON_GetArrayItem(jo, 0), *o1 = cJSON_GetArrayItem(jo, 1);
        if (!cJSON_IsNumber(o0) || !cJSON_IsNumber(o1) || o0->valuedouble < 0 ||
            o1->valuedouble < o0->valuedouble || o1->valuedouble > (double)avail ||
            o0->valuedouble != (double)(uint64_t)o0->valuedouble ||
            o1->valuedouble != (double)(uint64_t)o1->valuedouble) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: tensor %s: data_offsets outside the data section (%llu bytes)",
                           path, name, (unsigned long long)avail);
            break;
        }
        uint64_t b0 = (uint64_t)o0->valuedouble, b1 = (uint64_t)o1->valuedouble;
        if (nel > UINT64_MAX / esz || b1 - b0 != nel * esz) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: tensor %s: %llu bytes stored, its shape needs %llu", path, name,
                           (unsigned long long)(b1 - b0), (unsigned long long)(nel * esz));
            break;
        }
        t.nelem = nel;
        t.data = base + b0;
        t.bytes = (size_t)(b1 - b0);
        if ((st = visit(user, &t))) break;
    }
    cJSON_Delete(root);
    return st;
}

/* tolk_safetensors_walk callbacks of a Whisper checkpoint: the tensors
 * tolk uses are the tied projection and those with a canonical name. */
static int st_want(void *user, const char *name) {
    (void)user;
    char canon[256];
    const char *hf = !strncmp(name, "model.", 6) ? name + 6 : name;
    return !strcmp(hf, "proj_out.weight") || hf_to_canonical(hf, canon, sizeof canon);
}

static tolk_status st_visit(void *user, const tolk_st_tensor *t) {
    st_state *s = user;
    char canon[256];
    const char *hf = !strncmp(t->name, "model.", 6) ? t->name + 6 : t->name;
    if (!strcmp(hf, "proj_out.weight")) {
        s->proj_data = t->data;
        s->proj_bytes = t->bytes;
        s->proj_dtype = t->dtype;
        s->proj_file = s->path;
        return TOLK_OK;
    }
    if (!hf_to_canonical(hf, canon, sizeof canon)) return TOLK_OK;
    /* openai-whisper's keys have no bias: keep a stored one only if non-zero */
    size_t cl = strlen(canon);
    if (cl > 9 && !strcmp(canon + cl - 9, ".key.bias") && all_zero(t->data, t->dtype, t->nelem))
        return TOLK_OK;
    return tolk_weights_add(s->ctx, s->w, canon, t->dtype, t->ndim, t->shape, t->data, NULL);
}

/* Parse one .safetensors buffer and add the tensors tolk uses. */
static tolk_status st_parse(st_state *s, const char *path, const uint8_t *data, size_t size) {
    s->path = path;
    return tolk_safetensors_walk(s->ctx, path, data, size, st_want, st_visit, s);
}

/* An int from a JSON object (must be present and an integer in range). */
static tolk_status json_int(tolk_ctx *ctx, const char *path, const cJSON *root, const char *key,
                            int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e8 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %s missing or not a non-negative integer", path,
                         key);
    *out = (int)v->valuedouble;
    return TOLK_OK;
}

/* Hyper-parameters from transformers' WhisperConfig (config.json text). */
static tolk_status hf_config(tolk_ctx *ctx, const char *path, const char *text, tolk_hparams *hp) {
    if (!text) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: missing", path);
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: invalid JSON", path);
    }
    int d = 0, effn = 0, dffn = 0;
    tolk_status st;
    if ((st = json_int(ctx, path, root, "num_mel_bins", &hp->n_mels)) ||
        (st = json_int(ctx, path, root, "vocab_size", &hp->n_vocab)) ||
        (st = json_int(ctx, path, root, "max_source_positions", &hp->n_audio_ctx)) ||
        (st = json_int(ctx, path, root, "d_model", &d)) ||
        (st = json_int(ctx, path, root, "encoder_attention_heads", &hp->n_audio_head)) ||
        (st = json_int(ctx, path, root, "encoder_layers", &hp->n_audio_layer)) ||
        (st = json_int(ctx, path, root, "max_target_positions", &hp->n_text_ctx)) ||
        (st = json_int(ctx, path, root, "decoder_attention_heads", &hp->n_text_head)) ||
        (st = json_int(ctx, path, root, "decoder_layers", &hp->n_text_layer))) {
        cJSON_Delete(root);
        return st;
    }
    hp->n_audio_state = hp->n_text_state = d;
    if (cJSON_GetObjectItemCaseSensitive(root, "encoder_ffn_dim"))
        st = json_int(ctx, path, root, "encoder_ffn_dim", &effn);
    if (!st && cJSON_GetObjectItemCaseSensitive(root, "decoder_ffn_dim"))
        st = json_int(ctx, path, root, "decoder_ffn_dim", &dffn);
    cJSON_Delete(root);
    if (st) return st;
    if ((effn && (int64_t)effn != 4 * (int64_t)d) || (dffn && (int64_t)dffn != 4 * (int64_t)d))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: feed-forward width %d/%d is not 4 x d_model (%d)", path, effn, dffn,
                         d);
    return tolk_hparams_check(ctx, path, hp);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Generation defaults from generation_config.json text (optional). */
static tolk_status hf_generation_config(tolk_ctx *ctx, const char *path, const char *text,
                                        tolk_model_config *c) {
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: invalid JSON", path);
    }
    tolk_status st;
    if ((st = tolk_json_int_array(ctx, path,
                                  cJSON_GetObjectItemCaseSensitive(root, "suppress_tokens"),
                                  "suppress_tokens", &c->suppress_ids, &c->n_suppress_ids)) ||
        (st = tolk_json_int_array(
             ctx, path, cJSON_GetObjectItemCaseSensitive(root, "begin_suppress_tokens"),
             "begin_suppress_tokens", &c->begin_suppress_ids, &c->n_begin_suppress_ids)) ||
        (st = tolk_json_alignment_heads(ctx, path,
                                        cJSON_GetObjectItemCaseSensitive(root, "alignment_heads"),
                                        &c->alignment_heads, &c->n_alignment_heads))) {
        cJSON_Delete(root);
        return st;
    }
    const cJSON *l2i = cJSON_GetObjectItemCaseSensitive(root, "lang_to_id");
    if (cJSON_IsObject(l2i)) {
        int n = cJSON_GetArraySize(l2i);
        if (n > 0 && n <= 4096) {
            c->lang_ids = malloc(sizeof(int) * (size_t)n);
            if (!c->lang_ids) {
                cJSON_Delete(root);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
            }
            int k = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, l2i) {
                if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e7) {
                    cJSON_Delete(root);
                    return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: lang_to_id holds a bad id", path);
                }
                c->lang_ids[k++] = (int)e->valuedouble;
            }
            qsort(c->lang_ids, (size_t)k, sizeof(int), cmp_int);
            c->n_languages = k;
        }
    }
    cJSON_Delete(root);
    return TOLK_OK;
}

/* After all shards: the tied projection must equal the token embedding. */
static tolk_status st_check_proj(st_state *s) {
    if (!s->proj_data) return TOLK_OK;
    const tolk_tensor *e = tolk_weights_get(s->w, "decoder.token_embedding.weight");
    if (e && e->dtype == s->proj_dtype && tolk_tensor_nbytes(e) == s->proj_bytes &&
        memcmp(e->data, s->proj_data, s->proj_bytes) == 0)
        return TOLK_OK;
    return tolk_fail(s->ctx, TOLK_ERR_UNSUPPORTED,
                     "%s: tensor proj_out.weight differs from the token embedding (untied output "
                     "projection)",
                     s->proj_file);
}

tolk_status tolk_load_safetensors_memory(tolk_ctx *ctx, const char *name, const void *data,
                                         size_t size, const char *config_json, tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_safetensors_memory: NULL out");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL data", name);
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_SAFETENSORS, name);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    st_state s = {ctx, w, NULL, 0, TOLK_DT_F32, NULL, NULL};
    tolk_status st = hf_config(ctx, "config.json", config_json, &w->hp);
    if (!st) st = st_parse(&s, name, data, size);
    if (!st) st = tolk_weights_finish(ctx, w);
    if (!st) st = st_check_proj(&s);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    w->file_bytes = size;
    *out = w;
    return TOLK_OK;
}

/* Map and parse one shard file named `file` (a plain name) in dir. */
static tolk_status st_load_file(st_state *s, const char *dir, const char *file, int use_mmap) {
    char *p = tolk_path_join(dir, file);
    if (!p) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
    tolk_mapfile m;
    tolk_status st = tolk_mapfile_open(s->ctx, p, use_mmap, &m);
    if (!st && tolk_weights_keep(s->w, m.data, m.size, m.mapped)) {
        tolk_mapfile_close(&m);
        st = tolk_fail(s->ctx, TOLK_ERR_NOMEM, "%s: out of memory", p);
    }
    if (!st) {
        s->w->file_bytes += m.size;
        st = st_parse(s, p, m.data, m.size);
    }
    free(p);
    return st;
}

/* The distinct shard file names of model.safetensors.index.json. */
static tolk_status st_index(tolk_ctx *ctx, const char *path, const char *text, char ***files,
                            int *n) {
    *files = NULL;
    *n = 0;
    cJSON *root = cJSON_Parse(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: invalid JSON or no weight_map", path);
    }
    char **f = calloc(ST_MAX_SHARDS, sizeof(char *));
    if (!f) {
        cJSON_Delete(root);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    int k = 0;
    tolk_status st = TOLK_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !*e->valuestring || strchr(e->valuestring, '/') ||
            !strcmp(e->valuestring, "..") || !strcmp(e->valuestring, ".")) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s: bad shard file name", path,
                           e->string ? e->string : "?");
            break;
        }
        int seen = 0;
        for (int i = 0; i < k && !seen; i++)
            seen = !strcmp(f[i], e->valuestring);
        if (seen) continue;
        if (k == ST_MAX_SHARDS) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: more than %d shards", path, ST_MAX_SHARDS);
            break;
        }
        if (!(f[k++] = strdup(e->valuestring))) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
    }
    cJSON_Delete(root);
    if (st) {
        for (int i = 0; i < k; i++)
            free(f[i]);
        free(f);
        return st;
    }
    *files = f;
    *n = k;
    return TOLK_OK;
}

tolk_status tolk_load_safetensors(tolk_ctx *ctx, const char *dir, int use_mmap,
                                  tolk_weights **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_safetensors: NULL out");
    *out = NULL;
    if (!dir) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_load_safetensors: NULL path");
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_SAFETENSORS, dir);
    char *cfg = tolk_path_join(dir, "config.json");
    char *gen = tolk_path_join(dir, "generation_config.json");
    char *single = tolk_path_join(dir, "model.safetensors");
    char *index = tolk_path_join(dir, "model.safetensors.index.json");
    char *tok = tolk_path_join(dir, "tokenizer.json");
    char *text = NULL, **files = NULL;
    int n_files = 0;
    st_state s = {ctx, w, NULL, 0, TOLK_DT_F32, NULL, NULL};
    tolk_status st = TOLK_OK;
    if (!w || !cfg || !gen || !single || !index || !tok) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (!tolk_is_file(cfg)) {
        st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: missing (a Hugging Face model needs it)", cfg);
        goto done;
    }
    if ((st = tolk_read_text_file(ctx, cfg, (size_t)16 << 20, &text, NULL))) goto done;
    st = hf_config(ctx, cfg, text, &w->hp);
    free(text);
    text = NULL;
    if (st) goto done;
    if (tolk_is_file(gen)) {
        if ((st = tolk_read_text_file(ctx, gen, (size_t)16 << 20, &text, NULL))) goto done;
        st = hf_generation_config(ctx, gen, text, &w->cfg);
        free(text);
        text = NULL;
        if (!st) st = tolk_weights_check_config(ctx, gen, w);
        if (st) goto done;
    }
    if (tolk_is_file(single)) {
        st = st_load_file(&s, dir, "model.safetensors", use_mmap);
    } else {
        if ((st = tolk_read_text_file(ctx, index, (size_t)64 << 20, &text, NULL))) goto done;
        st = st_index(ctx, index, text, &files, &n_files);
        free(text);
        text = NULL;
        for (int i = 0; !st && i < n_files; i++)
            st = st_load_file(&s, dir, files[i], use_mmap);
    }
    if (st) goto done;
    if (tolk_is_file(tok)) {
        w->tokenizer_path = tok;
        tok = NULL;
    }
    if ((st = tolk_weights_finish(ctx, w))) goto done;
    st = st_check_proj(&s);
done:
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    free(cfg), free(gen), free(single), free(index), free(tok), free(text);
    if (st) {
        tolk_weights_free(w);
        return st;
    }
    *out = w;
    return TOLK_OK;
}

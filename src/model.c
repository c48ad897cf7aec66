/*
 * model.c — the public model API (tolk.h): tolk_model_load / free /
 * describe, default parameters and format names. Loading finds the format
 * from the content (tolk_weights_load); the network code attaches its
 * prepared weights at the marked place.
 *
 * Weights are read into memory by default (use_mmap = 0), not mapped: the
 * CPU backend uses float16 weights in place, so a mapped model file that
 * another process truncates (or rewrites) while tolk runs would kill the
 * whole process with SIGBUS at the next product, and a signal in the middle
 * of an OpenMP / OpenBLAS region cannot be turned into an error for one
 * request. The copy costs little: the same resident memory once the
 * weights are used (mapped pages count too), and the time of one read of
 * the file (base, 145 MB: about 0.2 s more at load). On CUDA the host copy
 * is released as soon as the weights are on the device. use_mmap = 1 maps
 * the files (faster start, page cache shared between processes) for
 * callers that guarantee the files do not change while they are loaded.
 */
#include "model.h"
#include "asr.h"
#include "net.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

tolk_model_params tolk_model_default_params(void) {
    tolk_model_params p;
    p.device = TOLK_DEVICE_CPU;
    p.use_mmap = 0; /* read: a truncated model file cannot crash a run (above) */
    p.compute_type = TOLK_COMPUTE_F32;
    p.attention_type = TOLK_ATTENTION_AUTO;
    p.no_avx512 = 0;
    p.kv_cache = TOLK_KV_AUTO;
    p.gelu = TOLK_GELU_AUTO;
    return p;
}

const char *tolk_model_format_name(tolk_model_format format) {
    switch (format) {
    case TOLK_FORMAT_CT2:
        return "ctranslate2";
    case TOLK_FORMAT_SAFETENSORS:
        return "safetensors";
    case TOLK_FORMAT_GGML:
        return "ggml";
    }
    return "unknown";
}

tolk_status tolk_model_load(tolk_ctx *ctx, const char *path, const tolk_model_params *params,
                            tolk_model **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: NULL out");
    *out = NULL;
    if (!path) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: NULL path");
    tolk_model_params p = params ? *params : tolk_model_default_params();
    if (p.device != TOLK_DEVICE_CPU && p.device != TOLK_DEVICE_CUDA && p.device != TOLK_DEVICE_AUTO)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: bad device %d",
                         (int)p.device);
    if (p.compute_type != TOLK_COMPUTE_F32 && p.compute_type != TOLK_COMPUTE_BF16 &&
        p.compute_type != TOLK_COMPUTE_F16 && p.compute_type != TOLK_COMPUTE_AUTO)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: bad compute_type %d",
                         p.compute_type);
    if (p.attention_type < TOLK_ATTENTION_AUTO || p.attention_type > TOLK_ATTENTION_BF16)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: bad attention_type %d",
                         p.attention_type);
    if (p.kv_cache < TOLK_KV_AUTO || p.kv_cache > TOLK_KV_F16)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: bad kv_cache %d", p.kv_cache);
    if (p.gelu < TOLK_GELU_AUTO || p.gelu > TOLK_GELU_TANH)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_model_load: bad gelu %d", p.gelu);
    if (p.device == TOLK_DEVICE_CUDA && !tolk_cuda_available())
        return tolk_fail(ctx, TOLK_ERR_NO_DEVICE, "%s: CUDA requested but no device is usable",
                         path);
    tolk_model *m = calloc(1, sizeof *m);
    if (!m) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    m->device = p.device;
    tolk_status st = tolk_weights_load(ctx, path, p.use_mmap != 0, &m->w);
    if (st) {
        free(m);
        return st;
    }
    /* what the transcription pipeline runs (tolk_state feeds 30 s windows) */
    st = tolk_hparams_check(ctx, m->w->path, &m->w->hp, TOLK_HP_WHISPER);
    if (st) {
        tolk_model_free(m);
        return st;
    }
    tolk_weights_dtypes(m->w, m->dtypes, sizeof m->dtypes);
    m->size_name = tolk_weights_size_name(&m->w->hp);

    /* Prepared compute weights, on the device the model was asked for
     * (AUTO: CUDA when present). Shared by every state made from m. */
    tolk_ctx_params cp = ctx ? ctx->params : tolk_ctx_default_params();
    cp.device = p.device;
    tolk_ctx *nctx = NULL;
    st = tolk_ctx_new(&cp, &nctx);
    if (st == TOLK_OK) {
        tolk_net *net = NULL;
        /* CUDA: float32 weights and products in the F32 parity mode, half
         * weights on tensor cores otherwise; CPU: float16 weights kept and
         * widened inside the products, bfloat16 products on request */
        const int on_gpu = tolk_ctx_device(nctx) == TOLK_DEVICE_CUDA;
        tolk_net_params np = {
            .keep_f16 = on_gpu ? p.compute_type != TOLK_COMPUTE_F32 : -1,
            .bf16 = p.compute_type == TOLK_COMPUTE_BF16,
            .attn = p.attention_type,
            .no_avx512 = p.no_avx512 != 0,
            .kv_f16 = p.kv_cache == TOLK_KV_F16 ||
                      (p.kv_cache == TOLK_KV_AUTO && on_gpu && p.compute_type != TOLK_COMPUTE_F32),
            .gelu_tanh = p.gelu == TOLK_GELU_TANH};
        st = tolk_net_new_ex(nctx, m->w, &np, &net);
        if (st == TOLK_OK) {
            m->net = net;
            m->net_free = (void (*)(void *))tolk_net_free;
            m->net_mem_bytes = tolk_net_mem_bytes(net);
            /* the device holds copies of every weight: the host's go */
            if (on_gpu) tolk_weights_release_data(m->w);
        } else {
            tolk_fail(ctx, st, "%s", tolk_ctx_last_error(nctx));
        }
        tolk_ctx_free(nctx);
    } else {
        tolk_fail(ctx, st, "%s: cannot create a context for the model", path);
    }
    if (st != TOLK_OK) {
        tolk_model_free(m);
        return st;
    }

    *out = m;
    return TOLK_OK;
}

void tolk_model_free(tolk_model *model) {
    if (!model) return;
    tolk_asr_free(model->asr);
    if (model->net && model->net_free) model->net_free(model->net);
    tolk_weights_free(model->w);
    free(model);
}

void tolk_model_describe(const tolk_model *model, tolk_model_desc *desc) {
    if (!desc) return;
    memset(desc, 0, sizeof *desc);
    if (!model || !model->w) return;
    const tolk_weights *w = model->w;
    const tolk_hparams *hp = &w->hp;
    desc->format = w->format;
    desc->n_mels = hp->n_mels;
    desc->n_vocab = hp->n_vocab;
    desc->n_audio_ctx = hp->n_audio_ctx;
    desc->n_audio_state = hp->n_audio_state;
    desc->n_audio_head = hp->n_audio_head;
    desc->n_audio_layer = hp->n_audio_layer;
    desc->n_text_ctx = hp->n_text_ctx;
    desc->n_text_state = hp->n_text_state;
    desc->n_text_head = hp->n_text_head;
    desc->n_text_layer = hp->n_text_layer;
    desc->multilingual = w->cfg.multilingual;
    desc->n_languages = w->cfg.n_languages;
    desc->dtypes = model->dtypes;
    desc->file_bytes = w->file_bytes;
    desc->mem_bytes = model->net ? model->net_mem_bytes : tolk_weights_mem_bytes(w);
    desc->size_name = model->size_name;
}

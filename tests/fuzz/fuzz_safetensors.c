/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors header parser
 * and transformers config reader (tolk_load_safetensors_memory). Input: when
 * the first byte is '{', the text up to the first NUL is config.json and the
 * rest the .safetensors file; otherwise the whole input is the file and the
 * config a fixed small Whisper (4 mels, 16 tokens, width 8, 1 + 1
 * layers, contexts 4 / 2) so that inputs can reach tensor validation.
 */
#include "internal.h"
#include "weights.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_config[] =
    "{\"vocab_size\": 16, \"num_mel_bins\": 4, \"d_model\": 8, \"encoder_layers\": 1,"
    " \"encoder_attention_heads\": 1, \"decoder_layers\": 1, \"decoder_attention_heads\": 1,"
    " \"max_source_positions\": 4, \"max_target_positions\": 2}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 0;
    char *cfg = NULL;
    const uint8_t *file = data;
    size_t n = size;
    const uint8_t *nul = size && data[0] == '{' ? memchr(data, 0, size) : NULL;
    if (nul) {
        size_t l = (size_t)(nul - data);
        cfg = malloc(l + 1);
        if (cfg) {
            memcpy(cfg, data, l);
            cfg[l] = '\0';
        }
        file = nul + 1;
        n = size - l - 1;
    }
    uint8_t *copy = n ? malloc(n) : NULL;
    if (n && !copy) {
        free(cfg);
        tolk_ctx_free(ctx);
        return 0;
    }
    if (n) memcpy(copy, file, n);
    tolk_weights *w = NULL;
    if (tolk_load_safetensors_memory(ctx, "fuzz/model.safetensors", copy, n, cfg ? cfg : k_config,
                                     &w) == TOLK_OK) {
        for (int i = 0; i < w->n_tensors; i++) {
            const tolk_tensor *t = &w->tensors[i];
            volatile uint8_t x = ((const uint8_t *)t->data)[tolk_tensor_nbytes(t) - 1];
            (void)x;
        }
        tolk_weights_free(w);
    }
    free(copy);
    free(cfg);
    tolk_ctx_free(ctx);
    return 0;
}

/*
 * fuzz_vad.c — libFuzzer target for the Silero VAD loader
 * (tolk_vad_load_memory: safetensors or whisper.cpp ggml): the whole input
 * is the file. A model that loads also runs on a short signal. Any status
 * is fine; crashes, leaks and sanitizer reports are not.
 */
#include "vad_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 0;
    uint8_t *copy = size ? malloc(size) : NULL; /* exact size: reads past it are caught */
    if (size && !copy) {
        tolk_ctx_free(ctx);
        return 0;
    }
    if (size) memcpy(copy, data, size);
    tolk_vad *v = NULL;
    if (tolk_vad_load_memory(ctx, "fuzz.vad", copy, size, &v) == TOLK_OK) {
        float x[1000], *p = NULL;
        size_t np = 0;
        for (int i = 0; i < 1000; i++)
            x[i] = (float)((i * 37) % 200 - 100) / 100.0f;
        if (tolk_vad_probs(ctx, v, x, 1000, &p, &np) == TOLK_OK) free(p);
        tolk_vad_free(v);
    }
    free(copy);
    tolk_ctx_free(ctx);
    return 0;
}

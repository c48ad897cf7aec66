/*
 * fuzz_ggml.c — libFuzzer target for the whisper.cpp ggml parser
 * (tolk_load_ggml_memory): the whole input is the file. Any status is
 * fine; crashes, leaks and sanitizer reports are not.
 */
#include "internal.h"
#include "weights.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 0;
    uint8_t *copy = size ? malloc(size) : NULL;
    if (size && !copy) {
        tolk_ctx_free(ctx);
        return 0;
    }
    if (size) memcpy(copy, data, size);
    tolk_weights *w = NULL;
    if (tolk_load_ggml_memory(ctx, "fuzz.ggml", copy, size, &w) == TOLK_OK) {
        for (int i = 0; i < w->n_tensors; i++) {
            const tolk_tensor *t = &w->tensors[i];
            volatile uint8_t x = ((const uint8_t *)t->data)[tolk_tensor_nbytes(t) - 1];
            (void)x;
        }
        for (int i = 0; i < w->vocab.n; i++) {
            volatile char c = w->vocab.tokens[i][w->vocab.lengths[i]];
            (void)c;
        }
        tolk_weights_free(w);
    }
    free(copy);
    tolk_ctx_free(ctx);
    return 0;
}

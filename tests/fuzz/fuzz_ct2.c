/*
 * fuzz_ct2.c — libFuzzer target for the CTranslate2 model.bin parser and
 * config.json reader (tolk_load_ct2_memory). Input: when the first byte is
 * odd, data[1] bytes after it are config.json text and the rest model.bin;
 * otherwise the whole input is model.bin. Any status is fine; crashes,
 * leaks and sanitizer reports are not.
 *
 * Build: CC=clang cmake -DTOLK_FUZZ=ON -DTOLK_SANITIZE=ON
 *        -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DTOLK_TESTS=OFF ...
 */
#include "internal.h"
#include "weights.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 0;
    char *cfg = NULL;
    const uint8_t *bin = data;
    size_t n = size;
    if (size >= 2 && (data[0] & 1)) {
        size_t l = data[1];
        if (l > size - 2) l = size - 2;
        cfg = malloc(l + 1);
        if (cfg) {
            memcpy(cfg, data + 2, l);
            cfg[l] = '\0';
        }
        bin = data + 2 + l;
        n = size - 2 - l;
    }
    /* a heap copy of exactly n bytes, so reads past the end are caught */
    uint8_t *copy = n ? malloc(n) : NULL;
    if (n && !copy) {
        free(cfg);
        tolk_ctx_free(ctx);
        return 0;
    }
    if (n) memcpy(copy, bin, n);
    tolk_weights *w = NULL;
    if (tolk_load_ct2_memory(ctx, "fuzz/model.bin", copy, n, cfg, &w) == TOLK_OK) {
        /* touch every tensor */
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

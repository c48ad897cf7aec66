/*
 * fuzz_marian.c — libFuzzer target for the Marian binary model parser
 * (tolk_marian_load_memory, src/marian_model.c): the whole input is the
 * file. Any status is fine; crashes, leaks and sanitizer reports are not.
 * On success every item's data is touched to its last byte and the
 * matrices of the network are converted. Seeds: tests/fuzz/corpus/marian
 * (tiny valid models written by tests/support/marian_writer.c).
 */
#include "internal.h"
#include "marian_model.h"

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
    tolk_marian_model *m = NULL;
    if (tolk_marian_load_memory(ctx, "fuzz.bin", copy, size, &m) == TOLK_OK) {
        for (int i = 0; i < m->n_items; i++) {
            const tolk_marian_item *it = &m->items[i];
            volatile uint8_t x = it->data[it->bytes - 1];
            (void)x;
        }
        const tolk_marian_item *it = tolk_marian_getf(m, "encoder_l%d_ffn_W1", 1);
        if (it) {
            float *f = malloc((size_t)(it->rows * it->cols) * sizeof *f);
            int64_t r, c;
            if (f) tolk_marian_matrix_f32(it, 0, f, &r, &c);
            free(f);
        }
        tolk_marian_free(m);
    }
    free(copy);
    tolk_ctx_free(ctx);
    return 0;
}

/*
 * fuzz_mt_shortlist.c — libFuzzer target for the lexical shortlist parser
 * (tolk_mt_shortlist_load_memory, src/mt_shortlist.c) and generate():
 * the input is the file, checked against vocabularies of 40 source and
 * target tokens (the tiny seeds' size, tests/fuzz/corpus/mt_shortlist).
 */
#include "internal.h"
#include "mt_shortlist.h"

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
    tolk_mt_shortlist *s = NULL;
    if (tolk_mt_shortlist_load_memory(ctx, "fuzz.lex", copy, size, 40, 40, &s) == TOLK_OK) {
        unsigned char mark[80];
        int out[40], src[4] = {0, 7, 39, 7};
        (void)tolk_mt_shortlist_generate(s, src, 4, 1, mark, out);
        tolk_mt_shortlist_free(s);
    }
    free(copy);
    tolk_ctx_free(ctx);
    return 0;
}

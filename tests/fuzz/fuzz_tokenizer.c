/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizer (src/tokenizer.c)
 * with the multilingual.tiktoken vocabulary:
 *  - valid UTF-8 input: decode(encode(x)) == x, and every id is ordinary;
 *  - any input read as token ids: decode gives valid UTF-8, and the
 *    streaming decoder's pieces concatenate to the same text.
 * The rank file is $TOLK_TIKTOKEN, else data/whisper-assets/ of the source
 * tree. Build: CC=clang cmake -DTOLK_FUZZ=ON ...; run fuzz_tokenizer -max_total_time=60.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tolk_tokenizer *g_tok; /* loaded once; read-only afterwards */

static const tolk_tokenizer *tokenizer(void) {
    if (g_tok) return g_tok;
    const char *path = getenv("TOLK_TIKTOKEN");
    char buf[4096];
    if (!path) { /* <repo>/tests/fuzz/ -> <repo>/data */
        snprintf(buf, sizeof buf, "%s", __FILE__);
        char *slash = strrchr(buf, '/');
        size_t at = slash ? (size_t)(slash - buf) : 0;
        snprintf(buf + at, sizeof buf - at, "%s",
                 "/../../data/whisper-assets/multilingual.tiktoken");
        path = buf;
    }
    tolk_ctx *ctx = NULL;
    tolk_ctx_new(NULL, &ctx);
    if (tolk_tokenizer_new_from_tiktoken(ctx, path, 1, 0, &g_tok) != TOLK_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", tolk_ctx_last_error(ctx));
        abort();
    }
    tolk_ctx_free(ctx);
    return g_tok;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF5 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        if (k == 3 && c == 0xE0 && s[i + 1] < 0xA0) return 0;
        if (k == 3 && c == 0xED && s[i + 1] > 0x9F) return 0;
        if (k == 4 && c == 0xF0 && s[i + 1] < 0x90) return 0;
        if (k == 4 && c == 0xF4 && s[i + 1] > 0x8F) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    const tolk_tokenizer *t = tokenizer();
    const tolk_special_tokens *sp = tolk_tokenizer_special(t);

    /* 1. round trip */
    int *ids = NULL;
    size_t n = 0;
    tolk_status st = tolk_tokenizer_encode(t, (const char *)data, size, &ids, &n);
    if (valid_utf8(data, size) != (st == TOLK_OK)) abort();
    if (st == TOLK_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= sp->eot) abort();
        char *text = NULL;
        size_t len = 0;
        if (tolk_tokenizer_decode(t, ids, n, &text, &len) != TOLK_OK) abort();
        if (len != size || memcmp(text, data, size) != 0) abort();
        tolk_free(text);
        tolk_free(ids);
    }

    /* 2. arbitrary ids: valid UTF-8 out, streaming == whole */
    size_t m = size / 2;
    int *v = malloc((m ? m : 1) * sizeof *v);
    if (!v) return 0;
    for (size_t i = 0; i < m; i++)
        v[i] = (int)((data[2 * i] | (unsigned)data[2 * i + 1] << 8) % 51865u);
    int flags = size ? data[0] % 3 : 0;
    char *whole = NULL;
    size_t wlen = 0;
    if (tolk_tokenizer_decode_ex(t, v, m, flags, &whole, &wlen) != TOLK_OK) abort();
    if (!valid_utf8((const unsigned char *)whole, wlen)) abort();
    tolk_detok d;
    tolk_detok_init(&d, t, flags);
    size_t got = 0;
    for (size_t i = 0; i <= m; i++) {
        const char *piece;
        size_t plen;
        st = i < m ? tolk_detok_push(&d, v[i], &piece, &plen) : tolk_detok_flush(&d, &piece, &plen);
        if (st != TOLK_OK || got + plen > wlen || memcmp(whole + got, piece, plen) != 0) abort();
        if (!valid_utf8((const unsigned char *)piece, plen)) abort();
        got += plen;
    }
    if (got != wlen) abort();
    tolk_detok_free(&d);
    tolk_free(whole);
    free(v);
    return 0;
}

/*
 * internal.h — private helpers shared by the library's source files:
 * the context structure, error reporting, checked size arithmetic.
 * Nothing here is part of the public API.
 */
#ifndef TOLK_INTERNAL_H
#define TOLK_INTERNAL_H

#include "tolk.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define TOLK_ERRMSG_MAX 1024

struct tolk_ctx {
    tolk_ctx_params params;
    tolk_device device; /* resolved: CPU or CUDA */
    int n_threads;      /* resolved, >= 1 */
    char last_error[TOLK_ERRMSG_MAX];
};

#if defined(__GNUC__)
#define TOLK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TOLK_PRINTF(a, b)
#endif

/* Record a failure on ctx (which may be NULL) and return status, so that
 * callers can write `return tolk_fail(ctx, TOLK_ERR_IO, "%s: ...", path);`.
 * Messages name the file first, then the problem. */
tolk_status tolk_fail(tolk_ctx *ctx, tolk_status status, const char *fmt, ...) TOLK_PRINTF(3, 4);
tolk_status tolk_vfail(tolk_ctx *ctx, tolk_status status, const char *fmt, va_list ap);

/* Clear the last error of ctx (NULL allowed). */
void tolk_clear_error(tolk_ctx *ctx);

/* Overflow-checked size arithmetic: return 0 on overflow, 1 on success. */
static inline int tolk_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int tolk_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* Facts about a result's input that reach callers through accessors
 * (tolk_result_input_truncated); held by struct tolk_result (result.h). */
typedef struct tolk_input_facts {
    int truncated;     /* tolk_audio_truncated of the input */
    double expected_s; /* seconds promised, -1 when unknown */
    double decoded_s;  /* seconds decoded */
} tolk_input_facts;

/* The input facts of reader r (call at the end of its input; zeros for a
 * complete input). audio.c. */
void tolk_audio_input_facts(const tolk_audio_reader *r, tolk_input_facts *out);

/* tolk_audio_load that also reports the input facts (facts may be NULL). */
tolk_status tolk_audio_load_facts(tolk_ctx *ctx, const char *path, float **samples,
                                  size_t *n_samples, tolk_input_facts *facts);

/* Whether a Whisper vocabulary of n_vocab tokens is multilingual: 51865
 * (99 languages) and 51866 (100, large-v3) are, 51864 (the *.en models) is
 * not. The one place the library decides it (weights, tokenizer, state). */
static inline int tolk_vocab_is_multilingual(int n_vocab) {
    return n_vocab >= 51865;
}

/* malloc/calloc wrappers that return NULL for a zero or overflowing size
 * rather than misbehaving; pair with tolk_free / free. */
void *tolk_malloc_array(size_t n, size_t size);
void *tolk_calloc_array(size_t n, size_t size);

#endif /* TOLK_INTERNAL_H */

/*
 * status.c — version, status strings, contexts and last-error messages.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tolk_version(void) {
#define TOLK_STR2(x) #x
#define TOLK_STR(x) TOLK_STR2(x)
    return TOLK_STR(TOLK_VERSION_MAJOR) "." TOLK_STR(TOLK_VERSION_MINOR) "." TOLK_STR(
        TOLK_VERSION_PATCH);
}

const char *tolk_strerror(tolk_status status) {
    switch (status) {
    case TOLK_OK:
        return "success";
    case TOLK_ERR_IO:
        return "input/output error";
    case TOLK_ERR_FORMAT:
        return "invalid or corrupt data";
    case TOLK_ERR_UNSUPPORTED:
        return "unsupported format or feature";
    case TOLK_ERR_NOMEM:
        return "out of memory";
    case TOLK_ERR_INVALID_ARG:
        return "invalid argument";
    case TOLK_ERR_CUDA:
        return "CUDA error";
    case TOLK_ERR_NO_DEVICE:
        return "no CUDA device available";
    case TOLK_ERR_EMPTY:
        return "no data";
    case TOLK_ERR_INTERNAL:
        return "internal error";
    case TOLK_ERR_CANCELLED:
        return "cancelled";
    }
    return "unknown status";
}

void tolk_free(void *ptr) {
    free(ptr);
}

void *tolk_malloc_array(size_t n, size_t size) {
    size_t bytes;
    if (!tolk_mul_size(n, size, &bytes) || bytes == 0) return NULL;
    return malloc(bytes);
}

void *tolk_calloc_array(size_t n, size_t size) {
    size_t bytes;
    if (!tolk_mul_size(n, size, &bytes) || bytes == 0) return NULL;
    return calloc(n, size);
}

tolk_status tolk_vfail(tolk_ctx *ctx, tolk_status status, const char *fmt, va_list ap) {
    if (ctx) vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
    return status;
}

tolk_status tolk_fail(tolk_ctx *ctx, tolk_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tolk_vfail(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

void tolk_clear_error(tolk_ctx *ctx) {
    if (ctx) ctx->last_error[0] = '\0';
}

tolk_ctx_params tolk_ctx_default_params(void) {
    tolk_ctx_params p;
    p.n_threads = 0;
    p.device = TOLK_DEVICE_CPU;
    p.cuda_device = 0;
    return p;
}

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

tolk_status tolk_ctx_new(const tolk_ctx_params *params, tolk_ctx **out) {
    if (!out) return TOLK_ERR_INVALID_ARG;
    *out = NULL;
    tolk_ctx_params p = params ? *params : tolk_ctx_default_params();
    if (p.device != TOLK_DEVICE_CPU && p.device != TOLK_DEVICE_CUDA && p.device != TOLK_DEVICE_AUTO)
        return TOLK_ERR_INVALID_ARG;
    if (p.device == TOLK_DEVICE_CUDA && !tolk_cuda_available()) return TOLK_ERR_NO_DEVICE;
    tolk_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return TOLK_ERR_NOMEM;
    ctx->params = p;
    ctx->n_threads = p.n_threads > 0 ? p.n_threads : online_cores();
    if (p.device == TOLK_DEVICE_AUTO)
        ctx->device = tolk_cuda_available() ? TOLK_DEVICE_CUDA : TOLK_DEVICE_CPU;
    else
        ctx->device = p.device;
    *out = ctx;
    return TOLK_OK;
}

void tolk_ctx_free(tolk_ctx *ctx) {
    free(ctx);
}

const char *tolk_ctx_last_error(const tolk_ctx *ctx) {
    return ctx ? ctx->last_error : "";
}

tolk_device tolk_ctx_device(const tolk_ctx *ctx) {
    return ctx ? ctx->device : TOLK_DEVICE_CPU;
}

int tolk_ctx_threads(const tolk_ctx *ctx) {
    return ctx ? ctx->n_threads : 1;
}

/*
 * backend.c — helpers over the op table (backend.h) that any backend
 * shares: compositions of its operations, no arithmetic of their own.
 */
#include "backend.h"
#include "internal.h"

tolk_status tolk_backend_embed_host(tolk_ctx *ctx, const tolk_backend *be, float *y,
                                    const tolk_bweight *tok, const int *ids, const int *positions,
                                    size_t n, const float *pos, size_t n_pos, int *scratch,
                                    size_t scratch_ints) {
    if (n == 0) return TOLK_OK;
    if (!be || !y || !tok || !ids || !positions || !pos || n > SIZE_MAX / (2 * sizeof(int)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "backend: embed: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->rows || positions[i] < 0 || (size_t)positions[i] >= n_pos)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "backend: embed: token %d at position %d (of %lld tokens, %zu "
                             "positions)",
                             ids[i], positions[i], (long long)tok->rows, n_pos);
    const int own = !scratch || scratch_ints < 2 * n;
    int *d = own ? be->alloc(ctx, be, 2 * n * sizeof(int)) : scratch;
    if (!d) return tolk_fail(ctx, TOLK_ERR_NOMEM, "backend: embed: out of memory for the indices");
    tolk_status st = be->upload(ctx, be, d, ids, n * sizeof(int));
    if (st == TOLK_OK) st = be->upload(ctx, be, d + n, positions, n * sizeof(int));
    if (st == TOLK_OK) st = be->embed_rows(ctx, be, y, tok, d, d + n, n, pos, n_pos);
    if (own) be->free(be, d);
    return st;
}

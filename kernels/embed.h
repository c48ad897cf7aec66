/*
 * embed.h — decoder input embedding on the GPU (kernels/embed.cu): token
 * embedding lookup plus learned positional embedding, as openai-whisper's
 * TextDecoder computes token_embedding(x) + positional_embedding[offset:].
 */
#ifndef TOLK_KERNELS_EMBED_H
#define TOLK_KERNELS_EMBED_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* For i < n, c < d:
 *   y[i * ldy + c] = tok[ids[i] * d + c] + pos[positions[i] * d + c]
 * ids, positions: DEVICE int32 [n]; tok [n_vocab, d] of type tok_dtype (the
 * prepared, tied embedding); pos float32 [n_pos, d] or NULL (no positional
 * term); y of type y_dtype with row stride ldy >= d. A term whose index is
 * out of range ([0, n_vocab) / [0, n_pos)) contributes 0 instead of being
 * read: callers validate ids on the host; the kernel only never reads out
 * of bounds. Requires n >= 0, d >= 1. */
int tolk_cu_embed(void *y, int y_dtype, long long ldy, const int *ids, const int *positions,
                  long long n, int d, const void *tok, int tok_dtype, long long n_vocab,
                  const float *pos, long long n_pos, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_EMBED_H */

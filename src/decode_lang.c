/*
 * decode_lang.c — spoken-language identification, as openai-whisper's
 * detect_language(): one decoder step of [<|startoftranscript|>] against
 * the encoded window, every non-language logit masked, softmax over the
 * language tokens; the most probable one wins (the first on ties, as
 * argmax). CTranslate2's detect_language computes the same softmax over
 * the gathered language logits.
 */
#include "decode.h"

#include <math.h>
#include <stdlib.h>

void tolk_dec_language_probs(const float *logits, const tolk_dec_tokens *tok, float *probs,
                             int *best) {
    int b = 0;
    double mx = -INFINITY;
    for (int i = 0; i < tok->n_languages; i++) {
        double v = logits[tok->lang_ids[i]];
        if (v > mx) {
            mx = v;
            b = i;
        }
    }
    double sum = 0.0;
    for (int i = 0; i < tok->n_languages; i++)
        sum += exp((double)logits[tok->lang_ids[i]] - mx);
    for (int i = 0; i < tok->n_languages; i++)
        probs[i] = (float)(exp((double)logits[tok->lang_ids[i]] - mx) / sum);
    if (best) *best = b;
}

tolk_status tolk_dec_detect_language(tolk_ctx *ctx, const tolk_dec_backend *be,
                                     const tolk_dec_tokens *tok, float *probs, int *best) {
    if (!be || !tok || !probs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "detect_language: NULL argument");
    if (!tok->lang_ids || tok->n_languages <= 0)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "detect_language: the model has no language tokens (English-only)");
    for (int i = 0; i < tok->n_languages; i++)
        if (tok->lang_ids[i] < 0 || tok->lang_ids[i] >= be->n_vocab)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "detect_language: language token %d out of range", tok->lang_ids[i]);
    float *logits = tolk_malloc_array((size_t)be->n_vocab, sizeof(float));
    if (!logits) return tolk_fail(ctx, TOLK_ERR_NOMEM, "detect_language: out of memory");
    int seq = 0, n = 1;
    const int *p = &tok->sot;
    tolk_status st = be->reset(be->user, 0);
    if (st == TOLK_OK) st = be->step(be->user, &seq, 1, &p, &n, logits);
    if (st == TOLK_OK) tolk_dec_language_probs(logits, tok, probs, best);
    free(logits);
    return st;
}

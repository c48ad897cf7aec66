/*
 * decode_window.c — one 30 s window decoded with the temperature fallback
 * of openai-whisper's transcribe() (decode_with_fallback): try each
 * temperature of the schedule in turn (beam search / greedy at 0 with
 * best_of dropped, best_of sampling above 0 with beam_size and patience
 * dropped); a result fails when its compression ratio is above the
 * threshold (too repetitive) or its average log-probability below the
 * threshold, except that a window the model calls silent (no_speech_prob
 * above its threshold AND a low log-probability) is accepted as is. When
 * every temperature fails, the last result is returned.
 */
#include "decode.h"

#include <math.h>
#include <string.h>

int tolk_dec_needs_fallback(const tolk_dec_fallback *fb, const tolk_dec_result *r) {
    int needs = 0;
    int lp_on = fb->logprob_threshold > -INFINITY && !isnan(fb->logprob_threshold);
    if (fb->compression_ratio_threshold > 0.0f &&
        r->compression_ratio > fb->compression_ratio_threshold)
        needs = 1;
    if (lp_on && r->avg_logprob < fb->logprob_threshold) needs = 1;
    if (fb->no_speech_threshold > 0.0f && r->no_speech_prob > fb->no_speech_threshold && lp_on &&
        r->avg_logprob < fb->logprob_threshold)
        needs = 0;
    return needs;
}

tolk_status tolk_dec_decode_fallback(tolk_ctx *ctx, const tolk_dec_backend *be,
                                     const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                     int sot_index, const tolk_dec_options *base,
                                     const tolk_dec_fallback *fb, tolk_dec_text_fn text_fn,
                                     void *text_user, tolk_dec_result *res) {
    memset(res, 0, sizeof *res);
    if (!fb || fb->n_temperatures < 1 || !fb->temperatures)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "decode: empty temperature schedule");
    for (int i = 0; i < fb->n_temperatures; i++) {
        tolk_dec_options o = *base;
        o.temperature = fb->temperatures[i];
        if (o.temperature > 0.0f) {
            o.beam_size = 0;
            o.patience = 1.0f;
        } else {
            o.best_of = 1;
        }
        tolk_dec_result_clear(res);
        tolk_status st = tolk_dec_decode(ctx, be, tok, initial, n_initial, sot_index, &o, text_fn,
                                         text_user, res);
        if (st != TOLK_OK) return st;
        if (!tolk_dec_needs_fallback(fb, res)) break;
    }
    return TOLK_OK;
}

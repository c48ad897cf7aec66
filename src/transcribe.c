/*
 * transcribe.c — the public transcription entry points that are not an
 * engine's (tolk.h): default parameters (openai-whisper's transcribe()
 * defaults) and spoken-language identification
 * (openai-whisper detect_language on the first 30 s, zero-padded like a
 * decoded window), which runs as a one-window request of the state's
 * engine (longform.c's language identification, then stop).
 * tolk_transcribe / tolk_transcribe_file are in state.c; the loop itself
 * is longform.c.
 */
#include "engine.h"
#include "longform.h"

#include <stdlib.h>
#include <string.h>

tolk_transcribe_params tolk_transcribe_default_params(void) {
    tolk_transcribe_params p;
    memset(&p, 0, sizeof p);
    p.task = TOLK_TASK_TRANSCRIBE;
    p.language = NULL;
    static const float temps[6] = {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f};
    for (int i = 0; i < 6; i++)
        p.temperatures[i] = temps[i];
    p.n_temperatures = 6;
    p.beam_size = 0;
    p.best_of = 1;
    p.patience = 1.0f;
    p.length_penalty = -1.0f;
    p.compression_ratio_threshold = 2.4f;
    p.logprob_threshold = -1.0f;
    p.no_speech_threshold = 0.6f;
    p.condition_on_previous_text = 1;
    p.initial_prompt = NULL;
    p.prefix = NULL;
    p.suppress_tokens = "-1";
    p.suppress_blank = 1;
    p.without_timestamps = 0;
    p.max_initial_timestamp = 1.0f;
    p.sample_len = 0;
    p.clip_timestamps = "0";
    p.seed = 0;
    p.word_timestamps = 0;
    p.prepend_punctuations = NULL;
    p.append_punctuations = NULL;
    p.hallucination_silence_threshold = -1.0f;
    p.vad = NULL;
    p.vad_params = tolk_vad_default_params();
    return p;
}

tolk_status tolk_detect_language(tolk_state *state, const float *samples, size_t n_samples,
                                 const char **codes, float *probs, int *n) {
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_ctx *ctx = tolk_state_ctx(state);
    tolk_clear_error(ctx);
    if (!samples || !codes || !probs || !n)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_detect_language: NULL argument");
    *n = 0;
    if (n_samples == 0) return tolk_fail(ctx, TOLK_ERR_EMPTY, "tolk_detect_language: no samples");
    const tolk_asr *asr = NULL;
    tolk_status s = tolk_asr_of(ctx, tolk_state_model(state), &asr);
    if (s != TOLK_OK) return s;
    if (!asr->multilingual)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "tolk_detect_language: the model is English-only");
    size_t use = n_samples < TOLK_N_SAMPLES ? n_samples : TOLK_N_SAMPLES;
    tolk_engine *e = tolk_state_engine(state);
    tolk_request *rq = NULL;
    s = tolk_engine_submit_detect(e, samples, use, &rq);
    if (s != TOLK_OK) return tolk_fail(ctx, s, "%s", tolk_engine_last_error(e));
    s = tolk_request_wait(rq);
    float p[100];
    int nl = s == TOLK_OK ? tolk_request_language_probs(rq, p) : 0;
    if (s != TOLK_OK) tolk_fail(ctx, s, "%s", tolk_request_last_error(rq));
    tolk_request_free(rq);
    if (s != TOLK_OK) return s;
    int order[100];
    for (int i = 0; i < nl; i++)
        order[i] = i;
    for (int i = 1; i < nl; i++) { /* stable insertion sort, descending */
        int v = order[i], j = i;
        while (j > 0 && p[order[j - 1]] < p[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (int i = 0; i < nl; i++) {
        codes[i] = tolk_asr_lang_code(asr, asr->dt.lang_ids[order[i]]);
        probs[i] = p[order[i]];
    }
    *n = nl;
    return TOLK_OK;
}

/*
 * engine.h — the scheduler's private hooks for the rest of the library
 * (the public API is tolk.h's tolk_engine / tolk_request): the state
 * (state.c) runs its blocking transcriptions through an engine of its own,
 * and tests read its KV pool's graph counters.
 */
#ifndef TOLK_ENGINE_H
#define TOLK_ENGINE_H

#include "asr.h"
#include "longform.h"
#include "internal.h"
#include "timings.h"

#include <pthread.h>

struct tolk_kvcache;

/* The engine's KV pool (NULL before the first admission). */
struct tolk_kvcache *tolk_engine_kvcache(tolk_engine *e);

/* A request that only identifies the language of the first 30 s of
 * samples (tolk_detect_language); then tolk_request_language_probs. */
tolk_status tolk_engine_submit_detect(tolk_engine *e, const float *samples, size_t n_samples,
                                      tolk_request **out);
/* After such a request ended: probs [100] in the model's language token
 * order; returns how many (0 when none). */
int tolk_request_language_probs(const tolk_request *r, float *probs);

/* A live stream's update (stream.c): one window over samples (<= 30 s,
 * copied) decoded once with params and the one-window options of win
 * (longform.h: audio_ctx, prompt / prefix tokens; its other fields are
 * ignored), no seek loop. done (may be NULL) is called on the tick thread
 * once the request has ended (result, failure or cancellation), outside
 * the engine's locks; it may submit new requests and free r. Then
 * tolk_request_window gives the decode. A submission's failure message
 * goes to err (NULL: the engine's context, which concurrent submitters
 * share: streams pass their own). *out: tolk_request_free. */
tolk_status tolk_engine_submit_window(tolk_engine *e, const float *samples, size_t n_samples,
                                      const tolk_transcribe_params *params,
                                      const tolk_lf_input *win,
                                      void (*done)(void *user, tolk_request *r), void *user,
                                      tolk_ctx *err, tolk_request **out);
/* After a successful window request: its decode moved into *res (once;
 * tolk_dec_result_clear) with *skipped (the no-speech rule) and the
 * language (code, "en" on English-only models) in lang[8]. */
tolk_status tolk_request_window(tolk_request *r, tolk_dec_result *res, int *skipped, char *lang);

/* The calling thread's message context for the engine (its message
 * cleared; the engine's thread settings): where a call made on e from this
 * thread records its failure (tolk_engine_last_error). */
tolk_ctx *tolk_engine_caller_ctx(const tolk_engine *e);
/* Whether the engine ticks on its own thread. */
int tolk_engine_has_thread(const tolk_engine *e);
/* The engine's model-shared tokenizer, special ids and mel (asr.h). */
const tolk_asr *tolk_engine_asr(const tolk_engine *e);

/* Zero the engine's timings (tolk_state_reset_timings). */
void tolk_engine_reset_timings(tolk_engine *e);

/* Speech-only requests (vad_filter.c): a job stands for the requests of
 * its pieces behind one handle (tolk_request_new_job; the handle's
 * functions in engine.c pass to the job's). */
struct tolk_vad_job;
tolk_status tolk_vad_job_submit(tolk_engine *e, const float *x, size_t n,
                                const tolk_transcribe_params *p, tolk_request **out);
tolk_status tolk_request_new_job(tolk_engine *e, struct tolk_vad_job *job, tolk_request **out);
void tolk_vad_job_bind(struct tolk_vad_job *j, tolk_ctx *ctx);
void tolk_vad_job_free(struct tolk_vad_job *j);
int tolk_vad_job_done(const struct tolk_vad_job *j);
tolk_status tolk_vad_job_status(const struct tolk_vad_job *j);
const char *tolk_vad_job_error(const struct tolk_vad_job *j);
tolk_status tolk_vad_job_wait(struct tolk_vad_job *j);
void tolk_vad_job_cancel(struct tolk_vad_job *j);
int tolk_vad_job_n_segments(const struct tolk_vad_job *j);
tolk_status tolk_vad_job_segments(struct tolk_vad_job *j, int from, tolk_result **out);
tolk_status tolk_vad_job_result(struct tolk_vad_job *j, tolk_result **out);
/* The code of the model's i-th language (token order; NULL outside). */
const char *tolk_engine_language_code(const tolk_engine *e, int i);

/* A state's parts (state.c). */
tolk_ctx *tolk_state_ctx(tolk_state *st);
const tolk_model *tolk_state_model(const tolk_state *st);
tolk_engine *tolk_state_engine(tolk_state *st);
/* A state's KV pool (its engine's; NULL before its first request). */
struct tolk_kvcache *tolk_state_kvcache(tolk_state *st);

#endif /* TOLK_ENGINE_H */

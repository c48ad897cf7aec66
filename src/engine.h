/*
 * engine.h — the scheduler's private hooks for the rest of the library
 * (the public API is tolk.h's tolk_engine / tolk_request): the state
 * (state.c) runs its blocking transcriptions through an engine of its own,
 * and tests read its KV pool's graph counters.
 */
#ifndef TOLK_ENGINE_H
#define TOLK_ENGINE_H

#include "asr.h"
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
/* The engine's context (messages of submissions) and the code of the
 * model's i-th language (token order; NULL outside). */
tolk_ctx *tolk_engine_ctx(tolk_engine *e);
const char *tolk_engine_language_code(const tolk_engine *e, int i);

/* A state's parts (state.c). */
tolk_ctx *tolk_state_ctx(tolk_state *st);
const tolk_model *tolk_state_model(const tolk_state *st);
tolk_engine *tolk_state_engine(tolk_state *st);
/* A state's KV pool (its engine's; NULL before its first request). */
struct tolk_kvcache *tolk_state_kvcache(tolk_state *st);

#endif /* TOLK_ENGINE_H */

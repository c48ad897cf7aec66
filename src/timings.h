/*
 * timings.h — internal helpers that accumulate the per-stage times and
 * counts of the public tolk_timings (tolk.h) while an engine works:
 * audio decode + resample, mel, encoder, decoder steps, search. They only
 * add numbers; the library never prints them (`tolk bench` does).
 *
 * How the transcription code uses them (the engine's tick thread):
 *
 *     double t0 = tolk_time_now();
 *     ... tolk_kvcache_encode_windows(...) ...
 *     tolk_timings_since(t, TOLK_STAGE_ENCODER, t0);   // adds now - t0
 *
 * The search stage is the time of the decoding loop minus the decoder
 * steps made inside it (tolk_timings_add_search does the subtraction).
 */
#ifndef TOLK_TIMINGS_H
#define TOLK_TIMINGS_H

#include "tolk.h"

/* Indexes of the timed stages; order of the fields of tolk_timings. */
enum tolk_stage {
    TOLK_STAGE_AUDIO = 0,   /* decoding the input file and resampling it */
    TOLK_STAGE_MEL = 1,     /* log-mel frames (both passes) and window padding */
    TOLK_STAGE_ENCODER = 2, /* encoder forward + cross-attention K/V of a window */
    TOLK_STAGE_DECODER = 3, /* decoder forward steps (logits) */
    TOLK_STAGE_SEARCH = 4,  /* logit filters, greedy/beam/sampling, fallback, segments */
    TOLK_STAGE_COUNT = 5
};

/* Monotonic wall-clock time in seconds (CLOCK_MONOTONIC); an arbitrary
 * origin, meaningful only as a difference. */
double tolk_time_now(void);

/* Add seconds (negative or non-finite values are ignored) to stage of t.
 * t may be NULL (no-op); stage outside [0, TOLK_STAGE_COUNT) is ignored. */
void tolk_timings_add(tolk_timings *t, int stage, double seconds);

/* Add tolk_time_now() - t0 to stage of t and return the new now, so that
 * consecutive stages can be chained: t0 = tolk_timings_since(t, A, t0). */
double tolk_timings_since(tolk_timings *t, int stage, double t0);

/* Search time of a decoding call that started at t0 when t->decoder_s was
 * decoder_s0: adds (now - t0) - (t->decoder_s - decoder_s0), clamped at 0,
 * to the search stage. Returns now. */
double tolk_timings_add_search(tolk_timings *t, double t0, double decoder_s0);

/* Add to the counters (windows decoded, tokens emitted, decoder steps
 * run); negative values are ignored. t may be NULL. */
void tolk_timings_count(tolk_timings *t, long windows, long tokens, long decoder_steps);

/* Record a device-memory high-water mark in bytes (kept when larger). */
void tolk_timings_device_peak(tolk_timings *t, uint64_t bytes);

/* Zero every field of t (NULL allowed). */
void tolk_timings_clear(tolk_timings *t);

#endif /* TOLK_TIMINGS_H */

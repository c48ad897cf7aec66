/*
 * timings.c — accumulation of per-stage wall-clock times and counts of an
 * engine (tolk_engine_timings; a state's are its engine's), read by
 * `tolk bench`. No reference behaviour: a measuring aid only.
 * No global state: the numbers live in the engine the caller passes.
 */
#include "timings.h"

#include <math.h>
#include <string.h>
#include <time.h>

double tolk_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double *stage_field(tolk_timings *t, int stage) {
    switch (stage) {
    case TOLK_STAGE_AUDIO: return &t->audio_s;
    case TOLK_STAGE_MEL: return &t->mel_s;
    case TOLK_STAGE_ENCODER: return &t->encoder_s;
    case TOLK_STAGE_DECODER: return &t->decoder_s;
    case TOLK_STAGE_SEARCH: return &t->search_s;
    default: return NULL;
    }
}

void tolk_timings_add(tolk_timings *t, int stage, double seconds) {
    if (!t || !isfinite(seconds) || seconds < 0) return;
    double *f = stage_field(t, stage);
    if (f) *f += seconds;
}

double tolk_timings_since(tolk_timings *t, int stage, double t0) {
    double now = tolk_time_now();
    tolk_timings_add(t, stage, now - t0);
    return now;
}

double tolk_timings_add_search(tolk_timings *t, double t0, double decoder_s0) {
    double now = tolk_time_now();
    if (t) {
        double s = (now - t0) - (t->decoder_s - decoder_s0);
        tolk_timings_add(t, TOLK_STAGE_SEARCH, s > 0 ? s : 0.0);
    }
    return now;
}

void tolk_timings_count(tolk_timings *t, long windows, long tokens, long decoder_steps) {
    if (!t) return;
    if (windows > 0) t->windows += windows;
    if (tokens > 0) t->tokens += tokens;
    if (decoder_steps > 0) t->decoder_steps += decoder_steps;
}

void tolk_timings_device_peak(tolk_timings *t, uint64_t bytes) {
    if (t && bytes > t->device_peak_bytes) t->device_peak_bytes = bytes;
}

void tolk_timings_clear(tolk_timings *t) {
    if (t) memset(t, 0, sizeof *t);
}

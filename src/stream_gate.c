/*
 * stream_gate.c — speech gates for live streams (stream_internal.h): a
 * probability of speech per 512-sample chunk, and the utterance tracker
 * that turns those into onsets and pauses.
 *
 * The tracker follows silero-vad's VADIterator hysteresis (speech from a
 * chunk >= threshold 0.5; a pause is min_silence worth of chunks below
 * threshold - 0.15). The energy gate stands in for a VAD model behind the
 * same interface (tolk_gate): level = 10 log10(mean square + 1e-10) dBFS
 * per chunk; a noise floor that starts at the first chunk's level (at
 * most -50 dBFS: speech may come first), drops at once to a quieter chunk
 * and rises by 1 dB per second (31.25 chunks); probability ramps from 0 at 3
 * dB above the floor to 1 at 15 dB above it (0.5 at 9 dB), and is 0 below
 * -60 dBFS whatever the floor.
 *
 * The Silero gate is the library's Silero VAD v6 (vad.c) as a live stream
 * (tolk_vad_stream: LSTM state and 64-sample context carried from chunk to
 * chunk), its 512-sample chunks the gate's. It tells speech from loud
 * non-speech (music, noise, breathing) and hears quiet speech the energy
 * gate misses, at about 0.1 ms of one core per 32 ms chunk.
 */
#include "stream_internal.h"
#include "tolk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct energy_gate {
    float pend[TOLK_GATE_CHUNK];
    size_t n_pend;
    double floor_db;
    int have_floor;
} energy_gate;

static float energy_prob(energy_gate *g, const float *x) {
    double ss = 0.0;
    for (int i = 0; i < TOLK_GATE_CHUNK; i++)
        ss += (double)x[i] * (double)x[i];
    const double db = 10.0 * log10(ss / TOLK_GATE_CHUNK + 1e-10);
    if (!g->have_floor) {
        /* speech may start at once: the floor starts at -50 dBFS at most */
        g->floor_db = db < -50.0 ? db : -50.0;
        g->have_floor = 1;
    } else if (db < g->floor_db) {
        g->floor_db = db;
    } else {
        g->floor_db += 1.0 / 31.25; /* 1 dB per second */
        if (g->floor_db > db) g->floor_db = db;
    }
    if (db < -60.0) return 0.0f;
    double above = db - (g->floor_db < -60.0 ? -60.0 : g->floor_db);
    double p = (above - 3.0) / 12.0;
    return (float)(p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p);
}

static tolk_status energy_push(void *impl, tolk_ctx *ctx, const float *x, size_t n, float *probs,
                               size_t *n_probs) {
    (void)ctx;
    energy_gate *g = impl;
    size_t k = 0;
    while (n > 0) {
        size_t take = TOLK_GATE_CHUNK - g->n_pend;
        if (take > n) take = n;
        memcpy(g->pend + g->n_pend, x, take * sizeof(float));
        g->n_pend += take;
        x += take;
        n -= take;
        if (g->n_pend == TOLK_GATE_CHUNK) {
            probs[k++] = energy_prob(g, g->pend);
            g->n_pend = 0;
        }
    }
    *n_probs = k;
    return TOLK_OK;
}

static void gate_free(void *impl) {
    free(impl);
}

tolk_status tolk_gate_energy_new(tolk_gate *g) {
    memset(g, 0, sizeof *g);
    energy_gate *e = calloc(1, sizeof *e);
    if (!e) return TOLK_ERR_NOMEM;
    g->impl = e;
    g->push = energy_push;
    g->free = gate_free;
    return TOLK_OK;
}

typedef struct none_gate {
    size_t n_pend;
} none_gate;

static tolk_status none_push(void *impl, tolk_ctx *ctx, const float *x, size_t n, float *probs,
                             size_t *n_probs) {
    (void)ctx;
    (void)x;
    none_gate *g = impl;
    size_t total = g->n_pend + n, k = total / TOLK_GATE_CHUNK;
    for (size_t i = 0; i < k; i++)
        probs[i] = 1.0f;
    g->n_pend = total % TOLK_GATE_CHUNK;
    *n_probs = k;
    return TOLK_OK;
}

tolk_status tolk_gate_none_new(tolk_gate *g) {
    memset(g, 0, sizeof *g);
    none_gate *e = calloc(1, sizeof *e);
    if (!e) return TOLK_ERR_NOMEM;
    g->impl = e;
    g->push = none_push;
    g->free = gate_free;
    return TOLK_OK;
}

/* ---- Silero VAD ------------------------------------------------------------ */

_Static_assert(TOLK_GATE_CHUNK == TOLK_VAD_CHUNK, "the gate's chunk is Silero's");

static tolk_status silero_push(void *impl, tolk_ctx *ctx, const float *x, size_t n, float *probs,
                               size_t *n_probs) {
    tolk_vad_stream *vs = impl;
    const size_t room = (tolk_vad_stream_pending(vs) + n) / TOLK_GATE_CHUNK;
    return tolk_vad_stream_push(ctx, vs, x, n, probs, room, n_probs);
}

static void silero_free(void *impl) {
    tolk_vad_stream_free(impl);
}

tolk_status tolk_gate_silero_new(tolk_gate *g, tolk_ctx *ctx, const tolk_vad *vad) {
    memset(g, 0, sizeof *g);
    if (!vad) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "stream: the Silero gate needs a model");
    tolk_vad_stream *vs = NULL;
    tolk_status st = tolk_vad_stream_new(ctx, vad, &vs);
    if (st != TOLK_OK) return st;
    g->impl = vs;
    g->push = silero_push;
    g->free = silero_free;
    return TOLK_OK;
}

/* ---- the utterance tracker ------------------------------------------------- */

tolk_gate_event tolk_gate_track_chunk(tolk_gate_track *t, float prob) {
    if (!t->speech) {
        if (prob >= 0.5f) {
            t->speech = 1;
            t->quiet = 0;
            return TOLK_GATE_ONSET;
        }
        return TOLK_GATE_SILENCE;
    }
    if (prob >= 0.5f)
        t->quiet = 0;
    else if (prob < 0.35f)
        t->quiet++;
    if (t->pause_chunks > 0 && t->quiet >= t->pause_chunks) {
        t->speech = 0;
        t->quiet = 0;
        return TOLK_GATE_PAUSE;
    }
    return TOLK_GATE_SPEECH;
}

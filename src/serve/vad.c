/*
 * vad.c — voice activity for realtime sessions (vad.h): the energy scorer
 * and the turn detector of OpenAI's server_vad (threshold,
 * prefix_padding_ms, silence_duration_ms). The detector uses silero-vad's
 * hysteresis: a frame continues speech at threshold - 0.15.
 */
#include "vad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the energy scorer ----------------------------------------------------------- */

typedef struct energy {
    int frame;
    float floor_db; /* tracked noise floor */
    float rise_per_frame;
} energy;

static float energy_score(void *self, const float *x) {
    energy *e = self;
    double sum = 0;
    for (int i = 0; i < e->frame; i++)
        sum += (double)x[i] * (double)x[i];
    float db = (float)(10.0 * log10(sum / e->frame + 1e-10));
    if (db < e->floor_db)
        e->floor_db = db < -90.f ? -90.f : db;
    else
        e->floor_db += e->rise_per_frame;
    float level = e->floor_db + 12.f;
    if (level < -55.f) level = -55.f;
    return 1.f / (1.f + expf(-(db - level) / 2.f));
}

static void energy_reset(void *self) {
    ((energy *)self)->floor_db = -60.f;
}

static void energy_destroy(void *self) {
    free(self);
}

srv_vad_scorer *srv_vad_energy_new(int rate) {
    srv_vad_scorer *s = calloc(1, sizeof *s);
    energy *e = calloc(1, sizeof *e);
    if (!s || !e || rate < 1000) {
        free(s);
        free(e);
        return NULL;
    }
    e->frame = rate / 50;
    e->rise_per_frame = 0.5f / 50.f;
    energy_reset(e);
    s->rate = rate;
    s->frame = e->frame;
    s->score = energy_score;
    s->reset = energy_reset;
    s->destroy = energy_destroy;
    s->self = e;
    return s;
}

void srv_vad_scorer_free(srv_vad_scorer *s) {
    if (!s) return;
    if (s->destroy) s->destroy(s->self);
    free(s);
}

/* ---- the turn detector ------------------------------------------------------------ */

struct srv_vad {
    srv_vad_scorer *sc;
    srv_vad_params p;
    float *pending; /* samples of a partial frame */
    int n_pending;
    int64_t pos; /* samples scored so far */
    int in_speech;
    int64_t run_start; /* first frame of the current speech run (silence) */
    int speech_frames, silence_frames;
};

srv_vad_params srv_vad_default_params(void) {
    srv_vad_params p = {.threshold = 0.5f,
                        .prefix_padding_ms = 300,
                        .silence_duration_ms = 500,
                        .min_speech_ms = 100};
    return p;
}

srv_vad *srv_vad_new(srv_vad_scorer *scorer, const srv_vad_params *p) {
    if (!scorer) return NULL;
    srv_vad *v = calloc(1, sizeof *v);
    float *pend = malloc((size_t)scorer->frame * sizeof *pend);
    if (!v || !pend) {
        free(v);
        free(pend);
        srv_vad_scorer_free(scorer);
        return NULL;
    }
    v->sc = scorer;
    v->pending = pend;
    v->p = p ? *p : srv_vad_default_params();
    return v;
}

void srv_vad_free(srv_vad *v) {
    if (!v) return;
    srv_vad_scorer_free(v->sc);
    free(v->pending);
    free(v);
}

void srv_vad_set_params(srv_vad *v, const srv_vad_params *p) {
    v->p = *p;
}

int srv_vad_in_speech(const srv_vad *v) {
    return v->in_speech;
}

void srv_vad_reset(srv_vad *v, int64_t pos) {
    if (v->sc->reset) v->sc->reset(v->sc->self);
    v->n_pending = 0;
    v->pos = pos;
    v->in_speech = 0;
    v->speech_frames = v->silence_frames = 0;
}

/* One frame starting at sample `at`. */
static int frame(srv_vad *v, const float *x, int64_t at, srv_vad_event *ev, int max, int k) {
    float prob = v->sc->score(v->sc->self, x);
    int fms = (int)(1000LL * v->sc->frame / v->sc->rate);
    if (fms < 1) fms = 1;
    if (!v->in_speech) {
        if (prob >= v->p.threshold) {
            if (v->speech_frames++ == 0) v->run_start = at;
            if (v->speech_frames * fms >= v->p.min_speech_ms) {
                v->in_speech = 1;
                v->silence_frames = 0;
                if (k < max) ev[k++] = (srv_vad_event){SRV_VAD_START, v->run_start};
            }
        } else {
            v->speech_frames = 0;
        }
    } else {
        float neg = v->p.threshold - 0.15f;
        if (prob < neg) {
            v->silence_frames++;
            if (v->silence_frames * fms >= v->p.silence_duration_ms) {
                v->in_speech = 0;
                v->speech_frames = 0;
                if (k < max) ev[k++] = (srv_vad_event){SRV_VAD_STOP, at + v->sc->frame};
            }
        } else {
            v->silence_frames = 0;
        }
    }
    return k;
}

int srv_vad_push(srv_vad *v, const float *x, size_t n, srv_vad_event *ev, int max) {
    int k = 0;
    int f = v->sc->frame;
    size_t i = 0;
    if (v->n_pending > 0) {
        size_t take = (size_t)(f - v->n_pending);
        if (take > n) take = n;
        memcpy(v->pending + v->n_pending, x, take * sizeof *x);
        v->n_pending += (int)take;
        i = take;
        if (v->n_pending == f) {
            k = frame(v, v->pending, v->pos, ev, max, k);
            v->pos += f;
            v->n_pending = 0;
        }
    }
    for (; i + (size_t)f <= n; i += (size_t)f) {
        k = frame(v, x + i, v->pos, ev, max, k);
        v->pos += f;
    }
    if (i < n) {
        memcpy(v->pending, x + i, (n - i) * sizeof *x);
        v->n_pending = (int)(n - i);
    }
    return k;
}

/*
 * vad.h — voice activity for realtime sessions (the Realtime API's
 * "server_vad" turn detection): a frame scorer behind an interface (a
 * speech probability per frame; srv_vad_energy_new is a simple energy
 * detector, a neural one such as silero-vad fits the same interface) and
 * the turn detector that turns probabilities into speech-started /
 * speech-stopped events with OpenAI's parameters: threshold,
 * prefix_padding_ms, silence_duration_ms.
 */
#ifndef TOLK_SERVE_VAD_H
#define TOLK_SERVE_VAD_H

#include <stddef.h>
#include <stdint.h>

/* Scores frames of `frame` samples at `rate` Hz: the probability that the
 * frame holds speech, in [0, 1]. */
typedef struct srv_vad_scorer {
    int rate;
    int frame;
    float (*score)(void *self, const float *x);
    void (*reset)(void *self);
    void (*destroy)(void *self);
    void *self;
} srv_vad_scorer;

/* An energy scorer at rate Hz (20 ms frames): the frame's level in dBFS
 * against a tracked noise floor (it falls at once, rises 0.5 dB/s), through
 * a logistic curve centred 12 dB above the floor (and at least -55 dBFS).
 * NULL when out of memory. */
srv_vad_scorer *srv_vad_energy_new(int rate);
void srv_vad_scorer_free(srv_vad_scorer *s);

typedef struct srv_vad_params {
    float threshold;         /* a frame is speech at >= threshold [0.5] */
    int prefix_padding_ms;   /* audio kept before the start [300] */
    int silence_duration_ms; /* silence that ends a turn [500] */
    int min_speech_ms;       /* speech that starts a turn [100] */
} srv_vad_params;

srv_vad_params srv_vad_default_params(void);

enum { SRV_VAD_START = 1, SRV_VAD_STOP = 2 };

typedef struct srv_vad_event {
    int type;       /* SRV_VAD_START / SRV_VAD_STOP */
    int64_t sample; /* position in the input (samples at the scorer's rate) */
} srv_vad_event;

typedef struct srv_vad srv_vad;

/* A detector owning scorer (freed with it). NULL when out of memory. */
srv_vad *srv_vad_new(srv_vad_scorer *scorer, const srv_vad_params *p);
void srv_vad_free(srv_vad *v);
void srv_vad_set_params(srv_vad *v, const srv_vad_params *p);
/* Whether a turn is open (speech started, not yet stopped). */
int srv_vad_in_speech(const srv_vad *v);
/* Feed n samples; up to max events into ev (in order). START's sample is
 * the first speech frame; STOP's is where the silence reached
 * silence_duration_ms (the trailing silence is part of the turn). Returns
 * the number of events. */
int srv_vad_push(srv_vad *v, const float *x, size_t n, srv_vad_event *ev, int max);
/* Forget the state; the next sample fed is input sample pos. */
void srv_vad_reset(srv_vad *v, int64_t pos);

#endif

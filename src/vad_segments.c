/*
 * vad_segments.c — speech segments from per-chunk speech probabilities,
 * and the options that steer it.
 *
 * Reproduces silero-vad 6.2's get_speech_timestamps_from_probs (what
 * get_speech_timestamps returns in samples) step by step, with its Python
 * arithmetic: durations become float sample counts (16 * ms), a speech
 * segment starts at the first chunk with p >= threshold and ends after
 * min_silence_duration_ms of chunks with p < neg_threshold (at the first
 * of them); a segment longer than max_speech_duration_s is split at the
 * longest silence of more than min_silence_at_max_speech ms inside it
 * (use_max_poss_sil_at_max_speech, silero-vad's default) or at the last
 * such silence (off: faster-whisper's get_speech_timestamps, which is
 * silero-vad's earlier version of the same loop), else cut where it is;
 * segments shorter than min_speech_duration_ms are dropped; then each is
 * padded by speech_pad_ms, neighbours closer than twice the padding
 * meeting half-way. Defaults are faster-whisper's VadOptions (its
 * vad_filter): threshold 0.5, neg_threshold None (threshold - 0.15, at
 * least 0.01), min_speech_duration_ms 0, max_speech_duration_s inf,
 * min_silence_duration_ms 2000, speech_pad_ms 400.
 */
#include "vad_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

tolk_vad_params tolk_vad_default_params(void) {
    tolk_vad_params p;
    memset(&p, 0, sizeof p);
    p.threshold = 0.5;
    p.neg_threshold = -1.0;
    p.min_speech_duration_ms = 0;
    p.max_speech_duration_s = INFINITY;
    p.min_silence_duration_ms = 2000;
    p.speech_pad_ms = 400;
    p.min_silence_at_max_speech_ms = 98;
    p.use_max_poss_sil_at_max_speech = 0;
    return p;
}

tolk_vad_params tolk_vad_silero_params(void) {
    tolk_vad_params p = tolk_vad_default_params();
    p.min_speech_duration_ms = 250;
    p.min_silence_duration_ms = 100;
    p.speech_pad_ms = 30;
    p.use_max_poss_sil_at_max_speech = 1;
    return p;
}

#define MAX_MS 100000000 /* 27.7 hours: larger durations are surely mistakes */

tolk_status tolk_vad_check_params(tolk_ctx *ctx, const tolk_vad_params *p) {
    if (!p) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "VAD options: NULL");
    if (!(p->threshold >= 0.0 && p->threshold <= 1.0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_threshold %g is not a probability in [0, 1]", p->threshold);
    if (p->neg_threshold >= 0.0 && !(p->neg_threshold <= p->threshold))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_neg_threshold %g must not exceed vad_threshold %g (or be negative: "
                         "the default, threshold - 0.15)",
                         p->neg_threshold, p->threshold);
    if (isnan(p->neg_threshold))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "vad_neg_threshold is NaN");
    if (p->min_speech_duration_ms < 0 || p->min_speech_duration_ms > MAX_MS)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_min_speech_duration_ms %d is not in [0, %d]",
                         p->min_speech_duration_ms, MAX_MS);
    if (!(p->max_speech_duration_s > 0.0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_max_speech_duration_s %g is not a positive number of seconds (inf: "
                         "no limit)",
                         p->max_speech_duration_s);
    if (p->min_silence_duration_ms < 0 || p->min_silence_duration_ms > MAX_MS)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_min_silence_duration_ms %d is not in [0, %d]",
                         p->min_silence_duration_ms, MAX_MS);
    if (p->speech_pad_ms < 0 || p->speech_pad_ms > MAX_MS)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "vad_speech_pad_ms %d is not in [0, %d]",
                         p->speech_pad_ms, MAX_MS);
    if (p->min_silence_at_max_speech_ms < 0 || p->min_silence_at_max_speech_ms > MAX_MS)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "min_silence_at_max_speech_ms %d is not in [0, %d]",
                         p->min_silence_at_max_speech_ms, MAX_MS);
    return TOLK_OK;
}

/* A growable list of segments. */
typedef struct seglist {
    tolk_speech_segment *v;
    size_t n, cap;
} seglist;

static int seg_push(seglist *l, int64_t start, int64_t end) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        tolk_speech_segment *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].start = start;
    l->v[l->n].end = end;
    l->n++;
    return 0;
}

/* Python's a // b for b > 0. */
static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* The silences seen inside the current segment: (start, duration). */
typedef struct ends {
    int64_t *at, *dur;
    size_t n, cap;
} ends;

static int ends_push(ends *e, int64_t at, int64_t dur) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        int64_t *a = realloc(e->at, cap * sizeof *a);
        if (!a) return -1;
        e->at = a;
        int64_t *d = realloc(e->dur, cap * sizeof *d);
        if (!d) return -1;
        e->dur = d;
        e->cap = cap;
    }
    e->at[e->n] = at;
    e->dur[e->n] = dur;
    e->n++;
    return 0;
}

tolk_status tolk_vad_segments_from_probs(tolk_ctx *ctx, const float *probs, size_t n_probs,
                                         size_t n_samples, const tolk_vad_params *params,
                                         tolk_speech_segment **out, size_t *n_out) {
    if (!out || !n_out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "VAD segments: NULL out");
    *out = NULL;
    *n_out = 0;
    if (!probs && n_probs) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "VAD segments: NULL probs");
    tolk_vad_params defaults = tolk_vad_default_params();
    const tolk_vad_params *p = params ? params : &defaults;
    tolk_status st = tolk_vad_check_params(ctx, p);
    if (st) return st;
    const double sr = TOLK_SAMPLE_RATE, window = TOLK_VAD_CHUNK;
    const double threshold = p->threshold;
    const double min_speech = sr * p->min_speech_duration_ms / 1000.0;
    const double pad = sr * p->speech_pad_ms / 1000.0;
    const double max_speech = sr * p->max_speech_duration_s - window - 2 * pad;
    const double min_silence = sr * p->min_silence_duration_ms / 1000.0;
    const double min_silence_at_max = sr * p->min_silence_at_max_speech_ms / 1000.0;
    const int use_max_poss = p->use_max_poss_sil_at_max_speech != 0;
    double neg = p->neg_threshold;
    if (neg < 0) neg = threshold - 0.15 > 0.01 ? threshold - 0.15 : 0.01;
    /* float32 probabilities compared in double, as Python compares floats */
    int triggered = 0, has_cur = 0;
    int64_t cur_start = 0, temp_end = 0, prev_end = 0, next_start = 0;
    seglist sp = {0};
    ends pe = {0};
    int oom = 0;
    for (size_t i = 0; i < n_probs && !oom; i++) {
        const double prob = probs[i];
        const int64_t cur = (int64_t)i * TOLK_VAD_CHUNK;
        if (prob >= threshold && temp_end) {
            const int64_t sil = cur - temp_end;
            if ((double)sil > min_silence_at_max && ends_push(&pe, temp_end, sil)) oom = 1;
            temp_end = 0;
            if (next_start < prev_end) next_start = cur;
        }
        if (prob >= threshold && !triggered) {
            triggered = 1;
            has_cur = 1;
            cur_start = cur;
            continue;
        }
        if (triggered && (double)(cur - cur_start) > max_speech) {
            if (use_max_poss && pe.n) {
                size_t best = 0;
                for (size_t k = 1; k < pe.n; k++)
                    if (pe.dur[k] > pe.dur[best]) best = k;
                prev_end = pe.at[best];
                const int64_t dur = pe.dur[best];
                if (seg_push(&sp, cur_start, prev_end)) oom = 1;
                has_cur = 0;
                next_start = prev_end + dur;
                if (next_start < prev_end + cur) {
                    has_cur = 1;
                    cur_start = next_start;
                } else {
                    triggered = 0;
                }
                prev_end = next_start = temp_end = 0;
                pe.n = 0;
            } else if (prev_end) {
                if (seg_push(&sp, cur_start, prev_end)) oom = 1;
                has_cur = 0;
                if (next_start < prev_end) {
                    triggered = 0;
                } else {
                    has_cur = 1;
                    cur_start = next_start;
                }
                prev_end = next_start = temp_end = 0;
                pe.n = 0;
            } else {
                if (seg_push(&sp, cur_start, cur)) oom = 1;
                has_cur = 0;
                prev_end = next_start = temp_end = 0;
                triggered = 0;
                pe.n = 0;
                continue;
            }
        }
        if (prob < neg && triggered) {
            if (!temp_end) temp_end = cur;
            const int64_t sil_now = cur - temp_end;
            if (!use_max_poss && (double)sil_now > min_silence_at_max) prev_end = temp_end;
            if ((double)sil_now < min_silence) continue;
            if ((double)(temp_end - cur_start) > min_speech && seg_push(&sp, cur_start, temp_end))
                oom = 1;
            has_cur = 0;
            prev_end = next_start = temp_end = 0;
            triggered = 0;
            pe.n = 0;
            continue;
        }
    }
    if (!oom && has_cur && (double)((int64_t)n_samples - cur_start) > min_speech &&
        seg_push(&sp, cur_start, (int64_t)n_samples))
        oom = 1;
    free(pe.at);
    free(pe.dur);
    if (oom) {
        free(sp.v);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "VAD segments: out of memory");
    }
    const double len = (double)n_samples;
    for (size_t i = 0; i < sp.n; i++) {
        tolk_speech_segment *s = &sp.v[i];
        if (i == 0) s->start = (int64_t)fmax(0.0, (double)s->start - pad);
        if (i + 1 < sp.n) {
            tolk_speech_segment *nx = &sp.v[i + 1];
            const int64_t silence = nx->start - s->end;
            if ((double)silence < 2 * pad) {
                s->end += floordiv(silence, 2);
                nx->start = (int64_t)fmax(0.0, (double)(nx->start - floordiv(silence, 2)));
            } else {
                s->end = (int64_t)fmin(len, (double)s->end + pad);
                nx->start = (int64_t)fmax(0.0, (double)nx->start - pad);
            }
        } else {
            s->end = (int64_t)fmin(len, (double)s->end + pad);
        }
    }
    *out = sp.v;
    *n_out = sp.n;
    if (!sp.n) {
        free(sp.v);
        *out = NULL;
    }
    return TOLK_OK;
}

tolk_status tolk_vad_speech_timestamps(tolk_ctx *ctx, const tolk_vad *vad, const float *samples,
                                       size_t n, const tolk_vad_params *p,
                                       tolk_speech_segment **out, size_t *n_out) {
    if (!out || !n_out)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_speech_timestamps: NULL out");
    *out = NULL;
    *n_out = 0;
    tolk_vad_params defaults = tolk_vad_default_params();
    if (!p) p = &defaults;
    tolk_status st = tolk_vad_check_params(ctx, p);
    if (st) return st;
    float *probs = NULL;
    size_t np = 0;
    if ((st = tolk_vad_probs(ctx, vad, samples, n, &probs, &np))) return st;
    st = tolk_vad_segments_from_probs(ctx, probs, np, n, p, out, n_out);
    free(probs);
    return st;
}

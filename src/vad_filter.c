/*
 * vad_filter.c — transcription of the speech only (faster-whisper's
 * vad_filter): the entry point tolk_vad_filter_transcribe, called by
 * tolk_transcribe (state.c) when tolk_transcribe_params.vad is set.
 *
 * Reproduces faster-whisper's WhisperModel.transcribe with vad_filter
 * (transcribe.py, vad.py): get_speech_timestamps on the whole input with
 * the VAD options; collect_chunks: the speech segments' samples joined
 * end to end; the joined audio transcribed as one input; then
 * restore_speech_timestamps: each segment time t (seconds on the joined
 * timeline) becomes t + the silence removed before the speech segment it
 * falls in, rounded to 2 decimals (SpeechTimestampsMap.get_original_time:
 * the segment is found by bisecting the joined ends with int(t * 16000); an
 * end time exactly on a join belongs to the segment it ends). The window
 * seek stays on the joined timeline, as there. No speech at all gives a
 * result with no segments (faster-whisper transcribes nothing).
 * Segments streamed through on_segment and the progress positions are
 * mapped the same way.
 */
#include "engine.h"
#include "vad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The map from the joined timeline back to the original one, and the
 * caller's callbacks. */
typedef struct vf_map {
    size_t n;               /* speech segments */
    int64_t *joined_end;    /* [n] end of segment i on the joined timeline, samples */
    double *silence_before; /* [n] seconds removed before segment i */
    double duration;        /* of the original input, seconds */
    const tolk_transcribe_params *outer;
} vf_map;

/* Python's round(x, 2): the exact binary value rounded half-even in
 * decimal, as printf does it. */
static double round2(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", x);
    return strtod(buf, NULL);
}

/* get_original_time(t, is_end) of SpeechTimestampsMap. */
static double original_time(const vf_map *m, double t, int is_end) {
    const int64_t sample = (int64_t)(t * TOLK_SAMPLE_RATE);
    size_t idx = m->n; /* not found */
    if (is_end)
        for (size_t i = 0; i < m->n && idx == m->n; i++)
            if (m->joined_end[i] == sample) idx = i;
    if (idx == m->n) { /* bisect_right, clamped to the last segment */
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sample < m->joined_end[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        idx = lo < m->n ? lo : m->n - 1;
    }
    return round2(m->silence_before[idx] + t);
}

static void vf_on_segment(void *user, const tolk_segment *s) {
    const vf_map *m = user;
    tolk_segment copy = *s;
    copy.start = original_time(m, s->start, 0);
    copy.end = original_time(m, s->end, 1);
    m->outer->on_segment(m->outer->user, &copy);
}

static int vf_progress(void *user, double pos, double total) {
    const vf_map *m = user;
    (void)total;
    double at = original_time(m, pos, 1);
    return m->outer->progress(m->outer->user, at < m->duration ? at : m->duration, m->duration);
}

/* A result with no segments for an input without speech. */
static tolk_status empty_result(tolk_ctx *ctx, const tolk_transcribe_params *p, double duration,
                                tolk_result **out) {
    tolk_result *r = calloc(1, sizeof *r);
    if (r) r->text = calloc(1, 1);
    if (!r || !r->text) {
        tolk_result_free(r);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
    }
    if (p->language) {
        snprintf(r->language, sizeof r->language, "%s", p->language);
        r->language_prob = 1.0f;
    }
    r->duration = duration;
    *out = r;
    return TOLK_OK;
}

tolk_status tolk_vad_filter_transcribe(tolk_state *state, const float *x, size_t n,
                                       const tolk_transcribe_params *p, tolk_result **out) {
    tolk_ctx *ctx = tolk_state_ctx(state);
    *out = NULL;
    if (p->clip_timestamps && *p->clip_timestamps && strcmp(p->clip_timestamps, "0") != 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_filter and clip_timestamps '%s' cannot be combined",
                         p->clip_timestamps);
    tolk_speech_segment *sp = NULL;
    size_t nsp = 0;
    tolk_status st = tolk_vad_speech_timestamps(ctx, p->vad, x, n, &p->vad_params, &sp, &nsp);
    if (st) return st;
    const double duration = (double)n / TOLK_SAMPLE_RATE;
    if (nsp == 0) return empty_result(ctx, p, duration, out);

    vf_map m = {.n = nsp, .duration = duration, .outer = p};
    m.joined_end = tolk_malloc_array(nsp, sizeof(int64_t));
    m.silence_before = tolk_malloc_array(nsp, sizeof(double));
    size_t total = 0;
    for (size_t i = 0; i < nsp; i++)
        total += (size_t)(sp[i].end - sp[i].start);
    float *joined = tolk_malloc_array(total ? total : 1, sizeof(float));
    if (!m.joined_end || !m.silence_before || !joined) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
        goto done;
    }
    int64_t prev_end = 0, silent = 0;
    size_t at = 0;
    for (size_t i = 0; i < nsp; i++) {
        silent += sp[i].start - prev_end;
        prev_end = sp[i].end;
        m.joined_end[i] = sp[i].end - silent;
        m.silence_before[i] = (double)silent / TOLK_SAMPLE_RATE;
        const size_t len = (size_t)(sp[i].end - sp[i].start);
        memcpy(joined + at, x + sp[i].start, len * sizeof(float));
        at += len;
    }
    tolk_transcribe_params inner = *p;
    inner.vad = NULL;
    inner.on_segment = p->on_segment ? vf_on_segment : NULL;
    inner.progress = p->progress ? vf_progress : NULL;
    inner.user = &m;
    tolk_result *res = NULL;
    st = tolk_transcribe(state, joined, total, &inner, &res);
    if (st) goto done;
    for (int i = 0; i < res->n_segments; i++) {
        res->segments[i].start = original_time(&m, res->segments[i].start, 0);
        res->segments[i].end = original_time(&m, res->segments[i].end, 1);
    }
    res->duration = duration;
    *out = res;
done:
    free(m.joined_end);
    free(m.silence_before);
    free(joined);
    free(sp);
    return st;
}

/* ---- the hook for batched long-form (vad_internal.h) ----------------------- */

tolk_vad_params tolk_vad_batched_params(void) {
    tolk_vad_params p = tolk_vad_default_params();
    p.max_speech_duration_s = TOLK_CHUNK_SECONDS;
    p.min_silence_duration_ms = 160;
    return p;
}

tolk_status tolk_vad_pack_groups(tolk_ctx *ctx, const tolk_speech_segment *sp, size_t n,
                                 int64_t max_samples, tolk_vad_group **out, size_t *n_out) {
    if (!out || !n_out || (!sp && n) || max_samples <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_pack_groups: bad arguments");
    *out = NULL;
    *n_out = 0;
    if (n == 0) return TOLK_OK;
    tolk_vad_group *g = tolk_malloc_array(n, sizeof *g);
    if (!g) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_vad_pack_groups: out of memory");
    size_t k = 0;
    int64_t joined = 0;
    for (size_t i = 0; i < n; i++) {
        const int64_t len = sp[i].end - sp[i].start;
        if (k > 0 && g[k - 1].samples + len <= max_samples) {
            g[k - 1].count++;
            g[k - 1].samples += len;
        } else {
            g[k].first = i;
            g[k].count = 1;
            g[k].samples = len;
            g[k].joined_offset = joined;
            k++;
        }
        joined += len;
    }
    *out = g;
    *n_out = k;
    return TOLK_OK;
}

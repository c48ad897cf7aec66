/*
 * vad_filter.c — transcription of the speech only, as engine requests:
 * faster-whisper's vad_filter and its BatchedInferencePipeline, with each
 * piece keeping openai-whisper's full decoding semantics.
 *
 * vad_filter (tolk_transcribe_params.vad, batched = 0) reproduces
 * faster-whisper's WhisperModel.transcribe with vad_filter (transcribe.py,
 * vad.py): get_speech_timestamps on the whole input with the VAD options;
 * collect_chunks: the speech segments' samples joined end to end; the
 * joined audio transcribed as one input (one engine request, long-form
 * seek over the joined timeline); then restore_speech_timestamps: each
 * segment time t (seconds on the joined timeline) becomes t + the silence
 * removed before the speech segment it falls in, rounded to 2 decimals
 * (SpeechTimestampsMap.get_original_time: the segment is found by
 * bisecting the joined ends with int(t * 16000); an end time exactly on a
 * join belongs to the segment it ends); with word timestamps each word's
 * start and end are mapped through the speech segment of the word's middle
 * and a segment spans its words. No speech at all gives a result with no
 * segments (faster-whisper transcribes nothing).
 *
 * Batched long-form (batched = 1) is faster-whisper's
 * BatchedInferencePipeline: speech found with its VAD options
 * (max_speech_duration_s 30, min_silence_duration_ms 160), packed into
 * groups of at most 30 s of joined speech (collect_chunks(max_duration=
 * 30)), each group an engine request of its own, so the groups of a file
 * decode in parallel with each other and with every other request; the
 * language (when not given) is identified once, on the first group. Where
 * faster-whisper's batched mode decodes each chunk once at temperature 0
 * without timestamps, here every group keeps the temperature fallback, the
 * no-speech skip and the timestamp rules of the request's parameters.
 *
 * Either way the caller holds one tolk_request (a "job"): it is done when
 * its pieces are; its final segments are those of the pieces in order,
 * times on the original timeline, as far as every earlier piece is done.
 */
#include "engine.h"
#include "result.h"
#include "vad_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The map from the joined timeline back to the original one. */
typedef struct vf_map {
    size_t n;               /* speech segments */
    int64_t *joined_end;    /* [n] end of segment i on the joined timeline, samples */
    double *silence_before; /* [n] seconds removed before segment i */
} vf_map;

/* What a piece's callbacks need: the job and where the piece starts. */
typedef struct vf_kid {
    struct tolk_vad_job *job;
    double offset_s; /* the piece's start on the joined timeline */
} vf_kid;

struct tolk_vad_job {
    tolk_engine *e;
    tolk_ctx *ctx; /* the parent request's messages (borrowed) */
    tolk_request **kids;
    vf_kid *kctx;
    int n_kids;
    vf_map map;
    double duration;              /* of the original input, seconds */
    tolk_transcribe_params outer; /* the caller's callbacks */
    char language[8];
    float language_prob;
    int taken; /* the result was handed over */
};

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

/* SpeechTimestampsMap.get_chunk_index(t): the speech segment t falls in
 * (bisect_right over the joined ends, clamped to the last one). */
static size_t chunk_index(const vf_map *m, double t) {
    const int64_t sample = (int64_t)(t * TOLK_SAMPLE_RATE);
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sample < m->joined_end[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < m->n ? lo : m->n - 1;
}

/* A piece's segment on the original timeline (in place), as
 * restore_speech_timestamps: with words, each word's start and end are
 * mapped through the speech segment of its middle and the segment spans
 * its words; without, the segment's own start / end are mapped. */
static void map_segment(const struct tolk_vad_job *j, const vf_kid *k, tolk_seg_rec *rec) {
    tolk_segment *s = &rec->pub;
    if (s->n_words > 0) {
        for (int i = 0; i < s->n_words; i++) {
            tolk_word *w = &rec->words[i];
            const double a = k->offset_s + w->start, b = k->offset_s + w->end;
            const size_t c = chunk_index(&j->map, (a + b) / 2.0);
            w->start = round2(j->map.silence_before[c] + a);
            w->end = round2(j->map.silence_before[c] + b);
        }
        s->start = rec->words[0].start;
        s->end = rec->words[s->n_words - 1].end;
    } else {
        s->start = original_time(&j->map, k->offset_s + s->start, 0);
        s->end = original_time(&j->map, k->offset_s + s->end, 1);
    }
    s->seek += (int)nearbyint(k->offset_s * 100.0); /* frames of 10 ms */
}

static void vf_on_segment(void *user, const tolk_segment *s) {
    const vf_kid *k = user;
    /* the segments the library hands out are records (result.h) */
    tolk_seg_rec copy;
    if (!tolk_seg_rec_copy(&copy, (const tolk_seg_rec *)s)) return;
    map_segment(k->job, k, &copy);
    k->job->outer.on_segment(k->job->outer.user, &copy.pub);
    tolk_seg_rec_clear(&copy);
}

static int vf_progress(void *user, double pos, double total) {
    const vf_kid *k = user;
    (void)total;
    double at = original_time(&k->job->map, k->offset_s + pos, 1);
    double d = k->job->duration;
    return k->job->outer.progress(k->job->outer.user, at < d ? at : d, d);
}

void tolk_vad_job_free(struct tolk_vad_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_kids; i++)
        tolk_request_free(j->kids[i]);
    free(j->kids);
    free(j->kctx);
    free(j->map.joined_end);
    free(j->map.silence_before);
    free(j);
}

tolk_status tolk_vad_job_submit(tolk_engine *e, const float *x, size_t n,
                                const tolk_transcribe_params *p, tolk_request **out) {
    tolk_ctx *ctx = tolk_engine_caller_ctx(e);
    *out = NULL;
    if (p->clip_timestamps && *p->clip_timestamps && strcmp(p->clip_timestamps, "0") != 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "vad_filter and clip_timestamps '%s' cannot be combined",
                         p->clip_timestamps);
    tolk_vad_params vp = p->vad_params;
    if (p->vad_batched) { /* faster-whisper's batched VAD options */
        tolk_vad_params b = tolk_vad_batched_params();
        vp.max_speech_duration_s = b.max_speech_duration_s;
        vp.min_silence_duration_ms = b.min_silence_duration_ms;
    }
    tolk_speech_segment *sp = NULL;
    size_t nsp = 0;
    tolk_status st = tolk_vad_speech_timestamps(ctx, p->vad, x, n, &vp, &sp, &nsp);
    if (st) return st;
    struct tolk_vad_job *j = calloc(1, sizeof *j);
    tolk_vad_group *g = NULL;
    size_t ng = 0;
    float *joined = NULL;
    if (!j) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
        goto done;
    }
    j->e = e;
    j->duration = (double)n / TOLK_SAMPLE_RATE;
    j->outer = *p;
    if (p->language) snprintf(j->language, sizeof j->language, "%s", p->language);
    j->language_prob = 1.0f;
    j->map.n = nsp;
    j->map.joined_end = tolk_malloc_array(nsp ? nsp : 1, sizeof(int64_t));
    j->map.silence_before = tolk_malloc_array(nsp ? nsp : 1, sizeof(double));
    size_t total = 0;
    for (size_t i = 0; i < nsp; i++)
        total += (size_t)(sp[i].end - sp[i].start);
    joined = tolk_malloc_array(total ? total : 1, sizeof(float));
    if (!j->map.joined_end || !j->map.silence_before || !joined) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
        goto done;
    }
    int64_t prev_end = 0, silent = 0;
    size_t at = 0;
    for (size_t i = 0; i < nsp; i++) {
        silent += sp[i].start - prev_end;
        prev_end = sp[i].end;
        j->map.joined_end[i] = sp[i].end - silent;
        j->map.silence_before[i] = (double)silent / TOLK_SAMPLE_RATE;
        const size_t len = (size_t)(sp[i].end - sp[i].start);
        memcpy(joined + at, x + sp[i].start, len * sizeof(float));
        at += len;
    }
    /* the pieces: the whole joined timeline, or <= 30 s groups of it */
    if (nsp > 0 && p->vad_batched) {
        st = tolk_vad_pack_groups(ctx, sp, nsp, TOLK_N_SAMPLES, &g, &ng);
        if (st) goto done;
    } else if (nsp > 0) {
        g = malloc(sizeof *g);
        if (!g) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
            goto done;
        }
        g[0] = (tolk_vad_group){.first = 0, .count = nsp, .samples = (int64_t)total};
        ng = 1;
    }
    j->kids = calloc(ng ? ng : 1, sizeof *j->kids);
    j->kctx = calloc(ng ? ng : 1, sizeof *j->kctx);
    if (!j->kids || !j->kctx) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "vad_filter: out of memory");
        goto done;
    }
    tolk_transcribe_params inner = *p;
    inner.vad = NULL;
    inner.vad_batched = 0;
    /* batched: one language for every group, from the first one */
    if (ng > 1 && !inner.language) {
        tolk_request *d = NULL;
        float probs[100];
        size_t len = (size_t)g[0].samples;
        st = tolk_engine_submit_detect(e, joined, len < TOLK_N_SAMPLES ? len : TOLK_N_SAMPLES, &d);
        if (st == TOLK_OK) st = tolk_request_wait(d);
        int nl = st == TOLK_OK ? tolk_request_language_probs(d, probs) : 0;
        if (st != TOLK_OK) tolk_fail(ctx, st, "%s", tolk_request_last_error(d));
        tolk_request_free(d);
        if (st == TOLK_ERR_UNSUPPORTED) st = TOLK_OK; /* English-only: nothing to identify */
        if (st) goto done;
        if (nl > 0) {
            int best = 0;
            for (int i = 1; i < nl; i++)
                if (probs[i] > probs[best]) best = i;
            const char *code = tolk_engine_language_code(e, best);
            if (code) {
                snprintf(j->language, sizeof j->language, "%s", code);
                j->language_prob = probs[best];
                inner.language = j->language;
            }
        }
    }
    for (size_t k = 0; k < ng; k++) {
        j->kctx[k] = (vf_kid){.job = j, .offset_s = (double)g[k].joined_offset / TOLK_SAMPLE_RATE};
        inner.on_segment = p->on_segment ? vf_on_segment : NULL;
        inner.progress = p->progress ? vf_progress : NULL;
        inner.user = &j->kctx[k];
        st = tolk_engine_submit_samples(e, joined + g[k].joined_offset, (size_t)g[k].samples,
                                        &inner, &j->kids[k]);
        if (st) goto done;
        j->n_kids = (int)k + 1;
    }
    st = tolk_request_new_job(e, j, out);
done:
    if (st) {
        for (int i = 0; j && i < j->n_kids; i++)
            tolk_request_cancel(j->kids[i]);
        tolk_vad_job_free(j);
    }
    free(g);
    free(joined);
    free(sp);
    return st;
}

int tolk_vad_job_done(const struct tolk_vad_job *j) {
    for (int i = 0; i < j->n_kids; i++)
        if (!tolk_request_done(j->kids[i])) return 0;
    return 1;
}

tolk_status tolk_vad_job_status(const struct tolk_vad_job *j) {
    for (int i = 0; i < j->n_kids; i++) {
        tolk_status s = tolk_request_status(j->kids[i]);
        if (s != TOLK_OK) return s;
    }
    return TOLK_OK;
}

const char *tolk_vad_job_error(const struct tolk_vad_job *j) {
    for (int i = 0; i < j->n_kids; i++)
        if (tolk_request_status(j->kids[i]) != TOLK_OK) return tolk_request_last_error(j->kids[i]);
    return "";
}

tolk_status tolk_vad_job_wait(struct tolk_vad_job *j) {
    tolk_status first = TOLK_OK;
    for (int i = 0; i < j->n_kids; i++) {
        tolk_status s = tolk_request_wait(j->kids[i]);
        if (s != TOLK_OK && first == TOLK_OK) first = s;
    }
    return first;
}

void tolk_vad_job_cancel(struct tolk_vad_job *j) {
    for (int i = 0; i < j->n_kids; i++)
        tolk_request_cancel(j->kids[i]);
}

int tolk_vad_job_n_segments(const struct tolk_vad_job *j) {
    int n = 0;
    for (int i = 0; i < j->n_kids; i++) {
        n += tolk_request_n_segments(j->kids[i]);
        if (!tolk_request_done(j->kids[i])) break; /* later pieces wait for this one */
    }
    return n;
}

/* Move src's segments from skip on, mapped from piece k, to dst (ids
 * renumbered). */
static tolk_status append(tolk_result *dst, tolk_result *src, const struct tolk_vad_job *j, int k,
                          int skip) {
    for (int i = skip; i < src->n_segs; i++) {
        tolk_seg_rec *rec = &src->segs[i];
        map_segment(j, &j->kctx[k], rec);
        rec->pub.id = dst->n_segs;
        if (!tolk_result_push(dst, rec)) return TOLK_ERR_NOMEM;
    }
    /* the moved records' memory now belongs to dst */
    if (src->n_segs > skip) src->n_segs = skip;
    return TOLK_OK;
}

/* Concatenate b to *a (malloc'd). */
static int cat(char **a, const char *b) {
    size_t la = *a ? strlen(*a) : 0, lb = strlen(b);
    char *s = realloc(*a, la + lb + 1);
    if (!s) return 0;
    memcpy(s + la, b, lb + 1);
    *a = s;
    return 1;
}

static tolk_result *new_result(const struct tolk_vad_job *j) {
    tolk_result *r = tolk_result_new();
    if (!r) return NULL;
    tolk_result_set_language(r, j->language);
    r->language_prob = j->language_prob;
    r->duration = j->duration;
    r->has_words = j->outer.word_timestamps != 0;
    return r;
}

tolk_status tolk_vad_job_segments(struct tolk_vad_job *j, int from, tolk_result **out) {
    *out = new_result(j);
    if (!*out) return tolk_fail(j->ctx, TOLK_ERR_NOMEM, "request: out of memory");
    int before = 0; /* segments of the pieces already walked */
    for (int i = 0; i < j->n_kids; i++) {
        int done = tolk_request_done(j->kids[i]);
        tolk_result *part = NULL;
        int skip = from > before ? from - before : 0;
        tolk_status s = tolk_request_segments(j->kids[i], 0, &part);
        if (s == TOLK_OK) {
            before += part->n_segs;
            if (skip < part->n_segs) s = append(*out, part, j, i, skip);
        }
        tolk_result_free(part);
        if (s != TOLK_OK) {
            tolk_result_free(*out);
            *out = NULL;
            return tolk_fail(j->ctx, s, "request: out of memory");
        }
        if (!done) break;
    }
    return TOLK_OK;
}

tolk_status tolk_vad_job_result(struct tolk_vad_job *j, tolk_result **out) {
    *out = NULL;
    if (!tolk_vad_job_done(j))
        return tolk_fail(j->ctx, TOLK_ERR_INVALID_ARG, "request: still running");
    tolk_status s = tolk_vad_job_status(j);
    if (s != TOLK_OK) return tolk_fail(j->ctx, s, "%s", tolk_vad_job_error(j));
    if (j->taken)
        return tolk_fail(j->ctx, TOLK_ERR_INVALID_ARG, "request: the result was already taken");
    tolk_result *res = new_result(j);
    if (!res) return tolk_fail(j->ctx, TOLK_ERR_NOMEM, "request: out of memory");
    for (int i = 0; i < j->n_kids && s == TOLK_OK; i++) {
        tolk_result *part = NULL;
        s = tolk_request_result(j->kids[i], &part);
        if (s != TOLK_OK) break;
        if (i == 0 && j->n_kids == 1) { /* vad_filter: the language the request found */
            tolk_result_set_language(res, part->language);
            res->language_prob = part->language_prob;
        }
        if (!cat(&res->text, part->text ? part->text : "")) s = TOLK_ERR_NOMEM;
        if (s == TOLK_OK) s = append(res, part, j, i, 0);
        tolk_result_free(part);
    }
    if (s != TOLK_OK) {
        tolk_result_free(res);
        return tolk_fail(j->ctx, s, "request: cannot join the pieces' results");
    }
    j->taken = 1;
    *out = res;
    return TOLK_OK;
}

void tolk_vad_job_bind(struct tolk_vad_job *j, tolk_ctx *ctx) {
    j->ctx = ctx;
}

/* ---- the options of faster-whisper's batched pipeline ----------------- */

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

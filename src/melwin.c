/*
 * melwin.c — sample sources and the mel windows of a long-form
 * transcription (melwin.h): openai-whisper transcribe()'s log-mel of the
 * padded input, clamped at its global max - 8, cut into 30 s windows.
 *
 * Memory: the mel is never held whole. Pass 1 computes the global maximum
 * of the raw log-mel piece by piece; pass 2 computes each window's frames
 * from the samples around it (frame-exact: pieces start on a frame
 * boundary two frames early, so every kept frame sees its real context).
 * A file is streamed twice through a sliding buffer; a live input keeps
 * only the samples a future window can still read.
 */
#include "melwin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LEAD_FRAMES 2 /* frames of left context in a piece */
#define PIECE_FRAMES TOLK_N_FRAMES
/* samples one piece needs: lead + frames, and 200 samples of right context */
#define PIECE_SAMPLES ((size_t)(LEAD_FRAMES + PIECE_FRAMES) * TOLK_HOP_LENGTH + TOLK_N_FFT / 2)
#define LIVE_MAX_SAMPLES ((size_t)1 << 40)

/* ---- memory -------------------------------------------------------------- */

static tolk_status mem_fetch(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst,
                             size_t *real) {
    (void)ctx;
    tolk_mem_src *m = user;
    size_t r = 0;
    if (a < m->n) r = (b < m->n ? b : m->n) - a;
    if (r) memcpy(dst, m->x + a, r * sizeof(float));
    memset(dst + r, 0, (b - a - r) * sizeof(float));
    *real = r;
    return TOLK_OK;
}

tolk_sample_src tolk_mem_src_make(tolk_mem_src *m) {
    return (tolk_sample_src){.user = m, .fetch = mem_fetch};
}

/* ---- file ---------------------------------------------------------------- */

tolk_status tolk_file_src_open(tolk_ctx *ctx, const char *path, tolk_file_src *f) {
    memset(f, 0, sizeof *f);
    f->cap = PIECE_SAMPLES + 65536;
    f->buf = tolk_malloc_array(f->cap, sizeof(float));
    f->path = strdup(path);
    if (!f->buf || !f->path) {
        tolk_file_src_close(f);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    tolk_status s = tolk_audio_open(ctx, path, &f->rd);
    if (s != TOLK_OK) tolk_file_src_close(f);
    return s;
}

tolk_status tolk_file_src_rewind(tolk_ctx *ctx, tolk_file_src *f) {
    if (f->rd) tolk_audio_close(f->rd);
    f->rd = NULL;
    f->base = f->len = 0;
    f->eof = 0;
    return tolk_audio_open(ctx, f->path, &f->rd);
}

void tolk_file_src_close(tolk_file_src *f) {
    if (f->rd) tolk_audio_close(f->rd);
    free(f->buf);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static tolk_status file_fetch(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst,
                              size_t *real) {
    tolk_file_src *f = user;
    if (a < f->base) return tolk_fail(ctx, TOLK_ERR_INTERNAL, "transcribe: backward file read");
    size_t drop = a - f->base;
    if (drop >= f->len) {
        /* skip over samples never needed */
        size_t skip = drop - f->len;
        f->base += f->len;
        f->len = 0;
        while (skip > 0 && !f->eof) {
            size_t want = skip < f->cap ? skip : f->cap, got = 0;
            tolk_status s = tolk_audio_read(ctx, f->rd, f->buf, want, &got);
            if (s != TOLK_OK) return s;
            if (got == 0) f->eof = 1;
            f->base += got;
            skip -= got;
        }
        if (skip > 0) f->base = a; /* past the end */
    } else if (drop > 0) {
        memmove(f->buf, f->buf + drop, (f->len - drop) * sizeof(float));
        f->base += drop;
        f->len -= drop;
    }
    if (b - a > f->cap) return tolk_fail(ctx, TOLK_ERR_INTERNAL, "transcribe: piece too long");
    while (!f->eof && f->base + f->len < b) {
        size_t got = 0;
        tolk_status s = tolk_audio_read(ctx, f->rd, f->buf + f->len, f->cap - f->len, &got);
        if (s != TOLK_OK) return s;
        if (got == 0) f->eof = 1;
        f->len += got;
    }
    size_t have = f->base + f->len > a ? f->base + f->len - a : 0;
    size_t r = have < b - a ? have : b - a;
    if (r) memcpy(dst, f->buf + (a - f->base), r * sizeof(float));
    memset(dst + r, 0, (b - a - r) * sizeof(float));
    *real = r;
    return TOLK_OK;
}

tolk_sample_src tolk_file_src_make(tolk_file_src *f) {
    return (tolk_sample_src){.user = f, .fetch = file_fetch};
}

/* ---- live ---------------------------------------------------------------- */

tolk_status tolk_live_init(tolk_live *l) {
    memset(l, 0, sizeof *l);
    return pthread_mutex_init(&l->mu, NULL) == 0 ? TOLK_OK : TOLK_ERR_NOMEM;
}

void tolk_live_destroy(tolk_live *l) {
    free(l->buf);
    pthread_mutex_destroy(&l->mu);
}

tolk_status tolk_live_push(tolk_live *l, tolk_ctx *ctx, const float *x, size_t n) {
    tolk_status st = TOLK_OK;
    pthread_mutex_lock(&l->mu);
    if (l->closed) {
        st = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "live input: samples pushed after the end");
    } else if (n > LIVE_MAX_SAMPLES - l->total) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "live input: more than 2^40 samples");
    } else if (n > 0) {
        if (l->len + n > l->cap) {
            size_t cap = l->cap ? l->cap : 1 << 16;
            while (cap < l->len + n)
                cap *= 2;
            float *b = realloc(l->buf, cap * sizeof(float));
            if (!b) {
                st = tolk_fail(ctx, TOLK_ERR_NOMEM, "live input: out of memory");
                goto out;
            }
            l->buf = b;
            l->cap = cap;
        }
        memcpy(l->buf + l->len, x, n * sizeof(float));
        l->len += n;
        l->total += n;
    }
out:
    pthread_mutex_unlock(&l->mu);
    return st;
}

void tolk_live_close(tolk_live *l) {
    pthread_mutex_lock(&l->mu);
    l->closed = 1;
    pthread_mutex_unlock(&l->mu);
}

void tolk_live_state(tolk_live *l, size_t *total, int *closed) {
    pthread_mutex_lock(&l->mu);
    *total = l->total;
    *closed = l->closed;
    pthread_mutex_unlock(&l->mu);
}

void tolk_live_drop(tolk_live *l, size_t a) {
    pthread_mutex_lock(&l->mu);
    if (a > l->base) {
        size_t d = a - l->base < l->len ? a - l->base : l->len;
        memmove(l->buf, l->buf + d, (l->len - d) * sizeof(float));
        l->len -= d;
        l->base += d;
    }
    pthread_mutex_unlock(&l->mu);
}

static tolk_status live_fetch(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst,
                              size_t *real) {
    tolk_live *l = user;
    tolk_status st = TOLK_OK;
    pthread_mutex_lock(&l->mu);
    if (a < l->base) {
        st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "live input: samples already dropped");
    } else {
        size_t end = l->base + l->len, r = 0;
        if (a < end) r = (b < end ? b : end) - a;
        if (r) memcpy(dst, l->buf + (a - l->base), r * sizeof(float));
        memset(dst + r, 0, (b - a - r) * sizeof(float));
        *real = r;
    }
    pthread_mutex_unlock(&l->mu);
    return st;
}

tolk_sample_src tolk_live_src_make(tolk_live *l) {
    return (tolk_sample_src){.user = l, .fetch = live_fetch};
}

/* ---- the mel front end in pieces ---------------------------------------- */

tolk_status tolk_melpipe_open(tolk_melpipe *mp, tolk_ctx *ctx, tolk_timings *timings,
                              const tolk_mel *mel, float *window, tolk_sample_src src, size_t n) {
    int n_mels = tolk_mel_n_mels(mel);
    *mp = (tolk_melpipe){.timings = timings,
                         .ctx = ctx,
                         .mel = mel,
                         .n_mels = n_mels,
                         .window = window,
                         .src = src,
                         .n = n};
    mp->samples = tolk_malloc_array(PIECE_SAMPLES, sizeof(float));
    mp->raw = tolk_malloc_array((size_t)n_mels * (LEAD_FRAMES + PIECE_FRAMES + 2), sizeof(float));
    if (!mp->samples || !mp->raw) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: out of memory");
    return TOLK_OK;
}

void tolk_melpipe_close(tolk_melpipe *mp) {
    free(mp->samples);
    free(mp->raw);
    mp->samples = mp->raw = NULL;
}

size_t tolk_melpipe_samples_needed(size_t seek, size_t size) {
    return (seek + size) * TOLK_HOP_LENGTH + TOLK_N_FFT / 2;
}

/* Raw log-mel frames [f0, f0 + nf) of the padded input into the piece
 * buffer; *stride its row length, *lead the index of frame f0 in it. */
static tolk_status mel_piece(tolk_melpipe *mp, size_t f0, size_t nf, size_t *stride, size_t *lead,
                             size_t *real) {
    size_t lf = f0 >= LEAD_FRAMES ? LEAD_FRAMES : f0;
    size_t a = (f0 - lf) * TOLK_HOP_LENGTH;
    size_t len = (lf + nf) * TOLK_HOP_LENGTH + TOLK_N_FFT / 2;
    double t0 = tolk_time_now();
    tolk_status s = mp->src.fetch(mp->src.user, mp->ctx, a, a + len, mp->samples, real);
    t0 = tolk_timings_since(mp->timings, TOLK_STAGE_AUDIO, t0);
    if (s != TOLK_OK) return s;
    float dummy = -INFINITY;
    s = tolk_mel_compute_raw(mp->ctx, mp->mel, mp->samples, len, mp->raw, &dummy);
    tolk_timings_since(mp->timings, TOLK_STAGE_MEL, t0);
    if (s != TOLK_OK) return s;
    *stride = tolk_mel_n_frames(len);
    *lead = lf;
    return TOLK_OK;
}

static size_t content_frames_of(size_t n) {
    return tolk_mel_n_frames(n + TOLK_N_SAMPLES) - TOLK_N_FRAMES;
}

tolk_status tolk_melpipe_pass1(tolk_melpipe *mp, int length_known) {
    int n_mels = mp->n_mels;
    /* the 30 s of zero padding give frames of log10(1e-10) = -10 */
    float gmax = -10.0f;
    size_t total = length_known ? mp->n : 0;
    for (size_t f0 = 0;; f0 += PIECE_FRAMES) {
        if (length_known && f0 * TOLK_HOP_LENGTH >= total + TOLK_N_FFT) break;
        size_t stride, lead, real;
        tolk_status s = mel_piece(mp, f0, PIECE_FRAMES, &stride, &lead, &real);
        if (s != TOLK_OK) return s;
        for (int m = 0; m < n_mels; m++) {
            const float *row = mp->raw + (size_t)m * stride + lead;
            for (size_t j = 0; j < PIECE_FRAMES; j++)
                if (row[j] > gmax) gmax = row[j];
        }
        size_t a = (f0 - lead) * TOLK_HOP_LENGTH;
        if (!length_known) {
            total = a + real;
            size_t want = (lead + PIECE_FRAMES) * TOLK_HOP_LENGTH + TOLK_N_FFT / 2;
            if (real < want) length_known = 1;
            if (length_known && (f0 + PIECE_FRAMES) * TOLK_HOP_LENGTH >= total + TOLK_N_FFT) break;
        }
    }
    mp->n = total;
    mp->content_frames = content_frames_of(total);
    mp->gmax = gmax;
    return TOLK_OK;
}

void tolk_melpipe_live(tolk_melpipe *mp) {
    mp->running_max = 1;
    mp->gmax = -10.0f;
    mp->n = 0;
    mp->content_frames = 0;
}

void tolk_melpipe_set_length(tolk_melpipe *mp, size_t n) {
    mp->n = n;
    mp->content_frames = content_frames_of(n);
}

tolk_status tolk_melpipe_window(tolk_melpipe *mp, size_t seek, size_t size) {
    int n_mels = mp->n_mels;
    memset(mp->window, 0, (size_t)n_mels * TOLK_N_FRAMES * sizeof(float));
    if (size == 0) return TOLK_OK;
    size_t stride, lead, real;
    tolk_status s = mel_piece(mp, seek, size, &stride, &lead, &real);
    if (s != TOLK_OK) return s;
    if (mp->running_max)
        for (int m = 0; m < n_mels; m++) {
            const float *row = mp->raw + (size_t)m * stride + lead;
            for (size_t j = 0; j < size; j++)
                if (row[j] > mp->gmax) mp->gmax = row[j];
        }
    for (int m = 0; m < n_mels; m++) {
        float *d = mp->window + (size_t)m * TOLK_N_FRAMES;
        memcpy(d, mp->raw + (size_t)m * stride + lead, size * sizeof(float));
        tolk_mel_normalize(d, size, mp->gmax);
    }
    return TOLK_OK;
}

tolk_status tolk_tr_mel_window(tolk_ctx *ctx, const tolk_mel *mel, const float *x, size_t n,
                               size_t seek, size_t size, float *out, size_t *content_frames) {
    tolk_mem_src m = {.x = x, .n = n};
    tolk_melpipe mp;
    tolk_status s = tolk_melpipe_open(&mp, ctx, NULL, mel, out, tolk_mem_src_make(&m), n);
    if (s == TOLK_OK) s = tolk_melpipe_pass1(&mp, 1);
    if (s == TOLK_OK && content_frames) *content_frames = mp.content_frames;
    if (s == TOLK_OK) s = tolk_melpipe_window(&mp, seek, size);
    tolk_melpipe_close(&mp);
    return s;
}

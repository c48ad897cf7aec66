/*
 * transcribe.c — long-form transcription and translation: openai-whisper's
 * transcribe() loop over 30 s windows with a timestamp-driven seek, and the
 * public tolk_transcribe / tolk_transcribe_file / tolk_detect_language.
 *
 * Reference behaviour (transcribe.py):
 *   - the log-mel of the whole input padded with 30 s of zeros, clamped at
 *     its global max - 8; content_frames = frames of the unpadded input;
 *   - clip_timestamps -> (start, end) frame pairs; per window: seek,
 *     segment_size = min(3000, content_frames - seek, clip_end - seek), the
 *     mel frames [seek, seek + segment_size) zero-padded to 3000;
 *   - prompt = the last n_text_ctx/2 - 1 tokens emitted since the last
 *     prompt reset (initial_prompt first), after <|startofprev|>; the SOT
 *     sequence; <|notimestamps|> without timestamps; the prefix;
 *   - decode with the temperature fallback (decode_window.c); skip the
 *     window when no_speech_prob > threshold unless avg_logprob is above
 *     the logprob threshold;
 *   - consecutive timestamp tokens split segments; a single timestamp at
 *     the end means "nothing after it": seek by the whole window, otherwise
 *     to the last timestamp; without consecutive timestamps one segment up
 *     to the last timestamp (or the window end);
 *   - empty or instantaneous segments are kept with empty text and tokens;
 *   - the prompt is reset when condition_on_previous_text is off or the
 *     window needed a temperature above 0.5;
 *   - word_timestamps: once a window's segments are built (before empty
 *     ones are cleared) words.h adds words and refines their times
 *     (tolk_words_add), then gives the seek and, with
 *     hallucination_silence_threshold, which segments to keep or whether to
 *     drop the window (tolk_words_after).
 * Language identification (when no language is given on a multilingual
 * model) runs on the first window of the loop, zero-padded like the
 * windows that are decoded (as faster-whisper does); its encoder output is
 * reused for decoding.
 * Where faster-whisper differs from openai-whisper, tolk follows
 * openai-whisper: the prefix is applied to every window (faster-whisper:
 * the first only); when every temperature fails, the last result is kept
 * (faster-whisper: the best average log-probability); empty segments are
 * kept with empty text (faster-whisper drops them); a closing timestamp
 * equal to the opening one is forbidden (CTranslate2 allows it). A clip
 * end past the content is clamped to it (as faster-whisper).
 *
 * Memory: the mel is never held whole. Pass 1 computes the global maximum
 * of the raw log-mel piece by piece; pass 2 computes each window's frames
 * from the samples around it (frame-exact: pieces start on a frame
 * boundary two frames early, so every kept frame sees its real context).
 * tolk_transcribe_file streams the file twice through a sliding buffer;
 * only the transcript grows with the input length.
 */
#include "decode.h"
#include "model.h"
#include "net.h"
#include "pystr.h"
#include "result.h"
#include "timings.h"
#include "tokenizer.h"
#include "words.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAMES_PER_SECOND 100
#define INPUT_STRIDE 2 /* mel frames per audio context position */
#define LEAD_FRAMES 2  /* frames of left context in a piece */
#define PIECE_FRAMES TOLK_N_FRAMES
/* samples one piece needs: lead + frames, and 200 samples of right context */
#define PIECE_SAMPLES ((size_t)(LEAD_FRAMES + PIECE_FRAMES) * TOLK_HOP_LENGTH + TOLK_N_FFT / 2)

tolk_transcribe_params tolk_transcribe_default_params(void) {
    tolk_transcribe_params p;
    memset(&p, 0, sizeof p);
    p.task = TOLK_TASK_TRANSCRIBE;
    p.language = NULL;
    static const float temps[6] = {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f};
    for (int i = 0; i < 6; i++)
        p.temperatures[i] = temps[i];
    p.n_temperatures = 6;
    p.beam_size = 0;
    p.best_of = 1;
    p.patience = 1.0f;
    p.length_penalty = -1.0f;
    p.compression_ratio_threshold = 2.4f;
    p.logprob_threshold = -1.0f;
    p.no_speech_threshold = 0.6f;
    p.condition_on_previous_text = 1;
    p.initial_prompt = NULL;
    p.prefix = NULL;
    p.suppress_tokens = "-1";
    p.suppress_blank = 1;
    p.without_timestamps = 0;
    p.max_initial_timestamp = 1.0f;
    p.sample_len = 0;
    p.clip_timestamps = "0";
    p.seed = 0;
    p.word_timestamps = 0;
    p.prepend_punctuations = NULL;
    p.append_punctuations = NULL;
    p.hallucination_silence_threshold = -1.0f;
    return p;
}

/* ---- growable arrays ----------------------------------------------------- */

typedef struct ivec {
    int *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, const int *x, size_t n) {
    if (a->n + n > a->cap || !a->v) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->n + n) {
            if (cap > SIZE_MAX / 4 / sizeof(int)) return 0;
            cap *= 2;
        }
        int *v = realloc(a->v, cap * sizeof(int));
        if (!v) return 0;
        a->v = v;
        a->cap = cap;
    }
    if (n) memcpy(a->v + a->n, x, n * sizeof(int));
    a->n += n;
    return 1;
}

/* ---- sample sources ------------------------------------------------------ */

/* Samples [a, b) of the input, zeros past its end. Calls come with a
 * non-decreasing a. *real: how many of them were input samples. */
typedef struct sample_src {
    void *user;
    tolk_status (*fetch)(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst, size_t *real);
} sample_src;

typedef struct mem_src {
    const float *x;
    size_t n;
} mem_src;

static tolk_status mem_fetch(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst,
                             size_t *real) {
    (void)ctx;
    mem_src *m = user;
    size_t r = 0;
    if (a < m->n) r = (b < m->n ? b : m->n) - a;
    if (r) memcpy(dst, m->x + a, r * sizeof(float));
    memset(dst + r, 0, (b - a - r) * sizeof(float));
    *real = r;
    return TOLK_OK;
}

/* A file read through tolk_audio_read into a sliding buffer. */
typedef struct file_src {
    tolk_audio_reader *rd;
    float *buf;
    size_t cap;
    size_t base; /* input index of buf[0] */
    size_t len;  /* samples held */
    int eof;
} file_src;

static tolk_status file_fetch(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst,
                              size_t *real) {
    file_src *f = user;
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

/* ---- the mel front end in pieces ---------------------------------------- */

typedef struct melpipe {
    tolk_timings *timings; /* may be NULL */
    tolk_ctx *ctx;
    const tolk_mel *mel;
    int n_mels;
    float *window; /* [n_mels, 3000] destination of mel_window */
    sample_src src;
    float *samples; /* [PIECE_SAMPLES] */
    float *raw;     /* [n_mels, LEAD + PIECE_FRAMES + 1] */
    size_t n;       /* input samples */
    size_t content_frames;
    float gmax; /* global max of the raw log-mel of the padded input */
} melpipe;

/* Set up mp over src (n input samples; 0 when unknown until pass 1) with
 * its piece buffers; mel windows go to window [n_mels, 3000]. Returns
 * TOLK_OK or TOLK_ERR_NOMEM; melpipe_close frees either way. */
static tolk_status melpipe_open(melpipe *mp, tolk_ctx *ctx, tolk_timings *timings,
                                const tolk_mel *mel, float *window, sample_src src, size_t n) {
    int n_mels = tolk_mel_n_mels(mel);
    *mp = (melpipe){.timings = timings,
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

static void melpipe_close(melpipe *mp) {
    free(mp->samples);
    free(mp->raw);
    mp->samples = mp->raw = NULL;
}

/* Raw log-mel frames [f0, f0 + nf) of the padded input into the piece
 * buffer; *stride its row length, *lead the index of frame f0 in it. */
static tolk_status mel_piece(melpipe *mp, size_t f0, size_t nf, size_t *stride, size_t *lead,
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

/* Pass 1: the input length (when unknown) and the global maximum. */
static tolk_status mel_pass1(melpipe *mp, int length_known) {
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
    mp->content_frames = tolk_mel_n_frames(total + TOLK_N_SAMPLES) - TOLK_N_FRAMES;
    mp->gmax = gmax;
    return TOLK_OK;
}

/* Pass 2: the state's window = normalised frames [seek, seek + size),
 * zero-padded to 3000 frames. */
static tolk_status mel_window(melpipe *mp, size_t seek, size_t size) {
    int n_mels = mp->n_mels;
    memset(mp->window, 0, (size_t)n_mels * TOLK_N_FRAMES * sizeof(float));
    if (size == 0) return TOLK_OK;
    size_t stride, lead, real;
    tolk_status s = mel_piece(mp, seek, size, &stride, &lead, &real);
    if (s != TOLK_OK) return s;
    for (int m = 0; m < n_mels; m++) {
        float *d = mp->window + (size_t)m * TOLK_N_FRAMES;
        memcpy(d, mp->raw + (size_t)m * stride + lead, size * sizeof(float));
        tolk_mel_normalize(d, size, mp->gmax);
    }
    return TOLK_OK;
}

tolk_status tolk_tr_mel_window(tolk_ctx *ctx, const tolk_mel *mel, const float *x, size_t n,
                               size_t seek, size_t size, float *out, size_t *content_frames) {
    mem_src m = {.x = x, .n = n};
    melpipe mp;
    tolk_status s =
        melpipe_open(&mp, ctx, NULL, mel, out, (sample_src){.user = &m, .fetch = mem_fetch}, n);
    if (s == TOLK_OK) s = mel_pass1(&mp, 1);
    if (s == TOLK_OK && content_frames) *content_frames = mp.content_frames;
    if (s == TOLK_OK) s = mel_window(&mp, seek, size);
    melpipe_close(&mp);
    return s;
}

/* ---- options ------------------------------------------------------------- */

typedef struct run {
    tolk_state *st;
    const tolk_transcribe_params *p;
    tolk_dec_options dopt;
    tolk_dec_fallback fb;
    int *suppress;
    int n_suppress;
    int sot_seq[3];
    int n_sot_seq;
    int lang_token;
    int *prefix;
    size_t n_prefix;
    int *init_prompt;
    size_t n_init_prompt;
    size_t *clips; /* pairs of frames */
    size_t n_clips;
    uint64_t rng;
    tolk_words *words; /* word timestamps, NULL when off */
} run;

static void run_free(run *r) {
    tolk_words_free(r->words);
    free(r->suppress);
    free(r->prefix);
    free(r->init_prompt);
    free(r->clips);
}

static tolk_status encode_text(tolk_state *st, const char *text, const char *what, int **ids,
                               size_t *n) {
    /* " " + text.strip() */
    size_t a = 0, b = strlen(text);
    while (a < b && (text[a] == ' ' || (text[a] >= '\t' && text[a] <= '\r')))
        a++;
    while (b > a && (text[b - 1] == ' ' || (text[b - 1] >= '\t' && text[b - 1] <= '\r')))
        b--;
    char *s = malloc(b - a + 2);
    if (!s) return tolk_fail(st->ctx, TOLK_ERR_NOMEM, "%s: out of memory", what);
    s[0] = ' ';
    memcpy(s + 1, text + a, b - a);
    s[b - a + 1] = '\0';
    tolk_status r = tolk_tokenizer_encode(st->tok, s, b - a + 1, ids, n);
    free(s);
    if (r != TOLK_OK) return tolk_fail(st->ctx, r, "%s: cannot encode the text", what);
    return TOLK_OK;
}

static tolk_status parse_clips(run *r, const char *spec) {
    tolk_ctx *ctx = r->st->ctx;
    size_t cap = 2;
    for (const char *p = spec ? spec : ""; *p; p++)
        if (*p == ',') cap++;
    if (cap > 1000000) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "clip_timestamps: too long");
    double *pts = tolk_malloc_array(cap, sizeof(double));
    if (!pts) return tolk_fail(ctx, TOLK_ERR_NOMEM, "clip_timestamps: out of memory");
    size_t n = 0;
    const char *p = spec ? spec : "";
    while (*p) {
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        while (end && *end == ' ')
            end++;
        if (end == p || errno || !isfinite(v) || v < 0 || v > 1e9 ||
            (*end != ',' && *end != '\0')) {
            free(pts);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "clip_timestamps: '%s' is not a list of seconds", spec);
        }
        pts[n++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    r->clips = tolk_malloc_array(cap + 1, sizeof(size_t));
    if (!r->clips) {
        free(pts);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "clip_timestamps: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        r->clips[i] = (size_t)nearbyint(pts[i] * FRAMES_PER_SECOND);
    free(pts);
    if (n == 0) r->clips[n++] = 0;
    r->n_clips = n; /* an odd count: the last end is the content end, set later */
    return TOLK_OK;
}

static tolk_status setup(run *r, tolk_state *st, const tolk_transcribe_params *p) {
    memset(r, 0, sizeof *r);
    r->st = st;
    r->p = p;
    tolk_ctx *ctx = st->ctx;
    if (p->task != TOLK_TASK_TRANSCRIBE && p->task != TOLK_TASK_TRANSLATE)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: unknown task %d", (int)p->task);
    if (p->n_temperatures < 1 || p->n_temperatures > TOLK_MAX_TEMPERATURES)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: %d temperatures (1..%d)",
                         p->n_temperatures, TOLK_MAX_TEMPERATURES);
    int any_sampling = 0;
    for (int i = 0; i < p->n_temperatures; i++) {
        if (!isfinite(p->temperatures[i]) || p->temperatures[i] < 0.0f)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: bad temperature %g",
                             (double)p->temperatures[i]);
        if (p->temperatures[i] > 0.0f) any_sampling = 1;
    }
    if (p->beam_size < 0 || p->beam_size > 64 || p->best_of < 0 || p->best_of > 64)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "transcribe: beam_size %d / best_of %d "
                         "outside 0..64",
                         p->beam_size, p->best_of);
    if (!(p->patience >= 0.0f) || p->patience > 64.0f)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: bad patience %g",
                         (double)p->patience);
    if (isnan(p->length_penalty) || p->length_penalty > 1.0f)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "transcribe: length_penalty must be in [0, 1] (or < 0 for none)");
    const int n_ctx = st->hp.n_text_ctx;
    if (p->sample_len < 0 || p->sample_len > n_ctx)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: sample_len %d outside 0..%d",
                         p->sample_len, n_ctx);
    if (!(p->max_initial_timestamp >= 0.0f) || p->max_initial_timestamp > 30.0f)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: bad max_initial_timestamp");
    if (isnan(p->compression_ratio_threshold) || isnan(p->no_speech_threshold))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: NaN threshold");
    if (p->word_timestamps) { /* a model without alignment heads fails before any work */
        const int(*heads)[2];
        int n_heads;
        tolk_status hs = tolk_alignment_heads(ctx, st->model->w, st->model->size_name,
                                              st->model->w->path, &heads, &n_heads);
        if (hs != TOLK_OK) return hs;
    }

    /* language and SOT sequence */
    const tolk_dec_tokens *t = &st->dt;
    r->lang_token = -1;
    if (!st->multilingual) {
        r->lang_token = -1; /* English-only: [sot] */
    } else if (p->language && *p->language) {
        r->lang_token = tolk_tokenizer_lang_token(st->tok, p->language);
        if (r->lang_token < 0)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: unknown language '%s'",
                             p->language);
    }
    int n_beams = p->beam_size >= 2 ? p->beam_size : 1;
    int n_samples = any_sampling && p->best_of > 1 ? p->best_of : 1;
    tolk_status s = tolk_state_reserve(st, n_beams > n_samples ? n_beams : n_samples);
    if (s != TOLK_OK) return s;

    s = tolk_dec_resolve_suppress(ctx, p->suppress_tokens, t, st->non_speech, st->n_non_speech,
                                  &r->suppress, &r->n_suppress);
    if (s != TOLK_OK) return s;
    r->dopt.sample_len = p->sample_len > 0 ? p->sample_len : n_ctx / 2;
    r->dopt.n_ctx = n_ctx;
    r->dopt.beam_size = p->beam_size >= 2 ? p->beam_size : 0;
    r->dopt.best_of = p->best_of > 1 ? p->best_of : 1;
    r->dopt.patience = p->patience > 0.0f ? p->patience : 1.0f;
    r->dopt.length_penalty = p->length_penalty < 0.0f ? -1.0f : p->length_penalty;
    r->dopt.suppress_blank = p->suppress_blank != 0;
    r->dopt.suppress = r->suppress;
    r->dopt.n_suppress = r->n_suppress;
    r->dopt.timestamps = !p->without_timestamps;
    double precision = (double)TOLK_CHUNK_SECONDS / (double)st->hp.n_audio_ctx;
    r->dopt.max_initial_timestamp_index =
        p->max_initial_timestamp > 0.0f
            ? (int)nearbyint((double)p->max_initial_timestamp / precision)
            : -1;
    r->rng = tolk_rng_seed(p->seed);
    r->dopt.rng = &r->rng;
    r->fb.temperatures = p->temperatures;
    r->fb.n_temperatures = p->n_temperatures;
    r->fb.compression_ratio_threshold = p->compression_ratio_threshold;
    r->fb.logprob_threshold = p->logprob_threshold;
    r->fb.no_speech_threshold = p->no_speech_threshold;

    if (p->initial_prompt) {
        s = encode_text(st, p->initial_prompt, "initial_prompt", &r->init_prompt,
                        &r->n_init_prompt);
        if (s != TOLK_OK) return s;
    }
    if (p->prefix && *p->prefix) {
        s = encode_text(st, p->prefix, "prefix", &r->prefix, &r->n_prefix);
        if (s != TOLK_OK) return s;
        /* prefix_tokens[-(n_ctx // 2 - sample_len):], Python slice semantics */
        long m = (long)(n_ctx / 2) - (long)r->dopt.sample_len;
        size_t keep = r->n_prefix;
        if (m > 0 && (size_t)m < r->n_prefix) keep = (size_t)m;
        if (m < 0) keep = (size_t)(-m) < r->n_prefix ? r->n_prefix - (size_t)(-m) : 0;
        memmove(r->prefix, r->prefix + (r->n_prefix - keep), keep * sizeof(int));
        r->n_prefix = keep;
        if (r->n_prefix + 8 >= (size_t)n_ctx / 2)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "prefix: %zu tokens is too long",
                             r->n_prefix);
    }
    return parse_clips(r, p->clip_timestamps);
}

static void set_sot_sequence(run *r) {
    const tolk_dec_tokens *t = &r->st->dt;
    r->n_sot_seq = 0;
    r->sot_seq[r->n_sot_seq++] = t->sot;
    if (r->st->multilingual) {
        r->sot_seq[r->n_sot_seq++] = r->lang_token;
        r->sot_seq[r->n_sot_seq++] =
            r->p->task == TOLK_TASK_TRANSLATE ? t->translate : t->transcribe;
    }
}

/* ---- results ------------------------------------------------------------- */

/* The segments of one window, before they are final (word timestamps
 * may still change their times or drop some). */
typedef struct wsegs {
    tolk_seg_rec *v;
    int n, cap;
} wsegs;

static void wsegs_clear(wsegs *w) {
    for (int i = 0; i < w->n; i++)
        tolk_seg_rec_clear(&w->v[i]);
    w->n = 0;
}

/* Add the window's segment tokens[0, n) (text decoded, nothing cleared
 * yet). */
static tolk_status window_segment(run *r, wsegs *w, int seek, double start, double end,
                                  const int *tokens, size_t n, const tolk_dec_result *dr) {
    tolk_state *st = r->st;
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        tolk_seg_rec *v = realloc(w->v, (size_t)cap * sizeof *v);
        if (!v) return tolk_fail(st->ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        w->v = v;
        w->cap = cap;
    }
    tolk_segment f;
    memset(&f, 0, sizeof f);
    f.seek = seek;
    f.start = start;
    f.end = end;
    f.temperature = dr->temperature;
    f.avg_logprob = dr->avg_logprob;
    f.compression_ratio = dr->compression_ratio;
    f.no_speech_prob = dr->no_speech_prob;
    char *text = NULL;
    tolk_status s =
        tolk_tokenizer_decode_ex(st->tok, tokens, n, TOLK_DECODE_TEXT_ONLY, &text, NULL);
    if (s != TOLK_OK) return tolk_fail(st->ctx, s, "transcribe: cannot decode a segment");
    int ok = tolk_seg_rec_init(&w->v[w->n], &f, text, tokens, (int)n);
    free(text);
    if (!ok) return tolk_fail(st->ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
    w->n++;
    return TOLK_OK;
}

/* Make the first n_keep segments of the window final: an instantaneous or
 * blank one loses its text, tokens and words (as the reference clears
 * them); each gets its id, joins the result and the prompt tokens, and is
 * delivered to on_segment. The window's list is emptied. */
static tolk_status commit_window(run *r, tolk_result *res, ivec *all, wsegs *w, int n_keep) {
    tolk_state *st = r->st;
    tolk_status s = TOLK_OK;
    for (int i = 0; i < n_keep && i < w->n && s == TOLK_OK; i++) {
        tolk_seg_rec *rec = &w->v[i];
        size_t a, b, len = strlen(rec->text);
        tolk_py_strip(rec->text, len, &a, &b);
        if (rec->pub.start == rec->pub.end || a == b) {
            rec->text[0] = '\0';
            rec->pub.n_tokens = 0;
            tolk_seg_rec_set_words(rec, NULL, 0);
        }
        rec->pub.id = res->n_segs;
        if (!ivec_push(all, rec->tokens, (size_t)rec->pub.n_tokens)) {
            s = tolk_fail(st->ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
            break;
        }
        tolk_seg_rec *d = tolk_result_push(res, rec);
        if (!d) {
            s = tolk_fail(st->ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
            break;
        }
        if (r->p->on_segment) r->p->on_segment(r->p->user, &d->pub);
    }
    wsegs_clear(w);
    return s;
}

/* ---- the seek loop ------------------------------------------------------- */

static tolk_status run_loop(run *r, melpipe *mp, tolk_result *res) {
    tolk_state *st = r->st;
    tolk_ctx *ctx = st->ctx;
    const tolk_transcribe_params *p = r->p;
    const tolk_dec_tokens *t = &st->dt;
    const int tb = t->timestamp_begin;
    const size_t content = mp->content_frames;
    const double time_precision = (double)(INPUT_STRIDE * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    tolk_status s = TOLK_OK;
    ivec all = {0};
    wsegs ws = {0};
    int *initial = NULL;
    tolk_dec_result dr;
    memset(&dr, 0, sizeof dr);

    if (r->n_clips % 2 == 1) r->clips[r->n_clips++] = content;
    size_t n_pairs = r->n_clips / 2;
    if (!ivec_push(&all, r->init_prompt, r->n_init_prompt)) {
        s = tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        goto out;
    }
    size_t prompt_reset_since = 0;
    const size_t max_prompt = (size_t)(st->hp.n_text_ctx / 2 - 1);
    initial = tolk_malloc_array((size_t)st->hp.n_text_ctx + 8, sizeof(int));
    if (!initial) {
        s = tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        goto out;
    }
    tolk_dec_backend be = tolk_state_backend(st);

    /* language identification on the first window */
    size_t seek = r->clips[0];
    size_t encoded_seek = (size_t)-1, encoded_size = 0;
    res->language_prob = 1.0f;
    if (st->multilingual && r->lang_token < 0) {
        size_t s0 = seek < content ? seek : 0;
        size_t clip_end = r->clips[1] < content ? r->clips[1] : content;
        size_t size = TOLK_N_FRAMES;
        if (content - s0 < size) size = content - s0;
        if (s0 < clip_end && clip_end - s0 < size) size = clip_end - s0;
        s = mel_window(mp, s0, size);
        if (s == TOLK_OK) s = tolk_state_encode_window(st);
        if (s != TOLK_OK) goto out;
        encoded_seek = s0;
        encoded_size = size;
        float probs[100];
        int best = 0;
        s = tolk_dec_detect_language(ctx, &be, t, probs, &best);
        if (s != TOLK_OK) goto out;
        r->lang_token = t->lang_ids[best];
        res->language_prob = probs[best];
    }
    const char *code = st->multilingual ? tolk_tokenizer_lang_code(st->tok, r->lang_token) : "en";
    tolk_result_set_language(res, code ? code : "en");
    set_sot_sequence(r);
    if (p->word_timestamps) {
        s = tolk_words_new(st, p, res->language, &r->words);
        if (s != TOLK_OK) goto out;
        res->has_words = 1;
    }

    size_t clip_idx = 0;
    while (clip_idx < n_pairs) {
        size_t clip_start = r->clips[2 * clip_idx], clip_end = r->clips[2 * clip_idx + 1];
        if (seek < clip_start) seek = clip_start;
        if (seek >= clip_end || seek >= content) {
            /* the reference's segment_size would be <= 0 past the content: done with it */
            clip_idx++;
            if (clip_idx < n_pairs) seek = r->clips[2 * clip_idx];
            continue;
        }
        double time_offset = (double)(seek * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
        size_t segment_size = TOLK_N_FRAMES;
        if (content - seek < segment_size) segment_size = content - seek;
        if (clip_end - seek < segment_size) segment_size = clip_end - seek;
        double segment_duration = (double)(segment_size * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
        if (seek != encoded_seek || segment_size != encoded_size) {
            s = mel_window(mp, seek, segment_size);
            if (s == TOLK_OK) s = tolk_state_encode_window(st);
            if (s != TOLK_OK) goto out;
        }
        encoded_seek = (size_t)-1;

        /* initial tokens: [sot_prev, prompt...], sot sequence, [notimestamps], prefix */
        int n_init = 0;
        size_t n_prompt = all.n - prompt_reset_since;
        if (n_prompt > max_prompt) n_prompt = max_prompt;
        if (n_prompt > 0) {
            initial[n_init++] = t->sot_prev;
            memcpy(initial + n_init, all.v + all.n - n_prompt, n_prompt * sizeof(int));
            n_init += (int)n_prompt;
        }
        int sot_index = n_init;
        for (int i = 0; i < r->n_sot_seq; i++)
            initial[n_init++] = r->sot_seq[i];
        if (p->without_timestamps) initial[n_init++] = t->no_timestamps;
        if (r->n_prefix) memcpy(initial + n_init, r->prefix, r->n_prefix * sizeof(int));
        n_init += (int)r->n_prefix;

        tolk_dec_result_clear(&dr);
        double t0 = tolk_time_now(), dec0 = st->timings.decoder_s;
        s = tolk_dec_decode_fallback(ctx, &be, t, initial, n_init, sot_index, &r->dopt, &r->fb,
                                     tolk_state_text, st, &dr);
        tolk_timings_add_search(&st->timings, t0, dec0);
        if (s != TOLK_OK) goto out;
        tolk_timings_count(&st->timings, 1, 0, 0);

        size_t previous_seek = seek;
        int skip = 0;
        if (p->no_speech_threshold > 0.0f) {
            skip = dr.no_speech_prob > p->no_speech_threshold;
            if (r->fb.logprob_threshold > -INFINITY && dr.avg_logprob > r->fb.logprob_threshold)
                skip = 0;
        }
        if (skip) {
            seek += segment_size;
        } else {
            tolk_timings_count(&st->timings, 0, dr.n_tokens, 0);
            const int *tk = dr.tokens;
            size_t n = (size_t)dr.n_tokens;
            int single_ending = n >= 2 && tk[n - 2] < tb && tk[n - 1] >= tb;
            int has_consecutive = 0;
            for (size_t i = 1; i < n; i++)
                if (tk[i - 1] >= tb && tk[i] >= tb) has_consecutive = 1;
            if (has_consecutive) {
                size_t last_slice = 0;
                for (size_t i = 1; i <= n; i++) {
                    int cut =
                        (i < n && tk[i - 1] >= tb && tk[i] >= tb) || (i == n && single_ending);
                    if (!cut) continue;
                    double a = time_offset + (double)(tk[last_slice] - tb) * time_precision;
                    double b = time_offset + (double)(tk[i - 1] - tb) * time_precision;
                    s = window_segment(r, &ws, (int)previous_seek, a, b, tk + last_slice,
                                       i - last_slice, &dr);
                    if (s != TOLK_OK) goto out;
                    last_slice = i;
                }
                if (single_ending)
                    seek += segment_size;
                else
                    seek += (size_t)(tk[last_slice - 1] - tb) * INPUT_STRIDE;
            } else {
                double duration = segment_duration;
                int last_ts = -1;
                for (size_t i = 0; i < n; i++)
                    if (tk[i] >= tb) last_ts = tk[i];
                if (last_ts >= 0 && last_ts != tb)
                    duration = (double)(last_ts - tb) * time_precision;
                s = window_segment(r, &ws, (int)previous_seek, time_offset, time_offset + duration,
                                   tk, n, &dr);
                if (s != TOLK_OK) goto out;
                seek += segment_size;
            }
            int n_keep = ws.n, skip_window = 0;
            if (r->words) {
                /* word timestamps: words and refined times, then the seek
                 * (and hallucination rules) they imply (words.h) */
                s = tolk_words_add(r->words, 0, r->sot_seq, r->n_sot_seq, previous_seek,
                                   segment_size, ws.v, ws.n);
                if (s != TOLK_OK) goto out;
                const tolk_words_window win = {previous_seek, segment_size, content, single_ending,
                                               seek};
                tolk_words_decision dec;
                tolk_words_after(r->words, ws.v, ws.n, &win, &dec);
                seek = dec.seek;
                n_keep = dec.n_keep;
                skip_window = dec.skip_window;
            }
            if (skip_window) {
                wsegs_clear(&ws);
            } else {
                s = commit_window(r, res, &all, &ws, n_keep);
                if (s != TOLK_OK) goto out;
                if (!p->condition_on_previous_text || dr.temperature > 0.5f)
                    prompt_reset_since = all.n;
            }
            /* the timestamp rules guarantee progress; never loop on a bad model */
            if (seek <= previous_seek) seek = previous_seek + segment_size;
        }
        if (p->progress) {
            double pos = (double)(seek < content ? seek : content) / FRAMES_PER_SECOND;
            if (p->progress(p->user, pos, (double)content / FRAMES_PER_SECOND)) {
                s = tolk_fail(ctx, TOLK_ERR_CANCELLED, "transcribe: cancelled by the caller");
                goto out;
            }
        }
    }

    /* the full text: every emitted token after the initial prompt */
    char *text = NULL;
    s = tolk_tokenizer_decode_ex(st->tok, all.v + r->n_init_prompt, all.n - r->n_init_prompt,
                                 TOLK_DECODE_DEFAULT, &text, NULL);
    if (s != TOLK_OK) {
        s = tolk_fail(ctx, s, "transcribe: cannot decode the text");
        goto out;
    }
    tolk_result_take_text(res, text);
out:
    wsegs_clear(&ws);
    free(ws.v);
    free(all.v);
    free(initial);
    tolk_dec_result_clear(&dr);
    return s;
}

/* ---- public entry points ------------------------------------------------- */

static tolk_status transcribe_src(tolk_state *st, sample_src src, size_t n, int length_known,
                                  const tolk_transcribe_params *params, tolk_result **out) {
    tolk_ctx *ctx = st->ctx;
    tolk_transcribe_params defaults = tolk_transcribe_default_params();
    const tolk_transcribe_params *p = params ? params : &defaults;
    run r;
    tolk_status s = setup(&r, st, p);
    melpipe mp;
    tolk_status ms = melpipe_open(&mp, ctx, &st->timings, st->mel, st->window, src, n);
    tolk_result *res = NULL;
    if (s != TOLK_OK) goto out;
    if ((s = ms) != TOLK_OK) goto out;
    res = tolk_result_new();
    if (!res) {
        s = tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        goto out;
    }
    s = mel_pass1(&mp, length_known);
    if (s != TOLK_OK) goto out;
    if (mp.n == 0) {
        s = tolk_fail(ctx, TOLK_ERR_EMPTY, "transcribe: the input holds no samples");
        goto out;
    }
    res->duration = (double)mp.n / TOLK_SAMPLE_RATE;
    s = run_loop(&r, &mp, res);
out:
    run_free(&r);
    melpipe_close(&mp);
    if (s != TOLK_OK) {
        tolk_result_free(res);
        res = NULL;
    }
    *out = res;
    return s;
}

tolk_status tolk_transcribe(tolk_state *state, const float *samples, size_t n_samples,
                            const tolk_transcribe_params *params, tolk_result **out) {
    if (!out)
        return state ? tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "NULL out")
                     : TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_clear_error(state->ctx);
    if (!samples && n_samples)
        return tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "tolk_transcribe: NULL samples");
    if (n_samples == 0) return tolk_fail(state->ctx, TOLK_ERR_EMPTY, "tolk_transcribe: no samples");
    if (n_samples > (size_t)1 << 40)
        return tolk_fail(state->ctx, TOLK_ERR_NOMEM, "tolk_transcribe: absurd input length");
    mem_src m = {.x = samples, .n = n_samples};
    sample_src src = {.user = &m, .fetch = mem_fetch};
    return transcribe_src(state, src, n_samples, 1, params, out);
}

tolk_status tolk_transcribe_file(tolk_state *state, const char *path,
                                 const tolk_transcribe_params *params, tolk_result **out) {
    if (!out)
        return state ? tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "NULL out")
                     : TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_clear_error(state->ctx);
    if (!path)
        return tolk_fail(state->ctx, TOLK_ERR_INVALID_ARG, "tolk_transcribe_file: NULL path");
    if (strcmp(path, "-") == 0) {
        /* standard input cannot be read twice: decode it whole */
        float *x = NULL;
        size_t n = 0;
        double t0 = tolk_time_now();
        tolk_status s = tolk_audio_load(state->ctx, path, &x, &n);
        tolk_timings_since(&state->timings, TOLK_STAGE_AUDIO, t0);
        if (s != TOLK_OK) return s;
        s = tolk_transcribe(state, x, n, params, out);
        tolk_free(x);
        return s;
    }
    /* pass 1: length and global max; pass 2: windows (a second reader) */
    file_src f = {0};
    f.cap = PIECE_SAMPLES + 65536;
    f.buf = tolk_malloc_array(f.cap, sizeof(float));
    if (!f.buf) return tolk_fail(state->ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    tolk_status s = tolk_audio_open(state->ctx, path, &f.rd);
    if (s != TOLK_OK) {
        free(f.buf);
        return s;
    }
    tolk_transcribe_params defaults = tolk_transcribe_default_params();
    const tolk_transcribe_params *p = params ? params : &defaults;
    run r;
    melpipe mp;
    tolk_status ms = melpipe_open(&mp, state->ctx, &state->timings, state->mel, state->window,
                                  (sample_src){.user = &f, .fetch = file_fetch}, 0);
    tolk_result *res = NULL;
    s = setup(&r, state, p);
    if (s != TOLK_OK) goto out;
    if ((s = ms) != TOLK_OK) goto out;
    res = tolk_result_new();
    if (!res) {
        s = tolk_fail(state->ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        goto out;
    }
    s = mel_pass1(&mp, 0);
    if (s != TOLK_OK) goto out;
    if (mp.n == 0) {
        s = tolk_fail(state->ctx, TOLK_ERR_EMPTY, "%s: no audio samples", path);
        goto out;
    }
    tolk_audio_close(f.rd);
    f.rd = NULL;
    f.base = f.len = 0;
    f.eof = 0;
    s = tolk_audio_open(state->ctx, path, &f.rd);
    if (s != TOLK_OK) goto out;
    res->duration = (double)mp.n / TOLK_SAMPLE_RATE;
    s = run_loop(&r, &mp, res);
out:
    run_free(&r);
    melpipe_close(&mp);
    if (f.rd) tolk_audio_close(f.rd);
    free(f.buf);
    if (s != TOLK_OK) {
        tolk_result_free(res);
        res = NULL;
    }
    *out = res;
    return s;
}

tolk_status tolk_detect_language(tolk_state *state, const float *samples, size_t n_samples,
                                 const char **codes, float *probs, int *n) {
    if (!state) return TOLK_ERR_INVALID_ARG;
    tolk_ctx *ctx = state->ctx;
    tolk_clear_error(ctx);
    if (!samples || !codes || !probs || !n)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_detect_language: NULL argument");
    *n = 0;
    if (n_samples == 0) return tolk_fail(ctx, TOLK_ERR_EMPTY, "tolk_detect_language: no samples");
    if (!state->multilingual)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "tolk_detect_language: the model is English-only");
    size_t use = n_samples < TOLK_N_SAMPLES ? n_samples : TOLK_N_SAMPLES;
    mem_src m = {.x = samples, .n = use};
    melpipe mp;
    tolk_status s = melpipe_open(&mp, ctx, &state->timings, state->mel, state->window,
                                 (sample_src){.user = &m, .fetch = mem_fetch}, use);
    if (s == TOLK_OK) s = mel_pass1(&mp, 1);
    if (s == TOLK_OK) {
        size_t size = mp.content_frames < TOLK_N_FRAMES ? mp.content_frames : TOLK_N_FRAMES;
        s = mel_window(&mp, 0, size);
    }
    if (s == TOLK_OK) s = tolk_state_encode_window(state);
    float p[100];
    int best = 0;
    tolk_dec_backend be = tolk_state_backend(state);
    if (s == TOLK_OK) s = tolk_dec_detect_language(ctx, &be, &state->dt, p, &best);
    melpipe_close(&mp);
    if (s != TOLK_OK) return s;
    int nl = state->dt.n_languages;
    int order[100];
    for (int i = 0; i < nl; i++)
        order[i] = i;
    for (int i = 1; i < nl; i++) { /* stable insertion sort, descending */
        int v = order[i], j = i;
        while (j > 0 && p[order[j - 1]] < p[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    for (int i = 0; i < nl; i++) {
        codes[i] = tolk_tokenizer_lang_code(state->tok, state->dt.lang_ids[order[i]]);
        probs[i] = p[order[i]];
    }
    *n = nl;
    return TOLK_OK;
}

/*
 * longform.c — long-form transcription and translation of one request:
 * openai-whisper's transcribe() loop over 30 s windows with a
 * timestamp-driven seek, as a resumable state machine (longform.h).
 *
 * Reference behaviour (transcribe.py):
 *   - the log-mel of the whole input padded with 30 s of zeros, clamped at
 *     its global max - 8; content_frames = frames of the unpadded input
 *     (melwin.c);
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
 *     ones are cleared), the alignment pass of words.h is asked for
 *     (TOLK_LF_ALIGN, tolk_words_begin), then words are added and segment
 *     times refined (tolk_words_end), and tolk_words_after gives the seek
 *     and, with hallucination_silence_threshold, which segments to keep or
 *     whether to drop the window (then the prompt is not reset).
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
 * A live input (melwin.h) is decoded a window at a time as soon as 30 s
 * past the seek position have arrived, or the input has ended.
 */
#include "longform.h"

#include "pystr.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_STRIDE 2 /* mel frames per audio context position */
#define OPEN_END ((size_t)-1)

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

/* The segments of one window, before they are final (word timestamps may
 * still change their times or drop some). */
typedef struct wsegs {
    tolk_seg_rec *v;
    int n, cap;
} wsegs;

static void wsegs_clear(wsegs *w) {
    for (int i = 0; i < w->n; i++)
        tolk_seg_rec_clear(&w->v[i]);
    w->n = 0;
}

/* ---- the machine --------------------------------------------------------- */

enum {
    S_INIT = 0,   /* pass 1 over the input (or waiting for live audio) */
    S_LANG = 1,   /* language identification: encode the first window, then one step */
    S_WINDOW = 2, /* the top of the seek loop */
    S_DECODE = 3, /* a window decode (with fallback) in progress */
    S_FINAL = 4,  /* the full text */
    S_DONE = 5,
    S_ALIGN = 6 /* word timestamps: the window's alignment pass is asked */
};

/* Sub-steps of S_LANG. */
enum { LANG_ENCODE = 0, LANG_STEP = 1, LANG_FED = 2 };

struct tolk_lf {
    tolk_lf_env env;
    tolk_transcribe_params p; /* strings cleared: copied below where needed */
    tolk_dec_options dopt;
    tolk_dec_fallback fb;
    float temperatures[TOLK_MAX_TEMPERATURES];
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
    int max_seqs;

    /* input and mel */
    tolk_lf_input_kind kind;
    tolk_mem_src mem;
    tolk_file_src file;
    tolk_live *live;
    int live_ended; /* the live input was closed and its length set */
    int file_open;
    tolk_melpipe mp;
    int mp_open;
    float *window; /* [n_mels, 3000] */

    /* loop state */
    int state, lang_sub;
    size_t seek, clip_idx, n_pairs;
    size_t encoded_seek, encoded_size;
    size_t segment_size;
    double time_offset, segment_duration;
    size_t prompt_reset_since, max_prompt;
    wsegs ws; /* the decoded window's segments, not yet final */
    ivec all;
    /* word timestamps (NULL when off) and the window being aligned */
    tolk_words *words;
    tolk_words_align align;
    size_t previous_seek;
    int single_ending;
    int *initial;
    tolk_dec_window *win;
    tolk_dec_result dr;
    float *lang_logits; /* [n_vocab] */
    float lang_probs[100];
    int n_lang_probs;
    int detect_only;
    int one_window, audio_ctx; /* a stream update (longform.h) */
    tolk_dec_result wres;      /* its decode, kept */
    int wres_skip, have_wres;
    int seq0, one;
    const int *sot_ptr;
    tolk_result *res;
    tolk_status err;
};

static tolk_status fail(tolk_lf *lf, tolk_status st) {
    if (st != TOLK_OK && lf->err == TOLK_OK) lf->err = st;
    return st;
}

void tolk_lf_free(tolk_lf *lf) {
    if (!lf) return;
    free(lf->suppress);
    free(lf->prefix);
    free(lf->init_prompt);
    free(lf->clips);
    if (lf->mp_open) tolk_melpipe_close(&lf->mp);
    if (lf->file_open) tolk_file_src_close(&lf->file);
    free(lf->window);
    wsegs_clear(&lf->ws);
    free(lf->ws.v);
    tolk_words_free(lf->words);
    free(lf->all.v);
    free(lf->initial);
    tolk_dec_window_free(lf->win);
    tolk_dec_result_clear(&lf->dr);
    tolk_dec_result_clear(&lf->wres);
    free(lf->lang_logits);
    tolk_result_free(lf->res);
    free(lf);
}

int tolk_lf_max_seqs(const tolk_lf *lf) {
    return lf->max_seqs;
}

int tolk_lf_n_segments(const tolk_lf *lf) {
    return lf->res ? lf->res->n_segs : 0;
}

const tolk_seg_rec *tolk_lf_segment(const tolk_lf *lf, int i) {
    return lf->res && i >= 0 && i < lf->res->n_segs ? &lf->res->segs[i] : NULL;
}

/* ---- options ------------------------------------------------------------- */

static tolk_status encode_text(tolk_lf *lf, const char *text, const char *what, int **ids,
                               size_t *n) {
    tolk_ctx *ctx = lf->env.ctx;
    /* " " + text.strip() */
    size_t a = 0, b = strlen(text);
    while (a < b && (text[a] == ' ' || (text[a] >= '\t' && text[a] <= '\r')))
        a++;
    while (b > a && (text[b - 1] == ' ' || (text[b - 1] >= '\t' && text[b - 1] <= '\r')))
        b--;
    char *s = malloc(b - a + 2);
    if (!s) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", what);
    s[0] = ' ';
    memcpy(s + 1, text + a, b - a);
    s[b - a + 1] = '\0';
    tolk_status r = tolk_tokenizer_encode(lf->env.asr->tok, s, b - a + 1, ids, n);
    free(s);
    if (r != TOLK_OK) return tolk_fail(ctx, r, "%s: cannot encode the text", what);
    return TOLK_OK;
}

static tolk_status parse_clips(tolk_lf *lf, const char *spec) {
    tolk_ctx *ctx = lf->env.ctx;
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
        const char *why = end == p || (*end != ',' && *end != '\0') ? "is not a list of seconds"
                          : errno || !(v >= 0 && v <= 1e9) ? "holds a value outside [0, 1e9] s"
                          : n % 2 == 1 && !(v > pts[n - 1])
                              ? "holds a clip that does not end after it starts"
                              : NULL;
        if (why) {
            free(pts);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "clip_timestamps: '%s' %s", spec, why);
        }
        pts[n++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    lf->clips = tolk_malloc_array(cap + 1, sizeof(size_t));
    if (!lf->clips) {
        free(pts);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "clip_timestamps: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        lf->clips[i] = (size_t)nearbyint(pts[i] * TOLK_FRAMES_PER_SECOND);
    free(pts);
    if (n == 0) lf->clips[n++] = 0;
    lf->n_clips = n; /* an odd count: the last end is the content end, set later */
    return TOLK_OK;
}

static tolk_status setup(tolk_lf *lf, const tolk_transcribe_params *p) {
    tolk_ctx *ctx = lf->env.ctx;
    const tolk_asr *asr = lf->env.asr;
    if (p->task != TOLK_TASK_TRANSCRIBE && p->task != TOLK_TASK_TRANSLATE)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: unknown task %d", (int)p->task);
    if (p->n_temperatures < 1 || p->n_temperatures > TOLK_MAX_TEMPERATURES)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: %d temperatures (1..%d)",
                         p->n_temperatures, TOLK_MAX_TEMPERATURES);
    for (int i = 0; i < p->n_temperatures; i++)
        if (!isfinite(p->temperatures[i]) || p->temperatures[i] < 0.0f)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: bad temperature %g",
                             (double)p->temperatures[i]);
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
    const int n_ctx = asr->hp.n_text_ctx;
    if (p->sample_len < 0 || p->sample_len > n_ctx)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: sample_len %d outside 0..%d",
                         p->sample_len, n_ctx);
    if (!(p->max_initial_timestamp >= 0.0f) || p->max_initial_timestamp > 30.0f)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: bad max_initial_timestamp");
    if (isnan(p->compression_ratio_threshold) || isnan(p->no_speech_threshold))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: NaN threshold");

    /* language and SOT sequence */
    const tolk_dec_tokens *t = &asr->dt;
    lf->lang_token = -1;
    if (asr->multilingual && p->language && *p->language) {
        lf->lang_token = tolk_tokenizer_lang_token(asr->tok, p->language);
        if (lf->lang_token < 0)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: unknown language '%s'",
                             p->language);
    }
    tolk_status s = tolk_dec_resolve_suppress(ctx, p->suppress_tokens, t, asr->non_speech,
                                              asr->n_non_speech, &lf->suppress, &lf->n_suppress);
    if (s != TOLK_OK) return s;
    lf->dopt.sample_len = p->sample_len > 0 ? p->sample_len : n_ctx / 2;
    lf->dopt.n_ctx = n_ctx;
    lf->dopt.beam_size = p->beam_size >= 2 ? p->beam_size : 0;
    lf->dopt.best_of = p->best_of > 1 ? p->best_of : 1;
    lf->dopt.patience = p->patience > 0.0f ? p->patience : 1.0f;
    lf->dopt.length_penalty = p->length_penalty < 0.0f ? -1.0f : p->length_penalty;
    lf->dopt.suppress_blank = p->suppress_blank != 0;
    lf->dopt.suppress = lf->suppress;
    lf->dopt.n_suppress = lf->n_suppress;
    lf->dopt.timestamps = !p->without_timestamps;
    double precision = (double)TOLK_CHUNK_SECONDS / (double)asr->hp.n_audio_ctx;
    lf->dopt.max_initial_timestamp_index =
        p->max_initial_timestamp > 0.0f
            ? (int)nearbyint((double)p->max_initial_timestamp / precision)
            : -1;
    lf->rng = tolk_rng_seed(p->seed);
    lf->dopt.rng = &lf->rng;
    memcpy(lf->temperatures, p->temperatures, sizeof lf->temperatures);
    lf->fb.temperatures = lf->temperatures;
    lf->fb.n_temperatures = p->n_temperatures;
    lf->fb.compression_ratio_threshold = p->compression_ratio_threshold;
    lf->fb.logprob_threshold = p->logprob_threshold;
    lf->fb.no_speech_threshold = p->no_speech_threshold;
    lf->max_seqs = tolk_dec_window_max_group(&lf->dopt, &lf->fb);

    if (p->initial_prompt) {
        s = encode_text(lf, p->initial_prompt, "initial_prompt", &lf->init_prompt,
                        &lf->n_init_prompt);
        if (s != TOLK_OK) return s;
    }
    if (p->prefix && *p->prefix) {
        s = encode_text(lf, p->prefix, "prefix", &lf->prefix, &lf->n_prefix);
        if (s != TOLK_OK) return s;
        /* prefix_tokens[-(n_ctx // 2 - sample_len):], Python slice semantics */
        long m = (long)(n_ctx / 2) - (long)lf->dopt.sample_len;
        size_t keep = lf->n_prefix;
        if (m > 0 && (size_t)m < lf->n_prefix) keep = (size_t)m;
        if (m < 0) keep = (size_t)(-m) < lf->n_prefix ? lf->n_prefix - (size_t)(-m) : 0;
        memmove(lf->prefix, lf->prefix + (lf->n_prefix - keep), keep * sizeof(int));
        lf->n_prefix = keep;
        if (lf->n_prefix + 8 >= (size_t)n_ctx / 2)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "prefix: %zu tokens is too long",
                             lf->n_prefix);
    }
    return parse_clips(lf, p->clip_timestamps);
}

/* A stream update's options (tolk_lf_input.one_window): the encoder
 * positions, and the prompt / prefix as tokens, validated and copied over
 * the text options. */
static tolk_status setup_window(tolk_lf *lf, const tolk_lf_input *in) {
    tolk_ctx *ctx = lf->env.ctx;
    const tolk_hparams *hp = &lf->env.asr->hp;
    const int nv = hp->n_vocab;
    if (in->audio_ctx < 0 || in->audio_ctx > hp->n_audio_ctx)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: audio context %d outside 0..%d",
                         in->audio_ctx, hp->n_audio_ctx);
    if ((size_t)in->n_prompt_tokens > (size_t)hp->n_text_ctx ||
        (size_t)in->n_prefix_tokens + 8 >= (size_t)hp->n_text_ctx / 2)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "transcribe: %zu prompt / %zu prefix tokens is too long",
                         in->n_prompt_tokens, in->n_prefix_tokens);
    for (size_t i = 0; i < in->n_prompt_tokens; i++)
        if (!in->prompt_tokens || in->prompt_tokens[i] < 0 || in->prompt_tokens[i] >= nv)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: prompt token %zu invalid", i);
    for (size_t i = 0; i < in->n_prefix_tokens; i++)
        if (!in->prefix_tokens || in->prefix_tokens[i] < 0 || in->prefix_tokens[i] >= nv)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: prefix token %zu invalid", i);
    lf->one_window = 1;
    lf->audio_ctx = in->audio_ctx > 0 ? in->audio_ctx : hp->n_audio_ctx;
    if (in->max_timestamp < 0 || in->max_timestamp > hp->n_audio_ctx)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: last timestamp %d outside 0..%d",
                         in->max_timestamp, hp->n_audio_ctx);
    lf->dopt.max_timestamp_index = in->max_timestamp;
    lf->dopt.first_timestamp = in->close_prefix && in->n_prefix_tokens > 0 && lf->dopt.timestamps;
    if (in->prompt_tokens) {
        free(lf->init_prompt);
        lf->n_init_prompt = in->n_prompt_tokens;
        lf->init_prompt = tolk_malloc_array(lf->n_init_prompt + 1, sizeof(int));
        if (!lf->init_prompt) return tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        if (lf->n_init_prompt)
            memcpy(lf->init_prompt, in->prompt_tokens, lf->n_init_prompt * sizeof(int));
    }
    if (in->prefix_tokens) {
        free(lf->prefix);
        lf->n_prefix = in->n_prefix_tokens;
        lf->prefix = tolk_malloc_array(lf->n_prefix + 1, sizeof(int));
        if (!lf->prefix) return tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
        if (lf->n_prefix) memcpy(lf->prefix, in->prefix_tokens, lf->n_prefix * sizeof(int));
        /* the hypothesis continues the prefix: the timestamp rules see it,
         * and the end of text may come at once (no blank suppression) */
        if (lf->dopt.timestamps) lf->dopt.ts_prefix = (int)lf->n_prefix;
        if (lf->n_prefix) lf->dopt.suppress_blank = 0;
    }
    return TOLK_OK;
}

static void set_sot_sequence(tolk_lf *lf) {
    const tolk_dec_tokens *t = &lf->env.asr->dt;
    if (lf->words) {
        const char *code =
            lf->env.asr->multilingual ? tolk_asr_lang_code(lf->env.asr, lf->lang_token) : "en";
        tolk_words_set_language(lf->words, code);
    }
    lf->n_sot_seq = 0;
    lf->sot_seq[lf->n_sot_seq++] = t->sot;
    if (lf->env.asr->multilingual) {
        lf->sot_seq[lf->n_sot_seq++] = lf->lang_token;
        lf->sot_seq[lf->n_sot_seq++] =
            lf->p.task == TOLK_TASK_TRANSLATE ? t->translate : t->transcribe;
    }
}

tolk_status tolk_lf_new(const tolk_lf_env *env, const tolk_transcribe_params *p,
                        const tolk_lf_input *in, tolk_lf **out) {
    *out = NULL;
    tolk_ctx *ctx = env->ctx;
    tolk_lf *lf = calloc(1, sizeof *lf);
    if (!lf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
    lf->env = *env;
    lf->p = *p;
    /* the caller's strings are only valid during this call */
    lf->p.language = NULL;
    lf->p.initial_prompt = lf->p.prefix = lf->p.suppress_tokens = lf->p.clip_timestamps = NULL;
    tolk_status s = setup(lf, p);
    const tolk_asr *asr = env->asr;
    if (s == TOLK_OK && in->one_window) s = setup_window(lf, in);
    if (s == TOLK_OK) {
        lf->window = tolk_malloc_array((size_t)asr->hp.n_mels * TOLK_N_FRAMES, sizeof(float));
        lf->initial = tolk_malloc_array((size_t)asr->hp.n_text_ctx + 8, sizeof(int));
        lf->lang_logits = tolk_malloc_array((size_t)asr->hp.n_vocab, sizeof(float));
        lf->res = tolk_result_new();
        if (!lf->window || !lf->initial || !lf->lang_logits || !lf->res ||
            !ivec_push(&lf->all, lf->init_prompt, lf->n_init_prompt))
            s = tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
    }
    if (s == TOLK_OK && p->word_timestamps) {
        s = env->model ? tolk_words_new(ctx, asr, env->model, p, &lf->words)
                       : tolk_fail(ctx, TOLK_ERR_INTERNAL, "transcribe: no model for words");
        if (s == TOLK_OK) lf->res->has_words = 1;
    }
    if (s == TOLK_OK && env->seqs.max_seqs < lf->max_seqs)
        s = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: %d sequences needed, %d available",
                      lf->max_seqs, env->seqs.max_seqs);
    tolk_sample_src src = {0};
    size_t n = 0;
    if (s == TOLK_OK) {
        lf->kind = in->kind;
        lf->detect_only = in->detect_only;
        switch (in->kind) {
        case TOLK_LF_MEMORY:
            lf->res->input = in->facts;
            if (!in->samples && in->n_samples)
                s = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: NULL samples");
            else if (in->n_samples == 0)
                s = tolk_fail(ctx, TOLK_ERR_EMPTY, "transcribe: the input holds no samples");
            else if (in->n_samples > (size_t)1 << 40)
                s = tolk_fail(ctx, TOLK_ERR_NOMEM, "transcribe: absurd input length");
            lf->mem = (tolk_mem_src){.x = in->samples, .n = in->n_samples};
            src = tolk_mem_src_make(&lf->mem);
            n = in->n_samples;
            break;
        case TOLK_LF_FILE:
            if (!in->path) {
                s = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: NULL path");
                break;
            }
            s = tolk_file_src_open(ctx, in->path, &lf->file);
            lf->file_open = s == TOLK_OK;
            src = tolk_file_src_make(&lf->file);
            break;
        case TOLK_LF_LIVE:
            if (!in->live) s = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: NULL live input");
            lf->live = in->live;
            src = tolk_live_src_make(in->live);
            break;
        default:
            s = tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "transcribe: unknown input kind");
        }
    }
    if (s == TOLK_OK) {
        s = tolk_melpipe_open(&lf->mp, ctx, env->timings, asr->mel, lf->window, src, n);
        lf->mp_open = 1;
    }
    if (s != TOLK_OK) {
        tolk_lf_free(lf);
        return s;
    }
    lf->max_prompt = (size_t)(asr->hp.n_text_ctx / 2 - 1);
    if (!lf->one_window) lf->audio_ctx = asr->hp.n_audio_ctx;
    lf->encoded_seek = (size_t)-1;
    lf->state = S_INIT;
    *out = lf;
    return TOLK_OK;
}

/* ---- segments ------------------------------------------------------------ */

/* Add the window's segment tokens[0, n) (text decoded, nothing cleared
 * yet). */
static tolk_status window_segment(tolk_lf *lf, int seek, double start, double end,
                                  const int *tokens, size_t n, const tolk_dec_result *dr) {
    wsegs *w = &lf->ws;
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        tolk_seg_rec *v = realloc(w->v, (size_t)cap * sizeof *v);
        if (!v) return tolk_fail(lf->env.ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
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
        tolk_tokenizer_decode_ex(lf->env.asr->tok, tokens, n, TOLK_DECODE_TEXT_ONLY, &text, NULL);
    if (s != TOLK_OK) return tolk_fail(lf->env.ctx, s, "transcribe: cannot decode a segment");
    int ok = tolk_seg_rec_init(&w->v[w->n], &f, text, tokens, (int)n);
    free(text);
    if (!ok) return tolk_fail(lf->env.ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
    w->n++;
    return TOLK_OK;
}

/* Make the first n_keep segments of the window final: an instantaneous or
 * blank one (Python's str.strip) loses its text, tokens and words, as the
 * reference clears them; each gets its id, joins the result and the prompt
 * tokens, and is delivered to on_segment. The window's list is emptied. */
static tolk_status commit_window(tolk_lf *lf, int n_keep) {
    wsegs *w = &lf->ws;
    tolk_status s = TOLK_OK;
    for (int i = 0; i < n_keep && i < w->n && s == TOLK_OK; i++) {
        tolk_seg_rec *rec = &w->v[i];
        size_t a, b;
        tolk_py_strip(rec->text, strlen(rec->text), &a, &b);
        if (rec->pub.start == rec->pub.end || a == b) {
            rec->text[0] = '\0';
            rec->pub.n_tokens = 0;
            tolk_seg_rec_set_words(rec, NULL, 0);
        }
        rec->pub.id = lf->res->n_segs;
        if (!ivec_push(&lf->all, rec->tokens, (size_t)rec->pub.n_tokens)) {
            s = tolk_fail(lf->env.ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
            break;
        }
        tolk_seg_rec *d = tolk_result_push(lf->res, rec);
        if (!d) {
            s = tolk_fail(lf->env.ctx, TOLK_ERR_NOMEM, "transcribe: out of memory");
            break;
        }
        if (lf->p.on_segment) lf->p.on_segment(lf->p.user, &d->pub);
    }
    wsegs_clear(w);
    return s;
}

/* ---- the loop ------------------------------------------------------------ */

/* Live input: whether the window [seek, seek + 3000) can be cut now (30 s
 * past seek have arrived, or the input ended: then the length is set).
 * *wanted: the samples needed otherwise. */
static int live_ready(tolk_lf *lf, size_t seek, size_t *wanted) {
    size_t total = 0;
    int closed = 0;
    tolk_live_state(lf->live, &total, &closed);
    if (closed) {
        if (!lf->live_ended) tolk_melpipe_set_length(&lf->mp, total);
        lf->live_ended = 1;
        return 1;
    }
    *wanted = tolk_melpipe_samples_needed(seek, TOLK_N_FRAMES);
    return total >= *wanted;
}

/* The clip list's open end (an odd count) becomes the content end. */
static void close_clips(tolk_lf *lf) {
    if (lf->n_clips % 2 == 1) lf->clips[lf->n_clips++] = lf->mp.content_frames;
    lf->n_pairs = lf->n_clips / 2;
}

/* The content end as far as it is known (live input: open). */
static size_t content_end(const tolk_lf *lf) {
    if (lf->kind == TOLK_LF_LIVE && !lf->live_ended) return OPEN_END;
    return lf->mp.content_frames;
}

/* Cut the mel window [seek, seek + size) (and note what it is). */
static tolk_status cut_window(tolk_lf *lf, size_t seek, size_t size) {
    tolk_status s = tolk_melpipe_window(&lf->mp, seek, size);
    if (s != TOLK_OK) return s;
    lf->encoded_seek = seek;
    lf->encoded_size = size;
    if (lf->live && seek > 0)
        tolk_live_drop(lf->live, (seek - (seek >= 2 ? 2 : seek)) * TOLK_HOP_LENGTH);
    return TOLK_OK;
}

/* Start decoding the window at lf->seek (already encoded). */
static tolk_status start_decode(tolk_lf *lf) {
    const tolk_dec_tokens *t = &lf->env.asr->dt;
    int n_init = 0;
    int *initial = lf->initial;
    size_t n_prompt = lf->all.n - lf->prompt_reset_since;
    if (n_prompt > lf->max_prompt) n_prompt = lf->max_prompt;
    if (n_prompt > 0) {
        initial[n_init++] = t->sot_prev;
        memcpy(initial + n_init, lf->all.v + lf->all.n - n_prompt, n_prompt * sizeof(int));
        n_init += (int)n_prompt;
    }
    int sot_index = n_init;
    for (int i = 0; i < lf->n_sot_seq; i++)
        initial[n_init++] = lf->sot_seq[i];
    if (lf->p.without_timestamps) initial[n_init++] = t->no_timestamps;
    if (lf->n_prefix) memcpy(initial + n_init, lf->prefix, lf->n_prefix * sizeof(int));
    n_init += (int)lf->n_prefix;
    tolk_dec_window_free(lf->win);
    lf->win = NULL;
    tolk_dec_result_clear(&lf->dr);
    lf->state = S_DECODE;
    return tolk_dec_window_new(lf->env.ctx, &lf->env.seqs, t, initial, n_init, sot_index, &lf->dopt,
                               &lf->fb, lf->env.can_select, tolk_asr_text, (void *)lf->env.asr,
                               &lf->win);
}

/* The window's segments are final (after their words, when asked for):
 * the seek and what to keep (word timestamps' rules), the segments into
 * the result, the prompt, progress. */
static tolk_status finish_segments(tolk_lf *lf) {
    const tolk_transcribe_params *p = &lf->p;
    const size_t previous_seek = lf->previous_seek, segment_size = lf->segment_size;
    int n_keep = lf->ws.n, skip_window = 0;
    tolk_status s;
    if (lf->words) {
        s = tolk_words_end(lf->words, previous_seek, lf->ws.v, lf->ws.n);
        if (s != TOLK_OK) return s;
        size_t content = content_end(lf);
        const tolk_words_window win = {previous_seek, segment_size,
                                       content == OPEN_END ? previous_seek + segment_size : content,
                                       lf->single_ending, lf->seek};
        tolk_words_decision dec;
        tolk_words_after(lf->words, lf->ws.v, lf->ws.n, &win, &dec);
        lf->seek = dec.seek;
        n_keep = dec.n_keep;
        skip_window = dec.skip_window;
    }
    if (skip_window) {
        wsegs_clear(&lf->ws);
    } else {
        s = commit_window(lf, n_keep);
        if (s != TOLK_OK) return s;
        if (!p->condition_on_previous_text || lf->dr.temperature > 0.5f)
            lf->prompt_reset_since = lf->all.n;
    }
    /* the timestamp rules guarantee progress; never loop on a bad model */
    if (lf->seek <= previous_seek) lf->seek = previous_seek + segment_size;
    lf->state = S_WINDOW;
    return TOLK_OK;
}

/* Progress after a window (the callback may cancel). */
static tolk_status report_progress(tolk_lf *lf) {
    const tolk_transcribe_params *p = &lf->p;
    if (p->progress) {
        size_t content = content_end(lf);
        double total = content == OPEN_END ? -1.0 : (double)content / TOLK_FRAMES_PER_SECOND;
        size_t at = content != OPEN_END && lf->seek > content ? content : lf->seek;
        if (p->progress(p->user, (double)at / TOLK_FRAMES_PER_SECOND, total))
            return tolk_fail(lf->env.ctx, TOLK_ERR_CANCELLED,
                             "transcribe: cancelled by the caller");
    }
    return TOLK_OK;
}

/* The decoded window: its segments and the timestamp rule's seek; with
 * word timestamps the alignment pass is asked for first (S_ALIGN). */
static tolk_status finish_window(tolk_lf *lf) {
    const tolk_transcribe_params *p = &lf->p;
    const int tb = lf->env.asr->dt.timestamp_begin;
    const double time_precision = (double)(INPUT_STRIDE * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    tolk_dec_result *dr = &lf->dr;
    tolk_status s = tolk_dec_window_finish(lf->win, dr);
    tolk_dec_window_free(lf->win);
    lf->win = NULL;
    if (s != TOLK_OK) return s;
    tolk_timings_count(lf->env.timings, 1, 0, 0);
    const size_t segment_size = lf->segment_size;
    const double time_offset = lf->time_offset;
    size_t previous_seek = lf->seek;
    int skip = 0;
    if (p->no_speech_threshold > 0.0f) {
        skip = dr->no_speech_prob > p->no_speech_threshold;
        if (lf->fb.logprob_threshold > -INFINITY && dr->avg_logprob > lf->fb.logprob_threshold)
            skip = 0;
    }
    if (lf->one_window) {
        /* a stream update: the raw decode is the result; the loop ends */
        tolk_timings_count(lf->env.timings, 0, dr->n_tokens, 0);
        tolk_dec_result_clear(&lf->wres);
        lf->wres = *dr;
        memset(dr, 0, sizeof *dr);
        lf->wres_skip = skip;
        lf->have_wres = 1;
        lf->state = S_FINAL;
        return TOLK_OK;
    }
    if (skip) {
        lf->seek += segment_size;
        lf->state = S_WINDOW;
        return report_progress(lf);
    }
    tolk_timings_count(lf->env.timings, 0, dr->n_tokens, 0);
    const int *tk = dr->tokens;
    size_t n = (size_t)dr->n_tokens;
    int single_ending = n >= 2 && tk[n - 2] < tb && tk[n - 1] >= tb;
    int has_consecutive = 0;
    for (size_t i = 1; i < n; i++)
        if (tk[i - 1] >= tb && tk[i] >= tb) has_consecutive = 1;
    if (has_consecutive) {
        size_t last_slice = 0;
        for (size_t i = 1; i <= n; i++) {
            int cut = (i < n && tk[i - 1] >= tb && tk[i] >= tb) || (i == n && single_ending);
            if (!cut) continue;
            double a = time_offset + (double)(tk[last_slice] - tb) * time_precision;
            double b = time_offset + (double)(tk[i - 1] - tb) * time_precision;
            s = window_segment(lf, (int)previous_seek, a, b, tk + last_slice, i - last_slice, dr);
            if (s != TOLK_OK) return s;
            last_slice = i;
        }
        if (single_ending)
            lf->seek += segment_size;
        else
            lf->seek += (size_t)(tk[last_slice - 1] - tb) * INPUT_STRIDE;
    } else {
        double duration = lf->segment_duration;
        int last_ts = -1;
        for (size_t i = 0; i < n; i++)
            if (tk[i] >= tb) last_ts = tk[i];
        if (last_ts >= 0 && last_ts != tb) duration = (double)(last_ts - tb) * time_precision;
        s = window_segment(lf, (int)previous_seek, time_offset, time_offset + duration, tk, n, dr);
        if (s != TOLK_OK) return s;
        lf->seek += segment_size;
    }
    lf->previous_seek = previous_seek;
    lf->single_ending = single_ending;
    if (lf->words) {
        int needed = 0;
        s = tolk_words_begin(lf->words, lf->sot_seq, lf->n_sot_seq, segment_size, lf->ws.v,
                             lf->ws.n, &lf->align, &needed);
        if (s != TOLK_OK) return s;
        if (needed) {
            lf->state = S_ALIGN;
            return TOLK_OK;
        }
    }
    s = finish_segments(lf);
    return s == TOLK_OK ? report_progress(lf) : s;
}

/* The full text and the result. */
static tolk_status finish_all(tolk_lf *lf) {
    tolk_result *res = lf->res;
    char *text = NULL;
    tolk_status s =
        tolk_tokenizer_decode_ex(lf->env.asr->tok, lf->all.v + lf->n_init_prompt,
                                 lf->all.n - lf->n_init_prompt, TOLK_DECODE_DEFAULT, &text, NULL);
    if (s != TOLK_OK) return tolk_fail(lf->env.ctx, s, "transcribe: cannot decode the text");
    tolk_result_take_text(res, text);
    res->duration = (double)lf->mp.n / TOLK_SAMPLE_RATE;
    lf->state = S_DONE;
    return TOLK_OK;
}

/* Initial pass: the input's length and global maximum (files and memory),
 * the clip end, and what comes first (language identification or the
 * loop). Live inputs wait here for their first window. */
static tolk_status init(tolk_lf *lf, tolk_lf_ask *ask, int *waiting) {
    tolk_ctx *ctx = lf->env.ctx;
    tolk_status s;
    if (lf->kind == TOLK_LF_LIVE) {
        if (!lf->mp.running_max) tolk_melpipe_live(&lf->mp);
        size_t wanted = 0;
        if (!live_ready(lf, lf->clips[0], &wanted)) {
            ask->need = TOLK_LF_AUDIO;
            ask->audio_wanted = wanted;
            *waiting = 1;
            return TOLK_OK;
        }
        if (lf->live_ended && lf->mp.n == 0)
            return tolk_fail(ctx, TOLK_ERR_EMPTY, "transcribe: the live input holds no samples");
    } else {
        s = tolk_melpipe_pass1(&lf->mp, lf->kind == TOLK_LF_MEMORY);
        if (s != TOLK_OK) return s;
        if (lf->mp.n == 0)
            return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: no audio samples",
                             lf->kind == TOLK_LF_FILE ? lf->file.path : "transcribe");
        if (lf->kind == TOLK_LF_FILE) /* pass 1 read the whole file: its truncation facts */
            tolk_audio_input_facts(lf->file.rd, &lf->res->input);
        if (lf->kind == TOLK_LF_FILE && (s = tolk_file_src_rewind(ctx, &lf->file)) != TOLK_OK)
            return s;
    }
    if (content_end(lf) != OPEN_END) close_clips(lf);
    lf->seek = lf->clips[0];
    lf->res->language_prob = 1.0f;
    if (lf->detect_only && !lf->env.asr->multilingual)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "tolk_detect_language: the model is English-only");
    if (lf->env.asr->multilingual && (lf->lang_token < 0 || lf->detect_only)) {
        lf->state = S_LANG;
        lf->lang_sub = LANG_ENCODE;
    } else {
        lf->state = S_WINDOW;
    }
    return TOLK_OK;
}

/* Language identification on the first window (S_LANG). */
static tolk_status lang(tolk_lf *lf, tolk_lf_ask *ask, int *waiting) {
    const tolk_dec_tokens *t = &lf->env.asr->dt;
    if (lf->lang_sub == LANG_ENCODE) {
        size_t content = content_end(lf);
        size_t s0 = lf->seek < content ? lf->seek : 0;
        size_t clip_end = lf->n_clips > 1 && lf->clips[1] < content ? lf->clips[1] : content;
        size_t size = TOLK_N_FRAMES;
        if (content - s0 < size) size = content - s0;
        if (s0 < clip_end && clip_end - s0 < size) size = clip_end - s0;
        tolk_status s = cut_window(lf, s0, size);
        if (s != TOLK_OK) return s;
        ask->need = TOLK_LF_ENCODE;
        ask->mel = lf->window;
        ask->audio_ctx = lf->audio_ctx;
        *waiting = 1;
        return TOLK_OK;
    }
    if (lf->lang_sub == LANG_STEP) {
        tolk_status st = lf->env.seqs.reset(lf->env.seqs.user, 0);
        if (st != TOLK_OK) return st;
        lf->seq0 = 0;
        lf->one = 1;
        lf->sot_ptr = &t->sot;
        ask->need = TOLK_LF_STEP;
        ask->step = (tolk_dec_ask){.n_seqs = 1,
                                   .seqs = &lf->seq0,
                                   .tokens = &lf->sot_ptr,
                                   .n_tokens = &lf->one,
                                   .k = 0,
                                   .logits = lf->lang_logits};
        *waiting = 1;
        return TOLK_OK;
    }
    /* LANG_FED */
    float probs[100];
    int best = 0;
    if (!t->lang_ids || t->n_languages <= 0)
        return tolk_fail(lf->env.ctx, TOLK_ERR_UNSUPPORTED,
                         "detect_language: the model has no language tokens (English-only)");
    tolk_dec_language_probs(lf->lang_logits, t, probs, &best);
    lf->lang_token = t->lang_ids[best];
    lf->res->language_prob = probs[best];
    lf->n_lang_probs = t->n_languages < 100 ? t->n_languages : 100;
    memcpy(lf->lang_probs, probs, (size_t)lf->n_lang_probs * sizeof(float));
    lf->state = lf->detect_only ? S_FINAL : S_WINDOW;
    return TOLK_OK;
}

/* The top of the seek loop (S_WINDOW): the next window, or the end. */
static tolk_status window(tolk_lf *lf, tolk_lf_ask *ask, int *waiting) {
    if (lf->kind == TOLK_LF_LIVE && content_end(lf) == OPEN_END) {
        size_t wanted = 0;
        if (!live_ready(lf, lf->seek, &wanted)) {
            ask->need = TOLK_LF_AUDIO;
            ask->audio_wanted = wanted;
            *waiting = 1;
            return TOLK_OK;
        }
        if (content_end(lf) != OPEN_END) close_clips(lf);
    }
    size_t content = content_end(lf);
    const size_t n_pairs = content == OPEN_END ? (lf->n_clips + 1) / 2 : lf->n_pairs;
    while (lf->clip_idx < n_pairs) {
        size_t clip_start = lf->clips[2 * lf->clip_idx];
        size_t clip_end =
            2 * lf->clip_idx + 1 < lf->n_clips ? lf->clips[2 * lf->clip_idx + 1] : OPEN_END;
        if (lf->seek < clip_start) lf->seek = clip_start;
        if (lf->seek >= clip_end || lf->seek >= content) {
            /* the reference's segment_size would be <= 0 past the content: done with it */
            lf->clip_idx++;
            if (lf->clip_idx < n_pairs) lf->seek = lf->clips[2 * lf->clip_idx];
            continue;
        }
        if (lf->kind == TOLK_LF_LIVE && content == OPEN_END) {
            size_t wanted = 0;
            if (!live_ready(lf, lf->seek, &wanted)) {
                ask->need = TOLK_LF_AUDIO;
                ask->audio_wanted = wanted;
                *waiting = 1;
                return TOLK_OK;
            }
        }
        lf->time_offset = (double)(lf->seek * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
        size_t segment_size = TOLK_N_FRAMES;
        if (content - lf->seek < segment_size) segment_size = content - lf->seek;
        if (clip_end - lf->seek < segment_size) segment_size = clip_end - lf->seek;
        lf->segment_size = segment_size;
        lf->segment_duration = (double)(segment_size * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
        if (lf->n_sot_seq == 0) set_sot_sequence(lf);
        if (lf->seek != lf->encoded_seek || segment_size != lf->encoded_size) {
            tolk_status s = cut_window(lf, lf->seek, segment_size);
            if (s != TOLK_OK) return s;
            lf->encoded_seek = (size_t)-1; /* used once */
            lf->state = S_DECODE;
            ask->need = TOLK_LF_ENCODE;
            ask->mel = lf->window;
            ask->audio_ctx = lf->audio_ctx;
            *waiting = 1;
            return TOLK_OK;
        }
        lf->encoded_seek = (size_t)-1;
        return start_decode(lf);
    }
    lf->state = S_FINAL;
    return TOLK_OK;
}

static void timings_search(tolk_lf *lf, double t0, double a0, double m0) {
    tolk_timings *t = lf->env.timings;
    if (!t) return;
    double spent = tolk_time_now() - t0 - (t->audio_s - a0) - (t->mel_s - m0);
    tolk_timings_add(t, TOLK_STAGE_SEARCH, spent);
}

tolk_status tolk_lf_next(tolk_lf *lf, tolk_lf_ask *ask) {
    memset(ask, 0, sizeof *ask);
    if (lf->err) return lf->err;
    tolk_timings *t = lf->env.timings;
    const double t0 = tolk_time_now(), a0 = t ? t->audio_s : 0, m0 = t ? t->mel_s : 0;
    tolk_status s = TOLK_OK;
    int waiting = 0;
    while (s == TOLK_OK && !waiting) {
        switch (lf->state) {
        case S_INIT:
            s = init(lf, ask, &waiting);
            break;
        case S_LANG:
            s = lang(lf, ask, &waiting);
            break;
        case S_WINDOW:
            s = window(lf, ask, &waiting);
            break;
        case S_DECODE:
            if (!lf->win) { /* waiting for its encoder pass: start when told */
                s = tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: window not encoded");
                break;
            } else {
                int asked = 0;
                s = tolk_dec_window_next(lf->win, &ask->step, &asked);
                if (s == TOLK_OK && asked) {
                    ask->need = TOLK_LF_STEP;
                    waiting = 1;
                } else if (s == TOLK_OK) {
                    s = finish_window(lf);
                }
            }
            break;
        case S_ALIGN:
            ask->need = TOLK_LF_ALIGN;
            ask->align = lf->align;
            waiting = 1;
            break;
        case S_FINAL:
            s = finish_all(lf);
            break;
        case S_DONE:
            ask->need = TOLK_LF_DONE;
            waiting = 1;
            break;
        default:
            s = tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: bad state");
        }
    }
    timings_search(lf, t0, a0, m0);
    return fail(lf, s);
}

tolk_status tolk_lf_encoded(tolk_lf *lf) {
    if (lf->err) return lf->err;
    tolk_status s = TOLK_OK;
    if (lf->state == S_LANG && lf->lang_sub == LANG_ENCODE)
        lf->lang_sub = LANG_STEP;
    else if (lf->state == S_DECODE && !lf->win)
        s = start_decode(lf);
    else
        s = tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: no window was asked for");
    return fail(lf, s);
}

tolk_status tolk_lf_feed(tolk_lf *lf) {
    if (lf->err) return lf->err;
    tolk_status s = TOLK_OK;
    if (lf->state == S_LANG && lf->lang_sub == LANG_STEP) {
        lf->lang_sub = LANG_FED;
    } else if (lf->state == S_DECODE && lf->win) {
        tolk_timings *t = lf->env.timings;
        const double t0 = tolk_time_now(), a0 = t ? t->audio_s : 0, m0 = t ? t->mel_s : 0;
        s = tolk_dec_window_feed(lf->win);
        timings_search(lf, t0, a0, m0);
    } else {
        s = tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: no step was asked for");
    }
    return fail(lf, s);
}

tolk_status tolk_lf_aligned(tolk_lf *lf) {
    if (lf->err) return lf->err;
    tolk_status s;
    if (lf->state != S_ALIGN) {
        s = tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: no alignment was asked for");
    } else {
        tolk_timings *t = lf->env.timings;
        const double t0 = tolk_time_now(), a0 = t ? t->audio_s : 0, m0 = t ? t->mel_s : 0;
        s = finish_segments(lf);
        if (s == TOLK_OK) s = report_progress(lf);
        timings_search(lf, t0, a0, m0);
    }
    return fail(lf, s);
}

void tolk_lf_language_probs(const tolk_lf *lf, float *probs, int *n) {
    *n = lf->n_lang_probs;
    memcpy(probs, lf->lang_probs, (size_t)lf->n_lang_probs * sizeof(float));
}

tolk_status tolk_lf_window_result(tolk_lf *lf, tolk_dec_result *out, int *skipped) {
    memset(out, 0, sizeof *out);
    *skipped = 0;
    if (lf->err) return lf->err;
    if (!lf->one_window || lf->state != S_DONE || !lf->have_wres)
        return tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: no window result");
    *out = lf->wres;
    memset(&lf->wres, 0, sizeof lf->wres);
    *skipped = lf->wres_skip;
    lf->have_wres = 0;
    return TOLK_OK;
}

tolk_status tolk_lf_take_result(tolk_lf *lf, tolk_result **out) {
    *out = NULL;
    if (lf->err) return lf->err;
    if (lf->state != S_DONE)
        return tolk_fail(lf->env.ctx, TOLK_ERR_INTERNAL, "transcribe: not finished");
    const char *code =
        lf->env.asr->multilingual ? tolk_asr_lang_code(lf->env.asr, lf->lang_token) : "en";
    tolk_result_set_language(lf->res, code ? code : "en");
    *out = lf->res;
    lf->res = NULL;
    return TOLK_OK;
}

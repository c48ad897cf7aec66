/*
 * stream.c — live streams (tolk.h's tolk_stream): audio pushed in pieces,
 * partial and final text out with a bounded delay, many streams on one
 * engine.
 *
 * Reference behaviour: ufal/whisper_streaming's OnlineASRProcessor (the
 * algorithm of Machacek et al. 2023): a growing audio buffer is
 * transcribed again after each new piece with the committed text before
 * the buffer as the prompt; words two consecutive hypotheses agree on are
 * committed (LocalAgreement-2, stream_policy.c); the buffer is trimmed at
 * the end of a committed Whisper segment. What tolk does differently:
 *   - each update is a short request on the shared engine
 *     (tolk_engine_submit_window): one window, no seek loop, so the
 *     updates of every stream share the engine's batches;
 *   - the committed words still in the buffer are forced as the
 *     hypothesis' beginning (with their timestamps, which the timestamp
 *     rules then continue), instead of being decoded again and matched:
 *     they cost one prefill, and a committed word can never be contradicted;
 *   - the encoder runs over the buffer plus encoder_pad_s (whisper.cpp's
 *     reduced audio_ctx), not over a zero-padded 30 s window;
 *   - a speech gate (stream_gate.c: Silero VAD, an energy gate, or none)
 *     skips silence, and a pause ends the utterance: its whole hypothesis
 *     is committed at once (a pause inside a sentence is held, HOLD_PAUSES);
 *   - updates never overlap within a stream, so their interval follows the
 *     load: after min_update_s of new audio, or as soon as the previous
 *     one ends when the engine is busy.
 *
 * Threads: pushes and close come from the caller; an update's end is
 * handled on the engine's tick thread (the request's done hook). Both take
 * the stream mutex (then, in submissions, the engine's). Events are queued
 * under the mutex and delivered outside it, by one thread at a time, in
 * order.
 */
#include "engine.h"
#include "stream_internal.h"
#include "timings.h"

#include <math.h>
#include <pthread.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#define SR TOLK_SAMPLE_RATE
#define PREROLL (SR * 3 / 10) /* samples kept before an onset (0.3 s) */
#define TS_SAMPLES 320        /* samples per timestamp step (0.02 s) */
#define MAX_PROMPT 223        /* n_text_ctx / 2 - 1 */
#define NO_ONSET ((size_t)-1)
/* Speech that starts (an onset, or speech after RESUME_CHUNKS quiet chunks
 * inside an utterance) is decoded ONSET_UPDATE samples after it began, even
 * when min_update_s has not passed since the last update began: the first
 * words of an utterance or a sentence show sooner. */
#define ONSET_UPDATE (SR * 15 / 100) /* 0.15 s */
#define RESUME_CHUNKS 6              /* 0.19 s */
/* A pause (pause_s of silence) ends an utterance when its text ends a
 * sentence (. ? !); inside a sentence — "... we are glad to welcome his"
 * [pause] "gospel." — the utterance goes on, the silence kept, until the
 * text ends a sentence (an update over the silence often closes it) or
 * HOLD_PAUSES more pauses' worth of silence came. Ending there would make
 * the rest of the sentence the start of a new utterance: decoded without
 * its beginning (only the prompt), its first word right at the buffer's
 * start, where Whisper drops or mishears words; and the first words'
 * commits would wait for the new utterance's agreement. Holding costs the
 * final commit of an unfinished utterance's last words HOLD_PAUSES pauses
 * more, and updates over silence meanwhile. */
#define HOLD_PAUSES 2

typedef struct ev_item {
    tolk_stream_event ev;
    char *text;
} ev_item;

struct tolk_stream {
    tolk_engine *e;
    const tolk_asr *asr;
    tolk_ctx *ctx; /* the stream's messages */
    tolk_stream_params p;
    char *s_language, *s_suppress; /* copied strings */
    tolk_sp_policy pol;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* input */
    soxr_t soxr;      /* NULL at 16 kHz */
    float *mono, *rs; /* scratch: mono frames, resampled */
    size_t mono_cap, rs_cap;
    float stage[TOLK_GATE_CHUNK]; /* samples waiting for a gate decision */
    size_t n_stage;
    tolk_gate gate;
    tolk_gate_track trk;
    uint64_t in_pos;    /* 16 kHz samples routed so far */
    float pre[PREROLL]; /* the last samples outside speech (ring) */
    size_t pre_n, pre_head;

    /* the buffer: uncommitted audio, contiguous input samples from buf_t0 */
    float *buf;
    size_t n_buf, cap_buf;
    uint64_t buf_t0;
    int in_utt;             /* inside an utterance */
    int open_text;          /* the utterance's text so far ends inside a sentence */
    int holding;            /* a pause came while open_text: the utterance goes on */
    int hold_chunks;        /* silent chunks since that pause */
    size_t fin_len;         /* the first fin_len samples end an utterance: a final update */
    size_t last_update_len; /* buffer length the last update started from */
    size_t onset_len;       /* buffer length where speech (re)started since the last
                               update began, or NO_ONSET */

    /* text */
    int *ctok; /* committed tokens still in the buffer (timestamps from buf_t0) */
    int n_ctok, cap_ctok;
    int ptok[MAX_PROMPT]; /* the prompt: the last committed text tokens before them */
    int n_ptok;
    double last_end; /* end of the last FINAL (s) */
    tolk_sp_state sps;
    char *partial; /* the last PARTIAL's text */
    char lang[8];

    /* the update in flight */
    tolk_request *req;
    double req_t0;
    size_t req_len;
    int req_final;
    int req_close; /* the update closes the committed text's segment (a cut point) */

    /* events and the end */
    ev_item *evq;
    int n_ev, cap_ev;
    int delivering;
    int closed, ended, end_delivered, freeing;
    int hooks; /* done hooks still running (tolk_stream_free waits for them) */
    tolk_status end_status;
    tolk_stream_stats stats;
};

/* ---- parameters ------------------------------------------------------------ */

tolk_stream_params tolk_stream_default_params(void) {
    tolk_stream_params p;
    memset(&p, 0, sizeof p);
    p.transcribe = tolk_transcribe_default_params();
    p.transcribe.n_temperatures = 1;
    p.transcribe.temperatures[0] = 0.0f;
    p.policy = TOLK_STREAM_FAST;
    p.agreement = 2;
    p.agreement_gap_s = 0.5f;
    p.min_update_s = 0.25f;
    p.margin_s = 0.5f;
    p.min_prob = 0.5f;
    p.trim_s = 8.0f;
    p.max_buffer_s = 25.0f;
    p.encoder_pad_s = 1.0f;
    p.encoder_min_s = 10.0f;
    p.prompt_tokens = 48;
    p.gate = TOLK_STREAM_GATE_AUTO;
    p.pause_s = 0.5f;
    p.sample_rate = SR;
    p.channels = 1;
    return p;
}

static tolk_status check_params(tolk_ctx *ctx, const tolk_stream_params *p) {
    const char *bad = NULL;
    if (p->policy != TOLK_STREAM_FAST && p->policy != TOLK_STREAM_LOCAL_AGREEMENT)
        bad = "policy";
    else if (p->agreement < 2 || p->agreement > TOLK_SP_MAX_AGREE)
        bad = "agreement (2..8)";
    else if (!(p->agreement_gap_s >= 0.0f && p->agreement_gap_s <= 10.0f))
        bad = "agreement_gap_s (0..10)";
    else if (!(p->min_update_s >= 0.02f && p->min_update_s <= 10.0f))
        bad = "min_update_s (0.02..10)";
    else if (!(p->margin_s >= 0.0f && p->margin_s <= 10.0f))
        bad = "margin_s (0..10)";
    else if (!(p->min_prob >= 0.0f && p->min_prob <= 1.0f))
        bad = "min_prob (0..1)";
    else if (!(p->max_buffer_s >= 1.0f && p->max_buffer_s <= 30.0f))
        bad = "max_buffer_s (1..30)";
    else if (!(p->trim_s >= 0.0f && p->trim_s <= p->max_buffer_s))
        bad = "trim_s (0..max_buffer_s)";
    else if (!(p->encoder_pad_s <= 30.0f) || isnan(p->encoder_pad_s))
        bad = "encoder_pad_s (<= 30)";
    else if (!(p->encoder_min_s >= 0.0f && p->encoder_min_s <= 30.0f))
        bad = "encoder_min_s (0..30)";
    else if (p->prompt_tokens < 0 || p->prompt_tokens > MAX_PROMPT)
        bad = "prompt_tokens (0..223)";
    else if (p->gate != TOLK_STREAM_GATE_ENERGY && p->gate != TOLK_STREAM_GATE_NONE &&
             p->gate != TOLK_STREAM_GATE_SILERO && p->gate != TOLK_STREAM_GATE_AUTO)
        bad = "gate";
    else if (p->gate == TOLK_STREAM_GATE_SILERO && !p->vad)
        bad = "vad (TOLK_STREAM_GATE_SILERO needs a Silero VAD model)";
    else if (!(p->pause_s >= 0.064f && p->pause_s <= 30.0f))
        bad = "pause_s (0.064..30)";
    else if (p->sample_rate < 1000 || p->sample_rate > 384000)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "stream: sample rate %d Hz is outside 1000..384000", p->sample_rate);
    else if (p->channels < 1 || p->channels > 64)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "stream: %d channels is outside 1..64",
                         p->channels);
    else if (p->transcribe.without_timestamps)
        bad = "transcribe.without_timestamps (a stream needs timestamps)";
    if (bad) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "stream: bad parameter %s", bad);
    return TOLK_OK;
}

/* ---- events ---------------------------------------------------------------- */

/* Queue an event (the mutex is held); text is copied. Out of memory drops it
 * (never an END: that one is queued without text). */
static void queue_event(tolk_stream *s, tolk_stream_event_type type, const char *text, double start,
                        double end, tolk_status status) {
    if (s->n_ev == s->cap_ev) {
        int cap = s->cap_ev ? 2 * s->cap_ev : 8;
        ev_item *v = realloc(s->evq, (size_t)cap * sizeof *v);
        if (!v) return;
        s->evq = v;
        s->cap_ev = cap;
    }
    ev_item *it = &s->evq[s->n_ev];
    it->text = strdup(text ? text : "");
    if (!it->text && type != TOLK_STREAM_END) return;
    it->ev = (tolk_stream_event){.type = type,
                                 .text = it->text ? it->text : "",
                                 .start = start,
                                 .end = end,
                                 .status = status};
    s->n_ev++;
}

/* Deliver queued events (the mutex is NOT held): one thread at a time. */
static void deliver(tolk_stream *s) {
    pthread_mutex_lock(&s->mu);
    if (s->delivering) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->delivering = 1;
    while (s->n_ev > 0 && !s->freeing) {
        ev_item it = s->evq[0];
        memmove(s->evq, s->evq + 1, (size_t)(s->n_ev - 1) * sizeof *s->evq);
        s->n_ev--;
        pthread_mutex_unlock(&s->mu);
        if (s->p.on_event) s->p.on_event(s->p.user, &it.ev);
        free(it.text);
        pthread_mutex_lock(&s->mu);
        if (it.ev.type == TOLK_STREAM_END) s->end_delivered = 1;
    }
    s->delivering = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* End the stream with status st (the mutex is held): queue END once. */
static void end_stream(tolk_stream *s, tolk_status st) {
    if (s->ended) return;
    s->ended = 1;
    s->end_status = st;
    queue_event(s, TOLK_STREAM_END, "", (double)s->in_pos / SR, (double)s->in_pos / SR, st);
    pthread_cond_broadcast(&s->cv);
}

/* ---- the buffer -------------------------------------------------------------- */

static tolk_status buf_append(tolk_stream *s, const float *x, size_t n) {
    if (s->n_buf + n > s->cap_buf) {
        size_t cap = s->cap_buf ? s->cap_buf : (size_t)SR * 4;
        while (cap < s->n_buf + n)
            cap *= 2;
        float *v = realloc(s->buf, cap * sizeof(float));
        if (!v) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory for audio");
        s->buf = v;
        s->cap_buf = cap;
    }
    memcpy(s->buf + s->n_buf, x, n * sizeof(float));
    s->n_buf += n;
    return TOLK_OK;
}

/* Drop the first n samples of the buffer. */
static void buf_drop(tolk_stream *s, size_t n) {
    if (n > s->n_buf) n = s->n_buf;
    memmove(s->buf, s->buf + n, (s->n_buf - n) * sizeof(float));
    s->n_buf -= n;
    s->buf_t0 += n;
    s->fin_len = s->fin_len > n ? s->fin_len - n : 0;
    s->last_update_len = s->last_update_len > n ? s->last_update_len - n : 0;
    if (s->onset_len != NO_ONSET) s->onset_len = s->onset_len > n ? s->onset_len - n : 0;
}

static void pre_push(tolk_stream *s, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        s->pre[s->pre_head] = x[i];
        s->pre_head = (s->pre_head + 1) % PREROLL;
        if (s->pre_n < PREROLL) s->pre_n++;
    }
}

/* Append the pre-roll (oldest first) to the buffer and empty it. */
static tolk_status pre_flush(tolk_stream *s) {
    size_t start = (s->pre_head + PREROLL - s->pre_n) % PREROLL;
    tolk_status st = TOLK_OK;
    for (size_t i = 0; i < s->pre_n && st == TOLK_OK; i++)
        st = buf_append(s, &s->pre[(start + i) % PREROLL], 1);
    s->pre_n = 0;
    return st;
}

static int ctok_push(tolk_stream *s, const int *t, int n) {
    if (s->n_ctok + n > s->cap_ctok) {
        int cap = s->cap_ctok ? s->cap_ctok : 64;
        while (cap < s->n_ctok + n)
            cap *= 2;
        int *v = realloc(s->ctok, (size_t)cap * sizeof(int));
        if (!v) return 0;
        s->ctok = v;
        s->cap_ctok = cap;
    }
    memcpy(s->ctok + s->n_ctok, t, (size_t)n * sizeof(int));
    s->n_ctok += n;
    return 1;
}

/* Move the text tokens of ctok[0, n) to the prompt (its last prompt_tokens
 * kept) and drop them from ctok; timestamps of the rest shift by -shift
 * steps. */
static void ctok_to_prompt(tolk_stream *s, int n, int shift) {
    const int eot = s->asr->dt.eot, tb = s->asr->dt.timestamp_begin;
    for (int i = 0; i < n; i++) {
        if (s->ctok[i] >= eot) continue;
        if (s->n_ptok == MAX_PROMPT) {
            memmove(s->ptok, s->ptok + 1, (MAX_PROMPT - 1) * sizeof(int));
            s->n_ptok--;
        }
        s->ptok[s->n_ptok++] = s->ctok[i];
    }
    if (s->n_ptok > s->p.prompt_tokens) {
        int drop = s->n_ptok - s->p.prompt_tokens;
        memmove(s->ptok, s->ptok + drop, (size_t)s->p.prompt_tokens * sizeof(int));
        s->n_ptok = s->p.prompt_tokens;
    }
    memmove(s->ctok, s->ctok + n, (size_t)(s->n_ctok - n) * sizeof(int));
    s->n_ctok -= n;
    for (int i = 0; i < s->n_ctok; i++)
        if (s->ctok[i] >= tb) s->ctok[i] = s->ctok[i] - shift >= tb ? s->ctok[i] - shift : tb;
}

/* ---- updates ----------------------------------------------------------------- */

static void update_done(void *user, tolk_request *r);
static int last_cut(const tolk_stream *s);
static void end_utt(tolk_stream *s);

/* Submit the next update if one is due (the mutex is held). */
static void maybe_update(tolk_stream *s) {
    if (s->req || s->ended || s->freeing) return;
    int final = s->fin_len > 0;
    size_t len = final ? s->fin_len : s->n_buf;
    const int regular = s->n_buf >= s->last_update_len + (size_t)(s->p.min_update_s * SR);
    const int onset = s->onset_len != NO_ONSET && s->n_buf >= s->onset_len + ONSET_UPDATE;
    if (!final && !(s->in_utt && (regular || onset))) return;
    if (len == 0) return;
    if (len > TOLK_N_SAMPLES) {
        end_stream(s, tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG,
                                "stream: %.1f s of audio wait for decoding, more than one window "
                                "(the engine cannot keep up)",
                                (double)len / SR));
        return;
    }
    tolk_transcribe_params tp = s->p.transcribe;
    tp.language = s->lang[0] ? s->lang : s->s_language;
    tp.suppress_tokens = s->s_suppress;
    tp.initial_prompt = NULL;
    tp.prefix = NULL;
    tp.clip_timestamps = "0";
    tp.progress = NULL;
    tp.on_segment = NULL;
    tp.without_timestamps = 0;
    if (final && tp.n_temperatures == 1 && tp.temperatures[0] == 0.0f) {
        /* the end of an utterance is committed whole: openai-whisper's fallback
         * guards it against a repetition loop */
        for (int i = 0; i < 6; i++)
            tp.temperatures[i] = 0.2f * (float)i;
        tp.n_temperatures = 6;
    }
    /* a token budget against runaway loops: ~7 per second of buffer */
    double sec = (double)len / SR;
    int budget = 12 + (int)ceil(7.0 * sec);
    tp.sample_len = tp.sample_len > 0 && tp.sample_len < budget ? tp.sample_len : budget;
    if (tp.sample_len > 224) tp.sample_len = 224;
    const int n_ctx = s->asr->hp.n_audio_ctx;
    int actx = 0;
    if (s->p.encoder_pad_s >= 0.0f) {
        long pos = (long)((len + 2 * TS_SAMPLES - 1) / (2 * TS_SAMPLES)) * 2; /* even */
        pos += (long)ceil(s->p.encoder_pad_s * 50.0f);
        long lo = (long)ceil(s->p.encoder_min_s * 50.0f);
        if (pos < lo) pos = lo;
        actx = pos >= n_ctx ? 0 : (int)pos;
    }
    static const int none = 0;
    /* a long buffer with no segment end among its committed words: ask the
     * model where their text ends (a timestamp first), to cut there */
    const int eot = s->asr->dt.eot;
    const int close = !final && (double)len / SR > s->p.trim_s && s->n_ctok > 0 &&
                      s->ctok[s->n_ctok - 1] < eot && last_cut(s) < 0 &&
                      s->last_end - (double)s->buf_t0 / SR < (double)len / SR - 0.5;
    int last_ts = (int)((len + TS_SAMPLES - 1) / TS_SAMPLES);
    if (last_ts > n_ctx) last_ts = n_ctx;
    tolk_lf_input win = {.one_window = 1,
                         .audio_ctx = actx,
                         .max_timestamp = last_ts,
                         .close_prefix = close,
                         .prompt_tokens = s->n_ptok ? s->ptok : &none,
                         .n_prompt_tokens = (size_t)s->n_ptok,
                         .prefix_tokens = s->n_ctok ? s->ctok : &none,
                         .n_prefix_tokens = (size_t)s->n_ctok};
    tolk_request *r = NULL;
    tolk_status st =
        tolk_engine_submit_window(s->e, s->buf, len, &tp, &win, update_done, s, s->ctx, &r);
    if (st != TOLK_OK) {
        end_stream(s, tolk_fail(s->ctx, st, "stream: %s", tolk_ctx_last_error(s->ctx)));
        return;
    }
    s->req = r;
    s->req_t0 = tolk_time_now();
    s->req_len = len;
    s->req_final = final;
    s->req_close = close;
    /* an onset's early update is one more: the regular one stays due where
     * it was (its 0.15 s of speech often give no text yet) */
    if (final || regular || !onset) s->last_update_len = len;
    s->onset_len = NO_ONSET;
}

/* Concatenated texts of words [a, b) of h (a new string; NULL: no memory). */
static char *words_text(const tolk_sp_hyp *h, int a, int b) {
    size_t n = 1;
    for (int i = a; i < b; i++)
        n += strlen(h->w[i].text);
    char *t = malloc(n), *p = t;
    if (!t) return NULL;
    for (int i = a; i < b; i++) {
        size_t l = strlen(h->w[i].text);
        memcpy(p, h->w[i].text, l);
        p += l;
    }
    *p = '\0';
    return t;
}

/* The last closing timestamp in ctok (a timestamp after text) with a time
 * > 0: its index, or -1. */
static int last_cut(const tolk_stream *s) {
    const int tb = s->asr->dt.timestamp_begin, eot = s->asr->dt.eot;
    for (int i = s->n_ctok - 1; i >= 1; i--)
        if (s->ctok[i] > tb && s->ctok[i - 1] < eot) return i;
    return -1;
}

/* Handle a finished update (the mutex is held). */
static void take_update(tolk_stream *s, tolk_request *r) {
    const double dt = tolk_time_now() - s->req_t0;
    s->stats.updates++;
    s->stats.update_s += dt;
    if (dt > s->stats.update_s_max) s->stats.update_s_max = dt;
    s->stats.buffer_s += (double)s->req_len / SR;
    tolk_status st = tolk_request_status(r);
    if (st != TOLK_OK) {
        end_stream(
            s, tolk_fail(s->ctx, st, "stream: an update failed: %s", tolk_request_last_error(r)));
        return;
    }
    tolk_dec_result dr;
    int skipped = 0;
    char lang[8];
    st = tolk_request_window(r, &dr, &skipped, lang);
    if (st != TOLK_OK) {
        end_stream(s, tolk_fail(s->ctx, st, "stream: %s", tolk_request_last_error(r)));
        return;
    }
    const double audio_s = (double)s->req_len / SR, t0 = (double)s->buf_t0 / SR;
    /* a closing timestamp asked for ends the committed text's segment: it
     * joins the committed tokens at once (a cut point) */
    const int *tail = dr.tokens;
    const float *tlp = dr.logprobs;
    int n_tail = skipped ? 0 : dr.n_tokens;
    if (s->req_close && n_tail > 0 && tail[0] >= s->asr->dt.timestamp_begin) {
        if (!ctok_push(s, tail, 1)) {
            tolk_dec_result_clear(&dr);
            end_stream(s, tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory"));
            return;
        }
        tail++, tlp++, n_tail--;
    }
    tolk_sp_hyp h;
    st = tolk_sp_parse(s->ctx, s->asr, s->ctok, s->n_ctok, tail, tlp, n_tail, audio_s, &h);
    h.heard = t0 + audio_s;
    /* A hypothesis that loops (Whisper repeating itself), or holds more words
     * than anyone says in that much audio, is no hypothesis: nothing of it is
     * committed (nor remembered for LocalAgreement) before the end of an
     * utterance, which keeps what came before the loop. What came before the
     * loop is shown as the partial: on its first quarter second of speech
     * Whisper often says the first word and then loops on it ("After. After.
     * After."), and that word is the earliest text there is. */
    int looped = 0;
    if (st == TOLK_OK) {
        int ls = tolk_sp_loop_start(&h);
        int rs = tolk_sp_repeat_start(&h, tail, n_tail, s->ptok, s->n_ptok, s->ctok, s->n_ctok,
                                      s->asr->dt.timestamp_begin);
        if (rs < ls) ls = rs;
        double heard = audio_s - (s->last_end - t0 > 0.0 ? s->last_end - t0 : 0.0);
        double limit = 3.0 + 6.0 * (heard > 0.0 ? heard : 0.0);
        if (ls < h.n_w || (double)h.n_w > limit) {
            looped = 1;
            int keep = ls < h.n_w || s->req_final ? ls : 0;
            for (int i = keep; i < h.n_w; i++)
                free(h.w[i].text);
            h.n_w = keep;
        }
    }
    if (st != TOLK_OK) {
        tolk_dec_result_clear(&dr);
        end_stream(s, st);
        return;
    }
    if (!s->lang[0] && !skipped && h.n_w > 0 && s->asr->multilingual) memcpy(s->lang, lang, 8);
    int k =
        looped && !s->req_final ? 0 : tolk_sp_decide(&s->pol, &s->sps, &h, audio_s, s->req_final);
    if (k > 0) {
        int end = h.w[k - 1].b;
        if (h.w[k - 1].ts_after == end) end++; /* the segment's closing timestamp */
        char *text = words_text(&h, 0, k);
        if (!text || !ctok_push(s, tail, end)) {
            free(text);
            tolk_sp_hyp_clear(&h);
            tolk_dec_result_clear(&dr);
            end_stream(s, tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory"));
            return;
        }
        double a = t0 + h.w[0].start, b = t0 + h.w[k - 1].end;
        if (a < s->last_end) a = s->last_end;
        if (b < a) b = a;
        s->last_end = b;
        queue_event(s, TOLK_STREAM_FINAL, text, a, b, TOLK_OK);
        free(text);
        s->stats.words += k;
    }
    if (!looped && tolk_sp_push(&s->sps, &h, k) != TOLK_OK) {
        tolk_sp_hyp_clear(&h);
        tolk_dec_result_clear(&dr);
        end_stream(s, tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory"));
        return;
    }
    /* the partial: what is left of this hypothesis (a rejected one with
     * nothing before its loop changes nothing) */
    char *rest = looped && !s->req_final && h.n_w == 0 ? NULL : words_text(&h, k, h.n_w);
    if (rest && strcmp(rest, s->partial ? s->partial : "") != 0) {
        double a = k < h.n_w ? t0 + h.w[k].start : s->last_end;
        double b = k < h.n_w ? t0 + h.w[h.n_w - 1].end : s->last_end;
        if (a < s->last_end) a = s->last_end;
        if (b < a) b = a;
        queue_event(s, TOLK_STREAM_PARTIAL, rest, a, b, TOLK_OK);
        free(s->partial);
        s->partial = rest;
        rest = NULL;
    }
    free(rest);
    tolk_sp_hyp_clear(&h);
    tolk_dec_result_clear(&dr);

    /* the text of the utterance so far: a held pause ends once it ends a sentence */
    if (!s->req_final && h.n_w > 0) s->open_text = !tolk_sp_ends_sentence(h.w[h.n_w - 1].text);
    if (!s->req_final && s->holding && !s->open_text) end_utt(s);
    if (s->req_final) {
        /* the utterance ended: its text becomes the prompt, its audio goes */
        s->open_text = 0;
        ctok_to_prompt(s, s->n_ctok, 0);
        tolk_sp_reset(&s->sps);
        size_t fin = s->fin_len;
        s->fin_len = 0;
        buf_drop(s, fin);
        if (!s->in_utt) { /* what came after is silence: back to the pre-roll */
            pre_push(s, s->buf, s->n_buf);
            s->buf_t0 += s->n_buf;
            s->n_buf = 0;
            s->onset_len = NO_ONSET;
        }
        s->last_update_len = s->n_buf;
        s->stats.utterances++;
        free(s->partial);
        s->partial = NULL;
    } else if (audio_s > s->p.trim_s) {
        int i = last_cut(s);
        if (i >= 0) {
            const int steps = s->ctok[i] - s->asr->dt.timestamp_begin;
            size_t cut = (size_t)steps * TS_SAMPLES;
            if (cut <= s->req_len) {
                ctok_to_prompt(s, i + 1, steps);
                buf_drop(s, cut);
            }
        }
    }
}

/* The done hook of an update (engine thread, no engine lock held). */
static void update_done(void *user, tolk_request *r) {
    tolk_stream *s = user;
    pthread_mutex_lock(&s->mu);
    if (s->req == r) {
        if (!s->freeing && !s->ended) take_update(s, r);
        s->req = NULL;
        if (!s->freeing) {
            maybe_update(s);
            if (s->closed && !s->req && s->fin_len == 0) end_stream(s, TOLK_OK);
        }
    }
    s->hooks++;
    pthread_mutex_unlock(&s->mu);
    tolk_request_free(r);
    deliver(s);
    pthread_mutex_lock(&s->mu);
    s->hooks--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu); /* s may be freed from here on */
}

/* ---- input --------------------------------------------------------------------- */

/* End the utterance at the buffer's end: a final update over it is due
 * (the mutex is held). */
static void end_utt(tolk_stream *s) {
    s->in_utt = 0;
    s->holding = 0;
    s->fin_len = s->n_buf;
}

/* Route one chunk of TOLK_GATE_CHUNK samples (the mutex is held). */
static tolk_status route_chunk(tolk_stream *s, const float *x) {
    float prob = 1.0f;
    size_t np = 0;
    tolk_status st = s->gate.push(s->gate.impl, s->ctx, x, TOLK_GATE_CHUNK, &prob, &np);
    if (st != TOLK_OK) return st;
    if (np != 1) prob = 0.0f;
    const int quiet_before = s->trk.quiet;
    tolk_gate_event ev = tolk_gate_track_chunk(&s->trk, prob);
    /* while a final update is pending, or a pause is held, the audio stays
     * contiguous */
    const int keep_all = s->fin_len > 0 || s->holding;
    switch (ev) {
    case TOLK_GATE_SILENCE:
        if (keep_all)
            st = buf_append(s, x, TOLK_GATE_CHUNK);
        else
            pre_push(s, x, TOLK_GATE_CHUNK);
        if (s->holding && ++s->hold_chunks >= s->trk.pause_chunks * HOLD_PAUSES) end_utt(s);
        break;
    case TOLK_GATE_ONSET:
        if (s->n_buf == 0) s->buf_t0 = s->in_pos - s->pre_n;
        st = pre_flush(s);
        if (st == TOLK_OK) st = buf_append(s, x, TOLK_GATE_CHUNK);
        if (!s->holding) s->last_update_len = s->n_buf - TOLK_GATE_CHUNK;
        s->in_utt = 1;
        s->holding = 0;
        s->onset_len = s->n_buf - TOLK_GATE_CHUNK;
        break;
    case TOLK_GATE_SPEECH:
        st = buf_append(s, x, TOLK_GATE_CHUNK);
        if (st == TOLK_OK && prob >= 0.5f && quiet_before >= RESUME_CHUNKS &&
            s->onset_len == NO_ONSET)
            s->onset_len = s->n_buf - TOLK_GATE_CHUNK;
        break;
    case TOLK_GATE_PAUSE:
        st = buf_append(s, x, TOLK_GATE_CHUNK);
        if (s->open_text) { /* the sentence goes on: hold the utterance */
            s->holding = 1;
            s->hold_chunks = 0;
        } else {
            end_utt(s);
        }
        break;
    }
    s->in_pos += TOLK_GATE_CHUNK;
    s->stats.input_s = (double)s->in_pos / SR;
    /* a full buffer ends the utterance (speech goes on in a new one) */
    if (st == TOLK_OK && s->in_utt && s->fin_len == 0 &&
        s->n_buf >= (size_t)(s->p.max_buffer_s * SR))
        s->fin_len = s->n_buf;
    return st;
}

/* 16 kHz mono samples in (the mutex is held). */
static tolk_status feed(tolk_stream *s, const float *x, size_t n) {
    tolk_status st = TOLK_OK;
    while (n > 0 && st == TOLK_OK) {
        size_t take = TOLK_GATE_CHUNK - s->n_stage;
        if (take > n) take = n;
        memcpy(s->stage + s->n_stage, x, take * sizeof(float));
        s->n_stage += take;
        x += take;
        n -= take;
        if (s->n_stage == TOLK_GATE_CHUNK) {
            st = route_chunk(s, s->stage);
            s->n_stage = 0;
        }
    }
    return st;
}

static int grow(float **v, size_t *cap, size_t n) {
    if (n <= *cap) return 1;
    float *p = realloc(*v, n * sizeof(float));
    if (!p) return 0;
    *v = p;
    *cap = n;
    return 1;
}

/* Frames of mono samples (at the input rate) in: resampled, fed (the mutex
 * is held). flush: the end of input (the resampler's tail). */
static tolk_status feed_mono(tolk_stream *s, const float *x, size_t n, int flush) {
    if (!s->soxr) return feed(s, x, n);
    size_t want = (size_t)((double)n * SR / s->p.sample_rate) + 1024;
    if (!grow(&s->rs, &s->rs_cap, want))
        return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory");
    tolk_status st = TOLK_OK;
    for (;;) {
        size_t idone = 0, odone = 0;
        soxr_error_t e = soxr_process(s->soxr, flush ? NULL : x, flush ? 0 : n, &idone, s->rs,
                                      s->rs_cap, &odone);
        if (e) return tolk_fail(s->ctx, TOLK_ERR_INTERNAL, "stream: libsoxr: %s", e);
        st = feed(s, s->rs, odone);
        if (st != TOLK_OK) return st;
        if (!flush) {
            x += idone;
            n -= idone;
            if (n == 0) break;
        } else if (odone == 0) {
            break;
        }
    }
    return st;
}

/* Common part of the pushes: frames of interleaved float samples. Checks
 * run under the mutex (the done hook writes the stream's messages too). */
static tolk_status push_frames(tolk_stream *s, const float *x, const int16_t *x16,
                               size_t n_frames) {
    if (!s) return TOLK_ERR_INVALID_ARG;
    const int ch = s->p.channels;
    pthread_mutex_lock(&s->mu);
    tolk_status st = TOLK_OK;
    if (!x && !x16 && n_frames)
        st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "stream: NULL samples");
    else if (n_frames > ((size_t)1 << 32))
        st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "stream: absurd piece (%zu frames)", n_frames);
    else if (s->closed)
        st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "stream: pushed after close");
    else if (s->ended)
        st = tolk_fail(s->ctx, s->end_status != TOLK_OK ? s->end_status : TOLK_ERR_INVALID_ARG,
                       "stream: it has ended (%s)", tolk_strerror(s->end_status));
    for (size_t i = 0; x && st == TOLK_OK && i < n_frames * (size_t)ch; i++)
        if (!isfinite(x[i]))
            st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG,
                           "stream: sample %zu of the piece is not a finite number", i);
    if (st != TOLK_OK) { /* a bad piece changes nothing */
        pthread_mutex_unlock(&s->mu);
        return st;
    }
    /* in blocks, through the mono scratch */
    const size_t block = 4096;
    for (size_t f0 = 0; f0 < n_frames && st == TOLK_OK; f0 += block) {
        size_t nf = n_frames - f0 < block ? n_frames - f0 : block;
        if (!grow(&s->mono, &s->mono_cap, nf)) {
            st = tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory");
            break;
        }
        for (size_t f = 0; f < nf; f++) {
            double acc = 0.0;
            for (int c = 0; c < ch; c++) {
                size_t i = (f0 + f) * (size_t)ch + (size_t)c;
                acc += x ? (double)x[i] : (double)x16[i] / 32768.0;
            }
            s->mono[f] = (float)(acc / ch);
        }
        st = feed_mono(s, s->mono, nf, 0);
    }
    if (st != TOLK_OK && !s->ended) end_stream(s, st);
    if (st == TOLK_OK) maybe_update(s);
    while (s->p.synchronous && (s->req || s->hooks))
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    deliver(s);
    return st;
}

tolk_status tolk_stream_push(tolk_stream *s, const float *samples, size_t n_frames) {
    return push_frames(s, samples, NULL, n_frames);
}

tolk_status tolk_stream_push_s16(tolk_stream *s, const int16_t *samples, size_t n_frames) {
    return push_frames(s, NULL, samples, n_frames);
}

tolk_status tolk_stream_close(tolk_stream *s) {
    if (!s) return TOLK_ERR_INVALID_ARG;
    pthread_mutex_lock(&s->mu);
    tolk_status st = TOLK_OK;
    if (s->closed) {
        st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "stream: closed twice");
    } else if (!s->ended) {
        if (s->soxr) st = feed_mono(s, NULL, 0, 1);
        /* the last partial chunk belongs to an utterance in progress */
        if (st == TOLK_OK && s->in_utt && s->n_stage > 0) {
            st = buf_append(s, s->stage, s->n_stage);
            s->in_pos += s->n_stage;
            s->n_stage = 0;
        }
        if (st == TOLK_OK && (s->in_utt || s->n_buf > s->fin_len)) {
            s->fin_len = s->n_buf;
            s->in_utt = 0;
        }
        if (st != TOLK_OK) end_stream(s, st);
    }
    s->closed = 1;
    if (!s->ended) {
        maybe_update(s);
        if (!s->req && s->fin_len == 0) end_stream(s, TOLK_OK);
    }
    pthread_mutex_unlock(&s->mu);
    deliver(s);
    return st;
}

tolk_status tolk_stream_wait(tolk_stream *s) {
    if (!s) return TOLK_ERR_INVALID_ARG;
    pthread_mutex_lock(&s->mu);
    while (!(s->ended && s->end_delivered && !s->delivering))
        pthread_cond_wait(&s->cv, &s->mu);
    tolk_status st = s->end_status;
    pthread_mutex_unlock(&s->mu);
    return st;
}

const char *tolk_stream_last_error(const tolk_stream *s) {
    return s ? tolk_ctx_last_error(s->ctx) : "";
}

void tolk_stream_get_stats(const tolk_stream *s, tolk_stream_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    *out = s->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

/* ---- open / free ----------------------------------------------------------------- */

static void stream_destroy(tolk_stream *s) {
    if (s->gate.free) s->gate.free(s->gate.impl);
    if (s->soxr) soxr_delete(s->soxr);
    for (int i = 0; i < s->n_ev; i++)
        free(s->evq[i].text);
    free(s->evq);
    tolk_sp_reset(&s->sps);
    free(s->partial);
    free(s->ctok);
    free(s->buf);
    free(s->mono);
    free(s->rs);
    free(s->s_language);
    free(s->s_suppress);
    tolk_ctx_free(s->ctx);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void tolk_stream_free(tolk_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->freeing = 1;
    if (s->req) tolk_request_cancel(s->req);
    while (s->req || s->delivering || s->hooks)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    stream_destroy(s);
}

/* The initial prompt's tokens (" " + text, stripped) become the prompt. */
static tolk_status initial_prompt(tolk_stream *s, const char *text) {
    size_t a = 0, b = strlen(text);
    while (a < b && (text[a] == ' ' || (text[a] >= '\t' && text[a] <= '\r')))
        a++;
    while (b > a && (text[b - 1] == ' ' || (text[b - 1] >= '\t' && text[b - 1] <= '\r')))
        b--;
    char *t = malloc(b - a + 2);
    if (!t) return tolk_fail(s->ctx, TOLK_ERR_NOMEM, "stream: out of memory");
    t[0] = ' ';
    memcpy(t + 1, text + a, b - a);
    t[b - a + 1] = '\0';
    int *ids = NULL;
    size_t n = 0;
    tolk_status st = tolk_tokenizer_encode(s->asr->tok, t, b - a + 1, &ids, &n);
    free(t);
    if (st != TOLK_OK) return tolk_fail(s->ctx, st, "stream: cannot encode the initial prompt");
    size_t keep = n > MAX_PROMPT ? MAX_PROMPT : n;
    memcpy(s->ptok, ids + (n - keep), keep * sizeof(int));
    s->n_ptok = (int)keep;
    tolk_free(ids);
    return TOLK_OK;
}

tolk_status tolk_stream_open(tolk_engine *e, const tolk_stream_params *params, tolk_stream **out) {
    if (!out) return TOLK_ERR_INVALID_ARG;
    *out = NULL;
    if (!e) return TOLK_ERR_INVALID_ARG;
    tolk_ctx *ectx = tolk_engine_caller_ctx(e);
    tolk_stream_params p = params ? *params : tolk_stream_default_params();
    tolk_status st = check_params(ectx, &p);
    if (st != TOLK_OK) return st;
    if (!tolk_engine_has_thread(e))
        return tolk_fail(ectx, TOLK_ERR_INVALID_ARG,
                         "stream: the engine must run its own thread (params.background = 1)");
    tolk_stream *s = calloc(1, sizeof *s);
    if (!s) return tolk_fail(ectx, TOLK_ERR_NOMEM, "stream: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->onset_len = NO_ONSET;
    s->e = e;
    s->asr = tolk_engine_asr(e);
    s->p = p;
    st = tolk_ctx_new(&ectx->params, &s->ctx);
    if (st == TOLK_OK && !s->asr) st = TOLK_ERR_INVALID_ARG;
    if (st == TOLK_OK) {
        const tolk_transcribe_params *tp = &p.transcribe;
        if ((tp->language && !(s->s_language = strdup(tp->language))) ||
            !(s->s_suppress = strdup(tp->suppress_tokens ? tp->suppress_tokens : "-1")))
            st = TOLK_ERR_NOMEM;
        s->p.transcribe.language = s->s_language;
        s->p.transcribe.suppress_tokens = s->s_suppress;
        s->p.transcribe.initial_prompt = NULL;
        s->p.transcribe.prefix = NULL;
        s->p.transcribe.clip_timestamps = NULL;
        if (st == TOLK_OK && tp->language && *tp->language && s->asr->multilingual &&
            tolk_tokenizer_lang_token(s->asr->tok, tp->language) < 0)
            st = tolk_fail(s->ctx, TOLK_ERR_INVALID_ARG, "stream: unknown language '%s'",
                           tp->language);
        if (st == TOLK_OK && tp->initial_prompt && *tp->initial_prompt)
            st = initial_prompt(s, tp->initial_prompt);
        if (st == TOLK_OK && s->n_ptok > p.prompt_tokens) {
            memmove(s->ptok, s->ptok + (s->n_ptok - p.prompt_tokens),
                    (size_t)p.prompt_tokens * sizeof(int));
            s->n_ptok = p.prompt_tokens;
        }
    }
    if (st == TOLK_OK) {
        if (p.gate == TOLK_STREAM_GATE_NONE)
            st = tolk_gate_none_new(&s->gate);
        else if (p.gate == TOLK_STREAM_GATE_SILERO || (p.gate == TOLK_STREAM_GATE_AUTO && p.vad))
            st = tolk_gate_silero_new(&s->gate, s->ctx, p.vad);
        else
            st = tolk_gate_energy_new(&s->gate);
    }
    if (st == TOLK_OK && p.sample_rate != SR) {
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        soxr_runtime_spec_t rt = soxr_runtime_spec(1);
        soxr_error_t err = NULL;
        s->soxr = soxr_create((double)p.sample_rate, (double)SR, 1, &err, &io, &q, &rt);
        if (err || !s->soxr) st = TOLK_ERR_NOMEM;
    }
    if (st != TOLK_OK) {
        tolk_fail(ectx, st, "stream: cannot open: %s",
                  s->ctx && *tolk_ctx_last_error(s->ctx) ? tolk_ctx_last_error(s->ctx)
                                                         : tolk_strerror(st));
        stream_destroy(s);
        return st;
    }
    s->trk.pause_chunks = (int)ceil(p.pause_s * SR / TOLK_GATE_CHUNK);
    s->pol = (tolk_sp_policy){.fast = p.policy == TOLK_STREAM_FAST,
                              .n = p.agreement,
                              .margin = p.margin_s,
                              .min_prob = p.min_prob,
                              .gap = p.agreement_gap_s};
    *out = s;
    return TOLK_OK;
}

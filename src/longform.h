/*
 * longform.h — one request's long-form transcription (openai-whisper's
 * transcribe() loop) as a resumable state machine: it never calls the
 * network, it says what it needs next — a mel window encoded into its
 * window slot, a decoder step of its sequences, more live audio — and is
 * told when that is done. The engine (engine.c) runs many of them at once,
 * sharing each encoder batch and decoder step; the blocking
 * tolk_transcribe is that engine with one request.
 *
 *     tolk_lf_ask ask;
 *     for (;;) {
 *         tolk_lf_next(lf, &ask);                    // status, then ask.need:
 *         ENCODE: encode ask.mel into the request's window slot; tolk_lf_encoded(lf)
 *         STEP:   run ask.step (decode.h: its sequences are the request's); tolk_lf_feed(lf)
 *         ALIGN:  run ask.align against the window slot (word timestamps:
 *                 tolk_net_align); tolk_lf_aligned(lf)
 *         AUDIO:  wait for more live samples (or their end), then next again
 *         DONE:   tolk_lf_take_result(lf, &res)
 *     }
 */
#ifndef TOLK_LONGFORM_H
#define TOLK_LONGFORM_H

#include "asr.h"
#include "melwin.h"
#include "result.h"
#include "words.h"

typedef enum tolk_lf_need {
    TOLK_LF_ENCODE = 1, /* encode ask.mel, then tolk_lf_encoded */
    TOLK_LF_STEP = 2,   /* run ask.step, then tolk_lf_feed */
    TOLK_LF_AUDIO = 3,  /* live input: more samples are needed (ask.audio_wanted) */
    TOLK_LF_DONE = 4,   /* finished: tolk_lf_take_result */
    TOLK_LF_ALIGN = 5   /* word timestamps: run ask.align on the request's
                           window slot (tolk_net_align), then tolk_lf_aligned */
} tolk_lf_need;

typedef struct tolk_lf_ask {
    tolk_lf_need need;
    const float *mel;       /* ENCODE: [n_mels, 3000], valid until tolk_lf_encoded */
    int audio_ctx;          /* ENCODE: encoder positions to run (n_audio_ctx, or the
                               input's one_window audio_ctx) */
    tolk_dec_ask step;      /* STEP: local sequences 0 .. tolk_lf_max_seqs - 1 */
    size_t audio_wanted;    /* AUDIO: input samples needed before it can go on */
    tolk_words_align align; /* ALIGN: the pass (buffers owned by the machine) */
} tolk_lf_ask;

/* What a request runs against (all borrowed; they outlive the machine). */
typedef struct tolk_lf_env {
    tolk_ctx *ctx;           /* the request's messages */
    const tolk_asr *asr;     /* tokenizer, special ids, mel front end */
    const tolk_model *model; /* its alignment heads (word timestamps) */
    tolk_dec_backend seqs;   /* n_vocab, max_seqs >= tolk_lf_max_seqs, reset (binds a
                                sequence to the request's window) and copy */
    int can_select;          /* steps may ask for selections (decode.h) */
    tolk_timings *timings;   /* audio, mel and search stages, windows, tokens; may be NULL */
} tolk_lf_env;

/* The input of a request. */
typedef enum tolk_lf_input_kind {
    TOLK_LF_MEMORY = 0, /* samples (borrowed, outlive the machine) */
    TOLK_LF_FILE = 1,   /* a file path (opened at once, read twice) */
    TOLK_LF_LIVE = 2    /* a live input (borrowed) */
} tolk_lf_input_kind;

typedef struct tolk_lf_input {
    tolk_lf_input_kind kind;
    const float *samples;
    size_t n_samples;
    const char *path;
    tolk_live *live;
    int detect_only;        /* identify the language of the first window, then stop */
    tolk_input_facts facts; /* MEMORY decoded from a file (stdin): its truncation */
    /* One window (a live stream's update, stream.c): decode the first 30 s
     * of the input once — no seek loop, no segments — and keep the raw
     * result (tolk_lf_window_result). The encoder runs over audio_ctx
     * positions (0: all n_audio_ctx). prompt_tokens (NULL: the
     * initial_prompt parameter) follow <|startofprev|>; prefix_tokens
     * (NULL: the prefix parameter) are forced after the SOT sequence and,
     * with timestamps, seen by the timestamp rules as already sampled, so
     * a hypothesis continues an earlier one, timestamps included. Token
     * arrays are copied by tolk_lf_new. */
    int one_window;
    int audio_ctx;
    int max_timestamp; /* > 0: the last timestamp index (0.02 s steps) the decode may
                          choose: where the input's audio ends; 0: any */
    int close_prefix;  /* 1: the first sampled token is a timestamp closing the prefix's
                          segment (timestamps on, a prefix given): where its text ends */
    const int *prompt_tokens;
    size_t n_prompt_tokens;
    const int *prefix_tokens;
    size_t n_prefix_tokens;
} tolk_lf_input;

typedef struct tolk_lf tolk_lf;

/* Validate the parameters and open the input (a missing file fails here).
 * p is copied, its strings are used during this call only. *out:
 * tolk_lf_free. */
tolk_status tolk_lf_new(const tolk_lf_env *env, const tolk_transcribe_params *p,
                        const tolk_lf_input *in, tolk_lf **out);
void tolk_lf_free(tolk_lf *lf);

/* The sequences the request uses at most at once (beam size, best_of). */
int tolk_lf_max_seqs(const tolk_lf *lf);

/* Advance until the machine needs something; *ask says what. A failure
 * (bad input, cancellation by the progress callback) ends the request. */
tolk_status tolk_lf_next(tolk_lf *lf, tolk_lf_ask *ask);
/* The asked window is encoded / the asked step's results are written /
 * the asked alignment pass filled its buffers. */
tolk_status tolk_lf_encoded(tolk_lf *lf);
tolk_status tolk_lf_feed(tolk_lf *lf);
tolk_status tolk_lf_aligned(tolk_lf *lf);

/* Segments made final so far (the result's records, owned by lf; grows). */
int tolk_lf_n_segments(const tolk_lf *lf);
const tolk_seg_rec *tolk_lf_segment(const tolk_lf *lf, int i);

/* After language identification ran: the probabilities of the model's
 * languages in token order (probs [100]); *n = 0 when it did not run. */
void tolk_lf_language_probs(const tolk_lf *lf, float *probs, int *n);

/* After DONE of a one_window input: its decode (tokens after the forced
 * prefix, EOT excluded; their log-probabilities; no-speech probability,
 * average log-probability, temperature, text) moved into *out (cleared
 * in lf; tolk_dec_result_clear), and *skipped = whether the no-speech rule
 * of transcribe() would skip the window. TOLK_ERR_INTERNAL otherwise. */
tolk_status tolk_lf_window_result(tolk_lf *lf, tolk_dec_result *out, int *skipped);

/* After DONE: the result (*out owned by the caller, tolk_result_free). */
tolk_status tolk_lf_take_result(tolk_lf *lf, tolk_result **out);

#endif /* TOLK_LONGFORM_H */

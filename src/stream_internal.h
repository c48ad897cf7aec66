/*
 * stream_internal.h — the parts of a live stream (tolk.h's tolk_stream)
 * that stream.c assembles, each testable alone:
 *   - the speech gate (stream_gate.c): a source of speech probabilities
 *     per 512-sample chunk (32 ms at 16 kHz) behind a small interface
 *     (an adaptive energy gate, the Silero VAD model, or none), and the
 *     utterance tracker that turns probabilities into speech / pause;
 *   - the hypothesis words and the commit policies (stream_policy.c):
 *     LocalAgreement-n and tolk's fast policy, pure functions of token
 *     sequences, so the never-retract and monotonic-time properties are
 *     tested without a model (tests/test_stream.c).
 */
#ifndef TOLK_STREAM_INTERNAL_H
#define TOLK_STREAM_INTERNAL_H

#include "asr.h"

#include <stddef.h>

/* ---- speech gate ----------------------------------------------------------- */

#define TOLK_GATE_CHUNK 512 /* samples per decision (silero-vad's 16 kHz chunk) */

/* A source of speech probabilities: push samples of any count, one
 * probability in [0, 1] per completed chunk of TOLK_GATE_CHUNK samples
 * (the remainder waits for the next push). */
typedef struct tolk_gate {
    void *impl;
    /* probs: room for (pending + n) / TOLK_GATE_CHUNK values; *n_probs set */
    tolk_status (*push)(void *impl, tolk_ctx *ctx, const float *x, size_t n, float *probs,
                        size_t *n_probs);
    void (*free)(void *impl);
} tolk_gate;

/* The adaptive energy gate: a chunk's level in dBFS against a tracked
 * noise floor (starts at most at -50 dBFS, falls at once to a quieter
 * chunk, rises 1 dB/s) — speech
 * from 9 dB above the floor (probability 0.5) and never below -60 dBFS.
 * *g is filled (g->free releases it). TOLK_ERR_NOMEM on failure. */
tolk_status tolk_gate_energy_new(tolk_gate *g);
/* The Silero VAD gate: vad's probabilities (a tolk_vad_stream of it; vad
 * must outlive the gate). TOLK_ERR_INVALID_ARG without a model,
 * TOLK_ERR_NOMEM on failure (messages on ctx). */
tolk_status tolk_gate_silero_new(tolk_gate *g, tolk_ctx *ctx, const tolk_vad *vad);
/* A gate that calls everything speech (probability 1). */
tolk_status tolk_gate_none_new(tolk_gate *g);

/* Speech / pause from chunk probabilities (silero-vad's hysteresis): speech
 * starts at a chunk >= 0.5, a pause is pause_chunks consecutive chunks
 * < 0.35. */
typedef struct tolk_gate_track {
    int speech;       /* inside an utterance */
    int quiet;        /* consecutive chunks < 0.35 inside it */
    int pause_chunks; /* quiet chunks that end it */
} tolk_gate_track;

typedef enum {
    TOLK_GATE_SILENCE = 0, /* outside speech */
    TOLK_GATE_ONSET = 1,   /* this chunk starts an utterance */
    TOLK_GATE_SPEECH = 2,  /* inside one (short silences included) */
    TOLK_GATE_PAUSE = 3    /* this chunk completes the pause that ends it */
} tolk_gate_event;

tolk_gate_event tolk_gate_track_chunk(tolk_gate_track *t, float prob);

/* ---- hypothesis words ------------------------------------------------------ */

/* One word of a hypothesis' uncommitted tail: its text tokens [a, b) of the
 * tail (a leading space starts a word; timestamps separate words), the
 * closing timestamp right after it (index in the tail, or -1), its text,
 * the least probability of its tokens, and estimated times in seconds
 * from the buffer start: the words of a segment share its time span in
 * proportion to their bytes (an open last segment ends at the audio's
 * end). */
typedef struct tolk_sp_word {
    int a, b;
    int ts_after;
    char *text; /* owned */
    float p_min;
    double start, end;
} tolk_sp_word;

typedef struct tolk_sp_hyp {
    tolk_sp_word *w; /* owned */
    int n_w;
    double heard; /* seconds of input heard when it was decoded (the audio's end,
                     from the start of the stream; tolk_sp_decide's gap) */
} tolk_sp_hyp;

/* Words of the tail [n_tail] (its log-probabilities lp, NULL: certain) of a
 * hypothesis whose forced prefix was prefix [n_prefix] (committed tokens,
 * timestamps relative to the buffer), over audio_s seconds of buffer. A
 * segment that opens less than 0.1 s before the audio's end (or after it)
 * has not been heard: the hypothesis ends before it. */
tolk_status tolk_sp_parse(tolk_ctx *ctx, const tolk_asr *asr, const int *prefix, int n_prefix,
                          const int *tail, const float *lp, int n_tail, double audio_s,
                          tolk_sp_hyp *out);
void tolk_sp_hyp_clear(tolk_sp_hyp *h);

/* Where a hypothesis starts to loop: the index of the first word of the
 * second occurrence of an n-gram (n = 1..4) that repeats back to back (a
 * word 4 times, longer n-grams 3 times), or h->n_w when it does not. Whisper
 * on too little audio, or after a bad prefix, repeats itself. */
int tolk_sp_loop_start(const tolk_sp_hyp *h);

/* Where a hypothesis starts to say again what was already said: the index
 * of the first word of h whose tokens begin a run of at least
 * TOLK_SP_REPEAT_TOKENS text tokens (timestamps skipped) of tail [n_tail]
 * that stands earlier, in the same order, in the text said before it —
 * prompt [n_prompt] (the previous utterances' text), committed
 * [n_committed] (the forced prefix), then the tail itself — or h->n_w when
 * none does. Whisper with a forced prefix sometimes closes the prefix's
 * sentence and then says the whole utterance once more; on a new utterance
 * it sometimes says its prompt again. */
#define TOLK_SP_REPEAT_TOKENS 10
/* ... or begins a block of at least TOLK_SP_ECHO_TOKENS text tokens that
 * repeats the block just before it back to back ("The horizon seems
 * extremely distant. The horizon seems extremely distant."), that block in
 * the tail or in the text said before it. */
#define TOLK_SP_ECHO_TOKENS 6
int tolk_sp_repeat_start(const tolk_sp_hyp *h, const int *tail, int n_tail, const int *prompt,
                         int n_prompt, const int *committed, int n_committed, int timestamp_begin);

/* Whether a word ends a sentence: ". ? !" last (closing quotes and
 * parentheses after them allowed), not a trailing off "..". */
int tolk_sp_ends_sentence(const char *word);

/* ---- commit policies ----------------------------------------------------- */

#define TOLK_SP_MAX_AGREE 8
#define TOLK_SP_HIST 16 /* tails remembered (LocalAgreement-8 with gaps of two updates) */

typedef struct tolk_sp_policy {
    int fast;       /* 1: tolk's fast policy; 0: LocalAgreement-n */
    int n;          /* LocalAgreement-n's n (fast: 2) */
    double margin;  /* fast: seconds a word must end before the audio's end;
                       both: an agreed LAST word of the hypothesis too */
    float min_prob; /* fast: least token probability */
    double gap;     /* LocalAgreement: seconds of audio between the hypotheses compared */
} tolk_sp_policy;

/* The uncommitted tails of the last hypotheses (word texts, and what had
 * been heard then), newest first. */
typedef struct tolk_sp_state {
    char **prev[TOLK_SP_HIST];
    int n_prev[TOLK_SP_HIST];
    double heard[TOLK_SP_HIST];
    int n_hist;
} tolk_sp_state;

/* How many words of h to commit now (a prefix of its words): every word
 * when final (the end of an utterance); else LocalAgreement-n — the
 * longest common prefix of h and n - 1 previous tails, each heard at
 * least p->gap seconds before the next newer one of them (h the newest;
 * tails in between are passed over), none before there are such n - 1,
 * less an agreed last word of h that ends within margin of
 * audio_s or ends with a sentence end, a trailing off or a cut (". ? ! -
 * ... — ": what Whisper writes where the audio stops; it waits for the
 * next word or the end of the utterance) — extended, for the fast policy,
 * over the following words that are not the last, whose tokens all have
 * probability >= min_prob and that end at least margin before audio_s. */
int tolk_sp_decide(const tolk_sp_policy *p, const tolk_sp_state *st, const tolk_sp_hyp *h,
                   double audio_s, int final);
/* Record h after its first k words were committed: its other words become
 * the newest previous tail; older tails lose their first k words when they
 * agree with them, else they are dropped. TOLK_ERR_NOMEM on failure (the
 * state is then empty). */
tolk_status tolk_sp_push(tolk_sp_state *st, const tolk_sp_hyp *h, int k);
/* Forget every hypothesis (a new utterance, a trimmed buffer keeps it). */
void tolk_sp_reset(tolk_sp_state *st);

#endif /* TOLK_STREAM_INTERNAL_H */

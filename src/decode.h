/*
 * decode.h — the search over decoder outputs: logit filters, greedy and
 * temperature sampling, beam search, best-of ranking, language
 * identification, and one 30 s window decoded with the temperature
 * fallback loop. Reproduces openai-whisper's decoding.py (DecodingTask,
 * GreedyDecoder, BeamSearchDecoder, MaximumLikelihoodRanker, SuppressBlank,
 * SuppressTokens, ApplyTimestampRules) and the decode_with_fallback rule of
 * transcribe.py.
 *
 * The search never calls the network directly: it asks a "logits provider"
 * (tolk_dec_backend) to feed tokens to numbered sequences and return the
 * logits of the last fed token of each. The real provider is the engine
 * (engine.c), which batches the steps of all requests over its KV pool
 * (tolk_net_decode / tolk_net_decode_select); unit tests use a fake one
 * that computes logits from the token history, so every search is
 * testable without weights.
 *
 * Shapes: logits [n_seqs, n_vocab] float32, row-major.
 */
#ifndef TOLK_DECODE_H
#define TOLK_DECODE_H

#include "internal.h"
#include "weights.h"

#include <stdint.h>

/* Special token ids of a model's vocabulary (openai-whisper Tokenizer). A
 * field is -1 when the vocabulary lacks the token. */
typedef struct tolk_dec_tokens {
    int n_vocab;
    int eot;             /* <|endoftext|> */
    int sot;             /* <|startoftranscript|> */
    int sot_prev;        /* <|startofprev|> */
    int sot_lm;          /* <|startoflm|> */
    int no_speech;       /* <|nospeech|> or <|nocaptions|> */
    int no_timestamps;   /* <|notimestamps|> */
    int timestamp_begin; /* <|0.00|>; timestamps run to n_vocab - 1 */
    int transcribe;      /* <|transcribe|> */
    int translate;       /* <|translate|> */
    int blank;           /* the token of " " (suppress_blank), 220 */
    const int *lang_ids; /* n_languages language tokens (not owned), or NULL */
    int n_languages;
} tolk_dec_tokens;

/* The selection a step_select call makes per row (HOST arrays; select.h):
 * the mask pairs range_off[r] .. range_off[r + 1] - 1 of ranges, the
 * timestamp rule from ts_begin (0: off), and k tokens. */
typedef struct tolk_dec_select {
    const int *range_off; /* [n_seqs + 1] */
    const int *ranges;    /* [2 * range_off[n_seqs]] lo, hi pairs */
    int ts_begin;
    int k; /* 1: argmax; 2..TOLK_SELECT_MAX_K: top-k of the log-softmax */
} tolk_dec_select;

/* The logits provider. Sequences are numbered 0..max_seqs-1 (slots).
 *   step:  feed n_tokens[i] tokens (tokens[i]) to sequence seqs[i] for each
 *          of the n_seqs sequences, append them to that sequence's history,
 *          and write the logits of the last fed token of each sequence to
 *          logits[i * n_vocab ...]. Returns a status (the provider sets the
 *          ctx message).
 *   reset: empty a sequence's history.
 *   copy:  make dst's history a copy of src's (beam reordering).
 *   step_select: see below. */
typedef struct tolk_dec_backend {
    void *user;
    int n_vocab;
    int max_seqs;
    tolk_status (*step)(void *user, const int *seqs, int n_seqs, const int *const *tokens,
                        const int *n_tokens, float *logits);
    tolk_status (*reset)(void *user, int seq);
    tolk_status (*copy)(void *user, int dst, int src);
    /* Optional (NULL: the search filters the logits of step itself): feed
     * tokens as step does, then apply sel's masks and rules to each
     * sequence's logits where they are (on the GPU) and return only the
     * selection: out_idx / out_lp [n_seqs * sel->k] (tokens and their
     * log-softmax values, select.h). Used by greedy decoding and beam
     * search at temperature 0; equal to filtering the logits of step. */
    tolk_status (*step_select)(void *user, const int *seqs, int n_seqs, const int *const *tokens,
                               const int *n_tokens, const tolk_dec_select *sel, int *out_idx,
                               float *out_lp);
} tolk_dec_backend;

/* Text of tokens (text tokens only; ids >= eot skipped), as a new
 * NUL-terminated UTF-8 string the caller frees with free(); NULL on
 * allocation failure. Used for the compression ratio. */
typedef char *(*tolk_dec_text_fn)(void *user, const int *tokens, int n_tokens);

/* Options of one decode (openai-whisper DecodingOptions, resolved). */
typedef struct tolk_dec_options {
    float temperature;    /* 0: argmax / beam search; > 0: sampling */
    int sample_len;       /* maximum tokens sampled (n_text_ctx / 2) */
    int n_ctx;            /* n_text_ctx (448): stop when the context is longer */
    int beam_size;        /* >= 1 at temperature 0: beam search; 0: greedy */
    int best_of;          /* >= 1 at temperature > 0: independent samples */
    float patience;       /* beam search patience (1.0) */
    float length_penalty; /* < 0: plain length normalisation; else GNMT alpha */
    int suppress_blank;   /* suppress " " and EOT at the first sampled position */
    const int *suppress;  /* ids suppressed at every step (not owned) */
    int n_suppress;
    int timestamps;                  /* 1: apply the timestamp rules */
    int max_initial_timestamp_index; /* < 0: no limit; else the last allowed first index */
    uint64_t *rng;                   /* sampling state (xorshift64*), updated; required at T > 0 */
    int ts_prefix;           /* the last ts_prefix initial tokens (a forced prefix after the SOT
                                sequence) count as already sampled for the timestamp rules: a
                                stream continues its earlier hypothesis, timestamps included.
                                0 (openai-whisper): the rules start after the initial tokens */
    int max_timestamp_index; /* > 0: timestamps after <|t|> with t = this index are never
                                chosen (a stream's window holds audio only that far);
                                0: all (openai-whisper) */
    int first_timestamp;     /* 1: the first sampled token is a timestamp (closing the forced
                                prefix's segment: where its text ends); 0 (openai-whisper): free */
} tolk_dec_options;

/* Result of one decode. */
typedef struct tolk_dec_result {
    int *tokens;     /* sampled tokens between sample_begin and the first EOT (owned) */
    float *logprobs; /* per-token log-probabilities of tokens (owned) */
    int n_tokens;
    double sum_logprob;   /* including the EOT step when it was sampled */
    float avg_logprob;    /* sum_logprob / (n_tokens + 1) */
    float no_speech_prob; /* softmax at the SOT position, NaN without a no-speech token */
    float temperature;
    float compression_ratio;
    char *text; /* decoded text, whitespace-stripped (owned) */
} tolk_dec_result;

void tolk_dec_result_clear(tolk_dec_result *r);

/* ---- logit filters (decode_filters.c) ----------------------------------- */

/* A set of resolved filter settings shared by all steps of a decode. */
typedef struct tolk_dec_filter {
    const tolk_dec_tokens *tok;
    int sample_begin; /* length of the initial tokens */
    int suppress_blank;
    const int *suppress;
    int n_suppress;
    int timestamps;
    int max_initial_timestamp_index; /* < 0: none */
    const int *ts_prefix;            /* tokens the timestamp rules see before the sampled ones */
    int n_ts_prefix;                 /* (tolk_dec_options.ts_prefix; 0: none) */
    int max_timestamp_index;         /* > 0: later timestamps masked (tolk_dec_options) */
    int first_timestamp;             /* the first sampled token is a timestamp (tolk_dec_options) */
} tolk_dec_filter;

/* Apply, in place, the filters to the logits [n_vocab] of one sequence whose
 * sampled tokens so far are sampled[0..n_sampled) (the tokens after the
 * initial ones): SuppressBlank, SuppressTokens, ApplyTimestampRules, in the
 * reference's order. Masked entries become -INFINITY. */
void tolk_dec_apply_filters(const tolk_dec_filter *f, float *logits, const int *sampled,
                            int n_sampled);

/* The same masks as pairs [lo, hi) (2 ints a pair) for step_select: at
 * most tolk_dec_filter_max_ranges(f) pairs are written to ranges (cap
 * pairs); returns the number of pairs (> cap: ranges was too small). A
 * single token next to the previous pair extends it. The
 * probability-mass test of the timestamp rules is not a mask: it runs
 * where the logits are, from tolk_dec_filter_ts_begin(f). */
int tolk_dec_filter_ranges(const tolk_dec_filter *f, const int *sampled, int n_sampled, int *ranges,
                           int cap);
int tolk_dec_filter_max_ranges(const tolk_dec_filter *f);
/* timestamp_begin when the timestamp rules apply, else 0. */
int tolk_dec_filter_ts_begin(const tolk_dec_filter *f);
/* ApplyTimestampRules' last rule on logits [nv] (already masked): when the
 * log of the summed probability of the timestamps [tb, nv) exceeds the
 * best text token's (in double), mask every text token [0, tb). */
void tolk_dec_timestamp_rule(float *logits, int nv, int tb);

/* log_softmax of x [n] into out [n] (may alias), in double accumulation;
 * -INFINITY entries stay -INFINITY. */
void tolk_dec_log_softmax(const float *x, int n, float *out);

/* Resolve a suppress_tokens option ("-1" = the model's non-speech set
 * plus specials, "" = specials only, "1,2,3") into a sorted unique list
 * (*out, free()), adding transcribe, translate, sot, sot_prev, sot_lm and
 * no_speech as the reference does. nonspeech: the non-speech set. */
tolk_status tolk_dec_resolve_suppress(tolk_ctx *ctx, const char *spec, const tolk_dec_tokens *tok,
                                      const int *nonspeech, int n_nonspeech, int **out, int *n_out);

/* ---- random numbers (decode_sample.c) ----------------------------------- */

/* xorshift64* seeded by splitmix64(seed); a uniform double in [0, 1). */
uint64_t tolk_rng_seed(uint64_t seed);
double tolk_rng_uniform(uint64_t *state);

/* Sample an index from softmax(logits / temperature) over [n]. */
int tolk_dec_sample(const float *logits, int n, float temperature, uint64_t *rng);

/* ---- one decode of one window as a resumable state machine ------------- */
/*
 * A search never blocks on the network: it says which sequences it wants
 * stepped ("ask") and is handed the results ("feed"), so one engine can
 * gather the asks of many searches into one decoder step (engine.c). The
 * blocking tolk_dec_decode below drives one search alone through a
 * tolk_dec_backend: the same code path, so the fake-decoder tests cover
 * both uses.
 *
 *     tolk_dec_search *s;  tolk_dec_ask ask;  int asked;
 *     tolk_dec_search_new(..., &s);
 *     while (tolk_dec_search_next(s, &ask, &asked) == TOLK_OK && asked) {
 *         ... run ask (write ask.logits, or ask.idx / ask.lp) ...
 *         tolk_dec_search_feed(s);
 *     }
 *     tolk_dec_search_finish(s, &res);  tolk_dec_search_free(s);
 */

/* One decoder step a search (or a window decode) asks for. For each of the
 * n_seqs sequences seqs[i] (numbers local to the search, 0 .. its group
 * size - 1) feed tokens[i][0 .. n_tokens[i]) and write, for the last fed
 * token of each, either the logits into logits [n_seqs, n_vocab] (k == 0)
 * or sel's selection into idx / lp [n_seqs * k] (k >= 1; select.h). The
 * arrays belong to the search and stay valid until the next feed. */
typedef struct tolk_dec_ask {
    int n_seqs;
    const int *seqs;
    const int *const *tokens;
    const int *n_tokens;
    int k;               /* 0: logits wanted; 1..TOLK_SELECT_MAX_K: selection */
    tolk_dec_select sel; /* k >= 1: the masks and rule of each row (sel.k == k) */
    float *logits;       /* k == 0: [n_seqs, n_vocab] destination */
    int *idx;            /* k >= 1: [n_seqs * k] destination */
    float *lp;           /* k >= 1: [n_seqs * k] destination */
} tolk_dec_ask;

typedef struct tolk_dec_search tolk_dec_search;

/* Start one decode of one window: initial [n_initial] tokens (prompt, SOT
 * sequence, prefix; initial[sot_index] == sot) are fed to sequence 0, the
 * logits at the SOT position give no_speech_prob; then greedy (beam_size
 * <= 1 at T = 0), beam search (beam_size >= 2 at T = 0) or best-of
 * sampling (T > 0). be: n_vocab and max_seqs (>= the group size), and
 * reset / copy, which the search calls at once (they only queue work);
 * its step functions are not used. can_select: the asker can run
 * selections (then temperature-0 steps ask for them instead of logits).
 * text_fn (may be NULL) gives the result its text and compression ratio.
 * initial is copied; opt->suppress and opt->rng must outlive the search.
 * *out: tolk_dec_search_free. */
tolk_status tolk_dec_search_new(tolk_ctx *ctx, const tolk_dec_backend *be,
                                const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                int sot_index, const tolk_dec_options *opt, int can_select,
                                tolk_dec_text_fn text_fn, void *text_user, tolk_dec_search **out);
/* The next step the search needs: *asked = 1 and *ask filled, or *asked =
 * 0 when the search is finished (or failed: the status of that failure). */
tolk_status tolk_dec_search_next(tolk_dec_search *s, tolk_dec_ask *ask, int *asked);
/* The asked step ran and its results are in the ask's arrays: advance. */
tolk_status tolk_dec_search_feed(tolk_dec_search *s);
/* After the last ask: the result (*res filled; tolk_dec_result_clear). */
tolk_status tolk_dec_search_finish(tolk_dec_search *s, tolk_dec_result *res);
void tolk_dec_search_free(tolk_dec_search *s);

/* Run a state machine's asks through be until it is finished: next/feed
 * as tolk_dec_search_next/feed (m is the machine). Steps with k == 0 use
 * be->step, the others be->step_select. */
typedef tolk_status (*tolk_dec_next_fn)(void *m, tolk_dec_ask *ask, int *asked);
typedef tolk_status (*tolk_dec_feed_fn)(void *m);
tolk_status tolk_dec_drive(tolk_ctx *ctx, const tolk_dec_backend *be, void *m,
                           tolk_dec_next_fn next, tolk_dec_feed_fn feed);

/* The blocking form: one search driven through be alone (be->step_select
 * used at temperature 0 when present). *res is filled (clear it with
 * tolk_dec_result_clear); its text and compression ratio are set when
 * text_fn is not NULL. Sequences 0..group-1 of be are used. */
tolk_status tolk_dec_decode(tolk_ctx *ctx, const tolk_dec_backend *be, const tolk_dec_tokens *tok,
                            const int *initial, int n_initial, int sot_index,
                            const tolk_dec_options *opt, tolk_dec_text_fn text_fn, void *text_user,
                            tolk_dec_result *res);

/* The sequences a decode with opt uses at once: beam_size at T = 0 with
 * beam search, best_of when sampling, else 1. */
int tolk_dec_group_size(const tolk_dec_options *opt);

/* Rank finished candidates (MaximumLikelihoodRanker): the index of the best
 * sum_logprob[i] / penalty(lengths[i]), first on ties. */
int tolk_dec_rank(const double *sum_logprobs, const int *lengths, int n, float length_penalty);

/* The selection of one step for n rows with the token histories hist[i]
 * [0 .. hist_len[i]) (each ending with the fed token): each row's masks
 * from f into ranges (capacity n * tolk_dec_filter_max_ranges(f) pairs),
 * offsets into off [n + 1], and *sel = {off, ranges, ts rule of f, k}. */
void tolk_dec_fill_select(const tolk_dec_filter *f, int n, const int *const *hist,
                          const int *hist_len, int k, int *off, int *ranges, tolk_dec_select *sel);

/* ---- language identification (decode_lang.c) ---------------------------- */

/* One decoder step of [sot] on sequence 0 of be, softmax over the language
 * tokens only. probs [tok->n_languages] in the order of tok->lang_ids;
 * *best the index of the most probable (first on ties). */
tolk_status tolk_dec_detect_language(tolk_ctx *ctx, const tolk_dec_backend *be,
                                     const tolk_dec_tokens *tok, float *probs, int *best);

/* Softmax over the language entries of logits [n_vocab] (exposed for tests). */
void tolk_dec_language_probs(const float *logits, const tolk_dec_tokens *tok, float *probs,
                             int *best);

/* ---- fallback loop (decode_window.c) ------------------------------------ */

typedef struct tolk_dec_fallback {
    const float *temperatures;
    int n_temperatures;
    float compression_ratio_threshold; /* <= 0: off */
    float logprob_threshold;           /* -INFINITY: off */
    float no_speech_threshold;         /* <= 0: off */
} tolk_dec_fallback;

/* A window decoded with the temperature fallback of transcribe(), as a
 * resumable state machine (the same ask / feed protocol as a search): for
 * each temperature, a search (beam / greedy at 0, best_of sampling above),
 * accepted unless the compression ratio is above its threshold or the
 * average log-probability below its threshold (but "silence" is accepted:
 * no_speech_prob above its threshold with a low log-probability). The last
 * attempt is the result when all fail. base: options whose temperature is
 * replaced; fb's arrays must outlive the machine. */
typedef struct tolk_dec_window tolk_dec_window;
tolk_status tolk_dec_window_new(tolk_ctx *ctx, const tolk_dec_backend *be,
                                const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                int sot_index, const tolk_dec_options *base,
                                const tolk_dec_fallback *fb, int can_select,
                                tolk_dec_text_fn text_fn, void *text_user, tolk_dec_window **out);
tolk_status tolk_dec_window_next(tolk_dec_window *w, tolk_dec_ask *ask, int *asked);
tolk_status tolk_dec_window_feed(tolk_dec_window *w);
/* After the last ask: the accepted (or last) result. */
tolk_status tolk_dec_window_finish(tolk_dec_window *w, tolk_dec_result *res);
void tolk_dec_window_free(tolk_dec_window *w);
/* The largest group of sequences any attempt of the schedule uses. */
int tolk_dec_window_max_group(const tolk_dec_options *base, const tolk_dec_fallback *fb);

/* The blocking form: the window machine driven through be alone
 * (tolk_dec_drive; be->step_select used at temperature 0 when present). */
tolk_status tolk_dec_decode_fallback(tolk_ctx *ctx, const tolk_dec_backend *be,
                                     const tolk_dec_tokens *tok, const int *initial, int n_initial,
                                     int sot_index, const tolk_dec_options *base,
                                     const tolk_dec_fallback *fb, tolk_dec_text_fn text_fn,
                                     void *text_user, tolk_dec_result *res);

/* Whether a result needs the next temperature under fb (the reference's rule). */
int tolk_dec_needs_fallback(const tolk_dec_fallback *fb, const tolk_dec_result *r);

/* ---- compression ratio (compress.c) ------------------------------------- */

/* len(utf8) / len(zlib.compress(utf8)) with zlib's default level, as
 * openai-whisper's compression_ratio(); 0 for empty text. Returns a
 * negative value when zlib fails. */
float tolk_compression_ratio(const char *text, size_t len);

#endif /* TOLK_DECODE_H */

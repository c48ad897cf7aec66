/*
 * decode_search.h — the inside of a search (decode.h's tolk_dec_search),
 * shared by decode_search.c (the SOT prefill, the no-speech probability,
 * the result's text) and its two bodies: decode_greedy.c (greedy / best-of
 * sampling) and decode_beam.c (beam search). Private to those files.
 *
 * A body is started with the first logits (after the initial tokens) and
 * then alternates: consume the results of a step, and either finish or
 * fill the next ask. Everything a body needs is allocated when it starts,
 * so asking never fails.
 */
#ifndef TOLK_DECODE_SEARCH_H
#define TOLK_DECODE_SEARCH_H

#include "decode.h"

typedef struct tolk_dec_greedy tolk_dec_greedy;
typedef struct tolk_dec_beam tolk_dec_beam;

struct tolk_dec_search {
    tolk_ctx *ctx;
    tolk_dec_backend be; /* n_vocab, max_seqs, reset, copy (a copy) */
    const tolk_dec_tokens *tok;
    tolk_dec_options opt;
    tolk_dec_filter f;
    int *initial; /* [n_initial] (owned copy) */
    int n_initial, sot_index;
    int can_select;
    tolk_dec_text_fn text_fn;
    void *text_user;
    int phase;       /* PH_* in decode_search.c */
    float *l1, *l2;  /* [n_vocab] logits at SOT / after the initial tokens */
    int seq0;        /* 0: the prefill's sequence */
    const int *p_tok; /* the prefill's tokens and count */
    int p_n;
    float no_speech_prob;
    tolk_dec_greedy *greedy; /* the body, one of the two */
    tolk_dec_beam *beam;
    tolk_status err; /* first failure; the search is dead after it */
};

/* Greedy / best-of body (decode_greedy.c). start: consume the first logits
 * [n_vocab]; ask: 1 and *ask filled while a step is wanted, else 0; feed:
 * consume the asked step's results; finish: the chosen candidate's tokens,
 * log-probabilities and sums into res. */
tolk_status tolk_dec_greedy_start(tolk_dec_search *s, const float *first);
int tolk_dec_greedy_ask(tolk_dec_greedy *g, tolk_dec_ask *ask);
tolk_status tolk_dec_greedy_feed(tolk_dec_search *s);
tolk_status tolk_dec_greedy_finish(tolk_dec_search *s, tolk_dec_result *res);
void tolk_dec_greedy_free(tolk_dec_greedy *g);

/* Beam search body (decode_beam.c), the same protocol. */
tolk_status tolk_dec_beam_start(tolk_dec_search *s, const float *first);
int tolk_dec_beam_ask(tolk_dec_beam *b, tolk_dec_ask *ask);
tolk_status tolk_dec_beam_feed(tolk_dec_search *s);
tolk_status tolk_dec_beam_finish(tolk_dec_search *s, tolk_dec_result *res);
void tolk_dec_beam_free(tolk_dec_beam *b);

#endif /* TOLK_DECODE_SEARCH_H */

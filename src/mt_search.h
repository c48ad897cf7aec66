/*
 * mt_search.h — greedy and beam search of a batch of sentences over the
 * translation network (mt_net.h), with the optional lexical shortlist
 * (mt_shortlist.h).
 *
 * Reference behaviour: marian-dev translator/beam_search.cpp and
 * history.h as Bergamot runs them, per sentence: the beam of each sentence
 * starts from one hypothesis, expands every live hypothesis over the
 * (shortlisted) vocabulary with log_softmax scores, keeps as many best
 * expansions as it has live hypotheses; a hypothesis ending in </s> is
 * final and shrinks the beam; <unk> is never chosen (allow-unk off); at
 * max-length-factor x source length (with </s>) every live hypothesis is
 * final; the result is the final hypothesis with the best score / length^
 * normalize (length counting </s>). Greedy is beam 1. The shortlist of a
 * sentence is its own (Bergamot: its batch's), so a sentence translates
 * the same whatever it is batched with.
 */
#ifndef TOLK_MT_SEARCH_H
#define TOLK_MT_SEARCH_H

#include "mt_net.h"
#include "mt_shortlist.h"

typedef struct tolk_mt_search_params {
    int beam;                /* 1 .. TOLK_SELECT_MAX_K (1: greedy) */
    float normalize;         /* length normalisation exponent (Marian "normalize", 1.0) */
    float max_length_factor; /* Marian "max-length-factor" (2.5) */
    const tolk_mt_shortlist *shortlist; /* NULL: the whole vocabulary */
    int shortlist_shared;               /* source ids join the shortlist (one shared vocabulary) */
    int eos_id, unk_id;                 /* target ids (unk_id -1: none) */
} tolk_mt_search_params;

/* Translate n sentences src[i] [len[i]] (target-vocabulary-independent
 * source ids, each ending with </s>) in one batch. out[i] (malloc'd, caller
 * frees) receives out_len[i] target ids without </s>. On failure nothing is
 * returned (every out[i] NULL). */
tolk_status tolk_mt_search(tolk_ctx *ctx, const tolk_mt_net *net, const tolk_mt_search_params *sp,
                           int n, const int *const *src, const int *len, int **out, int *out_len);

#endif /* TOLK_MT_SEARCH_H */

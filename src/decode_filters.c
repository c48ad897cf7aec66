/*
 * decode_filters.c — the logit filters of openai-whisper's decoding.py,
 * applied in its order to the logits of one sequence at one step:
 *   SuppressBlank        at the first sampled position: " " and EOT;
 *   SuppressTokens       the resolved suppress_tokens list, every step;
 *   ApplyTimestampRules  <|notimestamps|> never; timestamps in pairs except
 *                        right before EOT; timestamps never decrease (and a
 *                        segment has non-zero length); the first sampled
 *                        token is a timestamp no later than
 *                        max_initial_timestamp; when the probability mass of
 *                        all timestamps beats every single text token, a
 *                        timestamp is forced.
 * Also the log-softmax used for scores and the parsing of the
 * suppress_tokens option (DecodingTask._get_suppress_tokens).
 */
#include "decode.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void tolk_dec_log_softmax(const float *x, int n, float *out) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            out[i] = -INFINITY;
        return;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - (double)mx);
    double lse = (double)mx + log(sum);
    for (int i = 0; i < n; i++)
        out[i] = (float)((double)x[i] - lse);
}

/* Where the masks of one step go: stored as pairs (ranges != NULL) or
 * applied to logits at once. */
typedef struct mask_sink {
    int *ranges; /* 2 ints a pair, cap pairs */
    int cap;
    int n;         /* pairs emitted */
    float *logits; /* when ranges is NULL */
} mask_sink;

/* Emit the mask [lo, hi) (ignored when empty); a single token right after
 * the previous stored pair extends it. */
static void emit(mask_sink *k, int lo, int hi) {
    if (lo >= hi) return;
    if (!k->ranges) {
        for (int i = lo; i < hi; i++)
            k->logits[i] = -INFINITY;
        return;
    }
    if (k->n > 0 && k->n <= k->cap && k->ranges[2 * k->n - 1] == lo && hi == lo + 1) {
        k->ranges[2 * k->n - 1] = hi;
        return;
    }
    if (k->n < k->cap) {
        k->ranges[2 * k->n] = lo;
        k->ranges[2 * k->n + 1] = hi;
    }
    k->n++;
}

/* The masks of SuppressBlank, SuppressTokens and ApplyTimestampRules (all
 * but its probability-mass test) for a sequence whose sampled tokens are
 * sampled[0..n_sampled). */
static void filter_masks(const tolk_dec_filter *f, const int *sampled, int n_sampled,
                         mask_sink *k) {
    const tolk_dec_tokens *t = f->tok;
    const int nv = t->n_vocab;

    /* SuppressBlank */
    if (f->suppress_blank && n_sampled == 0) {
        if (t->blank >= 0 && t->blank < nv) emit(k, t->blank, t->blank + 1);
        if (t->eot >= 0 && t->eot < nv) emit(k, t->eot, t->eot + 1);
    }
    /* SuppressTokens */
    for (int i = 0; i < f->n_suppress; i++) {
        int id = f->suppress[i];
        if (id >= 0 && id < nv) emit(k, id, id + 1);
    }
    if (!f->timestamps) return;

    /* ApplyTimestampRules */
    const int tb = t->timestamp_begin;
    if (tb <= 0 || tb >= nv) return;
    if (t->no_timestamps >= 0 && t->no_timestamps < nv)
        emit(k, t->no_timestamps, t->no_timestamps + 1);

    /* the rules' view: a forced prefix (f->ts_prefix) continues as if sampled */
    const int np = f->n_ts_prefix > 0 && f->ts_prefix ? f->n_ts_prefix : 0, n = np + n_sampled;
#define TOK_AT(i) ((i) < np ? f->ts_prefix[i] : sampled[(i)-np])
    int last_ts = n >= 1 && TOK_AT(n - 1) >= tb;
    int penult_ts = n < 2 || TOK_AT(n - 2) >= tb;
    if (last_ts) {
        if (penult_ts)
            emit(k, tb, nv); /* must be text (or EOT) */
        else
            emit(k, 0, t->eot); /* must be a timestamp or EOT */
    }
    int last_timestamp = -1;
    for (int i = n - 1; i >= 0; i--)
        if (TOK_AT(i) >= tb) {
            last_timestamp = TOK_AT(i);
            break;
        }
#undef TOK_AT
    if (last_timestamp >= 0) {
        /* never decrease; after text, a closing timestamp must be later */
        int limit = (last_ts && !penult_ts) ? last_timestamp : last_timestamp + 1;
        if (limit > nv) limit = nv;
        emit(k, tb, limit);
    }
    if (f->max_timestamp_index > 0 && (long)tb + f->max_timestamp_index + 1 < nv)
        emit(k, tb + f->max_timestamp_index + 1, nv);
    if (f->first_timestamp && n_sampled == 0 && n > 0) emit(k, 0, tb);
    if (n == 0) {
        emit(k, 0, tb);
        if (f->max_initial_timestamp_index >= 0) {
            long last_allowed = (long)tb + f->max_initial_timestamp_index;
            if (last_allowed + 1 < nv) emit(k, (int)(last_allowed + 1), nv);
        }
    }
}

int tolk_dec_filter_max_ranges(const tolk_dec_filter *f) {
    return f->n_suppress + 10;
}

int tolk_dec_filter_ranges(const tolk_dec_filter *f, const int *sampled, int n_sampled, int *ranges,
                           int cap) {
    mask_sink k = {.ranges = ranges, .cap = cap, .n = 0, .logits = NULL};
    filter_masks(f, sampled, n_sampled, &k);
    return k.n;
}

int tolk_dec_filter_ts_begin(const tolk_dec_filter *f) {
    const int tb = f->tok->timestamp_begin;
    return f->timestamps && tb > 0 && tb < f->tok->n_vocab ? tb : 0;
}

void tolk_dec_timestamp_rule(float *logits, int nv, int tb) {
    /* Timestamp probability mass against the best text token, compared in
     * logit space (both sides share the log-softmax normaliser). */
    float max_text = -INFINITY;
    for (int i = 0; i < tb; i++)
        if (logits[i] > max_text) max_text = logits[i];
    float max_ts = -INFINITY;
    for (int i = tb; i < nv; i++)
        if (logits[i] > max_ts) max_ts = logits[i];
    if (max_ts == -INFINITY) return;
    double s = 0.0;
    for (int i = tb; i < nv; i++)
        s += exp((double)logits[i] - (double)max_ts);
    double ts_lse = (double)max_ts + log(s);
    if (ts_lse > (double)max_text)
        for (int i = 0; i < tb; i++)
            logits[i] = -INFINITY;
}

void tolk_dec_apply_filters(const tolk_dec_filter *f, float *logits, const int *sampled,
                            int n_sampled) {
    mask_sink k = {.ranges = NULL, .cap = 0, .n = 0, .logits = logits};
    filter_masks(f, sampled, n_sampled, &k);
    const int tb = tolk_dec_filter_ts_begin(f);
    if (tb > 0) tolk_dec_timestamp_rule(logits, f->tok->n_vocab, tb);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

tolk_status tolk_dec_resolve_suppress(tolk_ctx *ctx, const char *spec, const tolk_dec_tokens *tok,
                                      const int *nonspeech, int n_nonspeech, int **out,
                                      int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!spec || !*spec) return TOLK_OK; /* the reference applies no filter at all */
    if (n_nonspeech < 0 || n_nonspeech > 1000000)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "suppress_tokens: bad non-speech set");

    size_t n_items = 1;
    for (const char *p = spec; *p; p++)
        if (*p == ',') n_items++;
    if (n_items > 1000000)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "suppress_tokens: too many entries");
    size_t cap = n_items + (size_t)n_nonspeech + 6;
    int *ids = tolk_malloc_array(cap, sizeof(int));
    if (!ids) return tolk_fail(ctx, TOLK_ERR_NOMEM, "suppress_tokens: out of memory");
    size_t n = 0;
    int minus_one = 0;
    const char *p = spec;
    while (*p) {
        while (*p == ' ')
            p++;
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0) {
            free(ids);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "suppress_tokens: '%s' is not a comma-separated list of ids", spec);
        }
        while (*end == ' ')
            end++;
        if (*end != ',' && *end != '\0') {
            free(ids);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "suppress_tokens: '%s' is not a comma-separated list of ids", spec);
        }
        if (v == -1) {
            minus_one = 1;
        } else if (v < 0 || v >= tok->n_vocab) {
            free(ids);
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "suppress_tokens: id %ld outside the vocabulary [0, %d)", v,
                             tok->n_vocab);
        } else {
            ids[n++] = (int)v;
        }
        p = *end == ',' ? end + 1 : end;
    }
    if (minus_one)
        for (int i = 0; i < n_nonspeech; i++)
            if (nonspeech[i] >= 0 && nonspeech[i] < tok->n_vocab) ids[n++] = nonspeech[i];
    const int specials[6] = {tok->transcribe, tok->translate, tok->sot,
                             tok->sot_prev,   tok->sot_lm,    tok->no_speech};
    for (int i = 0; i < 6; i++)
        if (specials[i] >= 0 && specials[i] < tok->n_vocab) ids[n++] = specials[i];
    qsort(ids, n, sizeof(int), cmp_int);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    *out = ids;
    *n_out = (int)u;
    return TOLK_OK;
}

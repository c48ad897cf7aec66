/*
 * stream_policy.c — the words of a stream's hypothesis and the policies
 * that commit them (stream_internal.h).
 *
 * Reference behaviour: LocalAgreement-n of Machacek, Dabre and Bojar,
 * "Turning Whisper into Real-Time Transcription System" (2023), as
 * ufal/whisper_streaming's HypothesisBuffer runs it for n = 2: the words
 * on which consecutive hypotheses of the growing buffer agree, compared
 * as strings, are committed; the newest hypothesis' rest is kept for the
 * next comparison. Unlike whisper_streaming, tolk forces the committed
 * words as the beginning of every hypothesis (stream.c), so a hypothesis'
 * tail always starts right after them and no time-based de-duplication of
 * re-transcribed words is needed.
 *
 * The fast policy (tolk's): a word need not wait for the next hypothesis
 * when the model is sure of it and has heard past it — more words follow
 * it in the hypothesis, each of its tokens has probability >= min_prob,
 * and its estimated end lies margin seconds before the end of the audio.
 * Evidence that is no evidence is not taken: LocalAgreement compares
 * hypotheses heard at least a gap of audio apart (and agrees with every
 * one between) — updates a quarter second apart share their mistakes —
 * and the fast policy passes over a word a remembered hypothesis said
 * otherwise. whisper_streaming's updates are a second apart at least.
 *
 * Word times are estimated from Whisper's own segment timestamps: the
 * words of a segment share its span in proportion to their bytes; the
 * open last segment is stretched to the audio's end, which makes the
 * margin test err towards waiting.
 */
#include "stream_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tolk_sp_hyp_clear(tolk_sp_hyp *h) {
    if (!h) return;
    for (int i = 0; i < h->n_w; i++)
        free(h->w[i].text);
    free(h->w);
    h->w = NULL;
    h->n_w = 0;
}

/* Whether token id's text starts with a space (a new word). */
static int starts_word(const tolk_asr *asr, int id) {
    char *t = NULL;
    size_t len = 0;
    if (tolk_tokenizer_decode_ex(asr->tok, &id, 1, TOLK_DECODE_TEXT_ONLY, &t, &len) != TOLK_OK)
        return 0;
    int sp = len > 0 && (t[0] == ' ' || t[0] == '\n' || t[0] == '\t');
    tolk_free(t);
    return sp;
}

/* Spread the words [w0, w1) over [t0, t1] by their bytes. */
static void spread(tolk_sp_word *w, int w0, int w1, double t0, double t1) {
    if (w1 <= w0) return;
    if (t1 < t0) t1 = t0;
    double total = 0.0;
    for (int i = w0; i < w1; i++) {
        size_t len = w[i].text ? strlen(w[i].text) : 0;
        total += len > 0 ? (double)len : 1.0;
    }
    double acc = 0.0;
    for (int i = w0; i < w1; i++) {
        size_t len = w[i].text ? strlen(w[i].text) : 0;
        w[i].start = t0 + (t1 - t0) * acc / total;
        acc += len > 0 ? (double)len : 1.0;
        w[i].end = t0 + (t1 - t0) * acc / total;
    }
}

tolk_status tolk_sp_parse(tolk_ctx *ctx, const tolk_asr *asr, const int *prefix, int n_prefix,
                          const int *tail, const float *lp, int n_tail, double audio_s,
                          tolk_sp_hyp *out) {
    memset(out, 0, sizeof *out);
    const int eot = asr->dt.eot, tb = asr->dt.timestamp_begin;
    const double prec = (double)TOLK_CHUNK_SECONDS / (double)asr->hp.n_audio_ctx; /* 0.02 s */
    const int n = n_prefix + n_tail;
    /* words of the whole hypothesis (the prefix's words are needed for the
     * times of the segment the tail continues); at most one per token */
    tolk_sp_word *w = calloc((size_t)(n > 0 ? n : 1), sizeof *w);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "stream: out of memory");
    int nw = 0, first_tail_word = -1;
    int seg_w0 = 0;      /* first word of the open segment */
    double seg_t0 = 0.0; /* its start */
    int prev_text = 0;   /* the previous token was text */
    tolk_status st = TOLK_OK;
    for (int i = 0; i < n && st == TOLK_OK; i++) {
        const int id = i < n_prefix ? prefix[i] : tail[i - n_prefix];
        const int in_tail = i >= n_prefix;
        const int j = i - n_prefix; /* index in the tail */
        if (id >= tb && tb > 0) {
            double t = (double)(id - tb) * prec;
            if (prev_text) { /* a closing timestamp */
                spread(w, seg_w0, nw, seg_t0, t);
                if (nw > 0 && in_tail && w[nw - 1].a >= 0 && w[nw - 1].ts_after < 0 &&
                    nw - 1 >= first_tail_word && first_tail_word >= 0)
                    w[nw - 1].ts_after = j;
                seg_w0 = nw;
                seg_t0 = t;
            } else {                                      /* an opening timestamp */
                if (in_tail && t >= audio_s - 0.1) break; /* past what was heard */
                seg_w0 = nw;
                seg_t0 = t;
            }
            prev_text = 0;
            continue;
        }
        if (id >= eot) continue; /* other specials never appear in text */
        const float p = in_tail && lp ? expf(lp[j]) : 1.0f;
        int new_word =
            !prev_text || starts_word(asr, id) || (in_tail && (first_tail_word < 0 || j == 0));
        if (new_word) {
            w[nw] = (tolk_sp_word){
                .a = in_tail ? j : -1, .b = in_tail ? j + 1 : -1, .ts_after = -1, .p_min = p};
            if (in_tail && first_tail_word < 0) first_tail_word = nw;
            nw++;
        } else {
            tolk_sp_word *cw = &w[nw - 1];
            if (in_tail) cw->b = j + 1;
            if (p < cw->p_min) cw->p_min = p;
        }
        prev_text = 1;
    }
    spread(w, seg_w0, nw, seg_t0, audio_s > seg_t0 ? audio_s : seg_t0);
    /* texts of the tail's words */
    for (int k = first_tail_word >= 0 ? first_tail_word : nw; k < nw && st == TOLK_OK; k++) {
        size_t len = 0;
        if (tolk_tokenizer_decode_ex(asr->tok, tail + w[k].a, (size_t)(w[k].b - w[k].a),
                                     TOLK_DECODE_TEXT_ONLY, &w[k].text, &len) != TOLK_OK)
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "stream: cannot decode a word");
    }
    if (st != TOLK_OK) {
        for (int k = 0; k < nw; k++)
            tolk_free(w[k].text);
        free(w);
        return st;
    }
    /* keep the tail's words only */
    int k0 = first_tail_word >= 0 ? first_tail_word : nw;
    memmove(w, w + k0, (size_t)(nw - k0) * sizeof *w);
    out->w = w;
    out->n_w = nw - k0;
    return TOLK_OK;
}

static int same(const char *a, const char *b);

int tolk_sp_loop_start(const tolk_sp_hyp *h) {
    int best = h->n_w;
    for (int n = 1; n <= 4; n++) {
        const int need = n == 1 ? 4 : 3;
        for (int i = 0; i + n * need <= h->n_w && i + n < best; i++) {
            int reps = 1;
            while (i + (reps + 1) * n <= h->n_w) {
                int eq = 1;
                for (int j = 0; j < n && eq; j++)
                    eq = same(h->w[i + j].text, h->w[i + reps * n + j].text);
                if (!eq) break;
                reps++;
            }
            if (reps >= need) {
                if (i + n < best) best = i + n;
                break;
            }
        }
    }
    return best;
}

int tolk_sp_repeat_start(const tolk_sp_hyp *h, const int *tail, int n_tail, const int *prompt,
                         int n_prompt, const int *committed, int n_committed, int timestamp_begin) {
    const int L = TOLK_SP_REPEAT_TOKENS;
    /* S: the text tokens said before and in the hypothesis, in order —
     * prompt, committed, tail (timestamps skipped); tp: each tail text
     * token's index in tail */
    const int n_all = (n_prompt > 0 ? n_prompt : 0) + (n_committed > 0 ? n_committed : 0) +
                      (n_tail > 0 ? n_tail : 0);
    int *S = malloc((size_t)(n_all > 0 ? n_all : 1) * sizeof(int));
    int *tp = malloc((size_t)(n_tail > 0 ? n_tail : 1) * sizeof(int));
    if (!S || !tp) { /* no guard without memory: nothing is cut */
        free(S), free(tp);
        return h->n_w;
    }
    int ns = 0, nt = 0, at = -1;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < timestamp_begin) S[ns++] = prompt[i];
    for (int i = 0; i < n_committed; i++)
        if (committed[i] < timestamp_begin) S[ns++] = committed[i];
    const int base = ns; /* where the tail's text starts in S */
    for (int i = 0; i < n_tail; i++)
        if (tail[i] < timestamp_begin) {
            tp[nt++] = i;
            S[ns++] = tail[i];
        }
    /* the first tail position whose next L tokens stand earlier in S, or
     * that begins a block of E or more tokens said again back to back (the
     * block just before it, in the tail or in the text said before) */
    const int E = TOLK_SP_ECHO_TOKENS;
    for (int j = 0; j < nt && at < 0; j++) {
        const int p = base + j;
        for (int i = 0; j + L <= nt && i < p && at < 0; i++) {
            int m = 0;
            while (m < L && S[i + m] == S[p + m])
                m++;
            if (m == L) at = tp[j];
        }
        for (int m = E; at < 0 && m <= p && p + m <= ns; m++)
            if (!memcmp(S + p - m, S + p, (size_t)m * sizeof(int))) at = tp[j];
    }
    free(S), free(tp);
    if (at < 0) return h->n_w;
    /* the first word that starts inside the run: a run may begin inside a
     * word — its closing "." when the text said before ends a sentence too
     * ("... his gospel." + "Mr. Quilter ..." said again after the prompt's
     * "myself." + "Mr. Quilter ...") — and that word's beginning is new */
    for (int w = 0; w < h->n_w; w++)
        if (h->w[w].a >= at) return w;
    return h->n_w;
}

/* ---- policies ------------------------------------------------------------ */

static int same(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int tolk_sp_ends_sentence(const char *t) {
    size_t n = t ? strlen(t) : 0;
    while (n > 0 && (t[n - 1] == '"' || t[n - 1] == '\'' || t[n - 1] == ')'))
        n--;
    if (n == 0 || !(t[n - 1] == '.' || t[n - 1] == '?' || t[n - 1] == '!')) return 0;
    return !(n >= 2 && t[n - 1] == '.' && t[n - 2] == '.'); /* not a trailing off ".." */
}

/* Whether a word ends with a cut or a trailing off ("ur-", "be...", "—",
 * "…"): the audio stopped inside or right after it. */
static int ends_cut(const char *t) {
    size_t n = t ? strlen(t) : 0;
    if (n == 0) return 0;
    if (t[n - 1] == '-' || (n >= 3 && !strcmp(t + n - 3, "..."))) return 1;
    return n >= 3 && (unsigned char)t[n - 3] == 0xE2 && (unsigned char)t[n - 2] == 0x80 &&
           ((unsigned char)t[n - 1] == 0xA6 || (unsigned char)t[n - 1] == 0x94);
}

/* Whether a word ends with the marks Whisper puts where the audio stops —
 * a sentence end (". ? !"), a trailing off ("...", "…") or a cut (" -",
 * "—") — which the buffer's end produces as often as the speaker does. */
static int ends_clause(const char *t) {
    size_t n = t ? strlen(t) : 0;
    if (n == 0) return 0;
    const unsigned char c = (unsigned char)t[n - 1];
    if (c == '.' || c == '?' || c == '!' || c == '-') return 1;
    /* U+2026 … and U+2014 — (E2 80 A6, E2 80 94) */
    return n >= 3 && (unsigned char)t[n - 3] == 0xE2 && (unsigned char)t[n - 2] == 0x80 &&
           (c == 0xA6 || c == 0x94);
}

/* Whether one of the newest n_use tails said another word than h's word
 * m, having agreed with h before it (a cut word — "ur-", "be..." — says
 * nothing). Whisper is confident of a word it gets wrong as often as not
 * the first times it hears it: "may be..." then "made just..." ("may
 * justly"). */
static int contradicted(const tolk_sp_state *st, int n_use, const tolk_sp_hyp *h, int m) {
    for (int q = 0; q < n_use && q < st->n_hist; q++) {
        if (st->n_prev[q] <= m) continue;
        int agreed = 1;
        for (int i = 0; i < m && agreed; i++)
            agreed = same(st->prev[q][i], h->w[i].text);
        if (agreed && !same(st->prev[q][m], h->w[m].text) && !ends_cut(st->prev[q][m])) return 1;
    }
    return 0;
}

int tolk_sp_decide(const tolk_sp_policy *p, const tolk_sp_state *st, const tolk_sp_hyp *h,
                   double audio_s, int final) {
    if (final) return h->n_w;
    const int n = p->fast ? 2 : (p->n < 2 ? 2 : p->n);
    /* the tails to agree with: hypotheses of one another's audio, a gap
     * apart — updates a quarter second apart share nearly all their audio
     * and their errors ("hit and painful" for "him and painful" twice) */
    int n_use = 0, found = 0;
    double ref = h->heard;
    for (int q = 0; q < st->n_hist && found < n - 1; q++) {
        n_use++;
        if (st->heard[q] <= ref - p->gap + 1e-6) {
            found++;
            ref = st->heard[q];
        }
    }
    int k = 0;
    if (found == n - 1) {
        k = h->n_w;
        for (int q = 0; q < n_use; q++) {
            int m = 0;
            while (m < k && m < st->n_prev[q] && same(h->w[m].text, st->prev[q][m]))
                m++;
            k = m;
        }
        /* a last word the audio may still be cutting is not agreed on:
         * updates a quarter second apart see the same truncated "extreme."
         * of "extremely distant" twice */
        if (k > 0 && k == h->n_w &&
            (h->w[k - 1].end > audio_s - p->margin || ends_clause(h->w[k - 1].text)))
            k--;
    }
    if (p->fast)
        while (k < h->n_w - 1 && h->w[k].p_min >= p->min_prob &&
               h->w[k].end <= audio_s - p->margin && !contradicted(st, n_use, h, k))
            k++;
    return k;
}

static void free_tail(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void tolk_sp_reset(tolk_sp_state *st) {
    for (int q = 0; q < st->n_hist; q++)
        free_tail(st->prev[q], st->n_prev[q]);
    memset(st, 0, sizeof *st);
}

tolk_status tolk_sp_push(tolk_sp_state *st, const tolk_sp_hyp *h, int k) {
    if (k < 0) k = 0;
    if (k > h->n_w) k = h->n_w;
    const int m = h->n_w - k;
    char **v = calloc((size_t)(m > 0 ? m : 1), sizeof *v);
    int ok = v != NULL;
    for (int i = 0; ok && i < m; i++)
        ok = (v[i] = strdup(h->w[k + i].text ? h->w[k + i].text : "")) != NULL;
    if (!ok) {
        if (v) free_tail(v, m);
        tolk_sp_reset(st);
        return TOLK_ERR_NOMEM;
    }
    /* older tails: drop the committed words where they agree, else forget
     * them (and everything older) */
    int keep = 0;
    for (int q = 0; q < st->n_hist; q++) {
        int agree = st->n_prev[q] >= k;
        for (int i = 0; agree && i < k; i++)
            agree = same(st->prev[q][i], h->w[i].text);
        if (!agree) break;
        for (int i = 0; i < k; i++)
            free(st->prev[q][i]);
        memmove(st->prev[q], st->prev[q] + k, (size_t)(st->n_prev[q] - k) * sizeof(char *));
        st->n_prev[q] -= k;
        keep++;
    }
    for (int q = keep; q < st->n_hist; q++)
        free_tail(st->prev[q], st->n_prev[q]);
    if (keep > TOLK_SP_HIST - 1) {
        for (int q = TOLK_SP_HIST - 1; q < keep; q++)
            free_tail(st->prev[q], st->n_prev[q]);
        keep = TOLK_SP_HIST - 1;
    }
    memmove(st->prev + 1, st->prev, (size_t)keep * sizeof st->prev[0]);
    memmove(st->n_prev + 1, st->n_prev, (size_t)keep * sizeof st->n_prev[0]);
    memmove(st->heard + 1, st->heard, (size_t)keep * sizeof st->heard[0]);
    st->prev[0] = v;
    st->n_prev[0] = m;
    st->heard[0] = h->heard;
    st->n_hist = keep + 1;
    return TOLK_OK;
}

/*
 * test_decode.c — the search (decode.h) on synthetic logits, no weights:
 * compression ratio against Python's zlib numbers, each logit filter, the
 * suppress_tokens option, language probabilities, the fallback rule, and
 * greedy / best-of sampling / beam search against plain reference loops
 * written the way openai-whisper's decoding.py states them (whole token
 * history re-scored every step, no cache, a dictionary of candidates), run
 * over a fake decoder whose logits are a hash of each sequence's history —
 * so a wrong KV-cache reorder shows up as different logits.
 */
#include "decode.h"
#include "melwin.h"
#include "select.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small synthetic vocabulary --------------------------------------- */
enum {
    NV = 64,
    EOT = 40,
    SOT = 41,
    LANG0 = 42, /* two languages: 42, 43 */
    TRANSLATE = 44,
    TRANSCRIBE = 45,
    SOT_LM = 46,
    SOT_PREV = 47,
    NO_SPEECH = 48,
    NO_TS = 49,
    TB = 50, /* timestamps 50..63 */
    BLANK = 5
};
static const int LANGS[2] = {LANG0, LANG0 + 1};

static tolk_dec_tokens toks(void) {
    tolk_dec_tokens t = {.n_vocab = NV,
                         .eot = EOT,
                         .sot = SOT,
                         .sot_prev = SOT_PREV,
                         .sot_lm = SOT_LM,
                         .no_speech = NO_SPEECH,
                         .no_timestamps = NO_TS,
                         .timestamp_begin = TB,
                         .transcribe = TRANSCRIBE,
                         .translate = TRANSLATE,
                         .blank = BLANK,
                         .lang_ids = LANGS,
                         .n_languages = 2};
    return t;
}

/* ---- fake decoder: logits are a hash of the whole history --------------- */
#define MAXS 8
#define MAXL 600

typedef struct fake {
    int hist[MAXS][MAXL];
    int len[MAXS];
    uint64_t salt;
    float eot_slope; /* EOT grows more likely with length */
    int n_steps;
} fake;

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fake_logits(const fake *fk, const int *h, int n, float *out) {
    uint64_t s = fk->salt;
    for (int i = 0; i < n; i++)
        s = mix(s ^ (uint64_t)(h[i] + 1) * 0x9E3779B97F4A7C15ull);
    for (int v = 0; v < NV; v++) {
        uint64_t r = mix(s + (uint64_t)v * 0xD1B54A32D192ED03ull);
        out[v] = (float)((double)(r >> 11) / 9007199254740992.0 * 8.0 - 4.0);
    }
    out[EOT] += fk->eot_slope * (float)n - 3.0f;
}

static tolk_status fake_step(void *user, const int *seqs, int n_seqs, const int *const *tokens,
                             const int *n_tokens, float *logits) {
    fake *fk = user;
    fk->n_steps++;
    for (int i = 0; i < n_seqs; i++) {
        int s = seqs[i];
        CU_ASSERT_FATAL(s >= 0 && s < MAXS);
        for (int j = 0; j < n_tokens[i]; j++) {
            CU_ASSERT_FATAL(fk->len[s] < MAXL);
            fk->hist[s][fk->len[s]++] = tokens[i][j];
        }
        fake_logits(fk, fk->hist[s], fk->len[s], logits + (size_t)i * NV);
    }
    return TOLK_OK;
}
static tolk_status fake_reset(void *user, int seq) {
    ((fake *)user)->len[seq] = 0;
    return TOLK_OK;
}
static tolk_status fake_copy(void *user, int dst, int src) {
    fake *fk = user;
    memcpy(fk->hist[dst], fk->hist[src], sizeof fk->hist[0]);
    fk->len[dst] = fk->len[src];
    return TOLK_OK;
}
static tolk_dec_backend fake_backend(fake *fk, int max_seqs) {
    tolk_dec_backend be = {.user = fk,
                           .n_vocab = NV,
                           .max_seqs = max_seqs,
                           .step = fake_step,
                           .reset = fake_reset,
                           .copy = fake_copy};
    return be;
}

/* step_select over the fake: its logits, selected by the host reference
 * (select.h) — what a GPU backend does where the logits are. */
static tolk_status fake_step_select(void *user, const int *seqs, int n_seqs,
                                    const int *const *tokens, const int *n_tokens,
                                    const tolk_dec_select *sel, int *out_idx, float *out_lp) {
    float *lg = malloc((size_t)n_seqs * NV * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(lg);
    tolk_status st = fake_step(user, seqs, n_seqs, tokens, n_tokens, lg);
    if (st == TOLK_OK &&
        tolk_select_rows(lg, NV, n_seqs, NV, sel->range_off, sel->ranges, sel->ts_begin, sel->k,
                         out_idx, out_lp) != 0)
        st = TOLK_ERR_INVALID_ARG;
    free(lg);
    return st;
}

static char *fake_text(void *user, const int *t, int n) {
    (void)user;
    char *s = malloc((size_t)n * 4 + 2);
    size_t k = 0;
    s[k++] = ' ';
    for (int i = 0; i < n; i++)
        if (t[i] < EOT) s[k++] = (char)('a' + t[i] % 26);
    s[k] = '\0';
    return s;
}

/* ---- reference filters, literally as decoding.py states them ------------ */
static void ref_filters(float *lg, const int *all, int n_all, int sample_begin, int blank_on,
                        const int *sup, int n_sup, int ts_on, int max_init) {
    if (blank_on && n_all == sample_begin) lg[BLANK] = lg[EOT] = -INFINITY;
    for (int i = 0; i < n_sup; i++)
        lg[sup[i]] = -INFINITY;
    if (!ts_on) return;
    lg[NO_TS] = -INFINITY;
    const int *seq = all + sample_begin;
    int n = n_all - sample_begin;
    int last = n >= 1 && seq[n - 1] >= TB;
    int pen = n < 2 || seq[n - 2] >= TB;
    if (last) {
        if (pen)
            for (int v = TB; v < NV; v++)
                lg[v] = -INFINITY;
        else
            for (int v = 0; v < EOT; v++)
                lg[v] = -INFINITY;
    }
    int lastts = -1;
    for (int i = 0; i < n; i++)
        if (seq[i] >= TB) lastts = seq[i];
    if (lastts >= 0) {
        int tl = (last && !pen) ? lastts : lastts + 1;
        for (int v = TB; v < tl && v < NV; v++)
            lg[v] = -INFINITY;
    }
    if (n == 0) {
        for (int v = 0; v < TB; v++)
            lg[v] = -INFINITY;
        if (max_init >= 0)
            for (int v = TB + max_init + 1; v < NV; v++)
                lg[v] = -INFINITY;
    }
    float lp[NV];
    tolk_dec_log_softmax(lg, NV, lp);
    double m = -INFINITY, s = 0;
    for (int v = TB; v < NV; v++)
        if (lp[v] > m) m = lp[v];
    if (m > -INFINITY) {
        for (int v = TB; v < NV; v++)
            s += exp(lp[v] - m);
        s = m + log(s);
    } else {
        s = -INFINITY;
    }
    double mt = -INFINITY;
    for (int v = 0; v < TB; v++)
        if (lp[v] > mt) mt = lp[v];
    if (s > mt)
        for (int v = 0; v < TB; v++)
            lg[v] = -INFINITY;
}

/* ---- tests -------------------------------------------------------------- */

static void test_compression_ratio(void) {
    CU_ASSERT_DOUBLE_EQUAL(tolk_compression_ratio("", 0), 0.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(tolk_compression_ratio("hello", 5), 0.38461538461538464, 1e-6);
    const char *s = "And so my fellow Americans ask not what your country can do for you";
    CU_ASSERT_DOUBLE_EQUAL(tolk_compression_ratio(s, strlen(s)), 1.0151515151515151, 1e-6);
    char buf[512] = "";
    for (int i = 0; i < 50; i++)
        strcat(buf, "la la la ");
    CU_ASSERT_DOUBLE_EQUAL(tolk_compression_ratio(buf, strlen(buf)), 28.125, 1e-5);
    char big[20000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + (i * 7919 % 26));
    CU_ASSERT(tolk_compression_ratio(big, sizeof big) > 0.0f);
}

static void test_filters_fixed(void) {
    tolk_dec_tokens t = toks();
    int sup[2] = {3, 7};
    tolk_dec_filter f = {.tok = &t,
                         .sample_begin = 4,
                         .suppress_blank = 1,
                         .suppress = sup,
                         .n_suppress = 2,
                         .timestamps = 1,
                         .max_initial_timestamp_index = 3};
    float lg[NV];
    /* first position: only timestamps TB..TB+3 survive */
    for (int v = 0; v < NV; v++)
        lg[v] = 0.0f;
    tolk_dec_apply_filters(&f, lg, NULL, 0);
    for (int v = 0; v < NV; v++)
        CU_ASSERT_EQUAL(isinf(lg[v]) != 0, !(v >= TB && v <= TB + 3));

    /* without timestamps: blank, EOT and the list only */
    f.timestamps = 0;
    for (int v = 0; v < NV; v++)
        lg[v] = 0.0f;
    tolk_dec_apply_filters(&f, lg, NULL, 0);
    for (int v = 0; v < NV; v++)
        CU_ASSERT_EQUAL(isinf(lg[v]) != 0, v == BLANK || v == EOT || v == 3 || v == 7);
    f.timestamps = 1;

    /* after <|ts|> text <|ts2|>: the pair rule forbids timestamps */
    int s1[4] = {TB + 2, 10, TB + 5, TB + 5};
    for (int v = 0; v < NV; v++)
        lg[v] = 0.0f;
    tolk_dec_apply_filters(&f, lg, s1, 4);
    for (int v = TB; v < NV; v++)
        CU_ASSERT(isinf(lg[v]));
    CU_ASSERT(!isinf(lg[10]) && !isinf(lg[EOT]));

    /* after <|ts|> text: timestamps before ts+1 forbidden, text allowed;
     * with text strongly preferred the mass rule does nothing */
    int s2[2] = {TB + 2, 10};
    for (int v = 0; v < NV; v++)
        lg[v] = v < TB ? 5.0f : 0.0f;
    tolk_dec_apply_filters(&f, lg, s2, 2);
    for (int v = TB; v <= TB + 2; v++)
        CU_ASSERT(isinf(lg[v]));
    CU_ASSERT(!isinf(lg[TB + 3]) && !isinf(lg[11]));
    /* ... and with the timestamp mass larger than any text token, forced */
    for (int v = 0; v < NV; v++)
        lg[v] = v < TB ? 0.0f : 1.0f;
    tolk_dec_apply_filters(&f, lg, s2, 2);
    for (int v = 0; v < TB; v++)
        CU_ASSERT(isinf(lg[v]));
    CU_ASSERT(!isinf(lg[TB + 3]));

    /* after text <|ts|>: text forbidden (< EOT), EOT and ts >= last allowed */
    int s3[3] = {TB, 10, TB + 4};
    for (int v = 0; v < NV; v++)
        lg[v] = 0.0f;
    lg[EOT] = 5.0f;
    tolk_dec_apply_filters(&f, lg, s3, 3);
    for (int v = 0; v < EOT; v++)
        CU_ASSERT(isinf(lg[v]));
    CU_ASSERT(!isinf(lg[EOT]) && !isinf(lg[TB + 4]) && isinf(lg[TB + 3]));
    CU_ASSERT(isinf(lg[NO_TS]));
}

static void test_filters_random(void) {
    tolk_dec_tokens t = toks();
    int sup[3] = {1, 9, SOT};
    tu_seed(7);
    for (int trial = 0; trial < 2000; trial++) {
        int n = (int)tu_uniform(0.0f, 8.0f);
        int all[16] = {SOT, LANG0, TRANSCRIBE};
        for (int i = 0; i < n; i++) {
            int r = (int)tu_uniform(0.0f, 3.0f);
            all[3 + i] = r == 0 ? (int)tu_uniform(0.0f, 30.0f) : (int)tu_uniform(TB, NV);
        }
        float lg[NV], ref[NV];
        for (int v = 0; v < NV; v++)
            lg[v] = ref[v] = tu_uniform(-3.0f, 3.0f);
        int mi = trial % 3 == 0 ? -1 : 2;
        tolk_dec_filter f = {.tok = &t,
                             .sample_begin = 3,
                             .suppress_blank = 1,
                             .suppress = sup,
                             .n_suppress = 3,
                             .timestamps = 1,
                             .max_initial_timestamp_index = mi};
        tolk_dec_apply_filters(&f, lg, all + 3, n);
        ref_filters(ref, all, 3 + n, 3, 1, sup, 3, 1, mi);
        int same = 1;
        for (int v = 0; v < NV; v++)
            if (isinf(lg[v]) != isinf(ref[v]) || (!isinf(lg[v]) && lg[v] != ref[v])) same = 0;
        CU_ASSERT(same);
    }
}

static void test_suppress_option(void) {
    tolk_dec_tokens t = toks();
    int ns[3] = {2, 30, 9};
    int *ids = NULL, n = 0;
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "-1", &t, ns, 3, &ids, &n), TOLK_OK);
    int want[9] = {2, 9, 30, SOT, TRANSLATE, TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH};
    CU_ASSERT_EQUAL(n, 9);
    for (int i = 0; i < 9 && i < n; i++) {
        int found = 0;
        for (int j = 0; j < n; j++)
            found |= ids[j] == want[i];
        CU_ASSERT(found);
        if (i > 0) CU_ASSERT(ids[i] > ids[i - 1]);
    }
    free(ids);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "", &t, ns, 3, &ids, &n), TOLK_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NULL(ids);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "5, 3,5", &t, ns, 3, &ids, &n), TOLK_OK);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(ids[0], 3);
    CU_ASSERT_EQUAL(ids[1], 5);
    free(ids);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "-1,12", &t, ns, 3, &ids, &n), TOLK_OK);
    CU_ASSERT_EQUAL(n, 10);
    free(ids);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "x", &t, ns, 3, &ids, &n),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "1,,2", &t, ns, 3, &ids, &n),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "64", &t, ns, 3, &ids, &n),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_dec_resolve_suppress(NULL, "99999999999999999999", &t, ns, 3, &ids, &n),
                    TOLK_ERR_INVALID_ARG);
}

static void test_language(void) {
    tolk_dec_tokens t = toks();
    fake fk;
    memset(&fk, 0, sizeof fk);
    fk.salt = 11;
    tolk_dec_backend be = fake_backend(&fk, 1);
    float p[2];
    int best = -1;
    CU_ASSERT_EQUAL_FATAL(tolk_dec_detect_language(NULL, &be, &t, p, &best), TOLK_OK);
    float lg[NV];
    int h = SOT;
    fake_logits(&fk, &h, 1, lg);
    double e0 = exp(lg[LANG0]), e1 = exp(lg[LANG0 + 1]);
    CU_ASSERT_DOUBLE_EQUAL(p[0], e0 / (e0 + e1), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[0] + p[1], 1.0, 1e-6);
    CU_ASSERT_EQUAL(best, lg[LANG0] >= lg[LANG0 + 1] ? 0 : 1);
    t.n_languages = 0;
    CU_ASSERT_EQUAL(tolk_dec_detect_language(NULL, &be, &t, p, &best), TOLK_ERR_UNSUPPORTED);
}

static void test_fallback_rule(void) {
    tolk_dec_fallback fb = {.compression_ratio_threshold = 2.4f,
                            .logprob_threshold = -1.0f,
                            .no_speech_threshold = 0.6f};
    tolk_dec_result r = {.compression_ratio = 1.5f, .avg_logprob = -0.5f, .no_speech_prob = 0.1f};
    CU_ASSERT(!tolk_dec_needs_fallback(&fb, &r));
    r.compression_ratio = 2.5f;
    CU_ASSERT(tolk_dec_needs_fallback(&fb, &r));
    r.compression_ratio = 1.0f;
    r.avg_logprob = -1.5f;
    CU_ASSERT(tolk_dec_needs_fallback(&fb, &r));
    r.no_speech_prob = 0.7f; /* silence: accepted */
    CU_ASSERT(!tolk_dec_needs_fallback(&fb, &r));
    r.compression_ratio = 3.0f; /* even when repetitive */
    CU_ASSERT(!tolk_dec_needs_fallback(&fb, &r));
    fb.logprob_threshold = -INFINITY; /* off: then silence does not override */
    CU_ASSERT(tolk_dec_needs_fallback(&fb, &r));
    fb.compression_ratio_threshold = 0.0f;
    CU_ASSERT(!tolk_dec_needs_fallback(&fb, &r));
}

/* reference greedy / best-of: whole history re-scored every step */
static void ref_greedy(const fake *fk, const int *init, int n_init, int sot_index,
                       const tolk_dec_options *o, const int *sup, int n_sup, int *out_tokens,
                       int *out_n, double *out_sum, float *out_nsp) {
    int G = o->temperature > 0 ? o->best_of : 1;
    static int seq[MAXS][MAXL];
    int len[MAXS] = {0};
    double sum[MAXS] = {0};
    uint64_t rng = o->rng ? *o->rng : 0;
    for (int g = 0; g < G; g++) {
        memcpy(seq[g], init, (size_t)n_init * sizeof(int));
        len[g] = n_init;
    }
    float lg[NV], lp[NV];
    fake_logits(fk, init, sot_index + 1, lg);
    tolk_dec_log_softmax(lg, NV, lp);
    *out_nsp = expf(lp[NO_SPEECH]);
    for (int i = 0; i < o->sample_len; i++) {
        int all_done = 1;
        for (int g = 0; g < G; g++) {
            if (len[g] > n_init && seq[g][len[g] - 1] == EOT) {
                seq[g][len[g]++] = EOT;
                continue;
            }
            fake_logits(fk, seq[g], len[g], lg);
            ref_filters(lg, seq[g], len[g], n_init, o->suppress_blank, sup, n_sup, o->timestamps,
                        o->max_initial_timestamp_index);
            int next = 0;
            if (o->temperature > 0) {
                next = tolk_dec_sample(lg, NV, o->temperature, &rng);
            } else {
                for (int v = 1; v < NV; v++)
                    if (lg[v] > lg[next]) next = v;
            }
            tolk_dec_log_softmax(lg, NV, lp);
            sum[g] += lp[next];
            seq[g][len[g]++] = next;
            if (next != EOT) all_done = 0;
        }
        if (all_done || len[0] > o->n_ctx) break;
    }
    double best = -INFINITY;
    int bi = 0;
    for (int g = 0; g < G; g++) {
        int n = 0;
        while (n_init + n < len[g] && seq[g][n_init + n] != EOT)
            n++;
        double sc = sum[g] / (o->length_penalty < 0 ? n : pow((5.0 + n) / 6.0, o->length_penalty));
        if (g == 0 || sc > best) {
            best = sc;
            bi = g;
        }
    }
    int n = 0;
    while (n_init + n < len[bi] && seq[bi][n_init + n] != EOT) {
        out_tokens[n] = seq[bi][n_init + n];
        n++;
    }
    *out_n = n;
    *out_sum = sum[bi];
}

static tolk_dec_options base_opts(void) {
    tolk_dec_options o = {.temperature = 0.0f,
                          .sample_len = 40,
                          .n_ctx = 448,
                          .beam_size = 0,
                          .best_of = 1,
                          .patience = 1.0f,
                          .length_penalty = -1.0f,
                          .suppress_blank = 1,
                          .timestamps = 1,
                          .max_initial_timestamp_index = 5};
    return o;
}

static void test_greedy_and_sampling(void) {
    tolk_dec_tokens t = toks();
    int sup[4] = {2, SOT, SOT_PREV, NO_SPEECH};
    int init_a[4] = {SOT, LANG0, TRANSCRIBE, NO_TS};
    int init_b[7] = {SOT_PREV, 3, 4, 6, SOT, LANG0 + 1, TRANSLATE};
    for (int trial = 0; trial < 60; trial++) {
        fake fk;
        memset(&fk, 0, sizeof fk);
        fk.salt = 1000 + (uint64_t)trial;
        fk.eot_slope = 0.15f + 0.05f * (trial % 4);
        tolk_dec_options o = base_opts();
        o.suppress = sup;
        o.n_suppress = 4;
        o.timestamps = trial % 5 != 4;
        o.max_initial_timestamp_index = trial % 7 == 0 ? -1 : 5;
        o.sample_len = trial % 6 == 5 ? 7 : 40;
        uint64_t rng = tolk_rng_seed((uint64_t)trial), rng_ref = rng;
        if (trial % 3 == 2) {
            o.temperature = 0.6f;
            o.best_of = 1 + trial % 5;
            o.length_penalty = trial % 2 ? 0.5f : -1.0f;
            o.rng = &rng;
        }
        const int *init = trial % 2 ? init_b : init_a;
        int n_init = trial % 2 ? 7 : (o.timestamps ? 3 : 4);
        int sot_index = trial % 2 ? 4 : 0;

        tolk_dec_backend be = fake_backend(&fk, MAXS);
        tolk_dec_result r;
        CU_ASSERT_EQUAL_FATAL(
            tolk_dec_decode(NULL, &be, &t, init, n_init, sot_index, &o, fake_text, NULL, &r),
            TOLK_OK);
        int rt[MAXL], rn;
        double rsum;
        float rnsp;
        tolk_dec_options oref = o;
        oref.rng = &rng_ref;
        ref_greedy(&fk, init, n_init, sot_index, &oref, sup, 4, rt, &rn, &rsum, &rnsp);
        CU_ASSERT_EQUAL(r.n_tokens, rn);
        int same = r.n_tokens == rn;
        for (int i = 0; same && i < rn; i++)
            same = r.tokens[i] == rt[i];
        CU_ASSERT(same);
        CU_ASSERT_DOUBLE_EQUAL(r.sum_logprob, rsum, 1e-4);
        CU_ASSERT_DOUBLE_EQUAL(r.avg_logprob, rsum / (rn + 1), 1e-4);
        CU_ASSERT_DOUBLE_EQUAL(r.no_speech_prob, rnsp, 1e-6);
        CU_ASSERT_DOUBLE_EQUAL(r.temperature, o.temperature, 0.0);
        CU_ASSERT_PTR_NOT_NULL(r.text);
        if (r.text) {
            CU_ASSERT(r.text[0] != ' ');
            CU_ASSERT_DOUBLE_EQUAL(r.compression_ratio,
                                   tolk_compression_ratio(r.text, strlen(r.text)), 1e-6);
        }
        double s = 0;
        for (int i = 0; i < r.n_tokens; i++)
            s += r.logprobs[i];
        CU_ASSERT(s >= r.sum_logprob - 1e-3); /* sum also holds the EOT step */
        tolk_dec_result_clear(&r);
    }
}

/* reference beam search: a list of (sequence, score) candidates as the
 * reference's dictionaries, logits from the full history */
typedef struct rseq {
    int t[MAXL];
    int n;
    double s;
} rseq;

static void ref_beam(const fake *fk, const int *init, int n_init, const tolk_dec_options *o,
                     const int *sup, int n_sup, int *out, int *out_n, double *out_sum) {
    int B = o->beam_size;
    int maxc = (int)nearbyint(B * (double)o->patience);
    static rseq beams[MAXS], cand[MAXS * (MAXS + 1)], fin[64], nb[MAXS], stepfin[MAXS * (MAXS + 1)];
    int nfin = 0;
    for (int b = 0; b < B; b++) {
        memcpy(beams[b].t, init, (size_t)n_init * sizeof(int));
        beams[b].n = n_init;
        beams[b].s = 0;
    }
    float lg[NV], lp[NV];
    for (int i = 0; i < o->sample_len; i++) {
        int nc = 0;
        for (int b = 0; b < B; b++) {
            fake_logits(fk, beams[b].t, beams[b].n, lg);
            ref_filters(lg, beams[b].t, beams[b].n, n_init, o->suppress_blank, sup, n_sup,
                        o->timestamps, o->max_initial_timestamp_index);
            tolk_dec_log_softmax(lg, NV, lp);
            int used[NV] = {0};
            for (int k = 0; k < B + 1; k++) {
                int bi = -1;
                for (int v = 0; v < NV; v++)
                    if (!used[v] && (bi < 0 || lp[v] > lp[bi])) bi = v;
                used[bi] = 1;
                rseq c = beams[b];
                c.t[c.n++] = bi;
                c.s = beams[b].s + lp[bi];
                int dup = -1;
                for (int q = 0; q < nc; q++)
                    if (cand[q].n == c.n && !memcmp(cand[q].t, c.t, sizeof(int) * c.n)) dup = q;
                if (dup >= 0)
                    cand[dup].s = c.s; /* dict update keeps the position */
                else
                    cand[nc++] = c;
            }
        }
        /* stable sort by score, descending */
        for (int a = 1; a < nc; a++) {
            rseq v = cand[a];
            int q = a;
            while (q > 0 && cand[q - 1].s < v.s) {
                cand[q] = cand[q - 1];
                q--;
            }
            cand[q] = v;
        }
        int saved = 0, nsf = 0;
        for (int q = 0; q < nc; q++) {
            if (cand[q].t[cand[q].n - 1] == EOT)
                stepfin[nsf++] = cand[q];
            else {
                nb[saved++] = cand[q];
                if (saved == B) break;
            }
        }
        for (int b = 0; b < B; b++)
            beams[b] = nb[b];
        for (int q = 0; q < nsf && nfin < maxc; q++)
            fin[nfin++] = stepfin[q];
        if (nfin >= maxc || beams[0].n > o->n_ctx) break;
    }
    if (nfin < B) {
        int order[MAXS];
        for (int b = 0; b < B; b++)
            order[b] = b;
        for (int a = 1; a < B; a++) {
            int v = order[a], q = a;
            while (q > 0 && beams[order[q - 1]].s > beams[v].s) {
                order[q] = order[q - 1];
                q--;
            }
            order[q] = v;
        }
        for (int a = B - 1; a >= 0 && nfin < B; a--) {
            fin[nfin] = beams[order[a]];
            fin[nfin].t[fin[nfin].n++] = EOT;
            nfin++;
        }
    }
    int best = 0;
    double bs = -INFINITY;
    for (int q = 0; q < nfin; q++) {
        int n = fin[q].n - n_init - 1;
        double sc =
            fin[q].s / (o->length_penalty < 0 ? n : pow((5.0 + n) / 6.0, o->length_penalty));
        if (q == 0 || sc > bs) {
            bs = sc;
            best = q;
        }
    }
    *out_n = fin[best].n - n_init - 1;
    memcpy(out, fin[best].t + n_init, sizeof(int) * (size_t)*out_n);
    *out_sum = fin[best].s;
}

static void test_beam(void) {
    tolk_dec_tokens t = toks();
    int sup[3] = {2, SOT, NO_SPEECH};
    int init[3] = {SOT, LANG0, TRANSCRIBE};
    for (int trial = 0; trial < 60; trial++) {
        fake fk;
        memset(&fk, 0, sizeof fk);
        fk.salt = 5000 + (uint64_t)trial;
        fk.eot_slope = 0.1f + 0.05f * (trial % 5);
        tolk_dec_options o = base_opts();
        o.suppress = sup;
        o.n_suppress = 3;
        o.beam_size = 2 + trial % 4;
        o.patience = trial % 3 == 0 ? 2.0f : 1.0f;
        o.length_penalty = trial % 2 ? 0.6f : -1.0f;
        o.timestamps = trial % 4 != 3;
        o.sample_len = trial % 7 == 6 ? 6 : 40;
        tolk_dec_backend be = fake_backend(&fk, o.beam_size);
        tolk_dec_result r;
        CU_ASSERT_EQUAL_FATAL(tolk_dec_decode(NULL, &be, &t, init, 3, 0, &o, fake_text, NULL, &r),
                              TOLK_OK);
        int rt[MAXL], rn;
        double rs;
        ref_beam(&fk, init, 3, &o, sup, 3, rt, &rn, &rs);
        CU_ASSERT_EQUAL(r.n_tokens, rn);
        int same = r.n_tokens == rn;
        for (int i = 0; same && i < rn; i++)
            same = r.tokens[i] == rt[i];
        CU_ASSERT(same);
        CU_ASSERT_DOUBLE_EQUAL(r.sum_logprob, rs, 1e-3);
        tolk_dec_result_clear(&r);
    }
    /* too many beams for the provider */
    fake fk;
    memset(&fk, 0, sizeof fk);
    tolk_dec_backend be = fake_backend(&fk, 2);
    tolk_dec_options o = base_opts();
    o.beam_size = 3;
    tolk_dec_result r;
    CU_ASSERT_EQUAL(tolk_dec_decode(NULL, &be, &t, init, 3, 0, &o, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
}

/* Greedy and beam search through step_select give the results of host
 * filtering, bit for bit (tokens, per-token log-probabilities, sums). */
static void test_step_select(void) {
    tolk_dec_tokens t = toks();
    int sup[4] = {2, SOT, SOT_PREV, NO_SPEECH};
    int init[3] = {SOT, LANG0, TRANSCRIBE};
    int n_same = 0, n_trials = 0;
    for (int trial = 0; trial < 80; trial++) {
        tolk_dec_options o = base_opts();
        o.suppress = sup;
        o.n_suppress = 2 + trial % 3;
        o.timestamps = trial % 4 != 3;
        o.suppress_blank = trial % 5 != 2;
        o.max_initial_timestamp_index = trial % 7 == 0 ? -1 : 3 + trial % 4;
        o.beam_size = trial % 2 ? 2 + trial % 5 : 0;
        o.patience = trial % 3 == 0 ? 1.5f : 1.0f;
        o.sample_len = trial % 9 == 8 ? 5 : 40;
        tolk_dec_result r[2];
        for (int v = 0; v < 2; v++) {
            fake fk;
            memset(&fk, 0, sizeof fk);
            fk.salt = 9000 + (uint64_t)trial;
            fk.eot_slope = 0.1f + 0.05f * (trial % 5);
            tolk_dec_backend be = fake_backend(&fk, MAXS);
            if (v) be.step_select = fake_step_select;
            CU_ASSERT_EQUAL_FATAL(
                tolk_dec_decode(NULL, &be, &t, init, 3, 0, &o, fake_text, NULL, &r[v]), TOLK_OK);
        }
        int same = r[0].n_tokens == r[1].n_tokens && r[0].sum_logprob == r[1].sum_logprob &&
                   r[0].avg_logprob == r[1].avg_logprob;
        for (int i = 0; same && i < r[0].n_tokens; i++)
            same = r[0].tokens[i] == r[1].tokens[i] && r[0].logprobs[i] == r[1].logprobs[i];
        CU_ASSERT(same);
        if (!same)
            fprintf(stderr, "trial %d (beam %d): host %d tokens, select %d tokens\n", trial,
                    o.beam_size, r[0].n_tokens, r[1].n_tokens);
        n_same += same;
        n_trials++;
        tolk_dec_result_clear(&r[0]);
        tolk_dec_result_clear(&r[1]);
    }
    CU_ASSERT_EQUAL(n_same, n_trials);
}

/* The masks as pairs (tolk_dec_filter_ranges) + the timestamp rule equal
 * tolk_dec_apply_filters on random histories; and tolk_select_rows with
 * k = 1 / k > 1 equals argmax / top-k of the filtered log-softmax. */
static void test_filter_ranges(void) {
    tolk_dec_tokens t = toks();
    int sup[5] = {2, 7, 8, SOT, NO_SPEECH};
    uint64_t rng = tolk_rng_seed(77);
    float a[NV], b[NV], lp[NV];
    int bad = 0;
    for (int trial = 0; trial < 400; trial++) {
        tolk_dec_filter f = {.tok = &t,
                             .sample_begin = 3,
                             .suppress_blank = trial % 3 != 0,
                             .suppress = sup,
                             .n_suppress = trial % 6,
                             .timestamps = trial % 5 != 0,
                             .max_initial_timestamp_index = trial % 4 == 0 ? -1 : trial % 9};
        int hist[12], n = trial % 12;
        for (int i = 0; i < n; i++)
            hist[i] = (int)(tolk_rng_uniform(&rng) * NV);
        for (int v = 0; v < NV; v++)
            a[v] = b[v] = (float)(tolk_rng_uniform(&rng) * 10.0 - 5.0);
        if (trial % 7 == 1) /* equal values: ties */
            for (int v = 0; v < NV; v += 3)
                a[v] = b[v] = 1.25f;
        tolk_dec_apply_filters(&f, a, hist, n);
        int cap = tolk_dec_filter_max_ranges(&f);
        int *ranges = malloc((size_t)cap * 2 * sizeof(int));
        int off[2] = {0, tolk_dec_filter_ranges(&f, hist, n, ranges, cap)};
        CU_ASSERT_FATAL(off[1] <= cap);
        float c[NV];
        memcpy(c, b, sizeof c);
        int k = 1 + trial % 6, idx[8];
        float out[8];
        CU_ASSERT_EQUAL_FATAL(tolk_select_rows(c, NV, 1, NV, off, ranges,
                                               tolk_dec_filter_ts_begin(&f), k, idx, out),
                              0);
        bad += memcmp(a, c, sizeof a) != 0; /* the masked logits, exactly */
        tolk_dec_log_softmax(a, NV, lp);
        if (k == 1) {
            int best = 0;
            for (int v = 1; v < NV; v++)
                if (a[v] > a[best]) best = v;
            bad += idx[0] != best || out[0] != lp[best];
        } else {
            for (int j = 0; j < k; j++) { /* descending, first index on ties, values equal */
                bad += out[j] != lp[idx[j]];
                if (j > 0) bad += lp[idx[j]] > lp[idx[j - 1]] ||
                                 (lp[idx[j]] == lp[idx[j - 1]] && idx[j] < idx[j - 1]);
                int greater = 0;
                for (int v = 0; v < NV; v++)
                    greater += lp[v] > lp[idx[j]] || (lp[v] == lp[idx[j]] && v < idx[j]);
                bad += greater != j;
            }
        }
        free(ranges);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_decode_args(void) {
    tolk_dec_tokens t = toks();
    fake fk;
    memset(&fk, 0, sizeof fk);
    tolk_dec_backend be = fake_backend(&fk, 2);
    tolk_dec_options o = base_opts();
    tolk_dec_result r;
    int bad[3] = {LANG0, SOT, TRANSCRIBE};
    CU_ASSERT_EQUAL(tolk_dec_decode(NULL, &be, &t, bad, 3, 0, &o, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
    int oor[3] = {SOT, 999, TRANSCRIBE};
    CU_ASSERT_EQUAL(tolk_dec_decode(NULL, &be, &t, oor, 3, 0, &o, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
    o.temperature = 0.5f; /* no rng */
    int ok[3] = {SOT, LANG0, TRANSCRIBE};
    CU_ASSERT_EQUAL(tolk_dec_decode(NULL, &be, &t, ok, 3, 0, &o, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
}

static void test_fallback_loop(void) {
    tolk_dec_tokens t = toks();
    int init[3] = {SOT, LANG0, TRANSCRIBE};
    float temps[3] = {0.0f, 0.5f, 1.0f};
    fake fk;
    memset(&fk, 0, sizeof fk);
    fk.salt = 77;
    fk.eot_slope = 0.0f; /* EOT unlikely: long outputs with a low log-probability */
    tolk_dec_backend be = fake_backend(&fk, 4);
    tolk_dec_options o = base_opts();
    uint64_t rng = tolk_rng_seed(1);
    o.rng = &rng;
    o.best_of = 3;
    o.timestamps = 0;
    tolk_dec_fallback fb = {.temperatures = temps,
                            .n_temperatures = 3,
                            .compression_ratio_threshold = 2.4f,
                            .logprob_threshold = 0.0f, /* every attempt fails */
                            .no_speech_threshold = 0.0f};
    tolk_dec_result r;
    CU_ASSERT_EQUAL_FATAL(
        tolk_dec_decode_fallback(NULL, &be, &t, init, 3, 0, &o, &fb, fake_text, NULL, &r), TOLK_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.temperature, 1.0, 0.0); /* the last attempt is returned */
    tolk_dec_result_clear(&r);
    fb.logprob_threshold = -100.0f; /* the first attempt passes */
    CU_ASSERT_EQUAL_FATAL(
        tolk_dec_decode_fallback(NULL, &be, &t, init, 3, 0, &o, &fb, fake_text, NULL, &r), TOLK_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.temperature, 0.0, 0.0);
    tolk_dec_result_clear(&r);
}

static void test_rng(void) {
    uint64_t a = tolk_rng_seed(42), b = tolk_rng_seed(42);
    double m = 0;
    for (int i = 0; i < 10000; i++) {
        double u = tolk_rng_uniform(&a);
        CU_ASSERT(u >= 0.0 && u < 1.0);
        CU_ASSERT_EQUAL(u, tolk_rng_uniform(&b));
        m += u;
    }
    CU_ASSERT_DOUBLE_EQUAL(m / 10000, 0.5, 0.02);
    /* sampling never picks a masked entry and follows the distribution */
    float lg[4] = {0.0f, -INFINITY, logf(3.0f), -INFINITY};
    int count[4] = {0};
    for (int i = 0; i < 20000; i++)
        count[tolk_dec_sample(lg, 4, 1.0f, &a)]++;
    CU_ASSERT_EQUAL(count[1] + count[3], 0);
    CU_ASSERT_DOUBLE_EQUAL(count[2] / 20000.0, 0.75, 0.02);
}

/* the piecewise mel window of transcribe.c against the whole padded mel */
static void test_mel_window(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, 80, &mel), TOLK_OK);
    const size_t n = 16000 * 67 + 123; /* three pieces of pass 1 */
    float *x = calloc(n + TOLK_N_SAMPLES, sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    tu_seed(3);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.3f * sinf((float)i * 0.05f * (1.0f + (float)(i / 16000) * 0.1f)) *
                   (i > 16000 * 40 ? 2.5f : 1.0f) +
               tu_uniform(-0.01f, 0.01f);
    float *full = NULL;
    size_t nf = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(ctx, mel, x, n + TOLK_N_SAMPLES, &full, &nf),
                          TOLK_OK);
    float *win = malloc(80 * TOLK_N_FRAMES * sizeof(float));
    const size_t content = nf - TOLK_N_FRAMES;
    CU_ASSERT_EQUAL(content, n / 160);
    const size_t seeks[5] = {0, 1, 1234, 4000, content - 517};
    for (int k = 0; k < 5; k++) {
        size_t seek = seeks[k];
        size_t size = content - seek < TOLK_N_FRAMES ? content - seek : TOLK_N_FRAMES;
        size_t cf = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_tr_mel_window(ctx, mel, x, n, seek, size, win, &cf), TOLK_OK);
        CU_ASSERT_EQUAL(cf, content);
        double err = 0;
        int pad_ok = 1;
        for (int m = 0; m < 80; m++) {
            for (size_t j = 0; j < size; j++) {
                double d = fabs((double)win[m * TOLK_N_FRAMES + j] - full[m * nf + seek + j]);
                if (d > err) err = d;
            }
            for (size_t j = size; j < TOLK_N_FRAMES; j++)
                pad_ok &= win[m * TOLK_N_FRAMES + j] == 0;
        }
        CU_ASSERT(err < 1e-5);
        CU_ASSERT(pad_ok);
        if (err >= 1e-5) fprintf(stderr, "seek %zu: max error %g\n", seek, err);
    }
    free(win);
    tolk_free(full);
    free(x);
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
}

int main(void) {
    CU_TestInfo tests[] = {{"compression_ratio", test_compression_ratio},
                           {"filters_fixed", test_filters_fixed},
                           {"filters_random", test_filters_random},
                           {"suppress_option", test_suppress_option},
                           {"language", test_language},
                           {"fallback_rule", test_fallback_rule},
                           {"greedy_and_sampling", test_greedy_and_sampling},
                           {"beam", test_beam},
                           {"step_select", test_step_select},
                           {"filter_ranges", test_filter_ranges},
                           {"decode_args", test_decode_args},
                           {"fallback_loop", test_fallback_loop},
                           {"rng", test_rng},
                           {"mel_window", test_mel_window},
                           CU_TEST_INFO_NULL};
    tu_add_suite("decode", tests);
    return tu_run();
}

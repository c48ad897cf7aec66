/*
 * test_stream.c — live streams (tolk_stream) and what they add below:
 *   - without weights: the commit policies (LocalAgreement-n, the fast
 *     policy) on made-up hypotheses, a randomised run checking that what
 *     is committed is never taken back and only agreed or settled words
 *     are; the timestamp rules over a forced prefix equal the rules over
 *     the same tokens sampled; the speech gate (energy levels, pauses);
 *     bad parameters;
 *   - with tiny.en: a window request (tolk_engine_submit_window) equals
 *     the first window of tolk_transcribe; a forced prefix of the model's
 *     own tokens continues exactly as the unforced decode; the encoder
 *     over a reduced audio context still transcribes; streams over clips
 *     (times monotonic, FINAL text never retracted and matching the
 *     offline transcript, the end of input flushes everything, several
 *     streams at once, s16 at 8 kHz stereo through the resampler, bad
 *     pushes).
 *
 * ctest-labels: tsan models
 */
#include "engine.h"
#include "stream_internal.h"
#include "testutil.h"
#include "tolk.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- policies without a model --------------------------------------------------- */

/* A hypothesis of words (texts; probabilities p, ends e seconds). */
static tolk_sp_hyp mkhyp(int n, const char *const *w, const float *p, const double *e) {
    tolk_sp_hyp h = {calloc((size_t)(n > 0 ? n : 1), sizeof(tolk_sp_word)), n, 0.0};
    for (int i = 0; i < n; i++) {
        h.w[i].text = strdup(w[i]);
        h.w[i].p_min = p ? p[i] : 1.0f;
        h.w[i].end = e ? e[i] : 0.0;
        h.w[i].a = i;
        h.w[i].b = i + 1;
        h.w[i].ts_after = -1;
    }
    return h;
}

static void test_local_agreement(void) {
    tolk_sp_policy la2 = {.fast = 0, .n = 2}, la3 = {.fast = 0, .n = 3};
    tolk_sp_state s2 = {0}, s3 = {0};
    const char *h1[] = {" the", " cat"}, *h2[] = {" the", " cat", " sat"},
               *h3[] = {" the", " cap", " sat", " on"};
    tolk_sp_hyp a = mkhyp(2, h1, NULL, NULL), b = mkhyp(3, h2, NULL, NULL),
                c = mkhyp(4, h3, NULL, NULL);
    /* the first hypothesis commits nothing */
    CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &s2, &a, 5.0, 0), 0);
    CU_ASSERT_EQUAL(tolk_sp_decide(&la3, &s3, &a, 5.0, 0), 0);
    CU_ASSERT_EQUAL(tolk_sp_push(&s2, &a, 0), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_sp_push(&s3, &a, 0), TOLK_OK);
    /* LA-2 commits the common prefix of two; LA-3 waits for three */
    CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &s2, &b, 5.0, 0), 2);
    CU_ASSERT_EQUAL(tolk_sp_decide(&la3, &s3, &b, 5.0, 0), 0);
    CU_ASSERT_EQUAL(tolk_sp_push(&s2, &b, 2), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_sp_push(&s3, &b, 0), TOLK_OK);
    CU_ASSERT_EQUAL(s2.n_prev[0], 1);
    CU_ASSERT_STRING_EQUAL(s2.prev[0][0], " sat");
    /* LA-3: " the" agrees in all three, " cap" breaks it */
    CU_ASSERT_EQUAL(tolk_sp_decide(&la3, &s3, &c, 5.0, 0), 1);
    /* an end of utterance commits everything */
    CU_ASSERT_EQUAL(tolk_sp_decide(&la3, &s3, &c, 5.0, 1), 4);
    tolk_sp_hyp_clear(&a), tolk_sp_hyp_clear(&b), tolk_sp_hyp_clear(&c);
    tolk_sp_reset(&s2), tolk_sp_reset(&s3);
}

static void test_fast_policy(void) {
    tolk_sp_policy f = {.fast = 1, .n = 2, .margin = 0.5, .min_prob = 0.5f};
    tolk_sp_state st = {0};
    const char *w[] = {" one", " two", " three", " four"};
    const float p[] = {0.9f, 0.9f, 0.3f, 0.9f};
    const double e[] = {1.0, 2.0, 2.6, 3.0};
    tolk_sp_hyp h = mkhyp(4, w, p, e);
    /* audio to 3.0 s: " one" and " two" end >= 0.5 s before; " three" is
     * unsure; the last word is never committed alone */
    CU_ASSERT_EQUAL(tolk_sp_decide(&f, &st, &h, 3.0, 0), 2);
    /* audio to 2.4 s: only " one" is settled */
    CU_ASSERT_EQUAL(tolk_sp_decide(&f, &st, &h, 2.4, 0), 1);
    /* with agreement from a previous hypothesis, LA-2 goes further — but
     * not to the last word, which ends past the audio heard (the audio may
     * still be cutting it) */
    CU_ASSERT_EQUAL(tolk_sp_push(&st, &h, 0), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_sp_decide(&f, &st, &h, 2.4, 0), 3);
    /* once the audio runs margin past it, the agreed last word goes too */
    CU_ASSERT_EQUAL(tolk_sp_decide(&f, &st, &h, 3.5, 0), 4);
    tolk_sp_hyp_clear(&h);
    tolk_sp_reset(&st);
}

/* LocalAgreement-2 with a margin: two updates a quarter second apart agree
 * on "seems extreme." while the speaker is saying "extremely distant" (the
 * stream bench); the agreed last word waits until the audio runs margin_s
 * past its end — and, when it ends a sentence (or trails off, or is cut),
 * until a word follows it or the utterance ends: "relief for centuries."
 * committed while "for centuries before" was being said came back as "for
 * centuries. for centuries before" (the stream bench). */
static void test_agreement_edge(void) {
    tolk_sp_policy la2 = {.fast = 0, .n = 2, .margin = 0.5};
    const char *marks[] = {" extreme.",
                           " extreme?",
                           " extreme!",
                           " extre-",
                           " extreme...",
                           " extreme\xe2\x80\xa6",
                           " extreme\xe2\x80\x94",
                           " extreme"};
    for (int m = 0; m < 8; m++) {
        tolk_sp_state st = {0};
        const char *w[] = {" seems", marks[m]};
        const double e[] = {0.8, 1.55};
        tolk_sp_hyp h = mkhyp(2, w, NULL, e);
        CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &st, &h, 1.6, 0), 0);
        CU_ASSERT_EQUAL(tolk_sp_push(&st, &h, 0), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &st, &h, 1.85, 0), 1);
        /* past the margin: a plain word goes, a marked one waits */
        CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &st, &h, 2.1, 0), m == 7 ? 2 : 1);
        CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &st, &h, 1.85, 1), 2); /* the end of an utterance */
        /* the fast policy holds it too */
        tolk_sp_policy f = la2;
        f.fast = 1;
        f.min_prob = 0.5f;
        CU_ASSERT_EQUAL(tolk_sp_decide(&f, &st, &h, 2.1, 0), m == 7 ? 2 : 1);
        /* a marked word that is not the last is committed */
        const char *w3[] = {" seems", marks[m], " distant"};
        const double e3[] = {0.8, 1.55, 1.7};
        tolk_sp_hyp h3 = mkhyp(3, w3, NULL, e3);
        tolk_sp_state st3 = {0};
        CU_ASSERT_EQUAL(tolk_sp_push(&st3, &h3, 0), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_sp_decide(&la2, &st3, &h3, 2.5, 0), 3);
        tolk_sp_hyp_clear(&h3);
        tolk_sp_reset(&st3);
        tolk_sp_hyp_clear(&h);
        tolk_sp_reset(&st);
    }
}

/* Randomised: hypotheses drawn around a true word sequence, committed words
 * forced as the next hypothesis' beginning (as stream.c does). What is
 * committed only grows, and under LocalAgreement-n every committed word
 * was in n hypotheses. */
static void test_never_retract(void) {
    static const char *const vocab[] = {" a", " b", " c", " d", " e", " f"};
    tu_seed(42);
    for (int trial = 0; trial < 200; trial++) {
        int n = 2 + trial % 3;
        tolk_sp_policy pol = {.fast = trial % 2, .n = n, .margin = 0.3, .min_prob = 0.6f};
        tolk_sp_state st = {0};
        const char *committed[200];
        int n_comm = 0;
        /* each word of the last n hypotheses at the same committed position */
        const char *hist[8][64];
        int hist_n[8] = {0}, hist_base[8] = {0}, n_hist = 0;
        for (int step = 0; step < 40 && n_comm < 150; step++) {
            int m = 1 + (int)tu_uniform(0.0f, 6.0f);
            const char *w[8];
            float p[8];
            double e[8];
            for (int i = 0; i < m; i++) {
                /* mostly the "truth" (index by absolute position), sometimes noise */
                int pos = n_comm + i;
                w[i] = tu_uniform(0, 1) < 0.8f ? vocab[pos % 6] : vocab[(int)tu_uniform(0, 6) % 6];
                p[i] = tu_uniform(0.0f, 1.0f);
                e[i] = 0.5 * (i + 1);
            }
            tolk_sp_hyp h = mkhyp(m, w, p, e);
            int final = step == 39;
            int k = tolk_sp_decide(&pol, &st, &h, 0.5 * m + tu_uniform(0.0f, 1.0f), final);
            CU_ASSERT(k >= 0 && k <= m);
            if (!pol.fast && !final && k > 0) {
                /* LA-n: the committed words are in the n - 1 previous hypotheses too */
                CU_ASSERT(n_hist >= n - 1);
                for (int q = 0; q < n - 1 && q < n_hist; q++) {
                    int hq = (n_hist - 1 - q) % 8;
                    for (int i = 0; i < k; i++) {
                        int idx = n_comm + i - hist_base[hq];
                        CU_ASSERT(idx >= 0 && idx < hist_n[hq]);
                        if (idx >= 0 && idx < hist_n[hq])
                            CU_ASSERT_STRING_EQUAL(hist[hq][idx], w[i]);
                    }
                }
            }
            /* remember this hypothesis at absolute positions */
            int hs = n_hist % 8;
            hist_base[hs] = n_comm;
            hist_n[hs] = m;
            for (int i = 0; i < m; i++)
                hist[hs][i] = w[i];
            n_hist++;
            int before = n_comm;
            for (int i = 0; i < k; i++)
                committed[n_comm++] = w[i];
            CU_ASSERT(n_comm >= before); /* never shrinks */
            CU_ASSERT_EQUAL(tolk_sp_push(&st, &h, k), TOLK_OK);
            /* the state's newest tail is what is left of this hypothesis */
            CU_ASSERT_EQUAL(st.n_prev[0], m - k);
            tolk_sp_hyp_clear(&h);
        }
        (void)committed;
        tolk_sp_reset(&st);
    }
}

static void test_loop_start(void) {
    const char *a[] = {" the", " cat", " sat", " on"};
    const char *b[] = {" and", " so", " n,", " n,", " n,", " n,", " n,"};
    const char *c[] = {" go", " a", " b", " a", " b", " a", " b", " stop"};
    const char *d[] = {" no", " no", " no", " way"}; /* three is speech */
    tolk_sp_hyp h = mkhyp(4, a, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_loop_start(&h), 4);
    tolk_sp_hyp_clear(&h);
    h = mkhyp(7, b, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_loop_start(&h), 3);
    tolk_sp_hyp_clear(&h);
    h = mkhyp(8, c, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_loop_start(&h), 3);
    tolk_sp_hyp_clear(&h);
    h = mkhyp(4, d, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_loop_start(&h), 4);
    tolk_sp_hyp_clear(&h);
}

/* A hypothesis that says again what was already said — the committed
 * text, the prompt (the previous utterance), or its own first part (the
 * "Mr. Quilter is | the apostle ... gospel. Mr. Quilter is the apostle ...
 * gospel." of the stream bench): cut at the word where the repeated run of
 * tokens begins; shorter runs (real speech repeats a phrase) and timestamps
 * between the tokens do not matter. */
static void test_repeat_start(void) {
    enum { TB = 50364 };
    /* words of one token each */
    const char *w[32];
    for (int i = 0; i < 32; i++)
        w[i] = " w";
    int committed[14], tail[32];
    for (int i = 0; i < 12; i++)
        committed[i + (i >= 6)] = 200 + i;
    committed[6] = TB + 30; /* a timestamp inside the committed text */
    committed[13] = TB + 60;
    /* tail: 3 new tokens, then the committed sentence again */
    tail[0] = 300, tail[1] = 301, tail[2] = 302;
    for (int i = 0; i < 12; i++)
        tail[3 + i] = 200 + i;
    tail[15] = TB + 90;
    tolk_sp_hyp h = mkhyp(15, w, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, tail, 16, NULL, 0, committed, 14, TB), 3);
    /* a repeat shorter than TOLK_SP_REPEAT_TOKENS is speech: no cut */
    CU_ASSERT_EQUAL(
        tolk_sp_repeat_start(&h, tail, 3 + TOLK_SP_REPEAT_TOKENS - 1, NULL, 0, committed, 14, TB),
        15);
    /* nothing said before: no cut */
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, tail, 16, NULL, 0, committed, 0, TB), 15);
    /* the previous utterance's text (the prompt) said again */
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, tail, 16, committed, 14, NULL, 0, TB), 3);
    tolk_sp_hyp_clear(&h);

    /* the tail says itself twice: committed a short prefix (3 tokens), the
     * tail holds 12 new tokens, then prefix + those 12 again */
    int pre[3] = {400, 401, 402}, t2[32];
    int n2 = 0;
    for (int i = 0; i < 12; i++)
        t2[n2++] = 500 + i;
    t2[n2++] = TB + 100; /* a segment ends between the two copies */
    const int second = n2;
    for (int i = 0; i < 3; i++)
        t2[n2++] = pre[i];
    for (int i = 0; i < 12; i++)
        t2[n2++] = 500 + i;
    h = mkhyp(n2, w, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t2, n2, NULL, 0, pre, 3, TB), second);
    tolk_sp_hyp_clear(&h);

    /* an echo: the tail starts by saying the just-committed sentence (7
     * tokens, shorter than TOLK_SP_REPEAT_TOKENS) again back to back — "The
     * horizon seems extremely distant. The horizon seems extremely distant."
     * — cut at 0; a block shorter than TOLK_SP_ECHO_TOKENS is speech */
    int said[7] = {600, 601, 602, 603, 604, 605, 606}, t3[10];
    for (int i = 0; i < 7; i++)
        t3[i] = said[i];
    t3[7] = 700, t3[8] = 701, t3[9] = 702;
    h = mkhyp(10, w, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t3, 10, NULL, 0, said, 7, TB), 0);
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t3, 10, said, 7, NULL, 0, TB), 0);
    /* the same block not right before the tail (other words between): no echo */
    int apart[9] = {600, 601, 602, 603, 604, 605, 606, 650, 651};
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t3, 10, NULL, 0, apart, 9, TB), 10);
    tolk_sp_hyp_clear(&h);
    /* a run that begins inside a word: the prompt ends a sentence ("myself
     * ."), the committed text goes on ("Mr . Quilter ..."), and the tail's
     * new last word is " gospel ." before the committed text is said
     * again: the run ". Mr . Quilter ..." starts at gospel's "." — the cut
     * keeps " gospel." (the stream bench lost it) */
    {
        int prompt[2] = {800, 13}, comm[12], t5[40], n5 = 0;
        for (int i = 0; i < 12; i++)
            comm[i] = 900 + i;
        t5[n5++] = 950; /* " gospel" */
        t5[n5++] = 13;  /* "." */
        for (int i = 0; i < 12; i++)
            t5[n5++] = comm[i];
        /* words: " gospel." = tokens [0, 2), then one word per token */
        const char *w5[13];
        for (int i = 0; i < 13; i++)
            w5[i] = " w";
        h = mkhyp(13, w5, NULL, NULL);
        h.w[0].a = 0, h.w[0].b = 2;
        for (int i = 1; i < 13; i++)
            h.w[i].a = i + 1, h.w[i].b = i + 2;
        CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t5, n5, prompt, 2, comm, 12, TB), 1);
        tolk_sp_hyp_clear(&h);
    }
    int said5[5] = {600, 601, 602, 603, 604}, t4[8] = {600, 601, 602, 603, 604, 700, 701, 702};
    h = mkhyp(8, w, NULL, NULL);
    CU_ASSERT_EQUAL(tolk_sp_repeat_start(&h, t4, 8, NULL, 0, said5, 5, TB),
                    5 < TOLK_SP_ECHO_TOKENS ? 8 : 0);
    tolk_sp_hyp_clear(&h);
}

/* The timestamp rules over a forced prefix equal the rules over the same
 * tokens as sampled ones. */
static void test_ts_prefix_rules(void) {
    const int nv = 100, tb = 60, eot = 50;
    tolk_dec_tokens t = {.n_vocab = nv,
                         .eot = eot,
                         .sot = 51,
                         .sot_prev = 52,
                         .sot_lm = 53,
                         .no_speech = 54,
                         .no_timestamps = 55,
                         .timestamp_begin = tb,
                         .transcribe = 56,
                         .translate = 57,
                         .blank = 1};
    const int seqs[][6] = {{61, 5, 6, 70, 70, 7}, {60, 3, 65}, {62}, {60, 4, 4, 4, 80, 81}};
    const int lens[] = {6, 3, 1, 6};
    for (int q = 0; q < 4; q++)
        for (int cut = 0; cut <= lens[q]; cut++) {
            tolk_dec_filter a = {.tok = &t, .timestamps = 1, .max_initial_timestamp_index = 50};
            tolk_dec_filter b = a;
            b.ts_prefix = seqs[q];
            b.n_ts_prefix = cut;
            float la[100], lb[100];
            for (int i = 0; i < nv; i++)
                la[i] = lb[i] = (float)((i * 37) % 11) - 5.0f;
            tolk_dec_apply_filters(&a, la, seqs[q], lens[q]);
            tolk_dec_apply_filters(&b, lb, seqs[q] + cut, lens[q] - cut);
            CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
        }
}

static void test_gate(void) {
    tolk_gate g;
    CU_ASSERT_EQUAL_FATAL(tolk_gate_energy_new(&g), TOLK_OK);
    tolk_gate_track tr = {.pause_chunks = 16};
    float x[TOLK_GATE_CHUNK * 3], probs[4];
    size_t np = 0;
    int onsets = 0, pauses = 0;
    tu_seed(3);
    /* 2 s of quiet noise, 1 s of a loud tone, 1 s of quiet: one utterance */
    for (int blk = 0; blk < 40; blk++) {
        int loud = blk >= 20 && blk < 30;
        for (int i = 0; i < TOLK_GATE_CHUNK * 3; i++)
            x[i] = loud ? 0.3f * sinf(0.05f * (float)(blk * 1536 + i)) : tu_uniform(-1e-3f, 1e-3f);
        /* pieces of odd sizes */
        size_t a = 700, b = TOLK_GATE_CHUNK * 3 - 700;
        CU_ASSERT_EQUAL(g.push(g.impl, NULL, x, a, probs, &np), TOLK_OK);
        for (size_t i = 0; i < np; i++) {
            tolk_gate_event ev = tolk_gate_track_chunk(&tr, probs[i]);
            onsets += ev == TOLK_GATE_ONSET;
            pauses += ev == TOLK_GATE_PAUSE;
        }
        CU_ASSERT_EQUAL(g.push(g.impl, NULL, x + a, b, probs, &np), TOLK_OK);
        for (size_t i = 0; i < np; i++) {
            tolk_gate_event ev = tolk_gate_track_chunk(&tr, probs[i]);
            onsets += ev == TOLK_GATE_ONSET;
            pauses += ev == TOLK_GATE_PAUSE;
        }
    }
    CU_ASSERT_EQUAL(onsets, 1);
    CU_ASSERT_EQUAL(pauses, 1);
    g.free(g.impl);
    /* the none gate: all speech, never a pause */
    CU_ASSERT_EQUAL_FATAL(tolk_gate_none_new(&g), TOLK_OK);
    tolk_gate_track t2 = {.pause_chunks = 2};
    CU_ASSERT_EQUAL(g.push(g.impl, NULL, x, 1500, probs, &np), TOLK_OK);
    CU_ASSERT_EQUAL(np, 2);
    CU_ASSERT_EQUAL(tolk_gate_track_chunk(&t2, probs[0]), TOLK_GATE_ONSET);
    CU_ASSERT_EQUAL(tolk_gate_track_chunk(&t2, probs[1]), TOLK_GATE_SPEECH);
    g.free(g.impl);
}

/* Sentence ends (a held pause ends once the text has one). */
static void test_ends_sentence(void) {
    CU_ASSERT(tolk_sp_ends_sentence(" gospel."));
    CU_ASSERT(tolk_sp_ends_sentence(" why?"));
    CU_ASSERT(tolk_sp_ends_sentence(" now!\""));
    CU_ASSERT(tolk_sp_ends_sentence(" (this.)"));
    CU_ASSERT(!tolk_sp_ends_sentence(" his"));
    CU_ASSERT(!tolk_sp_ends_sentence(" his,"));
    CU_ASSERT(!tolk_sp_ends_sentence(" his..."));
    CU_ASSERT(!tolk_sp_ends_sentence(" his-"));
    CU_ASSERT(!tolk_sp_ends_sentence(" his\xe2\x80\x94"));
    CU_ASSERT(!tolk_sp_ends_sentence(""));
    CU_ASSERT(!tolk_sp_ends_sentence(NULL));
}

/* ---- with tiny.en ------------------------------------------------------------------ */

static tolk_ctx *g_ctx;
static tolk_model *g_tiny;
static tolk_engine *g_e;
static float *g_jfk, *g_ls;
static size_t g_njfk, g_nls;

static int setup(void) {
    if (g_e) return 1;
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return 0;
    if (!g_ctx) CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &g_ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(g_ctx, dir, NULL, &g_tiny), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(g_ctx, tu_shared("speech/jfk.flac"), &g_jfk, &g_njfk),
                          TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(
        tolk_audio_load(g_ctx, tu_shared("speech/en/librispeech/test-clean_1089-134686-0002.flac"),
                        &g_ls, &g_nls),
        TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, NULL, &g_e), TOLK_OK);
    return 1;
}

static void cleanup(void) {
    tolk_engine_free(g_e);
    tolk_model_free(g_tiny);
    tolk_free(g_jfk);
    tolk_free(g_ls);
    tolk_ctx_free(g_ctx);
}

/* Gate events of x (16 kHz) through g, in pieces of 700 samples: onset and
 * pause chunk indices (up to 8 each). */
static void gate_events(tolk_gate *g, const float *x, size_t n, int pause_chunks, int *on,
                        int *n_on, int *off, int *n_off) {
    tolk_gate_track tr = {.pause_chunks = pause_chunks};
    float probs[4];
    size_t np = 0;
    int chunk = 0;
    *n_on = *n_off = 0;
    for (size_t i = 0; i < n; i += 700) {
        size_t m = n - i < 700 ? n - i : 700;
        CU_ASSERT_EQUAL_FATAL(g->push(g->impl, g_ctx, x + i, m, probs, &np), TOLK_OK);
        for (size_t j = 0; j < np; j++, chunk++) {
            tolk_gate_event ev = tolk_gate_track_chunk(&tr, probs[j]);
            if (ev == TOLK_GATE_ONSET && *n_on < 8) on[(*n_on)++] = chunk;
            if (ev == TOLK_GATE_PAUSE && *n_off < 8) off[(*n_off)++] = chunk;
        }
    }
}

/* The Silero gate (needs scripts/get-model silero-vad): on a clip between
 * silences, speech starts where the energy gate hears it (the clip's first
 * loud chunk) and one pause ends it after the clip; a loud tone is speech
 * to the energy gate, not to Silero. */
static void test_gate_silero(void) {
    if (!setup()) return;
    const char *dir = tu_require_model("silero-vad");
    if (!dir) return;
    tolk_vad *vad = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_vad_load(g_ctx, dir, &vad), TOLK_OK);
    const size_t lead = 16000, tail = 24000, n = lead + g_nls + tail;
    float *x = calloc(n, sizeof(float));
    memcpy(x + lead, g_ls, g_nls * sizeof(float));
    tolk_gate sg, eg;
    CU_ASSERT_EQUAL_FATAL(tolk_gate_silero_new(&sg, g_ctx, vad), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_gate_energy_new(&eg), TOLK_OK);
    int on[8], off[8], n_on, n_off, eon[8], eoff[8], en_on, en_off;
    gate_events(&sg, x, n, 16, on, &n_on, off, &n_off);
    gate_events(&eg, x, n, 16, eon, &en_on, eoff, &en_off);
    printf("  silero: %d onsets (first %.3f s), %d pauses (last %.3f s); energy: first onset "
           "%.3f s\n",
           n_on, n_on ? on[0] * 0.032 : -1.0, n_off, n_off ? off[n_off - 1] * 0.032 : -1.0,
           en_on ? eon[0] * 0.032 : -1.0);
    CU_ASSERT(n_on >= 1 && n_on == n_off);
    /* within two chunks of the energy gate's onset (speech starts 0.38 s into the clip) */
    CU_ASSERT(en_on >= 1 && n_on >= 1 && abs(on[0] - eon[0]) <= 2);
    CU_ASSERT(n_on >= 1 && on[0] * 512 >= (int)lead);
    /* the last pause: 0.5 s of silence after the clip's speech, before the input ends */
    CU_ASSERT(n_off >= 1 && (size_t)off[n_off - 1] * 512 >= lead + g_nls - 8000 &&
              (size_t)off[n_off - 1] * 512 < n - 4000);
    sg.free(sg.impl);
    eg.free(eg.impl);
    /* 2 s of a loud 440 Hz tone after 1 s of silence */
    for (size_t i = 0; i < 48000; i++)
        x[i] = i < 16000 ? 0.0f : 0.3f * sinf(2.0f * 3.14159265f * 440.0f * (float)i / 16000.0f);
    CU_ASSERT_EQUAL_FATAL(tolk_gate_silero_new(&sg, g_ctx, vad), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_gate_energy_new(&eg), TOLK_OK);
    gate_events(&sg, x, 48000, 16, on, &n_on, off, &n_off);
    gate_events(&eg, x, 48000, 16, eon, &en_on, eoff, &en_off);
    CU_ASSERT_EQUAL(n_on, 0);
    CU_ASSERT_EQUAL(en_on, 1);
    sg.free(sg.impl);
    eg.free(eg.impl);
    /* no model: a clean error */
    CU_ASSERT_EQUAL(tolk_gate_silero_new(&sg, g_ctx, NULL), TOLK_ERR_INVALID_ARG);
    free(x);
    tolk_vad_free(vad);
}

static tolk_transcribe_params greedy(void) {
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.n_temperatures = 1;
    return p;
}

/* A window request, waited for; its decode in *dr. */
static tolk_status window(const float *x, size_t n, const tolk_lf_input *win, tolk_dec_result *dr) {
    tolk_transcribe_params p = greedy();
    tolk_request *r = NULL;
    tolk_status s = tolk_engine_submit_window(g_e, x, n, &p, win, NULL, NULL, NULL, &r);
    if (s != TOLK_OK) return s;
    s = tolk_request_wait(r);
    int skipped = 0;
    char lang[8];
    if (s == TOLK_OK) s = tolk_request_window(r, dr, &skipped, lang);
    if (s == TOLK_OK) CU_ASSERT_STRING_EQUAL(lang, "en");
    tolk_request_free(r);
    return s;
}

static void test_window_request(void) {
    if (!setup()) return;
    /* the offline transcript: one window (11 s) */
    tolk_state *st = NULL;
    tolk_result *res = NULL;
    tolk_transcribe_params p = greedy();
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, g_tiny, &st), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, g_jfk, g_njfk, &p, &res), TOLK_OK);
    int all[512], n_all = 0;
    for (int i = 0; i < tolk_result_n_segments(res); i++)
        for (int j = 0; j < tolk_result_segment(res, i)->n_tokens; j++)
            all[n_all++] = tolk_result_segment(res, i)->tokens[j];
    /* a full-context window gives the same tokens */
    tolk_lf_input w = {.one_window = 1};
    tolk_dec_result dr;
    CU_ASSERT_EQUAL_FATAL(window(g_jfk, g_njfk, &w, &dr), TOLK_OK);
    CU_ASSERT_EQUAL(dr.n_tokens, n_all);
    CU_ASSERT(dr.n_tokens == n_all && !memcmp(dr.tokens, all, (size_t)n_all * sizeof(int)));
    /* a forced prefix of its own tokens (timestamps included) continues
     * exactly as the unforced decode */
    for (int cut = 1; cut < n_all; cut += n_all / 3) {
        tolk_lf_input wp = {.one_window = 1, .prefix_tokens = all, .n_prefix_tokens = (size_t)cut};
        tolk_dec_result d2;
        CU_ASSERT_EQUAL_FATAL(window(g_jfk, g_njfk, &wp, &d2), TOLK_OK);
        CU_ASSERT_EQUAL(d2.n_tokens, n_all - cut);
        CU_ASSERT(d2.n_tokens == n_all - cut &&
                  !memcmp(d2.tokens, all + cut, (size_t)(n_all - cut) * sizeof(int)));
        tolk_dec_result_clear(&d2);
    }
    /* asked to close the prefix's segment, the model's first token is a
     * timestamp no earlier than the prefix's text can end */
    const int eot = tolk_engine_asr(g_e)->dt.eot;
    int cut_text = 0; /* a cut right after a text token, before another one */
    for (int i = n_all / 2; i + 1 < n_all && !cut_text; i++)
        if (all[i] < eot && all[i + 1] < eot) cut_text = i + 1;
    if (cut_text > 0) {
        tolk_lf_input wc = {.one_window = 1,
                            .prefix_tokens = all,
                            .n_prefix_tokens = (size_t)cut_text,
                            .close_prefix = 1};
        tolk_dec_result d4;
        CU_ASSERT_EQUAL_FATAL(window(g_jfk, g_njfk, &wc, &d4), TOLK_OK);
        const int tb = tolk_engine_asr(g_e)->dt.timestamp_begin;
        CU_ASSERT(d4.n_tokens > 0 && d4.tokens[0] >= tb);
        int last_ts = tb;
        for (int i = 0; i < cut_text; i++)
            if (all[i] >= tb) last_ts = all[i];
        CU_ASSERT(d4.n_tokens > 0 && d4.tokens[0] > last_ts);
        printf("  closing timestamp after %d prefix tokens: %.2f s\n", cut_text,
               d4.n_tokens > 0 ? 0.02 * (d4.tokens[0] - tb) : -1.0);
        tolk_dec_result_clear(&d4);
    }
    /* timestamps past max_timestamp are never chosen */
    tolk_lf_input wm = {.one_window = 1, .max_timestamp = 200};
    tolk_dec_result d5;
    CU_ASSERT_EQUAL_FATAL(window(g_jfk, g_njfk, &wm, &d5), TOLK_OK);
    for (int i = 0; i < d5.n_tokens; i++)
        CU_ASSERT(d5.tokens[i] <= tolk_engine_asr(g_e)->dt.timestamp_begin + 200);
    tolk_dec_result_clear(&d5);
    /* the encoder over the audio present plus 1 s: the same words */
    tolk_lf_input wr = {.one_window = 1, .audio_ctx = 550 + 50};
    tolk_dec_result d3;
    CU_ASSERT_EQUAL_FATAL(window(g_jfk, g_njfk, &wr, &d3), TOLK_OK);
    char *t3 = tolk_asr_text((void *)tolk_engine_asr(g_e), d3.tokens, d3.n_tokens);
    printf("  audio_ctx 600: %s\n", t3);
    CU_ASSERT(t3 && strstr(t3, "ask not what your country can do for you"));
    free(t3);
    tolk_dec_result_clear(&d3);
    /* bad options fail cleanly */
    tolk_request *r = NULL;
    tolk_lf_input bad = {.one_window = 1, .audio_ctx = 1501};
    CU_ASSERT_EQUAL(tolk_engine_submit_window(g_e, g_jfk, g_njfk, &p, &bad, NULL, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
    int huge = 1 << 20;
    tolk_lf_input bad2 = {.one_window = 1, .prefix_tokens = &huge, .n_prefix_tokens = 1};
    CU_ASSERT_EQUAL(tolk_engine_submit_window(g_e, g_jfk, g_njfk, &p, &bad2, NULL, NULL, NULL, &r),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        tolk_engine_submit_window(g_e, g_jfk, TOLK_N_SAMPLES + 1, &p, &w, NULL, NULL, NULL, &r),
        TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    tolk_dec_result_clear(&dr);
    tolk_result_free(res);
    tolk_state_free(st);
}

/* Events of one stream, checked as they come. */
typedef struct events {
    pthread_mutex_t mu;
    char final[4096];
    int n_final, n_partial, n_end, after_end, bad_time;
    double last_end;
    tolk_status end_status;
    int have_first;       /* a PARTIAL or FINAL with text came */
    size_t first_fed;     /* samples pushed when it came (synchronous streams) */
    tolk_stream_stats st; /* at the end */
} events;

static size_t g_fed; /* samples pushed so far by run_stream, the current piece included */

static void on_event(void *user, const tolk_stream_event *ev) {
    events *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->n_end) e->after_end++;
    if (ev->end < ev->start) e->bad_time++;
    if (!e->have_first && ev->type != TOLK_STREAM_END && *ev->text) {
        e->have_first = 1;
        e->first_fed = g_fed;
    }
    switch (ev->type) {
    case TOLK_STREAM_FINAL:
        if (ev->start < e->last_end - 1e-9) e->bad_time++;
        e->last_end = ev->end;
        strncat(e->final, ev->text, sizeof e->final - strlen(e->final) - 1);
        e->n_final++;
        break;
    case TOLK_STREAM_PARTIAL:
        if (*ev->text && ev->start < e->last_end - 1e-9) e->bad_time++;
        e->n_partial++;
        break;
    case TOLK_STREAM_END:
        e->n_end++;
        e->end_status = ev->status;
        break;
    }
    pthread_mutex_unlock(&e->mu);
}

/* Lower-case letters and spaces of s, words single-spaced, into out. */
static void norm(const char *s, char *out, size_t n) {
    size_t k = 0;
    int sp = 1;
    for (; *s && k + 1 < n; s++) {
        if (isalnum((unsigned char)*s) || *s == '\'') {
            out[k++] = (char)tolower((unsigned char)*s);
            sp = 0;
        } else if (!sp) {
            out[k++] = ' ';
            sp = 1;
        }
    }
    while (k > 0 && out[k - 1] == ' ')
        k--;
    out[k] = '\0';
}

/* Run a stream over x (16 kHz) in pieces of `piece` samples. */
static void run_stream(tolk_stream_params *sp, const float *x, size_t n, size_t piece, events *ev) {
    memset(ev, 0, sizeof *ev);
    pthread_mutex_init(&ev->mu, NULL);
    sp->on_event = on_event;
    sp->user = ev;
    tolk_stream *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_stream_open(g_e, sp, &s), TOLK_OK);
    for (size_t i = 0; i < n; i += piece) {
        g_fed = n - i < piece ? n : i + piece;
        CU_ASSERT_EQUAL(tolk_stream_push(s, x + i, n - i < piece ? n - i : piece), TOLK_OK);
    }
    CU_ASSERT_EQUAL(tolk_stream_close(s), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_stream_wait(s), TOLK_OK);
    tolk_stream_get_stats(s, &ev->st);
    CU_ASSERT_EQUAL(tolk_stream_push(s, x, 10), TOLK_ERR_INVALID_ARG); /* after close */
    CU_ASSERT_EQUAL(tolk_stream_close(s), TOLK_ERR_INVALID_ARG);
    tolk_stream_free(s);
    CU_ASSERT_EQUAL(ev->n_end, 1);
    CU_ASSERT_EQUAL(ev->after_end, 0);
    CU_ASSERT_EQUAL(ev->bad_time, 0);
    CU_ASSERT_EQUAL(ev->end_status, TOLK_OK);
    pthread_mutex_destroy(&ev->mu);
}

static void test_stream_clip(void) {
    if (!setup()) return;
    for (int pol = 0; pol < 2; pol++) {
        tolk_stream_params sp = tolk_stream_default_params();
        sp.transcribe.language = "en";
        sp.policy = pol ? TOLK_STREAM_LOCAL_AGREEMENT : TOLK_STREAM_FAST;
        events ev;
        run_stream(&sp, g_jfk, g_njfk, 4000, &ev);
        char got[4096];
        norm(ev.final, got, sizeof got);
        printf("  %s: %d finals, %d partials: %s\n", pol ? "agreement" : "fast", ev.n_final,
               ev.n_partial, got);
        /* everything is flushed: the last words are committed */
        CU_ASSERT(strstr(got, "ask not what your country can do for you") != NULL);
        CU_ASSERT(strstr(got, "what you can do for your country") != NULL);
    }
}

typedef struct par_arg {
    const float *x;
    size_t n;
    int s16;
    events ev;
    tolk_stream_params sp;
} par_arg;

static void *par_run(void *arg) {
    par_arg *a = arg;
    a->sp.on_event = on_event;
    a->sp.user = &a->ev;
    tolk_stream *s = NULL;
    if (tolk_stream_open(g_e, &a->sp, &s) != TOLK_OK) return NULL;
    if (a->s16) {
        /* 8 kHz stereo s16 (the same audio in both channels) */
        size_t m = a->n / 2;
        int16_t *y = malloc(m * 2 * sizeof(int16_t));
        for (size_t i = 0; i < m; i++) {
            float v = 0.5f * (a->x[2 * i] + a->x[2 * i + 1]);
            y[2 * i] = y[2 * i + 1] = (int16_t)lrintf(fmaxf(-1.0f, fminf(1.0f, v)) * 32767.0f);
        }
        for (size_t i = 0; i < m; i += 777)
            tolk_stream_push_s16(s, y + 2 * i, m - i < 777 ? m - i : 777);
        free(y);
    } else {
        for (size_t i = 0; i < a->n; i += 1600)
            tolk_stream_push(s, a->x + i, a->n - i < 1600 ? a->n - i : 1600);
    }
    tolk_stream_close(s);
    tolk_stream_wait(s);
    tolk_stream_free(s);
    return NULL;
}

static void test_streams_at_once(void) {
    if (!setup()) return;
    par_arg a[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&a[i], 0, sizeof a[i]);
        pthread_mutex_init(&a[i].ev.mu, NULL);
        a[i].x = i == 1 ? g_ls : g_jfk;
        a[i].n = i == 1 ? g_nls : g_njfk;
        a[i].s16 = i == 2;
        a[i].sp = tolk_stream_default_params();
        a[i].sp.transcribe.language = "en";
        if (i == 2) {
            a[i].sp.sample_rate = 8000;
            a[i].sp.channels = 2;
        }
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, par_run, &a[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        char got[4096];
        norm(a[i].ev.final, got, sizeof got);
        printf("  stream %d: %s\n", i, got);
        CU_ASSERT_EQUAL(a[i].ev.n_end, 1);
        CU_ASSERT_EQUAL(a[i].ev.end_status, TOLK_OK);
        CU_ASSERT_EQUAL(a[i].ev.bad_time, 0);
        CU_ASSERT_EQUAL(a[i].ev.after_end, 0);
        CU_ASSERT(strstr(got, i == 1 ? "yellow lamps" : "your country") != NULL);
        pthread_mutex_destroy(&a[i].ev.mu);
    }
}

/* Synchronous pushes: the text does not depend on the machine's speed (two
 * runs agree), and words are committed while the audio goes on, not only at
 * its end. */
static void test_synchronous(void) {
    if (!setup()) return;
    events ev[2];
    for (int i = 0; i < 2; i++) {
        tolk_stream_params sp = tolk_stream_default_params();
        sp.transcribe.language = "en";
        sp.synchronous = 1;
        sp.min_update_s = 1.0f;
        run_stream(&sp, g_jfk, g_njfk, 1600, &ev[i]);
    }
    printf("  %d finals: %s\n", ev[0].n_final, ev[0].final);
    CU_ASSERT_STRING_EQUAL(ev[0].final, ev[1].final);
    CU_ASSERT_EQUAL(ev[0].n_final, ev[1].n_final);
    CU_ASSERT(ev[0].n_final >= 3);
    char got[4096];
    norm(ev[0].final, got, sizeof got);
    CU_ASSERT(strstr(got, "your country") != NULL);
}

/* Whether the words of want (normalised, space-separated) all stand in got
 * (normalised), in order. */
static int has_words_in_order(const char *got, const char *want) {
    const char *g = got;
    char w[64];
    for (const char *p = want; *p;) {
        while (*p == ' ')
            p++;
        size_t k = 0;
        while (*p && *p != ' ' && k + 1 < sizeof w)
            w[k++] = *p++;
        w[k] = '\0';
        if (!k) break;
        /* the next whole word w in g */
        const char *f = g;
        size_t wl = strlen(w);
        for (;;) {
            f = strstr(f, w);
            if (!f) return 0;
            if ((f == got || f[-1] == ' ') && (f[wl] == ' ' || f[wl] == '\0')) break;
            f++;
        }
        g = f + wl;
    }
    return 1;
}

/* A pause inside a sentence: the clip with 1.2 s of silence between two of
 * its words (its own offline word times) — every word of the offline
 * transcript arrives, in order, with either gate. (Whether the utterance
 * ends at the pause depends on the hypothesis then: tiny.en writes "the
 * yellow light." and it ends; "his—" would hold it.) */
static void test_mid_sentence_pause(void) {
    if (!setup()) return;
    /* the offline words and their times */
    tolk_state *st = NULL;
    tolk_result *res = NULL;
    tolk_transcribe_params p = greedy();
    p.word_timestamps = 1;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(g_ctx, g_tiny, &st), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, g_ls, g_nls, &p, &res), TOLK_OK);
    char all[4096] = "";
    double cut = -1.0;
    for (int i = 0; i < tolk_result_n_segments(res); i++) {
        const tolk_segment *seg = tolk_result_segment(res, i);
        for (int j = 0; j < seg->n_words; j++) {
            const tolk_word *w = tolk_segment_word(seg, j);
            strncat(all, w->word, sizeof all - strlen(all) - 1);
            char nw[64];
            norm(w->word, nw, sizeof nw);
            /* the pause: between "yellow" and "lamps" */
            if (!strcmp(nw, "yellow") && j + 1 < seg->n_words)
                cut = 0.5 * (w->end + tolk_segment_word(seg, j + 1)->start);
        }
    }
    char want[4096];
    norm(all, want, sizeof want);
    printf("  offline: %s (pause at %.2f s)\n", want, cut);
    CU_ASSERT_FATAL(cut > 0.5);
    const size_t at = (size_t)(cut * 16000), gap = 19200, n = g_nls + gap;
    float *x = malloc(n * sizeof(float));
    memcpy(x, g_ls, at * sizeof(float));
    tu_seed(5);
    for (size_t i = 0; i < gap; i++)
        x[at + i] = tu_uniform(-1e-4f, 1e-4f); /* a quiet room */
    memcpy(x + at + gap, g_ls + at, (g_nls - at) * sizeof(float));
    tolk_vad *vad = NULL;
    const char *dir = tu_require_model("silero-vad");
    if (dir) CU_ASSERT_EQUAL(tolk_vad_load(g_ctx, dir, &vad), TOLK_OK);
    for (int gate = 0; gate < (vad ? 2 : 1); gate++) {
        tolk_stream_params sp = tolk_stream_default_params();
        sp.transcribe.language = "en";
        sp.synchronous = 1;
        sp.gate = gate ? TOLK_STREAM_GATE_SILERO : TOLK_STREAM_GATE_ENERGY;
        sp.vad = vad;
        events ev;
        run_stream(&sp, x, n, 320, &ev);
        char got[4096];
        norm(ev.final, got, sizeof got);
        printf("  %s: %lld utterances: %s\n", gate ? "silero" : "energy",
               (long long)ev.st.utterances, got);
        CU_ASSERT(has_words_in_order(got, want));
        CU_ASSERT(ev.st.utterances >= 1 && ev.st.utterances <= 2);
    }
    free(x);
    tolk_vad_free(vad);
    tolk_result_free(res);
    tolk_state_free(st);
}

/* The first text of an utterance comes soon after speech starts: the clip
 * after 1 s of silence, pushed synchronously in 20 ms pieces (the text then
 * does not depend on the machine's speed): its speech starts at 1.38 s
 * (the energy gate's onset), and a PARTIAL with text comes before 0.5 s
 * more audio was pushed (an update 0.15 s after the onset). */
static void test_first_partial(void) {
    if (!setup()) return;
    const size_t lead = 16000, n = lead + g_nls;
    float *x = calloc(n, sizeof(float));
    memcpy(x + lead, g_ls, g_nls * sizeof(float));
    tolk_stream_params sp = tolk_stream_default_params();
    sp.transcribe.language = "en";
    sp.synchronous = 1;
    sp.gate = TOLK_STREAM_GATE_ENERGY;
    events ev;
    run_stream(&sp, x, n, 320, &ev);
    const double onset = 1.384; /* the clip's first chunk above the noise floor */
    printf("  first text after %.3f s of input (%.3f s after the onset)\n",
           (double)ev.first_fed / 16000, (double)ev.first_fed / 16000 - onset);
    CU_ASSERT(ev.have_first);
    CU_ASSERT((double)ev.first_fed / 16000 <= onset + 0.5);
    free(x);
}

static void test_bad_params(void) {
    if (!setup()) return;
    tolk_stream *s = NULL;
    tolk_stream_params ok = tolk_stream_default_params();
    tolk_stream_params p;
#define BAD(stmt, word)                                                                            \
    do {                                                                                           \
        p = ok;                                                                                    \
        stmt;                                                                                      \
        s = NULL;                                                                                  \
        CU_ASSERT_EQUAL(tolk_stream_open(g_e, &p, &s), TOLK_ERR_INVALID_ARG);                      \
        CU_ASSERT_PTR_NULL(s);                                                                     \
        CU_ASSERT(strstr(tolk_engine_last_error(g_e), word) != NULL);                              \
    } while (0)
    BAD(p.sample_rate = 0, "sample rate");
    BAD(p.sample_rate = 1000000, "sample rate");
    BAD(p.channels = 0, "channels");
    BAD(p.channels = 65, "channels");
    BAD(p.policy = 7, "policy");
    BAD(p.agreement = 1, "agreement");
    BAD(p.min_update_s = NAN, "min_update_s");
    BAD(p.pause_s = 0.0f, "pause_s");
    BAD(p.max_buffer_s = 31.0f, "max_buffer_s");
    BAD(p.trim_s = -1.0f, "trim_s");
    BAD(p.prompt_tokens = 500, "prompt_tokens");
    BAD(p.transcribe.without_timestamps = 1, "timestamps");
    BAD(p.gate = 9, "gate");
    BAD(p.gate = TOLK_STREAM_GATE_SILERO, "vad");
    BAD(p.agreement_gap_s = -1.0f, "agreement_gap_s");
#undef BAD
    /* an engine without its own thread cannot serve streams */
    tolk_engine_params ep = tolk_engine_default_params();
    ep.background = 0;
    tolk_engine *e2 = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(g_ctx, g_tiny, &ep, &e2), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_stream_open(e2, &ok, &s), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_engine_last_error(e2), "thread") != NULL);
    tolk_engine_free(e2);
    /* bad pushes change nothing and the stream goes on */
    CU_ASSERT_EQUAL_FATAL(tolk_stream_open(g_e, &ok, &s), TOLK_OK);
    float bad[4] = {0.0f, NAN, 0.0f, 0.0f};
    CU_ASSERT_EQUAL(tolk_stream_push(s, bad, 4), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_stream_last_error(s), "finite") != NULL);
    CU_ASSERT_EQUAL(tolk_stream_push(s, NULL, 4), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_stream_push(s, NULL, 0), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_stream_push(s, g_jfk, 16000), TOLK_OK);
    tolk_stream_free(s); /* without close: cancelled, no crash */
    CU_ASSERT_EQUAL(tolk_stream_open(NULL, &ok, &s), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_stream_push(NULL, g_jfk, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_stream_close(NULL), TOLK_ERR_INVALID_ARG);
    tolk_stream_free(NULL);
}

static void test_silence_only(void) {
    if (!setup()) return;
    /* 3 s of silence: no speech, no text, one END */
    float *z = calloc(48000, sizeof(float));
    tolk_stream_params sp = tolk_stream_default_params();
    events ev;
    run_stream(&sp, z, 48000, 1000, &ev);
    CU_ASSERT_EQUAL(ev.n_final, 0);
    free(z);
}

int main(void) {
    static CU_TestInfo tests[] = {
        {"local_agreement", test_local_agreement},
        {"fast_policy", test_fast_policy},
        {"never_retract", test_never_retract},
        {"loop_start", test_loop_start},
        {"repeat_start", test_repeat_start},
        {"agreement_edge", test_agreement_edge},
        {"ts_prefix_rules", test_ts_prefix_rules},
        {"gate", test_gate},
        {"ends_sentence", test_ends_sentence},
        {"gate_silero", test_gate_silero},
        {"window_request", test_window_request},
        {"stream_clip", test_stream_clip},
        {"streams_at_once", test_streams_at_once},
        {"synchronous", test_synchronous},
        {"mid_sentence_pause", test_mid_sentence_pause},
        {"first_partial", test_first_partial},
        {"bad_params", test_bad_params},
        {"silence_only", test_silence_only},
        CU_TEST_INFO_NULL,
    };
    tu_add_suite("stream", tests);
    int r = tu_run();
    cleanup();
    return r;
}

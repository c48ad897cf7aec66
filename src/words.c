/*
 * words.c — word-level timestamps (see words.h): openai-whisper's
 * word_timestamps=True reimplemented.
 *
 * Reference behaviour (openai-whisper 20250625):
 *  - timing.py find_alignment: the tokens [SOT sequence, <|notimestamps|>,
 *    text tokens, <|endoftext|>] run through the decoder against the
 *    window; the alignment heads' cross-attention logits trimmed to
 *    num_frames // 2 audio positions, softmax; per head and frame the
 *    token column standardised (std_mean over tokens, biased); median
 *    filter of width 7 over frames (reflect padding); mean over heads;
 *    rows of <|notimestamps|> .. the last text token; DTW (dtw_cpu:
 *    float32 costs, diagonal / up / left on ties in that order of its
 *    strict comparisons); the path's first column in each row is that
 *    token's time (/ 50 per s); tokens split into words
 *    (split_to_word_tokens); a word's start / end are the times of its
 *    first token and of the next word's first token; its probability the
 *    mean of its tokens' probabilities (softmax over ids < eot).
 *  - merge_punctuations: prepended punctuation (a word starting with a
 *    space whose stripped text is in the set) joins the next word, right
 *    to left; appended punctuation (a word in the set after a word not
 *    ending with a space) joins the previous one, left to right. Set
 *    membership is Python's substring test `x in set`, as the reference.
 *  - add_word_timestamps: median word duration (non-zero durations, at
 *    most 0.7 s), words longer than twice it at sentence ends clipped;
 *    words handed to segments by token counts; times rounded to 0.01 s
 *    (numpy: rint(x * 100) / 100); the first word after a pause and the
 *    segment start / end adjustments.
 *  - transcribe.py: without a single timestamp ending, seek to the last
 *    word's end; hallucination_silence_threshold: the anomaly score of
 *    words, skipping leading silence before a suspect first segment (the
 *    window is dropped), and cutting the window at a suspect segment
 *    surrounded by silence; last_speech_timestamp.
 */
#include "words.h"

#include "model.h"
#include "pystr.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEDFILT_WIDTH 7
#define TOKENS_PER_SECOND 50.0
#define FRAMES_PER_SECOND 100.0
#define DEFAULT_PREPEND "\"'\xe2\x80\x9c\xc2\xbf([{-"
#define DEFAULT_APPEND                                                                             \
    "\"'.\xe3\x80\x82,\xef\xbc\x8c!\xef\xbc\x81?\xef\xbc\x9f:\xef\xbc\x9a\xe2\x80\x9d)]}\xe3\x80"  \
    "\x81"
/* transcribe.py's `punctuation` (the anomaly test skips these words) */
#define ANOMALY_PUNCT                                                                              \
    "\"'\xe2\x80\x9c\xc2\xbf([{-\"'.\xe3\x80\x82,\xef\xbc\x8c!\xef\xbc\x81?\xef\xbc\x9f:\xef\xbc"  \
    "\x9a\xe2\x80\x9d)]}\xe3\x80\x81"
/* add_word_timestamps' sentence_end_marks ".。!！?？" */
#define SENTENCE_END ".\xe3\x80\x82!\xef\xbc\x81?\xef\xbc\x9f"
/* Python's string.punctuation */
#define ASCII_PUNCT "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

/* numpy's round(x, 2) of a float64: rint(x * 100) / 100. */
static double round2(double x) {
    return nearbyint(x * 100.0) / 100.0;
}

/* Python's round(x) to an integer frame count (half to even), >= 0. */
static size_t round_frames(double x) {
    double r = nearbyint(x);
    return r > 0.0 ? (size_t)r : 0;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ------------------------------------------------------------------------ */
/* Alignment heads                                                          */
/* ------------------------------------------------------------------------ */

/* openai-whisper's _ALIGNMENT_HEADS (whisper/__init__.py), decoded from its
 * base85 / gzip masks into (layer, head) pairs. */
static const int heads_tiny_en[][2] = {{1, 0}, {2, 0}, {2, 5}, {3, 0},
                                       {3, 1}, {3, 2}, {3, 3}, {3, 4}};
static const int heads_tiny[][2] = {{2, 2}, {3, 0}, {3, 2}, {3, 3}, {3, 4}, {3, 5}};
static const int heads_base_en[][2] = {{3, 3}, {4, 7}, {5, 1}, {5, 5}, {5, 7}};
static const int heads_base[][2] = {{3, 1}, {4, 2}, {4, 3}, {4, 7}, {5, 1}, {5, 2}, {5, 4}, {5, 6}};
static const int heads_small_en[][2] = {
    {6, 6},  {7, 0},  {7, 3},  {7, 8},  {8, 2},  {8, 5},  {8, 7},   {9, 0},  {9, 4}, {9, 8},
    {9, 10}, {10, 0}, {10, 1}, {10, 2}, {10, 3}, {10, 6}, {10, 11}, {11, 2}, {11, 4}};
static const int heads_small[][2] = {{5, 3}, {5, 9}, {8, 0}, {8, 4}, {8, 7},
                                     {8, 8}, {9, 0}, {9, 7}, {9, 9}, {10, 5}};
static const int heads_medium_en[][2] = {{11, 4},  {14, 1}, {14, 12}, {14, 14}, {15, 4},  {16, 0},
                                         {16, 4},  {16, 9}, {17, 12}, {17, 14}, {18, 7},  {18, 10},
                                         {18, 15}, {20, 0}, {20, 3},  {20, 9},  {20, 14}, {21, 12}};
static const int heads_medium[][2] = {{13, 15}, {15, 4}, {15, 15}, {16, 1}, {20, 0}, {23, 4}};
static const int heads_large_v2[][2] = {{10, 12}, {13, 17}, {16, 11}, {16, 12}, {16, 13}, {17, 15},
                                        {17, 16}, {18, 4},  {18, 11}, {18, 19}, {19, 11}, {21, 2},
                                        {21, 3},  {22, 3},  {22, 9},  {22, 12}, {23, 5},  {23, 7},
                                        {23, 13}, {25, 5},  {26, 1},  {26, 12}, {27, 15}};
static const int heads_large_v3[][2] = {{7, 0},   {10, 17}, {12, 18}, {13, 12}, {16, 1},
                                        {17, 14}, {19, 11}, {21, 4},  {24, 1},  {25, 6}};
static const int heads_turbo[][2] = {{2, 4}, {2, 11}, {3, 3}, {3, 6}, {3, 11}, {3, 14}};

#define HEADS(name, arr)                                                                           \
    { name, arr, (int)(sizeof arr / sizeof arr[0]) }
static const struct {
    const char *name;
    const int (*heads)[2];
    int n;
} default_heads[] = {
    HEADS("tiny.en", heads_tiny_en),
    HEADS("tiny", heads_tiny),
    HEADS("base.en", heads_base_en),
    HEADS("base", heads_base),
    HEADS("small.en", heads_small_en),
    HEADS("small", heads_small),
    HEADS("medium.en", heads_medium_en),
    HEADS("medium", heads_medium),
    /* large-v1 and large-v2 share their shapes: the v2 set */
    HEADS("large-v2", heads_large_v2),
    HEADS("large-v3", heads_large_v3),
    HEADS("large-v3-turbo", heads_turbo),
};

const int (*tolk_alignment_heads_default(const char *size_name, int *n))[2] {
    *n = 0;
    for (size_t i = 0; size_name && i < sizeof default_heads / sizeof default_heads[0]; i++)
        if (!strcmp(size_name, default_heads[i].name)) {
            *n = default_heads[i].n;
            return default_heads[i].heads;
        }
    return NULL;
}

tolk_status tolk_alignment_heads(tolk_ctx *ctx, const tolk_weights *w, const char *size_name,
                                 const char *path, const int (**heads)[2], int *n) {
    if (w->cfg.n_alignment_heads > 0) {
        *heads = (const int(*)[2])w->cfg.alignment_heads;
        *n = w->cfg.n_alignment_heads;
        return TOLK_OK;
    }
    *heads = tolk_alignment_heads_default(size_name, n);
    if (*heads) return TOLK_OK;
    return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                     "%s: word timestamps need the model's alignment heads: its files carry "
                     "none (no \"alignment_heads\" in config.json / generation_config.json) and "
                     "openai-whisper publishes none for a '%s' model",
                     path ? path : "model", size_name ? size_name : "custom");
}

/* ------------------------------------------------------------------------ */
/* Normalisation, median filter, DTW                                        */
/* ------------------------------------------------------------------------ */

void tolk_words_normalize(float *w, int H, int T, int F) {
    for (int p = 0; p < H; p++) {
        float *m = w + (size_t)p * (size_t)T * (size_t)F;
        for (int f = 0; f < F; f++) {
            double s = 0.0, s2 = 0.0;
            for (int t = 0; t < T; t++)
                s += m[(size_t)t * F + f];
            const double mean = s / T;
            for (int t = 0; t < T; t++) {
                const double e = m[(size_t)t * F + f] - mean;
                s2 += e * e;
            }
            const float fm = (float)mean, fs = (float)sqrt(s2 / T);
            for (int t = 0; t < T; t++)
                m[(size_t)t * F + f] = (m[(size_t)t * F + f] - fm) / fs;
        }
    }
}

/* The median of v[0, 7) (v is reordered): an insertion sort. */
static float median_small(float *v, int n) {
    for (int i = 1; i < n; i++) {
        float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
    return v[n / 2];
}

void tolk_words_median_filter(float *x, int rows, int F, int width, float *tmp) {
    const int pad = width / 2;
    if (F <= pad || width < 1) return;
    float win[64];
    if (width > 64) return;
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * (size_t)F;
        /* reflect padding (torch's mode="reflect": the edge not repeated) */
        for (int i = 0; i < F + 2 * pad; i++) {
            int s = i - pad;
            if (s < 0) s = -s;
            if (s >= F) s = 2 * (F - 1) - s;
            tmp[i] = row[s];
        }
        for (int i = 0; i < F; i++) {
            memcpy(win, tmp + i, (size_t)width * sizeof(float));
            row[i] = median_small(win, width);
        }
    }
}

/* The step dtw_cpu takes into (i, j): 0 diagonal, 1 up, 2 left, with its
 * strict comparisons (NaN and equal costs fall through to "left"). */
static inline int dtw_step(float c0, float c1, float c2, float *c) {
    if (c0 < c1 && c0 < c2) {
        *c = c0;
        return 0;
    }
    if (c1 < c0 && c1 < c2) {
        *c = c1;
        return 1;
    }
    *c = c2;
    return 2;
}

/* Backtrace from (N, M) over trace (row stride M + 1; row 0 = left,
 * column 0 = up, as the reference sets them): the first column of each
 * row on the forward path. */
static void dtw_backtrace(const unsigned char *trace, int N, int M, int *jump) {
    int i = N, j = M;
    for (int r = 0; r < N; r++)
        jump[r] = -1;
    while (i > 0 || j > 0) {
        /* the path element (i - 1, j - 1): walking backwards, the last one
         * seen in a row is the first on the forward path */
        if (i > 0) jump[i - 1] = j - 1;
        int t = i == 0 ? 2 : j == 0 ? 1 : trace[(size_t)i * (size_t)(M + 1) + (size_t)j];
        if (t == 0) {
            i--;
            j--;
        } else if (t == 1) {
            i--;
        } else {
            j--;
        }
    }
}

int tolk_dtw(const double *x, int N, int M, int *jump) {
    if (N <= 0) return 0;
    const size_t W = (size_t)M + 1;
    unsigned char *trace = malloc((size_t)(N + 1) * W);
    float *prev = malloc((size_t)(N + 1) * sizeof(float));
    float *cur = malloc((size_t)(N + 1) * sizeof(float));
    if (!trace || !prev || !cur) {
        free(trace);
        free(prev);
        free(cur);
        return -1;
    }
    /* column 0: cost[0][0] = 0, cost[i][0] = inf */
    prev[0] = 0.0f;
    for (int i = 1; i <= N; i++)
        prev[i] = INFINITY;
    for (int j = 1; j <= M; j++) {
        cur[0] = INFINITY;
        for (int i = 1; i <= N; i++) {
            float c;
            const int t = dtw_step(prev[i - 1], cur[i - 1], prev[i], &c);
            /* the reference stores float64 x + float32 c into float32 */
            cur[i] = (float)(x[(size_t)(i - 1) * (size_t)M + (size_t)(j - 1)] + (double)c);
            trace[(size_t)i * W + (size_t)j] = (unsigned char)t;
        }
        float *s = prev;
        prev = cur;
        cur = s;
    }
    dtw_backtrace(trace, N, M, jump);
    free(trace);
    free(prev);
    free(cur);
    return 0;
}

int tolk_dtw_ref(const double *x, int N, int M, int *jump) {
    if (N <= 0) return 0;
    const size_t W = (size_t)M + 1;
    float *cost = malloc((size_t)(N + 1) * W * sizeof(float));
    unsigned char *trace = malloc((size_t)(N + 1) * W);
    if (!cost || !trace) {
        free(cost);
        free(trace);
        return -1;
    }
    for (size_t k = 0; k < (size_t)(N + 1) * W; k++)
        cost[k] = INFINITY;
    cost[0] = 0.0f;
    for (int j = 1; j <= M; j++)
        for (int i = 1; i <= N; i++) {
            const float c0 = cost[(size_t)(i - 1) * W + (size_t)(j - 1)];
            const float c1 = cost[(size_t)(i - 1) * W + (size_t)j];
            const float c2 = cost[(size_t)i * W + (size_t)(j - 1)];
            float c;
            int t;
            if (c0 < c1 && c0 < c2) {
                c = c0, t = 0;
            } else if (c1 < c0 && c1 < c2) {
                c = c1, t = 1;
            } else {
                c = c2, t = 2;
            }
            cost[(size_t)i * W + (size_t)j] =
                (float)(x[(size_t)(i - 1) * (size_t)M + (size_t)(j - 1)] + (double)c);
            trace[(size_t)i * W + (size_t)j] = (unsigned char)t;
        }
    /* backtrace with the full path, then the first column of each row */
    int i = N, j = M, n_path = 0;
    int *pi = malloc((size_t)(N + M + 1) * sizeof(int)),
        *pj = malloc((size_t)(N + M + 1) * sizeof(int));
    if (!pi || !pj) {
        free(pi);
        free(pj);
        free(cost);
        free(trace);
        return -1;
    }
    while (i > 0 || j > 0) {
        pi[n_path] = i - 1;
        pj[n_path] = j - 1;
        n_path++;
        int t = i == 0 ? 2 : j == 0 ? 1 : trace[(size_t)i * W + (size_t)j];
        if (t == 0) {
            i--;
            j--;
        } else if (t == 1) {
            i--;
        } else {
            j--;
        }
    }
    for (int r = 0; r < N; r++)
        jump[r] = -1;
    /* forward order: jumps where the row index changes (the first element
     * counts as a jump) */
    int last = -2;
    for (int k = n_path - 1; k >= 0; k--) {
        if (pi[k] != last && pi[k] >= 0 && pi[k] < N) jump[pi[k]] = pj[k];
        last = pi[k];
    }
    free(pi);
    free(pj);
    free(cost);
    free(trace);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tokens -> words                                                          */
/* ------------------------------------------------------------------------ */

void tolk_wtiming_free(tolk_wtiming *w, int n) {
    for (int i = 0; w && i < n; i++)
        free(w[i].word);
    free(w);
}

typedef struct wlist {
    tolk_wtiming *v;
    int n, cap;
} wlist;

static int wl_push(wlist *l, char *word, int n_tokens) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        tolk_wtiming *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof l->v[0]);
    l->v[l->n].word = word;
    l->v[l->n].n_tokens = n_tokens;
    l->n++;
    return 1;
}

/* Code points of valid UTF-8 s[0, n) into cp (n entries at most); returns
 * the count. */
static size_t to_codepoints(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t c = 0xFFFD;
        int d = tolk_utf8_decode(u + i, n - i, &c);
        if (d < 0) c = 0xFFFD;
        i += (size_t)(d < 0 ? -d : d);
        cp[k++] = c;
    }
    return k;
}

/* split_tokens_on_unicode: subwords where the decoded text is complete. */
static tolk_status split_unicode(const tolk_tokenizer *tok, const int *tokens, int n, wlist *out) {
    char *full = NULL, *cur = NULL;
    size_t full_len = 0;
    uint32_t *fcp = NULL, *ccp = NULL;
    tolk_status s =
        tolk_tokenizer_decode_ex(tok, tokens, (size_t)n, TOLK_DECODE_TIMESTAMPS, &full, &full_len);
    if (s != TOLK_OK) return s;
    fcp = tolk_malloc_array(full_len + 1, sizeof(uint32_t));
    if (!fcp) {
        free(full);
        return TOLK_ERR_NOMEM;
    }
    const size_t n_full = to_codepoints(full, full_len, fcp);
    size_t offset = 0; /* code points of the subwords so far */
    int cs = 0;        /* first token of the current subword */
    for (int t = 0; t < n && s == TOLK_OK; t++) {
        size_t len = 0;
        s = tolk_tokenizer_decode_ex(tok, tokens + cs, (size_t)(t - cs + 1), TOLK_DECODE_TIMESTAMPS,
                                     &cur, &len);
        if (s != TOLK_OK) break;
        uint32_t *c2 = realloc(ccp, (len + 1) * sizeof(uint32_t));
        if (!c2) {
            s = TOLK_ERR_NOMEM;
            break;
        }
        ccp = c2;
        const size_t nc = to_codepoints(cur, len, ccp);
        size_t k = 0;
        while (k < nc && ccp[k] != 0xFFFD)
            k++;
        /* complete when there is no U+FFFD, or the full text has one at the
         * same place (an invalid byte, not a split character) */
        if (k == nc || (offset + k < n_full && fcp[offset + k] == 0xFFFD)) {
            if (!wl_push(out, cur, t - cs + 1)) {
                s = TOLK_ERR_NOMEM;
                break;
            }
            cur = NULL;
            offset += nc;
            cs = t + 1;
        } else {
            free(cur);
            cur = NULL;
        }
    }
    free(cur);
    free(full);
    free(fcp);
    free(ccp);
    return s;
}

tolk_status tolk_words_split(const tolk_tokenizer *tok, const int *tokens, int n, int by_unicode,
                             tolk_wtiming **words, int *n_words) {
    *words = NULL;
    *n_words = 0;
    wlist sub = {0};
    tolk_status s = split_unicode(tok, tokens, n, &sub);
    if (s != TOLK_OK || by_unicode) {
        if (s != TOLK_OK) {
            tolk_wtiming_free(sub.v, sub.n);
            return s;
        }
        *words = sub.v;
        *n_words = sub.n;
        return TOLK_OK;
    }
    /* split_tokens_on_spaces: join subwords into words */
    const int eot = tolk_tokenizer_special(tok)->eot;
    wlist out = {0};
    int tok_i = 0;
    for (int i = 0; i < sub.n; i++) {
        char *w = sub.v[i].word;
        const int special = tokens[tok_i] >= eot;
        tok_i += sub.v[i].n_tokens;
        const size_t len = strlen(w);
        size_t a, b;
        tolk_py_strip(w, len, &a, &b);
        char stripped[64];
        int punct = 0;
        if (b - a < sizeof stripped) {
            memcpy(stripped, w + a, b - a);
            stripped[b - a] = '\0';
            punct = tolk_py_in(stripped, ASCII_PUNCT);
        }
        if (special || w[0] == ' ' || punct || out.n == 0) {
            if (!wl_push(&out, w, sub.v[i].n_tokens)) goto nomem;
            sub.v[i].word = NULL;
        } else {
            tolk_wtiming *last = &out.v[out.n - 1];
            const size_t ll = strlen(last->word);
            char *j = realloc(last->word, ll + len + 1);
            if (!j) goto nomem;
            memcpy(j + ll, w, len + 1);
            last->word = j;
            last->n_tokens += sub.v[i].n_tokens;
        }
    }
    tolk_wtiming_free(sub.v, sub.n);
    *words = out.v;
    *n_words = out.n;
    return TOLK_OK;
nomem:
    tolk_wtiming_free(sub.v, sub.n);
    tolk_wtiming_free(out.v, out.n);
    return TOLK_ERR_NOMEM;
}

/* ------------------------------------------------------------------------ */
/* Punctuation, long words, segments                                        */
/* ------------------------------------------------------------------------ */

/* a + b as a new string replacing *dst (a and b may be *dst). */
static int concat_into(char **dst, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *r = malloc(la + lb + 1);
    if (!r) return 0;
    memcpy(r, a, la);
    memcpy(r + la, b, lb + 1);
    free(*dst);
    *dst = r;
    return 1;
}

int tolk_words_merge_punctuations(tolk_wtiming *a, int n, const char *prepended,
                                  const char *appended) {
    /* prepended: right to left */
    int i = n - 2, j = n - 1;
    while (i >= 0) {
        tolk_wtiming *prev = &a[i], *next = &a[j];
        const size_t len = strlen(prev->word);
        size_t s0, s1;
        tolk_py_strip(prev->word, len, &s0, &s1);
        char *stripped = dup_n(prev->word + s0, s1 - s0);
        if (!stripped) return 0;
        const int merge = prev->word[0] == ' ' && tolk_py_in(stripped, prepended);
        free(stripped);
        if (merge) {
            char *w = NULL;
            if (!concat_into(&w, prev->word, next->word)) return 0;
            free(next->word);
            next->word = w;
            next->n_tokens += prev->n_tokens;
            prev->word[0] = '\0';
            prev->n_tokens = 0;
        } else {
            j = i;
        }
        i--;
    }
    /* appended: left to right */
    i = 0;
    j = 1;
    while (j < n) {
        tolk_wtiming *prev = &a[i], *next = &a[j];
        const size_t len = strlen(prev->word);
        const int ends_space = len > 0 && prev->word[len - 1] == ' ';
        if (!ends_space && tolk_py_in(next->word, appended)) {
            char *w = NULL;
            if (!concat_into(&w, prev->word, next->word)) return 0;
            free(prev->word);
            prev->word = w;
            prev->n_tokens += next->n_tokens;
            next->word[0] = '\0';
            next->n_tokens = 0;
        } else {
            i = j;
        }
        j++;
    }
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void tolk_words_clip_long(tolk_wtiming *a, int n, double *median) {
    double *d = n > 0 ? malloc((size_t)n * sizeof(double)) : NULL;
    int k = 0;
    for (int i = 0; d && i < n; i++)
        if (a[i].end - a[i].start != 0.0) d[k++] = a[i].end - a[i].start;
    double med = 0.0;
    if (k > 0) {
        qsort(d, (size_t)k, sizeof(double), cmp_double);
        med = k % 2 ? d[k / 2] : (d[k / 2 - 1] + d[k / 2]) / 2.0;
    }
    free(d);
    if (med > 0.7) med = 0.7;
    *median = med;
    const double max_d = med * 2.0;
    if (k > 0)
        for (int i = 1; i < n; i++)
            if (a[i].end - a[i].start > max_d) {
                if (tolk_py_in(a[i].word, SENTENCE_END))
                    a[i].end = a[i].start + max_d;
                else if (tolk_py_in(a[i - 1].word, SENTENCE_END))
                    a[i].start = a[i].end - max_d;
            }
}

int tolk_words_assign(tolk_seg_rec *segs, int n, const int *n_text_tokens, const tolk_wtiming *a,
                      int n_words, double time_offset, double median, double *last_speech) {
    const double max_d = median * 2.0;
    tolk_word *buf = n_words > 0 ? malloc((size_t)n_words * sizeof *buf) : NULL;
    if (n_words > 0 && !buf) return 0;
    int wi = 0, ok = 1;
    for (int s = 0; s < n && ok; s++) {
        tolk_segment *sg = &segs[s].pub;
        int saved = 0, m = 0;
        while (wi < n_words && saved < n_text_tokens[s]) {
            const tolk_wtiming *t = &a[wi];
            if (t->word[0]) {
                buf[m].struct_size = sizeof(tolk_word);
                buf[m].word = t->word;
                buf[m].start = round2(time_offset + t->start);
                buf[m].end = round2(time_offset + t->end);
                buf[m].probability = t->probability;
                m++;
            }
            saved += t->n_tokens;
            wi++;
        }
        if (m > 0) {
            tolk_word *w0 = &buf[0], *wl = &buf[m - 1];
            /* the first and second word after a pause: at most twice the
             * median duration */
            if (w0->end - *last_speech > median * 4.0 &&
                (w0->end - w0->start > max_d || (m > 1 && buf[1].end - w0->start > max_d * 2.0))) {
                if (m > 1 && buf[1].end - buf[1].start > max_d) {
                    const double bnd = fmax(buf[1].end / 2.0, buf[1].end - max_d);
                    w0->end = buf[1].start = bnd;
                }
                w0->start = fmax(0.0, w0->end - max_d);
            }
            /* prefer the segment's start when the first word is too long */
            if (sg->start < w0->end && sg->start - 0.5 > w0->start)
                w0->start = fmax(0.0, fmin(w0->end - median, sg->start));
            else
                sg->start = w0->start;
            /* ... and its end when the last word is too long */
            if (sg->end > wl->start && sg->end + 0.5 < wl->end)
                wl->end = fmax(wl->start + median, sg->end);
            else
                sg->end = wl->end;
            *last_speech = sg->end;
        }
        ok = tolk_seg_rec_set_words(&segs[s], buf, m);
    }
    free(buf);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Hallucination rules                                                      */
/* ------------------------------------------------------------------------ */

static double word_anomaly_score(const tolk_word *w) {
    const double duration = w->end - w->start;
    double score = 0.0;
    if (w->probability < 0.15) score += 1.0;
    if (duration < 0.133) score += (0.133 - duration) * 15.0;
    if (duration > 2.0) score += duration - 2.0;
    return score;
}

int tolk_words_segment_anomaly(const tolk_seg_rec *s) {
    if (!s || s->pub.n_words == 0) return 0;
    double score = 0.0;
    int counted = 0;
    for (int i = 0; i < s->pub.n_words && counted < 8; i++) {
        if (tolk_py_in(s->words[i].word, ANOMALY_PUNCT)) continue;
        score += word_anomaly_score(&s->words[i]);
        counted++;
    }
    return score >= 3.0 || score + 0.01 >= (double)counted;
}

/* The first of segs[from, n) with words, or NULL. */
static const tolk_seg_rec *next_words_segment(const tolk_seg_rec *segs, int from, int n) {
    for (int i = from; i < n; i++)
        if (segs[i].pub.n_words > 0) return &segs[i];
    return NULL;
}

/* utils.get_end: the last word's end, else the last segment's end;
 * returns 0 when there are no segments. */
static int get_end(const tolk_seg_rec *segs, int n, double *end) {
    for (int i = n - 1; i >= 0; i--)
        if (segs[i].pub.n_words > 0) {
            *end = segs[i].words[segs[i].pub.n_words - 1].end;
            return 1;
        }
    if (n == 0) return 0;
    *end = segs[n - 1].pub.end;
    return 1;
}

void tolk_words_decide(const tolk_seg_rec *segs, int n, const tolk_words_window *win,
                       double threshold, double *last_speech, tolk_words_decision *out) {
    const double time_offset = (double)(win->previous_seek * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    const double window_end =
        (double)((win->previous_seek + TOLK_N_FRAMES) * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    const double seg_duration = (double)(win->segment_size * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    const double content_duration =
        (double)(win->content_frames * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE;
    size_t seek = win->seek;
    double lwe;
    out->n_keep = n;
    out->skip_window = 0;
    if (!win->single_timestamp_ending && get_end(segs, n, &lwe) && lwe > time_offset)
        seek = round_frames(lwe * FRAMES_PER_SECOND);
    if (threshold >= 0.0) {
        if (!win->single_timestamp_ending && get_end(segs, n, &lwe) && lwe > time_offset)
            seek = window_end - lwe > threshold ? round_frames(lwe * FRAMES_PER_SECOND)
                                                : win->previous_seek + win->segment_size;
        /* a suspect first segment: skip the silence before it */
        const tolk_seg_rec *first = next_words_segment(segs, 0, n);
        if (first && tolk_words_segment_anomaly(first)) {
            const double gap = first->pub.start - time_offset;
            if (gap > threshold) {
                out->seek = win->previous_seek + round_frames(gap * FRAMES_PER_SECOND);
                out->skip_window = 1;
                out->n_keep = 0;
                return;
            }
        }
        /* a suspect segment surrounded by silence or more suspects */
        double hal_last_end = *last_speech;
        for (int si = 0; si < n; si++) {
            const tolk_seg_rec *sg = &segs[si];
            if (sg->pub.n_words == 0) continue;
            if (tolk_words_segment_anomaly(sg)) {
                const tolk_seg_rec *next = next_words_segment(segs, si + 1, n);
                const double next_start = next ? next->words[0].start : time_offset + seg_duration;
                const int before = sg->pub.start - hal_last_end > threshold ||
                                   sg->pub.start < threshold || sg->pub.start - time_offset < 2.0;
                const int after = next_start - sg->pub.end > threshold ||
                                  tolk_words_segment_anomaly(next) ||
                                  window_end - sg->pub.end < 2.0;
                if (before && after) {
                    seek = round_frames(fmax(time_offset + 1.0, sg->pub.start) * FRAMES_PER_SECOND);
                    if (content_duration - sg->pub.end < threshold) seek = win->content_frames;
                    out->n_keep = si;
                    break;
                }
            }
            hal_last_end = sg->pub.end;
        }
    }
    if (get_end(segs, out->n_keep, &lwe)) *last_speech = lwe;
    out->seek = seek;
}

/* ------------------------------------------------------------------------ */
/* Per request and per window                                               */
/* ------------------------------------------------------------------------ */

struct tolk_words {
    tolk_ctx *ctx;
    const tolk_asr *asr;
    const int (*heads)[2];
    int n_heads;
    int by_unicode;
    char *prepend, *append;
    double threshold;   /* < 0: off */
    double last_speech; /* last_speech_timestamp */
    /* the window between tolk_words_begin and tolk_words_end */
    int n_sot, n_text, T, F, aligned;
    int *text;   /* [n_text + 1] text tokens, then <|endoftext|> */
    int *counts; /* [n] text tokens per segment */
    int *seq;    /* [T] the alignment pass's tokens */
    float *probs;
    float *weights; /* [H][T][F] */
    double *matrix; /* [N][F] */
    float *tmp;     /* F + width */
    int *jump;      /* [N] */
    size_t cap_text, cap_counts, cap_seq, cap_probs, cap_weights, cap_matrix, cap_tmp, cap_jump;
};

tolk_status tolk_words_new(tolk_ctx *ctx, const tolk_asr *asr, const tolk_model *model,
                           const tolk_transcribe_params *p, tolk_words **out) {
    *out = NULL;
    tolk_words *w = calloc(1, sizeof *w);
    if (!w) return tolk_fail(ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    w->ctx = ctx;
    w->asr = asr;
    tolk_status s = tolk_alignment_heads(ctx, model->w, model->size_name, model->w->path, &w->heads,
                                         &w->n_heads);
    if (s != TOLK_OK) {
        free(w);
        return s;
    }
    const char *pre = p->prepend_punctuations ? p->prepend_punctuations : DEFAULT_PREPEND;
    const char *app = p->append_punctuations ? p->append_punctuations : DEFAULT_APPEND;
    w->prepend = dup_n(pre, strlen(pre));
    w->append = dup_n(app, strlen(app));
    w->threshold =
        isfinite(p->hallucination_silence_threshold) && p->hallucination_silence_threshold >= 0.0f
            ? (double)p->hallucination_silence_threshold
            : -1.0;
    if (!w->prepend || !w->append) {
        tolk_words_free(w);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    }
    *out = w;
    return TOLK_OK;
}

void tolk_words_set_language(tolk_words *w, const char *code) {
    static const char *const by_char[] = {"zh", "ja", "th", "lo", "my", "yue"};
    w->by_unicode = 0;
    for (size_t i = 0; code && i < sizeof by_char / sizeof by_char[0]; i++)
        if (!strcmp(code, by_char[i])) w->by_unicode = 1;
}

void tolk_words_free(tolk_words *w) {
    if (!w) return;
    free(w->prepend);
    free(w->append);
    free(w->text);
    free(w->counts);
    free(w->seq);
    free(w->probs);
    free(w->weights);
    free(w->matrix);
    free(w->tmp);
    free(w->jump);
    free(w);
}

/* Grow *p to hold n elements of size sz (contents lost). */
static int reserve(void **p, size_t *cap, size_t n, size_t sz) {
    if (*cap >= n && *p) return 1;
    void *q = tolk_malloc_array(n ? n : 1, sz);
    if (!q) return 0;
    free(*p);
    *p = q;
    *cap = n ? n : 1;
    return 1;
}

tolk_status tolk_words_begin(tolk_words *w, const int *sot, int n_sot, size_t segment_size,
                             const tolk_seg_rec *segs, int n, tolk_words_align *req, int *needed) {
    const tolk_dec_tokens *dt = &w->asr->dt;
    *needed = 0;
    memset(req, 0, sizeof *req);
    w->aligned = 0;
    w->n_text = 0;
    size_t total = 0;
    for (int s = 0; s < n; s++)
        total += (size_t)segs[s].pub.n_tokens;
    if (!reserve((void **)&w->text, &w->cap_text, total + 1, sizeof(int)) ||
        !reserve((void **)&w->counts, &w->cap_counts, (size_t)n, sizeof(int)))
        return tolk_fail(w->ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    for (int s = 0; s < n; s++) {
        w->counts[s] = 0;
        for (int i = 0; i < segs[s].pub.n_tokens; i++)
            if (segs[s].pub.tokens[i] < dt->eot) {
                w->text[w->n_text++] = segs[s].pub.tokens[i];
                w->counts[s]++;
            }
    }
    if (w->n_text == 0) return TOLK_OK; /* find_alignment: no words */
    const int T = n_sot + 1 + w->n_text + 1, H = w->n_heads, N = w->n_text + 1;
    if (T > w->asr->hp.n_text_ctx)
        return tolk_fail(w->ctx, TOLK_ERR_INVALID_ARG,
                         "word timestamps: %d tokens do not fit the text context (%d)", T,
                         w->asr->hp.n_text_ctx);
    int F = (int)(segment_size / 2); /* the reference's num_frames // 2 */
    if (F > w->asr->hp.n_audio_ctx) F = w->asr->hp.n_audio_ctx;
    const size_t Fa = F > 0 ? (size_t)F : 1;
    if (!reserve((void **)&w->seq, &w->cap_seq, (size_t)T, sizeof(int)) ||
        !reserve((void **)&w->probs, &w->cap_probs, (size_t)w->n_text, sizeof(float)) ||
        !reserve((void **)&w->weights, &w->cap_weights, (size_t)H * (size_t)T * Fa,
                 sizeof(float)) ||
        !reserve((void **)&w->matrix, &w->cap_matrix, (size_t)N * Fa, sizeof(double)) ||
        !reserve((void **)&w->tmp, &w->cap_tmp, Fa + MEDFILT_WIDTH, sizeof(float)) ||
        !reserve((void **)&w->jump, &w->cap_jump, (size_t)N, sizeof(int)))
        return tolk_fail(w->ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    memcpy(w->seq, sot, (size_t)n_sot * sizeof(int));
    w->seq[n_sot] = dt->no_timestamps;
    memcpy(w->seq + n_sot + 1, w->text, (size_t)w->n_text * sizeof(int));
    w->seq[T - 1] = dt->eot;
    w->n_sot = n_sot;
    w->T = T;
    w->F = F;
    w->aligned = 1;
    if (F == 0) {
        /* no audio frames: the reference's softmax over nothing gives no
         * weights; every token lands on frame -1 (DTW over 0 columns) */
        for (int i = 0; i < w->n_text; i++)
            w->probs[i] = NAN;
        return TOLK_OK;
    }
    *req = (tolk_words_align){.tokens = w->seq,
                              .n_tokens = T,
                              .heads = w->heads,
                              .n_heads = H,
                              .n_frames = F,
                              .weights = w->weights,
                              .prob_row0 = n_sot,
                              .n_probs = w->n_text,
                              .prob_vocab = dt->eot,
                              .probs = w->probs};
    *needed = 1;
    return TOLK_OK;
}

/* find_alignment after the pass: the words of the window's text (times
 * from the window start, probabilities) into *a / *n_a (none when fewer
 * than one word). */
static tolk_status find_alignment(tolk_words *w, tolk_wtiming **a, int *n_a) {
    *a = NULL;
    *n_a = 0;
    if (!w->aligned) return TOLK_OK;
    const int T = w->T, F = w->F, H = w->n_heads, N = w->n_text + 1, n_sot = w->n_sot;
    tolk_words_normalize(w->weights, H, T, F);
    tolk_words_median_filter(w->weights, H * T, F, MEDFILT_WIDTH, w->tmp);
    /* matrix = -(mean over heads), rows of <|notimestamps|> .. last text */
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++) {
            float sum = 0.0f;
            for (int p = 0; p < H; p++)
                sum += w->weights[((size_t)p * T + (size_t)(n_sot + i)) * F + f];
            w->matrix[(size_t)i * F + f] = -(double)(sum / (float)H);
        }
    if (tolk_dtw(w->matrix, N, F, w->jump) != 0)
        return tolk_fail(w->ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    tolk_wtiming *words = NULL;
    int nw = 0;
    w->text[w->n_text] = w->asr->dt.eot;
    tolk_status s =
        tolk_words_split(w->asr->tok, w->text, w->n_text + 1, w->by_unicode, &words, &nw);
    if (s != TOLK_OK) return tolk_fail(w->ctx, s, "word timestamps: cannot split the text");
    if (nw <= 1) {
        tolk_wtiming_free(words, nw);
        return TOLK_OK;
    }
    /* the last "word" is <|endoftext|>; boundaries are token counts */
    int b = 0;
    for (int k = 0; k < nw - 1; k++) {
        const int e = b + words[k].n_tokens;
        words[k].start = (double)w->jump[b] / TOKENS_PER_SECOND;
        words[k].end = (double)w->jump[e < N ? e : N - 1] / TOKENS_PER_SECOND;
        double ps = 0.0;
        for (int i = b; i < e && i < w->n_text; i++)
            ps += (double)w->probs[i];
        words[k].probability = e > b ? ps / (double)(e - b) : NAN;
        b = e;
    }
    free(words[nw - 1].word);
    *a = words;
    *n_a = nw - 1;
    return TOLK_OK;
}

tolk_status tolk_words_end(tolk_words *w, size_t seek, tolk_seg_rec *segs, int n) {
    if (n == 0) return TOLK_OK;
    tolk_wtiming *a = NULL;
    int na = 0;
    tolk_status st = find_alignment(w, &a, &na);
    if (st == TOLK_OK) {
        double median = 0.0, last = w->last_speech;
        tolk_words_clip_long(a, na, &median);
        if (!tolk_words_merge_punctuations(a, na, w->prepend, w->append) ||
            !tolk_words_assign(segs, n, w->counts, a, na,
                               (double)(seek * TOLK_HOP_LENGTH) / TOLK_SAMPLE_RATE, median, &last))
            st = tolk_fail(w->ctx, TOLK_ERR_NOMEM, "word timestamps: out of memory");
    }
    tolk_wtiming_free(a, na);
    w->aligned = 0;
    return st;
}

void tolk_words_after(tolk_words *w, const tolk_seg_rec *segs, int n, const tolk_words_window *win,
                      tolk_words_decision *out) {
    tolk_words_decide(segs, n, win, w->threshold, &w->last_speech, out);
}

/*
 * test_mel.c — the CPU log-mel spectrogram (src/mel.c) against
 * openai-whisper's log_mel_spectrogram: the Slaney filterbank against
 * whisper's mel_filters.npz, the whole pipeline against a plain double
 * precision DFT loop, and real clips against fixtures made by
 * tests/fixtures/make_mel.py (max abs error <= 1e-4 on every element; the
 * figures are printed). Also: thread-count invariance, the two-stage
 * raw/normalise form in pieces, whisper's 30 s zero padding, concurrent use
 * of one tolk_mel, and hostile arguments.
 */
#include "mel_internal.h"
#include "support/clips.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEL_TOL 1e-4

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static tolk_ctx *new_ctx(int threads) {
    tolk_ctx_params p = tolk_ctx_default_params();
    p.n_threads = threads;
    p.device = TOLK_DEVICE_CPU;
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &ctx), TOLK_OK);
    return ctx;
}

/* Plain reference of the whole function: direct DFT in double, dense
 * filterbank product, log10, clamp, scale. out [n_mels, n / 160]. When raw
 * is set, the log10 values are left unnormalised. */
static void reference_mel(const float *filters, int n_mels, const float *x, size_t n, float *out,
                          int raw) {
    const size_t nf = n / TOLK_HOP_LENGTH;
    double frame[TOLK_N_FFT], power[TOLK_MEL_N_BINS], cs[TOLK_N_FFT], sn[TOLK_N_FFT];
    double vmax = -INFINITY;
    for (int k = 0; k < TOLK_N_FFT; k++) {
        cs[k] = cos(2.0 * M_PI * k / TOLK_N_FFT);
        sn[k] = sin(2.0 * M_PI * k / TOLK_N_FFT);
    }
    for (size_t t = 0; t < nf; t++) {
        for (int k = 0; k < TOLK_N_FFT; k++) {
            long long j = (long long)t * TOLK_HOP_LENGTH - TOLK_N_FFT / 2 + k;
            /* single reflection at both ends (n > 200 here) */
            if (j < 0) j = -j;
            if (j >= (long long)n) j = 2 * ((long long)n - 1) - j;
            const double w = 0.5 - 0.5 * cos(2.0 * M_PI * k / TOLK_N_FFT);
            frame[k] = (double)x[j] * (double)(float)w;
        }
        for (int b = 0; b < TOLK_MEL_N_BINS; b++) {
            double re = 0, im = 0;
            for (int k = 0; k < TOLK_N_FFT; k++) {
                const int a = (b * k) % TOLK_N_FFT;
                re += frame[k] * cs[a];
                im -= frame[k] * sn[a];
            }
            power[b] = re * re + im * im;
        }
        for (int m = 0; m < n_mels; m++) {
            double acc = 0;
            for (int b = 0; b < TOLK_MEL_N_BINS; b++)
                acc += (double)filters[m * TOLK_MEL_N_BINS + b] * power[b];
            const double v = log10(acc > 1e-10 ? acc : 1e-10);
            out[(size_t)m * nf + t] = (float)v;
            if (v > vmax) vmax = v;
        }
    }
    if (raw) return;
    for (size_t i = 0; i < (size_t)n_mels * nf; i++) {
        double v = out[i] > vmax - 8.0 ? out[i] : vmax - 8.0;
        out[i] = (float)((v + 4.0) / 4.0);
    }
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_filters(void) {
    tolk_ctx *ctx = new_ctx(1);
    const int sizes[2] = {80, 128};
    for (int i = 0; i < 2; i++) {
        tolk_mel *mel = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, sizes[i], &mel), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_mel_n_mels(mel), sizes[i]);
        char rel[64];
        snprintf(rel, sizeof rel, "tests/fixtures/mel/mel_%d.npy", sizes[i]);
        int64_t shape[4];
        int nd = 0;
        float *ref = tu_load_npy(tu_src(rel), shape, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        CU_ASSERT_EQUAL_FATAL(nd, 2);
        CU_ASSERT_EQUAL_FATAL(shape[0], sizes[i]);
        CU_ASSERT_EQUAL_FATAL(shape[1], TOLK_MEL_N_BINS);
        const size_t cnt = (size_t)sizes[i] * TOLK_MEL_N_BINS;
        double err = tu_max_abs_diff(tolk_mel_filters(mel), ref, cnt);
        printf("\n    mel_%d filterbank: max abs error %.3g ", sizes[i], err);
        CU_ASSERT(err <= 1e-6);
        /* bands cover every non-zero weight */
        for (int m = 0; m < sizes[i]; m++) {
            for (int k = 0; k < TOLK_MEL_N_BINS; k++) {
                if (k < mel->bands[2 * m] || k >= mel->bands[2 * m + 1])
                    CU_ASSERT_EQUAL(mel->filters[m * TOLK_MEL_N_BINS + k], 0.0f);
            }
        }
        free(ref);
        tolk_mel_free(mel);
    }
    tolk_ctx_free(ctx);
}

static void test_window_reflect(void) {
    float w[TOLK_N_FFT];
    tolk_mel_make_window(w);
    CU_ASSERT_EQUAL(w[0], 0.0f);
    CU_ASSERT_EQUAL(w[200], 1.0f);
    CU_ASSERT(fabsf(w[100] - 0.5f) < 1e-7f);
    for (int k = 1; k < TOLK_N_FFT; k++)
        CU_ASSERT_EQUAL(w[k], w[TOLK_N_FFT - k]);
    /* reflection: x[-2] = x[2], x[n] = x[n - 2], bounce on short inputs */
    CU_ASSERT_EQUAL(tolk_mel_reflect(-2, 10), 2);
    CU_ASSERT_EQUAL(tolk_mel_reflect(0, 10), 0);
    CU_ASSERT_EQUAL(tolk_mel_reflect(9, 10), 9);
    CU_ASSERT_EQUAL(tolk_mel_reflect(10, 10), 8);
    CU_ASSERT_EQUAL(tolk_mel_reflect(-9, 10), 9);
    CU_ASSERT_EQUAL(tolk_mel_reflect(-10, 10), 8);
    CU_ASSERT_EQUAL(tolk_mel_reflect(18, 10), 0);
    CU_ASSERT_EQUAL(tolk_mel_reflect(19, 10), 1);
    CU_ASSERT_EQUAL(tolk_mel_reflect(-200, 1), 0);
    CU_ASSERT_EQUAL(tolk_mel_reflect(7, 2), 1);
}

/* The FFTW path against the plain double DFT loop on random audio. */
static void test_reference_loop(void) {
    const size_t lens[] = {201, 480, 3217, 16000};
    const int sizes[2] = {80, 128};
    tolk_ctx *ctx = new_ctx(2);
    tu_seed(7);
    for (int s = 0; s < 2; s++) {
        tolk_mel *mel = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, sizes[s], &mel), TOLK_OK);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            const size_t n = lens[i], nf = n / TOLK_HOP_LENGTH, cnt = nf * (size_t)sizes[s];
            float *x = malloc(n * sizeof *x);
            float *got = malloc(cnt * sizeof *got), *ref = malloc(cnt * sizeof *ref);
            CU_ASSERT_FATAL(x && got && ref);
            tu_fill_uniform(x, n, -0.5f, 0.5f);
            /* quiet stretch: exercises the floor and the clamp */
            for (size_t j = n / 3; j < n / 2; j++)
                x[j] *= 1e-4f;
            CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, n, got), TOLK_OK);
            reference_mel(mel->filters, sizes[s], x, n, ref, 0);
            double err = tu_max_abs_diff(got, ref, cnt);
            CU_ASSERT(err <= 2e-5);
            if (err > 2e-5) printf("\n    n_mels %d, %zu samples: error %.3g ", sizes[s], n, err);
            /* raw stage and the running max */
            float run = -INFINITY;
            CU_ASSERT_EQUAL(tolk_mel_compute_raw(ctx, mel, x, n, got, &run), TOLK_OK);
            reference_mel(mel->filters, sizes[s], x, n, ref, 1);
            CU_ASSERT(tu_max_abs_diff(got, ref, cnt) <= 1e-4);
            float rmax = -INFINITY;
            for (size_t j = 0; j < cnt; j++)
                rmax = ref[j] > rmax ? ref[j] : rmax;
            CU_ASSERT(fabsf(run - rmax) <= 1e-4f);
            free(x);
            free(got);
            free(ref);
        }
        tolk_mel_free(mel);
    }
    tolk_ctx_free(ctx);
}

typedef struct {
    char name[96], input[256];
    int n_mels;
    size_t n_samples, n_frames;
} clip_row;

static int read_clips(clip_row *rows, int max) {
    FILE *f = fopen(tu_src("tests/fixtures/mel/clips.tsv"), "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    if (!fgets(line, sizeof line, f)) n = -1; /* header */
    while (n >= 0 && n < max && fgets(line, sizeof line, f)) {
        clip_row *r = &rows[n];
        if (sscanf(line, "%95[^\t]\t%255[^\t]\t%d\t%zu\t%zu", r->name, r->input, &r->n_mels,
                   &r->n_samples, &r->n_frames) == 5)
            n++;
    }
    fclose(f);
    return n;
}

/* Real clips against openai-whisper, with 1 and 2 threads (bit-identical). */
static void test_fixtures(void) {
    clip_row rows[16];
    const int n_rows = read_clips(rows, 16);
    CU_ASSERT_FATAL(n_rows >= 5);
    tolk_ctx *c1 = new_ctx(1), *c2 = new_ctx(2);
    tolk_mel *mels[2] = {NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(c1, 80, &mels[0]), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(c1, 128, &mels[1]), TOLK_OK);
    for (int i = 0; i < n_rows; i++) {
        const clip_row *r = &rows[i];
        size_t n = 0;
        float *x = tu_load_clip_input(r->input, &n);
        if (!x) {
            tu_skip("%s: input %s not readable", r->name, r->input);
            continue;
        }
        CU_ASSERT_EQUAL(n, r->n_samples);
        char rel[sizeof r->name + 64];
        snprintf(rel, sizeof rel, "tests/fixtures/mel/%.95s_%d.npy", r->name, r->n_mels);
        int64_t shape[4];
        int nd = 0;
        float *ref = tu_load_npy(tu_src(rel), shape, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        CU_ASSERT_FATAL(nd == 2 && shape[0] == r->n_mels && (size_t)shape[1] == r->n_frames);
        const tolk_mel *mel = mels[r->n_mels == 128];
        float *a = NULL, *b = NULL;
        size_t nfa = 0, nfb = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(c1, mel, x, n, &a, &nfa), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(c2, mel, x, n, &b, &nfb), TOLK_OK);
        CU_ASSERT_EQUAL(nfa, r->n_frames);
        const size_t cnt = nfa * (size_t)r->n_mels;
        CU_ASSERT(memcmp(a, b, cnt * sizeof *a) == 0);
        const double err = tu_max_abs_diff(a, ref, cnt);
        double mean = 0;
        for (size_t j = 0; j < cnt; j++)
            mean += fabs((double)a[j] - ref[j]);
        mean /= (double)cnt;
        printf("\n    %-24s n_mels %3d  %4zu frames  max abs error %.3g  mean %.3g ", r->name,
               r->n_mels, nfa, err, mean);
        CU_ASSERT(err <= MEL_TOL);
        free(a);
        free(b);
        free(ref);
        free(x);
    }
    tolk_mel_free(mels[0]);
    tolk_mel_free(mels[1]);
    tolk_ctx_free(c1);
    tolk_ctx_free(c2);
}

/* jfk followed by 30 s of zeros, as whisper's transcribe() computes it. */
static void test_pad30(void) {
    size_t n = 0;
    float *x = tu_load_npy_s16(tu_src("tests/fixtures/mel/jfk_s16.npy"), &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL_FATAL(n, 176000);
    const size_t np = n + TOLK_N_SAMPLES;
    float *xp = calloc(np, sizeof *xp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(xp);
    memcpy(xp, x, n * sizeof *x);
    tolk_ctx *ctx = new_ctx(2);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, 80, &mel), TOLK_OK);
    float *got = NULL, *plain = NULL;
    size_t nf = 0, nf_plain = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(ctx, mel, xp, np, &got, &nf), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(nf, 4100);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_alloc(ctx, mel, x, n, &plain, &nf_plain), TOLK_OK);
    int64_t shape[4];
    int nd = 0;
    float *ref = tu_load_npy(tu_src("tests/fixtures/mel/jfk_pad30_80.npy"), shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    const int first = 1088, last = 1112;
    CU_ASSERT_FATAL(nd == 2 && shape[0] == 80 && shape[1] == last - first);
    double err = 0, err_floor = 0;
    for (int m = 0; m < 80; m++) {
        for (int t = first; t < last; t++) {
            double d = fabs((double)got[(size_t)m * nf + t] - ref[m * (last - first) + t - first]);
            err = d > err ? d : err;
        }
        /* frames clear of the end are those of the unpadded signal */
        for (int t = 0; t < 1098; t++)
            CU_ASSERT_EQUAL(got[(size_t)m * nf + t], plain[(size_t)m * nf_plain + t]);
    }
    /* the rest is the clamp floor, the last value of the stored slice */
    const float floor_v = ref[last - first - 1];
    for (int m = 0; m < 80; m++) {
        for (size_t t = last; t < nf; t++) {
            double d = fabs((double)got[(size_t)m * nf + t] - floor_v);
            err_floor = d > err_floor ? d : err_floor;
        }
    }
    printf("\n    jfk + 30 s zeros: max abs error %.3g (boundary), %.3g (floor) ", err, err_floor);
    CU_ASSERT(err <= MEL_TOL);
    CU_ASSERT(err_floor <= MEL_TOL);
    free(got);
    free(plain);
    free(ref);
    free(xp);
    free(x);
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
}

/* The two-stage form in pieces, each with two frames of context either
 * side, equals the whole-signal computation bit for bit. */
static void test_pieces(void) {
    size_t n = 0;
    float *x = tu_load_npy_s16(tu_src("tests/fixtures/mel/jfk_s16.npy"), &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    tolk_ctx *ctx = new_ctx(2);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, 80, &mel), TOLK_OK);
    const size_t nf = tolk_mel_n_frames(n);
    float *whole = malloc(nf * 80 * sizeof(float)), *pieces = malloc(nf * 80 * sizeof(float));
    float *tmp = malloc(nf * 80 * sizeof(float));
    CU_ASSERT_FATAL(whole && pieces && tmp);
    float wmax = -INFINITY, pmax = -INFINITY;
    CU_ASSERT_EQUAL(tolk_mel_compute_raw(ctx, mel, x, n, whole, &wmax), TOLK_OK);
    const size_t ctxf = 2, piece = 317; /* frames per piece, not a tile multiple */
    for (size_t f0 = 0; f0 < nf; f0 += piece) {
        const size_t f1 = f0 + piece < nf ? f0 + piece : nf;
        /* frames [a, b) computed from samples [160 a, 160 b + 40) */
        const size_t a = f0 >= ctxf ? f0 - ctxf : 0;
        const size_t b = f1 + ctxf <= nf ? f1 + ctxf : nf;
        size_t s0 = a * TOLK_HOP_LENGTH, s1 = b * TOLK_HOP_LENGTH + 40;
        if (f1 == nf) s1 = n; /* the true end: the reflection is the real one */
        const size_t pf = tolk_mel_n_frames(s1 - s0);
        CU_ASSERT_FATAL(pf >= f1 - a);
        CU_ASSERT_EQUAL_FATAL(tolk_mel_compute_raw(ctx, mel, x + s0, s1 - s0, tmp, &pmax), TOLK_OK);
        for (int m = 0; m < 80; m++)
            memcpy(pieces + (size_t)m * nf + f0, tmp + (size_t)m * pf + (f0 - a),
                   (f1 - f0) * sizeof(float));
    }
    CU_ASSERT(memcmp(whole, pieces, nf * 80 * sizeof(float)) == 0);
    CU_ASSERT(pmax >= wmax); /* context frames are included in the pieces' max */
    tolk_mel_normalize(whole, nf * 80, wmax);
    float *full = NULL;
    size_t nf2 = 0;
    CU_ASSERT_EQUAL(tolk_mel_compute_alloc(ctx, mel, x, n, &full, &nf2), TOLK_OK);
    CU_ASSERT(full && memcmp(whole, full, nf * 80 * sizeof(float)) == 0);
    free(full);
    free(whole);
    free(pieces);
    free(tmp);
    free(x);
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
}

static void test_normalize_pad(void) {
    float v[4] = {-10.0f, 0.0f, -3.0f, 1.0f};
    tolk_mel_normalize(v, 4, 1.0f);
    CU_ASSERT_EQUAL(v[0], (-7.0f + 4.0f) / 4.0f);
    CU_ASSERT_EQUAL(v[1], 1.0f);
    CU_ASSERT_EQUAL(v[2], 0.25f);
    CU_ASSERT_EQUAL(v[3], 1.25f);
    tolk_mel_normalize(NULL, 4, 0.0f); /* no crash */

    /* pad: [2, 5] -> [2, 3000]; trim: [2, 3100] -> [2, 3000] */
    float src[2 * 3100], *dst = malloc(2 * TOLK_N_FRAMES * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    for (int i = 0; i < 2 * 3100; i++)
        src[i] = (float)i;
    tolk_mel_pad_or_trim(src, 2, 5, dst, -1.5f);
    CU_ASSERT_EQUAL(dst[0], 0.0f);
    CU_ASSERT_EQUAL(dst[4], 4.0f);
    CU_ASSERT_EQUAL(dst[5], -1.5f);
    CU_ASSERT_EQUAL(dst[2999], -1.5f);
    CU_ASSERT_EQUAL(dst[3000], 5.0f);
    CU_ASSERT_EQUAL(dst[3004], 9.0f);
    CU_ASSERT_EQUAL(dst[3005], -1.5f);
    tolk_mel_pad_or_trim(src, 2, 3100, dst, 0.0f);
    CU_ASSERT_EQUAL(dst[2999], 2999.0f);
    CU_ASSERT_EQUAL(dst[3000], 3100.0f);
    CU_ASSERT_EQUAL(dst[5999], 3100.0f + 2999.0f);
    free(dst);
}

static void test_errors(void) {
    tolk_ctx *ctx = new_ctx(1);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL(tolk_mel_new(ctx, 64, &mel), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(mel);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "n_mels") != NULL);
    CU_ASSERT_EQUAL(tolk_mel_new(ctx, 80, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(NULL, 80, &mel), TOLK_OK); /* NULL ctx allowed */
    CU_ASSERT_EQUAL(tolk_mel_n_mels(NULL), 0);
    CU_ASSERT_PTR_NULL(tolk_mel_filters(NULL));
    CU_ASSERT_EQUAL(tolk_mel_n_frames(0), 0);
    CU_ASSERT_EQUAL(tolk_mel_n_frames(159), 0);
    CU_ASSERT_EQUAL(tolk_mel_n_frames(160), 1);
    CU_ASSERT_EQUAL(tolk_mel_n_frames(480000), 3000);

    float x[1000], out[80 * 6];
    memset(x, 0, sizeof x);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, NULL, x, 1000, out), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, NULL, 1000, out), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 1000, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 159, out), TOLK_ERR_EMPTY);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "no frame") != NULL);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, SIZE_MAX, out), TOLK_ERR_INVALID_ARG);
    float *buf = (float *)1;
    size_t nf = 7;
    CU_ASSERT_EQUAL(tolk_mel_compute_alloc(ctx, mel, x, 100, &buf, &nf), TOLK_ERR_EMPTY);
    CU_ASSERT_PTR_NULL(buf);
    CU_ASSERT_EQUAL(nf, 0);
    CU_ASSERT_EQUAL(tolk_mel_compute_alloc(ctx, mel, x, 1000, NULL, &nf), TOLK_ERR_INVALID_ARG);

    /* digital silence: every value is the floor, log10(1e-10) -> (-10+4)/4 */
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 1000, out), TOLK_OK);
    for (int i = 0; i < 80 * 6; i++)
        CU_ASSERT(fabsf(out[i] + 1.5f) < 1e-6f);
    /* a single sample and short inputs: defined (repeated reflection) */
    x[0] = 0.5f;
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 160, out), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 200, out), TOLK_OK);
    for (int i = 0; i < 80; i++)
        CU_ASSERT(isfinite(out[i]));

    /* non-finite input */
    x[500] = NAN;
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 1000, out), TOLK_ERR_INVALID_ARG);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "NaN") != NULL);
    x[500] = INFINITY;
    float run = 0.0f;
    CU_ASSERT_EQUAL(tolk_mel_compute_raw(ctx, mel, x, 1000, out, &run), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(run, 0.0f); /* untouched on failure */
    x[500] = 3e38f;
    CU_ASSERT_EQUAL(tolk_mel_compute(ctx, mel, x, 1000, out), TOLK_ERR_INVALID_ARG);
    tolk_mel_free(mel);
    tolk_mel_free(NULL);
    tolk_ctx_free(ctx);
}

/* One tolk_mel shared by threads, each with its own context; plus tolk_mel
 * objects created and freed concurrently (the planner lock). */
typedef struct {
    const tolk_mel *mel;
    const float *x;
    size_t n;
    float *out;
    int status;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 1;
    tolk_ctx *ctx = NULL;
    a->status = tolk_ctx_new(&cp, &ctx);
    for (int rep = 0; rep < 3 && a->status == TOLK_OK; rep++) {
        tolk_mel *tmp = NULL;
        a->status = tolk_mel_new(ctx, rep % 2 ? 128 : 80, &tmp);
        tolk_mel_free(tmp);
        if (a->status == TOLK_OK) a->status = tolk_mel_compute(ctx, a->mel, a->x, a->n, a->out);
    }
    tolk_ctx_free(ctx);
    return NULL;
}

static void test_threads(void) {
    enum { N_WORKERS = 4 };
    const size_t n = 16000 * 3, nf = n / TOLK_HOP_LENGTH;
    float *x = malloc(n * sizeof *x), *ref = malloc(nf * 80 * sizeof(float));
    float *outs = malloc(N_WORKERS * nf * 80 * sizeof(float));
    CU_ASSERT_FATAL(x && ref && outs);
    tu_seed(11);
    tu_fill_uniform(x, n, -1.0f, 1.0f);
    tolk_ctx *ctx = new_ctx(1);
    tolk_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_mel_new(ctx, 80, &mel), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_mel_compute(ctx, mel, x, n, ref), TOLK_OK);
    pthread_t th[N_WORKERS];
    worker_arg args[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        args[i] = (worker_arg){mel, x, n, outs + (size_t)i * nf * 80, -1};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N_WORKERS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].status, TOLK_OK);
        CU_ASSERT(memcmp(args[i].out, ref, nf * 80 * sizeof(float)) == 0);
    }
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
    free(x);
    free(ref);
    free(outs);
}

int main(void) {
    CU_TestInfo tests[] = {{"filters", test_filters},
                           {"window_reflect", test_window_reflect},
                           {"reference_loop", test_reference_loop},
                           {"fixtures", test_fixtures},
                           {"pad30", test_pad30},
                           {"pieces", test_pieces},
                           {"normalize_pad", test_normalize_pad},
                           {"errors", test_errors},
                           {"threads", test_threads},
                           CU_TEST_INFO_NULL};
    tu_add_suite("mel", tests);
    return tu_run();
}

/*
 * mel.c — log-mel spectrogram on the CPU (FFTW3f), reproducing
 * openai-whisper's log_mel_spectrogram (whisper/audio.py) on 16 kHz audio:
 *
 *   frames   t = 0 .. n/160 - 1, frame t centred on sample 160 t, the signal
 *            reflect-padded by 200 samples on both sides (torch.stft with
 *            center=True, pad_mode="reflect"; the last STFT frame dropped)
 *   window   periodic Hann of 400 (torch.hann_window(400))
 *   power    |rfft_400(window * frame)|^2, 201 bins
 *   mel      Slaney filterbank [n_mels, 201] @ power (librosa filters.mel,
 *            as stored in whisper's mel_filters.npz), computed here
 *   log      log10(max(mel, 1e-10)), then clamp at (global max - 8) and
 *            (x + 4) / 4
 *
 * Precision: the FFT runs in float32 (FFTW, like torch's float32 STFT); the
 * power, the filterbank sums and the log10 are done in double and rounded
 * once, so the difference to the reference is dominated by the two float32
 * FFTs (see tests/test_mel.c for the measured figures).
 *
 * Threads: frames are split into tiles of TILE frames spread over
 * tolk_ctx_threads(ctx) OpenMP threads; each thread has its own FFT buffers
 * and runs the shared plan with fftwf_execute_dft_r2c (thread-safe). Plans
 * are created and destroyed under a process-wide mutex, since FFTW's planner
 * is not thread-safe.
 *
 * On a CUDA context (TOLK_HAVE_CUDA builds) the work goes to src/cuda_mel.c.
 */
#include "mel_internal.h"

#include <fftw3.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define TILE 16      /* frames per work item: TILE floats = one 64-byte line per mel row */
#define MAX_MELS 128 /* tolk_mel_new accepts 80 or 128 */
#define LOG10_E 0.43429448190325182765 /* 1 / ln(10) */

/* FFTW's planner (plan creation and destruction) is process-global state. */
static pthread_mutex_t fftw_plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------------ */
/* Filterbank and window                                                    */
/* ------------------------------------------------------------------------ */

/* Slaney's auditory-toolbox mel scale: linear (200/3 Hz per mel) below
 * 1 kHz, logarithmic above (a factor 6.4 over 27 mels). */
#define SLANEY_F_SP (200.0 / 3.0)
#define SLANEY_MIN_LOG_HZ 1000.0
#define SLANEY_MIN_LOG_MEL (SLANEY_MIN_LOG_HZ / SLANEY_F_SP)

static double slaney_logstep(void) {
    return log(6.4) / 27.0;
}

static double hz_to_mel(double hz) {
    if (hz >= SLANEY_MIN_LOG_HZ)
        return SLANEY_MIN_LOG_MEL + log(hz / SLANEY_MIN_LOG_HZ) / slaney_logstep();
    return hz / SLANEY_F_SP;
}

static double mel_to_hz(double mel) {
    if (mel >= SLANEY_MIN_LOG_MEL)
        return SLANEY_MIN_LOG_HZ * exp(slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL));
    return SLANEY_F_SP * mel;
}

void tolk_mel_make_filters(int n_mels, float *filters) {
    /* Band edges: n_mels + 2 points evenly spaced in mel from 0 Hz to the
     * Nyquist frequency (numpy linspace arithmetic: start + i * step, the
     * last point exactly the end), converted back to Hz. */
    const int n_edges = n_mels + 2;
    double *edge = malloc((size_t)n_edges * sizeof *edge);
    if (!edge) {
        memset(filters, 0, (size_t)n_mels * TOLK_MEL_N_BINS * sizeof *filters);
        return;
    }
    const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(TOLK_SAMPLE_RATE / 2.0);
    const double step = (mel_hi - mel_lo) / (double)(n_edges - 1);
    for (int i = 0; i < n_edges; i++) {
        double m = i == n_edges - 1 ? mel_hi : (double)i * step + mel_lo;
        edge[i] = mel_to_hz(m);
    }
    /* Centre frequency of FFT bin k, as numpy's rfftfreq computes it. */
    const double bin_hz = 1.0 / (TOLK_N_FFT * (1.0 / TOLK_SAMPLE_RATE));
    for (int m = 0; m < n_mels; m++) {
        const double lo = edge[m], mid = edge[m + 1], hi = edge[m + 2];
        /* Slaney normalisation: each triangle has unit area in Hz. */
        const double enorm = 2.0 / (hi - lo);
        for (int k = 0; k < TOLK_MEL_N_BINS; k++) {
            const double f = (double)k * bin_hz;
            const double rise = (f - lo) / (mid - lo); /* = -(lo - f) / (mid - lo) */
            const double fall = (hi - f) / (hi - mid);
            double w = rise < fall ? rise : fall;
            if (w < 0.0) w = 0.0;
            /* The reference stores the triangle in float32 and then scales it
             * in double: round twice the same way. */
            filters[(size_t)m * TOLK_MEL_N_BINS + k] = (float)((double)(float)w * enorm);
        }
    }
    free(edge);
}

void tolk_mel_make_window(float *window) {
    const double two_pi = 6.283185307179586476925286766559;
    for (int k = 0; k < TOLK_N_FFT; k++)
        window[k] = (float)(0.5 - 0.5 * cos(two_pi * (double)k / TOLK_N_FFT));
}

/* ------------------------------------------------------------------------ */
/* Object                                                                   */
/* ------------------------------------------------------------------------ */

tolk_status tolk_mel_new(tolk_ctx *ctx, int n_mels, tolk_mel **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel: out is NULL");
    *out = NULL;
    if (n_mels != 80 && n_mels != 128)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel: n_mels must be 80 or 128, not %d",
                         n_mels);
    tolk_mel *mel = calloc(1, sizeof *mel);
    if (!mel) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: out of memory");
    mel->n_mels = n_mels;
    mel->filters = tolk_malloc_array((size_t)n_mels * TOLK_MEL_N_BINS, sizeof(float));
    mel->bands = tolk_malloc_array((size_t)n_mels * 2, sizeof(int));
    mel->window = tolk_malloc_array(TOLK_N_FFT, sizeof(float));
    if (!mel->filters || !mel->bands || !mel->window) {
        tolk_mel_free(mel);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: out of memory");
    }
    tolk_mel_make_filters(n_mels, mel->filters);
    tolk_mel_make_window(mel->window);
    for (int m = 0; m < n_mels; m++) {
        const float *row = mel->filters + (size_t)m * TOLK_MEL_N_BINS;
        int first = 0, last = TOLK_MEL_N_BINS;
        while (first < TOLK_MEL_N_BINS && row[first] == 0.0f)
            first++;
        while (last > first && row[last - 1] == 0.0f)
            last--;
        mel->bands[2 * m] = first;
        mel->bands[2 * m + 1] = last;
    }

    /* Plan on scratch arrays of fftwf_malloc's alignment: every thread's
     * buffers come from fftwf_malloc too, as the new-array execute needs. */
    float *in = fftwf_malloc(TOLK_N_FFT * sizeof(float));
    fftwf_complex *spec = fftwf_malloc(TOLK_MEL_N_BINS * sizeof(fftwf_complex));
    if (in && spec) {
        pthread_mutex_lock(&fftw_plan_lock);
        /* FFTW_ESTIMATE: the same algorithm on every run, so results are
         * reproducible bit for bit. */
        mel->fft_plan = fftwf_plan_dft_r2c_1d(TOLK_N_FFT, in, spec, FFTW_ESTIMATE);
        pthread_mutex_unlock(&fftw_plan_lock);
    }
    fftwf_free(in);
    fftwf_free(spec);
    if (!mel->fft_plan) {
        tolk_mel_free(mel);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: cannot create the FFTW plan");
    }
    *out = mel;
    return TOLK_OK;
}

void tolk_mel_free(tolk_mel *mel) {
    if (!mel) return;
    if (mel->fft_plan) {
        pthread_mutex_lock(&fftw_plan_lock);
        fftwf_destroy_plan((fftwf_plan)mel->fft_plan);
        pthread_mutex_unlock(&fftw_plan_lock);
    }
    free(mel->filters);
    free(mel->bands);
    free(mel->window);
    free(mel);
}

int tolk_mel_n_mels(const tolk_mel *mel) {
    return mel ? mel->n_mels : 0;
}

size_t tolk_mel_n_frames(size_t n_samples) {
    return n_samples / TOLK_HOP_LENGTH;
}

const float *tolk_mel_filters(const tolk_mel *mel) {
    return mel ? mel->filters : NULL;
}

/* ------------------------------------------------------------------------ */
/* CPU computation                                                          */
/* ------------------------------------------------------------------------ */

/* Per-thread FFT buffers (fftwf_malloc'd, see tolk_mel_new). */
typedef struct {
    float *in;           /* [400] windowed frame */
    fftwf_complex *spec; /* [201] spectrum */
} fft_buf;

/* Raw log-mel of frames [t0, t1) (t1 - t0 <= TILE) into
 * out [n_mels, n_frames]; returns the max value written (NaN when a frame's
 * spectrum is not finite). */
static float mel_tile(const tolk_mel *mel, const float *x, size_t n, size_t n_frames, size_t t0,
                      size_t t1, fft_buf *buf, float *out) {
    const int n_mels = mel->n_mels;
    const float *win = mel->window;
    float tile[MAX_MELS * TILE]; /* [n_mels, TILE] */
    double power[TOLK_MEL_N_BINS];
    float vmax = -INFINITY;
    int bad = 0;
    for (size_t t = t0; t < t1; t++) {
        /* Frame t covers padded samples [160 t, 160 t + 400), i.e. signal
         * samples [160 t - 200, 160 t + 200). */
        const long long start = (long long)(t * TOLK_HOP_LENGTH) - TOLK_MEL_PAD;
        if (start >= 0 && (size_t)start + TOLK_N_FFT <= n) {
            const float *src = x + start;
            for (int k = 0; k < TOLK_N_FFT; k++)
                buf->in[k] = src[k] * win[k];
        } else {
            for (int k = 0; k < TOLK_N_FFT; k++)
                buf->in[k] = x[tolk_mel_reflect(start + k, n)] * win[k];
        }
        fftwf_execute_dft_r2c((fftwf_plan)mel->fft_plan, buf->in, buf->spec);
        for (int k = 0; k < TOLK_MEL_N_BINS; k++) {
            const double re = buf->spec[k][0], im = buf->spec[k][1];
            power[k] = re * re + im * im;
        }
        for (int m = 0; m < n_mels; m++) {
            const float *row = mel->filters + (size_t)m * TOLK_MEL_N_BINS;
            double acc = 0.0;
            for (int k = mel->bands[2 * m]; k < mel->bands[2 * m + 1]; k++)
                acc += (double)row[k] * power[k];
            /* A power beyond float32 (or NaN/inf from the input) has no
             * float32 reference value: the call fails. log10 as ln * log10(e)
             * in double: as accurate as log10 and twice as fast. */
            if (!(acc <= FLT_MAX)) bad = 1;
            const float v = (float)(log(acc > 1e-10 ? acc : 1e-10) * LOG10_E);
            tile[m * TILE + (int)(t - t0)] = v;
            if (v > vmax) vmax = v;
        }
    }
    const size_t cnt = t1 - t0;
    for (int m = 0; m < n_mels; m++)
        memcpy(out + (size_t)m * n_frames + t0, tile + m * TILE, cnt * sizeof(float));
    return bad ? NAN : vmax;
}

/* The CPU raw stage: out [n_mels, n_frames] gets log10(max(mel, 1e-10)),
 * *vmax the largest value. Returns TOLK_OK, TOLK_ERR_NOMEM or
 * TOLK_ERR_INVALID_ARG (non-finite spectrum), message set. */
static tolk_status mel_raw_cpu(tolk_ctx *ctx, const tolk_mel *mel, const float *x, size_t n,
                               float *out, float *vmax) {
    const size_t n_frames = tolk_mel_n_frames(n);
    const size_t n_tiles = (n_frames + TILE - 1) / TILE;
    int n_threads = tolk_ctx_threads(ctx);
    if (n_threads < 1) n_threads = 1;
    if ((size_t)n_threads > n_tiles) n_threads = (int)n_tiles;

    fft_buf *bufs = calloc((size_t)n_threads, sizeof *bufs);
    float *tmax = malloc((size_t)n_threads * sizeof *tmax);
    int ok = bufs && tmax;
    for (int i = 0; ok && i < n_threads; i++) {
        bufs[i].in = fftwf_malloc(TOLK_N_FFT * sizeof(float));
        bufs[i].spec = fftwf_malloc(TOLK_MEL_N_BINS * sizeof(fftwf_complex));
        ok = bufs[i].in && bufs[i].spec;
    }
    if (ok) {
        for (int i = 0; i < n_threads; i++)
            tmax[i] = -INFINITY;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 4) if (n_threads > 1)
#endif
        for (size_t i = 0; i < n_tiles; i++) {
#ifdef _OPENMP
            const int tid = omp_get_thread_num();
#else
            const int tid = 0;
#endif
            const size_t t0 = i * TILE, t1 = t0 + TILE < n_frames ? t0 + TILE : n_frames;
            const float v = mel_tile(mel, x, n, n_frames, t0, t1, &bufs[tid], out);
            if (isnan(v))
                tmax[tid] = NAN; /* sticky: the call fails below */
            else if (v > tmax[tid])
                tmax[tid] = v;
        }
    }
    float m = -INFINITY;
    int bad = 0;
    if (ok) {
        for (int i = 0; i < n_threads; i++) {
            if (isnan(tmax[i]))
                bad = 1;
            else if (tmax[i] > m)
                m = tmax[i];
        }
    }
    if (bufs) {
        for (int i = 0; i < n_threads; i++) {
            fftwf_free(bufs[i].in);
            fftwf_free(bufs[i].spec);
        }
    }
    free(bufs);
    free(tmax);
    if (!ok) return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: out of memory");
    if (bad || !isfinite(m))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "mel: the samples hold NaN, infinity or values too large for a "
                         "finite spectrum");
    *vmax = m;
    return TOLK_OK;
}

/* Common argument checks of the compute functions. */
static tolk_status check_args(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                              size_t n_samples, const void *out) {
    if (!mel || !samples || !out)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel: NULL %s",
                         !mel       ? "mel"
                         : !samples ? "samples"
                                    : "output buffer");
    if (n_samples > (size_t)1 << 48)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel: %zu samples is not a plausible length",
                         n_samples);
    if (tolk_mel_n_frames(n_samples) == 0)
        return tolk_fail(ctx, TOLK_ERR_EMPTY,
                         "mel: %zu samples make no frame (at least %d are needed)", n_samples,
                         TOLK_HOP_LENGTH);
    size_t cells;
    if (!tolk_mul_size(tolk_mel_n_frames(n_samples), (size_t)mel->n_mels, &cells) ||
        !tolk_mul_size(cells, sizeof(float), &cells))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: output size overflows");
    return TOLK_OK;
}

tolk_status tolk_mel_compute_raw(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                                 size_t n_samples, float *out, float *running_max) {
    tolk_status st = check_args(ctx, mel, samples, n_samples, out);
    if (st != TOLK_OK) return st;
    float m = -INFINITY;
#ifdef TOLK_HAVE_CUDA
    if (tolk_ctx_device(ctx) == TOLK_DEVICE_CUDA) {
        st = tolk_cuda_mel(ctx, mel, samples, n_samples, out, &m);
    } else
#endif
    {
        st = mel_raw_cpu(ctx, mel, samples, n_samples, out, &m);
    }
    if (st != TOLK_OK) return st;
    if (running_max && !(*running_max >= m)) *running_max = m;
    return TOLK_OK;
}

void tolk_mel_normalize(float *mel, size_t n, float global_max) {
    if (!mel) return;
    const float floor_v = global_max - 8.0f;
    for (size_t i = 0; i < n; i++) {
        const float v = mel[i] > floor_v ? mel[i] : floor_v;
        mel[i] = (v + 4.0f) / 4.0f;
    }
}

tolk_status tolk_mel_compute(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                             size_t n_samples, float *out) {
    tolk_status st = check_args(ctx, mel, samples, n_samples, out);
    if (st != TOLK_OK) return st;
#ifdef TOLK_HAVE_CUDA
    if (tolk_ctx_device(ctx) == TOLK_DEVICE_CUDA)
        return tolk_cuda_mel(ctx, mel, samples, n_samples, out, NULL);
#endif
    float m = -INFINITY;
    st = mel_raw_cpu(ctx, mel, samples, n_samples, out, &m);
    if (st != TOLK_OK) return st;
    tolk_mel_normalize(out, tolk_mel_n_frames(n_samples) * (size_t)mel->n_mels, m);
    return TOLK_OK;
}

tolk_status tolk_mel_compute_alloc(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                                   size_t n_samples, float **out, size_t *n_frames) {
    if (!out || !n_frames)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel: NULL %s", !out ? "out" : "n_frames");
    *out = NULL;
    *n_frames = 0;
    tolk_status st = check_args(ctx, mel, samples, n_samples, out); /* out: any non-NULL */
    if (st != TOLK_OK) return st;
    const size_t nf = tolk_mel_n_frames(n_samples);
    float *buf = tolk_malloc_array(nf * (size_t)mel->n_mels, sizeof(float));
    if (!buf)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel: cannot allocate %zu x %d floats", nf,
                         mel->n_mels);
    st = tolk_mel_compute(ctx, mel, samples, n_samples, buf);
    if (st != TOLK_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *n_frames = nf;
    return TOLK_OK;
}

void tolk_mel_pad_or_trim(const float *src, int n_mels, size_t n_frames, float *dst,
                          float pad_value) {
    if (!src || !dst || n_mels <= 0) return;
    const size_t keep = n_frames < TOLK_N_FRAMES ? n_frames : TOLK_N_FRAMES;
    for (int m = 0; m < n_mels; m++) {
        const float *s = src + (size_t)m * n_frames;
        float *d = dst + (size_t)m * TOLK_N_FRAMES;
        if (keep) memcpy(d, s, keep * sizeof(float));
        for (size_t t = keep; t < TOLK_N_FRAMES; t++)
            d[t] = pad_value;
    }
}

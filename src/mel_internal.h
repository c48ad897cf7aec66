/*
 * mel_internal.h — private parts of the log-mel spectrogram (src/mel.c, the
 * CPU path with FFTW; src/cuda_mel.c + kernels/mel.cu, the CUDA path). The
 * function reproduced is openai-whisper's log_mel_spectrogram: periodic Hann
 * window of 400, hop 160, reflect padding of 200 each side, |STFT|^2 with the
 * last frame dropped, Slaney mel filterbank (librosa's filters.mel with
 * norm="slaney"), log10(max(x, 1e-10)), clamp at (max - 8), (x + 4) / 4.
 */
#ifndef TOLK_MEL_INTERNAL_H
#define TOLK_MEL_INTERNAL_H

#include "internal.h"

#include <stddef.h>

#define TOLK_MEL_N_BINS (TOLK_N_FFT / 2 + 1) /* 201 one-sided FFT bins */
#define TOLK_MEL_PAD (TOLK_N_FFT / 2)        /* 200 reflected samples each side */

struct tolk_mel {
    int n_mels;
    float *filters; /* [n_mels, 201] Slaney filterbank, row m = filter m */
    int *bands;     /* [n_mels, 2]: first and one-past-last non-zero bin of row m */
    float *window;  /* [400] periodic Hann window, float32 */
    void *fft_plan; /* fftwf_plan, r2c of 400, run only with the new-array execute */
};

/* Fill filters [n_mels, 201] with the Slaney-style mel filterbank for 16 kHz
 * and n_fft 400 (mel scale linear below 1 kHz and logarithmic above, filters
 * normalised to unit area: librosa's filters.mel(sr=16000, n_fft=400,
 * n_mels, htk=False, norm="slaney") in float32). n_mels >= 1. Pure. */
void tolk_mel_make_filters(int n_mels, float *filters);

/* The periodic Hann window of 400 samples, w[k] = 0.5 - 0.5 cos(2 pi k / 400),
 * computed in double and rounded to float32. Pure. */
void tolk_mel_make_window(float *window);

/* Index into a signal of n >= 1 samples for the virtual index j of its
 * reflect-padded version (..., x[2], x[1], x[0], x[1], ..., x[n-1], x[n-2],
 * ...). Reflection repeats for |j| beyond one length, so short signals
 * (n <= 200, which torch refuses) still get a defined answer. */
static inline size_t tolk_mel_reflect(long long j, size_t n) {
    if (n <= 1) return 0;
    long long period = 2 * ((long long)n - 1);
    j %= period;
    if (j < 0) j += period;
    return (size_t)(j < (long long)n ? j : period - j);
}

#ifdef TOLK_HAVE_CUDA
/* CUDA path of tolk_mel_compute / tolk_mel_compute_raw (src/cuda_mel.c),
 * host memory in and out. samples [n_samples] host; out [n_mels, n_frames]
 * host, n_frames = n_samples / 160 >= 1. When running_max is NULL the full
 * normalised log-mel is written (clamp at the signal's own max - 8, then
 * (x + 4) / 4); otherwise the raw log10 values are written and *running_max
 * is set to their max. Runs on ctx's CUDA device (params.cuda_device).
 * Returns TOLK_ERR_CUDA (message set) when a CUDA call fails,
 * TOLK_ERR_INVALID_ARG for non-finite spectra. out is undefined on failure. */
tolk_status tolk_cuda_mel(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                          size_t n_samples, float *out, float *running_max);

/* Device-memory form for batches of equal-length signals (the scheduler's
 * 30 s windows): d_samples [batch, sample_stride] device, signal b is
 * d_samples + b * sample_stride, n_samples long (<= sample_stride);
 * d_out [batch, n_mels, out_stride] device, out_stride >= n_frames =
 * n_samples / 160. d_max [batch] device receives each signal's max raw value
 * (NaN when its spectrum is not finite). normalize != 0 applies the clamp and
 * scaling in place with each signal's own max. stream is a cudaStream_t (NULL
 * = legacy default stream); the work is queued on it and not waited for.
 * Returns TOLK_ERR_CUDA (message set) when a launch or copy fails. */
tolk_status tolk_cuda_mel_device(tolk_ctx *ctx, const tolk_mel *mel, const float *d_samples,
                                 size_t sample_stride, size_t n_samples, int batch, float *d_out,
                                 size_t out_stride, float *d_max, int normalize, void *stream);
#endif

#endif /* TOLK_MEL_INTERNAL_H */

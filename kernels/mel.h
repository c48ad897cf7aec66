/*
 * mel.h — log-mel spectrogram kernels on the GPU (kernels/mel.cu), batched
 * over equal-length signals (many 30 s windows or streams at once).
 * Reproduces openai-whisper's log_mel_spectrogram like src/mel.c (the CPU
 * twin): reflect padding of 200, periodic Hann window of 400, hop 160,
 * |DFT|^2 over 201 bins with the last STFT frame dropped, Slaney filterbank,
 * log10(max(x, 1e-10)), clamp at (max - 8), (x + 4) / 4.
 *
 * The DFT is a direct 400-point transform in double precision (twiddles
 * from sincospi), the filterbank sum and the log argument too, so the GPU
 * result is the exact spectrum rounded once; the CPU's float32 FFT differs
 * from it by ~1e-5 after normalisation.
 *
 * Conventions are those of kcommon.h: device pointers, stream as void *,
 * launchers only enqueue (no allocation, no synchronisation) and return 0
 * or a cudaError_t value (TOLK_CU_EINVAL for rejected arguments).
 * src/cuda_mel.c is the host glue that allocates, uploads and calls these.
 */
#ifndef TOLK_KERNELS_MEL_H
#define TOLK_KERNELS_MEL_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* Raw stage. For signal b < batch and frame t < n_frames = n_samples / 160:
 *   samples   [batch, sample_stride] float32; signal b is the n_samples
 *             values at samples + b * sample_stride (n_samples >= 160,
 *             sample_stride >= n_samples)
 *   window    [400] float32, the periodic Hann window
 *   filters   [n_mels, 201] float32, the filterbank
 *   bands     [n_mels, 2] int32: bins [bands[2m], bands[2m+1]) hold every
 *             non-zero weight of filter m (0 <= first <= last <= 201)
 *   out       [batch, n_mels, out_stride] float32 (out_stride >= n_frames):
 *             out[(b * n_mels + m) * out_stride + t] =
 *                 log10(max(sum_k filters[m, k] * |X_bt[k]|^2, 1e-10)),
 *             NaN where that sum is not finite
 *   frame_max [batch, n_frames] float32: the max over m of frame t's
 *             values (NaN when any of them is NaN)
 * 1 <= batch <= 65535, 1 <= n_mels <= 1024. One block of 256 threads per
 * frame (grid-stride over frames, grid.y = batch). */
int tolk_cu_mel_raw(const float *samples, long long sample_stride, long long n_samples, int batch,
                    const float *window, const float *filters, const int *bands, int n_mels,
                    float *out, long long out_stride, float *frame_max, void *stream);

/* batch_max[b] = max over t < n_frames of frame_max[b * n_frames + t]
 * (NaN when any is NaN). frame_max [batch, n_frames], batch_max [batch];
 * n_frames >= 1, 1 <= batch <= 65535. One block per signal. */
int tolk_cu_mel_max(const float *frame_max, long long n_frames, int batch, float *batch_max,
                    void *stream);

/* Normalise in place: x = (max(x, batch_max[b] - 8) + 4) / 4 for every
 * out[(b * n_mels + m) * out_stride + t], t < n_frames (the layout of
 * tolk_cu_mel_raw). batch_max [batch] device. */
int tolk_cu_mel_normalize(float *out, long long out_stride, long long n_frames, int n_mels,
                          int batch, const float *batch_max, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_MEL_H */

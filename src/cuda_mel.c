/*
 * cuda_mel.c — host glue of the GPU log-mel spectrogram (CUDA builds only):
 * uploads the filterbank and window, launches kernels/mel.cu (the twin of
 * src/mel.c's CPU path, both reproducing openai-whisper's
 * log_mel_spectrogram) and brings results back. tolk_mel_compute and
 * tolk_mel_compute_raw dispatch here when the context's device is CUDA.
 *
 * Each call works on its own non-blocking stream with stream-ordered
 * allocations (cudaMallocAsync), so calls from different threads (each with
 * its own tolk_ctx) run concurrently and share nothing. The per-call upload
 * of the filterbank (<= 103 KB) is the price of keeping tolk_mel immutable
 * and device-agnostic.
 */
#include "mel.h"
#include "mel_internal.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <string.h>

/* Record a failed CUDA call on ctx: TOLK_ERR_CUDA with the call's name and
 * CUDA's description. Clears the (non-sticky) error state. */
static tolk_status cuda_fail(tolk_ctx *ctx, const char *what, cudaError_t err) {
    (void)cudaGetLastError();
    return tolk_fail(ctx, TOLK_ERR_CUDA, "mel (CUDA): %s failed: %s (%s)", what,
                     cudaGetErrorName(err), cudaGetErrorString(err));
}

tolk_status tolk_cuda_mel_device(tolk_ctx *ctx, const tolk_mel *mel, const float *d_samples,
                                 size_t sample_stride, size_t n_samples, int batch, float *d_out,
                                 size_t out_stride, float *d_max, int normalize, void *stream) {
    if (!mel || !d_samples || !d_out || !d_max)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "mel (CUDA): NULL argument");
    const size_t n_frames = tolk_mel_n_frames(n_samples);
    if (n_frames == 0)
        return tolk_fail(ctx, TOLK_ERR_EMPTY,
                         "mel (CUDA): %zu samples make no frame (at least %d are needed)",
                         n_samples, TOLK_HOP_LENGTH);
    if (batch < 1 || batch > 65535 || sample_stride < n_samples || out_stride < n_frames ||
        n_samples > (size_t)1 << 48 || sample_stride > (size_t)1 << 48 ||
        out_stride > (size_t)1 << 48)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "mel (CUDA): bad batch layout (batch %d, %zu samples, sample stride "
                         "%zu, output stride %zu)",
                         batch, n_samples, sample_stride, out_stride);
    const int n_mels = mel->n_mels;
    cudaStream_t st = (cudaStream_t)stream;

    /* One device block: window [400] | filters [n_mels, 201] | frame maxima
     * [batch, n_frames] | bands [n_mels, 2] (floats first: all 4-byte). */
    const size_t n_filt = (size_t)n_mels * TOLK_MEL_N_BINS;
    size_t n_fmax, bytes;
    if (!tolk_mul_size(n_frames, (size_t)batch, &n_fmax) ||
        !tolk_add_size(TOLK_N_FFT + n_filt, n_fmax, &bytes) ||
        !tolk_add_size(bytes, (size_t)n_mels * 2, &bytes) || !tolk_mul_size(bytes, 4, &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "mel (CUDA): scratch size overflows");
    void *block = NULL;
    cudaError_t err = cudaMallocAsync(&block, bytes, st);
    if (err != cudaSuccess) return cuda_fail(ctx, "cudaMallocAsync (scratch)", err);
    float *d_window = (float *)block;
    float *d_filters = d_window + TOLK_N_FFT;
    float *d_fmax = d_filters + n_filt;
    int *d_bands = (int *)(d_fmax + n_fmax);

    tolk_status status = TOLK_OK;
    const char *what = NULL;
    if ((err = cudaMemcpyAsync(d_window, mel->window, TOLK_N_FFT * sizeof(float),
                               cudaMemcpyHostToDevice, st)) != cudaSuccess ||
        (err = cudaMemcpyAsync(d_filters, mel->filters, n_filt * sizeof(float),
                               cudaMemcpyHostToDevice, st)) != cudaSuccess ||
        (err = cudaMemcpyAsync(d_bands, mel->bands, (size_t)n_mels * 2 * sizeof(int),
                               cudaMemcpyHostToDevice, st)) != cudaSuccess) {
        what = "cudaMemcpyAsync (filterbank)";
    } else if ((err = (cudaError_t)tolk_cu_mel_raw(d_samples, (long long)sample_stride,
                                                   (long long)n_samples, batch, d_window, d_filters,
                                                   d_bands, n_mels, d_out, (long long)out_stride,
                                                   d_fmax, stream)) != cudaSuccess) {
        what = "mel_raw kernel launch";
    } else if ((err = (cudaError_t)tolk_cu_mel_max(d_fmax, (long long)n_frames, batch, d_max,
                                                   stream)) != cudaSuccess) {
        what = "mel_max kernel launch";
    } else if (normalize && (err = (cudaError_t)tolk_cu_mel_normalize(
                                 d_out, (long long)out_stride, (long long)n_frames, n_mels, batch,
                                 d_max, stream)) != cudaSuccess) {
        what = "mel_normalize kernel launch";
    }
    if (what) status = cuda_fail(ctx, what, err);
    /* Stream-ordered: freed once the kernels that read it are done. */
    err = cudaFreeAsync(block, st);
    if (err != cudaSuccess && status == TOLK_OK) status = cuda_fail(ctx, "cudaFreeAsync", err);
    return status;
}

tolk_status tolk_cuda_mel(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                          size_t n_samples, float *out, float *running_max) {
    const size_t n_frames = tolk_mel_n_frames(n_samples);
    const size_t n_out = n_frames * (size_t)mel->n_mels; /* checked by the caller */
    cudaError_t err = cudaSetDevice(ctx ? ctx->params.cuda_device : 0);
    if (err != cudaSuccess) return cuda_fail(ctx, "cudaSetDevice", err);
    cudaStream_t st = NULL;
    err = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    if (err != cudaSuccess) return cuda_fail(ctx, "cudaStreamCreate", err);

    tolk_status status = TOLK_OK;
    float *d_x = NULL, *d_out = NULL, *d_max = NULL, h_max = NAN;
    const char *what = NULL;
    if ((err = cudaMallocAsync((void **)&d_x, n_samples * sizeof(float), st)) != cudaSuccess ||
        (err = cudaMallocAsync((void **)&d_out, n_out * sizeof(float), st)) != cudaSuccess ||
        (err = cudaMallocAsync((void **)&d_max, sizeof(float), st)) != cudaSuccess) {
        what = "cudaMallocAsync";
    } else if ((err = cudaMemcpyAsync(d_x, samples, n_samples * sizeof(float),
                                      cudaMemcpyHostToDevice, st)) != cudaSuccess) {
        what = "cudaMemcpyAsync (samples)";
    }
    if (what) {
        status = cuda_fail(ctx, what, err);
    } else {
        status = tolk_cuda_mel_device(ctx, mel, d_x, n_samples, n_samples, 1, d_out, n_frames,
                                      d_max, running_max == NULL, st);
        if (status == TOLK_OK) {
            if ((err = cudaMemcpyAsync(out, d_out, n_out * sizeof(float), cudaMemcpyDeviceToHost,
                                       st)) != cudaSuccess ||
                (err = cudaMemcpyAsync(&h_max, d_max, sizeof(float), cudaMemcpyDeviceToHost, st)) !=
                    cudaSuccess)
                status = cuda_fail(ctx, "cudaMemcpyAsync (result)", err);
        }
    }
    /* Release in stream order, then wait for everything queued: the copies
     * into out and h_max, and any kernel error. */
    if (d_x) (void)cudaFreeAsync(d_x, st);
    if (d_out) (void)cudaFreeAsync(d_out, st);
    if (d_max) (void)cudaFreeAsync(d_max, st);
    err = cudaStreamSynchronize(st);
    if (err != cudaSuccess && status == TOLK_OK)
        status = cuda_fail(ctx, "mel kernels (cudaStreamSynchronize)", err);
    (void)cudaStreamDestroy(st);
    if (status != TOLK_OK) return status;
    if (!isfinite(h_max))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "mel: the samples hold NaN, infinity or values too large for a "
                         "finite spectrum");
    if (running_max) *running_max = h_max;
    return TOLK_OK;
}

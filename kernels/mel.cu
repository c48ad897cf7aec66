/*
 * mel.cu — log-mel spectrogram kernels (see mel.h), the GPU twin of
 * src/mel.c, reproducing openai-whisper's log_mel_spectrogram.
 *
 * mel_raw_kernel: one block of 256 threads per (frame, signal). The block
 *   builds double-precision twiddles cos/sin(2 pi i / 400) once in shared
 *   memory, then per frame: 400 windowed, reflect-padded samples to shared
 *   memory; threads 0..200 each compute one bin of the direct DFT (double
 *   accumulation, twiddle index k * n mod 400 kept incrementally) and its
 *   power; threads then take mel rows, sum the filter band in double, take
 *   log10 and write; a block reduction (NaN-propagating) gives the frame max.
 * mel_max_kernel: one block per signal reduces the frame maxima.
 * mel_normalize_kernel: grid-stride clamp + scale, in place.
 */
#include "kcommon.cuh"
#include "mel.h"

#include <float.h>

#define MEL_THREADS 256
#define MEL_N_FFT 400
#define MEL_N_BINS 201
#define MEL_HOP 160
#define MEL_PAD 200

/* max(a, b) that returns NaN when either is NaN (fmaxf would drop it). */
static __device__ __forceinline__ float nan_max(float a, float b) {
    return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
}

/* nan_max over the block; every thread gets the result. blockDim.x ==
 * MEL_THREADS; every thread must call it; red: MEL_THREADS / 32 floats. */
static __device__ float block_nan_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads(); /* red may still be read by the previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < MEL_THREADS / 32 ? red[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1)
        v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Index into a signal of n >= 1 samples for virtual index j of its
 * reflect-padded version, reflecting repeatedly (as tolk_mel_reflect). */
static __device__ __forceinline__ long long reflect_index(long long j, long long n) {
    if (n <= 1) return 0;
    const long long period = 2 * (n - 1);
    j %= period;
    if (j < 0) j += period;
    return j < n ? j : period - j;
}

static __global__ void __launch_bounds__(MEL_THREADS)
    mel_raw_kernel(const float *__restrict__ samples, long long sample_stride, long long n_samples,
                   long long n_frames, const float *__restrict__ window,
                   const float *__restrict__ filters, const int *__restrict__ bands, int n_mels,
                   float *__restrict__ out, long long out_stride, float *__restrict__ frame_max) {
    __shared__ double tw_cos[MEL_N_FFT], tw_sin[MEL_N_FFT];
    __shared__ float frame[MEL_N_FFT];
    __shared__ double power[MEL_N_BINS];
    __shared__ float red[MEL_THREADS / 32];

    const int tid = threadIdx.x;
    const int b = blockIdx.y;
    const float *x = samples + (long long)b * sample_stride;

    for (int i = tid; i < MEL_N_FFT; i += MEL_THREADS) {
        double s, c;
        sincospi((double)i / (MEL_N_FFT / 2), &s, &c); /* angle 2 pi i / 400 */
        tw_cos[i] = c;
        tw_sin[i] = s;
    }
    /* (the first __syncthreads of the frame loop publishes the tables) */

    for (long long t = blockIdx.x; t < n_frames; t += gridDim.x) {
        /* Frame t covers signal samples [160 t - 200, 160 t + 200). */
        const long long start = t * MEL_HOP - MEL_PAD;
        for (int k = tid; k < MEL_N_FFT; k += MEL_THREADS) {
            long long j = start + k;
            if (j < 0 || j >= n_samples) j = reflect_index(j, n_samples);
            frame[k] = x[j] * window[k]; /* float32 product, as the CPU path */
        }
        __syncthreads();

        if (tid < MEL_N_BINS) {
            /* X[k] = sum_n frame[n] exp(-2 pi i k n / 400); the sign of the
             * imaginary part does not matter for the power. */
            double re = 0.0, im = 0.0;
            int idx = 0; /* k * n mod 400 */
            for (int n = 0; n < MEL_N_FFT; n++) {
                const double v = (double)frame[n];
                re = fma(v, tw_cos[idx], re);
                im = fma(v, tw_sin[idx], im);
                idx += tid;
                if (idx >= MEL_N_FFT) idx -= MEL_N_FFT;
            }
            power[tid] = re * re + im * im;
        }
        __syncthreads();

        float vmax = -INFINITY;
        for (int m = tid; m < n_mels; m += MEL_THREADS) {
            const float *row = filters + (long long)m * MEL_N_BINS;
            const int k1 = bands[2 * m + 1];
            double acc = 0.0;
            for (int k = bands[2 * m]; k < k1; k++)
                acc = fma((double)row[k], power[k], acc);
            /* log10 in double, rounded once (as the CPU); a power beyond
             * float32, or NaN/inf from the input, is NaN: the caller fails. */
            const float r =
                acc <= FLT_MAX ? (float)log10(fmax(acc, 1e-10)) : __int_as_float(0x7fc00000);
            out[((long long)b * n_mels + m) * out_stride + t] = r;
            vmax = nan_max(vmax, r);
        }
        vmax = block_nan_max(vmax, red); /* synchronises: frame/power are free after it */
        if (tid == 0) frame_max[(long long)b * n_frames + t] = vmax;
    }
}

static __global__ void __launch_bounds__(MEL_THREADS)
    mel_max_kernel(const float *__restrict__ frame_max, long long n_frames,
                   float *__restrict__ batch_max) {
    __shared__ float red[MEL_THREADS / 32];
    const float *f = frame_max + (long long)blockIdx.x * n_frames;
    float v = -INFINITY;
    for (long long t = threadIdx.x; t < n_frames; t += MEL_THREADS)
        v = nan_max(v, f[t]);
    v = block_nan_max(v, red);
    if (threadIdx.x == 0) batch_max[blockIdx.x] = v;
}

static __global__ void mel_normalize_kernel(float *__restrict__ out, long long out_stride,
                                            long long n_frames, int n_mels, long long total,
                                            const float *__restrict__ batch_max) {
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const long long row = i / n_frames, t = i - row * n_frames; /* row = b * n_mels + m */
        const float floor_v = batch_max[row / n_mels] - 8.0f;
        float *p = out + row * out_stride + t;
        const float v = *p > floor_v ? *p : floor_v;
        *p = (v + 4.0f) / 4.0f;
    }
}

extern "C" int tolk_cu_mel_raw(const float *samples, long long sample_stride, long long n_samples,
                               int batch, const float *window, const float *filters,
                               const int *bands, int n_mels, float *out, long long out_stride,
                               float *frame_max, void *stream) {
    const long long n_frames = n_samples / MEL_HOP;
    if (!samples || !window || !filters || !bands || !out || !frame_max) return TOLK_CU_EINVAL;
    if (n_frames < 1 || sample_stride < n_samples || batch < 1 || batch > 65535 || n_mels < 1 ||
        n_mels > 1024 || out_stride < n_frames)
        return TOLK_CU_EINVAL;
    const long long gx = n_frames < 65535LL * 4 ? n_frames : 65535LL * 4;
    dim3 grid((unsigned)gx, (unsigned)batch);
    mel_raw_kernel<<<grid, MEL_THREADS, 0, (cudaStream_t)stream>>>(
        samples, sample_stride, n_samples, n_frames, window, filters, bands, n_mels, out,
        out_stride, frame_max);
    return (int)cudaGetLastError();
}

extern "C" int tolk_cu_mel_max(const float *frame_max, long long n_frames, int batch,
                               float *batch_max, void *stream) {
    if (!frame_max || !batch_max || n_frames < 1 || batch < 1 || batch > 65535)
        return TOLK_CU_EINVAL;
    mel_max_kernel<<<(unsigned)batch, MEL_THREADS, 0, (cudaStream_t)stream>>>(frame_max, n_frames,
                                                                              batch_max);
    return (int)cudaGetLastError();
}

extern "C" int tolk_cu_mel_normalize(float *out, long long out_stride, long long n_frames,
                                     int n_mels, int batch, const float *batch_max, void *stream) {
    if (!out || !batch_max || n_frames < 1 || out_stride < n_frames || n_mels < 1 || batch < 1 ||
        batch > 65535)
        return TOLK_CU_EINVAL;
    const long long total = (long long)batch * n_mels * n_frames;
    mel_normalize_kernel<<<tolk_cu_grid(total, 256), 256, 0, (cudaStream_t)stream>>>(
        out, out_stride, n_frames, n_mels, total, batch_max);
    return (int)cudaGetLastError();
}

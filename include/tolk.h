/*
 * tolk.h — the one public header of tolk, a Whisper speech recognition and
 * speech translation engine in C (CPU: OpenBLAS + FFTW; GPU: CUDA + cuBLAS).
 *
 * Conventions
 *  - Every fallible function returns a tolk_status. TOLK_OK is 0.
 *  - The library never prints, exits or aborts. Details of the last failure
 *    are kept in the handle the call was made on (tolk_ctx_last_error()).
 *  - Handles are opaque. A tolk_model is immutable after load and may be
 *    shared by any number of threads. A tolk_ctx (and later a tolk_state) is
 *    per-thread working state: never used by two threads at the same time.
 *  - Audio is 16 kHz mono float32 in [-1, 1] unless said otherwise.
 *  - Matrices are row-major. Shapes are written [rows, cols].
 *  - Memory returned through `T **out` pointers is owned by the caller and
 *    released with the matching *_free function (or tolk_free for plain
 *    buffers).
 */
#ifndef TOLK_H
#define TOLK_H

#include <stddef.h> /* size_t, offsetof */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(TOLK_SHARED_BUILD)
#define TOLK_API __declspec(dllexport)
#elif defined(__GNUC__)
#define TOLK_API __attribute__((visibility("default")))
#else
#define TOLK_API
#endif

/* ------------------------------------------------------------------------ */
/* Version and status                                                       */
/* ------------------------------------------------------------------------ */

#define TOLK_VERSION_MAJOR 0
#define TOLK_VERSION_MINOR 1
#define TOLK_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH"; static storage. */
TOLK_API const char *tolk_version(void);

typedef enum tolk_status {
    TOLK_OK = 0,
    TOLK_ERR_IO = 1,          /* file missing, unreadable, a directory, write failed */
    TOLK_ERR_FORMAT = 2,      /* corrupt, truncated or inconsistent content */
    TOLK_ERR_UNSUPPORTED = 3, /* valid but not supported (container, dtype, ...) */
    TOLK_ERR_NOMEM = 4,       /* an allocation failed or a size is absurd */
    TOLK_ERR_INVALID_ARG = 5, /* a caller error: NULL pointer, bad option value */
    TOLK_ERR_CUDA = 6,        /* a CUDA / cuBLAS call failed */
    TOLK_ERR_NO_DEVICE = 7,   /* CUDA requested but no device or no CUDA build */
    TOLK_ERR_EMPTY = 8,       /* the input holds no samples / no data */
    TOLK_ERR_INTERNAL = 9,    /* a bug in tolk */
    TOLK_ERR_CANCELLED = 10   /* stopped by a caller's callback */
} tolk_status;

/* A short English description of a status; static storage, never NULL. */
TOLK_API const char *tolk_strerror(tolk_status status);

/* OpenBLAS picks its kernels once, when the process loads it, from the CPU
 * models it knows; on a CPU newer than the OpenBLAS build it falls back to
 * generic ones (Debian 12's 0.3.21 on Intel Emerald Rapids: "Prescott",
 * SSE3, about 3x slower transcription). tolk_blas_coretype_advice returns
 * the OPENBLAS_CORETYPE value this CPU's instruction sets allow when
 * OpenBLAS picked a weaker set and the variable is not set, NULL otherwise;
 * it takes effect only in the environment of a process before it starts
 * (the tolk command re-executes itself with it). tolk_blas_core: the set
 * OpenBLAS runs ("SkylakeX", "Haswell", ...). */
TOLK_API const char *tolk_blas_coretype_advice(void);
TOLK_API const char *tolk_blas_core(void);

/* Release a buffer the library handed to the caller (samples, spectra). */
TOLK_API void tolk_free(void *ptr);

/* ------------------------------------------------------------------------ */
/* Context: per-thread settings and the last error message                  */
/* ------------------------------------------------------------------------ */

typedef enum tolk_device {
    TOLK_DEVICE_CPU = 0,
    TOLK_DEVICE_CUDA = 1, /* fail with TOLK_ERR_NO_DEVICE when none */
    TOLK_DEVICE_AUTO = 2  /* CUDA when present, else the CPU */
} tolk_device;

typedef struct tolk_ctx_params {
    int n_threads;      /* CPU threads for BLAS/FFT/loops; <= 0: all cores */
    tolk_device device; /* where mel / model work runs */
    int cuda_device;    /* CUDA device ordinal when device is CUDA/AUTO */
} tolk_ctx_params;

typedef struct tolk_ctx tolk_ctx;

TOLK_API tolk_ctx_params tolk_ctx_default_params(void);

/* Create a context. params may be NULL (defaults). *out owned by caller. */
TOLK_API tolk_status tolk_ctx_new(const tolk_ctx_params *params, tolk_ctx **out);
TOLK_API void tolk_ctx_free(tolk_ctx *ctx);

/* The message of the last failure on ctx ("" when none); valid until the
 * next call on ctx. It names the file and the problem where there is one. */
TOLK_API const char *tolk_ctx_last_error(const tolk_ctx *ctx);

/* The device the context actually resolved to (AUTO becomes CPU or CUDA). */
TOLK_API tolk_device tolk_ctx_device(const tolk_ctx *ctx);
/* The CPU threads the context runs (tolk_ctx_params.n_threads, all online
 * cores when it was <= 0); 1 when ctx is NULL. */
TOLK_API int tolk_ctx_threads(const tolk_ctx *ctx);

/* Whether this build has the CUDA backend and a device is usable now. */
TOLK_API int tolk_cuda_available(void);

/* ------------------------------------------------------------------------ */
/* Audio input                                                              */
/* ------------------------------------------------------------------------ */

#define TOLK_SAMPLE_RATE 16000

/* Decode a whole file (any format libsndfile reads; m4a/mp4/webm/mkv and
 * friends through FFmpeg when built with it) to 16 kHz mono float32:
 * channels averaged, resampled with libsoxr at very high quality.
 * path "-" reads standard input. On success *samples (caller frees with
 * tolk_free) holds *n_samples samples; on failure *samples is NULL. */
TOLK_API tolk_status tolk_audio_load(tolk_ctx *ctx, const char *path, float **samples,
                                     size_t *n_samples);

/* The same, from bytes in memory. name is used in error messages only. */
TOLK_API tolk_status tolk_audio_load_memory(tolk_ctx *ctx, const void *data, size_t size,
                                            const char *name, float **samples, size_t *n_samples);

/* Streaming decoder: constant memory for files of any length. */
typedef struct tolk_audio_reader tolk_audio_reader;

/* Open path ("-" = stdin). *out owned by caller (tolk_audio_close). */
TOLK_API tolk_status tolk_audio_open(tolk_ctx *ctx, const char *path, tolk_audio_reader **out);

/* Read up to max 16 kHz mono samples into dst; *got = 0 at end of stream. */
TOLK_API tolk_status tolk_audio_read(tolk_ctx *ctx, tolk_audio_reader *r, float *dst, size_t max,
                                     size_t *got);

/* Source properties: original rate, channels, and frames (-1 if unknown). */
TOLK_API void tolk_audio_source_info(const tolk_audio_reader *r, int *sample_rate, int *channels,
                                     int64_t *frames);

/* Whether the input is cut short: 1 when its header promises more than the
 * input holds (a WAV data chunk larger than the file, an MP3 whose Xing /
 * Info / VBRI count exceeds what decodes, an Ogg / Opus stream without its
 * final end-of-stream page), else 0. Final once tolk_audio_read has
 * returned the end of the stream. *expected_frames: the frames promised at
 * the source rate (-1 when the format states no count, as Ogg), and
 * *decoded_frames: the frames decoded so far; either may be NULL. A cut
 * FLAC is an error instead (TOLK_ERR_FORMAT): its frame count is exact. */
TOLK_API int tolk_audio_truncated(const tolk_audio_reader *r, int64_t *expected_frames,
                                  int64_t *decoded_frames);
TOLK_API void tolk_audio_close(tolk_audio_reader *r);

/* Resample mono float32 from in_rate to out_rate with libsoxr (very high
 * quality). *out (caller frees with tolk_free) holds *n_out samples. */
TOLK_API tolk_status tolk_resample(tolk_ctx *ctx, const float *in, size_t n_in, double in_rate,
                                   double out_rate, float **out, size_t *n_out);

/* Whether this build has the FFmpeg decoder. */
TOLK_API int tolk_audio_has_ffmpeg(void);

/* ------------------------------------------------------------------------ */
/* Languages (Whisper's table, in language-token order)                     */
/* ------------------------------------------------------------------------ */

/* Number of languages (100: the 99 of multilingual models, then yue). */
TOLK_API int tolk_language_count(void);
/* Code ("en") and lower-case English name ("english") of language i in
 * [0, count); NULL outside. Static storage. */
TOLK_API const char *tolk_language_code(int i);
TOLK_API const char *tolk_language_name(int i);
/* Index of a code, name or alias ("castilian"), any letter case; -1 when
 * unknown. */
TOLK_API int tolk_language_index(const char *code_or_name);

/* ------------------------------------------------------------------------ */
/* Log-mel spectrogram (reproduces openai-whisper's log_mel_spectrogram)    */
/* ------------------------------------------------------------------------ */

#define TOLK_N_FFT 400
#define TOLK_HOP_LENGTH 160
#define TOLK_CHUNK_SECONDS 30
#define TOLK_N_SAMPLES (TOLK_CHUNK_SECONDS * TOLK_SAMPLE_RATE) /* 480000 */
#define TOLK_N_FRAMES (TOLK_N_SAMPLES / TOLK_HOP_LENGTH)       /* 3000 */

/* Immutable after creation (filterbank, window, FFT plans); may be shared by
 * threads. */
typedef struct tolk_mel tolk_mel;

/* n_mels: 80 or 128. */
TOLK_API tolk_status tolk_mel_new(tolk_ctx *ctx, int n_mels, tolk_mel **out);
TOLK_API void tolk_mel_free(tolk_mel *mel);
TOLK_API int tolk_mel_n_mels(const tolk_mel *mel);

/* Number of frames for n_samples samples: n_samples / 160 (the reference
 * drops the last STFT frame). */
TOLK_API size_t tolk_mel_n_frames(size_t n_samples);

/* The Slaney mel filterbank, [n_mels, 201] float32, owned by mel. */
TOLK_API const float *tolk_mel_filters(const tolk_mel *mel);

/* Full reference log-mel: out [n_mels, n_frames] (caller allocates
 * n_mels * tolk_mel_n_frames(n) floats). log10(max(power, 1e-10)), clamped
 * at (global max - 8), then (x + 4) / 4. Runs on the context's device. */
TOLK_API tolk_status tolk_mel_compute(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                                      size_t n_samples, float *out);

/* The same, whole file, returned in a new buffer (caller frees with
 * tolk_free); *n_frames set. */
TOLK_API tolk_status tolk_mel_compute_alloc(tolk_ctx *ctx, const tolk_mel *mel,
                                            const float *samples, size_t n_samples, float **out,
                                            size_t *n_frames);

/* Two-stage form for long audio processed in pieces: the raw stage writes
 * log10(max(power, 1e-10)) for frames [0, n_frames) of samples and raises
 * *running_max to the largest value written; the normalise stage applies
 * the clamp at (max - 8) and (x + 4) / 4 in place. For frame-exact pieces
 * the caller passes overlapping sample ranges (n_fft/2 context each side). */
TOLK_API tolk_status tolk_mel_compute_raw(tolk_ctx *ctx, const tolk_mel *mel, const float *samples,
                                          size_t n_samples, float *out, float *running_max);
TOLK_API void tolk_mel_normalize(float *mel, size_t n, float global_max);

/* Copy [n_mels, n_frames] (row stride n_frames) into dst [n_mels, 3000],
 * zero-padding or trimming the time axis (openai-whisper's pad_or_trim on a
 * spectrogram). pad_value is what padding frames hold. */
TOLK_API void tolk_mel_pad_or_trim(const float *src, int n_mels, size_t n_frames, float *dst,
                                   float pad_value);

/* Pad or trim samples to exactly TOLK_N_SAMPLES into dst (zeros appended). */
TOLK_API void tolk_audio_pad_or_trim(const float *src, size_t n, float *dst);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum tolk_model_format {
    TOLK_FORMAT_CT2 = 0,         /* CTranslate2 directory (model.bin + config.json) */
    TOLK_FORMAT_SAFETENSORS = 1, /* Hugging Face directory (config.json + safetensors) */
    TOLK_FORMAT_GGML = 2         /* whisper.cpp ggml .bin */
} tolk_model_format;

typedef struct tolk_model tolk_model;

typedef struct tolk_model_params {
    tolk_device device; /* where the weights live; AUTO = CUDA when present */
    int use_mmap;       /* 0 (default): read the weights into memory, so that a model
                           file truncated or rewritten during a run cannot crash the
                           process (SIGBUS); 1: map the files (faster start, shared
                           page cache) when nothing changes them while loaded */
    int compute_type;   /* tolk_compute_type: TOLK_COMPUTE_F32 (default) */
    int attention_type; /* CUDA: arithmetic of the encoder's attention, a
                           tolk_attention_type; TOLK_ATTENTION_AUTO (default):
                           tensor cores (float16) with half weights, float32 in
                           the F32 parity mode, unless $TOLK_ATTN_TC=f32|f16|bf16
                           sets the process default */
    int no_avx512;      /* CPU: 1 = no AVX-512 kernels for this model (the BF16
                           products then run as float32 sgemm); 0 (default):
                           when the CPU has them, unless $TOLK_NO_AVX512 is set */
    int kv_cache;       /* tolk_kv_cache_type: storage of the decoder's
                           cross-attention keys and values (TOLK_KV_AUTO) */
    int gelu;           /* tolk_gelu_type: the MLP's GELU (TOLK_GELU_AUTO) */
} tolk_model_params;

/* The GELU of the transformer MLPs (tolk_model_params.gelu). Whisper's is
 * the exact form 0.5 x (1 + erf(x / sqrt 2)). */
typedef enum tolk_gelu_type {
    TOLK_GELU_AUTO = 0,  /* exact everywhere (today) */
    TOLK_GELU_EXACT = 1, /* the erf form: on CUDA its own kernel after fc1, or
                            inside fc1's product in decoder steps of at most
                            16 rows (with their LayerNorm) */
    TOLK_GELU_TANH = 2   /* CUDA's half-precision modes: the tanh approximation
                            0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))),
                            within 5e-4 of the exact form, computed inside fc1's
                            product (cuBLASLt's epilogue): one kernel fewer per
                            layer, but logits move ~5x more against float32
                            (tiny.en: up to 0.0061 vs 0.0012); whisper.cpp's GELU.
                            Decoder steps of at most 16 rows keep the exact form
                            (already fused there); elsewhere the same as EXACT */
} tolk_gelu_type;

/* Storage of the decoder's cross-attention keys and values
 * (tolk_model_params.kv_cache): every decoder layer's projection of one
 * encoded 30 s window, 1500 positions x 2 x n_text_state per layer, which
 * each decoder step of each sequence reads whole (base: 36.9 MB per window
 * in float32; large-v3: 491 MB). */
typedef enum tolk_kv_cache_type {
    TOLK_KV_AUTO = 0, /* float16 on CUDA in the half-precision modes, else float32 */
    TOLK_KV_F32 = 1,  /* float32: the exact-parity storage */
    TOLK_KV_F16 = 2   /* float16 (rounded once; products in float32): half the
                         memory per window and half the bytes a step reads per
                         sequence; transcripts may differ from float32 on
                         near-ties (the arithmetic stays float32) */
} tolk_kv_cache_type;

/* tolk_model_params.attention_type */
typedef enum tolk_attention_type {
    TOLK_ATTENTION_AUTO = 0,
    TOLK_ATTENTION_F32 = 1,  /* float32 (CUDA cores) */
    TOLK_ATTENTION_F16 = 2,  /* float16 inputs on tensor cores, float32 accumulation */
    TOLK_ATTENTION_BF16 = 3, /* bfloat16 inputs on tensor cores, float32 accumulation */
} tolk_attention_type;

/* Precision of the matrix products (tolk_model_params.compute_type). On
 * CUDA, F32 is the exact-parity mode: every weight widened to float32 and
 * float32 products (no TF32), the same transcripts as the CPU. */
typedef enum tolk_compute_type {
    TOLK_COMPUTE_F32 = 0,  /* float32 products: exact parity (default) */
    TOLK_COMPUTE_BF16 = 1, /* bfloat16 inputs, float32 accumulation, for the
                             products of >= 2 rows (encoder, prompts, beams)
                             on CPUs with AVX-512 BF16 (~1.5x faster base
                             encoder; elsewhere the same as F32); one-row
                             (greedy) decoder steps stay float32. On CUDA:
                             half-precision weights on tensor cores, as F16. */
    TOLK_COMPUTE_F16 = 2,  /* CUDA: float16 / bfloat16 weights kept as they
                              are, products and encoder attention on tensor
                              cores with float32 accumulation (fast). CPU: as
                              F32. */
    TOLK_COMPUTE_AUTO = 3  /* F16 on CUDA, F32 on the CPU */
} tolk_compute_type;

typedef struct tolk_model_desc {
    tolk_model_format format;
    int n_mels;        /* 80 or 128 */
    int n_vocab;       /* 51864, 51865, 51866 */
    int n_audio_ctx;   /* 1500 */
    int n_audio_state; /* encoder width */
    int n_audio_head;
    int n_audio_layer;
    int n_text_ctx;   /* 448 */
    int n_text_state; /* decoder width */
    int n_text_head;
    int n_text_layer;
    int multilingual;      /* 1 unless English-only */
    int n_languages;       /* 99 or 100 */
    const char *dtypes;    /* stored dtypes, e.g. "float16" or "float16,float32" */
    uint64_t file_bytes;   /* bytes on disk */
    uint64_t mem_bytes;    /* bytes of weights resident for compute */
    const char *size_name; /* "tiny.en", "base", "large-v3", ... or "custom" */
} tolk_model_desc;

TOLK_API tolk_model_params tolk_model_default_params(void);

/* Load a model from path: a CTranslate2 or Hugging Face directory, or a
 * ggml file; the format is found from the content. Hostile files fail with
 * TOLK_ERR_FORMAT / TOLK_ERR_UNSUPPORTED and a message naming the file and
 * the tensor. *out is immutable and thread-shareable; tolk_model_free. */
TOLK_API tolk_status tolk_model_load(tolk_ctx *ctx, const char *path,
                                     const tolk_model_params *params, tolk_model **out);
TOLK_API void tolk_model_free(tolk_model *model);

/* Describe a loaded model. Strings are owned by the model. */
TOLK_API void tolk_model_describe(const tolk_model *model, tolk_model_desc *desc);

/* The name of a format: "ctranslate2", "safetensors", "ggml". */
TOLK_API const char *tolk_model_format_name(tolk_model_format format);

/* ------------------------------------------------------------------------ */
/* Voice activity detection (Silero VAD v6, 16 kHz)                         */
/* ------------------------------------------------------------------------ */

/* The model gives one speech probability per 512-sample chunk (32 ms),
 * looking at the 64 samples before the chunk as well; its LSTM state and
 * that context carry from chunk to chunk. */
#define TOLK_VAD_CHUNK 512
#define TOLK_VAD_CONTEXT 64

/* A loaded Silero VAD model: immutable, shared by any number of threads. */
typedef struct tolk_vad tolk_vad;

/* Load a Silero VAD v6 16 kHz model from path: a safetensors file with the
 * names of the silero-vad package's silero_vad_16k.safetensors (stft_conv,
 * conv1..4, lstm_cell, final_conv), whisper.cpp's ggml Silero file, or a
 * directory holding either (scripts/get-model silero-vad installs one).
 * The format is found from the content. Bad, truncated or hostile files
 * fail with TOLK_ERR_FORMAT / TOLK_ERR_UNSUPPORTED naming the file and the
 * tensor. *out: tolk_vad_free. */
TOLK_API tolk_status tolk_vad_load(tolk_ctx *ctx, const char *path, tolk_vad **out);
TOLK_API void tolk_vad_free(tolk_vad *vad);

/* Speech probabilities of a whole signal (16 kHz mono): ceil(n / 512)
 * values, the last chunk zero-padded, the state starting from zeros: what
 * silero-vad's get_speech_timestamps computes. *probs: caller frees with
 * tolk_free. TOLK_ERR_EMPTY when n == 0. */
TOLK_API tolk_status tolk_vad_probs(tolk_ctx *ctx, const tolk_vad *vad, const float *samples,
                                    size_t n, float **probs, size_t *n_probs);

/* A live stream: LSTM state, the 64-sample context and a partial chunk,
 * carried across pushes so audio may arrive in pieces of any size. One
 * thread at a time; keeps a pointer to vad, which must outlive it. */
typedef struct tolk_vad_stream tolk_vad_stream;

TOLK_API tolk_status tolk_vad_stream_new(tolk_ctx *ctx, const tolk_vad *vad, tolk_vad_stream **out);
TOLK_API void tolk_vad_stream_free(tolk_vad_stream *s);
/* Back to the start of a stream (zero state, no context, nothing pending). */
TOLK_API void tolk_vad_stream_reset(tolk_vad_stream *s);

/* Push n samples: one probability per completed chunk goes to probs (room
 * for max_probs: at least (pending + n) / 512, see
 * tolk_vad_stream_pending); *n_probs set. A push whose probabilities would
 * not fit fails with TOLK_ERR_INVALID_ARG and changes nothing. */
TOLK_API tolk_status tolk_vad_stream_push(tolk_ctx *ctx, tolk_vad_stream *s, const float *samples,
                                          size_t n, float *probs, size_t max_probs,
                                          size_t *n_probs);
/* Samples waiting for a chunk to complete (0..511). */
TOLK_API size_t tolk_vad_stream_pending(const tolk_vad_stream *s);
/* End of the stream: a pending partial chunk is zero-padded and gives one
 * last probability (*n_probs = 1), else *n_probs = 0. */
TOLK_API tolk_status tolk_vad_stream_flush(tolk_ctx *ctx, tolk_vad_stream *s, float *prob,
                                           size_t *n_probs);
/* Batched: one 512-sample chunk for each of n streams (same model), all
 * run at once; probs[i] is stream i's probability. Streams with pending
 * samples are refused (mixing would reorder their audio). */
TOLK_API tolk_status tolk_vad_stream_chunks(tolk_ctx *ctx, tolk_vad_stream *const *streams, int n,
                                            const float *const *chunks, float *probs);

/* Turning probabilities into speech segments: the options and defaults of
 * faster-whisper's VadOptions (vad_filter), the algorithm of silero-vad's
 * get_speech_timestamps. */
typedef struct tolk_vad_params {
    double threshold;                   /* speech when p >= threshold [0.5] */
    double neg_threshold;               /* silence when p < neg_threshold; < 0:
                                           max(threshold - 0.15, 0.01) [-1] */
    int min_speech_duration_ms;         /* drop shorter speech [0] */
    double max_speech_duration_s;       /* split longer speech [INFINITY] */
    int min_silence_duration_ms;        /* silence that ends speech [2000] */
    int speech_pad_ms;                  /* padding each side [400] */
    int min_silence_at_max_speech_ms;   /* silence considered for a split [98] */
    int use_max_poss_sil_at_max_speech; /* split at the longest silence
                                    (silero-vad >= 6.2) instead of the last
                                    one (faster-whisper) [0] */
} tolk_vad_params;

/* faster-whisper's defaults: 0.5, None, 0 ms, inf, 2000 ms, 400 ms. */
TOLK_API tolk_vad_params tolk_vad_default_params(void);
/* silero-vad's get_speech_timestamps defaults: 0.5, None, 250 ms, inf,
 * 100 ms, 30 ms, longest-silence splits. */
TOLK_API tolk_vad_params tolk_vad_silero_params(void);
/* TOLK_ERR_INVALID_ARG naming the option for a bad value (thresholds
 * outside [0, 1] or neg_threshold > threshold, negative durations, a
 * max_speech_duration_s that is NaN or not positive). */
TOLK_API tolk_status tolk_vad_check_params(tolk_ctx *ctx, const tolk_vad_params *p);

/* A speech segment in samples of the 16 kHz input, [start, end). */
typedef struct tolk_speech_segment {
    int64_t start, end;
} tolk_speech_segment;

/* Speech segments from n_probs per-chunk probabilities of n_samples
 * samples (get_speech_timestamps_from_probs). *out (caller frees with
 * tolk_free; NULL when none) holds *n_out segments. */
TOLK_API tolk_status tolk_vad_segments_from_probs(tolk_ctx *ctx, const float *probs, size_t n_probs,
                                                  size_t n_samples, const tolk_vad_params *p,
                                                  tolk_speech_segment **out, size_t *n_out);
/* tolk_vad_probs then tolk_vad_segments_from_probs (p NULL: defaults). */
TOLK_API tolk_status tolk_vad_speech_timestamps(tolk_ctx *ctx, const tolk_vad *vad,
                                                const float *samples, size_t n,
                                                const tolk_vad_params *p, tolk_speech_segment **out,
                                                size_t *n_out);

/* ------------------------------------------------------------------------ */
/* Transcription and translation (openai-whisper transcribe() semantics)   */
/* ------------------------------------------------------------------------ */

/* Per-stream working state: KV caches, mel buffers, search scratch. One per
 * concurrent request, reusable across requests, one thread at a time. It
 * keeps a pointer to model, which must outlive it. */
typedef struct tolk_state tolk_state;

typedef enum tolk_task {
    TOLK_TASK_TRANSCRIBE = 0,
    TOLK_TASK_TRANSLATE = 1 /* any language -> English */
} tolk_task;

/* Progress callback: audio position and total in seconds (total < 0 when
 * unknown); return non-zero to cancel (TOLK_ERR_CANCELLED). */
typedef int (*tolk_progress_fn)(void *user, double position_s, double total_s);

/* A finished segment, delivered as soon as it is final (optional); the
 * pointer (and its words) is valid only during the call. */
struct tolk_segment;
typedef void (*tolk_segment_fn)(void *user, const struct tolk_segment *segment);

#define TOLK_MAX_TEMPERATURES 16

typedef struct tolk_transcribe_params {
    tolk_task task;
    const char *language; /* "en", "de", ...; NULL = detect (multilingual models) */
    float temperatures[TOLK_MAX_TEMPERATURES]; /* fallback schedule: 0, 0.2, ... 1.0 */
    int n_temperatures;
    int beam_size;                     /* <= 1: greedy at temperature 0 */
    int best_of;                       /* samples at temperature > 0 */
    float patience;                    /* beam search patience (1.0) */
    float length_penalty;              /* < 0: none (simple length normalisation) */
    float compression_ratio_threshold; /* 2.4; <= 0 disables */
    float logprob_threshold;           /* -1.0; set to -INFINITY to disable */
    float no_speech_threshold;         /* 0.6; <= 0 disables */
    int condition_on_previous_text;    /* 1 */
    const char *initial_prompt;        /* NULL */
    const char *prefix;                /* NULL */
    const char *suppress_tokens;       /* "-1": the model's default set; "" none; "1,2,3" */
    int suppress_blank;                /* 1 */
    int without_timestamps;            /* 0 */
    float max_initial_timestamp;       /* 1.0 s */
    int sample_len;                    /* max tokens per window; 0 = n_text_ctx / 2 */
    const char *clip_timestamps;       /* "0" or "start,end,start,end,..." seconds */
    uint64_t seed;                     /* for sampling at temperature > 0 */
    tolk_progress_fn progress;
    tolk_segment_fn on_segment;
    void *user;
    /* faster-whisper's vad_filter: with a model here only the speech that
     * it finds is decoded (the speech segments joined), and every segment
     * time is mapped back to the original timeline. NULL: off (default).
     * Exclusive with clip_timestamps. */
    const tolk_vad *vad;
    tolk_vad_params vad_params; /* tolk_vad_default_params() */
    /* With vad: batched long-form (faster-whisper's BatchedInferencePipeline)
     * — speech packed into pieces of at most 30 s (its VAD options:
     * max_speech_duration_s 30, min_silence_duration_ms 160), each piece a
     * request of its own decoded in parallel in the engine, each keeping the
     * fallback, the no-speech skip and the timestamp rules; no prompt
     * carries from one piece to the next. 0: off. */
    int vad_batched;
    /* word timestamps (openai-whisper's word_timestamps=True): every
     * segment gets words (tolk_segment_word) from the cross-attention of
     * the model's alignment heads (a model without them fails with
     * TOLK_ERR_UNSUPPORTED), and segment times are refined from them */
    int word_timestamps;                   /* 0 */
    const char *prepend_punctuations;      /* merged with the next word; NULL:
                                              the reference's "\"'“¿([{-" */
    const char *append_punctuations;       /* merged with the previous word; NULL:
                                              "\"'.。,，!！?？:：”)]}、" */
    float hallucination_silence_threshold; /* seconds; < 0 (default -1):
                                              off. With word timestamps,
                                              skip silences longer than
                                              this around suspected
                                              hallucinations */
} tolk_transcribe_params;

/* ---- Results ------------------------------------------------------------
 * A tolk_result is opaque and read through accessors, so that fields can be
 * added without breaking callers built against an older tolk.h:
 *  - tolk_result_text / _language / _language_prob / _duration /
 *    _n_segments: the transcript as a whole;
 *  - tolk_result_segment(res, i) -> const tolk_segment *, and
 *    tolk_segment_word(seg, j) -> const tolk_word *: structs the library
 *    owns (valid until tolk_result_free), read in place, never copied by
 *    value nor indexed with pointer arithmetic (their size grows);
 *  - each of those structs begins with struct_size, the size the running
 *    library gave it. New fields are only ever appended, so an older caller
 *    reads the prefix it knows; a newer caller checks a field with
 *    TOLK_HAS_FIELD(ptr, type, field) before reading it from an older
 *    library.
 * Only pointers the library handed out may be passed to the accessors. */

/* Whether the struct at ptr (of public type `type`) carries `field`. */
#define TOLK_HAS_FIELD(ptr, type, field)                                                           \
    ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* One word of a segment (word timestamps; openai-whisper's "words" items). */
typedef struct tolk_word {
    size_t struct_size; /* sizeof(tolk_word) of the running library */
    const char *word;   /* UTF-8, with its leading space and merged
                           punctuation, as the reference (" Hello,") */
    double start, end;  /* seconds, rounded to 0.01 s as the reference */
    double probability; /* mean probability of the word's tokens */
} tolk_word;

typedef struct tolk_segment {
    size_t struct_size; /* sizeof(tolk_segment) of the running library */
    int id;
    int seek;          /* window start, in mel frames (10 ms) */
    double start, end; /* seconds */
    const char *text;  /* UTF-8, as the reference (leading space kept) */
    const int *tokens; /* text and timestamp tokens of the segment */
    int n_tokens;
    float temperature;
    float avg_logprob;
    float compression_ratio;
    float no_speech_prob;
    int n_words; /* words (tolk_segment_word); 0 without word timestamps */
} tolk_segment;

typedef struct tolk_result tolk_result;

/* All segments' text concatenated (UTF-8, never NULL for a valid result). */
TOLK_API const char *tolk_result_text(const tolk_result *res);
/* The detected or given language code ("en"); "" for NULL. */
TOLK_API const char *tolk_result_language(const tolk_result *res);
/* Probability of the detected language (1 when it was given). */
TOLK_API float tolk_result_language_prob(const tolk_result *res);
/* Seconds of audio. */
TOLK_API double tolk_result_duration(const tolk_result *res);
/* Number of segments (0 for NULL). */
TOLK_API int tolk_result_n_segments(const tolk_result *res);
/* 1 when the result carries word timestamps (every segment has a word
 * list, possibly empty: json writes "words", srt / vtt cue by words). */
TOLK_API int tolk_result_has_words(const tolk_result *res);
/* Segment i in [0, n_segments), NULL outside; owned by res. */
TOLK_API const tolk_segment *tolk_result_segment(const tolk_result *res, int i);
/* Word i in [0, seg->n_words) of a segment the library handed out, NULL
 * outside; owned by the result (or, in tolk_segment_fn, by the call). */
TOLK_API const tolk_word *tolk_segment_word(const tolk_segment *seg, int i);

TOLK_API tolk_transcribe_params tolk_transcribe_default_params(void);

/* Per-stream state for model (shared, immutable). *out: tolk_state_free.
 * A state is a one-request engine driven on the calling thread (below). */
TOLK_API tolk_status tolk_state_new(tolk_ctx *ctx, const tolk_model *model, tolk_state **out);
TOLK_API void tolk_state_free(tolk_state *state);
/* The last error on this state ("" when none). */
TOLK_API const char *tolk_state_last_error(const tolk_state *state);

/* Transcribe 16 kHz mono samples of any length. *out: tolk_result_free. */
TOLK_API tolk_status tolk_transcribe(tolk_state *state, const float *samples, size_t n_samples,
                                     const tolk_transcribe_params *params, tolk_result **out);
/* The same for a file (decoded and streamed through the mel in windows). */
TOLK_API tolk_status tolk_transcribe_file(tolk_state *state, const char *path,
                                          const tolk_transcribe_params *params, tolk_result **out);
TOLK_API void tolk_result_free(tolk_result *result);

/* Whether the input of a transcription was cut short (tolk_audio_truncated
 * of the file it read): 1 with *expected_s (seconds the header promised,
 * -1 when it states no length) and *decoded_s (seconds decoded); 0 for a
 * complete input and for tolk_transcribe on samples. Either pointer may be
 * NULL. */
TOLK_API int tolk_result_input_truncated(const tolk_result *result, double *expected_s,
                                         double *decoded_s);

/* Language identification on the first 30 s: probabilities over the
 * model's languages. codes/probs: caller arrays of at least 100 entries,
 * sorted by probability, descending; *n set. */
TOLK_API tolk_status tolk_detect_language(tolk_state *state, const float *samples, size_t n_samples,
                                          const char **codes, float *probs, int *n);

/* ------------------------------------------------------------------------ */
/* Text translation: Bergamot / Firefox Marian models (src/mt*.c)           */
/* ------------------------------------------------------------------------ */

/* A translation model: one language pair, a folder as Firefox ships them
 * (model.XXYY.intgemm.alphas.bin or another Marian binary model,
 * vocab.XXYY.spm or srcvocab / trgvocab, optional lex.*.s2t.bin shortlist,
 * optional config*.yml). Immutable after load; shared by threads. */
typedef struct tolk_mt_model tolk_mt_model;

typedef struct tolk_mt_model_params {
    tolk_device device; /* where the network runs; AUTO = CUDA when present [CPU] */
    int use_shortlist;  /* 1: load the lexical shortlist when present [1] */
    int int8;           /* 1: int8 products as Bergamot computes them (int8shiftAlphaAll,
                           AVX-512 VNNI; CPU only, else ignored); 0: the int8 weights
                           dequantised to float32, float32 products [0] */
} tolk_mt_model_params;

/* Sentence splitting of a text before translation (tolk_mt_params.split). */
typedef enum tolk_mt_split {
    TOLK_MT_SPLIT_LONG = 0,     /* only texts longer than max_tokens (default) */
    TOLK_MT_SPLIT_NEVER = 1,    /* one sequence (cut at max_tokens only past 1024) */
    TOLK_MT_SPLIT_SENTENCES = 2 /* always into sentences (Bergamot's behaviour) */
} tolk_mt_split;

typedef struct tolk_mt_params {
    int beam_size;           /* 0: the model's config (beam-size, 1 for Firefox's); 1 greedy */
    float normalize;         /* < 0: the config's (1.0): score / length^normalize */
    float max_length_factor; /* <= 0: the config's (2.5): output tokens <= factor x input */
    int use_shortlist;       /* 1: score the shortlist when the model has one [1] */
    int split;               /* tolk_mt_split [TOLK_MT_SPLIT_LONG] */
    int max_tokens;          /* longer sentences (source pieces) are cut [128] */
    int batch_size;          /* sentences decoded together [32] */
} tolk_mt_params;

TOLK_API tolk_mt_model_params tolk_mt_model_default_params(void);
TOLK_API tolk_mt_params tolk_mt_default_params(void);

/* Load the model folder dir; errors name the file and the problem
 * (missing, truncated or hostile files: TOLK_ERR_IO / FORMAT /
 * UNSUPPORTED). *out: tolk_mt_model_free. */
TOLK_API tolk_status tolk_mt_model_load(tolk_ctx *ctx, const char *dir,
                                        const tolk_mt_model_params *params, tolk_mt_model **out);
TOLK_API void tolk_mt_model_free(tolk_mt_model *model);

/* The model's language pair ("en", "pt"; "" when the folder does not say)
 * and folder; owned by the model. */
TOLK_API const char *tolk_mt_model_source(const tolk_mt_model *model);
TOLK_API const char *tolk_mt_model_target(const tolk_mt_model *model);
TOLK_API const char *tolk_mt_model_dir(const tolk_mt_model *model);

/* The model folder for the pair from -> to under root (its subfolders,
 * whose files or names say their pair: model.XXYY.*.bin, XXYY[-*],
 * mt-XX-YY). *dir: malloc'd (tolk_free); TOLK_ERR_IO when there is none. */
TOLK_API tolk_status tolk_mt_find(tolk_ctx *ctx, const char *root, const char *from, const char *to,
                                  char **dir);

/* The pairs found under root as "en-pt,pt-en" (sorted; "" when none);
 * *pairs: malloc'd (tolk_free). */
TOLK_API tolk_status tolk_mt_list(tolk_ctx *ctx, const char *root, char **pairs);

/* Translate UTF-8 text; *out (tolk_free) is the translation. Blank text
 * gives "". params NULL: defaults. */
TOLK_API tolk_status tolk_mt_translate(tolk_ctx *ctx, const tolk_mt_model *model, const char *text,
                                       const tolk_mt_params *params, char **out);

/* Translate n texts at once (batched across texts); out[i] (each
 * tolk_free) for texts[i]. On failure every out[i] is NULL. */
TOLK_API tolk_status tolk_mt_translate_batch(tolk_ctx *ctx, const tolk_mt_model *model,
                                             const char *const *texts, int n,
                                             const tolk_mt_params *params, char **out);

/* Translate the segments of a transcription in place: each segment's text
 * (a leading space kept), the whole text, and the language code (set to
 * the target). Times, ids and scores are unchanged, so the writers produce
 * subtitles in the target language; the segments' token ids remain the
 * recognised ones. On failure result is unchanged. */
TOLK_API tolk_status tolk_mt_translate_result(tolk_ctx *ctx, const tolk_mt_model *model,
                                              tolk_result *result, const tolk_mt_params *params);

/* Device memory the model's network holds, bytes. */
TOLK_API uint64_t tolk_mt_model_mem_bytes(const tolk_mt_model *model);

/* ------------------------------------------------------------------------ */
/* Per-stage timings of a state (read by `tolk bench`)                      */
/* ------------------------------------------------------------------------ */

/* Wall-clock seconds spent per stage and work counts, accumulated by every
 * transcription / language identification on a state since it was created
 * or last reset. Stages do not overlap; their sum is at most the wall time
 * of the calls (the rest: segment bookkeeping, callbacks). */
typedef struct tolk_timings {
    double audio_s;             /* decoding the input and resampling to 16 kHz */
    double mel_s;               /* log-mel spectrogram */
    double encoder_s;           /* encoder + cross-attention K/V, per window */
    double decoder_s;           /* decoder forward steps */
    double search_s;            /* logit filters, greedy/beam/sampling, fallback */
    int64_t windows;            /* 30 s windows decoded (fallback retries not counted) */
    int64_t tokens;             /* tokens emitted in accepted results */
    int64_t decoder_steps;      /* decoder forward calls (all sequences of a step count once) */
    uint64_t device_peak_bytes; /* device memory high-water mark (0 on the CPU) */
    uint64_t gemm_fallbacks;    /* matrix products that ran a slow fallback kernel because
                                   the GPU library (cuBLASLt) had no algorithm for their shape
                                   (0 on the CPU); counted over the state's encoder and
                                   decoder calls — products of other states sharing the model
                                   at the same moment may be included. Non-zero means the GPU
                                   run is far slower than it should be. */
} tolk_timings;

/* Copy the state's timings into *out (zeros when s is NULL or keeps none). */
TOLK_API void tolk_state_timings(const tolk_state *s, tolk_timings *out);
/* Zero the state's timings. */
TOLK_API void tolk_state_reset_timings(tolk_state *s);

/* ------------------------------------------------------------------------ */
/* Engine: many requests at once, sharing encoder batches and decoder steps */
/* ------------------------------------------------------------------------ */
/*
 * An engine owns a scheduler over one loaded model (its device) and a pool
 * of decoder KV caches. Requests — a file, samples in memory, or a live
 * input pushed in pieces — can be submitted at any time from any thread,
 * each with its own tolk_transcribe_params. Every tick the engine admits
 * waiting requests while the pool has room (first come, first served),
 * encodes the windows that are ready as one batch, and runs ONE decoder
 * step over every active sequence of every request (greedy sequences, beam
 * hypotheses, best-of samples, language identification): continuous
 * batching, sequences join and leave between steps. Each request keeps
 * openai-whisper's long-form semantics (seek, temperature fallback of the
 * failed window only, no-speech skip, prompt conditioning, timestamp
 * rules); in float32 on the CPU its transcript is bit-identical to
 * decoding it alone, because every product of a decoder step keeps each
 * row's arithmetic independent of the other rows.
 *
 * Callbacks of a request's params (on_segment, progress) run on the
 * engine's thread. The engine's own thread (params.background = 1) ticks
 * while there is work; without it, tolk_engine_run / tolk_request_wait
 * drive the engine on the calling thread.
 */

typedef struct tolk_engine tolk_engine;
typedef struct tolk_request tolk_request;

typedef struct tolk_engine_params {
    int max_batch;          /* most sequences in one decoder step; 0: 256 */
    int max_requests;       /* most requests decoding at once (encoded window
                               slots); 0: 16 */
    int max_seqs;           /* decoder KV caches in the pool; 0: as the admitted
                               requests need (the pool grows while idle) */
    uint64_t memory_budget; /* bytes the KV pool may use (0: no limit); the
                               pool's sequences and windows are cut to fit */
    int encoder_batch;      /* most windows in one encoder pass; 0: 1 on the
                               CPU (no gain there), 8 on CUDA */
    int background;         /* 1: the engine ticks on its own thread (default) */
    int cuda_graphs;        /* 1: single-token steps replayed as CUDA graphs */
    int device_select;      /* -1: token selection where the logits are (on a
                               GPU), host filtering on the CPU; 0 / 1 force */
} tolk_engine_params;

TOLK_API tolk_engine_params tolk_engine_default_params(void);

/* An engine over model (which must outlive it), on the model's device.
 * ctx gives the CPU threads. *out: tolk_engine_free. */
TOLK_API tolk_status tolk_engine_new(tolk_ctx *ctx, const tolk_model *model,
                                     const tolk_engine_params *params, tolk_engine **out);
/* Cancel every request still running, stop the thread, free the engine.
 * Requests not yet freed stay valid handles (done, TOLK_ERR_CANCELLED). */
TOLK_API void tolk_engine_free(tolk_engine *engine);
/* The message of the last failed call made on the engine by the CALLING
 * thread (submit, run, step, stream open; like errno, so threads submitting
 * at once each read their own); valid until that thread's next call. */
TOLK_API const char *tolk_engine_last_error(const tolk_engine *engine);

/* Submit a file (decoded and streamed; "-" reads standard input whole),
 * samples (16 kHz mono float32, copied), or a live input (then
 * tolk_request_push / tolk_request_close). params (NULL: defaults) is
 * copied with its strings. A request that cannot start (missing file, bad
 * option) fails here with the message on the engine; a bad input found
 * later fails its own request only. *out: tolk_request_free. */
TOLK_API tolk_status tolk_engine_submit_file(tolk_engine *engine, const char *path,
                                             const tolk_transcribe_params *params,
                                             tolk_request **out);
TOLK_API tolk_status tolk_engine_submit_samples(tolk_engine *engine, const float *samples,
                                                size_t n_samples,
                                                const tolk_transcribe_params *params,
                                                tolk_request **out);
TOLK_API tolk_status tolk_engine_submit_live(tolk_engine *engine,
                                             const tolk_transcribe_params *params,
                                             tolk_request **out);
/* Live input: append samples (16 kHz mono float32, copied); end it. */
TOLK_API tolk_status tolk_request_push(tolk_request *request, const float *samples, size_t n);
TOLK_API tolk_status tolk_request_close(tolk_request *request);

/* Ask the request to stop; it ends with TOLK_ERR_CANCELLED at the next
 * tick (the segments made final so far stay readable). */
TOLK_API void tolk_request_cancel(tolk_request *request);
/* Whether the request has ended (result, failure or cancellation). */
TOLK_API int tolk_request_done(const tolk_request *request);
/* Wait until the request ends (driving the engine when it has no thread
 * of its own) and return its status. */
TOLK_API tolk_status tolk_request_wait(tolk_request *request);
/* TOLK_OK while running or after success; the failure otherwise. */
TOLK_API tolk_status tolk_request_status(const tolk_request *request);
/* The request's failure message ("" when none); valid until freed. */
TOLK_API const char *tolk_request_last_error(const tolk_request *request);
/* Poll: segments made final so far (they are never taken back). A result
 * holding segments [from, n) of the request (its text empty, language as
 * known so far); *out: tolk_result_free. */
TOLK_API int tolk_request_n_segments(const tolk_request *request);
TOLK_API tolk_status tolk_request_segments(tolk_request *request, int from, tolk_result **out);
/* After a successful end: the whole result, handed over once (later calls
 * fail). *out: tolk_result_free. */
TOLK_API tolk_status tolk_request_result(tolk_request *request, tolk_result **out);
/* Free the handle; a running request is cancelled first. */
TOLK_API void tolk_request_free(tolk_request *request);

/* A state (tolk_state_new) whose one-request engine takes params
 * (max_requests and background are ignored): cuda_graphs, device_select,
 * encoder_batch, max_seqs, memory_budget. */
TOLK_API tolk_status tolk_state_new_ex(tolk_ctx *ctx, const tolk_model *model,
                                       const tolk_engine_params *params, tolk_state **out);

/* Without a thread of its own: one tick (*n_active: requests admitted or
 * waiting afterwards; may be NULL), or ticks until every submitted request
 * has ended. With a thread these return TOLK_ERR_INVALID_ARG. */
TOLK_API tolk_status tolk_engine_step(tolk_engine *engine, int *n_active);
TOLK_API tolk_status tolk_engine_run(tolk_engine *engine);

#define TOLK_ENGINE_BUCKETS 10 /* decoder batch sizes 1, 2, 3-4, ..., 129-256, > 256 */

/* What an engine did since it was created (a consistent snapshot). */
typedef struct tolk_engine_stats {
    int64_t submitted, completed, failed, cancelled;
    int queued; /* waiting for admission now */
    int active; /* admitted now */
    int64_t encoder_passes, windows_encoded;
    int64_t steps, rows;                         /* decoder steps, sequences stepped in them */
    int64_t steps_by_batch[TOLK_ENGINE_BUCKETS]; /* steps by their sequences */
    double step_s_by_batch[TOLK_ENGINE_BUCKETS]; /* their decoder seconds */
    int64_t rows_by_batch[TOLK_ENGINE_BUCKETS];  /* their sequences (tokens) */
    int pool_seqs, pool_windows;                 /* the KV pool's size */
    uint64_t pool_bytes;
    double audio_s_done; /* seconds of audio of the requests completed */
} tolk_engine_stats;

/* Smallest batch size of bucket b (1, 2, 3, 5, 9, ...). */
TOLK_API int tolk_engine_bucket_min(int b);
TOLK_API void tolk_engine_get_stats(const tolk_engine *engine, tolk_engine_stats *out);
/* Per-stage times summed over everything the engine ran (tolk_timings). */
TOLK_API void tolk_engine_timings(const tolk_engine *engine, tolk_timings *out);

/* ------------------------------------------------------------------------ */
/* Live streams: audio in as it is spoken, stable partial and final text    */
/* ------------------------------------------------------------------------ */
/*
 * A stream turns audio pushed in pieces (a microphone, a call) into text
 * with a bounded delay. Many streams share one engine (which must run its
 * own thread, tolk_engine_params.background = 1): each update of a stream
 * is a short request over the stream's uncommitted audio (at most 30 s),
 * so the updates of all streams are batched by the engine.
 *
 * Each update decodes the uncommitted audio again with the committed text
 * forced as its beginning (the text before the audio goes in the prompt),
 * and a commit policy decides which further words are now stable:
 *  - TOLK_STREAM_LOCAL_AGREEMENT: LocalAgreement-n (Machacek et al. 2023,
 *    whisper_streaming): the words on which the last n hypotheses agree,
 *    each heard agreement_gap_s of audio after the other (and every
 *    hypothesis between them);
 *  - TOLK_STREAM_FAST (default): a word is committed from one hypothesis
 *    once more words follow it, every token of it is confident, it ends
 *    at least margin_s before the end of the audio heard so far and no
 *    remembered hypothesis said another word there; other words wait for
 *    LocalAgreement-2.
 * Under either policy an agreed word that is the hypothesis's last waits
 * when it ends within margin_s of the audio's end or ends a sentence (or
 * is cut): the audio may still be cutting it. A pause (the speech gate)
 * ends an utterance — its whole hypothesis is committed and the silence is
 * skipped — unless its text so far ends inside a sentence: then the
 * utterance goes on until the text ends a sentence or the silence lasts
 * three times pause_s. The first update of an utterance runs 0.15 s
 * after speech starts. The encoder runs over the audio present (plus
 * encoder_pad_s), not a padded 30 s window.
 *
 * Events (on_event, called on the engine's thread or, after
 * tolk_stream_close, on the closing thread; never two at once for one
 * stream, always in order): PARTIAL is the current hypothesis of the
 * uncommitted audio (it may change or vanish); FINAL is newly committed
 * text, never taken back; END comes once, after tolk_stream_close flushed
 * everything, or when the stream failed (its status). Times are seconds of
 * input audio; FINAL times never go back.
 */

typedef struct tolk_stream tolk_stream;

typedef enum tolk_stream_policy {
    TOLK_STREAM_FAST = 0,           /* confidence and time margin, else LocalAgreement-2 */
    TOLK_STREAM_LOCAL_AGREEMENT = 1 /* LocalAgreement-n */
} tolk_stream_policy;

typedef enum tolk_stream_gate {
    TOLK_STREAM_GATE_ENERGY = 0, /* an adaptive energy gate */
    TOLK_STREAM_GATE_NONE = 1,   /* every sample is speech; only the end of input or
                                    a full buffer ends an utterance */
    TOLK_STREAM_GATE_SILERO = 2, /* the Silero VAD model params.vad (needs it) */
    TOLK_STREAM_GATE_AUTO = 3    /* default: Silero when params.vad is set, else energy */
} tolk_stream_gate;

typedef enum tolk_stream_event_type {
    TOLK_STREAM_PARTIAL = 0,
    TOLK_STREAM_FINAL = 1,
    TOLK_STREAM_END = 2
} tolk_stream_event_type;

typedef struct tolk_stream_event {
    tolk_stream_event_type type;
    const char *text;   /* UTF-8 (valid during the callback): PARTIAL the whole uncommitted
                           hypothesis ("" when none), FINAL the new words (a leading space
                           between words, as Whisper writes them), END "" */
    double start, end;  /* seconds of input audio the text covers (END: the input's length) */
    tolk_status status; /* END: TOLK_OK, or why the stream failed */
} tolk_stream_event;

typedef void (*tolk_stream_event_fn)(void *user, const tolk_stream_event *event);

typedef struct tolk_stream_params {
    tolk_transcribe_params transcribe; /* task, language (NULL: detected on the first
                                          speech, then kept), initial_prompt, suppression;
                                          the default's temperatures are {0} (no fallback) */
    tolk_stream_policy policy;
    int agreement;       /* LocalAgreement-n's n (2; 2..8) */
    float min_update_s;  /* new audio before the next update (0.25 s); updates never
                            overlap, so under load they come as fast as they finish */
    float margin_s;      /* a word must end this long before the audio's end (0.5 s):
                            every word committed by TOLK_STREAM_FAST's confidence
                            rule, and an agreed last word under either policy */
    float min_prob;      /* TOLK_STREAM_FAST: least probability of its tokens (0.5) */
    float trim_s;        /* once the buffer is longer than this (8 s), its committed
                            audio is dropped at the end of a committed segment (the
                            model is asked where the committed text ends when no
                            segment has ended) */
    float max_buffer_s;  /* a buffer this long is committed whole (25 s; <= 30) */
    float encoder_pad_s; /* encoder positions past the audio (1.0 s); < 0: the full 30 s
                            window (openai-whisper's zero padding) */
    float encoder_min_s; /* but never fewer than this (10 s): on a much shorter encoder
                            Whisper loops on short audio */
    int prompt_tokens;   /* committed tokens kept as the prompt (48; 0..223) */
    tolk_stream_gate gate;
    float pause_s;   /* silence that ends an utterance (0.5 s) */
    int sample_rate; /* rate of the pushed samples (16000; 1000..384000) */
    int channels;    /* interleaved channels of the pushed samples (1; 1..64) */
    int synchronous; /* 1: a push (and close) returns only once the updates it started
                        have ended, so the text does not depend on the machine's speed
                        (tests, simulations: whisper_streaming's "computationally
                        unaware" mode); 0 (live input): pushes never wait */
    tolk_stream_event_fn on_event;
    void *user;
    /* The Silero VAD model of TOLK_STREAM_GATE_SILERO / _AUTO (tolk_vad_load; NULL:
       none). Read only: one model serves any number of streams, and must outlive them. */
    const tolk_vad *vad;
    /* LocalAgreement (either policy) compares hypotheses heard at least this much audio
       apart (0.5 s; 0..10; 0: consecutive ones): updates a quarter second apart share
       their errors, so their agreement proves little; partials still come every update */
    float agreement_gap_s;
} tolk_stream_params;

TOLK_API tolk_stream_params tolk_stream_default_params(void);

/* Open a stream on engine (which must outlive it and run its own thread).
 * Bad parameters fail here with a message on the engine
 * (tolk_engine_last_error). params is copied with its strings. *out:
 * tolk_stream_free. */
TOLK_API tolk_status tolk_stream_open(tolk_engine *engine, const tolk_stream_params *params,
                                      tolk_stream **out);
/* Push n_frames frames of float32 in [-1, 1] (channels interleaved, at
 * params.sample_rate), copied. Any piece size; non-finite samples fail
 * (TOLK_ERR_INVALID_ARG) and change nothing. */
TOLK_API tolk_status tolk_stream_push(tolk_stream *s, const float *samples, size_t n_frames);
/* The same for signed 16-bit samples. */
TOLK_API tolk_status tolk_stream_push_s16(tolk_stream *s, const int16_t *samples, size_t n_frames);
/* End of input: everything left is decoded and committed, then END. */
TOLK_API tolk_status tolk_stream_close(tolk_stream *s);
/* Wait until END was delivered; returns its status. */
TOLK_API tolk_status tolk_stream_wait(tolk_stream *s);
/* The stream's failure message ("" when none). */
TOLK_API const char *tolk_stream_last_error(const tolk_stream *s);

typedef struct tolk_stream_stats {
    int64_t updates;     /* update requests that ended */
    double update_s;     /* their summed wall time, submission to end */
    double update_s_max; /* the longest */
    double buffer_s;     /* summed seconds of audio they decoded */
    int64_t words;       /* words committed */
    int64_t utterances;  /* utterances ended (by a pause, a full buffer, the end) */
    double input_s;      /* seconds of input pushed */
} tolk_stream_stats;
TOLK_API void tolk_stream_get_stats(const tolk_stream *s, tolk_stream_stats *out);

/* Cancel what runs and free the stream (no more events). */
TOLK_API void tolk_stream_free(tolk_stream *s);

/* ------------------------------------------------------------------------ */
/* Output writers (formats of openai-whisper's writers)                     */
/* ------------------------------------------------------------------------ */

typedef enum tolk_output_format {
    TOLK_OUTPUT_TXT = 0,
    TOLK_OUTPUT_VTT = 1,
    TOLK_OUTPUT_SRT = 2,
    TOLK_OUTPUT_TSV = 3,
    TOLK_OUTPUT_JSON = 4
} tolk_output_format;

/* "txt" ... "json" -> format; returns -1 for an unknown name. */
TOLK_API int tolk_output_format_from_name(const char *name);
TOLK_API const char *tolk_output_format_ext(tolk_output_format format);

/* Options of the subtitle writers for results with word timestamps
 * (openai-whisper's --highlight_words, --max_line_width,
 * --max_line_count, --max_words_per_line; SubtitlesWriter.iterate_result).
 * Start from tolk_writer_default_options(): struct_size lets later
 * versions append fields without breaking callers. Ignored by txt, tsv
 * and json, and for results without words. */
typedef struct tolk_writer_options {
    size_t struct_size;     /* sizeof(tolk_writer_options) of the caller */
    int highlight_words;    /* underline each word as it is spoken (<u>) */
    int max_line_width;     /* characters per line before a break; <= 0: none */
    int max_line_count;     /* lines per cue (needs max_line_width); <= 0: none */
    int max_words_per_line; /* words per cue line; <= 0: none */
} tolk_writer_options;

TOLK_API tolk_writer_options tolk_writer_default_options(void);

/* tolk_render / tolk_write_file with writer options (NULL: defaults). */
TOLK_API tolk_status tolk_render_ex(tolk_ctx *ctx, const tolk_result *result,
                                    tolk_output_format format, const tolk_writer_options *opts,
                                    char **out, size_t *len);
TOLK_API tolk_status tolk_write_file_ex(tolk_ctx *ctx, const tolk_result *result,
                                        tolk_output_format format, const tolk_writer_options *opts,
                                        const char *path);

/* Render result in format into a new NUL-terminated buffer (*out, caller
 * frees with tolk_free). */
TOLK_API tolk_status tolk_render(tolk_ctx *ctx, const tolk_result *result,
                                 tolk_output_format format, char **out, size_t *len);

/* Write result to path atomically (a temporary name, then rename): a
 * failure leaves no partial file. */
TOLK_API tolk_status tolk_write_file(tolk_ctx *ctx, const tolk_result *result,
                                     tolk_output_format format, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* TOLK_H */

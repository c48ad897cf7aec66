/*
 * vad_internal.h — the Silero VAD v6 16 kHz model shared by vad_model.c
 * (loading), vad.c (the network and streams), vad_segments.c (speech
 * timestamps) and vad_filter.c (transcription of speech only). Private.
 *
 * The network (silero-vad's tinygrad_model.py describes the same forward
 * pass): a 576-sample frame (64 samples of context + a 512-sample chunk)
 * reflect-padded by 64 on the right; an STFT as a convolution (258 filters
 * of 256 taps, stride 128: 4 frames, magnitude of 129 bins); four
 * convolutions with ReLU (129->128 k3 s1, 128->64 k3 s2, 64->64 k3 s2,
 * 64->128 k3 s1, padding 1: 4 -> 4 -> 2 -> 1 -> 1 steps); an LSTM cell of
 * 128 (PyTorch gate order i, f, g, o); ReLU, a 1x1 convolution to one
 * value and a sigmoid.
 */
#ifndef TOLK_VAD_INTERNAL_H
#define TOLK_VAD_INTERNAL_H

#include "internal.h"

#define VAD_FRAME (TOLK_VAD_CONTEXT + TOLK_VAD_CHUNK) /* 576 samples in */
#define VAD_PADDED (VAD_FRAME + 64)                   /* 640 after the reflect pad */
#define VAD_NFFT 256
#define VAD_HOP 128
#define VAD_STEPS 4 /* STFT frames per chunk */
#define VAD_BINS 129
#define VAD_HIDDEN 128
#define VAD_GATES (4 * VAD_HIDDEN)

/* Layer widths of the encoder: in, out, stride (kernel 3, padding 1). */
#define VAD_N_CONV 4
extern const int tolk_vad_conv_in[VAD_N_CONV], tolk_vad_conv_out[VAD_N_CONV],
    tolk_vad_conv_stride[VAD_N_CONV];

/* Every weight as float32 in one owned buffer, PyTorch layouts. */
struct tolk_vad {
    char *path;                      /* what was loaded (owned) */
    const char *format;              /* "safetensors" or "ggml" (static) */
    int version[3];                  /* ggml files: the silero-vad version; else zeros */
    float *buf;                      /* owns everything below */
    const float *stft;               /* [258, 256]: 129 real rows, then 129 imaginary */
    const float *conv_w[VAD_N_CONV]; /* [out, in * 3] */
    const float *conv_b[VAD_N_CONV]; /* [out] */
    const float *w_ih, *w_hh;        /* [512, 128] */
    const float *b_ih, *b_hh;        /* [512] */
    const float *b_gates;            /* b_ih + b_hh [512] */
    const float *w_out;              /* [128] */
    float b_out;
};

/* A new model from a file's bytes in memory (the file loader and the fuzz
 * target); name is used in messages only; the bytes may be released after
 * the call. *out: tolk_vad_free. */
tolk_status tolk_vad_load_memory(tolk_ctx *ctx, const char *name, const void *data, size_t size,
                                 tolk_vad **out);

/* The plain reference of one step (double sums, direct loops): frame =
 * 576 samples (context then chunk); h, c [128] updated in place. Returns
 * the speech probability. The fast path (vad.c) is tested against it. */
float tolk_vad_ref_step(const struct tolk_vad *v, const float *frame, float *h, float *c);

/* The batched long-form mode (vad_filter.c, tolk_transcribe_params.
 * vad_batched): faster-whisper's BatchedInferencePipeline
 * finds speech with tolk_vad_batched_params() (VadOptions with
 * max_speech_duration_s = 30, min_silence_duration_ms = 160), then packs
 * consecutive speech segments into groups of at most max_samples joined
 * samples (collect_chunks(max_duration=30)), each group decoded as one
 * window. A group: speech segments [first, first + count), their joined
 * length, and where the group starts on the fully joined timeline. */
typedef struct tolk_vad_group {
    size_t first, count;
    int64_t samples;       /* joined samples of the group */
    int64_t joined_offset; /* samples of the groups before it */
} tolk_vad_group;

tolk_vad_params tolk_vad_batched_params(void);

/* Pack sp[n] into groups (collect_chunks): a segment that would push the
 * current group past max_samples starts a new one; a segment longer than
 * max_samples is a group of its own (faster-whisper also emits an empty
 * group before a first segment that long, and leaves the segment that
 * starts a group out of that group's metadata; tolk does neither).
 * *out: caller frees with free; *n_out groups (0 when n == 0). */
tolk_status tolk_vad_pack_groups(tolk_ctx *ctx, const tolk_speech_segment *sp, size_t n,
                                 int64_t max_samples, tolk_vad_group **out, size_t *n_out);

#endif /* TOLK_VAD_INTERNAL_H */

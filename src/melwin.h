/*
 * melwin.h — the 30 s mel windows a long-form transcription feeds the
 * encoder, computed in pieces from a sample source so the whole mel is
 * never held (melwin.c). Reproduces openai-whisper transcribe()'s front
 * end: the log-mel of the whole input padded with 30 s of zeros, clamped at
 * its global max - 8, (x + 4) / 4; a window is the frames [seek, seek +
 * size) zero-padded to 3000.
 *
 * Sources: samples in memory, a file read twice through a sliding buffer
 * (pass 1: length and global maximum; pass 2: the windows), or a live
 * input pushed in pieces (tolk_live). A live input cannot know its global
 * maximum before it ends, so its clamp uses the running maximum of every
 * window computed so far: the same numbers as a file whenever no later
 * part of the input is louder than what came before (the clamp only
 * touches values 8 (log10 units) below the loudest frame, i.e. silence).
 */
#ifndef TOLK_MELWIN_H
#define TOLK_MELWIN_H

#include "internal.h"
#include "timings.h"

#include <pthread.h>

#define TOLK_FRAMES_PER_SECOND 100

/* Samples [a, b) of the input, zeros past its end; calls come with a
 * non-decreasing a. *real: how many of them were input samples. */
typedef struct tolk_sample_src {
    void *user;
    tolk_status (*fetch)(void *user, tolk_ctx *ctx, size_t a, size_t b, float *dst, size_t *real);
} tolk_sample_src;

/* Samples in memory (borrowed). */
typedef struct tolk_mem_src {
    const float *x;
    size_t n;
} tolk_mem_src;
tolk_sample_src tolk_mem_src_make(tolk_mem_src *m);

/* A file read through tolk_audio_read into a sliding buffer. */
typedef struct tolk_file_src {
    tolk_audio_reader *rd;
    char *path; /* owned copy */
    float *buf;
    size_t cap;
    size_t base; /* input index of buf[0] */
    size_t len;  /* samples held */
    int eof;
} tolk_file_src;
/* Open path for reading (buffers included); tolk_file_src_close frees. */
tolk_status tolk_file_src_open(tolk_ctx *ctx, const char *path, tolk_file_src *f);
/* Start again from the first sample (pass 2). */
tolk_status tolk_file_src_rewind(tolk_ctx *ctx, tolk_file_src *f);
void tolk_file_src_close(tolk_file_src *f);
tolk_sample_src tolk_file_src_make(tolk_file_src *f);

/* A live input: pieces pushed by any thread, read by the transcription.
 * Thread-safe (its own mutex). Samples before `base` that every future
 * window start is past are dropped, so memory stays bounded. */
typedef struct tolk_live {
    pthread_mutex_t mu;
    float *buf;
    size_t cap;
    size_t base;   /* input index of buf[0] */
    size_t len;    /* samples held */
    int closed;    /* no more samples will come */
    size_t total;  /* samples pushed so far */
} tolk_live;
tolk_status tolk_live_init(tolk_live *l);
void tolk_live_destroy(tolk_live *l);
/* Append n samples (copied). Fails after close or past 2^40 samples. */
tolk_status tolk_live_push(tolk_live *l, tolk_ctx *ctx, const float *x, size_t n);
void tolk_live_close(tolk_live *l);
/* Samples pushed so far and whether the input is closed, read together. */
void tolk_live_state(tolk_live *l, size_t *total, int *closed);
/* Drop the samples before index a (never read again). */
void tolk_live_drop(tolk_live *l, size_t a);
tolk_sample_src tolk_live_src_make(tolk_live *l);

/* The mel front end of one request. */
typedef struct tolk_melpipe {
    tolk_timings *timings; /* may be NULL */
    tolk_ctx *ctx;
    const tolk_mel *mel;
    int n_mels;
    float *window; /* [n_mels, 3000] destination of tolk_melpipe_window (borrowed) */
    tolk_sample_src src;
    float *samples; /* piece buffer */
    float *raw;     /* [n_mels, lead + frames + 2] */
    size_t n;       /* input samples (once known) */
    size_t content_frames;
    float gmax;     /* global max of the raw log-mel of the padded input */
    int running_max; /* live: gmax is raised by every window */
} tolk_melpipe;

/* Set up mp over src (n input samples; 0 when unknown until pass 1) with
 * its piece buffers; windows go to window [n_mels, 3000]. Returns TOLK_OK
 * or TOLK_ERR_NOMEM; tolk_melpipe_close frees either way. */
tolk_status tolk_melpipe_open(tolk_melpipe *mp, tolk_ctx *ctx, tolk_timings *timings,
                              const tolk_mel *mel, float *window, tolk_sample_src src, size_t n);
void tolk_melpipe_close(tolk_melpipe *mp);
/* Pass 1: the input length (when unknown) and the global maximum; sets
 * mp->n, mp->content_frames, mp->gmax. */
tolk_status tolk_melpipe_pass1(tolk_melpipe *mp, int length_known);
/* Live inputs: no pass 1; the running maximum starts at the padding's
 * -10 and content_frames is set when the input ends. */
void tolk_melpipe_live(tolk_melpipe *mp);
/* Set the input length to n samples (a live input that ended). */
void tolk_melpipe_set_length(tolk_melpipe *mp, size_t n);
/* Pass 2: mp->window = normalised frames [seek, seek + size), zero-padded
 * to 3000 frames. */
tolk_status tolk_melpipe_window(tolk_melpipe *mp, size_t seek, size_t size);
/* Samples a window [seek, seek + size) reads: up to this index. */
size_t tolk_melpipe_samples_needed(size_t seek, size_t size);

/* The mel window a transcription feeds the encoder (exposed for tests):
 * frames [seek, seek + size) of the log-mel of x[0, n) followed by 30 s of
 * zeros, clamped at that whole mel's max - 8, into out [n_mels, 3000]
 * (zero-padded); *content_frames (may be NULL) = n / 160. Computed in
 * pieces, never holding the whole mel. */
tolk_status tolk_tr_mel_window(tolk_ctx *ctx, const tolk_mel *mel, const float *x, size_t n,
                               size_t seek, size_t size, float *out, size_t *content_frames);

#endif /* TOLK_MELWIN_H */

/*
 * audio_internal.h — the private interface between the audio front end
 * (src/audio.c: libsndfile, channel mixing, libsoxr resampling) and the
 * optional FFmpeg decoder (src/ffmpeg_audio.c, compiled only when the build
 * found libavformat/libavcodec; TOLK_HAVE_FFMPEG is then defined).
 *
 * The FFmpeg decoder only decodes: it hands back interleaved float32 frames
 * at the source's own rate and channel count, exactly like the libsndfile
 * path, and audio.c does the rest (mix to mono, resample to 16 kHz).
 */
#ifndef TOLK_AUDIO_INTERNAL_H
#define TOLK_AUDIO_INTERNAL_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* Limits on what a source may declare; beyond them the file is refused as
 * absurd rather than trusted (sizes of buffers derive from these). */
#define TOLK_AUDIO_MAX_CHANNELS 1024
#define TOLK_AUDIO_MIN_RATE 1000
#define TOLK_AUDIO_MAX_RATE 768000

/* Length of the short reason strings the decoder writes (no file name). */
#define TOLK_AUDIO_WHY_MAX 256

#ifdef TOLK_HAVE_FFMPEG

typedef struct tolk_ff_source tolk_ff_source;

/* Open a source with FFmpeg. Exactly one input is used: a file descriptor fd
 * (>= 0, a seekable regular file; the decoder dup()s it, the caller keeps its
 * own), or data/size (bytes borrowed for the life of the source). The best
 * audio stream is opened and decoded up to its first frame, so success means
 * the source really decodes. Demuxers that would open other files or URLs
 * are refused. On success *out (free with tolk_ff_close), *rate (Hz) and
 * *channels are set. On failure returns TOLK_ERR_FORMAT / _UNSUPPORTED /
 * _EMPTY / _NOMEM / _IO and writes a short reason (no file name) to why. */
tolk_status tolk_ff_open(int fd, const void *data, size_t size, tolk_ff_source **out, int *rate,
                         int *channels, char why[TOLK_AUDIO_WHY_MAX]);

/* Decode up to max_frames frames into dst (interleaved float32,
 * [max_frames, channels], nominal range [-1, 1]); *got = 0 at the end of the
 * stream. Errors as for tolk_ff_open. */
tolk_status tolk_ff_read(tolk_ff_source *s, float *dst, size_t max_frames, size_t *got,
                         char why[TOLK_AUDIO_WHY_MAX]);

/* The container's short name ("mov,mp4,m4a,...", "matroska,webm"); owned by s. */
const char *tolk_ff_container(const tolk_ff_source *s);

/* Release everything (NULL allowed). */
void tolk_ff_close(tolk_ff_source *s);

#endif /* TOLK_HAVE_FFMPEG */

#endif /* TOLK_AUDIO_INTERNAL_H */

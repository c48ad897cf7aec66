/*
 * clips.h — test audio inputs as openai-whisper's loader sees them: 16 kHz
 * mono 16-bit FLAC clips of the shared data and int16 .npy fixtures, as
 * float samples int16 / 32768 (shared by test_mel.c and test_mel_cuda.c).
 */
#ifndef TOLK_TESTS_CLIPS_H
#define TOLK_TESTS_CLIPS_H

#include <stddef.h>

/* A 16 kHz mono 16-bit FLAC at path; malloc'd samples, *n set. NULL when
 * unreadable or not 16 kHz mono. */
float *tu_load_flac_s16(const char *path, size_t *n);
/* A 1-D little-endian int16 .npy at path; malloc'd samples, *n set. */
float *tu_load_npy_s16(const char *path, size_t *n);
/* A fixture clip input: "name_s16.npy" under tests/fixtures/mel, else a path
 * under the shared speech data. */
float *tu_load_clip_input(const char *input, size_t *n);

#endif

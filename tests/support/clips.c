/*
 * clips.c — test audio inputs (clips.h).
 */
#include "clips.h"
#include "testutil.h"

#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 16 kHz mono 16-bit FLAC decoded as int16 / 32768 (what the reference's
 * ffmpeg loader gives for such files; make_mel.py checks they agree). */
float *tu_load_flac_s16(const char *path, size_t *n) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    if (!f) return NULL;
    float *x = NULL;
    if (info.samplerate == 16000 && info.channels == 1 && info.frames > 0) {
        short *pcm = malloc((size_t)info.frames * sizeof *pcm);
        x = malloc((size_t)info.frames * sizeof *x);
        if (pcm && x && sf_readf_short(f, pcm, info.frames) == info.frames) {
            for (sf_count_t i = 0; i < info.frames; i++)
                x[i] = (float)pcm[i] / 32768.0f;
            *n = (size_t)info.frames;
        } else {
            free(x);
            x = NULL;
        }
        free(pcm);
    }
    sf_close(f);
    return x;
}

/* A 1-D little-endian int16 .npy as float samples int16 / 32768. */
float *tu_load_npy_s16(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[10];
    float *x = NULL;
    char h[256];
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY\x01", 7) != 0) goto out;
    size_t hlen = head[8] | (head[9] << 8);
    if (hlen >= sizeof h || fread(h, 1, hlen, f) != hlen) goto out;
    h[hlen] = '\0';
    char *s = strstr(h, "'shape': (");
    if (!strstr(h, "'<i2'") || !s) goto out;
    long long len = strtoll(s + 10, NULL, 10);
    if (len <= 0 || len > (1LL << 30)) goto out;
    short *pcm = malloc((size_t)len * sizeof *pcm);
    x = malloc((size_t)len * sizeof *x);
    if (pcm && x && fread(pcm, sizeof *pcm, (size_t)len, f) == (size_t)len) {
        for (long long i = 0; i < len; i++)
            x[i] = (float)pcm[i] / 32768.0f;
        *n = (size_t)len;
    } else {
        free(x);
        x = NULL;
    }
    free(pcm);
out:
    fclose(f);
    return x;
}

/* The input of a fixture clip: a FLAC under the shared data or an _s16.npy
 * in tests/fixtures/mel. */
float *tu_load_clip_input(const char *input, size_t *n) {
    char rel[600];
    if (strstr(input, ".npy")) {
        snprintf(rel, sizeof rel, "tests/fixtures/mel/%s", input);
        return tu_load_npy_s16(tu_src(rel), n);
    }
    snprintf(rel, sizeof rel, "speech/%s", input);
    return tu_load_flac_s16(tu_data(rel), n);
}

/*
 * fuzz_audio.c — libFuzzer target for audio decoding: arbitrary bytes go
 * through tolk_audio_load_memory (libsndfile, then FFmpeg when built, then
 * channel mixing and libsoxr resampling). Any status is fine; a crash, a
 * sanitizer report, a hang or a leak is not. Success must give a non-NULL
 * buffer of finite samples; failure a NULL buffer, zero samples and a
 * message.
 *
 *   CC=clang cmake -DTOLK_FUZZ=ON -DTOLK_TESTS=OFF -DTOLK_BENCH=OFF ...
 *   ./fuzz_audio -max_total_time=60 -max_len=65536 corpus/
 */
#include "tolk.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Leaks inside third-party decoders are not ours to fix: libsndfile 1.2.0
 * leaks a vorbis_info when it fails to open a malformed Ogg/Vorbis header.
 * LeakSanitizer reads these suppressions (tolk's own code is not listed). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libsndfile.so\nleak:libvorbis.so\nleak:libogg.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 0;
    float *x = NULL;
    size_t n = 0;
    tolk_status st = tolk_audio_load_memory(ctx, data, size, "fuzz", &x, &n);
    if (st == TOLK_OK) {
        if (!x || n == 0) abort();
        /* Touch every sample (ASan checks the bounds). */
        volatile float sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        (void)sum;
    } else {
        if (x || n != 0) abort();
        if (tolk_ctx_last_error(ctx)[0] == '\0') abort();
    }
    tolk_free(x);
    tolk_ctx_free(ctx);
    return 0;
}

/*
 * bench_mel.c — log-mel spectrogram throughput (tolk_mel_compute), in
 * seconds of audio per second of wall time, for the CPU with 1 and 2
 * threads and the CUDA device when one is present. Inputs are deterministic
 * pseudo-random audio: one 30 s window (the encoder's unit, as whisper pads
 * it) and a 10 minute file. A benchmark only: it prints a table and asserts
 * nothing.
 *
 * usage: bench_mel [n_mels (80)] [min seconds per cell (1.0)]
 */
#include "tolk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Audio seconds per wall second for one configuration, or -1 when it cannot
 * run (no device, an error). */
static double measure(int threads, tolk_device device, int n_mels, const float *x, size_t n,
                      float *out, double min_s) {
    tolk_ctx_params p = tolk_ctx_default_params();
    p.n_threads = threads;
    p.device = device;
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(&p, &ctx) != TOLK_OK) return -1;
    tolk_mel *mel = NULL;
    double rate = -1;
    if (tolk_mel_new(ctx, n_mels, &mel) == TOLK_OK &&
        tolk_mel_compute(ctx, mel, x, n, out) == TOLK_OK) { /* warm-up */
        int reps = 0;
        const double t0 = now_s();
        double t1 = t0;
        while (t1 - t0 < min_s || reps < 3) {
            if (tolk_mel_compute(ctx, mel, x, n, out) != TOLK_OK) {
                fprintf(stderr, "bench_mel: %s\n", tolk_ctx_last_error(ctx));
                reps = 0;
                break;
            }
            reps++;
            t1 = now_s();
        }
        if (reps > 0) rate = (double)reps * (double)n / TOLK_SAMPLE_RATE / (t1 - t0);
    } else {
        fprintf(stderr, "bench_mel: %s\n", tolk_ctx_last_error(ctx));
    }
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
    return rate;
}

int main(int argc, char **argv) {
    const int n_mels = argc > 1 ? atoi(argv[1]) : 80;
    const double min_s = argc > 2 ? atof(argv[2]) : 1.0;
    const size_t lens[2] = {(size_t)TOLK_N_SAMPLES, (size_t)600 * TOLK_SAMPLE_RATE};
    const char *names[2] = {"30 s window", "10 min file"};
    const size_t n_max = lens[1];
    float *x = malloc(n_max * sizeof *x);
    float *out = malloc(tolk_mel_n_frames(n_max) * (size_t)n_mels * sizeof *out);
    if (!x || !out) {
        fprintf(stderr, "bench_mel: out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n_max; i++) { /* xorshift noise, quiet: +-0.1 */
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 0.2 - 0.1);
    }
    const int cuda = tolk_cuda_available();
    printf("tolk mel throughput, n_mels %d (audio seconds per second; higher is better)\n", n_mels);
    printf("%-14s %14s %14s %14s\n", "input", "cpu 1 thread", "cpu 2 threads", "cuda");
    for (int i = 0; i < 2; i++) {
        const double r1 = measure(1, TOLK_DEVICE_CPU, n_mels, x, lens[i], out, min_s);
        const double r2 = measure(2, TOLK_DEVICE_CPU, n_mels, x, lens[i], out, min_s);
        char gpu[32] = "n/a";
        if (cuda) {
            const double rg = measure(1, TOLK_DEVICE_CUDA, n_mels, x, lens[i], out, min_s);
            if (rg > 0)
                snprintf(gpu, sizeof gpu, "%.0f", rg);
            else
                snprintf(gpu, sizeof gpu, "error");
        }
        printf("%-14s %14.0f %14.0f %14s\n", names[i], r1, r2, gpu);
    }
    free(x);
    free(out);
    return 0;
}

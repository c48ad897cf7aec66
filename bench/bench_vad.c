/*
 * bench_vad.c — Silero VAD speed: audio seconds per CPU second (and per
 * wall second) of tolk's VAD on the files given, three ways:
 *   whole   tolk_vad_probs on each whole file (encoder batched over chunks,
 *           the context's threads);
 *   stream  a tolk_vad_stream fed 512 samples at a time (live audio);
 *   batch8  8 streams' chunks at once (tolk_vad_stream_chunks), the files
 *           dealt round-robin to 8 streams.
 * Audio decoding and model loading are not timed. Measures, never asserts.
 *
 *   bench_vad MODEL THREADS FILE...
 */
#include "tolk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_vad MODEL THREADS FILE...\n");
        return 2;
    }
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = atoi(argv[2]);
    cp.device = TOLK_DEVICE_CPU;
    tolk_ctx *ctx = NULL;
    tolk_vad *vad = NULL;
    if (tolk_ctx_new(&cp, &ctx) || tolk_vad_load(ctx, argv[1], &vad)) {
        fprintf(stderr, "bench_vad: %s\n", ctx ? tolk_ctx_last_error(ctx) : "no context");
        return 1;
    }
    int nf = argc - 3;
    float **x = calloc((size_t)nf, sizeof *x);
    size_t *n = calloc((size_t)nf, sizeof *n);
    double audio = 0;
    for (int i = 0; i < nf; i++) {
        if (tolk_audio_load(ctx, argv[3 + i], &x[i], &n[i])) {
            fprintf(stderr, "bench_vad: %s\n", tolk_ctx_last_error(ctx));
            return 1;
        }
        audio += (double)n[i] / TOLK_SAMPLE_RATE;
    }
    /* whole files */
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    size_t chunks = 0;
    for (int i = 0; i < nf; i++) {
        float *p = NULL;
        size_t np = 0;
        if (tolk_vad_probs(ctx, vad, x[i], n[i], &p, &np)) return 1;
        chunks += np;
        tolk_free(p);
    }
    double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
    printf("mode\taudio_s\tchunks\tcpu_s\twall_s\taudio_s_per_cpu_s\taudio_s_per_wall_s\n");
    printf("whole\t%.1f\t%zu\t%.3f\t%.3f\t%.0f\t%.0f\n", audio, chunks, cpu, wall, audio / cpu,
           audio / wall);
    /* one stream, 512 samples a push */
    tolk_vad_stream *s = NULL;
    if (tolk_vad_stream_new(ctx, vad, &s)) return 1;
    c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    chunks = 0;
    for (int i = 0; i < nf; i++) {
        tolk_vad_stream_reset(s);
        float p;
        size_t got;
        for (size_t at = 0; at + 512 <= n[i]; at += 512) {
            if (tolk_vad_stream_push(ctx, s, x[i] + at, 512, &p, 1, &got)) return 1;
            chunks += got;
        }
    }
    cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
    printf("stream\t%.1f\t%zu\t%.3f\t%.3f\t%.0f\t%.0f\n", (double)chunks * 512 / 16000, chunks, cpu,
           wall, (double)chunks * 512 / 16000 / cpu, (double)chunks * 512 / 16000 / wall);
    tolk_vad_stream_free(s);
    /* 8 streams at once: each stream plays files i, i + 8, ... back to back */
    enum { NS = 8 };
    tolk_vad_stream *ss[NS];
    size_t fi[NS], at[NS];
    for (int k = 0; k < NS; k++) {
        if (tolk_vad_stream_new(ctx, vad, &ss[k])) return 1;
        fi[k] = (size_t)k;
        at[k] = 0;
    }
    c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    chunks = 0;
    for (;;) {
        tolk_vad_stream *live[NS];
        const float *ch[NS];
        float p[NS];
        int m = 0;
        for (int k = 0; k < NS; k++) {
            while (fi[k] < (size_t)nf && at[k] + 512 > n[fi[k]]) {
                fi[k] += NS;
                at[k] = 0;
                tolk_vad_stream_reset(ss[k]);
            }
            if (fi[k] >= (size_t)nf) continue;
            live[m] = ss[k];
            ch[m++] = x[fi[k]] + at[k];
            at[k] += 512;
        }
        if (!m) break;
        if (tolk_vad_stream_chunks(ctx, live, m, ch, p)) return 1;
        chunks += (size_t)m;
    }
    cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
    printf("batch8\t%.1f\t%zu\t%.3f\t%.3f\t%.0f\t%.0f\n", (double)chunks * 512 / 16000, chunks, cpu,
           wall, (double)chunks * 512 / 16000 / cpu, (double)chunks * 512 / 16000 / wall);
    for (int k = 0; k < NS; k++)
        tolk_vad_stream_free(ss[k]);
    for (int i = 0; i < nf; i++)
        tolk_free(x[i]);
    free(x);
    free(n);
    tolk_vad_free(vad);
    tolk_ctx_free(ctx);
    return 0;
}

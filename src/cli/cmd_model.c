/*
 * cmd_model.c — `tolk model info PATH [--no-mmap]`: load a model (a
 * CTranslate2 or Hugging Face directory, or a whisper.cpp ggml file; the
 * format is found from the content) and describe it: format, size name,
 * dimensions, languages, stored dtypes, bytes on disk and in memory, and
 * the load time. Uses the public API only.
 */
#include "cli.h"
#include "tolk.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void model_usage(FILE *f) {
    fprintf(f, "usage: tolk model info PATH [--no-mmap]\n"
               "\n"
               "Describe a Whisper model: a CTranslate2 directory (model.bin), a Hugging Face\n"
               "directory (config.json + *.safetensors) or a whisper.cpp ggml file.\n"
               "\n"
               "  --no-mmap   read the files into memory instead of mapping them\n");
}

/* Print bytes as "N (X.Y MiB)". */
static void print_bytes(const char *label, uint64_t b) {
    printf("%-14s%llu (%.1f MiB)\n", label, (unsigned long long)b, (double)b / (1024.0 * 1024.0));
}

static int model_info(const char *path, int use_mmap) {
    tolk_ctx *ctx = NULL;
    tolk_status st = tolk_ctx_new(NULL, &ctx);
    if (st) {
        fprintf(stderr, "tolk model: %s\n", tolk_strerror(st));
        return 1;
    }
    tolk_model_params mp = tolk_model_default_params();
    mp.use_mmap = use_mmap;
    tolk_model *model = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = tolk_model_load(ctx, path, &mp, &model);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st) {
        fprintf(stderr, "tolk model: %s (%s)\n", tolk_ctx_last_error(ctx), tolk_strerror(st));
        tolk_ctx_free(ctx);
        return 1;
    }
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    tolk_model_desc d;
    tolk_model_describe(model, &d);
    printf("%-14s%s\n", "path:", path);
    printf("%-14s%s\n", "format:", tolk_model_format_name(d.format));
    printf("%-14s%s\n", "size:", d.size_name ? d.size_name : "custom");
    if (d.multilingual)
        printf("%-14smultilingual (%d languages)\n", "languages:", d.n_languages);
    else
        printf("%-14sEnglish-only\n", "languages:");
    printf("%-14s%d\n", "mel bins:", d.n_mels);
    printf("%-14s%d\n", "vocabulary:", d.n_vocab);
    printf("%-14s%d layers, %d heads, width %d, context %d\n", "encoder:", d.n_audio_layer,
           d.n_audio_head, d.n_audio_state, d.n_audio_ctx);
    printf("%-14s%d layers, %d heads, width %d, context %d\n", "decoder:", d.n_text_layer,
           d.n_text_head, d.n_text_state, d.n_text_ctx);
    printf("%-14s%s\n", "dtypes:", d.dtypes ? d.dtypes : "");
    print_bytes("disk bytes:", d.file_bytes);
    print_bytes("memory bytes:", d.mem_bytes);
    printf("%-14s%.1f ms (%s)\n", "load time:", ms, use_mmap ? "mmap" : "read");
    tolk_model_free(model);
    tolk_ctx_free(ctx);
    return 0;
}

int cli_model(int argc, char **argv) {
    if (argc < 2) {
        model_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        model_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "info") != 0) {
        fprintf(stderr, "tolk model: unknown subcommand '%s'\n\n", argv[1]);
        model_usage(stderr);
        return 2;
    }
    const char *path = NULL;
    int use_mmap = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            model_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-mmap")) {
            use_mmap = 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "tolk model info: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "tolk model info: one PATH only\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "tolk model info: missing PATH\n");
        model_usage(stderr);
        return 2;
    }
    return model_info(path, use_mmap);
}

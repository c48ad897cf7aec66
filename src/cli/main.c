/*
 * main.c — `tolk` entry point: dispatches to the subcommands.
 */
#include "cli.h"
#include "tolk.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "tolk %s — Whisper speech recognition and translation\n"
            "\n"
            "usage: tolk COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  mel AUDIO -o OUT.npy [--n_mels 80|128]   log-mel spectrogram of a whole file\n"
            "  model info PATH                          describe a model (CT2, safetensors, ggml)\n"
            "  transcribe AUDIO... [OPTIONS]            speech to text (openai-whisper's flags)\n"
            "  translate AUDIO... [OPTIONS]             speech to English text\n"
            "  bench MANIFEST [OPTIONS]                 time a manifest of files (JSON lines)\n"
            "  vad AUDIO... [OPTIONS]                   speech segments (Silero VAD)\n"
            "  version                                  print the version\n"
            "\n"
            "`tolk COMMAND --help` describes a command.\n",
            tolk_version());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tolk %s\n", tolk_version());
        return 0;
    }
    if (!strcmp(cmd, "mel")) return cli_mel(argc - 1, argv + 1);
    if (!strcmp(cmd, "model")) return cli_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "transcribe")) return cli_transcribe(argc - 1, argv + 1);
    if (!strcmp(cmd, "translate")) return cli_translate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "vad")) return cli_vad(argc - 1, argv + 1);
    fprintf(stderr, "tolk: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

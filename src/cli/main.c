/*
 * main.c — `tolk` entry point: dispatches to the subcommands.
 */
#include "cli.h"
#include "tolk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
            "  translate AUDIO... [OPTIONS]             speech to English text (--to LANG:\n"
            "                                           another language, via a text model)\n"
            "  mt --from LANG --to LANG                 translate text, stdin to stdout\n"
            "  stream [FILE|-] [OPTIONS]                live transcription: partial and final\n"
            "                                           text while the audio arrives\n"
            "  bench MANIFEST [OPTIONS]                 time a manifest of files (JSON lines)\n"
            "  vad AUDIO... [OPTIONS]                   speech segments (Silero VAD)\n"
            "  serve [OPTIONS]                          OpenAI-compatible speech server (HTTP,\n"
            "                                           realtime WebSocket)\n"
            "  version                                  print the version\n"
            "\n"
            "`tolk COMMAND --help` describes a command.\n",
            tolk_version());
}

/* OpenBLAS chose its kernels when this process loaded it; on a CPU newer
 * than the OpenBLAS build it chose generic ones (tolk_blas_coretype_advice).
 * Start again with OPENBLAS_CORETYPE set to what the CPU runs, once (the
 * variable is then set, so there is no advice the second time). When the
 * executable cannot be run again this goes on with the slower kernels. */
static void blas_restart(char **argv) {
    const char *core = tolk_blas_coretype_advice();
    if (!core || getenv("TOLK_NO_BLAS_RESTART")) return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* not restarted: say what actually runs */
}

int main(int argc, char **argv) {
    blas_restart(argv);
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
        const char *advice = tolk_blas_coretype_advice();
        printf("tolk %s\nOpenBLAS kernels: %s", tolk_version(), tolk_blas_core());
        if (advice) printf(" (this CPU runs %s: set OPENBLAS_CORETYPE=%s)", advice, advice);
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "mel")) return cli_mel(argc - 1, argv + 1);
    if (!strcmp(cmd, "model")) return cli_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "transcribe")) return cli_transcribe(argc - 1, argv + 1);
    if (!strcmp(cmd, "translate")) return cli_translate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "vad")) return cli_vad(argc - 1, argv + 1);
    if (!strcmp(cmd, "mt")) return cli_mt(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "stream")) return cli_stream(argc - 1, argv + 1);
    fprintf(stderr, "tolk: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

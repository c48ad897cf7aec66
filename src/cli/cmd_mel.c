/*
 * cmd_mel.c — `tolk mel AUDIO -o OUT.npy [--n_mels 80|128] [--threads N]
 * [--device cpu|cuda|auto]`: decode a whole audio file, compute its log-mel
 * spectrogram (openai-whisper's log_mel_spectrogram, without the 30 s
 * padding) and write it as a float32 .npy of shape [n_mels, frames]
 * (numpy's format version 1.0, C order, little-endian). The file is written
 * under a temporary name in the target directory and renamed into place, so
 * a failure leaves no partial output. Input shorter than one hop (160
 * samples) gives an empty [n_mels, 0] spectrogram, as frames = samples /
 * 160 says (`tolk transcribe` pads such input to 30 s). A truncated input
 * is used with a warning (tolk_audio_truncated). Uses the public API only.
 */
#include "cli.h"
#include "options.h"
#include "tolk.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void mel_usage(FILE *f) {
    fprintf(f, "usage: tolk mel AUDIO -o OUT.npy [--n_mels 80|128] [--threads N]\n"
               "                [--device cpu|cuda|auto]\n"
               "\n"
               "Write the log-mel spectrogram of the whole of AUDIO (16 kHz mono after\n"
               "decoding; no 30 s padding) to OUT.npy as float32 [n_mels, frames],\n"
               "frames = samples / 160 (fewer than 160 samples: [n_mels, 0]). AUDIO \"-\"\n"
               "reads standard input; \"--\" ends the options.\n"
               "\n"
               "  -o, --output PATH   the .npy file to write (required)\n"
               "  --n_mels N          80 (default) or 128 (large-v3)\n"
               "  --threads N         CPU threads (default: all cores)\n"
               "  --device D          cpu (default), cuda or auto\n");
}

/* An option's value, from "--opt VALUE" or "--opt=VALUE"; advances *i.
 * Returns NULL (message printed) when it is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
    const char *a = argv[*i];
    const size_t len = strlen(name);
    if (a[len] == '=') return a + len + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "tolk mel: %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

/* Whether argv[i] is option name, alone or as name=value. */
static int is_opt(const char *arg, const char *name) {
    const size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* Write data [rows, cols] as a float32 .npy to an open stream. Returns 0 on
 * success, -1 on a write error. */
static int write_npy(FILE *f, const float *data, size_t rows, size_t cols) {
    char header[256];
    int hl =
        snprintf(header, sizeof header,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    if (hl < 0 || hl > 200) return -1; /* then hl + pad + 1 <= 246 fits */
    /* magic (6) + version (2) + length (2) + header + padding + '\n', a
     * multiple of 64 bytes */
    size_t total = 10 + (size_t)hl + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(header + hl, ' ', pad);
    header[hl + pad] = '\n';
    const size_t hlen = (size_t)hl + pad + 1;
    unsigned char pre[10];
    memcpy(pre, "\x93NUMPY\x01\x00", 8);
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    if (fwrite(pre, 1, 10, f) != 10 || fwrite(header, 1, hlen, f) != hlen) return -1;
    const size_t n = rows * cols;
    const uint32_t probe = 1;
    if (*(const unsigned char *)&probe == 1) {
        if (n && fwrite(data, sizeof(float), n, f) != n) return -1;
    } else {
        for (size_t i = 0; i < n; i++) { /* big-endian host: swap to '<f4' */
            unsigned char b[4], s[4];
            memcpy(b, &data[i], 4);
            s[0] = b[3];
            s[1] = b[2];
            s[2] = b[1];
            s[3] = b[0];
            if (fwrite(s, 1, 4, f) != 4) return -1;
        }
    }
    return 0;
}

/* Write the spectrogram to path atomically: a temporary file beside it,
 * flushed, then renamed. Returns 0 or -1 (message printed, nothing left). */
static int save_npy(const char *path, const float *data, size_t rows, size_t cols) {
    /* a device or a pipe (-o /dev/stdout, /dev/null, a FIFO) is written as
     * it is: renaming a temporary file over it would replace the device
     * with a regular file (as root, /dev/null itself) */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
        FILE *f = fopen(path, "wb");
        int rc = f ? write_npy(f, data, rows, cols) : -1;
        int err = errno;
        if (f && fclose(f) != 0 && rc == 0) {
            rc = -1;
            err = errno;
        }
        if (rc != 0)
            fprintf(stderr, "tolk mel: %s: cannot write the output: %s\n", path, strerror(err));
        return rc;
    }
    const size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        fprintf(stderr, "tolk mel: out of memory\n");
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "tolk mel: %s: cannot create the output: %s\n", path, strerror(errno));
        free(tmp);
        return -1;
    }
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    FILE *f = fdopen(fd, "wb");
    int rc = -1, err = 0;
    if (!f) {
        err = errno;
        close(fd);
    } else {
        rc = write_npy(f, data, rows, cols);
        if (rc == 0 && fflush(f) != 0) rc = -1;
        if (rc != 0) err = errno;
        if (fclose(f) != 0 && rc == 0) {
            rc = -1;
            err = errno;
        }
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        err = errno;
    }
    if (rc != 0) {
        fprintf(stderr, "tolk mel: %s: cannot write the output: %s\n", path,
                err ? strerror(err) : "write error");
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* Decode the whole of input through the streaming reader into a new buffer
 * (*samples, free), warning on stderr when the input is cut short.
 * Returns the status; the message is on ctx unless *printed is set. */
static tolk_status load_audio(tolk_ctx *ctx, const char *input, const char *shown, float **samples,
                              size_t *n, int *printed) {
    *printed = 0;
    *samples = NULL;
    *n = 0;
    tolk_audio_reader *r = NULL;
    tolk_status st = tolk_audio_open(ctx, input, &r);
    size_t cap = 0;
    while (st == TOLK_OK) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
            float *nb = ncap < ((size_t)-1) / sizeof(float)
                            ? realloc(*samples, ncap * sizeof(float))
                            : NULL;
            if (!nb) {
                fprintf(stderr, "tolk mel: %s: out of memory\n", shown);
                *printed = 1;
                st = TOLK_ERR_NOMEM;
                break;
            }
            *samples = nb;
            cap = ncap;
        }
        size_t got = 0;
        st = tolk_audio_read(ctx, r, *samples + *n, cap - *n, &got);
        if (st == TOLK_OK && got == 0) break;
        *n += got;
    }
    if (st == TOLK_OK) {
        int64_t expected = -1, decoded = 0;
        int rate = 0;
        tolk_audio_source_info(r, &rate, NULL, NULL);
        if (tolk_audio_truncated(r, &expected, &decoded) && rate > 0)
            cli_warn_truncated("tolk mel", shown, expected >= 0 ? (double)expected / rate : -1.0,
                               (double)decoded / rate);
        if (*n == 0) {
            fprintf(stderr, "tolk mel: %s: no audio samples\n", shown);
            *printed = 1;
            st = TOLK_ERR_EMPTY;
        }
    }
    tolk_audio_close(r);
    if (st != TOLK_OK) {
        free(*samples);
        *samples = NULL;
        *n = 0;
    }
    return st;
}

int cli_mel(int argc, char **argv) {
    const char *input = NULL, *output = NULL;
    long n_mels = 80, threads = 0;
    tolk_device device = TOLK_DEVICE_CPU;
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            if (input) {
                fprintf(stderr, "tolk mel: more than one input ('%s' and '%s')\n", input, a);
                return 2;
            }
            input = a;
        } else if (!strcmp(a, "--")) {
            only_positional = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            mel_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || is_opt(a, "--output")) {
            if (!(v = opt_value(argc, argv, &i, !strcmp(a, "-o") ? "-o" : "--output"))) return 2;
            output = v;
        } else if (is_opt(a, "--n_mels")) {
            if (!(v = opt_value(argc, argv, &i, "--n_mels"))) return 2;
            if (!parse_int(v, 1, 100000, &n_mels) || (n_mels != 80 && n_mels != 128)) {
                fprintf(stderr, "tolk mel: --n_mels must be 80 or 128, not '%s'\n", v);
                return 2;
            }
        } else if (is_opt(a, "--threads")) {
            if (!(v = opt_value(argc, argv, &i, "--threads"))) return 2;
            if (!parse_int(v, 1, 4096, &threads)) {
                fprintf(stderr,
                        "tolk mel: --threads must be an integer from 1 to 4096, not "
                        "'%s'\n",
                        v);
                return 2;
            }
        } else if (is_opt(a, "--device")) {
            if (!(v = opt_value(argc, argv, &i, "--device"))) return 2;
            if (!strcmp(v, "cpu"))
                device = TOLK_DEVICE_CPU;
            else if (!strcmp(v, "cuda"))
                device = TOLK_DEVICE_CUDA;
            else if (!strcmp(v, "auto"))
                device = TOLK_DEVICE_AUTO;
            else {
                fprintf(stderr, "tolk mel: --device must be cpu, cuda or auto, not '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "tolk mel: unknown option '%s'\n", a);
            mel_usage(stderr);
            return 2;
        }
    }
    if (!input || !output) {
        fprintf(stderr, "tolk mel: %s\n", !input ? "no AUDIO given" : "no output (-o OUT.npy)");
        mel_usage(stderr);
        return 2;
    }

    tolk_ctx_params params = tolk_ctx_default_params();
    params.n_threads = (int)threads;
    params.device = device;
    tolk_ctx *ctx = NULL;
    tolk_status st = tolk_ctx_new(&params, &ctx);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk mel: %s%s\n", tolk_strerror(st),
                st == TOLK_ERR_NO_DEVICE ? " (try --device cpu)" : "");
        return 1;
    }
    int rc = 1;
    float *samples = NULL, *spec = NULL;
    size_t n_samples = 0, n_frames = 0;
    tolk_mel *mel = NULL;
    const char *shown = strcmp(input, "-") ? input : "<stdin>"; /* the library's name for it */
    int printed = 0;
    st = load_audio(ctx, input, shown, &samples, &n_samples, &printed);
    if (st == TOLK_OK) st = tolk_mel_new(ctx, (int)n_mels, &mel);
    if (st == TOLK_OK && tolk_mel_n_frames(n_samples) > 0)
        st = tolk_mel_compute_alloc(ctx, mel, samples, n_samples, &spec, &n_frames);
    if (st != TOLK_OK && !printed) {
        const char *msg = tolk_ctx_last_error(ctx);
        if (!msg[0]) msg = tolk_strerror(st);
        if (strstr(msg, shown)) /* the message names the file already */
            fprintf(stderr, "tolk mel: %s\n", msg);
        else
            fprintf(stderr, "tolk mel: %s: %s\n", shown, msg);
    } else if (st == TOLK_OK && save_npy(output, spec, (size_t)n_mels, n_frames) == 0) {
        rc = 0;
    }
    tolk_free(spec);
    free(samples);
    tolk_mel_free(mel);
    tolk_ctx_free(ctx);
    return rc;
}

/*
 * bench_batch.c — what batching buys on a device: the decoder step of B
 * sequences (B = 1 .. 256) over the pool the engine uses, and the encoder
 * over one window, for Whisper shapes with random weights (large-v3,
 * large-v3-turbo, base, tiny: tests/support/model_writer writes them as
 * CTranslate2 directories, the format faster-whisper reads, so
 * bench/shapes.sh times faster-whisper on the very same files) or a real
 * model directory. Measures only.
 *
 * Decoder: B sequences, each bound to one of min(B, --windows) encoded
 * windows (requests of their own), a 4-token prompt, then --steps
 * single-token steps with fixed token ids (no search, so random weights do
 * not matter); reported: ms per step, ms per token (step / B), tokens per
 * second. Encoder: seconds per 30 s window (--enc-windows at once).
 *
 * usage: bench_batch [--shape large-v3|large-v3-turbo|base|tiny | --model DIR]
 *                    [--dir /tmp/tolk-shapes] [--device cpu|cuda] [--compute f32|f16|bf16]
 *                    [--kv f32|f16]
 *                    [--threads 0] [--batches 1,8] [--steps 32] [--windows 16]
 *                    [--enc-reps 1] [--enc-windows 1] [--no-encoder]
 */
#include "net.h"
#include "internal.h"
#include "support/model_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The random-weight spec of a named shape (0 when unknown). */
static int shape_spec(const char *name, mw_spec *s) {
    if (!strcmp(name, "large-v3")) {
        *s = mw_spec_make(128, 51866, 1280, 32, 32);
    } else if (!strcmp(name, "large-v3-turbo")) {
        *s = mw_spec_make(128, 51866, 1280, 32, 4);
    } else if (!strcmp(name, "base")) {
        *s = mw_spec_make(80, 51865, 512, 6, 6);
    } else if (!strcmp(name, "tiny")) {
        *s = mw_spec_make(80, 51865, 384, 4, 4);
    } else {
        return 0;
    }
    s->dtype = TOLK_DT_F16;
    s->write_vocab = 1;
    return 1;
}

int main(int argc, char **argv) {
    const char *shape = "large-v3", *model = NULL, *root = "/tmp/tolk-shapes", *device = "cpu";
    const char *compute = "f32", *kv_type = "f32";
    char batches[256] = "1,8";
    int threads = 0, steps = 32, max_windows = 16, enc_reps = 1, enc_windows = 1, no_enc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--shape"))
            shape = v, i++;
        else if (!strcmp(a, "--model"))
            model = v, i++;
        else if (!strcmp(a, "--dir"))
            root = v, i++;
        else if (!strcmp(a, "--device"))
            device = v, i++;
        else if (!strcmp(a, "--compute"))
            compute = v, i++;
        else if (!strcmp(a, "--kv"))
            kv_type = v, i++;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v), i++;
        else if (!strcmp(a, "--batches"))
            snprintf(batches, sizeof batches, "%s", v), i++;
        else if (!strcmp(a, "--steps"))
            steps = atoi(v), i++;
        else if (!strcmp(a, "--windows"))
            max_windows = atoi(v), i++;
        else if (!strcmp(a, "--enc-reps"))
            enc_reps = atoi(v), i++;
        else if (!strcmp(a, "--enc-windows"))
            enc_windows = atoi(v), i++;
        else if (!strcmp(a, "--no-encoder"))
            no_enc = 1;
        else {
            fprintf(stderr, "bench_batch: unknown option %s (see the header of bench_batch.c)\n",
                    a);
            return 2;
        }
    }
    if (steps < 1 || max_windows < 1 || enc_reps < 1 || enc_windows < 1 || enc_windows > 4) {
        fprintf(stderr, "bench_batch: bad sizes\n");
        return 2;
    }
    char dir[1024];
    if (model) {
        snprintf(dir, sizeof dir, "%s", model);
    } else {
        mw_spec s;
        if (!shape_spec(shape, &s)) {
            fprintf(stderr, "bench_batch: unknown shape %s\n", shape);
            return 2;
        }
        snprintf(dir, sizeof dir, "%s/%s", root, shape);
        char bin[1100];
        snprintf(bin, sizeof bin, "%s/model.bin", dir);
        if (access(bin, R_OK) != 0) {
            mkdir(root, 0777);
            fprintf(stderr, "bench_batch: writing random %s weights to %s\n", shape, dir);
            if (mw_write_ct2(dir, &s) != 0) return 1;
        }
    }
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = threads;
    cp.device = !strcmp(device, "cuda") ? TOLK_DEVICE_CUDA : TOLK_DEVICE_CPU;
    tolk_ctx *ctx = NULL;
    tolk_weights *w = NULL;
    tolk_net *net = NULL;
    if (tolk_ctx_new(&cp, &ctx) != TOLK_OK) {
        fprintf(stderr, "bench_batch: --device %s: not available\n", device);
        return 1;
    }
    if (tolk_weights_load(ctx, dir, 1, &w) != TOLK_OK) goto fail;
    const int gpu = tolk_ctx_device(ctx) == TOLK_DEVICE_CUDA;
    tolk_net_params np = {.keep_f16 = gpu ? strcmp(compute, "f32") != 0 : -1,
                          .bf16 = !strcmp(compute, "bf16"),
                          .kv_f16 = !strcmp(kv_type, "f16")};
    if (tolk_net_new_ex(ctx, w, &np, &net) != TOLK_OK) goto fail;
    const tolk_hparams *hp = tolk_net_hparams(net);
    int bmax = 1;
    for (const char *p = batches; *p;) {
        int b = atoi(p);
        if (b > bmax) bmax = b;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    int nw = bmax < max_windows ? bmax : max_windows;
    if (nw < enc_windows) nw = enc_windows;
    tolk_kvcache *kv = NULL;
    if (tolk_kvcache_new(ctx, net, bmax, hp->n_text_ctx, nw, &kv) != TOLK_OK) goto fail;
    size_t melsz = (size_t)hp->n_mels * 2 * (size_t)hp->n_audio_ctx;
    float *mel = malloc(melsz * sizeof(float) * (size_t)enc_windows);
    float *enc = malloc((size_t)hp->n_audio_ctx * (size_t)hp->n_audio_state * sizeof(float));
    float *logits = malloc((size_t)bmax * (size_t)hp->n_vocab * sizeof(float));
    int *seqs = malloc((size_t)bmax * sizeof(int)), *nt = malloc((size_t)bmax * sizeof(int));
    int(*toks)[4] = malloc((size_t)bmax * sizeof *toks);
    const int **tp = malloc((size_t)bmax * sizeof *tp);
    if (!mel || !enc || !logits || !seqs || !nt || !toks || !tp) goto fail;
    for (size_t i = 0; i < melsz * (size_t)enc_windows; i++)
        mel[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    printf("bench_batch: %s (%s), %s, %s, kv %s, %d threads; d %d, %d + %d layers, vocab %d\n",
           model ? model : shape, dir, gpu ? "cuda" : "cpu", compute, kv_type,
           tolk_ctx_threads(ctx), hp->n_audio_state, hp->n_audio_layer, hp->n_text_layer,
           hp->n_vocab);
    /* encoder: the first window also gives every slot its cross K/V */
    double t0 = now_s();
    if (tolk_kvcache_encode_window(ctx, net, kv, 0, mel, enc) != TOLK_OK) goto fail;
    double first = now_s() - t0;
    if (!no_enc) {
        const float *mels[4];
        int wins[4];
        for (int i = 0; i < enc_windows; i++) {
            mels[i] = mel + (size_t)i * melsz;
            wins[i] = i;
        }
        double best = 1e30;
        for (int r = 0; r < enc_reps; r++) {
            t0 = now_s();
            if (tolk_kvcache_encode_windows(ctx, net, kv, wins, mels, enc_windows, enc_windows) !=
                TOLK_OK)
                goto fail;
            double t = (now_s() - t0) / enc_windows;
            if (t < best) best = t;
        }
        printf("encoder: %.3f s per window (%d at once, best of %d; first call %.3f s)\n", best,
               enc_windows, enc_reps, first);
    }
    for (int i = 1; i < nw; i++)
        if (tolk_kvcache_set_window(ctx, net, kv, i, enc) != TOLK_OK) goto fail;
    printf("| batch | windows | ms/step | ms/token | tokens/s |\n|---|---|---|---|---|\n");
    fflush(stdout);
    for (const char *p = batches; *p;) {
        int B = atoi(p);
        if (B >= 1 && B <= bmax) {
            for (int s = 0; s < B; s++) {
                tolk_kvcache_reset(NULL, kv, s, s % nw);
                seqs[s] = s;
                nt[s] = 4;
                for (int j = 0; j < 4; j++)
                    toks[s][j] = 220 + 37 * s + j;
                tp[s] = toks[s];
            }
            if (tolk_net_decode(ctx, net, kv, seqs, B, tp, nt, logits) != TOLK_OK) goto fail;
            for (int s = 0; s < B; s++)
                nt[s] = 1;
            if (tolk_net_decode(ctx, net, kv, seqs, B, tp, nt, logits) != TOLK_OK) goto fail;
            t0 = now_s();
            for (int step = 0; step < steps; step++) {
                for (int s = 0; s < B; s++)
                    toks[s][0] = 300 + (step * 131 + s * 17) % 20000;
                if (tolk_net_decode(ctx, net, kv, seqs, B, tp, nt, logits) != TOLK_OK) goto fail;
            }
            double ms = 1e3 * (now_s() - t0) / steps;
            printf("| %d | %d | %.2f | %.3f | %.0f |\n", B, B < nw ? B : nw, ms, ms / B,
                   1e3 * B / ms);
            fflush(stdout);
        }
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    tolk_kvcache_free(kv);
    tolk_net_free(net);
    tolk_weights_free(w);
    tolk_ctx_free(ctx);
    return 0;
fail:
    fprintf(stderr, "bench_batch: %s\n", tolk_ctx_last_error(ctx));
    return 1;
}

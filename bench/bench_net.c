/*
 * bench_net.c — speed of the Whisper network on the CPU backend: encoder
 * milliseconds per 30 s window, cross-attention K/V per window, decoder
 * milliseconds per step at batch 1 and 5 (one new token per sequence, cache
 * length 4..4+STEPS), for each model, weight mode (float16 kept / widened)
 * and thread count; peak RSS of each configuration (each runs in a forked
 * child so the figure is its own). Measures only; asserts nothing.
 *
 * usage: bench_net [--models tiny.en,base] [--threads 1,2] [--reps N]
 *                  [--modes f16,f32]
 * Models are looked up in $TOLK_MODELS or ~/.cache/tolk/models.
 */
#include "net.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 24

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

void openblas_set_num_threads(int num_threads);

/* Calibration: GFLOP/s of one OpenBLAS sgemm of the encoder's MLP shape
 * [1500, 512] x [512, 2048] with OpenBLAS's own threads (best of 3), to read
 * the encoder numbers against what the machine gives right now. */
static double sgemm_gflops(int threads) {
    int M = 1500, N = 2048, K = 512;
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4),
          *c = calloc((size_t)M * N, 4);
    if (!a || !b || !c) return 0;
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++)
        b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double t = now_ms() - t0;
        if (r > 0 && t < best) best = t;
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    return 2.0 * M * N * K / (best * 1e6);
}

/* Floating-point operations of one encoder window (products only). */
static double encoder_gflop(const tolk_hparams *hp) {
    double d = hp->n_audio_state, T = hp->n_audio_ctx, m = hp->n_mels;
    double f = 2 * (2 * T) * d * m * 3 + 2 * T * d * d * 3;
    f += hp->n_audio_layer *
         (2 * T * d * 3 * d + 2 * T * d * d + 2 * 2 * T * d * 4 * d + 2 * 2 * T * T * d);
    return f / 1e9;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)(g_rng >> 40) / (float)(1 << 24);
}

/* One configuration, run in a child process; prints one table row. */
static int run_config(const char *model_dir, const char *model, int keep_f16, int threads,
                      int reps) {
    tolk_ctx_params p = tolk_ctx_default_params();
    p.n_threads = threads;
    p.device = TOLK_DEVICE_CPU;
    tolk_ctx *ctx = NULL;
    tolk_weights *w = NULL;
    tolk_net *net = NULL;
    tolk_kvcache *kv = NULL;
    if (tolk_ctx_new(&p, &ctx) != TOLK_OK) return 1;
    if (tolk_weights_load(ctx, model_dir, 1, &w) != TOLK_OK) {
        fprintf(stderr, "%s: %s\n", model, tolk_ctx_last_error(ctx));
        return 1;
    }
    tolk_net_params np = {.keep_f16 = keep_f16};
    if (tolk_net_new_ex(ctx, w, &np, &net) != TOLK_OK) {
        fprintf(stderr, "%s: %s\n", model, tolk_ctx_last_error(ctx));
        return 1;
    }
    const tolk_hparams *hp = tolk_net_hparams(net);
    size_t melsz = (size_t)hp->n_mels * 2 * (size_t)hp->n_audio_ctx;
    size_t encsz = (size_t)hp->n_audio_ctx * (size_t)hp->n_audio_state;
    float *mel = malloc(melsz * sizeof(float)), *enc = malloc(encsz * sizeof(float));
    float *logits = malloc(5 * (size_t)hp->n_vocab * sizeof(float));
    if (!mel || !enc || !logits) return 1;
    for (size_t i = 0; i < melsz; i++)
        mel[i] = frand() * 2.0f - 1.0f;
    double enc_ms = 1e30, kv_ms = 1e30, dec_ms[2] = {1e30, 1e30};
    for (int r = 0; r < reps + 1; r++) { /* first run is the warm-up */
        double t0 = now_ms();
        if (tolk_net_encode(ctx, net, mel, 1, enc) != TOLK_OK) goto fail;
        double t1 = now_ms();
        if (r > 0 && t1 - t0 < enc_ms) enc_ms = t1 - t0;
    }
    if (tolk_kvcache_new(ctx, net, 5, hp->n_text_ctx, 1, &kv) != TOLK_OK) goto fail;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_ms();
        if (tolk_kvcache_set_window(ctx, net, kv, 0, enc) != TOLK_OK) goto fail;
        double t1 = now_ms();
        if (r > 0 && t1 - t0 < kv_ms) kv_ms = t1 - t0;
    }
    const int batches[2] = {1, 5};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        for (int r = 0; r < reps; r++) {
            int seqs[5], nt[5], toks[5][4];
            const int *tp[5];
            for (int s = 0; s < B; s++) {
                tolk_kvcache_reset(NULL, kv, s, 0);
                seqs[s] = s;
                nt[s] = 4;
                for (int j = 0; j < 4; j++)
                    toks[s][j] = (int)(frand() * 1000.0f) + 200;
                tp[s] = toks[s];
            }
            if (tolk_net_decode(ctx, net, kv, seqs, B, tp, nt, logits) != TOLK_OK) goto fail;
            for (int s = 0; s < B; s++)
                nt[s] = 1;
            double t0 = now_ms();
            for (int step = 0; step < STEPS; step++) {
                for (int s = 0; s < B; s++)
                    toks[s][0] = (int)(frand() * 1000.0f) + 200;
                if (tolk_net_decode(ctx, net, kv, seqs, B, tp, nt, logits) != TOLK_OK) goto fail;
            }
            double ms = (now_ms() - t0) / STEPS;
            if (ms < dec_ms[bi]) dec_ms[bi] = ms;
        }
    }
    double gf = encoder_gflop(hp), cal = sgemm_gflops(threads);
    printf("| %-8s | %-3s | %7d | %10.1f | %9.1f | %10.2f | %10.2f | %8.0f | %8.0f | %5.0f | "
           "%6.1f | %5.0f |\n",
           model, keep_f16 ? "f16" : "f32", threads, enc_ms, kv_ms, dec_ms[0], dec_ms[1],
           (double)tolk_net_mem_bytes(net) / 1048576.0, peak_rss_mb(), cal, gf,
           gf / (enc_ms / 1e3));
    fflush(stdout);
    tolk_kvcache_free(kv);
    tolk_net_free(net);
    tolk_weights_free(w);
    tolk_ctx_free(ctx);
    free(mel), free(enc), free(logits);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", model, tolk_ctx_last_error(ctx));
    return 1;
}

int main(int argc, char **argv) {
    char models[256] = "tiny.en,base", threads[64] = "1,2", modes[64] = "f16,f32";
    int reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--models") == 0)
            snprintf(models, sizeof models, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            snprintf(threads, sizeof threads, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--modes") == 0)
            snprintf(modes, sizeof modes, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
    }
    const char *env = getenv("TOLK_MODELS"), *home = getenv("HOME");
    printf("bench_net: min of %d runs; decoder ms per step over %d steps after a 4-token prompt\n",
           reps, STEPS);
    printf("enc GFLOP: products of one window; enc GF/s: achieved; sgemm GF/s: one OpenBLAS sgemm "
           "[1500x512]x[512x2048] with its own threads, measured right after (the machine's "
           "state)\n");
    printf("| model    | wts | threads | enc ms/win | xkv ms/win | dec ms B=1 | dec ms B=5 | "
           "wts MiB  | peak RSS | sgemm GF/s | enc GFLOP | enc GF/s |\n");
    printf("|----------|-----|---------|------------|------------|------------|------------|"
           "----------|----------|-------|--------|-------|\n");
    fflush(stdout);
    char *save1 = NULL;
    for (char *m = strtok_r(models, ",", &save1); m; m = strtok_r(NULL, ",", &save1)) {
        char dir[1024];
        if (env)
            snprintf(dir, sizeof dir, "%s/%s", env, m);
        else
            snprintf(dir, sizeof dir, "%s/.cache/tolk/models/%s", home ? home : ".", m);
        if (access(dir, R_OK) != 0) {
            printf("| %-8s | (not installed: %s) |\n", m, dir);
            continue;
        }
        char mcopy[64];
        snprintf(mcopy, sizeof mcopy, "%s", modes);
        char *save2 = NULL;
        for (char *md = strtok_r(mcopy, ",", &save2); md; md = strtok_r(NULL, ",", &save2)) {
            char tcopy[64];
            snprintf(tcopy, sizeof tcopy, "%s", threads);
            char *save3 = NULL;
            for (char *t = strtok_r(tcopy, ",", &save3); t; t = strtok_r(NULL, ",", &save3)) {
                pid_t pid = fork();
                if (pid == 0) _exit(run_config(dir, m, strcmp(md, "f32") != 0, atoi(t), reps));
                int status = 0;
                if (pid > 0) waitpid(pid, &status, 0);
            }
        }
    }
    return 0;
}

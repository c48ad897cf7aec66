/*
 * bench_gemm.c — GFLOP/s of the bf16 GEMM (gemm_bf16.c, Y = X W^T + bias)
 * against OpenBLAS cblas_sgemm (NoTrans, Trans) on the Whisper base
 * shapes, at 1 and 2 threads. Measures, never asserts. Prints the best of
 * several repetitions (the least disturbed by other load).
 *
 *   bench_gemm [reps]     (default 5)
 *
 * Columns: wall-clock GFLOP/s, and "cpu" GFLOP/s = flops / (CPU seconds
 * of all threads / threads), which leaves out time the OS gave to other
 * processes (the shared development machine is often overloaded).
 */
#include "gemm_cpu.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static double clk(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) {
    return clk(CLOCK_MONOTONIC);
}
/* CPU seconds of all threads: under heavy load from other processes this
 * is far steadier than wall time (it leaves out time spent descheduled). */
static double cpu(void) {
    return clk(CLOCK_PROCESS_CPUTIME_ID);
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

typedef struct {
    const char *name;
    int M, N, K;
} shape;

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1) reps = 1;
    static const shape shapes[] = {
        {"enc qkv/out 1500x512x512", 1500, 512, 512},
        {"enc fused qkv 1500x1536x512", 1500, 1536, 512},
        {"enc fc1 1500x2048x512", 1500, 2048, 512},
        {"enc fc2 1500x512x2048", 1500, 512, 2048},
        {"dec logits M=1 51865x512", 1, 51865, 512},
        {"dec logits M=5 51865x512", 5, 51865, 512},
        {"dec fc1 M=5 2048x512", 5, 2048, 512},
    };
    printf("bf16 path: %s\n", tolk_gemm_bf16_native() ? "AVX-512 BF16" : "portable (sgemm)");
    { /* one-time packing cost: the logits matrix from float16, as at model load */
        int N = 51865, K = 512;
        size_t pb = 0, n = (size_t)N * K;
        uint16_t *h = malloc(n * 2);
        void *p = NULL;
        if (tolk_gemm_bf16_packed_size(N, K, &pb) == TOLK_OK)
            p = aligned_alloc(64, (pb + 63) / 64 * 64);
        if (!h || !p) return 1;
        for (size_t i = 0; i < n; i++)
            h[i] = (uint16_t)(0x3000u + (i * 2654435761u >> 20) % 0x1000u);
        double c0 = cpu();
        tolk_gemm_bf16_pack(NULL, h, TOLK_GEMM_SRC_F16, N, K, p, pb);
        printf("pack f16 -> bf16, 51865 x 512: %.1f ms CPU\n", (cpu() - c0) * 1e3);
        free(h);
        free(p);
    }
    printf("%-30s %3s %9s %8s %8s | %9s %8s %8s | %7s %7s\n", "shape (M x N x K)", "thr", "bf16 ms",
           "GF/s", "cpuGF/s", "sgemm ms", "GF/s", "cpuGF/s", "x wall", "x cpu");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        size_t xn = (size_t)sh->M * sh->K, wn = (size_t)sh->N * sh->K, yn = (size_t)sh->M * sh->N;
        size_t pb = 0;
        if (tolk_gemm_bf16_packed_size(sh->N, sh->K, &pb) != TOLK_OK) return 1;
        float *X = malloc(xn * 4), *W = malloc(wn * 4), *B = malloc((size_t)sh->N * 4);
        float *Y = malloc(yn * 4);
        void *P = aligned_alloc(64, (pb + 63) / 64 * 64);
        if (!X || !W || !B || !Y || !P) return 1;
        fill(X, xn, 1);
        fill(W, wn, 2);
        fill(B, (size_t)sh->N, 3);
        if (tolk_gemm_bf16_pack(NULL, W, TOLK_GEMM_SRC_F32, sh->N, sh->K, P, pb) != TOLK_OK)
            return 1;
        double flops = 2.0 * sh->M * (double)sh->N * sh->K;
        /* inner repetitions so one timed run lasts ~50 ms at least */
        int inner = (int)(5e9 / flops);
        if (inner < 1) inner = 1;
        for (int thr = 1; thr <= 2; thr++) {
            double best_b = 1e30, best_s = 1e30, cpu_b = 1e30, cpu_s = 1e30;
            openblas_set_num_threads(thr);
            for (int r = 0; r < reps + 1; r++) { /* the first run warms up */
                double c0 = cpu(), t0 = now();
                for (int i = 0; i < inner; i++)
                    tolk_gemm_bf16(NULL, X, sh->M, sh->K, sh->K, P, sh->N, B, Y, sh->N, thr);
                double c1 = cpu(), t1 = now();
                for (int i = 0; i < inner; i++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh->M, sh->N, sh->K, 1.0f,
                                X, sh->K, W, sh->K, 0.0f, Y, sh->N);
                double c2 = cpu(), t2 = now();
                if (r == 0) continue;
                if ((t1 - t0) / inner < best_b) best_b = (t1 - t0) / inner;
                if ((t2 - t1) / inner < best_s) best_s = (t2 - t1) / inner;
                if ((c1 - c0) / inner / thr < cpu_b) cpu_b = (c1 - c0) / inner / thr;
                if ((c2 - c1) / inner / thr < cpu_s) cpu_s = (c2 - c1) / inner / thr;
            }
            printf("%-30s %3d %9.3f %8.1f %8.1f | %9.3f %8.1f %8.1f | %7.2f %7.2f\n", sh->name, thr,
                   best_b * 1e3, flops / best_b * 1e-9, flops / cpu_b * 1e-9, best_s * 1e3,
                   flops / best_s * 1e-9, flops / cpu_s * 1e-9, best_s / best_b, cpu_s / cpu_b);
            fflush(stdout);
        }
        free(X);
        free(W);
        free(B);
        free(Y);
        free(P);
    }
    return 0;
}

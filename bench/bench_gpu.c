/*
 * bench_gpu.c — GPU timings (measure only, never assert): every kernel in
 * kernels/ at Whisper shapes (base and large-v3 widths, a 1500-frame
 * window, a 5-sequence decoder step, a 51865-token vocabulary), then
 * model-level estimates through the CUDA backend op table (src/cuda_backend.c):
 * one encoder window and one batched decoder step built from the same ops
 * net.c uses, with random weights of the real shapes (one block's weights
 * reused for every layer: same cost, less memory), in float16-weight and
 * exact float32 modes. Attention rows compare the float32 and tensor-core
 * (tc f16 / bf16) flash kernels on the encoder window, decoder
 * cross-attention at B = 1/5/8/32 with and without the split-KV workspace,
 * and the device-descriptor (CUDA-graph) variant. Times are CUDA-event
 * averages on the calling thread's stream after 3 warm-up runs.
 *
 * Usage: bench_gpu [iterations]   (default 20)
 *        bench_gpu --census base|large-v3 [--dry] [--kv32] [--gelu-tanh] [--no-norm-fuse]
 *        bench_gpu --graph-check base|large-v3 [--gelu-tanh] [--no-norm-fuse]
 *        bench_gpu --attn base|large-v3 [iterations]
 * Without a CUDA device (or in a CPU-only build) prints "no CUDA device"
 * and exits 0.
 *
 * --census: the census of the real engine path (net.c / net_decode.c on a
 * random-weight network of the shape, built in memory, FP16 mode): the
 * CUDA backend counts (TOLK_CUDA_CENSUS, backend.h's census) the kernels,
 * graph nodes, global-memory bytes and flops of one encoder window (with
 * its cross-attention K/V) and of one captured single-token decoder step at
 * batch 1 (greedy), 5 (beams of one window, k = 6) and 32 (32 windows),
 * per kernel kind, with totals per step and per layer, and a paper estimate
 * of each row's time on an H100 SXM (max of bytes / 2.8 TB/s and flops /
 * the kind's achievable rate, plus 2 us per kernel in a graph / 3 us per
 * eager launch; bench/README.md). --dry counts without running anything
 * (large-v3 on the CPU emulator); without it everything also runs. The
 * cross-attention K/V are float16 as in the engine's FP16 mode
 * (TOLK_KV_AUTO); --kv32 counts them in float32; --gelu-tanh counts fc1
 * with its GELU in the product's epilogue (TOLK_GELU_TANH); --no-norm-fuse
 * runs each LayerNorm of a few-row step apart from the product reading it
 * (tolk_net_params.no_norm_fuse; default: one norm_linear kernel).
 *
 * --graph-check: on the same random network, 16 single-token steps of
 * batch 1 (greedy) and batch 5 (one window, k = 6) with CUDA graphs and
 * again op by op; prints the graphs captured / replayed and whether the
 * selected tokens are identical (exit status 1 when not), and the wall time
 * per step of each (the decoder step's latency, host work included).
 *
 * --attn: the encoder's self-attention alone (T = 1500, the shape's heads,
 * d_head 64) on tensor cores from float32 q/k/v (the engine today) and from
 * float16 q/k/v (cp.async path), for ncu / nsys and a quick timing.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "backend.h"
#include "cuda_util.h"

#include "../kernels/add.h"
#include "../kernels/attention.h"
#include "../kernels/conv1d.h"
#include "../kernels/convert.h"
#include "../kernels/gelu.h"
#include "../kernels/gemm.h"
#include "../kernels/layernorm.h"
#include "../kernels/norm_linear.h"
#include "../kernels/select.h"

#include <cuda_runtime_api.h>

static int g_iters = 20;
static cudaEvent_t g_e0, g_e1;
#define S TOLK_CU_STREAM

/* Print one row: name, ms, and GFLOP/s and GB/s when flops/bytes > 0. */
static void row(const char *name, double ms, double flops, double bytes) {
    printf("%-52s %10.3f ms", name, ms);
    if (flops > 0) printf(" %9.1f GFLOP/s", flops / ms / 1e6);
    if (bytes > 0) printf(" %8.1f GB/s", bytes / ms / 1e6);
    printf("\n");
    fflush(stdout);
}

/* Time stmt (an expression returning 0 on success) g_iters times. */
#define TIME(name, flops, bytes, stmt)                                                             \
    do {                                                                                           \
        int rc_ = 0;                                                                               \
        for (int w_ = 0; w_ < 3 && !rc_; w_++)                                                     \
            rc_ = (stmt);                                                                          \
        cudaEventRecord(g_e0, (cudaStream_t)S);                                                    \
        for (int i_ = 0; i_ < g_iters && !rc_; i_++)                                               \
            rc_ = (stmt);                                                                          \
        cudaEventRecord(g_e1, (cudaStream_t)S);                                                    \
        cudaError_t e_ = cudaEventSynchronize(g_e1);                                               \
        float ms_ = 0;                                                                             \
        cudaEventElapsedTime(&ms_, g_e0, g_e1);                                                    \
        if (rc_ || e_ != cudaSuccess) {                                                            \
            printf("%-52s FAILED (code %d, %s)\n", name, rc_, cudaGetErrorString(e_));             \
            return 1;                                                                              \
        }                                                                                          \
        row(name, ms_ / g_iters, flops, bytes);                                                    \
    } while (0)

/* Device buffer of n floats (or 2n bytes for half) with random content. */
static void *dev_rand(size_t n, int dt, float lo, float hi) {
    const size_t es = dt == TOLK_CU_F32 ? 4 : 2;
    float *h = malloc(n * sizeof *h);
    void *d = NULL, *dh = NULL;
    if (!h || cudaMalloc(&d, n * es) != cudaSuccess) {
        free(h);
        return NULL;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
    if (dt == TOLK_CU_F32) {
        cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice);
    } else if (cudaMalloc(&dh, n * 4) == cudaSuccess) {
        cudaMemcpy(dh, h, n * 4, cudaMemcpyHostToDevice);
        tolk_cu_convert(d, dt, (long long)n, dh, TOLK_CU_F32, (long long)n, 1, (long long)n, NULL);
        cudaDeviceSynchronize();
        cudaFree(dh);
    }
    free(h);
    return d;
}

typedef struct model_dims {
    const char *name;
    int d, heads, enc_layers, dec_layers, n_vocab, n_mels;
} model_dims;

static const model_dims MODELS[] = {{"base", 512, 8, 6, 6, 51865, 80},
                                    {"large-v3", 1280, 20, 32, 32, 51866, 128}};

/* ------------------------------------------------------------------------ */
/* Kernel-level timings                                                     */
/* ------------------------------------------------------------------------ */

static int bench_kernels(const model_dims *m, tolk_cu_gemm_ctx *g) {
    const long long T = 1500, d = m->d, B = 5, V = m->n_vocab;
    const int H = m->heads, dh = 64;
    char nm[128];
    printf("\n== kernels, %s (d %lld, %d heads) ==\n", m->name, d, H);
    float *x = dev_rand((size_t)(T * 4 * d), TOLK_CU_F32, -1, 1);
    float *y = dev_rand((size_t)(T * 4 * d), TOLK_CU_F32, -1, 1);
    float *gam = dev_rand((size_t)(4 * d), TOLK_CU_F32, 0.5f, 1.5f);
    void *xh = dev_rand((size_t)(T * 4 * d), TOLK_CU_F16, -1, 1);
    void *w32 = dev_rand((size_t)(4 * d * d), TOLK_CU_F32, -0.05f, 0.05f);
    void *w16 = dev_rand((size_t)(4 * d * d), TOLK_CU_F16, -0.05f, 0.05f);
    void *qkv16 = dev_rand((size_t)(T * 3 * d), TOLK_CU_F16, -1, 1);
    void *o16 = dev_rand((size_t)(T * d), TOLK_CU_F16, -1, 1);
    void *tok16 = dev_rand((size_t)(V * d), TOLK_CU_F16, -0.05f, 0.05f);
    float *logit = dev_rand((size_t)(B * V), TOLK_CU_F32, -10, 10);
    void *ws = NULL;
    int *idx = NULL;
    cudaMalloc(&ws, 32u << 20);
    cudaMalloc((void **)&idx, (size_t)B * 16 * sizeof(int));
    if (!x || !y || !gam || !xh || !w32 || !w16 || !qkv16 || !o16 || !tok16 || !logit || !ws ||
        !idx) {
        printf("out of device memory\n");
        return 1;
    }
    const double act = (double)T * d * 4;

    snprintf(nm, sizeof nm, "layernorm f32 [%lld, %lld]", T, d);
    TIME(nm, 0, 2 * act, tolk_cu_layernorm(y, 0, d, x, 0, d, T, (int)d, gam, gam, 1e-5f, S));
    snprintf(nm, sizeof nm, "layernorm f32->f16 [%lld, %lld]", T, d);
    TIME(nm, 0, 1.5 * act, tolk_cu_layernorm(xh, 1, d, x, 0, d, T, (int)d, gam, gam, 1e-5f, S));
    snprintf(nm, sizeof nm, "bias_gelu f32 [%lld, %lld]", T, 4 * d);
    TIME(nm, 0, 8 * act, tolk_cu_bias_gelu(y, 4 * d, x, 4 * d, T, (int)(4 * d), gam, 0, S));
    snprintf(nm, sizeof nm, "add (residual) f32 [%lld, %lld]", T, d);
    TIME(nm, 0, 3 * act, tolk_cu_add(y, y, x, T * d, NULL, 0, T * d, 0, S));
    snprintf(nm, sizeof nm, "convert f32->f16 [%lld, %lld]", T, d);
    TIME(nm, 0, 1.5 * act, tolk_cu_convert(xh, 1, d, x, 0, d, T, d, S));

    /* products of one encoder layer's shapes */
    const double f_qkv = 2.0 * T * d * 3 * d;
    snprintf(nm, sizeof nm, "gemm qkv f32 exact [%lld,%lld]x[%lld,%lld]^T", T, d, 3 * d, d);
    TIME(nm, f_qkv, 0,
         tolk_cu_gemm(g, y, 0, 3 * d, x, 0, d, w32, 0, d, T, 3 * d, d, 1, 0, gam, 0, ws, 32u << 20,
                      S));
    snprintf(nm, sizeof nm, "gemm qkv f32 TF32 [%lld,%lld]x[%lld,%lld]^T", T, d, 3 * d, d);
    TIME(nm, f_qkv, 0,
         tolk_cu_gemm(g, y, 0, 3 * d, x, 0, d, w32, 0, d, T, 3 * d, d, 1, 0, gam, TOLK_CU_GEMM_TF32,
                      ws, 32u << 20, S));
    snprintf(nm, sizeof nm, "gemm qkv f16->f32 [%lld,%lld]x[%lld,%lld]^T", T, d, 3 * d, d);
    TIME(nm, f_qkv, 0,
         tolk_cu_gemm(g, y, 0, 3 * d, xh, 1, d, w16, 1, d, T, 3 * d, d, 1, 0, gam, 0, ws, 32u << 20,
                      S));
    snprintf(nm, sizeof nm, "gemm fc1 f16->f32 [%lld,%lld]x[%lld,%lld]^T", T, d, 4 * d, d);
    TIME(nm, 4 * f_qkv / 3, 0,
         tolk_cu_gemm(g, y, 0, 4 * d, xh, 1, d, w16, 1, d, T, 4 * d, d, 1, 0, gam, 0, ws, 32u << 20,
                      S));
    snprintf(nm, sizeof nm, "gemm qkv tiled fallback f16 [%lld,%lld]x[%lld,%lld]^T", T, d, 3 * d,
             d);
    TIME(nm, f_qkv, 0,
         tolk_cu_gemm(g, y, 0, 3 * d, xh, 1, d, w16, 1, d, T, 3 * d, d, 1, 0, gam,
                      TOLK_CU_GEMM_FALLBACK, NULL, 0, S));
    snprintf(nm, sizeof nm, "gemm decoder fc1 f16 [%lld,%lld]x[%lld,%lld]^T", B, d, 4 * d, d);
    TIME(nm, 2.0 * B * d * 4 * d, 4.0 * d * 4 * d,
         tolk_cu_gemm(g, y, 0, 4 * d, xh, 1, d, w16, 1, d, B, 4 * d, d, 1, 0, gam, 0, ws, 32u << 20,
                      S));
    snprintf(nm, sizeof nm, "gemm logits f16 [%lld,%lld]x[%lld,%lld]^T", B, d, V, d);
    TIME(nm, 2.0 * B * d * V, 2.0 * V * d,
         tolk_cu_gemm(g, logit, 0, V, xh, 1, d, tok16, 1, d, B, V, d, 1, 0, NULL, 0, ws, 32u << 20,
                      S));

    /* the decoder step's LayerNorm -> product pairs at 1, 5 and 16 rows:
     * layernorm_h then cuBLASLt (two launches) against norm_linear (one;
     * the default up to 16 rows) — qkv, fc1 + exact GELU (float16 out),
     * logits */
    static const int nl_rows[3] = {1, 5, 16};
    static const char *const nl_nm[3] = {"qkv", "fc1+gelu", "logits"};
    for (int r = 0; r < 3; r++)
        for (int p = 0; p < 3; p++) {
            const long long Mr = nl_rows[r], N = p == 0 ? 3 * d : p == 1 ? 4 * d : V;
            const void *wp = p == 2 ? tok16 : w16;
            const float *bp = p == 2 ? NULL : gam;
            const double wb = 2.0 * N * d, fl = 2.0 * Mr * N * d;
            snprintf(nm, sizeof nm, "layernorm_h + gemm %s [%lld,%lld]x[%lld,%lld]^T", nl_nm[p], Mr,
                     d, N, d);
            TIME(nm, fl, wb,
                 (tolk_cu_layernorm(xh, 1, d, x, 0, d, Mr, (int)d, gam, gam, 1e-5f, S) ||
                  tolk_cu_gemm(g, y, p == 1 ? 1 : 0, N, xh, 1, d, wp, 1, d, Mr, N, d, 1, 0,
                               p == 1 ? NULL : bp, 0, ws, 32u << 20, S) ||
                  (p == 1 && tolk_cu_bias_gelu(y, N, y, N, Mr, (int)N, gam, 1, S))));
            snprintf(nm, sizeof nm, "norm_linear %s [%lld,%lld]x[%lld,%lld]^T", nl_nm[p], Mr, d, N,
                     d);
            TIME(nm, fl, wb,
                 tolk_cu_norm_linear(y, p == 1 ? 1 : 0, N, x, d, (int)Mr, (int)d, gam, gam, 1e-5f,
                                     wp, (int)N, bp, p == 1, S));
        }

    /* conv stem: conv1 (n_mels -> d, 3000 frames), conv2 (d -> d, stride 2) */
    snprintf(nm, sizeof nm, "im2col conv2 f32->f16 [%lld, %lld] s2", 2 * T, d);
    TIME(nm, 0, 2 * T * d * 4.0 + T * 3 * d * 2.0,
         tolk_cu_im2col_k3(qkv16, 1, x, 0, TOLK_CU_CONV_TC, 1, (int)d, (int)(2 * T), 2, S));
    snprintf(nm, sizeof nm, "gemm conv2 f16 [%lld,%lld]x[%lld,%lld]^T", T, 3 * d, d, 3 * d);
    TIME(nm, 2.0 * T * 3 * d * d, 0,
         tolk_cu_gemm(g, y, 0, d, qkv16, 1, 3 * d, w16, 1, 3 * d, T, d, 3 * d, 1, 0, gam, 0, ws,
                      32u << 20, S));

    /* attention: encoder window (flash: float32 and tensor cores), decoder
     * self and cross (rows; cross also split-KV), and the device-descriptor
     * variant a CUDA graph would replay */
    const double f_att = 4.0 * T * T * dh * H;
    static const char *const tc_nm[] = {"f32", "tc f16", "tc bf16"};
    for (int dt = 0; dt < 2; dt++) {
        void *q = dt ? qkv16 : (void *)y;
        const size_t es = dt ? 2 : 4;
        tolk_cu_attn_seq s = {
            q, (char *)q + d * es, (char *)q + 2 * d * es, dt ? o16 : (void *)x, (int)T, (int)T, 0,
            0};
        for (int tc = 0; tc < 3; tc++) {
            snprintf(nm, sizeof nm, "attention encoder %s T=%lld H=%d (flash %s)",
                     dt ? "f16" : "f32", T, H, tc_nm[tc]);
            TIME(nm, f_att, 0,
                 tolk_cu_attention_ex(&s, 1, H, dh, 3 * d, 3 * d, d, 0.125f, dt, tc, NULL, 0, S));
        }
    }
    tolk_cu_attn_seq ds[32], cs[32];
    for (int i = 0; i < 32; i++) {
        /* self: 1 new token at position 223 over a [448, 2d] cache (B <= 5);
         * cross: 1500 keys shared by the batch */
        if (i < 5)
            ds[i] = (tolk_cu_attn_seq){y + (size_t)i * 2 * d,
                                       x + (size_t)i * 448 * 2 * d,
                                       x + (size_t)i * 448 * 2 * d + d,
                                       y + (size_t)(40 + i) * 2 * d,
                                       1,
                                       224,
                                       1,
                                       223};
        cs[i] = (tolk_cu_attn_seq){
            y + (size_t)i * 2 * d, x, x + d, y + (size_t)(40 + i) * 2 * d, 1, 1500, 0, 0};
    }
    snprintf(nm, sizeof nm, "attention decoder self B=5 n_kv=224 H=%d", H);
    TIME(nm, 4.0 * 5 * 224 * dh * H, 5.0 * 224 * 2 * d * 4,
         tolk_cu_attention(ds, 5, H, dh, 2 * d, 2 * d, 2 * d, 0.125f, 0, S));
    snprintf(nm, sizeof nm, "attention decoder self B=5 n_kv=224 H=%d split", H);
    TIME(nm, 4.0 * 5 * 224 * dh * H, 5.0 * 224 * 2 * d * 4,
         tolk_cu_attention_ex(ds, 5, H, dh, 2 * d, 2 * d, 2 * d, 0.125f, 0, 0, ws, 32u << 20, S));
    const int cross_b[] = {1, 5, 8, 32};
    for (int bi = 0; bi < 4; bi++) {
        const int Bc = cross_b[bi];
        const size_t wsb = tolk_cu_attention_ws_bytes(Bc, H, dh, 1500);
        const double cf = 4.0 * Bc * 1500 * dh * H, cb = 1500.0 * 2 * d * 4;
        snprintf(nm, sizeof nm, "attention decoder cross B=%d n_kv=1500 H=%d", Bc, H);
        TIME(nm, cf, cb, tolk_cu_attention(cs, Bc, H, dh, 2 * d, 2 * d, 2 * d, 0.125f, 0, S));
        snprintf(nm, sizeof nm, "attention decoder cross B=%d split (ws %zu B)", Bc, wsb);
        TIME(nm, cf, cb,
             tolk_cu_attention_ex(cs, Bc, H, dh, 2 * d, 2 * d, 2 * d, 0.125f, 0, 0, ws, wsb, S));
    }
    {
        /* descriptors: B = 8 rows q[i] (stride 2d), cross keys shared (kv_row
         * 0) or per-sequence self caches [320] at position 223 */
        tolk_cu_attn_desc hd[8], hs[8];
        for (int i = 0; i < 8; i++) {
            hd[i] = (tolk_cu_attn_desc){i, 0, 1, 1500, 0, 0};
            hs[i] = (tolk_cu_attn_desc){i, i * 320, 1, 224, 1, 223};
        }
        tolk_cu_attn_desc *dd = NULL;
        if (cudaMalloc((void **)&dd, 16 * sizeof *dd) != cudaSuccess) {
            printf("out of device memory\n");
            return 1;
        }
        cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
        cudaMemcpy(dd + 8, hs, sizeof hs, cudaMemcpyHostToDevice);
        const size_t wsb = tolk_cu_attention_ws_bytes(8, H, dh, 1500);
        snprintf(nm, sizeof nm, "attention desc cross B=8 n_kv=1500 H=%d", H);
        TIME(nm, 4.0 * 8 * 1500 * dh * H, 1500.0 * 2 * d * 4,
             tolk_cu_attention_desc(y, 2 * d, x, x + d, 2 * d, y + 40 * 2 * d, 2 * d, dd, 8, 1,
                                    1500, H, dh, 0.125f, 0, 0, NULL, 0, NULL, S));
        snprintf(nm, sizeof nm, "attention desc cross B=8 n_kv=1500 H=%d split", H);
        TIME(nm, 4.0 * 8 * 1500 * dh * H, 1500.0 * 2 * d * 4,
             tolk_cu_attention_desc(y, 2 * d, x, x + d, 2 * d, y + 40 * 2 * d, 2 * d, dd, 8, 1,
                                    1500, H, dh, 0.125f, 0, 0, ws, wsb, NULL, S));
        snprintf(nm, sizeof nm, "attention desc self B=8 n_kv=224 (max 320) H=%d split", H);
        TIME(nm, 4.0 * 8 * 224 * dh * H, 8.0 * 224 * 2 * d * 4,
             tolk_cu_attention_desc(y, 2 * d, x, x + d, 2 * d, y + 40 * 2 * d, 2 * d, dd + 8, 8, 1,
                                    320, H, dh, 0.125f, 0, 0, ws,
                                    tolk_cu_attention_ws_bytes(8, H, dh, 320), NULL, S));
        tolk_cu_attn_desc he = {0, 0, (int)T, (int)T, 0, 0};
        cudaMemcpy(dd, &he, sizeof he, cudaMemcpyHostToDevice);
        snprintf(nm, sizeof nm, "attention desc encoder f32 T=%lld H=%d (flash tc f16)", T, H);
        TIME(nm, f_att, 0,
             tolk_cu_attention_desc(y, 3 * d, y + d, y + 2 * d, 3 * d, x, d, dd, 1, (int)T, (int)T,
                                    H, dh, 0.125f, 0, TOLK_CU_F16, NULL, 0, NULL, S));
        cudaFree(dd);
    }

    /* the decode step's selection on [5, V]: timestamp rule, log-softmax,
     * argmax (greedy) / top-6 (beam 5) */
    const double lb = (double)B * V * 4;
    const int ts_begin = (int)V - 1501;
    TIME("select argmax [5, vocab]", 0, lb,
         tolk_cu_select(logit, V, (int)B, (int)V, NULL, NULL, ts_begin, 1, idx, gam, S));
    TIME("select top-6 [5, vocab]", 0, lb,
         tolk_cu_select(logit, V, (int)B, (int)V, NULL, NULL, ts_begin, 6, idx, gam, S));

    void *bufs[] = {x, y, gam, xh, w32, w16, qkv16, o16, tok16, logit, ws, idx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        cudaFree(bufs[i]);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Model-level estimates through the backend op table                       */
/* ------------------------------------------------------------------------ */

typedef struct htensor {
    tolk_tensor t;
    uint16_t *data;
} htensor;

/* A host float16 tensor [r, c] (c = 0: a vector) of small random values. */
static int ht_make(htensor *h, int64_t r, int64_t c) {
    memset(h, 0, sizeof *h);
    const size_t n = (size_t)r * (size_t)(c > 0 ? c : 1);
    h->data = malloc(n * 2);
    if (!h->data) return 0;
    uint64_t s = 88172645463325252ull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h->data[i] = tolk_f32_to_f16(((float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f) * 0.1f);
    }
    h->t.name = "bench";
    h->t.dtype = TOLK_DT_F16;
    h->t.ndim = c > 0 ? 2 : 1;
    h->t.shape[0] = r;
    h->t.shape[1] = c;
    h->t.data = h->data;
    return 1;
}

typedef struct block_w {
    tolk_bweight qkv, out, cq, ckv, cout, fc1, fc2;
    float *b3d, *bd, *b4d, *ln_g, *ln_b;
} block_w;

static int run_encoder(tolk_ctx *ctx, tolk_backend *be, const model_dims *m, block_w *w,
                       tolk_bweight *conv1, tolk_bweight *conv2, float *mel, float *ws) {
    const size_t T = 1500, d = (size_t)m->d;
    const int H = m->heads, dh = 64;
    float *x = ws, *h = x + T * d, *qkv = h + T * d, *att = qkv + T * 3 * d, *mlp = att + T * d;
    tolk_status st =
        be->conv1d(ctx, be, mlp, mel, TOLK_CONV_IN_CT, (size_t)m->n_mels, 2 * T, 1, conv1, w->bd);
    if (!st) st = be->bias_gelu(ctx, be, mlp, d, 2 * T, d, w->bd);
    if (!st) st = be->conv1d(ctx, be, x, mlp, TOLK_CONV_IN_TC, d, 2 * T, 2, conv2, w->bd);
    if (!st) st = be->bias_gelu(ctx, be, x, d, T, d, w->bd);
    for (int l = 0; l < m->enc_layers && !st; l++) {
        tolk_attn_seq s = {qkv, qkv + d, qkv + 2 * d, att, (int)T, (int)T, 0, 0};
        st = be->layernorm(ctx, be, h, x, T, d, w->ln_g, w->ln_b, 1e-5f);
        if (!st) st = be->linear(ctx, be, qkv, 3 * d, h, d, T, &w->qkv, w->b3d, 0);
        if (!st) st = be->attention(ctx, be, &s, 1, H, dh, 3 * d, 3 * d, d, 0.125f, 0);
        if (!st) st = be->linear(ctx, be, x, d, att, d, T, &w->out, w->bd, 1);
        if (!st) st = be->layernorm(ctx, be, h, x, T, d, w->ln_g, w->ln_b, 1e-5f);
        if (!st) st = be->linear(ctx, be, mlp, 4 * d, h, d, T, &w->fc1, NULL, 0);
        if (!st) st = be->bias_gelu(ctx, be, mlp, 4 * d, T, 4 * d, w->b4d);
        if (!st) st = be->linear(ctx, be, x, d, mlp, 4 * d, T, &w->fc2, w->bd, 1);
    }
    if (!st) st = be->layernorm(ctx, be, h, x, T, d, w->ln_g, w->ln_b, 1e-5f);
    return (int)st;
}

/* One decoder step of B sequences at position pos (self K/V in a
 * [B, 448, 2d] cache per layer, reused), cross K/V [1500, 2d]. didx: device
 * int32 [3 * 16] for the step's token ids, positions and cache rows (one
 * upload per step, as net_decode.c does). */
static int run_decoder(tolk_ctx *ctx, tolk_backend *be, const model_dims *m, block_w *w,
                       tolk_bweight *tok, float *pos_emb, float *cache, float *cross, float *ws,
                       float *logits, int *didx, int B, int pos) {
    const size_t d = (size_t)m->d;
    const int H = m->heads, dh = 64;
    float *x = ws, *h = x + (size_t)B * d, *qkv = h + (size_t)B * d, *att = qkv + (size_t)B * 3 * d;
    float *mlp = att + (size_t)B * d;
    int hidx[3 * 16]; /* ids, positions, cache rows */
    for (int i = 0; i < B; i++)
        hidx[i] = 50257 + i, hidx[16 + i] = pos, hidx[32 + i] = i * 448 + pos;
    tolk_status st = be->upload(ctx, be, didx, hidx, sizeof hidx);
    if (!st) st = be->embed_rows(ctx, be, x, tok, didx, didx + 16, (size_t)B, pos_emb, 448);
    tolk_attn_seq s[16];
    for (int l = 0; l < m->dec_layers && !st; l++) {
        st = be->layernorm(ctx, be, h, x, (size_t)B, d, w->ln_g, w->ln_b, 1e-5f);
        if (!st) st = be->linear(ctx, be, qkv, 3 * d, h, d, (size_t)B, &w->qkv, w->b3d, 0);
        if (!st)
            st = be->copy_rows(ctx, be, cache, 2 * d, didx + 32, qkv + d, 3 * d, NULL, (size_t)B,
                               2 * d);
        for (int i = 0; i < B && !st; i++) {
            float *c = cache + (size_t)i * 448 * 2 * d;
            s[i] = (tolk_attn_seq){
                qkv + (size_t)i * 3 * d, c, c + d, att + (size_t)i * d, 1, pos + 1, 1, pos};
        }
        if (!st) st = be->attention(ctx, be, s, B, H, dh, 3 * d, 2 * d, d, 0.125f, 0);
        if (!st) st = be->linear(ctx, be, x, d, att, d, (size_t)B, &w->out, w->bd, 1);
        if (!st) st = be->layernorm(ctx, be, h, x, (size_t)B, d, w->ln_g, w->ln_b, 1e-5f);
        if (!st) st = be->linear(ctx, be, qkv, d, h, d, (size_t)B, &w->cq, w->bd, 0);
        for (int i = 0; i < B; i++)
            s[i] = (tolk_attn_seq){
                qkv + (size_t)i * d, cross, cross + d, att + (size_t)i * d, 1, 1500, 0, 0};
        if (!st) st = be->attention(ctx, be, s, B, H, dh, d, 2 * d, d, 0.125f, 0);
        if (!st) st = be->linear(ctx, be, x, d, att, d, (size_t)B, &w->cout, w->bd, 1);
        if (!st) st = be->layernorm(ctx, be, h, x, (size_t)B, d, w->ln_g, w->ln_b, 1e-5f);
        if (!st) st = be->linear(ctx, be, mlp, 4 * d, h, d, (size_t)B, &w->fc1, NULL, 0);
        if (!st) st = be->bias_gelu(ctx, be, mlp, 4 * d, (size_t)B, 4 * d, w->b4d);
        if (!st) st = be->linear(ctx, be, x, d, mlp, 4 * d, (size_t)B, &w->fc2, w->bd, 1);
    }
    if (!st) st = be->layernorm(ctx, be, h, x, (size_t)B, d, w->ln_g, w->ln_b, 1e-5f);
    if (!st) st = be->logits(ctx, be, logits, h, (size_t)B, tok);
    return (int)st;
}

static int bench_model(tolk_ctx *ctx, const model_dims *m, int keep_f16) {
    const int64_t d = m->d, V = m->n_vocab;
    tolk_backend_params bp = {.keep_f16 = keep_f16};
    tolk_backend *be = NULL;
    if (tolk_backend_cuda_new(ctx, &bp, &be)) {
        printf("cuda backend: %s\n", tolk_ctx_last_error(ctx));
        return 1;
    }
    printf("\n== model level via the backend, %s, %s weights ==\n", m->name,
           keep_f16 ? "float16" : "float32 (exact)");
    htensor hq, hdd, hfc1, hfc2, hc1, hc2, htok, hkv, hv4, hv3, hv;
    int ok = ht_make(&hq, 3 * d, d) && ht_make(&hdd, d, d) && ht_make(&hfc1, 4 * d, d) &&
             ht_make(&hfc2, d, 4 * d) && ht_make(&hc1, d, (int64_t)m->n_mels * 3) &&
             ht_make(&hc2, d, 3 * d) && ht_make(&htok, V, d) && ht_make(&hkv, 2 * d, d) &&
             ht_make(&hv4, 4 * d, 0) && ht_make(&hv3, 3 * d, 0) && ht_make(&hv, d, 0);
    block_w w;
    tolk_bweight conv1, conv2, tok;
    memset(&w, 0, sizeof w);
    memset(&conv1, 0, sizeof conv1);
    memset(&conv2, 0, sizeof conv2);
    memset(&tok, 0, sizeof tok);
#define PREP(dst, h)                                                                               \
    (ok && !be->weight_prepare(ctx, be, (const tolk_tensor *const[]){&(h).t}, 1, &(dst)))
#define VEC(dst, h)                                                                                \
    (ok && !be->vector_prepare(ctx, be, (const tolk_tensor *const[]){&(h).t}, NULL, 1, &(dst)))
    ok = PREP(w.qkv, hq) && PREP(w.out, hdd) && PREP(w.cq, hdd) && PREP(w.ckv, hkv) &&
         PREP(w.cout, hdd) && PREP(w.fc1, hfc1) && PREP(w.fc2, hfc2) && PREP(conv1, hc1) &&
         PREP(conv2, hc2) && PREP(tok, htok) && VEC(w.b3d, hv3) && VEC(w.bd, hv) &&
         VEC(w.b4d, hv4) && VEC(w.ln_g, hv) && VEC(w.ln_b, hv);
    const size_t T = 1500;
    float *ws = ok ? be->alloc(ctx, be, T * (size_t)d * 10 * 4 + 3000 * (size_t)d * 4) : NULL;
    float *mel = ok ? be->alloc(ctx, be, (size_t)m->n_mels * 3000 * 4) : NULL;
    float *cache = ok ? be->alloc(ctx, be, 16 * 448 * 2 * (size_t)d * 4) : NULL;
    float *cross = ok ? be->alloc(ctx, be, T * 2 * (size_t)d * 4) : NULL;
    float *pos = ok ? be->alloc(ctx, be, 448 * (size_t)d * 4) : NULL;
    float *logits = ok ? be->alloc(ctx, be, 16 * (size_t)V * 4) : NULL;
    int *didx = ok ? be->alloc(ctx, be, 3 * 16 * sizeof(int)) : NULL;
    int rc = 0;
    if (!ok || !ws || !mel || !cache || !cross || !pos || !logits || !didx) {
        printf("setup failed: %s\n", tolk_ctx_last_error(ctx));
        rc = 1;
    } else {
        cudaMemset(ws, 0, T * (size_t)d * 10 * 4);
        cudaMemset(mel, 0, (size_t)m->n_mels * 3000 * 4);
        cudaMemset(cache, 0, 16 * 448 * 2 * (size_t)d * 4);
        cudaMemset(cross, 0, T * 2 * (size_t)d * 4);
        cudaMemset(pos, 0, 448 * (size_t)d * 4);
        cudaDeviceSynchronize();
        char nm[128];
        const double enc_f = (double)m->enc_layers * (24.0 * T * d * d + 4.0 * T * T * d);
        snprintf(nm, sizeof nm, "encoder window (%d layers)", m->enc_layers);
        TIME(nm, enc_f, 0, run_encoder(ctx, be, m, &w, &conv1, &conv2, mel, ws));
        const int Bs[] = {1, 5, 16};
        for (int bi = 0; bi < 3; bi++) {
            snprintf(nm, sizeof nm, "decoder step B=%d pos=100 (%d layers + logits)", Bs[bi],
                     m->dec_layers);
            TIME(nm, 0, 0,
                 run_decoder(ctx, be, m, &w, &tok, pos, cache, cross, ws, logits, didx, Bs[bi],
                             100));
        }
    }
    tolk_bweight *bws[] = {&w.qkv, &w.out, &w.cq,  &w.ckv, &w.cout,
                           &w.fc1, &w.fc2, &conv1, &conv2, &tok};
    for (size_t i = 0; i < sizeof bws / sizeof bws[0]; i++)
        be->weight_free(be, bws[i]);
    float *fs[] = {w.b3d, w.bd, w.b4d, w.ln_g, w.ln_b, ws, mel, cache, cross, pos, logits};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        be->free(be, fs[i]);
    be->free(be, didx);
    htensor *hs[] = {&hq, &hdd, &hfc1, &hfc2, &hc1, &hc2, &htok, &hkv, &hv4, &hv3, &hv};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        free(hs[i]->data);
    be->destroy(be);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Census: the engine's own path, counted by the backend                    */
/* ------------------------------------------------------------------------ */

#include "net.h"
#include "weights.h"

#include <stdarg.h>

/* Achievable H100 SXM rates for the paper estimate (bench/README.md). */
#define H100_BW 2.8e12         /* bytes/s: 85 % of 3.35 TB/s HBM3 */
#define H100_TC_GEMM 6.6e14    /* flop/s: cuBLASLt f16 -> f32, ~67 % of 989 T dense */
#define H100_TC_ATTN 3.3e14    /* flop/s: FA2-class mma.sync attention, d_head 64 */
#define H100_FP32 5.0e13       /* flop/s: CUDA-core float32 (75 % of 67 T) */
#define H100_GRAPH_NODE 2.0e-6 /* s per kernel node in a replayed graph */
#define H100_EAGER_LAUNCH 3.0e-6

static double paper_s(const tolk_census_row *r, int graph) {
    double rate = H100_FP32;
    if (!strcmp(r->name, "gemm") || !strcmp(r->name, "norm_linear")) rate = H100_TC_GEMM;
    if (!strcmp(r->name, "attn_flash_tc")) rate = H100_TC_ATTN;
    const double t = fmax(r->bytes / H100_BW, r->flops / rate);
    return t + (double)r->kernels * (graph ? H100_GRAPH_NODE : H100_EAGER_LAUNCH);
}

/* Print census c of `what` over n_layers layers; returns the paper ms. */
static double census_print(const char *what, const tolk_census *c, int n_layers, int graph) {
    uint64_t k = 0, nodes = 0;
    double b = 0, f = 0, t = 0;
    printf("\n%s%s\n", what, c->dry ? " (dry: counted, not run)" : "");
    printf("  %-16s %8s %8s %12s %12s %12s\n", "kernel", "launches", "nodes", "MB", "GFLOP",
           "H100 us");
    for (int i = 0; i < c->n; i++) {
        const tolk_census_row *r = &c->row[i];
        const double ts = paper_s(r, graph);
        printf("  %-16s %8llu %8llu %12.2f %12.3f %12.1f\n", r->name,
               (unsigned long long)r->kernels, (unsigned long long)r->nodes, r->bytes / 1e6,
               r->flops / 1e9, ts * 1e6);
        k += r->kernels, nodes += r->nodes, b += r->bytes, f += r->flops, t += ts;
    }
    printf("  %-16s %8llu %8llu %12.2f %12.3f %12.1f\n", "total", (unsigned long long)k,
           (unsigned long long)nodes, b / 1e6, f / 1e9, t * 1e6);
    printf("  kernels/%s %llu, kernels/%s/layer %.1f, graph nodes %llu (kernels %llu + memory "
           "%llu + copies %llu), MB/%s %.1f, paper %.3f ms\n",
           graph ? "step" : "window", (unsigned long long)k, graph ? "step" : "window",
           (double)k / n_layers, (unsigned long long)(nodes + c->mem_nodes + c->copy_nodes),
           (unsigned long long)nodes, (unsigned long long)c->mem_nodes,
           (unsigned long long)c->copy_nodes, graph ? "step" : "window", b / 1e6, t * 1e3);
    return t * 1e3;
}

/* An in-memory weight table of the shape m: every tensor float16, all
 * pointing into one shared random buffer (the values do not matter). */
static tolk_weights *census_weights(const model_dims *m, uint16_t **buf) {
    const int64_t d = m->d, V = m->n_vocab;
    const size_t max_el = (size_t)V * (size_t)d;
    *buf = malloc(max_el * 2);
    tolk_weights *w = tolk_weights_new(TOLK_FORMAT_CT2, "census");
    if (!*buf || !w) return NULL;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < max_el; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        (*buf)[i] = tolk_f32_to_f16(((float)((x >> 40) * (1.0 / 16777216.0)) - 0.5f) * 0.05f);
    }
    w->hp = (tolk_hparams){m->n_mels,     (int)V, 1500,   (int)d,   m->heads,
                           m->enc_layers, 448,    (int)d, m->heads, m->dec_layers};
    int ok = 1;
#define ADD(shape_n, ...)                                                                          \
    do {                                                                                           \
        const int64_t sh_[] = {__VA_ARGS__};                                                       \
        ok =                                                                                       \
            ok && tolk_weights_add(NULL, w, nm, TOLK_DT_F16, shape_n, sh_, *buf, NULL) == TOLK_OK; \
    } while (0)
    char nm[160];
#define NAME(...) snprintf(nm, sizeof nm, __VA_ARGS__)
    NAME("encoder.conv1.weight");
    ADD(3, d, m->n_mels, 3);
    NAME("encoder.conv1.bias");
    ADD(1, d);
    NAME("encoder.conv2.weight");
    ADD(3, d, d, 3);
    NAME("encoder.conv2.bias");
    ADD(1, d);
    NAME("encoder.positional_embedding");
    ADD(2, 1500, d);
    NAME("encoder.ln_post.weight");
    ADD(1, d);
    NAME("encoder.ln_post.bias");
    ADD(1, d);
    NAME("decoder.token_embedding.weight");
    ADD(2, V, d);
    NAME("decoder.positional_embedding");
    ADD(2, 448, d);
    NAME("decoder.ln.weight");
    ADD(1, d);
    NAME("decoder.ln.bias");
    ADD(1, d);
    static const char *const side[2] = {"encoder", "decoder"};
    static const char *const att[2] = {"attn", "cross_attn"};
    static const char *const qkvo[4] = {"query", "key", "value", "out"};
    for (int sd = 0; sd < 2; sd++) {
        const int L = sd ? m->dec_layers : m->enc_layers;
        for (int l = 0; l < L; l++) {
            for (int a = 0; a < 1 + sd; a++) {
                for (int i = 0; i < 4; i++) {
                    NAME("%s.blocks.%d.%s.%s.weight", side[sd], l, att[a], qkvo[i]);
                    ADD(2, d, d);
                    NAME("%s.blocks.%d.%s.%s.bias", side[sd], l, att[a], qkvo[i]);
                    ADD(1, d);
                }
                NAME("%s.blocks.%d.%s_ln.weight", side[sd], l, att[a]);
                ADD(1, d);
                NAME("%s.blocks.%d.%s_ln.bias", side[sd], l, att[a]);
                ADD(1, d);
            }
            NAME("%s.blocks.%d.mlp.0.weight", side[sd], l);
            ADD(2, 4 * d, d);
            NAME("%s.blocks.%d.mlp.0.bias", side[sd], l);
            ADD(1, 4 * d);
            NAME("%s.blocks.%d.mlp.2.weight", side[sd], l);
            ADD(2, d, 4 * d);
            NAME("%s.blocks.%d.mlp.2.bias", side[sd], l);
            ADD(1, d);
            NAME("%s.blocks.%d.mlp_ln.weight", side[sd], l);
            ADD(1, d);
            NAME("%s.blocks.%d.mlp_ln.bias", side[sd], l);
            ADD(1, d);
        }
    }
#undef ADD
#undef NAME
    if (!ok) {
        tolk_weights_free(w);
        return NULL;
    }
    return w;
}

/* One decoder configuration: B sequences over n_win windows, k tokens
 * selected; a 3-token prompt step, then single-token steps, the first of
 * which is counted into *out (with graphs: the step being captured).
 * Graphs on or off (tolk_kvcache_set_graphs). */
static int census_decoder_run(tolk_ctx *ctx, const tolk_net *net, tolk_backend *be, int B,
                              int n_win, int k, int graphs, tolk_census *out, long *captured) {
    const tolk_hparams *hp = tolk_net_hparams(net);
    tolk_kvcache *kv = NULL;
    if (tolk_kvcache_new(ctx, net, B, hp->n_text_ctx, n_win, &kv)) return 1;
    tolk_kvcache_set_graphs(kv, graphs);
    const size_t mel_n = (size_t)hp->n_mels * 3000;
    float *mel = calloc(mel_n, sizeof *mel);
    int *seqs = malloc((size_t)B * sizeof *seqs), *n_tok = malloc((size_t)B * sizeof *n_tok);
    int *idx = malloc((size_t)B * (size_t)k * sizeof *idx);
    float *lp = malloc((size_t)B * (size_t)k * sizeof *lp);
    const int **toks = malloc((size_t)B * sizeof *toks);
    int *off = calloc((size_t)B + 1, sizeof *off);
    int rc = !mel || !seqs || !n_tok || !idx || !lp || !toks || !off;
    for (int w = 0; w < n_win && !rc; w++)
        rc = tolk_kvcache_encode_window(ctx, net, kv, w, mel, NULL) != TOLK_OK;
    static const int prompt[3] = {50258, 50259, 50359}, next[1] = {50363};
    for (int i = 0; i < B && !rc; i++) {
        rc = tolk_kvcache_reset(ctx, kv, i, i % n_win) != TOLK_OK;
        seqs[i] = i;
    }
    const tolk_net_select sel = {off, off, 0, k, NULL, NULL};
    for (int step = 0; step < 3 && !rc; step++) {
        for (int i = 0; i < B; i++) {
            toks[i] = step ? next : prompt;
            n_tok[i] = step ? 1 : 3;
        }
        if (step == 1) be->census(be, out, 1); /* from here: the counted step */
        rc = tolk_net_decode_select(ctx, net, kv, seqs, B, toks, n_tok, &sel, idx, lp) != TOLK_OK;
        if (step == 1 && !rc) be->census(be, out, 1);
    }
    long rep = 0, fail = 0;
    tolk_kvcache_graph_stats(kv, captured, &rep, &fail);
    if (rc) printf("census: decoder B=%d failed: %s\n", B, tolk_ctx_last_error(ctx));
    free(mel), free(seqs), free(n_tok), free(idx), free(lp), free(toks), free(off);
    tolk_kvcache_free(kv);
    return rc;
}

/* The census of one decoder configuration: kernels, bytes (exact, from the
 * descriptors) and flops of an eager step; graph nodes of the same step
 * captured. */
static int census_decoder(tolk_ctx *ctx, const tolk_net *net, tolk_backend *be, int B, int n_win,
                          int k, double *paper_ms) {
    tolk_census eager, graph;
    long cap_eager = 0, cap_graph = 0;
    int rc = census_decoder_run(ctx, net, be, B, n_win, k, 0, &eager, &cap_eager);
    if (!rc) rc = census_decoder_run(ctx, net, be, B, n_win, k, 1, &graph, &cap_graph);
    if (rc) return rc;
    uint64_t ke = 0, kg = 0;
    for (int i = 0; i < eager.n; i++) {
        ke += eager.row[i].kernels;
        eager.row[i].nodes = 0;
        for (int j = 0; j < graph.n; j++)
            if (!strcmp(graph.row[j].name, eager.row[i].name))
                eager.row[i].nodes = graph.row[j].nodes;
    }
    for (int j = 0; j < graph.n; j++)
        kg += graph.row[j].kernels;
    eager.mem_nodes = graph.mem_nodes;
    eager.copy_nodes = graph.copy_nodes;
    char what[160];
    snprintf(what, sizeof what,
             "decoder step, batch %d (%d window%s, k %d), position 3; nodes from the captured "
             "graph (%ld captured)",
             B, n_win, n_win > 1 ? "s" : "", k, cap_graph);
    *paper_ms = census_print(what, &eager, tolk_net_hparams(net)->n_text_layer, 1);
    if (ke != kg)
        printf("  NOTE: %llu kernels eager, %llu captured\n", (unsigned long long)ke,
               (unsigned long long)kg);
    return 0;
}

/* --graph-check: tokens of n_steps steps with graphs on and off; *ms_step
 * the wall time per step from the third step on (the first captures its
 * graph), host work and the results' download included. */
static int graph_check_run(tolk_ctx *ctx, const tolk_net *net, int B, int k, int graphs,
                           int n_steps, int *tokens, long *captured, long *replayed,
                           double *ms_step) {
    const tolk_hparams *hp = tolk_net_hparams(net);
    tolk_kvcache *kv = NULL;
    if (tolk_kvcache_new(ctx, net, B, hp->n_text_ctx, 1, &kv)) return 1;
    tolk_kvcache_set_graphs(kv, graphs);
    float *mel = calloc((size_t)hp->n_mels * 3000, sizeof *mel);
    int seqs[8], n_tok[8], idx[8 * 8], cur[8];
    float lp[8 * 8];
    const int *toks[8];
    int off[9] = {0};
    int rc = !mel;
    for (size_t i = 0; mel && i < (size_t)hp->n_mels * 3000; i++)
        mel[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    if (!rc) rc = tolk_kvcache_encode_window(ctx, net, kv, 0, mel, NULL) != TOLK_OK;
    static const int prompt[3] = {50258, 50259, 50359};
    for (int i = 0; i < B; i++) {
        if (tolk_kvcache_reset(ctx, kv, i, 0) != TOLK_OK) rc = 1;
        seqs[i] = i;
    }
    const tolk_net_select sel = {off, off, 0, k, NULL, NULL};
    struct timespec t0 = {0, 0}, t1;
    for (int step = 0; step <= n_steps && !rc; step++) {
        if (step == 2) clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < B; i++) {
            toks[i] = step ? &cur[i] : prompt;
            n_tok[i] = step ? 1 : 3;
        }
        rc = tolk_net_decode_select(ctx, net, kv, seqs, B, toks, n_tok, &sel, idx, lp) != TOLK_OK;
        for (int i = 0; i < B && !rc; i++) {
            cur[i] = idx[i * k]; /* each sequence feeds its own best token */
            if (step) tokens[(step - 1) * B + i] = cur[i];
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ms_step =
        n_steps > 1
            ? ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) /
                  (n_steps - 1)
            : 0.0;
    long fail = 0;
    tolk_kvcache_graph_stats(kv, captured, replayed, &fail);
    if (rc) printf("graph-check: B=%d failed: %s\n", B, tolk_ctx_last_error(ctx));
    free(mel);
    tolk_kvcache_free(kv);
    return rc;
}

static const model_dims *find_shape(const char *shape) {
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (!strcmp(MODELS[i].name, shape)) return &MODELS[i];
    printf("unknown shape %s (base, large-v3)\n", shape);
    return NULL;
}

/* A random-weight network of shape m on the GPU, FP16 mode. */
/* float16 cross-attention K/V in the random networks (--kv32: float32). */
static int g_kv_f16 = 1;
/* fc1's GELU in the tanh form inside its product (--gelu-tanh) */
static int g_gelu_tanh = 0;
/* the step's LayerNorms as separate kernels (--no-norm-fuse: the comparison) */
static int g_no_norm_fuse = 0;

static tolk_net *random_net(const model_dims *m, tolk_ctx **ctx, tolk_weights **w, uint16_t **buf) {
    *w = census_weights(m, buf);
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CUDA;
    tolk_net *net = NULL;
    if (!*w || tolk_ctx_new(&cp, ctx) != TOLK_OK) return NULL;
    const tolk_net_params np = {.keep_f16 = 1,
                                .kv_f16 = g_kv_f16,
                                .gelu_tanh = g_gelu_tanh,
                                .no_norm_fuse = g_no_norm_fuse};
    if (tolk_net_new_ex(*ctx, *w, &np, &net) != TOLK_OK) {
        printf("network: %s\n", tolk_ctx_last_error(*ctx));
        return NULL;
    }
    return net;
}

static int graph_check(const char *shape) {
    const model_dims *m = find_shape(shape);
    if (!m) return 2;
    tolk_ctx *ctx = NULL;
    tolk_weights *w = NULL;
    uint16_t *buf = NULL;
    tolk_net *net = random_net(m, &ctx, &w, &buf);
    int rc = !net;
    enum { STEPS = 16 };
    static const int Bs[2] = {1, 5}, Ks[2] = {1, 6};
    for (int c = 0; c < 2 && !rc; c++) {
        int tg[STEPS * 8], te[STEPS * 8];
        long cap = 0, rep = 0, cap_e = 0, rep_e = 0;
        double ms_g = 0, ms_e = 0;
        rc = graph_check_run(ctx, net, Bs[c], Ks[c], 1, STEPS, tg, &cap, &rep, &ms_g);
        if (!rc) rc = graph_check_run(ctx, net, Bs[c], Ks[c], 0, STEPS, te, &cap_e, &rep_e, &ms_e);
        if (rc) break;
        int diff = 0;
        for (int i = 0; i < STEPS * Bs[c]; i++)
            diff += tg[i] != te[i];
        printf("graph-check %s batch %d: %ld graphs captured, %ld replays (eager: %ld, %ld); "
               "%d of %d selected tokens differ between graph and eager: %s\n",
               m->name, Bs[c], cap, rep, cap_e, rep_e, diff, STEPS * Bs[c],
               diff == 0 && cap >= 1 && rep >= STEPS - 1 && cap_e == 0 ? "OK" : "FAILED");
        printf("graph-check %s batch %d%s: %.3f ms per step with graphs, %.3f ms eager (wall, "
               "%d steps)\n",
               m->name, Bs[c], g_no_norm_fuse ? " (--no-norm-fuse)" : "", ms_g, ms_e, STEPS - 1);
        if (diff || cap < 1 || rep < STEPS - 1 || cap_e) rc = 1;
    }
    tolk_net_free(net);
    tolk_ctx_free(ctx);
    tolk_weights_free(w);
    free(buf);
    return rc;
}

static int bench_attn(const char *shape) {
    const model_dims *m = find_shape(shape);
    if (!m) return 2;
    const long long T = 1500, d = m->d;
    const int H = m->heads, dh = 64;
    void *q32 = dev_rand((size_t)(T * 3 * d), TOLK_CU_F32, -1, 1);
    void *q16 = dev_rand((size_t)(T * 3 * d), TOLK_CU_F16, -1, 1);
    void *o32 = dev_rand((size_t)(T * d), TOLK_CU_F32, 0, 0);
    void *o16 = dev_rand((size_t)(T * d), TOLK_CU_F16, 0, 0);
    if (!q32 || !q16 || !o32 || !o16) {
        printf("out of device memory\n");
        return 1;
    }
    const double f = 4.0 * T * T * dh * H;
    char nm[128];
    for (int dt = 0; dt < 2; dt++) {
        void *q = dt ? q16 : q32;
        const size_t es = dt ? 2 : 4;
        tolk_cu_attn_seq s = {
            q, (char *)q + d * es, (char *)q + 2 * d * es, dt ? o16 : o32, (int)T, (int)T, 0, 0};
        snprintf(nm, sizeof nm, "encoder attention %s q/k/v, T=%lld H=%d (FA2 tc f16)",
                 dt ? "f16" : "f32", T, H);
        TIME(nm, f, 0,
             tolk_cu_attention_ex(&s, 1, H, dh, 3 * d, 3 * d, d, 0.125f, dt, TOLK_CU_F16, NULL, 0,
                                  S));
    }
    cudaFree(q32), cudaFree(q16), cudaFree(o32), cudaFree(o16);
    return 0;
}

static int census(const char *shape, int dry) {
    const model_dims *m = NULL;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (!strcmp(MODELS[i].name, shape)) m = &MODELS[i];
    if (!m) {
        printf("census: unknown shape %s (base, large-v3)\n", shape);
        return 2;
    }
    setenv("TOLK_CUDA_CENSUS", dry ? "dry" : "1", 1);
    uint16_t *buf = NULL;
    tolk_weights *w = census_weights(m, &buf);
    tolk_ctx *ctx = NULL;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CUDA;
    tolk_net *net = NULL;
    int rc = !w || tolk_ctx_new(&cp, &ctx) != TOLK_OK;
    if (!rc) {
        const tolk_net_params np = {.keep_f16 = 1,
                                    .kv_f16 = g_kv_f16,
                                    .gelu_tanh = g_gelu_tanh,
                                    .no_norm_fuse = g_no_norm_fuse};
        rc = tolk_net_new_ex(ctx, w, &np, &net) != TOLK_OK;
        if (rc) printf("census: network: %s\n", tolk_ctx_last_error(ctx));
    }
    tolk_backend *be = net ? (tolk_backend *)tolk_net_backend(net) : NULL;
    if (!rc && (!be || !be->census || !strcmp(be->name, "cpu"))) {
        printf("census: the network runs on %s, which counts nothing\n", be ? be->name : "?");
        rc = 1;
    }
    double enc_ms = 0, dec_ms[3] = {0, 0, 0};
    if (!rc) {
        printf("census of %s (d %d, %d heads, %d + %d layers), FP16 mode, %s\n", m->name, m->d,
               m->heads, m->enc_layers, m->dec_layers,
               dry ? "dry run (counted, not run)" : "counted while running");
        tolk_kvcache *kv = NULL;
        float *mel = calloc((size_t)m->n_mels * 3000, sizeof *mel);
        rc = !mel || tolk_kvcache_new(ctx, net, 1, 448, 1, &kv) != TOLK_OK;
        be->census(be, &(tolk_census){0}, 1);
        if (!rc) rc = tolk_kvcache_encode_window(ctx, net, kv, 0, mel, NULL) != TOLK_OK;
        if (!rc) {
            tolk_census c;
            be->census(be, &c, 1);
            enc_ms = census_print("encoder window (conv stem, blocks, cross-attention K/V of "
                                  "every decoder layer)",
                                  &c, m->enc_layers, 0);
        } else {
            printf("census: encoder failed: %s\n", tolk_ctx_last_error(ctx));
        }
        free(mel);
        tolk_kvcache_free(kv);
    }
    static const int Bs[3] = {1, 5, 32}, Ws[3] = {1, 1, 32}, Ks[3] = {1, 6, 1};
    for (int i = 0; i < 3 && !rc; i++)
        rc = census_decoder(ctx, net, be, Bs[i], Ws[i], Ks[i], &dec_ms[i]);
    if (!rc)
        printf("\npaper estimate, H100 SXM, %s: encoder %.2f ms/window; decoder step %.3f ms "
               "(batch 1), %.3f ms (batch 5 beams), %.3f ms (batch 32)\n",
               m->name, enc_ms, dec_ms[0], dec_ms[1], dec_ms[2]);
    tolk_net_free(net);
    tolk_ctx_free(ctx);
    tolk_weights_free(w);
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    if (argc > 2 && (!strcmp(argv[1], "--census") || !strcmp(argv[1], "--graph-check") ||
                     !strcmp(argv[1], "--attn"))) {
        if (!tolk_cuda_available()) {
            printf("no CUDA device\n");
            return 0;
        }
        int dry = 0;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--dry")) dry = 1;
            if (!strcmp(argv[i], "--kv32")) g_kv_f16 = 0;
            if (!strcmp(argv[i], "--gelu-tanh")) g_gelu_tanh = 1;
            if (!strcmp(argv[i], "--no-norm-fuse")) g_no_norm_fuse = 1;
        }
        if (!strcmp(argv[1], "--census")) return census(argv[2], dry);
        if (!strcmp(argv[1], "--graph-check")) return graph_check(argv[2]);
        if (argc > 3) g_iters = atoi(argv[3]) > 0 ? atoi(argv[3]) : 20;
        cudaEventCreate(&g_e0);
        cudaEventCreate(&g_e1);
        return bench_attn(argv[2]);
    }
    if (argc > 1) g_iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : 20;
    if (!tolk_cuda_available()) {
        printf("no CUDA device\n");
        return 0;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("device: %s (sm_%d%d), %d iterations per row\n", prop.name, prop.major, prop.minor,
           g_iters);
    cudaEventCreate(&g_e0);
    cudaEventCreate(&g_e1);
    tolk_cu_gemm_ctx *g = NULL;
    if (tolk_cu_gemm_create(&g)) {
        printf("cuBLASLt: cannot create a handle\n");
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0] && !rc; i++)
        rc = bench_kernels(&MODELS[i], g);
    tolk_cu_gemm_destroy(g);
    tolk_ctx *ctx = NULL;
    if (!rc && tolk_ctx_new(NULL, &ctx) == TOLK_OK) {
        for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0] && !rc; i++)
            for (int k = 1; k >= 0 && !rc; k--)
                rc = bench_model(ctx, &MODELS[i], k);
        tolk_ctx_free(ctx);
    }
    return rc;
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    printf("no CUDA device (CPU-only build)\n");
    return 0;
}

#endif

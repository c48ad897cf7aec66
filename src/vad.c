/*
 * vad.c — the Silero VAD v6 16 kHz network on the CPU (vad_internal.h
 * describes it), whole signals and live streams.
 *
 * Reproduces silero-vad's model call as its OnnxWrapper / JIT model make
 * it: each 512-sample chunk is preceded by the last 64 samples of the
 * previous chunk (zeros before the first), the LSTM state (h, c) carries
 * from chunk to chunk starting from zeros, and get_speech_timestamps
 * zero-pads the last partial chunk.
 *
 * Fast path: everything before the LSTM depends on one frame only, so
 * many chunks (of one stream, or of many streams) go through the STFT and
 * the four convolutions together as matrix products (im2col + OpenBLAS
 * sgemm), and through the LSTM's input product; only the recurrent
 * product (512 x 128) and the gates run chunk after chunk. Whole signals
 * split the chunks over the context's threads (OpenMP) in blocks.
 * tolk_vad_ref_step is the plain loop (double sums) the tests compare the
 * fast path with.
 */
#include "vad_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define VAD_BLOCK 128 /* chunks per encoder pass (per thread) */

/* OpenBLAS runs in the calling thread, as in backend_cpu.c (1 is the only
 * value tolk ever sets, process-wide). */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
static void blas_single(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* Per-chunk floats of each work buffer. */
#define WS_COLS (VAD_STEPS * VAD_BINS * 3) /* the widest im2col: conv1, 1548 */
#define WS_ACT (VAD_STEPS * 2 * VAD_BINS)  /* the widest activation: STFT, 1032 */

/* Working buffers for up to cap chunks. */
typedef struct vad_ws {
    int cap;
    float *frames; /* [cap, 576] the input frames */
    float *cols;   /* [cap, WS_COLS] */
    float *a, *b;  /* [cap, WS_ACT] */
    float *gx;     /* [cap, 512] input part of the gates, biases included */
} vad_ws;

static void ws_free(vad_ws *w) {
    free(w->frames);
    free(w->cols);
    free(w->a);
    free(w->b);
    free(w->gx);
    memset(w, 0, sizeof *w);
}

/* Allocate w for cap chunks; 0 on success, -1 when out of memory. */
static int ws_alloc(vad_ws *w, int cap) {
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->frames = tolk_malloc_array((size_t)cap * VAD_FRAME, sizeof(float));
    w->cols = tolk_malloc_array((size_t)cap * WS_COLS, sizeof(float));
    w->a = tolk_malloc_array((size_t)cap * WS_ACT, sizeof(float));
    w->b = tolk_malloc_array((size_t)cap * WS_ACT, sizeof(float));
    w->gx = tolk_malloc_array((size_t)cap * VAD_GATES, sizeof(float));
    if (!w->frames || !w->cols || !w->a || !w->b || !w->gx) {
        ws_free(w);
        return -1;
    }
    return 0;
}

static inline float sigmoidf(float x) {
    return 1.0f / (1.0f + expf(-x));
}

/* The sample at index i of a frame reflect-padded by 64 on the right. */
static inline float padded_at(const float *f, int i) {
    return i < VAD_FRAME ? f[i] : f[2 * (VAD_FRAME - 1) - i];
}

/* One convolution (kernel 3, padding 1) + bias + ReLU over M sequences:
 * in [M, T, C] (time-major rows) -> out [M, To, O]. cols: im2col space. */
static void conv_relu(const float *in, int M, int T, int C, const float *w, const float *bias,
                      int O, int stride, float *cols, float *out) {
    const int To = (T + 2 - 3) / stride + 1, K = 3 * C;
    for (int m = 0; m < M; m++)
        for (int t = 0; t < To; t++) {
            float *row = cols + ((size_t)m * To + t) * K;
            for (int k = 0; k < 3; k++) {
                const int ti = t * stride + k - 1;
                const float *src = in + ((size_t)m * T + ti) * C;
                if (ti < 0 || ti >= T)
                    for (int ci = 0; ci < C; ci++)
                        row[ci * 3 + k] = 0.0f;
                else
                    for (int ci = 0; ci < C; ci++)
                        row[ci * 3 + k] = src[ci];
            }
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M * To, O, K, 1.0f, cols, K, w, K, 0.0f,
                out, O);
    for (size_t r = 0; r < (size_t)M * To; r++) {
        float *o = out + r * O;
        for (int j = 0; j < O; j++) {
            const float y = o[j] + bias[j];
            o[j] = y > 0.0f ? y : 0.0f;
        }
    }
}

/* Frames [M, 576] -> gx [M, 512] = W_ih x + b_ih + b_hh, x the encoder's
 * output. Uses w's buffers (M <= w->cap). */
static void vad_encode(const struct tolk_vad *v, const float *frames, int M, vad_ws *w, float *gx) {
    blas_single();
    /* STFT as a strided convolution: [M * 4, 256] x [258, 256]^T */
    for (int m = 0; m < M; m++) {
        const float *f = frames + (size_t)m * VAD_FRAME;
        for (int t = 0; t < VAD_STEPS; t++) {
            float *row = w->cols + ((size_t)m * VAD_STEPS + t) * VAD_NFFT;
            for (int k = 0; k < VAD_NFFT; k++)
                row[k] = padded_at(f, t * VAD_HOP + k);
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M * VAD_STEPS, 2 * VAD_BINS, VAD_NFFT,
                1.0f, w->cols, VAD_NFFT, v->stft, VAD_NFFT, 0.0f, w->a, 2 * VAD_BINS);
    for (size_t r = 0; r < (size_t)M * VAD_STEPS; r++) {
        const float *s = w->a + r * 2 * VAD_BINS;
        float *mag = w->b + r * VAD_BINS;
        for (int j = 0; j < VAD_BINS; j++)
            mag[j] = sqrtf(s[j] * s[j] + s[VAD_BINS + j] * s[VAD_BINS + j]);
    }
    float *in = w->b, *out = w->a;
    int T = VAD_STEPS;
    for (int l = 0; l < VAD_N_CONV; l++) {
        conv_relu(in, M, T, tolk_vad_conv_in[l], v->conv_w[l], v->conv_b[l], tolk_vad_conv_out[l],
                  tolk_vad_conv_stride[l], w->cols, out);
        T = (T + 2 - 3) / tolk_vad_conv_stride[l] + 1;
        float *tmp = in;
        in = out;
        out = tmp;
    }
    /* in: [M, 1, 128] */
    for (int m = 0; m < M; m++)
        memcpy(gx + (size_t)m * VAD_GATES, v->b_gates, VAD_GATES * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, VAD_GATES, VAD_HIDDEN, 1.0f, in,
                VAD_HIDDEN, v->w_ih, VAD_HIDDEN, 1.0f, gx, VAD_GATES);
}

/* The gates g [512] (both products and biases summed) -> new h, c and the
 * speech probability. */
static float cell_finish(const struct tolk_vad *v, const float *g, float *h, float *c) {
    float z = v->b_out;
    for (int j = 0; j < VAD_HIDDEN; j++) {
        const float i = sigmoidf(g[j]), f = sigmoidf(g[VAD_HIDDEN + j]);
        const float gg = tanhf(g[2 * VAD_HIDDEN + j]), o = sigmoidf(g[3 * VAD_HIDDEN + j]);
        c[j] = f * c[j] + i * gg;
        h[j] = o * tanhf(c[j]);
        z += v->w_out[j] * (h[j] > 0.0f ? h[j] : 0.0f);
    }
    return sigmoidf(z);
}

/* One recurrent step of a stream: g holds gx (overwritten). */
static float cell_step(const struct tolk_vad *v, float *g, float *h, float *c) {
    blas_single();
    cblas_sgemv(CblasRowMajor, CblasNoTrans, VAD_GATES, VAD_HIDDEN, 1.0f, v->w_hh, VAD_HIDDEN, h, 1,
                1.0f, g, 1);
    return cell_finish(v, g, h, c);
}

/* ---- the plain reference --------------------------------------------------- */

float tolk_vad_ref_step(const struct tolk_vad *v, const float *frame, float *h, float *c) {
    double spec[2 * VAD_BINS][VAD_STEPS], x0[VAD_BINS * VAD_STEPS];
    for (int o = 0; o < 2 * VAD_BINS; o++)
        for (int t = 0; t < VAD_STEPS; t++) {
            double s = 0;
            for (int k = 0; k < VAD_NFFT; k++)
                s += (double)v->stft[o * VAD_NFFT + k] * padded_at(frame, t * VAD_HOP + k);
            spec[o][t] = s;
        }
    for (int f = 0; f < VAD_BINS; f++) /* x0 [channel][time] */
        for (int t = 0; t < VAD_STEPS; t++)
            x0[f * VAD_STEPS + t] =
                sqrt(spec[f][t] * spec[f][t] + spec[VAD_BINS + f][t] * spec[VAD_BINS + f][t]);
    double bufa[VAD_BINS * VAD_STEPS], bufb[VAD_BINS * VAD_STEPS];
    const double *in = x0;
    double *out = bufa;
    int T = VAD_STEPS;
    for (int l = 0; l < VAD_N_CONV; l++) {
        const int C = tolk_vad_conv_in[l], O = tolk_vad_conv_out[l], S = tolk_vad_conv_stride[l];
        const int To = (T + 2 - 3) / S + 1;
        for (int o = 0; o < O; o++)
            for (int t = 0; t < To; t++) {
                double s = v->conv_b[l][o];
                for (int ci = 0; ci < C; ci++)
                    for (int k = 0; k < 3; k++) {
                        const int ti = t * S + k - 1;
                        if (ti >= 0 && ti < T)
                            s += (double)v->conv_w[l][(o * C + ci) * 3 + k] * in[ci * T + ti];
                    }
                out[o * To + t] = s > 0 ? s : 0;
            }
        T = To;
        in = out;
        out = out == bufa ? bufb : bufa;
    }
    double g[VAD_GATES];
    for (int r = 0; r < VAD_GATES; r++) {
        double s = (double)v->b_ih[r] + v->b_hh[r];
        for (int k = 0; k < VAD_HIDDEN; k++)
            s += (double)v->w_ih[r * VAD_HIDDEN + k] * in[k] +
                 (double)v->w_hh[r * VAD_HIDDEN + k] * h[k];
        g[r] = s;
    }
    double z = v->b_out;
    for (int j = 0; j < VAD_HIDDEN; j++) {
        const double i = 1 / (1 + exp(-g[j])), f = 1 / (1 + exp(-g[VAD_HIDDEN + j]));
        const double gg = tanh(g[2 * VAD_HIDDEN + j]), o = 1 / (1 + exp(-g[3 * VAD_HIDDEN + j]));
        const double cn = f * c[j] + i * gg, hn = o * tanh(cn);
        c[j] = (float)cn;
        h[j] = (float)hn;
        z += (double)v->w_out[j] * (hn > 0 ? hn : 0);
    }
    return (float)(1 / (1 + exp(-z)));
}

/* ---- whole signals ------------------------------------------------------------ */

/* The frame of chunk j of x[n]: samples [512 j - 64, 512 j + 512), zeros
 * outside [0, n). */
static void make_frame(const float *x, size_t n, size_t j, float *f) {
    const int64_t s0 = (int64_t)j * TOLK_VAD_CHUNK - TOLK_VAD_CONTEXT;
    for (int i = 0; i < VAD_FRAME; i++) {
        const int64_t s = s0 + i;
        f[i] = s >= 0 && (uint64_t)s < n ? x[s] : 0.0f;
    }
}

tolk_status tolk_vad_probs(tolk_ctx *ctx, const tolk_vad *vad, const float *x, size_t n,
                           float **probs, size_t *n_probs) {
    if (!probs || !n_probs) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_probs: NULL out");
    *probs = NULL;
    *n_probs = 0;
    if (!vad) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_probs: NULL model");
    if (!x && n) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_probs: NULL samples");
    if (n == 0) return tolk_fail(ctx, TOLK_ERR_EMPTY, "tolk_vad_probs: no samples");
    if (n > (size_t)1 << 40)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_vad_probs: absurd input length");
    const size_t nch = (n + TOLK_VAD_CHUNK - 1) / TOLK_VAD_CHUNK;
    int nt = tolk_ctx_threads(ctx);
    if (nt < 1) nt = 1;
    if ((size_t)nt > (nch + VAD_BLOCK - 1) / VAD_BLOCK)
        nt = (int)((nch + VAD_BLOCK - 1) / VAD_BLOCK);
    float *out = tolk_malloc_array(nch, sizeof(float));
    float *gx = tolk_malloc_array((size_t)nt * VAD_BLOCK, VAD_GATES * sizeof(float));
    vad_ws *ws = calloc((size_t)nt, sizeof *ws);
    int ok = out && gx && ws;
    for (int t = 0; ok && t < nt; t++)
        ok = ws_alloc(&ws[t], VAD_BLOCK) == 0;
    if (!ok) {
        for (int t = 0; ws && t < nt; t++)
            ws_free(&ws[t]);
        free(ws), free(gx), free(out);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_vad_probs: out of memory");
    }
    float h[VAD_HIDDEN] = {0}, c[VAD_HIDDEN] = {0}, g[VAD_GATES];
    const size_t step = (size_t)nt * VAD_BLOCK;
    for (size_t c0 = 0; c0 < nch; c0 += step) {
        const size_t cend = c0 + step < nch ? c0 + step : nch;
        const int nblocks = (int)((cend - c0 + VAD_BLOCK - 1) / VAD_BLOCK);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nblocks > 1)
#endif
        for (int b = 0; b < nblocks; b++) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            const size_t j0 = c0 + (size_t)b * VAD_BLOCK;
            const size_t j1 = j0 + VAD_BLOCK < cend ? j0 + VAD_BLOCK : cend;
            for (size_t j = j0; j < j1; j++)
                make_frame(x, n, j, ws[t].frames + (j - j0) * VAD_FRAME);
            vad_encode(vad, ws[t].frames, (int)(j1 - j0), &ws[t],
                       gx + (size_t)b * VAD_BLOCK * VAD_GATES);
        }
        for (size_t j = c0; j < cend; j++) {
            memcpy(g, gx + (j - c0) * VAD_GATES, sizeof g);
            out[j] = cell_step(vad, g, h, c);
        }
    }
    for (int t = 0; t < nt; t++)
        ws_free(&ws[t]);
    free(ws);
    free(gx);
    *probs = out;
    *n_probs = nch;
    return TOLK_OK;
}

/* ---- streams ------------------------------------------------------------------ */

#define STREAM_BLOCK 16 /* chunks per encoder pass of one push */

struct tolk_vad_stream {
    const struct tolk_vad *vad;
    float h[VAD_HIDDEN], c[VAD_HIDDEN];
    float context[TOLK_VAD_CONTEXT]; /* the last 64 samples of the previous chunk */
    float pending[TOLK_VAD_CHUNK];   /* a partial chunk */
    size_t n_pending;
    vad_ws ws;
};

tolk_status tolk_vad_stream_new(tolk_ctx *ctx, const tolk_vad *vad, tolk_vad_stream **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_new: NULL out");
    *out = NULL;
    if (!vad) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_new: NULL model");
    tolk_vad_stream *s = calloc(1, sizeof *s);
    if (!s || ws_alloc(&s->ws, STREAM_BLOCK)) {
        free(s);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_vad_stream_new: out of memory");
    }
    s->vad = vad;
    *out = s;
    return TOLK_OK;
}

void tolk_vad_stream_free(tolk_vad_stream *s) {
    if (!s) return;
    ws_free(&s->ws);
    free(s);
}

void tolk_vad_stream_reset(tolk_vad_stream *s) {
    if (!s) return;
    memset(s->h, 0, sizeof s->h);
    memset(s->c, 0, sizeof s->c);
    memset(s->context, 0, sizeof s->context);
    s->n_pending = 0;
}

size_t tolk_vad_stream_pending(const tolk_vad_stream *s) {
    return s ? s->n_pending : 0;
}

/* Run the m frames gathered in s->ws; probabilities to out. */
static void stream_run(tolk_vad_stream *s, int m, float *out) {
    vad_encode(s->vad, s->ws.frames, m, &s->ws, s->ws.gx);
    for (int k = 0; k < m; k++)
        out[k] = cell_step(s->vad, s->ws.gx + (size_t)k * VAD_GATES, s->h, s->c);
}

tolk_status tolk_vad_stream_push(tolk_ctx *ctx, tolk_vad_stream *s, const float *x, size_t n,
                                 float *probs, size_t max_probs, size_t *n_probs) {
    if (!s || !n_probs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_push: NULL argument");
    *n_probs = 0;
    if (!x && n) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_push: NULL samples");
    if (n > (size_t)1 << 40)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_push: absurd length");
    const size_t total = s->n_pending + n, want = total / TOLK_VAD_CHUNK;
    if (want > max_probs || (want && !probs))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "tolk_vad_stream_push: %zu probabilities do not fit in %zu", want,
                         max_probs);
    size_t used = 0, k = 0;
    int m = 0;
    while (s->n_pending + (n - used) >= TOLK_VAD_CHUNK) {
        float *f = s->ws.frames + (size_t)m * VAD_FRAME;
        memcpy(f, s->context, sizeof s->context);
        memcpy(f + TOLK_VAD_CONTEXT, s->pending, s->n_pending * sizeof(float));
        const size_t take = TOLK_VAD_CHUNK - s->n_pending;
        memcpy(f + TOLK_VAD_CONTEXT + s->n_pending, x + used, take * sizeof(float));
        used += take;
        s->n_pending = 0;
        memcpy(s->context, f + VAD_FRAME - TOLK_VAD_CONTEXT, sizeof s->context);
        if (++m == STREAM_BLOCK) {
            stream_run(s, m, probs + k);
            k += (size_t)m;
            m = 0;
        }
    }
    if (m) stream_run(s, m, probs + k), k += (size_t)m;
    memcpy(s->pending + s->n_pending, x + used, (n - used) * sizeof(float));
    s->n_pending += n - used;
    *n_probs = k;
    return TOLK_OK;
}

tolk_status tolk_vad_stream_flush(tolk_ctx *ctx, tolk_vad_stream *s, float *prob, size_t *n_probs) {
    if (!s || !prob || !n_probs)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_flush: NULL argument");
    *n_probs = 0;
    if (s->n_pending == 0) return TOLK_OK;
    float zeros[TOLK_VAD_CHUNK] = {0};
    return tolk_vad_stream_push(ctx, s, zeros, TOLK_VAD_CHUNK - s->n_pending, prob, 1, n_probs);
}

tolk_status tolk_vad_stream_chunks(tolk_ctx *ctx, tolk_vad_stream *const *streams, int n,
                                   const float *const *chunks, float *probs) {
    if (n < 0 || (n > 0 && (!streams || !chunks || !probs)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_vad_stream_chunks: bad arguments");
    if (n == 0) return TOLK_OK;
    const struct tolk_vad *v = streams[0] ? streams[0]->vad : NULL;
    for (int i = 0; i < n; i++) {
        if (!streams[i] || !chunks[i] || streams[i]->vad != v)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "tolk_vad_stream_chunks: stream %d is NULL, has no chunk or "
                             "another model",
                             i);
        if (streams[i]->n_pending)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "tolk_vad_stream_chunks: stream %d has %zu pending samples", i,
                             streams[i]->n_pending);
        for (int j = 0; j < i; j++)
            if (streams[j] == streams[i])
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                                 "tolk_vad_stream_chunks: stream %d is given twice", i);
    }
    vad_ws w;
    float *H = tolk_malloc_array((size_t)n * VAD_HIDDEN, sizeof(float));
    if (!H || ws_alloc(&w, n)) {
        free(H);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_vad_stream_chunks: out of memory");
    }
    for (int i = 0; i < n; i++) {
        float *f = w.frames + (size_t)i * VAD_FRAME;
        memcpy(f, streams[i]->context, sizeof streams[i]->context);
        memcpy(f + TOLK_VAD_CONTEXT, chunks[i], TOLK_VAD_CHUNK * sizeof(float));
        memcpy(H + (size_t)i * VAD_HIDDEN, streams[i]->h, sizeof streams[i]->h);
    }
    vad_encode(v, w.frames, n, &w, w.gx);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, VAD_GATES, VAD_HIDDEN, 1.0f, H,
                VAD_HIDDEN, v->w_hh, VAD_HIDDEN, 1.0f, w.gx, VAD_GATES);
    for (int i = 0; i < n; i++) {
        tolk_vad_stream *s = streams[i];
        probs[i] = cell_finish(v, w.gx + (size_t)i * VAD_GATES, s->h, s->c);
        memcpy(s->context, w.frames + (size_t)i * VAD_FRAME + VAD_FRAME - TOLK_VAD_CONTEXT,
               sizeof s->context);
    }
    ws_free(&w);
    free(H);
    return TOLK_OK;
}

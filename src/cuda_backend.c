/*
 * cuda_backend.c — the CUDA implementation of the backend op table
 * (backend.h): host glue over the kernels in kernels/ and cuBLASLt
 * (kernels/gemm.cu). CUDA builds only. Same semantics as backend_cpu.c,
 * which is its CPU twin (openai-whisper model.py in float32).
 *
 * Memory
 *   - Weights (weight_prepare) live in one device arena: chunks of at least
 *     64 MiB carved by a bump allocator under a mutex; a chunk is released
 *     when its last weight is freed, all chunks at destroy. Float16 /
 *     bfloat16 weights are uploaded as they are (keep_f16) or widened to
 *     float32 on the device (the exact-parity mode); int8 is dequantised
 *     on the host.
 *   - Vectors (vector_prepare) and alloc() are plain cudaMalloc buffers
 *     (released with free()); the network preallocates its activation
 *     arenas through alloc once per encode / KV cache.
 *   - Per-call scratch (float32 -> half activations, im2col columns, the
 *     cuBLASLt workspace, token ids) is stream-ordered (cudaMallocAsync /
 *     cudaFreeAsync) from the device's default pool, whose release threshold
 *     is raised at creation so that the memory stays cached between calls.
 *
 * Streams and threads: every operation runs on cudaStreamPerThread, so each
 * host thread has its own stream and the backend may be shared by threads.
 * Operations only enqueue; download() synchronises the calling thread's
 * stream and so reports errors of earlier kernels too. upload() also
 * synchronises (the source may be reused at once, pinned or not).
 *
 * Precision: activations are float32. With keep_f16 a linear layer converts
 * its input rows to the weight's half type (tolk_cu_convert) and multiplies
 * on tensor cores with float32 accumulation; without it every product is a
 * float32 GEMM (CUBLAS_COMPUTE_32F, no TF32).
 */
#include "cuda_util.h"

#include "../kernels/add.h"
#include "../kernels/attention.h"
#include "../kernels/attn_weights.h"
#include "../kernels/conv1d.h"
#include "../kernels/convert.h"
#include "../kernels/embed.h"
#include "../kernels/gelu.h"
#include "../kernels/gemm.h"
#include "../kernels/layernorm.h"
#include "../kernels/logits.h"
#include "../kernels/copy_rows.h"
#include "../kernels/select.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)TOLK_DT_F32 == (int)TOLK_CU_F32 && (int)TOLK_DT_F16 == (int)TOLK_CU_F16 &&
                   (int)TOLK_DT_BF16 == (int)TOLK_CU_BF16,
               "tolk_dtype and the kernels' storage types must agree");

#define WHO "cuda_backend"
#define ARENA_CHUNK ((size_t)64 << 20)  /* minimum weight-arena chunk */
#define GEMM_WS_BYTES ((size_t)4 << 20) /* cuBLASLt workspace per product */
#define SCRATCH_ALIGN ((size_t)256)
#define ATT_SEQS_PER_CALL 64

typedef struct arena_chunk {
    struct arena_chunk *next;
    char *base;
    size_t size;
    size_t used;
    int live; /* weights placed in the chunk and not yet freed */
} arena_chunk;

/* The stream this thread's operations go to: the stream being captured
 * between graph_begin and graph_end, else the thread's default stream. */
static _Thread_local cudaStream_t tl_capture;
static cudaStream_t cur_stream(void) {
    return tl_capture ? tl_capture : cudaStreamPerThread;
}
#undef TOLK_CU_STREAM
#define TOLK_CU_STREAM ((void *)cur_stream())

typedef struct cuda_impl {
    int device;
    int keep_half;
    int attn_tc; /* arithmetic of many-query attention: TOLK_CU_F32 / F16 / BF16 */
    tolk_cu_gemm_ctx *gemm;
    pthread_mutex_t mu;  /* guards chunks */
    arena_chunk *chunks; /* every chunk, newest first */
} cuda_impl;

static cuda_impl *impl_of(const tolk_backend *be) {
    return (cuda_impl *)be->impl;
}

/* Make im's device current for the calling thread (a per-thread setting). */
static tolk_status use_device(tolk_ctx *ctx, const cuda_impl *im) {
    if (tl_capture) return TOLK_OK; /* graph_begin made it current */
    return tolk_cuda_status(ctx, cudaSetDevice(im->device), WHO, "cudaSetDevice");
}

static size_t round_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

/* ------------------------------------------------------------------------ */
/* Weight arena                                                             */
/* ------------------------------------------------------------------------ */

/* bytes of device memory from the arena (256-byte aligned), or NULL with
 * ctx's message set. */
static void *arena_alloc(tolk_ctx *ctx, cuda_impl *im, size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX - SCRATCH_ALIGN) {
        tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: bad weight size %zu", WHO, bytes);
        return NULL;
    }
    const size_t need = round_up(bytes, SCRATCH_ALIGN);
    void *p = NULL;
    pthread_mutex_lock(&im->mu);
    arena_chunk *c = im->chunks;
    while (c && c->size - c->used < need)
        c = c->next;
    if (!c) {
        c = calloc(1, sizeof *c);
        const size_t sz = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        cudaError_t err = cudaErrorMemoryAllocation;
        if (c) err = cudaMalloc((void **)&c->base, sz);
        if (err != cudaSuccess) {
            free(c);
            c = NULL;
            tolk_cuda_status(ctx, err, WHO, "weight arena chunk (cudaMalloc)");
        } else {
            c->size = sz;
            c->next = im->chunks;
            im->chunks = c;
        }
    }
    if (c) {
        p = c->base + c->used;
        c->used += need;
        c->live++;
    }
    pthread_mutex_unlock(&im->mu);
    return p;
}

/* Return a weight's memory to the arena: its chunk is freed with its last
 * weight. */
static void arena_release(cuda_impl *im, const void *p) {
    pthread_mutex_lock(&im->mu);
    arena_chunk **pp = &im->chunks;
    while (*pp) {
        arena_chunk *c = *pp;
        if ((const char *)p >= c->base && (const char *)p < c->base + c->size) {
            if (--c->live == 0) {
                *pp = c->next;
                cudaFree(c->base);
                free(c);
            }
            break;
        }
        pp = &c->next;
    }
    pthread_mutex_unlock(&im->mu);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

static void *cu_alloc(tolk_ctx *ctx, const tolk_backend *be, size_t bytes) {
    if (bytes == 0) {
        tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: zero-byte allocation", WHO);
        return NULL;
    }
    if (use_device(ctx, impl_of(be))) return NULL;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        tolk_cuda_status(ctx, err, WHO, "cudaMalloc");
        return NULL;
    }
    return p;
}

static void cu_free(const tolk_backend *be, void *p) {
    if (!p) return;
    if (cudaSetDevice(impl_of(be)->device) == cudaSuccess) cudaFree(p);
    (void)cudaGetLastError();
}

static tolk_status cu_copy(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                           size_t bytes, enum cudaMemcpyKind kind, const char *what) {
    if (bytes == 0) return TOLK_OK;
    if (!dst || !src)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: %s: NULL pointer", WHO, what);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    cudaStream_t s = (cudaStream_t)TOLK_CU_STREAM;
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, kind, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    return tolk_cuda_status(ctx, err, WHO, what);
}

static tolk_status cu_upload(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                             size_t bytes) {
    return cu_copy(ctx, be, dst, src, bytes, cudaMemcpyHostToDevice, "upload");
}

static tolk_status cu_download(tolk_ctx *ctx, const tolk_backend *be, void *dst, const void *src,
                               size_t bytes) {
    return cu_copy(ctx, be, dst, src, bytes, cudaMemcpyDeviceToHost,
                   "download (or an earlier kernel of this thread)");
}

static tolk_status cu_copy2d(tolk_ctx *ctx, const tolk_backend *be, float *dst, size_t ld_dst,
                             const float *src, size_t ld_src, size_t rows, size_t cols) {
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols || ld_dst > SIZE_MAX / 4 ||
        ld_src > SIZE_MAX / 4)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bad copy2d arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_status(ctx,
                            cudaMemcpy2DAsync(dst, ld_dst * 4, src, ld_src * 4, cols * 4, rows,
                                              cudaMemcpyDeviceToDevice,
                                              (cudaStream_t)TOLK_CU_STREAM),
                            WHO, "copy2d");
}

/* ------------------------------------------------------------------------ */
/* Weights and vectors                                                      */
/* ------------------------------------------------------------------------ */

/* Rows and columns of a tensor seen as a matrix [d0, d1 * d2 * ...] (a
 * vector is one row); 0 for a bad shape or dtype (as backend_cpu.c). */

/* Upload tensor t (n = rows * cols elements) into dst as dt (F32 or the
 * tensor's own half type): a plain copy, a device-side widening of F16 /
 * BF16, or a host-side dequantisation of I8. Synchronous. */
static tolk_status upload_part(tolk_ctx *ctx, void *dst, tolk_dtype dt, const tolk_tensor *t,
                               size_t n) {
    cudaStream_t s = (cudaStream_t)TOLK_CU_STREAM;
    const size_t es = tolk_dtype_size(t->dtype);
    cudaError_t err;
    if (t->dtype == dt) {
        err = cudaMemcpyAsync(dst, t->data, n * es, cudaMemcpyHostToDevice, s);
        if (err == cudaSuccess) err = cudaStreamSynchronize(s);
        return tolk_cuda_status(ctx, err, WHO, "weight upload");
    }
    if (t->dtype == TOLK_DT_F16 || t->dtype == TOLK_DT_BF16) { /* widen on the device */
        void *tmp = NULL;
        err = cudaMalloc(&tmp, n * 2);
        if (err != cudaSuccess) return tolk_cuda_status(ctx, err, WHO, "weight staging");
        err = cudaMemcpyAsync(tmp, t->data, n * 2, cudaMemcpyHostToDevice, s);
        int rc = 0;
        if (err == cudaSuccess)
            rc = tolk_cu_convert(dst, TOLK_CU_F32, (long long)n, tmp, (int)t->dtype, (long long)n,
                                 1, (long long)n, s);
        if (err == cudaSuccess && rc == 0) err = cudaStreamSynchronize(s);
        cudaFree(tmp);
        if (err != cudaSuccess) return tolk_cuda_status(ctx, err, WHO, "weight widening");
        return tolk_cuda_kstatus(ctx, rc, WHO, "weight widening");
    }
    /* int8 (or float32 into a half weight, which prepare never asks for) */
    float *h = tolk_malloc_array(n, sizeof(float));
    if (!h)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: weight %s: out of host memory", WHO,
                         t->name ? t->name : "?");
    tolk_tensor_to_f32(t, h);
    err = cudaMemcpyAsync(dst, h, n * sizeof(float), cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(s);
    free(h);
    return tolk_cuda_status(ctx, err, WHO, "weight upload");
}

static tolk_status cu_weight_prepare(tolk_ctx *ctx, const tolk_backend *be,
                                     const tolk_tensor *const *parts, int n_parts,
                                     tolk_bweight *out) {
    cuda_impl *im = impl_of(be);
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL weight", WHO);
    memset(out, 0, sizeof *out);
    if (!parts || n_parts < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: no weight parts", WHO);
    int64_t rows = 0, cols = -1;
    int all_f16 = 1, all_bf16 = 1;
    for (int p = 0; p < n_parts; p++) {
        int64_t r = 0, c = 0;
        if (!tolk_tensor_matrix(parts[p], &r, &c))
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: weight %s: bad shape or dtype", WHO,
                             parts[p] && parts[p]->name ? parts[p]->name : "(null)");
        if (cols >= 0 && c != cols)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: weight %s: %lld columns, expected %lld",
                             WHO, parts[p]->name ? parts[p]->name : "?", (long long)c,
                             (long long)cols);
        cols = c;
        if (rows > INT64_MAX - r)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: weight too large", WHO);
        rows += r;
        all_f16 &= parts[p]->dtype == TOLK_DT_F16;
        all_bf16 &= parts[p]->dtype == TOLK_DT_BF16;
    }
    const tolk_dtype dt = !im->keep_half ? TOLK_DT_F32
                          : all_f16      ? TOLK_DT_F16
                          : all_bf16     ? TOLK_DT_BF16
                                         : TOLK_DT_F32;
    size_t n, bytes;
    if ((uint64_t)rows > SIZE_MAX || (uint64_t)cols > SIZE_MAX ||
        !tolk_mul_size((size_t)rows, (size_t)cols, &n) ||
        !tolk_mul_size(n, tolk_dtype_size(dt), &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: weight too large", WHO);
    tolk_status st = use_device(ctx, im);
    if (st) return st;
    char *data = arena_alloc(ctx, im, bytes);
    if (!data) return TOLK_ERR_NOMEM;
    size_t row0 = 0;
    for (int p = 0; p < n_parts && !st; p++) {
        int64_t r = 0, c = 0;
        tolk_tensor_matrix(parts[p], &r, &c);
        st = upload_part(ctx, data + row0 * (size_t)cols * tolk_dtype_size(dt), dt, parts[p],
                         (size_t)r * (size_t)c);
        row0 += (size_t)r;
    }
    if (st) {
        arena_release(im, data);
        return st;
    }
    out->dtype = dt;
    out->rows = rows;
    out->cols = cols;
    out->data = data;
    out->owned = 1;
    return TOLK_OK;
}

static void cu_weight_free(const tolk_backend *be, tolk_bweight *w) {
    if (!w) return;
    if (w->data && w->owned) arena_release(impl_of(be), w->data);
    memset(w, 0, sizeof *w);
}

static tolk_status cu_vector_prepare(tolk_ctx *ctx, const tolk_backend *be,
                                     const tolk_tensor *const *parts, const int64_t *zero_len,
                                     int n_parts, float **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL vector output", WHO);
    *out = NULL;
    if (!parts || n_parts < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: no vector parts", WHO);
    size_t total = 0;
    for (int p = 0; p < n_parts; p++) {
        int64_t r, c, n;
        if (parts[p]) {
            if (!tolk_tensor_matrix(parts[p], &r, &c))
                return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: tensor %s: bad shape or dtype", WHO,
                                 parts[p]->name ? parts[p]->name : "(null)");
            n = r * c;
        } else {
            n = zero_len ? zero_len[p] : 0;
            if (n <= 0)
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bad zero vector length", WHO);
        }
        if ((uint64_t)n > SIZE_MAX || !tolk_add_size(total, (size_t)n, &total))
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: vector too large", WHO);
    }
    float *h = tolk_calloc_array(total, sizeof(float));
    if (!h) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: vector: out of host memory", WHO);
    size_t off = 0;
    for (int p = 0; p < n_parts; p++) {
        if (parts[p]) {
            tolk_tensor_to_f32(parts[p], h + off);
            off += (size_t)tolk_tensor_nelem(parts[p]);
        } else {
            off += (size_t)zero_len[p]; /* calloc: already zero */
        }
    }
    float *d = cu_alloc(ctx, be, total * sizeof(float));
    tolk_status st = d ? cu_upload(ctx, be, d, h, total * sizeof(float)) : TOLK_ERR_NOMEM;
    free(h);
    if (st) {
        cu_free(be, d);
        return st;
    }
    *out = d;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Products                                                                 */
/* ------------------------------------------------------------------------ */

/* Stream-ordered scratch of `bytes` (plus the GEMM workspace after it). */
static tolk_status scratch_get(tolk_ctx *ctx, size_t bytes, char **p, char **ws) {
    *p = NULL;
    *ws = NULL;
    if (bytes > SIZE_MAX - GEMM_WS_BYTES - SCRATCH_ALIGN)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: scratch too large", WHO);
    const size_t head = round_up(bytes, SCRATCH_ALIGN);
    cudaError_t err =
        cudaMallocAsync((void **)p, head + GEMM_WS_BYTES, (cudaStream_t)TOLK_CU_STREAM);
    if (err != cudaSuccess) {
        *p = NULL;
        return tolk_cuda_status(ctx, err, WHO, "scratch (cudaMallocAsync)");
    }
    *ws = *p + head;
    return TOLK_OK;
}

static void scratch_put(char *p) {
    if (p) cudaFreeAsync(p, (cudaStream_t)TOLK_CU_STREAM);
}

static tolk_status cu_linear(tolk_ctx *ctx, const tolk_backend *be, float *y, size_t ldy,
                             const float *x, size_t ldx, size_t M, const tolk_bweight *W,
                             const float *bias, int accumulate) {
    const cuda_impl *im = impl_of(be);
    if (M == 0) return TOLK_OK;
    if (!y || !x || !W || !W->data || W->rows <= 0 || W->cols <= 0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear: NULL argument", WHO);
    const size_t N = (size_t)W->rows, K = (size_t)W->cols;
    if (ldy < N || ldx < K || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || ldx > INT32_MAX ||
        ldy > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear: bad sizes", WHO);
    if (W->dtype != TOLK_DT_F32 && W->dtype != TOLK_DT_F16 && W->dtype != TOLK_DT_BF16)
        return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: linear: weight dtype %d", WHO, (int)W->dtype);
    tolk_status st = use_device(ctx, im);
    if (st) return st;
    const int half = W->dtype != TOLK_DT_F32;
    const size_t xbytes = half ? M * K * 2 : 0; /* < 2^63: M, K < 2^31 */
    char *scr, *ws;
    if ((st = scratch_get(ctx, xbytes, &scr, &ws))) return st;
    const void *xin = x;
    long long ldxin = (long long)ldx;
    int rc = 0;
    if (half) {
        rc = tolk_cu_convert(scr, (int)W->dtype, (long long)K, x, TOLK_CU_F32, (long long)ldx,
                             (long long)M, (long long)K, TOLK_CU_STREAM);
        xin = scr;
        ldxin = (long long)K;
    }
    if (rc == 0)
        rc = tolk_cu_gemm(im->gemm, y, TOLK_CU_F32, (long long)ldy, xin,
                          half ? (int)W->dtype : TOLK_CU_F32, ldxin, W->data, (int)W->dtype,
                          (long long)K, (long long)M, (long long)N, (long long)K, 1.0f,
                          (accumulate & TOLK_LINEAR_ACCUMULATE) ? 1.0f : 0.0f, bias, 0, ws, GEMM_WS_BYTES, TOLK_CU_STREAM);
    scratch_put(scr);
    return tolk_cuda_kstatus(ctx, rc, WHO, "linear");
}

static tolk_status cu_logits(tolk_ctx *ctx, const tolk_backend *be, float *logits, const float *x,
                             size_t M, const tolk_bweight *tok) {
    if (!tok) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: logits: NULL weight", WHO);
    return cu_linear(ctx, be, logits, (size_t)tok->rows, x, (size_t)tok->cols, M, tok, NULL, 0);
}

static tolk_status cu_conv1d(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                             tolk_conv_layout layout, size_t C_in, size_t T_in, int stride,
                             const tolk_bweight *W, const float *bias) {
    const cuda_impl *im = impl_of(be);
    if (!y || !x || !W || !W->data || (stride != 1 && stride != 2) || C_in == 0 || T_in == 0 ||
        C_in > INT32_MAX / 3 || T_in > INT32_MAX ||
        (layout != TOLK_CONV_IN_CT && layout != TOLK_CONV_IN_TC))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: conv1d: bad arguments", WHO);
    const size_t K3 = C_in * 3;
    if ((size_t)W->cols != K3 || W->rows <= 0 || W->rows > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: conv1d: weight has %lld columns, expected %zu * 3", WHO,
                         (long long)W->cols, C_in);
    const size_t T_out = (T_in - 1) / (size_t)stride + 1;
    const size_t es = W->dtype == TOLK_DT_F32 ? 4 : 2;
    size_t n, bytes;
    if (!tolk_mul_size(T_out, K3, &n) || !tolk_mul_size(n, es, &bytes))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: conv1d: too large", WHO);
    tolk_status st = use_device(ctx, im);
    if (st) return st;
    char *scr, *ws;
    if ((st = scratch_get(ctx, bytes, &scr, &ws))) return st;
    /* im2col writes the weight's type directly: no separate conversion */
    int rc = tolk_cu_im2col_k3(scr, (int)W->dtype, x, TOLK_CU_F32,
                               layout == TOLK_CONV_IN_CT ? TOLK_CU_CONV_CT : TOLK_CU_CONV_TC, 1,
                               (int)C_in, (int)T_in, stride, TOLK_CU_STREAM);
    if (rc == 0)
        rc = tolk_cu_gemm(im->gemm, y, TOLK_CU_F32, W->rows, scr, (int)W->dtype, (long long)K3,
                          W->data, (int)W->dtype, (long long)K3, (long long)T_out, W->rows,
                          (long long)K3, 1.0f, 0.0f, bias, 0, ws, GEMM_WS_BYTES, TOLK_CU_STREAM);
    scratch_put(scr);
    return tolk_cuda_kstatus(ctx, rc, WHO, "conv1d");
}

/* ------------------------------------------------------------------------ */
/* Row and elementwise operations                                           */
/* ------------------------------------------------------------------------ */

static tolk_status cu_layernorm(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                                size_t M, size_t D, const float *gamma, const float *beta,
                                float eps) {
    if (M == 0) return TOLK_OK;
    if (!y || !x || !gamma || !beta || D == 0 || D > INT32_MAX || M > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: layernorm: bad arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_layernorm(y, TOLK_CU_F32, (long long)D, x, TOLK_CU_F32,
                                               (long long)D, (long long)M, (int)D, gamma, beta, eps,
                                               TOLK_CU_STREAM),
                             WHO, "layernorm");
}

static tolk_status cu_bias_gelu(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                                size_t M, size_t N, const float *bias) {
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || N > INT32_MAX || M > INT64_MAX / (ldx ? ldx : 1))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bias_gelu: bad arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_bias_gelu(x, (long long)ldx, x, (long long)ldx, (long long)M,
                                               (int)N, bias, TOLK_CU_F32, TOLK_CU_STREAM),
                             WHO, "bias_gelu");
}

static tolk_status cu_softmax(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx, size_t M,
                              size_t N) {
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || N > INT32_MAX || M > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: softmax: bad arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_softmax(x, (long long)ldx, x, (long long)ldx, (long long)M,
                                             (int)N, 1.0f, 0, TOLK_CU_STREAM),
                             WHO, "softmax");
}

static tolk_status cu_add(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *a,
                          const float *b, size_t n) {
    if (n == 0) return TOLK_OK;
    if (!y || !a || !b || n > INT64_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: add: bad arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(
        ctx, tolk_cu_add(y, a, b, (long long)n, NULL, 0, (long long)n, TOLK_CU_F32, TOLK_CU_STREAM),
        WHO, "add");
}

/* ------------------------------------------------------------------------ */
/* Attention and embedding                                                  */
/* ------------------------------------------------------------------------ */

static tolk_status cu_attention(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                                int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                                size_t ldo, float scale) {
    if (n_seqs == 0) return TOLK_OK;
    if (!seqs || n_seqs < 0 || n_head < 1 || d_head < 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention: bad arguments", WHO);
    if (d_head != 32 && d_head != 64 && d_head != 128)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: attention: head width %d (kernels exist for 32, 64, 128)", WHO,
                         d_head);
    const size_t width = (size_t)n_head * (size_t)d_head;
    if (ldq < width || ldkv < width || ldo < width || ldq > INT32_MAX || ldkv > INT32_MAX ||
        ldo > INT32_MAX || n_head > 2047)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention: bad strides", WHO);
    for (int i = 0; i < n_seqs; i++) {
        const tolk_attn_seq *s = &seqs[i];
        if (!s->q || !s->k || !s->v || !s->out || s->n_q < 1 || s->n_kv < 1 ||
            (s->causal != 0 && s->causal != 1) ||
            (s->causal && (s->q_pos0 < 0 || (int64_t)s->q_pos0 + s->n_q > s->n_kv)))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "%s: attention: bad sequence %d (n_q %d, n_kv %d, pos0 %d)", WHO, i,
                             s->n_q, s->n_kv, s->q_pos0);
    }
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    tolk_cu_attn_seq buf[ATT_SEQS_PER_CALL];
    for (int i0 = 0; i0 < n_seqs; i0 += ATT_SEQS_PER_CALL) {
        const int nb = n_seqs - i0 < ATT_SEQS_PER_CALL ? n_seqs - i0 : ATT_SEQS_PER_CALL;
        for (int i = 0; i < nb; i++) {
            const tolk_attn_seq *s = &seqs[i0 + i];
            buf[i] =
                (tolk_cu_attn_seq){s->q, s->k, s->v, s->out, s->n_q, s->n_kv, s->causal, s->q_pos0};
        }
        int rc = tolk_cu_attention_ex(buf, nb, n_head, d_head, (long long)ldq, (long long)ldkv,
                                      (long long)ldo, scale, TOLK_CU_F32, impl_of(be)->attn_tc,
                                      NULL, 0, TOLK_CU_STREAM);
        if (rc) return tolk_cuda_kstatus(ctx, rc, WHO, "attention");
    }
    return TOLK_OK;
}

static tolk_status cu_embed(tolk_ctx *ctx, const tolk_backend *be, float *y,
                            const tolk_bweight *tok, const int *ids, const int *positions, size_t n,
                            const float *pos, size_t n_pos) {
    if (n == 0) return TOLK_OK;
    if (!y || !tok || !tok->data || !ids || !positions || !pos || tok->cols <= 0 ||
        tok->cols > INT32_MAX || n > INT32_MAX / 2)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: embed: bad arguments", WHO);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->rows)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: embed: token id %d of %lld", WHO,
                             ids[i], (long long)tok->rows);
        if (positions[i] < 0 || (size_t)positions[i] >= n_pos)
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: embed: position %d of %zu", WHO,
                             positions[i], n_pos);
    }
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    /* ids and positions travel in stream-ordered scratch; from pageable host
     * memory cudaMemcpyAsync returns once the source has been staged */
    cudaStream_t s = (cudaStream_t)TOLK_CU_STREAM;
    int *d = NULL;
    cudaError_t err = cudaMallocAsync((void **)&d, 2 * n * sizeof(int), s);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(d, ids, n * sizeof(int), cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(d + n, positions, n * sizeof(int), cudaMemcpyHostToDevice, s);
    int rc = 0;
    if (err == cudaSuccess)
        rc = tolk_cu_embed(y, TOLK_CU_F32, tok->cols, d, d + n, (long long)n, (int)tok->cols,
                           tok->data, (int)tok->dtype, tok->rows, pos, (long long)n_pos, s);
    if (d) cudaFreeAsync(d, s);
    if (err != cudaSuccess) return tolk_cuda_status(ctx, err, WHO, "embed");
    return tolk_cuda_kstatus(ctx, rc, WHO, "embed");
}

/* ------------------------------------------------------------------------ */
/* Decoder-step operations over device index arrays (graph-capturable)      */
/* ------------------------------------------------------------------------ */

static tolk_status cu_embed_rows(tolk_ctx *ctx, const tolk_backend *be, float *y,
                                 const tolk_bweight *tok, const int *ids, const int *positions,
                                 size_t n, const float *pos, size_t n_pos) {
    if (n == 0) return TOLK_OK;
    if (!y || !tok || !tok->data || !ids || !positions || !pos || tok->cols <= 0 ||
        tok->cols > INT32_MAX || n > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: embed_rows: bad arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_embed(y, TOLK_CU_F32, tok->cols, ids, positions, (long long)n,
                                           (int)tok->cols, tok->data, (int)tok->dtype, tok->rows,
                                           pos, (long long)n_pos, TOLK_CU_STREAM),
                             WHO, "embed_rows");
}

static tolk_status cu_copy_rows(tolk_ctx *ctx, const tolk_backend *be, float *dst, size_t ld_dst,
                                const int *dst_idx, const float *src, size_t ld_src,
                                const int *src_idx, size_t rows, size_t cols) {
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols || cols > INT32_MAX || rows > INT32_MAX ||
        ld_dst > INT64_MAX / 4 || ld_src > INT64_MAX / 4)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bad copy_rows arguments", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_copy_rows(dst, (long long)ld_dst, dst_idx, src,
                                               (long long)ld_src, src_idx, (long long)rows,
                                               (int)cols, TOLK_CU_F32, TOLK_CU_STREAM),
                             WHO, "copy_rows");
}

static tolk_status cu_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                     size_t ldq, const float *k, const float *v, size_t ldkv,
                                     float *out, size_t ldo, const tolk_attn_desc *desc, int n_seqs,
                                     int max_n_q, int max_n_kv, int n_head, int d_head,
                                     float scale) {
    if (n_seqs == 0 || max_n_q == 0) return TOLK_OK;
    if (!q || !k || !v || !out || !desc || n_seqs < 0 || max_n_q < 0 || max_n_kv < 1 ||
        n_head < 1 || ldq > INT32_MAX || ldkv > INT32_MAX || ldo > INT32_MAX ||
        (int64_t)n_seqs * max_n_q > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention_desc: bad arguments", WHO);
    const cuda_impl *im = impl_of(be);
    tolk_status st = use_device(ctx, im);
    if (st) return st;
    /* the split-KV (flash-decoding) partials live in per-call scratch */
    const size_t wsb = tolk_cu_attention_ws_bytes(n_seqs * max_n_q, n_head, d_head, max_n_kv);
    char *scr = NULL, *gws = NULL;
    if (wsb > 0 && (st = scratch_get(ctx, wsb, &scr, &gws))) return st;
    int rc =
        tolk_cu_attention_desc(q, (long long)ldq, k, v, (long long)ldkv, out, (long long)ldo,
                               (const tolk_cu_attn_desc *)desc, n_seqs, max_n_q, max_n_kv, n_head,
                               d_head, scale, TOLK_CU_F32, im->attn_tc, scr, wsb, TOLK_CU_STREAM);
    scratch_put(scr);
    return tolk_cuda_kstatus(ctx, rc, WHO, "attention_desc");
}

_Static_assert(sizeof(tolk_attn_desc) == sizeof(tolk_cu_attn_desc),
               "backend.h and kernels/attention.h descriptors must agree");

static tolk_status cu_select(tolk_ctx *ctx, const tolk_backend *be, float *logits, size_t ld,
                             int rows, int n, const int *range_off, const int *ranges,
                             const int *row_ts, int k, int *out_idx, float *out_lp) {
    if (rows == 0) return TOLK_OK;
    if (ld > INT32_MAX) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: select: bad stride", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_select_rows(logits, (long long)ld, rows, n, range_off, ranges,
                                                 0, row_ts, k, out_idx, out_lp, TOLK_CU_STREAM),
                             WHO, "select");
}

static tolk_status cu_attn_weights(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                   size_t ldq, const float *k, size_t ldk, int n_q, int n_keys,
                                   const int *heads, int n_heads, int d_head, float scale,
                                   float *out) {
    if (n_q == 0 || n_heads == 0) return TOLK_OK;
    if (ldq > INT32_MAX || ldk > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attn_weights: bad strides", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_kstatus(ctx,
                             tolk_cu_attn_weights(q, (long long)ldq, k, (long long)ldk, n_q, n_keys,
                                                  heads, n_heads, d_head, scale, out,
                                                  TOLK_CU_STREAM),
                             WHO, "attn_weights");
}

/* Graphs by stream capture: the thread's ops go to a private stream in
 * capture mode (thread-local, so other threads' calls are unaffected),
 * and the instantiated graph is launched on the thread's default stream. */
static tolk_status cu_graph_begin(tolk_ctx *ctx, const tolk_backend *be) {
    if (tl_capture) return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: graph capture nested", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    cudaStream_t s = NULL;
    cudaError_t err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (err == cudaSuccess) err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        if (s) cudaStreamDestroy(s);
        return tolk_cuda_status(ctx, err, WHO, "graph capture");
    }
    tl_capture = s;
    return TOLK_OK;
}

static tolk_status cu_graph_end(tolk_ctx *ctx, const tolk_backend *be, void **graph) {
    (void)be;
    if (graph) *graph = NULL;
    cudaStream_t s = tl_capture;
    if (!s) return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: no graph capture to end", WHO);
    tl_capture = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    cudaError_t err = cudaStreamEndCapture(s, &g);
    if (err == cudaSuccess && graph) err = cudaGraphInstantiate(&ex, g, 0);
    if (g) cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    if (err != cudaSuccess) return tolk_cuda_status(ctx, err, WHO, "graph capture");
    if (graph) *graph = ex;
    return TOLK_OK;
}

static tolk_status cu_graph_launch(tolk_ctx *ctx, const tolk_backend *be, void *graph) {
    if (!graph) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL graph", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_status(ctx, cudaGraphLaunch((cudaGraphExec_t)graph, cudaStreamPerThread), WHO,
                            "graph launch");
}

static void cu_graph_free(const tolk_backend *be, void *graph) {
    if (!graph) return;
    if (cudaSetDevice(impl_of(be)->device) == cudaSuccess)
        cudaGraphExecDestroy((cudaGraphExec_t)graph);
    (void)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */

static void cu_destroy(tolk_backend *be) {
    if (!be) return;
    cuda_impl *im = impl_of(be);
    if (im) {
        if (cudaSetDevice(im->device) == cudaSuccess)
            (void)cudaStreamSynchronize((cudaStream_t)TOLK_CU_STREAM);
        while (im->chunks) {
            arena_chunk *c = im->chunks;
            im->chunks = c->next;
            cudaFree(c->base);
            free(c);
        }
        tolk_cu_gemm_destroy(im->gemm);
        pthread_mutex_destroy(&im->mu);
        (void)cudaGetLastError();
        free(im);
    }
    free(be);
}

tolk_status tolk_backend_cuda_new(tolk_ctx *ctx, const tolk_backend_params *params,
                                  tolk_backend **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: NULL output", WHO);
    *out = NULL;
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        (void)cudaGetLastError();
        return tolk_fail(ctx, TOLK_ERR_NO_DEVICE, "%s: no CUDA device", WHO);
    }
    const int dev = ctx ? ctx->params.cuda_device : 0;
    if (dev < 0 || dev >= n_dev)
        return tolk_fail(ctx, TOLK_ERR_NO_DEVICE, "%s: CUDA device %d of %d", WHO, dev, n_dev);
    tolk_status st = tolk_cuda_status(ctx, cudaSetDevice(dev), WHO, "cudaSetDevice");
    if (st) return st;
    /* Keep stream-ordered scratch cached in the pool between calls. */
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
        uint64_t keep = UINT64_MAX;
        (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    (void)cudaGetLastError();

    tolk_backend *be = calloc(1, sizeof *be);
    cuda_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", WHO);
    }
    if (pthread_mutex_init(&im->mu, NULL) != 0) {
        free(be);
        free(im);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: cannot create a mutex", WHO);
    }
    im->device = dev;
    im->keep_half = params ? params->keep_f16 != 0 : 1;
    /* tensor-core attention with half weights; float32 in the parity mode.
     * TOLK_ATTN_TC=f32|f16|bf16 overrides (comparisons, debugging). */
    im->attn_tc = im->keep_half ? TOLK_CU_F16 : TOLK_CU_F32;
    const char *tc = getenv("TOLK_ATTN_TC");
    if (tc && strcmp(tc, "f32") == 0) im->attn_tc = TOLK_CU_F32;
    if (tc && strcmp(tc, "f16") == 0) im->attn_tc = TOLK_CU_F16;
    if (tc && strcmp(tc, "bf16") == 0) im->attn_tc = TOLK_CU_BF16;
    int rc = tolk_cu_gemm_create(&im->gemm);
    if (rc) {
        pthread_mutex_destroy(&im->mu);
        free(be);
        free(im);
        return tolk_cuda_kstatus(ctx, rc, WHO, "cuBLASLt handle");
    }
    be->name = "cuda";
    be->impl = im;
    be->destroy = cu_destroy;
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->copy2d = cu_copy2d;
    be->weight_prepare = cu_weight_prepare;
    be->weight_free = cu_weight_free;
    be->vector_prepare = cu_vector_prepare;
    be->linear = cu_linear;
    be->layernorm = cu_layernorm;
    be->bias_gelu = cu_bias_gelu;
    be->softmax = cu_softmax;
    be->add = cu_add;
    be->attention = cu_attention;
    be->conv1d = cu_conv1d;
    be->embed = cu_embed;
    be->logits = cu_logits;
    be->embed_rows = cu_embed_rows;
    be->copy_rows = cu_copy_rows;
    be->attention_desc = cu_attention_desc;
    be->select = cu_select;
    be->attn_weights = cu_attn_weights;
    be->graph_begin = cu_graph_begin;
    be->graph_end = cu_graph_end;
    be->graph_launch = cu_graph_launch;
    be->graph_free = cu_graph_free;
    *out = be;
    return TOLK_OK;
}

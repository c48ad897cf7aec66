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
 *     float32 on the device (the exact-parity mode); float32 weights are
 *     rounded to half on the device (keep_f16); int8 is dequantised on the
 *     host (then rounded on the device with keep_f16).
 *   - Vectors (vector_prepare) and alloc() are plain cudaMalloc buffers
 *     (released with free()); the network preallocates its activation
 *     arenas through alloc once per encode / KV cache.
 *   - Per-call scratch (float32 -> half activations, im2col columns, the
 *     cuBLASLt workspace: 32 MiB on Hopper and newer, 4 MiB before, token
 *     ids) is stream-ordered (cudaMallocAsync /
 *     cudaFreeAsync) from the device's default pool, whose release threshold
 *     is raised at creation so that the memory stays cached between calls.
 *
 * Streams and threads: every operation runs on cudaStreamPerThread, so each
 * host thread has its own stream and the backend may be shared by threads.
 * Operations only enqueue; download() synchronises the calling thread's
 * stream and so reports errors of earlier kernels too. upload() also
 * synchronises (the source may be reused at once, pinned or not).
 *
 * Precision: with keep_f16 every weight is half precision on the device
 * (float16 / bfloat16 tensors as they are; float32 and int8 tensors rounded
 * to float16 when prepared, or to bfloat16 when a value would overflow
 * float16) and products multiply on tensor cores with float32
 * accumulation; the backend then sets half_acts, so the network hands the
 * products float16 inputs written by their producers (layernorm_h,
 * bias_gelu_h, the attention's TOLK_ATTN_OUT_F16, a float16 product
 * output: the encoder's q, k, v, fc1's, with its GELU in cuBLASLt's
 * epilogue under TOLK_GELU_TANH); a float32 input is converted first
 * (tolk_cu_convert), the residual stream stays float32 (products
 * accumulate into it). Without keep_f16 activations are float32 and every
 * product is a float32 GEMM (CUBLAS_COMPUTE_32F, no TF32).
 *
 * Errors: each operation first reports an error an earlier operation left
 * pending (an asynchronous kernel fault surfaces at the next runtime call)
 * as that, not as its own; TOLK_CUDA_SYNC=1 in the environment (debugging)
 * waits after every operation so that a kernel fault is reported by the
 * operation that launched it.
 *
 * Counting: the census hooks (cuda_census.c, TOLK_CUDA_CENSUS) count each
 * operation's kernels, graph nodes, bytes and flops; in the dry mode the
 * operations count and return without launching anything.
 */
#include "cuda_census.h"
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
#include "../kernels/norm_linear.h"
#include "../kernels/copy_rows.h"
#include "../kernels/select.h"
#include "../kernels/softmax.h"
#include "../kernels/ssru.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)TOLK_DT_F32 == (int)TOLK_CU_F32 && (int)TOLK_DT_F16 == (int)TOLK_CU_F16 &&
                   (int)TOLK_DT_BF16 == (int)TOLK_CU_BF16,
               "tolk_dtype and the kernels' storage types must agree");

#define WHO "cuda_backend"
#define ARENA_CHUNK ((size_t)64 << 20)    /* minimum weight-arena chunk */
#define GEMM_WS_SMALL ((size_t)4 << 20)   /* cuBLASLt workspace per product before Hopper */
#define GEMM_WS_HOPPER ((size_t)32 << 20) /* sm_90 and newer */
#define F16_MAX 65504.0f
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
    int attn_tc;    /* arithmetic of many-query attention: TOLK_CU_F32 / F16 / BF16 */
    int sync_ops;   /* TOLK_CUDA_SYNC=1: wait after every operation */
    size_t gemm_ws; /* cuBLASLt workspace bytes per product */
    tolk_cu_gemm_ctx *gemm;
    pthread_mutex_t mu;  /* guards chunks */
    arena_chunk *chunks; /* every chunk, newest first */
    cu_census cs;        /* counting hooks (mutable behind its own mutex) */
} cuda_impl;

static cuda_impl *impl_of(const tolk_backend *be) {
    return (cuda_impl *)be->impl;
}

/* Whether the calling thread is capturing a graph. */
static int capturing(void) {
    return tl_capture != NULL;
}

/* The dry census mode: count, launch nothing. */
static int dry(const cuda_impl *im) {
    return im->cs.mode == 2;
}

static void count(const cuda_impl *im, const char *kind, int kernels, double bytes, double flops) {
    cu_census_add((cu_census *)&im->cs, kind, kernels, bytes, flops, capturing());
}

/* Make im's device current for the calling thread (a per-thread setting). */
static tolk_status use_device(tolk_ctx *ctx, const cuda_impl *im) {
    if (tl_capture) return TOLK_OK; /* graph_begin made it current */
    return tolk_cuda_status(ctx, cudaSetDevice(im->device), WHO, "cudaSetDevice");
}

/* Start operation op on the calling thread: make the device current and
 * report an error an EARLIER operation left pending (an asynchronous kernel
 * fault surfaces at the next runtime call) as such, not as op's. */
static tolk_status op_begin(tolk_ctx *ctx, const cuda_impl *im, const char *op) {
    tolk_status st = use_device(ctx, im);
    if (st) return st;
    const cudaError_t e = cudaPeekAtLastError();
    if (e == cudaSuccess) return TOLK_OK;
    (void)cudaGetLastError();
    return tolk_fail(ctx, e == cudaErrorMemoryAllocation ? TOLK_ERR_NOMEM : TOLK_ERR_CUDA,
                     "%s: an earlier operation failed (found before %s): %s", WHO, op,
                     cudaGetErrorString(e));
}

/* Finish op: its launcher's return code rc as op's status; with
 * TOLK_CUDA_SYNC=1 (outside graph capture) also wait for its kernels, so a
 * fault in them is reported by op. */
static tolk_status op_end(tolk_ctx *ctx, const cuda_impl *im, int rc, const char *op) {
    if (rc) return tolk_cuda_kstatus(ctx, rc, WHO, op);
    if (im->sync_ops && !capturing()) {
        const cudaError_t e = cudaStreamSynchronize(cur_stream());
        if (e != cudaSuccess) return tolk_cuda_status(ctx, e, WHO, op);
    }
    return TOLK_OK;
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
    if (dry(impl_of(be)) && kind == cudaMemcpyDeviceToHost) {
        memset(dst, 0, bytes); /* dry census: nothing ran; zeros are valid token ids */
        return TOLK_OK;
    }
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

static void *cu_host_alloc(tolk_ctx *ctx, const tolk_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    if (bytes == 0) {
        tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: host_alloc of 0 bytes", WHO);
        return NULL;
    }
    const cudaError_t err = cudaMallocHost(&p, bytes);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        tolk_fail(ctx, TOLK_ERR_NOMEM,
                  "%s: cannot allocate %zu bytes of page-locked host memory: %s", WHO, bytes,
                  cudaGetErrorString(err));
        return NULL;
    }
    return p;
}

static void cu_host_free(const tolk_backend *be, void *p) {
    (void)be;
    if (p) cudaFreeHost(p);
}

/* backend.h upload_async: enqueued on the thread's stream, not waited for. */
static tolk_status cu_upload_async(tolk_ctx *ctx, const tolk_backend *be, void *dst,
                                   const void *src, size_t bytes) {
    if (bytes == 0) return TOLK_OK;
    if (!dst || !src) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: upload: NULL pointer", WHO);
    tolk_status st = use_device(ctx, impl_of(be));
    if (st) return st;
    return tolk_cuda_status(
        ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)TOLK_CU_STREAM),
        WHO, "upload");
}

/* ------------------------------------------------------------------------ */
/* Weights and vectors                                                      */
/* ------------------------------------------------------------------------ */

/* Upload tensor t (n = rows * cols elements) into dst as dt: a plain copy
 * when the types agree, a device-side widening of F16 / BF16 to F32, else
 * through float32 (t's own data, or a host dequantisation of I8 / other
 * half types), rounded on the device to a half dt. Synchronous. */
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
    if (dt == TOLK_DT_F32 && (t->dtype == TOLK_DT_F16 || t->dtype == TOLK_DT_BF16)) {
        /* widen on the device */
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
    /* through float32 on the host */
    const float *h = t->dtype == TOLK_DT_F32 ? (const float *)t->data : NULL;
    float *hown = NULL;
    if (!h) {
        hown = tolk_malloc_array(n, sizeof(float));
        if (!hown)
            return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: weight %s: out of host memory", WHO,
                             t->name ? t->name : "?");
        tolk_tensor_to_f32(t, hown);
        h = hown;
    }
    if (dt == TOLK_DT_F32) {
        err = cudaMemcpyAsync(dst, h, n * sizeof(float), cudaMemcpyHostToDevice, s);
        if (err == cudaSuccess) err = cudaStreamSynchronize(s);
        free(hown);
        return tolk_cuda_status(ctx, err, WHO, "weight upload");
    }
    /* float32 -> half on the device */
    void *tmp = NULL;
    err = cudaMalloc(&tmp, n * sizeof(float));
    int rc = 0;
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(tmp, h, n * sizeof(float), cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess)
        rc = tolk_cu_convert(dst, (int)dt, (long long)n, tmp, TOLK_CU_F32, (long long)n, 1,
                             (long long)n, s);
    if (err == cudaSuccess && rc == 0) err = cudaStreamSynchronize(s);
    if (tmp) cudaFree(tmp);
    free(hown);
    if (err != cudaSuccess) return tolk_cuda_status(ctx, err, WHO, "weight rounding to half");
    return tolk_cuda_kstatus(ctx, rc, WHO, "weight rounding to half");
}

/* An upper bound of |x| over tensor t's values where that decides between
 * float16 and bfloat16 storage (0 for float16 tensors, which fit). */
static float part_absmax(const tolk_tensor *t, size_t n) {
    float m = 0.0f;
    if (t->dtype == TOLK_DT_F32) {
        const float *x = t->data;
        for (size_t i = 0; i < n; i++) {
            const float a = fabsf(x[i]);
            if (!(a <= m)) m = a; /* NaN propagates as "does not fit" */
        }
    } else if (t->dtype == TOLK_DT_BF16) {
        const uint16_t *x = t->data;
        for (size_t i = 0; i < n; i++) {
            const float a = fabsf(tolk_bf16_to_f32(x[i]));
            if (!(a <= m)) m = a;
        }
    } else if (t->dtype == TOLK_DT_I8 && t->scale) {
        /* y = q / scale with |q| <= 127 */
        for (int64_t r = 0; r < t->shape[0]; r++) {
            const float a = 127.0f / fabsf(t->scale[r]);
            if (!(a <= m)) m = a;
        }
    }
    return m;
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
    /* keep_half: half storage whatever the tensors' type (float32 / int8
     * are rounded; float16 unless a value would overflow it) */
    tolk_dtype dt = TOLK_DT_F32;
    if (im->keep_half) {
        dt = all_f16 ? TOLK_DT_F16 : all_bf16 ? TOLK_DT_BF16 : TOLK_DT_F16;
        for (int p = 0; p < n_parts && dt == TOLK_DT_F16 && !all_f16; p++) {
            int64_t r = 0, c = 0;
            tolk_tensor_matrix(parts[p], &r, &c);
            if (!(part_absmax(parts[p], (size_t)r * (size_t)c) <= F16_MAX)) dt = TOLK_DT_BF16;
        }
    }
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
    for (int p = 0; p < n_parts && !st && !dry(im); p++) { /* dry census: no upload */
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

/* The calling thread's bound scratch (scratch_bind): buf of size bytes
 * for backend im; need: the most any operation asked for meanwhile. */
static _Thread_local struct {
    const cuda_impl *im;
    char *buf;
    size_t size, need;
} tl_bound;

static size_t cu_scratch_bind(const tolk_backend *be, void *buf, size_t bytes) {
    const size_t need = tl_bound.im == impl_of(be) ? tl_bound.need : 0;
    tl_bound.im = impl_of(be); /* buf NULL: nothing to take, needs still recorded */
    tl_bound.buf = buf;
    tl_bound.size = buf ? bytes : 0;
    tl_bound.need = 0;
    return need;
}

/* Stream-ordered scratch of `bytes` plus the GEMM workspace after it: the
 * thread's bound scratch (after its zero-kept counters) when it is large
 * enough, else allocated (two graph memory nodes with its scratch_put
 * while capturing). */
static tolk_status scratch_get(tolk_ctx *ctx, const cuda_impl *im, size_t bytes, char **p,
                               char **ws) {
    *p = NULL;
    *ws = NULL;
    if (bytes > SIZE_MAX - im->gemm_ws - SCRATCH_ALIGN - TOLK_SCRATCH_SYNC_BYTES)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: scratch too large", WHO);
    const size_t head = round_up(bytes, SCRATCH_ALIGN);
    if (tl_bound.im == im) {
        const size_t need = TOLK_SCRATCH_SYNC_BYTES + head + im->gemm_ws;
        if (need > tl_bound.need) tl_bound.need = need;
        if (need <= tl_bound.size) {
            *p = tl_bound.buf + TOLK_SCRATCH_SYNC_BYTES;
            *ws = *p + head;
            return TOLK_OK;
        }
    }
    cu_census_nodes((cu_census *)&im->cs, 2, 0, capturing());
    cudaError_t err = cudaMallocAsync((void **)p, head + im->gemm_ws, (cudaStream_t)TOLK_CU_STREAM);
    if (err != cudaSuccess) {
        *p = NULL;
        return tolk_cuda_status(ctx, err, WHO, "scratch (cudaMallocAsync)");
    }
    *ws = *p + head;
    return TOLK_OK;
}

static void scratch_put(char *p) {
    if (p && (!tl_bound.buf || p != tl_bound.buf + TOLK_SCRATCH_SYNC_BYTES))
        cudaFreeAsync(p, (cudaStream_t)TOLK_CU_STREAM);
}

/* The bound scratch's zero-kept counters when they hold n ints, else NULL. */
static int *scratch_sync(const cuda_impl *im, size_t n) {
    if (tl_bound.im != im || !tl_bound.buf || tl_bound.size < TOLK_SCRATCH_SYNC_BYTES ||
        n > TOLK_SCRATCH_SYNC_BYTES / sizeof(int))
        return NULL;
    return (int *)(void *)tl_bound.buf;
}

/* Count a product y [M, N] (ys bytes per element, read too when
 * accumulating) = x [M, K] . W^T (+ bias), x of W's type, batch times with
 * x shared. */
static void count_gemm(const cuda_impl *im, size_t M, size_t N, size_t K, const tolk_bweight *W,
                       int accumulate, int bias, int batch, double ys) {
    const double es = W->dtype == TOLK_DT_F32 ? 4.0 : 2.0;
    const double b = (double)M * K * es +
                     batch * ((double)N * K * es + (double)M * N * ys * (accumulate ? 2 : 1) +
                              (bias ? (double)N * 4.0 : 0.0));
    count(im, "gemm", 1, b, 2.0 * M * N * K * batch);
}

/* x [M, K] (row stride ldx; float16 when x_f16, else float32) in the type
 * of W: x itself when the types agree, or converted into scr (row stride
 * K) — one convert kernel. */
static int half_input(const cuda_impl *im, const tolk_bweight *W, const void *x, int x_f16,
                      size_t ldx, size_t M, size_t K, char *scr, const void **xin,
                      long long *ldxin) {
    const int xt = x_f16 ? TOLK_CU_F16 : TOLK_CU_F32;
    *xin = x;
    *ldxin = (long long)ldx;
    if ((int)W->dtype == xt) return 0;
    count(im, "convert", 1, (double)M * K * ((x_f16 ? 2.0 : 4.0) + tolk_dtype_size(W->dtype)), 0);
    *xin = scr;
    *ldxin = (long long)K;
    if (dry(im)) return 0;
    return tolk_cu_convert(scr, (int)W->dtype, (long long)K, x, xt, (long long)ldx, (long long)M,
                           (long long)K, TOLK_CU_STREAM);
}

static tolk_status cu_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                             const void *x, size_t ldx, size_t M, const tolk_bweight *W,
                             const void *bias, int flags) {
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
    const int xh = (flags & TOLK_LINEAR_X_F16) != 0, yh = (flags & TOLK_LINEAR_Y_F16) != 0;
    const int acc = (flags & TOLK_LINEAR_ACCUMULATE) != 0, gelu = (flags & TOLK_LINEAR_GELU) != 0;
    if (yh && acc)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: linear: a float16 output takes no accumulation", WHO);
    if (gelu && !yh)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: linear: the GELU epilogue needs a float16 output", WHO);
    tolk_status st = op_begin(ctx, im, "linear");
    if (st) return st;
    /* scratch: x in W's type unless it is already; a float16 y from a
     * product that cannot write it (W not float16) goes through float32,
     * its float16 bias widened for the float32 epilogue */
    const int x_direct = (int)W->dtype == (xh ? TOLK_CU_F16 : TOLK_CU_F32);
    const int y_direct = !yh || W->dtype == TOLK_DT_F16;
    const size_t xbytes = x_direct ? 0 : (M * K * tolk_dtype_size(W->dtype) + 255) / 256 * 256;
    const size_t ybytes = y_direct ? 0 : M * N * sizeof(float);
    const size_t bbytes = y_direct || !bias ? 0 : (N * sizeof(float) + 255) / 256 * 256;
    char *scr, *ws;
    if ((st = scratch_get(ctx, im, xbytes + bbytes + ybytes, &scr, &ws))) return st;
    const void *xin;
    long long ldxin;
    int rc = half_input(im, W, x, xh, ldx, M, K, scr, &xin, &ldxin);
    const void *bp = bias;
    if (bbytes) {
        count(im, "convert", 1, (double)N * 6.0, 0);
        bp = scr + xbytes;
        if (rc == 0 && !dry(im))
            rc = tolk_cu_convert(scr + xbytes, TOLK_CU_F32, (long long)N, bias, TOLK_CU_F16,
                                 (long long)N, 1, (long long)N, TOLK_CU_STREAM);
    }
    count_gemm(im, M, N, K, W, acc, bias != NULL, 1, yh && y_direct ? 2.0 : 4.0);
    void *yp = y_direct ? y : (void *)(scr + xbytes + bbytes);
    const long long ldyp = y_direct ? (long long)ldy : (long long)N;
    const int yt = yh && y_direct ? TOLK_CU_F16 : TOLK_CU_F32;
    if (rc == 0 && !dry(im))
        rc = tolk_cu_gemm(im->gemm, yp, yt, ldyp, xin, (int)W->dtype, ldxin, W->data, (int)W->dtype,
                          (long long)K, (long long)M, (long long)N, (long long)K, 1.0f,
                          acc ? 1.0f : 0.0f, bp, gelu ? TOLK_CU_GEMM_GELU : 0, ws, im->gemm_ws,
                          TOLK_CU_STREAM);
    if (!y_direct) {
        count(im, "convert", 1, (double)M * N * 6.0, 0);
        if (rc == 0 && !dry(im))
            rc = tolk_cu_convert(y, TOLK_CU_F16, (long long)ldy, yp, TOLK_CU_F32, ldyp,
                                 (long long)M, (long long)N, TOLK_CU_STREAM);
    }
    scratch_put(scr);
    return op_end(ctx, im, rc, "linear");
}

static tolk_status cu_linear_batched(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                     size_t y_stride, const float *x, size_t ldx, size_t M,
                                     const tolk_bweight *W, int batch, const void *bias,
                                     int flags) {
    const cuda_impl *im = impl_of(be);
    if (M == 0) return TOLK_OK;
    if (!y || !x || !W || !W->data || batch < 1 || W->rows <= 0 || W->rows % batch != 0 ||
        W->cols <= 0 || (flags & ~TOLK_LINEAR_Y_F16))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear_batched: bad arguments", WHO);
    const size_t N = (size_t)(W->rows / batch), K = (size_t)W->cols;
    if (ldy < N || ldx < K || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || ldx > INT32_MAX ||
        ldy > INT32_MAX || (batch > 1 && y_stride < M * ldy) || y_stride > INT64_MAX / 4)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: linear_batched: bad sizes", WHO);
    /* a float16 y straight from the product needs float16 weights (its
     * epilogue then takes the caller's float16 bias) */
    const int yh = (flags & TOLK_LINEAR_Y_F16) != 0;
    if (yh && W->dtype != TOLK_DT_F16)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: linear_batched: a float16 output needs float16 weights", WHO);
    tolk_status st = op_begin(ctx, im, "linear_batched");
    if (st) return st;
    const size_t xbytes = W->dtype != TOLK_DT_F32 ? (M * K * 2 + 255) / 256 * 256 : 0;
    char *scr, *ws;
    if ((st = scratch_get(ctx, im, xbytes, &scr, &ws))) return st;
    const void *xin;
    long long ldxin;
    int rc = half_input(im, W, x, 0, ldx, M, K, scr, &xin, &ldxin); /* once for every product */
    count_gemm(im, M, N, K, W, 0, bias != NULL, batch, yh ? 2.0 : 4.0);
    if (rc == 0 && !dry(im))
        rc = tolk_cu_gemm_batched(im->gemm, y, yh ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ldy,
                                  (long long)y_stride, xin, (int)W->dtype, ldxin, 0, W->data,
                                  (int)W->dtype, (long long)K, (long long)(N * K), (long long)M,
                                  (long long)N, (long long)K, 1.0f, 0.0f, bias, (long long)N, batch,
                                  0, ws, im->gemm_ws, TOLK_CU_STREAM);
    scratch_put(scr);
    return op_end(ctx, im, rc, "linear_batched");
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
    tolk_status st = op_begin(ctx, im, "conv1d");
    if (st) return st;
    char *scr, *ws;
    if ((st = scratch_get(ctx, im, bytes, &scr, &ws))) return st;
    /* im2col writes the weight's type directly: no separate conversion */
    count(im, "im2col", 1, (double)C_in * T_in * 4.0 + (double)bytes, 0);
    count_gemm(im, T_out, (size_t)W->rows, K3, W, 0, bias != NULL, 1, 4.0);
    int rc = 0;
    if (!dry(im)) {
        rc = tolk_cu_im2col_k3(scr, (int)W->dtype, x, TOLK_CU_F32,
                               layout == TOLK_CONV_IN_CT ? TOLK_CU_CONV_CT : TOLK_CU_CONV_TC, 1,
                               (int)C_in, (int)T_in, stride, TOLK_CU_STREAM);
        if (rc == 0)
            rc = tolk_cu_gemm(im->gemm, y, TOLK_CU_F32, W->rows, scr, (int)W->dtype, (long long)K3,
                              W->data, (int)W->dtype, (long long)K3, (long long)T_out, W->rows,
                              (long long)K3, 1.0f, 0.0f, bias, 0, ws, im->gemm_ws, TOLK_CU_STREAM);
    }
    scratch_put(scr);
    return op_end(ctx, im, rc, "conv1d");
}

/* ------------------------------------------------------------------------ */
/* Row and elementwise operations                                           */
/* ------------------------------------------------------------------------ */

/* layernorm into y of type yt (float32 or float16): one kernel. */
static tolk_status layernorm_to(tolk_ctx *ctx, const tolk_backend *be, void *y, int yt,
                                const float *x, size_t M, size_t D, const float *gamma,
                                const float *beta, float eps, const char *op) {
    const cuda_impl *im = impl_of(be);
    if (M == 0) return TOLK_OK;
    if (!y || !x || !gamma || !beta || D == 0 || D > INT32_MAX || M > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: %s: bad arguments", WHO, op);
    tolk_status st = op_begin(ctx, im, op);
    if (st) return st;
    const double ys = yt == TOLK_CU_F16 ? 2.0 : 4.0;
    count(im, "layernorm", 1, (double)M * D * (4.0 + ys) + (double)D * 8.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_layernorm(y, yt, (long long)D, x, TOLK_CU_F32, (long long)D, (long long)M,
                                    (int)D, gamma, beta, eps, TOLK_CU_STREAM),
                  op);
}

static tolk_status cu_layernorm(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *x,
                                size_t M, size_t D, const float *gamma, const float *beta,
                                float eps) {
    return layernorm_to(ctx, be, y, TOLK_CU_F32, x, M, D, gamma, beta, eps, "layernorm");
}

static tolk_status cu_layernorm_h(tolk_ctx *ctx, const tolk_backend *be, uint16_t *y,
                                  const float *x, size_t M, size_t D, const float *gamma,
                                  const float *beta, float eps) {
    return layernorm_to(ctx, be, y, TOLK_CU_F16, x, M, D, gamma, beta, eps, "layernorm_h");
}

_Static_assert(TOLK_NORM_LINEAR_ROWS == TOLK_CU_NORM_LINEAR_ROWS, "norm_linear's row bound");

/* LayerNorm + product (+ erf GELU) for <= 16 rows: one kernel
 * (kernels/norm_linear.h); the shapes it does not hold are refused with
 * TOLK_ERR_UNSUPPORTED before anything runs (the network then runs
 * layernorm_h and linear). */
static tolk_status cu_norm_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  const float *x, size_t ldx, size_t M, const float *gamma,
                                  const float *beta, float eps, const tolk_bweight *W,
                                  const float *bias, int flags) {
    const cuda_impl *im = impl_of(be);
    if (M == 0) return TOLK_OK;
    if (!y || !x || !gamma || !beta || !W || !W->data || W->rows <= 0 || W->cols <= 0 ||
        (flags & ~(TOLK_NORM_LINEAR_Y_F16 | TOLK_NORM_LINEAR_GELU)) || ldy < (size_t)W->rows ||
        ldx < (size_t)W->cols || ldx > INT32_MAX || ldy > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: norm_linear: bad arguments", WHO);
    const size_t N = (size_t)W->rows, K = (size_t)W->cols;
    if (M > TOLK_NORM_LINEAR_ROWS || W->dtype != TOLK_DT_F16 || N > INT32_MAX ||
        !tolk_cu_norm_linear_fits((int)K))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: norm_linear: %zu rows of width %zu, weight dtype %d not fused", WHO,
                         M, K, (int)W->dtype);
    tolk_status st = op_begin(ctx, im, "norm_linear");
    if (st) return st;
    const int yh = (flags & TOLK_NORM_LINEAR_Y_F16) != 0;
    count(im, "norm_linear", 1,
          (double)N * K * 2.0 + (double)M * K * 4.0 + (double)M * N * (yh ? 2.0 : 4.0) +
              (bias ? (double)N * 4.0 : 0.0) + (double)K * 8.0,
          2.0 * M * N * K);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_norm_linear(y, yh ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ldy, x,
                                      (long long)ldx, (int)M, (int)K, gamma, beta, eps, W->data,
                                      (int)N, bias, (flags & TOLK_NORM_LINEAR_GELU) != 0,
                                      TOLK_CU_STREAM),
                  "norm_linear");
}

/* bias_gelu in place on x of type dt (float32 or float16): one kernel. */
static tolk_status bias_gelu_in(tolk_ctx *ctx, const tolk_backend *be, void *x, int dt, size_t ldx,
                                size_t M, size_t N, const float *bias, const char *op) {
    const cuda_impl *im = impl_of(be);
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || N > INT32_MAX || M > INT64_MAX / (ldx ? ldx : 1))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: %s: bad arguments", WHO, op);
    tolk_status st = op_begin(ctx, im, op);
    if (st) return st;
    const double es = dt == TOLK_CU_F16 ? 2.0 : 4.0;
    count(im, "bias_gelu", 1, (double)M * N * 2.0 * es + (bias ? (double)N * 4.0 : 0.0), 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_bias_gelu(x, (long long)ldx, x, (long long)ldx, (long long)M, (int)N,
                                    bias, dt, TOLK_CU_STREAM),
                  op);
}

static tolk_status cu_bias_gelu(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                                size_t M, size_t N, const float *bias) {
    return bias_gelu_in(ctx, be, x, TOLK_CU_F32, ldx, M, N, bias, "bias_gelu");
}

static tolk_status cu_bias_gelu_h(tolk_ctx *ctx, const tolk_backend *be, uint16_t *x, size_t ldx,
                                  size_t M, size_t N, const float *bias) {
    return bias_gelu_in(ctx, be, x, TOLK_CU_F16, ldx, M, N, bias, "bias_gelu_h");
}

static tolk_status cu_bias_relu(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx,
                                size_t M, size_t N, const float *bias) {
    const cuda_impl *im = impl_of(be);
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || N > INT32_MAX || M > INT64_MAX / (ldx ? ldx : 1))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bias_relu: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "bias_relu");
    if (st) return st;
    count(im, "bias_relu", 1, (double)M * N * 8.0 + (bias ? (double)N * 4.0 : 0.0), 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_bias_relu(x, (long long)ldx, (long long)M, (int)N, bias, TOLK_CU_STREAM),
                  "bias_relu");
}

static tolk_status cu_ssru(tolk_ctx *ctx, const tolk_backend *be, float *out, float *c,
                           const float *xf, size_t ldxf, size_t M, size_t D) {
    const cuda_impl *im = impl_of(be);
    if (M == 0 || D == 0) return TOLK_OK;
    if (!out || !c || !xf || D > INT32_MAX / 2 || ldxf < 2 * D || M > INT64_MAX / (ldxf ? ldxf : 1))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: ssru: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "ssru");
    if (st) return st;
    count(im, "ssru", 1, (double)M * D * 20.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_ssru(out, c, xf, (long long)ldxf, (long long)M, (int)D, TOLK_CU_STREAM),
                  "ssru");
}

static tolk_status cu_softmax(tolk_ctx *ctx, const tolk_backend *be, float *x, size_t ldx, size_t M,
                              size_t N) {
    const cuda_impl *im = impl_of(be);
    if (M == 0 || N == 0) return TOLK_OK;
    if (!x || ldx < N || N > INT32_MAX || M > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: softmax: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "softmax");
    if (st) return st;
    count(im, "softmax", 1, (double)M * N * 8.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_softmax(x, (long long)ldx, x, (long long)ldx, (long long)M, (int)N, 1.0f,
                                  0, TOLK_CU_STREAM),
                  "softmax");
}

static tolk_status cu_add(tolk_ctx *ctx, const tolk_backend *be, float *y, const float *a,
                          const float *b, size_t n) {
    const cuda_impl *im = impl_of(be);
    if (n == 0) return TOLK_OK;
    if (!y || !a || !b || n > INT64_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: add: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "add");
    if (st) return st;
    count(im, "add", 1, (double)n * 12.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(
        ctx, im,
        tolk_cu_add(y, a, b, (long long)n, NULL, 0, (long long)n, TOLK_CU_F32, TOLK_CU_STREAM),
        "add");
}

/* ------------------------------------------------------------------------ */
/* Attention and embedding                                                  */
/* ------------------------------------------------------------------------ */

/* Count an attention call's launches (plan) and its traffic: q (float32),
 * out (out_bytes per element) and K/V (kv_bytes) of kv_rows key rows,
 * n_head * d_head columns each, plus the split path's partial results;
 * flops for score_pairs (query row, key) pairs. */
static void count_attention(const cuda_impl *im, const tolk_cu_attn_plan *pl, double q_rows,
                            double kv_rows, double score_pairs, int n_head, int d_head,
                            double q_bytes, double kv_bytes, double out_bytes, double extra_bytes) {
    const double w = (double)n_head * d_head;
    const double qkvo =
        (q_rows * (q_bytes + out_bytes) + 2.0 * kv_rows * kv_bytes) * w + extra_bytes;
    const double f = 4.0 * score_pairs * w;
    const int main_launches = pl->flash + pl->rows + pl->split;
    if (main_launches == 0) return;
    /* the traffic over the kinds in proportion to their launches */
    const char *flash_kind = im->attn_tc == TOLK_CU_F32 ? "attn_flash_f32" : "attn_flash_tc";
    const double part = pl->partial_floats * 4.0;
    if (pl->flash)
        count(im, flash_kind, pl->flash, qkvo * pl->flash / main_launches,
              f * pl->flash / main_launches);
    if (pl->rows)
        count(im, "attn_rows", pl->rows, qkvo * pl->rows / main_launches,
              f * pl->rows / main_launches);
    if (pl->split) {
        const double share = (double)pl->split / main_launches;
        /* partial: q, K/V, partials written; combine: partials read, out
         * written — in the partial kernel's last blocks when fused */
        const double comb = q_rows * w * out_bytes * share + part;
        const int fused = pl->fused < pl->split ? pl->fused : pl->split;
        count(im, "attn_split", pl->split,
              (2.0 * kv_rows * kv_bytes + q_rows * q_bytes) * w * share + extra_bytes * share +
                  part + comb * fused / pl->split,
              f * share);
        if (pl->split > fused)
            count(im, "attn_combine", pl->split - fused, comb * (pl->split - fused) / pl->split, 0);
    }
}

/* The exact traffic of a descriptor call, from the descriptors (census
 * outside graph capture: downloads them, synchronising): query rows, key
 * rows read (sequences sharing K/V in a grouped split launch read them
 * once, as attention_split.cu does) and score pairs. 0 when unavailable. */
static int desc_traffic(const tolk_attn_desc *desc, int n_seqs, int max_n_q, int max_n_kv,
                        int grouped, double *q_rows, double *kv_rows, double *pairs) {
    if (n_seqs > 65536) return 0;
    tolk_attn_desc *h = malloc((size_t)n_seqs * sizeof *h);
    if (!h) return 0;
    if (cudaMemcpy(h, desc, (size_t)n_seqs * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        (void)cudaGetLastError();
        free(h);
        return 0;
    }
    *q_rows = *kv_rows = *pairs = 0;
    for (int s = 0; s < n_seqs; s++) {
        const tolk_attn_desc *d = &h[s];
        const int nq = d->n_q < max_n_q ? (d->n_q > 0 ? d->n_q : 0) : max_n_q;
        const int nk = d->n_kv < max_n_kv ? d->n_kv : max_n_kv;
        if (nq == 0) continue;
        *q_rows += nq;
        *pairs += d->causal ? (double)nq * (d->q_pos0 + (nq + 1) / 2.0) : (double)nq * nk;
        const tolk_attn_desc *p = s > 0 ? &h[s - 1] : NULL;
        const int shared = grouped && p && s % 8 != 0 && !d->causal && !p->causal &&
                           p->kv_row == d->kv_row && p->n_kv == d->n_kv;
        if (!shared) *kv_rows += d->causal ? d->q_pos0 + nq : nk;
    }
    free(h);
    return 1;
}

static tolk_status cu_attention(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                                int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                                size_t ldo, float scale, int flags);

/* attention with a float16 output where the kernels cannot write one (the
 * float32 / bfloat16 arithmetic of attention_type): the float32 result in
 * scratch rows, then one convert per sequence. */
static tolk_status attention_via_f32(tolk_ctx *ctx, const tolk_backend *be,
                                     const tolk_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                                     size_t ldq, size_t ldkv, size_t ldo, float scale) {
    const cuda_impl *im = impl_of(be);
    size_t rows = 0;
    for (int i = 0; i < n_seqs; i++)
        rows += (size_t)seqs[i].n_q;
    if (rows > SIZE_MAX / ldo / sizeof(float) / 2)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: attention: too large", WHO);
    tolk_attn_seq *s2 = malloc((size_t)n_seqs * sizeof *s2);
    if (!s2) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: attention: out of memory", WHO);
    char *scr = NULL, *gws = NULL;
    tolk_status st = scratch_get(ctx, im, rows * ldo * sizeof(float), &scr, &gws);
    size_t r = 0;
    for (int i = 0; i < n_seqs && !st; i++) {
        s2[i] = seqs[i];
        s2[i].out = (float *)(void *)scr + r * ldo;
        r += (size_t)seqs[i].n_q;
    }
    if (!st) st = cu_attention(ctx, be, s2, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale, 0);
    const size_t width = (size_t)n_head * (size_t)d_head;
    for (int i = 0; i < n_seqs && !st; i++)
        st = be->convert_rows(ctx, be, seqs[i].out, 1, ldo, s2[i].out, 0, ldo, (size_t)seqs[i].n_q,
                              width);
    scratch_put(scr);
    free(s2);
    return st;
}

static tolk_status cu_attention(tolk_ctx *ctx, const tolk_backend *be, const tolk_attn_seq *seqs,
                                int n_seqs, int n_head, int d_head, size_t ldq, size_t ldkv,
                                size_t ldo, float scale, int flags) {
    const cuda_impl *im = impl_of(be);
    if (n_seqs == 0) return TOLK_OK;
    if (!seqs || n_seqs < 0 || n_head < 1 || d_head < 1 ||
        (flags & ~(TOLK_ATTN_OUT_F16 | TOLK_ATTN_QKV_F16)) ||
        ((flags & TOLK_ATTN_QKV_F16) && !(flags & TOLK_ATTN_OUT_F16)))
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
    tolk_status st = op_begin(ctx, im, "attention");
    if (st) return st;
    /* a float16 output: written by the tensor-core kernels directly; with
     * another arithmetic (attention_type) through float32 and a convert.
     * float16 q, k, v too (QKV_F16): every arithmetic's kernels read and
     * write float16 storage (tensor cores: the cp.async path) */
    const int oh = flags != 0, qh = (flags & TOLK_ATTN_QKV_F16) != 0;
    const int direct = qh || (oh && im->attn_tc == TOLK_CU_F16);
    if (oh && !direct)
        return attention_via_f32(ctx, be, seqs, n_seqs, n_head, d_head, ldq, ldkv, ldo, scale);
    const int st_in = qh ? TOLK_CU_F16 : TOLK_CU_F32; /* storage of q, k, v */
    tolk_cu_attn_seq buf[ATT_SEQS_PER_CALL];
    for (int i0 = 0; i0 < n_seqs; i0 += ATT_SEQS_PER_CALL) {
        const int nb = n_seqs - i0 < ATT_SEQS_PER_CALL ? n_seqs - i0 : ATT_SEQS_PER_CALL;
        double qr = 0, kr = 0, pairs = 0;
        for (int i = 0; i < nb; i++) {
            const tolk_attn_seq *s = &seqs[i0 + i];
            buf[i] =
                (tolk_cu_attn_seq){s->q, s->k, s->v, s->out, s->n_q, s->n_kv, s->causal, s->q_pos0};
            qr += s->n_q;
            kr += s->causal ? s->q_pos0 + s->n_q : s->n_kv;
            pairs += s->causal ? (double)s->n_q * (s->q_pos0 + (s->n_q + 1) / 2.0)
                               : (double)s->n_q * s->n_kv;
        }
        if (im->cs.mode) {
            tolk_cu_attn_plan pl;
            if (tolk_cu_attention_plan(buf, nb, n_head, d_head, im->attn_tc, 0, &pl) == 0)
                count_attention(im, &pl, qr, kr, pairs, n_head, d_head, qh ? 2.0 : 4.0,
                                qh ? 2.0 : 4.0, oh ? 2.0 : 4.0, 0.0);
        }
        if (dry(im)) continue;
        int rc = tolk_cu_attention_ex_out(
            buf, nb, n_head, d_head, (long long)ldq, (long long)ldkv, (long long)ldo, scale, st_in,
            oh ? TOLK_CU_F16 : TOLK_CU_F32, im->attn_tc, NULL, 0, TOLK_CU_STREAM);
        if ((st = op_end(ctx, im, rc, "attention"))) return st;
    }
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoder-step operations over device index arrays (graph-capturable)      */
/* ------------------------------------------------------------------------ */

static tolk_status cu_embed_rows(tolk_ctx *ctx, const tolk_backend *be, float *y,
                                 const tolk_bweight *tok, const int *ids, const int *positions,
                                 size_t n, const float *pos, size_t n_pos) {
    const cuda_impl *im = impl_of(be);
    if (n == 0) return TOLK_OK;
    if (!y || !tok || !tok->data || !ids || !positions || !pos || tok->cols <= 0 ||
        tok->cols > INT32_MAX || n > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: embed_rows: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "embed_rows");
    if (st) return st;
    const double es = tok->dtype == TOLK_DT_F32 ? 4.0 : 2.0;
    count(im, "embed", 1, (double)n * tok->cols * (es + 8.0), 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_embed(y, TOLK_CU_F32, tok->cols, ids, positions, (long long)n,
                                (int)tok->cols, tok->data, (int)tok->dtype, tok->rows, pos,
                                (long long)n_pos, TOLK_CU_STREAM),
                  "embed_rows");
}

static tolk_status cu_copy_rows(tolk_ctx *ctx, const tolk_backend *be, float *dst, size_t ld_dst,
                                const int *dst_idx, const float *src, size_t ld_src,
                                const int *src_idx, size_t rows, size_t cols) {
    const cuda_impl *im = impl_of(be);
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols || cols > INT32_MAX || rows > INT32_MAX ||
        ld_dst > INT64_MAX / 4 || ld_src > INT64_MAX / 4)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: bad copy_rows arguments", WHO);
    tolk_status st = op_begin(ctx, im, "copy_rows");
    if (st) return st;
    count(im, "copy_rows", 1, (double)rows * cols * 8.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_copy_rows(dst, (long long)ld_dst, dst_idx, src, (long long)ld_src,
                                    src_idx, (long long)rows, (int)cols, TOLK_CU_F32,
                                    TOLK_CU_STREAM),
                  "copy_rows");
}

/* attention_desc: the descriptor kernels (kernels/attention.h); with a
 * float16 operand (flags) the mixed-storage few-query path. */
static tolk_status cu_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                     size_t ldq, const void *k, const void *v, size_t ldkv,
                                     void *out, size_t ldo, const tolk_attn_desc *desc, int n_seqs,
                                     int max_n_q, int max_n_kv, int n_head, int d_head, float scale,
                                     int flags) {
    if (n_seqs == 0 || max_n_q == 0) return TOLK_OK;
    if (!q || !k || !v || !out || !desc || n_seqs < 0 || max_n_q < 0 || max_n_kv < 1 ||
        n_head < 1 || ldq > INT32_MAX || ldkv > INT32_MAX || ldo > INT32_MAX ||
        (int64_t)n_seqs * max_n_q > INT32_MAX ||
        (flags & ~(TOLK_ATTN_KV_F16 | TOLK_ATTN_OUT_F16 | TOLK_ATTN_APPEND)))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: attention_desc: bad arguments", WHO);
    const cuda_impl *im = impl_of(be);
    const int kvh = (flags & TOLK_ATTN_KV_F16) != 0, oh = (flags & TOLK_ATTN_OUT_F16) != 0;
    const int app = (flags & TOLK_ATTN_APPEND) != 0;
    if (app && (max_n_q > 1 || ldq < 3 * (size_t)n_head * (size_t)d_head))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "%s: attention_desc: the K/V append takes one new row per sequence and "
                         "fused q rows",
                         WHO);
    tolk_status st = op_begin(ctx, im, "attention_desc");
    if (st) return st;
    /* the split-KV (flash-decoding) partials live in per-call scratch;
     * the bound scratch's counters let it combine in one kernel */
    const size_t wsb = tolk_cu_attention_ws_bytes(n_seqs * max_n_q, n_head, d_head, max_n_kv);
    int *sync = scratch_sync(im, (size_t)n_seqs * (size_t)max_n_q * (size_t)n_head);
    if (im->cs.mode) {
        /* exact traffic from the descriptors outside capture; while
         * capturing, at the launch's bounds (every sequence max_n_q rows
         * over max_n_kv keys of its own) */
        tolk_cu_attn_plan pl;
        if (tolk_cu_attention_desc_plan(n_seqs, max_n_q, max_n_kv, n_head, d_head,
                                        flags ? TOLK_CU_F32 : im->attn_tc, wsb, sync != NULL,
                                        &pl) == 0) {
            if (flags) { /* a half operand never takes the flash path: row kernels */
                pl.rows += pl.flash;
                pl.flash = 0;
            }
            double qr = (double)n_seqs * max_n_q, kr = (double)n_seqs * max_n_kv,
                   pr = (double)n_seqs * max_n_q * max_n_kv;
            if (!capturing())
                desc_traffic(desc, n_seqs, max_n_q, max_n_kv, pl.grouped, &qr, &kr, &pr);
            /* with the append: each sequence's new K/V read from its q row and written */
            const double ab =
                app ? (double)n_seqs * 2.0 * n_head * d_head * (4.0 + (kvh ? 2.0 : 4.0)) : 0.0;
            count_attention(im, &pl, qr, kr, pr, n_head, d_head, 4.0, kvh ? 2.0 : 4.0,
                            oh ? 2.0 : 4.0, ab);
        }
    }
    char *scr = NULL, *gws = NULL;
    if (wsb > 0 && (st = scratch_get(ctx, im, wsb, &scr, &gws))) return st;
    int rc = 0;
    if (dry(im)) {
    } else if (flags) {
        rc = tolk_cu_attention_desc_mixed(
            q, (long long)ldq, k, v, kvh ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ldkv, out,
            oh ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ldo, (const tolk_cu_attn_desc *)desc, n_seqs,
            max_n_q, max_n_kv, n_head, d_head, scale, app, scr, wsb, sync, TOLK_CU_STREAM);
    } else {
        rc = tolk_cu_attention_desc(q, (long long)ldq, k, v, (long long)ldkv, out, (long long)ldo,
                                    (const tolk_cu_attn_desc *)desc, n_seqs, max_n_q, max_n_kv,
                                    n_head, d_head, scale, TOLK_CU_F32, im->attn_tc, scr, wsb, sync,
                                    TOLK_CU_STREAM);
    }
    scratch_put(scr);
    return op_end(ctx, im, rc, "attention_desc");
}

/* Row conversions between float32 and float16 (kernels/convert.cu). */
static tolk_status cu_convert_rows(tolk_ctx *ctx, const tolk_backend *be, void *dst, int dst_f16,
                                   size_t ld_dst, const void *src, int src_f16, size_t ld_src,
                                   size_t rows, size_t cols) {
    const cuda_impl *im = impl_of(be);
    if (rows == 0 || cols == 0) return TOLK_OK;
    if (!dst || !src || ld_dst < cols || ld_src < cols || ld_dst > INT64_MAX / 4 ||
        ld_src > INT64_MAX / 4 || rows > INT32_MAX)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: convert_rows: bad arguments", WHO);
    tolk_status st = op_begin(ctx, im, "convert_rows");
    if (st) return st;
    count(im, "convert", 1, (double)rows * cols * ((dst_f16 ? 2.0 : 4.0) + (src_f16 ? 2.0 : 4.0)),
          0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_convert(dst, dst_f16 ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ld_dst, src,
                                  src_f16 ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ld_src,
                                  (long long)rows, (long long)cols, TOLK_CU_STREAM),
                  "convert_rows");
}

_Static_assert(sizeof(tolk_attn_desc) == sizeof(tolk_cu_attn_desc),
               "backend.h and kernels/attention.h descriptors must agree");

static tolk_status cu_select(tolk_ctx *ctx, const tolk_backend *be, float *logits, size_t ld,
                             int rows, int n, const int *range_off, const int *ranges,
                             const int *row_ts, int k, int *out_idx, float *out_lp) {
    const cuda_impl *im = impl_of(be);
    if (rows == 0) return TOLK_OK;
    if (ld > INT32_MAX) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: select: bad stride", WHO);
    tolk_status st = op_begin(ctx, im, "select");
    if (st) return st;
    count(im, "select", 1, (double)rows * n * 4.0, 0);
    if (dry(im)) return TOLK_OK;
    return op_end(ctx, im,
                  tolk_cu_select_rows(logits, (long long)ld, rows, n, range_off, ranges, 0, row_ts,
                                      k, out_idx, out_lp, TOLK_CU_STREAM),
                  "select");
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

static void cu_stats(const tolk_backend *be, tolk_backend_stats *out) {
    if (!out) return;
    tolk_cu_gemm_counts c;
    tolk_cu_gemm_stats(impl_of(be)->gemm, &c);
    out->products = c.products;
    out->fallbacks = c.fallbacks;
}

static void cu_census_read(const tolk_backend *be, tolk_census *out, int reset) {
    cu_census_get(&impl_of(be)->cs, out, reset);
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
        cu_census_destroy(&im->cs);
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
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        (void)cudaGetLastError();
    im->gemm_ws = major >= 9 ? GEMM_WS_HOPPER : GEMM_WS_SMALL;
    const char *sync = getenv("TOLK_CUDA_SYNC");
    im->sync_ops = sync && strcmp(sync, "1") == 0;
    if (cu_census_init(&im->cs) != 0) im->cs.mode = 0;
    /* tensor-core attention with half weights; float32 in the parity mode.
     * The model's attention_type chooses; with auto, TOLK_ATTN_TC=f32|f16|bf16
     * is the process default (comparisons, debugging). */
    im->attn_tc = im->keep_half ? TOLK_CU_F16 : TOLK_CU_F32;
    be->half_acts = im->keep_half;
    const int attn = params ? params->attn : TOLK_ATTENTION_AUTO;
    const char *tc = getenv("TOLK_ATTN_TC");
    if (attn == TOLK_ATTENTION_AUTO && tc) {
        if (strcmp(tc, "f32") == 0) im->attn_tc = TOLK_CU_F32;
        if (strcmp(tc, "f16") == 0) im->attn_tc = TOLK_CU_F16;
        if (strcmp(tc, "bf16") == 0) im->attn_tc = TOLK_CU_BF16;
    }
    if (attn == TOLK_ATTENTION_F32) im->attn_tc = TOLK_CU_F32;
    if (attn == TOLK_ATTENTION_F16) im->attn_tc = TOLK_CU_F16;
    if (attn == TOLK_ATTENTION_BF16) im->attn_tc = TOLK_CU_BF16;
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
    be->host_alloc = cu_host_alloc;
    be->host_free = cu_host_free;
    be->upload_async = cu_upload_async;
    be->weight_prepare = cu_weight_prepare;
    be->weight_free = cu_weight_free;
    be->vector_prepare = cu_vector_prepare;
    be->linear = cu_linear;
    be->layernorm = cu_layernorm;
    be->layernorm_h = cu_layernorm_h;
    be->norm_linear = cu_norm_linear;
    be->bias_gelu = cu_bias_gelu;
    be->bias_gelu_h = cu_bias_gelu_h;
    be->bias_relu = cu_bias_relu;
    be->ssru = cu_ssru;
    be->softmax = cu_softmax;
    be->add = cu_add;
    be->attention = cu_attention;
    be->conv1d = cu_conv1d;
    be->logits = cu_logits;
    be->embed_rows = cu_embed_rows;
    be->copy_rows = cu_copy_rows;
    be->attention_desc = cu_attention_desc;
    be->convert_rows = cu_convert_rows;
    be->scratch_bind = cu_scratch_bind;
    be->select = cu_select;
    be->attn_weights = cu_attn_weights;
    be->graph_begin = cu_graph_begin;
    be->graph_end = cu_graph_end;
    be->graph_launch = cu_graph_launch;
    be->graph_free = cu_graph_free;
    /* TOLK_CUDA_BATCHED=0: no batched products (set_cross per layer; A/B timing) */
    const char *bat = getenv("TOLK_CUDA_BATCHED");
    be->linear_batched = bat && strcmp(bat, "0") == 0 ? NULL : cu_linear_batched;
    be->stats = cu_stats;
    be->census = cu_census_read;
    *out = be;
    return TOLK_OK;
}

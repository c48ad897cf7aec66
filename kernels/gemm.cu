/*
 * gemm.cu — linear layers through cuBLASLt (see gemm.h). CPU twin:
 * backend_cpu.c's linear (OpenBLAS sgemm) and ref_gemm in
 * tests/test_cuda_kernels.c (a double-precision triple loop). Reference
 * behaviour: torch.nn.functional.linear in float32.
 *
 * Row-major y [M, N] = x [M, K] . w^T is, in cuBLAS's column-major terms,
 * Y' [N, M] = W' [K, N]^T . X' [K, M] with W' = w (ld ldw), X' = x (ld ldx),
 * Y' = y (ld ldy): transa = T, transb = N, and the bias epilogue adds a
 * vector along Y's N rows. Batched products add a stride per operand
 * (STRIDED_BATCH_OFFSET; 0 for an operand shared by the batch).
 *
 * Plan cache: a problem (shape, strides, batch, types, pointer alignments,
 * flags, workspace) is hashed (FNV-1a) into an open-addressed table of
 * CACHE_SLOTS entries; an entry keeps the cuBLASLt descriptors and the
 * algorithm the heuristic chose, so a repeated product (every decoder step)
 * costs one hash probe and one cublasLtMatmul, not 4 descriptor creations
 * and a heuristic query. The bias pointer (per call) is written into the
 * entry's matmul descriptor under the entry's lock, held through
 * cublasLtMatmul (which reads it). Entries are never evicted (a full table
 * makes later new shapes build throw-away descriptors per call).
 *
 * Shapes cuBLASLt cannot do: only a heuristic answer of "not supported"
 * (CUBLAS_STATUS_NOT_SUPPORTED, or no algorithm) is cached; any other
 * failure of the heuristic is retried on the next call. Either way that
 * call runs gemm_tiled_kernel, a plain 16 x 16 shared-memory tiled product
 * (~100x slower), and is counted: tolk_cu_gemm_stats reports products and
 * fallbacks, and the library hands the count on (tolk_timings.gemm_fallbacks)
 * instead of printing.
 */
#include "gemm.h"
#include "kcommon.cuh"

#include <atomic>
#include <cublasLt.h>
#include <mutex>
#include <thread>
#include <new>
#include <string.h>

using namespace tolkcu;

#define CACHE_SLOTS 1024 /* power of two */
#define CACHE_PROBES 16

struct gemm_key {
    long long M, N, K, ldx, ldw, ldy, sx, sw, sy, sb;
    int batch, x_dtype, y_dtype, has_bias, beta_nonzero, flags;
    int align_x, align_w, align_y, align_b;
    size_t ws;
};

/* Descriptors of one problem. */
struct lt_problem {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t a = NULL, b = NULL, c = NULL;
    void release() {
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
        op = NULL, a = b = c = NULL;
    }
};

struct gemm_entry {
    std::atomic<int> state{0}; /* 0 free, 1 being filled, 2 ready */
    uint64_t hash = 0;
    gemm_key key;
    int usable = 0; /* the heuristic found an algorithm (else "not supported") */
    cublasLtMatmulAlgo_t algo;
    lt_problem p;
    std::mutex use; /* bias pointer + cublasLtMatmul */
};

struct tolk_cu_gemm_ctx {
    cublasLtHandle_t lt;
    gemm_entry cache[CACHE_SLOTS];
    std::atomic<unsigned long long> calls{0}, fallbacks{0}, unsupported{0};
};

extern "C" int tolk_cu_gemm_create(tolk_cu_gemm_ctx **out) {
    if (!out) return TOLK_CU_EINVAL;
    *out = NULL;
    tolk_cu_gemm_ctx *g = new (std::nothrow) tolk_cu_gemm_ctx;
    if (!g) return (int)cudaErrorMemoryAllocation;
    const cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        delete g;
        return TOLK_CU_GEMM_EBLAS + (int)s;
    }
    *out = g;
    return 0;
}

extern "C" void tolk_cu_gemm_destroy(tolk_cu_gemm_ctx *g) {
    if (!g) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (g->cache[i].state.load() == 2) g->cache[i].p.release();
    cublasLtDestroy(g->lt);
    delete g;
}

extern "C" void tolk_cu_gemm_stats(const tolk_cu_gemm_ctx *g, tolk_cu_gemm_counts *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!g) return;
    out->products = g->calls.load();
    out->fallbacks = g->fallbacks.load();
    out->unsupported_shapes = g->unsupported.load();
}

/* ------------------------------------------------------------------------ */

template <typename TX, typename TY>
static __global__ void gemm_tiled_kernel(TY *y, long long ldy, const TX *__restrict__ x,
                                         long long ldx, const TX *__restrict__ w, long long ldw,
                                         long long M, long long N, long long K, float alpha,
                                         float beta, const TY *__restrict__ bias, int gelu) {
    __shared__ float xs[16][17], ws[16][17];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long m = (long long)blockIdx.y * 16 + ty, n = (long long)blockIdx.x * 16 + tx;
    const long long wn = (long long)blockIdx.x * 16 + ty; /* the w row this thread loads */
    float acc = 0.0f;
    for (long long k0 = 0; k0 < K; k0 += 16) {
        xs[ty][tx] = (m < M && k0 + tx < K) ? to_f(x[m * ldx + k0 + tx]) : 0.0f;
        ws[ty][tx] = (wn < N && k0 + tx < K) ? to_f(w[wn * ldw + k0 + tx]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; kk++)
            acc = fmaf(xs[ty][kk], ws[tx][kk], acc);
        __syncthreads();
    }
    if (m < M && n < N) {
        float v = alpha * acc;
        if (beta != 0.0f) v += beta * to_f(y[m * ldy + n]);
        if (bias) v += to_f(bias[n]);
        if (gelu) v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        y[m * ldy + n] = from_f<TY>(v);
    }
}

static int gemm_tiled(const gemm_key &k, void *y, const void *x, const void *w, float alpha,
                      float beta, const void *bias, cudaStream_t st) {
    if ((k.M + 15) / 16 > 65535) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((k.N + 15) / 16), (unsigned)((k.M + 15) / 16)), block(16, 16);
    TOLK_CU_DISPATCH(k.x_dtype, TX, TOLK_CU_DISPATCH(k.y_dtype, TY, {
                         for (int b = 0; b < k.batch; b++) {
                             gemm_tiled_kernel<TX, TY><<<grid, block, 0, st>>>(
                                 (TY *)y + b * k.sy, k.ldy, (const TX *)x + b * k.sx, k.ldx,
                                 (const TX *)w + b * k.sw, k.ldw, k.M, k.N, k.K, alpha, beta,
                                 bias ? (const TY *)bias + b * k.sb : NULL,
                                 (k.flags & TOLK_CU_GEMM_GELU) != 0);
                             const int rc = (int)cudaGetLastError();
                             if (rc) return rc;
                         }
                     }));
    return 0;
}

/* ------------------------------------------------------------------------ */

static cudaDataType_t cuda_type(int dt) {
    return dt == TOLK_CU_F16 ? CUDA_R_16F : dt == TOLK_CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* The largest power of two (<= 256) dividing the address: cuBLASLt's
 * heuristic assumes 256-byte aligned buffers unless told otherwise. */
static int ptr_align(const void *p) {
    const unsigned long long a = (unsigned long long)(uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (unsigned long long)al) != 0)
        al >>= 1;
    return al;
}

static uint64_t key_hash(const gemm_key &k) {
    const unsigned char *b = (const unsigned char *)&k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof k; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

#define LT_TRY(call)                                                                               \
    do {                                                                                           \
        const cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)s_;                      \
    } while (0)

static int lt_batch(cublasLtMatrixLayout_t l, int batch, long long stride) {
    if (batch <= 1) return 0;
    const int32_t n = batch;
    const int64_t s = stride;
    LT_TRY(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n));
    LT_TRY(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s,
                                            sizeof s));
    return 0;
}

/* Descriptors of problem k (the bias pointer is set per call). */
static int lt_setup(lt_problem &p, const gemm_key &k) {
    const cublasComputeType_t ct = (k.x_dtype == TOLK_CU_F32 && (k.flags & TOLK_CU_GEMM_TF32))
                                       ? CUBLAS_COMPUTE_32F_FAST_TF32
                                       : CUBLAS_COMPUTE_32F;
    LT_TRY(cublasLtMatmulDescCreate(&p.op, ct, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    const int gelu = (k.flags & TOLK_CU_GEMM_GELU) != 0;
    if (gelu && !k.has_bias) {
        const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_GELU;
        LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    }
    if (k.has_bias) {
        const cublasLtEpilogue_t ep = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
        LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
        /* bias type: the default, D's type (float32, or the half type of a
         * half output) */
        if (k.batch > 1) {
            const int64_t sb = k.sb;
            LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &sb,
                                                  sizeof sb));
        }
    }
    const cudaDataType_t xt = cuda_type(k.x_dtype), yt = cuda_type(k.y_dtype);
    LT_TRY(cublasLtMatrixLayoutCreate(&p.a, xt, (uint64_t)k.K, (uint64_t)k.N, k.ldw));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.b, xt, (uint64_t)k.K, (uint64_t)k.M, k.ldx));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.c, yt, (uint64_t)k.N, (uint64_t)k.M, k.ldy));
    int rc = lt_batch(p.a, k.batch, k.sw);
    if (!rc) rc = lt_batch(p.b, k.batch, k.sx);
    if (!rc) rc = lt_batch(p.c, k.batch, k.sy);
    return rc;
}

/* The heuristic's algorithm for k. Returns 0 with *found = 1 (an
 * algorithm), 0 with *found = 0 and *cacheable = 1 ("not supported": no
 * algorithm exists), or an error with *cacheable = 0 (try again later). */
static int lt_heuristic(tolk_cu_gemm_ctx *g, const gemm_key &k, const lt_problem &p,
                        cublasLtMatmulAlgo_t *algo, int *found, int *cacheable) {
    *found = 0;
    *cacheable = 0;
    cublasLtMatmulPreference_t pref = NULL;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = k.ws;
    const uint32_t ax = (uint32_t)k.align_x, aw = (uint32_t)k.align_w, ay = (uint32_t)k.align_y;
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                 &aw, sizeof aw);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                 &ax, sizeof ax);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                 &ay, sizeof ay);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &ay, sizeof ay);
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int n_res = 0;
    cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
    if (s == CUBLAS_STATUS_SUCCESS)
        hs = cublasLtMatmulAlgoGetHeuristic(g->lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &n_res);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)s;
    if (hs == CUBLAS_STATUS_NOT_SUPPORTED ||
        (hs == CUBLAS_STATUS_SUCCESS && (n_res < 1 || res.state != CUBLAS_STATUS_SUCCESS))) {
        *cacheable = 1;
        return 0;
    }
    if (hs != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)hs;
    *found = 1;
    *algo = res.algo;
    return 0;
}

/* The cache entry of k: found ready, or filled now (the heuristic runs once
 * per problem). NULL when the table has no room or the heuristic failed in
 * a way worth retrying (then *rc is that failure, or 0). */
static gemm_entry *entry_for(tolk_cu_gemm_ctx *g, const gemm_key &k, int *rc) {
    *rc = 0;
    const uint64_t h = key_hash(k);
    for (int probe = 0; probe < CACHE_PROBES; probe++) {
        gemm_entry &e = g->cache[(h + (uint64_t)probe) & (CACHE_SLOTS - 1)];
        int st = e.state.load(std::memory_order_acquire);
        if (st == 0) {
            int expect = 0;
            if (!e.state.compare_exchange_strong(expect, 1, std::memory_order_acq_rel)) {
                st = expect;
            } else {
                /* ours to fill */
                e.hash = h;
                e.key = k;
                int r = lt_setup(e.p, k);
                int found = 0, cacheable = 0;
                if (!r) r = lt_heuristic(g, k, e.p, &e.algo, &found, &cacheable);
                if (r || (!found && !cacheable)) {
                    e.p.release();
                    e.state.store(0, std::memory_order_release); /* retry later */
                    *rc = r;
                    return NULL;
                }
                e.usable = found;
                if (!found) g->unsupported.fetch_add(1);
                e.state.store(2, std::memory_order_release);
                return &e;
            }
        }
        while (st == 1) { /* another thread is filling it: wait (heuristic: microseconds) */
            std::this_thread::yield();
            st = e.state.load(std::memory_order_acquire);
        }
        if (st == 2 && e.hash == h && memcmp(&e.key, &k, sizeof k) == 0) return &e;
        if (st == 0) probe--; /* the filler gave up: look at this slot again */
    }
    return NULL;
}

static int lt_run(tolk_cu_gemm_ctx *g, const lt_problem &p, const cublasLtMatmulAlgo_t *algo,
                  const gemm_key &k, void *y, const void *x, const void *w, float alpha, float beta,
                  const void *bias, void *workspace, cudaStream_t st) {
    if (k.has_bias)
        LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof bias));
    LT_TRY(cublasLtMatmul(g->lt, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, algo,
                          workspace, k.ws, st));
    return (int)cudaGetLastError();
}

extern "C" int tolk_cu_gemm_batched(tolk_cu_gemm_ctx *g, void *y, int y_dtype, long long ldy,
                                    long long y_stride, const void *x, int x_dtype, long long ldx,
                                    long long x_stride, const void *w, int w_dtype, long long ldw,
                                    long long w_stride, long long M, long long N, long long K,
                                    float alpha, float beta, const void *bias,
                                    long long bias_stride, int batch, int flags, void *workspace,
                                    size_t workspace_bytes, void *stream) {
    if (x_dtype != w_dtype ||
        (x_dtype != TOLK_CU_F32 && x_dtype != TOLK_CU_F16 && x_dtype != TOLK_CU_BF16))
        return TOLK_CU_EINVAL;
    if (y_dtype != TOLK_CU_F32 && y_dtype != x_dtype) return TOLK_CU_EINVAL;
    if (M < 0 || N < 0 || K < 1 || ldx < K || ldw < K || ldy < N || batch < 1)
        return TOLK_CU_EINVAL;
    if (x_stride < 0 || w_stride < 0 || y_stride < 0 || bias_stride < 0) return TOLK_CU_EINVAL;
    if (batch > 1 && y_stride < M * ldy) return TOLK_CU_EINVAL; /* outputs must not overlap */
    if ((flags & TOLK_CU_GEMM_GELU) && beta != 0.0f) return TOLK_CU_EINVAL;
    if (M == 0 || N == 0) return 0;
    if (!y || !x || !w) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;

    gemm_key k;
    memset(&k, 0, sizeof k); /* padding takes part in hashing and memcmp */
    k.M = M;
    k.N = N;
    k.K = K;
    k.ldx = ldx;
    k.ldw = ldw;
    k.ldy = ldy;
    k.batch = batch;
    if (batch > 1) k.sx = x_stride, k.sw = w_stride, k.sy = y_stride, k.sb = bias ? bias_stride : 0;
    k.x_dtype = x_dtype;
    k.y_dtype = y_dtype;
    k.has_bias = bias != NULL;
    k.beta_nonzero = beta != 0.0f;
    k.flags = flags & (TOLK_CU_GEMM_TF32 | TOLK_CU_GEMM_GELU);
    k.align_x = ptr_align(x);
    k.align_w = ptr_align(w);
    k.align_y = ptr_align(y);
    k.align_b = bias ? ptr_align(bias) : 0;
    k.ws = workspace ? workspace_bytes : 0;
    if (g) g->calls.fetch_add(1, std::memory_order_relaxed);
    if (!g || (flags & TOLK_CU_GEMM_FALLBACK)) return gemm_tiled(k, y, x, w, alpha, beta, bias, st);

    int rc = 0;
    gemm_entry *e = entry_for(g, k, &rc);
    if (e) {
        if (!e->usable) {
            g->fallbacks.fetch_add(1, std::memory_order_relaxed);
            return gemm_tiled(k, y, x, w, alpha, beta, bias, st);
        }
        std::lock_guard<std::mutex> lock(e->use);
        return lt_run(g, e->p, &e->algo, k, y, x, w, alpha, beta, bias, workspace, st);
    }
    if (rc) { /* a failure of the heuristic worth retrying: this call falls back */
        g->fallbacks.fetch_add(1, std::memory_order_relaxed);
        return gemm_tiled(k, y, x, w, alpha, beta, bias, st);
    }
    /* no room in the table: throw-away descriptors */
    lt_problem p;
    rc = lt_setup(p, k);
    cublasLtMatmulAlgo_t algo;
    int found = 0, cacheable = 0;
    if (!rc) rc = lt_heuristic(g, k, p, &algo, &found, &cacheable);
    if (!rc && found) rc = lt_run(g, p, &algo, k, y, x, w, alpha, beta, bias, workspace, st);
    p.release();
    if (rc || !found) {
        g->fallbacks.fetch_add(1, std::memory_order_relaxed);
        return gemm_tiled(k, y, x, w, alpha, beta, bias, st);
    }
    return 0;
}

extern "C" int tolk_cu_gemm(tolk_cu_gemm_ctx *g, void *y, int y_dtype, long long ldy, const void *x,
                            int x_dtype, long long ldx, const void *w, int w_dtype, long long ldw,
                            long long M, long long N, long long K, float alpha, float beta,
                            const void *bias, int flags, void *workspace, size_t workspace_bytes,
                            void *stream) {
    return tolk_cu_gemm_batched(g, y, y_dtype, ldy, 0, x, x_dtype, ldx, 0, w, w_dtype, ldw, 0, M, N,
                                K, alpha, beta, bias, 0, 1, flags, workspace, workspace_bytes,
                                stream);
}

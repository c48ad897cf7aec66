/*
 * gemm.cu — linear layers through cuBLASLt (see gemm.h). CPU twin:
 * backend_cpu.c's linear (OpenBLAS sgemm) and ref_gemm in
 * tests/test_cuda_kernels.c (a double-precision triple loop).
 *
 * Row-major y [M, N] = x [M, K] . w^T is, in cuBLAS's column-major terms,
 * Y' [N, M] = W' [K, N]^T . X' [K, M] with W' = w (ld ldw), X' = x (ld ldx),
 * Y' = y (ld ldy): transa = T, transb = N, and the bias epilogue adds a
 * vector along Y's N rows. The algorithm cuBLASLt's heuristic picks for a
 * problem (shape, strides, types, pointer alignments, flags, workspace) is
 * cached in the context (a small table under a mutex), so repeated decoder
 * steps skip the heuristic. Shapes it rejects go to gemm_tiled_kernel, a
 * plain 16 x 16 shared-memory tiled product.
 */
#include "gemm.h"
#include "kcommon.cuh"

#include <cublasLt.h>
#include <mutex>
#include <new>
#include <string.h>

using namespace tolkcu;

#define CACHE_SLOTS 512

struct gemm_key {
    long long M, N, K, ldx, ldw, ldy;
    int x_dtype, y_dtype, has_bias, beta_nonzero, flags;
    int align_x, align_w, align_y, align_b;
    size_t ws;
};

struct gemm_entry {
    gemm_key key;
    cublasLtMatmulAlgo_t algo;
    int used;   /* slot holds a result */
    int usable; /* the heuristic found an algorithm */
};

struct tolk_cu_gemm_ctx {
    cublasLtHandle_t lt;
    std::mutex mu;
    gemm_entry cache[CACHE_SLOTS];
    int next; /* round-robin replacement */
};

extern "C" int tolk_cu_gemm_create(tolk_cu_gemm_ctx **out) {
    if (!out) return TOLK_CU_EINVAL;
    *out = NULL;
    tolk_cu_gemm_ctx *g = new (std::nothrow) tolk_cu_gemm_ctx;
    if (!g) return (int)cudaErrorMemoryAllocation;
    memset(g->cache, 0, sizeof g->cache);
    g->next = 0;
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
    cublasLtDestroy(g->lt);
    delete g;
}

/* ------------------------------------------------------------------------ */

template <typename TX, typename TY>
static __global__ void gemm_tiled_kernel(TY *y, long long ldy, const TX *__restrict__ x,
                                         long long ldx, const TX *__restrict__ w, long long ldw,
                                         long long M, long long N, long long K, float alpha,
                                         float beta, const float *__restrict__ bias) {
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
        if (bias) v += bias[n];
        y[m * ldy + n] = from_f<TY>(v);
    }
}

static int gemm_tiled(void *y, int y_dtype, long long ldy, const void *x, int x_dtype,
                      long long ldx, const void *w, long long ldw, long long M, long long N,
                      long long K, float alpha, float beta, const float *bias, cudaStream_t st) {
    if ((M + 15) / 16 > 65535) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((N + 15) / 16), (unsigned)((M + 15) / 16)), block(16, 16);
    TOLK_CU_DISPATCH(x_dtype, TX, TOLK_CU_DISPATCH(y_dtype, TY, {
                         gemm_tiled_kernel<TX, TY><<<grid, block, 0, st>>>(
                             (TY *)y, ldy, (const TX *)x, ldx, (const TX *)w, ldw, M, N, K, alpha,
                             beta, bias);
                     }));
    return (int)cudaGetLastError();
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

/* Descriptors of one problem; created per call (host-only objects). */
struct lt_problem {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t a = NULL, b = NULL, c = NULL;
    ~lt_problem() {
        if (c) cublasLtMatrixLayoutDestroy(c);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

#define LT_TRY(call)                                                                               \
    do {                                                                                           \
        const cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)s_;                      \
    } while (0)

static int lt_setup(lt_problem &p, const gemm_key &k, const float *bias) {
    const cublasComputeType_t ct = (k.x_dtype == TOLK_CU_F32 && (k.flags & TOLK_CU_GEMM_TF32))
                                       ? CUBLAS_COMPUTE_32F_FAST_TF32
                                       : CUBLAS_COMPUTE_32F;
    LT_TRY(cublasLtMatmulDescCreate(&p.op, ct, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias) {
        const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
        LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof bias));
        /* bias type: the default, D's type (float32) */
    }
    const cudaDataType_t xt = cuda_type(k.x_dtype), yt = cuda_type(k.y_dtype);
    LT_TRY(cublasLtMatrixLayoutCreate(&p.a, xt, (uint64_t)k.K, (uint64_t)k.N, k.ldw));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.b, xt, (uint64_t)k.K, (uint64_t)k.M, k.ldx));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.c, yt, (uint64_t)k.N, (uint64_t)k.M, k.ldy));
    return 0;
}

/* Find (or look up) the algorithm for k. *found = 0 when there is none. */
static int lt_algo(tolk_cu_gemm_ctx *g, const gemm_key &k, lt_problem &p,
                   cublasLtMatmulAlgo_t *algo, int *found) {
    {
        std::lock_guard<std::mutex> lock(g->mu);
        for (int i = 0; i < CACHE_SLOTS; i++) {
            const gemm_entry &e = g->cache[i];
            if (e.used && memcmp(&e.key, &k, sizeof k) == 0) {
                *found = e.usable;
                if (e.usable) *algo = e.algo;
                return 0;
            }
        }
    }
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
    /* the bias alignment is read from the bias pointer in p.op (keyed by align_b) */
    cublasLtMatmulHeuristicResult_t res;
    int n_res = 0;
    if (s == CUBLAS_STATUS_SUCCESS) {
        memset(&res, 0, sizeof res);
        const cublasStatus_t hs =
            cublasLtMatmulAlgoGetHeuristic(g->lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &n_res);
        if (hs != CUBLAS_STATUS_SUCCESS) n_res = 0; /* NOT_SUPPORTED: no algorithm */
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)s;
    *found = n_res > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (*found) *algo = res.algo;
    std::lock_guard<std::mutex> lock(g->mu);
    gemm_entry &e = g->cache[g->next];
    g->next = (g->next + 1) % CACHE_SLOTS;
    e.key = k;
    e.used = 1;
    e.usable = *found;
    if (*found) e.algo = res.algo;
    return 0;
}

extern "C" int tolk_cu_gemm(tolk_cu_gemm_ctx *g, void *y, int y_dtype, long long ldy, const void *x,
                            int x_dtype, long long ldx, const void *w, int w_dtype, long long ldw,
                            long long M, long long N, long long K, float alpha, float beta,
                            const float *bias, int flags, void *workspace, size_t workspace_bytes,
                            void *stream) {
    if (x_dtype != w_dtype ||
        (x_dtype != TOLK_CU_F32 && x_dtype != TOLK_CU_F16 && x_dtype != TOLK_CU_BF16))
        return TOLK_CU_EINVAL;
    if (y_dtype != TOLK_CU_F32 && y_dtype != x_dtype) return TOLK_CU_EINVAL;
    if (bias && y_dtype != TOLK_CU_F32) return TOLK_CU_EINVAL;
    if (M < 0 || N < 0 || K < 1 || ldx < K || ldw < K || ldy < N) return TOLK_CU_EINVAL;
    if (M == 0 || N == 0) return 0;
    if (!y || !x || !w) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    if (!g || (flags & TOLK_CU_GEMM_FALLBACK))
        return gemm_tiled(y, y_dtype, ldy, x, x_dtype, ldx, w, ldw, M, N, K, alpha, beta, bias, st);

    gemm_key k;
    memset(&k, 0, sizeof k); /* padding takes part in memcmp */
    k.M = M;
    k.N = N;
    k.K = K;
    k.ldx = ldx;
    k.ldw = ldw;
    k.ldy = ldy;
    k.x_dtype = x_dtype;
    k.y_dtype = y_dtype;
    k.has_bias = bias != NULL;
    k.beta_nonzero = beta != 0.0f;
    k.flags = flags & TOLK_CU_GEMM_TF32;
    k.align_x = ptr_align(x);
    k.align_w = ptr_align(w);
    k.align_y = ptr_align(y);
    k.align_b = bias ? ptr_align(bias) : 0;
    k.ws = workspace ? workspace_bytes : 0;

    lt_problem p;
    int rc = lt_setup(p, k, bias);
    if (rc) return rc;
    cublasLtMatmulAlgo_t algo;
    int found = 0;
    rc = lt_algo(g, k, p, &algo, &found);
    if (rc) return rc;
    if (!found)
        return gemm_tiled(y, y_dtype, ldy, x, x_dtype, ldx, w, ldw, M, N, K, alpha, beta, bias, st);
    const cublasStatus_t s = cublasLtMatmul(g->lt, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y,
                                            p.c, &algo, workspace, k.ws, st);
    if (s != CUBLAS_STATUS_SUCCESS) return TOLK_CU_GEMM_EBLAS + (int)s;
    return (int)cudaGetLastError();
}

/*
 * logits.cu — logits post-processing (see logits.h). CPU twins: the
 * ref_softmax / ref_row_stats / ref_topk / ref_sample loops in
 * tests/test_cuda_kernels.c, and backend_cpu.c's softmax. Every kernel uses
 * one block of 256 threads per row and reads the row from L2 a few times
 * (a 51865-column row is 207 KB).
 */
#include "kcommon.cuh"
#include "logits.h"

#include <limits.h>

using namespace tolkcu;

#define LT 256 /* threads per row block */
#define LOG2E 1.4426950408889634f

/* (v1, i1) ranks before (v2, i2): larger value, then smaller index. */
__device__ __forceinline__ bool ranks_before(float v1, int i1, float v2, int i2) {
    return v1 > v2 || (v1 == v2 && i1 < i2);
}

/* Block-wide best (value, index, owner) by ranks_before; every thread gets
 * the result. Synchronises; all threads must call it. */
__device__ __forceinline__ void block_best(float &v, int &i, int &owner) {
    __shared__ float sv[32];
    __shared__ int si[32], so[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        const int oo = __shfl_xor_sync(0xffffffffu, owner, o);
        if (ranks_before(ov, oi, v, i)) {
            v = ov;
            i = oi;
            owner = oo;
        }
    }
    __syncthreads();
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = i;
        so[warp] = owner;
    }
    __syncthreads();
    v = lane < n_warps ? sv[lane] : -INFINITY;
    i = lane < n_warps ? si[lane] : INT_MAX;
    owner = lane < n_warps ? so[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        const int oo = __shfl_xor_sync(0xffffffffu, owner, o);
        if (ranks_before(ov, oi, v, i)) {
            v = ov;
            i = oi;
            owner = oo;
        }
    }
}

/* ------------------------------------------------------------------------ */

static __global__ void __launch_bounds__(LT)
    softmax_kernel(float *y, long long ldy, const float *x, long long ldx, int n, float inv_temp,
                   int log_out) {
    __shared__ float red[32];
    const float *xr = x + (long long)blockIdx.x * ldx;
    float *yr = y + (long long)blockIdx.x * ldy;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += LT) mx = fmaxf(mx, xr[j] * inv_temp);
    mx = block_max(mx, red);
    if (mx == -INFINITY) { /* block-uniform */
        for (int j = threadIdx.x; j < n; j += LT) yr[j] = log_out ? -INFINITY : 0.0f;
        return;
    }
    float s = 0.0f;
    for (int j = threadIdx.x; j < n; j += LT) s += expf(xr[j] * inv_temp - mx);
    s = block_sum(s, red);
    const float ls = logf(s), inv = 1.0f / s;
    for (int j = threadIdx.x; j < n; j += LT) {
        const float t = xr[j] * inv_temp - mx;
        yr[j] = log_out ? t - ls : expf(t) * inv;
    }
}

extern "C" int tolk_cu_softmax(float *y, long long ldy, const float *x, long long ldx,
                               long long rows, int n, float inv_temp, int log_out, void *stream) {
    if (n < 1 || rows < 0 || rows > 2147483647LL || ldx < n || ldy < n || !(inv_temp > 0.0f))
        return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !y) return TOLK_CU_EINVAL;
    softmax_kernel<<<(unsigned)rows, LT, 0, (cudaStream_t)stream>>>(y, ldy, x, ldx, n, inv_temp,
                                                                     log_out != 0);
    return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */

static __global__ void mask_ranges_kernel(float *x, long long ldx, int n, const int *row_off,
                                          const int *ranges, int n_pairs, float value) {
    float *xr = x + (long long)blockIdx.x * ldx;
    const int p0 = row_off ? row_off[blockIdx.x] : 0;
    const int p1 = row_off ? row_off[blockIdx.x + 1] : n_pairs;
    for (int p = p0; p < p1; p++) {
        const int lo = max(ranges[2 * p], 0), hi = min(ranges[2 * p + 1], n);
        for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) xr[j] = value;
    }
}

extern "C" int tolk_cu_mask_ranges(float *x, long long ldx, long long rows, int n,
                                   const int *row_off, const int *ranges, int n_pairs,
                                   float value, void *stream) {
    if (n < 1 || rows < 0 || rows > 2147483647LL || ldx < n || n_pairs < 0) return TOLK_CU_EINVAL;
    if (rows == 0 || (!row_off && n_pairs == 0)) return 0;
    if (!x || !ranges) return TOLK_CU_EINVAL;
    mask_ranges_kernel<<<(unsigned)rows, 128, 0, (cudaStream_t)stream>>>(x, ldx, n, row_off,
                                                                         ranges, n_pairs, value);
    return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */

static __global__ void __launch_bounds__(LT)
    row_stats_kernel(const float *x, long long ldx, int lo, int hi, float *max_out,
                     int *argmax_out, float *lse_out) {
    __shared__ float red[32];
    const float *xr = x + (long long)blockIdx.x * ldx;
    float mx = -INFINITY;
    int am = INT_MAX;
    for (int j = lo + threadIdx.x; j < hi; j += LT) {
        const float v = xr[j];
        if (v != v) continue; /* NaN */
        if (am == INT_MAX || v > mx) {
            mx = v;
            am = j;
        }
    }
    int owner = threadIdx.x;
    block_best(mx, am, owner);
    if (lse_out) {
        float s = 0.0f;
        if (mx != -INFINITY && am != INT_MAX)
            for (int j = lo + threadIdx.x; j < hi; j += LT) s += expf(xr[j] - mx);
        s = block_sum(s, red);
        if (threadIdx.x == 0)
            lse_out[blockIdx.x] = (mx == -INFINITY || am == INT_MAX) ? mx : mx + logf(s);
    }
    if (threadIdx.x == 0) {
        if (max_out) max_out[blockIdx.x] = am == INT_MAX ? NAN : mx;
        if (argmax_out) argmax_out[blockIdx.x] = am == INT_MAX ? -1 : am;
    }
}

extern "C" int tolk_cu_row_stats(const float *x, long long ldx, long long rows, int lo, int hi,
                                 float *max_out, int *argmax_out, float *lse_out, void *stream) {
    if (rows < 0 || rows > 2147483647LL || lo < 0 || hi <= lo || ldx < hi) return TOLK_CU_EINVAL;
    if (rows == 0 || (!max_out && !argmax_out && !lse_out)) return 0;
    if (!x) return TOLK_CU_EINVAL;
    row_stats_kernel<<<(unsigned)rows, LT, 0, (cudaStream_t)stream>>>(x, ldx, lo, hi, max_out,
                                                                      argmax_out, lse_out);
    return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */

static __global__ void __launch_bounds__(LT)
    topk_kernel(const float *x, long long ldx, int n, int k, int *idx_out, float *val_out) {
    __shared__ int winner;
    const float *xr = x + (long long)blockIdx.x * ldx;
    /* this thread's best k of columns tid, tid + LT, ..., sorted */
    float lv[TOLK_CU_TOPK_MAX];
    int li[TOLK_CU_TOPK_MAX];
    for (int t = 0; t < k; t++) {
        lv[t] = -INFINITY;
        li[t] = INT_MAX;
    }
    for (int j = threadIdx.x; j < n; j += LT) {
        const float v = xr[j];
        if (v != v || !ranks_before(v, j, lv[k - 1], li[k - 1])) continue;
        int t = k - 1;
        while (t > 0 && ranks_before(v, j, lv[t - 1], li[t - 1])) {
            lv[t] = lv[t - 1];
            li[t] = li[t - 1];
            t--;
        }
        lv[t] = v;
        li[t] = j;
    }
    /* k rounds of a block-wide best over the threads' list heads */
    int head = 0;
    for (int r = 0; r < k; r++) {
        float v = head < k ? lv[head] : -INFINITY;
        int i = head < k ? li[head] : INT_MAX;
        int owner = threadIdx.x;
        block_best(v, i, owner);
        if (threadIdx.x == 0) {
            const long long o = (long long)blockIdx.x * k + r;
            idx_out[o] = i == INT_MAX ? -1 : i;
            if (val_out) val_out[o] = i == INT_MAX ? -INFINITY : v;
            winner = owner;
        }
        __syncthreads();
        if (threadIdx.x == winner) head++;
        __syncthreads(); /* winner is rewritten next round */
    }
}

extern "C" int tolk_cu_topk(const float *x, long long ldx, long long rows, int n, int k,
                            int *idx_out, float *val_out, void *stream) {
    if (n < 1 || rows < 0 || rows > 2147483647LL || ldx < n || k < 1 || k > TOLK_CU_TOPK_MAX ||
        k > n)
        return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !idx_out) return TOLK_CU_EINVAL;
    topk_kernel<<<(unsigned)rows, LT, 0, (cudaStream_t)stream>>>(x, ldx, n, k, idx_out, val_out);
    return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */

static __global__ void __launch_bounds__(LT)
    sample_kernel(const float *x, long long ldx, int n, float inv_temp, const float *u, int *out) {
    __shared__ float red[32];
    __shared__ float csum[LT]; /* inclusive prefix sums of the chunk sums */
    __shared__ int result, last_nz;
    const float *xr = x + (long long)blockIdx.x * ldx;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += LT) mx = fmaxf(mx, xr[j] * inv_temp);
    mx = block_max(mx, red);
    if (mx == -INFINITY) { /* block-uniform */
        if (threadIdx.x == 0) out[blockIdx.x] = -1;
        return;
    }
    /* thread t owns the contiguous chunk [lo, hi) */
    const int chunk = (n + LT - 1) / LT;
    const int lo = min(n, (int)threadIdx.x * chunk), hi = min(n, lo + chunk);
    float s = 0.0f;
    for (int j = lo; j < hi; j++) s += expf(xr[j] * inv_temp - mx);
    csum[threadIdx.x] = s;
    if (threadIdx.x == 0) {
        result = -1;
        last_nz = -1;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float run = 0.0f;
        for (int t = 0; t < LT; t++) {
            run += csum[t];
            csum[t] = run;
        }
    }
    __syncthreads();
    if (s > 0.0f) atomicMax(&last_nz, (int)threadIdx.x);
    const float total = csum[LT - 1];
    const float target = u[blockIdx.x] * total;
    const float prefix = threadIdx.x ? csum[threadIdx.x - 1] : 0.0f;
    const float upto = csum[threadIdx.x];
    __syncthreads();
    const bool claim =
        s > 0.0f && ((target >= prefix && target < upto) ||
                     ((int)threadIdx.x == last_nz && target >= upto));
    if (claim) {
        float run = prefix;
        int pick = -1;
        for (int j = lo; j < hi; j++) {
            const float p = expf(xr[j] * inv_temp - mx);
            if (p > 0.0f) {
                pick = j;
                run += p;
                if (run > target) break;
            }
        }
        result = pick;
    }
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = result;
}

extern "C" int tolk_cu_sample(const float *x, long long ldx, long long rows, int n,
                              float inv_temp, const float *u, int *out, void *stream) {
    if (n < 1 || rows < 0 || rows > 2147483647LL || ldx < n || !(inv_temp > 0.0f))
        return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    if (!x || !u || !out) return TOLK_CU_EINVAL;
    sample_kernel<<<(unsigned)rows, LT, 0, (cudaStream_t)stream>>>(x, ldx, n, inv_temp, u, out);
    return (int)cudaGetLastError();
}

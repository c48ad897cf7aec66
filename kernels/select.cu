/*
 * select.cu — the logits post-processing of one decode step (see select.h):
 * masks, the timestamp probability-mass rule, the log-softmax normaliser and
 * the argmax / top-k of the log-probabilities, in one kernel. CPU twins: the
 * timestamp rule at the end of tolk_dec_apply_filters (src/decode_filters.c),
 * tolk_dec_log_softmax, argmax in src/decode_greedy.c, topk in
 * src/decode_beam.c; and ref_select in tests/test_cuda_select.c.
 *
 * One block per row. The passes over the row:
 *   1. masks: short ranges (<= SHORT_RANGE columns) one thread per pair,
 *      longer ones by the whole block; then __syncthreads, which makes the
 *      -inf writes visible to every thread of the block;
 *   2. max and first argmax of the text part [0, tb) and of the timestamp
 *      part [tb, n) (tb = n when the rule is off), block-reduced;
 *   3. rule on and max_ts finite: sum of exp(x - max_ts) over [tb, n) in
 *      double -> ts_lse; "fired" when ts_lse > max_text;
 *   4. not fired: sum of exp(x - mx) over the whole row in double (fired:
 *      the text part is all -inf now, so the sum of 3 is the row's sum);
 *   5. k = 1: the argmax is already known (text argmax, or the timestamp
 *      one when the rule fired or the timestamps hold the strictly larger
 *      maximum); k >= 2: every thread keeps the sorted top k of its strided
 *      columns (lp desc, index asc) and the block merges the threads' lists
 *      with k rounds of a block-wide best over the list heads. When the rule
 *      fired, [0, tb) is written back as -inf in this pass, each column by
 *      the thread that owns it.
 * Blocks of 1024 threads for up to 64 rows of >= 16384 columns (greedy and
 * small beams: few blocks, so each must be wide), else 256: a function of
 * (rows, n) only, as graph replay requires. The threads' lists live in
 * local memory (k <= 32 entries each); after the first k columns a thread
 * touches its list only for a column that beats its current k-th entry.
 * Every reduction is a butterfly (xor shuffles, then over the warps), so all
 * threads get bit-identical results and every branch on them is
 * block-uniform: all threads reach every __syncthreads.
 */
#include "kcommon.cuh"
#include "select.h"

#include <limits.h>

#define SHORT_RANGE 32 /* mask ranges up to this length are written by one thread */

/* (v1, i1) ranks before (v2, i2): larger value, then smaller index. */
static __device__ __forceinline__ bool ranks_before(float v1, int i1, float v2, int i2) {
    return v1 > v2 || (v1 == v2 && i1 < i2);
}

static __device__ __forceinline__ void warp_best(float &v, int &i) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ranks_before(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

/* Block-wide best (v, i) by ranks_before; every thread gets the result.
 * blockDim.x a multiple of 32, <= 1024; all threads must call it.
 * sv, si: 32 entries of shared memory each. */
static __device__ __forceinline__ void block_best(float &v, int &i, float *sv, int *si) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    warp_best(v, i);
    __syncthreads(); /* the scratch may still be read by the previous call */
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = i;
    }
    __syncthreads();
    v = lane < n_warps ? sv[lane] : -INFINITY;
    i = lane < n_warps ? si[lane] : INT_MAX;
    warp_best(v, i);
}

/* Block-wide double sum; every thread gets the same value. Same rules. */
static __device__ __forceinline__ double block_dsum(double v, double *sd) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) sd[warp] = v;
    __syncthreads();
    v = lane < n_warps ? sd[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int BT>
static __global__ void __launch_bounds__(BT, 1)
    select_kernel(float *logits, long long ld, int n, const int *range_off, const int *ranges,
                  int ts_begin, const int *row_ts, int k, int *out_idx, float *out_lp) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ double sd[32];
    const int tid = threadIdx.x;
    const long long row = blockIdx.x;
    const int tb = row_ts ? row_ts[row] : ts_begin; /* block-uniform */
    float *x = logits + row * ld;

    /* 1. masks */
    if (range_off) {
        const int p0 = range_off[row], p1 = range_off[row + 1];
        for (int p = p0 + tid; p < p1; p += BT) {
            const int lo = max(ranges[2 * (long long)p], 0);
            const int hi = min(ranges[2 * (long long)p + 1], n);
            if ((long long)hi - lo <= SHORT_RANGE)
                for (int j = lo; j < hi; j++) x[j] = -INFINITY;
        }
        for (int p = p0; p < p1; p++) {
            const int lo = max(ranges[2 * (long long)p], 0);
            const int hi = min(ranges[2 * (long long)p + 1], n);
            if ((long long)hi - lo > SHORT_RANGE)
                for (int j = lo + tid; j < hi; j += BT) x[j] = -INFINITY;
        }
    }
    __syncthreads();

    /* 2. maxima (first index reaching them) of the text and timestamp parts */
    const int te = (tb > 0 && tb < n) ? tb : n; /* end of the text part */
    float mt = -INFINITY, ms = -INFINITY;
    int at = INT_MAX, as = INT_MAX;
    for (int j = tid; j < te; j += BT) {
        const float v = x[j];
        if (v > mt) {
            mt = v;
            at = j;
        }
    }
    for (int j = te + tid; j < n; j += BT) {
        const float v = x[j];
        if (v > ms) {
            ms = v;
            as = j;
        }
    }
    block_best(mt, at, sv, si);
    block_best(ms, as, sv, si);

    /* 3. the timestamp rule (block-uniform branches from here on) */
    bool fired = false;
    double s = 0.0;
    if (te < n && ms != -INFINITY) {
        const double dms = (double)ms;
        for (int j = te + tid; j < n; j += BT) s += exp((double)x[j] - dms);
        s = block_dsum(s, sd);
        fired = dms + log(s) > (double)mt;
    }

    /* 4. the log-softmax normaliser of the (masked) row */
    float mx;
    int am;
    if (fired || mt < ms) {
        mx = ms;
        am = as;
    } else {
        mx = mt; /* also when both are -inf */
        am = at;
    }
    const bool dead = mx == -INFINITY; /* every lp is -inf */
    double lse = 0.0;
    if (!dead) {
        if (!fired) {
            const double dmx = (double)mx;
            s = 0.0;
            for (int j = tid; j < n; j += BT) s += exp((double)x[j] - dmx);
            s = block_dsum(s, sd);
        }
        lse = (double)mx + log(s);
    }

    /* 5. selection */
    if (k == 1) {
        if (fired)
            for (int j = tid; j < te; j += BT) x[j] = -INFINITY;
        if (tid == 0) {
            out_idx[row] = dead ? 0 : am;
            out_lp[row] = dead ? -INFINITY : (float)((double)mx - lse);
        }
        return;
    }
    float lv[TOLK_CU_SELECT_MAX_K];
    int li[TOLK_CU_SELECT_MAX_K];
    for (int t = 0; t < k; t++) {
        lv[t] = -INFINITY;
        li[t] = INT_MAX;
    }
    float thv = -INFINITY; /* (lv[k-1], li[k-1]): what a newcomer must beat */
    int thi = INT_MAX;
    for (int j = tid; j < n; j += BT) {
        float v;
        if (fired && j < te) {
            x[j] = -INFINITY;
            v = -INFINITY;
        } else {
            v = x[j];
        }
        const float lp = dead ? -INFINITY : (float)((double)v - lse);
        if (!ranks_before(lp, j, thv, thi)) continue;
        int t = k - 1;
        while (t > 0 && ranks_before(lp, j, lv[t - 1], li[t - 1])) {
            lv[t] = lv[t - 1];
            li[t] = li[t - 1];
            t--;
        }
        lv[t] = lp;
        li[t] = j;
        thv = lv[k - 1];
        thi = li[k - 1];
    }
    /* k-way merge. Every column is in exactly one list and the lists hold
     * at least min(k, n) = k real entries, which all rank before the
     * (-inf, INT_MAX) fillers: each round's winner is a real entry, owned
     * by exactly one thread (the one whose head has its index). */
    int head = 0;
    float hv = lv[0];
    int hi = li[0];
    for (int c = 0; c < k; c++) {
        float v = hv;
        int i = hi;
        block_best(v, i, sv, si);
        if (tid == 0) {
            out_idx[row * k + c] = i;
            out_lp[row * k + c] = v;
        }
        if (i == hi) {
            head++;
            hv = head < k ? lv[head] : -INFINITY;
            hi = head < k ? li[head] : INT_MAX;
        }
    }
}

extern "C" int tolk_cu_select(float *logits, long long ld, int rows, int n, const int *range_off,
                              const int *ranges, int ts_begin, int k, int *out_idx, float *out_lp,
                              void *stream) {
    return tolk_cu_select_rows(logits, ld, rows, n, range_off, ranges, ts_begin, NULL, k, out_idx,
                               out_lp, stream);
}

extern "C" int tolk_cu_select_rows(float *logits, long long ld, int rows, int n,
                                   const int *range_off, const int *ranges, int ts_begin,
                                   const int *row_ts, int k, int *out_idx, float *out_lp,
                                   void *stream) {
    if (rows < 0 || n < 1 || ld < n || k < 1 || k > TOLK_CU_SELECT_MAX_K || k > n)
        return TOLK_CU_EINVAL;
    if (!logits || !out_idx || !out_lp || (!range_off) != (!ranges)) return TOLK_CU_EINVAL;
    if (rows == 0) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    /* few long rows: wide blocks; many rows: enough blocks to fill the GPU */
    if (rows <= 64 && n >= 16384)
        select_kernel<1024><<<(unsigned)rows, 1024, 0, st>>>(logits, ld, n, range_off, ranges,
                                                              ts_begin, row_ts, k, out_idx, out_lp);
    else
        select_kernel<256><<<(unsigned)rows, 256, 0, st>>>(logits, ld, n, range_off, ranges,
                                                            ts_begin, row_ts, k, out_idx, out_lp);
    return (int)cudaGetLastError();
}

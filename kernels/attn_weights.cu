/*
 * attn_weights.cu — attention weights of selected heads (see
 * attn_weights.h). CPU twin: cpu_attn_weights (src/backend_cpu.c).
 *
 * One block per (query row, head): the query slice is held in shared
 * memory; each warp scores keys j = warp, warp + n_warps, ... with its
 * lanes over the head dimension (coalesced reads of a key row) and a warp
 * sum; the raw scores go to the output row, then a block max, a block sum
 * of exp(s - max), and the row is normalised in place.
 */
#include "attn_weights.h"
#include "kcommon.cuh"

using namespace tolkcu;

#define AW_THREADS 256
#define AW_MAX_DHEAD 256

struct aw_heads {
    int h[TOLK_CU_AW_MAX_HEADS];
};

static __global__ void __launch_bounds__(AW_THREADS)
    attn_weights_kernel(const float *q, long long ldq, const float *k, long long ldk, int n_q,
                        int n_keys, aw_heads heads, int d_head, float scale, float *out) {
    __shared__ float qs[AW_MAX_DHEAD];
    __shared__ float red[32];
    const int i = blockIdx.x, p = blockIdx.y;
    const long long h = (long long)heads.h[p] * d_head;
    const float *qr = q + (long long)i * ldq + h;
    for (int c = threadIdx.x; c < d_head; c += AW_THREADS)
        qs[c] = qr[c];
    __syncthreads();
    float *o = out + ((long long)p * n_q + i) * (long long)n_keys;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = AW_THREADS / 32;
    for (int j = warp; j < n_keys; j += n_warps) {
        const float *kr = k + (long long)j * ldk + h;
        float d = 0.0f;
        for (int c = lane; c < d_head; c += 32)
            d += qs[c] * kr[c];
        d = warp_sum(d);
        if (lane == 0) o[j] = d * scale;
    }
    __syncthreads(); /* the scores written by other warps are visible */
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n_keys; j += AW_THREADS)
        mx = fmaxf(mx, o[j]);
    mx = block_max(mx, red);
    float s = 0.0f;
    for (int j = threadIdx.x; j < n_keys; j += AW_THREADS) {
        const float e = expf(o[j] - mx);
        o[j] = e;
        s += e;
    }
    s = block_sum(s, red);
    const float inv = 1.0f / s;
    for (int j = threadIdx.x; j < n_keys; j += AW_THREADS)
        o[j] *= inv;
}

extern "C" int tolk_cu_attn_weights(const float *q, long long ldq, const float *k, long long ldk,
                                    int n_q, int n_keys, const int *heads, int n_heads, int d_head,
                                    float scale, float *out, void *stream) {
    if (!q || !k || !out || !heads || n_q < 0 || n_keys < 1 || d_head < 1 ||
        d_head > AW_MAX_DHEAD || n_heads < 0 || n_heads > TOLK_CU_AW_MAX_HEADS)
        return TOLK_CU_EINVAL;
    aw_heads hs;
    for (int p = 0; p < n_heads; p++) {
        if (heads[p] < 0 || (long long)(heads[p] + 1) * d_head > ldq ||
            (long long)(heads[p] + 1) * d_head > ldk)
            return TOLK_CU_EINVAL;
        hs.h[p] = heads[p];
    }
    if (n_q == 0 || n_heads == 0) return 0;
    dim3 grid((unsigned)n_q, (unsigned)n_heads);
    attn_weights_kernel<<<grid, AW_THREADS, 0, (cudaStream_t)stream>>>(q, ldq, k, ldk, n_q, n_keys,
                                                                       hs, d_head, scale, out);
    return (int)cudaGetLastError();
}

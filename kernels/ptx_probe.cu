/*
 * ptx_probe.cu — one warp exercising kernels/ptx.cuh on known inputs (see
 * ptx_probe.h). The reference is the PTX ISA's description of each
 * instruction's per-lane fragments; the test holds the expected values.
 */
#include "ptx_probe.h"
#include "ptx.cuh"

using namespace tolkcu;

__device__ __forceinline__ float probe_a(int i, int k) {
    return (float)((3 * i + k) % 7 - 3);
}
__device__ __forceinline__ float probe_b(int k, int j) {
    return (float)((5 * k + j) % 5 - 2);
}

template <typename H>
static __global__ void __launch_bounds__(32) ptx_probe_kernel(unsigned *out, const unsigned *in) {
    __shared__ __align__(16) unsigned short M[32][8];
    __shared__ __align__(16) unsigned buf[32 * 4];
    const int l = threadIdx.x, g = l >> 2, t2 = 2 * (l & 3);
    unsigned *o = out + l * TOLK_CU_PTX_PROBE_WORDS;
    for (int c = 0; c < 8; c++)
        M[l][c] = (unsigned short)(l * 8 + c);
    for (int w = 0; w < 4; w++)
        buf[l * 4 + w] = 0xAAAAAAAAu;
    __syncwarp();

    unsigned r[4];
    ldsm_x4(r, &M[l][0]);
    for (int w = 0; w < 4; w++)
        o[w] = r[w];
    ldsm_x4_trans(r, &M[l][0]);
    for (int w = 0; w < 4; w++)
        o[4 + w] = r[w];

    const unsigned a[4] = {pack2<H>(probe_a(g, t2), probe_a(g, t2 + 1)),
                           pack2<H>(probe_a(g + 8, t2), probe_a(g + 8, t2 + 1)),
                           pack2<H>(probe_a(g, t2 + 8), probe_a(g, t2 + 9)),
                           pack2<H>(probe_a(g + 8, t2 + 8), probe_a(g + 8, t2 + 9))};
    const unsigned b0 = pack2<H>(probe_b(t2, g), probe_b(t2 + 1, g));
    const unsigned b1 = pack2<H>(probe_b(t2 + 8, g), probe_b(t2 + 9, g));
    float d[4] = {(float)(g - t2), (float)(g - t2 - 1), (float)(g + 8 - t2),
                  (float)(g + 8 - t2 - 1)};
    mma_16816<H>(d, a, b0, b1);
    for (int w = 0; w < 4; w++)
        o[8 + w] = __float_as_uint(d[w]);

    cp_async_16(&buf[l * 4], in + l * 4, 4 * (l % 5));
    cp_async_commit();
    cp_async_wait<0>();
    __syncwarp();
    for (int w = 0; w < 4; w++)
        o[12 + w] = buf[l * 4 + w];
}

extern "C" int tolk_cu_ptx_probe(unsigned *out, const unsigned *in, int bf16, void *stream) {
    if (!out || !in) return TOLK_CU_EINVAL;
    cudaStream_t st = (cudaStream_t)stream;
    if (bf16)
        ptx_probe_kernel<__nv_bfloat16><<<1, 32, 0, st>>>(out, in);
    else
        ptx_probe_kernel<__half><<<1, 32, 0, st>>>(out, in);
    return (int)cudaGetLastError();
}

/*
 * embed.cu — token + positional embedding gather (see embed.h). CPU twin:
 * backend_cpu.c's embed and ref_embed in tests/test_cuda_kernels.c. 2-D
 * grid: x over the model width, y over tokens (looping beyond 65535).
 */
#include "embed.h"
#include "kcommon.cuh"

using namespace tolkcu;

template <typename TT, typename TO>
static __global__ void embed_kernel(TO *__restrict__ y, long long ldy, const int *__restrict__ ids,
                                    const int *__restrict__ positions, long long n, int d,
                                    const TT *__restrict__ tok, long long n_vocab,
                                    const float *__restrict__ pos, long long n_pos) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    for (long long i = blockIdx.y; i < n; i += gridDim.y) {
        const int id = ids[i];
        float v = 0.0f;
        if (id >= 0 && id < n_vocab) v = to_f(tok[(long long)id * d + c]);
        if (pos && positions) {
            const int p = positions[i];
            if (p >= 0 && p < n_pos) v += pos[(long long)p * d + c];
        }
        y[i * ldy + c] = from_f<TO>(v);
    }
}

extern "C" int tolk_cu_embed(void *y, int y_dtype, long long ldy, const int *ids,
                             const int *positions, long long n, int d, const void *tok,
                             int tok_dtype, long long n_vocab, const float *pos, long long n_pos,
                             void *stream) {
    if (n < 0 || d < 1 || ldy < d || n_vocab < 0 || n_pos < 0) return TOLK_CU_EINVAL;
    if (n == 0) return 0;
    if (!y || !ids || !tok) return TOLK_CU_EINVAL;
    dim3 grid((unsigned)((d + 127) / 128), (unsigned)(n < 65535 ? n : 65535));
    cudaStream_t st = (cudaStream_t)stream;
    TOLK_CU_DISPATCH(tok_dtype, TT, TOLK_CU_DISPATCH(y_dtype, TO, {
                         embed_kernel<TT, TO><<<grid, 128, 0, st>>>((TO *)y, ldy, ids, positions, n,
                                                                    d, (const TT *)tok, n_vocab,
                                                                    pos, n_pos);
                     }));
    return (int)cudaGetLastError();
}

/*
 * cuda_guard.c — guard-zone device buffers for the GPU tests (cuda_guard.h).
 */
#include "cuda_guard.h"

#ifdef TOLK_HAVE_CUDA

#include "../../kernels/kcommon.h"

#include <cuda_runtime_api.h>
#include <stdio.h>

void *dalloc(dpool *p, size_t bytes) {
    CU_ASSERT_FATAL(p->n < MAX_BUFS);
    unsigned char *b = NULL;
    CU_ASSERT_FATAL(cudaMalloc((void **)&b, bytes + 2 * GUARD) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemset(b, SENTINEL, bytes + 2 * GUARD) == cudaSuccess);
    p->base[p->n] = b;
    p->bytes[p->n] = bytes;
    p->n++;
    return b + GUARD;
}

void dpool_finish(dpool *p) {
    CU_ASSERT_EQUAL(cudaDeviceSynchronize(), cudaSuccess);
    for (int i = 0; i < p->n; i++) {
        unsigned char g[2 * GUARD];
        CU_ASSERT_EQUAL(cudaMemcpy(g, p->base[i], GUARD, cudaMemcpyDeviceToHost), cudaSuccess);
        CU_ASSERT_EQUAL(
            cudaMemcpy(g + GUARD, p->base[i] + GUARD + p->bytes[i], GUARD, cudaMemcpyDeviceToHost),
            cudaSuccess);
        int bad = 0;
        for (int j = 0; j < 2 * GUARD; j++)
            bad += g[j] != SENTINEL;
        if (bad) printf("\n    buffer %d: %d guard bytes overwritten\n", i, bad);
        CU_ASSERT_EQUAL(bad, 0);
        cudaFree(p->base[i]);
    }
    p->n = 0;
}

size_t dt_size(int dt) {
    return dt == TOLK_CU_F32 ? 4 : 2;
}

#else
typedef int tolk_cuda_guard_unused; /* ISO C: no empty translation unit */
#endif

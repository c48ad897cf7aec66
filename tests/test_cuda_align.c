/*
 * test_cuda_align.c — the CUDA kernel of the alignment pass,
 * kernels/attn_weights.cu (tolk_cu_attn_weights, the backend op
 * attn_weights of word timestamps), against the plain CPU reference
 * ref_attn_weights (tests/support/ref_attn.c; the CPU backend's twin is
 * checked against the same reference in test_align.c): heads out of order
 * and repeated, strided query rows, fused K/V rows, one key, 1500 keys,
 * rows of large scores; every output within 2e-6 of the reference; guard
 * zones around every device buffer untouched. Argument checks reach no
 * device. Without a CUDA device (or in a CPU-only build) the tests skip.
 *
 * ctest-labels: gpu
 */
#include "internal.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "../kernels/attn_weights.h"
#include "support/cuda_guard.h"
#include "support/ref_attn.h"

#include <cuda_runtime_api.h>

static void test_args(void) {
    float x[4] = {0};
    int h = 0, many[TOLK_CU_AW_MAX_HEADS + 1] = {0}, past = 2;
    CU_ASSERT_EQUAL(tolk_cu_attn_weights(NULL, 16, x, 16, 1, 1, &h, 1, 8, 1.0f, x, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attn_weights(x, 16, x, 16, 1, 0, &h, 1, 8, 1.0f, x, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(
        tolk_cu_attn_weights(x, 16, x, 16, 1, 1, many, TOLK_CU_AW_MAX_HEADS + 1, 8, 1.0f, x, NULL),
        TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attn_weights(x, 16, x, 16, 1, 1, &past, 1, 8, 1.0f, x, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attn_weights(x, 16, x, 16, 0, 1, &h, 1, 8, 1.0f, x, NULL), 0);
}

static void test_kernel(void) {
    NEED_DEVICE();
    tu_seed(5);
    const struct {
        int n_q, n_keys, n_head, dh, n_sel;
        float amp;
    } cases[] = {{1, 1, 1, 8, 1, 1.0f},
                 {3, 7, 2, 16, 2, 1.0f},
                 {5, 300, 6, 64, 4, 3.0f},
                 {9, 1500, 8, 64, 3, 1.0f},
                 {2, 33, 4, 64, 2, 20.0f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int nq = cases[c].n_q, nk = cases[c].n_keys, nh = cases[c].n_head, dh = cases[c].dh,
                  ns = cases[c].n_sel;
        const size_t ldq = (size_t)nh * dh + 3, ldk = 2 * (size_t)nh * dh;
        const size_t nqf = (size_t)nq * ldq, nkf = (size_t)nk * ldk, no = (size_t)ns * nq * nk;
        float *q = malloc(nqf * sizeof *q), *k = malloc(nkf * sizeof *k);
        float *got = malloc(no * sizeof *got), *want = malloc(no * sizeof *want);
        tu_fill_uniform(q, nqf, -cases[c].amp, cases[c].amp);
        tu_fill_uniform(k, nkf, -1.0f, 1.0f);
        int heads[8];
        for (int p = 0; p < ns; p++)
            heads[p] = (nh - 1 - 2 * p + 4 * nh) % nh;
        dpool pool = {0};
        float *dq = dalloc(&pool, nqf * sizeof *q), *dk = dalloc(&pool, nkf * sizeof *k);
        float *dout = dalloc(&pool, no * sizeof *got);
        CU_ASSERT_FATAL(cudaMemcpy(dq, q, nqf * sizeof *q, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(dk, k, nkf * sizeof *k, cudaMemcpyHostToDevice) == cudaSuccess);
        const float scale = 1.0f / sqrtf((float)dh);
        CU_ASSERT_EQUAL_FATAL(tolk_cu_attn_weights(dq, (long long)ldq, dk, (long long)ldk, nq, nk,
                                                   heads, ns, dh, scale, dout, NULL),
                              0);
        CU_ASSERT_FATAL(cudaDeviceSynchronize() == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(got, dout, no * sizeof *got, cudaMemcpyDeviceToHost) ==
                        cudaSuccess);
        ref_attn_weights(q, ldq, k, ldk, nq, nk, heads, ns, dh, scale, want);
        double err = tu_max_abs_diff(got, want, no);
        if (err > 2e-6) fprintf(stderr, "  case %zu: max |diff| %.3g\n", c, err);
        CU_ASSERT(err <= 2e-6);
        dpool_finish(&pool);
        free(q);
        free(k);
        free(got);
        free(want);
    }
}

int main(void) {
    CU_TestInfo tests[] = {{"args", test_args}, {"kernel", test_kernel}, CU_TEST_INFO_NULL};
    tu_add_suite("cuda_align", tests);
    return tu_run();
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    return tu_run_without_cuda("cuda_align");
}

#endif

/*
 * test_gemm_i8.c — the int8 product of the translation network's int8 mode
 * (src/gemm_i8.c): the AVX-512 VNNI kernel against the plain reference
 * loop (bit-identical: the same integers, then the same float operations),
 * against a double-precision product of the quantised operands, on sizes
 * that are not multiples of the kernel's blocks, with fused parts of
 * different multipliers, clamping and threads; and bad arguments.
 */
#include "gemm_i8.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tolk_ctx *ctx;

static void one_case(int M, int K, int n1, int n2, int threads) {
    const int N = n1 + n2;
    int8_t *w = malloc((size_t)N * (size_t)K);
    float *x = malloc((size_t)M * (size_t)(K + 3) * sizeof *x), *bias = malloc((size_t)N * 4);
    float *y = malloc((size_t)M * (size_t)(N + 5) * sizeof *y),
          *yr = malloc((size_t)M * (size_t)(N + 5) * 4);
    tu_seed((uint64_t)(M * 131 + K * 7 + N));
    for (int i = 0; i < N * K; i++)
        w[i] = (int8_t)lrintf(tu_uniform(-127.4f, 127.4f));
    tu_fill_uniform(x, (size_t)M * (size_t)(K + 3), -14.0f, 14.0f); /* past the clamp at 127 / qa */
    tu_fill_uniform(bias, (size_t)N, -1, 1);
    const int8_t *parts[2] = {w, w + (size_t)n1 * (size_t)K};
    const int rows[2] = {n1, n2};
    const float qw[2] = {211.3f, 97.25f}, qa = 11.8f;
    tolk_i8_weight W;
    CU_ASSERT_EQUAL_FATAL(tolk_i8_pack(ctx, parts, rows, qw, n2 ? 2 : 1, K, &W), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_gemm_i8(ctx, x, M, K + 3, qa, &W, bias, y, N + 5, threads), TOLK_OK);
    tolk_gemm_i8_ref(x, M, K + 3, qa, &W, bias, yr, N + 5);
    int same = 1;
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const float g = y[(size_t)m * (size_t)(N + 5) + (size_t)n];
            same &= g == yr[(size_t)m * (size_t)(N + 5) + (size_t)n];
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = nearbyint((double)(x[(size_t)m * (size_t)(K + 3) + (size_t)k] * qa));
                a = a > 127 ? 127 : a < -127 ? -127 : a;
                s += a * w[(size_t)n * (size_t)K + (size_t)k];
            }
            const double ref = s / ((double)qa * (n < n1 ? qw[0] : qw[1])) + bias[n];
            const double e = fabs(g - ref) / (fabs(ref) + 1.0);
            worst = e > worst ? e : worst;
        }
    if (!same) printf("\n    M %d K %d N %d: kernel and reference loop differ\n", M, K, N);
    CU_ASSERT(same);
    CU_ASSERT(worst < 1e-5);
    tolk_i8_free(&W);
    free(w), free(x), free(bias), free(y), free(yr);
}

static void test_products(void) {
    if (!tolk_i8_native()) printf("\n    (no AVX-512 VNNI: the reference loop on both sides)\n");
    one_case(1, 256, 256, 0, 1);   /* a decoder step */
    one_case(7, 256, 512, 256, 2); /* fused, rows not a multiple of 4 */
    one_case(33, 1536, 256, 0, 2); /* the second FFN layer */
    one_case(5, 13, 9, 30, 1);     /* K and N not multiples of 4 / 16 */
    one_case(64, 256, 1536, 0, 3);
}

static void test_bad_args(void) {
    int8_t w[8] = {0};
    const int8_t *parts[1] = {w};
    const int rows[1] = {2};
    const float qw[1] = {1.0f}, bad_qw[1] = {0.0f};
    tolk_i8_weight W;
    CU_ASSERT_EQUAL(tolk_i8_pack(ctx, parts, rows, bad_qw, 1, 4, &W), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_i8_pack(ctx, parts, rows, qw, 1, 0, &W), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL_FATAL(tolk_i8_pack(ctx, parts, rows, qw, 1, 4, &W), TOLK_OK);
    float x[4] = {0}, y[2];
    CU_ASSERT_EQUAL(tolk_gemm_i8(ctx, x, 1, 3, 1.0f, &W, NULL, y, 2, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_i8(ctx, x, 1, 4, 0.0f, &W, NULL, y, 2, 1), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_gemm_i8(ctx, x, 0, 4, 1.0f, &W, NULL, y, 2, 1), TOLK_OK);
    tolk_i8_free(&W);
    tolk_i8_free(&W); /* twice: harmless */
}

int main(void) {
    if (tolk_ctx_new(NULL, &ctx) != TOLK_OK) return 1;
    CU_TestInfo tests[] = {
        {"products", test_products}, {"bad_args", test_bad_args}, CU_TEST_INFO_NULL};
    tu_add_suite("gemm_i8", tests);
    int r = tu_run();
    tolk_ctx_free(ctx);
    return r;
}

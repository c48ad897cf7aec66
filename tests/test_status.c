/*
 * test_status.c — version, status strings, contexts, last-error messages.
 *
 * ctest-labels: gpu
 */
#include "internal.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_version(void) {
    const char *v = tolk_version();
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(v, "0.1.0");
}

static void test_strerror(void) {
    for (int s = TOLK_OK; s <= TOLK_ERR_CANCELLED; s++) {
        const char *m = tolk_strerror((tolk_status)s);
        CU_ASSERT_PTR_NOT_NULL(m);
        CU_ASSERT(strlen(m) > 0);
        CU_ASSERT(strcmp(m, "unknown status") != 0);
    }
    CU_ASSERT_STRING_EQUAL(tolk_strerror((tolk_status)999), "unknown status");
}

static void test_ctx(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL(tolk_ctx_new(NULL, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(tolk_ctx_last_error(ctx), "");
    CU_ASSERT_EQUAL(tolk_fail(ctx, TOLK_ERR_IO, "%s: no such file", "x.wav"), TOLK_ERR_IO);
    CU_ASSERT_STRING_EQUAL(tolk_ctx_last_error(ctx), "x.wav: no such file");
    CU_ASSERT_EQUAL(tolk_ctx_device(ctx), TOLK_DEVICE_CPU);
    CU_ASSERT(tolk_ctx_threads(ctx) >= 1);
    tolk_ctx_free(ctx);

    tolk_ctx_params p = tolk_ctx_default_params();
    p.device = TOLK_DEVICE_AUTO;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL(tolk_ctx_device(ctx),
                    tolk_cuda_available() ? TOLK_DEVICE_CUDA : TOLK_DEVICE_CPU);
    tolk_ctx_free(ctx);

    p.device = TOLK_DEVICE_CUDA;
    tolk_status st = tolk_ctx_new(&p, &ctx);
    if (tolk_cuda_available()) {
        CU_ASSERT_EQUAL(st, TOLK_OK);
        tolk_ctx_free(ctx);
    } else {
        CU_ASSERT_EQUAL(st, TOLK_ERR_NO_DEVICE);
    }
    p.device = (tolk_device)42;
    CU_ASSERT_EQUAL(tolk_ctx_new(&p, &ctx), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_fail(NULL, TOLK_ERR_FORMAT, "ignored"), TOLK_ERR_FORMAT);
}

static void test_size_checks(void) {
    size_t r;
    CU_ASSERT(tolk_mul_size(1000, 1000, &r) && r == 1000000);
    CU_ASSERT(!tolk_mul_size(SIZE_MAX / 2, 3, &r));
    CU_ASSERT(!tolk_add_size(SIZE_MAX, 1, &r));
    CU_ASSERT_PTR_NULL(tolk_malloc_array(SIZE_MAX / 2, 4));
    CU_ASSERT_PTR_NULL(tolk_calloc_array(0, 4));
}

/* The OpenBLAS kernel set: named; no advice once the user chose one (the
 * restarted tolk command sets OPENBLAS_CORETYPE, so it never loops). */
static void test_blas_core(void) {
    CU_ASSERT(tolk_blas_core()[0] != '\0');
    const char *old = getenv("OPENBLAS_CORETYPE");
    char *keep = old ? strdup(old) : NULL;
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    CU_ASSERT_PTR_NULL(tolk_blas_coretype_advice());
    if (keep) {
        setenv("OPENBLAS_CORETYPE", keep, 1);
        free(keep);
    } else {
        unsetenv("OPENBLAS_CORETYPE");
    }
    const char *a = tolk_blas_coretype_advice(); /* NULL, or a set OpenBLAS names */
    CU_ASSERT(!a || !strcmp(a, "SkylakeX") || !strcmp(a, "Haswell") || !strcmp(a, "Sandybridge"));
}

int main(void) {
    CU_TestInfo tests[] = {{"version", test_version},         {"blas_core", test_blas_core},
                           {"strerror", test_strerror},       {"ctx", test_ctx},
                           {"size_checks", test_size_checks}, CU_TEST_INFO_NULL};
    tu_add_suite("status", tests);
    return tu_run();
}

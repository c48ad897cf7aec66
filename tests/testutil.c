/*
 * testutil.c — see testutil.h.
 */
#include "testutil.h"

#include "tolk.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TOLK_SOURCE_DIR
#define TOLK_SOURCE_DIR "."
#endif

static int n_skipped;

void tu_add_suite(const char *name, CU_TestInfo *tests) {
    if (CU_get_registry() == NULL && CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: cannot initialise registry\n");
        exit(2);
    }
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s) {
        fprintf(stderr, "CUnit: cannot add suite %s\n", name);
        exit(2);
    }
    /* TOLK_TESTS=name,name,...: register only those tests (development of
     * the slow emulated suites) */
    const char *only = getenv("TOLK_TESTS");
    for (CU_TestInfo *t = tests; t->pName; t++) {
        if (only && *only) {
            const size_t n = strlen(t->pName);
            int hit = 0;
            for (const char *p = only; *p && !hit; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
                hit = strncmp(p, t->pName, n) == 0 && (p[n] == ',' || p[n] == 0);
            if (!hit) continue;
        }
        CU_add_test(s, t->pName, t->pTestFunc);
    }
}

int tu_run(void) {
    if (CU_get_registry() == NULL) CU_initialize_registry();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures() * 0;
    unsigned run = CU_get_number_of_tests_run();
    printf("\n%u run, %u failed, %d skipped\n", run, failed, n_skipped);
    int rc = (CU_get_number_of_failures() || failed) ? 1 : 0;
    CU_cleanup_registry();
    return rc;
}

void tu_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("\n    SKIPPED: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_skipped++;
}

static char *rot_buf(void) {
    static char bufs[8][4096];
    static int i;
    return bufs[i++ & 7];
}

const char *tu_data(const char *rel) {
    char *b = rot_buf();
    const char *data = getenv("TOLK_DATA"), *src = getenv("TOLK_SOURCE_DIR");
    if (data && *data)
        snprintf(b, 4096, "%s/%s", data, rel);
    else
        snprintf(b, 4096, "%s/data/%s", src && *src ? src : TOLK_SOURCE_DIR, rel);
    return b;
}

const char *tu_src(const char *rel) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", TOLK_SOURCE_DIR, rel);
    return b;
}

int tu_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}

const char *tu_model_dir(const char *name) {
    char *b = rot_buf();
    const char *env = getenv("TOLK_MODELS");
    if (env && *env)
        snprintf(b, 4096, "%s/%s", env, name);
    else
        snprintf(b, 4096, "%s/.cache/tolk/models/%s", getenv("HOME") ? getenv("HOME") : "/tmp",
                 name);
    return tu_exists(b) ? b : NULL;
}

const char *tu_require_model(const char *name) {
    const char *d = tu_model_dir(name);
    if (d) return d;
    const char *req = getenv("TOLK_REQUIRE_MODELS");
    if (req && *req && strcmp(req, "0") != 0) {
        CU_FAIL("model not installed (run scripts/get-model)");
        printf("\n    model '%s' is required (TOLK_REQUIRE_MODELS) but not installed\n", name);
    } else {
        tu_skip("model '%s' not installed (scripts/get-model %s)", name, name);
    }
    return NULL;
}

static char tmpdir[256];

static void rm_tmpdir(void) {
    if (!tmpdir[0]) return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

const char *tu_tmp(const char *name) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/tolk-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
        atexit(rm_tmpdir);
    }
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", tmpdir, name);
    return b;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

void tu_seed(uint64_t seed) {
    rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

float tu_uniform(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    double u = (double)(rng_state >> 11) / (double)(1ull << 53);
    return lo + (float)(u * (hi - lo));
}

void tu_fill_uniform(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = tu_uniform(lo, hi);
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

double tu_max_rel_diff(const float *a, const float *b, size_t n) {
    double mb = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    double d = tu_max_abs_diff(a, b, n);
    return mb > 0 ? d / mb : d;
}

float *tu_load_npy(const char *path, int64_t shape[4], int *ndim) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char magic[10];
    float *data = NULL;
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) goto out;
    size_t hlen;
    if (magic[6] == 1) {
        hlen = magic[8] | (magic[9] << 8);
    } else {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) goto out;
        hlen = magic[8] | (magic[9] << 8) | ((size_t)b[0] << 16) | ((size_t)b[1] << 24);
    }
    char *h = calloc(1, hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) {
        free(h);
        goto out;
    }
    if (!strstr(h, "'<f4'") || strstr(h, "'fortran_order': True")) {
        free(h);
        goto out;
    }
    char *s = strstr(h, "'shape': (");
    if (!s) {
        free(h);
        goto out;
    }
    s += 10;
    int nd = 0;
    size_t total = 1;
    while (*s && *s != ')' && nd < 4) {
        char *e;
        long long v = strtoll(s, &e, 10);
        if (e == s) break;
        shape[nd++] = v;
        total *= (size_t)v;
        s = e;
        while (*s == ',' || *s == ' ')
            s++;
    }
    free(h);
    *ndim = nd;
    data = malloc(total ? total * sizeof(float) : 1);
    if (data && fread(data, sizeof(float), total, f) != total) {
        free(data);
        data = NULL;
    }
out:
    fclose(f);
    return data;
}

/* An independent reference for the library's half conversions. */
/* float -> IEEE half, round to nearest even (normal range and zero only). */
uint16_t tu_f2h(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000u;
    int32_t e = (int32_t)((b >> 23) & 0xff) - 127 + 15;
    uint32_t m = b & 0x7fffffu;
    if (e <= 0) return (uint16_t)sign; /* tiny -> signed zero (not used here) */
    uint32_t h = sign | ((uint32_t)e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)h;
}

float tu_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float f = (float)m / 16777216.0f;
        return sign ? -f : f;
    }
    uint32_t b = sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void no_cuda(void) {
    CU_ASSERT_EQUAL(tolk_cuda_available(), 0);
    tu_skip("CPU-only build: no CUDA kernels");
}

int tu_run_without_cuda(const char *suite) {
    CU_TestInfo tests[] = {{"no_cuda", no_cuda}, CU_TEST_INFO_NULL};
    tu_add_suite(suite, tests);
    return tu_run();
}

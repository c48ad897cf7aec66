/*
 * testutil.h — helpers shared by the CUnit suites: a runner with a summary
 * line and exit status, skipping, paths to shared data and models, random
 * data, and error measures.
 */
#ifndef TOLK_TESTUTIL_H
#define TOLK_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>

/* Register one suite: tests is a NULL-terminated array of CU_TestInfo
 * (only the tests named in $TOLK_TESTS, comma-separated, when it is set). */
void tu_add_suite(const char *name, CU_TestInfo *tests);

/* Run every registered suite (basic mode, verbose) and return the exit
 * status for main: 0 when nothing failed. */
int tu_run(void);
/* The whole main() of a GPU suite in a build without CUDA: one test that
 * checks no device is reported and skips, run as suite `suite`. */
int tu_run_without_cuda(const char *suite);

/* Mark the current test skipped with a reason (printed once); the test
 * function should return right after. Counted in the summary. */
void tu_skip(const char *fmt, ...);

/* Path under the checkout's data/ (speech clips, manifests, whisper
 * assets): $TOLK_DATA when set, else $TOLK_SOURCE_DIR/data (CTest sets it),
 * else the source tree this test was built from. Found at run time, so
 * nothing recorded at configure time goes stale. Static buffer rotation of
 * 8. */
const char *tu_data(const char *rel);
/* The name tests used before data/ moved into the repository. */
#define tu_shared tu_data
/* Path under the source tree; same buffer rules. */
const char *tu_src(const char *rel);
/* Whether a file or directory exists. */
int tu_exists(const char *path);

/* Directory of an installed model (scripts/get-model cache: $TOLK_MODELS or
 * ~/.cache/tolk/models/NAME), or NULL when absent. Buffer rules as above. */
const char *tu_model_dir(const char *name);

/* Like tu_model_dir, but when the model is absent: fails the current test
 * if TOLK_REQUIRE_MODELS is set (CI sets it after scripts/get-model), else
 * skips it with a notice. Returns NULL in both cases. */
const char *tu_require_model(const char *name);

/* A temporary directory for this test process, created on first use and
 * removed at exit; tu_tmp("x.wav") gives a path in it. */
const char *tu_tmp(const char *name);

/* Deterministic random numbers (xorshift): uniform in [lo, hi). */
void tu_seed(uint64_t seed);
float tu_uniform(float lo, float hi);
void tu_fill_uniform(float *x, size_t n, float lo, float hi);
/* float -> IEEE half bits, round to nearest even (normal range and zero
 * only), and back: plain loops the tests use as an independent reference
 * for the library's conversions. */
uint16_t tu_f2h(float f);
float tu_h2f(uint16_t h);

/* max |a - b| and max |a - b| / max |b|. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
double tu_max_rel_diff(const float *a, const float *b, size_t n);

/* Read a float32 little-endian .npy file (C order); *shape gets up to 4
 * dimensions, *ndim their count. Returns malloc'd data or NULL. */
float *tu_load_npy(const char *path, int64_t shape[4], int *ndim);

#endif

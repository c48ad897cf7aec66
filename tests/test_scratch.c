/*
 * test_scratch.c — per-thread scratch buffers (src/scratch.c): alignment,
 * reuse of the same buffer while it is big enough, growth, separate slots,
 * separate threads, and the refusals (size 0, bad slot).
 */
#include "scratch.h"
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static void test_reuse_and_grow(void) {
    unsigned char *a = tolk_thread_scratch(TOLK_SCRATCH_WORK, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL((uintptr_t)a % 64, 0);
    memset(a, 0x5a, 1000); /* every byte writable */
    /* the same or a smaller request: the same buffer */
    CU_ASSERT_PTR_EQUAL(tolk_thread_scratch(TOLK_SCRATCH_WORK, 1000), a);
    CU_ASSERT_PTR_EQUAL(tolk_thread_scratch(TOLK_SCRATCH_WORK, 10), a);
    /* within the growth margin (a quarter): still the same */
    CU_ASSERT_PTR_EQUAL(tolk_thread_scratch(TOLK_SCRATCH_WORK, 1200), a);
    unsigned char *b = tolk_thread_scratch(TOLK_SCRATCH_WORK, 1 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL((uintptr_t)b % 64, 0);
    memset(b, 0xa5, 1 << 20);
    CU_ASSERT_PTR_EQUAL(tolk_thread_scratch(TOLK_SCRATCH_WORK, 4096), b);
    /* another slot is another buffer */
    unsigned char *c = tolk_thread_scratch(TOLK_SCRATCH_COLS, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(c != b);
    CU_ASSERT(c + 4096 <= b || b + (1 << 20) <= c);
}

static void test_refusals(void) {
    CU_ASSERT_PTR_NULL(tolk_thread_scratch(TOLK_SCRATCH_WORK, 0));
    CU_ASSERT_PTR_NULL(tolk_thread_scratch(TOLK_SCRATCH_N, 64));
    CU_ASSERT_PTR_NULL(tolk_thread_scratch((tolk_scratch_slot)-1, 64));
    CU_ASSERT_PTR_NULL(tolk_thread_scratch(TOLK_SCRATCH_WORK, SIZE_MAX));
}

static void *other_thread(void *arg) {
    return tolk_thread_scratch(TOLK_SCRATCH_WORK, *(size_t *)arg);
}

static void test_threads(void) {
    size_t n = 4096;
    void *mine = tolk_thread_scratch(TOLK_SCRATCH_WORK, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mine);
    pthread_t t;
    void *theirs = NULL;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, other_thread, &n), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_join(t, &theirs), 0);
    /* the other thread got its own buffer (freed at its exit: ASan and LSan
     * builds would report a leak or a double free) */
    CU_ASSERT_PTR_NOT_NULL(theirs);
    CU_ASSERT(theirs != mine);
}

int main(void) {
    CU_TestInfo tests[] = {{"reuse_and_grow", test_reuse_and_grow},
                           {"refusals", test_refusals},
                           {"threads", test_threads},
                           CU_TEST_INFO_NULL};
    tu_add_suite("scratch", tests);
    return tu_run();
}

/*
 * cuda_guard.h — device buffers between guard zones for the GPU tests
 * (test_cuda_*.c): every buffer is filled with a 0xFF sentinel (also a NaN
 * in every float type) and surrounded by GUARD bytes of it, which must
 * survive the kernel under test; and the skip-without-a-device macro.
 * CUDA builds (real or emulated) only.
 */
#ifndef TOLK_TEST_CUDA_GUARD_H
#define TOLK_TEST_CUDA_GUARD_H

#ifdef TOLK_HAVE_CUDA

#include "testutil.h"

#include <stddef.h>

/* Skip the calling test (return) when no CUDA device is usable. */
#define NEED_DEVICE()                                                                              \
    do {                                                                                           \
        if (!tolk_cuda_available()) {                                                              \
            tu_skip("no CUDA device");                                                             \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define GUARD 256 /* bytes of sentinel before and after every buffer */
#define SENTINEL 0xFF
#define MAX_BUFS 256

/* The buffers one test allocates, freed together by dpool_finish. */
typedef struct dpool {
    unsigned char *base[MAX_BUFS];
    size_t bytes[MAX_BUFS];
    int n;
} dpool;

/* A device buffer of `bytes`, entirely filled with the sentinel, between
 * two guard zones (fails the test fatally when out of slots or memory). */
void *dalloc(dpool *p, size_t bytes);

/* Synchronise, check every guard zone of the pool (a CUnit failure per
 * damaged buffer, with the count printed), then free the buffers. */
void dpool_finish(dpool *p);

/* Bytes of a TOLK_CU_* storage type. */
size_t dt_size(int dt);

#endif /* TOLK_HAVE_CUDA */
#endif /* TOLK_TEST_CUDA_GUARD_H */

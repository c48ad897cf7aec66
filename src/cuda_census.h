/*
 * cuda_census.h — the CUDA backend's counting hooks (cuda_census.c): every
 * backend operation reports the kernels it enqueues, the global-memory
 * bytes they must move (each operand once) and their floating-point
 * operations, per kernel kind; launches made while a graph is being
 * captured also count as graph nodes, stream-ordered scratch as memory
 * nodes. Read through the backend's census entry (backend.h). CUDA builds
 * only; no reference behaviour (bookkeeping).
 */
#ifndef TOLK_CUDA_CENSUS_H
#define TOLK_CUDA_CENSUS_H

#include "backend.h"

#include <pthread.h>

typedef struct cu_census {
    int mode; /* 0 off, 1 count, 2 count only (dry run) */
    pthread_mutex_t mu;
    tolk_census c;
} cu_census;

/* Mode from the environment (TOLK_CUDA_CENSUS = 1 / dry), counters zeroed.
 * Returns 0, or -1 when the mutex cannot be created (counting then off). */
int cu_census_init(cu_census *cs);
void cu_census_destroy(cu_census *cs);

/* Add `kernels` launches of kind name (a static string) moving bytes and
 * doing flops; capturing: they were recorded into a graph. No-op when off. */
void cu_census_add(cu_census *cs, const char *name, int kernels, double bytes, double flops,
                   int capturing);
/* Add graph memory (alloc / free) or copy nodes (when capturing). */
void cu_census_nodes(cu_census *cs, int mem_nodes, int copy_nodes, int capturing);
/* Copy the census into *out (zeros when off); reset zeroes the counters. */
void cu_census_get(cu_census *cs, tolk_census *out, int reset);

#endif /* TOLK_CUDA_CENSUS_H */

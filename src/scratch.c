/*
 * scratch.c — per-thread reusable scratch buffers (scratch.h): one small
 * table per thread behind a pthread key whose destructor frees the buffers
 * when the thread exits.
 */
#include "scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct scratch_tls {
    void *p[TOLK_SCRATCH_N];
    size_t n[TOLK_SCRATCH_N];
} scratch_tls;

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int key_ok;

static void tls_free(void *v) {
    scratch_tls *s = v;
    for (int i = 0; i < TOLK_SCRATCH_N; i++)
        free(s->p[i]);
    free(s);
}

static void key_init(void) {
    key_ok = pthread_key_create(&key, tls_free) == 0;
}

void *tolk_thread_scratch(tolk_scratch_slot slot, size_t bytes) {
    if ((unsigned)slot >= TOLK_SCRATCH_N || bytes == 0 || bytes > SIZE_MAX - 64) return NULL;
    pthread_once(&once, key_init);
    if (!key_ok) return NULL;
    scratch_tls *s = pthread_getspecific(key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->n[slot] < bytes) {
        /* grow by at least a quarter so slowly rising sizes do not
         * reallocate every call */
        size_t want = bytes + bytes / 4;
        if (want < bytes || want > SIZE_MAX - 64) want = bytes;
        want = (want + 63) & ~(size_t)63;
        free(s->p[slot]);
        s->p[slot] = aligned_alloc(64, want);
        s->n[slot] = s->p[slot] ? want : 0;
    }
    return s->p[slot];
}

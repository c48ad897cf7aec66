/*
 * scratch.h — per-thread reusable scratch buffers for the CPU kernels.
 *
 * The CPU backend's ops need temporary buffers (im2col columns, float16 rows
 * widened for sgemm, attention scores, bf16 GEMM packing). Allocating them
 * per call makes a long file allocate and free tens of megabytes per 30 s
 * window, and glibc's heap then fragments: peak RSS grew with the length of
 * the file although the live heap did not. Each thread instead keeps one
 * buffer per slot, grown when a call needs more and freed when the thread
 * exits, so memory is bounded by the largest op, not by the file.
 */
#ifndef TOLK_SCRATCH_H
#define TOLK_SCRATCH_H

#include <stddef.h>

/* Slots: a caller may hold one buffer of each slot at a time. An op that
 * runs a parallel region uses TOLK_SCRATCH_WORK in every worker (the calling
 * thread included), so the calling thread keeps its own data in another
 * slot. */
typedef enum tolk_scratch_slot {
    TOLK_SCRATCH_COLS = 0, /* conv1d im2col columns (calling thread) */
    TOLK_SCRATCH_WORK = 1, /* per-worker buffers inside a parallel region */
    TOLK_SCRATCH_GEMM = 2, /* tolk_gemm_bf16's packed activations (workers) */
    TOLK_SCRATCH_N
} tolk_scratch_slot;

/* A buffer of at least `bytes` bytes (64-byte aligned) owned by the calling
 * thread for `slot`; its content is undefined. Valid until the same thread
 * asks for the same slot again or exits. Returns NULL when out of memory
 * (the previous buffer of the slot is then freed) or bytes is 0. */
void *tolk_thread_scratch(tolk_scratch_slot slot, size_t bytes);

#endif /* TOLK_SCRATCH_H */

/*
 * add.h — broadcast additions on the GPU (kernels/add.cu): residual add,
 * bias add and positional-embedding add are all
 *   y[i] = a[i] + b[i mod period_b] + c[i mod period_c]
 * over a flat array, with the period choosing the broadcast (n: elementwise;
 * cols: a per-column bias; T * d: a positional table repeated per window).
 * Reproduces the `x + y` tensor additions of openai-whisper's model.py.
 */
#ifndef TOLK_KERNELS_ADD_H
#define TOLK_KERNELS_ADD_H

#include "kcommon.h"

TOLK_CU_BEGIN_DECLS

/* y[i] = a[i] + (b ? b[i % period_b] : 0) + (c ? c[i % period_c] : 0), i < n.
 * y, a, b: [n] (b: [period_b]) of type dtype; c: float32 [period_c] (a bias
 * or positional table kept in float32). y may equal a or b. Periods must be
 * >= 1 when the operand is given; n >= 0. */
int tolk_cu_add(void *y, const void *a, const void *b, long long period_b, const float *c,
                long long period_c, long long n, int dtype, void *stream);

TOLK_CU_END_DECLS

#endif /* TOLK_KERNELS_ADD_H */

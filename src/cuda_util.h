/*
 * cuda_util.h — host-side helpers for the CUDA glue files (src/cuda_*.c,
 * CUDA builds only): turning CUDA runtime errors and kernel-launcher
 * return codes (kernels/kcommon.h) into a tolk_status with a message on the
 * context, and the CUDA backend's constructor.
 *
 * Streams: the CUDA backend enqueues all work on cudaStreamPerThread, so
 * every host thread has its own stream and the backend object can be
 * shared by threads without locking its operations.
 */
#ifndef TOLK_CUDA_UTIL_H
#define TOLK_CUDA_UTIL_H

#include "backend.h"
#include "internal.h"

#include "../kernels/gemm.h"
#include "../kernels/kcommon.h"

#include <cuda_runtime_api.h>

/* The stream every backend operation of the calling thread runs on. */
#define TOLK_CU_STREAM ((void *)cudaStreamPerThread)

/* TOLK_OK for cudaSuccess; else set ctx's message to "<who>: <what>: <CUDA
 * error text>" and return TOLK_ERR_NOMEM (allocation failures) or
 * TOLK_ERR_CUDA. Clears a non-sticky error so later calls are unaffected. */
static inline tolk_status tolk_cuda_status(tolk_ctx *ctx, cudaError_t err, const char *who,
                                           const char *what) {
    if (err == cudaSuccess) return TOLK_OK;
    (void)cudaGetLastError();
    return tolk_fail(ctx, err == cudaErrorMemoryAllocation ? TOLK_ERR_NOMEM : TOLK_ERR_CUDA,
                     "%s: %s: %s", who, what, cudaGetErrorString(err));
}

/* The same for the return code of a kernels/ launcher: 0 -> TOLK_OK,
 * TOLK_CU_EINVAL -> TOLK_ERR_INVALID_ARG (the launcher rejected the
 * arguments), TOLK_CU_GEMM_EBLAS + s -> TOLK_ERR_CUDA naming the cuBLAS
 * status, anything else a cudaError_t. */
static inline tolk_status tolk_cuda_kstatus(tolk_ctx *ctx, int rc, const char *who,
                                            const char *what) {
    if (rc == 0) return TOLK_OK;
    if (rc == TOLK_CU_EINVAL)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: %s: arguments rejected by the kernel", who,
                         what);
    if (rc >= TOLK_CU_GEMM_EBLAS)
        return tolk_fail(ctx, TOLK_ERR_CUDA, "%s: %s: cuBLAS status %d", who, what,
                         rc - TOLK_CU_GEMM_EBLAS);
    return tolk_cuda_status(ctx, (cudaError_t)rc, who, what);
}

/* Create the CUDA backend (backend.h op table over kernels/ and cuBLASLt)
 * on device ctx->params.cuda_device (0 when ctx is NULL).
 * params->keep_f16 = 1: float16 / bfloat16 weights stay half precision and
 * products run on tensor cores with float32 accumulation; 0: every weight
 * is widened to float32 and products are exact float32 (no TF32): the
 * parity mode. Returns TOLK_ERR_NO_DEVICE without a usable device. *out is
 * released with (*out)->destroy. */
tolk_status tolk_backend_cuda_new(tolk_ctx *ctx, const tolk_backend_params *params,
                                  tolk_backend **out);

#endif /* TOLK_CUDA_UTIL_H */

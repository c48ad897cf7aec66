/*
 * kcommon.h — definitions shared by the CUDA kernel launchers in kernels/:
 * the element types a launcher accepts and the C linkage macros. Plain C,
 * includable from C and from CUDA C++.
 *
 * Conventions of every launcher in kernels/:
 *  - All tensor pointers are DEVICE pointers; matrices are row-major and
 *    `ld*` arguments are row strides in elements (>= the row length).
 *  - `stream` is a cudaStream_t passed as void * (NULL = the legacy default
 *    stream; cudaStreamPerThread is allowed).
 *  - Launchers only enqueue work: no allocation, no synchronisation, no
 *    host<->device copies. They return 0 (cudaSuccess) or a cudaError_t
 *    value: cudaErrorInvalidValue (1) for arguments they reject, otherwise
 *    whatever cudaGetLastError() reports after the launch. Errors during
 *    kernel execution surface at the caller's next synchronisation.
 *  - Arithmetic is float32 whatever the storage type.
 */
#ifndef TOLK_KCOMMON_H
#define TOLK_KCOMMON_H

#ifdef __cplusplus
#define TOLK_CU_BEGIN_DECLS extern "C" {
#define TOLK_CU_END_DECLS }
#else
#define TOLK_CU_BEGIN_DECLS
#define TOLK_CU_END_DECLS
#endif

/* Storage types of activations and weights. The values equal tolk_dtype's
 * (weights.h) TOLK_DT_F32 / TOLK_DT_F16 / TOLK_DT_BF16 so that a tolk_dtype
 * can be passed through unchanged. */
enum {
    TOLK_CU_F32 = 0, /* IEEE binary32 */
    TOLK_CU_F16 = 1, /* IEEE binary16 (__half) */
    TOLK_CU_BF16 = 2 /* bfloat16 (__nv_bfloat16) */
};

/* The return value for arguments a launcher rejects (cudaErrorInvalidValue). */
#define TOLK_CU_EINVAL 1

#endif /* TOLK_KCOMMON_H */

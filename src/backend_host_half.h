/*
 * backend_host_half.h — half-activation forms of the backend ops over a
 * host-memory backend's float32 ops (backend_host_half.c): the CPU
 * backend's twins of the CUDA half-activation path.
 */
#ifndef TOLK_BACKEND_HOST_HALF_H
#define TOLK_BACKEND_HOST_HALF_H

#include "backend.h"

/* backend.h linear with TOLK_LINEAR_X_F16, _Y_F16 and / or _GELU (host
 * memory): x (and a float16 y's float16 bias) widened, be->linear run
 * without the half flags, the GELU (tanh form) applied in float32, y
 * rounded. Its errors, TOLK_ERR_INVALID_ARG (a float16 y with
 * accumulation, GELU without a float16 y, bad sizes), TOLK_ERR_NOMEM. */
tolk_status tolk_host_half_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  const void *x, size_t ldx, size_t M, const tolk_bweight *W,
                                  const void *bias, int flags);

/* backend.h layernorm_h / bias_gelu_h over be->layernorm / be->bias_gelu. */
tolk_status tolk_host_half_layernorm(tolk_ctx *ctx, const tolk_backend *be, uint16_t *y,
                                     const float *x, size_t M, size_t D, const float *gamma,
                                     const float *beta, float eps);
tolk_status tolk_host_half_bias_gelu(tolk_ctx *ctx, const tolk_backend *be, uint16_t *x, size_t ldx,
                                     size_t M, size_t N, const float *bias);

/* backend.h attention_desc with TOLK_ATTN_OUT_F16 (host descriptors):
 * be->attention_desc without that flag into a float32 scratch of the rows the descriptors write,
 * rounded into out; the other flags passed on. */
tolk_status tolk_host_half_attention_desc(tolk_ctx *ctx, const tolk_backend *be, const float *q,
                                          size_t ldq, const void *k, const void *v, size_t ldkv,
                                          void *out, size_t ldo, const tolk_attn_desc *desc,
                                          int n_seqs, int max_n_q, int max_n_kv, int n_head,
                                          int d_head, float scale, int flags);

/* backend.h attention with TOLK_ATTN_OUT_F16 (host memory), and with
 * qkv_f16 also TOLK_ATTN_QKV_F16 (q, k, v float16, widened first):
 * be->attention in float32 into a scratch, each sequence's rows rounded
 * into its out. */
tolk_status tolk_host_half_attention(tolk_ctx *ctx, const tolk_backend *be,
                                     const tolk_attn_seq *seqs, int n_seqs, int n_head, int d_head,
                                     size_t ldq, size_t ldkv, size_t ldo, float scale, int qkv_f16);

/* backend.h norm_linear's twin (host memory, any M and weight type):
 * be->layernorm per row, each row rounded to float16 and widened, be->linear
 * in float32 with the float32 bias, be->bias_gelu (exact erf) with
 * TOLK_NORM_LINEAR_GELU, y rounded to float16 with _Y_F16. Errors:
 * TOLK_ERR_INVALID_ARG (unknown flags, bad sizes), TOLK_ERR_NOMEM. */
tolk_status tolk_host_norm_linear(tolk_ctx *ctx, const tolk_backend *be, void *y, size_t ldy,
                                  const float *x, size_t ldx, size_t M, const float *gamma,
                                  const float *beta, float eps, const tolk_bweight *W,
                                  const float *bias, int flags);

#endif /* TOLK_BACKEND_HOST_HALF_H */

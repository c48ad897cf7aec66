/*
 * cuemu_device.h — tolk CPU emulator (tests/cuemu): the CUDA C++ device
 * language on the CPU. Kernels (kernels/ *.cu, rewritten by
 * tests/cuemu/rewrite.py) are compiled by g++ as C++17 against this header.
 *
 *  - __global__ / __device__ / __host__ / __forceinline__ / __launch_bounds__
 *    are plain C++; __shared__ is `static` (one block runs at a time).
 *  - threadIdx / blockIdx / blockDim / gridDim are globals that the fiber
 *    scheduler (cuemu.cpp) updates at every switch between threads.
 *  - __syncthreads() and the warp collectives park the calling fiber until
 *    every thread of the block (or every lane of the mask) arrives; a
 *    barrier that can never complete is reported as a launch failure.
 *  - `k<<<g, b, smem, s>>>(args)` becomes
 *    `::cuemu::launcher("k", k, g, b, smem, s)(args)`: the arguments are
 *    converted to the kernel's parameter types and copied (also when the
 *    stream is being captured into a graph).
 */
#ifndef CUEMU_DEVICE_H
#define CUEMU_DEVICE_H

#include "cuda_runtime_api.h"
#include "cuda_fp16.h"
#include "cuda_bf16.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__
#define __managed__
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __builtin_assume_aligned_cuemu(p, n) (p)

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
static constexpr int warpSize = 32;

/* ------------------------------------------------------------------ */
/* scheduler entry points (cuemu.cpp)                                  */
/* ------------------------------------------------------------------ */
namespace cuemu {
enum warp_kind { W_SHFL = 1, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNC,
                 W_REDUCE_ADD, W_REDUCE_MIN, W_REDUCE_MAX, W_MATCH_ANY, W_MMA, W_FN };
/* One warp collective: val (size bytes, <= 16) in, the result out. */
void warp_op(int kind, unsigned mask, const void *val, int size, int param, int width, void *out);
/* Block barrier; returns how many threads passed a nonzero pred. */
int block_barrier(int pred);
unsigned active_mask();
void *dyn_smem();
typedef void (*mma_fn)(void *d, const void *a, const void *b, const void *c);
/* Warp-collective matrix product: every lane of the warp passes its own
 * fragments; fn computes one lane's d (lanes with equal inputs share it). */
void warp_mma(void *d, const void *a, const void *b, const void *c, size_t d_bytes,
              size_t a_bytes, size_t b_bytes, size_t c_bytes, mma_fn fn);

/* A warp-wide instruction (.sync.aligned PTX: ldmatrix, mma.sync): every
 * lane of a full warp passes its operands (in) and its result buffer
 * (out); when all 32 have arrived, fn(in[32], out[32], param) runs once.
 * Lanes must agree on fn and param (the same instruction); what names it
 * in diagnostics. */
typedef void (*warp_fn)(const void *const *in, void *const *out, int param);
void warp_call(const char *what, const void *in, void *out, int param, warp_fn fn);

/* The PTX instructions tolk's tensor-core kernels use (kernels/ptx.cuh),
 * with the per-lane fragment layouts of the PTX ISA (cuemu.cpp):
 *  ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lane l passes
 *    the row address it supplies (16-byte aligned; lanes 8m..8m+7 give the
 *    rows of matrix m) and receives r[m] = {M_m[l/4][2(l%4)],
 *    M_m[l/4][2(l%4)+1]} (.trans: {M_m[2(l%4)][l/4], M_m[2(l%4)+1][l/4]}),
 *    the lower-numbered element in the low 16 bits.
 *  mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32
 *    (bf16 = 1): D = A B + C, A 16x16 in a[4], B 16x8 in b[2], C and D
 *    16x8 float; g = l/4, t = l%4: a[0] = A[g][2t..2t+1], a[1] =
 *    A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]; b[0] =
 *    B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]; c/d[0..1] = C[g][2t..2t+1],
 *    c/d[2..3] = C[g+8][2t..]. Products are exact in float; the sum runs
 *    over k in order with fmaf (the GPU's order and rounding differ in the
 *    last bits).
 *  cp.async.{ca,cg}.shared.global [dst], [src], cp_bytes, src_bytes and
 *    cp.async.commit_group / wait_group n: the copy (src_bytes read, the
 *    rest of cp_bytes zero-filled) is only PERFORMED when a wait_group of
 *    the issuing thread retires its group, so shared memory read before
 *    the wait (or, by other threads, before the wait and a barrier) still
 *    holds its old contents, as it may on the GPU. */
void ptx_ldmatrix(int num, int trans, unsigned *r, const void *row_addr);
void ptx_mma_m16n8k16(int bf16, float *d, const unsigned *a, const unsigned *b, const float *c);
void ptx_cp_async(void *dst, const void *src, int cp_bytes, int src_bytes);
void ptx_cp_async_commit();
void ptx_cp_async_wait(int n);

cudaError_t launch_erased(const char *site, const void *fn, dim3 g, dim3 b, size_t smem,
                          cudaStream_t s, std::shared_ptr<std::function<void()>> body);

template <class... P> struct launcher_t {
    const char *site;
    void (*k)(P...);
    dim3 g, b;
    size_t smem;
    cudaStream_t s;
    cudaError_t operator()(P... p) const {
        auto args = std::make_shared<std::tuple<std::decay_t<P>...>>(p...);
        void (*kk)(P...) = k;
        auto body = std::make_shared<std::function<void()>>([kk, args]() { std::apply(kk, *args); });
        return launch_erased(site, (const void *)kk, g, b, smem, s, std::move(body));
    }
};
template <class... P>
inline launcher_t<P...> launcher(const char *site, void (*k)(P...), dim3 g, dim3 b,
                                 size_t smem = 0, cudaStream_t s = 0) {
    return launcher_t<P...>{site, k, g, b, smem, s};
}

template <class T> inline T warp_t(int kind, unsigned mask, T v, int param, int width) {
    static_assert(sizeof(T) <= 16, "warp shuffle of a type over 16 bytes");
    T out;
    warp_op(kind, mask, &v, (int)sizeof(T), param, width, &out);
    return out;
}
} // namespace cuemu

/* ------------------------------------------------------------------ */
/* synchronisation                                                     */
/* ------------------------------------------------------------------ */
inline void __syncthreads() { (void)cuemu::block_barrier(0); }
inline int __syncthreads_count(int p) { return cuemu::block_barrier(p != 0); }
inline int __syncthreads_and(int p) { return cuemu::block_barrier(p != 0) == (int)(blockDim.x * blockDim.y * blockDim.z); }
inline int __syncthreads_or(int p) { return cuemu::block_barrier(p != 0) > 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    int z = 0;
    cuemu::warp_op(cuemu::W_SYNC, mask, &z, 4, 0, 32, &z);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned __activemask() { return cuemu::active_mask(); }
inline void __nanosleep(unsigned) {}

template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
    return cuemu::warp_t(cuemu::W_SHFL, m, v, src, w);
}
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
    return cuemu::warp_t(cuemu::W_SHFL_UP, m, v, (int)d, w);
}
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    return cuemu::warp_t(cuemu::W_SHFL_DOWN, m, v, (int)d, w);
}
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32) {
    return cuemu::warp_t(cuemu::W_SHFL_XOR, m, v, lm, w);
}
inline unsigned __ballot_sync(unsigned m, int p) {
    int v = p != 0;
    unsigned out;
    cuemu::warp_op(cuemu::W_BALLOT, m, &v, 4, 0, 32, &out);
    return out;
}
inline int __any_sync(unsigned m, int p) {
    int v = p != 0, out;
    cuemu::warp_op(cuemu::W_ANY, m, &v, 4, 0, 32, &out);
    return out;
}
inline int __all_sync(unsigned m, int p) {
    int v = p != 0, out;
    cuemu::warp_op(cuemu::W_ALL, m, &v, 4, 0, 32, &out);
    return out;
}
inline int __reduce_add_sync(unsigned m, int v) { return cuemu::warp_t(cuemu::W_REDUCE_ADD, m, v, 1, 32); }
inline unsigned __reduce_add_sync(unsigned m, unsigned v) { return cuemu::warp_t(cuemu::W_REDUCE_ADD, m, v, 0, 32); }
inline int __reduce_min_sync(unsigned m, int v) { return cuemu::warp_t(cuemu::W_REDUCE_MIN, m, v, 1, 32); }
inline unsigned __reduce_min_sync(unsigned m, unsigned v) { return cuemu::warp_t(cuemu::W_REDUCE_MIN, m, v, 0, 32); }
inline int __reduce_max_sync(unsigned m, int v) { return cuemu::warp_t(cuemu::W_REDUCE_MAX, m, v, 1, 32); }
inline unsigned __reduce_max_sync(unsigned m, unsigned v) { return cuemu::warp_t(cuemu::W_REDUCE_MAX, m, v, 0, 32); }
template <class T> inline unsigned __match_any_sync(unsigned m, T v) {
    unsigned out;
    cuemu::warp_op(cuemu::W_MATCH_ANY, m, &v, (int)sizeof(T), 0, 32, &out);
    return out;
}

/* ------------------------------------------------------------------ */
/* math                                                                */
/* ------------------------------------------------------------------ */
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)b < (C)a ? (C)b : (C)a;
}
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)b : (C)a;
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float *s, float *c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float exp10f_cuemu(float x) { return powf(10.0f, x); }
/* sin(pi x), cos(pi x) with exact argument reduction */
inline void sincospi(double x, double *s, double *c) {
    if (!(x == x) || x == INFINITY || x == -INFINITY) { *s = *c = NAN; return; }
    double r = fmod(x, 2.0); /* exact */
    if (r < 0) r += 2.0;
    /* r in [0, 2): quadrant q, offset t in [-0.25, 0.25] */
    int q = (int)nearbyint(r * 2.0); /* 0..4 */
    double t = r - q * 0.5;           /* exact */
    double st = sin(M_PI * t), ct = cos(M_PI * t);
    if (t == 0.0) { st = 0.0; ct = 1.0; }
    switch (q & 3) {
    case 0: *s = st; *c = ct; break;
    case 1: *s = ct; *c = -st; break;
    case 2: *s = -st; *c = -ct; break;
    default: *s = -ct; *c = st; break;
    }
    if (*s == 0.0) *s = x < 0 ? -0.0 : 0.0;
}
inline void sincospif(float x, float *s, float *c) {
    double ds, dc;
    sincospi((double)x, &ds, &dc);
    *s = (float)ds;
    *c = (float)dc;
}
inline double sinpi(double x) { double s, c; sincospi(x, &s, &c); return s; }
inline double cospi(double x) { double s, c; sincospi(x, &s, &c); return c; }
inline float sinpif(float x) { float s, c; sincospif(x, &s, &c); return s; }
inline float cospif(float x) { float s, c; sincospif(x, &s, &c); return c; }
inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }

inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
inline double __longlong_as_double(long long i) { double f; memcpy(&f, &i, 8); return f; }
inline long long __double_as_longlong(double f) { long long i; memcpy(&i, &f, 8); return i; }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline long long __double2ll_rn(double x) { return (long long)nearbyint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __ll2float_rn(long long x) { return (float)x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldlu(const T *p) { return *p; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }

/* ------------------------------------------------------------------ */
/* atomics: one block at a time on one OS thread, so plain operations   */
/* ------------------------------------------------------------------ */
#define CUEMU_ATOMIC(T)                                                                          \
    inline T atomicAdd(T *a, T v) { T o = *a; *a = o + v; return o; }                           \
    inline T atomicSub(T *a, T v) { T o = *a; *a = o - v; return o; }                           \
    inline T atomicExch(T *a, T v) { T o = *a; *a = v; return o; }                              \
    inline T atomicMin(T *a, T v) { T o = *a; if (v < o) *a = v; return o; }                    \
    inline T atomicMax(T *a, T v) { T o = *a; if (v > o) *a = v; return o; }                    \
    inline T atomicCAS(T *a, T cmp, T v) { T o = *a; if (o == cmp) *a = v; return o; }
CUEMU_ATOMIC(int)
CUEMU_ATOMIC(unsigned)
CUEMU_ATOMIC(unsigned long long)
CUEMU_ATOMIC(long long)
#undef CUEMU_ATOMIC
inline float atomicAdd(float *a, float v) { float o = *a; *a = o + v; return o; }
inline double atomicAdd(double *a, double v) { double o = *a; *a = o + v; return o; }
inline float atomicExch(float *a, float v) { float o = *a; *a = v; return o; }
inline float atomicMax(float *a, float v) { float o = *a; if (v > o) *a = v; return o; }
inline float atomicMin(float *a, float v) { float o = *a; if (v < o) *a = v; return o; }
inline unsigned atomicInc(unsigned *a, unsigned v) { unsigned o = *a; *a = o >= v ? 0 : o + 1; return o; }
inline unsigned atomicDec(unsigned *a, unsigned v) { unsigned o = *a; *a = (o == 0 || o > v) ? v : o - 1; return o; }
#define CUEMU_ATOMIC_BIT(T)                                                                      \
    inline T atomicAnd(T *a, T v) { T o = *a; *a = o & v; return o; }                           \
    inline T atomicOr(T *a, T v) { T o = *a; *a = o | v; return o; }                            \
    inline T atomicXor(T *a, T v) { T o = *a; *a = o ^ v; return o; }
CUEMU_ATOMIC_BIT(int)
CUEMU_ATOMIC_BIT(unsigned)
CUEMU_ATOMIC_BIT(unsigned long long)
#undef CUEMU_ATOMIC_BIT
inline __half atomicAdd(__half *a, __half v) { __half o = *a; *a = o + v; return o; }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) { __nv_bfloat16 o = *a; *a = o + v; return o; }

/* ------------------------------------------------------------------ */
/* vector constructors                                                 */
/* ------------------------------------------------------------------ */
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int3 make_int3(int x, int y, int z) { return int3{x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline double2 make_double2(double x, double y) { return double2{x, y}; }
inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z, unsigned char w) { return uchar4{x, y, z, w}; }

#endif /* CUEMU_DEVICE_H */

/*
 * ptx.cuh — the sm_80+ warp-level instructions of the tensor-core kernels
 * (attention_tc.cu, ptx_probe.cu) as small device functions: ldmatrix,
 * mma.sync m16n8k16 with float32 accumulation, cp.async with zero fill,
 * and packing two floats into one 32-bit register of half values. CUDA C++
 * only. Reference: the PTX ISA (warp-level matrix instructions, fragment
 * layouts of mma.m16n8k16 for .f16 / .bf16; ldmatrix; cp.async).
 *
 * On the GPU each function is one inline-PTX instruction. In the CPU
 * emulator (tests/cuemu, which defines CUEMU_DEVICE_H) they call its
 * implementations of the same instructions, which reproduce the per-lane
 * fragment layouts the PTX ISA documents (see cuemu_device.h), so a kernel
 * that mixes up a layout fails its tests on the emulator too.
 *
 * Fragment layouts (lane l, g = l / 4, t = l % 4; "x..x+1" is one 32-bit
 * register holding two 16-bit values, the lower index in the low half):
 *   A 16x16 (row-major): a[0] = A[g][2t..], a[1] = A[g+8][2t..],
 *                        a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
 *   B 16x8  (k x n):     b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
 *   C/D 16x8 float:      c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..]
 *   ldmatrix .x4: lanes 8m..8m+7 supply the 16-byte row addresses of 8x8
 *   matrix m; lane l receives r[m] = M_m[g][2t..2t+1] (.trans: M_m[2t][g],
 *   M_m[2t+1][g]).
 */
#ifndef TOLK_PTX_CUH
#define TOLK_PTX_CUH

#include "kcommon.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "kernels/ptx.cuh needs sm_80 or newer (ldmatrix, mma.sync m16n8k16 bf16, cp.async)"
#endif

namespace tolkcu {

#ifndef CUEMU_DEVICE_H
__device__ __forceinline__ unsigned smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
#endif

/* Four 8x8 matrices of 16-bit values from shared memory (see above). */
__device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const void *row) {
#ifdef CUEMU_DEVICE_H
    cuemu::ptx_ldmatrix(4, 0, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
#endif
}

/* The same, each matrix transposed. */
__device__ __forceinline__ void ldsm_x4_trans(unsigned (&r)[4], const void *row) {
#ifdef CUEMU_DEVICE_H
    cuemu::ptx_ldmatrix(4, 1, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
#endif
}

/* d += A B for one 16x16 (A, type H) by 16x8 (B) tile, float32
 * accumulation; H = __half or __nv_bfloat16. */
template <typename H>
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                          unsigned b1);

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const unsigned (&a)[4],
                                                  unsigned b0, unsigned b1) {
#ifdef CUEMU_DEVICE_H
    const unsigned b[2] = {b0, b1};
    cuemu::ptx_mma_m16n8k16(0, d, a, b, d);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const unsigned (&a)[4],
                                                         unsigned b0, unsigned b1) {
#ifdef CUEMU_DEVICE_H
    const unsigned b[2] = {b0, b1};
    cuemu::ptx_mma_m16n8k16(1, d, a, b, d);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Asynchronous 16-byte copy global -> shared (both 16-byte aligned):
 * src_bytes (0 or 16) are read, the rest is zero-filled; with src_bytes 0
 * nothing is read (src must still be a valid address expression). L2 only
 * (.cg): K/V tiles are re-read by other blocks, not by this one. */
__device__ __forceinline__ void cp_async_16(void *dst, const void *src, int src_bytes) {
#ifdef CUEMU_DEVICE_H
    cuemu::ptx_cp_async(dst, src, 16, src_bytes);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(src_bytes)
                 : "memory");
#endif
}

/* Close the current group of cp.async copies of this thread. */
__device__ __forceinline__ void cp_async_commit() {
#ifdef CUEMU_DEVICE_H
    cuemu::ptx_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* Wait until at most N of this thread's committed groups are in flight
 * (their copies visible to this thread; a barrier publishes them). */
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifdef CUEMU_DEVICE_H
    cuemu::ptx_cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

/* Two floats rounded to H (nearest even), packed: lo in bits 0-15. */
template <typename H> __device__ __forceinline__ unsigned pack2(float lo, float hi);
template <> __device__ __forceinline__ unsigned pack2<__half>(float lo, float hi) {
    return (unsigned)__half_as_ushort(__float2half_rn(lo)) |
           (unsigned)__half_as_ushort(__float2half_rn(hi)) << 16;
}
template <> __device__ __forceinline__ unsigned pack2<__nv_bfloat16>(float lo, float hi) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
}

/* The 16-bit pattern of a storage value of H. */
__device__ __forceinline__ unsigned short bits16(__half x) {
    return __half_as_ushort(x);
}
__device__ __forceinline__ unsigned short bits16(__nv_bfloat16 x) {
    return __bfloat16_as_ushort(x);
}

} /* namespace tolkcu */

#endif /* TOLK_PTX_CUH */

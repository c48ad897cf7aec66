/*
 * mma.h — tolk CPU emulator (tests/cuemu): nvcuda::wmma on the CPU.
 *
 * Every lane of a warp holds the WHOLE tile (num_elements = rows * cols, in
 * row-major tile order), so layout-agnostic elementwise code on frag.x[i]
 * (scaling, conversion, masking by a uniform rule) works; code that relies
 * on the real per-lane element mapping does not (nor should it). mma_sync is
 * a warp collective (all 32 lanes must call it): products in float with
 * float accumulation, rounded to the accumulator type at the end.
 */
#ifndef CUEMU_MMA_H
#define CUEMU_MMA_H

#include "cuemu_device.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
} // namespace precision
namespace experimental {
namespace precision {
struct u4 {};
struct s4 {};
struct b1 {};
} // namespace precision
} // namespace experimental

template <class Use, int M, int N, int K> struct cuemu_dims;
template <int M, int N, int K> struct cuemu_dims<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K> struct cuemu_dims<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K> struct cuemu_dims<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};
template <class T> struct cuemu_storage {
    typedef T type;
};
template <> struct cuemu_storage<precision::tf32> {
    typedef float type;
};

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    typedef typename cuemu_storage<T>::type storage_element_type;
    typedef storage_element_type element_type;
    static constexpr int rows = cuemu_dims<Use, M, N, K>::rows;
    static constexpr int cols = cuemu_dims<Use, M, N, K>::cols;
    static constexpr int num_elements = rows * cols;
    storage_element_type x[num_elements];
};

inline float __float_to_tf32(float f) {
    uint32_t u = cuemu_f_bits(f);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return cuemu_bits_f(u);
}

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v) {
    typedef typename fragment<Use, M, N, K, T, L>::storage_element_type E;
    for (int i = 0; i < f.num_elements; i++) f.x[i] = (E)v;
}

template <class L> struct cuemu_is_col {
    static constexpr bool value = false;
};
template <> struct cuemu_is_col<col_major> {
    static constexpr bool value = true;
};

template <class Use, int M, int N, int K, class T, class L, class P,
          class = typename std::enable_if<!std::is_void<L>::value>::type>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const P *p, unsigned ldm) {
    typedef fragment<Use, M, N, K, T, L> F;
    typedef typename F::storage_element_type E;
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++)
            f.x[r * F::cols + c] =
                (E)(cuemu_is_col<L>::value ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]);
}
template <int M, int N, int K, class T, class P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void> &f, const P *p, unsigned ldm,
                             layout_t layout) {
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++)
            f.x[r * N + c] = (T)(layout == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]);
}
template <int M, int N, int K, class T, class P>
inline void store_matrix_sync(P *p, const fragment<accumulator, M, N, K, T, void> &f, unsigned ldm,
                              layout_t layout) {
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) {
            const T v = f.x[r * N + c];
            if (layout == mem_col_major)
                p[(size_t)c * ldm + r] = (P)v;
            else
                p[(size_t)r * ldm + c] = (P)v;
        }
}

template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class TD>
struct cuemu_mma {
    typedef fragment<matrix_a, M, N, K, TA, LA> FA;
    typedef fragment<matrix_b, M, N, K, TB, LB> FB;
    typedef fragment<accumulator, M, N, K, TC, void> FC;
    typedef fragment<accumulator, M, N, K, TD, void> FD;
    static void run(void *dp, const void *ap, const void *bp, const void *cp) {
        const FA &a = *(const FA *)ap;
        const FB &b = *(const FB *)bp;
        const FC &c = *(const FC *)cp;
        float out[M * N];
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float acc = (float)c.x[m * N + n];
                for (int k = 0; k < K; k++)
                    acc = fmaf((float)a.x[m * K + k], (float)b.x[k * N + n], acc);
                out[m * N + n] = acc;
            }
        FD &d = *(FD *)dp;
        for (int i = 0; i < M * N; i++) d.x[i] = (typename FD::storage_element_type)out[i];
    }
};

template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class TD>
inline void mma_sync(fragment<accumulator, M, N, K, TD, void> &d,
                     const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TB, LB> &b,
                     const fragment<accumulator, M, N, K, TC, void> &c, bool = false) {
    cuemu::warp_mma(&d, &a, &b, &c, sizeof d, sizeof a, sizeof b, sizeof c,
                    &cuemu_mma<M, N, K, TA, LA, TB, LB, TC, TD>::run);
}

} // namespace wmma
} // namespace nvcuda

#endif

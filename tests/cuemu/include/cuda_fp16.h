/*
 * cuda_fp16.h — tolk CPU emulator (tests/cuemu): __half / __half2 with
 * exact round-to-nearest-even conversions. Arithmetic goes through float and
 * rounds once (the GPU's native half ops may differ in rare double-rounding
 * cases of additions of very different magnitudes).
 */
#ifndef CUEMU_CUDA_FP16_H
#define CUEMU_CUDA_FP16_H

#include <stdint.h>
#include "vector_types.h"
#include <string.h>

static inline float cuemu_bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t cuemu_f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* float -> binary16 bits, round to nearest even; NaN -> 0x7fff (as CUDA). */
static inline unsigned short cuemu_f2h_bits(float f) {
    const uint32_t x = cuemu_f_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return 0x7fff;
    if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); /* >= 65520: inf */
    if (ax < 0x38800000u) {                                           /* half subnormal / 0 */
        if (ax < 0x33000000u) return (unsigned short)sign;            /* <= 2^-25: 0 */
        const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (unsigned short)(sign | r);
    }
    const uint32_t r = ax - 0x38000000u;
    uint32_t h = r >> 13;
    const uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (unsigned short)(sign | h);
}
static inline float cuemu_h2f_bits(unsigned short h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return cuemu_bits_f(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0) return cuemu_bits_f(sign);
        float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    return cuemu_bits_f(sign | ((e + 112u) << 23) | (m << 13));
}

#ifdef __cplusplus
struct __half_raw {
    unsigned short x;
};
struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(cuemu_f2h_bits(f)) {}
    __half(double f) : __x(cuemu_f2h_bits((float)f)) {}
    __half(int v) : __x(cuemu_f2h_bits((float)v)) {}
    __half(const __half_raw &r) : __x(r.x) {}
    operator float() const { return cuemu_h2f_bits(__x); }
    operator __half_raw() const { return __half_raw{__x}; }
    __half &operator+=(const __half &o) { return *this = __half((float)*this + (float)o); }
    __half &operator-=(const __half &o) { return *this = __half((float)*this - (float)o); }
    __half &operator*=(const __half &o) { return *this = __half((float)*this * (float)o); }
    __half &operator/=(const __half &o) { return *this = __half((float)*this / (float)o); }
};
struct __attribute__((aligned(4))) __half2 {
    __half x, y;
};
typedef __half half;
typedef __half2 half2;

static inline __half __float2half(float f) { return __half(f); }
static inline __half __float2half_rn(float f) { return __half(f); }
static inline float __half2float(__half h) { return cuemu_h2f_bits(h.__x); }
static inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __half __short_as_half(short u) { __half h; h.__x = (unsigned short)u; return h; }
static inline short __half_as_short(__half h) { return (short)h.__x; }
static inline __half __int2half_rn(int v) { return __half((float)v); }
static inline int __half2int_rn(__half h) { return (int)__builtin_rintf(__half2float(h)); }
static inline int __half2int_rz(__half h) { return (int)__half2float(h); }
static inline __half operator+(__half a, __half b) { return __half((float)a + (float)b); }
static inline __half operator-(__half a, __half b) { return __half((float)a - (float)b); }
static inline __half operator*(__half a, __half b) { return __half((float)a * (float)b); }
static inline __half operator/(__half a, __half b) { return __half((float)a / (float)b); }
static inline __half operator-(__half a) { __half r = a; r.__x ^= 0x8000u; return r; }
static inline bool operator==(__half a, __half b) { return (float)a == (float)b; }
static inline bool operator!=(__half a, __half b) { return (float)a != (float)b; }
static inline bool operator<(__half a, __half b) { return (float)a < (float)b; }
static inline bool operator>(__half a, __half b) { return (float)a > (float)b; }
static inline bool operator<=(__half a, __half b) { return (float)a <= (float)b; }
static inline bool operator>=(__half a, __half b) { return (float)a >= (float)b; }
static inline __half __hadd(__half a, __half b) { return a + b; }
static inline __half __hsub(__half a, __half b) { return a - b; }
static inline __half __hmul(__half a, __half b) { return a * b; }
static inline __half __hdiv(__half a, __half b) { return a / b; }
static inline __half __hneg(__half a) { return -a; }
static inline __half __habs(__half a) { __half r = a; r.__x &= 0x7fffu; return r; }
static inline __half __hfma(__half a, __half b, __half c) {
    return __half((float)((double)(float)a * (double)(float)b + (double)(float)c));
}
static inline __half __hmax(__half a, __half b) { return (float)a >= (float)b || b.__x == 0x7fff ? a : b; }
static inline __half __hmin(__half a, __half b) { return (float)a <= (float)b || b.__x == 0x7fff ? a : b; }
static inline bool __hisnan(__half a) { return (a.__x & 0x7fffu) > 0x7c00u; }
static inline int __hisinf(__half a) { return (a.__x & 0x7fffu) == 0x7c00u ? (a.__x & 0x8000u ? -1 : 1) : 0; }
static inline bool __heq(__half a, __half b) { return a == b; }
static inline bool __hlt(__half a, __half b) { return a < b; }
static inline bool __hgt(__half a, __half b) { return a > b; }
static inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
static inline __half2 __float2half2_rn(float f) { return __half2{__half(f), __half(f)}; }
static inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
static inline __half2 make_half2(__half a, __half b) { return __half2{a, b}; }
static inline float2 __half22float2(__half2 h) { return float2{(float)h.x, (float)h.y}; }
static inline __half2 __float22half2_rn(float2 f) { return __half2{__half(f.x), __half(f.y)}; }
static inline float __low2float(__half2 h) { return (float)h.x; }
static inline float __high2float(__half2 h) { return (float)h.y; }
static inline __half __low2half(__half2 h) { return h.x; }
static inline __half __high2half(__half2 h) { return h.y; }
static inline __half2 __hadd2(__half2 a, __half2 b) { return __half2{a.x + b.x, a.y + b.y}; }
static inline __half2 __hsub2(__half2 a, __half2 b) { return __half2{a.x - b.x, a.y - b.y}; }
static inline __half2 __hmul2(__half2 a, __half2 b) { return __half2{a.x * b.x, a.y * b.y}; }
static inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
    return __half2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)};
}
static inline __half hexp(__half a) { return __half(__builtin_expf((float)a)); }
static inline __half hsqrt(__half a) { return __half(__builtin_sqrtf((float)a)); }
#else
typedef struct __half {
    unsigned short __x;
} __half;
typedef struct __half2 {
    __half x, y;
} __half2;
#endif

#endif

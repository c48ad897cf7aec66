/*
 * vector_types.h — tolk CPU emulator (tests/cuemu): CUDA's built-in vector
 * types and dim3, with the alignments of the real ones. C and C++.
 */
#ifndef CUEMU_VECTOR_TYPES_H
#define CUEMU_VECTOR_TYPES_H

#define CUEMU_VEC2(name, T, al) typedef struct __attribute__((aligned(al))) name { T x, y; } name;
#define CUEMU_VEC3(name, T) typedef struct name { T x, y, z; } name;
#define CUEMU_VEC4(name, T, al) typedef struct __attribute__((aligned(al))) name { T x, y, z, w; } name;

CUEMU_VEC2(char2, signed char, 2)
CUEMU_VEC2(uchar2, unsigned char, 2)
CUEMU_VEC4(char4, signed char, 4)
CUEMU_VEC4(uchar4, unsigned char, 4)
CUEMU_VEC2(short2, short, 4)
CUEMU_VEC2(ushort2, unsigned short, 4)
CUEMU_VEC4(short4, short, 8)
CUEMU_VEC4(ushort4, unsigned short, 8)
CUEMU_VEC2(int2, int, 8)
CUEMU_VEC3(int3, int)
CUEMU_VEC4(int4, int, 16)
CUEMU_VEC2(uint2, unsigned int, 8)
CUEMU_VEC4(uint4, unsigned int, 16)
CUEMU_VEC2(float2, float, 8)
CUEMU_VEC3(float3, float)
CUEMU_VEC4(float4, float, 16)
CUEMU_VEC2(double2, double, 16)
CUEMU_VEC2(longlong2, long long, 16)
CUEMU_VEC2(ulonglong2, unsigned long long, 16)

typedef struct uint3 {
    unsigned int x, y, z;
} uint3;

#ifdef __cplusplus
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
#else
typedef struct dim3 {
    unsigned int x, y, z;
} dim3;
#endif

#undef CUEMU_VEC2
#undef CUEMU_VEC3
#undef CUEMU_VEC4

#endif

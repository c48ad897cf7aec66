/*
 * blas_core.c — whether OpenBLAS runs the kernels this CPU can run.
 *
 * A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernel set once, in its
 * load-time constructor, from the CPU models it knows; a CPU newer than the
 * build falls back to a generic set. Debian 12's OpenBLAS 0.3.21 on an
 * Intel family 6 model 207 (Emerald Rapids, AVX-512 + AMX) reports
 * "Prescott" (SSE3): cblas_sgemm runs at a third of the speed it reaches
 * with OPENBLAS_CORETYPE=SkylakeX, and base transcribes 8 LibriSpeech
 * clips in 12.8 s instead of 3.9 s (bench/results/2026-12-06-blas-core).
 * The choice cannot be changed once the library is loaded, so the advice
 * is for the process's environment: the tolk command re-executes itself
 * with it (cli/main.c); library users set it before starting.
 *
 * Reference: OpenBLAS driver/others/dynamic.c (its core names and the
 * instruction sets each kernel set needs: SkylakeX AVX-512 F/CD/BW/DQ/VL,
 * Haswell AVX2 + FMA, Sandybridge AVX).
 */
#include "tolk.h"

#include <stdlib.h>
#include <string.h>

char *openblas_get_corename(void);

/* Rank of an OpenBLAS x86-64 core name among the sets tolk can advise
 * (0: a pre-AVX generic set; -1: a name this file does not rank, e.g. AMD
 * Zen, which is then left alone). */
static int core_rank(const char *name) {
    static const char *const pre_avx[] = {"Prescott",  "Core2",  "Penryn", "Dunnington",
                                          "Nehalem",   "Atom",   "Katmai", "Coppermine",
                                          "Northwood", "Banias", NULL};
    if (!name) return -1;
    for (int i = 0; pre_avx[i]; i++)
        if (!strcmp(name, pre_avx[i])) return 0;
    if (!strcmp(name, "Sandybridge")) return 1;
    if (!strcmp(name, "Haswell")) return 2;
    if (!strcmp(name, "SkylakeX") || !strcmp(name, "Cooperlake") || !strcmp(name, "SapphireRapids"))
        return 3;
    return -1;
}

/* The best OpenBLAS core this CPU (and its OS) can run, with its rank. */
static const char *cpu_core(int *rank) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) {
        *rank = 3;
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *rank = 2;
        return "Haswell";
    }
    if (__builtin_cpu_supports("avx")) {
        *rank = 1;
        return "Sandybridge";
    }
#endif
    *rank = -1;
    return NULL;
}

const char *tolk_blas_coretype_advice(void) {
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set && *set) return NULL; /* the user chose */
    int want = -1;
    const char *core = cpu_core(&want);
    int have = core_rank(openblas_get_corename());
    if (!core || have < 0 || want <= have) return NULL;
    return core;
}

const char *tolk_blas_core(void) {
    const char *n = openblas_get_corename();
    return n ? n : "";
}

/*
 * test_cuda_attention.c — the attention launchers of kernels/attention.h
 * beyond tolk_cu_attention (which test_cuda_kernels.c covers): the
 * tensor-core flash path (tc = F16 / BF16), the split-KV path (a
 * workspace), and the device-descriptor variant replayed with new
 * descriptors (also through a real CUDA graph), against a plain
 * double-precision reference loop on random inputs rounded as the kernel
 * sees them (storage type, then tc's half type on the tensor-core path).
 *
 * Layout of every case: one q buffer [q_rows, ldq], one K/V buffer
 * [kv_rows, ldkv] (k at column 0, v at column W = n_head * d_head) and one
 * out buffer [q_rows, ldo], with ld > W and a gap row before every
 * sequence. The whole out buffer starts as a 0xFF sentinel (NaN in every
 * float type) between guard zones: every element a sequence owns is
 * compared with the reference, every other element (gap rows, gap
 * columns, rows of n_q = 0 sequences, rows past a descriptor's n_q) must
 * still hold the sentinel, and the guard zones must survive.
 *
 * Error bounds (|got - ref| <= atol + rtol |ref|):
 *   float32 arithmetic (tc = F32, and every few-query row: row / split
 *     kernels):  f32 storage 2e-5 / 1e-4; f16 1e-3 / 1e-3; bf16 1e-3 / 8e-3
 *     (test_cuda_kernels.c's bounds)
 *   tensor cores, on inputs rounded to the half type (P is rounded too):
 *     tc F16 2e-3 / 2e-3, tc BF16 1e-2 / 1e-2, plus the storage type's
 *     output rounding (1e-3 rel f16, 8e-3 rel bf16)
 * The split path is also checked to have written its workspace (so it ran)
 * and to agree with the row kernel within the float32 bound.
 *
 * Without a CUDA device (or in a CPU-only build) every test skips.
 *
 * ctest-labels: gpu
 */
#include "backend.h"
#include "internal.h"
#include "testutil.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "../kernels/attention.h"
#include "../kernels/ptx_probe.h"

#include <cuda_runtime_api.h>

#include "support/cuda_guard.h"

/* ------------------------------------------------------------------------ */
/* Device buffers with guard zones (as in test_cuda_kernels.c)              */
/* ------------------------------------------------------------------------ */

/* dpool, dalloc, dpool_finish, dt_size, NEED_DEVICE: tests/support/cuda_guard.h */
static const char *dt_name(int dt) {
    return dt == TOLK_CU_F32 ? "f32" : dt == TOLK_CU_F16 ? "f16" : "bf16";
}

static float q_dt(float x, int dt) {
    if (dt == TOLK_CU_F16) return tolk_f16_to_f32(tolk_f32_to_f16(x));
    if (dt == TOLK_CU_BF16) return tolk_bf16_to_f32(tolk_f32_to_bf16(x));
    return x;
}

static void to_dev_into(void *d, const float *x, size_t n, int dt) {
    void *h = malloc(n * dt_size(dt));
    CU_ASSERT_FATAL(h != NULL);
    for (size_t i = 0; i < n; i++) {
        if (dt == TOLK_CU_F32)
            ((float *)h)[i] = x[i];
        else if (dt == TOLK_CU_F16)
            ((uint16_t *)h)[i] = tolk_f32_to_f16(x[i]);
        else
            ((uint16_t *)h)[i] = tolk_f32_to_bf16(x[i]);
    }
    CU_ASSERT_FATAL(cudaMemcpy(d, h, n * dt_size(dt), cudaMemcpyHostToDevice) == cudaSuccess);
    free(h);
}

/* Device [n] of type dt -> host floats, and whether each was the sentinel. */
static void from_dev(float *x, unsigned char *sent, const void *d, size_t n, int dt) {
    CU_ASSERT_FATAL(cudaDeviceSynchronize() == cudaSuccess);
    void *h = malloc(n * dt_size(dt));
    CU_ASSERT_FATAL(h != NULL);
    CU_ASSERT_FATAL(cudaMemcpy(h, d, n * dt_size(dt), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (size_t i = 0; i < n; i++) {
        if (dt == TOLK_CU_F32) {
            uint32_t u;
            memcpy(&u, (char *)h + 4 * i, 4);
            memcpy(&x[i], &u, 4);
            sent[i] = u == 0xFFFFFFFFu;
        } else {
            const uint16_t u = ((uint16_t *)h)[i];
            x[i] = dt == TOLK_CU_F16 ? tolk_f16_to_f32(u) : tolk_bf16_to_f32(u);
            sent[i] = u == 0xFFFFu;
        }
    }
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct att_spec {
    int n_q, n_kv, causal, q_pos0;
} att_spec;

/* A set of sequences in one q / kv / out layout. cap_* are the rows
 * reserved per sequence (the first spec's lengths; later specs for the
 * descriptor variant stay within them). */
typedef struct att_set {
    int H, D, dt, n;
    size_t W, ldq, ldkv, ldo, q_rows, kv_rows;
    int *q_row, *kv_row, *cap_q, *cap_kv;
    float *hq, *hkv;       /* host copies, rounded to dt */
    void *dq, *dkv, *dout; /* device */
} att_set;

/* Row strides of the next set_make: 0 = odd (W + 7, 2 W + 3, W + 5: rows
 * of every type misaligned, the kernels' scalar paths), 1 = multiples of 8
 * (every row 16-byte aligned: cp.async and vector loads). */
static int g_aligned;
/* K/V rows of the next set_make: NULL = every sequence its own; else
 * sequence s reads the K/V rows of sequence g_share[s] <= s (the beams of
 * one window; their n_kv capacities must be equal). */
static const int *g_share;

static void set_make(att_set *a, dpool *p, int H, int D, int dt, const att_spec *sp, int n,
                     uint64_t seed) {
    memset(a, 0, sizeof *a);
    a->H = H, a->D = D, a->dt = dt, a->n = n;
    a->W = (size_t)H * D;
    a->ldq = a->W + (g_aligned ? 8 : 7);
    a->ldkv = 2 * a->W + (g_aligned ? 8 : 3);
    a->ldo = a->W + (g_aligned ? 8 : 5);
    a->q_row = calloc((size_t)n + 1, sizeof(int));
    a->kv_row = calloc((size_t)n + 1, sizeof(int));
    a->cap_q = calloc((size_t)n + 1, sizeof(int));
    a->cap_kv = calloc((size_t)n + 1, sizeof(int));
    CU_ASSERT_FATAL(a->q_row && a->kv_row && a->cap_q && a->cap_kv);
    size_t qr = 0, kr = 0;
    for (int s = 0; s < n; s++) {
        qr += 1; /* a gap row before every sequence */
        a->q_row[s] = (int)qr;
        a->cap_q[s] = sp[s].n_q;
        a->cap_kv[s] = sp[s].n_kv;
        qr += (size_t)sp[s].n_q;
        if (g_share && g_share[s] != s) {
            CU_ASSERT_FATAL(g_share[s] < s && sp[g_share[s]].n_kv == sp[s].n_kv);
            a->kv_row[s] = a->kv_row[g_share[s]];
            continue;
        }
        kr += 1;
        a->kv_row[s] = (int)kr;
        kr += (size_t)sp[s].n_kv;
    }
    a->q_rows = qr + 1;
    a->kv_rows = kr + 1;
    tu_seed(seed);
    const size_t nq = a->q_rows * a->ldq, nkv = a->kv_rows * a->ldkv;
    a->hq = malloc(nq * sizeof(float));
    a->hkv = malloc(nkv * sizeof(float));
    CU_ASSERT_FATAL(a->hq && a->hkv);
    tu_fill_uniform(a->hq, nq, -2, 2);
    tu_fill_uniform(a->hkv, nkv, -2, 2);
    for (size_t i = 0; i < nq; i++)
        a->hq[i] = q_dt(a->hq[i], dt);
    for (size_t i = 0; i < nkv; i++)
        a->hkv[i] = q_dt(a->hkv[i], dt);
    a->dq = dalloc(p, nq * dt_size(dt));
    a->dkv = dalloc(p, nkv * dt_size(dt));
    a->dout = dalloc(p, a->q_rows * a->ldo * dt_size(dt));
    to_dev_into(a->dq, a->hq, nq, dt);
    to_dev_into(a->dkv, a->hkv, nkv, dt);
}

static void set_free(att_set *a) {
    free(a->q_row), free(a->kv_row), free(a->cap_q), free(a->cap_kv);
    free(a->hq), free(a->hkv);
}

static void out_reset(const att_set *a) {
    CU_ASSERT_FATAL(cudaMemset(a->dout, SENTINEL, a->q_rows * a->ldo * dt_size(a->dt)) ==
                    cudaSuccess);
}

/* Host-packed sequences of the set with lengths sp. */
static void set_seqs(const att_set *a, const att_spec *sp, tolk_cu_attn_seq *seqs) {
    const size_t es = dt_size(a->dt);
    for (int s = 0; s < a->n; s++) {
        char *q = (char *)a->dq + (size_t)a->q_row[s] * a->ldq * es;
        char *kv = (char *)a->dkv + (size_t)a->kv_row[s] * a->ldkv * es;
        seqs[s].q = q;
        seqs[s].k = kv;
        seqs[s].v = kv + a->W * es;
        seqs[s].out = (char *)a->dout + (size_t)a->q_row[s] * a->ldo * es;
        seqs[s].n_q = sp[s].n_q;
        seqs[s].n_kv = sp[s].n_kv;
        seqs[s].causal = sp[s].causal;
        seqs[s].q_pos0 = sp[s].q_pos0;
    }
}

static void set_descs(const att_set *a, const att_spec *sp, tolk_cu_attn_desc *d) {
    for (int s = 0; s < a->n; s++) {
        CU_ASSERT_FATAL(sp[s].n_q <= a->cap_q[s] && sp[s].n_kv <= a->cap_kv[s]);
        d[s].q_row = a->q_row[s];
        d[s].kv_row = a->kv_row[s];
        d[s].n_q = sp[s].n_q;
        d[s].n_kv = sp[s].n_kv;
        d[s].causal = sp[s].causal;
        d[s].q_pos0 = sp[s].q_pos0;
    }
}

/* Reference of sequence s (lengths sp) into ref [n_q, W]; inputs rounded
 * further to rt (the tensor-core half type, or F32: as stored). */
static void ref_seq(double *ref, const att_set *a, int s, const att_spec *sp, int rt,
                    double scale) {
    const size_t W = a->W;
    const int D = a->D;
    double *sc = malloc((size_t)(sp->n_kv > 0 ? sp->n_kv : 1) * sizeof *sc);
    double *qv = malloc((size_t)D * sizeof *qv);
    CU_ASSERT_FATAL(sc && qv);
    for (int i = 0; i < sp->n_q; i++)
        for (int h = 0; h < a->H; h++) {
            const float *q = a->hq + ((size_t)a->q_row[s] + (size_t)i) * a->ldq + (size_t)h * D;
            for (int c = 0; c < D; c++)
                qv[c] = q_dt(q[c], rt);
            const int nk = sp->causal ? sp->q_pos0 + i + 1 : sp->n_kv;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < nk; j++) {
                const float *k =
                    a->hkv + ((size_t)a->kv_row[s] + (size_t)j) * a->ldkv + (size_t)h * D;
                double d = 0;
                for (int c = 0; c < D; c++)
                    d += qv[c] * q_dt(k[c], rt);
                sc[j] = d * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j < nk; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            double *o = ref + (size_t)i * W + (size_t)h * D;
            for (int c = 0; c < D; c++)
                o[c] = 0;
            for (int j = 0; j < nk; j++) {
                const float *v =
                    a->hkv + ((size_t)a->kv_row[s] + (size_t)j) * a->ldkv + W + (size_t)h * D;
                for (int c = 0; c < D; c++)
                    o[c] += sc[j] * q_dt(v[c], rt);
            }
            for (int c = 0; c < D; c++)
                o[c] /= sum;
        }
    free(sc), free(qv);
}

/* Bounds of one sequence: tensor cores (tc F16/BF16 on the flash path) or
 * float32 arithmetic. */
static void bounds(int dt, int tc_used, double *atol, double *rtol) {
    const double out_r = dt == TOLK_CU_F32 ? 0.0 : dt == TOLK_CU_F16 ? 1e-3 : 8e-3;
    if (tc_used == TOLK_CU_F16) {
        *atol = 2e-3, *rtol = 2e-3 + out_r;
    } else if (tc_used == TOLK_CU_BF16) {
        *atol = 1e-2, *rtol = 1e-2 + out_r;
    } else if (dt == TOLK_CU_F32) {
        *atol = 2e-5, *rtol = 1e-4;
    } else {
        *atol = 1e-3, *rtol = dt == TOLK_CU_F16 ? 1e-3 : 8e-3;
    }
}

/* Check the whole out buffer after a call with lengths sp: rows a sequence
 * owns against the reference, everything else still the sentinel.
 * flash: 1 = every sequence took the flash path (descriptor variant with
 * max_n_q >= 64), 0 = none did, -1 = host rule (n_q >= 64). tc: the call's
 * tc. got (optional): receives the output [q_rows, ldo] as floats.
 * Returns 1 when all is well. */
static int check_out(const char *what, const att_set *a, const att_spec *sp, int flash, int tc,
                     double scale, float *got_out) {
    const size_t n = a->q_rows * a->ldo;
    float *got = malloc(n * sizeof *got);
    unsigned char *sent = malloc(n);
    unsigned char *owned = calloc(n, 1);
    CU_ASSERT_FATAL(got && sent && owned);
    from_dev(got, sent, a->dout, n, a->dt);
    int ok = 1;
    for (int s = 0; s < a->n; s++) {
        if (sp[s].n_q == 0) continue;
        const int fl = flash >= 0 ? flash : sp[s].n_q >= 64;
        const int tc_used = fl ? tc : TOLK_CU_F32;
        double atol, rtol;
        bounds(a->dt, tc_used, &atol, &rtol);
        double *ref = malloc((size_t)sp[s].n_q * a->W * sizeof *ref);
        CU_ASSERT_FATAL(ref != NULL);
        ref_seq(ref, a, s, &sp[s], tc_used, scale);
        size_t bad = 0, wi = 0, wc = 0;
        double worst = -1;
        for (int i = 0; i < sp[s].n_q; i++)
            for (size_t c = 0; c < a->W; c++) {
                const size_t o = ((size_t)a->q_row[s] + (size_t)i) * a->ldo + c;
                owned[o] = 1;
                const double g = got[o], e = ref[(size_t)i * a->W + c];
                const double err = fabs(g - e), lim = atol + rtol * fabs(e);
                if (!(err <= lim)) bad++;
                const double qq = isnan(err) ? INFINITY : err / lim;
                if (qq > worst) worst = qq, wi = (size_t)i, wc = c;
            }
        if (bad) {
            printf("\n    %s: seq %d (n_q %d n_kv %d causal %d pos0 %d, %s): %zu of %zu out of "
                   "bounds, worst [%zu,%zu] got %.9g want %.9g (%.2f x bound)\n",
                   what, s, sp[s].n_q, sp[s].n_kv, sp[s].causal, sp[s].q_pos0,
                   tc_used == TOLK_CU_F32 ? "f32 math" : dt_name(tc_used), bad,
                   (size_t)sp[s].n_q * a->W, wi, wc, got[((size_t)a->q_row[s] + wi) * a->ldo + wc],
                   ref[wi * a->W + wc], worst);
            ok = 0;
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(ref);
    }
    size_t stray = 0;
    for (size_t i = 0; i < n; i++)
        stray += !owned[i] && !sent[i];
    if (stray) {
        printf("\n    %s: %zu elements outside the outputs written\n", what, stray);
        ok = 0;
    }
    CU_ASSERT_EQUAL(stray, 0);
    if (got_out) memcpy(got_out, got, n * sizeof *got);
    free(got), free(sent), free(owned);
    return ok;
}

static double scale_of(int D) {
    return 1.0 / sqrt((double)D);
}

/* ------------------------------------------------------------------------ */
/* tc = F32 through _ex is tolk_cu_attention, bit for bit                   */
/* ------------------------------------------------------------------------ */

static void test_f32_parity(void) {
    NEED_DEVICE();
    static const att_spec sp[] = {
        {200, 200, 0, 0}, {65, 100, 1, 35}, {0, 9, 0, 0},    {1, 7, 0, 0},
        {3, 449, 1, 446}, {1, 1500, 0, 0},  {63, 100, 0, 0},
    };
    const int n = (int)(sizeof sp / sizeof sp[0]);
    const int D = 64, H = 3;
    for (int dt = 0; dt < 3; dt++) {
        dpool p = {0};
        att_set a;
        set_make(&a, &p, H, D, dt, sp, n, 11 + (uint64_t)dt);
        tolk_cu_attn_seq seqs[16];
        set_seqs(&a, sp, seqs);
        const size_t nout = a.q_rows * a.ldo;
        float *y0 = malloc(nout * sizeof *y0), *y1 = malloc(nout * sizeof *y1);
        CU_ASSERT_FATAL(y0 && y1);
        const float sc = (float)scale_of(D);
        CU_ASSERT_EQUAL(tolk_cu_attention(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                          (long long)a.ldo, sc, dt, NULL),
                        0);
        char what[96];
        snprintf(what, sizeof what, "attention %s", dt_name(dt));
        check_out(what, &a, sp, -1, TOLK_CU_F32, scale_of(D), y0);
        out_reset(&a);
        CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                             (long long)a.ldo, sc, dt, TOLK_CU_F32, NULL, 0, NULL),
                        0);
        snprintf(what, sizeof what, "attention_ex tc=f32 %s", dt_name(dt));
        check_out(what, &a, sp, -1, TOLK_CU_F32, scale_of(D), y1);
        CU_ASSERT_EQUAL(memcmp(y0, y1, nout * sizeof *y0), 0);
        free(y0), free(y1);
        dpool_finish(&p);
        set_free(&a);
    }
}

/* ------------------------------------------------------------------------ */
/* Tensor-core flash path                                                   */
/* ------------------------------------------------------------------------ */

static void tc_run(int tc, int dt, int H, int D, const att_spec *sp, int n, uint64_t seed) {
    dpool p = {0};
    att_set a;
    set_make(&a, &p, H, D, dt, sp, n, seed);
    tolk_cu_attn_seq *seqs = calloc((size_t)n, sizeof *seqs);
    CU_ASSERT_FATAL(seqs != NULL);
    set_seqs(&a, sp, seqs);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                         (long long)a.ldo, (float)scale_of(D), dt, tc, NULL, 0,
                                         NULL),
                    0);
    char what[96];
    snprintf(what, sizeof what, "tc=%s %s H=%d D=%d", dt_name(tc), dt_name(dt), H, D);
    check_out(what, &a, sp, -1, tc, scale_of(D), NULL);
    dpool_finish(&p);
    set_free(&a);
    free(seqs);
}

static void test_tc_flash(void) {
    NEED_DEVICE();
    /* n_q, n_kv, causal, q_pos0: one partial tile, tiles not multiples of
     * 64 (keys of 64 / 32), causal prompts over a cache, few-query rows
     * (f32 math) and an empty sequence in the same call */
    static const att_spec mixed[] = {
        {65, 65, 0, 0}, {200, 449, 0, 0}, {100, 100, 1, 0}, {77, 100, 1, 23}, {64, 64, 1, 0},
        {130, 7, 0, 0}, {0, 5, 0, 0},     {1, 7, 0, 0},     {3, 100, 1, 97},  {64, 1, 0, 0},
    };
    const int nm = (int)(sizeof mixed / sizeof mixed[0]);
    static const att_spec enc[] = {{1500, 1500, 0, 0}};
    const int tcs[] = {TOLK_CU_F16, TOLK_CU_BF16};
    for (int t = 0; t < 2; t++) {
        const int tc = tcs[t];
        tc_run(tc, TOLK_CU_F32, 3, 64, mixed, nm, 31 + (uint64_t)t);
        tc_run(tc, TOLK_CU_F32, 2, 32, mixed, nm, 33 + (uint64_t)t);
        tc_run(tc, TOLK_CU_F32, 2, 128, mixed, nm, 35 + (uint64_t)t);
        tc_run(tc, tc, 2, 64, mixed, nm, 37 + (uint64_t)t);       /* half storage, same half MMA */
        tc_run(tc, TOLK_CU_F32, 2, 64, enc, 1, 39 + (uint64_t)t); /* an encoder window */
    }
    tc_run(TOLK_CU_F16, TOLK_CU_BF16, 2, 64, mixed, nm, 41); /* bf16 storage, f16 MMA */
    tc_run(TOLK_CU_BF16, TOLK_CU_F16, 2, 64, mixed, nm, 42); /* f16 storage, bf16 MMA */
}

/* The same kernels with 16-byte aligned rows: half storage of the MMA type
 * takes the cp.async double-buffered path, other storage 16-byte vector
 * loads through registers. */
static void test_tc_aligned(void) {
    NEED_DEVICE();
    static const att_spec mixed[] = {
        {65, 65, 0, 0}, {200, 449, 0, 0}, {100, 100, 1, 0}, {77, 100, 1, 23},  {129, 129, 1, 0},
        {130, 7, 0, 0}, {0, 5, 0, 0},     {1, 7, 0, 0},     {256, 300, 1, 44}, {64, 1, 0, 0},
    };
    const int nm = (int)(sizeof mixed / sizeof mixed[0]);
    static const att_spec enc[] = {{1500, 1500, 0, 0}};
    g_aligned = 1;
    const int tcs[] = {TOLK_CU_F16, TOLK_CU_BF16};
    for (int t = 0; t < 2; t++) {
        const int tc = tcs[t];
        tc_run(tc, tc, 2, 64, mixed, nm, 131 + (uint64_t)t);          /* cp.async */
        tc_run(tc, tc, 2, 32, mixed, nm, 133 + (uint64_t)t);          /* cp.async, D = 32 */
        tc_run(tc, tc, 1, 128, mixed, nm, 135 + (uint64_t)t);         /* cp.async, D = 128 */
        tc_run(tc, TOLK_CU_F32, 2, 64, mixed, nm, 137 + (uint64_t)t); /* float4 loads */
        tc_run(tc, tc, 2, 64, enc, 1, 139 + (uint64_t)t);             /* a window, cp.async */
    }
    tc_run(TOLK_CU_F16, TOLK_CU_F32, 1, 64, enc, 1, 141);     /* a window from float32 */
    tc_run(TOLK_CU_F16, TOLK_CU_BF16, 2, 64, mixed, nm, 142); /* bf16 storage, f16 MMA */
    g_aligned = 0;
}

/* ------------------------------------------------------------------------ */
/* The CPU twin: backend_cpu.c's attention on the same (half-rounded) data  */
/* ------------------------------------------------------------------------ */

/* A context and the CPU backend (the twin) on it; fatal on failure. */
static tolk_backend *cpu_twin(tolk_ctx **ctx) {
    tolk_backend *cpu = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, ctx), TOLK_OK);
    tolk_backend_params bp = {.keep_f16 = 1};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(*ctx, &bp, &cpu), TOLK_OK);
    return cpu;
}

/* The next value of a 64-bit LCG state r, as a float in [-2, 2). */
static float lcg_pm2(uint64_t *r) {
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*r >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
}

/* Elements of rows x W (row stride ldo) where got and the twin's ref differ
 * by more than float32 rounding (out16: one float16 ulp); the largest
 * difference in *worst. */
static size_t twin_mismatches(const float *got, const float *ref, size_t rows, size_t W, size_t ldo,
                              int out16, double *worst) {
    const double rel = out16 ? 1.5e-3 : 1e-4, abs_ = out16 ? 1e-4 : 2e-5;
    size_t bad = 0;
    *worst = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < W; c++) {
            const double e = fabs((double)got[i * ldo + c] - ref[i * ldo + c]);
            if (!(e <= abs_ + rel * fabs((double)ref[i * ldo + c]))) bad++;
            if (!(e <= *worst)) *worst = e;
        }
    return bad;
}

static void test_tc_cpu_twin(void) {
    NEED_DEVICE();
    tolk_ctx *ctx = NULL;
    tolk_backend *cpu = cpu_twin(&ctx);
    /* an encoder window of base (8 heads) in two calls' worth of shapes: a
     * 1500-frame window and a causal prompt over a cache */
    static const att_spec sp[] = {{1500, 1500, 0, 0}, {150, 200, 1, 50}};
    const int n = 2, H = 2, D = 64;
    for (int al = 0; al < 2; al++) {
        g_aligned = al;
        dpool p = {0};
        att_set a;
        set_make(&a, &p, H, D, TOLK_CU_F16, sp, n, 151 + (uint64_t)al);
        tolk_cu_attn_seq seqs[2];
        set_seqs(&a, sp, seqs);
        CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                             (long long)a.ldo, (float)scale_of(D), TOLK_CU_F16,
                                             TOLK_CU_F16, NULL, 0, NULL),
                        0);
        const size_t nout = a.q_rows * a.ldo;
        float *got = malloc(nout * sizeof *got), *cpu_out = malloc(nout * sizeof *cpu_out);
        unsigned char *sent = malloc(nout);
        CU_ASSERT_FATAL(got && cpu_out && sent);
        from_dev(got, sent, a.dout, nout, a.dt);
        tolk_attn_seq cs[2];
        for (int s = 0; s < n; s++) {
            cs[s] = (tolk_attn_seq){
                .q = a.hq + (size_t)a.q_row[s] * a.ldq,
                .k = a.hkv + (size_t)a.kv_row[s] * a.ldkv,
                .v = a.hkv + (size_t)a.kv_row[s] * a.ldkv + a.W,
                .out = cpu_out + (size_t)a.q_row[s] * a.ldo,
                .n_q = sp[s].n_q,
                .n_kv = sp[s].n_kv,
                .causal = sp[s].causal,
                .q_pos0 = sp[s].q_pos0,
            };
        }
        CU_ASSERT_EQUAL(
            cpu->attention(ctx, cpu, cs, n, H, D, a.ldq, a.ldkv, a.ldo, (float)scale_of(D), 0),
            TOLK_OK);
        size_t bad = 0;
        double worst = 0;
        for (int s = 0; s < n; s++)
            for (int i = 0; i < sp[s].n_q; i++)
                for (size_t c = 0; c < a.W; c++) {
                    const size_t o = ((size_t)a.q_row[s] + (size_t)i) * a.ldo + c;
                    const double e = fabs((double)got[o] - cpu_out[o]);
                    if (!(e <= 3e-3 + 3e-3 * fabs((double)cpu_out[o]))) bad++;
                    if (!(e <= worst)) worst = e;
                }
        if (bad)
            printf("\n    CPU twin (aligned %d): %zu out of bounds, worst %.3g\n", al, bad, worst);
        CU_ASSERT_EQUAL(bad, 0);
        free(got), free(cpu_out), free(sent);
        dpool_finish(&p);
        set_free(&a);
    }
    g_aligned = 0;
    cpu->destroy(cpu);
    tolk_ctx_free(ctx);
}

/* tolk_cu_attention_desc_mixed (float32 q; K/V float32 or float16, out
 * float32 or float16: the decoder step of the half modes) against the CPU
 * backend's attention_desc with the same storage flags on the same
 * descriptors: three single rows sharing one window (grouped split
 * launch), a causal pair over a cache, a 40-row prompt (the row kernel: a
 * half operand never takes the flash path), a row of another window; with
 * a workspace (split-KV) and without (row kernel), for every storage pair.
 * Both run float32 arithmetic over the same keys and values; a float16
 * output is the float32 result rounded once, so the two may differ by one
 * unit in its last place. */
static void test_mixed_cpu_twin(void) {
    NEED_DEVICE();
    tolk_ctx *ctx = NULL;
    tolk_backend *cpu = cpu_twin(&ctx);
    const int H = 4, D = 64, nkv = 700, n = 6;
    const size_t W = (size_t)H * D, ldq = W + 4, ldo = W + 2, ld = 2 * W + 8;
    const int nq[6] = {1, 1, 1, 2, 40, 1};
    tolk_attn_desc desc[6];
    int rows = 0;
    for (int i = 0; i < n; i++) {
        desc[i] = (tolk_attn_desc){rows,   i == 5 ? nkv : 0, nq[i], i == 3 ? 300 : 600,
                                   i == 3, i == 3 ? 298 : 0};
        rows += nq[i];
    }
    const size_t kv_rows = 2 * (size_t)nkv, nq_all = (size_t)rows;
    float *q = malloc(nq_all * ldq * sizeof(float)), *kvf = malloc(kv_rows * ld * sizeof(float));
    uint16_t *kvh = malloc(kv_rows * ld * sizeof(uint16_t));
    float *cpu_out = malloc(nq_all * ldo * sizeof(float)),
          *got = malloc(nq_all * ldo * sizeof(float));
    uint16_t *cpu_h = malloc(nq_all * ldo * sizeof(uint16_t)),
             *got_h = malloc(nq_all * ldo * sizeof(uint16_t));
    CU_ASSERT_FATAL(q && kvf && kvh && cpu_out && got && cpu_h && got_h);
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < nq_all * ldq; i++)
        q[i] = lcg_pm2(&r);
    for (size_t i = 0; i < kv_rows * ld; i++) { /* float32 K/V hold the rounded values too */
        kvh[i] = tolk_f32_to_f16(lcg_pm2(&r));
        kvf[i] = tolk_f16_to_f32(kvh[i]);
    }
    const float scale = (float)scale_of(D);
    void *dq = NULL, *dkvf = NULL, *dkvh = NULL, *dout = NULL, *ddesc = NULL, *ws = NULL;
    int *dsync = NULL; /* n * max_n_q * H counters */
    const size_t wsb = tolk_cu_attention_ws_bytes(n * 40, H, D, 600);
    CU_ASSERT_FATAL(cudaMalloc(&dq, nq_all * ldq * 4) == cudaSuccess &&
                    cudaMalloc(&dkvf, kv_rows * ld * 4) == cudaSuccess &&
                    cudaMalloc(&dkvh, kv_rows * ld * 2) == cudaSuccess &&
                    cudaMalloc(&dout, nq_all * ldo * 4) == cudaSuccess &&
                    cudaMalloc(&ddesc, sizeof desc) == cudaSuccess &&
                    cudaMalloc(&ws, wsb ? wsb : 4) == cudaSuccess &&
                    cudaMalloc((void **)&dsync, 6 * 40 * 4 * sizeof(int)) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemset(dsync, 0, 6 * 40 * 4 * sizeof(int)) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(dq, q, nq_all * ldq * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(dkvf, kvf, kv_rows * ld * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(dkvh, kvh, kv_rows * ld * 2, cudaMemcpyHostToDevice) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(ddesc, desc, sizeof desc, cudaMemcpyHostToDevice) == cudaSuccess);
    for (int kv16 = 0; kv16 <= 1; kv16++)
        for (int out16 = 0; out16 <= 1; out16++) {
            const int flags = (kv16 ? TOLK_ATTN_KV_F16 : 0) | (out16 ? TOLK_ATTN_OUT_F16 : 0);
            const void *hk = kv16 ? (const void *)kvh : (const void *)kvf;
            const void *hv = kv16 ? (const void *)(kvh + W) : (const void *)(kvf + W);
            memset(cpu_out, 0, nq_all * ldo * sizeof(float));
            memset(cpu_h, 0, nq_all * ldo * sizeof(uint16_t));
            CU_ASSERT_EQUAL(cpu->attention_desc(ctx, cpu, q, ldq, hk, hv, ld,
                                                out16 ? (void *)cpu_h : (void *)cpu_out, ldo, desc,
                                                n, 40, 600, H, D, scale, flags),
                            TOLK_OK);
            if (out16)
                for (size_t i = 0; i < nq_all * ldo; i++)
                    cpu_out[i] = tolk_f16_to_f32(cpu_h[i]);
            const size_t esz = kv16 ? 2 : 4;
            const char *dk = kv16 ? (const char *)dkvh : (const char *)dkvf;
            for (int use_ws = 0; use_ws <= 1; use_ws++) {
                CU_ASSERT_FATAL(cudaMemset(dout, 0, nq_all * ldo * 4) == cudaSuccess);
                CU_ASSERT_EQUAL(
                    tolk_cu_attention_desc_mixed(dq, (long long)ldq, dk, dk + W * esz,
                                                 kv16 ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ld,
                                                 dout, out16 ? TOLK_CU_F16 : TOLK_CU_F32,
                                                 (long long)ldo, ddesc, n, 40, 600, H, D, scale, 0,
                                                 use_ws ? ws : NULL, use_ws ? wsb : 0, NULL, NULL),
                    0);
                if (out16) {
                    CU_ASSERT_FATAL(cudaMemcpy(got_h, dout, nq_all * ldo * 2,
                                               cudaMemcpyDeviceToHost) == cudaSuccess);
                    for (size_t i = 0; i < nq_all * ldo; i++)
                        got[i] = tolk_f16_to_f32(got_h[i]);
                } else {
                    CU_ASSERT_FATAL(cudaMemcpy(got, dout, nq_all * ldo * 4,
                                               cudaMemcpyDeviceToHost) == cudaSuccess);
                }
                /* float32 out: float32 rounding; float16 out: one ulp (2^-10 relative) */
                double worst;
                const size_t bad = twin_mismatches(got, cpu_out, nq_all, W, ldo, out16, &worst);
                if (bad)
                    printf("\n    mixed CPU twin (kv16 %d, out16 %d, ws %d): %zu out of bounds, "
                           "worst %.3g\n",
                           kv16, out16, use_ws, bad, worst);
                CU_ASSERT_EQUAL(bad, 0);
            }
        }
    /* bfloat16 storage is not a mixed call; bad sizes are refused */
    CU_ASSERT_NOT_EQUAL(tolk_cu_attention_desc_mixed(dq, (long long)ldq, dkvh, dkvh, TOLK_CU_BF16,
                                                     (long long)ld, dout, TOLK_CU_F32,
                                                     (long long)ldo, ddesc, n, 40, 600, H, D, scale,
                                                     0, NULL, 0, NULL, NULL),
                        0);
    CU_ASSERT_NOT_EQUAL(tolk_cu_attention_desc_mixed(dq, (long long)ldq, dkvh, dkvh, TOLK_CU_F16, 8,
                                                     dout, TOLK_CU_F16, (long long)ldo, ddesc, n,
                                                     40, 600, H, D, scale, 0, NULL, 0, NULL, NULL),
                        0);
    cudaFree(dq), cudaFree(dkvf), cudaFree(dkvh), cudaFree(dout), cudaFree(ddesc), cudaFree(ws);
    cudaFree(dsync);
    free(q), free(kvf), free(kvh), free(cpu_out), free(got), free(cpu_h), free(got_h);
    cpu->destroy(cpu);
    tolk_ctx_free(ctx);
}

/* The decoder step's K/V append fused into its self-attention (append = 1
 * of tolk_cu_attention_desc_mixed; backend.h TOLK_ATTN_APPEND) against the
 * CPU backend's attention_desc with TOLK_ATTN_APPEND: one new token per
 * sequence, q rows fused [q | k | v]; causal sequences at cache positions
 * 0, 7, 130 and 447 (the last row of a 448-row cache), two padding-like
 * sequences appending the same values to the same scratch row, and a
 * non-causal row over keys of its own (no append). The appended cache rows
 * must equal the CPU's bit for bit (float32 copies, or float16 rounded to
 * nearest even), the rest of the cache untouched, the outputs within
 * float32 rounding (float16 out: one ulp); with the split workspace and
 * fused combine, and without (the row kernel). Also the refusals: more
 * than one row per sequence, q rows narrower than [q | k | v]. */
static void test_append_cpu_twin(void) {
    NEED_DEVICE();
    tolk_ctx *ctx = NULL;
    tolk_backend *cpu = cpu_twin(&ctx);
    const int H = 4, D = 64, L = 448, n = 7;
    const size_t W = (size_t)H * D, ldq = 3 * W + 4, ldo = W + 2, ld = 2 * W;
    const size_t kv_rows = 6 * (size_t)L; /* 6 sequences' caches of L rows */
    /* {q_row, kv_row, n_q, n_kv, causal, q_pos0} */
    const tolk_attn_desc desc[7] = {
        {0, 0 * L, 1, 1, 1, 0},     {1, 1 * L, 1, 8, 1, 7},   {2, 2 * L, 1, 131, 1, 130},
        {3, 3 * L, 1, L, 1, L - 1}, {4, 4 * L, 1, 300, 0, 0}, {5, 5 * L, 1, 1, 1, 0},
        {6, 5 * L, 1, 1, 1, 0}, /* rows 5 and 6: the same scratch row, the same values */
    };
    float *q = malloc((size_t)n * ldq * sizeof(float));
    float *cache = malloc(kv_rows * ld * sizeof(float)), *c_cpu = malloc(kv_rows * ld * 4);
    uint16_t *ch = malloc(kv_rows * ld * 2), *ch_cpu = malloc(kv_rows * ld * 2);
    float *cpu_out = malloc((size_t)n * ldo * 4), *got = malloc((size_t)n * ldo * 4);
    uint16_t *oh = malloc((size_t)n * ldo * 2), *goth = malloc((size_t)n * ldo * 2);
    CU_ASSERT_FATAL(q && cache && c_cpu && ch && ch_cpu && cpu_out && got && oh && goth);
    uint64_t r = 0x51ed270b27a3c3b5ull;
    for (size_t i = 0; i < (size_t)n * ldq; i++)
        q[i] = lcg_pm2(&r);
    memcpy(q + 6 * ldq + W, q + 5 * ldq + W, 2 * W * sizeof(float));
    for (size_t i = 0; i < kv_rows * ld; i++) { /* garbage in the rows to be appended too */
        ch[i] = tolk_f32_to_f16(lcg_pm2(&r));
        cache[i] = tolk_f16_to_f32(ch[i]);
    }
    const float scale = (float)scale_of(D);
    void *dq = NULL, *dc = NULL, *dout = NULL, *ddesc = NULL, *ws = NULL;
    int *dsync = NULL;
    const size_t wsb = tolk_cu_attention_ws_bytes(n, H, D, L);
    CU_ASSERT_FATAL(cudaMalloc(&dq, (size_t)n * ldq * 4) == cudaSuccess &&
                    cudaMalloc(&dc, kv_rows * ld * 4) == cudaSuccess &&
                    cudaMalloc(&dout, (size_t)n * ldo * 4) == cudaSuccess &&
                    cudaMalloc(&ddesc, sizeof desc) == cudaSuccess &&
                    cudaMalloc(&ws, wsb ? wsb : 4) == cudaSuccess &&
                    cudaMalloc((void **)&dsync, (size_t)n * H * sizeof(int)) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemset(dsync, 0, (size_t)n * H * sizeof(int)) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(dq, q, (size_t)n * ldq * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CU_ASSERT_FATAL(cudaMemcpy(ddesc, desc, sizeof desc, cudaMemcpyHostToDevice) == cudaSuccess);
    int cases = 0;
    for (int kv16 = 0; kv16 <= 1; kv16++)
        for (int out16 = 0; out16 <= 1; out16++) {
            const int flags =
                TOLK_ATTN_APPEND | (kv16 ? TOLK_ATTN_KV_F16 : 0) | (out16 ? TOLK_ATTN_OUT_F16 : 0);
            const size_t esz = kv16 ? 2 : 4;
            char *hc = kv16 ? (char *)ch_cpu : (char *)c_cpu;
            memcpy(hc, kv16 ? (const void *)ch : (const void *)cache, kv_rows * ld * esz);
            CU_ASSERT_EQUAL(cpu->attention_desc(ctx, cpu, q, ldq, hc, hc + W * esz, ld,
                                                out16 ? (void *)oh : (void *)cpu_out, ldo, desc, n,
                                                1, L, H, D, scale, flags),
                            TOLK_OK);
            if (out16)
                for (size_t i = 0; i < (size_t)n * ldo; i++)
                    cpu_out[i] = tolk_f16_to_f32(oh[i]);
            for (int use_ws = 0; use_ws <= 1; use_ws++) {
                CU_ASSERT_FATAL(cudaMemcpy(dc, kv16 ? (const void *)ch : (const void *)cache,
                                           kv_rows * ld * esz,
                                           cudaMemcpyHostToDevice) == cudaSuccess);
                CU_ASSERT_FATAL(cudaMemset(dout, 0, (size_t)n * ldo * 4) == cudaSuccess);
                CU_ASSERT_EQUAL(tolk_cu_attention_desc_mixed(
                                    (const float *)dq, (long long)ldq, dc, (char *)dc + W * esz,
                                    kv16 ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ld, dout,
                                    out16 ? TOLK_CU_F16 : TOLK_CU_F32, (long long)ldo, ddesc, n, 1,
                                    L, H, D, scale, 1, use_ws ? ws : NULL, use_ws ? wsb : 0,
                                    use_ws ? dsync : NULL, NULL),
                                0);
                /* the cache: bit for bit the CPU's (appended rows and the rest) */
                char *gc = malloc(kv_rows * ld * esz);
                CU_ASSERT_FATAL(gc != NULL);
                CU_ASSERT_FATAL(cudaMemcpy(gc, dc, kv_rows * ld * esz, cudaMemcpyDeviceToHost) ==
                                cudaSuccess);
                CU_ASSERT_EQUAL(memcmp(gc, hc, kv_rows * ld * esz), 0);
                free(gc);
                if (out16) {
                    CU_ASSERT_FATAL(cudaMemcpy(goth, dout, (size_t)n * ldo * 2,
                                               cudaMemcpyDeviceToHost) == cudaSuccess);
                    for (size_t i = 0; i < (size_t)n * ldo; i++)
                        got[i] = tolk_f16_to_f32(goth[i]);
                } else {
                    CU_ASSERT_FATAL(cudaMemcpy(got, dout, (size_t)n * ldo * 4,
                                               cudaMemcpyDeviceToHost) == cudaSuccess);
                }
                double worst;
                const size_t bad = twin_mismatches(got, cpu_out, (size_t)n, W, ldo, out16, &worst);
                if (bad)
                    printf("\n    append CPU twin (kv16 %d, out16 %d, ws %d): %zu out of bounds, "
                           "worst %.3g\n",
                           kv16, out16, use_ws, bad, worst);
                CU_ASSERT_EQUAL(bad, 0);
                int left = 0; /* the fused combine's counters are zero again */
                int *sy = malloc((size_t)n * H * sizeof(int));
                CU_ASSERT_FATAL(sy != NULL);
                CU_ASSERT_FATAL(cudaMemcpy(sy, dsync, (size_t)n * H * sizeof(int),
                                           cudaMemcpyDeviceToHost) == cudaSuccess);
                for (int i = 0; i < n * H; i++)
                    left |= sy[i];
                CU_ASSERT_EQUAL(left, 0);
                free(sy);
                cases++;
            }
        }
    CU_ASSERT_EQUAL(cases, 8);
    /* refused: two rows per sequence, q rows without room for k and v */
    CU_ASSERT_EQUAL(tolk_cu_attention_desc_mixed((const float *)dq, (long long)ldq, dc,
                                                 (char *)dc + W * 4, TOLK_CU_F32, (long long)ld,
                                                 dout, TOLK_CU_F32, (long long)ldo, ddesc, n, 2, L,
                                                 H, D, scale, 1, NULL, 0, NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc_mixed((const float *)dq, (long long)(2 * W), dc,
                                                 (char *)dc + W * 4, TOLK_CU_F32, (long long)ld,
                                                 dout, TOLK_CU_F32, (long long)ldo, ddesc, n, 1, L,
                                                 H, D, scale, 1, NULL, 0, NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(cpu->attention_desc(ctx, cpu, q, ldq, c_cpu, c_cpu + W, ld, cpu_out, ldo, desc,
                                        n, 2, L, H, D, scale, TOLK_ATTN_APPEND),
                    TOLK_ERR_INVALID_ARG);
    cudaFree(dq), cudaFree(dc), cudaFree(dout), cudaFree(ddesc), cudaFree(ws), cudaFree(dsync);
    free(q), free(cache), free(c_cpu), free(ch), free(ch_cpu), free(cpu_out), free(got), free(oh);
    free(goth);
    cpu->destroy(cpu);
    tolk_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* The PTX instructions' per-lane layouts (kernels/ptx_probe.cu)            */
/* ------------------------------------------------------------------------ */

static float probe_a(int i, int k) {
    return (float)((3 * i + k) % 7 - 3);
}
static float probe_b(int k, int j) {
    return (float)((5 * k + j) % 5 - 2);
}

static void test_ptx_fragments(void) {
    NEED_DEVICE();
    unsigned in[128];
    for (unsigned i = 0; i < 128; i++)
        in[i] = 0x9E3779B9u * (i + 1);
    for (int bf = 0; bf < 2; bf++) {
        dpool p = {0};
        unsigned *din = dalloc(&p, sizeof in);
        unsigned *dout = dalloc(&p, 32 * TOLK_CU_PTX_PROBE_WORDS * sizeof(unsigned));
        CU_ASSERT_FATAL(cudaMemcpy(din, in, sizeof in, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_EQUAL_FATAL(tolk_cu_ptx_probe(dout, din, bf, NULL), 0);
        CU_ASSERT_FATAL(cudaDeviceSynchronize() == cudaSuccess);
        unsigned out[32 * TOLK_CU_PTX_PROBE_WORDS];
        CU_ASSERT_FATAL(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost) == cudaSuccess);
        size_t bad[4] = {0, 0, 0, 0};
        for (int l = 0; l < 32; l++) {
            const unsigned *o = out + l * TOLK_CU_PTX_PROBE_WORDS;
            const int g = l / 4, t2 = 2 * (l % 4);
            for (int m = 0; m < 4; m++) {
                /* M[r][c] = r * 8 + c; matrix m is rows 8m .. 8m + 7 */
                const unsigned lo = (unsigned)((8 * m + g) * 8 + t2), hi = lo + 1;
                bad[0] += o[m] != (lo | hi << 16);
                const unsigned tlo = (unsigned)((8 * m + t2) * 8 + g), thi = tlo + 8;
                bad[1] += o[4 + m] != (tlo | thi << 16);
            }
            for (int w = 0; w < 4; w++) {
                const int i = g + 8 * (w / 2), j = t2 + (w % 2);
                double d = (double)(i - j);
                for (int k = 0; k < 16; k++)
                    d += (double)probe_a(i, k) * probe_b(k, j);
                float f;
                memcpy(&f, &o[8 + w], 4);
                bad[2] += (double)f != d;
                const unsigned want = w < l % 5 ? in[4 * l + w] : 0u;
                bad[3] += o[12 + w] != want;
            }
        }
        if (bad[0] || bad[1] || bad[2] || bad[3])
            printf("\n    PTX probe (%s): ldmatrix %zu, .trans %zu, mma %zu, cp.async %zu words "
                   "differ from the PTX ISA layouts\n",
                   bf ? "bf16" : "f16", bad[0], bad[1], bad[2], bad[3]);
        CU_ASSERT_EQUAL(bad[0] + bad[1] + bad[2] + bad[3], 0);
        dpool_finish(&p);
    }
}

/* ------------------------------------------------------------------------ */
/* Split-KV path                                                            */
/* ------------------------------------------------------------------------ */

/* Run sp with and without a workspace; both against the reference, against
 * each other, and the workspace must have been written (the split ran)
 * when expect_split. */
static void split_run(int dt, int H, int D, const att_spec *sp, int n, int expect_split,
                      uint64_t seed) {
    dpool p = {0};
    att_set a;
    set_make(&a, &p, H, D, dt, sp, n, seed);
    tolk_cu_attn_seq *seqs = calloc((size_t)n, sizeof *seqs);
    CU_ASSERT_FATAL(seqs != NULL);
    set_seqs(&a, sp, seqs);
    int rows = 0, max_kv = 1;
    for (int s = 0; s < n; s++) {
        if (sp[s].n_q < 64) rows += sp[s].n_q;
        if (sp[s].n_kv > max_kv) max_kv = sp[s].n_kv;
    }
    const size_t wsb = tolk_cu_attention_ws_bytes(rows, H, D, max_kv);
    if (expect_split) CU_ASSERT(wsb > 0);
    void *ws = dalloc(&p, wsb ? wsb : 4);
    const size_t nout = a.q_rows * a.ldo;
    float *y0 = malloc(nout * sizeof *y0), *y1 = malloc(nout * sizeof *y1);
    CU_ASSERT_FATAL(y0 && y1);
    const float sc = (float)scale_of(D);
    char what[96];

    CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                         (long long)a.ldo, sc, dt, TOLK_CU_F32, NULL, 0, NULL),
                    0);
    snprintf(what, sizeof what, "no split %s H=%d D=%d", dt_name(dt), H, D);
    check_out(what, &a, sp, -1, TOLK_CU_F32, scale_of(D), y0);
    out_reset(&a);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                         (long long)a.ldo, sc, dt, TOLK_CU_F32, ws, wsb, NULL),
                    0);
    snprintf(what, sizeof what, "split %s H=%d D=%d", dt_name(dt), H, D);
    check_out(what, &a, sp, -1, TOLK_CU_F32, scale_of(D), y1);
    if (expect_split && wsb) {
        unsigned char *h = malloc(wsb);
        CU_ASSERT_FATAL(h != NULL);
        CU_ASSERT_EQUAL(cudaMemcpy(h, ws, wsb, cudaMemcpyDeviceToHost), cudaSuccess);
        size_t written = 0;
        for (size_t i = 0; i < wsb; i++)
            written += h[i] != SENTINEL;
        CU_ASSERT(written > 0); /* the split path ran */
        free(h);
    }
    /* the two agree within the float32 bound (on f32 storage: twice 2e-5 / 1e-4) */
    double atol, rtol;
    bounds(dt, TOLK_CU_F32, &atol, &rtol);
    size_t bad = 0;
    for (size_t i = 0; i < nout; i++) {
        if (isnan(y0[i]) && isnan(y1[i])) continue; /* both sentinel */
        if (!(fabs((double)y0[i] - y1[i]) <= 2 * (atol + rtol * fabs((double)y0[i])))) bad++;
    }
    if (bad) printf("\n    split vs no split %s D=%d: %zu elements differ\n", dt_name(dt), D, bad);
    CU_ASSERT_EQUAL(bad, 0);
    /* a workspace one float short of the need: no split, still correct */
    if (wsb > 4) {
        out_reset(&a);
        CU_ASSERT_EQUAL(tolk_cu_attention_ex(seqs, n, H, D, (long long)a.ldq, (long long)a.ldkv,
                                             (long long)a.ldo, sc, dt, TOLK_CU_F16, ws, wsb - 4,
                                             NULL),
                        0);
        snprintf(what, sizeof what, "small ws %s H=%d D=%d", dt_name(dt), H, D);
        check_out(what, &a, sp, -1, TOLK_CU_F16, scale_of(D), NULL);
    }
    free(y0), free(y1);
    dpool_finish(&p);
    set_free(&a);
    free(seqs);
}

static void test_split(void) {
    NEED_DEVICE();
    /* decoder cross-attention over a window, odd lengths, a causal step at
     * the end of a long context, too few keys to split, an empty sequence,
     * the largest few-query sequence, a flash-sized one beside them */
    static const att_spec cross[] = {
        {1, 1500, 0, 0}, {3, 1500, 0, 0}, {1, 449, 1, 448}, {2, 100, 0, 0},
        {1, 7, 0, 0},    {0, 50, 0, 0},   {1, 130, 0, 0},   {63, 1500, 1, 1437},
    };
    const int nc = (int)(sizeof cross / sizeof cross[0]);
    static const att_spec one[] = {{1, 1500, 0, 0}};
    static const att_spec with_flash[] = {{1, 1500, 0, 0}, {100, 300, 1, 200}, {2, 301, 1, 299}};
    split_run(TOLK_CU_F32, 6, 64, one, 1, 1, 51);    /* batch 1, 6 heads: 6 pairs */
    split_run(TOLK_CU_F32, 3, 64, cross, nc, 1, 52); /* 74 rows x 3 heads = 222 pairs */
    split_run(TOLK_CU_F16, 3, 64, cross, nc, 1, 53);
    split_run(TOLK_CU_BF16, 3, 64, cross, nc, 1, 54);
    split_run(TOLK_CU_F32, 2, 32, cross, nc, 1, 55);
    split_run(TOLK_CU_F32, 2, 128, cross, nc, 1, 56);
    split_run(TOLK_CU_F32, 4, 64, with_flash, 3, 1, 57);
    /* 32 decoder rows x 8 heads = 256 pairs: 2 chunks */
    att_spec b32[32];
    for (int s = 0; s < 32; s++)
        b32[s] = (att_spec){1, 1500 - 7 * s, 0, 0};
    split_run(TOLK_CU_F32, 8, 64, b32, 32, 1, 58);
    /* 40 rows x 8 heads = 320 pairs: no split (the workspace size covers
     * smaller calls, but this one does not split) */
    att_spec b40[40];
    for (int s = 0; s < 40; s++)
        b40[s] = (att_spec){1, 1500, 0, 0};
    split_run(TOLK_CU_F32, 8, 64, b40, 40, 0, 59);

    /* workspace sizes */
    CU_ASSERT(tolk_cu_attention_ws_bytes(1, 8, 64, 1500) > 0);
    CU_ASSERT_EQUAL(tolk_cu_attention_ws_bytes(1, 8, 64, 127), 0); /* < 2 chunks of 64 */
    CU_ASSERT(tolk_cu_attention_ws_bytes(1000, 8, 64, 1500) >=
              tolk_cu_attention_ws_bytes(1, 8, 64, 1500));
    CU_ASSERT(tolk_cu_attention_ws_bytes(1000, 20, 128, 1500) < 8 * 530 * 130 * 4);
    CU_ASSERT(tolk_cu_attention_ws_bytes(1, 20, 128, 1500) < 530 * 130 * 4); /* no groups */
    CU_ASSERT_EQUAL(tolk_cu_attention_ws_bytes(1, 8, 80, 1500), 0);
    CU_ASSERT_EQUAL(tolk_cu_attention_ws_bytes(0, 8, 64, 1500), 0);
}

/* Beams of one window (sequences that share K/V) are scored together by
 * the split path: groups inside aligned runs of 8, one straddling a run,
 * members with different n_q (and none), a causal sequence between them,
 * the same window again after another one (its own group). */
static const att_spec beams[] = {
    {1, 1500, 0, 0}, {1, 1500, 0, 0}, {1, 1500, 0, 0},  {1, 1500, 0, 0},
    {1, 1500, 0, 0}, {1, 1500, 0, 0}, {1, 1500, 0, 0},  {1, 1500, 0, 0},
    {1, 1500, 0, 0}, {1, 1500, 0, 0}, {1, 449, 1, 448}, {2, 300, 0, 0},
    {3, 300, 0, 0},  {0, 300, 0, 0},  {2, 300, 0, 0},   {1, 1500, 0, 0},
};
static const int beams_share[] = {0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 11, 11, 11, 11, 0};
/* the second round of the descriptor test: window A one frame shorter,
 * one beam without a query, the causal step elsewhere, window C's last
 * member with fewer keys (no longer in the group) */
static const att_spec beams2[] = {
    {1, 1499, 0, 0}, {1, 1499, 0, 0}, {0, 1499, 0, 0},  {1, 1499, 0, 0},
    {1, 1499, 0, 0}, {1, 1500, 0, 0}, {1, 1500, 0, 0},  {1, 1500, 0, 0},
    {1, 1500, 0, 0}, {1, 1500, 0, 0}, {1, 300, 1, 299}, {1, 300, 0, 0},
    {1, 300, 0, 0},  {2, 300, 0, 0},  {1, 250, 0, 0},   {1, 1500, 0, 0},
};

static void test_groups(void) {
    NEED_DEVICE();
    const int n = (int)(sizeof beams / sizeof beams[0]);
    g_share = beams_share;
    split_run(TOLK_CU_F32, 3, 64, beams, n, 1, 71);
    split_run(TOLK_CU_F16, 2, 32, beams, n, 1, 72);
    split_run(TOLK_CU_BF16, 1, 128, beams, n, 1, 73);
    /* five beams of one window alone (the batch-5 beam search step) */
    split_run(TOLK_CU_F32, 4, 64, beams, 5, 1, 74);
    g_share = NULL;
}

/* ------------------------------------------------------------------------ */
/* Device descriptors, replayed with new contents                           */
/* ------------------------------------------------------------------------ */

typedef struct desc_call {
    att_set *a;
    void *ddesc;
    int max_nq, max_nkv, tc;
    void *ws;
    size_t wsb;
    int *sync;     /* zeroed counters (the fused combine), or NULL */
    size_t n_sync; /* ints */
} desc_call;

/* The counters of a fused call are zero again after it. */
static void sync_zero(const desc_call *c, const char *what) {
    if (!c->sync) return;
    int *h = malloc(c->n_sync * sizeof *h);
    CU_ASSERT_FATAL(h != NULL);
    CU_ASSERT_EQUAL(cudaMemcpy(h, c->sync, c->n_sync * sizeof *h, cudaMemcpyDeviceToHost),
                    cudaSuccess);
    size_t set = 0;
    for (size_t i = 0; i < c->n_sync; i++)
        set += h[i] != 0;
    if (set) printf("\n    %s: %zu counters left set\n", what, set);
    CU_ASSERT_EQUAL(set, 0);
    free(h);
}

static int desc_launch(const desc_call *c, void *stream) {
    const att_set *a = c->a;
    const size_t es = dt_size(a->dt);
    return tolk_cu_attention_desc(a->dq, (long long)a->ldq, a->dkv, (char *)a->dkv + a->W * es,
                                  (long long)a->ldkv, a->dout, (long long)a->ldo, c->ddesc, a->n,
                                  c->max_nq, c->max_nkv, a->H, a->D, (float)scale_of(a->D), a->dt,
                                  c->tc, c->ws, c->wsb, c->sync, stream);
}

static void desc_upload(const desc_call *c, const att_spec *sp) {
    tolk_cu_attn_desc *d = calloc((size_t)c->a->n, sizeof *d);
    CU_ASSERT_FATAL(d != NULL);
    set_descs(c->a, sp, d);
    CU_ASSERT_FATAL(cudaMemcpy(c->ddesc, d, (size_t)c->a->n * sizeof *d, cudaMemcpyHostToDevice) ==
                    cudaSuccess);
    free(d);
}

/* Launch with descriptors sp1, check; upload sp2, launch again with the
 * very same arguments (max_n_q / max_n_kv: the larger lengths of the two),
 * check; then the same through a captured CUDA graph. use_ws: 0 none, 1 a
 * split workspace, 2 that and zeroed counters (the split path's combine
 * fused into its partial kernel; they must be zero again after each call). */
static void desc_run(int dt, int tc, int H, int D, const att_spec *sp1, const att_spec *sp2, int n,
                     int use_ws, uint64_t seed) {
    dpool p = {0};
    att_set a;
    att_spec *cap = calloc((size_t)n, sizeof *cap); /* rows reserved: the larger of the two */
    CU_ASSERT_FATAL(cap != NULL);
    for (int s = 0; s < n; s++) {
        cap[s].n_q = sp1[s].n_q > sp2[s].n_q ? sp1[s].n_q : sp2[s].n_q;
        cap[s].n_kv = sp1[s].n_kv > sp2[s].n_kv ? sp1[s].n_kv : sp2[s].n_kv;
    }
    set_make(&a, &p, H, D, dt, cap, n, seed);
    free(cap);
    desc_call c = {&a, dalloc(&p, (size_t)n * sizeof(tolk_cu_attn_desc)), 0, 1, tc, NULL, 0, NULL,
                   0};
    for (int s = 0; s < n; s++) {
        if (a.cap_q[s] > c.max_nq) c.max_nq = a.cap_q[s];
        if (a.cap_kv[s] > c.max_nkv) c.max_nkv = a.cap_kv[s];
    }
    const int flash = c.max_nq >= 64;
    if (use_ws) {
        c.wsb = tolk_cu_attention_ws_bytes(n * c.max_nq, H, D, c.max_nkv);
        c.ws = dalloc(&p, c.wsb ? c.wsb : 4);
    }
    if (use_ws == 2) {
        c.n_sync = (size_t)n * (size_t)c.max_nq * (size_t)H;
        c.sync = dalloc(&p, c.n_sync * sizeof(int));
        CU_ASSERT_FATAL(cudaMemset(c.sync, 0, c.n_sync * sizeof(int)) == cudaSuccess);
    }
    char what[128];
    for (int round = 0; round < 2; round++) {
        const att_spec *sp = round ? sp2 : sp1;
        desc_upload(&c, sp);
        out_reset(&a);
        CU_ASSERT_EQUAL(desc_launch(&c, NULL), 0);
        snprintf(what, sizeof what, "desc %s tc=%s H=%d D=%d max_nq %d ws %zu%s, round %d",
                 dt_name(dt), dt_name(tc), H, D, c.max_nq, c.wsb, c.sync ? " fused" : "", round);
        check_out(what, &a, sp, flash, tc, scale_of(D), NULL);
        sync_zero(&c, what);
    }

    /* the same through a captured CUDA graph, replayed with sp1 then sp2 */
    cudaStream_t st = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    int rc = (int)cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    if (!rc) rc = (int)cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    if (!rc) {
        const int lrc = desc_launch(&c, st);
        rc = (int)cudaStreamEndCapture(st, &g);
        CU_ASSERT_EQUAL(lrc, 0);
        if (!rc) rc = (int)cudaGraphInstantiate(&ge, g, 0);
    }
    if (rc) {
        printf("\n    (CUDA graphs unavailable here: %s; graph replay not checked)\n",
               cudaGetErrorString((cudaError_t)rc));
        cudaGetLastError();
    } else {
        for (int round = 0; round < 2; round++) {
            const att_spec *sp = round ? sp2 : sp1;
            desc_upload(&c, sp);
            out_reset(&a);
            CU_ASSERT_EQUAL(cudaGraphLaunch(ge, st), cudaSuccess);
            CU_ASSERT_EQUAL(cudaStreamSynchronize(st), cudaSuccess);
            snprintf(what, sizeof what, "graph %s tc=%s H=%d D=%d max_nq %d ws %zu%s, replay %d",
                     dt_name(dt), dt_name(tc), H, D, c.max_nq, c.wsb, c.sync ? " fused" : "",
                     round);
            check_out(what, &a, sp, flash, tc, scale_of(D), NULL);
            sync_zero(&c, what);
        }
    }
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    if (st) cudaStreamDestroy(st);
    dpool_finish(&p);
    set_free(&a);
}

static void test_desc(void) {
    NEED_DEVICE();
    /* decoder steps: self-attention over growing caches and cross-attention
     * (max_n_q < 64: split / row kernels); the second round changes every
     * length, position and mask, and empties one sequence */
    static const att_spec dec1[] = {
        {1, 100, 1, 99}, {1, 1500, 0, 0}, {3, 449, 1, 446}, {2, 7, 0, 0}, {0, 300, 0, 0},
    };
    static const att_spec dec2[] = {
        {0, 64, 1, 0}, {1, 1499, 0, 0}, {2, 200, 1, 12}, {1, 1, 1, 0}, {1, 300, 0, 0},
    };
    const int nd = (int)(sizeof dec1 / sizeof dec1[0]);
    for (int use_ws = 0; use_ws < 3; use_ws++) {
        desc_run(TOLK_CU_F32, TOLK_CU_F32, 3, 64, dec1, dec2, nd, use_ws, 61);
        desc_run(TOLK_CU_F16, TOLK_CU_F16, 2, 32, dec1, dec2, nd, use_ws, 62);
        desc_run(TOLK_CU_BF16, TOLK_CU_F32, 2, 128, dec1, dec2, nd, use_ws, 63);
    }
    /* prompts and windows (max_n_q >= 64: the flash path of tc for all) */
    static const att_spec enc1[] = {
        {200, 200, 0, 0}, {65, 100, 1, 35}, {64, 449, 0, 0}, {7, 10, 1, 3}, {130, 130, 1, 0},
    };
    static const att_spec enc2[] = {
        {150, 180, 1, 30}, {3, 3, 1, 0}, {1, 449, 0, 0}, {0, 10, 0, 0}, {0, 130, 0, 0},
    };
    const int ne = (int)(sizeof enc1 / sizeof enc1[0]);
    desc_run(TOLK_CU_F32, TOLK_CU_F32, 2, 64, enc1, enc2, ne, 1, 64);
    desc_run(TOLK_CU_F32, TOLK_CU_F16, 2, 64, enc1, enc2, ne, 1, 65);
    desc_run(TOLK_CU_F16, TOLK_CU_BF16, 2, 128, enc1, enc2, ne, 0, 66);
    desc_run(TOLK_CU_F32, TOLK_CU_F16, 2, 32, enc1, enc2, ne, 0, 67);
    g_aligned = 1; /* 16-byte rows: cp.async / vector loads, also in a graph */
    desc_run(TOLK_CU_F16, TOLK_CU_F16, 2, 64, enc1, enc2, ne, 0, 69);
    desc_run(TOLK_CU_F32, TOLK_CU_BF16, 2, 64, enc1, enc2, ne, 0, 70);
    g_aligned = 0;

    /* more sequences than one launch's grid holds (65535 / 2047 = 32 per
     * launch with 2047 heads), and than 32 host-packed ones */
    att_spec m1[40], m2[40];
    for (int s = 0; s < 40; s++) {
        m1[s] = (att_spec){1 + s % 2, 3 + s % 3, s % 2, 2 + s % 3 - (1 + s % 2)};
        if (!m1[s].causal) m1[s].q_pos0 = 0;
        m2[s] = (att_spec){s % 3 == 0 ? 0 : 1, 1 + s % 3, 1, s % 3};
    }
    desc_run(TOLK_CU_F32, TOLK_CU_F32, 2047, 32, m1, m2, 40, 1, 68);
    /* beams sharing windows (split path groups), also through a graph */
    g_share = beams_share;
    desc_run(TOLK_CU_F32, TOLK_CU_F32, 3, 64, beams, beams2, (int)(sizeof beams / sizeof beams[0]),
             1, 75);
    desc_run(TOLK_CU_F16, TOLK_CU_F16, 3, 64, beams, beams2, (int)(sizeof beams / sizeof beams[0]),
             2, 76);
    g_share = NULL;
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                */
/* ------------------------------------------------------------------------ */

static void test_errors(void) {
    NEED_DEVICE();
    tolk_cu_attn_seq s = {(void *)256, (void *)256, (void *)256, (void *)256, 1, 1, 0, 0};
    const long long w = 64;
    /* bad tc, misaligned workspace, head width, stride, causal contract */
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(&s, 1, 1, 64, w, w, w, 1, 0, 3, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(&s, 1, 1, 64, w, w, w, 1, 0, 0, (void *)258, 1024, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(&s, 1, 1, 80, 80, 80, 80, 1, 0, 0, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(&s, 1, 2, 64, w, w, w, 1, 0, 1, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    s.causal = 1, s.n_q = 2;
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(&s, 1, 1, 64, w, w, w, 1, 0, 1, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_ex(NULL, 0, 1, 64, w, w, w, 1, 0, 1, NULL, 0, NULL), 0);
    /* descriptor variant: nothing to do, bad bounds, missing pointers */
    void *d = (void *)256;
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, d, 0, 4, 4, 1, 64, 1, 0, 0, NULL, 0,
                                           NULL, NULL),
                    0);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, d, 4, 0, 4, 1, 64, 1, 0, 0, NULL, 0,
                                           NULL, NULL),
                    0);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, d, 4, 4, 0, 1, 64, 1, 0, 0, NULL, 0,
                                           NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, NULL, 4, 4, 4, 1, 64, 1, 0, 0, NULL,
                                           0, NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, d, 4, 4, 4, 1, 48, 1, 0, 0, NULL, 0,
                                           NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, w, d, 4, 4, 4, 1, 64, 1, 0, 7, NULL, 0,
                                           NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_attention_desc(d, w, d, d, w, d, 32, d, 4, 4, 4, 1, 64, 1, 0, 0, NULL,
                                           0, NULL, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    CU_TestInfo tests[] = {{"ptx_fragments", test_ptx_fragments},
                           {"f32_parity", test_f32_parity},
                           {"tc_flash", test_tc_flash},
                           {"tc_aligned", test_tc_aligned},
                           {"tc_cpu_twin", test_tc_cpu_twin},
                           {"mixed_cpu_twin", test_mixed_cpu_twin},
                           {"append_cpu_twin", test_append_cpu_twin},
                           {"split", test_split},
                           {"groups", test_groups},
                           {"desc", test_desc},
                           {"errors", test_errors},
                           CU_TEST_INFO_NULL};
    tu_add_suite("cuda_attention", tests);
    return tu_run();
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    return tu_run_without_cuda("cuda_attention");
}

#endif

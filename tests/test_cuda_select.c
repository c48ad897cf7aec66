/*
 * test_cuda_select.c — the decode-step kernels kernels/select.cu
 * (tolk_cu_select: masks, timestamp rule, log-softmax normaliser, argmax /
 * top-k) and kernels/copy_rows.cu (tolk_cu_copy_rows: row gather/scatter)
 * against plain CPU references here.
 *
 * ref_select is the host decode loop's semantics written out: the masks, the
 * timestamp probability-mass rule at the end of tolk_dec_apply_filters
 * (src/decode_filters.c), tolk_dec_log_softmax (sequential double sums), the
 * argmax of src/decode_greedy.c and the topk of src/decode_beam.c over the
 * float log-probabilities. Checked: every index exactly; every
 * log-probability within 1e-6 abs + 2.5e-7 rel (two float ulps: the GPU sums
 * in another order, so lse may differ in its last bits and a rounded lp by
 * an ulp); the in-place masked logits bit-exactly, every column; the gap
 * columns between rows and the guard zones around every device buffer
 * (0xFF sentinel) untouched. Rows cover: random logits, exact ties
 * (duplicate values, more than k of them), distinct logits whose rounded
 * log-probabilities tie, all -inf rows (input and whole-row mask), the
 * timestamp rule firing and not firing (also within a float ulp of its
 * threshold), all timestamps masked, all text masked, Whisper-like
 * suppression lists, empty / reversed / overlapping / out-of-range mask
 * ranges. A graph test captures select + copy_rows in a CUDA graph and
 * replays it with new logits, masks and indices.
 *
 * copy_rows: random bytes (NaN payloads included), gathers, scatters, both,
 * neither, negative indices skipped, contiguous / odd / aligned strides,
 * misaligned base pointers (the scalar path), f32 / f16 / bf16; the whole
 * destination buffer is compared byte by byte.
 *
 * Without a CUDA device (or in a CPU-only build) the tests skip, except the
 * argument checks, which never reach the device.
 *
 * ctest-labels: gpu
 */
#include "internal.h"
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "../kernels/copy_rows.h"
#include "../kernels/select.h"

#include <cuda_runtime_api.h>

#include "support/cuda_guard.h"

/* ------------------------------------------------------------------------ */
/* Device buffers with guard zones                                          */
/* ------------------------------------------------------------------------ */

/* dpool, dalloc, dpool_finish, NEED_DEVICE: tests/support/cuda_guard.h */

/* A device copy of host bytes, between guard zones. */
static void *dcopy(dpool *p, const void *h, size_t bytes) {
    void *d = dalloc(p, bytes);
    if (bytes) CU_ASSERT_FATAL(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

static void dget(void *h, const void *d, size_t bytes) {
    CU_ASSERT_FATAL(cudaDeviceSynchronize() == cudaSuccess);
    if (bytes) CU_ASSERT_FATAL(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
}

static int rnd_int(int lo, int hi) { /* uniform in [lo, hi) */
    int v = lo + (int)tu_uniform(0.0f, (float)(hi - lo));
    return v < lo ? lo : (v >= hi ? hi - 1 : v);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ------------------------------------------------------------------------ */
/* select: the CPU reference                                                */
/* ------------------------------------------------------------------------ */

/* One row x [n] (modified in place like the kernel does), its mask pairs,
 * the timestamp begin tb and k: idx [k], lp [k]. work: n floats. Returns
 * whether the timestamp rule fired. */
static int ref_select(float *x, int n, const int *pairs, int n_pairs, int tb, int k, int *idx,
                      float *lp, float *work) {
    for (int p = 0; p < n_pairs; p++) {
        int lo = pairs[2 * p] < 0 ? 0 : pairs[2 * p];
        int hi = pairs[2 * p + 1] > n ? n : pairs[2 * p + 1];
        for (int j = lo; j < hi; j++)
            x[j] = -INFINITY;
    }
    int fired = 0;
    if (tb > 0 && tb < n) { /* tolk_dec_apply_filters, last part */
        float max_text = -INFINITY;
        for (int i = 0; i < tb; i++)
            if (x[i] > max_text) max_text = x[i];
        float max_ts = -INFINITY;
        for (int i = tb; i < n; i++)
            if (x[i] > max_ts) max_ts = x[i];
        if (max_ts != -INFINITY) {
            double s = 0.0;
            for (int i = tb; i < n; i++)
                s += exp((double)x[i] - (double)max_ts);
            double ts_lse = (double)max_ts + log(s);
            if (ts_lse > (double)max_text) {
                fired = 1;
                for (int i = 0; i < tb; i++)
                    x[i] = -INFINITY;
            }
        }
    }
    /* tolk_dec_log_softmax */
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) {
        for (int i = 0; i < n; i++)
            work[i] = -INFINITY;
    } else {
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += exp((double)x[i] - (double)mx);
        double lse = (double)mx + log(sum);
        for (int i = 0; i < n; i++)
            work[i] = (float)((double)x[i] - lse);
    }
    if (k == 1) { /* decode_greedy.c's argmax of the filtered logits */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (x[i] > x[best]) best = i;
        idx[0] = best;
        lp[0] = work[best];
        return fired;
    }
    /* decode_beam.c's topk of the log-probabilities */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && !(work[i] > work[idx[m - 1]])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && work[i] > work[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    for (int c = 0; c < k; c++)
        lp[c] = work[idx[c]];
    return fired;
}

/* ------------------------------------------------------------------------ */
/* select: inputs                                                           */
/* ------------------------------------------------------------------------ */

#define N_KINDS 13
#define MAX_PAIRS 128

/* Fill row x [n] and its mask pairs (returns their count) for row kind `kind`. */
static int make_row(float *x, int n, int tb, int kind, int *pairs) {
    const int ts = tb > 0 && tb < n;
    const int te = ts ? tb : n;
    int np = 0;
    for (int j = 0; j < n; j++)
        x[j] = tu_uniform(-10.0f, 10.0f);
    switch (kind) {
    case 0: /* plain random, random masks below */
        break;
    case 1: /* exact ties: 3 copies of the maximum, 40 of the runner-up */
        for (int q = 0; q < 40; q++)
            x[rnd_int(0, n)] = 11.0f;
        for (int q = 0; q < 3; q++)
            x[rnd_int(0, n)] = 12.5f;
        if (ts)
            for (int q = 0; q < 5; q++)
                x[rnd_int(te, n)] = 11.0f;
        break;
    case 2: /* all -inf input */
        for (int j = 0; j < n; j++)
            x[j] = -INFINITY;
        break;
    case 3: /* a whole-row mask, out of range on both sides */
        pairs[np++] = -100;
        pairs[np++] = n + 100;
        break;
    case 4: /* timestamps far below the text: the rule does not fire */
        for (int j = te; j < n; j++)
            x[j] -= 8.0f;
        break;
    case 5: /* every timestamp masked (max_ts = -inf), two overlapping ranges */
        if (ts) {
            pairs[np++] = te;
            pairs[np++] = te + (n - te) / 2 + 1;
            pairs[np++] = te + (n - te) / 2;
            pairs[np++] = n + 7;
        }
        break;
    case 6: /* every text token masked: the rule fires (nothing to remove) */
        pairs[np++] = -3;
        pairs[np++] = te;
        break;
    case 7:   /* the rule just fires: ts_lse = 3 + log 2 > max_text */
    case 8: { /* ... just does not: max_text above it by a float ulp */
        const double t = 3.0 + log(2.0);
        float mt = (float)t;
        if (kind == 7 && (double)mt >= t) mt = nextafterf(mt, -INFINITY);
        if (kind == 8 && (double)mt <= t) mt = nextafterf(mt, INFINITY);
        for (int j = 0; j < n; j++)
            x[j] = j < te ? x[j] * 0.3f : -INFINITY; /* text below 3 */
        if (ts && n - te >= 2) {
            x[te + (n - te) / 3] = 3.0f;
            x[n - 1] = 3.0f;
        }
        x[te / 2] = mt;
        break;
    }
    case 9: { /* distinct logits whose rounded log-probabilities tie */
        for (int j = 0; j < n; j++)
            x[j] = tu_uniform(-10.0f, 0.25f);
        x[rnd_int(0, n)] = 20.0f; /* lse near 20: lp ulp 2e-6 >> x ulp 6e-8 */
        float v = 0.5f;
        for (int q = 0; q < 8 && q < n; q++) {
            x[n - 1 - (q * 37) % n] = v; /* larger values at larger indices */
            v = nextafterf(v, 0.0f);
        }
        break;
    }
    case 10: /* a Whisper-like suppression list: many single tokens, plus a long range */
        for (int q = 0; q < 90; q++) {
            const int t = rnd_int(0, n);
            pairs[np++] = t;
            pairs[np++] = t + 1;
        }
        pairs[np++] = n / 3;
        pairs[np++] = n / 3 + 100;
        break;
    case 11: /* the maximum in the last column, the runner-up in the first */
        x[n - 1] = 30.0f;
        x[0] = 29.0f;
        break;
    case 12: /* the text maximum ties the only timestamp: the rule holds (not >), text wins */
        for (int j = te; j < n; j++)
            x[j] = -INFINITY;
        x[te / 3] = 15.0f;
        x[n - 1] = 15.0f;
        break;
    }
    if (kind == 0 || kind == 1 || kind == 4 || kind == 11) {
        const int extra = rnd_int(0, 7);
        for (int q = 0; q < extra; q++) {
            const int t = rnd_int(-5, n + 5), len = rnd_int(-3, 60);
            pairs[np++] = t; /* empty, reversed, clipped or long */
            pairs[np++] = t + len;
        }
        if (kind == 0) { /* clipped entirely away, and empty at the ends */
            pairs[np++] = n + 3;
            pairs[np++] = n + 9;
            pairs[np++] = -9;
            pairs[np++] = 0;
            pairs[np++] = n;
            pairs[np++] = n;
        }
    }
    return np / 2;
}

/* ------------------------------------------------------------------------ */
/* select: one configuration                                                */
/* ------------------------------------------------------------------------ */

typedef struct sel_case {
    int n, rows, tb, k, masks; /* masks 0: range_off = ranges = NULL */
} sel_case;

/* Run one configuration; counts rows where the rule fired / was checked but did not fire. */
static void run_select(const sel_case *sc, uint64_t seed, int *n_fired, int *n_kept) {
    const int n = sc->n, rows = sc->rows, k = sc->k;
    const long long ld = n + 3; /* gap columns hold the sentinel */
    dpool p = {0};
    tu_seed(seed);
    float *x = malloc((size_t)rows * ld * sizeof(float));
    float *want = malloc((size_t)rows * ld * sizeof(float));
    float *got = malloc((size_t)rows * ld * sizeof(float));
    float *work = malloc((size_t)n * sizeof(float));
    int *pairs = malloc((size_t)rows * MAX_PAIRS * 2 * sizeof(int));
    int *off = malloc(((size_t)rows + 1) * sizeof(int));
    int *ridx = malloc((size_t)rows * k * sizeof(int)),
        *gidx = malloc((size_t)rows * k * sizeof(int));
    float *rlp = malloc((size_t)rows * k * sizeof(float)),
          *glp = malloc((size_t)rows * k * sizeof(float));
    CU_ASSERT_FATAL(x && want && got && work && pairs && off && ridx && gidx && rlp && glp);

    for (size_t i = 0; i < (size_t)rows * ld; i++)
        x[i] = bits_f(0xFFFFFFFFu);
    off[0] = 0;
    for (int r = 0; r < rows; r++) {
        const int kind = (int)((r + seed) % N_KINDS);
        int np = make_row(x + r * ld, n, sc->tb, kind, pairs + 2 * off[r]);
        if (!sc->masks) np = 0;
        off[r + 1] = off[r] + np;
    }
    memcpy(want, x, (size_t)rows * ld * sizeof(float));
    for (int r = 0; r < rows; r++) {
        const int f = ref_select(want + r * ld, n, pairs + 2 * off[r], off[r + 1] - off[r], sc->tb,
                                 k, ridx + (size_t)r * k, rlp + (size_t)r * k, work);
        if (sc->tb > 0 && sc->tb < n) {
            *n_fired += f;
            *n_kept += !f;
        }
    }

    float *dx = dcopy(&p, x, (size_t)rows * ld * sizeof(float));
    int *doff = sc->masks ? dcopy(&p, off, ((size_t)rows + 1) * sizeof(int)) : NULL;
    int *dpairs =
        sc->masks ? dcopy(&p, pairs, (size_t)(off[rows] ? off[rows] : 1) * 2 * sizeof(int)) : NULL;
    int *didx = dalloc(&p, (size_t)rows * k * sizeof(int));
    float *dlp = dalloc(&p, (size_t)rows * k * sizeof(float));
    CU_ASSERT_EQUAL(tolk_cu_select(dx, ld, rows, n, doff, dpairs, sc->tb, k, didx, dlp, NULL), 0);
    dget(got, dx, (size_t)rows * ld * sizeof(float));
    dget(gidx, didx, (size_t)rows * k * sizeof(int));
    dget(glp, dlp, (size_t)rows * k * sizeof(float));

    size_t bad_idx = 0, bad_lp = 0, bad_x = 0;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < k; c++) {
            const size_t o = (size_t)r * k + c;
            if (gidx[o] != ridx[o]) {
                if (bad_idx++ < 5)
                    printf("\n    n %d k %d row %d (kind %d) rank %d: index %d, want %d", n, k, r,
                           (int)((r + seed) % N_KINDS), c, gidx[o], ridx[o]);
            }
            const double g = glp[o], e = rlp[o];
            if (!(g == e || fabs(g - e) <= 1e-6 + 2.5e-7 * fabs(e))) {
                if (bad_lp++ < 5)
                    printf("\n    n %d k %d row %d rank %d: lp %.9g, want %.9g", n, k, r, c, g, e);
            }
        }
        for (long long j = 0; j < ld; j++) /* masked logits bit-exact, gaps untouched */
            if (f_bits(got[r * ld + j]) != f_bits(want[r * ld + j])) {
                if (bad_x++ < 5)
                    printf("\n    n %d row %d col %lld: logit %.9g, want %.9g", n, r, j,
                           got[r * ld + j], want[r * ld + j]);
            }
    }
    if (bad_idx || bad_lp || bad_x) printf("\n");
    CU_ASSERT_EQUAL(bad_idx, 0);
    CU_ASSERT_EQUAL(bad_lp, 0);
    CU_ASSERT_EQUAL(bad_x, 0);
    dpool_finish(&p);
    free(x), free(want), free(got), free(work), free(pairs), free(off);
    free(ridx), free(gidx), free(rlp), free(glp);
}

static void test_select(void) {
    NEED_DEVICE();
    const int NV = 51865, TB = 50364; /* Whisper's multilingual vocabulary */
    const sel_case cases[] = {
        {NV, 1, TB, 1, 1},     {NV, 5, TB, 1, 1},        {NV, 33, TB, 1, 1},
        {NV, 5, TB, 2, 1},     {NV, 33, TB, 6, 1},       {NV, 5, TB, 32, 1},
        {NV, 33, TB, 32, 1},   {NV, 1, TB, 6, 1},        {NV, 33, 0, 1, 1},
        {NV, 5, 0, 32, 1},     {NV, 1, 0, 6, 1},         {NV, 5, TB, 6, 0},
        {NV, 5, NV, 2, 1},     {20000, 65, 19000, 6, 1}, {20000, 65, 0, 1, 1},
        {1000, 5, 900, 1, 1},  {1000, 33, 900, 32, 1},   {1000, 5, 0, 2, 1},
        {1000, 33, 900, 6, 0}, {7, 5, 4, 1, 1},          {7, 33, 4, 6, 1},
        {7, 5, 0, 2, 1},       {7, 1, -1, 6, 1},         {7, 33, 6, 2, 1},
        {1, 5, 0, 1, 1},       {2, 13, 1, 2, 1},         {33, 12, 30, 32, 1},
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    int fired = 0, kept = 0;
    for (int i = 0; i < n_cases; i++)
        run_select(&cases[i], 5000 + (uint64_t)i, &fired, &kept);
    printf("(timestamp rule fired in %d rows, held in %d) ", fired, kept);
    CU_ASSERT(fired >= 20);
    CU_ASSERT(kept >= 20);
}

/* ------------------------------------------------------------------------ */
/* copy_rows                                                                */
/* ------------------------------------------------------------------------ */

static size_t es_of(int dt) {
    return dt == TOLK_CU_F32 ? 4 : 2;
}

static void rnd_bytes(unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)rnd_int(0, 256);
}

/* One copy: index mode bit 0 gather (src_idx), bit 1 scatter (dst_idx). */
static int run_copy(int dt, long long rows, int cols, long long ld_dst, long long ld_src, int off,
                    int mode) {
    dpool p = {0};
    const size_t es = es_of(dt);
    const long long n_src = rows + 3, n_dst = rows + 4;
    const size_t sb = ((size_t)off + (size_t)n_src * ld_src) * es;
    const size_t db = ((size_t)off + (size_t)n_dst * ld_dst) * es;
    unsigned char *hs = malloc(sb), *hd = malloc(db), *want = malloc(db);
    unsigned char *got = malloc(sb > db ? sb : db); /* the destination, then the source */
    int *si = malloc((size_t)rows * sizeof(int) + 1), *di = malloc((size_t)rows * sizeof(int) + 1);
    int *perm = malloc((size_t)n_dst * sizeof(int));
    CU_ASSERT_FATAL(hs && hd && want && got && si && di && perm);
    rnd_bytes(hs, sb);
    rnd_bytes(hd, db);
    for (long long i = 0; i < n_dst; i++)
        perm[i] = (int)i;
    for (long long i = n_dst - 1; i > 0; i--) { /* Fisher-Yates: an injective scatter */
        const int j = rnd_int(0, (int)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (long long r = 0; r < rows; r++) {
        si[r] = rnd_int(0, 5) == 0 ? -rnd_int(1, 3) : rnd_int(0, (int)n_src); /* repeats allowed */
        di[r] = rnd_int(0, 5) == 0 ? -1 : perm[r];
    }
    const int *use_si = (mode & 1) ? si : NULL, *use_di = (mode & 2) ? di : NULL;
    memcpy(want, hd, db);
    for (long long r = 0; r < rows; r++) {
        const long long s = use_si ? use_si[r] : r, d = use_di ? use_di[r] : r;
        if (s < 0 || d < 0) continue;
        memcpy(want + ((size_t)off + (size_t)(d * ld_dst)) * es,
               hs + ((size_t)off + (size_t)(s * ld_src)) * es, (size_t)cols * es);
    }
    unsigned char *ds = dcopy(&p, hs, sb), *dd = dcopy(&p, hd, db);
    int *dsi = use_si ? dcopy(&p, si, (size_t)rows * sizeof(int) + 1) : NULL;
    int *ddi = use_di ? dcopy(&p, di, (size_t)rows * sizeof(int) + 1) : NULL;
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(dd + off * es, ld_dst, ddi, ds + off * es, ld_src, dsi, rows,
                                      cols, dt, NULL),
                    0);
    dget(got, dd, db);
    size_t bad = 0;
    for (size_t i = 0; i < db; i++)
        bad += got[i] != want[i];
    dget(got, ds, sb);
    const int src_ok = memcmp(got, hs, sb) == 0;
    if (bad || !src_ok)
        printf("\n    dtype %d rows %lld cols %d ld %lld/%lld off %d mode %d: %zu bytes wrong%s\n",
               dt, rows, cols, ld_dst, ld_src, off, mode, bad, src_ok ? "" : ", source modified");
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(src_ok);
    dpool_finish(&p);
    free(hs), free(hd), free(want), free(got), free(si), free(di), free(perm);
    return bad == 0 && src_ok;
}

static void test_copy_rows(void) {
    NEED_DEVICE();
    tu_seed(7000);
    const int dts[] = {TOLK_CU_F32, TOLK_CU_F16, TOLK_CU_BF16};
    const int colss[] = {1, 2, 3, 4, 8, 12, 64, 509, 1280};
    const long long rowss[] = {1, 5, 37};
    int n_bad = 0, combo = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 9; b++)
            for (int l = 0; l < 4; l++)
                for (int off = 0; off < 3; off++)
                    for (int mode = 0; mode < 4; mode++, combo++) {
                        const int cols = colss[b];
                        const long long rows = rowss[combo % 3];
                        /* contiguous, odd, 16-byte aligned, even strides; base
                         * pointers 0, 1 or 2 elements past a 256-byte boundary */
                        const long long ldd = l == 0   ? cols
                                              : l == 1 ? cols + 1
                                              : l == 2 ? (cols + 15) / 8 * 8 + 8
                                                       : cols + 2;
                        const long long lds = l == 0   ? cols
                                              : l == 1 ? cols + 3
                                              : l == 2 ? (cols + 7) / 8 * 8 + 16
                                                       : cols + 4;
                        n_bad += !run_copy(dts[a], rows, cols, ldd, lds, off, mode);
                    }
    /* larger: a KV-cache append of many rows, and a beam reorder */
    n_bad += !run_copy(TOLK_CU_F16, 3000, 512, 512, 512, 0, 2);
    n_bad += !run_copy(TOLK_CU_F32, 700, 384, 400, 384, 0, 3);
    n_bad += !run_copy(TOLK_CU_BF16, 300, 1000, 1024, 1000, 1, 1);
    CU_ASSERT_EQUAL(n_bad, 0);
}

/* ------------------------------------------------------------------------ */
/* Graph capture and replay                                                 */
/* ------------------------------------------------------------------------ */

/* select (k = 6) on a captured graph, followed by a copy_rows gathering the
 * masked logits rows by an index array, replayed twice with new contents of
 * logits, masks and indices. */
static void test_graph(void) {
    NEED_DEVICE();
    const int n = 51865, tb = 50364, rows = 4, k = 6;
    const long long ld = n;
    dpool p = {0};
    tu_seed(8000);
    cudaStream_t st = NULL;
    CU_ASSERT_FATAL(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
    const size_t xb = (size_t)rows * ld * sizeof(float);
    float *x = malloc(xb), *want = malloc(xb), *got = malloc(xb), *work = malloc(n * sizeof(float));
    int *pairs = malloc((size_t)rows * MAX_PAIRS * 2 * sizeof(int));
    int off[5], ridx[4 * 6], gidx[4 * 6], gsrc[4];
    float rlp[4 * 6], glp[4 * 6];
    CU_ASSERT_FATAL(x && want && got && work && pairs);
    float *dx = dalloc(&p, xb), *dy = dalloc(&p, xb);
    int *doff = dalloc(&p, sizeof off),
        *dpairs = dalloc(&p, (size_t)rows * MAX_PAIRS * 2 * sizeof(int));
    int *didx = dalloc(&p, sizeof gidx), *dsrc = dalloc(&p, sizeof gsrc);
    float *dlp = dalloc(&p, sizeof glp);

    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        tu_skip("stream capture not supported");
        cudaStreamDestroy(st);
        dpool_finish(&p);
        free(x), free(want), free(got), free(work), free(pairs);
        return;
    }
    CU_ASSERT_EQUAL(tolk_cu_select(dx, ld, rows, n, doff, dpairs, tb, k, didx, dlp, st), 0);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(dy, ld, NULL, dx, ld, dsrc, rows, n, TOLK_CU_F32, st), 0);
    CU_ASSERT_FATAL(cudaStreamEndCapture(st, &graph) == cudaSuccess);
    CU_ASSERT_FATAL(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);

    for (int rep = 0; rep < 2; rep++) {
        off[0] = 0;
        for (int r = 0; r < rows; r++) {
            const int kind = (r * 3 + rep * 5) % N_KINDS;
            off[r + 1] = off[r] + make_row(x + r * ld, n, tb, kind, pairs + 2 * off[r]);
            gsrc[r] = (r + 1 + rep) % rows;
        }
        memcpy(want, x, xb);
        for (int r = 0; r < rows; r++)
            ref_select(want + r * ld, n, pairs + 2 * off[r], off[r + 1] - off[r], tb, k,
                       ridx + r * k, rlp + r * k, work);
        CU_ASSERT_FATAL(cudaMemcpy(dx, x, xb, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(doff, off, sizeof off, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(dpairs, pairs,
                                   (size_t)(off[rows] ? off[rows] : 1) * 2 * sizeof(int),
                                   cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(dsrc, gsrc, sizeof gsrc, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaGraphLaunch(exec, st) == cudaSuccess);
        CU_ASSERT_FATAL(cudaStreamSynchronize(st) == cudaSuccess);
        dget(gidx, didx, sizeof gidx);
        dget(glp, dlp, sizeof glp);
        for (int i = 0; i < rows * k; i++) {
            CU_ASSERT_EQUAL(gidx[i], ridx[i]);
            CU_ASSERT(glp[i] == rlp[i] ||
                      fabs((double)glp[i] - rlp[i]) <= 1e-6 + 2.5e-7 * fabs(rlp[i]));
        }
        dget(got, dy, xb);
        size_t bad = 0;
        for (int r = 0; r < rows; r++)
            bad += memcmp(got + r * ld, want + gsrc[r] * ld, (size_t)n * sizeof(float)) != 0;
        CU_ASSERT_EQUAL(bad, 0);
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(st);
    dpool_finish(&p);
    free(x), free(want), free(got), free(work), free(pairs);
}

/* ------------------------------------------------------------------------ */
/* Argument checks (never reach the device)                                 */
/* ------------------------------------------------------------------------ */

static void test_args(void) {
    float *L = (float *)(uintptr_t)256;
    int *I = (int *)(uintptr_t)512, *O = (int *)(uintptr_t)768;
    float *P = (float *)(uintptr_t)1024;
    const int E = TOLK_CU_EINVAL;
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, -1, 10, NULL, NULL, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 0, NULL, NULL, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 9, 1, 10, NULL, NULL, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, NULL, NULL, 0, 0, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, NULL, NULL, 0, 11, I, P, NULL), E);
    CU_ASSERT_EQUAL(
        tolk_cu_select(L, 40, 1, 40, NULL, NULL, 0, TOLK_CU_SELECT_MAX_K + 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(NULL, 10, 1, 10, NULL, NULL, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, NULL, NULL, 0, 1, NULL, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, NULL, NULL, 0, 1, I, NULL, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, O, NULL, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 1, 10, NULL, O, 0, 1, I, P, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_select(L, 10, 0, 10, O, O, 5, 4, I, P, NULL), 0); /* nothing to do */

    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, NULL, P, 4, NULL, -1, 4, TOLK_CU_F32, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, NULL, P, 4, NULL, 1, -1, TOLK_CU_F32, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 3, NULL, P, 4, NULL, 1, 4, TOLK_CU_F32, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, NULL, P, 3, NULL, 1, 4, TOLK_CU_F16, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, NULL, P, 4, NULL, 1, 4, 3, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(NULL, 4, NULL, P, 4, NULL, 1, 4, TOLK_CU_BF16, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, NULL, NULL, 4, NULL, 1, 4, TOLK_CU_F32, NULL), E);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, I, P, 4, O, 0, 4, TOLK_CU_F32, NULL), 0);
    CU_ASSERT_EQUAL(tolk_cu_copy_rows(L, 4, I, P, 4, O, 5, 0, TOLK_CU_F16, NULL), 0);
}

int main(void) {
    CU_TestInfo tests[] = {{"args", test_args},
                           {"select", test_select},
                           {"copy_rows", test_copy_rows},
                           {"graph", test_graph},
                           CU_TEST_INFO_NULL};
    tu_add_suite("cuda_select", tests);
    return tu_run();
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    return tu_run_without_cuda("cuda_select");
}

#endif

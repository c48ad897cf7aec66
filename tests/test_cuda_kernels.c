/*
 * test_cuda_kernels.c — every CUDA kernel in kernels/ against its CPU twin
 * (a plain reference loop here, in double precision, on inputs rounded to
 * the kernel's storage type), on random inputs with sizes that are not
 * multiples of the kernels' tiles. Every output element is checked, and
 * every device buffer sits between guard zones (and, for strided outputs,
 * has gaps between rows) filled with a 0xFF sentinel that must survive:
 * nothing outside the output may be written. The sentinel is also NaN in
 * every float type, so an output element the kernel forgot fails too.
 *
 * Error bounds (|got - ref| <= atol + rtol |ref|), per op and storage type:
 *   layernorm  f32 1e-5 / 1e-5;  f16 out 1e-3 rel;  bf16 out 8e-3 rel
 *   add, gelu  f32 1e-6 / 1e-6;  f16 1e-3 rel;  bf16 8e-3 rel
 *   bias_relu  exact (one float addition);  ssru  f32 1e-6 / 1e-5 (expf)
 *   convert    bit-exact against tolk_f32_to_f16 / _bf16 (weights.c)
 *   im2col     exact; conv (im2col + gemm, f32) 1e-5 / 1e-5
 *   embed      f32 exact sum of two float32 terms (1e-6)
 *   attention  f32 2e-5 / 1e-4;  f16 / bf16 outputs 2e-3 / 8e-3 (+ 1e-3 abs)
 *   gemm       f32 1e-5 rel of the row's |x||w| scale; TF32 3e-3; f16/bf16
 *              inputs: 1e-5 against the rounded inputs (f32 accumulation)
 *
 * (The decode step's selection, kernels/select.cu, and row copies,
 * kernels/copy_rows.cu, are tested in test_cuda_select.c.)
 *
 * The backend test runs the CUDA op table (src/cuda_backend.c) against the
 * CPU backend, every entry (embed_rows and copy_rows with device indices); net_parity runs the
 * whole network (net.c, tiny.en when installed) on both devices (TOLK_TEST_SKIP_NET=1 skips it).
 *
 * Without a CUDA device (or in a CPU-only build) every test skips.
 *
 * ctest-labels: gpu models
 */
#include "internal.h"
#include "testutil.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#include "../kernels/add.h"
#include "../kernels/attention.h"
#include "../kernels/conv1d.h"
#include "../kernels/convert.h"
#include "../kernels/embed.h"
#include "../kernels/gelu.h"
#include "../kernels/gemm.h"
#include "../kernels/layernorm.h"
#include "../kernels/softmax.h"
#include "../kernels/ssru.h"

#include "backend.h"
#include "cuda_util.h"
#include "net.h"

#include <cuda_runtime_api.h>

#include "support/cuda_guard.h"

/* ------------------------------------------------------------------------ */
/* Device buffers with guard zones                                          */
/* ------------------------------------------------------------------------ */

/* dpool, dalloc, dpool_finish, dt_size, NEED_DEVICE: tests/support/cuda_guard.h */

/* Round x to storage type dt and back (what the kernel will see). */
static float q_dt(float x, int dt) {
    if (dt == TOLK_CU_F16) return tolk_f16_to_f32(tolk_f32_to_f16(x));
    if (dt == TOLK_CU_BF16) return tolk_bf16_to_f32(tolk_f32_to_bf16(x));
    return x;
}
static void quantize(float *x, size_t n, int dt) {
    for (size_t i = 0; i < n; i++)
        x[i] = q_dt(x[i], dt);
}

/* Host float array [n] -> a new device buffer of type dt. */
static void *to_dev(dpool *p, const float *x, size_t n, int dt) {
    void *d = dalloc(p, n * dt_size(dt));
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
    return d;
}

/* Device array [n] of type dt -> host floats (synchronises). */
static void from_dev(float *x, const void *d, size_t n, int dt) {
    CU_ASSERT_FATAL(cudaDeviceSynchronize() == cudaSuccess);
    void *h = malloc(n * dt_size(dt));
    CU_ASSERT_FATAL(h != NULL);
    CU_ASSERT_FATAL(cudaMemcpy(h, d, n * dt_size(dt), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (size_t i = 0; i < n; i++) {
        if (dt == TOLK_CU_F32)
            x[i] = ((float *)h)[i];
        else if (dt == TOLK_CU_F16)
            x[i] = tolk_f16_to_f32(((uint16_t *)h)[i]);
        else
            x[i] = tolk_bf16_to_f32(((uint16_t *)h)[i]);
    }
    free(h);
}

/* Whether a storage element read back is still the sentinel (all 0xFF). */
static int is_sentinel(float v, int dt) {
    if (dt == TOLK_CU_F32) {
        uint32_t u;
        memcpy(&u, &v, 4);
        return u == 0xFFFFFFFFu;
    }
    return isnan(v); /* 0xFFFF is NaN in f16 and bf16 */
}

/* Compare got [rows, cols] (row stride ldg) with ref [rows, cols] (stride
 * ldr): |got - ref| <= atol + rtol |ref| for every element (NaN fails), and
 * the gap columns [cols, ldg) of every row but the last still hold the
 * sentinel of type dt (dt < 0: no gap check). Prints the worst element; returns 1 when all is well.
 */
static int check2d(const char *what, const float *got, size_t ldg, const double *ref, size_t ldr,
                   size_t rows, size_t cols, double atol, double rtol, int dt) {
    size_t bad = 0, wr = 0, wc = 0;
    double worst = -1;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            const double g = got[r * ldg + c], e = ref[r * ldr + c];
            if (g == e) continue; /* also equal infinities */
            const double err = fabs(g - e), lim = atol + rtol * fabs(e);
            const double q = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0.0);
            if (!(err <= lim)) bad++;
            if (!(q <= worst)) {
                worst = isnan(q) ? INFINITY : q;
                wr = r;
                wc = c;
            }
        }
    size_t gap_bad = 0;
    for (size_t r = 0; dt >= 0 && r + 1 < rows; r++)
        for (size_t c = cols; c < ldg; c++)
            gap_bad += !is_sentinel(got[r * ldg + c], dt);
    if (bad || gap_bad)
        printf("\n    %s: %zu of %zu elements out of bounds (worst [%zu,%zu] got %.9g want %.9g);"
               " %zu gap elements written\n",
               what, bad, rows * cols, wr, wc, got[wr * ldg + wc], ref[wr * ldr + wc], gap_bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(gap_bad, 0);
    return bad == 0 && gap_bad == 0;
}

static const char *dt_name(int dt) {
    return dt == TOLK_CU_F32 ? "f32" : dt == TOLK_CU_F16 ? "f16" : "bf16";
}
/* Relative bound of one rounding to the storage type. */
static double dt_rtol(int dt, double f32_tol) {
    return dt == TOLK_CU_F32 ? f32_tol : dt == TOLK_CU_F16 ? 1e-3 : 8e-3;
}

static float *rnd(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    CU_ASSERT_FATAL(x != NULL);
    tu_fill_uniform(x, n, lo, hi);
    return x;
}
static double *dbl(size_t n) {
    double *x = calloc(n ? n : 1, sizeof *x);
    CU_ASSERT_FATAL(x != NULL);
    return x;
}

/* ------------------------------------------------------------------------ */
/* LayerNorm                                                                */
/* ------------------------------------------------------------------------ */

static void ref_layernorm(double *y, const float *x, size_t ldx, size_t rows, size_t cols,
                          const float *g, const float *b, double eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        double m = 0, v = 0;
        for (size_t c = 0; c < cols; c++)
            m += xr[c];
        m /= (double)cols;
        for (size_t c = 0; c < cols; c++)
            v += (xr[c] - m) * (xr[c] - m);
        v /= (double)cols;
        const double rs = 1.0 / sqrt(v + eps);
        for (size_t c = 0; c < cols; c++)
            y[r * cols + c] = (xr[c] - m) * rs * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
    }
}

static void layernorm_case(int xdt, int ydt, size_t rows, size_t cols, size_t ldx, size_t ldy,
                           int with_params) {
    dpool p = {0};
    tu_seed(100 + xdt * 3 + ydt);
    float *x = rnd(rows * ldx, -3.0f, 5.0f), *g = rnd(cols, 0.5f, 1.5f), *b = rnd(cols, -1, 1);
    quantize(x, rows * ldx, xdt);
    double *ref = dbl(rows * cols);
    ref_layernorm(ref, x, ldx, rows, cols, with_params ? g : NULL, with_params ? b : NULL, 1e-5);
    void *dx = to_dev(&p, x, rows * ldx, xdt);
    void *dy = dalloc(&p, rows * ldy * dt_size(ydt));
    float *dg = to_dev(&p, g, cols, TOLK_CU_F32), *db = to_dev(&p, b, cols, TOLK_CU_F32);
    CU_ASSERT_EQUAL(tolk_cu_layernorm(dy, ydt, (long long)ldy, dx, xdt, (long long)ldx,
                                      (long long)rows, (int)cols, with_params ? dg : NULL,
                                      with_params ? db : NULL, 1e-5f, NULL),
                    0);
    float *y = malloc(rows * ldy * sizeof *y);
    from_dev(y, dy, rows * ldy, ydt);
    char what[64];
    snprintf(what, sizeof what, "layernorm %s->%s", dt_name(xdt), dt_name(ydt));
    check2d(what, y, ldy, ref, cols, rows, cols, 1e-5, dt_rtol(ydt, 1e-5), ydt);
    dpool_finish(&p);
    free(x), free(g), free(b), free(ref), free(y);
}

static void test_layernorm(void) {
    NEED_DEVICE();
    layernorm_case(TOLK_CU_F32, TOLK_CU_F32, 37, 389, 392, 397, 1);
    layernorm_case(TOLK_CU_F32, TOLK_CU_F16, 37, 389, 389, 389, 1);
    layernorm_case(TOLK_CU_F16, TOLK_CU_F16, 5, 1280, 1280, 1288, 1);
    layernorm_case(TOLK_CU_BF16, TOLK_CU_F32, 3, 1031, 1031, 1031, 0);
    layernorm_case(TOLK_CU_F32, TOLK_CU_BF16, 1, 7, 7, 7, 1);

    /* in place, float32 */
    dpool p = {0};
    const size_t rows = 11, cols = 513;
    float *x = rnd(rows * cols, -2, 2);
    double *ref = dbl(rows * cols);
    ref_layernorm(ref, x, cols, rows, cols, NULL, NULL, 1e-5);
    void *dx = to_dev(&p, x, rows * cols, TOLK_CU_F32);
    CU_ASSERT_EQUAL(tolk_cu_layernorm(dx, TOLK_CU_F32, cols, dx, TOLK_CU_F32, cols, rows, cols,
                                      NULL, NULL, 1e-5f, NULL),
                    0);
    from_dev(x, dx, rows * cols, TOLK_CU_F32);
    check2d("layernorm in place", x, cols, ref, cols, rows, cols, 1e-5, 1e-5, TOLK_CU_F32);
    /* rejected arguments */
    CU_ASSERT_EQUAL(
        tolk_cu_layernorm(dx, TOLK_CU_F32, 2, dx, TOLK_CU_F32, 3, 1, 3, NULL, NULL, 1e-5f, NULL),
        TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_layernorm(dx, 7, 3, dx, TOLK_CU_F32, 3, 1, 3, NULL, NULL, 1e-5f, NULL),
                    TOLK_CU_EINVAL);
    dpool_finish(&p);
    free(x), free(ref);
}

/* ------------------------------------------------------------------------ */
/* add, bias + GELU, convert                                                */
/* ------------------------------------------------------------------------ */

static void add_case(int dt, size_t n, size_t pb, size_t pc, int with_b, int with_c) {
    dpool p = {0};
    tu_seed(200 + dt);
    float *a = rnd(n, -4, 4), *b = rnd(pb, -4, 4), *c = rnd(pc, -1, 1);
    quantize(a, n, dt);
    quantize(b, pb, dt);
    double *ref = dbl(n);
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)a[i] + (with_b ? b[i % pb] : 0.0) + (with_c ? c[i % pc] : 0.0);
    void *da = to_dev(&p, a, n, dt), *db = to_dev(&p, b, pb, dt);
    float *dc = to_dev(&p, c, pc, TOLK_CU_F32);
    void *dy = dalloc(&p, n * dt_size(dt));
    CU_ASSERT_EQUAL(tolk_cu_add(dy, da, with_b ? db : NULL, (long long)pb, with_c ? dc : NULL,
                                (long long)pc, (long long)n, dt, NULL),
                    0);
    float *y = malloc(n * sizeof *y);
    from_dev(y, dy, n, dt);
    char what[64];
    snprintf(what, sizeof what, "add %s pb=%zu pc=%zu", dt_name(dt), pb, pc);
    check2d(what, y, n, ref, n, 1, n, 1e-6, dt_rtol(dt, 1e-6), dt);
    /* in place: y = a */
    CU_ASSERT_EQUAL(tolk_cu_add(da, da, with_b ? db : NULL, (long long)pb, with_c ? dc : NULL,
                                (long long)pc, (long long)n, dt, NULL),
                    0);
    from_dev(y, da, n, dt);
    check2d("add in place", y, n, ref, n, 1, n, 1e-6, dt_rtol(dt, 1e-6), dt);
    dpool_finish(&p);
    free(a), free(b), free(c), free(ref), free(y);
}

static void test_add(void) {
    NEED_DEVICE();
    add_case(TOLK_CU_F32, 100003, 100003, 389, 1, 1);       /* residual + bias */
    add_case(TOLK_CU_F32, 3 * 1500 * 7, 1, 1500 * 7, 0, 1); /* positional table, 3 windows */
    add_case(TOLK_CU_F16, 4099, 4099, 1, 1, 0);
    add_case(TOLK_CU_BF16, 4099, 17, 4099, 1, 1);
}

static void gelu_case(int dt, size_t rows, size_t cols, size_t ldx, size_t ldy, int bias) {
    dpool p = {0};
    tu_seed(300 + dt);
    float *x = rnd(rows * ldx, -5, 5), *b = rnd(cols, -1, 1);
    quantize(x, rows * ldx, dt);
    double *ref = dbl(rows * cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            const double v = (double)x[r * ldx + c] + (bias ? b[c] : 0.0);
            ref[r * cols + c] = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        }
    void *dx = to_dev(&p, x, rows * ldx, dt);
    float *db = to_dev(&p, b, cols, TOLK_CU_F32);
    void *dy = dalloc(&p, rows * ldy * dt_size(dt));
    CU_ASSERT_EQUAL(tolk_cu_bias_gelu(dy, (long long)ldy, dx, (long long)ldx, (long long)rows,
                                      (int)cols, bias ? db : NULL, dt, NULL),
                    0);
    float *y = malloc(rows * ldy * sizeof *y);
    from_dev(y, dy, rows * ldy, dt);
    char what[64];
    snprintf(what, sizeof what, "bias_gelu %s", dt_name(dt));
    check2d(what, y, ldy, ref, cols, rows, cols, 1e-6, dt_rtol(dt, 1e-6), dt);
    if (ldx == ldy) { /* in place */
        CU_ASSERT_EQUAL(tolk_cu_bias_gelu(dx, (long long)ldx, dx, (long long)ldx, (long long)rows,
                                          (int)cols, bias ? db : NULL, dt, NULL),
                        0);
        float *z = malloc(rows * ldx * sizeof *z);
        from_dev(z, dx, rows * ldx, dt);
        for (size_t i = 0; i < rows * cols; i++) /* same arithmetic: bit-identical */
            CU_ASSERT_EQUAL(z[(i / cols) * ldx + i % cols], y[(i / cols) * ldy + i % cols]);
        free(z);
    }
    dpool_finish(&p);
    free(x), free(b), free(ref), free(y);
}

static void test_bias_gelu(void) {
    NEED_DEVICE();
    gelu_case(TOLK_CU_F32, 41, 1543, 1550, 1547, 1);
    gelu_case(TOLK_CU_F32, 70000, 3, 3, 3, 0); /* more rows than grid.y */
    gelu_case(TOLK_CU_F16, 19, 2048, 2048, 2048, 1);
    gelu_case(TOLK_CU_BF16, 3, 257, 260, 260, 1);
}

/* ------------------------------------------------------------------------ */
/* bias + ReLU, SSRU step (the translation decoder)                         */
/* ------------------------------------------------------------------------ */

static void relu_case(size_t rows, size_t cols, size_t ldx, int bias) {
    dpool p = {0};
    tu_seed(350);
    float *x = rnd(rows * ldx, -3, 3), *b = rnd(cols, -1, 1);
    double *ref = dbl(rows * cols);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            const float v = x[r * ldx + c] + (bias ? b[c] : 0.0f);
            ref[r * cols + c] = v > 0.0f ? v : 0.0f;
        }
    float *dx = to_dev(&p, x, rows * ldx, TOLK_CU_F32), *db = to_dev(&p, b, cols, TOLK_CU_F32);
    CU_ASSERT_EQUAL(
        tolk_cu_bias_relu(dx, (long long)ldx, (long long)rows, (int)cols, bias ? db : NULL, NULL),
        0);
    float *y = malloc(rows * ldx * sizeof *y);
    from_dev(y, dx, rows * ldx, TOLK_CU_F32);
    check2d("bias_relu", y, ldx, ref, cols, rows, cols, 0, 0, -1);
    for (size_t r = 0; r < rows; r++) /* the gap columns stay as they were */
        for (size_t c = cols; c < ldx; c++)
            CU_ASSERT_EQUAL(y[r * ldx + c], x[r * ldx + c]);
    CU_ASSERT_EQUAL(tolk_cu_bias_relu(dx, 2, 1, 3, NULL, NULL), TOLK_CU_EINVAL);
    dpool_finish(&p);
    free(x), free(b), free(ref), free(y);
}

static void ssru_case(size_t rows, size_t d, size_t ldxf) {
    dpool p = {0};
    tu_seed(360);
    float *xf = rnd(rows * ldxf, -6, 6), *c = rnd(rows * d, -2, 2);
    double *rc = dbl(rows * d), *ro = dbl(rows * d);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < d; i++) {
            const double f = xf[r * ldxf + d + i], s = 1.0 / (1.0 + exp(-f));
            const double v = s * c[r * d + i] + (1.0 - s) * xf[r * ldxf + i];
            rc[r * d + i] = v;
            ro[r * d + i] = v > 0 ? v : 0;
        }
    float *dxf = to_dev(&p, xf, rows * ldxf, TOLK_CU_F32),
          *dc = to_dev(&p, c, rows * d, TOLK_CU_F32);
    float *dout = dalloc(&p, rows * d * sizeof(float));
    CU_ASSERT_EQUAL(tolk_cu_ssru(dout, dc, dxf, (long long)ldxf, (long long)rows, (int)d, NULL), 0);
    float *gc = malloc(rows * d * sizeof *gc), *go = malloc(rows * d * sizeof *go);
    from_dev(gc, dc, rows * d, TOLK_CU_F32);
    from_dev(go, dout, rows * d, TOLK_CU_F32);
    check2d("ssru state", gc, d, rc, d, rows, d, 1e-6, 1e-5, TOLK_CU_F32);
    check2d("ssru out", go, d, ro, d, rows, d, 1e-6, 1e-5, TOLK_CU_F32);
    CU_ASSERT_EQUAL(tolk_cu_ssru(dout, dc, dxf, (long long)(2 * d - 1), 1, (int)d, NULL),
                    TOLK_CU_EINVAL);
    dpool_finish(&p);
    free(xf), free(c), free(rc), free(ro), free(gc), free(go);
}

static void test_relu_ssru(void) {
    NEED_DEVICE();
    relu_case(37, 1541, 1546, 1);
    relu_case(70000, 3, 3, 0); /* more rows than grid.y */
    ssru_case(5, 256, 512);
    ssru_case(70001, 3, 9);
    ssru_case(3, 300, 611);
}

static void test_convert(void) {
    NEED_DEVICE();
    const int pairs[][2] = {{TOLK_CU_F32, TOLK_CU_F16},  {TOLK_CU_F16, TOLK_CU_F32},
                            {TOLK_CU_F32, TOLK_CU_BF16}, {TOLK_CU_BF16, TOLK_CU_F32},
                            {TOLK_CU_F16, TOLK_CU_BF16}, {TOLK_CU_F32, TOLK_CU_F32}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        const int xdt = pairs[k][0], ydt = pairs[k][1];
        const size_t rows = 23, cols = 301, ldx = 310, ldy = 305;
        dpool p = {0};
        tu_seed(400 + k);
        float *x = rnd(rows * ldx, -70000, 70000); /* f16 overflows to inf at 65520 */
        for (size_t i = 0; i < rows * ldx; i += 7)
            x[i] *= 1e-6f; /* small and subnormal */
        quantize(x, rows * ldx, xdt);
        double *ref = dbl(rows * cols);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                ref[r * cols + c] = q_dt(x[r * ldx + c], ydt);
        void *dx = to_dev(&p, x, rows * ldx, xdt);
        void *dy = dalloc(&p, rows * ldy * dt_size(ydt));
        CU_ASSERT_EQUAL(tolk_cu_convert(dy, ydt, ldy, dx, xdt, ldx, rows, cols, NULL), 0);
        float *y = malloc(rows * ldy * sizeof *y);
        from_dev(y, dy, rows * ldy, ydt);
        char what[64];
        snprintf(what, sizeof what, "convert %s->%s", dt_name(xdt), dt_name(ydt));
        check2d(what, y, ldy, ref, cols, rows, cols, 0, 0, ydt); /* exact; inf == inf */
        dpool_finish(&p);
        free(x), free(ref), free(y);
    }
}

/* ------------------------------------------------------------------------ */
/* conv1d stem: im2col + gemm                                               */
/* ------------------------------------------------------------------------ */

static void conv_case(tolk_cu_gemm_ctx *g, int layout, int stride, int flags) {
    const size_t B = 2, C = 13, T = 101, O = 29;
    const size_t To = (size_t)tolk_cu_conv_t_out(T, stride);
    dpool p = {0};
    tu_seed(500 + layout * 2 + stride);
    float *x = rnd(B * C * T, -1, 1), *w = rnd(O * C * 3, -1, 1), *bias = rnd(O, -1, 1);
    /* reference: direct convolution, y [B, To, O] */
    double *ref = dbl(B * To * O), *rcols = dbl(B * To * C * 3);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < To; t++) {
            for (size_t c = 0; c < C; c++)
                for (int k = 0; k < 3; k++) {
                    const long ti = (long)(t * stride) + k - 1;
                    double v = 0;
                    if (ti >= 0 && ti < (long)T)
                        v = layout == TOLK_CU_CONV_CT ? x[b * C * T + c * T + (size_t)ti]
                                                      : x[b * C * T + (size_t)ti * C + c];
                    rcols[(b * To + t) * C * 3 + c * 3 + (size_t)k] = v;
                }
            for (size_t o = 0; o < O; o++) {
                double s = bias[o];
                for (size_t j = 0; j < C * 3; j++)
                    s += (double)w[o * C * 3 + j] * rcols[(b * To + t) * C * 3 + j];
                ref[(b * To + t) * O + o] = s;
            }
        }
    void *dx = to_dev(&p, x, B * C * T, TOLK_CU_F32);
    void *dw = to_dev(&p, w, O * C * 3, TOLK_CU_F32);
    float *db = to_dev(&p, bias, O, TOLK_CU_F32);
    void *dcols = dalloc(&p, B * To * C * 3 * 4);
    void *dy = dalloc(&p, B * To * O * 4);
    CU_ASSERT_EQUAL(
        tolk_cu_im2col_k3(dcols, TOLK_CU_F32, dx, TOLK_CU_F32, layout, B, C, T, stride, NULL), 0);
    CU_ASSERT_EQUAL(tolk_cu_gemm(g, dy, TOLK_CU_F32, O, dcols, TOLK_CU_F32, C * 3, dw, TOLK_CU_F32,
                                 C * 3, B * To, O, C * 3, 1.0f, 0.0f, db, flags, NULL, 0, NULL),
                    0);
    float *cols = malloc(B * To * C * 3 * sizeof *cols), *y = malloc(B * To * O * sizeof *y);
    from_dev(cols, dcols, B * To * C * 3, TOLK_CU_F32);
    from_dev(y, dy, B * To * O, TOLK_CU_F32);
    check2d("im2col", cols, C * 3, rcols, C * 3, B * To, C * 3, 0, 0, TOLK_CU_F32);
    check2d("conv1d", y, O, ref, O, B * To, O, 1e-5, 1e-5, TOLK_CU_F32);
    dpool_finish(&p);
    free(x), free(w), free(bias), free(ref), free(rcols), free(cols), free(y);
}

static void test_conv1d(void) {
    NEED_DEVICE();
    tolk_cu_gemm_ctx *g = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_cu_gemm_create(&g), 0);
    for (int layout = 0; layout < 2; layout++)
        for (int stride = 1; stride <= 2; stride++)
            conv_case(g, layout, stride, 0);
    conv_case(g, TOLK_CU_CONV_CT, 2, TOLK_CU_GEMM_FALLBACK);
    CU_ASSERT_EQUAL(tolk_cu_im2col_k3(NULL, 0, NULL, 0, 0, 1, 1, 1, 3, NULL), TOLK_CU_EINVAL);
    tolk_cu_gemm_destroy(g);
}

/* ------------------------------------------------------------------------ */
/* embedding                                                                */
/* ------------------------------------------------------------------------ */

static void test_embed(void) {
    NEED_DEVICE();
    const int tdts[] = {TOLK_CU_F32, TOLK_CU_F16, TOLK_CU_BF16};
    for (int k = 0; k < 3; k++) {
        const int tdt = tdts[k];
        const size_t n = 17, d = 389, V = 1000, P = 448, ldy = 400;
        dpool p = {0};
        tu_seed(600 + k);
        float *tok = rnd(V * d, -1, 1), *pos = rnd(P * d, -1, 1);
        quantize(tok, V * d, tdt);
        int ids[17], positions[17];
        for (size_t i = 0; i < n; i++) {
            ids[i] = (int)((i * 7919) % V);
            positions[i] = (int)((i * 31) % P);
        }
        ids[3] = (int)V;   /* out of range: token term is 0 */
        positions[5] = -1; /* out of range: positional term is 0 */
        double *ref = dbl(n * d);
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < d; c++) {
                double v = 0;
                if (ids[i] >= 0 && ids[i] < (int)V) v += tok[(size_t)ids[i] * d + c];
                if (positions[i] >= 0 && positions[i] < (int)P)
                    v += pos[(size_t)positions[i] * d + c];
                ref[i * d + c] = (float)v; /* one float32 rounding of the sum */
            }
        void *dtok = to_dev(&p, tok, V * d, tdt);
        float *dpos = to_dev(&p, pos, P * d, TOLK_CU_F32);
        int *dids = dalloc(&p, n * sizeof(int)), *dposi = dalloc(&p, n * sizeof(int));
        CU_ASSERT_FATAL(cudaMemcpy(dids, ids, sizeof ids, cudaMemcpyHostToDevice) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMemcpy(dposi, positions, sizeof positions, cudaMemcpyHostToDevice) ==
                        cudaSuccess);
        void *dy = dalloc(&p, n * ldy * 4);
        CU_ASSERT_EQUAL(
            tolk_cu_embed(dy, TOLK_CU_F32, ldy, dids, dposi, n, d, dtok, tdt, V, dpos, P, NULL), 0);
        float *y = malloc(n * ldy * sizeof *y);
        from_dev(y, dy, n * ldy, TOLK_CU_F32);
        check2d("embed", y, ldy, ref, d, n, d, 1e-6, 1e-6, TOLK_CU_F32);
        dpool_finish(&p);
        free(tok), free(pos), free(ref), free(y);
    }
}

/* ------------------------------------------------------------------------ */
/* attention                                                                */
/* ------------------------------------------------------------------------ */

/* One sequence of a test: its host buffers (float, already rounded to the
 * storage type) and device copies. q/k/v live in one fused [n_kv, 3W]
 * buffer (ld 3W) like the encoder's QKV product; q rows are the last n_q
 * rows (causal) or the first n_q rows. */
typedef struct att_case {
    int n_q, n_kv, causal, q_pos0;
    float *qkv;  /* host [n_kv, 3W] */
    void *d_qkv; /* device */
    void *d_out; /* device [n_q, ldo] */
} att_case;

static void ref_attention(double *out, const att_case *a, int H, int D, size_t ld, double scale) {
    const size_t W = (size_t)H * D;
    const size_t q_row0 = a->causal ? (size_t)a->q_pos0 : 0;
    double *s = dbl((size_t)a->n_kv);
    for (int i = 0; i < a->n_q; i++)
        for (int h = 0; h < H; h++) {
            const float *q = a->qkv + (q_row0 + (size_t)i) * ld + (size_t)h * D;
            const int nk = a->causal ? a->q_pos0 + i + 1 : a->n_kv;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < nk; j++) {
                const float *k = a->qkv + (size_t)j * ld + W + (size_t)h * D;
                double d = 0;
                for (int c = 0; c < D; c++)
                    d += (double)q[c] * k[c];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < nk; j++)
                sum += (s[j] = exp(s[j] - mx));
            for (int c = 0; c < D; c++) {
                double o = 0;
                for (int j = 0; j < nk; j++)
                    o += s[j] * a->qkv[(size_t)j * ld + 2 * W + (size_t)h * D + (size_t)c];
                out[(size_t)i * W + (size_t)h * D + (size_t)c] = o / sum;
            }
        }
    free(s);
}

static void attention_run(int dt, int H, int D, const int (*spec)[4], int n_seqs) {
    const size_t W = (size_t)H * D, ld = 3 * W, ldo = W + 5;
    const double scale = 1.0 / sqrt((double)D);
    dpool p = {0};
    tu_seed(700 + (uint64_t)dt * 10 + (uint64_t)D);
    att_case *cs = calloc((size_t)n_seqs, sizeof *cs);
    tolk_cu_attn_seq *seqs = calloc((size_t)n_seqs, sizeof *seqs);
    CU_ASSERT_FATAL(cs && seqs);
    for (int s = 0; s < n_seqs; s++) {
        att_case *a = &cs[s];
        a->n_q = spec[s][0];
        a->n_kv = spec[s][1];
        a->causal = spec[s][2];
        a->q_pos0 = spec[s][3];
        a->qkv = rnd((size_t)a->n_kv * ld, -2, 2);
        quantize(a->qkv, (size_t)a->n_kv * ld, dt);
        a->d_qkv = to_dev(&p, a->qkv, (size_t)a->n_kv * ld, dt);
        a->d_out = dalloc(&p, (size_t)a->n_q * ldo * dt_size(dt));
        const size_t q_row0 = a->causal ? (size_t)a->q_pos0 : 0;
        char *base = a->d_qkv;
        seqs[s].q = base + q_row0 * ld * dt_size(dt);
        seqs[s].k = base + W * dt_size(dt);
        seqs[s].v = base + 2 * W * dt_size(dt);
        seqs[s].out = a->d_out;
        seqs[s].n_q = a->n_q;
        seqs[s].n_kv = a->n_kv;
        seqs[s].causal = a->causal;
        seqs[s].q_pos0 = a->q_pos0;
    }
    CU_ASSERT_EQUAL(tolk_cu_attention(seqs, n_seqs, H, D, (long long)ld, (long long)ld,
                                      (long long)ldo, (float)scale, dt, NULL),
                    0);
    for (int s = 0; s < n_seqs; s++) {
        att_case *a = &cs[s];
        double *ref = dbl((size_t)a->n_q * W);
        ref_attention(ref, a, H, D, ld, scale);
        float *y = malloc((size_t)a->n_q * ldo * sizeof *y);
        from_dev(y, a->d_out, (size_t)a->n_q * ldo, dt);
        char what[96];
        snprintf(what, sizeof what, "attention %s D=%d seq %d (n_q %d n_kv %d causal %d)",
                 dt_name(dt), D, s, a->n_q, a->n_kv, a->causal);
        const double rtol = dt == TOLK_CU_F32 ? 1e-4 : dt_rtol(dt, 0);
        check2d(what, y, ldo, ref, W, (size_t)a->n_q, W, dt == TOLK_CU_F32 ? 2e-5 : 1e-3, rtol, dt);
        free(ref), free(y), free(a->qkv);
    }
    dpool_finish(&p);
    free(cs), free(seqs);
}

static void test_attention(void) {
    NEED_DEVICE();
    /* n_q, n_kv, causal, q_pos0 */
    static const int mixed[][4] = {
        {150, 150, 0, 0},  /* encoder-like, flash, 2 tiles (one partial) */
        {77, 77, 0, 0},    /* flash, one partial tile */
        {70, 75, 1, 5},    /* causal prompt over a cache, flash */
        {1, 1, 1, 0},      /* first decoder step */
        {1, 33, 1, 32},    /* decoder step */
        {3, 448, 1, 445},  /* a few tokens at the end of the context */
        {1, 1500, 0, 0},   /* cross-attention over a window */
        {2, 1501, 0, 0},   /* cross-attention, odd length */
        {63, 200, 1, 137}, /* largest row-kernel query count */
    };
    const int n_mixed = (int)(sizeof mixed / sizeof mixed[0]);
    const int dts[] = {TOLK_CU_F32, TOLK_CU_F16, TOLK_CU_BF16};
    for (int k = 0; k < 3; k++)
        attention_run(dts[k], 3, 64, mixed, n_mixed);
    attention_run(TOLK_CU_F32, 2, 32, mixed, n_mixed);
    attention_run(TOLK_CU_F32, 2, 128, mixed, n_mixed);

    /* more sequences than one launch holds (32): 70 decoder rows, 35 flash */
    int(*many)[4] = calloc(105, sizeof *many);
    CU_ASSERT_FATAL(many != NULL);
    for (int s = 0; s < 105; s++) {
        const int flash = s % 3 == 2, n = 1 + (s * 37) % 90;
        many[s][0] = flash ? 64 + s % 5 : 1;
        many[s][1] = flash ? 64 + s % 5 + n : n;
        many[s][2] = 1;
        many[s][3] = many[s][1] - many[s][0];
    }
    attention_run(TOLK_CU_F16, 2, 64, (const int(*)[4])many, 105);
    free(many);

    /* rejected: a head width without a kernel, a broken causal contract */
    tolk_cu_attn_seq bad = {(void *)16, (void *)16, (void *)16, (void *)16, 2, 1, 1, 0};
    CU_ASSERT_EQUAL(tolk_cu_attention(&bad, 1, 1, 64, 64, 64, 64, 1, TOLK_CU_F32, NULL),
                    TOLK_CU_EINVAL);
    bad.n_kv = 2;
    CU_ASSERT_EQUAL(tolk_cu_attention(&bad, 1, 1, 80, 80, 80, 80, 1, TOLK_CU_F32, NULL),
                    TOLK_CU_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* GEMM                                                                     */
/* ------------------------------------------------------------------------ */

static void gemm_case(tolk_cu_gemm_ctx *g, int dt, int ydt, size_t M, size_t N, size_t K,
                      size_t ldx, size_t ldw, size_t ldy, int bias, float beta, int flags) {
    dpool p = {0};
    tu_seed(800 + M + N + K);
    float *x = rnd(M * ldx, -1, 1), *w = rnd(N * ldw, -1, 1), *b = rnd(N, -1, 1);
    float *y0 = rnd(M * ldy, -1, 1);
    quantize(x, M * ldx, dt);
    quantize(w, N * ldw, dt);
    quantize(y0, M * ldy, ydt);
    quantize(b, N, ydt); /* the bias is of y's type */
    double *ref = dbl(M * N), *scl = dbl(M * N);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (size_t k = 0; k < K; k++) {
                s += (double)x[m * ldx + k] * w[n * ldw + k];
                a += fabs((double)x[m * ldx + k] * w[n * ldw + k]);
            }
            if (bias) s += b[n];
            if (beta != 0) s += beta * (double)y0[m * ldy + n];
            if (flags & TOLK_CU_GEMM_GELU) /* the tanh form, cuBLASLt's epilogue */
                s = 0.5 * s * (1.0 + tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
            ref[m * N + n] = s;
            scl[m * N + n] = a + 1;
        }
    void *dx = to_dev(&p, x, M * ldx, dt), *dw = to_dev(&p, w, N * ldw, dt);
    void *db = to_dev(&p, b, N, ydt);
    void *dy = beta != 0 ? to_dev(&p, y0, M * ldy, ydt) : dalloc(&p, M * ldy * dt_size(ydt));
    if (beta != 0) /* restore the sentinel in the row gaps */
        for (size_t m = 0; m + 1 < M; m++)
            cudaMemset((char *)dy + (m * ldy + N) * dt_size(ydt), SENTINEL,
                       (ldy - N) * dt_size(ydt));
    void *ws = dalloc(&p, 1 << 22);
    CU_ASSERT_EQUAL(tolk_cu_gemm(g, dy, ydt, ldy, dx, dt, ldx, dw, dt, ldw, M, N, K, 1.0f, beta,
                                 bias ? db : NULL, flags, ws, 1 << 22, NULL),
                    0);
    float *y = malloc(M * ldy * sizeof *y);
    from_dev(y, dy, M * ldy, ydt);
    /* bound relative to the magnitude of the terms summed */
    const double tol = (flags & TOLK_CU_GEMM_TF32) ? 3e-3 : 1e-5;
    for (size_t i = 0; i < M * N; i++) {
        /* scale the reference errors: check (got - ref) / scl */
        ref[i] /= scl[i];
    }
    float *ys = malloc(M * ldy * sizeof *ys);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < ldy; n++)
            ys[m * ldy + n] = n < N ? (float)(y[m * ldy + n] / scl[m * N + n]) : y[m * ldy + n];
    char what[96];
    snprintf(what, sizeof what, "gemm %s->%s %zux%zux%zu flags %d", dt_name(dt), dt_name(ydt), M, N,
             K, flags);
    check2d(what, ys, ldy, ref, N, M, N, tol, ydt == TOLK_CU_F32 ? 0 : dt_rtol(ydt, 0), ydt);
    dpool_finish(&p);
    free(x), free(w), free(b), free(y0), free(ref), free(scl), free(y), free(ys);
}

static void test_gemm(void) {
    NEED_DEVICE();
    tolk_cu_gemm_ctx *g = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_cu_gemm_create(&g), 0);
    for (int pass = 0; pass < 2; pass++) { /* the second pass hits the algorithm cache */
        gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 37, 61, 45, 45, 45, 61, 1, 0, 0);
        gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 37, 61, 45, 50, 47, 64, 0, 1, 0); /* accumulate */
        gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 300, 384, 384, 1152, 384, 384, 1, 1, 0);
        gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 37, 61, 45, 45, 45, 61, 1, 0, TOLK_CU_GEMM_TF32);
        gemm_case(g, TOLK_CU_F16, TOLK_CU_F32, 5, 1031, 512, 512, 512, 1031, 1, 1, 0);
        gemm_case(g, TOLK_CU_F16, TOLK_CU_F32, 37, 61, 45, 45, 45, 61, 1, 0, 0); /* odd K */
        gemm_case(g, TOLK_CU_BF16, TOLK_CU_F32, 129, 96, 200, 200, 200, 100, 1, 0, 0);
        gemm_case(g, TOLK_CU_F16, TOLK_CU_F16, 33, 64, 64, 64, 64, 64, 0, 0, 0);
    }
    gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 37, 61, 45, 50, 47, 64, 1, 1, TOLK_CU_GEMM_FALLBACK);
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F32, 37, 61, 45, 45, 45, 61, 1, 0, TOLK_CU_GEMM_FALLBACK);
    gemm_case(g, TOLK_CU_BF16, TOLK_CU_BF16, 17, 33, 45, 45, 45, 33, 0, 0, TOLK_CU_GEMM_FALLBACK);
    /* a half output with a bias of its type (the float16 cross-attention
     * cache), through cuBLASLt's epilogue and through the fallback */
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F16, 33, 64, 64, 64, 64, 64, 1, 0, 0);
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F16, 17, 40, 45, 45, 45, 48, 1, 0, TOLK_CU_GEMM_FALLBACK);
    gemm_case(g, TOLK_CU_BF16, TOLK_CU_BF16, 17, 33, 45, 45, 45, 33, 1, 0, TOLK_CU_GEMM_FALLBACK);
    /* bias + GELU in the epilogue (the half modes' fc1), half and float32
     * outputs, cuBLASLt and the fallback; GELU with accumulation refused */
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F16, 33, 64, 64, 64, 64, 64, 1, 0, TOLK_CU_GEMM_GELU);
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F16, 17, 40, 45, 45, 45, 48, 1, 0,
              TOLK_CU_GEMM_GELU | TOLK_CU_GEMM_FALLBACK);
    gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 37, 61, 45, 45, 45, 61, 0, 0, TOLK_CU_GEMM_GELU);
    CU_ASSERT_EQUAL(tolk_cu_gemm(g, (void *)16, TOLK_CU_F32, 4, (void *)16, TOLK_CU_F32, 4,
                                 (void *)16, TOLK_CU_F32, 4, 4, 4, 4, 1, 1, NULL, TOLK_CU_GEMM_GELU,
                                 NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    /* rejected: mixed input types, a half output of another half type */
    CU_ASSERT_EQUAL(tolk_cu_gemm(g, (void *)16, TOLK_CU_F32, 4, (void *)16, TOLK_CU_F32, 4,
                                 (void *)16, TOLK_CU_F16, 4, 4, 4, 4, 1, 0, NULL, 0, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    CU_ASSERT_EQUAL(tolk_cu_gemm(g, (void *)16, TOLK_CU_BF16, 4, (void *)16, TOLK_CU_F16, 4,
                                 (void *)16, TOLK_CU_F16, 4, 4, 4, 4, 1, 0, (float *)16, 0, NULL, 0,
                                 NULL),
                    TOLK_CU_EINVAL);
    tolk_cu_gemm_destroy(g);
}

/* Batched products: one x [M, K] against `batch` weights stacked in one
 * buffer (stride N * ldw), biases at stride N, outputs at y_stride. */
static void gemm_batched_case(tolk_cu_gemm_ctx *g, int dt, size_t M, size_t N, size_t K, int batch,
                              size_t ldy, size_t y_stride) {
    dpool p = {0};
    tu_seed(850 + M + N + K + (size_t)batch);
    const size_t ldx = K + 3, ldw = K;
    float *x = rnd(M * ldx, -1, 1), *w = rnd((size_t)batch * N * ldw, -1, 1);
    float *b = rnd((size_t)batch * N, -1, 1);
    quantize(x, M * ldx, dt);
    quantize(w, (size_t)batch * N * ldw, dt);
    void *dx = to_dev(&p, x, M * ldx, dt), *dw = to_dev(&p, w, (size_t)batch * N * ldw, dt);
    float *db = to_dev(&p, b, (size_t)batch * N, TOLK_CU_F32);
    const size_t ny = (size_t)(batch - 1) * y_stride + M * ldy;
    float *dy = dalloc(&p, ny * sizeof(float));
    void *ws = dalloc(&p, 1 << 22);
    CU_ASSERT_EQUAL(tolk_cu_gemm_batched(g, dy, TOLK_CU_F32, (long long)ldy, (long long)y_stride,
                                         dx, dt, (long long)ldx, 0, dw, dt, (long long)ldw,
                                         (long long)(N * ldw), (long long)M, (long long)N,
                                         (long long)K, 1.0f, 0.0f, db, (long long)N, batch, 0, ws,
                                         1 << 22, NULL),
                    0);
    float *y = malloc(ny * sizeof *y);
    CU_ASSERT_FATAL(y != NULL);
    from_dev(y, dy, ny, TOLK_CU_F32);
    size_t bad = 0, stray = 0;
    for (int bb = 0; bb < batch; bb++)
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < ldy; n++) {
                const float got = y[(size_t)bb * y_stride + m * ldy + n];
                if (n >= N) {
                    stray += !isnan(got);
                    continue;
                }
                double r = b[(size_t)bb * N + n], a = 1;
                for (size_t k = 0; k < K; k++) {
                    const double t = (double)x[m * ldx + k] * w[((size_t)bb * N + n) * ldw + k];
                    r += t;
                    a += fabs(t);
                }
                bad += !(fabs(got - r) <= 1e-5 * a);
            }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(stray, 0);
    dpool_finish(&p);
    free(x), free(w), free(b), free(y);
}

#ifdef TOLK_CUEMU
/* The emulator's cuBLASLt: the next `count` heuristic queries answer status. */
void cuemu_lt_inject_heuristic(int status, int count);
#endif

/* The plan cache: products counted, a transient heuristic failure retried
 * (that call falls back, later ones use cuBLASLt), "not supported" cached
 * (every call falls back, counted); batched products. */
static void test_gemm_plans(void) {
    NEED_DEVICE();
    tolk_cu_gemm_ctx *g = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_cu_gemm_create(&g), 0);
    tolk_cu_gemm_counts c0, c1;
    tolk_cu_gemm_stats(g, &c0);
    CU_ASSERT_EQUAL(c0.products, 0);
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F32, 19, 40, 48, 48, 48, 40, 1, 0, 0);
    gemm_case(g, TOLK_CU_F16, TOLK_CU_F32, 19, 40, 48, 48, 48, 40, 1, 0, 0);
    tolk_cu_gemm_stats(g, &c1);
    CU_ASSERT_EQUAL(c1.products, 2);
    CU_ASSERT_EQUAL(c1.fallbacks, 0);
#ifdef TOLK_CUEMU
    /* transient: one fallback, then cuBLASLt */
    cuemu_lt_inject_heuristic(14 /* CUBLAS_STATUS_INTERNAL_ERROR */, 1);
    gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 21, 33, 17, 17, 17, 33, 1, 0, 0);
    tolk_cu_gemm_stats(g, &c1);
    CU_ASSERT_EQUAL(c1.fallbacks, 1);
    CU_ASSERT_EQUAL(c1.unsupported_shapes, 0);
    gemm_case(g, TOLK_CU_F32, TOLK_CU_F32, 21, 33, 17, 17, 17, 33, 1, 0, 0);
    tolk_cu_gemm_stats(g, &c1);
    CU_ASSERT_EQUAL(c1.fallbacks, 1);
    /* not supported: cached, every call falls back and is counted */
    cuemu_lt_inject_heuristic(15 /* CUBLAS_STATUS_NOT_SUPPORTED */, 1);
    for (int i = 0; i < 3; i++)
        gemm_case(g, TOLK_CU_BF16, TOLK_CU_F32, 23, 35, 29, 29, 29, 35, 0, 1, 0);
    tolk_cu_gemm_stats(g, &c1);
    CU_ASSERT_EQUAL(c1.fallbacks, 4);
    CU_ASSERT_EQUAL(c1.unsupported_shapes, 1);
    CU_ASSERT_EQUAL(c1.products, 7);
#endif
    /* batched: shared x, stacked weights, bias stride, gaps between outputs */
    gemm_batched_case(g, TOLK_CU_F16, 30, 24, 40, 4, 27, 30 * 27 + 50);
    gemm_batched_case(g, TOLK_CU_F32, 7, 16, 9, 3, 16, 7 * 16);
    gemm_batched_case(g, TOLK_CU_BF16, 12, 8, 33, 1, 8, 0);
    /* y_stride too small for the outputs */
    CU_ASSERT_EQUAL(tolk_cu_gemm_batched(g, (void *)256, TOLK_CU_F32, 8, 7, (void *)256,
                                         TOLK_CU_F32, 8, 0, (void *)256, TOLK_CU_F32, 8, 64, 1, 8,
                                         8, 1, 0, NULL, 0, 2, 0, NULL, 0, NULL),
                    TOLK_CU_EINVAL);
    tolk_cu_gemm_destroy(g);
}

/* ------------------------------------------------------------------------ */
/* The CUDA backend (src/cuda_backend.c) against the CPU backend            */
/* ------------------------------------------------------------------------ */

/* A host tensor of n random values in [lo, hi) stored as dt (F32/F16/BF16). */
typedef struct host_tensor {
    tolk_tensor t;
    void *data;
} host_tensor;

static void ht_init(host_tensor *h, const char *name, tolk_dtype dt, int64_t d0, int64_t d1,
                    int64_t d2, float lo, float hi) {
    memset(h, 0, sizeof *h);
    const int nd = d2 > 0 ? 3 : d1 > 0 ? 2 : 1;
    const size_t n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1) * (size_t)(d2 > 0 ? d2 : 1);
    float *f = rnd(n, lo, hi);
    h->data = malloc(n * tolk_dtype_size(dt));
    CU_ASSERT_FATAL(h->data != NULL);
    for (size_t i = 0; i < n; i++) {
        if (dt == TOLK_DT_F32)
            ((float *)h->data)[i] = f[i];
        else if (dt == TOLK_DT_F16)
            ((uint16_t *)h->data)[i] = tolk_f32_to_f16(f[i]);
        else
            ((uint16_t *)h->data)[i] = tolk_f32_to_bf16(f[i]);
    }
    free(f);
    h->t.name = (char *)name;
    h->t.dtype = dt;
    h->t.ndim = nd;
    h->t.shape[0] = d0;
    h->t.shape[1] = d1;
    h->t.shape[2] = d2;
    h->t.data = h->data;
}

/* Both backends, and a pair of buffers per tensor: host (CPU backend) and
 * device (CUDA backend). */
typedef struct bpair {
    tolk_ctx *ctx;
    tolk_backend *cpu, *gpu;
} bpair;

static float *gpu_from(bpair *b, const float *h, size_t n) {
    float *d = b->gpu->alloc(b->ctx, b->gpu, n * sizeof(float));
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_EQUAL_FATAL(b->gpu->upload(b->ctx, b->gpu, d, h, n * sizeof(float)), TOLK_OK);
    return d;
}

/* Compare the device result d [rows, ld] with the CPU result h. */
static void cmp_gpu(bpair *b, const char *what, const float *d, const float *h, size_t rows,
                    size_t cols, size_t ld, double atol, double rtol) {
    float *g = malloc(rows * ld * sizeof *g);
    double *r = dbl(rows * ld);
    CU_ASSERT_FATAL(g != NULL);
    CU_ASSERT_EQUAL(b->gpu->download(b->ctx, b->gpu, g, d, rows * ld * sizeof(float)), TOLK_OK);
    for (size_t i = 0; i < rows * ld; i++)
        r[i] = h[i];
    /* the gaps hold what both sides had before (equal up to earlier ops'
     * rounding differences): nothing may have been written there */
    size_t gap_bad = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = cols; c < ld; c++)
            gap_bad += !(fabs(g[i * ld + c] - h[i * ld + c]) <= 1e-3 * (1 + fabs(h[i * ld + c])));
    CU_ASSERT_EQUAL(gap_bad, 0);
    check2d(what, g, ld, r, ld, rows, cols, atol, rtol, -1);
    free(g);
    free(r);
}

/* float16 [n] of host floats (round to nearest even) and its device copy. */
static uint16_t *half_of(const float *f, size_t n) {
    uint16_t *h = malloc(n * sizeof *h);
    CU_ASSERT_FATAL(h != NULL);
    for (size_t i = 0; i < n; i++)
        h[i] = tolk_f32_to_f16(f[i]);
    return h;
}
static uint16_t *gpu_from_h(bpair *b, const uint16_t *h, size_t n) {
    uint16_t *d = b->gpu->alloc(b->ctx, b->gpu, n * sizeof *d);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_EQUAL_FATAL(b->gpu->upload(b->ctx, b->gpu, d, h, n * sizeof *d), TOLK_OK);
    return d;
}

/* Compare a float16 device result d [rows, ld] with the CPU's float16 h,
 * both widened: each is a float32 result rounded once, so they may differ
 * by the float32 difference plus one unit in the last place (2^-11
 * relative each side). */
static void cmp_gpu_h(bpair *b, const char *what, const uint16_t *d, const uint16_t *h, size_t rows,
                      size_t cols, size_t ld, double atol, double rtol) {
    uint16_t *g16 = malloc(rows * ld * sizeof *g16);
    float *g = malloc(rows * ld * sizeof *g);
    double *r = dbl(rows * ld);
    CU_ASSERT_FATAL(g16 && g);
    CU_ASSERT_EQUAL(b->gpu->download(b->ctx, b->gpu, g16, d, rows * ld * sizeof *g16), TOLK_OK);
    for (size_t i = 0; i < rows * ld; i++) {
        g[i] = tolk_f16_to_f32(g16[i]);
        r[i] = tolk_f16_to_f32(h[i]);
    }
    check2d(what, g, ld, r, ld, rows, cols, atol, rtol + 1.0 / 1024, -1);
    free(g16), free(g), free(r);
}

/* The half-activation forms (backend.h half_acts) against the CPU twins:
 * linear with float16 x (fresh and accumulating), with float16 y (and
 * its float16 bias, with and without the GELU epilogue); layernorm_h;
 * bias_gelu_h on a strided float16 matrix.
 * wc / wg: the
 * same prepared [N, K] weight on both sides, bc / bg its bias. */
static void backend_half_run(bpair *b, const tolk_bweight *wc, const tolk_bweight *wg,
                             const float *bc, const float *bg, double lin_tol) {
    const size_t M = 37, N = (size_t)wc->rows, K = (size_t)wc->cols, ldx = K + 6, ldy = N + 2;
    float *xf = rnd(M * ldx, -1, 1), *y = rnd(M * ldy, -1, 1);
    uint16_t *xh = half_of(xf, M * ldx), *dxh = gpu_from_h(b, xh, M * ldx);
    float *dy = gpu_from(b, y, M * ldy);
    for (int acc = 0; acc < 2; acc++) {
        const int fl = TOLK_LINEAR_X_F16 | (acc ? TOLK_LINEAR_ACCUMULATE : 0);
        CU_ASSERT_EQUAL(b->cpu->linear(b->ctx, b->cpu, y, ldy, xh, ldx, M, wc, bc, fl), TOLK_OK);
        CU_ASSERT_EQUAL(b->gpu->linear(b->ctx, b->gpu, dy, ldy, dxh, ldx, M, wg, bg, fl), TOLK_OK);
        cmp_gpu(b, acc ? "linear x16 accumulate" : "linear x16", dy, y, M, N, ldy, lin_tol * 10,
                lin_tol);
    }
    /* float16 y from float16 x and from float32 x; no bias, no accumulate */
    uint16_t *yh = half_of(y, M * ldy), *dyh = gpu_from_h(b, yh, M * ldy);
    float *dxf = gpu_from(b, xf, M * ldx);
    for (int x16 = 0; x16 < 2; x16++) {
        const int fl = TOLK_LINEAR_Y_F16 | (x16 ? TOLK_LINEAR_X_F16 : 0);
        const void *hx = x16 ? (const void *)xh : (const void *)xf;
        const void *gx = x16 ? (const void *)dxh : (const void *)dxf;
        CU_ASSERT_EQUAL(b->cpu->linear(b->ctx, b->cpu, yh, ldy, hx, ldx, M, wc, NULL, fl), TOLK_OK);
        CU_ASSERT_EQUAL(b->gpu->linear(b->ctx, b->gpu, dyh, ldy, gx, ldx, M, wg, NULL, fl),
                        TOLK_OK);
        cmp_gpu_h(b, x16 ? "linear x16 y16" : "linear y16", dyh, yh, M, N, ldy, lin_tol * 10,
                  lin_tol);
    }
    /* float16 y with a float16 bias, and with the GELU epilogue (the half
     * modes' fc1: cuBLASLt's GELU_BIAS epilogue, or the float32 product
     * and a widened bias when the weight is not float16) */
    uint16_t *bh = half_of(bc, N), *dbh = gpu_from_h(b, bh, N);
    for (int gelu = 0; gelu < 2; gelu++) {
        const int fl = TOLK_LINEAR_Y_F16 | TOLK_LINEAR_X_F16 | (gelu ? TOLK_LINEAR_GELU : 0);
        CU_ASSERT_EQUAL(b->cpu->linear(b->ctx, b->cpu, yh, ldy, xh, ldx, M, wc, bh, fl), TOLK_OK);
        CU_ASSERT_EQUAL(b->gpu->linear(b->ctx, b->gpu, dyh, ldy, dxh, ldx, M, wg, dbh, fl),
                        TOLK_OK);
        cmp_gpu_h(b, gelu ? "linear y16 bias gelu" : "linear y16 bias", dyh, yh, M, N, ldy,
                  lin_tol * 10, lin_tol);
    }
    /* a float16 output takes no accumulation; GELU only with a float16 output */
    CU_ASSERT_EQUAL(b->gpu->linear(b->ctx, b->gpu, dyh, ldy, dxh, ldx, M, wg, dbh,
                                   TOLK_LINEAR_Y_F16 | TOLK_LINEAR_ACCUMULATE),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(b->gpu->linear(b->ctx, b->gpu, dy, ldy, dxh, ldx, M, wg, bg,
                                   TOLK_LINEAR_X_F16 | TOLK_LINEAR_GELU),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(b->cpu->linear(b->ctx, b->cpu, yh, ldy, xh, ldx, M, wc, NULL,
                                   TOLK_LINEAR_Y_F16 | TOLK_LINEAR_ACCUMULATE),
                    TOLK_ERR_INVALID_ARG);

    /* layernorm_h [M, K] from float32 */
    float *g = rnd(K, 0.5f, 1.5f), *be_ = rnd(K, -1, 1), *a = rnd(M * K, -3, 3);
    float *dg = gpu_from(b, g, K), *dbe = gpu_from(b, be_, K), *da = gpu_from(b, a, M * K);
    uint16_t *lh = half_of(a, M * K), *dlh = gpu_from_h(b, lh, M * K);
    CU_ASSERT_EQUAL(b->cpu->layernorm_h(b->ctx, b->cpu, lh, a, M, K, g, be_, 1e-5f), TOLK_OK);
    CU_ASSERT_EQUAL(b->gpu->layernorm_h(b->ctx, b->gpu, dlh, da, M, K, dg, dbe, 1e-5f), TOLK_OK);
    cmp_gpu_h(b, "layernorm_h", dlh, lh, M, K, K, 1e-5, 1e-5);
    /* bias_gelu_h in place on [M, N - 3] of yh (the exact GELU of the half modes) */
    float *gb = rnd(N, -1, 1), *dgb = gpu_from(b, gb, N);
    CU_ASSERT_EQUAL(b->gpu->upload(b->ctx, b->gpu, dyh, yh, M * ldy * sizeof *yh), TOLK_OK);
    CU_ASSERT_EQUAL(b->cpu->bias_gelu_h(b->ctx, b->cpu, yh, ldy, M, N - 3, gb), TOLK_OK);
    CU_ASSERT_EQUAL(b->gpu->bias_gelu_h(b->ctx, b->gpu, dyh, ldy, M, N - 3, dgb), TOLK_OK);
    cmp_gpu_h(b, "bias_gelu_h", dyh, yh, M, N, ldy, 1e-6, 1e-6); /* untouched columns equal too */

    void *dev[] = {dxh, dy, dyh, dxf, dg, dbe, da, dlh, dbh, dgb};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        b->gpu->free(b->gpu, dev[i]);
    free(xf), free(y), free(xh), free(yh), free(g), free(be_), free(a), free(lh), free(bh);
    free(gb);
}

static void backend_run(int keep_f16) {
    bpair b = {0};
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &b.ctx), TOLK_OK);
    tolk_backend_params bp = {.keep_f16 = keep_f16};
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(b.ctx, &bp, &b.cpu), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cuda_new(b.ctx, &bp, &b.gpu), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(b.gpu->name, "cuda");
    CU_ASSERT_EQUAL(b.gpu->half_acts, keep_f16); /* the half modes feed products float16 */
    CU_ASSERT_EQUAL(b.cpu->half_acts, 0);
    tu_seed(1400 + (uint64_t)keep_f16);
    /* half weights: the GPU rounds x to half too (tensor cores), the CPU
     * does not: bound relative to sum |x w| */
    const double lin_tol = keep_f16 ? 2e-3 : 2e-5;
    const size_t d = 192, M = 80, H = 3, dh = 64; /* H * dh == d */

    /* fused qkv from three parts, plus a bias vector with an absent part */
    host_tensor q, k, v, qb, vb;
    ht_init(&q, "q", TOLK_DT_F16, (int64_t)d, (int64_t)d, 0, -0.2f, 0.2f);
    ht_init(&k, "k", TOLK_DT_F16, (int64_t)d, (int64_t)d, 0, -0.2f, 0.2f);
    ht_init(&v, "v", TOLK_DT_F16, (int64_t)d, (int64_t)d, 0, -0.2f, 0.2f);
    ht_init(&qb, "qb", TOLK_DT_F32, (int64_t)d, 0, 0, -1, 1);
    ht_init(&vb, "vb", TOLK_DT_BF16, (int64_t)d, 0, 0, -1, 1);
    const tolk_tensor *parts[3] = {&q.t, &k.t, &v.t};
    const tolk_tensor *bparts[3] = {&qb.t, NULL, &vb.t};
    const int64_t zl[3] = {0, (int64_t)d, 0};
    tolk_bweight wc, wg;
    float *bc = NULL, *bg = NULL;
    CU_ASSERT_EQUAL_FATAL(b.cpu->weight_prepare(b.ctx, b.cpu, parts, 3, &wc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.gpu->weight_prepare(b.ctx, b.gpu, parts, 3, &wg), TOLK_OK);
    CU_ASSERT_EQUAL(wg.dtype, keep_f16 ? TOLK_DT_F16 : TOLK_DT_F32);
    CU_ASSERT_EQUAL(wg.rows, 3 * (int64_t)d);
    CU_ASSERT_EQUAL(wg.cols, (int64_t)d);
    CU_ASSERT_EQUAL_FATAL(b.cpu->vector_prepare(b.ctx, b.cpu, bparts, zl, 3, &bc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.gpu->vector_prepare(b.ctx, b.gpu, bparts, zl, 3, &bg), TOLK_OK);
    cmp_gpu(&b, "vector_prepare", bg, bc, 1, 3 * d, 3 * d, 0, 0);

    /* linear (fresh and accumulate), strided x */
    const size_t ldx = d + 8, ldy = 3 * d + 4;
    float *x = rnd(M * ldx, -1, 1), *y = rnd(M * ldy, -1, 1);
    float *dx = gpu_from(&b, x, M * ldx), *dy = gpu_from(&b, y, M * ldy);
    for (int acc = 0; acc < 2; acc++) {
        CU_ASSERT_EQUAL(b.cpu->linear(b.ctx, b.cpu, y, ldy, x, ldx, M, &wc, bc, acc), TOLK_OK);
        CU_ASSERT_EQUAL(b.gpu->linear(b.ctx, b.gpu, dy, ldy, dx, ldx, M, &wg, bg, acc), TOLK_OK);
        cmp_gpu(&b, acc ? "linear accumulate" : "linear", dy, y, M, 3 * d, ldy, lin_tol * 10,
                lin_tol);
    }

    backend_half_run(&b, &wc, &wg, bc, bg, lin_tol);

    /* linear_batched (GPU) against the CPU's linear per batch: the fused
     * qkv weight seen as 3 batches of [d, d], outputs at a stride */
    if (b.gpu->linear_batched) {
        const size_t ys = M * d + 64, ny = 3 * ys;
        float *yb = rnd(ny, -1, 1), *dyb = gpu_from(&b, yb, ny);
        uint16_t *ybh = half_of(yb, ny), *dybh = gpu_from_h(&b, ybh, ny); /* float16 outputs */
        for (int bb = 0; bb < 3; bb++) {
            tolk_bweight wpart = wc;
            wpart.rows = (int64_t)d;
            wpart.data = (char *)wc.data + (size_t)bb * d * d * tolk_dtype_size(wc.dtype);
            wpart.packed = NULL, wpart.packed_bytes = 0, wpart.owned = 0;
            CU_ASSERT_EQUAL(b.cpu->linear(b.ctx, b.cpu, yb + (size_t)bb * ys, d, x, ldx, M, &wpart,
                                          bc + (size_t)bb * d, 0),
                            TOLK_OK);
        }
        CU_ASSERT_EQUAL(b.gpu->linear_batched(b.ctx, b.gpu, dyb, d, ys, dx, ldx, M, &wg, 3, bg, 0),
                        TOLK_OK);
        cmp_gpu(&b, "linear_batched", dyb, yb, ny / 64, 64, 64, lin_tol * 10, lin_tol);
        /* float16 outputs (the float16 cross-attention cache): half weights
         * only, a float16 bias added in the product's epilogue */
        uint16_t *bh3 = half_of(bc, 3 * d), *dbh3 = gpu_from_h(&b, bh3, 3 * d);
        const tolk_status hst = b.gpu->linear_batched(b.ctx, b.gpu, dybh, d, ys, dx, ldx, M, &wg, 3,
                                                      dbh3, TOLK_LINEAR_Y_F16);
        if (keep_f16) {
            CU_ASSERT_EQUAL(hst, TOLK_OK);
            for (size_t i = 0; i < ny; i++)
                ybh[i] = tolk_f32_to_f16(yb[i]);
            cmp_gpu_h(&b, "linear_batched y16", dybh, ybh, ny / 64, 64, 64, lin_tol * 10, lin_tol);
        } else {
            CU_ASSERT_EQUAL(hst, TOLK_ERR_UNSUPPORTED); /* float32 weights */
        }
        b.gpu->free(b.gpu, dyb);
        b.gpu->free(b.gpu, dybh);
        b.gpu->free(b.gpu, dbh3);
        free(yb), free(ybh), free(bh3);
        tolk_backend_stats bs = {0};
        b.gpu->stats(b.gpu, &bs);
        CU_ASSERT(bs.products >= 3);
        CU_ASSERT_EQUAL(bs.fallbacks, 0);
    }

    /* attention over the product (the CPU's, on both sides): flash-sized,
     * causal decoder rows, cross-attention-like rows; rows 77.. untouched */
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dy, y, M * ldy * sizeof(float)), TOLK_OK);
    const size_t ldo = d + 3;
    float *o = rnd(M * ldo, -1, 1), *dout = gpu_from(&b, o, M * ldo);
    tolk_attn_seq sc[3] = {
        {y, y + d, y + 2 * d, o, 70, 70, 0, 0}, /* flash kernel (>= 64 queries) */
        {y + 70 * ldy, y + d, y + 2 * d, o + 70 * ldo, 4, 25, 1, 21},
        {y + 74 * ldy, y + 5 * ldy + d, y + 5 * ldy + 2 * d, o + 74 * ldo, 3, 32, 0, 0}};
    tolk_attn_seq sg[3];
    for (int i = 0; i < 3; i++) {
        sg[i] = sc[i];
        sg[i].q = dy + (sc[i].q - y);
        sg[i].k = dy + (sc[i].k - y);
        sg[i].v = dy + (sc[i].v - y);
        sg[i].out = dout + (sc[i].out - o);
    }
    const float scale = 1.0f / sqrtf((float)dh);
    CU_ASSERT_EQUAL(b.cpu->attention(b.ctx, b.cpu, sc, 3, (int)H, (int)dh, ldy, ldy, ldo, scale, 0),
                    TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->attention(b.ctx, b.gpu, sg, 3, (int)H, (int)dh, ldy, ldy, ldo, scale, 0),
                    TOLK_OK);
    /* with half weights the backend's many-query attention runs on tensor
     * cores; q, k, v rounded to f16 here where the scores are large (random
     * inputs): a loose bound, the kernel itself is held to 2e-3 by
     * test_cuda_attention on inputs of the network's scale */
    cmp_gpu(&b, "attention", dout, o, M, d, ldo, keep_f16 ? 1e-2 : 2e-5, keep_f16 ? 1e-2 : 1e-4);
    CU_ASSERT_EQUAL(b.gpu->attention(b.ctx, b.gpu, sg, 3, 4, 48, ldy, ldy, ldo, scale, 0),
                    TOLK_ERR_UNSUPPORTED);
    /* float16 output (half activations): written by the kernels (tensor-core
     * arithmetic) or through float32 and a convert (the parity mode's); the
     * CPU twin rounds its float32 result */
    {
        uint16_t *oh = half_of(o, M * ldo), *doh = gpu_from_h(&b, oh, M * ldo);
        tolk_attn_seq hc[3], hg[3];
        for (int i = 0; i < 3; i++) {
            hc[i] = sc[i], hg[i] = sg[i];
            hc[i].out = (float *)(void *)(oh + (sc[i].out - o));
            hg[i].out = (float *)(void *)(doh + (sc[i].out - o));
        }
        CU_ASSERT_EQUAL(b.cpu->attention(b.ctx, b.cpu, hc, 3, (int)H, (int)dh, ldy, ldy, ldo, scale,
                                         TOLK_ATTN_OUT_F16),
                        TOLK_OK);
        CU_ASSERT_EQUAL(b.gpu->attention(b.ctx, b.gpu, hg, 3, (int)H, (int)dh, ldy, ldy, ldo, scale,
                                         TOLK_ATTN_OUT_F16),
                        TOLK_OK);
        cmp_gpu_h(&b, "attention out16", doh, oh, M, d, ldo, keep_f16 ? 1e-2 : 2e-5,
                  keep_f16 ? 1e-2 : 1e-4);
        CU_ASSERT_EQUAL(
            b.gpu->attention(b.ctx, b.gpu, hg, 3, (int)H, (int)dh, ldy, ldy, ldo, scale, 4),
            TOLK_ERR_INVALID_ARG);
        /* float16 q, k, v too (the encoder's QKV product writing float16):
         * every arithmetic reads them directly (tensor cores: cp.async);
         * the CPU twin widens them */
        uint16_t *yh = half_of(y, M * ldy), *dyh = gpu_from_h(&b, yh, M * ldy);
        for (int i = 0; i < 3; i++) {
            hc[i].q = (const float *)(const void *)(yh + (sc[i].q - y));
            hc[i].k = (const float *)(const void *)(yh + (sc[i].k - y));
            hc[i].v = (const float *)(const void *)(yh + (sc[i].v - y));
            hg[i].q = (const float *)(const void *)(dyh + (sc[i].q - y));
            hg[i].k = (const float *)(const void *)(dyh + (sc[i].k - y));
            hg[i].v = (const float *)(const void *)(dyh + (sc[i].v - y));
        }
        const int qf = TOLK_ATTN_OUT_F16 | TOLK_ATTN_QKV_F16;
        CU_ASSERT_EQUAL(
            b.cpu->attention(b.ctx, b.cpu, hc, 3, (int)H, (int)dh, ldy, ldy, ldo, scale, qf),
            TOLK_OK);
        CU_ASSERT_EQUAL(
            b.gpu->attention(b.ctx, b.gpu, hg, 3, (int)H, (int)dh, ldy, ldy, ldo, scale, qf),
            TOLK_OK);
        cmp_gpu_h(&b, "attention qkv16 out16", doh, oh, M, d, ldo, keep_f16 ? 1e-2 : 2e-5,
                  keep_f16 ? 1e-2 : 1e-4);
        CU_ASSERT_EQUAL(b.gpu->attention(b.ctx, b.gpu, hg, 3, (int)H, (int)dh, ldy, ldy, ldo, scale,
                                         TOLK_ATTN_QKV_F16),
                        TOLK_ERR_INVALID_ARG); /* float16 inputs need a float16 output */
        b.gpu->free(b.gpu, dyh);
        b.gpu->free(b.gpu, doh);
        free(oh), free(yh);
    }

    /* layernorm, bias_gelu, add on contiguous [M, d] */
    float *a = rnd(M * d, -3, 3), *a2 = rnd(M * d, -3, 3), *z = malloc(M * d * sizeof *z);
    float *g = rnd(d, 0.5f, 1.5f), *be_ = rnd(d, -1, 1);
    float *da = gpu_from(&b, a, M * d), *da2 = gpu_from(&b, a2, M * d);
    float *dz = gpu_from(&b, a, M * d), *dg = gpu_from(&b, g, d), *dbe = gpu_from(&b, be_, d);
    CU_ASSERT_EQUAL(b.cpu->layernorm(b.ctx, b.cpu, z, a, M, d, g, be_, 1e-5f), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->layernorm(b.ctx, b.gpu, dz, da, M, d, dg, dbe, 1e-5f), TOLK_OK);
    cmp_gpu(&b, "backend layernorm", dz, z, M, d, d, 1e-5, 1e-5);
    CU_ASSERT_EQUAL(b.cpu->add(b.ctx, b.cpu, z, a, a2, M * d), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->add(b.ctx, b.gpu, dz, da, da2, M * d), TOLK_OK);
    cmp_gpu(&b, "backend add", dz, z, 1, M * d, M * d, 0, 0);
    CU_ASSERT_EQUAL(b.cpu->bias_gelu(b.ctx, b.cpu, z, 64, M * d / 64, 61, be_), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->bias_gelu(b.ctx, b.gpu, dz, 64, M * d / 64, 61, dbe), TOLK_OK);
    cmp_gpu(&b, "backend bias_gelu", dz, z, M * d / 64, 61, 64, 1e-6, 1e-6);
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dz, z, M * d * sizeof(float)), TOLK_OK);
    CU_ASSERT_EQUAL(b.cpu->bias_relu(b.ctx, b.cpu, z, 64, M * d / 64, 61, be_), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->bias_relu(b.ctx, b.gpu, dz, 64, M * d / 64, 61, dbe), TOLK_OK);
    cmp_gpu(&b, "backend bias_relu", dz, z, M * d / 64, 61, 64, 0, 0);
    {
        /* ssru: xf = a viewed as [M / 2, 2d'] rows, state from a2 */
        const size_t sd = d / 2, sm = M;
        float *cs = malloc(sm * sd * sizeof *cs), *os = malloc(sm * sd * sizeof *os);
        CU_ASSERT_FATAL(cs && os);
        memcpy(cs, a2, sm * sd * sizeof *cs);
        float *dcs = gpu_from(&b, cs, sm * sd), *dos = gpu_from(&b, cs, sm * sd);
        CU_ASSERT_EQUAL(b.cpu->ssru(b.ctx, b.cpu, os, cs, a, d, sm, sd), TOLK_OK);
        CU_ASSERT_EQUAL(b.gpu->ssru(b.ctx, b.gpu, dos, dcs, da, d, sm, sd), TOLK_OK);
        cmp_gpu(&b, "backend ssru state", dcs, cs, sm, sd, sd, 1e-6, 1e-5);
        cmp_gpu(&b, "backend ssru out", dos, os, sm, sd, sd, 1e-6, 1e-5);
        b.gpu->free(b.gpu, dcs);
        b.gpu->free(b.gpu, dos);
        free(cs), free(os);
    }
    CU_ASSERT_EQUAL(b.cpu->softmax(b.ctx, b.cpu, z, d, M, d - 5), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->softmax(b.ctx, b.gpu, dz, d, M, d - 5), TOLK_OK);
    cmp_gpu(&b, "backend softmax", dz, z, M, d - 5, d, 1e-8, 1e-5);

    /* copy_rows: a column block between different strides (no indices), then
     * a gather + scatter with a skipped row (indices in device memory) */
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dz, z, M * d * sizeof(float)), TOLK_OK);
    CU_ASSERT_EQUAL(b.cpu->copy_rows(b.ctx, b.cpu, z, 20, NULL, a + 3, d, NULL, 9, 17), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->copy_rows(b.ctx, b.gpu, dz, 20, NULL, da + 3, d, NULL, 9, 17), TOLK_OK);
    cmp_gpu(&b, "copy_rows", dz, z, 9, 17, 20, 0, 0);
    const int cr_dst[4] = {7, 0, -1, 3}, cr_src[4] = {2, 8, 5, 0};
    int *dcr = b.gpu->alloc(b.ctx, b.gpu, sizeof cr_dst + sizeof cr_src);
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dcr, cr_dst, sizeof cr_dst), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dcr + 4, cr_src, sizeof cr_src), TOLK_OK);
    CU_ASSERT_EQUAL(b.cpu->copy_rows(b.ctx, b.cpu, z, 20, cr_dst, a, d, cr_src, 4, 19), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->copy_rows(b.ctx, b.gpu, dz, 20, dcr, da, d, dcr + 4, 4, 19), TOLK_OK);
    cmp_gpu(&b, "copy_rows indexed", dz, z, 9, 20, 20, 0, 0);

    /* conv1d: both layouts, both strides; W [29, 13, 3] f16 */
    host_tensor cw, cb;
    ht_init(&cw, "conv.weight", TOLK_DT_F16, 29, 13, 3, -0.5f, 0.5f);
    ht_init(&cb, "conv.bias", TOLK_DT_F16, 29, 0, 0, -1, 1);
    const tolk_tensor *cwp[1] = {&cw.t}, *cbp[1] = {&cb.t};
    tolk_bweight cwc, cwg;
    float *cbc, *cbg;
    CU_ASSERT_EQUAL_FATAL(b.cpu->weight_prepare(b.ctx, b.cpu, cwp, 1, &cwc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.gpu->weight_prepare(b.ctx, b.gpu, cwp, 1, &cwg), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.cpu->vector_prepare(b.ctx, b.cpu, cbp, NULL, 1, &cbc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.gpu->vector_prepare(b.ctx, b.gpu, cbp, NULL, 1, &cbg), TOLK_OK);
    float *cx = rnd(13 * 101, -1, 1), *dcx = gpu_from(&b, cx, 13 * 101);
    float *cy = rnd(101 * 29, 0, 1), *dcy = gpu_from(&b, cy, 101 * 29);
    for (int layout = 0; layout < 2; layout++)
        for (int stride = 1; stride <= 2; stride++) {
            const size_t To = (101 - 1) / (size_t)stride + 1;
            CU_ASSERT_EQUAL(b.cpu->conv1d(b.ctx, b.cpu, cy, cx, (tolk_conv_layout)layout, 13, 101,
                                          stride, &cwc, cbc),
                            TOLK_OK);
            CU_ASSERT_EQUAL(b.gpu->conv1d(b.ctx, b.gpu, dcy, dcx, (tolk_conv_layout)layout, 13, 101,
                                          stride, &cwg, cbg),
                            TOLK_OK);
            cmp_gpu(&b, "backend conv1d", dcy, cy, To, 29, 29, lin_tol * 10, lin_tol);
        }

    /* embed_rows (ids and positions in device memory) + logits with a tied
     * f16 embedding [1000, 64] */
    host_tensor te;
    ht_init(&te, "tok", TOLK_DT_F16, 1000, 64, 0, -1, 1);
    const tolk_tensor *tep[1] = {&te.t};
    tolk_bweight tc, tg;
    CU_ASSERT_EQUAL_FATAL(b.cpu->weight_prepare(b.ctx, b.cpu, tep, 1, &tc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(b.gpu->weight_prepare(b.ctx, b.gpu, tep, 1, &tg), TOLK_OK);
    float *pos = rnd(448 * 64, -1, 1), *dpos = gpu_from(&b, pos, 448 * 64);
    const int ids[5] = {0, 999, 50, 7, 50}, positions[5] = {0, 1, 2, 447, 100};
    float *e = malloc(5 * 64 * sizeof *e), *de = gpu_from(&b, pos, 5 * 64);
    int *dids = b.gpu->alloc(b.ctx, b.gpu, sizeof ids + sizeof positions);
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dids, ids, sizeof ids), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->upload(b.ctx, b.gpu, dids + 5, positions, sizeof positions), TOLK_OK);
    CU_ASSERT_EQUAL(b.cpu->embed_rows(b.ctx, b.cpu, e, &tc, ids, positions, 5, pos, 448), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->embed_rows(b.ctx, b.gpu, de, &tg, dids, dids + 5, 5, dpos, 448),
                    TOLK_OK);
    cmp_gpu(&b, "backend embed_rows", de, e, 5, 64, 64, 0, 0);
    float *lg = malloc(5 * 1000 * sizeof *lg), *dlg = b.gpu->alloc(b.ctx, b.gpu, 5 * 1000 * 4);
    CU_ASSERT_EQUAL(b.cpu->logits(b.ctx, b.cpu, lg, e, 5, &tc), TOLK_OK);
    CU_ASSERT_EQUAL(b.gpu->logits(b.ctx, b.gpu, dlg, de, 5, &tg), TOLK_OK);
    cmp_gpu(&b, "backend logits", dlg, lg, 5, 1000, 1000, lin_tol * 30, lin_tol);

    /* release */
    b.cpu->weight_free(b.cpu, &wc);
    b.gpu->weight_free(b.gpu, &wg);
    b.cpu->weight_free(b.cpu, &cwc);
    b.gpu->weight_free(b.gpu, &cwg);
    b.cpu->weight_free(b.cpu, &tc);
    b.gpu->weight_free(b.gpu, &tg);
    b.cpu->free(b.cpu, bc);
    b.cpu->free(b.cpu, cbc);
    float *dev_bufs[] = {bg, cbg, dx, dy, dout, da, da2, dz, dg, dbe, dcx, dcy, dpos, de, dlg};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++)
        b.gpu->free(b.gpu, dev_bufs[i]);
    b.gpu->free(b.gpu, dcr);
    b.gpu->free(b.gpu, dids);
    host_tensor *hts[] = {&q, &k, &v, &qb, &vb, &cw, &cb, &te};
    for (size_t i = 0; i < sizeof hts / sizeof hts[0]; i++)
        free(hts[i]->data);
    free(x), free(y), free(o), free(a), free(a2), free(z), free(g), free(be_);
    free(cx), free(cy), free(pos), free(e), free(lg);
    b.gpu->destroy(b.gpu);
    b.cpu->destroy(b.cpu);
    tolk_ctx_free(b.ctx);
}

static void test_backend(void) {
    if (!tolk_cuda_available()) {
        tolk_backend *be = NULL;
        CU_ASSERT_EQUAL(tolk_backend_cuda_new(NULL, NULL, &be), TOLK_ERR_NO_DEVICE);
        CU_ASSERT_PTR_NULL(be);
        tu_skip("no CUDA device");
        return;
    }
    backend_run(1);
    backend_run(0);
}

/* ------------------------------------------------------------------------ */
/* Model level: the network (net.c) on the CUDA backend against the CPU    */
/* ------------------------------------------------------------------------ */

/* max |a - b| / max |b| over n floats. */
static double rel_to_max(const float *a, const float *b, size_t n) {
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(b[i]));
        e = fmax(e, isnan(a[i]) ? INFINITY : fabs((double)a[i] - b[i]));
    }
    return m > 0 ? e / m : e;
}

static int argmax_f(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int)b;
}

/* Encode one random mel window and run two decoder steps (a 3-token prompt,
 * then one token) on both devices; the encoder output and the logits must
 * agree within tol relative to their largest magnitude, and the argmax
 * tokens must be equal or a near-tie. The decoder of both sides reads the CPU encoder
 * output, so its error is its own. */
static void net_parity(const char *dir, int keep_f16, int gelu_tanh, double tol) {
    tolk_ctx *cc = NULL, *gc = NULL;
    tolk_ctx_params p = tolk_ctx_default_params();
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &cc), TOLK_OK);
    p.device = TOLK_DEVICE_CUDA;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&p, &gc), TOLK_OK);
    tolk_weights *w = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_weights_load(cc, dir, 1, &w), TOLK_OK);
    tolk_net_params np = {.keep_f16 = keep_f16, .gelu_tanh = gelu_tanh};
    tolk_net *cn = NULL, *gn = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_net_new_ex(cc, w, &np, &cn), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_net_new_ex(gc, w, &np, &gn), TOLK_OK);
    const tolk_hparams *hp = tolk_net_hparams(cn);
    const size_t nm = (size_t)hp->n_mels * 3000, ne = (size_t)hp->n_audio_ctx * hp->n_audio_state;
    tu_seed(1500);
    float *mel = rnd(nm, -0.6f, 1.4f);
    float *ec = malloc(ne * sizeof *ec), *eg = malloc(ne * sizeof *eg);
    CU_ASSERT_FATAL(ec && eg);
    CU_ASSERT_EQUAL_FATAL(tolk_net_encode(cc, cn, mel, 1, ec), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_net_encode(gc, gn, mel, 1, eg), TOLK_OK);
    const double enc_err = rel_to_max(eg, ec, ne);
    printf("\n    keep_f16 %d%s: encoder max error %.3g of max |x|", keep_f16,
           gelu_tanh ? " gelu tanh" : "", enc_err);
    CU_ASSERT(enc_err <= tol);

    tolk_kvcache *kc = NULL, *kg = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_new(cc, cn, 2, 16, 1, &kc), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_new(gc, gn, 2, 16, 1, &kg), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_set_window(cc, cn, kc, 0, ec), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_set_window(gc, gn, kg, 0, ec), TOLK_OK);
    const size_t V = (size_t)hp->n_vocab;
    float *lc = malloc(2 * V * sizeof *lc), *lg = malloc(2 * V * sizeof *lg);
    CU_ASSERT_FATAL(lc && lg);
    const int prompt[3] = {hp->n_vocab > 51864 ? 50258 : 50257, 50362 % hp->n_vocab, 440};
    const int next[2] = {1770, 13};
    for (int step = 0; step < 2; step++) {
        const int seqs[2] = {0, 1};
        const int *toks[2] = {step ? &next[0] : prompt, step ? &next[1] : prompt};
        const int nt[2] = {step ? 1 : 3, step ? 1 : 2};
        if (step == 0)
            for (int s = 0; s < 2; s++) {
                tolk_kvcache_reset(NULL, kc, s, 0);
                tolk_kvcache_reset(NULL, kg, s, 0);
            }
        CU_ASSERT_EQUAL_FATAL(tolk_net_decode(cc, cn, kc, seqs, 2, toks, nt, lc), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_net_decode(gc, gn, kg, seqs, 2, toks, nt, lg), TOLK_OK);
        for (int s = 0; s < 2; s++) {
            const double e = rel_to_max(lg + (size_t)s * V, lc + (size_t)s * V, V);
            printf("; step %d seq %d logits %.3g", step, s, e);
            CU_ASSERT(e <= tol);
            /* the GPU's best token is the CPU's, or a near-tie within tol */
            const float *c = lc + (size_t)s * V;
            const int ag = argmax_f(lg + (size_t)s * V, V), ac = argmax_f(c, V);
            double mx = 0;
            for (size_t j = 0; j < V; j++)
                mx = fmax(mx, fabs(c[j]));
            CU_ASSERT(ag == ac || c[ac] - c[ag] <= tol * mx);
        }
    }
    printf("\n");
    tolk_kvcache_free(kc);
    tolk_kvcache_free(kg);
    tolk_net_free(cn);
    tolk_net_free(gn);
    tolk_weights_free(w);
    tolk_ctx_free(cc);
    tolk_ctx_free(gc);
    free(mel), free(ec), free(eg), free(lc), free(lg);
}

/* In FP16 mode (keep_f16) float32 and int8 weights are rounded to half
 * when prepared (float16, or bfloat16 when a value would overflow it) and
 * multiply on tensor cores; the float32 mode keeps float32. The products
 * agree with the CPU's float32 products within the half rounding. */
static void test_weight_half(void) {
    NEED_DEVICE();
    for (int keep = 0; keep < 2; keep++) {
        bpair b = {0};
        CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &b.ctx), TOLK_OK);
        tolk_backend_params bp = {.keep_f16 = keep};
        CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(b.ctx, &bp, &b.cpu), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_backend_cuda_new(b.ctx, &bp, &b.gpu), TOLK_OK);
        tu_seed(1500 + (uint64_t)keep);
        const size_t N = 48, K = 64, M = 9;
        host_tensor f32, big, i8;
        ht_init(&f32, "w_f32", TOLK_DT_F32, (int64_t)N, (int64_t)K, 0, -0.2f, 0.2f);
        ht_init(&big, "w_big", TOLK_DT_F32, (int64_t)N, (int64_t)K, 0, -0.2f, 0.2f);
        ((float *)big.data)[5] = 1e5f; /* beyond float16 */
        /* int8 with per-row scales: y = q / scale */
        ht_init(&i8, "w_i8", TOLK_DT_F32, (int64_t)N, (int64_t)K, 0, 0, 0);
        int8_t *q = malloc(N * K);
        float *scale = malloc(N * sizeof *scale);
        CU_ASSERT_FATAL(q && scale);
        for (size_t r = 0; r < N; r++) {
            scale[r] = 400.0f + (float)r;
            for (size_t c = 0; c < K; c++)
                q[r * K + c] = (int8_t)((int)((r * 7 + c * 13) % 255) - 127);
        }
        i8.t.dtype = TOLK_DT_I8;
        i8.t.data = q;
        i8.t.scale = scale;
        const tolk_tensor *parts[3] = {&f32.t, &big.t, &i8.t};
        const tolk_dtype want[3] = {keep ? TOLK_DT_F16 : TOLK_DT_F32,
                                    keep ? TOLK_DT_BF16 : TOLK_DT_F32,
                                    keep ? TOLK_DT_F16 : TOLK_DT_F32};
        float *x = rnd(M * K, -1, 1), *dx = gpu_from(&b, x, M * K);
        for (int i = 0; i < 3; i++) {
            tolk_bweight wc, wg;
            CU_ASSERT_EQUAL_FATAL(b.cpu->weight_prepare(b.ctx, b.cpu, &parts[i], 1, &wc), TOLK_OK);
            CU_ASSERT_EQUAL_FATAL(b.gpu->weight_prepare(b.ctx, b.gpu, &parts[i], 1, &wg), TOLK_OK);
            CU_ASSERT_EQUAL(wg.dtype, want[i]);
            float *y = rnd(M * N, -1, 1), *dy = gpu_from(&b, y, M * N);
            CU_ASSERT_EQUAL(b.cpu->linear(b.ctx, b.cpu, y, N, x, K, M, &wc, NULL, 0), TOLK_OK);
            CU_ASSERT_EQUAL(b.gpu->linear(b.ctx, b.gpu, dy, N, dx, K, M, &wg, NULL, 0), TOLK_OK);
            /* half: x and w rounded (bf16: 8 bits), relative to the terms' scale */
            const double tol = !keep ? 2e-5 : want[i] == TOLK_DT_BF16 ? 4e-2 : 4e-3;
            const double atol = i == 1 ? 1e5 * tol : tol * 10; /* the 1e5 weight's row */
            char what[64];
            snprintf(what, sizeof what, "linear %s weight keep_f16 %d", parts[i]->name, keep);
            cmp_gpu(&b, what, dy, y, M, N, N, atol, tol);
            b.gpu->free(b.gpu, dy);
            free(y);
            b.cpu->weight_free(b.cpu, &wc);
            b.gpu->weight_free(b.gpu, &wg);
        }
        b.gpu->free(b.gpu, dx);
        free(x), free(q), free(scale);
        free(f32.data), free(big.data), free(i8.data);
        b.gpu->destroy(b.gpu);
        b.cpu->destroy(b.cpu);
        tolk_ctx_free(b.ctx);
    }
}

static void test_net_parity(void) {
    NEED_DEVICE();
    if (getenv("TOLK_TEST_SKIP_NET")) {
        tu_skip("TOLK_TEST_SKIP_NET set");
        return;
    }
    const char *dir = tu_model_dir("tiny.en");
    if (!dir) {
        tu_skip("model tiny.en not installed (scripts/get-model tiny.en)");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    net_parity(path, 0, 0, 5e-4); /* float32 weights, exact float32 products */
    net_parity(path, 1, 0, 3e-2); /* float16 weights and half inputs on tensor cores */
    net_parity(path, 1, 1, 3e-2); /* ... and fc1's GELU in the tanh form in its epilogue */
}

int main(void) {
    CU_TestInfo tests[] = {{"layernorm", test_layernorm},
                           {"add", test_add},
                           {"bias_gelu", test_bias_gelu},
                           {"relu_ssru", test_relu_ssru},
                           {"convert", test_convert},
                           {"conv1d", test_conv1d},
                           {"embed", test_embed},
                           {"attention", test_attention},
                           {"gemm", test_gemm},
                           {"gemm_plans", test_gemm_plans},
                           {"weight_half", test_weight_half},

                           {"backend", test_backend},
                           {"net_parity", test_net_parity},
                           CU_TEST_INFO_NULL};
    tu_add_suite("cuda_kernels", tests);
    return tu_run();
}

#else /* !TOLK_HAVE_CUDA */

int main(void) {
    return tu_run_without_cuda("cuda_kernels");
}

#endif

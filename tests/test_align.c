/*
 * test_align.c — the alignment pass of word timestamps on the CPU: the
 * backend op attn_weights (src/backend_cpu.c) against the plain loop
 * ref_attn_weights (tests/support/ref_attn.c, also the CUDA kernel's
 * reference), and
 * tolk_net_align (src/net_align.c) with real weights: its token
 * probabilities against the decoder step's logits for the same sequence
 * (tolk_net_decode, one token at a time), its attention weights as
 * distributions over the frames asked for, and its argument checks.
 */
#include "asr.h"
#include "backend.h"
#include "melwin.h"
#include "model.h"
#include "net.h"
#include "support/ref_attn.h"
#include "testutil.h"
#include "tolk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_op(void) {
    tolk_ctx *ctx = NULL;
    tolk_backend *be = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_backend_cpu_new(ctx, NULL, &be), TOLK_OK);
    tu_seed(11);
    const struct {
        int n_q, n_keys, n_head, dh, n_sel;
    } cases[] = {{1, 1, 1, 8, 1}, {3, 7, 2, 16, 2}, {45, 750, 8, 64, 3}, {33, 1500, 6, 64, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int nq = cases[c].n_q, nk = cases[c].n_keys, nh = cases[c].n_head, dh = cases[c].dh,
                  ns = cases[c].n_sel;
        const size_t ldq = (size_t)nh * dh + 5, ldk = 2 * (size_t)nh * dh; /* K/V fused rows */
        float *q = malloc((size_t)nq * ldq * sizeof *q), *k = malloc((size_t)nk * ldk * sizeof *k);
        tu_fill_uniform(q, (size_t)nq * ldq, -2.0f, 2.0f);
        tu_fill_uniform(k, (size_t)nk * ldk, -2.0f, 2.0f);
        int heads[8];
        for (int p = 0; p < ns; p++)
            heads[p] = (nh - 1 - 2 * p + 4 * nh) % nh; /* out of order, may repeat */
        size_t n = (size_t)ns * nq * nk;
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        CU_ASSERT_EQUAL_FATAL(be->attn_weights(ctx, be, q, ldq, k, ldk, nq, nk, heads, ns, dh,
                                               1.0f / sqrtf((float)dh), a),
                              TOLK_OK);
        ref_attn_weights(q, ldq, k, ldk, nq, nk, heads, ns, dh, 1.0f / sqrtf((float)dh), b);
        double err = tu_max_abs_diff(a, b, n);
        if (err > 1e-6) fprintf(stderr, "  case %zu: max |diff| %.3g\n", c, err);
        CU_ASSERT(err <= 1e-6);
        free(q);
        free(k);
        free(a);
        free(b);
    }
    /* argument checks: a head past the row, NULL pointers */
    float x[64] = {0}, o[64];
    int bad = 2;
    CU_ASSERT_EQUAL(be->attn_weights(ctx, be, x, 16, x, 16, 1, 1, &bad, 1, 8, 1.0f, o),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(be->attn_weights(ctx, be, NULL, 16, x, 16, 1, 1, &bad, 1, 8, 1.0f, o),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(be->attn_weights(ctx, be, x, 16, x, 16, 0, 1, &bad, 1, 8, 1.0f, o), TOLK_OK);
    be->destroy(be);
    tolk_ctx_free(ctx);
}

/* The alignment pass with real weights. */
static void test_net_align(void) {
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return;
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    const tolk_asr *asr = NULL;
    tolk_kvcache *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, dir, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_asr_of(ctx, m, &asr), TOLK_OK);
    const tolk_net *net = m->net;
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_new(ctx, net, 1, asr->hp.n_text_ctx, 1, &kv), TOLK_OK);
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx, tu_shared("speech/jfk.flac"), &x, &n), TOLK_OK);
    float *mel = malloc((size_t)asr->hp.n_mels * TOLK_N_FRAMES * sizeof *mel);
    CU_ASSERT_EQUAL_FATAL(tolk_tr_mel_window(ctx, asr->mel, x, n, 0, 1100, mel, NULL), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_kvcache_encode_window(ctx, net, kv, 0, mel, NULL), TOLK_OK);
    /* <|startoftranscript|> <|notimestamps|> " And so my fellow Americans" <|endoftext|> */
    const int toks[] = {50257, 50362, 843, 523, 616, 5891, 3399, 50256};
    const int T = (int)(sizeof toks / sizeof toks[0]), n_text = T - 3, F = 550;
    const int heads[3][2] = {{3, 4}, {1, 0}, {3, 0}};
    float *w = malloc((size_t)3 * T * F * sizeof *w);
    float probs[8];
    CU_ASSERT_EQUAL_FATAL(
        tolk_net_align(ctx, net, kv, 0, toks, T, heads, 3, F, w, 1, n_text, 50256, probs), TOLK_OK);
    /* every row a distribution over the F frames */
    for (int r = 0; r < 3 * T; r++) {
        double s = 0;
        for (int f = 0; f < F; f++) {
            CU_ASSERT(w[(size_t)r * F + f] >= 0.0f);
            s += w[(size_t)r * F + f];
        }
        CU_ASSERT(fabs(s - 1.0) < 1e-4);
    }
    /* the probabilities equal the decoder step's, token by token */
    int seq = 0;
    CU_ASSERT_EQUAL(tolk_kvcache_reset(ctx, kv, seq, 0), TOLK_OK);
    float *lg = malloc((size_t)asr->hp.n_vocab * sizeof *lg);
    double worst = 0;
    for (int i = 0; i < T - 1; i++) {
        const int *tp = &toks[i];
        int one = 1;
        CU_ASSERT_EQUAL_FATAL(tolk_net_decode(ctx, net, kv, &seq, 1, &tp, &one, lg), TOLK_OK);
        if (i < 1 || i >= 1 + n_text) continue;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < 50256; j++)
            mx = lg[j] > mx ? lg[j] : mx;
        for (int j = 0; j < 50256; j++)
            sum += exp(lg[j] - mx);
        const double p = exp(lg[toks[i + 1]] - mx) / sum;
        const double d = fabs(p - probs[i - 1]);
        worst = d > worst ? d : worst;
    }
    fprintf(stderr, " (max |p - p_step| %.2g)", worst);
    CU_ASSERT(worst < 1e-4);
    /* argument checks */
    const int bad_head[1][2] = {{4, 0}};
    CU_ASSERT_EQUAL(
        tolk_net_align(ctx, net, kv, 0, toks, T, bad_head, 1, F, w, 1, n_text, 50256, probs),
        TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        tolk_net_align(ctx, net, kv, 0, toks, T, heads, 3, 1501, w, 1, n_text, 50256, probs),
        TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_net_align(ctx, net, kv, 0, toks, T, heads, 3, F, w, 1, T, 50256, probs),
                    TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(
        tolk_net_align(ctx, net, kv, 1, toks, T, heads, 3, F, w, 1, n_text, 50256, probs),
        TOLK_ERR_INVALID_ARG);
    free(lg);
    free(w);
    free(mel);
    tolk_free(x);
    tolk_kvcache_free(kv);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"attn_weights_op", test_op}, {"net_align", test_net_align}, CU_TEST_INFO_NULL};
    tu_add_suite("align", tests);
    return tu_run();
}

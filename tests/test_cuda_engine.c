/*
 * test_cuda_engine.c — the scheduler on the GPU: several requests with
 * different decoding options in one engine on CUDA (float32 parity mode),
 * their decoder steps shared and their token selections made on the device
 * — each row with its own timestamp rule and k in one step (greedy with
 * and without timestamps, beam search 5: k = 1 and k = 6 side by side,
 * prefills asking for logits) — against the same requests decoded alone
 * on the CPU; and the steps replayed as CUDA graphs keyed by (B, k).
 *
 * The same with float16 cross-attention K/V on both devices (TOLK_KV_F16).
 * Runs on a GPU (bench/gpu-check.sh) and on the CPU emulator of CUDA in CI
 * (-DTOLK_CUDA_EMU=ON: one clip, tiny.en); skips without a device.
 *
 * ctest-labels: gpu models
 */
#include "engine.h"
#include "net.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#define N_REQ 3

static tolk_transcribe_params params_of(int k) {
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.language = "en";
    if (k == 1) p.without_timestamps = 1;
    if (k == 2) p.beam_size = p.best_of = 5;
    return p;
}

/* kv: tolk_kv_cache_type of both models (TOLK_KV_F16: the steps read
 * float16 K/V through attention_desc_kvh on both devices). */
static void engine_vs_cpu(int kv) {
    if (!tolk_cuda_available()) {
        printf("  SKIPPED: no CUDA device\n");
        return;
    }
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return;
    tolk_ctx_params cp = tolk_ctx_default_params();
    tolk_ctx *cpu = NULL, *gpu = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &cpu), TOLK_OK);
    cp.device = TOLK_DEVICE_CUDA;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &gpu), TOLK_OK);
    tolk_model *mc = NULL, *mg = NULL;
    tolk_model_params mp = tolk_model_default_params();
    mp.kv_cache = kv;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(cpu, dir, &mp, &mc), TOLK_OK);
    mp.device = TOLK_DEVICE_CUDA;
    mp.compute_type = TOLK_COMPUTE_F32;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(gpu, dir, &mp, &mg), TOLK_OK);
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(cpu, tu_data("speech/jfk.flac"), &x, &n), TOLK_OK);

    tolk_result *ref[N_REQ] = {NULL};
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(cpu, mc, &st), TOLK_OK);
    for (int k = 0; k < N_REQ; k++) {
        tolk_transcribe_params p = params_of(k);
        CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &ref[k]), TOLK_OK);
    }
    tolk_state_free(st);

    tolk_engine_params ep = tolk_engine_default_params();
    ep.background = 0;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(gpu, mg, &ep, &e), TOLK_OK);
    tolk_request *rq[N_REQ];
    for (int k = 0; k < N_REQ; k++) {
        tolk_transcribe_params p = params_of(k);
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x, n, &p, &rq[k]), TOLK_OK);
    }
    CU_ASSERT_EQUAL(tolk_engine_run(e), TOLK_OK);
    for (int k = 0; k < N_REQ; k++) {
        tolk_result *res = NULL;
        CU_ASSERT_EQUAL(tolk_request_status(rq[k]), TOLK_OK);
        CU_ASSERT_EQUAL(tolk_request_result(rq[k], &res), TOLK_OK);
        int same = res && !strcmp(tolk_result_text(res), tolk_result_text(ref[k])) &&
                   tolk_result_n_segments(res) == tolk_result_n_segments(ref[k]);
        for (int i = 0; same && i < tolk_result_n_segments(res); i++)
            same = tolk_result_segment(res, i)->start == tolk_result_segment(ref[k], i)->start &&
                   tolk_result_segment(res, i)->end == tolk_result_segment(ref[k], i)->end;
        if (!same)
            fprintf(stderr, "\n  request %d: gpu \"%s\"\n             cpu \"%s\"\n", k,
                    res ? tolk_result_text(res) : "(none)", tolk_result_text(ref[k]));
        CU_ASSERT(same);
        tolk_result_free(res);
        tolk_request_free(rq[k]);
    }
    long cap = 0, rep = 0, fail = 0;
    tolk_kvcache_graph_stats(tolk_engine_kvcache(e), &cap, &rep, &fail);
    tolk_engine_stats s;
    tolk_engine_get_stats(e, &s);
    printf("\n  kv %s: %lld steps, %lld rows; graphs: %ld captured, %ld replays, %ld failed",
           kv == TOLK_KV_F16 ? "float16" : "float32", (long long)s.steps, (long long)s.rows, cap,
           rep, fail);
    CU_ASSERT(s.rows > s.steps);
    CU_ASSERT(cap >= 1 && rep >= 1 && fail == 0);
    tolk_engine_free(e);
    for (int k = 0; k < N_REQ; k++)
        tolk_result_free(ref[k]);
    tolk_free(x);
    tolk_model_free(mc);
    tolk_model_free(mg);
    tolk_ctx_free(cpu);
    tolk_ctx_free(gpu);
}

static void test_engine_matches_cpu(void) {
    engine_vs_cpu(TOLK_KV_AUTO);
}

static void test_kv_f16_matches_cpu(void) {
    engine_vs_cpu(TOLK_KV_F16);
}

/* Half precision: graphed steps padded to batch buckets (11 sequences run
 * as 16: two beam searches of 5 and a greedy request); each request's text
 * equals its own run alone on the same device and precision. */
static void test_f16_buckets(void) {
    if (!tolk_cuda_available()) {
        printf("  SKIPPED: no CUDA device\n");
        return;
    }
    const char *dir = tu_require_model("tiny.en");
    if (!dir) return;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CUDA;
    tolk_ctx *gpu = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &gpu), TOLK_OK);
    tolk_model_params mp = tolk_model_default_params();
    mp.device = TOLK_DEVICE_CUDA;
    mp.compute_type = TOLK_COMPUTE_F16;
    tolk_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(gpu, dir, &mp, &m), TOLK_OK);
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(gpu, tu_shared("speech/jfk.flac"), &x, &n), TOLK_OK);
    const int kinds[3] = {2, 2, 0};
    tolk_result *ref[3] = {NULL};
    tolk_state *st = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(gpu, m, &st), TOLK_OK);
    for (int i = 0; i < 3; i++) {
        tolk_transcribe_params p = params_of(kinds[i]);
        CU_ASSERT_EQUAL_FATAL(tolk_transcribe(st, x, n, &p, &ref[i]), TOLK_OK);
    }
    tolk_state_free(st);
    tolk_engine_params ep = tolk_engine_default_params();
    ep.background = 0;
    tolk_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_engine_new(gpu, m, &ep, &e), TOLK_OK);
    tolk_request *rq[3];
    for (int i = 0; i < 3; i++) {
        tolk_transcribe_params p = params_of(kinds[i]);
        CU_ASSERT_EQUAL_FATAL(tolk_engine_submit_samples(e, x, n, &p, &rq[i]), TOLK_OK);
    }
    CU_ASSERT_EQUAL(tolk_engine_run(e), TOLK_OK);
    for (int i = 0; i < 3; i++) {
        tolk_result *res = NULL;
        CU_ASSERT_EQUAL(tolk_request_result(rq[i], &res), TOLK_OK);
        int same = res && !strcmp(tolk_result_text(res), tolk_result_text(ref[i]));
        if (!same)
            fprintf(stderr, "\n  f16 request %d: \"%s\" alone: \"%s\"\n", i,
                    res ? tolk_result_text(res) : "(none)", tolk_result_text(ref[i]));
        CU_ASSERT(same);
        tolk_result_free(res);
        tolk_result_free(ref[i]);
        tolk_request_free(rq[i]);
    }
    long cap = 0, rep = 0, fail = 0;
    tolk_kvcache_graph_stats(tolk_engine_kvcache(e), &cap, &rep, &fail);
    printf("\n  f16: graphs %ld captured, %ld replays, %ld failed", cap, rep, fail);
    CU_ASSERT(rep >= 1 && fail == 0);
    tolk_engine_free(e);
    tolk_free(x);
    tolk_model_free(m);
    tolk_ctx_free(gpu);
}

int main(void) {
    CU_TestInfo tests[] = {{"engine_matches_cpu", test_engine_matches_cpu},
                           {"kv_f16_matches_cpu", test_kv_f16_matches_cpu},
                           {"f16_buckets", test_f16_buckets},
                           CU_TEST_INFO_NULL};
    tu_add_suite("cuda_engine", tests);
    return tu_run();
}

#else

int main(void) {
    return tu_run_without_cuda("cuda_engine");
}

#endif

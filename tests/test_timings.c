/*
 * test_timings.c — the per-stage timing accumulators (src/timings.c) and
 * the public tolk_state_timings / tolk_state_reset_timings: sums per stage,
 * the search stage excluding decoder time, counters, NULL safety; with a
 * real model (tu_require_model), that a state's timings read and reset.
 *
 * ctest-labels: models
 */
#include "testutil.h"
#include "timings.h"

#include <math.h>
#include <string.h>

static void test_add(void) {
    tolk_timings t;
    memset(&t, 0xff, sizeof t);
    tolk_timings_clear(&t);
    CU_ASSERT_EQUAL(t.audio_s, 0.0);
    CU_ASSERT_EQUAL(t.tokens, 0);
    tolk_timings_add(&t, TOLK_STAGE_AUDIO, 0.5);
    tolk_timings_add(&t, TOLK_STAGE_MEL, 0.25);
    tolk_timings_add(&t, TOLK_STAGE_ENCODER, 1.0);
    tolk_timings_add(&t, TOLK_STAGE_ENCODER, 1.0);
    tolk_timings_add(&t, TOLK_STAGE_DECODER, 2.0);
    tolk_timings_add(&t, TOLK_STAGE_SEARCH, 0.125);
    /* ignored: a bad stage, negative and non-finite seconds */
    tolk_timings_add(&t, TOLK_STAGE_COUNT, 9.0);
    tolk_timings_add(&t, -1, 9.0);
    tolk_timings_add(&t, TOLK_STAGE_MEL, -3.0);
    tolk_timings_add(&t, TOLK_STAGE_MEL, NAN);
    tolk_timings_add(&t, TOLK_STAGE_MEL, INFINITY);
    CU_ASSERT_DOUBLE_EQUAL(t.audio_s, 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.mel_s, 0.25, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.encoder_s, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.decoder_s, 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(t.search_s, 0.125, 1e-12);
    tolk_timings_count(&t, 1, 10, 11);
    tolk_timings_count(&t, 2, -5, 3);
    CU_ASSERT_EQUAL(t.windows, 3);
    CU_ASSERT_EQUAL(t.tokens, 10);
    CU_ASSERT_EQUAL(t.decoder_steps, 14);
    tolk_timings_device_peak(&t, 100);
    tolk_timings_device_peak(&t, 50);
    CU_ASSERT_EQUAL(t.device_peak_bytes, 100);
    /* NULL is a no-op everywhere */
    tolk_timings_add(NULL, TOLK_STAGE_MEL, 1.0);
    tolk_timings_count(NULL, 1, 1, 1);
    tolk_timings_device_peak(NULL, 1);
    tolk_timings_clear(NULL);
    CU_ASSERT(tolk_timings_since(NULL, TOLK_STAGE_MEL, 0.0) > 0.0);
    CU_ASSERT(tolk_timings_add_search(NULL, 0.0, 0.0) > 0.0);
}

static void test_since_and_search(void) {
    tolk_timings t;
    tolk_timings_clear(&t);
    double t0 = tolk_time_now();
    double t1 = tolk_timings_since(&t, TOLK_STAGE_MEL, t0);
    CU_ASSERT(t1 >= t0);
    CU_ASSERT_DOUBLE_EQUAL(t.mel_s, t1 - t0, 1e-12);
    /* a decoding call that started 1 s ago, 0.25 s of it in decoder steps */
    double start = tolk_time_now() - 1.0, d0 = t.decoder_s;
    tolk_timings_add(&t, TOLK_STAGE_DECODER, 0.25);
    double now = tolk_timings_add_search(&t, start, d0);
    CU_ASSERT(t.search_s >= 0.75 && t.search_s <= now - start - 0.25 + 1e-9);
    /* decoder time larger than the interval: clamped at zero, never negative */
    double before = t.search_s;
    start = tolk_time_now();
    d0 = t.decoder_s;
    tolk_timings_add(&t, TOLK_STAGE_DECODER, 100.0);
    tolk_timings_add_search(&t, start, d0);
    CU_ASSERT_DOUBLE_EQUAL(t.search_s, before, 1e-12);
}

static void test_state_api(void) {
    tolk_timings t;
    memset(&t, 0x7f, sizeof t);
    tolk_state_timings(NULL, &t); /* zeros for no state */
    CU_ASSERT_EQUAL(t.encoder_s, 0.0);
    CU_ASSERT_EQUAL(t.windows, 0);
    tolk_state_timings(NULL, NULL);
    tolk_state_reset_timings(NULL);

    const char *model = tu_require_model("tiny.en");
    if (!model) return;
    tolk_ctx *ctx = NULL;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = 2;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(&cp, &ctx), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_model_load(ctx, model, NULL, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(tolk_state_new(ctx, m, &st), TOLK_OK);
    /* 2 s of silence: one short window */
    static float silence[2 * TOLK_SAMPLE_RATE];
    tolk_transcribe_params p = tolk_transcribe_default_params();
    p.n_temperatures = 1;
    tolk_result *res = NULL;
    CU_ASSERT_EQUAL(tolk_transcribe(st, silence, 2 * TOLK_SAMPLE_RATE, &p, &res), TOLK_OK);
    tolk_result_free(res);
    tolk_state_timings(st, &t);
    /* every field finite and non-negative; the stage sum is bounded by reason */
    const double v[5] = {t.audio_s, t.mel_s, t.encoder_s, t.decoder_s, t.search_s};
    for (int i = 0; i < 5; i++)
        CU_ASSERT(isfinite(v[i]) && v[i] >= 0.0 && v[i] < 600.0);
    CU_ASSERT(t.windows >= 0 && t.tokens >= 0 && t.decoder_steps >= 0);
    tolk_state_reset_timings(st);
    tolk_state_timings(st, &t);
    CU_ASSERT_EQUAL(t.encoder_s, 0.0);
    CU_ASSERT_EQUAL(t.decoder_steps, 0);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
}

int main(void) {
    CU_TestInfo tests[] = {{"add", test_add},
                           {"since_and_search", test_since_and_search},
                           {"state_api", test_state_api},
                           CU_TEST_INFO_NULL};
    tu_add_suite("timings", tests);
    return tu_run();
}

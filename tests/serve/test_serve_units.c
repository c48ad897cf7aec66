/*
 * test_serve_units.c — the pieces of `tolk serve` that need no network or
 * model: the energy VAD and turn detector (vad.c), the transcript and
 * delta texts and format names (respond.c), and the Realtime protocol
 * object (realtime_proto.c) driven without a server: session events,
 * configuration, errors for bad events, buffer commit / clear.
 */
#include "realtime.h"
#include "result.h"
#include "serve.h"
#include "testutil.h"
#include "vad.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RATE 24000

/* 1 s silence, 2 s of a voiced-like signal, 1.5 s silence. */
static float *make_turn(size_t *n) {
    *n = (size_t)(4.5 * RATE);
    float *x = calloc(*n, sizeof *x);
    for (size_t i = RATE; i < 3 * RATE; i++) {
        double t = (double)i / RATE;
        x[i] = (float)(0.2 * sin(2 * M_PI * 180 * t) * (0.6 + 0.4 * sin(2 * M_PI * 3 * t)));
    }
    return x;
}

static void test_vad_turn(void) {
    size_t n;
    float *x = make_turn(&n);
    srv_vad_params p = srv_vad_default_params();
    srv_vad *v = srv_vad_new(srv_vad_energy_new(RATE), &p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    srv_vad_event ev[8];
    int k = srv_vad_push(v, x, n, ev, 8);
    CU_ASSERT_EQUAL_FATAL(k, 2);
    CU_ASSERT_EQUAL(ev[0].type, SRV_VAD_START);
    CU_ASSERT(labs((long)(ev[0].sample - RATE)) <= RATE / 25); /* within a frame or two */
    CU_ASSERT_EQUAL(ev[1].type, SRV_VAD_STOP);
    /* silence_duration_ms after the speech ends */
    CU_ASSERT(labs((long)(ev[1].sample - (3 * RATE + RATE / 2))) <= RATE / 25);
    CU_ASSERT(!srv_vad_in_speech(v));

    /* the same events in odd-sized pieces */
    srv_vad_reset(v, 0);
    srv_vad_event ev2[8];
    int k2 = 0;
    for (size_t at = 0; at < n;) {
        size_t m = 777 + at % 1000;
        if (at + m > n) m = n - at;
        k2 += srv_vad_push(v, x + at, m, ev2 + k2, 8 - k2);
        at += m;
    }
    CU_ASSERT_EQUAL_FATAL(k2, 2);
    CU_ASSERT_EQUAL(ev2[0].sample, ev[0].sample);
    CU_ASSERT_EQUAL(ev2[1].sample, ev[1].sample);

    /* silence alone: nothing; the signal 60 dB quieter (below -55 dBFS): nothing */
    srv_vad_reset(v, 0);
    CU_ASSERT_EQUAL(srv_vad_push(v, x, RATE, ev, 8), 0);
    for (size_t i = 0; i < n; i++)
        x[i] *= 0.001f;
    srv_vad_reset(v, 0);
    CU_ASSERT_EQUAL(srv_vad_push(v, x, n, ev, 8), 0);
    srv_vad_free(v);
    free(x);
}

static void test_texts(void) {
    size_t sent = 0;
    char *d = srv_text_delta(" Hello", &sent);
    CU_ASSERT_STRING_EQUAL(d, "Hello");
    free(d);
    d = srv_text_delta(" Hello world. ", &sent); /* the trailing space is held back */
    CU_ASSERT_STRING_EQUAL(d, " world.");
    free(d);
    d = srv_text_delta(" Hello world. ", &sent);
    CU_ASSERT_STRING_EQUAL(d, "");
    free(d);
    d = srv_text_delta(" Hello world. Bye", &sent);
    CU_ASSERT_STRING_EQUAL(d, " Bye");
    free(d);

    const tolk_segment seg = {.id = 0};
    tolk_result *res = tolk_result_new();
    CU_ASSERT_FATAL(res && tolk_result_add_segment(res, &seg, " Hello", NULL, 0) &&
                    tolk_result_add_segment(res, &seg, " world. ", NULL, 0));
    char *t = srv_result_text(res);
    CU_ASSERT_STRING_EQUAL(t, "Hello world.");
    free(t);
    tolk_result_free(res);
    CU_ASSERT_EQUAL(srv_format_from_name("verbose_json"), SRV_FMT_VERBOSE_JSON);
    CU_ASSERT_EQUAL(srv_format_from_name(NULL), SRV_FMT_JSON);
    CU_ASSERT_EQUAL(srv_format_from_name("diarized_json"), -1);
    CU_ASSERT_STRING_EQUAL(srv_language_name("de"), "german");
}

/* ---- the realtime protocol without a server ------------------------------------ */

typedef struct sent_log {
    cJSON *ev[64];
    int n;
} sent_log;

static int capture(void *io, const char *json, size_t n) {
    sent_log *l = io;
    if (l->n < 64) l->ev[l->n++] = cJSON_ParseWithLength(json, n);
    return 0;
}

static const char *type_of(const sent_log *l, int i) {
    const cJSON *t = i < l->n ? cJSON_GetObjectItem(l->ev[i], "type") : NULL;
    return cJSON_IsString(t) ? t->valuestring : "";
}

static const char *err_code(const sent_log *l, int i) {
    const cJSON *e = i < l->n ? cJSON_GetObjectItem(l->ev[i], "error") : NULL;
    const cJSON *c = cJSON_GetObjectItem(e, "code");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static void rt_text(rt_session *rt, const char *s) {
    CU_ASSERT_EQUAL(rt_on_text(rt, s, strlen(s)), 0);
}

static void test_realtime_protocol(void) {
    sent_log l = {0};
    rt_session *rt = rt_new(NULL, NULL, "sess_unit", capture, &l, -1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rt);
    rt_start(rt);
    CU_ASSERT_STRING_EQUAL(type_of(&l, 0), "session.created");

    rt_text(rt, "{not json");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 1), "invalid_json");
    rt_text(rt, "{\"type\":\"response.create\"}");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 2), "invalid_event");
    rt_text(rt, "{\"type\":\"session.update\",\"session\":{\"type\":\"transcription\",\"audio\":{"
                "\"input\":{\"turn_detection\":{\"type\":\"server_vad\",\"threshold\":7}}}}}");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 3), "invalid_value");
    rt_text(rt, "{\"type\":\"session.update\",\"session\":{\"type\":\"transcription\",\"audio\":{"
                "\"input\":{\"format\":{\"type\":\"audio/pcmu\"}}}}}");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 4), "unsupported_format");
    rt_text(rt, "{\"type\":\"session.update\",\"session\":{\"type\":\"transcription\",\"audio\":{"
                "\"input\":{\"turn_detection\":null,\"transcription\":{\"language\":\"de\"}}}}}");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 5), "session.updated");
    const cJSON *in = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(l.ev[5], "session"), "audio"), "input");
    CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(in, "turn_detection")));
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItem(cJSON_GetObjectItem(in, "transcription"), "language")->valuestring,
        "de");

    rt_text(rt, "{\"type\":\"input_audio_buffer.append\",\"audio\":\"%%%\"}");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 6), "invalid_value");
    rt_text(rt, "{\"type\":\"input_audio_buffer.append\",\"audio\":\"AA==\"}"); /* one byte */
    CU_ASSERT_STRING_EQUAL(err_code(&l, 7), "invalid_value");
    rt_text(rt, "{\"type\":\"input_audio_buffer.commit\",\"event_id\":\"c1\"}");
    CU_ASSERT_STRING_EQUAL(err_code(&l, 8), "input_audio_buffer_commit_empty");
    const cJSON *eid = cJSON_GetObjectItem(cJSON_GetObjectItem(l.ev[8], "error"), "event_id");
    CU_ASSERT(cJSON_IsString(eid) && !strcmp(eid->valuestring, "c1"));

    /* 0.2 s of zeros (9600 bytes = 12800 base64 characters), then commit */
    size_t nb = 9600, n64 = nb / 3 * 4;
    char *msg = malloc(n64 + 64);
    strcpy(msg, "{\"type\":\"input_audio_buffer.append\",\"audio\":\"");
    size_t at = strlen(msg);
    memset(msg + at, 'A', n64);
    strcpy(msg + at + n64, "\"}");
    rt_text(rt, msg);
    free(msg);
    CU_ASSERT_EQUAL(l.n, 9); /* no event for an append */
    rt_text(rt, "{\"type\":\"input_audio_buffer.commit\"}");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 9), "input_audio_buffer.committed");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 10), "conversation.item.added");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 11), "error"); /* no model to transcribe with */
    rt_text(rt, "{\"type\":\"input_audio_buffer.clear\"}");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 12), "input_audio_buffer.cleared");
    rt_on_binary(rt);
    CU_ASSERT_STRING_EQUAL(err_code(&l, 13), "invalid_event");

    /* the beta names */
    rt_text(rt, "{\"type\":\"transcription_session.update\",\"session\":{\"input_audio_format\":"
                "\"pcm16\",\"turn_detection\":{\"type\":\"server_vad\"}}}");
    CU_ASSERT_STRING_EQUAL(type_of(&l, 14), "transcription_session.updated");
    CU_ASSERT_EQUAL(rt_pending(rt), 0);
    rt_free(rt);
    for (int i = 0; i < l.n; i++)
        cJSON_Delete(l.ev[i]);
}

int main(void) {
    CU_TestInfo tests[] = {{"vad_turn", test_vad_turn},
                           {"texts", test_texts},
                           {"realtime_protocol", test_realtime_protocol},
                           CU_TEST_INFO_NULL};
    tu_add_suite("serve_units", tests);
    return tu_run();
}

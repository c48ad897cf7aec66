/*
 * fuzz_serve_realtime.c — libFuzzer target for the Realtime API protocol of
 * `tolk serve` (src/serve/realtime_proto.c): the input, split at newlines,
 * is a sequence of client text messages to one session (no server, no
 * model: commits transcribe nothing). Any event sequence is fine; a crash,
 * a sanitizer report, a hang or a leak is not, and every server event must
 * be a JSON object with a "type".
 *
 *   CC=clang cmake -DTOLK_FUZZ=ON -DTOLK_TESTS=OFF -DTOLK_BENCH=OFF ...
 *   ./fuzz_serve_realtime -max_total_time=60 corpus/
 */
#include "realtime.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int check_event(void *io, const char *json, size_t n) {
    cJSON *e = cJSON_ParseWithLength(json, n);
    if (!cJSON_IsObject(e) || !cJSON_IsString(cJSON_GetObjectItem(e, "type"))) abort();
    cJSON_Delete(e);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rt_session *rt = rt_new(NULL, NULL, "sess_fuzz", check_event, NULL, -1);
    if (!rt) return 0;
    rt_start(rt);
    size_t at = 0;
    while (at < size) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - data) : size;
        if (end - at == 1 && data[at] == 'B')
            rt_on_binary(rt);
        else
            rt_on_text(rt, (const char *)data + at, end - at);
        rt_poll(rt);
        at = end + 1;
    }
    rt_flush(rt);
    rt_free(rt);
    return 0;
}

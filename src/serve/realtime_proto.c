/*
 * realtime_proto.c — OpenAI's Realtime API transcription session (the
 * protocol; realtime.c carries it over a WebSocket). Client events:
 *   session.update (GA: session.type "transcription", session.audio.input
 *     {format {type "audio/pcm", rate 24000}, transcription {model,
 *     language, prompt}, turn_detection {type "server_vad", threshold,
 *     prefix_padding_ms, silence_duration_ms} | null}),
 *   transcription_session.update (beta: input_audio_format "pcm16",
 *     input_audio_transcription, turn_detection),
 *   input_audio_buffer.append {audio: base64 PCM16 little-endian mono,
 *     24 kHz}, input_audio_buffer.commit, input_audio_buffer.clear.
 * Server events: session.created / session.updated (or the beta
 * transcription_session.updated), input_audio_buffer.speech_started /
 * speech_stopped (server VAD) / committed / cleared,
 * conversation.item.added (beta: conversation.item.created),
 * conversation.item.input_audio_transcription.delta / .completed /
 * .failed, and error {error: {type, code, message, param, event_id}}.
 *
 * Each committed turn becomes one engine request: its 24 kHz audio is
 * resampled to 16 kHz (tolk_resample, libsoxr very high quality, as
 * `tolk transcribe` reads a 24 kHz file) and transcribed with the
 * server's decoding options; a delta goes out as each segment becomes
 * final, and the completed transcript is the deltas joined. Turns are
 * found by the server VAD (vad.h) or by the client's commits.
 * When tolk_stream (low-latency streaming) lands, a turn can feed a live
 * stream while it is spoken instead of being transcribed when it ends.
 */
#include "realtime.h"
#include "vad.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RT_RATE 24000
#define RT_MAX_ITEMS 16
#define RT_MIN_COMMIT (RT_RATE / 10) /* 100 ms, as OpenAI requires */

typedef struct rt_item {
    char id[48];
    tolk_request *rq;
    int n_seen;
    char *all;
    size_t all_len, sent;
    double audio_s;
} rt_item;

struct rt_session {
    srv_server *s;
    srv_model *model;
    char id[40];
    rt_send_fn send;
    void *io;
    int wake_fd;
    int beta;    /* the client uses the beta event names */
    int closing; /* rt_flush was called */
    char *language, *prompt;
    int vad_on;
    srv_vad_params vp;
    srv_vad *vad;
    float *buf; /* uncommitted input, 24 kHz */
    size_t n_buf, cap_buf;
    int64_t buf_start; /* input sample of buf[0] */
    int64_t total;     /* input samples appended */
    int in_turn;
    char turn_item[48];
    int64_t turn_start;
    char prev_item[48];
    rt_item items[RT_MAX_ITEMS];
    int n_items;
    uint64_t n_events, n_ids;
    int items_done;
    double audio_done;
    tolk_ctx *ctx;
};

/* ---- sending -------------------------------------------------------------------- */

static void send_event(rt_session *rt, cJSON *e, const char *type) {
    char eid[32];
    snprintf(eid, sizeof eid, "event_%s%llu", rt->id + 5, (unsigned long long)++rt->n_events);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddStringToObject(e, "event_id", eid);
    char *s = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    if (!s) return;
    rt->send(rt->io, s, strlen(s));
    free(s);
}

static void send_error(rt_session *rt, const char *type, const char *code, const char *param,
                       const char *client_event, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void send_error(rt_session *rt, const char *type, const char *code, const char *param,
                       const char *client_event, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *e = cJSON_CreateObject();
    cJSON *er = cJSON_AddObjectToObject(e, "error");
    cJSON_AddStringToObject(er, "type", type);
    if (code)
        cJSON_AddStringToObject(er, "code", code);
    else
        cJSON_AddNullToObject(er, "code");
    cJSON_AddStringToObject(er, "message", msg);
    if (param)
        cJSON_AddStringToObject(er, "param", param);
    else
        cJSON_AddNullToObject(er, "param");
    if (client_event)
        cJSON_AddStringToObject(er, "event_id", client_event);
    else
        cJSON_AddNullToObject(er, "event_id");
    send_event(rt, e, "error");
}

static void new_item_id(rt_session *rt, char *out, size_t n) {
    snprintf(out, n, "item_%s%03llu", rt->id + 5, (unsigned long long)++rt->n_ids);
}

/* The session as session.created / session.updated show it. */
static cJSON *session_json(rt_session *rt) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "id", rt->id);
    cJSON_AddStringToObject(s, "object", "realtime.transcription_session");
    cJSON *td = NULL;
    if (rt->vad_on) {
        td = cJSON_CreateObject();
        cJSON_AddStringToObject(td, "type", "server_vad");
        cJSON_AddNumberToObject(td, "threshold", rt->vp.threshold);
        cJSON_AddNumberToObject(td, "prefix_padding_ms", rt->vp.prefix_padding_ms);
        cJSON_AddNumberToObject(td, "silence_duration_ms", rt->vp.silence_duration_ms);
    } else {
        td = cJSON_CreateNull();
    }
    cJSON *tr = cJSON_CreateObject();
    cJSON_AddStringToObject(tr, "model", rt->model ? rt->model->name : "");
    if (rt->language)
        cJSON_AddStringToObject(tr, "language", rt->language);
    else
        cJSON_AddNullToObject(tr, "language");
    cJSON_AddStringToObject(tr, "prompt", rt->prompt ? rt->prompt : "");
    if (rt->beta) {
        cJSON_AddStringToObject(s, "input_audio_format", "pcm16");
        cJSON_AddItemToObject(s, "input_audio_transcription", tr);
        cJSON_AddItemToObject(s, "turn_detection", td);
        cJSON *mod = cJSON_AddArrayToObject(s, "modalities");
        cJSON_AddItemToArray(mod, cJSON_CreateString("text"));
        return s;
    }
    cJSON_AddStringToObject(s, "type", "transcription");
    cJSON *in = cJSON_AddObjectToObject(cJSON_AddObjectToObject(s, "audio"), "input");
    cJSON *fmt = cJSON_AddObjectToObject(in, "format");
    cJSON_AddStringToObject(fmt, "type", "audio/pcm");
    cJSON_AddNumberToObject(fmt, "rate", RT_RATE);
    cJSON_AddItemToObject(in, "transcription", tr);
    cJSON_AddItemToObject(in, "turn_detection", td);
    cJSON_AddNullToObject(in, "noise_reduction");
    return s;
}

static void send_session(rt_session *rt, const char *type) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "session", session_json(rt));
    send_event(rt, e, type);
}

/* ---- life --------------------------------------------------------------------- */

rt_session *rt_new(srv_server *s, srv_model *m, const char *id, rt_send_fn send, void *io,
                   int wake_fd) {
    rt_session *rt = calloc(1, sizeof *rt);
    if (!rt) return NULL;
    rt->s = s;
    rt->model = m;
    snprintf(rt->id, sizeof rt->id, "%s", id);
    rt->send = send;
    rt->io = io;
    rt->wake_fd = wake_fd;
    rt->vad_on = 1;
    rt->vp = srv_vad_default_params();
    rt->vad = srv_vad_new(srv_vad_energy_new(RT_RATE), &rt->vp);
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CPU;
    cp.n_threads = 1;
    if (!rt->vad || tolk_ctx_new(&cp, &rt->ctx) != TOLK_OK) {
        srv_vad_free(rt->vad);
        free(rt);
        return NULL;
    }
    return rt;
}

static void item_clear(rt_item *it) {
    if (it->rq) {
        if (!tolk_request_done(it->rq)) {
            tolk_request_cancel(it->rq);
            tolk_request_wait(it->rq);
        }
        tolk_request_free(it->rq);
    }
    free(it->all);
    memset(it, 0, sizeof *it);
}

void rt_free(rt_session *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n_items; i++)
        item_clear(&rt->items[i]);
    srv_vad_free(rt->vad);
    tolk_ctx_free(rt->ctx);
    free(rt->buf);
    free(rt->language);
    free(rt->prompt);
    free(rt);
}

void rt_start(rt_session *rt) {
    send_session(rt, "session.created");
}

int rt_pending(const rt_session *rt) {
    return rt->n_items;
}

void rt_counts(const rt_session *rt, int *items, double *audio_s) {
    *items = rt->items_done;
    *audio_s = rt->audio_done;
}

/* ---- transcription of a committed turn ------------------------------------------- */

static void on_segment(void *user, const tolk_segment *seg) {
    rt_session *rt = user;
    uint64_t one = 1;
    if (rt->wake_fd >= 0 && write(rt->wake_fd, &one, sizeof one) < 0) {
        /* the loop also polls on a timer */
    }
}

/* Submit samples [0, n) of buf (24 kHz) as item id. */
static void transcribe(rt_session *rt, const char *id, const float *x, size_t n) {
    if (!rt->model || !rt->s) {
        send_error(rt, "server_error", NULL, NULL, NULL, "no model to transcribe item %s", id);
        return;
    }
    if (rt->n_items == RT_MAX_ITEMS) {
        send_error(rt, "invalid_request_error", "too_many_items", NULL, NULL,
                   "%d items are being transcribed; the audio of item %s is dropped", RT_MAX_ITEMS,
                   id);
        return;
    }
    float *y = NULL;
    size_t m = 0;
    tolk_status st = tolk_resample(rt->ctx, x, n, RT_RATE, TOLK_SAMPLE_RATE, &y, &m);
    tolk_transcribe_params p = srv_cfg(rt->s)->decode;
    p.task = TOLK_TASK_TRANSCRIBE;
    p.language = rt->model->multilingual ? rt->language : "en";
    p.initial_prompt = rt->prompt && rt->prompt[0] ? rt->prompt : NULL;
    p.on_segment = on_segment;
    p.progress = NULL;
    p.user = rt;
    rt_item *it = &rt->items[rt->n_items];
    memset(it, 0, sizeof *it);
    if (st == TOLK_OK) st = tolk_engine_submit_samples(rt->model->engine, y, m, &p, &it->rq);
    tolk_free(y);
    if (st != TOLK_OK) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "item_id", id);
        cJSON_AddNumberToObject(e, "content_index", 0);
        cJSON *er = cJSON_AddObjectToObject(e, "error");
        cJSON_AddStringToObject(er, "type", "server_error");
        cJSON_AddStringToObject(er, "message", tolk_engine_last_error(rt->model->engine));
        send_event(rt, e, "conversation.item.input_audio_transcription.failed");
        it->rq = NULL;
        return;
    }
    snprintf(it->id, sizeof it->id, "%s", id);
    it->audio_s = (double)n / RT_RATE;
    rt->n_items++;
}

/* Drop buf's first k samples. */
static void buf_drop(rt_session *rt, size_t k) {
    if (k > rt->n_buf) k = rt->n_buf;
    if (k == 0) return;
    if (rt->n_buf > k) memmove(rt->buf, rt->buf + k, (rt->n_buf - k) * sizeof *rt->buf);
    rt->n_buf -= k;
    rt->buf_start += (int64_t)k;
}

/* Commit input samples [from, to) (absolute) as item id: committed +
 * item added, then the transcription. */
static void commit_range(rt_session *rt, const char *id, int64_t from, int64_t to) {
    if (from < rt->buf_start) from = rt->buf_start;
    if (to > rt->buf_start + (int64_t)rt->n_buf) to = rt->buf_start + (int64_t)rt->n_buf;
    cJSON *e = cJSON_CreateObject();
    if (rt->prev_item[0])
        cJSON_AddStringToObject(e, "previous_item_id", rt->prev_item);
    else
        cJSON_AddNullToObject(e, "previous_item_id");
    cJSON_AddStringToObject(e, "item_id", id);
    send_event(rt, e, "input_audio_buffer.committed");
    e = cJSON_CreateObject();
    if (rt->prev_item[0])
        cJSON_AddStringToObject(e, "previous_item_id", rt->prev_item);
    else
        cJSON_AddNullToObject(e, "previous_item_id");
    cJSON *item = cJSON_AddObjectToObject(e, "item");
    cJSON_AddStringToObject(item, "id", id);
    cJSON_AddStringToObject(item, "object", "realtime.item");
    cJSON_AddStringToObject(item, "type", "message");
    cJSON_AddStringToObject(item, "status", "completed");
    cJSON_AddStringToObject(item, "role", "user");
    cJSON *content = cJSON_AddArrayToObject(item, "content");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddStringToObject(c0, "type", "input_audio");
    cJSON_AddNullToObject(c0, "transcript");
    cJSON_AddItemToArray(content, c0);
    send_event(rt, e, rt->beta ? "conversation.item.created" : "conversation.item.added");
    snprintf(rt->prev_item, sizeof rt->prev_item, "%s", id);
    if (to > from) transcribe(rt, id, rt->buf + (from - rt->buf_start), (size_t)(to - from));
    buf_drop(rt, (size_t)(to - rt->buf_start));
}

/* The VAD's events for the samples just appended. */
static void vad_events(rt_session *rt, const float *x, size_t n) {
    srv_vad_event ev[64];
    int k = srv_vad_push(rt->vad, x, n, ev, 64);
    for (int i = 0; i < k; i++) {
        if (ev[i].type == SRV_VAD_START) {
            rt->in_turn = 1;
            rt->turn_start = ev[i].sample;
            new_item_id(rt, rt->turn_item, sizeof rt->turn_item);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "audio_start_ms", (double)(ev[i].sample * 1000 / RT_RATE));
            cJSON_AddStringToObject(e, "item_id", rt->turn_item);
            send_event(rt, e, "input_audio_buffer.speech_started");
        } else if (ev[i].type == SRV_VAD_STOP && rt->in_turn) {
            rt->in_turn = 0;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "audio_end_ms", (double)(ev[i].sample * 1000 / RT_RATE));
            cJSON_AddStringToObject(e, "item_id", rt->turn_item);
            send_event(rt, e, "input_audio_buffer.speech_stopped");
            int64_t pad = (int64_t)rt->vp.prefix_padding_ms * RT_RATE / 1000;
            commit_range(rt, rt->turn_item, rt->turn_start - pad, ev[i].sample);
        }
    }
    if (!rt->in_turn) {
        /* keep only the prefix padding while nobody speaks */
        size_t keep = (size_t)rt->vp.prefix_padding_ms * RT_RATE / 1000;
        if (rt->n_buf > keep + RT_RATE) buf_drop(rt, rt->n_buf - keep);
    }
}

/* Commit the whole buffer (the client's commit, or a forced one). */
static void commit_all(rt_session *rt, const char *client_event) {
    if (rt->n_buf < RT_MIN_COMMIT) {
        send_error(rt, "invalid_request_error", "input_audio_buffer_commit_empty", NULL,
                   client_event,
                   "Error committing input audio buffer: buffer too small. Expected at least "
                   "100ms of audio, but buffer only has %.2fms of audio.",
                   (double)rt->n_buf * 1000.0 / RT_RATE);
        return;
    }
    char id[48];
    if (rt->in_turn) {
        snprintf(id, sizeof id, "%s", rt->turn_item);
        rt->in_turn = 0;
        srv_vad_reset(rt->vad, rt->total);
    } else {
        new_item_id(rt, id, sizeof id);
    }
    commit_range(rt, id, rt->buf_start, rt->buf_start + (int64_t)rt->n_buf);
}

void rt_flush(rt_session *rt) {
    if (rt->closing) return;
    rt->closing = 1;
    if ((!rt->vad_on || rt->in_turn) && rt->n_buf >= RT_MIN_COMMIT) commit_all(rt, NULL);
}

/* ---- results --------------------------------------------------------------------- */

void rt_poll(rt_session *rt) {
    for (int i = 0; i < rt->n_items;) {
        rt_item *it = &rt->items[i];
        int done = tolk_request_done(it->rq);
        int n = tolk_request_n_segments(it->rq);
        if (n > it->n_seen) {
            tolk_result *res = NULL;
            if (tolk_request_segments(it->rq, it->n_seen, &res) == TOLK_OK) {
                for (int k = 0; k < tolk_result_n_segments(res); k++) {
                    const char *t =
                        tolk_result_segment(res, k)->text ? tolk_result_segment(res, k)->text : "";
                    size_t len = strlen(t);
                    char *a = realloc(it->all, it->all_len + len + 1);
                    if (!a) break;
                    memcpy(a + it->all_len, t, len);
                    it->all_len += len;
                    a[it->all_len] = '\0';
                    it->all = a;
                    it->n_seen++;
                }
                tolk_result_free(res);
            }
            char *d = it->all ? srv_text_delta(it->all, &it->sent) : NULL;
            if (d && d[0]) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "item_id", it->id);
                cJSON_AddNumberToObject(e, "content_index", 0);
                cJSON_AddStringToObject(e, "delta", d);
                send_event(rt, e, "conversation.item.input_audio_transcription.delta");
            }
            free(d);
        }
        if (!done) {
            i++;
            continue;
        }
        tolk_status st = tolk_request_status(it->rq);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "item_id", it->id);
        cJSON_AddNumberToObject(e, "content_index", 0);
        if (st == TOLK_OK) {
            const char *t = it->all ? it->all : "";
            size_t a = strspn(t, " \t\r\n\v\f"), b = strlen(t);
            while (b > a && strchr(" \t\r\n\v\f", t[b - 1]))
                b--;
            char *txt = strndup(t + a, b - a);
            cJSON_AddStringToObject(e, "transcript", txt ? txt : "");
            free(txt);
            cJSON *u = cJSON_AddObjectToObject(e, "usage");
            cJSON_AddStringToObject(u, "type", "duration");
            cJSON_AddNumberToObject(u, "seconds", it->audio_s);
            send_event(rt, e, "conversation.item.input_audio_transcription.completed");
            rt->items_done++;
            rt->audio_done += it->audio_s;
        } else {
            cJSON *er = cJSON_AddObjectToObject(e, "error");
            cJSON_AddStringToObject(er, "type", "server_error");
            const char *m = tolk_request_last_error(it->rq);
            cJSON_AddStringToObject(er, "message", m[0] ? m : tolk_strerror(st));
            send_event(rt, e, "conversation.item.input_audio_transcription.failed");
        }
        item_clear(it);
        memmove(&rt->items[i], &rt->items[i + 1], (size_t)(rt->n_items - i - 1) * sizeof *it);
        rt->n_items--;
    }
}

/* ---- client events ---------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int set_str(char **dst, const char *v) {
    char *c = v ? strdup(v) : NULL;
    if (v && !c) return -1;
    free(*dst);
    *dst = c;
    return 0;
}

/* The transcription and turn_detection parts of an update; 0 or -1 (an
 * error was sent). */
static int apply_config(rt_session *rt, const cJSON *tr, const cJSON *td, int has_td,
                        const char *fmt_type, double rate, const char *eid) {
    if (fmt_type && strcmp(fmt_type, "audio/pcm") != 0 && strcmp(fmt_type, "pcm16") != 0) {
        send_error(rt, "invalid_request_error", "unsupported_format", "session.audio.input.format",
                   eid, "Only 24 kHz PCM16 input (audio/pcm) is supported, not '%.40s'.", fmt_type);
        return -1;
    }
    if (rate > 0 && rate != RT_RATE) {
        send_error(rt, "invalid_request_error", "unsupported_format",
                   "session.audio.input.format.rate", eid,
                   "Only 24000 Hz input is supported, not %g Hz.", rate);
        return -1;
    }
    if (cJSON_IsObject(tr)) {
        const char *model = str_of(tr, "model");
        if (model) {
            srv_model *m = rt->s ? srv_models_pick(srv_models_of(rt->s), model) : NULL;
            if (!m) {
                send_error(rt, "invalid_request_error", "model_not_found",
                           "session.audio.input.transcription.model", eid,
                           "The model '%.100s' is not served here.", model);
                return -1;
            }
            rt->model = m;
        }
        const cJSON *lang = cJSON_GetObjectItemCaseSensitive(tr, "language");
        if (cJSON_IsString(lang) && lang->valuestring[0]) {
            int li = tolk_language_index(lang->valuestring);
            if (li < 0) {
                send_error(rt, "invalid_request_error", "invalid_value",
                           "session.audio.input.transcription.language", eid,
                           "Invalid language '%.40s' (an ISO-639-1 code).", lang->valuestring);
                return -1;
            }
            set_str(&rt->language, tolk_language_code(li));
        } else if (cJSON_IsNull(lang) || cJSON_IsString(lang)) {
            set_str(&rt->language, NULL);
        }
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(tr, "prompt");
        if (cJSON_IsString(prompt)) set_str(&rt->prompt, prompt->valuestring);
    }
    if (has_td) {
        if (cJSON_IsNull(td)) {
            rt->vad_on = 0;
            rt->in_turn = 0;
            srv_vad_reset(rt->vad, rt->total);
        } else if (cJSON_IsObject(td)) {
            const char *type = str_of(td, "type");
            if (type && strcmp(type, "server_vad") != 0 && strcmp(type, "semantic_vad") != 0) {
                send_error(rt, "invalid_request_error", "invalid_value",
                           "session.audio.input.turn_detection.type", eid,
                           "Unknown turn detection '%.40s' (server_vad or null).", type);
                return -1;
            }
            srv_vad_params vp = rt->vp;
            const cJSON *v;
            if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(td, "threshold")))
                vp.threshold = (float)v->valuedouble;
            if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(td, "prefix_padding_ms")))
                vp.prefix_padding_ms = v->valueint;
            if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(td, "silence_duration_ms")))
                vp.silence_duration_ms = v->valueint;
            if (!(vp.threshold >= 0 && vp.threshold <= 1) || vp.prefix_padding_ms < 0 ||
                vp.prefix_padding_ms > 10000 || vp.silence_duration_ms < 20 ||
                vp.silence_duration_ms > 60000) {
                send_error(rt, "invalid_request_error", "invalid_value",
                           "session.audio.input.turn_detection", eid,
                           "turn_detection: threshold in [0, 1], prefix_padding_ms in [0, "
                           "10000], silence_duration_ms in [20, 60000].");
                return -1;
            }
            rt->vp = vp;
            srv_vad_set_params(rt->vad, &vp);
            if (!rt->vad_on) srv_vad_reset(rt->vad, rt->total);
            rt->vad_on = 1;
        }
    }
    return 0;
}

static int on_update(rt_session *rt, const cJSON *msg, int beta, const char *eid) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(msg, "session");
    if (!cJSON_IsObject(s)) {
        send_error(rt, "invalid_request_error", "missing_required_parameter", "session", eid,
                   "Missing required parameter: 'session'.");
        return 0;
    }
    rt->beta = beta;
    int r;
    if (beta) {
        r = apply_config(rt, cJSON_GetObjectItemCaseSensitive(s, "input_audio_transcription"),
                         cJSON_GetObjectItemCaseSensitive(s, "turn_detection"),
                         cJSON_HasObjectItem(s, "turn_detection"), str_of(s, "input_audio_format"),
                         0, eid);
    } else {
        const char *type = str_of(s, "type");
        if (type && strcmp(type, "transcription") != 0) {
            send_error(rt, "invalid_request_error", "invalid_value", "session.type", eid,
                       "This server has transcription sessions only (session.type "
                       "'transcription'), not '%.40s'.",
                       type);
            return 0;
        }
        const cJSON *in =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "audio"), "input");
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(in, "format");
        const cJSON *rate = cJSON_GetObjectItemCaseSensitive(fmt, "rate");
        r = apply_config(rt, cJSON_GetObjectItemCaseSensitive(in, "transcription"),
                         cJSON_GetObjectItemCaseSensitive(in, "turn_detection"),
                         cJSON_IsObject(in) && cJSON_HasObjectItem(in, "turn_detection"),
                         str_of(fmt, "type"), cJSON_IsNumber(rate) ? rate->valuedouble : 0, eid);
    }
    if (r == 0) send_session(rt, beta ? "transcription_session.updated" : "session.updated");
    return 0;
}

static int on_append(rt_session *rt, const cJSON *msg, const char *eid) {
    const char *b64 = str_of(msg, "audio");
    if (!b64) {
        send_error(rt, "invalid_request_error", "missing_required_parameter", "audio", eid,
                   "Missing required parameter: 'audio'.");
        return 0;
    }
    if (rt->closing) return 0; /* shutting down: no new audio */
    size_t len = strlen(b64);
    if (len % 4 != 0) {
        send_error(rt, "invalid_request_error", "invalid_value", "audio", eid,
                   "Invalid 'audio': not base64 (length %zu is not a multiple of 4).", len);
        return 0;
    }
    if (len == 0) return 0;
    unsigned char *raw = malloc(len / 4 * 3 + 4);
    if (!raw) return -1;
    int k = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
    if (k < 0) {
        free(raw);
        send_error(rt, "invalid_request_error", "invalid_value", "audio", eid,
                   "Invalid 'audio': not base64.");
        return 0;
    }
    if (b64[len - 1] == '=') k--;
    if (len >= 2 && b64[len - 2] == '=') k--;
    size_t ns = (size_t)k / 2;
    if ((size_t)k % 2 != 0) {
        free(raw);
        send_error(rt, "invalid_request_error", "invalid_value", "audio", eid,
                   "Invalid 'audio': PCM16 needs an even number of bytes (got %d).", k);
        return 0;
    }
    double max_s = rt->s ? srv_cfg(rt->s)->ws_max_buffer_s : 300.0;
    if (rt->n_buf + ns > rt->cap_buf) {
        size_t cap = rt->cap_buf ? rt->cap_buf : RT_RATE * 4;
        while (cap < rt->n_buf + ns)
            cap *= 2;
        float *b = realloc(rt->buf, cap * sizeof *b);
        if (!b) {
            free(raw);
            send_error(rt, "server_error", NULL, NULL, eid, "out of memory");
            return -1;
        }
        rt->buf = b;
        rt->cap_buf = cap;
    }
    float *dst = rt->buf + rt->n_buf;
    for (size_t i = 0; i < ns; i++)
        dst[i] = (float)(int16_t)(raw[2 * i] | (raw[2 * i + 1] << 8)) / 32768.0f;
    free(raw);
    rt->n_buf += ns;
    rt->total += (int64_t)ns;
    if (rt->vad_on) vad_events(rt, dst, ns);
    /* a buffer past the limit is committed as it is */
    if ((double)rt->n_buf / RT_RATE > max_s) commit_all(rt, NULL);
    return 0;
}

int rt_on_text(rt_session *rt, const char *data, size_t n) {
    cJSON *msg = cJSON_ParseWithLength(data, n);
    if (!cJSON_IsObject(msg)) {
        cJSON_Delete(msg);
        send_error(rt, "invalid_request_error", "invalid_json", NULL, NULL,
                   "The message is not a JSON object.");
        return 0;
    }
    const char *type = str_of(msg, "type");
    const char *eid = str_of(msg, "event_id");
    int r = 0;
    if (!type) {
        send_error(rt, "invalid_request_error", "missing_required_parameter", "type", eid,
                   "Missing required parameter: 'type'.");
    } else if (!strcmp(type, "session.update")) {
        r = on_update(rt, msg, 0, eid);
    } else if (!strcmp(type, "transcription_session.update")) {
        r = on_update(rt, msg, 1, eid);
    } else if (!strcmp(type, "input_audio_buffer.append")) {
        r = on_append(rt, msg, eid);
    } else if (!strcmp(type, "input_audio_buffer.commit")) {
        if (!rt->closing) commit_all(rt, eid);
    } else if (!strcmp(type, "input_audio_buffer.clear")) {
        buf_drop(rt, rt->n_buf);
        rt->in_turn = 0;
        srv_vad_reset(rt->vad, rt->total);
        send_event(rt, cJSON_CreateObject(), "input_audio_buffer.cleared");
    } else {
        send_error(rt, "invalid_request_error", "invalid_event", "type", eid,
                   "Unsupported event type '%.60s' in a transcription session.", type);
    }
    cJSON_Delete(msg);
    return r;
}

void rt_on_binary(rt_session *rt) {
    send_error(rt, "invalid_request_error", "invalid_event", NULL, NULL,
               "Binary messages are not part of the protocol: send JSON text events.");
}

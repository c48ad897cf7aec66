/*
 * audio_api.c — POST /v1/audio/transcriptions and /v1/audio/translations
 * (OpenAI's audio API): the form fields, the audio, one engine request,
 * and the answer — whole (json, text, srt, vtt, verbose_json) or streamed
 * (stream=true: server-sent events "transcript.text.delta" as segments
 * become final, then "transcript.text.done", as OpenAI's streaming
 * transcription sends them; an error ends the stream with
 * data: {"error": {...}}).
 *
 * Fields (OpenAI's names): file (required), model (required; a served
 * name, any name when one model is served), language (ISO-639-1 code or
 * a language name; transcriptions), prompt, response_format, temperature
 * (0..1; 0 keeps the fallback schedule 0, 0.2, ... 1.0, T > 0 starts it at
 * T, as `tolk transcribe --temperature T`), timestamp_granularities[]
 * ("segment", "word": word timestamps, verbose_json only), stream.
 * Unknown fields are ignored. Decoding follows the server's options (the
 * same defaults as `tolk transcribe`), so a transcript equals what
 * `tolk transcribe` gives for the same file.
 *
 * The audio is decoded on the connection's thread (libsndfile / FFmpeg and
 * libsoxr, as `tolk transcribe` reads files), bounded by --max_audio_s; the
 * engine then gets the samples.
 */
#include "serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- decoding the upload ------------------------------------------------------ */

/* Replace the first occurrence of what in msg by with (in place, n bytes). */
static void replace_in(char *msg, size_t n, const char *what, const char *with) {
    char *p = strstr(msg, what);
    if (!p) return;
    char tail[1024];
    snprintf(tail, sizeof tail, "%s", p + strlen(what));
    size_t at = (size_t)(p - msg);
    snprintf(msg + at, n - at, "%s%s", with, tail);
}

tolk_status srv_decode_audio(tolk_ctx *ctx, int fd, double max_s, float **samples, size_t *n,
                             char *msg, size_t msg_n, int *too_long) {
    *samples = NULL;
    *n = 0;
    *too_long = 0;
    msg[0] = '\0';
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    tolk_audio_reader *rd = NULL;
    tolk_status st = tolk_audio_open(ctx, path, &rd);
    if (st != TOLK_OK) {
        snprintf(msg, msg_n, "%s", tolk_ctx_last_error(ctx));
        return st;
    }
    int rate = 0, ch = 0;
    int64_t frames = -1;
    tolk_audio_source_info(rd, &rate, &ch, &frames);
    if (frames > 0 && rate > 0 && (double)frames / rate > max_s + 0.5) {
        *too_long = 1;
        snprintf(msg, msg_n, "the audio is %.1f s long; this server accepts at most %.0f s",
                 (double)frames / rate, max_s);
        tolk_audio_close(rd);
        return TOLK_ERR_INVALID_ARG;
    }
    size_t cap_total = (size_t)(max_s * TOLK_SAMPLE_RATE) + TOLK_SAMPLE_RATE;
    size_t cap = 16 * TOLK_SAMPLE_RATE, got = 0;
    float *buf = malloc(cap * sizeof *buf);
    if (!buf) {
        tolk_audio_close(rd);
        snprintf(msg, msg_n, "out of memory");
        return TOLK_ERR_NOMEM;
    }
    for (;;) {
        if (got == cap) {
            size_t nc = cap * 2;
            float *b = realloc(buf, nc * sizeof *b);
            if (!b) {
                st = TOLK_ERR_NOMEM;
                snprintf(msg, msg_n, "out of memory");
                break;
            }
            buf = b;
            cap = nc;
        }
        size_t k = 0;
        st = tolk_audio_read(ctx, rd, buf + got, cap - got, &k);
        if (st != TOLK_OK) {
            snprintf(msg, msg_n, "%s", tolk_ctx_last_error(ctx));
            break;
        }
        if (k == 0) break;
        got += k;
        if (got > cap_total) {
            *too_long = 1;
            st = TOLK_ERR_INVALID_ARG;
            snprintf(msg, msg_n, "the audio is longer than %.0f s, this server's limit", max_s);
            break;
        }
    }
    tolk_audio_close(rd);
    if (st == TOLK_OK && got == 0) {
        st = TOLK_ERR_EMPTY;
        snprintf(msg, msg_n, "the audio file holds no samples");
    }
    if (st != TOLK_OK) {
        free(buf);
        replace_in(msg, msg_n, path, "the uploaded file");
        return st;
    }
    *samples = buf;
    *n = got;
    return TOLK_OK;
}

/* ---- one engine request -------------------------------------------------------- */

struct srv_stream {
    srv_server *s;
    tolk_request *rq;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t signals; /* segments published (on_segment) */
    int watch;
    double audio_s;
    /* streaming state (the connection thread) */
    char *out;
    size_t out_len, out_pos;
    int n_seen;
    char *all;
    size_t all_len, sent;
    int finished;
};

static void on_segment(void *user, const tolk_segment *seg) {
    srv_stream *j = user;
    pthread_mutex_lock(&j->mu);
    j->signals++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_free(srv_stream *j) {
    if (!j) return;
    srv_watch_end(j->s, j->watch);
    if (j->rq) {
        if (!tolk_request_done(j->rq)) {
            tolk_request_cancel(j->rq);
            tolk_request_wait(j->rq); /* no callback may reach j after this */
        }
        tolk_request_free(j->rq);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->out);
    free(j->all);
    free(j);
}

void srv_stream_free(srv_stream *st) {
    job_free(st);
}

double srv_stream_audio_s(const srv_stream *st) {
    return st && st->finished == 1 ? st->audio_s : 0.0;
}

/* Append an SSE event "data: JSON\n\n" (takes json). */
static int emit(srv_stream *j, cJSON *json) {
    char *s = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!s) return -1;
    size_t k = strlen(s);
    size_t need = j->out_len - j->out_pos + k + 8;
    char *o = malloc(need + 1);
    if (!o) {
        free(s);
        return -1;
    }
    size_t left = j->out_len - j->out_pos;
    if (left) memcpy(o, j->out + j->out_pos, left);
    int w = snprintf(o + left, need + 1 - left, "data: %s\n\n", s);
    free(s);
    free(j->out);
    j->out = o;
    j->out_pos = 0;
    j->out_len = left + (size_t)w;
    return 0;
}

/* Take in the segments published since the last call; queue a delta. */
static int take_segments(srv_stream *j) {
    int n = tolk_request_n_segments(j->rq);
    if (n <= j->n_seen) return 0;
    tolk_result *res = NULL;
    if (tolk_request_segments(j->rq, j->n_seen, &res) != TOLK_OK) return -1;
    for (int i = 0; i < tolk_result_n_segments(res); i++) {
        const char *t = tolk_result_segment(res, i)->text ? tolk_result_segment(res, i)->text : "";
        size_t k = strlen(t);
        char *a = realloc(j->all, j->all_len + k + 1);
        if (!a) {
            tolk_result_free(res);
            return -1;
        }
        memcpy(a + j->all_len, t, k);
        j->all_len += k;
        a[j->all_len] = '\0';
        j->all = a;
    }
    j->n_seen += tolk_result_n_segments(res);
    tolk_result_free(res);
    if (!j->all) return 0;
    char *d = srv_text_delta(j->all, &j->sent);
    if (!d) return -1;
    int rc = 0;
    if (d[0]) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "type", "transcript.text.delta");
        cJSON_AddStringToObject(e, "delta", d);
        rc = emit(j, e);
    }
    free(d);
    return rc;
}

static void wait_signal(srv_stream *j, uint64_t seen, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (j->signals == seen)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0) break;
    pthread_mutex_unlock(&j->mu);
}

long srv_stream_read(srv_stream *j, char *buf, size_t max) {
    for (;;) {
        if (j->out_pos < j->out_len) {
            size_t k = j->out_len - j->out_pos;
            if (k > max) k = max;
            memcpy(buf, j->out + j->out_pos, k);
            j->out_pos += k;
            return (long)k;
        }
        if (j->finished) return j->finished == 1 ? -1 : -2;
        pthread_mutex_lock(&j->mu);
        uint64_t seen = j->signals;
        pthread_mutex_unlock(&j->mu);
        if (take_segments(j) != 0) {
            j->finished = 2;
            continue;
        }
        if (j->out_pos < j->out_len) continue;
        if (tolk_request_done(j->rq)) {
            if (take_segments(j) != 0) {
                j->finished = 2;
                continue;
            }
            srv_watch_end(j->s, j->watch);
            j->watch = -1;
            tolk_status st = tolk_request_status(j->rq);
            cJSON *e = cJSON_CreateObject();
            if (st == TOLK_OK) {
                char *t = j->all ? j->all : "";
                size_t a = strspn(t, " \t\r\n\v\f"), b = strlen(t);
                while (b > a && strchr(" \t\r\n\v\f", t[b - 1]))
                    b--;
                cJSON_AddStringToObject(e, "type", "transcript.text.done");
                char *txt = strndup(t + a, b - a);
                cJSON_AddStringToObject(e, "text", txt ? txt : "");
                free(txt);
                j->finished = 1;
            } else {
                cJSON *er = cJSON_AddObjectToObject(e, "error");
                const char *m = tolk_request_last_error(j->rq);
                cJSON_AddStringToObject(er, "message",
                                        st == TOLK_ERR_CANCELLED ? "the request was cancelled"
                                        : m[0]                   ? m
                                                                 : tolk_strerror(st));
                cJSON_AddStringToObject(er, "type", "server_error");
                cJSON_AddNullToObject(er, "param");
                cJSON_AddNullToObject(er, "code");
                j->finished = 3;
            }
            if (emit(j, e) != 0) j->finished = 2;
            continue;
        }
        wait_signal(j, seen, 50);
    }
}

/* ---- the request ---------------------------------------------------------------- */

static int parse_bool(const char *v, int *out) {
    if (!v) return 0;
    if (!strcasecmp(v, "true") || !strcmp(v, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !v[0]) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* The fallback schedule starting at t (tolk transcribe --temperature t). */
static void temperatures(tolk_transcribe_params *p, double t, double inc) {
    p->n_temperatures = 0;
    if (inc <= 0) {
        p->temperatures[p->n_temperatures++] = (float)t;
        return;
    }
    for (int i = 0; i < TOLK_MAX_TEMPERATURES; i++) {
        double v = t + inc * i;
        if (v > 1.0 + 1e-6) break;
        p->temperatures[p->n_temperatures++] = (float)v;
    }
}

int srv_audio_request(srv_server *s, int translate, srv_upload *u, int fd, srv_reply *r,
                      srv_stream **stream, double *audio_s) {
    *stream = NULL;
    *audio_s = 0;
    const srv_config *c = srv_cfg(s);
    if (u->file_fd < 0 || u->n_files == 0) {
        srv_reply_error(r, 400, "invalid_request_error", "file", "missing_required_parameter",
                        "Missing required parameter: 'file'.");
        return 0;
    }
    const char *model_name = srv_upload_field(u, "model");
    if (!model_name) {
        srv_reply_error(r, 400, "invalid_request_error", "model", "missing_required_parameter",
                        "Missing required parameter: 'model'.");
        return 0;
    }
    srv_model *m = srv_models_pick(srv_models_of(s), model_name);
    if (!m) {
        char names[512] = "";
        srv_models *ms = srv_models_of(s);
        for (int i = 0; i < ms->n; i++) {
            size_t k = strlen(names);
            snprintf(names + k, sizeof names - k, "%s'%s'", i ? ", " : "", ms->m[i].name);
        }
        srv_reply_error(r, 400, "invalid_request_error", "model", "model_not_found",
                        "The model '%.100s' is not served here; this server has %s.", model_name,
                        names);
        return 0;
    }
    const char *fmt_name = srv_upload_field(u, "response_format");
    int format = srv_format_from_name(fmt_name && fmt_name[0] ? fmt_name : NULL);
    if (format < 0) {
        srv_reply_error(r, 400, "invalid_request_error", "response_format", "invalid_value",
                        "Invalid value: '%.60s'. Supported values are: 'json', 'text', 'srt', "
                        "'verbose_json', and 'vtt'.",
                        fmt_name);
        return 0;
    }
    const char *gran[8];
    int n_gran = srv_upload_fields(u, "timestamp_granularities", gran, 8), gran_bits = 0;
    for (int i = 0; i < n_gran; i++) {
        if (!strcmp(gran[i], "segment")) {
            gran_bits |= SRV_GRAN_SEGMENT;
            continue;
        }
        if (!strcmp(gran[i], "word")) {
            gran_bits |= SRV_GRAN_WORD;
            continue;
        }
        srv_reply_error(r, 400, "invalid_request_error", "timestamp_granularities", "invalid_value",
                        "Invalid value: '%.60s'. Supported values are: 'word' and 'segment'.",
                        gran[i]);
        return 0;
    }
    if ((gran_bits & SRV_GRAN_WORD) && format != SRV_FMT_VERBOSE_JSON) {
        srv_reply_error(r, 400, "invalid_request_error", "timestamp_granularities", "invalid_value",
                        "timestamp_granularities[]=word needs response_format=verbose_json.");
        return 0;
    }
    tolk_transcribe_params p = c->decode;
    if (gran_bits & SRV_GRAN_WORD) p.word_timestamps = 1;
    p.task = translate ? TOLK_TASK_TRANSLATE : TOLK_TASK_TRANSCRIBE;
    const char *temp = srv_upload_field(u, "temperature");
    if (temp && temp[0]) {
        char *end;
        errno = 0;
        double t = strtod(temp, &end);
        if (*end || errno || !(t >= 0.0 && t <= 1.0)) {
            srv_reply_error(r, 400, "invalid_request_error", "temperature", "invalid_value",
                            "Invalid value for 'temperature': '%.40s' (a number from 0 to 1).",
                            temp);
            return 0;
        }
        double inc = c->decode.n_temperatures > 1
                         ? (double)(c->decode.temperatures[1] - c->decode.temperatures[0])
                         : 0.0;
        temperatures(&p, t, inc);
    }
    const char *lang = srv_upload_field(u, "language");
    if (lang && lang[0]) {
        int li = tolk_language_index(lang);
        if (li < 0) {
            srv_reply_error(r, 400, "invalid_request_error", "language", "invalid_value",
                            "Invalid language '%.40s'. Language parameter must be specified in "
                            "ISO-639-1 format.",
                            lang);
            return 0;
        }
        p.language = tolk_language_code(li);
    }
    if (!m->multilingual) p.language = "en";
    const char *prompt = srv_upload_field(u, "prompt");
    if (prompt && prompt[0]) p.initial_prompt = prompt;
    int want_stream = 0;
    if (parse_bool(srv_upload_field(u, "stream"), &want_stream) != 0) {
        srv_reply_error(r, 400, "invalid_request_error", "stream", "invalid_value",
                        "Invalid value for 'stream': expected true or false.");
        return 0;
    }
    if (srv_queue_full(s, m)) {
        srv_reply_error(r, 503, "server_error", NULL, "server_overloaded",
                        "The server is overloaded (%d requests are waiting); retry after the "
                        "time in Retry-After.",
                        c->max_queue);
        r->retry_after = srv_retry_after(s);
        return 0;
    }

    /* the audio */
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = TOLK_DEVICE_CPU;
    cp.n_threads = 1;
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(&cp, &ctx) != TOLK_OK) {
        srv_reply_error(r, 500, "server_error", NULL, NULL, "cannot create a context");
        return 0;
    }
    float *x = NULL;
    size_t n = 0;
    char msg[600];
    int too_long = 0;
    tolk_status st =
        srv_decode_audio(ctx, u->file_fd, c->max_audio_s, &x, &n, msg, sizeof msg, &too_long);
    if (st != TOLK_OK) {
        if (too_long)
            srv_reply_error(r, 400, "invalid_request_error", "file", "audio_too_long", "%s.", msg);
        else if (st == TOLK_ERR_NOMEM)
            srv_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
        else
            srv_reply_error(r, 400, "invalid_request_error", "file", "invalid_value",
                            "Invalid file format: %s%s%s. Supported formats: flac, mp3, mp4, "
                            "mpeg, mpga, m4a, ogg, wav, webm (and what libsndfile / FFmpeg "
                            "read).",
                            u->file_name ? u->file_name : "the file", msg[0] ? ": " : "", msg);
        tolk_ctx_free(ctx);
        return 0;
    }

    srv_stream *j = calloc(1, sizeof *j);
    if (!j) {
        free(x);
        tolk_ctx_free(ctx);
        srv_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    j->s = s;
    j->watch = -1;
    j->audio_s = (double)n / TOLK_SAMPLE_RATE;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    p.on_segment = on_segment;
    p.progress = NULL;
    p.user = j;
    st = tolk_engine_submit_samples(m->engine, x, n, &p, &j->rq);
    free(x);
    if (st != TOLK_OK) {
        srv_reply_error(r, 500, "server_error", NULL, NULL, "the engine refused the request: %s",
                        tolk_engine_last_error(m->engine));
        job_free(j);
        tolk_ctx_free(ctx);
        return 0;
    }
    j->watch = srv_watch_begin(s, fd, j->rq);
    if (want_stream) {
        tolk_ctx_free(ctx);
        *stream = j;
        return 1;
    }
    st = tolk_request_wait(j->rq);
    srv_watch_end(s, j->watch);
    j->watch = -1;
    if (st == TOLK_OK) {
        tolk_result *res = NULL;
        st = tolk_request_result(j->rq, &res);
        if (st == TOLK_OK &&
            srv_render_result(r, ctx, res, format, translate ? "translate" : "transcribe",
                              gran_bits) == 0)
            *audio_s = j->audio_s;
        else if (st == TOLK_OK)
            srv_reply_error(r, 500, "server_error", NULL, NULL, "cannot render the result");
        tolk_result_free(res);
    }
    if (st == TOLK_ERR_CANCELLED) {
        if (srv_peer_gone(fd)) {
            r->status = 499;
        } else {
            srv_reply_error(r, 503, "server_error", NULL, "server_shutting_down",
                            "The request was cancelled: the server is shutting down.");
            r->close = 1;
        }
    } else if (st != TOLK_OK && !r->status) {
        const char *em = tolk_request_last_error(j->rq);
        srv_reply_error(r, 500, "server_error", NULL, NULL, "transcription failed: %s",
                        em[0] ? em : tolk_strerror(st));
    }
    job_free(j);
    tolk_ctx_free(ctx);
    return 0;
}

/*
 * respond.c — response bodies of `tolk serve`, shaped as OpenAI's audio API
 * returns them:
 *   errors        {"error": {"message", "type", "param", "code"}}
 *   json          {"text": "...", "usage": {"type": "duration", "seconds": S}}
 *   text          the transcript and a newline
 *   srt, vtt      openai-whisper's subtitle writers (tolk_render), the
 *                 same bytes `tolk transcribe -f srt|vtt` writes
 *   verbose_json  {"task", "language" (English name), "duration", "text",
 *                 "segments": [{"id", "seek", "start", "end", "text",
 *                 "tokens", "temperature", "avg_logprob",
 *                 "compression_ratio", "no_speech_prob"}], "words": [{"word",
 *                 "start", "end"}] (timestamp_granularities[]=word), "usage"}
 * The transcript ("text") is every segment's text with the outer white
 * space removed, as the API gives it (openai-whisper's own result keeps a
 * leading space).
 */
#include "serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void srv_reply_text(srv_reply *r, int status, const char *content_type, char *body, size_t len) {
    free(r->body);
    r->status = status;
    r->content_type = content_type;
    r->body = body;
    r->len = len;
}

void srv_reply_json(srv_reply *r, int status, cJSON *json) {
    char *s = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!s) {
        static const char oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": "
                                  "\"server_error\", \"param\": null, \"code\": null}}";
        srv_reply_text(r, 500, "application/json", strdup(oom), sizeof oom - 1);
        if (!r->body) r->len = 0;
        return;
    }
    srv_reply_text(r, status, "application/json", s, strlen(s));
}

void srv_reply_error(srv_reply *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (e) {
        cJSON_AddStringToObject(e, "message", msg);
        cJSON_AddStringToObject(e, "type", type);
        if (param)
            cJSON_AddStringToObject(e, "param", param);
        else
            cJSON_AddNullToObject(e, "param");
        if (code)
            cJSON_AddStringToObject(e, "code", code);
        else
            cJSON_AddNullToObject(e, "code");
    }
    srv_reply_json(r, status, root);
    r->err_code = code ? code : type;
}

int srv_format_from_name(const char *name) {
    static const char *const names[] = {"json", "text", "srt", "vtt", "verbose_json"};
    if (!name) return SRV_FMT_JSON;
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

const char *srv_language_name(const char *code) {
    int i = code && code[0] ? tolk_language_index(code) : -1;
    const char *n = i >= 0 ? tolk_language_name(i) : NULL;
    return n ? n : (code ? code : "");
}

char *srv_result_text(const tolk_result *res) {
    size_t total = 0;
    for (int i = 0; i < tolk_result_n_segments(res); i++)
        total += tolk_result_segment(res, i)->text ? strlen(tolk_result_segment(res, i)->text) : 0;
    char *all = malloc(total + 1);
    if (!all) return NULL;
    size_t at = 0;
    for (int i = 0; i < tolk_result_n_segments(res); i++) {
        const char *t = tolk_result_segment(res, i)->text;
        if (!t) continue;
        size_t k = strlen(t);
        memcpy(all + at, t, k);
        at += k;
    }
    all[at] = '\0';
    size_t a = 0;
    while (a < at && is_ws(all[a]))
        a++;
    size_t b = at;
    while (b > a && is_ws(all[b - 1]))
        b--;
    memmove(all, all + a, b - a);
    all[b - a] = '\0';
    return all;
}

char *srv_text_delta(const char *all, size_t *sent) {
    while (*all && is_ws(*all))
        all++;
    size_t end = strlen(all);
    while (end > 0 && is_ws(all[end - 1]))
        end--;
    if (end <= *sent) return strdup("");
    size_t n = end - *sent;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, all + *sent, n);
    d[n] = '\0';
    *sent = end;
    return d;
}

/* Seconds rounded to milliseconds (JSON numbers without float noise). */
static double ms_round(double s) {
    return round(s * 1000.0) / 1000.0;
}

/* A float as the reference's JSON shows it: the shortest decimal that
 * reads back as the same float32. */
static double f32_json(float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static cJSON *usage_json(double duration) {
    cJSON *u = cJSON_CreateObject();
    if (!u) return NULL;
    cJSON_AddStringToObject(u, "type", "duration");
    cJSON_AddNumberToObject(u, "seconds", ceil(duration));
    return u;
}

static cJSON *segment_json(const tolk_segment *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "id", s->id);
    cJSON_AddNumberToObject(o, "seek", s->seek);
    cJSON_AddNumberToObject(o, "start", ms_round(s->start));
    cJSON_AddNumberToObject(o, "end", ms_round(s->end));
    cJSON_AddStringToObject(o, "text", s->text ? s->text : "");
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; toks && i < s->n_tokens; i++)
        cJSON_AddItemToArray(toks, cJSON_CreateNumber(s->tokens[i]));
    cJSON_AddNumberToObject(o, "temperature", f32_json(s->temperature));
    cJSON_AddNumberToObject(o, "avg_logprob", f32_json(s->avg_logprob));
    cJSON_AddNumberToObject(o, "compression_ratio", f32_json(s->compression_ratio));
    cJSON_AddNumberToObject(o, "no_speech_prob", f32_json(s->no_speech_prob));
    return o;
}

/* A word as the API gives it: {"word" (outer white space removed), "start", "end"}. */
static cJSON *word_json(const tolk_word *w) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const char *a = w->word ? w->word : "";
    while (is_ws(*a))
        a++;
    size_t n = strlen(a);
    while (n > 0 && is_ws(a[n - 1]))
        n--;
    char *t = malloc(n + 1);
    if (!t) {
        cJSON_Delete(o);
        return NULL;
    }
    memcpy(t, a, n);
    t[n] = '\0';
    cJSON_AddStringToObject(o, "word", t);
    free(t);
    cJSON_AddNumberToObject(o, "start", ms_round(w->start));
    cJSON_AddNumberToObject(o, "end", ms_round(w->end));
    return o;
}

int srv_render_result(srv_reply *r, tolk_ctx *ctx, const tolk_result *res, int format,
                      const char *task, int gran) {
    char *text = srv_result_text(res);
    if (!text) return -1;
    if (format == SRV_FMT_TEXT) {
        size_t n = strlen(text);
        char *body = realloc(text, n + 2);
        if (!body) {
            free(text);
            return -1;
        }
        body[n] = '\n';
        body[n + 1] = '\0';
        srv_reply_text(r, 200, "text/plain; charset=utf-8", body, n + 1);
        return 0;
    }
    if (format == SRV_FMT_SRT || format == SRV_FMT_VTT) {
        free(text);
        char *out = NULL;
        size_t len = 0;
        tolk_status st = tolk_render(
            ctx, res, format == SRV_FMT_SRT ? TOLK_OUTPUT_SRT : TOLK_OUTPUT_VTT, &out, &len);
        if (st != TOLK_OK) return -1;
        /* tolk_free'd memory must not go to free(): copy */
        char *body = malloc(len + 1);
        if (!body) {
            tolk_free(out);
            return -1;
        }
        memcpy(body, out, len);
        body[len] = '\0';
        tolk_free(out);
        srv_reply_text(r, 200,
                       format == SRV_FMT_SRT ? "application/x-subrip; charset=utf-8"
                                             : "text/vtt; charset=utf-8",
                       body, len);
        return 0;
    }
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        free(text);
        return -1;
    }
    if (format == SRV_FMT_VERBOSE_JSON) {
        cJSON_AddStringToObject(root, "task", task);
        cJSON_AddStringToObject(root, "language", srv_language_name(tolk_result_language(res)));
        cJSON_AddNumberToObject(root, "duration", ms_round(tolk_result_duration(res)));
        cJSON_AddStringToObject(root, "text", text);
        if (gran != SRV_GRAN_WORD) {
            cJSON *segs = cJSON_AddArrayToObject(root, "segments");
            for (int i = 0; segs && i < tolk_result_n_segments(res); i++)
                cJSON_AddItemToArray(segs, segment_json(tolk_result_segment(res, i)));
        }
        if (gran & SRV_GRAN_WORD) {
            cJSON *words = cJSON_AddArrayToObject(root, "words");
            for (int i = 0; words && i < tolk_result_n_segments(res); i++) {
                const tolk_segment *sg = tolk_result_segment(res, i);
                for (int k = 0; k < sg->n_words; k++)
                    cJSON_AddItemToArray(words, word_json(tolk_segment_word(sg, k)));
            }
        }
    } else {
        cJSON_AddStringToObject(root, "text", text);
    }
    cJSON_AddItemToObject(root, "usage", usage_json(tolk_result_duration(res)));
    free(text);
    srv_reply_json(r, 200, root);
    return r->status == 200 ? 0 : -1;
}

/*
 * serve.h — `tolk serve`: an OpenAI-compatible speech server over the
 * scheduler (tolk_engine). Internal to the server; the command line
 * (src/cli/cmd_serve.c) fills a srv_config and runs a srv_server.
 *
 * Reproduces the HTTP surface of OpenAI's audio API as the official client
 * uses it:
 *   POST /v1/audio/transcriptions, /v1/audio/translations  (multipart form;
 *        json, text, srt, vtt, verbose_json; stream=true as server-sent
 *        events transcript.text.delta / transcript.text.done)
 *   GET  /v1/models, /v1/models/{id}
 *   GET  /v1/realtime                (WebSocket: Realtime API transcription
 *                                     sessions, realtime.c)
 *   GET  /health, /metrics           (Prometheus text)
 * with error bodies {"error": {"message", "type", "param", "code"}}.
 *
 * Pieces (one concern per file):
 *   server.c        libmicrohttpd daemon (a thread per connection), routing,
 *                   API key, limits (429 / 503 / 413), drain on shutdown,
 *                   the client watchdog, one log line per request
 *   upload.c        request bodies: multipart form through MHD's post
 *                   processor, the file part into a memfd
 *   audio_api.c     the audio endpoints: parameters, decoding, the engine
 *                   request, the response (whole or streamed)
 *   respond.c       response bodies: errors, json / verbose_json / text /
 *                   srt / vtt, incremental text for deltas
 *   metrics.c       counters and the Prometheus exposition
 *   models.c        the served models, one engine each
 *   realtime.c      WebSocket upgrade and framing (wslay) for a session;
 *                   sessions close themselves when the server drains
 *   realtime_proto.c the Realtime protocol: events in, events out (no I/O)
 *   vad.c           voice activity: a scorer interface, an energy scorer,
 *                   the turn detector (server_vad)
 *
 * The library never prints; the server logs one line per request (and one
 * per realtime session) to stderr through srv_log.
 */
#ifndef TOLK_SERVE_H
#define TOLK_SERVE_H

#include "tolk.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Configuration (filled by the CLI)                                        */
/* ------------------------------------------------------------------------ */

#define SRV_MAX_MODELS 8

typedef struct srv_model_spec {
    const char *name; /* served name: the get-model name or the directory's base name */
    const char *path; /* resolved path */
} srv_model_spec;

typedef struct srv_config {
    const char *host;    /* address to bind ("127.0.0.1") */
    int port;            /* 0: any free port (printed on stderr) */
    const char *api_key; /* NULL: no authentication */
    srv_model_spec models[SRV_MAX_MODELS];
    int n_models;
    /* model loading and the engine */
    tolk_device device;
    int compute_type;
    int kv_cache; /* tolk_kv_cache_type */
    int gelu;     /* tolk_gelu_type */
    int n_threads;
    tolk_engine_params engine;     /* per model */
    tolk_transcribe_params decode; /* server-wide decoding defaults */
    /* limits */
    uint64_t max_body_bytes;   /* request body (413 beyond) */
    double max_audio_s;        /* decoded audio per request (400 beyond) */
    int max_concurrent;        /* audio requests in progress (429 beyond) */
    int max_queue;             /* engine requests waiting for a slot (503 beyond) */
    int max_connections;       /* open connections (the HTTP library refuses beyond) */
    unsigned read_timeout_s;   /* a connection idle this long is closed */
    unsigned upload_timeout_s; /* a request body must arrive within this */
    size_t max_header_bytes;   /* request line + headers (431 / 413 beyond) */
    /* realtime */
    int max_sessions;       /* WebSocket sessions at once (429 beyond) */
    size_t ws_max_message;  /* bytes of one WebSocket message (close 1009 beyond) */
    unsigned ws_idle_s;     /* a session silent this long is closed */
    double ws_max_buffer_s; /* uncommitted input audio kept by a session */
    /* shutdown */
    double drain_timeout_s; /* SIGTERM: wait this long for requests in flight */
    int quiet;              /* no per-request log lines */
} srv_config;

/* Defaults for everything but host/port/models (see cmd_serve.c --help). */
void srv_config_defaults(srv_config *c);

/* ------------------------------------------------------------------------ */
/* Logging (stderr, one line per call, thread safe)                         */
/* ------------------------------------------------------------------------ */

void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic seconds. */
double srv_now(void);

/* ------------------------------------------------------------------------ */
/* Models (models.c)                                                        */
/* ------------------------------------------------------------------------ */

typedef struct srv_model {
    char name[128];
    char *path;
    tolk_model *model;
    tolk_engine *engine;
    int multilingual;
    int slots; /* requests decoding at once (the engine's max_requests) */
} srv_model;

typedef struct srv_models {
    srv_model m[SRV_MAX_MODELS];
    int n;
    int64_t created; /* unix time the server started (the models' "created") */
} srv_models;

/* Load every model of c and start its engine. On failure prints nothing,
 * fills err (a sentence) and leaves *out empty. */
int srv_models_load(const srv_config *c, tolk_ctx *ctx, srv_models *out, char *err, size_t n);
void srv_models_free(srv_models *ms);
/* The model a request names: with one model served, any name (also NULL);
 * else the exact name; NULL when none matches. */
srv_model *srv_models_pick(srv_models *ms, const char *name);

/* ------------------------------------------------------------------------ */
/* Metrics (metrics.c)                                                      */
/* ------------------------------------------------------------------------ */

enum srv_endpoint {
    SRV_EP_TRANSCRIPTIONS = 0,
    SRV_EP_TRANSLATIONS,
    SRV_EP_REALTIME,
    SRV_EP_MODELS,
    SRV_EP_HEALTH,
    SRV_EP_METRICS,
    SRV_EP_OTHER,
    SRV_EP_COUNT
};

#define SRV_LAT_BUCKETS 14

typedef struct srv_metrics {
    pthread_mutex_t mu;
    int64_t requests[SRV_EP_COUNT][6];      /* by status class: [1xx..5xx] at 1..5; 0 other */
    int64_t by_status[SRV_EP_COUNT][600];   /* exact statuses */
    int64_t rejected_busy;                  /* 429: too many requests in progress */
    int64_t rejected_queue;                 /* 503: the engine queue is full */
    int64_t rejected_draining;              /* 503: shutting down */
    int64_t client_gone;                    /* requests whose client left before the answer */
    double audio_s;                         /* seconds of audio transcribed (completed) */
    int64_t lat_count[SRV_LAT_BUCKETS + 1]; /* request latency histogram (audio endpoints) */
    double lat_sum;
    int64_t lat_n;
    double ewma_latency_s; /* recent mean latency, for Retry-After */
    int64_t sessions_total;
    int64_t realtime_items;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
/* Count a finished HTTP request. latency_s < 0: not an audio request. */
void srv_metrics_request(srv_metrics *m, int ep, int status, double latency_s, double audio_s);
/* The Prometheus text exposition; malloc'd, *len set. */
char *srv_metrics_render(srv_metrics *m, srv_models *ms, int in_flight, int sessions, int draining,
                         size_t *len);

/* ------------------------------------------------------------------------ */
/* The server (server.c)                                                    */
/* ------------------------------------------------------------------------ */

typedef struct srv_server srv_server;

/* Load the models, bind, start serving. *out on success; else a message
 * in err. */
int srv_start(const srv_config *c, srv_server **out, char *err, size_t n);
/* The port bound (after srv_start). */
int srv_port(const srv_server *s);
/* Stop accepting, let the requests in flight finish (up to the drain
 * timeout, then cancel them), close every connection, free everything. */
void srv_stop(srv_server *s);

/* For the endpoint files: */
const srv_config *srv_cfg(const srv_server *s);
srv_models *srv_models_of(srv_server *s);
srv_metrics *srv_metrics_of(srv_server *s);
int srv_draining(const srv_server *s);
/* Seconds a refused client should wait (Retry-After). */
int srv_retry_after(srv_server *s);
/* Admission of an audio request / a realtime session: 0 admitted (release
 * later with srv_release), else the HTTP status to refuse with (429 / 503)
 * and *why set. */
int srv_admit(srv_server *s, int session, const char **why, const char **code);
void srv_release(srv_server *s, int session);
/* Whether the engine queue of model is full (then 503). */
int srv_queue_full(srv_server *s, srv_model *m);

/* The watchdog: while registered, a client that closes fd has req
 * cancelled. Returns a handle for srv_watch_end. */
int srv_watch_begin(srv_server *s, int fd, tolk_request *req);
void srv_watch_end(srv_server *s, int handle);
/* Whether the peer of fd has closed the connection (or it failed). */
int srv_peer_gone(int fd);

/* ------------------------------------------------------------------------ */
/* Responses (respond.c)                                                    */
/* ------------------------------------------------------------------------ */

/* A response body built by the endpoints: status, content type, body
 * (malloc'd), extra headers. */
typedef struct srv_reply {
    int status;
    const char *content_type;
    char *body;
    size_t len;
    int retry_after;      /* > 0: a Retry-After header */
    int close;            /* close the connection after it */
    const char *err_code; /* for the log: the error code, if any */
} srv_reply;

/* An OpenAI error body: {"error": {"message", "type", "param", "code"}};
 * param / code may be NULL (JSON null). */
void srv_reply_error(srv_reply *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A JSON body (takes a cJSON tree, frees it). */
struct cJSON;
void srv_reply_json(srv_reply *r, int status, struct cJSON *json);
void srv_reply_text(srv_reply *r, int status, const char *content_type, char *body, size_t len);

enum srv_format { SRV_FMT_JSON = 0, SRV_FMT_TEXT, SRV_FMT_SRT, SRV_FMT_VTT, SRV_FMT_VERBOSE_JSON };
/* "json" ... -> format; -1 unknown. */
int srv_format_from_name(const char *name);

/* timestamp_granularities[] of a request (bits; 0: none given) */
enum { SRV_GRAN_SEGMENT = 1, SRV_GRAN_WORD = 2 };
/* The response body of a finished transcription in format. task:
 * "transcribe" / "translate"; gran (SRV_GRAN_* bits, 0: the default): in
 * verbose_json, "segments" unless only words were asked for, "words" (each
 * {"word", "start", "end"}, outer white space removed) when they were.
 * Returns 0, or -1 (out of memory). */
int srv_render_result(srv_reply *r, tolk_ctx *ctx, const tolk_result *res, int format,
                      const char *task, int gran);
/* The transcript as the API gives it: all segments' text, outer white
 * space removed; malloc'd. */
char *srv_result_text(const tolk_result *res);
/* Incremental text: after the segments so far (their concatenated text in
 * all, len n), the part of the stripped transcript not yet sent (sent:
 * bytes sent before, updated). Trailing white space is held back until more
 * text follows. Returns a malloc'd delta ("" when nothing new). */
char *srv_text_delta(const char *all, size_t *sent);
/* The English name of a language code ("en" -> "english"), static. */
const char *srv_language_name(const char *code);

/* ------------------------------------------------------------------------ */
/* Uploads (upload.c)                                                       */
/* ------------------------------------------------------------------------ */

#define SRV_MAX_FIELDS 32

typedef struct srv_field {
    char *name;
    char *value; /* NUL-terminated, at most 64 KiB */
    size_t len;
} srv_field;

typedef struct srv_upload {
    struct MHD_PostProcessor *pp;
    srv_field fields[SRV_MAX_FIELDS];
    int n_fields;
    int empty_open; /* the last field was opened by an empty first chunk */
    int file_fd;    /* memfd with the file part, -1 */
    uint64_t file_bytes;
    char *file_name; /* the part's filename */
    int n_files;     /* file parts seen */
    int error;       /* 1: a field too large or too many */
    char errmsg[160];
} srv_upload;

struct MHD_Connection;
/* Start parsing a multipart/form-data body (the content type was checked).
 * Returns 0, or -1 (the body is not a form MHD can parse). */
int srv_upload_begin(srv_upload *u, struct MHD_Connection *c);
/* Feed body bytes. Returns 0, or -1 (malformed; u->errmsg says why). */
int srv_upload_feed(srv_upload *u, const char *data, size_t n);
/* End of body: flush the parser. Returns 0 or -1. */
int srv_upload_end(srv_upload *u);
void srv_upload_free(srv_upload *u);
/* A field's value (the last one of that name), or NULL. */
const char *srv_upload_field(const srv_upload *u, const char *name);
/* Every value of a repeated field (name "x[]" or "x"), into out[max]. */
int srv_upload_fields(const srv_upload *u, const char *name, const char **out, int max);

/* ------------------------------------------------------------------------ */
/* Audio endpoints (audio_api.c)                                            */
/* ------------------------------------------------------------------------ */

/* A finished upload to /v1/audio/{transcriptions,translations}: either a
 * reply (r filled: an error, or a whole response), or a streaming response
 * (returns 1 and *stream set: server-sent events produced by
 * srv_stream_read until it returns -1, then srv_stream_free). fd: the
 * client's socket (watched while decoding). */
typedef struct srv_stream srv_stream;
int srv_audio_request(srv_server *s, int translate, srv_upload *u, int fd, srv_reply *r,
                      srv_stream **stream, double *audio_s);
/* Produce up to max bytes of the event stream into buf (blocking until
 * some are ready); returns the count, or -1 at the end, -2 on failure. */
long srv_stream_read(srv_stream *st, char *buf, size_t max);
void srv_stream_free(srv_stream *st);
/* The audio seconds of a stream's request (0 until done). */
double srv_stream_audio_s(const srv_stream *st);

/* Decode an uploaded audio file (in fd, size bytes) to 16 kHz mono; at
 * most max_s seconds. Returns TOLK_OK, or a status with msg filled. */
tolk_status srv_decode_audio(tolk_ctx *ctx, int fd, double max_s, float **samples, size_t *n,
                             char *msg, size_t msg_n, int *too_long);

/* ------------------------------------------------------------------------ */
/* Realtime (realtime.c)                                                    */
/* ------------------------------------------------------------------------ */

struct MHD_Response;
/* Answer a WebSocket upgrade request on /v1/realtime: a 101 response whose
 * handler runs the session on a thread of its own, or an error reply in r
 * (then returns NULL). query_model: the ?model= parameter. *pending: the
 * session waiting for the upgrade; when the connection ends without it
 * (the client left before the 101 went out), srv_realtime_abandon frees it
 * and its session slot. */
struct MHD_Response *srv_realtime_upgrade(srv_server *s, struct MHD_Connection *c,
                                          const char *query_model, srv_reply *r, void **pending);
void srv_realtime_abandon(void *pending);
/* The upgrade handler says the session started (req_cls: the request's). */
void srv_upgrade_started(void *req_cls);

#endif

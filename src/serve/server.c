/*
 * server.c — the HTTP side of `tolk serve` on libmicrohttpd: one thread per
 * connection (a request may block its own thread while the engine works;
 * the engine, not the connection threads, is where requests share work),
 * routing, the API key, the limits, the client watchdog, draining on
 * shutdown and one log line per request.
 *
 * Limits, each answered as OpenAI's API answers them (error body
 * {"error": {...}}):
 *   - a body longer than --max_body_mb: 413 (the rest of the body is read
 *     and dropped, up to 4x the limit, so the client reads the answer
 *     instead of a reset connection; beyond that, or with `Expect:
 *     100-continue`, the answer goes at once and the connection closes);
 *   - more audio requests in progress than --max_concurrent: 429, and a
 *     full engine queue (--max_queue waiting for a decoding slot): 503,
 *     both with Retry-After (seconds from the recent latency and the
 *     queue); the body is drained first, as above;
 *   - headers larger than --max_header_kb: the HTTP library's 431;
 *     a connection idle for --read_timeout_s is closed, a body that takes
 *     longer than --upload_timeout_s is answered 408;
 *   - API key (--api_key or TOLK_API_KEY): "Authorization: Bearer KEY",
 *     compared as SHA-256 digests with CRYPTO_memcmp (constant time) → 401.
 * While the engine works on a request its connection is watched: a client
 * that closes the connection has its request cancelled (status 499 in
 * the log).
 *
 * Draining (srv_stop, on SIGTERM): the listening socket closes at once (new
 * connections are refused, so a balancer sends them elsewhere), /health
 * says 503, requests arriving on open connections get 503 "shutting
 * down"; requests and realtime sessions in flight run to their end (up to
 * --drain_timeout_s, then they are cancelled); then the daemon stops.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- logging and time ------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void srv_log(const char *fmt, ...) {
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int k = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    k += snprintf(line + k, sizeof line - (size_t)k, ".%03ldZ ", ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_mu);
}

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_config_defaults(srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->device = TOLK_DEVICE_AUTO;
    c->compute_type = TOLK_COMPUTE_AUTO;
    c->kv_cache = TOLK_KV_AUTO;
    c->gelu = TOLK_GELU_AUTO;
    c->engine = tolk_engine_default_params();
    c->decode = tolk_transcribe_default_params();
    c->max_body_bytes = 25u << 20; /* OpenAI's limit */
    c->max_audio_s = 3600;
    c->max_concurrent = 128;
    c->max_queue = 64;
    c->max_connections = 1024;
    c->read_timeout_s = 30;
    c->upload_timeout_s = 300;
    c->max_header_bytes = 32 * 1024;
    c->max_sessions = 64;
    c->ws_max_message = 4u << 20;
    c->ws_idle_s = 120;
    c->ws_max_buffer_s = 300;
    c->drain_timeout_s = 120;
}

/* ---- the server ------------------------------------------------------------- */

typedef struct watch_entry {
    int fd;
    tolk_request *req;
    uint64_t gen; /* 0: free */
} watch_entry;

struct srv_server {
    srv_config cfg;
    srv_models models;
    srv_metrics metrics;
    tolk_ctx *ctx;
    struct MHD_Daemon *d;
    int port;
    unsigned char key_digest[32];
    int has_key;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* in_flight / sessions dropped */
    int in_flight, sessions, draining;
    /* the watchdog */
    pthread_t watch_thread;
    int watch_stop, watch_started;
    watch_entry *watch;
    int n_watch, cap_watch;
    uint64_t watch_gen;
};

const srv_config *srv_cfg(const srv_server *s) {
    return &s->cfg;
}
srv_models *srv_models_of(srv_server *s) {
    return &s->models;
}
srv_metrics *srv_metrics_of(srv_server *s) {
    return &s->metrics;
}
int srv_port(const srv_server *s) {
    return s->port;
}

int srv_draining(const srv_server *s) {
    srv_server *m = (srv_server *)s;
    pthread_mutex_lock(&m->mu);
    int d = m->draining;
    pthread_mutex_unlock(&m->mu);
    return d;
}

int srv_retry_after(srv_server *s) {
    pthread_mutex_lock(&s->metrics.mu);
    double lat = s->metrics.ewma_latency_s;
    pthread_mutex_unlock(&s->metrics.mu);
    int queued = 0, slots = 0;
    for (int i = 0; i < s->models.n; i++) {
        tolk_engine_stats st;
        tolk_engine_get_stats(s->models.m[i].engine, &st);
        queued += st.queued;
        slots += s->models.m[i].slots;
    }
    if (slots < 1) slots = 1;
    double t = lat > 0 ? lat * (double)(queued + slots) / (double)slots : 1.0;
    int r = (int)ceil(t);
    return r < 1 ? 1 : r > 30 ? 30 : r;
}

int srv_admit(srv_server *s, int session, const char **why, const char **code) {
    int status = 0;
    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        status = 503;
        *why = "the server is shutting down; retry on another instance";
        *code = "server_shutting_down";
    } else if (session && s->sessions >= s->cfg.max_sessions) {
        status = 429;
        *why = "too many realtime sessions at once; retry later";
        *code = "too_many_sessions";
    } else if (!session && s->in_flight >= s->cfg.max_concurrent) {
        status = 429;
        *why = "too many requests in progress; retry after the time in Retry-After";
        *code = "rate_limit_exceeded";
    } else if (session) {
        s->sessions++;
    } else {
        s->in_flight++;
    }
    pthread_mutex_unlock(&s->mu);
    if (status) {
        pthread_mutex_lock(&s->metrics.mu);
        if (status == 429)
            s->metrics.rejected_busy++;
        else
            s->metrics.rejected_draining++;
        pthread_mutex_unlock(&s->metrics.mu);
    }
    return status;
}

void srv_release(srv_server *s, int session) {
    pthread_mutex_lock(&s->mu);
    if (session)
        s->sessions--;
    else
        s->in_flight--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

int srv_queue_full(srv_server *s, srv_model *m) {
    tolk_engine_stats st;
    tolk_engine_get_stats(m->engine, &st);
    if (st.queued < s->cfg.max_queue) return 0;
    pthread_mutex_lock(&s->metrics.mu);
    s->metrics.rejected_queue++;
    pthread_mutex_unlock(&s->metrics.mu);
    return 1;
}

/* ---- the watchdog: clients that leave while their request runs ------------- */

int srv_peer_gone(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    int k = poll(&p, 1, 0);
    return k > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

int srv_watch_begin(srv_server *s, int fd, tolk_request *req) {
    pthread_mutex_lock(&s->mu);
    int h = -1;
    for (int i = 0; i < s->n_watch; i++)
        if (!s->watch[i].gen) {
            h = i;
            break;
        }
    if (h < 0) {
        if (s->n_watch == s->cap_watch) {
            int cap = s->cap_watch ? 2 * s->cap_watch : 64;
            watch_entry *w = realloc(s->watch, (size_t)cap * sizeof *w);
            if (!w) {
                pthread_mutex_unlock(&s->mu);
                return -1;
            }
            s->watch = w;
            s->cap_watch = cap;
        }
        h = s->n_watch++;
    }
    s->watch[h].fd = fd;
    s->watch[h].req = req;
    s->watch[h].gen = ++s->watch_gen;
    pthread_mutex_unlock(&s->mu);
    return h;
}

void srv_watch_end(srv_server *s, int h) {
    if (h < 0) return;
    pthread_mutex_lock(&s->mu);
    s->watch[h].gen = 0;
    s->watch[h].req = NULL;
    pthread_mutex_unlock(&s->mu);
}

static void *watch_main(void *arg) {
    srv_server *s = arg;
    struct pollfd *pf = NULL;
    uint64_t *gens = NULL;
    int *idx = NULL;
    int cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->watch_stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (cap < s->n_watch) {
            int nc = s->cap_watch;
            struct pollfd *a = realloc(pf, (size_t)nc * sizeof *a);
            if (a) pf = a;
            uint64_t *g = realloc(gens, (size_t)nc * sizeof *g);
            if (g) gens = g;
            int *x = realloc(idx, (size_t)nc * sizeof *x);
            if (x) idx = x;
            if (a && g && x) cap = nc;
        }
        int n = 0;
        for (int i = 0; i < s->n_watch && n < cap; i++)
            if (s->watch[i].gen) {
                pf[n].fd = s->watch[i].fd;
                pf[n].events = POLLRDHUP;
                pf[n].revents = 0;
                gens[n] = s->watch[i].gen;
                idx[n] = i;
                n++;
            }
        pthread_mutex_unlock(&s->mu);
        if (n == 0) {
            usleep(100 * 1000);
            continue;
        }
        int k = poll(pf, (nfds_t)n, 100);
        if (k <= 0) continue;
        for (int j = 0; j < n; j++) {
            if (!(pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
            pthread_mutex_lock(&s->mu);
            watch_entry *w = &s->watch[idx[j]];
            if (w->gen == gens[j] && w->req && srv_peer_gone(w->fd)) {
                tolk_request_cancel(w->req);
                w->gen = 0; /* cancelled once; the owner still calls srv_watch_end */
                w->req = NULL;
            }
            pthread_mutex_unlock(&s->mu);
        }
        usleep(20 * 1000); /* level-triggered hang-ups of entries not yet ended */
    }
    free(pf);
    free(gens);
    free(idx);
    return NULL;
}

/* ---- per request --------------------------------------------------------------- */

typedef struct conn_req {
    int ep;
    int post;
    double t0;
    char method[12];
    char url[200];
    char peer[64];
    int admitted;    /* holds an audio-request slot */
    int has_pending; /* an error answer after the body is drained */
    srv_reply pending;
    uint64_t body_bytes;
    uint64_t discard_cap;
    int upload_started;
    srv_upload up;
    int status;
    const char *err_code;
    double audio_s;
    int client_gone;
    srv_stream *stream; /* owned by the response once queued */
    double stream_audio;
    int upgraded;
    int ws_started;   /* the upgrade handler ran */
    void *ws_pending; /* the session waiting for it */
    char model[48];   /* the request's `model` field, for the log */
} conn_req;

static void set_pending(conn_req *r, srv_reply *rep) {
    if (r->has_pending) {
        free(rep->body);
        return;
    }
    r->pending = *rep;
    r->has_pending = 1;
}

static int route(const char *url, const char *method, int *post) {
    *post = !strcmp(method, "POST");
    if (!strncmp(url, "/v1/", 4)) url += 3;
    if (!strcmp(url, "/audio/transcriptions")) return SRV_EP_TRANSCRIPTIONS;
    if (!strcmp(url, "/audio/translations")) return SRV_EP_TRANSLATIONS;
    if (!strcmp(url, "/realtime")) return SRV_EP_REALTIME;
    if (!strcmp(url, "/models") || !strncmp(url, "/models/", 8)) return SRV_EP_MODELS;
    if (!strcmp(url, "/health")) return SRV_EP_HEALTH;
    if (!strcmp(url, "/metrics")) return SRV_EP_METRICS;
    return SRV_EP_OTHER;
}

static void digest(const char *s, size_t n, unsigned char out[32]) {
    unsigned int len = 32;
    EVP_Digest(s, n, out, &len, EVP_sha256(), NULL);
}

/* 0 when the request carries the key (or none is needed), else fills r. */
static int check_key(srv_server *s, struct MHD_Connection *c, int ep, srv_reply *r) {
    if (!s->has_key || ep == SRV_EP_HEALTH || ep == SRV_EP_METRICS) return 0;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = NULL;
    if (h && !strncasecmp(h, "Bearer ", 7)) key = h + 7;
    if (!key && ep == SRV_EP_REALTIME) {
        /* browsers cannot set headers on a WebSocket: OpenAI's subprotocol form */
        const char *p = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
        const char *tag = p ? strstr(p, "openai-insecure-api-key.") : NULL;
        if (tag) {
            static __thread char buf[512];
            tag += strlen("openai-insecure-api-key.");
            size_t n = strcspn(tag, ", ");
            if (n < sizeof buf) {
                memcpy(buf, tag, n);
                buf[n] = '\0';
                key = buf;
            }
        }
    }
    if (!key) {
        srv_reply_error(r, 401, "invalid_request_error", NULL, NULL,
                        "You didn't provide an API key. You need to provide your API key in an "
                        "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                        "YOUR_KEY).");
        return -1;
    }
    while (*key == ' ')
        key++;
    unsigned char d[32];
    digest(key, strlen(key), d);
    if (CRYPTO_memcmp(d, s->key_digest, 32) != 0) {
        srv_reply_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                        "Incorrect API key provided.");
        return -1;
    }
    return 0;
}

static enum MHD_Result queue_reply(struct MHD_Connection *c, conn_req *r, srv_reply *rep) {
    struct MHD_Response *resp;
    if (rep->body)
        resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rep->body);
        rep->body = NULL;
        return MHD_NO;
    }
    rep->body = NULL;
    if (rep->content_type) MHD_add_response_header(resp, "Content-Type", rep->content_type);
    if (rep->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", rep->retry_after);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    if (rep->close) MHD_add_response_header(resp, "Connection", "close");
    r->status = rep->status;
    if (rep->err_code) r->err_code = rep->err_code;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void models_reply(srv_server *s, const char *url, srv_reply *rep) {
    const char *id = strstr(url, "/models/");
    if (id) {
        id += 8;
        for (int i = 0; i < s->models.n; i++)
            if (!strcmp(s->models.m[i].name, id) || s->models.n == 1) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", s->models.m[i].name);
                cJSON_AddStringToObject(o, "object", "model");
                cJSON_AddNumberToObject(o, "created", (double)s->models.created);
                cJSON_AddStringToObject(o, "owned_by", "tolk");
                srv_reply_json(rep, 200, o);
                return;
            }
        srv_reply_error(rep, 404, "invalid_request_error", "model", "model_not_found",
                        "The model '%s' does not exist on this server.", id);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; data && i < s->models.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", s->models.m[i].name);
        cJSON_AddStringToObject(o, "object", "model");
        cJSON_AddNumberToObject(o, "created", (double)s->models.created);
        cJSON_AddStringToObject(o, "owned_by", "tolk");
        cJSON_AddItemToArray(data, o);
    }
    srv_reply_json(rep, 200, root);
}

/* The first call for a request: route, check, admit; errors are kept
 * pending until the body is drained. */
static void begin_request(srv_server *s, struct MHD_Connection *c, conn_req *r) {
    srv_reply rep = {0};
    if (check_key(s, c, r->ep, &rep) != 0) {
        set_pending(r, &rep);
        return;
    }
    int audio = r->ep == SRV_EP_TRANSCRIPTIONS || r->ep == SRV_EP_TRANSLATIONS;
    if (r->ep == SRV_EP_OTHER) {
        srv_reply_error(&rep, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
                        r->method, r->url);
        set_pending(r, &rep);
        return;
    }
    if ((audio && !r->post) || (!audio && strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))) {
        srv_reply_error(&rep, 405, "invalid_request_error", NULL, "method_not_allowed",
                        "Method %s is not allowed on %s; use %s", r->method, r->url,
                        audio ? "POST" : "GET");
        set_pending(r, &rep);
        return;
    }
    if (!audio) return;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
        srv_reply_error(&rep, 413, "invalid_request_error", NULL, "request_too_large",
                        "The request body is %s bytes; this server accepts at most %llu bytes.", cl,
                        (unsigned long long)s->cfg.max_body_bytes);
        set_pending(r, &rep);
        return;
    }
    const char *why = NULL, *code = NULL;
    int st = srv_admit(s, 0, &why, &code);
    if (st) {
        srv_reply_error(&rep, st, st == 429 ? "requests" : "server_error", NULL, code, "%s", why);
        rep.retry_after = srv_retry_after(s);
        if (st == 503) rep.close = 1;
        set_pending(r, &rep);
        return;
    }
    r->admitted = 1;
    /* one model: a full queue is known before the body (several: after the
     * form names the model, in audio_api.c) */
    if (s->models.n == 1 && srv_queue_full(s, &s->models.m[0])) {
        srv_reply_error(&rep, 503, "server_error", NULL, "server_overloaded",
                        "The server is overloaded (%d requests are waiting); retry after "
                        "the time in Retry-After.",
                        s->cfg.max_queue);
        rep.retry_after = srv_retry_after(s);
        set_pending(r, &rep);
        return;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        srv_reply_error(&rep, 400, "invalid_request_error", NULL, "invalid_content_type",
                        "Content-Type must be multipart/form-data (got %s).", ct ? ct : "none");
        set_pending(r, &rep);
        return;
    }
    if (srv_upload_begin(&r->up, c) != 0) {
        srv_reply_error(&rep, 400, "invalid_request_error", NULL, "invalid_content_type",
                        "The multipart/form-data body cannot be parsed (is the boundary "
                        "given in Content-Type?).");
        set_pending(r, &rep);
        return;
    }
    r->upload_started = 1;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    long k = srv_stream_read(cls, buf, max);
    if (k == -1) return MHD_CONTENT_READER_END_OF_STREAM;
    if (k < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    srv_stream_free(cls);
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* The body is complete: answer an audio request. */
static enum MHD_Result finish_audio(srv_server *s, struct MHD_Connection *c, conn_req *r) {
    srv_reply rep = {0};
    if (srv_upload_end(&r->up) != 0) {
        srv_reply_error(&rep, 400, "invalid_request_error", NULL, "invalid_multipart", "%s",
                        r->up.errmsg[0] ? r->up.errmsg : "malformed multipart/form-data body");
        srv_upload_free(&r->up);
        return queue_reply(c, r, &rep);
    }
    /* the engine may take longer than the read timeout: the client is
     * watched instead, and the timeout comes back for the next request */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    const char *mf = srv_upload_field(&r->up, "model");
    if (mf) snprintf(r->model, sizeof r->model, "%s", mf);
    srv_stream *st = NULL;
    int k = srv_audio_request(s, r->ep == SRV_EP_TRANSLATIONS, &r->up, conn_fd(c), &rep, &st,
                              &r->audio_s);
    srv_upload_free(&r->up);
    if (k == 1) {
        struct MHD_Response *resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, st, stream_free);
        if (!resp) {
            srv_stream_free(st);
            return MHD_NO;
        }
        r->stream = st;
        MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: pass events on */
        r->status = 200;
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (rep.status == 499) { /* the client left: nobody to answer */
        free(rep.body);
        r->status = 499;
        r->client_gone = 1;
        return MHD_NO;
    }
    return queue_reply(c, r, &rep);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    srv_server *s = cls;
    conn_req *r = *req_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *req_cls = r;
        r->t0 = srv_now();
        r->up.file_fd = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->url, sizeof r->url, "%s", url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->peer,
                          sizeof r->peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer,
                          sizeof r->peer);
        }
        r->ep = route(url, method, &r->post);
        r->discard_cap = 4 * s->cfg.max_body_bytes;
        begin_request(s, c, r);
        /* an answer the client waits for before sending its body */
        if (r->has_pending) {
            const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if ((ex && !strncasecmp(ex, "100-continue", 12)) ||
                (cl && strtoull(cl, NULL, 10) > r->discard_cap)) {
                r->pending.close = 1;
                r->has_pending = 0;
                return queue_reply(c, r, &r->pending);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->body_bytes += n;
        if (r->has_pending) {
            if (r->body_bytes > r->discard_cap) {
                r->pending.close = 1;
                r->has_pending = 0;
                return queue_reply(c, r, &r->pending);
            }
            return MHD_YES;
        }
        srv_reply rep = {0};
        if (s->cfg.upload_timeout_s && srv_now() - r->t0 > s->cfg.upload_timeout_s) {
            srv_reply_error(&rep, 408, "invalid_request_error", NULL, "request_timeout",
                            "The request body took longer than %u s to arrive.",
                            s->cfg.upload_timeout_s);
            rep.close = 1;
            return queue_reply(c, r, &rep);
        }
        if (r->body_bytes > s->cfg.max_body_bytes) {
            srv_reply_error(&rep, 413, "invalid_request_error", NULL, "request_too_large",
                            "The request body is larger than %llu bytes, this server's limit.",
                            (unsigned long long)s->cfg.max_body_bytes);
            set_pending(r, &rep);
            return MHD_YES;
        }
        if (r->upload_started && srv_upload_feed(&r->up, upload_data, n) != 0) {
            srv_reply_error(&rep, 400, "invalid_request_error", NULL, "invalid_multipart", "%s",
                            r->up.errmsg);
            set_pending(r, &rep);
        }
        return MHD_YES;
    }
    /* the whole request is in */
    if (r->has_pending) {
        r->has_pending = 0;
        return queue_reply(c, r, &r->pending);
    }
    srv_reply rep = {0};
    switch (r->ep) {
    case SRV_EP_TRANSCRIPTIONS:
    case SRV_EP_TRANSLATIONS:
        return finish_audio(s, c, r);
    case SRV_EP_HEALTH: {
        int d = srv_draining(s);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", d ? "draining" : "ok");
        srv_reply_json(&rep, d ? 503 : 200, o);
        return queue_reply(c, r, &rep);
    }
    case SRV_EP_METRICS: {
        pthread_mutex_lock(&s->mu);
        int fl = s->in_flight, se = s->sessions, d = s->draining;
        pthread_mutex_unlock(&s->mu);
        size_t len = 0;
        char *t = srv_metrics_render(&s->metrics, &s->models, fl, se, d, &len);
        if (!t) return MHD_NO;
        srv_reply_text(&rep, 200, "text/plain; version=0.0.4; charset=utf-8", t, len);
        return queue_reply(c, r, &rep);
    }
    case SRV_EP_MODELS:
        models_reply(s, url, &rep);
        return queue_reply(c, r, &rep);
    case SRV_EP_REALTIME: {
        const char *qm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
        struct MHD_Response *resp = srv_realtime_upgrade(s, c, qm, &rep, &r->ws_pending);
        if (!resp) return queue_reply(c, r, &rep);
        r->status = 101;
        r->upgraded = 1;
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    default:
        srv_reply_error(&rep, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
                        r->method, r->url);
        return queue_reply(c, r, &rep);
    }
}

void srv_upgrade_started(void *req_cls) {
    if (req_cls) ((conn_req *)req_cls)->ws_started = 1;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_server *s = cls;
    conn_req *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    double lat = srv_now() - r->t0;
    int status = r->status;
    if (!status) status = 499; /* ended before an answer: the client left or timed out */
    if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR ||
        (toe == MHD_REQUEST_TERMINATED_WITH_ERROR && r->stream) || r->client_gone) {
        pthread_mutex_lock(&s->metrics.mu);
        s->metrics.client_gone++;
        pthread_mutex_unlock(&s->metrics.mu);
        if (r->stream || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) status = 499;
    }
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) status = 408;
    int audio = r->ep == SRV_EP_TRANSCRIPTIONS || r->ep == SRV_EP_TRANSLATIONS;
    double audio_s = r->audio_s;
    if (r->stream) audio_s = srv_stream_audio_s(r->stream);
    if (!r->upgraded) srv_metrics_request(&s->metrics, r->ep, status, audio ? lat : -1.0, audio_s);
    if (!s->cfg.quiet && !r->upgraded)
        srv_log("%s %s %s %d %.3fs body=%llu audio=%.2fs%s%s%s%s", r->peer[0] ? r->peer : "-",
                r->method, r->url, status, lat, (unsigned long long)r->body_bytes, audio_s,
                r->model[0] ? " model=" : "", r->model, r->err_code ? " error=" : "",
                r->err_code ? r->err_code : "");
    if (r->upgraded && !r->ws_started) srv_realtime_abandon(r->ws_pending);
    if (r->upload_started) srv_upload_free(&r->up);
    free(r->pending.body);
    if (r->admitted) srv_release(s, 0);
    free(r);
    /* an idle keep-alive connection gets its read timeout back */
    if (c && s->cfg.read_timeout_s)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s->cfg.read_timeout_s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    srv_server *s = cls;
    if (s->cfg.quiet) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    srv_log("http: %s", line);
}

/* ---- start and stop ---------------------------------------------------------- */

int srv_start(const srv_config *c, srv_server **out, char *err, size_t n) {
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    s->cfg = *c;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    srv_metrics_init(&s->metrics);
    if (c->api_key && c->api_key[0]) {
        digest(c->api_key, strlen(c->api_key), s->key_digest);
        s->has_key = 1;
    }
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = c->n_threads;
    cp.device = c->device;
    tolk_status st = tolk_ctx_new(&cp, &s->ctx);
    if (st != TOLK_OK) {
        snprintf(err, n, "cannot create a context: %s", tolk_strerror(st));
        srv_stop(s);
        return -1;
    }

    /* the address first: a port in use fails before the models load */
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, n, "cannot resolve --host %s: %s", c->host, gai_strerror(gai));
        srv_stop(s);
        return -1;
    }

    char e2[512];
    if (srv_models_load(c, s->ctx, &s->models, e2, sizeof e2) != 0) {
        snprintf(err, n, "%s", e2);
        freeaddrinfo(ai);
        srv_stop(s);
        return -1;
    }
    if (pthread_create(&s->watch_thread, NULL, watch_main, s) != 0) {
        snprintf(err, n, "cannot start a thread");
        freeaddrinfo(ai);
        srv_stop(s);
        return -1;
    }
    s->watch_started = 1;

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    size_t mem = c->max_header_bytes < 8192 ? 8192 : c->max_header_bytes;
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_SOCK_ADDR,
                            ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, c->read_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                            1024u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        snprintf(err, n, "cannot listen on %s:%d (%s)", c->host, c->port,
                 errno ? strerror(errno) : "address in use or not available");
        srv_stop(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return 0;
}

void srv_stop(srv_server *s) {
    if (!s) return;
    if (s->d) {
        pthread_mutex_lock(&s->mu);
        s->draining = 1;
        pthread_mutex_unlock(&s->mu);
        MHD_socket ls = MHD_quiesce_daemon(s->d);
        if (ls != MHD_INVALID_SOCKET) close(ls);
        /* realtime sessions see srv_draining and close themselves */
        /* requests and sessions in flight run to their end */
        double until = srv_now() + s->cfg.drain_timeout_s;
        pthread_mutex_lock(&s->mu);
        while ((s->in_flight > 0 || s->sessions > 0) && srv_now() < until) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->idle, &s->mu, &ts);
        }
        int left = s->in_flight + s->sessions;
        pthread_mutex_unlock(&s->mu);
        if (left > 0) {
            srv_log("drain timeout: cancelling %d requests", left);
            pthread_mutex_lock(&s->mu);
            for (int i = 0; i < s->n_watch; i++)
                if (s->watch[i].gen && s->watch[i].req) tolk_request_cancel(s->watch[i].req);
            pthread_mutex_unlock(&s->mu);
        }
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    if (s->watch_started) {
        pthread_mutex_lock(&s->mu);
        s->watch_stop = 1;
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->watch_thread, NULL);
    }
    srv_models_free(&s->models);
    tolk_ctx_free(s->ctx);
    free(s->watch);
    srv_metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

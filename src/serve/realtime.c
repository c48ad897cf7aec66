/*
 * realtime.c — GET /v1/realtime: the WebSocket (RFC 6455) that carries a
 * Realtime API transcription session (realtime_proto.c). The handshake is
 * answered through libmicrohttpd's upgrade support (101, Sec-WebSocket-
 * Accept = base64(SHA-1(key + GUID)) with libcrypto); the frames are read
 * and written by wslay (masking, fragmentation, control frames, the close
 * handshake, the message size limit → close 1009) on a thread of the
 * session's own, which also delivers the engine's results (an eventfd,
 * written by the engine's segment callback, wakes it).
 *
 * Limits: --max_sessions at once (429), --ws_max_message_kb per message
 * (1009), --ws_idle_s without a client message while no item is being
 * transcribed (close 1000 after an error event). On shutdown a session commits the turn in
 * progress, answers the committed items, then closes with 1001. The client is authenticated as HTTP
 * requests are (a Bearer header, or OpenAI's browser subprotocol "openai-insecure-api-key.KEY");
 * the subprotocol "realtime" is echoed when offered.
 */
#include "realtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

typedef struct ws_session ws_session;
struct ws_session {
    srv_server *s;
    srv_model *model;
    char id[40];
    char peer[64];
    MHD_socket fd;
    struct MHD_UpgradeResponseHandle *urh;
    char *extra; /* bytes read by the HTTP library past the handshake */
    size_t n_extra, at_extra;
    wslay_event_context_ptr ws;
    rt_session *rt;
    int evfd;
    double t0, last_msg;
    int close_code;
    int close_pending; /* a close to send once the queue is empty */
    char close_reason[64];
    int failed; /* a send or receive failed: the peer is gone */
};

static uint64_t session_counter;
static pthread_mutex_t counter_mu = PTHREAD_MUTEX_INITIALIZER;

static void session_close(ws_session *w, uint16_t code, const char *reason);

/* ---- wslay callbacks -------------------------------------------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
    ws_session *w = user;
    if (w->at_extra < w->n_extra) {
        size_t k = w->n_extra - w->at_extra;
        if (k > len) k = len;
        memcpy(buf, w->extra + w->at_extra, k);
        w->at_extra += k;
        return (ssize_t)k;
    }
    for (;;) {
        ssize_t k = recv(w->fd, buf, len, 0);
        if (k > 0) return k;
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            w->failed = 1;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
    ws_session *w = user;
    for (;;) {
        ssize_t k =
            send(w->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
        if (k >= 0) return k;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            w->failed = 1;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user) {
    ws_session *w = user;
    w->last_msg = srv_now();
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (rt_on_text(w->rt, (const char *)arg->msg, arg->msg_length) != 0)
            session_close(w, WSLAY_CODE_INTERNAL_SERVER_ERROR, "server error");
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        rt_on_binary(w->rt);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        w->close_code = arg->status_code;
    }
}

/* rt_send_fn: queue a text message. */
static int ws_queue_text(void *io, const char *json, size_t n) {
    ws_session *w = io;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)json, n};
    return wslay_event_queue_msg(w->ws, &m) == 0 ? 0 : -1;
}

/* ---- the session thread ------------------------------------------------------------ */

/* Close after the queued messages are out (wslay sends control frames
 * first, so the close waits in close_code / close_reason until then). */
static void session_close(ws_session *w, uint16_t code, const char *reason) {
    if (!w->close_pending) {
        w->close_pending = code;
        snprintf(w->close_reason, sizeof w->close_reason, "%s", reason);
    }
}

static void close_when_flushed(ws_session *w) {
    if (w->close_pending && !wslay_event_get_close_sent(w->ws) &&
        wslay_event_get_queued_msg_count(w->ws) == 0)
        wslay_event_queue_close(w->ws, (uint16_t)w->close_pending, (const uint8_t *)w->close_reason,
                                strlen(w->close_reason));
}

static void *session_main(void *arg) {
    ws_session *w = arg;
    srv_server *s = w->s;
    const srv_config *c = srv_cfg(s);
    int flags = fcntl(w->fd, F_GETFL, 0);
    if (flags >= 0) fcntl(w->fd, F_SETFL, flags | O_NONBLOCK);
    struct wslay_event_callbacks cb = {ws_recv, ws_send, NULL, NULL, NULL, NULL, ws_on_msg};
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd >= 0 && wslay_event_context_server_init(&w->ws, &cb, w) == 0) {
        wslay_event_config_set_max_recv_msg_length(w->ws, c->ws_max_message);
        w->rt = rt_new(s, w->model, w->id, ws_queue_text, w, w->evfd);
    }
    if (w->rt) {
        rt_start(w->rt);
        double drain_seen = 0, close_at = 0;
        while (wslay_event_want_read(w->ws) || wslay_event_want_write(w->ws)) {
            struct pollfd pf[2] = {
                {.fd = w->fd,
                 .events = (short)((wslay_event_want_read(w->ws) ? POLLIN : 0) |
                                   (wslay_event_want_write(w->ws) ? POLLOUT : 0))},
                {.fd = w->evfd, .events = POLLIN}};
            int k = w->at_extra < w->n_extra ? 0 : poll(pf, 2, 100);
            if (k < 0 && errno != EINTR) break;
            if ((w->at_extra < w->n_extra || (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) &&
                wslay_event_recv(w->ws) != 0)
                break;
            if (pf[1].revents & POLLIN) {
                uint64_t v;
                if (read(w->evfd, &v, sizeof v) < 0) { /* nothing to read */
                }
            }
            rt_poll(w->rt);
            double now = srv_now();
            if (rt_pending(w->rt) > 0) w->last_msg = now; /* waiting for us is not idle */
            if (srv_draining(s) && !close_at) {
                if (!drain_seen) {
                    drain_seen = now;
                    rt_flush(w->rt);
                }
                if (rt_pending(w->rt) == 0 || now - drain_seen > c->drain_timeout_s) {
                    session_close(w, 1001, "server shutting down");
                    close_at = now;
                }
            }
            if (!close_at && now - w->last_msg > c->ws_idle_s) {
                char msg[320];
                snprintf(msg, sizeof msg,
                         "{\"type\":\"error\",\"event_id\":\"event_idle\",\"error\":{\"type\":"
                         "\"invalid_request_error\",\"code\":\"idle_timeout\",\"message\":"
                         "\"No client event for %u s: the session is closed.\",\"param\":null,"
                         "\"event_id\":null}}",
                         c->ws_idle_s);
                ws_queue_text(w, msg, strlen(msg));
                session_close(w, 1000, "idle timeout");
                close_at = now;
            }
            if (wslay_event_get_close_received(w->ws) && !close_at) close_at = now;
            if (close_at && now - close_at > 2.0) break; /* the peer never answered the close */
            if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0) break;
            close_when_flushed(w);
            if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0) break;
        }
    }
    int items = 0;
    double audio = 0;
    if (w->rt) rt_counts(w->rt, &items, &audio);
    rt_free(w->rt); /* cancels what the engine still does for it */
    if (w->ws) wslay_event_context_free(w->ws);
    if (w->evfd >= 0) close(w->evfd);
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (!c->quiet)
        srv_log("%s WS /v1/realtime %s %.3fs items=%d audio=%.2fs close=%d%s",
                w->peer[0] ? w->peer : "-", w->id, srv_now() - w->t0, items, audio, w->close_code,
                w->failed ? " peer-gone" : "");
    srv_metrics *m = srv_metrics_of(s);
    pthread_mutex_lock(&m->mu);
    m->realtime_items += items;
    m->audio_s += audio;
    m->by_status[SRV_EP_REALTIME][101]++;
    m->requests[SRV_EP_REALTIME][1]++;
    if (w->failed) m->client_gone++;
    pthread_mutex_unlock(&m->mu);
    free(w->extra);
    free(w);
    srv_release(s, 1);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh) {
    ws_session *w = cls;
    srv_upgrade_started(req_cls);
    w->fd = sock;
    w->urh = urh;
    w->t0 = w->last_msg = srv_now();
    if (extra_in_size) {
        w->extra = malloc(extra_in_size);
        if (w->extra) {
            memcpy(w->extra, extra_in, extra_in_size);
            w->n_extra = extra_in_size;
        }
    }
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    if (pthread_create(&th, &at, session_main, w) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        srv_release(w->s, 1);
        free(w->extra);
        free(w);
    }
    pthread_attr_destroy(&at);
}

/* ---- the handshake ----------------------------------------------------------------- */

/* Whether the comma-separated header value v holds token t (any case). */
static int has_token(const char *v, const char *t) {
    size_t n = strlen(t);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t k = strcspn(v, ",");
        size_t e = k;
        while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == n && !strncasecmp(v, t, n)) return 1;
        v += k;
    }
    return 0;
}

void srv_realtime_abandon(void *pending) {
    ws_session *w = pending;
    if (!w) return;
    srv_release(w->s, 1);
    free(w);
}

struct MHD_Response *srv_realtime_upgrade(srv_server *s, struct MHD_Connection *c,
                                          const char *query_model, srv_reply *r, void **pending) {
    *pending = NULL;
    const char *up = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
    const char *conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (!up || !has_token(up, "websocket") || !conn || !has_token(conn, "upgrade")) {
        srv_reply_error(r, 426, "invalid_request_error", NULL, "upgrade_required",
                        "/v1/realtime is a WebSocket endpoint (Upgrade: websocket).");
        return NULL;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        srv_reply_error(r, 426, "invalid_request_error", NULL, "upgrade_required",
                        "Unsupported Sec-WebSocket-Version (13 is required).");
        return NULL;
    }
    unsigned char raw[64];
    if (!key || strlen(key) != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) {
        srv_reply_error(r, 400, "invalid_request_error", NULL, "invalid_value",
                        "Sec-WebSocket-Key must be 16 bytes in base64.");
        return NULL;
    }
    srv_model *m = srv_models_pick(srv_models_of(s), query_model);
    if (!m) {
        srv_reply_error(r, 400, "invalid_request_error", "model", "model_not_found",
                        "The model '%.100s' is not served here.",
                        query_model ? query_model : "(none)");
        return NULL;
    }
    const char *why = NULL, *code = NULL;
    int st = srv_admit(s, 1, &why, &code);
    if (st) {
        srv_reply_error(r, st, st == 429 ? "requests" : "server_error", NULL, code, "%s", why);
        r->retry_after = srv_retry_after(s);
        return NULL;
    }
    ws_session *w = calloc(1, sizeof *w);
    if (!w) {
        srv_release(s, 1);
        return NULL;
    }
    w->s = s;
    w->model = m;
    w->fd = MHD_INVALID_SOCKET;
    w->evfd = -1;
    pthread_mutex_lock(&counter_mu);
    uint64_t n = ++session_counter;
    pthread_mutex_unlock(&counter_mu);
    snprintf(w->id, sizeof w->id, "sess_%x%06llx", (unsigned)srv_port(s), (unsigned long long)n);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, w->peer,
                  sizeof w->peer);

    /* Sec-WebSocket-Accept */
    char buf[128];
    snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[EVP_MAX_MD_SIZE];
    unsigned int sl = 0;
    EVP_Digest(buf, strlen(buf), sha, &sl, EVP_sha1(), NULL);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, sha, (int)sl);

    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, w);
    if (!resp) {
        free(w);
        srv_release(s, 1);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    const char *proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Protocol");
    if (proto && has_token(proto, "realtime"))
        MHD_add_response_header(resp, "Sec-WebSocket-Protocol", "realtime");
    pthread_mutex_lock(&srv_metrics_of(s)->mu);
    srv_metrics_of(s)->sessions_total++;
    pthread_mutex_unlock(&srv_metrics_of(s)->mu);
    *pending = w;
    return resp;
}

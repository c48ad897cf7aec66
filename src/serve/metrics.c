/*
 * metrics.c — `tolk serve`'s counters and their Prometheus text exposition
 * (format 0.0.4) on GET /metrics:
 *   tolk_http_requests_total{endpoint,status}     finished HTTP requests
 *   tolk_rejected_total{reason}                   refused by the limits
 *   tolk_client_gone_total                        clients that left early
 *   tolk_audio_seconds_total                      audio transcribed
 *   tolk_request_duration_seconds (histogram)     audio request latency
 *   tolk_requests_in_flight, tolk_realtime_sessions, tolk_draining
 *   per model (from tolk_engine_get_stats):
 *   tolk_engine_queue_depth, tolk_engine_active_requests,
 *   tolk_engine_requests_total{result}, tolk_engine_windows_encoded_total,
 *   tolk_engine_decoder_steps_total, tolk_engine_pool_bytes,
 *   tolk_engine_decoder_batch_size (histogram of sequences per step)
 */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double lat_bounds[SRV_LAT_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,   2,   4,
                                                   8,    15,  30,   60,  120, 300, 600};
static const char *const ep_names[SRV_EP_COUNT] = {
    "transcriptions", "translations", "realtime", "models", "health", "metrics", "other"};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void srv_metrics_request(srv_metrics *m, int ep, int status, double latency_s, double audio_s) {
    if (ep < 0 || ep >= SRV_EP_COUNT) ep = SRV_EP_OTHER;
    pthread_mutex_lock(&m->mu);
    if (status >= 100 && status < 600) m->by_status[ep][status]++;
    m->requests[ep][status >= 100 && status < 600 ? status / 100 : 0]++;
    if (latency_s >= 0) {
        int b = 0;
        while (b < SRV_LAT_BUCKETS && latency_s > lat_bounds[b])
            b++;
        m->lat_count[b]++;
        m->lat_sum += latency_s;
        m->lat_n++;
        if (status == 200)
            m->ewma_latency_s =
                m->ewma_latency_s <= 0 ? latency_s : 0.9 * m->ewma_latency_s + 0.1 * latency_s;
    }
    if (status == 200 && audio_s > 0) m->audio_s += audio_s;
    pthread_mutex_unlock(&m->mu);
}

/* A growing text buffer. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* A model name as a label value (escape \ and "). */
static void label_value(char *out, size_t n, const char *v) {
    size_t j = 0;
    for (size_t i = 0; v[i] && j + 3 < n; i++) {
        if (v[i] == '\\' || v[i] == '"') out[j++] = '\\';
        if (v[i] == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
            continue;
        }
        out[j++] = v[i];
    }
    out[j] = '\0';
}

char *srv_metrics_render(srv_metrics *m, srv_models *ms, int in_flight, int sessions, int draining,
                         size_t *len) {
    sbuf b = {0};
    pthread_mutex_lock(&m->mu);
    srv_metrics c = *m; /* a consistent copy (the mutex field is not used) */
    pthread_mutex_unlock(&m->mu);

    sb_printf(&b, "# HELP tolk_http_requests_total HTTP requests answered, by endpoint and "
                  "status.\n# TYPE tolk_http_requests_total counter\n");
    for (int e = 0; e < SRV_EP_COUNT; e++)
        for (int s = 100; s < 600; s++)
            if (c.by_status[e][s])
                sb_printf(&b, "tolk_http_requests_total{endpoint=\"%s\",status=\"%d\"} %lld\n",
                          ep_names[e], s, (long long)c.by_status[e][s]);
    sb_printf(&b,
              "# HELP tolk_rejected_total Requests refused by the server's limits.\n"
              "# TYPE tolk_rejected_total counter\n"
              "tolk_rejected_total{reason=\"too_many_requests\"} %lld\n"
              "tolk_rejected_total{reason=\"queue_full\"} %lld\n"
              "tolk_rejected_total{reason=\"draining\"} %lld\n",
              (long long)c.rejected_busy, (long long)c.rejected_queue,
              (long long)c.rejected_draining);
    sb_printf(&b,
              "# HELP tolk_client_gone_total Requests whose client left before the answer.\n"
              "# TYPE tolk_client_gone_total counter\ntolk_client_gone_total %lld\n",
              (long long)c.client_gone);
    sb_printf(&b,
              "# HELP tolk_audio_seconds_total Seconds of audio transcribed or translated.\n"
              "# TYPE tolk_audio_seconds_total counter\ntolk_audio_seconds_total %.3f\n",
              c.audio_s);
    sb_printf(&b, "# HELP tolk_request_duration_seconds Latency of audio requests, from the "
                  "first byte of the request to the end of the answer.\n"
                  "# TYPE tolk_request_duration_seconds histogram\n");
    int64_t cum = 0;
    for (int i = 0; i < SRV_LAT_BUCKETS; i++) {
        cum += c.lat_count[i];
        sb_printf(&b, "tolk_request_duration_seconds_bucket{le=\"%g\"} %lld\n", lat_bounds[i],
                  (long long)cum);
    }
    cum += c.lat_count[SRV_LAT_BUCKETS];
    sb_printf(&b,
              "tolk_request_duration_seconds_bucket{le=\"+Inf\"} %lld\n"
              "tolk_request_duration_seconds_sum %.6f\n"
              "tolk_request_duration_seconds_count %lld\n",
              (long long)cum, c.lat_sum, (long long)c.lat_n);
    sb_printf(&b,
              "# HELP tolk_requests_in_flight Audio requests being received or processed.\n"
              "# TYPE tolk_requests_in_flight gauge\ntolk_requests_in_flight %d\n"
              "# HELP tolk_realtime_sessions Open realtime WebSocket sessions.\n"
              "# TYPE tolk_realtime_sessions gauge\ntolk_realtime_sessions %d\n"
              "# HELP tolk_realtime_sessions_total Realtime sessions opened.\n"
              "# TYPE tolk_realtime_sessions_total counter\ntolk_realtime_sessions_total %lld\n"
              "# HELP tolk_realtime_items_total Realtime audio items transcribed.\n"
              "# TYPE tolk_realtime_items_total counter\ntolk_realtime_items_total %lld\n"
              "# HELP tolk_draining 1 while the server shuts down.\n"
              "# TYPE tolk_draining gauge\ntolk_draining %d\n",
              in_flight, sessions, (long long)c.sessions_total, (long long)c.realtime_items,
              draining);

    static const char *const gauges[][2] = {
        {"tolk_engine_queue_depth", "Requests waiting for a decoding slot."},
        {"tolk_engine_active_requests", "Requests decoding now."},
        {"tolk_engine_pool_bytes", "Bytes of the decoder KV pool."},
        {"tolk_engine_pool_sequences", "Decoder sequences in the KV pool."}};
    for (int g = 0; g < 4; g++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g][0], gauges[g][1], gauges[g][0]);
        for (int i = 0; i < ms->n; i++) {
            tolk_engine_stats st;
            tolk_engine_get_stats(ms->m[i].engine, &st);
            char lv[260];
            label_value(lv, sizeof lv, ms->m[i].name);
            long long v = g == 0   ? st.queued
                          : g == 1 ? st.active
                          : g == 2 ? (long long)st.pool_bytes
                                   : st.pool_seqs;
            sb_printf(&b, "%s{model=\"%s\"} %lld\n", gauges[g][0], lv, v);
        }
    }
    sb_printf(&b, "# HELP tolk_engine_requests_total Engine requests by how they ended.\n"
                  "# TYPE tolk_engine_requests_total counter\n");
    for (int i = 0; i < ms->n; i++) {
        tolk_engine_stats st;
        tolk_engine_get_stats(ms->m[i].engine, &st);
        char lv[260];
        label_value(lv, sizeof lv, ms->m[i].name);
        sb_printf(&b,
                  "tolk_engine_requests_total{model=\"%s\",result=\"submitted\"} %lld\n"
                  "tolk_engine_requests_total{model=\"%s\",result=\"completed\"} %lld\n"
                  "tolk_engine_requests_total{model=\"%s\",result=\"failed\"} %lld\n"
                  "tolk_engine_requests_total{model=\"%s\",result=\"cancelled\"} %lld\n",
                  lv, (long long)st.submitted, lv, (long long)st.completed, lv,
                  (long long)st.failed, lv, (long long)st.cancelled);
    }
    sb_printf(&b, "# HELP tolk_engine_windows_encoded_total 30 s windows encoded.\n"
                  "# TYPE tolk_engine_windows_encoded_total counter\n");
    for (int i = 0; i < ms->n; i++) {
        tolk_engine_stats st;
        tolk_engine_get_stats(ms->m[i].engine, &st);
        char lv[260];
        label_value(lv, sizeof lv, ms->m[i].name);
        sb_printf(&b, "tolk_engine_windows_encoded_total{model=\"%s\"} %lld\n", lv,
                  (long long)st.windows_encoded);
    }
    sb_printf(&b, "# HELP tolk_engine_decoder_batch_size Sequences stepped together in one "
                  "decoder step.\n# TYPE tolk_engine_decoder_batch_size histogram\n");
    for (int i = 0; i < ms->n; i++) {
        tolk_engine_stats st;
        tolk_engine_get_stats(ms->m[i].engine, &st);
        char lv[260];
        label_value(lv, sizeof lv, ms->m[i].name);
        int64_t acc = 0;
        for (int k = 0; k + 1 < TOLK_ENGINE_BUCKETS; k++) {
            acc += st.steps_by_batch[k];
            sb_printf(&b, "tolk_engine_decoder_batch_size_bucket{model=\"%s\",le=\"%d\"} %lld\n",
                      lv, tolk_engine_bucket_min(k + 1) - 1, (long long)acc);
        }
        acc += st.steps_by_batch[TOLK_ENGINE_BUCKETS - 1];
        sb_printf(&b,
                  "tolk_engine_decoder_batch_size_bucket{model=\"%s\",le=\"+Inf\"} %lld\n"
                  "tolk_engine_decoder_batch_size_sum{model=\"%s\"} %lld\n"
                  "tolk_engine_decoder_batch_size_count{model=\"%s\"} %lld\n",
                  lv, (long long)acc, lv, (long long)st.rows, lv, (long long)st.steps);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

/*
 * cmd_serve.c — `tolk serve`: an OpenAI-compatible speech server (see
 * src/serve/serve.h for what it answers). This file reads the options,
 * starts the server, and waits for SIGTERM / SIGINT: then the server stops
 * accepting, finishes the requests in flight and the process exits 0.
 *
 * Decoding options have `tolk transcribe`'s names and defaults (beam_size
 * 5, best_of 5, temperature fallback 0.2, thresholds 2.4 / -1.0 / 0.6), so
 * the server's transcripts equal `tolk transcribe`'s for the same file.
 *
 * Built only when libmicrohttpd, libwslay and libcrypto were found
 * (TOLK_HAVE_SERVE); otherwise `tolk serve` says how to get them.
 */
#include "cli.h"
#include "options.h"
#include "tolk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TOLK_HAVE_SERVE

int cli_serve(int argc, char **argv) {
    fprintf(stderr, "tolk serve: this build has no server: install libmicrohttpd-dev, "
                    "libwslay-dev and libssl-dev (scripts/setup-deps) and build again\n");
    return 1;
}

#else

#include "../serve/serve.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>
#include <unistd.h>

static const cli_optdef serve_opts[] = {
    {"help", 'h', 0},
    {"model", 0, 1},
    {"model_dir", 0, 1},
    {"host", 0, 1},
    {"port", 0, 1},
    {"port_file", 0, 1},
    {"api_key", 0, 1},
    {"device", 0, 1},
    {"compute_type", 0, 1},
    {"kv_cache", 0, 1},
    {"gelu", 0, 1},
    {"threads", 0, 1},
    {"max_requests", 0, 1},
    {"max_batch", 0, 1},
    {"pool_mb", 0, 1},
    {"encoder_batch", 0, 1},
    {"max_body_mb", 0, 1},
    {"max_audio_s", 0, 1},
    {"max_concurrent", 0, 1},
    {"max_queue", 0, 1},
    {"max_connections", 0, 1},
    {"read_timeout_s", 0, 1},
    {"upload_timeout_s", 0, 1},
    {"max_header_kb", 0, 1},
    {"max_sessions", 0, 1},
    {"ws_max_message_kb", 0, 1},
    {"ws_idle_s", 0, 1},
    {"ws_max_buffer_s", 0, 1},
    {"drain_timeout_s", 0, 1},
    {"quiet", 'q', 0},
    /* decoding (tolk transcribe's names and defaults) */
    {"beam_size", 0, 1},
    {"best_of", 0, 1},
    {"patience", 0, 1},
    {"length_penalty", 0, 1},
    {"temperature_increment_on_fallback", 0, 1},
    {"compression_ratio_threshold", 0, 1},
    {"logprob_threshold", 0, 1},
    {"no_speech_threshold", 0, 1},
    {"condition_on_previous_text", 0, 1},
    {"suppress_tokens", 0, 1},
    {"suppress_blank", 0, 1},
    {"without_timestamps", 0, 1},
    {NULL, 0, 0},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: tolk serve [OPTIONS]\n"
            "\n"
            "An OpenAI-compatible speech server: POST /v1/audio/transcriptions and\n"
            "/v1/audio/translations (multipart form; json, text, srt, vtt, verbose_json;\n"
            "stream=true as server-sent events), GET /v1/models, the Realtime API's\n"
            "transcription sessions on ws://HOST:PORT/v1/realtime, GET /health and\n"
            "GET /metrics (Prometheus). Every request of every client shares the engine's\n"
            "batches. SIGTERM / SIGINT: stop accepting, finish the requests in flight,\n"
            "exit 0. One log line per request on stderr.\n"
            "\n"
            "Models and devices\n"
            "  --model LIST               models to serve, comma-separated names installed by\n"
            "                             scripts/get-model or paths; a request's `model`\n"
            "                             picks one by name (the directory's base name);\n"
            "                             with one model any name selects it [base]\n"
            "  --model_dir DIR            where named models live [$TOLK_MODELS, else\n"
            "                             ~/.cache/tolk/models]\n"
            "  --device cpu|cuda|auto     [auto]\n"
            "  --compute_type auto|float32|bfloat16|float16  as tolk transcribe [auto]\n"
            "  --kv_cache auto|float32|float16  as tolk transcribe [auto]\n"
            "  --gelu exact|tanh          as tolk transcribe [exact]\n"
            "  --threads N                CPU threads; 0: all cores [0]\n"
            "  --max_requests N           requests decoding at once per model; 0: 16 on\n"
            "                             CUDA, 2 per CPU thread (2..16) on the CPU [0]\n"
            "  --max_batch N              most sequences in one decoder step [256]\n"
            "  --pool_mb N                bytes of the decoder KV pool per model, MiB; 0:\n"
            "                             as the admitted requests need [0]\n"
            "  --encoder_batch N          windows per encoder pass; 0: 1 on the CPU, 8 on\n"
            "                             CUDA [0]\n"
            "\n"
            "Network and limits\n"
            "  --host ADDR                address to bind [127.0.0.1]\n"
            "  --port N                   port; 0: any free one [8000]\n"
            "  --port_file PATH           write the bound port there once listening\n"
            "  --api_key KEY              require \"Authorization: Bearer KEY\" [$TOLK_API_KEY]\n"
            "  --max_body_mb N            request body limit, 413 beyond [25]\n"
            "  --max_audio_s S            decoded audio per request, 400 beyond [3600]\n"
            "  --max_concurrent N         audio requests in progress, 429 beyond [128]\n"
            "  --max_queue N              requests waiting for a decoding slot, 503 beyond\n"
            "                             [64]\n"
            "  --max_connections N        open connections; more are refused [1024]\n"
            "  --read_timeout_s S         close a connection idle this long [30]\n"
            "  --upload_timeout_s S       a body must arrive within this, 408 beyond [300]\n"
            "  --max_header_kb N          request line and headers, 431 beyond [32]\n"
            "  --max_sessions N           realtime sessions at once, 429 beyond [64]\n"
            "  --ws_max_message_kb N      one WebSocket message, close 1009 beyond [4096]\n"
            "  --ws_idle_s S              close a realtime session silent this long [120]\n"
            "  --ws_max_buffer_s S        uncommitted realtime audio kept [300]\n"
            "  --drain_timeout_s S        on SIGTERM, wait this long for requests in flight,\n"
            "                             then cancel them [120]\n"
            "  -q, --quiet                no per-request log lines\n"
            "\n"
            "Decoding (tolk transcribe's options and defaults)\n"
            "  --beam_size N|None [5]  --best_of N|None [5]  --patience P [1.0]\n"
            "  --length_penalty A|None [None]  --temperature_increment_on_fallback D|None [0.2]\n"
            "  --compression_ratio_threshold R|None [2.4]  --logprob_threshold L|None [-1.0]\n"
            "  --no_speech_threshold P|None [0.6]  --condition_on_previous_text True|False\n"
            "  [True]  --suppress_tokens LIST [-1]  --suppress_blank True|False [True]\n"
            "  --without_timestamps True|False [False]\n"
            "  -h, --help                 show this help\n");
}

/* A model's served name: the argument's base name ("tiny.en", "base" for
 * /models/base/). */
static void model_name(const char *arg, char *out, size_t n) {
    size_t len = strlen(arg);
    while (len > 1 && arg[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && arg[start - 1] != '/')
        start--;
    snprintf(out, n, "%.*s", (int)(len - start), arg + start);
}

static int int_opt(const cli_args *a, const char *name, long lo, long hi, long def, long *out) {
    return cli_int(a, name, lo, hi, 0, def, out, NULL);
}

/* The decoding options into c->decode. Returns 0 or 2 (usage error). */
static int decoding_options(const cli_args *a, srv_config *c) {
    tolk_transcribe_params *p = &c->decode;
    int r, b;
    if ((r = cli_search_options(a, p))) return r;
    if ((r = cli_temperatures(a, p))) return r;
    if ((r = cli_fallback_thresholds(a, p))) return r;
    if ((r = cli_bool(a, "condition_on_previous_text", 1, &b))) return r;
    p->condition_on_previous_text = b;
    p->suppress_tokens = cli_str(a, "suppress_tokens", "-1");
    if ((r = cli_bool(a, "suppress_blank", 1, &b))) return r;
    p->suppress_blank = b;
    if ((r = cli_bool(a, "without_timestamps", 0, &b))) return r;
    p->without_timestamps = b;
    return 0;
}

/* Everything but the models into c. Returns 0 or 2. */
static int parse_options(const cli_args *a, srv_config *c) {
    static const char *const device_choices[] = {"cpu", "cuda", "auto", NULL};
    static const char *const compute_choices[] = {"auto", "float32", "bfloat16", "float16",
                                                  "fp32", "bf16",    "fp16",     NULL};
    long l;
    double d;
    int r, b;
    srv_config_defaults(c);
    c->host = cli_str(a, "host", "127.0.0.1");
    if (!*c->host) return cli_usage_error(a, "argument --host: empty address");
    if ((r = int_opt(a, "port", 0, 65535, 8000, &l))) return r;
    c->port = (int)l;
    c->api_key = cli_str(a, "api_key", getenv("TOLK_API_KEY"));
    if (c->api_key && !*c->api_key) c->api_key = NULL;
    if ((r = cli_choice(a, "device", device_choices, 2, &b))) return r;
    c->device = b == 0 ? TOLK_DEVICE_CPU : b == 1 ? TOLK_DEVICE_CUDA : TOLK_DEVICE_AUTO;
    if ((r = cli_choice(a, "compute_type", compute_choices, 0, &b))) return r;
    c->compute_type = b == 0               ? TOLK_COMPUTE_AUTO
                      : (b == 1 || b == 4) ? TOLK_COMPUTE_F32
                      : (b == 2 || b == 5) ? TOLK_COMPUTE_BF16
                                           : TOLK_COMPUTE_F16;
    static const char *const kv_choices[] = {"auto", "float32", "float16", NULL};
    if ((r = cli_choice(a, "kv_cache", kv_choices, 0, &b))) return r;
    c->kv_cache = b == 0 ? TOLK_KV_AUTO : b == 1 ? TOLK_KV_F32 : TOLK_KV_F16;
    static const char *const gelu_choices[] = {"exact", "tanh", NULL};
    if ((r = cli_choice(a, "gelu", gelu_choices, 0, &b))) return r;
    c->gelu = b == 0 ? TOLK_GELU_EXACT : TOLK_GELU_TANH;
    if ((r = int_opt(a, "threads", 0, 4096, 0, &l))) return r;
    c->n_threads = (int)l;
    if ((r = int_opt(a, "max_requests", 0, 4096, 0, &l))) return r;
    c->engine.max_requests = (int)l;
    if ((r = int_opt(a, "max_batch", 1, 65536, 256, &l))) return r;
    c->engine.max_batch = (int)l;
    if ((r = int_opt(a, "pool_mb", 0, 1L << 24, 0, &l))) return r;
    c->engine.memory_budget = (uint64_t)l << 20;
    if ((r = int_opt(a, "encoder_batch", 0, 256, 0, &l))) return r;
    c->engine.encoder_batch = (int)l;
    if ((r = int_opt(a, "max_body_mb", 1, 1 << 20, 25, &l))) return r;
    c->max_body_bytes = (uint64_t)l << 20;
    if ((r = cli_float(a, "max_audio_s", 1.0, 1e7, 0, 0, 3600.0, &d, NULL))) return r;
    c->max_audio_s = d;
    if ((r = int_opt(a, "max_concurrent", 1, 1 << 20, 128, &l))) return r;
    c->max_concurrent = (int)l;
    if ((r = int_opt(a, "max_queue", 0, 1 << 20, 64, &l))) return r;
    c->max_queue = (int)l;
    if ((r = int_opt(a, "max_connections", 4, 1 << 20, 1024, &l))) return r;
    c->max_connections = (int)l;
    if ((r = int_opt(a, "read_timeout_s", 1, 86400, 30, &l))) return r;
    c->read_timeout_s = (unsigned)l;
    if ((r = int_opt(a, "upload_timeout_s", 1, 86400, 300, &l))) return r;
    c->upload_timeout_s = (unsigned)l;
    if ((r = int_opt(a, "max_header_kb", 1, 1024, 32, &l))) return r;
    c->max_header_bytes = (size_t)l << 10;
    if ((r = int_opt(a, "max_sessions", 0, 1 << 20, 64, &l))) return r;
    c->max_sessions = (int)l;
    if ((r = int_opt(a, "ws_max_message_kb", 1, 1 << 20, 4096, &l))) return r;
    c->ws_max_message = (size_t)l << 10;
    if ((r = int_opt(a, "ws_idle_s", 1, 86400, 120, &l))) return r;
    c->ws_idle_s = (unsigned)l;
    if ((r = cli_float(a, "ws_max_buffer_s", 1.0, 86400.0, 0, 0, 300.0, &d, NULL))) return r;
    c->ws_max_buffer_s = d;
    if ((r = cli_float(a, "drain_timeout_s", 0.0, 86400.0, 0, 0, 120.0, &d, NULL))) return r;
    c->drain_timeout_s = d;
    c->quiet = cli_given(a, "quiet");
    return decoding_options(a, c);
}

int cli_serve(int argc, char **argv) {
    /* signals: every thread started from here on blocks them; this one
     * waits for them (sigwait) once the server runs */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cli_args a;
    int r = cli_parse("tolk serve", argc, argv, serve_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    if (a.n_positional > 0) {
        r = cli_usage_error(&a, "unrecognized argument: %s", a.positional[0]);
        cli_args_free(&a);
        return r;
    }
    srv_config c;
    r = parse_options(&a, &c);
    if (r) {
        cli_args_free(&a);
        return r;
    }

    /* the models: names and paths */
    char *list = strdup(cli_str(&a, "model", "base"));
    char names[SRV_MAX_MODELS][128];
    char *paths[SRV_MAX_MODELS] = {0};
    int status = 1;
    srv_server *s = NULL;
    char *save = NULL;
    for (char *tok = list ? strtok_r(list, ",", &save) : NULL; tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (!*tok) continue;
        if (c.n_models == SRV_MAX_MODELS) {
            status = cli_usage_error(&a, "argument --model: at most %d models", SRV_MAX_MODELS);
            goto done;
        }
        model_name(tok, names[c.n_models], sizeof names[0]);
        for (int i = 0; i < c.n_models; i++)
            if (!strcmp(names[i], names[c.n_models])) {
                status = cli_usage_error(&a, "argument --model: two models named '%s'", names[i]);
                goto done;
            }
        paths[c.n_models] = cli_resolve_model("tolk serve", tok, cli_str(&a, "model_dir", NULL));
        if (!paths[c.n_models]) goto done;
        c.models[c.n_models].name = names[c.n_models];
        c.models[c.n_models].path = paths[c.n_models];
        c.n_models++;
    }
    if (c.n_models == 0) {
        status = cli_usage_error(&a, "argument --model: no model given");
        goto done;
    }

    char err[1024];
    if (srv_start(&c, &s, err, sizeof err) != 0) {
        fprintf(stderr, "tolk serve: %s\n", err);
        goto done;
    }
    char ml[1200] = "";
    for (int i = 0; i < c.n_models; i++) {
        size_t k = strlen(ml);
        snprintf(ml + k, sizeof ml - k, "%s%.100s", i ? ", " : "", names[i]);
    }
    int v6 = strchr(c.host, ':') != NULL;
    srv_log("tolk serve %s: listening on http://%s%s%s:%d (models: %s; device %s%s)",
            tolk_version(), v6 ? "[" : "", c.host, v6 ? "]" : "", srv_port(s), ml,
            c.device == TOLK_DEVICE_CPU    ? "cpu"
            : c.device == TOLK_DEVICE_CUDA ? "cuda"
                                           : "auto",
            c.api_key ? "; API key required" : "");
    const char *pf = cli_str(&a, "port_file", NULL);
    if (pf) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", pf);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", srv_port(s)) < 0 || fclose(f) != 0 || rename(tmp, pf) != 0) {
            fprintf(stderr, "tolk serve: cannot write --port_file %s: %s\n", pf, strerror(errno));
            srv_stop(s);
            goto done;
        }
    }
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    srv_log("tolk serve: %s: draining (no new connections; finishing the requests in flight)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_stop(s);
    srv_log("tolk serve: stopped");
    status = 0;

done:
    for (int i = 0; i < SRV_MAX_MODELS; i++)
        free(paths[i]);
    free(list);
    cli_args_free(&a);
    return status;
}

#endif

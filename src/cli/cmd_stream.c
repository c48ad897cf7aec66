/*
 * cmd_stream.c — `tolk stream [FILE|-]`: live transcription of audio as it
 * arrives (tolk.h's tolk_stream), e.g. from a microphone:
 *
 *     arecord -f S16_LE -r 16000 -c 1 | tolk stream --format s16le -
 *
 * Input: raw PCM (--format s16le|f32le, --rate, --channels) from a file or
 * standard input, pushed as it is read; or any audio file tolk reads,
 * decoded in pieces. --realtime feeds the input at 1x speed (a file as a
 * simulated microphone; --speed scales it). Output: one JSON object per
 * event, {"type": "partial"|"final"|"end", "text", "start", "end"} (times
 * in seconds of input audio; --wall adds the wall-clock seconds since the
 * first sample was fed), or, on a terminal, a live display: committed text
 * line by line and, as the last line, the partial text. --streams N feeds
 * the input to N streams at once on one engine (benchmarks; each event
 * then names its "stream").
 *
 * Uses the public API (tolk.h) only.
 */
#include "cli.h"
#include "options.h"
#include "tolk.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const cli_optdef stream_opts[] = {
    {"help", 'h', 0},    {"model", 0, 1},         {"model_dir", 0, 1},   {"device", 0, 1},
    {"threads", 0, 1},   {"language", 0, 1},      {"task", 0, 1},        {"initial_prompt", 0, 1},
    {"format", 0, 1},    {"rate", 0, 1},          {"channels", 0, 1},    {"realtime", 0, 0},
    {"speed", 0, 1},     {"output", 0, 1},        {"wall", 0, 0},        {"policy", 0, 1},
    {"agreement", 0, 1}, {"min_update", 0, 1},    {"margin", 0, 1},      {"min_prob", 0, 1},
    {"trim", 0, 1},      {"encoder_pad", 0, 1},   {"encoder_min", 0, 1}, {"gate", 0, 1},
    {"pause", 0, 1},     {"streams", 0, 1},       {"stats", 0, 0},       {"simulate", 0, 0},
    {"vad_model", 0, 1}, {"agreement_gap", 0, 1}, {NULL, 0, 0},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: tolk stream [FILE|-] [OPTIONS]\n"
            "\n"
            "Live transcription: text while the audio arrives. Partial text (the current\n"
            "guess, which may change) and final text (committed, never taken back) come\n"
            "as the speech goes on; a pause ends an utterance. Reads FILE, or standard\n"
            "input with '-' or no FILE. A microphone on Linux:\n"
            "\n"
            "  arecord -f S16_LE -r 16000 -c 1 | tolk stream --format s16le -\n"
            "\n"
            "input:\n"
            "  --format s16le|f32le       raw PCM (signed 16-bit / float32 little-endian,\n"
            "                             channels interleaved); without it the input is an\n"
            "                             audio file (wav, flac, mp3, ...)\n"
            "  --rate HZ                  raw PCM sample rate [16000]\n"
            "  --channels N               raw PCM channels, averaged [1]\n"
            "  --realtime                 feed the input at real-time speed (a file as a\n"
            "                             simulated microphone); else as fast as it is read\n"
            "  --speed X                  with --realtime: X times real time [1]\n"
            "  --simulate                 each update ends before more audio is fed: the text\n"
            "                             does not depend on the machine's speed, and \"wall\"\n"
            "                             is the audio fed so far (compute takes no time)\n"
            "model:\n"
            "  --model NAME|PATH          model directory or file, or an installed name [base]\n"
            "  --model_dir DIR            where named models live [$TOLK_MODELS, else\n"
            "                             ~/.cache/tolk/models]\n"
            "  --device cpu|cuda|auto     where to run [auto]\n"
            "  --threads N                CPU threads; 0: all cores [0]\n"
            "  --language LANG            spoken language; None: detected [None]\n"
            "  --task transcribe|translate [transcribe]\n"
            "  --initial_prompt TEXT      text before the first words\n"
            "streaming:\n"
            "  --policy fast|agreement    commit words when the model is sure and has heard\n"
            "                             past them (fast), or when --agreement consecutive\n"
            "                             hypotheses agree (LocalAgreement-n) [fast]\n"
            "  --agreement N              LocalAgreement's n [2]\n"
            "  --agreement_gap S          LocalAgreement compares hypotheses this much audio\n"
            "                             apart [0.5]\n"
            "  --min_update S             new audio before the next update [0.25]\n"
            "  --margin S                 fast: a word ends this long before the audio [0.5]\n"
            "  --min_prob P               fast: least token probability [0.5]\n"
            "  --trim S                   drop committed audio past this buffer length [8]\n"
            "  --encoder_pad S            encoder past the audio; None: a full 30 s window [1]\n"
            "  --encoder_min S            the least encoder length [10]\n"
            "  --gate auto|silero|energy|none\n"
            "                             speech gate: the Silero VAD model, an adaptive\n"
            "                             energy gate, or none (no silence skipping); auto:\n"
            "                             silero when its model is installed, else energy\n"
            "                             [auto]\n"
            "  --vad_model NAME|PATH      the Silero VAD model (scripts/get-model silero-vad)\n"
            "                             [silero-vad]\n"
            "  --pause S                  silence that ends an utterance [0.5]\n"
            "output:\n"
            "  --output json|text|auto    JSON lines, or the live display; auto: the display\n"
            "                             on a terminal, JSON lines otherwise [auto]\n"
            "  --wall                     JSON lines carry \"wall\": seconds since the first\n"
            "                             sample was fed\n"
            "  --streams N                feed the input to N streams at once (benchmarks) [1]\n"
            "  --stats                    per-stream update statistics on stderr at the end\n"
            "\n"
            "Exit status: 0 done, 1 the input, the model or the stream failed, 2 usage error.\n");
}

/* ---- output -------------------------------------------------------------------- */

typedef struct out_state {
    pthread_mutex_t mu;
    int json, wall, multi;
    double t0; /* wall clock of the first fed sample (monotonic s) */
    int simulate;
    double sim_pos; /* --simulate: seconds of audio fed (the simulated clock) */
    int partial_shown;
} out_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

typedef struct stream_ctx {
    out_state *out;
    int index;
    tolk_stream *s;
    pthread_t feeder; /* unused for stream 0 (main thread feeds all) */
} stream_ctx;

static void on_event(void *user, const tolk_stream_event *ev) {
    stream_ctx *sc = user;
    out_state *o = sc->out;
    static const char *const names[3] = {"partial", "final", "end"};
    pthread_mutex_lock(&o->mu);
    if (o->json) {
        printf("{\"type\": \"%s\", \"text\": ", names[ev->type]);
        json_string(stdout, ev->text);
        printf(", \"start\": %.3f, \"end\": %.3f", ev->start, ev->end);
        if (o->multi) printf(", \"stream\": %d", sc->index);
        if (o->wall) printf(", \"wall\": %.3f", o->simulate ? o->sim_pos : now_s() - o->t0);
        if (ev->type == TOLK_STREAM_END && ev->status != TOLK_OK)
            printf(", \"error\": \"%s\"", tolk_strerror(ev->status));
        printf("}\n");
    } else {
        /* the last line is the partial text */
        if (o->partial_shown) printf("\r\033[K");
        o->partial_shown = 0;
        if (ev->type == TOLK_STREAM_FINAL) {
            int m0 = (int)(ev->start / 60), m1 = (int)(ev->end / 60);
            printf("[%02d:%05.2f --> %02d:%05.2f]%s\n", m0, ev->start - 60 * m0, m1,
                   ev->end - 60 * m1, ev->text);
        } else if (ev->type == TOLK_STREAM_PARTIAL && *ev->text) {
            printf("\033[2m...%s\033[0m", ev->text);
            o->partial_shown = 1;
        }
    }
    fflush(stdout);
    pthread_mutex_unlock(&o->mu);
}

/* ---- input ----------------------------------------------------------------------- */

typedef struct feed_opts {
    int raw; /* 0 audio file, 1 s16le, 2 f32le */
    int rate, channels;
    int realtime;
    double speed;
} feed_opts;

/* Sleep until `frames` frames at `rate` are due (realtime pacing). */
static void pace(const out_state *o, const feed_opts *f, uint64_t frames, int rate) {
    if (!f->realtime) return;
    double due = o->t0 + (double)frames / rate / f->speed;
    double wait = due - now_s();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Push frames to every stream; 0 or the failing status. pos: seconds of
 * input once they are in (the simulated clock). */
static tolk_status push_all(stream_ctx *sc, int n, const void *x, size_t frames, int s16,
                            double pos) {
    out_state *o = sc[0].out;
    pthread_mutex_lock(&o->mu);
    o->sim_pos = pos;
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < n; i++) {
        tolk_status st =
            s16 ? tolk_stream_push_s16(sc[i].s, x, frames) : tolk_stream_push(sc[i].s, x, frames);
        if (st != TOLK_OK) {
            fprintf(stderr, "tolk: stream: %s\n", tolk_stream_last_error(sc[i].s));
            return st;
        }
    }
    return TOLK_OK;
}

/* Raw PCM from fp, in pieces of 20 ms. */
static int feed_raw(FILE *fp, const char *name, const feed_opts *f, out_state *o, stream_ctx *sc,
                    int n) {
    const size_t bps = f->raw == 1 ? 2 : 4, frame = bps * (size_t)f->channels;
    size_t piece = (size_t)f->rate / 50;
    if (piece == 0) piece = 1;
    unsigned char *bytes = malloc(piece * frame);
    float *fl = malloc(piece * (size_t)f->channels * sizeof(float));
    int16_t *i16 = malloc(piece * (size_t)f->channels * sizeof(int16_t));
    if (!bytes || !fl || !i16) {
        free(bytes), free(fl), free(i16);
        fprintf(stderr, "tolk: stream: out of memory\n");
        return 1;
    }
    uint64_t fed = 0;
    size_t have = 0;
    int rc = 0;
    for (;;) {
        size_t got = fread(bytes + have, 1, piece * frame - have, fp);
        have += got;
        if (got == 0 && (feof(fp) || ferror(fp))) break;
        size_t frames = have / frame;
        if (frames == 0) continue;
        size_t m = frames * (size_t)f->channels;
        for (size_t i = 0; i < m; i++) {
            const unsigned char *b = bytes + i * bps;
            if (f->raw == 1) {
                i16[i] = (int16_t)(uint16_t)(b[0] | (b[1] << 8));
            } else {
                uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                             ((uint32_t)b[3] << 24);
                memcpy(&fl[i], &u, 4);
            }
        }
        pace(o, f, fed + frames, f->rate);
        if (push_all(sc, n, f->raw == 1 ? (const void *)i16 : (const void *)fl, frames, f->raw == 1,
                     (double)(fed + frames) / f->rate) != TOLK_OK) {
            rc = 1;
            break;
        }
        fed += frames;
        memmove(bytes, bytes + frames * frame, have - frames * frame);
        have -= frames * frame;
    }
    if (ferror(fp)) {
        fprintf(stderr, "tolk: %s: read error: %s\n", name, strerror(errno));
        rc = 1;
    } else if (have > 0 && rc == 0) {
        fprintf(stderr,
                "tolk: warning: %s: the input ends inside a frame (%zu stray bytes of a "
                "%zu-byte frame ignored)\n",
                name, have, frame);
    }
    free(bytes), free(fl), free(i16);
    return rc;
}

/* An audio file, decoded to 16 kHz mono in pieces of 20 ms. */
static int feed_file(tolk_ctx *ctx, const char *path, const feed_opts *f, out_state *o,
                     stream_ctx *sc, int n) {
    tolk_audio_reader *r = NULL;
    tolk_status st = tolk_audio_open(ctx, path, &r);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
        return 1;
    }
    float buf[320];
    uint64_t fed = 0;
    int rc = 0;
    for (;;) {
        size_t got = 0;
        st = tolk_audio_read(ctx, r, buf, 320, &got);
        if (st != TOLK_OK) {
            fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
            rc = 1;
            break;
        }
        if (got == 0) break;
        pace(o, f, fed + got, 16000);
        if (push_all(sc, n, buf, got, 0, (double)(fed + got) / 16000.0) != TOLK_OK) {
            rc = 1;
            break;
        }
        fed += got;
    }
    tolk_audio_close(r);
    return rc;
}

/* ---- the command ------------------------------------------------------------------ */

int cli_stream(int argc, char **argv) {
    cli_args a;
    int r = cli_parse("tolk stream", argc, argv, stream_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    tolk_stream_params sp = tolk_stream_default_params();
    feed_opts f = {.raw = 0, .rate = 16000, .channels = 1, .realtime = 0, .speed = 1.0};
    long l = 0;
    double d = 0;
    int none = 0, b = 0, n_threads = 0, device = 2, output = 2, n_streams = 1;
    static const char *const formats[] = {"s16le", "f32le", NULL};
    static const char *const devices[] = {"cpu", "cuda", "auto", NULL};
    static const char *const tasks[] = {"transcribe", "translate", NULL};
    static const char *const policies[] = {"fast", "agreement", NULL};
    static const char *const gates[] = {"auto", "silero", "energy", "none", NULL};
    static const char *const outputs[] = {"json", "text", "auto", NULL};
    const char *input = "-";
    if (a.n_positional > 1) {
        r = cli_usage_error(&a, "one input at most (a file, or '-' for standard input)");
        goto usage_done;
    }
    if (a.n_positional == 1) input = a.positional[0];
    if (cli_given(&a, "format")) {
        if ((r = cli_choice(&a, "format", formats, 0, &b))) goto usage_done;
        f.raw = b + 1;
    } else if (cli_given(&a, "rate") || cli_given(&a, "channels")) {
        r = cli_usage_error(&a, "--rate and --channels describe raw PCM: give --format too");
        goto usage_done;
    }
    if ((r = cli_int(&a, "rate", 1000, 384000, 0, 16000, &l, NULL))) goto usage_done;
    f.rate = (int)l;
    if ((r = cli_int(&a, "channels", 1, 64, 0, 1, &l, NULL))) goto usage_done;
    f.channels = (int)l;
    f.realtime = cli_given(&a, "realtime");
    if (f.realtime && cli_given(&a, "simulate")) {
        r = cli_usage_error(&a, "--realtime and --simulate exclude each other");
        goto usage_done;
    }
    sp.synchronous = cli_given(&a, "simulate");
    if ((r = cli_float(&a, "speed", 0.01, 100.0, 0, 0, 1.0, &f.speed, NULL))) goto usage_done;
    if (cli_given(&a, "speed") && !f.realtime) {
        r = cli_usage_error(&a, "--speed paces --realtime: give --realtime too");
        goto usage_done;
    }
    if ((r = cli_choice(&a, "device", devices, 2, &device))) goto usage_done;
    if ((r = cli_int(&a, "threads", 0, 4096, 1, 0, &l, &none))) goto usage_done;
    n_threads = none ? 0 : (int)l;
    const char *lang = cli_str(&a, "language", NULL);
    if (lang && strcmp(lang, "None") != 0) {
        sp.transcribe.language = cli_language_code(lang);
        if (!sp.transcribe.language) {
            r = cli_usage_error(&a, "argument --language: invalid choice: '%s'", lang);
            goto usage_done;
        }
    }
    if ((r = cli_choice(&a, "task", tasks, 0, &b))) goto usage_done;
    sp.transcribe.task = b ? TOLK_TASK_TRANSLATE : TOLK_TASK_TRANSCRIBE;
    sp.transcribe.initial_prompt = cli_str(&a, "initial_prompt", NULL);
    if ((r = cli_choice(&a, "policy", policies, 0, &b))) goto usage_done;
    sp.policy = b ? TOLK_STREAM_LOCAL_AGREEMENT : TOLK_STREAM_FAST;
    if ((r = cli_int(&a, "agreement", 2, 8, 0, 2, &l, NULL))) goto usage_done;
    sp.agreement = (int)l;
    if ((r = cli_float(&a, "agreement_gap", 0.0, 10.0, 0, 0, 0.5, &d, NULL))) goto usage_done;
    sp.agreement_gap_s = (float)d;
    if ((r = cli_float(&a, "min_update", 0.02, 10.0, 0, 0, 0.25, &d, NULL))) goto usage_done;
    sp.min_update_s = (float)d;
    if ((r = cli_float(&a, "margin", 0.0, 10.0, 0, 0, 0.5, &d, NULL))) goto usage_done;
    sp.margin_s = (float)d;
    if ((r = cli_float(&a, "min_prob", 0.0, 1.0, 0, 0, 0.5, &d, NULL))) goto usage_done;
    sp.min_prob = (float)d;
    if ((r = cli_float(&a, "trim", 0.0, 25.0, 0, 0, 8.0, &d, NULL))) goto usage_done;
    sp.trim_s = (float)d;
    if ((r = cli_float(&a, "encoder_pad", 0.0, 30.0, 0, 1, 1.0, &d, &none))) goto usage_done;
    sp.encoder_pad_s = none ? -1.0f : (float)d;
    if ((r = cli_float(&a, "encoder_min", 0.0, 30.0, 0, 0, 10.0, &d, NULL))) goto usage_done;
    sp.encoder_min_s = (float)d;
    int gate = 0;
    if ((r = cli_choice(&a, "gate", gates, 0, &gate))) goto usage_done;
    sp.gate = gate == 1   ? TOLK_STREAM_GATE_SILERO
              : gate == 2 ? TOLK_STREAM_GATE_ENERGY
              : gate == 3 ? TOLK_STREAM_GATE_NONE
                          : TOLK_STREAM_GATE_AUTO;
    const char *vad_name = cli_str(&a, "vad_model", NULL);
    if (vad_name && !*vad_name) {
        r = cli_usage_error(&a, "argument --vad_model: empty model name");
        goto usage_done;
    }
    if (vad_name && (gate == 2 || gate == 3)) {
        r = cli_usage_error(&a, "--vad_model is the Silero gate's: give --gate silero or auto");
        goto usage_done;
    }
    if ((r = cli_float(&a, "pause", 0.064, 30.0, 0, 0, 0.5, &d, NULL))) goto usage_done;
    sp.pause_s = (float)d;
    if ((r = cli_choice(&a, "output", outputs, 2, &output))) goto usage_done;
    if ((r = cli_int(&a, "streams", 1, 256, 0, 1, &l, NULL))) goto usage_done;
    n_streams = (int)l;
    const char *model_name = cli_str(&a, "model", "base");
    if (!*model_name) {
        r = cli_usage_error(&a, "argument --model: empty model name");
        goto usage_done;
    }
    if (f.raw) {
        sp.sample_rate = f.rate;
        sp.channels = f.channels;
    }

    out_state o = {.json = output == 0 || (output == 2 && !isatty(STDOUT_FILENO)),
                   .wall = cli_given(&a, "wall"),
                   .simulate = sp.synchronous,
                   .multi = n_streams > 1};
    pthread_mutex_init(&o.mu, NULL);
    int rc = 0;
    tolk_ctx *ctx = NULL;
    tolk_model *model = NULL;
    tolk_engine *engine = NULL;
    tolk_vad *vad = NULL;
    char *model_path = NULL, *vad_path = NULL;
    FILE *fp = NULL;
    stream_ctx *sc = calloc((size_t)n_streams, sizeof *sc);
    if (!sc) {
        fprintf(stderr, "tolk: stream: out of memory\n");
        rc = 1;
        goto done;
    }
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = n_threads;
    cp.device = device == 0 ? TOLK_DEVICE_CPU : device == 1 ? TOLK_DEVICE_CUDA : TOLK_DEVICE_AUTO;
    tolk_status st = tolk_ctx_new(&cp, &ctx);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: stream: cannot create a context: %s\n", tolk_strerror(st));
        rc = 1;
        goto done;
    }
    /* the input first: a missing file fails before the model loads */
    if (f.raw) {
        fp = strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
        if (!fp) {
            fprintf(stderr, "tolk: %s: %s\n", input, strerror(errno));
            rc = 1;
            goto done;
        }
    } else if (strcmp(input, "-") != 0 && access(input, R_OK) != 0) {
        fprintf(stderr, "tolk: %s: %s\n", input, strerror(errno));
        rc = 1;
        goto done;
    }
    model_path = cli_resolve_model("tolk stream", model_name, cli_str(&a, "model_dir", NULL));
    if (!model_path) {
        rc = 1;
        goto done;
    }
    tolk_model_params mp = tolk_model_default_params();
    mp.device = tolk_ctx_device(ctx);
    st = tolk_model_load(ctx, model_path, &mp, &model);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
        rc = 1;
        goto done;
    }
    /* the gate's model: --gate silero needs it; auto takes it when installed
     * (an explicit --vad_model must be found), else the energy gate */
    if (gate <= 1) {
        const char *vn = vad_name ? vad_name : "silero-vad";
        vad_path = cli_find_model("tolk stream", vn, cli_str(&a, "model_dir", NULL),
                                  gate == 0 && !vad_name);
        if (!vad_path && (gate == 1 || vad_name)) {
            rc = 1;
            goto done;
        }
        if (vad_path && (st = tolk_vad_load(ctx, vad_path, &vad)) != TOLK_OK) {
            fprintf(stderr, "tolk: %s\n", tolk_ctx_last_error(ctx));
            rc = 1;
            goto done;
        }
    }
    sp.vad = vad;
    tolk_model_desc desc;
    tolk_model_describe(model, &desc);
    if (!desc.multilingual) sp.transcribe.language = "en";
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = n_streams > 16 ? n_streams : 16;
    st = tolk_engine_new(ctx, model, &ep, &engine);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk: stream: %s\n", tolk_ctx_last_error(ctx));
        rc = 1;
        goto done;
    }
    sp.on_event = on_event;
    for (int i = 0; i < n_streams; i++) {
        sc[i].out = &o;
        sc[i].index = i;
        sp.user = &sc[i];
        st = tolk_stream_open(engine, &sp, &sc[i].s);
        if (st != TOLK_OK) {
            fprintf(stderr, "tolk: stream: %s\n", tolk_engine_last_error(engine));
            rc = 1;
            goto done;
        }
    }
    o.t0 = now_s();
    rc = f.raw ? feed_raw(fp, strcmp(input, "-") ? input : "<stdin>", &f, &o, sc, n_streams)
               : feed_file(ctx, input, &f, &o, sc, n_streams);
    for (int i = 0; i < n_streams; i++) {
        tolk_stream_close(sc[i].s);
        if (tolk_stream_wait(sc[i].s) != TOLK_OK) {
            fprintf(stderr, "tolk: stream: %s\n", tolk_stream_last_error(sc[i].s));
            rc = 1;
        }
    }
    if (!o.json && o.partial_shown) printf("\r\033[K");
    if (cli_given(&a, "stats"))
        for (int i = 0; i < n_streams; i++) {
            tolk_stream_stats ss;
            tolk_stream_get_stats(sc[i].s, &ss);
            fprintf(stderr,
                    "tolk: stream %d: %.1f s of input, %lld updates (mean %.3f s, max %.3f s, "
                    "mean buffer %.2f s), %lld words, %lld utterances, gate %s\n",
                    i, ss.input_s, (long long)ss.updates,
                    ss.updates ? ss.update_s / (double)ss.updates : 0.0, ss.update_s_max,
                    ss.updates ? ss.buffer_s / (double)ss.updates : 0.0, (long long)ss.words,
                    (long long)ss.utterances,
                    sp.gate == TOLK_STREAM_GATE_NONE     ? "none"
                    : sp.gate == TOLK_STREAM_GATE_ENERGY ? "energy"
                    : vad                                ? "silero"
                                                         : "energy (no Silero model)");
        }
done:
    if (sc)
        for (int i = 0; i < n_streams; i++)
            tolk_stream_free(sc[i].s);
    free(sc);
    tolk_engine_free(engine);
    tolk_vad_free(vad);
    free(vad_path);
    tolk_model_free(model);
    tolk_ctx_free(ctx);
    free(model_path);
    if (fp && fp != stdin) fclose(fp);
    pthread_mutex_destroy(&o.mu);
    cli_args_free(&a);
    return rc;
usage_done:
    cli_args_free(&a);
    return r;
}

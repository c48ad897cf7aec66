/*
 * test_audio.c — audio input: every format libsndfile writes here (WAV PCM
 * 8/16/24/32 + float, FLAC, OGG/Vorbis, Opus, MP3, AIFF) at several rates
 * and channel counts, the FFmpeg-only containers (m4a, mp4, webm, mkv, ADTS)
 * made with the ffmpeg program when present, bit-exact 16 kHz pass-through
 * (int16 / 32768 as openai-whisper's load_audio gives), channel averaging,
 * resampling (frequency and level kept), the shared speech clips, the
 * streaming reader against whole-file loading, standard input, and every
 * kind of bad input (missing, empty, directory, text, truncated, corrupt,
 * absurd headers).
 */
#include "internal.h"
#include "testutil.h"

#include <sndfile.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static tolk_ctx *g_ctx;

static tolk_ctx *ctx(void) {
    if (!g_ctx) tolk_ctx_new(NULL, &g_ctx);
    return g_ctx;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Channel c of a generated test tone has gain 1 / (c + 1), so the average
 * of the channels has amplitude amp * mean_c(1 / (c + 1)). */
static double mean_gain(int channels) {
    double g = 0;
    for (int c = 0; c < channels; c++)
        g += 1.0 / (c + 1);
    return g / channels;
}

/* Write seconds of a sine of freq Hz, amplitude amp, at rate Hz with
 * `channels` channels in libsndfile format `format`. Returns 1 when written,
 * 0 when this libsndfile cannot write the format. */
static int write_tone(const char *path, int format, int rate, int channels, double seconds,
                      double freq, double amp) {
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = channels;
    info.format = format;
    if (!sf_format_check(&info)) return 0;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) return 0;
    size_t n = (size_t)(seconds * rate + 0.5);
    float *buf = malloc(n * (size_t)channels * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < n; i++) {
        double v = amp * sin(2 * M_PI * freq * (double)i / rate);
        for (int c = 0; c < channels; c++)
            buf[i * (size_t)channels + c] = (float)(v / (c + 1));
    }
    sf_count_t w = sf_writef_float(sf, buf, (sf_count_t)n);
    free(buf);
    sf_close(sf);
    CU_ASSERT_EQUAL(w, (sf_count_t)n);
    return 1;
}

/* Frequency of a tone from its zero crossings (interpolated) over x[0, n),
 * at 16 kHz. */
static double zc_frequency(const float *x, size_t n) {
    double first = -1, last = -1;
    long count = 0;
    for (size_t i = 1; i < n; i++) {
        if ((x[i - 1] < 0) != (x[i] < 0)) {
            double t = (double)(i - 1) + x[i - 1] / (double)(x[i - 1] - x[i]);
            if (first < 0) first = t;
            last = t;
            count++;
        }
    }
    if (count < 2) return 0;
    return (double)(count - 1) / 2.0 / ((last - first) / TOLK_SAMPLE_RATE);
}

/* Frequency (Hz, 10 Hz grid from 100 to 7900) with the largest DFT
 * magnitude over x[0, n) at 16 kHz. */
static double dft_peak(const float *x, size_t n) {
    double best = 0, best_f = 0;
    for (int f = 100; f < 7900; f += 10) {
        double w = 2 * M_PI * f / TOLK_SAMPLE_RATE, re = 0, im = 0;
        for (size_t i = 0; i < n; i++) {
            re += x[i] * cos(w * (double)i);
            im -= x[i] * sin(w * (double)i);
        }
        double m = re * re + im * im;
        if (m > best) {
            best = m;
            best_f = f;
        }
    }
    return best_f;
}

static double rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (n) CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
    fclose(f);
}

static int have_ffmpeg_program(void) {
    return system("command -v ffmpeg >/dev/null 2>&1") == 0;
}

/* Run the ffmpeg program quietly; 1 on success. */
static int run_ffmpeg(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -hide_banner -loglevel error -y %s >/dev/null 2>&1",
             args);
    return system(cmd) == 0;
}

/* Load path expecting failure with status want; checks the outputs are
 * cleared and the message names the file. */
static void expect_fail(const char *path, tolk_status want, const char *word) {
    float *x = (float *)1;
    size_t n = 123;
    tolk_status st = tolk_audio_load(ctx(), path, &x, &n);
    const char *msg = tolk_ctx_last_error(ctx());
    printf("\n      %s -> %s: %s", path, tolk_strerror(st), msg);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(x);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, path));
    if (word) CU_ASSERT_PTR_NOT_NULL(strstr(msg, word));
    if (st == TOLK_OK) tolk_free(x);
    /* The streaming reader refuses it the same way (at open or first read). */
    tolk_audio_reader *r = (tolk_audio_reader *)1;
    st = tolk_audio_open(ctx(), path, &r);
    if (st == TOLK_OK) {
        float buf[4096];
        size_t got = 0, total = 0;
        do {
            st = tolk_audio_read(ctx(), r, buf, 4096, &got);
            total += got;
        } while (st == TOLK_OK && got > 0);
        tolk_audio_close(r);
        if (st == TOLK_OK && total == 0) st = TOLK_ERR_EMPTY;
    } else {
        CU_ASSERT_PTR_NULL(r);
    }
    CU_ASSERT_EQUAL(st, want);
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fmt_case {
    const char *name, *ext;
    int format, rate, channels;
    int lossy; /* level tolerance 5% and length tolerance 0.1 s instead of 1% / 1 sample */
} fmt_case;

static const fmt_case FORMATS[] = {
    {"WAV PCM u8", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 16000, 1, 0},
    {"WAV PCM 16", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, 0},
    {"WAV PCM 16 8k", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, 0},
    {"WAV PCM 24", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 48000, 2, 0},
    {"WAV PCM 32", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 22050, 1, 0},
    {"WAV float", "wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, 0},
    {"WAV double", "wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, 32000, 1, 0},
    {"WAV 5.1 PCM 16", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 48000, 6, 0},
    {"FLAC 16", "flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 0},
    {"FLAC 24 stereo", "flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 44100, 2, 0},
    {"FLAC 8", "flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_S8, 8000, 1, 0},
    {"OGG/Vorbis stereo", "ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 44100, 2, 1},
    {"OGG/Vorbis 16k", "ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1, 1},
    {"Opus stereo 48k", "opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 2, 1},
    {"Opus 16k", "opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 16000, 1, 1},
    {"MP3 stereo", "mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, 2, 1},
    {"MP3 16k", "mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 16000, 1, 1},
    {"AIFF PCM 16", "aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 44100, 2, 0},
    {"AIFF PCM 24", "aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 16000, 1, 0},
    {"AIFF PCM s8", "aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_S8, 11025, 1, 0},
    {"AIFF float", "aiff", SF_FORMAT_AIFF | SF_FORMAT_FLOAT, 24000, 2, 0},
    {"CAF PCM 16", "caf", SF_FORMAT_CAF | SF_FORMAT_PCM_16, 12000, 1, 0},
};

/* Check a loaded 1 kHz tone: length, frequency and level. */
static void check_tone(const char *what, const float *x, size_t n, double seconds, double amp,
                       int lossy) {
    double want_n = seconds * TOLK_SAMPLE_RATE;
    /* Measure away from the edges (resampler and codec ramps). */
    size_t a = TOLK_SAMPLE_RATE / 10, b = n > a ? n - a : 0;
    double f = b > a ? zc_frequency(x + a, b - a) : 0;
    double level = b > a ? rms(x + a, b - a) / (amp / sqrt(2.0)) : 0;
    printf("\n      %-20s n=%zu (want %.0f) f=%.4f Hz level=%.6f", what, n, want_n, f, level);
    CU_ASSERT(fabs((double)n - want_n) <= (lossy ? 0.1 * TOLK_SAMPLE_RATE : 1.0));
    CU_ASSERT(fabs(f - 1000.0) < (lossy ? 2.0 : 0.5));
    CU_ASSERT(fabs(level - 1.0) < (lossy ? 0.05 : 0.01));
    if (b > a + 4000) CU_ASSERT(fabs(dft_peak(x + a, 4000) - 1000.0) < 1.0);
}

static void test_formats(void) {
    int written = 0;
    for (size_t k = 0; k < sizeof FORMATS / sizeof FORMATS[0]; k++) {
        const fmt_case *fc = &FORMATS[k];
        char path[4096];
        snprintf(path, sizeof path, "%s", tu_tmp("tone"));
        snprintf(path + strlen(path), sizeof path - strlen(path), "_%zu.%s", k, fc->ext);
        const double seconds = 1.5, amp = 0.5;
        if (!write_tone(path, fc->format, fc->rate, fc->channels, seconds, 1000.0, amp)) {
            tu_skip("this libsndfile cannot write %s", fc->name);
            continue;
        }
        written++;
        float *x = NULL;
        size_t n = 0;
        tolk_status st = tolk_audio_load(ctx(), path, &x, &n);
        if (st != TOLK_OK) printf("\n      %s: %s", fc->name, tolk_ctx_last_error(ctx()));
        CU_ASSERT_EQUAL_FATAL(st, TOLK_OK);
        char what[64];
        snprintf(what, sizeof what, "%s %dHz x%d", fc->name, fc->rate, fc->channels);
        check_tone(what, x, n, seconds, amp * mean_gain(fc->channels), fc->lossy);

        /* From memory: the same samples. */
        size_t size = 0;
        unsigned char *bytes = read_file(path, &size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        float *y = NULL;
        size_t m = 0;
        CU_ASSERT_EQUAL(tolk_audio_load_memory(ctx(), bytes, size, "mem", &y, &m), TOLK_OK);
        CU_ASSERT_EQUAL(m, n);
        if (m == n) CU_ASSERT(memcmp(x, y, n * sizeof(float)) == 0);
        tolk_free(y);
        free(bytes);

        /* source info */
        tolk_audio_reader *r = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_audio_open(ctx(), path, &r), TOLK_OK);
        int rate = 0, ch = 0;
        int64_t frames = 0;
        tolk_audio_source_info(r, &rate, &ch, &frames);
        CU_ASSERT_EQUAL(rate, fc->rate);
        CU_ASSERT_EQUAL(ch, fc->channels);
        if (!fc->lossy) CU_ASSERT_EQUAL(frames, (int64_t)(seconds * fc->rate + 0.5));
        tolk_audio_close(r);
        tolk_free(x);
    }
    CU_ASSERT(written >= 15);
}

/* ------------------------------------------------------------------------ */
/* Truncated input (issue 12, defect 5)                                     */
/* ------------------------------------------------------------------------ */

/* Read a whole input through the streaming reader; returns the truncation
 * flag, with *expected / *decoded source frames. */
static int read_truncated(const char *path, int64_t *expected, int64_t *decoded) {
    tolk_audio_reader *r = NULL;
    if (tolk_audio_open(ctx(), path, &r) != TOLK_OK) {
        printf("\n      %s: %s", path, tolk_ctx_last_error(ctx()));
        return -1;
    }
    float buf[4096];
    size_t got = 1;
    while (got > 0)
        if (tolk_audio_read(ctx(), r, buf, 4096, &got) != TOLK_OK) break;
    int t = tolk_audio_truncated(r, expected, decoded);
    tolk_audio_close(r);
    return t;
}

/* Cut at half: WAV (the data chunk claims more than the file holds) and MP3
 * (the Xing count) report the promised frames; Ogg Vorbis and Opus (no
 * final page) report -1; complete files report nothing. */
static void test_truncated(void) {
    const struct {
        const char *name, *ext;
        int format, rate, count; /* count: the format states a frame count */
    } v[] = {
        {"WAV PCM 16", "wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1},
        {"WAV float stereo", "wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 1},
        {"MP3", "mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, 1},
        {"OGG/Vorbis", "ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 0},
        {"Opus", "opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 0},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        char path[4096], cut[4096];
        snprintf(path, sizeof path, "%s.%s", tu_tmp("whole"), v[k].ext);
        snprintf(cut, sizeof cut, "%s.%s", tu_tmp("cut"), v[k].ext);
        const int channels = strstr(v[k].name, "stereo") ? 2 : 1;
        if (!write_tone(path, v[k].format, v[k].rate, channels, 10.0, 1000.0, 0.5)) {
            tu_skip("this libsndfile cannot write %s", v[k].name);
            continue;
        }
        size_t size = 0;
        unsigned char *bytes = read_file(path, &size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        FILE *f = fopen(cut, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(bytes, 1, size / 2, f), size / 2);
        fclose(f);
        free(bytes);
        int64_t expected = 0, decoded = 0;
        CU_ASSERT_EQUAL(read_truncated(path, &expected, &decoded), 0);
        CU_ASSERT_EQUAL(expected, -1);
        int t = read_truncated(cut, &expected, &decoded);
        printf("\n      %-16s cut: truncated %d, expected %lld, decoded %lld", v[k].name, t,
               (long long)expected, (long long)decoded);
        CU_ASSERT_EQUAL(t, 1);
        if (v[k].count) {
            CU_ASSERT(llabs(expected - 10 * (int64_t)v[k].rate) <= 2 * 1152);
            CU_ASSERT(decoded > 0 && decoded < expected * 6 / 10);
        } else {
            CU_ASSERT_EQUAL(expected, -1);
        }
        unlink(path);
        unlink(cut);
    }
}

/* ------------------------------------------------------------------------ */
/* Exactness                                                                */
/* ------------------------------------------------------------------------ */

/* 16 kHz 16-bit PCM must come out as sample / 32768, bit for bit. */
static void test_pcm16_exact(void) {
    const int formats[] = {SF_FORMAT_WAV | SF_FORMAT_PCM_16, SF_FORMAT_FLAC | SF_FORMAT_PCM_16,
                           SF_FORMAT_AIFF | SF_FORMAT_PCM_16};
    const char *ext[] = {"wav", "flac", "aiff"};
    const size_t n = 40000;
    short *s = malloc(n * sizeof(short));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    tu_seed(7);
    for (size_t i = 0; i < n; i++)
        s[i] = (short)(int)floorf(tu_uniform(-32768.0f, 32768.0f));
    s[0] = -32768;
    s[1] = 32767;
    s[2] = 0;
    s[3] = -1;
    for (int k = 0; k < 3; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%s", tu_tmp("exact16"), ext[k]);
        SF_INFO info = {.samplerate = 16000, .channels = 1, .format = formats[k]};
        SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
        CU_ASSERT_EQUAL(sf_writef_short(sf, s, (sf_count_t)n), (sf_count_t)n);
        sf_close(sf);
        float *x = NULL;
        size_t m = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &m), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(m, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += x[i] != (float)s[i] / 32768.0f;
        CU_ASSERT_EQUAL(bad, 0);
        tolk_free(x);
    }
    free(s);
}

/* 16 kHz float input passes through untouched; 24-bit becomes v / 2^23;
 * stereo is averaged in float. */
static void test_passthrough_and_mix(void) {
    const size_t n = 20000;
    float *v = malloc(2 * n * sizeof(float));
    int *iv = malloc(n * sizeof(int));
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(iv);
    tu_seed(11);
    tu_fill_uniform(v, 2 * n, -0.9f, 0.9f);
    char path[4096];
    /* mono float */
    snprintf(path, sizeof path, "%s", tu_tmp("pass_f32.wav"));
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
    sf_writef_float(sf, v, (sf_count_t)n);
    sf_close(sf);
    float *x = NULL;
    size_t m = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(m, n);
    CU_ASSERT(memcmp(x, v, n * sizeof(float)) == 0);
    tolk_free(x);

    /* stereo float: (L + R) / 2 in float */
    snprintf(path, sizeof path, "%s", tu_tmp("mix_f32.wav"));
    info.channels = 2;
    sf = sf_open(path, SFM_WRITE, &info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
    sf_writef_float(sf, v, (sf_count_t)n);
    sf_close(sf);
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(m, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += x[i] != (v[2 * i] + v[2 * i + 1]) * 0.5f;
    CU_ASSERT_EQUAL(bad, 0);
    tolk_free(x);

    /* 24-bit FLAC: v / 2^23 exactly */
    for (size_t i = 0; i < n; i++)
        iv[i] = (int)(v[i] * 8388607.0f) * 256;
    snprintf(path, sizeof path, "%s", tu_tmp("exact24.flac"));
    SF_INFO i24 = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_FLAC | SF_FORMAT_PCM_24};
    sf = sf_open(path, SFM_WRITE, &i24);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
    sf_writef_int(sf, iv, (sf_count_t)n);
    sf_close(sf);
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &m), TOLK_OK);
    CU_ASSERT_EQUAL_FATAL(m, n);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += x[i] != (float)((double)(iv[i] / 256) / 8388608.0);
    CU_ASSERT_EQUAL(bad, 0);
    tolk_free(x);
    free(iv);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* Resampling                                                               */
/* ------------------------------------------------------------------------ */

static void test_resample(void) {
    const double rates[] = {44100, 48000, 8000, 22050, 32000, 11025, 96000};
    const double amp = 0.5, seconds = 2.0;
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        double rate = rates[k];
        size_t n = (size_t)(seconds * rate);
        float *in = malloc(n * sizeof(float));
        CU_ASSERT_PTR_NOT_NULL_FATAL(in);
        for (size_t i = 0; i < n; i++)
            in[i] = (float)(amp * sin(2 * M_PI * 1000.0 * i / rate));
        float *out = NULL;
        size_t m = 0;
        CU_ASSERT_EQUAL_FATAL(tolk_resample(ctx(), in, n, rate, 16000, &out, &m), TOLK_OK);
        char what[64];
        snprintf(what, sizeof what, "resample %.0f->16k", rate);
        check_tone(what, out, m, seconds, amp, 0);
        CU_ASSERT_EQUAL(m, (size_t)(seconds * 16000));
        /* Against the ideal tone sampled at 16 kHz (libsoxr is linear phase
         * and removes its delay), away from the edges. */
        double err = 0;
        for (size_t i = 1600; i + 1600 < m; i++) {
            double e = fabs(out[i] - amp * sin(2 * M_PI * 1000.0 * (double)i / 16000.0));
            if (e > err) err = e;
        }
        printf(" max|err| vs ideal=%.2e", err);
        CU_ASSERT(err < 1e-5);
        tolk_free(out);
        free(in);
    }
    /* same rate: a copy */
    float v[5] = {0.1f, -0.2f, 0.3f, 0.4f, -1.0f}, *out = NULL;
    size_t m = 0;
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 16000, 16000, &out, &m), TOLK_OK);
    CU_ASSERT_EQUAL(m, 5);
    if (out) CU_ASSERT(memcmp(out, v, sizeof v) == 0);
    tolk_free(out);
    /* bad arguments */
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 0, 16000, &out, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, NAN, 16000, &out, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 16000, INFINITY, &out, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 1e6, 100, &out, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), NULL, 5, 8000, 16000, &out, &m), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 0, 8000, 16000, &out, &m), TOLK_ERR_EMPTY);
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 8000, 16000, NULL, &m), TOLK_ERR_INVALID_ARG);
    /* tiny input still works */
    CU_ASSERT_EQUAL(tolk_resample(ctx(), v, 5, 8000, 16000, &out, &m), TOLK_OK);
    CU_ASSERT(m >= 9 && m <= 11);
    tolk_free(out);
}

/* ------------------------------------------------------------------------ */
/* Shared speech clips                                                      */
/* ------------------------------------------------------------------------ */

static void test_shared_clips(void) {
    const char *jfk = tu_data("speech/jfk.flac");
    if (!tu_exists(jfk)) {
        tu_skip("shared data not found (%s)", jfk);
        return;
    }
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), jfk, &x, &n), TOLK_OK);
    printf("\n      jfk.flac: %zu samples, rms %.4f", n, rms(x, n));
    CU_ASSERT_EQUAL(n, 176000); /* 11 s: 485100 frames at 44.1 kHz */
    tolk_free(x);

    /* Every clip of asr.tsv: the length the table gives, and the 16 kHz
     * ones bit-exact against libsndfile's int16 read / 32768. */
    FILE *f = fopen(tu_data("speech/asr.tsv"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[8192];
    int checked = 0, exact = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* header */
    while (fgets(line, sizeof line, f)) {
        char *tab1 = strchr(line, '\t');
        if (!tab1) continue;
        *tab1 = 0;
        char *tab2 = strchr(tab1 + 1, '\t');
        if (!tab2) continue;
        *tab2 = 0;
        char *dur_s = tab2 + 1;
        char *tab3 = strchr(dur_s, '\t');
        if (!tab3) continue;
        *tab3 = 0;
        double seconds = atof(dur_s);
        char rel[8300];
        snprintf(rel, sizeof rel, "speech/%s", line);
        const char *path = tu_data(rel);
        x = NULL;
        CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &n), TOLK_OK);
        CU_ASSERT(fabs((double)n - seconds * TOLK_SAMPLE_RATE) <= 8.0);
        checked++;
        SF_INFO info = {0};
        SNDFILE *sf = sf_open(path, SFM_READ, &info);
        if (sf && info.samplerate == 16000 && info.channels == 1) {
            short *s = malloc((size_t)info.frames * sizeof(short));
            sf_count_t got = s ? sf_readf_short(sf, s, info.frames) : 0;
            CU_ASSERT_EQUAL(got, (sf_count_t)n);
            size_t bad = 0;
            for (size_t i = 0; i < n && (sf_count_t)i < got; i++)
                bad += x[i] != (float)s[i] / 32768.0f;
            CU_ASSERT_EQUAL(bad, 0);
            exact += bad == 0;
            free(s);
        }
        if (sf) sf_close(sf);
        tolk_free(x);
    }
    fclose(f);
    printf("\n      asr.tsv: %d clips loaded, %d bit-exact 16 kHz", checked, exact);
    CU_ASSERT(checked > 0);
}

/* ------------------------------------------------------------------------ */
/* Streaming                                                                */
/* ------------------------------------------------------------------------ */

static void stream_equals_load(const char *path) {
    float *x = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &x, &n), TOLK_OK);
    const size_t chunks[] = {1, 13, 4096, 100000, 160, 7};
    tolk_audio_reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_open(ctx(), path, &r), TOLK_OK);
    float *y = malloc((n + 200000) * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    size_t m = 0, got = 0;
    int k = 0;
    for (;;) {
        size_t want = chunks[k++ % 6];
        if (m + want > n + 200000) want = n + 200000 - m;
        CU_ASSERT_EQUAL_FATAL(tolk_audio_read(ctx(), r, y + m, want, &got), TOLK_OK);
        if (got == 0) break;
        CU_ASSERT(got <= want);
        m += got;
    }
    /* Reads after the end keep returning 0. */
    CU_ASSERT_EQUAL(tolk_audio_read(ctx(), r, y, 10, &got), TOLK_OK);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tolk_audio_read(ctx(), r, y, 0, &got), TOLK_OK);
    tolk_audio_close(r);
    CU_ASSERT_EQUAL(m, n);
    if (m == n) CU_ASSERT(memcmp(x, y, n * sizeof(float)) == 0);
    free(y);
    tolk_free(x);
}

static void test_streaming(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_tmp("stream44.flac"));
    CU_ASSERT_FATAL(write_tone(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, 2, 3.3, 440, 0.4));
    stream_equals_load(path);
    snprintf(path, sizeof path, "%s", tu_tmp("stream16.wav"));
    CU_ASSERT_FATAL(write_tone(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 5.1, 440, 0.4));
    stream_equals_load(path);
    snprintf(path, sizeof path, "%s", tu_tmp("stream8.ogg"));
    CU_ASSERT_FATAL(write_tone(path, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 8000, 1, 2.0, 440, 0.4));
    stream_equals_load(path);
    const char *jfk = tu_data("speech/jfk.flac");
    if (tu_exists(jfk)) stream_equals_load(jfk);

    /* bad arguments */
    size_t got = 5;
    float b[4];
    CU_ASSERT_EQUAL(tolk_audio_read(ctx(), NULL, b, 4, &got), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(got, 0);
    tolk_audio_reader *r = (tolk_audio_reader *)1;
    CU_ASSERT_EQUAL(tolk_audio_open(ctx(), NULL, &r), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(tolk_audio_open(ctx(), path, NULL), TOLK_ERR_INVALID_ARG);
    int rate = 1, ch = 1;
    int64_t frames = 1;
    tolk_audio_source_info(NULL, &rate, &ch, &frames);
    CU_ASSERT(rate == 0 && ch == 0 && frames == -1);
    tolk_audio_close(NULL);
}

/* "-" reads standard input: a pipe (not seekable) and a redirected file. */
static void test_stdin(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_tmp("stdin.flac"));
    CU_ASSERT_FATAL(write_tone(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050, 2, 0.5, 1000, 0.5));
    size_t size = 0;
    unsigned char *bytes = read_file(path, &size);
    CU_ASSERT_FATAL(bytes && size < 60000); /* fits a pipe buffer */
    float *ref = NULL, *x = NULL;
    size_t nref = 0, n = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), path, &ref, &nref), TOLK_OK);

    int saved = dup(STDIN_FILENO);
    CU_ASSERT_FATAL(saved >= 0);
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    CU_ASSERT_EQUAL(write(p[1], bytes, size), (ssize_t)size);
    close(p[1]);
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    tolk_status st = tolk_audio_load(ctx(), "-", &x, &n);
    dup2(saved, STDIN_FILENO);
    CU_ASSERT_EQUAL(st, TOLK_OK);
    CU_ASSERT_EQUAL(n, nref);
    if (st == TOLK_OK && n == nref) CU_ASSERT(memcmp(x, ref, n * sizeof(float)) == 0);
    tolk_free(x);

    /* a file redirected to stdin, through the streaming reader */
    int fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    dup2(fd, STDIN_FILENO);
    close(fd);
    tolk_audio_reader *r = NULL;
    st = tolk_audio_open(ctx(), "-", &r);
    dup2(saved, STDIN_FILENO);
    close(saved);
    CU_ASSERT_EQUAL_FATAL(st, TOLK_OK);
    float *y = malloc((nref + 10) * sizeof(float));
    size_t m = 0, got = 0;
    while (tolk_audio_read(ctx(), r, y + m, nref + 10 - m, &got) == TOLK_OK && got > 0)
        m += got;
    tolk_audio_close(r);
    CU_ASSERT_EQUAL(m, nref);
    if (m == nref) CU_ASSERT(memcmp(y, ref, m * sizeof(float)) == 0);
    free(y);

    /* an empty stdin */
    saved = dup(STDIN_FILENO);
    CU_ASSERT_FATAL(pipe(p) == 0);
    close(p[1]);
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    x = (float *)1;
    st = tolk_audio_load(ctx(), "-", &x, &n);
    dup2(saved, STDIN_FILENO);
    close(saved);
    CU_ASSERT_EQUAL(st, TOLK_ERR_EMPTY);
    CU_ASSERT_PTR_NULL(x);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx()), "stdin"));
    tolk_free(ref);
    free(bytes);
}

/* ------------------------------------------------------------------------ */
/* FFmpeg-only containers                                                   */
/* ------------------------------------------------------------------------ */

static void test_ffmpeg_containers(void) {
#ifdef TOLK_HAVE_FFMPEG
    CU_ASSERT_EQUAL(tolk_audio_has_ffmpeg(), 1);
#else
    CU_ASSERT_EQUAL(tolk_audio_has_ffmpeg(), 0);
#endif
    if (!have_ffmpeg_program()) {
        tu_skip("the ffmpeg program is not installed: FFmpeg containers not generated");
        return;
    }
    char wav[4096], wav16[4096];
    snprintf(wav, sizeof wav, "%s", tu_tmp("src44.wav"));
    snprintf(wav16, sizeof wav16, "%s", tu_tmp("src16.wav"));
    const double seconds = 2.0, amp = 0.5;
    CU_ASSERT_FATAL(
        write_tone(wav, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, seconds, 1000, amp));
    CU_ASSERT_FATAL(
        write_tone(wav16, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, seconds, 1000, amp));
    struct {
        const char *name, *file, *args; /* args: %s = output */
        int exact;                      /* must equal the 16 kHz WAV bit for bit */
    } cases[] = {
        {"m4a/AAC", "t.m4a", "-i %s -c:a aac -b:a 160k %s", 0},
        {"mp4 AAC + video", "t.mp4",
         "-f lavfi -i color=c=black:s=64x64:r=10:d=2 -i %s -c:v mpeg4 -c:a aac -b:a 160k "
         "-shortest %s",
         0},
        {"webm/Opus", "t.webm", "-i %s -c:a libopus -b:a 128k %s", 0},
        {"mkv/Vorbis", "t.mkv", "-i %s -c:a libvorbis %s", 0},
        {"ADTS AAC", "t.aac", "-i %s -c:a aac -b:a 160k -f adts %s", 0},
        {"mkv/PCM s16 16k", "t16.mkv", "-i %s -c:a pcm_s16le %s", 1},
        {"mov/PCM s16 16k", "t16.mov", "-i %s -c:a pcm_s16le %s", 1},
    };
    float *ref16 = NULL;
    size_t nref16 = 0;
    CU_ASSERT_EQUAL_FATAL(tolk_audio_load(ctx(), wav16, &ref16, &nref16), TOLK_OK);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char out[4096], args[12288];
        snprintf(out, sizeof out, "%s", tu_tmp(cases[k].file));
        snprintf(args, sizeof args, cases[k].args, cases[k].exact ? wav16 : wav, out);
        if (!run_ffmpeg(args)) {
            tu_skip("ffmpeg could not make %s", cases[k].name);
            continue;
        }
        float *x = NULL;
        size_t n = 0;
        tolk_status st = tolk_audio_load(ctx(), out, &x, &n);
#ifdef TOLK_HAVE_FFMPEG
        if (st != TOLK_OK) printf("\n      %s: %s", cases[k].name, tolk_ctx_last_error(ctx()));
        CU_ASSERT_EQUAL(st, TOLK_OK);
        if (st != TOLK_OK) continue;
        check_tone(cases[k].name, x, n, seconds, amp * mean_gain(cases[k].exact ? 1 : 2), 1);
        if (cases[k].exact) {
            CU_ASSERT_EQUAL(n, nref16);
            if (n == nref16) CU_ASSERT(memcmp(x, ref16, n * sizeof(float)) == 0);
        }
        /* memory and streaming give the same */
        size_t size = 0;
        unsigned char *bytes = read_file(out, &size);
        float *y = NULL;
        size_t m = 0;
        CU_ASSERT_EQUAL(tolk_audio_load_memory(ctx(), bytes, size, cases[k].file, &y, &m), TOLK_OK);
        CU_ASSERT_EQUAL(m, n);
        if (m == n && y) CU_ASSERT(memcmp(x, y, n * sizeof(float)) == 0);
        tolk_free(y);
        free(bytes);
        stream_equals_load(out);
        tolk_free(x);
#else
        printf("\n      %s: %s", cases[k].name, tolk_ctx_last_error(ctx()));
        if (cases[k].exact && strstr(cases[k].file, ".mov") == NULL && st == TOLK_OK) {
            tolk_free(x); /* cannot happen: libsndfile does not read Matroska */
            CU_FAIL("libsndfile read Matroska?");
            continue;
        }
        CU_ASSERT_EQUAL(st, TOLK_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NULL(x);
        CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx()), "FFmpeg"));
        CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx()), out));
#endif
    }
    tolk_free(ref16);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                */
/* ------------------------------------------------------------------------ */

/* A canonical 44-byte WAV header. */
static void wav_header(unsigned char h[44], uint32_t rate, uint16_t channels, uint16_t bits,
                       uint32_t data_bytes) {
    uint16_t align = (uint16_t)(channels * (bits / 8));
    uint32_t byte_rate = rate * align, riff = 36 + data_bytes;
    memcpy(h, "RIFF", 4);
    memcpy(h + 4, &riff, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    uint32_t fmt_len = 16;
    uint16_t pcm = 1;
    memcpy(h + 16, &fmt_len, 4);
    memcpy(h + 20, &pcm, 2);
    memcpy(h + 22, &channels, 2);
    memcpy(h + 24, &rate, 4);
    memcpy(h + 28, &byte_rate, 4);
    memcpy(h + 32, &align, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data_bytes, 4);
}

static void test_bad_input(void) {
    char path[4096];
    /* missing file, directory */
    expect_fail("/nonexistent/dir/x.wav", TOLK_ERR_IO, "no such file");
    snprintf(path, sizeof path, "%s", tu_tmp("adir.wav"));
    mkdir(path, 0700);
    expect_fail(path, TOLK_ERR_IO, "directory");
    rmdir(path);
    /* empty file */
    snprintf(path, sizeof path, "%s", tu_tmp("empty.wav"));
    write_bytes(path, "", 0);
    expect_fail(path, TOLK_ERR_EMPTY, "empty");
    /* valid headers, zero samples */
    snprintf(path, sizeof path, "%s", tu_tmp("zero.wav"));
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
    sf_close(sf);
    expect_fail(path, TOLK_ERR_EMPTY, NULL);
    snprintf(path, sizeof path, "%s", tu_tmp("zero.flac"));
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    sf = sf_open(path, SFM_WRITE, &info);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
    sf_close(sf);
    expect_fail(path, TOLK_ERR_EMPTY, NULL);
    /* a text file */
    snprintf(path, sizeof path, "%s", tu_tmp("notes.wav"));
    const char *text = "This is not audio.\nJust some words in a text file.\n";
    write_bytes(path, text, strlen(text));
    expect_fail(path, TOLK_ERR_FORMAT, "text");
    /* random bytes */
    unsigned char junk[8192];
    tu_seed(3);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)tu_uniform(0, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("junk.bin"));
    write_bytes(path, junk, sizeof junk);
    expect_fail(path, TOLK_ERR_FORMAT, "not a recognised audio format");

    /* absurd headers */
    unsigned char wav[44 + 256];
    memset(wav, 0, sizeof wav);
    wav_header(wav, 16000, 60000, 16, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("channels.wav"));
    write_bytes(path, wav, sizeof wav);
    expect_fail(path, TOLK_ERR_FORMAT, NULL);
    wav_header(wav, 16000, 0, 16, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("nochannels.wav"));
    write_bytes(path, wav, sizeof wav);
    expect_fail(path, TOLK_ERR_FORMAT, NULL);
    wav_header(wav, 2000000000u, 1, 16, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("rate.wav"));
    write_bytes(path, wav, sizeof wav);
    expect_fail(path, TOLK_ERR_UNSUPPORTED, "sample rate");
    wav_header(wav, 1, 1, 16, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("rate1.wav"));
    write_bytes(path, wav, sizeof wav);
    expect_fail(path, TOLK_ERR_UNSUPPORTED, "sample rate");
    wav_header(wav, 0, 1, 16, 256);
    snprintf(path, sizeof path, "%s", tu_tmp("rate0.wav"));
    write_bytes(path, wav, sizeof wav);
    {
        float *x = (float *)1;
        size_t n = 1;
        CU_ASSERT_NOT_EQUAL(tolk_audio_load(ctx(), path, &x, &n), TOLK_OK);
        CU_ASSERT_PTR_NULL(x);
    }
    /* a data chunk that claims 4 GB on a 300-byte file: what is there */
    wav_header(wav, 16000, 1, 16, 0xFFFFFFF0u);
    snprintf(path, sizeof path, "%s", tu_tmp("bigdata.wav"));
    write_bytes(path, wav, sizeof wav);
    {
        float *x = NULL;
        size_t n = 0;
        tolk_status st = tolk_audio_load(ctx(), path, &x, &n);
        printf("\n      bigdata.wav -> %s (%zu samples) %s", tolk_strerror(st), n,
               tolk_ctx_last_error(ctx()));
        CU_ASSERT(st == TOLK_OK ? n == 128 : x == NULL);
        tolk_free(x);
    }

    /* A chunk before "data" that claims 1.5 GB in a 92-byte file (FFmpeg's
     * WAV demuxer would try to allocate it): refused up front. */
    {
        unsigned char riff[92];
        memset(riff, 0, sizeof riff);
        wav_header(riff, 44100, 1, 16, 0);
        memcpy(riff + 36, "LIST", 4); /* replaces "data" */
        uint32_t huge = 0x5B00001Au;
        memcpy(riff + 40, &huge, 4);
        memcpy(riff + 44, "INFO", 4);
        snprintf(path, sizeof path, "%s", tu_tmp("hugelist.wav"));
        write_bytes(path, riff, sizeof riff);
        expect_fail(path, TOLK_ERR_FORMAT, NULL);
    }

    /* truncated and corrupted real files */
    char good[4096];
    snprintf(good, sizeof good, "%s", tu_tmp("good.flac"));
    CU_ASSERT_FATAL(write_tone(good, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, 2, 2.0, 500, 0.5));
    size_t size = 0;
    unsigned char *bytes = read_file(good, &size);
    CU_ASSERT_FATAL(bytes != NULL && size > 1000);
    const size_t cuts[] = {4, 20, 42, 100, 1000};
    for (size_t k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "%s_cut%zu.flac", tu_tmp("trunc"), cuts[k]);
        write_bytes(path, bytes, cuts[k]);
        expect_fail(path, TOLK_ERR_FORMAT, NULL);
    }
    snprintf(path, sizeof path, "%s", tu_tmp("trunc_half.flac"));
    write_bytes(path, bytes, size / 2);
    expect_fail(path, TOLK_ERR_FORMAT, "truncated");
    /* corrupt frames in the middle: an error or samples, never a crash */
    unsigned char *bad = malloc(size);
    memcpy(bad, bytes, size);
    for (size_t i = size / 3; i < size / 3 + 2000 && i < size; i++)
        bad[i] ^= 0x5A;
    snprintf(path, sizeof path, "%s", tu_tmp("corrupt.flac"));
    write_bytes(path, bad, size);
    {
        float *x = (float *)1;
        size_t n = 0;
        tolk_status st = tolk_audio_load(ctx(), path, &x, &n);
        printf("\n      corrupt.flac -> %s (%zu samples) %s", tolk_strerror(st), n,
               tolk_ctx_last_error(ctx()));
        if (st != TOLK_OK) {
            CU_ASSERT_PTR_NULL(x);
            CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx()), "corrupt.flac"));
        }
        tolk_free(st == TOLK_OK ? x : NULL);
    }
    free(bad);
    free(bytes);

    /* A truncated WAV (its data chunk runs past the end of the file), like
     * a recording cut off: libsndfile clamps the length to what the file
     * holds and that is what loads (as ffmpeg does). */
    snprintf(good, sizeof good, "%s", tu_tmp("good.wav"));
    CU_ASSERT_FATAL(write_tone(good, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 1.0, 500, 0.5));
    bytes = read_file(good, &size);
    snprintf(path, sizeof path, "%s", tu_tmp("trunc.wav"));
    write_bytes(path, bytes, size / 2);
    {
        float *x = (float *)1;
        size_t n = 0;
        tolk_status st = tolk_audio_load(ctx(), path, &x, &n);
        printf("\n      trunc.wav -> %s (%zu samples) %s", tolk_strerror(st), n,
               tolk_ctx_last_error(ctx()));
        CU_ASSERT_EQUAL(st, TOLK_OK);
        CU_ASSERT_EQUAL(n, (size / 2 - 44) / 2);
        if (st == TOLK_OK) tolk_free(x);
    }
    free(bytes);

    /* memory: empty, NULL */
    float *x = (float *)1;
    size_t n = 5;
    CU_ASSERT_EQUAL(tolk_audio_load_memory(ctx(), "", 0, "nothing", &x, &n), TOLK_ERR_EMPTY);
    CU_ASSERT_PTR_NULL(x);
    CU_ASSERT_PTR_NOT_NULL(strstr(tolk_ctx_last_error(ctx()), "nothing"));
    CU_ASSERT_EQUAL(tolk_audio_load_memory(ctx(), NULL, 10, "x", &x, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_audio_load_memory(ctx(), junk, 100, NULL, &x, &n), TOLK_ERR_FORMAT);
    CU_ASSERT_EQUAL(tolk_audio_load(ctx(), NULL, &x, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_audio_load(NULL, "/nonexistent.wav", &x, &n), TOLK_ERR_IO);
}

/* Headers that do not tell the whole truth but whose audio is fine: an MP3
 * without a Xing header (libsndfile's length is an estimate), a FLAC
 * written to a pipe (no total in STREAMINFO), a WAV whose data size was
 * never filled in (0: FFmpeg builds find the samples, others say empty). */
static void test_odd_headers(void) {
    unsigned char wav[44 + 2 * 16000];
    memset(wav, 0, sizeof wav);
    wav_header(wav, 16000, 1, 16, 0);
    for (int i = 0; i < 16000; i++) {
        short v = (short)(8000 * sin(2 * M_PI * 1000.0 * i / 16000));
        memcpy(wav + 44 + 2 * i, &v, 2);
    }
    float *x = (float *)1;
    size_t n = 0;
    tolk_status st = tolk_audio_load_memory(ctx(), wav, sizeof wav, "unfinished.wav", &x, &n);
    printf("\n      unfinished.wav -> %s (%zu samples) %s", tolk_strerror(st), n,
           tolk_ctx_last_error(ctx()));
#ifdef TOLK_HAVE_FFMPEG
    CU_ASSERT_EQUAL(st, TOLK_OK);
    CU_ASSERT_EQUAL(n, 16000);
    if (st == TOLK_OK) CU_ASSERT_EQUAL(x[1], (float)(short)(8000 * sin(2 * M_PI / 16)) / 32768.0f);
    tolk_free(st == TOLK_OK ? x : NULL);
#else
    CU_ASSERT_EQUAL(st, TOLK_ERR_EMPTY);
    CU_ASSERT_PTR_NULL(x);
#endif
    if (!have_ffmpeg_program()) {
        tu_skip("the ffmpeg program is not installed: odd MP3/FLAC headers not generated");
        return;
    }
    char src[4096], mp3[4096], flac[4096], args[12288];
    snprintf(src, sizeof src, "%s", tu_tmp("odd_src.wav"));
    snprintf(mp3, sizeof mp3, "%s", tu_tmp("noxing.mp3"));
    snprintf(flac, sizeof flac, "%s", tu_tmp("piped.flac"));
    CU_ASSERT_FATAL(write_tone(src, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, 2.0, 1000, 0.5));
    snprintf(args, sizeof args, "-i %s -c:a libmp3lame -b:a 192k -write_xing 0 %s", src, mp3);
    if (run_ffmpeg(args)) {
        st = tolk_audio_load(ctx(), mp3, &x, &n);
        if (st != TOLK_OK) printf("\n      %s", tolk_ctx_last_error(ctx()));
        CU_ASSERT_EQUAL(st, TOLK_OK);
        if (st == TOLK_OK) check_tone("MP3 without Xing", x, n, 2.0, 0.5 * mean_gain(2), 1);
        if (st == TOLK_OK) tolk_free(x);
    }
    /* G.722 in a WAV: libsndfile refuses the codec; FFmpeg decodes it. */
    char g722[4096];
    snprintf(g722, sizeof g722, "%s", tu_tmp("g722.wav"));
    snprintf(args, sizeof args, "-i %s -ar 16000 -c:a adpcm_g722 -f wav %s", src, g722);
    if (run_ffmpeg(args)) {
        st = tolk_audio_load(ctx(), g722, &x, &n);
        printf("\n      g722.wav -> %s %s", tolk_strerror(st), tolk_ctx_last_error(ctx()));
#ifdef TOLK_HAVE_FFMPEG
        CU_ASSERT_EQUAL(st, TOLK_OK);
        if (st == TOLK_OK) check_tone("G.722 in WAV", x, n, 2.0, 0.5 * mean_gain(2), 1);
#else
        CU_ASSERT_EQUAL(st, TOLK_ERR_FORMAT);
#endif
        if (st == TOLK_OK) tolk_free(x);
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -i %s -f flac - 2>/dev/null > %s",
             src, flac);
    if (system(cmd) == 0) {
        st = tolk_audio_load(ctx(), flac, &x, &n);
        if (st != TOLK_OK) printf("\n      %s", tolk_ctx_last_error(ctx()));
        CU_ASSERT_EQUAL(st, TOLK_OK);
        if (st == TOLK_OK) check_tone("FLAC from a pipe", x, n, 2.0, 0.5 * mean_gain(2), 0);
        if (st == TOLK_OK) tolk_free(x);
    }
}

/* Containers recognised by their magic bytes: without FFmpeg a clear
 * "build with FFmpeg" error; with it, a decode error for these stubs. */
static void test_container_magic(void) {
    unsigned char m4a[64] = {0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'M', '4', 'A', ' '};
    unsigned char mkv[64] = {0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01};
    unsigned char adts[64] = {0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC};
    struct {
        const char *name;
        const unsigned char *data;
    } cases[] = {{"stub.m4a", m4a}, {"stub.mkv", mkv}, {"stub.aac", adts}};
    for (int k = 0; k < 3; k++) {
        float *x = (float *)1;
        size_t n = 7;
        tolk_status st = tolk_audio_load_memory(ctx(), cases[k].data, 64, cases[k].name, &x, &n);
        const char *msg = tolk_ctx_last_error(ctx());
        printf("\n      %s -> %s: %s", cases[k].name, tolk_strerror(st), msg);
        CU_ASSERT_NOT_EQUAL(st, TOLK_OK);
        CU_ASSERT_PTR_NULL(x);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, cases[k].name));
#ifndef TOLK_HAVE_FFMPEG
        CU_ASSERT_EQUAL(st, TOLK_ERR_UNSUPPORTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "FFmpeg"));
#endif
    }
}

static void test_pad_or_trim(void) {
    float *dst = malloc(TOLK_N_SAMPLES * sizeof(float));
    float *src = malloc((TOLK_N_SAMPLES + 100) * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    tu_seed(5);
    tu_fill_uniform(src, TOLK_N_SAMPLES + 100, -1, 1);
    for (size_t i = 0; i < TOLK_N_SAMPLES; i++)
        dst[i] = 9.0f;
    tolk_audio_pad_or_trim(src, 1000, dst);
    CU_ASSERT(memcmp(dst, src, 1000 * sizeof(float)) == 0);
    size_t nz = 0;
    for (size_t i = 1000; i < TOLK_N_SAMPLES; i++)
        nz += dst[i] != 0.0f;
    CU_ASSERT_EQUAL(nz, 0);
    tolk_audio_pad_or_trim(src, TOLK_N_SAMPLES + 100, dst);
    CU_ASSERT(memcmp(dst, src, TOLK_N_SAMPLES * sizeof(float)) == 0);
    tolk_audio_pad_or_trim(NULL, 0, dst);
    nz = 0;
    for (size_t i = 0; i < TOLK_N_SAMPLES; i++)
        nz += dst[i] != 0.0f;
    CU_ASSERT_EQUAL(nz, 0);
    free(src);
    free(dst);
}

int main(void) {
    CU_TestInfo tests[] = {{"formats", test_formats},
                           {"pcm16_exact", test_pcm16_exact},
                           {"passthrough_and_mix", test_passthrough_and_mix},
                           {"resample", test_resample},
                           {"shared_clips", test_shared_clips},
                           {"streaming", test_streaming},
                           {"stdin", test_stdin},
                           {"ffmpeg_containers", test_ffmpeg_containers},
                           {"container_magic", test_container_magic},
                           {"odd_headers", test_odd_headers},
                           {"bad_input", test_bad_input},
                           {"pad_or_trim", test_pad_or_trim},
                           {"truncated", test_truncated},
                           CU_TEST_INFO_NULL};
    tu_add_suite("audio", tests);
    int rc = tu_run();
    tolk_ctx_free(g_ctx);
    return rc;
}

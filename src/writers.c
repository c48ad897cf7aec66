/*
 * writers.c — render a tolk_result as txt, vtt, srt, tsv or json, and write
 * it to a file atomically.
 *
 * Reproduces the output of openai-whisper's writers (whisper/utils.py:
 * WriteTXT, WriteVTT, WriteSRT, WriteTSV, WriteJSON) for results without
 * word timestamps, byte for byte for the text formats:
 *  - txt: each segment's text stripped of Unicode whitespace (Python's
 *    str.strip()), one per line.
 *  - vtt: "WEBVTT" and a blank line, then "START --> END\nTEXT\n\n" per
 *    segment; MM:SS.mmm, with an "HH:" part only from one hour on.
 *  - srt: "N\nSTART --> END\nTEXT\n\n", N from 1, HH:MM:SS,mmm always.
 *    vtt and srt replace "-->" in the text by "->" (left to right, non
 *    overlapping, as str.replace).
 *  - tsv: "start\tend\ttext" header, then integer milliseconds
 *    (round-half-even of 1000 * seconds, as Python's round) and the stripped
 *    text with tabs replaced by spaces.
 *  - json: the reference's result dict {"text", "segments": [{"id", "seek",
 *    "start", "end", "text", "tokens", "temperature", "avg_logprob",
 *    "compression_ratio", "no_speech_prob"}], "language"}, keys in that
 *    order, written with cJSON (compact; no trailing newline, as json.dump).
 *    Non-ASCII text is written as UTF-8 rather than \u escapes; float32
 *    fields are written with their shortest round-trip decimal form.
 * Timestamps are rounded to milliseconds with round-half-even on the double
 * value (Python's round(seconds * 1000.0)).
 *
 * Text that is not valid UTF-8 is repaired before rendering as Python's
 * bytes.decode("utf-8", "replace") would (one U+FFFD per maximal ill-formed
 * subpart), so every output is valid UTF-8 (and the JSON valid JSON).
 */
#include "internal.h"
#include "result.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Largest timestamp accepted, in seconds (about 31 years): keeps the
 * millisecond count well inside int64 and the hour field printable. */
#define MAX_SECONDS 1e9

/* ------------------------------------------------------------------------ */
/* A growable byte buffer                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *data; /* NUL-terminated when len > 0 or cap > 0 */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    int failed; /* an allocation failed or a size overflowed */
} sbuf;

/* Make room for n more bytes plus a NUL. Returns 0 on failure (sticky). */
static int sb_reserve(sbuf *b, size_t n) {
    if (b->failed) return 0;
    size_t need;
    if (!tolk_add_size(b->len, n, &need) || !tolk_add_size(need, 1, &need)) {
        b->failed = 1;
        return 0;
    }
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 1;
}

/* Append n bytes of s. */
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (!sb_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

/* Append a printf-formatted string (short: timestamps and numbers). */
static void sb_printf(sbuf *b, const char *fmt, ...) TOLK_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* UTF-8 text handling                                                       */
/* ------------------------------------------------------------------------ */

/* Decode the UTF-8 sequence at s[0..n), n >= 1. Returns its length (1..4)
 * and sets *cp, or, for ill-formed bytes, returns minus the length of the
 * maximal ill-formed subpart (the lead byte and the continuation bytes that
 * were still possible), which Python's errors="replace" turns into one
 * U+FFFD. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) return -i;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Whether code point c is whitespace for Python's str.isspace() (and so
 * removed by str.strip()). */
static int py_isspace(uint32_t c) {
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    switch (c) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

/* A copy of s (NULL = "") with ill-formed UTF-8 replaced by U+FFFD
 * (EF BF BD), and, when strip is set, leading and trailing whitespace
 * removed as Python's str.strip() does. Returns a malloc'd string (caller
 * frees) or NULL when out of memory. */
static char *clean_text(const char *s, int strip) {
    if (!s) s = "";
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    sbuf b = {0};
    sb_reserve(&b, n);
    size_t keep = 0; /* length of b up to the last non-space character */
    int seen = 0;    /* a non-space character has been copied */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int d = utf8_decode(u + i, n - i, &cp);
        size_t len = (size_t)(d < 0 ? -d : d);
        int space;
        if (d < 0) {
            sb_put(&b, "\xEF\xBF\xBD", 3);
            space = 0;
        } else {
            space = py_isspace(cp);
            if (!(strip && space && !seen)) sb_put(&b, s + i, len);
        }
        if (!space) {
            seen = 1;
            keep = b.len;
        }
        i += len;
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    if (!b.data) return calloc(1, 1);
    if (strip) b.data[keep] = '\0';
    return b.data;
}

/* Append text to b with every non-overlapping occurrence of pat (scanning
 * left to right, as Python's str.replace) replaced by rep. */
static void sb_put_replaced(sbuf *b, const char *text, const char *pat, const char *rep) {
    size_t pn = strlen(pat), rn = strlen(rep);
    const char *p = text;
    for (;;) {
        const char *hit = strstr(p, pat);
        if (!hit) break;
        sb_put(b, p, (size_t)(hit - p));
        sb_put(b, rep, rn);
        p = hit + pn;
    }
    sb_puts(b, p);
}

/* ------------------------------------------------------------------------ */
/* Timestamps                                                                */
/* ------------------------------------------------------------------------ */

/* Python's round(seconds * 1000.0): round half to even on the double
 * product. seconds is finite and in [0, MAX_SECONDS]. */
static int64_t round_ms(double seconds) {
    double ms = seconds * 1000.0;
    double r = floor(ms);
    double diff = ms - r;
    if (diff > 0.5 || (diff == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
    return (int64_t)r;
}

/* Append the reference's format_timestamp(seconds, always_include_hours,
 * decimal_marker): [HH:]MM:SS<marker>mmm, hours when asked or non-zero. */
static void sb_timestamp(sbuf *b, double seconds, int always_hours, char marker) {
    int64_t ms = round_ms(seconds);
    int64_t hours = ms / 3600000;
    ms -= hours * 3600000;
    int64_t minutes = ms / 60000;
    ms -= minutes * 60000;
    int64_t secs = ms / 1000;
    ms -= secs * 1000;
    if (always_hours || hours > 0) sb_printf(b, "%02lld:", (long long)hours);
    sb_printf(b, "%02lld:%02lld%c%03lld", (long long)minutes, (long long)secs, marker,
              (long long)ms);
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                   */
/* ------------------------------------------------------------------------ */

/* Check a result before rendering: counts, pointers, timestamps. */
static tolk_status check_result(tolk_ctx *ctx, const tolk_result *r) {
    for (int i = 0; i < r->n_segs; i++) {
        const tolk_segment *s = &r->segs[i].pub;
        if (!(s->start >= 0.0 && s->start <= MAX_SECONDS) ||
            !(s->end >= 0.0 && s->end <= MAX_SECONDS))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "result: segment %d has an invalid time range %g..%g s", i, s->start,
                             s->end);
        if (s->n_tokens < 0 || (s->n_tokens > 0 && !s->tokens))
            return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                             "result: segment %d has %d tokens but no token array", i, s->n_tokens);
    }
    return TOLK_OK;
}

/* txt: one stripped segment text per line. */
static int render_txt(const tolk_result *r, sbuf *b) {
    for (int i = 0; i < r->n_segs; i++) {
        char *t = clean_text(r->segs[i].pub.text, 1);
        if (!t) return 0;
        sb_puts(b, t);
        sb_put(b, "\n", 1);
        free(t);
    }
    return 1;
}

/* vtt (srt = 0) or srt (srt = 1) cues. */
static int render_subtitles(const tolk_result *r, sbuf *b, int srt) {
    if (!srt) sb_puts(b, "WEBVTT\n\n");
    for (int i = 0; i < r->n_segs; i++) {
        const tolk_segment *s = &r->segs[i].pub;
        char *t = clean_text(s->text, 1);
        if (!t) return 0;
        if (srt) sb_printf(b, "%d\n", i + 1);
        sb_timestamp(b, s->start, srt, srt ? ',' : '.');
        sb_puts(b, " --> ");
        sb_timestamp(b, s->end, srt, srt ? ',' : '.');
        sb_put(b, "\n", 1);
        sb_put_replaced(b, t, "-->", "->");
        sb_puts(b, "\n\n");
        free(t);
    }
    return 1;
}

/* tsv: integer milliseconds and tab-free text. */
static int render_tsv(const tolk_result *r, sbuf *b) {
    sb_puts(b, "start\tend\ttext\n");
    for (int i = 0; i < r->n_segs; i++) {
        const tolk_segment *s = &r->segs[i].pub;
        char *t = clean_text(s->text, 1);
        if (!t) return 0;
        sb_printf(b, "%lld\t%lld\t", (long long)round_ms(s->start), (long long)round_ms(s->end));
        sb_put_replaced(b, t, "\t", " ");
        sb_put(b, "\n", 1);
        free(t);
    }
    return 1;
}

/* The double nearest to the shortest decimal string that reads back as the
 * float32 x (so 0.2f is written 0.2, as the reference's Python float). */
static double short_double(float x) {
    if (!isfinite(x)) return (double)x;
    char tmp[48];
    for (int p = 1; p <= 9; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, (double)x);
        double d = strtod(tmp, NULL);
        if ((float)d == x) return d;
    }
    return (double)x;
}

/* Add a number item to obj; returns 0 on failure. */
static int add_num(cJSON *obj, const char *key, double v) {
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

/* Add a string item (cleaned UTF-8) to obj; returns 0 on failure. */
static int add_text(cJSON *obj, const char *key, const char *text) {
    char *t = clean_text(text, 0);
    if (!t) return 0;
    int ok = cJSON_AddStringToObject(obj, key, t) != NULL;
    free(t);
    return ok;
}

/* json: the reference's result dict. */
static int render_json(const tolk_result *r, sbuf *b) {
    cJSON *root = cJSON_CreateObject();
    cJSON *segs = NULL;
    int ok = root && add_text(root, "text", r->text) &&
             (segs = cJSON_AddArrayToObject(root, "segments")) != NULL;
    for (int i = 0; ok && i < r->n_segs; i++) {
        const tolk_segment *s = &r->segs[i].pub;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(segs, o)) {
            cJSON_Delete(o);
            ok = 0;
            break;
        }
        cJSON *toks =
            s->n_tokens > 0 ? cJSON_CreateIntArray(s->tokens, s->n_tokens) : cJSON_CreateArray();
        ok = add_num(o, "id", s->id) && add_num(o, "seek", s->seek) &&
             add_num(o, "start", s->start) && add_num(o, "end", s->end) &&
             add_text(o, "text", s->text) && toks && cJSON_AddItemToObject(o, "tokens", toks);
        if (!ok) {
            if (toks && !cJSON_GetObjectItemCaseSensitive(o, "tokens")) cJSON_Delete(toks);
            break;
        }
        ok = add_num(o, "temperature", short_double(s->temperature)) &&
             add_num(o, "avg_logprob", short_double(s->avg_logprob)) &&
             add_num(o, "compression_ratio", short_double(s->compression_ratio)) &&
             add_num(o, "no_speech_prob", short_double(s->no_speech_prob));
    }
    if (ok) {
        char lang[sizeof r->language + 1];
        size_t n = strnlen(r->language, sizeof r->language);
        memcpy(lang, r->language, n);
        lang[n] = '\0';
        ok = add_text(root, "language", lang);
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return 0;
    sb_puts(b, json);
    cJSON_free(json);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

static const char *const format_names[] = {"txt", "vtt", "srt", "tsv", "json"};

int tolk_output_format_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < (int)(sizeof format_names / sizeof format_names[0]); i++)
        if (!strcmp(name, format_names[i])) return i;
    return -1;
}

/* The file extension (and name) of format, or NULL for an unknown value. */
const char *tolk_output_format_ext(tolk_output_format format) {
    if ((int)format < 0 || (int)format >= (int)(sizeof format_names / sizeof format_names[0]))
        return NULL;
    return format_names[format];
}

tolk_status tolk_render(tolk_ctx *ctx, const tolk_result *result, tolk_output_format format,
                        char **out, size_t *len) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!result || !out)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_render: NULL result or output");
    if (!tolk_output_format_ext(format))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_render: unknown output format %d",
                         (int)format);
    tolk_status st = check_result(ctx, result);
    if (st != TOLK_OK) return st;

    sbuf b = {0};
    int ok = 0;
    switch (format) {
    case TOLK_OUTPUT_TXT:
        ok = render_txt(result, &b);
        break;
    case TOLK_OUTPUT_VTT:
        ok = render_subtitles(result, &b, 0);
        break;
    case TOLK_OUTPUT_SRT:
        ok = render_subtitles(result, &b, 1);
        break;
    case TOLK_OUTPUT_TSV:
        ok = render_tsv(result, &b);
        break;
    case TOLK_OUTPUT_JSON:
        ok = render_json(result, &b);
        break;
    }
    if (ok && !b.data) sb_reserve(&b, 0); /* an empty output is still a string */
    if (!ok || b.failed) {
        free(b.data);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "rendering %s output: out of memory",
                         tolk_output_format_ext(format));
    }
    b.data[b.len] = '\0';
    *out = b.data;
    if (len) *len = b.len;
    return TOLK_OK;
}

/* A thread-safe strerror. */
static const char *errstr(int err, char *buf, size_t n) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(err, buf, n);
#else
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "error %d", err);
    return buf;
#endif
}

/* Write n bytes to fd, retrying short writes and EINTR. 0 on success, else
 * errno. */
static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

tolk_status tolk_write_file(tolk_ctx *ctx, const tolk_result *result, tolk_output_format format,
                            const char *path) {
    if (!path || !*path)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_write_file: no output path");
    char *text = NULL;
    size_t len = 0;
    tolk_status st = tolk_render(ctx, result, format, &text, &len);
    if (st != TOLK_OK) return st;

    /* A unique temporary name beside path: "PATH.tmp-PID-XXXXXXXX", created
     * with O_EXCL (mode 0666 less the umask, as a plain fopen would). */
    size_t plen = strlen(path), tlen;
    char *tmp = NULL;
    if (tolk_add_size(plen, 48, &tlen)) tmp = malloc(tlen);
    if (!tmp) {
        free(text);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)&ts;
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(tmp, tlen, "%s.tmp-%ld-%08x", path, (long)getpid(), (unsigned)(seed >> 32));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = fd < 0 ? errno : 0;
        if (fd < 0 && err != EEXIST) break;
    }
    char ebuf[128];
    if (fd < 0) {
        st = tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot create a temporary file: %s", path,
                       errstr(err, ebuf, sizeof ebuf));
        goto done;
    }
    err = write_all(fd, text, len);
    /* on disk before the rename, so that a crash leaves the old file or the
     * new one, never an empty one (file systems without fsync are fine) */
    if (!err && fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (err) {
        unlink(tmp);
        st = tolk_fail(ctx, TOLK_ERR_IO, "%s: write failed: %s", path,
                       errstr(err, ebuf, sizeof ebuf));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        st = tolk_fail(ctx, TOLK_ERR_IO, "%s: cannot replace the file: %s", path,
                       errstr(err, ebuf, sizeof ebuf));
        goto done;
    }
    st = TOLK_OK;
done:
    free(tmp);
    free(text);
    return st;
}

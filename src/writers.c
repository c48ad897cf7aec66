/*
 * writers.c — render a tolk_result as txt, vtt, srt, tsv or json, and write
 * it to a file atomically.
 *
 * Reproduces the output of openai-whisper's writers (whisper/utils.py:
 * WriteTXT, WriteVTT, WriteSRT, WriteTSV, WriteJSON), byte for byte for the
 * text formats:
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
 * Results with word timestamps (tolk_result_has_words), as the reference
 * writes them:
 *  - json: each segment also has "words": [{"word", "start", "end",
 *    "probability"}];
 *  - vtt / srt: cues from words (SubtitlesWriter.iterate_result): lines of
 *    words up to max_line_width code points (1000 when not given), cues of
 *    max_line_count lines and breaks at pauses over 3 s when both are given
 *    (else a cue per segment), max_words_per_line words per chunk, the text
 *    of words without "-->" replacement; highlight_words underlines each
 *    word in turn (re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", word)) with a
 *    plain cue for gaps between words; options come in
 *    tolk_writer_options (tolk_render_ex / tolk_write_file_ex);
 *  - txt and tsv: unchanged.
 * Timestamps are rounded to milliseconds with round-half-even on the double
 * value (Python's round(seconds * 1000.0)).
 *
 * Text that is not valid UTF-8 is repaired before rendering as Python's
 * bytes.decode("utf-8", "replace") would (one U+FFFD per maximal ill-formed
 * subpart), so every output is valid UTF-8 (and the JSON valid JSON).
 */
#include "internal.h"
#include "pystr.h"
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
        int d = tolk_utf8_decode(u + i, n - i, &cp);
        size_t len = (size_t)(d < 0 ? -d : d);
        int space;
        if (d < 0) {
            sb_put(&b, "\xEF\xBF\xBD", 3);
            space = 0;
        } else {
            space = tolk_py_isspace(cp);
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
        for (int k = 0; k < s->n_words; k++) {
            const tolk_word *w = &r->segs[i].words[k];
            if (!w->word || !(w->start >= 0.0 && w->start <= MAX_SECONDS) ||
                !(w->end >= 0.0 && w->end <= MAX_SECONDS))
                return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                                 "result: word %d of segment %d has no text or an invalid time "
                                 "range %g..%g s",
                                 k, i, w->start, w->end);
        }
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

/* vtt (srt = 0) or srt (srt = 1) cues of segments. */
static int render_segment_cues(const tolk_result *r, sbuf *b, int srt) {
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

/* ---- cues from words (SubtitlesWriter.iterate_result) ------------------ */

/* One word of the subtitle being built: its text as the reference edits
 * it (stripped at a line start, "\n" before a line break). */
typedef struct cue_word {
    char *word; /* owned */
    double start, end;
} cue_word;

typedef struct cue_writer {
    sbuf *b;
    int srt, index; /* srt cue number */
    int highlight;
    cue_word *v; /* the subtitle */
    int n, cap;
    int failed;
} cue_writer;

/* The reference's format_timestamp into buf (>= 32 bytes). */
static void ts_text(char *buf, double seconds, int srt) {
    sbuf t = {0};
    sb_timestamp(&t, seconds, srt, srt ? ',' : '.');
    snprintf(buf, 32, "%s", t.data && !t.failed ? t.data : "");
    free(t.data);
}

static void emit_cue(cue_writer *cw, const char *start, const char *end, const char *text) {
    if (cw->srt) sb_printf(cw->b, "%d\n", ++cw->index);
    sb_puts(cw->b, start);
    sb_puts(cw->b, " --> ");
    sb_puts(cw->b, end);
    sb_put(cw->b, "\n", 1);
    sb_puts(cw->b, text);
    sb_puts(cw->b, "\n\n");
}

/* Append word w with re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w): the
 * leading whitespace kept, the rest up to the first line feed underlined
 * when that line feed is the last character or there is none (where the
 * pattern matches; otherwise w unchanged). */
static void sb_underlined(sbuf *b, const char *w) {
    const size_t n = strlen(w);
    size_t k = 0;
    while (k < n) {
        uint32_t cp;
        int d = tolk_utf8_decode((const unsigned char *)w + k, n - k, &cp);
        if (d < 0 || !tolk_py_isspace(cp)) break;
        k += (size_t)d;
    }
    const char *nl = memchr(w + k, '\n', n - k);
    const size_t q = nl ? (size_t)(nl - w) : n;
    if (q != n && q != n - 1) {
        sb_puts(b, w);
        return;
    }
    sb_put(b, w, k);
    sb_puts(b, "<u>");
    sb_put(b, w + k, q - k);
    sb_puts(b, "</u>");
    sb_puts(b, w + q);
}

/* Yield the subtitle held in cw (its cues) and empty it. */
static void flush_subtitle(cue_writer *cw) {
    if (cw->n == 0) return;
    sbuf text = {0};
    for (int i = 0; i < cw->n; i++)
        sb_puts(&text, cw->v[i].word);
    char a[32], e[32];
    if (!cw->highlight) {
        ts_text(a, cw->v[0].start, cw->srt);
        ts_text(e, cw->v[cw->n - 1].end, cw->srt);
        emit_cue(cw, a, e, text.data ? text.data : "");
    } else {
        char last[32];
        ts_text(last, cw->v[0].start, cw->srt);
        for (int i = 0; i < cw->n; i++) {
            ts_text(a, cw->v[i].start, cw->srt);
            ts_text(e, cw->v[i].end, cw->srt);
            if (strcmp(last, a) != 0) emit_cue(cw, last, a, text.data ? text.data : "");
            sbuf u = {0};
            sb_reserve(&u, 0);
            for (int j = 0; j < cw->n; j++) {
                if (j == i)
                    sb_underlined(&u, cw->v[j].word);
                else
                    sb_puts(&u, cw->v[j].word);
            }
            if (u.failed) cw->failed = 1;
            emit_cue(cw, a, e, u.data ? u.data : "");
            free(u.data);
            snprintf(last, sizeof last, "%s", e);
        }
    }
    if (text.failed) cw->failed = 1;
    free(text.data);
    for (int i = 0; i < cw->n; i++)
        free(cw->v[i].word);
    cw->n = 0;
}

/* Add a word to the subtitle: its text = prefix + w[a, b). */
static void add_cue_word(cue_writer *cw, const char *prefix, const char *w, size_t a, size_t b,
                         double start, double end) {
    if (cw->n == cw->cap) {
        int cap = cw->cap ? 2 * cw->cap : 32;
        cue_word *v = realloc(cw->v, (size_t)cap * sizeof *v);
        if (!v) {
            cw->failed = 1;
            return;
        }
        cw->v = v;
        cw->cap = cap;
    }
    const size_t pn = strlen(prefix);
    char *t = malloc(pn + (b - a) + 1);
    if (!t) {
        cw->failed = 1;
        return;
    }
    memcpy(t, prefix, pn);
    memcpy(t + pn, w + a, b - a);
    t[pn + (b - a)] = '\0';
    cw->v[cw->n++] = (cue_word){t, start, end};
}

/* vtt / srt cues of a result with words: the reference's
 * iterate_subtitles (line width in code points, line / cue breaks, long
 * pauses, words per line) and its highlighting. Words are cleaned of
 * ill-formed UTF-8 first. */
static int render_word_cues(const tolk_result *r, sbuf *b, int srt, const tolk_writer_options *o) {
    const int mlc = o->max_line_count > 0 ? o->max_line_count : 0; /* 0: None */
    const int preserve = o->max_line_count <= 0 || o->max_line_width <= 0;
    const long mlw = o->max_line_width > 0 ? o->max_line_width : 1000;
    const int mwpl = o->max_words_per_line > 0 ? o->max_words_per_line : 1000;
    cue_writer cw = {.b = b, .srt = srt, .highlight = o->highlight_words != 0};
    if (!srt) sb_puts(b, "WEBVTT\n\n");
    long line_len = 0;
    int line_count = 1;
    double last = 0.0; /* get_start(segments) or 0.0 */
    int found = 0;
    for (int i = 0; i < r->n_segs && !found; i++)
        if (r->segs[i].pub.n_words > 0) {
            last = r->segs[i].words[0].start;
            found = 1;
        }
    if (!found && r->n_segs > 0) last = r->segs[0].pub.start;
    for (int si = 0; si < r->n_segs && !cw.failed; si++) {
        const tolk_seg_rec *sg = &r->segs[si];
        const int nw = sg->pub.n_words;
        for (int chunk = 0; chunk < nw && !cw.failed; chunk += mwpl) {
            const int count = nw - chunk < mwpl ? nw - chunk : mwpl;
            for (int i = 0; i < count && !cw.failed; i++) {
                const tolk_word *wd = &sg->words[chunk + i];
                char *w = clean_text(wd->word, 0);
                if (!w) {
                    cw.failed = 1;
                    break;
                }
                const size_t wn = strlen(w);
                const long wlen = (long)tolk_py_len(w, wn);
                const int long_pause = !preserve && wd->start - last > 3.0;
                const int has_room = line_len + wlen <= mlw;
                const int seg_break = i == 0 && cw.n > 0 && preserve;
                if (line_len > 0 && has_room && !long_pause && !seg_break) {
                    line_len += wlen; /* line continuation */
                    add_cue_word(&cw, "", w, 0, wn, wd->start, wd->end);
                } else {
                    size_t a, z; /* a new line: the word stripped */
                    tolk_py_strip(w, wn, &a, &z);
                    const char *prefix = "";
                    if ((cw.n > 0 && mlc > 0 && (long_pause || line_count >= mlc)) || seg_break) {
                        flush_subtitle(&cw); /* a subtitle break */
                        line_count = 1;
                    } else if (line_len > 0) {
                        line_count++; /* a line break */
                        prefix = "\n";
                    }
                    line_len = (long)tolk_py_len(w + a, z - a);
                    add_cue_word(&cw, prefix, w, a, z, wd->start, wd->end);
                }
                last = wd->start;
                free(w);
            }
        }
    }
    flush_subtitle(&cw);
    for (int i = 0; i < cw.n; i++)
        free(cw.v[i].word);
    free(cw.v);
    return !cw.failed;
}

/* vtt (srt = 0) or srt (srt = 1): cues from words when the result has
 * them, else from segments. */
static int render_subtitles(const tolk_result *r, sbuf *b, int srt, const tolk_writer_options *o) {
    if (r->has_words && r->n_segs > 0) return render_word_cues(r, b, srt, o);
    if (!srt) sb_puts(b, "WEBVTT\n\n");
    return render_segment_cues(r, b, srt);
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

/* A segment's "words": [{"word", "start", "end", "probability"}]. */
static int add_words(cJSON *seg, const tolk_seg_rec *rec) {
    cJSON *arr = cJSON_AddArrayToObject(seg, "words");
    if (!arr) return 0;
    for (int k = 0; k < rec->pub.n_words; k++) {
        const tolk_word *w = &rec->words[k];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return 0;
        }
        if (!add_text(o, "word", w->word) || !add_num(o, "start", w->start) ||
            !add_num(o, "end", w->end) || !add_num(o, "probability", w->probability))
            return 0;
    }
    return 1;
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
        if (ok && r->has_words) ok = add_words(o, &r->segs[i]);
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

tolk_writer_options tolk_writer_default_options(void) {
    tolk_writer_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    return o;
}

/* The caller's options, read up to its struct_size (an older caller's
 * struct lacks later fields: they keep their defaults). */
static tolk_writer_options options_of(const tolk_writer_options *opts) {
    tolk_writer_options o = tolk_writer_default_options();
    if (opts && opts->struct_size >= sizeof(size_t)) {
        size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
        memcpy(&o, opts, n);
        o.struct_size = sizeof o;
    }
    return o;
}

tolk_status tolk_render(tolk_ctx *ctx, const tolk_result *result, tolk_output_format format,
                        char **out, size_t *len) {
    return tolk_render_ex(ctx, result, format, NULL, out, len);
}

tolk_status tolk_render_ex(tolk_ctx *ctx, const tolk_result *result, tolk_output_format format,
                           const tolk_writer_options *opts, char **out, size_t *len) {
    const tolk_writer_options o = options_of(opts);
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
        ok = render_subtitles(result, &b, 0, &o);
        break;
    case TOLK_OUTPUT_SRT:
        ok = render_subtitles(result, &b, 1, &o);
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
    return tolk_write_file_ex(ctx, result, format, NULL, path);
}

tolk_status tolk_write_file_ex(tolk_ctx *ctx, const tolk_result *result, tolk_output_format format,
                               const tolk_writer_options *opts, const char *path) {
    if (!path || !*path)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_write_file: no output path");
    char *text = NULL;
    size_t len = 0;
    tolk_status st = tolk_render_ex(ctx, result, format, opts, &text, &len);
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

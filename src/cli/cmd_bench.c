/*
 * cmd_bench.c — `tolk bench MANIFEST`: run every file of a manifest through
 * tolk with given model, device, threads and decoding options and record,
 * per file and repetition, the hypothesis, the detected language, audio and
 * wall seconds, the time per stage (tolk_state_timings: decode + resample,
 * mel, encoder, decoder, search), token counts and peak memory, as JSON
 * lines, followed by a summary. It measures and never asserts: accuracy is
 * scored elsewhere (bench/suite, with the field's own tools).
 *
 * Manifest: a tab-separated file with a header line, as the shared speech
 * sets asr.tsv / translate.tsv: a `file` column (paths relative to the
 * manifest's folder, or absolute), optional `language` (or
 * `source_language`), `reference`, `duration_s` and any other columns,
 * which are ignored. The whole manifest is checked before any model is
 * loaded; every problem is printed as "MANIFEST:LINE: problem" and the
 * command exits with status 1 (2 for bad options).
 *
 * With --batch N the files run through one engine (tolk_engine) with N
 * requests decoding at once: each file line then gives its latency (from
 * its submission to its end) instead of per-file stages, and the summary
 * adds the engine's throughput, latency percentiles and decoder
 * milliseconds per step and per token by decoder batch size.
 *
 * No reference behaviour is reproduced: this is tolk's own measuring tool.
 * Uses the public API (tolk.h) only.
 */
#include "cli.h"
#include "options.h"
#include "progress.h"
#include "tolk.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_REPORTED_PROBLEMS 50
#define MAX_COLUMNS 256
/* A manifest is text: at most this many bytes in all and per line (a
 * device such as /dev/zero, or a binary file, fails at the limit). */
#define MAX_MANIFEST_BYTES ((size_t)64 << 20)
#define MAX_LINE_BYTES ((size_t)1 << 20)

/* One line of f (its '\n' kept) into *line (capacity *cap), reading at
 * most max bytes; *total counts the bytes read so far. Returns the length,
 * -1 at the end of the input, -2 when the line is longer than max (or out
 * of memory). */
static ssize_t read_line(FILE *f, char **line, size_t *cap, size_t max, size_t *total) {
    size_t len = 0;
    int c = EOF;
    while (len <= max && (c = getc(f)) != EOF) {
        if (len + 2 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *nl = realloc(*line, ncap);
            if (!nl) return -2;
            *line = nl;
            *cap = ncap;
        }
        (*line)[len++] = (char)c;
        if (c == '\n') break;
    }
    *total += len;
    if (len > max) return -2;
    if (len == 0 && c == EOF) return -1;
    (*line)[len] = '\0';
    return (ssize_t)len;
}

static const cli_optdef bench_opts[] = {
    {"help", 'h', 0},
    {"model", 0, 1},
    {"model_dir", 0, 1},
    {"device", 0, 1},
    {"compute_type", 0, 1},
    {"kv_cache", 0, 1},
    {"gelu", 0, 1},
    {"threads", 0, 1},
    {"batch", 0, 1},
    {"task", 0, 1},
    {"language", 0, 1},
    {"temperature", 0, 1},
    {"temperature_increment_on_fallback", 0, 1},
    {"beam_size", 0, 1},
    {"best_of", 0, 1},
    {"patience", 0, 1},
    {"condition_on_previous_text", 0, 1},
    {"without_timestamps", 0, 1},
    {"word_timestamps", 0, 1},
    {"warmup", 0, 1},
    {"repeat", 0, 1},
    {"limit", 0, 1},
    {"output", 'o', 1},
    {"summary", 0, 1},
    {"check", 0, 0},
    {"quiet", 'q', 0},
    {NULL, 0, 0},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tolk bench MANIFEST [OPTIONS]\n"
               "\n"
               "Run every file of MANIFEST through tolk and record, per file, the hypothesis,\n"
               "the detected language, audio and wall seconds, seconds per stage (decode +\n"
               "resample, mel, encoder, decoder, search), tokens and peak memory, as JSON\n"
               "lines (a \"config\" line, one \"file\" line per file and repetition, a\n"
               "\"summary\" line). Measures only: score the hypotheses with bench/suite.\n"
               "\n"
               "MANIFEST: tab-separated, a header line naming the columns: file (required;\n"
               "relative to the manifest's folder, or absolute), language or source_language\n"
               "(optional; a code such as en), reference, duration_s (optional), others ignored.\n"
               "Problems are reported as MANIFEST:LINE: problem (exit status 1) before any\n"
               "model is loaded.\n"
               "\n"
               "Options (defaults in brackets)\n"
               "  --model NAME|PATH          model directory or file, or an installed name [base]\n"
               "  --model_dir DIR            where named models live [$TOLK_MODELS, else\n"
               "                             ~/.cache/tolk/models]\n"
               "  --device cpu|cuda|auto     where to run [auto]\n"
               "  --compute_type auto|float32|bfloat16|float16  precision (as in tolk\n"
               "                             transcribe) [auto]\n"
               "  --kv_cache auto|float32|float16  cross-attention K/V storage (as in tolk\n"
               "                             transcribe) [auto]\n"
               "  --gelu exact|tanh          the MLP's GELU (as in tolk transcribe) [exact]\n"
               "  --threads N                CPU threads; 0: all cores [0]\n"
               "  --batch N                  requests in flight in one engine, sharing each\n"
               "                             decoder step (1: one tolk_state, file by file,\n"
               "                             with per-file stages) [1]\n"
               "  --task transcribe|translate|auto  auto: translate when the manifest has a\n"
               "                             target_language column [auto]\n"
               "  --language manifest|auto|LANG  manifest: each file's language column (detect\n"
               "                             where empty); auto: always detect [manifest]\n"
               "  --beam_size N|None         beams at temperature 0; None: greedy [None]\n"
               "  --best_of N                samples at non-zero temperature [5]\n"
               "  --patience P               beam search patience [1.0]\n"
               "  --temperature T            first temperature [0]\n"
               "  --temperature_increment_on_fallback D|None  fallback step; None: no\n"
               "                             fallback [0.2]\n"
               "  --condition_on_previous_text True|False  [True]\n"
               "  --without_timestamps True|False  [False]\n"
               "  --word_timestamps True|False  word-level timestamps too (their cost) [False]\n"
               "  --warmup N                 untimed runs of the first file first [1]\n"
               "  --repeat N                 timed runs of every file [1]\n"
               "  --limit N                  only the first N files of the manifest [all]\n"
               "  -o, --output FILE          JSON lines to FILE; - for standard output [-]\n"
               "  --summary FILE             also write the summary object to FILE\n"
               "  --check                    check the manifest only, load nothing\n"
               "  -q, --quiet                no progress lines on stderr\n"
               "  -h, --help                 show this help\n");
}

/* ------------------------------------------------------------------------ */
/* Manifest                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct bench_row {
    int line;        /* 1-based line number in the manifest */
    char *file;      /* as written */
    char *path;      /* resolved (malloc'd) */
    char *language;  /* code or "" */
    char *reference; /* "" when no column */
    double duration; /* duration_s column, -1 when absent */
} bench_row;

typedef struct manifest {
    const char *name; /* the path given */
    bench_row *rows;
    int n, cap;
    int translate; /* a target_language column exists */
    int problems;
} manifest;

static void manifest_free(manifest *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->rows[i].file);
        free(m->rows[i].path);
        free(m->rows[i].language);
        free(m->rows[i].reference);
    }
    free(m->rows);
    memset(m, 0, sizeof *m);
}

/* Print "MANIFEST:LINE: problem" (line 0: "MANIFEST: problem"). */
static void problem(manifest *m, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(manifest *m, int line, const char *fmt, ...) {
    m->problems++;
    if (m->problems > MAX_REPORTED_PROBLEMS) return;
    if (line > 0)
        fprintf(stderr, "%s:%d: ", m->name, line);
    else
        fprintf(stderr, "%s: ", m->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The length (1 to 4) of the valid UTF-8 sequence at s[0..n), n >= 1, or 0
 * when it is invalid (a stray continuation byte, truncated, overlong, a
 * surrogate, above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) {
        k = 1;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        k = 2;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        k = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (k >= n) return 0; /* truncated */
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[j] & 0x3F);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k + 1;
}

/* Whether s[0..n) is valid UTF-8. */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Split line (modified in place) at tabs into cols[max]; returns the count
 * (max + 1 when there are more). */
static int split_tabs(char *line, char **cols, int max) {
    int n = 0;
    char *s = line;
    for (;;) {
        if (n == max) return max + 1;
        cols[n++] = s;
        char *t = strchr(s, '\t');
        if (!t) break;
        *t = '\0';
        s = t + 1;
    }
    return n;
}

/* The directory part of path ("." when none), malloc'd. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

static int push_row(manifest *m, const bench_row *r) {
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 64;
        if (cap > INT32_MAX / 2) return 0;
        bench_row *v = realloc(m->rows, (size_t)cap * sizeof *v);
        if (!v) return 0;
        m->rows = v;
        m->cap = cap;
    }
    m->rows[m->n++] = *r;
    return 1;
}

/* Check one row's fields; fill r. Returns 0 when it has a problem (all
 * problems of the row are reported). */
static int check_row(manifest *m, int line, char **cols, const int *ix, const char *base,
                     bench_row *r) {
    int ok = 1;
    const char *file = cols[ix[0]];
    memset(r, 0, sizeof *r);
    r->line = line;
    r->duration = -1;
    if (!*file) {
        problem(m, line, "empty 'file' column");
        return 0;
    }
    r->file = strdup(file);
    r->path = file[0] == '/' ? strdup(file) : cli_path_join(base, file);
    if (!r->file || !r->path) {
        problem(m, line, "out of memory");
        return 0;
    }
    struct stat sb;
    if (stat(r->path, &sb) != 0) {
        problem(m, line, "%s: %s", file, errno == ENOENT ? "no such file" : strerror(errno));
        ok = 0;
    } else if (S_ISDIR(sb.st_mode)) {
        problem(m, line, "%s: is a directory, not an audio file", file);
        ok = 0;
    } else if (access(r->path, R_OK) != 0) {
        problem(m, line, "%s: %s", file, strerror(errno));
        ok = 0;
    }
    const char *lang = ix[1] >= 0 ? cols[ix[1]] : "";
    if (*lang) {
        const char *code = cli_language_code(lang);
        if (!code) {
            problem(m, line, "unknown language '%s' (a code such as en, de, or a name)", lang);
            ok = 0;
        }
        r->language = strdup(code ? code : "");
    } else {
        r->language = strdup("");
    }
    const char *ref = ix[2] >= 0 ? cols[ix[2]] : ""; /* UTF-8: the line was checked */
    r->reference = strdup(ref);
    if (ix[3] >= 0 && *cols[ix[3]]) {
        char *end;
        errno = 0;
        double d = strtod(cols[ix[3]], &end);
        if (*end || errno || !isfinite(d) || d < 0) {
            problem(m, line, "bad duration_s '%s' (seconds, a non-negative number)", cols[ix[3]]);
            ok = 0;
        } else {
            r->duration = d;
        }
    }
    if (!r->language || !r->reference) {
        problem(m, line, "out of memory");
        ok = 0;
    }
    return ok;
}

/* Read and check the manifest at path (every row; problems reported).
 * Returns 0 when it is usable, 1 otherwise. */
static int manifest_read(const char *path, manifest *m) {
    memset(m, 0, sizeof *m);
    m->name = path;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        problem(m, 0, "cannot open: %s", strerror(errno));
        return 1;
    }
    if (S_ISDIR(sb.st_mode)) {
        problem(m, 0, "is a directory, not a manifest");
        return 1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        problem(m, 0, "cannot open: %s", strerror(errno));
        return 1;
    }
    char *base = dir_of(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, ncols = 0;
    int ix[4] = {-1, -1, -1, -1}; /* file, language, reference, duration_s */
    char *cols[MAX_COLUMNS + 1];
    int data_lines = 0;
    size_t total = 0;
    while ((len = read_line(f, &line, &cap, MAX_LINE_BYTES, &total)) != -1) {
        lineno++;
        if (len == -2) {
            problem(m, lineno, "a line longer than %zu bytes (not a manifest?)", MAX_LINE_BYTES);
            break;
        }
        if (total > MAX_MANIFEST_BYTES) {
            problem(m, lineno, "the manifest is larger than %zu MiB", MAX_MANIFEST_BYTES >> 20);
            break;
        }
        /* a UTF-8 byte order mark (as some editors save) is not part of the header */
        if (lineno == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) {
            memmove(line, line + 3, (size_t)len - 2);
            len -= 3;
        }
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
        if ((size_t)len != strlen(line)) {
            problem(m, lineno, "a NUL byte in the line");
            if (lineno == 1) break;
            continue;
        }
        if (lineno == 1) {
            if (len == 0) {
                problem(m, 1,
                        "empty header line (expected tab-separated column names "
                        "with a 'file' column)");
                break;
            }
            if (!valid_utf8((const unsigned char *)line, (size_t)len)) {
                problem(m, 1, "the header is not valid UTF-8");
                break;
            }
            ncols = split_tabs(line, cols, MAX_COLUMNS);
            if (ncols > MAX_COLUMNS) {
                problem(m, 1, "more than %d columns", MAX_COLUMNS);
                break;
            }
            int bad = 0;
            for (int c = 0; c < ncols; c++) {
                if (!*cols[c]) {
                    problem(m, 1, "column %d has no name", c + 1);
                    bad = 1;
                }
                for (int d = 0; d < c; d++)
                    if (*cols[c] && !strcmp(cols[c], cols[d])) {
                        problem(m, 1, "column '%s' appears twice", cols[c]);
                        bad = 1;
                    }
                if (!strcmp(cols[c], "file")) ix[0] = c;
                if (!strcmp(cols[c], "language") ||
                    (!strcmp(cols[c], "source_language") && ix[1] < 0))
                    ix[1] = c;
                if (!strcmp(cols[c], "reference")) ix[2] = c;
                if (!strcmp(cols[c], "duration_s")) ix[3] = c;
                if (!strcmp(cols[c], "target_language")) m->translate = 1;
            }
            if (ix[0] < 0) {
                problem(m, 1, "no 'file' column in the header (columns are tab-separated)");
                bad = 1;
            }
            if (bad) break;
            continue;
        }
        if (len == 0) continue; /* blank lines are allowed */
        data_lines++;
        if (!valid_utf8((const unsigned char *)line, (size_t)len)) {
            problem(m, lineno, "the line is not valid UTF-8");
            continue;
        }
        int n = split_tabs(line, cols, MAX_COLUMNS);
        if (n != ncols) {
            problem(m, lineno, "%s%d columns, the header has %d",
                    n > MAX_COLUMNS ? "more than " : "", n > MAX_COLUMNS ? MAX_COLUMNS : n, ncols);
            continue;
        }
        bench_row r;
        if (check_row(m, lineno, cols, ix, base ? base : ".", &r)) {
            if (!push_row(m, &r)) {
                problem(m, lineno, "out of memory");
                break;
            }
        } else {
            free(r.file);
            free(r.path);
            free(r.language);
            free(r.reference);
        }
    }
    if (ferror(f)) problem(m, lineno + 1, "read error: %s", strerror(errno));
    if (lineno == 0)
        problem(m, 1, "empty manifest (expected a header line with a 'file' column)");
    else if (ix[0] >= 0 && data_lines == 0 && m->problems == 0)
        problem(m, lineno + 1, "no rows after the header");
    if (m->problems > MAX_REPORTED_PROBLEMS)
        fprintf(stderr, "%s: %d problems in all (the first %d shown)\n", path, m->problems,
                MAX_REPORTED_PROBLEMS);
    free(line);
    free(base);
    fclose(f);
    return m->problems ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                               */
/* ------------------------------------------------------------------------ */

/* Write s as a JSON string (quotes included): control characters escaped,
 * valid UTF-8 passed through, each byte of an invalid sequence written as
 * U+FFFD (a hypothesis can end inside a character). */
static void json_str(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t k = utf8_len(p + i, n - i);
            if (k) {
                fwrite(p + i, 1, k, f);
                i += k;
            } else {
                fputs("\ufffd", f);
                i++;
            }
            continue;
        }
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc((int)c, f);
        }
        i++;
    }
    fputc('"', f);
}

/* A JSON number (null when not finite). */
static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

/* "key": value helpers; first = no leading comma. */
static void jk(FILE *f, int *first, const char *key) {
    if (!*first) fputs(", ", f);
    *first = 0;
    json_str(f, key);
    fputs(": ", f);
}
static void jnum(FILE *f, int *first, const char *key, double v) {
    jk(f, first, key);
    json_num(f, v);
}
static void jint(FILE *f, int *first, const char *key, long long v) {
    jk(f, first, key);
    fprintf(f, "%lld", v);
}
static void jstr(FILE *f, int *first, const char *key, const char *v) {
    jk(f, first, key);
    if (v)
        json_str(f, v);
    else
        fputs("null", f);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

/* Reset the kernel's resident-set high-water mark of this process (Linux
 * /proc/self/clear_refs "5"); returns 1 when it worked. */
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    if (fclose(f) != 0) ok = 0;
    return ok;
}

/* Peak resident set in MiB since the last reset (VmHWM), or the process
 * peak (ru_maxrss) where /proc is not readable. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char buf[256];
        while (fgets(buf, sizeof buf, f)) {
            long kb;
            if (sscanf(buf, "VmHWM: %ld kB", &kb) == 1) {
                fclose(f);
                return (double)kb / 1024.0;
            }
        }
        fclose(f);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (double)ru.ru_maxrss / 1024.0;
    return NAN;
}

static double process_peak_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (double)ru.ru_maxrss / 1024.0;
    return NAN;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bench_opts_t {
    const char *manifest;
    const char *model;
    const char *model_dir;
    tolk_device device;
    const char *device_name;
    int compute_type; /* tolk_compute_type */
    int kv_cache;     /* tolk_kv_cache_type */
    int gelu;         /* tolk_gelu_type */
    int n_threads;
    int batch;
    int task;              /* -1 auto, else tolk_task */
    const char *lang_mode; /* "manifest", "auto" or a code */
    tolk_transcribe_params params;
    int warmup, repeat, limit;
    const char *output, *summary;
    int check, quiet;
} bench_opts_t;

static int parse_options(const cli_args *a, bench_opts_t *o) {
    static const char *const task_choices[] = {"transcribe", "translate", "auto", NULL};
    static const char *const device_choices[] = {"cpu", "cuda", "auto", NULL};
    int r, b, none;
    long l;
    double d;
    memset(o, 0, sizeof *o);
    tolk_transcribe_params *p = &o->params;
    *p = tolk_transcribe_default_params();

    o->model = cli_str(a, "model", "base");
    if (!*o->model) return cli_usage_error(a, "argument --model: empty model name");
    o->model_dir = cli_str(a, "model_dir", NULL);
    if ((r = cli_choice(a, "device", device_choices, 2, &b))) return r;
    o->device = b == 0 ? TOLK_DEVICE_CPU : b == 1 ? TOLK_DEVICE_CUDA : TOLK_DEVICE_AUTO;
    o->device_name = device_choices[b];
    static const char *const compute_choices[] = {"auto", "float32", "bfloat16", "float16",
                                                  "fp32", "bf16",    "fp16",     NULL};
    if ((r = cli_choice(a, "compute_type", compute_choices, 0, &b))) return r;
    o->compute_type = b == 0               ? TOLK_COMPUTE_AUTO
                      : (b == 1 || b == 4) ? TOLK_COMPUTE_F32
                      : (b == 2 || b == 5) ? TOLK_COMPUTE_BF16
                                           : TOLK_COMPUTE_F16;
    static const char *const kv_choices[] = {"auto", "float32", "float16", NULL};
    if ((r = cli_choice(a, "kv_cache", kv_choices, 0, &b))) return r;
    o->kv_cache = b == 0 ? TOLK_KV_AUTO : b == 1 ? TOLK_KV_F32 : TOLK_KV_F16;
    static const char *const gelu_choices[] = {"exact", "tanh", NULL};
    if ((r = cli_choice(a, "gelu", gelu_choices, 0, &b))) return r;
    o->gelu = b == 0 ? TOLK_GELU_EXACT : TOLK_GELU_TANH;
    if ((r = cli_int(a, "threads", 0, 4096, 0, 0, &l, NULL))) return r;
    o->n_threads = (int)l;
    if ((r = cli_int(a, "batch", 1, 4096, 0, 1, &l, NULL))) return r;
    o->batch = (int)l;
    if ((r = cli_choice(a, "task", task_choices, 2, &b))) return r;
    o->task = b == 2 ? -1 : b;

    o->lang_mode = cli_str(a, "language", "manifest");
    if (strcmp(o->lang_mode, "manifest") != 0 && strcmp(o->lang_mode, "auto") != 0) {
        const char *code = cli_language_code(o->lang_mode);
        if (!code)
            return cli_usage_error(a,
                                   "argument --language: invalid choice: '%s' (manifest, "
                                   "auto, or a language code such as en)",
                                   o->lang_mode);
        o->lang_mode = code;
    }

    if ((r = cli_temperatures(a, p))) return r;
    if ((r = cli_int(a, "beam_size", 1, 1000, 1, 0, &l, &none))) return r;
    p->beam_size = (none || !cli_given(a, "beam_size")) ? 0 : (int)l;
    if ((r = cli_int(a, "best_of", 1, 1000, 1, 5, &l, &none))) return r;
    p->best_of = none ? 1 : (int)l;
    if ((r = cli_float(a, "patience", 1e-9, 1e6, 0, 0, 1.0, &d, NULL))) return r;
    p->patience = (float)d;
    if ((r = cli_bool(a, "condition_on_previous_text", 1, &b))) return r;
    p->condition_on_previous_text = b;
    if ((r = cli_bool(a, "without_timestamps", 0, &b))) return r;
    p->without_timestamps = b;
    if ((r = cli_bool(a, "word_timestamps", 0, &b))) return r;
    p->word_timestamps = b;

    if ((r = cli_int(a, "warmup", 0, 1000, 0, 1, &l, NULL))) return r;
    o->warmup = (int)l;
    if ((r = cli_int(a, "repeat", 1, 1000, 0, 1, &l, NULL))) return r;
    o->repeat = (int)l;
    if ((r = cli_int(a, "limit", 0, INT32_MAX, 0, 0, &l, NULL))) return r;
    o->limit = (int)l;
    o->output = cli_str(a, "output", "-");
    if (!*o->output) return cli_usage_error(a, "argument --output: empty file name");
    o->summary = cli_str(a, "summary", NULL);
    if (o->summary && !*o->summary) return cli_usage_error(a, "argument --summary: empty name");
    o->check = cli_given(a, "check");
    o->quiet = cli_given(a, "quiet");

    if (a->n_positional != 1)
        return cli_usage_error(a, a->n_positional == 0
                                      ? "the following arguments are required: MANIFEST"
                                      : "one MANIFEST at a time");
    o->manifest = a->positional[0];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

/* Per-file measurements of one repetition. */
typedef struct file_meas {
    int ok;
    double audio_s, wall_s, peak_mib;
    tolk_timings t;
} file_meas;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[n] (sorted in place); NAN when n == 0. */
static double median(double *v, int n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The language to pass for row r (NULL: detect). */
static const char *row_language(const bench_opts_t *o, const bench_row *r, int multilingual) {
    if (!multilingual) return "en";
    if (!strcmp(o->lang_mode, "auto")) return NULL;
    if (!strcmp(o->lang_mode, "manifest")) return r->language[0] ? r->language : NULL;
    return o->lang_mode;
}

static void write_stages(FILE *f, int *first, const tolk_timings *t) {
    jk(f, first, "stages");
    int g = 1;
    fputc('{', f);
    jnum(f, &g, "audio_s", t->audio_s);
    jnum(f, &g, "mel_s", t->mel_s);
    jnum(f, &g, "encoder_s", t->encoder_s);
    jnum(f, &g, "decoder_s", t->decoder_s);
    jnum(f, &g, "search_s", t->search_s);
    fputc('}', f);
    /* GPU products that ran a slow fallback kernel (0 normally; not a stage) */
    jnum(f, first, "gemm_fallbacks", (double)t->gemm_fallbacks);
}

/* Transcribe row r once, measured; write its JSON line. Returns 0 or 1. */
static int run_one(tolk_state *state, const bench_opts_t *o, const tolk_transcribe_params *base,
                   const bench_row *r, int index, int n_rows, int rep, int multilingual, FILE *out,
                   file_meas *m) {
    tolk_transcribe_params p = *base;
    p.language = row_language(o, r, multilingual);
    memset(m, 0, sizeof *m);
    tolk_state_reset_timings(state);
    int have_hwm = reset_peak_rss();
    tolk_result *res = NULL;
    double t0 = cli_now();
    tolk_status st = tolk_transcribe_file(state, r->path, &p, &res);
    m->wall_s = cli_now() - t0;
    m->peak_mib = have_hwm ? peak_rss_mib() : process_peak_mib();
    tolk_state_timings(state, &m->t);
    m->ok = st == TOLK_OK && res;

    int first = 1;
    fputc('{', out);
    jstr(out, &first, "type", "file");
    jint(out, &first, "index", index);
    jint(out, &first, "rep", rep);
    jstr(out, &first, "file", r->file);
    jint(out, &first, "line", r->line);
    jstr(out, &first, "status", m->ok ? "ok" : "error");
    if (!m->ok) {
        const char *msg = tolk_state_last_error(state);
        jstr(out, &first, "error", msg && *msg ? msg : tolk_strerror(st));
    }
    jstr(out, &first, "language_ref", r->language);
    jstr(out, &first, "language_given", p.language);
    jstr(out, &first, "language", m->ok ? tolk_result_language(res) : NULL);
    jnum(out, &first, "language_prob", m->ok ? (double)tolk_result_language_prob(res) : NAN);
    jstr(out, &first, "reference", r->reference);
    jstr(out, &first, "hypothesis", m->ok ? tolk_result_text(res) : NULL);
    m->audio_s = m->ok ? tolk_result_duration(res) : (r->duration >= 0 ? r->duration : NAN);
    jnum(out, &first, "audio_s", m->audio_s);
    jnum(out, &first, "wall_s", m->wall_s);
    jnum(out, &first, "rtfx", m->wall_s > 0 ? m->audio_s / m->wall_s : NAN);
    write_stages(out, &first, &m->t);
    jint(out, &first, "windows", (long long)m->t.windows);
    jint(out, &first, "tokens", (long long)m->t.tokens);
    jint(out, &first, "decoder_steps", (long long)m->t.decoder_steps);
    jint(out, &first, "segments", m->ok ? tolk_result_n_segments(res) : 0);
    /* the highest fallback temperature any segment needed (0: deterministic) */
    double tmax = m->ok ? 0.0 : NAN;
    for (int i = 0; m->ok && i < tolk_result_n_segments(res); i++)
        if (tolk_result_segment(res, i)->temperature > tmax)
            tmax = tolk_result_segment(res, i)->temperature;
    jnum(out, &first, "max_temperature", tmax);
    jnum(out, &first, "peak_rss_mib", m->peak_mib);
    jnum(out, &first, "device_peak_mib",
         m->t.device_peak_bytes ? (double)m->t.device_peak_bytes / 1048576.0 : NAN);
    fputs("}\n", out);
    fflush(out);

    if (!o->quiet) {
        if (m->ok)
            fprintf(stderr, "tolk bench: [%d/%d] %s: %.1f s audio in %.2f s (RTFx %.1f), %s\n",
                    index + 1, n_rows, r->file, m->audio_s, m->wall_s,
                    m->wall_s > 0 ? m->audio_s / m->wall_s : 0.0, tolk_result_language(res));
        else
            fprintf(stderr, "tolk bench: %s: %s\n", r->file, tolk_state_last_error(state));
    }
    tolk_result_free(res);
    return m->ok ? 0 : 1;
}

typedef struct summary_t {
    int files, ok, failed, reps;
    double audio_s, wall_s, peak_mib;
    double process_peak_mib; /* read once, so the line and --summary agree */
    tolk_timings t;
    double load_s, warmup_s;
} summary_t;

/* The summary object on one line (a JSON line of its own). */
static void write_summary(FILE *f, const bench_opts_t *o, const summary_t *s) {
    int first = 1;
    fputc('{', f);
    jstr(f, &first, "type", "summary");
    jstr(f, &first, "manifest", o->manifest);
    jint(f, &first, "files", s->files);
    jint(f, &first, "ok", s->ok);
    jint(f, &first, "failed", s->failed);
    jint(f, &first, "repeat", s->reps);
    jnum(f, &first, "audio_s", s->audio_s);
    jnum(f, &first, "wall_s", s->wall_s);
    jnum(f, &first, "rtfx", s->wall_s > 0 ? s->audio_s / s->wall_s : NAN);
    write_stages(f, &first, &s->t);
    jint(f, &first, "windows", (long long)s->t.windows);
    jint(f, &first, "tokens", (long long)s->t.tokens);
    jint(f, &first, "decoder_steps", (long long)s->t.decoder_steps);
    jnum(f, &first, "tokens_per_s", s->wall_s > 0 ? (double)s->t.tokens / s->wall_s : NAN);
    jnum(f, &first, "peak_rss_mib", s->peak_mib);
    jnum(f, &first, "process_peak_rss_mib", s->process_peak_mib);
    jnum(f, &first, "device_peak_mib",
         s->t.device_peak_bytes ? (double)s->t.device_peak_bytes / 1048576.0 : NAN);
    jnum(f, &first, "model_load_s", s->load_s);
    jnum(f, &first, "warmup_s", s->warmup_s);
    fputs("}\n", f);
}

static void write_config(FILE *f, const bench_opts_t *o, const char *model_path,
                         const tolk_model_desc *desc, tolk_device dev, int task, int n_rows) {
    int first = 1;
    const tolk_transcribe_params *p = &o->params;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    fputc('{', f);
    jstr(f, &first, "type", "config");
    jstr(f, &first, "tolk_version", tolk_version());
    jstr(f, &first, "host", host);
    jstr(f, &first, "manifest", o->manifest);
    jint(f, &first, "files", n_rows);
    jstr(f, &first, "model", o->model);
    jstr(f, &first, "model_path", model_path);
    jstr(f, &first, "model_size", desc->size_name);
    jstr(f, &first, "model_format", tolk_model_format_name(desc->format));
    jstr(f, &first, "model_dtypes", desc->dtypes);
    jstr(f, &first, "device", dev == TOLK_DEVICE_CUDA ? "cuda" : "cpu");
    jstr(f, &first, "compute_type",
         o->compute_type == TOLK_COMPUTE_BF16                             ? "bfloat16"
         : o->compute_type == TOLK_COMPUTE_F32 || dev != TOLK_DEVICE_CUDA ? "float32"
                                                                          : "float16");
    jstr(f, &first, "kv_cache", o->kv_cache == TOLK_KV_F16 ? "float16" : "float32");
    jstr(f, &first, "gelu", o->gelu == TOLK_GELU_TANH ? "tanh" : "exact");
    jint(f, &first, "threads", o->n_threads);
    jint(f, &first, "batch", o->batch);
    jstr(f, &first, "task", task == TOLK_TASK_TRANSLATE ? "translate" : "transcribe");
    jstr(f, &first, "language", o->lang_mode);
    jint(f, &first, "beam_size", p->beam_size);
    jint(f, &first, "word_timestamps", p->word_timestamps);
    jint(f, &first, "best_of", p->best_of);
    jnum(f, &first, "patience", p->patience);
    jk(f, &first, "temperatures");
    fputc('[', f);
    for (int i = 0; i < p->n_temperatures; i++) {
        if (i) fputs(", ", f);
        json_num(f, p->temperatures[i]);
    }
    fputc(']', f);
    jint(f, &first, "condition_on_previous_text", p->condition_on_previous_text);
    jint(f, &first, "without_timestamps", p->without_timestamps);
    jint(f, &first, "warmup", o->warmup);
    jint(f, &first, "repeat", o->repeat);
    fputs("}\n", f);
    fflush(f);
}

/* ------------------------------------------------------------------------ */
/* --batch N: the engine                                                     */
/* ------------------------------------------------------------------------ */

typedef struct bench_job {
    int row, rep;
    tolk_request *rq;
    double t_submit, t_done;
    int ok;
} bench_job;

/* One job's file line (a batched run: latency, no per-file stages). */
static void batch_line(FILE *out, const bench_opts_t *o, const bench_row *r, const bench_job *j,
                       const char *lang_given, const tolk_result *res, const char *err, int n_rows,
                       double *audio) {
    int first = 1;
    fputc('{', out);
    jstr(out, &first, "type", "file");
    jint(out, &first, "index", j->row);
    jint(out, &first, "rep", j->rep);
    jstr(out, &first, "file", r->file);
    jint(out, &first, "line", r->line);
    jstr(out, &first, "status", res ? "ok" : "error");
    if (!res) jstr(out, &first, "error", err && *err ? err : "failed");
    jstr(out, &first, "language_ref", r->language);
    jstr(out, &first, "language_given", lang_given);
    jstr(out, &first, "language", res ? tolk_result_language(res) : NULL);
    jnum(out, &first, "language_prob", res ? (double)tolk_result_language_prob(res) : NAN);
    jstr(out, &first, "reference", r->reference);
    jstr(out, &first, "hypothesis", res ? tolk_result_text(res) : NULL);
    *audio = res ? tolk_result_duration(res) : (r->duration >= 0 ? r->duration : NAN);
    jnum(out, &first, "audio_s", *audio);
    jnum(out, &first, "latency_s", j->t_done - j->t_submit);
    jint(out, &first, "segments", res ? tolk_result_n_segments(res) : 0);
    double tmax = res ? 0.0 : NAN;
    for (int i = 0; res && i < tolk_result_n_segments(res); i++)
        if (tolk_result_segment(res, i)->temperature > tmax)
            tmax = tolk_result_segment(res, i)->temperature;
    jnum(out, &first, "max_temperature", tmax);
    fputs("}\n", out);
    fflush(out);
    if (!o->quiet) {
        if (res)
            fprintf(stderr, "tolk bench: [%d/%d] %s: %.1f s audio, latency %.2f s, %s\n",
                    j->row + 1, n_rows, r->file, *audio, j->t_done - j->t_submit,
                    tolk_result_language(res));
        else
            fprintf(stderr, "tolk bench: %s: %s\n", r->file, err);
    }
}

/* The engine's decoder steps by batch size, and latency percentiles. */
static void batch_summary(FILE *f, const bench_opts_t *o, const summary_t *s,
                          const tolk_engine_stats *es, double *lat, int n_lat) {
    int first = 1;
    fputc('{', f);
    jstr(f, &first, "type", "summary");
    jstr(f, &first, "manifest", o->manifest);
    jint(f, &first, "batch", o->batch);
    jint(f, &first, "files", s->files);
    jint(f, &first, "ok", s->ok);
    jint(f, &first, "failed", s->failed);
    jint(f, &first, "repeat", s->reps);
    jnum(f, &first, "audio_s", s->audio_s);
    jnum(f, &first, "wall_s", s->wall_s);
    jnum(f, &first, "rtfx", s->wall_s > 0 ? s->audio_s / s->wall_s : NAN);
    write_stages(f, &first, &s->t);
    jint(f, &first, "windows", (long long)s->t.windows);
    jint(f, &first, "tokens", (long long)s->t.tokens);
    jint(f, &first, "decoder_steps", (long long)es->steps);
    jint(f, &first, "decoder_rows", (long long)es->rows);
    jnum(f, &first, "mean_batch", es->steps ? (double)es->rows / (double)es->steps : NAN);
    jnum(f, &first, "tokens_per_s", s->wall_s > 0 ? (double)s->t.tokens / s->wall_s : NAN);
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    jnum(f, &first, "latency_p50_s", n_lat ? lat[n_lat / 2] : NAN);
    jnum(f, &first, "latency_p90_s", n_lat ? lat[(int)(0.9 * (n_lat - 1) + 0.5)] : NAN);
    jnum(f, &first, "latency_max_s", n_lat ? lat[n_lat - 1] : NAN);
    jk(f, &first, "decoder_by_batch");
    fputc('[', f);
    int g0 = 1;
    for (int b = 0; b < TOLK_ENGINE_BUCKETS; b++) {
        if (!es->steps_by_batch[b]) continue;
        if (!g0) fputs(", ", f);
        g0 = 0;
        int g = 1;
        fputc('{', f);
        jint(f, &g, "batch_min", tolk_engine_bucket_min(b));
        jint(f, &g, "batch_max",
             b + 1 < TOLK_ENGINE_BUCKETS ? tolk_engine_bucket_min(b + 1) - 1 : -1);
        jint(f, &g, "steps", (long long)es->steps_by_batch[b]);
        jint(f, &g, "rows", (long long)es->rows_by_batch[b]);
        jnum(f, &g, "ms_per_step", 1e3 * es->step_s_by_batch[b] / (double)es->steps_by_batch[b]);
        jnum(f, &g, "ms_per_token", 1e3 * es->step_s_by_batch[b] / (double)es->rows_by_batch[b]);
        fputc('}', f);
    }
    fputc(']', f);
    jnum(f, &first, "peak_rss_mib", s->process_peak_mib);
    jint(f, &first, "pool_sequences", es->pool_seqs);
    jint(f, &first, "pool_windows", es->pool_windows);
    jnum(f, &first, "pool_mib", (double)es->pool_bytes / 1048576.0);
    jnum(f, &first, "model_load_s", s->load_s);
    jnum(f, &first, "warmup_s", s->warmup_s);
    fputs("}\n", f);
}

/* Run rows × repeat through an engine of o->batch requests. The summary
 * goes to out (and o->summary). Returns the exit status. */
static int run_batch(tolk_ctx *ctx, tolk_model *model, const bench_opts_t *o,
                     const tolk_transcribe_params *base, const manifest *m, int n_rows,
                     int multilingual, FILE *out, summary_t *s) {
    tolk_engine_params ep = tolk_engine_default_params();
    ep.max_requests = o->batch;
    tolk_engine *e = NULL;
    if (tolk_engine_new(ctx, model, &ep, &e) != TOLK_OK) {
        fprintf(stderr, "tolk bench: cannot start the engine: %s\n", tolk_ctx_last_error(ctx));
        return 1;
    }
    int exit_status = 0;
    double t0 = cli_now();
    for (int w = 0; w < o->warmup && n_rows > 0; w++) {
        tolk_transcribe_params p = *base;
        p.language = row_language(o, &m->rows[0], multilingual);
        tolk_request *rq = NULL;
        if (tolk_engine_submit_file(e, m->rows[0].path, &p, &rq) == TOLK_OK) tolk_request_wait(rq);
        tolk_request_free(rq);
    }
    s->warmup_s = cli_now() - t0;
    tolk_engine_stats before;
    tolk_engine_get_stats(e, &before);
    tolk_timings tb;
    tolk_engine_timings(e, &tb);
    int n_jobs = n_rows * o->repeat;
    bench_job *jobs = calloc((size_t)(n_jobs > 0 ? n_jobs : 1), sizeof *jobs);
    double *lat = calloc((size_t)(n_jobs > 0 ? n_jobs : 1), sizeof *lat);
    if (!jobs || !lat) {
        free(jobs);
        free(lat);
        tolk_engine_free(e);
        fprintf(stderr, "tolk bench: out of memory\n");
        return 1;
    }
    for (int k = 0, i = 0; k < o->repeat; k++)
        for (int r = 0; r < n_rows; r++, i++)
            jobs[i] = (bench_job){.row = r, .rep = k};
    reset_peak_rss();
    const int window = 4 * o->batch; /* submitted and not done */
    int next = 0, done = 0, in_flight = 0, n_lat = 0;
    t0 = cli_now();
    while (done < n_jobs) {
        for (; next < n_jobs && in_flight < window; next++) {
            bench_job *j = &jobs[next];
            tolk_transcribe_params p = *base;
            p.language = row_language(o, &m->rows[j->row], multilingual);
            j->t_submit = cli_now();
            if (tolk_engine_submit_file(e, m->rows[j->row].path, &p, &j->rq) != TOLK_OK) {
                j->t_done = cli_now();
                double a;
                batch_line(out, o, &m->rows[j->row], j, p.language, NULL, tolk_engine_last_error(e),
                           n_rows, &a);
                exit_status = 1;
                done++;
                continue;
            }
            in_flight++;
        }
        int any = 0;
        for (int i = 0; i < next; i++) {
            bench_job *j = &jobs[i];
            if (!j->rq || !tolk_request_done(j->rq)) continue;
            j->t_done = cli_now();
            tolk_result *res = NULL;
            tolk_status st = tolk_request_result(j->rq, &res);
            double a = 0;
            batch_line(out, o, &m->rows[j->row], j, row_language(o, &m->rows[j->row], multilingual),
                       st == TOLK_OK ? res : NULL, tolk_request_last_error(j->rq), n_rows, &a);
            if (st == TOLK_OK) {
                lat[n_lat++] = j->t_done - j->t_submit;
                if (j->rep == 0) s->audio_s += a;
            } else {
                exit_status = 1;
            }
            j->ok = st == TOLK_OK;
            tolk_result_free(res);
            tolk_request_free(j->rq);
            j->rq = NULL;
            in_flight--;
            done++;
            any = 1;
        }
        if (!any && done < n_jobs) usleep(2000);
    }
    double wall = cli_now() - t0;
    tolk_engine_stats es;
    tolk_engine_get_stats(e, &es);
    tolk_timings t;
    tolk_engine_timings(e, &t);
    /* this run only: minus the warm-up */
    es.steps -= before.steps;
    es.rows -= before.rows;
    for (int b = 0; b < TOLK_ENGINE_BUCKETS; b++) {
        es.steps_by_batch[b] -= before.steps_by_batch[b];
        es.rows_by_batch[b] -= before.rows_by_batch[b];
        es.step_s_by_batch[b] -= before.step_s_by_batch[b];
    }
    s->t.audio_s = t.audio_s - tb.audio_s;
    s->t.mel_s = t.mel_s - tb.mel_s;
    s->t.encoder_s = t.encoder_s - tb.encoder_s;
    s->t.decoder_s = t.decoder_s - tb.decoder_s;
    s->t.search_s = t.search_s - tb.search_s;
    s->t.windows = (t.windows - tb.windows) / o->repeat;
    s->t.tokens = (t.tokens - tb.tokens) / o->repeat;
    s->files = n_rows;
    s->reps = o->repeat;
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i].rep == 0) {
            int all_ok = 1;
            for (int k = 0; k < o->repeat; k++)
                all_ok &= jobs[(size_t)k * n_rows + jobs[i].row].ok;
            if (all_ok)
                s->ok++;
            else
                s->failed++;
        }
    s->wall_s = wall / o->repeat;
    s->audio_s = s->audio_s; /* one repetition's audio */
    s->process_peak_mib = process_peak_mib();
    batch_summary(out, o, s, &es, lat, n_lat);
    if (o->summary) {
        FILE *f = fopen(o->summary, "w");
        if (!f || (batch_summary(f, o, s, &es, lat, n_lat), fclose(f) != 0)) {
            fprintf(stderr, "tolk bench: %s: cannot write the summary\n", o->summary);
            exit_status = 1;
        }
    }
    if (!o->quiet) {
        fprintf(stderr,
                "tolk bench: batch %d: %d files (%d failed), %.1f s of audio in %.1f s: RTFx "
                "%.2f; %lld decoder steps of %.1f sequences on average; peak RSS %.0f MiB\n",
                o->batch, s->files, s->failed, s->audio_s, s->wall_s,
                s->wall_s > 0 ? s->audio_s / s->wall_s : 0.0, (long long)es.steps,
                es.steps ? (double)es.rows / (double)es.steps : 0.0, s->process_peak_mib);
        for (int b = 0; b < TOLK_ENGINE_BUCKETS; b++)
            if (es.steps_by_batch[b])
                fprintf(stderr, "  decoder batch %d-%d: %lld steps, %.2f ms/step, %.3f ms/token\n",
                        tolk_engine_bucket_min(b),
                        b + 1 < TOLK_ENGINE_BUCKETS ? tolk_engine_bucket_min(b + 1) - 1 : 99999,
                        (long long)es.steps_by_batch[b],
                        1e3 * es.step_s_by_batch[b] / (double)es.steps_by_batch[b],
                        1e3 * es.step_s_by_batch[b] / (double)es.rows_by_batch[b]);
    }
    free(jobs);
    free(lat);
    tolk_engine_free(e);
    return exit_status;
}

int cli_bench(int argc, char **argv) {
    cli_args a;
    int r = cli_parse("tolk bench", argc, argv, bench_opts, &a);
    if (r) return r;
    if (cli_given(&a, "help")) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    bench_opts_t o;
    r = parse_options(&a, &o);
    if (r) {
        cli_args_free(&a);
        return r;
    }

    manifest m;
    if (manifest_read(o.manifest, &m) != 0) {
        manifest_free(&m);
        cli_args_free(&a);
        return 1;
    }
    int n_rows = o.limit > 0 && o.limit < m.n ? o.limit : m.n;
    if (o.check) {
        if (!o.quiet)
            fprintf(stderr, "tolk bench: %s: %d files, manifest ok\n", o.manifest, n_rows);
        manifest_free(&m);
        cli_args_free(&a);
        return 0;
    }

    int exit_status = 0;
    tolk_ctx *ctx = NULL;
    tolk_model *model = NULL;
    tolk_state *state = NULL;
    char *model_path = NULL;
    FILE *out = NULL;
    file_meas *meas = NULL;
    double *scratch = NULL;
    summary_t s;
    memset(&s, 0, sizeof s);

    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.n_threads = o.n_threads;
    cp.device = o.device;
    tolk_status st = tolk_ctx_new(&cp, &ctx);
    if (st != TOLK_OK) {
        fprintf(stderr, "tolk bench: --device %s: %s\n", o.device_name, tolk_strerror(st));
        exit_status = 1;
        goto done;
    }
    model_path = cli_resolve_model("tolk bench", o.model, o.model_dir);
    if (!model_path) {
        exit_status = 1;
        goto done;
    }
    double t0 = cli_now();
    tolk_model_params mp = tolk_model_default_params();
    mp.device = tolk_ctx_device(ctx);
    mp.compute_type = o.compute_type;
    mp.kv_cache = o.kv_cache;
    mp.gelu = o.gelu;
    st = tolk_model_load(ctx, model_path, &mp, &model);
    if (st == TOLK_OK && o.batch == 1) st = tolk_state_new(ctx, model, &state);
    if (st != TOLK_OK) {
        const char *msg = tolk_ctx_last_error(ctx);
        fprintf(stderr, "tolk bench: %s: %s\n", model_path, msg[0] ? msg : tolk_strerror(st));
        exit_status = 1;
        goto done;
    }
    s.load_s = cli_now() - t0;
    tolk_model_desc desc;
    tolk_model_describe(model, &desc);
    int task = o.task >= 0 ? o.task : (m.translate ? TOLK_TASK_TRANSLATE : TOLK_TASK_TRANSCRIBE);
    tolk_transcribe_params base = o.params;
    base.task = (tolk_task)task;

    if (!strcmp(o.output, "-")) {
        out = stdout;
    } else {
        out = fopen(o.output, "w");
        if (!out) {
            fprintf(stderr, "tolk bench: %s: cannot write: %s\n", o.output, strerror(errno));
            exit_status = 1;
            goto done;
        }
    }
    meas = calloc((size_t)n_rows * (size_t)o.repeat, sizeof *meas);
    scratch = calloc((size_t)o.repeat, sizeof *scratch);
    if (!meas || !scratch) {
        fprintf(stderr, "tolk bench: out of memory\n");
        exit_status = 1;
        goto done;
    }
    write_config(out, &o, model_path, &desc, tolk_ctx_device(ctx), task, n_rows);
    if (o.batch > 1) {
        exit_status = run_batch(ctx, model, &o, &base, &m, n_rows, desc.multilingual, out, &s);
        if (out != stdout && fclose(out) != 0) exit_status = 1;
        out = NULL;
        goto done;
    }

    /* warm-up: caches, page faults of the mapped weights, BLAS thread pools */
    t0 = cli_now();
    for (int w = 0; w < o.warmup && n_rows > 0; w++) {
        tolk_transcribe_params p = base;
        p.language = row_language(&o, &m.rows[0], desc.multilingual);
        tolk_result *res = NULL;
        if (tolk_transcribe_file(state, m.rows[0].path, &p, &res) != TOLK_OK && !o.quiet)
            fprintf(stderr, "tolk bench: warm-up on %s failed: %s\n", m.rows[0].file,
                    tolk_state_last_error(state));
        tolk_result_free(res);
    }
    s.warmup_s = cli_now() - t0;

    for (int i = 0; i < n_rows; i++)
        for (int k = 0; k < o.repeat; k++)
            if (run_one(state, &o, &base, &m.rows[i], i, n_rows, k, desc.multilingual, out,
                        &meas[(size_t)i * (size_t)o.repeat + (size_t)k]) != 0)
                exit_status = 1;

    /* summary: per file the median wall time over its successful
     * repetitions; audio and stage seconds are means over them, counts and
     * tokens those of one repetition, memory the largest peak */
    s.files = n_rows;
    s.reps = o.repeat;
    for (int i = 0; i < n_rows; i++) {
        file_meas *fm = &meas[(size_t)i * (size_t)o.repeat];
        int nok = 0;
        for (int k = 0; k < o.repeat; k++)
            if (fm[k].ok) scratch[nok++] = fm[k].wall_s;
        if (nok == 0) {
            s.failed++;
            continue;
        }
        s.ok++;
        s.wall_s += median(scratch, nok);
        double inv = 1.0 / nok;
        int counted = 0;
        for (int k = 0; k < o.repeat; k++) {
            if (!fm[k].ok) continue;
            s.audio_s += fm[k].audio_s * inv;
            s.t.audio_s += fm[k].t.audio_s * inv;
            s.t.mel_s += fm[k].t.mel_s * inv;
            s.t.encoder_s += fm[k].t.encoder_s * inv;
            s.t.decoder_s += fm[k].t.decoder_s * inv;
            s.t.search_s += fm[k].t.search_s * inv;
            if (!counted) {
                s.t.windows += fm[k].t.windows;
                s.t.tokens += fm[k].t.tokens;
                s.t.decoder_steps += fm[k].t.decoder_steps;
                counted = 1;
            }
            if (fm[k].peak_mib > s.peak_mib) s.peak_mib = fm[k].peak_mib;
            if (fm[k].t.device_peak_bytes > s.t.device_peak_bytes)
                s.t.device_peak_bytes = fm[k].t.device_peak_bytes;
        }
    }
    s.process_peak_mib = process_peak_mib();
    write_summary(out, &o, &s);
    if (out != stdout && fclose(out) != 0) {
        fprintf(stderr, "tolk bench: %s: write failed: %s\n", o.output, strerror(errno));
        exit_status = 1;
    } else if (out == stdout && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "tolk bench: writing to standard output failed\n");
        exit_status = 1;
    }
    out = NULL;
    if (o.summary) {
        FILE *f = fopen(o.summary, "w");
        if (!f) {
            fprintf(stderr, "tolk bench: %s: cannot write: %s\n", o.summary, strerror(errno));
            exit_status = 1;
        } else {
            write_summary(f, &o, &s);
            if (fclose(f) != 0) {
                fprintf(stderr, "tolk bench: %s: write failed\n", o.summary);
                exit_status = 1;
            }
        }
    }
    if (!o.quiet) {
        fprintf(stderr,
                "tolk bench: %d files (%d failed), %.1f s of audio in %.1f s: RTFx %.2f; "
                "stages: audio %.2f, mel %.2f, encoder %.2f, decoder %.2f, search %.2f s; "
                "%lld tokens; peak RSS %.0f MiB; model load %.2f s\n",
                s.files, s.failed, s.audio_s, s.wall_s, s.wall_s > 0 ? s.audio_s / s.wall_s : 0.0,
                s.t.audio_s, s.t.mel_s, s.t.encoder_s, s.t.decoder_s, s.t.search_s,
                (long long)s.t.tokens, s.peak_mib, s.load_s);
    }

done:
    if (out && out != stdout) fclose(out);
    free(meas);
    free(scratch);
    tolk_state_free(state);
    tolk_model_free(model);
    tolk_ctx_free(ctx);
    free(model_path);
    manifest_free(&m);
    cli_args_free(&a);
    return exit_status;
}

/*
 * mt_split.c — sentence splitting for translation (see mt_split.h): the
 * rules of Bergamot's ssplit-cpp paragraph mode, reduced to a
 * language-neutral list of non-breaking prefixes.
 */
#include "mt_split.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Abbreviations after which a period does not end a sentence (English,
 * Portuguese, Spanish, German, French, Dutch, Italian common forms;
 * compared without letter case). */
static const char *const abbrev[] = {
    "mr",   "mrs",  "ms",   "dr",   "drs",  "prof",  "sr",   "sra",  "srta",   "sres", "jr",
    "st",   "mt",   "vs",   "etc",  "e.g",  "i.e",   "no",   "nos",  "nr",     "fig",  "figs",
    "inc",  "ltd",  "co",   "corp", "gen",  "rep",   "sen",  "gov",  "lt",     "col",  "sgt",
    "capt", "cmdr", "adm",  "ave",  "av",   "rd",    "dept", "univ", "approx", "jan",  "feb",
    "mar",  "apr",  "jun",  "jul",  "aug",  "sep",   "sept", "oct",  "nov",    "dec",  "dra",
    "sto",  "sta",  "pag",  "pág",  "cf",   "ca",    "bzw",  "usw",  "z.b",    "d.h",  "u.a",
    "hr",   "fr",   "frl",  "mme",  "mlle", "m",     "ed",   "eds",  "vol",    "vols", "pp",
    "p",    "op",   "cit",  "al",   "resp", "tel",   "ext",  "est",  "dir",    "eng",  "arq",
    "exmo", "exma", "ilmo", "ilma", "sig",  "sigra", "dott", "ing",  "avv",    NULL};

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Whether the word ending just before text[end] (a period) is an
 * abbreviation or a single letter. */
static int before_is_abbrev(const char *text, size_t end) {
    size_t b = end;
    while (b > 0 && !is_space((unsigned char)text[b - 1]) && text[b - 1] != '(' &&
           text[b - 1] != '"' && text[b - 1] != '\'')
        b--;
    size_t n = end - b;
    if (n == 0) return 0;
    /* a single letter (ASCII or one UTF-8 character): an initial */
    unsigned char c0 = (unsigned char)text[b];
    if (n == 1 && ((c0 | 32) >= 'a' && (c0 | 32) <= 'z')) return 1;
    if (c0 >= 0xc0 && n <= 4) {
        size_t cl = c0 >= 0xf0 ? 4 : c0 >= 0xe0 ? 3 : 2;
        if (cl == n) return 1;
    }
    /* initials run together: "U.S", "e.g" */
    int dotted = n >= 3;
    for (size_t i = 0; i < n && dotted; i++)
        if ((i % 2 == 1) != (text[b + i] == '.')) dotted = 0;
    if (dotted) return 1;
    if (n >= 8) return 0;
    char w[8];
    memcpy(w, text + b, n);
    w[n] = '\0';
    for (int i = 0; abbrev[i]; i++)
        if (!strcasecmp(w, abbrev[i])) return 1;
    return 0;
}

/* Whether the character at text[i] can start a sentence. */
static int can_start(const char *text, size_t len, size_t i) {
    unsigned char c = (unsigned char)text[i];
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    if (c == '"' || c == '\'' || c == '(' || c == '[' || c == '-') return 1;
    if (c >= 0xc0) { /* non-ASCII: accept letters, reject lower-case Latin-1 ones */
        if (c == 0xc3 && i + 1 < len) {
            unsigned char d = (unsigned char)text[i + 1];
            return d < 0x9f; /* À .. Þ upper case; ß and lower case follow */
        }
        return 1;
    }
    return 0;
}

/* Length of a UTF-8 sentence-final mark at text[i] (… 。 ！ ？), 0 if none. */
static size_t wide_end(const char *text, size_t len, size_t i, int *cjk) {
    static const char *const marks[] = {"\xe2\x80\xa6", "\xe3\x80\x82", "\xef\xbc\x81",
                                        "\xef\xbc\x9f"};
    for (int k = 0; k < 4; k++)
        if (i + 3 <= len && !memcmp(text + i, marks[k], 3)) {
            *cjk = k > 0;
            return 3;
        }
    return 0;
}

/* Length of closing quotes / brackets at text[i]. */
static size_t closers(const char *text, size_t len, size_t i) {
    size_t j = i;
    for (;;) {
        unsigned char c = j < len ? (unsigned char)text[j] : 0;
        if (c == '"' || c == '\'' || c == ')' || c == ']') {
            j++;
        } else if (j + 2 <= len && ((c == 0xc2 && (unsigned char)text[j + 1] == 0xbb))) {
            j += 2; /* » */
        } else if (j + 3 <= len && c == 0xe2 && (unsigned char)text[j + 1] == 0x80 &&
                   ((unsigned char)text[j + 2] == 0x9d || (unsigned char)text[j + 2] == 0x99)) {
            j += 3; /* ” ’ */
        } else {
            return j - i;
        }
    }
}

int tolk_mt_split_sentences(const char *text, size_t len, size_t **spans) {
    *spans = NULL;
    size_t cap = 8, n = 0;
    size_t *sp = malloc(cap * 2 * sizeof *sp);
    if (!sp) return -1;
    size_t i = 0;
    while (i < len && is_space((unsigned char)text[i]))
        i++;
    size_t start = i;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        int cjk = 0;
        size_t mark = 0;
        if (c == '.' || c == '!' || c == '?') {
            mark = 1;
            while (i + mark < len &&
                   (text[i + mark] == '.' || text[i + mark] == '!' || text[i + mark] == '?'))
                mark++;
        } else {
            mark = wide_end(text, len, i, &cjk);
        }
        if (!mark) {
            i += 1;
            continue;
        }
        size_t e = i + mark;
        e += closers(text, len, e);
        int split = 0;
        if (cjk) {
            split = 1;
        } else if (e < len && is_space((unsigned char)text[e])) {
            size_t k = e;
            while (k < len && is_space((unsigned char)text[k]))
                k++;
            if (k < len && can_start(text, len, k)) split = 1;
            if (split && c == '.' && mark == 1 && before_is_abbrev(text, i)) split = 0;
        }
        if (split) {
            if (n == cap) {
                size_t *g = realloc(sp, cap * 4 * sizeof *sp);
                if (!g) {
                    free(sp);
                    return -1;
                }
                sp = g;
                cap *= 2;
            }
            sp[2 * n] = start;
            sp[2 * n + 1] = e;
            n++;
            i = e;
            while (i < len && is_space((unsigned char)text[i]))
                i++;
            start = i;
            continue;
        }
        i = e;
    }
    size_t end = len;
    while (end > start && is_space((unsigned char)text[end - 1]))
        end--;
    if (end > start) {
        if (n == cap) {
            size_t *g = realloc(sp, (cap + 1) * 2 * sizeof *sp);
            if (!g) {
                free(sp);
                return -1;
            }
            sp = g;
        }
        sp[2 * n] = start;
        sp[2 * n + 1] = end;
        n++;
    }
    if (n == 0) {
        free(sp);
        return 0;
    }
    *spans = sp;
    return (int)n;
}

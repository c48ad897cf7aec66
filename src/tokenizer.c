/*
 * tokenizer.c — the Whisper tokenizer (see tokenizer.h).
 *
 * Reproduces openai-whisper's tokenizer, i.e. tiktoken's byte-level BPE:
 *  - pre-tokenisation with the GPT-2 expression (PCRE2, UTF-8 + Unicode
 *    properties, \s spelled out as Unicode White_Space as Rust's regex has it);
 *  - each piece that is itself a token is emitted as is; otherwise the piece
 *    starts as single bytes and the adjacent pair whose concatenation has the
 *    lowest rank (= token id) is merged, leftmost on ties, until no pair is a
 *    token;
 *  - the special-token layout derived from the vocabulary size.
 * Every source (tokenizer.json, vocabulary.txt/json, ggml vocabulary,
 * .tiktoken) is reduced to "id -> bytes" and ranked by id. tokenizer.json's
 * merges list is deliberately not used: the merges of some published files
 * (base's lacks "Ġ t") disagree with the reference ids, while rank-by-id
 * reproduces them from every file.
 *
 * Decoding concatenates token bytes and replaces invalid UTF-8 by U+FFFD as
 * Python's errors="replace" does (one per maximal invalid subpart).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "tokenizer.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest id a file may name, largest file read, longest token accepted. */
#define TOK_MAX_ID (1 << 22)
#define TOK_MAX_FILE ((size_t)1 << 30)
#define TOK_MAX_TOKEN_BYTES (1u << 16)
/* Pieces longer than this use the heap-ordered merge (same result). */
#define TOK_LINEAR_MAX 64

/* ------------------------------------------------------------------------ */
/* Language table: openai-whisper's order (token order), codes, names        */
/* ------------------------------------------------------------------------ */

static const char *const k_lang[TOLK_TOK_MAX_LANGUAGES][2] = {
    {"en", "english"},        {"zh", "chinese"},     {"de", "german"},        {"es", "spanish"},
    {"ru", "russian"},        {"ko", "korean"},      {"fr", "french"},        {"ja", "japanese"},
    {"pt", "portuguese"},     {"tr", "turkish"},     {"pl", "polish"},        {"ca", "catalan"},
    {"nl", "dutch"},          {"ar", "arabic"},      {"sv", "swedish"},       {"it", "italian"},
    {"id", "indonesian"},     {"hi", "hindi"},       {"fi", "finnish"},       {"vi", "vietnamese"},
    {"he", "hebrew"},         {"uk", "ukrainian"},   {"el", "greek"},         {"ms", "malay"},
    {"cs", "czech"},          {"ro", "romanian"},    {"da", "danish"},        {"hu", "hungarian"},
    {"ta", "tamil"},          {"no", "norwegian"},   {"th", "thai"},          {"ur", "urdu"},
    {"hr", "croatian"},       {"bg", "bulgarian"},   {"lt", "lithuanian"},    {"la", "latin"},
    {"mi", "maori"},          {"ml", "malayalam"},   {"cy", "welsh"},         {"sk", "slovak"},
    {"te", "telugu"},         {"fa", "persian"},     {"lv", "latvian"},       {"bn", "bengali"},
    {"sr", "serbian"},        {"az", "azerbaijani"}, {"sl", "slovenian"},     {"kn", "kannada"},
    {"et", "estonian"},       {"mk", "macedonian"},  {"br", "breton"},        {"eu", "basque"},
    {"is", "icelandic"},      {"hy", "armenian"},    {"ne", "nepali"},        {"mn", "mongolian"},
    {"bs", "bosnian"},        {"kk", "kazakh"},      {"sq", "albanian"},      {"sw", "swahili"},
    {"gl", "galician"},       {"mr", "marathi"},     {"pa", "punjabi"},       {"si", "sinhala"},
    {"km", "khmer"},          {"sn", "shona"},       {"yo", "yoruba"},        {"so", "somali"},
    {"af", "afrikaans"},      {"oc", "occitan"},     {"ka", "georgian"},      {"be", "belarusian"},
    {"tg", "tajik"},          {"sd", "sindhi"},      {"gu", "gujarati"},      {"am", "amharic"},
    {"yi", "yiddish"},        {"lo", "lao"},         {"uz", "uzbek"},         {"fo", "faroese"},
    {"ht", "haitian creole"}, {"ps", "pashto"},      {"tk", "turkmen"},       {"nn", "nynorsk"},
    {"mt", "maltese"},        {"sa", "sanskrit"},    {"lb", "luxembourgish"}, {"my", "myanmar"},
    {"bo", "tibetan"},        {"tl", "tagalog"},     {"mg", "malagasy"},      {"as", "assamese"},
    {"tt", "tatar"},          {"haw", "hawaiian"},   {"ln", "lingala"},       {"ha", "hausa"},
    {"ba", "bashkir"},        {"jw", "javanese"},    {"su", "sundanese"},     {"yue", "cantonese"},
};

/* Other names accepted for a language: {alias, code}. */
static const char *const k_lang_alias[][2] = {
    {"burmese", "my"},       {"valencian", "ca"}, {"flemish", "nl"},   {"haitian", "ht"},
    {"letzeburgesch", "lb"}, {"pushto", "ps"},    {"panjabi", "pa"},   {"moldavian", "ro"},
    {"moldovan", "ro"},      {"sinhalese", "si"}, {"castilian", "es"}, {"mandarin", "zh"},
};

int tolk_language_count(void) {
    return TOLK_TOK_MAX_LANGUAGES;
}

const char *tolk_language_code(int i) {
    return (i >= 0 && i < TOLK_TOK_MAX_LANGUAGES) ? k_lang[i][0] : NULL;
}

const char *tolk_language_name(int i) {
    return (i >= 0 && i < TOLK_TOK_MAX_LANGUAGES) ? k_lang[i][1] : NULL;
}

/* ASCII case-insensitive equality of NUL-terminated strings. */
static int ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

int tolk_language_index(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < TOLK_TOK_MAX_LANGUAGES; i++)
        if (ieq(s, k_lang[i][0]) || ieq(s, k_lang[i][1])) return i;
    for (size_t a = 0; a < sizeof k_lang_alias / sizeof k_lang_alias[0]; a++)
        if (ieq(s, k_lang_alias[a][0])) return tolk_language_index(k_lang_alias[a][1]);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The tokenizer                                                            */
/* ------------------------------------------------------------------------ */

struct tolk_tokenizer {
    int n_vocab; /* ids [0, n_vocab) */
    int n_base;  /* ordinary (mergeable) ids [0, n_base); n_base == eot */
    int multilingual;
    tolk_special_tokens sp;
    uint32_t *off;         /* [n_vocab + 1] byte offsets of each token into blob */
    uint8_t *blob;         /* every token's bytes, back to back (+1 NUL) */
    int32_t byte_tok[256]; /* id of the one-byte token of each byte value */
    int32_t *ht;           /* open-addressing hash: bytes -> lowest id, -1 empty */
    uint32_t ht_mask;      /* slots - 1 (power of two) */
    pcre2_code *re;        /* the pre-tokenizer, compiled once (JIT when possible) */
    int *non_speech;       /* sorted */
    size_t n_non_speech;
};

/* GPT-2 pre-tokenizer; WS is Unicode White_Space (Rust regex's \s). */
#define WS                                                                                         \
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"             \
    "\\x{202F}\\x{205F}\\x{3000}"
static const char k_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS
                                "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static inline size_t tok_len(const tolk_tokenizer *t, int id) {
    return t->off[id + 1] - t->off[id];
}

/* The lowest id whose bytes are p[0, n), -1 when none. */
static int ht_find(const tolk_tokenizer *t, const uint8_t *p, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(p, n) & t->ht_mask;
    for (;;) {
        int32_t id = t->ht[i];
        if (id < 0) return -1;
        if (tok_len(t, id) == n && memcmp(t->blob + t->off[id], p, n) == 0) return id;
        i = (i + 1) & t->ht_mask;
    }
}

/* The rank of bytes p[0, n) for merging: an ordinary token id, or -1. */
static inline int rank_of(const tolk_tokenizer *t, const uint8_t *p, size_t n) {
    if (n == 1) return t->byte_tok[p[0]];
    int id = ht_find(t, p, n);
    return id < t->n_base ? id : -1;
}

void tolk_tokenizer_free(tolk_tokenizer *t) {
    if (!t) return;
    free(t->off);
    free(t->blob);
    free(t->ht);
    free(t->non_speech);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

int tolk_tokenizer_n_vocab(const tolk_tokenizer *t) {
    return t ? t->n_vocab : 0;
}

int tolk_tokenizer_is_multilingual(const tolk_tokenizer *t) {
    return t ? t->multilingual : 0;
}

const tolk_special_tokens *tolk_tokenizer_special(const tolk_tokenizer *t) {
    return t ? &t->sp : NULL;
}

const uint8_t *tolk_tokenizer_token_bytes(const tolk_tokenizer *t, int id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok_len(t, id);
    return t->blob + t->off[id];
}

int tolk_tokenizer_token_id(const tolk_tokenizer *t, const void *bytes, size_t len) {
    if (!t || (!bytes && len) || len == 0) return -1;
    return ht_find(t, (const uint8_t *)bytes, len);
}

int tolk_tokenizer_lang_token(const tolk_tokenizer *t, const char *code_or_name) {
    int i = tolk_language_index(code_or_name);
    if (!t || i < 0 || i >= t->sp.n_languages) return -1;
    return t->sp.lang[i];
}

const char *tolk_tokenizer_lang_code(const tolk_tokenizer *t, int id) {
    if (!t || id < t->sp.sot + 1 || id >= t->sp.sot + 1 + t->sp.n_languages) return NULL;
    return k_lang[id - t->sp.sot - 1][0];
}

const int *tolk_tokenizer_non_speech(const tolk_tokenizer *t, size_t *n) {
    if (n) *n = t ? t->n_non_speech : 0;
    return t ? t->non_speech : NULL;
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                    */
/* ------------------------------------------------------------------------ */

/* Examine the character at s[0, n), n >= 1. Returns its length (1-4) when
 * valid; 0 when invalid, with *bad = length of the maximal invalid subpart
 * (what one U+FFFD replaces); -1 when s[0, n) is a valid but incomplete
 * start of a character cut by the end of the input. */
static int utf8_next(const uint8_t *s, size_t n, size_t *bad) {
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -1;
        uint8_t b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
            *bad = (size_t)k;
            return 0;
        }
    }
    return need + 1;
}

/* Copy in[0, n) to out replacing invalid UTF-8 by U+FFFD (out holds up to
 * 3n bytes). With final = 0 a valid incomplete character at the end is not
 * consumed: *held gets its length (0-3). Returns the bytes written. */
static size_t utf8_sanitize(const uint8_t *in, size_t n, uint8_t *out, int final, size_t *held) {
    size_t i = 0, o = 0, bad = 0;
    *held = 0;
    while (i < n) {
        int k = utf8_next(in + i, n - i, &bad);
        if (k > 0) {
            memcpy(out + o, in + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (k < 0 && !final) {
            *held = n - i;
            break;
        }
        if (k < 0) bad = n - i;
        out[o++] = 0xEF;
        out[o++] = 0xBF;
        out[o++] = 0xBD;
        i += bad;
    }
    return o;
}

/* Whether s[0, n) is valid UTF-8 (no surrogates, no overlongs). */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_next(s + i, n - i, &bad);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Source vocabularies: id -> bytes, from any file kind                     */
/* ------------------------------------------------------------------------ */

typedef struct srcvocab {
    const char *name; /* for messages */
    int n;            /* ids [0, n) seen (max id + 1) */
    int cap;
    uint32_t *off; /* [cap] offset into blob */
    uint32_t *len; /* [cap] length; UINT32_MAX = absent */
    uint8_t *blob;
    size_t blob_len, blob_cap;
} srcvocab;

static void sv_free(srcvocab *sv) {
    free(sv->off);
    free(sv->len);
    free(sv->blob);
    memset(sv, 0, sizeof *sv);
}

/* Make room for id and `extra` more blob bytes. */
static tolk_status sv_reserve(tolk_ctx *ctx, srcvocab *sv, int id, size_t extra) {
    if (id < 0 || id >= TOK_MAX_ID)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: token id %d out of range", sv->name, id);
    if (extra > TOK_MAX_TOKEN_BYTES)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: token %d is %zu bytes long", sv->name, id,
                         extra);
    if (id >= sv->cap) {
        int cap = sv->cap ? sv->cap : 1024;
        while (cap <= id)
            cap *= 2;
        uint32_t *o = realloc(sv->off, (size_t)cap * sizeof *o);
        if (o) sv->off = o;
        uint32_t *l = o ? realloc(sv->len, (size_t)cap * sizeof *l) : NULL;
        if (!o || !l) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", sv->name);
        sv->len = l;
        for (int i = sv->cap; i < cap; i++)
            l[i] = UINT32_MAX;
        sv->cap = cap;
    }
    if (sv->blob_len + extra + 1 > sv->blob_cap) {
        size_t cap = sv->blob_cap ? sv->blob_cap : 65536;
        while (cap < sv->blob_len + extra + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: vocabulary too large", sv->name);
        uint8_t *b = realloc(sv->blob, cap);
        if (!b) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", sv->name);
        sv->blob = b;
        sv->blob_cap = cap;
    }
    return TOLK_OK;
}

/* Record the n bytes now at blob + blob_len as token id. An id seen before
 * must carry the same bytes. */
static tolk_status sv_commit(tolk_ctx *ctx, srcvocab *sv, int id, size_t n) {
    const uint8_t *p = sv->blob + sv->blob_len;
    if (sv->len[id] != UINT32_MAX) {
        if (sv->len[id] == n && memcmp(sv->blob + sv->off[id], p, n) == 0) return TOLK_OK;
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: token id %d defined twice", sv->name, id);
    }
    sv->off[id] = (uint32_t)sv->blob_len;
    sv->len[id] = (uint32_t)n;
    sv->blob_len += n;
    if (id >= sv->n) sv->n = id + 1;
    return TOLK_OK;
}

static tolk_status sv_set_raw(tolk_ctx *ctx, srcvocab *sv, int id, const void *p, size_t n) {
    tolk_status st = sv_reserve(ctx, sv, id, n);
    if (st) return st;
    if (n) memcpy(sv->blob + sv->blob_len, p, n);
    return sv_commit(ctx, sv, id, n);
}

/* GPT-2's byte-to-unicode alphabet, inverted: code point -> byte, -1 when
 * the code point is not in it. Printable bytes map to themselves; the
 * other 68 to U+0100 onwards in byte order. */
static void byte_decoder(int16_t rev[324]) {
    int extra = 0;
    for (int i = 0; i < 324; i++)
        rev[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        rev[printable ? b : 256 + extra++] = (int16_t)b;
    }
}

/* Token id in byte-to-unicode text form s[0, n) (UTF-8). */
static tolk_status sv_set_text(tolk_ctx *ctx, srcvocab *sv, int id, const char *s, size_t n,
                               const int16_t rev[324]) {
    tolk_status st = sv_reserve(ctx, sv, id, n);
    if (st) return st;
    const uint8_t *u = (const uint8_t *)s;
    uint8_t *out = sv->blob + sv->blob_len;
    size_t i = 0, o = 0, bad;
    while (i < n) {
        int k = utf8_next(u + i, n - i, &bad);
        uint32_t cp = 0;
        if (k == 1)
            cp = u[i];
        else if (k == 2)
            cp = ((u[i] & 0x1Fu) << 6) | (u[i + 1] & 0x3Fu);
        if (k <= 0 || k > 2 || cp >= 324 || rev[cp] < 0)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: token %d has a character outside the byte-level alphabet",
                             sv->name, id);
        out[o++] = (uint8_t)rev[cp];
        i += (size_t)k;
    }
    return sv_commit(ctx, sv, id, o);
}

/* Read a whole regular file; *buf NUL-terminated, caller frees. */
static tolk_status read_file(tolk_ctx *ctx, const char *path, char **buf, size_t *len) {
    struct stat stt;
    *buf = NULL;
    *len = 0;
    if (stat(path, &stt) != 0) return tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(stt.st_mode)) return tolk_fail(ctx, TOLK_ERR_IO, "%s: not a regular file", path);
    if ((uint64_t)stt.st_size > TOK_MAX_FILE)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: too large for a vocabulary", path);
    FILE *f = fopen(path, "rb");
    if (!f) return tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", path, strerror(errno));
    size_t size = (size_t)stt.st_size;
    char *b = malloc(size + 1);
    if (!b) {
        fclose(f);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(b, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != size) {
        free(b);
        return tolk_fail(ctx, TOLK_ERR_IO, "%s: read failed", path);
    }
    b[size] = 0;
    *buf = b;
    *len = size;
    return TOLK_OK;
}

static int b64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode base64 s[0, n) (padding optional) into out (n bytes suffice);
 * returns the byte count or -1 when malformed. */
static long b64_decode(const char *s, size_t n, uint8_t *out) {
    while (n && s[n - 1] == '=')
        n--;
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (n % 4 == 1) ? -1 : o;
}

/* .tiktoken: "base64 rank" per line; ranks must be 0 .. n-1, each once. */
static tolk_status parse_tiktoken(tolk_ctx *ctx, srcvocab *sv, char *buf, size_t len) {
    size_t i = 0;
    int line = 0, count = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        line++;
        size_t a = i, b = e;
        i = e + 1;
        while (b > a && (buf[b - 1] == '\r' || buf[b - 1] == ' ' || buf[b - 1] == '\t'))
            b--;
        if (a == b) continue;
        size_t sp = a;
        while (sp < b && buf[sp] != ' ')
            sp++;
        size_t r = sp;
        while (r < b && buf[r] == ' ')
            r++;
        long rank = 0;
        if (r == b) rank = -1;
        for (size_t k = r; k < b && rank >= 0; k++) {
            if (buf[k] < '0' || buf[k] > '9' || rank >= TOK_MAX_ID)
                rank = -1;
            else
                rank = rank * 10 + (buf[k] - '0');
        }
        if (rank < 0 || rank >= TOK_MAX_ID)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: line %d: bad rank", sv->name, line);
        tolk_status st = sv_reserve(ctx, sv, (int)rank, sp - a);
        if (st) return st;
        long nb = b64_decode(buf + a, sp - a, sv->blob + sv->blob_len);
        if (nb < 0)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: line %d: bad base64 token", sv->name, line);
        if (sv->len[rank] != UINT32_MAX)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: line %d: rank %ld appears twice", sv->name,
                             line, rank);
        st = sv_commit(ctx, sv, (int)rank, (size_t)nb);
        if (st) return st;
        count++;
    }
    if (count != sv->n)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: ranks are not 0 .. %d without gaps", sv->name,
                         count - 1);
    return TOLK_OK;
}

/* vocabulary.txt: one token per line in byte-to-unicode form. */
static tolk_status parse_lines(tolk_ctx *ctx, srcvocab *sv, const char *buf, size_t len) {
    int16_t rev[324];
    byte_decoder(rev);
    size_t i = 0;
    int id = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        size_t b = e;
        if (b > i && buf[b - 1] == '\r') b--;
        tolk_status st = sv_set_text(ctx, sv, id, buf + i, b - i, rev);
        if (st) return st;
        id++;
        i = e + 1;
    }
    return TOLK_OK;
}

static tolk_status json_parse(tolk_ctx *ctx, const char *name, const char *buf, size_t len,
                              cJSON **out) {
    *out = cJSON_ParseWithLength(buf, len);
    if (!*out) return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not valid JSON", name);
    return TOLK_OK;
}

/* vocabulary.json: an array of strings in byte-to-unicode form. */
static tolk_status parse_json_array(tolk_ctx *ctx, srcvocab *sv, const cJSON *arr) {
    int16_t rev[324];
    byte_decoder(rev);
    int id = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it) || !it->valuestring)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: entry %d is not a string", sv->name, id);
        tolk_status st = sv_set_text(ctx, sv, id, it->valuestring, strlen(it->valuestring), rev);
        if (st) return st;
        id++;
    }
    return TOLK_OK;
}

static int json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= TOK_MAX_ID ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    return (int)v->valuedouble;
}

/* tokenizer.json: model.vocab {text: id} in byte-to-unicode form, and
 * added_tokens [{id, content}] as literal text. */
static tolk_status parse_tokenizer_json(tolk_ctx *ctx, srcvocab *sv, const cJSON *root) {
    int16_t rev[324];
    byte_decoder(rev);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsObject(vocab))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: no model.vocab object", sv->name);
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0))
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: model type is not BPE", sv->name);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int id = json_id(it);
        if (id < 0 || !it->string)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: bad id in model.vocab", sv->name);
        tolk_status st = sv_set_text(ctx, sv, id, it->string, strlen(it->string), rev);
        if (st) return st;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        int id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (id < 0 || !cJSON_IsString(content) || !content->valuestring)
            return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: bad entry in added_tokens", sv->name);
        tolk_status st =
            sv_set_raw(ctx, sv, id, content->valuestring, strlen(content->valuestring));
        if (st) return st;
    }
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Building the tokenizer from a source vocabulary                          */
/* ------------------------------------------------------------------------ */

/* Canonical text of special id for layout (n_base, n_lang) into buf[64]. */
static size_t special_text(int id, int n_base, int n_lang, char *buf) {
    static const char *const after_lang[6] = {"<|translate|>", "<|transcribe|>",
                                              "<|startoflm|>", "<|startofprev|>",
                                              "<|nospeech|>",  "<|notimestamps|>"};
    int k = id - n_base;
    int w;
    if (k == 0)
        w = snprintf(buf, 64, "<|endoftext|>");
    else if (k == 1)
        w = snprintf(buf, 64, "<|startoftranscript|>");
    else if (k < 2 + n_lang)
        w = snprintf(buf, 64, "<|%s|>", k_lang[k - 2][0]);
    else if (k < 8 + n_lang)
        w = snprintf(buf, 64, "%s", after_lang[k - 2 - n_lang]);
    else {
        int cs = 2 * (k - 8 - n_lang); /* centiseconds */
        w = snprintf(buf, 64, "<|%d.%02d|>", cs / 100, cs % 100);
    }
    return w > 0 ? (size_t)w : 0;
}

static int sv_has(const srcvocab *sv, int id, const char *text) {
    size_t n = strlen(text);
    return id < sv->n && sv->len[id] == n && memcmp(sv->blob + sv->off[id], text, n) == 0;
}

/* Whether the file's token id is the special `text`, or a name older files
 * use for it: <|nocaptions|> for <|nospeech|>, <|iw|> for <|he|>. */
static int sv_has_special(const srcvocab *sv, int id, const char *text) {
    return sv_has(sv, id, text) ||
           (strcmp(text, "<|nospeech|>") == 0 && sv_has(sv, id, "<|nocaptions|>")) ||
           (strcmp(text, "<|he|>") == 0 && sv_has(sv, id, "<|iw|>"));
}

static tolk_status compute_non_speech(tolk_tokenizer *t);

/* Build from sv. n_vocab: 0 or the model's size. tiktoken_multi: -1, or the
 * caller's multilingual flag for a rank file (which has no special tokens). */
static tolk_status tok_build(tolk_ctx *ctx, srcvocab *sv, int n_vocab, int tiktoken_multi,
                             tolk_tokenizer **out) {
    const char *name = sv->name;
    int n_base = sv->n, n_lang, multi;
    if (tiktoken_multi < 0)
        for (int id = 0; id < sv->n; id++)
            if (sv_has(sv, id, "<|endoftext|>")) {
                n_base = id;
                break;
            }
    if (n_base < 256)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: only %d ordinary tokens", name, n_base);
    if (n_vocab < 0) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: n_vocab < 0", name);
    if (n_vocab > 0) {
        multi = tolk_vocab_is_multilingual(n_vocab);
        n_lang = n_vocab - 51765 - multi;
        if (n_lang < 1 || n_lang > TOLK_TOK_MAX_LANGUAGES)
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED, "%s: n_vocab %d is not a Whisper size",
                             name, n_vocab);
        if (n_vocab - 1509 - n_lang != n_base)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: %d ordinary tokens, but n_vocab %d implies %d", name, n_base,
                             n_vocab, n_vocab - 1509 - n_lang);
    } else {
        n_lang = 0;
        while (n_lang < TOLK_TOK_MAX_LANGUAGES) {
            char buf[64];
            special_text(n_base + 2 + n_lang, n_base, TOLK_TOK_MAX_LANGUAGES, buf);
            if (!sv_has_special(sv, n_base + 2 + n_lang, buf)) break;
            n_lang++;
        }
        if (n_lang == 0) n_lang = 99;
        n_vocab = n_base + 1509 + n_lang;
        multi = tolk_vocab_is_multilingual(n_vocab);
    }
    if (tiktoken_multi >= 0 && tiktoken_multi != multi)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "%s: a %s vocabulary, but multilingual=%d",
                         name, multi ? "multilingual" : "English-only", tiktoken_multi);
    if (sv->n > n_vocab)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: %d tokens, more than n_vocab %d", name, sv->n,
                         n_vocab);

    tolk_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    t->n_vocab = n_vocab;
    t->n_base = n_base;
    t->multilingual = multi;
    tolk_special_tokens *sp = &t->sp;
    sp->eot = n_base;
    sp->sot = n_base + 1;
    sp->n_languages = n_lang;
    for (int i = 0; i < n_lang; i++)
        sp->lang[i] = n_base + 2 + i;
    sp->translate = n_base + 2 + n_lang;
    sp->transcribe = sp->translate + 1;
    sp->sot_lm = sp->translate + 2;
    sp->sot_prev = sp->translate + 3;
    sp->no_speech = sp->translate + 4;
    sp->no_timestamps = sp->translate + 5;
    sp->timestamp_begin = sp->translate + 6;
    sp->timestamp_end = sp->timestamp_begin + TOLK_TOK_N_TIMESTAMPS - 1;

    /* Offsets and bytes: ordinary tokens from the file, specials from the
     * layout (checked against the file where it has them). */
    tolk_status st = TOLK_OK;
    size_t total = 0;
    for (int id = 0; id < n_base; id++)
        if (sv->len[id] != UINT32_MAX) total += sv->len[id];
    total += (size_t)(n_vocab - n_base) * 24 + 1;
    t->off = tolk_malloc_array((size_t)n_vocab + 1, sizeof *t->off);
    t->blob = malloc(total);
    size_t slots = 1;
    while (slots < (size_t)n_vocab * 2)
        slots *= 2;
    t->ht = tolk_malloc_array(slots, sizeof *t->ht);
    if (!t->off || !t->blob || !t->ht) {
        st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    t->ht_mask = (uint32_t)(slots - 1);
    size_t pos = 0;
    for (int id = 0; id < n_vocab; id++) {
        t->off[id] = (uint32_t)pos;
        if (id < n_base) {
            if (sv->len[id] != UINT32_MAX) {
                memcpy(t->blob + pos, sv->blob + sv->off[id], sv->len[id]);
                pos += sv->len[id];
            }
            continue;
        }
        char buf[64];
        size_t n = special_text(id, n_base, n_lang, buf);
        if (id < sv->n && sv->len[id] != UINT32_MAX && !sv_has_special(sv, id, buf)) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: token %d is not %s as n_vocab %d implies",
                           name, id, buf, n_vocab);
            goto fail;
        }
        memcpy(t->blob + pos, buf, n);
        pos += n;
    }
    t->off[n_vocab] = (uint32_t)pos;
    t->blob[pos] = 0;

    /* Hash of bytes -> lowest id; one-byte tokens. */
    memset(t->ht, 0xff, slots * sizeof *t->ht);
    for (int b = 0; b < 256; b++)
        t->byte_tok[b] = -1;
    for (int id = 0; id < n_vocab; id++) {
        size_t n = tok_len(t, id);
        const uint8_t *p = t->blob + t->off[id];
        if (n == 0) continue;
        if (n == 1 && id < n_base && t->byte_tok[p[0]] < 0) t->byte_tok[p[0]] = id;
        uint32_t h = (uint32_t)hash_bytes(p, n) & t->ht_mask;
        int dup = 0;
        while (t->ht[h] >= 0) {
            int o = t->ht[h];
            if (tok_len(t, o) == n && memcmp(t->blob + t->off[o], p, n) == 0) dup = 1;
            if (dup) break;
            h = (h + 1) & t->ht_mask;
        }
        if (!dup) t->ht[h] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_tok[b] < 0) {
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: no token for byte 0x%02x", name, b);
            goto fail;
        }

    int err = 0;
    PCRE2_SIZE eoff = 0;
    t->re = pcre2_compile((PCRE2_SPTR)k_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &eoff, NULL);
    if (!t->re) {
        st = tolk_fail(ctx, TOLK_ERR_INTERNAL, "tokenizer: pre-tokenizer does not compile (%d)",
                       err);
        goto fail;
    }
    (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* the interpreter otherwise */

    st = compute_non_speech(t);
    if (st) {
        st = tolk_fail(ctx, st, "%s: cannot compute the non-speech tokens", name);
        goto fail;
    }
    *out = t;
    return TOLK_OK;
fail:
    tolk_tokenizer_free(t);
    return st;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* kind: 't' tiktoken, 'j' JSON (object or array), 'l' lines, 0 by name. */
static tolk_status new_from_path(tolk_ctx *ctx, const char *path, int n_vocab, int kind,
                                 int tiktoken_multi, tolk_tokenizer **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!path) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: path is NULL");
    if (kind == 0) kind = ends_with(path, ".tiktoken") ? 't' : ends_with(path, ".json") ? 'j' : 'l';
    char *buf = NULL;
    size_t len = 0;
    tolk_status st = read_file(ctx, path, &buf, &len);
    if (st) return st;
    srcvocab sv = {.name = path};
    cJSON *root = NULL;
    if (kind == 't') {
        st = parse_tiktoken(ctx, &sv, buf, len);
    } else if (kind == 'j') {
        st = json_parse(ctx, path, buf, len, &root);
        if (!st && cJSON_IsArray(root))
            st = parse_json_array(ctx, &sv, root);
        else if (!st && cJSON_IsObject(root))
            st = parse_tokenizer_json(ctx, &sv, root);
        else if (!st)
            st = tolk_fail(ctx, TOLK_ERR_FORMAT,
                           "%s: neither a tokenizer nor a "
                           "vocabulary",
                           path);
    } else {
        st = parse_lines(ctx, &sv, buf, len);
    }
    cJSON_Delete(root);
    free(buf);
    if (!st) st = tok_build(ctx, &sv, n_vocab, kind == 't' ? tiktoken_multi : -1, out);
    sv_free(&sv);
    return st;
}

tolk_status tolk_tokenizer_new_from_file(tolk_ctx *ctx, const char *path, int n_vocab,
                                         tolk_tokenizer **out) {
    return new_from_path(ctx, path, n_vocab, 0, -1, out);
}

tolk_status tolk_tokenizer_new_from_tiktoken(tolk_ctx *ctx, const char *path, int multilingual,
                                             int n_vocab, tolk_tokenizer **out) {
    if (multilingual != 0 && multilingual != 1)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: multilingual must be 0 or 1");
    return new_from_path(ctx, path, n_vocab, 't', multilingual, out);
}

tolk_status tolk_tokenizer_new_from_dir(tolk_ctx *ctx, const char *dir, int n_vocab,
                                        tolk_tokenizer **out) {
    static const char *const names[3] = {"tokenizer.json", "vocabulary.json", "vocabulary.txt"};
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!dir) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: dir is NULL");
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(dir) + strlen(names[i]) + 2;
        char *p = malloc(n);
        if (!p) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", dir);
        snprintf(p, n, "%s/%s", dir, names[i]);
        struct stat stt;
        if (stat(p, &stt) == 0 && S_ISREG(stt.st_mode)) {
            tolk_status st = new_from_path(ctx, p, n_vocab, i < 2 ? 'j' : 'l', -1, out);
            free(p);
            return st;
        }
        free(p);
    }
    return tolk_fail(ctx, TOLK_ERR_IO, "%s: no tokenizer.json, vocabulary.json or vocabulary.txt",
                     dir);
}

tolk_status tolk_tokenizer_new_from_vocab(tolk_ctx *ctx, const tolk_vocab *v, int n_vocab,
                                          tolk_tokenizer **out) {
    if (!out) return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!v || v->n <= 0 || !v->tokens || !v->lengths)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tokenizer: empty model vocabulary");
    srcvocab sv = {.name = "model vocabulary"};
    int16_t rev[324];
    byte_decoder(rev);
    tolk_status st = TOLK_OK;
    for (int id = 0; id < v->n && !st; id++) {
        if (!v->tokens[id] && v->lengths[id])
            st = tolk_fail(ctx, TOLK_ERR_FORMAT, "model vocabulary: token %d is NULL", id);
        else if (v->raw_bytes)
            st = sv_set_raw(ctx, &sv, id, v->tokens[id], v->lengths[id]);
        else
            st = sv_set_text(ctx, &sv, id, v->tokens[id] ? v->tokens[id] : "", v->lengths[id], rev);
    }
    if (!st) st = tok_build(ctx, &sv, n_vocab, -1, out);
    sv_free(&sv);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct idvec {
    int *v;
    size_t n, cap;
} idvec;

static int iv_push(idvec *iv, int id) {
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 64;
        int *v = tolk_malloc_array(cap, sizeof *v);
        if (!v) return 0;
        if (iv->n) memcpy(v, iv->v, iv->n * sizeof *v);
        free(iv->v);
        iv->v = v;
        iv->cap = cap;
    }
    iv->v[iv->n++] = id;
    return 1;
}

/* tiktoken's merge loop, literally: part boundaries b[0..np], rank of each
 * adjacent pair, merge the lowest (leftmost on ties), update two ranks.
 * O(n^2); scratch holds 2(n+1) uint32. */
static int bpe_linear(const tolk_tokenizer *t, const uint8_t *p, size_t n, uint32_t *b,
                      idvec *out) {
    uint32_t *r = b + n + 1; /* r[i]: rank of parts i, i+1 as unsigned; UINT32_MAX none */
    size_t np = n;           /* parts */
    for (size_t i = 0; i <= n; i++)
        b[i] = (uint32_t)i;
    for (size_t i = 0; i + 1 < np; i++)
        r[i] = (uint32_t)rank_of(t, p + i, 2);
    for (;;) {
        uint32_t best = UINT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < np; i++)
            if (r[i] < best) {
                best = r[i];
                bi = i;
            }
        if (best == UINT32_MAX) break;
        memmove(b + bi + 1, b + bi + 2, (np - bi - 1) * sizeof *b);
        if (np >= bi + 3) memmove(r + bi + 1, r + bi + 2, (np - bi - 3) * sizeof *r);
        np--;
        if (bi + 1 < np) r[bi] = (uint32_t)rank_of(t, p + b[bi], b[bi + 2] - b[bi]);
        if (bi > 0) r[bi - 1] = (uint32_t)rank_of(t, p + b[bi - 1], b[bi + 1] - b[bi - 1]);
    }
    for (size_t i = 0; i < np; i++)
        if (!iv_push(out, rank_of(t, p + b[i], b[i + 1] - b[i]))) return 0;
    return 1;
}

typedef struct heap_ent {
    uint32_t rank, left, vl, vr; /* pair (left, next[left]) at versions vl, vr */
} heap_ent;

static int he_less(const heap_ent *a, const heap_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!he_less(&e, &h[par])) break;
        h[i] = h[par];
        i = par;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && he_less(&h[c + 1], &h[c])) c++;
        if (!he_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The same merges in O(n log n): a linked list of parts (a part is named
 * by its first byte and keeps it when it absorbs its right neighbour) and
 * a heap of candidate pairs ordered by (rank, position), stale entries
 * recognised by version counters. */
static int bpe_heap(const tolk_tokenizer *t, const uint8_t *p, size_t n, idvec *out) {
    uint32_t *next = tolk_malloc_array(n, sizeof *next);
    uint32_t *ver = tolk_calloc_array(n, sizeof *ver);
    uint32_t *prev = tolk_malloc_array(n, sizeof *prev);
    heap_ent *h = tolk_malloc_array(3 * n, sizeof *h); /* n-1 initial + 2 per merge */
    int ok = next && ver && prev && h;
    size_t hn = 0;
    for (size_t i = 0; ok && i < n; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = (uint32_t)i - 1u; /* UINT32_MAX for the first */
        if (i + 1 < n) {
            int r = rank_of(t, p + i, 2);
            if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, (uint32_t)i, 0, 0});
        }
    }
    while (ok && hn) {
        heap_ent e = heap_pop(h, &hn);
        uint32_t L = e.left, R = next[L];
        if (ver[L] != e.vl || R >= n || ver[R] != e.vr || ver[L] == UINT32_MAX) continue;
        next[L] = next[R];
        if (next[R] < n) prev[next[R]] = L;
        ver[L]++;
        ver[R] = UINT32_MAX; /* dead */
        uint32_t Pv = prev[L], N = next[L];
        if (Pv != UINT32_MAX) {
            int r = rank_of(t, p + Pv, N - Pv);
            if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, Pv, ver[Pv], ver[L]});
        }
        if (N < n) {
            uint32_t NN = next[N];
            int r = rank_of(t, p + L, NN - L);
            if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, L, ver[L], ver[N]});
        }
    }
    for (uint32_t i = 0; ok && i < n; i = next[i])
        ok = iv_push(out, rank_of(t, p + i, next[i] - i));
    free(next);
    free(ver);
    free(prev);
    free(h);
    return ok;
}

/* One pre-token: the whole piece when it is a token, else merges.
 * mode: 0 automatic, 1 linear, 2 heap. Returns 0 when out of memory. */
static int bpe_piece(const tolk_tokenizer *t, const uint8_t *p, size_t n, int mode, idvec *out) {
    if (n == 0) return 1;
    int id = rank_of(t, p, n);
    if (id >= 0) return iv_push(out, id);
    if (mode == 2 || (mode == 0 && n > TOK_LINEAR_MAX)) return bpe_heap(t, p, n, out);
    uint32_t stack[2 * (TOK_LINEAR_MAX + 1)];
    uint32_t *b = n <= TOK_LINEAR_MAX ? stack : tolk_malloc_array(2 * (n + 1), sizeof *b);
    if (!b) return 0;
    int ok = bpe_linear(t, p, n, b, out);
    if (b != stack) free(b);
    return ok;
}

tolk_status tolk_tokenizer_bpe_piece(const tolk_tokenizer *t, const uint8_t *p, size_t n, int mode,
                                     int **ids, size_t *n_ids) {
    idvec iv = {0};
    if (!t || (!p && n) || !ids || !n_ids) return TOLK_ERR_INVALID_ARG;
    if (!bpe_piece(t, p, n, mode, &iv) || (!iv.v && !(iv.v = calloc(1, sizeof *iv.v)))) {
        free(iv.v);
        return TOLK_ERR_NOMEM;
    }
    *ids = iv.v;
    *n_ids = iv.n;
    return TOLK_OK;
}

tolk_status tolk_tokenizer_encode(const tolk_tokenizer *t, const char *text, size_t len, int **ids,
                                  size_t *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len)) return TOLK_ERR_INVALID_ARG;
    const uint8_t *s = (const uint8_t *)text;
    if (len && !utf8_valid(s, len)) return TOLK_ERR_INVALID_ARG;
    idvec iv = {0};
    tolk_status st = TOLK_OK;
    pcre2_match_data *md = len ? pcre2_match_data_create_from_pattern(t->re, NULL) : NULL;
    if (len && !md) st = TOLK_ERR_NOMEM;
    size_t off = 0;
    uint32_t opts = PCRE2_NO_UTF_CHECK; /* checked above, once */
    while (!st && off < len) {
        int rc = pcre2_match(t->re, s, len, off, opts, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) {
            opts |= PCRE2_NO_JIT; /* a very long run: the interpreter has no such limit */
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = rc == PCRE2_ERROR_NOMEMORY ? TOLK_ERR_NOMEM : TOLK_ERR_INTERNAL;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= off || ov[0] < off || ov[1] > len) {
            st = TOLK_ERR_INTERNAL; /* the expression never matches empty */
            break;
        }
        if (!bpe_piece(t, s + ov[0], ov[1] - ov[0], 0, &iv)) st = TOLK_ERR_NOMEM;
        off = ov[1];
        opts &= ~(uint32_t)PCRE2_NO_JIT;
    }
    if (md) pcre2_match_data_free(md);
    if (!st && !iv.v && !(iv.v = calloc(1, sizeof *iv.v))) st = TOLK_ERR_NOMEM;
    if (st) {
        free(iv.v);
        return st;
    }
    *ids = iv.v;
    *n = iv.n;
    return TOLK_OK;
}

/* First token of encode(s), or -1. */
static int first_token(const tolk_tokenizer *t, const char *s, size_t *count, tolk_status *st) {
    int *ids = NULL;
    size_t n = 0;
    *st = tolk_tokenizer_encode(t, s, strlen(s), &ids, &n);
    int id = (!*st && n) ? ids[0] : -1;
    *count = n;
    free(ids);
    return id;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The reference's non_speech_tokens: symbols that are one token alone or
 * after a space, the first token of the musical symbols U+2669..U+266F,
 * and the first token of " -" and " '". */
static tolk_status compute_non_speech(tolk_tokenizer *t) {
    static const char *const symbols[] = {
        "\"",
        "#",
        "(",
        ")",
        "*",
        "+",
        "/",
        ":",
        ";",
        "<",
        "=",
        ">",
        "@",
        "[",
        "\\",
        "]",
        "^",
        "_",
        "`",
        "{",
        "|",
        "}",
        "~",
        "\xe3\x80\x8c",
        "\xe3\x80\x8d",
        "\xe3\x80\x8e",
        "\xe3\x80\x8f", /* corner brackets 「」『』 */
        "<<",
        ">>",
        "<<<",
        ">>>",
        "--",
        "---",
        "-(",
        "-[",
        "('",
        "(\"",
        "((",
        "))",
        "(((",
        ")))",
        "[[",
        "]]",
        "{{",
        "}}",
        "\xe2\x99\xaa\xe2\x99\xaa",
        "\xe2\x99\xaa\xe2\x99\xaa\xe2\x99\xaa", /* two and three U+266A */
    };
    int ids[2 + 2 * (sizeof symbols / sizeof symbols[0] + 7)];
    size_t n = 0, count;
    tolk_status st;
    char buf[16];
    ids[n++] = first_token(t, " -", &count, &st);
    if (st) return st;
    ids[n++] = first_token(t, " '", &count, &st);
    if (st) return st;
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0] + 7; i++) {
        int misc = i >= sizeof symbols / sizeof symbols[0];
        if (misc) { /* U+2669 + k as UTF-8 */
            unsigned cp = 0x2669 + (unsigned)(i - sizeof symbols / sizeof symbols[0]);
            buf[1] = (char)(0xE0 | (cp >> 12));
            buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[3] = (char)(0x80 | (cp & 0x3F));
            buf[4] = 0;
        } else {
            snprintf(buf + 1, sizeof buf - 1, "%s", symbols[i]);
        }
        buf[0] = ' ';
        for (int sp = 0; sp < 2; sp++) {
            int id = first_token(t, sp ? buf : buf + 1, &count, &st);
            if (st) return st;
            if (id >= 0 && (count == 1 || misc)) ids[n++] = id;
        }
    }
    qsort(ids, n, sizeof ids[0], cmp_int);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && (u == 0 || ids[i] != ids[u - 1])) ids[u++] = ids[i];
    t->non_speech = tolk_malloc_array(u ? u : 1, sizeof *t->non_speech);
    if (!t->non_speech) return TOLK_ERR_NOMEM;
    memcpy(t->non_speech, ids, u * sizeof ids[0]);
    t->n_non_speech = u;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

static int keep_id(const tolk_tokenizer *t, int id, int flags) {
    if (flags & TOLK_DECODE_TEXT_ONLY) return id < t->sp.eot;
    if (flags & TOLK_DECODE_TIMESTAMPS) return 1;
    return id < t->sp.timestamp_begin;
}

tolk_status tolk_tokenizer_decode_ex(const tolk_tokenizer *t, const int *ids, size_t n, int flags,
                                     char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || (!ids && n) || (flags & ~3)) return TOLK_ERR_INVALID_ARG;
    size_t raw = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return TOLK_ERR_INVALID_ARG;
        if (keep_id(t, ids[i], flags)) raw += tok_len(t, ids[i]); /* < 2^32 per id, no wrap */
    }
    size_t cap;
    if (!tolk_mul_size(raw, 4, &cap) || !tolk_add_size(cap, 1, &cap)) return TOLK_ERR_NOMEM;
    uint8_t *buf = malloc(cap); /* raw bytes at the end, sanitised text from the start */
    if (!buf) return TOLK_ERR_NOMEM;
    uint8_t *in = buf + 3 * raw + 1;
    size_t p = 0, held;
    for (size_t i = 0; i < n; i++)
        if (keep_id(t, ids[i], flags)) {
            memcpy(in + p, t->blob + t->off[ids[i]], tok_len(t, ids[i]));
            p += tok_len(t, ids[i]);
        }
    size_t o = utf8_sanitize(in, raw, buf, 1, &held);
    buf[o] = 0;
    *text = (char *)buf;
    if (len) *len = o;
    return TOLK_OK;
}

tolk_status tolk_tokenizer_decode(const tolk_tokenizer *t, const int *ids, size_t n, char **text,
                                  size_t *len) {
    return tolk_tokenizer_decode_ex(t, ids, n, TOLK_DECODE_DEFAULT, text, len);
}

void tolk_detok_init(tolk_detok *d, const tolk_tokenizer *tok, int flags) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->flags = flags;
}

void tolk_detok_free(tolk_detok *d) {
    if (!d) return;
    free(d->buf);
    d->buf = NULL;
    d->cap = 0;
    d->n_tail = 0;
}

/* Sanitise tail + bytes[0, n) into d->buf; final: no holding back. */
static tolk_status detok_run(tolk_detok *d, const uint8_t *bytes, size_t n, int final,
                             const char **text, size_t *len) {
    size_t in_n = (size_t)d->n_tail + n, need;
    if (!tolk_mul_size(in_n, 4, &need) || !tolk_add_size(need, 4, &need)) return TOLK_ERR_NOMEM;
    if (need > d->cap) {
        size_t cap = need < 256 ? 256 : need;
        char *b = malloc(cap);
        if (!b) return TOLK_ERR_NOMEM;
        free(d->buf);
        d->buf = b;
        d->cap = cap;
    }
    uint8_t *in = (uint8_t *)d->buf + 3 * in_n + 1;
    memcpy(in, d->tail, (size_t)d->n_tail);
    if (n) memcpy(in + d->n_tail, bytes, n);
    size_t held;
    size_t o = utf8_sanitize(in, in_n, (uint8_t *)d->buf, final, &held);
    memcpy(d->tail, in + in_n - held, held); /* held <= 3 */
    d->n_tail = (int)held;
    d->buf[o] = 0;
    *text = d->buf;
    *len = o;
    return TOLK_OK;
}

tolk_status tolk_detok_push(tolk_detok *d, int id, const char **text, size_t *len) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!d || !d->tok || !text || !len || id < 0 || id >= d->tok->n_vocab)
        return TOLK_ERR_INVALID_ARG;
    const tolk_tokenizer *t = d->tok;
    if (!keep_id(t, id, d->flags)) return TOLK_OK;
    return detok_run(d, t->blob + t->off[id], tok_len(t, id), 0, text, len);
}

tolk_status tolk_detok_flush(tolk_detok *d, const char **text, size_t *len) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!d || !text || !len) return TOLK_ERR_INVALID_ARG;
    if (d->n_tail == 0) return TOLK_OK;
    return detok_run(d, NULL, 0, 1, text, len);
}

/*
 * test_tokenizer.c — the Whisper tokenizer against openai-whisper / tiktoken.
 *
 * Fixtures (tests/fixtures/make_tokens.py): encode.jsonl holds reference
 * texts (asr.tsv, translate.tsv, mixed scripts, emoji, whitespace) with the
 * multilingual and English-only reference ids; specials.json the special
 * ids, language tokens, non-speech set and decode results for n_vocab 51864,
 * 51865 and 51866. Model files (~/.cache/tolk/models) must give the same
 * tokenizer as the .tiktoken files.
 *
 * ctest-labels: models
 */
#include "tokenizer.h"
#include "internal.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

static tolk_tokenizer *tiktoken(int multilingual, int n_vocab) {
    tolk_tokenizer *t = NULL;
    const char *path = tu_data(multilingual ? "whisper-assets/multilingual.tiktoken"
                                            : "whisper-assets/gpt2.tiktoken");
    tolk_status st = tolk_tokenizer_new_from_tiktoken(NULL, path, multilingual, n_vocab, &t);
    CU_ASSERT_EQUAL(st, TOLK_OK);
    return t;
}

/* The fixture lines as cJSON objects. */
typedef struct fixture {
    cJSON **rec;
    int n;
} fixture;

static void fixture_load(fixture *fx) {
    size_t len = 0;
    char *buf = slurp(tu_src("tests/fixtures/tokens/encode.jsonl"), &len);
    fx->rec = NULL;
    fx->n = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    int cap = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (*line) {
            if (fx->n == cap) {
                cap = cap ? 2 * cap : 512;
                fx->rec = realloc(fx->rec, (size_t)cap * sizeof *fx->rec);
            }
            fx->rec[fx->n] = cJSON_Parse(line);
            CU_ASSERT_PTR_NOT_NULL_FATAL(fx->rec[fx->n]);
            fx->n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
}

static void fixture_free(fixture *fx) {
    for (int i = 0; i < fx->n; i++)
        cJSON_Delete(fx->rec[i]);
    free(fx->rec);
}

/* Compare encode(text) with the ids of field `key`; also the round trip.
 * Returns the number of mismatching texts. */
static int check_fixture(const tolk_tokenizer *t, const fixture *fx, const char *key) {
    int bad = 0;
    for (int i = 0; i < fx->n; i++) {
        const char *text = cJSON_GetObjectItem(fx->rec[i], "text")->valuestring;
        const cJSON *ref = cJSON_GetObjectItem(fx->rec[i], key);
        int *ids = NULL;
        size_t n = 0;
        size_t len = strlen(text);
        CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_encode(t, text, len, &ids, &n), TOLK_OK);
        int ok = (int)n == cJSON_GetArraySize(ref);
        for (size_t k = 0; ok && k < n; k++)
            ok = ids[k] == cJSON_GetArrayItem(ref, (int)k)->valueint;
        if (!ok && bad++ < 3) printf("\n  %s mismatch on text %d: %.60s\n", key, i, text);
        char *back = NULL;
        size_t blen = 0;
        CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, ids, n, &back, &blen), TOLK_OK);
        CU_ASSERT(back && blen == len && memcmp(back, text, len) == 0);
        tolk_free(back);
        tolk_free(ids);
    }
    return bad;
}

static void test_encode_reference(void) {
    fixture fx;
    fixture_load(&fx);
    CU_ASSERT(fx.n > 250);
    tolk_tokenizer *multi = tiktoken(1, 0), *en = tiktoken(0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(multi);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    CU_ASSERT_EQUAL(check_fixture(multi, &fx, "multi"), 0);
    CU_ASSERT_EQUAL(check_fixture(en, &fx, "en"), 0);
    /* large-v3 shares the ordinary tokens */
    tolk_tokenizer *v3 = tiktoken(1, 51866);
    CU_ASSERT_EQUAL(check_fixture(v3, &fx, "multi"), 0);
    tolk_tokenizer_free(v3);
    tolk_tokenizer_free(multi);
    tolk_tokenizer_free(en);
    fixture_free(&fx);
}

static int json_int(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    CU_ASSERT_PTR_NOT_NULL(v);
    return v ? v->valueint : -12345;
}

static void check_specials(const tolk_tokenizer *t, const cJSON *ref) {
    const tolk_special_tokens *sp = tolk_tokenizer_special(t);
    CU_ASSERT_EQUAL(tolk_tokenizer_n_vocab(t), json_int(ref, "n_vocab"));
    CU_ASSERT_EQUAL(tolk_tokenizer_is_multilingual(t), json_int(ref, "multilingual"));
    CU_ASSERT_EQUAL(sp->eot, json_int(ref, "eot"));
    CU_ASSERT_EQUAL(sp->sot, json_int(ref, "sot"));
    CU_ASSERT_EQUAL(sp->translate, json_int(ref, "translate"));
    CU_ASSERT_EQUAL(sp->transcribe, json_int(ref, "transcribe"));
    CU_ASSERT_EQUAL(sp->sot_lm, json_int(ref, "sot_lm"));
    CU_ASSERT_EQUAL(sp->sot_prev, json_int(ref, "sot_prev"));
    CU_ASSERT_EQUAL(sp->no_speech, json_int(ref, "no_speech"));
    CU_ASSERT_EQUAL(sp->no_timestamps, json_int(ref, "no_timestamps"));
    CU_ASSERT_EQUAL(sp->timestamp_begin, json_int(ref, "timestamp_begin"));
    CU_ASSERT_EQUAL(sp->timestamp_end, json_int(ref, "timestamp_end"));
    CU_ASSERT_EQUAL(sp->timestamp_end, tolk_tokenizer_n_vocab(t) - 1);
    const cJSON *lt = cJSON_GetObjectItem(ref, "language_tokens");
    const cJSON *lc = cJSON_GetObjectItem(ref, "language_codes");
    CU_ASSERT_EQUAL_FATAL(sp->n_languages, cJSON_GetArraySize(lt));
    for (int i = 0; i < sp->n_languages; i++) {
        const char *code = cJSON_GetArrayItem(lc, i)->valuestring;
        int id = cJSON_GetArrayItem(lt, i)->valueint;
        CU_ASSERT_EQUAL(sp->lang[i], id);
        CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, code), id);
        CU_ASSERT_STRING_EQUAL(tolk_tokenizer_lang_code(t, id), code);
        char text[32];
        snprintf(text, sizeof text, "<|%s|>", code);
        size_t len;
        const uint8_t *b = tolk_tokenizer_token_bytes(t, id, &len);
        CU_ASSERT(b && len == strlen(text) && memcmp(b, text, len) == 0);
        CU_ASSERT_EQUAL(tolk_tokenizer_token_id(t, text, strlen(text)), id);
    }
    const cJSON *ns = cJSON_GetObjectItem(ref, "non_speech");
    size_t n_ns = 0;
    const int *our = tolk_tokenizer_non_speech(t, &n_ns);
    CU_ASSERT_EQUAL_FATAL((int)n_ns, cJSON_GetArraySize(ns));
    for (size_t i = 0; i < n_ns; i++)
        CU_ASSERT_EQUAL(our[i], cJSON_GetArrayItem(ns, (int)i)->valueint);
    const cJSON *seq = cJSON_GetObjectItem(ref, "sot_sequence_fr_translate");
    if (cJSON_GetArraySize(seq) == 3) {
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(seq, 0)->valueint, sp->sot);
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(seq, 1)->valueint, tolk_tokenizer_lang_token(t, "fr"));
        CU_ASSERT_EQUAL(cJSON_GetArrayItem(seq, 2)->valueint, sp->translate);
    }
    /* decode_with_timestamps of [sot, <|0.00|>, 50, <|1.08|>, eot] */
    int ids[5] = {sp->sot, sp->timestamp_begin, 50, sp->timestamp_begin + 54, sp->eot};
    char *text = NULL;
    CU_ASSERT_EQUAL(tolk_tokenizer_decode_ex(t, ids, 5, TOLK_DECODE_TIMESTAMPS, &text, NULL),
                    TOLK_OK);
    CU_ASSERT_STRING_EQUAL(text, cJSON_GetObjectItem(ref, "decode_with_timestamps")->valuestring);
    tolk_free(text);
    /* the reference's decode drops timestamps; TEXT_ONLY drops every special */
    CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, ids, 5, &text, NULL), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(text, "<|startoftranscript|>S<|endoftext|>");
    tolk_free(text);
    CU_ASSERT_EQUAL(tolk_tokenizer_decode_ex(t, ids, 5, TOLK_DECODE_TEXT_ONLY, &text, NULL),
                    TOLK_OK);
    CU_ASSERT_STRING_EQUAL(text, "S");
    tolk_free(text);
    /* invalid and truncated UTF-8 as Python's errors="replace" */
    const cJSON *dc, *cases = cJSON_GetObjectItem(ref, "decode_bytes");
    CU_ASSERT(cJSON_GetArraySize(cases) >= 8);
    cJSON_ArrayForEach(dc, cases) {
        const cJSON *jids = cJSON_GetObjectItem(dc, "ids");
        int n = cJSON_GetArraySize(jids), v[16];
        CU_ASSERT_FATAL(n <= 16);
        for (int i = 0; i < n; i++)
            v[i] = cJSON_GetArrayItem(jids, i)->valueint;
        CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, v, (size_t)n, &text, NULL), TOLK_OK);
        CU_ASSERT_STRING_EQUAL(text, cJSON_GetObjectItem(dc, "text")->valuestring);
        tolk_free(text);
    }
}

static cJSON *load_specials(void) {
    char *buf = slurp(tu_src("tests/fixtures/tokens/specials.json"), NULL);
    CU_ASSERT_PTR_NOT_NULL(buf);
    cJSON *j = buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    CU_ASSERT_PTR_NOT_NULL(j);
    return j;
}

static void test_specials(void) {
    cJSON *all = load_specials();
    if (!all) return;
    const cJSON *ref;
    cJSON_ArrayForEach(ref, all) {
        int n_vocab = json_int(ref, "n_vocab");
        tolk_tokenizer *t = tiktoken(n_vocab >= 51865, n_vocab);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        check_specials(t, ref);
        tolk_tokenizer_free(t);
    }
    /* 0 = derived from the file: 99 languages */
    tolk_tokenizer *t = tiktoken(1, 0);
    CU_ASSERT_EQUAL(tolk_tokenizer_n_vocab(t), 51865);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "yue"), -1);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "English"), 50259);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "mandarin"), 50260);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "klingon"), -1);
    CU_ASSERT_PTR_NULL(tolk_tokenizer_lang_code(t, 50258));
    CU_ASSERT_PTR_NULL(tolk_tokenizer_token_bytes(t, 51865, NULL));
    CU_ASSERT_PTR_NULL(tolk_tokenizer_token_bytes(t, -1, NULL));
    size_t len;
    const uint8_t *b = tolk_tokenizer_token_bytes(t, 51864, &len);
    CU_ASSERT(b && len == 9 && memcmp(b, "<|30.00|>", 9) == 0);
    tolk_tokenizer_free(t);
    t = tiktoken(1, 51866);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "yue"), 50358);
    CU_ASSERT_EQUAL(tolk_tokenizer_lang_token(t, "cantonese"), 50358);
    tolk_tokenizer_free(t);
    CU_ASSERT_EQUAL(tolk_language_count(), 100);
    CU_ASSERT_STRING_EQUAL(tolk_language_code(99), "yue");
    CU_ASSERT_STRING_EQUAL(tolk_language_name(0), "english");
    CU_ASSERT_PTR_NULL(tolk_language_code(100));
    CU_ASSERT_EQUAL(tolk_language_index("castilian"), 3);
    cJSON_Delete(all);
}

/* Every id has the same bytes in a and b, and the same specials. */
static void check_same(const tolk_tokenizer *a, const tolk_tokenizer *b) {
    CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_n_vocab(a), tolk_tokenizer_n_vocab(b));
    CU_ASSERT(memcmp(tolk_tokenizer_special(a), tolk_tokenizer_special(b),
                     sizeof(tolk_special_tokens)) == 0);
    int diff = 0;
    for (int id = 0; id < tolk_tokenizer_n_vocab(a); id++) {
        size_t la, lb;
        const uint8_t *pa = tolk_tokenizer_token_bytes(a, id, &la);
        const uint8_t *pb = tolk_tokenizer_token_bytes(b, id, &lb);
        if (la != lb || memcmp(pa, pb, la) != 0) diff++;
    }
    CU_ASSERT_EQUAL(diff, 0);
    size_t na, nb;
    const int *sa = tolk_tokenizer_non_speech(a, &na), *sb = tolk_tokenizer_non_speech(b, &nb);
    CU_ASSERT(na == nb && memcmp(sa, sb, na * sizeof *sa) == 0);
}

static tolk_tokenizer *from_file(const char *dir, const char *name, int n_vocab) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tolk_ctx *ctx = NULL;
    tolk_ctx_new(NULL, &ctx);
    tolk_tokenizer *t = NULL;
    tolk_status st = tolk_tokenizer_new_from_file(ctx, path, n_vocab, &t);
    if (st) printf("\n  %s: %s\n", path, tolk_ctx_last_error(ctx));
    CU_ASSERT_EQUAL(st, TOLK_OK);
    tolk_ctx_free(ctx);
    return t;
}

static void test_model_sources(void) {
    const char *base = tu_require_model("base");
    if (!base) return;
    char base_dir[4096];
    snprintf(base_dir, sizeof base_dir, "%s", base);
    const char *alt = tu_require_model("base-alt");
    if (!alt) return;
    char alt_dir[4096];
    snprintf(alt_dir, sizeof alt_dir, "%s", alt);
    const char *tiny = tu_require_model("tiny.en");
    if (!tiny) return;
    char tiny_dir[4096];
    snprintf(tiny_dir, sizeof tiny_dir, "%s", tiny);

    fixture fx;
    fixture_load(&fx);
    tolk_tokenizer *ref = tiktoken(1, 51865), *ref_en = tiktoken(0, 51864);
    tolk_tokenizer *dir = NULL;
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_dir(NULL, base_dir, 51865, &dir), TOLK_OK);
    tolk_tokenizer *m[5] = {dir, from_file(base_dir, "vocabulary.txt", 51865),
                            from_file(alt_dir, "vocabulary.json", 51865),
                            from_file(alt_dir, "tokenizer.json", 0),
                            from_file(base_dir, "tokenizer.json", 0)};
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(m[i]);
        check_same(ref, m[i]);
        CU_ASSERT_EQUAL(check_fixture(m[i], &fx, "multi"), 0);
        tolk_tokenizer_free(m[i]);
    }
    tolk_tokenizer *e[3] = {NULL, from_file(tiny_dir, "vocabulary.txt", 0),
                            from_file(tiny_dir, "tokenizer.json", 51864)};
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_dir(NULL, tiny_dir, 51864, &e[0]), TOLK_OK);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(e[i]);
        check_same(ref_en, e[i]);
        CU_ASSERT_EQUAL(check_fixture(e[i], &fx, "en"), 0);
        tolk_tokenizer_free(e[i]);
    }
    /* a wrong n_vocab for the file */
    tolk_tokenizer *t = NULL;
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_dir(NULL, tiny_dir, 51865, &t), TOLK_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(t);
    tolk_tokenizer_free(ref);
    tolk_tokenizer_free(ref_en);
    fixture_free(&fx);
}

/* GPT-2 byte-to-unicode text of bytes p[0, n) into out (2n + 1 bytes). */
static void to_unicode_text(const uint8_t *p, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int b = p[i], cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) {
            cp = b;
        } else {
            int k = 0; /* rank of b among the non-printable bytes */
            for (int c = 0; c < b; c++)
                if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) k++;
            cp = 256 + k;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = 0;
}

/* The ggml-style embedded vocabulary (raw bytes, ordinary tokens only) and
 * the CT2 text form (every token) give the reference tokenizer. */
static void test_vocab_struct(void) {
    for (int multi = 0; multi < 2; multi++) {
        tolk_tokenizer *ref = tiktoken(multi, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        int nv = tolk_tokenizer_n_vocab(ref);
        for (int raw = 0; raw < 2; raw++) {
            tolk_vocab v = {0};
            v.n = raw ? tolk_tokenizer_special(ref)->eot : nv;
            v.raw_bytes = raw;
            v.tokens = calloc((size_t)v.n, sizeof *v.tokens);
            v.lengths = calloc((size_t)v.n, sizeof *v.lengths);
            for (int id = 0; id < v.n; id++) {
                size_t len;
                const uint8_t *b = tolk_tokenizer_token_bytes(ref, id, &len);
                v.tokens[id] = malloc(2 * len + 1);
                if (raw || id >= tolk_tokenizer_special(ref)->eot) {
                    memcpy(v.tokens[id], b, len);
                    v.tokens[id][len] = 0;
                } else {
                    to_unicode_text(b, len, v.tokens[id]);
                }
                v.lengths[id] = (uint32_t)strlen(v.tokens[id]);
                if (raw) v.lengths[id] = (uint32_t)len;
            }
            tolk_tokenizer *t = NULL;
            CU_ASSERT_EQUAL(tolk_tokenizer_new_from_vocab(NULL, &v, raw ? nv : 0, &t), TOLK_OK);
            if (t) check_same(ref, t);
            tolk_tokenizer_free(t);
            for (int id = 0; id < v.n; id++)
                free(v.tokens[id]);
            free(v.tokens);
            free(v.lengths);
        }
        tolk_tokenizer_free(ref);
    }
}

/* Streaming: every push is valid UTF-8, nothing is lost, and a character
 * split over single-byte tokens comes out whole on its last byte. */
static int valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = u[i] < 0x80 ? 1 : u[i] >= 0xF0 ? 4 : u[i] >= 0xE0 ? 3 : u[i] >= 0xC2 ? 2 : 0;
        if (!k || i + (size_t)k > n) return 0;
        for (int j = 1; j < k; j++)
            if ((u[i + (size_t)j] & 0xC0) != 0x80) return 0;
        i += (size_t)k;
    }
    return 1;
}

static void test_stream(void) {
    tolk_tokenizer *t = tiktoken(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    fixture fx;
    fixture_load(&fx);
    int split_seen = 0;
    for (int i = 0; i < fx.n; i++) {
        const char *text = cJSON_GetObjectItem(fx.rec[i], "text")->valuestring;
        int *ids = NULL;
        size_t n = 0, len = strlen(text);
        CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_encode(t, text, len, &ids, &n), TOLK_OK);
        tolk_detok d;
        tolk_detok_init(&d, t, TOLK_DECODE_DEFAULT);
        char *acc = malloc(len + 1);
        size_t got = 0;
        for (size_t k = 0; k < n; k++) {
            const char *piece;
            size_t plen;
            CU_ASSERT_EQUAL(tolk_detok_push(&d, ids[k], &piece, &plen), TOLK_OK);
            CU_ASSERT(valid_utf8(piece, plen));
            if (d.n_tail) split_seen++;
            CU_ASSERT_FATAL(got + plen <= len);
            memcpy(acc + got, piece, plen);
            got += plen;
        }
        const char *piece;
        size_t plen;
        CU_ASSERT_EQUAL(tolk_detok_flush(&d, &piece, &plen), TOLK_OK);
        CU_ASSERT_EQUAL(plen, 0);
        CU_ASSERT(got == len && memcmp(acc, text, len) == 0);
        free(acc);
        tolk_detok_free(&d);
        tolk_free(ids);
    }
    CU_ASSERT(split_seen > 0); /* the fixture does split characters across tokens */
    fixture_free(&fx);

    /* U+20AC as three byte tokens, then a truncated one at the end */
    const uint8_t bytes[5] = {0xE2, 0x82, 0xAC, 0xF0, 0x9F};
    tolk_detok d;
    tolk_detok_init(&d, t, TOLK_DECODE_DEFAULT);
    const char *piece;
    size_t plen;
    for (int k = 0; k < 5; k++) {
        int id = tolk_tokenizer_token_id(t, bytes + k, 1);
        CU_ASSERT_EQUAL(tolk_detok_push(&d, id, &piece, &plen), TOLK_OK);
        if (k == 2) CU_ASSERT(plen == 3 && memcmp(piece, "\xE2\x82\xAC", 3) == 0);
        if (k != 2) CU_ASSERT_EQUAL(plen, 0);
    }
    CU_ASSERT_EQUAL(tolk_detok_flush(&d, &piece, &plen), TOLK_OK);
    CU_ASSERT(plen == 3 && memcmp(piece, "\xEF\xBF\xBD", 3) == 0);
    /* a special token after a held-back byte: U+FFFD, then its text */
    int id = tolk_tokenizer_token_id(t, bytes, 1);
    CU_ASSERT_EQUAL(tolk_detok_push(&d, id, &piece, &plen), TOLK_OK);
    CU_ASSERT_EQUAL(plen, 0);
    CU_ASSERT_EQUAL(tolk_detok_push(&d, tolk_tokenizer_special(t)->eot, &piece, &plen), TOLK_OK);
    CU_ASSERT_STRING_EQUAL(piece, "\xEF\xBF\xBD<|endoftext|>");
    CU_ASSERT_EQUAL(tolk_detok_push(&d, tolk_tokenizer_special(t)->timestamp_begin, &piece, &plen),
                    TOLK_OK);
    CU_ASSERT_EQUAL(plen, 0); /* dropped, as decode() */
    CU_ASSERT_EQUAL(tolk_detok_push(&d, 51865, &piece, &plen), TOLK_ERR_INVALID_ARG);
    tolk_detok_free(&d);
    tolk_tokenizer_free(t);
}

/* The heap-ordered merge equals tiktoken's linear loop on long pieces. */
static void test_bpe_paths(void) {
    tolk_tokenizer *t = tiktoken(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    static const char *alphabets[4] = {"ab", "abcde ", "thequickbrownfx", "\xc3\xa9\xe3\x81\x82x"};
    tu_seed(7);
    uint8_t buf[3000];
    for (int trial = 0; trial < 200; trial++) {
        const char *alpha = alphabets[trial % 4];
        size_t na = strlen(alpha), n = 2 + (size_t)tu_uniform(0, trial < 100 ? 100 : 2990);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)alpha[(size_t)tu_uniform(0, (float)na)];
        int *a = NULL, *b = NULL;
        size_t na_ids, nb_ids;
        CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_bpe_piece(t, buf, n, 1, &a, &na_ids), TOLK_OK);
        CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_bpe_piece(t, buf, n, 2, &b, &nb_ids), TOLK_OK);
        CU_ASSERT(na_ids == nb_ids && memcmp(a, b, na_ids * sizeof *a) == 0);
        size_t total = 0; /* the parts cover the piece */
        for (size_t k = 0; k < nb_ids; k++) {
            size_t len;
            CU_ASSERT_PTR_NOT_NULL(tolk_tokenizer_token_bytes(t, b[k], &len));
            total += len;
        }
        CU_ASSERT_EQUAL(total, n);
        tolk_free(a);
        tolk_free(b);
    }
    tolk_tokenizer_free(t);
}

static void test_errors(void) {
    tolk_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(tolk_ctx_new(NULL, &ctx), TOLK_OK);
    tolk_tokenizer *t = (tolk_tokenizer *)1;
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_file(ctx, tu_tmp("missing.tiktoken"), 0, &t),
                    TOLK_ERR_IO);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "missing.tiktoken") != NULL);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_dir(ctx, tu_tmp(""), 0, &t), TOLK_ERR_IO);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_file(ctx, tu_tmp(""), 0, &t), TOLK_ERR_IO);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_dir(ctx, NULL, 0, &t), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_vocab(ctx, NULL, 0, &t), TOLK_ERR_INVALID_ARG);
    const char *ml = tu_data("whisper-assets/multilingual.tiktoken");
    const char *gpt2 = tu_data("whisper-assets/gpt2.tiktoken");
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_tiktoken(ctx, ml, 0, 0, &t), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_tiktoken(ctx, gpt2, 1, 0, &t), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_tiktoken(ctx, ml, 1, 51864, &t), TOLK_ERR_FORMAT);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_tiktoken(ctx, ml, 1, 50000, &t), TOLK_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_tiktoken(ctx, ml, 1, -5, &t), TOLK_ERR_INVALID_ARG);

    /* hostile small files */
    static const struct {
        const char *name, *content;
        tolk_status want;
    } bad[] = {
        {"a.tiktoken", "IQ== 0\nIg== 0\n", TOLK_ERR_FORMAT}, /* duplicate rank */
        {"b.tiktoken", "I!Q== 0\n", TOLK_ERR_FORMAT},        /* bad base64 */
        {"c.tiktoken", "IQ== 5\n", TOLK_ERR_FORMAT},         /* gap */
        {"d.tiktoken", "IQ== 99999999999999\n", TOLK_ERR_FORMAT},
        {"e.tiktoken", "IQ==\n", TOLK_ERR_FORMAT},
        {"f.tiktoken", "", TOLK_ERR_FORMAT},
        {"g.json", "{\"model\": {\"vocab\": {\"a\": -1}}}", TOLK_ERR_FORMAT},
        {"h.json", "[1, 2]", TOLK_ERR_FORMAT},
        {"i.json", "{\"model\": ", TOLK_ERR_FORMAT},
        {"j.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", TOLK_ERR_UNSUPPORTED},
        {"k.txt", "a\nb\n\xe2\x82\xac\n", TOLK_ERR_FORMAT}, /* outside the alphabet */
        {"l.txt", "a\nb\n", TOLK_ERR_FORMAT},               /* too few tokens */
        {"m.json", "\"x\"", TOLK_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = tu_tmp(bad[i].name);
        FILE *f = fopen(p, "wb");
        fputs(bad[i].content, f);
        fclose(f);
        t = NULL;
        tolk_status st = tolk_tokenizer_new_from_file(ctx, p, 0, &t);
        CU_ASSERT_EQUAL(st, bad[i].want);
        if (st != bad[i].want) printf("\n  %s: %d %s\n", bad[i].name, st, tolk_ctx_last_error(ctx));
        CU_ASSERT_PTR_NULL(t);
        tolk_tokenizer_free(t);
    }

    /* a vocabulary.txt with a wrong special token */
    t = tiktoken(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    const char *p = tu_tmp("vocabulary.txt");
    FILE *f = fopen(p, "wb");
    char line[128];
    for (int id = 0; id < 51865; id++) {
        size_t len;
        const uint8_t *b = tolk_tokenizer_token_bytes(t, id, &len);
        if (id == 50259) b = (const uint8_t *)"<|xx|>", len = 6;
        if (id < tolk_tokenizer_special(t)->eot)
            to_unicode_text(b, len, line);
        else
            snprintf(line, sizeof line, "%.*s", (int)len, (const char *)b);
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    tolk_tokenizer *u = NULL;
    CU_ASSERT_EQUAL(tolk_tokenizer_new_from_file(ctx, p, 51865, &u), TOLK_ERR_FORMAT);
    CU_ASSERT(strstr(tolk_ctx_last_error(ctx), "50259") != NULL);

    /* encode / decode argument checks */
    int *ids = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, "\xff", 1, &ids, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, "\xed\xa0\x80", 3, &ids, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, "ab\xe2\x82", 4, &ids, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, NULL, 3, &ids, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(NULL, "a", 1, &ids, &n), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, "", 0, &ids, &n), TOLK_OK);
    CU_ASSERT(ids != NULL && n == 0);
    tolk_free(ids);
    CU_ASSERT_EQUAL(tolk_tokenizer_encode(t, "a\0b", 3, &ids, &n), TOLK_OK); /* NUL is text */
    char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, ids, n, &text, &len), TOLK_OK);
    CU_ASSERT(len == 3 && memcmp(text, "a\0b", 3) == 0);
    tolk_free(text);
    tolk_free(ids);
    int badid[2] = {1, 51865};
    CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, badid, 2, &text, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_PTR_NULL(text);
    badid[1] = -1;
    CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, badid, 2, &text, NULL), TOLK_ERR_INVALID_ARG);
    CU_ASSERT_EQUAL(tolk_tokenizer_decode(t, NULL, 0, &text, &len), TOLK_OK);
    CU_ASSERT(text && len == 0 && text[0] == 0);
    tolk_free(text);
    CU_ASSERT_EQUAL(tolk_tokenizer_decode_ex(t, badid, 1, 8, &text, NULL), TOLK_ERR_INVALID_ARG);
    tolk_tokenizer_free(t);
    tolk_ctx_free(ctx);
}

/* One tokenizer shared by threads gives the same ids as one thread. */
typedef struct job {
    const tolk_tokenizer *t;
    const char *text;
    size_t len;
    int *ids;
    size_t n;
    tolk_status st;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        tolk_free(j->ids);
        j->st = tolk_tokenizer_encode(j->t, j->text, j->len, &j->ids, &j->n);
    }
    return NULL;
}

static char *long_text(size_t *len) {
    fixture fx;
    fixture_load(&fx);
    size_t cap = 16384, n = 0;
    char *s = malloc(cap);
    for (int i = 0; n < 10240 && i < 4 * fx.n; i++) {
        const char *t = cJSON_GetObjectItem(fx.rec[(i * 37) % fx.n], "text")->valuestring;
        size_t l = strlen(t);
        if (n + l + 2 > cap) break;
        memcpy(s + n, t, l);
        n += l;
        s[n++] = '\n';
    }
    s[n] = 0;
    *len = n;
    fixture_free(&fx);
    return s;
}

static void test_threads_and_speed(void) {
    tolk_tokenizer *t = tiktoken(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    size_t len;
    char *text = long_text(&len);
    int *ref = NULL;
    size_t n_ref = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CU_ASSERT_EQUAL_FATAL(tolk_tokenizer_encode(t, text, len, &ref, &n_ref), TOLK_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("\n  encode %zu bytes -> %zu ids: %.3f ms\n", len, n_ref,
           (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){t, text, len, NULL, 0, TOLK_OK};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(jobs[i].st, TOLK_OK);
        CU_ASSERT(jobs[i].n == n_ref && memcmp(jobs[i].ids, ref, n_ref * sizeof *ref) == 0);
        tolk_free(jobs[i].ids);
    }
    tolk_free(ref);
    free(text);
    tolk_tokenizer_free(t);
}

int main(void) {
    CU_TestInfo tests[] = {{"encode_reference", test_encode_reference},
                           {"specials", test_specials},
                           {"model_sources", test_model_sources},
                           {"vocab_struct", test_vocab_struct},
                           {"stream", test_stream},
                           {"bpe_paths", test_bpe_paths},
                           {"errors", test_errors},
                           {"threads_and_speed", test_threads_and_speed},
                           CU_TEST_INFO_NULL};
    tu_add_suite("tokenizer", tests);
    return tu_run();
}

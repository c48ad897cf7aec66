/*
 * spm.cpp — the C wrapper around Debian's libsentencepiece (spm.h): the
 * only C++ in the library. Every exception the library or the standard
 * library could throw (allocation failures) is caught here and returned as
 * an error, so nothing C++ crosses into the C code.
 *
 * Reference behaviour: marian-dev src/data/sentencepiece_vocab.cpp
 * (encode: SentencePieceProcessor::Encode to ids; decode: Decode of the
 * ids), which Bergamot and Firefox's translation models use.
 */
#include "spm.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct tolk_spm {
    sentencepiece::SentencePieceProcessor proc;
    int eos = -1;
    int unk = -1;
    int size = 0;
};

static void set_err(char *err, size_t cap, const char *fmt, const char *a, const char *b) {
    if (err && cap) std::snprintf(err, cap, fmt, a, b);
}

/* Finish a load: the special ids, a sane vocabulary. */
static int finish(tolk_spm *s, const char *what, tolk_spm **out, char *err, size_t cap) {
    s->size = s->proc.GetPieceSize();
    if (s->size < 1) {
        set_err(err, cap, "%s: empty SentencePiece vocabulary%s", what, "");
        delete s;
        return -1;
    }
    s->eos = s->proc.eos_id();
    s->unk = s->proc.unk_id();
    if (s->eos < 0 || s->eos >= s->size) s->eos = -1;
    if (s->unk < 0 || s->unk >= s->size) s->unk = -1;
    *out = s;
    return 0;
}

extern "C" int tolk_spm_load(const char *path, tolk_spm **out, char *err, size_t err_cap) {
    if (!out || !path) return -1;
    *out = nullptr;
    try {
        tolk_spm *s = new tolk_spm();
        auto st = s->proc.Load(path);
        if (!st.ok()) {
            set_err(err, err_cap, "%s: not a SentencePiece model (%s)", path,
                    st.ToString().c_str());
            delete s;
            return -1;
        }
        return finish(s, path, out, err, err_cap);
    } catch (const std::bad_alloc &) {
        set_err(err, err_cap, "%s: out of memory%s", path, "");
    } catch (...) {
        set_err(err, err_cap, "%s: SentencePiece failed%s", path, "");
    }
    return -1;
}

extern "C" int tolk_spm_load_memory(const void *data, size_t size, tolk_spm **out, char *err,
                                    size_t err_cap) {
    if (!out || (!data && size)) return -1;
    *out = nullptr;
    try {
        tolk_spm *s = new tolk_spm();
        std::string blob(static_cast<const char *>(data), size);
        auto st = s->proc.LoadFromSerializedProto(blob);
        if (!st.ok()) {
            set_err(err, err_cap, "%s: not a SentencePiece model (%s)", "<memory>",
                    st.ToString().c_str());
            delete s;
            return -1;
        }
        return finish(s, "<memory>", out, err, err_cap);
    } catch (...) {
        set_err(err, err_cap, "%s: SentencePiece failed%s", "<memory>", "");
    }
    return -1;
}

extern "C" void tolk_spm_free(tolk_spm *s) {
    delete s;
}

extern "C" int tolk_spm_size(const tolk_spm *s) {
    return s ? s->size : 0;
}
extern "C" int tolk_spm_eos_id(const tolk_spm *s) {
    return s ? s->eos : -1;
}
extern "C" int tolk_spm_unk_id(const tolk_spm *s) {
    return s ? s->unk : -1;
}

extern "C" const char *tolk_spm_piece(const tolk_spm *s, int id) {
    if (!s || id < 0 || id >= s->size) return nullptr;
    try {
        return s->proc.IdToPiece(id).c_str(); /* a reference into the model proto */
    } catch (...) {
        return nullptr;
    }
}

extern "C" int tolk_spm_encode(const tolk_spm *s, const char *text, size_t len, int **ids, int *n,
                               char *err, size_t err_cap) {
    if (!s || !ids || !n || (!text && len)) return -1;
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        auto st = s->proc.Encode(std::string(text ? text : "", len), &v);
        if (!st.ok()) {
            set_err(err, err_cap, "SentencePiece: cannot encode the text (%s)%s",
                    st.ToString().c_str(), "");
            return -1;
        }
        int *out = static_cast<int *>(std::malloc((v.size() ? v.size() : 1) * sizeof(int)));
        if (!out) {
            set_err(err, err_cap, "SentencePiece: out of memory%s%s", "", "");
            return -1;
        }
        if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(int));
        *ids = out;
        *n = static_cast<int>(v.size());
        return 0;
    } catch (...) {
        set_err(err, err_cap, "SentencePiece: out of memory%s%s", "", "");
    }
    return -1;
}

extern "C" int tolk_spm_decode(const tolk_spm *s, const int *ids, int n, char **text, char *err,
                               size_t err_cap) {
    if (!s || !text || n < 0 || (!ids && n)) return -1;
    *text = nullptr;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->size) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%d", ids[i]);
            set_err(err, err_cap, "SentencePiece: token id %s out of range%s", buf, "");
            return -1;
        }
    try {
        std::vector<int> v(ids, ids + n);
        std::string out;
        auto st = s->proc.Decode(v, &out);
        if (!st.ok()) {
            set_err(err, err_cap, "SentencePiece: cannot decode (%s)%s", st.ToString().c_str(), "");
            return -1;
        }
        char *r = static_cast<char *>(std::malloc(out.size() + 1));
        if (!r) {
            set_err(err, err_cap, "SentencePiece: out of memory%s%s", "", "");
            return -1;
        }
        std::memcpy(r, out.data(), out.size());
        r[out.size()] = '\0';
        *text = r;
        return 0;
    } catch (...) {
        set_err(err, err_cap, "SentencePiece: out of memory%s%s", "", "");
    }
    return -1;
}

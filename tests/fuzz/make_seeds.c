/*
 * make_seeds.c — writes the model seeds of the fuzz corpora
 * (tests/fuzz/corpus/{ct2,safetensors,ggml}/) in the input layouts of
 * fuzz_ct2.c, fuzz_safetensors.c and fuzz_ggml.c: tiny random-weight
 * Whisper models from tests/support/model_writer.c (4 mels, 16 tokens,
 * width 8, one layer per stack, contexts 4 / 2, as fuzz_safetensors.c's
 * default config), so that mutations start from inputs that load. Built and
 * run by tests/fuzz/make_corpus.sh; its outputs are committed.
 *
 *   make_seeds OUT_DIR
 */
#include "support/model_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole file into a new buffer; NULL on failure. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

/* Write parts (pointer, length pairs, NULL-terminated) to path. */
static int spit(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(a, 1, na, f) == na && (!b || fwrite(b, 1, nb, f) == nb);
    return fclose(f) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    const char *out = argv[1];
    char tmp[4096], path[4200], p2[4200];
    snprintf(tmp, sizeof tmp, "%s/.seeds-tmp", out);
    int rc = 0;
    for (int variant = 0; variant < 2; variant++) {
        mw_spec s = mw_spec_make(4, 16, 8, 1, 1);
        s.hp.n_audio_ctx = 4;
        s.hp.n_text_ctx = 2;
        s.write_vocab = 0;
        s.write_generation_config = 0;
        s.dtype = variant ? TOLK_DT_F32 : TOLK_DT_F16;
        s.dtype_1d = TOLK_DT_F32;
        s.seed = 5 + (uint64_t)variant;

        /* ct2: byte 0 odd, byte 1 = length of config.json, config, model.bin */
        if (mw_write_ct2(tmp, &s) != 0) return 1;
        size_t nc = 0, nb = 0;
        snprintf(p2, sizeof p2, "%s/config.json", tmp);
        unsigned char *cfg = slurp(p2, &nc);
        snprintf(p2, sizeof p2, "%s/model.bin", tmp);
        unsigned char *bin = slurp(p2, &nb);
        if (!bin || nc > 255) return 1;
        unsigned char *head = malloc(2 + nc);
        head[0] = 1;
        head[1] = (unsigned char)nc;
        if (nc) memcpy(head + 2, cfg, nc);
        snprintf(path, sizeof path, "%s/ct2/tiny-%s", out, variant ? "f32" : "f16");
        rc |= spit(path, head, 2 + nc, bin, nb);
        snprintf(path, sizeof path, "%s/ct2/tiny-%s-bin-only", out, variant ? "f32" : "f16");
        if (bin[0] & 1) bin[0] &= 0xFE; /* even first byte: the whole input is model.bin */
        rc |= spit(path, bin, nb, NULL, 0);
        free(head), free(cfg), free(bin);
        mw_remove_dir(tmp);

        /* safetensors: the file alone (fuzz_safetensors' built-in config) */
        if (mw_write_safetensors(tmp, &s) != 0) return 1;
        snprintf(p2, sizeof p2, "%s/model.safetensors", tmp);
        unsigned char *st = slurp(p2, &nb);
        if (!st) return 1;
        snprintf(path, sizeof path, "%s/safetensors/tiny-%s", out, variant ? "f32" : "f16");
        rc |= spit(path, st, nb, NULL, 0);
        free(st);
        mw_remove_dir(tmp);

        /* ggml: the file */
        snprintf(p2, sizeof p2, "%s/tiny.ggml", out);
        if (mw_write_ggml(p2, &s) != 0) return 1;
        unsigned char *gg = slurp(p2, &nb);
        if (!gg) return 1;
        snprintf(path, sizeof path, "%s/ggml/tiny-%s", out, variant ? "f32" : "f16");
        rc |= spit(path, gg, nb, NULL, 0);
        free(gg);
        remove(p2);
    }
    return rc ? 1 : 0;
}

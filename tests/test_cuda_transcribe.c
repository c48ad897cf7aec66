/*
 * test_cuda_transcribe.c — end to end on the GPU: the CUDA backend's
 * transcripts against the CPU path's, through the public API, on jfk and
 * the first English clips of the shared asr.tsv with tiny.en and base.
 *
 *   - FP32 parity mode (TOLK_COMPUTE_F32: float32 weights and products, no
 *     TF32): the same text and the same segment boundaries as the CPU, with
 *     the decode step captured in CUDA graphs and, again, run op by op
 *     (engine parameter cuda_graphs = 0); greedy with the fallback, and beam search 5.
 *   - FP16 mode (TOLK_COMPUTE_F16: half weights, tensor-core products and
 *     encoder attention): word error rate against the references within
 *     1.0 point of the CPU's on these clips (the 0.1-point bound is
 *     for the full set, measured by bench/suite; printed here).
 *
 * Clips: TOLK_GPU_CLIPS (default 8; jfk first). Without a CUDA device (or in
 * a CPU-only build) every test skips; without the models they skip (or fail
 * under TOLK_REQUIRE_MODELS).
 */
#include "decode.h"
#include "engine.h"
#include "internal.h"
#include "net.h"
#include "testutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TOLK_HAVE_CUDA

#define MAX_CLIPS 64

typedef struct clip {
    char path[1024];
    char ref[2048];
} clip;

/* jfk + the English rows of asr.tsv, up to n. */
static int load_clips(clip *c, int n) {
    FILE *f = fopen(tu_shared("speech/asr.tsv"), "r");
    if (!f) return 0;
    char line[8192];
    int k = 0;
    if (!fgets(line, sizeof line, f)) { /* header */
        fclose(f);
        return 0;
    }
    while (k < n && fgets(line, sizeof line, f)) {
        char *cols[5] = {0};
        char *p = line;
        for (int i = 0; i < 5 && p; i++) {
            cols[i] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        if (!cols[4] || strcmp(cols[1], "en") != 0) continue;
        snprintf(c[k].path, sizeof c[k].path, "%s", tu_shared("speech"));
        size_t l = strlen(c[k].path);
        snprintf(c[k].path + l, sizeof c[k].path - l, "/%s", cols[0]);
        snprintf(c[k].ref, sizeof c[k].ref, "%s", cols[4]);
        k++;
    }
    fclose(f);
    return k;
}

/* Lower-case words of s without punctuation (apostrophes kept). */
static int words(const char *s, char w[][32], int max) {
    int n = 0;
    while (*s && n < max) {
        while (*s && !isalnum((unsigned char)*s) && *s != '\'')
            s++;
        int k = 0;
        while (*s && (isalnum((unsigned char)*s) || *s == '\'')) {
            if (k < 31) w[n][k++] = (char)tolower((unsigned char)*s);
            s++;
        }
        if (k) w[n++][k] = '\0';
    }
    return n;
}

/* Word-level edit distance and the reference's word count. */
static void wer_counts(const char *hyp, const char *ref, long *errs, long *nref) {
    static char h[512][32], r[512][32];
    static int d[513][513];
    int nh = words(hyp, h, 512), nr = words(ref, r, 512);
    for (int i = 0; i <= nh; i++)
        d[i][0] = i;
    for (int j = 0; j <= nr; j++)
        d[0][j] = j;
    for (int i = 1; i <= nh; i++)
        for (int j = 1; j <= nr; j++) {
            int sub = d[i - 1][j - 1] + (strcmp(h[i - 1], r[j - 1]) != 0);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    *errs += d[nh][nr];
    *nref += nr;
}

typedef struct run {
    char *text[MAX_CLIPS];
    int n_seg[MAX_CLIPS];
    double seg_end[MAX_CLIPS]; /* last segment's end */
} run;

static void run_free(run *r, int n) {
    for (int i = 0; i < n; i++)
        free(r->text[i]);
}

/* Transcribe the clips on a device / precision into r (text strdup'd). */
static long g_captured, g_replayed, g_failed; /* graph counters of the last run */
static int g_graphs = 1;                      /* decoder steps as CUDA graphs */

static int transcribe_all(const char *model_dir, tolk_device dev, int compute, int beam,
                          const clip *c, int n, run *r) {
    tolk_ctx_params cp = tolk_ctx_default_params();
    cp.device = dev;
    tolk_ctx *ctx = NULL;
    if (tolk_ctx_new(&cp, &ctx) != TOLK_OK) return 0;
    tolk_model_params mp = tolk_model_default_params();
    mp.device = dev;
    mp.compute_type = compute;
    tolk_model *m = NULL;
    tolk_state *st = NULL;
    tolk_engine_params ep = tolk_engine_default_params();
    ep.cuda_graphs = g_graphs;
    int ok = tolk_model_load(ctx, model_dir, &mp, &m) == TOLK_OK &&
             tolk_state_new_ex(ctx, m, &ep, &st) == TOLK_OK;
    if (!ok)
        fprintf(stderr, "\n  load on %s: %s\n", dev == TOLK_DEVICE_CUDA ? "cuda" : "cpu",
                tolk_ctx_last_error(ctx));
    tolk_transcribe_params tp = tolk_transcribe_default_params();
    tp.language = "en";
    if (beam > 1) {
        tp.beam_size = beam;
        tp.best_of = beam;
    }
    for (int i = 0; ok && i < n; i++) {
        tolk_result *res = NULL;
        tolk_status s = tolk_transcribe_file(st, c[i].path, &tp, &res);
        if (s != TOLK_OK) {
            fprintf(stderr, "\n  %s: %s\n", c[i].path, tolk_state_last_error(st));
            ok = 0;
            break;
        }
        const int ns = tolk_result_n_segments(res);
        r->text[i] = strdup(tolk_result_text(res));
        r->n_seg[i] = ns;
        r->seg_end[i] = ns ? tolk_result_segment(res, ns - 1)->end : 0.0;
        tolk_result_free(res);
    }
    g_captured = g_replayed = g_failed = 0;
    if (st) tolk_kvcache_graph_stats(tolk_state_kvcache(st), &g_captured, &g_replayed, &g_failed);
    tolk_state_free(st);
    tolk_model_free(m);
    tolk_ctx_free(ctx);
    return ok;
}

static int n_clips(void) {
    const char *e = getenv("TOLK_GPU_CLIPS");
    int n = e ? atoi(e) : 8;
    return n < 1 ? 1 : n > MAX_CLIPS ? MAX_CLIPS : n;
}

static void check_model(const char *name) {
    if (!tolk_cuda_available()) {
        printf("  SKIPPED: no CUDA device\n");
        return;
    }
    const char *dir = tu_require_model(name);
    if (!dir) return;
    char model_dir[1024];
    snprintf(model_dir, sizeof model_dir, "%s", dir);
    static clip clips[MAX_CLIPS];
    int n = load_clips(clips, n_clips());
    CU_ASSERT_FATAL(n > 0);
    static run cpu, gpu, gpu_eager, f16, cpu_beam, gpu_beam;
    memset(&cpu, 0, sizeof cpu), memset(&gpu, 0, sizeof gpu), memset(&f16, 0, sizeof f16);
    memset(&gpu_eager, 0, sizeof gpu_eager), memset(&cpu_beam, 0, sizeof cpu_beam);
    memset(&gpu_beam, 0, sizeof gpu_beam);
    CU_ASSERT_FATAL(
        transcribe_all(model_dir, TOLK_DEVICE_CPU, TOLK_COMPUTE_F32, 0, clips, n, &cpu));
    CU_ASSERT(transcribe_all(model_dir, TOLK_DEVICE_CUDA, TOLK_COMPUTE_F32, 0, clips, n, &gpu));
    /* the single-token steps really ran as graph replays */
    printf("\n  graphs: %ld captured, %ld replays, %ld failed captures", g_captured, g_replayed,
           g_failed);
    CU_ASSERT(g_captured >= 1 && g_replayed > g_captured && g_failed == 0);
    g_graphs = 0;
    CU_ASSERT(
        transcribe_all(model_dir, TOLK_DEVICE_CUDA, TOLK_COMPUTE_F32, 0, clips, n, &gpu_eager));
    CU_ASSERT(g_captured == 0 && g_replayed == 0);
    g_graphs = 1;
    CU_ASSERT(transcribe_all(model_dir, TOLK_DEVICE_CUDA, TOLK_COMPUTE_F16, 0, clips, n, &f16));
    int nb = n < 3 ? n : 3;
    CU_ASSERT(
        transcribe_all(model_dir, TOLK_DEVICE_CPU, TOLK_COMPUTE_F32, 5, clips, nb, &cpu_beam));
    CU_ASSERT(
        transcribe_all(model_dir, TOLK_DEVICE_CUDA, TOLK_COMPUTE_F32, 5, clips, nb, &gpu_beam));

    int same = 0, same_eager = 0, same_f16 = 0, same_beam = 0;
    long e_cpu = 0, e_f16 = 0, nr_cpu = 0, nr_f16 = 0;
    for (int i = 0; i < n; i++) {
        if (!cpu.text[i]) continue;
        int s = gpu.text[i] && !strcmp(cpu.text[i], gpu.text[i]) && cpu.n_seg[i] == gpu.n_seg[i] &&
                cpu.seg_end[i] == gpu.seg_end[i];
        same += s;
        same_eager += gpu_eager.text[i] && !strcmp(cpu.text[i], gpu_eager.text[i]);
        same_f16 += f16.text[i] && !strcmp(cpu.text[i], f16.text[i]);
        if (!s)
            printf("\n  %s: FP32 differs\n    cpu: %s\n    gpu: %s", clips[i].path, cpu.text[i],
                   gpu.text[i] ? gpu.text[i] : "(none)");
        wer_counts(cpu.text[i], clips[i].ref, &e_cpu, &nr_cpu);
        if (f16.text[i]) wer_counts(f16.text[i], clips[i].ref, &e_f16, &nr_f16);
    }
    for (int i = 0; i < nb; i++)
        same_beam +=
            cpu_beam.text[i] && gpu_beam.text[i] && !strcmp(cpu_beam.text[i], gpu_beam.text[i]);
    double w_cpu = nr_cpu ? 100.0 * (double)e_cpu / (double)nr_cpu : 0.0;
    double w_f16 = nr_f16 ? 100.0 * (double)e_f16 / (double)nr_f16 : 0.0;
    printf("\n  GPU %s: %d clips; FP32 same text+segments %d, without graphs %d, beam 5 %d/%d; "
           "FP16 same text %d, WER cpu %.2f fp16 %.2f\n",
           name, n, same, same_eager, same_beam, nb, same_f16, w_cpu, w_f16);
    CU_ASSERT_EQUAL(same, n);
    CU_ASSERT_EQUAL(same_eager, n);
    CU_ASSERT_EQUAL(same_beam, nb);
    CU_ASSERT(w_f16 <= w_cpu + 1.0);
    run_free(&cpu, n), run_free(&gpu, n), run_free(&gpu_eager, n), run_free(&f16, n);
    run_free(&cpu_beam, nb), run_free(&gpu_beam, nb);
}

static void test_tiny_en(void) {
    check_model("tiny.en");
}
static void test_base(void) {
    if (getenv("TOLK_GPU_TINY_ONLY")) {
        printf("  SKIPPED: TOLK_GPU_TINY_ONLY\n");
        return;
    }
    check_model("base");
}

int main(void) {
    CU_TestInfo tests[] = {{"tiny_en", test_tiny_en}, {"base", test_base}, CU_TEST_INFO_NULL};
    tu_add_suite("cuda_transcribe", tests);
    return tu_run();
}

#else

int main(void) {
    return tu_run_without_cuda("cuda_transcribe");
}

#endif

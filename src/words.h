/*
 * words.h — word-level timestamps: openai-whisper's word_timestamps=True
 * (timing.py find_alignment, merge_punctuations, add_word_timestamps, and
 * transcribe.py's use of them: the seek after a window and the
 * hallucination_silence_threshold rules), reimplemented.
 *
 * The long-form loop (longform.c) makes one tolk_words per request and,
 * for each decoded window that is not skipped as silence, once the
 * window's segments are built (before empty or instantaneous ones are
 * cleared):
 *   1. tolk_words_begin: the alignment pass the window needs (*needed = 0
 *      when it has no text): token sequence, heads, frames and where the
 *      results go — the loop asks its engine to run it (tolk_net_align on
 *      the window's K/V slot) — then
 *   2. tolk_words_end: words for every segment, segment start / end
 *      adjusted as the reference does;
 *   3. tolk_words_after with the seek its timestamp rule gave: the new
 *      seek, how many segments to keep, whether to drop the whole window.
 * Everything below those calls is pure (no network) and unit-tested
 * (tests/test_words.c): the normalisation, median filter, DTW (a fast one
 * and the plain reference), the split of tokens into words, punctuation
 * merging, the long-word and segment-boundary adjustments and the
 * hallucination decisions.
 */
#ifndef TOLK_WORDS_H
#define TOLK_WORDS_H

#include "asr.h"
#include "result.h"

struct tolk_tokenizer;

/* ---- per request --------------------------------------------------------- */

typedef struct tolk_words tolk_words;

/* Word timestamps for one request on model (asr: its tokenizer and special
 * ids) with p's options (p->word_timestamps set; its strings are copied).
 * Resolves the model's alignment heads (tolk_alignment_heads): none ->
 * TOLK_ERR_UNSUPPORTED naming the model. *out: tolk_words_free. */
tolk_status tolk_words_new(tolk_ctx *ctx, const tolk_asr *asr, const tolk_model *model,
                           const tolk_transcribe_params *p, tolk_words **out);
void tolk_words_free(tolk_words *w);

/* The transcription language (a code): "zh", "ja", "th", "lo", "my",
 * "yue" split words at character boundaries, others at spaces. */
void tolk_words_set_language(tolk_words *w, const char *code);

/* One alignment pass (tolk_net_align's arguments but the network's): run
 * the decoder over tokens[0, n_tokens) against the window's K/V, fill
 * weights [n_heads, n_tokens, n_frames] and probs [n_probs]. The buffers
 * belong to the tolk_words; valid until tolk_words_end. */
typedef struct tolk_words_align {
    const int *tokens;
    int n_tokens;
    const int (*heads)[2];
    int n_heads;
    int n_frames;
    float *weights;
    int prob_row0, n_probs, prob_vocab;
    float *probs;
} tolk_words_align;

/* add_word_timestamps, first half, for the window's segments segs[0, n)
 * (tokens incl. timestamps) decoded with the SOT sequence sot[0, n_sot)
 * from a window of segment_size content frames: *needed = 1 and *req set
 * when an alignment pass must run before tolk_words_end, else 0. */
tolk_status tolk_words_begin(tolk_words *w, const int *sot, int n_sot, size_t segment_size,
                             const tolk_seg_rec *segs, int n, tolk_words_align *req, int *needed);

/* ... second half, after the pass (if one was needed) filled req's
 * buffers: every segment's words (possibly none) and its start / end as
 * the reference adjusts them; seek is the window's start (frames). The
 * same segs as tolk_words_begin's. */
tolk_status tolk_words_end(tolk_words *w, size_t seek, tolk_seg_rec *segs, int n);

/* The window as the loop sees it after the timestamp rule (frames). */
typedef struct tolk_words_window {
    size_t previous_seek;        /* the window's start */
    size_t segment_size;         /* its content frames */
    size_t content_frames;       /* of the whole input */
    int single_timestamp_ending; /* the tokens ended with a single timestamp */
    size_t seek;                 /* the seek the timestamp rule gave */
} tolk_words_window;

typedef struct tolk_words_decision {
    size_t seek;     /* where the next window starts */
    int n_keep;      /* segments of the window to keep (a prefix) */
    int skip_window; /* 1: drop every segment of the window (and do not
                        reset the prompt): the reference's `continue` */
} tolk_words_decision;

/* After tolk_words_end: the reference's seek from the last word's end,
 * then, when hallucination_silence_threshold >= 0, its silence-skipping
 * rules; updates w's last speech timestamp. */
void tolk_words_after(tolk_words *w, const tolk_seg_rec *segs, int n, const tolk_words_window *win,
                      tolk_words_decision *out);

/* ---- alignment heads -------------------------------------------------- */

/* The (layer, head) alignment heads of a model: those its files carry
 * (CTranslate2 config.json / Hugging Face generation_config.json
 * "alignment_heads"), else openai-whisper's published set for its size
 * (size_name: "tiny.en", "base", ..., "large-v2", "large-v3",
 * "large-v3-turbo"); *heads points into w or static storage. A model with
 * neither fails with TOLK_ERR_UNSUPPORTED (message names path). */
tolk_status tolk_alignment_heads(tolk_ctx *ctx, const tolk_weights *w, const char *size_name,
                                 const char *path, const int (**heads)[2], int *n);

/* openai-whisper's set for a size name, NULL (and *n 0) for other names. */
const int (*tolk_alignment_heads_default(const char *size_name, int *n))[2];

/* ---- the pure steps (exposed for tests) -------------------------------- */

/* weights [H][T][F] in place: each (head, frame) column standardised over
 * the T token rows (mean and biased standard deviation, torch.std_mean
 * unbiased=False), then each row median-filtered over frames (width,
 * odd; reflect padding; rows of F <= width / 2 frames unchanged). tmp:
 * F + width floats. */
void tolk_words_normalize(float *weights, int H, int T, int F);
void tolk_words_median_filter(float *x, int rows, int F, int width, float *tmp);

/* DTW of openai-whisper's timing.dtw_cpu over cost x [N][M] (the negated
 * alignment matrix; float32 cumulative costs, ties: diagonal, then up,
 * then left, as its comparisons), returning for each row i < N the column
 * where the path first enters row i (*jump [N]; -1 everywhere when M is
 * 0). tolk_dtw keeps two cost columns and a byte trace; tolk_dtw_ref is
 * the plain full-matrix reference. Return 0, or -1 when out of memory. */
int tolk_dtw(const double *x, int N, int M, int *jump);
int tolk_dtw_ref(const double *x, int N, int M, int *jump);

/* One word being assembled (timing.py WordTiming). */
typedef struct tolk_wtiming {
    char *word;   /* owned, UTF-8 */
    int n_tokens; /* tokens it holds (after merging) */
    double start; /* seconds from the window start */
    double end;
    double probability;
} tolk_wtiming;

/* split_to_word_tokens(tokens[0, n)) of the reference's tokenizer:
 * by_unicode (zh, ja, th, lo, my, yue) splits where the decoded text is
 * valid UTF-8, otherwise subwords are joined into words that start with a
 * space, are punctuation or special tokens. *words (owned, free with
 * tolk_wtiming_free) with only word and n_tokens set; *n_words. Returns a
 * status (TOLK_ERR_NOMEM, or a decode error). */
tolk_status tolk_words_split(const struct tolk_tokenizer *tok, const int *tokens, int n,
                             int by_unicode, tolk_wtiming **words, int *n_words);
void tolk_wtiming_free(tolk_wtiming *w, int n);

/* merge_punctuations(alignment, prepended, appended) in place (merged-away
 * words become "" with 0 tokens). Returns 0 when out of memory. */
int tolk_words_merge_punctuations(tolk_wtiming *a, int n, const char *prepended,
                                  const char *appended);

/* The long-word hack of add_word_timestamps before merging: median word
 * duration (of the non-zero durations, capped at 0.7 s) into *median and
 * words at sentence ends clipped to twice it. */
void tolk_words_clip_long(tolk_wtiming *a, int n, double *median);

/* The reference's anomaly test of a segment's words (probability < 0.15,
 * too short, too long; punctuation skipped; the first 8 words). */
int tolk_words_segment_anomaly(const tolk_seg_rec *s);

/* The decision of tolk_words_after as a pure function: threshold < 0 is
 * off; *last_speech in / out. */
void tolk_words_decide(const tolk_seg_rec *segs, int n, const tolk_words_window *win,
                       double threshold, double *last_speech, tolk_words_decision *out);

/* Distribute alignment words over segments (add_word_timestamps' loop):
 * words go to segs in order by their token counts, times rounded to
 * 0.01 s from time_offset, then the segment-boundary adjustments with
 * median duration `median`; *last_speech in / out. Returns 0 when out of
 * memory. */
int tolk_words_assign(tolk_seg_rec *segs, int n, const int *n_text_tokens, const tolk_wtiming *a,
                      int n_words, double time_offset, double median, double *last_speech);

#endif /* TOLK_WORDS_H */

/*
 * audio.c — audio input: decode any file libsndfile reads (WAV, FLAC,
 * OGG/Vorbis, Opus, MP3, AIFF, ...) or, as a fallback when the build has it,
 * anything FFmpeg reads (m4a/AAC, mp4, webm, mkv, ...), then mix to mono and
 * resample to 16 kHz float32 with libsoxr (very high quality).
 *
 * Reference behaviour: openai-whisper's load_audio(), which runs
 * `ffmpeg -i FILE -ac 1 -ar 16000 -f s16le -` and divides the int16 samples
 * by 32768. Here 16-bit PCM becomes sample / 32768 too (libsndfile's
 * normalised float read), channels are averaged in float, and 16 kHz input
 * passes through bit-exactly (no resampler at all), so mel fixtures made
 * from 16 kHz FLAC/WAV match the reference exactly.
 *
 * Everything is built on one streaming reader (tolk_audio_open/read):
 * decode a block of frames -> average channels -> feed libsoxr -> hand out
 * 16 kHz samples. Memory is constant for files of any length, except for
 * standard input and other non-seekable inputs, which are read into memory
 * first (libsndfile and FFmpeg both need to seek): their first MiB must
 * look like audio (so /dev/zero or a text stream fails at once), and the
 * whole input is bounded (TOLK_AUDIO_PIPE_MAX_BYTES, $TOLK_AUDIO_PIPE_MAX_MB).
 * The whole-file loaders drive the same reader, so streaming and whole-file
 * output are identical.
 *
 * Truncated input (a file cut short by a copy or a download): FLAC, whose
 * STREAMINFO count is exact, fails (TOLK_ERR_FORMAT). Other formats decode
 * what is there and report the truncation (tolk_audio_truncated): a WAV
 * whose data chunk declares more bytes than the file holds, an MP3 whose
 * Xing / Info / VBRI header counts more frames than decode, an Ogg (Vorbis,
 * Opus) stream whose last page is incomplete or lacks the end-of-stream
 * flag. (openai-whisper's ffmpeg call decodes what is there and says
 * nothing.)
 */
#include "audio_internal.h"
#include "result.h"

#include <sndfile.h>
#include <soxr.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Floats decoded per block (all channels together): 256 KiB of buffer. */
#define AUDIO_BLOCK_FLOATS 65536

/* Non-seekable input (stdin, pipes, devices) is read into memory: at most
 * this many bytes ($TOLK_AUDIO_PIPE_MAX_MB overrides), and its first
 * AUDIO_SNIFF_BYTES must be recognisable as audio before more is read. */
#define TOLK_AUDIO_PIPE_MAX_BYTES ((size_t)1 << 30)
#define AUDIO_SNIFF_BYTES ((size_t)1 << 20)

enum source_kind { SRC_SNDFILE = 1, SRC_FFMPEG = 2 };

/* A file (read with pread, so the descriptor's offset never matters) or
 * bytes in memory, seen as a file by libsndfile's virtual I/O. */
typedef struct mem_file {
    int fd; /* >= 0: read the file; else data */
    const unsigned char *data;
    sf_count_t size;
    sf_count_t pos;
} mem_file;

struct tolk_audio_reader {
    char *name;           /* for messages: the path, "<stdin>" or the caller's name */
    int kind;             /* enum source_kind */
    int fd;               /* open file when reading a regular file, else -1 */
    unsigned char *owned; /* bytes read from stdin / a pipe, else NULL */
    mem_file mem;         /* memory view for sf_open_virtual */
    SF_VIRTUAL_IO vio;
    SNDFILE *sf;
#ifdef TOLK_HAVE_FFMPEG
    tolk_ff_source *ff;
#endif
    int rate;            /* source sample rate, Hz */
    int channels;        /* source channels */
    int64_t frames;      /* source frames, -1 when unknown */
    int64_t frames_read; /* source frames decoded so far */
    int exact_frames;    /* frames is exact: decoding fewer is an error */
    int64_t promised;    /* frames the header promises where decoding fewer is a
                            truncation to report (WAV data size, MP3 Xing count);
                            -1 when none */
    int truncated;       /* 1: the input is cut short (tolk_audio_truncated) */
    size_t block;        /* frames decoded per block */
    float *ibuf;         /* [block, channels] interleaved; NULL when mono */
    float *mono;         /* [block] mono samples at the source rate */
    size_t mono_pos, mono_len;
    soxr_t soxr;       /* NULL when the source is already 16 kHz */
    int eof;           /* source exhausted (resampler being flushed) */
    int done;          /* nothing more to hand out */
    tolk_status error; /* sticky: a failed read fails every later read */
};

/* ------------------------------------------------------------------------ */
/* libsndfile virtual I/O over bytes in memory                               */
/* ------------------------------------------------------------------------ */

static sf_count_t mem_get_filelen(void *user) {
    return ((mem_file *)user)->size;
}

static sf_count_t mem_seek(sf_count_t offset, int whence, void *user) {
    mem_file *m = user;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return -1;
    /* Overflow-safe: both operands are bounded by the buffer size or caller. */
    if (offset < -base || offset > m->size - base) return -1;
    m->pos = base + offset;
    return m->pos;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *user) {
    mem_file *m = user;
    if (count <= 0) return 0;
    sf_count_t left = m->size - m->pos;
    if (count > left) count = left;
    if (count <= 0) return 0;
    if (m->fd >= 0) {
        ssize_t r;
        do {
            r = pread(m->fd, ptr, (size_t)count, (off_t)m->pos);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) return 0;
        count = (sf_count_t)r;
    } else {
        memcpy(ptr, m->data + m->pos, (size_t)count);
    }
    m->pos += count;
    return count;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user) {
    return 0; /* read-only */
}

static sf_count_t mem_tell(void *user) {
    return ((mem_file *)user)->pos;
}

/* ------------------------------------------------------------------------ */
/* Recognising what libsndfile could not open                               */
/* ------------------------------------------------------------------------ */

/* Name of a container libsndfile does not read but FFmpeg does, from the
 * first n bytes h, or NULL when none is recognised. */
static const char *container_by_magic(const unsigned char *h, size_t n) {
    if (n >= 12 && memcmp(h + 4, "ftyp", 4) == 0) {
        if (memcmp(h + 8, "M4A ", 4) == 0 || memcmp(h + 8, "M4B ", 4) == 0) return "M4A/MP4 audio";
        if (memcmp(h + 8, "qt  ", 4) == 0) return "QuickTime (MOV)";
        if (memcmp(h + 8, "3gp", 3) == 0 || memcmp(h + 8, "3g2", 3) == 0) return "3GP";
        return "MP4";
    }
    if (n >= 8 && (memcmp(h + 4, "moov", 4) == 0 || memcmp(h + 4, "mdat", 4) == 0 ||
                   memcmp(h + 4, "wide", 4) == 0 || memcmp(h + 4, "free", 4) == 0))
        return "MP4/QuickTime";
    if (n >= 4 && h[0] == 0x1A && h[1] == 0x45 && h[2] == 0xDF && h[3] == 0xA3)
        return "Matroska/WebM";
    if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "AVI ", 4) == 0) return "AVI";
    if (n >= 4 && h[0] == 0x30 && h[1] == 0x26 && h[2] == 0xB2 && h[3] == 0x75) return "ASF/WMA";
    if (n >= 3 && memcmp(h, "FLV", 3) == 0) return "FLV";
    if (n >= 5 && memcmp(h, "#!AMR", 5) == 0) return "AMR";
    if (n >= 4 && h[0] == 0 && h[1] == 0 && h[2] == 1 && h[3] == 0xBA) return "MPEG program stream";
    if (n >= 377 && h[0] == 0x47 && h[188] == 0x47 && h[376] == 0x47)
        return "MPEG transport stream";
    if (n >= 2 && h[0] == 0x0B && h[1] == 0x77) return "AC-3";
    /* ADTS: 12-bit sync 0xFFF, then layer bits 00 (MP3 frames have layer != 00). */
    if (n >= 7 && h[0] == 0xFF && (h[1] & 0xF6) == 0xF0) return "ADTS AAC";
    if (n >= 4 && memcmp(h, "ADIF", 4) == 0) return "ADIF AAC";
    return NULL;
}

#ifdef TOLK_HAVE_FFMPEG
static int input_read_at(const mem_file *m, void *buf, size_t n, sf_count_t off);

/* For a RIFF file (WAV) that libsndfile refused: whether every chunk before
 * "data" fits in the file. FFmpeg's WAV demuxer trusts chunk sizes enough
 * to allocate them (a 114-byte file can ask for 1.3 GB), so a RIFF file
 * whose chunks overrun it is refused before FFmpeg sees it. On failure the
 * offending chunk is described in why. */
static int riff_chunks_fit(const mem_file *m, char why[TOLK_AUDIO_WHY_MAX]) {
    unsigned char h[12];
    if (!input_read_at(m, h, 12, 0) || memcmp(h, "RIFF", 4) != 0) return 1;
    sf_count_t off = 12;
    for (int k = 0; k < 100000 && off + 8 <= m->size; k++) {
        unsigned char c[8];
        if (!input_read_at(m, c, 8, off)) return 1;
        uint32_t len =
            (uint32_t)c[4] | (uint32_t)c[5] << 8 | (uint32_t)c[6] << 16 | (uint32_t)c[7] << 24;
        if (memcmp(c, "data", 4) == 0) return 1; /* samples may be cut short */
        if ((sf_count_t)len > m->size - off - 8) {
            char id[5];
            for (int i = 0; i < 4; i++)
                id[i] = c[i] >= 0x20 && c[i] < 0x7F ? (char)c[i] : '?';
            id[4] = '\0';
            snprintf(why, TOLK_AUDIO_WHY_MAX,
                     "RIFF chunk '%s' at byte %lld claims %u bytes, the file has %lld left", id,
                     (long long)off, len, (long long)(m->size - off - 8));
            return 0;
        }
        off += 8 + (sf_count_t)len + (len & 1);
    }
    return 1;
}
#endif /* TOLK_HAVE_FFMPEG */

/* Whether the first n bytes look like text (printable ASCII / UTF-8 and
 * whitespace only), to say so in the error message. */
static int looks_like_text(const unsigned char *h, size_t n) {
    if (n < 8) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];
        if (c >= 0x20 && c != 0x7F) continue;
        if (c == '\n' || c == '\r' || c == '\t' || c == '\f') continue;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* What a header promises (truncation checks)                               */
/* ------------------------------------------------------------------------ */

/* Read n bytes at offset off of the input (file or memory); 1 when all n
 * were read. */
static int input_read_at(const mem_file *m, void *buf, size_t n, sf_count_t off) {
    if (off < 0 || off > m->size || (sf_count_t)n > m->size - off) return 0;
    if (m->fd < 0) {
        memcpy(buf, m->data + off, n);
        return 1;
    }
    ssize_t r;
    do {
        r = pread(m->fd, buf, n, (off_t)off);
    } while (r < 0 && errno == EINTR);
    return r == (ssize_t)n;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A RIFF/WAVE file's "data" chunk: *declared = the size its header states,
 * *held = the bytes the input holds after the chunk header. 1 when found. */
static int riff_data_chunk(const mem_file *m, uint64_t *declared, uint64_t *held) {
    unsigned char h[12];
    if (!input_read_at(m, h, 12, 0) || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0)
        return 0;
    sf_count_t off = 12;
    for (int k = 0; k < 10000 && off + 8 <= m->size; k++) {
        unsigned char c[8];
        if (!input_read_at(m, c, 8, off)) return 0;
        uint32_t len = le32(c + 4);
        if (memcmp(c, "data", 4) == 0) {
            *declared = len;
            *held = (uint64_t)(m->size - off - 8);
            return 1;
        }
        off += 8 + (sf_count_t)len + (len & 1);
    }
    return 0;
}

/* Whether an MP3 carries a frame count (a Xing, Info or VBRI header in its
 * first frame, after an ID3v2 tag): then libsndfile's frame count is the
 * encoder's, not an estimate from the file size. */
static int mp3_has_frame_count(const mem_file *m) {
    unsigned char h[10];
    sf_count_t off = 0;
    if (input_read_at(m, h, 10, 0) && memcmp(h, "ID3", 3) == 0)
        off = 10 + (((sf_count_t)h[6] & 0x7f) << 21 | ((sf_count_t)h[7] & 0x7f) << 14 |
                    ((sf_count_t)h[8] & 0x7f) << 7 | ((sf_count_t)h[9] & 0x7f));
    unsigned char b[2048];
    size_t n = m->size - off < (sf_count_t)sizeof b ? (size_t)(m->size - off) : sizeof b;
    if (off >= m->size || !input_read_at(m, b, n, off)) return 0;
    for (size_t i = 0; i + 4 <= n && i < 256 + 40; i++)
        if (!memcmp(b + i, "Xing", 4) || !memcmp(b + i, "Info", 4) || !memcmp(b + i, "VBRI", 4))
            return 1;
    return 0;
}

/* Whether an Ogg input ends with a complete page that carries the
 * end-of-stream flag (a finished Vorbis / Opus file does; a cut one, or one
 * still being written, does not). Scans the last 64 KiB for the last page
 * header whose page ends exactly at the end of the input. */
static int ogg_ends_cleanly(const mem_file *m) {
    const sf_count_t tail = m->size < 65536 + 282 ? m->size : 65536 + 282;
    unsigned char *b = malloc((size_t)tail);
    if (!b) return 1; /* cannot tell: do not report */
    int ok = 0;
    if (input_read_at(m, b, (size_t)tail, m->size - tail)) {
        for (sf_count_t i = tail - 27; i >= 0; i--) {
            if (memcmp(b + i, "OggS", 4) != 0 || b[i + 4] != 0) continue;
            const unsigned nseg = b[i + 26];
            if (i + 27 + (sf_count_t)nseg > tail) continue;
            sf_count_t len = 27 + nseg;
            for (unsigned q = 0; q < nseg; q++)
                len += b[i + 27 + q];
            if (i + len != tail) continue; /* not the page that ends the input */
            ok = (b[i + 5] & 0x04) != 0;
            break;
        }
    }
    free(b);
    return ok;
}

/* After the decoder opened: what the header promises where a shortfall is a
 * truncation to report rather than an error (see the file comment). */
static void note_promises(tolk_audio_reader *r, int sf_format) {
    r->promised = -1;
    if (r->kind != SRC_SNDFILE) return;
    const int major = sf_format & SF_FORMAT_TYPEMASK, sub = sf_format & SF_FORMAT_SUBMASK;
    if (major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX) {
        uint64_t declared = 0, held = 0;
        if (!riff_data_chunk(&r->mem, &declared, &held) || declared <= held) return;
        /* 0xFFFFFFFF from a pipe: a streaming writer's "length unknown" */
        if (declared == 0xFFFFFFFFu && r->owned) return;
        int bps = sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_U8 || sub == SF_FORMAT_ULAW ||
                          sub == SF_FORMAT_ALAW
                      ? 1
                  : sub == SF_FORMAT_PCM_16                           ? 2
                  : sub == SF_FORMAT_PCM_24                           ? 3
                  : sub == SF_FORMAT_PCM_32 || sub == SF_FORMAT_FLOAT ? 4
                  : sub == SF_FORMAT_DOUBLE                           ? 8
                                                                      : 0;
        if (bps > 0)
            r->promised = (int64_t)(declared / ((uint64_t)bps * (uint64_t)r->channels));
        else if (held > 0 && r->frames > 0) /* compressed WAV: in proportion */
            r->promised = (int64_t)((double)r->frames * (double)declared / (double)held);
        r->truncated = 1;
    } else if (major == SF_FORMAT_MPEG) {
        if (r->frames > 0 && mp3_has_frame_count(&r->mem)) r->promised = r->frames;
    } else if (major == SF_FORMAT_OGG) {
        if (!ogg_ends_cleanly(&r->mem)) r->truncated = 1;
    }
}

/* At the end of the input: a promise that decoding fell short of. MP3
 * counts may differ from the decoded frames by the encoder's delay and
 * padding: a shortfall counts when above two MPEG frames and 1 %. */
static void check_promises(tolk_audio_reader *r) {
    if (r->truncated || r->promised <= 0 || r->frames_read >= r->promised) return;
    const int64_t slack = r->promised / 100 > 2304 ? r->promised / 100 : 2304;
    if (r->promised - r->frames_read > slack) r->truncated = 1;
}

int tolk_audio_truncated(const tolk_audio_reader *r, int64_t *expected_frames,
                         int64_t *decoded_frames) {
    if (expected_frames) *expected_frames = r && r->truncated ? r->promised : -1;
    if (decoded_frames) *decoded_frames = r ? r->frames_read : 0;
    return r ? r->truncated : 0;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* The byte limit on non-seekable input: $TOLK_AUDIO_PIPE_MAX_MB (a
 * positive number of MiB) or TOLK_AUDIO_PIPE_MAX_BYTES. */
static size_t pipe_max_bytes(void) {
    const char *e = getenv("TOLK_AUDIO_PIPE_MAX_MB");
    if (e && *e) {
        char *end;
        errno = 0;
        unsigned long long mb = strtoull(e, &end, 10);
        if (!*end && !errno && mb > 0 && mb < ((unsigned long long)SIZE_MAX >> 20))
            return (size_t)mb << 20;
    }
    return TOLK_AUDIO_PIPE_MAX_BYTES;
}

/* Read from fd into *buf (capacity *cap, grown; length *len) until the end
 * of the input or until *len reaches `until`. Returns 0, or an errno value
 * (ENOMEM when out of memory). */
static int read_fd_until(int fd, unsigned char **buf, size_t *cap, size_t *len, size_t until) {
    while (*len < until) {
        if (*len == *cap) {
            size_t ncap = *cap ? *cap * 2 : (size_t)1 << 16;
            if (ncap > until) ncap = until;
            unsigned char *nb = realloc(*buf, ncap);
            if (!nb) return ENOMEM;
            *buf = nb;
            *cap = ncap;
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return 0;
        *len += (size_t)r;
    }
    return 0;
}

void tolk_audio_close(tolk_audio_reader *r) {
    if (!r) return;
    if (r->sf) sf_close(r->sf);
#ifdef TOLK_HAVE_FFMPEG
    tolk_ff_close(r->ff);
#endif
    if (r->soxr) soxr_delete(r->soxr);
    if (r->fd >= 0) close(r->fd);
    free(r->owned);
    free(r->ibuf);
    free(r->mono);
    free(r->name);
    free(r);
}

/* Open the decoder of r: libsndfile first, FFmpeg second when built with it.
 * head/n_head: the first bytes of the input, to name what failed. */
static tolk_status open_decoder(tolk_ctx *ctx, tolk_audio_reader *r, const unsigned char *head,
                                size_t n_head) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    r->mem.pos = 0;
    r->sf = sf_open_virtual(&r->vio, SFM_READ, &info, &r->mem);
    if (r->sf) {
        r->kind = SRC_SNDFILE;
        r->rate = info.samplerate;
        r->channels = info.channels;
        r->frames = info.frames >= 0 && info.frames != SF_COUNT_MAX ? info.frames : -1;
        /* Normalised float reads: 16-bit PCM becomes sample / 32768 exactly. */
        sf_command(r->sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
        /* FLAC's STREAMINFO count is exact (when set), so decoding fewer
         * frames means a truncated or corrupt file. Other formats' counts
         * can be estimates (MP3 without a Xing header) or are already
         * clamped to the file (WAV, AIFF). */
        r->exact_frames = (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC;
#ifdef TOLK_HAVE_FFMPEG
        if (r->frames == 0) {
            /* A header that says "no samples" (a WAV whose recorder never
             * finalised its data size): FFmpeg may still find the samples. */
            char ff_why[TOLK_AUDIO_WHY_MAX];
            if (tolk_ff_open(r->fd, r->mem.data, (size_t)r->mem.size, &r->ff, &r->rate,
                             &r->channels, ff_why) == TOLK_OK) {
                sf_close(r->sf);
                r->sf = NULL;
                r->kind = SRC_FFMPEG;
                r->frames = -1;
                r->exact_frames = 0;
            }
        }
#endif
        note_promises(r, info.format);
        return TOLK_OK;
    }
    int sf_code = sf_error(NULL);
    char sf_why[TOLK_AUDIO_WHY_MAX];
    snprintf(sf_why, sizeof sf_why, "%s", sf_strerror(NULL));
    const char *container = container_by_magic(head, n_head);

#ifdef TOLK_HAVE_FFMPEG
    char ff_why[TOLK_AUDIO_WHY_MAX] = "";
    if (!riff_chunks_fit(&r->mem, ff_why))
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: corrupt WAV file: %s (libsndfile: %s)", r->name,
                         ff_why, sf_why);
    tolk_status fst = tolk_ff_open(r->fd, r->mem.data, (size_t)r->mem.size, &r->ff, &r->rate,
                                   &r->channels, ff_why);
    if (fst == TOLK_OK) {
        r->kind = SRC_FFMPEG;
        r->frames = -1;
        return TOLK_OK;
    }
    if (fst == TOLK_ERR_EMPTY)
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: no audio samples (FFmpeg: %s)", r->name, ff_why);
    if (fst == TOLK_ERR_NOMEM)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory (FFmpeg: %s)", r->name, ff_why);
    if (container || fst == TOLK_ERR_UNSUPPORTED)
        return tolk_fail(ctx, fst == TOLK_ERR_UNSUPPORTED ? fst : TOLK_ERR_FORMAT,
                         "%s: cannot decode %s (FFmpeg: %s; libsndfile: %s)", r->name,
                         container ? container : "the audio", ff_why, sf_why);
    if (looks_like_text(head, n_head))
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (looks like a text file)", r->name);
    if (sf_code == SF_ERR_UNRECOGNISED_FORMAT)
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (libsndfile: %s; FFmpeg: %s)", r->name,
                         sf_why, ff_why);
    return tolk_fail(ctx, TOLK_ERR_FORMAT,
                     "%s: corrupt or unsupported audio data (libsndfile: %s; FFmpeg: %s)", r->name,
                     sf_why, ff_why);
#else
    if (container)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: unsupported container (%s); libsndfile cannot read it, "
                         "build tolk with FFmpeg support to decode it",
                         r->name, container);
    if (looks_like_text(head, n_head))
        return tolk_fail(ctx, TOLK_ERR_FORMAT,
                         "%s: not a recognised audio format (looks like a text file)", r->name);
    if (sf_code == SF_ERR_UNRECOGNISED_FORMAT)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: not a recognised audio format (libsndfile: %s)",
                         r->name, sf_why);
    return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: corrupt or unsupported audio data (libsndfile: %s)",
                     r->name, sf_why);
#endif
}

/* Make a libsoxr stream resampler from in_rate to out_rate, mono float32,
 * very high quality, one thread. *err gets libsoxr's message on failure. */
static soxr_t make_soxr(double in_rate, double out_rate, const char **err) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    soxr_t s = soxr_create(in_rate, out_rate, 1, &e, &io, &q, &rt);
    if (!s || e) {
        if (s) soxr_delete(s);
        *err = e ? e : "soxr_create failed";
        return NULL;
    }
    return s;
}

/* Common tail of opening: check what the decoder declared, size buffers,
 * make the resampler. */
static tolk_status finish_open(tolk_ctx *ctx, tolk_audio_reader *r) {
    if (r->channels < 1 || r->channels > TOLK_AUDIO_MAX_CHANNELS)
        return tolk_fail(ctx, TOLK_ERR_FORMAT, "%s: absurd channel count %d (supported: 1..%d)",
                         r->name, r->channels, TOLK_AUDIO_MAX_CHANNELS);
    if (r->rate < TOLK_AUDIO_MIN_RATE || r->rate > TOLK_AUDIO_MAX_RATE)
        return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                         "%s: unsupported sample rate %d Hz (supported: %d..%d Hz)", r->name,
                         r->rate, TOLK_AUDIO_MIN_RATE, TOLK_AUDIO_MAX_RATE);
    if (r->frames == 0)
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: the file holds no audio samples", r->name);
    r->block = AUDIO_BLOCK_FLOATS / (size_t)r->channels;
    if (r->block < 64) r->block = 64;
    r->mono = tolk_malloc_array(r->block, sizeof(float));
    if (r->channels > 1) r->ibuf = tolk_malloc_array(r->block * (size_t)r->channels, sizeof(float));
    if (!r->mono || (r->channels > 1 && !r->ibuf))
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory for decode buffers", r->name);
    if (r->rate != TOLK_SAMPLE_RATE) {
        const char *err = NULL;
        r->soxr = make_soxr((double)r->rate, (double)TOLK_SAMPLE_RATE, &err);
        if (!r->soxr)
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: cannot make a %d -> %d Hz resampler (%s)",
                             r->name, r->rate, TOLK_SAMPLE_RATE, err);
    }
    return TOLK_OK;
}

/* Read a non-seekable input (stdin, a pipe, a device) into r->owned
 * (r->mem.size bytes). Its first AUDIO_SNIFF_BYTES (or all of it, when
 * shorter) must open as audio, or look like a container FFmpeg reads,
 * before more is read: otherwise the decoder's "not a recognised audio
 * format" error now, instead of reading an endless /dev/zero. The whole
 * input is bounded by pipe_max_bytes(). */
static tolk_status read_stream(tolk_ctx *ctx, tolk_audio_reader *r, int fd, const char *name) {
    size_t cap = 0, len = 0, max = pipe_max_bytes();
    int e =
        read_fd_until(fd, &r->owned, &cap, &len, AUDIO_SNIFF_BYTES < max ? AUDIO_SNIFF_BYTES : max);
    if (e == 0 && len > 0) {
        unsigned char head[512];
        size_t n_head = len < sizeof head ? len : sizeof head;
        memcpy(head, r->owned, n_head);
        r->mem.data = r->owned;
        r->mem.size = (sf_count_t)len;
        r->mem.pos = 0;
        SF_INFO info;
        memset(&info, 0, sizeof info);
        SNDFILE *sf = sf_open_virtual(&r->vio, SFM_READ, &info, &r->mem);
        int code = sf ? SF_ERR_NO_ERROR : sf_error(NULL);
        if (sf) sf_close(sf);
        if (code == SF_ERR_UNRECOGNISED_FORMAT && !container_by_magic(head, n_head)) {
            /* FFmpeg (when built) may still know it: open_decoder decides,
             * and gives the usual message when nothing does */
            tolk_status st = open_decoder(ctx, r, head, n_head);
            if (st != TOLK_OK) return st;
            if (r->sf) sf_close(r->sf);
            r->sf = NULL;
#ifdef TOLK_HAVE_FFMPEG
            tolk_ff_close(r->ff);
            r->ff = NULL;
#endif
            r->kind = 0;
            r->truncated = 0;
        }
    }
    if (e == 0) e = read_fd_until(fd, &r->owned, &cap, &len, max);
    if (e == 0 && len == max) { /* more than the limit? */
        unsigned char one;
        ssize_t k;
        do {
            k = read(fd, &one, 1);
        } while (k < 0 && errno == EINTR);
        if (k > 0)
            return tolk_fail(ctx, TOLK_ERR_UNSUPPORTED,
                             "%s: more than %zu MiB from a pipe or device; standard input and "
                             "pipes are read into memory (the decoders seek), so give a file "
                             "(or raise TOLK_AUDIO_PIPE_MAX_MB)",
                             name, max >> 20);
    }
    if (e != 0)
        return tolk_fail(ctx, e == ENOMEM ? TOLK_ERR_NOMEM : TOLK_ERR_IO, "%s: %s", name,
                         e == ENOMEM ? "out of memory reading the stream" : strerror(e));
    r->mem.data = NULL;
    r->mem.size = (sf_count_t)len;
    return TOLK_OK;
}

/* Open a reader over either a path (path != NULL) or bytes (data/size,
 * borrowed for the reader's life). name: for messages. */
static tolk_status reader_open(tolk_ctx *ctx, const char *path, const void *data, size_t size,
                               const char *name, tolk_audio_reader **out) {
    *out = NULL;
    tolk_audio_reader *r = calloc(1, sizeof *r);
    if (!r) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    r->fd = -1;
    r->mem.fd = -1;
    r->name = strdup(name);
    if (!r->name) {
        free(r);
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", name);
    }
    r->vio.get_filelen = mem_get_filelen;
    r->vio.seek = mem_seek;
    r->vio.read = mem_read;
    r->vio.write = mem_write;
    r->vio.tell = mem_tell;

    tolk_status st;
    unsigned char head[512];
    size_t n_head = 0;
    if (path) {
        int fd;
        if (strcmp(path, "-") == 0) {
            fd = STDIN_FILENO;
            if (isatty(fd)) {
                /* Reading would wait for someone to type audio. */
                st = tolk_fail(ctx, TOLK_ERR_IO,
                               "%s: standard input is a terminal; pipe or redirect audio into it",
                               name);
                goto fail;
            }
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                int e = errno;
                st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name,
                               e == ENOENT ? "no such file" : strerror(e));
                goto fail;
            }
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name, strerror(errno));
            if (fd != STDIN_FILENO) close(fd);
            goto fail;
        }
        if (S_ISDIR(sb.st_mode)) {
            st = tolk_fail(ctx, TOLK_ERR_IO, "%s: is a directory, not an audio file", name);
            if (fd != STDIN_FILENO) close(fd);
            goto fail;
        }
        if (S_ISREG(sb.st_mode) && fd != STDIN_FILENO) {
            r->fd = fd;
            r->mem.fd = fd;
            r->mem.size = (sf_count_t)sb.st_size;
            if (sb.st_size == 0) {
                st = tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: empty file (0 bytes)", name);
                goto fail;
            }
            ssize_t got = pread(fd, head, sizeof head, 0);
            if (got < 0) {
                st = tolk_fail(ctx, TOLK_ERR_IO, "%s: %s", name, strerror(errno));
                goto fail;
            }
            n_head = (size_t)got;
        } else {
            /* stdin, a pipe or a device: not seekable, so read it all */
            st = read_stream(ctx, r, fd, name);
            if (fd != STDIN_FILENO) close(fd);
            if (st != TOLK_OK) goto fail;
            data = r->owned;
            size = (size_t)r->mem.size;
            path = NULL;
        }
    }
    if (!path) {
        if (size == 0 || !data) {
            st = tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: empty input (0 bytes)", name);
            goto fail;
        }
        if ((uint64_t)size > (uint64_t)INT64_MAX) {
            st = tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: input too large", name);
            goto fail;
        }
        r->mem.data = data;
        r->mem.size = (sf_count_t)size;
        n_head = size < sizeof head ? size : sizeof head;
        memcpy(head, data, n_head);
    }
    st = open_decoder(ctx, r, head, n_head);
    if (st != TOLK_OK) goto fail;
    st = finish_open(ctx, r);
    if (st != TOLK_OK) goto fail;
    *out = r;
    return TOLK_OK;
fail:
    tolk_audio_close(r);
    return st;
}

tolk_status tolk_audio_open(tolk_ctx *ctx, const char *path, tolk_audio_reader **out) {
    if (out) *out = NULL;
    if (!path || !out)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_open: NULL argument");
    tolk_clear_error(ctx);
    return reader_open(ctx, path, NULL, 0, strcmp(path, "-") == 0 ? "<stdin>" : path, out);
}

void tolk_audio_source_info(const tolk_audio_reader *r, int *sample_rate, int *channels,
                            int64_t *frames) {
    if (sample_rate) *sample_rate = r ? r->rate : 0;
    if (channels) *channels = r ? r->channels : 0;
    if (frames) *frames = r ? r->frames : -1;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Decode the next block into r->mono (mono at the source rate). Sets
 * r->eof when the source is exhausted. */
static tolk_status fill_mono(tolk_ctx *ctx, tolk_audio_reader *r) {
    const size_t C = (size_t)r->channels;
    float *dst = C == 1 ? r->mono : r->ibuf; /* [block, C] */
    size_t n = 0;
    if (r->kind == SRC_SNDFILE) {
        sf_count_t got = sf_readf_float(r->sf, dst, (sf_count_t)r->block);
        if (got < 0 || (size_t)got > r->block) got = 0;
        n = (size_t)got;
        if (n == 0) {
            int code = sf_error(r->sf);
            if (code != SF_ERR_NO_ERROR)
                return tolk_fail(ctx, TOLK_ERR_FORMAT,
                                 "%s: decoding failed after %lld frames (libsndfile: %s)", r->name,
                                 (long long)r->frames_read, sf_strerror(r->sf));
        }
    }
#ifdef TOLK_HAVE_FFMPEG
    else {
        char why[TOLK_AUDIO_WHY_MAX] = "";
        tolk_status st = tolk_ff_read(r->ff, dst, r->block, &n, why);
        if (st != TOLK_OK)
            return tolk_fail(ctx, st, "%s: decoding failed after %lld frames (FFmpeg: %s)", r->name,
                             (long long)r->frames_read, why);
    }
#endif
    if (n == 0) {
        r->eof = 1;
        check_promises(r);
        if (r->exact_frames && r->frames > 0 && r->frames_read < r->frames)
            return tolk_fail(ctx, TOLK_ERR_FORMAT,
                             "%s: truncated or corrupt: the header promises %lld frames, only "
                             "%lld decode",
                             r->name, (long long)r->frames, (long long)r->frames_read);
        r->mono_pos = r->mono_len = 0;
        return TOLK_OK;
    }
    r->frames_read += (int64_t)n;
    if (C > 1) {
        /* Average the channels in float: mono[i] = sum_c x[i, c] / C. */
        const float inv = 1.0f / (float)C;
        for (size_t i = 0; i < n; i++) {
            const float *x = dst + i * C;
            float s = 0.0f;
            for (size_t c = 0; c < C; c++)
                s += x[c];
            r->mono[i] = C == 2 ? s * 0.5f : s * inv;
        }
    }
    r->mono_pos = 0;
    r->mono_len = n;
    return TOLK_OK;
}

tolk_status tolk_audio_read(tolk_ctx *ctx, tolk_audio_reader *r, float *dst, size_t max,
                            size_t *got) {
    if (got) *got = 0;
    if (!r || !got || (!dst && max > 0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_read: NULL argument");
    if (r->error != TOLK_OK)
        return tolk_fail(ctx, r->error, "%s: the stream failed earlier", r->name);
    size_t n = 0;
    int stalls = 0;
    while (n < max && !r->done) {
        if (r->mono_pos == r->mono_len && !r->eof) {
            tolk_status st = fill_mono(ctx, r);
            if (st != TOLK_OK) {
                r->error = st;
                return st;
            }
            continue;
        }
        size_t avail = r->mono_len - r->mono_pos;
        if (!r->soxr) {
            if (avail == 0) { /* eof */
                r->done = 1;
                break;
            }
            size_t k = avail < max - n ? avail : max - n;
            memcpy(dst + n, r->mono + r->mono_pos, k * sizeof(float));
            r->mono_pos += k;
            n += k;
            continue;
        }
        size_t idone = 0, odone = 0;
        soxr_error_t e;
        if (avail > 0)
            e = soxr_process(r->soxr, r->mono + r->mono_pos, avail, &idone, dst + n, max - n,
                             &odone);
        else /* eof: flush the resampler's tail */
            e = soxr_process(r->soxr, NULL, 0, NULL, dst + n, max - n, &odone);
        if (e) {
            r->error = TOLK_ERR_INTERNAL;
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: resampling failed (libsoxr: %s)", r->name,
                             e);
        }
        r->mono_pos += idone;
        n += odone;
        if (avail == 0 && odone == 0) r->done = 1;
        if (idone == 0 && odone == 0 && avail > 0 && ++stalls > 1000) {
            r->error = TOLK_ERR_INTERNAL;
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "%s: the resampler stopped making progress",
                             r->name);
        }
    }
    *got = n;
    return TOLK_OK;
}

/* ------------------------------------------------------------------------ */
/* Whole-file loading                                                       */
/* ------------------------------------------------------------------------ */

/* Drain reader r into a new buffer. */
static tolk_status read_all(tolk_ctx *ctx, tolk_audio_reader *r, float **samples,
                            size_t *n_samples) {
    size_t cap = (size_t)1 << 16;
    if (r->frames > 0) {
        /* A guess from the header, bounded so that a lying header costs
         * little (at most 16 MiB up front; beyond that the buffer grows). */
        double est = (double)r->frames * TOLK_SAMPLE_RATE / r->rate + 64.0;
        const double most = (double)((size_t)1 << 22);
        cap = est > most ? (size_t)most : est > (double)cap ? (size_t)est : cap;
    }
    float *buf = tolk_malloc_array(cap, sizeof(float));
    if (!buf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory", r->name);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap;
            float *nb = NULL;
            size_t bytes;
            if (tolk_mul_size(cap, 2, &ncap) && tolk_mul_size(ncap, sizeof(float), &bytes))
                nb = realloc(buf, bytes);
            if (!nb) {
                free(buf);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "%s: out of memory after %zu samples",
                                 r->name, len);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = 0;
        tolk_status st = tolk_audio_read(ctx, r, buf + len, cap - len, &got);
        if (st != TOLK_OK) {
            free(buf);
            return st;
        }
        if (got == 0) break;
        len += got;
    }
    if (len == 0) {
        free(buf);
        return tolk_fail(ctx, TOLK_ERR_EMPTY, "%s: no audio samples", r->name);
    }
    float *shrunk = realloc(buf, len * sizeof(float));
    *samples = shrunk ? shrunk : buf;
    *n_samples = len;
    return TOLK_OK;
}

tolk_status tolk_audio_load_facts(tolk_ctx *ctx, const char *path, float **samples,
                                  size_t *n_samples, tolk_input_facts *facts) {
    if (samples) *samples = NULL;
    if (n_samples) *n_samples = 0;
    if (facts) memset(facts, 0, sizeof *facts);
    if (!path || !samples || !n_samples)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_load: NULL argument");
    tolk_audio_reader *r = NULL;
    tolk_status st = tolk_audio_open(ctx, path, &r);
    if (st != TOLK_OK) return st;
    st = read_all(ctx, r, samples, n_samples);
    if (st == TOLK_OK && facts) tolk_audio_input_facts(r, facts);
    tolk_audio_close(r);
    return st;
}

tolk_status tolk_audio_load(tolk_ctx *ctx, const char *path, float **samples, size_t *n_samples) {
    return tolk_audio_load_facts(ctx, path, samples, n_samples, NULL);
}

tolk_status tolk_audio_load_memory(tolk_ctx *ctx, const void *data, size_t size, const char *name,
                                   float **samples, size_t *n_samples) {
    if (samples) *samples = NULL;
    if (n_samples) *n_samples = 0;
    if (!name) name = "<memory>";
    if ((!data && size > 0) || !samples || !n_samples)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_audio_load_memory: NULL argument");
    tolk_clear_error(ctx);
    tolk_audio_reader *r = NULL;
    tolk_status st = reader_open(ctx, NULL, data, size, name, &r);
    if (st != TOLK_OK) return st;
    st = read_all(ctx, r, samples, n_samples);
    tolk_audio_close(r);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Resampling, padding, build facts                                         */
/* ------------------------------------------------------------------------ */

tolk_status tolk_resample(tolk_ctx *ctx, const float *in, size_t n_in, double in_rate,
                          double out_rate, float **out, size_t *n_out) {
    if (out) *out = NULL;
    if (n_out) *n_out = 0;
    if (!out || !n_out || (!in && n_in > 0))
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG, "tolk_resample: NULL argument");
    if (!(in_rate >= 1.0 && in_rate <= 1e8) || !(out_rate >= 1.0 && out_rate <= 1e8) ||
        in_rate / out_rate > 256.0 || out_rate / in_rate > 256.0)
        return tolk_fail(ctx, TOLK_ERR_INVALID_ARG,
                         "tolk_resample: rates %g -> %g Hz out of range (1..1e8 Hz, ratio <= 256)",
                         in_rate, out_rate);
    if (n_in == 0) return tolk_fail(ctx, TOLK_ERR_EMPTY, "tolk_resample: no input samples");
    double est = ceil((double)n_in * (out_rate / in_rate)) + 64.0;
    if (!(est < (double)(SIZE_MAX / sizeof(float))) || est > 9e15)
        return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: output too large");
    size_t cap = (size_t)est;
    float *buf = tolk_malloc_array(cap, sizeof(float));
    if (!buf) return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: out of memory");
    if (in_rate == out_rate) {
        memcpy(buf, in, n_in * sizeof(float));
        *out = buf;
        *n_out = n_in;
        return TOLK_OK;
    }
    const char *err = NULL;
    soxr_t s = make_soxr(in_rate, out_rate, &err);
    if (!s) {
        free(buf);
        return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: %s", err);
    }
    size_t len = 0, pos = 0;
    int stalls = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap;
            float *nb = NULL;
            size_t bytes;
            if (tolk_mul_size(cap, 2, &ncap) && tolk_mul_size(ncap, sizeof(float), &bytes))
                nb = realloc(buf, bytes);
            if (!nb) {
                soxr_delete(s);
                free(buf);
                return tolk_fail(ctx, TOLK_ERR_NOMEM, "tolk_resample: out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        size_t idone = 0, odone = 0;
        soxr_error_t e;
        if (pos < n_in)
            e = soxr_process(s, in + pos, n_in - pos, &idone, buf + len, cap - len, &odone);
        else
            e = soxr_process(s, NULL, 0, NULL, buf + len, cap - len, &odone);
        if (e) {
            soxr_delete(s);
            free(buf);
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: libsoxr: %s", e);
        }
        int at_end = pos >= n_in;
        pos += idone;
        len += odone;
        if (at_end && odone == 0) break;
        if (idone == 0 && odone == 0 && !at_end && ++stalls > 1000) {
            soxr_delete(s);
            free(buf);
            return tolk_fail(ctx, TOLK_ERR_INTERNAL, "tolk_resample: no progress");
        }
    }
    soxr_delete(s);
    *out = buf;
    *n_out = len;
    return TOLK_OK;
}

void tolk_audio_pad_or_trim(const float *src, size_t n, float *dst) {
    if (!dst) return;
    size_t k = n < (size_t)TOLK_N_SAMPLES ? n : (size_t)TOLK_N_SAMPLES;
    if (k > 0 && src)
        memcpy(dst, src, k * sizeof(float));
    else
        k = 0;
    memset(dst + k, 0, ((size_t)TOLK_N_SAMPLES - k) * sizeof(float));
}

int tolk_audio_has_ffmpeg(void) {
#ifdef TOLK_HAVE_FFMPEG
    return 1;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* Truncation facts of a transcription's input                              */
/* ------------------------------------------------------------------------ */

void tolk_audio_input_facts(const tolk_audio_reader *r, tolk_input_facts *out) {
    int64_t expected = -1, decoded = 0;
    memset(out, 0, sizeof *out);
    if (!r || !tolk_audio_truncated(r, &expected, &decoded) || r->rate <= 0) return;
    out->truncated = 1;
    out->expected_s = expected >= 0 ? (double)expected / r->rate : -1.0;
    out->decoded_s = (double)decoded / r->rate;
}

int tolk_result_input_truncated(const tolk_result *result, double *expected_s, double *decoded_s) {
    const int t = result && result->input.truncated;
    if (expected_s) *expected_s = t ? result->input.expected_s : -1.0;
    if (decoded_s) *decoded_s = t ? result->input.decoded_s : 0.0;
    return t;
}

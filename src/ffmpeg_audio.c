/*
 * ffmpeg_audio.c — the optional second audio decoder, through the FFmpeg
 * libraries (libavformat + libavcodec), for containers libsndfile cannot
 * open: m4a/AAC, mp4, mov, webm, mkv, ADTS AAC, ... It is compiled only when
 * the build finds FFmpeg (TOLK_HAVE_FFMPEG) and audio.c uses it only after
 * libsndfile has refused the input.
 *
 * Reference behaviour: openai-whisper decodes every file with the ffmpeg
 * program; this decodes the same streams with the same libraries (the
 * stream av_find_best_stream picks, as ffmpeg's default stream selection
 * does) but keeps the decoder's native precision: samples become float32
 * at the source rate (int16 / 32768, int32 / 2^31, float as is) and the
 * caller mixes and resamples.
 *
 * Hostile input: all I/O goes through our own AVIOContext (no URL or
 * protocol handling), the demuxer may not open any other file (io_open is
 * refused: no HLS/DASH/concat/mov references), the format must be found by
 * content with a solid probe score, decoding uses one thread, and broken
 * packets are skipped up to a limit.
 */
#include "audio_internal.h"

#ifdef TOLK_HAVE_FFMPEG

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FF_IO_BUFFER 32768
/* Consecutive undecodable packets / frames tolerated before giving up. */
#define FF_MAX_ERRORS 64
/* Largest frame (samples per channel) accepted from a decoder. */
#define FF_MAX_FRAME_SAMPLES (1 << 20)

struct tolk_ff_source {
    int fd;                    /* dup of the caller's file, or -1 */
    const unsigned char *data; /* or bytes in memory */
    int64_t size;              /* bytes in the input */
    int64_t pos;               /* read position */
    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream; /* index of the decoded stream */
    int rate, channels;
    int flushed;    /* NULL packet sent: the decoder is draining */
    int have_frame; /* frame holds samples not yet handed out */
    int frame_pos;  /* samples of frame already handed out */
    int errors;     /* consecutive decode errors */
};

/* ------------------------------------------------------------------------ */
/* I/O callbacks over a file descriptor or memory                           */
/* ------------------------------------------------------------------------ */

static int io_read(void *opaque, uint8_t *buf, int n) {
    tolk_ff_source *s = opaque;
    if (n <= 0) return 0;
    if (s->pos >= s->size) return AVERROR_EOF;
    int64_t left = s->size - s->pos;
    if (n > left) n = (int)left;
    if (s->fd >= 0) {
        ssize_t r;
        do {
            r = pread(s->fd, buf, (size_t)n, (off_t)s->pos);
        } while (r < 0 && errno == EINTR);
        if (r < 0) return AVERROR(errno);
        if (r == 0) return AVERROR_EOF;
        n = (int)r;
    } else {
        memcpy(buf, s->data + s->pos, (size_t)n);
    }
    s->pos += n;
    return n;
}

static int64_t io_seek(void *opaque, int64_t offset, int whence) {
    tolk_ff_source *s = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return s->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = s->pos;
        break;
    case SEEK_END:
        base = s->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < -base || offset > INT64_MAX - base) return AVERROR(EINVAL);
    /* Seeking past the end is allowed (reads then return EOF). */
    s->pos = base + offset;
    return s->pos;
}

/* Demuxers of containers that carry audio. Anything else FFmpeg can probe
 * (image pipes, subtitles, playlists, text) is refused: less attack
 * surface, and no decoding of pictures to find an audio stream. */
static const char *const AUDIO_DEMUXERS[] = {
    "aac",      "ac3",   "aiff", "amr",   "amrnb", "amrwb",  "ape",  "asf",  "au",     "avi",
    "caf",      "dsf",   "dts",  "dtshd", "eac3",  "flac",   "flv",  "gsm",  "loas",   "m4a",
    "matroska", "mlp",   "mov",  "mp3",   "mp4",   "mpc",    "mpc8", "mpeg", "mpegts", "mxf",
    "nut",      "ogg",   "oma",  "rm",    "spdif", "truehd", "tta",  "voc",  "w64",    "wav",
    "webm",     "wsaud", "wv",   "xwma",  "3gp",   "3g2",    NULL};

/* Whether a demuxer's comma-separated name list names an audio container. */
static int is_audio_demuxer(const char *names) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", names ? names : "");
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        for (int i = 0; AUDIO_DEMUXERS[i]; i++)
            if (strcmp(t, AUDIO_DEMUXERS[i]) == 0) return 1;
    return 0;
}

/* Demuxers may not open other files or URLs. */
static int io_open_refused(struct AVFormatContext *fmt, AVIOContext **pb, const char *url,
                           int flags, AVDictionary **options) {
    *pb = NULL;
    return AVERROR(EPERM);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void why_av(char why[TOLK_AUDIO_WHY_MAX], const char *what, int err) {
    char e[128];
    if (av_strerror(err, e, sizeof e) < 0) snprintf(e, sizeof e, "error %d", err);
    snprintf(why, TOLK_AUDIO_WHY_MAX, "%s: %s", what, e);
}

/* FFmpeg logs to stderr by default; the library never prints. Quieten it
 * only while the host program has left the level at its default. */
static void quiet_ffmpeg_logging(void) {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET);
}

void tolk_ff_close(tolk_ff_source *s) {
    if (!s) return;
    av_frame_free(&s->frame);
    av_packet_free(&s->pkt);
    avcodec_free_context(&s->dec);
    avformat_close_input(&s->fmt);
    if (s->avio) {
        av_freep(&s->avio->buffer);
        avio_context_free(&s->avio);
    }
    if (s->fd >= 0) close(s->fd);
    free(s);
}

const char *tolk_ff_container(const tolk_ff_source *s) {
    return s && s->fmt && s->fmt->iformat ? s->fmt->iformat->name : "?";
}

/* Get the next decoded frame into s->frame. Returns 1 (frame), 0 (end of
 * stream) or a tolk_status as a negative number on failure. */
static int next_frame(tolk_ff_source *s, char why[TOLK_AUDIO_WHY_MAX]) {
    for (;;) {
        int ret = avcodec_receive_frame(s->dec, s->frame);
        if (ret == 0) {
            if (s->frame->nb_samples <= 0) {
                av_frame_unref(s->frame);
                continue;
            }
            s->errors = 0;
            return 1;
        }
        if (ret == AVERROR_EOF) return 0;
        if (ret != AVERROR(EAGAIN)) {
            if (++s->errors > FF_MAX_ERRORS) {
                why_av(why, "too many decoding errors", ret);
                return -(int)TOLK_ERR_FORMAT;
            }
            if (s->flushed) return 0;
            continue;
        }
        if (s->flushed) return 0; /* draining yet EAGAIN: nothing more */
        ret = av_read_frame(s->fmt, s->pkt);
        if (ret < 0) {
            /* End of file, or a demuxing error: treat both as the end and
             * drain what the decoder holds. */
            avcodec_send_packet(s->dec, NULL);
            s->flushed = 1;
            continue;
        }
        if (s->pkt->stream_index != s->stream) {
            av_packet_unref(s->pkt);
            continue;
        }
        ret = avcodec_send_packet(s->dec, s->pkt);
        av_packet_unref(s->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN) && ++s->errors > FF_MAX_ERRORS) {
            why_av(why, "too many undecodable packets", ret);
            return -(int)TOLK_ERR_FORMAT;
        }
    }
}

/* Check that s->frame matches the stream's rate and channel count. */
static tolk_status check_frame(tolk_ff_source *s, char why[TOLK_AUDIO_WHY_MAX]) {
    const AVFrame *f = s->frame;
    if (f->ch_layout.nb_channels != s->channels || f->sample_rate != s->rate) {
        snprintf(why, TOLK_AUDIO_WHY_MAX,
                 "the stream changes format mid-stream (%d Hz x %d -> %d Hz x %d)", s->rate,
                 s->channels, f->sample_rate, f->ch_layout.nb_channels);
        return TOLK_ERR_UNSUPPORTED;
    }
    if (f->nb_samples > FF_MAX_FRAME_SAMPLES) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "absurd frame of %d samples", f->nb_samples);
        return TOLK_ERR_FORMAT;
    }
    switch (f->format) {
    case AV_SAMPLE_FMT_U8:
    case AV_SAMPLE_FMT_S16:
    case AV_SAMPLE_FMT_S32:
    case AV_SAMPLE_FMT_FLT:
    case AV_SAMPLE_FMT_DBL:
    case AV_SAMPLE_FMT_S64:
    case AV_SAMPLE_FMT_U8P:
    case AV_SAMPLE_FMT_S16P:
    case AV_SAMPLE_FMT_S32P:
    case AV_SAMPLE_FMT_FLTP:
    case AV_SAMPLE_FMT_DBLP:
    case AV_SAMPLE_FMT_S64P:
        return TOLK_OK;
    default:
        snprintf(why, TOLK_AUDIO_WHY_MAX, "unsupported sample format %d", f->format);
        return TOLK_ERR_UNSUPPORTED;
    }
}

/* One sample of frame f: channel c, index i, as float (int16 / 32768 etc.). */
static inline float sample_at(const AVFrame *f, int planar, int C, int c, int i) {
    const uint8_t *p = planar ? f->extended_data[c] : f->extended_data[0];
    size_t k = planar ? (size_t)i : (size_t)i * (size_t)C + (size_t)c;
    switch (f->format) {
    case AV_SAMPLE_FMT_U8:
    case AV_SAMPLE_FMT_U8P:
        return (float)((int)p[k] - 128) * (1.0f / 128.0f);
    case AV_SAMPLE_FMT_S16:
    case AV_SAMPLE_FMT_S16P:
        return (float)((const int16_t *)p)[k] * (1.0f / 32768.0f);
    case AV_SAMPLE_FMT_S32:
    case AV_SAMPLE_FMT_S32P:
        return (float)((double)((const int32_t *)p)[k] * (1.0 / 2147483648.0));
    case AV_SAMPLE_FMT_FLT:
    case AV_SAMPLE_FMT_FLTP:
        return ((const float *)p)[k];
    case AV_SAMPLE_FMT_DBL:
    case AV_SAMPLE_FMT_DBLP:
        return (float)((const double *)p)[k];
    case AV_SAMPLE_FMT_S64:
    case AV_SAMPLE_FMT_S64P:
        return (float)((double)((const int64_t *)p)[k] * (1.0 / 9223372036854775808.0));
    default:
        return 0.0f;
    }
}

/* ------------------------------------------------------------------------ */
/* Open / read                                                              */
/* ------------------------------------------------------------------------ */

tolk_status tolk_ff_open(int fd, const void *data, size_t size, tolk_ff_source **out, int *rate,
                         int *channels, char why[TOLK_AUDIO_WHY_MAX]) {
    *out = NULL;
    why[0] = '\0';
    quiet_ffmpeg_logging();
    tolk_ff_source *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "out of memory");
        return TOLK_ERR_NOMEM;
    }
    s->fd = -1;
    s->stream = -1;
    tolk_status st = TOLK_ERR_FORMAT;
    int ret;
    if (fd >= 0) {
        off_t end = lseek(fd, 0, SEEK_END);
        s->fd = dup(fd);
        if (end < 0 || s->fd < 0) {
            snprintf(why, TOLK_AUDIO_WHY_MAX, "%s", strerror(errno));
            st = TOLK_ERR_IO;
            goto fail;
        }
        lseek(fd, 0, SEEK_SET);
        s->size = (int64_t)end;
    } else {
        if ((uint64_t)size > (uint64_t)INT64_MAX) {
            snprintf(why, TOLK_AUDIO_WHY_MAX, "input too large");
            goto fail;
        }
        s->data = data;
        s->size = (int64_t)size;
    }

    unsigned char *iobuf = av_malloc(FF_IO_BUFFER);
    if (!iobuf) goto nomem;
    s->avio = avio_alloc_context(iobuf, FF_IO_BUFFER, 0, s, io_read, NULL, io_seek);
    if (!s->avio) {
        av_free(iobuf);
        goto nomem;
    }
    /* Find the format by content only (no file name, so no extension
     * guesses), and insist on a solid score: weak guesses on garbage are
     * how noise gets "decoded". */
    const AVInputFormat *ifmt = NULL;
    ret = av_probe_input_buffer2(s->avio, &ifmt, "", NULL, 0, 0);
    if (ret < 0 || !ifmt) {
        why_av(why, "format not recognised", ret < 0 ? ret : AVERROR_INVALIDDATA);
        goto fail;
    }
    if (ret < AVPROBE_SCORE_RETRY || (ifmt->flags & AVFMT_NOFILE)) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "format not recognised (weak guess: %s, score %d)",
                 ifmt->name, ret);
        goto fail;
    }
    if (!is_audio_demuxer(ifmt->name)) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "%s content is not an audio container", ifmt->name);
        goto fail;
    }
    s->fmt = avformat_alloc_context();
    if (!s->fmt) goto nomem;
    s->fmt->pb = s->avio;
    s->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    s->fmt->io_open = io_open_refused;
    ret = avformat_open_input(&s->fmt, "", ifmt, NULL);
    if (ret < 0) {
        /* avformat_open_input frees the context on failure. */
        s->fmt = NULL;
        why_av(why, ifmt->name, ret);
        goto fail;
    }
    /* Only audio streams are of interest: do not decode the others while
     * looking for stream parameters. */
    for (unsigned i = 0; i < s->fmt->nb_streams; i++)
        if (s->fmt->streams[i]->codecpar->codec_type != AVMEDIA_TYPE_AUDIO)
            s->fmt->streams[i]->discard = AVDISCARD_ALL;
    ret = avformat_find_stream_info(s->fmt, NULL);
    if (ret < 0) {
        why_av(why, "cannot read stream information", ret);
        goto fail;
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(s->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (ret < 0 || !codec) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "%s container without a decodable audio stream",
                 s->fmt->iformat->name);
        st = ret == AVERROR_DECODER_NOT_FOUND ? TOLK_ERR_UNSUPPORTED : TOLK_ERR_FORMAT;
        goto fail;
    }
    s->stream = ret;
    const AVCodecParameters *par = s->fmt->streams[s->stream]->codecpar;
    if (par->ch_layout.nb_channels > TOLK_AUDIO_MAX_CHANNELS || par->ch_layout.nb_channels < 0) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "absurd channel count %d", par->ch_layout.nb_channels);
        goto fail;
    }
    for (unsigned i = 0; i < s->fmt->nb_streams; i++)
        if ((int)i != s->stream) s->fmt->streams[i]->discard = AVDISCARD_ALL;
    s->dec = avcodec_alloc_context3(codec);
    if (!s->dec) goto nomem;
    ret = avcodec_parameters_to_context(s->dec, s->fmt->streams[s->stream]->codecpar);
    if (ret < 0) {
        why_av(why, "bad codec parameters", ret);
        goto fail;
    }
    s->dec->thread_count = 1;
    ret = avcodec_open2(s->dec, codec, NULL);
    if (ret < 0) {
        why_av(why, codec->name, ret);
        st = ret == AVERROR_PATCHWELCOME || ret == AVERROR(ENOSYS) ? TOLK_ERR_UNSUPPORTED
                                                                   : TOLK_ERR_FORMAT;
        goto fail;
    }
    s->pkt = av_packet_alloc();
    s->frame = av_frame_alloc();
    if (!s->pkt || !s->frame) goto nomem;

    /* Decode the first frame: it fixes the rate and channel count, and
     * proves the stream decodes. */
    ret = next_frame(s, why);
    if (ret < 0) {
        st = (tolk_status)(-ret);
        goto fail;
    }
    if (ret == 0) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "%s stream of the %s container holds no samples",
                 codec->name, s->fmt->iformat->name);
        st = TOLK_ERR_EMPTY;
        goto fail;
    }
    s->rate = s->frame->sample_rate;
    s->channels = s->frame->ch_layout.nb_channels;
    if (s->channels < 1 || s->channels > TOLK_AUDIO_MAX_CHANNELS) {
        snprintf(why, TOLK_AUDIO_WHY_MAX, "absurd channel count %d", s->channels);
        goto fail;
    }
    st = check_frame(s, why);
    if (st != TOLK_OK) goto fail;
    s->have_frame = 1;
    s->frame_pos = 0;
    *rate = s->rate;
    *channels = s->channels;
    *out = s;
    return TOLK_OK;
nomem:
    snprintf(why, TOLK_AUDIO_WHY_MAX, "out of memory");
    st = TOLK_ERR_NOMEM;
fail:
    tolk_ff_close(s);
    return st;
}

tolk_status tolk_ff_read(tolk_ff_source *s, float *dst, size_t max_frames, size_t *got,
                         char why[TOLK_AUDIO_WHY_MAX]) {
    *got = 0;
    size_t n = 0;
    const int C = s->channels;
    while (n < max_frames) {
        if (!s->have_frame) {
            av_frame_unref(s->frame);
            int ret = next_frame(s, why);
            if (ret < 0) return (tolk_status)(-ret);
            if (ret == 0) break;
            tolk_status st = check_frame(s, why);
            if (st != TOLK_OK) return st;
            s->have_frame = 1;
            s->frame_pos = 0;
        }
        const AVFrame *f = s->frame;
        const int planar = av_sample_fmt_is_planar(f->format);
        size_t k = (size_t)(f->nb_samples - s->frame_pos);
        if (k > max_frames - n) k = max_frames - n;
        for (size_t i = 0; i < k; i++) {
            float *o = dst + (n + i) * (size_t)C;
            for (int c = 0; c < C; c++)
                o[c] = sample_at(f, planar, C, c, s->frame_pos + (int)i);
        }
        n += k;
        s->frame_pos += (int)k;
        if (s->frame_pos >= f->nb_samples) s->have_frame = 0;
    }
    *got = n;
    return TOLK_OK;
}

#endif /* TOLK_HAVE_FFMPEG */

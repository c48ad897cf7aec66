/*
 * cli.h — the tolk command-line program's subcommands. The CLI uses the
 * public API (tolk.h) only.
 */
#ifndef TOLK_CLI_H
#define TOLK_CLI_H

#include "tolk.h"

#include <stddef.h>

/* Each subcommand gets argv from its own name on (argv[0] = "mel", ...) and
 * returns the process exit status: 0 success, 1 failure, 2 usage error. */
int cli_mel(int argc, char **argv);        /* cmd_mel.c */
int cli_model(int argc, char **argv);      /* cmd_model.c */
int cli_transcribe(int argc, char **argv); /* cmd_transcribe.c */
int cli_translate(int argc, char **argv);  /* cmd_transcribe.c */
int cli_bench(int argc, char **argv);      /* cmd_bench.c */
int cli_vad(int argc, char **argv);        /* cmd_vad.c */
int cli_mt(int argc, char **argv);         /* cmd_mt.c */

/* Speech translation into languages other than English (cmd_mt.c), used by
 * `tolk translate --to LANG`: Whisper transcribes when a text model from
 * the spoken language to LANG exists (or the speech is in LANG), else
 * translates to English, then a text model en -> LANG translates the
 * segments (timestamps kept). */
struct cli_args;
struct tolk_transcribe_params;
typedef struct cli_mt_pivot cli_mt_pivot;
/* From --to / --mt_model_dir / --mt_beam_size / --shortlist / --split /
 * --max_tokens: *out NULL when --to is absent or en (Whisper's own
 * task). Returns 0, 1 (reported) or 2 (usage error). */
int cli_mt_pivot_new(const struct cli_args *a, const char *cmd, cli_mt_pivot **out);
/* Choose Whisper's task and language for one file (the language
 * identified on its first 30 s when not given) and the text model. 0 or
 * 1 (reported). */
int cli_mt_pivot_plan(cli_mt_pivot *pv, tolk_ctx *ctx, tolk_state *state, const char *path,
                      struct tolk_transcribe_params *p);
/* Translate the file's result in place; summary ("de->en (Whisper)->pt,
 * mt 0.042 s") for the progress line. 0 or 1 (reported). */
int cli_mt_pivot_apply(cli_mt_pivot *pv, tolk_ctx *ctx, const char *path, tolk_result *res,
                       char *summary, size_t n);
void cli_mt_pivot_free(cli_mt_pivot *pv);
int cli_serve(int argc, char **argv);  /* cmd_serve.c */
int cli_stream(int argc, char **argv); /* cmd_stream.c */

#endif

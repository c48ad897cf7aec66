/*
 * cli.h — the tolk command-line program's subcommands. The CLI uses the
 * public API (tolk.h) only.
 */
#ifndef TOLK_CLI_H
#define TOLK_CLI_H

/* Each subcommand gets argv from its own name on (argv[0] = "mel", ...) and
 * returns the process exit status: 0 success, 1 failure, 2 usage error. */
int cli_mel(int argc, char **argv);   /* cmd_mel.c */
int cli_model(int argc, char **argv); /* cmd_model.c */
int cli_transcribe(int argc, char **argv); /* cmd_transcribe.c */
int cli_translate(int argc, char **argv);  /* cmd_transcribe.c */
int cli_bench(int argc, char **argv);      /* cmd_bench.c */
int cli_vad(int argc, char **argv);        /* cmd_vad.c */

#endif

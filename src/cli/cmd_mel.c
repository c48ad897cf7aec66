/* cmd_mel.c — placeholder, replaced by the real subcommand. */
#include "cli.h"

#include <stdio.h>

int cli_mel(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tolk mel: not implemented yet\n");
    return 1;
}

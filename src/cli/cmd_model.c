/* cmd_model.c — placeholder, replaced by the real subcommand. */
#include "cli.h"

#include <stdio.h>

int cli_model(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tolk model: not implemented yet\n");
    return 1;
}

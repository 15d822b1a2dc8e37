/*
 * The client commands. Each connects to the master, does one thing, prints the result on stdout
 * (errors: one line on stderr) and returns the process exit status: 0 done, 1 refused or failed,
 * 3 master unreachable or auth refused.
 */
#ifndef CRAWLAB_CLI_COMMANDS_H
#define CRAWLAB_CLI_COMMANDS_H

#include "config.h"

int cli_nodes(const struct config *cfg, const char *auth_key);

#endif

/*
 * The client commands. Each connects to the master, does one thing, prints the result on stdout
 * (errors: one line on stderr) and returns the process exit status: 0 done, 1 refused or failed,
 * 3 master unreachable or auth refused.
 */
#ifndef CRAWLAB_CLI_COMMANDS_H
#define CRAWLAB_CLI_COMMANDS_H

#include "config.h"

int cli_nodes(const struct config *cfg, const char *auth_key);
int cli_submit(const struct config *cfg, const char *auth_key);
int cli_tasks(const struct config *cfg, const char *auth_key);
int cli_logs(const struct config *cfg, const char *auth_key);
int cli_results(const struct config *cfg, const char *auth_key);
int cli_cancel(const struct config *cfg, const char *auth_key);

/*
 * Joins words into one /bin/sh command line that splits back into exactly those words: a word
 * made only of [A-Za-z0-9_@%+=:,./-] goes as is, any other (the empty word too) in single
 * quotes, with ' written as '\''. Returns a malloc'd string the caller frees, or NULL when out
 * of memory. Pure; never blocks.
 */
char *cli_shell_join(char *const *words, size_t n);

#endif

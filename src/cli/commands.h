/*
 * The client commands. Each connects to the master, does one thing, prints the result on stdout
 * (errors: one line on stderr) and returns the process exit status: 0 done, 1 refused or failed,
 * 3 master unreachable or auth refused. Listings walk the master's pages on one connection and
 * print each page as it arrives.
 */
#ifndef CRAWLAB_CLI_COMMANDS_H
#define CRAWLAB_CLI_COMMANDS_H

#include "config.h"

struct tls_client;

/* tls: the TLS context of --tls-ca, NULL for plaintext; auth_key may be NULL. */
int cli_nodes(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* node enable|disable|drain|rm (cfg->node_action) of cfg->node_target, a key or a name. */
int cli_node(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_submit(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_tasks(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_tasks_purge(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_logs(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_results(const struct config *cfg, struct tls_client *tls, const char *auth_key);
int cli_cancel(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* task restart ID: prints the new task's id. */
int cli_task_restart(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* schedule add|list|show|pause|resume|rm (cfg->sched_action). */
int cli_schedule(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* spider push|list|show|rm (cfg->spider_action). push packs cfg->spider_dir into a temporary
 * file (spider/archive.h) and streams it, or sends cfg->spider_archive as it is. */
int cli_spider(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* Prints the master's metrics text as it is (Prometheus text format). */
int cli_metrics(const struct config *cfg, struct tls_client *tls, const char *auth_key);
/* Prints the events after --after (at most --limit; --follow: and new ones as they come), one a
 * line, or with --json one JSON object a line. */
int cli_events(const struct config *cfg, struct tls_client *tls, const char *auth_key);

/*
 * cert init: creates cfg->cert_dir (0700) if needed and in it ca.pem/ca.key (a new CA),
 * master.pem/master.key (subject alternative names: cfg->cert_hosts) and worker.pem/worker.key
 * (common name "worker"). cert issue: adds cfg->cert_name.pem/.key signed by the CA of
 * cfg->cert_dir. ECDSA P-256; keys are written 0600. An existing file is never replaced: then
 * nothing is written at all. Returns the exit status (0, or 1 with one line on stderr). Blocks
 * on file I/O; main thread.
 */
int cli_cert_init(const struct config *cfg);
int cli_cert_issue(const struct config *cfg);

/*
 * Joins words into one /bin/sh command line that splits back into exactly those words: a word
 * made only of [A-Za-z0-9_@%+=:,./-] goes as is, any other (the empty word too) in single
 * quotes, with ' written as '\''. Returns a malloc'd string the caller frees, or NULL when out
 * of memory. Pure; never blocks.
 */
char *cli_shell_join(char *const *words, size_t n);

/*
 * Fills spec (initialised by the caller) with the task the command line describes: the command
 * after "--" (cli_shell_join), env, timeout, priority, name, spider, as submit and schedule add
 * send it.
 * What it allocates hangs off spec->cmd and *block; cli_task_spec_free releases both. 0, or
 * -ENOMEM (then nothing is left to free).
 */
struct Grpc__TaskSpec;
int cli_task_spec(const struct config *cfg, struct Grpc__TaskSpec *spec, void **block);
void cli_task_spec_free(struct Grpc__TaskSpec *spec, void *block);

#endif

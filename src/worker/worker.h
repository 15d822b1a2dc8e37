/* The worker role. */
#ifndef CRAWLAB_WORKER_H
#define CRAWLAB_WORKER_H

#include "config.h"

struct tls_client;

/* Runs the worker until SIGTERM/SIGINT; auth_key may be NULL (no auth), tls too (plaintext).
 * Returns the exit status. */
int worker_main(const struct config *cfg, const char *auth_key, struct tls_client *tls);

#endif

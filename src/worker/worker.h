/* The worker role. */
#ifndef CRAWLAB_WORKER_H
#define CRAWLAB_WORKER_H

#include "config.h"

/* Runs the worker until SIGTERM/SIGINT; auth_key may be NULL (no auth). Returns the exit status. */
int worker_main(const struct config *cfg, const char *auth_key);

#endif

/*
 * The master role: opens the store, serves the node protocol and AdminService on one port, and
 * runs until SIGTERM or SIGINT. Runs on the calling thread (libev's default loop) and blocks
 * until the master stops.
 */
#ifndef CRAWLAB_MASTER_H
#define CRAWLAB_MASTER_H

#include "config.h"

/* Runs the master with cfg; returns the process exit status (0 after a clean stop, 1 when it
 * could not start). */
int master_main(const struct config *cfg);

#endif

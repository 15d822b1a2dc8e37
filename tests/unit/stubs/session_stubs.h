/*
 * Link-time fakes of the worker's session (worker/session.h), for unit tests of what uses a
 * session without a master to connect to. The session is always online on generation 1, with
 * auth key "key" and a data channel that must never be used but through the client fakes
 * (stubs/client_stubs.h). A test links session_stubs.c instead of worker/session.c.
 */
#ifndef CRAWLAB_TESTS_SESSION_STUBS_H
#define CRAWLAB_TESTS_SESSION_STUBS_H

#include <stdbool.h>

/* What the code under test did to the session. */
struct session_stubs {
    int connection_failures; /* session_connection_failed calls */
    char last_failure[256];  /* the reason given last */
    bool data_down;          /* set by a test: session_data_ready answers false */
};

extern struct session_stubs session_stubs;

/* Forgets what was recorded. */
void session_stubs_reset(void);

#endif

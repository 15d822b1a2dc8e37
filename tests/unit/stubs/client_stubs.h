/*
 * Link-time fakes of streaming client calls (rpc/client.h), for unit tests of what streams to the
 * master without a master. A call does nothing by itself: the test sees each call started and
 * each message written through hooks, and drives the calls with client_stubs_sent and
 * client_stubs_status, as gRPC would complete them. Up to CLIENT_STUBS_MAX_OPEN calls are open at
 * a time. A test links client_stubs.c instead of rpc/client.c; a write while one is pending, or
 * after the half-close, fails the test, since the real call would refuse it.
 */
#ifndef CRAWLAB_TESTS_CLIENT_STUBS_H
#define CRAWLAB_TESTS_CLIENT_STUBS_H

#include <stdbool.h>

#include <grpc/grpc.h>

#include "rpc/client.h"

#define CLIENT_STUBS_MAX_OPEN 4

/* The fake call, open to the test. */
struct rpc_call {
    const struct rpc_call_handler *h;
    void *user;
    int number; /* 1 for the first call started since the reset, 2 for the next... */
    bool write_pending, half_closed;
};

struct client_stubs {
    /* Set by the test (NULL: not told). on_write owns msg and must destroy it. */
    void (*on_start)(struct rpc_call *c, const char *method);
    void (*on_write)(struct rpc_call *c, grpc_byte_buffer *msg);
    /* Kept here. */
    struct rpc_call
        *open[CLIENT_STUBS_MAX_OPEN]; /* started, not ended nor released; oldest first */
    int n_open;
    int started;   /* calls started since the reset */
    int cancelled; /* calls released by their caller before they ended */
};

extern struct client_stubs client_stubs;

/* Forgets calls and hooks; calls still open are freed. */
void client_stubs_reset(void);

/* The newest open call, or NULL. */
struct rpc_call *client_stubs_newest(void);

/* Completes the pending write of an open call (ok false: it failed). */
void client_stubs_sent(struct rpc_call *c, bool ok);

/* Ends an open call with a status, as the server would; it is no longer open. */
void client_stubs_status(struct rpc_call *c, grpc_status_code status, const char *details);

#endif

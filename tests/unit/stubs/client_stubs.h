/*
 * Link-time fakes of streaming client calls (rpc/client.h), for unit tests of what streams to the
 * master without a master. A call does nothing by itself: the test sees each call started and
 * each message written through hooks, and drives the call with client_stubs_sent and
 * client_stubs_status, as gRPC would complete it. Only one call is open at a time. A test links
 * client_stubs.c instead of rpc/client.c; a write while one is pending, or after the half-close,
 * fails the test, since the real call would refuse it.
 */
#ifndef CRAWLAB_TESTS_CLIENT_STUBS_H
#define CRAWLAB_TESTS_CLIENT_STUBS_H

#include <stdbool.h>

#include <grpc/grpc.h>

#include "rpc/client.h"

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
    struct rpc_call *open; /* the call started and not yet released, or NULL */
    int started;           /* calls started since the reset */
};

extern struct client_stubs client_stubs;

/* Forgets calls and hooks; a call still open is freed. */
void client_stubs_reset(void);

/* Completes the pending write of the open call (ok false: it failed). */
void client_stubs_sent(bool ok);

/* Ends the open call with a status, as the server would; it is no longer the open one. */
void client_stubs_status(grpc_status_code status, const char *details);

#endif

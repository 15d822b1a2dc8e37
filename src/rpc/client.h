/*
 * Client calls on a channel, completed through the bridge on the loop thread.
 *
 * Every call carries the auth key as "authorization" metadata and a deadline when one is given.
 * Lifetime: the caller holds a call until rpc_call_release(); after that no callback but on_free
 * runs and the call cancels itself if it was still open. Unary calls are simpler: their callback
 * runs exactly once and the call frees itself after it.
 */
#ifndef CRAWLAB_CLIENT_H
#define CRAWLAB_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "runtime/bridge.h"

struct rpc_call;

struct rpc_call_handler {
    /* A message arrived (borrowed), or NULL at the end of the server's stream or on failure. */
    void (*on_message)(struct rpc_call *c, grpc_byte_buffer *msg);
    /* A rpc_call_write() or rpc_call_close_send() completed. */
    void (*on_sent)(struct rpc_call *c, bool ok);
    /* The call ended with this status; after it the call only waits for release. It comes after
     * the last on_message: a read pending when the call ends is answered first. */
    void (*on_status)(struct rpc_call *c, grpc_status_code status, const char *details);
    /* Last callback, after release. */
    void (*on_free)(struct rpc_call *c);
};

/* Channel arguments every channel of ours uses: keepalive and message size limits. */
grpc_channel_args *rpc_channel_args(void);

/* Starts a streaming call. timeout_ms 0 means no deadline. NULL only on out-of-memory. */
struct rpc_call *rpc_call_start(struct bridge *br, grpc_channel *ch, const char *method,
                                const char *auth_key, uint64_t timeout_ms,
                                const struct rpc_call_handler *h, void *user);
void *rpc_call_user(const struct rpc_call *c);
/* Sends a message (ownership passes). -EBUSY when a send is pending, -ESHUTDOWN when ended. */
int rpc_call_write(struct rpc_call *c, grpc_byte_buffer *msg);
/* Sends a last message and half-closes in one step (ownership of msg passes). */
int rpc_call_write_last(struct rpc_call *c, grpc_byte_buffer *msg);
/* Half-closes the client side (once). */
int rpc_call_close_send(struct rpc_call *c);
/* Starts reading one message. */
int rpc_call_read(struct rpc_call *c);
bool rpc_call_write_pending(const struct rpc_call *c);
void rpc_call_cancel(struct rpc_call *c);
void rpc_call_release(struct rpc_call *c);

/*
 * A unary call: sends req, and calls cb(user, status, details, response) once; response is NULL
 * unless status is OK, and is borrowed for the callback. The returned handle may be passed to
 * rpc_unary_cancel() until cb has run (then it is gone).
 */
typedef void (*rpc_unary_cb)(void *user, grpc_status_code status, const char *details,
                             grpc_byte_buffer *resp);
struct rpc_unary;
struct rpc_unary *rpc_unary(struct bridge *br, grpc_channel *ch, const char *method,
                            const char *auth_key, uint64_t timeout_ms, const ProtobufCMessage *req,
                            rpc_unary_cb cb, void *user);
void rpc_unary_cancel(struct rpc_unary *u);

#endif

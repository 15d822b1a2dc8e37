/*
 * Client calls on a channel, completed through the bridge on the loop thread.
 *
 * Every call carries the auth key as "authorization" metadata and a deadline when one is given.
 * Lifetime: the caller holds a call until cli_call_release(); after that no callback but on_free
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

struct cli_call;

struct cli_handler {
    /* A message arrived (borrowed), or NULL at the end of the server's stream or on failure. */
    void (*on_message)(struct cli_call *c, grpc_byte_buffer *msg);
    /* A cli_call_write() or cli_call_close_send() completed. */
    void (*on_sent)(struct cli_call *c, bool ok);
    /* The call ended with this status; after it the call only waits for release. */
    void (*on_status)(struct cli_call *c, grpc_status_code status, const char *details);
    /* Last callback, after release. */
    void (*on_free)(struct cli_call *c);
};

/* Channel arguments every channel of ours uses: keepalive and message size limits. */
grpc_channel_args *cli_channel_args(void);

/* Starts a streaming call. timeout_ms 0 means no deadline. NULL only on out-of-memory. */
struct cli_call *cli_call_start(struct bridge *br, grpc_channel *ch, const char *method,
                                const char *auth_key, uint64_t timeout_ms,
                                const struct cli_handler *h, void *user);
void *cli_call_user(const struct cli_call *c);
/* Sends a message (ownership passes). -EBUSY when a send is pending, -ESHUTDOWN when ended. */
int cli_call_write(struct cli_call *c, grpc_byte_buffer *msg);
/* Sends a last message and half-closes in one step (ownership of msg passes). */
int cli_call_write_last(struct cli_call *c, grpc_byte_buffer *msg);
/* Half-closes the client side (once). */
int cli_call_close_send(struct cli_call *c);
/* Starts reading one message. */
int cli_call_read(struct cli_call *c);
bool cli_call_write_pending(const struct cli_call *c);
void cli_call_cancel(struct cli_call *c);
void cli_call_release(struct cli_call *c);

/*
 * A unary call: sends req, and calls cb(user, status, details, response) once; response is NULL
 * unless status is OK, and is borrowed for the callback. The returned handle may be passed to
 * cli_unary_cancel() until cb has run (then it is gone).
 */
typedef void (*cli_unary_cb)(void *user, grpc_status_code status, const char *details,
                             grpc_byte_buffer *resp);
struct cli_unary;
struct cli_unary *cli_unary(struct bridge *br, grpc_channel *ch, const char *method,
                            const char *auth_key, uint64_t timeout_ms, const ProtobufCMessage *req,
                            cli_unary_cb cb, void *user);
void cli_unary_cancel(struct cli_unary *u);

#endif

/*
 * The gRPC server side: a method table, authentication, and per-call state machines.
 *
 * Everything here runs on the loop thread. Incoming calls are taken with generic requests (several
 * kept outstanding and re-armed at once), dispatched on the method path, and refused with
 * UNIMPLEMENTED, UNAUTHENTICATED or PERMISSION_DENIED before any handler sees them.
 *
 * Roles: each method is added with the role it needs (core/roles.h), ROLE_NODE for what workers
 * call, ROLE_ADMIN for AdminService. A call passes when its secret is the key of that role
 * (UNAUTHENTICATED for no key or a wrong one, PERMISSION_DENIED for the other role's key) and the
 * client certificate of its connection, if any, allows that role (PERMISSION_DENIED otherwise;
 * checked even without keys, with --insecure-no-auth).
 *
 * Connections: the server keeps a record of every connection handed to it (rpc_server_add_conn):
 * who is at the other end (address, client certificate) and what its calls cost. Each call is tied
 * to its connection's record when it arrives. The record lives until gRPC has closed the
 * connection (seen by a sweep once a second) or the server is gone, and as long as a call of it.
 *
 * Budgets per connection, so that one hostile connection cannot stall the loop (see
 * docs/security.md for the figures):
 * - Calls that are wasted -- refused (unknown method, wrong key, invalid request) or cancelled by
 *   the peer before the answer went out, as an HTTP/2 rapid reset does -- draw on a token bucket
 *   (RPC_CONN_WASTE_BURST at once, RPC_CONN_WASTE_PER_S a second after that). A connection that
 *   overdraws it is shut down (shutdown(2) on the fd gRPC owns: gRPC then tears the transport
 *   down, and with TLS the pump ends the TLS connection); the calls it had queued are dropped
 *   unanswered, without a batch.
 * - A connection must make its first authenticated call within auth_deadline_ms of being added
 *   (any call of a known method when authentication is off), else it is shut down the same way.
 * Both are logged at most once a second per kind, with the number held back. Refusals are
 * answered with one batch and never wait for the group commit: they are what a flood is made of.
 *
 * Call lifetime: a handler owns its call from the moment its method function runs until it calls
 * srv_call_finish() exactly once; after that it gets no callback but on_free. When the peer goes
 * away (disconnect, cancel, deadline) on_done(cancelled=true) tells the handler, which must still
 * finish the call.
 */
#ifndef CRAWLAB_SERVER_H
#define CRAWLAB_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "core/roles.h"
#include "runtime/bridge.h"

struct rpc_server;
struct srv_call;

struct srv_handler {
    /* A message arrived (borrowed, valid during the callback), or NULL at the client's half-close
     * or when the read failed. */
    void (*on_message)(struct srv_call *c, grpc_byte_buffer *msg);
    /* A srv_call_write() completed; ok false when the call is gone. */
    void (*on_sent)(struct srv_call *c, bool ok);
    /* The call is over on the peer's side; cancelled when it did not end with our status. */
    void (*on_done)(struct srv_call *c, bool cancelled);
    /* Last callback: release whatever srv_call_user() points to. */
    void (*on_free)(struct srv_call *c);
};

/* A unary method: req is decoded, validated (rpc/validate.h) and owned by the server (freed after
 * the function returns); a request that fails validation is answered by the server with the
 * validator's status and reason, and never reaches the function. The function must answer with
 * srv_call_reply() or srv_call_fail(), now or later. */
typedef void (*srv_unary_fn)(struct srv_call *c, void *ctx, const ProtobufCMessage *req);
/* A streaming method: set a handler with srv_call_bind(), then read, write and finish. */
typedef void (*srv_stream_fn)(struct srv_call *c, void *ctx);

struct rpc_server_options {
    const char *auth_key;      /* the node key; NULL with admin_key NULL: no authentication
                                * (--insecure-no-auth) */
    const char *admin_key;     /* the admin key; set exactly when auth_key is, and different */
    int keepalive_time_ms;     /* HTTP/2 ping interval towards clients */
    int keepalive_timeout_ms;  /* how long a ping may go unanswered */
    int min_client_ping_ms;    /* the most frequent client ping accepted */
    int max_streams_per_conn;  /* concurrent calls on one connection */
    uint64_t auth_deadline_ms; /* time a connection has for its first authenticated call; 0: none */
    bool peer_certs;           /* connections may show client certificates (TLS with a CA): a call
                                * that cannot be tied to its connection is then refused, since
                                * its certificate's role is unknown */
};

/* The budget of wasted calls per connection (see above). */
#define RPC_CONN_WASTE_BURST 100
#define RPC_CONN_WASTE_PER_S 10.0

/* Creates the server on the bridge's queue; methods are added before rpc_server_start(). */
int rpc_server_create(struct bridge *br, const struct rpc_server_options *opt,
                      struct rpc_server **out);
/* Adds a unary method that callers of role (ROLE_NODE or ROLE_ADMIN) may call; req must have a
 * validator (validate_lookup), else this aborts, as it does for any other role. A ROLE_NODE method
 * (the workers' calls, made all the time) is registered with gRPC, which reads its request with
 * the call: hence before rpc_server_start(). */
void rpc_server_add_unary(struct rpc_server *s, const char *path, enum role role,
                          const ProtobufCMessageDescriptor *req, srv_unary_fn fn, void *ctx);
void rpc_server_add_stream(struct rpc_server *s, const char *path, enum role role, srv_stream_fn fn,
                           void *ctx);
int rpc_server_start(struct rpc_server *s);

/*
 * Group commit support. before_unary runs before every unary method (the master opens its group
 * of store changes there). While hold() answers true, the replies of calls that finish are kept,
 * and rpc_server_release_replies() sends them once what they confirm is durable -- or, when it
 * was rolled back, turns every OK among them into UNAVAILABLE so that the caller retries.
 * flush() runs when the server shuts down with replies still held: it makes their changes durable
 * (or rolls them back) and releases them accordingly.
 */
struct rpc_server_hooks {
    void (*before_unary)(void *ctx);
    bool (*hold)(void *ctx);
    void (*flush)(void *ctx);
    void *ctx;
};
void rpc_server_set_hooks(struct rpc_server *s, const struct rpc_server_hooks *h);
void rpc_server_release_replies(struct rpc_server *s, bool durable);
/* The same in two steps: take the replies held so far (replies held after this wait for the next
 * release), and send them later, with what they confirm durable or not. */
struct srv_call *rpc_server_take_replies(struct rpc_server *s);
void rpc_server_send_replies(struct srv_call *taken, bool durable);
/* Whether replies are being held. */
bool rpc_server_holding(const struct rpc_server *s);
/* Calls refused so far for a missing or wrong secret or a role that may not make them. */
uint64_t rpc_server_auth_refused(const struct rpc_server *s);

/* Who is at the other end of a connection, as whoever accepted it knows. */
struct rpc_peer {
    const char *addr;    /* the remote address in words ("10.0.0.7:51234"), for log lines */
    const char *cert_cn; /* common name of the client certificate verified by TLS; NULL: none */
    enum cert_role cert_role; /* the role that certificate carries; CERT_ROLE_ABSENT: none */
};

/* Hands an accepted, non-blocking socket to gRPC, which owns and closes it from now on, and starts
 * the connection's record (peer is copied). After rpc_server_start(). gRPC gets the socket from a
 * helper thread, since it starts reading a socket on the thread that adds it. Returns 0, or
 * -ENOMEM / -errno of fstat(2): then fd is closed. */
int rpc_server_add_conn(struct rpc_server *s, int fd, const struct rpc_peer *peer);

/*
 * Stops taking calls (new ones are refused UNAVAILABLE); calls still open after grace_ms are
 * cancelled. gRPC's shutdown (GOAWAY, then each connection closed) waits until the calls are over
 * and their answers reached the peers, or the grace is over. done(ctx) runs once the server is
 * shut down and destroyed; by then handlers have seen on_done for every call.
 */
void rpc_server_shutdown(struct rpc_server *s, uint64_t grace_ms, void (*done)(void *ctx),
                         void *ctx);

/* Per-call operations, loop thread only. */
void srv_call_bind(struct srv_call *c, const struct srv_handler *h, void *user);
void *srv_call_user(const struct srv_call *c);
/* The remote address of the call's connection, as given to rpc_server_add_conn; "?" when the
 * call could not be tied to a connection. Valid as long as the call. */
const char *srv_call_peer(const struct srv_call *c);
/* The common name of the client certificate of the call's connection, or NULL when it showed
 * none. Valid as long as the call. */
const char *srv_call_cert_cn(const struct srv_call *c);
const char *srv_call_method(const struct srv_call *c);
/*
 * For streaming methods that read a request by hand: decodes msg (NULL is a missing request) as a
 * message of type d and validates it, as the server does for unary methods. Returns 0 and *out
 * (the caller frees it with protobuf_c_message_free_unpacked), or a negative errno and *why, a
 * static reason: the refusal is logged (at most once a second, with the peer) and the caller
 * finishes the call with codec_status_from_errno(rc) and *why.
 */
int srv_call_decode(struct srv_call *c, grpc_byte_buffer *msg, const ProtobufCMessageDescriptor *d,
                    ProtobufCMessage **out, const char **why);
/* Starts reading one message; -EBUSY when a read is already pending, -ESHUTDOWN after finish. */
int srv_call_read(struct srv_call *c);
/* Sends a message (ownership of msg passes here); -EBUSY when a write is pending. */
int srv_call_write(struct srv_call *c, grpc_byte_buffer *msg);
bool srv_call_write_pending(const struct srv_call *c);
/* Ends the call with a status and an optional last message (ownership passes). Once per call. */
void srv_call_finish(struct srv_call *c, grpc_status_code status, const char *details,
                     grpc_byte_buffer *msg);
void srv_call_reply(struct srv_call *c, const ProtobufCMessage *resp);
void srv_call_fail(struct srv_call *c, grpc_status_code status, const char *details);
/*
 * Replies at once, even while replies are held (rpc_server_set_hooks): for an answer that
 * promises nothing a crash could take back, because what it hands out is confirmed later by
 * another call whose reply is held. The master's FetchTask to a worker that claims (core/fence.h)
 * is one: the claim's commit makes the assignment durable, and a claim for an assignment a crash
 * took back is refused.
 */
void srv_call_reply_now(struct srv_call *c, const ProtobufCMessage *resp);

#endif

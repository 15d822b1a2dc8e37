/*
 * Blocking calls for the client commands: one connection to a master, calls completed with
 * grpc_completion_queue_pluck on a private queue. Client commands are short-lived and do one thing
 * at a time, so they need neither the loop nor the bridge. One thread uses a connection.
 *
 * Several masters (--master=A,B,...) are tried in their order, moving to the next only when the
 * current one cannot be reached: its dial fails (no address, refused, no answer within 5 s, TLS
 * handshake failed), or, for a call that changes nothing (List*, Read*, Metrics), the call ends
 * UNAVAILABLE before that master answered anything on the connection. Once a master has answered,
 * with an error too, the connection stays with it and its answers are final; a call that changes
 * something (SubmitTask, CancelTask...) is never sent twice, as the master that went away may have
 * applied it. A read that streams (cli_conn_read) goes on with another master when its own goes
 * away mid-stream, from where it stopped. Each master that could not be reached gets its line on
 * stderr. After a call that did not end OK the connection may have no master left: only
 * cli_conn_close() may follow.
 */
#ifndef CRAWLAB_CLI_CONN_H
#define CRAWLAB_CLI_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "config.h"

struct tls_client;
struct dial_tunnel;

struct cli_conn {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    char *auth_key;
    char target[300];
    bool tls;                   /* for the hints of failed calls */
    struct dial_tunnel *tunnel; /* with TLS: the thread that pumps the connection */
    int watch_fd;               /* a duplicate of the connection's socket, to see it reset */
    const struct config *cfg;   /* borrowed: the masters */
    struct tls_client *tls_ctx; /* borrowed; NULL: plaintext */
    size_t master;              /* the index in cfg->masters of the one connected to */
    bool answered;              /* it has answered a call: the connection stays with it */
};

/* Connects to the first of cfg->masters that can be reached, through tls (borrowed, it must
 * outlive the connection) or in plaintext when NULL; cfg too must outlive the connection. On
 * failure, one line on stderr per master tried, and -errno. auth_key may be NULL. */
int cli_conn_open(struct cli_conn *c, const struct config *cfg, struct tls_client *tls,
                  const char *auth_key);
void cli_conn_close(struct cli_conn *c);

/* A unary call with a 10 s deadline. On a status other than OK prints one line on stderr naming
 * the status and returns it; on OK *resp is set (free with protobuf_c_message_free_unpacked). */
grpc_status_code cli_conn_unary(struct cli_conn *c, const char *method, const ProtobufCMessage *req,
                                const ProtobufCMessageDescriptor *resp_desc,
                                ProtobufCMessage **resp);

/* A server-streaming call: on_message runs for each message until the stream ends or it returns
 * non-zero (then the call is cancelled). Prints and returns a non-OK status like cli_conn_unary. */
grpc_status_code cli_conn_stream(struct cli_conn *c, const char *method,
                                 const ProtobufCMessage *req,
                                 const ProtobufCMessageDescriptor *resp_desc,
                                 int (*on_message)(void *ctx, const ProtobufCMessage *m),
                                 void *ctx);

/* A read that can go on where it stopped (ReadLogs, ReadResults, ReadEvents), as cli_conn_stream,
 * except that a master going away mid-stream (UNAVAILABLE) is not the end when the command knows
 * others: the stream goes on with the next one that can be reached (one line on stderr), after
 * resume(ctx, req) changed req to ask for what comes after what on_message took; resume returns
 * false when nothing is left to ask for. Gives up (and returns UNAVAILABLE) when every master in
 * a row went away without sending anything. */
grpc_status_code cli_conn_read(struct cli_conn *c, const char *method, ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               int (*on_message)(void *ctx, const ProtobufCMessage *m),
                               bool (*resume)(void *ctx, ProtobufCMessage *req), void *ctx);

/* A client-streaming call without a deadline: next() gives each request (1 with *req, which it
 * keeps and may reuse after the next call; 0 after the last; a negative errno to give up, having
 * said why: the call is then cancelled and CANCELLED returned unprinted), then the one response
 * comes. Prints and returns a non-OK status like cli_conn_unary. */
grpc_status_code cli_conn_upload(struct cli_conn *c, const char *method,
                                 int (*next)(void *ctx, ProtobufCMessage **req), void *ctx,
                                 const ProtobufCMessageDescriptor *resp_desc,
                                 ProtobufCMessage **resp);

/* One unary call on a connection of its own, for a command that makes only that call: opens it,
 * calls method, closes it. Returns 0 with *resp set (free with protobuf_c_message_free_unpacked),
 * or the exit status of the failure, said on stderr: 3 when no master could be reached, else
 * cli_exit_status. */
int cli_call(const struct config *cfg, struct tls_client *tls, const char *auth_key,
             const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp);

/*
 * A listing that comes in pages (ListNodes, ListTasks), as cli_list walks it: req asks for each
 * page, its limit and page_token set, and each entry is printed as it arrives, under the table's
 * header or, with json, as an element of one JSON array.
 */
struct cli_listing {
    const char *method;
    ProtobufCMessage *req;
    uint32_t *limit;   /* in req: the entries still wanted, 0 for a page's worth */
    char **page_token; /* in req: "" for the first page */
    const ProtobufCMessageDescriptor *resp_desc;
    /* How many entries a page holds; *next: the token of the page after it, "" for none. */
    size_t (*entries)(const ProtobufCMessage *page, const char **next);
    /* Prints the table's header, before the first page's entries (not with json). */
    void (*header)(void);
    /* Prints entry i of page: a table row, or with json its JSON text. */
    void (*print)(void *ctx, const ProtobufCMessage *page, size_t i, bool json);
    void *ctx;
    bool json;
};

/* Walks l's pages from the first on a connection of its own, printing each entry, until want
 * entries are printed (0: all there are); *shown says how many, *more whether any were left out.
 * With json, when every call was OK, the JSON array is closed ("[]" for no entry). Returns 0, or
 * the exit status of the failure: as cli_call's, or 1 when stdout could not be written. */
int cli_list(const struct config *cfg, struct tls_client *tls, const char *auth_key,
             const struct cli_listing *l, unsigned want, unsigned *shown, bool *more);

/* A wall-clock time in ms as UTC ISO 8601 ("-" for 0), for tables. */
void cli_format_time(int64_t ms, char *buf, size_t len);

/* Labels (KEY=VALUE) as a JSON array of strings, for --json; NULL when out of memory. */
struct json_t;
struct json_t *cli_labels_json(char *const *labels, size_t n);
/* Labels as one table cell: "K=V,K=V", "-" for none, cut to fit len. */
void cli_format_labels(char *const *labels, size_t n, char *buf, size_t len);

/* Exit status for a failed call: 3 for "cannot reach or not allowed", 1 otherwise. */
int cli_exit_status(grpc_status_code st);

#endif

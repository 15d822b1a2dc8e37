/*
 * TLS 1.3 through wolfSSL, outside gRPC: gRPC core is linked in its unsecure build and only takes
 * plaintext file descriptors, so TLS lives here.
 *
 * A connection starts with a non-blocking handshake on the loop (server side: tls_accept(),
 * client side: tls_connect()). When it succeeds a socketpair is made: one end, O_NONBLOCK, goes
 * to the caller (and from there to gRPC), the other stays with the "pump", which moves bytes
 * between the TLS socket and that end in both directions until either side closes. The pump has
 * one bounded buffer per direction and a bounded read-ahead of TLS records, held only while bytes
 * are in flight, and stops reading a side while the buffer towards the other side is full, so a
 * slow reader slows the writer down instead of filling memory. Per wake-up it moves at most a few
 * buffers' worth, then lets the loop run a full iteration before going on, so that a peer sending
 * without pause cannot hold the loop.
 *
 * Closing: an orderly end on one side (EOF from gRPC, close_notify or EOF from the peer) is passed
 * on to the other side after the buffered bytes; once both directions ended, or 5 s after the
 * first one did, both sockets are closed. An error on either side (reset, bad record, broken pipe)
 * closes both at once, so gRPC sees its connection die.
 *
 * Threads: a server or client context, and every connection made from it, belong to the loop
 * thread that started them. Nothing here blocks.
 */
#ifndef CRAWLAB_TLS_H
#define CRAWLAB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct tls_server;
struct tls_client;
struct tls_conn;

/* The handshake timeout of accepted connections when the server options give none. */
#define TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000

struct tls_server_options {
    const char *cert_file; /* PEM: the master's certificate (then any intermediates); required */
    const char *key_file;  /* PEM: its private key; required */
    const char *ca_file;   /* PEM: CA(s) that sign client certificates; NULL for none */
    /* With ca_file: refuse clients without a certificate. Without it, a certificate offered is
     * verified against ca_file and one not offered is accepted. */
    bool require_client_cert;
    uint64_t handshake_timeout_ms; /* 0 means TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS */
};

struct tls_client_options {
    const char *ca_file;   /* PEM: CA(s) that sign the master's certificate; required */
    const char *cert_file; /* PEM: our certificate for mutual TLS; NULL for none */
    const char *key_file;  /* PEM: its key; given exactly when cert_file is */
    /* The name the master's certificate must carry (DNS name or IP address in its subject
     * alternative names, or DNS name as its common name); NULL means the host dialled. */
    const char *server_name;
};

/*
 * Loads the certificate, key and CA files and prepares a TLS 1.3-only context (ChaCha20-Poly1305
 * first: this wolfSSL has no AES-NI). Returns 0, or a negative errno with one sentence in err
 * naming the file at fault. Reads files, so call it at start-up, not from a busy loop.
 */
int tls_server_create(const struct tls_server_options *opts, struct tls_server **out, char *err,
                      size_t errlen);
int tls_client_create(const struct tls_client_options *opts, struct tls_client **out, char *err,
                      size_t errlen);

/*
 * Reads the certificate, key and CA files again, from the paths the context was created with (a
 * renewed certificate), into a new context for the connections made from now on; those made
 * already keep the one they began with until they end. On failure the context in use stays, and
 * err says why. Loop thread; reads files.
 */
int tls_server_reload(struct tls_server *s, char *err, size_t errlen);
int tls_client_reload(struct tls_client *c, char *err, size_t errlen);

/* Closes every connection of the context (handshakes in progress without their callback) and
 * frees it. Call from the loop thread, or after that loop stopped for good. NULL is a no-op. */
void tls_server_destroy(struct tls_server *s);
void tls_client_destroy(struct tls_client *c);

/* Closes the connections of c that run on loop, handshakes in progress without their callback.
 * Call from that loop's thread, or once it stopped. */
void tls_client_close_loop(struct tls_client *c, struct ev_loop *loop);

/*
 * The result of a handshake, on the loop thread. The strings are valid during the callback only:
 * copy what is to be kept.
 */
/* The subject OU entries of a client certificate that a tls_result passes on. */
#define TLS_MAX_OUS 4

struct tls_result {
    int plain_fd;     /* >= 0 on success (O_NONBLOCK, owned by the callee from now on), else -1 */
    const char *addr; /* the peer given to tls_accept(), or the master's name (client side) */
    const char *cert_cn; /* server side: common name of the verified client certificate; NULL
                          * when the client presented none (and always on the client side) */
    bool has_cert;       /* server side: the client presented a (verified) certificate */
    const char *const *cert_ous; /* server side: the values of its subject's organizational unit
                                  * entries (at most TLS_MAX_OUS, each cut at 127 bytes) */
    size_t n_cert_ous;
    int err;            /* 0, or a negative errno: -ETIMEDOUT, -ECONNREFUSED for a refused or
                         * failed handshake, -EIO */
    const char *errmsg; /* with err: one sentence saying why, for the log */
};
typedef void (*tls_ready_cb)(void *ctx, const struct tls_result *r);

/*
 * Server side: takes ownership of fd (a connected socket from the listener) and starts the
 * handshake. cb runs exactly once unless the server is destroyed first, and tells who the client
 * is: peer (the remote address in words, as the listener gave it) and the certificate it showed.
 * Returns 0, or -ENOMEM (fd is closed and cb does not run).
 *
 * To close such a connection, shutdown(2) its plaintext end: the pump then fails its next write
 * towards it, or passes the end on to the client and closes both sockets within the linger bound.
 */
int tls_accept(struct ev_loop *loop, struct tls_server *s, int fd, const char *peer,
               tls_ready_cb cb, void *ctx);

/*
 * Client side: takes ownership of fd (a connected socket to host) and starts the handshake; the
 * master's certificate must match the client's server_name, or host when there is none.
 * timeout_ms 0 means no timeout of its own. cb runs exactly once unless tls_conn_cancel() or
 * tls_client_destroy() comes first; *out is valid until then. Returns 0, or -ENOMEM (fd is
 * closed, cb does not run).
 */
int tls_connect(struct ev_loop *loop, struct tls_client *c, int fd, const char *host,
                uint64_t timeout_ms, tls_ready_cb cb, void *ctx, struct tls_conn **out);

/* Abandons a handshake whose callback has not run yet: the socket is closed, no callback. */
void tls_conn_cancel(struct tls_conn *conn);

/* Frees what wolfSSL keeps per thread (its ECC point cache). Call at the end of a thread other
 * than the main one that ran TLS handshakes; the main thread's goes with the last context. */
void tls_thread_cleanup(void);

/* The end of the validity of the first certificate in the PEM file cert_file (its notAfter), in
 * seconds since the epoch: 0 and *out, -ENOENT when the file holds no readable certificate,
 * -EINVAL when its date cannot be read. */
int tls_cert_not_after(const char *cert_file, int64_t *out);

/* The TLS 1.3 cipher suites in the order both ends prefer them here (wolfSSL's names, ':' between):
 * AES-128-GCM first where wolfSSL runs it with AES-NI on this CPU, else ChaCha20-Poly1305. */
const char *tls_cipher_order(void);

/* Number of live connections (handshaking or pumping) of a context; for tests and shutdown. */
size_t tls_server_conn_count(const struct tls_server *s);
size_t tls_client_conn_count(const struct tls_client *c);
/* Number of those holding pump buffers now, that is with bytes in flight; for tests. */
size_t tls_server_busy_count(const struct tls_server *s);
size_t tls_client_busy_count(const struct tls_client *c);

#endif

/*
 * PostgreSQL over TLS without a TLS library in libpq (docs/postgres.md): a relay that libpq
 * reaches on a Unix socket, and that reaches the server over TCP with TLS by wolfSSL (net/tls.h).
 *
 * libpq is built without OpenSSL (subprojects/libpq.wrap), so it cannot do TLS itself. Each
 * connection libpq makes to <socket_dir>/.s.PGSQL.<port> (connection string "host=<socket_dir>
 * port=<port>") is accepted by the relay, which dials the server (c-ares, net/dialer.h), sends
 * PostgreSQL's SSLRequest, and on the server's 'S' runs the TLS 1.3 handshake, verifying the
 * server's certificate against ca_file and server_name; then it moves bytes between libpq's
 * socket and the TLS connection until either side closes. A server that answers 'N' (no TLS), a
 * failed dial or handshake closes libpq's socket at once: libpq reports the connection lost, and
 * the relay logs why. libpq speaks plain protocol over a local socket, so SCRAM works as on any
 * connection; channel binding (scram-sha-256-plus) does not, as libpq does not see the TLS.
 *
 * The socket directory is the relay's own: it is created if missing and made 0700 (whoever can
 * connect to the socket gets the relay's TLS, client certificate included), and a socket left
 * there by an earlier run is replaced.
 *
 * Threads: the relay runs on a thread of its own with its own loop, so that a caller blocked in
 * libpq (the store blocks its thread) is served. Start and stop it from one thread.
 */
#ifndef CRAWLAB_PGTLS_H
#define CRAWLAB_PGTLS_H

#include <stddef.h>
#include <stdint.h>

struct pgtls_relay;

struct pgtls_options {
    const char *host;        /* the server's name or address; required */
    int port;                /* its TCP port; also the local socket's number */
    const char *ca_file;     /* PEM: CA(s) that sign the server's certificate; required */
    const char *cert_file;   /* PEM: a client certificate (PostgreSQL's "cert" auth); or NULL */
    const char *key_file;    /* PEM: its key; given exactly when cert_file is */
    const char *server_name; /* the name the certificate must carry; NULL: host */
    const char *socket_dir;  /* where the Unix socket goes; required */
    uint64_t timeout_ms;     /* dial, SSLRequest and handshake of each connection; 0: 10 s */
};

/*
 * Loads the TLS files, listens on socket_dir/.s.PGSQL.<port> and starts the relay's thread.
 * dial_global_init() must have run. Returns 0, or a negative errno with one sentence in err.
 */
int pgtls_relay_start(const struct pgtls_options *opts, struct pgtls_relay **out, char *err,
                      size_t errlen);

/*
 * Reads the TLS files again (CA, client certificate and key), on the relay's thread, and waits
 * for it: connections made from then on use them, those already up keep theirs. On a failure the
 * files loaded before stay in use. Returns 0, or a negative errno with one sentence in err. From
 * the thread that started the relay.
 */
int pgtls_relay_reload(struct pgtls_relay *r, char *err, size_t errlen);

/* Stops the thread, closes every relayed connection and removes the socket. NULL is a no-op. */
void pgtls_relay_stop(struct pgtls_relay *r);

#endif

/*
 * The master's listening socket, accepted by libev: each new connection is handed over as a
 * non-blocking, TCP_NODELAY socket together with the peer address in words.
 */
#ifndef CRAWLAB_LISTENER_H
#define CRAWLAB_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct listener;

/* fd is owned by the callee from now on. */
typedef void (*listener_accept_cb)(void *ctx, int fd, const char *peer);

/*
 * Binds host:port (a literal IPv4/IPv6 address, "localhost", or "" / "*" for every address) and
 * starts accepting on the loop. Loop thread only. Returns 0 or -errno; err says what failed.
 */
int listener_open(struct ev_loop *loop, const char *host, int port, listener_accept_cb cb,
                  void *ctx, struct listener **out, char *err, size_t errlen);

/*
 * Caps the connections open at once at max (0: no cap). A connection counts from its accept
 * until its socket is closed, by whoever owns it by then; over the cap a new connection is
 * closed at once and the refusal logged (at most once a second).
 */
void listener_set_limit(struct listener *l, size_t max);

/* How many source addresses listener_set_rate keeps a bucket for at most. */
#define LISTENER_SOURCES_MAX 16384

/*
 * Limits the new connections from one source address: burst at once, then per_s a second
 * (per_s 0: no limit, the default). Over it a connection is closed at once, before a byte is
 * read, counted as refused and logged (at most once a second). The host's own address
 * (127.0.0.1, ::1) is not limited: the commands run on the master's machine. An address beyond
 * the LISTENER_SOURCES_MAX tracked ones is let through.
 */
void listener_set_rate(struct listener *l, double per_s, double burst);

/* The port actually bound (useful with port 0). */
int listener_port(const struct listener *l);
/* True when the socket is bound to a loopback address only (127.0.0.0/8, ::1). */
bool listener_loopback_only(const struct listener *l);

/* Counters since listener_open, for metrics. open is known only with a limit set (counts_open):
 * it is then the connections accepted whose sockets are still open, found by one fstat each. */
struct listener_stats {
    uint64_t accepted; /* handed to the callback */
    uint64_t refused;  /* closed at once over the limit or the rate */
    size_t open;
    bool counts_open;
};
void listener_stats(struct listener *l, struct listener_stats *out);

/* Stops accepting and closes the socket; connections already handed over are unaffected. */
void listener_close(struct listener *l);

#endif

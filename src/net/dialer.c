#include "net/dialer.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/tls.h"
#include "runtime/log.h"

#define MAX_ADDRS     16
#define MAX_DNS_SOCKS 8

struct dns_watch {
    ev_io io;
    struct dial *dial;
};

struct dial {
    struct ev_loop *loop;
    struct tls_client *tls; /* NULL: plaintext */
    char *host;
    int port;
    dial_cb cb;
    void *ctx;

    ev_timer deadline;
    ev_timer dns_timer;
    ares_channel ares;
    bool ares_live;
    struct dns_watch dns[MAX_DNS_SOCKS];

    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addr_lens[MAX_ADDRS];
    size_t n_addrs, next_addr;
    int last_err;

    ev_io connect_io;
    int fd;
    ev_idle start;              /* delivers results found without waiting (literal addresses) */
    struct tls_conn *handshake; /* after connect, with TLS on */
};

int dial_global_init(void)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    return rc == ARES_SUCCESS ? 0 : -EIO;
}

void dial_global_cleanup(void)
{
    ares_library_cleanup();
}

static void stop_dns(struct dial *d)
{
    for (size_t i = 0; i < MAX_DNS_SOCKS; i++) {
        if (d->dns[i].dial)
            ev_io_stop(d->loop, &d->dns[i].io);
        d->dns[i].dial = NULL;
    }
    ev_timer_stop(d->loop, &d->dns_timer);
    if (d->ares_live) {
        d->ares_live = false;
        /* Cancelling calls the pending callback with ARES_EDESTRUCTION, which it ignores. */
        ares_destroy(d->ares);
    }
}

static void dial_free(struct dial *d)
{
    stop_dns(d);
    ev_timer_stop(d->loop, &d->deadline);
    ev_io_stop(d->loop, &d->connect_io);
    ev_idle_stop(d->loop, &d->start);
    if (d->handshake)
        tls_conn_cancel(d->handshake);
    if (d->fd >= 0)
        close(d->fd);
    free(d->host);
    free(d);
}

static void finish(struct dial *d, int fd, int err, const char *msg)
{
    if (fd >= 0)
        d->fd = -1; /* handed to the callback */
    dial_cb cb = d->cb;
    void *ctx = d->ctx;
    dial_free(d);
    cb(ctx, fd, err, msg);
}

static void on_tls_ready(void *ctx, const struct tls_result *r)
{
    struct dial *d = ctx;
    d->handshake = NULL;
    if (r->plain_fd >= 0) {
        finish(d, r->plain_fd, 0, NULL);
        return;
    }
    char msg[320];
    snprintf(msg, sizeof(msg), "TLS handshake failed: %s", r->errmsg);
    finish(d, -1, r->err, msg);
}

/* The TCP connection is up: hand it over, or run the TLS handshake first. */
static void connected(struct dial *d)
{
    if (!d->tls) {
        finish(d, d->fd, 0, NULL);
        return;
    }
    int fd = d->fd;
    d->fd = -1; /* tls_connect owns it now, whatever it returns */
    /* The dial's deadline keeps running and bounds the handshake too. */
    if (tls_connect(d->loop, d->tls, fd, d->host, 0, on_tls_ready, d, &d->handshake) < 0)
        finish(d, -1, -ENOMEM, "cannot start the TLS handshake: out of memory");
}

static void try_next(struct dial *d);

static void on_connect(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dial *d = w->data;
    ev_io_stop(loop, w);
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0) {
        connected(d);
        return;
    }
    d->last_err = -soerr;
    close(d->fd);
    d->fd = -1;
    try_next(d);
}

static void try_next(struct dial *d)
{
    while (d->next_addr < d->n_addrs) {
        size_t i = d->next_addr++;
        struct sockaddr *sa = (struct sockaddr *)&d->addrs[i];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            d->last_err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, sa, d->addr_lens[i]) == 0) {
            d->fd = fd;
            connected(d);
            return;
        }
        if (errno == EINPROGRESS) {
            d->fd = fd;
            ev_io_init(&d->connect_io, on_connect, fd, EV_WRITE);
            d->connect_io.data = d;
            ev_io_start(d->loop, &d->connect_io);
            return;
        }
        d->last_err = -errno;
        close(fd);
    }
    int err = d->last_err ? d->last_err : -EHOSTUNREACH;
    finish(d, -1, err, strerror(-err));
}

static void add_addr(struct dial *d, const struct sockaddr *sa, socklen_t len)
{
    if (d->n_addrs == MAX_ADDRS || len > sizeof(d->addrs[0]))
        return;
    memcpy(&d->addrs[d->n_addrs], sa, len);
    d->addr_lens[d->n_addrs] = len;
    d->n_addrs++;
}

static void on_resolved(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dial *d = arg;
    if (status == ARES_EDESTRUCTION)
        return;
    if (status != ARES_SUCCESS) {
        log_debug("cannot resolve '%s': %s", d->host, ares_strerror(status));
        if (res)
            ares_freeaddrinfo(res);
        /* The channel may not be destroyed inside its own callback: finish from the loop. */
        d->last_err = -EHOSTUNREACH;
        ev_idle_start(d->loop, &d->start);
        return;
    }
    for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
        if (n->ai_family == AF_INET)
            ((struct sockaddr_in *)n->ai_addr)->sin_port = htons((uint16_t)d->port);
        else if (n->ai_family == AF_INET6)
            ((struct sockaddr_in6 *)n->ai_addr)->sin6_port = htons((uint16_t)d->port);
        else
            continue;
        add_addr(d, n->ai_addr, n->ai_addrlen);
    }
    ares_freeaddrinfo(res);
    if (d->n_addrs == 0)
        d->last_err = -EHOSTUNREACH;
    ev_idle_start(d->loop, &d->start);
}

/* Runs once the lookup is over (or was never needed), outside any c-ares callback. */
static void on_start(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct dial *d = w->data;
    ev_idle_stop(loop, w);
    stop_dns(d);
    if (d->n_addrs == 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot resolve '%s'", d->host);
        finish(d, -1, -EHOSTUNREACH, msg);
        return;
    }
    try_next(d);
}

static void arm_dns_timer(struct dial *d)
{
    struct timeval tv, *tvp = ares_timeout(d->ares, NULL, &tv);
    ev_timer_stop(d->loop, &d->dns_timer);
    if (tvp) {
        ev_timer_set(&d->dns_timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.0);
        ev_timer_start(d->loop, &d->dns_timer);
    }
}

static void on_dns_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_watch *dw = (struct dns_watch *)w;
    struct dial *d = dw->dial;
    ares_process_fd(d->ares, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    if (d->ares_live)
        arm_dns_timer(d);
}

static void on_dns_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dial *d = w->data;
    ares_process_fd(d->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    if (d->ares_live)
        arm_dns_timer(d);
}

/* c-ares tells which of its sockets to watch; mirror that in ev_io watchers. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dial *d = data;
    struct dns_watch *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < MAX_DNS_SOCKS; i++) {
        if (d->dns[i].dial && d->dns[i].io.fd == fd)
            slot = &d->dns[i];
        else if (!d->dns[i].dial && !free_slot)
            free_slot = &d->dns[i];
    }
    if (slot) {
        ev_io_stop(d->loop, &slot->io);
        slot->dial = NULL;
    }
    if (!readable && !writable)
        return;
    if (!slot)
        slot = free_slot;
    if (!slot)
        return; /* more sockets than we watch; the timer still drives c-ares */
    slot->dial = d;
    ev_io_init(&slot->io, on_dns_io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(d->loop, &slot->io);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dial *d = w->data;
    char msg[160];
    snprintf(msg, sizeof(msg), "timed out %s %s:%d",
             d->handshake ? "in the TLS handshake with" : "connecting to", d->host, d->port);
    finish(d, -1, -ETIMEDOUT, msg);
}

/* Literal addresses and "localhost" need no lookup at all (and no resolver configuration). */
static bool literal_address(struct dial *d)
{
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)d->port)};
    if (strcmp(d->host, "localhost") == 0) {
        in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        add_addr(d, (struct sockaddr *)&in4, sizeof(in4));
        return true;
    }
    if (inet_pton(AF_INET, d->host, &in4.sin_addr) == 1) {
        add_addr(d, (struct sockaddr *)&in4, sizeof(in4));
        return true;
    }
    if (inet_pton(AF_INET6, d->host, &in6.sin6_addr) == 1) {
        add_addr(d, (struct sockaddr *)&in6, sizeof(in6));
        return true;
    }
    return false;
}

int dial_start(struct ev_loop *loop, struct tls_client *tls, const char *host, int port,
               uint64_t timeout_ms, dial_cb cb, void *ctx, struct dial **out)
{
    struct dial *d = calloc(1, sizeof(*d));
    if (!d || !(d->host = strdup(host))) {
        free(d);
        return -ENOMEM;
    }
    d->loop = loop;
    d->tls = tls;
    d->port = port;
    d->cb = cb;
    d->ctx = ctx;
    d->fd = -1;
    ev_timer_init(&d->deadline, on_deadline, (double)timeout_ms / 1000.0, 0.0);
    d->deadline.data = d;
    ev_timer_start(loop, &d->deadline);
    ev_timer_init(&d->dns_timer, on_dns_timer, 1.0, 0.0);
    d->dns_timer.data = d;
    ev_idle_init(&d->start, on_start);
    d->start.data = d;
    *out = d;

    if (literal_address(d)) {
        ev_idle_start(loop, &d->start);
        return 0;
    }
    struct ares_options opts = {.sock_state_cb = on_sock_state, .sock_state_cb_data = d};
    if (ares_init_options(&d->ares, &opts, ARES_OPT_SOCK_STATE_CB) != ARES_SUCCESS) {
        ev_idle_start(loop, &d->start); /* reports "cannot resolve" from the loop */
        return 0;
    }
    d->ares_live = true;
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    ares_getaddrinfo(d->ares, host, NULL, &hints, on_resolved, d);
    if (d->ares_live)
        arm_dns_timer(d);
    return 0;
}

void dial_cancel(struct dial *d)
{
    dial_free(d);
}

struct blocking_result {
    bool done;
    int fd, err;
    char *errbuf;
    size_t errlen;
};

static void on_blocking_done(void *ctx, int fd, int err, const char *errmsg)
{
    struct blocking_result *r = ctx;
    r->done = true;
    r->fd = fd;
    r->err = err;
    if (err && r->errbuf)
        snprintf(r->errbuf, r->errlen, "%s", errmsg ? errmsg : strerror(-err));
}

/*
 * The helper thread of a blocking dial with TLS: its loop dials, shakes hands and then pumps the
 * connection until dial_tunnel_close(). The result goes to the caller under lock, announced on
 * a condition variable.
 */
struct dial_tunnel {
    pthread_t thread;
    struct ev_loop *loop;
    ev_async stop;
    struct tls_client *tls;
    const char *host; /* the caller's, valid until the result is in */
    int port;
    uint64_t timeout_ms;
    struct dial *dial; /* tunnel thread only; NULL once it finished */
    pthread_mutex_t lock;
    pthread_cond_t done;
    struct blocking_result result; /* guarded by lock */
};

static void on_tunnel_dialed(void *ctx, int fd, int err, const char *errmsg)
{
    struct dial_tunnel *t = ctx;
    t->dial = NULL;
    pthread_mutex_lock(&t->lock);
    on_blocking_done(&t->result, fd, err, errmsg);
    pthread_cond_signal(&t->done);
    pthread_mutex_unlock(&t->lock);
}

static void on_tunnel_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    struct dial_tunnel *t = w->data;
    if (t->dial)
        dial_cancel(t->dial);
    /* The pump is closed on its own thread, with the loop it runs on. */
    tls_client_close_loop(t->tls, loop);
    ev_async_stop(loop, w);
    ev_break(loop, EVBREAK_ALL);
}

static void *tunnel_main(void *arg)
{
    struct dial_tunnel *t = arg;
    if (dial_start(t->loop, t->tls, t->host, t->port, t->timeout_ms, on_tunnel_dialed, t,
                   &t->dial) < 0)
        on_tunnel_dialed(t, -1, -ENOMEM, "out of memory");
    ev_run(t->loop, 0);
    tls_thread_cleanup();
    return NULL;
}

static void tunnel_free(struct dial_tunnel *t)
{
    ev_loop_destroy(t->loop);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->done);
    free(t);
}

void dial_tunnel_close(struct dial_tunnel *t)
{
    if (!t)
        return;
    ev_async_send(t->loop, &t->stop);
    pthread_join(t->thread, NULL);
    tunnel_free(t);
}

static int dial_through_tunnel(struct tls_client *tls, const char *host, int port,
                               uint64_t timeout_ms, int *fd_out, struct dial_tunnel **tunnel,
                               char *err, size_t errlen)
{
    struct dial_tunnel *t = calloc(1, sizeof(*t));
    if (!t || !(t->loop = ev_loop_new(EVFLAG_AUTO))) {
        free(t);
        snprintf(err, errlen, "cannot start the TLS thread: out of memory");
        return -ENOMEM;
    }
    t->tls = tls;
    t->host = host;
    t->port = port;
    t->timeout_ms = timeout_ms;
    t->result = (struct blocking_result){.fd = -1, .errbuf = err, .errlen = errlen};
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->done, NULL);
    ev_async_init(&t->stop, on_tunnel_stop);
    t->stop.data = t;
    ev_async_start(t->loop, &t->stop);
    int rc = pthread_create(&t->thread, NULL, tunnel_main, t);
    if (rc != 0) {
        ev_async_stop(t->loop, &t->stop);
        tunnel_free(t);
        snprintf(err, errlen, "cannot start the TLS thread: %s", strerror(rc));
        return -rc;
    }
    pthread_mutex_lock(&t->lock);
    while (!t->result.done)
        pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
    if (t->result.err) {
        rc = t->result.err;
        dial_tunnel_close(t);
        return rc;
    }
    *fd_out = t->result.fd;
    *tunnel = t;
    return 0;
}

int dial_blocking(struct tls_client *tls, const char *host, int port, uint64_t timeout_ms,
                  int *fd_out, struct dial_tunnel **tunnel, char *err, size_t errlen)
{
    *tunnel = NULL;
    if (tls)
        return dial_through_tunnel(tls, host, port, timeout_ms, fd_out, tunnel, err, errlen);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    if (!loop)
        return -ENOMEM;
    struct blocking_result r = {.fd = -1, .errbuf = err, .errlen = errlen};
    struct dial *d;
    int rc = dial_start(loop, NULL, host, port, timeout_ms, on_blocking_done, &r, &d);
    if (rc == 0) {
        while (!r.done)
            ev_run(loop, EVRUN_ONCE);
        rc = r.err;
        *fd_out = r.fd;
    }
    ev_loop_destroy(loop);
    return rc;
}

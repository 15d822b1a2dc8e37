/*
 * The relay between libpq's plain socket and a PostgreSQL server's TLS (net/pgtls.h). Each
 * connection goes: accepted -> dialled (net/dialer.h, no TLS) -> SSLRequest sent -> 'S' read ->
 * TLS handshake (net/tls.h, whose plaintext end it then holds) -> pumping, both directions, one
 * bounded buffer each: a side is not read while its buffer waits for the other side to drain.
 */
#include "net/pgtls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "net/dialer.h"
#include "net/tls.h"
#include "runtime/list.h"
#include "runtime/log.h"

#define PGTLS_DEFAULT_TIMEOUT_MS 10000
#define PGTLS_BUF                16384

/* PostgreSQL's SSLRequest: the message length (8) and the code 1234.5679, both big-endian. */
static const unsigned char ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};

struct conn;

/* One direction of a relayed connection. */
struct half {
    struct conn *c;
    int from, to;
    ev_io rd, wr;
    size_t off, len;
    bool ended;
    char buf[PGTLS_BUF];
};

struct conn {
    struct pgtls_relay *r;
    struct list_link link; /* in pgtls_relay.conns */
    int local;             /* libpq's socket */
    int remote;            /* the server's socket until the handshake, then the TLS plaintext end */
    struct dial *dial;
    struct tls_conn *tls;
    ev_io answer;      /* the SSLRequest's answer */
    ev_timer deadline; /* until pumping starts */
    struct half half[2];
};

struct pgtls_relay {
    char *host;
    int port;
    uint64_t timeout_ms;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    struct tls_client *tls;
    struct ev_loop *loop;
    ev_io accept_w;
    ev_async stop_w;
    pthread_t thread;
    bool thread_started;
    struct list_link *conns;
    /* A reload asked by the starting thread, done by the relay's (pgtls_relay_reload). */
    ev_async reload_w;
    pthread_mutex_t reload_lock;
    pthread_cond_t reload_done;
    bool reload_asked;
    int reload_rc;
    char reload_err[256];
};

static void conn_free(struct conn *c)
{
    struct ev_loop *loop = c->r->loop;
    for (int i = 0; i < 2; i++) {
        ev_io_stop(loop, &c->half[i].rd);
        ev_io_stop(loop, &c->half[i].wr);
    }
    ev_io_stop(loop, &c->answer);
    ev_timer_stop(loop, &c->deadline);
    if (c->dial)
        dial_cancel(c->dial);
    if (c->tls)
        tls_conn_cancel(c->tls);
    if (c->local >= 0)
        close(c->local);
    if (c->remote >= 0)
        close(c->remote);
    list_unlink(&c->link);
    free(c);
}

/* Writes what the half holds; returns false when the connection is gone. */
static bool half_flush(struct half *h)
{
    struct ev_loop *loop = h->c->r->loop;
    while (h->off < h->len) {
        ssize_t n = send(h->to, h->buf + h->off, h->len - h->off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            ev_io_stop(loop, &h->rd);
            ev_io_start(loop, &h->wr);
            return true;
        }
        if (n < 0) {
            conn_free(h->c);
            return false;
        }
        h->off += (size_t)n;
    }
    h->off = h->len = 0;
    ev_io_stop(loop, &h->wr);
    ev_io_start(loop, &h->rd);
    return true;
}

static void on_half_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    half_flush(w->data);
}

static void on_half_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct half *h = w->data;
    ssize_t n = read(h->from, h->buf, sizeof(h->buf));
    if (n > 0) {
        h->len = (size_t)n;
        half_flush(h);
    } else if (n == 0) {
        /* An orderly end: passed on, and the connection goes once both directions ended. */
        h->ended = true;
        ev_io_stop(loop, &h->rd);
        shutdown(h->to, SHUT_WR);
        struct conn *c = h->c;
        if (c->half[0].ended && c->half[1].ended)
            conn_free(c);
    } else if (errno != EAGAIN && errno != EINTR) {
        conn_free(h->c);
    }
}

static void half_init(struct conn *c, struct half *h, int from, int to)
{
    h->c = c;
    h->from = from;
    h->to = to;
    ev_io_init(&h->rd, on_half_readable, from, EV_READ);
    ev_io_init(&h->wr, on_half_writable, to, EV_WRITE);
    h->rd.data = h->wr.data = h;
}

static void on_tls(void *ctx, const struct tls_result *res)
{
    struct conn *c = ctx;
    struct pgtls_relay *r = c->r;
    c->tls = NULL;
    if (res->plain_fd < 0) {
        log_error("pgtls: TLS with PostgreSQL %s:%d failed: %s", r->host, r->port, res->errmsg);
        conn_free(c);
        return;
    }
    ev_timer_stop(r->loop, &c->deadline);
    c->remote = res->plain_fd;
    half_init(c, &c->half[0], c->local, c->remote);
    half_init(c, &c->half[1], c->remote, c->local);
    ev_io_start(r->loop, &c->half[0].rd);
    ev_io_start(r->loop, &c->half[1].rd);
}

static void on_answer(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    struct pgtls_relay *r = c->r;
    char b;
    ssize_t n = read(c->remote, &b, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, &c->answer);
    if (n != 1 || b != 'S') {
        log_error("pgtls: PostgreSQL %s:%d %s", r->host, r->port,
                  n == 1 && b == 'N' ? "does not accept TLS (ssl is off)"
                                     : "closed the connection before TLS");
        conn_free(c);
        return;
    }
    int fd = c->remote;
    c->remote = -1; /* tls_connect owns it now, even when it fails */
    if (tls_connect(loop, r->tls, fd, r->host, 0, on_tls, c, &c->tls) < 0)
        conn_free(c);
}

static void on_dial(void *ctx, int fd, int err, const char *errmsg)
{
    struct conn *c = ctx;
    struct pgtls_relay *r = c->r;
    c->dial = NULL;
    if (fd < 0) {
        log_error("pgtls: cannot reach PostgreSQL %s:%d: %s", r->host, r->port, errmsg);
        conn_free(c);
        return;
    }
    c->remote = fd;
    /* The first bytes on a new socket: its send buffer takes all eight. */
    if (send(fd, ssl_request, sizeof(ssl_request), MSG_NOSIGNAL) != (ssize_t)sizeof(ssl_request)) {
        log_error("pgtls: sending SSLRequest to PostgreSQL %s:%d failed: %s", r->host, r->port,
                  strerror(errno));
        conn_free(c);
        return;
    }
    ev_io_init(&c->answer, on_answer, fd, EV_READ);
    c->answer.data = c;
    ev_io_start(r->loop, &c->answer);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    log_error("pgtls: no TLS connection to PostgreSQL %s:%d within %llu ms", c->r->host, c->r->port,
              (unsigned long long)c->r->timeout_ms);
    conn_free(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pgtls_relay *r = w->data;
    int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->r = r;
    c->local = fd;
    c->remote = -1;
    list_push(&r->conns, &c->link);
    ev_io_init(&c->answer, on_answer, -1, EV_READ);
    ev_timer_init(&c->deadline, on_deadline, (double)r->timeout_ms / 1000.0, 0);
    c->deadline.data = c;
    ev_timer_start(loop, &c->deadline);
    if (dial_start(loop, NULL, r->host, r->port, r->timeout_ms, on_dial, c, &c->dial) < 0) {
        c->dial = NULL;
        conn_free(c);
    }
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* The asking thread waits until reload_asked is cleared, so the answer's fields are ours until
 * then. */
static void on_reload(struct ev_loop *loop, ev_async *w, int revents)
{
    struct pgtls_relay *r = w->data;
    r->reload_rc = tls_client_reload(r->tls, r->reload_err, sizeof(r->reload_err));
    pthread_mutex_lock(&r->reload_lock);
    r->reload_asked = false;
    pthread_cond_signal(&r->reload_done);
    pthread_mutex_unlock(&r->reload_lock);
}

static void *relay_main(void *arg)
{
    struct pgtls_relay *r = arg;
    ev_run(r->loop, 0);
    tls_thread_cleanup();
    return NULL;
}

static int listen_unix(struct pgtls_relay *r, const char *dir, char *err, size_t errlen)
{
    /* Whoever reaches the socket speaks to the server as the relay's client certificate, if it
     * has one: the directory is the owner's alone, also when it existed before. */
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chmod(dir, 0700) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot create %s as a private directory: %s", dir, strerror(errno));
        return rc;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (snprintf(r->path, sizeof(r->path), "%s/.s.PGSQL.%d", dir, r->port) >=
        (int)sizeof(r->path)) {
        snprintf(err, errlen, "socket directory %s: path too long for a Unix socket", dir);
        return -ENAMETOOLONG;
    }
    memcpy(a.sun_path, r->path, sizeof(r->path));
    r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->listen_fd < 0 || (unlink(r->path) < 0 && errno != ENOENT) ||
        bind(r->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(r->listen_fd, 16) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot listen on %s: %s", r->path, strerror(errno));
        r->path[0] = '\0';
        return rc;
    }
    return 0;
}

/* The relay's thread blocks every signal: they are the starting thread's to handle. */
static int start_thread(struct pgtls_relay *r)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, relay_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    r->thread_started = rc == 0;
    return -rc;
}

int pgtls_relay_start(const struct pgtls_options *o, struct pgtls_relay **out, char *err,
                      size_t errlen)
{
    if (!o->host || !o->ca_file || !o->socket_dir || o->port <= 0 || o->port > 65535) {
        snprintf(err, errlen, "the relay needs a host, a port, a CA file and a socket directory");
        return -EINVAL;
    }
    struct pgtls_relay *r = calloc(1, sizeof(*r));
    if (!r || !(r->host = strdup(o->host))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->port = o->port;
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : PGTLS_DEFAULT_TIMEOUT_MS;
    r->listen_fd = -1;
    pthread_mutex_init(&r->reload_lock, NULL);
    pthread_cond_init(&r->reload_done, NULL);
    struct tls_client_options to = {.ca_file = o->ca_file,
                                    .cert_file = o->cert_file,
                                    .key_file = o->key_file,
                                    .server_name = o->server_name};
    int rc = tls_client_create(&to, &r->tls, err, errlen);
    if (rc == 0)
        rc = listen_unix(r, o->socket_dir, err, errlen);
    if (rc == 0 && !(r->loop = ev_loop_new(EVFLAG_AUTO))) {
        snprintf(err, errlen, "cannot create the relay's event loop");
        rc = -ENOMEM;
    }
    if (rc == 0) {
        ev_io_init(&r->accept_w, on_accept, r->listen_fd, EV_READ);
        r->accept_w.data = r;
        ev_io_start(r->loop, &r->accept_w);
        ev_async_init(&r->stop_w, on_stop);
        ev_async_start(r->loop, &r->stop_w);
        ev_async_init(&r->reload_w, on_reload);
        r->reload_w.data = r;
        ev_async_start(r->loop, &r->reload_w);
        rc = start_thread(r);
        if (rc < 0)
            snprintf(err, errlen, "cannot start the relay's thread: %s", strerror(-rc));
    }
    if (rc < 0) {
        pgtls_relay_stop(r);
        return rc;
    }
    *out = r;
    return 0;
}

int pgtls_relay_reload(struct pgtls_relay *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->reload_lock);
    r->reload_asked = true;
    ev_async_send(r->loop, &r->reload_w);
    while (r->reload_asked)
        pthread_cond_wait(&r->reload_done, &r->reload_lock);
    int rc = r->reload_rc;
    if (rc < 0)
        snprintf(err, errlen, "%s", r->reload_err);
    pthread_mutex_unlock(&r->reload_lock);
    return rc;
}

void pgtls_relay_stop(struct pgtls_relay *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        ev_async_send(r->loop, &r->stop_w);
        pthread_join(r->thread, NULL);
    }
    /* The loop has stopped for good: its connections and the TLS context go from here. */
    while (r->conns)
        conn_free(list_item(r->conns, struct conn, link));
    tls_client_destroy(r->tls);
    if (r->loop)
        ev_loop_destroy(r->loop);
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    if (r->path[0])
        unlink(r->path);
    pthread_cond_destroy(&r->reload_done);
    pthread_mutex_destroy(&r->reload_lock);
    free(r->host);
    free(r);
}

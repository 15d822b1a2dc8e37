#include "net/httpget.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/listener.h"
#include "runtime/list.h"
#include "runtime/log.h"

struct conn {
    struct httpget *server;
    struct list_link link; /* in httpget.conns */
    int fd;
    ev_io rd, wr;
    ev_timer deadline;
    bool draining; /* answered: reading only to see the peer's end before closing */
    size_t n;
    char buf[HTTPGET_HEAD_MAX];
    char *out;
    size_t out_len, out_off;
};

struct httpget {
    struct ev_loop *loop;
    struct listener *listener;
    struct httpget_options opts;
    struct list_link *conns;
};

/* ---- judging a request head ---- */

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The head's bytes are visible ASCII, space, tab, or CR LF pairs: nothing else. A CR may end
 * what has arrived so far (its LF is still to come). */
static bool head_bytes_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            if (i + 1 < len && s[i + 1] != '\n')
                return false;
            i++;
        } else if (c == '\n' || (c < 0x20 && c != '\t') || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

int httpget_judge(const char *buf, size_t len, const char *path)
{
    /* A byte that cannot be part of a head is refused at once, not after the deadline. */
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!head_bytes_ok(buf, end ? (size_t)(end - buf) + 4 : len))
        return 400;
    if (!end)
        return len >= HTTPGET_HEAD_MAX ? 400 : 0;
    size_t head = (size_t)(end - buf) + 2; /* every line with its CR LF, not the blank one */
    /* The request line: method SP target SP version, each space single. */
    const char *p = buf, *eol = memmem(buf, head, "\r\n", 2);
    const char *m = p;
    while (p < eol && is_tchar((unsigned char)*p))
        p++;
    size_t method_len = (size_t)(p - m);
    if (!method_len || p >= eol || *p++ != ' ')
        return 400;
    const char *t = p;
    while (p<eol && * p> ' ' && *p < 0x7f)
        p++;
    size_t target_len = (size_t)(p - t);
    if (!target_len || p >= eol || *p++ != ' ')
        return 400;
    size_t version_len = (size_t)(eol - p);
    bool v11 = version_len == 8 && memcmp(p, "HTTP/1.1", 8) == 0;
    bool v10 = version_len == 8 && memcmp(p, "HTTP/1.0", 8) == 0;
    if (!v11 && !v10)
        return 400;
    /* Header fields: name ":" value; no folded lines; exactly one Host in HTTP/1.1. */
    unsigned hosts = 0;
    for (p = eol + 2; p < buf + head; p = eol + 2) {
        eol = memmem(p, (size_t)(buf + head - p), "\r\n", 2);
        const char *name = p;
        while (p < eol && is_tchar((unsigned char)*p))
            p++;
        if (p == name || p >= eol || *p != ':')
            return 400;
        if (p - name == 4 && strncasecmp(name, "host", 4) == 0)
            hosts++;
    }
    if (hosts > 1 || (v11 && hosts != 1))
        return 400;
    if (method_len != 3 || memcmp(m, "GET", 3) != 0)
        return 405;
    if (target_len != strlen(path) || memcmp(t, path, target_len) != 0)
        return 404;
    return 200;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    struct httpget *h = c->server;
    ev_io_stop(h->loop, &c->rd);
    ev_io_stop(h->loop, &c->wr);
    ev_timer_stop(h->loop, &c->deadline);
    close(c->fd);
    list_unlink(&c->link);
    free(c->out);
    free(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    default:
        return "Bad Request";
    }
}

/* The whole answer into c->out: 0, or -ENOMEM (then the connection is just closed). */
static int build_answer(struct conn *c, int status)
{
    const struct httpget_options *o = &c->server->opts;
    char *body = NULL;
    size_t body_len = 0;
    if (status == 200 && o->body(o->ctx, &body, &body_len) < 0)
        status = 500;
    if (status != 200) {
        free(body);
        char text[64];
        int n = snprintf(text, sizeof(text), "%d %s\n", status, reason(status));
        if (!(body = strdup(text)))
            return -ENOMEM;
        body_len = (size_t)n;
    }
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason(status),
                     status == 200 ? o->content_type : "text/plain; charset=utf-8", body_len,
                     status == 405 ? "Allow: GET\r\n" : "");
    c->out = malloc((size_t)n + body_len);
    if (!c->out) {
        free(body);
        return -ENOMEM;
    }
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
    free(body);
    return 0;
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    /* Answered: our end is closed, and what the peer still sends is read and dropped until it
     * closes too (or the deadline), so that closing does not reset the answer away. */
    ev_io_stop(loop, &c->wr);
    shutdown(c->fd, SHUT_WR);
    c->draining = true;
    ev_io_start(loop, &c->rd);
}

static void answer(struct conn *c, int status)
{
    ev_io_stop(c->server->loop, &c->rd);
    if (build_answer(c, status) < 0) {
        conn_close(c);
        return;
    }
    ev_io_start(c->server->loop, &c->wr);
    on_write(c->server->loop, &c->wr, EV_WRITE);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    if (c->draining) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->buf + c->n, sizeof(c->buf) - c->n, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c); /* gone before a whole request */
        return;
    }
    c->n += (size_t)n;
    int status = httpget_judge(c->buf, c->n, c->server->opts.path);
    if (status)
        answer(c, status);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_close(w->data);
}

static void on_accept(void *ctx, int fd, const char *peer)
{
    struct httpget *h = ctx;
    struct conn *c = malloc(sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    *c = (struct conn){.server = h, .fd = fd};
    list_push(&h->conns, &c->link);
    ev_io_init(&c->rd, on_read, fd, EV_READ);
    ev_io_init(&c->wr, on_write, fd, EV_WRITE);
    ev_timer_init(&c->deadline, on_deadline, HTTPGET_DEADLINE_S, 0.0);
    c->rd.data = c->wr.data = c->deadline.data = c;
    ev_io_start(h->loop, &c->rd);
    ev_timer_start(h->loop, &c->deadline);
}

int httpget_open(struct ev_loop *loop, const char *host, int port, const struct httpget_options *o,
                 struct httpget **out, char *err, size_t errlen)
{
    struct httpget *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    h->loop = loop;
    h->opts = *o;
    int rc = listener_open(loop, host, port, on_accept, h, &h->listener, err, errlen);
    if (rc < 0) {
        free(h);
        return rc;
    }
    listener_set_limit(h->listener, HTTPGET_CONNS_MAX);
    *out = h;
    return 0;
}

int httpget_port(const struct httpget *h)
{
    return listener_port(h->listener);
}

bool httpget_loopback_only(const struct httpget *h)
{
    return listener_loopback_only(h->listener);
}

void httpget_close(struct httpget *h)
{
    if (!h)
        return;
    listener_close(h->listener);
    while (h->conns)
        conn_close(list_item(h->conns, struct conn, link));
    free(h);
}

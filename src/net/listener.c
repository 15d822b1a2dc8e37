#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/hmap.h"
#include "runtime/log.h"
#include "runtime/ratelimit.h"

/* An accepted socket, known by its descriptor and its inode: once the owner closes it, the
 * descriptor is either invalid or names another file. */
struct tracked {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* A source address under listener_set_rate: its token bucket. */
struct source {
    struct hmap_entry link; /* keyed by ip */
    char ip[INET6_ADDRSTRLEN];
    struct tokens tokens;
};

struct listener {
    struct ev_loop *loop;
    ev_io io;
    ev_timer retry; /* pauses accepting when out of descriptors */
    int fd;
    int port;
    listener_accept_cb cb;
    void *ctx;

    size_t limit; /* 0 = none */
    struct tracked *open;
    size_t n_open;
    ev_tstamp last_sweep;
    struct ratelimit refusals;
    uint64_t accepted, refused; /* counted for metrics */

    double rate, burst; /* new connections per source address; rate 0 = no limit */
    struct hmap sources;
    double forgot_at; /* the last forget_rested: at most one scan a second when full */
    struct ratelimit rate_refusals;
};

/* Forgets the connections whose sockets were closed since they were accepted. */
static void sweep(struct listener *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n_open; i++) {
        struct stat st;
        if (fstat(l->open[i].fd, &st) == 0 && st.st_dev == l->open[i].dev &&
            st.st_ino == l->open[i].ino)
            l->open[k++] = l->open[i];
    }
    l->n_open = k;
}

/* Whether one more connection fits; if so it is tracked. */
static bool admit(struct listener *l, int fd)
{
    if (!l->limit)
        return true;
    if (l->n_open >= l->limit) {
        /* A full sweep costs one fstat per connection: at most every 100 ms under a flood. */
        ev_tstamp now = ev_now(l->loop);
        if (now - l->last_sweep >= 0.1) {
            l->last_sweep = now;
            sweep(l);
        }
        if (l->n_open >= l->limit)
            return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    l->open[l->n_open++] = (struct tracked){fd, st.st_dev, st.st_ino};
    return true;
}

void listener_set_limit(struct listener *l, size_t max)
{
    struct tracked *open = max ? calloc(max, sizeof(*open)) : NULL;
    if (max && !open) {
        log_warn("cannot track %zu connections; no connection limit", max);
        max = 0;
    }
    free(l->open);
    l->open = open;
    l->limit = max;
    l->n_open = 0;
}

/* The peer as "ip:port" ("[ip]:port" for IPv6) into buf, its address alone into ip ("?" for a
 * family other than IP). */
static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t len,
                        char ip[INET6_ADDRSTRLEN])
{
    snprintf(ip, INET6_ADDRSTRLEN, "?");
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, INET6_ADDRSTRLEN);
        snprintf(buf, len, "%s:%d", ip, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, INET6_ADDRSTRLEN);
        snprintf(buf, len, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

/* Forgets the sources whose bucket is full again: they are as if never seen. */
static void forget_rested(struct listener *l, double now)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&l->sources, e, tmp)
    {
        struct source *src = hmap_item(e, struct source, link);
        if (src->tokens.left + (now - src->tokens.refilled_at) * l->rate >= l->burst) {
            hmap_remove(&l->sources, e);
            free(src);
        }
    }
}

static void forget_all(struct listener *l)
{
    struct hmap_entry *e, *tmp;
    hmap_foreach(&l->sources, e, tmp)
    {
        hmap_remove(&l->sources, e);
        free(hmap_item(e, struct source, link));
    }
}

/* The host's own clients: the addresses a command run on the master's machine comes from. */
static bool from_this_host(const char *ip)
{
    return strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0 ||
           strcmp(ip, "::ffff:127.0.0.1") == 0;
}

/* Whether ip may open one more connection now (listener_set_rate). An address that cannot be
 * tracked (the table full of sources still within their burst, or no memory) is let through:
 * the limit is against one address that loops, not a replacement for --max-connections. */
static bool source_admits(struct listener *l, const char *ip, double now)
{
    if (l->rate <= 0 || from_this_host(ip))
        return true;
    struct hmap_entry *e = hmap_get(&l->sources, ip);
    struct source *src = e ? hmap_item(e, struct source, link) : NULL;
    if (!src) {
        if (l->sources.count >= LISTENER_SOURCES_MAX && now - l->forgot_at >= 1.0) {
            l->forgot_at = now;
            forget_rested(l, now);
        }
        if (l->sources.count >= LISTENER_SOURCES_MAX || !(src = calloc(1, sizeof(*src))))
            return true;
        snprintf(src->ip, sizeof(src->ip), "%s", ip);
        src->link.key = src->ip;
        if (hmap_put(&l->sources, &src->link) < 0) {
            free(src);
            return true;
        }
    }
    return tokens_take(&src->tokens, now, l->burst, l->rate);
}

void listener_set_rate(struct listener *l, double per_s, double burst)
{
    forget_all(l);
    l->rate = per_s > 0 ? per_s : 0;
    l->burst = burst >= 1 ? burst : 1;
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct listener *l = w->data;
    ev_io_start(loop, &l->io);
}

/* Closes a connection at once, counted, and logged at most once a second per kind (r). */
static void refuse(struct listener *l, int fd, struct ratelimit *r, const char *limit,
                   const char *peer)
{
    close(fd);
    l->refused++;
    unsigned held;
    if (ratelimit_pass(r, ev_now(l->loop), &held))
        log_warn("%s reached: refused %s (%u more refused since the last such line)", limit, peer,
                 held);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = w->data;
    /* Bounded, so one flood of connections cannot starve the rest of the loop. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Without a descriptor the pending connection stays queued and the socket stays
                 * readable: stop watching for a moment instead of spinning on it. */
                log_warn("cannot accept connections: %s; pausing 100 ms", strerror(errno));
                ev_io_stop(loop, &l->io);
                ev_timer_set(&l->retry, 0.1, 0.0);
                ev_timer_start(loop, &l->retry);
                return;
            }
            log_warn("accept: %s", strerror(errno));
            return;
        }
        char peer[INET6_ADDRSTRLEN + 10], ip[INET6_ADDRSTRLEN];
        format_peer(&ss, peer, sizeof(peer), ip);
        char why[80];
        if (!source_admits(l, ip, ev_now(loop))) {
            snprintf(why, sizeof(why), "connection rate limit (%g a second from one address)",
                     l->rate);
            refuse(l, fd, &l->rate_refusals, why, peer);
            continue;
        }
        if (!admit(l, fd)) {
            snprintf(why, sizeof(why), "connection limit (%zu)", l->limit);
            refuse(l, fd, &l->refusals, why, peer);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        l->accepted++;
        l->cb(l->ctx, fd, peer);
    }
}

int listener_open(struct ev_loop *loop, const char *host, int port, listener_accept_cb cb,
                  void *ctx, struct listener **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sslen;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (!host || !*host || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*in4);
    } else if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        if (strcmp(host, "localhost") == 0)
            in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*in6);
    } else {
        snprintf(err, errlen, "--listen: '%s' is not an IP address", host);
        return -EINVAL;
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host && *host ? host : "*", port,
                 strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);

    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return -ENOMEM;
    }
    l->loop = loop;
    l->fd = fd;
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    l->cb = cb;
    l->ctx = ctx;
    ev_io_init(&l->io, on_accept, fd, EV_READ);
    l->io.data = l;
    ev_io_start(loop, &l->io);
    ev_timer_init(&l->retry, on_retry, 0.1, 0.0);
    l->retry.data = l;
    if (hmap_init(&l->sources) < 0) {
        close(fd);
        free(l);
        return -ENOMEM;
    }
    *out = l;
    return 0;
}

int listener_port(const struct listener *l)
{
    return l->port;
}

bool listener_loopback_only(const struct listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

void listener_close(struct listener *l)
{
    if (!l)
        return;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->retry);
    close(l->fd);
    free(l->open);
    forget_all(l);
    hmap_destroy(&l->sources);
    free(l);
}

void listener_stats(struct listener *l, struct listener_stats *out)
{
    if (l->limit)
        sweep(l);
    *out = (struct listener_stats){
        .accepted = l->accepted,
        .refused = l->refused,
        .open = l->n_open,
        .counts_open = l->limit != 0,
    };
}

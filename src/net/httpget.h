/*
 * A minimal, strict HTTP/1.1 responder for one resource: GET on one path answers 200 with the
 * body a callback makes; any other request gets 404 (another path), 405 (another method) or 400
 * (anything malformed, or a request head over HTTPGET_HEAD_MAX bytes), and every connection is
 * closed after one answer (Connection: close). A connection that has not been answered within
 * HTTPGET_DEADLINE_S is closed without one. At most HTTPGET_CONNS_MAX connections are open at a
 * time. No authentication, no TLS. Loop thread only; never blocks; errors are 0 or -errno.
 */
#ifndef CRAWLAB_HTTPGET_H
#define CRAWLAB_HTTPGET_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#define HTTPGET_HEAD_MAX   8192
#define HTTPGET_DEADLINE_S 5.0
#define HTTPGET_CONNS_MAX  16

struct httpget;

/* Makes the body of a 200: *body is malloc'd (the responder frees it). A negative errno answers
 * 500. */
typedef int (*httpget_body_fn)(void *ctx, char **body, size_t *len);

struct httpget_options {
    const char *path;         /* the one path served, e.g. "/metrics"; must outlive the server */
    const char *content_type; /* of the 200; must outlive the server */
    httpget_body_fn body;
    void *ctx;
};

/* Binds host:port (as listener_open reads them) and serves on loop. err says what failed. */
int httpget_open(struct ev_loop *loop, const char *host, int port, const struct httpget_options *o,
                 struct httpget **out, char *err, size_t errlen);
int httpget_port(const struct httpget *h);
bool httpget_loopback_only(const struct httpget *h);
/* Stops serving and closes every connection. NULL is accepted. */
void httpget_close(struct httpget *h);

/*
 * Judges a request head: len bytes received so far. Returns 0 while the head is incomplete (no
 * blank line yet, and len within HTTPGET_HEAD_MAX), else the status to answer: 200 for "GET path
 * HTTP/1.x" (HTTP/1.1 with a Host header), 404, 405 or 400. Pure.
 */
int httpget_judge(const char *buf, size_t len, const char *path);

#endif

/*
 * Outgoing TCP connections for the worker and the client commands: name resolution with c-ares
 * (no NSS, so it works in a static binary and an empty chroot) and a non-blocking connect driven
 * by the loop. The result is a connected O_NONBLOCK socket ready for grpc_channel_create_from_fd.
 *
 * With a TLS client context, a dial also runs the TLS handshake and the fd it yields is the
 * plaintext end of a socketpair whose other end is pumped through TLS on the dialling loop (see
 * net/tls.h): callers see no difference but the error messages.
 */
#ifndef CRAWLAB_DIALER_H
#define CRAWLAB_DIALER_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct dial;
struct dial_tunnel;
struct tls_client;

/* fd >= 0 on success (the callee owns it), else fd = -1 and err a negative errno; errmsg says
 * what failed in words ("connection refused", "no address for name"). */
typedef void (*dial_cb)(void *ctx, int fd, int err, const char *errmsg);

/* Process-wide c-ares initialisation; call once before any dial. */
int dial_global_init(void);
void dial_global_cleanup(void);

/*
 * Starts resolving host and connecting to port, trying every address until one answers, within
 * timeout_ms in all (the TLS handshake included). tls (borrowed; it must outlive the connection)
 * makes it a TLS 1.3 connection, NULL a plaintext one. cb runs exactly once, on the loop thread,
 * unless dial_cancel() comes first. Returns 0 or -ENOMEM.
 */
int dial_start(struct ev_loop *loop, struct tls_client *tls, const char *host, int port,
               uint64_t timeout_ms, dial_cb cb, void *ctx, struct dial **out);

/* Abandons a dial in progress: no callback runs and every resource is released. */
void dial_cancel(struct dial *d);

/*
 * Blocking convenience for the client commands: connects within about timeout_ms. Any thread may
 * call it. Without tls a private loop runs until the socket is connected, *tunnel is NULL.
 * With tls the connection needs its pump for as long as it lives: the dial and then the pump run
 * on a helper thread with its own loop, which *tunnel owns; a TLS context's connections belong to
 * one thread, so one tunnel at a time per context. Returns 0 and *fd_out, or a negative errno with
 * err saying why (then there is no tunnel).
 */
int dial_blocking(struct tls_client *tls, const char *host, int port, uint64_t timeout_ms,
                  int *fd_out, struct dial_tunnel **tunnel, char *err, size_t errlen);

/* Stops a tunnel's thread, closing its TLS connection: call it once the plaintext fd is closed or
 * no longer used. NULL is a no-op. */
void dial_tunnel_close(struct dial_tunnel *t);

#endif

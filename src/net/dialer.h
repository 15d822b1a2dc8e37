/*
 * Outgoing TCP connections for the worker and the client commands: name resolution with c-ares
 * (no NSS, so it works in a static binary and an empty chroot) and a non-blocking connect driven
 * by the loop. The result is a connected O_NONBLOCK socket ready for grpc_channel_create_from_fd.
 *
 * With TLS set for the process (dial_set_tls), every dial also runs the TLS handshake and the fd
 * it yields is the plaintext end of a socketpair whose other end is pumped through TLS on the
 * dialling loop (see net/tls.h): callers see no difference but the error messages.
 */
#ifndef CRAWLAB_DIALER_H
#define CRAWLAB_DIALER_H

#include <stdint.h>

#include <ev.h>

struct dial;
struct tls_client;

/* fd >= 0 on success (the callee owns it), else fd = -1 and err a negative errno; errmsg says
 * what failed in words ("connection refused", "no address for name"). */
typedef void (*dial_cb)(void *ctx, int fd, int err, const char *errmsg);

/* Process-wide c-ares initialisation; call once before any dial. */
int dial_global_init(void);
void dial_global_cleanup(void);

/*
 * Makes every later dial a TLS 1.3 connection through tls (borrowed: it must outlive the dials;
 * NULL, the default, means plaintext). Call from the main thread while no dial is in progress.
 * dial_set_tls(NULL) also stops the helper thread of dial_blocking(), closing the connections it
 * pumps: call it before destroying tls.
 */
void dial_set_tls(struct tls_client *tls);

/*
 * Starts resolving host and connecting to port, trying every address until one answers, within
 * timeout_ms in all. cb runs exactly once, on the loop thread, unless dial_cancel() comes first.
 * Returns 0 or -ENOMEM.
 */
int dial_start(struct ev_loop *loop, const char *host, int port, uint64_t timeout_ms, dial_cb cb,
               void *ctx, struct dial **out);

/* Abandons a dial in progress: no callback runs and every resource is released. */
void dial_cancel(struct dial *d);

/*
 * Blocking convenience for the client commands: runs a private loop until connected. With TLS
 * the connection needs a pump for as long as it lives, so the dial and the pump run on one
 * helper thread with its own loop, started by the first call and stopped by dial_set_tls(NULL).
 * Any thread may call it; it blocks for at most about timeout_ms.
 */
int dial_blocking(const char *host, int port, uint64_t timeout_ms, int *fd_out, char *err,
                  size_t errlen);

#endif

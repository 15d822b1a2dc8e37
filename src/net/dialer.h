/*
 * Outgoing TCP connections for the worker and the client commands: name resolution with c-ares
 * (no NSS, so it works in a static binary and an empty chroot) and a non-blocking connect driven
 * by the loop. The result is a connected O_NONBLOCK socket ready for grpc_channel_create_from_fd.
 */
#ifndef CRAWLAB_DIALER_H
#define CRAWLAB_DIALER_H

#include <stdint.h>

#include <ev.h>

struct dial;

/* fd >= 0 on success (the callee owns it), else fd = -1 and err a negative errno; errmsg says
 * what failed in words ("connection refused", "no address for name"). */
typedef void (*dial_cb)(void *ctx, int fd, int err, const char *errmsg);

/* Process-wide c-ares initialisation; call once before any dial. */
int dial_global_init(void);
void dial_global_cleanup(void);

/*
 * Starts resolving host and connecting to port, trying every address until one answers, within
 * timeout_ms in all. cb runs exactly once, on the loop thread, unless dial_cancel() comes first.
 * Returns 0 or -ENOMEM.
 */
int dial_start(struct ev_loop *loop, const char *host, int port, uint64_t timeout_ms, dial_cb cb,
               void *ctx, struct dial **out);

/* Abandons a dial in progress: no callback runs and every resource is released. */
void dial_cancel(struct dial *d);

/* Blocking convenience for the client commands: runs a private loop until connected. */
int dial_blocking(const char *host, int port, uint64_t timeout_ms, int *fd_out, char *err,
                  size_t errlen);

#endif

/*
 * Readiness notification for a service manager, systemd's Type=notify: one datagram "READY=1" to
 * the AF_UNIX datagram socket named by $NOTIFY_SOCKET (a path, or an abstract name written with a
 * leading '@'). A daemon calls notify_ready() once it serves: the master once it listens, a worker
 * once its first registration succeeded. Without $NOTIFY_SOCKET nothing is sent.
 *
 * Owns nothing past a call: each send opens and closes its own socket. notify_ready() is for the
 * loop thread; notify_send() is safe on any thread. Neither blocks (the send is MSG_DONTWAIT).
 * Errors are 0 or a negative errno.
 */
#ifndef CRAWLAB_NOTIFY_H
#define CRAWLAB_NOTIFY_H

/*
 * Sends message as one datagram to the socket at address: an absolute path, or '@' and an
 * abstract name. -EINVAL for any other address (empty, relative), -ENAMETOOLONG when it does not
 * fit a sockaddr_un, else what socket(2) or sendto(2) failed with.
 */
int notify_send(const char *address, const char *message);

/*
 * "READY=1" to $NOTIFY_SOCKET, the first time it is called in the process; later calls do
 * nothing (a worker registers again after every reconnect). A failed send is logged as a warning:
 * the service manager then times the start out, which names the unit.
 */
void notify_ready(void);

#endif

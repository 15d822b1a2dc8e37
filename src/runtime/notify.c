#include "runtime/notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/log.h"

/* Fills *sa from a $NOTIFY_SOCKET value; returns the address length to pass, or -errno. */
static int notify_address(const char *address, struct sockaddr_un *sa)
{
    size_t n = strlen(address);
    if (n < 2 || (address[0] != '/' && address[0] != '@'))
        return -EINVAL;
    if (n > sizeof(sa->sun_path) || (address[0] == '/' && n == sizeof(sa->sun_path)))
        return -ENAMETOOLONG;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, address, n);
    if (address[0] == '@')
        sa->sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, not terminated */
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + (address[0] == '/'));
}

int notify_send(const char *address, const char *message)
{
    struct sockaddr_un sa;
    int len = notify_address(address, &sa);
    if (len < 0)
        return len;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (sendto(fd, message, strlen(message), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)len) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

void notify_ready(void)
{
    static bool sent;
    const char *address = getenv("NOTIFY_SOCKET");
    if (sent || !address || !*address)
        return;
    sent = true;
    int rc = notify_send(address, "READY=1");
    if (rc < 0)
        log_warn("cannot tell the service manager that we are ready (NOTIFY_SOCKET=%s): %s",
                 address, strerror(-rc));
}

#include "check_main.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runtime/notify.h"

/* A bound datagram socket standing in for the service manager's; name is a path or "@abstract". */
static int bind_receiver(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    ck_assert_uint_lt(n, sizeof(sa.sun_path));
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

/* The next datagram waiting on fd, or "" when there is none. */
static const char *next_datagram(int fd)
{
    static char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        n = 0;
    }
    buf[n] = '\0';
    return buf;
}

static char *temp_socket_path(void)
{
    static char dir[] = "/tmp/notify-XXXXXX";
    static char path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    return path;
}

/* Removes the socket file and the directory temp_socket_path() made for it. */
static void remove_socket_path(char *path)
{
    ck_assert_int_eq(unlink(path), 0);
    *strrchr(path, '/') = '\0';
    ck_assert_int_eq(rmdir(path), 0);
}

START_TEST(test_notify_send_reaches_a_socket_bound_to_a_path)
{
    char *path = temp_socket_path();
    int fd = bind_receiver(path);
    ck_assert_int_eq(notify_send(path, "READY=1"), 0);
    ck_assert_str_eq(next_datagram(fd), "READY=1");
    ck_assert_str_eq(next_datagram(fd), "");
    close(fd);
    remove_socket_path(path);
}
END_TEST

START_TEST(test_notify_send_reaches_an_abstract_socket_named_with_an_at_sign)
{
    char name[64];
    snprintf(name, sizeof(name), "@crawlab-notify-test-%ld", (long)getpid());
    int fd = bind_receiver(name);
    ck_assert_int_eq(notify_send(name, "READY=1"), 0);
    ck_assert_str_eq(next_datagram(fd), "READY=1");
    close(fd);
}
END_TEST

START_TEST(test_notify_send_refuses_addresses_systemd_would_not_give)
{
    ck_assert_int_eq(notify_send("", "READY=1"), -EINVAL);
    ck_assert_int_eq(notify_send("@", "READY=1"), -EINVAL);
    ck_assert_int_eq(notify_send("run/notify", "READY=1"), -EINVAL);
    char longer[200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[0] = '/';
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_eq(notify_send(longer, "READY=1"), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_notify_send_to_a_missing_socket_fails_with_its_errno)
{
    ck_assert_int_eq(notify_send("/nonexistent-dir/notify", "READY=1"), -ENOENT);
}
END_TEST

START_TEST(test_notify_ready_sends_once_per_process)
{
    char *path = temp_socket_path();
    int fd = bind_receiver(path);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    notify_ready();
    notify_ready(); /* a worker's second registration */
    ck_assert_str_eq(next_datagram(fd), "READY=1");
    ck_assert_str_eq(next_datagram(fd), "");
    close(fd);
    remove_socket_path(path);
}
END_TEST

START_TEST(test_notify_ready_without_notify_socket_sends_nothing)
{
    ck_assert_int_eq(unsetenv("NOTIFY_SOCKET"), 0);
    notify_ready(); /* nothing to reach, nothing to crash on */
    char *path = temp_socket_path();
    int fd = bind_receiver(path);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    notify_ready(); /* the first call did not count as the one send */
    ck_assert_str_eq(next_datagram(fd), "READY=1");
    close(fd);
    remove_socket_path(path);
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_notify_send_reaches_a_socket_bound_to_a_path);
    tcase_add_test(tc, test_notify_send_reaches_an_abstract_socket_named_with_an_at_sign);
    tcase_add_test(tc, test_notify_send_refuses_addresses_systemd_would_not_give);
    tcase_add_test(tc, test_notify_send_to_a_missing_socket_fails_with_its_errno);
    tcase_add_test(tc, test_notify_ready_sends_once_per_process);
    tcase_add_test(tc, test_notify_ready_without_notify_socket_sends_nothing);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = notify_suite};

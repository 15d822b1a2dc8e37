#include "check_main.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <ev.h>

#include "net/listener.h"

static void ignore_accept(void *ctx, int fd, const char *peer)
{
    (void)ctx;
    (void)peer;
    close(fd);
}

/* listener_loopback_only of a listener bound to host (port 0), or -errno when host cannot be
 * bound here (no IPv6, say). */
static int loopback_only(const char *host)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(loop);
    struct listener *l = NULL;
    char err[256];
    int rc = listener_open(loop, host, 0, ignore_accept, NULL, &l, err, sizeof(err));
    if (rc == 0) {
        ck_assert_int_gt(listener_port(l), 0);
        rc = listener_loopback_only(l);
        listener_close(l);
    }
    ev_loop_destroy(loop);
    return rc;
}

START_TEST(test_loopback_addresses_are_loopback_only)
{
    ck_assert_int_eq(loopback_only("127.0.0.1"), 1);
    ck_assert_int_eq(loopback_only("localhost"), 1);
    int v6 = loopback_only("::1");
    ck_assert_msg(v6 == 1 || v6 == -EADDRNOTAVAIL || v6 == -EAFNOSUPPORT, "::1 gave %d", v6);
}
END_TEST

/* Every address includes the network's: the master warns when it listens so without TLS. */
START_TEST(test_every_address_is_not_loopback_only)
{
    ck_assert_int_eq(loopback_only("0.0.0.0"), 0);
}
END_TEST

static Suite *listener_suite(void)
{
    Suite *s = suite_create("listener");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_loopback_addresses_are_loopback_only);
    tcase_add_test(tc, test_every_address_is_not_loopback_only);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = listener_suite};

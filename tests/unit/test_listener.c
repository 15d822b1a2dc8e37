#include "check_main.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
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

/* The sockets the listener handed over, kept open. */
struct kept {
    int fds[4];
    int n;
};

static void keep_accept(void *ctx, int fd, const char *peer)
{
    struct kept *k = ctx;
    ck_assert_int_lt(k->n, 4);
    k->fds[k->n++] = fd;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Runs the loop until the listener has handled n connections, accepted or refused. */
static void handle(struct ev_loop *loop, struct listener *l, uint64_t n)
{
    struct listener_stats st;
    for (listener_stats(l, &st); st.accepted + st.refused < n; listener_stats(l, &st))
        ev_run(loop, EVRUN_ONCE);
}

START_TEST(test_stats_count_accepted_refused_and_open_connections)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct listener *l = NULL;
    struct kept k = {.n = 0};
    char err[256];
    ck_assert_int_eq(listener_open(loop, "127.0.0.1", 0, keep_accept, &k, &l, err, sizeof(err)), 0);
    listener_set_limit(l, 1);
    int c1 = connect_to(listener_port(l));
    handle(loop, l, 1);
    struct listener_stats st;
    listener_stats(l, &st);
    ck_assert(st.counts_open);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.refused, 0);
    ck_assert_uint_eq(st.open, 1);
    /* Over the limit: closed at once and counted. */
    int c2 = connect_to(listener_port(l));
    handle(loop, l, 2);
    listener_stats(l, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.refused, 1);
    ck_assert_uint_eq(st.open, 1);
    /* Its owner closed the first: it no longer counts as open. */
    ck_assert_int_eq(k.n, 1);
    close(k.fds[0]);
    listener_stats(l, &st);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.accepted, 1);
    close(c1);
    close(c2);
    listener_close(l);
    ev_loop_destroy(loop);
}
END_TEST

/* A connection to port from the loopback address from (bound before connect). */
static int connect_from(const char *from, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, from, &src.sin_addr), 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void count_accept(void *ctx, int fd, const char *peer)
{
    (*(int *)ctx)++;
    close(fd);
}

/* Two at once from one address, then (at a rate too slow to refill during the test) no more;
 * another address has its own two; the host's own address is not limited. */
START_TEST(test_rate_limits_each_source_address_but_the_hosts_own)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct listener *l = NULL;
    int accepted = 0;
    char err[256];
    ck_assert_int_eq(
        listener_open(loop, "127.0.0.1", 0, count_accept, &accepted, &l, err, sizeof(err)), 0);
    listener_set_rate(l, 0.001, 2);
    int port = listener_port(l);
    const char *from[] = {"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3",
                          "127.0.0.3", "127.0.0.1", "127.0.0.1", "127.0.0.1"};
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = connect_from(from[i], port);
        handle(loop, l, (uint64_t)i + 1);
    }
    struct listener_stats st;
    listener_stats(l, &st);
    ck_assert_uint_eq(st.refused, 1);
    ck_assert_uint_eq(st.accepted, 7);
    ck_assert_int_eq(accepted, 7);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    listener_close(l);
    ev_loop_destroy(loop);
}
END_TEST

static Suite *listener_suite(void)
{
    Suite *s = suite_create("listener");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_loopback_addresses_are_loopback_only);
    tcase_add_test(tc, test_every_address_is_not_loopback_only);
    tcase_add_test(tc, test_stats_count_accepted_refused_and_open_connections);
    tcase_add_test(tc, test_rate_limits_each_source_address_but_the_hosts_own);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = listener_suite};

/*
 * TLS: certificates made by `cert init` / `cert issue` (they verify with wolfSSL, carry their
 * names, keep their keys private, never overwrite), and the TLS pump of net/tls.c driven on a
 * private libev loop over real loopback TCP: handshakes accepted and refused, bytes intact both
 * ways under partial writes, back-pressure without spinning, half-close, abrupt close, timeouts.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "check_main.h"
#include "cli/commands.h"
#include "config.h"
#include "core/roles.h"
#include "net/certwatch.h"
#include "net/tls.h"

#define MIB (1024 * 1024)
/* A bound on the pump's linger after one direction ended (5 s in net/tls.c), with room to spare. */
#define LINGER_BOUND_S 8.0

/* Made once by make_pkis(), before any test: a cluster's PKI, and a second CA that nobody trusts.
 */
static char pki[256], other[256];

static void path_in(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

static int run_cert(const char *w1, const char *w2, const char *w3, const char *w4, const char *w5)
{
    char *argv[] = {"crawlab-node", (char *)w1, (char *)w2, (char *)w3,
                    (char *)w4,     (char *)w5, NULL};
    int argc = 1;
    while (argv[argc])
        argc++;
    struct config cfg;
    char err[256];
    /* No ck_assert here: make_pkis() calls this too, outside any test. */
    int rc = config_parse(&cfg, argc, argv, NULL, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    rc = cfg.command == CMD_CERT_INIT ? cli_cert_init(&cfg) : cli_cert_issue(&cfg);
    config_free(&cfg);
    return rc;
}

static int init_pki(const char *dir, const char *hosts)
{
    char d[300], h[300];
    snprintf(d, sizeof(d), "--dir=%s", dir);
    snprintf(h, sizeof(h), "--master-host=%s", hosts);
    return run_cert("cert", "init", d, h, NULL);
}

static int issue(const char *dir, const char *name, bool expired)
{
    char d[300], n[300];
    snprintf(d, sizeof(d), "--dir=%s", dir);
    snprintf(n, sizeof(n), "--name=%s", name);
    return run_cert("cert", "issue", d, n, expired ? "--test-expired" : NULL);
}

/* cert issue with --role=role. */
static int issue_as(const char *dir, const char *name, const char *role)
{
    char d[300], n[300], r[64];
    snprintf(d, sizeof(d), "--dir=%s", dir);
    snprintf(n, sizeof(n), "--name=%s", name);
    snprintf(r, sizeof(r), "--role=%s", role);
    return run_cert("cert", "issue", d, n, r);
}

/* wolfSSL's verdict on dir/file against ca: WOLFSSL_SUCCESS or a negative error code. */
static int verify_file(const char *ca_dir, const char *dir, const char *file)
{
    char ca[300], leaf[300];
    path_in(ca, sizeof(ca), ca_dir, "ca.pem");
    path_in(leaf, sizeof(leaf), dir, file);
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    ck_assert_ptr_nonnull(cm);
    ck_assert_int_eq(wolfSSL_CertManagerLoadCA(cm, ca, NULL), WOLFSSL_SUCCESS);
    int rc = wolfSSL_CertManagerVerify(cm, leaf, WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(cm);
    return rc;
}

static WOLFSSL_X509 *load_x509(const char *dir, const char *file)
{
    char path[300];
    path_in(path, sizeof(path), dir, file);
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(path, WOLFSSL_FILETYPE_PEM);
    ck_assert_msg(x != NULL, "cannot load %s", path);
    return x;
}

static char *common_name(WOLFSSL_X509 *x, char *buf, int len)
{
    ck_assert_int_gt(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x),
                                                       NID_commonName, buf, len),
                     0);
    return buf;
}

static mode_t mode_of(const char *dir, const char *file)
{
    char path[300];
    struct stat st;
    path_in(path, sizeof(path), dir, file);
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static char *slurp(const char *dir, const char *file)
{
    char path[300];
    path_in(path, sizeof(path), dir, file);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = calloc(1, 16384);
    fread(buf, 1, 16383, f);
    fclose(f);
    return buf;
}

/* ---- certificates ---- */

START_TEST(test_cert_init_makes_a_chain_that_wolfssl_verifies)
{
    ck_assert_int_eq(verify_file(pki, pki, "master.pem"), WOLFSSL_SUCCESS);
    ck_assert_int_eq(verify_file(pki, pki, "worker.pem"), WOLFSSL_SUCCESS);
}
END_TEST

START_TEST(test_master_certificate_names_every_master_host_and_no_other)
{
    WOLFSSL_X509 *x = load_x509(pki, "master.pem");
    ck_assert_int_eq(wolfSSL_X509_check_host(x, "localhost", 9, 0, NULL), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_X509_check_host(x, "master.test", 11, 0, NULL), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_X509_check_ip_asc(x, "127.0.0.1", 0), WOLFSSL_SUCCESS);
    /* wolfSSL matches IPv6 addresses in their full spelling only; the pump compares bytes. */
    ck_assert_int_eq(wolfSSL_X509_check_ip_asc(x, "0000:0000:0000:0000:0000:0000:0000:0001", 0),
                     WOLFSSL_SUCCESS);
    ck_assert_int_ne(wolfSSL_X509_check_host(x, "evil.test", 9, 0, NULL), WOLFSSL_SUCCESS);
    ck_assert_int_ne(wolfSSL_X509_check_ip_asc(x, "10.1.2.3", 0), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_X509_get_isCA(x), 0);
    wolfSSL_X509_free(x);
}
END_TEST

START_TEST(test_ca_is_a_ca_and_the_worker_certificate_is_called_worker)
{
    char cn[64];
    WOLFSSL_X509 *ca = load_x509(pki, "ca.pem");
    ck_assert_int_eq(wolfSSL_X509_get_isCA(ca), 1);
    wolfSSL_X509_free(ca);
    WOLFSSL_X509 *w = load_x509(pki, "worker.pem");
    ck_assert_str_eq(common_name(w, cn, sizeof(cn)), "worker");
    wolfSSL_X509_free(w);
}
END_TEST

START_TEST(test_keys_are_private_and_certificates_readable)
{
    ck_assert_int_eq(mode_of(pki, "ca.key"), 0600);
    ck_assert_int_eq(mode_of(pki, "master.key"), 0600);
    ck_assert_int_eq(mode_of(pki, "worker.key"), 0600);
    ck_assert_int_eq(mode_of(pki, "ca.pem"), 0644);
    ck_assert_int_eq(mode_of(pki, "master.pem"), 0644);
    struct stat st;
    ck_assert_int_eq(stat(pki, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0700);
}
END_TEST

START_TEST(test_cert_init_never_overwrites_and_changes_nothing)
{
    char *before = slurp(pki, "ca.key");
    char *master_before = slurp(pki, "master.pem");
    ck_assert_int_eq(init_pki(pki, "other.test"), 1);
    char *after = slurp(pki, "ca.key");
    char *master_after = slurp(pki, "master.pem");
    ck_assert_str_eq(before, after);
    ck_assert_str_eq(master_before, master_after);
    free(before);
    free(after);
    free(master_before);
    free(master_after);
}
END_TEST

START_TEST(test_cert_issue_signs_a_named_client_certificate_with_the_ca)
{
    char cn[64];
    ck_assert_int_eq(issue(pki, "alice", false), 0);
    ck_assert_int_eq(verify_file(pki, pki, "alice.pem"), WOLFSSL_SUCCESS);
    ck_assert_int_eq(mode_of(pki, "alice.key"), 0600);
    WOLFSSL_X509 *x = load_x509(pki, "alice.pem");
    ck_assert_str_eq(common_name(x, cn, sizeof(cn)), "alice");
    wolfSSL_X509_free(x);
    /* The same name again is refused. */
    ck_assert_int_eq(issue(pki, "alice", false), 1);
}
END_TEST

START_TEST(test_expired_certificate_fails_verification_as_expired)
{
    ck_assert_int_eq(issue(pki, "expired-unit", true), 0);
    ck_assert_int_eq(verify_file(pki, pki, "expired-unit.pem"), ASN_AFTER_DATE_E);
}
END_TEST

START_TEST(test_certificate_of_another_ca_does_not_verify)
{
    ck_assert_int_eq(verify_file(pki, other, "worker.pem"), ASN_NO_SIGNER_E);
    ck_assert_int_eq(verify_file(other, pki, "master.pem"), ASN_NO_SIGNER_E);
}
END_TEST

START_TEST(test_cert_issue_without_a_ca_fails)
{
    char dir[] = "/tmp/crawlab-tls-empty-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(issue(dir, "bob", false), 1);
    char path[300];
    path_in(path, sizeof(path), dir, "bob.key");
    ck_assert_int_ne(access(path, F_OK), 0);
    rmdir(dir);
}
END_TEST

/* ---- the pump ---- */

struct ready {
    bool done;
    int fd, err;
    char msg[400];
    char addr[64];
    char cn[256]; /* the client certificate's common name the callback gave */
    bool has_cn;
    bool has_cert;
    enum cert_role role; /* what its subject OU entries say */
};

static void on_ready(void *ctx, const struct tls_result *res)
{
    struct ready *r = ctx;
    ck_assert(!r->done);
    r->done = true;
    r->fd = res->plain_fd;
    r->err = res->err;
    snprintf(r->msg, sizeof(r->msg), "%s", res->errmsg ? res->errmsg : "");
    snprintf(r->addr, sizeof(r->addr), "%s", res->addr ? res->addr : "");
    r->has_cn = res->cert_cn != NULL;
    snprintf(r->cn, sizeof(r->cn), "%s", res->cert_cn ? res->cert_cn : "");
    r->has_cert = res->has_cert;
    r->role = res->has_cert ? role_of_cert_ous(res->cert_ous, res->n_cert_ous) : CERT_ROLE_ABSENT;
}

static struct ev_loop *loop;
static struct tls_server *srv;
static struct tls_client *cli;

static void pump_setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = NULL;
    cli = NULL;
}

static void pump_teardown(void)
{
    tls_server_destroy(srv);
    tls_client_destroy(cli);
    ev_loop_destroy(loop);
}

/* A server presenting name's certificate from pki. */
static void make_server_as(const char *name, bool require, uint64_t timeout_ms)
{
    char cert[300], key[300], ca[300], err[400];
    snprintf(cert, sizeof(cert), "%s/%s.pem", pki, name);
    snprintf(key, sizeof(key), "%s/%s.key", pki, name);
    path_in(ca, sizeof(ca), pki, "ca.pem");
    struct tls_server_options o = {cert, key, ca, require, timeout_ms};
    ck_assert_msg(tls_server_create(&o, &srv, err, sizeof(err)) == 0, "%s", err);
}

static void make_server(bool require, uint64_t timeout_ms)
{
    make_server_as("master", require, timeout_ms);
}

/* A client trusting ca_dir's CA, presenting name's certificate from cert_dir (or none). */
static void make_client(const char *ca_dir, const char *cert_dir, const char *name,
                        const char *server_name)
{
    char cert[300], key[300], ca[300], err[400];
    path_in(ca, sizeof(ca), ca_dir, "ca.pem");
    snprintf(cert, sizeof(cert), "%s/%s.pem", cert_dir ? cert_dir : "", name ? name : "");
    snprintf(key, sizeof(key), "%s/%s.key", cert_dir ? cert_dir : "", name ? name : "");
    struct tls_client_options o = {ca, name ? cert : NULL, name ? key : NULL, server_name};
    ck_assert_msg(tls_client_create(&o, &cli, err, sizeof(err)) == 0, "%s", err);
}

/* A connected loopback TCP pair, both ends non-blocking, small buffers for partial writes. */
static void tcp_pair(int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    *b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 16 * 1024;
    setsockopt(*b, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ck_assert_int_eq(connect(*b, (struct sockaddr *)&sa, sizeof(sa)), 0);
    *a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(*a, 0);
    setsockopt(*a, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    fcntl(*a, F_SETFL, O_NONBLOCK);
    fcntl(*b, F_SETFL, O_NONBLOCK);
    close(l);
}

static void on_guard(struct ev_loop *l, ev_timer *w, int revents)
{
    *(bool *)w->data = true;
}

/* Runs the loop until *a (and *b when given) are true; fails after timeout_s. */
static void run_until(bool *a, bool *b, double timeout_s)
{
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, on_guard, timeout_s, 0.0);
    guard.data = &expired;
    ev_timer_start(loop, &guard);
    while (!(*a && (!b || *b)) && !expired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
    ck_assert_msg(!expired, "timed out after %.1f s", timeout_s);
}

/* Runs the loop for about seconds, whatever happens. Returns the loop iterations it took. */
static unsigned run_for(double seconds)
{
    unsigned before = ev_iteration(loop);
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, on_guard, seconds, 0.0);
    guard.data = &expired;
    ev_timer_start(loop, &guard);
    while (!expired)
        ev_run(loop, EVRUN_ONCE);
    return ev_iteration(loop) - before;
}

struct link {
    struct ready s, c;
    int raw_client; /* a duplicate of the client's TCP socket, to inject faults */
};

/* Handshake between srv and cli over loopback TCP; both callbacks have run on return. */
static void connect_pair(struct link *k, const char *host)
{
    int a, b;
    tcp_pair(&a, &b);
    memset(k, 0, sizeof(*k));
    k->raw_client = dup(b);
    struct tls_conn *conn;
    ck_assert_int_eq(tls_accept(loop, srv, a, "127.0.0.1:test", on_ready, &k->s), 0);
    ck_assert_int_eq(tls_connect(loop, cli, b, host, 5000, on_ready, &k->c, &conn), 0);
    run_until(&k->s.done, &k->c.done, 10.0);
}

static void close_link(struct link *k)
{
    if (k->s.fd >= 0)
        close(k->s.fd);
    if (k->c.fd >= 0)
        close(k->c.fd);
    if (k->raw_client >= 0)
        close(k->raw_client);
}

static void expect_connected(struct link *k)
{
    ck_assert_msg(k->s.fd >= 0, "server: %s", k->s.msg);
    ck_assert_msg(k->c.fd >= 0, "client: %s", k->c.msg);
    ck_assert(fcntl(k->s.fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(k->c.fd, F_GETFL) & O_NONBLOCK);
}

/* Byte i of a stream: a pattern with a long period, so that a lost or doubled chunk shows. */
static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 2654435761u) >> 13 ^ seed ^ (i / 65521));
}

struct stream {
    int fd;
    size_t sent, received, total;
    unsigned seed_out, seed_in;
    bool mismatch, eof;
};

/* Writes what the socket takes; returns bytes written. */
static size_t push(struct stream *s)
{
    unsigned char buf[8192];
    size_t done = 0;
    while (s->sent < s->total) {
        size_t n = s->total - s->sent < sizeof(buf) ? s->total - s->sent : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(s->sent + i, s->seed_out);
        ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        s->sent += (size_t)w;
        done += (size_t)w;
    }
    return done;
}

/* Reads what is there and checks it against the pattern. */
static size_t pull(struct stream *s)
{
    unsigned char buf[8192];
    size_t done = 0;
    for (;;) {
        ssize_t r = recv(s->fd, buf, sizeof(buf), 0);
        if (r == 0)
            s->eof = true;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] != pattern(s->received + (size_t)i, s->seed_in))
                s->mismatch = true;
        }
        s->received += (size_t)r;
        done += (size_t)r;
    }
    return done;
}

START_TEST(test_bytes_cross_intact_both_ways_at_once)
{
    make_server(true, 0);
    make_client(pki, pki, "worker", "localhost");
    struct link k;
    connect_pair(&k, "127.0.0.1");
    expect_connected(&k);
    const size_t total = 8 * MIB;
    struct stream up = {.fd = k.c.fd, .total = total, .seed_out = 1, .seed_in = 2};
    struct stream down = {.fd = k.s.fd, .total = total, .seed_out = 2, .seed_in = 1};
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, on_guard, 30.0, 0.0);
    guard.data = &expired;
    ev_timer_start(loop, &guard);
    while (!expired && (up.received < total || down.received < total)) {
        push(&up);
        push(&down);
        pull(&up);
        pull(&down);
        if (up.received < total || down.received < total)
            ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &guard);
    ck_assert_msg(!expired, "stalled at %zu and %zu of %zu bytes", up.received, down.received,
                  total);
    ck_assert(!up.mismatch && !down.mismatch);
    /* Everything arrived, so nothing is in flight: neither pump holds buffers any more. */
    ck_assert_uint_eq(tls_server_busy_count(srv), 0);
    ck_assert_uint_eq(tls_client_busy_count(cli), 0);
    close_link(&k);
}
END_TEST

START_TEST(test_slow_reader_holds_the_writer_back_without_spinning)
{
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    /* Nobody reads the server's plaintext end: write until nothing more is taken. */
    struct stream w = {.fd = k.c.fd, .total = 256 * MIB, .seed_out = 7};
    for (int quiet = 0; quiet < 3;) {
        quiet = push(&w) ? 0 : quiet + 1;
        run_for(0.05);
    }
    /* Bounded: socket buffers and one pump buffer per hop, not the whole stream. */
    ck_assert_uint_lt(w.sent, 16 * MIB);
    /* Stalled, the pumps wait on their sockets: a few loop iterations, not thousands. */
    unsigned iterations = run_for(0.3);
    ck_assert_uint_lt(iterations, 20);
    /* The server's pump holds bytes its plaintext reader has not taken yet. */
    ck_assert_uint_eq(tls_server_busy_count(srv), 1);
    /* The reader catches up and gets every byte in order. */
    struct stream r = {.fd = k.s.fd, .seed_in = 7};
    w.total = w.sent + MIB;
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, on_guard, 20.0, 0.0);
    guard.data = &expired;
    ev_timer_start(loop, &guard);
    while (!expired && r.received < w.total) {
        push(&w);
        pull(&r);
        if (r.received < w.total)
            ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &guard);
    ck_assert(!expired);
    ck_assert(!r.mismatch);
    ck_assert_uint_eq(r.received, w.total);
    close_link(&k);
}
END_TEST

static bool no_conns(void)
{
    return tls_server_conn_count(srv) == 0 && tls_client_conn_count(cli) == 0;
}

/* Runs the loop until both contexts have no connection left; fails after timeout_s. */
static void run_until_closed(double timeout_s)
{
    double start = ev_time();
    while (!no_conns() && ev_time() - start < timeout_s)
        run_for(0.02);
    ck_assert_msg(no_conns(), "connections left: server %zu, client %zu",
                  tls_server_conn_count(srv), tls_client_conn_count(cli));
}

/* Reads fd into buf until EOF, running the loop while nothing is there. Returns the bytes read,
 * or -1 when no EOF came within timeout_s (or cap bytes came first). */
static ssize_t read_to_eof(int fd, char *buf, size_t cap, double timeout_s)
{
    size_t got = 0;
    double start = ev_time();
    while (got < cap && ev_time() - start < timeout_s) {
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r == 0)
            return (ssize_t)got;
        if (r > 0)
            got += (size_t)r;
        else
            run_for(0.01);
    }
    return -1;
}

START_TEST(test_half_close_reaches_the_other_side_and_the_answer_still_comes_back)
{
    make_server(true, 0);
    make_client(pki, pki, "worker", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert_int_eq(send(k.c.fd, "question", 8, 0), 8);
    ck_assert_int_eq(shutdown(k.c.fd, SHUT_WR), 0);

    char buf[64];
    ck_assert_int_eq(read_to_eof(k.s.fd, buf, sizeof(buf), 5.0), 8);
    ck_assert(memcmp(buf, "question", 8) == 0);

    ck_assert_int_eq(send(k.s.fd, "answer", 6, 0), 6);
    close(k.s.fd);
    k.s.fd = -1;
    ck_assert_int_eq(read_to_eof(k.c.fd, buf, sizeof(buf), 5.0), 6);
    ck_assert(memcmp(buf, "answer", 6) == 0);
    /* Both directions ended: both pumps are gone well before the linger bound. */
    run_until_closed(2.0);
    close_link(&k);
}
END_TEST

/* Waits until fd reads EOF or an error; true when it did within timeout_s. */
static bool wait_dead(int fd, double timeout_s)
{
    double start = ev_time();
    char buf[4096];
    while (ev_time() - start < timeout_s) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN))
            return true;
        if (r < 0)
            run_for(0.01);
    }
    return false;
}

START_TEST(test_garbage_on_the_wire_closes_both_plaintext_ends_at_once)
{
    make_server(true, 0);
    make_client(pki, pki, "worker", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    /* Bytes that are no TLS record, injected under the client's pump. */
    ck_assert_int_eq(send(k.raw_client, "\x17\x03\x03\x00\x05junk!", 10, MSG_NOSIGNAL), 10);
    ck_assert(wait_dead(k.s.fd, 2.0));
    ck_assert(wait_dead(k.c.fd, 2.0));
    run_until_closed(1.0);
    close_link(&k);
}
END_TEST

START_TEST(test_gone_network_ends_the_plaintext_ends)
{
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    /* The TCP connection ends without close_notify (a crashed peer, a cut cable seen as FIN). */
    shutdown(k.raw_client, SHUT_RDWR);
    ck_assert(wait_dead(k.s.fd, 2.0));
    ck_assert(wait_dead(k.c.fd, 2.0));
    /* gRPC closes its end on EOF; then nothing is left. */
    close(k.s.fd);
    close(k.c.fd);
    k.s.fd = k.c.fd = -1;
    run_until_closed(2.0);
    close_link(&k);
}
END_TEST

/* What the master does to a connection it closes: shutdown(2) of the plaintext end gRPC owns. */
START_TEST(test_shutdown_of_the_plaintext_end_ends_the_connection)
{
    make_server(true, 0);
    make_client(pki, pki, "worker", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert_int_eq(shutdown(k.s.fd, SHUT_RDWR), 0);
    ck_assert(wait_dead(k.c.fd, 2.0));
    /* A client that does not take the hint and writes on: both sides still go, and the server's
     * plaintext end never sees a byte. */
    send(k.c.fd, "PING", 4, MSG_NOSIGNAL);
    run_until_closed(LINGER_BOUND_S);
    char b;
    ck_assert_int_eq(recv(k.s.fd, &b, 1, 0), 0);
    close_link(&k);
}
END_TEST

START_TEST(test_destroying_the_server_closes_its_connections)
{
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert_uint_eq(tls_server_conn_count(srv), 1);
    tls_server_destroy(srv);
    srv = NULL;
    ck_assert(wait_dead(k.s.fd, 1.0));
    ck_assert(wait_dead(k.c.fd, 2.0));
    close_link(&k);
}
END_TEST

START_TEST(test_accept_gives_the_verified_client_common_name_and_address)
{
    make_server(true, 0);
    make_client(pki, pki, "worker", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert(k.s.has_cn);
    ck_assert_str_eq(k.s.cn, "worker");
    ck_assert_str_eq(k.s.addr, "127.0.0.1:test");
    /* The client side never names a certificate: it verified the master's by its host name. */
    ck_assert(!k.c.has_cn);
    ck_assert_str_eq(k.c.addr, "localhost");
    close_link(&k);
}
END_TEST

/* The role of cert issue --role and of cert init's worker.pem comes back on the master's side. */
START_TEST(test_accept_gives_the_role_the_certificate_carries)
{
    make_server(true, 0);
    ck_assert_int_eq(issue_as(pki, "boss", "admin"), 0);
    ck_assert_int_eq(issue_as(pki, "w-role", "worker"), 0);
    ck_assert_int_eq(issue(pki, "alice-default", false), 0);
    /* An unknown role is a command-line error: nothing is written. */
    ck_assert_int_eq(issue_as(pki, "nobody", "root"), -1);
    char path[300];
    path_in(path, sizeof(path), pki, "nobody.pem");
    ck_assert_int_ne(access(path, F_OK), 0);
    static const struct {
        const char *name;
        enum cert_role role;
    } cases[] = {{"boss", CERT_ROLE_ADMIN},
                 {"w-role", CERT_ROLE_WORKER},
                 {"worker", CERT_ROLE_WORKER},
                 {"alice-default", CERT_ROLE_WORKER}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_client(pki, pki, cases[i].name, "localhost");
        struct link k;
        connect_pair(&k, "localhost");
        expect_connected(&k);
        ck_assert(k.s.has_cert);
        ck_assert_str_eq(k.s.cn, cases[i].name);
        ck_assert_msg(k.s.role == cases[i].role, "%s: role %d", cases[i].name, (int)k.s.role);
        ck_assert(!k.c.has_cert);
        close_link(&k);
        tls_client_destroy(cli);
        cli = NULL;
    }
    /* No certificate: no role to judge. */
    tls_server_destroy(srv);
    srv = NULL;
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert(!k.s.has_cert);
    ck_assert_int_eq(k.s.role, CERT_ROLE_ABSENT);
    close_link(&k);
}
END_TEST

START_TEST(test_refused_handshake_names_the_address_and_no_name)
{
    make_server(true, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.s.fd, -1);
    ck_assert(!k.s.has_cn);
    ck_assert_str_eq(k.s.addr, "127.0.0.1:test");
    close_link(&k);
}
END_TEST

START_TEST(test_without_client_auth_there_is_no_peer_name)
{
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    expect_connected(&k);
    ck_assert(!k.s.has_cn);
    close_link(&k);
}
END_TEST

START_TEST(test_client_without_certificate_is_refused_when_required)
{
    make_server(true, 0);
    make_client(pki, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.s.fd, -1);
    ck_assert_msg(strstr(k.s.msg, "no certificate") != NULL, "%s", k.s.msg);
    ck_assert_msg(strstr(k.s.msg, "127.0.0.1:test") != NULL, "%s", k.s.msg);
    /* TLS 1.3: the client finished first and learns it only from the alert that follows. */
    if (k.c.fd >= 0)
        ck_assert(wait_dead(k.c.fd, 2.0));
    close_link(&k);
}
END_TEST

START_TEST(test_client_certificate_of_another_ca_is_refused)
{
    make_server(true, 0);
    make_client(pki, other, "worker", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.s.fd, -1);
    ck_assert_msg(strstr(k.s.msg, "not signed by a trusted CA") != NULL, "%s", k.s.msg);
    close_link(&k);
}
END_TEST

START_TEST(test_expired_client_certificate_is_refused)
{
    ck_assert_int_eq(issue(pki, "expired-pump", true), 0);
    make_server(true, 0);
    make_client(pki, pki, "expired-pump", "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.s.fd, -1);
    ck_assert_msg(strstr(k.s.msg, "expired") != NULL, "%s", k.s.msg);
    close_link(&k);
}
END_TEST

START_TEST(test_master_of_another_ca_is_refused_by_the_client)
{
    make_server(false, 0);
    make_client(other, NULL, NULL, "localhost");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.c.fd, -1);
    ck_assert_msg(strstr(k.c.msg, "not signed by a trusted CA") != NULL, "%s", k.c.msg);
    ck_assert_int_eq(k.s.fd, -1);
    close_link(&k);
}
END_TEST

START_TEST(test_certificates_serve_only_their_purpose)
{
    /* A client certificate (common name "worker", no alternative names) posing as a master. */
    make_server_as("worker", false, 0);
    make_client(pki, NULL, NULL, "worker");
    struct link k;
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.c.fd, -1);
    ck_assert_msg(strstr(k.c.msg, "not for server authentication") != NULL, "%s", k.c.msg);
    close_link(&k);
    tls_server_destroy(srv);
    tls_client_destroy(cli);
    /* The master's certificate posing as a client. */
    make_server(true, 0);
    make_client(pki, pki, "master", "localhost");
    connect_pair(&k, "localhost");
    ck_assert_int_eq(k.s.fd, -1);
    ck_assert_msg(strstr(k.s.msg, "not for client authentication") != NULL, "%s", k.s.msg);
    close_link(&k);
}
END_TEST

/* _i: 0 a DNS name, 1 an IP address, both missing from the master's certificate. */
START_TEST(test_wrong_server_name_is_refused_by_the_client)
{
    static const char *const names[] = {"evil.test", "10.9.8.7"};
    make_server(false, 0);
    make_client(pki, NULL, NULL, names[_i]);
    struct link k;
    connect_pair(&k, "127.0.0.1");
    ck_assert_int_eq(k.c.fd, -1);
    ck_assert_msg(strstr(k.c.msg, names[_i]) != NULL, "%s", k.c.msg);
    ck_assert_msg(strstr(k.c.msg, "not valid for") != NULL, "%s", k.c.msg);
    /* The test's duplicate of the client socket would keep the connection open. */
    close(k.raw_client);
    k.raw_client = -1;
    if (k.s.fd >= 0)
        ck_assert(wait_dead(k.s.fd, 2.0));
    close_link(&k);
}
END_TEST

/* _i: the host dialled and no --tls-server-name; the master certificate names all of them. */
START_TEST(test_dialled_host_is_checked_when_no_server_name_is_given)
{
    static const char *const hosts[] = {"localhost", "127.0.0.1", "master.test", "::1"};
    make_server(false, 0);
    make_client(pki, NULL, NULL, NULL);
    struct link k;
    connect_pair(&k, hosts[_i]);
    expect_connected(&k);
    close_link(&k);
}
END_TEST

START_TEST(test_silent_client_times_out)
{
    make_server(false, 200);
    int a, b;
    tcp_pair(&a, &b);
    struct ready s = {0};
    double start = ev_time();
    ck_assert_int_eq(tls_accept(loop, srv, a, "silent", on_ready, &s), 0);
    run_until(&s.done, NULL, 3.0);
    ck_assert_int_eq(s.fd, -1);
    ck_assert_int_eq(s.err, -ETIMEDOUT);
    ck_assert_double_lt(ev_time() - start, 2.0);
    ck_assert_uint_eq(tls_server_conn_count(srv), 0);
    close(b);
}
END_TEST

START_TEST(test_plaintext_client_is_refused)
{
    make_server(false, 0);
    int a, b;
    tcp_pair(&a, &b);
    struct ready s = {0};
    ck_assert_int_eq(tls_accept(loop, srv, a, "plain", on_ready, &s), 0);
    const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    ck_assert_int_eq(send(b, preface, sizeof(preface) - 1, 0), (ssize_t)sizeof(preface) - 1);
    run_until(&s.done, NULL, 3.0);
    ck_assert_int_eq(s.fd, -1);
    ck_assert_msg(strstr(s.msg, "does not speak TLS") != NULL, "%s", s.msg);
    close(b);
}
END_TEST

START_TEST(test_cancelled_handshake_never_calls_back)
{
    make_server(false, 0);
    make_client(pki, NULL, NULL, "localhost");
    int a, b;
    tcp_pair(&a, &b);
    struct ready s = {0}, c = {0};
    struct tls_conn *conn;
    ck_assert_int_eq(tls_accept(loop, srv, a, "x", on_ready, &s), 0);
    ck_assert_int_eq(tls_connect(loop, cli, b, "localhost", 5000, on_ready, &c, &conn), 0);
    tls_conn_cancel(conn);
    run_until(&s.done, NULL, 3.0);
    ck_assert(!c.done);
    ck_assert_int_eq(s.fd, -1);
    ck_assert_uint_eq(tls_client_conn_count(cli), 0);
}
END_TEST

START_TEST(test_bad_files_are_refused_naming_the_file)
{
    char cert[300], err[400];
    path_in(cert, sizeof(cert), pki, "master.pem");
    struct tls_server_options o = {cert, "/nonexistent/master.key", NULL, false, 0};
    ck_assert_int_lt(tls_server_create(&o, &srv, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "/nonexistent/master.key") != NULL, "%s", err);
    /* A key that is not the certificate's. */
    char key[300];
    path_in(key, sizeof(key), pki, "worker.key");
    struct tls_server_options o2 = {cert, key, NULL, false, 0};
    ck_assert_int_lt(tls_server_create(&o2, &srv, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "does not belong") != NULL, "%s", err);
    /* A key file where the CA certificate belongs. */
    struct tls_client_options c = {key, NULL, NULL, NULL};
    ck_assert_int_lt(tls_client_create(&c, &cli, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "CA certificate") != NULL, "%s", err);
    srv = NULL;
    cli = NULL;
}
END_TEST

/* A certificate's standing: warned about from 30 days before its end (begun days counted), an
 * error from its last second on. */
START_TEST(test_certificate_standing_by_days_left)
{
    const int64_t day = 86400, now = 1800000000;
    char words[256] = "";
    ck_assert_int_eq(
        certwatch_judge("certificate", "a.pem", now + 30 * day, now, words, sizeof(words)),
        CERT_VALID);
    ck_assert_int_eq(
        certwatch_judge("certificate", "a.pem", now + 30 * day - 1, now, words, sizeof(words)),
        CERT_ENDING);
    ck_assert_msg(strstr(words, "the certificate a.pem expires on 2027-02-14 07:59:59 UTC") &&
                      strstr(words, ", in 30 days"),
                  "%s", words);
    ck_assert_int_eq(
        certwatch_judge("CA certificate", "ca.pem", now + 1, now, words, sizeof(words)),
        CERT_ENDING);
    ck_assert_msg(strstr(words, "the CA certificate ca.pem expires on") &&
                      strstr(words, ", in 1 day") && !strstr(words, "days"),
                  "%s", words);
    ck_assert_int_eq(certwatch_judge("certificate", "a.pem", now, now, words, sizeof(words)),
                     CERT_EXPIRED);
    ck_assert_str_eq(words, "the certificate a.pem expired on 2027-01-15 08:00:00 UTC");
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *certs = tcase_create("cert");
    tcase_add_test(certs, test_cert_init_makes_a_chain_that_wolfssl_verifies);
    tcase_add_test(certs, test_master_certificate_names_every_master_host_and_no_other);
    tcase_add_test(certs, test_ca_is_a_ca_and_the_worker_certificate_is_called_worker);
    tcase_add_test(certs, test_keys_are_private_and_certificates_readable);
    tcase_add_test(certs, test_cert_init_never_overwrites_and_changes_nothing);
    tcase_add_test(certs, test_cert_issue_signs_a_named_client_certificate_with_the_ca);
    tcase_add_test(certs, test_expired_certificate_fails_verification_as_expired);
    tcase_add_test(certs, test_certificate_of_another_ca_does_not_verify);
    tcase_add_test(certs, test_cert_issue_without_a_ca_fails);
    tcase_add_test(certs, test_certificate_standing_by_days_left);
    suite_add_tcase(s, certs);

    TCase *pump = tcase_create("pump");
    tcase_add_checked_fixture(pump, pump_setup, pump_teardown);
    tcase_set_timeout(pump, 60);
    tcase_add_test(pump, test_bytes_cross_intact_both_ways_at_once);
    tcase_add_test(pump, test_slow_reader_holds_the_writer_back_without_spinning);
    tcase_add_test(pump, test_half_close_reaches_the_other_side_and_the_answer_still_comes_back);
    tcase_add_test(pump, test_garbage_on_the_wire_closes_both_plaintext_ends_at_once);
    tcase_add_test(pump, test_gone_network_ends_the_plaintext_ends);
    tcase_add_test(pump, test_destroying_the_server_closes_its_connections);
    tcase_add_test(pump, test_shutdown_of_the_plaintext_end_ends_the_connection);
    tcase_add_test(pump, test_accept_gives_the_verified_client_common_name_and_address);
    tcase_add_test(pump, test_accept_gives_the_role_the_certificate_carries);
    tcase_add_test(pump, test_refused_handshake_names_the_address_and_no_name);
    tcase_add_test(pump, test_without_client_auth_there_is_no_peer_name);
    tcase_add_test(pump, test_client_without_certificate_is_refused_when_required);
    tcase_add_test(pump, test_client_certificate_of_another_ca_is_refused);
    tcase_add_test(pump, test_expired_client_certificate_is_refused);
    tcase_add_test(pump, test_master_of_another_ca_is_refused_by_the_client);
    tcase_add_test(pump, test_certificates_serve_only_their_purpose);
    tcase_add_loop_test(pump, test_wrong_server_name_is_refused_by_the_client, 0, 2);
    tcase_add_loop_test(pump, test_dialled_host_is_checked_when_no_server_name_is_given, 0, 4);
    tcase_add_test(pump, test_silent_client_times_out);
    tcase_add_test(pump, test_plaintext_client_is_refused);
    tcase_add_test(pump, test_cancelled_handshake_never_calls_back);
    tcase_add_test(pump, test_bad_files_are_refused_naming_the_file);
    suite_add_tcase(s, pump);
    return s;
}

/* Removes a flat directory of files. */
static void remove_dir(const char *dir)
{
    char cmd[400];
    static const char *const files[] = {
        "ca.pem",           "ca.key",           "master.pem",       "master.key",
        "worker.pem",       "worker.key",       "alice.pem",        "alice.key",
        "expired-unit.pem", "expired-unit.key", "expired-pump.pem", "expired-pump.key",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        path_in(cmd, sizeof(cmd), dir, files[i]);
        unlink(cmd);
    }
    rmdir(dir);
}

/* Holds pki and other for the whole run. */
static char pki_root[] = "/tmp/crawlab-tls-XXXXXX";

/* Before any test: the cluster's PKI and a second one that nobody trusts. */
static int make_pkis(void)
{
    if (!mkdtemp(pki_root))
        return -1;
    snprintf(pki, sizeof(pki), "%s/pki", pki_root);
    snprintf(other, sizeof(other), "%s/other", pki_root);
    if (init_pki(pki, "localhost,master.test,127.0.0.1,::1") != 0 ||
        init_pki(other, "localhost,127.0.0.1") != 0)
        return -1;
    return 0;
}

static void remove_pkis(void)
{
    remove_dir(pki);
    remove_dir(other);
    rmdir(pki_root);
}

const struct unit_tests unit_tests = {
    .suite = tls_suite, .setup = make_pkis, .teardown = remove_pkis};

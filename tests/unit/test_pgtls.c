/*
 * libpq (built without a TLS library) reaching a PostgreSQL that requires TLS through the
 * wolfSSL relay (net/pgtls.h). tests/integration/test_pg.py starts the servers (pg.py) and runs
 * this program with CRAWLAB_TEST_PG_TLS_PORT (a server with ssl=on and hostssl lines only, whose
 * certificate names 127.0.0.1), CRAWLAB_TEST_PG_TLS_CA (the CA that signed it),
 * CRAWLAB_TEST_PG_TLS_OTHER_CA (a CA that did not) and CRAWLAB_TEST_PG_PLAIN_PORT (a server
 * without TLS).
 */
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "net/dialer.h"
#include "net/pgtls.h"

static int tls_port, plain_port;
static const char *ca_file, *other_ca_file;
static char tmp_dir[64];
static char sock_dir[128];
static struct pgtls_relay *relay;

static void setup(void)
{
    scratch_make(tmp_dir, sizeof(tmp_dir), "pgtls");
    snprintf(sock_dir, sizeof(sock_dir), "%s/sock", tmp_dir);
    ck_assert_int_eq(dial_global_init(), 0);
}

static void teardown(void)
{
    pgtls_relay_stop(relay);
    relay = NULL;
    dial_global_cleanup();
    scratch_remove(tmp_dir);
}

static void start_relay_with(int port, const char *ca, const char *server_name)
{
    struct pgtls_options o = {.host = "127.0.0.1",
                              .port = port,
                              .ca_file = ca,
                              .server_name = server_name,
                              .socket_dir = sock_dir};
    char err[256] = "";
    ck_assert_msg(pgtls_relay_start(&o, &relay, err, sizeof(err)) == 0, "relay: %s", err);
}

static void start_relay(int port, const char *server_name)
{
    start_relay_with(port, ca_file, server_name);
}

/* Puts what the file from holds (less than 64 KiB: a few PEM blocks) into the file to. */
static void copy_file(const char *from, const char *to)
{
    static char buf[65536];
    FILE *in = fopen(from, "rb");
    ck_assert_ptr_nonnull(in);
    size_t n = fread(buf, 1, sizeof(buf), in);
    fclose(in);
    ck_assert_uint_lt(n, sizeof(buf));
    FILE *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    ck_assert_int_eq(fclose(out), 0);
}

/* libpq connected through the relay's socket. */
static PGconn *connect_relayed(int port)
{
    char info[256];
    snprintf(info, sizeof(info), "host=%s port=%d user=crawlab dbname=postgres", sock_dir, port);
    return PQconnectdb(info);
}

static char *one_value(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

START_TEST(test_queries_go_over_tls_13)
{
    start_relay(tls_port, NULL);
    PGconn *conn = connect_relayed(tls_port);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    char *v = one_value(conn,
                        "SELECT ssl::text || ' ' || version FROM pg_stat_ssl"
                        " WHERE pid = pg_backend_pid()",
                        0, NULL);
    ck_assert_str_eq(v, "true TLSv1.3");
    free(v);
    /* A megabyte each way: many records and full buffers in both directions of the pump. */
    size_t big = 1 << 20;
    char *param = malloc(big + 1);
    memset(param, 'x', big);
    param[big] = '\0';
    const char *params[] = {param};
    v = one_value(conn, "SELECT length($1::text)::text", 1, params);
    ck_assert_str_eq(v, "1048576");
    free(v);
    free(param);
    v = one_value(conn, "SELECT repeat('y', 1048576)", 0, NULL);
    ck_assert_uint_eq(strlen(v), big);
    ck_assert_uint_eq(strspn(v, "y"), big);
    free(v);
    PQfinish(conn);
}
END_TEST

START_TEST(test_server_refuses_plain_tcp_and_libpq_has_no_tls)
{
    char info[256];
    snprintf(info, sizeof(info),
             "host=127.0.0.1 port=%d user=crawlab dbname=postgres sslmode=disable", tls_port);
    PGconn *conn = PQconnectdb(info);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    ck_assert_ptr_nonnull(strstr(PQerrorMessage(conn), "no encryption"));
    PQfinish(conn);
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%d sslmode=require", tls_port);
    conn = PQconnectdb(info);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    ck_assert_ptr_nonnull(strstr(PQerrorMessage(conn), "not compiled in"));
    PQfinish(conn);
}
END_TEST

START_TEST(test_certificate_for_another_name_is_refused)
{
    start_relay(tls_port, "db.example.org");
    PGconn *conn = connect_relayed(tls_port);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    PQfinish(conn);
}
END_TEST

START_TEST(test_server_without_tls_is_refused)
{
    start_relay(plain_port, NULL);
    PGconn *conn = connect_relayed(plain_port);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    PQfinish(conn);
}
END_TEST

START_TEST(test_private_socket_removed_at_stop)
{
    /* A directory that others could enter becomes the owner's alone. */
    ck_assert_int_eq(mkdir(sock_dir, 0755), 0);
    start_relay(tls_port, NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", sock_dir, tls_port);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(stat(sock_dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    /* A connection in use when the relay stops: it ends, and so does the socket. */
    PGconn *conn = connect_relayed(tls_port);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    pgtls_relay_stop(relay);
    relay = NULL;
    ck_assert_int_eq(stat(path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    PGresult *res = PQexec(conn, "SELECT 1");
    ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    PQfinish(conn);
}
END_TEST

START_TEST(test_reload_reads_the_ca_file_again_and_keeps_it_when_unreadable)
{
    char ca[192], err[256] = "";
    snprintf(ca, sizeof(ca), "%s/ca.pem", tmp_dir);
    copy_file(other_ca_file, ca);
    start_relay_with(tls_port, ca, NULL);
    /* The server's certificate is not signed by the CA the relay holds. */
    PGconn *conn = connect_relayed(tls_port);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    PQfinish(conn);
    copy_file(ca_file, ca);
    ck_assert_msg(pgtls_relay_reload(relay, err, sizeof(err)) == 0, "reload: %s", err);
    PGconn *kept = connect_relayed(tls_port);
    ck_assert_msg(PQstatus(kept) == CONNECTION_OK, "%s", PQerrorMessage(kept));
    /* A file that is no certificate is refused, and what was loaded stays in use. */
    FILE *f = fopen(ca, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a certificate\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_lt(pgtls_relay_reload(relay, err, sizeof(err)), 0);
    ck_assert_str_ne(err, "");
    conn = connect_relayed(tls_port);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    PQfinish(conn);
    /* The connection made before the failed reload goes on. */
    char *v = one_value(kept, "SELECT 'still here'", 0, NULL);
    ck_assert_str_eq(v, "still here");
    free(v);
    PQfinish(kept);
}
END_TEST

static Suite *pgtls_suite(void)
{
    Suite *s = suite_create("pgtls");
    TCase *tc = tcase_create("relay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_queries_go_over_tls_13);
    tcase_add_test(tc, test_server_refuses_plain_tcp_and_libpq_has_no_tls);
    tcase_add_test(tc, test_certificate_for_another_name_is_refused);
    tcase_add_test(tc, test_server_without_tls_is_refused);
    tcase_add_test(tc, test_private_socket_removed_at_stop);
    tcase_add_test(tc, test_reload_reads_the_ca_file_again_and_keeps_it_when_unreadable);
    suite_add_tcase(s, tc);
    return s;
}

static int need_servers(void)
{
    const char *tls = getenv("CRAWLAB_TEST_PG_TLS_PORT");
    const char *plain = getenv("CRAWLAB_TEST_PG_PLAIN_PORT");
    ca_file = getenv("CRAWLAB_TEST_PG_TLS_CA");
    other_ca_file = getenv("CRAWLAB_TEST_PG_TLS_OTHER_CA");
    if (!tls || !plain || !ca_file || !other_ca_file) {
        fprintf(stderr, "test_pgtls: run it through tests/integration/test_pg.py, which starts "
                        "the servers\n");
        return 1;
    }
    tls_port = atoi(tls);
    plain_port = atoi(plain);
    return 0;
}

const struct unit_tests unit_tests = {.suite = pgtls_suite, .setup = need_servers};

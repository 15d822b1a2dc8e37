/*
 * The PostgreSQL backend's connection and schema (store/store_pg.h) against a real server:
 * tests/integration/test_pg.py starts one (pg.py) and runs this program with CRAWLAB_TEST_PG set
 * to a connection string without a database ("host=127.0.0.1 port=N user=crawlab"). Each test
 * gets a database of its own, made and dropped through libpq here.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "store/store_pg.h"

static const char *server; /* CRAWLAB_TEST_PG */
static char dbname[64];
static char conninfo[512];

/* Runs sql on the test's database (or on the server's "postgres" one) and returns the first
 * column of the first row, "" when there is none; fails the test on an error. */
static char *query(const char *db, const char *sql)
{
    char info[512];
    snprintf(info, sizeof(info), "%s dbname=%s", server, db);
    PGconn *conn = PQconnectdb(info);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "connecting: %s", PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    char *out = strdup(st == PGRES_TUPLES_OK && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    PQfinish(conn);
    return out;
}

static void query_eq(const char *sql, const char *want)
{
    char *got = query(dbname, sql);
    ck_assert_str_eq(got, want);
    free(got);
}

static void run(const char *db, const char *sql)
{
    free(query(db, sql));
}

static void setup(void)
{
    snprintf(dbname, sizeof(dbname), "crawlab_test_%d", (int)getpid());
    snprintf(conninfo, sizeof(conninfo), "%s dbname=%s", server, dbname);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    run("postgres", sql);
}

static void teardown(void)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", dbname);
    run("postgres", sql);
}

static int open_close(void)
{
    struct store *p = NULL;
    int rc = pg_store_open(conninfo, &p);
    store_close(p);
    return rc;
}

START_TEST(test_open_creates_the_schema)
{
    struct store *p = NULL;
    ck_assert_int_eq(pg_store_open(conninfo, &p), 0);
    ck_assert_int_eq(pg_store_schema_version(p), PG_SCHEMA_VERSION);
    store_close(p);
    query_eq("SELECT count(*) FROM tasks", "0");
    /* The identities number rows as SQLite's rowids did. */
    run(dbname, "INSERT INTO task_history (task_id, from_status, to_status, at_ms)"
                " VALUES ('t', 'pending', 'assigned', 1), ('t', 'assigned', 'running', 2)");
    query_eq("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM task_history", "1,2");
}
END_TEST

START_TEST(test_reopen_keeps_rows_and_version)
{
    ck_assert_int_eq(open_close(), 0);
    run(dbname, "INSERT INTO nodes (key, name, status, max_runners, version, created_ms,"
                " last_seen_ms) VALUES ('k1', 'w1', 'online', 4, '0.1.0', 1, 1)");
    ck_assert_int_eq(open_close(), 0);
    query_eq("SELECT name || ' ' || state FROM nodes WHERE key = 'k1'", "w1 enabled");
    query_eq("SELECT count(*) || ' ' || max(version) FROM crawlab_schema", "1 2");
}
END_TEST

/* A database of version 1 (before the spiders' archives) is brought to 2 and keeps its rows. */
START_TEST(test_a_schema_1_database_gets_the_archives_table)
{
    ck_assert_int_eq(open_close(), 0);
    run(dbname, "DROP TABLE spider_archives; UPDATE crawlab_schema SET version = 1");
    run(dbname, "INSERT INTO spiders VALUES ('news', 1, 'aa', 1, 1, 1, 1)");
    ck_assert_int_eq(open_close(), 0);
    query_eq("SELECT count(*) || ' ' || max(version) FROM crawlab_schema", "1 2");
    query_eq("SELECT count(*) FROM spider_archives", "0");
    query_eq("SELECT name || '@' || version FROM spiders", "news@1");
}
END_TEST

START_TEST(test_newer_schema_is_refused)
{
    ck_assert_int_eq(open_close(), 0);
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE crawlab_schema SET version = %d", PG_SCHEMA_VERSION + 1);
    run(dbname, sql);
    ck_assert_int_eq(open_close(), -EPROTO);
    /* Refused, not touched. */
    snprintf(sql, sizeof(sql), "%d", PG_SCHEMA_VERSION + 1);
    query_eq("SELECT version FROM crawlab_schema", sql);
}
END_TEST

START_TEST(test_failed_migration_leaves_nothing)
{
    /* A table in the way of version 1: the step fails, and its transaction takes the version
     * table it made with it. */
    run(dbname, "CREATE TABLE spiders (x INTEGER)");
    ck_assert_int_eq(open_close(), -EIO);
    query_eq("SELECT count(*) FROM pg_tables WHERE tablename IN ('crawlab_schema', 'tasks')", "0");
}
END_TEST

static void *open_in_thread(void *arg)
{
    *(int *)arg = open_close();
    return NULL;
}

START_TEST(test_masters_starting_together_migrate_once)
{
    enum { N = 4 };
    pthread_t th[N];
    int rc[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, open_in_thread, &rc[i]), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(rc[i], 0);
    }
    query_eq("SELECT count(*) || ' ' || max(version) FROM crawlab_schema", "1 2");
}
END_TEST

START_TEST(test_bad_conninfo_is_einval)
{
    struct store *p = NULL;
    ck_assert_int_eq(pg_store_open("host=127.0.0.1 nonsense", &p), -EINVAL);
    ck_assert_int_eq(pg_store_open("postgres://127.0.0.1/db?nosuchoption=1", &p), -EINVAL);
    ck_assert_ptr_null(p);
}
END_TEST

/* A port that refuses connections: a socket bound to it, never listening. */
static int refusing_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(*fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

START_TEST(test_unreachable_server_is_logged_without_password)
{
    int sock;
    char info[256];
    snprintf(info, sizeof(info),
             "postgres://crawlab:s3cret-word@127.0.0.1:%d/crawlab?connect_timeout=5",
             refusing_port(&sock));
    /* The log goes to stderr: into a file for this call. */
    char path[] = "/tmp/crawlab-pg-log-XXXXXX";
    int log_fd = mkstemp(path);
    ck_assert_int_ge(log_fd, 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(log_fd, STDERR_FILENO);
    struct store *p = NULL;
    int rc = pg_store_open(info, &p);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(sock);
    ck_assert_int_eq(rc, -ECONNREFUSED);
    char text[2048] = "";
    ck_assert_int_ge(pread(log_fd, text, sizeof(text) - 1, 0), 1);
    close(log_fd);
    ck_assert_msg(strstr(text, "127.0.0.1") && strstr(text, "connecting"), "log: %s", text);
    ck_assert_msg(!strstr(text, "s3cret-word"), "the password was logged: %s", text);
}
END_TEST

START_TEST(test_tls_location_is_split_into_the_relay_and_its_socket)
{
    struct store_pg_tls tls;
    char local[1024] = "untouched";
    /* No TLS asked for: nothing to relay, the location is opened as it is. */
    ck_assert_int_eq(store_pg_tls_split("postgres://u@db.example:6543/crawlab", "/run/x", &tls,
                                        local, sizeof(local)),
                     0);
    ck_assert(!tls.wanted);
    ck_assert_str_eq(local, "untouched");
    /* TLS: the relay gets the server and the files; libpq gets the socket, the rest, no TLS. */
    ck_assert_int_eq(
        store_pg_tls_split("postgresql://u:p%40ss@db.example:6543/crawlab?sslmode=verify-full"
                           "&sslrootcert=/etc/ca.pem&application_name=a%20b",
                           "/var/lib/x/pg-relay", &tls, local, sizeof(local)),
        0);
    ck_assert(tls.wanted);
    ck_assert_str_eq(tls.host, "db.example");
    ck_assert_int_eq(tls.port, 6543);
    ck_assert_str_eq(tls.ca_file, "/etc/ca.pem");
    ck_assert_str_eq(tls.cert_file, "");
    ck_assert_msg(strstr(local, "host=%2Fvar%2Flib%2Fx%2Fpg-relay") && strstr(local, "port=6543") &&
                      strstr(local, "sslmode=disable") && strstr(local, "password=p%40ss") &&
                      strstr(local, "dbname=crawlab") && strstr(local, "application_name=a%20b") &&
                      !strstr(local, "sslrootcert") && !strstr(local, "verify-full"),
                  "%s", local);
    /* What libpq reads back from it. */
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(local, &err);
    ck_assert_ptr_nonnull(o);
    for (PQconninfoOption *i = o; i->keyword; i++)
        if (strcmp(i->keyword, "host") == 0)
            ck_assert_str_eq(i->val, "/var/lib/x/pg-relay");
    PQconninfoFree(o);
    /* The default port; one server only; a socket directory has no TLS to relay. */
    ck_assert_int_eq(
        store_pg_tls_split("postgres://u@h/d?sslmode=require", "/r", &tls, local, sizeof(local)),
        0);
    ck_assert_int_eq(tls.port, 5432);
    ck_assert_int_eq(store_pg_tls_split("postgres://u@h1,h2/d?sslmode=require", "/r", &tls, local,
                                        sizeof(local)),
                     -EINVAL);
    ck_assert_int_eq(
        store_pg_tls_split("host=/tmp sslmode=require", "/r", &tls, local, sizeof(local)), -EINVAL);
    ck_assert_int_eq(store_pg_tls_split("postgres://u@h/d?sslmode=require", "/r", &tls, local, 20),
                     -ENAMETOOLONG);
}
END_TEST

static Suite *store_pg_suite(void)
{
    Suite *s = suite_create("store_pg");
    TCase *tc = tcase_create("schema");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_open_creates_the_schema);
    tcase_add_test(tc, test_reopen_keeps_rows_and_version);
    tcase_add_test(tc, test_a_schema_1_database_gets_the_archives_table);
    tcase_add_test(tc, test_newer_schema_is_refused);
    tcase_add_test(tc, test_failed_migration_leaves_nothing);
    tcase_add_test(tc, test_masters_starting_together_migrate_once);
    suite_add_tcase(s, tc);
    TCase *conn = tcase_create("connection");
    tcase_add_test(conn, test_bad_conninfo_is_einval);
    tcase_add_test(conn, test_unreachable_server_is_logged_without_password);
    tcase_add_test(conn, test_tls_location_is_split_into_the_relay_and_its_socket);
    suite_add_tcase(s, conn);
    return s;
}

static int need_server(void)
{
    server = getenv("CRAWLAB_TEST_PG");
    if (!server || !*server) {
        fprintf(stderr, "test_store_pg: CRAWLAB_TEST_PG is not set: run it through "
                        "tests/integration/test_pg.py, which starts a server\n");
        return 1;
    }
    return 0;
}

const struct unit_tests unit_tests = {.suite = store_pg_suite, .setup = need_server};

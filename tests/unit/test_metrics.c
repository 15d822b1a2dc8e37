#include "check_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/metrics.h"
#include "net/certwatch.h"

/* Renders m and s; the caller frees. */
static char *render(const struct metrics *m, const struct metrics_state *s)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(metrics_render(m, s, &text, &len), 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

START_TEST(test_metrics_every_family_has_help_and_type_before_its_samples)
{
    struct metrics m;
    metrics_init(&m);
    struct metrics_state s = {.has_conns = 1};
    char *text = render(&m, &s);
    ck_assert(text[strlen(text) - 1] == '\n');
    /* Each sample's family was announced by a TYPE line before it. */
    char *copy = strdup(text);
    char *types = calloc(1, strlen(text) + 1);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            strcat(types, line + 7);
            strcat(types, "|");
            continue;
        }
        ck_assert_msg(line[0] != '#', "%s", line);
        char name[128];
        size_t n = strcspn(line, "{ ");
        ck_assert_uint_lt(n, sizeof(name));
        memcpy(name, line, n);
        name[n] = '\0';
        /* A histogram's samples carry a suffix on the family name. */
        char *suffix = strstr(name, "_bucket");
        if (!suffix)
            suffix = strstr(name, "_sum");
        if (!suffix)
            suffix = strstr(name, "_count");
        char want[160];
        if (suffix) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(suffix - name), name);
            snprintf(want, sizeof(want), "%s histogram|", base);
            if (strstr(types, want))
                *suffix = '\0';
        }
        snprintf(want, sizeof(want), "%s ", name);
        ck_assert_msg(strstr(types, want), "sample '%s' before its TYPE line", line);
    }
    free(types);
    free(copy);
    ck_assert(has_line(text, "# TYPE crawlab_log_lines_total counter"));
    ck_assert(has_line(text, "# TYPE crawlab_nodes gauge"));
    ck_assert(has_line(text, "# TYPE crawlab_store_commit_seconds histogram"));
    ck_assert(has_line(text, "crawlab_connections_open 0"));
    free(text);
}
END_TEST

START_TEST(test_metrics_counters_and_gauges_show_their_values)
{
    struct metrics m;
    metrics_init(&m);
    m.log_lines = 12;
    m.log_bytes = 3456;
    m.result_items = 7;
    m.commits = 9;
    m.tls_refused = 2;
    m.events[EVENT_TASK_FINISHED_EMPTY] = 6;
    struct metrics_state s = {.nodes_online = 3, .nodes_offline = 1, .auth_refused = 5};
    s.tasks[TASK_PENDING] = 4;
    s.tasks[TASK_FINISHED] = 11;
    s.tasks[TASK_NODE_DISCONNECTED] = 1;
    char *text = render(&m, &s);
    ck_assert(has_line(text, "crawlab_nodes{status=\"online\"} 3"));
    ck_assert(has_line(text, "crawlab_nodes{status=\"offline\"} 1"));
    ck_assert(has_line(text, "crawlab_tasks{status=\"pending\"} 4"));
    ck_assert(has_line(text, "crawlab_tasks{status=\"finished\"} 11"));
    ck_assert(has_line(text, "crawlab_tasks{status=\"node_disconnected\"} 1"));
    ck_assert(has_line(text, "crawlab_tasks{status=\"running\"} 0"));
    ck_assert(has_line(text, "crawlab_queue_depth 4"));
    ck_assert(has_line(text, "crawlab_log_lines_total 12"));
    ck_assert(has_line(text, "crawlab_log_bytes_total 3456"));
    ck_assert(has_line(text, "crawlab_result_items_total 7"));
    ck_assert(has_line(text, "crawlab_store_commits_total 9"));
    ck_assert(has_line(text, "crawlab_tls_handshakes_refused_total 2"));
    ck_assert(has_line(text, "crawlab_auth_refused_total 5"));
    ck_assert(has_line(text, "crawlab_events_total{kind=\"task.finished_empty\"} 6"));
    ck_assert(has_line(text, "crawlab_events_total{kind=\"node.online\"} 0"));
    /* Without a listener that counts, no connection samples at all; without TLS, no
     * certificate dates. */
    ck_assert_ptr_null(strstr(text, "crawlab_connections_"));
    ck_assert_ptr_null(strstr(text, "crawlab_tls_cert_expiry"));
    free(text);
}
END_TEST

START_TEST(test_metrics_show_when_the_tls_certificates_end)
{
    struct metrics m;
    metrics_init(&m);
    struct certwatch_cert certs[] = {{.kind = "cert", .not_after_s = 1893456000},
                                     {.kind = "ca", .not_after_s = 2051222400}};
    struct metrics_state s = {.certs = certs, .n_certs = 2};
    char *text = render(&m, &s);
    ck_assert(has_line(text, "# TYPE crawlab_tls_cert_expiry_timestamp_seconds gauge"));
    ck_assert(
        has_line(text, "crawlab_tls_cert_expiry_timestamp_seconds{kind=\"cert\"} 1893456000"));
    ck_assert(has_line(text, "crawlab_tls_cert_expiry_timestamp_seconds{kind=\"ca\"} 2051222400"));
    free(text);
}
END_TEST

START_TEST(test_metrics_histogram_buckets_are_cumulative_and_end_in_inf)
{
    struct metrics m;
    metrics_init(&m);
    /* Bounds of the commit histogram include 0.001, 0.005 and 2.5 (the last). */
    metrics_observe(&m.commit_seconds, 0.0001); /* first bucket */
    metrics_observe(&m.commit_seconds, 0.001);  /* exactly a bound: counts in it (le) */
    metrics_observe(&m.commit_seconds, 0.004);
    metrics_observe(&m.commit_seconds, 10.0); /* only +Inf */
    struct metrics_state s = {0};
    char *text = render(&m, &s);
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"0.0005\"} 1"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"0.001\"} 2"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"0.0025\"} 2"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"0.005\"} 3"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"2.5\"} 3"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_bucket{le=\"+Inf\"} 4"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_count 4"));
    ck_assert(has_line(text, "crawlab_store_commit_seconds_sum 10.0051"));
    /* The other histogram is empty but complete. */
    ck_assert(has_line(text, "crawlab_dispatch_seconds_bucket{le=\"+Inf\"} 0"));
    ck_assert(has_line(text, "crawlab_dispatch_seconds_count 0"));
    ck_assert(has_line(text, "crawlab_dispatch_seconds_sum 0"));
    free(text);
}
END_TEST

START_TEST(test_metrics_label_values_escape_backslash_quote_and_newline)
{
    char buf[64];
    ck_assert_uint_eq(metrics_label_value(buf, sizeof(buf), "plain"), 7);
    ck_assert_str_eq(buf, "\"plain\"");
    metrics_label_value(buf, sizeof(buf), "a\\b\"c\nd");
    ck_assert_str_eq(buf, "\"a\\\\b\\\"c\\nd\"");
    metrics_label_value(buf, sizeof(buf), "");
    ck_assert_str_eq(buf, "\"\"");
}
END_TEST

START_TEST(test_metrics_label_value_too_long_for_the_buffer_is_cut_and_says_what_it_needs)
{
    char buf[4];
    ck_assert_uint_eq(metrics_label_value(buf, sizeof(buf), "abcdef"), 8);
    ck_assert_str_eq(buf, "\"ab");
    ck_assert_uint_eq(metrics_label_value(NULL, 0, "a\""), 5);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_metrics_every_family_has_help_and_type_before_its_samples);
    tcase_add_test(tc, test_metrics_counters_and_gauges_show_their_values);
    tcase_add_test(tc, test_metrics_show_when_the_tls_certificates_end);
    tcase_add_test(tc, test_metrics_histogram_buckets_are_cumulative_and_end_in_inf);
    tcase_add_test(tc, test_metrics_label_values_escape_backslash_quote_and_newline);
    tcase_add_test(tc,
                   test_metrics_label_value_too_long_for_the_buffer_is_cut_and_says_what_it_needs);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = metrics_suite};

#include "check_main.h"

#include <string.h>

#include "net/httpget.h"

static int judge(const char *req)
{
    return httpget_judge(req, strlen(req), "/metrics");
}

START_TEST(test_httpget_get_of_the_path_is_200_once_the_head_is_whole)
{
    ck_assert_int_eq(judge("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    ck_assert_int_eq(judge("GET /metrics HTTP/1.1\r\nhOsT:a\r\nAccept: */*\r\n\r\n"), 200);
    ck_assert_int_eq(judge("GET /metrics HTTP/1.0\r\n\r\n"), 200);
    /* Bytes after the head (a body) are not judged. */
    ck_assert_int_eq(judge("GET /metrics HTTP/1.0\r\n\r\n\x01\n"), 200);
}
END_TEST

START_TEST(test_httpget_an_unfinished_head_waits)
{
    ck_assert_int_eq(judge(""), 0);
    ck_assert_int_eq(judge("GET /metrics HTTP/1.1\r\nHost: a\r\n"), 0);
    ck_assert_int_eq(judge("GET /metrics HTTP/1.1\r\nHost: a\r\n\r"), 0);
}
END_TEST

START_TEST(test_httpget_other_paths_are_404_and_other_methods_405)
{
    ck_assert_int_eq(judge("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
    ck_assert_int_eq(judge("GET /metrics/ HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
    ck_assert_int_eq(judge("GET /metricsx HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
    ck_assert_int_eq(judge("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
    ck_assert_int_eq(judge("HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
    ck_assert_int_eq(judge("get /metrics HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
}
END_TEST

START_TEST(test_httpget_malformed_heads_are_400)
{
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics  HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics HTTP/1.2\r\nHost: a\r\n\r\n",
        "GET /metrics http/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
        "\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "G\xc3\xa9T /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(judge(bad[i]) == 400, "request %zu", i);
}
END_TEST

START_TEST(test_httpget_a_bad_byte_is_400_before_the_head_ends)
{
    ck_assert_int_eq(judge("GET /metrics HTTP/1.1\n"), 400);
    ck_assert_int_eq(judge("GET /met\rrics"), 400);
    ck_assert_int_eq(httpget_judge("GET \0", 5, "/metrics"), 400);
}
END_TEST

START_TEST(test_httpget_a_head_that_fills_the_buffer_without_ending_is_400)
{
    static char buf[HTTPGET_HEAD_MAX];
    memset(buf, 'a', sizeof(buf));
    ck_assert_int_eq(httpget_judge(buf, sizeof(buf) - 1, "/metrics"), 0);
    ck_assert_int_eq(httpget_judge(buf, sizeof(buf), "/metrics"), 400);
}
END_TEST

static Suite *httpget_suite(void)
{
    Suite *s = suite_create("httpget");
    TCase *tc = tcase_create("judge");
    tcase_add_test(tc, test_httpget_get_of_the_path_is_200_once_the_head_is_whole);
    tcase_add_test(tc, test_httpget_an_unfinished_head_waits);
    tcase_add_test(tc, test_httpget_other_paths_are_404_and_other_methods_405);
    tcase_add_test(tc, test_httpget_malformed_heads_are_400);
    tcase_add_test(tc, test_httpget_a_bad_byte_is_400_before_the_head_ends);
    tcase_add_test(tc, test_httpget_a_head_that_fills_the_buffer_without_ending_is_400);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = httpget_suite};

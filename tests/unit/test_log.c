#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "check_main.h"

#include "runtime/log.h"

/* What one log_info("%s", msg) writes to stderr in this format, read back through a pipe. */
static char *logged(enum log_format format, const char *msg)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fds[1], STDERR_FILENO), 0);
    close(fds[1]);
    log_setup(LOG_INFO, format, "test");
    log_info("%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    /* A log line is at most 4 KiB: it fits in the pipe, and the write end is closed now. */
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    ssize_t n;
    while ((n = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    out[len] = '\0';
    return out;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

START_TEST(test_log_text_escapes_control_characters)
{
    char *out = logged(LOG_FORMAT_TEXT, "a\nb\rc\td\001e\033[31mf\177g");
    ck_assert_uint_eq(count_char(out, '\n'), 1);
    ck_assert_int_eq(out[strlen(out) - 1], '\n');
    ck_assert_ptr_nonnull(strstr(out, " info  test: a\\nb\\rc\\td\\x01e\\x1b[31mf\\x7fg\n"));
    free(out);
}
END_TEST

START_TEST(test_log_text_message_cannot_forge_a_second_line)
{
    const char *forged = "peer said: bye\n2024-01-01T00:00:00.000Z error master: forged";
    char *out = logged(LOG_FORMAT_TEXT, forged);
    ck_assert_uint_eq(count_char(out, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(out, "bye\\n2024-01-01T00:00:00.000Z error master: forged\n"));
    free(out);
}
END_TEST

START_TEST(test_log_text_keeps_printable_text_and_utf8_as_is)
{
    char *out = logged(LOG_FORMAT_TEXT, "path C:\\tmp \"quoted\" caf\xc3\xa9");
    ck_assert_ptr_nonnull(strstr(out, "test: path C:\\tmp \"quoted\" caf\xc3\xa9\n"));
    free(out);
}
END_TEST

START_TEST(test_log_text_line_of_control_characters_is_cut_not_overflowed)
{
    /* Each byte takes four when escaped: far more than a log line holds. */
    char msg[2000];
    memset(msg, '\001', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char *out = logged(LOG_FORMAT_TEXT, msg);
    size_t len = strlen(out);
    ck_assert_uint_le(len, 4096);
    ck_assert_uint_gt(len, 1000);
    ck_assert_uint_eq(count_char(out, '\n'), 1);
    ck_assert_int_eq(out[len - 1], '\n');
    /* Cut between escapes, never inside one. */
    ck_assert_ptr_nonnull(strstr(out, "\\x01\n"));
    free(out);
}
END_TEST

START_TEST(test_log_json_escapes_control_characters)
{
    const char *msg = "a\nb\rc\td\001e \"q\" \\ f";
    char *out = logged(LOG_FORMAT_JSON, msg);
    ck_assert_uint_eq(count_char(out, '\n'), 1);
    json_error_t err;
    json_t *root = json_loads(out, 0, &err);
    ck_assert_msg(root != NULL, "not JSON: %s (%s)", out, err.text);
    ck_assert_str_eq(json_string_value(json_object_get(root, "msg")), msg);
    ck_assert_str_eq(json_string_value(json_object_get(root, "level")), "info");
    json_decref(root);
    free(out);
}
END_TEST

START_TEST(test_log_json_repairs_what_is_not_utf8_and_keeps_what_is)
{
    /* An invalid byte, a surrogate, a character cut by the end, and valid text around them. */
    char *out = logged(LOG_FORMAT_JSON, "caf\xc3\xa9 \xff x \xed\xa0\x80 y \xe2\x82");
    json_error_t err;
    json_t *root = json_loads(out, 0, &err);
    ck_assert_msg(root != NULL, "not JSON: %s (%s)", out, err.text);
    ck_assert_str_eq(json_string_value(json_object_get(root, "msg")),
                     "caf\xc3\xa9 \xef\xbf\xbd x \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd y "
                     "\xef\xbf\xbd");
    json_decref(root);
    free(out);
}
END_TEST

START_TEST(test_log_json_line_cut_to_fit_is_still_json)
{
    /* A message longer than a log line, of two-byte characters: wherever the cut falls, the line
     * parses. */
    char msg[6001];
    for (size_t i = 0; i + 1 < sizeof(msg); i += 2)
        memcpy(msg + i, "\xc3\xa9", 2);
    msg[sizeof(msg) - 1] = '\0';
    for (int shift = 0; shift < 2; shift++) {
        char *out = logged(LOG_FORMAT_JSON, msg + shift);
        json_error_t err;
        json_t *root = json_loads(out, 0, &err);
        ck_assert_msg(root != NULL, "not JSON (%s)", err.text);
        json_decref(root);
        free(out);
    }
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_log_text_escapes_control_characters);
    tcase_add_test(tc, test_log_text_message_cannot_forge_a_second_line);
    tcase_add_test(tc, test_log_text_keeps_printable_text_and_utf8_as_is);
    tcase_add_test(tc, test_log_text_line_of_control_characters_is_cut_not_overflowed);
    tcase_add_test(tc, test_log_json_escapes_control_characters);
    tcase_add_test(tc, test_log_json_repairs_what_is_not_utf8_and_keeps_what_is);
    tcase_add_test(tc, test_log_json_line_cut_to_fit_is_still_json);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = log_suite};

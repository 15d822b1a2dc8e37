/* Unit tests for worker/lines: line splitting, UTF-8 sanitising, SDK result lines. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "runtime/utf8.h"
#include "worker/ipc.h"
#include "worker/lines.h"

#define MAX_LINES 64

/* Collects every emitted line, in order. */
struct collected {
    char *line[MAX_LINES];
    size_t len[MAX_LINES];
    size_t n;
};

static void collect(void *ctx, const char *line, size_t len)
{
    struct collected *c = ctx;
    ck_assert_uint_lt(c->n, MAX_LINES);
    c->line[c->n] = malloc(len + 1);
    ck_assert_ptr_nonnull(c->line[c->n]);
    memcpy(c->line[c->n], line, len);
    c->line[c->n][len] = '\0';
    c->len[c->n] = len;
    c->n++;
}

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->line[i]);
    c->n = 0;
}

static void feed_str(struct line_splitter *s, const char *str, struct collected *c)
{
    line_splitter_feed(s, str, strlen(str), collect, c);
}

static void assert_line(const struct collected *c, size_t i, const char *want, size_t want_len)
{
    ck_assert_uint_lt(i, c->n);
    ck_assert_uint_eq(c->len[i], want_len);
    ck_assert(memcmp(c->line[i], want, want_len) == 0);
}

#define ASSERT_LINE(c, i, lit) assert_line((c), (i), (lit), sizeof(lit) - 1)

START_TEST(test_splitter_emits_each_newline_terminated_line)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 0);
    feed_str(&s, "a\nbb\n\nccc\n", &c);
    ck_assert_uint_eq(c.n, 4);
    ASSERT_LINE(&c, 0, "a");
    ASSERT_LINE(&c, 1, "bb");
    ASSERT_LINE(&c, 2, "");
    ASSERT_LINE(&c, 3, "ccc");
    line_splitter_finish(&s, collect, &c);
    ck_assert_uint_eq(c.n, 4);
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_joins_a_line_fed_in_parts)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 0);
    feed_str(&s, "hel", &c);
    ck_assert_uint_eq(c.n, 0);
    feed_str(&s, "lo\nwor", &c);
    feed_str(&s, "ld\n", &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 0, "hello");
    ASSERT_LINE(&c, 1, "world");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_strips_cr_only_before_lf)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 0);
    feed_str(&s, "a\r\nb\rc\n", &c);
    feed_str(&s, "split\r", &c);
    feed_str(&s, "\n", &c);
    ck_assert_uint_eq(c.n, 3);
    ASSERT_LINE(&c, 0, "a");
    ASSERT_LINE(&c, 1, "b\rc");
    ASSERT_LINE(&c, 2, "split");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_cuts_long_line_at_max_exactly)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 4);
    feed_str(&s, "abcdefghij\nxy\n", &c);
    ck_assert_uint_eq(c.n, 4);
    ASSERT_LINE(&c, 0, "abcd");
    ASSERT_LINE(&c, 1, "efgh");
    ASSERT_LINE(&c, 2, "ij");
    ASSERT_LINE(&c, 3, "xy");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_line_of_max_bytes_with_crlf_is_one_line)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 4);
    /* Byte by byte, so the '\r' sits alone beyond a full piece when it arrives. */
    const char *in = "abcd\r\nefgh\n";
    for (size_t i = 0; in[i]; i++)
        line_splitter_feed(&s, in + i, 1, collect, &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 0, "abcd");
    ASSERT_LINE(&c, 1, "efgh");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_cuts_long_line_before_an_incomplete_utf8_character)
{
    struct line_splitter s;
    struct collected c = {0};

    /* "abcd" + U+00E9 (2 bytes): the piece of 5 would end inside it. */
    line_splitter_init(&s, 5);
    feed_str(&s, "abcd\xc3\xa9\n", &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 0, "abcd");
    ASSERT_LINE(&c, 1, "\xc3\xa9");
    collected_free(&c);
    line_splitter_free(&s);

    /* "ab" + U+1F600 (4 bytes) + "cd": 5 bytes would hold three of its four. */
    line_splitter_init(&s, 5);
    feed_str(&s,
             "ab\xf0\x9f\x98\x80"
             "cd\n",
             &c);
    ck_assert_uint_eq(c.n, 3);
    ASSERT_LINE(&c, 0, "ab");
    ASSERT_LINE(&c, 1,
                "\xf0\x9f\x98\x80"
                "c");
    ASSERT_LINE(&c, 2, "d");
    collected_free(&c);
    line_splitter_free(&s);

    /* The same character ending exactly at the limit is not cut. */
    line_splitter_init(&s, 6);
    feed_str(&s,
             "ab\xf0\x9f\x98\x80"
             "cd\n",
             &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 0, "ab\xf0\x9f\x98\x80");
    ASSERT_LINE(&c, 1, "cd");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_cuts_invalid_bytes_at_max)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 4);
    feed_str(&s, "\xff\xff\xff\xff\xff\xff\n", &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 0, "\xff\xff\xff\xff");
    ASSERT_LINE(&c, 1, "\xff\xff");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_finish_emits_trailing_partial_line)
{
    struct line_splitter s;
    struct collected c = {0};
    line_splitter_init(&s, 0);
    feed_str(&s, "a\nlast", &c);
    ck_assert_uint_eq(c.n, 1);
    line_splitter_finish(&s, collect, &c);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_LINE(&c, 1, "last");
    /* A finished splitter starts afresh and finishing it empty emits nothing. */
    line_splitter_finish(&s, collect, &c);
    ck_assert_uint_eq(c.n, 2);
    feed_str(&s, "again\n", &c);
    ck_assert_uint_eq(c.n, 3);
    ASSERT_LINE(&c, 2, "again");
    collected_free(&c);
    line_splitter_free(&s);
}
END_TEST

/* Concatenates pieces of one stream, separating completed lines with '\n'. */
struct joined {
    char buf[4096];
    size_t len;
    size_t longest;
};

static void join_piece(void *ctx, const char *line, size_t len)
{
    struct joined *j = ctx;
    ck_assert_uint_le(j->len + len + 1, sizeof(j->buf));
    memcpy(j->buf + j->len, line, len);
    j->len += len;
    j->buf[j->len++] = '|';
    if (len > j->longest)
        j->longest = len;
}

START_TEST(test_splitter_output_does_not_depend_on_how_input_is_chunked)
{
    /* Mixed ASCII, multi-byte characters, CRLF and long runs, against a small max_line. */
    const char *in = "short\nlonger line with \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 inside it\r\n"
                     "\r\n\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                     "\nend without newline\r";
    size_t n = strlen(in);
    struct line_splitter s;
    struct joined whole = {0};
    line_splitter_init(&s, 7);
    line_splitter_feed(&s, in, n, join_piece, &whole);
    line_splitter_finish(&s, join_piece, &whole);
    ck_assert_uint_le(whole.longest, 7);

    for (size_t chunk = 1; chunk <= 9; chunk++) {
        struct joined parts = {0};
        for (size_t off = 0; off < n; off += chunk)
            line_splitter_feed(&s, in + off, off + chunk <= n ? chunk : n - off, join_piece,
                               &parts);
        line_splitter_finish(&s, join_piece, &parts);
        ck_assert_uint_eq(parts.len, whole.len);
        ck_assert(memcmp(parts.buf, whole.buf, whole.len) == 0);
    }
    line_splitter_free(&s);
}
END_TEST

START_TEST(test_splitter_memory_stays_bounded_by_max_line)
{
    struct line_splitter s;
    struct joined j = {0};
    char chunk[100];
    memset(chunk, 'x', sizeof(chunk));
    line_splitter_init(&s, 16);
    for (int i = 0; i < 30; i++)
        line_splitter_feed(&s, chunk, sizeof(chunk), join_piece, &j);
    ck_assert_uint_le(s.cap, 17);
    ck_assert_uint_eq(j.longest, 16);
    line_splitter_free(&s);
}
END_TEST

/* Sanitises in and compares with want; want NULL means "already valid, no copy". */
static void assert_sanitized(const char *in, size_t n, const char *want, size_t want_len)
{
    char *out = (char *)1;
    size_t out_len = 0;
    ck_assert_int_eq(utf8_sanitize(in, n, &out, &out_len), 0);
    if (!want) {
        ck_assert_ptr_null(out);
        ck_assert_uint_eq(out_len, n);
        return;
    }
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(out_len, want_len);
    ck_assert(memcmp(out, want, want_len) == 0);
    ck_assert_int_eq(out[out_len], '\0');
    free(out);
}

#define ASSERT_VALID(lit) assert_sanitized((lit), sizeof(lit) - 1, NULL, 0)
#define ASSERT_SANITIZED(lit, want)                                                                \
    assert_sanitized((lit), sizeof(lit) - 1, (want), sizeof(want) - 1)
#define FFFD "\xef\xbf\xbd"

START_TEST(test_sanitize_leaves_valid_utf8_alone)
{
    ASSERT_VALID("");
    ASSERT_VALID("plain ascii");
    ASSERT_VALID("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf");
}
END_TEST

START_TEST(test_sanitize_replaces_bad_lead_bytes)
{
    ASSERT_SANITIZED("a\xff"
                     "b",
                     "a" FFFD "b");
    ASSERT_SANITIZED("\x80\xbf", FFFD FFFD);
    ASSERT_SANITIZED("\xf5\x80", FFFD FFFD);
}
END_TEST

START_TEST(test_sanitize_replaces_truncated_sequence_once)
{
    ASSERT_SANITIZED("\xe2\x82", FFFD);
    ASSERT_SANITIZED("\xe2\x82"
                     "A",
                     FFFD "A");
    ASSERT_SANITIZED("\xf0\x9f\x98", FFFD);
    ASSERT_SANITIZED("x\xc3", "x" FFFD);
}
END_TEST

START_TEST(test_sanitize_replaces_overlong_forms)
{
    ASSERT_SANITIZED("\xc0\xaf", FFFD FFFD);
    ASSERT_SANITIZED("\xc1\xbf", FFFD FFFD);
    ASSERT_SANITIZED("\xe0\x80\xaf", FFFD FFFD FFFD);
    ASSERT_SANITIZED("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD);
}
END_TEST

START_TEST(test_sanitize_replaces_surrogates_and_beyond_max_code_point)
{
    ASSERT_SANITIZED("\xed\xa0\x80", FFFD FFFD FFFD);
    ASSERT_SANITIZED("\xed\xbf\xbf", FFFD FFFD FFFD);
    ASSERT_SANITIZED("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
}
END_TEST

START_TEST(test_sanitize_replaces_nul_bytes)
{
    ASSERT_SANITIZED("a\0b", "a" FFFD "b");
    ASSERT_SANITIZED("\0", FFFD);
}
END_TEST

START_TEST(test_sanitized_output_is_a_valid_json_string)
{
    const char in[] = "ok \xc3\x28 \0 \xe2\x28\xa1 \xf8\xa1\xa1\xa1\xa1 \xed\xa0\x80";
    char *out = NULL;
    size_t out_len = 0;
    ck_assert_int_eq(utf8_sanitize(in, sizeof(in) - 1, &out, &out_len), 0);
    ck_assert_ptr_nonnull(out);
    json_t *s = json_stringn(out, out_len);
    ck_assert_ptr_nonnull(s);
    json_decref(s);
    /* Sanitising twice changes nothing more. */
    char *again = (char *)1;
    size_t again_len = 0;
    ck_assert_int_eq(utf8_sanitize(out, out_len, &again, &again_len), 0);
    ck_assert_ptr_null(again);
    free(out);
}
END_TEST

static json_t *parse_ok(const char *line)
{
    json_t *items = (json_t *)1;
    ck_assert_int_eq(ipc_parse_line(line, strlen(line), &items), 1);
    ck_assert(json_is_array(items));
    return items;
}

static void assert_not_ipc(const char *line)
{
    json_t *items = (json_t *)1;
    ck_assert_msg(ipc_parse_line(line, strlen(line), &items) == 0, "parsed as ipc: %s", line);
    ck_assert_ptr_null(items);
}

START_TEST(test_ipc_object_payload_becomes_one_item)
{
    json_t *items =
        parse_ok("{\"type\":\"data\",\"payload\":{\"title\":\"x\",\"n\":1},\"ipc\":true}");
    ck_assert_uint_eq(json_array_size(items), 1);
    json_t *item = json_array_get(items, 0);
    ck_assert_str_eq(json_string_value(json_object_get(item, "title")), "x");
    ck_assert_int_eq(json_integer_value(json_object_get(item, "n")), 1);
    json_decref(items);
}
END_TEST

START_TEST(test_ipc_array_payload_is_returned_as_is)
{
    json_t *items =
        parse_ok("  {\"ipc\": true, \"payload\": [{\"a\":1},{\"b\":2}], \"type\": \"data\", "
                 "\"extra\": 5}  ");
    ck_assert_uint_eq(json_array_size(items), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 1), "b")), 2);
    json_decref(items);

    items = parse_ok("{\"type\":\"data\",\"payload\":[],\"ipc\":true}");
    ck_assert_uint_eq(json_array_size(items), 0);
    json_decref(items);
}
END_TEST

START_TEST(test_ipc_rejects_lines_that_are_not_sdk_results)
{
    assert_not_ipc("");
    assert_not_ipc("hello world");
    assert_not_ipc("[{\"type\":\"data\",\"payload\":{},\"ipc\":true}]");
    assert_not_ipc("{\"type\":\"data\",\"payload\":{}}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":{},\"ipc\":false}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":{},\"ipc\":1}");
    assert_not_ipc("{\"type\":\"log\",\"payload\":{},\"ipc\":true}");
    assert_not_ipc("{\"payload\":{},\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":{},\"ipc\":tru");
    assert_not_ipc("{\"type\":\"data\",\"payload\":{},\"ipc\":true} trailing");
}
END_TEST

START_TEST(test_ipc_rejects_non_object_payloads)
{
    assert_not_ipc("{\"type\":\"data\",\"payload\":5,\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":\"x\",\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":null,\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":[1,2],\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\",\"payload\":[{\"a\":1},1],\"ipc\":true}");
}
END_TEST

START_TEST(test_ipc_payload_may_hold_u0000_in_a_string_value)
{
    json_t *items = parse_ok("{\"type\":\"data\",\"payload\":{\"t\":\"a\\u0000b\"},\"ipc\":true}");
    json_t *item = json_array_get(items, 0);
    json_t *t = json_object_get(item, "t");
    ck_assert_uint_eq(json_string_length(t), 3);
    ck_assert(memcmp(json_string_value(t), "a\0b", 3) == 0);
    /* What the uploader sends: the item serialised, the NUL escaped again. */
    char *text = json_dumps(item, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"t\":\"a\\u0000b\"}");
    free(text);
    json_decref(items);

    /* An object key cannot hold one, and "data" with a NUL after it is not "data". */
    assert_not_ipc("{\"type\":\"data\",\"payload\":{\"a\\u0000\":1},\"ipc\":true}");
    assert_not_ipc("{\"type\":\"data\\u0000\",\"payload\":{},\"ipc\":true}");
}
END_TEST

static Suite *lines_suite(void)
{
    Suite *s = suite_create("lines");
    TCase *split = tcase_create("splitter");
    tcase_add_test(split, test_splitter_emits_each_newline_terminated_line);
    tcase_add_test(split, test_splitter_joins_a_line_fed_in_parts);
    tcase_add_test(split, test_splitter_strips_cr_only_before_lf);
    tcase_add_test(split, test_splitter_cuts_long_line_at_max_exactly);
    tcase_add_test(split, test_splitter_line_of_max_bytes_with_crlf_is_one_line);
    tcase_add_test(split, test_splitter_cuts_long_line_before_an_incomplete_utf8_character);
    tcase_add_test(split, test_splitter_cuts_invalid_bytes_at_max);
    tcase_add_test(split, test_splitter_finish_emits_trailing_partial_line);
    tcase_add_test(split, test_splitter_output_does_not_depend_on_how_input_is_chunked);
    tcase_add_test(split, test_splitter_memory_stays_bounded_by_max_line);
    suite_add_tcase(s, split);

    TCase *utf8 = tcase_create("utf8_sanitize");
    tcase_add_test(utf8, test_sanitize_leaves_valid_utf8_alone);
    tcase_add_test(utf8, test_sanitize_replaces_bad_lead_bytes);
    tcase_add_test(utf8, test_sanitize_replaces_truncated_sequence_once);
    tcase_add_test(utf8, test_sanitize_replaces_overlong_forms);
    tcase_add_test(utf8, test_sanitize_replaces_surrogates_and_beyond_max_code_point);
    tcase_add_test(utf8, test_sanitize_replaces_nul_bytes);
    tcase_add_test(utf8, test_sanitized_output_is_a_valid_json_string);
    suite_add_tcase(s, utf8);

    TCase *ipc = tcase_create("ipc_parse_line");
    tcase_add_test(ipc, test_ipc_object_payload_becomes_one_item);
    tcase_add_test(ipc, test_ipc_array_payload_is_returned_as_is);
    tcase_add_test(ipc, test_ipc_rejects_lines_that_are_not_sdk_results);
    tcase_add_test(ipc, test_ipc_rejects_non_object_payloads);
    tcase_add_test(ipc, test_ipc_payload_may_hold_u0000_in_a_string_value);
    suite_add_tcase(s, ipc);
    return s;
}

const struct unit_tests unit_tests = {.suite = lines_suite};

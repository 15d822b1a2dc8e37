/* Unit tests for master/ingest's parse of a Connect message's data: what reaches the store. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check_main.h"
#include "master/ingest.h"
#include "rpc/validate.h"

#define FFFD "\xef\xbf\xbd"

static int parse(struct ingest_batch *b, const char *data, bool items)
{
    return ingest_batch_parse(b, (const uint8_t *)data, strlen(data), items);
}

START_TEST(test_log_lines_get_u_fffd_for_u0000)
{
    struct ingest_batch b;
    ck_assert_int_eq(parse(&b, "[\"a\\u0000b\", \"plain\"]", false), 2);
    ck_assert_uint_eq(b.lens[0], 5);
    ck_assert(memcmp(b.ptrs[0], "a" FFFD "b", 5) == 0);
    ck_assert_uint_eq(b.lens[1], 5);
    ck_assert(memcmp(b.ptrs[1], "plain", 5) == 0);
    ingest_batch_free(&b);
}
END_TEST

START_TEST(test_items_keep_u0000_escaped_in_their_stored_text)
{
    struct ingest_batch b;
    ck_assert_int_eq(
        parse(&b, "[ {\"t\": \"a\\u0000b\", \"n\": [\"\\u0000\"]}, {\"k\": 1} ]", true), 2);
    const char *want = "{\"t\":\"a\\u0000b\",\"n\":[\"\\u0000\"]}";
    ck_assert_uint_eq(b.lens[0], strlen(want));
    ck_assert(memcmp(b.ptrs[0], want, b.lens[0]) == 0);
    ck_assert_uint_eq(b.lens[1], strlen("{\"k\":1}"));
    /* The stored text reads back as the item, NUL included. */
    json_t *j = json_loadb(b.ptrs[0], b.lens[0], JSON_ALLOW_NUL, NULL);
    ck_assert_ptr_nonnull(j);
    json_t *t = json_object_get(j, "t");
    ck_assert_uint_eq(json_string_length(t), 3);
    ck_assert(memcmp(json_string_value(t), "a\0b", 3) == 0);
    json_decref(j);
    ingest_batch_free(&b);
}
END_TEST

START_TEST(test_items_refuse_u0000_in_a_key_and_anything_but_objects)
{
    static const char *const bad[] = {
        "[{\"a\\u0000\": 1}]", "[{\"a\": 1}, 2]", "{\"a\": 1}", "[\"x\"]", "[{\"a\": \"\\ud800\"}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ingest_batch b;
        ck_assert_msg(parse(&b, bad[i], true) == -EINVAL, "accepted %s", bad[i]);
        ingest_batch_free(&b);
    }
}
END_TEST

/* "[{"v":[x,x,...]}]" with count copies of the number text x. */
static char *items_of_numbers(const char *x, size_t count)
{
    size_t xl = strlen(x), cap = 16 + count * (xl + 1);
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t n = (size_t)snprintf(s, cap, "[{\"v\":[");
    for (size_t i = 0; i < count; i++) {
        memcpy(s + n, x, xl);
        n += xl;
        s[n++] = i + 1 < count ? ',' : ']';
    }
    memcpy(s + n, "}]", 3);
    return s;
}

START_TEST(test_item_growing_past_the_bound_with_17_digits_is_stored_with_fewer_exactly)
{
    /* 400,000 times 1e-7: 2.4 MB as sent, 8.8 MB with jansson's 17 digits. */
    char *data = items_of_numbers("1e-7", 400000);
    struct ingest_batch b;
    ck_assert_int_eq(parse(&b, data, true), 1);
    ck_assert_uint_le(b.lens[0], LIMIT_ITEM_MAX);
    json_t *sent = json_loads(data, 0, NULL);
    json_t *stored = json_loadb(b.ptrs[0], b.lens[0], 0, NULL);
    ck_assert_ptr_nonnull(stored);
    ck_assert(json_equal(json_array_get(sent, 0), stored));
    json_decref(sent);
    json_decref(stored);
    ingest_batch_free(&b);
    free(data);
}
END_TEST

START_TEST(test_item_that_cannot_be_stored_within_the_bound_is_refused_as_too_large)
{
    /* 0.30000000000000004 needs all 17 digits: 300,000 of them (6 MB) do not fit however written.
     */
    char *data = items_of_numbers("0.30000000000000004", 300000);
    struct ingest_batch b;
    ck_assert_int_eq(parse(&b, data, true), -EMSGSIZE);
    ingest_batch_free(&b);
    free(data);
}
END_TEST

static Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("batch_parse");
    tcase_add_test(tc, test_log_lines_get_u_fffd_for_u0000);
    tcase_add_test(tc, test_items_keep_u0000_escaped_in_their_stored_text);
    tcase_add_test(tc, test_items_refuse_u0000_in_a_key_and_anything_but_objects);
    tcase_add_test(tc,
                   test_item_growing_past_the_bound_with_17_digits_is_stored_with_fewer_exactly);
    tcase_add_test(tc, test_item_that_cannot_be_stored_within_the_bound_is_refused_as_too_large);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = ingest_suite};

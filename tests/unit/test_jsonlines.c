#include <check.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check_main.h"
#include "master/jsonlines.h"
#include "runtime/jsonsafe.h"

/* Parses text both ways: ours must agree with jansson on every array of strings it accepts. */
static void agree(const char *text)
{
    struct jsonlines jl;
    int n = jsonlines_parse(&jl, text, strlen(text));
    json_t *ref = json_loads(text, 0, NULL);
    ck_assert_msg(n >= 0, "refused valid %s", text);
    ck_assert_msg(json_is_array(ref), "bad test %s", text);
    ck_assert_int_eq((size_t)n, json_array_size(ref));
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(ref, (size_t)i);
        ck_assert_uint_eq(jl.lens[i], json_string_length(v));
        ck_assert(memcmp(jl.ptrs[i], json_string_value(v), jl.lens[i]) == 0);
    }
    json_decref(ref);
    jsonlines_free(&jl);
}

static void refuse(const char *text, size_t len)
{
    struct jsonlines jl;
    ck_assert_msg(jsonlines_parse(&jl, text, len) == -EINVAL, "accepted %.*s", (int)len, text);
    jsonlines_free(&jl);
}

#define REFUSE(s) refuse((s), sizeof(s) - 1)

START_TEST(test_plain_and_escaped_strings_read_like_a_json_parser)
{
    agree("[]");
    agree(" [ ] ");
    agree("[\"a\"]");
    agree("[\"\",\"b\", \"c d\" ]");
    agree("[\"q\\\"uote\",\"back\\\\slash\",\"sl\\/ash\"]");
    agree("[\"\\b\\f\\n\\r\\t\"]");
    agree("[\"\\u00e9t\\u00C9\",\"\\u20ac\",\"\\ud83d\\ude00\"]");
    agree("[\"caf\xc3\xa9\",\"\xe2\x82\xac\",\"\xf0\x9f\x98\x80\"]");
    agree("\n[\"x\"]\r\n");
}
END_TEST

START_TEST(test_anything_else_is_refused)
{
    REFUSE("");
    REFUSE("{}");
    REFUSE("\"a\"");
    REFUSE("[1]");
    REFUSE("[\"a\",]");
    REFUSE("[\"a\" \"b\"]");
    REFUSE("[\"a\"");
    REFUSE("[\"a]");
    REFUSE("[\"a\"] x");
    REFUSE("[\"tab\there\"]");
    REFUSE("[\"\\x\"]");
    REFUSE("[\"\\u12\"]");
    REFUSE("[\"\\ud83d\"]");
    REFUSE("[\"\\ude00\"]");
    REFUSE("[\"\xc3\"]");
    REFUSE("[\"\xc0\xaf\"]");
    REFUSE("[\"\xed\xa0\x80\"]");
    REFUSE("[\"\xff\"]");
    REFUSE("[\"a\\");
}
END_TEST

START_TEST(test_u0000_becomes_u_fffd_so_no_line_holds_a_nul)
{
    const char *text = "[\"a\\u0000b\",\"\\u0000\",\"x\\u0000\\u0000\"]";
    struct jsonlines jl;
    ck_assert_int_eq(jsonlines_parse(&jl, text, strlen(text)), 3);
    ck_assert_uint_eq(jl.lens[0], 5);
    ck_assert(memcmp(jl.ptrs[0],
                     "a\xef\xbf\xbd"
                     "b",
                     5) == 0);
    ck_assert_uint_eq(jl.lens[1], 3);
    ck_assert(memcmp(jl.ptrs[1], "\xef\xbf\xbd", 3) == 0);
    ck_assert_uint_eq(jl.lens[2], 7);
    ck_assert(memcmp(jl.ptrs[2], "x\xef\xbf\xbd\xef\xbf\xbd", 7) == 0);
    jsonlines_free(&jl);
    /* Other control characters stay what they are. */
    agree("[\"\\u0001\\u001f\"]");
}
END_TEST

START_TEST(test_unescaped_strings_point_into_the_input)
{
    const char *text = "[\"alpha\",\"be\\nta\"]";
    struct jsonlines jl;
    ck_assert_int_eq(jsonlines_parse(&jl, text, strlen(text)), 2);
    ck_assert_ptr_eq(jl.ptrs[0], text + 2);
    ck_assert_uint_eq(jl.lens[1], 5);
    ck_assert(memcmp(jl.ptrs[1], "be\nta", 5) == 0);
    jsonlines_free(&jl);
}
END_TEST

START_TEST(test_many_lines_survive_growth)
{
    size_t n = 10000, cap = n * 12 + 16, len = 0;
    char *text = malloc(cap);
    text[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s\"l%zu\\t\"", i ? "," : "", i);
    text[len++] = ']';
    struct jsonlines jl;
    ck_assert_int_eq(jsonlines_parse(&jl, text, len), (int)n);
    char want[32];
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(want, sizeof(want), "l%zu\t", i);
        ck_assert_uint_eq(jl.lens[i], (size_t)w);
        ck_assert(memcmp(jl.ptrs[i], want, (size_t)w) == 0);
    }
    jsonlines_free(&jl);
    free(text);
}
END_TEST

/* What jsonsafe_plain_prefix promises, one byte at a time. */
static size_t plain_prefix_bytewise(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x80 && p[i] != '"' &&
           p[i] != '\\')
        i++;
    return i;
}

/* The scan goes 16 or 8 bytes at a time: a special byte must stop it at its own place, whichever
 * block and lane it falls in, and the plain bytes next to the special ones must not. */
START_TEST(test_the_plain_prefix_ends_at_the_first_special_byte_wherever_it_is)
{
    static const unsigned char special[] = {0x00, 0x01, 0x1f, '"', '\\', 0x80, 0xc3, 0xff};
    static const unsigned char plain[] = {0x20, 0x21, 0x7e, 0x7f, 'a', '0', '/', '[', ']'};
    char buf[80];
    for (size_t n = 0; n <= sizeof(buf); n++) {
        for (size_t k = 0; k < sizeof(plain); k++) {
            memset(buf, plain[k], sizeof(buf));
            ck_assert_uint_eq(jsonsafe_plain_prefix(buf, n), n);
        }
        for (size_t at = 0; at < n; at++) {
            for (size_t k = 0; k < sizeof(special); k++) {
                memset(buf, 'x', sizeof(buf));
                buf[at] = (char)special[k];
                if (at + 1 < n) /* a later special byte changes nothing */
                    buf[n - 1] = '"';
                ck_assert_uint_eq(jsonsafe_plain_prefix(buf, n), at);
            }
        }
    }
    /* Random bytes, mostly plain, against the bytewise definition. */
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)rand() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(rand() % 50 ? 0x20 + rand() % 0x60 : rand() % 256);
        ck_assert_uint_eq(jsonsafe_plain_prefix(buf, n), plain_prefix_bytewise(buf, n));
    }
}
END_TEST

static Suite *jsonlines_suite(void)
{
    Suite *s = suite_create("jsonlines");
    TCase *tc = tcase_create("jsonlines");
    tcase_add_test(tc, test_plain_and_escaped_strings_read_like_a_json_parser);
    tcase_add_test(tc, test_anything_else_is_refused);
    tcase_add_test(tc, test_u0000_becomes_u_fffd_so_no_line_holds_a_nul);
    tcase_add_test(tc, test_unescaped_strings_point_into_the_input);
    tcase_add_test(tc, test_many_lines_survive_growth);
    tcase_add_test(tc, test_the_plain_prefix_ends_at_the_first_special_byte_wherever_it_is);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = jsonlines_suite};

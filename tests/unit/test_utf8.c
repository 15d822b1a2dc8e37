/* Unit tests for runtime/utf8: the strict decoder, its spans on bad input, the encoder. */
#include <check.h>
#include <string.h>

#include "check_main.h"
#include "runtime/utf8.h"

/* utf8_next on the n bytes of s must give res and span. */
static void next_is(const char *s, size_t n, enum utf8_result res, size_t span)
{
    enum utf8_result got = (enum utf8_result) - 1;
    size_t len = utf8_next((const unsigned char *)s, n, &got);
    ck_assert_msg(got == res && len == span, "bytes %02x..: result %d span %zu, expected %d %zu",
                  (unsigned char)s[0], (int)got, len, (int)res, span);
}

#define OK_SPAN(s, span) next_is((s), sizeof(s) - 1, UTF8_OK, (span))
#define INVALID(s, span) next_is((s), sizeof(s) - 1, UTF8_INVALID, (span))
#define TRUNCATED(s)     next_is((s), sizeof(s) - 1, UTF8_TRUNCATED, sizeof(s) - 1)
#define VALID_TEXT(s)    utf8_valid((s), sizeof(s) - 1)

START_TEST(test_first_and_last_code_point_of_every_length_is_one_character)
{
    OK_SPAN("\x00", 1);
    OK_SPAN("\x7f", 1);
    OK_SPAN("\xc2\x80", 2);         /* U+0080 */
    OK_SPAN("\xdf\xbf", 2);         /* U+07FF */
    OK_SPAN("\xe0\xa0\x80", 3);     /* U+0800 */
    OK_SPAN("\xef\xbf\xbf", 3);     /* U+FFFF */
    OK_SPAN("\xf0\x90\x80\x80", 4); /* U+10000 */
    OK_SPAN("\xf4\x8f\xbf\xbf", 4); /* U+10FFFF, the last code point */
    /* Only the first character counts. */
    OK_SPAN("\xc3\xa9\xc3\xa9", 2);
}
END_TEST

START_TEST(test_overlong_forms_are_invalid_at_their_lead_byte)
{
    INVALID("\xc0\x80", 1);
    INVALID("\xc1\xbf", 1);
    INVALID("\xe0\x80\x80", 1);
    INVALID("\xe0\x9f\xbf", 1); /* U+07FF in three bytes */
    INVALID("\xf0\x80\x80\x80", 1);
    INVALID("\xf0\x8f\xbf\xbf", 1); /* U+FFFF in four bytes */
}
END_TEST

START_TEST(test_surrogates_are_invalid_and_their_neighbours_valid)
{
    INVALID("\xed\xa0\x80", 1); /* U+D800 */
    INVALID("\xed\xbf\xbf", 1); /* U+DFFF */
    OK_SPAN("\xed\x9f\xbf", 3); /* U+D7FF */
    OK_SPAN("\xee\x80\x80", 3); /* U+E000 */
}
END_TEST

START_TEST(test_nothing_above_10ffff_and_no_stray_byte_is_a_character)
{
    INVALID("\xf4\x90\x80\x80", 1); /* U+110000 */
    INVALID("\xf5\x80\x80\x80", 1);
    INVALID("\xf7\xbf\xbf\xbf", 1);
    INVALID("\xf8\x88\x80\x80\x80", 1); /* the old five-byte form */
    INVALID("\xff", 1);
    INVALID("\x80", 1);
    INVALID("\xbf", 1);
}
END_TEST

START_TEST(test_a_broken_sequence_spans_its_maximal_subpart)
{
    INVALID("\xc3(", 1);
    INVALID("\xe2\x82(", 2);
    INVALID("\xe2(\xa1", 1);
    INVALID("\xf0\x9f\x98(", 3);
    INVALID("\xf0\x9f(\x80", 2);
    INVALID("\xf4\x8f\xc0\x80", 2);
}
END_TEST

START_TEST(test_a_sequence_cut_by_the_end_of_the_bytes_is_truncated)
{
    TRUNCATED("\xc3");
    TRUNCATED("\xe2\x82");
    TRUNCATED("\xe0\xa0");
    TRUNCATED("\xf0\x9f\x98");
    TRUNCATED("\xf4\x8f");
    /* The length given ends it, though the bytes go on. */
    next_is("\xc3\xa9", 1, UTF8_TRUNCATED, 1);
    next_is("\xf0\x9f\x98\x80", 2, UTF8_TRUNCATED, 2);
    /* A prefix that no byte could complete is invalid, not truncated. */
    INVALID("\xe0\x80", 1);
    INVALID("\xed\xa0", 1);
    INVALID("\xf4\x90", 1);
}
END_TEST

START_TEST(test_valid_text_is_valid_throughout)
{
    ck_assert(VALID_TEXT(""));
    ck_assert(VALID_TEXT("plain ascii"));
    ck_assert(VALID_TEXT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd"));
    ck_assert(VALID_TEXT("a\0b"));
    ck_assert(!VALID_TEXT("ok \xc0\x80"));
    ck_assert(!VALID_TEXT("ok \xed\xa0\x80 then more"));
    ck_assert(!VALID_TEXT("ok \xf0\x9f\x98"));
    ck_assert(!utf8_valid("\xc3\xa9", 1));
}
END_TEST

/*
 * Every scalar value, encoded, decodes as one character of the encoder's length; every surrogate,
 * encoded the same way, is refused. Check's assertions cost a message to the parent each, so the
 * loop only notes the first code point that goes wrong.
 */
START_TEST(test_every_code_point_round_trips_through_the_encoder)
{
    long bad = -1;
    for (uint32_t cp = 0; cp <= 0x10FFFF && bad < 0; cp++) {
        char buf[4];
        size_t len = utf8_encode(cp, buf);
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        enum utf8_result res;
        size_t span = utf8_next((const unsigned char *)buf, len, &res);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        bool ok = surrogate ? res == UTF8_INVALID && !utf8_valid(buf, len)
                            : res == UTF8_OK && span == len && utf8_valid(buf, len);
        if (len != want || !ok)
            bad = (long)cp;
    }
    ck_assert_msg(bad < 0, "U+%04lX does not round-trip", bad);
}
END_TEST

START_TEST(test_encoder_writes_the_standard_bytes)
{
    char buf[4];
    ck_assert_uint_eq(utf8_encode(0xE9, buf), 2);
    ck_assert(memcmp(buf, "\xc3\xa9", 2) == 0);
    ck_assert_uint_eq(utf8_encode(0x20AC, buf), 3);
    ck_assert(memcmp(buf, "\xe2\x82\xac", 3) == 0);
    ck_assert_uint_eq(utf8_encode(0xFFFD, buf), UTF8_REPLACEMENT_LEN);
    ck_assert(memcmp(buf, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN) == 0);
    ck_assert_uint_eq(utf8_encode(0x1F600, buf), 4);
    ck_assert(memcmp(buf, "\xf0\x9f\x98\x80", 4) == 0);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, test_first_and_last_code_point_of_every_length_is_one_character);
    tcase_add_test(tc, test_overlong_forms_are_invalid_at_their_lead_byte);
    tcase_add_test(tc, test_surrogates_are_invalid_and_their_neighbours_valid);
    tcase_add_test(tc, test_nothing_above_10ffff_and_no_stray_byte_is_a_character);
    tcase_add_test(tc, test_a_broken_sequence_spans_its_maximal_subpart);
    tcase_add_test(tc, test_a_sequence_cut_by_the_end_of_the_bytes_is_truncated);
    tcase_add_test(tc, test_valid_text_is_valid_throughout);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_test(tc, test_every_code_point_round_trips_through_the_encoder);
    tcase_add_test(tc, test_encoder_writes_the_standard_bytes);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = utf8_suite};

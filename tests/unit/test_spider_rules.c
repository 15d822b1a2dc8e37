/*
 * The spider rules of core/spider.h: names, references, hashes, and which archive paths and link
 * targets stay inside the directory a spider is unpacked into.
 */
#include "check_main.h"

#include <stdio.h>
#include <string.h>

#include "core/spider.h"

START_TEST(names_are_letters_digits_dots_underscores_dashes)
{
    ck_assert(spider_name_valid("news-site_2.v1"));
    ck_assert(!spider_name_valid(""));
    ck_assert(!spider_name_valid("a b"));
    ck_assert(!spider_name_valid("a/b"));
    ck_assert(!spider_name_valid("a@1"));
    char longest[LIMIT_SPIDER_NAME_MAX + 2];
    memset(longest, 'x', sizeof(longest));
    longest[LIMIT_SPIDER_NAME_MAX] = '\0';
    ck_assert(spider_name_valid(longest));
    longest[LIMIT_SPIDER_NAME_MAX] = 'x';
    longest[LIMIT_SPIDER_NAME_MAX + 1] = '\0';
    ck_assert(!spider_name_valid(longest));
}
END_TEST

START_TEST(a_reference_is_a_name_and_maybe_a_version)
{
    char name[LIMIT_SPIDER_NAME_MAX + 1] = "untouched";
    uint32_t v = 99;
    ck_assert(spider_ref_parse("news", name, &v));
    ck_assert_str_eq(name, "news");
    ck_assert_uint_eq(v, 0);
    ck_assert(spider_ref_parse("news@12", name, &v));
    ck_assert_str_eq(name, "news");
    ck_assert_uint_eq(v, 12);
    ck_assert(spider_ref_parse("n@2147483647", name, &v));
    ck_assert_uint_eq(v, 2147483647u);
    const char *bad[] = {"",        "@1",      "news@",           "news@0", "news@01", "news@-1",
                         "news@+1", "news@1x", "news@2147483648", "ne ws",  "a@1@2"};
    strcpy(name, "untouched");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!spider_ref_parse(bad[i], name, &v), "%s accepted", bad[i]);
    ck_assert_str_eq(name, "untouched");
}
END_TEST

START_TEST(a_hash_is_64_lowercase_hex_digits)
{
    const char *good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    ck_assert(spider_sha256_valid(good));
    ck_assert(
        !spider_sha256_valid("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
    ck_assert(!spider_sha256_valid("e3b0"));
    char longer[80];
    snprintf(longer, sizeof(longer), "%s0", good);
    ck_assert(!spider_sha256_valid(longer));
    ck_assert(
        !spider_sha256_valid("../../../../../../../../../../../../../../../../../etc/passwd"));
}
END_TEST

START_TEST(paths_stay_inside_the_tree)
{
    const char *good[] = {"a", "a/b/c.py", "./a", "a//b", "dir/", ".", "a/.hidden", "..a", "a..b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(spider_path_valid(good[i]), "%s refused", good[i]);
    const char *bad[] = {"",     "/etc/passwd", "..",   "../a", "a/../b",
                         "a/..", "./../a",      "a\nb", "//a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!spider_path_valid(bad[i]), "%s accepted", bad[i]);
    char longest[LIMIT_SPIDER_PATH_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[LIMIT_SPIDER_PATH_MAX] = '\0';
    ck_assert(spider_path_valid(longest));
    longest[LIMIT_SPIDER_PATH_MAX] = 'a';
    longest[LIMIT_SPIDER_PATH_MAX + 1] = '\0';
    ck_assert(!spider_path_valid(longest));
}
END_TEST

START_TEST(links_point_inside_the_tree)
{
    ck_assert(spider_link_target_valid("l", "a/b"));
    ck_assert(spider_link_target_valid("d/l", "../a"));
    ck_assert(spider_link_target_valid("d/e/l", "../../a"));
    ck_assert(spider_link_target_valid("d/l", "."));
    ck_assert(spider_link_target_valid("d/l", "x/../../y"));
    ck_assert(!spider_link_target_valid("l", "../a"));
    ck_assert(!spider_link_target_valid("d/l", "../../a"));
    ck_assert(!spider_link_target_valid("d/l", "x/../../../y"));
    ck_assert(!spider_link_target_valid("l", "/etc/passwd"));
    ck_assert(!spider_link_target_valid("l", ""));
    /* "./" components are no depth: d/./l is in d */
    ck_assert(!spider_link_target_valid("./l", "../a"));
    ck_assert(spider_link_target_valid("d/./l", "../a"));
    /* the link's own path must be valid */
    ck_assert(!spider_link_target_valid("../l", "a"));
}
END_TEST

static Suite *spider_rules_suite(void)
{
    Suite *s = suite_create("spider_rules");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, names_are_letters_digits_dots_underscores_dashes);
    tcase_add_test(tc, a_reference_is_a_name_and_maybe_a_version);
    tcase_add_test(tc, a_hash_is_64_lowercase_hex_digits);
    tcase_add_test(tc, paths_stay_inside_the_tree);
    tcase_add_test(tc, links_point_inside_the_tree);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = spider_rules_suite};

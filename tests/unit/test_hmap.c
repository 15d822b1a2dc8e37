#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_main.h"
#include "runtime/hmap.h"

struct item {
    struct hmap_entry link;
    char key[16];
    int value;
};

static struct item *make_items(int n)
{
    struct item *items = calloc((size_t)n, sizeof(*items));
    for (int i = 0; i < n; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        items[i].link.key = items[i].key;
        items[i].value = i;
    }
    return items;
}

START_TEST(test_hmap_finds_every_entry_after_growing)
{
    struct hmap m;
    ck_assert_int_eq(hmap_init(&m), 0);
    struct item *items = make_items(5000);
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(hmap_put(&m, &items[i].link), 0);
    ck_assert_uint_eq(m.count, 5000);
    ck_assert_uint_gt(m.n_buckets, 64);
    for (int i = 0; i < 5000; i++) {
        struct hmap_entry *e = hmap_get(&m, items[i].key);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(hmap_item(e, struct item, link)->value, i);
    }
    ck_assert_ptr_null(hmap_get(&m, "absent"));
    hmap_destroy(&m);
    free(items);
}
END_TEST

START_TEST(test_hmap_remove_unlinks_only_that_entry)
{
    struct hmap m;
    hmap_init(&m);
    struct item *items = make_items(100);
    for (int i = 0; i < 100; i++)
        hmap_put(&m, &items[i].link);
    for (int i = 0; i < 100; i += 2)
        hmap_remove(&m, &items[i].link);
    ck_assert_uint_eq(m.count, 50);
    for (int i = 0; i < 100; i++)
        ck_assert(!hmap_get(&m, items[i].key) == (i % 2 == 0));
    hmap_destroy(&m);
    free(items);
}
END_TEST

START_TEST(test_hmap_foreach_tolerates_removing_the_current_entry)
{
    struct hmap m;
    hmap_init(&m);
    struct item *items = make_items(300);
    for (int i = 0; i < 300; i++)
        hmap_put(&m, &items[i].link);
    int seen = 0;
    struct hmap_entry *e, *tmp;
    hmap_foreach(&m, e, tmp)
    {
        seen++;
        hmap_remove(&m, e);
    }
    ck_assert_int_eq(seen, 300);
    ck_assert_uint_eq(m.count, 0);
    hmap_destroy(&m);
    free(items);
}
END_TEST

static Suite *hmap_suite(void)
{
    Suite *s = suite_create("hmap");
    TCase *tc = tcase_create("hmap");
    tcase_add_test(tc, test_hmap_finds_every_entry_after_growing);
    tcase_add_test(tc, test_hmap_remove_unlinks_only_that_entry);
    tcase_add_test(tc, test_hmap_foreach_tolerates_removing_the_current_entry);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = hmap_suite};

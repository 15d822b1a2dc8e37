#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "check_main.h"
#include "runtime/array.h"

START_TEST(test_array_grow_keeps_every_element_as_it_doubles)
{
    int *items = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 1000; i++) {
        int *grown = array_grow(items, n, &cap, sizeof(*items), 8);
        ck_assert_ptr_nonnull(grown);
        items = grown;
        ck_assert_uint_gt(cap, n);
        items[n++] = i;
    }
    ck_assert_uint_eq(cap, 1024); /* 8, 16, ... 1024 */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(items[i], i);
    free(items);
}
END_TEST

START_TEST(test_array_grow_leaves_an_array_with_room_alone)
{
    size_t cap = 4;
    int *items = malloc(cap * sizeof(*items));
    ck_assert_ptr_eq(array_grow(items, 3, &cap, sizeof(*items), 8), items);
    ck_assert_uint_eq(cap, 4);
    free(items);
}
END_TEST

START_TEST(test_array_grow_refuses_a_room_past_size_max)
{
    /* The room claimed is a lie no allocation could hold; the array is never touched. */
    size_t cap = SIZE_MAX / 16 + 1;
    char *items = malloc(1);
    /* Doubling would overflow the byte count: NULL, and the array and its room as they were. */
    ck_assert_ptr_null(array_grow(items, cap, &cap, 8, 8));
    ck_assert_uint_eq(cap, SIZE_MAX / 16 + 1);
    free(items);
}
END_TEST

static Suite *array_suite(void)
{
    Suite *s = suite_create("array");
    TCase *tc = tcase_create("array");
    tcase_add_test(tc, test_array_grow_keeps_every_element_as_it_doubles);
    tcase_add_test(tc, test_array_grow_leaves_an_array_with_room_alone);
    tcase_add_test(tc, test_array_grow_refuses_a_room_past_size_max);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = array_suite};

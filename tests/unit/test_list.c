#include <check.h>
#include <stdlib.h>

#include "check_main.h"
#include "runtime/list.h"

struct item {
    int value;
    struct list_link link;
};

/* The values of the list at head, in its order, into out (at most max); returns how many. */
static int values(struct list_link *head, int *out, int max)
{
    int n = 0;
    list_foreach(it, head, struct item, link)
    {
        if (n < max)
            out[n] = it->value;
        n++;
    }
    return n;
}

START_TEST(test_list_push_puts_the_newest_first)
{
    struct list_link *head = NULL;
    struct item items[3] = {{.value = 0}, {.value = 1}, {.value = 2}};
    ck_assert_int_eq(values(head, NULL, 0), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(!list_linked(&items[i].link));
        list_push(&head, &items[i].link);
        ck_assert(list_linked(&items[i].link));
    }
    int v[3];
    ck_assert_int_eq(values(head, v, 3), 3);
    ck_assert_int_eq(v[0], 2);
    ck_assert_int_eq(v[1], 1);
    ck_assert_int_eq(v[2], 0);
    ck_assert_ptr_eq(list_item(head, struct item, link), &items[2]);
    ck_assert_ptr_null(list_item(items[0].link.next, struct item, link));
}
END_TEST

START_TEST(test_list_unlink_takes_out_first_middle_and_last)
{
    struct list_link *head = NULL;
    struct item items[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    for (int i = 0; i < 4; i++)
        list_push(&head, &items[i].link); /* 3 2 1 0 */
    int order[] = {2, 3, 0, 1};           /* middle, first, last, the only one */
    int left[][3] = {{3, 1, 0}, {1, 0}, {1}, {0}};
    for (int k = 0; k < 4; k++) {
        struct item *it = &items[order[k]];
        list_unlink(&it->link);
        ck_assert(!list_linked(&it->link));
        ck_assert_ptr_null(it->link.next);
        ck_assert_ptr_null(it->link.pprev);
        int v[4];
        int n = values(head, v, 4);
        ck_assert_int_eq(n, 3 - k);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(v[i], left[k][i]);
    }
    ck_assert_ptr_null(head);
}
END_TEST

START_TEST(test_list_unlink_of_a_link_in_no_list_does_nothing)
{
    struct list_link *head = NULL;
    struct item a = {.value = 1}, b = {.value = 2};
    list_push(&head, &a.link);
    list_unlink(&b.link); /* zeroed: never linked */
    list_unlink(&a.link);
    list_unlink(&a.link); /* already out */
    ck_assert_ptr_null(head);
    ck_assert(!list_linked(&a.link));
    list_push(&head, &a.link); /* and it can go in again */
    ck_assert_ptr_eq(head, &a.link);
}
END_TEST

START_TEST(test_list_foreach_lets_the_body_unlink_and_free_the_item)
{
    struct list_link *head = NULL;
    for (int i = 0; i < 6; i++) {
        struct item *it = calloc(1, sizeof(*it));
        ck_assert_ptr_nonnull(it);
        it->value = i;
        list_push(&head, &it->link);
    }
    int seen = 0;
    list_foreach(it, head, struct item, link)
    {
        seen++;
        if (it->value % 2) {
            list_unlink(&it->link);
            free(it);
        }
    }
    ck_assert_int_eq(seen, 6);
    int v[6];
    ck_assert_int_eq(values(head, v, 6), 3);
    ck_assert_int_eq(v[0], 4);
    ck_assert_int_eq(v[1], 2);
    ck_assert_int_eq(v[2], 0);
    while (head) {
        struct item *it = list_item(head, struct item, link);
        list_unlink(&it->link);
        free(it);
    }
}
END_TEST

static Suite *list_suite(void)
{
    Suite *s = suite_create("list");
    TCase *tc = tcase_create("list");
    tcase_add_test(tc, test_list_push_puts_the_newest_first);
    tcase_add_test(tc, test_list_unlink_takes_out_first_middle_and_last);
    tcase_add_test(tc, test_list_unlink_of_a_link_in_no_list_does_nothing);
    tcase_add_test(tc, test_list_foreach_lets_the_body_unlink_and_free_the_item);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = list_suite};

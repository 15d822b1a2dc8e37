/*
 * Tasks' working directories (worker/workdirs.h): an empty one a task leaves is reused for the
 * next task, and nothing a task left behind is.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "worker/workdirs.h"

#define MAX_SPARES 2

static char root[64], tasks[96];
static struct workdirs *wd;

static void setup(void)
{
    scratch_make(root, sizeof(root), "workdirs");
    snprintf(tasks, sizeof(tasks), "%s/tasks", root);
    ck_assert_int_eq(workdirs_create(tasks, MAX_SPARES, &wd), 0);
}

static void teardown(void)
{
    workdirs_destroy(wd);
    wd = NULL;
    scratch_remove(root);
}

static const char *task_dir(int n)
{
    static char path[4][128];
    snprintf(path[n % 4], sizeof(path[0]), "%s/%024x", tasks, n);
    return path[n % 4];
}

static ino_t inode(const char *path)
{
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    return st.st_ino;
}

/* Entries in the tasks directory, "." and ".." aside. */
static int entries(void)
{
    DIR *d = opendir(tasks);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(test_workdirs_reuses_an_empty_directory_for_the_next_task)
{
    ck_assert_int_eq(workdirs_take(wd, task_dir(1)), 0);
    ino_t first = inode(task_dir(1));
    workdirs_give(wd, task_dir(1));
    ck_assert_int_eq(access(task_dir(1), F_OK), -1);
    ck_assert_uint_eq(workdirs_spares(wd), 1);
    ck_assert_int_eq(workdirs_take(wd, task_dir(2)), 0);
    ck_assert_uint_eq(inode(task_dir(2)), first); /* renamed, not made */
    ck_assert_uint_eq(workdirs_spares(wd), 0);
    struct stat st;
    ck_assert_int_eq(stat(task_dir(2), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
}
END_TEST

START_TEST(test_workdirs_keeps_what_a_task_left_and_reuses_none_of_it)
{
    ck_assert_int_eq(workdirs_take(wd, task_dir(1)), 0);
    char file[512];
    snprintf(file, sizeof(file), "%s/out.csv", task_dir(1));
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    workdirs_give(wd, task_dir(1));
    ck_assert_int_eq(access(file, F_OK), 0); /* left where it was */
    ck_assert_uint_eq(workdirs_spares(wd), 0);

    /* A directory whose mode the task changed is removed, not kept for another task. */
    ck_assert_int_eq(workdirs_take(wd, task_dir(2)), 0);
    ck_assert_int_eq(chmod(task_dir(2), 0777), 0);
    workdirs_give(wd, task_dir(2));
    ck_assert_int_eq(access(task_dir(2), F_OK), -1);
    ck_assert_uint_eq(workdirs_spares(wd), 0);

    /* Nor does a symbolic link put in its place become a spare. */
    ck_assert_int_eq(workdirs_take(wd, task_dir(3)), 0);
    ck_assert_int_eq(rmdir(task_dir(3)), 0);
    ck_assert_int_eq(symlink(root, task_dir(3)), 0);
    workdirs_give(wd, task_dir(3));
    ck_assert_uint_eq(workdirs_spares(wd), 0);
    ck_assert_int_eq(workdirs_take(wd, task_dir(4)), 0);
    struct stat st;
    ck_assert_int_eq(lstat(task_dir(4), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
}
END_TEST

START_TEST(test_workdirs_keeps_at_most_its_spares_and_removes_them_at_the_end)
{
    for (int i = 0; i < MAX_SPARES + 2; i++)
        ck_assert_int_eq(workdirs_take(wd, task_dir(i)), 0);
    for (int i = 0; i < MAX_SPARES + 2; i++)
        workdirs_give(wd, task_dir(i));
    ck_assert_uint_eq(workdirs_spares(wd), MAX_SPARES);
    ck_assert_int_eq(entries(), MAX_SPARES);
    workdirs_destroy(wd);
    wd = NULL;
    ck_assert_int_eq(entries(), 0);
}
END_TEST

START_TEST(test_workdirs_removes_the_spares_a_killed_worker_left)
{
    ck_assert_int_eq(workdirs_take(wd, task_dir(1)), 0);
    workdirs_give(wd, task_dir(1));
    ck_assert_int_eq(entries(), 1);
    /* What a kill leaves: the spare on disk, no workdirs_destroy. */
    struct workdirs *next;
    ck_assert_int_eq(workdirs_create(tasks, MAX_SPARES, &next), 0);
    ck_assert_int_eq(entries(), 0);
    ck_assert_uint_eq(workdirs_spares(next), 0);
    workdirs_destroy(next);
}
END_TEST

static Suite *workdirs_suite(void)
{
    Suite *s = suite_create("workdirs");
    TCase *tc = tcase_create("workdirs");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_workdirs_reuses_an_empty_directory_for_the_next_task);
    tcase_add_test(tc, test_workdirs_keeps_what_a_task_left_and_reuses_none_of_it);
    tcase_add_test(tc, test_workdirs_keeps_at_most_its_spares_and_removes_them_at_the_end);
    tcase_add_test(tc, test_workdirs_removes_the_spares_a_killed_worker_left);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = workdirs_suite};

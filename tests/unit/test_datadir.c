/*
 * runtime/datadir.h: removing what an earlier run left in a directory takes only the entries its
 * rule names, and only those its flags can remove.
 */
#include "check_main.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/datadir.h"
#include "scratch.h"

static char dir[64];

static void setup(void)
{
    scratch_make(dir, sizeof(dir), "datadir");
}

static void teardown(void)
{
    scratch_remove(dir);
}

static const char *path_of(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void make_file(const char *name)
{
    int fd = open(path_of(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void make_dir(const char *name)
{
    ck_assert_int_eq(mkdir(path_of(name), 0700), 0);
}

static bool exists(const char *name)
{
    struct stat st;
    return lstat(path_of(name), &st) == 0;
}

/* The rule the tests remove by: names starting "go-". "." and ".." must never be asked about. */
static bool goes(const char *name)
{
    ck_assert_msg(strcmp(name, ".") != 0 && strcmp(name, "..") != 0, "offered \"%s\"", name);
    return strncmp(name, "go-", 3) == 0;
}

START_TEST(test_only_the_files_the_rule_names_are_removed)
{
    make_file("go-1");
    make_file("go-2");
    make_file("stay-1");
    make_dir("go-dir"); /* named, but unlinkat without AT_REMOVEDIR cannot remove it */
    ck_assert_int_eq(datadir_remove_entries(dir, goes, 0), 2);
    ck_assert(!exists("go-1"));
    ck_assert(!exists("go-2"));
    ck_assert(exists("stay-1"));
    ck_assert(exists("go-dir"));
}
END_TEST

START_TEST(test_with_AT_REMOVEDIR_only_empty_directories_are_removed)
{
    make_dir("go-empty");
    make_dir("go-full");
    make_file("go-full/inside");
    make_file("go-file");
    make_dir("stay-empty");
    ck_assert_int_eq(datadir_remove_entries(dir, goes, AT_REMOVEDIR), 1);
    ck_assert(!exists("go-empty"));
    ck_assert(exists("go-full/inside"));
    ck_assert(exists("go-file"));
    ck_assert(exists("stay-empty"));
}
END_TEST

START_TEST(test_an_empty_directory_removes_nothing)
{
    ck_assert_int_eq(datadir_remove_entries(dir, goes, 0), 0);
    ck_assert(exists("."));
}
END_TEST

START_TEST(test_a_missing_directory_is_an_error)
{
    ck_assert_int_eq(datadir_remove_entries(path_of("missing"), goes, 0), -ENOENT);
}
END_TEST

static Suite *datadir_suite(void)
{
    Suite *s = suite_create("datadir");
    TCase *tc = tcase_create("remove_entries");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_only_the_files_the_rule_names_are_removed);
    tcase_add_test(tc, test_with_AT_REMOVEDIR_only_empty_directories_are_removed);
    tcase_add_test(tc, test_an_empty_directory_removes_nothing);
    tcase_add_test(tc, test_a_missing_directory_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = datadir_suite};

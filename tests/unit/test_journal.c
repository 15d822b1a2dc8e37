/*
 * The running journal (worker/journal.h): what a worker notes of the tasks it starts, read back
 * as a restarted worker reads it.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "worker/journal.h"

#define ID_A "0000000000000000000000aa"
#define ID_B "0000000000000000000000bb"
#define ID_C "0000000000000000000000cc"

static char dir[64];
static struct journal *jr;

static void setup(void)
{
    scratch_make(dir, sizeof(dir), "journal");
    ck_assert_int_eq(journal_open(dir, &jr), 0);
}

static void teardown(void)
{
    journal_close(jr);
    jr = NULL;
    scratch_remove(dir);
}

static void reopen(void)
{
    journal_close(jr);
    ck_assert_int_eq(journal_open(dir, &jr), 0);
}

static void note(const char *id, int pgid, unsigned long long start, uint64_t epoch)
{
    struct journal_entry e = {.pgid = pgid, .start = start, .epoch = epoch};
    memcpy(e.id, id, sizeof(e.id));
    journal_note(jr, &e);
}

/* The entry listed for id, or NULL. */
static const struct journal_entry *listed(const char *id)
{
    const struct journal_entry *e;
    size_t n = journal_entries(jr, &e);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].id, id) == 0)
            return &e[i];
    return NULL;
}

static size_t count(void)
{
    const struct journal_entry *e;
    return journal_entries(jr, &e);
}

static void write_text(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_journal_lists_after_a_reopen_what_was_noted_and_not_forgotten)
{
    ck_assert_uint_eq(count(), 0);
    note(ID_A, 0, 0, 7); /* a pushed task, noted before its spawn */
    note(ID_B, 4321, 99887766, 8);
    note(ID_A, 1234, 55667788, 7); /* ... and again with its process */
    note(ID_C, 555, 1, 9);
    journal_forget(jr, ID_C);
    journal_forget(jr, ID_C); /* twice: nothing more */
    reopen();
    ck_assert_uint_eq(count(), 2);
    const struct journal_entry *a = listed(ID_A), *b = listed(ID_B);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->pgid, 1234);
    ck_assert_uint_eq(a->start, 55667788);
    ck_assert_uint_eq(a->epoch, 7);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->pgid, 4321);
    ck_assert_uint_eq(b->start, 99887766);
    ck_assert_uint_eq(b->epoch, 8);
    ck_assert_ptr_null(listed(ID_C));
    /* Read back and written anew: a line per task listed. */
    ck_assert_uint_eq(journal_lines(jr), 2);
}
END_TEST

START_TEST(test_journal_file_is_private)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/running.journal", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_journal_passes_over_a_line_cut_short_without_losing_the_next)
{
    journal_close(jr);
    jr = NULL;
    /* A crash cut the last line: the next line written must not run into it. */
    write_text("running.journal", "+ " ID_A " 12 34 5\n"
                                  "+ zz 1 2 3\n"         /* not a task id */
                                  "+ " ID_C " x 2 3\n"   /* not a number */
                                  "- " ID_C " extra\n"   /* more than a task id */
                                  "+ " ID_B " 56 78 9"); /* no newline */
    ck_assert_int_eq(journal_open(dir, &jr), 0);
    ck_assert_uint_eq(count(), 1);
    ck_assert_ptr_nonnull(listed(ID_A));
    journal_forget(jr, ID_A);
    note(ID_C, 90, 91, 92);
    reopen();
    ck_assert_uint_eq(count(), 1);
    const struct journal_entry *c = listed(ID_C);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->pgid, 90);
    ck_assert_uint_eq(c->epoch, 92);
}
END_TEST

START_TEST(test_journal_folds_in_the_files_of_older_versions_and_removes_them)
{
    journal_close(jr);
    jr = NULL;
    char path[128];
    snprintf(path, sizeof(path), "%s/running", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    write_text("running/" ID_A, "777 888 3\n");
    write_text("running/" ID_B, "999 111\n"); /* older still: no epoch */
    ck_assert_int_eq(journal_open(dir, &jr), 0);
    ck_assert_uint_eq(count(), 2);
    ck_assert_int_eq(listed(ID_A)->pgid, 777);
    ck_assert_uint_eq(listed(ID_A)->start, 888);
    ck_assert_uint_eq(listed(ID_A)->epoch, 3);
    ck_assert_int_eq(listed(ID_B)->pgid, 999);
    ck_assert_uint_eq(listed(ID_B)->epoch, 0);
    ck_assert_int_eq(access(path, F_OK), -1); /* gone, once the journal lists them */
    reopen();
    ck_assert_uint_eq(count(), 2);
}
END_TEST

START_TEST(test_journal_is_written_anew_before_it_grows_past_its_bound)
{
    note(ID_A, 10, 11, 12); /* a long task, listed throughout */
    size_t most = 0;
    char id[TASK_ID_LEN + 1];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "%024x", 0x1000 + i);
        note(id, 0, 0, 1);
        note(id, 100 + i, 200, 1);
        journal_forget(jr, id);
        if (journal_lines(jr) > most)
            most = journal_lines(jr);
    }
    /* 15,001 lines were written; the file never held more than its bound. */
    ck_assert_uint_le(most, JOURNAL_MIN_LINES);
    char path[128];
    snprintf(path, sizeof(path), "%s/running.journal", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_lt(st.st_size, JOURNAL_MIN_LINES * 100);
    snprintf(path, sizeof(path), "%s/running.journal.tmp", dir);
    ck_assert_int_eq(access(path, F_OK), -1);
    reopen();
    ck_assert_uint_eq(count(), 1);
    ck_assert_int_eq(listed(ID_A)->pgid, 10);
}
END_TEST

static Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("journal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_journal_lists_after_a_reopen_what_was_noted_and_not_forgotten);
    tcase_add_test(tc, test_journal_file_is_private);
    tcase_add_test(tc, test_journal_passes_over_a_line_cut_short_without_losing_the_next);
    tcase_add_test(tc, test_journal_folds_in_the_files_of_older_versions_and_removes_them);
    tcase_add_test(tc, test_journal_is_written_anew_before_it_grows_past_its_bound);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = journal_suite};

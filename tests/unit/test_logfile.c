/*
 * The log engine alone (store/logfile.h), without any row backend: the committed sizes a backend
 * would keep in its rows are kept by each test.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "check_main.h"
#include "scratch.h"
#include "store/logfile.h"

static char tmp_root[64];
static struct logfile *lf;

#define ID_A "0000000000000000000000aa"
#define ID_B "0000000000000000000000bb"
#define ID_C "0000000000000000000000cc"

/* Opens the engine on <tmp_root>/logs with room for max_open open files. */
static void engine_open(size_t max_open)
{
    ck_assert_int_eq(logfile_open(tmp_root, "logs", max_open, &lf), 0);
}

static void engine_reopen(size_t max_open)
{
    logfile_close(lf);
    lf = NULL;
    engine_open(max_open);
}

static void setup(void)
{
    scratch_make(tmp_root, sizeof(tmp_root), "logfile");
    engine_open(2);
}

static void teardown(void)
{
    logfile_close(lf);
    lf = NULL;
    scratch_remove(tmp_root);
}

static void log_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/logs/%s.log", tmp_root, id);
}

static long long file_size(const char *id)
{
    char path[256];
    log_path(id, path, sizeof(path));
    struct stat sb;
    return stat(path, &sb) < 0 ? -1 : (long long)sb.st_size;
}

/* The whole file as a NUL-terminated string (the tests' lines hold no NUL). */
static char *file_text(const char *id)
{
    char path[256];
    log_path(id, path, sizeof(path));
    long long size = file_size(id);
    ck_assert_int_ge(size, 0);
    char *buf = malloc((size_t)size + 1);
    FILE *f = fopen(path, "rb");
    ck_assert(buf && f);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    return buf;
}

static void assert_file_is(const char *id, const char *want)
{
    char *got = file_text(id);
    ck_assert_str_eq(got, want);
    free(got);
}

/* Overwrites bytes of a log behind the engine's back. */
static void poke(const char *id, uint64_t off, const char *bytes, size_t n)
{
    char path[256];
    log_path(id, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
}

/* Appends NUL-terminated lines at *size and moves *size to the new size. */
static int append(const char *id, uint64_t *size, size_t n, const char *const *lines)
{
    size_t lens[16];
    ck_assert_uint_le(n, 16);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(lines[i]);
    uint64_t out = 0;
    int rc = logfile_append(lf, id, *size, lines, lens, n, &out);
    if (rc == 0)
        *size = out;
    return rc;
}

static void commit(void)
{
    ck_assert_int_eq(logfile_sync(lf), 0);
    logfile_commit(lf);
}

/* ---- Reading helpers ---- */

struct got {
    size_t n, cap;
    uint64_t *seq;
    char **text;
    size_t stop_after; /* 0 = never stop */
};

static int collect(void *ctx, uint64_t seq, const char *line, size_t len)
{
    struct got *g = ctx;
    if (g->stop_after && g->n == g->stop_after)
        return 7; /* not taken: the next read starts with it */
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->seq = realloc(g->seq, g->cap * sizeof(*g->seq));
        g->text = realloc(g->text, g->cap * sizeof(*g->text));
        ck_assert(g->seq && g->text);
    }
    g->seq[g->n] = seq;
    g->text[g->n] = strndup(line, len);
    ck_assert_uint_eq(strlen(g->text[g->n]), len);
    g->n++;
    return 0;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->text[i]);
    free(g->seq);
    free(g->text);
    memset(g, 0, sizeof(*g));
}

/* Reads from `from` within `size` bytes, stopping after stop_after lines (0: all). Returns the
 * engine's result; the lines are in *g. */
static int read_lines(const char *id, uint64_t size, uint64_t from, size_t stop_after,
                      struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->stop_after = stop_after;
    return logfile_read(lf, id, size, from, collect, g);
}

static void assert_read_is(const char *id, uint64_t size, uint64_t from, size_t n,
                           const char *const *want)
{
    struct got g;
    ck_assert_int_eq(read_lines(id, size, from, 0, &g), 0);
    ck_assert_uint_eq(g.n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(g.seq[i], from + i);
        ck_assert_str_eq(g.text[i], want[i]);
    }
    got_free(&g);
}

/* ---- Large logs: line seq is "L<seq>:" and letters, 0 to 300 bytes long in all ---- */

static size_t make_line(uint64_t seq, char *buf, size_t cap)
{
    size_t len = (size_t)((seq * 7919) % 301);
    int head = snprintf(buf, cap, "L%llu:", (unsigned long long)seq);
    ck_assert(head > 0 && (size_t)head < cap && len < cap);
    if (len < (size_t)head)
        len = (size_t)head;
    memset(buf + head, 'a' + (int)(seq % 26), len - (size_t)head);
    buf[len] = '\0';
    return len;
}

/* Appends lines first..last (made by make_line) and commits. */
static void append_made(const char *id, uint64_t *size, uint64_t first, uint64_t last)
{
    enum { BATCH = 512 };
    static char bufs[BATCH][320];
    const char *ptrs[BATCH];
    size_t lens[BATCH];
    for (uint64_t seq = first; seq <= last;) {
        size_t n = 0;
        for (; n < BATCH && seq <= last; n++, seq++) {
            lens[n] = make_line(seq, bufs[n], sizeof(bufs[n]));
            ptrs[n] = bufs[n];
        }
        uint64_t out;
        ck_assert_int_eq(logfile_append(lf, id, *size, ptrs, lens, n, &out), 0);
        *size = out;
    }
    commit();
}

/* Checks that g holds lines from..from + g->n - 1, as make_line makes them. */
static void assert_made(const struct got *g, uint64_t from)
{
    char want[320];
    for (size_t i = 0; i < g->n; i++) {
        ck_assert_uint_eq(g->seq[i], from + i);
        make_line(from + i, want, sizeof(want));
        ck_assert_str_eq(g->text[i], want);
    }
}

/* Reads lines from..last, the log's last line, in chunks of `chunk` lines, each chunk a new read
 * that starts where the previous one stopped (as a ReadLogs reader does), and checks every line. */
static void read_in_chunks(const char *id, uint64_t size, uint64_t from, uint64_t last,
                           size_t chunk)
{
    while (from <= last) {
        struct got g;
        int rc = read_lines(id, size, from, chunk, &g);
        ck_assert_int_eq(rc, from + g.n <= last ? 7 : 0);
        ck_assert_uint_gt(g.n, 0);
        assert_made(&g, from);
        from += g.n;
        got_free(&g);
    }
}

/* ---- Open ---- */

START_TEST(test_open_creates_the_directory_and_refuses_bad_arguments)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/logs", tmp_root);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    engine_reopen(2); /* an existing directory is fine */

    struct logfile *other = NULL;
    ck_assert_int_eq(logfile_open(tmp_root, "logs", 0, &other), -EINVAL);
    snprintf(path, sizeof(path), "%s/missing", tmp_root);
    ck_assert_int_eq(logfile_open(path, "logs", 2, &other), -ENOENT);
    ck_assert_ptr_null(other);
}
END_TEST

/* ---- Append, commit, rollback, undo ---- */

START_TEST(test_append_writes_lines_after_the_committed_size)
{
    uint64_t size = 0;
    const char *first[] = {"one", "two\nhalves", ""};
    ck_assert_int_eq(append(ID_A, &size, 3, first), 0);
    ck_assert_uint_eq(size, 4 + 11 + 1);
    commit();
    const char *more[] = {"three"};
    ck_assert_int_eq(append(ID_A, &size, 1, more), 0);
    commit();
    assert_file_is(ID_A, "one\ntwo halves\n\nthree\n");
    const char *want[] = {"one", "two halves", "", "three"};
    assert_read_is(ID_A, size, 1, 4, want);
    assert_read_is(ID_A, size, 3, 2, want + 2);
    assert_read_is(ID_A, size, 5, 0, NULL);
    assert_read_is(ID_B, 0, 1, 0, NULL); /* nothing committed: no file needed */
}
END_TEST

START_TEST(test_rollback_cuts_every_file_written_since_the_commit)
{
    uint64_t a = 0, b = 0;
    const char *kept[] = {"kept"};
    ck_assert_int_eq(append(ID_A, &a, 1, kept), 0);
    commit();
    uint64_t a_committed = a;
    const char *lost[] = {"lost 1", "lost 2"};
    ck_assert_int_eq(append(ID_A, &a, 2, lost), 0);
    ck_assert_int_eq(append(ID_B, &b, 2, lost), 0);
    ck_assert_int_eq(append(ID_A, &a, 1, lost), 0); /* twice in one group */
    logfile_rollback(lf);
    ck_assert_int_eq(file_size(ID_A), (long long)a_committed);
    ck_assert_int_eq(file_size(ID_B), 0);

    /* The next group starts again from the committed sizes. */
    a = a_committed;
    b = 0;
    const char *again[] = {"again"};
    ck_assert_int_eq(append(ID_A, &a, 1, again), 0);
    ck_assert_int_eq(append(ID_B, &b, 1, again), 0);
    commit();
    assert_file_is(ID_A, "kept\nagain\n");
    assert_file_is(ID_B, "again\n");
}
END_TEST

START_TEST(test_undo_cuts_one_file_and_leaves_the_others_to_the_group)
{
    uint64_t a = 0, b = 0;
    const char *l[] = {"a1"};
    ck_assert_int_eq(append(ID_A, &a, 1, l), 0);
    ck_assert_int_eq(append(ID_B, &b, 1, l), 0);
    uint64_t before = a;
    const char *undone[] = {"undone"};
    ck_assert_int_eq(append(ID_A, &a, 1, undone), 0);
    logfile_undo(lf, ID_A, before);
    a = before;
    commit();
    assert_file_is(ID_A, "a1\n");
    assert_file_is(ID_B, "a1\n");
    /* Undone bytes are gone, so the next append continues at the size undone to. */
    const char *next[] = {"a2"};
    ck_assert_int_eq(append(ID_A, &a, 1, next), 0);
    commit();
    assert_file_is(ID_A, "a1\na2\n");
}
END_TEST

/* ---- Committed size on open ---- */

START_TEST(test_reopen_cuts_bytes_beyond_the_committed_size_before_appending)
{
    uint64_t size = 0;
    const char *one[] = {"one"};
    ck_assert_int_eq(append(ID_A, &size, 1, one), 0);
    commit();
    uint64_t committed = size;
    /* What a crash leaves: a written but uncommitted line, and half of another. */
    const char *two[] = {"two"};
    ck_assert_int_eq(append(ID_A, &size, 1, two), 0);
    engine_reopen(2);
    poke(ID_A, (uint64_t)file_size(ID_A), "hal", 3);
    ck_assert_int_eq(file_size(ID_A), 11);

    assert_read_is(ID_A, committed, 1, 1, one);
    ck_assert_int_eq(file_size(ID_A), 11); /* reading changes nothing */
    size = committed;
    const char *three[] = {"three"};
    ck_assert_int_eq(append(ID_A, &size, 1, three), 0);
    commit();
    assert_file_is(ID_A, "one\nthree\n");
}
END_TEST

START_TEST(test_a_file_that_lost_committed_bytes_is_refused)
{
    uint64_t size = 0;
    const char *l[] = {"one", "two"};
    ck_assert_int_eq(append(ID_A, &size, 2, l), 0);
    commit();
    engine_reopen(2);
    char path[256];
    log_path(ID_A, path, sizeof(path));
    ck_assert_int_eq(truncate(path, 4), 0);
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, size, 1, 0, &g), -EIO);
    got_free(&g);
    uint64_t out = size;
    ck_assert_int_eq(append(ID_A, &out, 1, l), -EIO);
    ck_assert_int_eq(file_size(ID_A), 4);                   /* not grown back, not cut */
    ck_assert_int_eq(read_lines(ID_C, 10, 1, 0, &g), -EIO); /* no file at all */
    got_free(&g);
}
END_TEST

/* ---- The fd cache ---- */

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

START_TEST(test_at_most_max_open_files_stay_open_and_every_one_commits)
{
    static const char *ids[] = {ID_A, ID_B, ID_C, "0000000000000000000000dd",
                                "0000000000000000000000ee"};
    uint64_t sizes[5] = {0};
    int before = open_fds();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5; i++) {
            char line[32];
            snprintf(line, sizeof(line), "task %d round %d", i, round);
            const char *l[] = {line};
            ck_assert_int_eq(append(ids[i], &sizes[i], 1, l), 0);
            ck_assert_int_le(open_fds(), before + 2);
        }
    }
    commit();
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof(want), "task %d round 0\ntask %d round 1\n", i, i);
        assert_file_is(ids[i], want);
    }
}
END_TEST

START_TEST(test_a_file_closed_early_is_cut_back_when_reopened)
{
    engine_reopen(1);
    uint64_t a = 0, b = 0;
    const char *kept[] = {"kept"};
    ck_assert_int_eq(append(ID_A, &a, 1, kept), 0);
    commit();
    uint64_t a_committed = a;
    /* Writing B closes A, which still holds uncommitted bytes; the rollback cannot reach them. */
    const char *lost[] = {"lost"};
    ck_assert_int_eq(append(ID_A, &a, 1, lost), 0);
    ck_assert_int_eq(append(ID_B, &b, 1, lost), 0);
    logfile_rollback(lf);
    ck_assert_int_eq(file_size(ID_B), 0);
    ck_assert_int_eq(file_size(ID_A), (long long)a);
    assert_read_is(ID_A, a_committed, 1, 1, kept);

    a = a_committed;
    const char *next[] = {"next"};
    ck_assert_int_eq(append(ID_A, &a, 1, next), 0);
    commit();
    assert_file_is(ID_A, "kept\nnext\n");
}
END_TEST

/* ---- Reading ---- */

START_TEST(test_reads_never_show_bytes_beyond_the_given_size)
{
    uint64_t size = 0;
    const char *l[] = {"one", "two", "three"};
    ck_assert_int_eq(append(ID_A, &size, 3, l), 0);
    commit();
    uint64_t committed = size;
    const char *pending[] = {"pending"};
    ck_assert_int_eq(append(ID_A, &size, 1, pending), 0);
    assert_read_is(ID_A, committed, 1, 3, l);
    logfile_rollback(lf);
    /* A smaller size than a previous read's, after the index has seen the whole log. */
    assert_read_is(ID_A, committed, 1, 3, l);
    assert_read_is(ID_A, 8, 1, 2, l);
    assert_read_is(ID_A, 8, 3, 0, NULL);
}
END_TEST

START_TEST(test_a_line_cut_at_chunk_borders_is_read_whole)
{
    /* Line 1 ends 5 bytes before the first chunk border, line 2 spans it, line 3 spans several. */
    size_t lens[] = {LOGFILE_READ_CHUNK - 6, 20, 3 * LOGFILE_READ_CHUNK + 17, 4};
    char *bufs[4];
    for (int i = 0; i < 4; i++) {
        bufs[i] = malloc(lens[i] + 1);
        memset(bufs[i], 'a' + i, lens[i]);
        bufs[i][lens[i]] = '\0';
    }
    uint64_t size = 0, out;
    ck_assert_int_eq(logfile_append(lf, ID_A, size, (const char *const *)bufs, lens, 4, &out), 0);
    size = out;
    commit();
    for (int pass = 0; pass < 2; pass++) { /* cold, then with the index built */
        for (uint64_t from = 1; from <= 4; from++)
            assert_read_is(ID_A, size, from, 5 - from, (const char *const *)bufs + from - 1);
    }
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
}
END_TEST

START_TEST(test_reading_from_the_middle_of_a_large_log)
{
    enum { LINES = 40000 };
    uint64_t size = 0;
    append_made(ID_A, &size, 1, LINES);
    ck_assert_uint_gt(size, 40 * LOGFILE_MARK_STEP);

    /* Cold: a read from the middle. */
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, size, 25000, 10, &g), 7);
    ck_assert_uint_eq(g.n, 10);
    assert_made(&g, 25000);
    got_free(&g);

    /* The rest in chunks, as a reader does; then from anywhere, with the index built. */
    read_in_chunks(ID_A, size, 25010, LINES, 1000);
    read_in_chunks(ID_A, size, 1, LINES, 3000);
    for (uint64_t from = 1; from <= LINES; from += 3947) {
        ck_assert_int_eq(read_lines(ID_A, size, from, 3, &g), 7);
        assert_made(&g, from);
        got_free(&g);
    }
    ck_assert_int_eq(read_lines(ID_A, size, LINES, 0, &g), 0);
    ck_assert_uint_eq(g.n, 1);
    assert_made(&g, LINES);
    got_free(&g);

    /* More lines committed later: a follower asks from where it stopped. */
    uint64_t old = size;
    append_made(ID_A, &size, LINES + 1, LINES + 700);
    ck_assert_uint_gt(size, old);
    read_in_chunks(ID_A, size, LINES + 1, LINES + 700, 100);
}
END_TEST

/*
 * White box: blanks the newlines of a log's first LOGFILE_MARK_STEP bytes behind the engine's
 * back. A read that scans from byte 0 then numbers every later line wrongly; one that starts from
 * the index does not.
 */
static void blank_head(const char *id)
{
    char *head = file_text(id);
    for (size_t i = 0; i < LOGFILE_MARK_STEP; i++)
        if (head[i] == '\n')
            head[i] = ' ';
    poke(id, 0, head, LOGFILE_MARK_STEP);
    free(head);
}

/* Reads the last 51 lines of a log of `lines` lines and checks them. */
static void assert_tail_right(const char *id, uint64_t size, uint64_t lines)
{
    struct got g;
    ck_assert_int_eq(read_lines(id, size, lines - 50, 0, &g), 0);
    ck_assert_uint_eq(g.n, 51);
    assert_made(&g, lines - 50);
    got_free(&g);
}

START_TEST(test_a_read_starts_from_the_index_not_from_byte_0)
{
    enum { LINES = 20000 };
    uint64_t size = 0;
    append_made(ID_A, &size, 1, LINES);
    read_in_chunks(ID_A, size, 1, LINES, 5000);
    blank_head(ID_A);
    assert_tail_right(ID_A, size, LINES);
    read_in_chunks(ID_A, size, 5000, LINES, 10);

    /* The same read on a fresh engine, which has no index and scans from byte 0. */
    engine_reopen(2);
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, size, LINES - 50, 0, &g), 0);
    ck_assert_uint_lt(g.n, 51);
    got_free(&g);
}
END_TEST

/* A store reads logs while its group writes others: those reads build the index all the same. */
START_TEST(test_reads_of_a_committed_log_teach_the_index_while_another_is_written)
{
    enum { LINES = 20000 };
    uint64_t a = 0, b = 0;
    append_made(ID_A, &a, 1, LINES);
    const char *l[] = {"pending"};
    ck_assert_int_eq(append(ID_B, &b, 1, l), 0);
    read_in_chunks(ID_A, a, 1, LINES, 5000);
    blank_head(ID_A);
    assert_tail_right(ID_A, a, LINES);
    logfile_rollback(lf);
}
END_TEST

/* Lines read while a write is pending (a store reading inside its open group) may be rolled back
 * and replaced by lines of other lengths: the index must not have learned where they start. */
START_TEST(test_reads_of_uncommitted_lines_teach_the_index_nothing)
{
    uint64_t size = 0;
    append_made(ID_A, &size, 1, 100);
    uint64_t committed = size;
    static char big[2 * LOGFILE_MARK_STEP];
    memset(big, 'x', sizeof(big) - 1);
    const char *lost[] = {big, "lost 1", "lost 2"};
    ck_assert_int_eq(append(ID_A, &size, 3, lost), 0);
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, size, 1, 0, &g), 0);
    ck_assert_uint_eq(g.n, 103);
    got_free(&g);
    logfile_rollback(lf);

    size = committed;
    append_made(ID_A, &size, 101, 3000);
    ck_assert_int_eq(read_lines(ID_A, size, 102, 5, &g), 7);
    assert_made(&g, 102);
    got_free(&g);
    read_in_chunks(ID_A, size, 2500, 3000, 100);
}
END_TEST

/* When a file written since the last commit had to be closed early, the engine no longer knows
 * where that file's writes began: no read teaches the index anything until the next commit. */
START_TEST(test_after_a_written_file_is_closed_early_reads_teach_the_index_nothing)
{
    engine_reopen(1);
    uint64_t a = 0, b = 0;
    append_made(ID_A, &a, 1, 100);
    uint64_t committed = a;
    static char big[2 * LOGFILE_MARK_STEP];
    memset(big, 'x', sizeof(big) - 1);
    const char *lost[] = {big, "lost 1", "lost 2"};
    ck_assert_int_eq(append(ID_A, &a, 3, lost), 0);
    const char *l[] = {"b"};
    ck_assert_int_eq(append(ID_B, &b, 1, l), 0); /* closes A */
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, a, 1, 0, &g), 0);
    ck_assert_uint_eq(g.n, 103);
    got_free(&g);
    logfile_rollback(lf);

    a = committed;
    append_made(ID_A, &a, 101, 3000);
    ck_assert_int_eq(read_lines(ID_A, a, 102, 5, &g), 7);
    assert_made(&g, 102);
    got_free(&g);
}
END_TEST

START_TEST(test_more_logs_than_indexes_all_read_right)
{
    enum { LOGS = LOGFILE_INDEX_CACHE + 8 };
    uint64_t sizes[LOGS] = {0};
    char ids[LOGS][25];
    for (int i = 0; i < LOGS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%024x", i + 1);
        append_made(ids[i], &sizes[i], 1, 700);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < LOGS; i++)
            read_in_chunks(ids[i], sizes[i], 1 + (uint64_t)(i * 7 + round * 300) % 700, 700, 250);
}
END_TEST

/* How many pages of [from, to) of the task's file are in the page cache. */
static size_t cached_pages(const char *id, uint64_t from, uint64_t to)
{
    char path[256];
    log_path(id, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(from % page, 0);
    size_t len = (size_t)(to - from), pages = (len + page - 1) / page;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)from);
    ck_assert_ptr_ne(map, MAP_FAILED);
    unsigned char *vec = malloc(pages);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore(map, len, vec), 0);
    size_t n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    free(vec);
    munmap(map, len);
    close(fd);
    return n;
}

/* Appends `mib` lines of exactly 1 MiB each (with their newline). */
static void append_mib(const char *id, uint64_t *size, size_t mib)
{
    static char line[1 << 20];
    memset(line, 'x', sizeof(line) - 1);
    const char *ptr = line;
    size_t len = sizeof(line) - 1;
    for (size_t i = 0; i < mib; i++) {
        uint64_t out;
        ck_assert_int_eq(logfile_append(lf, id, *size, &ptr, &len, 1, &out), 0);
        *size = out;
    }
}

START_TEST(test_a_commit_leaves_only_the_tail_of_a_log_in_the_page_cache)
{
    struct statfs fs;
    ck_assert_int_eq(statfs(tmp_root, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC)
        return; /* the page cache is the file itself there: nothing can be dropped */
    const uint64_t tail = LOGFILE_CACHED_TAIL, mib = 1 << 20;
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t size = 0;
    append_mib(ID_A, &size, 2 * tail / mib);
    ck_assert_uint_eq(size, 2 * tail);
    /* Written, not committed: all of it is still in the page cache. */
    ck_assert_uint_eq(cached_pages(ID_A, 0, size), size / page);
    commit();
    ck_assert_uint_eq(cached_pages(ID_A, 0, size - tail), 0);
    ck_assert_uint_eq(cached_pages(ID_A, size - tail, size), tail / page);

    /* The next commit drops what the tail left behind, and the file still holds every line. */
    append_mib(ID_A, &size, 3);
    commit();
    ck_assert_uint_eq(cached_pages(ID_A, 0, size - tail), 0);
    ck_assert_uint_eq(cached_pages(ID_A, size - tail, size), tail / page);
    ck_assert_int_eq(file_size(ID_A), (long long)size);
    struct got g;
    ck_assert_int_eq(read_lines(ID_A, size, 0, 0, &g), 0);
    ck_assert_uint_eq(g.n, size / mib);
    for (size_t i = 0; i < g.n; i++)
        ck_assert_uint_eq(strspn(g.text[i], "x"), mib - 1);
    got_free(&g);
}
END_TEST

static Suite *logfile_suite(void)
{
    Suite *s = suite_create("logfile");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_creates_the_directory_and_refuses_bad_arguments);
    tcase_add_test(tc, test_append_writes_lines_after_the_committed_size);
    tcase_add_test(tc, test_rollback_cuts_every_file_written_since_the_commit);
    tcase_add_test(tc, test_undo_cuts_one_file_and_leaves_the_others_to_the_group);
    tcase_add_test(tc, test_reopen_cuts_bytes_beyond_the_committed_size_before_appending);
    tcase_add_test(tc, test_a_file_that_lost_committed_bytes_is_refused);
    tcase_add_test(tc, test_at_most_max_open_files_stay_open_and_every_one_commits);
    tcase_add_test(tc, test_a_file_closed_early_is_cut_back_when_reopened);
    tcase_add_test(tc, test_a_commit_leaves_only_the_tail_of_a_log_in_the_page_cache);
    suite_add_tcase(s, tc);

    tc = tcase_create("reading");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reads_never_show_bytes_beyond_the_given_size);
    tcase_add_test(tc, test_a_line_cut_at_chunk_borders_is_read_whole);
    tcase_add_test(tc, test_reading_from_the_middle_of_a_large_log);
    tcase_add_test(tc, test_a_read_starts_from_the_index_not_from_byte_0);
    tcase_add_test(tc, test_reads_of_uncommitted_lines_teach_the_index_nothing);
    tcase_add_test(tc, test_reads_of_a_committed_log_teach_the_index_while_another_is_written);
    tcase_add_test(tc, test_after_a_written_file_is_closed_early_reads_teach_the_index_nothing);
    tcase_add_test(tc, test_more_logs_than_indexes_all_read_right);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = logfile_suite};

/*
 * Log reading through the store, timed. Writes a log of MB megabytes (10^6 bytes, 100-byte lines)
 * to one task of a fresh store in DATA_DIR, then reads it:
 *   - all of it, as a ReadLogs reader does (master/admin.c): about 1 MiB of lines per
 *     store_log_read, each call from the seq after the previous chunk;
 *   - its last 1,000 lines, after a fresh store_open and then once more.
 * It prints figures and never fails because something is slow; it exits 1 only when the store
 * fails or gives back other lines than it was given. It uses nothing but store.h, so the same
 * source builds against older commits: bench/logread.sh builds it for two and runs both.
 *
 *     logread DATA_DIR MB LABEL
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

#define LINE_LEN    99 /* + '\n' = 100 bytes a line */
#define APPEND_N    1000
#define GROUP_CALLS 40 /* 4 MB a group, about what one ingest segment commits */
#define CHUNK_BYTES (1u << 20)
#define TAIL_LINES  1000

struct clocks {
    double wall, cpu;
};

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct clocks clocks_now(void)
{
    return (struct clocks){seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID)};
}

static struct clocks clocks_since(struct clocks t0)
{
    struct clocks t1 = clocks_now();
    return (struct clocks){t1.wall - t0.wall, t1.cpu - t0.cpu};
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "logread: %s: %s\n", what, rc < 0 ? strerror(-rc) : "unexpected result");
    exit(1);
}

/* Line seq: its number in decimal, then letters up to LINE_LEN bytes. */
static void make_line(uint64_t seq, char *buf)
{
    int head = snprintf(buf, LINE_LEN, "%llu ", (unsigned long long)seq);
    memset(buf + head, 'a' + (int)(seq % 26), LINE_LEN - (size_t)head);
}

static void write_log(struct store *s, const char *id, uint64_t lines)
{
    static char bufs[APPEND_N][LINE_LEN];
    const char *ptrs[APPEND_N];
    size_t lens[APPEND_N];
    uint64_t seq = 1;
    while (seq <= lines) {
        int rc = store_begin(s);
        for (int call = 0; rc == 0 && call < GROUP_CALLS && seq <= lines; call++) {
            size_t n = 0;
            for (; n < APPEND_N && seq + n <= lines; n++) {
                make_line(seq + n, bufs[n]);
                ptrs[n] = bufs[n];
                lens[n] = LINE_LEN;
            }
            size_t acc = 0;
            rc = store_log_append(s, id, ptrs, lens, n, seq, &acc);
            if (rc == 0 && acc != n)
                rc = -EIO;
            seq += n;
        }
        if (rc < 0)
            die("appending", rc);
        if ((rc = store_commit(s)) < 0)
            die("committing", rc);
    }
}

/* One chunk of a reader, filled the way admin.c's add_line fills one. */
struct chunk {
    size_t n, bytes;
    uint64_t next_seq, lines;
    bool bad;
};

/* Every line must have the next number and the right size; one in 1,024 is compared whole, so that
 * checking costs little next to reading. */
static bool line_ok(const struct chunk *c, uint64_t seq, const char *line, size_t len)
{
    if (seq != c->next_seq || len != LINE_LEN)
        return false;
    if (seq % 1024)
        return true;
    char want[LINE_LEN];
    make_line(seq, want);
    return memcmp(line, want, LINE_LEN) == 0;
}

static int take_line(void *ctx, uint64_t seq, const char *line, size_t len)
{
    struct chunk *c = ctx;
    if (c->n && c->bytes + len > CHUNK_BYTES)
        return 1; /* full: the rest goes in the next chunk */
    if (!line_ok(c, seq, line, len))
        c->bad = true;
    c->n++;
    c->bytes += len + 8;
    c->next_seq = seq + 1;
    c->lines++;
    return 0;
}

/* Reads lines from..last in chunks; returns the number of store_log_read calls. */
static unsigned read_from(struct store *s, const char *id, uint64_t from, uint64_t last)
{
    struct chunk c = {.next_seq = from};
    unsigned calls = 0;
    int rc;
    do {
        c.n = c.bytes = 0;
        rc = store_log_read(s, id, c.next_seq, take_line, &c);
        calls++;
        if (rc < 0)
            die("reading", rc);
    } while (rc > 0);
    if (c.bad || c.lines != last - from + 1)
        die("reading back other lines than were written", 0);
    return calls;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: logread DATA_DIR MB LABEL\n");
        return 2;
    }
    const char *dir = argv[1], *label = argv[3];
    uint64_t lines = strtoull(argv[2], NULL, 10) * 1000000 / (LINE_LEN + 1);
    struct store *s;
    int rc = store_open(dir, &s);
    if (rc < 0)
        die("opening the store", rc);
    char id[TASK_ID_LEN + 1];
    struct task_new t = {.name = "logread", .cmd = "true"};
    if ((rc = store_task_create(s, &t, 1700000000000LL, id)) < 0)
        die("creating the task", rc);

    struct clocks t0 = clocks_now();
    write_log(s, id, lines);
    struct clocks w = clocks_since(t0);
    printf("%s: wrote %llu lines (%.0f MB) in %.2f s\n", label, (unsigned long long)lines,
           (double)lines * (LINE_LEN + 1) / 1e6, w.wall);

    t0 = clocks_now();
    unsigned calls = read_from(s, id, 1, lines);
    struct clocks r = clocks_since(t0);
    printf("%s: read all, 1 MiB chunks: %u calls, %.3f s CPU, %.3f s wall\n", label, calls, r.cpu,
           r.wall);

    store_close(s);
    if ((rc = store_open(dir, &s)) < 0)
        die("reopening the store", rc);
    for (int pass = 0; pass < 2; pass++) {
        t0 = clocks_now();
        read_from(s, id, lines - TAIL_LINES + 1, lines);
        r = clocks_since(t0);
        printf("%s: last %d lines, %s: %.3f ms CPU, %.3f ms wall\n", label, TAIL_LINES,
               pass ? "again" : "after a fresh open", r.cpu * 1e3, r.wall * 1e3);
    }
    store_close(s);
    return 0;
}

/*
 * The PostgreSQL backend's task logs and result items (store/store_pg.h). Logs are rows, so that
 * any master serves any task's log: task_logs holds one row per stored batch (the lines from
 * first_seq on, n_lines of them, each ending in '\n'), and the task row's log_lines and log_bytes
 * change in the same transaction. Items are rows of items, one per seq.
 *
 * Two masters may receive the same batch (a worker that reconnects to another master resends
 * what was not acknowledged): every append first locks the task row, so that the second waits
 * for the first, then reads the count the first one committed and skips what is stored by the
 * seq rule (task_seq_window), as one master does with a resent batch.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
#include "runtime/log.h"
#include "runtime/utf8.h"
#include "store/store_pg.h"

/* A log row holds at most this many bytes (one longer line is a row of its own): a reader holds
 * LOG_READ_ROWS of them at a time. */
#define LOG_ROW_MAX   (256 * 1024)
#define LOG_READ_ROWS 16

/* Items are read this many at a time. */
#define ITEMS_READ_ROWS 1000

#define SQL_NUMBER_(n) #n
#define SQL_NUMBER(n)  SQL_NUMBER_(n)

/* ---- Appending ---- */

/* The counters of task id ($1), its row locked until the transaction ends. */
static const char sql_lock_counts[] =
    "SELECT log_lines, data_items FROM tasks WHERE id = $1 FOR UPDATE";

enum counter { LOG_LINES, DATA_ITEMS };

static int lock_count(struct pg_store *p, const char *id, enum counter which, uint64_t *out)
{
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    int rc = 0;
    PGresult *res = pg_query_row(p, "locking task", id, sql_lock_counts, &pp, &rc);
    if (!res)
        return rc;
    *out = (uint64_t)pg_int(res, 0, which == LOG_LINES ? 0 : 1);
    PQclear(res);
    return 0;
}

static const char sql_log_insert[] =
    "INSERT INTO task_logs (task_id, first_seq, n_lines, data) VALUES ($1, $2, $3, $4::bytea)";
/* The last row of a batch, with the task's counters. */
static const char sql_log_insert_last[] =
    "WITH batch AS (INSERT INTO task_logs (task_id, first_seq, n_lines, data)"
    " VALUES ($1, $2, $3, $4::bytea))"
    " UPDATE tasks SET log_lines = $2 + $3 - 1, log_bytes = log_bytes + $5 WHERE id = $1";

/* Copies lines into buf, each followed by '\n' (one inside a line becomes a space). */
static size_t join_lines(char *buf, const char *const *lines, const size_t *lens, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char *line = buf + off;
        if (lens[i])
            memcpy(line, lines[i], lens[i]);
        for (char *nl = memchr(line, '\n', lens[i]); nl;
             nl = memchr(nl + 1, '\n', lens[i] - (size_t)(nl + 1 - line)))
            *nl = ' ';
        off += lens[i];
        buf[off++] = '\n';
    }
    return off;
}

/* How many of the n lines from lines go into one row (at least one). */
static size_t row_lines(const size_t *lens, size_t n, size_t *bytes)
{
    size_t k = 0, sum = 0;
    while (k < n && (k == 0 || sum + lens[k] + 1 <= LOG_ROW_MAX))
        sum += lens[k++] + 1;
    *bytes = sum;
    return k;
}

/* Stores lines [0, n) as seqs from first, in rows of at most LOG_ROW_MAX bytes, and counts them
 * into the task row with the last one. Inside an operation. */
static int log_rows(struct pg_store *p, const char *id, const char *const *lines,
                    const size_t *lens, size_t n, uint64_t first)
{
    size_t k, bytes, cap = 0;
    for (size_t done = 0; done < n; done += k) {
        k = row_lines(lens + done, n - done, &bytes);
        if (bytes > cap)
            cap = bytes;
    }
    char *buf = malloc(cap);
    if (!buf) {
        log_error("store: out of memory appending the log of task %s", id);
        return -ENOMEM;
    }
    uint64_t total = 0;
    int rc = 0;
    for (size_t done = 0; rc == 0 && done < n; done += k) {
        k = row_lines(lens + done, n - done, &bytes);
        join_lines(buf, lines + done, lens + done, k);
        total += bytes;
        bool last = done + k == n;
        struct pg_params pp;
        pg_params_init(&pp);
        pg_param_text(&pp, id);
        pg_param_int(&pp, (int64_t)(first + done));
        pg_param_int(&pp, (int64_t)k);
        pg_param_bytes(&pp, buf, bytes);
        if (last)
            pg_param_int(&pp, (int64_t)total);
        int64_t r = pg_exec(p, "appending the log of task", id,
                            last ? sql_log_insert_last : sql_log_insert, &pp);
        rc = r < 0 ? (int)r : 0;
    }
    free(buf);
    return rc;
}

static int log_append_op(struct pg_store *p, const char *id, const char *const *lines,
                         const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] >= INT_MAX / 2)
            return -EINVAL;
    uint64_t stored;
    int rc = lock_count(p, id, LOG_LINES, &stored);
    if (rc < 0)
        return rc;
    size_t skip;
    rc = task_seq_window(stored, first_seq, n, &skip);
    if (rc < 0 || skip == n)
        return rc;
    rc = log_rows(p, id, lines + skip, lens + skip, n - skip, stored + 1);
    if (rc == 0)
        *accepted = n - skip;
    return rc;
}

/* All the new items in one statement: their texts concatenated ($3), cut at the offsets ($4) and
 * lengths ($5) given, numbered from $2. */
static const char sql_items_insert[] =
    "WITH added AS (INSERT INTO items (task_id, seq, data)"
    " SELECT $1, $2 + u.i - 1, convert_from(substring($3::bytea FROM u.off + 1 FOR u.len), 'UTF8')"
    " FROM unnest($4::int[], $5::int[]) WITH ORDINALITY AS u(off, len, i))"
    " UPDATE tasks SET data_items = $2 + cardinality($5::int[]) - 1 WHERE id = $1";

/* An item is a JSON text: stored as TEXT, it must be UTF-8 without NUL, which is checked before
 * anything is written (a refused statement would break an open group). */
static bool item_storable(const char *item, size_t len)
{
    return len < INT_MAX / 2 && (len == 0 || (item && !memchr(item, '\0', len))) &&
           utf8_valid(item, len);
}

/* Writes "{a,b,...}" of the n numbers into out (n * 12 + 3 bytes). */
static void int_array(char *out, const int *v, size_t n)
{
    char *w = out;
    *w++ = '{';
    for (size_t i = 0; i < n; i++)
        w += sprintf(w, i ? ",%d" : "%d", v[i]);
    *w++ = '}';
    *w = '\0';
}

static int items_rows(struct pg_store *p, const char *id, const char *const *items,
                      const size_t *lens, size_t n, uint64_t first)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    if (total >= INT_MAX / 2)
        return -EINVAL;
    char *data = malloc(total + 1);
    int *offs = malloc(2 * n * sizeof(int));
    char *offs_text = malloc(n * 12 + 3), *lens_text = malloc(n * 12 + 3);
    int rc = 0;
    if (!data || !offs || !offs_text || !lens_text) {
        log_error("store: out of memory appending items of task %s", id);
        rc = -ENOMEM;
        goto out;
    }
    int *item_lens = offs + n;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i])
            memcpy(data + off, items[i], lens[i]);
        offs[i] = (int)off;
        item_lens[i] = (int)lens[i];
        off += lens[i];
    }
    int_array(offs_text, offs, n);
    int_array(lens_text, item_lens, n);
    struct pg_params pp;
    pg_params_init(&pp);
    pg_param_text(&pp, id);
    pg_param_int(&pp, (int64_t)first);
    pg_param_bytes(&pp, data, total);
    pg_param_text(&pp, offs_text);
    pg_param_text(&pp, lens_text);
    int64_t r = pg_exec(p, "storing items of task", id, sql_items_insert, &pp);
    rc = r < 0 ? (int)r : 0;
out:
    free(data);
    free(offs);
    free(offs_text);
    free(lens_text);
    return rc;
}

static int items_append_op(struct pg_store *p, const char *id, const char *const *items,
                           const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    uint64_t stored;
    int rc = lock_count(p, id, DATA_ITEMS, &stored);
    if (rc < 0)
        return rc;
    size_t skip;
    rc = task_seq_window(stored, first_seq, n, &skip);
    if (rc < 0 || skip == n)
        return rc;
    for (size_t i = skip; i < n; i++)
        if (!item_storable(items[i], lens[i]))
            return -EINVAL;
    rc = items_rows(p, id, items + skip, lens + skip, n - skip, stored + 1);
    if (rc == 0)
        *accepted = n - skip;
    return rc;
}

typedef int append_op_fn(struct pg_store *p, const char *id, const char *const *texts,
                         const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);

/* What log and item appends share: the operation (op) around the append. */
static int append(struct store *s, const char *fn, append_op_fn *op, const char *task_id,
                  const char *const *texts, const size_t *lens, size_t n, uint64_t first_seq,
                  size_t *accepted)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, fn);
    if (rc < 0)
        return rc;
    rc = pg_op_begin(p);
    if (rc < 0)
        return rc;
    rc = pg_op_end(p, op(p, task_id, texts, lens, n, first_seq, accepted));
    if (rc < 0)
        *accepted = 0;
    return rc;
}

int pg_log_append(struct store *s, const char *task_id, const char *const *lines,
                  const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    return append(s, __func__, log_append_op, task_id, lines, lens, n, first_seq, accepted);
}

int pg_items_append(struct store *s, const char *task_id, const char *const *items,
                    const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted)
{
    return append(s, __func__, items_append_op, task_id, items, lens, n, first_seq, accepted);
}

/* ---- Reading ---- */

/*
 * Up to LOG_READ_ROWS rows of the log of task $1 from the one holding line $2 on (found by the
 * key: the last row starting at or before it), joined to the task so that an unknown task reads
 * no row at all and a task without lines one row of NULLs. Committed rows only: a row and the
 * counters that include it commit together.
 */
static const char sql_log_read[] =
    "SELECT l.first_seq, l.n_lines, l.data FROM tasks t"
    " LEFT JOIN task_logs l ON l.task_id = t.id AND l.first_seq >= coalesce("
    " (SELECT max(first_seq) FROM task_logs WHERE task_id = $1 AND first_seq <= $2), 0)"
    " WHERE t.id = $1 ORDER BY l.first_seq LIMIT " SQL_NUMBER(LOG_READ_ROWS);

/* Calls cb for the lines of one row (first_seq, n_lines, data as hex text) from seq from on.
 * *next receives the seq after the row. */
static int log_row_lines(const PGresult *res, int row, uint64_t from, uint64_t *next,
                         int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len),
                         void *ctx)
{
    uint64_t seq = (uint64_t)pg_int(res, row, 0);
    uint64_t n = (uint64_t)pg_int(res, row, 1);
    size_t len;
    unsigned char *data = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 2), &len);
    if (!data) {
        log_error("store: out of memory reading a log");
        return -ENOMEM;
    }
    *next = seq + n;
    const char *p = (const char *)data, *end = p + len;
    int rc = 0;
    for (; rc == 0 && n > 0 && p < end; seq++, n--) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (seq >= from)
            rc = cb(ctx, seq, p, line);
        p += line + 1;
    }
    PQfreemem(data);
    return rc;
}

int pg_log_read(struct store *s, const char *task_id, uint64_t from_seq,
                int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    uint64_t from = from_seq == 0 ? 1 : from_seq > INT64_MAX ? INT64_MAX : from_seq;
    for (bool more = true; rc == 0 && more;) {
        struct pg_params pp;
        pg_params_init(&pp);
        pg_param_text(&pp, task_id);
        pg_param_int(&pp, (int64_t)from);
        PGresult *res = pg_query(p, "reading the log of task", task_id, sql_log_read, &pp, &rc);
        if (!res)
            return rc;
        int rows = PQntuples(res);
        if (rows == 0)
            rc = -ENOENT;
        more = rows == LOG_READ_ROWS;
        uint64_t next = from;
        p->streaming = true;
        for (int i = 0; rc == 0 && i < rows && !pg_is_null(res, i, 0); i++)
            rc = log_row_lines(res, i, from, &next, cb, ctx);
        p->streaming = false;
        PQclear(res);
        from = next;
    }
    return rc;
}

/* Up to ITEMS_READ_ROWS items of task $1 from seq $2 on, joined to the task as sql_log_read. */
static const char sql_items_read[] =
    "SELECT i.seq, i.data FROM tasks t"
    " LEFT JOIN items i ON i.task_id = t.id AND i.seq >= $2"
    " WHERE t.id = $1 ORDER BY i.seq LIMIT " SQL_NUMBER(ITEMS_READ_ROWS);

int pg_items_read(struct store *s, const char *task_id, uint64_t from_seq,
                  int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len), void *ctx)
{
    struct pg_store *p = pg_of(s);
    int rc = pg_enter(p, __func__);
    if (rc < 0)
        return rc;
    uint64_t from = from_seq > INT64_MAX ? INT64_MAX : from_seq;
    for (bool more = true; rc == 0 && more;) {
        struct pg_params pp;
        pg_params_init(&pp);
        pg_param_text(&pp, task_id);
        pg_param_int(&pp, (int64_t)from);
        PGresult *res = pg_query(p, "reading items of task", task_id, sql_items_read, &pp, &rc);
        if (!res)
            return rc;
        int rows = PQntuples(res);
        if (rows == 0)
            rc = -ENOENT;
        more = rows == ITEMS_READ_ROWS;
        p->streaming = true;
        for (int i = 0; rc == 0 && i < rows && !pg_is_null(res, i, 0); i++) {
            from = (uint64_t)pg_int(res, i, 0) + 1;
            rc = cb(ctx, from - 1, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
        }
        p->streaming = false;
        PQclear(res);
    }
    return rc;
}

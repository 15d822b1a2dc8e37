/*
 * Ingest: TaskService.Connect, the client stream that carries a task's log lines and result
 * items, stored with seq dedupe. Messages join the master's group commit (master/group.h); a
 * stream's final OK is sent only after the group holding the last of its data is durable. A
 * message past a gap waits while another stream of its connection and task is still read (a
 * worker's next segment may be read before the end of the previous one; see ingest.c).
 * Loop thread only; blocks on the store. Errors: 0 or a negative errno.
 */
#ifndef CRAWLAB_INGEST_H
#define CRAWLAB_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/jsonlines.h"
#include "rpc/server.h"

struct group;
struct ingest;
struct metrics;
struct store;

/* Stores into store, inside group's commits. */
int ingest_create(struct store *store, struct group *group, struct ingest **out);
/* The master stops: commits what is open (the streams that completes are answered OK) and ends
 * every other stream with UNAVAILABLE, now and as soon as one is opened: the worker sends the
 * rest to the master it reaches next, where seq stores it once. A stream left open would hold
 * the server's shutdown for its whole grace. */
void ingest_drain(struct ingest *in);
/* Drains (ingest_drain) and frees. NULL is accepted. */
void ingest_destroy(struct ingest *in);
void ingest_add_methods(struct ingest *in, struct rpc_server *s);
/* Counts the log lines, their bytes and the result items stored into m (which must outlive in). */
void ingest_set_metrics(struct ingest *in, struct metrics *m);

/* Group number n was committed (ok) or rolled back: the streams that waited for it are answered.
 * Whoever wires the group calls this from its group_on_commit listener. */
void ingest_committed(struct ingest *in, uint64_t n, bool ok);

/*
 * One Connect message's data, parsed for the store: entry i is ptrs[i], lens[i] bytes (a log line
 * holds no NUL byte; an item is its JSON text). Everything is owned by the batch,
 * except that log lines without escapes point into the data, which must outlive the batch.
 */
struct ingest_batch {
    struct jsonlines lines; /* INSERT_LOGS: the strings */
    struct json_t *root;    /* INSERT_DATA: the parsed array of objects */
    const char **ptrs;
    size_t *lens;
    char **owned; /* INSERT_DATA: each item re-serialised */
    size_t n;
};

/*
 * Parses len bytes of data: a JSON array of strings (log lines, read by jsonlines_parse without
 * building a tree) when !items, of objects (result items) when items. Items are re-serialised
 * compactly so that what is stored is valid JSON whatever spacing the worker used. A log line's
 * \u0000 becomes U+FFFD (see jsonlines_parse); an item's \u0000 in a string value is valid JSON
 * and stays, escaped as \u0000 in the stored text (jansson cannot hold one in an object key: such
 * an item is refused). An item's stored text is at most LIMIT_ITEM_MAX bytes, with fewer digits
 * for reals where that changes no value (jsontext_within). Returns the number of entries, -EINVAL
 * when the data is not what the code says, -EMSGSIZE when an item cannot be stored within that
 * bound, or -ENOMEM. Whatever it returns, release b with ingest_batch_free. Pure: no I/O, any
 * thread.
 */
int ingest_batch_parse(struct ingest_batch *b, const uint8_t *data, size_t len, bool items);
void ingest_batch_free(struct ingest_batch *b);

#endif

/*
 * The master's durable store: nodes, tasks with their status history, result items, and task logs.
 *
 * This header is the interface. store_sqlite.c implements it: rows and transactions on SQLite
 * (WAL, synchronous=FULL), task logs through the log engine (store/logfile.h), one append-only
 * file per task (<data_dir>/logs/<task_id>.log) whose committed size is the task row's log_bytes.
 * Another row backend would be another .c file implementing the same functions on the same engine.
 *
 * Threading: the store belongs to the master's loop thread. Every function must be called from
 * that one thread; none of them is thread-safe. Functions block on disk I/O (SQLite, write(2),
 * fdatasync), which is why the ingest path groups many changes into one store_begin/store_commit.
 *
 * Errors: functions return 0 or a negative errno unless stated otherwise. Database and file
 * failures are logged here, once, with the task id or node key. Input errors (-EINVAL for a bad
 * argument, -ENOENT for an unknown id, -ERANGE for a seq gap) are not logged: they are returned to
 * the caller, who reports them to whoever sent the input.
 *
 * Durability: outside store_begin/store_commit every mutating call is its own transaction and is
 * durable when it returns 0. Inside, nothing is durable until store_commit returns 0.
 *
 * Callbacks: iterating functions pass rows that are valid only during the callback. Functions
 * marked "collects first" read all rows before calling back, so the callback may call into the
 * store (for example to change a task's status). Functions marked "streams" call back while the
 * database is being read; a callback that calls into the store then gets -EBUSY. A non-zero
 * return from a callback stops the iteration and is returned as is.
 */
#ifndef CRAWLAB_STORE_H
#define CRAWLAB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/spider.h"
#include "core/task.h"
#include "core/tz.h"

struct store;

/* Strings stored in fixed fields are bounded by core/limits.h and checked by core/rules.h. */

/* How many task log files are kept open for appending (the engine's max_open). */
#define STORE_LOG_FD_CACHE 256

/* exit_code value meaning "no exit code" (not known yet, or the task never ran). */
#define STORE_NO_EXIT_CODE INT32_MIN

/*
 * Opens the store at location: a PostgreSQL connection URI (store_location_is_pg, core/rules.h)
 * or else a data directory for SQLite.
 *
 * SQLite: opens (creating if needed) the directory, its logs/ and its crawlab.db with its schema.
 * Takes an exclusive lock on the data dir: a second store_open on the same directory, in this
 * process or another, fails with -EBUSY.
 *
 * PostgreSQL: connects, then creates or migrates the schema under a lock that masters starting
 * together share (docs/postgres.md). -ECONNREFUSED when the server cannot be reached or refuses
 * the login, -ENOTSUP in a build without libpq. Several masters may open one database.
 *
 * Either: a database written by a newer schema is refused with -EPROTO. On success *out owns the
 * store; release it with store_close. Blocks.
 */
int store_open(const char *location, struct store **out);

/* Closes the store. An open store_begin group is rolled back (a warning is logged). NULL is
 * accepted. */
void store_close(struct store *s);

/*
 * Group commit. store_begin opens a transaction; the mutating calls that follow join it, each one
 * still atomic on its own (a call that fails leaves no trace, the group goes on). store_commit
 * fdatasync()s every log file written since store_begin and then commits the transaction, so that
 * when it returns 0 everything in the group is durable. If it fails, the whole group is rolled
 * back. store_rollback discards the group.
 * store_begin returns -EALREADY if a group is open; store_commit and store_rollback return
 * -EINVAL if none is. If the database aborted the transaction on its own (disk full, I/O error),
 * later calls in the group fail with -EIO and store_commit returns -EIO.
 */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
/* Whether the open group may hold a change: a mutating call ran since store_begin (whether or not
 * it changed a row). False after store_commit or store_rollback. A call that only read while this
 * was false saw nothing a rollback could take back. */
bool store_changed(const struct store *s);

/*
 * A PostgreSQL location that asks for TLS (sslmode=require, verify-ca or verify-full) is reached
 * through the binary's own TLS relay (net/pgtls.h, docs/postgres.md), as libpq is built without
 * TLS. store_pg_tls_split reads location with libpq's parser: when it asks for TLS, tls->wanted is
 * set, tls gets the relay's target (the one host, its port, 5432 by default, and the
 * sslrootcert, sslcert and sslkey files), and local (local_cap bytes) gets the location to open
 * instead: the same parameters without the TLS ones, through the relay's socket in socket_dir.
 * Otherwise tls->wanted is false and local is left alone. -EINVAL for a location libpq cannot
 * parse, several hosts or a socket directory with TLS, -ENAMETOOLONG. Built with libpq only.
 */
struct store_pg_tls {
    bool wanted;
    char host[256];
    int port;
    char ca_file[1024], cert_file[1024], key_file[1024]; /* "" = not given */
};
int store_pg_tls_split(const char *location, const char *socket_dir, struct store_pg_tls *tls,
                       char *local, size_t local_cap);

/* ---- Nodes ---- */

/* Node statuses, as the protocol names them. */
#define STORE_NODE_ONLINE  "online"
#define STORE_NODE_OFFLINE "offline"
/* Node states: whether the node takes new tasks (draining: not, and disabled once its last held
 * task is released). */
#define STORE_NODE_ENABLED  "enabled"
#define STORE_NODE_DISABLED "disabled"
#define STORE_NODE_DRAINING "draining"

struct node_row {
    char key[LIMIT_NODE_KEY_MAX + 1];
    char name[LIMIT_NAME_MAX + 1];
    char status[16]; /* "online" or "offline" */
    int max_runners;
    int64_t created_ms, last_seen_ms;
    char version[LIMIT_VERSION_MAX + 1];
    char labels[LIMIT_LABELS_TEXT_MAX + 1]; /* joined form (core/rules.h), "" = none */
    char state[16];                         /* STORE_NODE_ENABLED, _DISABLED or _DRAINING */
};

/* Creates the node on first sight (enabled) or updates name, max_runners, version and labels
 * (its state stays); either way marks it online with last_seen_ms = now_ms. key is 1..64 bytes;
 * name (NULL = "") and version (NULL = "") are bounded by the limits above, labels (NULL = "")
 * pass labels_text_valid, or -EINVAL. */
int store_node_upsert(struct store *s, const char *key, const char *name, int max_runners,
                      const char *version, const char *labels, int64_t now_ms);

/* Sets the node's state (one of the STORE_NODE_ENABLED... names, else -EINVAL). -ENOENT. */
int store_node_set_state(struct store *s, const char *key, const char *state);

/* Forgets the node (its tasks stay). -ENOENT for an unknown node. */
int store_node_delete(struct store *s, const char *key);

/* Sets the status to "online" or "offline" (anything else is -EINVAL) and last_seen_ms when the
 * node goes online. -ENOENT for an unknown node. */
int store_node_set_status(struct store *s, const char *key, const char *status, int64_t now_ms);

/* Sets last_seen_ms. -ENOENT for an unknown node. Heartbeats are frequent: the caller should
 * batch them inside a store_begin group rather than pay one fdatasync each. */
int store_node_touch(struct store *s, const char *key, int64_t now_ms);

/* Copies the node into *out. -ENOENT for an unknown node. */
int store_node_get(struct store *s, const char *key, struct node_row *out);

/* Calls cb for every node, ordered by key. Collects first. */
int store_node_list(struct store *s, int (*cb)(void *ctx, const struct node_row *r), void *ctx);

/* Calls cb for at most limit nodes (0: no limit) whose key sorts after after_key (NULL or "":
 * from the first), ordered by key. Collects first. */
int store_node_page(struct store *s, const char *after_key, unsigned limit,
                    int (*cb)(void *ctx, const struct node_row *r), void *ctx);

/* Calls cb for the nodes `given` may name, ordered by key: the node whose key it is and every node
 * whose name it is (a node may be named by a name several nodes share). Collects first. */
int store_node_named(struct store *s, const char *given,
                     int (*cb)(void *ctx, const struct node_row *r), void *ctx);

/* ---- Tasks ---- */

/* What a new task is made of. Strings are borrowed for the call; NULL means "". */
struct task_new {
    const char *name;          /* at most LIMIT_NAME_MAX bytes */
    const char *cmd;           /* required, non-empty */
    const char *param;         /* appended to cmd by the worker */
    const char *env_json;      /* JSON object text, already validated by the caller; NULL = "{}" */
    int priority;              /* lower runs first (core/limits.h) */
    int64_t timeout_ms;        /* 0 = none; negative is -EINVAL */
    const char *node_key;      /* the node that must run it; NULL or "" = any node */
    const char *labels;        /* selector: labels its node must have (joined form); NULL = any */
    int retries;               /* retries after an end in error or abnormal (retries_valid) */
    int64_t retry_delay_ms;    /* the first retry's delay (retry_delay_valid) */
    const char *spider;        /* the spider it runs in, NAME@VERSION; NULL or "" = none */
    const char *spider_sha256; /* that version's archive (spider_sha256_valid); NULL or "" */
};

/* A task as stored. The char * members are heap strings (never NULL) owned by the row: release
 * them with store_task_row_free, which leaves the row zeroed. Rows passed to callbacks are owned
 * by the store and valid only during the call. */
struct task_row {
    char id[TASK_ID_LEN + 1];
    char name[LIMIT_NAME_MAX + 1];
    char *cmd;
    char *param;
    char *env_json;
    int priority;
    int64_t timeout_ms;
    char node_key[LIMIT_NODE_KEY_MAX + 1];      /* target node, "" = any */
    char assigned_node[LIMIT_NODE_KEY_MAX + 1]; /* "" until assigned */
    enum task_status status;
    int pid;       /* 0 = not known */
    int exit_code; /* STORE_NO_EXIT_CODE = not known */
    char *error;   /* "" = none */
    uint64_t log_lines, data_items, log_bytes;
    bool cancel_requested, cancel_force;
    int64_t created_ms, updated_ms, started_ms, ended_ms; /* 0 = not yet */
    uint64_t epoch; /* the current assignment's epoch (core/fence.h); 0 = never assigned */
    char *labels;   /* the selector, joined form; "" = any node */
    char restart_of[TASK_ID_LEN + 1]; /* the task this one restarts, "" = none */
    char retry_of[TASK_ID_LEN + 1];   /* the first attempt when this one is a retry, "" = none */
    int attempt;                      /* 1 for a first attempt */
    int retries;                      /* as submitted: attempts after the first, at most */
    int64_t retry_delay_ms;
    int64_t eligible_ms;                       /* a retry is not fetched before this; 0 = at once */
    char spider[LIMIT_SPIDER_NAME_MAX + 12];   /* NAME@VERSION, "" = none */
    char spider_sha256[SPIDER_SHA256_HEX + 1]; /* "" = none */
    bool pushed; /* assigned by a push with its spec: the node may start it before any report */
};

void store_task_row_free(struct task_row *r);

/*
 * Stores a new pending task and writes its fresh id into id_out (24 hex, ObjectID-like: 4 bytes of
 * now_ms in seconds, 5 random bytes drawn once per store_open, a 3-byte counter).
 */
int store_task_create(struct store *s, const struct task_new *t, int64_t now_ms,
                      char id_out[TASK_ID_LEN + 1]);

/*
 * A new pending task with the spec of task id (name, cmd, param, env, priority, timeout, node,
 * retries and their delay) and restart_of = id, as its first attempt. -EINVAL, -ENOENT.
 */
int store_task_restart(struct store *s, const char *id, int64_t now_ms,
                       char id_out[TASK_ID_LEN + 1]);

/*
 * Ends task id in `to` (error or abnormal, else -EINVAL) as store_task_set_status does and, in the
 * same transaction, makes its next attempt: a pending task with the same spec, retry_of = the
 * first attempt, attempt + 1, not fetched before eligible_ms. The caller has checked that the task
 * has retries left. Returns 0 with the new id in id_out; 1 when the move is refused (nothing
 * changes, no attempt is made); -EINVAL, -ENOENT. A crash leaves both or neither.
 */
int store_task_retry(struct store *s, const char *id, enum task_status to, int exit_code,
                     const char *error, int64_t eligible_ms, int64_t now_ms,
                     char id_out[TASK_ID_LEN + 1]);

/* The earliest eligible_ms after after_ms of a pending task that waits for one into *at_ms (0 when
 * none waits). */
int store_task_next_eligible(struct store *s, int64_t after_ms, int64_t *at_ms);

/* Calls cb once for each node key ("" = any node) and label selector ("" = none) of the pending
 * tasks whose eligible_ms is in (after_ms, until_ms]: the tasks that became fetchable in that
 * time. Collects first. */
int store_task_eligible_nodes(struct store *s, int64_t after_ms, int64_t until_ms,
                              int (*cb)(void *ctx, const char *node_key, const char *labels),
                              void *ctx);

/*
 * Assigns one pending task to node_key (status assigned, assigned_node = node_key, epoch counted
 * up by one) and copies it into *out (free it with store_task_row_free). Returns 1 when a task was
 * assigned, 0 when none is available. Tasks addressed to this node come first, then unaddressed
 * ones; within each, the lowest priority number first (Crawlab's order), then oldest. A retry
 * whose eligible_ms is after now_ms waits. A task addressed to another node is never returned,
 * nor one whose label selector node_labels (the node's labels, joined form; NULL = none) does not
 * match (labels_match), and a task is assigned at most once (until it returns to pending).
 */
int store_task_fetch(struct store *s, const char *node_key, const char *node_labels, int64_t now_ms,
                     struct task_row *out);

/*
 * Assigns one given pending task to node_key, as store_task_fetch would. Returns 0 when it was
 * assigned, 1 when the task is not pending (nothing changes), -EINVAL. For a worker that turns
 * out to hold a task the master had put back in the queue (pushed false), and for a task pushed to
 * its node with its spec (pushed true: the row's pushed, until the task is pending again).
 */
int store_task_assign(struct store *s, const char *id, const char *node_key, int64_t now_ms,
                      bool pushed);

/* Copies the task into *out (free it with store_task_row_free). -EINVAL for a malformed id,
 * -ENOENT for an unknown one. */
int store_task_get(struct store *s, const char *id, struct task_row *out);

/*
 * Moves the task to status `to` if task_transition_allowed(current, to), and records the change in
 * its status history at now_ms. Returns 0 if applied, 1 if ignored (the same status, a backwards
 * or otherwise refused move: reports are idempotent), -EINVAL, -ENOENT.
 * When applied: pid is stored if > 0; exit_code unless STORE_NO_EXIT_CODE; error unless NULL.
 * started_ms is set on the first move to running, ended_ms on the move to a terminal status.
 * A move back to pending clears assigned_node and pid so that the task can be fetched again, and
 * counts the epoch up, so that no report of the assignment taken back matches it any more.
 * A 'running' report for a task already running is ignored as a move (1) but stores its pid
 * (> 0) if none is stored yet: a claim (core/fence.h) stores 'running' without one.
 */
int store_task_set_status(struct store *s, const char *id, enum task_status to, int pid,
                          int exit_code, const char *error, int64_t now_ms);

/*
 * The row store_task_set_status(s, r->id, to, pid, exit_code, error, now_ms) leaves when it
 * applies the move (returns 0) to a task whose row was *r: the rules above, applied to a copy in
 * *after, so that a caller holding the row it has just read need not read it again. A shallow
 * copy: its strings are r's (error: the one given, when not NULL), valid while those are; never
 * free it. The store's contract test holds every backend to it.
 */
void store_task_row_after_move(const struct task_row *r, enum task_status to, int pid,
                               int exit_code, const char *error, int64_t now_ms,
                               struct task_row *after);

/* The task's current assignment epoch into *out, without reading the rest of the row (checked for
 * every Connect message that names one). -EINVAL, -ENOENT. */
int store_task_epoch(struct store *s, const char *id, uint64_t *out);

/*
 * Asks for the task to be cancelled. A pending task is cancelled at once (nobody runs it). A task
 * held by a worker (assigned, running, node_disconnected) gets cancel_requested set, and
 * cancel_force if force (a forced request stays forced): the caller tells the worker, now or at its
 * next resync. On a shared store the request is also news for the other masters (store_news), at
 * the commit, for the one whose node holds the task. A terminal task is left alone. *status_out
 * (may be NULL) receives the status after the call, so TASK_CANCELLED means "done", a live status
 * means "tell the worker", and any other terminal status means "already over". -EINVAL, -ENOENT.
 */
int store_task_request_cancel(struct store *s, const char *id, bool force, int64_t now_ms,
                              enum task_status *status_out);

/*
 * Calls cb for tasks, newest first. status (a protocol name, -EINVAL if unknown) and node_key
 * (matches the node the task is assigned to or addressed to) filter when not NULL; limit 0 means
 * no limit. Streams.
 */
int store_task_list(struct store *s, const char *status, const char *node_key, unsigned limit,
                    int (*cb)(void *ctx, const struct task_row *r), void *ctx);

/* counts[i] = the number of tasks in status i: of every task (node_key NULL), or of those assigned
 * to node_key. -EINVAL, -EIO from the database. */
int store_task_count_by_status(struct store *s, const char *node_key,
                               uint64_t counts[TASK_STATUS_COUNT]);
/*
 * A position in the order of store_task_list (newest first: created_ms, then insertion order,
 * both descending). Positions stay valid when tasks are added or removed.
 */
struct task_pos {
    int64_t created_ms;
    int64_t rowid;
};

/*
 * store_task_list one page at a time: calls cb for at most limit tasks (0: no limit) that come
 * after *after in that order (after NULL: from the newest), each with its position, which the
 * caller passes back as after to go on. Filters as store_task_list. Streams.
 */
int store_task_page(struct store *s, const char *status, const char *node_key,
                    const struct task_pos *after, unsigned limit,
                    int (*cb)(void *ctx, const struct task_row *r, const struct task_pos *pos),
                    void *ctx);

/* The position of a task, for a listing that starts after it. -EINVAL, -ENOENT. */
int store_task_pos(struct store *s, const char *id, struct task_pos *out);

/*
 * The tasks whose id starts with prefix (task_id_prefix_valid, else -EINVAL): copies the first
 * max of them, in id order, into ids and returns how many there are up to max + 1 (so a caller
 * asking for max >= 2 tells none, one and several apart, and "more than max").
 */
int store_task_find_prefix(struct store *s, const char *prefix, char (*ids)[TASK_ID_LEN + 1],
                           size_t max);

/*
 * Retention. Deletes, oldest end first, ended tasks (task_status_terminal) whose ended_ms is
 * before before_ms, with their status history and result items: at most budget rows in one call
 * (a task with many items is deleted over several calls, its items first, its row last), so that
 * one call stays short. *purged receives the number of task rows deleted; *more is set when such
 * tasks remain (either may be NULL). Inside a group, or its own transaction outside one.
 * Log files: a deleted task's id is written in the same transaction to a journal table; the
 * file is removed only once the deletion is committed, by store_purge_logs (or store_close),
 * then the directory is fsync()ed, and the journal entry is dropped by a later purge. store_open
 * removes the files of every entry left in the journal (a crash between the commit and the
 * removal). So no committed task ever lacks its log, and a log whose task is gone is always in
 * the journal until it is removed.
 */
int store_task_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                     bool *more);

/* Has the log files of up to max purged tasks whose deletion is committed removed, by a thread of
 * the log engine (logfile_discard), so that this call does not wait for the disk. *left (may be
 * NULL) receives how many purged tasks may still have a log file: those of the open transaction,
 * committed ones not handed over yet, and those whose removal is not known to be durable yet. */
int store_purge_logs(struct store *s, size_t max, size_t *left);

/* How many tasks store_task_purge would delete for before_ms, in all. */
int store_task_count_purgeable(struct store *s, int64_t before_ms, uint64_t *out);

/* Calls cb for the tasks assigned to node_key that are in the given status, oldest first (for
 * liveness sweeps and resync). Collects first. */
int store_task_list_by_node(struct store *s, const char *node_key, enum task_status status,
                            int (*cb)(void *ctx, const struct task_row *r), void *ctx);

/* One entry of a task's status history. */
struct task_history_row {
    enum task_status from, to;
    int64_t at_ms;
};

/* Calls cb for each status change of the task, oldest first. -EINVAL, -ENOENT. Streams. */
int store_task_history(struct store *s, const char *id,
                       int (*cb)(void *ctx, const struct task_history_row *h), void *ctx);

/* ---- Logs and result items ---- */

/*
 * Appends log lines by the protocol's seq rule (docs/protocol.md, "ConnectRequest"): lines[i]
 * (lens[i] bytes, need not be NUL-terminated) is line number first_seq + i, counting from 1;
 * first_seq 0 means unsequenced (appended after what is stored). Lines already stored are skipped;
 * a batch starting beyond the stored count + 1 is a gap: -ERANGE and nothing is stored. *accepted
 * (may be NULL) receives the number of lines newly stored, 0 on error. Each line goes to
 * logs/<id>.log followed by "\n"; a '\n' inside a line would split it in two on read-back, so it is
 * stored as a space. The task's log_lines and log_bytes change in the same transaction. Lines may
 * arrive in any task status. -EINVAL, -ENOENT, -ERANGE.
 */
int store_log_append(struct store *s, const char *task_id, const char *const *lines,
                     const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);

/*
 * Appends result items with the same seq semantics. items[i] is the JSON text of one object,
 * validated by the caller. Each is stored with its seq; the task's data_items counts them.
 */
int store_items_append(struct store *s, const char *task_id, const char *const *items,
                       const size_t *lens, size_t n, uint64_t first_seq, size_t *accepted);

/*
 * Calls cb for each stored log line with seq >= from_seq (0 is taken as 1), in order, up to the
 * task's log_bytes (bytes beyond it are not committed and never shown). line is not
 * NUL-terminated and has no '\n'. Streams. -EINVAL, -ENOENT, -EIO if the file lost committed
 * bytes. Cost: the log engine's line index (store/logfile.h) starts the read near from_seq, so a
 * reader that asks again from where it stopped (a chunked or following ReadLogs) pays for what
 * it reads, not for the lines before; the first read of a log scans up to from_seq once.
 */
int store_log_read(struct store *s, const char *task_id, uint64_t from_seq,
                   int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx);

/* Calls cb for each stored item with seq >= from_seq, in order. data is the item's JSON text, not
 * NUL-terminated. Streams. -EINVAL, -ENOENT. */
int store_items_read(struct store *s, const char *task_id, uint64_t from_seq,
                     int (*cb)(void *ctx, uint64_t seq, const char *data, size_t len), void *ctx);

/* ---- Schedules ---- */

/* What a new schedule is made of. Strings are borrowed for the call; NULL means "". The caller
 * has checked expr with cron_parse (core/cron.h). */
struct schedule_new {
    const char *name;     /* at most LIMIT_NAME_MAX bytes */
    const char *expr;     /* required, at most CRON_EXPR_MAX bytes */
    int32_t tz_offset;    /* seconds east of UTC */
    const char *cmd;      /* required, non-empty */
    const char *env_json; /* JSON object text; NULL = "{}" */
    int priority;
    int64_t timeout_ms;   /* 0 = none */
    const char *node_key; /* NULL or "" = any node */
    const char *labels;   /* selector of its tasks (joined form); NULL or "" = any node */
    int overlap;          /* enum cron_overlap */
    int missed;           /* enum cron_missed */
    int retries;          /* carried into each fire's task */
    int64_t retry_delay_ms;
    const char *spider; /* NAME or NAME@VERSION (spider_ref_parse), resolved at each fire;
                         * NULL or "" = none */
    const char
        *tz_name;   /* a zone name (core/tz.h) the fields are read in; NULL or "" = tz_offset */
    bool all_nodes; /* each fire makes a task on every node that takes it (not with node_key) */
};

/* A schedule as stored. expr, cmd, env_json and labels are heap strings owned by the row: release
 * them with store_schedule_row_free. */
struct schedule_row {
    int64_t id;
    char name[LIMIT_NAME_MAX + 1];
    char *expr;
    int32_t tz_offset;
    char *cmd;
    char *env_json;
    int priority;
    int64_t timeout_ms;
    char node_key[LIMIT_NODE_KEY_MAX + 1];
    int overlap, missed;
    bool paused;
    int64_t created_ms;
    int64_t last_fire_s;             /* the latest fire time handled (Unix s); 0 = none yet */
    char last_task[TASK_ID_LEN + 1]; /* the task of the latest fire that made one; "" = none */
    char *labels;                    /* selector of its tasks, joined form; "" = any node */
    int retries;
    int64_t retry_delay_ms;
    char spider[LIMIT_SPIDER_NAME_MAX + 12]; /* as named at creation; "" = none */
    char tz_name[TZ_NAME_MAX + 1];           /* "" = the fixed tz_offset */
    bool all_nodes;
};

void store_schedule_row_free(struct schedule_row *r);

/* Stores a new schedule (not paused) and writes its id (1, 2, ...) into *id_out. -EINVAL. */
int store_schedule_create(struct store *s, const struct schedule_new *n, int64_t now_ms,
                          int64_t *id_out);

/* Copies the schedule into *out (free it with store_schedule_row_free). -ENOENT. */
int store_schedule_get(struct store *s, int64_t id, struct schedule_row *out);

/* Calls cb for every schedule, ordered by id. Collects first. */
int store_schedule_list(struct store *s, int (*cb)(void *ctx, const struct schedule_row *r),
                        void *ctx);

/* Pauses or resumes the schedule. Resuming a paused schedule marks every fire time up to now_s
 * (Unix seconds) handled: what passed while it was paused never gets a task. -ENOENT. */
int store_schedule_set_paused(struct store *s, int64_t id, bool paused, int64_t now_s);

/* Removes the schedule and its fire records (its tasks stay). -ENOENT. */
int store_schedule_delete(struct store *s, int64_t id);

/*
 * The fire of schedule id at fire_s (Unix seconds), in one transaction: the n tasks t[] as new
 * pending tasks, their fire records (schedule, fire time, node: per_node, the node_key of each
 * task, which must be set; else "" for the one task), and the schedule's last_fire_s and last_task
 * (the last of them). Any record of (id, fire_s) makes it the fire's idempotency key: after a
 * crash a fire has all its tasks or none. Returns 0 with the new tasks' ids in ids_out[0..n); 1
 * when that fire already has its tasks (nothing changes; ids_out[0] gets one of them); -ENOENT,
 * -EINVAL.
 */
int store_schedule_fire(struct store *s, int64_t id, int64_t fire_s, const struct task_new *t,
                        size_t n, bool per_node, int64_t now_ms, char (*ids_out)[TASK_ID_LEN + 1]);

/* Calls cb with each task of the latest fire of schedule id that made tasks (none when it has
 * made none). Collects first. */
int store_schedule_last_tasks(struct store *s, int64_t id,
                              int (*cb)(void *ctx, const char *task_id), void *ctx);

/* Records the fire of schedule id at fire_s as handled without a task (skipped): only its
 * last_fire_s advances. -ENOENT. */
int store_schedule_skip(struct store *s, int64_t id, int64_t fire_s);

/* Calls cb with the task id of each fire of schedule id, oldest fire first, and its fire time.
 * Collects first. */
int store_schedule_fires(struct store *s, int64_t id,
                         int (*cb)(void *ctx, int64_t fire_s, const char *task_id), void *ctx);

/* ---- Events ---- */

/* Bounds of an event's kind (a text line such as "task.finished") and of its data: room for a
 * task's name and error text (core/limits.h) however JSON escapes them. */
#define STORE_EVENT_KIND_MAX 32
#define STORE_EVENT_DATA_MAX (64 * 1024)

/* An event as stored. data is its JSON object text, valid only during the callback. */
struct event_row {
    int64_t id; /* 1, 2, ...: never given twice, the cursor of a reader */
    int64_t at_ms;
    char kind[STORE_EVENT_KIND_MAX + 1];
    char node_key[LIMIT_NODE_KEY_MAX + 1]; /* "" = none */
    char task_id[TASK_ID_LEN + 1];         /* "" = none */
    const char *data;
};

/*
 * Records an event: kind (a non-empty text line), node_key and task_id (NULL or "" for none, else
 * valid), data (a JSON object text the caller made, at most STORE_EVENT_DATA_MAX bytes; NULL =
 * "{}"). *id_out (may be NULL) receives its id. Inside a group the event commits with the changes
 * it records; if recording it fails there, the whole group is rolled back at store_commit (-EIO),
 * so that no change is committed without its event. -EINVAL.
 */
int store_event_add(struct store *s, int64_t at_ms, const char *kind, const char *node_key,
                    const char *task_id, const char *data, int64_t *id_out);

/* Calls cb for at most limit events (0: no limit) with after < id <= upto, in id order. Streams. */
int store_event_page(struct store *s, int64_t after, int64_t upto, unsigned limit,
                     int (*cb)(void *ctx, const struct event_row *e), void *ctx);

/* The highest event id ever given (0: none), whether or not that event is still stored. Outside a
 * group it is the highest committed one. */
int store_event_last(struct store *s, int64_t *out);

/* How many events are stored with after < id <= upto. */
int store_event_count(struct store *s, int64_t after, int64_t upto, uint64_t *out);

/* Retention: deletes at most budget events older than before_ms, oldest first. *purged receives
 * how many, *more whether the budget ran out (some may remain). Inside a group, or its own
 * transaction outside one. -EINVAL for a zero budget. */
int store_event_purge(struct store *s, int64_t before_ms, unsigned budget, size_t *purged,
                      bool *more);

/* The id of the last event delivered to the hook named hook (its command): -ENOENT for a hook
 * never seen. _set stores it, in the group like any change. */
int store_event_cursor_get(struct store *s, const char *hook, int64_t *out);
int store_event_cursor_set(struct store *s, const char *hook, int64_t delivered);

/* ---- Several masters on one store ----
 *
 * A PostgreSQL store is shared by every master that opens it (docs/postgres.md); a SQLite store
 * belongs to one master. On a store that is not shared these functions return -ENOTSUP.
 *
 * Liveness: each master holds a lease, a row renewed every heartbeat interval; each node row names
 * the master that holds its stream. When a master's lease runs out (it died, or lost the
 * database), the first master to reap it marks its online nodes offline, once, and the nodes'
 * tasks are handled as any node's going offline; a node that registers with another master moves
 * to it at once (store_node_hold).
 *
 * News: a task that is pending when its transaction commits is announced to every other master
 * (PostgreSQL's LISTEN/NOTIFY), so that a worker connected to any master hears of it.
 */

/* Whether other masters share this store. */
bool store_shared(struct store *s);

/* Sets master_id's lease to end for_ms from now on the store's own clock (the database's: the
 * masters' clocks may disagree; 0 releases it at once). master_id is a text line of at most
 * LIMIT_NODE_KEY_MAX bytes. */
int store_master_renew(struct store *s, const char *master_id, int64_t for_ms);

/* Records that master_id holds node key's stream. -ENOENT for an unknown node. */
int store_node_hold(struct store *s, const char *key, const char *master_id);

/* Ends the leases that ran out (by the store's clock): their masters' online nodes go offline, in
 * one transaction that only one master wins (or in the open group), and cb is called with each
 * such node's key (outside a group, after the commit). */
int store_master_reap(struct store *s, int (*cb)(void *ctx, const char *node_key), void *ctx);

/* Whether this master runs the --on-event hooks, which one master at a time does on a shared store
 * (the others stand by; the hold ends with the master's connection). 1: it does, as at the last
 * call; 2: it does from now on (it did not, or its connection was made again), and the hooks'
 * cursors may have moved meanwhile; 0: another master does; -EIO while the database is away. */
int store_hooks_hold(struct store *s);

/* Starts listening for other masters' news, if not yet, and returns the descriptor to watch for
 * reading, or a negative errno (-EIO while the database is away). */
int store_news_fd(struct store *s);

/* What store_news tells of another master's changes; ctx is passed to each. */
struct store_news_handlers {
    /* Task id became pending: the node it is addressed to ("" = any), its selector ("" = none)
     * and when it may be fetched (0: at once). */
    int (*task)(void *ctx, const char *id, const char *node_key, const char *labels,
                int64_t eligible_ms);
    /* Task id, held by node_key, is to be cancelled (force: at once, SIGKILL). */
    int (*cancel)(void *ctx, const char *id, const char *node_key, bool force);
    void *ctx;
};

/* Calls h's handlers with each piece of news from another master since the last call: a task made
 * pending, a cancel asked for (store_task_request_cancel announces it when the task is held).
 * read: first read what the descriptor has (one recv); without, only what the store's earlier
 * calls already read, no system call (for a loop's prepare step). Returns 0; 1 when the
 * connection was made again since store_news_fd, whose descriptor is then stale (call it again
 * and watch the new one); a negative errno while the database is away. */
int store_news(struct store *s, const struct store_news_handlers *h, bool read);

/* ---- Spiders ---- */

/* One version of a spider: its archive (named by its SHA-256) and what the master's check
 * counted in it. */
struct spider_row {
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version; /* from 1, one more than the name's latest */
    char sha256[SPIDER_SHA256_HEX + 1];
    uint64_t size, files, unpacked;
    int64_t created_ms;
};

/* Records r (name, sha256, sizes; its version and created_ms are ignored) as the next version of
 * its name, created at now_ms, and writes that version into *version_out. -EINVAL. */
int store_spider_add(struct store *s, const struct spider_row *r, int64_t now_ms,
                     uint32_t *version_out);

/* The version of name named (0: the latest) into *out. -EINVAL, -ENOENT. */
int store_spider_get(struct store *s, const char *name, uint32_t version, struct spider_row *out);

/* name NULL: the latest version of every spider, by name; else the versions of name, oldest first
 * (version 0: all of them, else only that one). Calls cb (may be NULL: only the count) for each
 * until it returns non-zero. Returns how many rows there were, or a negative errno (or cb's).
 * Collects first. */
int store_spider_list(struct store *s, const char *name, uint32_t version,
                      int (*cb)(void *ctx, const struct spider_row *r), void *ctx);

/* Removes the version of name (0: every version). -EINVAL, -ENOENT when there was none. */
int store_spider_remove(struct store *s, const char *name, uint32_t version);

/* Whether any version of any spider still names the archive sha256 (*used). */
int store_spider_sha_used(struct store *s, const char *sha256, bool *used);

/* A task not ended (pending, assigned, running, node_disconnected) that runs in version
 * (from 1) of name: returns 1 with its id and status, 0 when there is none. -EINVAL. */
int store_spider_task_using(struct store *s, const char *name, uint32_t version,
                            char id[TASK_ID_LEN + 1], enum task_status *status);

/*
 * The archives themselves, on a store several masters share, so that each serves every version
 * whichever master took the push. On a store of one master these are -ENOTSUP: the file in its
 * data dir is the only copy. Each reads or writes the whole file and blocks until done.
 */

/* Stores the archive file at path under sha256 (once: nothing when it is there already).
 * -EINVAL, -EIO. */
int store_spider_archive_put(struct store *s, const char *sha256, const char *path);

/* Writes the archive stored under sha256 into the file at path (made, or emptied first).
 * -EINVAL, -ENOENT when none is stored, -EIO. */
int store_spider_archive_get(struct store *s, const char *sha256, const char *path);

/* Forgets the archive stored under sha256 (nothing when there is none). -EINVAL, -EIO. */
int store_spider_archive_drop(struct store *s, const char *sha256);

#endif

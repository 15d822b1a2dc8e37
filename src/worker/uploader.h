/*
 * The uploader: a task's log lines and result items on their way to the master.
 *
 * Output is batched into TaskServiceConnectRequest messages (many lines per message, bounded in
 * bytes and count, flushed after a short linger), each numbered with the seq of its first line or
 * item. Messages go out on a Connect stream of the data connection. A stream is a segment: it is
 * half-closed after a few MiB, and the master's OK (sent once everything is durable) releases the
 * segment's messages. The next segment starts while that answer is awaited (two in flight at
 * most; answers are settled in the order the segments were sent). Until then messages are kept,
 * and when a segment fails, the younger one is given up too and everything is sent again from the
 * failed segment's first message; the master's seq dedupe makes that safe. Past a high-water mark
 * of kept bytes the uploader asks for back-pressure (the runner stops reading the task's pipes).
 * Kept messages stay in memory up to a few MiB and are spooled to a file under the worker's data
 * dir beyond that; the worker divides --spool-max-bytes among its runners. Loop thread only.
 */
#ifndef CRAWLAB_UPLOADER_H
#define CRAWLAB_UPLOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "worker/session.h"

struct uploader;

struct uploader_hooks {
    /* Everything produced was stored (ok), or the master refused the task's data for good. */
    void (*on_done)(void *ctx, bool ok);
    /* Too much is waiting (true): stop producing; enough drained (false): go on. */
    void (*on_pressure)(void *ctx, bool high);
};

/*
 * max_kept: output bytes kept (not yet acknowledged) before back-pressure starts. Past a few MiB
 * the kept messages go to the file <spool_dir>/<task_id> (NULL: memory only), which is removed
 * with the uploader.
 */
struct uploader *uploader_create(struct ev_loop *loop, struct session *sess, const char *task_id,
                                 const char *spool_dir, size_t max_kept,
                                 const struct uploader_hooks *hooks, void *ctx);
/* The assignment epoch the task runs under (core/fence.h), named in every message packed from now
 * on; set before the first output. A master that no longer holds that epoch refuses the output
 * with PERMISSION_DENIED, and the task's output is dropped (docs/reliability.md, "Refusals"). */
void uploader_set_epoch(struct uploader *u, uint64_t epoch);
/* Queues one log line (valid UTF-8, no newline). */
void uploader_log(struct uploader *u, const char *line, size_t len);
/* Queues result items: a JSON array of objects (borrowed). */
void uploader_items(struct uploader *u, json_t *items);
/* No more output: flush, close, and call on_done once everything is acknowledged. */
void uploader_finish(struct uploader *u);
/* The session is online again: resume sending. */
void uploader_kick(struct uploader *u);
/* The master's durable counts after a reconnect: what they cover is not sent again. */
void uploader_resync(struct uploader *u, uint64_t log_lines, uint64_t data_items);
void uploader_destroy(struct uploader *u);
/* Totals produced so far (what ReportStatus carries). */
uint64_t uploader_log_lines(const struct uploader *u);
uint64_t uploader_data_items(const struct uploader *u);

#endif

/*
 * The log engine: one append-only file per task, <dir>/<task_id>.log, holding each line as its
 * bytes and a '\n'. The engine keeps the files; the counters are the caller's. How many bytes of a
 * task's log are committed (its committed size) lives with the row backend that uses the engine
 * (store_sqlite.c keeps it in the task's row as log_bytes), which passes it to every call. The
 * engine knows nothing of the rows, so any row backend can use it.
 *
 * Durability, with the row backend:
 *   1. logfile_append writes lines after the committed size and returns the new size, which the
 *      backend records (with the line count) in its open transaction.
 *   2. Before it commits, the backend calls logfile_sync: every file written since the last
 *      commit or rollback is fdatasync()ed, and the directory is fsync()ed if a file was created.
 *   3. After it commits, it calls logfile_commit; if it rolls back instead, logfile_rollback,
 *      which cuts every such file back to its size before the writes.
 * A crash between 2 and the commit leaves bytes beyond the committed size, never fewer. A file is
 * cut back to the committed size it is given each time it is opened for appending, and reads never
 * look past that size, so a line is counted exactly once and never half-stored. Of each file it
 * covers, a commit leaves only the last LOGFILE_CACHED_TAIL bytes in the page cache.
 *
 * Reading: for each of the LOGFILE_INDEX_CACHE logs read most recently, the engine keeps in memory
 * where lines start: one mark every LOGFILE_MARK_STEP bytes and the furthest line start read so
 * far. Reads build it as they go. A read from line k starts at the last mark before line k, or
 * where the furthest read stopped if that is nearer, instead of at byte 0: so reading a log in
 * chunks, or following it, costs what is read. A log without an index (never read, or its index
 * recycled) is scanned from byte 0 up to the line asked for, once. The index describes committed
 * bytes only, which never change: it learns nothing from bytes written since the last commit (of
 * any file, in the rare case where such a file had to be closed early). A mark is 16 bytes: at
 * most 1/4096 of the log it describes.
 *
 * Ownership: the engine owns its directory fd, at most max_open files kept open for appending
 * (the least recently used is closed first; a file written since the last commit is fdatasync()ed
 * before it is closed) and the indexes. Only one engine may use a directory at a time: the caller
 * makes sure of that (the store locks its data dir).
 *
 * Ids: every id is a task id the caller has validated (task_id_valid), so it is a safe file name.
 *
 * Threading: the master's loop thread only; nothing here is thread-safe. The one exception is
 * internal: logfile_discard hands file names to a thread of the engine's own, which only unlinks
 * them and syncs the directory (joined by logfile_close).
 * Blocking: yes, on open, pwrite, pread, ftruncate, fdatasync (and sync_file_range, which starts
 * the write-back of appended bytes, and posix_fadvise, which drops committed pages).
 * Errors: 0 or a negative errno. File failures are logged here, once, with the task id.
 */
#ifndef CRAWLAB_LOGFILE_H
#define CRAWLAB_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct logfile;

/* Reads go through a buffer of this size. */
#define LOGFILE_READ_CHUNK (64 * 1024)
/* The index keeps the first line start at least this many bytes after the previous mark. */
#define LOGFILE_MARK_STEP (64 * 1024)
/* A commit leaves this much of the end of each file it covers in the page cache, and drops the
 * rest (logfile.c says why). */
#define LOGFILE_CACHED_TAIL (8u << 20)
/* How many logs keep an index. */
#define LOGFILE_INDEX_CACHE 64

/*
 * Opens <parent>/<name>, creating it (mode 0750, and then fsync()ing parent) if needed. The
 * parent must exist. max_open (at least 1) bounds the files kept open. On success *out owns the
 * engine; release it with logfile_close.
 */
int logfile_open(const char *parent, const char *name, size_t max_open, struct logfile **out);

/* Closes every file as it is: bytes written since the last commit are neither synced nor cut
 * (the next open of the file cuts them). Call logfile_rollback first to cut them. NULL is
 * accepted. */
void logfile_close(struct logfile *lf);

/*
 * Writes n lines (lines[i] is lens[i] bytes, not NUL-terminated) as line + "\n" at byte `size` of
 * the task's log, creating the file if needed; a '\n' inside a line is written as a space, since
 * it would split the line in two when read back. size is the committed size: a file holding more
 * is cut back to it first, one holding less is refused with -EIO (it lost committed data). On
 * success *size_out is the new size, which counts once the caller commits. On failure the file is
 * cut back to size (or, if even that fails, closed and cut back when next opened).
 */
int logfile_append(struct logfile *lf, const char *id, uint64_t size, const char *const *lines,
                   const size_t *lens, size_t n, uint64_t *size_out);

/* Cuts the task's log back to size, for a caller that could not record an append (its row update
 * failed). */
void logfile_undo(struct logfile *lf, const char *id, uint64_t size);

/* Makes every file written since the last commit or rollback durable. Call it before the rows
 * commit; if it fails, roll back. -EIO if such a file could not be synced when it was closed
 * early. */
int logfile_sync(struct logfile *lf);

/* The rows have committed: what was written is committed. */
void logfile_commit(struct logfile *lf);

/* The rows were rolled back: every file written since the last commit is cut back to its size
 * before. A file that cannot be cut is closed instead, and cut when next opened. */
void logfile_rollback(struct logfile *lf);

/*
 * Removes the task's log: closes it if open, forgets its index and unlinks the file (a missing
 * file is not an error). For a row backend whose task row is gone for good: call it only once the
 * row's deletion is committed, never with a file written since the last commit. The removal is
 * durable after logfile_sync_dir. Returns 1 when a file was removed, 0 when there was none.
 */
int logfile_remove(struct logfile *lf, const char *id);

/* fsync()s the directory, making the removals before it durable. */
int logfile_sync_dir(struct logfile *lf);

/*
 * logfile_remove in the background: forgets the task's file and index now, and queues the file
 * for the engine's remover thread (started on first use), which unlinks queued files and then
 * fsync()s the directory once for them. Same rule as logfile_remove: only once the row's deletion
 * is committed. Returns 0 (queued), 1 (removed here: the thread could not start) or -ENOMEM.
 */
int logfile_discard(struct logfile *lf, const char *id);

/* Copies into ids up to max of the discarded logs whose removal is durable now (each is returned
 * once). *pending (may be NULL) receives how many discarded logs are not returned yet. A log the
 * thread could not remove, or whose directory sync failed, is never returned. */
size_t logfile_discarded(struct logfile *lf, char (*ids)[TASK_ID_LEN + 1], size_t max,
                         size_t *pending);

/*
 * Calls cb for each line numbered from_seq (at least 1) or more, in order, among the first `size`
 * bytes of the task's log (the committed size: bytes beyond it are never shown). line is not
 * NUL-terminated and has no '\n'. A non-zero return from cb stops the read and is returned as is.
 * -EIO if the file holds fewer than size bytes.
 */
int logfile_read(struct logfile *lf, const char *id, uint64_t size, uint64_t from_seq,
                 int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx);

#endif

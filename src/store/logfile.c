/*
 * The log engine: per-task append-only files, their fd cache, the commit protocol shared with the
 * row backend, and indexed reads. See logfile.h for the protocol.
 */
#include "store/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "runtime/log.h"
#include "runtime/array.h"

/* Each time a file's appends complete this many bytes, the disk is told to start writing them: it
 * works while the loop goes on, and the commit's fdatasync has less left to wait for. */
#define LOGFILE_WRITEBACK_STEP (1u << 20)

/* A file open for appending. size is what the file holds as far as the engine knows; dirty means
 * it was written since the last commit and must be fdatasync()ed before the next one; base is its
 * size when it became dirty, where a rollback cuts it back to; the page cache was last told to drop
 * the bytes before uncached (LOGFILE_CACHED_TAIL). */
struct logfile_fd {
    char id[TASK_ID_LEN + 1];
    int fd;
    uint64_t size;
    uint64_t base;
    uint64_t uncached;
    uint64_t last_used;
    bool dirty;
};

/* Line number seq starts at byte off. */
struct logfile_mark {
    uint64_t seq, off;
};

/* Where the lines of one log start, as far as reads have seen. marks[i] is the first line start
 * at least LOGFILE_MARK_STEP bytes after marks[i - 1] (after byte 0 for marks[0]); end is the
 * furthest line start seen. Every mark lies in bytes that were committed when it was taken. */
struct logfile_index {
    char id[TASK_ID_LEN + 1]; /* "" = unused */
    struct logfile_mark *marks;
    size_t n, cap;
    struct logfile_mark end;
    uint64_t last_used;
};

/* Ids of discarded logs, a growable array. */
struct logfile_ids {
    char (*ids)[TASK_ID_LEN + 1];
    size_t n, cap;
};

/* The thread that removes discarded logs, so that the loop thread never waits on unlink(2), which
 * costs about 0.1 ms a file on some file systems. todo and done are shared under mu. */
struct logfile_remover {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, stop;
    int dir_fd;              /* the thread's own */
    struct logfile_ids todo; /* to remove */
    struct logfile_ids done; /* removed and the directory synced */
    size_t busy;             /* taken from todo, not yet in done */
    char *dir;               /* for messages (the engine's, outlives the thread) */
};

struct logfile {
    int dir_fd;
    struct logfile_remover remover;
    char *dir; /* for messages */
    /* A file was created since the directory was last fsync()ed: its entry must be made durable
     * before a commit counts its bytes. */
    bool dir_dirty;
    /* A file written since the last commit could not be synced when it was closed early. */
    bool sync_failed;
    /* A file written since the last commit was closed early: until the next commit or rollback,
     * which of its bytes are committed is not known, and reads teach the indexes nothing. */
    bool closed_dirty;
    uint64_t clock;
    size_t max_open;
    struct logfile_fd *files;
    struct logfile_index index[LOGFILE_INDEX_CACHE];
    /* One batch of lines laid out for its write, kept from one append to the next: a fresh buffer
     * each time (one message's data, up to 4 MiB) cost the loop page faults and page clearing. */
    char *join;
    size_t join_cap;
};

/* Growable buffer for a line that spans read chunks. */
struct logfile_linebuf {
    char *p;
    size_t len, cap;
};

/* ---- Open files ---- */

static void logfile_fd_drop(struct logfile_fd *e)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    e->dirty = false;
    e->id[0] = '\0';
}

/* Closes a file whose bytes may be counted by the open transaction: a dirty file is synced first
 * so that the commit still covers what was written to it. */
static int logfile_fd_retire(struct logfile *lf, struct logfile_fd *e)
{
    int rc = 0;
    if (e->dirty && fdatasync(e->fd) < 0) {
        rc = -errno;
        log_error("logfile: fdatasync of log of task %s failed: %s", e->id, strerror(-rc));
        /* The open transaction counts bytes that may not be on disk: it must not commit. */
        lf->sync_failed = true;
    }
    if (e->dirty)
        lf->closed_dirty = true;
    logfile_fd_drop(e);
    return rc;
}

/* Cuts a file back to size. One that cannot be cut is closed instead (see logfile_fd_retire):
 * the next open cuts it back to the committed size. */
static void logfile_fd_cut(struct logfile *lf, struct logfile_fd *e, uint64_t size)
{
    if (ftruncate(e->fd, (off_t)size) < 0) {
        log_warn("logfile: cutting back log of task %s failed: %s; reopening it later", e->id,
                 strerror(errno));
        logfile_fd_retire(lf, e);
        return;
    }
    e->size = size;
    if (e->uncached > size)
        e->uncached = size;
}

/* Makes the file hold exactly `committed` bytes. Extra bytes are what an interrupted transaction
 * left behind (a crash between write and commit); missing bytes mean committed data was lost. */
static int logfile_fd_align(struct logfile_fd *e, uint64_t committed)
{
    struct stat st;
    if (fstat(e->fd, &st) < 0) {
        int err = errno;
        log_error("logfile: fstat of log of task %s failed: %s", e->id, strerror(err));
        return -err;
    }
    uint64_t have = (uint64_t)st.st_size;
    if (have > committed) {
        log_warn("logfile: log of task %s held %" PRIu64 " bytes beyond the committed %" PRIu64
                 "; cut back (an interrupted write)",
                 e->id, have - committed, committed);
        if (ftruncate(e->fd, (off_t)committed) < 0) {
            int err = errno;
            log_error("logfile: truncating log of task %s failed: %s", e->id, strerror(err));
            return -err;
        }
    } else if (have < committed) {
        log_error("logfile: log of task %s holds %" PRIu64 " bytes but %" PRIu64
                  " are committed; the file lost data, appends refused",
                  e->id, have, committed);
        return -EIO;
    }
    e->size = committed;
    if (e->uncached > committed)
        e->uncached = committed;
    return 0;
}

static struct logfile_fd *logfile_fd_find(struct logfile *lf, const char *id)
{
    for (size_t i = 0; i < lf->max_open; i++) {
        struct logfile_fd *e = &lf->files[i];
        if (e->fd >= 0 && memcmp(e->id, id, TASK_ID_LEN) == 0)
            return e;
    }
    return NULL;
}

/* Frees a slot: an empty one, else the least recently used, retired. */
static int logfile_fd_slot(struct logfile *lf, struct logfile_fd **out)
{
    struct logfile_fd *victim = NULL;
    for (size_t i = 0; i < lf->max_open; i++) {
        struct logfile_fd *e = &lf->files[i];
        if (e->fd < 0) {
            *out = e;
            return 0;
        }
        if (!victim || e->last_used < victim->last_used)
            victim = e;
    }
    int rc = logfile_fd_retire(lf, victim);
    if (rc < 0)
        return rc;
    *out = victim;
    return 0;
}

/* Opens the task's file into a free slot, creating it if needed, and aligns it. */
static int logfile_fd_open(struct logfile *lf, const char *id, uint64_t committed,
                           struct logfile_fd **out)
{
    struct logfile_fd *e = NULL;
    int rc = logfile_fd_slot(lf, &e);
    if (rc < 0)
        return rc;
    char name[TASK_ID_LEN + 8];
    snprintf(name, sizeof(name), "%s.log", id);
    int fd = openat(lf->dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd = openat(lf->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            lf->dir_dirty = true;
    }
    if (fd < 0) {
        int err = errno;
        log_error("logfile: opening log of task %s failed: %s", id, strerror(err));
        return -err;
    }
    memcpy(e->id, id, TASK_ID_LEN + 1);
    e->fd = fd;
    e->dirty = false;
    e->uncached = 0;
    rc = logfile_fd_align(e, committed);
    if (rc < 0) {
        logfile_fd_drop(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Returns the task's file, open and holding exactly `committed` bytes. */
static int logfile_fd_get(struct logfile *lf, const char *id, uint64_t committed,
                          struct logfile_fd **out)
{
    struct logfile_fd *e = logfile_fd_find(lf, id);
    int rc = 0;
    if (!e) {
        rc = logfile_fd_open(lf, id, committed, &e);
    } else if (e->size != committed) {
        rc = logfile_fd_align(e, committed);
        if (rc < 0)
            logfile_fd_retire(lf, e);
    }
    if (rc < 0)
        return rc;
    e->last_used = ++lf->clock;
    *out = e;
    return 0;
}

/* ---- Open and close ---- */

int logfile_open(const char *parent, const char *name, size_t max_open, struct logfile **out)
{
    if (!parent || !name || !max_open || !out)
        return -EINVAL;
    struct logfile *lf = calloc(1, sizeof(*lf));
    if (!lf)
        return -ENOMEM;
    lf->dir_fd = -1;
    lf->max_open = max_open;
    lf->files = calloc(max_open, sizeof(*lf->files));
    lf->dir = malloc(strlen(parent) + strlen(name) + 2);
    if (!lf->files || !lf->dir) {
        logfile_close(lf);
        return -ENOMEM;
    }
    sprintf(lf->dir, "%s/%s", parent, name);
    for (size_t i = 0; i < max_open; i++)
        lf->files[i].fd = -1;

    int rc = 0;
    int parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool created = false;
    if (parent_fd < 0)
        rc = -errno;
    else if (mkdirat(parent_fd, name, 0700) == 0)
        created = true;
    else if (errno != EEXIST)
        rc = -errno;
    if (rc == 0) {
        lf->dir_fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (lf->dir_fd < 0)
            rc = -errno;
    }
    if (rc == 0 && created && fsync(parent_fd) < 0)
        rc = -errno;
    if (parent_fd >= 0)
        close(parent_fd);
    if (rc < 0) {
        log_error("logfile: setting up %s failed: %s", lf->dir, strerror(-rc));
        logfile_close(lf);
        return rc;
    }
    *out = lf;
    return 0;
}

static void logfile_remover_stop(struct logfile *lf);

void logfile_close(struct logfile *lf)
{
    if (!lf)
        return;
    logfile_remover_stop(lf);
    for (size_t i = 0; lf->files && i < lf->max_open; i++)
        logfile_fd_drop(&lf->files[i]);
    for (size_t i = 0; i < LOGFILE_INDEX_CACHE; i++)
        free(lf->index[i].marks);
    if (lf->dir_fd >= 0)
        close(lf->dir_fd);
    free(lf->files);
    free(lf->join);
    free(lf->dir);
    free(lf);
}

/* ---- Appending and the commit protocol ---- */

static int logfile_pwrite_all(int fd, const char *buf, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, buf, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Lays out the lines as "line\n" in lf->join, so one write stores the whole batch. */
static int logfile_join(struct logfile *lf, const char *const *lines, const size_t *lens, size_t n,
                        size_t *len_out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] >= SIZE_MAX - 1 - total)
            return -ENOMEM;
        total += lens[i] + 1;
    }
    if (total > lf->join_cap) {
        char *buf = realloc(lf->join, total);
        if (!buf)
            return -ENOMEM;
        lf->join = buf;
        lf->join_cap = total;
    }
    char *p = lf->join;
    for (size_t i = 0; i < n; i++) {
        if (lens[i])
            memcpy(p, lines[i], lens[i]);
        char *nl = p, *e = p + lens[i];
        while ((nl = memchr(nl, '\n', (size_t)(e - nl))))
            *nl++ = ' ';
        p += lens[i];
        *p++ = '\n';
    }
    *len_out = total;
    return 0;
}

/* Starts the write-back of the whole steps that the append of [size, end) completed. Only a head
 * start: durability is still the commit's fdatasync, which reports any failure. */
static void logfile_start_writeback(const struct logfile_fd *e, uint64_t size, uint64_t end)
{
    uint64_t from = size - size % LOGFILE_WRITEBACK_STEP;
    uint64_t to = end - end % LOGFILE_WRITEBACK_STEP;
    if (to > from)
        sync_file_range(e->fd, (off_t)from, (off_t)(to - from), SYNC_FILE_RANGE_WRITE);
}

int logfile_append(struct logfile *lf, const char *id, uint64_t size, const char *const *lines,
                   const size_t *lens, size_t n, uint64_t *size_out)
{
    size_t len = 0;
    if (logfile_join(lf, lines, lens, n, &len) < 0) {
        log_error("logfile: no memory for %zu log lines of task %s", n, id);
        return -ENOMEM;
    }
    struct logfile_fd *e = NULL;
    int rc = logfile_fd_get(lf, id, size, &e);
    if (rc == 0) {
        rc = logfile_pwrite_all(e->fd, lf->join, len, size);
        if (rc < 0) {
            log_error("logfile: writing %zu log bytes of task %s failed: %s", len, id,
                      strerror(-rc));
            logfile_fd_cut(lf, e, size);
        }
    }
    if (rc < 0)
        return rc;
    if (!e->dirty) {
        e->base = size;
        e->dirty = true;
    }
    e->size = size + len;
    logfile_start_writeback(e, size, e->size);
    *size_out = e->size;
    return 0;
}

void logfile_undo(struct logfile *lf, const char *id, uint64_t size)
{
    struct logfile_fd *e = logfile_fd_find(lf, id);
    if (e)
        logfile_fd_cut(lf, e, size);
}

int logfile_sync(struct logfile *lf)
{
    if (lf->sync_failed)
        return -EIO;
    for (size_t i = 0; i < lf->max_open; i++) {
        struct logfile_fd *e = &lf->files[i];
        if (e->fd < 0 || !e->dirty)
            continue;
        if (fdatasync(e->fd) < 0) {
            int err = errno;
            log_error("logfile: fdatasync of log of task %s failed: %s", e->id, strerror(err));
            return -err;
        }
    }
    if (lf->dir_dirty) {
        if (fsync(lf->dir_fd) < 0) {
            int err = errno;
            log_error("logfile: fsync of %s failed: %s", lf->dir, strerror(err));
            return -err;
        }
        lf->dir_dirty = false;
    }
    return 0;
}

/* Drops from the page cache what a commit made durable, but the file's last LOGFILE_CACHED_TAIL
 * bytes. A log is written once and read rarely, and then mostly at its end, by a follower. Left
 * cached, a large log would grow the page cache by its whole size, each 4 KiB stored in a page of
 * fresh memory, where dropped pages (clean once synced) are reused by the next appends. On a
 * virtual machine whose free memory goes back to the host (free page reporting), a fresh page
 * costs a fault in the host too: there, the copy into the page cache took four to five times as
 * long (docs/benchmarks.md, "Log ingestion: the page cache's fresh memory"). Advice only: a failure
 * changes nothing stored, and is not reported. */
static void logfile_uncache(struct logfile_fd *e)
{
    uint64_t to = e->size > LOGFILE_CACHED_TAIL ? e->size - LOGFILE_CACHED_TAIL : 0;
    to -= to % LOGFILE_WRITEBACK_STEP;
    if (to <= e->uncached)
        return;
    posix_fadvise(e->fd, (off_t)e->uncached, (off_t)(to - e->uncached), POSIX_FADV_DONTNEED);
    e->uncached = to;
}

void logfile_commit(struct logfile *lf)
{
    for (size_t i = 0; i < lf->max_open; i++) {
        struct logfile_fd *e = &lf->files[i];
        if (e->fd >= 0 && e->dirty)
            logfile_uncache(e);
        e->dirty = false;
    }
    lf->closed_dirty = false;
}

void logfile_rollback(struct logfile *lf)
{
    for (size_t i = 0; i < lf->max_open; i++) {
        struct logfile_fd *e = &lf->files[i];
        if (e->fd < 0 || !e->dirty)
            continue;
        /* Nothing of it will be committed: no need to sync it if it has to be closed. */
        e->dirty = false;
        logfile_fd_cut(lf, e, e->base);
    }
    lf->sync_failed = false;
    lf->closed_dirty = false;
}

int logfile_remove(struct logfile *lf, const char *id)
{
    struct logfile_fd *e = logfile_fd_find(lf, id);
    if (e)
        logfile_fd_drop(e);
    for (size_t i = 0; i < LOGFILE_INDEX_CACHE; i++) {
        struct logfile_index *ix = &lf->index[i];
        if (memcmp(ix->id, id, TASK_ID_LEN) == 0) {
            ix->id[0] = '\0';
            ix->n = 0;
            ix->last_used = 0;
        }
    }
    char name[TASK_ID_LEN + 8];
    snprintf(name, sizeof(name), "%s.log", id);
    if (unlinkat(lf->dir_fd, name, 0) < 0) {
        if (errno == ENOENT)
            return 0;
        int err = errno;
        log_error("logfile: removing log of task %s failed: %s", id, strerror(err));
        return -err;
    }
    return 1;
}

/* ---- Discarding logs in the background ---- */

static int logfile_ids_add(struct logfile_ids *l, const char *id)
{
    char(*ids)[TASK_ID_LEN + 1] = array_grow(l->ids, l->n, &l->cap, sizeof(*ids), 256);
    if (!ids)
        return -ENOMEM;
    l->ids = ids;
    memcpy(l->ids[l->n++], id, TASK_ID_LEN + 1);
    return 0;
}

/* Takes everything queued, removes the files, syncs the directory once, and hands the ids back
 * as done. Ids whose removal failed, or when the sync failed, are dropped: the caller's journal
 * keeps them for its next open. */
static void *logfile_remover_main(void *arg)
{
    struct logfile_remover *r = arg;
    struct logfile_ids batch = {0};
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->todo.n && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (!r->todo.n && r->stop)
            break;
        struct logfile_ids swap = batch;
        batch = r->todo;
        r->todo = swap;
        r->todo.n = 0;
        r->busy = batch.n;
        pthread_mutex_unlock(&r->mu);

        size_t kept = 0;
        for (size_t i = 0; i < batch.n; i++) {
            char name[TASK_ID_LEN + 8];
            snprintf(name, sizeof(name), "%s.log", batch.ids[i]);
            if (unlinkat(r->dir_fd, name, 0) < 0 && errno != ENOENT) {
                log_error("logfile: removing log of task %s failed: %s", batch.ids[i],
                          strerror(errno));
                continue;
            }
            memmove(batch.ids[kept++], batch.ids[i], TASK_ID_LEN + 1);
        }
        if (kept && fsync(r->dir_fd) < 0) {
            log_error("logfile: fsync of %s failed: %s", r->dir, strerror(errno));
            kept = 0;
        }

        pthread_mutex_lock(&r->mu);
        for (size_t i = 0; i < kept; i++)
            if (logfile_ids_add(&r->done, batch.ids[i]) < 0)
                break;
        r->busy = 0;
    }
    pthread_mutex_unlock(&r->mu);
    free(batch.ids);
    return NULL;
}

static int logfile_remover_start(struct logfile *lf)
{
    struct logfile_remover *r = &lf->remover;
    r->dir_fd = dup(lf->dir_fd);
    if (r->dir_fd < 0)
        return -errno;
    r->dir = lf->dir;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = pthread_create(&r->thread, NULL, logfile_remover_main, r);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        close(r->dir_fd);
        return -rc;
    }
    r->started = true;
    return 0;
}

/* Lets the thread finish what is queued, then joins it. */
static void logfile_remover_stop(struct logfile *lf)
{
    struct logfile_remover *r = &lf->remover;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        close(r->dir_fd);
        r->started = false;
    }
    free(r->todo.ids);
    free(r->done.ids);
}

int logfile_discard(struct logfile *lf, const char *id)
{
    struct logfile_remover *r = &lf->remover;
    if (!r->started) {
        int rc = logfile_remover_start(lf);
        if (rc < 0) {
            log_warn("logfile: no thread to remove logs (%s); removing here", strerror(-rc));
            rc = logfile_remove(lf, id);
            return rc < 0 ? rc : 1;
        }
    }
    struct logfile_fd *e = logfile_fd_find(lf, id);
    if (e)
        logfile_fd_drop(e);
    for (size_t i = 0; i < LOGFILE_INDEX_CACHE; i++) {
        struct logfile_index *ix = &lf->index[i];
        if (memcmp(ix->id, id, TASK_ID_LEN) == 0) {
            ix->id[0] = '\0';
            ix->n = 0;
            ix->last_used = 0;
        }
    }
    pthread_mutex_lock(&r->mu);
    int rc = logfile_ids_add(&r->todo, id);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t logfile_discarded(struct logfile *lf, char (*ids)[TASK_ID_LEN + 1], size_t max,
                         size_t *pending)
{
    struct logfile_remover *r = &lf->remover;
    if (!r->started) {
        if (pending)
            *pending = 0;
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    size_t n = r->done.n < max ? r->done.n : max;
    if (n)
        memcpy(ids, r->done.ids + (r->done.n - n), n * sizeof(*ids));
    r->done.n -= n;
    if (pending)
        *pending = r->todo.n + r->busy + r->done.n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int logfile_sync_dir(struct logfile *lf)
{
    if (fsync(lf->dir_fd) < 0) {
        int err = errno;
        log_error("logfile: fsync of %s failed: %s", lf->dir, strerror(err));
        return -err;
    }
    return 0;
}

/* ---- The line index ---- */

/* The index of the task's log, or a recycled one (the least recently used) made empty. */
static struct logfile_index *logfile_index_get(struct logfile *lf, const char *id)
{
    struct logfile_index *victim = &lf->index[0];
    for (size_t i = 0; i < LOGFILE_INDEX_CACHE; i++) {
        struct logfile_index *ix = &lf->index[i];
        if (memcmp(ix->id, id, TASK_ID_LEN) == 0) {
            ix->last_used = ++lf->clock;
            return ix;
        }
        if (ix->last_used < victim->last_used)
            victim = ix;
    }
    memcpy(victim->id, id, TASK_ID_LEN + 1);
    victim->n = 0;
    victim->end = (struct logfile_mark){.seq = 1, .off = 0};
    victim->last_used = ++lf->clock;
    return victim;
}

/* Where a read of lines from `from` on, within the first `limit` bytes, can start: the furthest
 * known line start at or before line `from`. */
static struct logfile_mark logfile_index_start(const struct logfile_index *ix, uint64_t from,
                                               uint64_t limit)
{
    if (ix->end.seq <= from && ix->end.off <= limit)
        return ix->end;
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->marks[mid].seq <= from && ix->marks[mid].off <= limit)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? ix->marks[lo - 1] : (struct logfile_mark){.seq = 1, .off = 0};
}

/* Learns a line start found by a read that began at a known one. Beyond the known end, it becomes
 * the end, and a mark if it lies a step past the last one. Out of memory, the mark is skipped:
 * the index is only a shortcut. */
static void logfile_index_note(struct logfile_index *ix, struct logfile_mark at)
{
    if (at.off <= ix->end.off)
        return;
    ix->end = at;
    uint64_t last = ix->n ? ix->marks[ix->n - 1].off : 0;
    if (at.off - last < LOGFILE_MARK_STEP)
        return;
    struct logfile_mark *m = array_grow(ix->marks, ix->n, &ix->cap, sizeof(*m), 64);
    if (!m)
        return;
    ix->marks = m;
    ix->marks[ix->n++] = at;
}

/* How many of the first `size` bytes of the task's log are committed for sure: the index may
 * learn from those only. A file written since the last commit is committed up to where the writes
 * began. */
static uint64_t logfile_settled(struct logfile *lf, const char *id, uint64_t size)
{
    if (lf->closed_dirty)
        return 0;
    struct logfile_fd *e = logfile_fd_find(lf, id);
    return e && e->dirty && e->base < size ? e->base : size;
}

/* ---- Reading ---- */

static int logfile_linebuf_add(struct logfile_linebuf *b, const char *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n)
            ncap *= 2;
        char *p = realloc(b->p, ncap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

/* Reads lines of the file from `at` up to byte limit and calls cb for those numbered >= from. ix
 * is taught every line start passed up to byte `settled`. */
static int logfile_scan(int fd, const char *id, uint64_t limit, struct logfile_mark at,
                        uint64_t from, struct logfile_index *ix, uint64_t settled,
                        int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx)
{
    char *chunk = malloc(LOGFILE_READ_CHUNK);
    if (!chunk)
        return -ENOMEM;
    struct logfile_linebuf partial = {0};
    uint64_t off = at.off; /* the next byte to read */
    int rc = 0;
    while (rc == 0 && off < limit) {
        size_t want = limit - off < LOGFILE_READ_CHUNK ? (size_t)(limit - off) : LOGFILE_READ_CHUNK;
        ssize_t got = pread(fd, chunk, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -errno : -EIO;
            log_error("logfile: reading log of task %s failed: %s", id, strerror(-rc));
            break;
        }
        uint64_t chunk_off = off;
        off += (uint64_t)got;
        const char *p = chunk, *end = chunk + got;
        while (rc == 0 && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                /* Lines before `from` are only counted, never copied. */
                if (at.seq >= from)
                    rc = logfile_linebuf_add(&partial, p, (size_t)(end - p));
                break;
            }
            if (at.seq >= from) {
                if (partial.len) {
                    rc = logfile_linebuf_add(&partial, p, (size_t)(nl - p));
                    if (rc == 0)
                        rc = cb(ctx, at.seq, partial.p, partial.len);
                    partial.len = 0;
                } else {
                    rc = cb(ctx, at.seq, p, (size_t)(nl - p));
                }
                if (rc != 0)
                    break;
            }
            p = nl + 1;
            at.seq++;
            at.off = chunk_off + (uint64_t)(p - chunk);
            if (at.off <= settled)
                logfile_index_note(ix, at);
        }
    }
    free(partial.p);
    free(chunk);
    return rc;
}

int logfile_read(struct logfile *lf, const char *id, uint64_t size, uint64_t from_seq,
                 int (*cb)(void *ctx, uint64_t seq, const char *line, size_t len), void *ctx)
{
    if (size == 0)
        return 0;
    char name[TASK_ID_LEN + 8];
    snprintf(name, sizeof(name), "%s.log", id);
    int fd = openat(lf->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        log_error("logfile: opening log of task %s failed: %s", id, strerror(-rc));
        return rc == -ENOENT ? -EIO : rc;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        log_error("logfile: fstat of log of task %s failed: %s", id, strerror(-rc));
    } else if ((uint64_t)st.st_size < size) {
        log_error("logfile: log of task %s holds %lld bytes but %" PRIu64 " are committed", id,
                  (long long)st.st_size, size);
        rc = -EIO;
    } else {
        struct logfile_index *ix = logfile_index_get(lf, id);
        rc = logfile_scan(fd, id, size, logfile_index_start(ix, from_seq, size), from_seq, ix,
                          logfile_settled(lf, id, size), cb, ctx);
    }
    close(fd);
    return rc;
}

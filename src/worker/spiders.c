#include "worker/spiders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spider.h"
#include "core/task.h"
#include "rpc/client.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "spider/archive.h"
#include "spider/digest.h"
#include "services/spider_service.pb-c.h"
#include "worker/session.h"
#include "runtime/array.h"

#define RETRY_S 1.0 /* a cut fetch resumes after this long */

/* A task waiting for its working directory. */
struct waiter {
    struct waiter *next;
    char task_id[TASK_ID_LEN + 1];
    char *workdir;
    spiders_done_fn done;
    void *ctx;
    bool retried; /* its spider was evicted between the check and the copy once already */
    int rc;       /* set by the thread */
    char why[256];
};

/* An archive on its way: fetched, then unpacked by the thread. */
struct fetch {
    struct fetch *next;
    struct spiders *sp;
    char sha256[SPIDER_SHA256_HEX + 1];
    struct waiter *waiters; /* handed to the thread with the unpack */
    struct waiter *late;    /* came while it unpacks */
    bool unpacking;
    int fd;
    uint64_t offset, size; /* verified bytes so far; the archive's size (0 until known) */
    struct spider_hash *hash;
    struct rpc_call *call;
    unsigned generation; /* the session's, when the call started */
    ev_timer retry;
};

enum work_kind { WORK_UNPACK, WORK_COPY, WORK_REMOVE };

/* A job of the spider thread, and its result. */
struct work {
    struct work *next;
    enum work_kind kind;
    char sha256[SPIDER_SHA256_HEX + 1];
    struct waiter *waiters; /* UNPACK: each gets a copy after it; COPY: the one */
    char *path;             /* REMOVE */
    int rc;                 /* UNPACK: how it went */
};

struct spiders {
    struct ev_loop *loop;
    struct session *sess;
    char dir[PATH_MAX - 128]; /* <data-dir>/spiders, with room for a name */
    uint64_t cache_bytes;
    uint64_t fetches;
    struct fetch *fetching;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct work *todo, *todo_tail; /* under lock */
    struct work *done;             /* under lock */
    bool stop;                     /* under lock */
    ev_async results;
};

static void cache_path(const struct spiders *sp, const char *sha256, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%.64s", sp->dir, sha256);
}

static void part_path(const struct spiders *sp, const char *sha256, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s.tgz.part", sp->dir, sha256);
}

static void waiter_free(struct waiter *w)
{
    free(w->workdir);
    free(w);
}

/* ---- the spider thread ---- */

static void queue_work(struct spiders *sp, struct work *w)
{
    pthread_mutex_lock(&sp->lock);
    w->next = NULL;
    if (sp->todo_tail)
        sp->todo_tail->next = w;
    else
        sp->todo = w;
    sp->todo_tail = w;
    pthread_cond_signal(&sp->wake);
    pthread_mutex_unlock(&sp->lock);
}

/* Copies the cached spider into the waiter's fresh working directory. */
static void copy_for(struct spiders *sp, const char *sha256, struct waiter *w)
{
    char src[PATH_MAX];
    cache_path(sp, sha256, src);
    /* Its use makes it the most recently used. */
    if (utimensat(AT_FDCWD, src, NULL, 0) < 0) {
        w->rc = -errno;
        snprintf(w->why, sizeof(w->why), "spider %.12s: not in the cache", sha256);
        return;
    }
    spider_remove_tree(w->workdir);
    w->rc = spider_copy_tree(src, w->workdir, w->why, sizeof(w->why));
}

/* What the regular files under a tree hold, for the cache's bound. */
static __thread uint64_t tree_bytes;

static int add_size(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_F)
        tree_bytes += (uint64_t)st->st_size;
    return 0;
}

struct cached {
    char name[SPIDER_SHA256_HEX + 1];
    uint64_t bytes;
    struct timespec used;
};

static int by_use(const void *a, const void *b)
{
    const struct cached *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    return x->used.tv_nsec < y->used.tv_nsec ? -1 : x->used.tv_nsec > y->used.tv_nsec;
}

/* Removes the least recently used spiders, but `keep`, while the cache is over its bound. */
static void evict(struct spiders *sp, const char *keep)
{
    DIR *d = opendir(sp->dir);
    if (!d)
        return;
    struct cached *all = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        char path[PATH_MAX];
        if (!spider_sha256_valid(de->d_name))
            continue;
        cache_path(sp, de->d_name, path);
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        struct cached *p = array_grow(all, n, &cap, sizeof(*p), 16);
        if (!p)
            break;
        all = p;
        tree_bytes = 0;
        nftw(path, add_size, 16, FTW_PHYS);
        memcpy(all[n].name, de->d_name, sizeof(all[n].name));
        all[n].bytes = tree_bytes;
        all[n].used = st.st_mtim;
        total += tree_bytes;
        n++;
    }
    closedir(d);
    qsort(all, n, sizeof(*all), by_use);
    for (size_t i = 0; i < n && total > sp->cache_bytes; i++) {
        if (strcmp(all[i].name, keep) == 0)
            continue;
        char path[PATH_MAX];
        cache_path(sp, all[i].name, path);
        if (spider_remove_tree(path) == 0) {
            total -= all[i].bytes;
            log_info("spider %.12s: removed from the cache (least recently used; %" PRIu64
                     " bytes)",
                     all[i].name, all[i].bytes);
        }
    }
    free(all);
}

static void unpack(struct spiders *sp, struct work *w)
{
    char part[PATH_MAX], dest[PATH_MAX], why[256];
    part_path(sp, w->sha256, part);
    cache_path(sp, w->sha256, dest);
    const struct spider_bounds bounds = {.max_bytes = LIMIT_SPIDER_BYTES_MAX,
                                         .max_files = LIMIT_SPIDER_FILES_MAX};
    int rc = spider_unpack(part, dest, &bounds, why, sizeof(why));
    w->rc = rc;
    unlink(part);
    if (rc == 0) {
        log_info("spider %.12s: unpacked into the cache", w->sha256);
        evict(sp, w->sha256);
    }
    for (struct waiter *x = w->waiters; x; x = x->next) {
        if (rc < 0) {
            x->rc = rc;
            snprintf(x->why, sizeof(x->why), "spider %.12s: %.200s", w->sha256, why);
        } else {
            copy_for(sp, w->sha256, x);
        }
    }
}

static void *thread_main(void *arg)
{
    struct spiders *sp = arg;
    pthread_mutex_lock(&sp->lock);
    for (;;) {
        while (!sp->todo && !sp->stop)
            pthread_cond_wait(&sp->wake, &sp->lock);
        if (sp->stop)
            break;
        struct work *w = sp->todo;
        sp->todo = w->next;
        if (!sp->todo)
            sp->todo_tail = NULL;
        pthread_mutex_unlock(&sp->lock);
        if (w->kind == WORK_UNPACK)
            unpack(sp, w);
        else if (w->kind == WORK_COPY)
            copy_for(sp, w->sha256, w->waiters);
        else
            spider_remove_tree(w->path);
        pthread_mutex_lock(&sp->lock);
        w->next = sp->done;
        sp->done = w;
        ev_async_send(sp->loop, &sp->results);
    }
    pthread_mutex_unlock(&sp->lock);
    return NULL;
}

/* ---- on the loop ---- */

static void prepare_waiter(struct spiders *sp, const char *sha256, struct waiter *w);

static void finish_waiter(struct spiders *sp, const char *sha256, struct waiter *w)
{
    if (w->rc == -ENOENT && !w->retried) {
        /* evicted after we looked: fetch it again */
        w->retried = true;
        prepare_waiter(sp, sha256, w);
        return;
    }
    w->done(w->ctx, w->task_id, w->rc, w->why);
    waiter_free(w);
}

static struct fetch *find_fetch(struct spiders *sp, const char *sha256)
{
    for (struct fetch *f = sp->fetching; f; f = f->next)
        if (strcmp(f->sha256, sha256) == 0)
            return f;
    return NULL;
}

static void fetch_free(struct fetch *f)
{
    struct spiders *sp = f->sp;
    for (struct fetch **p = &sp->fetching; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    ev_timer_stop(sp->loop, &f->retry);
    if (f->call)
        rpc_call_release(f->call);
    if (f->fd >= 0)
        close(f->fd);
    spider_hash_free(f->hash);
    free(f);
}

static void copy_each(struct spiders *sp, const char *sha256, struct waiter *list)
{
    while (list) {
        struct waiter *next = list->next;
        list->next = NULL;
        struct work *w = calloc(1, sizeof(*w));
        if (!w) {
            list->rc = -ENOMEM;
            snprintf(list->why, sizeof(list->why), "out of memory");
            finish_waiter(sp, sha256, list);
        } else {
            w->kind = WORK_COPY;
            memcpy(w->sha256, sha256, sizeof(w->sha256));
            w->waiters = list;
            queue_work(sp, w);
        }
        list = next;
    }
}

static void on_results(struct ev_loop *loop, ev_async *a, int revents)
{
    struct spiders *sp = a->data;
    pthread_mutex_lock(&sp->lock);
    struct work *done = sp->done;
    sp->done = NULL;
    pthread_mutex_unlock(&sp->lock);
    while (done) {
        struct work *w = done;
        done = w->next;
        if (w->kind == WORK_UNPACK) {
            struct fetch *f = find_fetch(sp, w->sha256);
            struct waiter *late = f ? f->late : NULL;
            if (f)
                fetch_free(f);
            for (struct waiter *x = w->waiters; x;) {
                struct waiter *next = x->next;
                finish_waiter(sp, w->sha256, x);
                x = next;
            }
            if (w->rc == 0)
                copy_each(sp, w->sha256, late);
            for (struct waiter *l = w->rc == 0 ? NULL : late; l;) {
                struct waiter *next = l->next;
                l->rc = w->rc;
                snprintf(l->why, sizeof(l->why), "spider %.12s: cannot be unpacked", w->sha256);
                finish_waiter(sp, w->sha256, l);
                l = next;
            }
        } else if (w->kind == WORK_COPY) {
            finish_waiter(sp, w->sha256, w->waiters);
        }
        free(w->path);
        free(w);
    }
}

/* Every task waiting for f fails with why; f goes. */
static void fail_fetch(struct fetch *f, int rc, const char *why)
{
    struct spiders *sp = f->sp;
    char part[PATH_MAX];
    part_path(sp, f->sha256, part);
    unlink(part);
    log_warn("spider %.12s: %s", f->sha256, why);
    struct waiter *x = f->waiters;
    char sha256[SPIDER_SHA256_HEX + 1];
    memcpy(sha256, f->sha256, sizeof(sha256));
    fetch_free(f);
    while (x) {
        struct waiter *next = x->next;
        x->rc = rc;
        snprintf(x->why, sizeof(x->why), "spider %.12s: %s", sha256, why);
        finish_waiter(sp, sha256, x);
        x = next;
    }
}

/* All bytes are in: the whole archive's hash decides. */
static void fetch_complete(struct fetch *f)
{
    char actual[SPIDER_SHA256_HEX + 1], why[200];
    spider_hash_final(f->hash, actual);
    if (strcmp(actual, f->sha256) != 0) {
        snprintf(why, sizeof(why), "refused: the archive fetched has SHA-256 %.12s...", actual);
        fail_fetch(f, -EBADMSG, why);
        return;
    }
    close(f->fd);
    f->fd = -1;
    struct work *w = calloc(1, sizeof(*w));
    if (!w) {
        fail_fetch(f, -ENOMEM, "out of memory");
        return;
    }
    log_info("spider %.12s: fetched and verified (%" PRIu64 " bytes)", f->sha256, f->size);
    w->kind = WORK_UNPACK;
    memcpy(w->sha256, f->sha256, sizeof(w->sha256));
    w->waiters = f->waiters;
    f->waiters = NULL;
    f->unpacking = true;
    queue_work(f->sp, w);
}

/* One chunk: it must continue the file exactly; then it is written and hashed. */
static void fetch_on_message(struct rpc_call *c, grpc_byte_buffer *msg)
{
    struct fetch *f = rpc_call_user(c);
    if (!msg)
        return; /* on_status follows */
    ProtobufCMessage *m = NULL;
    if (codec_unpack(msg, &grpc__spider_chunk__descriptor, &m) < 0) {
        rpc_call_cancel(c);
        return;
    }
    const Grpc__SpiderChunk *ch = (const void *)m;
    bool fits = ch->offset == f->offset && ch->size <= LIMIT_SPIDER_BYTES_MAX &&
                (!f->size || ch->size == f->size) && ch->data.len <= ch->size - ch->offset;
    int rc = fits ? spider_write_at(f->fd, ch->data.data, ch->data.len, f->offset) : -EPROTO;
    if (rc == 0) {
        spider_hash_update(f->hash, ch->data.data, ch->data.len);
        f->offset += ch->data.len;
        f->size = ch->size;
        rpc_call_read(c);
    } else {
        log_warn("spider %.12s: %s at byte %" PRIu64, f->sha256,
                 rc == -EPROTO ? "a chunk out of place" : strerror(-rc), f->offset);
        rpc_call_cancel(c);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void start_fetch(struct fetch *f);

static void fetch_on_status(struct rpc_call *c, grpc_status_code st, const char *details)
{
    struct fetch *f = rpc_call_user(c);
    rpc_call_release(c);
    f->call = NULL;
    if (st == GRPC_STATUS_OK && f->size && f->offset == f->size) {
        fetch_complete(f);
        return;
    }
    if (st == GRPC_STATUS_NOT_FOUND || st == GRPC_STATUS_INVALID_ARGUMENT ||
        st == GRPC_STATUS_OUT_OF_RANGE || st == GRPC_STATUS_PERMISSION_DENIED) {
        char why[200];
        snprintf(why, sizeof(why), "the master refused the fetch: %s", details);
        fail_fetch(f, -EREMOTEIO, why);
        return;
    }
    log_warn("spider %.12s: fetch cut at byte %" PRIu64 " of %" PRIu64 " (%s); resuming from "
             "there",
             f->sha256, f->offset, f->size, *details ? details : "connection lost");
    /* The connections are the session's: it makes new ones, and the fetch goes on on those. */
    session_connection_failed(f->sp->sess, f->generation, "spider fetch failed");
    ev_timer_set(&f->retry, RETRY_S, 0);
    ev_timer_start(f->sp->loop, &f->retry);
}

static const struct rpc_call_handler fetch_handler = {
    .on_message = fetch_on_message,
    .on_status = fetch_on_status,
};

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    start_fetch(t->data);
}

/* (Re)starts the fetch from the verified offset, on the data connection; later when offline. */
static void start_fetch(struct fetch *f)
{
    struct spiders *sp = f->sp;
    grpc_channel *ch = sp->sess ? session_data_channel(sp->sess) : NULL;
    f->generation = sp->sess ? session_generation(sp->sess) : 0;
    if (ch)
        f->call = rpc_call_start(session_bridge(sp->sess), ch, "/grpc.SpiderService/Fetch",
                                 session_auth_key(sp->sess), 0, &fetch_handler, f);
    if (!f->call) {
        ev_timer_set(&f->retry, RETRY_S, 0);
        ev_timer_start(sp->loop, &f->retry);
        return;
    }
    Grpc__SpiderFetchRequest req = GRPC__SPIDER_FETCH_REQUEST__INIT;
    req.sha256 = f->sha256;
    req.offset = f->offset;
    rpc_call_write_last(f->call, codec_pack(&req.base));
    rpc_call_read(f->call);
}

static void new_fetch(struct spiders *sp, const char *sha256, struct waiter *w)
{
    char part[PATH_MAX];
    part_path(sp, sha256, part);
    struct fetch *f = calloc(1, sizeof(*f));
    int rc = -ENOMEM;
    if (f && (f->hash = spider_hash_new())) {
        f->fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        rc = f->fd < 0 ? -errno : 0;
    }
    if (rc < 0) {
        if (f)
            spider_hash_free(f->hash);
        free(f);
        w->rc = rc;
        snprintf(w->why, sizeof(w->why), "spider %.12s: cannot store it: %s", sha256,
                 strerror(-rc));
        finish_waiter(sp, sha256, w);
        return;
    }
    f->sp = sp;
    memcpy(f->sha256, sha256, sizeof(f->sha256));
    f->waiters = w;
    ev_init(&f->retry, on_retry);
    f->retry.data = f;
    f->next = sp->fetching;
    sp->fetching = f;
    sp->fetches++;
    log_info("spider %.12s: fetching it from the master", sha256);
    start_fetch(f);
}

static void prepare_waiter(struct spiders *sp, const char *sha256, struct waiter *w)
{
    struct fetch *f = find_fetch(sp, sha256);
    if (f && f->unpacking) {
        w->next = f->late;
        f->late = w;
        return;
    }
    if (f) {
        w->next = f->waiters;
        f->waiters = w;
        return;
    }
    char path[PATH_MAX];
    struct stat st;
    cache_path(sp, sha256, path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        copy_each(sp, sha256, w);
    else
        new_fetch(sp, sha256, w);
}

void spiders_prepare(struct spiders *sp, const char *sha256, const char *task_id,
                     const char *workdir, spiders_done_fn done, void *ctx)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (w && !(w->workdir = strdup(workdir))) {
        free(w);
        w = NULL;
    }
    if (!w) {
        done(ctx, task_id, -ENOMEM, "out of memory");
        return;
    }
    snprintf(w->task_id, sizeof(w->task_id), "%s", task_id);
    w->done = done;
    w->ctx = ctx;
    prepare_waiter(sp, sha256, w);
}

void spiders_discard(struct spiders *sp, const char *workdir)
{
    struct work *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(workdir))) {
        free(w);
        return;
    }
    w->kind = WORK_REMOVE;
    queue_work(sp, w);
}

uint64_t spiders_fetches(const struct spiders *sp)
{
    return sp->fetches;
}

/* ---- life ---- */

int spiders_create(struct ev_loop *loop, const struct spiders_opts *opts, struct spiders **out)
{
    struct spiders *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return -ENOMEM;
    sp->loop = loop;
    sp->cache_bytes = opts->cache_bytes;
    /* Fetches and unpacks of an earlier run start over. */
    int rc = spider_dir_prepare(opts->data_dir, sp->dir, sizeof(sp->dir));
    if (rc < 0) {
        free(sp);
        return rc;
    }
    /* where the tasks' working directories are made (the runner makes it too, for the others) */
    char tasks[PATH_MAX];
    snprintf(tasks, sizeof(tasks), "%s/tasks", opts->data_dir);
    if (mkdir(tasks, 0755) < 0 && errno != EEXIST)
        log_warn("cannot create %s: %s", tasks, strerror(errno));
    pthread_mutex_init(&sp->lock, NULL);
    pthread_cond_init(&sp->wake, NULL);
    ev_async_init(&sp->results, on_results);
    sp->results.data = sp;
    ev_async_start(loop, &sp->results);
    rc = pthread_create(&sp->thread, NULL, thread_main, sp);
    if (rc != 0) {
        ev_async_stop(loop, &sp->results);
        pthread_mutex_destroy(&sp->lock);
        pthread_cond_destroy(&sp->wake);
        free(sp);
        return -rc;
    }
    *out = sp;
    return 0;
}

void spiders_attach(struct spiders *sp, struct session *sess)
{
    sp->sess = sess;
}

static void free_waiters(struct waiter *w)
{
    while (w) {
        struct waiter *next = w->next;
        waiter_free(w);
        w = next;
    }
}

static void free_works(struct work *w)
{
    while (w) {
        struct work *next = w->next;
        free_waiters(w->waiters);
        free(w->path);
        free(w);
        w = next;
    }
}

void spiders_destroy(struct spiders *sp)
{
    if (!sp)
        return;
    pthread_mutex_lock(&sp->lock);
    sp->stop = true;
    pthread_cond_signal(&sp->wake);
    pthread_mutex_unlock(&sp->lock);
    pthread_join(sp->thread, NULL);
    ev_async_stop(sp->loop, &sp->results);
    free_works(sp->todo);
    free_works(sp->done);
    while (sp->fetching) {
        free_waiters(sp->fetching->waiters);
        free_waiters(sp->fetching->late);
        fetch_free(sp->fetching);
    }
    pthread_mutex_destroy(&sp->lock);
    pthread_cond_destroy(&sp->wake);
    free(sp);
}

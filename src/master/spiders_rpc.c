#include "master/spiders_rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spider.h"
#include "master/clock.h"
#include "master/group.h"
#include "rpc/codec.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "spider/archive.h"
#include "spider/digest.h"
#include "store/store.h"
#include "services/admin_service.pb-c.h"
#include "services/spider_service.pb-c.h"
#include "runtime/array.h"

struct spiders_rpc {
    struct ev_loop *loop;
    struct store *store;
    struct group *group;
    char dir[PATH_MAX - 128]; /* <data-dir>/spiders, with room for a file name */
    struct spider_bounds bounds;
};

static void archive_path(const struct spiders_rpc *sp, const char *sha256, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s.tgz", sp->dir, sha256);
}

/* fsync of a file or directory by its path (flags: O_DIRECTORY for one). */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* fsync of the directory, so that a rename or unlink in it is durable. */
static int sync_dir(const char *dir)
{
    return sync_path(dir, O_DIRECTORY);
}

/* ---- the answer of PushSpider, ListSpiders, RemoveSpider ---- */

struct spider_list {
    Grpc__AdminSpider *items;
    size_t n, cap;
};

static int collect_spider(void *ctx, const struct spider_row *r)
{
    struct spider_list *l = ctx;
    Grpc__AdminSpider *items = array_grow(l->items, l->n, &l->cap, sizeof(*items), 16);
    if (!items)
        return -ENOMEM;
    l->items = items;
    Grpc__AdminSpider *a = &l->items[l->n];
    grpc__admin_spider__init(a);
    a->name = strdup(r->name);
    a->sha256 = strdup(r->sha256);
    if (!a->name || !a->sha256) {
        free(a->name);
        free(a->sha256);
        return -ENOMEM;
    }
    a->version = r->version;
    a->size = r->size;
    a->files = r->files;
    a->unpacked = r->unpacked;
    a->created_ms = r->created_ms;
    l->n++;
    return 0;
}

static void spider_list_free(struct spider_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].sha256);
    }
    free(l->items);
}

static void reply_list(struct srv_call *c, struct spider_list *l)
{
    Grpc__AdminSpider **ptrs = l->n ? calloc(l->n, sizeof(*ptrs)) : NULL;
    if (l->n && !ptrs) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < l->n; i++)
        ptrs[i] = &l->items[i];
    Grpc__AdminListSpidersResponse resp = GRPC__ADMIN_LIST_SPIDERS_RESPONSE__INIT;
    resp.n_spiders = l->n;
    resp.spiders = ptrs;
    srv_call_reply(c, &resp.base);
    free(ptrs);
}

/* ---- PushSpider ---- */

struct push {
    struct spiders_rpc *sp;
    struct srv_call *call; /* NULL once finished */
    bool started;
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    char sha256[SPIDER_SHA256_HEX + 1];
    uint64_t size, got;
    int fd;
    char part[PATH_MAX]; /* "" when there is no .part file (any more) */
    struct spider_hash *hash;
};

/* Ends the push: a refusal removes the .part file. */
static void push_end(struct push *p, grpc_status_code st, const char *why)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (*p->part)
        unlink(p->part);
    *p->part = '\0';
    struct srv_call *c = p->call;
    p->call = NULL;
    if (c && st != GRPC_STATUS_OK) {
        log_info("spider push%s%s refused: %s", *p->name ? " of " : "", p->name, why);
        srv_call_fail(c, st, why);
    }
}

/* The first message: what is coming. The size bound is checked before anything is written. */
static void push_start(struct push *p, const Grpc__AdminPushSpiderRequest *req)
{
    struct spiders_rpc *sp = p->sp;
    char why[256];
    if (!*req->name || !*req->sha256 || req->data.len) {
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT,
                 "the first message names the spider and gives the archive's size and sha256, "
                 "without data");
        return;
    }
    snprintf(p->name, sizeof(p->name), "%s", req->name);
    snprintf(p->sha256, sizeof(p->sha256), "%s", req->sha256);
    p->size = req->size;
    if (req->size > sp->bounds.max_bytes) {
        snprintf(why, sizeof(why),
                 "archive of %" PRIu64 " bytes refused: over the size bound of %" PRIu64
                 " bytes (--spider-max-bytes)",
                 req->size, sp->bounds.max_bytes);
        push_end(p, GRPC_STATUS_RESOURCE_EXHAUSTED, why);
        return;
    }
    char rnd[17];
    datadir_random_hex(rnd, 8);
    snprintf(p->part, sizeof(p->part), "%s/push-%s.part", sp->dir, rnd);
    p->fd = open(p->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (p->fd < 0 || !(p->hash = spider_hash_new())) {
        log_error("spider push: cannot create %s: %s", p->part, strerror(errno));
        if (p->fd < 0)
            *p->part = '\0';
        push_end(p, GRPC_STATUS_UNAVAILABLE, "cannot store the archive");
        return;
    }
    p->started = true;
}

static void push_data(struct push *p, const Grpc__AdminPushSpiderRequest *req)
{
    if (*req->name || *req->sha256 || req->size) {
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT, "only the first message names the spider");
        return;
    }
    if (req->data.len > p->size - p->got) {
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT, "more data than the size announced");
        return;
    }
    int rc = spider_write_at(p->fd, req->data.data, req->data.len, p->got);
    if (rc < 0) {
        log_error("spider push: cannot write %s: %s", p->part, strerror(-rc));
        push_end(p, GRPC_STATUS_UNAVAILABLE, "cannot store the archive");
        return;
    }
    spider_hash_update(p->hash, req->data.data, req->data.len);
    p->got += req->data.len;
}

/* Moves the checked .part file to its address and records the version. */
static grpc_status_code push_store(struct push *p, const struct spider_stats *st, uint32_t *version,
                                   const char **why)
{
    struct spiders_rpc *sp = p->sp;
    char final[PATH_MAX];
    archive_path(sp, p->sha256, final);
    *why = "cannot store the archive";
    if (fsync(p->fd) < 0 || rename(p->part, final) < 0 || sync_dir(sp->dir) < 0) {
        log_error("spider push: cannot store %s: %s", final, strerror(errno));
        return GRPC_STATUS_UNAVAILABLE;
    }
    *p->part = '\0';
    /* The row on its own transaction, durable before the answer: changes others made in the
     * open group are committed first. */
    if (group_is_open(sp->group))
        group_commit(sp->group);
    /* On a store several masters share, the archive goes there first: no version is ever named
     * that another master could not serve. */
    int rc = store_spider_archive_put(sp->store, p->sha256, final);
    if (rc < 0 && rc != -ENOTSUP) {
        *why = "cannot store the archive in the shared store";
        return codec_status_from_errno(rc);
    }
    struct spider_row r = {.size = p->size, .files = st->files, .unpacked = st->bytes};
    memcpy(r.name, p->name, sizeof(r.name));
    memcpy(r.sha256, p->sha256, sizeof(r.sha256));
    rc = store_spider_add(sp->store, &r, clock_now_ms(sp->loop), version);
    if (rc < 0) {
        /* The archive stays: a later push of the same bytes finds it in place. */
        *why = "cannot record the version";
        return codec_status_from_errno(rc);
    }
    return GRPC_STATUS_OK;
}

/* The client half-closed: check everything, then store. */
static void push_finish(struct push *p)
{
    char why[512], actual[SPIDER_SHA256_HEX + 1];
    if (!p->started) {
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT, "no archive was sent");
        return;
    }
    if (p->got != p->size) {
        snprintf(why, sizeof(why),
                 "archive cut short: %" PRIu64 " of the %" PRIu64 " bytes announced arrived",
                 p->got, p->size);
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT, why);
        return;
    }
    spider_hash_final(p->hash, actual);
    if (strcmp(actual, p->sha256) != 0) {
        snprintf(why, sizeof(why), "archive refused: its SHA-256 is %s, not the %s announced",
                 actual, p->sha256);
        push_end(p, GRPC_STATUS_INVALID_ARGUMENT, why);
        return;
    }
    struct spider_stats st;
    int rc = spider_check(p->part, &p->sp->bounds, &st, why, sizeof(why));
    if (rc < 0) {
        push_end(p, rc == -EFBIG ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT,
                 why);
        return;
    }
    uint32_t version = 0;
    const char *fail_why;
    grpc_status_code status = push_store(p, &st, &version, &fail_why);
    if (status != GRPC_STATUS_OK) {
        push_end(p, status, fail_why);
        return;
    }
    log_info("spider %s@%u stored: %s, %" PRIu64 " bytes, %" PRIu64 " entries", p->name, version,
             p->sha256, p->size, st.files);
    struct srv_call *c = p->call;
    push_end(p, GRPC_STATUS_OK, NULL);
    struct spider_list l = {0};
    struct spider_row row;
    if (store_spider_get(p->sp->store, p->name, version, &row) == 0 &&
        collect_spider(&l, &row) == 0)
        reply_list(c, &l);
    else
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "stored, but cannot read the version back");
    spider_list_free(&l);
}

static void push_on_message(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct push *p = srv_call_user(c);
    if (!p->call)
        return;
    if (!msg) {
        push_finish(p);
        return;
    }
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__admin_push_spider_request__descriptor, &m, &why);
    if (rc < 0) {
        push_end(p, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__AdminPushSpiderRequest *req = (const void *)m; /* validated */
    if (p->started)
        push_data(p, req);
    else
        push_start(p, req);
    protobuf_c_message_free_unpacked(m, NULL);
    if (p->call)
        srv_call_read(c);
}

static void push_on_done(struct srv_call *c, bool cancelled)
{
    push_end(srv_call_user(c), GRPC_STATUS_CANCELLED, "the client went away");
}

static void push_on_free(struct srv_call *c)
{
    struct push *p = srv_call_user(c);
    push_end(p, GRPC_STATUS_CANCELLED, "");
    spider_hash_free(p->hash);
    free(p);
}

static const struct srv_handler push_handler = {
    .on_message = push_on_message,
    .on_done = push_on_done,
    .on_free = push_on_free,
};

static void on_push(struct srv_call *c, void *ctx)
{
    struct push *p = calloc(1, sizeof(*p));
    if (!p) {
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    p->sp = ctx;
    p->call = c;
    p->fd = -1;
    srv_call_bind(c, &push_handler, p);
    srv_call_read(c);
}

/* ---- ListSpiders, RemoveSpider ---- */

static void on_list(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct spiders_rpc *sp = ctx;
    const Grpc__AdminSpiderRequest *req = (const void *)msg; /* validated */
    char name[LIMIT_SPIDER_NAME_MAX + 1];
    uint32_t version = 0;
    bool named = *req->ref && spider_ref_parse(req->ref, name, &version);
    struct spider_list l = {0};
    int rc = store_spider_list(sp->store, named ? name : NULL, version, collect_spider, &l);
    if (rc < 0)
        srv_call_fail(c, codec_status_from_errno(rc), "cannot list the spiders");
    else if (named && l.n == 0)
        srv_call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown spider or version");
    else
        reply_list(c, &l);
    spider_list_free(&l);
}

/* A version still needed by a task not ended is kept: the task's worker may yet fetch it. */
static grpc_status_code check_unused(struct spiders_rpc *sp, const struct spider_list *l, char *why,
                                     size_t why_len)
{
    for (size_t i = 0; i < l->n; i++) {
        char id[TASK_ID_LEN + 1];
        enum task_status status;
        int rc =
            store_spider_task_using(sp->store, l->items[i].name, l->items[i].version, id, &status);
        if (rc < 0) {
            snprintf(why, why_len, "cannot look for the tasks of the spider");
            return codec_status_from_errno(rc);
        }
        if (rc == 1) {
            snprintf(why, why_len,
                     "%s@%u is still needed by task %s (%s): cancel it or wait for it to end",
                     l->items[i].name, l->items[i].version, id, task_status_name(status));
            return GRPC_STATUS_FAILED_PRECONDITION;
        }
    }
    return GRPC_STATUS_OK;
}

/* Removes the archives of the removed versions that no version names any more. */
static void remove_archives(struct spiders_rpc *sp, const struct spider_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        bool used = true;
        if (store_spider_sha_used(sp->store, l->items[i].sha256, &used) < 0 || used)
            continue;
        char path[PATH_MAX];
        archive_path(sp, l->items[i].sha256, path);
        if (unlink(path) < 0 && errno != ENOENT)
            log_warn("spider: cannot remove %s: %s", path, strerror(errno));
        int rc = store_spider_archive_drop(sp->store, l->items[i].sha256);
        if (rc < 0 && rc != -ENOTSUP)
            log_warn("spider: cannot drop the archive %s from the shared store: %s",
                     l->items[i].sha256, strerror(-rc));
    }
    sync_dir(sp->dir);
}

static void on_remove(struct srv_call *c, void *ctx, const ProtobufCMessage *msg)
{
    struct spiders_rpc *sp = ctx;
    const Grpc__AdminSpiderRequest *req = (const void *)msg; /* validated */
    char name[LIMIT_SPIDER_NAME_MAX + 1], why[256];
    uint32_t version = 0;
    if (!spider_ref_parse(req->ref, name, &version)) {
        srv_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "ref: " RULE_SPIDER_REF);
        return;
    }
    struct spider_list l = {0};
    int rc = store_spider_list(sp->store, name, version, collect_spider, &l);
    grpc_status_code st = rc < 0 ? codec_status_from_errno(rc) : GRPC_STATUS_OK;
    snprintf(why, sizeof(why), rc < 0 ? "cannot list the spiders" : "unknown spider or version");
    if (rc == 0)
        st = GRPC_STATUS_NOT_FOUND;
    if (st == GRPC_STATUS_OK)
        st = check_unused(sp, &l, why, sizeof(why));
    if (st == GRPC_STATUS_OK && (rc = store_spider_remove(sp->store, name, version)) < 0) {
        st = codec_status_from_errno(rc);
        snprintf(why, sizeof(why), "cannot remove the spider");
    }
    if (st == GRPC_STATUS_OK) {
        remove_archives(sp, &l);
        log_info("spider %s removed (%zu version%s)", req->ref, l.n, l.n == 1 ? "" : "s");
        reply_list(c, &l);
    } else {
        srv_call_fail(c, st, why);
    }
    spider_list_free(&l);
}

/* ---- SpiderService.Fetch ---- */

struct fetch {
    struct spiders_rpc *sp;
    struct srv_call *call;
    int fd;
    uint64_t size, offset;
    uint8_t *buf;
};

static void fetch_end(struct fetch *f, grpc_status_code st, const char *why)
{
    struct srv_call *c = f->call;
    f->call = NULL;
    if (c)
        srv_call_finish(c, st, why, NULL);
}

/* Sends the next chunk, or ends the stream after the last one: one write in flight. */
static void fetch_pump(struct fetch *f)
{
    if (!f->call || srv_call_write_pending(f->call))
        return;
    if (f->offset >= f->size) {
        fetch_end(f, GRPC_STATUS_OK, NULL);
        return;
    }
    uint64_t left = f->size - f->offset;
    size_t want = left < LIMIT_SPIDER_CHUNK ? (size_t)left : LIMIT_SPIDER_CHUNK;
    ssize_t n = pread(f->fd, f->buf, want, (off_t)f->offset);
    if (n <= 0) {
        log_error("spider fetch: cannot read the archive: %s", n < 0 ? strerror(errno) : "EOF");
        fetch_end(f, GRPC_STATUS_UNAVAILABLE, "cannot read the archive");
        return;
    }
    Grpc__SpiderChunk chunk = GRPC__SPIDER_CHUNK__INIT;
    chunk.offset = f->offset;
    chunk.size = f->size;
    chunk.data.data = f->buf;
    chunk.data.len = (size_t)n;
    f->offset += (uint64_t)n;
    srv_call_write(f->call, codec_pack(&chunk.base));
}

static void fetch_on_sent(struct srv_call *c, bool ok)
{
    struct fetch *f = srv_call_user(c);
    if (!ok)
        fetch_end(f, GRPC_STATUS_CANCELLED, "write failed");
    else
        fetch_pump(f);
}

static void fetch_on_done(struct srv_call *c, bool cancelled)
{
    fetch_end(srv_call_user(c), GRPC_STATUS_CANCELLED, "the worker went away");
}

static void fetch_on_free(struct srv_call *c)
{
    struct fetch *f = srv_call_user(c);
    if (f->fd >= 0)
        close(f->fd);
    free(f->buf);
    free(f);
}

static const struct srv_handler fetch_handler = {
    .on_sent = fetch_on_sent,
    .on_done = fetch_on_done,
    .on_free = fetch_on_free,
};

/*
 * Opens the archive named sha256 for reading. On a store several masters share, an archive this
 * master does not have (another one took the push) is first copied from the store into its data
 * dir, which then keeps it. -1 with errno set when there is none.
 */
static int open_archive(struct spiders_rpc *sp, const char *sha256)
{
    char path[PATH_MAX], part[PATH_MAX], rnd[17];
    archive_path(sp, sha256, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    datadir_random_hex(rnd, 8);
    snprintf(part, sizeof(part), "%s/fetch-%s.part", sp->dir, rnd);
    int rc = store_spider_archive_get(sp->store, sha256, part);
    if (rc == 0 && sync_path(part, 0) == 0 && rename(part, path) == 0) {
        log_info("spider %.12s: copied from the shared store", sha256);
        return open(path, O_RDONLY | O_CLOEXEC);
    }
    if (rc == 0)
        log_error("spider: cannot keep %s as %s: %s", part, path, strerror(errno));
    unlink(part);
    errno = ENOENT;
    return -1;
}

static void fetch_on_request(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct fetch *f = srv_call_user(c);
    ProtobufCMessage *m = NULL;
    const char *why;
    int rc = srv_call_decode(c, msg, &grpc__spider_fetch_request__descriptor, &m, &why);
    if (rc < 0) {
        fetch_end(f, codec_status_from_errno(rc), why);
        return;
    }
    const Grpc__SpiderFetchRequest *req = (const void *)m; /* validated: a hash, not a path */
    f->fd = open_archive(f->sp, req->sha256);
    struct stat sb;
    if (f->fd < 0 || fstat(f->fd, &sb) < 0) {
        fetch_end(f, GRPC_STATUS_NOT_FOUND, "no spider archive has that sha256");
    } else if (req->offset > (uint64_t)sb.st_size) {
        fetch_end(f, GRPC_STATUS_OUT_OF_RANGE, "offset: past the end of the archive");
    } else {
        log_info("spider %.12s: sending from byte %" PRIu64 " of %lld to %s", req->sha256,
                 req->offset, (long long)sb.st_size, srv_call_peer(c));
        f->size = (uint64_t)sb.st_size;
        f->offset = req->offset;
        srv_call_bind(c, &fetch_handler, f);
        fetch_pump(f);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static const struct srv_handler fetch_request_handler = {
    .on_message = fetch_on_request,
    .on_free = fetch_on_free,
};

static void on_fetch(struct srv_call *c, void *ctx)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (!f || !(f->buf = malloc(LIMIT_SPIDER_CHUNK))) {
        free(f);
        srv_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    f->sp = ctx;
    f->call = c;
    f->fd = -1;
    srv_call_bind(c, &fetch_request_handler, f);
    srv_call_read(c);
}

/* ---- setup ---- */

int spiders_rpc_create(struct ev_loop *loop, struct store *store, struct group *group,
                       const struct spiders_rpc_opts *opts, struct spiders_rpc **out)
{
    struct spiders_rpc *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return -ENOMEM;
    sp->loop = loop;
    sp->store = store;
    sp->group = group;
    sp->bounds = (struct spider_bounds){.max_bytes = opts->max_bytes, .max_files = opts->max_files};
    int n = spider_dir_prepare(opts->data_dir, sp->dir, sizeof(sp->dir));
    if (n < 0) {
        free(sp);
        return n;
    }
    if (n)
        log_info("spider: removed %d push%s that did not finish from %s", n, n == 1 ? "" : "es",
                 sp->dir);
    *out = sp;
    return 0;
}

void spiders_rpc_destroy(struct spiders_rpc *sp)
{
    free(sp);
}

void spiders_rpc_add_methods(struct spiders_rpc *sp, struct rpc_server *s)
{
    rpc_server_add_stream(s, "/grpc.AdminService/PushSpider", ROLE_ADMIN, on_push, sp);
    rpc_server_add_unary(s, "/grpc.AdminService/ListSpiders", ROLE_ADMIN,
                         &grpc__admin_spider_request__descriptor, on_list, sp);
    rpc_server_add_unary(s, "/grpc.AdminService/RemoveSpider", ROLE_ADMIN,
                         &grpc__admin_spider_request__descriptor, on_remove, sp);
    rpc_server_add_stream(s, "/grpc.SpiderService/Fetch", ROLE_NODE, on_fetch, sp);
}

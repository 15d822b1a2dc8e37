#include "master/ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/fence.h"
#include "entity/response.pb-c.h"
#include "master/group.h"
#include "master/jsonlines.h"
#include "master/metrics.h"
#include "store/store.h"
#include "rpc/codec.h"
#include "rpc/validate.h"
#include "runtime/jsontext.h"
#include "runtime/list.h"
#include "runtime/log.h"
#include "services/task_service.pb-c.h"

/* Past this much data in one open group, commit before reading more (bounds memory and loss). */
#define GROUP_MAX_BYTES (64u << 20)

/*
 * A worker sends a task's next segment (stream) while the previous one waits for its answer, and
 * the master may read the two streams' messages in any order. So a message that leaves a gap is
 * not refused at once while another stream of the same connection and task (or of a task not yet
 * known: nothing of it read) is still being read: it is parked, the stream is not read further,
 * and it is tried again each time that other stream stores a message, reaches its end or is
 * answered. Only a gap that remains then is refused (OUT_OF_RANGE). A stream has at most one
 * stream parked behind it and waits behind at most one.
 */
struct stream {
    struct ingest *in;
    struct srv_call *call;
    struct list_link link; /* in ingest.streams */
    uint64_t dirty_group;  /* the group holding this stream's newest data; 0 = none */
    bool half_closed;
    uint64_t messages, lines, items;
    char task_id[TASK_ID_LEN + 1]; /* of its newest message; "" before the first */
    ProtobufCMessage *parked;      /* the message that left a gap, or NULL */
    size_t parked_len;             /* its size on the wire */
    struct stream *blocker;        /* while parked: the stream whose progress it waits for */
    struct stream *waiter;         /* the stream parked behind this one, or NULL */
    struct stream *woken_next;     /* in ingest.woken */
};

struct ingest {
    struct store *store;
    struct group *group;
    struct list_link *streams; /* every open Connect stream */
    struct stream *woken;      /* parked streams to try again */
    bool waking;               /* run_woken() is running */
    size_t group_bytes;        /* carried by the open group */
    struct metrics *metrics;   /* NULL: none kept */
    bool draining;             /* the master stops: no stream stays open */
};

/* The newly stored records are the batch's last accepted ones (a resent prefix is skipped); a log
 * line takes its bytes and a newline in the log file. */
static void count_stored(struct metrics *m, const struct ingest_batch *b, size_t accepted,
                         bool items)
{
    if (items) {
        m->result_items += accepted;
        return;
    }
    m->log_lines += accepted;
    for (size_t i = b->n - accepted; i < b->n; i++)
        m->log_bytes += b->lens[i] + 1;
}

static void run_woken(struct ingest *in);

/* s moved on (stored a message, reached its end, or is answered): the stream parked behind it is
 * tried again (by run_woken). */
static void progress(struct stream *s)
{
    struct stream *w = s->waiter;
    if (!w)
        return;
    s->waiter = NULL;
    w->blocker = NULL;
    w->woken_next = s->in->woken;
    s->in->woken = w;
}

/* s is answered: it neither waits nor holds anyone up any more. */
static void unpark(struct stream *s)
{
    struct ingest *in = s->in;
    for (struct stream **p = &in->woken; *p; p = &(*p)->woken_next) {
        if (*p == s) {
            *p = s->woken_next;
            break;
        }
    }
    if (s->blocker)
        s->blocker->waiter = NULL;
    s->blocker = NULL;
    if (s->parked)
        protobuf_c_message_free_unpacked(s->parked, NULL);
    s->parked = NULL;
    progress(s);
}

static void reply(struct stream *s, grpc_status_code st, const char *details)
{
    struct srv_call *c = s->call;
    if (!c)
        return;
    s->call = NULL;
    unpark(s);
    srv_call_bind(c, NULL, NULL);
    if (st == GRPC_STATUS_OK) {
        Grpc__Response resp = GRPC__RESPONSE__INIT;
        resp.code = GRPC__RESPONSE_CODE__OK;
        srv_call_reply(c, &resp.base);
    } else {
        srv_call_fail(c, st, details);
    }
    list_unlink(&s->link);
    free(s);
}

void ingest_committed(struct ingest *in, uint64_t group, bool ok)
{
    in->group_bytes = 0;
    list_foreach(s, in->streams, struct stream, link)
    {
        if (s->dirty_group == group) {
            if (!ok) {
                /* Nothing of the group is stored: the stream must be resent from the master's
                 * cursor, so it cannot go on. */
                reply(s, GRPC_STATUS_UNAVAILABLE, "could not store the data; resend");
            } else {
                s->dirty_group = 0;
                if (s->half_closed)
                    reply(s, GRPC_STATUS_OK, NULL);
            }
        }
    }
    run_woken(in);
}

void ingest_batch_free(struct ingest_batch *b)
{
    if (b->owned)
        for (size_t i = 0; i < b->n; i++)
            free(b->owned[i]);
    free(b->owned);
    /* The log lines' arrays are the reader's; the items' are ours, whether or not they filled. */
    if (b->ptrs != b->lines.ptrs) {
        free(b->ptrs);
        free(b->lens);
    }
    jsonlines_free(&b->lines);
    json_decref(b->root);
}

static int parse_items(struct ingest_batch *b, const uint8_t *data, size_t len)
{
    json_error_t err;
    /* A \u0000 in a string value is valid JSON; json_dumps writes it back escaped. */
    b->root = json_loadb((const char *)data, len, JSON_ALLOW_NUL, &err);
    if (!json_is_array(b->root))
        return -EINVAL;
    size_t n = json_array_size(b->root);
    if (n == 0)
        return 0;
    b->ptrs = calloc(n, sizeof(*b->ptrs));
    b->lens = calloc(n, sizeof(*b->lens));
    b->owned = calloc(n, sizeof(*b->owned));
    if (!b->ptrs || !b->lens || !b->owned)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(b->root, i);
        if (!json_is_object(v))
            return -EINVAL;
        /* Stored as text that ReadResults can serve: jansson's 17 digits may make a real grow. */
        size_t text_len;
        if (!(b->owned[i] = jsontext_within(v, LIMIT_ITEM_MAX, &text_len)))
            return text_len ? -EMSGSIZE : -ENOMEM;
        b->n = i + 1;
        b->ptrs[i] = b->owned[i];
        b->lens[i] = text_len;
    }
    return (int)n;
}

int ingest_batch_parse(struct ingest_batch *b, const uint8_t *data, size_t len, bool items)
{
    memset(b, 0, sizeof(*b));
    if (items)
        return parse_items(b, data, len);
    /* Log lines are most of the traffic: read them without building a JSON tree. */
    int n = jsonlines_parse(&b->lines, (const char *)data, len);
    if (n > 0) {
        b->ptrs = b->lines.ptrs;
        b->lens = b->lines.lens;
        b->n = (size_t)n;
    }
    return n;
}

/*
 * Output sent under an assignment epoch (core/fence.h) is taken only while that assignment is the
 * task's current one: a copy the master took back must not write into the task's log. 0 (no epoch,
 * an upstream worker) is not checked. -EPERM (PERMISSION_DENIED: the uploader drops the task's
 * output) with *why set, -ENOENT, or an error of the store.
 */
static int check_epoch(struct ingest *in, const char *task_id, uint64_t epoch, const char **why)
{
    if (!epoch)
        return 0;
    uint64_t current;
    int rc = store_task_epoch(in->store, task_id, &current);
    if (rc < 0)
        return rc;
    if (!fence_stale(current, epoch))
        return 0;
    *why = fence_reason(FENCE_STALE);
    return -EPERM;
}

/* A stream whose messages may still fill s's gap (see struct stream), or NULL. */
static struct stream *blocker_of(const struct stream *s)
{
    const char *peer = srv_call_peer(s->call);
    if (!strcmp(peer, "?"))
        return NULL; /* its connection is not known */
    list_foreach(o, s->in->streams, struct stream, link)
    {
        if (o != s && !o->half_closed && !o->parked && !o->waiter &&
            (!o->task_id[0] || !strcmp(o->task_id, s->task_id)) &&
            !strcmp(srv_call_peer(o->call), peer))
            return o;
    }
    return NULL;
}

/* Holds m (len bytes on the wire), which left a gap, behind a stream that may fill it. */
static bool park(struct stream *s, ProtobufCMessage *m, size_t len)
{
    struct stream *b = blocker_of(s);
    if (!b)
        return false;
    s->parked = m;
    s->parked_len = len;
    s->blocker = b;
    b->waiter = s;
    log_debug("task %s: Connect message past a gap waits for another stream", s->task_id);
    return true;
}

enum took {
    TOOK_STORED,  /* read on (the stream may have been answered by a commit meanwhile) */
    TOOK_PARKED,  /* it waits behind another stream */
    TOOK_REFUSED, /* the stream is answered */
};

/* Stores one decoded message of s (len bytes on the wire); m is consumed. */
static enum took take(struct stream *s, ProtobufCMessage *m, size_t len)
{
    struct ingest *in = s->in;
    const Grpc__TaskServiceConnectRequest *req = (const void *)m; /* validated */
    bool items = req->code == GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA;
    memcpy(s->task_id, req->task_id, sizeof(s->task_id));
    struct ingest_batch b;
    int n = ingest_batch_parse(&b, req->data.data, req->data.len, items);
    size_t accepted = 0;
    bool gap = false;
    const char *why = NULL;
    int rc = 0;
    if (n < 0) {
        rc = n;
    } else if (n > 0 && (rc = validate_seq_span(req->seq, b.n, &why)) == 0 &&
               (rc = check_epoch(in, req->task_id, req->epoch, &why)) == 0 &&
               (rc = group_join(in->group)) == 0) {
        rc = items ? store_items_append(in->store, req->task_id, b.ptrs, b.lens, b.n, req->seq,
                                        &accepted)
                   : store_log_append(in->store, req->task_id, b.ptrs, b.lens, b.n, req->seq,
                                      &accepted);
        gap = rc == -ERANGE;
        if (rc == 0 && in->metrics)
            count_stored(in->metrics, &b, accepted, items);
    }
    ingest_batch_free(&b);
    if (gap && park(s, m, len))
        return TOOK_PARKED;
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc < 0) {
        if (!why)
            why = rc == -ERANGE     ? "seq gap: resend from the master's count"
                  : rc == -ENOENT   ? "unknown task"
                  : rc == -EINVAL   ? (items ? "data must be a JSON array of objects"
                                             : "data must be a JSON array of strings")
                  : rc == -EMSGSIZE ? "a result item too large to store and serve back"
                                    : "cannot store the data";
        log_debug("task %s: Connect refused: %s", s->task_id, why);
        /* Only what is wrong with the message itself is refused with its own status: a worker
         * drops a message refused so twice. What the master could not do (memory, disk) is
         * UNAVAILABLE, like a failed commit: the worker resends. */
        bool refused =
            rc == -EINVAL || rc == -ENOENT || rc == -ERANGE || rc == -EMSGSIZE || rc == -EPERM;
        reply(s, refused ? codec_status_from_errno(rc) : GRPC_STATUS_UNAVAILABLE, why);
        return TOOK_REFUSED;
    }
    s->messages++;
    if (items)
        s->items += accepted;
    else
        s->lines += accepted;
    if (accepted) {
        s->dirty_group = group_number(in->group);
        in->group_bytes += len;
    }
    progress(s);
    if (in->group_bytes >= GROUP_MAX_BYTES)
        group_commit(in->group); /* may answer s */
    return TOOK_STORED;
}

/* Tries the parked messages whose blockers moved on. Only the outermost call runs: a retry may
 * store, commit and wake others, which the same loop takes. */
static void run_woken(struct ingest *in)
{
    if (in->waking)
        return;
    in->waking = true;
    struct stream *w;
    while ((w = in->woken)) {
        in->woken = w->woken_next;
        struct srv_call *c = w->call;
        ProtobufCMessage *m = w->parked;
        w->parked = NULL;
        if (take(w, m, w->parked_len) == TOOK_STORED)
            srv_call_read(c);
    }
    in->waking = false;
}

static void on_message(struct srv_call *c, grpc_byte_buffer *msg)
{
    struct stream *s = srv_call_user(c);
    struct ingest *in = s->in;
    if (!msg) {
        /* The worker half-closed: answer once what it sent is durable. */
        s->half_closed = true;
        progress(s);
        if (!s->dirty_group)
            reply(s, GRPC_STATUS_OK, NULL);
        else
            group_want_commit(in->group);
        run_woken(in);
        return;
    }
    ProtobufCMessage *m = NULL;
    const char *why = NULL;
    int rc = srv_call_decode(c, msg, &grpc__task_service_connect_request__descriptor, &m, &why);
    if (rc < 0) {
        reply(s, codec_status_from_errno(rc), why);
        run_woken(in);
        return;
    }
    const Grpc__TaskServiceConnectRequest *req = (const void *)m; /* validated */
    if (req->code == GRPC__TASK_SERVICE_CONNECT_CODE__PING) {
        protobuf_c_message_free_unpacked(m, NULL);
        srv_call_read(c);
        return;
    }
    if (take(s, m, grpc_byte_buffer_length(msg)) == TOOK_STORED)
        srv_call_read(c);
    run_woken(in);
}

static void on_done(struct srv_call *c, bool cancelled)
{
    struct stream *s = srv_call_user(c);
    struct ingest *in = s->in;
    if (cancelled)
        reply(s, GRPC_STATUS_CANCELLED, "stream ended");
    run_woken(in);
}

static const struct srv_handler connect_handler = {
    .on_message = on_message,
    .on_done = on_done,
};

static void on_connect(struct srv_call *c, void *ctx)
{
    struct ingest *in = ctx;
    if (in->draining) {
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "master stopping");
        return;
    }
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        /* Not RESOURCE_EXHAUSTED: a worker takes that as a refusal of what it sent. */
        srv_call_fail(c, GRPC_STATUS_UNAVAILABLE, "out of memory");
        return;
    }
    s->in = in;
    s->call = c;
    list_push(&in->streams, &s->link);
    srv_call_bind(c, &connect_handler, s);
    srv_call_read(c);
}

int ingest_create(struct store *store, struct group *group, struct ingest **out)
{
    struct ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->store = store;
    in->group = group;
    *out = in;
    return 0;
}

void ingest_drain(struct ingest *in)
{
    in->draining = true;
    group_commit(in->group); /* answers the streams it completes */
    while (in->streams)
        reply(list_item(in->streams, struct stream, link), GRPC_STATUS_UNAVAILABLE,
              "master stopping");
}

void ingest_destroy(struct ingest *in)
{
    if (!in)
        return;
    ingest_drain(in);
    free(in);
}

void ingest_add_methods(struct ingest *in, struct rpc_server *s)
{
    rpc_server_add_stream(s, "/grpc.TaskService/Connect", ROLE_NODE, on_connect, in);
}

void ingest_set_metrics(struct ingest *in, struct metrics *m)
{
    in->metrics = m;
}

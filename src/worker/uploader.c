#include "worker/uploader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

#include "core/limits.h"
#include "core/resync.h"
#include "rpc/client.h"
#include "rpc/codec.h"
#include "rpc/validate.h"
#include "runtime/jsonsafe.h"
#include "runtime/jsontext.h"
#include "runtime/log.h"
#include "services/task_service.pb-c.h"

/*
 * What one message gathers before it is sealed. Every message costs both sides a wake-up and the
 * master a store append, so log lines, which the master reads without building a tree, go in
 * messages of 1 MiB; result items are parsed into one on the master's loop, so theirs stay small,
 * and a message of small items stays under the master's LIMIT_DATA_VALUES_MAX.
 */
#define LOG_BATCH_BYTES    (1u << 20)
#define LOG_BATCH_ENTRIES  16384
#define ITEM_BATCH_BYTES   (256u << 10)
#define ITEM_BATCH_ENTRIES 4096
#define LINGER_S           0.005      /* a lone line waits this long for company */
#define SEGMENT_BYTES      (4u << 20) /* a stream is closed (and acknowledged) after this */
/* Segments sent and not yet answered: the next one fills while the last one's commit runs. */
#define SEGMENTS_IN_FLIGHT 2
#define RETRY_S            0.5        /* a refused segment on a live connection waits this */
#define MEMORY_KEPT        (8u << 20) /* kept in memory; beyond this, messages go to the spool */
/* The most data one message may carry: what the master's validator takes, and room under the gRPC
 * message limit for the rest of the message (code, task id, seq and field headers: < 64 bytes). */
#define DATA_MAX (RPC_MAX_MESSAGE - 64 < LIMIT_DATA_MAX ? RPC_MAX_MESSAGE - 64 : LIMIT_DATA_MAX)

/* A packed message: in memory, or spilled to the task's spool file when too much is kept. */
struct message {
    struct message *next;
    grpc_slice packed; /* valid unless spilled */
    bool spilled;
    uint64_t offset; /* in the spool file, when spilled */
    size_t len;
    bool items;
    bool has_note;       /* it carries a line of ours about output that was lost */
    uint64_t first_seq;  /* of its first line or item, as produced */
    uint64_t last_seq;   /* of the last one */
    uint64_t seq_offset; /* lines or items of its kind dropped before it was packed */
};

struct batch {
    char *buf; /* a JSON array under construction */
    size_t len, cap;
    size_t entries;
    uint64_t first_seq;
    bool has_note;
};

/* A Connect stream: the next `messages` kept messages after those of the older segments. */
struct segment {
    struct rpc_call *call; /* NULL once answered */
    size_t bytes, messages;
    bool closing;
    /* Answered before an older segment: its status waits until theirs are settled. */
    bool answered;
    grpc_status_code status;
    char details[160];
};

struct uploader {
    struct ev_loop *loop;
    struct session *sess;
    struct uploader_hooks hooks;
    void *ctx;
    char task_id[TASK_ID_LEN + 1];
    uint64_t epoch; /* named in every message (core/fence.h); 0: none */

    struct batch logs, items;
    uint64_t log_lines, data_items; /* produced, = next seq - 1 */
    /* Lines and items the master refused for good. The master numbers a task's entries without
     * gaps, so everything after them goes out numbered that much lower. */
    uint64_t logs_dropped, items_dropped;
    ev_timer linger;
    ev_timer retry;

    /* Messages kept until acknowledged; [head, cursor) are on the segments in flight. */
    struct message *head, *tail, *cursor;
    size_t kept_bytes;   /* all kept messages */
    size_t memory_bytes; /* those in memory */
    size_t spilled;      /* how many are in the spool file */
    char *spool_path;    /* NULL: never spill */
    int spool_fd;
    uint64_t spool_end;
    size_t high_water, low_water; /* back-pressure starts at high, ends at low */
    bool pressure;

    /* In flight, oldest first; all on the data connection of generation stream_gen. */
    struct segment seg[SEGMENTS_IN_FLIGHT];
    unsigned nseg;
    unsigned stream_gen;
    /* After a refusal that may concern one message: how many more messages go one per stream,
     * and how many such refusals came in a row (no stream acknowledged in between). */
    size_t one_by_one;
    unsigned refusals;
    bool finished, done;
};

static void pump(struct uploader *u);

/* Appends s as a JSON string; s is valid UTF-8 already, so only quoting and controls matter. */
/* Makes room for `more` bytes (and the closing bracket) at the end of the batch. */
static int reserve(struct batch *b, size_t more)
{
    size_t need = b->len + more + 2;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(b->buf, cap);
    if (!buf)
        return -ENOMEM;
    b->buf = buf;
    b->cap = cap;
    return 0;
}

static int append_json_string(struct batch *b, const char *s, size_t n)
{
    if (reserve(b, n * 6 + 2) < 0)
        return -ENOMEM;
    char *p = b->buf + b->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        size_t plain = jsonsafe_plain_prefix(s + i, n - i);
        if (plain) {
            memcpy(p, s + i, plain);
            p += plain;
            i += plain;
            if (i == n)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            *p++ = '\\';
            *p++ = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    b->len = (size_t)(p - b->buf);
    return 0;
}

static int append_raw(struct batch *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return 0;
}

/* Writes a message to the spool file (created on first use); 0, or -errno and it stays. */
static int spill(struct uploader *u, struct message *m)
{
    if (!u->spool_path)
        return -ENOSYS;
    if (u->spool_fd < 0) {
        u->spool_fd = open(u->spool_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (u->spool_fd < 0) {
            log_warn("task %s: cannot create the spool %s (%s); output stays in memory", u->task_id,
                     u->spool_path, strerror(errno));
            free(u->spool_path);
            u->spool_path = NULL;
            return -errno;
        }
    }
    const uint8_t *p = GRPC_SLICE_START_PTR(m->packed);
    size_t done = 0;
    while (done < m->len) {
        ssize_t w = pwrite(u->spool_fd, p + done, m->len - done, (off_t)(u->spool_end + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -errno;
        done += (size_t)w;
    }
    m->spilled = true;
    m->offset = u->spool_end;
    u->spool_end += m->len;
    u->spilled++;
    return 0;
}

/* The message's bytes, read back from the spool when spilled. The caller unrefs the slice. */
static int message_bytes(struct uploader *u, const struct message *m, grpc_slice *out)
{
    if (!m->spilled) {
        *out = grpc_slice_ref(m->packed);
        return 0;
    }
    grpc_slice slice = grpc_slice_malloc(m->len);
    size_t done = 0;
    while (done < m->len) {
        ssize_t r = pread(u->spool_fd, GRPC_SLICE_START_PTR(slice) + done, m->len - done,
                          (off_t)(m->offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            grpc_slice_unref(slice);
            return r < 0 ? -errno : -EIO;
        }
        done += (size_t)r;
    }
    *out = slice;
    return 0;
}

static void message_free(struct uploader *u, struct message *m)
{
    u->kept_bytes -= m->len;
    if (m->spilled) {
        /* Once nothing in the spool is kept, its space is given back. */
        if (--u->spilled == 0 && ftruncate(u->spool_fd, 0) == 0)
            u->spool_end = 0;
    } else {
        u->memory_bytes -= m->len;
        grpc_slice_unref(m->packed);
    }
    free(m);
}

/* Turns the batch into a packed message at the end of the queue. */
static void seal(struct uploader *u, struct batch *b, bool items)
{
    if (!b->entries)
        return;
    append_raw(b, "]", 1);
    Grpc__TaskServiceConnectRequest req = GRPC__TASK_SERVICE_CONNECT_REQUEST__INIT;
    req.code = items ? GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA
                     : GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS;
    req.task_id = u->task_id;
    req.epoch = u->epoch;
    req.data.data = (uint8_t *)b->buf;
    req.data.len = b->len;
    uint64_t offset = items ? u->items_dropped : u->logs_dropped;
    req.seq = b->first_seq - offset;
    struct message *m = malloc(sizeof(*m));
    if (!m) {
        log_error("task %s: out of memory; output lost", u->task_id);
        b->len = b->entries = 0;
        b->has_note = false;
        return;
    }
    size_t size = protobuf_c_message_get_packed_size(&req.base);
    m->packed = grpc_slice_malloc(size);
    protobuf_c_message_pack(&req.base, GRPC_SLICE_START_PTR(m->packed));
    m->len = size;
    m->spilled = false;
    if (u->memory_bytes + size > MEMORY_KEPT && spill(u, m) == 0) {
        grpc_slice_unref(m->packed);
        m->packed = grpc_empty_slice();
    } else {
        u->memory_bytes += size;
    }
    m->next = NULL;
    m->items = items;
    m->has_note = b->has_note;
    m->first_seq = b->first_seq;
    m->last_seq = b->first_seq + b->entries - 1;
    m->seq_offset = offset;
    if (u->tail)
        u->tail->next = m;
    else
        u->head = m;
    u->tail = m;
    if (!u->cursor)
        u->cursor = m;
    u->kept_bytes += size;
    b->len = b->entries = 0;
    b->has_note = false;
    if (!u->pressure && u->kept_bytes >= u->high_water) {
        u->pressure = true;
        if (u->hooks.on_pressure)
            u->hooks.on_pressure(u->ctx, true);
    }
}

static void seal_all(struct uploader *u)
{
    ev_timer_stop(u->loop, &u->linger);
    seal(u, &u->logs, false);
    seal(u, &u->items, true);
}

static void on_linger(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct uploader *u = w->data;
    seal_all(u);
    pump(u);
}

/* Opens the batch for a first entry, or seals it when the next one would not fit. */
static void make_room(struct uploader *u, struct batch *b, bool items, size_t add, uint64_t seq)
{
    size_t max_bytes = items ? ITEM_BATCH_BYTES : LOG_BATCH_BYTES;
    size_t max_entries = items ? ITEM_BATCH_ENTRIES : LOG_BATCH_ENTRIES;
    if (b->entries && (b->len + add > max_bytes || b->entries >= max_entries)) {
        seal(u, b, items);
        pump(u);
    }
    if (!b->entries) {
        b->len = 0;
        append_raw(b, "[", 1);
        b->first_seq = seq;
    } else {
        append_raw(b, ",", 1);
    }
    b->entries++;
    if (!ev_is_active(&u->linger)) {
        ev_timer_set(&u->linger, LINGER_S, 0.0);
        ev_timer_start(u->loop, &u->linger);
    }
}

/* Bytes a line takes as a JSON string: control characters other than \n \t \r take six. */
static size_t escaped_len(const char *s, size_t n)
{
    size_t out = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r')
            out += 1;
        else if (c < 0x20)
            out += 5;
    }
    return out;
}

/* The longest escaped line one message may carry, leaving room for the envelope under 4 MiB. */
#define ESCAPED_LINE_MAX (3u << 20)

void uploader_log(struct uploader *u, const char *line, size_t len)
{
    /* A line of control characters grows sixfold when escaped: split it so that every message
     * stays under the limit (on a UTF-8 boundary, which a control character always is). */
    if (len > ESCAPED_LINE_MAX / 6 && escaped_len(line, len) > ESCAPED_LINE_MAX) {
        size_t half = len / 2;
        while (half > 0 && ((unsigned char)line[half] & 0xC0) == 0x80)
            half--;
        uploader_log(u, line, half);
        uploader_log(u, line + half, len - half);
        return;
    }
    make_room(u, &u->logs, false, len + 3, u->log_lines + 1);
    if (append_json_string(&u->logs, line, len) < 0) {
        log_error("task %s: out of memory; log line lost", u->task_id);
        return;
    }
    u->log_lines++;
}

/*
 * Adds a line of our own to the task's log, saying what output was lost and why, so that whoever
 * reads the log sees the gap where it is. The message that carries it is marked: should the master
 * refuse that one too, no further note follows, so notes cannot beget each other.
 */
static void note(struct uploader *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct uploader *u, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "crawlab-node: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    uploader_log(u, line, strlen(line));
    u->logs.has_note = true;
}

/* Text from the master, fit for a log line: printable ASCII only (it may be anything). */
static void printable(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
}

/*
 * An item as compact JSON text that fits in one message of its own, "[" text "]", by every bound
 * the master applies to a message; or NULL (*len: its size as written by default, 0 when out of
 * memory). Fewer digits are tried only where no value changes (jsontext_within).
 */
static char *item_text(json_t *item, size_t *len)
{
    char *text = jsontext_within(item, LIMIT_ITEM_MAX, len);
    if (text &&
        validate_json_values((const uint8_t *)text, *len, LIMIT_DATA_VALUES_MAX - 1, NULL) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

void uploader_items(struct uploader *u, json_t *items)
{
    size_t i, dropped = 0, largest = 0;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        size_t n = 0;
        char *text = item_text(item, &n);
        if (!text && !n) {
            log_error("task %s: out of memory; result item lost", u->task_id);
            continue;
        }
        if (!text) {
            /* It could never be sent: it gets no number, so nothing after it waits for it. */
            log_warn("task %s: a result item of %zu bytes as JSON does not fit in a message of "
                     "%u bytes; dropped",
                     u->task_id, n, (unsigned)LIMIT_ITEM_MAX);
            dropped++;
            largest = n > largest ? n : largest;
            continue;
        }
        make_room(u, &u->items, true, n + 1, u->data_items + 1);
        append_raw(&u->items, text, n);
        free(text);
        u->data_items++;
    }
    if (dropped)
        note(u,
             "%zu result item%s not sent: larger than one message may carry (%zu bytes as JSON, "
             "limit %u)",
             dropped, dropped == 1 ? "" : "s", largest, (unsigned)LIMIT_ITEM_MAX);
}

/* ---- the Connect stream ---- */

/* Back-pressure ends once enough of what is kept has gone. */
static void pressure_check(struct uploader *u)
{
    if (u->pressure && u->kept_bytes <= u->low_water) {
        u->pressure = false;
        if (u->hooks.on_pressure)
            u->hooks.on_pressure(u->ctx, false);
    }
}

/* Frees the first n kept messages (those of a segment the master acknowledged). */
static void release_messages(struct uploader *u, size_t n)
{
    for (; n && u->head; n--) {
        struct message *m = u->head;
        if (u->cursor == m)
            u->cursor = m->next;
        u->head = m->next;
        message_free(u, m);
    }
    if (!u->head)
        u->tail = NULL;
    pressure_check(u);
}

static void finish_done(struct uploader *u, bool ok)
{
    if (u->done)
        return;
    u->done = true;
    if (u->hooks.on_done)
        u->hooks.on_done(u->ctx, ok);
}

/* The segment the call carries, or NULL for a call already dropped. */
static struct segment *segment_of(struct uploader *u, const struct rpc_call *c)
{
    for (unsigned i = 0; i < u->nseg; i++)
        if (u->seg[i].call == c)
            return &u->seg[i];
    return NULL;
}

/* Forgets every segment in flight (their calls are cancelled); what they carried goes again. */
static void drop_segments(struct uploader *u)
{
    for (unsigned i = 0; i < u->nseg; i++)
        if (u->seg[i].call)
            rpc_call_release(u->seg[i].call);
    u->nseg = 0;
    u->cursor = u->head;
}

static void stream_on_sent(struct rpc_call *c, bool ok)
{
    struct uploader *u = rpc_call_user(c);
    if (ok && segment_of(u, c))
        pump(u); /* a failed write is followed by on_status */
}

/* Sends the segment again after a pause, on this connection if it is still the live one. */
static void retry_later(struct uploader *u)
{
    if (session_online(u->sess) && session_generation(u->sess) == u->stream_gen) {
        ev_timer_set(&u->retry, RETRY_S, 0.0);
        ev_timer_start(u->loop, &u->retry);
    }
    /* Otherwise uploader_kick() resumes once the session is back. */
}

/*
 * The first kept message was refused again, alone on its stream, right after a refusal of the
 * same kind: the master would refuse it every time. It is dropped, and so that the master, which
 * numbers a task's entries without gaps, takes what follows, every later line or item of its kind
 * goes out numbered that much lower. The worker's log and the task's log both say so.
 */
static void drop_refused(struct uploader *u, grpc_status_code st, const char *details)
{
    struct message *m = u->head;
    uint64_t n = m->last_seq - m->first_seq + 1;
    uint64_t *dropped = m->items ? &u->items_dropped : &u->logs_dropped;
    uint64_t first = m->first_seq - *dropped;
    const char *what =
        m->items ? (n == 1 ? "result item" : "result items") : (n == 1 ? "log line" : "log lines");
    bool noted = m->has_note;
    *dropped += n;
    u->head = m->next;
    if (!u->head)
        u->tail = NULL;
    u->cursor = u->head;
    message_free(u, m);
    pressure_check(u);
    char why[200];
    printable(why, sizeof(why), details);
    log_warn("task %s: the master refused %" PRIu64 " %s (numbers %" PRIu64 " to %" PRIu64
             ") for good: %s (status %d); dropped",
             u->task_id, n, what, first, first + n - 1, why, (int)st);
    if (!noted)
        note(u, "%" PRIu64 " %s refused by the master: %s (status %d)", n, what, why, (int)st);
}

/*
 * The oldest segment in flight was answered. Segments are settled in the order they were sent:
 * an OK releases the segment's messages (and a younger segment's answer that came first is
 * settled next); any failure drops the younger segments too, and everything kept goes again from
 * the first unacknowledged message.
 */
static void settle(struct uploader *u, grpc_status_code st, const char *details)
{
    size_t carried = u->seg[0].messages;
    u->nseg--;
    memmove(&u->seg[0], &u->seg[1], u->nseg * sizeof(u->seg[0]));
    if (st == GRPC_STATUS_OK) {
        u->refusals = 0;
        u->one_by_one -= carried < u->one_by_one ? carried : u->one_by_one;
        release_messages(u, carried);
        if (u->nseg && u->seg[0].answered) {
            struct segment next = u->seg[0];
            settle(u, next.status, next.details);
            return;
        }
        pump(u);
        return;
    }
    /* Send the whole segment again: the master skips what it already stored. */
    drop_segments(u);
    switch (st) {
    case GRPC_STATUS_NOT_FOUND:
    case GRPC_STATUS_PERMISSION_DENIED:
    case GRPC_STATUS_UNAUTHENTICATED:
        /* The task itself is refused (unknown to the master, or not ours to feed): every message
         * would be, so none is sent any more. */
        log_error("task %s: the master refused the task's output: %s (status %d)", u->task_id,
                  details, (int)st);
        release_messages(u, SIZE_MAX);
        finish_done(u, false);
        return;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_OUT_OF_RANGE:
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        /* A refusal of one message (malformed, out of sequence, too large), and it ends the
         * whole stream: which message it was is not known, nor whether it would be refused
         * again (the master may have been short of memory). The segment's messages go again one
         * per stream; the first refused twice in a row, alone the second time, is dropped. */
        u->refusals++;
        if (u->refusals >= 2 && carried == 1 && u->one_by_one && u->head) {
            drop_refused(u, st, details);
            u->refusals = 0;
            u->one_by_one--;
            pump(u);
            return;
        }
        log_warn("task %s: the master refused the output stream: %s (status %d); sending its "
                 "messages again one by one",
                 u->task_id, details, (int)st);
        if (carried > u->one_by_one)
            u->one_by_one = carried;
        retry_later(u);
        break;
    case GRPC_STATUS_UNAVAILABLE:
        /* On a data connection that is still up, the master's answer: it could not store the
         * output (its database is away), and the output goes again a little later on the same
         * connection, the session kept. On one that is gone: reconnect, resync and resend from
         * the master's count. */
        if (session_data_ready(u->sess)) {
            log_debug("task %s: the master could not store the output (%s); resending", u->task_id,
                      details);
            retry_later(u);
            break;
        }
        log_debug("task %s: output stream failed (%s); reconnecting", u->task_id, details);
        session_connection_failed(u->sess, u->stream_gen, "data connection failed");
        break;
    default:
        log_debug("task %s: output stream failed (%s, status %d); resending", u->task_id, details,
                  (int)st);
        retry_later(u);
    }
}

static void stream_on_status(struct rpc_call *c, grpc_status_code st, const char *details)
{
    struct uploader *u = rpc_call_user(c);
    struct segment *s = segment_of(u, c);
    if (!s)
        return;
    rpc_call_release(c);
    s->call = NULL;
    if (s == &u->seg[0]) {
        settle(u, st, details);
        return;
    }
    /* An older segment is still unanswered: this answer waits for its turn, and nothing more goes
     * on this stream (it may have failed before its end). */
    s->answered = true;
    s->closing = true;
    s->status = st;
    snprintf(s->details, sizeof(s->details), "%s", details ? details : "");
}

static const struct rpc_call_handler stream_handler = {
    .on_sent = stream_on_sent,
    .on_status = stream_on_status,
};

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    pump(w->data);
}

/* Whether the segment carries enough: a few MiB, or one message while they go one by one. */
static bool segment_full(const struct uploader *u, const struct segment *s)
{
    return u->one_by_one ? s->messages > 0 : s->bytes >= SEGMENT_BYTES;
}

/*
 * The message's bytes as they go out now: packed again with a lower seq when lines or items of
 * its kind were dropped after it was packed (rare: only after a refusal for good). The caller
 * unrefs the slice. 0, or -errno.
 */
static int outgoing_bytes(struct uploader *u, const struct message *m, grpc_slice *out)
{
    int rc = message_bytes(u, m, out);
    uint64_t offset = m->items ? u->items_dropped : u->logs_dropped;
    if (rc < 0 || offset == m->seq_offset)
        return rc;
    Grpc__TaskServiceConnectRequest *req = grpc__task_service_connect_request__unpack(
        NULL, GRPC_SLICE_LENGTH(*out), GRPC_SLICE_START_PTR(*out));
    grpc_slice_unref(*out);
    if (!req)
        return -ENOMEM; /* it was packed by us: only memory can fail */
    req->seq = m->first_seq - offset;
    *out = grpc_slice_malloc(grpc__task_service_connect_request__get_packed_size(req));
    grpc__task_service_connect_request__pack(req, GRPC_SLICE_START_PTR(*out));
    grpc__task_service_connect_request__free_unpacked(req, NULL);
    return 0;
}

/*
 * A new segment behind those in flight, or NULL when none may start now: at most
 * SEGMENTS_IN_FLIGHT, only one while messages go one per stream (a refusal must be told apart
 * from the next message), and all on one connection.
 */
static struct segment *open_segment(struct uploader *u)
{
    if (u->nseg && (u->nseg == SEGMENTS_IN_FLIGHT || u->one_by_one ||
                    session_generation(u->sess) != u->stream_gen))
        return NULL;
    grpc_channel *ch = session_data_channel(u->sess);
    if (!ch)
        return NULL;
    struct rpc_call *c = rpc_call_start(session_bridge(u->sess), ch, "/grpc.TaskService/Connect",
                                        session_auth_key(u->sess), 0, &stream_handler, u);
    if (!c)
        return NULL;
    u->stream_gen = session_generation(u->sess);
    struct segment *s = &u->seg[u->nseg++];
    memset(s, 0, sizeof(*s));
    s->call = c;
    return s;
}

/* Writes the next message on the segment (or gives the output up when the spool failed). */
static void write_next(struct uploader *u, struct segment *s)
{
    struct message *m = u->cursor;
    grpc_slice bytes;
    int rc = outgoing_bytes(u, m, &bytes);
    if (rc < 0) {
        log_error("task %s: cannot read its spool %s: %s; output lost", u->task_id, u->spool_path,
                  strerror(-rc));
        finish_done(u, false);
        return;
    }
    u->cursor = m->next;
    s->bytes += m->len;
    s->messages++;
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&bytes, 1);
    grpc_slice_unref(bytes);
    rpc_call_write(s->call, bb);
}

/*
 * Moves data along: writes the next message on the newest segment, closes it when it is big
 * enough or when nothing more will come, and opens the next one at once while the older ones wait
 * for their answer.
 */
static void pump(struct uploader *u)
{
    while (!u->done && !ev_is_active(&u->retry)) {
        struct segment *s = u->nseg ? &u->seg[u->nseg - 1] : NULL;
        if (!s || s->closing) {
            if (!u->cursor) {
                if (!u->nseg && u->finished && !u->logs.entries && !u->items.entries)
                    finish_done(u, true);
                return;
            }
            if (!(s = open_segment(u)))
                return;
        }
        if (rpc_call_write_pending(s->call))
            return;
        if (u->cursor && !segment_full(u, s)) {
            write_next(u, s);
            return;
        }
        /* Everything queued is on the stream: close the segment when it is full, or when the
         * task is over and nothing is left to batch. Its answer comes once the master has made
         * it durable. */
        if (!segment_full(u, s) &&
            !(u->finished && !u->cursor && !u->logs.entries && !u->items.entries))
            return;
        s->closing = true;
        rpc_call_close_send(s->call);
        /* gRPC delivers the status only after the response message has been read. */
        rpc_call_read(s->call);
    }
}

void uploader_finish(struct uploader *u)
{
    u->finished = true;
    seal_all(u);
    pump(u);
}

/* Streams of a dead connection may not have reported their failure yet: forget them. */
static void drop_stale_streams(struct uploader *u)
{
    if (u->nseg && session_generation(u->sess) != u->stream_gen)
        drop_segments(u);
}

void uploader_kick(struct uploader *u)
{
    ev_timer_stop(u->loop, &u->retry);
    drop_stale_streams(u);
    pump(u);
}

void uploader_set_epoch(struct uploader *u, uint64_t epoch)
{
    u->epoch = epoch;
}

void uploader_resync(struct uploader *u, uint64_t log_lines, uint64_t data_items)
{
    drop_stale_streams(u);
    if (u->nseg)
        return; /* live streams: their own answers settle what they carry */
    struct message **p = &u->head;
    u->tail = NULL;
    while (*p) {
        struct message *m = *p;
        uint64_t count = m->items ? data_items : log_lines;
        if (resync_stored(m->last_seq, count, m->items ? u->items_dropped : u->logs_dropped)) {
            *p = m->next;
            message_free(u, m);
        } else {
            u->tail = m;
            p = &m->next;
        }
    }
    u->cursor = u->head;
    pressure_check(u);
}

struct uploader *uploader_create(struct ev_loop *loop, struct session *sess, const char *task_id,
                                 const char *spool_dir, size_t max_kept,
                                 const struct uploader_hooks *hooks, void *ctx)
{
    struct uploader *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->spool_fd = -1;
    if (spool_dir) {
        size_t n = strlen(spool_dir) + TASK_ID_LEN + 2;
        if ((u->spool_path = malloc(n)))
            snprintf(u->spool_path, n, "%s/%s", spool_dir, task_id);
    }
    /* At least the segments in flight, so that one can be acknowledged while the next fills. */
    size_t least = SEGMENTS_IN_FLIGHT * SEGMENT_BYTES;
    u->high_water = max_kept > least ? max_kept : least;
    u->low_water = u->high_water / 4;
    u->loop = loop;
    u->sess = sess;
    u->hooks = *hooks;
    u->ctx = ctx;
    snprintf(u->task_id, sizeof(u->task_id), "%s", task_id);
    ev_timer_init(&u->linger, on_linger, LINGER_S, 0.0);
    u->linger.data = u;
    ev_timer_init(&u->retry, on_retry, RETRY_S, 0.0);
    u->retry.data = u;
    return u;
}

void uploader_destroy(struct uploader *u)
{
    if (!u)
        return;
    ev_timer_stop(u->loop, &u->linger);
    ev_timer_stop(u->loop, &u->retry);
    drop_segments(u);
    u->cursor = NULL;
    while (u->head) {
        struct message *m = u->head;
        u->head = m->next;
        message_free(u, m);
    }
    if (u->spool_fd >= 0) {
        close(u->spool_fd);
        unlink(u->spool_path);
    }
    free(u->spool_path);
    free(u->logs.buf);
    free(u->items.buf);
    free(u);
}

uint64_t uploader_log_lines(const struct uploader *u)
{
    return u->log_lines - u->logs_dropped;
}

uint64_t uploader_data_items(const struct uploader *u)
{
    return u->data_items - u->items_dropped;
}

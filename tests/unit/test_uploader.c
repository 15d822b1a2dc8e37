/*
 * The uploader against a fake master: the session and the client calls are link-time fakes
 * (stubs/session_stubs.c, stubs/client_stubs.c, linked instead of session.c and client.c), so
 * each test sees every message the uploader writes, decides the status of every Connect stream,
 * and keeps what a real master would store: entries numbered from 1 per kind, a resent prefix
 * skipped, a gap refused, a stream's messages stored in order up to the first one refused. Two
 * streams may be open at once: the uploader sends its next segment before the last is answered.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <jansson.h>

#include "check_main.h"

#include "rpc/codec.h"
#include "rpc/validate.h"
#include "services/task_service.pb-c.h"
#include "stubs/client_stubs.h"
#include "stubs/session_stubs.h"
#include "worker/uploader.h"

#define TASK      "65a1b2c3d4e5f60718293a4b"
#define MAX_SENT  256
#define MAX_STORE 64
#define BIG_LINE  600000 /* bytes of a log line that is a message of its own (1 MiB batches) */
#define SEG_LINES 7      /* such messages in a 4 MiB segment */
#define N_LINES   24     /* two segments in flight, one more, and a last one of 3 */

/* ---- the fake master ---- */

struct sent {
    int stream;
    bool items;
    uint64_t seq;
    size_t entries;
    size_t packed; /* the whole message's size */
    char *data;
};

static struct sent sent[MAX_SENT];
static int n_sent;
static char trace[4096]; /* "1:L1 D1-2=8 2:L1=0 ...": stream, messages (kind, seq), status */
static char *stored_logs[MAX_STORE], *stored_items[MAX_STORE];
static size_t n_logs, n_items;
/* Status the master gives a message it refuses, or OK; NULL refuses nothing. */
static grpc_status_code (*policy)(const struct sent *m, int stream);
static bool done, done_ok;
static struct ev_loop *loop;

static void reset(void)
{
    for (int i = 0; i < n_sent; i++)
        free(sent[i].data);
    for (size_t i = 0; i < n_logs; i++)
        free(stored_logs[i]);
    for (size_t i = 0; i < n_items; i++)
        free(stored_items[i]);
    n_sent = 0;
    n_logs = n_items = 0;
    trace[0] = '\0';
    policy = NULL;
    done = done_ok = false;
    session_stubs_reset();
    client_stubs_reset();
}

static void trace_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void trace_add(const char *fmt, ...)
{
    size_t len = strlen(trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace + len, sizeof(trace) - len, fmt, ap);
    va_end(ap);
}

/* Stores what the message carries as the real master does; 0, or the status of a refusal. */
static grpc_status_code store(const struct sent *m)
{
    char **to = m->items ? stored_items : stored_logs;
    size_t *n = m->items ? &n_items : &n_logs;
    if (m->seq - 1 > *n)
        return GRPC_STATUS_OUT_OF_RANGE;
    json_t *arr = json_loads(m->data, 0, NULL);
    ck_assert_msg(json_is_array(arr), "data is not a JSON array: %.80s", m->data);
    for (size_t i = *n - (m->seq - 1); i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        ck_assert_uint_lt(*n, MAX_STORE);
        to[(*n)++] =
            m->items ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : strdup(json_string_value(v));
    }
    json_decref(arr);
    return GRPC_STATUS_OK;
}

/* The verdict on a half-closed stream: its messages in order, up to the first refused. */
static grpc_status_code judge(int stream)
{
    for (int i = 0; i < n_sent; i++) {
        if (sent[i].stream != stream)
            continue;
        grpc_status_code st = policy ? policy(&sent[i], stream) : GRPC_STATUS_OK;
        if (st == GRPC_STATUS_OK)
            st = store(&sent[i]);
        if (st != GRPC_STATUS_OK)
            return st;
    }
    return GRPC_STATUS_OK;
}

/* ---- what the uploader does with its calls ---- */

static void on_call_start(struct rpc_call *c, const char *method)
{
    ck_assert_str_eq(method, "/grpc.TaskService/Connect");
    trace_add("%s%d:", c->number > 1 ? " " : "", c->number);
}

/* Records a message as the master would receive it. */
static void on_call_write(struct rpc_call *c, grpc_byte_buffer *msg)
{
    grpc_byte_buffer_reader r;
    ck_assert(grpc_byte_buffer_reader_init(&r, msg));
    grpc_slice slice = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(msg);
    Grpc__TaskServiceConnectRequest *req = grpc__task_service_connect_request__unpack(
        NULL, GRPC_SLICE_LENGTH(slice), GRPC_SLICE_START_PTR(slice));
    ck_assert_ptr_nonnull(req);
    ck_assert_str_eq(req->task_id, TASK);
    ck_assert_int_lt(n_sent, MAX_SENT);
    struct sent *m = &sent[n_sent++];
    m->stream = c->number;
    m->items = req->code == GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA;
    m->seq = req->seq;
    m->packed = GRPC_SLICE_LENGTH(slice);
    m->data = strndup((const char *)req->data.data, req->data.len);
    json_t *arr = json_loads(m->data, 0, NULL);
    m->entries = json_array_size(arr);
    json_decref(arr);
    /* Every message must pass the master's bounds, or it is refused every time. */
    ck_assert_uint_le(m->packed, RPC_MAX_MESSAGE);
    ck_assert_uint_le(req->data.len, LIMIT_DATA_MAX);
    ck_assert_int_eq(validate_connect(req, NULL), 0);
    ck_assert_uint_ge(m->seq, 1);
    grpc__task_service_connect_request__free_unpacked(req, NULL);
    grpc_slice_unref(slice);
    if (m->entries > 1)
        trace_add(" %s%llu-%llu", m->items ? "D" : "L", (unsigned long long)m->seq,
                  (unsigned long long)(m->seq + m->entries - 1));
    else
        trace_add(" %s%llu", m->items ? "D" : "L", (unsigned long long)m->seq);
}

/* ---- driving the uploader ---- */

static void on_done(void *ctx, bool ok)
{
    done = true;
    done_ok = ok;
}

static void on_pressure(void *ctx, bool high)
{
}

static const struct uploader_hooks hooks = {.on_done = on_done, .on_pressure = on_pressure};

static struct uploader *make_uploader(void)
{
    reset();
    client_stubs.on_start = on_call_start;
    client_stubs.on_write = on_call_write;
    loop = ev_default_loop(0);
    struct uploader *u =
        uploader_create(loop, (struct session *)&loop, TASK, NULL, 64u << 20, &hooks, NULL);
    ck_assert_ptr_nonnull(u);
    return u;
}

/* Completes writes on the newest stream and answers the oldest once it is half-closed (waiting for
 * the uploader's timers in between) until the uploader reports everything settled; fails after a
 * bounded number of streams. */
static void drive(void)
{
    for (int steps = 0; !done; steps++) {
        ck_assert_msg(steps < 400 && client_stubs.started < 40, "no end after %d streams: %s",
                      client_stubs.started, trace);
        ck_assert_msg(session_stubs.connection_failures == 0,
                      "the uploader gave up the connection: %s", session_stubs.last_failure);
        struct rpc_call *c = client_stubs_newest();
        struct rpc_call *oldest = client_stubs.n_open ? client_stubs.open[0] : NULL;
        if (c && c->write_pending) {
            client_stubs_sent(c, true);
        } else if (oldest && oldest->half_closed) {
            grpc_status_code st = judge(oldest->number);
            trace_add("=%d", (int)st);
            client_stubs_status(oldest, st,
                                st == GRPC_STATUS_OK ? "" : "refused by the test\nfake line");
        } else {
            ev_run(loop, EVRUN_ONCE); /* a linger or retry timer of the uploader */
        }
    }
    ck_assert_int_eq(session_stubs.connection_failures, 0);
}

static void add_items(struct uploader *u, json_t *items)
{
    uploader_items(u, items);
    json_decref(items);
}

/* A result item of about 150 KiB: no two fit in one 256 KiB batch, so each is a message. */
static json_t *big_item(int n)
{
    char *pad = malloc(150001);
    memset(pad, 'x', 150000);
    pad[150000] = '\0';
    json_t *item = json_pack("{s:i, s:s}", "n", n, "pad", pad);
    free(pad);
    return item;
}

static int item_n(const char *stored)
{
    json_t *v = json_loads(stored, 0, NULL);
    int n = (int)json_integer_value(json_object_get(v, "n"));
    json_decref(v);
    return n;
}

/* ---- item size ---- */

START_TEST(test_uploader_sends_an_item_of_short_reals_whole_with_fewer_digits)
{
    /* 200,000 times 1e-7: about 1 MiB in the task's output, 4.6 MB with 17 digits each. */
    json_t *v = json_array();
    for (int i = 0; i < 200000; i++)
        json_array_append_new(v, json_real(1e-7));
    json_t *item = json_pack("{s:o}", "v", v);
    char *long_form = json_dumps(item, JSON_COMPACT);
    ck_assert_uint_gt(strlen(long_form), RPC_MAX_MESSAGE);
    free(long_form);

    struct uploader *u = make_uploader();
    json_t *items = json_array();
    json_array_append_new(items, json_pack("{s:i}", "n", 1));
    json_array_append(items, item);
    json_array_append_new(items, json_pack("{s:i}", "n", 3));
    add_items(u, items);
    uploader_finish(u);
    drive();
    ck_assert(done_ok);
    ck_assert_uint_eq(n_items, 3);
    ck_assert_uint_eq(n_logs, 0);
    json_t *back = json_loads(stored_items[1], 0, NULL);
    ck_assert(json_equal(back, item)); /* every number exactly the same */
    json_decref(back);
    ck_assert_uint_eq(uploader_data_items(u), 3);
    json_decref(item);
    uploader_destroy(u);
}
END_TEST

START_TEST(test_uploader_drops_an_item_too_large_for_any_message_and_notes_it)
{
    /* 0.1 needs 17 digits to be written with 0.30000000000000004 beside it: 5 MB however
     * written, from about 1 MiB of output. */
    json_t *v = json_array();
    for (int i = 0; i < 250000; i++)
        json_array_append_new(v, json_real(0.1));
    json_array_append_new(v, json_real(0.1 + 0.2));

    struct uploader *u = make_uploader();
    json_t *items = json_array();
    json_array_append_new(items, json_pack("{s:i}", "n", 1));
    json_array_append_new(items, json_pack("{s:o}", "v", v));
    json_array_append_new(items, json_pack("{s:i}", "n", 3));
    add_items(u, items);
    uploader_finish(u);
    drive();
    ck_assert(done_ok);
    /* The others are stored, numbered without a gap, and the task's log says what is missing. */
    ck_assert_uint_eq(n_items, 2);
    ck_assert_int_eq(item_n(stored_items[0]), 1);
    ck_assert_int_eq(item_n(stored_items[1]), 3);
    ck_assert_uint_eq(uploader_data_items(u), 2);
    ck_assert_uint_eq(n_logs, 1);
    ck_assert_msg(strstr(stored_logs[0], "crawlab-node: 1 result item not sent: larger than one "
                                         "message may carry") != NULL,
                  "%s", stored_logs[0]);
    uploader_destroy(u);
}
END_TEST

/* ---- refusals ---- */

static grpc_status_code refuse_item_2(const struct sent *m, int stream)
{
    return m->items && strstr(m->data, "\"n\":2,") ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                                   : GRPC_STATUS_OK;
}

START_TEST(test_uploader_drops_a_message_refused_twice_and_renumbers_what_follows)
{
    struct uploader *u = make_uploader();
    policy = refuse_item_2;
    uploader_log(u, "first line", 10);
    json_t *items = json_array();
    for (int n = 1; n <= 3; n++)
        json_array_append_new(items, big_item(n));
    add_items(u, items);
    uploader_finish(u);
    drive();
    /* The segment is refused; its messages go one by one; item 2 is refused twice alone and
     * dropped; item 3 goes as number 2; the note of the loss follows as line 2. */
    ck_assert_str_eq(trace, "1: D1 D2 L1 D3=8 2: D1=0 3: D2=8 4: D2=8 5: L1=0 6: D2=0 7: L2=0");
    ck_assert(done_ok);
    ck_assert_uint_eq(n_items, 2);
    ck_assert_int_eq(item_n(stored_items[0]), 1);
    ck_assert_int_eq(item_n(stored_items[1]), 3);
    ck_assert_uint_eq(n_logs, 2);
    ck_assert_str_eq(stored_logs[0], "first line");
    /* The master's text is made one printable line. */
    ck_assert_str_eq(stored_logs[1], "crawlab-node: 1 result item refused by the master: refused "
                                     "by the test?fake line (status 8)");
    ck_assert_uint_eq(uploader_data_items(u), 2);
    ck_assert_uint_eq(uploader_log_lines(u), 2);
    uploader_destroy(u);
}
END_TEST

static grpc_status_code refuse_stream_1(const struct sent *m, int stream)
{
    return stream == 1 ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_OK;
}

START_TEST(test_uploader_loses_nothing_to_a_refusal_that_does_not_repeat)
{
    struct uploader *u = make_uploader();
    policy = refuse_stream_1;
    uploader_log(u, "first line", 10);
    json_t *items = json_array();
    for (int n = 1; n <= 2; n++)
        json_array_append_new(items, big_item(n));
    add_items(u, items);
    uploader_finish(u);
    drive();
    ck_assert_str_eq(trace, "1: D1 L1 D2=8 2: D1=0 3: L1=0 4: D2=0");
    ck_assert(done_ok);
    ck_assert_uint_eq(n_items, 2);
    ck_assert_uint_eq(n_logs, 1);
    ck_assert_uint_eq(uploader_data_items(u), 2);
    uploader_destroy(u);
}
END_TEST

static grpc_status_code unavailable_twice(const struct sent *m, int stream)
{
    return stream <= 2 ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_OK;
}

START_TEST(test_uploader_keeps_its_connection_when_the_master_could_not_store)
{
    /* UNAVAILABLE on a data connection that is up: the master's own answer (its database is
     * away). The output goes again on the same connection until it is stored; drive() fails the
     * test if the uploader gives the connection up. */
    struct uploader *u = make_uploader();
    policy = unavailable_twice;
    uploader_log(u, "first line", 10);
    uploader_finish(u);
    drive();
    ck_assert(done_ok);
    ck_assert_uint_eq(n_logs, 1);
    ck_assert_int_eq(client_stubs.started, 3);
    uploader_destroy(u);
}
END_TEST

START_TEST(test_uploader_gives_up_a_data_connection_that_is_gone)
{
    struct uploader *u = make_uploader();
    uploader_log(u, "first line", 10);
    uploader_finish(u);
    struct rpc_call *c = client_stubs_newest();
    ck_assert_ptr_nonnull(c);
    client_stubs_sent(c, true);
    session_stubs.data_down = true;
    client_stubs_status(client_stubs.open[0], GRPC_STATUS_UNAVAILABLE, "Socket closed");
    ck_assert_int_eq(session_stubs.connection_failures, 1);
    ck_assert_str_eq(session_stubs.last_failure, "data connection failed");
    uploader_destroy(u);
}
END_TEST

static grpc_status_code refuse_logs(const struct sent *m, int stream)
{
    return m->items ? GRPC_STATUS_OK : GRPC_STATUS_INVALID_ARGUMENT;
}

START_TEST(test_uploader_facing_a_master_that_refuses_every_log_message_still_delivers_items)
{
    struct uploader *u = make_uploader();
    policy = refuse_logs;
    uploader_log(u, "a line the master refuses", 25);
    json_t *items = json_array();
    json_array_append_new(items, json_pack("{s:i}", "n", 1));
    json_array_append_new(items, json_pack("{s:i}", "n", 2));
    add_items(u, items);
    uploader_finish(u);
    drive();
    /* The line is dropped, then the note about it, which is not noted again; the items are all
     * stored and the task's output is settled. */
    ck_assert(done_ok);
    ck_assert_uint_eq(n_items, 2);
    ck_assert_int_eq(item_n(stored_items[0]), 1);
    ck_assert_int_eq(item_n(stored_items[1]), 2);
    ck_assert_uint_eq(n_logs, 0);
    ck_assert_uint_eq(uploader_log_lines(u), 0);
    ck_assert_uint_eq(uploader_data_items(u), 2);
    uploader_destroy(u);
}
END_TEST

/* ---- segments in flight ---- */

/* Lines from..to of BIG_LINE bytes, "line N xxx...": SEG_LINES of them fill a 4 MiB segment. */
static void log_big_lines(struct uploader *u, int from, int to)
{
    char *line = malloc(BIG_LINE);
    ck_assert_ptr_nonnull(line);
    for (int i = from; i <= to; i++) {
        memset(line, 'x', BIG_LINE);
        line[snprintf(line, 32, "line %d ", i)] = 'x';
        uploader_log(u, line, BIG_LINE);
    }
    free(line);
}

/* Every line 1..n stored once, in order. */
static void assert_lines_stored(int n)
{
    ck_assert_uint_eq(n_logs, (size_t)n);
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "line %d x", i + 1);
        ck_assert_msg(strncmp(stored_logs[i], want, strlen(want)) == 0, "line %d is %.20s", i + 1,
                      stored_logs[i]);
        ck_assert_uint_eq(strlen(stored_logs[i]), BIG_LINE);
    }
}

/* Completes every write the uploader makes, answering no stream: it sends what it may without an
 * answer. N_LINES lines: the first segment carries lines 1-7, the second 8-14. */
static struct uploader *two_segments_in_flight(void)
{
    struct uploader *u = make_uploader();
    log_big_lines(u, 1, N_LINES);
    uploader_finish(u);
    struct rpc_call *c;
    while ((c = client_stubs_newest()) && c->write_pending)
        client_stubs_sent(c, true);
    ck_assert_int_eq(client_stubs.n_open, 2);
    ck_assert(client_stubs.open[0]->half_closed && client_stubs.open[1]->half_closed);
    ck_assert_int_eq(n_sent, 2 * SEG_LINES);
    ck_assert_int_eq(sent[SEG_LINES - 1].stream, 1);
    ck_assert_uint_eq(sent[SEG_LINES - 1].seq, SEG_LINES);
    ck_assert_int_eq(sent[SEG_LINES].stream, 2);
    ck_assert_uint_eq(sent[SEG_LINES].seq, SEG_LINES + 1);
    return u;
}

START_TEST(test_uploader_sends_the_next_segment_before_the_first_is_answered)
{
    struct uploader *u = two_segments_in_flight();
    /* Both are stored, and the answer of the second comes first: it waits for the first's. */
    struct rpc_call *first = client_stubs.open[0], *second = client_stubs.open[1];
    ck_assert_int_eq(judge(first->number), GRPC_STATUS_OK);
    ck_assert_int_eq(judge(second->number), GRPC_STATUS_OK);
    client_stubs_status(second, GRPC_STATUS_OK, "");
    ck_assert_int_eq(client_stubs.started, 2);
    client_stubs_status(first, GRPC_STATUS_OK, "");
    /* Both settled: a third segment carries the rest, and nothing goes twice. */
    ck_assert_int_eq(client_stubs.started, 3);
    drive();
    ck_assert(done_ok);
    ck_assert_int_eq(n_sent, N_LINES);
    ck_assert_int_eq(sent[2 * SEG_LINES].stream, 3);
    ck_assert_uint_eq(sent[2 * SEG_LINES].seq, 2 * SEG_LINES + 1);
    assert_lines_stored(N_LINES);
    ck_assert_int_eq(client_stubs.cancelled, 0);
    ck_assert_uint_eq(uploader_log_lines(u), N_LINES);
    uploader_destroy(u);
}
END_TEST

START_TEST(test_uploader_resends_from_the_first_unacknowledged_line_when_the_first_segment_fails)
{
    struct uploader *u = two_segments_in_flight();
    /* The master stored lines 1-5 of the first segment, then the stream failed. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(store(&sent[i]), GRPC_STATUS_OK);
    client_stubs_status(client_stubs.open[0], GRPC_STATUS_INTERNAL, "test");
    /* The second segment is given up with it (its lines would leave a gap)... */
    ck_assert_int_eq(client_stubs.n_open, 0);
    ck_assert_int_eq(client_stubs.cancelled, 1);
    /* ... and everything goes again from line 1, the first the master did not acknowledge, in
     * full segments (a failure is not a refusal); the master skips lines 1-5. */
    int resent = n_sent;
    drive();
    ck_assert(done_ok);
    ck_assert_int_eq(sent[resent].stream, 3);
    ck_assert_uint_eq(sent[resent].seq, 1);
    ck_assert_int_eq(sent[resent + SEG_LINES - 1].stream, 3);
    ck_assert_int_eq(sent[resent + SEG_LINES].stream, 4);
    ck_assert_int_eq(n_sent, resent + N_LINES);
    assert_lines_stored(N_LINES);
    uploader_destroy(u);
}
END_TEST

START_TEST(test_uploader_settles_a_refusal_of_the_second_segment_after_the_first_is_answered)
{
    struct uploader *u = two_segments_in_flight();
    /* The first is stored; the second is refused (a refusal that does not repeat), and that
     * answer comes first: it is settled as the second's once the first's OK is in. */
    struct rpc_call *first = client_stubs.open[0], *second = client_stubs.open[1];
    ck_assert_int_eq(judge(first->number), GRPC_STATUS_OK);
    client_stubs_status(second, GRPC_STATUS_RESOURCE_EXHAUSTED, "refused by the test");
    client_stubs_status(first, GRPC_STATUS_OK, "");
    drive();
    ck_assert(done_ok);
    /* Only the second's 7 messages go again, one per stream (streams 3 to 9), then the other 10
     * lines in segments of 7 and 3; nothing is lost nor stored twice. */
    ck_assert_int_eq(n_sent, N_LINES + SEG_LINES);
    for (int i = 0; i < SEG_LINES; i++) {
        ck_assert_int_eq(sent[2 * SEG_LINES + i].stream, 3 + i);
        ck_assert_uint_eq(sent[2 * SEG_LINES + i].seq, SEG_LINES + 1 + (uint64_t)i);
    }
    ck_assert_int_eq(sent[3 * SEG_LINES].stream, 3 + SEG_LINES);
    ck_assert_uint_eq(sent[3 * SEG_LINES].seq, 2 * SEG_LINES + 1);
    ck_assert_int_eq(sent[4 * SEG_LINES - 1].stream, 3 + SEG_LINES);
    ck_assert_int_eq(sent[4 * SEG_LINES].stream, 4 + SEG_LINES);
    assert_lines_stored(N_LINES);
    uploader_destroy(u);
}
END_TEST

static Suite *uploader_suite(void)
{
    Suite *s = suite_create("uploader");
    TCase *tc = tcase_create("uploader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_uploader_sends_an_item_of_short_reals_whole_with_fewer_digits);
    tcase_add_test(tc, test_uploader_drops_an_item_too_large_for_any_message_and_notes_it);
    tcase_add_test(tc, test_uploader_drops_a_message_refused_twice_and_renumbers_what_follows);
    tcase_add_test(tc, test_uploader_loses_nothing_to_a_refusal_that_does_not_repeat);
    tcase_add_test(tc, test_uploader_keeps_its_connection_when_the_master_could_not_store);
    tcase_add_test(tc, test_uploader_gives_up_a_data_connection_that_is_gone);
    tcase_add_test(
        tc, test_uploader_facing_a_master_that_refuses_every_log_message_still_delivers_items);
    tcase_add_test(tc, test_uploader_sends_the_next_segment_before_the_first_is_answered);
    tcase_add_test(
        tc, test_uploader_resends_from_the_first_unacknowledged_line_when_the_first_segment_fails);
    tcase_add_test(
        tc, test_uploader_settles_a_refusal_of_the_second_segment_after_the_first_is_answered);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = uploader_suite};

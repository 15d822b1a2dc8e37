/*
 * libFuzzer target: a Connect message's data through the master's ingest path into a real store,
 * in a temporary directory (under /dev/shm when there is one, so that fsync costs little).
 *
 * Input: byte 0 picks logs or items, how seq is chosen (unsequenced, next, a resend reaching
 * byte 1 entries back, or a gap) and whether the append runs inside a group (store_begin and
 * store_commit, as ingest does); the rest is the message's data. The path is the master's:
 * validate_connect -> ingest_batch_parse (jsonlines_parse for log lines, jansson for items) ->
 * validate_seq_span -> store_log_append or store_items_append. Beyond "never crashes, never leaks",
 * it checks:
 *   - jsonlines_parse, a hand-written reader, agrees with jansson on every input: it takes exactly
 *     the texts jansson parses as an array of strings (\u0000 allowed, as the reader allows it),
 *     and gives the same strings, byte for byte, except that each NUL is U+FFFD: no line holds a
 *     NUL;
 *   - a batch that starts past the stored count + 1 is refused with -ERANGE and stores nothing;
 *   - otherwise exactly the entries not stored yet are accepted (task_seq_window), and the task's
 *     counter grows by that much;
 *   - reading back from the first new seq gives exactly the new entries, in order: log lines byte
 *     for byte (a '\n' inside a line stored as a space), items as their compact JSON text, which
 *     parses back to an object;
 *   - the validator's cheap count of JSON values never falls below the entries jansson found.
 * A fresh task is taken every TASK_EXECS inputs and a fresh store every STORE_EXECS, so that files
 * stay small and store_open is exercised too.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "master/ingest.h"
#include "master/jsonlines.h"
#include "store/store.h"
#include "rpc/validate.h"
#include "runtime/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

#define TASK_EXECS  256
#define STORE_EXECS 8192
#define NOW_MS      1700000000000LL

static char root[64];
static char data_dir[96];
static struct store *store;
static char task_id[TASK_ID_LEN + 1];
static unsigned long execs;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void new_task(void)
{
    struct task_new tn = {.cmd = "true"};
    CHECK(store_task_create(store, &tn, NOW_MS, task_id) == 0);
}

static void new_store(void)
{
    if (store) {
        store_close(store);
        store = NULL;
        nftw(data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    CHECK(store_open(data_dir, &store) == 0);
    new_task();
}

static void cleanup(void)
{
    store_close(store);
    store = NULL;
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT, "fuzz_ingest");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof(root), "%s/crawlab-fuzz-ingest-XXXXXX", base);
    CHECK(mkdtemp(root));
    snprintf(data_dir, sizeof(data_dir), "%s/data", root);
    new_store();
    atexit(cleanup);
    return 0;
}

static uint64_t stored_count(bool items)
{
    struct task_row row;
    CHECK(store_task_get(store, task_id, &row) == 0);
    uint64_t n = items ? row.data_items : row.log_lines;
    store_task_row_free(&row);
    return n;
}

/* Read-back state: the batch and where the comparison stands. */
struct readback {
    const struct ingest_batch *b;
    bool items;
    uint64_t first_seq; /* seq of b entry `next` */
    size_t next;
};

static int compare_entry(void *ctx, uint64_t seq, const char *got, size_t len)
{
    struct readback *r = ctx;
    CHECK(r->next < r->b->n);
    CHECK(seq == r->first_seq++);
    const char *want = r->b->ptrs[r->next];
    size_t want_len = r->b->lens[r->next];
    r->next++;
    CHECK(len == want_len);
    if (r->items) {
        CHECK(memcmp(got, want, len) == 0);
        json_t *j = json_loadb(got, len, JSON_ALLOW_NUL, NULL);
        CHECK(json_is_object(j));
        json_decref(j);
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        CHECK(got[i] == (want[i] == '\n' ? ' ' : want[i]));
    return 0;
}

/* True if the len bytes at got are jansson's string v with each NUL replaced by U+FFFD. */
static bool same_line(const char *got, size_t len, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *want = s[i] ? s + i : "\xef\xbf\xbd";
        size_t w = s[i] ? 1 : 3;
        if (w > len - o || memcmp(got + o, want, w) != 0)
            return false;
        o += w;
    }
    return o == len;
}

/* The hand-written log reader against jansson, on any text. */
static void lines_agree_with_jansson(const uint8_t *data, size_t len)
{
    struct jsonlines jl;
    int n = jsonlines_parse(&jl, (const char *)data, len);
    CHECK(n >= 0 || n == -EINVAL);
    json_t *tree = json_loadb((const char *)data, len, JSON_ALLOW_NUL, NULL);
    bool strings = json_is_array(tree);
    for (size_t i = 0; strings && i < json_array_size(tree); i++)
        strings = json_is_string(json_array_get(tree, i));
    CHECK((n >= 0) == strings);
    if (n >= 0) {
        CHECK((size_t)n == json_array_size(tree));
        for (size_t i = 0; i < (size_t)n; i++) {
            CHECK(same_line(jl.ptrs[i], jl.lens[i], json_array_get(tree, i)));
            CHECK(!memchr(jl.ptrs[i], '\0', jl.lens[i]));
        }
    }
    json_decref(tree);
    jsonlines_free(&jl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (++execs % STORE_EXECS == 0)
        new_store();
    else if (execs % TASK_EXECS == 0)
        new_task();

    bool items = data[0] & 1;
    if (!items)
        lines_agree_with_jansson(data + 2, size - 2);
    unsigned seq_mode = (data[0] >> 1) & 3;
    bool group = data[0] & 8;
    uint64_t depth = data[1];
    uint64_t stored = stored_count(items);
    uint64_t seq = seq_mode == 0   ? 0
                   : seq_mode == 1 ? stored + 1
                   : seq_mode == 2 ? (stored + 1 > depth ? stored + 1 - depth : 1)
                                   : stored + 2;

    Grpc__TaskServiceConnectRequest req = GRPC__TASK_SERVICE_CONNECT_REQUEST__INIT;
    req.code = items ? GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_DATA
                     : GRPC__TASK_SERVICE_CONNECT_CODE__INSERT_LOGS;
    req.task_id = task_id;
    req.data.data = (uint8_t *)data + 2;
    req.data.len = size - 2;
    req.seq = seq;
    if (validate_connect(&req, NULL) < 0)
        return 0;

    struct ingest_batch b;
    int n = ingest_batch_parse(&b, req.data.data, req.data.len, items);
    CHECK(n >= 0 || n == -EINVAL);
    if (n <= 0 || validate_seq_span(seq, b.n, NULL) < 0) {
        ingest_batch_free(&b);
        return 0;
    }
    CHECK((size_t)n == b.n);
    /* The cheap count the validator bounds never undercounts: n entries take n + 1 at least. */
    CHECK(validate_json_values(req.data.data, req.data.len, b.n, NULL) == -EMSGSIZE);

    size_t skip = 0;
    int window = task_seq_window(stored, seq, b.n, &skip);
    if (group)
        CHECK(store_begin(store) == 0);
    size_t accepted = 99;
    int rc = items ? store_items_append(store, task_id, b.ptrs, b.lens, b.n, seq, &accepted)
                   : store_log_append(store, task_id, b.ptrs, b.lens, b.n, seq, &accepted);
    if (group)
        CHECK(store_commit(store) == 0);

    if (window < 0) {
        CHECK(rc == -ERANGE && accepted == 0);
        CHECK(stored_count(items) == stored);
    } else {
        CHECK(rc == 0 && accepted == b.n - skip);
        CHECK(stored_count(items) == stored + accepted);
        struct readback r = {.b = &b, .items = items, .first_seq = stored + 1, .next = skip};
        rc = items ? store_items_read(store, task_id, stored + 1, compare_entry, &r)
                   : store_log_read(store, task_id, stored + 1, compare_entry, &r);
        CHECK(rc == 0 && r.next == b.n);
    }
    ingest_batch_free(&b);
    return 0;
}

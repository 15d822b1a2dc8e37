/*
 * libFuzzer target: a task's raw output through the worker's line pipeline (worker/lines.h): the
 * line splitter fed in chunks, utf8_sanitize on every piece and line, ipc_parse_line on every line.
 *
 * Input: byte 0 picks max_line (1 to 64), byte 1 the chunk size of the feed, the rest is what the
 * task wrote. Beyond "never crashes, never leaks", it checks:
 *   - splitting loses, adds and reorders nothing: the pieces of each line, joined, equal that line
 *     in a reference split (on '\n', with one '\r' before it dropped; a last partial line as is);
 *   - every piece is 1 to max_line bytes; only an empty line gives an empty piece;
 *   - the pieces do not depend on how the bytes were chunked (fed at once, on a reused splitter);
 *   - with max_line >= 4 a cut never falls inside a character: the pieces of a line, sanitised and
 *     joined, equal the line sanitised (what the worker ships is the same however it was cut);
 *   - utf8_sanitize gives valid UTF-8 (checked by jansson's own decoder, independent of
 *     runtime/utf8.h) without NUL, copies nothing exactly when its input is already clean, and is
 *     idempotent;
 *   - ipc_parse_line gives an array of objects, or nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "runtime/utf8.h"
#include "worker/ipc.h"
#include "worker/lines.h"

/* Every piece emitted, back to back in bytes, with their lengths. */
struct pieces {
    char *bytes;
    size_t len, cap;
    size_t *lens;
    size_t n, n_cap;
};

static void collect(void *ctx, const char *line, size_t len)
{
    struct pieces *p = ctx;
    if (p->len + len > p->cap || !p->bytes) {
        p->cap = (p->len + len) * 2 + 16;
        CHECK((p->bytes = realloc(p->bytes, p->cap)));
    }
    if (p->n == p->n_cap) {
        p->n_cap = p->n_cap * 2 + 16;
        CHECK((p->lens = realloc(p->lens, p->n_cap * sizeof(*p->lens))));
    }
    memcpy(p->bytes + p->len, line, len);
    p->len += len;
    p->lens[p->n++] = len;
}

static void pieces_free(struct pieces *p)
{
    free(p->bytes);
    free(p->lens);
}

/* Well-formed UTF-8 by jansson's reckoning, which decodes on its own (and takes NUL). */
static bool jansson_utf8(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

/*
 * Sanitises n bytes and checks the result; returns it as a malloc'd copy either way (the caller
 * frees it), its length in *out_len.
 */
static char *sanitized(const char *in, size_t n, size_t *out_len)
{
    char *out = NULL;
    CHECK(utf8_sanitize(in, n, &out, out_len) == 0);
    bool clean = jansson_utf8(in, n) && !memchr(in, '\0', n);
    if (!out) {
        CHECK(clean && *out_len == n);
        CHECK((out = malloc(n + 1)));
        memcpy(out, in, n);
        out[n] = '\0';
        return out;
    }
    CHECK(!clean);
    CHECK(*out_len <= 3 * n && out[*out_len] == '\0');
    CHECK(jansson_utf8(out, *out_len) && !memchr(out, '\0', *out_len));
    char *again = NULL;
    size_t again_len;
    CHECK(utf8_sanitize(out, *out_len, &again, &again_len) == 0);
    CHECK(again == NULL && again_len == *out_len);
    return out;
}

static void check_ipc(const char *line, size_t len)
{
    json_t *items = (json_t *)1;
    int rc = ipc_parse_line(line, len, &items);
    if (rc == 0) {
        CHECK(items == NULL);
        return;
    }
    CHECK(rc == 1 && json_is_array(items));
    CHECK(memmem(line, len, "\"ipc\"", 5) != NULL);
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) CHECK(json_is_object(v));
    json_decref(items);
}

/* One line of the reference split against the pieces from *next on. */
static void check_line(const char *line, size_t len, const struct pieces *p, size_t *next,
                       size_t *offset, size_t max_line)
{
    if (len == 0) {
        CHECK(*next < p->n && p->lens[*next] == 0);
        (*next)++;
    }
    size_t got = 0, out_len = 0;
    char *joined = NULL;
    while (got < len) {
        CHECK(*next < p->n);
        size_t n = p->lens[*next];
        CHECK(n > 0 && n <= max_line && got + n <= len);
        CHECK(memcmp(p->bytes + *offset, line + got, n) == 0);
        size_t s_len;
        char *s = sanitized(p->bytes + *offset, n, &s_len);
        CHECK((joined = realloc(joined, out_len + s_len + 1)));
        memcpy(joined + out_len, s, s_len);
        out_len += s_len;
        free(s);
        got += n;
        *offset += n;
        (*next)++;
    }
    size_t whole_len;
    char *whole = sanitized(line, len, &whole_len);
    if (max_line >= 4 && len > 0)
        CHECK(whole_len == out_len && memcmp(whole, joined, out_len) == 0);
    check_ipc(whole, whole_len);
    free(whole);
    free(joined);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_line = 1 + data[0] % 64;
    size_t chunk = 1 + data[1];
    const char *in = (const char *)data + 2;
    size_t n = size - 2;

    struct line_splitter s;
    line_splitter_init(&s, max_line);
    struct pieces chunked = {0}, whole = {0};
    for (size_t off = 0; off < n; off += chunk)
        line_splitter_feed(&s, in + off, n - off < chunk ? n - off : chunk, collect, &chunked);
    line_splitter_finish(&s, collect, &chunked);
    /* Finished, the splitter starts afresh: the same bytes at once give the same pieces. */
    line_splitter_feed(&s, in, n, collect, &whole);
    line_splitter_finish(&s, collect, &whole);
    line_splitter_free(&s);
    CHECK(chunked.n == whole.n && chunked.len == whole.len);
    if (chunked.n) {
        CHECK(memcmp(chunked.lens, whole.lens, chunked.n * sizeof(size_t)) == 0);
        CHECK(memcmp(chunked.bytes, whole.bytes, chunked.len) == 0);
    }

    /* The reference split, line by line, against the pieces. */
    size_t next = 0, offset = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > 0 && in[i - 1] == '\r')
            len--;
        check_line(in + start, len, &chunked, &next, &offset, max_line);
        start = i + 1;
    }
    if (start < n)
        check_line(in + start, n - start, &chunked, &next, &offset, max_line);
    CHECK(next == chunked.n && offset == chunked.len);

    pieces_free(&chunked);
    pieces_free(&whole);
    return 0;
}

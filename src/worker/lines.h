/*
 * Turning a task's raw output into lines the rest of the worker can ship.
 *
 * Pure logic, no I/O: a line splitter that keeps memory bounded whatever the
 * child writes, a UTF-8 sanitiser so that every line is a valid JSON string,
 * and the recogniser for Crawlab SDK result lines. Nothing here is
 * thread-safe on a shared object; distinct objects may be used from distinct
 * threads. Nothing here blocks.
 */
#ifndef CRAWLAB_WORKER_LINES_H
#define CRAWLAB_WORKER_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The longest line delivered in one piece (docs/protocol.md). */
#define LINES_DEFAULT_MAX_LINE ((size_t)1 << 20)

/*
 * Splits a byte stream into lines. '\n' ends a line and "\r\n" does too (the
 * '\r' is stripped). A line longer than max_line bytes is emitted in pieces of
 * at most max_line bytes, cut on a UTF-8 character boundary when one lies
 * within the last 3 bytes of the piece. The buffer grows on demand up to
 * max_line + 1 bytes, so memory stays O(max_line) and an idle splitter holds
 * none. Treat the fields as private.
 */
struct line_splitter {
    char *buf;       /* Owned; the start of the line not yet emitted. */
    size_t len;      /* Bytes held in buf. */
    size_t cap;      /* Bytes allocated for buf. */
    size_t max_line; /* Longest piece ever emitted. */
    bool mid_line;   /* A piece of the current line went out already. */
};

/*
 * Receives one line (or one piece of an over-long line) without its
 * terminator. The bytes are borrowed for the duration of the call and are not
 * NUL-terminated; they are raw output, not yet sanitised.
 */
typedef void (*line_emit_fn)(void *ctx, const char *line, size_t len);

/* Prepares an empty splitter; max_line 0 means LINES_DEFAULT_MAX_LINE. Allocates nothing. */
void line_splitter_init(struct line_splitter *s, size_t max_line);

/*
 * Consumes n bytes, calling emit for every line they complete, in order. A
 * partial line is kept for the next call. If memory runs out a line may be
 * emitted in shorter pieces than max_line; no byte is ever dropped.
 */
void line_splitter_feed(struct line_splitter *s, const char *data, size_t n, line_emit_fn emit,
                        void *ctx);

/*
 * Ends the stream: emits the trailing partial line, if any, and releases the
 * buffer. The splitter may be fed again afterwards as if freshly initialised.
 */
void line_splitter_finish(struct line_splitter *s, line_emit_fn emit, void *ctx);

/*
 * Releases the buffer without emitting anything. Safe on an initialised,
 * finished or already freed splitter.
 */
void line_splitter_free(struct line_splitter *s);

/*
 * Makes valid UTF-8 out of any bytes. Each invalid sequence (bad lead byte,
 * truncated sequence, overlong form, surrogate, code point above U+10FFFF)
 * becomes one U+FFFD, following the "maximal subpart" practice of Unicode and
 * WHATWG; NUL bytes become U+FFFD too, so the result is always a valid JSON
 * string. Returns 0 and leaves *out NULL when the input is already valid (the
 * common, zero-copy case; *out_len is then set to n). Otherwise returns 0 and sets *out to a
 * malloc'd, NUL-terminated copy that the caller frees, and *out_len to its length without the NUL.
 * Returns -ENOMEM (with *out NULL) if memory runs out.
 */
int utf8_sanitize(const char *in, size_t n, char **out, size_t *out_len);

/*
 * Recognises a Crawlab SDK result line: a JSON object
 * {"type":"data","payload":X,"ipc":true}, extra keys allowed. Returns 1 and
 * sets *items to a new reference (the caller json_decref's it) to a JSON
 * array of objects: X itself when X is an array of objects (possibly empty),
 * [X] when X is an object. Returns 0 with *items NULL when the line is not
 * such a line, including when X is neither an object nor an array of objects:
 * the caller then treats it as a log line. A line that does not start with
 * '{' after whitespace, or does not mention "ipc", is rejected without
 * parsing. A \u0000 escape in a string value is accepted (it stays a NUL
 * inside the jansson string, and is escaped again when serialised); one in
 * an object key, which jansson cannot hold, makes the line a log line. The
 * line must be valid UTF-8 (see utf8_sanitize).
 */
int ipc_parse_line(const char *line, size_t len, json_t **items);

#endif

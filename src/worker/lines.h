/*
 * Turning a task's raw output into lines the rest of the worker can ship.
 *
 * Pure logic, no I/O: a line splitter that keeps memory bounded whatever the
 * child writes (each line is then made valid UTF-8 by utf8_sanitize of
 * runtime/utf8.h, and SDK result lines are recognised by worker/ipc.h). Nothing here is
 * thread-safe on a shared object; distinct objects may be used from distinct
 * threads. Nothing here blocks.
 */
#ifndef CRAWLAB_WORKER_LINES_H
#define CRAWLAB_WORKER_LINES_H

#include <stdbool.h>
#include <stddef.h>

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

#endif

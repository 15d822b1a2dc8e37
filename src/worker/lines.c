#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include "worker/lines.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/utf8.h"

/* First allocation of a splitter; most lines are short, so most splitters never grow past it. */
#define SPLITTER_INITIAL_CAP 4096

void line_splitter_init(struct line_splitter *s, size_t max_line)
{
    if (max_line == 0)
        max_line = LINES_DEFAULT_MAX_LINE;
    /* The buffer holds max_line + 1 bytes; keep that sum and the doubling in reserve() finite. */
    if (max_line > SIZE_MAX / 4)
        max_line = SIZE_MAX / 4;
    s->buf = NULL;
    s->len = 0;
    s->cap = 0;
    s->max_line = max_line;
    s->mid_line = false;
}

void line_splitter_free(struct line_splitter *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    s->cap = 0;
    s->mid_line = false;
}

/*
 * Where to end a piece of at most limit bytes: before the last character if it starts within the
 * last 3 bytes and the bytes end inside it, so that the next piece completes it. Anything else
 * (a whole character, an invalid sequence) is cut at limit: an invalid sequence is replaced the
 * same whichever side of the cut its bytes fall.
 */
static size_t utf8_cut(const char *buf, size_t limit)
{
    const unsigned char *b = (const unsigned char *)buf;
    for (size_t back = 1; back <= 3 && back <= limit; back++) {
        size_t j = limit - back;
        if ((b[j] & 0xC0) == 0x80)
            continue;
        if (j == 0)
            return limit; /* the piece would be empty */
        enum utf8_result res;
        utf8_next(b + j, limit - j, &res);
        return res == UTF8_TRUNCATED ? j : limit;
    }
    return limit;
}

/*
 * Emits the first piece of the held bytes, at most limit bytes long, and
 * keeps the rest. Callers pass limit < len so at least one byte stays: the
 * byte just appended may be the '\r' of a "\r\n" whose '\n' is still to come.
 */
static void emit_piece(struct line_splitter *s, size_t limit, line_emit_fn emit, void *ctx)
{
    size_t cut = utf8_cut(s->buf, limit);
    emit(ctx, s->buf, cut);
    memmove(s->buf, s->buf + cut, s->len - cut);
    s->len -= cut;
    s->mid_line = true;
}

/* Grows the buffer to hold want bytes (want <= max_line + 1); false if memory ran out. */
static bool reserve(struct line_splitter *s, size_t want)
{
    if (s->cap >= want)
        return true;
    size_t ncap = s->cap ? s->cap : SPLITTER_INITIAL_CAP;
    while (ncap < want)
        ncap *= 2;
    if (ncap > s->max_line + 1)
        ncap = s->max_line + 1;
    char *nbuf = realloc(s->buf, ncap);
    if (!nbuf)
        return false;
    s->buf = nbuf;
    s->cap = ncap;
    return true;
}

/*
 * Adds bytes that contain no '\n' to the current line. The buffer holds up to
 * max_line + 1 bytes: a full piece is only emitted once a byte beyond it
 * arrives that cannot be the '\r' of the terminator, which is known for sure
 * only when yet another byte follows.
 */
static void append(struct line_splitter *s, const char *data, size_t n, line_emit_fn emit,
                   void *ctx)
{
    while (n > 0) {
        size_t limit = s->max_line + 1;
        if (s->len == limit) {
            emit_piece(s, s->max_line, emit, ctx);
            continue;
        }
        size_t take = n < limit - s->len ? n : limit - s->len;
        if (!reserve(s, s->len + take)) {
            size_t room = s->cap - s->len;
            if (room == 0 && s->len >= 2) {
                /* Out of memory: shorter pieces rather than lost bytes. */
                emit_piece(s, s->len - 1, emit, ctx);
                continue;
            }
            if (room == 0) {
                /* Nothing could ever be allocated: pass the bytes straight through. */
                size_t piece = n < s->max_line ? n : utf8_cut(data, s->max_line);
                emit(ctx, data, piece);
                s->mid_line = true;
                data += piece;
                n -= piece;
                continue;
            }
            if (take > room)
                take = room;
        }
        memcpy(s->buf + s->len, data, take);
        s->len += take;
        data += take;
        n -= take;
    }
}

/* A '\n' arrived: emits what is held as the (last piece of the) line. */
static void end_line(struct line_splitter *s, line_emit_fn emit, void *ctx)
{
    if (s->len > 0 && s->buf[s->len - 1] == '\r')
        s->len--;
    while (s->len > s->max_line)
        emit_piece(s, s->max_line, emit, ctx);
    if (s->len > 0 || !s->mid_line)
        emit(ctx, s->buf ? s->buf : "", s->len);
    s->len = 0;
    s->mid_line = false;
}

void line_splitter_feed(struct line_splitter *s, const char *data, size_t n, line_emit_fn emit,
                        void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        if (!nl) {
            append(s, data, n, emit, ctx);
            return;
        }
        size_t seg = (size_t)(nl - data);
        size_t line_len = seg > 0 && data[seg - 1] == '\r' ? seg - 1 : seg;
        if (s->len == 0 && !s->mid_line && line_len <= s->max_line) {
            /* The whole line is in the caller's bytes: no copy. */
            emit(ctx, data, line_len);
        } else {
            append(s, data, seg, emit, ctx);
            end_line(s, emit, ctx);
        }
        data += seg + 1;
        n -= seg + 1;
    }
}

void line_splitter_finish(struct line_splitter *s, line_emit_fn emit, void *ctx)
{
    if (s->len > 0) {
        while (s->len > s->max_line)
            emit_piece(s, s->max_line, emit, ctx);
        emit(ctx, s->buf, s->len);
    }
    line_splitter_free(s);
}

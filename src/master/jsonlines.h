/*
 * A fast, strict reader for the one JSON shape the log path carries: an array of strings
 * (TaskServiceConnectRequest.data of INSERT_LOGS). A general JSON parser builds a tree and copies
 * every string byte by byte; this walks the text once, points at strings that need no unescaping
 * in place, and decodes the others into one scratch buffer. Pure: no I/O, any thread.
 */
#ifndef CRAWLAB_JSONLINES_H
#define CRAWLAB_JSONLINES_H

#include <stddef.h>

struct jsonlines {
    const char **ptrs; /* each line: into the input, or into scratch */
    size_t *lens;
    size_t n, cap;
    char *scratch; /* decoded escaped strings */
    size_t scratch_len;
};

/*
 * Parses text (len bytes) as a JSON array of strings, surrounding whitespace allowed. On success
 * returns the number of strings, and out holds them (valid while text and out live). The strings
 * are the JSON strings decoded, except that \u0000 gives U+FFFD: no line ever holds a NUL, just
 * as the worker replaces a NUL byte of a task's output. Returns -EINVAL for anything else: another
 * JSON value, an element that is not a string, invalid UTF-8, a control character or a bad escape
 * inside a string, a lone surrogate, trailing bytes; -ENOMEM.
 */
int jsonlines_parse(struct jsonlines *out, const char *text, size_t len);
void jsonlines_free(struct jsonlines *out);

#endif

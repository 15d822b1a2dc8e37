/*
 * The Crawlab SDK's result lines on a task's stdout. Pure: any thread, never blocks.
 */
#ifndef CRAWLAB_WORKER_IPC_H
#define CRAWLAB_WORKER_IPC_H

#include <stddef.h>

#include <jansson.h>

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

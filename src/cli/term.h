/*
 * Text from the cluster, made safe for an operator's terminal. Log lines and result items carry
 * whatever a crawled page held, and a terminal acts on control characters: ESC sequences set the
 * window title, clear the screen or write the clipboard (OSC 52). Shown on a terminal, such bytes
 * are written visibly instead: C0 controls but TAB as caret notation (ESC is "^["), DEL as "^?",
 * and the C1 controls U+0080..U+009F (which some terminals also obey) as "\u0080".."\u009f".
 * Everything else, invalid UTF-8 included, is written as it is.
 *
 * Pure but for the FILE * it writes to; main thread of a client command.
 */
#ifndef CRAWLAB_CLI_TERM_H
#define CRAWLAB_CLI_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Writes the n bytes at s to out, made visible as above when escape, exactly otherwise. Returns
 * 0, or -1 when a write failed. */
int term_write(FILE *out, const char *s, size_t n, bool escape);

#endif

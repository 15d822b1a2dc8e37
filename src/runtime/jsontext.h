/*
 * Compact JSON text of a result item, bounded. jansson writes a real with 17 significant digits,
 * so 1e-7 becomes 1.0000000000000000e-07: an item read from a 1 MiB line of such numbers grows past
 * every message limit when written back. The worker (before sending) and the master (before
 * storing) both write items through here, so that an item one of them accepts, the other can
 * carry and ReadResults can serve.
 */
#ifndef CRAWLAB_JSONTEXT_H
#define CRAWLAB_JSONTEXT_H

#include <stddef.h>

#include <jansson.h>

/*
 * The compact JSON text of v in at most max bytes: jansson's default, else the first of 15 and
 * 16 significant digits that fits and reads back as exactly v (no value changes). NULL when none
 * fits (*len is then the default text's size) or when out of memory (*len is then 0). free() it.
 */
char *jsontext_within(const json_t *v, size_t max, size_t *len);

/* A JSON string of s (NULL: ""): json_string() refuses bytes that are not UTF-8, so every byte
 * >= 0x80 becomes '?' when s has such bytes, rather than the field being lost. NULL when out of
 * memory. */
json_t *jsontext_string(const char *s);

#endif

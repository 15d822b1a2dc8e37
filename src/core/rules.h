/*
 * The rules of the domain's strings: one checker per rule, used by the wire validator, the store,
 * the configuration and the worker alike, so that whatever one of them accepts the others accept
 * too (tests/unit/test_rules.c holds them to it). Bounds come from core/limits.h; the task id rule
 * is task_id_valid() in core/task.h.
 *
 * Every function here is pure and reentrant: any thread may call it, none blocks or allocates.
 * NULL is never valid.
 */
#ifndef CRAWLAB_CORE_RULES_H
#define CRAWLAB_CORE_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"

/* Human wording of the rules, for error messages that must agree with the checkers. */
#define STR_(x)          #x
#define STR(x)           STR_(x)
#define RULE_NODE_KEY    "1 to " STR(LIMIT_NODE_KEY_MAX) " letters, digits, '.', '_', ':' or '-'"
#define RULE_NAME        "1 to " STR(LIMIT_NAME_MAX) " bytes of UTF-8 text without control characters"
#define RULE_ENV_NAME    "a letter or '_', then letters, digits or '_'"
#define RULE_AUTH_KEY    "printable ASCII without spaces"
#define RULE_PRIORITY    STR(LIMIT_PRIORITY_MIN) " (first) to " STR(LIMIT_PRIORITY_MAX) " (last)"
#define RULE_RETRIES     "0 to " STR(LIMIT_RETRIES_MAX)
#define RULE_RETRY_DELAY "0 to 24 h"
#define RULE_STORE       "a PostgreSQL URI, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?...]"
#define RULE_LABEL                                                                                 \
    "KEY=VALUE, KEY 1 to " STR(LIMIT_LABEL_KEY_MAX) " letters, digits, '.', '_', '/' or '-', "     \
                                                    "VALUE at most " STR(                          \
                                                        LIMIT_LABEL_VAL_MAX) " bytes of text"
#define RULE_LABELS "at most " STR(LIMIT_LABELS_MAX) " labels, each " RULE_LABEL ", no KEY twice"

/* A node key: 1..LIMIT_NODE_KEY_MAX characters of [A-Za-z0-9._:-]. */
bool node_key_valid(const char *s);

/* One line of text: at most max bytes of UTF-8 without control characters (C0 or DEL). The rule
 * of node and task names and labels (max LIMIT_NAME_MAX, and a name is also non-empty: see
 * name_valid) and of version strings. */
bool text_line_valid(const char *s, size_t max);

/* A node or task name: non-empty and a text line of at most LIMIT_NAME_MAX bytes. */
bool name_valid(const char *s);

/* An environment variable name: the len bytes at s are [A-Za-z_][A-Za-z0-9_]*, 1 to
 * LIMIT_ENV_NAME_MAX of them. s need not be NUL-terminated (a "K=V" entry is checked in place). */
bool env_name_valid(const char *s, size_t len);

/* An auth key: it travels as gRPC metadata, so 1 or more printable ASCII characters other than
 * space (0x21..0x7E). No upper bound: the master checks what it was given. */
bool auth_key_valid(const char *s);

/* A task priority within LIMIT_PRIORITY_MIN..LIMIT_PRIORITY_MAX. */
bool priority_valid(long long p);

/*
 * Labels. A node announces labels, a task may carry a selector of labels that its node must all
 * have. One label is KEY=VALUE: KEY 1..LIMIT_LABEL_KEY_MAX of [A-Za-z0-9._/-], VALUE (split at the
 * first '=', may be empty) a text line of at most LIMIT_LABEL_VAL_MAX bytes. A set holds at most
 * LIMIT_LABELS_MAX labels, no KEY twice. Stored and kept in the registry as text: the labels
 * joined by '\n' ("" for none), which is what labels_join writes and labels_match reads.
 */
bool label_valid(const char *s, size_t len);      /* the len bytes at s are one label */
bool labels_valid(char *const *labels, size_t n); /* a set, as the wire and the config hold it */
bool labels_text_valid(const char *text);         /* a set in its joined form */

/* Joins a valid set into out (cap bytes, LIMIT_LABELS_TEXT_MAX + 1 is always enough): 0, or -1
 * when it does not fit. */
int labels_join(char *const *labels, size_t n, char *out, size_t cap);

/* Whether a node with labels `have` matches the selector `want` (both joined forms, NULL is ""):
 * every label of want is one of have. An empty selector matches every node. */
bool labels_match(const char *want, const char *have);

/* How many times a failed task may be retried: 0..LIMIT_RETRIES_MAX. */
bool retries_valid(long long n);

/* The delay before a task's first retry, in ms: 0..LIMIT_RETRY_DELAY_MAX_MS. */
bool retry_delay_valid(long long ms);

/* Whether a store's location names PostgreSQL: a "postgres://" or "postgresql://" URI with
 * something after the scheme (libpq checks the rest when it connects). Anything else is a data
 * directory, SQLite's. */
bool store_location_is_pg(const char *location);

#endif

/*
 * The rules of spiders: their names, how a task names one (NAME or NAME@VERSION), the SHA-256 that
 * addresses an archive, and which archive entries are safe to unpack. The master checks a pushed
 * archive with them before storing it, and the worker again before unpacking one
 * (spider/archive.h); the wire validator checks names, references and hashes.
 *
 * Pure and reentrant: any thread, never blocks or allocates. NULL is never valid.
 */
#ifndef CRAWLAB_CORE_SPIDER_H
#define CRAWLAB_CORE_SPIDER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/rules.h"

#define SPIDER_SHA256_HEX 64 /* a SHA-256 in lowercase hex */

#define RULE_SPIDER_NAME   "1 to " STR(LIMIT_SPIDER_NAME_MAX) " letters, digits, '.', '_' or '-'"
#define RULE_SPIDER_REF    "NAME or NAME@VERSION: NAME " RULE_SPIDER_NAME ", VERSION a number from 1"
#define RULE_SPIDER_SHA256 STR(SPIDER_SHA256_HEX) " lowercase hex digits"
#define RULE_SPIDER_PATH                                                                           \
    "a relative path of at most " STR(LIMIT_SPIDER_PATH_MAX) " bytes with no '..' component"

/* A spider's name: 1..LIMIT_SPIDER_NAME_MAX characters of [A-Za-z0-9._-]. */
bool spider_name_valid(const char *s);

/* A SHA-256 as the master and worker write it: exactly 64 of [0-9a-f]. */
bool spider_sha256_valid(const char *s);

/*
 * Splits "NAME" or "NAME@VERSION" into name (LIMIT_SPIDER_NAME_MAX + 1 bytes) and *version (0 for
 * "the latest"). Returns false, touching nothing, for anything else (VERSION 0, a sign, digits past
 * 2^31 - 1, a bad name).
 */
bool spider_ref_parse(const char *ref, char *name, uint32_t *version);

/*
 * An archive entry's path that stays inside the directory it is unpacked into: non-empty, at most
 * LIMIT_SPIDER_PATH_MAX bytes, not absolute, no ".." component and no control character. "./" and
 * repeated slashes are allowed ("./a//b" is "a/b"); "." alone is the directory itself.
 */
bool spider_path_valid(const char *path);

/*
 * Whether a symbolic link at `path` (itself valid) whose target is `target` points inside the
 * tree: the target is relative and, read from path's directory, never climbs above the root
 * ("a/l" -> "../b" stays inside; "l" -> "../b" does not). A link to an absolute path is refused.
 */
bool spider_link_target_valid(const char *path, const char *target);

#endif

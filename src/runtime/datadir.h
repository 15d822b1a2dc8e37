/*
 * The data directory: where it is by default, making sure it exists, and clearing what an earlier
 * run left in it. Start-up only (blocks).
 */
#ifndef CRAWLAB_DATADIR_H
#define CRAWLAB_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

/* The directory to use: configured (may be NULL), else /var/lib/crawlab-node for root and
 * ./crawlab-data for anyone else. Returns a heap string, or NULL on ENOMEM. */
char *datadir_resolve(const char *configured);

/* mkdir -p with mode 0700; 0 or -1 with errno. */
int datadir_ensure(const char *path);

/*
 * Takes an exclusive lock on <dir>/<name> for the life of the process, so that two daemons never
 * share one data directory. Returns the lock's fd, -EBUSY when another process holds it, -errno.
 */
int datadir_lock(const char *dir, const char *name);

/* Reads a small file (up to 1 KiB) with surrounding whitespace trimmed. -ENOENT, -EINVAL when
 * empty, -errno. The caller frees *out. */
int datadir_read_trimmed(const char *path, char **out);

/*
 * Reads <dir>/<name>, or creates it (mode 0600, nbytes random bytes as hex, at most 64) when it
 * does not exist; *created says which. Used for identities and secrets that are made once and
 * kept: the auth key, a worker's node key and machine id.
 */
int datadir_random_id(const char *dir, const char *name, size_t nbytes, char **out, bool *created);

/* Fills buf with n random bytes (n <= 64) as 2n lowercase hex characters and a NUL. */
int datadir_random_hex(char *buf, size_t n);

/*
 * Removes the entries of dir whose name match accepts ("." and ".." are not offered), each with
 * unlinkat(2) and its flags: 0 for files, AT_REMOVEDIR for empty directories. An entry that cannot
 * be removed is left as it is. Returns how many were removed, or -errno when dir cannot be opened.
 */
int datadir_remove_entries(const char *dir, bool (*match)(const char *name), int flags);

#endif

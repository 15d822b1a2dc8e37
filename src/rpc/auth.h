/*
 * The cluster's two secrets: where they come from and how a call proves it has one.
 *
 * The node key (auth.key) is what workers present; the admin key (admin.key) is what client
 * commands present (core/roles.h: ROLE_NODE, ROLE_ADMIN). Every call carries gRPC metadata
 * "authorization" whose value is the key itself (Crawlab's convention, no "Bearer"). Keys never
 * reach a log line.
 */
#ifndef CRAWLAB_AUTH_H
#define CRAWLAB_AUTH_H

#include <stdbool.h>

#include <grpc/grpc.h>

#define AUTH_METADATA_KEY "authorization"
/* The files the master generates in its data directory on first start. */
#define AUTH_NODE_KEY_FILE  "auth.key"
#define AUTH_ADMIN_KEY_FILE "admin.key"

/* True when md holds the key; compares in time independent of where the values differ. */
bool auth_metadata_ok(const grpc_metadata_array *md, const char *key);

/* The roles (core/roles.h) the "authorization" value of md proves: ROLE_NODE when it is
 * node_key, ROLE_ADMIN when it is admin_key, 0 for none. Both comparisons always run, in time
 * independent of the values; a NULL key matches nothing. */
unsigned auth_metadata_roles(const grpc_metadata_array *md, const char *node_key,
                             const char *admin_key);

/* Reads a key file (surrounding whitespace trimmed). -ENODATA when empty, -EINVAL when what is
 * left breaks the key's rule (auth_key_valid of core/rules.h: a newline inside, say), -ENOENT,
 * -errno. The caller frees *out. Blocks (file I/O); start-up only. */
int auth_key_read_file(const char *path, char **out);

/* Why a key file could not be used, from the error of auth_key_read_file: a static string. */
const char *auth_key_file_error(int rc);

/*
 * The master's zero-config keys: reads <data_dir>/<name> (AUTH_NODE_KEY_FILE or
 * AUTH_ADMIN_KEY_FILE), or creates it (mode 0600, 32 random bytes as hex) when absent. *created
 * tells which happened. Start-up only.
 */
int auth_key_ensure(const char *data_dir, const char *name, char **out, bool *created);

#endif

/*
 * The shared auth key: where it comes from and how a call proves it has it.
 *
 * Every call carries gRPC metadata "authorization" whose value is the key itself (Crawlab's
 * convention, no "Bearer"). Keys never reach a log line.
 */
#ifndef CRAWLAB_AUTH_H
#define CRAWLAB_AUTH_H

#include <stdbool.h>

#include <grpc/grpc.h>

#define AUTH_METADATA_KEY "authorization"

/* True when md holds the key; compares in time independent of where the values differ. */
bool auth_metadata_ok(const grpc_metadata_array *md, const char *key);

/* Reads a key file (surrounding whitespace trimmed). -ENODATA when empty, -EINVAL when what is
 * left breaks the key's rule (auth_key_valid of core/rules.h: a newline inside, say), -ENOENT,
 * -errno. The caller frees *out. Blocks (file I/O); start-up only. */
int auth_key_read_file(const char *path, char **out);

/* Why a key file could not be used, from the error of auth_key_read_file: a static string. */
const char *auth_key_file_error(int rc);

/*
 * The master's zero-config key: reads <data_dir>/auth.key, or creates it (mode 0600, 32 random
 * bytes as hex) when absent. *created tells which happened. Start-up only.
 */
int auth_key_ensure(const char *data_dir, char **out, bool *created);

#endif

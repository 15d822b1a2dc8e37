#include "rpc/auth.h"

#include <string.h>

#include "runtime/datadir.h"

/* Compares every byte of the expected key whatever the given value is, so the time taken does not
 * tell an attacker how much of a guess was right. */
static bool equal_const_time(const uint8_t *given, size_t given_len, const char *key)
{
    size_t key_len = strlen(key);
    unsigned diff = given_len != key_len;
    for (size_t i = 0; i < key_len; i++) {
        uint8_t g = given_len ? given[i % given_len] : 0;
        diff |= (unsigned)(g ^ (uint8_t)key[i]);
    }
    return diff == 0;
}

bool auth_metadata_ok(const grpc_metadata_array *md, const char *key)
{
    for (size_t i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, AUTH_METADATA_KEY) != 0)
            continue;
        grpc_slice v = md->metadata[i].value;
        return equal_const_time(GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v), key);
    }
    return false;
}

int auth_key_read_file(const char *path, char **out)
{
    return datadir_read_trimmed(path, out);
}

int auth_key_ensure(const char *data_dir, char **out, bool *created)
{
    return datadir_random_id(data_dir, "auth.key", 32, out, created);
}

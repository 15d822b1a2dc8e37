#include "rpc/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rules.h"
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
    int rc = datadir_read_trimmed(path, out);
    if (rc == -EINVAL)
        return -ENODATA;
    if (rc == 0 && !auth_key_valid(*out)) {
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return rc;
}

const char *auth_key_file_error(int rc)
{
    switch (rc) {
    case -ENODATA:
        return "file is empty";
    case -EINVAL:
        return "the key must be " RULE_AUTH_KEY;
    default:
        return strerror(-rc);
    }
}

int auth_key_ensure(const char *data_dir, char **out, bool *created)
{
    int rc = datadir_random_id(data_dir, "auth.key", 32, out, created);
    if (rc == 0 && !auth_key_valid(*out)) {
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return rc;
}

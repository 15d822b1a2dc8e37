#include "rpc/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/roles.h"
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

/* The first "authorization" entry of md, or NULL. */
static const grpc_slice *find_auth(const grpc_metadata_array *md)
{
    for (size_t i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, AUTH_METADATA_KEY) == 0)
            return &md->metadata[i].value;
    }
    return NULL;
}

bool auth_metadata_ok(const grpc_metadata_array *md, const char *key)
{
    const grpc_slice *v = find_auth(md);
    return v && equal_const_time(GRPC_SLICE_START_PTR(*v), GRPC_SLICE_LENGTH(*v), key);
}

unsigned auth_metadata_roles(const grpc_metadata_array *md, const char *node_key,
                             const char *admin_key)
{
    const grpc_slice *v = find_auth(md);
    if (!v)
        return 0;
    const uint8_t *p = GRPC_SLICE_START_PTR(*v);
    size_t len = GRPC_SLICE_LENGTH(*v);
    /* Both comparisons run whatever the first one said. */
    bool node = node_key && equal_const_time(p, len, node_key);
    bool admin = admin_key && equal_const_time(p, len, admin_key);
    return (node ? ROLE_NODE : 0u) | (admin ? ROLE_ADMIN : 0u);
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

int auth_key_ensure(const char *data_dir, const char *name, char **out, bool *created)
{
    int rc = datadir_random_id(data_dir, name, 32, out, created);
    if (rc == 0 && !auth_key_valid(*out)) {
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return rc;
}

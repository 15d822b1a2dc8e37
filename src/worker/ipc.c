#include "worker/ipc.h"

#include <stdbool.h>
#include <string.h>

static bool is_array_of_objects(const json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_object(v))
            return false;
    }
    return true;
}

/* True if v is the JSON string s exactly (an embedded NUL does not match). */
static bool json_string_is(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

int ipc_parse_line(const char *line, size_t len, json_t **items)
{
    *items = NULL;

    /*
     * Most output is plain text: a cheap look at the first byte, then for a
     * bare mention of the key, keeps the JSON parser off the hot path.
     */
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n'))
        i++;
    if (i == len || line[i] != '{')
        return 0;
    if (!memmem(line + i, len - i, "\"ipc\"", 5))
        return 0;

    /* A \u0000 in a string value is valid JSON; the uploader writes it back escaped. */
    json_t *root = json_loadb(line + i, len - i, JSON_ALLOW_NUL, NULL);
    if (!root)
        return 0;

    int rc = 0;
    json_t *payload = json_object_get(root, "payload");
    if (json_is_object(root) && json_string_is(json_object_get(root, "type"), "data") &&
        json_is_true(json_object_get(root, "ipc")) && payload) {
        if (json_is_object(payload)) {
            json_t *arr = json_array();
            if (arr && json_array_append(arr, payload) == 0) {
                *items = arr;
                rc = 1;
            } else {
                json_decref(arr);
            }
        } else if (json_is_array(payload) && is_array_of_objects(payload)) {
            *items = json_incref(payload);
            rc = 1;
        }
    }
    json_decref(root);
    return rc;
}

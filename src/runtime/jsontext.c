#include "runtime/jsontext.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char *jsontext_within(const json_t *v, size_t max, size_t *len)
{
    *len = 0;
    char *text = json_dumps(v, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    if (n <= max) {
        *len = n;
        return text;
    }
    free(text);
    for (int digits = 15; digits <= 16; digits++) {
        char *shorter = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(digits));
        if (!shorter) {
            *len = 0;
            return NULL;
        }
        size_t m = strlen(shorter);
        json_t *back = m <= max ? json_loadb(shorter, m, JSON_ALLOW_NUL, NULL) : NULL;
        bool same = back && json_equal(back, v);
        json_decref(back);
        if (same) {
            *len = m;
            return shorter;
        }
        free(shorter);
    }
    *len = n;
    return NULL;
}

json_t *jsontext_string(const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j || !s)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

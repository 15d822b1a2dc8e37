#include "core/spider.h"

#include <string.h>

bool spider_name_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, LIMIT_SPIDER_NAME_MAX + 1);
    if (n == 0 || n > LIMIT_SPIDER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool spider_sha256_valid(const char *s)
{
    if (!s || strnlen(s, SPIDER_SHA256_HEX + 1) != SPIDER_SHA256_HEX)
        return false;
    for (size_t i = 0; i < SPIDER_SHA256_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool spider_ref_parse(const char *ref, char *name, uint32_t *version)
{
    if (!ref)
        return false;
    const char *at = strchr(ref, '@');
    size_t len = at ? (size_t)(at - ref) : strlen(ref);
    if (len == 0 || len > LIMIT_SPIDER_NAME_MAX)
        return false;
    char n[LIMIT_SPIDER_NAME_MAX + 1];
    memcpy(n, ref, len);
    n[len] = '\0';
    if (!spider_name_valid(n))
        return false;
    uint64_t v = 0;
    if (at) {
        const char *p = at + 1;
        if (*p < '1' || *p > '9')
            return false;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return false;
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > INT32_MAX)
                return false;
        }
    }
    memcpy(name, n, len + 1);
    *version = (uint32_t)v;
    return true;
}

/* Walks the components of path (len bytes), counting the depth below the root from `depth`;
 * returns the depth at the end, or -1 when a ".." would climb above the root (or when
 * dotdot_ok is false and any ".." appears). */
static long walk_depth(const char *path, size_t len, long depth, bool dotdot_ok)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (!dotdot_ok || depth == 0)
                return -1;
            depth--;
        } else if (n > 0 && !(n == 1 && path[i] == '.')) {
            depth++;
        }
        i = j + 1;
    }
    return depth;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return true;
    return false;
}

bool spider_path_valid(const char *path)
{
    if (!path)
        return false;
    size_t n = strnlen(path, LIMIT_SPIDER_PATH_MAX + 1);
    if (n == 0 || n > LIMIT_SPIDER_PATH_MAX || path[0] == '/' || has_control(path, n))
        return false;
    return walk_depth(path, n, 0, false) >= 0;
}

bool spider_link_target_valid(const char *path, const char *target)
{
    if (!spider_path_valid(path) || !target)
        return false;
    size_t n = strnlen(target, LIMIT_SPIDER_PATH_MAX + 1);
    if (n == 0 || n > LIMIT_SPIDER_PATH_MAX || target[0] == '/' || has_control(target, n))
        return false;
    /* The link's directory: every component of path but the last. */
    const char *slash = strrchr(path, '/');
    long dir = slash ? walk_depth(path, (size_t)(slash - path), 0, false) : 0;
    return dir >= 0 && walk_depth(target, n, dir, true) >= 0;
}

/*
 * Named zones: the TZif file of a zone name under the zoneinfo directory, parsed by core/tz.c.
 * The one part of src/config/ that reads a file (config.h, "Named zones").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/internal.h"
#include "core/tz.h"

const char *config_zone_dir(config_getenv_fn *getenv_fn)
{
    const char *dir = config_getenv(getenv_fn, "TZDIR");
    return dir && *dir ? dir : CONFIG_ZONEINFO_DIR;
}

/* Reads at most TZ_FILE_MAX bytes of path into buf; the length, or a negative errno. */
static ssize_t zone_read(const char *path, uint8_t *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, TZ_FILE_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (n == 0 || (len += (size_t)n) == TZ_FILE_MAX)
            break;
    }
    close(fd);
    return (ssize_t)len;
}

int config_zone_load(const char *dir, const char *name, struct tz_zone **out, char *why,
                     size_t why_len)
{
    if (!tz_name_valid(name)) {
        snprintf(why, why_len, "'%.*s' is not %s", TZ_NAME_MAX, name, RULE_TZ_NAME);
        return -EINVAL;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        snprintf(why, why_len, "zone %s: the path is too long", name);
        return -ENAMETOOLONG;
    }
    uint8_t *buf = malloc(TZ_FILE_MAX);
    if (!buf) {
        snprintf(why, why_len, "zone %s: out of memory", name);
        return -ENOMEM;
    }
    ssize_t len = zone_read(path, buf);
    int rc = 0;
    if (len < 0) {
        rc = (int)len;
        if (rc == -ENOENT || rc == -ENOTDIR)
            snprintf(why, why_len, "unknown zone %s: no file %s (zoneinfo directory %s%s)", name,
                     path, dir, access(dir, F_OK) == 0 ? "" : ", which does not exist");
        else
            snprintf(why, why_len, "zone %s: cannot read %s: %s", name, path, strerror(-rc));
    } else {
        const char *what = "";
        rc = tz_parse(buf, (size_t)len, out, &what);
        if (rc == -EINVAL)
            snprintf(why, why_len, "zone %s: %s is not a valid zone file: %s", name, path, what);
        else if (rc < 0)
            snprintf(why, why_len, "zone %s: out of memory", name);
    }
    free(buf);
    return rc;
}

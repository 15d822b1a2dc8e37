#include "runtime/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

char *datadir_resolve(const char *configured)
{
    if (configured && *configured)
        return strdup(configured);
    return strdup(geteuid() == 0 ? "/var/lib/crawlab-node" : "./crawlab-data");
}

int datadir_ensure(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int datadir_lock(const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    return fd;
}

int datadir_random_hex(char *buf, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw))
        return -EINVAL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = hex[raw[i] >> 4];
        buf[2 * i + 1] = hex[raw[i] & 15];
    }
    buf[2 * n] = '\0';
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int datadir_read_trimmed(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char buf[1025];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err)
        return err;
    buf[n] = '\0';
    char *start = buf;
    while (is_space(*start))
        start++;
    char *end = start + strlen(start);
    while (end > start && is_space(end[-1]))
        end--;
    *end = '\0';
    if (*start == '\0')
        return -EINVAL;
    return (*out = strdup(start)) ? 0 : -ENOMEM;
}

int datadir_random_id(const char *dir, const char *name, size_t nbytes, char **out, bool *created)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    *created = false;
    int rc = datadir_read_trimmed(path, out);
    if (rc != -ENOENT)
        return rc;

    char id[129];
    if ((rc = datadir_random_hex(id, nbytes)) < 0)
        return rc;
    /* O_EXCL: two processes starting at once on one directory never overwrite each other. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? datadir_read_trimmed(path, out) : -errno;
    size_t len = strlen(id);
    id[len] = '\n';
    if (write(fd, id, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
        rc = errno ? -errno : -EIO;
        close(fd);
        unlink(path);
        return rc;
    }
    close(fd);
    id[len] = '\0';
    if (!(*out = strdup(id)))
        return -ENOMEM;
    *created = true;
    return 0;
}

int datadir_remove_entries(const char *dir, bool (*match)(const char *name), int flags)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || !match(de->d_name))
            continue;
        if (unlinkat(dirfd(d), de->d_name, flags) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

#include "worker/workdirs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/datadir.h"
#include "runtime/log.h"

#define SPARE_PREFIX ".spare-"

struct workdirs {
    char *dir;
    int dir_fd;
    /* The spares' numbers, and the numbers free for a new spare: max in all. */
    unsigned *spare, *vacant;
    size_t n_spare, n_vacant;
    /* What a directory made here looks like (known after the first mkdir). */
    bool made_one;
    mode_t mode;
    uid_t uid;
};

static void spare_name(char *buf, size_t len, unsigned k)
{
    snprintf(buf, len, SPARE_PREFIX "%u", k);
}

static bool is_spare(const char *name)
{
    return strncmp(name, SPARE_PREFIX, strlen(SPARE_PREFIX)) == 0;
}

int workdirs_create(const char *tasks_dir, size_t max_spares, struct workdirs **out)
{
    struct workdirs *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->dir_fd = -1;
    w->dir = strdup(tasks_dir);
    w->spare = calloc(max_spares ? max_spares : 1, sizeof(*w->spare));
    w->vacant = calloc(max_spares ? max_spares : 1, sizeof(*w->vacant));
    if (!w->dir || !w->spare || !w->vacant) {
        workdirs_destroy(w);
        return -ENOMEM;
    }
    if (mkdir(tasks_dir, 0755) < 0 && errno != EEXIST) {
        int rc = -errno;
        log_error("cannot create %s: %s", tasks_dir, strerror(errno));
        workdirs_destroy(w);
        return rc;
    }
    if ((w->dir_fd = open(tasks_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        int rc = -errno;
        log_error("cannot open %s: %s", tasks_dir, strerror(errno));
        workdirs_destroy(w);
        return rc;
    }
    /* The spares a killed run left go (empty directories; anything else is left alone). */
    datadir_remove_entries(w->dir, is_spare, AT_REMOVEDIR);
    for (size_t i = 0; i < max_spares; i++)
        w->vacant[w->n_vacant++] = (unsigned)(max_spares - 1 - i);
    *out = w;
    return 0;
}

void workdirs_destroy(struct workdirs *w)
{
    if (!w)
        return;
    char name[32];
    for (size_t i = 0; i < w->n_spare; i++) {
        spare_name(name, sizeof(name), w->spare[i]);
        unlinkat(w->dir_fd, name, AT_REMOVEDIR);
    }
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w->spare);
    free(w->vacant);
    free(w->dir);
    free(w);
}

int workdirs_take(struct workdirs *w, const char *path)
{
    char name[32];
    while (w->n_spare) {
        unsigned k = w->spare[--w->n_spare];
        spare_name(name, sizeof(name), k);
        if (renameat(w->dir_fd, name, AT_FDCWD, path) == 0) {
            w->vacant[w->n_vacant++] = k;
            return 0;
        }
        if (errno == ENOENT) { /* removed behind our back: forget it */
            w->vacant[w->n_vacant++] = k;
            continue;
        }
        w->spare[w->n_spare++] = k; /* path is there already, or cannot be renamed to */
        break;
    }
    if (mkdir(path, 0755) < 0)
        return errno == EEXIST ? 0 : -errno;
    struct stat st;
    if (!w->made_one && stat(path, &st) == 0) {
        w->made_one = true;
        w->mode = st.st_mode & 07777;
        w->uid = st.st_uid;
    }
    return 0;
}

/* Whether the directory open at fd holds nothing but "." and "..". */
static bool is_empty(int fd)
{
    char buf[1024];
    ssize_t n;
    while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *de = (const struct dirent64 *)(buf + off);
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                return false;
            off += de->d_reclen;
        }
    }
    return n == 0;
}

/* Whether path is a directory as made here, and empty: a spare in the making. */
static bool reusable(const struct workdirs *w, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && (st.st_mode & 07777) == w->mode && st.st_uid == w->uid &&
              is_empty(fd);
    close(fd);
    return ok;
}

void workdirs_give(struct workdirs *w, const char *path)
{
    if (w->n_vacant && w->made_one && reusable(w, path)) {
        char name[32];
        unsigned k = w->vacant[--w->n_vacant];
        spare_name(name, sizeof(name), k);
        if (renameat(AT_FDCWD, path, w->dir_fd, name) == 0) {
            w->spare[w->n_spare++] = k;
            return;
        }
        w->vacant[w->n_vacant++] = k;
    }
    rmdir(path); /* fails, as it should, when the task left something in it */
}

size_t workdirs_spares(const struct workdirs *w)
{
    return w->n_spare;
}

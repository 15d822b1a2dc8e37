#include "worker/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/task.h"
#include "runtime/array.h"
#include "runtime/datadir.h"
#include "runtime/log.h"

/* The longest line: "+ " id, three numbers and their spaces, "\n". */
#define LINE_MAX_LEN (2 + TASK_ID_LEN + 3 * 21 + 1)

struct journal {
    char *path;     /* <data dir>/running.journal */
    char *tmp_path; /* what a rewrite writes before renaming it over path */
    char *old_dir;  /* <data dir>/running: the files of older versions */
    int fd;         /* path, O_APPEND; -1 when it could not be opened */
    size_t lines;   /* in the file */
    /* The tasks listed; few (at most a worker's runners and what its last run left), so found by
     * a scan. */
    struct journal_entry *entries;
    size_t n, cap;
};

static struct journal_entry *find(const struct journal *jn, const char *id)
{
    for (size_t i = 0; i < jn->n; i++)
        if (strcmp(jn->entries[i].id, id) == 0)
            return &jn->entries[i];
    return NULL;
}

static int put(struct journal *jn, const struct journal_entry *e)
{
    struct journal_entry *have = find(jn, e->id);
    if (!have) {
        struct journal_entry *grown =
            array_grow(jn->entries, jn->n, &jn->cap, sizeof(*jn->entries), 16);
        if (!grown)
            return -ENOMEM;
        jn->entries = grown;
        have = &jn->entries[jn->n++];
    }
    *have = *e;
    return 0;
}

static void drop(struct journal *jn, struct journal_entry *e)
{
    *e = jn->entries[--jn->n];
}

static int format_entry(char *buf, const struct journal_entry *e)
{
    return snprintf(buf, LINE_MAX_LEN + 1, "+ %s %d %llu %" PRIu64 "\n", e->id, e->pgid, e->start,
                    e->epoch);
}

/* One line of the file; anything else than a whole line of either kind is passed over. */
static void apply_line(struct journal *jn, const char *line)
{
    struct journal_entry e = {0};
    char id[TASK_ID_LEN + 2];
    int end = 0;
    if (sscanf(line, "+ %25s %d %llu %" SCNu64 "%n", id, &e.pgid, &e.start, &e.epoch, &end) == 4 &&
        line[end] == '\0' && task_id_valid(id)) {
        memcpy(e.id, id, sizeof(e.id));
        put(jn, &e);
    } else if (sscanf(line, "- %25s%n", id, &end) == 1 && line[end] == '\0' && task_id_valid(id)) {
        struct journal_entry *have = find(jn, id);
        if (have)
            drop(jn, have);
    }
}

/* Reads the file's lines into the entries; a last line without its newline was cut short. */
static int read_journal(struct journal *jn)
{
    int fd = open(jn->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    char buf[8192], line[LINE_MAX_LEN + 1];
    size_t len = 0;
    bool too_long = false;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (len < LINE_MAX_LEN)
                    line[len++] = buf[i];
                else
                    too_long = true;
                continue;
            }
            line[len] = '\0';
            if (!too_long)
                apply_line(jn, line);
            len = 0;
            too_long = false;
        }
    }
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Folds in the files of older versions, running/<id> holding "pgid start epoch". */
static void read_old_files(struct journal *jn)
{
    DIR *d = opendir(jn->old_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!task_id_valid(de->d_name))
            continue;
        struct journal_entry e = {0};
        memcpy(e.id, de->d_name, sizeof(e.id)); /* a valid id is TASK_ID_LEN long */
        char text[96] = "";
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, text, sizeof(text) - 1);
            text[n > 0 ? n : 0] = '\0';
            close(fd);
        }
        sscanf(text, "%d %llu %" SCNu64, &e.pgid, &e.start, &e.epoch);
        put(jn, &e);
    }
    closedir(d);
}

static void remove_old_files(struct journal *jn)
{
    datadir_remove_entries(jn->old_dir, task_id_valid, 0);
    rmdir(jn->old_dir);
}

/* Writes the file anew with only the tasks listed: a new file, renamed over the old one. On
 * failure the old file stays, appended to as before. */
static int rewrite(struct journal *jn)
{
    size_t size = jn->n * LINE_MAX_LEN + 1, len = 0;
    char *text = malloc(size);
    if (!text)
        return -ENOMEM;
    for (size_t i = 0; i < jn->n; i++)
        len += (size_t)format_entry(text + len, &jn->entries[i]);
    int rc = 0;
    errno = 0;
    int fd = open(jn->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        rc = errno ? -errno : -EIO; /* a short write sets none */
    free(text);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    int fresh = -1;
    if (rc == 0 && rename(jn->tmp_path, jn->path) < 0)
        rc = -errno;
    if (rc == 0 && (fresh = open(jn->path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(jn->tmp_path);
        log_warn("cannot rewrite %s: %s", jn->path, strerror(-rc));
        return rc;
    }
    if (jn->fd >= 0)
        close(jn->fd);
    jn->fd = fresh;
    jn->lines = jn->n;
    return 0;
}

static void append(struct journal *jn, const char *line, size_t len)
{
    errno = 0;
    if (jn->fd < 0 || write(jn->fd, line, len) != (ssize_t)len) {
        log_warn("cannot note a task in %s: %s", jn->path,
                 jn->fd < 0 ? "not open" : strerror(errno ? errno : EIO));
        return;
    }
    jn->lines++;
    if (jn->lines >= JOURNAL_MIN_LINES && jn->lines > JOURNAL_SLACK * jn->n)
        rewrite(jn);
}

static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s/%s", dir, name);
    return s;
}

int journal_open(const char *data_dir, struct journal **out)
{
    struct journal *jn = calloc(1, sizeof(*jn));
    if (!jn)
        return -ENOMEM;
    jn->fd = -1;
    jn->path = join(data_dir, "running.journal");
    jn->tmp_path = join(data_dir, "running.journal.tmp");
    jn->old_dir = join(data_dir, "running");
    if (!jn->path || !jn->tmp_path || !jn->old_dir) {
        journal_close(jn);
        return -ENOMEM;
    }
    int rc = read_journal(jn);
    if (rc < 0) {
        log_error("cannot read %s: %s", jn->path, strerror(-rc));
        journal_close(jn);
        return rc;
    }
    read_old_files(jn);
    /* Written anew before the old files go, so that a crash in between loses nothing. */
    if (rewrite(jn) == 0) {
        remove_old_files(jn);
    } else if ((jn->fd = open(jn->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) >= 0) {
        /* Appended to as it is: a line cut short at its end must not run into the next one. */
        if (write(jn->fd, "\n", 1) == 1)
            jn->lines++;
    }
    *out = jn;
    return 0;
}

void journal_close(struct journal *jn)
{
    if (!jn)
        return;
    if (jn->fd >= 0)
        close(jn->fd);
    free(jn->entries);
    free(jn->path);
    free(jn->tmp_path);
    free(jn->old_dir);
    free(jn);
}

size_t journal_entries(const struct journal *jn, const struct journal_entry **out)
{
    *out = jn->entries;
    return jn->n;
}

void journal_note(struct journal *jn, const struct journal_entry *e)
{
    char line[LINE_MAX_LEN + 1];
    if (!task_id_valid(e->id) || put(jn, e) < 0) {
        log_warn("task %s: cannot note it in %s", e->id, jn->path);
        return;
    }
    append(jn, line, (size_t)format_entry(line, e));
}

void journal_forget(struct journal *jn, const char *task_id)
{
    struct journal_entry *have = find(jn, task_id);
    if (!have)
        return;
    drop(jn, have);
    char line[LINE_MAX_LEN + 1];
    append(jn, line, (size_t)snprintf(line, sizeof(line), "- %s\n", task_id));
}

size_t journal_lines(const struct journal *jn)
{
    return jn->lines;
}

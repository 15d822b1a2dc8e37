#include "spider/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "core/spider.h"
#include "runtime/log.h"

#define IO_BLOCK (1 << 16)

/* A path from an archive or a directory, fit to quote in one line: control characters become
 * '?', and a long one is cut. */
static const char *shown(const char *path, char *buf, size_t len)
{
    size_t i = 0;
    for (; path && path[i] && i + 1 < len && i < 200; i++)
        buf[i] = ((unsigned char)path[i] < 0x20 || path[i] == 0x7F) ? '?' : path[i];
    buf[i] = '\0';
    return buf;
}

static int join(char *out, const char *a, const char *b)
{
    int n = *b ? snprintf(out, PATH_MAX, "%s/%s", a, b) : snprintf(out, PATH_MAX, "%s", a);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* ---- packing ---- */

struct packer {
    struct archive *a;
    struct archive_entry *e;
    const char *root;
    char *why;
    size_t why_len;
};

static int pack_dir(struct packer *p, const char *rel);

static int not_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int write_failed(struct packer *p, const char *rel)
{
    char b[256];
    snprintf(p->why, p->why_len, "%s: cannot write it to the archive: %s", shown(rel, b, sizeof(b)),
             archive_error_string(p->a));
    return -EIO;
}

static int pack_file_data(struct packer *p, const char *full, const char *rel, off_t size)
{
    char b[256];
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        snprintf(p->why, p->why_len, "%s: %s", shown(rel, b, sizeof(b)), strerror(-rc));
        return rc;
    }
    static __thread char buf[IO_BLOCK];
    off_t done = 0;
    int rc = 0;
    while (rc == 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        if (done + n > size)
            break; /* it grew: refused below */
        if (archive_write_data(p->a, buf, (size_t)n) != n)
            rc = write_failed(p, rel);
        done += n;
    }
    close(fd);
    if (rc == 0 && done != size) {
        snprintf(p->why, p->why_len, "%s: changed while it was being packed",
                 shown(rel, b, sizeof(b)));
        rc = -EAGAIN;
    }
    return rc;
}

static int pack_one(struct packer *p, const char *rel)
{
    char full[PATH_MAX], b[256];
    int rc = join(full, p->root, rel);
    struct stat st;
    if (rc == 0 && lstat(full, &st) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(p->why, p->why_len, "%s: %s", shown(rel, b, sizeof(b)), strerror(-rc));
        return rc;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        snprintf(p->why, p->why_len,
                 "%s: not a regular file, directory or symbolic link; a spider holds only those",
                 shown(rel, b, sizeof(b)));
        return -EPERM;
    }
    archive_entry_clear(p->e);
    archive_entry_set_pathname(p->e, rel);
    archive_entry_set_mode(p->e, st.st_mode & (S_IFMT | 0777));
    archive_entry_set_mtime(p->e, st.st_mtime, 0);
    archive_entry_set_size(p->e, S_ISREG(st.st_mode) ? st.st_size : 0);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(full, target, sizeof(target) - 1);
        if (n < 0) {
            rc = -errno;
            snprintf(p->why, p->why_len, "%s: %s", shown(rel, b, sizeof(b)), strerror(-rc));
            return rc;
        }
        target[n] = '\0';
        archive_entry_set_symlink(p->e, target);
    }
    if (archive_write_header(p->a, p->e) != ARCHIVE_OK)
        return write_failed(p, rel);
    if (S_ISREG(st.st_mode))
        rc = pack_file_data(p, full, rel, st.st_size);
    else if (S_ISDIR(st.st_mode))
        rc = pack_dir(p, rel);
    return rc;
}

static int pack_dir(struct packer *p, const char *rel)
{
    char full[PATH_MAX], b[256];
    struct dirent **names = NULL;
    int rc = join(full, p->root, rel);
    int n = rc == 0 ? scandir(full, &names, not_dots, alphasort) : -1;
    if (n < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(p->why, p->why_len, "%s: %s", *rel ? shown(rel, b, sizeof(b)) : p->root,
                 strerror(-rc));
        return rc;
    }
    for (int i = 0; i < n; i++) {
        char child[PATH_MAX];
        if (rc == 0 && (rc = join(child, rel, names[i]->d_name)) == 0 && !*rel)
            snprintf(child, sizeof(child), "%s", names[i]->d_name);
        if (rc == 0)
            rc = pack_one(p, child);
        else if (rc == -ENAMETOOLONG)
            snprintf(p->why, p->why_len, "%s/%s: path too long", shown(rel, b, sizeof(b)),
                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
    return rc;
}

int spider_pack(const char *dir, const char *out, char *why, size_t why_len)
{
    struct packer p = {.root = dir, .why = why, .why_len = why_len};
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        snprintf(why, why_len, "%s: %s", out, strerror(-rc));
        return rc;
    }
    p.a = archive_write_new();
    p.e = archive_entry_new();
    int rc = -ENOMEM;
    if (!p.a || !p.e) {
        snprintf(why, why_len, "out of memory");
    } else if (archive_write_set_format_pax_restricted(p.a) != ARCHIVE_OK ||
               archive_write_add_filter_gzip(p.a) != ARCHIVE_OK ||
               archive_write_open_fd(p.a, fd) != ARCHIVE_OK) {
        snprintf(why, why_len, "cannot start the archive: %s", archive_error_string(p.a));
        rc = -EIO;
    } else {
        rc = pack_dir(&p, "");
        if (archive_write_close(p.a) != ARCHIVE_OK && rc == 0) {
            snprintf(why, why_len, "cannot finish the archive: %s", archive_error_string(p.a));
            rc = -EIO;
        }
    }
    archive_entry_free(p.e);
    archive_write_free(p.a);
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        snprintf(why, why_len, "%s: %s", out, strerror(-rc));
    }
    close(fd);
    if (rc < 0)
        unlink(out);
    return rc;
}

/* ---- checking and unpacking ---- */

static struct archive *open_reader(const char *path, char *why, size_t why_len)
{
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, IO_BLOCK) != ARCHIVE_OK) {
        snprintf(why, why_len, "not a spider archive (gzip'd tar): %s", archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* The rules every entry meets, with its contribution to the totals. */
static int entry_check(struct archive_entry *e, const struct spider_bounds *b,
                       struct spider_stats *st, char *why, size_t why_len)
{
    char b1[256], b2[256];
    const char *path = archive_entry_pathname(e);
    if (!path || !spider_path_valid(path)) {
        snprintf(why, why_len, "entry '%s' refused: its path must be " RULE_SPIDER_PATH,
                 shown(path ? path : "?", b1, sizeof(b1)));
        return -EPERM;
    }
    const char *hard = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (hard) {
        if (!spider_path_valid(hard)) {
            snprintf(why, why_len, "entry '%s' refused: a hard link to '%s', out of the tree",
                     shown(path, b1, sizeof(b1)), shown(hard, b2, sizeof(b2)));
            return -EPERM;
        }
    } else if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (!spider_link_target_valid(path, target)) {
            snprintf(why, why_len, "entry '%s' refused: a symbolic link to '%s', out of the tree",
                     shown(path, b1, sizeof(b1)), shown(target ? target : "", b2, sizeof(b2)));
            return -EPERM;
        }
    } else if (type != AE_IFREG && type != AE_IFDIR) {
        snprintf(why, why_len,
                 "entry '%s' refused: a device file, FIFO or socket (only regular files, "
                 "directories and links may be in a spider)",
                 shown(path, b1, sizeof(b1)));
        return -EPERM;
    }
    if (++st->files > b->max_files) {
        snprintf(why, why_len, "archive refused: more than %" PRIu64 " entries (the file bound)",
                 b->max_files);
        return -EFBIG;
    }
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0 || (uint64_t)size > b->max_bytes - st->bytes) {
        snprintf(why, why_len,
                 "archive refused: its files hold more than %" PRIu64 " bytes (the size bound)",
                 b->max_bytes);
        return -EFBIG;
    }
    st->bytes += (uint64_t)size;
    return 0;
}

/* The next header into *e: 1 for one, 0 at the end, -EINVAL for an unreadable archive. */
static int next_entry(struct archive *a, struct archive_entry **e, char *why, size_t why_len)
{
    int r = archive_read_next_header(a, e);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
        return 1;
    snprintf(why, why_len, "not a spider archive (gzip'd tar): %s", archive_error_string(a));
    return -EINVAL;
}

int spider_check(const char *path, const struct spider_bounds *b, struct spider_stats *st,
                 char *why, size_t why_len)
{
    *st = (struct spider_stats){0};
    struct archive *a = open_reader(path, why, why_len);
    if (!a)
        return -EINVAL;
    struct archive_entry *e;
    int rc;
    while ((rc = next_entry(a, &e, why, why_len)) == 1) {
        if ((rc = entry_check(e, b, st, why, why_len)) < 0)
            break;
        if (archive_read_data_skip(a) != ARCHIVE_OK) {
            snprintf(why, why_len, "archive cut short: %s", archive_error_string(a));
            rc = -EINVAL;
            break;
        }
    }
    archive_read_free(a);
    return rc;
}

/* Copies the current entry's data from a to w. */
static int copy_data(struct archive *a, struct archive *w, char *why, size_t why_len)
{
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK) {
            snprintf(why, why_len, "archive cut short: %s", archive_error_string(a));
            return -EINVAL;
        }
        if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK) {
            snprintf(why, why_len, "cannot write: %s", archive_error_string(w));
            return -EIO;
        }
    }
}

/* Writes the entry (checked) under root: its paths are made absolute under root, its permission
 * bits kept but for set-id and sticky bits, and its owner may always read, write and enter it. */
static int extract_entry(struct archive *a, struct archive *w, struct archive_entry *e,
                         const char *root, char *why, size_t why_len)
{
    char full[PATH_MAX];
    if (join(full, root, archive_entry_pathname(e)) < 0) {
        snprintf(why, why_len, "path too long");
        return -ENAMETOOLONG;
    }
    archive_entry_set_pathname(e, full);
    const char *hard = archive_entry_hardlink(e);
    if (hard) {
        char target[PATH_MAX];
        if (join(target, root, hard) < 0) {
            snprintf(why, why_len, "path too long");
            return -ENAMETOOLONG;
        }
        archive_entry_set_hardlink(e, target);
    }
    mode_t perm = archive_entry_perm(e) & 0777;
    archive_entry_set_perm(e, perm | (archive_entry_filetype(e) == AE_IFDIR ? 0700 : 0600));
    archive_entry_set_uid(e, getuid());
    archive_entry_set_gid(e, getgid());
    if (archive_write_header(w, e) != ARCHIVE_OK) {
        snprintf(why, why_len, "cannot write: %s", archive_error_string(w));
        return -EIO;
    }
    int rc = archive_entry_size(e) > 0 ? copy_data(a, w, why, why_len) : 0;
    if (rc == 0 && archive_write_finish_entry(w) != ARCHIVE_OK) {
        snprintf(why, why_len, "cannot write: %s", archive_error_string(w));
        rc = -EIO;
    }
    return rc;
}

static int extract_all(struct archive *a, struct archive *w, const char *root,
                       const struct spider_bounds *b, char *why, size_t why_len)
{
    struct spider_stats st = {0};
    struct archive_entry *e;
    int rc;
    while ((rc = next_entry(a, &e, why, why_len)) == 1) {
        if ((rc = entry_check(e, b, &st, why, why_len)) < 0 ||
            (rc = extract_entry(a, w, e, root, why, why_len)) < 0)
            break;
    }
    if (archive_write_close(w) != ARCHIVE_OK && rc == 0) {
        snprintf(why, why_len, "cannot write: %s", archive_error_string(w));
        rc = -EIO;
    }
    return rc;
}

int spider_unpack(const char *path, const char *dest, const struct spider_bounds *b, char *why,
                  size_t why_len)
{
    char part[PATH_MAX];
    if (snprintf(part, sizeof(part), "%s.part", dest) >= (int)sizeof(part)) {
        snprintf(why, why_len, "path too long");
        return -ENAMETOOLONG;
    }
    spider_remove_tree(part);
    if (mkdir(part, 0755) < 0) {
        int rc = -errno;
        snprintf(why, why_len, "%s: %s", part, strerror(-rc));
        return rc;
    }
    /* Entries are written at absolute paths under the directory's real path: one without
     * symbolic links or "..", so that libarchive's own checks below hold for the whole path. */
    char root[PATH_MAX];
    if (!realpath(part, root)) {
        int rc = -errno;
        snprintf(why, why_len, "%s: %s", part, strerror(-rc));
        rmdir(part);
        return rc;
    }
    struct archive *a = open_reader(path, why, why_len);
    struct archive *w = a ? archive_write_disk_new() : NULL;
    int rc = -EINVAL;
    if (w) {
        /* Besides our own checks, libarchive's: no writing through a symbolic link, no "..". */
        archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                              ARCHIVE_EXTRACT_SECURE_NODOTDOT);
        rc = extract_all(a, w, root, b, why, why_len);
    } else if (a) {
        snprintf(why, why_len, "out of memory");
        rc = -ENOMEM;
    }
    archive_write_free(w);
    archive_read_free(a);
    if (rc == 0 && rename(part, dest) < 0) {
        rc = -errno;
        snprintf(why, why_len, "%s: %s", dest, strerror(-rc));
    }
    if (rc < 0)
        spider_remove_tree(part);
    return rc;
}

/* ---- copying and removing trees ---- */

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) {
        int rc = -errno;
        close(in);
        return rc;
    }
    int rc = 0;
    bool plain = false;
    for (;;) {
        ssize_t n = plain ? 0 : copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (!plain && n < 0 &&
            (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            plain = true;
            continue;
        }
        if (plain) {
            static __thread char buf[IO_BLOCK];
            n = read(in, buf, sizeof(buf));
            if (n > 0 && write(out, buf, (size_t)n) != n)
                n = -1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
    }
    close(in);
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int copy_entry(const char *src, const char *dst)
{
    struct stat st;
    if (lstat(src, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return spider_copy_tree(src, dst, NULL, 0);
    if (S_ISREG(st.st_mode))
        return copy_file(src, dst, st.st_mode);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        return symlink(target, dst) < 0 ? -errno : 0;
    }
    return 0; /* nothing else is ever unpacked */
}

int spider_copy_tree(const char *src, const char *dst, char *why, size_t why_len)
{
    int rc = 0;
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
        rc = -errno;
    DIR *d = rc == 0 ? opendir(src) : NULL;
    if (rc == 0 && !d)
        rc = -errno;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!not_dots(de))
            continue;
        char s[PATH_MAX], t[PATH_MAX];
        rc = join(s, src, de->d_name);
        if (rc == 0)
            rc = join(t, dst, de->d_name);
        if (rc == 0)
            rc = copy_entry(s, t);
    }
    if (d)
        closedir(d);
    if (rc < 0 && why)
        snprintf(why, why_len, "cannot copy %s to %s: %s", src, dst, strerror(-rc));
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int spider_write_at(int fd, const void *data, size_t len, uint64_t off)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int spider_remove_parts(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char path[PATH_MAX];
        if (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0 &&
            join(path, dir, de->d_name) == 0 && spider_remove_tree(path) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int spider_dir_prepare(const char *data_dir, char *dir, size_t cap)
{
    if (snprintf(dir, cap, "%s/spiders", data_dir) >= (int)cap)
        return -ENAMETOOLONG;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int rc = -errno;
        log_error("cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    return spider_remove_parts(dir);
}

int spider_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno ? -errno : -EIO;
    return 0;
}

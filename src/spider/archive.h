/*
 * Spider archives on libarchive (Debian's, linked statically): a gzip-compressed POSIX (pax) tar
 * of a directory's regular files, directories and symbolic links.
 *
 * Every function reads or writes files and blocks: the master runs spider_check on its loop at the
 * end of a push, the client packs before it pushes, and the worker unpacks and copies on its
 * spider thread (worker/spiders.c), never on its loop. Any thread; no shared state.
 *
 * Errors: 0 or a negative errno, with one line for the user in why (why_len bytes): -EPERM for an
 * entry that is refused (its path, type or link target), -EFBIG for an archive past a bound (the
 * bound is named), -EINVAL for what is not an archive of this kind, other -errno for I/O.
 */
#ifndef CRAWLAB_SPIDER_ARCHIVE_H
#define CRAWLAB_SPIDER_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

struct spider_bounds {
    uint64_t max_bytes; /* the sum of the regular files' sizes */
    uint64_t max_files; /* entries of any type */
};

struct spider_stats {
    uint64_t bytes, files;
};

/*
 * Packs the tree under dir (dir itself is not an entry; paths are relative to it, sorted) into a
 * new file out (created 0600; it must not exist). A file that is neither regular, a directory nor
 * a symbolic link is refused (-EPERM). On failure out is removed.
 */
int spider_pack(const char *dir, const char *out, char *why, size_t why_len);

/*
 * Reads every entry of the archive at path and checks it as spider_unpack would, without writing
 * anything: each path (spider_path_valid), each link (a symbolic link's target must stay in the
 * tree, a hard link's target must be a valid path), each type (regular, directory, symbolic or
 * hard link only: devices, FIFOs and sockets are refused), and the bounds. *st gets the totals.
 */
int spider_check(const char *path, const struct spider_bounds *b, struct spider_stats *st,
                 char *why, size_t why_len);

/*
 * Unpacks the archive at path into dest, which must not exist: into dest + ".part" first (removed
 * if left by an earlier attempt), checked entry by entry as spider_check does, and renamed to dest
 * only when every entry was written. On failure nothing is left at dest or at dest + ".part".
 */
int spider_unpack(const char *path, const char *dest, const struct spider_bounds *b, char *why,
                  size_t why_len);

/* Copies the tree under src into dst (created 0755 if missing): regular files (with their
 * permission bits, through copy_file_range, which shares extents where the filesystem can),
 * directories and symbolic links. */
int spider_copy_tree(const char *src, const char *dst, char *why, size_t why_len);

/* rm -rf: removes path and everything under it, without following symbolic links. 0 when it is
 * gone (or was never there), -errno. */
int spider_remove_tree(const char *path);

/* Writes all len bytes at offset off of fd (pwrite, again after a short write or EINTR). 0 or
 * -errno. For the chunks of an archive as they arrive. */
int spider_write_at(int fd, const void *data, size_t len, uint64_t off);

/* Removes every entry of dir whose name ends in ".part" (files and trees): what a push, a fetch
 * or an unpack left when its process died. Returns how many went. */
int spider_remove_parts(const char *dir);

/*
 * The spiders' directory of a master or a worker at start: <data_dir>/spiders into dir (cap
 * bytes), made (0700) if missing and rid of the ".part" entries an earlier run left. Returns how
 * many of those went, or -errno (logged). Start-up only (blocks).
 */
int spider_dir_prepare(const char *data_dir, char *dir, size_t cap);

#endif

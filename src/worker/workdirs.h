/*
 * Tasks' working directories, <data dir>/tasks/<task id>, without making and removing a directory
 * for every task: an empty directory a task leaves is kept as a spare (tasks/.spare-<n>, at most
 * one per runner) and renamed into place for a later task. On ext4 a rename pair cost about a
 * fifteenth of an mkdir and an rmdir (docs/benchmarks.md), which allocate and free an inode.
 *
 * A spare is only ever a directory this worker made, left empty, with the mode it was made with:
 * a task that left files, changed its directory's mode or put something else in its place gets
 * no spare made of it (its directory is removed when empty, as before, and stays otherwise).
 * Spares a killed worker left are removed at the next start; a worker that stops removes its own.
 *
 * Loop thread; every call blocks briefly on the file system.
 */
#ifndef CRAWLAB_WORKER_WORKDIRS_H
#define CRAWLAB_WORKER_WORKDIRS_H

#include <stddef.h>

struct workdirs;

/* For the directories under tasks_dir (made when missing), keeping at most max_spares. -errno. */
int workdirs_create(const char *tasks_dir, size_t max_spares, struct workdirs **out);
void workdirs_destroy(struct workdirs *w);

/* Puts an empty directory at path (tasks_dir/<task id>, absent): a spare renamed there, or a
 * new one. 0, or -errno (logged by the caller). */
int workdirs_take(struct workdirs *w, const char *path);

/* The task that worked in path is over: its directory becomes a spare, or is removed when it
 * is empty, or stays. */
void workdirs_give(struct workdirs *w, const char *path);

/* Spares kept now (for tests). */
size_t workdirs_spares(const struct workdirs *w);

#endif

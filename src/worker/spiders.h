/*
 * The worker's spiders: the cache of unpacked archives in <data-dir>/spiders/<sha256>/ and the
 * working directory of each task that runs in one (docs/protocol.md, "Spiders").
 *
 * spiders_prepare() fills a task's working directory with the files of an archive. The first task
 * that needs an archive not in the cache fetches it (SpiderService.Fetch on the data connection)
 * into <data-dir>/spiders/<sha256>.tgz.part; every task that needs the same archive meanwhile
 * waits on that one fetch. Each chunk must start where the file ends (its offset says so); its
 * bytes are written and added to a running SHA-256 before the next is read, so that what the file
 * holds is always what was verified so far: after a cut the fetch resumes, on the next data
 * connection, from the file's end. At the end the whole file's SHA-256 must be the address, else
 * it is removed and every waiting task fails.
 *
 * The spider thread (one, for the whole worker) does what takes long on the disk, so that the loop
 * never waits for it: unpacking a verified archive into the cache (spider/archive.h, which checks
 * every entry again), evicting the least recently used unpacked spiders while the cache holds
 * more than its bound in bytes, copying a spider into a task's working directory, and removing a
 * task's working directory. Its jobs run one at a time, in order, so an eviction never races a
 * copy. Results come back to the loop through an ev_async.
 *
 * Loop thread only, but for the spider thread's own work.
 */
#ifndef CRAWLAB_WORKER_SPIDERS_H
#define CRAWLAB_WORKER_SPIDERS_H

#include <stdint.h>

#include <ev.h>

struct session;
struct spiders;

struct spiders_opts {
    const char *data_dir; /* copied */
    uint64_t cache_bytes; /* --spider-cache-bytes */
};

/* Called on the loop when a task's working directory is ready (rc 0) or cannot be (rc < 0, why
 * says why in one line). task_id and why are valid during the call. */
typedef void (*spiders_done_fn)(void *ctx, const char *task_id, int rc, const char *why);

/* Creates <data-dir>/spiders, removes .part files and directories left there, starts the
 * thread. 0 or -errno. */
int spiders_create(struct ev_loop *loop, const struct spiders_opts *opts, struct spiders **out);
/* The session whose data connection fetches go on; before any prepare. */
void spiders_attach(struct spiders *sp, struct session *sess);
/* Stops fetches and the thread (a job under way finishes first; queued ones are dropped, their
 * callbacks never run). NULL is accepted. */
void spiders_destroy(struct spiders *sp);

/* Fills workdir (created) with the files of the archive sha256 (spider_sha256_valid, checked by
 * the caller), then calls done(ctx, task_id, ...) -- later, never from within this call. */
void spiders_prepare(struct spiders *sp, const char *sha256, const char *task_id,
                     const char *workdir, spiders_done_fn done, void *ctx);

/* Removes workdir and everything in it, on the spider thread. */
void spiders_discard(struct spiders *sp, const char *workdir);

/* Fetches started since spiders_create (each archive fetched once, resumptions not counted). */
uint64_t spiders_fetches(const struct spiders *sp);

#endif

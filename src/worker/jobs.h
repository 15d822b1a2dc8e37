/*
 * The tasks this worker holds: fetching them (on TASK_AVAILABLE, on a poll timer, and again as
 * soon as one ends), running them through the runner, uploading their output, reporting their
 * status, and obeying cancels that arrive on each task's Subscribe stream. Loop thread only.
 *
 * A task is held from FetchTask until the master acknowledged its final status, which is sent
 * only after all its output was acknowledged as durable. While the session is offline, tasks keep
 * running; reports and output wait and are resent when it is back.
 */
#ifndef CRAWLAB_JOBS_H
#define CRAWLAB_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "worker/contain.h"
#include "worker/session.h"

struct jobs;

/* What the jobs take from the configuration; worker.c fills it in. The strings are copied. */
struct jobs_opts {
    const char *data_dir;          /* resolved: tasks/, running.journal and spool/ are in it */
    const char *node_key;          /* this worker's identity, named in every call */
    const char *machine_id;        /* its data directory's machine.id */
    int max_runners;               /* tasks held at once, 1 or more */
    uint64_t fetch_interval_ms;    /* the poll when no TASK_AVAILABLE arrives; never 0 */
    uint64_t cancel_grace_ms;      /* SIGTERM to SIGKILL when a task is cancelled or times out */
    uint64_t spool_max_bytes;      /* disk for output the master has not acknowledged, all tasks */
    enum contain_mode containment; /* how a task's processes are kept together (contain.h) */
    int task_max_pids;             /* > 0: processes and threads one task may have */
    uint64_t spider_cache_bytes;   /* unpacked spiders kept (worker/spiders.h) */
};

/* Returns 0, -ENOMEM, or the error of setting up containment (worker/contain.h). */
int jobs_create(struct ev_loop *loop, const struct jobs_opts *opts, struct jobs **out);
/* The session is created after the jobs (its hooks point here); attach it before it starts. */
void jobs_attach(struct jobs *j, struct session *sess);
void jobs_destroy(struct jobs *j);

/* Session hooks. */
void jobs_on_online(struct jobs *j);
void jobs_on_offline(struct jobs *j);
void jobs_on_task_available(struct jobs *j);
/* The master pushed a task already assigned to us, durably (m->task, m->epoch set): it starts
 * now, without FetchTask or a claim (core/fence.h, fence_push_start). Takes m. */
void jobs_on_task_pushed(struct jobs *j, Grpc__NodeServiceSubscribeResponse *m);
/* The master asked, on the node stream, to cancel a task of ours: at once if it runs, else as
 * soon as it starts. */
void jobs_on_cancel(struct jobs *j, const char *task_id, bool force);
void jobs_on_drain(struct jobs *j);
int jobs_running(const struct jobs *j);
/* The containment in use, as the worker announces it: "cgroup" or "subreaper". */
const char *jobs_containment(const struct jobs *j);

/*
 * Graceful stop: no new tasks; running ones get grace_ms to finish, then are cancelled; done()
 * runs once every task's output and final status are acknowledged (or the master is gone for good
 * and nothing more can be done).
 */
void jobs_shutdown(struct jobs *j, uint64_t grace_ms, void (*done)(void *ctx), void *ctx);

#endif

#include "worker/jobs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "entity/response.pb-c.h"
#include "core/fence.h"
#include "core/spider.h"
#include "core/task.h"
#include "rpc/client.h"
#include "rpc/codec.h"
#include "runtime/datadir.h"
#include "runtime/list.h"
#include "runtime/log.h"
#include "services/node_service.pb-c.h"
#include "services/task_service.pb-c.h"
#include "worker/contain.h"
#include "worker/journal.h"
#include "worker/runner.h"
#include "worker/spiders.h"
#include "worker/uploader.h"
#include "worker/workdirs.h"

#define UNARY_TIMEOUT_MS 5000
#define FLUSH_BOUND_S    10.0 /* how long a stopping worker waits for the master at the end */

enum phase {
    PHASE_CLAIMING,  /* fetched: the claim is on its way; nothing runs yet (core/fence.h) */
    PHASE_PREPARING, /* ours (pushed, or claimed), no process yet: its spider is on the way, or
                        it waits for the master's answer to Resync (spawn_job) */
    PHASE_RUNNING,   /* the process runs */
    PHASE_FLUSHING,  /* it ended; output is still on its way */
    PHASE_FINAL,     /* output is stored; the final status is being reported */
};

struct job {
    struct jobs *owner;
    struct list_link link; /* in jobs.list */
    char id[TASK_ID_LEN + 1];
    enum phase phase;
    struct runner_proc *proc;
    struct uploader *up;
    struct rpc_call *cancel_stream;
    unsigned cancel_gen;
    pid_t pid;
    uint64_t epoch; /* the assignment's epoch, 0 when the master gave none */
    /* Until it starts: its TaskSpec and the message that carries it (a FetchTask answer, or the
     * master's push on Subscribe), freed together (release_spec). */
    ProtobufCMessage *carrier;
    const Grpc__TaskSpec *spec;
    bool pushed;        /* the master pushed it assigned: started without FetchTask nor claim */
    bool cancel_here;   /* its cancel comes on the node stream: no cancel stream of its own */
    bool cancel_wanted; /* a cancel came while claiming: it is never started */
    int claims_out;     /* claim calls not answered yet, from this connection or an older one */
    bool dropped;       /* not ours: forgotten once no claim call refers to it any more */

    /* What the master should hear next, and whether that is on its way. */
    enum task_status
        status; /* assigned until started, running, then finished / error / cancelled */
    int exit_code;
    char error[256];
    bool report_pending, reported;
    bool uploaded; /* the uploader is done: all output stored, or refused for good */
    /* Its spider (worker/spiders.h): being copied into its directory, copied; its directory
     * holds a spider's files, and goes with the task. */
    bool preparing, spider_ready, in_spider;
};

struct jobs {
    struct ev_loop *loop;
    struct session *sess;
    int max_runners;
    uint64_t cancel_grace_ms;
    uint64_t spool_max_bytes;
    char *data_dir;
    char *spool_dir; /* <data_dir>/spool: output waiting for the master, past what memory keeps */
    char *node_key;
    struct contain *contain;   /* finds every process of a task (worker/contain.h) */
    struct spiders *spiders;   /* the spider cache and the tasks' copies (worker/spiders.h) */
    struct journal *journal;   /* the tasks started, for a restart (worker/journal.h) */
    struct workdirs *workdirs; /* the tasks' directories (worker/workdirs.h) */
    struct list_link *list;
    int running;   /* processes alive */
    int unstarted; /* tasks claiming or preparing: each will take a runner (set_phase) */
    int held;
    int fetching;     /* FetchTask calls out */
    int fetch_window; /* how many may be out: grows while the queue has work, 1 when it is empty */
    bool draining, stopping;
    bool resyncing;      /* a Resync is out: no fetching until the master answered */
    bool resync_missing; /* the master answered UNIMPLEMENTED once: do not ask again */
    ev_timer poll;
    ev_timer grace;
    ev_timer flush_bound;
    void (*stopped)(void *ctx);
    void *stopped_ctx;
};

static void maybe_fetch(struct jobs *j);
static void set_phase(struct job *job, enum phase to);
static int fetch_one(struct jobs *j, grpc_channel *ch);
static void send_report(struct job *job);
static void maybe_final(struct job *job);
static void send_claim(struct job *job);
static void spawn_job(struct job *job);
static struct job *find_job(struct jobs *j, const char *id);

struct call_ctx {
    struct jobs *j;
    struct job *job;
    unsigned gen;
    enum task_status status; /* for status reports: what was sent */
    bool final;              /* ... and whether it was the task's last word */
};

static struct call_ctx *call_ctx_new(struct jobs *j, struct job *job)
{
    struct call_ctx *c = malloc(sizeof(*c));
    if (c)
        *c = (struct call_ctx){j, job, session_generation(j->sess), TASK_ASSIGNED, false};
    return c;
}

/*
 * Whether a failed call was refused for good. Anything else (a dead connection, a stream the
 * transport removed, a node the master thinks offline) is the session's business: it reconnects,
 * and the call, idempotent like all of ours, is made again. RESOURCE_EXHAUSTED is among the
 * latter here, unlike for output (see the uploader): these requests are far below every bound
 * the master applies, so it can only mean the master ran short of memory, and giving up a status
 * report would leave the task running on the master.
 */
static bool refused_for_good(grpc_status_code st)
{
    return st == GRPC_STATUS_INVALID_ARGUMENT || st == GRPC_STATUS_NOT_FOUND ||
           st == GRPC_STATUS_PERMISSION_DENIED || st == GRPC_STATUS_OUT_OF_RANGE;
}

static void check_stopped(struct jobs *j)
{
    if (j->stopping && !j->list && j->stopped) {
        void (*done)(void *) = j->stopped;
        j->stopped = NULL;
        ev_timer_stop(j->loop, &j->flush_bound);
        done(j->stopped_ctx);
    }
}

static void release_spec(struct job *job)
{
    if (job->carrier)
        protobuf_c_message_free_unpacked(job->carrier, NULL);
    job->carrier = NULL;
    job->spec = NULL;
}

static bool phase_unstarted(enum phase p)
{
    return p == PHASE_CLAIMING || p == PHASE_PREPARING;
}

/* The master holds it as ours (pushed, or claimed and accepted) and it has not ended: a cancel
 * is for us to carry out. */
static bool job_owned(const struct job *job)
{
    return job->phase == PHASE_PREPARING || job->phase == PHASE_RUNNING;
}

/* Every change of phase passes here, which keeps the count of tasks that will take a runner. */
static void set_phase(struct job *job, enum phase to)
{
    job->owner->unstarted += (int)phase_unstarted(to) - (int)phase_unstarted(job->phase);
    job->phase = to;
}

static void job_remove(struct job *job)
{
    struct jobs *j = job->owner;
    list_unlink(&job->link);
    j->held--;
    set_phase(job, PHASE_FINAL);
    release_spec(job);
    if (job->cancel_stream)
        rpc_call_release(job->cancel_stream);
    uploader_destroy(job->up);
    if (job->proc)
        runner_free(job->proc);
    /* The task's directory goes when the task leaves nothing in it, or, holding a copy of a
     * spider, with all in it. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/tasks/%s", j->data_dir, job->id);
    if (job->in_spider)
        spiders_discard(j->spiders, path);
    else
        workdirs_give(j->workdirs, path);
    journal_forget(j->journal, job->id);
    free(job);
    maybe_fetch(j);
    check_stopped(j);
}

/* ---- status reports ---- */

static void on_notified(void *user, grpc_status_code st, const char *details,
                        grpc_byte_buffer *resp)
{
    /* Notifications are advisory (upstream uses them for alerts); a lost one costs nothing. */
    free(user);
}

static void notify(struct jobs *j, struct job *job)
{
    grpc_channel *ch = session_channel(j->sess);
    if (!ch)
        return;
    Grpc__TaskServiceSendNotificationRequest req =
        GRPC__TASK_SERVICE_SEND_NOTIFICATION_REQUEST__INIT;
    req.node_key = j->node_key;
    req.task_id = job->id;
    struct call_ctx *c = call_ctx_new(j, NULL);
    if (c)
        rpc_unary(session_bridge(j->sess), ch, "/grpc.TaskService/SendNotification",
                  session_auth_key(j->sess), UNARY_TIMEOUT_MS, &req.base, on_notified, c);
}

static void on_reported(void *user, grpc_status_code st, const char *details,
                        grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct job *job = c->job;
    struct jobs *j = c->j;
    unsigned gen = c->gen;
    enum task_status sent = c->status;
    bool final = c->final;
    free(c);
    if (st != GRPC_STATUS_OK && !refused_for_good(st)) {
        if (gen == session_generation(j->sess)) {
            job->report_pending = false;
            session_connection_failed(j->sess, gen, "status report failed");
        }
        return; /* told again once the session is back */
    }
    job->report_pending = false;
    if (st != GRPC_STATUS_OK)
        log_error("task %s: the master refused its status '%s': %s (status %d)", job->id,
                  task_status_name(sent), details, (int)st);
    /* Not ours (any more): the master holds the task for another assignment, so this copy stops
     * at once rather than run beside another one. */
    if (st == GRPC_STATUS_PERMISSION_DENIED && job->proc && job->phase == PHASE_RUNNING) {
        log_warn("task %s: not ours any more; killing our copy", job->id);
        runner_cancel(job->proc, true);
    }
    if (final) {
        job_remove(job);
        return;
    }
    /* The task may have moved on while this report was out. An ended task whose output is still
     * on its way is not reported now: maybe_final() sends its final status once it is stored. */
    if (job->phase == PHASE_FLUSHING || (sent == job->status && job->phase != PHASE_FINAL)) {
        job->reported = true;
        return;
    }
    job->reported = false;
    send_report(job);
}

static void send_report(struct job *job)
{
    struct jobs *j = job->owner;
    grpc_channel *ch = session_channel(j->sess);
    /* A task not started yet (its claim or spider on the way) has nothing to tell: the master has
     * it assigned, and refuses a report that says so. */
    if (job->report_pending || job->reported || !ch || job->status == TASK_ASSIGNED)
        return;
    Grpc__TaskState state = GRPC__TASK_STATE__INIT;
    state.task_id = job->id;
    state.status = (char *)task_status_name(job->status);
    state.log_lines = uploader_log_lines(job->up);
    state.data_items = uploader_data_items(job->up);
    state.pid = job->pid;
    state.exit_code = job->exit_code;
    state.error = job->error;
    state.epoch = job->epoch;
    Grpc__TaskServiceReportStatusRequest req = GRPC__TASK_SERVICE_REPORT_STATUS_REQUEST__INIT;
    req.node_key = j->node_key;
    req.state = &state;
    struct call_ctx *c = call_ctx_new(j, job);
    if (!c)
        return;
    c->status = job->status;
    c->final = job->phase == PHASE_FINAL;
    bool final = c->final;
    job->report_pending = true;
    rpc_unary(session_bridge(j->sess), ch, "/grpc.TaskService/ReportStatus",
              session_auth_key(j->sess), UNARY_TIMEOUT_MS, &req.base, on_reported, c);
    /* As upstream's runner does: one notification, with the final status (on the master, the
     * event task.notification). */
    if (final)
        notify(j, job);
}

static void set_status(struct job *job, enum task_status status)
{
    job->status = status;
    job->reported = false;
    send_report(job);
}

/* ---- cancels ---- */

static void end_unstarted(struct job *job, enum task_status status, const char *error);

static void end_cancelled(struct job *job)
{
    log_info("task %s: cancelled before it started", job->id);
    end_unstarted(job, TASK_CANCELLED, "cancelled before it started");
}

/* The master cancels the task: its process; or, the task being ours with no process yet (its
 * spider on the way, or waiting for the answer to Resync), the task itself, at once; or, its claim
 * being on the way, the task once the claim is answered (spawn_job). */
static void cancel_job(struct job *job, bool force)
{
    if (job->proc && job->phase == PHASE_RUNNING)
        runner_cancel(job->proc, force);
    else if (job->phase == PHASE_PREPARING)
        end_cancelled(job);
    else if (job->phase == PHASE_CLAIMING)
        job->cancel_wanted = true;
}

static void cancel_on_message(struct rpc_call *call, grpc_byte_buffer *msg)
{
    struct job *job = rpc_call_user(call);
    if (!msg)
        return;
    ProtobufCMessage *m = NULL;
    if (codec_unpack(msg, &grpc__task_service_subscribe_response__descriptor, &m) == 0) {
        const Grpc__TaskServiceSubscribeResponse *r = (const void *)m;
        if (r->code == GRPC__TASK_SERVICE_SUBSCRIBE_CODE__CANCEL && job_owned(job)) {
            log_info("task %s: cancel%s requested by the master", job->id,
                     r->force ? " (force)" : "");
            cancel_job(job, r->force);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_call_read(call);
}

static void cancel_on_status(struct rpc_call *call, grpc_status_code st, const char *details)
{
    struct job *job = rpc_call_user(call);
    if (job->cancel_stream != call)
        return;
    rpc_call_release(call);
    job->cancel_stream = NULL;
    /* Reopened on the next connection if the task still runs then. */
}

static const struct rpc_call_handler cancel_handler = {
    .on_message = cancel_on_message,
    .on_status = cancel_on_status,
};

static void open_cancel_stream(struct job *job)
{
    struct jobs *j = job->owner;
    grpc_channel *ch = session_channel(j->sess);
    if (!ch || !job_owned(job) || job->cancel_here)
        return;
    if (job->cancel_stream) {
        if (job->cancel_gen == session_generation(j->sess))
            return;
        rpc_call_release(job->cancel_stream);
    }
    job->cancel_stream = rpc_call_start(session_bridge(j->sess), ch, "/grpc.TaskService/Subscribe",
                                        session_auth_key(j->sess), 0, &cancel_handler, job);
    if (!job->cancel_stream)
        return;
    job->cancel_gen = session_generation(j->sess);
    Grpc__TaskServiceSubscribeRequest req = GRPC__TASK_SERVICE_SUBSCRIBE_REQUEST__INIT;
    req.task_id = job->id;
    rpc_call_write_last(job->cancel_stream, codec_pack(&req.base));
    rpc_call_read(job->cancel_stream);
}

/* ---- the process and its output ---- */

static void on_log(void *ctx, struct runner_proc *p, const char *line, size_t len)
{
    struct job *job = ctx;
    uploader_log(job->up, line, len);
}

static void on_items(void *ctx, struct runner_proc *p, json_t *items)
{
    struct job *job = ctx;
    uploader_items(job->up, items);
}

static void on_exit_proc(void *ctx, struct runner_proc *p, const struct runner_result *r)
{
    struct job *job = ctx;
    struct jobs *j = job->owner;
    j->running--;
    set_phase(job, PHASE_FLUSHING);
    if (r->timed_out) {
        job->status = TASK_ERROR;
        snprintf(job->error, sizeof(job->error), "timeout");
        job->exit_code = r->how == RUNNER_END_EXITED ? r->code : 128 + r->code;
    } else if (r->cancelled) {
        job->status = TASK_CANCELLED;
        job->exit_code = r->how == RUNNER_END_EXITED ? r->code : 128 + r->code;
    } else if (r->how == RUNNER_END_EXITED && r->code == 0) {
        job->status = TASK_FINISHED;
        job->exit_code = 0;
    } else if (r->how == RUNNER_END_EXITED) {
        job->status = TASK_ERROR;
        job->exit_code = r->code;
        snprintf(job->error, sizeof(job->error), "exit code %d", r->code);
    } else {
        job->status = TASK_ERROR;
        job->exit_code = 128 + r->code;
        snprintf(job->error, sizeof(job->error), "killed by signal %d", r->code);
    }
    log_debug("task %s: process ended (%s)", job->id, task_status_name(job->status));
    /* The cancel stream stays open: the master ends it when it stores the final status, and a
     * stream the worker cancelled instead would cost both sides a reset (RST_STREAM). Cancels
     * that still come are ignored (the process is gone); job_free lets go of it in any case. */
    runner_free(job->proc);
    job->proc = NULL;
    /* The final status waits for the output: totals in it must match what is stored. */
    uploader_finish(job->up);
    maybe_final(job);
    maybe_fetch(j);
}

/* The final status goes out once the process ended and its output is settled. */
static void maybe_final(struct job *job)
{
    if (job->phase != PHASE_FLUSHING || !job->uploaded)
        return;
    set_phase(job, PHASE_FINAL);
    job->reported = false;
    send_report(job);
}

static void on_uploaded(void *ctx, bool ok)
{
    struct job *job = ctx;
    job->uploaded = true;
    maybe_final(job);
}

static void on_pressure(void *ctx, bool high)
{
    struct job *job = ctx;
    if (job->proc)
        runner_pause(job->proc, high);
}

static const struct runner_callbacks runner_cb = {
    .on_log = on_log,
    .on_items = on_items,
    .on_exit = on_exit_proc,
};

static const struct uploader_hooks uploader_cb = {
    .on_done = on_uploaded,
    .on_pressure = on_pressure,
};

/* ---- surviving our own restart ---- */

/* Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. Together
 * with the pid it names one process for good, whatever pids get reused. 0 when unknown. */
static unsigned long long process_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long start = 0;
    for (int field = 2; p && *p; p++) {
        if (*p == ' ' && ++field == 22) {
            start = strtoull(p + 1, NULL, 10);
            break;
        }
    }
    return start;
}

/* Notes which process group runs a task, so that a restarted worker can find and end it; the
 * epoch lets it report the task's end under its assignment. */
static void record_running(struct jobs *j, const struct job *job)
{
    struct journal_entry e = {.pgid = (int)job->pid, .epoch = job->epoch};
    memcpy(e.id, job->id, sizeof(e.id));
    e.start = job->pid ? process_start_time(job->pid) : 0;
    journal_note(j->journal, &e);
}

static struct job *add_job(struct jobs *j, const char *id)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->owner = j;
    job->status = TASK_ASSIGNED;
    snprintf(job->id, sizeof(job->id), "%s", id);
    /* --spool-max-bytes bounds what all tasks together keep for the master. */
    size_t share = (size_t)(j->spool_max_bytes / (uint64_t)j->max_runners);
    job->up = uploader_create(j->loop, j->sess, id, j->spool_dir, share, &uploader_cb, job);
    if (!job->up) {
        free(job);
        return NULL;
    }
    list_push(&j->list, &job->link);
    j->held++;
    job->phase = PHASE_PREPARING; /* counted from here on (set_phase) */
    j->unstarted++;
    return job;
}

/*
 * Tasks a previous run of this worker left behind (it was killed): their process groups are
 * ended, since nobody reads their output any more, and the tasks are reported as error once the
 * master is reachable, so nothing stays running forever and nothing runs twice.
 */
static void recover(struct jobs *j)
{
    const struct journal_entry *left;
    size_t n = journal_entries(j->journal, &left);
    for (size_t i = 0; i < n; i++) {
        const struct journal_entry *e = &left[i];
        if (e->pgid > 1) {
            /* While any member of the group lives, its id cannot be reused; a live leader must
             * still be the process we started. */
            unsigned long long now_start = process_start_time(e->pgid);
            if (now_start == 0 || now_start == e->start) {
                if (kill(-e->pgid, SIGKILL) == 0)
                    log_warn("task %s: killed process group %d left by the previous run", e->id,
                             e->pgid);
            }
        }
        contain_sweep(j->contain, e->id);
        struct job *job = add_job(j, e->id);
        if (!job)
            continue;
        set_phase(job, PHASE_FINAL);
        job->uploaded = true;
        job->epoch = e->epoch; /* 0 from the files of older versions: reported without one */
        job->status = TASK_ERROR;
        job->exit_code = -1;
        snprintf(job->error, sizeof(job->error), "worker restarted");
    }
}

/* ---- the claim (core/fence.h) ---- */

/* Forgets a task that never started: at once, or when the last claim call about it returns. */
static void drop_unstarted(struct job *job)
{
    job->dropped = true;
    if (!job->claims_out)
        job_remove(job);
}

static void on_claimed(void *user, grpc_status_code st, const char *details, grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct job *job = c->job;
    struct jobs *j = c->j;
    unsigned gen = c->gen;
    free(c);
    job->claims_out--;
    if (job->dropped) {
        if (!job->claims_out)
            job_remove(job);
        return;
    }
    if (job->phase != PHASE_CLAIMING)
        return; /* a repeated claim's answer: the task started on the first one */
    switch (fence_claim_answer(st == GRPC_STATUS_OK, refused_for_good(st))) {
    case FENCE_SPAWN:
        job->report_pending = false;
        set_phase(job, PHASE_PREPARING);
        spawn_job(job);
        break;
    case FENCE_DROP:
        log_warn("task %s: the master refused our claim (epoch %" PRIu64 "): %s (status %d); "
                 "not starting it",
                 job->id, job->epoch, details, (int)st);
        drop_unstarted(job);
        break;
    case FENCE_RETRY:
        /* The master may have stored it: claim again, with the same epoch, once reconnected. */
        if (gen == session_generation(j->sess)) {
            job->report_pending = false;
            session_connection_failed(j->sess, gen, "claim failed");
        }
        break;
    }
}

/* Asks the master to confirm the assignment before anything runs: a 'running' report with the
 * epoch and no pid. Sent again after every reconnect until answered. */
static void send_claim(struct job *job)
{
    struct jobs *j = job->owner;
    grpc_channel *ch = session_channel(j->sess);
    if (job->report_pending || !ch)
        return;
    Grpc__TaskState state = GRPC__TASK_STATE__INIT;
    state.task_id = job->id;
    state.status = (char *)task_status_name(TASK_RUNNING);
    state.error = "";
    state.epoch = job->epoch;
    Grpc__TaskServiceReportStatusRequest req = GRPC__TASK_SERVICE_REPORT_STATUS_REQUEST__INIT;
    req.node_key = j->node_key;
    req.state = &state;
    struct call_ctx *c = call_ctx_new(j, job);
    if (!c)
        return;
    job->report_pending = true;
    job->claims_out++;
    log_debug("task %s: claiming it (epoch %" PRIu64 ")", job->id, job->epoch);
    rpc_unary(session_bridge(j->sess), ch, "/grpc.TaskService/ReportStatus",
              session_auth_key(j->sess), UNARY_TIMEOUT_MS, &req.base, on_claimed, c);
}

/* A task the master handed us: its spec in carrier (taken), under epoch. Claimed first when
 * fetched under an epoch; started at once when fetched without one, or when pushed. */
static void start_job(struct jobs *j, const char *id, const Grpc__TaskSpec *spec, uint64_t epoch,
                      ProtobufCMessage *carrier, bool pushed, bool cancel_here)
{
    struct job *job = add_job(j, id);
    if (!job) {
        log_error("task %s: out of memory; the master will see it lost", id);
        protobuf_c_message_free_unpacked(carrier, NULL);
        return;
    }
    job->carrier = carrier;
    job->spec = spec;
    job->pushed = pushed;
    job->cancel_here = cancel_here;
    job->epoch = epoch;
    uploader_set_epoch(job->up, job->epoch);
    if (pushed ? fence_push_start(epoch) : !fence_claim_needed(epoch)) {
        spawn_job(job);
        return;
    }
    set_phase(job, PHASE_CLAIMING);
    send_claim(job);
}

/* A task that ends before it has a process: its final status goes out at once. */
static void end_unstarted(struct job *job, enum task_status status, const char *error)
{
    release_spec(job);
    set_phase(job, PHASE_FINAL);
    job->exit_code = -1;
    snprintf(job->error, sizeof(job->error), "%s", error);
    set_status(job, status);
}

/* A task that cannot even start ends as error right away. */
static void fail_start(struct job *job, const char *why)
{
    char error[sizeof(job->error)];
    snprintf(error, sizeof(error), "cannot start: %s", why);
    end_unstarted(job, TASK_ERROR, error);
}

static void on_spider_ready(void *ctx, const char *task_id, int rc, const char *why)
{
    struct jobs *j = ctx;
    struct job *job = find_job(j, task_id);
    if (!job || !job->preparing || job->phase != PHASE_PREPARING) {
        /* ended or taken back meanwhile: its copy goes */
        char path[4096];
        snprintf(path, sizeof(path), "%s/tasks/%s", j->data_dir, task_id);
        spiders_discard(j->spiders, path);
        return;
    }
    job->preparing = false;
    if (rc < 0) {
        log_warn("task %s: %s", task_id, why);
        fail_start(job, why);
        return;
    }
    job->spider_ready = true;
    spawn_job(job);
}

/* The task's spider into its working directory first (preparing: it holds a runner). */
static void prepare_spider(struct job *job, const Grpc__TaskSpec *spec, const char *workdir)
{
    struct jobs *j = job->owner;
    if (!spider_sha256_valid(spec->spider_sha256)) {
        fail_start(job, "the spider's sha256 is not " RULE_SPIDER_SHA256);
        return;
    }
    job->preparing = job->in_spider = true;
    log_info("task %s: preparing spider %s (%.12s)", job->id, spec->spider, spec->spider_sha256);
    spiders_prepare(j->spiders, spec->spider_sha256, job->id, workdir, on_spider_ready, j);
}

/* Starts the task's process, in a copy of its spider when it has one. */
static void spawn_job(struct job *job)
{
    struct jobs *j = job->owner;
    const Grpc__TaskSpec *spec = job->spec;
    const char *id = job->id;
    char workdir[4096];
    snprintf(workdir, sizeof(workdir), "%s/tasks/%s", j->data_dir, id);
    /* Cancelled while its claim was on the way: nothing of it runs. */
    if (job->cancel_wanted) {
        end_cancelled(job);
        return;
    }
    if (spec && *spec->spider_sha256 && !job->spider_ready) {
        if (!job->preparing)
            prepare_spider(job, spec, workdir);
        return;
    }
    /* Back from a reconnect, nothing starts before the master's answer to Resync: it may have
     * cancelled the task, or given it to another node, while we were away (resume). */
    if (j->resyncing)
        return;
    set_phase(job, PHASE_RUNNING);
    size_t n_env = spec ? spec->n_env : 0;
    char **env = calloc(n_env + 1, sizeof(*env));
    for (size_t i = 0; env && i < n_env; i++) {
        size_t len = strlen(spec->env[i]->key) + strlen(spec->env[i]->value) + 2;
        if ((env[i] = malloc(len)))
            snprintf(env[i], len, "%s=%s", spec->env[i]->key, spec->env[i]->value);
    }
    struct runner_spec rs = {
        .task_id = id,
        .node_key = j->node_key,
        .cmd = spec ? spec->cmd : "",
        .param = spec ? spec->param : "",
        .workdir = workdir,
        .env = (const char *const *)env,
        .timeout_ms = spec && spec->timeout_ms > 0 ? (uint64_t)spec->timeout_ms : 0,
        .cancel_grace_ms = j->cancel_grace_ms,
        .contain = j->contain,
    };
    /* A pushed task is noted before it starts: a worker killed now lists it when it comes back,
     * and the master, which may not have heard of its start, does not queue it again. */
    if (job->pushed)
        record_running(j, job);
    int rc = !job->up ? -ENOMEM : !spec || !*spec->cmd ? -EINVAL : 0;
    if (rc == 0 && !job->in_spider && (rc = workdirs_take(j->workdirs, workdir)) < 0)
        log_error("task %s: cannot create working directory %s: %s", id, workdir, strerror(-rc));
    if (rc == 0)
        rc = runner_start(j->loop, &rs, &runner_cb, job, &job->proc);
    for (size_t i = 0; env && i < n_env; i++)
        free(env[i]);
    free(env);
    if (rc < 0) {
        fail_start(job, rc == -EINVAL ? "no command" : strerror(-rc));
        return;
    }
    j->running++;
    job->pid = runner_pid(job->proc);
    record_running(j, job);
    log_info("task %s started (pid %d%s): %s%s%s", id, (int)job->pid, job->pushed ? ", pushed" : "",
             spec->cmd, *spec->param ? " " : "", spec->param);
    release_spec(job);
    open_cancel_stream(job);
    set_status(job, TASK_RUNNING);
}

/* ---- fetching ---- */

static void on_fetched(void *user, grpc_status_code st, const char *details, grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct jobs *j = c->j;
    unsigned gen = c->gen;
    free(c);
    if (gen != session_generation(j->sess))
        return; /* a call of a connection already torn down, which reset the count */
    j->fetching--;
    if (st != GRPC_STATUS_OK) {
        if (!refused_for_good(st))
            session_connection_failed(j->sess, gen, "fetch failed");
        else
            log_warn("fetch refused: %s (status %d)", details, (int)st);
        return;
    }
    ProtobufCMessage *m = NULL;
    if (codec_unpack(resp, &grpc__task_service_fetch_task_response__descriptor, &m) < 0) {
        log_warn("malformed FetchTask answer");
        return;
    }
    const Grpc__TaskServiceFetchTaskResponse *r = (const void *)m;
    bool got = task_id_valid(r->task_id) && strcmp(r->task_id, "000000000000000000000000") != 0;
    /* While the queue has work, keep several fetches in flight: each one waits for the master's
     * group commit, and calls that share a commit share its cost. */
    j->fetch_window = got ? (j->fetch_window < 8 ? j->fetch_window * 2 : 8) : 1;
    if (got) {
        if (j->stopping)
            log_warn("task %s arrived while stopping; it runs anyway", r->task_id);
        start_job(j, r->task_id, r->task, r->epoch, m, false, r->cancel_here); /* takes m */
        maybe_fetch(j); /* there may be more, and room for them */
    } else {
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

static void maybe_fetch(struct jobs *j)
{
    grpc_channel *ch = session_channel(j->sess);
    if (!ch || j->resyncing || j->draining || j->stopping)
        return;
    while (j->fetching < j->fetch_window &&
           j->running + j->unstarted + j->fetching < j->max_runners) {
        if (fetch_one(j, ch) < 0)
            return;
    }
}

static int fetch_one(struct jobs *j, grpc_channel *ch)
{
    Grpc__TaskServiceFetchTaskRequest req = GRPC__TASK_SERVICE_FETCH_TASK_REQUEST__INIT;
    req.node_key = j->node_key;
    struct call_ctx *c = call_ctx_new(j, NULL);
    if (!c)
        return -ENOMEM;
    j->fetching++;
    rpc_unary(session_bridge(j->sess), ch, "/grpc.TaskService/FetchTask", session_auth_key(j->sess),
              UNARY_TIMEOUT_MS, &req.base, on_fetched, c);
    return 0;
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    maybe_fetch(w->data);
}

/* ---- session hooks ---- */

/* After the resync: tell the master again what it may have missed, and carry on. */
static void resume(struct jobs *j)
{
    list_foreach(job, j->list, struct job, link)
    {
        if (job->phase == PHASE_CLAIMING) {
            if (!job->dropped)
                send_claim(job);
            continue;
        }
        if (job->phase == PHASE_PREPARING && !job->preparing) {
            spawn_job(job); /* held while the Resync was out */
            continue;
        }
        open_cancel_stream(job);
        uploader_kick(job->up);
        if (job->phase != PHASE_FLUSHING)
            send_report(job);
    }
    maybe_fetch(j);
}

static struct job *find_job(struct jobs *j, const char *id)
{
    list_foreach(job, j->list, struct job, link)
    {
        if (!job->dropped && strcmp(job->id, id) == 0)
            return job;
    }
    return NULL;
}

static void apply_cursor(struct jobs *j, const Grpc__TaskCursor *cur)
{
    struct job *job = find_job(j, cur->task_id);
    if (!job)
        return;
    if (fence_cursor_drops(job->phase != PHASE_CLAIMING, cur->cancel)) {
        log_info("task %s: taken back while we were away (master status %s); not starting it",
                 job->id, cur->status);
        drop_unstarted(job);
        return;
    }
    uploader_resync(job->up, cur->log_lines, cur->data_items);
    if (cur->cancel && job_owned(job)) {
        log_info("task %s: cancelled while we were away (master status %s)", job->id, cur->status);
        cancel_job(job, cur->force);
    }
}

static void on_resynced(void *user, grpc_status_code st, const char *details,
                        grpc_byte_buffer *resp)
{
    struct call_ctx *c = user;
    struct jobs *j = c->j;
    unsigned gen = c->gen;
    free(c);
    if (gen != session_generation(j->sess))
        return;
    j->resyncing = false;
    if (st == GRPC_STATUS_UNIMPLEMENTED) {
        /* An upstream master: everything kept is sent again; its own counting must cope. */
        log_info("the master does not implement Resync; resending all unacknowledged output");
        j->resync_missing = true;
    } else if (st != GRPC_STATUS_OK && !refused_for_good(st)) {
        session_connection_failed(j->sess, gen, "resync failed");
        return;
    } else if (st != GRPC_STATUS_OK) {
        log_warn("resync refused: %s (status %d)", details, (int)st);
    } else {
        ProtobufCMessage *m = NULL;
        if (codec_unpack(resp, &grpc__node_service_resync_response__descriptor, &m) == 0) {
            const Grpc__NodeServiceResyncResponse *r = (const void *)m;
            for (size_t i = 0; i < r->n_tasks; i++)
                apply_cursor(j, r->tasks[i]);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    resume(j);
}

static void start_resync(struct jobs *j)
{
    grpc_channel *ch = session_channel(j->sess);
    if (!ch)
        return;
    if (j->resync_missing) {
        resume(j);
        return;
    }
    size_t n = (size_t)j->held;
    Grpc__TaskState *states = n ? calloc(n, sizeof(*states)) : NULL;
    Grpc__TaskState **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    struct call_ctx *c = call_ctx_new(j, NULL);
    if ((n && (!states || !ptrs)) || !c) {
        free(states);
        free(ptrs);
        free(c);
        resume(j);
        return;
    }
    size_t k = 0;
    list_foreach(job, j->list, struct job, link)
    {
        if (k == n)
            break;
        if (job->dropped)
            continue;
        grpc__task_state__init(&states[k]);
        states[k].task_id = job->id;
        states[k].status = (char *)task_status_name(job->status);
        states[k].log_lines = uploader_log_lines(job->up);
        states[k].data_items = uploader_data_items(job->up);
        states[k].pid = job->pid;
        states[k].exit_code = job->exit_code;
        states[k].error = job->error;
        states[k].epoch = job->epoch;
        ptrs[k] = &states[k];
        k++;
    }
    Grpc__NodeServiceResyncRequest req = GRPC__NODE_SERVICE_RESYNC_REQUEST__INIT;
    req.node_key = j->node_key;
    req.n_tasks = k;
    req.tasks = ptrs;
    j->resyncing = true;
    rpc_unary(session_bridge(j->sess), ch, "/grpc.NodeService/Resync", session_auth_key(j->sess),
              UNARY_TIMEOUT_MS, &req.base, on_resynced, c);
    free(states);
    free(ptrs);
}

void jobs_on_online(struct jobs *j)
{
    j->draining = false;
    j->fetching = 0;
    /* Whatever the master last heard may be stale: everything is told again after the resync. */
    list_foreach(job, j->list, struct job, link)
    {
        job->report_pending = false;
        job->reported = false;
    }
    start_resync(j);
}

void jobs_on_offline(struct jobs *j)
{
    j->fetching = 0;
    j->resyncing = false;
    list_foreach(job, j->list, struct job, link)
    {
        job->report_pending = false;
    }
}

void jobs_on_task_available(struct jobs *j)
{
    maybe_fetch(j);
}

static void on_given_back(void *user, grpc_status_code st, const char *details,
                          grpc_byte_buffer *resp)
{
    char *id = user;
    if (st != GRPC_STATUS_OK)
        log_warn("task %s: giving it back failed: %s (status %d); the master settles it when we "
                 "are gone",
                 id, details, (int)st);
    free(id);
}

/* A pushed task this worker will not start: 'pending' under the push's epoch tells the master to
 * queue it again, and to push no more to us until we register again. */
static void give_back(struct jobs *j, const char *id, uint64_t epoch)
{
    grpc_channel *ch = session_channel(j->sess);
    char *user = strdup(id);
    if (!ch || !user) {
        free(user);
        return;
    }
    Grpc__TaskState state = GRPC__TASK_STATE__INIT;
    state.task_id = (char *)id;
    state.status = (char *)task_status_name(TASK_PENDING);
    state.error = "";
    state.epoch = epoch;
    Grpc__TaskServiceReportStatusRequest req = GRPC__TASK_SERVICE_REPORT_STATUS_REQUEST__INIT;
    req.node_key = j->node_key;
    req.state = &state;
    log_info("task %s pushed, but not started here: given back to the master", id);
    rpc_unary(session_bridge(j->sess), ch, "/grpc.TaskService/ReportStatus",
              session_auth_key(j->sess), UNARY_TIMEOUT_MS, &req.base, on_given_back, user);
}

void jobs_on_task_pushed(struct jobs *j, Grpc__NodeServiceSubscribeResponse *m)
{
    const Grpc__TaskSpec *spec = m->task;
    if (!task_id_valid(spec->id)) {
        log_warn("a pushed task with a malformed id: ignored");
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    /* Stopping, or still holding an older copy of the task (being stopped): not started here. */
    if (j->stopping || find_job(j, spec->id)) {
        give_back(j, spec->id, m->epoch);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    if (j->running + j->unstarted >= j->max_runners)
        log_warn("task %s pushed while all %d runners are busy; it runs anyway", spec->id,
                 j->max_runners);
    log_debug("task %s pushed with its spec (epoch %" PRIu64 ")", spec->id, m->epoch);
    start_job(j, spec->id, spec, m->epoch, &m->base, true, m->cancel_here);
}

void jobs_on_cancel(struct jobs *j, const char *task_id, bool force)
{
    struct job *job = find_job(j, task_id ? task_id : "");
    if (!job)
        return; /* over, or never ours */
    log_info("task %s: cancel%s requested by the master", job->id, force ? " (force)" : "");
    cancel_job(job, force);
}

void jobs_on_drain(struct jobs *j)
{
    j->draining = true;
}

const char *jobs_containment(const struct jobs *j)
{
    return contain_mode_name(contain_mode(j->contain));
}

int jobs_running(const struct jobs *j)
{
    return j->running;
}

/* ---- stopping ---- */

static void on_grace_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct jobs *j = w->data;
    list_foreach(job, j->list, struct job, link)
    {
        if (job->proc && job->phase == PHASE_RUNNING) {
            log_info("task %s: shutdown grace over; cancelling it", job->id);
            runner_cancel(job->proc, false);
        }
    }
}

static void on_flush_bound(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct jobs *j = w->data;
    log_warn("the master did not acknowledge every task's output and status in time; stopping "
             "anyway");
    if (j->stopped) {
        void (*done)(void *) = j->stopped;
        j->stopped = NULL;
        done(j->stopped_ctx);
    }
}

void jobs_shutdown(struct jobs *j, uint64_t grace_ms, void (*done)(void *ctx), void *ctx)
{
    j->stopping = true;
    j->stopped = done;
    j->stopped_ctx = ctx;
    ev_timer_stop(j->loop, &j->poll);
    if (j->running) {
        log_info("waiting up to %.0f s for %d running task(s) to finish", grace_ms / 1000.0,
                 j->running);
        ev_timer_set(&j->grace, (double)grace_ms / 1000.0, 0.0);
        ev_timer_start(j->loop, &j->grace);
    }
    ev_timer_set(&j->flush_bound,
                 (double)grace_ms / 1000.0 + j->cancel_grace_ms / 1000.0 + FLUSH_BOUND_S, 0.0);
    ev_timer_start(j->loop, &j->flush_bound);
    check_stopped(j);
}

static void clear_spool(const char *dir)
{
    mkdir(dir, 0700);
    datadir_remove_entries(dir, task_id_valid, 0);
}

int jobs_create(struct ev_loop *loop, const struct jobs_opts *opts, struct jobs **out)
{
    struct jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->loop = loop;
    j->max_runners = opts->max_runners;
    j->cancel_grace_ms = opts->cancel_grace_ms;
    j->spool_max_bytes = opts->spool_max_bytes;
    j->fetch_window = 1;
    j->data_dir = strdup(opts->data_dir);
    j->node_key = strdup(opts->node_key);
    size_t n = strlen(opts->data_dir) + sizeof("/spool");
    if ((j->spool_dir = malloc(n))) {
        snprintf(j->spool_dir, n, "%s/spool", opts->data_dir);
        /* Spool files of a previous run belong to tasks that are reported lost: start empty. */
        clear_spool(j->spool_dir);
    }
    if (!j->data_dir || !j->node_key || !j->spool_dir) {
        jobs_destroy(j);
        return -ENOMEM;
    }
    /* The tasks' cgroups, this worker's alone: its node key for whoever reads the tree, and its
     * data directory's machine id, since two data directories may name one key. */
    char scope[sizeof("crawlab-node--") + 2 * LIMIT_NODE_KEY_MAX];
    size_t len = (size_t)snprintf(scope, sizeof(scope), "crawlab-node-%.*s-", LIMIT_NODE_KEY_MAX,
                                  opts->node_key);
    for (const char *m = opts->machine_id; *m && len + 1 < sizeof(scope); m++)
        if (isalnum((unsigned char)*m)) /* it is read from a file: nothing else goes in a path */
            scope[len++] = *m;
    scope[len] = '\0';
    int rc = contain_create(scope, opts->containment, opts->task_max_pids, &j->contain);
    const struct spiders_opts spiders_opts = {.data_dir = opts->data_dir,
                                              .cache_bytes = opts->spider_cache_bytes};
    if (rc == 0)
        rc = spiders_create(loop, &spiders_opts, &j->spiders);
    if (rc == 0)
        rc = journal_open(opts->data_dir, &j->journal);
    if (rc == 0) {
        char tasks[4096];
        snprintf(tasks, sizeof(tasks), "%s/tasks", opts->data_dir);
        rc = workdirs_create(tasks, (size_t)opts->max_runners, &j->workdirs);
    }
    if (rc < 0) {
        jobs_destroy(j);
        return rc;
    }
    double every = (double)opts->fetch_interval_ms / 1000.0;
    ev_timer_init(&j->poll, on_poll, every, every);
    j->poll.data = j;
    ev_timer_start(loop, &j->poll);
    ev_timer_init(&j->grace, on_grace_over, 0.0, 0.0);
    j->grace.data = j;
    ev_timer_init(&j->flush_bound, on_flush_bound, 0.0, 0.0);
    j->flush_bound.data = j;
    *out = j;
    return 0;
}

void jobs_attach(struct jobs *j, struct session *sess)
{
    j->sess = sess;
    spiders_attach(j->spiders, sess);
    recover(j);
}

void jobs_destroy(struct jobs *j)
{
    if (!j)
        return;
    ev_timer_stop(j->loop, &j->poll);
    ev_timer_stop(j->loop, &j->grace);
    ev_timer_stop(j->loop, &j->flush_bound);
    while (j->list) {
        struct job *job = list_item(j->list, struct job, link);
        list_unlink(&job->link);
        if (job->proc) {
            /* Still running at exit: it must not outlive us unattended. */
            runner_cancel(job->proc, true);
            runner_free(job->proc);
        }
        if (job->cancel_stream)
            rpc_call_release(job->cancel_stream);
        release_spec(job);
        uploader_destroy(job->up);
        free(job);
    }
    spiders_destroy(j->spiders);
    workdirs_destroy(j->workdirs);
    journal_close(j->journal);
    contain_destroy(j->contain);
    free(j->data_dir);
    free(j->spool_dir);
    free(j->node_key);
    free(j);
}

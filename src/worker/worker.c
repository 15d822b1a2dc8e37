#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "net/certwatch.h"
#include "net/tls.h"
#include "runtime/bridge.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "runtime/notify.h"
#include "worker/jobs.h"
#include "worker/session.h"

struct worker {
    const struct config *cfg;
    struct ev_loop *loop;
    struct bridge *bridge;
    struct session *session;
    struct jobs *jobs;
    ev_signal sigterm, sigint, sighup;
    struct tls_client *tls;      /* TLS to the master, or NULL */
    struct certwatch *certwatch; /* the dates of --tls-cert and --tls-ca, or NULL */
    bool stopping;
};

static void on_stopped(void *ctx)
{
    struct worker *wk = ctx;
    session_stop(wk->session);
    ev_break(wk->loop, EVBREAK_ALL);
}

/* SIGTERM/SIGINT: fetch nothing more, let running tasks finish (then cancel them), deliver their
 * output and final status, exit. A second signal exits at once. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct worker *wk = w->data;
    if (wk->stopping) {
        log_warn("second stop signal: exiting now");
        on_stopped(wk);
        return;
    }
    wk->stopping = true;
    log_info("stopping");
    jobs_shutdown(wk->jobs, wk->cfg->shutdown_grace_ms, on_stopped, wk);
}

/*
 * SIGHUP: with TLS, the certificate, key and CA files are read again for the next connection to
 * the master (a renewed certificate, without stopping the tasks); the connections open now go on
 * with the files they began with. Nothing else is reloaded: the rest of the configuration is read
 * at start, and logs go to stderr.
 */
static void on_hup_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct worker *wk = w->data;
    char err[512];
    if (!wk->tls) {
        log_info("SIGHUP: nothing to reload; the configuration is read at start and logs go to "
                 "stderr");
    } else if (tls_client_reload(wk->tls, err, sizeof(err)) < 0) {
        log_error("SIGHUP: TLS: %s; the files loaded before stay in use", err);
    } else {
        log_info("SIGHUP: TLS certificate, key and CA read again; new connections use them");
        certwatch_restart(loop, wk->cfg->tls_cert, wk->cfg->tls_ca, &wk->certwatch);
    }
}

static void hook_online(void *ctx)
{
    notify_ready();
    jobs_on_online(((struct worker *)ctx)->jobs);
}

static void hook_offline(void *ctx)
{
    jobs_on_offline(((struct worker *)ctx)->jobs);
}

static void hook_task_available(void *ctx)
{
    jobs_on_task_available(((struct worker *)ctx)->jobs);
}

static void hook_task_pushed(void *ctx, Grpc__NodeServiceSubscribeResponse *m)
{
    jobs_on_task_pushed(((struct worker *)ctx)->jobs, m);
}

static void hook_cancel(void *ctx, const char *task_id, bool force)
{
    jobs_on_cancel(((struct worker *)ctx)->jobs, task_id, force);
}

static void hook_drain(void *ctx)
{
    jobs_on_drain(((struct worker *)ctx)->jobs);
}

static int hook_running(void *ctx)
{
    return jobs_running(((struct worker *)ctx)->jobs);
}

static const struct session_hooks hooks = {
    .on_online = hook_online,
    .on_offline = hook_offline,
    .on_task_available = hook_task_available,
    .on_task_pushed = hook_task_pushed,
    .on_cancel = hook_cancel,
    .on_drain = hook_drain,
    .running = hook_running,
};

/* A node key given by flag or environment wins; otherwise one is made once and kept. */
static int load_identity(const struct config *cfg, const char *dir, char **node_key,
                         char **machine_id, char **node_name)
{
    bool created;
    int rc;
    if (cfg->node_key) {
        if (!(*node_key = strdup(cfg->node_key)))
            return -ENOMEM;
    } else if ((rc = datadir_random_id(dir, "node.key", 16, node_key, &created)) < 0) {
        log_error("cannot read or create %s/node.key: %s", dir, strerror(-rc));
        return rc;
    } else if (created) {
        log_info("generated node key %s (kept in %s/node.key)", *node_key, dir);
    }
    if ((rc = datadir_random_id(dir, "machine.id", 16, machine_id, &created)) < 0) {
        log_error("cannot read or create %s/machine.id: %s", dir, strerror(-rc));
        return rc;
    }
    if (cfg->node_name) {
        *node_name = strdup(cfg->node_name);
    } else {
        char host[256] = "worker";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        *node_name = strdup(host);
    }
    return *node_name ? 0 : -ENOMEM;
}

int worker_main(const struct config *cfg, const char *auth_key, struct tls_client *tls)
{
    struct worker w = {.cfg = cfg, .tls = tls};
    int exit_code = 1, lock_fd = -1;
    char *node_key = NULL, *machine_id = NULL, *node_name = NULL;
    char *dir = datadir_resolve(cfg->data_dir);
    if (!dir || datadir_ensure(dir) < 0) {
        log_error("cannot create the data directory %s: %s", dir ? dir : "?", strerror(errno));
        goto out;
    }
    if ((lock_fd = datadir_lock(dir, "worker.lock")) < 0) {
        log_error("cannot lock %s/worker.lock: %s", dir,
                  lock_fd == -EBUSY ? "another worker uses this data directory"
                                    : strerror(-lock_fd));
        goto out;
    }
    if (load_identity(cfg, dir, &node_key, &machine_id, &node_name) < 0)
        goto out;

    w.loop = ev_default_loop(EVFLAG_AUTO);
    signal(SIGPIPE, SIG_IGN);
    /* Orphaned grandchildren of our tasks are reparented to us and reaped by the loop's child
     * handler, instead of lingering as zombies of an init that may not reap them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int rc = bridge_create(w.loop, &w.bridge);
    if (rc < 0) {
        log_error("cannot start the completion queue thread: %s", strerror(-rc));
        goto out;
    }
    struct session_identity id = {
        .node_key = node_key,
        .node_name = node_name,
        .machine_id = machine_id,
        .auth_key = auth_key,
        .tls = tls,
        .max_runners = cfg->max_runners,
    };
    struct jobs_opts jobs_opts = {
        .data_dir = dir,
        .node_key = node_key,
        .machine_id = machine_id,
        .max_runners = cfg->max_runners,
        .fetch_interval_ms = cfg->fetch_interval_ms,
        .cancel_grace_ms = cfg->cancel_grace_ms,
        .spool_max_bytes = cfg->spool_max_bytes,
        .containment = cfg->task_containment == CONFIG_CONTAIN_CGROUP      ? CONTAIN_CGROUP
                       : cfg->task_containment == CONFIG_CONTAIN_SUBREAPER ? CONTAIN_SUBREAPER
                                                                           : CONTAIN_AUTO,
        .task_max_pids = cfg->task_max_pids,
        .spider_cache_bytes = cfg->spider_cache_bytes,
    };
    if ((rc = jobs_create(w.loop, &jobs_opts, &w.jobs)) == 0) {
        id.containment = jobs_containment(w.jobs);
        rc = session_create(w.loop, w.bridge, cfg, &id, &hooks, &w, &w.session);
    }
    if (rc < 0) {
        log_error("cannot start: %s", strerror(-rc));
        goto out;
    }
    jobs_attach(w.jobs, w.session);
    if (tls && certwatch_start(w.loop, cfg->tls_cert, cfg->tls_ca, &w.certwatch) < 0) {
        log_error("cannot start: out of memory");
        goto out;
    }
    ev_signal_init(&w.sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&w.sigint, on_stop_signal, SIGINT);
    ev_signal_init(&w.sighup, on_hup_signal, SIGHUP);
    w.sigterm.data = w.sigint.data = w.sighup.data = &w;
    ev_signal_start(w.loop, &w.sigterm);
    ev_signal_start(w.loop, &w.sigint);
    ev_signal_start(w.loop, &w.sighup);

    log_info("worker %s (%s) starting, data in %s, max_runners %d", node_key, node_name, dir,
             cfg->max_runners);
    session_start(w.session);
    ev_run(w.loop, 0);
    exit_code = 0;
    log_info("worker stopped");

out:
    if (w.loop) {
        ev_signal_stop(w.loop, &w.sigterm);
        ev_signal_stop(w.loop, &w.sigint);
        ev_signal_stop(w.loop, &w.sighup);
    }
    certwatch_stop(w.certwatch);
    if (w.session)
        session_stop(w.session);
    /* Completions of the calls just cancelled still arrive and refer to the session: the bridge
     * delivers them before the session is freed. */
    bridge_destroy(w.bridge);
    jobs_destroy(w.jobs);
    session_destroy(w.session);
    if (lock_fd >= 0)
        close(lock_fd);
    free(node_key);
    free(machine_id);
    free(node_name);
    free(dir);
    return exit_code;
}

#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/admin.h"
#include "master/group.h"
#include "master/ingest.h"
#include "master/nodes.h"
#include "master/store.h"
#include "master/tasks.h"
#include "net/listener.h"
#include "net/tls.h"
#include "rpc/auth.h"
#include "rpc/server.h"
#include "runtime/bridge.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "runtime/notify.h"
#include "runtime/ratelimit.h"

/* How long in-flight calls get to finish once SIGTERM arrived, before they are cancelled. */
#define SHUTDOWN_CALL_GRACE_MS 3000

int64_t master_now_ms(const struct master *m)
{
    return (int64_t)(ev_now(m->loop) * 1000.0);
}

/* What the listener needs: the master, and its TLS context when TLS is on. */
struct accept_ctx {
    struct master *m;
    struct tls_server *tls;
    struct ratelimit tls_refusals;
};

/* A TLS handshake ended: the plaintext end goes to gRPC, a refusal to the log. */
static void on_tls_ready(void *ctx, int plain_fd, int err, const char *errmsg)
{
    struct accept_ctx *a = ctx;
    if (plain_fd < 0) {
        /* The message names the peer and the fault (expired, unknown CA, no certificate, not
         * TLS). A peer can fail handshakes as fast as it can connect: one line a second. */
        unsigned held;
        if (!ratelimit_pass(&a->tls_refusals, ev_now(a->m->loop), &held))
            return;
        if (held)
            log_warn("refused a TLS connection from %s (%u more refused since the last such line)",
                     errmsg, held);
        else
            log_warn("refused a TLS connection from %s", errmsg);
        return;
    }
    if (!a->m->server) {
        close(plain_fd);
        return;
    }
    const char *name = tls_peer_name(plain_fd);
    log_debug("TLS connection fd:%d from a client certified as '%s'", plain_fd,
              name ? name : "(none)");
    rpc_server_add_fd(a->m->server, plain_fd, tls_peer_addr(plain_fd));
}

static void on_accept(void *ctx, int fd, const char *peer)
{
    struct accept_ctx *a = ctx;
    log_debug("connection from %s", peer);
    if (!a->tls) {
        rpc_server_add_fd(a->m->server, fd, peer);
        return;
    }
    if (tls_accept(a->m->loop, a->tls, fd, peer, on_tls_ready, a) < 0)
        log_warn("cannot take the connection from %s: out of memory", peer);
}

/* The master's TLS context from --tls-cert/--tls-key/--tls-ca; none without --tls-cert. */
static int create_tls(const struct config *cfg, struct tls_server **out)
{
    *out = NULL;
    if (!cfg->tls_cert)
        return 0;
    struct tls_server_options opts = {
        .cert_file = cfg->tls_cert,
        .key_file = cfg->tls_key,
        .ca_file = cfg->tls_ca,
        .require_client_cert = cfg->tls_require_client_cert,
    };
    char err[512];
    int rc = tls_server_create(&opts, out, err, sizeof(err));
    if (rc < 0)
        log_error("TLS: %s", err);
    return rc;
}

static void on_server_down(void *ctx)
{
    struct master *m = ctx;
    m->server = NULL;
    ev_break(m->loop, EVBREAK_ALL);
}

/* SIGTERM/SIGINT: stop accepting, tell every worker to DRAIN, let in-flight calls finish. */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct master *m = w->data;
    if (m->stopping) {
        log_warn("second stop signal: exiting now");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    m->stopping = true;
    log_info("stopping: draining workers and finishing in-flight calls");
    listener_close(m->listener);
    m->listener = NULL;
    nodes_drain_all(m->nodes);
    rpc_server_shutdown(m->server, SHUTDOWN_CALL_GRACE_MS, on_server_down, m);
}

/* SIGHUP would end the process by default, yet a daemon gets one when its terminal or session
 * goes away, or from habit ("reload"): there is nothing to reload, so it is only noted. */
static void on_hup_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("SIGHUP: nothing to reload; the configuration is read at start and logs go to "
             "stderr");
}

/* The key comes from the flag, the environment, a file, or is generated once into the data dir. */
static int resolve_auth_key(struct master *m, const char *data_dir)
{
    const struct config *cfg = m->cfg;
    if (cfg->insecure_no_auth) {
        log_warn("AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this port can "
                 "register workers and run commands on them");
        return 0;
    }
    if (cfg->auth_key) {
        if (!(m->auth_key = strdup(cfg->auth_key)))
            return -ENOMEM;
        return 0;
    }
    if (cfg->auth_key_file) {
        int rc = auth_key_read_file(cfg->auth_key_file, &m->auth_key);
        if (rc < 0)
            log_error("cannot read the auth key file %s: %s", cfg->auth_key_file,
                      auth_key_file_error(rc));
        return rc;
    }
    bool created;
    int rc = auth_key_ensure(data_dir, &m->auth_key, &created);
    if (rc < 0) {
        log_error("cannot read or create %s/auth.key: %s", data_dir, strerror(-rc));
        return rc;
    }
    log_info("%s auth key %s/auth.key; give it to workers with --auth-key-file",
             created ? "generated a new" : "using the", data_dir);
    return 0;
}

/*
 * Each connection needs a descriptor (three with TLS: the socket and both ends of the pump's
 * socketpair), plus log files and the database: raise the soft limit as far as the hard one
 * allows, and warn when not even plaintext connections up to the cap would fit.
 */
static void raise_fd_limit(size_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)max_connections * 3 + 512;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)max_connections + 512)
        log_warn("the descriptor limit (%llu) is below what --max-connections=%zu needs",
                 (unsigned long long)rl.rlim_cur, max_connections);
}

int master_main(const struct config *cfg)
{
    struct master m = {.cfg = cfg, .exit_code = 1};
    struct accept_ctx accept = {.m = &m};
    char *data_dir = datadir_resolve(cfg->data_dir);
    if (!data_dir || datadir_ensure(data_dir) < 0) {
        log_error("cannot create the data directory %s: %s", data_dir ? data_dir : "?",
                  strerror(errno));
        free(data_dir);
        return 1;
    }
    m.loop = ev_default_loop(EVFLAG_AUTO);
    signal(SIGPIPE, SIG_IGN);

    int rc = store_open(data_dir, &m.store);
    if (rc < 0) {
        log_error("cannot open the store in %s: %s", data_dir,
                  rc == -EBUSY ? "another master is using it" : strerror(-rc));
        goto out;
    }
    if (resolve_auth_key(&m, data_dir) < 0)
        goto out;
    if ((rc = bridge_create(m.loop, &m.bridge)) < 0) {
        log_error("cannot start the completion queue thread: %s", strerror(-rc));
        goto out;
    }
    struct rpc_server_options opts = {
        .auth_key = m.auth_key,
        .keepalive_time_ms = 20000,
        .keepalive_timeout_ms = 5000,
        .min_client_ping_ms = 10000,
        .max_streams_per_conn = 1024,
    };
    if ((rc = rpc_server_create(m.bridge, &opts, &m.server)) < 0 ||
        (rc = group_create(&m, &m.group)) < 0 || (rc = nodes_create(&m, &m.nodes)) < 0 ||
        (rc = tasks_create(&m, &m.tasks)) < 0 || (rc = ingest_create(&m, &m.ingest)) < 0) {
        log_error("cannot start the server: %s", strerror(-rc));
        goto out;
    }
    nodes_add_methods(m.nodes, m.server);
    tasks_add_methods(m.tasks, m.server);
    ingest_add_methods(m.ingest, m.server);
    admin_add_methods(&m, m.server);
    if ((rc = rpc_server_start(m.server)) < 0) {
        log_error("cannot start the gRPC server");
        goto out;
    }
    if (create_tls(cfg, &accept.tls) < 0)
        goto out;
    char err[256];
    if ((rc = listener_open(m.loop, cfg->listen_host, cfg->listen_port, on_accept, &accept,
                            &m.listener, err, sizeof(err))) < 0) {
        log_error("%s", err);
        goto out;
    }
    raise_fd_limit((size_t)cfg->max_connections);
    listener_set_limit(m.listener, (size_t)cfg->max_connections);
    ev_signal_init(&m.sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&m.sigint, on_stop_signal, SIGINT);
    ev_signal_init(&m.sighup, on_hup_signal, SIGHUP);
    m.sigterm.data = m.sigint.data = &m;
    ev_signal_start(m.loop, &m.sigterm);
    ev_signal_start(m.loop, &m.sigint);
    ev_signal_start(m.loop, &m.sighup);

    log_info("master listening on %s:%d (%s), data in %s", cfg->listen_host,
             listener_port(m.listener),
             !accept.tls                    ? "plaintext"
             : cfg->tls_require_client_cert ? "TLS 1.3, client certificates required"
             : cfg->tls_ca                  ? "TLS 1.3, client certificates verified if offered"
                                            : "TLS 1.3",
             data_dir);
    notify_ready();
    ev_run(m.loop, 0);
    m.exit_code = 0;
    log_info("master stopped");

out:
    ev_signal_stop(m.loop, &m.sigterm);
    ev_signal_stop(m.loop, &m.sigint);
    ev_signal_stop(m.loop, &m.sighup);
    listener_close(m.listener);
    if (m.server) {
        /* Not reached by a clean stop: the server was already shut down there. */
        rpc_server_shutdown(m.server, 1000, on_server_down, &m);
        while (m.server)
            ev_run(m.loop, EVRUN_ONCE);
    }
    /* After the server: its connections' plaintext ends are closed by now or dropped here. */
    tls_server_destroy(accept.tls);
    ingest_destroy(m.ingest);
    tasks_destroy(m.tasks);
    nodes_destroy(m.nodes);
    group_destroy(m.group);
    bridge_destroy(m.bridge);
    store_close(m.store);
    free(m.auth_key);
    free(data_dir);
    return m.exit_code;
}

#include "master/master.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <ev.h>

#include "core/roles.h"
#include "master/admin.h"
#include "master/events.h"
#include "master/hooks.h"
#include "master/spiders_rpc.h"
#include "master/purge.h"
#include "master/group.h"
#include "master/ingest.h"
#include "master/metrics.h"
#include "master/nodes.h"
#include "master/nodes_rpc.h"
#include "store/store.h"
#include "master/sched.h"
#include "master/tasks.h"
#include "master/tasks_rpc.h"
#include "net/certwatch.h"
#include "net/httpget.h"
#include "net/listener.h"
#ifdef HAVE_LIBPQ
#include "net/pgtls.h"
#endif
#include "net/tls.h"
#include "rpc/auth.h"
#include "rpc/server.h"
#include "runtime/bridge.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "runtime/notify.h"
#include "runtime/ratelimit.h"

/* The master owns the loop, the gRPC server, the listener and the store, and wires the services
 * to them and to each other. */
struct master {
    const struct config *cfg;
    struct ev_loop *loop;
    struct bridge *bridge;
    struct rpc_server *server;
    struct listener *listener;
    struct httpget *metrics_http; /* --metrics-listen, or NULL */
    struct store *store;
    struct pgtls_relay *pg_relay; /* a PostgreSQL store's TLS, or NULL */
    struct group *group;
    struct nodes *nodes;
    struct tasks *tasks;
    struct sched *sched;
    struct ingest *ingest;
    struct purge *purge;
    struct events *events;
    struct hooks *hooks; /* --on-event, or NULL */
    struct spiders_rpc *spiders;
    const char *data_dir;
    struct tasks_rpc tasks_rpc;
    struct admin admin;
    struct metrics metrics;
    char *auth_key, *admin_key; /* the node and the admin secret; NULL without authentication */
    ev_signal sigterm, sigint, sighup;
    char master_id[LIMIT_NODE_KEY_MAX + 1]; /* its name in a shared store's leases */
    ev_io news_io;                          /* a shared store's news of other masters' tasks */
    ev_prepare news_prepare;                /* ... and those its other calls read */
    ev_timer others_poll;                   /* ... and what they stored for our followers */
    struct certwatch *certwatch;            /* the dates of --tls-cert and --tls-ca, or NULL */
    bool stopping;
    int exit_code;
};

/* What the listener needs: the master, and its TLS context when TLS is on. */
struct accept_ctx {
    struct master *m;
    struct tls_server *tls;
    struct ratelimit tls_refusals;
};

/* Hands a connection to gRPC with who is at the other end. */
static void serve(struct master *m, int fd, const struct rpc_peer *peer)
{
    if (!m->server) {
        close(fd);
        return;
    }
    int rc = rpc_server_add_conn(m->server, fd, peer);
    if (rc < 0)
        log_warn("cannot take the connection from %s: %s", peer->addr, strerror(-rc));
}

/* A TLS handshake ended: the plaintext end goes to gRPC, a refusal to the log. */
static void on_tls_ready(void *ctx, const struct tls_result *r)
{
    struct accept_ctx *a = ctx;
    if (r->plain_fd < 0) {
        /* The message names the peer and the fault (expired, unknown CA, no certificate, not
         * TLS). A peer can fail handshakes as fast as it can connect: one line a second. */
        unsigned held;
        a->m->metrics.tls_refused++;
        if (!ratelimit_pass(&a->tls_refusals, ev_now(a->m->loop), &held))
            return;
        if (held)
            log_warn("refused a TLS connection from %s (%u more refused since the last such line)",
                     r->errmsg, held);
        else
            log_warn("refused a TLS connection from %s", r->errmsg);
        return;
    }
    enum cert_role role =
        r->has_cert ? role_of_cert_ous(r->cert_ous, r->n_cert_ous) : CERT_ROLE_ABSENT;
    log_debug("TLS connection fd:%d from %s, a client certified as '%s' (%s)", r->plain_fd, r->addr,
              r->cert_cn ? r->cert_cn : "(none)",
              role == CERT_ROLE_ABSENT   ? "no certificate"
              : role == CERT_ROLE_WORKER ? "role worker"
              : role == CERT_ROLE_ADMIN  ? "role admin"
              : role == CERT_ROLE_NONE   ? "no role: a worker's"
                                         : "invalid role: refused every call");
    serve(a->m, r->plain_fd,
          &(struct rpc_peer){.addr = r->addr, .cert_cn = r->cert_cn, .cert_role = role});
}

static void on_accept(void *ctx, int fd, const char *peer)
{
    struct accept_ctx *a = ctx;
    log_debug("connection from %s", peer);
    if (!a->tls) {
        serve(a->m, fd, &(struct rpc_peer){.addr = peer});
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
    if (m->group)
        group_server_gone(m->group);
    ev_break(m->loop, EVBREAK_ALL);
}

/* Every node stream has ended, after its DRAIN: the log streams can end too (after a last
 * commit, which answers those it completes). Not sooner: a worker whose log stream failed would
 * drop its connections before it read DRAIN. */
static void on_nodes_drained(void *ctx)
{
    struct master *m = ctx;
    if (m->ingest)
        ingest_drain(m->ingest);
}

/*
 * Shuts the server down, calls in flight given grace_ms to finish. First, what would wait for
 * news until the grace is over ends: the node streams (after DRAIN), then the log streams; the
 * cancel streams, the fetches that wait and the followers. Each worker and follower goes on with
 * the master it reaches next.
 */
static void stop_serving(struct master *m, uint64_t grace_ms)
{
    if (m->nodes)
        nodes_drain_all(m->nodes, on_nodes_drained, m);
    else
        on_nodes_drained(m);
    if (m->tasks)
        tasks_drain(m->tasks);
    admin_stop(&m->admin);
    rpc_server_shutdown(m->server, grace_ms, on_server_down, m);
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
    uint64_t grace = m->cfg->shutdown_grace_ms;
    log_info("stopping: draining workers; calls in flight have up to %" PRIu64 " %s to finish",
             grace % 1000 ? grace : grace / 1000, grace % 1000 ? "ms" : "s");
    listener_close(m->listener);
    m->listener = NULL;
    purge_destroy(m->purge);
    m->purge = NULL;
    m->admin.purge = NULL;
    stop_serving(m, grace);
}

/*
 * SIGHUP: with TLS, the certificate, key and CA files are read again for the connections accepted
 * from now on (a renewed certificate, without a restart), and their dates judged again. Nothing
 * else is reloaded: the rest of the configuration is read at start, and logs go to stderr.
 */
static void on_hup_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct accept_ctx *a = w->data;
    struct master *m = a->m;
    char err[512];
    bool reloaded = false;
    if (a->tls) {
        reloaded = true;
        if (tls_server_reload(a->tls, err, sizeof(err)) < 0) {
            log_error("SIGHUP: TLS: %s; the files loaded before stay in use", err);
        } else {
            log_info("SIGHUP: TLS certificate, key and CA read again; new connections use them");
            certwatch_restart(loop, m->cfg->tls_cert, m->cfg->tls_ca, &m->certwatch);
        }
    }
#ifdef HAVE_LIBPQ
    /* The store's TLS files (--store's sslrootcert, sslcert, sslkey): for the connections to the
     * database made from now on. */
    if (m->pg_relay) {
        reloaded = true;
        if (pgtls_relay_reload(m->pg_relay, err, sizeof(err)) < 0)
            log_error("SIGHUP: PostgreSQL TLS: %s; the files loaded before stay in use", err);
        else
            log_info("SIGHUP: PostgreSQL TLS files read again; new connections to the database "
                     "use them");
    }
#endif
    if (!reloaded)
        log_info("SIGHUP: nothing to reload; the configuration is read at start and logs go to "
                 "stderr");
}

/* ---- wiring the services ---- */

/* A node went offline: the task queue takes back its tasks. */
static void on_node_offline(void *ctx, struct node *node)
{
    tasks_node_offline(ctx, node->key);
}

/* A group of store changes was committed or rolled back: the Connect streams that waited for it
 * are answered, log followers look for new lines, event followers and hooks for new events. */
static void on_group_commit(void *ctx, uint64_t n, bool ok)
{
    struct master *m = ctx;
    ingest_committed(m->ingest, n, ok);
    tasks_committed(m->tasks, ok);
    events_committed(m->events, ok);
}

static void count_node(void *ctx, struct node *node)
{
    struct metrics_state *s = ctx;
    if (node->online)
        s->nodes_online++;
}

struct node_counts {
    uint64_t known, online; /* online: as the store has it */
};

static int count_known_node(void *ctx, const struct node_row *r)
{
    struct node_counts *n = ctx;
    n->known++;
    n->online += strcmp(r->status, STORE_NODE_ONLINE) == 0;
    return 0;
}

/* The metrics text: the services' counters, and gauges read now from the registry, the store,
 * the listener and the server. */
static int render_metrics(void *ctx, char **text, size_t *len)
{
    struct master *m = ctx;
    struct metrics_state s = {0};
    struct node_counts known = {0};
    nodes_foreach(m->nodes, count_node, &s);
    int rc = store_node_list(m->store, count_known_node, &known);
    if (rc == 0)
        rc = store_task_count_by_status(m->store, NULL, s.tasks);
    if (rc < 0)
        return rc;
    /* On a shared store, the nodes of the other masters too: the rows are the cluster's view. */
    if (store_shared(m->store))
        s.nodes_online = known.online;
    s.nodes_offline = known.known > s.nodes_online ? known.known - s.nodes_online : 0;
    if (m->listener) {
        struct listener_stats ls;
        listener_stats(m->listener, &ls);
        s.conns_accepted = ls.accepted;
        s.conns_refused = ls.refused;
        s.conns_open = ls.open;
        s.has_conns = ls.counts_open;
    }
    if (m->server)
        s.auth_refused = rpc_server_auth_refused(m->server);
    s.n_certs = certwatch_certs(m->certwatch, &s.certs);
    return metrics_render(&m->metrics, &s, text, len);
}

/* --metrics-listen: GET /metrics over plain HTTP, without authentication. */
static int open_metrics_http(struct master *m)
{
    const struct httpget_options o = {
        .path = "/metrics",
        .content_type = "text/plain; version=0.0.4; charset=utf-8",
        .body = render_metrics,
        .ctx = m,
    };
    char err[256];
    int rc = httpget_open(m->loop, m->cfg->metrics_host, m->cfg->metrics_port, &o, &m->metrics_http,
                          err, sizeof(err));
    if (rc < 0) {
        log_error("--metrics-listen: %s", err);
        return rc;
    }
    if (!httpget_loopback_only(m->metrics_http))
        log_warn("serving metrics on %s without authentication: they show node and task counts, "
                 "store and traffic figures to whoever reaches that address",
                 m->cfg->metrics_host);
    log_info("metrics on http://%s:%d/metrics", m->cfg->metrics_host,
             httpget_port(m->metrics_http));
    return 0;
}

/* ---- several masters on one store ---- */

/* This master's name in the store's leases: the host, and a random part that tells two masters
 * of one host, or two runs of one master, apart. */
static void make_master_id(struct master *m)
{
    char host[32] = "master";
    gethostname(host, sizeof(host) - 1);
    host[strcspn(host, ".")] = '\0';
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint32_t)getpid();
    snprintf(m->master_id, sizeof(m->master_id), "%s-%08x", host, rnd);
}

static int on_task_news(void *ctx, const char *id, const char *node_key, const char *labels,
                        int64_t eligible_ms)
{
    tasks_news(ctx, id, node_key, labels, eligible_ms);
    return 0;
}

static int on_cancel_news(void *ctx, const char *id, const char *node_key, bool force)
{
    tasks_cancel_news(ctx, id, node_key, force);
    return 0;
}

static int read_news(struct master *m, bool read)
{
    const struct store_news_handlers h = {
        .task = on_task_news, .cancel = on_cancel_news, .ctx = m->tasks};
    return store_news(m->store, &h, read);
}

/* After store_news: a dead socket would read as ready forever, so while the database is away
 * (rc < 0) the descriptor is not watched; once the connection is made again (1, or 0 with nothing
 * watched: the prepare step looks each loop iteration) the new one is. */
static void follow_news(struct master *m, int rc)
{
    if (rc == 0 && ev_is_active(&m->news_io))
        return;
    if (rc == 1)
        tasks_news_lost(m->tasks);
    ev_io_stop(m->loop, &m->news_io);
    int fd = rc < 0 ? rc : store_news_fd(m->store);
    if (fd < 0)
        return;
    ev_io_set(&m->news_io, fd, EV_READ);
    ev_io_start(m->loop, &m->news_io);
}

static void on_news_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct master *m = w->data;
    follow_news(m, read_news(m, true));
}

static void on_news_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct master *m = w->data;
    follow_news(m, read_news(m, false));
}

/* How often a master on a shared store looks for what other masters stored that its followers
 * (logs --follow, events --follow, hooks) wait for, their latency across masters; and tries to
 * take the hooks over if it stands by. */
#define OTHERS_POLL_S 0.25

static void on_others_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct master *m = w->data;
    events_refresh(m->events);
    tasks_recheck_watchers(m->tasks);
    hooks_poke(m->hooks);
}

static void watch_news(struct master *m)
{
    ev_timer_init(&m->others_poll, on_others_poll, OTHERS_POLL_S, OTHERS_POLL_S);
    m->others_poll.data = m;
    ev_timer_start(m->loop, &m->others_poll);
    ev_init(&m->news_io, on_news_readable);
    m->news_io.data = m;
    ev_prepare_init(&m->news_prepare, on_news_prepare);
    m->news_prepare.data = m;
    ev_prepare_start(m->loop, &m->news_prepare);
    follow_news(m, 1);
}

/*
 * The location the store is opened at: --store, or the data directory. A PostgreSQL location that
 * asks for TLS gets the relay first (libpq has none of its own, docs/postgres.md) and is opened
 * through it: local (cap bytes) then holds that location. The server's certificate is always
 * verified, name included, whichever of sslmode=require, verify-ca and verify-full is given.
 */
static int store_location(struct master *m, const char **out, char *local, size_t cap)
{
    *out = m->cfg->store ? m->cfg->store : m->data_dir;
#ifdef HAVE_LIBPQ
    if (!m->cfg->store)
        return 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/pg-relay", m->data_dir);
    struct store_pg_tls tls;
    int rc = store_pg_tls_split(m->cfg->store, dir, &tls, local, cap);
    if (rc < 0) {
        log_error("--store: %s",
                  rc == -EINVAL ? "not a connection URI libpq reads, or TLS asked for with several "
                                  "hosts or a socket directory"
                                : strerror(-rc));
        return rc;
    }
    if (!tls.wanted)
        return 0;
    if (!*tls.ca_file) {
        log_error("--store asks for TLS: add sslrootcert=FILE, the CA that signs the server's "
                  "certificate (this binary always verifies it)");
        return -EINVAL;
    }
    const struct pgtls_options opts = {
        .host = tls.host,
        .port = tls.port,
        .ca_file = tls.ca_file,
        .cert_file = *tls.cert_file ? tls.cert_file : NULL,
        .key_file = *tls.key_file ? tls.key_file : NULL,
        .socket_dir = dir,
    };
    char err[256];
    if ((rc = pgtls_relay_start(&opts, &m->pg_relay, err, sizeof(err))) < 0) {
        log_error("cannot start the TLS relay to PostgreSQL: %s", err);
        return rc;
    }
    log_info("PostgreSQL at %s:%d over TLS 1.3, through the binary's relay", tls.host, tls.port);
    *out = local;
#else
    (void)local;
    (void)cap;
#endif
    return 0;
}

/* Creates the services, each with what it uses, sets the callbacks between them, and adds their
 * methods to the server. */
static int create_services(struct master *m)
{
    const struct config *cfg = m->cfg;
    const struct nodes_opts nodes_opts = {
        .heartbeat_interval_ms = cfg->heartbeat_interval_ms,
        .bind_node_key = cfg->tls_bind_node_key,
        .master_id = m->master_id,
    };
    const struct tasks_opts tasks_opts = {.disconnect_grace_ms = cfg->disconnect_grace_ms};
    int rc;
    if ((rc = group_create(m->loop, m->store, m->server, &m->group)) < 0 ||
        (rc = events_create(m->loop, m->store, m->group, &m->events)) < 0 ||
        (rc = nodes_create(m->loop, m->store, &nodes_opts, &m->nodes)) < 0 ||
        (rc = tasks_create(m->loop, m->store, m->nodes, &tasks_opts, &m->tasks)) < 0 ||
        (rc = ingest_create(m->store, m->group, &m->ingest)) < 0 ||
        (rc = sched_create(m->loop, m->store, m->tasks, m->group, cfg->zoneinfo_dir, &m->sched)) <
            0)
        return rc;
    const struct purge_opts purge_opts = {.retention_ms = cfg->retention_ms};
    if ((rc = purge_create(m->loop, m->store, m->group, &purge_opts, &m->purge)) < 0)
        return rc;
    const struct hooks_opts hooks_opts = {
        .cmds = cfg->on_event,
        .n_cmds = cfg->n_on_event,
        .timeout_ms = cfg->on_event_timeout_ms,
        .backlog_max = HOOKS_BACKLOG_MAX,
    };
    if (cfg->n_on_event &&
        (rc = hooks_create(m->loop, m->store, m->group, m->events, &hooks_opts, &m->hooks)) < 0)
        return rc;
    const struct spiders_rpc_opts spiders_opts = {.data_dir = m->data_dir,
                                                  .max_bytes = cfg->spider_max_bytes,
                                                  .max_files = (uint64_t)cfg->spider_max_files};
    if ((rc = spiders_rpc_create(m->loop, m->store, m->group, &spiders_opts, &m->spiders)) < 0)
        return rc;
    nodes_on_offline(m->nodes, on_node_offline, m->tasks);
    nodes_set_events(m->nodes, m->events);
    tasks_set_events(m->tasks, m->events);
    tasks_set_group(m->tasks, m->group);
    group_on_commit(m->group, on_group_commit, m);
    metrics_init(&m->metrics);
    events_set_metrics(m->events, &m->metrics);
    group_set_metrics(m->group, &m->metrics);
    tasks_set_metrics(m->tasks, &m->metrics);
    ingest_set_metrics(m->ingest, &m->metrics);
    m->tasks_rpc = (struct tasks_rpc){.tasks = m->tasks, .nodes = m->nodes};
    m->admin = (struct admin){.store = m->store,
                              .nodes = m->nodes,
                              .tasks = m->tasks,
                              .sched = m->sched,
                              .loop = m->loop,
                              .purge = m->purge,
                              .events = m->events,
                              .metrics_text = render_metrics,
                              .metrics_ctx = m};
    nodes_rpc_add_methods(m->nodes, m->server);
    tasks_rpc_add_methods(&m->tasks_rpc, m->server);
    ingest_add_methods(m->ingest, m->server);
    admin_add_methods(&m->admin, m->server);
    spiders_rpc_add_methods(m->spiders, m->server);
    return 0;
}

/* One secret: from the flag or the environment (value), a file, or generated once into the data
 * dir as file_name. what names it in the log ("auth key", "admin key"), never its value. */
static int resolve_key(const char *value, const char *file, const char *data_dir,
                       const char *file_name, const char *what, const char *hint, char **out)
{
    if (value)
        return (*out = strdup(value)) ? 0 : -ENOMEM;
    if (file) {
        int rc = auth_key_read_file(file, out);
        if (rc < 0)
            log_error("cannot read the %s file %s: %s", what, file, auth_key_file_error(rc));
        return rc;
    }
    bool created;
    int rc = auth_key_ensure(data_dir, file_name, out, &created);
    if (rc < 0) {
        log_error("cannot read or create %s/%s: %s", data_dir, file_name, strerror(-rc));
        return rc;
    }
    log_info("%s %s %s/%s; %s", created ? "generated a new" : "using the", what, data_dir,
             file_name, hint);
    return 0;
}

/* The node key (auth.key: workers) and the admin key (admin.key: client commands), each from its
 * flag, variable, file, or generated once into the data dir. They must differ, else the admin
 * secret would also be a node secret. */
static int resolve_auth_keys(struct master *m, const char *data_dir)
{
    const struct config *cfg = m->cfg;
    if (cfg->insecure_no_auth) {
        log_warn("AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this port can "
                 "register workers and run commands on them");
        return 0;
    }
    int rc = resolve_key(cfg->auth_key, cfg->auth_key_file, data_dir, AUTH_NODE_KEY_FILE,
                         "auth key", "give it to workers with --auth-key-file", &m->auth_key);
    if (rc == 0)
        rc = resolve_key(cfg->admin_key, cfg->admin_key_file, data_dir, AUTH_ADMIN_KEY_FILE,
                         "admin key", "client commands read it with --admin-key-file",
                         &m->admin_key);
    if (rc == 0 && strcmp(m->auth_key, m->admin_key) == 0) {
        log_error("the admin key and the auth key (the node key) are the same: the admin key "
                  "must differ, or workers could act as admins");
        rc = -EINVAL;
    }
    return rc;
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
    int lock_fd = -1; /* the data directory's, when the store does not take it */
    char *data_dir = datadir_resolve(cfg->data_dir);
    if (!data_dir || datadir_ensure(data_dir) < 0) {
        log_error("cannot create the data directory %s: %s", data_dir ? data_dir : "?",
                  strerror(errno));
        free(data_dir);
        return 1;
    }
    m.loop = ev_default_loop(EVFLAG_AUTO);
    signal(SIGPIPE, SIG_IGN);

    m.data_dir = data_dir;
    make_master_id(&m);
    /* SQLite's store locks its directory itself; on PostgreSQL the directory still holds the
     * keys, the spider archives and the relay's socket, which two masters must not share. */
    if (cfg->store && (lock_fd = datadir_lock(data_dir, "crawlab.lock")) < 0) {
        log_error("cannot use the data directory %s: %s", data_dir,
                  lock_fd == -EBUSY ? "another master is using it" : strerror(-lock_fd));
        goto out;
    }
    const char *location;
    char local[4096];
    int rc = store_location(&m, &location, local, sizeof(local));
    if (rc < 0)
        goto out; /* said why */
    if ((rc = store_open(location, &m.store)) < 0) {
        /* Never the URI: it may hold a password. The store logged the server it tried. */
        if (cfg->store)
            log_error("cannot open the PostgreSQL store: %s",
                      rc == -EINVAL ? "the URI is not a valid connection string" : strerror(-rc));
        else
            log_error("cannot open the store in %s: %s", data_dir,
                      rc == -EBUSY ? "another master is using it" : strerror(-rc));
        goto out;
    }
    if (resolve_auth_keys(&m, data_dir) < 0)
        goto out;
    if ((rc = bridge_create(m.loop, &m.bridge)) < 0) {
        log_error("cannot start the completion queue thread: %s", strerror(-rc));
        goto out;
    }
    struct rpc_server_options opts = {
        .auth_key = m.auth_key,
        .admin_key = m.admin_key,
        .keepalive_time_ms = 20000,
        .keepalive_timeout_ms = 5000,
        .min_client_ping_ms = 10000,
        .max_streams_per_conn = 1024,
        .auth_deadline_ms = cfg->auth_timeout_ms,
        .peer_certs = cfg->tls_ca != NULL,
    };
    if ((rc = rpc_server_create(m.bridge, &opts, &m.server)) < 0 ||
        (rc = create_services(&m)) < 0) {
        log_error("cannot start the server: %s", strerror(-rc));
        goto out;
    }
    if ((rc = rpc_server_start(m.server)) < 0) {
        log_error("cannot start the gRPC server");
        goto out;
    }
    if (store_shared(m.store))
        watch_news(&m);
    if (create_tls(cfg, &accept.tls) < 0)
        goto out;
    if (accept.tls && certwatch_start(m.loop, cfg->tls_cert, cfg->tls_ca, &m.certwatch) < 0) {
        log_error("out of memory");
        goto out;
    }
    char err[256];
    if ((rc = listener_open(m.loop, cfg->listen_host, cfg->listen_port, on_accept, &accept,
                            &m.listener, err, sizeof(err))) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (!accept.tls && !listener_loopback_only(m.listener))
        log_warn("listening on %s without TLS: every call, auth key included, travels in clear; "
                 "give --tls-cert and --tls-key (docs/security.md)",
                 cfg->listen_host);
    if (cfg->metrics_host && open_metrics_http(&m) < 0)
        goto out;
    raise_fd_limit((size_t)cfg->max_connections);
    listener_set_limit(m.listener, (size_t)cfg->max_connections);
    listener_set_rate(m.listener, cfg->max_connection_rate, 10.0 * cfg->max_connection_rate);
    ev_signal_init(&m.sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&m.sigint, on_stop_signal, SIGINT);
    ev_signal_init(&m.sighup, on_hup_signal, SIGHUP);
    m.sigterm.data = m.sigint.data = &m;
    m.sighup.data = &accept;
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
    if (store_shared(m.store))
        log_info("rows in PostgreSQL, shared with other masters; this master is %s", m.master_id);
    notify_ready();
    ev_run(m.loop, 0);
    m.exit_code = 0;
    log_info("master stopped");

out:
    ev_signal_stop(m.loop, &m.sigterm);
    ev_signal_stop(m.loop, &m.sigint);
    ev_signal_stop(m.loop, &m.sighup);
    ev_io_stop(m.loop, &m.news_io);
    ev_prepare_stop(m.loop, &m.news_prepare);
    ev_timer_stop(m.loop, &m.others_poll);
    certwatch_stop(m.certwatch);
    listener_close(m.listener);
    httpget_close(m.metrics_http);
    if (m.server) {
        /* Not reached by a clean stop: the server was already shut down there. What waits is
         * answered while it still can be; the rest gets a second, not the whole grace. */
        stop_serving(&m, 1000);
        while (m.server)
            ev_run(m.loop, EVRUN_ONCE);
    }
    /* After the server: its connections' plaintext ends are closed by now or dropped here. */
    tls_server_destroy(accept.tls);
    hooks_destroy(m.hooks);
    ingest_destroy(m.ingest);
    sched_destroy(m.sched);
    purge_destroy(m.purge);
    spiders_rpc_destroy(m.spiders);
    tasks_destroy(m.tasks);
    nodes_destroy(m.nodes);
    group_destroy(m.group);
    events_destroy(m.events); /* after the group's last commit, which it hears of */
    bridge_destroy(m.bridge);
    store_close(m.store);
#ifdef HAVE_LIBPQ
    pgtls_relay_stop(m.pg_relay);
#endif
    if (lock_fd >= 0)
        close(lock_fd);
    free(m.auth_key);
    free(m.admin_key);
    free(data_dir);
    return m.exit_code;
}

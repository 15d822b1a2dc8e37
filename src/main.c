/*
 * crawlab-node: one binary for the master, the worker and the client commands.
 * Exit status: 0 success, 1 runtime failure, 2 bad command line, 3 master unreachable or auth
 * refused (client commands).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/cpuid.h>

#include "cli/commands.h"
#include "config.h"
#include "master/master.h"
#include "net/certwatch.h"
#include "net/dialer.h"
#include "net/tls.h"
#include "rpc/auth.h"
#include "rpc/codec.h"
#include "runtime/absl_mode.h"
#include "runtime/datadir.h"
#include "runtime/heap.h"
#include "runtime/log.h"
#include "version.h"
#include "worker/worker.h"

/* gRPC logs through its own hook; keep its chatter out unless we are debugging. */
static void grpc_log(gpr_log_func_args *args)
{
    log_debug("grpc: %s", args->message);
}

/*
 * Whether wolfSSL's x86-64 assembly runs here: built in (AES-NI for AES-GCM, AVX1/AVX2 for
 * ChaCha20, Poly1305 and SHA-2) and, if so, which of those extensions this CPU has; wolfSSL
 * picks its code from the same CPUID flags, and runs portable C where they are missing.
 */
static void print_tls_assembly(void)
{
#if (defined(WOLFSSL_AESNI) || defined(USE_INTEL_SPEEDUP)) && defined(HAVE_CPUID_INTEL)
    word32 flags = cpuid_get_flags();
    const char *names[] = {IS_INTEL_AESNI(flags) ? "AES-NI" : NULL,
                           IS_INTEL_AVX1(flags) ? "AVX1" : NULL,
                           IS_INTEL_AVX2(flags) ? "AVX2" : NULL};
    int n = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i])
            printf("%s%s", n++ ? ", " : "on (", names[i]);
    }
    printf("%s\n", n ? ")" : "built in, idle on this CPU (no AES-NI, AVX1 or AVX2)");
#else
    printf("not built in: portable C\n");
#endif
}

/* libpq's version, from the library linked in (PQlibVersion: major * 10000 + minor). */
static void print_libpq(void)
{
#ifdef HAVE_LIBPQ
    int v = PQlibVersion();
    printf("libpq %d.%d, without TLS\n", v / 10000, v % 10000);
#else
    printf("libpq not built in\n");
#endif
}

/* What a bug report needs: this version, and those of gRPC core, wolfSSL and libpq. */
static void print_version(void)
{
    printf("crawlab-node %s\n", CRAWLAB_VERSION);
    printf("gRPC core %s\n", grpc_version_string());
    printf("wolfSSL %s, x86-64 assembly ", wolfSSL_lib_version());
    print_tls_assembly();
    print_libpq();
}

/*
 * The secret a worker or client command presents: a worker the node key (--auth-key,
 * CRAWLAB_AUTH_KEY, --auth-key-file), a client command the admin key (--admin-key,
 * CRAWLAB_ADMIN_KEY, --admin-key-file); either way, without one, -- on the master's own machine --
 * the file the master generated in the default data directory (auth.key, admin.key).
 */
static int client_auth_key(const struct config *cfg, char **out)
{
    *out = NULL;
    if (cfg->insecure_no_auth)
        return 0;
    bool worker = cfg->command == CMD_WORKER;
    const char *value = worker ? cfg->auth_key : cfg->admin_key;
    const char *file = worker ? cfg->auth_key_file : cfg->admin_key_file;
    if (value)
        return (*out = strdup(value)) ? 0 : -ENOMEM;
    if (file) {
        int rc = auth_key_read_file(file, out);
        if (rc < 0)
            fprintf(stderr, "crawlab-node: %s %s: %s\n",
                    worker ? "--auth-key-file" : "--admin-key-file", file, auth_key_file_error(rc));
        return rc;
    }
    char *dir = datadir_resolve(NULL);
    if (dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir,
                 worker ? AUTH_NODE_KEY_FILE : AUTH_ADMIN_KEY_FILE);
        if (auth_key_read_file(path, out) < 0)
            *out = NULL;
        free(dir);
    }
    return 0;
}

/* A client command's certificate near or past its end is said on stderr before the command
 * runs: past it, the master refuses the handshake with words that do not say why. (A worker
 * watches its own with certwatch, in its log.) */
static void judge_own_cert(const char *file)
{
    int64_t not_after;
    char words[4400];
    if (tls_cert_not_after(file, &not_after) < 0)
        return;
    switch (certwatch_judge("certificate", file, not_after, (int64_t)time(NULL), words,
                            sizeof(words))) {
    case CERT_EXPIRED:
        fprintf(stderr,
                "crawlab-node: TLS: %s: the master will refuse it; issue a new one (cert "
                "issue --role=admin)\n",
                words);
        break;
    case CERT_ENDING:
        fprintf(stderr,
                "crawlab-node: warning: TLS: %s: issue a new one (cert issue "
                "--role=admin) before then\n",
                words);
        break;
    case CERT_VALID:
        break;
    }
}

/* TLS to the master for a worker (worker) or a client command: on exactly when --tls-ca is
 * given. */
static int client_tls(const struct config *cfg, bool worker, struct tls_client **out)
{
    *out = NULL;
    if (!cfg->tls_ca)
        return 0;
    struct tls_client_options opts = {
        .ca_file = cfg->tls_ca,
        .cert_file = cfg->tls_cert,
        .key_file = cfg->tls_key,
        .server_name = cfg->tls_server_name,
    };
    char err[512];
    int rc = tls_client_create(&opts, out, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "crawlab-node: TLS: %s\n", err);
    else if (!worker && cfg->tls_cert)
        judge_own_cert(cfg->tls_cert);
    return rc;
}

/* What a client command printed must reach its reader, or the command fails: a task id lost to a
 * full disk or a broken pipe must not pass for a success. The exit status stays the command's
 * own when it failed already. */
static int output_written(int status)
{
    int err = fflush(stdout) != 0 ? errno : ferror(stdout) ? EIO : 0;
    if (!err)
        return status;
    fprintf(stderr, "crawlab-node: cannot write the output: %s\n", strerror(err));
    return status ? status : 1;
}

int main(int argc, char **argv)
{
    /* The largest message, and the headers gRPC and protobuf-c put around its copies. */
    heap_keep_blocks(RPC_MAX_MESSAGE + (64u << 10));
    struct config cfg;
    char err[512];
    if (config_parse(&cfg, argc, argv, getenv, err, sizeof(err)) < 0) {
        fprintf(stderr, "crawlab-node: %s (see crawlab-node --help)\n", err);
        config_free(&cfg);
        return 2;
    }
    if (cfg.command == CMD_HELP) {
        config_usage(stdout);
        config_free(&cfg);
        return 0;
    }
    if (cfg.command == CMD_VERSION) {
        print_version();
        config_free(&cfg);
        return 0;
    }

    if (cfg.command == CMD_CERT_INIT || cfg.command == CMD_CERT_ISSUE) {
        int rc = cfg.command == CMD_CERT_INIT ? cli_cert_init(&cfg) : cli_cert_issue(&cfg);
        config_free(&cfg);
        return rc;
    }

    const char *role = cfg.command == CMD_MASTER   ? "master"
                       : cfg.command == CMD_WORKER ? "worker"
                                                   : "client";
    log_setup(cfg.log_level, cfg.log_format, role);
    gpr_set_log_function(grpc_log);
    gpr_set_log_verbosity(log_enabled(LOG_DEBUG) ? GPR_LOG_SEVERITY_DEBUG : GPR_LOG_SEVERITY_ERROR);
    absl_mode_release();
    grpc_init();
    if (dial_global_init() < 0) {
        fprintf(stderr, "crawlab-node: cannot initialise the resolver\n");
        return 1;
    }

    int status;
    char *key = NULL;
    struct tls_client *tls = NULL;
    if (cfg.command == CMD_MASTER) {
        status = master_main(&cfg);
    } else if (client_auth_key(&cfg, &key) < 0 ||
               client_tls(&cfg, cfg.command == CMD_WORKER, &tls) < 0) {
        status = 2;
    } else if (cfg.command == CMD_WORKER) {
        status = worker_main(&cfg, key, tls);
    } else {
        switch (cfg.command) {
        case CMD_NODES:
            status = cli_nodes(&cfg, tls, key);
            break;
        case CMD_SUBMIT:
            status = cli_submit(&cfg, tls, key);
            break;
        case CMD_TASKS:
            status = cli_tasks(&cfg, tls, key);
            break;
        case CMD_TASKS_PURGE:
            status = cli_tasks_purge(&cfg, tls, key);
            break;
        case CMD_LOGS:
            status = cli_logs(&cfg, tls, key);
            break;
        case CMD_RESULTS:
            status = cli_results(&cfg, tls, key);
            break;
        case CMD_CANCEL:
            status = cli_cancel(&cfg, tls, key);
            break;
        case CMD_TASK_RESTART:
            status = cli_task_restart(&cfg, tls, key);
            break;
        case CMD_SCHEDULE:
            status = cli_schedule(&cfg, tls, key);
            break;
        case CMD_NODE:
            status = cli_node(&cfg, tls, key);
            break;
        case CMD_SPIDER:
            status = cli_spider(&cfg, tls, key);
            break;
        case CMD_METRICS:
            status = cli_metrics(&cfg, tls, key);
            break;
        case CMD_EVENTS:
            status = cli_events(&cfg, tls, key);
            break;
        default:
            fprintf(stderr, "crawlab-node: this command is not implemented yet\n");
            status = 2;
        }
        status = output_written(status);
    }
    tls_client_destroy(tls);
    free(key);
    dial_global_cleanup();
    grpc_shutdown();
    config_free(&cfg);
    return status;
}

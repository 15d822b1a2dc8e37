/*
 * crawlab-node: one binary for the master, the worker and the client commands.
 * Exit status: 0 success, 1 runtime failure, 2 bad command line, 3 master unreachable or auth
 * refused (client commands).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "cli/commands.h"
#include "config.h"
#include "master/master.h"
#include "net/dialer.h"
#include "rpc/auth.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "version.h"
#include "worker/worker.h"

/* gRPC logs through its own hook; keep its chatter out unless we are debugging. */
static void grpc_log(gpr_log_func_args *args)
{
    log_debug("grpc: %s", args->message);
}

/*
 * The key a worker or client command presents: flag or environment, a key file, or -- on the
 * master's own machine -- the auth.key the master generated in the default data directory.
 */
static int client_auth_key(const struct config *cfg, char **out)
{
    *out = NULL;
    if (cfg->insecure_no_auth)
        return 0;
    if (cfg->auth_key)
        return (*out = strdup(cfg->auth_key)) ? 0 : -ENOMEM;
    if (cfg->auth_key_file) {
        int rc = auth_key_read_file(cfg->auth_key_file, out);
        if (rc < 0)
            fprintf(stderr, "crawlab-node: --auth-key-file %s: %s\n", cfg->auth_key_file,
                    rc == -EINVAL ? "file is empty" : strerror(-rc));
        return rc;
    }
    char *dir = datadir_resolve(NULL);
    if (dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/auth.key", dir);
        if (auth_key_read_file(path, out) < 0)
            *out = NULL;
        free(dir);
    }
    return 0;
}

int main(int argc, char **argv)
{
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
        printf("crawlab-node %s (gRPC core %s)\n", CRAWLAB_VERSION, grpc_version_string());
        config_free(&cfg);
        return 0;
    }

    const char *role = cfg.command == CMD_MASTER   ? "master"
                       : cfg.command == CMD_WORKER ? "worker"
                                                   : "client";
    log_setup(cfg.log_level, cfg.log_format, role);
    gpr_set_log_function(grpc_log);
    gpr_set_log_verbosity(log_enabled(LOG_DEBUG) ? GPR_LOG_SEVERITY_DEBUG : GPR_LOG_SEVERITY_ERROR);
    grpc_init();
    if (dial_global_init() < 0) {
        fprintf(stderr, "crawlab-node: cannot initialise the resolver\n");
        return 1;
    }

    int status;
    char *key = NULL;
    if (cfg.command == CMD_MASTER) {
        status = master_main(&cfg);
    } else if (client_auth_key(&cfg, &key) < 0) {
        status = 2;
    } else if (cfg.command == CMD_WORKER) {
        status = worker_main(&cfg, key);
    } else {
        switch (cfg.command) {
        case CMD_NODES:
            status = cli_nodes(&cfg, key);
            break;
        case CMD_SUBMIT:
            status = cli_submit(&cfg, key);
            break;
        case CMD_TASKS:
            status = cli_tasks(&cfg, key);
            break;
        case CMD_LOGS:
            status = cli_logs(&cfg, key);
            break;
        case CMD_RESULTS:
            status = cli_results(&cfg, key);
            break;
        case CMD_CANCEL:
            status = cli_cancel(&cfg, key);
            break;
        default:
            fprintf(stderr, "crawlab-node: this command is not implemented yet\n");
            status = 2;
        }
    }
    free(key);
    dial_global_cleanup();
    grpc_shutdown();
    config_free(&cfg);
    return status;
}

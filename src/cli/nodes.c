#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "services/admin_service.pb-c.h"

static void print_json_node(const Grpc__AdminNode *n, bool first)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s}", "key", n->key, "name",
                          n->name, "status", n->status, "last_seen_ms", (json_int_t)n->last_seen_ms,
                          "max_runners", n->max_runners, "running", n->running, "version",
                          n->version, "containment", n->containment);
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    fputs(first ? "[\n" : ",\n", stdout);
    fputs(text ? text : "null", stdout);
    free(text);
    json_decref(o);
}

static void print_row(const Grpc__AdminNode *n)
{
    char seen[32];
    cli_format_time(n->last_seen_ms, seen, sizeof(seen));
    printf("%-34s %-20s %-8s %-21s %11d %7d\n", n->key, n->name, n->status, seen, n->max_runners,
           n->running);
}

/* Every node, page after page as the master sends them, printed as they come. */
int cli_nodes(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminListNodesRequest req = GRPC__ADMIN_LIST_NODES_REQUEST__INIT;
    char *token = NULL;
    size_t shown = 0;
    grpc_status_code st;
    for (bool first_page = true;; first_page = false) {
        req.page_token = token ? token : "";
        ProtobufCMessage *m = NULL;
        st = cli_conn_unary(&c, "/grpc.AdminService/ListNodes", &req.base,
                            &grpc__admin_list_nodes_response__descriptor, &m);
        if (st != GRPC_STATUS_OK)
            break;
        const Grpc__AdminListNodesResponse *r = (const void *)m;
        if (first_page && !cfg->json)
            printf("%-34s %-20s %-8s %-21s %11s %7s\n", "KEY", "NAME", "STATUS", "LAST SEEN",
                   "MAX RUNNERS", "RUNNING");
        for (size_t i = 0; i < r->n_nodes; i++, shown++) {
            if (cfg->json)
                print_json_node(r->nodes[i], shown == 0);
            else
                print_row(r->nodes[i]);
        }
        free(token);
        token = *r->next_page_token ? strdup(r->next_page_token) : NULL;
        protobuf_c_message_free_unpacked(m, NULL);
        if (!token)
            break;
    }
    free(token);
    cli_conn_close(&c);
    if (cfg->json && st == GRPC_STATUS_OK)
        puts(shown ? "\n]" : "[]");
    if (fflush(stdout) != 0 || ferror(stdout))
        return 1;
    return st == GRPC_STATUS_OK ? 0 : cli_exit_status(st);
}

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
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:o*}", "key", n->key,
                          "name", n->name, "status", n->status, "state", n->state, "last_seen_ms",
                          (json_int_t)n->last_seen_ms, "max_runners", n->max_runners, "running",
                          n->running, "version", n->version, "containment", n->containment,
                          "labels", cli_labels_json(n->labels, n->n_labels));
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    fputs(first ? "[\n" : ",\n", stdout);
    fputs(text ? text : "null", stdout);
    free(text);
    json_decref(o);
}

static void print_header(void)
{
    printf("%-34s %-20s %-8s %-8s %-21s %11s %7s %s\n", "KEY", "NAME", "STATUS", "STATE",
           "LAST SEEN", "MAX RUNNERS", "RUNNING", "LABELS");
}

static void print_row(const Grpc__AdminNode *n)
{
    char seen[32], labels[256];
    cli_format_time(n->last_seen_ms, seen, sizeof(seen));
    cli_format_labels(n->labels, n->n_labels, labels, sizeof(labels));
    printf("%-34s %-20s %-8s %-8s %-21s %11d %7d %s\n", n->key, n->name, n->status, n->state, seen,
           n->max_runners, n->running, labels);
}

/* Every node (at most --limit of them), page after page as the master sends them, printed as
 * they come. */
int cli_nodes(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    unsigned want = cfg->limit_given ? cfg->limit : 0;
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminListNodesRequest req = GRPC__ADMIN_LIST_NODES_REQUEST__INIT;
    char *token = NULL;
    unsigned shown = 0;
    bool more = false;
    grpc_status_code st;
    for (bool first_page = true;; first_page = false) {
        req.limit = want ? want - shown : 0;
        req.page_token = token ? token : "";
        ProtobufCMessage *m = NULL;
        st = cli_conn_unary(&c, "/grpc.AdminService/ListNodes", &req.base,
                            &grpc__admin_list_nodes_response__descriptor, &m);
        if (st != GRPC_STATUS_OK)
            break;
        const Grpc__AdminListNodesResponse *r = (const void *)m;
        if (first_page && !cfg->json)
            print_header();
        size_t i = 0;
        for (; i < r->n_nodes && (!want || shown < want); i++, shown++) {
            if (cfg->json)
                print_json_node(r->nodes[i], shown == 0);
            else
                print_row(r->nodes[i]);
        }
        more = i < r->n_nodes || *r->next_page_token;
        free(token);
        token = *r->next_page_token ? strdup(r->next_page_token) : NULL;
        protobuf_c_message_free_unpacked(m, NULL);
        if (!more || (want && shown >= want) || !token)
            break;
    }
    free(token);
    cli_conn_close(&c);
    if (cfg->json && st == GRPC_STATUS_OK)
        puts(shown ? "\n]" : "[]");
    if (fflush(stdout) != 0 || ferror(stdout))
        return 1;
    if (st != GRPC_STATUS_OK)
        return cli_exit_status(st);
    if (more && want && shown >= want)
        fprintf(stderr, "crawlab-node: %u nodes shown, more follow: --limit=0 shows them all\n",
                shown);
    return 0;
}

/* node enable|disable|drain|rm: prints the node as it is now (nothing after rm). */
int cli_node(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminNodeRequest req = GRPC__ADMIN_NODE_REQUEST__INIT;
    req.node = cfg->node_target;
    req.action = strcmp(cfg->node_action, "rm") == 0 ? "remove" : cfg->node_action;
    ProtobufCMessage *m = NULL;
    grpc_status_code st = cli_conn_unary(&c, "/grpc.AdminService/ChangeNode", &req.base,
                                         &grpc__admin_list_nodes_response__descriptor, &m);
    cli_conn_close(&c);
    if (st != GRPC_STATUS_OK)
        return cli_exit_status(st);
    const Grpc__AdminListNodesResponse *r = (const void *)m;
    if (r->n_nodes) {
        print_header();
        print_row(r->nodes[0]);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return fflush(stdout) != 0 || ferror(stdout) ? 1 : 0;
}

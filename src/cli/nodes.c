#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "services/admin_service.pb-c.h"

static void print_json_node(const Grpc__AdminNode *n)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:o*}", "key", n->key,
                          "name", n->name, "status", n->status, "state", n->state, "last_seen_ms",
                          (json_int_t)n->last_seen_ms, "max_runners", n->max_runners, "running",
                          n->running, "version", n->version, "containment", n->containment,
                          "labels", cli_labels_json(n->labels, n->n_labels));
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
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

static size_t node_entries(const ProtobufCMessage *page, const char **next)
{
    const Grpc__AdminListNodesResponse *r = (const void *)page;
    *next = r->next_page_token;
    return r->n_nodes;
}

static void print_node(void *ctx, const ProtobufCMessage *page, size_t i, bool json)
{
    const Grpc__AdminListNodesResponse *r = (const void *)page;
    if (json)
        print_json_node(r->nodes[i]);
    else
        print_row(r->nodes[i]);
}

/* Every node (at most --limit of them), page after page as the master sends them, printed as
 * they come. */
int cli_nodes(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    unsigned want = cfg->limit_given ? cfg->limit : 0;
    Grpc__AdminListNodesRequest req = GRPC__ADMIN_LIST_NODES_REQUEST__INIT;
    struct cli_listing l = {
        .method = "/grpc.AdminService/ListNodes",
        .req = &req.base,
        .limit = &req.limit,
        .page_token = &req.page_token,
        .resp_desc = &grpc__admin_list_nodes_response__descriptor,
        .entries = node_entries,
        .header = print_header,
        .print = print_node,
        .json = cfg->json,
    };
    unsigned shown;
    bool more;
    int status = cli_list(cfg, tls, auth_key, &l, want, &shown, &more);
    if (status)
        return status;
    if (more && want && shown >= want)
        fprintf(stderr, "crawlab-node: %u nodes shown, more follow: --limit=0 shows them all\n",
                shown);
    return 0;
}

/* node enable|disable|drain|rm: prints the node as it is now (nothing after rm). */
int cli_node(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    Grpc__AdminNodeRequest req = GRPC__ADMIN_NODE_REQUEST__INIT;
    req.node = cfg->node_target;
    req.action = strcmp(cfg->node_action, "rm") == 0 ? "remove" : cfg->node_action;
    ProtobufCMessage *m = NULL;
    int status = cli_call(cfg, tls, auth_key, "/grpc.AdminService/ChangeNode", &req.base,
                          &grpc__admin_list_nodes_response__descriptor, &m);
    if (status)
        return status;
    const Grpc__AdminListNodesResponse *r = (const void *)m;
    if (r->n_nodes) {
        print_header();
        print_row(r->nodes[0]);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return fflush(stdout) != 0 || ferror(stdout) ? 1 : 0;
}

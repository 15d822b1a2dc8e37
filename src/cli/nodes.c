#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "services/admin_service.pb-c.h"

static void print_json(const Grpc__AdminListNodesResponse *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Grpc__AdminNode *n = r->nodes[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s}", "key",
                                             n->key, "name", n->name, "status", n->status,
                                             "last_seen_ms", (json_int_t)n->last_seen_ms,
                                             "max_runners", n->max_runners, "running", n->running,
                                             "version", n->version, "containment", n->containment));
    }
    char *s = json_dumps(arr, JSON_INDENT(2));
    if (s)
        puts(s);
    free(s);
    json_decref(arr);
}

int cli_nodes(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    Grpc__AdminListNodesRequest req = GRPC__ADMIN_LIST_NODES_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    grpc_status_code st = cli_conn_unary(&c, "/grpc.AdminService/ListNodes", &req.base,
                                         &grpc__admin_list_nodes_response__descriptor, &m);
    cli_conn_close(&c);
    if (st != GRPC_STATUS_OK)
        return cli_exit_status(st);
    const Grpc__AdminListNodesResponse *r = (const void *)m;
    if (cfg->json) {
        print_json(r);
    } else {
        printf("%-34s %-20s %-8s %-21s %11s %7s\n", "KEY", "NAME", "STATUS", "LAST SEEN",
               "MAX RUNNERS", "RUNNING");
        for (size_t i = 0; i < r->n_nodes; i++) {
            const Grpc__AdminNode *n = r->nodes[i];
            char seen[32];
            cli_format_time(n->last_seen_ms, seen, sizeof(seen));
            printf("%-34s %-20s %-8s %-21s %11d %7d\n", n->key, n->name, n->status, seen,
                   n->max_runners, n->running);
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

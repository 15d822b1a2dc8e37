#include "master/admin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/nodes.h"
#include "master/store.h"
#include "rpc/codec.h"
#include "runtime/log.h"
#include "services/admin_service.pb-c.h"

struct node_list {
    struct master *m;
    Grpc__AdminNode *items;
    Grpc__AdminNode **ptrs;
    size_t n, cap;
    int err;
};

/* The store knows every node ever seen; the registry knows who is connected right now. */
static int collect_node(void *ctx, const struct node_row *r)
{
    struct node_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        Grpc__AdminNode *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        l->items = items;
        l->cap = cap;
    }
    Grpc__AdminNode *a = &l->items[l->n++];
    grpc__admin_node__init(a);
    a->key = strdup(r->key);
    a->name = strdup(r->name);
    a->version = strdup(r->version);
    a->max_runners = r->max_runners;
    a->last_seen_ms = r->last_seen_ms;
    struct node *live = nodes_find(l->m->nodes, r->key);
    bool online = live ? live->online : false;
    if (live) {
        a->last_seen_ms = live->last_seen_ms;
        a->running = live->online ? live->running : 0;
    }
    a->status = strdup(online ? "online" : "offline");
    if (!a->key || !a->name || !a->version || !a->status)
        return -ENOMEM;
    return 0;
}

static void on_list_nodes(struct srv_call *c, void *ctx, const ProtobufCMessage *req)
{
    struct master *m = ctx;
    struct node_list l = {.m = m};
    int rc = store_node_list(m->store, collect_node, &l);
    if (rc == 0 && l.n && !(l.ptrs = calloc(l.n, sizeof(*l.ptrs))))
        rc = -ENOMEM;
    if (rc < 0) {
        srv_call_fail(c, codec_status_from_errno(rc), "cannot list nodes");
    } else {
        for (size_t i = 0; i < l.n; i++)
            l.ptrs[i] = &l.items[i];
        Grpc__AdminListNodesResponse resp = GRPC__ADMIN_LIST_NODES_RESPONSE__INIT;
        resp.n_nodes = l.n;
        resp.nodes = l.ptrs;
        srv_call_reply(c, &resp.base);
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.items[i].key);
        free(l.items[i].name);
        free(l.items[i].version);
        free(l.items[i].status);
    }
    free(l.items);
    free(l.ptrs);
}

void admin_add_methods(struct master *m, struct rpc_server *s)
{
    rpc_server_add_unary(s, "/grpc.AdminService/ListNodes",
                         &grpc__admin_list_nodes_request__descriptor, on_list_nodes, m);
}

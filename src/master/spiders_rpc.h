/*
 * Spiders on the master: AdminService PushSpider, ListSpiders, RemoveSpider (admin role) and
 * SpiderService.Fetch (node role), over the archives in <data-dir>/spiders/<sha256>.tgz and the
 * versions in the store (docs/protocol.md, "Spiders").
 *
 * A push is written to <data-dir>/spiders/push-<random>.part while it arrives: its announced size
 * is checked against --spider-max-bytes before a byte is written, every chunk goes into a running
 * SHA-256, and only when the client has half-closed with exactly that many bytes, the hash is the
 * one announced and spider_check (spider/archive.h) accepts every entry and the bounds, is it
 * synced and renamed to its address and recorded as the next version of its name. Anything else
 * (a cut, a refusal) removes the .part file: nothing is stored. .part files left by a crash are
 * removed at start.
 *
 * Loop thread only. Blocks on the disk: writing chunks, and at the end of a push reading the
 * archive once more for spider_check (about as long as gunzip takes over it).
 */
#ifndef CRAWLAB_MASTER_SPIDERS_RPC_H
#define CRAWLAB_MASTER_SPIDERS_RPC_H

#include <stdint.h>

#include <ev.h>

#include "rpc/server.h"

struct group;
struct store;
struct spiders_rpc;

struct spiders_rpc_opts {
    const char *data_dir; /* copied */
    uint64_t max_bytes;   /* --spider-max-bytes */
    uint64_t max_files;   /* --spider-max-files */
};

/* Creates <data-dir>/spiders if needed and removes .part files left there. 0 or -errno. */
int spiders_rpc_create(struct ev_loop *loop, struct store *store, struct group *group,
                       const struct spiders_rpc_opts *opts, struct spiders_rpc **out);
/* After the server is gone (no call is left). NULL is accepted. */
void spiders_rpc_destroy(struct spiders_rpc *sp);
void spiders_rpc_add_methods(struct spiders_rpc *sp, struct rpc_server *s);

#endif

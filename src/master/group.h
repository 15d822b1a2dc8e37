/*
 * Group commit for the whole master: the store changes made while one loop iteration's events
 * are handled (task assignments, status reports, registrations, log lines, result items) go into
 * one store transaction, made durable with one fdatasync per log file and one database commit
 * just before the loop waits again -- or, when nobody waits for them yet (log lines streaming in
 * mid-segment), a little later, so that a stream of messages shares one sync. Replies given while
 * the group holds a change (store_changed) are held until then, so a reply never promises what a
 * crash could still take back, and a busy master pays one sync for many calls instead of one
 * each; replies given while it holds none go at once. Loop thread only.
 */
#ifndef CRAWLAB_GROUP_H
#define CRAWLAB_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

struct group;
struct metrics;
struct rpc_server;
struct store;

/* Told after each commit (ok) or rollback (!ok) of group number n. */
typedef void (*group_commit_fn)(void *ctx, uint64_t n, bool ok);

/* The group runs on loop over store. With a server (it may be NULL), every unary method of the
 * server joins the open group, and the replies given while it holds a change are held until it
 * is durable (rpc_server_set_hooks). */
int group_create(struct ev_loop *loop, struct store *store, struct rpc_server *server,
                 struct group **out);
/* The server is gone (shut down and destroyed): replies are no longer held or released. */
void group_server_gone(struct group *g);
/* Commits what is open, then frees. */
void group_destroy(struct group *g);
/* Opens a group if none is (joining an open one is free). 0 or -errno from the store. */
int group_join(struct group *g);
/* The number of the open group (or of the next one); numbers start at 1. */
uint64_t group_number(const struct group *g);
bool group_is_open(const struct group *g);
/* Whether a reply given now waits for the commit: the open group holds a change, the call's own
 * or another's that the call may have read. A call that finds it unchanged read only what is
 * durable, so its reply goes at once, and a commit that fails cannot turn it into a retry. */
bool group_holds_replies(const struct group *g);
/* Commits the open group now. */
void group_commit(struct group *g);
/* Someone waits for the open group: commit it before the loop waits again. Without a waiter
 * (nor a held reply) a group gathers changes for up to 50 ms. */
void group_want_commit(struct group *g);
/* The one listener told about every commit (set by whoever wires the ingest path to it). */
void group_on_commit(struct group *g, group_commit_fn fn, void *ctx);

/* Counts the commits, the failed ones and the time each took into m (which must outlive g). */
void group_set_metrics(struct group *g, struct metrics *m);

#endif

/*
 * What the unit tests of the master's services share (test_nodes.c, test_tasks.c): a store in a
 * fresh temporary directory, a libev loop of its own, a bounded way to run that loop until
 * something happened, and fake streams that stand in for a node's Subscribe call and a task's
 * cancel stream, recording what the service tells them. No gRPC server is involved.
 */
#ifndef CRAWLAB_TESTS_MASTER_FIXTURE_H
#define CRAWLAB_TESTS_MASTER_FIXTURE_H

#include <stdbool.h>

#include <ev.h>

#include "master/nodes.h"
#include "store/store.h"
#include "master/tasks.h"

struct fixture {
    struct ev_loop *loop;
    struct store *store;
    char dir[64]; /* the temporary directory holding the store */
};

extern struct fixture fx;

/* Check fixtures: fixture_open makes fx, fixture_close removes the store and its directory. */
void fixture_open(void);
void fixture_close(void);

/* Runs fx.loop until *done is true; fails the test when that takes more than 10 s of loop time,
 * which only a broken service would need: the timers the tests set fire every 50 to 100 ms. */
void fixture_run_until(const bool *done);

/* A node's stream: how many pushes of each kind arrived, and whether and why it was ended. */
struct fake_node_stream {
    int pushes[NODE_PUSH_DRAIN + 1];
    int task_pushes; /* tasks pushed with their spec; the last one's id and epoch: */
    char last_task[TASK_ID_LEN + 1];
    uint64_t last_epoch;
    int cancel_pushes; /* cancels pushed on it; the last one's task and force: */
    char last_cancel[TASK_ID_LEN + 1];
    bool last_cancel_force;
    bool ended;
    enum node_end end_why;
    /* Called on each push when set, e.g. to answer heartbeats as a worker would. */
    void (*on_push)(struct fake_node_stream *s, enum node_push what);
    void *ctx;
};

extern const struct node_stream_ops fixture_node_ops;

/* A new, zeroed fake, the handle to attach with fixture_node_ops. It outlives the test's
 * services, whose destruction ends the streams still attached. */
struct fake_node_stream *fixture_node_stream(void);

/* A task's stream: the cancels written to it, and whether and why it was ended. */
struct fake_task_stream {
    int cancels;
    bool last_force;
    bool ended;
    enum task_end end_why;
};

extern const struct task_stream_ops fixture_task_ops;

/* The same for a task's stream, attached with fixture_task_ops. */
struct fake_task_stream *fixture_task_stream(void);

#endif

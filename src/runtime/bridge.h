/*
 * The completion-queue bridge: gRPC completions delivered on the libev loop thread.
 *
 * A poller thread blocks in grpc_completion_queue_next() and hands every (tag, ok) pair to the loop
 * through a locked queue and ev_async_send(). The loop drains the whole queue per wakeup (libev
 * coalesces sends) and calls each tag's done callback, so every piece of application state and
 * every grpc_call_start_batch() stays on the loop thread.
 */
#ifndef CRAWLAB_BRIDGE_H
#define CRAWLAB_BRIDGE_H

#include <stdbool.h>

#include <ev.h>
#include <grpc/grpc.h>

/*
 * A completion tag. Embed it as the first member of whatever object waits for the completion; the
 * object must stay alive until done() has been called.
 */
struct rt_tag {
    void (*done)(struct rt_tag *tag, bool ok);
};

struct bridge;

/* Creates the completion queue and starts the poller thread. Loop thread only. */
int bridge_create(struct ev_loop *loop, struct bridge **out);

/* The loop the bridge delivers to. */
struct ev_loop *bridge_loop(struct bridge *b);

/* The queue to pass to gRPC for every batch and server registration. Owned by the bridge. */
grpc_completion_queue *bridge_cq(struct bridge *b);

/*
 * Shuts the queue down, joins the poller and delivers what was still queued. Call it only after
 * every gRPC object that uses the queue (server, calls) is gone; then frees the bridge.
 */
void bridge_destroy(struct bridge *b);

#endif

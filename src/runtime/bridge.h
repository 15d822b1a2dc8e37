/*
 * The completion-queue bridge: gRPC completions delivered on the libev loop thread.
 *
 * The polling threads block in grpc_completion_queue_next() and hand every (tag, ok) pair to the
 * loop through a locked, bounded queue and ev_async_send(). The loop calls each tag's done
 * callback, so every piece of application state and every grpc_call_start_batch() stays on the loop
 * thread.
 *
 * One thread polls the queue, and a second stands by. gRPC core does its socket reading and HTTP/2
 * parsing on the threads that poll the queue, and reads a socket for as long as it has bytes: a
 * peer that never lets its socket run dry (a flood of streams) holds the poller inside gRPC for
 * as long as it sends. The standby looks every BRIDGE_STANDBY_TICK_S: when the poller was busy on
 * the CPU for a quarter of a tick or more and queued nothing, the standby polls too, so completions
 * come out through it and the server still sees that peer's calls and can close its connection. It
 * does not poll otherwise: two threads polling all the time hand each completion over between
 * them, which cost the master about 15 % more CPU per call (a futex and a context switch).
 *
 * Bounds, so that a flood of calls can neither grow memory nor starve the loop:
 * - At most BRIDGE_QUEUE_MAX completions wait for the loop. When the queue is full the pollers
 *   wait until the loop has taken some, and while they wait gRPC takes in no more work from the
 *   network. They also wait, before they poll again, while the oldest completion has waited
 *   longer than BRIDGE_LAG_MAX_S: a loop that falls behind (starved of CPU, or busy) slows the
 *   intake down to its own pace instead of letting gRPC pile up calls it will not see for long.
 *   This cannot deadlock: the loop never waits for a poller (it only takes from the queue and
 *   wakes them), and bridge_destroy() keeps taking while it joins them.
 * - The loop handles at most BRIDGE_BATCH completions per wake-up. When more are queued it wakes
 *   itself again through the async watcher, so libev runs a full iteration in between: timers,
 *   signals, other I/O and prepare watchers (the master's group commit point) get their turn.
 */
#ifndef CRAWLAB_BRIDGE_H
#define CRAWLAB_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <grpc/grpc.h>

#define BRIDGE_QUEUE_MAX      4096
#define BRIDGE_BATCH          256
#define BRIDGE_STANDBY_TICK_S 0.02
#define BRIDGE_LAG_MAX_S      0.02

/*
 * A completion tag. Embed it as the first member of whatever object waits for the completion; the
 * object must stay alive until done() has been called.
 */
struct bridge_tag {
    void (*done)(struct bridge_tag *tag, bool ok);
};

struct bridge;

/* Creates the completion queue and starts the poller threads. Loop thread only. 0 or -errno. */
int bridge_create(struct ev_loop *loop, struct bridge **out);

/* The loop the bridge delivers to. */
struct ev_loop *bridge_loop(struct bridge *b);

/* The queue to pass to gRPC for every batch and server registration. Owned by the bridge. */
grpc_completion_queue *bridge_cq(struct bridge *b);

/*
 * Queues one completion for the loop exactly as a poller does: blocks while the queue is full, so
 * the loop thread may only call it while there is room (it would wait for itself). Tests use it
 * to fill the queue without gRPC.
 */
void bridge_post(struct bridge *b, struct bridge_tag *tag, bool ok);

/* Completions queued now, not yet taken by the loop. Any thread; for tests. */
size_t bridge_queued(struct bridge *b);

/*
 * Shuts the queue down, joins the pollers and delivers what was still queued. Call it only after
 * every gRPC object that uses the queue (server, calls) is gone; then frees the bridge. Loop
 * thread only.
 */
void bridge_destroy(struct bridge *b);

#endif

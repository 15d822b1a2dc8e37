#include "runtime/bridge.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "runtime/log.h"

struct completion {
    struct rt_tag *tag;
    bool ok;
};

struct bridge {
    struct ev_loop *loop;
    grpc_completion_queue *cq;
    ev_async wakeup;
    pthread_t poller;

    pthread_mutex_t lock;
    struct completion *items; /* guarded by lock */
    size_t len, cap;
    struct completion *spare; /* loop-thread buffer swapped with items on drain */
    size_t spare_cap;
};

static void *poll_queue(void *arg)
{
    struct bridge *b = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        pthread_mutex_lock(&b->lock);
        if (b->len == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 256;
            struct completion *items = realloc(b->items, cap * sizeof(*items));
            if (!items) {
                /* Losing a completion would leak or hang a call; there is no recovery. */
                log_error("out of memory in the completion bridge");
                abort();
            }
            b->items = items;
            b->cap = cap;
        }
        b->items[b->len++] = (struct completion){ev.tag, ev.success != 0};
        pthread_mutex_unlock(&b->lock);
        ev_async_send(b->loop, &b->wakeup);
    }
    return NULL;
}

/* Swaps the shared queue with the loop's spare buffer, so the lock is held only for the swap. */
static void drain(struct ev_loop *loop, ev_async *w, int revents)
{
    struct bridge *b = w->data;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        struct completion *items = b->items;
        size_t len = b->len, cap = b->cap;
        b->items = b->spare;
        b->cap = b->spare_cap;
        b->len = 0;
        pthread_mutex_unlock(&b->lock);
        if (len == 0) {
            b->spare = items;
            b->spare_cap = cap;
            return;
        }
        for (size_t i = 0; i < len; i++)
            items[i].tag->done(items[i].tag, items[i].ok);
        b->spare = items;
        b->spare_cap = cap;
    }
}

int bridge_create(struct ev_loop *loop, struct bridge **out)
{
    struct bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->loop = loop;
    b->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&b->lock, NULL);
    ev_async_init(&b->wakeup, drain);
    b->wakeup.data = b;
    ev_async_start(loop, &b->wakeup);
    /* The poller does not keep the loop alive by itself; active calls and timers do. */
    ev_unref(loop);
    int rc = pthread_create(&b->poller, NULL, poll_queue, b);
    if (rc != 0) {
        ev_ref(loop);
        ev_async_stop(loop, &b->wakeup);
        grpc_completion_queue_shutdown(b->cq);
        grpc_completion_queue_destroy(b->cq);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return -rc;
    }
    *out = b;
    return 0;
}

struct ev_loop *bridge_loop(struct bridge *b)
{
    return b->loop;
}

grpc_completion_queue *bridge_cq(struct bridge *b)
{
    return b->cq;
}

void bridge_destroy(struct bridge *b)
{
    if (!b)
        return;
    grpc_completion_queue_shutdown(b->cq);
    pthread_join(b->poller, NULL);
    drain(b->loop, &b->wakeup, 0);
    ev_ref(b->loop);
    ev_async_stop(b->loop, &b->wakeup);
    grpc_completion_queue_destroy(b->cq);
    pthread_mutex_destroy(&b->lock);
    free(b->items);
    free(b->spare);
    free(b);
}

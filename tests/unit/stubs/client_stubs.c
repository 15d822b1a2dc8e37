#include "client_stubs.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct client_stubs client_stubs;

/* Takes c out of the open calls; false when it was not open. */
static bool forget(struct rpc_call *c)
{
    for (int i = 0; i < client_stubs.n_open; i++) {
        if (client_stubs.open[i] == c) {
            client_stubs.n_open--;
            memmove(&client_stubs.open[i], &client_stubs.open[i + 1],
                    (size_t)(client_stubs.n_open - i) * sizeof(c));
            return true;
        }
    }
    return false;
}

void client_stubs_reset(void)
{
    for (int i = 0; i < client_stubs.n_open; i++)
        free(client_stubs.open[i]);
    memset(&client_stubs, 0, sizeof(client_stubs));
}

struct rpc_call *client_stubs_newest(void)
{
    return client_stubs.n_open ? client_stubs.open[client_stubs.n_open - 1] : NULL;
}

void client_stubs_sent(struct rpc_call *c, bool ok)
{
    ck_assert_msg(c && c->write_pending, "no write to complete");
    c->write_pending = false;
    c->h->on_sent(c, ok);
}

void client_stubs_status(struct rpc_call *c, grpc_status_code status, const char *details)
{
    ck_assert_msg(c && forget(c), "no such call to end");
    c->h->on_status(c, status, details);
}

struct rpc_call *rpc_call_start(struct bridge *br, grpc_channel *ch, const char *method,
                                const char *auth_key, uint64_t timeout_ms,
                                const struct rpc_call_handler *h, void *user)
{
    ck_assert_msg(client_stubs.n_open < CLIENT_STUBS_MAX_OPEN, "too many calls open");
    struct rpc_call *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->h = h;
    c->user = user;
    c->number = ++client_stubs.started;
    client_stubs.open[client_stubs.n_open++] = c;
    if (client_stubs.on_start)
        client_stubs.on_start(c, method);
    return c;
}

void *rpc_call_user(const struct rpc_call *c)
{
    return c->user;
}

int rpc_call_write(struct rpc_call *c, grpc_byte_buffer *msg)
{
    ck_assert_msg(!c->write_pending && !c->half_closed, "a write the call would refuse");
    c->write_pending = true;
    if (client_stubs.on_write)
        client_stubs.on_write(c, msg);
    else
        grpc_byte_buffer_destroy(msg);
    return 0;
}

int rpc_call_close_send(struct rpc_call *c)
{
    c->half_closed = true;
    return 0;
}

int rpc_call_read(struct rpc_call *c)
{
    return 0;
}

bool rpc_call_write_pending(const struct rpc_call *c)
{
    return c->write_pending;
}

void rpc_call_release(struct rpc_call *c)
{
    if (forget(c))
        client_stubs.cancelled++;
    free(c);
}

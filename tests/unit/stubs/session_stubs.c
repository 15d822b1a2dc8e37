#include "session_stubs.h"

#include <stdio.h>
#include <string.h>

#include "worker/session.h"

struct session_stubs session_stubs;

/* Stands for the data channel: an address nothing dereferences. */
static char data_channel;

void session_stubs_reset(void)
{
    memset(&session_stubs, 0, sizeof(session_stubs));
}

bool session_online(const struct session *s)
{
    return true;
}

grpc_channel *session_data_channel(const struct session *s)
{
    return (grpc_channel *)&data_channel;
}

bool session_data_ready(const struct session *s)
{
    return !session_stubs.data_down;
}

unsigned session_generation(const struct session *s)
{
    return 1;
}

struct bridge *session_bridge(const struct session *s)
{
    return NULL;
}

const char *session_auth_key(const struct session *s)
{
    return "key";
}

void session_connection_failed(struct session *s, unsigned generation, const char *why)
{
    session_stubs.connection_failures++;
    snprintf(session_stubs.last_failure, sizeof(session_stubs.last_failure), "%s", why);
}

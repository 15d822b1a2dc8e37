#include "core/task.h"

#include <errno.h>
#include <string.h>

static const char *const status_names[TASK_STATUS_COUNT] = {
    [TASK_PENDING] = "pending",   [TASK_ASSIGNED] = "assigned",
    [TASK_RUNNING] = "running",   [TASK_FINISHED] = "finished",
    [TASK_ERROR] = "error",       [TASK_CANCELLED] = "cancelled",
    [TASK_ABNORMAL] = "abnormal", [TASK_NODE_DISCONNECTED] = "node_disconnected",
};

/* One bit per allowed target status, indexed by the source status. Keeping the whole machine in
 * one table makes it easy to review against the drawing in docs/architecture.md. */
#define BIT(s) (1u << (s))
static const unsigned allowed_moves[TASK_STATUS_COUNT] = {
    [TASK_PENDING] = BIT(TASK_ASSIGNED) | BIT(TASK_CANCELLED),
    [TASK_ASSIGNED] = BIT(TASK_RUNNING) | BIT(TASK_FINISHED) | BIT(TASK_ERROR) |
                      BIT(TASK_CANCELLED) | BIT(TASK_PENDING) | BIT(TASK_NODE_DISCONNECTED),
    [TASK_RUNNING] =
        BIT(TASK_FINISHED) | BIT(TASK_ERROR) | BIT(TASK_CANCELLED) | BIT(TASK_NODE_DISCONNECTED),
    [TASK_NODE_DISCONNECTED] = BIT(TASK_RUNNING) | BIT(TASK_ABNORMAL) | BIT(TASK_FINISHED) |
                               BIT(TASK_ERROR) | BIT(TASK_CANCELLED) | BIT(TASK_PENDING),
    [TASK_FINISHED] = 0,
    [TASK_ERROR] = 0,
    [TASK_CANCELLED] = 0,
    [TASK_ABNORMAL] = 0,
};

static bool status_in_range(enum task_status s)
{
    return (unsigned)s < TASK_STATUS_COUNT;
}

const char *task_status_name(enum task_status s)
{
    return status_in_range(s) ? status_names[s] : "unknown";
}

int task_status_parse(const char *s, enum task_status *out)
{
    if (!s)
        return -EINVAL;
    for (unsigned i = 0; i < TASK_STATUS_COUNT; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (enum task_status)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool task_status_terminal(enum task_status s)
{
    return s == TASK_FINISHED || s == TASK_ERROR || s == TASK_CANCELLED || s == TASK_ABNORMAL;
}

bool task_transition_allowed(enum task_status from, enum task_status to)
{
    if (!status_in_range(from) || !status_in_range(to))
        return false;
    return (allowed_moves[from] & BIT(to)) != 0;
}

bool task_id_valid(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < TASK_ID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[TASK_ID_LEN] == '\0';
}

bool task_id_prefix_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n] && n <= TASK_ID_LEN; n++) {
        char c = s[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return n >= TASK_ID_PREFIX_MIN && n <= TASK_ID_LEN;
}

int task_seq_window(uint64_t stored, uint64_t first_seq, size_t n, size_t *skip)
{
    if (n == 0 || first_seq == 0) {
        *skip = 0;
        return 0;
    }
    /* first_seq - 1 is how many records precede the batch; comparing that (rather than
     * stored + 1) cannot overflow. */
    uint64_t before = first_seq - 1;
    if (before > stored)
        return -ERANGE;
    uint64_t already = stored - before;
    *skip = already < (uint64_t)n ? (size_t)already : n;
    return 0;
}

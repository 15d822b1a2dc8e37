/*
 * The load generator's shared state (bench/loadgen.c: options, phases, summary; bench/fleet.c:
 * the simulated workers). Everything runs on the one loop thread; nothing here blocks.
 */
#ifndef CRAWLAB_LOADGEN_H
#define CRAWLAB_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <grpc/grpc.h>

#include "core/limits.h"
#include "resilience/retry.h"
#include "rpc/client.h"
#include "runtime/bridge.h"
#include "runtime/hmap.h"

#define N_CODES (GRPC_STATUS_UNAUTHENTICATED + 1)

enum mode { MODE_FLEET, MODE_HEARTBEAT, MODE_DISPATCH, MODE_LOGS };
/* The misbehaving kinds first: their names are the words of --misbehave-kind. */
enum kind { KIND_IDLE, KIND_GARBAGE, KIND_RECONNECT, KIND_SILENT, KIND_GOOD };
/* Connecting the fleet; the timed window, then the drain of the work in hand; or the storm's
 * wait, then the hold: the storm is reported and the fleet stays up (for the master's view of it)
 * until a signal or --duration. */
enum phase { P_CONNECT, P_WINDOW, P_DRAIN, P_STORM, P_HOLD, P_DONE };

struct opts {
    char host[256];
    int port;
    char *auth_key;
    int workers, callers, connecting, master_pid, tasks;
    int first;          /* --first-worker: the number of worker 0 (its node key lg-N) */
    int mode, bad_kind; /* enum mode, enum kind */
    double duration, interval, rate, misbehave;
    bool storm;
    uint32_t bad_source; /* --misbehave-source: the first misbehaving worker's IPv4 address
                          * (host order), the next ones counting up; 0: the system's choice */
};

struct worker {
    enum kind kind;
    char key[32], name[40], machine_id[48];
    unsigned gen; /* bumped at every teardown: a completion of an older connection is ignored */
    bool in_setup, up, went_down, registered, hb_pending, fetching;
    double back_at; /* storm: when it was up again */
    struct retry_policy_state retry;
    ev_timer retry_timer, hb_timer, poll_timer, junk_timer;
    struct dial *dial;
    grpc_channel *ch;
    struct rpc_call *sub, *stream;
    /* The task in hand (dispatch, logs): one at a time. */
    char task[TASK_ID_LEN + 1];
    uint64_t epoch, seq;
    size_t seg_bytes;
    bool closing;
    /* idle and garbage: the raw socket */
    int fd;
    ev_io io;
    uint32_t source; /* IPv4 address its connections come from (host order); 0: any */
};

/* The well-behaved workers' figures. */
struct stats {
    uint64_t calls, errors[N_CODES], lost, failed_attempts;
    uint64_t pushes_hb, pushes_task, tasks, duplicates, abandoned, acked_bytes;
    uint32_t *lat; /* every call's latency in µs, in the window */
    size_t n_lat, cap_lat;
};

struct bad_stats {
    uint64_t connects, closed, junk_bytes, registers, refused;
};

struct proc_sample {
    bool ok;
    double cpu_s;
    long hwm_kib, rss_kib;
};

struct loadgen {
    struct opts o;
    struct ev_loop *loop;
    struct bridge *br;
    grpc_channel_credentials *creds;
    char target[300];
    struct worker *w;
    int n_good; /* workers [0, n_good) behave */
    enum phase phase;
    double t_start, t_end, t_last_ack, storm_fail_at, deadline, next_progress;
    int started, in_setup, online, busy, live_calls, down_seen;
    uint64_t rng, paced;
    int rr;
    struct stats st;
    struct bad_stats bad;
    struct hmap seen; /* task ids fetched, for duplicates */
    struct proc_sample m_base, m_start, m_end;
    ev_timer tick, pace;
    ev_signal sigint, sigterm;
};

extern struct loadgen lg;

/* loadgen.c */
void lg_die(const char *what) __attribute__((noreturn));
void *lg_calloc(size_t n, size_t size);
double lg_mono_s(void);
double lg_uniform(double max); /* uniform in [0, max] */

/* fleet.c */
int fleet_init(void); /* the workers and the log message; 0 or -ENOMEM */
void fleet_connect(struct worker *w);
/* What the mode adds to a worker that is up, once the window opens. */
void fleet_start_work(struct worker *w);
/* --rate: the pace timer's callback. */
void fleet_on_pace(struct ev_loop *loop, ev_timer *t, int revents);
/* Ends the worker's connection and its retries. */
void fleet_stop(struct worker *w);
void fleet_free(void);

#endif

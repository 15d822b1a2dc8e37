/*
 * Unit tests for worker/runner: real /bin/sh processes on libev's default
 * loop. No test sleeps; each runs the loop until on_exit fires (or, for
 * pause, until its own child watcher sees the shell exit).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "worker/contain.h"
#include "worker/runner.h"

#define MAX_LOGS 64

struct capture {
    char *log[MAX_LOGS];
    size_t log_len[MAX_LOGS];
    size_t n_logs;
    json_t *items; /* Every item received, in order. */
    int exits;
    struct runner_result result;
    /* Cancel as soon as a log line equal to this arrives (NULL: never). */
    const char *cancel_on;
    bool cancel_force;
    /* Pid of a process that escaped the group, to clean up after the test. */
    pid_t escaped;
};

static struct ev_loop *loop;

static void setup(void)
{
    loop = ev_default_loop(0);
    ck_assert_ptr_nonnull(loop);
    /*
     * Orphaned members of a task's group become our children, so the tests
     * can wait for them deterministically instead of racing init's reaping.
     */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

static void teardown(void)
{
    ev_loop_destroy(loop);
}

static void on_log(void *ctx, struct runner_proc *p, const char *line, size_t len)
{
    struct capture *c = ctx;
    ck_assert_uint_lt(c->n_logs, MAX_LOGS);
    ck_assert_ptr_null(memchr(line, '\n', len));
    c->log[c->n_logs] = malloc(len + 1);
    ck_assert_ptr_nonnull(c->log[c->n_logs]);
    memcpy(c->log[c->n_logs], line, len);
    c->log[c->n_logs][len] = '\0';
    c->log_len[c->n_logs] = len;
    c->n_logs++;
    if (c->cancel_on && len == strlen(c->cancel_on) && memcmp(line, c->cancel_on, len) == 0)
        runner_cancel(p, c->cancel_force);
    if (sscanf(c->log[c->n_logs - 1], "escaped %d", &c->escaped) == 1)
        ck_assert_int_gt(c->escaped, 0);
}

static void on_items(void *ctx, struct runner_proc *p, json_t *items)
{
    struct capture *c = ctx;
    if (!c->items)
        c->items = json_array();
    ck_assert_int_eq(json_array_extend(c->items, items), 0);
}

static void on_exit_cb(void *ctx, struct runner_proc *p, const struct runner_result *r)
{
    struct capture *c = ctx;
    c->exits++;
    c->result = *r;
    /* Freeing from inside on_exit is part of the contract. */
    runner_free(p);
}

static const struct runner_callbacks callbacks = {on_log, on_items, on_exit_cb};

static void capture_free(struct capture *c)
{
    for (size_t i = 0; i < c->n_logs; i++)
        free(c->log[i]);
    json_decref(c->items);
    if (c->escaped > 0)
        kill(c->escaped, SIGKILL);
}

/* Runs spec to its end; returns the shell's pid (its process group id). */
static pid_t run(const struct runner_spec *spec, struct capture *c)
{
    struct runner_proc *p = NULL;
    ck_assert_int_eq(runner_start(loop, spec, &callbacks, c, &p), 0);
    ck_assert_ptr_nonnull(p);
    pid_t pid = runner_pid(p);
    ck_assert_int_gt(pid, 0);
    while (c->exits == 0)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_int_eq(c->exits, 1);
    return pid;
}

static pid_t run_cmd(const char *cmd, struct capture *c)
{
    struct runner_spec spec = {.task_id = "t1", .node_key = "n1", .cmd = cmd};
    return run(&spec, c);
}

/* Index of the first log line equal to want, or -1. */
static int find_log(const struct capture *c, const char *want)
{
    for (size_t i = 0; i < c->n_logs; i++)
        if (strcmp(c->log[i], want) == 0)
            return (int)i;
    return -1;
}

/* Every member of the group has ended and been reaped: the group no longer exists. */
static void assert_group_gone(pid_t pgid)
{
    while (waitpid(-pgid, NULL, 0) > 0)
        ;
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(kill(-pgid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
}

START_TEST(test_lines_of_both_streams_arrive_in_order)
{
    struct capture c = {0};
    run_cmd("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done", &c);
    ck_assert_uint_eq(c.n_logs, 10);
    int last_out = -1, last_err = -1;
    for (int i = 1; i <= 5; i++) {
        char want[16];
        snprintf(want, sizeof(want), "out%d", i);
        int at = find_log(&c, want);
        ck_assert_int_gt(at, last_out);
        last_out = at;
        snprintf(want, sizeof(want), "err%d", i);
        at = find_log(&c, want);
        ck_assert_int_gt(at, last_err);
        last_err = at;
    }
    ck_assert_int_eq(c.result.how, RUNNER_END_EXITED);
    ck_assert_int_eq(c.result.code, 0);
    ck_assert(!c.result.cancelled);
    ck_assert(!c.result.timed_out);
    capture_free(&c);
}
END_TEST

START_TEST(test_param_is_appended_to_the_command)
{
    struct capture c = {0};
    struct runner_spec spec = {.task_id = "t1", .cmd = "echo", .param = "a  b"};
    run(&spec, &c);
    ck_assert_uint_eq(c.n_logs, 1);
    ck_assert_str_eq(c.log[0], "a b");
    capture_free(&c);
}
END_TEST

START_TEST(test_exit_code_is_reported)
{
    struct capture c = {0};
    run_cmd("exit 3", &c);
    ck_assert_int_eq(c.result.how, RUNNER_END_EXITED);
    ck_assert_int_eq(c.result.code, 3);
    capture_free(&c);
}
END_TEST

START_TEST(test_death_by_signal_is_reported)
{
    struct capture c = {0};
    run_cmd("kill -9 $$", &c);
    ck_assert_int_eq(c.result.how, RUNNER_END_SIGNALED);
    ck_assert_int_eq(c.result.code, SIGKILL);
    ck_assert(!c.result.cancelled);
    capture_free(&c);
}
END_TEST

START_TEST(test_three_mib_line_arrives_as_three_one_mib_pieces)
{
    const char *alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    const size_t mib = (size_t)1 << 20;
    struct capture c = {0};
    run_cmd("yes abcdefghijklmnopqrstuvwxyz0123456789 | tr -d '\\n' | head -c 3145728; echo", &c);
    ck_assert_uint_eq(c.n_logs, 3);
    char *want = malloc(3 * mib);
    ck_assert_ptr_nonnull(want);
    for (size_t k = 0; k < 3 * mib; k++)
        want[k] = alphabet[k % 36];
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(c.log_len[i], mib);
        ck_assert(memcmp(c.log[i], want + i * mib, mib) == 0);
    }
    free(want);
    capture_free(&c);
}
END_TEST

START_TEST(test_invalid_utf8_arrives_replaced)
{
    struct capture c = {0};
    run_cmd("printf 'a\\377b\\n'; printf 'c\\303\\n' >&2", &c);
    ck_assert_int_ge(find_log(&c, "a\xef\xbf\xbd"
                                  "b"),
                     0);
    ck_assert_int_ge(find_log(&c, "c\xef\xbf\xbd"), 0);
    capture_free(&c);
}
END_TEST

START_TEST(test_output_without_final_newline_is_delivered)
{
    struct capture c = {0};
    run_cmd("echo first; printf 'last'; exit 0", &c);
    ck_assert_uint_eq(c.n_logs, 2);
    ck_assert_str_eq(c.log[0], "first");
    ck_assert_str_eq(c.log[1], "last");
    capture_free(&c);
}
END_TEST

START_TEST(test_sdk_result_line_produces_items_not_a_log)
{
    struct capture c = {0};
    run_cmd("echo before; "
            "echo '{\"type\":\"data\",\"payload\":{\"title\":\"x\"},\"ipc\":true}'; "
            "echo '{\"type\":\"data\",\"payload\":[{\"n\":1},{\"n\":2}],\"ipc\":true}'; "
            "echo '{\"type\":\"data\",\"payload\":{\"n\":3},\"ipc\":true}' >&2",
            &c);
    ck_assert_ptr_nonnull(c.items);
    ck_assert_uint_eq(json_array_size(c.items), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(c.items, 0), "title")), "x");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(c.items, 2), "n")), 2);
    /* stderr is never parsed for results. */
    ck_assert_uint_eq(c.n_logs, 2);
    ck_assert_int_ge(find_log(&c, "before"), 0);
    ck_assert_int_ge(find_log(&c, "{\"type\":\"data\",\"payload\":{\"n\":3},\"ipc\":true}"), 0);
    capture_free(&c);
}
END_TEST

START_TEST(test_environment_has_task_identity_and_no_inherited_crawlab_names)
{
    ck_assert_int_eq(setenv("CRAWLAB_FOO", "leak", 1), 0);
    ck_assert_int_eq(setenv("RUNNER_TEST_OVERRIDE", "parent", 1), 0);
    const char *const env[] = {"TASK_VAR=v1", "RUNNER_TEST_OVERRIDE=task", NULL};
    struct runner_spec spec = {
        .task_id = "65f0c0ffee0000000000abcd",
        .node_key = "node-7",
        .cmd = "echo id=$CRAWLAB_TASK_ID key=$CRAWLAB_NODE_KEY foo=${CRAWLAB_FOO-unset} "
               "var=$TASK_VAR over=$RUNNER_TEST_OVERRIDE; env | grep -c '^RUNNER_TEST_OVERRIDE='",
        .env = env,
    };
    struct capture c = {0};
    run(&spec, &c);
    ck_assert_uint_eq(c.n_logs, 2);
    ck_assert_str_eq(c.log[0], "id=65f0c0ffee0000000000abcd key=node-7 foo=unset var=v1 over=task");
    ck_assert_str_eq(c.log[1], "1");
    capture_free(&c);
}
END_TEST

START_TEST(test_workdir_is_created_and_used)
{
    char base[] = "/tmp/runner-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(base));
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/a/b", base);
    struct runner_spec spec = {.task_id = "t1", .cmd = "pwd", .workdir = dir};
    struct capture c = {0};
    run(&spec, &c);
    ck_assert_uint_eq(c.n_logs, 1);
    ck_assert_str_eq(c.log[0], dir);
    capture_free(&c);
    ck_assert_int_eq(rmdir(dir), 0);
    snprintf(dir, sizeof(dir), "%s/a", base);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(rmdir(base), 0);
}
END_TEST

START_TEST(test_start_fails_without_spawning_when_workdir_is_impossible)
{
    struct runner_spec spec = {.task_id = "t1", .cmd = "true", .workdir = "/dev/null/sub"};
    struct runner_proc *p = (struct runner_proc *)1;
    int rc = runner_start(loop, &spec, &callbacks, NULL, &p);
    ck_assert_int_eq(rc, -ENOTDIR);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_start_rejects_malformed_env_entry)
{
    const char *const env[] = {"NO_EQUALS_SIGN", NULL};
    struct runner_spec spec = {.task_id = "t1", .cmd = "true", .env = env};
    struct runner_proc *p = (struct runner_proc *)1;
    ck_assert_int_eq(runner_start(loop, &spec, &callbacks, NULL, &p), -EINVAL);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_cancel_terminates_the_whole_process_group)
{
    struct capture c = {.cancel_on = "started"};
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "sleep 300 & sleep 300 & echo started; wait",
        .cancel_grace_ms = 100,
    };
    pid_t pgid = run(&spec, &c);
    ck_assert(c.result.cancelled);
    ck_assert(!c.result.timed_out);
    ck_assert_int_eq(c.result.how, RUNNER_END_SIGNALED);
    ck_assert_int_eq(c.result.code, SIGTERM);
    assert_group_gone(pgid);
    capture_free(&c);
}
END_TEST

START_TEST(test_cancel_escalates_to_sigkill_after_the_grace_period)
{
    /* SIGTERM is ignored by the shell and, through exec, by its sleep. */
    struct capture c = {.cancel_on = "started"};
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "trap '' TERM; sleep 300 & echo started; wait",
        .cancel_grace_ms = 100,
    };
    pid_t pgid = run(&spec, &c);
    ck_assert(c.result.cancelled);
    ck_assert_int_eq(c.result.how, RUNNER_END_SIGNALED);
    ck_assert_int_eq(c.result.code, SIGKILL);
    assert_group_gone(pgid);
    capture_free(&c);
}
END_TEST

START_TEST(test_force_cancel_kills_at_once)
{
    /* SIGTERM is ignored and the grace outlasts the test's timeout: only SIGKILL at once ends it.
     */
    struct capture c = {.cancel_on = "started", .cancel_force = true};
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "trap '' TERM; sleep 300 & echo started; wait",
        .cancel_grace_ms = 3600 * 1000,
    };
    pid_t pgid = run(&spec, &c);
    ck_assert(c.result.cancelled);
    ck_assert_int_eq(c.result.how, RUNNER_END_SIGNALED);
    ck_assert_int_eq(c.result.code, SIGKILL);
    assert_group_gone(pgid);
    capture_free(&c);
}
END_TEST

START_TEST(test_timeout_terminates_the_task)
{
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "sleep 30",
        .timeout_ms = 200,
        .cancel_grace_ms = 100,
    };
    struct capture c = {0};
    pid_t pgid = run(&spec, &c);
    ck_assert(c.result.timed_out);
    ck_assert(!c.result.cancelled);
    ck_assert_int_eq(c.result.how, RUNNER_END_SIGNALED);
    ck_assert_int_eq(c.result.code, SIGTERM);
    assert_group_gone(pgid);
    capture_free(&c);
}
END_TEST

START_TEST(test_background_process_holding_output_is_killed_after_eof_wait)
{
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "sleep 300 & echo bye; exit 4",
        .eof_wait_ms = 100,
    };
    struct capture c = {0};
    pid_t pgid = run(&spec, &c);
    ck_assert_int_eq(c.result.how, RUNNER_END_EXITED);
    ck_assert_int_eq(c.result.code, 4);
    ck_assert(!c.result.cancelled);
    ck_assert_uint_eq(c.n_logs, 1);
    ck_assert_str_eq(c.log[0], "bye");
    assert_group_gone(pgid);
    capture_free(&c);
}
END_TEST

START_TEST(test_process_escaping_the_group_does_not_hold_the_end_forever)
{
    /*
     * setsid puts the sleep out of reach of the group SIGKILL while it keeps
     * our stderr open. head returns once it printed the sleep's pid, so the
     * test can clean it up.
     */
    struct runner_spec spec = {
        .task_id = "t1",
        .cmd = "setsid -f sh -c 'echo escaped $$; exec sleep 300' | head -n 1; echo bye",
        .eof_wait_ms = 100,
    };
    struct capture c = {0};
    run(&spec, &c);
    ck_assert_int_eq(c.result.how, RUNNER_END_EXITED);
    ck_assert_int_eq(c.result.code, 0);
    ck_assert_int_gt(c.escaped, 0);
    ck_assert_int_ge(find_log(&c, "bye"), 0);
    capture_free(&c);
}
END_TEST

static void shell_exited(struct ev_loop *l, ev_child *w, int revents)
{
    ev_child_stop(l, w);
    *(bool *)w->data = true;
}

START_TEST(test_pause_stops_reading_until_resumed)
{
    struct capture c = {0};
    struct runner_spec spec = {.task_id = "t1", .cmd = "echo one; echo two", .eof_wait_ms = 1};
    struct runner_proc *p = NULL;
    ck_assert_int_eq(runner_start(loop, &spec, &callbacks, &c, &p), 0);
    runner_pause(p, true);

    /* Our own watcher on the same pid sees the shell end while nothing is read. */
    bool exited = false;
    ev_child w;
    ev_child_init(&w, shell_exited, runner_pid(p), 0);
    w.data = &exited;
    ev_child_start(loop, &w);
    while (!exited)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_uint_eq(c.n_logs, 0);
    ck_assert_int_eq(c.exits, 0);

    runner_pause(p, false);
    while (c.exits == 0)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_uint_eq(c.n_logs, 2);
    ck_assert_str_eq(c.log[0], "one");
    ck_assert_str_eq(c.log[1], "two");
    ck_assert_int_eq(c.result.code, 0);
    capture_free(&c);
}
END_TEST

#define CONTAINED_ID "6b10e1d40aeab438efc309e8"

/* Runs a contained task that prints its cgroup, then runs then; returns its cgroup v2 path
 * (malloc'd), or NULL when it printed none. */
static char *contained_task_cgroup_then(struct contain *cn, const char *task_id, const char *then)
{
    struct capture c = {0};
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "cat /proc/self/cgroup%s%s", *then ? "; " : "", then);
    struct runner_spec spec = {.task_id = task_id, .cmd = cmd, .contain = cn};
    run(&spec, &c);
    ck_assert_msg(c.result.how == RUNNER_END_EXITED && c.result.code == 0,
                  "task %s: how %d, code %d", task_id, (int)c.result.how, c.result.code);
    char *path = NULL;
    for (size_t i = 0; i < c.n_logs && !path; i++)
        if (strncmp(c.log[i], "0::/", 4) == 0)
            path = strdup(c.log[i] + 3);
    capture_free(&c);
    contain_kill(cn, task_id);
    contain_release(cn, task_id);
    return path;
}

static char *contained_task_cgroup(struct contain *cn, const char *task_id)
{
    return contained_task_cgroup_then(cn, task_id, "");
}

/* Whether path is a cgroup of its own right under the scope's directory. */
static bool in_a_task_cgroup(const char *path, const char *scope)
{
    const char *at = path ? strstr(path, scope) : NULL;
    return at && at[strlen(scope)] == '/' && at[strlen(scope) + 1] &&
           !strchr(at + strlen(scope) + 1, '/');
}

static struct contain *contain_for_test(char *scope, size_t len)
{
    snprintf(scope, len, "crawlab-node-unit-%d", (int)getpid());
    struct contain *cn = NULL;
    return contain_create(scope, CONTAIN_CGROUP, 0, &cn) < 0 ? NULL : cn;
}

/*
 * A contained task's shell is in its cgroup before the command runs, whether it was born there or
 * moved there; the cgroup is one contain_prepare gave it under the worker's. Returns early where
 * this machine gives no writable cgroup v2 tree (the integration tests say which mode ran).
 */
static void check_task_runs_in_its_cgroup(bool moved)
{
    char scope[64];
    struct contain *cn = contain_for_test(scope, sizeof(scope));
    if (!cn)
        return;
    runner_test_move_into_cgroup(moved);
    char *path = contained_task_cgroup(cn, CONTAINED_ID);
    runner_test_move_into_cgroup(false);
    ck_assert_msg(in_a_task_cgroup(path, scope), "the task's cgroup: %s", path ? path : "(none)");
    free(path);
    contain_destroy(cn);
}

/* Where the cgroup v2 tree is mounted, from /proc/self/mountinfo. */
static bool cgroup2_mount_point(char *out, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024], mnt[512];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        const char *sep = strstr(line, " - ");
        found = sep && strncmp(sep + 3, "cgroup2 ", 8) == 0 &&
                sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1;
    }
    if (f)
        fclose(f);
    if (found)
        snprintf(out, len, "%s", mnt);
    return found;
}

/* Waits (up to 10 s) until cgroup.events of the cgroup at mnt + path says no process is left in
 * it: the kernel wakes a poll for POLLPRI on every change. */
static bool wait_cgroup_empty(const char *mnt, const char *path)
{
    char file[1024], text[128];
    snprintf(file, sizeof(file), "%s%s/cgroup.events", mnt, path);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    /* A killed process left behind becomes our child (we are the subreaper, setup()) and stays in
     * its cgroup until reaped: every child is waited for, since no task runs now whose end this
     * could take from the runner. */
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    bool empty = false;
    for (int round = 0; round < 100 && !empty; round++) {
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        text[n > 0 ? n : 0] = '\0';
        empty = strstr(text, "populated 0") != NULL;
        struct pollfd pfd = {.fd = fd, .events = POLLPRI};
        if (!empty && poll(&pfd, 1, 10000) <= 0)
            break;
    }
    close(fd);
    return empty;
}

static void on_usr2(int sig)
{
    (void)sig;
}

/* A contained task's shell starts with no signal blocked, ignored or caught, while the worker
 * blocks one, ignores one and catches one: the child resets exactly what is not the default.
 * (sed, not grep, reads the result: GNU grep catches SIGSEGV itself.) */
START_TEST(test_a_contained_task_starts_with_every_signal_at_its_default)
{
    char scope[64];
    struct contain *cn = contain_for_test(scope, sizeof(scope));
    if (!cn)
        return;
    sigset_t usr1, old_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
    struct sigaction ign = {.sa_handler = SIG_IGN}, catch = {.sa_handler = on_usr2}, old_pipe,
                     old_usr2;
    ck_assert_int_eq(sigaction(SIGPIPE, &ign, &old_pipe), 0);
    ck_assert_int_eq(sigaction(SIGUSR2, &catch, &old_usr2), 0);

    struct capture c = {0};
    struct runner_spec spec = {.task_id = CONTAINED_ID,
                               .cmd = "exec sed -n '/^Sig[BIC][lga][knt]:/p' /proc/self/status",
                               .contain = cn};
    run(&spec, &c);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGUSR2, &old_usr2, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    ck_assert_int_eq(c.result.how, RUNNER_END_EXITED);
    ck_assert_int_eq(c.result.code, 0);
    ck_assert_int_ge(find_log(&c, "SigBlk:\t0000000000000000"), 0);
    ck_assert_int_ge(find_log(&c, "SigIgn:\t0000000000000000"), 0);
    ck_assert_int_ge(find_log(&c, "SigCgt:\t0000000000000000"), 0);
    capture_free(&c);
    contain_kill(cn, CONTAINED_ID);
    contain_release(cn, CONTAINED_ID);
    contain_destroy(cn);
}
END_TEST

START_TEST(test_contained_tasks_share_a_cgroup_only_once_nothing_is_left_in_it)
{
    char scope[64], mnt[512];
    struct contain *cn = contain_for_test(scope, sizeof(scope));
    if (!cn)
        return;
    ck_assert(cgroup2_mount_point(mnt, sizeof(mnt)));
    char *first = contained_task_cgroup(cn, CONTAINED_ID);
    ck_assert(in_a_task_cgroup(first, scope));
    /* Ended and emptied: the next task gets it. */
    char *second = contained_task_cgroup(cn, "6b10e1d40aeab438efc309e9");
    ck_assert_str_eq(second, first);

    /* A process still in it (one the kill has not reaped yet, here one put there) keeps it
     * from the next task, which gets another cgroup. */
    pid_t stray = fork();
    ck_assert_int_ge(stray, 0);
    if (stray == 0) {
        pause();
        _exit(0);
    }
    char procs[1024], num[24];
    snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", mnt, first);
    snprintf(num, sizeof(num), "%d", (int)stray);
    FILE *f = fopen(procs, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(num, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    char *third = contained_task_cgroup(cn, "6b10e1d40aeab438efc309ea");
    ck_assert(in_a_task_cgroup(third, scope));
    ck_assert_str_ne(third, first);
    kill(stray, SIGKILL);
    ck_assert_int_eq(waitpid(stray, NULL, 0), stray);

    /* Left: a fourth task gets one of the two. */
    char *fourth = contained_task_cgroup(cn, "6b10e1d40aeab438efc309eb");
    ck_assert(strcmp(fourth, first) == 0 || strcmp(fourth, third) == 0);
    free(first);
    free(second);
    free(third);
    free(fourth);
    contain_destroy(cn);
}
END_TEST

START_TEST(test_a_cgroup_that_had_to_be_killed_is_given_to_no_other_task)
{
    char scope[64], mnt[512];
    struct contain *cn = contain_for_test(scope, sizeof(scope));
    if (!cn)
        return;
    ck_assert(cgroup2_mount_point(mnt, sizeof(mnt)));
    /* A process left behind with its output closed: the task's end kills its cgroup. */
    char *first = contained_task_cgroup_then(cn, CONTAINED_ID, "sleep 60 >/dev/null 2>&1 &");
    ck_assert(in_a_task_cgroup(first, scope));
    ck_assert(wait_cgroup_empty(mnt, first)); /* so that only the kill tells it apart */
    /* The next task runs to its end (where a killed cgroup is reused, some kernels kill what is
     * cloned into it at birth) in a cgroup of its own. */
    char *second = contained_task_cgroup(cn, "6b10e1d40aeab438efc309e9");
    ck_assert(in_a_task_cgroup(second, scope));
    ck_assert_str_ne(second, first);
    free(first);
    free(second);
    contain_destroy(cn);
}
END_TEST

START_TEST(test_contained_task_is_born_in_its_cgroup)
{
    check_task_runs_in_its_cgroup(false);
}
END_TEST

START_TEST(test_contained_task_moved_into_its_cgroup_runs_there)
{
    check_task_runs_in_its_cgroup(true);
}
END_TEST

static Suite *runner_suite(void)
{
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("processes");
    tcase_add_checked_fixture(tc, setup, teardown);
    /* A guard against hangs only: every test ends in well under a second. */
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lines_of_both_streams_arrive_in_order);
    tcase_add_test(tc, test_param_is_appended_to_the_command);
    tcase_add_test(tc, test_exit_code_is_reported);
    tcase_add_test(tc, test_death_by_signal_is_reported);
    tcase_add_test(tc, test_three_mib_line_arrives_as_three_one_mib_pieces);
    tcase_add_test(tc, test_invalid_utf8_arrives_replaced);
    tcase_add_test(tc, test_output_without_final_newline_is_delivered);
    tcase_add_test(tc, test_sdk_result_line_produces_items_not_a_log);
    tcase_add_test(tc, test_environment_has_task_identity_and_no_inherited_crawlab_names);
    tcase_add_test(tc, test_workdir_is_created_and_used);
    tcase_add_test(tc, test_start_fails_without_spawning_when_workdir_is_impossible);
    tcase_add_test(tc, test_start_rejects_malformed_env_entry);
    tcase_add_test(tc, test_cancel_terminates_the_whole_process_group);
    tcase_add_test(tc, test_cancel_escalates_to_sigkill_after_the_grace_period);
    tcase_add_test(tc, test_force_cancel_kills_at_once);
    tcase_add_test(tc, test_timeout_terminates_the_task);
    tcase_add_test(tc, test_background_process_holding_output_is_killed_after_eof_wait);
    tcase_add_test(tc, test_process_escaping_the_group_does_not_hold_the_end_forever);
    tcase_add_test(tc, test_pause_stops_reading_until_resumed);
    tcase_add_test(tc, test_contained_task_is_born_in_its_cgroup);
    tcase_add_test(tc, test_contained_task_moved_into_its_cgroup_runs_there);
    tcase_add_test(tc, test_contained_tasks_share_a_cgroup_only_once_nothing_is_left_in_it);
    tcase_add_test(tc, test_a_contained_task_starts_with_every_signal_at_its_default);
    tcase_add_test(tc, test_a_cgroup_that_had_to_be_killed_is_given_to_no_other_task);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = runner_suite};

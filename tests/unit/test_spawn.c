/*
 * runtime/spawn.h: the shell a task or a hook runs in starts in a process group of its own, with
 * no signal blocked or ignored whatever the parent blocks or ignores, with the descriptors it was
 * given, and in the directory it was given.
 */
#include "check_main.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/spawn.h"

/* Everything the child wrote on fd r until it closed it, and its exit status. */
static int run(char *const argv[], const char *workdir, const int fds[4], int r, pid_t *pid,
               char *out, size_t cap)
{
    extern char **environ;
    ck_assert_int_eq(spawn_sh(argv, environ, workdir, fds, pid), 0);
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(r, out + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(r);
    int status;
    ck_assert_int_eq(waitpid(*pid, &status, 0), *pid);
    return status;
}

/* The shell reports its working directory, then the command it execs its process group and its
 * blocked and ignored signals (from /proc), on stdout; stdin is /dev/null (reads nothing); the
 * parent blocks SIGUSR1 and ignores SIGPIPE meanwhile, as the master and the worker do. */
START_TEST(test_the_shell_starts_clean_in_a_group_of_its_own)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    ck_assert_int_eq(sigprocmask(SIG_BLOCK, &usr1, &old), 0);
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    /* The shell's own mask changes while it waits for a child: what matters is what the command
     * it execs gets. */
    char *argv[] = {"sh", "-c",
                    "cat; pwd; exec grep -E '^(NSpgid|Sig(Blk|Ign)):' /proc/self/status", NULL};
    const int fds[4] = {SPAWN_DEVNULL, p[1], SPAWN_INHERIT, SPAWN_INHERIT};
    pid_t pid;
    char out[512];
    int status = run(argv, "/", fds, p[0], &pid, out, sizeof(out));
    signal(SIGPIPE, was);
    sigprocmask(SIG_SETMASK, &old, NULL);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char want[64];
    snprintf(want, sizeof(want), "/\nNSpgid:\t%d\nSigBlk:\t0000000000000000\nSigIgn:\t", (int)pid);
    ck_assert_int_eq(strncmp(out, want, strlen(want)), 0);
    /* Of the ignored ones, only the standard signals count: 32 and 33 are the C library's own,
     * which it keeps out of every signal set a program can name. */
    unsigned long long ign = strtoull(out + strlen(want), NULL, 16);
    ck_assert_uint_eq(ign & 0x7fffffffull, 0);
}
END_TEST

/* fd 3 is the one given; a descriptor the caller did not name as 0-3 is still what it was. */
START_TEST(test_the_shell_gets_the_descriptors_it_was_given)
{
    int p[2], q[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(pipe(q), 0);
    ck_assert_int_eq(write(q[1], "gate\n", 5), 5);
    close(q[1]);
    char *argv[] = {"sh", "-c", "read -r line <&3 && echo \"3:$line\" && echo err >&2", NULL};
    const int fds[4] = {SPAWN_DEVNULL, p[1], p[1], q[0]};
    pid_t pid;
    char out[128];
    int status = run(argv, NULL, fds, p[0], &pid, out, sizeof(out));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_str_eq(out, "3:gate\nerr\n");
}
END_TEST

START_TEST(test_a_missing_directory_is_an_error_not_a_shell)
{
    char *argv[] = {"sh", "-c", "true", NULL};
    const int fds[4] = {SPAWN_INHERIT, SPAWN_INHERIT, SPAWN_INHERIT, SPAWN_INHERIT};
    extern char **environ;
    pid_t pid = 0;
    int rc = spawn_sh(argv, environ, "/nonexistent/directory", fds, &pid);
    /* glibc reports the failed chdir from the child as the spawn's error. */
    ck_assert_int_eq(rc, -ENOENT);
}
END_TEST

static Suite *spawn_suite(void)
{
    Suite *s = suite_create("spawn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_the_shell_starts_clean_in_a_group_of_its_own);
    tcase_add_test(tc, test_the_shell_gets_the_descriptors_it_was_given);
    tcase_add_test(tc, test_a_missing_directory_is_an_error_not_a_shell);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = spawn_suite};

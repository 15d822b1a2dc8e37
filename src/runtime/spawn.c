#include "runtime/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

static int file_actions(posix_spawn_file_actions_t *fa, const char *workdir, const int fds[4])
{
    int rc = workdir ? posix_spawn_file_actions_addchdir_np(fa, workdir) : 0;
    for (int i = 0; i < 4 && !rc; i++) {
        if (fds[i] == SPAWN_DEVNULL)
            rc = posix_spawn_file_actions_addopen(fa, i, "/dev/null", O_RDONLY, 0);
        else if (fds[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(fa, fds[i], i);
    }
    return rc;
}

static int attributes(posix_spawnattr_t *attr)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    int rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (!rc)
        rc = posix_spawnattr_setpgroup(attr, 0);
    if (!rc)
        rc = posix_spawnattr_setsigmask(attr, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(attr, &all);
    return rc;
}

int spawn_sh(char *const argv[], char *const envp[], const char *workdir, const int fds[4],
             pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return -rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    rc = file_actions(&fa, workdir, fds);
    if (!rc)
        rc = attributes(&attr);
    if (!rc)
        rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

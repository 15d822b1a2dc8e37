/*
 * Starting `/bin/sh` for a command: the worker's task shells (worker/runner.c, when the shell
 * does not start inside a cgroup) and the master's event hooks (master/hooks.c). The child gets
 * a process group of its own (so the caller can signal the command and whatever it starts),
 * every signal at its default and none blocked (the parent's ignored SIGPIPE and blocked signals
 * do not pass on through exec), and the descriptors 0 to 3 the caller names.
 *
 * Any thread; blocks only until the child has exec'd (posix_spawn). Errors: 0 or a negative errno.
 */
#ifndef CRAWLAB_SPAWN_H
#define CRAWLAB_SPAWN_H

#include <sys/types.h>

#define SPAWN_INHERIT (-1) /* the descriptor is left as the parent has it */
#define SPAWN_DEVNULL (-2) /* /dev/null, read only */

/*
 * Starts /bin/sh with argv (argv[0] "sh", then "-c" and the script...) and envp, in workdir (NULL:
 * the caller's), with fds[i] (a descriptor of the caller, or SPAWN_INHERIT / SPAWN_DEVNULL) as
 * its descriptor i. *pid receives the child's pid.
 */
int spawn_sh(char *const argv[], char *const envp[], const char *workdir, const int fds[4],
             pid_t *pid);

#endif

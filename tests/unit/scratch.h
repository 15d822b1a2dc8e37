/*
 * Scratch directories for the unit tests (scratch.c): a fresh directory under /tmp for a test to
 * write in, and its removal with everything the test left in it.
 */
#ifndef CRAWLAB_TESTS_SCRATCH_H
#define CRAWLAB_TESTS_SCRATCH_H

#include <stddef.h>

/* Makes /tmp/crawlab-<what>-test-XXXXXX and writes its name to dir (size bytes); fails the test
 * when it cannot. */
void scratch_make(char *dir, size_t size, const char *what);

/* Removes dir and all below it, links not followed; what cannot be removed is left. */
void scratch_remove(const char *dir);

#endif

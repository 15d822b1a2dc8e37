#include "scratch.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

void scratch_make(char *dir, size_t size, const char *what)
{
    int n = snprintf(dir, size, "/tmp/crawlab-%s-test-XXXXXX", what);
    ck_assert_msg(n > 0 && (size_t)n < size, "no room for the scratch directory's name");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0; /* the walk goes on past what stays, so that the rest still goes */
}

void scratch_remove(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "check_main.h"
#include "rpc/auth.h"
#include "runtime/datadir.h"

/* One metadata entry; the slices are static, so nothing to free. */
static grpc_metadata_array one(const char *key, const char *value, grpc_metadata *slot)
{
    slot->key = grpc_slice_from_static_string(key);
    slot->value = grpc_slice_from_static_string(value);
    grpc_metadata_array a = {.count = 1, .capacity = 1, .metadata = slot};
    return a;
}

START_TEST(test_auth_accepts_exactly_the_key)
{
    grpc_metadata md;
    grpc_metadata_array a = one("authorization", "s3cret", &md);
    ck_assert(auth_metadata_ok(&a, "s3cret"));
}
END_TEST

START_TEST(test_auth_refuses_wrong_prefix_longer_shorter_and_missing)
{
    grpc_metadata md;
    grpc_metadata_array a = one("authorization", "s3cre", &md);
    ck_assert(!auth_metadata_ok(&a, "s3cret"));
    a = one("authorization", "s3cretX", &md);
    ck_assert(!auth_metadata_ok(&a, "s3cret"));
    a = one("authorization", "", &md);
    ck_assert(!auth_metadata_ok(&a, "s3cret"));
    a = one("authorization", "s3creT", &md);
    ck_assert(!auth_metadata_ok(&a, "s3cret"));
    a = one("x-other", "s3cret", &md);
    ck_assert(!auth_metadata_ok(&a, "s3cret"));
    grpc_metadata_array empty = {0};
    ck_assert(!auth_metadata_ok(&empty, "s3cret"));
}
END_TEST

START_TEST(test_generated_key_is_kept_private_and_reused)
{
    char dir[] = "/tmp/crawlab-auth-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *k1 = NULL, *k2 = NULL;
    bool created;
    ck_assert_int_eq(auth_key_ensure(dir, &k1, &created), 0);
    ck_assert(created);
    ck_assert_uint_eq(strlen(k1), 64);
    char path[512];
    snprintf(path, sizeof(path), "%s/auth.key", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(auth_key_ensure(dir, &k2, &created), 0);
    ck_assert(!created);
    ck_assert_str_eq(k1, k2);
    free(k1);
    free(k2);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_key_file_is_trimmed_and_empty_is_refused)
{
    char path[] = "/tmp/crawlab-key-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "  abc\n\n", 7), 7);
    close(fd);
    char *k = NULL;
    ck_assert_int_eq(auth_key_read_file(path, &k), 0);
    ck_assert_str_eq(k, "abc");
    free(k);
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, " \n", 2), 2);
    close(fd);
    ck_assert_int_eq(auth_key_read_file(path, &k), -ENODATA);
    ck_assert_str_eq(auth_key_file_error(-ENODATA), "file is empty");
    unlink(path);
    ck_assert_int_eq(auth_key_read_file(path, &k), -ENOENT);
}
END_TEST

/* What is left after trimming must be a key the flag would take: a newline or a space inside is
 * refused at once, not sent as metadata that no master can match. */
START_TEST(test_key_file_with_a_line_break_inside_is_refused)
{
    char path[] = "/tmp/crawlab-key-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "abc\ndef\n", 8), 8);
    close(fd);
    char *k = NULL;
    ck_assert_int_eq(auth_key_read_file(path, &k), -EINVAL);
    ck_assert_ptr_null(k);
    ck_assert_ptr_nonnull(strstr(auth_key_file_error(-EINVAL), "printable ASCII"));
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, "a b", 3), 3);
    close(fd);
    ck_assert_int_eq(auth_key_read_file(path, &k), -EINVAL);
    unlink(path);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, test_auth_accepts_exactly_the_key);
    tcase_add_test(tc, test_auth_refuses_wrong_prefix_longer_shorter_and_missing);
    tcase_add_test(tc, test_generated_key_is_kept_private_and_reused);
    tcase_add_test(tc, test_key_file_is_trimmed_and_empty_is_refused);
    tcase_add_test(tc, test_key_file_with_a_line_break_inside_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = auth_suite};

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
#include "core/roles.h"
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

START_TEST(test_auth_roles_tell_the_node_key_from_the_admin_key)
{
    grpc_metadata md;
    grpc_metadata_array a = one("authorization", "node-secret", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, "node-secret", "admin-secret"), ROLE_NODE);
    a = one("authorization", "admin-secret", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, "node-secret", "admin-secret"), ROLE_ADMIN);
    a = one("authorization", "admin-secre", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, "node-secret", "admin-secret"), 0);
    a = one("authorization", "", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, "node-secret", "admin-secret"), 0);
    a = one("x-other", "admin-secret", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, "node-secret", "admin-secret"), 0);
    /* A missing key matches nothing, not even an empty value. */
    a = one("authorization", "", &md);
    ck_assert_uint_eq(auth_metadata_roles(&a, NULL, NULL), 0);
    grpc_metadata_array empty = {0};
    ck_assert_uint_eq(auth_metadata_roles(&empty, "node-secret", "admin-secret"), 0);
}
END_TEST

/* Each of the master's two key files: generated once, 0600, reused, different from the other. */
START_TEST(test_generated_keys_are_kept_private_reused_and_distinct)
{
    char dir[] = "/tmp/crawlab-auth-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *names[] = {AUTH_NODE_KEY_FILE, AUTH_ADMIN_KEY_FILE};
    char *first[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        char *k1 = NULL, *k2 = NULL;
        bool created;
        ck_assert_int_eq(auth_key_ensure(dir, names[i], &k1, &created), 0);
        ck_assert(created);
        ck_assert_uint_eq(strlen(k1), 64);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        ck_assert_int_eq(auth_key_ensure(dir, names[i], &k2, &created), 0);
        ck_assert(!created);
        ck_assert_str_eq(k1, k2);
        first[i] = k1;
        free(k2);
    }
    ck_assert_str_ne(first[0], first[1]);
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
        free(first[i]);
    }
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
    tcase_add_test(tc, test_auth_roles_tell_the_node_key_from_the_admin_key);
    tcase_add_test(tc, test_generated_keys_are_kept_private_reused_and_distinct);
    tcase_add_test(tc, test_key_file_is_trimmed_and_empty_is_refused);
    tcase_add_test(tc, test_key_file_with_a_line_break_inside_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = auth_suite};

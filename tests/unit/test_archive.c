/*
 * Spider archives (spider/archive.h, spider/digest.h): a directory packed and unpacked comes back
 * the same; hostile archives, written here entry by entry with libarchive, are refused by the
 * check and by the unpack, and an unpack that refuses leaves nothing behind.
 */
#include "check_main.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "spider/archive.h"
#include "spider/digest.h"

static char tmp[64];
static const struct spider_bounds roomy = {.max_bytes = 1 << 20, .max_files = 100};

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test_archive.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
    spider_remove_tree(tmp);
}

static void put_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* One entry of a hand-made archive. */
struct entry {
    const char *path;
    mode_t type;
    const char *data;    /* a regular file's content */
    const char *symlink; /* a symbolic link's target */
    const char *hard;    /* a hard link's target */
};

static void write_archive(const char *out, const struct entry *e, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    ck_assert_int_eq(archive_write_open_filename(a, out), ARCHIVE_OK);
    struct archive_entry *ae = archive_entry_new();
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, e[i].path);
        archive_entry_set_filetype(ae, e[i].type);
        archive_entry_set_perm(ae, 0644);
        size_t len = e[i].data ? strlen(e[i].data) : 0;
        archive_entry_set_size(ae, (la_int64_t)len);
        if (e[i].symlink)
            archive_entry_set_symlink(ae, e[i].symlink);
        if (e[i].hard)
            archive_entry_set_hardlink(ae, e[i].hard);
        if (e[i].type == AE_IFCHR)
            archive_entry_set_rdev(ae, makedev(1, 3));
        ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
        if (len)
            ck_assert_int_eq(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
    }
    archive_entry_free(ae);
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

START_TEST(sha256_of_known_input)
{
    struct spider_hash *h = spider_hash_new();
    char hex[SPIDER_SHA256_HEX + 1];
    spider_hash_update(h, "abc", 3);
    spider_hash_final(h, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    spider_hash_final(h, hex); /* started over: the empty input */
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    spider_hash_free(h);
}
END_TEST

START_TEST(a_packed_directory_unpacks_and_copies_the_same)
{
    char src[256], arc[256], dest[256], copy[256], why[256], path[512];
    snprintf(src, sizeof(src), "%s/src", tmp);
    ck_assert_int_eq(mkdir(src, 0755), 0);
    put_file("src/main.py", "print('hi')\n");
    snprintf(path, sizeof(path), "%s/src/lib", tmp);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    put_file("src/lib/util.py", "X = 1\n");
    snprintf(path, sizeof(path), "%s/src/run.sh", tmp);
    put_file("src/run.sh", "#!/bin/sh\n");
    ck_assert_int_eq(chmod(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/src/lib/main", tmp);
    ck_assert_int_eq(symlink("../main.py", path), 0);

    snprintf(arc, sizeof(arc), "%s/s.tgz", tmp);
    ck_assert_int_eq(spider_pack(src, arc, why, sizeof(why)), 0);
    ck_assert_int_eq(spider_pack(src, arc, why, sizeof(why)), -EEXIST);
    struct spider_stats st;
    ck_assert_int_eq(spider_check(arc, &roomy, &st, why, sizeof(why)), 0);
    ck_assert_uint_eq(st.files, 5);
    ck_assert_uint_eq(st.bytes,
                      strlen("print('hi')\n") + strlen("X = 1\n") + strlen("#!/bin/sh\n"));

    snprintf(dest, sizeof(dest), "%s/dest", tmp);
    ck_assert_int_eq(spider_unpack(arc, dest, &roomy, why, sizeof(why)), 0);
    snprintf(copy, sizeof(copy), "%s/copy", tmp);
    ck_assert_int_eq(spider_copy_tree(dest, copy, why, sizeof(why)), 0);
    for (int i = 0; i < 2; i++) {
        const char *root = i ? copy : dest;
        snprintf(path, sizeof(path), "%s/lib/util.py", root);
        ck_assert_str_eq(read_text(path), "X = 1\n");
        snprintf(path, sizeof(path), "%s/lib/main", root); /* through the link */
        ck_assert_str_eq(read_text(path), "print('hi')\n");
        struct stat sb;
        snprintf(path, sizeof(path), "%s/run.sh", root);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_int_eq(sb.st_mode & 0777, 0755);
    }
    snprintf(path, sizeof(path), "%s.part", dest);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(a_special_file_is_not_packed)
{
    char src[256], arc[256], why[256];
    snprintf(src, sizeof(src), "%s/src", tmp);
    ck_assert_int_eq(mkdir(src, 0755), 0);
    char fifo[512];
    snprintf(fifo, sizeof(fifo), "%s/pipe", src);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(arc, sizeof(arc), "%s/s.tgz", tmp);
    ck_assert_int_eq(spider_pack(src, arc, why, sizeof(why)), -EPERM);
    ck_assert_ptr_nonnull(strstr(why, "pipe"));
    ck_assert_int_eq(access(arc, F_OK), -1);
}
END_TEST

/* The archive of entries is refused by the check and by the unpack with rc, and why names
 * `words`; the unpack leaves neither its destination nor its .part directory. */
static void refused(const struct entry *e, size_t n, const struct spider_bounds *b, int rc,
                    const char *words)
{
    char arc[256], dest[256], part[512], why[512];
    snprintf(arc, sizeof(arc), "%s/hostile.tgz", tmp);
    unlink(arc);
    write_archive(arc, e, n);
    struct spider_stats st;
    why[0] = '\0';
    ck_assert_int_eq(spider_check(arc, b, &st, why, sizeof(why)), rc);
    ck_assert_msg(strstr(why, words), "'%s' does not say '%s'", why, words);
    snprintf(dest, sizeof(dest), "%s/out", tmp);
    why[0] = '\0';
    ck_assert_int_eq(spider_unpack(arc, dest, b, why, sizeof(why)), rc);
    ck_assert_msg(strstr(why, words), "'%s' does not say '%s'", why, words);
    snprintf(part, sizeof(part), "%s.part", dest);
    ck_assert_int_eq(access(dest, F_OK), -1);
    ck_assert_int_eq(access(part, F_OK), -1);
}

START_TEST(an_absolute_path_is_refused)
{
    struct entry e[] = {{"ok.txt", AE_IFREG, "x"}, {"/tmp/evil", AE_IFREG, "x"}};
    refused(e, 2, &roomy, -EPERM, "'/tmp/evil' refused");
}
END_TEST

START_TEST(a_dotdot_path_is_refused)
{
    struct entry e[] = {{"a/../../evil", AE_IFREG, "x"}};
    refused(e, 1, &roomy, -EPERM, "'a/../../evil' refused");
}
END_TEST

START_TEST(a_symlink_out_of_the_tree_is_refused)
{
    struct entry e[] = {{"d", AE_IFDIR}, {"d/l", AE_IFLNK, NULL, "../../etc"}};
    refused(e, 2, &roomy, -EPERM, "symbolic link to '../../etc'");
    struct entry abs[] = {{"l", AE_IFLNK, NULL, "/etc/passwd"}};
    refused(abs, 1, &roomy, -EPERM, "symbolic link to '/etc/passwd'");
}
END_TEST

START_TEST(a_hard_link_out_of_the_tree_is_refused)
{
    struct entry e[] = {{"h", AE_IFREG, NULL, NULL, "/etc/passwd"}};
    refused(e, 1, &roomy, -EPERM, "hard link to '/etc/passwd'");
}
END_TEST

START_TEST(a_device_file_is_refused)
{
    struct entry e[] = {{"null", AE_IFCHR}};
    refused(e, 1, &roomy, -EPERM, "device file");
    struct entry fifo[] = {{"p", AE_IFIFO}};
    refused(fifo, 1, &roomy, -EPERM, "device file, FIFO or socket");
}
END_TEST

START_TEST(an_archive_over_a_bound_is_refused_naming_it)
{
    const struct spider_bounds small = {.max_bytes = 10, .max_files = 3};
    struct entry big[] = {{"a", AE_IFREG, "123456"}, {"b", AE_IFREG, "123456"}};
    refused(big, 2, &small, -EFBIG, "more than 10 bytes (the size bound)");
    struct entry many[] = {{"a", AE_IFREG}, {"b", AE_IFREG}, {"c", AE_IFREG}, {"d", AE_IFREG}};
    refused(many, 4, &small, -EFBIG, "more than 3 entries (the file bound)");
}
END_TEST

START_TEST(what_is_not_an_archive_is_refused)
{
    char arc[256], dest[256], why[256];
    snprintf(arc, sizeof(arc), "%s/junk", tmp);
    put_file("junk", "this is no tar at all, not even gzip'd; just words to fill a block\n");
    struct spider_stats st;
    ck_assert_int_eq(spider_check(arc, &roomy, &st, why, sizeof(why)), -EINVAL);
    snprintf(dest, sizeof(dest), "%s/out", tmp);
    ck_assert_int_eq(spider_unpack(arc, dest, &roomy, why, sizeof(why)), -EINVAL);
    ck_assert_int_eq(access(dest, F_OK), -1);
}
END_TEST

static Suite *archive_suite(void)
{
    Suite *s = suite_create("archive");
    TCase *tc = tcase_create("archive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sha256_of_known_input);
    tcase_add_test(tc, a_packed_directory_unpacks_and_copies_the_same);
    tcase_add_test(tc, a_special_file_is_not_packed);
    tcase_add_test(tc, an_absolute_path_is_refused);
    tcase_add_test(tc, a_dotdot_path_is_refused);
    tcase_add_test(tc, a_symlink_out_of_the_tree_is_refused);
    tcase_add_test(tc, a_hard_link_out_of_the_tree_is_refused);
    tcase_add_test(tc, a_device_file_is_refused);
    tcase_add_test(tc, an_archive_over_a_bound_is_refused_naming_it);
    tcase_add_test(tc, what_is_not_an_archive_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

const struct unit_tests unit_tests = {.suite = archive_suite};

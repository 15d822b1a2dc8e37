#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/conn.h"
#include "core/spider.h"
#include "spider/archive.h"
#include "spider/digest.h"
#include "services/admin_service.pb-c.h"

/* The archive being pushed, one message at a time. */
struct upload {
    const char *name;
    const char *sha256;
    uint64_t size, sent;
    int fd;
    bool header_sent;
    uint8_t *buf;
    Grpc__AdminPushSpiderRequest req;
};

static int next_message(void *ctx, ProtobufCMessage **out)
{
    struct upload *u = ctx;
    grpc__admin_push_spider_request__init(&u->req);
    if (!u->header_sent) {
        u->header_sent = true;
        u->req.name = (char *)u->name;
        u->req.sha256 = (char *)u->sha256;
        u->req.size = u->size;
        *out = &u->req.base;
        return 1;
    }
    if (u->sent == u->size)
        return 0;
    uint64_t left = u->size - u->sent;
    size_t want = left < LIMIT_SPIDER_CHUNK ? (size_t)left : LIMIT_SPIDER_CHUNK;
    ssize_t n = pread(u->fd, u->buf, want, (off_t)u->sent);
    if (n <= 0) {
        fprintf(stderr, "crawlab-node: cannot read the archive: %s\n",
                n < 0 ? strerror(errno) : "it got shorter");
        return -EIO;
    }
    u->req.data.data = u->buf;
    u->req.data.len = (size_t)n;
    u->sent += (uint64_t)n;
    *out = &u->req.base;
    return 1;
}

static void print_spider(const Grpc__AdminSpider *s)
{
    char created[32];
    cli_format_time(s->created_ms, created, sizeof(created));
    printf("name:      %s\nversion:   %u\nsha256:    %s\nsize:      %" PRIu64 " bytes\n"
           "files:     %" PRIu64 " entries, %" PRIu64 " bytes unpacked\ncreated:   %s\n",
           s->name, s->version, s->sha256, s->size, s->files, s->unpacked, created);
}

/* Packs DIR into a file of a new temporary directory (*tmpdir, removed by the caller). */
static int pack(const struct config *cfg, char *tmpdir, size_t len, char *path, size_t path_len)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, len, "%s/crawlab-spider.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "crawlab-node: cannot create a temporary directory: %s\n", strerror(errno));
        *tmpdir = '\0';
        return -errno;
    }
    snprintf(path, path_len, "%s/spider.tgz", tmpdir);
    char why[512];
    int rc = spider_pack(cfg->spider_dir, path, why, sizeof(why));
    if (rc < 0)
        fprintf(stderr, "crawlab-node: spider push: %s\n", why);
    return rc;
}

/* The archive's size and SHA-256. */
static int describe(int fd, uint64_t *size, char sha256[SPIDER_SHA256_HEX + 1])
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -errno;
    struct spider_hash *h = spider_hash_new();
    if (!h)
        return -ENOMEM;
    int rc = spider_hash_fd(h, fd, (uint64_t)sb.st_size);
    spider_hash_final(h, sha256);
    spider_hash_free(h);
    *size = (uint64_t)sb.st_size;
    return rc;
}

static int push(const struct config *cfg, struct cli_conn *c)
{
    char tmpdir[PATH_MAX - 32] = "", packed[PATH_MAX];
    const char *path = cfg->spider_archive;
    int status = 1;
    if (!path && pack(cfg, tmpdir, sizeof(tmpdir), packed, sizeof(packed)) < 0)
        goto out;
    path = path ? path : packed;
    char sha256[SPIDER_SHA256_HEX + 1];
    struct upload u = {.name = cfg->spider_ref, .sha256 = sha256, .fd = -1};
    int rc = -ENOMEM;
    if ((u.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
        (rc = describe(u.fd, &u.size, sha256)) < 0 || !(u.buf = malloc(LIMIT_SPIDER_CHUNK))) {
        fprintf(stderr, "crawlab-node: %s: %s\n", path, strerror(u.fd < 0 ? errno : -rc));
    } else {
        if (cfg->spider_sha256)
            u.sha256 = cfg->spider_sha256;
        ProtobufCMessage *m = NULL;
        grpc_status_code st = cli_conn_upload(c, "/grpc.AdminService/PushSpider", next_message, &u,
                                              &grpc__admin_list_spiders_response__descriptor, &m);
        status = st == GRPC_STATUS_CANCELLED ? 1 : cli_exit_status(st);
        if (st == GRPC_STATUS_OK) {
            const Grpc__AdminListSpidersResponse *r = (const void *)m;
            for (size_t i = 0; i < r->n_spiders; i++)
                print_spider(r->spiders[i]);
            protobuf_c_message_free_unpacked(m, NULL);
            status = 0;
        }
    }
    if (u.fd >= 0)
        close(u.fd);
    free(u.buf);
out:
    if (*tmpdir)
        spider_remove_tree(tmpdir);
    return status;
}

static int list(const struct config *cfg, struct cli_conn *c, const char *method, bool show)
{
    Grpc__AdminSpiderRequest req = GRPC__ADMIN_SPIDER_REQUEST__INIT;
    req.ref = cfg->spider_ref ? cfg->spider_ref : "";
    ProtobufCMessage *m = NULL;
    grpc_status_code st =
        cli_conn_unary(c, method, &req.base, &grpc__admin_list_spiders_response__descriptor, &m);
    if (st != GRPC_STATUS_OK)
        return cli_exit_status(st);
    const Grpc__AdminListSpidersResponse *r = (const void *)m;
    bool removing = strcmp(cfg->spider_action, "rm") == 0;
    if (show && r->n_spiders) {
        print_spider(r->spiders[r->n_spiders - 1]); /* the latest of the versions listed */
    } else if (!removing) {
        printf("%-24s %7s %12s %7s %-12s %s\n", "NAME", "VERSION", "SIZE", "FILES", "SHA256",
               "CREATED");
    }
    for (size_t i = 0; !show && i < r->n_spiders; i++) {
        const Grpc__AdminSpider *s = r->spiders[i];
        char created[32];
        cli_format_time(s->created_ms, created, sizeof(created));
        if (removing)
            printf("removed %s@%u\n", s->name, s->version);
        else
            printf("%-24s %7u %12" PRIu64 " %7" PRIu64 " %.12s %s\n", s->name, s->version, s->size,
                   s->files, s->sha256, created);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int cli_spider(const struct config *cfg, struct tls_client *tls, const char *auth_key)
{
    struct cli_conn c;
    if (cli_conn_open(&c, cfg, tls, auth_key) < 0)
        return 3;
    const char *action = cfg->spider_action;
    int status;
    if (strcmp(action, "push") == 0)
        status = push(cfg, &c);
    else if (strcmp(action, "rm") == 0)
        status = list(cfg, &c, "/grpc.AdminService/RemoveSpider", false);
    else
        status = list(cfg, &c, "/grpc.AdminService/ListSpiders", strcmp(action, "show") == 0);
    cli_conn_close(&c);
    return status;
}

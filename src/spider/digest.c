#include "spider/digest.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/sha256.h>

struct spider_hash {
    wc_Sha256 sha;
};

struct spider_hash *spider_hash_new(void)
{
    struct spider_hash *h = malloc(sizeof(*h));
    if (h && wc_InitSha256(&h->sha) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

void spider_hash_update(struct spider_hash *h, const void *data, size_t len)
{
    /* wc_Sha256Update takes a word32 length. */
    const unsigned char *p = data;
    while (len > 0) {
        word32 n = len > (1u << 30) ? (1u << 30) : (word32)len;
        wc_Sha256Update(&h->sha, p, n);
        p += n;
        len -= n;
    }
}

void spider_hash_final(struct spider_hash *h, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Final(&h->sha, d);
    for (size_t i = 0; i < sizeof(d); i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * sizeof(d)] = '\0';
}

void spider_hash_free(struct spider_hash *h)
{
    if (!h)
        return;
    wc_Sha256Free(&h->sha);
    free(h);
}

int spider_hash_fd(struct spider_hash *h, int fd, uint64_t len)
{
    unsigned char buf[1 << 16];
    uint64_t off = 0;
    while (off < len) {
        size_t want = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        spider_hash_update(h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    return 0;
}

/*
 * SHA-256 for spider archives, on wolfSSL's wolfCrypt (wc_Sha256*), the project's one crypto
 * library. A digest is written as SPIDER_SHA256_HEX lowercase hex digits (core/spider.h).
 *
 * Any thread; a spider_hash belongs to one thread at a time. spider_hash_file blocks on reading.
 */
#ifndef CRAWLAB_SPIDER_DIGEST_H
#define CRAWLAB_SPIDER_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/spider.h"

struct spider_hash;

/* A running hash, or NULL when out of memory. */
struct spider_hash *spider_hash_new(void);
void spider_hash_update(struct spider_hash *h, const void *data, size_t len);
/* Writes the digest of everything added (SPIDER_SHA256_HEX + 1 bytes with the NUL) and starts
 * the hash over. */
void spider_hash_final(struct spider_hash *h, char *hex);
void spider_hash_free(struct spider_hash *h);

/* Hashes the first `len` bytes of the open file fd (from offset 0) into h; 0, -EIO when the file
 * is shorter, -errno. */
int spider_hash_fd(struct spider_hash *h, int fd, uint64_t len);

#endif

/*
 * An intrusive hash map keyed by NUL-terminated strings. The caller embeds a struct hmap_entry in
 * its own struct, points entry.key at the key stored in that struct, and owns the memory; the map
 * only links entries. O(1) expected per operation; grows by doubling. Not thread-safe.
 */
#ifndef CRAWLAB_HMAP_H
#define CRAWLAB_HMAP_H

#include <stddef.h>

struct hmap_entry {
    struct hmap_entry *next;
    const char *key;
};

struct hmap {
    struct hmap_entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
};

int hmap_init(struct hmap *m);
/* Frees the bucket array; entries are the caller's. */
void hmap_destroy(struct hmap *m);
struct hmap_entry *hmap_get(const struct hmap *m, const char *key);
/* Links e (e->key set, not already present). 0 or -ENOMEM (then e is not linked). */
int hmap_put(struct hmap *m, struct hmap_entry *e);
/* Unlinks e, which must be linked. */
void hmap_remove(struct hmap *m, struct hmap_entry *e);

/* Iteration that tolerates removing the current entry. */
#define hmap_foreach(m, e, tmp)                                                                    \
    for (size_t hmap_i_ = 0; hmap_i_ < (m)->n_buckets; hmap_i_++)                                  \
        for ((e) = (m)->buckets[hmap_i_]; (e) && (((tmp) = (e)->next), 1); (e) = (tmp))

#define hmap_item(e, type, member) ((type *)((char *)(e)-offsetof(type, member)))

#endif

#include "runtime/hmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int hmap_init(struct hmap *m)
{
    m->n_buckets = 64;
    m->count = 0;
    m->buckets = calloc(m->n_buckets, sizeof(*m->buckets));
    return m->buckets ? 0 : -ENOMEM;
}

void hmap_destroy(struct hmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->n_buckets = m->count = 0;
}

struct hmap_entry *hmap_get(const struct hmap *m, const char *key)
{
    for (struct hmap_entry *e = m->buckets[hash(key) & (m->n_buckets - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int grow(struct hmap *m)
{
    size_t nb = m->n_buckets * 2;
    struct hmap_entry **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct hmap_entry *e = m->buckets[i];
        while (e) {
            struct hmap_entry *next = e->next;
            size_t j = hash(e->key) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return 0;
}

int hmap_put(struct hmap *m, struct hmap_entry *e)
{
    /* Growing is best effort: a full table still works, only with longer chains. */
    if (m->count >= m->n_buckets)
        grow(m);
    size_t i = hash(e->key) & (m->n_buckets - 1);
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->count++;
    return 0;
}

void hmap_remove(struct hmap *m, struct hmap_entry *e)
{
    struct hmap_entry **p = &m->buckets[hash(e->key) & (m->n_buckets - 1)];
    while (*p && *p != e)
        p = &(*p)->next;
    if (*p) {
        *p = e->next;
        m->count--;
    }
    e->next = NULL;
}

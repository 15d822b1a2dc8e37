/*
 * Growable arrays: an array of n elements in room for cap, grown by doubling when one more is
 * wanted, as the master's listings and the store's collections are built.
 */
#ifndef CRAWLAB_ARRAY_H
#define CRAWLAB_ARRAY_H

#include <stdint.h>
#include <stdlib.h>

/* Room for one more element: items holds n elements of size bytes in room for *cap. When it is
 * full the room doubles (an empty array gets room for first). Returns the array, moved or not,
 * with *cap its room now; NULL when memory runs out, the array and *cap then as they were. */
static inline void *array_grow(void *items, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return items;
    size_t room = *cap ? *cap * 2 : first;
    if (room <= n || room > SIZE_MAX / size)
        return NULL;
    void *grown = realloc(items, room * size);
    if (grown)
        *cap = room;
    return grown;
}

#endif

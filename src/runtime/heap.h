/*
 * The allocator's two thresholds, fixed once for a program that moves messages of megabytes.
 */
#ifndef CRAWLAB_RUNTIME_HEAP_H
#define CRAWLAB_RUNTIME_HEAP_H

#include <stddef.h>

/*
 * Serves blocks of up to `largest` bytes from the heap instead of from mappings of their own, and
 * lets the heap keep twice that much free at its top before it gives memory back. Call once,
 * before any other thread starts. An allocator that does not take these settings (a sanitizer's)
 * is left as it is: they change speed, never behaviour.
 */
void heap_keep_blocks(size_t largest);

#endif

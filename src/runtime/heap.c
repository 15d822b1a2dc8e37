/*
 * Why the thresholds are fixed: glibc serves a block of 128 KiB or more with a mapping of its own
 * until it sees such a block freed; then it raises that threshold to the freed block's size and
 * its trim threshold to twice that. A message of a few hundred KiB is decoded into two such blocks
 * (gRPC's flat copy and protobuf-c's copy of its bytes), so with the learned thresholds the heap
 * grows by them, shrinks with brk when they are freed, and faults the same pages in again, zeroed
 * one by one, for the next message. On a master taking logs, that was most of its CPU: 4.1 to
 * 4.8 ms per MB, and 1.1 to 1.7 ms with only the thresholds fixed (docs/benchmarks.md, "Log
 * ingestion: the heap kept"). Fixed at the largest message, the pages stay: at most twice that
 * much is kept free.
 */
#include "runtime/heap.h"

#include <malloc.h>

/* glibc refuses an mmap threshold above half of its largest heap (32 MiB on 64-bit). */
#define MMAP_THRESHOLD_MAX (32u << 20)

void heap_keep_blocks(size_t largest)
{
    size_t at = largest < MMAP_THRESHOLD_MAX ? largest + 1 : MMAP_THRESHOLD_MAX;
    /* Both: setting either stops the learning of both, and a trim threshold left alone would stay
     * at its 128 KiB default. mallopt returns 0 when a setting is not taken; nothing else to do. */
    (void)mallopt(M_MMAP_THRESHOLD, (int)at);
    (void)mallopt(M_TRIM_THRESHOLD, (int)(2 * at));
}

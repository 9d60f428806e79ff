/* The record of a size trace, written by bench/sizes/recorder.c and read by
 * bench/sizes/replay.c and bench/sizes/rss_replay.c: one per allocation
 * call, in call order (a free is logged before the memory goes back, an
 * allocation after it came). */
#ifndef SIZES_TRACE_H
#define SIZES_TRACE_H

#include <stdint.h>

enum {
    SIZES_MALLOC = 1,      /* ptr = malloc(size) */
    SIZES_CALLOC = 2,      /* ptr = calloc(..): size is the product */
    SIZES_REALLOC = 3,     /* ptr = realloc(old, size), both non-NULL */
    SIZES_ALIGNED = 4,     /* ptr = an aligned allocation of size; old is the alignment */
    SIZES_FREE = 5,        /* free(ptr) */
    SIZES_THREAD_EXIT = 6, /* the thread exits (its later records, if any,
                              are frees by other libraries' exit handlers) */
};

typedef struct sizes_record_s {
    uint32_t op;     /* SIZES_* */
    uint32_t thread; /* the calling thread: 0, 1, ... in the order the
                        process's threads first allocated (a child of fork
                        goes on with its parent's numbers); 0 in traces
                        recorded before threads were told apart */
    uint64_t size;   /* bytes requested */
    uint64_t ptr;    /* the block returned, or freed */
    uint64_t old;    /* realloc's old block; an aligned allocation's alignment */
} sizes_record_t;

#endif

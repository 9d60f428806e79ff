/* Where a hugeslab heap's bytes lie, walked from its SuperSlabs: the layout
 * behind a replay's peak (rss_layout, built from rss_replay.c with this
 * file and the library's objects). */
#ifndef SIZES_LAYOUT_H
#define SIZES_LAYOUT_H

#include <stdint.h>

/* The blocks the program holds, as the replay knows them: what it asked
 * for and what malloc_usable_size gives (their difference is the classes'
 * rounding). */
typedef struct layout_blocks_s {
    uint64_t count;
    uint64_t requested; /* bytes */
    uint64_t usable;    /* bytes */
} layout_blocks_t;

/* Walks every SuperSlab and run of this process's mappings and writes
 * `layout` lines to file descriptor fd (bench/sizes/layout.c says what each
 * figure is). It takes no memory from the heap it describes: each line is
 * formatted in a static buffer and written with write(2). It reads the
 * heaps' slab descriptors without their owners' locks: the caller's other
 * threads must not allocate meanwhile (the replay's wait for their turn),
 * and the purge thread's work in that moment can move a figure by a slab. */
void layout_print(int fd, const layout_blocks_t *blocks);

#endif

/* The registry's array (seg_chunk_map, described in segment.h): 64 MiB of
 * .bss of which a process writes a page or two. src/hugeslab.ld puts it
 * right after the start-up state (HS_START_STATE_LAST's seg_state last),
 * so that its first entry, which free(NULL) reads, lies on the start-up
 * state's page: on a kernel that gives a read fault of untouched anonymous
 * memory a page of its own, that read cost 4 KiB in every program that
 * frees NULL. Before every other zeroed variable of the library, which
 * then lie together after it. */
#include "segment/segment.h"

__attribute__((section(".bss.hs_registry"))) _Atomic uint8_t seg_chunk_map[SEG_MAP_ENTRIES];

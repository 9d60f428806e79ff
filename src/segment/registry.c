/* The registry's array (seg_chunk_map, described in segment.h), alone in
 * its file so that the build links it first: 64 MiB of .bss of which a
 * process writes a page or two, ahead of every other zeroed variable of
 * the library, which then lie together. Between them, it spread the few
 * hundred bytes each module writes at start-up over eight pages more than
 * they need. */
#include "segment/segment.h"

_Atomic uint8_t seg_chunk_map[SEG_MAP_ENTRIES];

/* The registry's array (seg_chunk_map, described in segment.h): 64 MiB of
 * zeroes of which a process writes a page or two. Alone in this file, so
 * that src/hugeslab.ld can put it in a read-only segment of its own, which
 * segment.c makes writable 64 KiB at a time (seg_registry_prepare): as
 * .bss it was private writable memory, charged in full to every process's
 * commit (vm.overcommit_memory=2) and counted in VmData. Page-aligned, for
 * mprotect and, in a static link, where it is .bss, for the read-only
 * mapping segment.c puts in its place before any of it is written. */
#include "segment/segment.h"

__attribute__((section(".bss.hs_registry"),
               aligned(4096))) _Atomic uint8_t seg_chunk_map[SEG_MAP_ENTRIES];

/* src/hugeslab.ld sets this name to the registry's segment, which a
 * symbol assignment of a link script does over a weak definition: the
 * shared library's is the registry itself, any other link's (the
 * archive, the tests linked with the objects) this byte. */
__attribute__((weak)) const char seg_registry_segment_mark[1];

/* Entry points under an older version, for programs linked against an older
 * libhugeslab.so.0: src/hugeslab.map names the versions and says how an old
 * program's references find these. Linked into the shared library only (the
 * Makefile leaves it out of the archive): a static link has no older program
 * to serve, and the versioned name would ask a shared library built with the
 * archive for a version node of its own. */
#include <stddef.h>
#include <string.h>

#include "common/common.h"
#include "hugeslab.h"

/* 0.1's hugeslab_stats_t ended where bytes_purged_at_once starts: a program
 * built against 0.1's header has room for that much and no more, and
 * hugeslab_stats@@HUGESLAB_0.2 writes the whole of today's struct. New fields
 * go at the end of the struct, so that 0.1's stay a prefix of it. */
#define HS_STATS_0_1_SIZE offsetof(hugeslab_stats_t, bytes_purged_at_once)
_Static_assert(HS_STATS_0_1_SIZE == 40 * sizeof(uint64_t), "0.1's fields moved");

/* Exported only as hugeslab_stats@HUGESLAB_0.1 (the map makes this name
 * local; the versioned alias keeps its default visibility). */
HS_SELDOM HS_EXPORT void hs_stats_0_1(void *out);
HS_SELDOM HS_EXPORT void hs_stats_0_1(void *out)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    memcpy(out, &s, HS_STATS_0_1_SIZE);
}
__asm__(".symver hs_stats_0_1, hugeslab_stats@HUGESLAB_0.1");

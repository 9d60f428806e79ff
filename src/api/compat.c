/* Entry points under an older version, for programs linked against an older
 * libhugeslab.so.0: src/hugeslab.map names the versions and says how an old
 * program's references find these. Linked into the shared library only (the
 * Makefile leaves it out of the archive): a static link has no older program
 * to serve, and the versioned name would ask a shared library built with the
 * archive for a version node of its own. */
#include <malloc.h>
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

/* glibc's other names for its allocator: __libc_malloc and the rest, which
 * glibc 2.36 exports at their default version, and cfree, a compatibility
 * symbol since 2.26 that binaries built before still call. Left to glibc,
 * a block of one allocator went to the other: free() of a __libc_malloc
 * block, or __libc_free() or cfree() of a malloc block, aborted with
 * glibc's "free(): invalid pointer". Unversioned, like the malloc family
 * (src/hugeslab.map), so that a reference to name@GLIBC_2.2.5 binds here.
 * Seldom text: few programs call these. Shared library only, as this file:
 * a static link has glibc's archive define them beside malloc.o's. */
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void cfree(void *ptr);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __libc_mallopt(int param, int value);
struct mallinfo __libc_mallinfo(void);

HS_SELDOM HS_EXPORT void *__libc_malloc(size_t size) { return hugeslab_malloc(size); }
HS_SELDOM HS_EXPORT void __libc_free(void *ptr) { hugeslab_free(ptr); }
HS_SELDOM HS_EXPORT void cfree(void *ptr) { hugeslab_free(ptr); }
HS_SELDOM HS_EXPORT void *__libc_calloc(size_t count, size_t size)
{
    return hugeslab_calloc(count, size);
}
HS_SELDOM HS_EXPORT void *__libc_realloc(void *ptr, size_t size)
{
    return hugeslab_realloc(ptr, size);
}
HS_SELDOM HS_EXPORT void *__libc_memalign(size_t alignment, size_t size)
{
    return hugeslab_memalign(alignment, size);
}
HS_SELDOM HS_EXPORT void *__libc_valloc(size_t size) { return hugeslab_valloc(size); }
HS_SELDOM HS_EXPORT void *__libc_pvalloc(size_t size) { return hugeslab_pvalloc(size); }
HS_SELDOM HS_EXPORT int __libc_mallopt(int param, int value)
{
    return hugeslab_mallopt(param, value);
}
HS_SELDOM HS_EXPORT struct mallinfo __libc_mallinfo(void) { return hugeslab_mallinfo(); }

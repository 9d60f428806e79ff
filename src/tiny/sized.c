/* sized.c: slabs of pages, for the classes from TINY_SIZED_CLASS_MIN on
 * (above 128 KiB) once the slabs hold TINY_MIDDLE_HEAP_BYTES past the small
 * heap (tiny_sized_heap).
 * - A slab of units holds its class's size in whole units: a 300 KiB block
 *   took a 320 KiB class, and the units a freed one left served only
 *   requests that fit them whole. A slab of pages holds one block of the
 *   request rounded up to a page (seg_pages_alloc: best fit at the page
 *   grain, among free units and the free pages other slabs of pages left
 *   in theirs).
 * - It never becomes a current slab or a class's spare (the next request
 *   of its class may be larger), waits on its owner's full list with the
 *   FULL bit set while its block is in use (another thread's free of the
 *   block comes to the owner as a notice), and when the block comes back
 *   becomes the heap's one sized spare (heap->sized_spare, off every list,
 *   its block free), which the next request it fits within a sixteenth
 *   takes whole; any other request, malloc_trim, the thread's exit, the
 *   eviction of its SuperSlab from kept_in and segment/'s last resort
 *   before a new SuperSlab send it back. Sent back at once, a malloc and
 *   free of a 200 KiB buffer in a loop took 480 ns a turn, the slab's
 *   SuperSlab falling idle and taken again each time (6 ns as a class
 *   slab, glibc 18). As an orphan it has no room, so it is never adopted:
 *   another thread's free of its block releases it (release_emptied_orphan
 *   in tiny.c). Freed by another thread while its owner sleeps, its notice
 *   waits for the owner's next refill or the purge thread's look
 *   (reclaim_noticed in tiny.c), a purge delay later.
 * - At most one slab starts in a unit (seg_pages_alloc), so its descriptor
 *   is the unit's where it starts, and that unit's head is its own: free
 *   finds the block from its first byte. The unit where it ends may be
 *   another slab's start, whose head that unit's is; so its head there is
 *   never written, by this slab or on its release (another slab may be
 *   writing it). A pointer into those pages that is not a block's start is
 *   an invalid one; an aligned block's inner pointers lie within 64 KiB of
 *   its start, in units whose heads are this slab's.
 * Never: reached by a heap on the small heap's base pages, whose slabs of
 *   one block are its own units (tiny.c, make_room_for_one_block). */
#include <errno.h>

#include "tiny/tiny_internal.h"

/* The units whose heads name the slab: every one it touches but the one
 * where it ends inside. */
HS_SELDOM static unsigned sized_head_units(const tiny_slab_t *slab, const seg_superslab_t *ss)
{
    size_t end = (size_t)(slab->start - (const char *)ss) + slab->block_size;
    return slab->units - (end % HS_UNIT_SIZE != 0);
}

/* The heap's sized spare s, whose block is free, handed out again for a
 * request of class cls (under the heap's busy flag). */
HS_SELDOM static void *sized_reuse(tiny_heap_t *heap, tiny_slab_t *s, unsigned cls)
{
    tiny_block_t *block = (tiny_block_t *)s->start;
    HS_ASSERT(s->free == block && s->used == 0 && !s->on_full);
    s->free = NULL;
    s->used = 1;
    block->free_mark = 0;
    s->cls = (uint8_t)cls;
    /* A block aligned inside it before: this one is its start (and may
     * grow in place, lone_slab_of). */
    atomic_store_explicit(&s->has_aligned, 0, memory_order_relaxed);
    atomic_store_explicit(tiny_remote_word(s), TINY_REMOTE_FULL, memory_order_relaxed);
    slab_list_push(&heap->full[cls], s);
    s->on_full = true;
    tiny_fresh_block = NULL;
    return block;
}

HS_SELDOM void *tiny_malloc_sized(tiny_heap_t *heap, unsigned cls, size_t size)
{
    if (seg_small_heap()) return NULL;
    /* Other threads' frees of such blocks come as notices: a heap that
     * allocates only these drains them here, or their slabs would stay. */
    if (atomic_load_explicit(&heap->delayed, memory_order_relaxed)) tiny_drain_delayed(heap);
    unsigned pages = (unsigned)((size + SEG_PAGE_SIZE - 1) / SEG_PAGE_SIZE), first_page;
    tiny_slab_t *spare = heap->sized_spare;
    if (spare) {
        heap->sized_spare = NULL;
        size_t have = spare->block_size, want = pages * SEG_PAGE_SIZE;
        if (have >= want && have - want <= want / 16) return sized_reuse(heap, spare, cls);
        /* Its pages may hold this one. */
        tiny_sized_release(spare);
    }
    bool fresh;
    int saved_errno = errno;
    seg_superslab_t *ss = seg_pages_alloc(heap->node, pages, &first_page, &fresh);
    if (!ss) {
        /* Out of memory: the class's refill tries again, and says so. */
        errno = saved_errno;
        return NULL;
    }
    char *start = (char *)ss + first_page * SEG_PAGE_SIZE;
    size_t bytes = pages * SEG_PAGE_SIZE;
    unsigned first = first_page / SEG_PAGES_PER_UNIT;
    unsigned last = (first_page + pages - 1) / SEG_PAGES_PER_UNIT;
    tiny_client_area_t *area = tiny_client_area(ss);
    tiny_slab_t *slab = &area->unit[first].slab;
    slab->units = (uint8_t)(last - first + 1);
    slab->first_unit = (uint8_t)first;
    slab->sized = 1;
    tiny_slab_setup(slab, heap, start, bytes, 1, cls);
    /* Its one block, handed out now: carved and in use. */
    atomic_store_explicit(&slab->carved, 1, memory_order_relaxed);
    atomic_store_explicit(&slab->key_limit, tiny_key_limit(1, slab->recip, bytes),
                          memory_order_relaxed);
    slab->used = 1;
    ((tiny_block_t *)start)->free_mark = 0;
    atomic_store_explicit(tiny_remote_word(slab), TINY_REMOTE_FULL, memory_order_relaxed);
    slab_list_push(&heap->full[cls], slab);
    slab->on_full = true;
    tiny_fresh_block = fresh ? start : NULL;
    /* Publish last, as slab_create does. */
    for (unsigned u = first, n = sized_head_units(slab, ss); u < first + n; u++)
        area->head[u] = slab;
    hs_count_add(&tiny_state.stat_bytes_in_slabs, (int64_t)bytes);
    return start;
}

HS_SELDOM void tiny_sized_release(tiny_slab_t *slab)
{
    seg_superslab_t *ss = seg_superslab_of(slab);
    tiny_client_area_t *area = tiny_client_area(ss);
    atomic_store_explicit(&slab->owner_word, 0, memory_order_relaxed);
    for (unsigned u = slab->first_unit, n = sized_head_units(slab, ss); u < slab->first_unit + n;
         u++)
        area->head[u] = &tiny_sentinel_slab;
    hs_count_add(&tiny_state.stat_bytes_in_slabs, -(int64_t)slab->block_size);
    seg_pages_free(ss, (unsigned)((size_t)(slab->start - (char *)ss) / SEG_PAGE_SIZE),
                   (unsigned)(slab->block_size / SEG_PAGE_SIZE));
}

HS_SELDOM void tiny_sized_emptied(tiny_heap_t *heap, tiny_slab_t *slab)
{
    uint32_t was = heap_enter(heap);
    HS_ASSERT(!slab->on_full && slab->used == 0);
    slab_list_remove(&heap->partial[slab->cls], slab);
    tiny_slab_t *before = heap->sized_spare;
    heap->sized_spare = slab;
    heap_leave(heap, was);
    /* An empty slab may still carry the FULL bit if it went empty through
     * the delayed list; nothing can be pushed on it any more (used == 0). */
    atomic_store_explicit(tiny_remote_word(slab), 0, memory_order_relaxed);
    if (before) tiny_sized_release(before);
}

HS_SELDOM bool tiny_sized_spare_release(tiny_heap_t *heap, const seg_superslab_t *ss)
{
    tiny_slab_t *spare = heap->sized_spare;
    if (!spare || (ss && seg_superslab_of(spare) != ss)) return false;
    heap->sized_spare = NULL;
    tiny_sized_release(spare);
    return true;
}

HS_SELDOM bool tiny_sized_grow(tiny_heap_t *heap, tiny_slab_t *s, size_t size)
{
    seg_superslab_t *ss = seg_superslab_of(s);
    unsigned pages = (unsigned)((size + SEG_PAGE_SIZE - 1) / SEG_PAGE_SIZE);
    unsigned had = (unsigned)(s->block_size / SEG_PAGE_SIZE);
    unsigned first_page = (unsigned)((size_t)(s->start - (char *)ss) / SEG_PAGE_SIZE);
    if (pages <= had || !seg_pages_extend(ss, first_page + had, pages - had)) return false;
    uint32_t was = heap_enter(heap);
    /* On its class's full list, as long as its block is in use. */
    unsigned cls = tiny_class_of(size), heads = sized_head_units(s, ss);
    slab_list_remove(&heap->full[s->cls], s);
    slab_list_push(&heap->full[cls], s);
    s->cls = (uint8_t)cls;
    size_t bytes = pages * SEG_PAGE_SIZE;
    s->block_size = (uint32_t)bytes;
    s->recip = tiny_block_recip(bytes);
    atomic_store_explicit(&s->key_limit, tiny_key_limit(1, s->recip, bytes), memory_order_relaxed);
    s->units = (uint8_t)((first_page + pages - 1) / SEG_PAGES_PER_UNIT + 1 - s->first_unit);
    /* The pages after the block were free: no slab starts in the unit where
     * it ended, whose head is now its own. */
    tiny_client_area_t *area = tiny_client_area(ss);
    for (unsigned u = s->first_unit + heads; u < s->first_unit + sized_head_units(s, ss); u++)
        area->head[u] = s;
    hs_count_add(&tiny_state.stat_bytes_in_slabs, (int64_t)(bytes - (size_t)had * SEG_PAGE_SIZE));
    heap_leave(heap, was);
    TINY_VALIDATE(s);
    return true;
}

/* validate.c: segment's invariants, checked where SuperSlabs change hands
 * in debug builds (SEG_VALIDATE) and by tests; what they check is written
 * at the structs they hold for (segment.h, segment_internal.h). Each broken
 * one is named, with the SuperSlab, before abort. */
#include "segment/segment_internal.h"

/* An invariant that does not hold: named, with the SuperSlab, then abort. */
#define SEG_CHECK(cond, ss)                                                                        \
    do {                                                                                           \
        if (HS_UNLIKELY(!(cond)))                                                                  \
            hs_fatal("invariant broken: %s, SuperSlab %p (%s:%d)", #cond, (const void *)(ss),      \
                     __FILE__, __LINE__);                                                          \
    } while (0)

HS_COLD HS_SELDOM void seg_superslab_validate(const seg_superslab_t *ss)
{
    SEG_CHECK(((uintptr_t)ss & HS_SUPERSLAB_MASK) == 0, ss);
    SEG_CHECK(ss->kind == SEG_CHUNK_SLABS || ss->kind == SEG_CHUNK_RUN, ss);
    SEG_CHECK(seg_chunk_kind(ss) == (seg_chunk_kind_t)ss->kind, ss);
    SEG_CHECK(ss->backing < THP_BACKING_COUNT, ss);
    SEG_CHECK(ss->node < HS_MAX_NODES && ss->memory_node < HS_MAX_NODES, ss);
    SEG_CHECK(ss->run_size >= HS_SUPERSLAB_SIZE && (ss->run_size & HS_SUPERSLAB_MASK) == 0, ss);
    if (ss->kind == SEG_CHUNK_SLABS) {
        SEG_CHECK(ss->run_size == HS_SUPERSLAB_SIZE, ss);
        SEG_CHECK((ss->free_units & ~SEG_ALL_UNITS_FREE) == 0, ss);
        /* On a partial list iff some units are free but not all: the one
         * of its longest run of free units. */
        SEG_CHECK((ss->on_partial != 0) ==
                      (ss->free_units != 0 && ss->free_units != SEG_ALL_UNITS_FREE),
                  ss);
        SEG_CHECK(!ss->on_partial || ss->on_partial == 1 + seg_partial_list_of(ss->free_units), ss);
        /* The page map names partly used units only (seg_page_map_t). */
        const seg_page_map_t *map = seg_page_map((seg_superslab_t *)ss);
        SEG_CHECK(map->free[0] == 0, ss);
        for (unsigned u = 1; u < HS_UNITS_PER_SUPERSLAB; u++)
            SEG_CHECK(map->free[u] != 0xff && (map->free[u] == 0 || !(ss->free_units >> u & 1)),
                      ss);
        return;
    }
    const char *base = (const char *)ss;
    SEG_CHECK(ss->run_block == NULL || ((const char *)ss->run_block >= base + SEG_HEADER_SIZE &&
                                        (const char *)ss->run_block < base + ss->run_size),
              ss);
    SEG_CHECK(ss->base_tail <= ss->run_size >> HS_SUPERSLAB_SHIFT, ss);
    uintptr_t chunk = (uintptr_t)ss >> HS_SUPERSLAB_SHIFT;
    for (uintptr_t c = 1; c < ss->run_size >> HS_SUPERSLAB_SHIFT; c++)
        SEG_CHECK(seg_kind_at(chunk + c) == SEG_CHUNK_TAIL, ss);
}

HS_COLD HS_SELDOM void seg_pool_validate(unsigned node)
{
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    for (unsigned k = 0; k < SEG_PARTIAL_LISTS; k++)
        for (const seg_superslab_t *ss = pool->partial[k]; ss; ss = ss->next) {
            seg_superslab_validate(ss);
            SEG_CHECK(ss->kind == SEG_CHUNK_SLABS && ss->node == node && ss->on_partial == 1 + k,
                      ss);
            SEG_CHECK(ss->next == NULL || ss->next->prev == ss, ss);
        }
    size_t idle = 0;
    for (const seg_superslab_t *ss = pool->idle; ss; ss = ss->next, idle++) {
        seg_superslab_validate(ss);
        SEG_CHECK(ss->kind == SEG_CHUNK_SLABS && ss->node == node, ss);
        SEG_CHECK(ss->free_units == SEG_ALL_UNITS_FREE && !ss->on_partial, ss);
        SEG_CHECK(ss->next == NULL || ss->next->prev == ss, ss);
        /* Newest first. */
        SEG_CHECK(ss->next == NULL || ss->next->idle_since_ms <= ss->idle_since_ms, ss);
    }
    SEG_CHECK(idle == pool->idle_count, pool->idle);
    const seg_purged_stack_t *stacks[2] = {&pool->lazy, &pool->released};
    for (unsigned k = 0; k < 2; k++) {
        const seg_purged_stack_t *st = stacks[k];
        SEG_CHECK(st->count <= st->cap, st->entries);
        for (size_t i = 0; i < st->count; i++) {
            uintptr_t entry = st->entries[i].bits;
            const void *base = seg_purged_unpack(entry, 0).ss;
            /* Known to no registry until revived; backing and node in the low bits. */
            SEG_CHECK(seg_chunk_kind(base) == SEG_CHUNK_NONE, base);
            SEG_CHECK((entry & 3) < THP_BACKING_COUNT &&
                          (entry & HS_SUPERSLAB_MASK) >> 2 < HS_MAX_NODES,
                      base);
            /* Oldest first: seg_take_lazy takes from the bottom. */
            SEG_CHECK(i == 0 || st->entries[i - 1].since_ms <= st->entries[i].since_ms, base);
        }
    }
    hs_unlock(&pool->lock);
}

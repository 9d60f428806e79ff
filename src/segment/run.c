/* run.c: runs, blocks too large for a slab, each in chunks of its own with
 * its header at the first chunk; freed ones wait in the run cache.
 * - A run's registry entries say SEG_CHUNK_RUN then SEG_CHUNK_TAIL, from
 *   its mapping to its unmapping, the cache included; run_remap clears them
 *   before the kernel moves the range.
 * - A THP run's chunks from base_tail on are hinted to base pages, and
 *   hold nothing past the block's end.
 * - A live THP run is on frontier.c's list, taken off before its owner
 *   frees or resizes it. */
#include <errno.h>
#include <string.h>

#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment_internal.h"

static size_t huge_threshold(void) { return (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB; }

static size_t run_block_offset(size_t align)
{
    return align <= SEG_HEADER_SIZE ? SEG_HEADER_SIZE : align;
}

/* Whether a cached run of run_size bytes serves a request of size bytes
 * as it is: up to a quarter more than needed is less waste than a fresh
 * mapping costs in faults. */
static bool run_fits(size_t run_size, size_t size)
{
    return run_size >= size && run_size - size <= size / 4;
}

static size_t size_distance(size_t a, size_t b) { return a > b ? a - b : b - a; }

/* The chunk of a run where its block ends often holds little of it: a
 * block of exactly 2, 4 or 8 MiB (PostgreSQL's largest memory-context
 * blocks) has 64 bytes there, after the header in front of it. As a huge
 * page that chunk is resident whole once the block's end is touched (a
 * filled 8 MiB block cost 10 MiB). So that chunk gets base pages when the
 * block holds few enough pages of it, a fault each, that the block still
 * costs at most 1.1 faults per chunk of its run: one page, and one more
 * for every ten chunks the block fills before it. Any more and it stays a
 * huge page, one fault. With "at most half of it" instead, blocks of 5-25
 * MiB (bench_memory large) took 22,983 faults instead of 480 for 8 % less
 * RSS, and a heap of 2.5 MiB blocks would have cost 130 faults a block.
 * MADV_POPULATE_WRITE makes such pages in one system call, but the kernel
 * counts each in the process's faults all the same (a 15.26 MiB block:
 * 331 where a huge page end took 8). */
static bool run_end_on_base_pages(size_t block_end, size_t end_chunk)
{
    size_t pages = (block_end - end_chunk + os_page_size() - 1) / os_page_size();
    return pages <= 1 + (end_chunk >> HS_SUPERSLAB_SHIFT) / 10;
}

/* Hints a THP run whose block now ends block_end bytes after its header:
 * from the chunk where the block ends (when run_end_on_base_pages; else
 * from the next) to the run's end, base pages; a range hinted so before and
 * no longer, huge pages again, made one huge page now where the block holds
 * base pages of it already (grown in place by realloc, a block would
 * otherwise fault the rest of that chunk in one page at a time). The run's
 * pages below resident_end may be resident (a cached run, a resized block):
 * past the block's end, in the range put on base pages, they go back now, a
 * huge page there included. That is none of the block's bytes, and what
 * the kernel would have faulted in whole for it. Seldom text, behind
 * run_hint_tail's look: a process comes here for blocks of MiBs only, and
 * the text every process runs has no room for it. */
HS_SELDOM HS_NOINLINE static void run_rehint_tail(seg_superslab_t *run, size_t block_end,
                                                  size_t resident_end, size_t from, uint32_t want)
{
    uint32_t had = run->base_tail;
    if (had) {
        size_t had_at = (size_t)(had - 1) << HS_SUPERSLAB_SHIFT;
        thp_allow_huge((char *)run + had_at, run->run_size - had_at);
        if (had_at < from && had_at < block_end &&
            os_resident_pages((char *)run + had_at, HS_SUPERSLAB_SIZE) > 0)
            thp_collapse((char *)run + had_at, HS_SUPERSLAB_SIZE);
    }
    run->base_tail = want;
    if (!want) return;
    thp_defer_huge((char *)run + from, run->run_size - from);
    size_t purge_from = hs_align_up(block_end, os_page_size());
    if (purge_from < from) purge_from = from;
    size_t purge_to = resident_end < run->run_size ? resident_end : run->run_size;
    if (purge_from < purge_to) seg_give_back_now((char *)run + purge_from, purge_to - purge_from);
}

static void run_hint_tail(seg_superslab_t *run, size_t block_end, size_t resident_end)
{
    if (run->backing != THP_BACKING_THP) return;
    size_t end_chunk = (block_end - 1) & ~HS_SUPERSLAB_MASK;
    size_t from =
        run_end_on_base_pages(block_end, end_chunk) ? end_chunk : end_chunk + HS_SUPERSLAB_SIZE;
    uint32_t want = from < run->run_size ? (uint32_t)(from >> HS_SUPERSLAB_SHIFT) + 1 : 0;
    if (run->base_tail != want) run_rehint_tail(run, block_end, resident_end, from, want);
}

/* A cached run's range on base pages holds only its last block's bytes:
 * they go back before the run serves again, with the page tables the
 * kernel then frees, so that where the new block fills that range it is a
 * huge page at its first touch, not 512 base-page faults. */
static void run_drop_base_tail(seg_superslab_t *run)
{
    size_t at = (size_t)(run->base_tail - 1) << HS_SUPERSLAB_SHIFT;
    /* Never from the run's first chunk: its header's page must stay, the
     * cache and the purge read the run's kind, size and backing there. A
     * run's block is larger than TINY_MAX_SIZE (1 MiB) or aligned to more
     * than 64 KiB (so it starts 128 KiB in at least): it never ends in the
     * first page, and no tail starts at chunk 0. frontier.c keeps the page
     * by hand. */
    HS_ASSERT(at > 0);
    seg_give_back_now((char *)run + at, run->run_size - at);
}

/* Resizes or moves a run's mapping to `total` bytes (a multiple of 2 MiB)
 * without copying; its registry entries and the mapping counts follow.
 * Returns the run's header where it now is, or NULL with the run as it was.
 * Seldom text, with seg_run_resize and thp_remap: only a heap of MiBs
 * resizes a run, and the text every process runs has no room for them. */
HS_SELDOM HS_NOINLINE static seg_superslab_t *run_remap(seg_superslab_t *run, size_t total)
{
    size_t old_total = run->run_size;
    thp_backing_t backing = (thp_backing_t)run->backing;
    unsigned node = run->node;
    /* The registry must never describe a range the kernel has moved: clear
     * it first, and describe whatever the result is afterwards. */
    seg_registry_clear(run, old_total);
    /* mremap grows only what is one mapping to the kernel, and a range
     * hinted apart is a mapping of its own: hinted back first, it merges
     * with the rest again (run_hint_tail hints the new end after). */
    if (run->base_tail) {
        size_t base_at = (size_t)(run->base_tail - 1) << HS_SUPERSLAB_SHIFT;
        thp_allow_huge((char *)run + base_at, old_total - base_at);
        /* Grown, the block now fills the chunk where it ended: with some of
         * its base pages resident, a huge page could no longer be faulted
         * in there, and filling the chunk would cost a fault per page (511
         * of the 513 faults of a filled 8 -> 12 MiB realloc). One huge page
         * made of them now instead. */
        if (total > old_total && os_resident_pages((char *)run + base_at, HS_SUPERSLAB_SIZE) > 0)
            thp_collapse((char *)run + base_at, HS_SUPERSLAB_SIZE);
        run->base_tail = 0;
    }
    seg_superslab_t *moved = thp_remap(run, old_total, total, backing, seg_registry_prepare);
    if (!moved) {
        seg_registry_set(run, old_total, SEG_CHUNK_RUN);
        return NULL;
    }
    seg_count_mapping(node, backing, (int64_t)total - (int64_t)old_total);
    /* Cut, its end went back with mremap. */
    if (total < old_total) seg_count_at_once(old_total - total);
    moved->run_size = total;
    seg_registry_set(moved, total, SEG_CHUNK_RUN);
    return moved;
}

/* A cached run on memory_node for a run of `size` bytes: the smallest that
 * fits as it is, else the one nearest in size that can be remapped (not
 * hugetlb), for the caller to cut or grow. */
static seg_superslab_t *run_cache_take(size_t size, unsigned memory_node)
{
    seg_superslab_t *best = NULL, *nearest = NULL;
    hs_lock(&seg_state.run_cache_lock);
    for (seg_superslab_t *r = seg_state.run_cache; r; r = r->next) {
        if (r->memory_node != memory_node) continue;
        if (run_fits(r->run_size, size) && (!best || r->run_size < best->run_size)) best = r;
        if (r->backing != THP_BACKING_HUGETLB &&
            (!nearest || size_distance(r->run_size, size) < size_distance(nearest->run_size, size)))
            nearest = r;
    }
    if (!best) best = nearest;
    if (best) {
        seg_run_cache_remove(best);
    }
    hs_unlock(&seg_state.run_cache_lock);
    return best;
}

/* The header of a run of one chunk at ss, a SuperSlab's chunk that the
 * pool gives up. */
static void run_header(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node,
                       unsigned node)
{
    seg_chunk_header(ss, HS_SUPERSLAB_SIZE, SEG_CHUNK_RUN, backing, memory_node, node);
}

/* Whether a SuperSlab's chunk may become a run: a huge page (or hugetlb),
 * not base pages (a sparse huge page given up, the small heap's), where a
 * block of 2 MiB would cost 512 faults. */
static bool run_backing_ok(const seg_superslab_t *ss)
{
    return ss->backing != THP_BACKING_BASE && !seg_small_heap_holds(ss);
}

/* An idle SuperSlab of `node`'s pool on memory_node, made a run of one
 * chunk; NULL when there is none. Its pages may be resident, a huge page
 * that a fresh mapping would add to RSS: sqlite3 (1 M rows) emptied a
 * SuperSlab of its self-join's 12-14 KiB blocks and then grew a block by
 * realloc past 1 MiB, which mapped a run beside it. */
static seg_superslab_t *run_from_idle_superslab(unsigned node, unsigned memory_node)
{
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    seg_superslab_t *ss = pool->idle;
    if (ss && (ss->memory_node != memory_node || !run_backing_ok(ss))) ss = NULL;
    if (ss) seg_idle_unlink(pool, ss);
    hs_unlock(&pool->lock);
    if (ss) run_header(ss, (thp_backing_t)ss->backing, memory_node, node);
    return ss;
}

void *seg_run_alloc(size_t size, size_t align, unsigned node, bool *fresh)
{
    size_t offset = run_block_offset(align);
    if (size > SIZE_MAX / 2 - offset - HS_SUPERSLAB_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    /* Every block has at least 16 bytes: a zero-byte block at an offset of
     * 2 MiB or more would otherwise start past the end of its run. */
    size_t total = hs_align_up(offset + (size < 16 ? 16 : size), HS_SUPERSLAB_SIZE);
    size_t map_align = align > HS_SUPERSLAB_SIZE ? align : HS_SUPERSLAB_SIZE;
    seg_superslab_t *run = NULL;
    size_t resident_end = 0; /* how much of the run may hold pages already */
    *fresh = false;
    /* A cached run that could not be resized (thp_remap's ENOMEM) is
     * unmapped and a fresh run mapped, and the block handed out: errno as
     * it was before both (seg_map_superslabs puts back only what it found,
     * the remap's ENOMEM). */
    int saved_errno = errno;
    if (map_align == HS_SUPERSLAB_SIZE && total < huge_threshold()) {
        run = run_cache_take(total, numa_node_for_reuse(node));
        if (run) resident_end = run->run_size;
        if (run && run->base_tail) run_drop_base_tail(run);
        /* A cached run of another size is cut or grown to fit: its pages are
         * kept (no faults for them), and a program that frees one size and
         * asks for another does not grow by a cached run each time. */
        if (run && !run_fits(run->run_size, total)) {
            seg_superslab_t *fitted = run_remap(run, total);
            if (!fitted) seg_unmap_idle(run, run->run_size, (thp_backing_t)run->backing);
            run = fitted;
        }
    }
    if (!run && map_align == HS_SUPERSLAB_SIZE && total == HS_SUPERSLAB_SIZE) {
        run = run_from_idle_superslab(node, numa_node_for_reuse(node));
        if (run) resident_end = run->run_size;
    }
    if (!run) {
        resident_end = 0;
        run = seg_map_superslabs(total, map_align, SEG_CHUNK_RUN, node);
        if (!run) return NULL;
        *fresh = true;
    }
    run_hint_tail(run, offset + (size < 16 ? 16 : size), resident_end);
    run->run_block = (char *)run + offset;
    hs_count_add(&seg_state.stat_run_bytes_live, (int64_t)run->run_size);
    if (run->run_size >= huge_threshold()) hs_count_add(&seg_state.stat_huge_blocks, 1);
    if (run->backing == THP_BACKING_THP) seg_frontier_list(run);
    errno = saved_errno;
    return run->run_block;
}

bool seg_lone_slab_claim(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    seg_pool_t *pool = seg_pool(ss->node);
    uint64_t bits = seg_unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    bool lone = (ss->free_units | bits) == SEG_ALL_UNITS_FREE &&
                ss->units_purged != SEG_UNITS_PURGING && run_backing_ok(ss);
    if (lone) {
        /* In no list and with no free unit, nobody cuts a slab in it. */
        seg_partial_unlink(pool, ss);
        ss->free_units = 0;
    }
    hs_unlock(&pool->lock);
    return lone;
}

void *seg_lone_slab_to_run(seg_superslab_t *ss, const void *block, size_t bytes, size_t size)
{
    HS_ASSERT(size <= HS_SUPERSLAB_SIZE - SEG_HEADER_SIZE && bytes <= size);
    /* The header is written first: the block lies past the slab table. */
    run_header(ss, (thp_backing_t)ss->backing, ss->memory_node, ss->node);
    char *to = (char *)ss + SEG_HEADER_SIZE;
    memmove(to, block, bytes);
    run_hint_tail(ss, SEG_HEADER_SIZE + size, HS_SUPERSLAB_SIZE);
    ss->run_block = to;
    hs_count_add(&seg_state.stat_run_bytes_live, (int64_t)ss->run_size);
    if (ss->backing == THP_BACKING_THP) seg_frontier_list(ss);
    return to;
}

seg_superslab_t *seg_run_of(const void *p)
{
    uintptr_t chunk = (uintptr_t)p >> HS_SUPERSLAB_SHIFT;
    if (chunk >= SEG_MAP_ENTRIES) return NULL;
    while (seg_kind_at(chunk) == SEG_CHUNK_TAIL) chunk--;
    if (seg_kind_at(chunk) != SEG_CHUNK_RUN) return NULL;
    return (seg_superslab_t *)(chunk << HS_SUPERSLAB_SHIFT);
}

void seg_run_free(seg_superslab_t *run)
{
    size_t size = run->run_size;
    if (run->frontier_listed)
        seg_frontier_unlist(run,
                            size >= huge_threshold() ? SEG_FRONTIER_UNMAPPED : SEG_FRONTIER_CACHED);
    hs_count_add(&seg_state.stat_run_bytes_live, -(int64_t)size);
    run->run_block = NULL;
    if (size >= huge_threshold()) {
        /* A mapping of its own: returned at once. This is the one munmap a
         * program thread makes, as for any allocator's huge blocks. */
        hs_count_add(&seg_state.stat_huge_blocks, -1);
        seg_count_at_once(size);
        seg_unmap_idle(run, size, (thp_backing_t)run->backing);
        return;
    }
    run->idle_since_ms = seg_now_ms();
    hs_lock(&seg_state.run_cache_lock);
    list_push(&seg_state.run_cache, run);
    seg_state.run_cache_bytes += size;
    hs_unlock(&seg_state.run_cache_lock);
    /* A run beyond the cache limit goes at once. */
    purge_notify(seg_idle_due_in_ms() == PURGE_LATER ? PURGE_LATER : PURGE_NOW);
}

/* seg_run_block_resized for the run itself: seg_run_resize's block that
 * stays where it is takes the same way. */
HS_SELDOM static void run_block_resized(seg_superslab_t *run, size_t new_size)
{
    if (!run->base_tail) return;
    size_t offset = (size_t)((char *)run->run_block - (char *)run);
    size_t block_end = offset + (new_size < 16 ? 16 : new_size);
    HS_ASSERT(block_end <= run->run_size);
    /* Only a block that reaches into the range on base pages: one that
     * shrank leaves the hints as they are, so that a block going back and
     * forth across a chunk's start costs one collapse, not a collapse and
     * a split each time. */
    if (block_end <= (size_t)(run->base_tail - 1) << HS_SUPERSLAB_SHIFT) return;
    /* Off the frontier list while the hints change (its split chunk must
     * not end up among the chunks on base pages). */
    bool listed = run->frontier_listed;
    if (listed) seg_frontier_unlist(run, SEG_FRONTIER_RESIZED);
    run_hint_tail(run, block_end, run->run_size);
    if (listed) seg_frontier_list(run);
}

HS_SELDOM void seg_run_block_resized(const void *block, size_t new_size)
{
    run_block_resized(seg_run_of(block), new_size);
}

/* seg_run_resize with the run off the frontier list. */
HS_SELDOM static void *run_resize(seg_superslab_t *run, size_t new_size)
{
    size_t offset = (size_t)((char *)run->run_block - (char *)run);
    if (new_size > SIZE_MAX / 2 - offset - HS_SUPERSLAB_SIZE) return NULL;
    size_t total = hs_align_up(offset + new_size, HS_SUPERSLAB_SIZE);
    size_t old_total = run->run_size;
    if (total == old_total) {
        run_block_resized(run, new_size);
        return run->run_block;
    }
    bool was_huge = old_total >= huge_threshold();
    seg_superslab_t *moved = run_remap(run, total);
    if (!moved) return NULL;
    run_hint_tail(moved, offset + new_size, old_total);
    hs_count_add(&seg_state.stat_run_bytes_live, (int64_t)total - (int64_t)old_total);
    moved->run_block = (char *)moved + offset;
    bool is_huge = total >= huge_threshold();
    if (is_huge != was_huge) hs_count_add(&seg_state.stat_huge_blocks, is_huge ? 1 : -1);
    return moved->run_block;
}

HS_SELDOM void *seg_run_resize(seg_superslab_t *run, size_t new_size)
{
    /* A resize that moved the run after mremap in place was refused left
     * ENOMEM in errno: realloc returns a block with errno as it was. */
    int saved_errno = errno;
    /* Off the frontier list while its mapping or hints change: a look
     * must not read a range mremap moves. */
    bool listed = run->frontier_listed;
    if (listed) seg_frontier_unlist(run, SEG_FRONTIER_RESIZED);
    void *block = run_resize(run, new_size);
    if (listed) seg_frontier_list(block ? seg_run_of(block) : run);
    if (block) errno = saved_errno;
    return block;
}

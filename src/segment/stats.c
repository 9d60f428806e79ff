/* stats.c: segment's figures, for hugeslab_stats and reports: the counts
 * kept as relaxed atomics, and the kernel's own count of our huge pages.
 * Read without the pools' locks; nothing here is on an allocation's path. */
#include "os/os.h"
#include "segment/segment_internal.h"

/* Adds a mapping's huge pages when hugeslab owns some of its chunks, at
 * most one per chunk it owns: the kernel merges adjacent mappings with the
 * same flags into one, ours and (rarely) someone else's. */
HS_SELDOM static void count_kernel_pages(void *ctx, uintptr_t start, uintptr_t end,
                                         long long anon_huge, long long hugetlb)
{
    seg_kernel_pages_t *out = ctx;
    int64_t owned = 0;
    uintptr_t first = hs_align_up(start, HS_SUPERSLAB_SIZE) >> HS_SUPERSLAB_SHIFT;
    for (uintptr_t c = first; (c + 1) << HS_SUPERSLAB_SHIFT <= end && c < SEG_MAP_ENTRIES; c++)
        if (seg_kind_at(c) != SEG_CHUNK_NONE) owned++;
    if (owned == 0) return;
    int64_t thp = anon_huge / (long long)HS_SUPERSLAB_SIZE;
    int64_t tlb = hugetlb / (long long)HS_SUPERSLAB_SIZE;
    out->thp_huge_pages += thp < owned ? thp : owned;
    out->hugetlb_huge_pages += tlb < owned ? tlb : owned;
}

HS_SELDOM void seg_kernel_pages(seg_kernel_pages_t *out)
{
    out->thp_huge_pages = out->hugetlb_huge_pages = 0;
    if (os_walk_smaps(count_kernel_pages, out) != 0)
        out->thp_huge_pages = out->hugetlb_huge_pages = -1;
}

HS_COLD HS_SELDOM void seg_stats(seg_stats_t *out)
{
    uint64_t by_backing[THP_BACKING_COUNT] = {0};
    for (unsigned n = 0; n < HS_MAX_NODES; n++) {
        uint64_t node_total = 0;
        for (unsigned b = 0; b < THP_BACKING_COUNT; b++) {
            uint64_t v =
                atomic_load_explicit(&seg_pool(n)->stat_superslabs[b], memory_order_relaxed);
            by_backing[b] += v;
            node_total += v;
        }
        out->superslabs_by_node[n] = node_total;
    }
    out->superslabs_hugetlb = by_backing[THP_BACKING_HUGETLB];
    out->superslabs_thp = by_backing[THP_BACKING_THP];
    out->superslabs_base = by_backing[THP_BACKING_BASE];
    out->superslabs_cached =
        atomic_load_explicit(&seg_state.stat_idle_superslabs, memory_order_relaxed);
    out->superslabs_purged =
        atomic_load_explicit(&seg_state.stat_purged_superslabs, memory_order_relaxed);
    hs_lock(&seg_state.run_cache_lock);
    out->bytes_cached = seg_state.run_cache_bytes;
    hs_unlock(&seg_state.run_cache_lock);
    out->bytes_cached += out->superslabs_cached * HS_SUPERSLAB_SIZE;
    out->bytes_mapped = atomic_load_explicit(&seg_state.stat_bytes_mapped, memory_order_relaxed);
    out->bytes_in_runs = atomic_load_explicit(&seg_state.stat_run_bytes_live, memory_order_relaxed);
    out->purge_calls_at_once =
        atomic_load_explicit(&seg_state.stat_purge_calls_at_once, memory_order_relaxed);
    out->bytes_purged_at_once =
        atomic_load_explicit(&seg_state.stat_bytes_purged_at_once, memory_order_relaxed);
    out->purge_calls = out->purge_calls_at_once +
                       atomic_load_explicit(&seg_stat_purge_calls, memory_order_relaxed);
    out->bytes_purged_total = out->bytes_purged_at_once +
                              atomic_load_explicit(&seg_stat_bytes_purged, memory_order_relaxed);
    out->huge_blocks = atomic_load_explicit(&seg_state.stat_huge_blocks, memory_order_relaxed);
}

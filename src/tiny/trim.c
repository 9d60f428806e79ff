/* trim.c: malloc_trim's share of tiny, tiny's figures, and its fork
 * handlers.
 * - tiny_fork_prepare takes the forking thread's heap flag and the crowd
 *   heaps' flags, then heap_lock and orphan_lock, in rank order
 *   (common/locks.h); the child starts the locks afresh, releases the
 *   crowd heaps' flags and leaves the thread's as fork() found it. */
#include "tiny/tiny_internal.h"

/* Seldom code, as malloc_trim, its one caller, is. */
HS_SELDOM void tiny_trim(void)
{
    tiny_heapless_flush(false);
    tiny_heap_t *heap = tiny_heap_tls;
    if (heap != &tiny_empty_heap) {
        uint32_t was = heap_enter(heap);
        tiny_flush_remote_batch(heap);
        tiny_drain_delayed(heap);
        tiny_release_kept_empty_in(heap, NULL);
        for (unsigned i = 0; i < TINY_KEPT_SUPERSLABS; i++) heap->kept_in[i] = NULL;
        heap_leave(heap, was);
    }
    (void)tiny_crowd_trim(true);
    tiny_collect_abandoned();
}

HS_SELDOM void tiny_stats(tiny_stats_t *out)
{
    /* The calling thread's frees waiting in a batch lent to it are counted
     * once they are done. */
    tiny_heapless_flush(false);
    uint64_t *by_node = out->remote_frees_by_node;
    for (unsigned n = 0; n < HS_MAX_NODES; n++) {
        by_node[n] = 0;
        for (unsigned i = 0; i < HEAPLESS_STRIPES; i++)
            by_node[n] +=
                atomic_load_explicit(n == 0 ? &tiny_state.heapless_node0[i].count
                                            : &tiny_lists.heapless_remote_frees[i].by_node[n - 1],
                                     memory_order_relaxed);
    }
    hs_lock(&tiny_state.heap_lock);
    for (tiny_heap_t *h = tiny_state.heap_all; h; h = h->all_next)
        for (unsigned n = 0; n < HS_MAX_NODES; n++)
            by_node[n] += atomic_load_explicit(&h->remote_frees_by_node[n], memory_order_relaxed);
    hs_unlock(&tiny_state.heap_lock);
    out->remote_frees = 0;
    for (unsigned n = 0; n < HS_MAX_NODES; n++) out->remote_frees += by_node[n];
    out->bytes_in_slabs =
        atomic_load_explicit(&tiny_state.stat_bytes_in_slabs, memory_order_relaxed);
    out->threads_live = atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed);
    out->orphan_slabs = atomic_load_explicit(&tiny_state.stat_orphan_slabs, memory_order_relaxed);
}

/* The forking thread's heap whose flag tiny_fork_prepare took (NULL:
 * none, the thread had no heap yet), and the flag as it found it. */
static tiny_heap_t *fork_heap;
static uint32_t fork_heap_was;
/* The crowd heaps (bits of tiny_state.crowd_nodes) whose flags the fork
 * holds: those it took, not those there are by the time it lets go. */
static uint64_t fork_crowds;

/* The forking thread holds its own heap's flag across fork() too. Another
 * thread may hold it for a moment (reclaim_empty, reclaim_all_remote); at
 * fork() the child would keep it held for good, with no thread there to
 * leave it, and the handlers that run in the child's fork window before
 * tiny_fork_child (locks.h, rule 5) would wait for it at their first
 * refill. Those holders take no lock, so the wait here ends. The crowd
 * heaps' flags are held across fork() as well, taken before heap_lock: a
 * thread that holds one may take heap_lock, and holds no lock itself while
 * the fork waits for it. The forking thread takes no block of theirs in
 * its fork window (crowd_malloc). A crowd heap is made under heap_lock:
 * one made between the flags and the lock has its flag taken too, with
 * the lock released, so that once the fork holds heap_lock it holds every
 * crowd heap's flag. (Left at those it took first, the fork let go of the
 * new one's flag in the parent while the thread that made it held it,
 * and wrapped its own count of flags held.) */
HS_APART void tiny_fork_prepare(void)
{
    fork_heap = tiny_heap_tls != &tiny_empty_heap ? tiny_heap_tls : NULL;
    if (fork_heap) fork_heap_was = heap_enter(fork_heap);
    fork_crowds = 0;
    for (;;) {
        uint64_t crowds = atomic_load_explicit(&tiny_state.crowd_nodes, memory_order_acquire);
        if (crowds != fork_crowds) tiny_crowd_enter_every(crowds & ~fork_crowds);
        fork_crowds = crowds;
        hs_lock_for_fork(&tiny_state.heap_lock);
        if (atomic_load_explicit(&tiny_state.crowd_nodes, memory_order_relaxed) == fork_crowds)
            break;
        hs_unlock_for_fork(&tiny_state.heap_lock);
    }
    hs_lock_for_fork(&tiny_state.orphan_lock);
}

HS_APART void tiny_fork_parent(void)
{
    hs_unlock_for_fork(&tiny_state.orphan_lock);
    hs_unlock_for_fork(&tiny_state.heap_lock);
    if (fork_crowds) tiny_crowd_leave_every(fork_crowds);
    if (fork_heap) heap_leave(fork_heap, fork_heap_was);
}

HS_APART void tiny_fork_child(void)
{
    /* Held since tiny_fork_prepare: left as fork() found it. A heap made
     * in the fork window was not held, but a thread that was reclaiming
     * from it did not follow. */
    atomic_store_explicit(&tiny_heap_tls->busy, tiny_heap_tls == fork_heap ? fork_heap_was : 0,
                          memory_order_relaxed);
    /* The other threads' heaps have no thread here: their SuperSlabs may be
     * this one's (seg_units_alloc's owners). */
    for (tiny_heap_t *h = tiny_state.heap_all; h; h = h->all_next)
        if (h != tiny_heap_tls) {
            /* A crowd heap stays attached: it serves this process's threads.
             * Another heap's flag, pooled ones' too, was held at most by a
             * thread reclaiming from it, which did not follow: left held,
             * the child's next thread to get that heap from the pool waited
             * for it for good (with a pause widening the reclaimer's hold,
             * 3 children of the first 96 forks hung; none of 300 since).
             * The crowd heaps' flags are the fork's own, let go below. */
            if (!h->crowd) {
                atomic_store_explicit(&h->attached, false, memory_order_relaxed);
                atomic_store_explicit(&h->busy, 0, memory_order_relaxed);
            }
            h->owner_slot = false;
        }
    if (fork_crowds) tiny_crowd_leave_every(fork_crowds);
    atomic_store_explicit(&tiny_state.owner_heaps, tiny_heap_tls->owner_slot ? 1 : 0,
                          memory_order_relaxed);
    /* And the child's threads with a heap: this one, if it has one. Left
     * at the parent's count, a child of a process of a thousand threads
     * went on as a crowded one (its blocks from the crowd heap, looks at
     * the other heaps), and its statistics said so. */
    atomic_store_explicit(&tiny_state.stat_threads_live, tiny_heap_tls != &tiny_empty_heap,
                          memory_order_relaxed);
    HS_ASSERT(tiny_crowd_holds == 0);
    tiny_heapless_fork_child();
    hs_lock_init(&tiny_state.orphan_lock, HS_RANK_ORPHAN);
    hs_lock_init(&tiny_state.heap_lock, HS_RANK_HEAP);
}

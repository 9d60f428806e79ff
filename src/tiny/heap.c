/* heap.c: thread heaps and orphans. A thread's first refill attaches a
 * heap (from the pool of detached ones, or cut from a bump region of
 * metadata); its exit gives the heap's slabs up as orphans and the heap back
 * to the pool. The idle work (tiny_collect_abandoned) frees what detached
 * heaps and orphans hold for nobody.
 * - Heaps are never unmapped: a heap pointer read from a slab's owner word
 *   stays valid memory.
 * - An orphan's owner word is 0; it is on tiny_lists.orphans of its
 *   SuperSlab's node, under orphan_lock, until adopted or released.
 * - Slabs are released with no tiny lock held (segment takes its own). */
#include "tiny/tiny_internal.h"

/* Sends every block on the delayed list of a heap whose thread has left to
 * its slab, as another thread's free does: the heap gives its slabs up (or
 * has), so no refill of its will take them. Apart from the text every
 * process runs: only a heap whose thread left has such a list, and the
 * idle work calls it for none in a process of one thread. */
HS_APART_LATE HS_NOINLINE static void delayed_to_slabs(tiny_heap_t *heap)
{
    tiny_block_t *b = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    while (b) {
        tiny_block_t *next = tiny_next_delayed(b);
        tiny_slab_t *s = tiny_slab_of(b);
        returning_taken(s->units);
        tiny_free_remote(s, b);
        b = next;
    }
}

/* Gives up every slab of a heap whose thread is leaving. Apart from the
 * text every process runs, which had no room for it. */
HS_APART_LATE void tiny_heap_abandon(tiny_heap_t *heap)
{
    tiny_flush_remote_batch(heap);
    tiny_drain_delayed(heap);
    tiny_release_kept_empty_in(heap, NULL);
    for (unsigned i = 0; i < TINY_KEPT_SUPERSLABS; i++) heap->kept_in[i] = NULL;
    heap->home = NULL;
    heap->one_block_released = heap->one_block_recurring = 0;
    heap->current_classes[0] = heap->current_classes[1] = 0;
    bool orphaned = false;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        heap_set_current(heap, cls, &tiny_sentinel_slab);
        tiny_slab_t *lists[2] = {heap->partial[cls], heap->full[cls]};
        heap->partial[cls] = heap->full[cls] = NULL;
        for (int l = 0; l < 2; l++) {
            tiny_slab_t *s = lists[l];
            while (s) {
                tiny_slab_t *next = s->next;
                /* Its links cleared before its owner: another thread's free
                 * of its last block in use that reads the owner 0 tells by
                 * them whether it is on an orphans' list yet
                 * (release_emptied_orphan). With the heap's list's stale
                 * `prev` it took the slab off a list it was not on, and
                 * released it, and this loop then listed it as an orphan:
                 * released twice (tests/stress_test at 32 threads of 1,000
                 * operations each, HUGESLAB_PURGE_DELAY_MS=1, on the DEBUG=1
                 * library: 6 runs of 30 failed, the cores looked at
                 * stopped at seg_units_free's assertion). */
                s->prev = s->next = NULL;
                /* Clear the FULL bit first, so remote frees go to the slab. */
                atomic_store_explicit(&s->owner_word, 0, memory_order_release);
                atomic_fetch_and_explicit(tiny_remote_word(s), ~TINY_REMOTE_FULL,
                                          memory_order_acq_rel);
                s->used += s->full_bias;
                s->full_bias = 0;
                s->on_full = false;
                collect(s);
                if (s->used == 0) {
                    tiny_slab_release(s);
                } else {
                    unsigned node = seg_superslab_of(s)->node;
                    hs_lock(&tiny_state.orphan_lock);
                    slab_list_push(&tiny_lists.orphans[node][cls], s);
                    tiny_state.orphan_nodes |= UINT64_C(1) << node;
                    hs_unlock(&tiny_state.orphan_lock);
                    hs_count_add(&tiny_state.stat_orphan_slabs, 1);
                    orphaned = true;
                }
                s = next;
            }
        }
    }
    /* Blocks delayed while the slabs were being given up. */
    delayed_to_slabs(heap);
    /* Their blocks may all come back with no thread left to adopt them. */
    if (orphaned) seg_idle_work_pending();
}

HS_APART_LATE bool tiny_take_owner_slot(tiny_heap_t *heap)
{
    uint32_t slots = seg_cpus_allowed(),
             held = atomic_load_explicit(&tiny_state.owner_heaps, memory_order_relaxed);
    while (held < slots)
        if (atomic_compare_exchange_weak_explicit(&tiny_state.owner_heaps, &held, held + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return heap->owner_slot = true;
    return false;
}

/* Orphans whose blocks have all come back are released (malloc_trim).
 * Returns true while some remain. */
static bool sweep_orphans(void)
{
    tiny_slab_t *empty = NULL; /* taken off the lists, released below */
    hs_lock(&tiny_state.orphan_lock);
    /* Only the nodes whose lists were pushed to: see tiny_lists. */
    for (uint64_t nodes = tiny_state.orphan_nodes; nodes; nodes &= nodes - 1) {
        unsigned node = (unsigned)__builtin_ctzll(nodes);
        bool left = false; /* an orphan of this node stays listed */
        for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
            tiny_slab_t **list = &tiny_lists.orphans[node][cls];
            tiny_slab_t *s = *list;
            while (s) {
                tiny_slab_t *next = s->next;
                bool room;
                if (tiny_orphan_in_use(s, &room) == 0) {
                    slab_list_remove(list, s);
                    hs_count_add(&tiny_state.stat_orphan_slabs, -1);
                    s->next = empty;
                    empty = s;
                } else {
                    left = true;
                }
                s = next;
            }
        }
        if (!left) tiny_state.orphan_nodes &= ~(UINT64_C(1) << node);
    }
    hs_unlock(&tiny_state.orphan_lock);
    /* Released with the orphan lock free: a SuperSlab left empty goes to its
     * node's pool and may start the purge thread, which allocates. */
    while (empty) {
        tiny_slab_t *next = empty->next;
        tiny_orphan_release(empty);
        empty = next;
    }
    return atomic_load_explicit(&tiny_state.stat_orphan_slabs, memory_order_relaxed) != 0;
}

/* ---- thread heaps ----------------------------------------------------------- */

/* A heap from the pool, or cut from the bump region. The region is mapped
 * with heap_lock released (no system call under a lock), so a thread may
 * map one that another thread's made unneeded: it is kept as the spare for
 * the next refill (metadata is never given back). */
static tiny_heap_t *heap_new(void)
{
    const size_t size = hs_align_up(sizeof(tiny_heap_t), HS_CACHE_LINE), chunk = 64 * HS_KiB;
    char *region = NULL; /* mapped while unlocked, not yet the bump region */
    tiny_heap_t *heap = NULL;
    hs_lock(&tiny_state.heap_lock);
    for (;;) {
        if (tiny_state.heap_pool) {
            heap = tiny_state.heap_pool;
            tiny_state.heap_pool = heap->next_free;
            break;
        }
        if ((size_t)(tiny_state.meta_end - tiny_state.meta_next) >= size) {
            heap = (tiny_heap_t *)tiny_state.meta_next;
            tiny_state.meta_next += size;
            for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++)
                heap_set_current(heap, cls, &tiny_sentinel_slab);
            heap->all_next = tiny_state.heap_all;
            tiny_state.heap_all = heap;
            break;
        }
        if (!region && tiny_state.meta_spare) {
            region = tiny_state.meta_spare;
            tiny_state.meta_spare = NULL;
        }
        if (region) {
            tiny_state.meta_next = region;
            tiny_state.meta_end = region + chunk;
            region = NULL;
            continue;
        }
        hs_unlock(&tiny_state.heap_lock);
        region = seg_map_metadata(chunk);
        if (!region) return NULL;
        hs_lock(&tiny_state.heap_lock);
    }
    atomic_store_explicit(&heap->attached, true, memory_order_relaxed);
    /* Two threads that both mapped while a third refilled: one region is
     * lost (64 KiB, as rare as that race). */
    if (region && !tiny_state.meta_spare) tiny_state.meta_spare = region;
    hs_unlock(&tiny_state.heap_lock);
    return heap;
}

/* ---- crowd heaps -------------------------------------------------------------- */

/* A heap like a thread's, attached for good (other threads reclaim from it
 * and segment/ keeps its owned SuperSlabs its own), on no thread and not
 * counted among the live ones. Two threads that make one at once: the
 * second's goes back to the pool. */
HS_APART_LATE tiny_heap_t *tiny_crowd_heap(unsigned node)
{
    tiny_heap_t *crowd = atomic_load_explicit(&tiny_lists.crowd[node], memory_order_acquire);
    if (crowd) return crowd;
    tiny_heap_t *made = heap_new();
    if (!made) return NULL;
    made->node = node;
    made->crowd = true;
    hs_lock(&tiny_state.heap_lock);
    crowd = atomic_load_explicit(&tiny_lists.crowd[node], memory_order_relaxed);
    if (!crowd) {
        atomic_store_explicit(&tiny_lists.crowd[node], made, memory_order_release);
        atomic_fetch_or_explicit(&tiny_state.crowd_nodes, UINT64_C(1) << node,
                                 memory_order_release);
        crowd = made;
    } else {
        made->crowd = false;
        atomic_store_explicit(&made->attached, false, memory_order_relaxed);
        made->next_free = tiny_state.heap_pool;
        tiny_state.heap_pool = made;
    }
    hs_unlock(&tiny_state.heap_lock);
    return crowd;
}

__thread unsigned tiny_crowd_holds;
__thread tiny_heap_t *tiny_crowd_held;

HS_APART_LATE bool tiny_crowd_try_enter(tiny_heap_t *crowd)
{
    if (!heap_try_take(crowd, HEAP_OWNER)) return false;
    tiny_crowd_holds++;
    tiny_crowd_held = crowd;
    return true;
}

/* The holder takes no lock while it waits for anything (its refill maps
 * memory as any owner's does, with no lock held), and the threads that
 * wait here hold none: nothing waits in a circle. A waiter yields after a
 * short spin: with more threads than CPUs the holder may be the one that
 * needs the CPU. */
HS_APART_LATE void tiny_crowd_enter(tiny_heap_t *crowd)
{
    for (unsigned spins = 0; !tiny_crowd_try_enter(crowd); spins++)
        if (spins >= 64) seg_yield();
}

HS_APART_LATE void tiny_crowd_leave(tiny_heap_t *crowd)
{
    if (--tiny_crowd_holds == 0) tiny_crowd_held = NULL;
    atomic_store_explicit(&crowd->busy, 0, memory_order_release);
}

HS_APART_LATE void tiny_crowd_enter_every(uint64_t nodes)
{
    for (; nodes; nodes &= nodes - 1) tiny_crowd_enter(tiny_crowd_of(nodes));
}

HS_APART_LATE void tiny_crowd_leave_every(uint64_t nodes)
{
    for (; nodes; nodes &= nodes - 1) tiny_crowd_leave(tiny_crowd_of(nodes));
}

/* ---- thread heaps (attach) ------------------------------------------------------ */

/* Gives the calling thread a heap of its own. NULL when memory is out. */
HS_NOINLINE tiny_heap_t *tiny_heap_attach(void)
{
    hs_fork_handlers_arm_if_threaded();
    tiny_init();
    tiny_heap_t *heap = heap_new();
    if (!heap) return NULL;
    heap->node = seg_thread_node_refresh();
    hs_count_add(&tiny_state.stat_threads_live, 1);
    tiny_heap_tls = heap;
    /* May allocate (glibc's second-level key table): the heap is in place. */
    pthread_setspecific(tiny_state.heap_key, heap);
    uint32_t was = heap_enter(heap);
    tiny_drain_delayed(heap);
    heap_leave(heap, was);
    return heap;
}

HS_APART_LATE void tiny_thread_exit(void *arg)
{
    tiny_heap_t *heap = arg;
    if (!heap || heap == &tiny_empty_heap) {
        tiny_heapless_exit(); /* the value of a thread lent a batch */
        return;
    }
    tiny_heap_tls = &tiny_empty_heap;
    tiny_crowd_thread_left();
    tiny_heapless_exit();
    /* Giving the slabs up may start the purge thread (orphans to sweep, a
     * SuperSlab gone idle), and pthread_create allocates the new thread's
     * TLS vector on this thread: started before the heap is back in the
     * pool, it made the leaving thread a new heap, a page of metadata more
     * (bench_memory prodcons: three heaps for two allocating threads).
     * Started after, that allocation takes this heap again. */
    hs_defer_begin();
    uint32_t was = heap_enter(heap);
    tiny_heap_abandon(heap);
    heap_leave(heap, was);
    hs_count_add(&tiny_state.stat_threads_live, -1);
    heap->units_cut = 0;
    heap->home_after_ms = 0;
    heap->home_aged = false;
    heap->cuts_since_reclaim = 0;
    if (heap->owner_slot) {
        heap->owner_slot = false;
        atomic_fetch_sub_explicit(&tiny_state.owner_heaps, 1, memory_order_relaxed);
    }
    hs_lock(&tiny_state.heap_lock);
    atomic_store_explicit(&heap->attached, false, memory_order_relaxed);
    heap->next_free = tiny_state.heap_pool;
    tiny_state.heap_pool = heap;
    hs_unlock(&tiny_state.heap_lock);
    hs_defer_end();
    seg_thread_left(atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) <= 1);
}

/* What no thread of the program would do on its own: blocks left on the
 * delayed lists of heaps whose threads are gone, and orphans whose blocks
 * all came back. Run by the purge thread and by malloc_trim. */
HS_COLD bool tiny_collect_abandoned(void)
{
    /* Detached heaps may hold blocks pushed after their thread left. */
    hs_lock(&tiny_state.heap_lock);
    for (tiny_heap_t *h = tiny_state.heap_pool; h; h = h->next_free) delayed_to_slabs(h);
    hs_unlock(&tiny_state.heap_lock);
    /* The crowd heaps' flags only tried: a thread taking a block holds one
     * a moment; passed over, the purge thread comes back soon, as for
     * orphans still pinned. */
    bool passed_over = tiny_crowd_trim(false);
    return sweep_orphans() || passed_over;
}

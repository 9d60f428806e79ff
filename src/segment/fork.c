/* fork.c: hugetlb mappings across fork(): the list of live hugetlb
 * ranges and the fork handlers' work on it (seg_hugetlb_range_t says why).
 * - seg_state.hugetlb_ranges holds every live hugetlb mapping, from
 *   seg_map_superslabs (seg_hugetlb_track) until seg_unmap_idle
 *   (seg_hugetlb_untrack), guarded by hugetlb_lock.
 * - One fork at a time, from seg_fork_begin to the end of
 *   seg_fork_parent_unlocked (fork_active); copy_pending marks its ranges.
 * - Copies and reservations are made with no lock held. */
#include <errno.h>

#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment_internal.h"

HS_APART bool seg_hugetlb_track(seg_superslab_t *base, size_t size, void *spare)
{
    hs_lock(&seg_state.hugetlb_lock);
    bool room = true;
    while (room && seg_state.hugetlb_count == seg_state.hugetlb_cap)
        room = seg_metadata_grow(&seg_state.hugetlb_lock, (void **)&seg_state.hugetlb_ranges,
                                 &seg_state.hugetlb_cap, &seg_state.hugetlb_count,
                                 sizeof *seg_state.hugetlb_ranges, 256);
    if (room) {
        seg_state.hugetlb_ranges[seg_state.hugetlb_count++] =
            (seg_hugetlb_range_t){base, size, spare, false, false, (uint8_t)base->memory_node};
        seg_state.hugetlb_pages_mapped += size >> HS_SUPERSLAB_SHIFT;
    }
    hs_unlock(&seg_state.hugetlb_lock);
    return room;
}

/* The tracked range that starts at `base`, or NULL; hugetlb_lock held. */
HS_APART static seg_hugetlb_range_t *hugetlb_range_of(const seg_superslab_t *base)
{
    for (size_t i = 0; i < seg_state.hugetlb_count; i++)
        if (seg_state.hugetlb_ranges[i].base == base) return &seg_state.hugetlb_ranges[i];
    return NULL;
}

HS_APART void *seg_hugetlb_untrack(seg_superslab_t *base, size_t size)
{
    HS_ASSERT(hs_no_lock_held());
    /* A fork between the untracking and the caller's munmap gave the child
     * the mapping with no copy of its own, on no list it privatizes: a
     * hugetlb mapping it kept, with its pool pages, until it exited
     * (fork_test with a 20-page pool and HUGESLAB_PURGE_DELAY_MS=1: "4096
     * kB of hugetlb memory left after fork", a 4 MiB run). Not inherited
     * from here on; a child forked before the untracking drops it
     * (hugetlb_privatize). */
    os_advise_fork(base, size, false);
    hs_lock(&seg_state.hugetlb_lock);
    seg_hugetlb_range_t *r = hugetlb_range_of(base);
    while (r && r->copy_pending) {
        /* One MADV_POPULATE_WRITE of the range on the forking thread, which
         * takes no lock but this one, briefly, to unmark it. */
        hs_unlock(&seg_state.hugetlb_lock);
        os_sleep_ms(1);
        hs_lock(&seg_state.hugetlb_lock);
        r = hugetlb_range_of(base);
    }
    void *spare = NULL;
    if (r) {
        seg_state.hugetlb_pages_mapped -= r->size >> HS_SUPERSLAB_SHIFT;
        spare = r->spare;
        if (r->spare_freed) seg_state.hugetlb_spares_out--;
        *r = seg_state.hugetlb_ranges[--seg_state.hugetlb_count];
    }
    hs_unlock(&seg_state.hugetlb_lock);
    return spare;
}

/* Frees the spares of every tracked range, a few at a time: their pages
 * become free for the fork's copies (hugetlb_copy_marked). Each munmap
 * touches no page (nothing was faulted), and runs with no lock held. */
HS_APART static void hugetlb_spares_free(void)
{
    for (;;) {
        struct {
            void *addr;  /* a spare taken off its range */
            size_t size; /* its bytes */
        } batch[16];
        unsigned n = 0;
        hs_lock(&seg_state.hugetlb_lock);
        for (size_t i = 0; i < seg_state.hugetlb_count && n < 16; i++) {
            seg_hugetlb_range_t *r = &seg_state.hugetlb_ranges[i];
            if (!r->spare) continue;
            batch[n].addr = r->spare;
            batch[n++].size = r->size;
            r->spare = NULL;
            if (!r->spare_freed) seg_state.hugetlb_spares_out++;
            r->spare_freed = true;
        }
        hs_unlock(&seg_state.hugetlb_lock);
        for (unsigned i = 0; i < n; i++) os_unmap(batch[i].addr, batch[i].size);
        if (n < 16) return;
    }
}

HS_APART void seg_fork_begin(void)
{
    HS_ASSERT(hs_lock_thread.held == 0);
    /* No auto hugetlb mapping starts from here until the spares are back,
     * and those under way end first (they take no lock of segment's until
     * they are tracked). */
    atomic_fetch_add(&seg_state.hugetlb_forks, 1);
    for (unsigned i = 0; atomic_load(&seg_state.hugetlb_maps_under_way) && i < 100000; i++)
        os_yield();
    /* One fork at a time, from here to the end of its copies: copy_pending
     * marks one fork's ranges. glibc releases its atfork lock around each
     * handler it calls, so two threads' forks can overlap; the second one
     * marked the ranges the first had not copied yet a second time, one
     * copy cleared one mark, and hugetlb_copies_pending never came back
     * to 0: every later fork waited here for it (fuzz_mt, four threads
     * forking with a small pool, hung). The waiting thread holds no lock,
     * and the fork under way needs nothing of it. */
    while (atomic_exchange(&seg_state.fork_active, true)) os_sleep_ms(1);
    HS_ASSERT(atomic_load(&seg_state.hugetlb_copies_pending) == 0);
    purge_fork_turn_begin();
    /* The spares' pages become free for this fork's copies, as late as can
     * be with no lock held: from here until seg_fork_parent_unlocked has
     * made the copies, another process may take them. */
    hugetlb_spares_free();
}

HS_APART void seg_fork_prepare(void)
{
    for (unsigned n = 0; n < numa_node_count(); n++) hs_lock_for_fork(&seg_pool(n)->lock);
    hs_lock_for_fork(&seg_state.run_cache_lock);
    hs_lock_for_fork(&seg_state.hugetlb_lock);
    /* With hugetlb ranges, the parent may leave pages shared with the child
     * (the hugetlb backing keeps no spares, and a copy may find the pool
     * short): it then waits for the child's copy before fork() returns to
     * it (hugetlb_spares_restore). pipe() is no slow call: no page, no
     * file system. */
    seg_state.fork_done[0] = seg_state.fork_done[1] = -1;
    if (seg_state.hugetlb_count && os_pipe(seg_state.fork_done) != 0)
        seg_state.fork_done[0] = seg_state.fork_done[1] = -1;
}

/* The first tracked range whose copy is pending (`copy`) or whose spare is
 * out (not `copy`), its bytes in *size; NULL for none. Takes hugetlb_lock
 * for the look only: the caller works on the range with no lock held. */
HS_APART static seg_superslab_t *hugetlb_first_marked(bool copy, size_t *size)
{
    seg_superslab_t *base = NULL;
    hs_lock(&seg_state.hugetlb_lock);
    for (size_t i = 0; i < seg_state.hugetlb_count && !base; i++) {
        const seg_hugetlb_range_t *r = &seg_state.hugetlb_ranges[i];
        if (copy ? r->copy_pending : r->spare_freed) {
            base = r->base;
            *size = r->size;
        }
    }
    hs_unlock(&seg_state.hugetlb_lock);
    return base;
}

/* Reserves the spares that went at a fork again. The pages the parent
 * copied from are the child's until it has copied them in turn, range by
 * range: while the pool lacks them, tries again each millisecond until
 * the child closes `child_done` (-1: none), for at most a second, so that
 * a page the child gives back is reserved again before another process
 * takes it. While pages the parent shares with the child are left
 * (`shared`: the hugetlb backing's, or the pool lacked the pages), waits
 * for the child first: a write of the forking thread's would take the page
 * from the child, and a reservation the free pages its copies need. This
 * wait is why fork() returns to the parent only once the child has copied
 * (within a second) wherever a range is left shared. A child that has not
 * copied within that second (stopped, or starved of CPU) may still share
 * pages: no spare is reserved then, since a reservation would take the free
 * page that a parent write of such a page needs, and the write would take
 * the page from the child. The spares not had here, for that reason or
 * for want of pages, are tried again after the next fork, which copies
 * their ranges meanwhile (seg_fork_parent) if the pool has the pages:
 * until then another process may take them, and a child of that fork may
 * lose the pages the parent writes while it copies. */
HS_APART static void hugetlb_spares_restore(int child_done, bool shared)
{
    bool child_gone = child_done < 0;
    if (shared && !child_gone) {
        if (!os_wait_hangup(child_done, 1000)) return;
        child_gone = true;
    }
    uint64_t deadline = seg_now_ms() + 1000;
    for (;;) {
        size_t size = 0;
        seg_superslab_t *base = hugetlb_first_marked(false, &size);
        if (!base) return;
        void *spare = os_map_aligned(size, HS_SUPERSLAB_SIZE, true);
        if (!spare) {
            if (child_gone || seg_now_ms() >= deadline) return;
            child_gone = os_wait_hangup(child_done, 1);
            continue;
        }
        hs_lock(&seg_state.hugetlb_lock);
        for (size_t i = 0; i < seg_state.hugetlb_count; i++) {
            seg_hugetlb_range_t *r = &seg_state.hugetlb_ranges[i];
            if (r->base != base || !r->spare_freed) continue;
            r->spare_freed = false;
            seg_state.hugetlb_spares_out--;
            if (r->size == size) {
                r->spare = spare;
                spare = NULL;
            }
            break;
        }
        hs_unlock(&seg_state.hugetlb_lock);
        if (spare) os_unmap(spare, size); /* the range went meanwhile */
    }
}

/* The parent's own copies of the ranges seg_fork_parent marked, with no
 * lock held: until the child has copied its hugetlb memory, any page a
 * parent thread writes needs a free pool page, and with none free the
 * kernel takes the page from the child (the parent owns the reservation),
 * its contents at fork() lost to it. Once copied here, no later write
 * does. A page written since fork() (or that the child copied first) is
 * the parent's alone already: MADV_POPULATE_WRITE leaves it as it is, as
 * it leaves every page's contents. Only while the pool still has the pages
 * (another process may have taken them): with no free page, each copy made
 * here would be a page taken from the child.
 *
 * Page by page, for that reason: at fork() the pool's free pages are the
 * spares just freed, a page for each page to copy, and each copy, here or
 * by a parent thread's write, takes one. A count of whole ranges ran short
 * of a range whose pages other threads had partly copied already ("2 pages,
 * 1 free"), and left it shared for nothing: fork() then waited for the
 * child. The count here is what was free at the last look, less the copies
 * made since; it is read again only when it runs out. A page is left
 * shared only when the pool itself has none, and every page after it with
 * it: a copy then would take the page from the child. Each range stays
 * mapped until it is unmarked (seg_hugetlb_untrack waits), and whoever
 * takes its SuperSlabs meanwhile may write them: a write is the same copy
 * as the populate's, which the kernel makes once. Returns whether a page
 * was left shared. */
HS_APART static bool hugetlb_copy_marked(void)
{
    bool shared = false;
    size_t free_pages = 0;
    for (;;) {
        size_t size = 0;
        seg_superslab_t *base = hugetlb_first_marked(true, &size);
        if (!base) return shared;
        for (size_t at = 0; at < size && !shared; at += HS_SUPERSLAB_SIZE) {
            if (free_pages == 0) free_pages = thp_hugetlb_pages_available();
            if (free_pages == 0 || os_populate((char *)base + at, HS_SUPERSLAB_SIZE) != 0)
                shared = true;
            else
                free_pages--;
        }
        hs_lock(&seg_state.hugetlb_lock);
        seg_hugetlb_range_t *r = hugetlb_range_of(base);
        HS_ASSERT(r && r->copy_pending);
        r->copy_pending = false;
        seg_state.hugetlb_copies_pending--;
        hs_unlock(&seg_state.hugetlb_lock);
    }
}

HS_APART seg_fork_token_t seg_fork_parent(void)
{
    if (seg_state.fork_done[1] >= 0) os_close(seg_state.fork_done[1]);
    seg_fork_token_t token = {seg_state.fork_done[0], false};
    seg_state.fork_done[0] = seg_state.fork_done[1] = -1;
    /* The auto backing's ranges (those with a spare out, freed at this
     * fork or not reserved again since an earlier one) get the parent's
     * copies, marked here and made once every lock is released
     * (hugetlb_copy_marked); the others stay shared until the child has
     * copied them. */
    for (size_t i = 0; i < seg_state.hugetlb_count; i++) {
        seg_hugetlb_range_t *r = &seg_state.hugetlb_ranges[i];
        if (r->spare_freed) {
            r->copy_pending = true;
            seg_state.hugetlb_copies_pending++;
        } else {
            token.shared = true;
        }
    }
    hs_unlock_for_fork(&seg_state.hugetlb_lock);
    hs_unlock_for_fork(&seg_state.run_cache_lock);
    for (unsigned n = numa_node_count(); n-- > 0;) hs_unlock_for_fork(&seg_pool(n)->lock);
    return token;
}

HS_APART void seg_fork_parent_unlocked(seg_fork_token_t token)
{
    HS_ASSERT(hs_lock_thread.held == 0);
    if (hugetlb_copy_marked()) token.shared = true;
    hugetlb_spares_restore(token.child_done, token.shared);
    if (token.child_done >= 0) os_close(token.child_done);
    atomic_fetch_sub(&seg_state.hugetlb_forks, 1);
    purge_fork_turn_end();
    atomic_store(&seg_state.fork_active, false);
}

/* Fills a child's anonymous copy of a hugetlb range from the child's own
 * pages, which hold the memory as it was at fork().  The parent owns the
 * pool reservation: when a parent thread writes a shared page and the pool
 * has no free page for the parent's copy, the kernel takes that page from
 * the child (a plain read of it would be SIGBUS; os_copy_own comes back
 * short).  Its contents at fork() are then gone for good: the parent's
 * page holds that thread's later writes, blocks freed and reused since,
 * so it is no copy to give the child.  The range stays hugetlb, and the
 * child gets SIGBUS if it touches the lost page, as the kernel documents;
 * the auto backing's parent makes its copies first (seg_fork_parent). */
HS_SELDOM static int child_fill(void *copy, const void *addr, size_t size, void *ctx)
{
    (void)ctx;
    return os_copy_own(copy, addr, size) == (ssize_t)size ? 0 : -EFAULT;
}

/* In the child, single-threaded: hugetlb SuperSlabs become anonymous ones,
 * so that the child never needs a pool page to write its heap and no later
 * parent write takes a page from it. */
HS_APART static void hugetlb_privatize(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < seg_state.hugetlb_count; i++) {
        seg_hugetlb_range_t r = seg_state.hugetlb_ranges[i];
        r.spare_freed = false;  /* spares are the parent's; the child has none */
        r.copy_pending = false; /* and so are the copies */
        if (thp_hugetlb_to_anonymous(r.base, r.size, child_fill, NULL) != 0) {
            if (os_resident_pages(r.base, HS_SUPERSLAB_SIZE) < 0) {
                /* Not mapped here: on its way out at fork(), advised
                 * not to be inherited and not untracked yet
                 * (seg_hugetlb_untrack). The parent's lists no longer
                 * held it. */
                seg_registry_clear(r.base, r.size);
                seg_count_mapping(r.memory_node, THP_BACKING_HUGETLB, -(int64_t)r.size);
                seg_state.hugetlb_pages_mapped -= r.size >> HS_SUPERSLAB_SHIFT;
                continue;
            }
            seg_state.hugetlb_ranges[kept++] = r; /* stays hugetlb: may fault later */
            continue;
        }
        r.base->backing = THP_BACKING_THP;
        seg_count_mapping(r.base->memory_node, THP_BACKING_HUGETLB, -(int64_t)r.size);
        seg_count_mapping(r.base->memory_node, THP_BACKING_THP, (int64_t)r.size);
        seg_state.hugetlb_pages_mapped -= r.size >> HS_SUPERSLAB_SHIFT;
    }
    seg_state.hugetlb_count = kept;
    seg_state.hugetlb_spares_out = 0;
    seg_state.hugetlb_copies_pending = 0;
    /* Purged hugetlb SuperSlabs do not exist (they are unmapped), and idle
     * ones sit in the lists with their headers just rewritten above. */
}

HS_APART void seg_fork_child(void)
{
    if (atomic_load_explicit(&seg_state.hugetlb_pages_mapped, memory_order_relaxed))
        hugetlb_privatize();
    /* The parent waits for this to reserve its spares again. */
    if (seg_state.fork_done[0] >= 0) os_close(seg_state.fork_done[0]);
    if (seg_state.fork_done[1] >= 0) os_close(seg_state.fork_done[1]);
    seg_state.fork_done[0] = seg_state.fork_done[1] = -1;
    /* The parent's forks and mappings under way are not the child's. */
    atomic_store(&seg_state.hugetlb_forks, 0);
    atomic_store(&seg_state.hugetlb_maps_under_way, 0);
    atomic_store(&seg_state.fork_active, false);
    /* Nor are the registry's preparations and trims under way, nor memory
     * locks: a child has no MCL_FUTURE (mlockall(2)). */
    atomic_store(&seg_state.registry_gate, 0);
    hs_lock_init(&seg_state.hugetlb_lock, HS_RANK_HUGETLB);
    hs_lock_init(&seg_state.run_cache_lock, HS_RANK_RUN_CACHE);
    for (unsigned n = 0; n < numa_node_count(); n++) {
        hs_lock_init(&seg_pool(n)->lock, HS_RANK_POOL + n);
        atomic_store(&seg_pool(n)->superslab_taker, NULL);
    }
    purge_fork_child();
    seg_frontier_fork_child();
    seg_small_heap_fork_child();
}

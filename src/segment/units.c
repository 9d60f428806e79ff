/* units.c: SuperSlabs of slabs, cut into units for tiny/'s slabs: best
 * fit, taking and freeing units, and the free units the purge thread
 * gives back from SuperSlabs in use; and pages for slabs of one large
 * block, best fit at the page grain (seg_pages_alloc).
 * - A unit is in free_units, or in a slab of units, or holds pages of
 *   slabs of pages: the page map says which of its pages are free while
 *   some are (seg_page_map_t). Slabs of units never see those units; a
 *   unit whose pages all come back goes to free_units as a whole.
 * - A SuperSlab of slabs is on one of its pool's partial lists iff some
 *   but not all of its units are free (the list of its longest run of
 *   them), on its idle list iff all are (idle.c takes
 *   it from there), and in no list while the purge thread has its free
 *   units out (units_purged == SEG_UNITS_PURGING) or while it is full.
 * - free_units, owner and the lists change only under the pool's lock;
 *   owner is a SuperSlab in use's (idle_since_ms an idle one's: they share
 *   their word), 0 once it is taken from the idle list.
 * - Whatever a new SuperSlab costs (mmap, faults of a revived one) is paid
 *   with no lock held (take_superslab). */
#include <errno.h>
#include <string.h>

#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment_internal.h"

/* How long a thread waits for another's SuperSlab at most (fit_after_taker):
 * a new one costs tens of microseconds (mmap, madvise), a hugetlb one whose
 * pages are populated or a revived one whose pages fault a millisecond or
 * so, and a taker that other jobs keep off its CPU a few more. */
#define SEG_TAKER_WAIT_MS 100
/* Free units a SuperSlab of base pages holds before a free wakes the purge
 * thread for them (256 KiB): fewer are not worth starting it for. Only
 * units that have been in a slab count towards starting it: a fresh unit
 * has no page to give back, and a SuperSlab of a small heap is mostly
 * fresh, so counting them started the thread for a program's first freed
 * buffer (bench_memory small: its 64 KiB buffer). The thread costs about
 * 70 KiB there, more than it could give back: its stack and TLS, and the
 * window of libc's text around clone that such a program touches nowhere
 * else; and a running thread is woken as before. */
#define SEG_PURGE_UNITS_MIN 8
/* SuperSlabs with room that seg_units_alloc compares, at most, for the
 * best fit: the first ones of the partial lists that may hold the run,
 * shortest runs first. They are walked under the node's lock, and a large
 * heap has thousands. */
#ifndef SEG_FIT_CANDIDATES
#define SEG_FIT_CANDIDATES 16
#endif
/* Free units of a THP SuperSlab in use for which its huge page is given up
 * once it has been quiet for the release delay (1.5 MiB of the 2 MiB): a few
 * long-lived blocks in each SuperSlab of a heap that has since been freed
 * (Redis's slow log after FLUSHALL: 2-7 blocks in each of 80-120 SuperSlabs)
 * kept the whole heap's huge pages resident. */
#define SEG_SPARSE_FREE_UNITS 48

/* Whether free units of a SuperSlab in use may go back to the kernel: never
 * where that would split a huge page (hugetlb, or THP that the kernel may
 * have made one), so base pages, or a deferred SuperSlab of the small heap
 * while it is still kept off huge pages. */
static bool units_purgeable(const seg_superslab_t *ss)
{
    if (ss->backing == THP_BACKING_BASE) return true;
    return ss->backing == THP_BACKING_THP && seg_small_heap_holds(ss);
}

/* Whether ss is a THP SuperSlab in use so sparse that its free units are
 * worth its huge page (SEG_SPARSE_FREE_UNITS): they go back once it has been
 * quiet for the release delay, on base pages from then on. Never with
 * HUGESLAB_SPLIT_SPARSE=0, for programs that would rather keep one fault per
 * SuperSlab when they refill it than the RSS of its free units. */
static bool huge_sparse(const seg_superslab_t *ss)
{
    return hs_option(HS_OPT_SPLIT_SPARSE) && ss->backing == THP_BACKING_THP &&
           !seg_small_heap_holds(ss) &&
           __builtin_popcountll(ss->free_units) >= SEG_SPARSE_FREE_UNITS;
}

/* A SuperSlab of base pages whose pages have all gone back becomes a huge
 * page again: one whose huge page was given up (huge_sparse), while the
 * backing asked for is not base pages and a hint gives this process huge
 * pages. */
thp_backing_t seg_release_backing(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node)
{
    if (backing != THP_BACKING_BASE || hs_option(HS_OPT_BACKING) == HS_BACKING_BASE ||
        !thp_allow_huge(ss, HS_SUPERSLAB_SIZE))
        return backing;
    hs_count_add(&seg_pool(memory_node)->stat_superslabs[THP_BACKING_BASE], -1);
    hs_count_add(&seg_pool(memory_node)->stat_superslabs[THP_BACKING_THP], 1);
    return THP_BACKING_THP;
}

/* A THP SuperSlab of slabs is base pages from now on, and counted so
 * (seg_release_backing makes it huge again once all of it goes back).
 * Under its node's lock. */
static void counted_as_base_pages(seg_superslab_t *ss)
{
    ss->backing = THP_BACKING_BASE;
    hs_count_add(&seg_pool(ss->memory_node)->stat_superslabs[THP_BACKING_THP], -1);
    hs_count_add(&seg_pool(ss->memory_node)->stat_superslabs[THP_BACKING_BASE], 1);
}

void seg_keep_base_pages(seg_superslab_t *ss)
{
    seg_pool_t *pool = seg_pool(ss->node);
    hs_lock(&pool->lock);
    if (ss->backing == THP_BACKING_THP) counted_as_base_pages(ss);
    hs_unlock(&pool->lock);
}

/* A unit was taken or given back: the SuperSlab is no longer quiet, and
 * its free units are no longer known to have gone back. */
static void units_changed(seg_superslab_t *ss)
{
    ss->units_changed_ms = (uint32_t)seg_now_ms();
    ss->units_purged = 0;
}

/* Bit u of the result is set when units u..u+n-1 are all free and offer
 * min_bytes. */
static uint64_t fitting_starts(uint64_t free_units, unsigned n, size_t min_bytes)
{
    /* Doubling: with bit u set where units u..u + have - 1 are free, an
     * AND with itself shifted by s <= have sets it where u..u + have + s - 1
     * are. Shifted one unit at a time, a run of 64 took 63 steps. */
    uint64_t starts = free_units;
    for (unsigned have = 1; have < n && starts;) {
        unsigned step = have < n - have ? have : n - have;
        starts &= starts >> step;
        have += step;
    }
    if ((starts & 1) && n * HS_UNIT_SIZE - SEG_FIRST_SLAB_BYTE < min_bytes) starts &= ~(uint64_t)1;
    return starts;
}

/* Of the free runs of free_units (maximal stretches of free units) that
 * hold a start of `starts`, the shortest: returns its length and sets
 * *in_run to the starts it holds; 0 when there is none. */
static unsigned shortest_fitting_run(uint64_t free_units, uint64_t starts, uint64_t *in_run)
{
    unsigned best = 0;
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB && (free_units >> u);) {
        unsigned begin = u + (unsigned)__builtin_ctzll(free_units >> u);
        uint64_t taken_after = ~(free_units >> begin);
        unsigned len = taken_after ? (unsigned)__builtin_ctzll(taken_after) : 64 - begin;
        uint64_t here = seg_unit_bits(begin, len) & starts;
        if (here && (!best || len < best)) {
            best = len;
            *in_run = here;
        }
        u = begin + len;
    }
    return best;
}

void seg_chunk_header(seg_superslab_t *ss, size_t size, seg_chunk_kind_t kind,
                      thp_backing_t backing, unsigned memory_node, unsigned node)
{
    memset(ss, 0, sizeof *ss);
    ss->kind = kind;
    ss->backing = (uint8_t)backing;
    ss->memory_node = (uint16_t)memory_node;
    ss->node = (uint16_t)node;
    ss->run_size = size;
    seg_registry_set(ss, size, kind);
}

/* A SuperSlab's header at ss, a chunk the pool reuses (a purged SuperSlab
 * or a cached run). */
static void superslab_header(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node,
                             unsigned node)
{
    seg_chunk_header(ss, HS_SUPERSLAB_SIZE, SEG_CHUNK_SLABS, backing, memory_node, node);
    /* A cached run's block was there. */
    memset(seg_page_map(ss), 0, sizeof(seg_page_map_t));
}

/* A SuperSlab back from a purged stack (the caller took its entry: the
 * newest lazily freed one, whose pages are the likeliest to be resident
 * still, else a released one). Its header may have been zeroed by the
 * kernel, so it is written anew before the registry names it. */
static seg_superslab_t *revive_purged(uintptr_t entry, unsigned node)
{
    seg_purged_t purged = seg_purged_unpack(entry, node);
    superslab_header(purged.ss, purged.backing, purged.memory_node, node);
    return purged.ss;
}

/* A cached run of one chunk on memory_node, made a SuperSlab of `node`'s
 * pool; NULL when the cache holds none. Its huge page is resident already:
 * sqlite3 (1 M rows) freed a 2 MB block grown by realloc as its index's
 * pages went on growing, and the next SuperSlab, mapped while that run
 * waited in the cache for the purge delay, put 2 MiB on the peak. A run
 * whose tail was hinted to base pages stays a run. */
static seg_superslab_t *superslab_from_run_cache(unsigned memory_node, unsigned node)
{
    seg_superslab_t *run;
    hs_lock(&seg_state.run_cache_lock);
    for (run = seg_state.run_cache; run; run = run->next)
        if (run->run_size == HS_SUPERSLAB_SIZE && run->memory_node == memory_node &&
            !run->base_tail)
            break;
    if (run) {
        seg_run_cache_remove(run);
    }
    hs_unlock(&seg_state.run_cache_lock);
    if (run) superslab_header(run, (thp_backing_t)run->backing, memory_node, node);
    return run;
}

/* A SuperSlab with every unit free, in no list, for the caller alone.
 * Called with the pool's lock held and returns with it held, but releases
 * it in between: what a new SuperSlab costs -- mmap, mbind,
 * MADV_POPULATE_WRITE, sysfs reads, the faults of a purged one -- happens
 * with no lock held. */
static seg_superslab_t *take_superslab(seg_pool_t *pool, unsigned node)
{
    seg_superslab_t *ss = pool->idle;
    uintptr_t purged = 0;
    if (ss) seg_idle_unlink(pool, ss);
    hs_unlock(&pool->lock);
    /* A cached run before a purged SuperSlab: its pages are resident, and
     * would stay so beside the revived one's until the purge delay. */
    if (!ss) ss = superslab_from_run_cache(numa_node_for_reuse(node), node);
    if (!ss) {
        hs_lock(&pool->lock);
        if (pool->lazy.count || pool->released.count) {
            seg_purged_stack_t *from = pool->lazy.count ? &pool->lazy : &pool->released;
            purged = from->entries[--from->count].bits;
            seg_purged_taken(pool, from, 1);
        }
        hs_unlock(&pool->lock);
    }
    /* A revived one has no fresh_units (its pages may have gone with
     * MADV_FREE: zero or not, as the kernel had need of them), nor has a
     * cached run's (a block was written there); an idle one
     * keeps its own (units never in a slab were never written, and purging
     * free units only zeroes them); a new one's are all fresh. */
    if (purged) ss = revive_purged(purged, node);
    if (!ss) {
        ss = seg_map_superslabs(HS_SUPERSLAB_SIZE, HS_SUPERSLAB_SIZE, SEG_CHUNK_SLABS, node);
        if (ss) ss->fresh_units = SEG_ALL_UNITS_FREE;
    }
    if (ss) {
        ss->free_units = SEG_ALL_UNITS_FREE;
        ss->on_partial = 0;
        if (seg_state.client_init) seg_state.client_init(ss);
    }
    hs_lock(&pool->lock);
    return ss;
}

/* Other owners' SuperSlabs with room that best_fit passes over, at most,
 * before it gives up: a program with many threads has many. */
#define SEG_FIT_PASSED_MAX 64

/* How much the caller wants units of ss (best_fit takes the highest, then
 * the best fit among equals). 0 for an untagged caller: any SuperSlab alike.
 * For a tagged one: 4 its home, 3 another of its own, 2 one that no one
 * owns or whose owner is gone (it then owns it), 1 another owner's once it
 * has a home (its own are full: another's free units come before a new
 * SuperSlab, 2 MiB more in RSS), else -1: none of its units. Without that
 * last rank, git gc --aggressive (two threads that each cut hundreds of
 * MiB of slabs) peaked at 1,013 MiB against 849 MiB. */
static int owner_rank(const seg_superslab_t *ss, const seg_owner_t *owner)
{
    if (!owner->tag) return 0;
    if (ss->owner == owner->tag) return ss == owner->home ? 4 : 3;
    if (ss->owner == 0 || (seg_state.client_owner_gone && seg_state.client_owner_gone(ss->owner)))
        return 2;
    return owner->home ? 1 : -1;
}

/* Best fit: the shortest free run that holds n units offering min_bytes,
 * in the fullest SuperSlab among equals, and where the slab may start in
 * it (*starts); NULL if none has room. Among the first SuperSlabs of the
 * partial lists that may hold n units, shortest longest runs first. Ranked
 * first by owner_rank. Taking the first
 * fit instead cut the long runs that slabs of many units need into pieces
 * no such slab fits, while the SuperSlab's huge page stayed resident
 * whole: git log -p (about 100 MiB of 64-512 KiB blocks in its delta base
 * cache, slabs of 4 to 16 units) mapped 168 MiB of SuperSlabs for 125 MiB
 * of slabs. */
static seg_superslab_t *best_fit(seg_pool_t *pool, const seg_owner_t *owner, unsigned n_units,
                                 size_t min_bytes, uint64_t *starts)
{
    seg_superslab_t *ss = NULL;
    unsigned best_len = 0, best_free = 0, candidates = 0, passed = 0;
    int best_rank = -1, top_rank = !owner->tag ? 0 : owner->home ? 4 : 3;
    seg_superslab_t *c = NULL;
    for (unsigned k = seg_partial_first(n_units);
         candidates < SEG_FIT_CANDIDATES && passed < SEG_FIT_PASSED_MAX; c = c->next) {
        while (!c && k < SEG_PARTIAL_LISTS) c = pool->partial[k++];
        if (!c) break;
        uint64_t fit = fitting_starts(c->free_units, n_units, min_bytes), in_run = 0;
        if (!fit) continue;
        int rank = owner_rank(c, owner);
        if (rank < 0) {
            passed++;
            continue;
        }
        candidates++;
        unsigned len = shortest_fitting_run(c->free_units, fit, &in_run);
        unsigned n_free = (unsigned)__builtin_popcountll(c->free_units);
        if (rank > best_rank ||
            (rank == best_rank && (len < best_len || (len == best_len && n_free < best_free)))) {
            ss = c;
            *starts = in_run;
            best_len = len;
            best_free = n_free;
            best_rank = rank;
        }
        if (len == n_units && rank == top_rank) break;
    }
    return ss;
}

/* best_fit for *n_units, else for min_units (then *n_units is lowered). */
static seg_superslab_t *fit(seg_pool_t *pool, const seg_owner_t *owner, unsigned *n_units,
                            unsigned min_units, size_t min_bytes, uint64_t *starts)
{
    seg_superslab_t *ss = best_fit(pool, owner, *n_units, min_bytes, starts);
    if (!ss && min_units < *n_units) {
        ss = best_fit(pool, owner, min_units, min_bytes, starts);
        if (ss) *n_units = min_units;
    }
    return ss;
}

/* Out of line: in the text every process runs, its two copies (units_take,
 * units_back) took 250 bytes more. */
HS_NOINLINE void seg_partial_place(seg_pool_t *pool, seg_superslab_t *ss)
{
    unsigned want = ss->free_units == 0 || ss->free_units == SEG_ALL_UNITS_FREE
                        ? 0
                        : 1 + seg_partial_list_of(ss->free_units);
    if (ss->on_partial == want) return;
    if (ss->on_partial) list_remove(&pool->partial[ss->on_partial - 1], ss);
    if (want) list_push(&pool->partial[want - 1], ss);
    ss->on_partial = (uint8_t)want;
}

/* Takes the free units `bits` of ss (its pool's lock held) into a slab;
 * the SuperSlab moves to the partial list its free units now call for, or
 * leaves them with none free. */
static void units_take(seg_pool_t *pool, seg_superslab_t *ss, uint64_t bits)
{
    ss->free_units &= ~bits;
    ss->fresh_units &= ~bits;
    units_changed(ss);
    pool->units_taken_ms = ss->units_changed_ms;
    seg_small_heap_units_taken(ss, bits);
    seg_partial_place(pool, ss);
    SEG_VALIDATE(ss);
}

/* Waits, with the pool's lock released, until the thread taking a
 * SuperSlab for it (superslab_taker) has put it on the partial list, then
 * takes the lock again and looks for room as seg_units_alloc did. One
 * SuperSlab comes at a time: threads that found no room while one was on
 * its way each mapped their own, and a burst of threads mapped three or
 * four where one or two held their slabs (bench_memory churn: 4-7
 * SuperSlabs in 6 runs of 20, against 1-3; the fourth made the small heap
 * count as grown, and its SuperSlabs huge pages: 4.2-10.4 MiB peak RSS
 * against 2.1). The taker waits for no one and holds no lock through its
 * system calls, so the wait ends with them (or the taker's ENOMEM, after
 * which the waiter takes one itself). A taker that never ends them (a
 * thread cancelled in its read of a node's free hugetlb pages, one that a
 * signal handler took elsewhere) holds no one for longer than
 * SEG_TAKER_WAIT_MS: the waiter then clears its mark and takes one
 * itself, as all did before. Apart: only a program with threads runs it. */
static HS_NOINLINE HS_APART_LATE seg_superslab_t *
fit_after_taker(seg_pool_t *pool, const seg_owner_t *owner, unsigned *n_units, unsigned min_units,
                size_t min_bytes, uint64_t *starts)
{
    hs_unlock(&pool->lock);
    hs_assert_no_lock_for_slow_call("a wait for another thread's SuperSlab");
    uint64_t give_up_ms = seg_now_ms() + SEG_TAKER_WAIT_MS;
    const void *taker;
    while ((taker = atomic_load_explicit(&pool->superslab_taker, memory_order_acquire))) {
        if (seg_now_ms() >= give_up_ms) {
            atomic_compare_exchange_strong(&pool->superslab_taker, &taker, NULL);
            break;
        }
        os_yield();
    }
    hs_lock(&pool->lock);
    return fit(pool, owner, n_units, min_units, min_bytes, starts);
}

seg_superslab_t *seg_units_alloc(unsigned node, seg_owner_t *owner, unsigned *n_units_io,
                                 unsigned min_units, size_t min_bytes, bool at_end,
                                 unsigned *first_unit, bool *fresh)
{
    unsigned n_units = *n_units_io;
    HS_ASSERT(min_units >= 1 && min_units <= n_units && n_units <= HS_UNITS_PER_SUPERSLAB);
    HS_ASSERT(min_bytes <= min_units * HS_UNIT_SIZE);
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    uint64_t starts = 0;
    seg_superslab_t *ss = fit(pool, owner, &n_units, min_units, min_bytes, &starts);
    /* No room in the SuperSlabs in use, and none idle: before one is
     * mapped (or a purged one revived), 2 MiB more in RSS, the caller's
     * slabs that other threads emptied go back, and their units may hold
     * the slab. */
    if (!ss && !pool->idle && seg_state.client_reclaim) {
        hs_unlock(&pool->lock);
        bool released = seg_state.client_reclaim();
        hs_lock(&pool->lock);
        if (released) ss = fit(pool, owner, &n_units, min_units, min_bytes, &starts);
    }
    bool taken = false;
    while (!ss) {
        const void *me = &hs_lock_thread,
                   *taker = atomic_load_explicit(&pool->superslab_taker, memory_order_relaxed);
        /* In the fork window the taker waits for this thread's fork to
         * release the pool's lock: it takes one of its own. */
        if (taker && taker != me && !hs_in_fork_window()) {
            ss = fit_after_taker(pool, owner, &n_units, min_units, min_bytes, &starts);
            continue;
        }
        /* The taker itself is here again only from a signal handler that
         * allocates: it takes one of its own, as it did before the waits,
         * rather than wait for itself. */
        if (!taker) atomic_store_explicit(&pool->superslab_taker, me, memory_order_relaxed);
        ss = take_superslab(pool, node);
        if (!taker) atomic_store_explicit(&pool->superslab_taker, NULL, memory_order_release);
        taken = true;
        break;
    }
    if (taken) {
        if (!ss) {
            hs_unlock(&pool->lock);
            errno = ENOMEM;
            return NULL;
        }
        /* On a partial list once units_take has cut the slab. */
        starts = fitting_starts(ss->free_units, n_units, min_bytes);
        ss->owner = 0; /* idle_since_ms until now (an idle one) */
    }
    /* starts lie in one free run (best_fit), or anywhere in a new one. */
    unsigned first =
        at_end ? 63u - (unsigned)__builtin_clzll(starts) : (unsigned)__builtin_ctzll(starts);
    uint64_t bits = seg_unit_bits(first, n_units);
    *fresh = (ss->fresh_units & bits) == bits;
    if (owner_rank(ss, owner) == 2) ss->owner = owner->tag;
    owner->owned = owner->tag && ss->owner == owner->tag;
    units_take(pool, ss, bits);
    hs_unlock(&pool->lock);
    *first_unit = first;
    *n_units_io = n_units;
    return ss;
}

bool seg_units_extend(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    if (n_units == 0 || first_unit + n_units > HS_UNITS_PER_SUPERSLAB) return false;
    seg_pool_t *pool = seg_pool(ss->node);
    uint64_t bits = seg_unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    bool free = (ss->free_units & bits) == bits;
    if (free) units_take(pool, ss, bits);
    hs_unlock(&pool->lock);
    return free;
}

/* Units came back to ss (its pool's lock held): empty, it goes to the idle
 * list (true), else it is on the partial list of its longest free run. */
static bool units_back(seg_pool_t *pool, seg_superslab_t *ss)
{
    seg_partial_place(pool, ss);
    if (ss->free_units != SEG_ALL_UNITS_FREE) return false;
    ss->idle_since_ms = seg_now_ms();
    list_push(&pool->idle, ss);
    pool->idle_count++;
    hs_count_add(&seg_state.stat_idle_superslabs, 1);
    return true;
}

/* Units from which on a slab's pages go back at once when it is freed
 * while the heap is small, in one of its deferred SuperSlabs (base pages:
 * no huge page is split): slabs cut then are of one unit (seg_small_heap),
 * so these hold one block of 32 KiB or more, which tiny/ releases as the
 * block is freed from 48 KiB on (TINY_GIVE_BACK_MIN in tiny.c), or as a
 * one-block slab of another class needs the room (make_room_for_one_block).
 * Left to the purge thread, they would start it, which costs a small
 * program more than they hold (SEG_PURGE_UNITS_MIN). Not in an overflow,
 * deferred too, whose full-size slabs of many units come and go. */
#define SEG_GIVE_BACK_UNITS 2

/* Pages units_give_back gives back in a process's life, at most: a slab
 * cut there again faults them one by one, and a program that keeps a few
 * blocks of 32-64 KiB alive and replaces them at random frees a slab of
 * two units at each turn (bench_random_mixed with 100 such blocks: a
 * madvise and a fault or more per malloc, 89,000 faults in 200,000 calls,
 * 0.3 M calls a second against glibc's 8 M). One SuperSlab's pages: the
 * small heap's fault budget again at most. The short programs that use it
 * stay under: python3 building a list of a million strings gives back 352
 * pages (its start-up's buffers and its array's old copies), sort -R 208,
 * python3 -c pass and git log -p 80. */
#define SEG_GIVE_BACK_UNIT_PAGES_MAX ((long)(HS_SUPERSLAB_SIZE / SEG_PAGE_SIZE))
/* what units_give_back gave back, and asked for past the budget */
static _Atomic long units_given_back;

/* Whether the pages of units about to be freed went back to the kernel,
 * while no slab can be cut there: they are then all zero, fresh again. A
 * system call: no lock held. Not with the fork handlers (HS_APART), where
 * it was while the text every process runs had no room: python3 -c pass,
 * sort -R and git log -p call it, and kept the apart text's 8 KiB. */
HS_COLD static bool units_give_back(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    long pages = (long)(n_units * SEG_PAGES_PER_UNIT);
    /* Unit 0 holds the header and the client area. The budget is counted
     * last: only what would have gone back spends it. */
    return first_unit != 0 && seg_small_heap() && seg_small_heap_holds(ss) &&
           atomic_fetch_add_explicit(&units_given_back, pages, memory_order_relaxed) + pages <=
               SEG_GIVE_BACK_UNIT_PAGES_MAX &&
           seg_give_back_now((char *)ss + (size_t)first_unit * HS_UNIT_SIZE,
                             (size_t)n_units * HS_UNIT_SIZE);
}

void seg_units_free(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    bool zeroed =
        HS_UNLIKELY(n_units >= SEG_GIVE_BACK_UNITS) && units_give_back(ss, first_unit, n_units);
    seg_pool_t *pool = seg_pool(ss->node);
    uint64_t bits = seg_unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    HS_ASSERT((ss->free_units & bits) == 0);
    ss->free_units |= bits;
    if (zeroed) ss->fresh_units |= bits;
    units_changed(ss);
    bool now_idle = units_back(pool, ss);
    bool purge_units =
        !now_idle && units_purgeable(ss) &&
        __builtin_popcountll(ss->free_units) >= SEG_PURGE_UNITS_MIN &&
        (purge_started() ||
         __builtin_popcountll(ss->free_units & ~ss->fresh_units) >= SEG_PURGE_UNITS_MIN);
    /* A sparse huge page wakes a running purge thread but starts none: a
     * growing heap frees slabs too (the small heap's one-unit ones, as
     * tiny/ cuts larger ones), and starting the thread then made a program
     * pay its stack and TLS faults during its work (bench_memory kv: 17 of
     * 667). The first memory to fall idle starts it; its passes then time
     * the sparse ones too. */
    bool sparse = !now_idle && !purge_units && huge_sparse(ss) && purge_started();
    SEG_VALIDATE(ss);
    hs_unlock(&pool->lock);
    if (now_idle)
        purge_notify(seg_idle_due_in_ms());
    else if (purge_units || sparse)
        purge_notify(PURGE_LATER);
}

HS_COLD unsigned seg_take_free_units(const seg_purge_policy_t *policy, uint64_t now_ms,
                                     seg_free_units_t *out, unsigned max, uint64_t *next_due)
{
    unsigned taken = 0;
    *next_due = UINT64_MAX;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        seg_pool_t *pool = seg_pool(n);
        hs_lock(&pool->lock);
        seg_superslab_t *ss = NULL, *next = NULL;
        for (unsigned k = 0; taken < max; ss = next) {
            while (!ss && k < SEG_PARTIAL_LISTS) ss = pool->partial[k++];
            if (!ss) break;
            next = ss->next;
            bool base = units_purgeable(ss);
            if (!ss->units_purged && (base || huge_sparse(ss))) {
                /* A huge page is given up only after the release delay: a
                 * program that comes back sooner refills it fault-free.
                 * And only once no slab has been cut on the node for as
                 * long: a heap that is growing again reaches the SuperSlab
                 * soon, and split meanwhile it costs a fault per page of its
                 * free units instead of none: Redis, refilled 0.2 s after
                 * FLUSHALL, took 20,004-30,714 faults, 208-239 with this
                 * rule; its refill lasts 10-17 s, and the sparse SuperSlabs
                 * it had not reached yet were split on the way. */
                uint64_t wait = base ? policy->purge_after_ms : policy->release_after_ms;
                uint64_t quiet = seg_ms_since32((uint32_t)now_ms, ss->units_changed_ms);
                uint64_t grown = seg_ms_since32((uint32_t)now_ms, pool->units_taken_ms);
                if (!base && grown < quiet) quiet = grown;
                if (quiet >= wait) {
                    /* Out of free_units (and so of the partial list) while
                     * their pages go back: no slab may be cut there meanwhile. */
                    out[taken++] = (seg_free_units_t){ss, ss->free_units,
                                                      ss->free_units & ~ss->fresh_units, !base};
                    ss->free_units = 0;
                    ss->units_purged = SEG_UNITS_PURGING;
                    seg_partial_unlink(pool, ss);
                    if (!base) counted_as_base_pages(ss);
                } else if (now_ms + (wait - quiet) < *next_due) {
                    *next_due = now_ms + (wait - quiet);
                }
            }
        }
        hs_unlock(&pool->lock);
    }
    return taken;
}

void seg_return_free_units(const seg_free_units_t *taken)
{
    seg_superslab_t *ss = taken->ss;
    seg_pool_t *pool = seg_pool(ss->node);
    hs_lock(&pool->lock);
    ss->free_units |= taken->units;
    /* Still SEG_UNITS_PURGING unless a unit was freed meanwhile: that one's
     * pages may still be resident. */
    ss->units_purged = ss->units_purged == SEG_UNITS_PURGING;
    bool now_idle = units_back(pool, ss);
    SEG_VALIDATE(ss);
    hs_unlock(&pool->lock);
    if (now_idle) purge_notify(PURGE_LATER);
}

/* ---- slabs of pages ------------------------------------------------------------ */

/* Unit u's free pages as a byte of the page map would hold them. */
static unsigned unit_free_pages(const seg_superslab_t *ss, unsigned u)
{
    if (ss->free_units >> u & 1) return 0xff;
    return seg_page_map((seg_superslab_t *)ss)->free[u];
}

/* The byte of the page map for the pages of [first, end) in unit u (which
 * the range reaches). */
static unsigned unit_pages(unsigned u, unsigned first, unsigned end)
{
    unsigned base = u * SEG_PAGES_PER_UNIT;
    unsigned from = first > base ? first - base : 0;
    unsigned to = end < base + SEG_PAGES_PER_UNIT ? end - base : SEG_PAGES_PER_UNIT;
    return (unsigned)seg_unit_bits(from, to - from);
}

/* The free pages at the end of a unit of the page map (those after the
 * slab that ends in it) and at its start (before the one that starts). */
static unsigned map_tail(unsigned map) { return (unsigned)__builtin_clz(~(map << 24)); }
static unsigned map_head(unsigned map) { return (unsigned)__builtin_ctz(~map); }

/* The shortest free run of pages of ss from unit 1 on that holds `pages`
 * (two units' or more): returns its length (0: none) and sets *start to
 * its first page. Such a run is free units, with the free pages at the end
 * of the unit before them and at the start of the unit after them (the
 * free end of one unit partly used and the free start of the next hold 14
 * pages at most: never enough). Only the free runs of units that hold a
 * bit of `starts` are looked at: the starts, from unit 1 on, of as many
 * free units in a row as such a run needs at the least. A unit next to a
 * free run is not free, so its byte of the page map is its free pages (0
 * in a slab of units). */
static unsigned shortest_page_run(const seg_superslab_t *ss, unsigned pages, uint64_t starts,
                                  unsigned *start)
{
    const uint8_t *map = seg_page_map((seg_superslab_t *)ss)->free;
    uint64_t free_units = ss->free_units & ~(uint64_t)1;
    unsigned best = 0;
    /* A free run's lowest start is its first unit. */
    while (starts) {
        unsigned begin = (unsigned)__builtin_ctzll(starts);
        uint64_t taken_after = ~(free_units >> begin);
        unsigned len =
            taken_after ? (unsigned)__builtin_ctzll(taken_after) : HS_UNITS_PER_SUPERSLAB - begin;
        unsigned u = begin + len;
        starts &= u < HS_UNITS_PER_SUPERSLAB ? ~(uint64_t)0 << u : 0;
        unsigned before = map_tail(map[begin - 1]);
        unsigned after = u < HS_UNITS_PER_SUPERSLAB ? map_head(map[u]) : 0;
        unsigned run = before + len * SEG_PAGES_PER_UNIT + after;
        if (run >= pages && (!best || run < best)) {
            best = run;
            *start = begin * SEG_PAGES_PER_UNIT - before;
        }
    }
    return best;
}

/* Takes pages [first, first + pages) of ss (its pool's lock held), which
 * lie in one free run: whole free units through units_take, the others in
 * the page map. True when every page was in a fresh unit. */
HS_SELDOM static bool pages_take(seg_pool_t *pool, seg_superslab_t *ss, unsigned first,
                                 unsigned pages)
{
    seg_page_map_t *map = seg_page_map(ss);
    unsigned end = first + pages, first_unit = first / SEG_PAGES_PER_UNIT;
    unsigned last_unit = (end - 1) / SEG_PAGES_PER_UNIT;
    uint64_t whole = 0;
    for (unsigned u = first_unit; u <= last_unit; u++) {
        unsigned covered = unit_pages(u, first, end);
        unsigned left = unit_free_pages(ss, u) & ~covered;
        HS_ASSERT((unit_free_pages(ss, u) & covered) == covered);
        if (ss->free_units >> u & 1) whole |= (uint64_t)1 << u;
        map->free[u] = (uint8_t)left;
    }
    bool fresh = first % SEG_PAGES_PER_UNIT == 0 &&
                 whole == seg_unit_bits(first_unit, last_unit - first_unit + 1) &&
                 (ss->fresh_units & whole) == whole;
    if (whole) units_take(pool, ss, whole);
    return fresh;
}

HS_SELDOM seg_superslab_t *seg_pages_alloc(unsigned node, unsigned pages, unsigned *first_page,
                                           bool *fresh)
{
    HS_ASSERT(pages >= 2 * SEG_PAGES_PER_UNIT && pages <= 62 * SEG_PAGES_PER_UNIT);
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    seg_superslab_t *best = NULL;
    unsigned best_len = 0, best_free = 0, best_start = 0, candidates = 0;
    /* Free units in a row that a run of `pages` needs at the least: the
     * free pages before and after them are at most 7 each (a unit with 8
     * free is a free unit). */
    const unsigned around = 2 * (SEG_PAGES_PER_UNIT - 1);
    unsigned need_units = (pages - around + SEG_PAGES_PER_UNIT - 1) / SEG_PAGES_PER_UNIT;
    seg_superslab_t *c = NULL;
    for (unsigned k = seg_partial_first(need_units); candidates < SEG_FIT_CANDIDATES; c = c->next) {
        while (!c && k < SEG_PARTIAL_LISTS) c = pool->partial[k++];
        if (!c) break;
        uint64_t starts = fitting_starts(c->free_units & ~(uint64_t)1, need_units, 0);
        unsigned start = 0, len = shortest_page_run(c, pages, starts, &start);
        if (!len) continue;
        candidates++;
        /* The fullest among equal fits; counted only for a tie (popcount
         * is a call into libgcc on x86-64 without -mpopcnt). */
        if (best && len > best_len) continue;
        unsigned n_free = (unsigned)__builtin_popcountll(c->free_units);
        if (!best || len < best_len || n_free < best_free) {
            best = c;
            best_len = len;
            best_free = n_free;
            best_start = start;
        }
        /* Close enough: a sixteenth more than asked. Looking on for the
         * exact fit cost 12-15 % of the instructions of 1,000 live blocks
         * of 128 KiB - 1 MiB replaced at random, and gave no lower peak
         * (bench/README.md). */
        if (len - pages <= pages / 16) break;
    }
    if (best) {
        *fresh = pages_take(pool, best, best_start, pages);
        hs_unlock(&pool->lock);
        *first_page = best_start;
        return best;
    }
    hs_unlock(&pool->lock);
    /* Whole units, past unit 0 (which starts after the client area: its
     * bytes never offer all of its units' size). */
    seg_owner_t untagged = {0, NULL, false};
    unsigned n_units = (pages + SEG_PAGES_PER_UNIT - 1) / SEG_PAGES_PER_UNIT, first_unit;
    seg_superslab_t *ss = seg_units_alloc(node, &untagged, &n_units, n_units,
                                          n_units * HS_UNIT_SIZE, false, &first_unit, fresh);
    if (!ss) return NULL;
    unsigned spare = n_units * SEG_PAGES_PER_UNIT - pages;
    if (spare) {
        /* The last unit's pages past the slab's end are free. */
        hs_lock(&pool->lock);
        unsigned last_unit = first_unit + n_units - 1;
        seg_page_map(ss)->free[last_unit] =
            (uint8_t)unit_pages(last_unit, first_unit * SEG_PAGES_PER_UNIT + pages,
                                (last_unit + 1) * SEG_PAGES_PER_UNIT);
        SEG_VALIDATE(ss);
        hs_unlock(&pool->lock);
    }
    *first_page = first_unit * SEG_PAGES_PER_UNIT;
    return ss;
}

HS_SELDOM bool seg_pages_extend(seg_superslab_t *ss, unsigned first_page, unsigned pages)
{
    unsigned end = first_page + pages;
    if (pages == 0 || end > HS_UNITS_PER_SUPERSLAB * SEG_PAGES_PER_UNIT) return false;
    seg_pool_t *pool = seg_pool(ss->node);
    hs_lock(&pool->lock);
    bool free = true;
    for (unsigned u = first_page / SEG_PAGES_PER_UNIT; u <= (end - 1) / SEG_PAGES_PER_UNIT && free;
         u++) {
        unsigned covered = unit_pages(u, first_page, end);
        free = (unit_free_pages(ss, u) & covered) == covered;
    }
    if (free) pages_take(pool, ss, first_page, pages);
    hs_unlock(&pool->lock);
    return free;
}

HS_SELDOM void seg_pages_free(seg_superslab_t *ss, unsigned first_page, unsigned pages)
{
    seg_pool_t *pool = seg_pool(ss->node);
    seg_page_map_t *map = seg_page_map(ss);
    unsigned end = first_page + pages, first_unit = first_page / SEG_PAGES_PER_UNIT;
    unsigned last_unit = (end - 1) / SEG_PAGES_PER_UNIT;
    unsigned back_from = HS_UNITS_PER_SUPERSLAB, back_to = 0;
    hs_lock(&pool->lock);
    for (unsigned u = first_unit; u <= last_unit; u++) {
        unsigned covered = unit_pages(u, first_page, end);
        HS_ASSERT(!(ss->free_units >> u & 1) && (map->free[u] & covered) == 0);
        unsigned now_free = map->free[u] | covered;
        if (now_free == 0xff) {
            map->free[u] = 0;
            if (u < back_from) back_from = u;
            back_to = u + 1;
        } else {
            map->free[u] = (uint8_t)now_free;
        }
    }
    hs_unlock(&pool->lock);
    /* The units whose pages are all free again: contiguous, as only the
     * first and the last can keep a page of another slab. */
    if (back_to > back_from) seg_units_free(ss, back_from, back_to - back_from);
}

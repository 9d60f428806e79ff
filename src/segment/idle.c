/* idle.c: idle memory, and handing it to the purge thread: the cache
 * limit, the idle lists, and the purged stacks SuperSlabs wait on for reuse.
 * - An idle SuperSlab is on its pool's idle list, newest first, and named
 *   in the registry. Taken for purging (seg_take_idle) it is in neither
 *   until seg_store_purged puts it on a purged stack or seg_unmap_idle
 *   unmaps it; a taken run stays named, as a freed one.
 * - A purged stack's SuperSlabs are unknown to the registry until revived;
 *   the stack is in time order, oldest at the bottom: seg_take_lazy takes
 *   from there, reuse from the top. */
#include <string.h>

#include "numa/numa.h"
#include "segment/segment_internal.h"

void seg_idle_unlink(seg_pool_t *pool, seg_superslab_t *ss)
{
    if (pool->outgrown == ss) pool->outgrown = NULL;
    list_remove(&pool->idle, ss);
    pool->idle_count--;
    hs_count_add(&seg_state.stat_idle_superslabs, -1);
}

static size_t idle_bytes_total(void)
{
    return (atomic_load_explicit(&seg_state.stat_idle_superslabs, memory_order_relaxed)
            << HS_SUPERSLAB_SHIFT) +
           seg_state.run_cache_bytes;
}

/* How much idle memory is worth holding for reuse: what the program
 * recently had in use says how much it may soon ask for again. A quarter of
 * the recent peak (16 MiB at least), which halves every second once use
 * falls, plus the reserve; never more than HUGESLAB_CACHE_MB. A fixed 1 GiB made every
 * program that freed much look 1 GiB bigger to RSS monitors. */
static size_t cache_limit(const seg_purge_policy_t *policy)
{
    uint64_t mapped = atomic_load_explicit(&seg_state.stat_bytes_mapped, memory_order_relaxed);
    uint64_t resting =
        idle_bytes_total() +
        (atomic_load_explicit(&seg_state.stat_purged_superslabs, memory_order_relaxed)
         << HS_SUPERSLAB_SHIFT);
    uint64_t in_use = mapped > resting ? mapped - resting : 0;
    uint64_t now = seg_now_ms();
    uint64_t peak = atomic_load_explicit(&seg_state.recent_peak_bytes, memory_order_relaxed);
    uint64_t at = atomic_load_explicit(&seg_state.recent_peak_at_ms, memory_order_relaxed);
    if (seg_ms_since(now, at) >= 1000) {
        uint64_t halvings = (now - at) / 1000;
        peak = halvings >= 64 ? 0 : peak >> halvings;
        at = now;
    }
    if (in_use >= peak) {
        peak = in_use;
        at = now;
    }
    atomic_store_explicit(&seg_state.recent_peak_bytes, peak, memory_order_relaxed);
    atomic_store_explicit(&seg_state.recent_peak_at_ms, at, memory_order_relaxed);
    /* At least 16 MiB: below, a program that frees and refills a small heap
     * would have the purge thread woken and madvising at every turn. */
    size_t limit =
        (peak / 4 > 16 * HS_MiB ? (size_t)(peak / 4) : 16 * HS_MiB) + policy->reserve_bytes;
    return limit < policy->cache_cap_bytes ? limit : policy->cache_cap_bytes;
}

static bool over_cache_limit(const seg_purge_policy_t *policy)
{
    return idle_bytes_total() > cache_limit(policy);
}

seg_purge_policy_t seg_purge_policy(void)
{
    uint64_t purge_after = (uint64_t)hs_option(HS_OPT_PURGE_DELAY_MS);
    uint64_t lazy_release = (uint64_t)hs_option(HS_OPT_RELEASE_DELAY_MS);
    return (seg_purge_policy_t){
        .purge_after_ms = purge_after,
        .release_after_ms = purge_after + lazy_release,
        .lazy_release_after_ms = lazy_release,
        .reserve_bytes = (size_t)hs_option(HS_OPT_RESERVE_MB) * HS_MiB,
        .cache_cap_bytes = (size_t)hs_option(HS_OPT_CACHE_MB) * HS_MiB,
        .dontneed = hs_option(HS_OPT_PURGE) == HS_PURGE_DONTNEED,
        .release_for_fresh = true,
        .uring = hs_option(HS_OPT_PURGE_BACKEND) == HS_PURGE_BACKEND_URING,
    };
}

/* How long a SuperSlab beyond the cache limit stays idle before it goes
 * (within HUGESLAB_CACHE_MB). A program whose in-use memory swings by a
 * few SuperSlabs empties some and takes them back within milliseconds:
 * taken at once, each came back as a revived one, a huge page zeroed again
 * (a producer of 128 KiB - 1 MiB blocks that another thread frees, with
 * slabs of pages: 1,929 SuperSlabs so in 0.7 s). */
#define SEG_OVER_LIMIT_MIN_MS 100

/* How long idle memory waits while over the cache limit: SEG_OVER_LIMIT_MIN_MS,
 * none beyond HUGESLAB_CACHE_MB (PURGE_NOW); PURGE_LATER when within it.
 * One copy: inlined in its two callers, it put the text every process
 * runs past its ten pages. */
HS_NOINLINE static uint64_t over_limit_wait_ms(const seg_purge_policy_t *policy)
{
    if (!over_cache_limit(policy)) return PURGE_LATER;
    return idle_bytes_total() > policy->cache_cap_bytes ? PURGE_NOW : SEG_OVER_LIMIT_MIN_MS;
}

uint64_t seg_idle_due_in_ms(void)
{
    seg_purge_policy_t policy = seg_purge_policy();
    return over_limit_wait_ms(&policy);
}

/* With `lock` (the pool's) held; it may be let go while the stack grows. */
static bool purged_push(hs_lock_t *lock, seg_purged_stack_t *stack, uintptr_t entry)
{
    while (stack->count == stack->cap)
        if (!seg_metadata_grow(lock, (void **)&stack->entries, &stack->cap, &stack->count,
                               sizeof *stack->entries, 512))
            return false;
    /* Timed with the lock held, after any growth: the stack stays in time
     * order, which seg_take_lazy relies on. */
    stack->entries[stack->count++] = (seg_purged_entry_t){entry, seg_now_ms()};
    return true;
}

void seg_store_purged(seg_superslab_t *ss, unsigned node, thp_backing_t backing,
                      unsigned memory_node, bool lazy)
{
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    /* The header may be zeroed by the kernel from now on: what revival needs
     * rides in the entry's low bits (the address is 2 MiB-aligned). */
    bool kept = purged_push(&pool->lock, lazy ? &pool->lazy : &pool->released,
                            seg_purged_pack(ss, backing, memory_node));
    /* Counted before the unlock: a thread that revives the entry counts it
     * out after taking it under the lock, and counted after, the counts
     * went below 0 meanwhile (superslabs_purged read 2^64 - 1). */
    if (kept) {
        hs_count_add(&seg_state.stat_purged_superslabs, 1);
        if (lazy) hs_count_add(&seg_lazy_superslabs, 1);
    }
    hs_unlock(&pool->lock);
    if (!kept) seg_unmap_purged(&(seg_purged_t){ss, node, backing, memory_node});
}

HS_SELDOM void seg_unmap_purged(const seg_purged_t *purged)
{
    /* The header may read as zero since the advice: seg_unmap_idle reads
     * the node its pages are counted on there. */
    purged->ss->memory_node = (uint16_t)purged->memory_node;
    seg_unmap_idle(purged->ss, HS_SUPERSLAB_SIZE, purged->backing);
}

_Atomic uint64_t seg_lazy_superslabs;

/* What fresh memory asked to go back (seg_note_fresh), in SuperSlabs, and
 * when it last asked. */
static struct {
    _Atomic uint64_t superslabs;
    _Atomic uint64_t at_ms;
} fresh_asks;

HS_COLD HS_SELDOM void seg_note_fresh(size_t bytes)
{
    uint64_t lazy = atomic_load_explicit(&seg_lazy_superslabs, memory_order_relaxed);
    uint64_t resting =
        lazy + atomic_load_explicit(&seg_state.stat_idle_superslabs, memory_order_relaxed);
    if (!resting) return;
    /* Never more than what rests now, however many mappings asked: a heap
     * that only grows asks nothing, and what it frees later waits both
     * stages, as before (asks summed over a run of mappings beside one
     * resting SuperSlab would send later frees straight to MADV_DONTNEED). */
    uint64_t n = bytes >> HS_SUPERSLAB_SHIFT;
    uint64_t asked = atomic_load_explicit(&fresh_asks.superslabs, memory_order_relaxed);
    uint64_t total;
    do {
        total = asked + n < resting ? asked + n : resting;
    } while (total > asked &&
             !atomic_compare_exchange_weak_explicit(&fresh_asks.superslabs, &asked, total,
                                                    memory_order_relaxed, memory_order_relaxed));
    atomic_store_explicit(&fresh_asks.at_ms, seg_now_ms(), memory_order_relaxed);
    /* Idle SuperSlabs fall due on the purge thread's timer already. */
    if (lazy) purge_notify(PURGE_NOW);
}

/* Not HS_SELDOM: every purge pass that finds SuperSlabs due asks it. */
HS_COLD unsigned seg_fresh_take(const seg_purge_policy_t *policy, uint64_t now_ms, unsigned want)
{
    uint64_t have = atomic_load_explicit(&fresh_asks.superslabs, memory_order_relaxed);
    if (!have) return 0;
    /* Asked long ago: the fresh memory was faulted in beside what was
     * resting then, and the lazy stage's own end is as near. */
    uint64_t asked_at = atomic_load_explicit(&fresh_asks.at_ms, memory_order_relaxed);
    /* A pass's clock may predate an ask made during the pass: not old. */
    if (now_ms > asked_at && now_ms - asked_at > policy->lazy_release_after_ms) {
        atomic_store_explicit(&fresh_asks.superslabs, 0, memory_order_relaxed);
        return 0;
    }
    uint64_t granted;
    do {
        granted = have < want ? have : want;
    } while (granted &&
             !atomic_compare_exchange_weak_explicit(&fresh_asks.superslabs, &have, have - granted,
                                                    memory_order_relaxed, memory_order_relaxed));
    return (unsigned)granted;
}

/* Not HS_SELDOM: every purge pass calls it, and a short program's first
 * pass brought the seldom text's 64 KiB window into its RSS (52 KiB of it
 * mapped; python3 -c pass, git log -p). */
HS_COLD unsigned seg_take_lazy(const seg_purge_policy_t *policy, uint64_t now_ms, seg_purged_t *out,
                               unsigned max, uint64_t *next_due)
{
    uint64_t min_lazy_ms = policy->lazy_release_after_ms;
    unsigned taken = 0;
    *next_due = UINT64_MAX;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        seg_pool_t *pool = seg_pool(n);
        seg_purged_stack_t *lazy = &pool->lazy;
        hs_lock(&pool->lock);
        /* Oldest first, from the bottom; the rest moves down. */
        size_t k = 0;
        while (k < lazy->count && taken < max &&
               seg_ms_since(now_ms, lazy->entries[k].since_ms) >= min_lazy_ms)
            out[taken++] = seg_purged_unpack(lazy->entries[k++].bits, n);
        /* Then, before their time, as many as fresh memory asks for. */
        if (policy->release_for_fresh && k < lazy->count && taken < max) {
            size_t room = lazy->count - k < max - taken ? lazy->count - k : max - taken;
            unsigned early = seg_fresh_take(policy, now_ms, (unsigned)room);
            while (early--) out[taken++] = seg_purged_unpack(lazy->entries[k++].bits, n);
        }
        if (k) {
            lazy->count -= k;
            memmove(lazy->entries, lazy->entries + k, lazy->count * sizeof *lazy->entries);
            seg_purged_taken(pool, lazy, k);
        }
        if (lazy->count && lazy->entries[0].since_ms + min_lazy_ms < *next_due)
            *next_due = lazy->entries[0].since_ms + min_lazy_ms;
        hs_unlock(&pool->lock);
    }
    return taken;
}

HS_COLD HS_SELDOM unsigned seg_take_purged(seg_purged_t *out, unsigned max)
{
    unsigned taken = 0;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        seg_pool_t *pool = seg_pool(n);
        hs_lock(&pool->lock);
        seg_purged_stack_t *stacks[2] = {&pool->lazy, &pool->released};
        for (unsigned k = 0; k < 2; k++) {
            seg_purged_stack_t *stack = stacks[k];
            unsigned from_stack = 0;
            while (stack->count && taken < max) {
                out[taken++] = seg_purged_unpack(stack->entries[--stack->count].bits, n);
                from_stack++;
            }
            seg_purged_taken(pool, stack, from_stack);
        }
        hs_unlock(&pool->lock);
    }
    return taken;
}

/* Takes ss, idle, out of its pool (whose lock is held) and of the registry,
 * for its pages to go back. */
static HS_NOINLINE void idle_take(seg_pool_t *pool, seg_superslab_t *ss)
{
    seg_idle_unlink(pool, ss);
    seg_registry_clear(ss, HS_SUPERSLAB_SIZE);
}

HS_COLD bool seg_mark_outgrown(seg_superslab_t *ss, unsigned node)
{
    seg_pool_t *pool = seg_pool(node);
    hs_lock(&pool->lock);
    /* At the head of the pool's idle list, ss is idle and its header may be
     * read. */
    bool marked = pool->idle == ss && ss->backing != THP_BACKING_HUGETLB;
    if (marked) pool->outgrown = ss;
    hs_unlock(&pool->lock);
    return marked;
}

unsigned seg_take_idle(const seg_purge_policy_t *policy, uint64_t now_ms, seg_taken_t *out,
                       unsigned max, uint64_t *next_due)
{
    unsigned taken = 0;
    *next_due = UINT64_MAX;
    size_t reserve = policy->reserve_bytes / HS_SUPERSLAB_SIZE;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        seg_pool_t *pool = seg_pool(n);
        SEG_VALIDATE_POOL(n);
        hs_lock(&pool->lock);
        /* Newest first: the reserve (the newest), then everything idle long
         * enough (or beyond the cache limit) goes, oldest at the tail. The
         * reserve spares a program that comes back soon the faults; one
         * that stays idle gets it back after release_after_ms. */
        size_t position = 0;
        seg_superslab_t *ss = pool->idle;
        while (ss && taken < max) {
            seg_superslab_t *next = ss->next;
            uint64_t wait = position < reserve ? policy->release_after_ms : policy->purge_after_ms;
            bool outgrown = ss == pool->outgrown;
            /* Beyond the cache limit: once idle for SEG_OVER_LIMIT_MIN_MS,
             * or at once beyond HUGESLAB_CACHE_MB. */
            if (position >= reserve) {
                uint64_t over_wait = over_limit_wait_ms(policy);
                if (over_wait < wait) wait = over_wait;
            }
            /* Not while the small heap's outgrowing hints it: its hints
             * and counts would land on a SuperSlab given back and named
             * by no one (a collapse made it resident again). Due already,
             * it is taken at the next pass, at once. */
            bool due = (outgrown || seg_ms_since(now_ms, ss->idle_since_ms) >= wait) &&
                       !(atomic_load(&seg_small_heap_claims) && seg_small_heap_leaving(ss));
            if (due) {
                idle_take(pool, ss);
                out[taken++] = (seg_taken_t){ss, outgrown};
            } else {
                uint64_t due_at = ss->idle_since_ms + wait;
                if (due_at < *next_due) *next_due = due_at;
            }
            position++;
            ss = next;
        }
        hs_unlock(&pool->lock);
    }
    /* Runs: idle ones go back whole. */
    hs_lock(&seg_state.run_cache_lock);
    seg_superslab_t *run = seg_state.run_cache;
    while (run && taken < max) {
        seg_superslab_t *next = run->next;
        if (seg_ms_since(now_ms, run->idle_since_ms) >= policy->purge_after_ms ||
            seg_state.run_cache_bytes > cache_limit(policy)) {
            seg_run_cache_remove(run);
            out[taken++] = (seg_taken_t){run, false};
        } else {
            uint64_t due_at = run->idle_since_ms + policy->purge_after_ms;
            if (due_at < *next_due) *next_due = due_at;
        }
        run = next;
    }
    hs_unlock(&seg_state.run_cache_lock);
    return taken;
}

/* segment.c: segment's shared state and what every other file of segment/
 * builds on: initialisation, the clients' hooks, the registry's writers, and
 * mapping and unmapping address ranges.
 * - seg_state is the one struct of segment's state (segment_internal.h); it
 *   starts as zeros and its locks are set up by init_layers.
 * - A range is named in the registry (seg_chunk_map) only while it is
 *   mapped and its header written; it is cleared before it is unmapped or
 *   moved.
 * - seg_map_superslabs makes every new mapping, seg_unmap_idle ends every one
 *   that goes back whole.
 * The other rooms: small_heap.c (the first SuperSlabs on base pages),
 * units.c (SuperSlabs of slabs), idle.c (idle memory for the purge thread),
 * run.c (runs), fork.c (hugetlb ranges at fork), stats.c, validate.c,
 * purge.c (the purge thread), registry.c (the registry's array). */
#include <errno.h>
#include <string.h>

#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment_internal.h"

HS_START_STATE_LAST struct seg_state_s seg_state;
struct seg_nodes_s seg_nodes;

_Static_assert(HS_MAX_NODES == 64, "seg_pools lists 64 pools");
#define NODE_POOL(n) &seg_nodes.pools[(n)-1]
#define NODE_POOLS8(n)                                                                             \
    NODE_POOL(n), NODE_POOL(n + 1), NODE_POOL(n + 2), NODE_POOL(n + 3), NODE_POOL(n + 4),          \
        NODE_POOL(n + 5), NODE_POOL(n + 6), NODE_POOL(n + 7)
seg_pool_t *const seg_pools[HS_MAX_NODES] = {
    &seg_state.pool0, NODE_POOL(1),    NODE_POOL(2),    NODE_POOL(3),    NODE_POOL(4),
    NODE_POOL(5),     NODE_POOL(6),    NODE_POOL(7),    NODE_POOLS8(8),  NODE_POOLS8(16),
    NODE_POOLS8(24),  NODE_POOLS8(32), NODE_POOLS8(40), NODE_POOLS8(48), NODE_POOLS8(56),
};

/* A look at sysfs found no free hugetlb page: none is asked for a second. */
static void hugetlb_none_until_later(_Atomic uint64_t *retry_at_ms)
{
    atomic_store_explicit(retry_at_ms, seg_now_ms() + 1000, memory_order_relaxed);
}

/* Figures purge.c adds to. */
_Atomic uint64_t seg_stat_purge_calls;
_Atomic uint64_t seg_stat_bytes_purged;

HS_COLD void seg_count_at_once(size_t bytes)
{
    hs_count_add(&seg_state.stat_purge_calls_at_once, 1);
    hs_count_add(&seg_state.stat_bytes_purged_at_once, (int64_t)bytes);
}

HS_COLD bool seg_give_back_now(void *addr, size_t size)
{
    if (os_purge(addr, size, true) != 0) return false;
    seg_count_at_once(size);
    return true;
}

HS_START_STATE static pthread_once_t init_once = PTHREAD_ONCE_INIT;

HS_SELDOM HS_NOINLINE static void registry_settle(void);

static void init_layers(void)
{
    hs_once_enter(HS_RANK_INIT_SEGMENT);
    if (HS_UNLIKELY((const void *)seg_registry_segment_mark != (const void *)seg_chunk_map))
        registry_settle();
    hs_common_init();
    thp_init();
    numa_init();
    /* Only the pools of nodes in use are ever locked: the others' pages of
     * .bss are never written (all 64 locks set up wrote two pages more). */
    for (unsigned n = 0; n < numa_node_count(); n++)
        hs_lock_init(&seg_pool(n)->lock, HS_RANK_POOL + n);
    hs_lock_init(&seg_state.run_cache_lock, HS_RANK_RUN_CACHE);
    hs_lock_init(&seg_state.hugetlb_lock, HS_RANK_HUGETLB);
    hs_once_leave(HS_RANK_INIT_SEGMENT);
}

void seg_init(void) { pthread_once(&init_once, init_layers); }

void seg_set_client_init(void (*init)(seg_superslab_t *ss)) { seg_state.client_init = init; }

void seg_set_client_reclaim(bool (*reclaim)(void)) { seg_state.client_reclaim = reclaim; }

HS_APART_LATE unsigned seg_cpus_allowed(void)
{
    static _Atomic unsigned cpus;
    unsigned n = atomic_load_explicit(&cpus, memory_order_relaxed);
    if (!n) {
        n = os_cpus_allowed();
        atomic_store_explicit(&cpus, n, memory_order_relaxed);
    }
    return n;
}

void seg_set_client_owner_gone(bool (*gone)(uintptr_t owner))
{
    seg_state.client_owner_gone = gone;
}

void seg_set_client_sparse(bool (*sparse)(void)) { seg_state.client_sparse = sparse; }

uint64_t (*seg_clock)(void) = os_now_ms;

void seg_set_clock(uint64_t (*now_ms)(void)) { seg_clock = now_ms ? now_ms : os_now_ms; }

void *seg_map_metadata(size_t size) { return os_map_pages(size); }

void seg_yield(void) { os_yield(); }

/* ---- registry ------------------------------------------------------------ */

/* Below, "mlockall". */
HS_SELDOM HS_NOINLINE static bool registry_prepare_gated(void *from, size_t size, unsigned gate);

/* The shared library's registry is a read-only segment of zero pages
 * (src/hugeslab.ld): as .bss, a private writable mapping of 64 MiB counted
 * in every process's commit charge (Committed_AS, the limit of
 * vm.overcommit_memory=2, which PostgreSQL's documentation recommends) and
 * in VmData (RLIMIT_DATA), however little of it was written. The pages of
 * entries a fresh range needs are made writable before it is named, with
 * no lock held: one mprotect per mapping, which the kernel answers at once
 * for pages already writable, beside the mmap and the faults the mapping
 * costs anyway. Remembering which pages were done took 193 bytes of the
 * text every process runs and a page of .bss. Linked statically, the
 * registry is .bss until registry_settle maps it read-only (below). */
bool seg_registry_prepare(void *base, size_t size)
{
    uintptr_t first = (uintptr_t)base >> HS_SUPERSLAB_SHIFT;
    uintptr_t last = ((uintptr_t)base + size - 1) >> HS_SUPERSLAB_SHIFT;
    if (last >= SEG_MAP_ENTRIES) return false;
    uintptr_t from = (uintptr_t)&seg_chunk_map[first] & ~(uintptr_t)4095;
    uintptr_t to = ((uintptr_t)&seg_chunk_map[last] | 4095) + 1;
    /* Counted, and told whether a trimmer counted itself first: a page made
     * writable here is one seg_lock_all's walk sees writable, or one made
     * so after it gave back the unwritten ones ("mlockall" above). */
    unsigned gate = atomic_fetch_add(&seg_state.registry_gate, SEG_GATE_PREPARER);
    bool ok = HS_UNLIKELY(gate & ~SEG_GATE_PREPARERS)
                  ? registry_prepare_gated((void *)from, to - from, gate)
                  : os_make_writable((void *)from, to - from) == 0;
    atomic_fetch_sub(&seg_state.registry_gate, SEG_GATE_PREPARER);
    return ok;
}

/* A static link's registry is .bss, private writable memory that
 * mlockall(MCL_CURRENT) faults in and locks whole, with nothing read-only
 * to give back ("mlockall" below): a static program that locked itself
 * had 68,772 KiB locked where glibc's had 964. Before any of it is written (the
 * first allocation's seg_init, or an mlockall before that), it becomes
 * what the shared library's is: zeroes mapped read-only, which
 * seg_registry_prepare makes writable where ranges are named. Where the
 * kernel refuses, it stays .bss, which works as before. */
HS_SELDOM static void registry_map_read_only(void)
{
    (void)os_map_zeroes_read_only((void *)seg_chunk_map, SEG_MAP_ENTRIES);
}

static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

HS_SELDOM HS_NOINLINE static void registry_settle(void)
{
    if ((const void *)seg_registry_segment_mark != (const void *)seg_chunk_map)
        pthread_once(&registry_once, registry_map_read_only);
}

/* Release: a chunk named is one whose header is written (seg_chunk_header
 * names it last), for a reader that looks at the header only once the
 * registry names it (still_named in small_heap.c). */
static void registry_fill(uintptr_t first, uintptr_t count, seg_chunk_kind_t kind)
{
    for (uintptr_t c = first; c < first + count; c++)
        atomic_store_explicit(&seg_chunk_map[c], (uint8_t)kind, memory_order_release);
}

void seg_registry_set(void *base, size_t size, seg_chunk_kind_t head_kind)
{
    uintptr_t first = (uintptr_t)base >> HS_SUPERSLAB_SHIFT;
    registry_fill(first, 1, head_kind);
    registry_fill(first + 1, (size >> HS_SUPERSLAB_SHIFT) - 1, SEG_CHUNK_TAIL);
}

void seg_registry_clear(void *base, size_t size)
{
    registry_fill((uintptr_t)base >> HS_SUPERSLAB_SHIFT, size >> HS_SUPERSLAB_SHIFT,
                  SEG_CHUNK_NONE);
}

/* ---- mlockall --------------------------------------------------------------
 * mlockall(MCL_CURRENT) faults in every readable page, and the kernel gives
 * each page of the registry's read-only zeroes a page of its own: 64 MiB
 * resident and locked in every process that calls it (MySQL's --memlock,
 * corosync, chronyd -m), against 2.4 MiB for the whole of a small
 * program under glibc. seg_lock_all gives the pages never written back
 * (munlock, then MADV_DONTNEED: read again, they are zeroes again). Only
 * the pages still read-only are never-written ones, and only while no
 * seg_registry_prepare makes one writable: the two exclude each other
 * through seg_state.registry_gate, each counting itself there and seeing
 * in the same atomic step whether the other runs; a preparer waits while
 * a trimmer runs (a walk of /proc/self/maps and two system calls a
 * read-only range; a call that a process makes once). While MCL_FUTURE is
 * in force, the pages made writable are locked as well, as a program's
 * heap under glibc is as brk grows it. In a static link the registry is
 * made read-only first (registry_settle), and then the same holds. */

/* seg_registry_prepare's make_writable where the gate said more than "no
 * one else": waits for trimmers, then locks the pages under MCL_FUTURE.
 * Entered counted as a preparer; leaves counted the same. */
HS_SELDOM HS_NOINLINE static bool registry_prepare_gated(void *from, size_t size, unsigned gate)
{
    while (gate & SEG_GATE_TRIMMERS) {
        atomic_fetch_sub(&seg_state.registry_gate, SEG_GATE_PREPARER);
        while (atomic_load(&seg_state.registry_gate) & SEG_GATE_TRIMMERS) seg_yield();
        gate = atomic_fetch_add(&seg_state.registry_gate, SEG_GATE_PREPARER);
    }
    if (os_make_writable(from, size) != 0) return false;
    if (gate & (SEG_GATE_LOCKED_NOW | SEG_GATE_LOCKED_ON_FAULT))
        os_lock_range(from, size, gate & SEG_GATE_LOCKED_ON_FAULT);
    return true;
}

/* The part of a mapping of /proc/self/maps that is the registry's
 * read-only zeroes: [*from, *to), empty (*from == *to) where none is. */
HS_SELDOM static void registry_read_only_part(uintptr_t start, uintptr_t end, unsigned perms,
                                              uintptr_t *from, uintptr_t *to)
{
    uintptr_t lo = (uintptr_t)seg_chunk_map, hi = lo + SEG_MAP_ENTRIES;
    *from = *to = end;
    if ((perms & OS_MAP_WRITABLE) || end <= lo || start >= hi) return;
    *from = start > lo ? start : lo;
    *to = end < hi ? end : hi;
}

/* A mapping of /proc/self/maps: its part of the registry, where read-only. */
HS_SELDOM static void registry_give_back_range(void *ctx, uintptr_t start, uintptr_t end,
                                               unsigned perms)
{
    (void)ctx;
    uintptr_t from, to;
    registry_read_only_part(start, end, perms, &from, &to);
    if (from == to) return;
    os_unlock_range((void *)from, to - from);
    os_purge((void *)from, to - from, true);
}

/* ---- mlockall without CAP_IPC_LOCK -------------------------------------------
 * Unprivileged, mlockall(MCL_CURRENT) is refused (ENOMEM) unless the whole
 * address space fits RLIMIT_MEMLOCK, the registry's 64 MiB of read-only
 * zeroes included: a small program that glibc lets lock itself under the
 * default limit of 8 MiB (its VmSize there 2,476 KiB) was refused. The registry is
 * the library's, not the program's, and the lock gives back its pages
 * anyway (above). Where the kernel refused, lock_all_but_registry makes the
 * kernel's check again with the program's mappings alone and, where they
 * fit, does what mlockall would have done: every mapping locked (mlock2)
 * but the registry's read-only pages, then MCL_FUTURE set (which the
 * kernel checks against nothing). Where the program's mappings do not
 * fit, ENOMEM stands, as the kernel answers it under glibc. */

typedef struct lock_walk_s {
    uint64_t bytes; /* counting: the program's mappings so far */
    bool locking;   /* false: count them; true: lock them */
    bool on_fault;  /* MCL_ONFAULT: mlock2's MLOCK_ONFAULT */
    int error;      /* the first -errno of a lock that mlockall would not ignore */
} lock_walk_t;

HS_SELDOM static void lock_walk_part(lock_walk_t *walk, uintptr_t start, uintptr_t end,
                                     unsigned perms)
{
    if (start >= end) return;
    if (!walk->locking) {
        walk->bytes += end - start;
        return;
    }
    int r = os_lock_range((void *)start, end - start, walk->on_fault);
    /* A mapping that cannot be accessed is marked locked and then cannot be
     * faulted in, which mlock2 reports as ENOMEM and mlockall ignores. */
    if (r != 0 && perms != 0 && walk->error == 0) walk->error = r;
}

/* A mapping of /proc/self/maps, less the registry's read-only part. */
HS_SELDOM static void lock_walk_range(void *ctx, uintptr_t start, uintptr_t end, unsigned perms)
{
    /* [vsyscall], above the process's address space, is none of its
     * mappings. */
    if (start >> HS_ADDRESS_BITS) return;
    uintptr_t skip_from, skip_to;
    registry_read_only_part(start, end, perms, &skip_from, &skip_to);
    lock_walk_part(ctx, start, skip_from, perms);
    lock_walk_part(ctx, skip_to, end, perms);
}

HS_SELDOM HS_NOINLINE static int lock_all_but_registry(int flags)
{
    /* Without a limit, ENOMEM was not the limit's, and comes back as it came.
     * Nor can a call without MCL_FUTURE end one in force but with
     * munlockall, which would unlock what the program locked itself. */
    uint64_t limit = os_lock_limit();
    unsigned future = SEG_GATE_LOCKED_NOW | SEG_GATE_LOCKED_ON_FAULT;
    if (limit == UINT64_MAX ||
        (!(flags & OS_LOCK_FUTURE) && (atomic_load(&seg_state.registry_gate) & future)))
        return -ENOMEM;
    lock_walk_t walk = {.on_fault = (flags & OS_LOCK_ON_FAULT) != 0};
    size_t page = os_page_size();
    /* The kernel's test, in pages: the address space at most the limit. */
    if (os_walk_maps(lock_walk_range, &walk) != 0 || walk.bytes / page > limit / page)
        return -ENOMEM;
    walk.locking = true;
    if (os_walk_maps(lock_walk_range, &walk) != 0) return -ENOMEM;
    /* Another thread's mappings past the limit meanwhile: what was locked
     * stays locked, as the program's own mlock calls leave it. */
    if (walk.error != 0) return walk.error;
    return (flags & OS_LOCK_FUTURE) ? os_lock_all(flags & ~OS_LOCK_CURRENT) : 0;
}

/* The gate's MCL_FUTURE bits set to `bits`. */
HS_SELDOM static void gate_set_locked(unsigned bits)
{
    unsigned mask = SEG_GATE_LOCKED_NOW | SEG_GATE_LOCKED_ON_FAULT;
    unsigned old = atomic_load(&seg_state.registry_gate);
    while (!atomic_compare_exchange_weak(&seg_state.registry_gate, &old, (old & ~mask) | bits)) {
    }
}

HS_SELDOM int seg_lock_all(int flags)
{
    registry_settle();
    /* What rests (idle SuperSlabs, purged ones, cached runs) would be
     * faulted in whole and locked: unmapped first, as glibc's freed mappings
     * are (a heap of 64 MiB freed and purged came back whole). Only where
     * something does: before the first allocation, the locks it takes are
     * not set up yet. */
    if ((flags & OS_LOCK_CURRENT) && !(flags & OS_LOCK_ON_FAULT) &&
        (atomic_load_explicit(&seg_state.stat_idle_superslabs, memory_order_relaxed) |
         atomic_load_explicit(&seg_state.stat_purged_superslabs, memory_order_relaxed) |
         atomic_load_explicit(&seg_state.run_cache_bytes, memory_order_relaxed)))
        seg_unmap_resting();
    int r = os_lock_all(flags);
    if (r == -ENOMEM && (flags & OS_LOCK_CURRENT)) r = lock_all_but_registry(flags);
    if (r != 0) return r;
    /* Each call sets the kernel's MCL_FUTURE afresh, as here. */
    gate_set_locked(!(flags & OS_LOCK_FUTURE)    ? 0
                    : (flags & OS_LOCK_ON_FAULT) ? SEG_GATE_LOCKED_ON_FAULT
                                                 : SEG_GATE_LOCKED_NOW);
    /* MCL_ONFAULT faults nothing in. */
    if (!(flags & OS_LOCK_CURRENT) || (flags & OS_LOCK_ON_FAULT)) return 0;
    unsigned gate = atomic_fetch_add(&seg_state.registry_gate, SEG_GATE_TRIMMER);
    while (gate & SEG_GATE_PREPARERS) {
        seg_yield();
        gate = atomic_load(&seg_state.registry_gate);
    }
    os_walk_maps(registry_give_back_range, NULL);
    atomic_fetch_sub(&seg_state.registry_gate, SEG_GATE_TRIMMER);
    return 0;
}

HS_SELDOM int seg_unlock_all(void)
{
    int r = os_unlock_all();
    if (r == 0) gate_set_locked(0);
    return r;
}

/* ---- mapping and unmapping ---------------------------------------------- */

/* The backing to ask the thp layer for, from HUGESLAB_BACKING; *spare
 * says whether a hugetlb mapping needs its spare pages (seg_hugetlb_range_t). */
static thp_backing_t wanted_backing(bool *spare)
{
    *spare = false;
    switch (hs_option(HS_OPT_BACKING)) {
    case HS_BACKING_HUGETLB:
        return THP_BACKING_HUGETLB;
    case HS_BACKING_THP:
        return THP_BACKING_THP;
    case HS_BACKING_BASE:
        return THP_BACKING_BASE;
    default:
        /* auto: hugetlb while the pool can reserve, besides the mapping,
         * as many spare pages for a fork's copies (seg_map_superslabs); tried
         * again a second after it last could not; else THP. */
        if (seg_now_ms() <
                atomic_load_explicit(&seg_state.hugetlb_retry_at_ms, memory_order_relaxed) ||
            atomic_load_explicit(&seg_state.hugetlb_spares_out, memory_order_relaxed))
            return THP_BACKING_THP;
        *spare = true;
        return THP_BACKING_HUGETLB;
    }
}

static void note_backing(thp_backing_t wanted, thp_backing_t got)
{
    if (got == wanted || wanted != THP_BACKING_HUGETLB) return;
    uint64_t before = atomic_exchange_explicit(&seg_state.hugetlb_retry_at_ms, seg_now_ms() + 1000,
                                               memory_order_relaxed);
    static _Atomic int warned;
    if (before != 0 || !hs_option(HS_OPT_VERBOSE) || atomic_exchange(&warned, 1)) return;
    /* An operator who never reserved a pool needs another fix than one
     * whose pool is too small: say which. */
    unsigned long pool = thp_hugetlb_pages_total();
    if (pool == 0)
        hs_message("no hugetlb pool (nr_hugepages is 0): falling back to %s pages; reserve one "
                   "with `hugeslab pool --reserve SIZE`",
                   thp_backing_name(got));
    else
        hs_message("the hugetlb pool ran dry (%lu pages, none left for this process): falling "
                   "back to %s pages",
                   pool, thp_backing_name(got));
}

bool seg_metadata_grow(hs_lock_t *lock, void **array, size_t *cap, const size_t *count,
                       size_t entry_size, size_t first_cap)
{
    size_t want = *cap ? *cap * 2 : first_cap;
    hs_unlock(lock);
    void *grown = os_map_pages(want * entry_size);
    hs_lock(lock);
    if (!grown) return false;
    void *spare = grown;
    size_t spare_bytes = hs_align_up(want * entry_size, 4096);
    if (*cap < want) {
        if (*count) memcpy(grown, *array, *count * entry_size);
        spare = *array;
        spare_bytes = hs_align_up(*cap * entry_size, 4096);
        *array = grown;
        *cap = want;
    }
    if (spare) {
        hs_unlock(lock);
        os_unmap(spare, spare_bytes);
        hs_lock(lock);
    }
    return true;
}

/* Maps SuperSlabs for pool `node`, bound before their first touch to the
 * node the process policy asks for. A hugetlb mapping is populated at once:
 * if the bound node cannot supply its pages, that is an error here and a
 * fallback to THP, never a SIGBUS at a later touch. */
HS_SELDOM HS_NOINLINE static seg_superslab_t *map_refused(size_t size, size_t align,
                                                          seg_chunk_kind_t kind, unsigned node);

seg_superslab_t *seg_map_superslabs(size_t size, size_t align, seg_chunk_kind_t kind, unsigned node)
{
    /* Put back on success: the hugetlb mapping tried first fails with
     * ENOMEM wherever the pool is empty (again a second after each
     * failure), and a malloc that then succeeds on THP left ENOMEM in
     * errno, from the first malloc of a process on. */
    int saved_errno = errno;
    bool spare_wanted;
    thp_backing_t wanted = wanted_backing(&spare_wanted), got;
    unsigned memory_node = numa_node_for_superslab(node);
    bool many_nodes = numa_node_count() > 1;
    /* The hugetlb pool is global but its pages live on nodes: ask for one
     * only where the node has some. */
    if (wanted == THP_BACKING_HUGETLB && many_nodes) {
        _Atomic uint64_t *retry_at = &seg_nodes.hugetlb_retry_at_ms[memory_node];
        if (seg_now_ms() < atomic_load_explicit(retry_at, memory_order_relaxed)) {
            wanted = THP_BACKING_THP;
        } else if (numa_hugepages_free(memory_node) == 0) {
            hugetlb_none_until_later(retry_at);
            wanted = THP_BACKING_THP;
        }
    }
    /* The spare first: without it the mapping is THP's. Counted under way
     * before the look at forks, which count themselves before the look at
     * mappings under way (both sequentially consistent): a fork either
     * sees this mapping and waits for it, or is seen and wins. */
    void *spare = NULL;
    bool under_way = false;
    if (wanted == THP_BACKING_HUGETLB && spare_wanted) {
        atomic_fetch_add(&seg_state.hugetlb_maps_under_way, 1);
        under_way = true;
        if (!atomic_load(&seg_state.hugetlb_forks))
            spare = os_map_aligned(size, HS_SUPERSLAB_SIZE, true);
        else
            wanted = THP_BACKING_THP;
        if (!spare && wanted == THP_BACKING_HUGETLB) {
            hugetlb_none_until_later(&seg_state.hugetlb_retry_at_ms);
            wanted = THP_BACKING_THP;
        }
    }
    /* Under mlockall(MCL_FUTURE) the kernel faults a mapping in whole as it
     * makes it, before its THP hint: 512 faults a SuperSlab, on base pages.
     * thp_map_unsettled then hints it first (thp.c). */
    bool locked =
        atomic_load_explicit(&seg_state.registry_gate, memory_order_relaxed) & SEG_GATE_LOCKED_NOW;
    seg_superslab_t *ss;
    for (;;) {
        /* The THP hint waits (below): the small heap may defer a SuperSlab
         * of slabs, which then needs no hint in "madvise" mode. */
        ss = thp_map_unsettled(size, align, wanted, locked, &got);
        /* Named in the registry once set up: its entries must be writable. */
        if (ss && !seg_registry_prepare(ss, size)) {
            os_unmap(ss, size);
            ss = NULL;
        }
        if (spare && (!ss || got != THP_BACKING_HUGETLB)) {
            os_unmap(spare, size);
            spare = NULL;
        }
        if (!ss) {
            if (under_way) atomic_fetch_sub(&seg_state.hugetlb_maps_under_way, 1);
            return map_refused(size, align, kind, node);
        }
        /* Until it is tracked, a fork's child must not get it: the child
         * would share its pages, untracked, with no copy of its own. */
        if (got == THP_BACKING_HUGETLB) os_advise_fork(ss, size, false);
        if (got == THP_BACKING_HUGETLB && many_nodes)
            numa_bind_strict(ss, size, memory_node);
        else
            numa_bind(ss, size, memory_node);
        if (got == THP_BACKING_HUGETLB && os_populate(ss, size) != 0) {
            os_unmap(ss, size);
            note_backing(THP_BACKING_HUGETLB, THP_BACKING_THP);
            wanted = THP_BACKING_THP;
            continue;
        }
        break;
    }
    if (got == THP_BACKING_BASE && hs_option(HS_OPT_PREFAULT)) os_populate(ss, size);
    note_backing(wanted, got);
    bool hinted_late = false;
    if (got == THP_BACKING_THP &&
        (kind != SEG_CHUNK_SLABS || !seg_small_heap_note(ss, &hinted_late)))
        got = kind == SEG_CHUNK_SLABS && seg_sparse_heap_note(ss) ? THP_BACKING_BASE
                                                                  : thp_settle_huge(ss, size);
    seg_count_mapping(memory_node, got, (int64_t)size);
    seg_chunk_header(ss, size, kind, got, memory_node, node);
    /* Set, never cleared: deferred again as an overflow, ss may be another
     * thread's to take out and flag by now. */
    if (hinted_late) atomic_store_explicit(&ss->hinted_late, 1, memory_order_relaxed);
    if (got == THP_BACKING_HUGETLB) {
        /* A fork's child gets its copy from here on: by the handlers, which
         * a process of one thread may not have registered yet (locks.h). */
        hs_fork_handlers_arm();
        if (seg_hugetlb_track(ss, size, spare))
            os_advise_fork(ss, size, true); /* a fork from here on copies it */
        else if (spare)
            os_unmap(spare, size);
    }
    if (under_way) atomic_fetch_sub(&seg_state.hugetlb_maps_under_way, 1);
    /* Memory at rest beside it (idle, or purged: lazily freed among it)?
     * Read here, on seg_state's page, which every process writes: a heap
     * that has never rested runs none of seg_note_fresh's seldom text. */
    if (atomic_load_explicit(&seg_state.stat_idle_superslabs, memory_order_relaxed) |
        atomic_load_explicit(&seg_state.stat_purged_superslabs, memory_order_relaxed))
        seg_note_fresh(size);
    errno = saved_errno;
    return ss;
}

/* A refused mapping: what rests mapped for reuse goes, and the mapping is
 * tried once more (again only while something went). With no hugetlb
 * mapping under way (counted off before the call): unmapping a hugetlb
 * range may wait for a fork's copy of it, and a fork waits for mappings
 * under way. Seldom code, apart from the text every process runs. */
static seg_superslab_t *map_refused(size_t size, size_t align, seg_chunk_kind_t kind, unsigned node)
{
    if (seg_unmap_resting()) return seg_map_superslabs(size, align, kind, node);
    /* What malloc promises, whatever the unmapping or a refused mprotect
     * left in errno. */
    errno = ENOMEM;
    return NULL;
}

void seg_unmap_idle(seg_superslab_t *ss, size_t size, thp_backing_t backing)
{
    /* Never hint a range that is no longer ours. */
    seg_small_heap_forget(ss);
    void *spare = backing == THP_BACKING_HUGETLB ? seg_hugetlb_untrack(ss, size) : NULL;
    /* A fork from here to the count leaves the child counting the range
     * in its figures: no system call lies between. */
    seg_count_mapping(ss->memory_node, backing, -(int64_t)size);
    seg_registry_clear(ss, size);
    os_unmap(ss, size);
    if (spare) os_unmap(spare, size);
}

void seg_shutdown(void) { purge_shutdown(); }

/* SuperSlabs and runs: the registry, the per-node pools, the run cache. */
#include <errno.h>
#include <string.h>

#include "numa/numa.h"
#include "os/os.h"
#include "segment/segment_internal.h"

/* SuperSlabs whose pages went back to the kernel, kept mapped for reuse at
 * the same address. Their headers may read as zero, so an entry is the
 * 2 MiB-aligned address with the backing in bits 0-1 and the memory node
 * from bit 2 on. Entries are pushed in time order, so the oldest are at the
 * bottom. */
typedef struct purged_entry_s {
    uintptr_t bits;    /* address | memory node << 2 | backing */
    uint64_t since_ms; /* when it was pushed */
} purged_entry_t;
typedef struct purged_stack_s {
    purged_entry_t *entries; /* oldest first */
    size_t count;            /* entries in use */
    size_t cap;              /* room */
} purged_stack_t;

/* One pool per NUMA node.
 * Invariants: `partial` holds exactly this node's SuperSlabs with some but
 * not all units free (on_partial set); `idle` holds those with every unit
 * free, newest first, each with idle_since_ms; `lazy` and `released` hold
 * SuperSlabs whose pages went back to the kernel, lazily (MADV_FREE: the
 * pages stay in RSS as LazyFree until the kernel needs them) or for good
 * (MADV_DONTNEED). */
typedef struct node_pool_s {
    hs_lock_t lock;
    seg_superslab_t *partial;  /* SuperSlabs with some free units */
    seg_superslab_t *idle;     /* empty SuperSlabs, pages still resident */
    size_t idle_count;         /* length of idle */
    seg_superslab_t *outgrown; /* idle's head, due at the purge thread's next pass
                                  (seg_mark_outgrown); NULL: none */
    purged_stack_t lazy;       /* MADV_FREE'd, oldest first; reused newest first */
    purged_stack_t released;   /* MADV_DONTNEED'd; reused when lazy is empty */
    /* SuperSlabs mapped with their pages on this node, by backing. Here,
     * not in a table of its own by node: a process on one node writes the
     * first pool's line and no other (see HS_START_STATE_LAST). */
    _Atomic uint64_t stat_superslabs[THP_BACKING_COUNT];
    uint32_t units_taken_ms; /* when a slab was last cut here (the clock's low
                                32 bits): a sparse huge page is split only once
                                the heap has stopped growing (huge_sparse) */
} node_pool_t;

/* Every live hugetlb mapping, for fork(): private hugetlb pages are copied
 * on write from the same pool, and a child whose copy cannot be had gets
 * SIGBUS, so the child trades them for anonymous copies (seg_fork_child).
 * Until then each page a parent thread writes needs a free pool page, and
 * free pages are anyone's: the auto backing keeps them reserved meanwhile
 * (spare), frees them at fork() and takes the parent's copies at once. */
typedef struct hugetlb_range_s {
    seg_superslab_t *base; /* a SuperSlab or the head of a run */
    size_t size;           /* bytes of the mapping */
    void *spare;           /* a hugetlb mapping of `size` bytes never touched: its reservation
                              keeps as many pool pages from every other mapping until a fork
                              frees them for this range's copies; NULL without one */
    bool spare_freed;      /* its spare went at a fork and is not reserved again yet: the
                              parent copies the range's pages at a fork (seg_fork_parent) */
    bool copy_pending;     /* the fork under way marked it for the parent's copy, not made
                              yet (hugetlb_copy_marked): the range stays mapped until it is,
                              so hugetlb_untrack waits (see seg_fork_parent) */
} hugetlb_range_t;

/* segment's state: everything segment.c owns but the registry
 * (seg_chunk_map, read by free's fast path), the test clock (seg_clock) and
 * the purge figures purge.c adds to (seg_stat_purge_calls, _bytes_purged).
 * The locks' ranks are in common/locks.h; init_layers sets them, so that the
 * struct starts as zeros and lies in .bss, where only the pages written
 * count in RSS: the fields, then the pools of the nodes in use (the pools
 * come last for that). Figures are relaxed atomics read without locks. */
HS_START_STATE_LAST static struct seg_state_s {
    hs_lock_t run_cache_lock;                 /* guards run_cache and the runs' list links */
    seg_superslab_t *run_cache;               /* freed runs kept for reuse, newest first */
    _Atomic size_t run_cache_bytes;           /* their bytes; written under run_cache_lock */
    void (*client_init)(seg_superslab_t *ss); /* tiny's reset of a SuperSlab's client area */
    bool (*client_reclaim)(void);             /* tiny's release of the calling thread's
                                                 emptied slabs (seg_set_client_reclaim) */
    hs_lock_t hugetlb_lock;                   /* guards hugetlb_ranges, _count, _cap */
    hugetlb_range_t *hugetlb_ranges;          /* every live hugetlb mapping */
    size_t hugetlb_count;                     /* entries in hugetlb_ranges */
    size_t hugetlb_cap;                       /* entries its pages hold */
    _Atomic size_t hugetlb_pages_mapped;      /* 2 MiB pages over all of them; written under
                                                 hugetlb_lock */
    _Atomic size_t hugetlb_spares_out;        /* ranges whose spare a fork freed and that have
                                                 none again yet (spare_freed); written under
                                                 hugetlb_lock. Their copies need the pages:
                                                 no auto hugetlb mapping meanwhile */
    _Atomic size_t hugetlb_copies_pending;    /* ranges with copy_pending; written under
                                                 hugetlb_lock. 0 whenever fork_active is
                                                 taken */
    _Atomic bool fork_active;                 /* a fork from seg_fork_begin to the end of
                                                 seg_fork_parent_unlocked: one at a time */
    _Atomic unsigned hugetlb_forks;           /* forks from seg_fork_begin until their spares
                                                 are back: no auto hugetlb mapping starts */
    _Atomic unsigned hugetlb_maps_under_way;  /* auto hugetlb mappings from their reservations
                                                 to hugetlb_track: seg_fork_begin waits for
                                                 them, whose reservations would take the
                                                 pages it frees for the fork's copies */
    int fork_done[2];                         /* pipe whose write end the child closes once
                                                 its hugetlb memory is copied; -1 when none */
    /* hugetlb in auto mode: tried while the pool had pages at the last look;
     * after a look that found none (in the pool, or on a node), sysfs is not
     * read again for a second -- not once per new SuperSlab. */
    _Atomic uint64_t hugetlb_retry_at_ms; /* the whole pool (each node's: below) */
    /* The recent peak of memory in use (mapped, neither idle nor purged) and
     * when it was last brought up to date; relaxed, a heuristic. */
    _Atomic uint64_t recent_peak_bytes;      /* the peak */
    _Atomic uint64_t recent_peak_at_ms;      /* when it was last brought up to date */
    _Atomic uint64_t stat_idle_superslabs;   /* in the pools' idle lists */
    _Atomic uint64_t stat_purged_superslabs; /* on the pools' purged stacks */
    _Atomic uint64_t stat_bytes_mapped;      /* address space mapped for blocks */
    _Atomic uint64_t stat_run_bytes_live;    /* runs holding a live block */
    _Atomic uint64_t stat_huge_blocks;       /* live blocks with a mapping of their own */
    node_pool_t pools[HS_MAX_NODES];         /* by NUMA node index */
    _Atomic uint64_t node_hugetlb_retry_at_ms[HS_MAX_NODES]; /* each node's hugetlb pages
                                                                (several nodes only) */
} seg;

/* A look at sysfs found no free hugetlb page: none is asked for a second. */
static void hugetlb_none_until_later(_Atomic uint64_t *retry_at_ms)
{
    atomic_store_explicit(retry_at_ms, seg_now_ms() + 1000, memory_order_relaxed);
}

/* Figures purge.c adds to. */
_Atomic uint64_t seg_stat_purge_calls;
_Atomic uint64_t seg_stat_bytes_purged;

_Static_assert(HS_UNITS_PER_SUPERSLAB <= 64, "free_units is a 64-bit map");
#define ALL_UNITS_FREE                                                                             \
    (HS_UNITS_PER_SUPERSLAB == 64 ? ~(uint64_t)0 : ((uint64_t)1 << HS_UNITS_PER_SUPERSLAB) - 1)

/* Free units a SuperSlab of base pages holds before a free wakes the purge
 * thread for them (256 KiB): fewer are not worth starting it for. */
#define SEG_PURGE_UNITS_MIN 8
/* SuperSlabs with room that seg_units_alloc compares, at most, for the
 * best fit: the partial list's first ones. It is walked under the node's
 * lock, and a large heap has thousands. */
#ifndef SEG_FIT_CANDIDATES
#define SEG_FIT_CANDIDATES 16
#endif
/* units_purged while seg_take_free_units has the units out. */
#define SEG_UNITS_PURGING 2
/* Free units of a THP SuperSlab in use for which its huge page is given up
 * once it has been quiet for the release delay (1.5 MiB of the 2 MiB): a few
 * long-lived blocks in each SuperSlab of a heap that has since been freed
 * (Redis's slow log after FLUSHALL: 2-7 blocks in each of 80-120 SuperSlabs)
 * kept the whole heap's huge pages resident. */
#define SEG_SPARSE_FREE_UNITS 48

/* n units from unit `first` on, as free_units bits. */
static uint64_t unit_bits(unsigned first, unsigned n)
{
    return (n == HS_UNITS_PER_SUPERSLAB ? ALL_UNITS_FREE : (((uint64_t)1 << n) - 1)) << first;
}

HS_START_STATE static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_layers(void)
{
    hs_once_enter(HS_RANK_INIT_SEGMENT);
    hs_common_init();
    thp_init();
    numa_init();
    /* Only the pools of nodes in use are ever locked: the others' pages of
     * .bss are never written (all 64 locks set up wrote two pages more). */
    for (unsigned n = 0; n < numa_node_count(); n++)
        hs_lock_init(&seg.pools[n].lock, HS_RANK_POOL + n);
    hs_lock_init(&seg.run_cache_lock, HS_RANK_RUN_CACHE);
    hs_lock_init(&seg.hugetlb_lock, HS_RANK_HUGETLB);
    hs_once_leave(HS_RANK_INIT_SEGMENT);
}

void seg_init(void) { pthread_once(&init_once, init_layers); }

void seg_set_client_init(void (*init)(seg_superslab_t *ss)) { seg.client_init = init; }

void seg_set_client_reclaim(bool (*reclaim)(void)) { seg.client_reclaim = reclaim; }

uint64_t (*seg_clock)(void) = os_now_ms;

void seg_set_clock(uint64_t (*now_ms)(void)) { seg_clock = now_ms ? now_ms : os_now_ms; }

/* Debug builds check the invariants where SuperSlabs change hands (see
 * seg_superslab_validate, below). */
#if defined(HS_DEBUG) && HS_DEBUG
#define SEG_VALIDATE(ss) seg_superslab_validate(ss)
#define SEG_VALIDATE_POOL(node) seg_pool_validate(node)
#else
#define SEG_VALIDATE(ss) ((void)0)
#define SEG_VALIDATE_POOL(node) ((void)0)
#endif

void *seg_map_metadata(size_t size) { return os_map_pages(size); }

void seg_yield(void) { os_yield(); }

static size_t huge_threshold(void) { return (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB; }

/* ---- registry ------------------------------------------------------------ */

static void registry_fill(uintptr_t first, uintptr_t count, seg_chunk_kind_t kind)
{
    for (uintptr_t c = first; c < first + count; c++)
        atomic_store_explicit(&seg_chunk_map[c], (uint8_t)kind, memory_order_relaxed);
}

static void registry_set(void *base, size_t size, seg_chunk_kind_t head_kind)
{
    uintptr_t first = (uintptr_t)base >> HS_SUPERSLAB_SHIFT;
    registry_fill(first, 1, head_kind);
    registry_fill(first + 1, (size >> HS_SUPERSLAB_SHIFT) - 1, SEG_CHUNK_TAIL);
}

static void registry_clear(void *base, size_t size)
{
    registry_fill((uintptr_t)base >> HS_SUPERSLAB_SHIFT, size >> HS_SUPERSLAB_SHIFT,
                  SEG_CHUNK_NONE);
}

/* ---- mapping and unmapping ---------------------------------------------- */

/* The backing to ask the thp layer for, from HUGESLAB_BACKING; *spare
 * says whether a hugetlb mapping needs its spare pages (hugetlb_range_t). */
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
         * as many spare pages for a fork's copies (map_superslabs); tried
         * again a second after it last could not; else THP. */
        if (seg_now_ms() < atomic_load_explicit(&seg.hugetlb_retry_at_ms, memory_order_relaxed) ||
            atomic_load_explicit(&seg.hugetlb_spares_out, memory_order_relaxed))
            return THP_BACKING_THP;
        *spare = true;
        return THP_BACKING_HUGETLB;
    }
}

static void note_backing(thp_backing_t wanted, thp_backing_t got)
{
    if (got == wanted || wanted != THP_BACKING_HUGETLB) return;
    uint64_t before = atomic_exchange_explicit(&seg.hugetlb_retry_at_ms, seg_now_ms() + 1000,
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

/* Grows a metadata array of `*cap` entries of `entry_size` bytes, `count`
 * in use, guarded by `lock`, which is held on entry and on return: the
 * larger array is mapped, and the smaller unmapped, with it released. Another
 * thread may grow it meanwhile; the caller checks for room again. False when
 * no memory could be had. */
static bool metadata_grow(hs_lock_t *lock, void **array, size_t *cap, const size_t *count,
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

/* Tracks a new hugetlb mapping and its spare (NULL: none). False when no
 * room could be had: the caller unmaps the spare. */
static bool hugetlb_track(seg_superslab_t *base, size_t size, void *spare)
{
    hs_lock(&seg.hugetlb_lock);
    bool room = true;
    while (room && seg.hugetlb_count == seg.hugetlb_cap)
        room = metadata_grow(&seg.hugetlb_lock, (void **)&seg.hugetlb_ranges, &seg.hugetlb_cap,
                             &seg.hugetlb_count, sizeof *seg.hugetlb_ranges, 256);
    if (room) {
        seg.hugetlb_ranges[seg.hugetlb_count++] =
            (hugetlb_range_t){base, size, spare, false, false};
        seg.hugetlb_pages_mapped += size >> HS_SUPERSLAB_SHIFT;
    }
    hs_unlock(&seg.hugetlb_lock);
    return room;
}

/* The tracked range that starts at `base`, or NULL; hugetlb_lock held. */
static hugetlb_range_t *hugetlb_range_of(const seg_superslab_t *base)
{
    for (size_t i = 0; i < seg.hugetlb_count; i++)
        if (seg.hugetlb_ranges[i].base == base) return &seg.hugetlb_ranges[i];
    return NULL;
}

/* Stops tracking a hugetlb mapping, which the caller then unmaps; returns
 * its spare, for the caller to unmap too, or NULL. Called with no lock
 * held: while a fork's copy of the range is pending, waits for it, so
 * that the copy never runs on an address the range no longer holds. */
static void *hugetlb_untrack(seg_superslab_t *base)
{
    HS_ASSERT(hs_lock_thread.held == 0);
    hs_lock(&seg.hugetlb_lock);
    hugetlb_range_t *r = hugetlb_range_of(base);
    while (r && r->copy_pending) {
        /* One MADV_POPULATE_WRITE of the range on the forking thread, which
         * takes no lock but this one, briefly, to unmark it. */
        hs_unlock(&seg.hugetlb_lock);
        os_sleep_ms(1);
        hs_lock(&seg.hugetlb_lock);
        r = hugetlb_range_of(base);
    }
    void *spare = NULL;
    if (r) {
        seg.hugetlb_pages_mapped -= r->size >> HS_SUPERSLAB_SHIFT;
        spare = r->spare;
        if (r->spare_freed) seg.hugetlb_spares_out--;
        *r = seg.hugetlb_ranges[--seg.hugetlb_count];
    }
    hs_unlock(&seg.hugetlb_lock);
    return spare;
}

static void count_mapping(unsigned node, thp_backing_t backing, int64_t bytes)
{
    hs_count_add(&seg.pools[node].stat_superslabs[backing], bytes >> HS_SUPERSLAB_SHIFT);
    hs_count_add(&seg.stat_bytes_mapped, bytes);
}

/* A small heap stays small under THP: the process's first SuperSlabs of
 * slabs get base pages, faulted as slabs are carved, so a program with a
 * few hundred KiB of blocks is not made resident by 2 MiB each. Python's
 * start-up has slabs in some 70 classes and fills the 64 units of its
 * first SuperSlab with 239 of its 512 pages touched; a second one made
 * both huge pages (17.3 MiB peak, against 14.7 on base pages).
 * The first is always deferred; a second too while the first holds fewer
 * than SEG_SMALL_HEAP_DENSE pages in memory (mincore): half of them. A
 * heap that runs out of units with half its pages untouched spreads thin
 * over many classes (Python: 239); one that has touched more will go on
 * to fill its SuperSlabs (bench_memory kv and larson: 321, 323), and a
 * second on base pages would cost it up to 512 faults more. A third is
 * deferred while the two hold fewer than twice that, which the budget
 * below keeps them under: `git log -p` of this repository had its third
 * made a huge page with 476 pages in the first two (and 2 MiB resident
 * for 100 KiB of blocks in it at the end). The heap has grown when a
 * SuperSlab comes to dense deferred ones, or when
 * the deferred ones come to hold SEG_SMALL_HEAP_FAULTS pages: tiny/ tells
 * of the pages its slabs carve (seg_small_heap_carved), and the kernel is
 * asked again each time the pages seen at the last look and those carved
 * since reach that budget. Then the deferred ones are hinted back to huge
 * pages (khugepaged collapses them; until then their untouched pages
 * still fault one by one, as the first one's always did) and every later
 * SuperSlab is a huge page from its first touch, but an overflow (see
 * SEG_RETURNING_UNITS_MIN), which is deferred the same way; tiny/ cuts small slabs
 * until the next one is mapped. So the heap takes at most 512 faults on
 * base pages before it counts as grown, and a heap that grows densely
 * takes them all in its first SuperSlab, as before. */
#define SEG_SMALL_HEAP_MAX 3
#define SEG_SMALL_HEAP_FAULTS ((long)(HS_SUPERSLAB_SIZE / 4096))
#define SEG_SMALL_HEAP_DENSE (SEG_SMALL_HEAP_FAULTS / 2)
/* The small heap's state, written as the first SuperSlab comes
 * (HS_START_STATE): */
/* deferred, NULL: none */
HS_START_STATE static _Atomic(seg_superslab_t *) small_heap[SEG_SMALL_HEAP_MAX];
/* units of small_heap[i] that tiny/ said a block passes through
 * (seg_small_heap_passing) */
HS_START_STATE static _Atomic uint64_t small_heap_passing[SEG_SMALL_HEAP_MAX];
/* the heap has grown: none deferred but overflows */
HS_START_STATE static _Atomic bool small_heap_grown;
/* seg_small_heap: from the first deferred one to the first SuperSlab mapped
 * after it grew */
HS_START_STATE static _Atomic bool small_heap_slabs;
/* of the deferred ones in memory, at the last look */
HS_START_STATE static _Atomic long small_heap_pages_seen;
/* pages tiny/ carved since */
HS_START_STATE static _Atomic long small_heap_carved;
HS_START_STATE _Atomic bool seg_small_heap_deferred;
_Atomic long seg_units_returning;

/* Pages of ss in memory outside the units of `skip`, -1 when the kernel
 * cannot tell. */
HS_COLD static long resident_outside(seg_superslab_t *ss, uint64_t skip)
{
    if (!skip) return os_resident_pages(ss, HS_SUPERSLAB_SIZE);
    long pages = 0;
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB;) {
        if (skip >> u & 1) {
            u++;
            continue;
        }
        unsigned end = u;
        while (end < HS_UNITS_PER_SUPERSLAB && !(skip >> end & 1)) end++;
        long in_memory = os_resident_pages((char *)ss + (size_t)u * HS_UNIT_SIZE,
                                           (size_t)(end - u) * HS_UNIT_SIZE);
        if (in_memory < 0) return -1;
        pages += in_memory;
        u = end;
    }
    return pages;
}

/* Pages of the deferred SuperSlabs in memory: the faults they cost so far.
 * One the kernel cannot count for reads as the whole budget. Starts a new
 * count of carved pages. *dense (if not NULL): those pages but the ones of
 * units a block passes through (seg_small_heap_passing), which say nothing
 * of how densely the heap fills its slabs, less SEG_SMALL_HEAP_DENSE for
 * each deferred one (for one when there is none): below 0 while sparse. */
HS_COLD static long small_heap_look(long *dense)
{
    atomic_store(&small_heap_carved, 0);
    long pages = 0, dense_pages = 0, deferred = 0;
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        seg_superslab_t *ss = atomic_load(&small_heap[i]);
        if (!ss) continue;
        deferred++;
        long in_memory = os_resident_pages(ss, HS_SUPERSLAB_SIZE);
        pages += in_memory >= 0 ? in_memory : SEG_SMALL_HEAP_FAULTS;
        if (!dense) continue;
        long outside = resident_outside(ss, atomic_load(&small_heap_passing[i]));
        dense_pages += outside >= 0 ? outside : SEG_SMALL_HEAP_FAULTS;
    }
    atomic_store(&small_heap_pages_seen, pages);
    if (dense) *dense = dense_pages - SEG_SMALL_HEAP_DENSE * (deferred ? deferred : 1);
    return pages;
}

/* The heap has grown: every deferred SuperSlab is hinted huge again. A
 * thread that defers one meanwhile (its hint set before it publishes the
 * slot) either has it taken here or sees small_heap_grown after publishing
 * (both sequentially consistent) and takes it itself: none stays deferred. */
HS_COLD static void small_heap_outgrown(void)
{
    atomic_store(&small_heap_grown, true);
    atomic_store_explicit(&seg_small_heap_deferred, false, memory_order_relaxed);
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        seg_superslab_t *ss = atomic_exchange(&small_heap[i], NULL);
        if (ss) thp_allow_huge(ss, HS_SUPERSLAB_SIZE);
    }
}

/* Defers ss to base pages in a free slot of small_heap: false (ss left as
 * it is) when none is free. */
HS_COLD static bool small_heap_defer(seg_superslab_t *ss)
{
    thp_defer_huge(ss, HS_SUPERSLAB_SIZE);
    unsigned i = 0;
    for (seg_superslab_t *none = NULL;
         i < SEG_SMALL_HEAP_MAX && !atomic_compare_exchange_strong(&small_heap[i], &none, ss); i++)
        none = NULL;
    if (i == SEG_SMALL_HEAP_MAX) {
        thp_allow_huge(ss, HS_SUPERSLAB_SIZE);
        return false;
    }
    atomic_store(&small_heap_passing[i], 0);
    atomic_store_explicit(&seg_small_heap_deferred, true, memory_order_relaxed);
    return true;
}

/* Units on the way back (seg_units_returning) that make a new SuperSlab an
 * overflow: an eighth of one. bench_memory larson's main thread leaves
 * 4,000 blocks in 86 units that the worker threads free while it waits in
 * pthread_join; its 45 full slabs come back only with their last block,
 * by which time the workers had cut 121 units of their own: 198 in all,
 * six more than three SuperSlabs hold, and a fourth huge page for them
 * (9.4 MiB peak RSS; 7.5 with the fourth on base pages, glibc 7.2-7.8).
 * Its third SuperSlab came with 25 or 26 units on the way, its fourth
 * with 13 to 39 (a quarter of one as the bound left 2 runs in 8 at 9.5).
 * A single thread leaves no notices, and a producer takes its own at its
 * next refill: bench_memory kv, small, churn and prodcons, bench_mt
 * prodcons and queue map every SuperSlab with none on the way. */
#define SEG_RETURNING_UNITS_MIN ((long)HS_UNITS_PER_SUPERSLAB / 8)

/* Overflows deferred in a process's life, at most. One hinted huge after
 * some of its pages were faulted keeps faulting page by page (the kernel
 * maps a huge page only where no page of the 2 MiB is present yet), so each
 * costs up to 512 faults. git gc --aggressive, whose delta threads leave
 * their blocks for the main thread to free, mapped 248 of its 249
 * SuperSlabs as overflows: 15 became huge pages, and pack-objects took
 * 123,000 faults (about 800 at one per SuperSlab). larson needs one. */
#define SEG_OVERFLOWS_MAX 2
static _Atomic unsigned overflows_deferred; /* overflows deferred so far */

HS_COLD static void small_heap_note(seg_superslab_t *ss)
{
    long dense = 0;
    if (!atomic_load(&small_heap_grown)) small_heap_look(&dense);
    if (dense < 0) {
        /* No slot left: the heap has grown. */
        if (small_heap_defer(ss)) {
            atomic_store(&small_heap_slabs, true);
            if (!atomic_load(&small_heap_grown)) return;
        }
    }
    /* Grown: the deferred ones, an overflow among them, become huge pages. */
    small_heap_outgrown();
    atomic_store(&small_heap_slabs, false);
    /* An overflow starts on base pages as the small heap's did, its free
     * units purged as theirs are; it becomes huge when its pages reach the
     * small heap's budget (seg_small_heap_carved) or the next SuperSlab is
     * mapped. tiny/ keeps its full-size slabs: the heap is not small. */
    if (atomic_load_explicit(&seg_units_returning, memory_order_relaxed) >=
            SEG_RETURNING_UNITS_MIN &&
        atomic_fetch_add(&overflows_deferred, 1) < SEG_OVERFLOWS_MAX)
        small_heap_defer(ss);
}

HS_COLD void seg_small_heap_carved(const void *from, size_t bytes)
{
    uintptr_t first = (uintptr_t)from & ~(uintptr_t)4095;
    long pages = (long)((hs_align_up((uintptr_t)from + bytes, 4096) - first) / 4096);
    long carved = atomic_fetch_add_explicit(&small_heap_carved, pages, memory_order_relaxed);
    if (atomic_load_explicit(&small_heap_pages_seen, memory_order_relaxed) + carved + pages <
        SEG_SMALL_HEAP_FAULTS)
        return;
    if (small_heap_look(NULL) >= SEG_SMALL_HEAP_FAULTS) small_heap_outgrown();
}

HS_COLD void seg_small_heap_passing(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (atomic_load(&small_heap[i]) == ss)
            atomic_fetch_or(&small_heap_passing[i], unit_bits(first_unit, n_units));
}

/* Units handed out anew are counted again, until tiny/ says otherwise. */
static void small_heap_units_taken(const seg_superslab_t *ss, uint64_t bits)
{
    if (!atomic_load_explicit(&seg_small_heap_deferred, memory_order_relaxed)) return;
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (atomic_load_explicit(&small_heap[i], memory_order_relaxed) == ss)
            atomic_fetch_and(&small_heap_passing[i], ~bits);
}

/* Whether ss is one of the deferred SuperSlabs (a relaxed look). */
static bool small_heap_holds(const seg_superslab_t *ss)
{
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++)
        if (atomic_load_explicit(&small_heap[i], memory_order_relaxed) == ss) return true;
    return false;
}

bool seg_small_heap(void) { return atomic_load_explicit(&small_heap_slabs, memory_order_relaxed); }

/* Whether free units of a SuperSlab in use may go back to the kernel: never
 * where that would split a huge page (hugetlb, or THP that the kernel may
 * have made one), so base pages, or a deferred SuperSlab of the small heap
 * while it is still kept off huge pages. */
static bool units_purgeable(const seg_superslab_t *ss)
{
    if (ss->backing == THP_BACKING_BASE) return true;
    return ss->backing == THP_BACKING_THP && small_heap_holds(ss);
}

/* Whether ss is a THP SuperSlab in use so sparse that its free units are
 * worth its huge page (SEG_SPARSE_FREE_UNITS): they go back once it has been
 * quiet for the release delay, on base pages from then on. Never with
 * HUGESLAB_SPLIT_SPARSE=0, for programs that would rather keep one fault per
 * SuperSlab when they refill it than the RSS of its free units. */
static bool huge_sparse(const seg_superslab_t *ss)
{
    return hs_option(HS_OPT_SPLIT_SPARSE) && ss->backing == THP_BACKING_THP &&
           !small_heap_holds(ss) && __builtin_popcountll(ss->free_units) >= SEG_SPARSE_FREE_UNITS;
}

/* Whether a SuperSlab of base pages should become a huge page again when
 * its pages all go back: one whose huge page was given up (huge_sparse),
 * while the backing asked for is not base pages and THP is on. */
static bool huge_wanted_again(thp_backing_t backing)
{
    thp_mode_t mode = thp_system_mode();
    return backing == THP_BACKING_BASE && hs_option(HS_OPT_BACKING) != HS_BACKING_BASE &&
           (mode == THP_MODE_MADVISE || mode == THP_MODE_ALWAYS);
}

thp_backing_t seg_release_backing(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node)
{
    if (!huge_wanted_again(backing)) return backing;
    thp_allow_huge(ss, HS_SUPERSLAB_SIZE);
    hs_count_add(&seg.pools[memory_node].stat_superslabs[THP_BACKING_BASE], -1);
    hs_count_add(&seg.pools[memory_node].stat_superslabs[THP_BACKING_THP], 1);
    return THP_BACKING_THP;
}

/* A unit was taken or given back: the SuperSlab is no longer quiet, and
 * its free units are no longer known to have gone back. */
static void units_changed(seg_superslab_t *ss)
{
    ss->units_changed_ms = (uint32_t)seg_now_ms();
    ss->units_purged = 0;
}

/* Maps SuperSlabs for pool `node`, bound before their first touch to the
 * node the process policy asks for. A hugetlb mapping is populated at once:
 * if the bound node cannot supply its pages, that is an error here and a
 * fallback to THP, never a SIGBUS at a later touch. */
static seg_superslab_t *map_superslabs(size_t size, size_t align, seg_chunk_kind_t kind,
                                       unsigned node)
{
    bool spare_wanted;
    thp_backing_t wanted = wanted_backing(&spare_wanted), got;
    unsigned memory_node = numa_node_for_superslab(node);
    bool many_nodes = numa_node_count() > 1;
    /* The hugetlb pool is global but its pages live on nodes: ask for one
     * only where the node has some. */
    if (wanted == THP_BACKING_HUGETLB && many_nodes) {
        _Atomic uint64_t *retry_at = &seg.node_hugetlb_retry_at_ms[memory_node];
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
        atomic_fetch_add(&seg.hugetlb_maps_under_way, 1);
        under_way = true;
        if (!atomic_load(&seg.hugetlb_forks))
            spare = os_map_aligned(size, HS_SUPERSLAB_SIZE, true);
        else
            wanted = THP_BACKING_THP;
        if (!spare && wanted == THP_BACKING_HUGETLB) {
            hugetlb_none_until_later(&seg.hugetlb_retry_at_ms);
            wanted = THP_BACKING_THP;
        }
    }
    seg_superslab_t *ss;
    for (;;) {
        ss = thp_map_aligned(size, align, wanted, &got);
        if (spare && (!ss || got != THP_BACKING_HUGETLB)) {
            os_unmap(spare, size);
            spare = NULL;
        }
        if (!ss) {
            if (under_way) atomic_fetch_sub(&seg.hugetlb_maps_under_way, 1);
            return NULL;
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
    if (kind == SEG_CHUNK_SLABS && got == THP_BACKING_THP) small_heap_note(ss);
    note_backing(wanted, got);
    ss->kind = (uint8_t)kind;
    ss->backing = (uint8_t)got;
    ss->node = (uint16_t)node;
    ss->memory_node = (uint16_t)memory_node;
    ss->run_size = size;
    count_mapping(memory_node, got, (int64_t)size);
    registry_set(ss, size, kind);
    if (got == THP_BACKING_HUGETLB) {
        if (hugetlb_track(ss, size, spare))
            os_advise_fork(ss, size, true); /* a fork from here on copies it */
        else if (spare)
            os_unmap(spare, size);
    }
    if (under_way) atomic_fetch_sub(&seg.hugetlb_maps_under_way, 1);
    return ss;
}

void seg_unmap_idle(seg_superslab_t *ss, size_t size, thp_backing_t backing)
{
    /* Never hint a range that is no longer ours. */
    for (unsigned i = 0; i < SEG_SMALL_HEAP_MAX; i++) {
        seg_superslab_t *deferred = ss;
        atomic_compare_exchange_strong(&small_heap[i], &deferred, NULL);
    }
    void *spare = backing == THP_BACKING_HUGETLB ? hugetlb_untrack(ss) : NULL;
    count_mapping(ss->memory_node, backing, -(int64_t)size);
    registry_clear(ss, size);
    os_unmap(ss, size);
    if (spare) os_unmap(spare, size);
}

/* ---- SuperSlabs of slabs ------------------------------------------------- */

HS_LIST_FUNCTIONS(list, seg_superslab_t)

/* Bit u of the result is set when units u..u+n-1 are all free and offer
 * min_bytes. */
static uint64_t fitting_starts(uint64_t free_units, unsigned n, size_t min_bytes)
{
    uint64_t starts = free_units;
    for (unsigned i = 1; i < n && starts; i++) starts &= free_units >> i;
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
        uint64_t here = unit_bits(begin, len) & starts;
        if (here && (!best || len < best)) {
            best = len;
            *in_run = here;
        }
        u = begin + len;
    }
    return best;
}

/* Writes the header of a chunk that changes role, or comes back from a
 * purged stack, as one of `kind` (a SuperSlab of slabs, or a run of one
 * chunk), and names it so in the registry. */
static void chunk_header(seg_superslab_t *ss, seg_chunk_kind_t kind, thp_backing_t backing,
                         unsigned memory_node, unsigned node)
{
    memset(ss, 0, sizeof *ss);
    ss->kind = kind;
    ss->backing = (uint8_t)backing;
    ss->memory_node = (uint16_t)memory_node;
    ss->node = (uint16_t)node;
    ss->run_size = HS_SUPERSLAB_SIZE;
    registry_set(ss, HS_SUPERSLAB_SIZE, kind);
}

/* A SuperSlab's header at ss, a chunk the pool reuses (a purged SuperSlab
 * or a cached run). */
static void superslab_header(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node,
                             unsigned node)
{
    chunk_header(ss, SEG_CHUNK_SLABS, backing, memory_node, node);
}

/* A SuperSlab back from a purged stack (the caller took its entry: the
 * newest lazily freed one, whose pages are the likeliest to be resident
 * still, else a released one). Its header may have been zeroed by the
 * kernel, so it is written anew before the registry names it. */
static seg_superslab_t *revive_purged(uintptr_t entry, unsigned node)
{
    seg_superslab_t *ss = (seg_superslab_t *)(entry & ~(uintptr_t)HS_SUPERSLAB_MASK);
    superslab_header(ss, (thp_backing_t)(entry & 3), (unsigned)((entry >> 2) & (HS_MAX_NODES - 1)),
                     node);
    hs_count_add(&seg.stat_purged_superslabs, -1);
    return ss;
}

/* Takes ss off its pool's idle list (whose lock is held). */
static void idle_unlink(node_pool_t *pool, seg_superslab_t *ss)
{
    if (pool->outgrown == ss) pool->outgrown = NULL;
    list_remove(&pool->idle, ss);
    pool->idle_count--;
    hs_count_add(&seg.stat_idle_superslabs, -1);
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
    hs_lock(&seg.run_cache_lock);
    for (run = seg.run_cache; run; run = run->next)
        if (run->run_size == HS_SUPERSLAB_SIZE && run->memory_node == memory_node &&
            !run->base_tail)
            break;
    if (run) {
        list_remove(&seg.run_cache, run);
        seg.run_cache_bytes -= run->run_size;
    }
    hs_unlock(&seg.run_cache_lock);
    if (run) superslab_header(run, (thp_backing_t)run->backing, memory_node, node);
    return run;
}

/* A SuperSlab with every unit free, in no list, for the caller alone.
 * Called with the pool's lock held and returns with it held, but releases
 * it in between: what a new SuperSlab costs -- mmap, mbind,
 * MADV_POPULATE_WRITE, sysfs reads, the faults of a purged one -- happens
 * with no lock held. */
static seg_superslab_t *take_superslab(node_pool_t *pool, unsigned node)
{
    seg_superslab_t *ss = pool->idle;
    uintptr_t purged = 0;
    if (ss) idle_unlink(pool, ss);
    hs_unlock(&pool->lock);
    /* A cached run before a purged SuperSlab: its pages are resident, and
     * would stay so beside the revived one's until the purge delay. */
    if (!ss) ss = superslab_from_run_cache(numa_node_for_reuse(node), node);
    if (!ss) {
        hs_lock(&pool->lock);
        if (pool->lazy.count || pool->released.count) {
            purged_stack_t *from = pool->lazy.count ? &pool->lazy : &pool->released;
            purged = from->entries[--from->count].bits;
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
        ss = map_superslabs(HS_SUPERSLAB_SIZE, HS_SUPERSLAB_SIZE, SEG_CHUNK_SLABS, node);
        if (ss) ss->fresh_units = ALL_UNITS_FREE;
    }
    if (ss) {
        ss->free_units = ALL_UNITS_FREE;
        ss->on_partial = 0;
        if (seg.client_init) seg.client_init(ss);
    }
    hs_lock(&pool->lock);
    return ss;
}

/* Best fit: the shortest free run that holds n units offering min_bytes,
 * in the fullest SuperSlab of the partial list among equals, and where the
 * slab may start in it (*starts); NULL if none has room. Taking the first
 * fit instead cut the long runs that slabs of many units need into pieces
 * no such slab fits, while the SuperSlab's huge page stayed resident
 * whole: git log -p (about 100 MiB of 64-512 KiB blocks in its delta base
 * cache, slabs of 4 to 16 units) mapped 168 MiB of SuperSlabs for 125 MiB
 * of slabs. */
static seg_superslab_t *best_fit(node_pool_t *pool, unsigned n_units, size_t min_bytes,
                                 uint64_t *starts)
{
    seg_superslab_t *ss = NULL;
    unsigned best_len = 0, best_free = 0, candidates = 0;
    for (seg_superslab_t *c = pool->partial; c && candidates < SEG_FIT_CANDIDATES; c = c->next) {
        uint64_t fit = fitting_starts(c->free_units, n_units, min_bytes), in_run = 0;
        if (!fit) continue;
        candidates++;
        unsigned len = shortest_fitting_run(c->free_units, fit, &in_run);
        unsigned n_free = (unsigned)__builtin_popcountll(c->free_units);
        if (!ss || len < best_len || (len == best_len && n_free < best_free)) {
            ss = c;
            *starts = in_run;
            best_len = len;
            best_free = n_free;
        }
        if (len == n_units) break;
    }
    return ss;
}

/* best_fit for *n_units, else for min_units (then *n_units is lowered). */
static seg_superslab_t *fit(node_pool_t *pool, unsigned *n_units, unsigned min_units,
                            size_t min_bytes, uint64_t *starts)
{
    seg_superslab_t *ss = best_fit(pool, *n_units, min_bytes, starts);
    if (!ss && min_units < *n_units) {
        ss = best_fit(pool, min_units, min_bytes, starts);
        if (ss) *n_units = min_units;
    }
    return ss;
}

seg_superslab_t *seg_units_alloc(unsigned node, unsigned *n_units_io, unsigned min_units,
                                 size_t min_bytes, unsigned *first_unit, bool *fresh)
{
    unsigned n_units = *n_units_io;
    HS_ASSERT(min_units >= 1 && min_units <= n_units && n_units <= HS_UNITS_PER_SUPERSLAB);
    HS_ASSERT(min_bytes <= min_units * HS_UNIT_SIZE);
    node_pool_t *pool = &seg.pools[node];
    hs_lock(&pool->lock);
    uint64_t starts = 0;
    seg_superslab_t *ss = fit(pool, &n_units, min_units, min_bytes, &starts);
    /* No room in the SuperSlabs in use, and none idle: before one is
     * mapped (or a purged one revived), 2 MiB more in RSS, the caller's
     * slabs that other threads emptied go back, and their units may hold
     * the slab. */
    if (!ss && !pool->idle && seg.client_reclaim) {
        hs_unlock(&pool->lock);
        bool released = seg.client_reclaim();
        hs_lock(&pool->lock);
        if (released) ss = fit(pool, &n_units, min_units, min_bytes, &starts);
    }
    if (!ss) {
        ss = take_superslab(pool, node);
        if (!ss) {
            hs_unlock(&pool->lock);
            errno = ENOMEM;
            return NULL;
        }
        starts = fitting_starts(ss->free_units, n_units, min_bytes);
        list_push(&pool->partial, ss);
        ss->on_partial = 1;
    }
    unsigned first = (unsigned)__builtin_ctzll(starts);
    uint64_t bits = unit_bits(first, n_units);
    ss->free_units &= ~bits;
    *fresh = (ss->fresh_units & bits) == bits;
    ss->fresh_units &= ~bits;
    units_changed(ss);
    pool->units_taken_ms = ss->units_changed_ms;
    small_heap_units_taken(ss, bits);
    if (ss->free_units == 0) {
        list_remove(&pool->partial, ss);
        ss->on_partial = 0;
    }
    SEG_VALIDATE(ss);
    hs_unlock(&pool->lock);
    *first_unit = first;
    *n_units_io = n_units;
    return ss;
}

bool seg_units_extend(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    if (n_units == 0 || first_unit + n_units > HS_UNITS_PER_SUPERSLAB) return false;
    node_pool_t *pool = &seg.pools[ss->node];
    uint64_t bits = unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    bool free = (ss->free_units & bits) == bits;
    if (free) {
        ss->free_units &= ~bits;
        ss->fresh_units &= ~bits;
        units_changed(ss);
        pool->units_taken_ms = ss->units_changed_ms;
        small_heap_units_taken(ss, bits);
        if (ss->free_units == 0 && ss->on_partial) {
            list_remove(&pool->partial, ss);
            ss->on_partial = 0;
        }
        SEG_VALIDATE(ss);
    }
    hs_unlock(&pool->lock);
    return free;
}

static size_t idle_bytes_total(void)
{
    return (atomic_load_explicit(&seg.stat_idle_superslabs, memory_order_relaxed)
            << HS_SUPERSLAB_SHIFT) +
           seg.run_cache_bytes;
}

/* How much idle memory is worth holding for reuse: what the program
 * recently had in use says how much it may soon ask for again. A quarter of
 * the recent peak (16 MiB at least), which halves every second once use
 * falls, plus the reserve; never more than HUGESLAB_CACHE_MB. A fixed 1 GiB made every
 * program that freed much look 1 GiB bigger to RSS monitors. */
static size_t cache_limit(const seg_purge_policy_t *policy)
{
    uint64_t mapped = atomic_load_explicit(&seg.stat_bytes_mapped, memory_order_relaxed);
    uint64_t resting = idle_bytes_total() +
                       (atomic_load_explicit(&seg.stat_purged_superslabs, memory_order_relaxed)
                        << HS_SUPERSLAB_SHIFT);
    uint64_t in_use = mapped > resting ? mapped - resting : 0;
    uint64_t now = seg_now_ms();
    uint64_t peak = atomic_load_explicit(&seg.recent_peak_bytes, memory_order_relaxed);
    uint64_t at = atomic_load_explicit(&seg.recent_peak_at_ms, memory_order_relaxed);
    if (now - at >= 1000) {
        uint64_t halvings = (now - at) / 1000;
        peak = halvings >= 64 ? 0 : peak >> halvings;
        at = now;
    }
    if (in_use >= peak) {
        peak = in_use;
        at = now;
    }
    atomic_store_explicit(&seg.recent_peak_bytes, peak, memory_order_relaxed);
    atomic_store_explicit(&seg.recent_peak_at_ms, at, memory_order_relaxed);
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
        .uring = hs_option(HS_OPT_PURGE_BACKEND) == HS_PURGE_BACKEND_URING,
        .everything = false,
    };
}

/* Whether the purge thread should not wait for its timer: idle memory is
 * over the limit the program's recent use allows. */
static bool idle_over_limit_now(void)
{
    seg_purge_policy_t policy = seg_purge_policy();
    return over_cache_limit(&policy);
}

/* Units came back to ss (its pool's lock held): empty, it goes to the idle
 * list (true), else it is on the partial list. */
static bool units_back(node_pool_t *pool, seg_superslab_t *ss)
{
    if (ss->free_units != ALL_UNITS_FREE) {
        if (!ss->on_partial) {
            list_push(&pool->partial, ss);
            ss->on_partial = 1;
        }
        return false;
    }
    if (ss->on_partial) list_remove(&pool->partial, ss);
    ss->on_partial = 0;
    ss->idle_since_ms = seg_now_ms();
    list_push(&pool->idle, ss);
    pool->idle_count++;
    hs_count_add(&seg.stat_idle_superslabs, 1);
    return true;
}

void seg_units_free(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    node_pool_t *pool = &seg.pools[ss->node];
    uint64_t bits = unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    HS_ASSERT((ss->free_units & bits) == 0);
    ss->free_units |= bits;
    units_changed(ss);
    bool now_idle = units_back(pool, ss);
    bool purge_units = !now_idle && units_purgeable(ss) &&
                       __builtin_popcountll(ss->free_units) >= SEG_PURGE_UNITS_MIN;
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
        purge_notify(idle_over_limit_now());
    else if (purge_units || sparse)
        purge_notify(false);
}

HS_COLD unsigned seg_take_free_units(const seg_purge_policy_t *policy, uint64_t now_ms,
                                     seg_free_units_t *out, unsigned max, uint64_t *next_due)
{
    unsigned taken = 0;
    *next_due = UINT64_MAX;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        node_pool_t *pool = &seg.pools[n];
        hs_lock(&pool->lock);
        seg_superslab_t *ss = pool->partial;
        while (ss && taken < max) {
            seg_superslab_t *next = ss->next;
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
                uint64_t quiet = (uint32_t)((uint32_t)now_ms - ss->units_changed_ms);
                uint64_t grown = (uint32_t)((uint32_t)now_ms - pool->units_taken_ms);
                if (!base && grown < quiet) quiet = grown;
                if (policy->everything || quiet >= wait) {
                    /* Out of free_units (and so of the partial list) while
                     * their pages go back: no slab may be cut there meanwhile. */
                    out[taken++] = (seg_free_units_t){ss, ss->free_units, !base};
                    ss->free_units = 0;
                    ss->units_purged = SEG_UNITS_PURGING;
                    list_remove(&pool->partial, ss);
                    ss->on_partial = 0;
                    if (!base) {
                        /* Base pages from now on (seg_release_backing makes
                         * it huge again once all of it goes back). */
                        ss->backing = THP_BACKING_BASE;
                        hs_count_add(&seg.pools[ss->memory_node].stat_superslabs[THP_BACKING_THP],
                                     -1);
                        hs_count_add(&seg.pools[ss->memory_node].stat_superslabs[THP_BACKING_BASE],
                                     1);
                    }
                } else if (now_ms + (wait - quiet) < *next_due) {
                    *next_due = now_ms + (wait - quiet);
                }
            }
            ss = next;
        }
        hs_unlock(&pool->lock);
    }
    return taken;
}

void seg_return_free_units(const seg_free_units_t *taken)
{
    seg_superslab_t *ss = taken->ss;
    node_pool_t *pool = &seg.pools[ss->node];
    hs_lock(&pool->lock);
    ss->free_units |= taken->units;
    /* Still SEG_UNITS_PURGING unless a unit was freed meanwhile: that one's
     * pages may still be resident. */
    ss->units_purged = ss->units_purged == SEG_UNITS_PURGING;
    bool now_idle = units_back(pool, ss);
    SEG_VALIDATE(ss);
    hs_unlock(&pool->lock);
    if (now_idle) purge_notify(false);
}

/* ---- handing idle memory to the purge thread ------------------------------- */

/* With `lock` (the pool's) held; it may be let go while the stack grows. */
static bool purged_push(hs_lock_t *lock, purged_stack_t *stack, uintptr_t entry)
{
    while (stack->count == stack->cap)
        if (!metadata_grow(lock, (void **)&stack->entries, &stack->cap, &stack->count,
                           sizeof *stack->entries, 512))
            return false;
    /* Timed with the lock held, after any growth: the stack stays in time
     * order, which seg_take_lazy relies on. */
    stack->entries[stack->count++] = (purged_entry_t){entry, seg_now_ms()};
    return true;
}

void seg_store_purged(seg_superslab_t *ss, unsigned node, thp_backing_t backing,
                      unsigned memory_node, bool lazy)
{
    node_pool_t *pool = &seg.pools[node];
    hs_lock(&pool->lock);
    /* The header may be zeroed by the kernel from now on: what revival needs
     * rides in the entry's low bits (the address is 2 MiB-aligned). */
    bool kept = purged_push(&pool->lock, lazy ? &pool->lazy : &pool->released,
                            (uintptr_t)ss | (uintptr_t)backing | (uintptr_t)memory_node << 2);
    hs_unlock(&pool->lock);
    if (kept) {
        hs_count_add(&seg.stat_purged_superslabs, 1);
    } else {
        ss->memory_node = (uint16_t)memory_node;
        seg_unmap_idle(ss, HS_SUPERSLAB_SIZE, backing);
    }
}

HS_COLD unsigned seg_take_lazy(uint64_t now_ms, uint64_t min_lazy_ms, seg_purged_t *out,
                               unsigned max, uint64_t *next_due)
{
    unsigned taken = 0;
    *next_due = UINT64_MAX;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        node_pool_t *pool = &seg.pools[n];
        purged_stack_t *lazy = &pool->lazy;
        hs_lock(&pool->lock);
        /* Oldest first, from the bottom; the rest moves down. */
        size_t k = 0;
        while (k < lazy->count && taken < max &&
               now_ms - lazy->entries[k].since_ms >= min_lazy_ms) {
            uintptr_t entry = lazy->entries[k++].bits;
            out[taken++] = (seg_purged_t){
                .ss = (seg_superslab_t *)(entry & ~(uintptr_t)HS_SUPERSLAB_MASK),
                .node = n,
                .backing = (thp_backing_t)(entry & 3),
                .memory_node = (unsigned)((entry >> 2) & (HS_MAX_NODES - 1)),
            };
        }
        if (k) {
            lazy->count -= k;
            memmove(lazy->entries, lazy->entries + k, lazy->count * sizeof *lazy->entries);
            hs_count_add(&seg.stat_purged_superslabs, -(int64_t)k);
        }
        if (lazy->count && lazy->entries[0].since_ms + min_lazy_ms < *next_due)
            *next_due = lazy->entries[0].since_ms + min_lazy_ms;
        hs_unlock(&pool->lock);
    }
    return taken;
}

/* Takes ss, idle, out of its pool (whose lock is held) and of the registry,
 * for its pages to go back. */
static HS_NOINLINE void idle_take(node_pool_t *pool, seg_superslab_t *ss)
{
    idle_unlink(pool, ss);
    registry_clear(ss, HS_SUPERSLAB_SIZE);
}

HS_COLD bool seg_mark_outgrown(seg_superslab_t *ss, unsigned node)
{
    node_pool_t *pool = &seg.pools[node];
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
    bool everything = policy->everything;
    size_t reserve = everything ? 0 : policy->reserve_bytes / HS_SUPERSLAB_SIZE;
    for (unsigned n = 0; n < numa_node_count() && taken < max; n++) {
        node_pool_t *pool = &seg.pools[n];
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
            bool due = everything || outgrown || now_ms - ss->idle_since_ms >= wait ||
                       (position >= reserve && over_cache_limit(policy));
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
    hs_lock(&seg.run_cache_lock);
    seg_superslab_t *run = seg.run_cache;
    while (run && taken < max) {
        seg_superslab_t *next = run->next;
        if (everything || now_ms - run->idle_since_ms >= policy->purge_after_ms ||
            seg.run_cache_bytes > cache_limit(policy)) {
            list_remove(&seg.run_cache, run);
            seg.run_cache_bytes -= run->run_size;
            out[taken++] = (seg_taken_t){run, false};
        } else {
            uint64_t due_at = run->idle_since_ms + policy->purge_after_ms;
            if (due_at < *next_due) *next_due = due_at;
        }
        run = next;
    }
    hs_unlock(&seg.run_cache_lock);
    return taken;
}

/* ---- runs ----------------------------------------------------------------- */

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
 * RSS, and a heap of 2.5 MiB blocks would have cost 130 faults a block. */
static bool run_end_on_base_pages(size_t block_end, size_t end_chunk)
{
    size_t pages = (block_end - end_chunk + os_page_size() - 1) / os_page_size();
    return pages <= 1 + (end_chunk >> HS_SUPERSLAB_SHIFT) / 10;
}

/* Hints a THP run whose block now ends block_end bytes after its header:
 * from the chunk where the block ends (when run_end_on_base_pages; else
 * from the next) to the run's end, base pages; a range hinted so before
 * and no longer, huge pages again. The run's pages below resident_end may
 * be resident (a cached run, a resized block): past the block's end, in
 * the range put on base pages, they go back now, a huge page there
 * included. That is none of the block's bytes, and what the kernel would
 * have faulted in whole for it. */
static void run_hint_tail(seg_superslab_t *run, size_t block_end, size_t resident_end)
{
    if (run->backing != THP_BACKING_THP) return;
    size_t end_chunk = (block_end - 1) & ~HS_SUPERSLAB_MASK;
    size_t from =
        run_end_on_base_pages(block_end, end_chunk) ? end_chunk : end_chunk + HS_SUPERSLAB_SIZE;
    uint32_t want = from < run->run_size ? (uint32_t)(from >> HS_SUPERSLAB_SHIFT) + 1 : 0;
    uint32_t had = run->base_tail;
    if (had == want) return;
    if (had) {
        size_t had_at = (size_t)(had - 1) << HS_SUPERSLAB_SHIFT;
        thp_allow_huge((char *)run + had_at, run->run_size - had_at);
    }
    run->base_tail = want;
    if (!want) return;
    thp_defer_huge((char *)run + from, run->run_size - from);
    size_t purge_from = hs_align_up(block_end, os_page_size());
    if (purge_from < from) purge_from = from;
    size_t purge_to = resident_end < run->run_size ? resident_end : run->run_size;
    if (purge_from < purge_to) os_purge((char *)run + purge_from, purge_to - purge_from, true);
}

/* A cached run's range on base pages holds only its last block's bytes:
 * they go back before the run serves again, with the page tables the
 * kernel then frees, so that where the new block fills that range it is a
 * huge page at its first touch, not 512 base-page faults. */
static void run_drop_base_tail(seg_superslab_t *run)
{
    size_t at = (size_t)(run->base_tail - 1) << HS_SUPERSLAB_SHIFT;
    os_purge((char *)run + at, run->run_size - at, true);
}

/* Resizes or moves a run's mapping to `total` bytes (a multiple of 2 MiB)
 * without copying; its registry entries and the mapping counts follow.
 * Returns the run's header where it now is, or NULL with the run as it was. */
static seg_superslab_t *run_remap(seg_superslab_t *run, size_t total)
{
    size_t old_total = run->run_size;
    thp_backing_t backing = (thp_backing_t)run->backing;
    unsigned node = run->node;
    /* The registry must never describe a range the kernel has moved: clear
     * it first, and describe whatever the result is afterwards. */
    registry_clear(run, old_total);
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
    seg_superslab_t *moved = thp_remap(run, old_total, total, backing);
    if (!moved) {
        registry_set(run, old_total, SEG_CHUNK_RUN);
        return NULL;
    }
    count_mapping(node, backing, (int64_t)total - (int64_t)old_total);
    moved->run_size = total;
    registry_set(moved, total, SEG_CHUNK_RUN);
    return moved;
}

/* A cached run on memory_node for a run of `size` bytes: the smallest that
 * fits as it is, else the one nearest in size that can be remapped (not
 * hugetlb), for the caller to cut or grow. */
static seg_superslab_t *run_cache_take(size_t size, unsigned memory_node)
{
    seg_superslab_t *best = NULL, *nearest = NULL;
    hs_lock(&seg.run_cache_lock);
    for (seg_superslab_t *r = seg.run_cache; r; r = r->next) {
        if (r->memory_node != memory_node) continue;
        if (run_fits(r->run_size, size) && (!best || r->run_size < best->run_size)) best = r;
        if (r->backing != THP_BACKING_HUGETLB &&
            (!nearest || size_distance(r->run_size, size) < size_distance(nearest->run_size, size)))
            nearest = r;
    }
    if (!best) best = nearest;
    if (best) {
        list_remove(&seg.run_cache, best);
        seg.run_cache_bytes -= best->run_size;
    }
    hs_unlock(&seg.run_cache_lock);
    return best;
}

/* The header of a run of one chunk at ss, a SuperSlab's chunk that the
 * pool gives up. */
static void run_header(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node,
                       unsigned node)
{
    chunk_header(ss, SEG_CHUNK_RUN, backing, memory_node, node);
}

/* Whether a SuperSlab's chunk may become a run: a huge page (or hugetlb),
 * not base pages (a sparse huge page given up, the small heap's), where a
 * block of 2 MiB would cost 512 faults. */
static bool run_backing_ok(const seg_superslab_t *ss)
{
    return ss->backing != THP_BACKING_BASE && !small_heap_holds(ss);
}

/* An idle SuperSlab of `node`'s pool on memory_node, made a run of one
 * chunk; NULL when there is none. Its pages may be resident, a huge page
 * that a fresh mapping would add to RSS: sqlite3 (1 M rows) emptied a
 * SuperSlab of its self-join's 12-14 KiB blocks and then grew a block by
 * realloc past 1 MiB, which mapped a run beside it. */
static seg_superslab_t *run_from_idle_superslab(unsigned node, unsigned memory_node)
{
    node_pool_t *pool = &seg.pools[node];
    hs_lock(&pool->lock);
    seg_superslab_t *ss = pool->idle;
    if (ss && (ss->memory_node != memory_node || !run_backing_ok(ss))) ss = NULL;
    if (ss) idle_unlink(pool, ss);
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
        run = map_superslabs(total, map_align, SEG_CHUNK_RUN, node);
        if (!run) return NULL;
        *fresh = true;
    }
    run_hint_tail(run, offset + (size < 16 ? 16 : size), resident_end);
    run->run_block = (char *)run + offset;
    hs_count_add(&seg.stat_run_bytes_live, (int64_t)run->run_size);
    if (run->run_size >= huge_threshold()) hs_count_add(&seg.stat_huge_blocks, 1);
    return run->run_block;
}

bool seg_lone_slab_claim(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    node_pool_t *pool = &seg.pools[ss->node];
    uint64_t bits = unit_bits(first_unit, n_units);
    hs_lock(&pool->lock);
    bool lone = (ss->free_units | bits) == ALL_UNITS_FREE &&
                ss->units_purged != SEG_UNITS_PURGING && run_backing_ok(ss);
    if (lone) {
        /* In no list and with no free unit, nobody cuts a slab in it. */
        if (ss->on_partial) list_remove(&pool->partial, ss);
        ss->on_partial = 0;
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
    hs_count_add(&seg.stat_run_bytes_live, (int64_t)ss->run_size);
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
    hs_count_add(&seg.stat_run_bytes_live, -(int64_t)size);
    run->run_block = NULL;
    if (size >= huge_threshold()) {
        /* A mapping of its own: returned at once. This is the one munmap a
         * program thread makes, as for any allocator's huge blocks. */
        hs_count_add(&seg.stat_huge_blocks, -1);
        seg_unmap_idle(run, size, (thp_backing_t)run->backing);
        return;
    }
    run->idle_since_ms = seg_now_ms();
    hs_lock(&seg.run_cache_lock);
    list_push(&seg.run_cache, run);
    seg.run_cache_bytes += size;
    hs_unlock(&seg.run_cache_lock);
    purge_notify(idle_over_limit_now());
}

void *seg_run_resize(seg_superslab_t *run, size_t new_size)
{
    size_t offset = (size_t)((char *)run->run_block - (char *)run);
    if (new_size > SIZE_MAX / 2 - offset - HS_SUPERSLAB_SIZE) return NULL;
    size_t total = hs_align_up(offset + new_size, HS_SUPERSLAB_SIZE);
    size_t old_total = run->run_size;
    if (total == old_total) {
        run_hint_tail(run, offset + new_size, total);
        return run->run_block;
    }
    bool was_huge = old_total >= huge_threshold();
    seg_superslab_t *moved = run_remap(run, total);
    if (!moved) return NULL;
    run_hint_tail(moved, offset + new_size, old_total);
    hs_count_add(&seg.stat_run_bytes_live, (int64_t)total - (int64_t)old_total);
    moved->run_block = (char *)moved + offset;
    bool is_huge = total >= huge_threshold();
    if (is_huge != was_huge) hs_count_add(&seg.stat_huge_blocks, is_huge ? 1 : -1);
    return moved->run_block;
}

/* ---- invariants ------------------------------------------------------------ */

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
        SEG_CHECK((ss->free_units & ~ALL_UNITS_FREE) == 0, ss);
        /* On the partial list iff some units are free but not all. */
        SEG_CHECK(ss->on_partial == (ss->free_units != 0 && ss->free_units != ALL_UNITS_FREE), ss);
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
    node_pool_t *pool = &seg.pools[node];
    hs_lock(&pool->lock);
    for (const seg_superslab_t *ss = pool->partial; ss; ss = ss->next) {
        seg_superslab_validate(ss);
        SEG_CHECK(ss->kind == SEG_CHUNK_SLABS && ss->node == node && ss->on_partial, ss);
        SEG_CHECK(ss->next == NULL || ss->next->prev == ss, ss);
    }
    size_t idle = 0;
    for (const seg_superslab_t *ss = pool->idle; ss; ss = ss->next, idle++) {
        seg_superslab_validate(ss);
        SEG_CHECK(ss->kind == SEG_CHUNK_SLABS && ss->node == node, ss);
        SEG_CHECK(ss->free_units == ALL_UNITS_FREE && !ss->on_partial, ss);
        SEG_CHECK(ss->next == NULL || ss->next->prev == ss, ss);
        /* Newest first. */
        SEG_CHECK(ss->next == NULL || ss->next->idle_since_ms <= ss->idle_since_ms, ss);
    }
    SEG_CHECK(idle == pool->idle_count, pool->idle);
    const purged_stack_t *stacks[2] = {&pool->lazy, &pool->released};
    for (unsigned k = 0; k < 2; k++) {
        const purged_stack_t *st = stacks[k];
        SEG_CHECK(st->count <= st->cap, st->entries);
        for (size_t i = 0; i < st->count; i++) {
            uintptr_t entry = st->entries[i].bits;
            const void *base = (const void *)(entry & ~(uintptr_t)HS_SUPERSLAB_MASK);
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

/* ---- trimming, figures, fork ---------------------------------------------- */

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
                atomic_load_explicit(&seg.pools[n].stat_superslabs[b], memory_order_relaxed);
            by_backing[b] += v;
            node_total += v;
        }
        out->superslabs_by_node[n] = node_total;
    }
    out->superslabs_hugetlb = by_backing[THP_BACKING_HUGETLB];
    out->superslabs_thp = by_backing[THP_BACKING_THP];
    out->superslabs_base = by_backing[THP_BACKING_BASE];
    out->superslabs_cached = atomic_load_explicit(&seg.stat_idle_superslabs, memory_order_relaxed);
    out->superslabs_purged =
        atomic_load_explicit(&seg.stat_purged_superslabs, memory_order_relaxed);
    hs_lock(&seg.run_cache_lock);
    out->bytes_cached = seg.run_cache_bytes;
    hs_unlock(&seg.run_cache_lock);
    out->bytes_cached += out->superslabs_cached * HS_SUPERSLAB_SIZE;
    out->bytes_mapped = atomic_load_explicit(&seg.stat_bytes_mapped, memory_order_relaxed);
    out->bytes_in_runs = atomic_load_explicit(&seg.stat_run_bytes_live, memory_order_relaxed);
    out->purge_calls = atomic_load_explicit(&seg_stat_purge_calls, memory_order_relaxed);
    out->bytes_purged_total = atomic_load_explicit(&seg_stat_bytes_purged, memory_order_relaxed);
    out->huge_blocks = atomic_load_explicit(&seg.stat_huge_blocks, memory_order_relaxed);
}

/* Frees the spares of every tracked range, a few at a time: their pages
 * become free for the fork's copies (hugetlb_copy_marked). Each munmap
 * touches no page (nothing was faulted), and runs with no lock held. */
static void hugetlb_spares_free(void)
{
    for (;;) {
        struct {
            void *addr;  /* a spare taken off its range */
            size_t size; /* its bytes */
        } batch[16];
        unsigned n = 0;
        hs_lock(&seg.hugetlb_lock);
        for (size_t i = 0; i < seg.hugetlb_count && n < 16; i++) {
            hugetlb_range_t *r = &seg.hugetlb_ranges[i];
            if (!r->spare) continue;
            batch[n].addr = r->spare;
            batch[n++].size = r->size;
            r->spare = NULL;
            if (!r->spare_freed) seg.hugetlb_spares_out++;
            r->spare_freed = true;
        }
        hs_unlock(&seg.hugetlb_lock);
        for (unsigned i = 0; i < n; i++) os_unmap(batch[i].addr, batch[i].size);
        if (n < 16) return;
    }
}

void seg_fork_begin(void)
{
    HS_ASSERT(hs_lock_thread.held == 0);
    /* No auto hugetlb mapping starts from here until the spares are back,
     * and those under way end first (they take no lock of segment's until
     * they are tracked). */
    atomic_fetch_add(&seg.hugetlb_forks, 1);
    for (unsigned i = 0; atomic_load(&seg.hugetlb_maps_under_way) && i < 100000; i++) os_yield();
    /* One fork at a time, from here to the end of its copies: copy_pending
     * marks one fork's ranges. glibc releases its atfork lock around each
     * handler it calls, so two threads' forks can overlap; the second one
     * marked the ranges the first had not copied yet a second time, one
     * copy cleared one mark, and hugetlb_copies_pending never came back
     * to 0: every later fork waited here for it (fuzz_mt, four threads
     * forking with a small pool, hung). The waiting thread holds no lock,
     * and the fork under way needs nothing of it. */
    while (atomic_exchange(&seg.fork_active, true)) os_sleep_ms(1);
    HS_ASSERT(atomic_load(&seg.hugetlb_copies_pending) == 0);
    /* The spares' pages become free for this fork's copies, as late as can
     * be with no lock held: from here until seg_fork_parent_unlocked has
     * made the copies, another process may take them. */
    hugetlb_spares_free();
}

void seg_fork_prepare(void)
{
    for (unsigned n = 0; n < numa_node_count(); n++) hs_lock(&seg.pools[n].lock);
    hs_lock(&seg.run_cache_lock);
    hs_lock(&seg.hugetlb_lock);
    /* With hugetlb ranges, the parent may leave pages shared with the child
     * (the hugetlb backing keeps no spares, and a copy may find the pool
     * short): it then waits for the child's copy before fork() returns to
     * it (hugetlb_spares_restore). pipe() is no slow call: no page, no
     * file system. */
    seg.fork_done[0] = seg.fork_done[1] = -1;
    if (seg.hugetlb_count && os_pipe(seg.fork_done) != 0) seg.fork_done[0] = seg.fork_done[1] = -1;
}

/* The first tracked range whose copy is pending (`copy`) or whose spare is
 * out (not `copy`), its bytes in *size; NULL for none. Takes hugetlb_lock
 * for the look only: the caller works on the range with no lock held. */
static seg_superslab_t *hugetlb_first_marked(bool copy, size_t *size)
{
    seg_superslab_t *base = NULL;
    hs_lock(&seg.hugetlb_lock);
    for (size_t i = 0; i < seg.hugetlb_count && !base; i++) {
        const hugetlb_range_t *r = &seg.hugetlb_ranges[i];
        if (copy ? r->copy_pending : r->spare_freed) {
            base = r->base;
            *size = r->size;
        }
    }
    hs_unlock(&seg.hugetlb_lock);
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
 * (within a second) wherever a range is left shared. The spares that still
 * cannot be had are tried again after the next fork, which copies their
 * ranges meanwhile (seg_fork_parent) if the pool has the pages: until then
 * another process may take them, and a child of that fork may lose the
 * pages the parent writes while it copies. */
static void hugetlb_spares_restore(int child_done, bool shared)
{
    bool child_gone = child_done < 0;
    if (shared && !child_gone) child_gone = os_wait_hangup(child_done, 1000);
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
        hs_lock(&seg.hugetlb_lock);
        for (size_t i = 0; i < seg.hugetlb_count; i++) {
            hugetlb_range_t *r = &seg.hugetlb_ranges[i];
            if (r->base != base || !r->spare_freed) continue;
            r->spare_freed = false;
            seg.hugetlb_spares_out--;
            if (r->size == size) {
                r->spare = spare;
                spare = NULL;
            }
            break;
        }
        hs_unlock(&seg.hugetlb_lock);
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
 * here would be a page taken from the child. free_pages counts a copy for
 * every page, though those written since fork() need none: read again
 * before a range is left shared for want of them. Each range stays mapped
 * until it is unmarked (hugetlb_untrack waits), and whoever takes its
 * SuperSlabs meanwhile may write them: a write is the same copy as the
 * populate's, which the kernel makes once. Returns whether a range was
 * left shared. */
static bool hugetlb_copy_marked(void)
{
    bool shared = false;
    size_t free_pages = 0;
    for (;;) {
        size_t size = 0;
        seg_superslab_t *base = hugetlb_first_marked(true, &size);
        if (!base) return shared;
        size_t pages = size >> HS_SUPERSLAB_SHIFT;
        if (free_pages < pages) free_pages = thp_hugetlb_pages_available();
        if (free_pages >= pages && os_populate(base, size) == 0)
            free_pages -= pages;
        else
            shared = true;
        hs_lock(&seg.hugetlb_lock);
        hugetlb_range_t *r = hugetlb_range_of(base);
        HS_ASSERT(r && r->copy_pending);
        r->copy_pending = false;
        seg.hugetlb_copies_pending--;
        hs_unlock(&seg.hugetlb_lock);
    }
}

seg_fork_token_t seg_fork_parent(void)
{
    if (seg.fork_done[1] >= 0) os_close(seg.fork_done[1]);
    seg_fork_token_t token = {seg.fork_done[0], false};
    seg.fork_done[0] = seg.fork_done[1] = -1;
    /* The auto backing's ranges (those with a spare out, freed at this
     * fork or not reserved again since an earlier one) get the parent's
     * copies, marked here and made once every lock is released
     * (hugetlb_copy_marked); the others stay shared until the child has
     * copied them. */
    for (size_t i = 0; i < seg.hugetlb_count; i++) {
        hugetlb_range_t *r = &seg.hugetlb_ranges[i];
        if (r->spare_freed) {
            r->copy_pending = true;
            seg.hugetlb_copies_pending++;
        } else {
            token.shared = true;
        }
    }
    hs_unlock(&seg.hugetlb_lock);
    hs_unlock(&seg.run_cache_lock);
    for (unsigned n = numa_node_count(); n-- > 0;) hs_unlock(&seg.pools[n].lock);
    return token;
}

void seg_fork_parent_unlocked(seg_fork_token_t token)
{
    HS_ASSERT(hs_lock_thread.held == 0);
    if (hugetlb_copy_marked()) token.shared = true;
    hugetlb_spares_restore(token.child_done, token.shared);
    if (token.child_done >= 0) os_close(token.child_done);
    atomic_fetch_sub(&seg.hugetlb_forks, 1);
    atomic_store(&seg.fork_active, false);
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
static void hugetlb_privatize(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < seg.hugetlb_count; i++) {
        hugetlb_range_t r = seg.hugetlb_ranges[i];
        r.spare_freed = false;  /* spares are the parent's; the child has none */
        r.copy_pending = false; /* and so are the copies */
        if (thp_hugetlb_to_anonymous(r.base, r.size, child_fill, NULL) != 0) {
            seg.hugetlb_ranges[kept++] = r; /* stays hugetlb: may fault later */
            continue;
        }
        r.base->backing = THP_BACKING_THP;
        count_mapping(r.base->memory_node, THP_BACKING_HUGETLB, -(int64_t)r.size);
        count_mapping(r.base->memory_node, THP_BACKING_THP, (int64_t)r.size);
        seg.hugetlb_pages_mapped -= r.size >> HS_SUPERSLAB_SHIFT;
    }
    seg.hugetlb_count = kept;
    seg.hugetlb_spares_out = 0;
    seg.hugetlb_copies_pending = 0;
    /* Purged hugetlb SuperSlabs do not exist (they are unmapped), and idle
     * ones sit in the lists with their headers just rewritten above. */
}

void seg_fork_child(void)
{
    if (atomic_load_explicit(&seg.hugetlb_pages_mapped, memory_order_relaxed)) hugetlb_privatize();
    /* The parent waits for this to reserve its spares again. */
    if (seg.fork_done[0] >= 0) os_close(seg.fork_done[0]);
    if (seg.fork_done[1] >= 0) os_close(seg.fork_done[1]);
    seg.fork_done[0] = seg.fork_done[1] = -1;
    /* The parent's forks and mappings under way are not the child's. */
    atomic_store(&seg.hugetlb_forks, 0);
    atomic_store(&seg.hugetlb_maps_under_way, 0);
    atomic_store(&seg.fork_active, false);
    hs_lock_init(&seg.hugetlb_lock, HS_RANK_HUGETLB);
    hs_lock_init(&seg.run_cache_lock, HS_RANK_RUN_CACHE);
    for (unsigned n = 0; n < numa_node_count(); n++)
        hs_lock_init(&seg.pools[n].lock, HS_RANK_POOL + n);
    purge_fork_child();
}

void seg_shutdown(void) { purge_shutdown(); }

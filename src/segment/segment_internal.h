/* What the files of segment/ share: its state (seg_state), the helpers
 * more than one of them calls, and what purge.c asks of the pools; each
 * file says what it owns at its top. Nothing outside segment/ includes it. */
#ifndef HS_SEGMENT_INTERNAL_H
#define HS_SEGMENT_INTERNAL_H

#include "segment/segment.h"

#include "thp/thp.h"

/* How idle memory goes back to the kernel. The purge thread reads it from
 * the options once per pass (seg_purge_policy) and malloc_trim makes its
 * own (no delay and no reserve: everything, at once, with MADV_DONTNEED);
 * every step of a pass gets the same struct, so no step reads an option of
 * its own and no step knows who asked. */
typedef struct seg_purge_policy_s {
    uint64_t purge_after_ms;        /* idle time before the first stage
                                       (HUGESLAB_PURGE_DELAY_MS) */
    uint64_t release_after_ms;      /* idle time after which memory skips the lazy
                                       stage; the reserve waits this long too */
    uint64_t lazy_release_after_ms; /* how long lazily freed memory waits for
                                       MADV_DONTNEED (HUGESLAB_RELEASE_DELAY_MS) */
    size_t reserve_bytes;           /* newest idle SuperSlabs per node that wait
                                       release_after_ms (HUGESLAB_RESERVE_MB) */
    size_t cache_cap_bytes;         /* idle memory never held beyond this
                                       (HUGESLAB_CACHE_MB) */
    bool dontneed;                  /* no lazy stage: MADV_DONTNEED at once */
    bool release_for_fresh;         /* the lazy stage cut short for fresh memory
                                       (seg_note_fresh): the purge thread's */
    bool uring;                     /* batch the advice through io_uring (the purge
                                       thread's ring: never on another thread) */
} seg_purge_policy_t;

/* The purge thread's policy, from the options as they are now. */
seg_purge_policy_t seg_purge_policy(void);

/* A SuperSlab or run seg_take_idle took, with what the pool knew of it. */
typedef struct seg_taken_s {
    seg_superslab_t *ss; /* out of every list, for its pages to go back */
    bool release_now;    /* for good at once (MADV_DONTNEED, no lazy stage),
                            whatever its age: realloc's move emptied it
                            (seg_mark_outgrown), and its block will not come
                            back to the slabs */
} seg_taken_t;
/* Takes idle memory out of the pools for purging, as `policy` says:
 * SuperSlabs idle for at least purge_after_ms beyond the per-node reserve
 * (the newest), those of the reserve idle for release_after_ms, and beyond
 * that whatever exceeds the cache limit, oldest first; a SuperSlab marked
 * by seg_mark_outgrown goes whatever its age, with release_now. Taken
 * SuperSlabs are in no list, and those of slabs unknown to the registry (a
 * run stays known as a freed one), until given to seg_store_purged or
 * seg_unmap_idle. *next_due is set to when the next one will be due
 * (UINT64_MAX for none). Returns how many were taken. */
unsigned seg_take_idle(const seg_purge_policy_t *policy, uint64_t now_ms, seg_taken_t *out,
                       unsigned max, uint64_t *next_due);
/* A taken SuperSlab whose pages went back with madvise: kept mapped, for
 * reuse at the same address. (Its header may read as zero from now on.)
 * `lazy`: the advice was MADV_FREE, so the pages may still count in RSS and
 * seg_take_lazy will hand it out again for MADV_DONTNEED. */
void seg_store_purged(seg_superslab_t *ss, unsigned node, thp_backing_t backing,
                      unsigned memory_node, bool lazy);

/* A purged SuperSlab taken out of its pool, with what its header may no
 * longer say. */
typedef struct seg_purged_s {
    seg_superslab_t *ss;
    unsigned node;         /* pool it goes back to */
    thp_backing_t backing; /* THP or base */
    unsigned memory_node;  /* node its pages are bound to */
} seg_purged_t;
/* Marks ss due at the purge thread's next pass, whatever its age and the
 * reserve, for MADV_DONTNEED (seg_take_idle hands it out with release_now),
 * if it is pool `node`'s newest idle SuperSlab
 * (and not hugetlb): false when it is not, which is known without reading
 * its header (the purge thread may have taken it, and its pages, already). */
bool seg_mark_outgrown(seg_superslab_t *ss, unsigned node);
/* Takes SuperSlabs lazily freed at least policy->lazy_release_after_ms ago,
 * oldest first, out of their pools (to be released with MADV_DONTNEED and
 * given back to seg_store_purged); with policy->release_for_fresh, the next
 * oldest as well, as many as fresh memory asks (seg_fresh_take). *next_due:
 * when the next one falls due (UINT64_MAX for none). Returns how many were
 * taken. */
unsigned seg_take_lazy(const seg_purge_policy_t *policy, uint64_t now_ms, seg_purged_t *out,
                       unsigned max, uint64_t *next_due);
/* Takes up to `max` SuperSlabs off the pools' purged stacks, lazily freed
 * or released, whatever their age (seg_unmap_resting, which unmaps them).
 * Returns how many were taken. */
unsigned seg_take_purged(seg_purged_t *out, unsigned max);
/* Unmaps a purged SuperSlab that is in no pool (taken, or never stored). */
void seg_unmap_purged(const seg_purged_t *purged);
/* Fresh memory the process maps while SuperSlabs of its own are idle or
 * lazily freed, still resident: both count in RSS. So the pages of as many
 * of those go back for good as soon as the purge thread may take them
 * (idle ones still after the purge delay, lazily freed ones at once),
 * skipping the lazy stage's wait (HUGESLAB_RELEASE_DELAY_MS); a program
 * whose next phase has another shape (slabs freed, runs mapped) does not
 * peak at both. Called by seg_map_superslabs, with no lock held; wakes the
 * purge thread when lazily freed memory waits. */
void seg_note_fresh(size_t bytes);
/* Up to `want` SuperSlabs of what fresh memory asked to go back (none once
 * lazy_release_after_ms has passed since the last fresh mapping): the
 * number granted, taken from what is asked. */
unsigned seg_fresh_take(const seg_purge_policy_t *policy, uint64_t now_ms, unsigned want);
/* SuperSlabs on the pools' lazy stacks (relaxed: a hint). */
extern _Atomic uint64_t seg_lazy_superslabs;

/* Free units taken out of a SuperSlab in use, for their pages to go back
 * (seg_take_free_units), and given back with seg_return_free_units. */
typedef struct seg_free_units_s {
    seg_superslab_t *ss; /* the SuperSlab, in use */
    uint64_t units;      /* the units taken: in no slab, and not free meanwhile */
    uint64_t written;    /* of those, the ones a slab has held since they were mapped
                            (not fresh): the pages that may be there, as counted */
    bool huge_given_up;  /* a THP SuperSlab's (huge_sparse in units.c): hint it to
                            base pages before its pages go, or khugepaged makes it
                            a whole huge page again */
} seg_free_units_t;
/* Takes the free units of SuperSlabs whose pages may be given back without
 * splitting a huge page (base pages, or the small heap's first SuperSlabs
 * while they are deferred), unchanged for policy->purge_after_ms and not
 * given back since; and those of THP SuperSlabs with
 * at most a quarter of their units in slabs, unchanged for
 * policy->release_after_ms while no slab was cut on their node for as long
 * (a heap growing again refills them fault-free), which are base pages from
 * then on. *next_due: when the next falls
 * due (UINT64_MAX for none). Returns how many SuperSlabs it took units of. */
unsigned seg_take_free_units(const seg_purge_policy_t *policy, uint64_t now_ms,
                             seg_free_units_t *out, unsigned max, uint64_t *next_due);
/* Puts taken units back, their pages given back (MADV_DONTNEED); a
 * SuperSlab left empty meanwhile goes to the idle list. */
void seg_return_free_units(const seg_free_units_t *taken);
/* The backing a SuperSlab whose pages all go back with MADV_DONTNEED is
 * stored with: THP again (hinted so) for one of base pages whose huge page
 * was given up for its free units, while THP is wanted; else `backing`. */
thp_backing_t seg_release_backing(seg_superslab_t *ss, thp_backing_t backing, unsigned memory_node);
/* ss, a SuperSlab of slabs counted as THP whose pages are base pages (one
 * the small heap deferred), stays on them: counted with base pages from now
 * on, its free units purged as theirs are, huge again once all of it goes
 * back (seg_release_backing). Takes its node's lock. */
void seg_keep_base_pages(seg_superslab_t *ss);
/* A taken SuperSlab or run that goes back whole (hugetlb pages, runs). */
void seg_unmap_idle(seg_superslab_t *ss, size_t size, thp_backing_t backing);

/* A mapping failed: every SuperSlab and run resting for reuse (idle,
 * cached or purged) is unmapped, on the calling thread, so that a retry
 * may find the address space (RLIMIT_AS) or commit charge
 * (vm.overcommit_memory=2) they held. Takes its turn with the purge thread
 * and malloc_trim (a pass under way ends first). Called with no lock held,
 * never on the purge thread (false there). True when anything was. */
bool seg_unmap_resting(void);
/* Tells the purge thread there is idle memory that falls due in due_in_ms
 * (PURGE_NOW, PURGE_LATER: after the purge delay), starting it the first
 * time, once the calling thread holds no lock; it is woken only if it
 * would sleep past that. Called with no segment lock held. */
#define PURGE_NOW ((uint64_t)0)
#define PURGE_LATER UINT64_MAX
void purge_notify(uint64_t due_in_ms);
/* As purge_notify, for frontier.c's first listed run: from then on each
 * pass asks seg_frontier_look_due (apart text, which a pass of a process
 * with no large block never maps). */
void purge_notify_frontier(uint64_t due_in_ms);
/* Whether the purge thread has been started (relaxed: a hint). */
bool purge_started(void);
void purge_fork_child(void);
/* The fork's turn between purge passes (purge.c): taken by seg_fork_begin,
 * given back by seg_fork_parent_unlocked; the child has no pass. */
void purge_fork_turn_begin(void);
void purge_fork_turn_end(void);
void purge_shutdown(void);
bool purge_run_idle_work(void);

/* What went back to the kernel, as seg_stats adds it up: idle memory that
 * the purge thread's passes and malloc_trim returned (purge.c), and the
 * pages of blocks given back at once by the thread that frees or resizes
 * them (seg_give_back_now, seg_count_at_once: seg_state's
 * stat_*_at_once). */
extern _Atomic uint64_t seg_stat_purge_calls;
extern _Atomic uint64_t seg_stat_bytes_purged;

/* Gives the pages of a page-aligned range back now, on the calling thread,
 * with MADV_DONTNEED, and counts them as given back at once: the one way a
 * thread that frees or resizes a block returns its pages without the purge
 * thread (the small heap's large blocks as they are freed, realloc's move
 * out of a SuperSlab the heap outgrew, a run's tail on base pages). Whether
 * they should go is each caller's rule; this one only knows that the range
 * holds no live block, that no slab can be cut in it meanwhile, and that
 * MADV_DONTNEED there splits no huge page the caller wants kept. True when
 * the kernel took them (they read as zero from then on). A system call:
 * no lock held. */
bool seg_give_back_now(void *addr, size_t size);
/* A mapping of `bytes` that held a block went back at once (munmap) on
 * the calling thread: counted as seg_give_back_now counts. */
void seg_count_at_once(size_t bytes);

/* SuperSlabs whose pages went back to the kernel, kept mapped for reuse at
 * the same address. Their headers may read as zero, so an entry is the
 * 2 MiB-aligned address with the backing in bits 0-1 and the memory node
 * from bit 2 on. Entries are pushed in time order, so the oldest are at the
 * bottom. */
typedef struct seg_purged_entry_s {
    uintptr_t bits;    /* address | memory node << 2 | backing */
    uint64_t since_ms; /* when it was pushed */
} seg_purged_entry_t;
_Static_assert(THP_BACKING_COUNT <= 4 && (HS_MAX_NODES << 2) <= HS_SUPERSLAB_SIZE,
               "a purged entry's low bits hold the backing and the memory node");
/* The bits of a purged SuperSlab's entry (seg_store_purged). */
HS_INLINE uintptr_t seg_purged_pack(const seg_superslab_t *ss, thp_backing_t backing,
                                    unsigned memory_node)
{
    return (uintptr_t)ss | (uintptr_t)backing | (uintptr_t)memory_node << 2;
}
/* What an entry's bits say, for pool `node`. */
HS_INLINE seg_purged_t seg_purged_unpack(uintptr_t bits, unsigned node)
{
    return (seg_purged_t){
        .ss = (seg_superslab_t *)(bits & ~(uintptr_t)HS_SUPERSLAB_MASK),
        .node = node,
        .backing = (thp_backing_t)(bits & 3),
        .memory_node = (unsigned)((bits >> 2) & (HS_MAX_NODES - 1)),
    };
}
typedef struct seg_purged_stack_s {
    seg_purged_entry_t *entries; /* oldest first */
    size_t count;                /* entries in use */
    size_t cap;                  /* room */
} seg_purged_stack_t;

/* The partial lists of a pool, by the longest run of free units their
 * SuperSlabs have: list k holds those whose longest run is at least
 * seg_partial_min_run[k] units and less than the next list's. A search for
 * n free units in a row starts at the list where n falls (seg_partial_first)
 * and never looks at one below: as one list, the search for a slab of
 * pages of 256 KiB - 1 MiB walked every SuperSlab of a heap of 1,000 such
 * blocks (155 a call, 90 % of them without the units), 0.3 M calls a second
 * against 0.76 M before slabs of pages and glibc's 1.4 M. */
#define SEG_PARTIAL_LISTS 6
static const uint8_t seg_partial_min_run[SEG_PARTIAL_LISTS] = {1, 2, 3, 5, 9, 17};

/* The partial list for free_units (not 0): the runs are found by halving,
 * r2's bit u set when units u and u + 1 are free, r4's when u..u + 3 are,
 * and so on. */
HS_INLINE unsigned seg_partial_list_of(uint64_t free_units)
{
    uint64_t x = free_units, r2 = x & x >> 1, r4 = r2 & r2 >> 2, r8 = r4 & r4 >> 4,
             r16 = r8 & r8 >> 8;
    if (r16 & x >> 16) return 5;
    if (r8 & x >> 8) return 4;
    if (r4 & x >> 4) return 3;
    if (r2 & x >> 2) return 2;
    return r2 ? 1 : 0;
}

/* The first partial list that may hold n free units in a row. */
HS_INLINE unsigned seg_partial_first(unsigned n)
{
    unsigned k = 0;
    while (k + 1 < SEG_PARTIAL_LISTS && seg_partial_min_run[k + 1] <= n) k++;
    return k;
}

/* One pool per NUMA node.
 * Invariants: the `partial` lists hold exactly this node's SuperSlabs with
 * some but not all units free, each on the list of its longest run of free
 * units (seg_partial_list_of; on_partial is 1 + that list); `idle` holds
 * those with every unit free, newest first, each with idle_since_ms; `lazy`
 * and `released` hold SuperSlabs whose pages went back to the kernel,
 * lazily (MADV_FREE: the pages stay in RSS as LazyFree until the kernel
 * needs them) or for good (MADV_DONTNEED). */
typedef struct seg_pool_s {
    hs_lock_t lock;
    seg_superslab_t *partial[SEG_PARTIAL_LISTS]; /* SuperSlabs with some free units, by
                                                    their longest run of them */
    seg_superslab_t *idle;                       /* empty SuperSlabs, pages still resident */
    size_t idle_count;                           /* length of idle */
    seg_superslab_t *outgrown;                   /* idle's head, due at the purge thread's next pass
                                                    (seg_mark_outgrown); NULL: none */
    seg_purged_stack_t lazy;     /* MADV_FREE'd, oldest first; reused newest first */
    seg_purged_stack_t released; /* MADV_DONTNEED'd; reused when lazy is empty */
    /* SuperSlabs mapped with their pages on this node, by backing. Here,
     * not in a table of its own by node: a process on one node writes the
     * first pool's line and no other (see HS_START_STATE_LAST). */
    _Atomic uint64_t stat_superslabs[THP_BACKING_COUNT];
    uint32_t units_taken_ms; /* when a slab was last cut here (the clock's low
                                32 bits): a sparse huge page is split only once
                                the heap has stopped growing (huge_sparse) */
    /* The thread taking a SuperSlab for this pool with the lock released
     * (its hs_lock_thread's address), NULL: none. Set and cleared under the
     * lock, waited for without it (seg_units_alloc); cleared without it by
     * a waiter that gave up on the taker (fit_after_taker). */
    _Atomic(const void *) superslab_taker;
} seg_pool_t;

/* Every live hugetlb mapping, for fork(): private hugetlb pages are copied
 * on write from the same pool, and a child whose copy cannot be had gets
 * SIGBUS, so the child trades them for anonymous copies (seg_fork_child).
 * Until then each page a parent thread writes needs a free pool page, and
 * free pages are anyone's: the auto backing keeps them reserved meanwhile
 * (spare), frees them at fork() and takes the parent's copies at once. */
typedef struct seg_hugetlb_range_s {
    seg_superslab_t *base; /* a SuperSlab or the head of a run */
    size_t size;           /* bytes of the mapping */
    void *spare;           /* a hugetlb mapping of `size` bytes never touched: its reservation
                              keeps as many pool pages from every other mapping until a fork
                              frees them for this range's copies; NULL without one */
    bool spare_freed;      /* its spare went at a fork and is not reserved again yet: the
                              parent copies the range's pages at a fork (seg_fork_parent) */
    bool copy_pending;     /* the fork under way marked it for the parent's copy, not made
                              yet (hugetlb_copy_marked): the range stays mapped until it is,
                              so seg_hugetlb_untrack waits (see seg_fork_parent) */
    uint8_t memory_node;   /* base->memory_node, for a child that did not get the range
                              (hugetlb_privatize), where base cannot be read */
} seg_hugetlb_range_t;

/* seg_state.registry_gate: seg_registry_prepare calls under way (the low
 * 16 bits), seg_lock_all calls giving the registry's pages back (the next
 * 13), and MCL_FUTURE in force, without or with MCL_ONFAULT (segment.c,
 * "mlockall"). One word: a preparer's fetch_add returns at once whether a
 * trimmer runs or memory is locked, and its fast path tests nothing else. */
#define SEG_GATE_PREPARER 1u
#define SEG_GATE_TRIMMER (1u << 16)
#define SEG_GATE_PREPARERS (SEG_GATE_TRIMMER - 1)
#define SEG_GATE_TRIMMERS (((1u << 29) - 1) & ~SEG_GATE_PREPARERS)
#define SEG_GATE_LOCKED_NOW (1u << 29)
#define SEG_GATE_LOCKED_ON_FAULT (1u << 30)

/* segment's state: everything segment/ owns but the registry
 * (seg_chunk_map, read by free's fast path), the test clock (seg_clock) and
 * the purge figures purge.c adds to (seg_stat_purge_calls, _bytes_purged).
 * The locks' ranks are in common/locks.h; init_layers sets them, so that the
 * struct starts as zeros and lies in .bss, where only the pages written
 * count in RSS: the fields and node 0's pool; the other nodes' pools are
 * in seg_nodes. Figures are relaxed atomics read without locks. */
struct seg_state_s {
    hs_lock_t run_cache_lock;                 /* guards run_cache and the runs' list links */
    seg_superslab_t *run_cache;               /* freed runs kept for reuse, newest first */
    _Atomic size_t run_cache_bytes;           /* their bytes; written under run_cache_lock */
    void (*client_init)(seg_superslab_t *ss); /* tiny's reset of a SuperSlab's client area */
    bool (*client_reclaim)(void);             /* tiny's release of the calling thread's
                                                 emptied slabs (seg_set_client_reclaim) */
    bool (*client_owner_gone)(uintptr_t);     /* tiny's test of an owner tag
                                                 (seg_set_client_owner_gone) */
    bool (*client_sparse)(void);              /* tiny's test of the calling thread's
                                                 slabs (seg_set_client_sparse) */
    hs_lock_t hugetlb_lock;                   /* guards hugetlb_ranges, _count, _cap */
    seg_hugetlb_range_t *hugetlb_ranges;      /* every live hugetlb mapping */
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
                                                 to seg_hugetlb_track: seg_fork_begin waits for
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
    /* What went back at once (seg_give_back_now, seg_count_at_once): here,
     * on the page every process writes as it starts, not on a page of .bss
     * that a short command giving back a block would write for them alone. */
    _Atomic uint64_t stat_purge_calls_at_once;  /* calls */
    _Atomic uint64_t stat_bytes_purged_at_once; /* bytes */
    _Atomic unsigned registry_gate;             /* SEG_GATE_*: mlockall and the registry's pages */
    seg_pool_t pool0;                           /* node 0's pool (seg_pool) */
};
/* Defined in segment.c, in .bss.hs_start_last (HS_START_STATE_LAST), right
 * before the registry (src/hugeslab.ld). */
extern struct seg_state_s seg_state;

/* What only a process on several nodes writes, after the registry: the
 * pools of nodes 1 on and each node's hugetlb retry time. Between seg_state
 * and the registry, these 10 KiB of .bss put the registry's first entry,
 * which free(NULL) reads, on a page of its own. */
struct seg_nodes_s {
    seg_pool_t pools[HS_MAX_NODES - 1];                 /* nodes 1.. (seg_pool) */
    _Atomic uint64_t hugetlb_retry_at_ms[HS_MAX_NODES]; /* each node's hugetlb pages */
};
extern struct seg_nodes_s seg_nodes;

/* Each node's pool, by NUMA node index (segment.c). A table, not a test
 * for node 0 at each use: that took the code every process runs 0x1a0 bytes
 * over its eleventh page. */
extern seg_pool_t *const seg_pools[HS_MAX_NODES];
HS_INLINE seg_pool_t *seg_pool(unsigned node) { return seg_pools[node]; }

/* k SuperSlabs were taken off `stack`, one of pool's purged stacks (the
 * pool's lock held): the counters follow. */
HS_INLINE void seg_purged_taken(const seg_pool_t *pool, const seg_purged_stack_t *stack, size_t k)
{
    hs_count_add(&seg_state.stat_purged_superslabs, -(int64_t)k);
    if (stack == &pool->lazy) hs_count_add(&seg_lazy_superslabs, -(int64_t)k);
}

_Static_assert(HS_UNITS_PER_SUPERSLAB <= 64, "free_units is a 64-bit map");
#define SEG_ALL_UNITS_FREE                                                                         \
    (HS_UNITS_PER_SUPERSLAB == 64 ? ~(uint64_t)0 : ((uint64_t)1 << HS_UNITS_PER_SUPERSLAB) - 1)

/* units_purged while seg_take_free_units has the units out. */
#define SEG_UNITS_PURGING 2

/* n units from unit `first` on, as free_units bits. */
HS_INLINE uint64_t seg_unit_bits(unsigned first, unsigned n)
{
    return (n == HS_UNITS_PER_SUPERSLAB ? SEG_ALL_UNITS_FREE : (((uint64_t)1 << n) - 1)) << first;
}

/* Debug builds check the invariants where SuperSlabs change hands (see
 * seg_superslab_validate, validate.c). */
#if defined(HS_DEBUG) && HS_DEBUG
#define SEG_VALIDATE(ss) seg_superslab_validate(ss)
#define SEG_VALIDATE_POOL(node) seg_pool_validate(node)
#else
#define SEG_VALIDATE(ss) ((void)0)
#define SEG_VALIDATE_POOL(node) ((void)0)
#endif

HS_LIST_FUNCTIONS(list, seg_superslab_t)

/* Puts ss on the partial list its free units call for, or on none (no unit
 * free, or all of them: then the caller makes it idle); its pool's lock
 * held. Called after every change of free_units (units.c). */
void seg_partial_place(seg_pool_t *pool, seg_superslab_t *ss);

/* Takes ss off its partial list, if on one, for a caller that takes its
 * free units out of free_units (its pool's lock held). */
HS_INLINE void seg_partial_unlink(seg_pool_t *pool, seg_superslab_t *ss)
{
    if (ss->on_partial) list_remove(&pool->partial[ss->on_partial - 1], ss);
    ss->on_partial = 0;
}

/* frontier.c: live THP runs, looked at by the purge thread for the huge
 * page where the program stopped writing (see there). seg_frontier_list
 * puts a run its owner has just set up on the list (nothing for a run not
 * of THP pages, or where splits free nothing); seg_frontier_unlist takes it
 * off before its owner frees, resizes or moves it, waiting for a look at it
 * to end, and undoes its split as `end` says. No lock held for either. */
typedef enum seg_frontier_end_e {
    SEG_FRONTIER_UNMAPPED, /* the run is unmapped next: nothing to undo */
    SEG_FRONTIER_CACHED,   /* to the run cache: the split chunk huge again, empty */
    SEG_FRONTIER_RESIZED,  /* its block stays: the split chunk hinted as the rest */
} seg_frontier_end_t;
void seg_frontier_list(seg_superslab_t *run);
void seg_frontier_unlist(seg_superslab_t *run, seg_frontier_end_t end);
/* The purge thread's look, if due at now_ms; returns when the next is due
 * (UINT64_MAX: none until a run is listed). */
uint64_t seg_frontier_look_due(uint64_t now_ms);
/* The fork child's side: the parent's look did not come along. */
void seg_frontier_fork_child(void);

/* Takes a freed run out of the run cache, whose lock is held. */
HS_INLINE void seg_run_cache_remove(seg_superslab_t *run)
{
    list_remove(&seg_state.run_cache, run);
    seg_state.run_cache_bytes -= run->run_size;
}

/* Counts `bytes` mapped (negative: unmapped) with `backing` on memory node
 * `node`, in its pool's figures and the total. */
HS_INLINE void seg_count_mapping(unsigned node, thp_backing_t backing, int64_t bytes)
{
    hs_count_add(&seg_pool(node)->stat_superslabs[backing], bytes >> HS_SUPERSLAB_SHIFT);
    hs_count_add(&seg_state.stat_bytes_mapped, bytes);
}

/* segment.c: the registry names a range, head_kind at its first chunk and
 * SEG_CHUNK_TAIL after it, or forgets it. */
void seg_registry_set(void *base, size_t size, seg_chunk_kind_t head_kind);
/* Makes the registry's entries for [base, base+size) writable (see
 * segment.c), with no lock held: before a fresh mapping or mremap's new
 * range is named. False, with nothing named, when the kernel refuses. */
bool seg_registry_prepare(void *base, size_t size);
void seg_registry_clear(void *base, size_t size);
/* segment.c: grows a metadata array of `*cap` entries of `entry_size` bytes,
 * `count` in use, guarded by `lock`, which is held on entry and on return:
 * the larger array is mapped, and the smaller unmapped, with it released.
 * Another thread may grow it meanwhile; the caller checks for room again.
 * False when no memory could be had. */
bool seg_metadata_grow(hs_lock_t *lock, void **array, size_t *cap, const size_t *count,
                       size_t entry_size, size_t first_cap);
/* segment.c: maps SuperSlabs (a SuperSlab of slabs, or a run) for pool
 * `node`, bound to the node the process policy asks for; NULL when none
 * could be had, even after what rested mapped was unmapped
 * (seg_unmap_resting). Called with no lock held. */
seg_superslab_t *seg_map_superslabs(size_t size, size_t align, seg_chunk_kind_t kind,
                                    unsigned node);

/* small_heap.c: a new THP SuperSlab of slabs, as thp_map_unsettled left it,
 * deferred to base pages while the heap is small (true when it was). False:
 * ss unsettled still, or hinted huge. Before ss's header is written, so
 * *hinted_late (set, never cleared) says what ss's hinted_late is to be
 * once it is: the heap grew as ss came, and ss was hinted with the others. */
bool seg_small_heap_note(seg_superslab_t *ss, bool *hinted_late);
/* small_heap.c: a new THP SuperSlab of slabs that the small heap did not
 * defer, hinted to base pages when the calling thread's slabs are sparse:
 * true when it was, and it then counts as a SuperSlab of base pages; false:
 * ss as it was. */
bool seg_sparse_heap_note(seg_superslab_t *ss);
/* small_heap.c: units handed out anew are counted again, until tiny/ says
 * otherwise. */
void seg_small_heap_units_taken(const seg_superslab_t *ss, uint64_t bits);
/* small_heap.c: whether ss is one of the deferred SuperSlabs (a relaxed
 * look). */
bool seg_small_heap_holds(const seg_superslab_t *ss);
/* small_heap.c: forgets ss if it is deferred: it is going back to the
 * kernel, and a range that is no longer ours is never hinted. Waits, with
 * no lock held, while another thread takes ss out of the small heap. */
void seg_small_heap_forget(seg_superslab_t *ss);
/* small_heap.c: whether a thread is taking ss out of the small heap (and
 * hinting it): the purge leaves such an idle SuperSlab for a later pass.
 * Under its pool's lock (see still_named in small_heap.c), and asked only
 * while seg_small_heap_claims (counted before a slot is marked, and after
 * it is emptied) is not 0. */
bool seg_small_heap_leaving(const seg_superslab_t *ss);
extern _Atomic unsigned seg_small_heap_claims;
/* small_heap.c: in a fork's child, a SuperSlab that a thread of the parent
 * was taking out of the small heap leaves it as that thread left it: no
 * thread of the child will finish. */
void seg_small_heap_fork_child(void);

/* units.c: writes the header of `size` bytes at ss, newly mapped, or a
 * chunk that changes role or comes back from a purged stack, as one of
 * `kind` (a SuperSlab of slabs, or a run), and names it so in the
 * registry. */
void seg_chunk_header(seg_superslab_t *ss, size_t size, seg_chunk_kind_t kind,
                      thp_backing_t backing, unsigned memory_node, unsigned node);

/* idle.c: takes ss off its pool's idle list (whose lock is held). */
void seg_idle_unlink(seg_pool_t *pool, seg_superslab_t *ss);
/* idle.c: when a SuperSlab that goes idle now falls due for the purge
 * thread: PURGE_LATER while idle memory is within the limit the program's
 * recent use allows; beyond it, SEG_OVER_LIMIT_MIN_MS, or PURGE_NOW beyond
 * HUGESLAB_CACHE_MB. */
uint64_t seg_idle_due_in_ms(void);

/* fork.c: tracks a new hugetlb mapping and its spare (NULL: none). False
 * when no room could be had: the caller unmaps the spare. */
bool seg_hugetlb_track(seg_superslab_t *base, size_t size, void *spare);
/* fork.c: stops tracking a hugetlb mapping of `size` bytes, which the
 * caller then unmaps, after advising it not to be inherited (no fork's
 * child gets it uncopied); returns its spare, for the caller to unmap too,
 * or NULL. Called with no lock held: while a fork's copy of the range is
 * pending, waits for it, so that the copy never runs on an address the
 * range no longer holds. */
void *seg_hugetlb_untrack(seg_superslab_t *base, size_t size);

#endif

/* What the files of tiny/ share: its state (tiny_state, tiny_lists), the
 * heap's busy flag, the list helpers and the functions that more than one
 * of them calls; each file says what it owns at its top. The fast paths
 * stay in tiny.h; nothing outside tiny/ includes this file. */
#ifndef HS_TINY_INTERNAL_H
#define HS_TINY_INTERNAL_H

#include "tiny/tiny.h"

/* Hidden, as every definition is (-fvisibility=hidden): calls and accesses
 * across tiny's files then go direct, as they did within one file, not
 * through the GOT. */
#pragma GCC visibility push(hidden)

/* tiny.h's, again, so that they are hidden here too. */
extern tiny_slab_t tiny_sentinel_slab;
extern tiny_heap_t tiny_empty_heap;

/* Remote frees by threads without a heap (consumers that never allocate),
 * by the block's node. Striped by thread, so that such threads do not all
 * fight over one cache line. Node 0's stripes are lines of tiny's start-up
 * state, on the page it shares with .data, which every process writes: in
 * one table with the other nodes' they took a page of their own in a
 * process on one node (bench_memory prodcons: its consumer's). One table
 * for every node cannot stay off other pages: node 0's lines (1 KiB) fit
 * beside seg_state's written fields, but all 64 nodes' (64 KiB) before
 * seg_state push its written part onto pages of their own, and after it
 * (HS_START_STATE_LAST) comes the registry. */
#define HEAPLESS_STRIPES 16
typedef struct heapless_counts_s {
    _Alignas(HS_CACHE_LINE) _Atomic uint64_t by_node[HS_MAX_NODES - 1]; /* nodes 1.., one stripe */
} heapless_counts_t;
typedef struct heapless_line_s {
    _Alignas(HS_CACHE_LINE) _Atomic uint64_t count; /* node 0, one stripe */
} heapless_line_t;

/* tiny's state, but for what the fast paths read (tiny_heap_tls,
 * tiny_empty_heap, tiny_sentinel_slab in tiny.c) and the slabs themselves.
 * Heaps are never unmapped, only reused: a pointer to a heap read by another
 * thread (a slab's owner) stays valid memory forever. The locks' ranks are
 * in common/locks.h; init_tiny sets them, so that the struct starts as
 * zeros: in .bss only the pages written count in RSS, where as initialised
 * data every page of it was resident from the start (39 KiB). Its fields
 * are written at start-up (HS_START_STATE), node 0's heapless counters by
 * threads that free without a heap; the lists below, only by processes
 * whose threads leave slabs behind, or free without a heap on other nodes. */
struct tiny_state_s {
    pthread_once_t init_once;             /* tiny_init's */
    pthread_key_t heap_key;               /* its destructor gives a leaving thread's heap up
                                             (or a heapless one's lent batch: tiny_empty_heap) */
    hs_lock_t heap_lock;                  /* guards heap_pool, heap_all and the meta_ fields */
    tiny_heap_t *heap_pool;               /* detached heaps, ready for reuse */
    tiny_heap_t *heap_all;                /* every heap made, through all_next */
    char *meta_next;                      /* bump region for new heaps: next free byte */
    char *meta_end;                       /* and its end */
    char *meta_spare;                     /* a region mapped while another thread refilled */
    hs_lock_t orphan_lock;                /* guards orphans and orphan_nodes */
    uint64_t orphan_nodes;                /* bit n: node n's orphan lists were pushed to */
    _Atomic uint64_t stat_bytes_in_slabs; /* SuperSlab bytes given to slabs */
    _Atomic uint64_t stat_threads_live;   /* heaps attached to a running thread */
    _Atomic uint64_t stat_orphan_slabs;   /* slabs of exited threads not yet adopted */
    _Atomic uint64_t busy_classes;        /* bit cls - TINY_BUSY_CLASS_MIN: its slabs of one
                                             unit kept filling (tiny.c, note_trip) */
    _Atomic uint32_t owner_heaps;         /* heaps that hold an owner slot (slab_owner) */
    uint32_t crowd_threads;               /* HUGESLAB_CROWD_THREADS; UINT32_MAX for 0 (never) */
    _Atomic uint64_t crowd_blocks_out;    /* blocks the crowd heaps handed out, not yet freed */
    _Atomic uint64_t crowd_nodes;         /* bit n: tiny_lists.crowd[n] is set (the loops
                                             over them then read no page of tiny_lists) */
    heapless_line_t heapless_node0[HEAPLESS_STRIPES]; /* see heapless_count (tiny.c) */
};
extern struct tiny_state_s tiny_state;
_Static_assert(HS_MAX_NODES <= 64, "tiny_state.orphan_nodes has a bit per node");

/* tiny's lists of 70 KiB, apart from its fields: the pages of a node's
 * lists are written only once it has some, and read only then
 * (tiny_state.orphan_nodes): on a kernel that gives a read fault of
 * untouched anonymous memory a page of its own, not the zero page, a sweep
 * over every node's lists made all 16 pages of nodes 1-63 resident. */
struct tiny_lists_s {
    /* Slabs of exited (or migrated) threads, per node and class, waiting for
     * a thread of the same node to adopt them (tiny_state.orphan_lock). */
    tiny_slab_t *orphans[HS_MAX_NODES][TINY_CLASS_COUNT];
    heapless_counts_t heapless_remote_frees[HEAPLESS_STRIPES]; /* see heapless_count */
    /* Each node's crowd heap (tiny_crowd_heap in heap.c), made at its first
     * crowded refill and kept for good; NULL before. */
    _Atomic(tiny_heap_t *) crowd[HS_MAX_NODES];
};
extern struct tiny_lists_s tiny_lists;

/* ---- across the files of tiny/ ---------------------------------------------- */

/* tiny.c: slabs and the blocks coming back to them. */
/* Puts the blocks of a taken remote word on s's free list. */
void tiny_append_remote_word(tiny_slab_t *s, uintptr_t word);
/* Gives a slab's units back to its SuperSlab (in no list, no block in use). */
void tiny_slab_release(tiny_slab_t *slab);
/* Releases other heaps' slabs whose blocks all came back through other
 * threads' frees, while the process has more threads than CPUs; true when
 * it released any. */
bool tiny_reclaim_from_others(tiny_heap_t *me);
/* The same for the purge thread, whatever the number of threads, a purge
 * delay after a free left a slab so (seg_emptied_slab_seen), and the slabs
 * whose last block waits on their owner's delayed list as a notice; true
 * when it released any. *passed_over (when given): whether a heap's flag
 * was held by another thread, so that its slabs were not looked at. */
bool tiny_reclaim_emptied(bool *passed_over);
/* A free by any thread other than the owner (or of an orphan's block). */
void tiny_free_remote(tiny_slab_t *s, tiny_block_t *b);
/* The block after b on a heap's delayed list, or NULL; reports a corrupt link. */
tiny_block_t *tiny_next_delayed(const tiny_block_t *b);
/* The owner takes the blocks on its delayed list (under its busy flag). */
void tiny_drain_delayed(tiny_heap_t *heap);
/* Hands the heap's gathered frees of other threads' blocks to their slabs
 * (the owner only, under its busy flag or not). */
HS_NOINLINE void tiny_flush_remote_batch(tiny_heap_t *heap);
/* Hands the blocks in the batch lent to the calling thread while it had no
 * heap to their slabs; with give_back, the batch goes back to the pool. */
void tiny_heapless_flush(bool give_back);
/* The calling thread is leaving: its batch goes back, and it is lent none
 * again (the frees of its TLS destructors still to run go at once). */
void tiny_heapless_exit(void);
/* In a child of fork(): the batches lent to the threads it has not go back. */
void tiny_heapless_fork_child(void);
/* Tells segment/ of a slab of one block that realloc may be growing (see
 * TINY_PASSING_MIN), while the heap is on base pages. A function of its own,
 * as when it had two callers in one file: inlined into slab_create as its
 * one caller there, it changed tiny_malloc_refill's code. */
void tiny_note_passing(const tiny_slab_t *slab, seg_superslab_t *ss);
/* Releases the heap's empty current slabs in ss (all of them: NULL). */
HS_NOINLINE void tiny_release_kept_empty_in(tiny_heap_t *heap, const seg_superslab_t *ss);

/* sized.c: slabs of pages, one block each, sized to its request. */
/* Whether a block of a class from TINY_SIZED_CLASS_MIN on may get one: the
 * slabs hold TINY_MIDDLE_HEAP_BYTES. Read here, in the text every process
 * runs: a short command's buffer of more than 128 KiB then runs no seldom
 * text. */
static inline bool tiny_sized_heap(void)
{
    return atomic_load_explicit(&tiny_state.stat_bytes_in_slabs, memory_order_relaxed) >=
           TINY_MIDDLE_HEAP_BYTES;
}
/* A block of `size` bytes in a slab of pages of its own, under the heap's
 * busy flag; NULL while the heap is small (seg_small_heap), and when memory
 * is out: the caller's refill then gives it a slab of its class (which
 * sets errno if it finds no memory either). */
void *tiny_malloc_sized(tiny_heap_t *heap, unsigned cls, size_t size);
/* tiny_slab_release of a slab of pages. */
void tiny_sized_release(tiny_slab_t *slab);
/* A slab of pages of heap's whose block came back to its owner: it becomes
 * the heap's sized spare, and the spare before it goes back. */
void tiny_sized_emptied(tiny_heap_t *heap, tiny_slab_t *slab);
/* Releases the heap's sized spare if it lies in ss (any SuperSlab: NULL);
 * true when it did. */
bool tiny_sized_spare_release(tiny_heap_t *heap, const seg_superslab_t *ss);
/* tiny_grow_in_place of the block of s, a slab of pages of heap's: true
 * when the pages after it were free and it took them. */
bool tiny_sized_grow(tiny_heap_t *heap, tiny_slab_t *s, size_t size);

/* heap.c: thread heaps and orphans. */
/* Gives the calling thread a heap of its own. NULL when memory is out. */
HS_NOINLINE tiny_heap_t *tiny_heap_attach(void);
/* Gives up every slab of a heap whose thread is leaving (or moved node). */
void tiny_heap_abandon(tiny_heap_t *heap);
/* Gives heap one of the owner slots (slab_owner in tiny.c) if one is free:
 * as many as the CPUs the process may run on. True when it holds one. A
 * heap keeps its slot until its thread exits, idle or not. */
bool tiny_take_owner_slot(tiny_heap_t *heap);
/* The heap key's destructor: a leaving thread's heap goes to the pool. */
void tiny_thread_exit(void *arg);
/* Node's crowd heap, made at the first call for the node; NULL when
 * memory for it is out. */
tiny_heap_t *tiny_crowd_heap(unsigned node);
/* Takes a crowd heap's busy flag as its owner, waiting for the thread that
 * holds it (holding no lock meanwhile); tries it only; leaves it. The
 * calling thread counts the crowd flags it holds (tiny_crowd_holds): an
 * allocation made while it holds one (a refill that starts the purge
 * thread) takes no crowd block, so it never waits for a flag it holds. */
void tiny_crowd_enter(tiny_heap_t *crowd);
bool tiny_crowd_try_enter(tiny_heap_t *crowd);
void tiny_crowd_leave(tiny_heap_t *crowd);
/* The crowd heap of the lowest node of `nodes`, bits of
 * tiny_state.crowd_nodes: the loops over the crowd heaps clear them one by
 * one, and read no page of tiny_lists for a node without one. */
static inline tiny_heap_t *tiny_crowd_of(uint64_t nodes)
{
    return atomic_load_explicit(&tiny_lists.crowd[__builtin_ctzll(nodes)], memory_order_relaxed);
}
/* The flags of the crowd heaps of `nodes` (bits of tiny_state.crowd_nodes),
 * taken (the fork's prepare) or left (its parent and child); tested
 * inline, so that a process with no crowd heap runs none of that text in
 * its fork. */
void tiny_crowd_enter_every(uint64_t nodes);
/* tiny.c: the calling thread's heap went back at its exit (tiny_thread_exit):
 * its later TLS destructors' small blocks come from the crowd heap. */
void tiny_crowd_thread_left(void);
void tiny_crowd_leave_every(uint64_t nodes);
static inline bool tiny_crowds(void)
{
    return atomic_load_explicit(&tiny_state.crowd_nodes, memory_order_acquire) != 0;
}
extern __thread unsigned tiny_crowd_holds;
/* The crowd heap whose flag the thread took last, while it holds one: a
 * SuperSlab mapped meanwhile is for that heap's slabs (heap_sparse). */
extern __thread tiny_heap_t *tiny_crowd_held;
/* tiny.c: gives the crowd heaps' slabs whose blocks all came back to their
 * SuperSlabs (waiting for each heap's flag, or only trying it); true when
 * a flag tried was held, and a heap passed over. */
bool tiny_crowd_release(bool wait);
/* The same, tested inline: a process with no crowd heap runs none of that
 * text (a purge pass of one thread's runs no apart code). */
static inline bool tiny_crowd_trim(bool wait) { return tiny_crowds() && tiny_crowd_release(wait); }
/* The idle work: abandoned delayed blocks and empty orphans. True while
 * orphans remain. */
HS_COLD bool tiny_collect_abandoned(void);

/* ---- list helpers (owner only, or under orphan_lock) ----------------------- */
/* The helpers below are static inline, not HS_INLINE: GCC inlines them as
 * it did when they were tiny.c's own, where forcing it changed the code of
 * tiny_malloc_refill. */

/* The one writer of heap->current and heap->direct (owner only). */
static inline void heap_set_current(tiny_heap_t *heap, unsigned cls, tiny_slab_t *s)
{
    heap->current[cls] = s;
    if (cls >= TINY_DIRECT_CLASSES) return;
    /* The sizes of class cls are (previous class size, class size]: one
     * to four entries (tests/internal_test.c checks it), which the first
     * two and the last two stores cover, overlapping when there are fewer.
     * A loop over them cost a refill 31 instructions, most of them its
     * bounds and branches. */
    size_t last = tiny_class_size[cls] >> 4;
    size_t first = cls == 0 ? 0 : (tiny_class_size[cls - 1] >> 4) + 1;
    heap->direct[first] = s;
    heap->direct[last] = s;
    if (last - first >= 2) {
        heap->direct[first + 1] = s;
        heap->direct[last - 1] = s;
    }
}

HS_LIST_FUNCTIONS(slab_list, tiny_slab_t)

/* The fields of a new slab of heap's (but its units, first_unit and
 * sized): `capacity` blocks of `size` bytes from `start`, none carved yet,
 * in no list. The caller then publishes it in its units' heads. */
static inline void tiny_slab_setup(tiny_slab_t *slab, tiny_heap_t *heap, char *start, size_t size,
                                   uint32_t capacity, unsigned cls)
{
    slab->used = 0;
    slab->full_bias = 0;
    slab->on_full = false;
    slab->trips = 0;
    slab->recycled = false;
    slab->capacity = capacity;
    atomic_store_explicit(&slab->carved, 0, memory_order_relaxed);
    atomic_store_explicit(&slab->key_limit, 0, memory_order_relaxed);
    slab->block_size = (uint32_t)size;
    slab->cls = (uint8_t)cls;
    atomic_store_explicit(&slab->has_aligned, 0, memory_order_relaxed);
    slab->start = start;
    slab->recip = tiny_block_recip(size);
    slab->free = NULL;
    slab->free_key = hs_free_key;
    slab->next = slab->prev = NULL;
    /* Cleared: a slab that started at this unit before may have left it
     * set. It shares the descriptor's page, which is written anyway. */
    atomic_store_explicit(tiny_remote_word(slab), 0, memory_order_relaxed);
    HS_ASSERT(heap != &tiny_empty_heap);
    atomic_store_explicit(&slab->crowd, heap->crowd, memory_order_relaxed);
    atomic_store_explicit(&slab->owner_word, (uintptr_t)heap, memory_order_release);
}

/* ---- the owner's slow paths and other threads' reclaims ---------------------- */

/* The owner holds heap->busy through each slow path, which is where its
 * lists, its current slabs and its slabs' list state change; a thread that
 * would release one of its slabs (reclaim_empty) only tries the flag, never
 * waits for it, and holds it for a walk of the heap's delayed list. So the
 * owner waits, rarely and briefly, and nothing can deadlock on it: no other
 * thread ever waits for it, which is why the owner may map memory while it
 * holds it, and why it is no lock of the table (common/locks.h). The owner
 * takes it again inside its own slow path when that allocates (starting
 * the purge thread does): HEAP_OWNER tells it apart from HEAP_OTHER. The
 * fast paths do not look at it: they touch only the current slabs (which
 * no other thread releases) and slabs holding one of the owner's blocks
 * (which are not empty). */
#define HEAP_OWNER 1u
#define HEAP_OTHER 2u

/* Returns what heap_leave puts back: 0, or HEAP_OWNER when the owner held
 * it already. */
static inline uint32_t heap_enter(tiny_heap_t *heap)
{
    for (;;) {
        uint32_t seen = 0;
        if (atomic_compare_exchange_strong_explicit(&heap->busy, &seen, HEAP_OWNER,
                                                    memory_order_acquire, memory_order_relaxed))
            return 0;
        if (seen == HEAP_OWNER) return HEAP_OWNER;
        while (atomic_load_explicit(&heap->busy, memory_order_relaxed) == HEAP_OTHER) seg_yield();
    }
}

static inline void heap_leave(tiny_heap_t *heap, uint32_t was)
{
    atomic_store_explicit(&heap->busy, was, memory_order_release);
}

/* Takes the flag as `as` if it is free: false when it is held. */
static inline bool heap_try_take(tiny_heap_t *heap, uint32_t as)
{
    uint32_t seen = 0;
    return atomic_load_explicit(&heap->busy, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_strong_explicit(&heap->busy, &seen, as, memory_order_acquire,
                                                   memory_order_relaxed);
}

/* For a thread that is not the owner: false when the flag is held. */
static inline bool heap_try_enter_other(tiny_heap_t *heap)
{
    return heap_try_take(heap, HEAP_OTHER);
}

/* ---- invariants (debug builds) ---------------------------------------------- */

#if defined(HS_DEBUG) && HS_DEBUG
/* Checks the invariants written above tiny_slab_s for a slab of the calling
 * thread's: every free-list block is a carved block of this slab, marked
 * free, listed once (the walk stops at capacity), and the list's length
 * agrees with `used`. */
void tiny_slab_validate(const tiny_slab_t *s);
#define TINY_VALIDATE(s) tiny_slab_validate(s)
#else
#define TINY_VALIDATE(s) ((void)0)

#endif

/* For a slab that is not on the full list (its remote word has no FULL bit). */
static inline void collect(tiny_slab_t *s)
{
    if (atomic_load_explicit(tiny_remote_word(s), memory_order_relaxed) == 0) return;
    uintptr_t word = atomic_exchange_explicit(tiny_remote_word(s), 0, memory_order_acquire);
    HS_ASSERT((word & TINY_REMOTE_FULL) == 0);
    tiny_append_remote_word(s, word);
}

/* Blocks of an orphan in use, its remote frees counted off as collect()
 * would take them; *room: whether it can then hand out a block. Read from
 * the remote-free word's count, without collecting: collecting into a
 * non-empty free list walks it to its end, block by block, on lines last
 * written on another core, and under orphan_lock (adopt_orphan collected
 * the 16 orphans it looked at) that hold made bench_memory larson's two
 * threads, adopting side by side as a round starts, sleep on the lock 118
 * times a run; 3 with this. Remote frees arriving later only lower it. */
static inline uint32_t tiny_orphan_in_use(const tiny_slab_t *s, bool *room)
{
    uintptr_t word = atomic_load_explicit(tiny_remote_word(s), memory_order_acquire);
    *room = s->free || (word & TINY_REMOTE_PTR_MASK) ||
            atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity;
    return s->used - (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT);
}

/* An orphan taken off its list with nothing in use: no thread can free
 * into it any more, so its remote frees are dropped, not collected. */
static inline void tiny_orphan_release(tiny_slab_t *s)
{
    atomic_store_explicit(tiny_remote_word(s), 0, memory_order_relaxed);
    tiny_slab_release(s);
}

/* Notices (delayed blocks) of slabs holding `units` in all were taken off
 * a delayed list for good: see seg_units_returning. */
static inline void returning_taken(long units)
{
    if (!units) return;
    long before = atomic_fetch_sub_explicit(&seg_units_returning, units, memory_order_relaxed);
    HS_ASSERT(before >= units); /* each notice added its slab's units first */
    (void)before;
}

#pragma GCC visibility pop

#endif

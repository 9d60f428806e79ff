/* tiny's slow paths: refilling a class, creating and retiring slabs, remote
 * and delayed frees, thread heaps coming and going, orphans. */
#include <errno.h>
#include <string.h>

#include "tiny/tiny.h"

/* The sentinel has no blocks: as a class's current slab it sends malloc to
 * the refill path; as the head of a unit in no slab, its zero `carved` sends
 * free to tiny_free_unusual, which reports the pointer. */
tiny_slab_t tiny_sentinel_slab;

tiny_heap_t tiny_empty_heap = {
    .direct = {[0 ... TINY_DIRECT_COUNT - 1] = &tiny_sentinel_slab},
    .current = {[0 ... TINY_CLASS_COUNT - 1] = &tiny_sentinel_slab},
};

__thread tiny_heap_t *tiny_heap_tls = &tiny_empty_heap;
__thread void *tiny_fresh_block;

/* Remote frees by threads without a heap (consumers that never allocate),
 * by the block's node. Striped by thread, so that such threads do not all
 * fight over one cache line. */
#define HEAPLESS_STRIPES 16
typedef struct heapless_counts_s {
    _Alignas(HS_CACHE_LINE) _Atomic uint64_t by_node[HS_MAX_NODES]; /* one stripe */
} heapless_counts_t;

/* tiny's state, but for what the fast paths read (tiny_heap_tls,
 * tiny_empty_heap, tiny_sentinel_slab above) and the slabs themselves.
 * Heaps are never unmapped, only reused: a pointer to a heap read by another
 * thread (a slab's owner) stays valid memory forever. The locks' ranks are
 * in common/locks.h; init_tiny sets them, so that the struct starts as
 * zeros: in .bss only the pages written count in RSS, where as initialised
 * data every page of it was resident from the start (39 KiB). Its fields
 * are written at start-up (HS_START_STATE); the lists below, only by
 * processes whose threads leave slabs behind or free without a heap. */
HS_START_STATE static struct tiny_state_s {
    pthread_once_t init_once;             /* tiny_init's */
    pthread_key_t heap_key;               /* its destructor gives a leaving thread's heap up */
    hs_lock_t heap_lock;                  /* guards heap_pool, heap_all and the meta_ fields */
    tiny_heap_t *heap_pool;               /* detached heaps, ready for reuse */
    tiny_heap_t *heap_all;                /* every heap made, through all_next */
    char *meta_next;                      /* bump region for new heaps: next free byte */
    char *meta_end;                       /* and its end */
    char *meta_spare;                     /* a region mapped while another thread refilled */
    hs_lock_t orphan_lock;                /* guards orphans */
    _Atomic uint64_t stat_bytes_in_slabs; /* SuperSlab bytes given to slabs */
    _Atomic uint64_t stat_threads_live;   /* heaps attached to a running thread */
    _Atomic uint64_t stat_orphan_slabs;   /* slabs of exited threads not yet adopted */
} tiny = {
    .init_once = PTHREAD_ONCE_INIT,
};

/* tiny's lists of 71 KiB, apart from its fields: the pages of a node's
 * lists are written only once it has some. */
static struct tiny_lists_s {
    /* Slabs of exited (or migrated) threads, per node and class, waiting for
     * a thread of the same node to adopt them (tiny.orphan_lock). */
    tiny_slab_t *orphans[HS_MAX_NODES][TINY_CLASS_COUNT];
    heapless_counts_t heapless_remote_frees[HEAPLESS_STRIPES]; /* see heapless_stripe */
} tiny_lists;

static void thread_exit(void *arg);
static bool collect_abandoned(void);
static tiny_heap_t *heap_attach(void);

/* ---- slab geometry -------------------------------------------------------- */

/* Units per slab: at least 64 blocks up to 64 KiB, at least 8 blocks up to
 * 512 KiB. A slab of few blocks runs out often, and every time its thread
 * goes through the refill path and moves it between lists with atomic
 * operations (Larson at 2 threads ran 15 % slower with 32 KiB slabs for the
 * 1 KiB class); a slab of many blocks reserves memory a thread may not use.
 * Above 8 KiB, where eight blocks no longer fill a whole number of units,
 * the slab is the size, from one block to eight (and at most 512 KiB), that
 * leaves the smallest share of its units after its last block: the
 * largest of equals. A 512 KiB slab for every class above 64 KiB held one
 * 288 KiB block and 224 KiB of nothing; `git log -p`, whose delta cache
 * keeps about 100 MiB of 64-512 KiB blocks, left 33 MiB of its 162 MiB of
 * slabs in such tails. */
static unsigned class_units(unsigned cls)
{
    size_t size = tiny_class_size[cls];
    size_t bytes = 64 * size < 64 * HS_KiB ? 64 * size : 64 * HS_KiB;
    if (size <= 8 * HS_KiB) return (unsigned)((bytes + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    const unsigned most_units = (unsigned)(512 * HS_KiB / HS_UNIT_SIZE);
    unsigned least = (unsigned)((size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    unsigned most = (unsigned)((8 * size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    if (most > most_units) most = least > most_units ? least : most_units;
    unsigned best = least;
    size_t best_tail = (size_t)least * HS_UNIT_SIZE % size;
    for (unsigned n = least + 1; n <= most; n++) {
        /* tail / (n units) <= best_tail / (best units), without division */
        size_t tail = (size_t)n * HS_UNIT_SIZE % size;
        if (tail * best <= best_tail * n) {
            best = n;
            best_tail = tail;
        }
    }
    return best;
}

/* Units per slab while the heap is small (seg_small_heap): one unit, or the
 * fewest that hold one block. Untouched units of a base-page SuperSlab cost
 * no memory, but running out of them maps a second SuperSlab and makes both
 * huge pages: 4 MiB resident for a heap that touched a few hundred KiB
 * (`ls -lR` reserved 61 of the 64 units of its first SuperSlab with slabs
 * of 8 and 16 units for its 32 and 64 KiB buffers). */
static unsigned fewest_units(unsigned cls)
{
    return (unsigned)((tiny_class_size[cls] + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
}

static unsigned slab_units(unsigned cls)
{
    if (seg_small_heap()) return fewest_units(cls);
    if (tiny_class_size[cls] > TINY_LINEAR_MAX &&
        atomic_load_explicit(&tiny.stat_bytes_in_slabs, memory_order_relaxed) <
            TINY_MIDDLE_HEAP_BYTES)
        return fewest_units(cls);
    return class_units(cls);
}

/* The fewest units a slab of cls may have when the SuperSlabs in use have
 * no room for slab_units in a row: those that hold 8 blocks. Free units
 * lie scattered once slabs of one and two units come and go, and a new
 * SuperSlab for want of two in a row is 2 MiB more in RSS (Larson-style
 * rounds mapped a fifth one with 40 units free in the other four). */
static unsigned fallback_units(unsigned cls)
{
    size_t size = tiny_class_size[cls];
    unsigned most = slab_units(cls);
    unsigned units = (unsigned)((8 * size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    if (size > 8 * HS_KiB) {
        /* Above 8 KiB, where class_units' slab is already at most eight
         * blocks: the fewest units that leave at most an eighth of them
         * after the last block. The full slab (16 units for 64 KiB blocks)
         * needed a run that the SuperSlabs in use seldom had once blocks of
         * some 50 classes came and went: git gc --aggressive mapped new
         * SuperSlabs while 68 of those in use had 8-15 units free. */
        units = (unsigned)((size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
        while (units < most &&
               (size_t)units * HS_UNIT_SIZE % size * 8 > (size_t)units * HS_UNIT_SIZE)
            units++;
    }
    return units < most ? units : most;
}

static bool release_remote_emptied(void);

static void client_init(seg_superslab_t *ss)
{
    tiny_client_area_t *area = tiny_client_area(ss);
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u++) area->head[u] = &tiny_sentinel_slab;
}

static void init_tiny(void)
{
    hs_once_enter(HS_RANK_INIT_TINY);
    hs_lock_init(&tiny.heap_lock, HS_RANK_HEAP);
    hs_lock_init(&tiny.orphan_lock, HS_RANK_ORPHAN);
    seg_init();
    seg_set_client_init(client_init);
    seg_set_client_reclaim(release_remote_emptied);
    seg_set_idle_work(collect_abandoned);
    pthread_key_create(&tiny.heap_key, thread_exit);
    hs_once_leave(HS_RANK_INIT_TINY);
}

void tiny_init(void) { pthread_once(&tiny.init_once, init_tiny); }

/* ---- list helpers (owner only, or under orphan_lock) ----------------------- */

/* The one writer of heap->current and heap->direct (owner only). */
static void heap_set_current(tiny_heap_t *heap, unsigned cls, tiny_slab_t *s)
{
    heap->current[cls] = s;
    if (tiny_class_size[cls] > TINY_TABLE_MAX) return;
    /* The sizes of class cls are (previous class size, class size]. */
    unsigned first = cls == 0 ? 0 : (tiny_class_size[cls - 1] + 16) >> 4;
    for (unsigned i = first; i <= tiny_class_size[cls] >> 4; i++) heap->direct[i] = s;
}

HS_LIST_FUNCTIONS(slab_list, tiny_slab_t)

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
static uint32_t heap_enter(tiny_heap_t *heap)
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

static void heap_leave(tiny_heap_t *heap, uint32_t was)
{
    atomic_store_explicit(&heap->busy, was, memory_order_release);
}

/* For a thread that is not the owner: false when the flag is held. */
static bool heap_try_enter_other(tiny_heap_t *heap)
{
    uint32_t seen = 0;
    return atomic_load_explicit(&heap->busy, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_strong_explicit(&heap->busy, &seen, HEAP_OTHER,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* ---- invariants (debug builds) ---------------------------------------------- */

#if defined(HS_DEBUG) && HS_DEBUG
/* Checks the invariants written above tiny_slab_s for a slab of the calling
 * thread's: every free-list block is a carved block of this slab, marked
 * free, listed once (the walk stops at capacity), and the list's length
 * agrees with `used`. */
static void tiny_slab_validate(const tiny_slab_t *s)
{
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    uint32_t used = s->used + s->full_bias;
    HS_ASSERT(carved <= s->capacity && used <= carved);
    HS_ASSERT(s->on_full ? s->used >= 1 : s->full_bias == 0);
    uint32_t listed = 0;
    for (const tiny_block_t *b = s->free; b; b = tiny_next_in_slab(s, b)) {
        uintptr_t offset = (uintptr_t)b - (uintptr_t)s->start;
        HS_ASSERT(offset % s->block_size == 0 && offset / s->block_size < carved);
        HS_ASSERT(b->free_mark == ((uintptr_t)b ^ s->free_key));
        HS_ASSERT(++listed <= carved);
    }
    HS_ASSERT(listed == carved - used);
}
#define TINY_VALIDATE(s) tiny_slab_validate(s)
#else
#define TINY_VALIDATE(s) ((void)0)
#endif

/* ---- creating and retiring slabs ------------------------------------------- */

/* Puts the next page's worth of never-used blocks (at least one) on the
 * free list, marked free: those that end in the page where the first one
 * ends. Touching a slab a page at a time keeps a slab that is barely used
 * from costing its whole size in RSS and faults; ending at a page's end
 * keeps the slab of unit 0, which starts past the SuperSlab's header and
 * slab table, from touching two pages for its first page of blocks. */
static void carve(tiny_slab_t *slab)
{
    uint32_t size = slab->block_size;
    uint32_t first = atomic_load_explicit(&slab->carved, memory_order_relaxed);
    uintptr_t from = (uintptr_t)slab->start + (size_t)first * size;
    uint32_t batch = (uint32_t)((hs_align_up(from + size, 4096) - from) / size);
    uint32_t end = first + batch < slab->capacity ? first + batch : slab->capacity;
    if (HS_UNLIKELY(atomic_load_explicit(&seg_small_heap_deferred, memory_order_relaxed)))
        seg_small_heap_carved((const void *)from, (size_t)(end - first) * size);
    tiny_block_t *next = slab->free;
    for (uint32_t i = end; i-- > first;) {
        tiny_block_t *b = (tiny_block_t *)(slab->start + (size_t)i * size);
        b->link = tiny_link(b, next, slab->free_key);
        b->free_mark = (uintptr_t)b ^ slab->free_key;
        next = b;
    }
    slab->free = next;
    atomic_store_explicit(&slab->carved, end, memory_order_relaxed);
}

/* Blocks from which on a slab of one block is one that an array grown by
 * realloc passes through (seg_small_heap_passing): ls -lR /usr's table of
 * files went through slabs of 332,800 and 665,600 B, 34 units resident
 * whole, and made its first SuperSlab look dense (9.9 MiB peak RSS with
 * the second a huge page, glibc 7.1). The densest small heaps,
 * bench_memory kv and larson, fill slabs of many small blocks. */
#define TINY_PASSING_MIN ((size_t)256 << 10)

/* Tells segment/ of a slab of one block of TINY_PASSING_MIN or more, while
 * the heap is on base pages. */
static void note_passing(const tiny_slab_t *slab, seg_superslab_t *ss)
{
    if (slab->capacity == 1 && slab->block_size >= TINY_PASSING_MIN &&
        atomic_load_explicit(&seg_small_heap_deferred, memory_order_relaxed))
        seg_small_heap_passing(ss, slab->first_unit, slab->units);
}

static tiny_slab_t *slab_create(tiny_heap_t *heap, unsigned cls)
{
    size_t size = tiny_class_size[cls];
    unsigned units = slab_units(cls), first;
    bool fresh;
    seg_superslab_t *ss =
        seg_units_alloc(heap->node, &units, fallback_units(cls), size, &first, &fresh);
    if (!ss) return NULL;
    tiny_client_area_t *area = tiny_client_area(ss);
    tiny_slab_t *slab = &area->slab[first];
    char *start = (char *)ss + (first == 0 ? SEG_FIRST_SLAB_BYTE : first * HS_UNIT_SIZE);
    char *end = (char *)ss + (first + units) * HS_UNIT_SIZE;
    uint32_t capacity = (uint32_t)((size_t)(end - start) / size);
    HS_ASSERT(capacity >= 1);

    slab->used = 0;
    slab->full_bias = 0;
    slab->on_full = false;
    slab->capacity = capacity;
    atomic_store_explicit(&slab->carved, 0, memory_order_relaxed);
    slab->block_size = (uint32_t)size;
    slab->cls = (uint8_t)cls;
    slab->units = (uint8_t)units;
    slab->first_unit = (uint8_t)first;
    atomic_store_explicit(&slab->has_aligned, 0, memory_order_relaxed);
    slab->start = start;
    slab->recip = tiny_block_recip(size);
    slab->free = NULL;
    slab->free_key = hs_free_key;
    slab->next = slab->prev = NULL;
    atomic_store_explicit(&slab->remote_free, 0, memory_order_relaxed);
    atomic_store_explicit(&slab->owner_word, (uintptr_t)heap, memory_order_release);
    note_passing(slab, ss);
    carve(slab);
    /* The block refill hands out next (the free list starts at start). */
    tiny_fresh_block = fresh ? start : NULL;
    /* Publish last: a free of a pointer into these units must not find the
     * slab before its fields are set. */
    for (unsigned u = first; u < first + units; u++) area->head[u] = slab;
    hs_count_add(&tiny.stat_bytes_in_slabs, (int64_t)(units * HS_UNIT_SIZE));
    return slab;
}

static void slab_release(tiny_slab_t *slab)
{
    seg_superslab_t *ss = seg_superslab_of(slab);
    tiny_client_area_t *area = tiny_client_area(ss);
    unsigned first = slab->first_unit, units = slab->units;
    atomic_store_explicit(&slab->owner_word, 0, memory_order_relaxed);
    for (unsigned u = first; u < first + units; u++) area->head[u] = &tiny_sentinel_slab;
    hs_count_add(&tiny.stat_bytes_in_slabs, -(int64_t)(units * HS_UNIT_SIZE));
    seg_units_free(ss, first, units);
}

/* ---- collecting remote frees into the free list (owner only) ----------------- */

/* Puts the blocks of a taken remote_free word on the free list. The word
 * carries the list's length, so the list itself (blocks last written by
 * other threads' cores) is not walked; our own free list is walked to find
 * its end, and the refill path only collects into an empty one. */
static void append_remote_word(tiny_slab_t *s, uintptr_t word)
{
    tiny_block_t *list = (tiny_block_t *)(word & TINY_REMOTE_PTR_MASK);
    uint32_t n = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT);
    if (!list) return;
    if (!s->free) {
        s->free = list;
    } else {
        tiny_block_t *tail = s->free, *next;
        while ((next = tiny_next_in_slab(s, tail))) tail = next;
        tail->link = tiny_link(tail, list, s->free_key);
    }
    HS_ASSERT(s->used >= n);
    s->used -= n;
}

/* For a slab that is not on the full list (remote_free has no FULL bit). */
static void collect(tiny_slab_t *s)
{
    if (atomic_load_explicit(&s->remote_free, memory_order_relaxed) == 0) return;
    uintptr_t word = atomic_exchange_explicit(&s->remote_free, 0, memory_order_acquire);
    HS_ASSERT((word & TINY_REMOTE_FULL) == 0);
    append_remote_word(s, word);
}

/* Moves a slab without room to the full list. Returns false (and leaves it
 * on the partial list, with room) when remote frees arrived meanwhile.
 * The slab comes back once a thirty-second of it is free again: back at
 * the first free block, it would be refilled from one block at a time and
 * flip between the lists on every other malloc. Not later: a program that
 * frees blocks here and there and allocates others of the class leaves
 * what is free in full slabs unused while new slabs are made (at an
 * eighth, bench_memory kv peaked 12 MiB higher: 257.7 MiB against glibc's
 * 246.4). The owner's own frees into it stay on free's fast path, which
 * knows nothing of lists: `used` is biased so that it reaches 0, the one
 * case the fast path hands on, at that thirty-second (full_bias holds the
 * rest). Remote frees notify through the delayed list (free_remote). */
static bool move_to_full(tiny_heap_t *heap, tiny_slab_t *s)
{
    uintptr_t word =
        atomic_exchange_explicit(&s->remote_free, TINY_REMOTE_FULL, memory_order_acq_rel);
    if (word) {
        append_remote_word(s, word);
        atomic_fetch_and_explicit(&s->remote_free, ~TINY_REMOTE_FULL, memory_order_release);
        return false;
    }
    slab_list_remove(&heap->partial[s->cls], s);
    slab_list_push(&heap->full[s->cls], s);
    uint32_t keep = s->capacity >> 5 ? s->capacity >> 5 : 1;
    if (s->used > keep) {
        s->full_bias = s->used - keep;
        s->used = keep;
    }
    s->on_full = true;
    return true;
}

/* Takes a slab off the full list: its count unbiased, remote frees sent to
 * the slab again. */
static void move_to_partial(tiny_heap_t *heap, tiny_slab_t *s)
{
    s->used += s->full_bias;
    s->full_bias = 0;
    s->on_full = false;
    atomic_fetch_and_explicit(&s->remote_free, ~TINY_REMOTE_FULL, memory_order_acq_rel);
    slab_list_remove(&heap->full[s->cls], s);
    slab_list_push(&heap->partial[s->cls], s);
    /* Frees that raced with the FULL bit went to the delayed list; any left
     * on the slab itself are collected at the next refill. */
}

/* Out of line, as release_kept_empty_in: slab_now_empty, which calls both,
 * then needs no registers saved on its common path. */
HS_NOINLINE static void release_empty(tiny_heap_t *heap, tiny_slab_t *s)
{
    uint32_t was = heap_enter(heap);
    if (heap->current[s->cls] == s) heap_set_current(heap, s->cls, &tiny_sentinel_slab);
    HS_ASSERT(!s->on_full);
    slab_list_remove(&heap->partial[s->cls], s);
    heap_leave(heap, was);
    /* An empty slab may still carry the FULL bit if it went empty through
     * the delayed list; nothing can be pushed on it any more (used == 0). */
    atomic_store_explicit(&s->remote_free, 0, memory_order_relaxed);
    slab_release(s);
}

/* segment/'s last resort before it maps a SuperSlab for the calling
 * thread: the heap's slabs whose blocks in use all wait on their
 * remote-free stacks go back to their SuperSlabs. A slab that its owner and
 * other threads freed into by turns has nothing to tell anyone it is
 * empty: its `used` counts the blocks on the stack until a refill of its
 * class collects them, and when some 50 classes of 4 KiB - 1 MiB come and
 * go (git pack-objects' delta search threads, each freeing the other's
 * delta base cache entries), that refill may not come for a long time: at
 * the peak of git gc --aggressive, 212 slabs (1,061 units, 33 MiB) held no
 * block in use. Current slabs stay (kept on purpose, see slab_now_empty);
 * only the calling thread's own heap is looked at, under its busy flag
 * (seg_units_alloc runs inside its refill). */
static bool release_remote_emptied(void)
{
    tiny_heap_t *heap = tiny_heap_tls;
    if (heap == &tiny_empty_heap) return false;
    uint32_t was = heap_enter(heap);
    bool released = false;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        for (tiny_slab_t *s = heap->partial[cls], *next; s; s = next) {
            next = s->next;
            uintptr_t word = atomic_load_explicit(&s->remote_free, memory_order_relaxed);
            if (s == heap->current[cls] || (word >> TINY_REMOTE_COUNT_SHIFT) != s->used) continue;
            /* Every block in use is on the stack: none can be freed to s
             * meanwhile, so collect() leaves used at 0. */
            collect(s);
            if (s->used != 0) continue;
            release_empty(heap, s);
            released = true;
        }
    }
    heap_leave(heap, was);
    return released;
}

/* Releases the heap's empty current slabs that lie in ss (every one when
 * ss is NULL). */
HS_NOINLINE static void release_kept_empty_in(tiny_heap_t *heap, const seg_superslab_t *ss)
{
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        tiny_slab_t *s = heap->current[cls];
        if (s == &tiny_sentinel_slab || (ss && seg_superslab_of(s) != ss)) continue;
        /* A current slab is never on the full list: collect() applies. */
        collect(s);
        if (s->used == 0) release_empty(heap, s);
    }
}

/* A slab of the heap's whose last block came back. One that is not its
 * class's current slab goes back to its SuperSlab at once, so whole
 * SuperSlabs fall idle for the purge thread even while this thread sleeps.
 * An empty current slab stays current: a small working set frees the last
 * block of a class and allocates one again all the time, and a slab made
 * and released each time costs a trip to the segment layer and a re-carve.
 * What such a slab costs is its SuperSlab, which it keeps from the purge
 * thread if this thread then sleeps; so empty slabs are kept only in the
 * TINY_KEPT_SUPERSLABS SuperSlabs that last received one, and those of the
 * least recently used one are released when another is needed. That is no
 * limit for a small working set, whose slabs share a SuperSlab.
 * malloc_trim() and the thread's exit release them all. */
static void slab_now_empty(tiny_heap_t *heap, tiny_slab_t *s)
{
    TINY_VALIDATE(s);
    if (heap->current[s->cls] != s) {
        release_empty(heap, s);
        return;
    }
    /* kept_in's entries in use come first, the most recent at 0: the
     * common case (a small working set, one class emptied again) returns
     * here. Else find ss, or the first free entry; when neither exists,
     * the oldest (last) is evicted. */
    seg_superslab_t *ss = seg_superslab_of(s), **kept = heap->kept_in, *evicted = NULL;
    if (kept[0] == ss) return;
    unsigned i = 1;
    while (i < TINY_KEPT_SUPERSLABS && kept[i] && kept[i] != ss) i++;
    if (i == TINY_KEPT_SUPERSLABS) evicted = kept[--i];
    /* ss becomes the most recent: the entries before i move back. */
    for (; i > 0; i--) kept[i] = kept[i - 1];
    kept[0] = ss;
    if (evicted) release_kept_empty_in(heap, evicted);
}

static uint64_t one_block_bit(unsigned cls)
{
    return (uint64_t)1 << (cls - TINY_ONE_BLOCK_CLASS_MIN);
}

/* A slab of one block is about to be cut for cls while the heap is small
 * (fewest_units: a block of more than half a unit is alone in its slab):
 * the empty slabs of one block that other classes keep as current go back
 * first, so that the new one can take their units. Python's start-up reads
 * each module's file into a buffer of its own size (33 to 118 KB, a class
 * each) and frees it: each buffer's slab stayed, kept empty with the pages
 * the file had filled, and the next buffer touched units never touched
 * before (`python3 -c pass` peaked 256 KiB higher). A class that needs a
 * slab again after its own went back this way alternates with others (a
 * loop of malloc and free of two such sizes made and released a slab at
 * each call, 1.6 us instead of 60 ns): its empty slabs stay current from
 * then on. Only a slab of one block makes room: made for every new slab,
 * small blocks' too, the room went to slabs that touch a page of it, the
 * next buffer took fresh units again, and the peak was 128 KiB lower, not
 * 256. */
HS_NOINLINE static void make_room_for_one_block(tiny_heap_t *heap, unsigned cls)
{
    if (heap->one_block_released & one_block_bit(cls))
        heap->one_block_recurring |= one_block_bit(cls);
    for (unsigned c = TINY_ONE_BLOCK_CLASS_MIN; c < TINY_CLASS_COUNT; c++) {
        tiny_slab_t *s = heap->current[c];
        /* A slab on the full list has no room to give, and collect() would
         * take its FULL bit: cls's own current slab is one, moved there by
         * refill and not replaced yet. */
        if (s == &tiny_sentinel_slab || s->on_full || s->capacity != 1 ||
            (heap->one_block_recurring & one_block_bit(c)))
            continue;
        collect(s);
        if (s->used != 0) continue;
        release_empty(heap, s);
        heap->one_block_released |= one_block_bit(c);
    }
}

/* The owner's `used` of s reached 0: a slab on the full list has had its
 * thirty-second freed (move_to_full), any other is empty. */
/* move_to_partial under the heap's flag, out of line as release_empty. */
HS_NOINLINE static void back_to_partial(tiny_heap_t *heap, tiny_slab_t *s)
{
    uint32_t was = heap_enter(heap);
    move_to_partial(heap, s);
    heap_leave(heap, was);
}

static void used_reached_zero(tiny_heap_t *heap, tiny_slab_t *s)
{
    if (s->on_full) {
        back_to_partial(heap, s);
        if (s->used != 0) return;
    }
    slab_now_empty(heap, s);
}

/* A free by the owner that the fast path did not take: an aligned block's
 * inner pointer. */
static void free_local(tiny_heap_t *heap, tiny_slab_t *s, tiny_block_t *b)
{
    b->link = tiny_link(b, s->free, s->free_key);
    b->free_mark = (uintptr_t)b ^ s->free_key;
    s->free = b;
    if (--s->used == 0) used_reached_zero(heap, s);
}

/* The stripe of heapless_remote_frees for the calling thread: a hash of a
 * thread-local address (threads' TLS blocks differ in their high bits). */
static heapless_counts_t *heapless_stripe(void)
{
    uint64_t h = (uint64_t)(uintptr_t)&tiny_heap_tls * 0x9e3779b97f4a7c15ULL;
    return &tiny_lists.heapless_remote_frees[h >> (64 - 4)];
}
_Static_assert(HEAPLESS_STRIPES == 16, "heapless_stripe takes 4 bits");

/* Counts a program's free of another thread's block, in the freeing
 * thread's heap: a shared counter would be a cache line that every freeing
 * thread fights over. A thread without a heap (one that only frees) is not
 * given one for this: it counts in its stripe of the shared counters. */
static void count_remote_free(tiny_slab_t *s)
{
    unsigned node = seg_superslab_of(s)->memory_node;
    tiny_heap_t *me = tiny_heap_tls;
    if (HS_LIKELY(me != &tiny_empty_heap)) {
        _Atomic uint64_t *c = &me->remote_frees_by_node[node];
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else {
        hs_count_add(&heapless_stripe()->by_node[node], 1);
    }
}

/* Pushes a chain of marked-free blocks (first .. last, linked) on a heap's
 * delayed list in one exchange. */
static void delayed_push_chain(tiny_heap_t *heap, tiny_block_t *first, tiny_block_t *last)
{
    tiny_block_t *head = atomic_load_explicit(&heap->delayed, memory_order_relaxed);
    do {
        last->link = tiny_link(last, head, hs_free_key);
    } while (!atomic_compare_exchange_weak_explicit(&heap->delayed, &head, first,
                                                    memory_order_release, memory_order_relaxed));
}

/* A free by any thread other than the owner (or of an orphan's block). */
static void free_remote(tiny_slab_t *s, tiny_block_t *b)
{
    uintptr_t old = atomic_load_explicit(&s->remote_free, memory_order_relaxed);
    for (;;) {
        if (old & TINY_REMOTE_FULL) {
            /* The owner parked this slab on its full list and does not look
             * at it: tell it, once. Clearing the bit sends later frees to
             * the slab again; this block goes to the owner heap itself,
             * which never goes away, so the slab is not touched after the
             * block is published. */
            tiny_heap_t *owner =
                (tiny_heap_t *)atomic_load_explicit(&s->owner_word, memory_order_acquire);
            if (!owner) {
                /* Orphaned meanwhile: its FULL bit is being cleared. */
                old = atomic_load_explicit(&s->remote_free, memory_order_relaxed);
                continue;
            }
            if (!atomic_compare_exchange_weak_explicit(&s->remote_free, &old,
                                                       old & ~TINY_REMOTE_FULL,
                                                       memory_order_acq_rel, memory_order_relaxed))
                continue;
            /* Read before the block is published: the owner may take the
             * notice, and release the slab, at once. */
            atomic_fetch_add_explicit(&seg_units_returning, s->units, memory_order_relaxed);
            delayed_push_chain(owner, b, b);
            return;
        }
        b->link = tiny_link(b, (tiny_block_t *)(old & TINY_REMOTE_PTR_MASK), s->free_key);
        uintptr_t count = (old >> TINY_REMOTE_COUNT_SHIFT) + 1;
        if (atomic_compare_exchange_weak_explicit(&s->remote_free, &old,
                                                  count << TINY_REMOTE_COUNT_SHIFT | (uintptr_t)b,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

/* Notices (delayed blocks) of slabs holding `units` in all were taken off
 * a delayed list for good: see seg_units_returning. */
static void returning_taken(long units)
{
    if (!units) return;
    long before = atomic_fetch_sub_explicit(&seg_units_returning, units, memory_order_relaxed);
    HS_ASSERT(before >= units); /* each notice added its slab's units first */
    (void)before;
}

/* The block after b on a heap's delayed list (blocks of any slab), or NULL.
 * A link that decodes to anything but a block of a SuperSlab of slabs that
 * is marked free was written after b was freed. */
static tiny_block_t *next_delayed(const tiny_block_t *b)
{
    tiny_block_t *next = (tiny_block_t *)tiny_link(b, (const tiny_block_t *)b->link, hs_free_key);
    if (next && (((uintptr_t)next & 15) || seg_chunk_kind(next) != SEG_CHUNK_SLABS ||
                 next->free_mark != ((uintptr_t)next ^ hs_free_key)))
        tiny_report_corrupt_list(b, tiny_slab_of(b)->block_size, "delayed free list");
    return next;
}

/* Routes a block known to be valid and marked free to its slab's owner. */
static void free_marked_block(tiny_heap_t *heap, tiny_block_t *b)
{
    tiny_slab_t *s = tiny_slab_of(b);
    uintptr_t word = atomic_load_explicit(&s->owner_word, memory_order_acquire);
    if (word == (uintptr_t)heap && heap != &tiny_empty_heap) {
        b->link = tiny_link(b, s->free, s->free_key);
        s->free = b;
        s->used--;
        /* A delayed block is the notice that other threads free into this
         * slab again: back to the partial list, where refills collect them. */
        if (s->on_full) move_to_partial(heap, s);
        if (s->used == 0) slab_now_empty(heap, s);
    } else {
        free_remote(s, b);
    }
}

static void drain_delayed(tiny_heap_t *heap)
{
    if (!atomic_load_explicit(&heap->delayed, memory_order_relaxed)) return;
    tiny_block_t *b = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    long units = 0;
    while (b) {
        tiny_block_t *next = next_delayed(b);
        units += tiny_slab_of(b)->units; /* before the block may empty its slab */
        free_marked_block(heap, b);
        b = next;
    }
    returning_taken(units);
}

/* ---- slabs emptied by other threads while their owner sleeps ------------------ */

/* Whether freeing one more block into s (not the caller's) may leave every
 * block of it carved so far free: the remote-free stack, this block and the
 * notice on the owner's delayed list (the first remote free into a slab on
 * its full list) would then hold them all. A cheap guess from two atomics;
 * reclaim_empty decides. */
HS_INLINE bool may_complete_slab(const tiny_slab_t *s)
{
    uintptr_t word = atomic_load_explicit(&s->remote_free, memory_order_relaxed);
    uint32_t freed = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT) + 1;
    return freed + 1 == atomic_load_explicit(&s->carved, memory_order_relaxed);
}

/* The block another thread is freeing is the last block of s in use:
 * s is released instead of receiving it, with its owner's permission (its
 * busy flag, tried once). Returns false, having changed nothing, when that
 * is not known for sure; b is then freed as usual.
 * The owner's slabs stay its own while it sleeps (a server's main thread
 * in pthread_join, say), and only it took them back: a slab that other
 * threads emptied kept its units, and its SuperSlab, until the owner's
 * next refill or exit. Larson-style rounds kept the main thread's first
 * 2 MiB of slabs so, all but empty, for the whole run.
 * Only a slab whose notice still waits on the delayed list is taken: its
 * owner has not been through a refill since the slab's first remote free,
 * so it is asleep, or nearly. An owner at work takes the notice at its next
 * refill and reuses the slab's blocks itself; releasing such slabs made a
 * producer that other threads free for cut and carve new ones all the time.
 * Nor while the heap is small (seg_small_heap): its slabs share the first
 * SuperSlab, so no SuperSlab is saved, and a producer that the scheduler
 * left off its core while its consumer freed saw its slabs go and came
 * back to cut new ones (bench_memory prodcons peaked 50 KiB higher, on
 * 10 more faults, with 32,000 slabs released).
 * Safe without the owner's fast paths knowing: s is not current (the owner
 * pops only from current slabs, and sets them under the flag), and every
 * carved block of s is free (the stack, the notices on the delayed list
 * and b account for `carved` blocks; blocks on the owner's own free list
 * are not counted, so a slab holding any is never taken), so no free by
 * the owner can touch it. */
static HS_NOINLINE bool reclaim_empty(tiny_slab_t *s)
{
    tiny_heap_t *heap = (tiny_heap_t *)atomic_load_explicit(&s->owner_word, memory_order_acquire);
    if (!heap || heap == tiny_heap_tls || seg_small_heap() || !heap_try_enter_other(heap))
        return false;
    /* b is in use: s cannot have been released, so it is still the heap's. */
    HS_ASSERT(atomic_load_explicit(&s->owner_word, memory_order_relaxed) == (uintptr_t)heap);
    if (heap->current[s->cls] == s) {
        heap_leave(heap, 0);
        return false;
    }
    tiny_block_t *notices = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    uint32_t own_notices = 0;
    for (tiny_block_t *n = notices; n; n = next_delayed(n)) own_notices += tiny_slab_of(n) == s;
    uintptr_t word = atomic_load_explicit(&s->remote_free, memory_order_acquire);
    /* The stack, the notices and the block being freed. */
    uint32_t free_blocks = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT) + own_notices + 1;
    bool empty =
        own_notices != 0 && free_blocks == atomic_load_explicit(&s->carved, memory_order_relaxed);
    if (empty) slab_list_remove(s->on_full ? &heap->full[s->cls] : &heap->partial[s->cls], s);
    /* The notices back, but for s's own when it goes. */
    tiny_block_t *first = NULL, *last = NULL;
    for (tiny_block_t *n = notices, *next; n; n = next) {
        next = next_delayed(n);
        if (empty && tiny_slab_of(n) == s) continue;
        n->link = tiny_link(n, first, hs_free_key);
        if (!first) last = n;
        first = n;
    }
    if (first) delayed_push_chain(heap, first, last);
    heap_leave(heap, 0);
    if (!empty) return false;
    returning_taken((long)own_notices * s->units);
    /* Out of every list of the heap's, with no block in use: nothing of
     * the owner's refers to it any more. */
    atomic_store_explicit(&s->remote_free, 0, memory_order_relaxed);
    slab_release(s);
    return true;
}

/* ---- orphans ---------------------------------------------------------------- */

/* Orphans looked at by one adoption: the newest, where slabs with room
 * gather (full ones sink as others are pushed above them). */
#define TINY_ADOPT_SCAN 16

/* Whether an orphan, its remote frees collected, can hand out a block. */
static bool orphan_has_room(const tiny_slab_t *s)
{
    return s->free || atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity;
}

/* Takes over an orphan of the class with room for a block: of the newest
 * TINY_ADOPT_SCAN, the one with the most blocks in use. Filling the densest
 * first lets the sparse ones drain to empty and go back to their
 * SuperSlabs; taking whichever comes first (or a full one, which then
 * needs a new slab next to it) made thread churn keep thousands of slabs,
 * each pinned by a block or two. Orphans with nothing in use are released
 * on the way. */
static tiny_slab_t *adopt_orphan(tiny_heap_t *heap, unsigned cls)
{
    if (atomic_load_explicit(&tiny.stat_orphan_slabs, memory_order_relaxed) == 0) return NULL;
    tiny_slab_t **list = &tiny_lists.orphans[heap->node][cls];
    tiny_slab_t *best = NULL, *empty[TINY_ADOPT_SCAN];
    unsigned n_empty = 0;
    hs_lock(&tiny.orphan_lock);
    tiny_slab_t *s = *list;
    for (unsigned seen = 0; s && seen < TINY_ADOPT_SCAN; seen++) {
        tiny_slab_t *next = s->next;
        /* Orphans are collected under orphan_lock (sweep_orphans too). */
        collect(s);
        if (s->used == 0) {
            slab_list_remove(list, s);
            empty[n_empty++] = s;
        } else if (orphan_has_room(s) && (!best || s->used > best->used)) {
            best = s;
        }
        s = next;
    }
    if (best) slab_list_remove(list, best);
    hs_unlock(&tiny.orphan_lock);
    /* Released after the unlock: slab_release takes a segment lock. */
    for (unsigned i = 0; i < n_empty; i++) slab_release(empty[i]);
    hs_count_add(&tiny.stat_orphan_slabs, -(int64_t)(n_empty + (best != NULL)));
    if (!best) return NULL;
    atomic_store_explicit(&best->owner_word, (uintptr_t)heap, memory_order_release);
    slab_list_push(&heap->partial[cls], best);
    collect(best);
    return best;
}

/* Sends every block on the delayed list of a heap whose thread has left to
 * its slab, as another thread's free does: the heap gives its slabs up (or
 * has), so no refill of its will take them. */
static void delayed_to_slabs(tiny_heap_t *heap)
{
    tiny_block_t *b = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    while (b) {
        tiny_block_t *next = next_delayed(b);
        tiny_slab_t *s = tiny_slab_of(b);
        returning_taken(s->units);
        free_remote(s, b);
        b = next;
    }
}

/* Gives up every slab of a heap whose thread is leaving. */
static void heap_abandon(tiny_heap_t *heap)
{
    drain_delayed(heap);
    for (unsigned i = 0; i < TINY_KEPT_SUPERSLABS; i++) heap->kept_in[i] = NULL;
    heap->one_block_released = heap->one_block_recurring = 0;
    bool orphaned = false;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        heap_set_current(heap, cls, &tiny_sentinel_slab);
        tiny_slab_t *lists[2] = {heap->partial[cls], heap->full[cls]};
        heap->partial[cls] = heap->full[cls] = NULL;
        for (int l = 0; l < 2; l++) {
            tiny_slab_t *s = lists[l];
            while (s) {
                tiny_slab_t *next = s->next;
                /* Clear the FULL bit first, so remote frees go to the slab. */
                atomic_store_explicit(&s->owner_word, 0, memory_order_release);
                atomic_fetch_and_explicit(&s->remote_free, ~TINY_REMOTE_FULL, memory_order_acq_rel);
                s->used += s->full_bias;
                s->full_bias = 0;
                s->on_full = false;
                collect(s);
                if (s->used == 0) {
                    slab_release(s);
                } else {
                    hs_lock(&tiny.orphan_lock);
                    slab_list_push(&tiny_lists.orphans[seg_superslab_of(s)->node][cls], s);
                    hs_unlock(&tiny.orphan_lock);
                    hs_count_add(&tiny.stat_orphan_slabs, 1);
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

/* Orphans whose blocks have all come back are released (malloc_trim).
 * Returns true while some remain. */
static bool sweep_orphans(void)
{
    tiny_slab_t *empty = NULL; /* taken off the lists, released below */
    hs_lock(&tiny.orphan_lock);
    for (unsigned i = 0; i < HS_MAX_NODES * TINY_CLASS_COUNT; i++) {
        tiny_slab_t **list = &tiny_lists.orphans[i / TINY_CLASS_COUNT][i % TINY_CLASS_COUNT];
        tiny_slab_t *s = *list;
        while (s) {
            tiny_slab_t *next = s->next;
            collect(s);
            if (s->used == 0) {
                slab_list_remove(list, s);
                hs_count_add(&tiny.stat_orphan_slabs, -1);
                s->next = empty;
                empty = s;
            }
            s = next;
        }
    }
    hs_unlock(&tiny.orphan_lock);
    /* Released with the orphan lock free: a SuperSlab left empty goes to its
     * node's pool and may start the purge thread, which allocates. */
    while (empty) {
        tiny_slab_t *next = empty->next;
        slab_release(empty);
        empty = next;
    }
    return atomic_load_explicit(&tiny.stat_orphan_slabs, memory_order_relaxed) != 0;
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
    hs_lock(&tiny.heap_lock);
    for (;;) {
        if (tiny.heap_pool) {
            heap = tiny.heap_pool;
            tiny.heap_pool = heap->next_free;
            break;
        }
        if ((size_t)(tiny.meta_end - tiny.meta_next) >= size) {
            heap = (tiny_heap_t *)tiny.meta_next;
            tiny.meta_next += size;
            for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++)
                heap_set_current(heap, cls, &tiny_sentinel_slab);
            heap->all_next = tiny.heap_all;
            tiny.heap_all = heap;
            break;
        }
        if (!region && tiny.meta_spare) {
            region = tiny.meta_spare;
            tiny.meta_spare = NULL;
        }
        if (region) {
            tiny.meta_next = region;
            tiny.meta_end = region + chunk;
            region = NULL;
            continue;
        }
        hs_unlock(&tiny.heap_lock);
        region = seg_map_metadata(chunk);
        if (!region) return NULL;
        hs_lock(&tiny.heap_lock);
    }
    heap->attached = true;
    /* Two threads that both mapped while a third refilled: one region is
     * lost (64 KiB, as rare as that race). */
    if (region && !tiny.meta_spare) tiny.meta_spare = region;
    hs_unlock(&tiny.heap_lock);
    return heap;
}

/* Gives the calling thread a heap of its own. NULL when memory is out. */
static HS_NOINLINE tiny_heap_t *heap_attach(void)
{
    tiny_init();
    tiny_heap_t *heap = heap_new();
    if (!heap) return NULL;
    heap->node = seg_thread_node_refresh();
    hs_count_add(&tiny.stat_threads_live, 1);
    tiny_heap_tls = heap;
    /* May allocate (glibc's second-level key table): the heap is in place. */
    pthread_setspecific(tiny.heap_key, heap);
    uint32_t was = heap_enter(heap);
    drain_delayed(heap);
    heap_leave(heap, was);
    return heap;
}

static void thread_exit(void *arg)
{
    tiny_heap_t *heap = arg;
    if (!heap || heap == &tiny_empty_heap) return;
    tiny_heap_tls = &tiny_empty_heap;
    uint32_t was = heap_enter(heap);
    heap_abandon(heap);
    heap_leave(heap, was);
    hs_count_add(&tiny.stat_threads_live, -1);
    hs_lock(&tiny.heap_lock);
    heap->attached = false;
    heap->next_free = tiny.heap_pool;
    tiny.heap_pool = heap;
    hs_unlock(&tiny.heap_lock);
}

/* ---- the refill path -------------------------------------------------------- */

HS_INLINE void *pop(tiny_slab_t *s) { return tiny_pop(s, s->free); }

HS_INLINE void *refill(tiny_heap_t *heap, unsigned cls);

HS_NOINLINE void *tiny_malloc_refill(tiny_heap_t *heap, unsigned cls)
{
    if (HS_UNLIKELY(heap == &tiny_empty_heap)) {
        heap = heap_attach();
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    }
    uint32_t was = heap_enter(heap);
    void *p = refill(heap, cls);
    heap_leave(heap, was);
    return p;
}

/* The refill itself, under the heap's busy flag. */
HS_INLINE void *refill(tiny_heap_t *heap, unsigned cls)
{
    /* A thread that moved to another node gives its slabs up (other threads
     * of the old node adopt them) and takes memory from the new one from now
     * on. seg_thread_node() asks the kernel (getcpu) every few dozen
     * refills; a new slab always asks (below), since that places memory. */
    unsigned node = seg_thread_node();
    if (HS_UNLIKELY(node != heap->node)) {
        heap_abandon(heap);
        heap->node = node;
    }
    drain_delayed(heap);
    /* The slabs that may have room: blocks this thread freed into them,
     * remote frees, or blocks never carved. Slabs found without room go to
     * the full list, so this walk stays short. Remote frees are collected
     * only into an empty free list, which keeps collect() from walking one. */
    tiny_slab_t *s = heap->partial[cls];
    while (s) {
        tiny_slab_t *next = s->next;
        if (!s->free) collect(s);
        if (!s->free && atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity)
            carve(s);
        if (!s->free) move_to_full(heap, s); /* may find late remote frees */
        if (s->free) {
            TINY_VALIDATE(s);
            heap_set_current(heap, cls, s);
            return pop(s);
        }
        s = next;
    }
    node = seg_thread_node_refresh();
    if (node != heap->node) {
        heap_abandon(heap);
        heap->node = node;
    }
    s = adopt_orphan(heap, cls);
    if (s && !s->free && atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity)
        carve(s);
    if (!s || !s->free) {
        if (tiny_class_size[cls] > HS_UNIT_SIZE / 2 && seg_small_heap())
            make_room_for_one_block(heap, cls);
        s = slab_create(heap, cls);
        if (!s) {
            heap_set_current(heap, cls, &tiny_sentinel_slab);
            errno = ENOMEM;
            return NULL;
        }
        slab_list_push(&heap->partial[cls], s);
    }
    heap_set_current(heap, cls, s);
    return pop(s);
}

/* ---- free slow paths --------------------------------------------------------- */

/* A free of another thread's block (or an orphan's). Out of line: the
 * owner's cases of tiny_free_slow, the common ones, then save no more
 * registers than before the reclaim came in. */
static HS_NOINLINE void free_by_other(tiny_slab_t *s, tiny_block_t *b)
{
    b->free_mark = (uintptr_t)b ^ s->free_key;
    count_remote_free(s);
    if (HS_UNLIKELY(may_complete_slab(s)) && reclaim_empty(s)) return;
    free_remote(s, b);
}

/* p == NULL: the fast path already freed into s and its count reached 0. */
HS_NOINLINE void tiny_free_slow(void *p, tiny_slab_t *s)
{
    tiny_heap_t *heap = tiny_heap_tls;
    if (!p) {
        used_reached_zero(heap, s);
        return;
    }
    tiny_block_t *b = p;
    if (HS_UNLIKELY(b->free_mark == ((uintptr_t)b ^ s->free_key))) tiny_report_double_free(p, s);
    uintptr_t word = atomic_load_explicit(&s->owner_word, memory_order_acquire);
    if (word == (uintptr_t)heap && heap != &tiny_empty_heap) {
        free_local(heap, s, b);
        return;
    }
    free_by_other(s, b);
}

HS_SELDOM void tiny_report_double_free(const void *p, const tiny_slab_t *s)
{
    hs_fatal("double free of %p (%u-byte class)", p, s->block_size);
}

HS_SELDOM void tiny_report_corrupt_list(const tiny_block_t *block, unsigned block_size,
                                        const char *list)
{
    hs_fatal("corrupted %s in a %u-byte slab at %p: a write after free?", list, block_size,
             (const void *)block);
}

/* A link of a slab's list that decodes outside the slab's SuperSlab: the
 * end of the list (it decodes to the block's own address), or corrupted. */
tiny_block_t *tiny_link_out_of_slab(const tiny_block_t *block, uintptr_t decoded,
                                    unsigned block_size)
{
    if (decoded != (uintptr_t)block) tiny_report_corrupt_list(block, block_size, "free list");
    return NULL;
}

void *tiny_pop_last(tiny_slab_t *slab, tiny_block_t *block, uintptr_t decoded)
{
    slab->free = tiny_link_out_of_slab(block, decoded, slab->block_size);
    slab->used++;
    block->free_mark = 0;
    return block;
}

/* The start of the block holding p, after checking p may be freed. */
static tiny_block_t *block_of(const void *p, const tiny_slab_t *s, const char *what)
{
    if (s == &tiny_sentinel_slab)
        hs_fatal("%s of %p: hugeslab owns this SuperSlab but no slab is there", what, p);
    uintptr_t offset = (uintptr_t)p - (uintptr_t)s->start;
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    if ((uintptr_t)p < (uintptr_t)s->start || offset >= (uintptr_t)carved * s->block_size)
        hs_fatal("%s of %p: not inside any block of its %u-byte slab", what, p, s->block_size);
    uintptr_t block_start = (uintptr_t)s->start + offset / s->block_size * s->block_size;
    if (block_start != (uintptr_t)p && !atomic_load_explicit(&s->has_aligned, memory_order_relaxed))
        hs_fatal("%s of %p: points %zu bytes into a %u-byte block at %p", what, p,
                 (size_t)((uintptr_t)p - block_start), s->block_size, (void *)block_start);
    return (tiny_block_t *)block_start;
}

HS_NOINLINE void tiny_free_unusual(void *p, tiny_slab_t *s)
{
    tiny_block_t *b = block_of(p, s, "free");
    /* An aligned allocation's inner pointer: free the whole block. */
    tiny_free_slow(b, s);
}

size_t tiny_usable_size(const void *p)
{
    tiny_slab_t *s = tiny_slab_of(p);
    tiny_block_t *b = block_of(p, s, "malloc_usable_size");
    if (b->free_mark == ((uintptr_t)b ^ s->free_key))
        hs_fatal("use of %p after it was freed (%u-byte class)", p, s->block_size);
    return (size_t)((char *)b + s->block_size - (const char *)p);
}

/* The slab of one block, in use, that realloc grows, if the calling thread
 * owns it and p is its block; NULL otherwise. */
static tiny_slab_t *lone_slab_of(tiny_heap_t *heap, const void *p)
{
    tiny_slab_t *s = tiny_slab_of(p);
    if (heap == &tiny_empty_heap ||
        atomic_load_explicit(&s->owner_word, memory_order_relaxed) != (uintptr_t)heap ||
        s->capacity != 1 || (const char *)p != s->start ||
        atomic_load_explicit(&s->has_aligned, memory_order_relaxed))
        return NULL;
    return s;
}

/* Takes a lone_slab_of out of its class's lists, under the heap's flag
 * (a reclaiming thread may be taking another slab out of them): its one
 * block is in use, so no other thread frees into it and no FULL notice
 * can be pending. */
static void lone_slab_unlist(tiny_heap_t *heap, tiny_slab_t *s)
{
    unsigned cls = s->cls;
    if (s->on_full) {
        slab_list_remove(&heap->full[cls], s);
        s->on_full = false;
        atomic_store_explicit(&s->remote_free, 0, memory_order_relaxed);
    } else {
        slab_list_remove(&heap->partial[cls], s);
        if (heap->current[cls] == s) heap_set_current(heap, cls, &tiny_sentinel_slab);
    }
}

/* A program that grows an array with realloc (ls -lR, its table of files:
 * 22 KiB, 44, 88, 176, 352) had every old copy left in the pages it
 * touched: a slab of one block grows into the free units after it instead,
 * as glibc's top chunk does, and the copy is saved too. */
bool tiny_grow_in_place(void *p, size_t size)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *s = lone_slab_of(heap, p);
    if (!s) return false;
    seg_superslab_t *ss = seg_superslab_of(p);
    unsigned new_cls = tiny_class_of(size);
    size_t new_size = tiny_class_size[new_cls];
    size_t end = (size_t)(s->start - (char *)ss) + new_size;
    unsigned units = (unsigned)((end + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE) - s->first_unit;
    if (units > s->units && !seg_units_extend(ss, s->first_unit + s->units, units - s->units))
        return false;
    uint32_t was = heap_enter(heap);
    lone_slab_unlist(heap, s);
    char *slab_end =
        (char *)ss + (size_t)(s->first_unit + (units > s->units ? units : s->units)) * HS_UNIT_SIZE;
    s->block_size = (uint32_t)new_size;
    s->cls = (uint8_t)new_cls;
    s->recip = tiny_block_recip(new_size);
    s->capacity = (uint32_t)((size_t)(slab_end - s->start) / new_size);
    if (units > s->units) {
        tiny_client_area_t *area = tiny_client_area(ss);
        for (unsigned u = s->first_unit + s->units; u < s->first_unit + units; u++)
            area->head[u] = s;
        hs_count_add(&tiny.stat_bytes_in_slabs, (int64_t)((units - s->units) * HS_UNIT_SIZE));
        s->units = (uint8_t)units;
    }
    note_passing(s, ss);
    slab_list_push(&heap->partial[new_cls], s);
    heap_leave(heap, was);
    TINY_VALIDATE(s);
    return true;
}

void *tiny_lone_block_to_run(void *p, size_t size)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *s = lone_slab_of(heap, p);
    if (!s) return NULL;
    seg_superslab_t *ss = seg_superslab_of(p);
    if (!seg_lone_slab_claim(ss, s->first_unit, s->units)) return NULL;
    size_t bytes = s->block_size;
    uint32_t was = heap_enter(heap);
    lone_slab_unlist(heap, s);
    heap_leave(heap, was);
    hs_count_add(&tiny.stat_bytes_in_slabs, -(int64_t)(s->units * HS_UNIT_SIZE));
    /* The slab's descriptor lies in the slab table, which the block's
     * bytes now overwrite: nothing reads it after this. */
    return seg_lone_slab_to_run(ss, p, bytes, size);
}

/* Over-allocates by the alignment inside one block and returns the aligned
 * inner pointer; the slab is marked so free() accepts inner pointers. */
void *tiny_malloc_aligned(size_t alignment, size_t size)
{
    /* A zero-byte request still gets a byte: the aligned pointer must lie
     * inside its block, not at the end, which is the next block's start. */
    if (size == 0) size = 1;
    size_t padded = size + alignment - 16; /* blocks are already 16-aligned */
    char *p = tiny_malloc(padded);
    if (!p) return NULL;
    tiny_slab_t *s = tiny_slab_of(p);
    char *aligned = (char *)hs_align_up((uintptr_t)p, alignment);
    if (aligned != p) atomic_store_explicit(&s->has_aligned, 1, memory_order_relaxed);
    return aligned;
}

/* ---- trimming, figures, fork --------------------------------------------------- */

/* What no thread of the program would do on its own: blocks left on the
 * delayed lists of heaps whose threads are gone, and orphans whose blocks
 * all came back. Run by the purge thread and by malloc_trim. */
static bool collect_abandoned(void)
{
    /* Detached heaps may hold blocks pushed after their thread left. */
    hs_lock(&tiny.heap_lock);
    for (tiny_heap_t *h = tiny.heap_pool; h; h = h->next_free) delayed_to_slabs(h);
    hs_unlock(&tiny.heap_lock);
    return sweep_orphans();
}

void tiny_trim(void)
{
    tiny_heap_t *heap = tiny_heap_tls;
    if (heap != &tiny_empty_heap) {
        uint32_t was = heap_enter(heap);
        drain_delayed(heap);
        release_kept_empty_in(heap, NULL);
        for (unsigned i = 0; i < TINY_KEPT_SUPERSLABS; i++) heap->kept_in[i] = NULL;
        heap_leave(heap, was);
    }
    collect_abandoned();
}

HS_SELDOM void tiny_stats(tiny_stats_t *out)
{
    uint64_t *by_node = out->remote_frees_by_node;
    for (unsigned n = 0; n < HS_MAX_NODES; n++) {
        by_node[n] = 0;
        for (unsigned i = 0; i < HEAPLESS_STRIPES; i++)
            by_node[n] += atomic_load_explicit(&tiny_lists.heapless_remote_frees[i].by_node[n],
                                               memory_order_relaxed);
    }
    hs_lock(&tiny.heap_lock);
    for (tiny_heap_t *h = tiny.heap_all; h; h = h->all_next)
        for (unsigned n = 0; n < HS_MAX_NODES; n++)
            by_node[n] += atomic_load_explicit(&h->remote_frees_by_node[n], memory_order_relaxed);
    hs_unlock(&tiny.heap_lock);
    out->remote_frees = 0;
    for (unsigned n = 0; n < HS_MAX_NODES; n++) out->remote_frees += by_node[n];
    out->bytes_in_slabs = atomic_load_explicit(&tiny.stat_bytes_in_slabs, memory_order_relaxed);
    out->threads_live = atomic_load_explicit(&tiny.stat_threads_live, memory_order_relaxed);
    out->orphan_slabs = atomic_load_explicit(&tiny.stat_orphan_slabs, memory_order_relaxed);
}

void tiny_fork_prepare(void)
{
    hs_lock(&tiny.heap_lock);
    hs_lock(&tiny.orphan_lock);
}

void tiny_fork_parent(void)
{
    hs_unlock(&tiny.orphan_lock);
    hs_unlock(&tiny.heap_lock);
}

void tiny_fork_child(void)
{
    /* A thread that was reclaiming from this thread's heap did not follow. */
    atomic_store_explicit(&tiny_heap_tls->busy, 0, memory_order_relaxed);
    hs_lock_init(&tiny.orphan_lock, HS_RANK_ORPHAN);
    hs_lock_init(&tiny.heap_lock, HS_RANK_HEAP);
}

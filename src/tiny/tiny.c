/* tiny.c: tiny's state, start-up, and the slow paths of the owner's
 * malloc and free: slab geometry, creating and retiring slabs, collecting
 * remote frees, the delayed list, slabs emptied by other threads
 * (reclaim_empty), adoption of orphans, the refill path and free's slow
 * paths. They are kept in one file so that tiny_malloc_refill and
 * tiny_free_slow inline what they call, as the fast paths in tiny.h expect.
 * - A slab is on its owner's partial or full list (on_full says which), or
 *   on an orphan list, or in none while it is made or released, or while
 *   it is its class's spare (empty, heap->spare).
 * - A slab's blocks are each on its free list, its remote-free stack, a
 *   heap's delayed list, or in use; `used` counts the last three, less
 *   full_bias while on the full list.
 * - Lists and current slabs change only under the heap's busy flag. */
#include <errno.h>
#include <string.h>

#include "tiny/tiny_internal.h"

struct tiny_lists_s tiny_lists;

/* The sentinel has no blocks: as a class's current slab it sends malloc to
 * the refill path; as the head of a unit in no slab, its zero `carved` sends
 * free to tiny_free_unusual, which reports the pointer. Nothing writes it,
 * but a process's first malloc reads it: on the start-up state's page, which
 * every process writes anyway, not on a page of .bss of its own (on a kernel
 * that gives a read fault of untouched anonymous memory a page, not the
 * zero page, that read cost 4 KiB). */
HS_START_STATE tiny_slab_t tiny_sentinel_slab;

tiny_heap_t tiny_empty_heap = {
    .direct = {[0 ... TINY_DIRECT_COUNT - 1] = &tiny_sentinel_slab},
    .current = {[0 ... TINY_CLASS_COUNT - 1] = &tiny_sentinel_slab},
};

__thread tiny_heap_t *tiny_heap_tls = &tiny_empty_heap;
__thread void *tiny_fresh_block;

/* See tiny_internal.h: zero but for init_once, in .bss.hs_start. */
HS_START_STATE struct tiny_state_s tiny_state = {
    .init_once = PTHREAD_ONCE_INIT,
};

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

/* Above 8 KiB: the fewest units, up to `most`, that leave at most an
 * eighth of them after the last block (64 KiB blocks: 2 units, one block;
 * 72 KiB: 5 units, two). */
static unsigned short_units(unsigned cls, unsigned most)
{
    size_t size = tiny_class_size[cls];
    unsigned units = (unsigned)((size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    while (units < most && (size_t)units * HS_UNIT_SIZE % size * 8 > (size_t)units * HS_UNIT_SIZE)
        units++;
    return units < most ? units : most;
}

/* Units asked for slabs of each class from TINY_SHORT_CLASS_MIN on, by every
 * thread, once the slabs passed TINY_MIDDLE_HEAP_BYTES: one_thread_short
 * weighs them against the slab bytes. Not in the heap, whose fields fill a
 * page (a second one was 4 KiB more for every process), nor in the start-up
 * state: this page is written only by heaps past 8 MiB. */
static _Atomic uint64_t tiny_units_cut[TINY_CLASS_COUNT - TINY_SHORT_CLASS_MIN];

/* The classes above 8 KiB get short slabs (short_units) while more than
 * one thread has a heap. Each heap keeps partial slabs of its own
 * in every class it uses, so the blocks a full-size slab holds in reserve
 * are paid heap by heap and class by class, and a slab that other threads
 * free into waits for its owner's next refill of that class. git gc
 * --aggressive, whose two delta search threads allocate and free each
 * other's blocks of some 50 classes of 8 KiB - 1 MiB, held 221.5 MiB of
 * slabs of 8-256 KiB for 156.5 MiB of blocks at its peak, 42.1 of it on
 * the owners' free lists and 9.9 on remote-free stacks (31.8 MiB less in
 * slabs with short ones, 11.8 more in free units: 461-465 MiB peak RSS
 * against 486-494). A slab of one or two blocks is empty once they are
 * freed, and any refill of its owner's takes the notice of a remote free.
 * The condition is the process's, not the heap's: the first cost (a
 * reserve in every heap) grows with the number of heaps whatever any one
 * of them has seen, and a heap learns of remote frees only when a refill
 * collects them, after it cut the slabs they went to.
 * One thread alone gets them too, however large its heap: `git log -p`
 * keeps a few long-lived blocks in each of some 50 classes of 8-128 KiB
 * (its delta base cache), and their full-size slabs of eight blocks hold
 * MiBs of free and never-carved blocks, resident under THP (a small
 * repository: 34.8 -> 32.8 MiB peak RSS with short ones).
 * Full-size slabs once came back past 64 MiB of slabs, for a large
 * repository's sake: its free units lay in holes of 3-8 between short
 * slabs, which none of its one-block slabs of 288-416 KiB fitted (redis,
 * 12,272 commits, 6c5bd75's code: 310.1-310.4 MiB peak with the bound,
 * 312.5 without, exit_hwm). Those blocks get slabs of pages now, cut at
 * the page grain wherever they fit (sized.c), holes included, and the
 * bound no longer paid: the same history peaks as high without it, and
 * this project's (651 commits, 78 MiB of slabs at its peak) 2 MiB lower.
 * A class that has cut more than 1 / TINY_SHORT_CUT_SHARE of the
 * heap's slab bytes goes back to full-size slabs: one whose few blocks come
 * and go cut and gave back a slab at nearly every malloc
 * (bench/instructions.py, 8-64 KiB: 392.7 instructions per operation
 * against 74.2), and one that holds the heap's bulk pays the short slabs'
 * tails (tiny.h). */
static bool one_thread_short(unsigned cls, uint64_t in_slabs)
{
    return atomic_load_explicit(&tiny_units_cut[cls - TINY_SHORT_CLASS_MIN], memory_order_relaxed) *
               HS_UNIT_SIZE * TINY_SHORT_CUT_SHARE <
           in_slabs;
}

_Static_assert(TINY_SHORT_CLASS_MIN - TINY_BUSY_CLASS_MIN <= 64, "one word of busy classes");

/* Whether cls's slabs of one unit kept going to the full list (note_trip). */
static bool class_busy(unsigned cls)
{
    return cls >= TINY_BUSY_CLASS_MIN && cls < TINY_SHORT_CLASS_MIN &&
           (atomic_load_explicit(&tiny_state.busy_classes, memory_order_relaxed) >>
                (cls - TINY_BUSY_CLASS_MIN) &
            1);
}

/* Units per slab of cls. *at_end is set for a one-thread heap's short slab,
 * cut from the end of its free run (seg_units_alloc): such a slab's blocks
 * often come and go while the heap grows, and cut at the run's start it
 * left, once empty, a hole between the slabs of 528 B - 8 KiB blocks cut
 * after it, of one unit where it had three and they take two. sqlite3
 * (1 M rows) cut 16 slabs of 3 units for its passing 18 KiB blocks before
 * its heap reached 32 MiB, and held 15 such one-unit holes at its peak:
 * 49 SuperSlabs, 2 MiB above its 48 with full-size slabs of 4 units. Cut
 * from the end, a slab goes back next to the free units the heap grows
 * into. */
static unsigned slab_units(unsigned cls, bool *at_end)
{
    *at_end = false;
    if (seg_small_heap()) return fewest_units(cls);
    uint64_t in_slabs = atomic_load_explicit(&tiny_state.stat_bytes_in_slabs, memory_order_relaxed);
    if (tiny_class_size[cls] > TINY_LINEAR_MAX && in_slabs < TINY_MIDDLE_HEAP_BYTES &&
        !class_busy(cls))
        return cls < TINY_SHORT_CLASS_MIN ? fewest_units(cls) : short_units(cls, class_units(cls));
    unsigned units = class_units(cls);
    if (cls < TINY_SHORT_CLASS_MIN) return units;
    if (atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) > 1 ||
        (*at_end = one_thread_short(cls, in_slabs)))
        units = short_units(cls, units);
    hs_count_add(&tiny_units_cut[cls - TINY_SHORT_CLASS_MIN], units);
    return units;
}

/* The fewest units a slab of cls may have when the SuperSlabs in use have
 * no room for slab_units in a row: those that hold 8 blocks. Free units
 * lie scattered once slabs of one and two units come and go, and a new
 * SuperSlab for want of two in a row is 2 MiB more in RSS (Larson-style
 * rounds mapped a fifth one with 40 units free in the other four). */
static unsigned fallback_units(unsigned cls, unsigned most)
{
    size_t size = tiny_class_size[cls];
    /* Above 8 KiB, where class_units' slab is already at most eight
     * blocks: short_units. The full slab (16 units for 64 KiB blocks)
     * needed a run that the SuperSlabs in use seldom had once blocks of
     * some 50 classes came and went: git gc --aggressive mapped new
     * SuperSlabs while 68 of those in use had 8-15 units free. */
    if (size > 8 * HS_KiB) return short_units(cls, most);
    unsigned units = (unsigned)((8 * size + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE);
    return units < most ? units : most;
}

static bool release_remote_emptied(void);
static bool heap_owner_gone(uintptr_t owner);
static bool heap_sparse(void);
static bool reclaim_emptied_work(void);

static void client_init(seg_superslab_t *ss)
{
    tiny_client_area_t *area = tiny_client_area(ss);
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u++) area->head[u] = &tiny_sentinel_slab;
}

static void init_tiny(void)
{
    hs_once_enter(HS_RANK_INIT_TINY);
    hs_lock_init(&tiny_state.heap_lock, HS_RANK_HEAP);
    hs_lock_init(&tiny_state.orphan_lock, HS_RANK_ORPHAN);
    seg_init();
    seg_set_client_init(client_init);
    seg_set_client_reclaim(release_remote_emptied);
    seg_set_client_owner_gone(heap_owner_gone);
    seg_set_client_sparse(heap_sparse);
    seg_set_idle_work(tiny_collect_abandoned);
    seg_set_emptied_work(reclaim_emptied_work);
    int64_t crowd = hs_option(HS_OPT_CROWD_THREADS);
    tiny_state.crowd_threads = crowd == 0 ? UINT32_MAX : (uint32_t)crowd;
    pthread_key_create(&tiny_state.heap_key, tiny_thread_exit);
    hs_once_leave(HS_RANK_INIT_TINY);
}

void tiny_init(void) { pthread_once(&tiny_state.init_once, init_tiny); }

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
    slab->recycled = false;
    atomic_store_explicit(&slab->carved, end, memory_order_relaxed);
    atomic_store_explicit(&slab->key_limit, tiny_key_limit(end, slab->recip, size),
                          memory_order_relaxed);
}

/* Tells segment/ of a slab of one block of TINY_PASSING_MIN or more, while
 * the heap is on base pages. */
void tiny_note_passing(const tiny_slab_t *slab, seg_superslab_t *ss)
{
    if (slab->capacity == 1 && slab->block_size >= TINY_PASSING_MIN &&
        atomic_load_explicit(&seg_small_heap_deferred, memory_order_relaxed))
        seg_small_heap_passing(ss, slab->first_unit, slab->units);
}

/* The owner under which heap asks segment/ for units (seg_units_alloc):
 * the heap itself, with its home, once it has cut TINY_HOME_UNITS_CUT units
 * and while another thread has a heap too; its slabs then come from
 * SuperSlabs of its own. Two threads whose slabs shared SuperSlabs
 * (bench_mt larson --handoff-every=0) each had its slabs in both, and the
 * SuperSlab where it keeps its empty ones (kept_in) flipped between them:
 * 18,053 slabs cut in a second against 2,030 with a SuperSlab each, and
 * each cut took units last written on the other thread's core. Untagged
 * before: threads that allocate little share SuperSlabs, where one each
 * would be a 2 MiB huge page per thread (bench_memory larson, whose 2 and
 * 8 threads hold little each, peaked 3-12 MiB higher with a SuperSlab of
 * their own from their first slab). Untagged alone: one thread has nothing
 * to share, and its slabs stay where best fit puts them. Untagged for a slab
 * of more than TINY_HOME_SLAB_UNITS_MAX units, which best fit places
 * anywhere: the churn is of small slabs, and git gc --aggressive (two
 * threads, slabs of up to 16 units) peaked at 874 and 915 MiB with every
 * slab tagged, against 834-896 untagged (841 and 878 as landed). At most
 * as many heaps as the process has CPUs ask as owners at a time (an owner
 * slot each, tiny_take_owner_slot): threads beyond that share cores, and
 * so their caches, anyway, and each owner's SuperSlabs are huge pages of
 * their own (bench_mt larson --handoff-every=0 at 16 threads on 2 CPUs
 * peaked at 49.7 and 51.6 MiB with every heavy heap an owner, against 31.5
 * and 31.6 with none, and 31.5 and 31.3 with two slots). Nor before the
 * heap has gone on cutting for TINY_HOME_AGE_MS: bench_memory larson's
 * threads live one round, a few milliseconds, and each cut a SuperSlab's
 * worth in it; tagged then, they peaked at 8.3 MiB (median of 12 runs,
 * 8.1-10.1), against 7.9 (7.7-8.3) with the wait (glibc 8.1, 7.2-8.2). A
 * thread at work for seconds is tagged as before, 50 ms late. */
static seg_owner_t slab_owner(tiny_heap_t *heap, unsigned units)
{
    const seg_owner_t none = {0, NULL, false};
    if (heap->units_cut < TINY_HOME_UNITS_CUT) {
        heap->units_cut += units;
        return none;
    }
    if (atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) < 2) {
        heap->home = NULL;
        return none;
    }
    if (!heap->home_aged) {
        uint64_t now = seg_now_ms();
        if (!heap->home_after_ms) heap->home_after_ms = now + TINY_HOME_AGE_MS;
        if (now < heap->home_after_ms) return none;
        heap->home_aged = true;
    }
    if (units > TINY_HOME_SLAB_UNITS_MAX || (!heap->owner_slot && !tiny_take_owner_slot(heap)))
        return none;
    return (seg_owner_t){(uintptr_t)heap, heap->home, false};
}

/* Whether the heap tagged owner has no thread (segment/'s callback, with a
 * node's lock held): its SuperSlabs may then be another heap's. Heaps are
 * never unmapped, so the tag can be read as one. */
static bool heap_owner_gone(uintptr_t owner)
{
    return !atomic_load_explicit(&((const tiny_heap_t *)owner)->attached, memory_order_relaxed);
}

/* A heap is sparse while its slabs' carved blocks (carve() cuts a page at
 * a time, so about the pages its slabs touched) fill less than this many
 * sixteenths of their units. At the SuperSlab mappings of bench_mt larson
 * --handoff-every=0 at 8 and 16 threads the threads' slabs were 12-48 %
 * carved; at git gc --aggressive's, the delta search threads' 35-43 % while
 * each had 25-34 slabs, then 64-95 %. With three quarters, 9 of pack-objects'
 * 98 SuperSlabs were base pages, filled whole (6,553 faults against 2,092);
 * with three eighths, one (2,763), and larson at 16 threads peaked at
 * 22.5-25.7 MiB (median 23.5 of 9 runs) against 31.4-35.6 (median 31.6;
 * HUGESLAB_BACKING=base: 21.0-21.2). */
#define TINY_SPARSE_SIXTEENTHS 6
/* Slabs heap_sparse walks at most: a heap of more is no small one, and
 * counts as dense. */
#define TINY_SPARSE_SLABS_MAX 4096

/* Whether the heap's slabs are sparse (heap_sparse), from those on its
 * partial and full lists (an empty spare adds nothing to either sum).
 * A heap with none is: the slab it is about to cut starts with one page
 * carved. Counted dense, a thread's first slabs went to huge pages
 * whenever the SuperSlab for them was a new one: 1,000 threads holding 64
 * blocks of 16 B - 2.2 KiB each (68 MiB in all), a slab of one unit a
 * class, mapped 860 SuperSlabs, 339 of them huge pages, 801 MiB resident
 * (356-632 in three more runs); sparse, 196-201 MiB (glibc 79, mimalloc
 * 221). Walked under the heap's flag, held already inside a refill. */
HS_APART_LATE HS_NOINLINE static bool slabs_sparse(tiny_heap_t *heap)
{
    uint64_t carved = 0, units = 0;
    unsigned slabs = 0;
    uint32_t was = heap_enter(heap);
    for (unsigned i = 0; i < 2 * TINY_CLASS_COUNT; i++) {
        tiny_slab_t *s = i < TINY_CLASS_COUNT ? heap->partial[i] : heap->full[i - TINY_CLASS_COUNT];
        for (; s && slabs < TINY_SPARSE_SLABS_MAX; s = s->next, slabs++) {
            carved +=
                (uint64_t)atomic_load_explicit(&s->carved, memory_order_relaxed) * s->block_size;
            units += s->units;
        }
    }
    heap_leave(heap, was);
    return units == 0 || (slabs < TINY_SPARSE_SLABS_MAX &&
                          carved * 16 < units * HS_UNIT_SIZE * TINY_SPARSE_SIXTEENTHS);
}

/* segment/'s question when it maps a SuperSlab for the calling thread
 * (seg_set_client_sparse). Only while several threads have heaps: one
 * thread's heap that has outgrown the small heap fills its slabs, and a
 * process of one thread then never runs the apart text for it. A thread
 * refilling a crowd heap maps for that heap's slabs, which are judged:
 * judged by the thread's own heap, empty or absent, they were sparse or
 * dense by chance. */
static bool heap_sparse(void)
{
    tiny_heap_t *heap = tiny_crowd_holds ? tiny_crowd_held : tiny_heap_tls;
    return heap != &tiny_empty_heap &&
           atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) > 1 &&
           slabs_sparse(heap);
}

static tiny_slab_t *slab_create(tiny_heap_t *heap, unsigned cls)
{
    size_t size = tiny_class_size[cls];
    bool at_end, fresh;
    unsigned units = slab_units(cls, &at_end), first;
    seg_owner_t owner = slab_owner(heap, units);
    seg_superslab_t *ss = seg_units_alloc(heap->node, &owner, &units, fallback_units(cls, units),
                                          size, at_end, &first, &fresh);
    if (!ss) return NULL;
    /* Units in another heap's SuperSlab (its own are full), or for a
     * larger slab, leave the home as it was. */
    if (owner.owned) heap->home = ss;
    tiny_client_area_t *area = tiny_client_area(ss);
    tiny_slab_t *slab = &area->unit[first].slab;
    char *start = (char *)ss + (first == 0 ? SEG_FIRST_SLAB_BYTE : first * HS_UNIT_SIZE);
    char *end = (char *)ss + (first + units) * HS_UNIT_SIZE;
    uint32_t capacity = (uint32_t)((size_t)(end - start) / size);
    HS_ASSERT(capacity >= 1);

    slab->units = (uint8_t)units;
    slab->first_unit = (uint8_t)first;
    slab->sized = 0;
    tiny_slab_setup(slab, heap, start, size, capacity, cls);
    tiny_note_passing(slab, ss);
    carve(slab);
    /* The block refill hands out next (the free list starts at start). */
    tiny_fresh_block = fresh ? start : NULL;
    /* Publish last: a free of a pointer into these units must not find the
     * slab before its fields are set. */
    for (unsigned u = first; u < first + units; u++) area->head[u] = slab;
    hs_count_add(&tiny_state.stat_bytes_in_slabs, (int64_t)(units * HS_UNIT_SIZE));
    return slab;
}

void tiny_slab_release(tiny_slab_t *slab)
{
    if (HS_UNLIKELY(slab->sized)) {
        tiny_sized_release(slab);
        return;
    }
    seg_superslab_t *ss = seg_superslab_of(slab);
    tiny_client_area_t *area = tiny_client_area(ss);
    unsigned first = slab->first_unit, units = slab->units;
    atomic_store_explicit(&slab->owner_word, 0, memory_order_relaxed);
    for (unsigned u = first; u < first + units; u++) area->head[u] = &tiny_sentinel_slab;
    hs_count_add(&tiny_state.stat_bytes_in_slabs, -(int64_t)(units * HS_UNIT_SIZE));
    seg_units_free(ss, first, units);
}

/* ---- collecting remote frees into the free list (owner only) ----------------- */

/* Puts the blocks of a taken remote word on the free list. The word
 * carries the list's length, so the list itself (blocks last written by
 * other threads' cores) is not walked; our own free list is walked to find
 * its end, and the refill path only collects into an empty one. */
void tiny_append_remote_word(tiny_slab_t *s, uintptr_t word)
{
    tiny_block_t *list = (tiny_block_t *)(word & TINY_REMOTE_PTR_MASK);
    uint32_t n = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT);
    if (!list) return;
    s->recycled = true;
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

/* A slab of one unit of the 528 B - 8 KiB classes goes to the full list
 * (move_to_full): returns the blocks to leave free before it comes back,
 * `keep` as for any slab but in a busy class. Such slabs hold 4-62 blocks;
 * in a program that frees and allocates blocks of the class all the time
 * (bench_memory larson) each one came back from the full list at every
 * block or two, and every trip was a refill and a move between the lists
 * (about 190 instructions and four or five mispredicted branches): 509,805
 * refills where two-unit slabs took 89,540, and a quarter more time. Once
 * one slab has made trips for a TINY_BUSY_TRIPS_SHARE-th of its blocks,
 * while the heap is past its first SuperSlab, its class is busy: new slabs
 * get full size (slab_units) and the one-unit slabs left come back only
 * with a quarter of their blocks free, so that they serve a run of blocks
 * at each trip and drain. Counted in the slab, marked for the process: a
 * count in the heap would take a second page of it, and a shared counter
 * bumped at every trip is a line the threads fight over. Only while two
 * threads or more have a heap: `git log -p` of this repository, one
 * thread, made a class busy too, and its two-unit slabs took a SuperSlab
 * more (32,712 -> 34,824 KiB peak); a larson thread's slabs fill with
 * blocks another thread frees into them. */
HS_COLD static uint32_t note_trip(tiny_slab_t *s, uint32_t keep)
{
    if (s->cls >= TINY_SHORT_CLASS_MIN || seg_small_heap() ||
        atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) < 2)
        return keep;
    uint64_t bit = (uint64_t)1 << (s->cls - TINY_BUSY_CLASS_MIN);
    /* Never fewer than keep: a slab of a SuperSlab's first unit, which the
     * header and slab table shorten to 24,000 bytes, holds two or three
     * blocks of 6,544-8,192 B, a quarter of which is none, and with none
     * to wait for, `used` is 0 on the full list: the owner's frees never
     * bring the slab back, nor its blocks, and it kept its SuperSlab. */
    if (atomic_load_explicit(&tiny_state.busy_classes, memory_order_relaxed) & bit)
        return s->capacity / 4 > keep ? s->capacity / 4 : keep;
    if (s->trips * TINY_BUSY_TRIPS_SHARE >= s->capacity)
        atomic_fetch_or_explicit(&tiny_state.busy_classes, bit, memory_order_relaxed);
    return keep;
}

/* Moves a slab without room to the full list. Returns false (and leaves it
 * on the partial list, with room) when remote frees arrived meanwhile.
 * The slab comes back once a thirty-second of it is free again: back at
 * the first free block, it would be refilled from one block at a time and
 * flip between the lists on every other malloc. Not later: a program that
 * frees blocks here and there and allocates others of the class leaves
 * what is free in full slabs unused while new slabs are made (at an
 * eighth, bench_memory kv peaked 12 MiB higher: 257.7 MiB against glibc's
 * 246.4). But a slab that has made TINY_WIDE_TRIPS trips waits for a
 * quarter while other threads have heaps too: in a steady state where
 * blocks of the class come and go at random (Larson's rounds), a
 * thirty-second brought each slab back for a block or two, and each trip
 * is a refill and two moves between the lists. kv's peak did not move with
 * it (249,544 KiB); in one thread it cost sqlite3 a SuperSlab, and one
 * thread stays at a thirty-second. The owner's own frees into the slab
 * stay on free's fast path, which knows nothing of lists: `used` is biased
 * so that it reaches 0, the one case the fast path hands on, at that
 * `keep` (full_bias holds the rest). Remote frees notify through the
 * delayed list (tiny_free_remote). */
static bool move_to_full(tiny_heap_t *heap, tiny_slab_t *s)
{
    uintptr_t word =
        atomic_exchange_explicit(tiny_remote_word(s), TINY_REMOTE_FULL, memory_order_acq_rel);
    if (word) {
        tiny_append_remote_word(s, word);
        atomic_fetch_and_explicit(tiny_remote_word(s), ~TINY_REMOTE_FULL, memory_order_release);
        return false;
    }
    /* s heads the partial list: the refill's walk moved the slabs before
     * it. Taken off as the head, without slab_list_remove's tests. */
    HS_ASSERT(heap->partial[s->cls] == s && !s->prev);
    heap->partial[s->cls] = s->next;
    if (s->next) s->next->prev = NULL;
    slab_list_push(&heap->full[s->cls], s);
    if (s->trips < UINT8_MAX) s->trips++;
    bool wide = s->trips >= TINY_WIDE_TRIPS &&
                atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) > 1;
    uint32_t keep = s->capacity >> (wide ? 2 : 5);
    if (keep == 0) keep = 1;
    if (s->units == 1 && s->block_size > TINY_LINEAR_MAX) keep = note_trip(s, keep);
    if (s->used > keep) {
        s->full_bias = s->used - keep;
        s->used = keep;
    }
    s->on_full = true;
    return true;
}

/* Takes a slab off the full list: its count unbiased, remote frees sent to
 * the slab again. */
HS_INLINE void move_to_partial(tiny_heap_t *heap, tiny_slab_t *s)
{
    s->used += s->full_bias;
    s->full_bias = 0;
    s->on_full = false;
    atomic_fetch_and_explicit(tiny_remote_word(s), ~TINY_REMOTE_FULL, memory_order_acq_rel);
    slab_list_remove(&heap->full[s->cls], s);
    slab_list_push(&heap->partial[s->cls], s);
    /* Frees that raced with the FULL bit went to the delayed list; any left
     * on the slab itself are collected at the next refill. */
}

/* Out of line, as tiny_release_kept_empty_in: slab_now_empty, which calls both,
 * then needs no registers saved on its common path. as_spare: the slab
 * becomes its class's spare (spare_wanted) instead of going back. */
HS_NOINLINE static void release_empty(tiny_heap_t *heap, tiny_slab_t *s, bool as_spare)
{
    uint32_t was = heap_enter(heap);
    if (heap->current[s->cls] == s) heap_set_current(heap, s->cls, &tiny_sentinel_slab);
    HS_ASSERT(!s->on_full);
    slab_list_remove(&heap->partial[s->cls], s);
    if (as_spare) {
        heap->spare[s->cls] = s;
        heap->spares_held++;
    }
    heap_leave(heap, was);
    /* An empty slab may still carry the FULL bit if it went empty through
     * the delayed list; nothing can be pushed on it any more (used == 0). */
    atomic_store_explicit(tiny_remote_word(s), 0, memory_order_relaxed);
    if (!as_spare) tiny_slab_release(s);
}

/* Releases the heap's spares that lie in ss (every one when ss is NULL);
 * true when there was one. */
static bool release_spares_in(tiny_heap_t *heap, const seg_superslab_t *ss)
{
    /* Tested here: a heap without one (every short command's) then runs
     * no seldom text. */
    bool released = heap->sized_spare && tiny_sized_spare_release(heap, ss);
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT && heap->spares_held; cls++) {
        tiny_slab_t *s = heap->spare[cls];
        if (!s || (ss && seg_superslab_of(s) != ss)) continue;
        heap->spare[cls] = NULL;
        heap->spares_held--;
        tiny_slab_release(s);
        released = true;
    }
    return released;
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
 * the calling thread's own heap is looked at under its busy flag
 * (seg_units_alloc runs inside its refill), and, while threads outnumber
 * CPUs, the other heaps too (tiny_reclaim_from_others). */
/* The heap's slabs on its partial lists whose blocks in use all wait on
 * their remote-free stacks go back, but the current ones unless
 * `current_too`; under the heap's flag. True when one did. */
static bool release_all_remote_in(tiny_heap_t *heap, bool current_too)
{
    bool released = false;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        for (tiny_slab_t *s = heap->partial[cls], *next; s; s = next) {
            next = s->next;
            uintptr_t word = atomic_load_explicit(tiny_remote_word(s), memory_order_relaxed);
            if ((s == heap->current[cls] && !current_too) ||
                (word >> TINY_REMOTE_COUNT_SHIFT) != s->used)
                continue;
            /* Every block in use is on the stack: none can be freed to s
             * meanwhile, so collect() leaves used at 0. */
            collect(s);
            if (s->used != 0) continue;
            release_empty(heap, s, false);
            released = true;
        }
    }
    return released;
}

HS_COLD static bool release_remote_emptied(void)
{
    tiny_heap_t *heap = tiny_heap_tls;
    if (heap == &tiny_empty_heap) return false;
    uint32_t was = heap_enter(heap);
    /* Spares first: kept for speed, never at the cost of a SuperSlab. */
    bool released = release_spares_in(heap, NULL);
    if (release_all_remote_in(heap, false)) released = true;
    heap_leave(heap, was);
    if (atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) > 1 &&
        tiny_reclaim_from_others(heap))
        released = true;
    return released;
}

/* Releases the heap's empty current slabs and spares that lie in ss (every
 * one when ss is NULL). */
HS_NOINLINE void tiny_release_kept_empty_in(tiny_heap_t *heap, const seg_superslab_t *ss)
{
    release_spares_in(heap, ss);
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        uint64_t bits = heap->current_classes[cls / 64] >> (cls % 64);
        if (!bits) {
            cls |= 63; /* none above in this word */
            continue;
        }
        cls += (unsigned)__builtin_ctzll(bits);
        tiny_slab_t *s = heap->current[cls];
        if (s == &tiny_sentinel_slab || (ss && seg_superslab_of(s) != ss)) continue;
        /* A current slab is never on the full list: collect() applies. */
        collect(s);
        if (s->used == 0) release_empty(heap, s, false);
    }
}

/* Largest slab kept as a spare: one unit, the slab of every class up to
 * 512 B. With two (classes up to 1 KiB), git log -p of redis peaked
 * 1.3 MiB higher (304.6 and 304.9 MiB, against 303.3 and 303.6). A busy
 * class's slabs (class_busy: of two units, only where several threads have
 * heaps) may be spares too. */
#define TINY_SPARE_UNITS_MAX 1

/* An empty slab that is not its class's current one is kept as the class's
 * next new slab (heap->spare) rather than released, when the class has no
 * spare yet and the slab lies in the SuperSlab where the heap keeps its
 * empty current slabs (kept_in[0]), which a program that goes to sleep
 * leaves resident anyway. A working set whose classes' counts of blocks in
 * use go up and down empties such slabs and needs new ones soon after:
 * bench_mt larson --handoff-every=0 at 2 threads cut and released 255
 * slabs per million operations, each a trip to the segment layer under
 * its pool's lock and a carve, and the units went to whichever thread
 * asked next, whose core then fetched their lines from the other one's.
 * With a spare per class: 334 -> 387 M operations per second (mimalloc
 * 2.0.9: 505), with the two vCPUs on cores that share no cache. */
static bool spare_wanted(const tiny_heap_t *heap, const tiny_slab_t *s)
{
    return !heap->spare[s->cls] && (s->units <= TINY_SPARE_UNITS_MAX || class_busy(s->cls)) &&
           seg_superslab_of(s) == heap->kept_in[0];
}

/* A slab of the heap's whose last block came back. One that is not its
 * class's current slab goes back to its SuperSlab at once (but for a
 * spare, above), so whole SuperSlabs fall idle for the purge thread even
 * while this thread sleeps.
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
    if (HS_UNLIKELY(s->sized)) {
        tiny_sized_emptied(heap, s);
        return;
    }
    if (heap->current[s->cls] != s) {
        release_empty(heap, s, spare_wanted(heap, s));
        return;
    }
    /* kept_in's entries in use come first, the most recent at 0: the
     * common case (a small working set, one class emptied again) returns
     * here. Else find ss, or the first free entry; when neither exists,
     * the oldest (last) is evicted. */
    seg_superslab_t *ss = seg_superslab_of(s), **kept = heap->kept_in, *evicted = NULL;
    if (kept[0] == ss) return;
    /* A heap with SuperSlabs of its own keeps its empty slabs in its home
     * only: the others go back, and its classes move home as they empty.
     * Else a heap whose first slabs lay in a SuperSlab shared with other
     * heaps moved kept_in back and forth between the two, and each move
     * released the empty slabs kept in the other. */
    if (heap->home && ss != heap->home) {
        release_empty(heap, s, false);
        return;
    }
    unsigned i = 1;
    while (i < TINY_KEPT_SUPERSLABS && kept[i] && kept[i] != ss) i++;
    if (i == TINY_KEPT_SUPERSLABS) evicted = kept[--i];
    /* ss becomes the most recent: the entries before i move back. */
    for (; i > 0; i--) kept[i] = kept[i - 1];
    kept[0] = ss;
    if (evicted) tiny_release_kept_empty_in(heap, evicted);
}

static uint64_t one_block_bit(unsigned cls)
{
    return (uint64_t)1 << (cls - TINY_ONE_BLOCK_CLASS_MIN);
}

/* Blocks from which on a slab of one block cut while the heap is small
 * (make_room_for_one_block) is left out of its class's current slab, so
 * that the free of its block releases it (slab_now_empty), and its pages go
 * to the kernel (seg_units_free). A class that recurs keeps its empty slab
 * current, or a loop that allocates and frees such a block would cut a
 * slab and give its pages back at each turn. sort -R kept the 9 written
 * pages (36 KiB) of its 832 KiB buffer to its exit, in an empty slab kept
 * as its class's current one; the buffers `python3 -c pass` reads its
 * modules into (46-118 KB, a class each, once) kept 250 KiB of its peak.
 * Not lower: at 32 KiB git log -p of redis peaked 2 MiB higher. */
#define TINY_GIVE_BACK_MIN ((size_t)48 << 10)

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
    /* The one-block classes with a current slab, less those that recur. A
     * walk of every class's current slab was 407 of a malloc's 1,336
     * instructions where blocks of 32-64 KiB come and go in a small heap. */
    uint64_t candidates = heap->current_classes[1] & ~heap->one_block_recurring;
    while (candidates) {
        unsigned c = TINY_ONE_BLOCK_CLASS_MIN + (unsigned)__builtin_ctzll(candidates);
        candidates &= candidates - 1;
        tiny_slab_t *s = heap->current[c];
        /* The sentinel's capacity is 0. */
        if (s->capacity != 1) continue;
        /* A slab on the full list has no room to give, and collect() would
         * take its FULL bit: cls's own current slab is one, moved there by
         * refill and not replaced yet. */
        if (s->on_full) continue;
        collect(s);
        if (s->used != 0) continue;
        /* Its pages may go back here (units_give_back: madvise) under this
         * thread's busy flag, held through the refill. No other thread
         * waits for that flag: reclaim_empty only tries it, and a free that
         * finds it held goes to the slab's remote-free stack as usual;
         * heap_enter, which waits, runs on the heap's own thread only. The
         * system call delays this thread alone. */
        release_empty(heap, s, false);
        heap->one_block_released |= one_block_bit(c);
    }
}

/* move_to_partial under the heap's flag, out of line as release_empty,
 * and what follows it: a tail call from used_reached_zero, which then
 * saves no registers, and move_to_partial inlined (larson makes 700,000
 * of these trips; the two calls and their frames were 20 instructions of
 * each). The look at `used` stays under the flag: on the partial list with
 * no block in use, the slab is one that another thread's reclaim_empty
 * may release, and its units another heap's slab at once (a thread
 * sanitizer run of stress_test saw a read of `used` here race with the
 * new slab's write of it); slab_now_empty would then have released it a
 * second time. */
HS_NOINLINE static void back_to_partial(tiny_heap_t *heap, tiny_slab_t *s)
{
    uint32_t was = heap_enter(heap);
    move_to_partial(heap, s);
    if (s->used == 0) slab_now_empty(heap, s);
    heap_leave(heap, was);
}

/* The owner's `used` of s reached 0: a slab on the full list has had its
 * thirty-second freed (move_to_full), any other is empty. */
static void used_reached_zero(tiny_heap_t *heap, tiny_slab_t *s)
{
    if (s->on_full) {
        back_to_partial(heap, s);
        return;
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
    if (tiny_used_fall(s) == 0) used_reached_zero(heap, s);
}

/* The calling thread's counter of frees into node's blocks while it has no
 * heap: its stripe is a hash of a thread-local address (threads' TLS
 * blocks differ in their high bits). */
static _Atomic uint64_t *heapless_count(unsigned node)
{
    uint64_t h = (uint64_t)(uintptr_t)&tiny_heap_tls * 0x9e3779b97f4a7c15ULL;
    unsigned stripe = (unsigned)(h >> (64 - 4));
    if (node == 0) return &tiny_state.heapless_node0[stripe].count;
    return &tiny_lists.heapless_remote_frees[stripe].by_node[node - 1];
}
_Static_assert(HEAPLESS_STRIPES == 16, "heapless_count takes 4 bits");

/* Counts a program's free of another thread's block, in the freeing
 * thread's heap: a shared counter would be a cache line that every freeing
 * thread fights over. A thread without a heap (one that only frees) is not
 * given one for this: it counts in its stripe of the shared counters. */
static void count_remote_free(tiny_heap_t *me, tiny_slab_t *s)
{
    unsigned node = seg_superslab_of(s)->memory_node;
    if (HS_LIKELY(me != &tiny_empty_heap)) {
        _Atomic uint64_t *c = &me->remote_frees_by_node[node];
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else {
        hs_count_add(heapless_count(node), 1);
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
void tiny_free_remote(tiny_slab_t *s, tiny_block_t *b)
{
    uintptr_t old = atomic_load_explicit(tiny_remote_word(s), memory_order_relaxed);
    for (;;) {
        if (old & TINY_REMOTE_FULL) {
            /* The owner parked this slab on its full list and does not look
             * at it: tell it, once. Clearing the bit sends later frees to
             * the slab again; this block goes to the owner heap itself,
             * which never goes away, so the slab is not touched after the
             * block is published. */
            if (!atomic_compare_exchange_weak_explicit(tiny_remote_word(s), &old,
                                                       old & ~TINY_REMOTE_FULL,
                                                       memory_order_acq_rel, memory_order_relaxed))
                continue;
            /* The owner that set the bit, or a later one: read after the
             * exchange, not before. A word that was FULL alone at both
             * reads may have been another owner's bit at the second (the
             * slab orphaned and adopted between them, and parked again):
             * the notice went to the first owner, and the slab stayed on
             * the new owner's full list with its bit cleared, waiting for
             * that owner's own frees, or its exit. b, still counted in
             * `used`, keeps the slab from going meanwhile. */
            tiny_heap_t *owner =
                (tiny_heap_t *)atomic_load_explicit(&s->owner_word, memory_order_acquire);
            if (!owner) {
                /* Orphaned meanwhile, its bit cleared by us or the abandon:
                 * b goes on the stack, which the orphan's adopter or its
                 * release collects. */
                old = atomic_load_explicit(tiny_remote_word(s), memory_order_relaxed);
                continue;
            }
            /* Read before the block is published: the owner may take the
             * notice, and release the slab, at once. */
            atomic_fetch_add_explicit(&seg_units_returning, s->units, memory_order_relaxed);
            delayed_push_chain(owner, b, b);
            return;
        }
        b->link = tiny_link(b, (tiny_block_t *)(old & TINY_REMOTE_PTR_MASK), s->free_key);
        uintptr_t count = (old >> TINY_REMOTE_COUNT_SHIFT) + 1;
        if (atomic_compare_exchange_weak_explicit(tiny_remote_word(s), &old,
                                                  count << TINY_REMOTE_COUNT_SHIFT | (uintptr_t)b,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}
/* The block after b on a heap's delayed list (blocks of any slab), or NULL.
 * A link that decodes to anything but a block of a SuperSlab of slabs that
 * is marked free was written after b was freed. */
tiny_block_t *tiny_next_delayed(const tiny_block_t *b)
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
        tiny_free_remote(s, b);
    }
}

void tiny_drain_delayed(tiny_heap_t *heap)
{
    if (!atomic_load_explicit(&heap->delayed, memory_order_relaxed)) return;
    tiny_block_t *b = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    atomic_store_explicit(&heap->reclaim_notices, 0, memory_order_relaxed);
    long units = 0;
    while (b) {
        tiny_block_t *next = tiny_next_delayed(b);
        units += tiny_slab_of(b)->units; /* before the block may empty its slab */
        free_marked_block(heap, b);
        b = next;
    }
    returning_taken(units);
}

/* ---- slabs emptied by other threads while their owner sleeps ------------------ */

/* Whether every block s handed out waits on its remote-free stack: the
 * owner's blocks are on its free list or never carved, so nothing of s is
 * in use. Read under the owner's busy flag by another thread, for a slab
 * that is on the partial list and not current, whose owner may still be
 * in free's fast path:
 * - `used` only falls meanwhile (the owner pops from current slabs only),
 *   and the stack only grows (only the owner collects it, under the flag);
 *   so a count read first that equals `used` read second means both were
 *   equal when `used` was read, and no block of s is in use from then on:
 *   no free into s can follow, the owner's or anyone's;
 * - the owner's free lowers `used` after its block is on the free list, and
 *   that is its last write to s (tiny_used_fall): once the fall shows here,
 *   the owner is done with s.
 * A slab whose count is 0 is left to its owner: its own last free, which
 * found `used` at 0, is on its way to slab_now_empty. */
static bool all_blocks_remote(const tiny_slab_t *s)
{
    uintptr_t word = atomic_load_explicit(tiny_remote_word(s), memory_order_acquire);
    uint32_t remote = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT);
    return remote != 0 && remote == __atomic_load_n(&s->used, __ATOMIC_ACQUIRE);
}

/* Heaps a thread's look (reclaim_all_remote with `me`) visits at most,
 * from where the last one stopped (reclaim_cursor, a heap: they are never
 * unmapped), round the list of every heap. Each look visited them all: a
 * thousand threads alive at once, each cutting 64 slabs while others
 * mapped SuperSlabs, spent 35 % of their CPU time in these walks
 * (bench_memory crowd, perf). The purge thread's look visits every heap. */
#define TINY_RECLAIM_HEAPS_MAX 64
static _Atomic(tiny_heap_t *) reclaim_cursor;

/* The look of tiny_reclaim_from_others and tiny_reclaim_emptied: releases
 * up to TINY_RECLAIM_MAX slabs, not current, on the partial lists of heaps
 * other than me (NULL: the purge thread's call), whose blocks in use all
 * wait on their remote-free stacks. Returns how many, and sets
 * *passed_over (when given) if a heap's flag was held by another. */
HS_APART_LATE static unsigned reclaim_all_remote(tiny_heap_t *me, bool *passed_over)
{
    tiny_slab_t *taken[TINY_RECLAIM_MAX];
    unsigned n = 0, visits = 0;
    hs_lock(&tiny_state.heap_lock);
    tiny_heap_t *all = tiny_state.heap_all; /* heaps are prepended, never unlinked */
    hs_unlock(&tiny_state.heap_lock);
    tiny_heap_t *h = all;
    if (me) {
        tiny_heap_t *from = atomic_load_explicit(&reclaim_cursor, memory_order_relaxed);
        if (from) h = from;
    }
    for (; h && n < TINY_RECLAIM_MAX; h = h->all_next) {
        if (me && visits++ == TINY_RECLAIM_HEAPS_MAX) break;
        if (h == me || !atomic_load_explicit(&h->attached, memory_order_relaxed)) continue;
        if (!heap_try_enter_other(h)) {
            if (passed_over) *passed_over = true;
            continue;
        }
        for (unsigned c = 0; c < TINY_CLASS_COUNT && n < TINY_RECLAIM_MAX; c++)
            for (tiny_slab_t *s = h->partial[c], *next; s && n < TINY_RECLAIM_MAX; s = next) {
                next = s->next;
                if (s == h->current[c] || !all_blocks_remote(s)) continue;
                slab_list_remove(&h->partial[c], s);
                taken[n++] = s;
            }
        heap_leave(h, 0);
    }
    /* Past the last heap (NULL), the next look starts again at the first. */
    if (me) atomic_store_explicit(&reclaim_cursor, h, memory_order_relaxed);
    /* Out of every list, no block in use: nothing refers to them. */
    for (unsigned i = 0; i < n; i++) {
        atomic_store_explicit(tiny_remote_word(taken[i]), 0, memory_order_relaxed);
        tiny_slab_release(taken[i]);
    }
    return n;
}

/* Releases other heaps' slabs that other threads have freed whole, while
 * the process has more threads with a heap than CPUs to run them. A
 * thread's slabs fill with blocks that other threads free while it waits
 * for a CPU, and only it reuses them, when it runs again; meanwhile the
 * threads that run cut new slabs. bench_mt larson at 16 threads on 2 CPUs
 * (a third of the blocks handed to other threads through mailboxes of up to
 * 4,096) held 30-40 MiB of blocks in use and 100-190 MiB of slabs whose
 * blocks waited on remote-free stacks or never came back into use, growing
 * for as long as it ran: 202-225 MiB peak RSS against mimalloc's 84-93.
 * Released here, the units serve the threads that run. Slabs on the full
 * list are left: their first remote free waits on the owner's delayed
 * list (reclaim_empty releases them when their last block comes back), and
 * taking them here as well, with their notices, did not lower the peak.
 * Each heap's flag is only tried: a heap whose owner is in a slow path is
 * passed over. Called by a heap about to cut a slab, every
 * TINY_RECLAIM_EVERY_CUTS slabs (refill_elsewhere), and before a SuperSlab
 * is mapped for want of room (release_remote_emptied): at 16 threads,
 * 109,884-115,588 KiB peak against 129,964-146,396 with the first call
 * alone and 122,200-144,844 with the second alone. The slabs go back with
 * no other heap's flag held, as in reclaim_empty (reclaim_all_remote). True
 * when it released any. */
HS_APART_LATE bool tiny_reclaim_from_others(tiny_heap_t *me)
{
    if (atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) <=
        seg_cpus_allowed())
        return false;
    return reclaim_all_remote(me, NULL) != 0;
}

static unsigned walk_notices(tiny_heap_t *heap, const tiny_slab_t *s, bool *took_s);

/* The purge thread's walk of the delayed list of every heap with a thread
 * (walk_notices): releases the slabs whose notice is the last of their
 * blocks to come back, and returns how many. A slab of one block on its
 * owner's full list (a slab of pages, sized.c) has no other free to find
 * it whole (reclaim_empty), so its block, freed by another thread while
 * its owner slept, kept its pages until the owner's next refill: 64 blocks
 * of 200 KiB freed while their owner waited in pthread_join kept 13 MiB
 * in slabs. An owner at work drains its notices itself long before. */
HS_APART_LATE static unsigned reclaim_noticed(bool *passed_over)
{
    unsigned n = 0;
    hs_lock(&tiny_state.heap_lock);
    tiny_heap_t *all = tiny_state.heap_all; /* heaps are prepended, never unlinked */
    hs_unlock(&tiny_state.heap_lock);
    for (tiny_heap_t *h = all; h; h = h->all_next) {
        if (!atomic_load_explicit(&h->attached, memory_order_relaxed) ||
            !atomic_load_explicit(&h->delayed, memory_order_relaxed))
            continue;
        if (heap_try_enter_other(h))
            n += walk_notices(h, NULL, NULL);
        else
            *passed_over = true;
    }
    return n;
}

/* The purge thread's release, a purge delay after a free emptied a slab
 * on its owner's partial list (note_emptied): such a slab has no notice on
 * the owner's delayed list, so reclaim_empty never sees it, and only the
 * owner's next refill of its class would collect it. A thread that builds
 * a cache of 600,000 blocks over six rounds, while three others free each
 * round's blocks in a random order and it keeps allocating other sizes,
 * held 158 MiB of such slabs, and 170 MB of RSS, for as long as it ran.
 * The slabs whose last block came back as a notice go first
 * (reclaim_noticed). Not while the heap is small, as in reclaim_empty.
 * A heap whose flag another thread holds (its owner in a slow path,
 * another thread's free in reclaim_empty) is passed over and named in
 * *passed_over, for the purge thread to look again soon
 * (reclaim_emptied_work): looked at once only, such a heap kept its
 * emptied slabs until its owner's next refill of their class, for good if
 * no later free asked for a look (orphan_test: a slab emptied while its
 * owner held its flag past the look was still its owner's 3 s after the
 * flag was left). */
HS_APART_LATE bool tiny_reclaim_emptied(bool *passed_over)
{
    bool passed = false;
    unsigned n = 0, all = 0;
    if (!seg_small_heap()) {
        all = reclaim_noticed(&passed);
        do {
            n = reclaim_all_remote(NULL, &passed);
            all += n;
        } while (n == TINY_RECLAIM_MAX);
    }
    if (passed_over) *passed_over = passed;
    return all != 0;
}

/* The purge thread's emptied work (seg_set_emptied_work): true to be run
 * again soon, a heap having been passed over. */
HS_APART_LATE static bool reclaim_emptied_work(void)
{
    bool passed_over;
    tiny_reclaim_emptied(&passed_over);
    return passed_over;
}

/* Whether the notice n, a block of t on heap's delayed list, is the one
 * thing keeping t from being free whole: t is heap's and not a current
 * slab, and every other block carved from it waits on its remote-free
 * stack, but for `in_flight` (1 for the block the caller is freeing into
 * t, else 0). The stack only grows meanwhile, so a count read short only
 * says no. A slab with two notices on the list (it went back to the full
 * list before its owner drained the first) is never found so: that is
 * left to its owner. With keep_recycled, a recycled slab (t->recycled,
 * written by the owner under the flag) is left too: see reclaim_empty.
 * Called under heap's flag. */
static bool notice_completes(tiny_heap_t *heap, const tiny_slab_t *t, uint32_t in_flight,
                             bool keep_recycled)
{
    if (atomic_load_explicit(&t->owner_word, memory_order_relaxed) != (uintptr_t)heap ||
        heap->current[t->cls] == t || (keep_recycled && t->recycled))
        return false;
    uintptr_t word = atomic_load_explicit(tiny_remote_word(t), memory_order_acquire);
    uint32_t free_blocks = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT) + 1 + in_flight;
    return free_blocks == atomic_load_explicit(&t->carved, memory_order_relaxed);
}

/* Walks the delayed list of heap, whose flag the caller holds (and which
 * is left here): every slab whose notice is the one thing keeping it from
 * being free whole (notice_completes; for s, with the caller's block in
 * flight; recycled slabs only for the purge thread's walk, s NULL) comes
 * off the owner's lists, the other notices go back, and the slabs taken
 * are released once the flag is left. Returns how many were taken, and
 * sets *took_s (when s is set) to whether s was among them. */
HS_APART_LATE static unsigned walk_notices(tiny_heap_t *heap, const tiny_slab_t *s, bool *took_s)
{
    tiny_block_t *notices = atomic_exchange_explicit(&heap->delayed, NULL, memory_order_acquire);
    tiny_slab_t *taken = NULL; /* linked through next: off every list */
    unsigned n_taken = 0;
    uint32_t kept = 0;
    /* The notices back, but for those of the slabs taken. */
    tiny_block_t *first = NULL, *last = NULL;
    for (tiny_block_t *n = notices, *next; n; n = next) {
        next = tiny_next_delayed(n);
        tiny_slab_t *t = tiny_slab_of(n);
        if (notice_completes(heap, t, t == s, s != NULL)) {
            slab_list_remove(t->on_full ? &heap->full[t->cls] : &heap->partial[t->cls], t);
            t->next = taken;
            taken = t;
            if (t == s) *took_s = true;
            n_taken++;
            continue;
        }
        n->link = tiny_link(n, first, hs_free_key);
        if (!first) last = n;
        first = n;
        kept++;
    }
    if (first) delayed_push_chain(heap, first, last);
    atomic_store_explicit(&heap->reclaim_notices, kept, memory_order_relaxed);
    atomic_store_explicit(&heap->reclaim_put_off, 0, memory_order_relaxed);
    heap_leave(heap, 0);
    /* Out of every list of the heap's, with no block in use: nothing of
     * the owner's refers to them any more. */
    while (taken) {
        tiny_slab_t *t = taken;
        taken = t->next;
        returning_taken(t->units); /* its one notice */
        atomic_store_explicit(tiny_remote_word(t), 0, memory_order_relaxed);
        tiny_slab_release(t);
    }
    return n_taken;
}

/* The block another thread is freeing is the last block of s in use:
 * s is released instead of receiving it, with its owner's permission (its
 * busy flag, tried once). Returns false, having changed nothing of s, when
 * that is not known for sure; b is then freed as usual.
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
 * Nor a recycled slab (a refill collected remote frees into it since its
 * last carve): its owner was reusing what other threads free, and is only
 * off its core, waiting for a CPU or for its consumer. With 8 producers
 * and 8 consumers on 2 CPUs (bench_memory prodcons --threads=16) the
 * producers' slabs went whenever the scheduler left a producer off its
 * core while its consumer emptied the ring, and the producer came back to
 * cut new ones: 1,355-2,439 slabs cut a run and 10,080-10,600 KiB peak,
 * where 427-488 and 8,544-9,908 with recycled slabs left (glibc 8,088,
 * mimalloc 10,192). A sleeping owner's slabs hold what it filled and never
 * collected from (Larson's rounds, a cache freed in pthread_join): they go
 * as before; the purge thread's walk, a purge delay on, takes recycled
 * ones too (reclaim_noticed).
 * Nor while the heap is small (seg_small_heap): its slabs share the first
 * SuperSlab, so no SuperSlab is saved, and a producer that the scheduler
 * left off its core while its consumer freed saw its slabs go and came
 * back to cut new ones (bench_memory prodcons peaked 50 KiB higher, on
 * 10 more faults, with 32,000 slabs released).
 * Finding s's notice means walking the delayed list, which holds a notice
 * for every full slab other threads have freed into since the owner last
 * looked: one per slab of a sleeping owner whose blocks are freed in random
 * order. Walked for every slab emptied, the list made the frees quadratic
 * (8 M blocks of 64 B freed by one thread while their owner waited in
 * pthread_join: 7.6 s, against 0.5 under glibc and mimalloc). So a walk
 * releases every slab it finds free whole, s or not (the slabs whose own
 * walk was put off, or whose last free came while another thread held the
 * flag), and on a list of n notices the next walk waits until
 * n / TINY_RECLAIM_WALK_SHARE more slabs were emptied: a walk costs each
 * slab it serves that share of the list, and the slabs waiting for it are
 * at most that share of those the list stands for. The last slabs of a
 * teardown wait for no walk: by then the list is short.
 * Safe without the owner's fast paths knowing: a slab taken is not current
 * (the owner pops only from current slabs, and sets them under the flag),
 * and every carved block of it is free (the stack, its notice and, for s,
 * b account for `carved` blocks; blocks on the owner's own free list are
 * not counted, so a slab holding any is never taken), so no free by the
 * owner can touch it. */
HS_APART_LATE static HS_NOINLINE bool reclaim_empty(tiny_slab_t *s)
{
    tiny_heap_t *heap = (tiny_heap_t *)atomic_load_explicit(&s->owner_word, memory_order_acquire);
    if (!heap || heap == tiny_heap_tls || seg_small_heap() || !heap_try_enter_other(heap))
        return false;
    /* b is in use, so s was not released; but its owner may have exited
     * between the load above and the flag (tiny_heap_abandon orphans its
     * slabs under this flag), and s may since have been adopted. Under the
     * flag the owner cannot change, so one more look settles it. */
    if (atomic_load_explicit(&s->owner_word, memory_order_relaxed) != (uintptr_t)heap ||
        heap->current[s->cls] == s) {
        heap_leave(heap, 0);
        return false;
    }
    uint32_t put_off = atomic_load_explicit(&heap->reclaim_put_off, memory_order_relaxed);
    if (put_off < atomic_load_explicit(&heap->reclaim_notices, memory_order_relaxed) /
                      TINY_RECLAIM_WALK_SHARE) {
        atomic_store_explicit(&heap->reclaim_put_off, put_off + 1, memory_order_relaxed);
        heap_leave(heap, 0);
        return false;
    }
    bool took_s = false;
    walk_notices(heap, s, &took_s);
    return took_s;
}

/* ---- orphans ---------------------------------------------------------------- */

/* Orphans looked at by one adoption: the newest, where slabs with room
 * gather (full ones sink as others are pushed above them). */
#define TINY_ADOPT_SCAN 16

/* Takes over an orphan of the class with room for a block: of the newest
 * TINY_ADOPT_SCAN, the one with the most blocks in use. Filling the densest
 * first lets the sparse ones drain to empty and go back to their
 * SuperSlabs; taking whichever comes first (or a full one, which then
 * needs a new slab next to it) made thread churn keep thousands of slabs,
 * each pinned by a block or two. Orphans with nothing in use are released
 * on the way. Only the one adopted is collected, after the unlock. Never
 * by a crowd heap: every free of a crowd slab's block counts one of
 * tiny_state.crowd_blocks_out back, and an orphan's blocks in use were
 * never counted out (the count wrapped, and the crowd's last block back
 * was never seen). */
static tiny_slab_t *adopt_orphan(tiny_heap_t *heap, unsigned cls)
{
    if (atomic_load_explicit(&tiny_state.stat_orphan_slabs, memory_order_relaxed) == 0 ||
        heap->crowd)
        return NULL;
    tiny_slab_t **list = &tiny_lists.orphans[heap->node][cls];
    tiny_slab_t *best = NULL, *empty[TINY_ADOPT_SCAN];
    uint32_t best_used = 0;
    unsigned n_empty = 0;
    hs_lock(&tiny_state.orphan_lock);
    tiny_slab_t *s = *list;
    for (unsigned seen = 0; s && seen < TINY_ADOPT_SCAN; seen++) {
        tiny_slab_t *next = s->next;
        bool room;
        uint32_t used = tiny_orphan_in_use(s, &room);
        if (used == 0) {
            slab_list_remove(list, s);
            empty[n_empty++] = s;
        } else if (room && (!best || used > best_used)) {
            best = s;
            best_used = used;
        }
        s = next;
    }
    if (best) slab_list_remove(list, best);
    hs_unlock(&tiny_state.orphan_lock);
    /* Released after the unlock: tiny_slab_release takes a segment lock. */
    for (unsigned i = 0; i < n_empty; i++) tiny_orphan_release(empty[i]);
    hs_count_add(&tiny_state.stat_orphan_slabs, -(int64_t)(n_empty + (best != NULL)));
    if (!best) return NULL;
    HS_ASSERT(heap != &tiny_empty_heap);
    atomic_store_explicit(&best->crowd, heap->crowd, memory_order_relaxed);
    atomic_store_explicit(&best->owner_word, (uintptr_t)heap, memory_order_release);
    slab_list_push(&heap->partial[cls], best);
    collect(best);
    return best;
}

/* ---- the refill path -------------------------------------------------------- */

HS_INLINE void *pop(tiny_slab_t *s) { return tiny_pop(s, s->free); }

HS_INLINE void *refill(tiny_heap_t *heap, unsigned cls);
HS_NOINLINE static void *refill_elsewhere(tiny_heap_t *heap, unsigned cls);
HS_APART_LATE HS_NOINLINE static void *crowd_malloc(unsigned cls);

/* Whether the calling thread's heap went back at its exit: a TLS
 * destructor that runs after the heap's and allocates (glibc's rounds of
 * destructors) took a heap again, and the last round's stayed attached to
 * no thread for good (200 such threads: 201 counted live and 7.1 MB in
 * slabs after malloc_trim). Its blocks of the crowd's classes come from
 * the crowd heap now, which needs no thread. */
static inline bool thread_left(void);

/* Whether threads crowd: HUGESLAB_CROWD_THREADS threads or more have a
 * heap. After tiny_init on this thread, which read the option. */
static inline bool crowded(void)
{
    uint64_t live = atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed);
    return live != 0 && live >= tiny_state.crowd_threads;
}

HS_NOINLINE void *tiny_malloc_refill(tiny_heap_t *heap, unsigned cls, size_t size)
{
    if (HS_UNLIKELY(heap == &tiny_empty_heap)) {
        /* A thread of a crowded process takes its first blocks from the
         * crowd heap without a heap of its own: it gets one only when it
         * needs more (crowd_malloc). tiny_init first, for crowded(). */
        tiny_init();
        if (crowded() || thread_left()) {
            void *p = crowd_malloc(cls);
            if (p) return p;
        }
        heap = tiny_heap_attach();
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    }
    uint32_t was = heap_enter(heap);
    void *p = NULL;
    /* No slab of the class yet, while threads crowd: not inside another
     * refill of this thread's (was), which may be a crowd heap's. */
    if (HS_UNLIKELY(heap->current[cls] == &tiny_sentinel_slab) && was == 0 && crowded())
        p = crowd_malloc(cls);
    if (HS_UNLIKELY(cls >= TINY_SIZED_CLASS_MIN) && !p && tiny_sized_heap())
        p = tiny_malloc_sized(heap, cls, size);
    if (HS_LIKELY(!p)) p = refill(heap, cls);
    heap_leave(heap, was);
    return p;
}

/* A refill made a slab cls's current one (heap_set_current). */
HS_INLINE void note_current(tiny_heap_t *heap, unsigned cls)
{
    heap->current_classes[cls / 64] |= (uint64_t)1 << (cls % 64);
}

/* A block of a larger class for a refill of cls that would otherwise carve
 * a page: from the current slab of one of the next classes, up to twice
 * cls's size, where both slabs were recycled (remote frees collected since
 * their last carve) and that one has a free block, its remote frees
 * collected first. NULL when none has.
 * Where other threads free what a thread allocates, the blocks a class has
 * out at once (in a queue, on their way back) go up and down around their
 * mean, and a refill that finds neither a free block nor a remote free
 * carves a page: each class's slab ends up carved to the most its class
 * ever had out, and those highs, added over some 40 classes of 8-1,000 B,
 * were what bench_memory prodcons held above glibc's one heap for all sizes
 * (2,624-2,660 KiB peak against 2,408-2,504). A class at its high seldom
 * meets its neighbours at theirs: served from their free blocks, it carves
 * only when they are all short. The more classes it may lend from, the
 * fewer highs: from those at most 128 bytes larger, a median peak of
 * 2,418 KiB over 10 runs (9,256 over 5 at 16 threads); from those up to
 * twice the size, their waiting remote frees collected, 2,360 (8,388;
 * glibc 2,484 and 8,124). The block stays its own class's, freed to its
 * own slab, so nothing is lent for longer than the block lives. Only
 * recycled slabs: in a heap that grows (a queue whose consumer lags, or one
 * thread's fill, which never collects), the free blocks of the classes
 * above are those it just carved, and taking them only moves the carving
 * up a class, at up to twice the size. Apart, with the reclaims: only a
 * thread whose blocks others free gets here. */
HS_APART_LATE static HS_NOINLINE void *borrow_from_larger(tiny_heap_t *heap, unsigned cls)
{
    uint32_t most = 2 * tiny_class_size[cls];
    for (unsigned c = cls + 1; c < TINY_DIRECT_CLASSES && tiny_class_size[c] <= most; c++) {
        tiny_slab_t *larger = heap->current[c];
        /* Never the sentinel, which is never recycled; nor a slab on the
         * full list, which is never current: collect() may take its word. */
        if (!larger->recycled) continue;
        if (!larger->free) collect(larger);
        if (larger->free) return pop(larger);
    }
    return NULL;
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
        /* A crowd heap keeps its node: the thread moved since it chose it,
         * and its own heap serves it. */
        if (heap->crowd) return NULL;
        tiny_heap_abandon(heap);
        heap->node = node;
    }
    /* Tested here too: the call costs a refill more than the test. */
    if (atomic_load_explicit(&heap->delayed, memory_order_relaxed)) tiny_drain_delayed(heap);
    /* The slabs that may have room: blocks this thread freed into them,
     * remote frees, or blocks never carved. Slabs found without room go to
     * the full list, so this walk stays short. Remote frees are collected
     * only into an empty free list, which keeps collect() from walking one. */
    tiny_slab_t *s = heap->partial[cls];
    while (s) {
        tiny_slab_t *next = s->next;
        if (!s->free) collect(s);
        if (!s->free && atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity) {
            /* Only for the current slab: a walk that moved the current one
             * to the full list must end with another made current, as a
             * current slab is never on the full list. */
            if (s->recycled && s == heap->current[cls]) {
                void *p = borrow_from_larger(heap, cls);
                if (p) return p;
            }
            carve(s);
        }
        if (!s->free) move_to_full(heap, s); /* may find late remote frees */
        if (s->free) {
            TINY_VALIDATE(s);
            heap_set_current(heap, cls, s);
            note_current(heap, cls);
            return pop(s);
        }
        s = next;
    }
    return refill_elsewhere(heap, cls);
}

/* The thread moved to another node, seen after refill's walk, which may
 * have moved the class's current slab to the full list, where a current
 * slab never is (tiny_heap_abandon collects the current ones, as would
 * the next look at the class): the class gets the sentinel first. A crowd
 * heap keeps its node (as in refill): false, no block from it for a
 * thread that moved since it chose it. Else the heap gives its slabs up
 * and follows the thread: true. */
HS_APART_LATE HS_NOINLINE static bool heap_follow_node(tiny_heap_t *heap, unsigned cls,
                                                       unsigned node)
{
    heap_set_current(heap, cls, &tiny_sentinel_slab);
    if (heap->crowd) return false;
    tiny_heap_abandon(heap);
    heap->node = node;
    return true;
}

/* Memory is out (no unit free, no SuperSlab to be mapped): a free block of
 * the smallest larger class that has one in this heap's partial slabs, or
 * never-carved room there; else NULL with errno ENOMEM. A program that hit
 * RLIMIT_AS with blocks of 4,000 bytes and freed one in ten of them got
 * NULL for malloc(16): its freed blocks lay in slabs of their class, and no
 * unit was left for a slab of 16 bytes (build/bench/as_fill 4000). The
 * block stays its class's and goes back to its slab when freed; the class
 * whose slab serves it takes that slab as its current one, as a refill
 * does, so that nothing pops from a slab that is not current. errno is
 * left as the refused mapping set it. Only when a refill has already
 * failed: the seldom text. */
HS_SELDOM HS_NOINLINE static void *borrow_when_out(tiny_heap_t *heap, unsigned cls)
{
    for (unsigned c = cls + 1; c < TINY_CLASS_COUNT; c++) {
        for (tiny_slab_t *s = heap->partial[c]; s; s = s->next) {
            if (s->sized) continue; /* its one block is sized to a request */
            if (!s->free) collect(s);
            if (!s->free && atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity)
                carve(s);
            if (s->free) {
                TINY_VALIDATE(s);
                heap_set_current(heap, c, s);
                note_current(heap, c);
                return pop(s);
            }
        }
    }
    errno = ENOMEM;
    return NULL;
}

/* No slab of the heap's has room: an orphan, else a new slab. Out of line,
 * with adopt_orphan's buffer: the refills that end above, nearly all of
 * them, then set up a frame of 24 bytes, not 216, and spill less (3.4
 * instructions of each in bench_memory larson). */
HS_NOINLINE static void *refill_elsewhere(tiny_heap_t *heap, unsigned cls)
{
    unsigned node = seg_thread_node_refresh();
    if (node != heap->node && !heap_follow_node(heap, cls, node)) return NULL;
    tiny_slab_t *s = adopt_orphan(heap, cls);
    if (s && !s->free && atomic_load_explicit(&s->carved, memory_order_relaxed) < s->capacity)
        carve(s);
    bool aside = false;
    if (!s || !s->free) {
        s = heap->spare[cls];
        /* Written only when set: a one-thread heap's spares of the classes
         * from 2,816 B up lie on its second page, which it writes for
         * nothing else (tiny_heap_t). */
        if (s) {
            heap->spare[cls] = NULL;
            heap->spares_held--;
        }
        if (!s) {
            if (tiny_class_size[cls] > HS_UNIT_SIZE / 2 && seg_small_heap()) {
                make_room_for_one_block(heap, cls);
                /* Left out of the class's current slab (TINY_GIVE_BACK_MIN),
                 * the class marked as one whose slab went. */
                uint64_t bit = one_block_bit(cls);
                aside = tiny_class_size[cls] >= TINY_GIVE_BACK_MIN &&
                        !(heap->one_block_recurring & bit);
                if (aside) heap->one_block_released |= bit;
            }
            if (HS_UNLIKELY(++heap->cuts_since_reclaim >= TINY_RECLAIM_EVERY_CUTS)) {
                heap->cuts_since_reclaim = 0;
                /* Tested here: a process of one thread, the common case,
                 * then never runs the apart text. */
                if (atomic_load_explicit(&tiny_state.stat_threads_live, memory_order_relaxed) > 1)
                    tiny_reclaim_from_others(heap);
            }
            s = slab_create(heap, cls);
        }
        if (s) slab_list_push(&heap->partial[cls], s);
    }
    /* With no slab, or one left out, the class's current slab is the
     * sentinel: the one that ran out, which the refill's walk moved to the
     * full list, must not stay current (a current slab is never on the full
     * list; tests/small_heap_test.c). One call: the text every process runs
     * has no room for a second copy. */
    heap_set_current(heap, cls, s && !aside ? s : &tiny_sentinel_slab);
    if (HS_UNLIKELY(!s)) return borrow_when_out(heap, cls);
    if (!aside) note_current(heap, cls);
    return pop(s);
}

/* ---- crowd heaps --------------------------------------------------------------- */

/* What tiny keeps of a thread outside its heap, which a thread of a crowded
 * process, or one that only frees, may not have (tiny_malloc_refill,
 * heapless_free_remote); a new thread starts at zeros. One TLS variable:
 * each one more is a relocation more in the tables every process reads,
 * and these bytes fit the TLS block's padding, where 16 more would have
 * lowered every thread's stack (bench_memory crowd, a thousand threads, on
 * base pages with all their blocks from the crowd: 164 KiB more at the
 * peak). */
static __thread struct {
    /* By class up to TINY_CROWD_SIZE_MAX: blocks taken from its node's
     * crowd heap. */
    uint8_t crowd_taken[TINY_CROWD_CLASSES];
    /* Its heap went back at its exit (tiny_thread_exit): what its later TLS
     * destructors allocate comes from the crowd, uncounted. */
    bool left;
    /* Its frees of other threads' blocks made at once while it had no heap,
     * up to TINY_HEAPLESS_BATCH_AFTER; HEAPLESS_LEFT once its exit began
     * (tiny_heapless_exit), from which on their frees go at once. */
    uint8_t heapless_frees;
    /* 1 + the index in heapless_pool of the batch lent to it; 0: none. */
    uint8_t heapless_batch;
} tiny_thread;

HS_APART_LATE void tiny_crowd_thread_left(void) { tiny_thread.left = true; }

static inline bool thread_left(void) { return tiny_thread.left; }

/* A block of cls for a thread whose heap has no slab of the class (or that
 * has no heap), from its node's crowd heap (tiny_lists.crowd), or NULL: the
 * class is too large, the thread took its share of the class already, it
 * holds a lock or is in the fork window, or memory is out (errno as it
 * was). The thread holds the crowd heap's flag as its owner for the pop or
 * refill, and its own heap's flag if it has one, which no other thread
 * waits for. Its frees of the block are remote frees, as every thread's
 * are, and a slab the crowd's blocks all came back to goes back through
 * the reclaims and tiny_crowd_release.
 * Why: a thread's slabs are its own, and a slab costs it at least the page
 * its first blocks lie in, class by class; its heap, 5.9 KiB, costs it
 * that much more. With a thousand threads alive, each holding a few blocks
 * of many classes, those pages' unused rest was most of the process's
 * memory (bench_memory crowd). */
HS_APART_LATE HS_NOINLINE static void *crowd_malloc(unsigned cls)
{
    if (cls >= TINY_CROWD_CLASSES) return NULL;
    uint32_t size = tiny_class_size[cls];
    unsigned taken = tiny_thread.crowd_taken[cls];
    bool left = tiny_thread.left;
    if ((!left && (taken >= TINY_CROWD_BLOCKS || taken * size >= TINY_CROWD_BYTES)) ||
        tiny_crowd_holds || !hs_no_lock_held() || hs_in_fork_window())
        return NULL;
    /* Before tiny_crowd_heap, whose mapping may fail: the thread's own
     * heap may serve it then. */
    int saved_errno = errno;
    tiny_heap_t *crowd = tiny_crowd_heap(seg_thread_node());
    if (!crowd) {
        errno = saved_errno;
        return NULL;
    }
    tiny_crowd_enter(crowd);
    tiny_slab_t *s = crowd->current[cls];
    void *p = s->free ? pop(s) : refill(crowd, cls);
    tiny_crowd_leave(crowd);
    if (!p) {
        errno = saved_errno;
        return NULL;
    }
    if (!left) tiny_thread.crowd_taken[cls] = (uint8_t)(taken + 1);
    hs_count_add(&tiny_state.crowd_blocks_out, 1);
    return p;
}

/* Under the crowd heap's flag: its slabs whose blocks are all back, on its
 * partial lists, current or not, and its spares go back. The crowd's
 * blocks all come back through remote frees, so no free of its owner ever
 * finds a slab empty (slab_now_empty): a class no thread takes from any
 * more kept its slabs for good, each pinning its SuperSlab (tests/
 * fault_test's leak check, with every thread's first blocks the crowd's). */
static void crowd_release_empty(tiny_heap_t *crowd)
{
    tiny_drain_delayed(crowd);
    release_spares_in(crowd, NULL);
    release_all_remote_in(crowd, true);
}

HS_APART_LATE bool tiny_crowd_release(bool wait)
{
    bool passed_over = false;
    for (uint64_t nodes = atomic_load_explicit(&tiny_state.crowd_nodes, memory_order_acquire);
         nodes; nodes &= nodes - 1) {
        tiny_heap_t *crowd = tiny_crowd_of(nodes);
        if (wait) {
            tiny_crowd_enter(crowd);
        } else if (!tiny_crowd_try_enter(crowd)) {
            passed_over = true;
            continue;
        }
        crowd_release_empty(crowd);
        tiny_crowd_leave(crowd);
    }
    return passed_over;
}

/* ---- free slow paths --------------------------------------------------------- */

/* Another thread's free is about to leave every block of s on its
 * remote-free stack, or, for a slab of one block on its owner's full list,
 * on the owner's delayed list as its notice, or every block but one that
 * may be such a notice where reclaim_empty did not take s (free_by_other's
 * guess): the purge thread is asked to release such slabs a purge delay
 * later (tiny_reclaim_emptied), unless an orphan's, which goes back at
 * once or at sweep_orphans. */
HS_APART_LATE static HS_NOINLINE void note_emptied(const tiny_slab_t *s)
{
    if (atomic_load_explicit(&s->owner_word, memory_order_relaxed) != 0) seg_emptied_slab_seen();
}

/* A free of the last block in use of an orphan (owner_word read 0 with
 * acquire, and every other block it carved on its remote-free stack, none
 * on its free list): releases the slab with the block, and returns true;
 * false, with nothing done, when s is not an orphan on its list or holds
 * other blocks in use. Left on the list, an empty orphan waits for a
 * refill of its class to scan it or for the purge thread's sweep: a slab
 * of pages (sized.c) is never adopted, so only the sweep took it, and
 * threads that each left a few blocks of 128 KiB - 1 MiB to the main
 * thread and exited (thread_exit_test) had their pages pinned and
 * SuperSlabs mapped for new ones: 59-200 MiB of Rss where 17-20 MiB held
 * them before such slabs. An orphan with blocks on its free list is left
 * as before. Under orphan_lock, which every taker of an orphan holds: the
 * slab cannot be adopted or swept meanwhile, and its `used` is read only
 * once it is found listed (the thread that gave it up wrote it before it
 * listed it). The block is not published: no other block of s is in use,
 * so no other free can reach s, and a slab released after its block is
 * pushed could already be another thread's. */
HS_APART_LATE static HS_NOINLINE bool release_emptied_orphan(tiny_slab_t *s)
{
    unsigned node = seg_superslab_of(s)->node;
    bool room, last = false;
    hs_lock(&tiny_state.orphan_lock);
    tiny_slab_t **list = &tiny_lists.orphans[node][s->cls];
    if (atomic_load_explicit(&s->owner_word, memory_order_relaxed) == 0 &&
        (*list == s || s->prev) && tiny_orphan_in_use(s, &room) == 1) {
        slab_list_remove(list, s);
        last = true;
    }
    hs_unlock(&tiny_state.orphan_lock);
    if (!last) return false;
    hs_count_add(&tiny_state.stat_orphan_slabs, -1);
    tiny_orphan_release(s);
    return true;
}

/* free_by_other's work. */
HS_INLINE void free_by_other_block(tiny_slab_t *s, tiny_block_t *b, tiny_heap_t *me,
                                   uintptr_t owner)
{
    b->free_mark = (uintptr_t)b ^ s->free_key;
    count_remote_free(me, s);
    /* A cheap guess from two atomics at what this free leaves: the stack
     * with b may hold every block carved so far but one, which may be a
     * notice on the owner's delayed list (the first remote free into a
     * slab on its full list): reclaim_empty decides, and where it leaves
     * s (the owner's flag held, its walk put off, a recycled slab), the
     * purge thread's walk of the list (reclaim_noticed) a purge delay
     * later finds the notice (note_emptied). Nothing asked for that walk
     * before: a slab whose last free found the flag held waited for its
     * owner's next refill of its class, and an owner at work on other
     * sizes kept 163 MiB of them after the last round in 3 of 40 runs of
     * a copy of kernel_test emptied on busy CPUs. Or the stack may hold
     * them all: an orphan's, which goes back now; one on its owner's
     * partial list, where only the owner's refill of its class would
     * look; or a slab of one block on its owner's full list, whose free
     * is the notice (note_emptied). */
    uintptr_t word = atomic_load_explicit(tiny_remote_word(s), memory_order_relaxed);
    uint32_t freed = (uint32_t)(word >> TINY_REMOTE_COUNT_SHIFT) + 1;
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    if (HS_UNLIKELY(freed + 1 == carved)) {
        if (reclaim_empty(s)) return;
        /* Not while the heap is small, where the look leaves slabs (and
         * reclaim_empty declines them all): asked from a consumer with no
         * heap of its own, the purge thread's start gave it one
         * (pthread_create allocates; kernel_test consumer failed 10 of 10).
         * Tested here, not in note_emptied: leaving its other callers'
         * requests out too made bench_mt prodcons run at half speed. */
        if (!seg_small_heap()) note_emptied(s);
    } else if (HS_UNLIKELY(freed == carved)) {
        if (owner == 0 && !(word & TINY_REMOTE_FULL) && release_emptied_orphan(s)) return;
        note_emptied(s);
    }
    tiny_free_remote(s, b);
}

/* A free of another thread's block (or an orphan's, owner 0). Out of line:
 * the owner's cases of tiny_free_slow, the common ones, then save no more
 * registers than before the reclaim came in. The crowd's last block out:
 * its slabs, current ones too, may all be empty now, and no owner's free
 * will find them so; the purge thread's idle work releases them
 * (tiny_crowd_release), told once the block is back. The slab is read
 * before, after which it may be gone. */
HS_APART_LATE static HS_NOINLINE void free_by_other(tiny_slab_t *s, tiny_block_t *b,
                                                    tiny_heap_t *me, uintptr_t owner)
{
    bool crowd_emptied = false;
    if (HS_UNLIKELY(atomic_load_explicit(&s->crowd, memory_order_relaxed))) {
        uint64_t out =
            atomic_fetch_sub_explicit(&tiny_state.crowd_blocks_out, 1, memory_order_relaxed);
        HS_ASSERT(out != 0); /* every crowd slab's block in use was counted out */
        crowd_emptied = out == 1;
    }
    free_by_other_block(s, b, me, owner);
    if (HS_UNLIKELY(crowd_emptied)) seg_idle_work_pending();
}

/* A free of b from s by the owner, or by another thread, b checked for a
 * double free already (a batched one, marked when batched). */
HS_INLINE void free_routed(tiny_heap_t *heap, tiny_slab_t *s, tiny_block_t *b)
{
    uintptr_t word = atomic_load_explicit(&s->owner_word, memory_order_acquire);
    /* No slab is owned by tiny_empty_heap (slab_create and adopt_orphan
     * run in a refill, after tiny_heap_attach): a heapless thread's free
     * fails the test without one for its heap, 3 instructions a remote free. */
    if (word == (uintptr_t)heap) {
        free_local(heap, s, b);
        return;
    }
    free_by_other(s, b, heap, word);
}

/* A free of b from s by the owner, or by another thread. */
HS_INLINE void free_checked(tiny_heap_t *heap, tiny_slab_t *s, tiny_block_t *b)
{
    if (HS_UNLIKELY(b->free_mark == ((uintptr_t)b ^ s->free_key))) tiny_report_double_free(b, s);
    free_routed(heap, s, b);
}

/* The gathered frees of other threads' blocks: the remote word of each
 * block's slab asked for writing first, all of them, then each block freed
 * as tiny_free_slow would have (their double-free check and mark came when
 * they were batched, which brought their own lines here). Each free reads
 * its slab's remote word, which the owner's collect wrote last, and then
 * swaps it: one at a time, that was a miss and then a second one for the
 * write. Here the misses overlap, and each line comes for writing at once.
 * bench_mt at 2 threads, 9 and 5 runs alternating, medians of M operations
 * per second: larson 62.6 -> 68.9, prodcons 19.1 -> 20.6, rounds 335.4 ->
 * 341.7; queue, whose runs fall near 12-23 or 33-50, more of them in the
 * upper group (11 runs: medians 21 -> 33). Before the marks moved to the
 * batching, the blocks' own lines were the ones asked for here (76.2 ->
 * 83.1). */
HS_INLINE void free_taken(tiny_heap_t *heap, tiny_block_t *const *taken, unsigned n)
{
    /* In the order of the prefetches, so that the first freed is the first
     * asked for: popped from the end, with the blocks' lines asked for,
     * they gave 79.1 where this order gave 86.2. */
    for (unsigned i = 0; i < n; i++) HS_PREFETCH_WRITE(tiny_remote_word(tiny_slab_of(taken[i])));
    for (unsigned i = 0; i < n; i++) free_routed(heap, tiny_slab_of(taken[i]), taken[i]);
}

/* Moves a batch's n blocks to the caller's array and empties the batch:
 * taken out before they are freed, since a free may start the purge
 * thread, whose pthread_create allocates and frees on this thread, and may
 * push blocks to the batch and flush it meanwhile. */
HS_INLINE unsigned take_gathered(tiny_block_t **taken, tiny_block_t *const *gathered,
                                 unsigned *count)
{
    unsigned n = *count;
    memcpy(taken, gathered, n * sizeof taken[0]);
    *count = 0;
    return n;
}

static inline bool heapless_batch_lent(void);

/* A block going into a batch, checked for a double free and marked free
 * now, not at the flush: until then a second free of it, the owner's or
 * any thread's, found it in use, and the owner handed it out again while
 * the batch still held it (a block handed out twice, no report). Marked,
 * it stays counted in its slab's `used`: the slab stays until the flush. */
HS_INLINE void mark_gathered(tiny_slab_t *s, tiny_block_t *b)
{
    uintptr_t mark = (uintptr_t)b ^ s->free_key;
    if (HS_UNLIKELY(b->free_mark == mark)) tiny_report_double_free(b, s);
    b->free_mark = mark;
}

HS_APART_LATE HS_NOINLINE void tiny_flush_remote_batch(tiny_heap_t *heap)
{
    tiny_block_t *taken[TINY_REMOTE_BATCH];
    unsigned n = take_gathered(taken, heap->remote_batch, &heap->remote_batched);
    free_taken(heap, taken, n);
    /* A batch lent to the thread before it had a heap goes back with the
     * heap's first flush: a test at the heap's attach was 27 bytes more of
     * the text every process runs, which had no room for them. */
    if (HS_UNLIKELY(heapless_batch_lent())) tiny_heapless_flush(true);
}

/* ---- a thread without a heap: its batch of other threads' blocks ------------ */

/* Batches lent to threads that free other threads' blocks and have no heap
 * (a consumer that frees what another thread allocated): a heap would cost
 * such a thread 5.9 KiB of metadata and count it among the threads that
 * crowd (tiny_heap_attach), so it gets none, and freed one at a time, each
 * of its frees waited for its slab's remote word, where a heap's batch asks
 * for 64 at once (bench_memory teardown's freeing thread: 525.6 M
 * instructions against mimalloc's 316.1 M; batched, 0.60-0.67 s ->
 * 0.48-0.54 under THP "always", mimalloc 0.35-0.44, in more instructions,
 * 748.5 M: the remote words' misses overlap). A thread's first TINY_HEAPLESS_BATCH_AFTER such frees
 * go at once: a thread that frees a few blocks now and then keeps none waiting. The batch goes when
 * full, at the thread's exit, with the first flush of its heap's batch once it has one
 * (tiny_flush_remote_batch), and when it reads the statistics or calls malloc_trim; until then its
 * blocks are marked free and still counted in use, as a heap's batch's are. The pool is in .bss: a
 * process none of whose threads frees that way never writes its pages. Where all are lent, a thread
 * frees at once, as before. */
typedef struct heapless_batch_s {
    tiny_block_t *blocks[TINY_REMOTE_BATCH]; /* marked free, not yet handed to their slabs */
    unsigned count;                          /* entries in use */
} heapless_batch_t;

static struct {
    _Atomic uint64_t lent; /* bit i: batch[i] is a thread's */
    _Alignas(HS_CACHE_LINE) heapless_batch_t batch[TINY_HEAPLESS_BATCHES];
} heapless_pool;
_Static_assert(TINY_HEAPLESS_BATCHES <= 64, "one word of lent bits");
_Static_assert(TINY_HEAPLESS_BATCH_AFTER < UINT8_MAX, "tiny_thread.heapless_frees is a byte");

#define HEAPLESS_LEFT UINT8_MAX

static inline bool heapless_batch_lent(void) { return tiny_thread.heapless_batch != 0; }

/* The batch lent to the calling thread, or NULL. */
static inline heapless_batch_t *heapless_batch_of_thread(void)
{
    unsigned i = tiny_thread.heapless_batch;
    return i ? &heapless_pool.batch[i - 1] : NULL;
}

/* Lends the calling thread a batch, or NULL: all are lent, or it is leaving.
 * The heap key's value, tiny_empty_heap, makes tiny_thread_exit give the
 * batch back at the thread's exit. pthread_setspecific may allocate (a key
 * past the first 32), and a thread that allocates attaches a heap, which
 * sets the key's value to it first: the heap's value is put back. */
HS_APART_LATE HS_NOINLINE static heapless_batch_t *heapless_lend(void)
{
    if (tiny_thread.heapless_frees == HEAPLESS_LEFT) return NULL;
    uint64_t lent = atomic_load_explicit(&heapless_pool.lent, memory_order_relaxed);
    unsigned i;
    do {
        if (~lent == 0) return NULL;
        i = (unsigned)__builtin_ctzll(~lent);
        if (i >= TINY_HEAPLESS_BATCHES) return NULL;
    } while (!atomic_compare_exchange_weak_explicit(&heapless_pool.lent, &lent,
                                                    lent | (uint64_t)1 << i, memory_order_acquire,
                                                    memory_order_relaxed));
    HS_ASSERT(heapless_pool.batch[i].count == 0);
    tiny_thread.heapless_batch = (uint8_t)(i + 1);
    pthread_setspecific(tiny_state.heap_key, &tiny_empty_heap);
    if (tiny_heap_tls != &tiny_empty_heap) pthread_setspecific(tiny_state.heap_key, tiny_heap_tls);
    return heapless_batch_of_thread();
}

/* Hands the calling thread's batch to its slabs; with give_back, the batch
 * goes back to the pool as well, once its blocks are taken out (as a
 * heap's are, take_gathered) and before they are freed. */
HS_APART_LATE void tiny_heapless_flush(bool give_back)
{
    heapless_batch_t *batch = heapless_batch_of_thread();
    if (!batch) return;
    tiny_block_t *taken[TINY_REMOTE_BATCH];
    unsigned n = take_gathered(taken, batch->blocks, &batch->count);
    if (give_back) {
        tiny_thread.heapless_batch = 0;
        atomic_fetch_and_explicit(&heapless_pool.lent,
                                  ~((uint64_t)1 << (batch - heapless_pool.batch)),
                                  memory_order_release);
    }
    free_taken(&tiny_empty_heap, taken, n);
}

/* In a child of fork(): the batches lent to the parent's other threads,
 * which the child has not, go back to the pool, their blocks left in use
 * for good (as the blocks in those threads' heaps' batches are). Only the
 * lent ones are written: the pool's other pages stay untouched. */
HS_APART void tiny_heapless_fork_child(void)
{
    unsigned lent_here = tiny_thread.heapless_batch;
    uint64_t mine = lent_here ? (uint64_t)1 << (lent_here - 1) : 0;
    uint64_t others = atomic_load_explicit(&heapless_pool.lent, memory_order_relaxed) & ~mine;
    for (; others; others &= others - 1) heapless_pool.batch[__builtin_ctzll(others)].count = 0;
    atomic_store_explicit(&heapless_pool.lent, mine, memory_order_relaxed);
}

HS_APART_LATE void tiny_heapless_exit(void)
{
    tiny_thread.heapless_frees = HEAPLESS_LEFT;
    tiny_heapless_flush(true);
}

/* The free of p, another thread's block of a class batched in a heap, by a
 * thread without a heap. */
HS_APART_LATE HS_NOINLINE static void heapless_free_remote(void *p, tiny_slab_t *s)
{
    heapless_batch_t *batch = heapless_batch_of_thread();
    if (!batch && tiny_thread.heapless_frees >= TINY_HEAPLESS_BATCH_AFTER) batch = heapless_lend();
    if (!batch) {
        if (tiny_thread.heapless_frees < TINY_HEAPLESS_BATCH_AFTER) tiny_thread.heapless_frees++;
        free_checked(&tiny_empty_heap, s, p);
        return;
    }
    mark_gathered(s, p);
    batch->blocks[batch->count] = p;
    if (++batch->count == TINY_REMOTE_BATCH) tiny_heapless_flush(false);
}

/* p == NULL: the fast path already freed into s and its count reached 0.
 * Another thread's block of a small class waits in the heap's batch; the
 * batch goes when it is full, at the thread's exit and at malloc_trim. An
 * orphan's block goes at once: batched, the blocks that the main thread of
 * bench_memory larson freed after its workers had left kept their
 * SuperSlab from going idle (6.0 MiB resident 3 s later, not 3.2). Not
 * at its refills: larson's come every 17 mallocs or so, and the batches of
 * 8 that left overlapped too little (71.8 M operations per second, against
 * 67.6 without batches and 75.7-81.1 with full ones). A heapless thread
 * batches in a batch lent to it (heapless_free_remote). */
HS_NOINLINE void tiny_free_slow(void *p, tiny_slab_t *s)
{
    tiny_heap_t *heap = tiny_heap_tls;
    if (!p) {
        used_reached_zero(heap, s);
        return;
    }
    uintptr_t owner = atomic_load_explicit(&s->owner_word, memory_order_relaxed);
    if (s->block_size <= TINY_REMOTE_BATCH_BLOCK_MAX && owner != (uintptr_t)heap && owner != 0 &&
        !atomic_load_explicit(&s->crowd, memory_order_relaxed)) {
        if (HS_UNLIKELY(heap == &tiny_empty_heap)) {
            heapless_free_remote(p, s);
            return;
        }
        mark_gathered(s, p);
        heap->remote_batch[heap->remote_batched] = p;
        if (++heap->remote_batched == TINY_REMOTE_BATCH) tiny_flush_remote_batch(heap);
        return;
    }
    free_checked(heap, s, p);
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

/* The end of the list is tested here, not only in tiny_link_out_of_slab:
 * with that call on every path, each of the million pops of a list's last
 * block in bench_memory larson saved and restored three registers. */
void *tiny_pop_last(tiny_slab_t *slab, tiny_block_t *block, uintptr_t decoded)
{
    if (HS_UNLIKELY(decoded != (uintptr_t)block))
        tiny_report_corrupt_list(block, slab->block_size, "free list");
    slab->free = NULL;
    slab->used++;
    block->free_mark = 0;
    return block;
}

/* The arithmetic the fast paths rely on, checked exhaustively against plain
 * division: linked with the static archive and built against src/ headers.
 *   - the fork handlers are registered at the start where a hugetlb pool
 *     may back the heap, else not while the process has had one thread
 *     and no hugetlb memory, and by the time a second thread runs;
 *   - tiny_class_of() gives the smallest class of tiny_class_size that
 *     holds the size, for every size up to 1 MiB;
 *   - every class served through the heap's direct table has one to four
 *     entries of it, the most heap_set_current stores, and the last such
 *     class (TINY_DIRECT_CLASSES) is TINY_TABLE_MAX;
 *   - TINY_SHORT_CLASS_MIN is the first class above 8 KiB,
 *     TINY_SIZED_CLASS_MIN the first above 128 KiB, and TINY_CROWD_CLASSES
 *     the first above TINY_CROWD_SIZE_MAX;
 *   - tiny_block_key() is k * step at block k's first byte and above any
 *     key_limit at every other offset of a SuperSlab, and below a slab's
 *     start, for every class;
 *   - malloc of every size up to TINY_MAX_SIZE lands in a slab of the
 *     right class (the heap's direct table for sizes up to 1 KiB);
 *   - realloc grows a slab's one block in place when free units follow;
 *   - once the slabs hold TINY_MIDDLE_HEAP_BYTES past the small heap, a
 *     block above 128 KiB is the one block of a slab of pages sized to it
 *     (sized.c): page-aligned, its usable size the request's pages, on the
 *     full list while in use, grown in place by realloc when the pages
 *     after it are free, and gone from its units' heads when freed;
 *   - slabs leave little after their last block;
 *   - a slab on the full list comes back with a thirty-second of its
 *     blocks free, and with a quarter once it has made TINY_WIDE_TRIPS
 *     trips there while another thread has a heap;
 *   - another thread's frees of a small class's blocks wait in its heap's
 *     batch, which goes to their slabs when full, at malloc_trim and at the
 *     thread's exit;
 *   - an empty slab that is not its class's current one is kept as the
 *     class's spare (one per class, in the SuperSlab of the heap's kept
 *     empty current slabs), is the class's next new slab, and goes back
 *     with malloc_trim and with its thread;
 *   - while more threads have a heap than the process has CPUs, a heap
 *     that cuts slabs releases other heaps' slabs whose blocks all came
 *     back through other threads' frees (tiny_reclaim_from_others), and
 *     none of a slab with a block in use or of a current slab;
 *   - a refill that would carve a page of a class whose slab other
 *     threads' frees recycle takes a free block of a class up to twice
 *     its size instead (never of a larger one), when that class's current
 *     slab is recycled too, its waiting remote frees collected first
 *     (borrow_from_larger), and carves when its own slab was never
 *     recycled, or when it is not the class's current slab (the refill
 *     moved the current one to the full list: the one that carves becomes
 *     current). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "slab_util.h"

#include "hugeslab.h"
#include "os/os.h"
#include "tiny/tiny.h"
#include "tiny/tiny_internal.h"

static void check_classes(void)
{
    for (size_t size = 0; size <= TINY_MAX_SIZE; size++) {
        unsigned cls = tiny_class_of(size);
        size_t want_min = size == 0 ? 1 : size;
        if (cls >= TINY_CLASS_COUNT || tiny_class_size[cls] < want_min ||
            (cls > 0 && tiny_class_size[cls - 1] >= want_min)) {
            HS_FAIL("size %zu: class %u (%u bytes) is not the smallest that holds it", size, cls,
                    cls < TINY_CLASS_COUNT ? tiny_class_size[cls] : 0);
            return;
        }
    }
    hs_checks++;
}

/* Whether cls, named `name`, is the first class above `bytes`, which is a
 * class size itself; reports it when not. */
static bool first_class_above(unsigned cls, unsigned bytes, const char *name)
{
    if (tiny_class_size[cls - 1] == bytes && tiny_class_size[cls] > bytes) return true;
    HS_FAIL("%s is the class of %u bytes, after %u, not the first above %u bytes", name,
            tiny_class_size[cls], tiny_class_size[cls - 1], bytes);
    return false;
}

/* heap_set_current's stores: the direct table's entries of each class it
 * serves, first to last, are one to four, and the last class is
 * TINY_TABLE_MAX's. */
static void check_direct_entries(void)
{
    for (unsigned cls = 0; cls < TINY_DIRECT_CLASSES; cls++) {
        unsigned first = cls == 0 ? 0 : (tiny_class_size[cls - 1] + 16) >> 4;
        unsigned last = tiny_class_size[cls] >> 4;
        if (tiny_class_size[cls] % 16 || last < first || last - first > 3) {
            HS_FAIL("class %u (%u bytes): direct entries %u..%u, not one to four", cls,
                    tiny_class_size[cls], first, last);
            return;
        }
    }
    if (tiny_class_size[TINY_DIRECT_CLASSES - 1] != TINY_TABLE_MAX) {
        HS_FAIL("the direct table's last class is %u bytes, not %u",
                tiny_class_size[TINY_DIRECT_CLASSES - 1], TINY_TABLE_MAX);
        return;
    }
    if (!first_class_above(TINY_SHORT_CLASS_MIN, 8 * 1024, "TINY_SHORT_CLASS_MIN") ||
        !first_class_above(TINY_SIZED_CLASS_MIN, 128 * 1024, "TINY_SIZED_CLASS_MIN") ||
        !first_class_above(TINY_CROWD_CLASSES, TINY_CROWD_SIZE_MAX, "TINY_CROWD_CLASSES"))
        return;
    hs_checks++;
}

static void check_block_key(void)
{
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        uint64_t size = tiny_class_size[cls];
        uint64_t recip = tiny_block_recip(size);
        uint64_t step = tiny_block_step(recip, size);
        if (step == 0 || step > size) {
            HS_FAIL("class %u (%llu bytes): step %llu", cls, (unsigned long long)size,
                    (unsigned long long)step);
            return;
        }
        /* Block k's first byte gives k * step; any other offset in the
         * SuperSlab, and a pointer below the slab's start (which wraps),
         * gives a key above any key_limit (at most 2 MiB). */
        for (uint64_t offset = 0; offset < HS_SUPERSLAB_SIZE; offset++) {
            uint64_t key = tiny_block_key(offset, recip);
            bool first = offset % size == 0;
            if (first ? key != offset / size * step : key < HS_SUPERSLAB_SIZE) {
                HS_FAIL("class %u (%llu bytes), offset %llu: key %llu", cls,
                        (unsigned long long)size, (unsigned long long)offset,
                        (unsigned long long)key);
                return;
            }
            uint64_t below = tiny_block_key(-(offset + 1), recip);
            if (below < HS_SUPERSLAB_SIZE) {
                HS_FAIL("class %u: a pointer %llu bytes before the start has key %llu", cls,
                        (unsigned long long)(offset + 1), (unsigned long long)below);
                return;
            }
        }
        if (tiny_key_limit((uint32_t)(HS_SUPERSLAB_SIZE / size), recip, size) > HS_SUPERSLAB_SIZE) {
            HS_FAIL("class %u: key_limit above 2 MiB", cls);
            return;
        }
    }
    hs_checks++;
}

static void check_malloc_classes(void)
{
    for (size_t size = 0; size <= TINY_MAX_SIZE; size += size < 4096 ? 1 : 509) {
        void *p = hugeslab_malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (!p) return;
        unsigned cls = tiny_class_of(size);
        const tiny_slab_t *slab = tiny_slab_of(p);
        if (slab->cls != cls) {
            HS_FAIL("malloc(%zu) came from a %u-byte slab, want %u", size, slab->block_size,
                    tiny_class_size[cls]);
            hugeslab_free(p);
            return;
        }
        hugeslab_free(p);
    }
    hs_checks++;
}

/* Blocks above 128 KiB in a heap past TINY_MIDDLE_HEAP_BYTES (sized.c). */
static void check_sized(void)
{
    enum { fill = 10 * 1024 };
    static void *blocks[fill];
    /* The empty slabs the classes above 128 KiB kept as current go: their
     * blocks would be handed out before a slab of pages. */
    hugeslab_malloc_trim(0);
    for (int i = 0; i < fill; i++) blocks[i] = hugeslab_malloc(1000);
    CHECK(tiny_sized_heap() && !seg_small_heap(), "%s",
          "10 MiB of 1,000-byte blocks: no slabs of pages yet");
    static const size_t sizes[] = {128 * 1024 + 1, 200000, 300000, 524289, TINY_MAX_SIZE};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t size = sizes[i], pages = (size + 4095) / 4096;
        unsigned char *p = hugeslab_malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (!p) break;
        memset(p, 0x6b, size);
        const tiny_slab_t *slab = tiny_slab_of(p);
        CHECK(slab->sized && slab->capacity == 1 && slab->start == (char *)p &&
                  slab->block_size == pages * 4096 && slab->cls == tiny_class_of(size) &&
                  slab->on_full && ((uintptr_t)p & 4095) == 0 &&
                  hugeslab_malloc_usable_size(p) == pages * 4096,
              "malloc(%zu) at %p: slab of pages %d, %u blocks of %u B from %p, class %u, on the "
              "full list %d, usable %zu",
              size, (void *)p, slab->sized, slab->capacity, slab->block_size, (void *)slab->start,
              slab->cls, slab->on_full, hugeslab_malloc_usable_size(p));
        /* Grown in place when the page after it is free, moved otherwise;
         * its bytes kept either way. */
        seg_superslab_t *ss = seg_superslab_of(p);
        size_t end_page = (size_t)((char *)p - (char *)ss) / 4096 + pages;
        bool next_free =
            end_page < 512 && (ss->free_units >> (end_page / 8) & 1 ||
                               seg_page_map(ss)->free[end_page / 8] >> end_page % 8 & 1);
        if (size + 4096 <= TINY_MAX_SIZE) {
            unsigned char *q = hugeslab_realloc(p, size + 4096);
            CHECK(q != NULL && (q == p) == next_free && q[0] == 0x6b && q[size - 1] == 0x6b,
                  "realloc(%zu -> %zu): %p -> %p with the page after it %s", size, size + 4096,
                  (void *)p, (void *)q, next_free ? "free" : "in use");
            if (q) p = q;
        }
        const tiny_slab_t **head =
            (const tiny_slab_t **)tiny_client_area(seg_superslab_of(p))->head;
        size_t unit = (size_t)((uintptr_t)p % HS_SUPERSLAB_SIZE) / HS_UNIT_SIZE;
        tiny_slab_t *mine = tiny_slab_of(p);
        tiny_heap_t *heap = tiny_heap_tls;
        /* Freed, the slab is the heap's sized spare, which the same request
         * takes whole again; malloc_trim sends it back. */
        hugeslab_free(p);
        CHECK(heap->sized_spare == mine && head[unit] == mine && mine->used == 0,
              "the free of a %zu-byte block: sized spare %p, its slab %p, the unit's head %p", size,
              (void *)heap->sized_spare, (void *)mine, (const void *)head[unit]);
        void *again = hugeslab_malloc(size);
        CHECK(again == p && heap->sized_spare == NULL && mine->used == 1 && mine->on_full,
              "malloc(%zu) after its free: %p, want the sized spare's %p", size, again, (void *)p);
        hugeslab_free(again);
        hugeslab_malloc_trim(0);
        CHECK(heap->sized_spare == NULL && head[unit] == &tiny_sentinel_slab,
              "malloc_trim left a %zu-byte block's slab of pages (sized spare %p, head %p)", size,
              (void *)heap->sized_spare, (const void *)head[unit]);
    }
    /* A request that its pages do not fit within a sixteenth sends the
     * spare back: the new block has a slab of its own size, wherever it
     * lies. */
    void *a = hugeslab_malloc(300000);
    hugeslab_free(a);
    void *b = hugeslab_malloc(200000);
    CHECK(b && tiny_heap_tls->sized_spare == NULL && tiny_slab_of(b)->block_size == 49 * 4096,
          "malloc(200000) after a 300000-byte block's free: %p in a slab of %u B (the freed block "
          "%p)",
          b, b ? tiny_slab_of(b)->block_size : 0, a);
    hugeslab_free(b);
    hugeslab_malloc_trim(0);
    for (int i = 0; i < fill; i++) hugeslab_free(blocks[i]);
}

/* realloc of the one block of a slab grows the slab into the free units
 * after it: same pointer, contents kept, the slab of the new class; with
 * the next unit taken, the block moves. Runs first, on a fresh heap, whose
 * first SuperSlab has free units past the few slabs made so far. */
static void check_realloc_in_place(void)
{
    /* Above 512 KiB a slab holds one block whatever the heap's size (below,
     * only while the heap is small). */
    static const size_t steps[] = {600000, 700000, 900000, 1000000};
    unsigned char *p = hugeslab_malloc(steps[0]);
    CHECK(p != NULL, "malloc(%zu)", steps[0]);
    if (!p) return;
    memset(p, 0x5a, steps[0]);
    for (size_t i = 1; i < sizeof steps / sizeof *steps; i++) {
        unsigned char *q = hugeslab_realloc(p, steps[i]);
        CHECK(q == p, "realloc %zu -> %zu moved the block (%p -> %p) with free units after it",
              steps[i - 1], steps[i], (void *)p, (void *)q);
        if (!q) return;
        p = q;
        const tiny_slab_t *slab = tiny_slab_of(p);
        CHECK(slab->cls == tiny_class_of(steps[i]) && slab->capacity >= 1,
              "realloc to %zu: slab of %u bytes, want %u", steps[i], slab->block_size,
              tiny_class_size[tiny_class_of(steps[i])]);
        CHECK(hugeslab_malloc_usable_size(p) >= steps[i], "realloc to %zu: usable %zu", steps[i],
              hugeslab_malloc_usable_size(p));
        for (size_t k = 0; k < steps[i - 1]; k++)
            if (p[k] != 0x5a) {
                HS_FAIL("realloc %zu -> %zu lost byte %zu", steps[i - 1], steps[i], k);
                return;
            }
        memset(p, 0x5a, steps[i]);
    }
    hugeslab_free(p);
    /* A slab right after it: the block moves, contents kept. */
    unsigned char *a = hugeslab_malloc(600000);
    unsigned char *b = hugeslab_malloc(600000);
    CHECK(a != NULL && b != NULL, "malloc(600000)");
    if (!a || !b) return;
    CHECK(tiny_slab_of(a)->first_unit + tiny_slab_of(a)->units == tiny_slab_of(b)->first_unit,
          "two 600000-byte blocks: slabs at units %u and %u, not adjacent",
          tiny_slab_of(a)->first_unit, tiny_slab_of(b)->first_unit);
    memset(a, 0x33, 600000);
    unsigned char *c = hugeslab_realloc(a, 700000);
    CHECK(c != NULL && c != a, "realloc(600000 -> 700000) stayed with no room after it");
    if (!c) return;
    for (size_t k = 0; k < 600000; k++)
        if (c[k] != 0x33) {
            HS_FAIL("realloc 600000 -> 700000 lost byte %zu", k);
            return;
        }
    CHECK(tiny_slab_of(c)->cls == tiny_class_of(700000), "realloc to 700000: slab of %u bytes",
          tiny_slab_of(c)->block_size);
    hugeslab_free(b);
    hugeslab_free(c);
    hs_checks++;
}

/* A slab above 8 KiB leaves at most an eighth of itself after its last
 * block (a 512 KiB slab for every class above 64 KiB left 224 KiB after one
 * 288 KiB block), one of up to 8 KiB at most a sixteenth (the 6,656-byte
 * class of equal eighths left 5.5 of its 64 KiB). Slabs at a SuperSlab's
 * unit 0, shorter by the header, are left out. The heap is made large
 * first, past TINY_MIDDLE_HEAP_BYTES in slabs: a smaller heap cuts slabs
 * of one unit or one block. */
static void check_slab_tails(void)
{
    enum { FILL = 16 };
    void *fill[FILL];
    int filled = 0;
    tiny_stats_t st;
    do {
        fill[filled++] = hugeslab_malloc(TINY_MAX_SIZE);
        tiny_stats(&st);
    } while (st.bytes_in_slabs < TINY_MIDDLE_HEAP_BYTES + HS_MiB && filled < FILL);
    CHECK(st.bytes_in_slabs >= TINY_MIDDLE_HEAP_BYTES + HS_MiB,
          "%d blocks of 1 MiB made only %llu bytes of slabs", filled,
          (unsigned long long)st.bytes_in_slabs);
    unsigned checked = 0, classes = 0;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        size_t size = tiny_class_size[cls];
        classes++;
        void *p = hugeslab_malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (!p) break;
        const tiny_slab_t *slab = tiny_slab_of(p);
        if (slab->first_unit != 0) {
            size_t bytes = (size_t)slab->units * HS_UNIT_SIZE;
            size_t tail = bytes - (size_t)slab->capacity * size;
            CHECK(tail * (size <= 8 * HS_KiB ? 16 : 8) <= bytes,
                  "the %zu-byte class: %zu of its %zu-byte slab after the last block", size, tail,
                  bytes);
            checked++;
        }
        hugeslab_free(p);
    }
    CHECK(checked * 2 >= classes, "only %u of %u classes had a slab off unit 0", checked, classes);
    for (int i = 0; i < filled; i++) hugeslab_free(fill[i]);
}

/* Blocks of `size` bytes are taken until the slab of the first one goes
 * to the full list; then, trip after trip, its blocks are freed one at a
 * time until it leaves the full list, and taken again until it is back
 * there. The blocks other slabs hand out meanwhile stay taken, so that each
 * refill finds the slab that came back. `wide`: from TINY_WIDE_TRIPS on, a
 * quarter must come back (another thread has a heap), else a thirty-second. */
static void check_trips(size_t size, bool wide)
{
    enum { MOST = 40000, TRIPS = TINY_WIDE_TRIPS + 3 };
    void **mine = malloc(MOST * sizeof *mine), **others = malloc(MOST * sizeof *others);
    if (!mine || !others) {
        HS_FAIL("no memory for the trips' test");
        return;
    }
    size_t n_mine = 0, n_others = 0;
    mine[n_mine++] = hugeslab_malloc(size);
    const tiny_slab_t *slab = tiny_slab_of(mine[0]);
    for (unsigned trip = 1; trip <= TRIPS; trip++) {
        while (!slab->on_full && n_mine < MOST && n_others < MOST) {
            void *p = hugeslab_malloc(size);
            if (tiny_slab_of(p) == slab)
                mine[n_mine++] = p;
            else
                others[n_others++] = p;
        }
        if (!slab->on_full) {
            HS_FAIL("%zu B, trip %u: the slab never went to the full list", size, trip);
            break;
        }
        CHECK(slab->trips == trip, "%zu B: trip %u counted as %u", size, trip, slab->trips);
        uint32_t share = wide && trip >= TINY_WIDE_TRIPS ? 4 : 32;
        uint32_t keep = slab->capacity / share, freed = 0;
        while (slab->on_full && n_mine > 0) {
            hugeslab_free(mine[--n_mine]);
            freed++;
        }
        CHECK(freed == keep,
              "%zu B, trip %u, %s: the slab of %u blocks came back after %u frees, not %u", size,
              trip, wide ? "two threads" : "one thread", slab->capacity, freed, keep);
    }
    while (n_mine) hugeslab_free(mine[--n_mine]);
    while (n_others) hugeslab_free(others[--n_others]);
    free(mine);
    free(others);
}

static pthread_barrier_t trips_barrier;

/* A second thread with a heap, alive from the first wait to the second. */
static void *heap_holder(void *arg)
{
    (void)arg;
    void *p = hugeslab_malloc(16);
    pthread_barrier_wait(&trips_barrier);
    pthread_barrier_wait(&trips_barrier);
    hugeslab_free(p);
    return NULL;
}

static void check_trips_both(void)
{
    check_trips(64, false);
    pthread_t holder;
    pthread_barrier_init(&trips_barrier, NULL, 2);
    if (pthread_create(&holder, NULL, heap_holder, NULL) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    pthread_barrier_wait(&trips_barrier);
    check_trips(80, true);
    pthread_barrier_wait(&trips_barrier);
    pthread_join(holder, NULL);
    pthread_barrier_destroy(&trips_barrier);
}

enum { BATCH_BLOCKS = TINY_REMOTE_BATCH + 10 };
static void *batch_blocks[BATCH_BLOCKS];

/* Blocks on s's remote-free stack. */
static unsigned remote_count(const tiny_slab_t *s)
{
    return (unsigned)(atomic_load(tiny_remote_word(s)) >> TINY_REMOTE_COUNT_SHIFT);
}

static void *batch_thread(void *arg)
{
    const tiny_slab_t *s = arg;
    void *own = hugeslab_malloc(16); /* a heap of its own: a heapless thread frees at once */
    for (unsigned i = 0; i < 10; i++) hugeslab_free(batch_blocks[i]);
    tiny_heap_t *heap = tiny_heap_tls;
    CHECK(heap != &tiny_empty_heap, "the freeing thread has a heap");
    if (heap == &tiny_empty_heap) return NULL;
    CHECK(heap->remote_batched == 10 && remote_count(s) == 0,
          "10 remote frees wait in the batch (%u), none on the slab (%u)", heap->remote_batched,
          remote_count(s));
    hugeslab_malloc_trim(0);
    CHECK(heap->remote_batched == 0 && remote_count(s) == 10,
          "malloc_trim hands the batch over: %u left, %u on the slab", heap->remote_batched,
          remote_count(s));
    for (unsigned i = 10; i < 10 + TINY_REMOTE_BATCH; i++) hugeslab_free(batch_blocks[i]);
    CHECK(heap->remote_batched == 0 && remote_count(s) == 10 + TINY_REMOTE_BATCH,
          "a full batch goes at once: %u left, %u on the slab", heap->remote_batched,
          remote_count(s));
    hugeslab_free(own);
    return NULL;
}

/* The blocks come from one slab of this thread's (a class no other check
 * used, so the slab is fresh); another thread frees them. */
static void check_remote_batch(void)
{
    enum { MOST = 4096 };
    static void *others[MOST];
    const size_t size = 176;
    unsigned n = 0, n_others = 0;
    batch_blocks[n++] = hugeslab_malloc(size);
    const tiny_slab_t *s = tiny_slab_of(batch_blocks[0]);
    while (n < BATCH_BLOCKS && n_others < MOST) {
        void *p = hugeslab_malloc(size);
        if (tiny_slab_of(p) == s)
            batch_blocks[n++] = p;
        else
            others[n_others++] = p;
    }
    while (n_others) hugeslab_free(others[--n_others]);
    bool one_slab = n == BATCH_BLOCKS;
    CHECK(one_slab && remote_count(s) == 0, "%u blocks of %zu B in one slab", BATCH_BLOCKS, size);
    pthread_t t;
    if (!one_slab || pthread_create(&t, NULL, batch_thread, (void *)s) != 0) {
        HS_FAIL("the remote batch's check could not start");
        return;
    }
    pthread_join(t, NULL);
    for (unsigned i = 0; i < BATCH_BLOCKS; i++) batch_blocks[i] = NULL;
}

static void *exit_batch_thread(void *arg)
{
    void *own = hugeslab_malloc(16);
    hugeslab_free(arg);
    CHECK(tiny_heap_tls->remote_batched == 1, "the free waits in the batch");
    hugeslab_free(own);
    return NULL;
}

/* A thread that frees one remote block and leaves: its exit hands it over. */
static void check_remote_batch_exit(void)
{
    void *p = hugeslab_malloc(176);
    const tiny_slab_t *s = tiny_slab_of(p);
    unsigned before = remote_count(s);
    pthread_t t;
    if (pthread_create(&t, NULL, exit_batch_thread, p) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    pthread_join(t, NULL);
    CHECK(remote_count(s) == before + 1, "the thread's exit hands its batch over: %u, then %u",
          before, remote_count(s));
}

enum { SPARE_SIZE = 256, SPARE_MOST = 4096 };

/* Blocks of SPARE_SIZE until the first one of the n_slabs-th slab:
 * slab[i] is the i-th, blocks[k] in the slab of index at[k]. Returns the
 * blocks taken. */
static unsigned spare_fill(void **blocks, unsigned *at, const tiny_slab_t **slab, unsigned n_slabs)
{
    unsigned n = 0, found = 0;
    while (n < SPARE_MOST && found < n_slabs) {
        void *p = hugeslab_malloc(SPARE_SIZE);
        const tiny_slab_t *s = tiny_slab_of(p);
        unsigned i = 0;
        while (i < found && slab[i] != s) i++;
        if (i == found) slab[found++] = s;
        blocks[n] = p;
        at[n++] = i;
    }
    return n;
}

static void spare_free(void **blocks, const unsigned *at, unsigned n, unsigned which)
{
    for (unsigned k = 0; k < n; k++)
        if (at[k] == which && blocks[k]) {
            hugeslab_free(blocks[k]);
            blocks[k] = NULL;
        }
}

/* The heap's own records of its spares and current slabs, which the walks
 * over them trust (release_spares_in, tiny_release_kept_empty_in,
 * make_room_for_one_block): spares_held counts the spares, and every class
 * with a current slab has its bit in current_classes. */
static bool heap_records_agree(const tiny_heap_t *heap)
{
    unsigned spares = 0;
    bool noted = true;
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        spares += heap->spare[cls] != NULL;
        if (heap->current[cls] != &tiny_sentinel_slab)
            noted = noted && (heap->current_classes[cls / 64] >> (cls % 64) & 1);
    }
    return spares == heap->spares_held && noted;
}

static void *spare_thread(void *arg)
{
    (void)arg;
    static void *blocks[SPARE_MOST];
    static unsigned at[SPARE_MOST];
    const unsigned cls = tiny_class_of(SPARE_SIZE);
    const tiny_slab_t *slab[3];
    unsigned n = spare_fill(blocks, at, slab, 3);
    tiny_heap_t *heap = tiny_heap_tls;
    CHECK(slab[2] == heap->current[cls] && slab[0]->units == 1,
          "%d B: the third slab is current, of one unit", SPARE_SIZE);
    /* The current slab's last block freed: it stays current, and its
     * SuperSlab is where the heap keeps empty slabs. Then the first two. */
    spare_free(blocks, at, n, 2);
    bool same = seg_superslab_of(slab[0]) == seg_superslab_of(slab[2]) &&
                seg_superslab_of(slab[1]) == seg_superslab_of(slab[2]);
    tiny_stats_t before, after;
    tiny_stats(&before);
    spare_free(blocks, at, n, 0);
    tiny_stats(&after);
    if (same) {
        CHECK(heap->spare[cls] == slab[0] && after.bytes_in_slabs == before.bytes_in_slabs,
              "%d B: the emptied slab is the class's spare, not released", SPARE_SIZE);
        CHECK(heap_records_agree(heap), "%d B: the heap counts its spare (%u)", SPARE_SIZE,
              heap->spares_held);
        spare_free(blocks, at, n, 1);
        tiny_stats(&before);
        CHECK(heap->spare[cls] == slab[0] &&
                  before.bytes_in_slabs + HS_UNIT_SIZE == after.bytes_in_slabs,
              "%d B: a second emptied slab is released (slabs: %llu -> %llu bytes)", SPARE_SIZE,
              (unsigned long long)after.bytes_in_slabs, (unsigned long long)before.bytes_in_slabs);
        /* The current slab fills, and the next one is the spare. */
        const tiny_slab_t *again[2];
        n = spare_fill(blocks, at, again, 2);
        CHECK(again[0] == slab[2] && again[1] == slab[0] && heap->spare[cls] == NULL,
              "%d B: the class's next slab is its spare", SPARE_SIZE);
        CHECK(heap_records_agree(heap), "%d B: the spare taken is counted out (%u held)",
              SPARE_SIZE, heap->spares_held);
        spare_free(blocks, at, n, 0);
        spare_free(blocks, at, n, 1);
        /* slab[2], no longer current, is the spare now; slab[0] is current. */
        CHECK(heap->spare[cls] == slab[2] && heap->current[cls] == slab[0],
              "%d B: the slab emptied next is the spare again", SPARE_SIZE);
        hugeslab_malloc_trim(0);
        CHECK(heap->spare[cls] == NULL, "%d B: malloc_trim releases the spare", SPARE_SIZE);
        CHECK(heap_records_agree(heap), "%d B: the spare released is counted out (%u held)",
              SPARE_SIZE, heap->spares_held);
        n = spare_fill(blocks, at, slab, 3);
        spare_free(blocks, at, n, 2);
        spare_free(blocks, at, n, 0);
        spare_free(blocks, at, n, 1);
    } else {
        /* Not where the heap keeps empty slabs: released. */
        CHECK(heap->spare[cls] == NULL &&
                  after.bytes_in_slabs + HS_UNIT_SIZE == before.bytes_in_slabs,
              "%d B: an emptied slab outside the kept SuperSlab is released", SPARE_SIZE);
        spare_free(blocks, at, n, 1);
    }
    return NULL;
}

/* The thread leaves a spare behind if it can; its exit releases it with
 * the rest of its slabs: the bytes in slabs are back where they were. */
static void check_spare(void)
{
    tiny_stats_t before, after;
    tiny_stats(&before);
    pthread_t t;
    if (pthread_create(&t, NULL, spare_thread, NULL) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    pthread_join(t, NULL);
    tiny_stats(&after);
    CHECK(after.bytes_in_slabs == before.bytes_in_slabs,
          "a spare outlived its thread: %llu bytes in slabs before, %llu after",
          (unsigned long long)before.bytes_in_slabs, (unsigned long long)after.bytes_in_slabs);
}

/* Threads that cut many slabs get SuperSlabs of their own (slab_owner in
 * tiny.c): once both of two threads have cut more than
 * TINY_HOME_UNITS_CUT units (and freed them: their own SuperSlabs have
 * room) and TINY_HOME_AGE_MS have passed since, the slabs each cuts next
 * lie in SuperSlabs that hold no slab of the other's cut after that point,
 * and each heap's home is its own. Before the wait has passed, a heap that
 * cut that many is waiting or tagged, never neither. */
enum { HOME_BIG = 16 * 1024, HOME_BIG_COUNT = 160, HOME_SMALL = 3000, HOME_SMALL_COUNT = 48 };
typedef struct home_thread_s {
    void *big[HOME_BIG_COUNT];
    void *small[HOME_SMALL_COUNT];
    tiny_heap_t *heap;
    const seg_superslab_t *home;
} home_thread_t;
static pthread_barrier_t home_barrier;

/* Called by a thread that has cut more than TINY_HOME_UNITS_CUT units:
 * sleeps past TINY_HOME_AGE_MS, after which its next slab is cut under its
 * owner tag. */
static void home_wait(void)
{
    tiny_heap_t *heap = tiny_heap_tls;
    CHECK(heap->units_cut >= TINY_HOME_UNITS_CUT && (heap->home_after_ms != 0 || heap->owner_slot),
          "a heap that cut %u units neither waits for its tag nor has it", heap->units_cut);
    struct timespec wait = {0, (TINY_HOME_AGE_MS + 10) * 1000000L};
    nanosleep(&wait, NULL);
}

static void *home_thread(void *arg)
{
    home_thread_t *me = arg;
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) me->big[i] = malloc(HOME_BIG);
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) free(me->big[i]);
    home_wait();
    pthread_barrier_wait(&home_barrier);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) me->small[i] = malloc(HOME_SMALL);
    me->heap = tiny_heap_tls;
    me->home = me->heap->home;
    /* Both keep their blocks until both have looked. */
    pthread_barrier_wait(&home_barrier);
    pthread_barrier_wait(&home_barrier);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) free(me->small[i]);
    return NULL;
}

static void check_homes(void)
{
    static home_thread_t threads[2];
    pthread_t t[2];
    if (seg_cpus_allowed() < 2) {
        printf("internal: check_homes skipped: one CPU, one owner slot\n");
        return;
    }
    pthread_barrier_init(&home_barrier, NULL, 3);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, home_thread, &threads[i]) != 0) {
            HS_FAIL("pthread_create");
            return;
        }
    pthread_barrier_wait(&home_barrier);
    pthread_barrier_wait(&home_barrier);
    unsigned shared = 0;
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++)
        for (unsigned j = 0; j < HOME_SMALL_COUNT; j++)
            shared +=
                threads[0].small[i] && threads[1].small[j] &&
                seg_superslab_of(threads[0].small[i]) == seg_superslab_of(threads[1].small[j]);
    CHECK(shared == 0, "%u pairs of the two threads' later %d-byte blocks share a SuperSlab",
          shared, HOME_SMALL);
    for (int i = 0; i < 2; i++) {
        CHECK(threads[i].heap->owner_slot, "thread %d holds no owner slot", i);
        const seg_superslab_t *home = threads[i].home;
        CHECK(home && home->owner == (uintptr_t)threads[i].heap &&
                  home == seg_superslab_of(threads[i].small[HOME_SMALL_COUNT - 1]),
              "thread %d's home %p: owner %#lx, its heap %p", i, (const void *)home,
              home ? (unsigned long)home->owner : 0UL, (void *)threads[i].heap);
    }
    pthread_barrier_wait(&home_barrier);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&home_barrier);
}

/* The wait before the tag, on a clock of the test's: a thread that cut
 * more than TINY_HOME_UNITS_CUT units goes on cutting untagged while the
 * clock stands still, and its next slab is cut under its tag once the clock
 * has moved TINY_HOME_AGE_MS on. */
static _Atomic uint64_t home_clock_ms = 1000000;
static uint64_t home_clock(void) { return atomic_load(&home_clock_ms); }
static sem_t home_wait_go[2]; /* main -> thread, thread -> main */

static void *home_wait_thread(void *arg)
{
    home_thread_t *me = arg;
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) me->big[i] = malloc(HOME_BIG);
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) free(me->big[i]);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) me->small[i] = malloc(HOME_SMALL);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) free(me->small[i]);
    me->heap = tiny_heap_tls;
    CHECK(!me->heap->owner_slot && me->heap->home_after_ms != 0,
          "tagged before the clock moved (units cut %u)", me->heap->units_cut);
    sem_post(&home_wait_go[1]);
    sem_wait(&home_wait_go[0]);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) me->small[i] = malloc(HOME_SMALL);
    CHECK(me->heap->owner_slot && me->heap->home_aged, "untagged %d ms after it cut %u units",
          TINY_HOME_AGE_MS, me->heap->units_cut);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) free(me->small[i]);
    return NULL;
}

static void check_home_wait(void)
{
    static home_thread_t thread;
    pthread_t t;
    if (seg_cpus_allowed() < 2) {
        printf("internal: check_home_wait skipped: one CPU, one owner slot\n");
        return;
    }
    sem_init(&home_wait_go[0], 0, 0);
    sem_init(&home_wait_go[1], 0, 0);
    seg_set_clock(home_clock);
    if (pthread_create(&t, NULL, home_wait_thread, &thread) != 0) {
        HS_FAIL("pthread_create");
        seg_set_clock(NULL);
        return;
    }
    sem_wait(&home_wait_go[1]);
    atomic_fetch_add(&home_clock_ms, TINY_HOME_AGE_MS);
    sem_post(&home_wait_go[0]);
    pthread_join(t, NULL);
    seg_set_clock(NULL);
    sem_destroy(&home_wait_go[0]);
    sem_destroy(&home_wait_go[1]);
}

/* Owner slots: with more heavy threads than CPUs, as many hold a slot as
 * there are CPUs, and a leaving thread's slot is free again. */
enum { SLOT_THREADS_MAX = 257 };
static pthread_barrier_t slot_barrier;
static _Atomic unsigned slot_holders;

static void *slot_thread(void *arg)
{
    (void)arg;
    static _Thread_local void *blocks[HOME_BIG_COUNT];
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) blocks[i] = malloc(HOME_BIG);
    for (unsigned i = 0; i < HOME_BIG_COUNT; i++) free(blocks[i]);
    home_wait();
    pthread_barrier_wait(&slot_barrier);
    void *small[HOME_SMALL_COUNT];
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) small[i] = malloc(HOME_SMALL);
    if (tiny_heap_tls->owner_slot) atomic_fetch_add(&slot_holders, 1);
    pthread_barrier_wait(&slot_barrier);
    for (unsigned i = 0; i < HOME_SMALL_COUNT; i++) free(small[i]);
    return NULL;
}

static void check_owner_slots(void)
{
    unsigned cpus = seg_cpus_allowed(), n = cpus + 1;
    if (n > SLOT_THREADS_MAX) {
        printf("internal: check_owner_slots skipped: %u CPUs\n", cpus);
        return;
    }
    static pthread_t t[SLOT_THREADS_MAX];
    uint32_t before = atomic_load(&tiny_state.owner_heaps);
    pthread_barrier_init(&slot_barrier, NULL, n);
    unsigned started = 0;
    for (; started < n; started++)
        if (pthread_create(&t[started], NULL, slot_thread, NULL) != 0) break;
    CHECK(started == n, "pthread_create: %u of %u threads", started, n);
    if (started < n) abort(); /* the others wait at the barrier */
    for (unsigned i = 0; i < n; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&slot_barrier);
    unsigned free_slots = cpus - before;
    CHECK(atomic_load(&slot_holders) == free_slots,
          "%u heavy threads, %u CPUs, %u slots held before: %u held one", n, cpus, before,
          atomic_load(&slot_holders));
    CHECK(atomic_load(&tiny_state.owner_heaps) == before,
          "owner slots held after the threads left: %u, before %u",
          atomic_load(&tiny_state.owner_heaps), before);
}

/* ---- slabs of another heap freed whole while threads outnumber CPUs ------- */

enum { RECLAIM_SIZE = 2000, RECLAIM_SLABS = 4, RECLAIM_MOST = 1024 };
#define RECLAIM_CLASS tiny_class_of(RECLAIM_SIZE)

static struct {
    sem_t go[2]; /* main -> victim, victim -> main */
    void *blocks[RECLAIM_MOST];
    unsigned at[RECLAIM_MOST]; /* slab index of blocks[k] */
    const tiny_slab_t *slab[RECLAIM_SLABS];
    unsigned n;
    tiny_heap_t *heap;
    void *other_class;
} victim;

/* Cuts RECLAIM_SLABS slabs of RECLAIM_SIZE (the first ones go to the full
 * list as the next are cut), lets main free a block of each of the first
 * three, takes the notices with a refill of another class, then waits
 * until main is done. */
static void *victim_thread(void *arg)
{
    (void)arg;
    unsigned found = 0;
    while (victim.n < RECLAIM_MOST && found < RECLAIM_SLABS) {
        void *p = hugeslab_malloc(RECLAIM_SIZE);
        const tiny_slab_t *s = tiny_slab_of(p);
        if (found == 0 || s != victim.slab[found - 1]) victim.slab[found++] = s;
        victim.at[victim.n] = found - 1;
        victim.blocks[victim.n++] = p;
    }
    victim.heap = tiny_heap_tls;
    sem_post(&victim.go[1]);
    sem_wait(&victim.go[0]);
    victim.other_class = hugeslab_malloc(5 * RECLAIM_SIZE / 2); /* a refill: notices taken */
    sem_post(&victim.go[1]);
    sem_wait(&victim.go[0]);
    return NULL;
}

static void *idle_heap_thread(void *arg)
{
    pthread_barrier_t *b = arg;
    hugeslab_free(hugeslab_malloc(16)); /* a heap, attached until the thread leaves */
    pthread_barrier_wait(b);            /* all started */
    pthread_barrier_wait(b);            /* the check is done */
    return NULL;
}

/* Cuts slabs in a fresh thread from its next cut on, which looks at the
 * other heaps' slabs (TINY_RECLAIM_EVERY_CUTS). */
static void *cutting_thread(void *arg)
{
    (void)arg;
    static void *cut[4096];
    unsigned n = 0;
    hugeslab_free(hugeslab_malloc(16));
    tiny_heap_tls->cuts_since_reclaim = TINY_RECLAIM_EVERY_CUTS - 1;
    while (n < 4096 && tiny_heap_tls->cuts_since_reclaim != 0) cut[n++] = hugeslab_malloc(7000);
    CHECK(tiny_heap_tls->cuts_since_reclaim == 0, "no slab cut in %u blocks of 7000 B", n);
    while (n) hugeslab_free(cut[--n]);
    return NULL;
}

static bool slab_in_list(const tiny_slab_t *list, const tiny_slab_t *s)
{
    for (; list; list = list->next)
        if (list == s) return true;
    return false;
}

/* Another thread frees every block of two of the victim's slabs while the
 * victim sleeps, and all but one of a third: with more threads holding a
 * heap than CPUs, the next heap to look (every TINY_RECLAIM_EVERY_CUTS
 * slabs it cuts) releases the two, and leaves the third and the victim's
 * current slab. With no more threads than CPUs, nothing is released. */
static void check_reclaim_from_others(void)
{
    unsigned cpus = seg_cpus_allowed();
    if (cpus > SLOT_THREADS_MAX) {
        printf("internal: check_reclaim_from_others skipped: %u CPUs\n", cpus);
        return;
    }
    sem_init(&victim.go[0], 0, 0);
    sem_init(&victim.go[1], 0, 0);
    pthread_t v;
    if (pthread_create(&v, NULL, victim_thread, NULL) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    sem_wait(&victim.go[1]);
    const tiny_slab_t **slab = victim.slab;
    bool on_full = true;
    for (unsigned i = 0; i < RECLAIM_SLABS - 1; i++) on_full &= slab[i]->on_full;
    CHECK(victim.n < RECLAIM_MOST && on_full && !slab[RECLAIM_SLABS - 1]->on_full,
          "%u blocks in %u slabs, the first ones on the full list", victim.n, RECLAIM_SLABS);
    /* One block of each of the first three: a notice each on the delayed list. */
    bool noticed[RECLAIM_SLABS] = {false};
    for (unsigned k = 0; k < victim.n; k++) {
        unsigned i = victim.at[k];
        if (i < RECLAIM_SLABS - 1 && !noticed[i]) {
            noticed[i] = true;
            hugeslab_free(victim.blocks[k]);
            victim.blocks[k] = NULL;
        }
    }
    sem_post(&victim.go[0]);
    sem_wait(&victim.go[1]); /* the victim took the notices: the three on its partial list */
    bool partial = true;
    for (unsigned i = 0; i < RECLAIM_SLABS - 1; i++)
        partial &= !slab[i]->on_full && slab_in_list(victim.heap->partial[RECLAIM_CLASS], slab[i]);
    CHECK(partial, "the noticed slabs are back on the partial list");
    /* The rest of slabs 0 and 1, and of slab 2 all but one block. */
    void *kept = NULL;
    for (unsigned k = 0; k < victim.n; k++) {
        if (!victim.blocks[k] || victim.at[k] == RECLAIM_SLABS - 1) continue;
        if (victim.at[k] == 2 && !kept) {
            kept = victim.blocks[k];
            victim.blocks[k] = NULL;
            continue;
        }
        hugeslab_free(victim.blocks[k]);
        victim.blocks[k] = NULL;
    }
    uint64_t before = atomic_load(&tiny_state.stat_bytes_in_slabs);
    if (atomic_load(&tiny_state.stat_threads_live) <= cpus) {
        tiny_reclaim_from_others(tiny_heap_tls);
        CHECK(atomic_load(&tiny_state.stat_bytes_in_slabs) == before &&
                  slab_in_list(victim.heap->partial[RECLAIM_CLASS], slab[0]),
              "%u threads with a heap, %u CPUs: nothing released",
              (unsigned)atomic_load(&tiny_state.stat_threads_live), cpus);
    }
    /* More threads with a heap than CPUs. */
    static pthread_t idle[SLOT_THREADS_MAX];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, cpus + 1);
    unsigned started = 0;
    for (; started < cpus; started++)
        if (pthread_create(&idle[started], NULL, idle_heap_thread, &b) != 0) break;
    if (started < cpus) abort(); /* the others wait at the barrier */
    pthread_barrier_wait(&b);
    pthread_t cutter;
    if (pthread_create(&cutter, NULL, cutting_thread, NULL) != 0) abort();
    pthread_join(cutter, NULL);
    /* Their descriptors may serve the cutting thread's slabs by now. */
    bool released = true;
    for (unsigned i = 0; i < 2; i++)
        released &= slab[i]->owner_word != (uintptr_t)victim.heap &&
                    !slab_in_list(victim.heap->partial[RECLAIM_CLASS], slab[i]) &&
                    !slab_in_list(victim.heap->full[RECLAIM_CLASS], slab[i]);
    CHECK(released, "slabs freed whole by another thread are released");
    CHECK(slab[2]->owner_word == (uintptr_t)victim.heap &&
              slab_in_list(victim.heap->partial[RECLAIM_CLASS], slab[2]) &&
              slab[3]->owner_word == (uintptr_t)victim.heap &&
              victim.heap->current[RECLAIM_CLASS] == slab[3],
          "a slab with a block in use and the current slab stay the victim's");
    hugeslab_free(kept);
    pthread_barrier_wait(&b);
    for (unsigned i = 0; i < cpus; i++) pthread_join(idle[i], NULL);
    pthread_barrier_destroy(&b);
    sem_post(&victim.go[0]);
    pthread_join(v, NULL);
    for (unsigned k = 0; k < victim.n; k++) hugeslab_free(victim.blocks[k]);
    hugeslab_free(victim.other_class);
    sem_destroy(&victim.go[0]);
    sem_destroy(&victim.go[1]);
}

/* Borrowing (borrow_from_larger in tiny.c), on a thread of its own: 256 B
 * blocks whose refill would carve, and a free block of the 272 B class. */
enum { BORROW_BLOCKS = 64, BORROW_MOST = 1024 };
/* Allocates blocks of `size` until the class's current slab has no free
 * block left, then one more, which the refill serves; returns it. */
static void *borrow_drain(size_t size, void **kept, unsigned *n)
{
    tiny_heap_t *heap = tiny_heap_tls;
    unsigned cls = tiny_class_of(size);
    while (heap->current[cls]->free && *n < BORROW_MOST) kept[(*n)++] = hugeslab_malloc(size);
    void *p = hugeslab_malloc(size);
    kept[(*n)++] = p;
    return p;
}

/* Frees, on another thread, up to `most` (at most 16) of kept's blocks
 * that lie in s; returns how many. */
static unsigned free_remotely_of(void **kept, unsigned n, const tiny_slab_t *s, unsigned most)
{
    void *of_s[16];
    unsigned k = hs_take_blocks_of(s, kept, n, of_s, most < 16 ? most : 16);
    hs_free_on_other_thread(of_s, k);
    return k;
}

/* Makes size's current slab recycled with free blocks. */
static const tiny_slab_t *recycled_lender(size_t size, void **kept, unsigned *n)
{
    for (unsigned i = 0; i < BORROW_BLOCKS; i++) kept[(*n)++] = hugeslab_malloc(size);
    const tiny_slab_t *s = tiny_heap_tls->current[tiny_class_of(size)];
    free_remotely_of(kept, *n, s, BORROW_BLOCKS / 2);
    borrow_drain(size, kept, n); /* collects them */
    s = tiny_heap_tls->current[tiny_class_of(size)];
    CHECK(s->recycled && s->free, "%zu B: the slab is recycled and has free blocks", size);
    return s;
}

static void *borrow_thread(void *arg)
{
    (void)arg;
    static void *small[BORROW_MOST], *larger[BORROW_MOST];
    unsigned n_small = 0, n_larger = 0;
    const unsigned cls = tiny_class_of(256), up = tiny_class_of(272);
    CHECK(up == cls + 1 && tiny_class_size[up] == 272, "272 B is the class after 256 B");
    for (unsigned i = 0; i < BORROW_BLOCKS; i++) {
        small[n_small++] = hugeslab_malloc(256);
        larger[n_larger++] = hugeslab_malloc(272);
    }
    tiny_heap_t *heap = tiny_heap_tls; /* the thread's, once it allocated */
    /* The larger class recycled: half its blocks freed by another thread,
     * which never allocates, so each free goes to the slab's remote-free
     * stack at once, not to a batch; the refill that drains the free list
     * collects them. */
    hs_free_on_other_thread(larger, BORROW_BLOCKS / 2);
    for (unsigned i = 0; i < BORROW_BLOCKS / 2; i++) larger[i] = NULL;
    borrow_drain(272, larger, &n_larger);
    const tiny_slab_t *lender = heap->current[up];
    CHECK(lender->recycled && lender->free, "272 B: the slab is recycled and has free blocks");
    /* Not recycled: the 256 B slab carves its next page. */
    tiny_slab_t *own = heap->current[cls];
    uint32_t carved = atomic_load(&own->carved);
    void *p = borrow_drain(256, small, &n_small);
    CHECK(hugeslab_malloc_usable_size(p) == 256 && atomic_load(&own->carved) > carved,
          "a slab never recycled carves (usable size %zu)", hugeslab_malloc_usable_size(p));
    /* Recycled: the next refill that would carve borrows a 272 B block. */
    hs_free_on_other_thread(small, BORROW_BLOCKS / 2);
    for (unsigned i = 0; i < BORROW_BLOCKS / 2; i++) small[i] = NULL;
    borrow_drain(256, small, &n_small); /* collects the remote frees */
    CHECK(own == heap->current[cls] && own->recycled, "256 B: the slab is recycled");
    carved = atomic_load(&own->carved);
    uint32_t lent = lender->used;
    p = borrow_drain(256, small, &n_small);
    CHECK(hugeslab_malloc_usable_size(p) == 272 && tiny_slab_of(p) == lender &&
              lender->used == lent + 1 && atomic_load(&own->carved) == carved,
          "a recycled slab with nothing free borrows from the class above (usable size %zu, "
          "carved %u -> %u)",
          hugeslab_malloc_usable_size(p), carved, atomic_load(&own->carved));
    /* The lender with no free block but remote frees waiting: the borrow
     * collects them. */
    while (heap->current[up] == lender && lender->free && n_larger < BORROW_MOST)
        larger[n_larger++] = hugeslab_malloc(272);
    unsigned k = free_remotely_of(larger, n_larger, lender, 4);
    CHECK(heap->current[up] == lender && !lender->free && atomic_load(tiny_remote_word(lender)),
          "272 B: the lender has no free block and %u remote frees waiting", k);
    lent = lender->used;
    p = hugeslab_malloc(256);
    small[n_small++] = p;
    CHECK(tiny_slab_of(p) == lender && lender->used == lent - k + 1 &&
              atomic_load(&own->carved) == carved,
          "a borrow collects the lender's remote frees (usable size %zu, in use %u -> %u, "
          "carved %u -> %u)",
          hugeslab_malloc_usable_size(p), lent, lender->used, carved, atomic_load(&own->carved));
    for (unsigned i = 0; i < n_small; i++) hugeslab_free(small[i]);
    for (unsigned i = 0; i < n_larger; i++) hugeslab_free(larger[i]);
    return NULL;
}

/* The classes a refill borrows from: up to twice its size. 256 B blocks,
 * a 528 B slab to lend (more than twice), then a 512 B one (twice). */
static void *borrow_twice_thread(void *arg)
{
    (void)arg;
    static void *small[BORROW_MOST], *larger[BORROW_MOST];
    unsigned n_small = 0, n_larger = 0;
    const unsigned cls = tiny_class_of(256);
    for (unsigned i = 0; i < BORROW_BLOCKS; i++) small[n_small++] = hugeslab_malloc(256);
    tiny_heap_t *heap = tiny_heap_tls; /* the thread's, once it allocated */
    const tiny_slab_t *beyond = recycled_lender(528, larger, &n_larger);
    /* 256 B recycled, with nothing free: its refill carves. */
    free_remotely_of(small, n_small, heap->current[cls], 8);
    borrow_drain(256, small, &n_small); /* collects them */
    tiny_slab_t *own = heap->current[cls];
    uint32_t carved = atomic_load(&own->carved);
    CHECK(own->recycled, "256 B: the slab is recycled");
    void *p = borrow_drain(256, small, &n_small);
    CHECK(tiny_slab_of(p) != beyond && hugeslab_malloc_usable_size(p) == 256,
          "528 B is more than twice 256 B: no borrow (usable size %zu)",
          hugeslab_malloc_usable_size(p));
    /* Recycled again (the carve ended it), and a 512 B slab to lend. */
    const tiny_slab_t *twice = recycled_lender(512, larger, &n_larger);
    own = heap->current[cls];
    free_remotely_of(small, n_small, own, 8);
    borrow_drain(256, small, &n_small);
    own = heap->current[cls];
    carved = atomic_load(&own->carved);
    p = borrow_drain(256, small, &n_small);
    CHECK(tiny_slab_of(p) == twice && atomic_load(&own->carved) == carved,
          "a refill borrows from a class of twice its size (usable size %zu, carved %u -> %u)",
          hugeslab_malloc_usable_size(p), carved, atomic_load(&own->carved));
    for (unsigned i = 0; i < n_small; i++) hugeslab_free(small[i]);
    for (unsigned i = 0; i < n_larger; i++) hugeslab_free(larger[i]);
    return NULL;
}

/* A refill that moves the class's current slab to the full list and then
 * comes to another of its slabs that would carve: that one carves and
 * becomes current, as a current slab is never on the full list (a borrow
 * there left the full one current, and a later collect() of it found its
 * FULL bit: debug_stress's assertion). 384 B blocks, 400 B to borrow. */
static void *borrow_after_full_thread(void *arg)
{
    (void)arg;
    static void *blocks[BORROW_MOST], *larger[BORROW_MOST];
    unsigned n = 0, n_larger = 0;
    const unsigned cls = tiny_class_of(384);
    for (unsigned i = 0; i < BORROW_BLOCKS; i++) larger[n_larger++] = hugeslab_malloc(400);
    tiny_heap_t *heap = tiny_heap_tls;
    hs_free_on_other_thread(larger, BORROW_BLOCKS / 2);
    for (unsigned i = 0; i < BORROW_BLOCKS / 2; i++) larger[i] = NULL;
    borrow_drain(400, larger, &n_larger); /* recycled, with free blocks */
    /* Slab x filled until slab y takes over: x goes to the full list. */
    tiny_slab_t *x = NULL, *y = NULL;
    while (!y && n < BORROW_MOST) {
        void *p = hugeslab_malloc(384);
        blocks[n++] = p;
        if (!x) x = tiny_slab_of(p);
        if (tiny_slab_of(p) != x) y = tiny_slab_of(p);
    }
    CHECK(x && y && x->on_full && heap->current[cls] == y, "384 B: a second slab took over");
    if (!x || !y) return NULL;
    /* y recycled, and with no free block left. */
    void *first_of_y = blocks[n - 1];
    blocks[n - 1] = NULL;
    hs_free_on_other_thread(&first_of_y, 1);
    borrow_drain(384, blocks, &n); /* collects it */
    while (heap->current[cls]->free) blocks[n++] = hugeslab_malloc(384);
    CHECK(y->recycled && !y->free && heap->current[cls] == y, "384 B: y is recycled and empty");
    /* x's blocks freed elsewhere: the first is a notice, which brings x back
     * to the head of the partial list and makes it current; its free list
     * is then drained, and so are the remote frees it collects. */
    free_remotely_of(blocks, n, x, 8);
    blocks[n++] = hugeslab_malloc(384);
    CHECK(heap->current[cls] == x && !x->on_full, "384 B: x is current again");
    while (heap->current[cls]->free || atomic_load(tiny_remote_word(x)))
        blocks[n++] = hugeslab_malloc(384);
    /* x has no room: the refill moves it to the full list, then y carves. */
    void *p = hugeslab_malloc(384);
    blocks[n++] = p;
    CHECK(!heap->current[cls]->on_full && heap->current[cls] == y && tiny_slab_of(p) == y,
          "384 B: the refill that moved x to the full list made y current (current %s, on "
          "the full list: %d)",
          heap->current[cls] == x   ? "x"
          : heap->current[cls] == y ? "y"
                                    : "another",
          heap->current[cls]->on_full);
    for (unsigned i = 0; i < n; i++) hugeslab_free(blocks[i]);
    for (unsigned i = 0; i < n_larger; i++) hugeslab_free(larger[i]);
    return NULL;
}

static void check_borrow(void)
{
    void *(*threads[])(void *) = {borrow_thread, borrow_twice_thread, borrow_after_full_thread};
    for (unsigned i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, threads[i], NULL) != 0) {
            HS_FAIL("pthread_create");
            return;
        }
        pthread_join(t, NULL);
    }
}

/* The fork handlers are registered once the process needs them
 * (common/locks.h): at its start where a hugetlb pool may back its heap,
 * else not while it has had one thread and no hugetlb memory, and before a
 * second thread runs its first instruction (glibc's pthread_create
 * allocates on the creating thread first). The thread is made in a child,
 * whose heap is made first, as a program's would be: the checks after this
 * one want this process's heap as it starts. */
static atomic_bool armed_as_thread_began;
static void *note_armed(void *arg)
{
    atomic_store(&armed_as_thread_began, atomic_load(&hs_fork_handlers_armed));
    return arg;
}

static void check_fork_handlers_late(void)
{
    bool armed_at_main = atomic_load(&hs_fork_handlers_armed);
    int64_t backing = hs_option(HS_OPT_BACKING);
    bool pool =
        backing != HS_BACKING_THP && backing != HS_BACKING_BASE && os_hugetlb_pool_configured();
    hugeslab_stats_t stats;
    hugeslab_stats(&stats);
    if (pool)
        CHECK(armed_at_main,
              "a process that may map hugetlb pages started without its fork handlers");
    else if (stats.superslabs_hugetlb == 0)
        CHECK(!armed_at_main,
              "fork handlers registered in a process of one thread without hugetlb memory");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        void *first = hugeslab_malloc(16);
        pthread_t thread;
        if (!first || pthread_create(&thread, NULL, note_armed, NULL) != 0) _exit(2);
        pthread_join(thread, NULL);
        hugeslab_free(first);
        _exit(atomic_load(&armed_as_thread_began) ? 0 : 3);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 2,
          "the child: malloc or pthread_create failed");
    CHECK(!WIFEXITED(status) || WEXITSTATUS(status) != 3,
          "a second thread ran before the fork handlers were registered");
}

int main(void)
{
    check_fork_handlers_late(); /* first: before any other thread, the purge thread's too */
    check_realloc_in_place();   /* early: on a fresh heap (its comment) */
    check_homes();              /* early: no heap of this thread holds an owner slot yet */
    check_home_wait();
    check_owner_slots();
    check_reclaim_from_others();
    check_classes();
    check_direct_entries();
    check_block_key();
    check_malloc_classes();
    check_sized();
    check_slab_tails();
    check_trips_both();
    check_spare();
    check_remote_batch();
    check_remote_batch_exit();
    check_borrow();
    return hs_finish("internal");
}

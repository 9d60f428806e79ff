/* tiny's orphan and trim paths, checked with hugeslab_stats: linked with
 * the library's objects and built against src/ headers, like internal_test.
 *   - a thread that exits holding blocks leaves its slabs as orphans;
 *   - a thread of the same node that needs a slab of that class adopts the
 *     orphan (its block comes from one of the exited thread's slabs);
 *   - an orphan with no free block of its own goes back with the last of
 *     its blocks that another thread frees, a slab of pages (which is never
 *     adopted) too; malloc_trim releases the rest of the empty ones;
 *   - malloc_trim releases the empty slabs a thread keeps as its current
 *     ones;
 *   - slabs that other threads' frees emptied while their owner waited go
 *     back at the last free, but for its current one and one where it
 *     still holds a block; so do hundreds of them whose blocks are freed
 *     in a random order, so that the owner's delayed list holds a notice
 *     for each and the walks of it are put off (reclaim_empty);
 *   - a slab on its owner's partial list whose blocks in use all came back
 *     through another thread's frees goes back when the purge thread looks
 *     (tiny_reclaim_emptied), called here directly; so do slabs of pages
 *     whose one block another thread freed while their owner slept; and,
 *     in a fork child with a purge delay of 50 ms, a full slab and a
 *     partial one emptied by another thread while their owner holds its
 *     heap's flag past the thread's look go back soon after the flag is
 *     left (the full one's last free asks for the look; the thread looks
 *     again after passing the busy heap over);
 *   - a slab its owner recycled (a refill collected remote frees into it
 *     since its last carve) stays its owner's when another thread frees
 *     it whole, and goes back when the purge thread looks.
 * The purge thread, which sweeps orphans too, is kept asleep by a purge
 * delay of an hour, so each step's figures are the test's own. A thread
 * that leaves orphans wakes it for one sweep (which releases only empty
 * ones); it is started here first, so that its own memory (pthread_create
 * allocates) comes from the main thread's heap, not from an exiting one's,
 * where it would pin an orphan for the life of the process. */
#include "slab_util.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hugeslab.h"
#include "segment/segment.h"
#include "tiny/tiny_internal.h"

#define BLOCKS 64

typedef struct {
    size_t size;        /* bytes per block */
    unsigned keep;      /* blocks left allocated at exit */
    void *kept[BLOCKS]; /* those blocks */
    void *all[BLOCKS];  /* every block it had, freed or not */
} job_t;

static void *allocate_and_exit(void *arg)
{
    job_t *job = arg;
    void *blocks[BLOCKS];
    for (unsigned i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(job->size);
        if (blocks[i]) memset(blocks[i], 0x33, job->size);
    }
    for (unsigned i = 0; i < BLOCKS; i++) {
        if (i < job->keep)
            job->kept[i] = blocks[i];
        else
            free(blocks[i]);
    }
    memcpy(job->all, blocks, sizeof blocks);
    return NULL;
}

static void run_thread(job_t *job)
{
    pthread_t t;
    if (pthread_create(&t, NULL, allocate_and_exit, job) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    pthread_join(t, NULL);
}

static hugeslab_stats_t stats(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    return s;
}

static void check_adoption(void)
{
    /* Half the blocks stay: the slab is an orphan with room. */
    job_t job = {.size = 3000, .keep = BLOCKS / 2};
    uint64_t before = stats().orphan_slabs;
    run_thread(&job);
    uint64_t after_exit = stats().orphan_slabs;
    CHECK(after_exit > before, "orphans %llu after a thread exited holding blocks, before %llu",
          (unsigned long long)after_exit, (unsigned long long)before);
    /* The main thread never used this class: its first block is adopted. */
    void *p = malloc(job.size);
    uint64_t after_adopt = stats().orphan_slabs;
    CHECK(after_adopt == after_exit - 1, "orphans %llu after one adoption, want %llu",
          (unsigned long long)after_adopt, (unsigned long long)(after_exit - 1));
    bool theirs = false;
    for (unsigned i = 0; p && i < BLOCKS; i++)
        theirs |= tiny_slab_of(p) == tiny_slab_of(job.all[i]);
    CHECK(theirs, "the block %p is not from a slab of the exited thread", p);
    free(p);
    for (unsigned i = 0; i < job.keep; i++) free(job.kept[i]);
}

static void check_trim_releases_orphans(void)
{
    job_t job = {.size = 2000, .keep = BLOCKS};
    uint64_t before = stats().orphan_slabs;
    run_thread(&job);
    hugeslab_stats_t exited = stats();
    CHECK(exited.orphan_slabs >= 1, "no orphan after a thread exited holding %u blocks", job.keep);
    /* Every block back through remote frees: each orphan goes back with
     * its last block, not at the next sweep, but one that holds free
     * blocks of its own (carved, never handed out), which is left to the
     * sweep (or an adoption). */
    uint64_t keeping = 0;
    for (unsigned i = 0; i < job.keep; i++) {
        tiny_slab_t *s = tiny_slab_of(job.kept[i]);
        bool first = true;
        for (unsigned k = 0; k < i; k++) first &= tiny_slab_of(job.kept[k]) != s;
        keeping += first && s->free != NULL;
    }
    for (unsigned i = 0; i < job.keep; i++) free(job.kept[i]);
    hugeslab_stats_t freed = stats();
    CHECK(freed.orphan_slabs == before + keeping,
          "orphans %llu once their blocks were freed, want %llu (%llu with free blocks)",
          (unsigned long long)freed.orphan_slabs, (unsigned long long)(before + keeping),
          (unsigned long long)keeping);
    malloc_trim(0);
    hugeslab_stats_t trimmed = stats();
    CHECK(trimmed.orphan_slabs == 0, "orphans %llu after malloc_trim, want 0",
          (unsigned long long)trimmed.orphan_slabs);
    CHECK(trimmed.bytes_in_slabs < exited.bytes_in_slabs,
          "bytes in slabs %llu after malloc_trim, %llu before",
          (unsigned long long)trimmed.bytes_in_slabs, (unsigned long long)exited.bytes_in_slabs);
}

#define BALLAST_MAX 4096

/* Blocks of `size` bytes into ballast until the heap has outgrown its first
 * SuperSlabs (seg_small_heap) and the slabs hold slab_bytes (from
 * TINY_MIDDLE_HEAP_BYTES on, blocks above 128 KiB get slabs of pages:
 * tiny_sized_heap); returns how many. */
static unsigned ballast_until(void **ballast, size_t size, uint64_t slab_bytes)
{
    unsigned n = 0;
    while ((seg_small_heap() || stats().bytes_in_slabs < slab_bytes) && n < BALLAST_MAX)
        ballast[n++] = malloc(size);
    CHECK(!seg_small_heap() && stats().bytes_in_slabs >= slab_bytes &&
              (slab_bytes < TINY_MIDDLE_HEAP_BYTES || tiny_sized_heap()),
          "the heap is still small, or its slabs hold %llu bytes, after %u blocks of %zu bytes",
          (unsigned long long)stats().bytes_in_slabs, n, size);
    return n;
}

/* Slabs of pages (sized.c, blocks above 128 KiB once the slabs hold 8 MiB)
 * are never adopted: orphaned with their block in use, they went back only
 * at the purge thread's sweep, and threads that leave such blocks to the
 * main thread held their pages and SuperSlabs meanwhile. */
static void check_sized_orphans_released(void)
{
    static void *ballast[BALLAST_MAX];
    unsigned n_ballast = ballast_until(ballast, 4096, TINY_MIDDLE_HEAP_BYTES);
    job_t job = {.size = 200 * 1024, .keep = BLOCKS};
    hugeslab_stats_t before = stats();
    run_thread(&job);
    hugeslab_stats_t exited = stats();
    unsigned sized = 0;
    for (unsigned i = 0; i < job.keep; i++)
        sized += job.kept[i] && tiny_slab_of(job.kept[i])->sized;
    CHECK(sized == job.keep, "%u of %u blocks of 200 KiB in slabs of pages", sized, job.keep);
    CHECK(exited.orphan_slabs >= before.orphan_slabs + sized,
          "orphans %llu after a thread exited holding %u slabs of pages, %llu before",
          (unsigned long long)exited.orphan_slabs, sized, (unsigned long long)before.orphan_slabs);
    for (unsigned i = 0; i < job.keep; i++) free(job.kept[i]);
    hugeslab_stats_t freed = stats();
    CHECK(freed.orphan_slabs == before.orphan_slabs,
          "orphans %llu once the blocks of 200 KiB were freed, want %llu",
          (unsigned long long)freed.orphan_slabs, (unsigned long long)before.orphan_slabs);
    CHECK(freed.bytes_in_slabs == before.bytes_in_slabs,
          "bytes in slabs %llu once the blocks of 200 KiB were freed, %llu before the thread",
          (unsigned long long)freed.bytes_in_slabs, (unsigned long long)before.bytes_in_slabs);
    for (unsigned i = 0; i < n_ballast; i++) free(ballast[i]);
}

static void check_trim_releases_kept_slabs(void)
{
    void *p = malloc(6000); /* a class of its own */
    free(p);                /* its slab is empty, kept as the current one */
    hugeslab_stats_t kept = stats();
    malloc_trim(0);
    hugeslab_stats_t trimmed = stats();
    CHECK(trimmed.bytes_in_slabs < kept.bytes_in_slabs,
          "bytes in slabs %llu after malloc_trim, %llu with an empty slab kept",
          (unsigned long long)trimmed.bytes_in_slabs, (unsigned long long)kept.bytes_in_slabs);
}

static int compare_pointers(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

#define OWNER_BLOCKS_MAX 200000

/* The owner allocates `count` blocks of `size` bytes, then waits in
 * pthread_join while another thread frees all but its last block, in
 * order or in a random order (xorshift64, a fixed seed). Every slab of
 * them must go back but the owner's current one and the last block's. In
 * a random order each slab has blocks freed long before its last, so the
 * owner's delayed list holds a notice for each and the walks of it are
 * put off (reclaim_empty): at least min_slabs slabs make sure they are. */
static void check_sleeping_owners_slabs(size_t size, unsigned count, bool random_order,
                                        unsigned min_slabs)
{
    /* Slabs are taken from a sleeping owner once the heap has outgrown its
     * first SuperSlabs (seg_small_heap): blocks that need a fourth one, or
     * whose first pages (each carve touches one) spend the base-page budget
     * of the three before it. */
    static void *ballast[BALLAST_MAX];
    unsigned n_ballast = ballast_until(ballast, 16 * 1024, 0);
    static void *blocks[OWNER_BLOCKS_MAX];
    static tiny_slab_t *slabs[OWNER_BLOCKS_MAX];
    for (unsigned i = 0; i < count; i++) blocks[i] = malloc(size);
    void *kept = blocks[count - 1];
    tiny_heap_t *me = tiny_heap_tls;
    tiny_slab_t *current = me->current[tiny_class_of(size)], *kept_slab = tiny_slab_of(kept);
    /* What should go back: the units of every other slab of these blocks. */
    for (unsigned i = 0; i < count; i++) slabs[i] = tiny_slab_of(blocks[i]);
    qsort(slabs, count, sizeof slabs[0], compare_pointers);
    uint64_t expected = 0;
    unsigned n_slabs = 0;
    for (unsigned i = 0; i < count; i++) {
        if (i > 0 && slabs[i] == slabs[i - 1]) continue;
        n_slabs++;
        if (slabs[i] != current && slabs[i] != kept_slab)
            expected += slabs[i]->units * HS_UNIT_SIZE;
    }
    CHECK(expected > 0 && n_slabs >= min_slabs, "%u blocks of %zu bytes filled only %u slabs",
          count, size, n_slabs);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (unsigned i = count - 2; random_order && i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned j = (unsigned)(x % (i + 1));
        void *b = blocks[i];
        blocks[i] = blocks[j];
        blocks[j] = b;
    }
    hugeslab_stats_t before = stats();
    if (!hs_free_on_other_thread(blocks, count - 1)) return;
    hugeslab_stats_t after = stats();
    uint64_t released = before.bytes_in_slabs - after.bytes_in_slabs;
    CHECK(after.bytes_in_slabs < before.bytes_in_slabs && released >= expected,
          "%u slabs of %zu-byte blocks freed %s: bytes in slabs %llu before the remote frees, "
          "%llu after: %llu went back, want %llu",
          n_slabs, size, random_order ? "in a random order" : "in order",
          (unsigned long long)before.bytes_in_slabs, (unsigned long long)after.bytes_in_slabs,
          (unsigned long long)released, (unsigned long long)expected);
    /* Each of them, by its descriptor: released slabs have no owner, and
     * nothing was cut since (the freeing thread only frees). */
    unsigned still_owned = 0;
    for (unsigned i = 0; i < count; i++)
        if ((i == 0 || slabs[i] != slabs[i - 1]) && slabs[i] != current && slabs[i] != kept_slab)
            still_owned += atomic_load(&slabs[i]->owner_word) == (uintptr_t)me;
    CHECK(still_owned == 0, "%u of %u slabs freed whole are still their sleeping owner's",
          still_owned, n_slabs);
    CHECK(atomic_load(&kept_slab->owner_word) == (uintptr_t)me,
          "the slab of a block still in use was taken from its owner");
    CHECK(atomic_load(&current->owner_word) == (uintptr_t)me,
          "the owner's current slab was taken from it");
    /* The owner takes what is left on its delayed list at its next refill. */
    void *again[1024];
    for (unsigned i = 0; i < 1024; i++) again[i] = malloc(size);
    for (unsigned i = 0; i < 1024; i++) free(again[i]);
    free(kept);
    for (unsigned i = 0; i < n_ballast; i++) free(ballast[i]);
}

#define PARTIAL_KEEP 3
#define PARTIAL_BLOCKS 4096

/* A partial slab of the calling thread's, its first of a class of 2,200
 * bytes, with PARTIAL_KEEP blocks in use, moved to rest; the class's
 * other blocks stay in blocks[0..*n). */
static tiny_slab_t *partial_slab_with_few_blocks(void **blocks, unsigned *n_out, void **rest)
{
    const size_t size = 2200;
    unsigned n = 0;
    tiny_heap_t *me = tiny_heap_tls;
    blocks[n++] = malloc(size);
    tiny_slab_t *first = tiny_slab_of(blocks[0]);
    unsigned in_first = 1;
    while (n < PARTIAL_BLOCKS) {
        blocks[n] = malloc(size);
        if (tiny_slab_of(blocks[n]) == first) in_first++;
        n++;
        tiny_slab_t *cur = me->current[tiny_class_of(size)];
        if (cur != first && tiny_slab_of(blocks[n - 1]) != first && n > 2 * in_first) break;
    }
    CHECK(in_first > PARTIAL_KEEP, "only %u blocks of %zu bytes in a slab", in_first, size);
    /* The owner frees all of the first slab's blocks but a few: it is back
     * on the partial list with them in use. */
    unsigned kept = 0;
    for (unsigned i = 0; i < n; i++) {
        if (tiny_slab_of(blocks[i]) != first) continue;
        if (kept < PARTIAL_KEEP)
            rest[kept++] = blocks[i];
        else
            free(blocks[i]);
        blocks[i] = NULL;
    }
    CHECK(atomic_load(&first->owner_word) == (uintptr_t)me && !first->on_full &&
              me->current[tiny_class_of(size)] != first,
          "the first slab is not a partial slab of its owner's");
    *n_out = n;
    return first;
}

static void check_emptied_partial_slab_released(void)
{
    static void *ballast[BALLAST_MAX];
    unsigned n_ballast = ballast_until(ballast, 16 * 1024, 0);
    static void *blocks[PARTIAL_BLOCKS];
    void *rest[PARTIAL_KEEP];
    unsigned n;
    tiny_heap_t *me = tiny_heap_tls;
    tiny_slab_t *first = partial_slab_with_few_blocks(blocks, &n, rest);
    /* Another thread frees those: nothing tells the owner. */
    if (!hs_free_on_other_thread(rest, PARTIAL_KEEP)) return;
    CHECK(atomic_load(&first->owner_word) == (uintptr_t)me,
          "a slab with no notice went before the purge thread looked");
    CHECK(tiny_reclaim_emptied(NULL), "the purge thread's look released nothing");
    CHECK(atomic_load(&first->owner_word) != (uintptr_t)me,
          "a partial slab whose blocks all came back through another thread stayed its owner's");
    for (unsigned i = 0; i < n; i++) free(blocks[i]);
    for (unsigned i = 0; i < n_ballast; i++) free(ballast[i]);
}

/* A slab of the calling thread's full list, of blocks of 1,500 bytes,
 * whose blocks all move to out (*n_out of them, at most `most`). */
static tiny_slab_t *full_slab(void **out, unsigned most, unsigned *n_out)
{
    const size_t size = 1500;
    tiny_heap_t *me = tiny_heap_tls;
    static void *blocks[PARTIAL_BLOCKS];
    unsigned n = 0;
    blocks[n++] = malloc(size);
    tiny_slab_t *first = tiny_slab_of(blocks[0]);
    while (n < PARTIAL_BLOCKS && me->current[tiny_class_of(size)] == first)
        blocks[n++] = malloc(size);
    CHECK(first->on_full && atomic_load(&first->owner_word) == (uintptr_t)me,
          "the first slab of %zu-byte blocks is not on its owner's full list", size);
    *n_out = hs_take_blocks_of(first, blocks, n, out, most);
    return first;
}

/* Slabs emptied by another thread while their owner holds its heap's flag
 * (as in a slow path) past the purge thread's look, the purge delay being
 * 50 ms here: a full slab, whose last free cannot walk the owner's delayed
 * list for its notice, and a partial slab. That free asks the purge
 * thread to look (before, nothing did, and the slab waited for its
 * owner's next refill of its class); the thread passes over the busy heap
 * and looks again, so both go back soon after the flag is left (before,
 * it looked once). In a fork child, where the purge thread starts afresh
 * with this delay: the parent's keeps its hour. */
static void check_emptied_slabs_of_busy_owner(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        HS_FAIL("fork");
        return;
    }
    if (pid == 0) {
        hs_option_values[HS_OPT_PURGE_DELAY_MS] = 50;
        static void *ballast[BALLAST_MAX];
        ballast_until(ballast, 16 * 1024, 0);
        static void *blocks[PARTIAL_BLOCKS], *full_blocks[PARTIAL_BLOCKS];
        void *rest[PARTIAL_KEEP];
        unsigned n, n_full;
        tiny_heap_t *me = tiny_heap_tls;
        tiny_slab_t *partial = partial_slab_with_few_blocks(blocks, &n, rest);
        tiny_slab_t *full = full_slab(full_blocks, PARTIAL_BLOCKS, &n_full);
        /* Held as the owner's slow paths hold it (heap_enter); this
         * thread's own slow paths meanwhile enter it again. */
        atomic_store(&me->busy, HEAP_OWNER);
        if (!hs_free_on_other_thread(rest, PARTIAL_KEEP) ||
            !hs_free_on_other_thread(full_blocks, n_full))
            _exit(1);
        hs_sleep_ms(400);
        CHECK(atomic_load(&partial->owner_word) == (uintptr_t)me &&
                  atomic_load(&full->owner_word) == (uintptr_t)me,
              "a slab of a heap whose flag was held went back");
        atomic_store(&me->busy, 0);
        long waited = 0;
        while ((atomic_load(&partial->owner_word) == (uintptr_t)me ||
                atomic_load(&full->owner_word) == (uintptr_t)me) &&
               waited < 3000) {
            hs_sleep_ms(10);
            waited += 10;
        }
        CHECK(atomic_load(&full->owner_word) != (uintptr_t)me,
              "the full slab emptied while its owner held its flag was still its owner's %ld ms "
              "after the flag was left",
              waited);
        CHECK(atomic_load(&partial->owner_word) != (uintptr_t)me,
              "the partial slab emptied while its owner held its flag was still its owner's %ld "
              "ms after the flag was left",
              waited);
        _exit(hs_failures ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the fork child's check of a busy owner's emptied slabs failed (status %#x)", status);
}

/* Blocks of 200 KiB, each in a slab of pages, that another thread frees
 * while their owner sleeps: each free is its slab's notice on the owner's
 * delayed list and no later free finds the slab whole, so the purge
 * thread's look (tiny_reclaim_emptied, called here directly) walks the
 * list for them. */
static void check_sleeping_owners_sized_slabs(void)
{
    static void *ballast[BALLAST_MAX];
    unsigned n_ballast = ballast_until(ballast, 4096, TINY_MIDDLE_HEAP_BYTES);
    enum { SIZED = 16 };
    void *blocks[SIZED];
    hugeslab_stats_t before = stats();
    for (unsigned i = 0; i < SIZED; i++) blocks[i] = malloc(200 * 1024);
    unsigned sized = 0;
    for (unsigned i = 0; i < SIZED; i++) sized += blocks[i] && tiny_slab_of(blocks[i])->sized;
    CHECK(sized == SIZED, "%u of %u blocks of 200 KiB in slabs of pages", sized, SIZED);
    hugeslab_stats_t held = stats();
    if (!hs_free_on_other_thread(blocks, SIZED)) return;
    hugeslab_stats_t freed = stats();
    CHECK(freed.bytes_in_slabs >= held.bytes_in_slabs,
          "bytes in slabs %llu after another thread's frees, %llu before: the notices went "
          "before the purge thread looked",
          (unsigned long long)freed.bytes_in_slabs, (unsigned long long)held.bytes_in_slabs);
    CHECK(tiny_reclaim_emptied(NULL), "the purge thread's look released nothing");
    hugeslab_stats_t looked = stats();
    CHECK(looked.bytes_in_slabs <= before.bytes_in_slabs,
          "bytes in slabs %llu after the purge thread's look, %llu before the blocks of 200 KiB",
          (unsigned long long)looked.bytes_in_slabs, (unsigned long long)before.bytes_in_slabs);
    for (unsigned i = 0; i < n_ballast; i++) free(ballast[i]);
}

/* The owner's slab x recycled and then parked on its full list: another
 * thread's frees of all its blocks leave it to the owner, who reuses what
 * other threads free and is only off its core (reclaim_empty); the purge
 * thread's look takes it. */
static void check_recycled_slab_kept(void)
{
    static void *ballast[BALLAST_MAX];
    unsigned n_ballast = ballast_until(ballast, 16 * 1024, 0);
    const size_t size = 2200; /* slabs of one unit while the heap is middling */
    const unsigned cls = tiny_class_of(size);
    tiny_heap_t *me = tiny_heap_tls;
    static void *blocks[4096];
    unsigned n = 0;
    /* x filled until the next slab takes over: x is on the full list. */
    tiny_slab_t *x = NULL;
    while (n < 4096) {
        void *p = malloc(size);
        blocks[n++] = p;
        if (!x) x = tiny_slab_of(p);
        if (tiny_slab_of(p) != x) break;
    }
    /* A block of x freed elsewhere is a notice: the refill that drains the
     * current slab brings x back and pops that block. Another one freed
     * elsewhere goes to x's stack, and x's next refill collects it. */
    void *one;
    hs_free_on_other_thread(&one, hs_take_blocks_of(x, blocks, n, &one, 1));
    while (me->current[cls]->free) blocks[n++] = malloc(size);
    blocks[n++] = malloc(size);
    hs_free_on_other_thread(&one, hs_take_blocks_of(x, blocks, n, &one, 1));
    blocks[n++] = malloc(size); /* collects it */
    blocks[n++] = malloc(size); /* x has no room: back to the full list */
    CHECK(x->on_full && x->recycled, "x is recycled and on the full list (full %d, recycled %d)",
          x->on_full, x->recycled);
    static void *of_x[4096];
    unsigned k = hs_take_blocks_of(x, blocks, n, of_x, 4096);
    hugeslab_stats_t before = stats();
    hs_free_on_other_thread(of_x, k);
    hugeslab_stats_t after = stats();
    CHECK(atomic_load(&x->owner_word) == (uintptr_t)me &&
              after.bytes_in_slabs == before.bytes_in_slabs,
          "a recycled slab freed whole by another thread went back: bytes in slabs %llu -> %llu",
          (unsigned long long)before.bytes_in_slabs, (unsigned long long)after.bytes_in_slabs);
    CHECK(tiny_reclaim_emptied(NULL) && atomic_load(&x->owner_word) != (uintptr_t)me,
          "the purge thread's look left the recycled slab freed whole");
    for (unsigned i = 0; i < n; i++) free(blocks[i]);
    for (unsigned i = 0; i < n_ballast; i++) free(ballast[i]);
}

int main(void)
{
    free(malloc(1)); /* initialised */
    hs_option_values[HS_OPT_PURGE_DELAY_MS] = 3600 * 1000;
    hs_option_values[HS_OPT_CACHE_MB] = 1 << 20;
    seg_start_background();
    check_adoption();
    check_trim_releases_orphans();
    check_sized_orphans_released();
    check_trim_releases_kept_slabs();
    check_sleeping_owners_slabs(1100, 400, false, 2); /* a class of its own: several slabs */
    check_sleeping_owners_slabs(40, OWNER_BLOCKS_MAX, true, 200);
    check_emptied_partial_slab_released();
    check_emptied_slabs_of_busy_owner();
    check_sleeping_owners_sized_slabs();
    check_recycled_slab_kept();
    return hs_finish("orphan_test");
}

/* tiny's orphan and trim paths, checked with hugeslab_stats: linked with
 * the library's objects and built against src/ headers, like internal_test.
 *   - a thread that exits holding blocks leaves its slabs as orphans;
 *   - a thread of the same node that needs a slab of that class adopts the
 *     orphan (its block comes from one of the exited thread's slabs);
 *   - orphans whose blocks all came back through other threads' frees are
 *     released by malloc_trim;
 *   - malloc_trim releases the empty slabs a thread keeps as its current
 *     ones;
 *   - slabs that other threads' frees emptied while their owner waited go
 *     back at the last free, but for its current one and one where it
 *     still holds a block.
 * The purge thread, which sweeps orphans too, is kept asleep by a purge
 * delay of an hour, so each step's figures are the test's own. A thread
 * that leaves orphans wakes it for one sweep (which releases only empty
 * ones); it is started here first, so that its own memory (pthread_create
 * allocates) comes from the main thread's heap, not from an exiting one's,
 * where it would pin an orphan for the life of the process. */
#include "test_util.h"

#include <malloc.h>
#include <pthread.h>

#include "hugeslab.h"
#include "segment/segment.h"
#include "tiny/tiny.h"

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
    run_thread(&job);
    hugeslab_stats_t exited = stats();
    CHECK(exited.orphan_slabs >= 1, "no orphan after a thread exited holding %u blocks", job.keep);
    /* Every block back through remote frees: the orphans are empty but
     * still listed until a sweep. */
    for (unsigned i = 0; i < job.keep; i++) free(job.kept[i]);
    malloc_trim(0);
    hugeslab_stats_t trimmed = stats();
    CHECK(trimmed.orphan_slabs == 0, "orphans %llu after malloc_trim, want 0",
          (unsigned long long)trimmed.orphan_slabs);
    CHECK(trimmed.bytes_in_slabs < exited.bytes_in_slabs,
          "bytes in slabs %llu after malloc_trim, %llu before",
          (unsigned long long)trimmed.bytes_in_slabs, (unsigned long long)exited.bytes_in_slabs);
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

typedef struct {
    void **blocks;  /* blocks to free */
    unsigned count; /* how many */
} frees_t;

static void *free_all(void *arg)
{
    frees_t *f = arg;
    for (unsigned i = 0; i < f->count; i++) free(f->blocks[i]);
    return NULL;
}

#define OWNER_BLOCKS 400

static void check_remote_frees_release_sleeping_owners_slabs(void)
{
    /* Slabs are taken from a sleeping owner once the heap has outgrown its
     * first SuperSlabs (seg_small_heap): blocks that need a fourth one, or
     * whose first pages (each carve touches one) spend the base-page budget
     * of the three before it. */
    static void *ballast[1024];
    unsigned n_ballast = 0;
    while (seg_small_heap() && n_ballast < 1024) ballast[n_ballast++] = malloc(16 * 1024);
    CHECK(!seg_small_heap(), "the heap is still small after %u blocks of 16 KiB", n_ballast);
    static void *blocks[OWNER_BLOCKS];
    const size_t size = 1100; /* a class of its own: several slabs */
    for (unsigned i = 0; i < OWNER_BLOCKS; i++) blocks[i] = malloc(size);
    /* The last block stays: its slab must stay too. */
    void *kept = blocks[OWNER_BLOCKS - 1];
    tiny_heap_t *me = tiny_heap_tls;
    tiny_slab_t *current = me->current[tiny_class_of(size)], *kept_slab = tiny_slab_of(kept);
    /* What should go back: the units of every other slab of these blocks. */
    uint64_t expected = 0;
    tiny_slab_t *seen[OWNER_BLOCKS];
    unsigned n_seen = 0;
    for (unsigned i = 0; i < OWNER_BLOCKS; i++) {
        tiny_slab_t *s = tiny_slab_of(blocks[i]);
        bool known = false;
        for (unsigned k = 0; k < n_seen; k++) known |= seen[k] == s;
        if (known) continue;
        seen[n_seen++] = s;
        if (s != current && s != kept_slab) expected += s->units * HS_UNIT_SIZE;
    }
    CHECK(expected > 0, "%u blocks of %zu bytes filled only %u slabs", OWNER_BLOCKS, size, n_seen);
    hugeslab_stats_t before = stats();
    /* The owner waits in pthread_join while another thread frees. */
    frees_t f = {blocks, OWNER_BLOCKS - 1};
    pthread_t t;
    if (pthread_create(&t, NULL, free_all, &f) != 0) {
        HS_FAIL("pthread_create");
        return;
    }
    pthread_join(t, NULL);
    hugeslab_stats_t after = stats();
    uint64_t released = before.bytes_in_slabs - after.bytes_in_slabs;
    CHECK(after.bytes_in_slabs < before.bytes_in_slabs && released >= expected,
          "bytes in slabs %llu before the remote frees, %llu after: %llu went back, want %llu",
          (unsigned long long)before.bytes_in_slabs, (unsigned long long)after.bytes_in_slabs,
          (unsigned long long)released, (unsigned long long)expected);
    CHECK(atomic_load(&kept_slab->owner_word) == (uintptr_t)me,
          "the slab of a block still in use was taken from its owner");
    CHECK(atomic_load(&current->owner_word) == (uintptr_t)me,
          "the owner's current slab was taken from it");
    free(kept);
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
    check_trim_releases_kept_slabs();
    check_remote_frees_release_sleeping_owners_slabs();
    return hs_finish("orphan_test");
}

/* tiny's orphan and trim paths, checked with hugeslab_stats: linked with
 * the library's objects and built against src/ headers, like internal_test.
 *   - a thread that exits holding blocks leaves its slabs as orphans;
 *   - a thread of the same node that needs a slab of that class adopts the
 *     orphan (its block comes from one of the exited thread's slabs);
 *   - orphans whose blocks all came back through other threads' frees are
 *     released by malloc_trim;
 *   - malloc_trim releases the empty slabs a thread keeps as its current
 *     ones.
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

int main(void)
{
    free(malloc(1)); /* initialised */
    hs_option_values[HS_OPT_PURGE_DELAY_MS] = 3600 * 1000;
    hs_option_values[HS_OPT_CACHE_MB] = 1 << 20;
    seg_start_background();
    check_adoption();
    check_trim_releases_orphans();
    check_trim_releases_kept_slabs();
    return hs_finish("orphan_test");
}

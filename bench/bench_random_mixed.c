/* bench_random_mixed: random malloc/free churn over a small working set.
 *
 * Usage: bench_random_mixed [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED
 *                           [MIN_SIZE [MAX_SIZE]]]]]
 * Defaults: 1000000 400 1 16 1040, --rng=libc.
 *
 * Each step draws a slot index; an occupied slot is freed, an empty one gets
 * a new block whose first byte is written.  Sizes are
 *     min + r % (max - min + 1)
 * so with the defaults (16..1040) this is 16 + r % 1025: both ends included,
 * and not the same sequence as 16 + (r & 0x3FF).  The formula is kept
 * fixed so that figures from different runs and allocators stay comparable;
 * change MIN_SIZE/MAX_SIZE, not the formula.
 *
 * Only the loop is timed, and page_faults (minor + major) cover only the
 * loop.  peak_rss_kb is read at the end, after everything is freed (see
 * peak_rss_kb() in bench_common.h for why it is VmHWM rather than ru_maxrss;
 * both are printed).
 * Output is one line of key=value pairs on stdout, meant for scripts
 * (bench/compare.py).  The program calls plain
 * malloc()/free(), so LD_PRELOAD picks the allocator under test;
 * malloc_from= names the object that actually supplies malloc, so a preload
 * that silently failed is caught instead of being reported as a result.
 *
 * The loop, the generators and the argument parsing live in bench_common.h,
 * shared with thp_workload.c.
 */
#define BENCH_PROG "bench_random_mixed"
#include "bench_common.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_random_mixed [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED "
                 "[MIN_SIZE [MAX_SIZE]]]]]\n"
                 "defaults: 1000000 400 1 16 1040 --rng=libc\n");
}

int main(int argc, char **argv)
{
    struct mixed_params mp;
    struct mixed_result res;
    int rc = mixed_run(argc, argv, usage, &mp, &res);
    if (rc >= 0) return rc;
    mixed_free(&mp, &res);

    struct rusage ru_end;
    getrusage(RUSAGE_SELF, &ru_end);

    long peak_kb = peak_rss_kb(ru_end.ru_maxrss);
    const char *provider = malloc_provider();

    /* malloc_from stays last: it is a path and may contain spaces. */
    printf("ops_per_sec=%.0f page_faults=%ld peak_rss_kb=%ld seconds=%.6f ru_maxrss_kb=%ld"
           " iterations=%" PRIu64 " slots=%" PRIu64 " seed=%" PRIu64 " min_size=%" PRIu64
           " max_size=%" PRIu64 " rng=%s malloc_from=%s\n",
           mixed_ops_per_sec(&mp, &res), res.page_faults, peak_kb, res.seconds, ru_end.ru_maxrss,
           mp.iterations, mp.slots, mp.seed, mp.min_size, mp.max_size, rng_name(), provider);
    return 0;
}

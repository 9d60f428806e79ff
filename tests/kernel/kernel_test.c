/* Kernel truth: what hugeslab claims about pages, checked against the
 * kernel's own accounting (getrusage faults, /proc/self/smaps_rollup, the
 * 2 MiB pool's sysfs figures). Linked against build/libhugeslab.so.
 *
 *   kernel_test faults BACKING N     fill N SuperSlabs with 64-byte blocks and
 *                                    count faults; BACKING: thp|hugetlb|base
 *   kernel_test purge MODE MAX_MS    256 MiB of small blocks, free, sleep:
 *                                    MODE free|dontneed|none (none: expect no drop);
 *                                    release: the default, MADV_FREE then
 *                                    MADV_DONTNEED, counted as plain Rss
 *   kernel_test fallback-hugetlb N   pool of N pages, 10 SuperSlabs wanted
 *   kernel_test fallback-thp-never   THP mode is never: base pages, no fault storm
 *   kernel_test hints                the THP hints the kernel shows for the
 *                                    small heap's SuperSlab (none in "madvise"
 *                                    mode, MADV_NOHUGEPAGE in "always"), and
 *                                    MADV_HUGEPAGE on it and on a later one once
 *                                    32 MiB of blocks made the heap grow
 *   kernel_test stats                hugeslab_stats() against smaps_rollup
 *   kernel_test consumer             a thread that only frees gets no heap, and its
 *                                    remote frees are counted, those of one that
 *                                    left too
 *   kernel_test churn N MAX_MIB [B]  N threads, 10 at a time, each leaving a
 *                                    block of B bytes (128; at most 1,000
 *                                    live): the peak RSS grows by less than
 *                                    MAX_MIB
 *   kernel_test small-heap           a block of every size class up to 64 KiB
 *                                    (what a short command has): one SuperSlab,
 *                                    on base pages, no huge page
 *   kernel_test small-heap-churn     blocks of 32-64 KiB freed and put back
 *                                    at random in 100 slots of a small heap:
 *                                    under 1,024 faults in 20,000 turns, the
 *                                    purge thread left asleep
 *   kernel_test free-units MAX_MS    base pages: 1.7 MiB of blocks freed but one
 *                                    that keeps their SuperSlab in use: Rss
 *                                    drops by 1 MiB or more within MAX_MS
 *   kernel_test sparse MAX_MS [kept] THP: 32 MiB of blocks freed but one in each
 *                                    SuperSlab but the last: Rss within 4 MiB of
 *                                    the start within MAX_MS, no huge page left;
 *                                    with `kept` (HUGESLAB_SPLIT_SPARSE=0) the
 *                                    huge pages are all still there at MAX_MS;
 *                                    with `regrow` the 32 MiB are allocated
 *                                    again at once, over about 4 s, in under
 *                                    1,024 page faults
 *   kernel_test run-tail             blocks of their own run, filled: the chunk
 *                                    where a block ends costs only what it
 *                                    holds when that is a page or so, a whole
 *                                    huge page (one fault) when more; after a
 *                                    realloc (one that moves the run's end,
 *                                    one that keeps the block where it is)
 *                                    and from the run cache too
 *   kernel_test frontier [kept]      a 6 MiB block written 2 MiB and 400 KiB in:
 *                                    the huge page where the writing stopped is
 *                                    split within 3 s, its zeros out of Rss
 *                                    (Linux 6.12 on), the bytes kept; freed and
 *                                    taken again, the block fills in a fault per
 *                                    chunk; moved by realloc, it keeps its
 *                                    bytes; with `kept` (HUGESLAB_SPLIT_SPARSE=0)
 *                                    nothing is split
 *   kernel_test frontier-header      a run of one chunk split, freed and
 *                                    trimmed: unmapped (its header kept)
 *   kernel_test frontier-churn       threads write parts of blocks of 2-12 MiB,
 *                                    wait, resize and free them while children
 *                                    are forked: every byte written stays
 *   kernel_test usable-kept          large blocks written to their usable size
 *                                    (grown to it by realloc, or not) keep
 *                                    every byte while other runs come and go
 *   kernel_test outgrown             an array alone in its SuperSlab grows by
 *                                    realloc into a run: that SuperSlab leaves
 *                                    Rss at once (not LazyFree, not cached)
 *   kernel_test sparse-stays-base    the small heap's first SuperSlab left
 *                                    sparse, then outgrown: not hinted huge
 *                                    (no "hg" in its mapping's VmFlags)
 *   kernel_test sparse-four          blocks of 300 KiB with a page of each
 *                                    written until a fourth SuperSlab is
 *                                    mapped: all four on base pages
 *   kernel_test dense-room           a dense heap whose first SuperSlab ran
 *                                    out of units under the budget: its
 *                                    second on base pages, made a huge page
 *                                    once the heap grows; faults in bound
 *   kernel_test given-back           a block of 300,000 B in the small heap's
 *                                    first SuperSlab, which the heap then
 *                                    outgrows (base pages still, hinted huge
 *                                    or not), moved by realloc: its pages
 *                                    leave at once
 *   kernel_test counted              what the statistics say went back to the
 *                                    kernel is what left Rss: a small heap's
 *                                    block of 832 KiB, given back as it is
 *                                    freed, and a cached run of 6 MiB that
 *                                    malloc_trim unmaps
 *   kernel_test overflow MODE        the main thread fills its SuperSlabs, a
 *                                    second thread needs a new one: MODE
 *                                    returning: it first frees a block of
 *                                    each of main's slabs, whose units are then
 *                                    on their way back, and the new SuperSlab
 *                                    is on base pages; growing: it frees none,
 *                                    and the new one is a huge page
 *   kernel_test sparse-threads       past the small heap, 12 threads with a
 *                                    slab each take 24 blocks in each of 40
 *                                    classes of 16 B - 1 KiB: the SuperSlabs
 *                                    mapped for them are base pages, counted
 *                                    so, and cost under half their size in Rss;
 *                                    with `kept` (HUGESLAB_SPLIT_SPARSE=0)
 *                                    they are all huge pages
 *   kernel_test crowd                256 threads alive at once, each holding
 *                                    64 blocks of 16 B - 2.2 KiB (18 MiB in
 *                                    all): Rss grows by at most the blocks
 *                                    plus half and 16 KiB a thread; every
 *                                    block intact, freed by its thread or by
 *                                    main; after malloc_trim, Rss within
 *                                    8 MiB of the start (glibc keeps the
 *                                    threads' stacks, 3-4 MiB); a child
 *                                    forked among them counts one thread
 *   kernel_test fresh                64 MiB of small blocks freed and left
 *                                    LazyFree, then 64 MiB of 4 MiB blocks
 *                                    (runs, which cannot reuse them): Rss
 *                                    peaks less than 32 MiB above where it
 *                                    was, the lazily freed pages released as
 *                                    the runs are faulted in
 *   kernel_test trim-turns ROUNDS    with no purge delay, 16 MiB of small
 *                                    blocks freed and malloc_trim called while
 *                                    the purge thread is at them, ROUNDS
 *                                    times: each call returns with nothing
 *                                    LazyFree and Rss within 8 MiB of the start
 *   kernel_test as-limit             256 MiB of runs and 64 MiB of small blocks
 *                                    freed, what the cache keeps left mapped
 *                                    (purging held off), then RLIMIT_AS 8 MiB
 *                                    above VmSize: a block 8 MiB smaller than
 *                                    what rests is still had, as under glibc
 *   kernel_test as-filled            RLIMIT_AS 48 MiB above VmSize, blocks of
 *                                    4,000 bytes until malloc refuses one
 *                                    (ENOMEM), one in ten of them freed: 64
 *                                    blocks each of 16 B - 3 KiB are had in
 *                                    that room, written and freed
 *   kernel_test data-charge          a process's private writable memory at
 *                                    start (VmData: what RLIMIT_DATA and the
 *                                    commit charge of vm.overcommit_memory=2
 *                                    count) is under 16 MiB: the registry's
 *                                    64 MiB are a read-only mapping
 *   kernel_test mlockall             64 MiB of blocks freed and purged, then
 *                                    mlockall(MCL_CURRENT | MCL_FUTURE): Rss
 *                                    and VmLck end less than 32 MiB above
 *                                    the Rss before less LazyFree (the
 *                                    registry's 64 MiB of read-only zeroes
 *                                    and the resting SuperSlabs stay out:
 *                                    unmapped), blocks of 16 B - 5 MiB
 *                                    come and go while it is in force, and
 *                                    once freed leave Rss (unmapped: madvise
 *                                    refuses locked pages), none counted
 *                                    as purged; then
 *                                    mlockall and munlockall again and again
 *                                    while threads map runs in new pages of
 *                                    the registry: every block is still
 *                                    named and freed
 *   kernel_test mlockall thp         the same, and 64 MiB of 2 KiB blocks
 *                                    under MCL_FUTURE cost at most 1.1 faults
 *                                    a SuperSlab plus 512, huge pages
 *   kernel_test seldom-text          a block of 96 KiB freed while the heap
 *                                    is small, 16 MiB of small blocks freed
 *                                    and a purge pass waited for (LazyFree):
 *                                    no page of the library's seldom text
 *                                    (.text.hs_seldom) nor of the fork
 *                                    handlers' (.hs_apart_text) is mapped in
 *                                    the process (pagemap)
 *   kernel_test orphans MAX_MS       2 threads leave 32 MiB of blocks and exit,
 *                                    the main thread frees them: Rss within
 *                                    8 MiB of the start within MAX_MS
 *   kernel_test emptied MAX_MS       6 rounds: the main thread allocates
 *                                    600,000 blocks, 3 threads free them in
 *                                    a random order while it keeps
 *                                    allocating: Rss within 8 MiB of the
 *                                    start within MAX_MS of the last free
 *   kernel_test thp-off WHEN MAX_MS  THP turned off for the process (prctl
 *                                    PR_SET_THP_DISABLE), WHEN `late` after
 *                                    its first allocation (as Redis does
 *                                    under THP "always"), `start` before it
 *                                    (inherited across execve), then 64 MiB
 *                                    of 256 KiB blocks: no huge page, the
 *                                    SuperSlabs mapped since counted as base
 *                                    pages; every other block freed, Rss
 *                                    drops by 24 MiB within MAX_MS (free
 *                                    units of base pages; none went while
 *                                    they were counted as huge pages).
 *                                    `advised`: turned off but for hinted
 *                                    ranges (Linux 6.18): huge pages still
 *
 * The options (HUGESLAB_BACKING, HUGESLAB_PURGE, ...) come from the
 * environment, set by tests/kernel/run.sh, which also sets the system modes. */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hugeslab.h"
#include "test_util.h"

#define MiB (1024L * 1024L)
#define SUPERSLAB (2 * MiB)

static long long faults_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_minflt + ru.ru_majflt;
}

/* A "Key: N kB" field of a /proc file, in bytes; -1 when missing. */
static long long proc_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0) {
            v = atoll(line + klen);
            if (strstr(line, "kB")) v *= 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

static long long rollup(const char *key) { return proc_field("/proc/self/smaps_rollup", key); }

/* rollup(key) without stdio, whose fopen would allocate: the worker's first
 * block of test_overflow must be one of those it counts, and no block may
 * come or go between test_counted's readings. */
static long long rollup_unbuffered(const char *key)
{
    long kb = hs_proc_field_raw("/proc/self/smaps_rollup", key);
    return kb < 0 ? -1 : kb * 1024LL;
}

/* Whether [p, p + len) has a huge page mapped in it: PAGEMAP_SCAN (Linux
 * 6.7; older headers lack it) with PAGE_IS_HUGE. 1 or 0; -1 when the
 * kernel cannot say. */
static int range_holds_huge(const void *p, size_t len)
{
    struct {
        unsigned long long start, end, categories;
    } region;
    struct {
        unsigned long long size, flags, start, end, walk_end, vec, vec_len, max_pages,
            category_inverted, category_mask, category_anyof_mask, return_mask;
    } arg = {.size = sizeof arg,
             .start = (uintptr_t)p,
             .end = (uintptr_t)p + len,
             .vec = (uintptr_t)&region,
             .vec_len = 1,
             .category_mask = 1 << 6,
             .return_mask = 1 << 6};
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    int found = ioctl(fd, _IOWR('f', 16, arg), &arg);
    close(fd);
    return found < 0 ? -1 : found > 0;
}

/* Pointer arrays come from mmap with MAP_POPULATE, so their own faults stay
 * out of the measured windows and out of the allocator under test. */
static void **pointer_array(size_t count)
{
    void *p = mmap(NULL, count * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

static int fail(const char *fmt, const char *detail)
{
    printf("FAIL: ");
    printf(fmt, detail);
    printf("\n");
    return 1;
}

/* ---- faults ---------------------------------------------------------------- */

static int test_faults(const char *backing, long n_superslabs)
{
    size_t per_superslab = SUPERSLAB / 64;
    size_t count = (size_t)n_superslabs * per_superslab;
    void **blocks = pointer_array(count);
    hugeslab_stats_t before, after;
    /* The thread's heap and first SuperSlab exist before the window (volatile:
     * the compiler may drop a malloc whose result is unused). */
    void *volatile warm = malloc(64);
    free(warm);
    hugeslab_stats(&before);
    long long huge_before = rollup("AnonHugePages:");
    long long hugetlb_before = rollup("Private_Hugetlb:");
    long long f0 = faults_now();
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(64);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        *(char *)blocks[i] = 1;
    }
    long long f1 = faults_now();
    hugeslab_stats(&after);
    long long huge_after = rollup("AnonHugePages:");
    long long hugetlb_after = rollup("Private_Hugetlb:");
    long long new_superslabs = (long long)(after.superslabs_mapped - before.superslabs_mapped);
    if (new_superslabs < n_superslabs / 2) {
        printf("FAIL: only %lld new SuperSlabs for %ld wanted\n", new_superslabs, n_superslabs);
        return 1;
    }
    double per = (double)(f1 - f0) / (double)new_superslabs;
    long long got_thp = (long long)(after.superslabs_thp - before.superslabs_thp);
    long long got_hugetlb = (long long)(after.superslabs_hugetlb - before.superslabs_hugetlb);
    long long got_base = (long long)(after.superslabs_base - before.superslabs_base);
    printf(
        "faults: backing=%s superslabs=%lld faults=%lld per_superslab=%.1f "
        "(thp %lld, hugetlb %lld, base %lld) AnonHugePages +%lld KiB Private_Hugetlb +%lld KiB\n",
        backing, new_superslabs, f1 - f0, per, got_thp, got_hugetlb, got_base,
        (huge_after - huge_before) / 1024, (hugetlb_after - hugetlb_before) / 1024);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    if (strcmp(backing, "thp") == 0) {
        if (got_thp != new_superslabs) return fail("%s", "SuperSlabs not THP-backed");
        /* One fault per SuperSlab, plus the price of the heap's first one,
         * which stays on base pages while the heap is small: at most
         * 1.1 x (heap / 2 MiB) + 512. */
        if ((double)(f1 - f0) > 1.1 * (double)new_superslabs + 512)
            return fail("%s", "more than 1.1 faults per THP SuperSlab + 512");
        /* The kernel must agree: (nearly) every new SuperSlab is one huge page. */
        if (huge_after - huge_before < (long long)(0.9 * (double)new_superslabs) * SUPERSLAB)
            return fail("%s", "AnonHugePages did not grow by the SuperSlabs mapped");
    } else if (strcmp(backing, "hugetlb") == 0) {
        if (got_hugetlb != new_superslabs) return fail("%s", "SuperSlabs not hugetlb-backed");
        if (per > 4.0) return fail("%s", "more than 4 faults per hugetlb SuperSlab");
        /* This process's own hugetlb pages, immune to other users of the pool. */
        if (hugetlb_after - hugetlb_before < (long long)(0.9 * (double)new_superslabs) * SUPERSLAB)
            return fail("%s", "Private_Hugetlb did not grow by the SuperSlabs mapped");
    } else {
        if (got_base != new_superslabs) return fail("%s", "SuperSlabs not on base pages");
        /* 512 pages of 4 KiB per SuperSlab, all touched when slabs are carved. */
        if (per < 400.0) return fail("%s", "base pages should cost ~512 faults per SuperSlab");
        if (huge_after - huge_before > 2 * SUPERSLAB)
            return fail("%s", "base backing got huge pages anyway");
    }
    printf("PASS\n");
    return 0;
}

/* ---- purge -------------------------------------------------------------------- */

static long long resident(bool lazy_counts)
{
    long long rss = rollup("Rss:");
    long long lazy = rollup("LazyFree:");
    return lazy_counts ? rss : rss - (lazy > 0 ? lazy : 0);
}

/* Waits (at most max_ms, from now) until resident() is at most `limit`;
 * *now gets the last figure read. Returns the milliseconds waited. */
static long wait_for_rss(long long limit, bool lazy_counts, long max_ms, long long *now)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long elapsed = 0;
    while (elapsed <= max_ms) {
        *now = resident(lazy_counts);
        if (*now <= limit) break;
        usleep(20 * 1000);
        clock_gettime(CLOCK_MONOTONIC, &t);
        elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    }
    return elapsed;
}

static int test_purge(const char *mode, long max_ms)
{
    size_t total = 256 * MiB, used = 0, count = 0;
    size_t cap = total / 16;
    void **blocks = pointer_array(cap);
    unsigned seed = 12345;
    /* LazyFree is left out only for MADV_FREE alone: the kernel takes
     * those pages when it needs them. Every other mode must lower Rss. */
    bool lazy_counts = strcmp(mode, "free") != 0;
    void *volatile warm = malloc(16);
    free(warm);
    long long start = resident(lazy_counts);
    while (used < total && count < cap) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 16 + (seed >> 16) % 1009;
        blocks[count] = malloc(size);
        if (!blocks[count]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[count], 0x5a, size);
        used += size;
        count++;
    }
    long long peak = resident(lazy_counts);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    /* From here on, no thread of the program calls the allocator. */
    long long now = peak;
    long elapsed = wait_for_rss(start + 8 * MiB, lazy_counts, max_ms, &now);
    printf("purge: mode=%s start=%lld MiB peak=%lld MiB after=%lld MiB (%s) within %ld ms "
           "(limit %ld ms)\n",
           mode, start / MiB, peak / MiB, now / MiB, lazy_counts ? "Rss" : "Rss - LazyFree",
           elapsed, max_ms);
    if (peak - start < 200 * MiB) return fail("%s", "256 MiB of blocks did not show in RSS");
    bool dropped = now - start <= 8 * MiB;
    if (strcmp(mode, "none") == 0) {
        if (dropped) return fail("%s", "memory went back although purging was held off");
    } else if (!dropped) {
        return fail("%s", "memory did not go back to the kernel in time");
    }
    printf("PASS\n");
    return 0;
}

/* ---- malloc_trim while the purge thread works ------------------------------------- */

/* Run with HUGESLAB_PURGE_DELAY_MS=0: every SuperSlab the frees leave idle
 * is due for the purge thread at once, which takes a batch off its pool and
 * advises it (MADV_FREE first) while malloc_trim runs. malloc_trim must wait
 * for that pass and then release what it left LazyFree: a caller that read
 * Rss, or shrank the hugetlb pool, right after it found those pages still
 * there. Each round calls it a little later after the frees (0 to 2 ms), so
 * that some land in the middle of a pass. */
static int test_trim_turns(long rounds)
{
    enum { BLOCK = 1024, COUNT = 16 * MiB / BLOCK };
    void **blocks = pointer_array(COUNT);
    void *volatile warm = malloc(16);
    free(warm);
    malloc_trim(0);
    long long start = rollup("Rss:");
    long bad = 0;
    long long worst_lazy = 0, worst_rss = 0;
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < COUNT; i++) {
            blocks[i] = malloc(BLOCK);
            if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
            memset(blocks[i], 0x5a, BLOCK);
        }
        for (size_t i = 0; i < COUNT; i++) free(blocks[i]);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long wait_ns = (r % 21) * 100000;
        do clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < wait_ns);
        malloc_trim(0);
        long long lazy = rollup("LazyFree:"), rss = rollup("Rss:");
        if (lazy > 0 || rss - start > 8 * MiB) bad++;
        if (lazy > worst_lazy) worst_lazy = lazy;
        if (rss - start > worst_rss) worst_rss = rss - start;
    }
    printf("trim-turns: %ld rounds, %ld left memory behind; at worst LazyFree %lld KiB, Rss "
           "%lld KiB above the start (%lld MiB)\n",
           rounds, bad, worst_lazy / 1024, worst_rss / 1024, start / MiB);
    if (bad) return fail("%s", "malloc_trim returned before the purge thread's pass had ended");
    printf("PASS\n");
    return 0;
}

/* ---- the commit charge ------------------------------------------------------------ */

/* The registry (64 MiB of zeroes, a byte per 2 MiB of address space) was
 * .bss: private writable memory, which the kernel charges in full to every
 * process under vm.overcommit_memory=2 and counts in VmData, whatever was
 * written of it. At 64 MiB a process, a PostgreSQL server with 100 backends
 * would be charged 6.4 GB for it. A process that has allocated a little holds little. */
static int test_data_charge(void)
{
    void *volatile p = malloc(100);
    free(p);
    long long data = proc_field("/proc/self/status", "VmData:");
    long long size = proc_field("/proc/self/status", "VmSize:");
    printf("data-charge: VmData %lld KiB, VmSize %lld KiB\n", data / 1024, size / 1024);
    if (data < 0) return fail("%s", "no VmData in /proc/self/status");
    if (data > 16 * MiB) return fail("%s", "more than 16 MiB of private writable memory at start");
    printf("PASS\n");
    return 0;
}

/* ---- mlockall -------------------------------------------------------------------- */

/* mlockall(MCL_CURRENT) faults in every readable page: the registry's 64
 * MiB of read-only zeroes were made resident and locked (a process of a
 * few MiB locked 70 MiB: Rss grew by 67.4 MiB at the call, glibc's by 1.2).
 * The library gives back the pages never written (src/segment/segment.c),
 * and may do so only while no thread makes one writable: a block named in
 * a page given back would be lost to free. */

#define MLOCK_THREADS 2
#define MLOCK_RUNS 12 /* runs each thread maps, each in a page of the registry of its own */
#define MLOCK_ROUNDS 8

static _Atomic int mlock_mapping_done;

/* Maps runs of 3 MiB, each after 16 GiB of address space reserved below
 * the last (the kernel maps top-down), so each is named in a registry
 * page not yet written: its preparation races with mlockall's give-back. */
static void *mlock_mapper(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < MLOCK_RUNS; i++) {
        void *hole = mmap(NULL, (size_t)16 << 30, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        blocks[2 * i] = hole == MAP_FAILED ? NULL : hole;
        blocks[2 * i + 1] = malloc(3 * MiB);
        if (blocks[2 * i + 1]) memset(blocks[2 * i + 1], i, 4096);
    }
    atomic_fetch_add(&mlock_mapping_done, 1);
    return NULL;
}

/* Under MCL_FUTURE the kernel faults a mapping in as it makes it, before
 * any hint: each SuperSlab cost 512 faults, on base pages. With `thp`:
 * 64 MiB of 2 KiB blocks cost at most 1.1 faults a SuperSlab plus 512 (a
 * small heap's SuperSlab on base pages), and are huge pages. */
static int mlock_fill_thp(void)
{
    enum { FILL = 32768 };
    static char *fill[FILL];
    long long huge0 = rollup("AnonHugePages:"), faults0 = faults_now();
    for (size_t i = 0; i < FILL; i++) {
        fill[i] = malloc(2048);
        if (!fill[i]) return fail("%s", "malloc(2048) under mlockall: NULL");
        fill[i][0] = 1;
    }
    long long faults = faults_now() - faults0, huge = rollup("AnonHugePages:") - huge0;
    for (size_t i = 0; i < FILL; i++) free(fill[i]);
    long long bound = 11 * 32 / 10 + 512;
    printf("mlockall: 64 MiB of 2 KiB blocks under MCL_FUTURE: %lld faults (at most %lld), "
           "AnonHugePages +%lld KiB\n",
           faults, bound, huge / 1024);
    if (faults > bound) return fail("%s", "more faults than huge pages would take");
    if (huge < 32 * MiB) return fail("%s", "fewer than 16 huge pages for 64 MiB of blocks");
    return 0;
}

/* Waits, up to 5 s, for the purge thread to take idle SuperSlabs to its
 * purged stacks since `before`; `after` holds the figures then. */
static void wait_purged(const hugeslab_stats_t *before, hugeslab_stats_t *after)
{
    for (int i = 0; i < 100; i++) {
        usleep(50 * 1000);
        hugeslab_stats(after);
        if (after->superslabs_purged > before->superslabs_purged) return;
    }
}

static int test_mlockall(bool thp)
{
    /* 64 MiB of blocks freed, and given back by the purge thread: their
     * SuperSlabs rest, mapped, and mlockall would fault them in again. */
    enum { RESTING = 32768 };
    static char *resting[RESTING];
    for (size_t i = 0; i < RESTING; i++) {
        resting[i] = malloc(2048);
        if (!resting[i]) return fail("%s", "malloc(2048): NULL");
        resting[i][0] = 1;
    }
    hugeslab_stats_t rest0, rest1;
    hugeslab_stats(&rest0);
    for (size_t i = 0; i < RESTING; i++) free(resting[i]);
    wait_purged(&rest0, &rest1);
    /* Pages lazily freed (MADV_FREE) are in Rss until the kernel needs
     * them; locked, they would stay for good. */
    long long rss0 = proc_field("/proc/self/status", "VmRSS:") - rollup("LazyFree:");
    printf("mlockall: 64 MiB freed, %llu SuperSlabs purged, %llu cached\n",
           (unsigned long long)rest1.superslabs_purged,
           (unsigned long long)rest1.superslabs_cached);
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return fail("mlockall: %s", strerror(errno));
    long long rss1 = proc_field("/proc/self/status", "VmRSS:");
    long long locked = proc_field("/proc/self/status", "VmLck:");
    printf("mlockall: Rss less LazyFree %lld KiB, then %lld, VmLck %lld KiB\n", rss0 / 1024,
           rss1 / 1024, locked / 1024);
    if (rss1 - rss0 > 32 * MiB || locked > 32 * MiB + rss0) {
        munlockall();
        return fail("%s", "mlockall made more than 32 MiB resident: the registry's zeroes, or "
                          "resting SuperSlabs?");
    }
    if (thp && mlock_fill_thp() != 0) {
        munlockall();
        return 1;
    }
    /* Blocks of every kind while MCL_FUTURE is in force. */
    enum { N = 2000 };
    static char *blocks[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = i % 100 == 99 ? (i % 5 + 1) * MiB : 16 + (i * 37) % 20000;
        blocks[i] = malloc(size);
        if (!blocks[i]) {
            munlockall();
            printf("malloc(%zu): ", size);
            return fail("%s", "NULL under mlockall");
        }
        memset(blocks[i], (int)i, size);
    }
    long long locked_full = proc_field("/proc/self/status", "VmLck:");
    long long rss_full = resident(true);
    hugeslab_stats_t before, after;
    hugeslab_stats(&before);
    for (size_t i = 0; i < N; i++) free(blocks[i]);
    /* Locked pages cannot be given back with madvise: the idle SuperSlabs
     * of the small blocks are unmapped, as the runs are, and the statistics
     * count what left, no SuperSlab purged that stayed resident. Rss falls
     * by 141,312 KiB (by 122,880 while SuperSlabs whose advice the kernel
     * refused stayed, resident and counted as purged). */
    long long rss_idle = rss_full;
    long waited = wait_for_rss(rss_full - 130 * MiB, true, 5000, &rss_idle);
    hugeslab_stats(&after);
    long long purged = (long long)(after.bytes_purged_total - before.bytes_purged_total);
    printf("mlockall: VmLck %lld KiB with %d blocks of 16 B - 5 MiB; freed: Rss %lld -> %lld KiB "
           "in %ld ms, %lld KiB counted as given back, SuperSlabs purged %llu -> %llu\n",
           locked_full / 1024, N, rss_full / 1024, rss_idle / 1024, waited, purged / 1024,
           (unsigned long long)before.superslabs_purged,
           (unsigned long long)after.superslabs_purged);
    if (munlockall() != 0) return fail("munlockall: %s", strerror(errno));
    if (rss_full - rss_idle < 130 * MiB)
        return fail("%s", "the idle SuperSlabs stayed resident under mlockall");
    if (after.superslabs_purged > before.superslabs_purged)
        return fail("%s", "SuperSlabs counted as purged that the kernel kept resident");
    if (purged > rss_full - rss_idle + 2 * MiB)
        return fail("%s", "statistics count as given back what the kernel kept");

    /* mlockall and munlockall while threads name runs in fresh pages. */
    static void *mapped[MLOCK_THREADS][2 * MLOCK_RUNS];
    pthread_t t[MLOCK_THREADS];
    for (int i = 0; i < MLOCK_THREADS; i++)
        if (pthread_create(&t[i], NULL, mlock_mapper, mapped[i]) != 0)
            return fail("%s", "pthread_create");
    int rounds = 0;
    while (rounds < MLOCK_ROUNDS || atomic_load(&mlock_mapping_done) < MLOCK_THREADS) {
        if (mlockall(MCL_CURRENT) != 0) return fail("mlockall: %s", strerror(errno));
        munlockall();
        rounds++;
    }
    for (int i = 0; i < MLOCK_THREADS; i++) pthread_join(t[i], NULL);
    size_t runs = 0;
    for (int i = 0; i < MLOCK_THREADS; i++)
        for (int r = 0; r < MLOCK_RUNS; r++) {
            /* A run whose registry entry was given back: free reports it. */
            if (mapped[i][2 * r + 1]) runs++;
            free(mapped[i][2 * r + 1]);
            if (mapped[i][2 * r]) munmap(mapped[i][2 * r], (size_t)16 << 30);
        }
    printf("mlockall: %d rounds of mlockall and munlockall while %d threads named %zu runs, "
           "each in a registry page of its own: all freed\n",
           rounds, MLOCK_THREADS, runs);
    if (runs < MLOCK_THREADS * MLOCK_RUNS) return fail("%s", "a run could not be had");
    printf("PASS\n");
    return 0;
}

/* ---- the text a process keeps resident ------------------------------------------- */

/* [*start, *end): where the library's section `name` is mapped, from the
 * section headers of its file; false when it has none. */
static bool library_section(const char *name, uintptr_t *start, uintptr_t *end)
{
    Dl_info info;
    if (!dladdr((void *)hugeslab_stats, &info) || !info.dli_fname) return false;
    int fd = open(info.dli_fname, O_RDONLY);
    if (fd < 0) return false;
    Elf64_Ehdr eh;
    bool found = false;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh &&
        eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shnum > 0 && eh.e_shnum < 256 &&
        eh.e_shstrndx < eh.e_shnum) {
        Elf64_Shdr sh[256], *names = &sh[eh.e_shstrndx];
        size_t bytes = (size_t)eh.e_shnum * sizeof(Elf64_Shdr);
        char strtab[4096];
        if (pread(fd, sh, bytes, (off_t)eh.e_shoff) == (ssize_t)bytes &&
            names->sh_size < sizeof strtab &&
            pread(fd, strtab, names->sh_size, (off_t)names->sh_offset) == (ssize_t)names->sh_size) {
            strtab[names->sh_size] = 0;
            for (unsigned i = 0; i < eh.e_shnum && !found; i++) {
                if (sh[i].sh_name >= names->sh_size || strcmp(strtab + sh[i].sh_name, name) != 0)
                    continue;
                *start = (uintptr_t)info.dli_fbase + sh[i].sh_addr;
                *end = *start + sh[i].sh_size;
                found = true;
            }
        }
    }
    close(fd);
    return found;
}

/* How many pages of the library's section `name` the process maps
 * (/proc/self/pagemap's present bit); -1 when it cannot tell. */
static long section_pages_mapped(const char *name, long *pages)
{
    uintptr_t start, end;
    if (!library_section(name, &start, &end)) return -1;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -1;
    long page = sysconf(_SC_PAGESIZE), mapped = 0;
    *pages = 0;
    for (uintptr_t a = start & ~(uintptr_t)(page - 1); a < end; a += (uintptr_t)page, (*pages)++) {
        uint64_t entry = 0;
        if (pread(fd, &entry, sizeof entry, (off_t)(a / (uintptr_t)page * sizeof entry)) !=
            (ssize_t)sizeof entry) {
            close(fd);
            return -1;
        }
        if (entry >> 63) mapped++;
    }
    close(fd);
    return mapped;
}

/* The code marked HS_SELDOM (error reports, statistics, what most programs
 * never run) lies apart from the rest of the text, so that a process that
 * runs none of it does not have the kernel map that 64 KiB window of the
 * file around a fault: 52 KiB of every such process's RSS. The fork
 * handlers' text (HS_APART) is a mapping of its own, 4-8 KiB. A purge pass
 * is what nearly every program that frees memory runs, short ones too
 * (python3 -c pass, git log -p), and a small heap's freed block of 64 KiB
 * or more gives its pages back at once (sort -R): once each ran code of
 * those sections, and every such process kept them. Run with a short purge
 * delay. */
static int test_seldom_text(void)
{
    /* While the heap is small: a slab of one block, its units given back. */
    char *volatile big = malloc(96 * 1024);
    if (!big) return fail("%s", "malloc failed");
    memset(big, 1, 96 * 1024);
    free(big);
    enum { BLOCK = 1024, COUNT = 16 * MiB / BLOCK };
    static void *blocks[COUNT];
    for (long i = 0; i < COUNT; i++) {
        blocks[i] = malloc(BLOCK);
        if (!blocks[i]) return fail("%s", "malloc failed");
        memset(blocks[i], 1, BLOCK);
    }
    for (long i = 0; i < COUNT; i++) free(blocks[i]);
    /* A pass has run once what it advised shows as LazyFree (or left RSS). */
    long long rss_full = rollup("Rss:"), lazy = 0, rss = rss_full;
    for (int ms = 0; ms < 5000 && lazy <= 0 && rss > rss_full - 4 * MiB; ms += 50) {
        usleep(50 * 1000);
        lazy = rollup("LazyFree:");
        rss = rollup("Rss:");
    }
    usleep(200 * 1000); /* the rest of the pass: the lazy stage's look */
    printf("seldom-text: Rss %lld KiB after the frees, then %lld KiB, LazyFree %lld KiB\n",
           rss_full / 1024, rss / 1024, lazy / 1024);
    if (lazy <= 0 && rss > rss_full - 4 * MiB) return fail("%s", "no purge pass within 5 s");
    long seldom_pages, apart_pages;
    long seldom = section_pages_mapped(".text.hs_seldom", &seldom_pages);
    long apart = section_pages_mapped(".hs_apart_text", &apart_pages);
    if (seldom < 0 || apart < 0)
        return fail("%s", "no .text.hs_seldom or .hs_apart_text in the library, or no pagemap");
    printf("seldom-text: pages mapped: %ld of the seldom text's %ld, %ld of the apart text's %ld\n",
           seldom, seldom_pages, apart, apart_pages);
    if (seldom) return fail("%s", "the process ran seldom code: its window is in RSS");
    if (apart) return fail("%s", "the process ran code of the fork handlers' section");
    printf("PASS\n");
    return 0;
}

/* ---- an address-space limit ------------------------------------------------------- */

/* Run with the purge thread held off (HUGESLAB_PURGE_DELAY_MS=3600000): of
 * what the frees leave, what the cache limit keeps rests mapped for reuse,
 * in the address space. Under an RLIMIT_AS 8 MiB above VmSize, a block
 * that needs a new mapping larger than that margin is still had (what
 * rests is unmapped first, as glibc's freed mappings are at once), and a
 * request beyond the limit gets NULL and ENOMEM with the process working
 * on. */
static int test_as_limit(void)
{
    enum { RUNS = 4, SMALL = 1024, SMALL_COUNT = 64 * MiB / SMALL };
    long long before = proc_field("/proc/self/status", "VmSize:");
    void *runs[RUNS];
    for (int i = 0; i < RUNS; i++) {
        size_t size = 64 * MiB - (size_t)i * 3 * 4096;
        runs[i] = malloc(size);
        if (!runs[i]) return fail("malloc of a run failed: %s", strerror(errno));
        memset(runs[i], 0x5a, size);
    }
    void **small = pointer_array(SMALL_COUNT);
    for (size_t i = 0; i < SMALL_COUNT; i++) {
        small[i] = malloc(SMALL);
        if (!small[i]) return fail("malloc failed: %s", strerror(errno));
        memset(small[i], 0x5a, SMALL);
    }
    for (int i = 0; i < RUNS; i++) free(runs[i]);
    for (size_t i = 0; i < SMALL_COUNT; i++) free(small[i]);
    long long resting = proc_field("/proc/self/status", "VmSize:");
    long long kept = resting - before;
    if (kept < 32 * MiB)
        return fail("only %s of freed memory stayed mapped: the limit would show nothing",
                    kept < 0 ? "none" : "a little");
    struct rlimit was, limit;
    getrlimit(RLIMIT_AS, &was);
    limit = (struct rlimit){(rlim_t)(resting + 8 * MiB), was.rlim_max};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return fail("setrlimit: %s", strerror(errno));
    size_t big_size = (size_t)(kept - 8 * MiB);
    char *big = malloc(big_size);
    int big_errno = errno;
    long long with_big = proc_field("/proc/self/status", "VmSize:");
    errno = 0;
    void *too_big = malloc((size_t)resting);
    int too_big_errno = errno;
    void *after = malloc(16);
    printf("as-limit: VmSize %lld MiB, %lld MiB after the frees; under a limit of %lld MiB a "
           "block of %zu MiB: %s (VmSize %lld MiB), one of %lld MiB: %s\n",
           before / MiB, resting / MiB, (long long)limit.rlim_cur / MiB, big_size / MiB,
           big ? "had" : strerror(big_errno), with_big / MiB, resting / MiB,
           too_big ? "had" : strerror(too_big_errno));
    if (!big) return fail("%s", "a block that fits the limit once idle memory is unmapped failed");
    memset(big, 1, big_size);
    if (too_big || too_big_errno != ENOMEM)
        return fail("%s", "a block beyond the limit did not get NULL and ENOMEM");
    if (!after) return fail("%s", "malloc(16) failed after a refused block");
    free(after);
    free(big);
    setrlimit(RLIMIT_AS, &was);
    printf("PASS\n");
    return 0;
}

/* Memory out under RLIMIT_AS with every unit in slabs of one class, then
 * one block in ten of it freed: smaller requests are served from that room
 * (they got NULL: each wanted a slab of its own class, and no unit was
 * left for one). The blocks are listed through their first word, so the
 * list takes no address space of its own. */
static int test_as_filled(void)
{
    enum { BLOCK = 4000, EACH = 64 };
    static const size_t sizes[] = {16, 100, 512, 1000, 2000, 3000};
    struct rlimit was, limit;
    getrlimit(RLIMIT_AS, &was);
    long long start = proc_field("/proc/self/status", "VmSize:");
    limit = (struct rlimit){(rlim_t)(start + 48 * MiB), was.rlim_max};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return fail("setrlimit: %s", strerror(errno));
    void *list = NULL, *p;
    size_t blocks = 0;
    while ((p = malloc(BLOCK)) != NULL) {
        memset(p, 0x5a, BLOCK);
        *(void **)p = list;
        list = p;
        blocks++;
    }
    int refusal = errno;
    size_t freed = 0, i = 0;
    for (void **link = &list; *link; i++) {
        void *block = *link;
        if (i % 10 == 0) {
            *link = *(void **)block;
            free(block);
            freed++;
        } else {
            link = (void **)block;
        }
    }
    static void *got[sizeof sizes / sizeof sizes[0]][EACH];
    size_t had = 0, refused = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (size_t j = 0; j < EACH; j++) {
            got[k][j] = malloc(sizes[k]);
            if (got[k][j]) {
                memset(got[k][j], (int)k, sizes[k]);
                had++;
            } else {
                refused++;
            }
        }
    printf("as-filled: %zu blocks of %d B under a limit of %lld MiB (VmSize %lld MiB at the "
           "start), refused with %s; %zu freed; then %zu of %zu blocks of 16 B - 3 KiB had\n",
           blocks, BLOCK, (long long)limit.rlim_cur / MiB, start / MiB, strerror(refusal), freed,
           had, had + refused);
    if (refusal != ENOMEM) return fail("%s", "the refusal's errno is not ENOMEM");
    if (blocks < 1000) return fail("%s", "the limit left too little to fill");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (size_t j = 0; j < EACH; j++) {
            unsigned char *b = got[k][j];
            if (b && (b[0] != (unsigned char)k || b[sizes[k] - 1] != (unsigned char)k))
                return fail("%s", "a small block had in the freed room lost its contents");
            free(b);
        }
    while (list) {
        p = list;
        list = *(void **)p;
        free(p);
    }
    setrlimit(RLIMIT_AS, &was);
    if (refused) return fail("%s", "small blocks refused with a tenth of the heap free");
    printf("PASS\n");
    return 0;
}

/* ---- fallbacks ------------------------------------------------------------------ */

static int fill_superslabs(long n, hugeslab_stats_t *after)
{
    size_t count = (size_t)n * (SUPERSLAB / 64);
    void **blocks = pointer_array(count);
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(64);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 7, 64);
    }
    hugeslab_stats(after);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    return 0;
}

static int test_fallback_hugetlb(long pool_pages)
{
    hugeslab_stats_t s;
    if (fill_superslabs(10, &s)) return 1;
    printf("fallback-hugetlb: pool %ld pages: hugetlb %llu, thp %llu, base %llu SuperSlabs\n",
           pool_pages, (unsigned long long)s.superslabs_hugetlb,
           (unsigned long long)s.superslabs_thp, (unsigned long long)s.superslabs_base);
    if (s.superslabs_hugetlb == 0) return fail("%s", "no SuperSlab got the pool's pages");
    if ((long)s.superslabs_hugetlb > pool_pages) return fail("%s", "more hugetlb than the pool");
    if (s.superslabs_thp + s.superslabs_base < 10 - (unsigned long long)pool_pages)
        return fail("%s", "the SuperSlabs beyond the pool did not fall back");
    printf("PASS\n");
    return 0;
}

static int test_fallback_thp_never(void)
{
    hugeslab_stats_t s;
    long long f0 = faults_now();
    if (fill_superslabs(10, &s)) return 1;
    long long f1 = faults_now();
    printf("fallback-thp-never: thp %llu, base %llu SuperSlabs, AnonHugePages %lld KiB, "
           "faults %lld\n",
           (unsigned long long)s.superslabs_thp, (unsigned long long)s.superslabs_base,
           (long long)(s.kernel_anon_huge / 1024), f1 - f0);
    if (s.superslabs_thp != 0) return fail("%s", "THP claimed while the system mode is never");
    if (s.superslabs_base < 10) return fail("%s", "SuperSlabs did not fall back to base pages");
    if (s.kernel_anon_huge > 0) return fail("%s", "the kernel shows huge pages");
    if (s.kernel_thp_superslabs != 0) return fail("%s", "kernel_thp_superslabs counts a hint");
    printf("PASS\n");
    return 0;
}

/* ---- THP hints -------------------------------------------------------------------- */

/* The VmFlags line of the mapping that holds p in /proc/self/smaps, in
 * flags: its THP hints are "hg" (MADV_HUGEPAGE) and "nh" (MADV_NOHUGEPAGE).
 * False when no mapping holds p. */
static bool mapping_flags(const void *p, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return false;
    char line[512];
    bool inside = false, found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long start, end;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-')
            inside = (uintptr_t)p >= start && (uintptr_t)p < end;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, cap, "%s", line + 8);
            flags[strcspn(flags, "\n")] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Whether the two-letter flag is among VmFlags' words. */
static bool has_flag(const char *flags, const char *flag)
{
    for (const char *w = flags; (w = strstr(w, flag)) != NULL; w += 2)
        if ((w == flags || w[-1] == ' ') && (w[2] == ' ' || w[2] == '\0')) return true;
    return false;
}

/* The small heap's SuperSlab keeps its base pages without the pair of hints
 * (MADV_HUGEPAGE at the mapping, MADV_NOHUGEPAGE at its deferral) that cost
 * every process's first malloc 8-35 us: in "madvise" mode it has neither,
 * in "always" mode only the one base pages need. Once the heap grows, it
 * and the SuperSlabs after it are hinted huge. */
static int test_hints(void)
{
    char mode[64] = "";
    FILE *m = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!m || !fgets(mode, sizeof mode, m)) return fail("%s", "cannot read the THP mode");
    fclose(m);
    bool always = strstr(mode, "[always]") != NULL;
    if (!always && !strstr(mode, "[madvise]")) return fail("THP mode is %s", mode);
    char *first = malloc(64);
    if (!first) return fail("malloc failed: %s", strerror(errno));
    memset(first, 1, 64);
    char flags[256];
    if (!mapping_flags(first, flags, sizeof flags))
        return fail("%s", "no mapping in /proc/self/smaps holds the first block");
    printf("hints: THP mode %s; the small heap's SuperSlab:%s\n", always ? "always" : "madvise",
           flags);
    bool huge = has_flag(flags, "hg"), kept = has_flag(flags, "nh");
    if (huge) return fail("%s", "the small heap's SuperSlab is hinted huge");
    if (always && !kept)
        return fail("%s", "in \"always\" mode the small heap's SuperSlab lacks MADV_NOHUGEPAGE");
    if (!always && kept)
        return fail("%s", "in \"madvise\" mode the small heap's SuperSlab was hinted twice");

    size_t count = 32 * MiB / 64;
    void **blocks = pointer_array(count);
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(64);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 2, 64);
    }
    char first_flags[256], last_flags[256];
    bool first_found = mapping_flags(first, first_flags, sizeof first_flags);
    bool last_found = mapping_flags(blocks[count - 1], last_flags, sizeof last_flags);
    long long huge_bytes = rollup("AnonHugePages:");
    printf("hints: after 32 MiB of blocks, the first SuperSlab:%s; the last:%s; "
           "AnonHugePages %lld KiB\n",
           first_found ? first_flags : " (none)", last_found ? last_flags : " (none)",
           huge_bytes / 1024);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    free(first);
    if (!first_found || !last_found) return fail("%s", "a block's mapping is not in smaps");
    if (!has_flag(first_flags, "hg") || has_flag(first_flags, "nh"))
        return fail("%s", "the grown heap's first SuperSlab is not hinted huge");
    if (!has_flag(last_flags, "hg") || has_flag(last_flags, "nh"))
        return fail("%s", "a SuperSlab of the grown heap is not hinted huge");
    if (huge_bytes < 8 * MiB) return fail("%s", "the grown heap has no huge pages");
    printf("PASS\n");
    return 0;
}

/* ---- statistics against the kernel ------------------------------------------------ */

static int test_stats(void)
{
    size_t count = 64 * MiB / 256;
    void **blocks = pointer_array(count);
    hugeslab_stats_t s0, s1, s2;
    hugeslab_stats(&s0);
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(256);
        memset(blocks[i], 1, 256);
    }
    hugeslab_stats(&s1);
    long long rss1 = rollup("Rss:");
    long long huge1 = rollup("AnonHugePages:");
    /* What the kernel gave, not the hint: split one huge page under the
     * blocks (MADV_DONTNEED of one 4 KiB page inside the live blocks; the
     * blocks there read as zero, which free() does not mind) and the
     * kernel's figure must lose it while the hint count stays. */
    char *inside = (char *)(((uintptr_t)blocks[count / 2] & ~(uintptr_t)4095) + 4096);
    hugeslab_stats_t split;
    if (madvise(inside, 4096, MADV_DONTNEED) != 0) return fail("madvise: %s", strerror(errno));
    hugeslab_stats(&split);
    printf("stats: THP SuperSlabs %llu by the hint, %lld huge pages by smaps (AnonHugePages "
           "%lld MiB); after splitting one: %llu by the hint, %lld by smaps\n",
           (unsigned long long)s1.superslabs_thp, (long long)s1.kernel_thp_superslabs, huge1 / MiB,
           (unsigned long long)split.superslabs_thp, (long long)split.kernel_thp_superslabs);
    if (s1.kernel_thp_superslabs < 0) return fail("%s", "kernel_thp_superslabs unreadable");
    if (s1.kernel_thp_superslabs * SUPERSLAB > huge1 ||
        s1.kernel_thp_superslabs * SUPERSLAB < huge1 - 4 * MiB)
        return fail("%s", "kernel_thp_superslabs disagrees with AnonHugePages");
    if (s1.superslabs_thp && split.kernel_thp_superslabs != s1.kernel_thp_superslabs - 1)
        return fail("%s", "kernel_thp_superslabs did not see a huge page split");
    if (split.superslabs_thp != s1.superslabs_thp) return fail("%s", "the hint count moved");
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    malloc_trim(0);
    hugeslab_stats(&s2);
    long long rss2 = rollup("Rss:");
    printf("stats: slabs %llu MiB, mapped %llu MiB, thp %llu; kernel Rss %lld MiB "
           "(hugeslab says %lld), AnonHugePages %lld MiB (hugeslab says %lld); after trim "
           "purged %llu MiB, kernel Rss %lld MiB\n",
           (unsigned long long)(s1.bytes_in_slabs / MiB),
           (unsigned long long)(s1.bytes_mapped / MiB), (unsigned long long)s1.superslabs_thp,
           rss1 / MiB, (long long)(s1.kernel_rss / MiB), huge1 / MiB,
           (long long)(s1.kernel_anon_huge / MiB), (unsigned long long)(s2.bytes_purged_now / MiB),
           rss2 / MiB);
    if (s1.bytes_in_slabs < 64 * (unsigned long long)MiB)
        return fail("%s", "bytes_in_slabs too small");
    if (s1.bytes_mapped < s1.bytes_in_slabs) return fail("%s", "mapped < in slabs");
    /* Our reading of the kernel and the test's own reading agree within 4 MiB. */
    if (llabs((long long)s1.kernel_rss - rss1) > 4 * MiB) return fail("%s", "kernel_rss disagrees");
    if (llabs((long long)s1.kernel_anon_huge - huge1) > 4 * MiB)
        return fail("%s", "kernel_anon_huge disagrees");
    /* The SuperSlabs that claim THP must be visible as huge pages. */
    if (s1.superslabs_thp && huge1 < (long long)(s1.superslabs_thp - 2) * SUPERSLAB)
        return fail("%s", "THP SuperSlabs not backed by huge pages");
    if (rss1 - rss2 < 56 * MiB) return fail("%s", "malloc_trim(0) did not give memory back");
    if (s2.bytes_purged_now < 56 * (unsigned long long)MiB)
        return fail("%s", "bytes_purged_now does not show the trim");
    char json[2048];
    size_t len = hugeslab_stats_json(json, sizeof json);
    if (len >= sizeof json || json[0] != '{' || json[len - 1] != '}' ||
        !strstr(json, "\"superslabs_mapped\": ") || !strstr(json, "\"kernel_rss\": "))
        return fail("bad JSON: %s", json);
    printf("PASS\n");
    return 0;
}

/* ---- a thread that only frees ------------------------------------------------ */

#define CONSUMER_BLOCKS 1000
static hugeslab_stats_t consumer_view; /* the figures as the consumer saw them */

static void *consumer(void *arg)
{
    void **blocks = arg;
    for (size_t i = 0; i < CONSUMER_BLOCKS; i++) free(blocks[i]);
    hugeslab_stats(&consumer_view); /* while this thread still runs */
    return NULL;
}

/* The same, leaving without a look at the figures: the frees still waiting
 * in the batch lent to it go at its exit. */
static void *consumer_leaving(void *arg)
{
    void **blocks = arg;
    for (size_t i = 0; i < CONSUMER_BLOCKS; i++) free(blocks[i]);
    return NULL;
}

/* Freeing another thread's blocks must not give the freeing thread a heap
 * (threads_live would count it), and the frees must still be counted, by
 * the time the thread reads the figures and by the time it has left. */
static int test_consumer(void)
{
    void **blocks = pointer_array(CONSUMER_BLOCKS);
    for (size_t i = 0; i < CONSUMER_BLOCKS; i++) blocks[i] = malloc(64);
    hugeslab_stats_t before;
    hugeslab_stats(&before);
    pthread_t t;
    if (pthread_create(&t, NULL, consumer, blocks) != 0) return fail("%s", "pthread_create");
    pthread_join(t, NULL);
    printf("consumer: threads with a heap %llu before, %llu while the consumer ran; remote "
           "frees %llu before, %llu after\n",
           (unsigned long long)before.threads_live, (unsigned long long)consumer_view.threads_live,
           (unsigned long long)before.remote_frees, (unsigned long long)consumer_view.remote_frees);
    if (consumer_view.threads_live != before.threads_live)
        return fail("%s", "the freeing thread got a heap");
    if (consumer_view.remote_frees < before.remote_frees + CONSUMER_BLOCKS)
        return fail("%s", "the remote frees were not counted");
    for (size_t i = 0; i < CONSUMER_BLOCKS; i++) blocks[i] = malloc(64);
    if (pthread_create(&t, NULL, consumer_leaving, blocks) != 0)
        return fail("%s", "pthread_create");
    pthread_join(t, NULL);
    hugeslab_stats_t after;
    hugeslab_stats(&after);
    printf("consumer: remote frees %llu after a second consumer left without a look\n",
           (unsigned long long)after.remote_frees);
    if (after.remote_frees < consumer_view.remote_frees + CONSUMER_BLOCKS)
        return fail("%s", "the frees of a thread that left were not all done");
    printf("PASS\n");
    return 0;
}

/* ---- thread churn ---------------------------------------------------------------- */

#define CHURN_RING 1000
static void *churn_ring[CHURN_RING];
static size_t churn_block = 128; /* bytes each thread leaves behind, written whole */

/* Frees the block of the thread CHURN_RING before (whose thread is gone, so
 * the free lands in an orphan slab), uses a few size classes for a moment,
 * and leaves one block of churn_block bytes behind. */
static void *churn_thread(void *arg)
{
    size_t i = (size_t)arg;
    free(churn_ring[i % CHURN_RING]);
    void *temps[32];
    for (size_t k = 0; k < 32; k++) {
        temps[k] = malloc(16 + (i * 7 + k * 13) % 241);
        if (temps[k]) memset(temps[k], 1, 16);
    }
    for (size_t k = 0; k < 32; k++) free(temps[k]);
    churn_ring[i % CHURN_RING] = malloc(churn_block);
    if (churn_ring[i % CHURN_RING]) memset(churn_ring[i % CHURN_RING], 2, churn_block);
    return NULL;
}

/* The peak is the larger of VmHWM and the VmRSS read after each batch of
 * threads. Since Linux 6.2 the page counts are per-CPU counters, and the
 * mark behind VmHWM is raised from their shared part only: a peak that a
 * release ended is short by what the CPUs held back, up to a batch each
 * (32 pages, or twice the CPU count where that is more) per counter, so
 * the more CPUs, the further VmHWM falls short. VmRSS sums them all
 * (bench/README.md, "Peak RSS, exactly"). */
static int test_churn(long threads, long max_mib)
{
    long long start = rollup("Rss:"), sampled = 0;
    for (long i = 0; i < threads; i += 10) {
        pthread_t t[10];
        for (long k = 0; k < 10; k++)
            if (pthread_create(&t[k], NULL, churn_thread, (void *)(i + k)) != 0)
                return fail("pthread_create: %s", strerror(errno));
        for (long k = 0; k < 10; k++) pthread_join(t[k], NULL);
        long long rss = proc_field("/proc/self/status", "VmRSS:");
        if (rss > sampled) sampled = rss;
    }
    long long hwm = proc_field("/proc/self/status", "VmHWM:");
    long long peak = hwm > sampled ? hwm : sampled;
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    printf("churn: %ld threads, at most %d live %zu-byte blocks: Rss at start %lld KiB, peak "
           "%lld KiB (VmHWM %lld, most VmRSS read %lld; limit: start + %ld MiB); %llu "
           "SuperSlabs mapped, %llu orphan slabs\n",
           threads, CHURN_RING, churn_block, start / 1024, peak / 1024, hwm / 1024, sampled / 1024,
           max_mib, (unsigned long long)s.superslabs_mapped, (unsigned long long)s.orphan_slabs);
    if (start < 0 || hwm < 0 || sampled <= 0) return fail("%s", "cannot read Rss, VmRSS or VmHWM");
    if (peak - start > max_mib * MiB)
        return fail("%s", "RSS grew with the threads that lived, not with the live blocks");
    for (long k = 0; k < CHURN_RING; k++) free(churn_ring[k]);
    printf("PASS\n");
    return 0;
}

/* ---- a small heap ---------------------------------------------------------------- */

/* One block of each size class up to 64 KiB, written whole: about 600 KiB
 * in 44 classes. Slabs of the usual geometry (8 blocks from 10 KiB on) take
 * more than a SuperSlab's 64 units, and a second SuperSlab turns the heap
 * into two huge pages; slabs cut small while the heap is small keep it in
 * the first one, on base pages that cost only what is written. */
static int test_small_heap(void)
{
    static void *blocks[64];
    hugeslab_stats_t before, after;
    hugeslab_stats(&before);
    long long rss0 = rollup("Rss:"), huge0 = rollup("AnonHugePages:");
    unsigned n = 0;
    for (size_t size = 16; size <= 64 * 1024 && n < 64; n++) {
        blocks[n] = malloc(size);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[n], 0x11, size);
        /* The next class: 16-byte steps to 128, then four per doubling. */
        size_t step = size < 128 ? 16 : (size_t)1 << (63 - __builtin_clzll(size) - 2);
        size += step;
    }
    hugeslab_stats(&after);
    long long rss1 = rollup("Rss:"), huge1 = rollup("AnonHugePages:");
    printf("small-heap: %u blocks; SuperSlabs mapped %llu (before %llu), %llu KiB in slabs; "
           "Rss +%lld KiB, AnonHugePages +%lld KiB\n",
           n, (unsigned long long)after.superslabs_mapped,
           (unsigned long long)before.superslabs_mapped,
           (unsigned long long)after.bytes_in_slabs / 1024, (rss1 - rss0) / 1024,
           (huge1 - huge0) / 1024);
    for (unsigned i = 0; i < n; i++) free(blocks[i]);
    if (rss0 < 0 || huge0 < 0) return fail("%s", "cannot read smaps_rollup");
    if (after.superslabs_mapped > 1)
        return fail("%s", "a heap of a few hundred KiB took a second SuperSlab");
    if (huge1 > huge0) return fail("%s", "a small heap was given huge pages");
    if (rss1 - rss0 > 2 * MiB) return fail("%s", "a small heap cost more than 2 MiB of RSS");
    printf("PASS\n");
    return 0;
}

/* Pages of [p, p + size) in memory, -1 when mincore fails. */
static long pages_in_memory(void *p, size_t size)
{
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)4095;
    size_t len = (uintptr_t)p + size - start, n = (len + 4095) / 4096;
    static unsigned char vec[1024];
    if (n > sizeof vec || mincore((void *)start, len, vec) != 0) return -1;
    long in_memory = 0;
    for (size_t i = 0; i < n; i++) in_memory += vec[i] & 1;
    return in_memory;
}

/* A small heap's block of 832 KiB (sort's buffer), written whole and
 * freed: its pages go back at once, as glibc unmaps it. The same size
 * again (a class that recurs) keeps its empty slab, pages and all. */
static int test_small_heap_large(void)
{
    const size_t size = 832 * 1024;
    void *small = malloc(100);
    char *big = malloc(size);
    if (!small || !big) return fail("malloc failed: %s", strerror(errno));
    memset(big, 0x11, size);
    long written = pages_in_memory(big, size);
    free(big);
    long after_free = pages_in_memory(big, size);
    char *again = malloc(size);
    if (!again) return fail("malloc failed: %s", strerror(errno));
    memset(again, 0x22, size);
    free(again);
    long kept = pages_in_memory(again, size);
    free(small);
    printf("small-heap-large: %zu KiB block: %ld pages written, %ld after its free; "
           "the same size again: %ld after its free\n",
           size / 1024, written, after_free, kept);
    if (written < 0 || after_free < 0 || kept < 0) return fail("%s", "mincore failed");
    if (after_free > 1) return fail("%s", "a small heap's freed 832 KiB block stayed resident");
    if (kept < written / 2) return fail("%s", "a recurring class's block was given back again");
    printf("PASS\n");
    return 0;
}

/* Voluntary context switches of the purge thread ("hugeslab-purge"): the
 * times it went to sleep, so about its wakeups. 0 while it has not started. */
static long long purge_thread_switches(void)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    long long switches = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        bool purge = fgets(comm, sizeof comm, f) && strncmp(comm, "hugeslab-purge", 14) == 0;
        fclose(f);
        if (!purge) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        switches = proc_field(path, "voluntary_ctxt_switches:");
    }
    closedir(dir);
    return switches;
}

/* A small heap that keeps some 50 blocks of 32-64 KiB in 100 slots, a
 * random slot's block freed or a new one put there at each turn: each has
 * a slab of its own, cut and released as it comes and goes. Kernel
 * truth: the loop costs about the pages it writes once, not a give-back
 * and a fault again at each turn (17,900 faults in 20,000 turns before),
 * and the purge thread sleeps through it (it was woken at every free in
 * the few milliseconds after each one it timed its sleep for). */
static int test_small_heap_churn(void)
{
    enum { BLOCKS = 100, WARM_UP = 2000, TURNS = 20000 };
    static char *blocks[BLOCKS];
    uint64_t x = 88172645463325252ull;
    void *small = malloc(100);
    if (!small) return fail("malloc failed: %s", strerror(errno));
    long long faults0 = 0, switches0 = 0;
    for (unsigned turn = 0; turn < WARM_UP + TURNS; turn++) {
        if (turn == WARM_UP) {
            faults0 = faults_now();
            switches0 = purge_thread_switches();
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned i = (unsigned)(x % BLOCKS);
        size_t size = 32 * 1024 + 1 + (size_t)(x >> 32) % (32 * 1024);
        if (blocks[i]) {
            free(blocks[i]);
            blocks[i] = NULL;
            continue;
        }
        blocks[i] = malloc(size);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        blocks[i][0] = 1;
        blocks[i][size - 1] = 2;
    }
    long long faults = faults_now() - faults0;
    long long switches = purge_thread_switches();
    hugeslab_stats_t st;
    hugeslab_stats(&st);
    for (unsigned i = 0; i < BLOCKS; i++) free(blocks[i]);
    free(small);
    printf("small-heap-churn: %d turns of 100 slots of 32-64 KiB: %lld page faults, "
           "the purge thread slept %lld times; %llu KiB in slabs\n",
           TURNS, faults, switches - switches0, (unsigned long long)st.bytes_in_slabs / 1024);
    if (switches < 0 || switches0 < 0) return fail("%s", "cannot read /proc/self/task");
    if (st.bytes_in_slabs > 8 * MiB) return fail("%s", "the heap was not small");
    if (faults > 1024) return fail("%s", "a turn gave pages back that the next one faulted in");
    if (switches - switches0 > 10) return fail("%s", "frees kept waking the purge thread");
    printf("PASS\n");
    return 0;
}

/* Whether the bytes the statistics count as given back (`counted`) are
 * what left Rss (`dropped`), within two pages: the Rss of a step is read
 * before and after it with no allocation in between. Its Anonymous part:
 * the first run of a path also maps pages of the library's text. */
static bool counted_as_dropped(const char *what, long long counted, long long dropped)
{
    printf("counted: %s: %lld KiB counted as given back, anonymous Rss -%lld KiB\n", what,
           counted / 1024, dropped / 1024);
    if (dropped < 64 * 1024) {
        printf("FAIL: %s: Rss did not drop\n", what);
        return false;
    }
    if (counted < dropped - 8192 || counted > dropped + 8192) {
        printf("FAIL: %s: the statistics do not count what left Rss\n", what);
        return false;
    }
    return true;
}

/* A small heap's block of 832 KiB, written whole (its usable size) and
 * freed, goes back as it is freed (seg_units_free): counted at once, as
 * much as left Rss. A run of 6 MiB, written whole and freed, waits in the
 * run cache; malloc_trim unmaps it: counted with the idle memory, as much
 * as left Rss. Before, neither was counted (only the purge thread's
 * madvise). Nothing is printed until all is read: no block of stdio's
 * comes or goes in between. */
static int test_counted(void)
{
    void *small = malloc(100);
    char *big = malloc(832 * 1024);
    if (!small || !big) return fail("malloc failed: %s", strerror(errno));
    size_t big_size = malloc_usable_size(big);
    memset(big, 0x11, big_size);
    hugeslab_stats_t s0, s1, s2, s3;
    hugeslab_stats(&s0);
    long long rss0 = rollup_unbuffered("Anonymous");
    free(big);
    long long rss1 = rollup_unbuffered("Anonymous");
    hugeslab_stats(&s1);

    size_t run_size = 6 * MiB - 64 * 1024;
    char *run = malloc(run_size);
    if (!run) return fail("malloc failed: %s", strerror(errno));
    run_size = malloc_usable_size(run);
    memset(run, 0x22, run_size);
    free(run);
    /* The free may start the purge thread: its stack and TLS fault now,
     * not during the trim below (its delay is 500 ms). */
    usleep(100 * 1000);
    hugeslab_stats(&s2);
    long long rss2 = rollup_unbuffered("Anonymous");
    malloc_trim(0);
    long long rss3 = rollup_unbuffered("Anonymous");
    hugeslab_stats(&s3);
    free(small);

    printf("counted: a %zu B block freed in the small heap; a %zu B run freed, then "
           "malloc_trim; purge calls %llu -> %llu -> %llu -> %llu (at once %llu -> %llu -> %llu "
           "-> %llu)\n",
           big_size, run_size, (unsigned long long)s0.purge_calls,
           (unsigned long long)s1.purge_calls, (unsigned long long)s2.purge_calls,
           (unsigned long long)s3.purge_calls, (unsigned long long)s0.purge_calls_at_once,
           (unsigned long long)s1.purge_calls_at_once, (unsigned long long)s2.purge_calls_at_once,
           (unsigned long long)s3.purge_calls_at_once);
    if (rss0 < 0 || rss1 < 0 || rss2 < 0 || rss3 < 0) return fail("%s", "cannot read smaps_rollup");
    if (!counted_as_dropped("free of the small heap's block",
                            (long long)(s1.bytes_purged_total - s0.bytes_purged_total),
                            rss0 - rss1))
        return 1;
    if (!counted_as_dropped("... of which at once",
                            (long long)(s1.bytes_purged_at_once - s0.bytes_purged_at_once),
                            rss0 - rss1))
        return 1;
    if (!counted_as_dropped("malloc_trim of a cached run",
                            (long long)(s3.bytes_purged_total - s2.bytes_purged_total),
                            rss2 - rss3))
        return 1;
    if (s3.bytes_purged_at_once != s2.bytes_purged_at_once)
        return fail("%s", "malloc_trim's idle memory was counted as given back at once");
    if (s1.purge_calls_at_once <= s0.purge_calls_at_once || s3.purge_calls <= s2.purge_calls)
        return fail("%s", "a call that gave pages back was not counted");
    printf("PASS\n");
    return 0;
}

/* ---- a large block's usable bytes are the program's ------------------------------------ */

/* Every byte malloc_usable_size reports is the program's to write, and a
 * realloc within it keeps the block where it is: a run's end past the
 * size asked for holds data then. Other runs mapped after it, and their
 * frees, must not give any of it back (a trim of the last chunk past the
 * size asked for lost 1.5 MiB of a block so grown). Blocks of 10.5 and
 * 6.25 MiB, grown in place by realloc to their usable size less a page,
 * or written to the end of their usable size, then 64 MiB in new runs. */
static int test_usable_kept(void)
{
    const size_t sizes[] = {21 * MiB / 2, 25 * MiB / 4};
    unsigned char *blocks[4];
    size_t lengths[4];
    for (int i = 0; i < 4; i++) {
        size_t asked = sizes[i % 2];
        unsigned char *p = malloc(asked);
        if (!p) return fail("malloc failed: %s", strerror(errno));
        size_t usable = malloc_usable_size(p);
        if (usable < asked) return fail("%s", "malloc_usable_size is below the size asked for");
        lengths[i] = i < 2 ? usable - 4096 : usable;
        if (i < 2) {
            unsigned char *q = realloc(p, lengths[i]);
            if (!q) return fail("realloc failed: %s", strerror(errno));
            p = q;
        }
        memset(p, 0xa5 ^ i, lengths[i]);
        blocks[i] = p;
    }
    for (int round = 0; round < 4; round++) {
        char *more[4];
        for (int j = 0; j < 4; j++) {
            more[j] = malloc(4 * MiB + (size_t)j * MiB);
            if (!more[j]) return fail("malloc failed: %s", strerror(errno));
            memset(more[j], 1, 4 * MiB);
        }
        for (int j = 0; j < 4; j++) free(more[j]);
    }
    for (int i = 0; i < 4; i++) {
        size_t lost = 0;
        for (size_t k = 0; k < lengths[i]; k++) lost += blocks[i][k] != (unsigned char)(0xa5 ^ i);
        printf("usable-kept: block %d, %zu bytes written, %zu lost\n", i, lengths[i], lost);
        if (lost) return fail("%s", "a block lost some of its usable bytes");
        free(blocks[i]);
    }
    printf("PASS\n");
    return 0;
}

/* ---- the huge page where a block's writing stopped -------------------------------------- */

/* Bytes written into the block: its first chunk (after the run's header)
 * and 400 KiB of the next, whose huge page then holds some 1.6 MiB of
 * zeros; the chunks after it are not touched. */
#define FRONTIER_WRITTEN (2 * MiB + 400 * 1024)

static bool frontier_bytes_kept(const unsigned char *p, size_t len, unsigned char seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)(seed + i / 4096)) return false;
    return true;
}

static void frontier_fill(unsigned char *p, size_t len, unsigned char seed)
{
    for (size_t i = 0; i < len; i++) p[i] = (unsigned char)(seed + i / 4096);
}

/* Waits up to 3 s for Rss to drop `drop` bytes below `from`; returns the
 * drop seen. */
static long long frontier_wait_drop(long long from, long long drop)
{
    long long now = from;
    for (int i = 0; i < 60 && from - now < drop; i++) {
        usleep(50 * 1000);
        now = rollup("Rss:");
    }
    return from - now;
}

static int test_frontier(bool kept)
{
    const size_t size = 6 * MiB;
    unsigned char *p = malloc(size);
    if (!p) return fail("malloc failed: %s", strerror(errno));
    frontier_fill(p, FRONTIER_WRITTEN, 1);
    /* The chunk where the writing stopped: the run's second. */
    void *stopped = (void *)(((uintptr_t)p + 2 * MiB) & ~(uintptr_t)(2 * MiB - 1));
    if (range_holds_huge(stopped, 2 * MiB) != 1)
        return fail("%s", "the chunk where the block's writing stopped is no huge page: "
                          "nothing to split");
    long long rss0 = rollup("Rss:"), huge0 = rollup("AnonHugePages:");
    /* The chunk holds 100 pages of the block and 412 of zeros. */
    long long dropped = frontier_wait_drop(rss0, 1 * MiB);
    long long huge1 = rollup("AnonHugePages:");
    printf("frontier: Rss %lld KiB, then %lld KiB less within 3 s; AnonHugePages %lld -> %lld "
           "KiB\n",
           rss0 / 1024, dropped / 1024, huge0 / 1024, huge1 / 1024);
    if (!frontier_bytes_kept(p, FRONTIER_WRITTEN, 1))
        return fail("%s", "the block lost bytes where its huge page was split");
    if (kept) {
        if (dropped >= 512 * 1024 || huge1 < huge0)
            return fail("%s", "a huge page was split although HUGESLAB_SPLIT_SPARSE=0");
        free(p);
        printf("PASS\n");
        return 0;
    }
    if (dropped < 1 * MiB || huge1 > huge0 - 2 * MiB)
        return fail("%s", "the huge page where the block's writing stopped was not split "
                          "within 3 s (its zeros stayed in Rss)");
    /* Written on past where it stopped: the bytes land, a fault a page. */
    frontier_fill(p + FRONTIER_WRITTEN, 64 * 1024, 7);
    if (!frontier_bytes_kept(p + FRONTIER_WRITTEN, 64 * 1024, 7) ||
        !frontier_bytes_kept(p, FRONTIER_WRITTEN, 1))
        return fail("%s", "writing past the split lost bytes");
    /* Moved by realloc (mremap moves one mapping: the split chunk is hinted
     * as the rest again first). */
    unsigned char *q = realloc(p, 24 * MiB);
    if (!q) return fail("realloc failed: %s", strerror(errno));
    if (!frontier_bytes_kept(q, FRONTIER_WRITTEN, 1))
        return fail("%s", "realloc of a block with a split chunk lost bytes");
    free(q);
    /* Freed to the run cache and taken again: the split chunk is a huge
     * page again at its first touch, not 512 base-page faults. */
    p = malloc(size);
    if (!p) return fail("malloc failed: %s", strerror(errno));
    long long f0 = faults_now();
    memset(p, 9, size);
    long long faults = faults_now() - f0;
    printf("frontier: the same size again, filled: %lld faults\n", faults);
    if (faults > 16) return fail("%s", "a run whose chunk had been split refilled page by page");
    free(p);
    printf("PASS\n");
    return 0;
}

/* A run of one chunk (a block of 1.5 MiB) whose writing stopped 400 KiB in:
 * its chunk, the run's first, is split; freed, the run waits in the cache,
 * and malloc_trim unmaps it. The split chunk went back whole before, its
 * header's page too: the purge then read a zeroed header, took the run for
 * a SuperSlab of slabs, and kept it mapped on a purged stack while the
 * registry still named it a run. */
static int test_frontier_header(void)
{
    const size_t size = 1536 * 1024, written = 400 * 1024;
    unsigned char *p = malloc(size);
    if (!p) return fail("malloc failed: %s", strerror(errno));
    frontier_fill(p, written, 5);
    void *chunk = (void *)((uintptr_t)p & ~(uintptr_t)(2 * MiB - 1));
    if (range_holds_huge(chunk, 2 * MiB) != 1)
        return fail("%s", "the block's chunk is no huge page: nothing to split");
    long long rss0 = rollup("Rss:");
    long long dropped = frontier_wait_drop(rss0, 1 * MiB);
    bool kept = frontier_bytes_kept(p, written, 5);
    free(p);
    malloc_trim(0);
    unsigned char vec[1];
    bool mapped = mincore(chunk, 4096, vec) == 0;
    printf("frontier-header: Rss %lld KiB less within 3 s; after free and malloc_trim the run "
           "is %s\n",
           dropped / 1024, mapped ? "still mapped" : "unmapped");
    if (dropped < 1 * MiB) return fail("%s", "the run's chunk was not split within 3 s");
    if (!kept) return fail("%s", "the block lost bytes where its huge page was split");
    if (mapped)
        return fail("%s", "a cached run whose chunk was split stayed mapped after malloc_trim");
    printf("PASS\n");
    return 0;
}

/* Threads that take blocks of 2-12 MiB, write a part of each, wait (so
 * that looks split where the writing stopped), check, resize and free
 * them, while the main thread forks children that check a block of their
 * own: every byte written stays, whatever the looks did meanwhile. */
#define FRONTIER_CHURN_THREADS 4

static _Atomic int frontier_churn_failed;

static void *frontier_churn_worker(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    for (int round = 0; round < 12 && !frontier_churn_failed; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t size = (2 + x % 11) * MiB, written = 64 * 1024 + (x >> 8) % size;
        unsigned char seed = (unsigned char)(x >> 40);
        unsigned char *p = malloc(size);
        if (!p) {
            frontier_churn_failed = 1;
            break;
        }
        frontier_fill(p, written, seed);
        usleep((useconds_t)((x >> 20) % 300) * 1000);
        if (!frontier_bytes_kept(p, written, seed)) frontier_churn_failed = 1;
        size_t resized = (2 + (x >> 32) % 11) * MiB;
        unsigned char *q = realloc(p, resized);
        if (!q) {
            free(p);
            frontier_churn_failed = 1;
            break;
        }
        size_t kept = written < resized ? written : resized;
        if (!frontier_bytes_kept(q, kept, seed)) frontier_churn_failed = 1;
        usleep((useconds_t)((x >> 28) % 200) * 1000);
        if (!frontier_bytes_kept(q, kept, seed)) frontier_churn_failed = 1;
        free(q);
    }
    return NULL;
}

static int test_frontier_churn(void)
{
    pthread_t threads[FRONTIER_CHURN_THREADS];
    for (uintptr_t i = 0; i < FRONTIER_CHURN_THREADS; i++)
        if (pthread_create(&threads[i], NULL, frontier_churn_worker, (void *)(i + 1)) != 0)
            return fail("pthread_create failed: %s", strerror(errno));
    int forks = 0;
    for (int i = 0; i < 10; i++) {
        unsigned char *p = malloc(5 * MiB);
        if (!p) return fail("malloc failed: %s", strerror(errno));
        frontier_fill(p, FRONTIER_WRITTEN, 3);
        usleep(250 * 1000);
        pid_t child = fork();
        if (child < 0) return fail("fork failed: %s", strerror(errno));
        if (child == 0) {
            bool kept = frontier_bytes_kept(p, FRONTIER_WRITTEN, 3);
            unsigned char *q = realloc(p, 9 * MiB);
            kept = kept && q && frontier_bytes_kept(q, FRONTIER_WRITTEN, 3);
            free(q);
            _exit(kept ? 0 : 1);
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return fail("%s", "a fork child found its block's bytes changed");
        forks++;
        if (!frontier_bytes_kept(p, FRONTIER_WRITTEN, 3))
            return fail("%s", "a block lost bytes across a fork");
        free(p);
    }
    for (int i = 0; i < FRONTIER_CHURN_THREADS; i++) pthread_join(threads[i], NULL);
    printf("frontier-churn: %d threads, 12 blocks each, %d forks\n", FRONTIER_CHURN_THREADS, forks);
    if (frontier_churn_failed) return fail("%s", "a block lost bytes while looks split chunks");
    printf("PASS\n");
    return 0;
}

/* ---- the last chunk of a run ---------------------------------------------------------- */

/* Rss grew by `delta` bytes: PASS when it lies in [lo, hi] MiB. */
static bool rss_grew(const char *what, long long delta, double lo, double hi, long long faults)
{
    printf("run-tail: %s: Rss %+lld KiB, %lld faults\n", what, delta / 1024, faults);
    if ((double)delta >= lo * (double)MiB && (double)delta <= hi * (double)MiB) return true;
    printf("FAIL: %s: Rss should grow by %.2f to %.2f MiB\n", what, lo, hi);
    return false;
}

/* An 8 MiB block has 64 bytes in the fifth chunk of its run (the header
 * comes first): filled, it costs 8 MiB and a page, not 10 MiB. A 9 MiB one
 * fills more than half of that chunk, which is a huge page then: 10 MiB,
 * the figure the first would show if its end were a huge page too. */
static int test_run_tail(void)
{
    size_t eight = 8 * MiB, nine = 9 * MiB, twelve = 12 * MiB;
    /* The first large block starts the purge thread (its looks at live
     * runs, segment/frontier.c), whose stack and TLS pages (about 56 KiB)
     * landed in the first reading or not, by the scheduler's choice: 12,508
     * KiB, or 12,568 and two faults more. Started before the readings, and
     * the run cache emptied again: 12,416 KiB and 6 faults in 12 runs of 12. */
    void *starter = malloc(3 * MiB);
    if (!starter) return fail("malloc failed: %s", strerror(errno));
    free(starter);
    malloc_trim(0);
    usleep(100 * 1000);
    long long rss0 = rollup("Rss:"), f0 = faults_now();
    if (rss0 < 0) return fail("%s", "cannot read smaps_rollup");
    /* 10.5 MiB: half a chunk at the end is 128 pages, more than one fault
     * per chunk allows, so a huge page too: 12 MiB in about 6 faults. Kept
     * to the end, out of the run cache the cases below use. */
    size_t ten_half = 21 * MiB / 2;
    char *c = malloc(ten_half);
    if (!c) return fail("malloc failed: %s", strerror(errno));
    memset(c, 5, ten_half);
    long long rss_c = rollup("Rss:"), f_c = faults_now();
    if (!rss_grew("10.5 MiB block", rss_c - rss0, 11.9, 12.25, f_c - f0)) return 1;
    if (f_c - f0 > 16) return fail("%s", "a 10.5 MiB block (6 chunks) took more than 16 faults");
    rss0 = rss_c;
    f0 = f_c;
    char *a = malloc(eight);
    if (!a) return fail("malloc failed: %s", strerror(errno));
    memset(a, 1, eight);
    long long rss1 = rollup("Rss:"), f1 = faults_now();
    if (!rss_grew("8 MiB block", rss1 - rss0, 8.0, 8.25, f1 - f0)) return 1;
    char *b = malloc(nine);
    if (!b) return fail("malloc failed: %s", strerror(errno));
    memset(b, 2, nine);
    long long rss2 = rollup("Rss:"), f2 = faults_now();
    if (!rss_grew("9 MiB block", rss2 - rss1, 9.9, 10.25, f2 - f1)) return 1;
    /* Grown by realloc: the old end chunk is filled now, the new one holds
     * 64 bytes. */
    char *grown = realloc(a, twelve);
    if (!grown) return fail("realloc failed: %s", strerror(errno));
    if (grown[eight - 1] != 1) return fail("%s", "realloc lost the block's bytes");
    a = grown;
    memset(a + eight, 3, twelve - eight);
    long long rss3 = rollup("Rss:"), f3 = faults_now();
    if (!rss_grew("realloc to 12 MiB", rss3 - rss2, 4.0, 4.25, f3 - f2)) return 1;
    /* The old end chunk had a page or two of base pages resident: filled
     * one page at a time, it would be 511 faults more. */
    if (f3 - f2 > 64)
        return fail("%s", "the old end chunk of a grown run was refaulted one by one");
    /* Freed to the run cache and taken again for 8 MiB: the run is cut,
     * and what lies past the new end in its end chunk goes back. */
    free(a);
    a = malloc(eight);
    if (!a) return fail("malloc failed: %s", strerror(errno));
    memset(a, 4, eight);
    long long rss4 = rollup("Rss:"), f4 = faults_now();
    if (!rss_grew("8 MiB again, from the run cache", rss4 - rss2, -0.25, 0.25, f4 - f3)) return 1;
    /* And grown from the cache for 12 MiB: the chunk on base pages that the
     * block now fills is not refaulted one page at a time. */
    free(a);
    a = malloc(twelve);
    if (!a) return fail("malloc failed: %s", strerror(errno));
    memset(a, 5, twelve);
    long long rss5 = rollup("Rss:"), f5 = faults_now();
    if (!rss_grew("12 MiB, from the run cache", rss5 - rss4, 4.0, 4.25, f5 - f4)) return 1;
    if (f5 - f4 > 64) return fail("%s", "a cached run's base pages were refaulted one by one");
    free(a);
    /* Grown in place: a 4 MiB block has 64 bytes in the third chunk of
     * its run, on base pages; realloc to 5.5 MiB keeps it where it is (the
     * run holds 6 MiB), and the block now fills three quarters of that
     * chunk, which becomes a huge page with the page it had, not one
     * fault per page (384 with the run's hints left as they were). */
    char *g = malloc(4 * MiB);
    if (!g) return fail("malloc failed: %s", strerror(errno));
    memset(g, 6, 4 * MiB);
    long long rss6 = rollup("Rss:"), f6 = faults_now();
    char *g2 = realloc(g, 11 * MiB / 2);
    if (g2 != g) return fail("%s", "realloc to 5.5 MiB moved a block whose run holds 6 MiB");
    g = g2;
    memset(g + 4 * MiB, 7, 3 * MiB / 2);
    long long rss7 = rollup("Rss:"), f7 = faults_now();
    if (!rss_grew("4 MiB grown in place to 5.5 MiB", rss7 - rss6, 1.9, 2.0, f7 - f6)) return 1;
    if (f7 - f6 > 16)
        return fail("%s",
                    "a block grown in place into its base-page end chunk faulted page by page");
    /* The chunk was collapsed with the block's bytes in it: the first
     * block's last 64 bytes lay there, and the new ones fill the rest. */
    size_t lost = 0;
    for (size_t k = 4 * MiB - 64; k < 4 * MiB; k++) lost += g[k] != 6;
    for (size_t k = 4 * MiB; k < 11 * MiB / 2; k += 512) lost += g[k] != 7;
    if (lost) return fail("%s", "a block grown in place lost bytes in the chunk made huge");
    free(g);
    free(b);
    free(c);
    printf("PASS\n");
    return 0;
}

/* ---- a block that grows out of the slabs ------------------------------------------- */

/* An array grown by realloc, as Python's lists grow: blocks of 600,000 B
 * (one-block slabs of 19 units) until one needs a SuperSlab of its own;
 * that one grows in place to 1,000,000 B, then to 3 MiB, a run. Its
 * SuperSlab, empty now, goes back at once: Rss grows by the run (4 MiB, its
 * two chunks filled) less that SuperSlab's pages (2 MiB as a huge page, the
 * block's 977 KiB on base pages), so by less than 3.5 MiB, with nothing
 * LazyFree; kept idle for the purge thread, it grew by 4 MiB. */
static int test_outgrown(void)
{
    enum { most = 32 };
    static char *blocks[most];
    size_t start = 600 * 1000, one = 1000 * 1000, three = 3 * MiB;
    hugeslab_stats_t st;
    hugeslab_stats(&st);
    uint64_t mapped = st.superslabs_mapped;
    /* Reading smaps_rollup allocates (stdio): its blocks' slabs are made
     * now, in the first SuperSlab, and not later in the array's. */
    if (rollup("Rss:") < 0) return fail("%s", "cannot read smaps_rollup");
    int n = 0;
    for (; n < most; n++) {
        blocks[n] = malloc(start);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[n], 1, start);
        hugeslab_stats(&st);
        if (n > 0 && st.superslabs_mapped > mapped) break;
        mapped = st.superslabs_mapped;
    }
    if (n == most) return fail("%s", "32 blocks of 600,000 B never needed a new SuperSlab");
    char *array = realloc(blocks[n], one);
    if (array != blocks[n])
        return fail("%s", "a block alone in its SuperSlab did not grow in place");
    memset(array + start, 1, one - start);
    long long rss0 = rollup("Rss:"), f0 = faults_now();
    char *grown = realloc(array, three);
    if (!grown) return fail("realloc failed: %s", strerror(errno));
    if (grown[one - 1] != 1) return fail("%s", "realloc lost the block's bytes");
    memset(grown, 2, three);
    long long f1 = faults_now();
    /* The purge thread, woken for it, gives the SuperSlab back at once; the
     * purge delay (500 ms) and then MADV_FREE (LazyFree, in Rss) kept it. */
    long long rss1 = 0;
    long waited = wait_for_rss(rss0 + 7 * MiB / 2 - 1, true, 300, &rss1);
    long long lazy1 = rollup("LazyFree:");
    hugeslab_stats(&st);
    printf("outgrown: block %d of 600,000 B took a new SuperSlab, grew in place to 1,000,000 B; "
           "realloc to 3 MiB: Rss %+lld KiB after %ld ms, LazyFree %lld KiB, %lld faults; "
           "SuperSlabs cached %llu, purged %llu\n",
           n, (rss1 - rss0) / 1024, waited, lazy1 / 1024, f1 - f0,
           (unsigned long long)st.superslabs_cached, (unsigned long long)st.superslabs_purged);
    free(grown);
    for (int i = 0; i < n; i++) free(blocks[i]);
    if (rss0 < 0 || lazy1 < 0) return fail("%s", "cannot read smaps_rollup");
    if (rss1 - rss0 >= 7 * MiB / 2)
        return fail("%s", "the SuperSlab a block grew out of stayed resident");
    if (lazy1 > 0) return fail("%s", "the SuperSlab a block grew out of is LazyFree, still in Rss");
    printf("PASS\n");
    return 0;
}

/* A block of 300,000 B (a one-block slab of 10 units) in the small heap's
 * first SuperSlab, on base pages; 8 MiB of 1,000 B blocks then make the
 * heap outgrow it, which leaves that SuperSlab on base pages (or, were it
 * dense, hints it huge while the kernel still maps it page by page).
 * realloc moves the block to a run: its pages but the first (free's links)
 * leave Rss at once, where before its slab's units stayed resident, free
 * and not purgeable in a THP SuperSlab (Python's list of 1 M strings: 13
 * units). mincore of the old range says. A kernel
 * without PAGEMAP_SCAN (Linux 6.7) keeps them, and so does a SuperSlab that
 * khugepaged made a huge page meanwhile: both are told, not failed. */
static int test_given_back(void)
{
    enum { fill = 8 * 1024 };
    static char *blocks[fill];
    size_t size = 300 * 1000;
    char *a = malloc(size);
    if (!a) return fail("malloc failed: %s", strerror(errno));
    memset(a, 1, size);
    for (int i = 0; i < fill; i++) {
        blocks[i] = malloc(1000);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 2, 1000);
    }
    char *first = (char *)(((uintptr_t)a + 4096) & ~(uintptr_t)4095);
    size_t pages = (size_t)(a + size - first) / 4096;
    unsigned char in_core[128];
    if (pages > sizeof in_core || mincore(first, pages * 4096, in_core) != 0)
        return fail("mincore failed: %s", strerror(errno));
    size_t before = 0, after = 0;
    for (size_t i = 0; i < pages; i++) before += in_core[i] & 1;
    char *moved = realloc(a, 3 * MiB);
    if (!moved) return fail("realloc failed: %s", strerror(errno));
    if (moved[size - 1] != 1 || moved[0] != 1) return fail("%s", "realloc lost the block's bytes");
    if (mincore(first, pages * 4096, in_core) != 0)
        return fail("mincore failed: %s", strerror(errno));
    for (size_t i = 0; i < pages; i++) after += in_core[i] & 1;
    int huge = range_holds_huge(first, pages * 4096);
    printf("given-back: %zu of the block's %zu pages resident before realloc, %zu after; "
           "a huge page there: %d\n",
           before, pages, after, huge);
    free(moved);
    for (int i = 0; i < fill; i++) free(blocks[i]);
    if (before < pages) return fail("%s", "the block's pages were not all resident");
    if (after > 0 && huge == 1) {
        printf("PASS (khugepaged made it a huge page meanwhile: kept whole)\n");
        return 0;
    }
    if (after > 0 && huge < 0) {
        printf("PASS (no PAGEMAP_SCAN in this kernel: kept)\n");
        return 0;
    }
    if (after > 0) return fail("%s", "the pages of a block realloc moved stayed resident");
    printf("PASS\n");
    return 0;
}

/* One block in each class up to 8 KiB leaves the small heap's first
 * SuperSlab sparse (a page or two of each class's unit), then 8 MiB of
 * 1,000 B blocks make the heap grow past it. A deferred SuperSlab with
 * less than seven eighths of its pages in memory stays on base pages: no
 * MADV_HUGEPAGE for it, which khugepaged takes as a request to make the
 * rest of it resident (Python's list of 1 M strings: 2 MiB above its usual
 * peak whenever khugepaged woke at once). smaps's VmFlags of its mapping
 * say; mincore counts its pages. */
static int test_sparse_stays_base(void)
{
    enum { fill = 8 * 1024 };
    static char *classes[128], *blocks[fill];
    int n = 0;
    for (size_t size = 16; size <= 8192 && n < 128; size += size < 512 ? 16 : size / 8) {
        classes[n] = malloc(size);
        if (!classes[n]) return fail("malloc failed: %s", strerror(errno));
        memset(classes[n++], 1, size);
    }
    char *ss = (char *)((uintptr_t)classes[0] & ~(uintptr_t)(2 * MiB - 1));
    long resident[2];
    resident[0] = pages_in_memory(ss, 2 * MiB);
    for (int i = 0; i < fill; i++) {
        blocks[i] = malloc(1000);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 2, 1000);
    }
    resident[1] = pages_in_memory(ss, 2 * MiB);
    if (resident[0] < 0 || resident[1] < 0) return fail("mincore failed: %s", strerror(errno));
    char flags[256];
    bool found = mapping_flags(ss, flags, sizeof flags);
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    printf("sparse-stays-base: %d classes; the first SuperSlab held %ld of its 512 pages, %ld "
           "after the heap grew; its mapping:%s; SuperSlabs thp %llu, base %llu\n",
           n, resident[0], resident[1], found ? flags : " (none)",
           (unsigned long long)s.superslabs_thp, (unsigned long long)s.superslabs_base);
    for (int i = 0; i < n; i++) free(classes[i]);
    for (int i = 0; i < fill; i++) free(blocks[i]);
    if (resident[0] >= 448)
        return fail("%s", "the first SuperSlab was not sparse: nothing to check");
    if (!found) return fail("%s", "the first SuperSlab's mapping is not in smaps");
    if (has_flag(flags, "hg"))
        return fail("%s", "a sparse deferred SuperSlab was hinted huge when the heap grew");
    if (s.superslabs_thp == 0) return fail("%s", "the heap did not grow: no THP SuperSlab");
    printf("PASS\n");
    return 0;
}

/* Blocks of 300 KiB, each a slab of its own in the small heap, with a page
 * of each written, until a fourth SuperSlab is mapped for them: the heap
 * ran out of units with a few dozen pages in memory, far under its budget
 * of 512, and stays small. The fourth is deferred too, no huge page
 * anywhere (git blame's arrays made a fourth SuperSlab a huge page for one
 * unit: 2 MiB above glibc's peak). */
static int test_sparse_four(void)
{
    enum { most = 64 };
    static char *blocks[most];
    long long huge0 = rollup("AnonHugePages:");
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    uint64_t mapped0 = s.superslabs_mapped;
    int n = 0;
    /* The process's SuperSlabs, the first one's (stdio's buffer) included. */
    while (n < most && s.superslabs_mapped < 4) {
        blocks[n] = malloc(300 * 1024);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        blocks[n++][0] = 1;
        hugeslab_stats(&s);
    }
    long long huge1 = rollup("AnonHugePages:"), rss1 = rollup("Rss:");
    printf("sparse-four: %d blocks of 300 KiB, SuperSlabs mapped %llu (before %llu), thp %llu, "
           "base %llu; AnonHugePages %+lld KiB, Rss %lld KiB\n",
           n, (unsigned long long)s.superslabs_mapped, (unsigned long long)mapped0,
           (unsigned long long)s.superslabs_thp, (unsigned long long)s.superslabs_base,
           (huge1 - huge0) / 1024, rss1 / 1024);
    for (int i = 0; i < n; i++) free(blocks[i]);
    if (huge0 < 0 || huge1 < 0) return fail("%s", "cannot read smaps_rollup");
    if (s.superslabs_mapped != 4 || mapped0 >= 3)
        return fail("%s", "the blocks did not make the heap four SuperSlabs: nothing to check");
    if (huge1 > huge0) return fail("%s", "a sparse small heap of four SuperSlabs got a huge page");
    printf("PASS\n");
    return 0;
}

/* A dense heap whose first SuperSlab runs out of units with room left under
 * the small heap's budget of 512 pages: blocks of 1,000 B written whole in
 * about 40 of its units, two of 300 KiB with a page of each written in 20
 * more, and 1,000 B blocks again until a second SuperSlab is mapped. The
 * second is deferred too: no huge page yet. Then 1,000 B blocks until the
 * heap is six SuperSlabs: every one but the first is a huge page, the
 * second made one when the heap outgrew the budget; the faults of it all
 * at most 1.1 a SuperSlab plus 576 (the budget and the look's lateness). */
static int test_dense_room(void)
{
    enum { most = 16384 };
    static char *blocks[most];
    void *volatile warm = malloc(64);
    free(warm);
    /* The array's pages and the reads' buffers fault before the window. */
    memset(blocks, 0, sizeof blocks);
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    long long huge0 = rollup("AnonHugePages:"), f0 = faults_now();
    uint64_t mapped0 = s.superslabs_mapped;
    int n = 0;
    for (; n < 1280; n++) {
        blocks[n] = malloc(1000);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[n], 3, 1000);
    }
    char *apart[2];
    for (int i = 0; i < 2; i++) {
        apart[i] = malloc(300 * 1024);
        if (!apart[i]) return fail("malloc failed: %s", strerror(errno));
        apart[i][0] = 1;
    }
    for (hugeslab_stats(&s); n < most && s.superslabs_mapped < mapped0 + 1; n++) {
        blocks[n] = malloc(1000);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[n], 3, 1000);
        if (n % 256 == 0) hugeslab_stats(&s);
    }
    long long huge1 = rollup("AnonHugePages:");
    uint64_t mapped1 = s.superslabs_mapped;
    for (; n < most && s.superslabs_mapped < mapped0 + 5; n++) {
        blocks[n] = malloc(1000);
        if (!blocks[n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[n], 3, 1000);
        if (n % 256 == 0) hugeslab_stats(&s);
    }
    long long f1 = faults_now(), huge2 = rollup("AnonHugePages:");
    long long superslabs = (long long)(s.superslabs_mapped - mapped0) + 1;
    printf("dense-room: %d blocks; SuperSlabs %llu before, %llu at the second, %llu at the end; "
           "AnonHugePages %+lld KiB at the second, %+lld at the end; faults %lld\n",
           n, (unsigned long long)mapped0, (unsigned long long)mapped1,
           (unsigned long long)s.superslabs_mapped, (huge1 - huge0) / 1024, (huge2 - huge0) / 1024,
           f1 - f0);
    for (int i = 0; i < n; i++) free(blocks[i]);
    free(apart[0]);
    free(apart[1]);
    if (huge0 < 0 || huge1 < 0 || huge2 < 0) return fail("%s", "cannot read smaps_rollup");
    if (mapped0 != 1 || s.superslabs_mapped < mapped0 + 5)
        return fail("%s", "the heap was not one SuperSlab at the start and six at the end");
    if (huge1 > huge0)
        return fail("%s", "the dense heap's second SuperSlab was a huge page at once");
    if (huge2 - huge0 < (superslabs - 1) * 2 * (long long)MiB)
        return fail("%s", "a SuperSlab past the first was not a huge page once the heap grew");
    if ((double)(f1 - f0) > 1.1 * (double)superslabs + 576)
        return fail("%s", "more than 1.1 faults per SuperSlab + 576");
    printf("PASS\n");
    return 0;
}

/* ---- THP turned off by the process ------------------------------------------------ */

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1) /* <linux/prctl.h>, Linux 6.18 */
#endif
#define THP_OFF_BLOCKS 256
#define THP_OFF_BLOCK (256 * 1024)

/* `start` sets the flag, then runs this test again as `started` (execve
 * keeps it); `late` and `advised` set it after the first allocation, as
 * Redis does. 256 blocks of 256 KiB (one-block slabs, seven to a
 * SuperSlab), then every other one freed: each SuperSlab keeps three or
 * four of its blocks, so only its free units can go back, which a huge
 * page keeps until it is nearly empty (SEG_SPARSE_FREE_UNITS) and base
 * pages give after the purge delay. */
static int test_thp_off(const char *when, long max_ms, char **argv)
{
    bool advised = strcmp(when, "advised") == 0;
    if (strcmp(when, "start") == 0) {
        if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            return fail("PR_SET_THP_DISABLE: %s", strerror(errno));
        char *args[] = {argv[0], "thp-off", "started", argv[3], NULL};
        execv("/proc/self/exe", args);
        return fail("execv: %s", strerror(errno));
    }
    void *volatile warm = malloc(16);
    free(warm);
    if (strcmp(when, "late") == 0 && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
        return fail("PR_SET_THP_DISABLE: %s", strerror(errno));
    if (advised && prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0) != 0)
        return fail("PR_SET_THP_DISABLE with PR_THP_DISABLE_EXCEPT_ADVISED: %s", strerror(errno));
    int setting = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (setting != (advised ? 3 : 1)) return fail("%s", "PR_GET_THP_DISABLE does not say so");
    hugeslab_stats_t before, s;
    hugeslab_stats(&before);
    static void *blocks[THP_OFF_BLOCKS];
    for (size_t i = 0; i < THP_OFF_BLOCKS; i++) {
        blocks[i] = malloc(THP_OFF_BLOCK);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], (int)i, THP_OFF_BLOCK);
    }
    hugeslab_stats(&s);
    long long huge = rollup("AnonHugePages:"), full = resident(true);
    unsigned long long thp_new = s.superslabs_thp - before.superslabs_thp;
    unsigned long long mapped_new = s.superslabs_mapped - before.superslabs_mapped;
    for (size_t i = 0; i < THP_OFF_BLOCKS; i += 2) free(blocks[i]);
    long long now = full;
    long elapsed = advised ? 0 : wait_for_rss(full - 24 * MiB, true, max_ms, &now);
    printf("thp-off %s: %llu SuperSlabs mapped for the blocks, %llu counted THP; "
           "AnonHugePages %lld KiB; Rss %lld KiB with the blocks, %lld KiB %ld ms after half "
           "were freed (limit %ld ms)\n",
           when, mapped_new, thp_new, huge / 1024, full / 1024, now / 1024, elapsed, max_ms);
    for (size_t i = 1; i < THP_OFF_BLOCKS; i += 2) free(blocks[i]);
    if (mapped_new < 32) return fail("%s", "the blocks took fewer than 32 SuperSlabs");
    if (advised) {
        /* Hinted ranges keep their huge pages: nothing for the library to
         * change. */
        if (thp_new < 32 || huge < 32 * 2 * MiB)
            return fail("%s", "hinted SuperSlabs lost their huge pages");
        printf("PASS\n");
        return 0;
    }
    if (huge != 0) return fail("%s", "a huge page in a process that turned THP off");
    if (thp_new != 0) return fail("%s", "SuperSlabs counted as THP that are base pages");
    if (full - now < 24 * MiB)
        return fail("%s", "the free units of SuperSlabs on base pages did not go back");
    printf("PASS\n");
    return 0;
}

/* ---- free units of a SuperSlab in use ------------------------------------------------ */

#define UNIT_TEST_BLOCKS 1700
static void *unit_test_blocks[UNIT_TEST_BLOCKS];

/* 1,700 blocks of 1,000 B (27 slabs of 64 KiB: most of one SuperSlab) and
 * one more, kept; the others are freed. The SuperSlab stays in use, so no
 * whole-SuperSlab purge applies: only its free units can go back. */
static int test_free_units(long max_ms)
{
    void *volatile warm = malloc(16);
    free(warm);
    for (size_t i = 0; i < UNIT_TEST_BLOCKS; i++) {
        unit_test_blocks[i] = malloc(1000);
        if (!unit_test_blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(unit_test_blocks[i], 9, 1000);
    }
    void *keeper = malloc(1000);
    if (!keeper) return fail("malloc failed: %s", strerror(errno));
    long long full = rollup("Rss:");
    for (size_t i = 0; i < UNIT_TEST_BLOCKS; i++) free(unit_test_blocks[i]);
    long long now = full;
    long elapsed = wait_for_rss(full - MiB, true, max_ms, &now);
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    printf("free-units: Rss with the blocks %lld KiB, %lld KiB after %ld ms (limit %ld ms); "
           "SuperSlabs mapped %llu, cached %llu, purged %llu; %llu KiB in slabs\n",
           full / 1024, now / 1024, elapsed, max_ms, (unsigned long long)s.superslabs_mapped,
           (unsigned long long)s.superslabs_cached, (unsigned long long)s.superslabs_purged,
           (unsigned long long)s.bytes_in_slabs / 1024);
    free(keeper);
    if (full < 0) return fail("%s", "cannot read smaps_rollup");
    if (s.superslabs_mapped != 1 || s.superslabs_cached + s.superslabs_purged != 0)
        return fail("%s", "the blocks were not in one SuperSlab kept in use");
    if (full - now < MiB)
        return fail("%s", "the free units of a SuperSlab in use did not go back to the kernel");
    printf("PASS\n");
    return 0;
}

/* ---- a SuperSlab mapped while other slabs drain ------------------------------------- */

#define OVERFLOW_MAX_BLOCKS 16384
#define OVERFLOW_OWN_BLOCKS 256
static void *overflow_blocks[OVERFLOW_MAX_BLOCKS];
static size_t overflow_count;

struct overflow_worker {
    bool free_first;          /* free a block of each of main's slabs first */
    pthread_barrier_t start;  /* main's blocks are in place */
    long long anon_huge[2];   /* AnonHugePages before and after its own blocks */
    long long rss[2];         /* Rss, the same */
    unsigned long long ss[2]; /* SuperSlabs mapped, the same */
};

/* Blocks the worker holds from its start: two slabs carved whole, so that
 * its heap is dense when it needs the new SuperSlab (a heap with sparse
 * slabs, or none, has it on base pages whatever main's slabs do). */
#define OVERFLOW_EARLY_BLOCKS 64

/* The worker of test_overflow: a thread with a heap of its own. */
static void *overflow_thread(void *arg)
{
    struct overflow_worker *w = arg;
    static void *early[OVERFLOW_EARLY_BLOCKS];
    for (size_t i = 0; i < OVERFLOW_EARLY_BLOCKS; i++) {
        early[i] = malloc(1000);
        if (early[i]) memset(early[i], 8, 1000);
    }
    pthread_barrier_wait(&w->start);
    /* 1,000-byte blocks, 32 to a slab of one unit (the heap is under 8 MiB):
     * every 16th block is one of two in each of main's slabs. */
    if (w->free_first)
        for (size_t i = 0; i < overflow_count; i += 16) {
            free(overflow_blocks[i]);
            overflow_blocks[i] = NULL;
        }
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    w->ss[0] = s.superslabs_mapped;
    w->anon_huge[0] = rollup_unbuffered("AnonHugePages");
    w->rss[0] = rollup_unbuffered("Rss");
    static void *own[OVERFLOW_OWN_BLOCKS];
    for (size_t i = 0; i < OVERFLOW_OWN_BLOCKS; i++) {
        own[i] = malloc(1000);
        if (own[i]) memset(own[i], 7, 1000);
    }
    hugeslab_stats(&s);
    w->ss[1] = s.superslabs_mapped;
    w->anon_huge[1] = rollup_unbuffered("AnonHugePages");
    w->rss[1] = rollup_unbuffered("Rss");
    for (size_t i = 0; i < OVERFLOW_OWN_BLOCKS; i++) free(own[i]);
    for (size_t i = 0; i < OVERFLOW_EARLY_BLOCKS; i++) free(early[i]);
    return NULL;
}

/* The main thread fills three SuperSlabs or more with 1,000-byte blocks
 * (past the small heap: later SuperSlabs are huge pages from their first
 * touch), every unit of them in a slab, and waits in pthread_join while a
 * worker needs a new SuperSlab for 250 KiB of blocks. Freed by the worker,
 * main's full slabs come back only with their last block, main being
 * asleep; a SuperSlab mapped meanwhile is an overflow, kept on base pages,
 * which cost what the worker touches. Without those frees the heap is
 * growing and the new SuperSlab is a huge page: the figure this checks
 * against, and what the check would see were every SuperSlab huge. */
static int test_overflow(const char *mode)
{
    bool returning = strcmp(mode, "returning") == 0;
    if (!returning && strcmp(mode, "growing") != 0) return fail("unknown mode %s", mode);
    /* The thread first: pthread_create allocates (its TLS), which would
     * map main a new SuperSlab if it came after the filling. */
    struct overflow_worker w = {.free_first = returning};
    pthread_t t;
    if (pthread_barrier_init(&w.start, NULL, 2) != 0) return fail("%s", "pthread_barrier_init");
    if (pthread_create(&t, NULL, overflow_thread, &w) != 0)
        return fail("pthread_create: %s", strerror(errno));
    hugeslab_stats_t s = {0};
    do {
        if (overflow_count == OVERFLOW_MAX_BLOCKS)
            return fail("%s", "16,384 blocks did not fill whole SuperSlabs");
        void *p = malloc(1000);
        if (!p) return fail("malloc failed: %s", strerror(errno));
        memset(p, 6, 1000);
        overflow_blocks[overflow_count++] = p;
        /* hugeslab_stats reads smaps: every 8th block, well inside the 31
         * or 32 the slab taking a SuperSlab's last unit hands out before
         * the next SuperSlab is mapped. */
        if (overflow_count % 8) continue;
        hugeslab_stats(&s);
    } while (overflow_count % 8 || s.superslabs_mapped < 3 ||
             s.bytes_in_slabs != s.superslabs_mapped * SUPERSLAB);
    pthread_barrier_wait(&w.start);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&w.start);
    printf("overflow (%s): main's %zu blocks in %llu SuperSlabs; the worker's %d blocks: "
           "SuperSlabs %llu -> %llu, Rss %+lld KiB, AnonHugePages %+lld KiB\n",
           mode, overflow_count, (unsigned long long)w.ss[0], OVERFLOW_OWN_BLOCKS,
           (unsigned long long)w.ss[0], (unsigned long long)w.ss[1], (w.rss[1] - w.rss[0]) / 1024,
           (w.anon_huge[1] - w.anon_huge[0]) / 1024);
    for (size_t i = 0; i < overflow_count; i++) free(overflow_blocks[i]);
    if (w.rss[0] < 0 || w.anon_huge[0] < 0) return fail("%s", "cannot read smaps_rollup");
    if (w.ss[1] != w.ss[0] + 1) return fail("%s", "the worker's blocks took no new SuperSlab");
    long long huge = w.anon_huge[1] - w.anon_huge[0];
    if (returning && huge > 0)
        return fail("%s", "a SuperSlab mapped while main's slabs drained was a huge page");
    if (returning && w.rss[1] - w.rss[0] > MiB)
        return fail("%s", "250 KiB of blocks in the new SuperSlab cost more than 1 MiB");
    if (!returning && huge < SUPERSLAB)
        return fail("%s", "the new SuperSlab of a growing heap was no huge page");
    printf("PASS\n");
    return 0;
}

/* ---- threads with sparse slabs --------------------------------------------------- */

#define SPARSE_THREADS 12
/* `fresh`: more threads, so that some of them map a SuperSlab while their
 * heaps have no slab: while such a heap answered dense, 2-7 of the 71
 * SuperSlabs the 96 threads took were huge pages in each of 6 runs. */
#define SPARSE_THREADS_FRESH 96
#define SPARSE_PER_CLASS 24 /* blocks of each class a thread holds */
#define SPARSE_CLASSES 40   /* 16-512 B in 16-byte steps, 576-1,024 B in 64-byte ones */
#define SPARSE_GROWN_BLOCKS (12 * MiB / 64)

struct sparse_threads {
    pthread_barrier_t started; /* every thread has a heap and a slab */
    pthread_barrier_t go;      /* main's heap has grown */
    pthread_barrier_t filled;  /* every thread's blocks are written */
    pthread_barrier_t done;    /* main has looked */
    void **blocks;             /* SPARSE_CLASSES * SPARSE_PER_CLASS a thread */
    bool fresh;                /* no first block: heaps empty at `go` */
    atomic_int next;           /* the next thread's index */
    atomic_int failed;
};

/* A thread of test_sparse_threads: one block first (unless `fresh`), so
 * that its heap has a slab to be judged by when it needs a new SuperSlab;
 * then a few dozen blocks in each of 40 classes, written, as bench_mt
 * larson's threads hold them. */
static void *sparse_threads_worker(void *arg)
{
    struct sparse_threads *st = arg;
    int index = atomic_fetch_add(&st->next, 1);
    void **mine = st->blocks + (size_t)index * SPARSE_CLASSES * SPARSE_PER_CLASS;
    void *first = st->fresh ? NULL : malloc(16);
    if (!first && !st->fresh) atomic_store(&st->failed, 1);
    pthread_barrier_wait(&st->started);
    pthread_barrier_wait(&st->go);
    size_t n = 0;
    for (size_t size = 16; size <= 1024; size += size < 512 ? 16 : 64)
        for (unsigned i = 0; i < SPARSE_PER_CLASS; i++) {
            void *p = malloc(size);
            if (!p) atomic_store(&st->failed, 1);
            if (p) memset(p, 5, size);
            mine[n++] = p;
        }
    pthread_barrier_wait(&st->filled);
    pthread_barrier_wait(&st->done);
    for (size_t i = 0; i < n; i++) free(mine[i]);
    free(first);
    return NULL;
}

/* Every 2 MiB boundary inside the process's mappings now, into out (at most
 * max); how many. No allocation (hs_read_file_raw into a static buffer). */
static size_t mapped_chunks(uintptr_t *out, size_t max)
{
    static char text[1 << 16];
    if (hs_read_file_raw("/proc/self/maps", text, sizeof text) < 0) return 0;
    size_t count = 0;
    for (char *line = text; *line && count < max;) {
        uintptr_t a = strtoull(line, &line, 16), b = strtoull(line + 1, &line, 16);
        for (uintptr_t c = (a + SUPERSLAB - 1) & ~(uintptr_t)(SUPERSLAB - 1); c < b && count < max;
             c += SUPERSLAB)
            out[count++] = c;
        char *next = strchr(line, '\n');
        line = next ? next + 1 : line + strlen(line);
    }
    return count;
}

/* 12 threads start and each takes a block (a slab in the small heap's
 * first SuperSlab); the main thread then grows its heap past the small
 * heap with 12 MiB of 64-byte blocks (dense slabs: huge pages from their
 * first touch), and the threads each take 24 blocks of each of 40 classes,
 * a unit's slab for each class with a few pages carved. The SuperSlabs
 * mapped for them hold sparse slabs: base pages, so they cost the pages the
 * threads wrote, not 2 MiB each. PAGEMAP_SCAN tells huge pages range by
 * range. `kept` (HUGESLAB_SPLIT_SPARSE=0): every one is a huge page.
 * `fresh`: the threads take no block before main's heap has grown, so
 * their heaps have no slab when the first SuperSlabs for them are mapped:
 * those are base pages too (a heap with no slab counted as dense before,
 * and its SuperSlab was a huge page). */
static int test_sparse_threads(bool kept, bool fresh)
{
    unsigned n_threads = fresh ? SPARSE_THREADS_FRESH : SPARSE_THREADS;
    struct sparse_threads st = {
        .blocks = pointer_array(n_threads * SPARSE_CLASSES * SPARSE_PER_CLASS), .fresh = fresh};
    pthread_barrier_init(&st.started, NULL, n_threads + 1);
    pthread_barrier_init(&st.go, NULL, n_threads + 1);
    pthread_barrier_init(&st.filled, NULL, n_threads + 1);
    pthread_barrier_init(&st.done, NULL, n_threads + 1);
    pthread_t threads[SPARSE_THREADS_FRESH];
    for (unsigned t = 0; t < n_threads; t++)
        if (pthread_create(&threads[t], NULL, sparse_threads_worker, &st) != 0)
            return fail("pthread_create: %s", strerror(errno));
    pthread_barrier_wait(&st.started);
    void **grown = pointer_array(SPARSE_GROWN_BLOCKS);
    for (size_t i = 0; i < SPARSE_GROWN_BLOCKS; i++) {
        grown[i] = malloc(64);
        if (!grown[i]) return fail("malloc failed: %s", strerror(errno));
        memset(grown[i], 3, 64);
    }
    hugeslab_stats_t s0, s1;
    hugeslab_stats(&s0);
    /* SuperSlabs mapped before the threads' blocks: none of theirs. */
    static uintptr_t before[8192];
    size_t n_before = mapped_chunks(before, 8192);
    long long rss0 = rollup_unbuffered("Rss"), anon_huge0 = rollup_unbuffered("AnonHugePages");
    pthread_barrier_wait(&st.go);
    pthread_barrier_wait(&st.filled);
    hugeslab_stats(&s1);
    long long rss1 = rollup_unbuffered("Rss"), anon_huge1 = rollup_unbuffered("AnonHugePages");
    /* The SuperSlabs the threads' blocks lie in that were not mapped before
     * (main's, and the small heap's, which its growth hinted huge and
     * khugepaged may collapse). */
    static uintptr_t theirs[256];
    unsigned n_theirs = 0, huge = 0, unknown = 0;
    if (n_before == 0) return fail("%s", "cannot read /proc/self/maps");
    for (size_t i = 0; i < (size_t)n_threads * SPARSE_CLASSES * SPARSE_PER_CLASS; i++) {
        uintptr_t ss = (uintptr_t)st.blocks[i] & ~(uintptr_t)(SUPERSLAB - 1);
        bool old = false, seen = false;
        for (size_t j = 0; j < n_before && !old; j++) old = before[j] == ss;
        for (unsigned k = 0; k < n_theirs && !seen; k++) seen = theirs[k] == ss;
        if (!old && !seen && n_theirs < 256) theirs[n_theirs++] = ss;
    }
    for (unsigned k = 0; k < n_theirs; k++) {
        int held = range_holds_huge((void *)theirs[k], SUPERSLAB);
        huge += held == 1;
        unknown += held < 0;
    }
    printf("sparse-threads: %u threads x %d classes x %d blocks: SuperSlabs mapped %llu -> %llu "
           "(base pages %llu -> %llu); %u of their own, %u of them huge pages; Rss %+lld KiB, "
           "AnonHugePages %+lld KiB\n",
           n_threads, SPARSE_CLASSES, SPARSE_PER_CLASS, (unsigned long long)s0.superslabs_mapped,
           (unsigned long long)s1.superslabs_mapped, (unsigned long long)s0.superslabs_base,
           (unsigned long long)s1.superslabs_base, n_theirs, huge, (rss1 - rss0) / 1024,
           (anon_huge1 - anon_huge0) / 1024);
    pthread_barrier_wait(&st.done);
    for (unsigned t = 0; t < n_threads; t++) pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&st.started);
    pthread_barrier_destroy(&st.go);
    pthread_barrier_destroy(&st.filled);
    pthread_barrier_destroy(&st.done);
    for (size_t i = 0; i < SPARSE_GROWN_BLOCKS; i++) free(grown[i]);
    if (atomic_load(&st.failed)) return fail("%s", "a thread's malloc failed");
    if (rss0 < 0 || rss1 < 0 || anon_huge0 < 0 || anon_huge1 < 0)
        return fail("%s", "cannot read smaps_rollup");
    if (n_theirs < 4) return fail("%s", "the threads' blocks took fewer than 4 SuperSlabs");
    if (kept) {
        if (!unknown && huge < n_theirs)
            return fail("%s", "with HUGESLAB_SPLIT_SPARSE=0, SuperSlabs were no huge pages");
        if (unknown && anon_huge1 - anon_huge0 < (long long)n_theirs * SUPERSLAB)
            return fail("%s", "with HUGESLAB_SPLIT_SPARSE=0, SuperSlabs were no huge pages "
                              "(AnonHugePages)");
        printf("PASS\n");
        return 0;
    }
    if (!unknown && huge > 0) return fail("%s", "SuperSlabs of sparse slabs were huge pages");
    /* Without PAGEMAP_SCAN (Linux before 6.7), the process's figure, with
     * room for one huge page that khugepaged may have made meanwhile of the
     * small heap's SuperSlabs (hinted huge when main's heap grew). */
    if (unknown && anon_huge1 - anon_huge0 > SUPERSLAB)
        return fail("%s", "SuperSlabs of sparse slabs were huge pages (AnonHugePages)");
    if (s1.superslabs_base - s0.superslabs_base < s1.superslabs_mapped - s0.superslabs_mapped)
        return fail("%s", "the statistics count the new SuperSlabs as huge");
    if (rss1 - rss0 > (long long)n_theirs * SUPERSLAB / 2)
        return fail("%s", "the threads' SuperSlabs cost more than half their size");
    printf("PASS\n");
    return 0;
}

/* ---- a crowd of threads ------------------------------------------------------------ */

#define CROWD_THREADS 256
#define CROWD_BLOCKS 64 /* 16 + 35 i bytes: 16 B - 2.2 KiB */
#define CROWD_STACK (64 * 1024)

struct crowd {
    pthread_barrier_t filled; /* every thread holds its blocks */
    pthread_barrier_t done;   /* main has looked */
    void **blocks;            /* CROWD_BLOCKS a thread */
    atomic_int next;          /* the next thread's index */
    atomic_int failed;
};

/* Takes its blocks and writes them whole; after main's look, checks and
 * frees the even ones, leaving the odd ones to main. */
static void *crowd_worker(void *arg)
{
    struct crowd *c = arg;
    int index = atomic_fetch_add(&c->next, 1);
    void **mine = c->blocks + (size_t)index * CROWD_BLOCKS;
    for (unsigned i = 0; i < CROWD_BLOCKS; i++) {
        size_t size = 16 + 35 * (size_t)i;
        mine[i] = malloc(size);
        if (!mine[i]) {
            atomic_store(&c->failed, 1);
            continue;
        }
        hs_fill(mine[i], size, (uint64_t)index * CROWD_BLOCKS + i);
    }
    pthread_barrier_wait(&c->filled);
    pthread_barrier_wait(&c->done);
    for (unsigned i = 0; i < CROWD_BLOCKS; i += 2) {
        size_t size = 16 + 35 * (size_t)i;
        if (mine[i] && hs_check_fill(mine[i], size, (uint64_t)index * CROWD_BLOCKS + i) != SIZE_MAX)
            atomic_store(&c->failed, 2);
        free(mine[i]);
        mine[i] = NULL;
    }
    return NULL;
}

/* A thread per connection: many threads alive at once, each holding a few
 * blocks of many classes. Each thread's own slabs cost it a page or more a
 * class; the threads' first blocks of each class come from slabs they share
 * instead (HUGESLAB_CROWD_THREADS), and Rss stays near what they hold:
 * with a slab per thread and class (HUGESLAB_CROWD_THREADS=0), 256 threads
 * grew it by 51,140-51,168 KiB for their 17,896. */
static int test_crowd(void)
{
    struct crowd c = {.blocks = pointer_array((size_t)CROWD_THREADS * CROWD_BLOCKS)};
    pthread_barrier_init(&c.filled, NULL, CROWD_THREADS + 1);
    pthread_barrier_init(&c.done, NULL, CROWD_THREADS + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CROWD_STACK);
    static pthread_t threads[CROWD_THREADS];
    long long live = 0;
    for (unsigned i = 0; i < CROWD_BLOCKS; i++) live += 16 + 35 * (long long)i;
    live *= CROWD_THREADS;
    long long rss0 = rollup_unbuffered("Rss");
    for (unsigned t = 0; t < CROWD_THREADS; t++)
        if (pthread_create(&threads[t], &attr, crowd_worker, &c) != 0)
            return fail("pthread_create: %s", strerror(errno));
    pthread_barrier_wait(&c.filled);
    long long rss1 = rollup_unbuffered("Rss");
    /* A child forked now has one thread: it counts one heap, not 257, and
     * allocates as a process of one thread does. */
    pid_t pid = fork();
    if (pid == 0) {
        hugeslab_stats_t cs;
        hugeslab_stats(&cs);
        void *p = malloc(100);
        if (p) memset(p, 1, 100);
        free(p);
        _exit(cs.threads_live == 1 && p ? 0 : 1);
    }
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return fail("fork: %s", strerror(errno));
    pthread_barrier_wait(&c.done);
    for (unsigned t = 0; t < CROWD_THREADS; t++) pthread_join(threads[t], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&c.filled);
    pthread_barrier_destroy(&c.done);
    /* The odd blocks, freed by main: remote frees of the crowd's slabs. */
    for (size_t t = 0; t < CROWD_THREADS; t++)
        for (unsigned i = 1; i < CROWD_BLOCKS; i += 2) {
            void *p = c.blocks[t * CROWD_BLOCKS + i];
            if (p && hs_check_fill(p, 16 + 35 * (size_t)i, t * CROWD_BLOCKS + i) != SIZE_MAX)
                atomic_store(&c.failed, 2);
            free(p);
        }
    malloc_trim(0);
    long long rss2 = rollup_unbuffered("Rss");
    long long bound = live + live / 2 + (long long)CROWD_THREADS * 16 * 1024;
    printf("crowd: %d threads x %d blocks, %lld KiB held: Rss %+lld KiB at the peak (bound "
           "%lld), %+lld KiB after the frees and malloc_trim\n",
           CROWD_THREADS, CROWD_BLOCKS, live / 1024, (rss1 - rss0) / 1024, bound / 1024,
           (rss2 - rss0) / 1024);
    if (atomic_load(&c.failed) == 1) return fail("%s", "a thread's malloc failed");
    if (atomic_load(&c.failed) == 2) return fail("%s", "a block's contents changed");
    if (rss0 < 0 || rss1 < 0 || rss2 < 0) return fail("%s", "cannot read smaps_rollup");
    if (rss1 - rss0 > bound) return fail("%s", "the threads' Rss is above the bound");
    if (rss2 - rss0 > 8 * MiB) return fail("%s", "Rss is not back within 8 MiB of the start");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail("%s", "a child forked among the threads counted more than its one thread");
    printf("PASS\n");
    return 0;
}

/* ---- sparse THP SuperSlabs ------------------------------------------------------- */

#define SPARSE_BLOCKS (32 * 1024)

/* 32 MiB of 1,000-byte blocks, all freed but the first of each SuperSlab
 * before the last: those stay in use with one slab, so no whole-SuperSlab
 * purge applies and only their free units can go back, which costs their
 * huge pages. The last falls idle and starts the purge thread, which a
 * sparse SuperSlab alone does not. `kept`: the program asked for its huge
 * pages never to be split, and they must outlive MAX_MS. */
/* `regrow`: right after the frees, the program allocates the blocks again,
 * slowly (32 MiB over about 4 s, longer than both purge delays), as Redis
 * refills its heap after FLUSHALL. Its slabs go into the sparse SuperSlabs'
 * free units; none may have given up its huge page before the refill
 * reached it, which would cost a fault per page of its free units (8,192
 * for 32 MiB) instead of none. */
static int test_sparse_regrow(void **blocks, size_t kept)
{
    /* The last SuperSlab fell idle and started the purge thread, which
     * is now timing the sparse ones. */
    usleep(100 * 1000);
    long long rss0 = rollup("Rss:"), huge0 = rollup("AnonHugePages:");
    long long before = faults_now();
    size_t n = 0;
    for (; n < SPARSE_BLOCKS; n++) {
        blocks[kept + n] = malloc(1000);
        if (!blocks[kept + n]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[kept + n], 9, 1000);
        if (n % 8 == 7) usleep(1000);
    }
    long long faults = faults_now() - before;
    long long huge = rollup("AnonHugePages:");
    printf("sparse regrow: Rss %lld KiB (%lld KiB in huge pages) with %zu blocks kept; %zu "
           "blocks of 1,000 B allocated again in %lld faults; %lld KiB in huge pages\n",
           rss0 / 1024, huge0 / 1024, kept, n, faults, huge / 1024);
    for (size_t i = 0; i < kept + n; i++) free(blocks[i]);
    if (faults >= 1024) return fail("%s", "a SuperSlab split while the heap grew again");
    printf("PASS\n");
    return 0;
}

static int test_sparse(long max_ms, bool kept_whole, bool regrow)
{
    void *volatile warm = malloc(16);
    free(warm);
    void **blocks = pointer_array(2 * SPARSE_BLOCKS);
    long long start = rollup("Rss:");
    uintptr_t kept_chunk = 0;
    size_t kept = 0;
    for (size_t i = 0; i < SPARSE_BLOCKS; i++) {
        blocks[i] = malloc(1000);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 7, 1000);
    }
    long long full = rollup("Rss:"), huge_full = rollup("AnonHugePages:");
    uintptr_t last_chunk = (uintptr_t)blocks[SPARSE_BLOCKS - 1] / SUPERSLAB;
    for (size_t i = 0; i < SPARSE_BLOCKS; i++) {
        uintptr_t chunk = (uintptr_t)blocks[i] / SUPERSLAB;
        if (chunk != kept_chunk && chunk != last_chunk) {
            kept_chunk = chunk;
            blocks[kept++] = blocks[i];
        } else {
            free(blocks[i]);
        }
    }
    if (regrow) return test_sparse_regrow(blocks, kept);
    long long now = full;
    long elapsed = wait_for_rss(start + 4 * MiB, true, max_ms, &now);
    long long huge_now = rollup("AnonHugePages:");
    printf("sparse: Rss %lld KiB at the start, %lld KiB with the blocks (%lld KiB in huge "
           "pages), %lld KiB after %ld ms (limit %ld ms; %lld KiB in huge pages); %zu blocks "
           "kept\n",
           start / 1024, full / 1024, huge_full / 1024, now / 1024, elapsed, max_ms,
           huge_now / 1024, kept);
    for (size_t i = 0; i < kept; i++) free(blocks[i]);
    if (start < 0) return fail("%s", "cannot read smaps_rollup");
    if (huge_full < 8 * MiB) return fail("%s", "the blocks were not on huge pages");
    if (kept < 8) return fail("%s", "the blocks were not spread over SuperSlabs");
    if (kept_whole) {
        /* The first SuperSlab may be the small heap's, on base pages. */
        if (huge_now < (long long)(kept - 1) * SUPERSLAB)
            return fail("%s", "a huge page was split although HUGESLAB_SPLIT_SPARSE=0");
        printf("PASS\n");
        return 0;
    }
    if (now > start + 4 * MiB)
        return fail("%s", "SuperSlabs that one block each keeps in use stayed resident");
    if (huge_now > 4 * MiB) return fail("%s", "their huge pages stayed");
    printf("PASS\n");
    return 0;
}

/* ---- orphans of exited threads ------------------------------------------------------ */

#define ORPHAN_BLOCKS 65536
static void *orphan_blocks[2][ORPHAN_BLOCKS];

/* 65,536 blocks of 16-496 B (16 MiB), left allocated when the thread exits. */
static void *orphan_thread(void *arg)
{
    void **blocks = arg;
    for (size_t i = 0; i < ORPHAN_BLOCKS; i++) {
        size_t size = 16 + (i * 37) % 481;
        blocks[i] = malloc(size);
        if (blocks[i]) memset(blocks[i], 3, size);
    }
    return NULL;
}

/* After a test's last free: Rss within 8 MiB of start within max_ms, the
 * blocks having shown (peak at least `shown` above start). */
static int back_in_time(const char *name, long long start, long long peak, long long shown,
                        long max_ms, const char *not_back)
{
    long long now = peak;
    long elapsed = wait_for_rss(start + 8 * MiB, true, max_ms, &now);
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    printf("%s: Rss at start %lld KiB, at most %lld KiB with the blocks, %lld KiB %ld ms after "
           "the last free (limit %ld ms); %llu orphan slabs, %llu KiB in slabs\n",
           name, start / 1024, peak / 1024, now / 1024, elapsed, max_ms,
           (unsigned long long)s.orphan_slabs, (unsigned long long)s.bytes_in_slabs / 1024);
    if (start < 0) return fail("%s", "cannot read smaps_rollup");
    if (peak - start < shown) return fail("%s", "the blocks did not show in RSS");
    if (now - start > 8 * MiB) return fail("%s", not_back);
    printf("PASS\n");
    return 0;
}

/* The blocks of exited threads are freed by the main thread alone: no
 * thread is left to adopt their slabs, and nothing else falls idle first.
 * The slabs, then their SuperSlabs, must still go back. */
static int test_orphans(long max_ms)
{
    void *volatile warm = malloc(16);
    free(warm);
    long long start = rollup("Rss:");
    for (int k = 0; k < 2; k++) {
        pthread_t t;
        if (pthread_create(&t, NULL, orphan_thread, orphan_blocks[k]) != 0)
            return fail("pthread_create: %s", strerror(errno));
        pthread_join(t, NULL);
    }
    long long peak = rollup("Rss:");
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < ORPHAN_BLOCKS; i++) free(orphan_blocks[k][i]);
    return back_in_time("orphans", start, peak, 24 * MiB, max_ms,
                        "the exited threads' memory did not go back to the kernel in time");
}

/* ---- emptied -------------------------------------------------------------------- */

#define EMPTIED_BLOCKS 600000
#define EMPTIED_ROUNDS 6
#define EMPTIED_FREERS 3

static void **emptied_blocks;
static _Atomic int emptied_done;

static void *emptied_freer(void *arg)
{
    for (size_t i = (size_t)(uintptr_t)arg; i < EMPTIED_BLOCKS; i += EMPTIED_FREERS)
        free(emptied_blocks[i]);
    atomic_fetch_add(&emptied_done, 1);
    return NULL;
}

static uint64_t emptied_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* A thread builds a cache over and over on the same heap, and other threads
 * tear each one down in a random order while it keeps allocating other
 * sizes: an owner at work, so its slabs come back to its partial lists
 * from round to round, and there other threads' frees empty them with no
 * notice on its delayed list. Before the purge thread looked for such
 * slabs (tiny_reclaim_emptied), 158 MiB of them, and 170 MB of Rss, stayed
 * after the last round in 4 of 5 runs of the program this follows. */
static int test_emptied(long max_ms)
{
    void *volatile warm = malloc(16);
    free(warm);
    emptied_blocks = pointer_array(EMPTIED_BLOCKS); /* resident: before the start's figure */
    long long start = rollup("Rss:"), peak = start;
    for (int round = 0; round < EMPTIED_ROUNDS; round++) {
        uint64_t x = 88172645463325252ULL + (uint64_t)round; /* the same sizes each round */
        for (size_t i = 0; i < EMPTIED_BLOCKS; i++) {
            size_t size = 16 + emptied_next(&x) % 500;
            emptied_blocks[i] = malloc(size);
            if (!emptied_blocks[i]) return fail("malloc failed: %s", strerror(errno));
            memset(emptied_blocks[i], 1, size);
        }
        for (size_t i = EMPTIED_BLOCKS - 1; i > 0; i--) {
            size_t j = emptied_next(&x) % (i + 1);
            void *b = emptied_blocks[i];
            emptied_blocks[i] = emptied_blocks[j];
            emptied_blocks[j] = b;
        }
        long long rss = rollup("Rss:");
        if (rss > peak) peak = rss;
        atomic_store(&emptied_done, 0);
        pthread_t t[EMPTIED_FREERS];
        for (uintptr_t k = 0; k < EMPTIED_FREERS; k++)
            if (pthread_create(&t[k], NULL, emptied_freer, (void *)k) != 0)
                return fail("pthread_create: %s", strerror(errno));
        while (atomic_load(&emptied_done) < EMPTIED_FREERS) {
            void *q[256];
            for (int i = 0; i < 256; i++) q[i] = malloc(16 + (size_t)(i * 37) % 2000);
            for (int i = 0; i < 256; i++) free(q[i]);
            if (round % 2 == 0) usleep(200);
        }
        for (int k = 0; k < EMPTIED_FREERS; k++) pthread_join(t[k], NULL);
    }
    return back_in_time("emptied", start, peak, 64 * MiB, max_ms,
                        "the slabs other threads emptied did not go back to the kernel in time");
}

/* ---- fresh ---------------------------------------------------------------------- */

/* A program's phase frees 64 MiB of small blocks; after the purge delay
 * they are LazyFree (MADV_FREE), still in Rss. The next phase asks for 64
 * MiB of 4 MiB blocks, runs of their own that no slab's SuperSlab can
 * serve, filled one every 20 ms. The lazily freed pages go for good as
 * the fresh ones come: Rss peaks less than 32 MiB above where it was
 * before that phase. With MADV_DONTNEED only after the release delay
 * (run.sh sets it to an hour), it peaked at both: 64 MiB above. */
static int test_fresh(void)
{
    enum { runs = 16 };
    size_t total = 64 * MiB, used = 0, count = 0, run_block = 4 * MiB - 64 * 1024;
    size_t cap = total / 64;
    void **blocks = pointer_array(cap);
    static char *big[runs];
    unsigned seed = 12345;
    while (used < total && count < cap) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 64 + (seed >> 16) % 961;
        blocks[count] = malloc(size);
        if (!blocks[count]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[count], 0x5a, size);
        used += size;
        count++;
    }
    long long full = rollup("Rss:");
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    /* Past the purge delay (500 ms): MADV_FREE. */
    hs_sleep_ms(1000);
    long long before = rollup("Rss:"), lazy0 = rollup("LazyFree:");
    long long peak = before;
    for (int i = 0; i < runs; i++) {
        big[i] = malloc(run_block);
        if (!big[i]) return fail("malloc failed: %s", strerror(errno));
        memset(big[i], 0x5a, run_block);
        hs_sleep_ms(20);
        long long rss = rollup("Rss:");
        if (rss > peak) peak = rss;
    }
    long long after = rollup("Rss:"), lazy1 = rollup("LazyFree:");
    hugeslab_stats_t st;
    hugeslab_stats(&st);
    printf("fresh: Rss %lld MiB with 64 MiB of small blocks; freed, after 1 s Rss %lld MiB, "
           "LazyFree %lld MiB; 64 MiB of runs then: Rss peak %lld MiB (%+lld), at the end %lld "
           "MiB, LazyFree %lld MiB; SuperSlabs purged %llu\n",
           full / MiB, before / MiB, lazy0 / MiB, peak / MiB, (peak - before) / MiB, after / MiB,
           lazy1 / MiB, (unsigned long long)st.superslabs_purged);
    for (int i = 0; i < runs; i++) free(big[i]);
    if (full < 0 || lazy0 < 0 || lazy1 < 0) return fail("%s", "cannot read smaps_rollup");
    if (lazy0 < 48 * MiB) return fail("%s", "the freed small blocks' pages were not LazyFree");
    if (peak - before >= 32 * MiB)
        return fail("%s", "Rss peaked at both: the lazily freed pages stayed as the runs came");
    if (lazy1 > 8 * MiB) return fail("%s", "the lazily freed pages stayed LazyFree");
    printf("PASS\n");
    return 0;
}

/* ---- medium-short ---------------------------------------------------------------- */

/* blocks[0 .. count) get blocks of `size` bytes, written whole: 0, or 1
 * with the failure reported. */
static int fill_blocks(void **blocks, size_t count, size_t size)
{
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        if (!blocks[i]) return fail("malloc failed: %s", strerror(errno));
        memset(blocks[i], 0x5a, size);
    }
    return 0;
}

/* One thread's heap holds 80 MiB of slabs (4,368-byte blocks, as sqlite3's
 * page cache), then a block of each of thirty sizes of 9-125 KiB, in 22
 * classes, as git log -p's delta base cache keeps a few of each: their slabs
 * are short (short_units: as few units as leave an eighth unused at most),
 * and Rss grows by at most the blocks and half again plus one huge page.
 * Past 64 MiB of slabs (a bound there was until it no longer paid) a heap
 * of one thread cut full-size slabs: +6,280 KiB, where short ones took
 * +4,232 (2,010 KiB of blocks), a SuperSlab less. */
static int test_medium_short(void)
{
    enum { bulk_size = 4368, sizes = 30 };
    size_t bulk_count = 80 * MiB / bulk_size;
    void **bulk = pointer_array(bulk_count);
    if (fill_blocks(bulk, bulk_count, bulk_size) != 0) return 1;
    static void *medium[sizes];
    long long before = rollup("Rss:");
    size_t live = 0;
    for (int k = 0; k < sizes; k++) {
        size_t size = (size_t)(k + 2) * 4096 + 1024;
        medium[k] = malloc(size);
        if (!medium[k]) return fail("malloc failed: %s", strerror(errno));
        memset(medium[k], 0x5a, size);
        live += size;
    }
    long long after = rollup("Rss:");
    long long bound = (long long)(live + live / 2 + 2 * MiB);
    printf("medium-short: %d blocks of 9-125 KiB (%zu KiB) past 80 MiB of slabs: Rss %+lld KiB "
           "(at most %+lld)\n",
           sizes, live / 1024, (after - before) / 1024, bound / 1024);
    for (int k = 0; k < sizes; k++) free(medium[k]);
    for (size_t i = 0; i < bulk_count; i++) free(bulk[i]);
    munmap(bulk, bulk_count * sizeof(void *));
    if (before < 0 || after < 0) return fail("%s", "cannot read smaps_rollup");
    if (after - before > bound)
        return fail("%s", "blocks of classes above 8 KiB, one each, cut full-size slabs");
    printf("PASS\n");
    return 0;
}

/* ---- middle-tails ---------------------------------------------------------------- */

/* One thread's heap, grown past its small heap but under 8 MiB of slabs
 * (TINY_MIDDLE_HEAP_BYTES), takes 180 blocks of 18,000 bytes (the
 * 18,432-byte class): slabs of as few units as leave an eighth unused at
 * most (3 units, 5 blocks), where a slab of one unit held one block and
 * 14 KiB of nothing, resident in the huge page around it. */
static int test_middle_tails(void)
{
    enum { bulk_size = 4368, medium_size = 18000, medium_count = 180 };
    size_t bulk_count = 3 * MiB / bulk_size;
    void **bulk = pointer_array(bulk_count);
    if (fill_blocks(bulk, bulk_count, bulk_size) != 0) return 1;
    static void *medium[medium_count];
    long long before = rollup("Rss:");
    if (fill_blocks(medium, medium_count, medium_size) != 0) return 1;
    long long after = rollup("Rss:");
    long long live = (long long)medium_count * medium_size;
    long long bound = live + live / 4 + 1 * MiB;
    printf("middle-tails: %d blocks of %d B (%lld KiB) after 3 MiB of slabs: Rss %+lld KiB "
           "(at most %+lld)\n",
           medium_count, medium_size, live / 1024, (after - before) / 1024, bound / 1024);
    for (int k = 0; k < medium_count; k++) free(medium[k]);
    for (size_t i = 0; i < bulk_count; i++) free(bulk[i]);
    munmap(bulk, bulk_count * sizeof(void *));
    if (before < 0 || after < 0) return fail("%s", "cannot read smaps_rollup");
    if (after - before > bound)
        return fail("%s", "blocks of 18,000 bytes had slabs of one unit, a 14 KiB tail each");
    printf("PASS\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 4 && strcmp(argv[1], "faults") == 0) return test_faults(argv[2], atol(argv[3]));
    if (argc >= 4 && strcmp(argv[1], "purge") == 0) return test_purge(argv[2], atol(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "fallback-hugetlb") == 0)
        return test_fallback_hugetlb(atol(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "fallback-thp-never") == 0) return test_fallback_thp_never();
    if (argc >= 4 && strcmp(argv[1], "churn") == 0) {
        if (argc >= 5) churn_block = (size_t)atol(argv[4]);
        return test_churn(atol(argv[2]), atol(argv[3]));
    }
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return test_stats();
    if (argc >= 2 && strcmp(argv[1], "consumer") == 0) return test_consumer();
    if (argc >= 2 && strcmp(argv[1], "hints") == 0) return test_hints();
    if (argc >= 2 && strcmp(argv[1], "small-heap") == 0) return test_small_heap();
    if (argc >= 2 && strcmp(argv[1], "small-heap-large") == 0) return test_small_heap_large();
    if (argc >= 2 && strcmp(argv[1], "small-heap-churn") == 0) return test_small_heap_churn();
    if (argc >= 2 && strcmp(argv[1], "run-tail") == 0) return test_run_tail();
    if (argc >= 2 && strcmp(argv[1], "frontier") == 0)
        return test_frontier(argc >= 3 && strcmp(argv[2], "kept") == 0);
    if (argc >= 2 && strcmp(argv[1], "frontier-churn") == 0) return test_frontier_churn();
    if (argc >= 2 && strcmp(argv[1], "frontier-header") == 0) return test_frontier_header();
    if (argc >= 2 && strcmp(argv[1], "usable-kept") == 0) return test_usable_kept();
    if (argc >= 2 && strcmp(argv[1], "outgrown") == 0) return test_outgrown();
    if (argc >= 2 && strcmp(argv[1], "given-back") == 0) return test_given_back();
    if (argc >= 2 && strcmp(argv[1], "sparse-stays-base") == 0) return test_sparse_stays_base();
    if (argc >= 2 && strcmp(argv[1], "sparse-four") == 0) return test_sparse_four();
    if (argc >= 2 && strcmp(argv[1], "dense-room") == 0) return test_dense_room();
    if (argc >= 2 && strcmp(argv[1], "counted") == 0) return test_counted();
    if (argc >= 3 && strcmp(argv[1], "overflow") == 0) return test_overflow(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "sparse-threads") == 0)
        return test_sparse_threads(argc >= 3 && strcmp(argv[2], "kept") == 0,
                                   argc >= 3 && strcmp(argv[2], "fresh") == 0);
    if (argc >= 2 && strcmp(argv[1], "crowd") == 0) return test_crowd();
    if (argc >= 2 && strcmp(argv[1], "fresh") == 0) return test_fresh();
    if (argc >= 2 && strcmp(argv[1], "medium-short") == 0) return test_medium_short();
    if (argc >= 2 && strcmp(argv[1], "middle-tails") == 0) return test_middle_tails();
    if (argc >= 3 && strcmp(argv[1], "orphans") == 0) return test_orphans(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "emptied") == 0) return test_emptied(atol(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "as-limit") == 0) return test_as_limit();
    if (argc >= 2 && strcmp(argv[1], "as-filled") == 0) return test_as_filled();
    if (argc >= 2 && strcmp(argv[1], "data-charge") == 0) return test_data_charge();
    if (argc >= 2 && strcmp(argv[1], "mlockall") == 0)
        return test_mlockall(argc >= 3 && strcmp(argv[2], "thp") == 0);
    if (argc >= 2 && strcmp(argv[1], "seldom-text") == 0) return test_seldom_text();
    if (argc >= 3 && strcmp(argv[1], "trim-turns") == 0) return test_trim_turns(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "free-units") == 0) return test_free_units(atol(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "thp-off") == 0)
        return test_thp_off(argv[2], atol(argv[3]), argv);
    if (argc >= 3 && strcmp(argv[1], "sparse") == 0)
        return test_sparse(atol(argv[2]), argc >= 4 && strcmp(argv[3], "kept") == 0,
                           argc >= 4 && strcmp(argv[3], "regrow") == 0);
    fprintf(stderr, "usage: see the comment at the top of kernel_test.c\n");
    return 2;
}

/* Kernel failures on demand: the allocation API and a multithreaded
 * workload run while the OS layer's calls fail (src/os/fault.h), and
 * hugeslab must answer each failure as its contract says:
 * - a call that asked for memory returns NULL with errno ENOMEM, or a good
 *   block; a failed realloc leaves the old block as it was;
 * - no crash, no hang (each run has a time limit), also in a child forked
 *   during the failures that writes to every block it inherited;
 * - the contents of every live block survive, blocks allocated before the
 *   failures and during them (fill patterns, checked at the end);
 * - no SuperSlab leaks: once every block is freed and malloc_trim has run,
 *   SuperSlabs in use and bytes in slabs and runs are back to the figures
 *   of before the run.
 * Linked with the library's objects built with -DHS_FAULT_INJECTION=1
 * (build/fault/), calling the hugeslab_* names.
 *
 *   fault_test            every scenario, each in a child process with a
 *                         time limit: one line per scenario, then PASS/FAIL
 *   fault_test --child    one run, set up by HUGESLAB_FAULT_* (src/os/fault.h);
 *                         with FAULT_TEST_MAPPINGS set, the mappings counted
 *                         instead (nothing failing); with
 *                         FAULT_TEST_PURGE_AGAIN, a purge thread whose first
 *                         start is refused starts at a later free
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "hugeslab.h"
#include "os/fault.h"
#include "test_util.h"

#define THREADS 4
#define SLOTS 192        /* live blocks per thread */
#define OPS 6000         /* operations per thread */
#define KEEPERS 400      /* blocks allocated before the failures start */
#define SHARED 64        /* blocks handed between threads */
#define CHILD_LIMIT_S 60 /* a run that takes longer has hung */
#define STAMP 256        /* bytes stamped at each end of a block */
/* Resident memory a run may keep: the threads' stacks that glibc caches,
 * hugeslab's metadata, a few SuperSlabs on their way to the kernel. */
#define RSS_SLACK (64LL << 20)

/* A block and what it must hold: its first and last STAMP bytes (all of it
 * when smaller) carry the pattern of `seed`. */
typedef struct block_s {
    unsigned char *p;
    size_t size;
    uint64_t seed;
    unsigned how; /* the entry point that returned it (allocate), 0 after realloc */
} block_t;

static _Atomic uint64_t null_results; /* allocations answered NULL + ENOMEM */
static _Atomic uint64_t bad_errno;    /* NULL with another errno */
static _Atomic uint64_t corrupted;    /* blocks whose pattern changed */
static block_t shared_block[SHARED];  /* owned by whoever holds shared[i]'s pointer */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static void stamp(block_t *b)
{
    if (b->size <= 2 * STAMP) {
        hs_fill(b->p, b->size, b->seed);
        return;
    }
    hs_fill(b->p, STAMP, b->seed);
    hs_fill(b->p + b->size - STAMP, STAMP, b->seed ^ 0x5a5a);
}

static bool intact(const block_t *b, size_t size)
{
    if (size <= 2 * STAMP) return hs_check_fill(b->p, size, b->seed) == SIZE_MAX;
    return hs_check_fill(b->p, STAMP, b->seed) == SIZE_MAX &&
           (size < b->size ||
            hs_check_fill(b->p + size - STAMP, STAMP, b->seed ^ 0x5a5a) == SIZE_MAX);
}

static void check(const block_t *b, const char *when)
{
    if (intact(b, b->size)) return;
    if (atomic_fetch_add(&corrupted, 1) < 5)
        fprintf(stderr, "FAIL: block %p of %zu bytes changed (%s)\n", (void *)b->p, b->size, when);
}

/* NULL is a good answer under injected failures only with ENOMEM. */
static void note_null(const char *call, size_t size)
{
    if (errno == ENOMEM) {
        atomic_fetch_add(&null_results, 1);
        return;
    }
    if (atomic_fetch_add(&bad_errno, 1) < 5)
        fprintf(stderr, "FAIL: %s(%zu) = NULL with errno %d, not ENOMEM\n", call, size, errno);
}

static size_t pick_size(hs_rng_t *r)
{
    uint64_t k = hs_rng_below(r, 1000);
    if (k < 700) return 1 + hs_rng_below(r, 1024);
    if (k < 920) return 1024 + hs_rng_below(r, 256 * 1024);
    if (k < 995) return 256 * 1024 + hs_rng_below(r, 8 << 20);
    return (32 << 20) + hs_rng_below(r, 16 << 20); /* a mapping of its own */
}

/* One allocation through a randomly chosen entry point; false on NULL. */
static bool allocate(hs_rng_t *r, block_t *b)
{
    size_t size = pick_size(r);
    unsigned how = (unsigned)hs_rng_below(r, 8);
    void *p = NULL;
    errno = 0;
    switch (how) {
    case 0:
        p = hugeslab_malloc(size);
        break;
    case 1:
        p = hugeslab_calloc(1, size);
        if (p && size <= 4096 && hs_first_nonzero(p, size) != SIZE_MAX)
            HS_FAIL("calloc(%zu) = %p is not zeroed", size, p);
        break;
    case 2:
        p = hugeslab_aligned_alloc(64, (size + 63) & ~(size_t)63);
        break;
    case 3:
        if (hugeslab_posix_memalign(&p, 4096, size) != 0) {
            p = NULL;
            errno = ENOMEM; /* posix_memalign returns the error instead */
        }
        break;
    case 4:
        p = hugeslab_memalign(256, size);
        break;
    case 5:
        p = hugeslab_valloc(size);
        break;
    case 6:
        p = hugeslab_pvalloc(size);
        break;
    default:
        p = hugeslab_reallocarray(NULL, 1, size);
        break;
    }
    if (!p) {
        note_null("allocation", size);
        return false;
    }
    *b = (block_t){p, size, hs_rng_next(r), how};
    stamp(b);
    return true;
}

static void release(block_t *b)
{
    check(b, "before free");
    if (hugeslab_malloc_usable_size(b->p) < b->size)
        HS_FAIL("usable size of %p: %zu < %zu", (void *)b->p, hugeslab_malloc_usable_size(b->p),
                b->size);
    /* The sized frees for the entry points that allow them. */
    if (b->how <= 1 && (b->seed & 1))
        hugeslab_free_sized(b->p, b->size);
    else if (b->how == 2 && (b->seed & 1))
        hugeslab_free_aligned_sized(b->p, 64, (b->size + 63) & ~(size_t)63);
    else
        hugeslab_free(b->p);
    b->p = NULL;
}

static void resize(hs_rng_t *r, block_t *b)
{
    check(b, "before realloc");
    size_t size = pick_size(r);
    errno = 0;
    void *q = hugeslab_realloc(b->p, size);
    if (!q) {
        note_null("realloc", size);
        check(b, "after a failed realloc"); /* the old block must be untouched */
        return;
    }
    size_t kept = size < b->size ? size : b->size;
    if (hs_check_fill(q, kept < STAMP ? kept : STAMP, b->seed) != SIZE_MAX &&
        atomic_fetch_add(&corrupted, 1) < 5)
        fprintf(stderr, "FAIL: realloc to %zu lost the first bytes of %zu\n", size, b->size);
    *b = (block_t){q, size, hs_rng_next(r), 0};
    stamp(b);
}

static void *worker(void *arg)
{
    hs_rng_t r;
    hs_rng_seed(&r, (uint64_t)(uintptr_t)arg);
    block_t mine[SLOTS] = {0};
    for (unsigned op = 0; op < OPS; op++) {
        block_t *b = &mine[hs_rng_below(&r, SLOTS)];
        uint64_t what = hs_rng_below(&r, 100);
        if (!b->p) {
            allocate(&r, b);
        } else if (what < 40) {
            release(b);
        } else if (what < 55) {
            resize(&r, b);
        } else if (what < 58) {
            hugeslab_malloc_trim(0);
        } else {
            /* hand the block to whichever thread takes this slot next */
            unsigned s = (unsigned)hs_rng_below(&r, SHARED);
            pthread_mutex_lock(&shared_lock);
            block_t theirs = shared_block[s];
            shared_block[s] = *b;
            pthread_mutex_unlock(&shared_lock);
            *b = theirs;
            if (b->p) release(b);
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (mine[i].p) release(&mine[i]);
    return NULL;
}

/* The kernel's view: the process's resident memory (Rss of
 * /proc/self/smaps_rollup, through hugeslab_stats), in bytes. */
static long long resident_bytes(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    return s.kernel_rss;
}

/* SuperSlabs holding blocks (mapped, less those idle) and bytes in use. */
typedef struct usage_s {
    uint64_t superslabs_in_use, bytes_in_use, bytes_in_runs;
} usage_t;

static usage_t usage(void)
{
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    return (usage_t){s.superslabs_mapped - s.superslabs_cached - s.superslabs_purged,
                     s.bytes_in_slabs + s.bytes_in_runs, s.bytes_in_runs};
}

/* A child of the process, forked while the failures go on, writes to every
 * kept block (copy on write: with hugetlb SuperSlabs that takes pages the
 * pool may not have, unless fork() gave the child copies of its own) and
 * checks them. Returns whether it exited cleanly. */
static bool fork_and_write(block_t *keepers, unsigned count)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return true; /* fork itself refused: nothing to check */
    if (pid == 0) {
        for (unsigned i = 0; i < count; i++) {
            if (!keepers[i].p) continue;
            check(&keepers[i], "in a forked child");
            keepers[i].seed ^= 0x77;
            stamp(&keepers[i]);
            check(&keepers[i], "written in a forked child");
        }
        _exit(atomic_load(&corrupted) ? 1 : 0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return false;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    fprintf(stderr, "FAIL: the forked child %s %d\n",
            WIFSIGNALED(status) ? "died of signal" : "exited with status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return false;
}

static int child(void)
{
    os_fault_arm(false);
    /* Blocks that live through the whole run. */
    hs_rng_t r;
    hs_rng_seed(&r, 42);
    static block_t keepers[KEEPERS];
    for (unsigned i = 0; i < KEEPERS; i++)
        if (!allocate(&r, &keepers[i])) HS_FAIL("allocation before the failures started");
    hugeslab_malloc_trim(0);
    usage_t before = usage();
    long long rss_before = resident_bytes();

    os_fault_arm(true);
    pthread_t tid[THREADS];
    int started = 0;
    for (uintptr_t t = 0; t < THREADS; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)(t + 1)) == 0) started++;
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    for (unsigned s = 0; s < SHARED; s++)
        if (shared_block[s].p) release(&shared_block[s]);
    CHECK(fork_and_write(keepers, KEEPERS), "a child forked during the failures did not survive");
    os_fault_arm(false);

    for (unsigned i = 0; i < KEEPERS; i++) check(&keepers[i], "after the run");
    /* Empty slabs and SuperSlabs reach their pools as the purge thread and
     * the sweeps of exited threads' slabs get to them, which can take more
     * than one malloc_trim: give them a few seconds. */
    usage_t after = usage();
    long long rss_after = resident_bytes();
    for (int wait = 0; wait < 250 && (after.superslabs_in_use > before.superslabs_in_use ||
                                      after.bytes_in_use > before.bytes_in_use ||
                                      rss_after > rss_before + RSS_SLACK);
         wait++) {
        hugeslab_malloc_trim(0);
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        after = usage();
        rss_after = resident_bytes();
    }
    char sites[512] = "";
    size_t len = 0;
    for (unsigned s = 0; s < OS_FAULT_SITES; s++) {
        uint64_t calls, failed;
        os_fault_counts((os_fault_site_t)s, &calls, &failed);
        if (calls && len < sizeof sites)
            len += (size_t)snprintf(sites + len, sizeof sites - len, "%s%s %llu/%llu",
                                    len ? ", " : "", os_fault_site_name((os_fault_site_t)s),
                                    (unsigned long long)failed, (unsigned long long)calls);
    }
    printf("failed/calls: %s; NULL+ENOMEM %llu; SuperSlabs in use %llu -> %llu, bytes in use "
           "%llu -> %llu (in runs %llu -> %llu); Rss %lld MiB -> %lld MiB\n",
           sites[0] ? sites : "no call", (unsigned long long)null_results,
           (unsigned long long)before.superslabs_in_use,
           (unsigned long long)after.superslabs_in_use, (unsigned long long)before.bytes_in_use,
           (unsigned long long)after.bytes_in_use, (unsigned long long)before.bytes_in_runs,
           (unsigned long long)after.bytes_in_runs, rss_before >> 20, rss_after >> 20);
    CHECK(atomic_load(&corrupted) == 0, "%llu blocks changed", (unsigned long long)corrupted);
    CHECK(atomic_load(&bad_errno) == 0, "%llu NULLs without ENOMEM", (unsigned long long)bad_errno);
    CHECK(after.superslabs_in_use <= before.superslabs_in_use,
          "SuperSlabs in use %llu -> %llu: a leak", (unsigned long long)before.superslabs_in_use,
          (unsigned long long)after.superslabs_in_use);
    CHECK(after.bytes_in_use <= before.bytes_in_use, "bytes in use %llu -> %llu: a leak",
          (unsigned long long)before.bytes_in_use, (unsigned long long)after.bytes_in_use);
    CHECK(rss_after <= rss_before + RSS_SLACK, "Rss %lld MiB -> %lld MiB: memory kept",
          rss_before >> 20, rss_after >> 20);
    for (unsigned i = 0; i < KEEPERS; i++)
        if (keepers[i].p) hugeslab_free(keepers[i].p);
    fflush(stdout);
    return hs_failures ? 1 : 0;
}

/* Where the kernel places an anonymous mapping of 2 MiB on a 2 MiB
 * boundary, a SuperSlab costs one mmap and no munmap (os_map_aligned's
 * one-call way), where mapping more and trimming the ends took an mmap
 * and one or two munmaps (18 for 17 SuperSlabs here). Counted by the fault
 * layer's tallies, nothing failing: 32 MiB of 64-byte blocks. */
static int mappings(void)
{
    const size_t superslab = (size_t)2 << 20;
    void *probe = mmap(NULL, superslab, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool aligned = probe != MAP_FAILED && (uintptr_t)probe % superslab == 0;
    if (probe != MAP_FAILED) munmap(probe, superslab);
    if (!aligned) {
        printf("mappings: the kernel places 2 MiB mappings off 2 MiB boundaries: nothing to "
               "count\n");
        return 0;
    }
    enum { BLOCKS = (32 << 20) / 64 };
    static void *blocks[BLOCKS];
    hugeslab_stats_t s0, s1;
    uint64_t mmap0, munmap0, placed0, mmap1, munmap1, placed1, failed;
    hugeslab_stats(&s0);
    os_fault_counts(OS_FAULT_MMAP, &mmap0, &failed);
    os_fault_counts(OS_FAULT_MUNMAP, &munmap0, &failed);
    os_fault_counts(OS_FAULT_PLACE, &placed0, &failed);
    for (unsigned i = 0; i < BLOCKS; i++) {
        blocks[i] = hugeslab_malloc(64);
        if (!blocks[i]) HS_FAIL("malloc(64) failed");
        memset(blocks[i], 0x5a, 64);
    }
    hugeslab_stats(&s1);
    os_fault_counts(OS_FAULT_MMAP, &mmap1, &failed);
    os_fault_counts(OS_FAULT_MUNMAP, &munmap1, &failed);
    os_fault_counts(OS_FAULT_PLACE, &placed1, &failed);
    unsigned long long superslabs = s1.superslabs_mapped - s0.superslabs_mapped;
    printf("mappings: %llu SuperSlabs mapped, %llu mmap, %llu munmap, %llu placed aligned\n",
           superslabs, (unsigned long long)(mmap1 - mmap0), (unsigned long long)(munmap1 - munmap0),
           (unsigned long long)(placed1 - placed0));
    CHECK(superslabs >= 16, "32 MiB of blocks took %llu SuperSlabs", superslabs);
    CHECK(munmap1 == munmap0, "%llu munmap calls while %llu SuperSlabs were mapped",
          (unsigned long long)(munmap1 - munmap0), superslabs);
    CHECK(mmap1 - mmap0 <= superslabs + 4, "%llu mmap calls for %llu SuperSlabs",
          (unsigned long long)(mmap1 - mmap0), superslabs);
    CHECK(placed1 - placed0 >= superslabs, "%llu SuperSlabs placed by the kernel of %llu",
          (unsigned long long)(placed1 - placed0), superslabs);
    for (unsigned i = 0; i < BLOCKS; i++) hugeslab_free(blocks[i]);
    fflush(stdout);
    return hs_failures ? 1 : 0;
}

/* The purge thread's start refused once (HUGESLAB_FAULT_SITES=thread,
 * NTH=1: pthread_create's EAGAIN, as when the address space is full for a
 * moment): a free 50 ms later starts it, and the idle runs go back. A
 * refusal once stopped every purge of the process for good. */
static int purge_again(void)
{
    enum { RUNS = 16 };
    const size_t size = (size_t)3 << 20;
    void *runs[RUNS];
    for (unsigned i = 0; i < RUNS; i++) {
        runs[i] = hugeslab_malloc(size);
        if (!runs[i])
            HS_FAIL("malloc(3 MiB) failed");
        else
            memset(runs[i], 0x5a, size);
    }
    for (unsigned i = 0; i < RUNS; i++) hugeslab_free(runs[i]); /* the refused start */
    usleep(50 * 1000);
    void *p = hugeslab_malloc(size);
    if (p) memset(p, 0x5a, size);
    hugeslab_free(p); /* starts it */
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    for (unsigned t = 0; t < 100 && s.bytes_cached; t++) {
        usleep(20 * 1000);
        hugeslab_stats(&s);
    }
    uint64_t starts, refused;
    os_fault_counts(OS_FAULT_THREAD, &starts, &refused);
    printf("purge again: %llu thread starts, %llu refused; %llu bytes cached, %llu purged\n",
           (unsigned long long)starts, (unsigned long long)refused,
           (unsigned long long)s.bytes_cached, (unsigned long long)s.bytes_purged_total);
    CHECK(refused == 1 && starts >= 2, "%llu thread starts, %llu refused: want a second start",
          (unsigned long long)starts, (unsigned long long)refused);
    CHECK(s.bytes_cached == 0, "%llu bytes still cached 2 s after the frees",
          (unsigned long long)s.bytes_cached);
    fflush(stdout);
    return hs_failures ? 1 : 0;
}

/* One scenario: a name and the HUGESLAB_* variables of its run. */
typedef struct scenario_s {
    char name[64];
    char env[8][64];
} scenario_t;

static int run_scenario(const char *self, const scenario_t *s)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (unsigned i = 0; i < 8; i++)
            if (s->env[i][0]) putenv((char *)s->env[i]);
        alarm(CHILD_LIMIT_S); /* a hang becomes a SIGALRM death */
        execl(self, self, "--child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        printf("FAIL %s: could not run it\n", s->name);
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("PASS %s\n", s->name);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("FAIL %s: %s\n", s->name,
               WTERMSIG(status) == SIGALRM ? "hung (no end within the time limit)"
                                           : strsignal(WTERMSIG(status)));
    else
        printf("FAIL %s: exit status %d\n", s->name, WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--child") == 0) {
        if (getenv("FAULT_TEST_PURGE_AGAIN")) return purge_again();
        return getenv("FAULT_TEST_MAPPINGS") ? mappings() : child();
    }

    static const char *const sites[] = {"mmap",  "munmap", "mremap", "madvise", "mbind",
                                        "uring", "thread", "file",   "pipe",    "place"};
    static scenario_t list[64];
    unsigned n = 0;
    for (unsigned i = 0; i < sizeof sites / sizeof sites[0]; i++) {
        static const char *const modes[][3] = {
            {"first call", "HUGESLAB_FAULT_NTH=1", ""},
            {"every call from the 3rd", "HUGESLAB_FAULT_NTH=3", "HUGESLAB_FAULT_REPEAT=0"},
            {"20% seed 1", "HUGESLAB_FAULT_PERCENT=20", "HUGESLAB_FAULT_SEED=1"},
            {"50% seed 2", "HUGESLAB_FAULT_PERCENT=50", "HUGESLAB_FAULT_SEED=2"},
        };
        for (unsigned m = 0; m < 4; m++) {
            scenario_t *s = &list[n++];
            snprintf(s->name, sizeof s->name, "%s, %s", sites[i], modes[m][0]);
            snprintf(s->env[0], sizeof s->env[0], "HUGESLAB_FAULT_SITES=%s", sites[i]);
            snprintf(s->env[1], sizeof s->env[1], "%s", modes[m][1]);
            snprintf(s->env[2], sizeof s->env[2], "%s", modes[m][2]);
        }
    }
    /* Nothing fails: the mappings counted (mappings above). */
    snprintf(list[n].name, sizeof list[n].name, "mappings, none failing");
    snprintf(list[n++].env[0], sizeof list[0].env[0], "FAULT_TEST_MAPPINGS=1");
    /* The purge thread's first start refused. */
    snprintf(list[n].name, sizeof list[n].name, "thread, first start refused, started later");
    snprintf(list[n].env[0], sizeof list[0].env[0], "FAULT_TEST_PURGE_AGAIN=1");
    snprintf(list[n].env[1], sizeof list[0].env[1], "HUGESLAB_FAULT_SITES=thread");
    snprintf(list[n++].env[2], sizeof list[0].env[2], "HUGESLAB_FAULT_NTH=1");
    for (unsigned seed = 1; seed <= 4; seed++) {
        scenario_t *s = &list[n++];
        snprintf(s->name, sizeof s->name, "all sites, 5%% seed %u", seed);
        snprintf(s->env[0], sizeof s->env[0], "HUGESLAB_FAULT_SITES=all");
        snprintf(s->env[1], sizeof s->env[1], "HUGESLAB_FAULT_PERCENT=5");
        snprintf(s->env[2], sizeof s->env[2], "HUGESLAB_FAULT_SEED=%u", seed);
    }
    /* Every run purges at once, with MADV_DONTNEED (so that Rss drops) and
     * through io_uring where it can, so that the purge thread's calls are
     * made (and fail) too. THP backing, whatever hugetlb pool the machine
     * has: a child forked while mmap or mremap fail cannot make its private
     * copies of hugetlb SuperSlabs, and its first write to one then dies of
     * SIGBUS when the pool is empty (run this program's --child in the NUMA
     * VM with HUGESLAB_BACKING=hugetlb and a small pool to see it). */
    for (unsigned i = 0; i < n; i++) {
        snprintf(list[i].env[3], sizeof list[i].env[3], "HUGESLAB_PURGE_DELAY_MS=0");
        snprintf(list[i].env[4], sizeof list[i].env[4], "HUGESLAB_RESERVE_MB=0");
        snprintf(list[i].env[5], sizeof list[i].env[5], "HUGESLAB_PURGE_BACKEND=uring");
        snprintf(list[i].env[6], sizeof list[i].env[6], "HUGESLAB_PURGE=dontneed");
        snprintf(list[i].env[7], sizeof list[i].env[7], "HUGESLAB_BACKING=thp");
    }
    int failed = 0;
    for (unsigned i = 0; i < n; i++) failed += run_scenario("/proc/self/exe", &list[i]);
    printf("%u scenarios, %d failed\n", n, failed);
    return failed ? 1 : 0;
}

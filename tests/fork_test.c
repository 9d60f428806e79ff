/* fork() while other threads allocate and free heavily.  The child frees
 * blocks inherited from the parent (including blocks owned by threads that
 * do not exist in the child), allocates, frees and checks, starts a thread
 * of its own, and exits 0.  A child that deadlocks is killed by alarm().
 * Repeated 50 times; then fork + exec of /bin/true, also 20 times.
 *
 * Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/fork_test [forks]
 * and        ... build/tests/fork_test --hugetlb   (see hugetlb_fork_case)
 * and        ... build/tests/fork_test --hugetlb-mt (as root; see hugetlb_mt_case)
 * and        ... build/tests/fork_test --hugetlb-forkers (as root; see mt_forkers_run)
 * and        ... build/tests/fork_test --heapless (see heapless_case)
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <hugeslab.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NBG 3
#define NSLOTS 256
#define MAIN_BLOCKS 256

static _Atomic(uintptr_t) g_slots[NSLOTS];
static atomic_int g_stop;
static atomic_ulong g_bg_ops;

typedef struct {
    void *p;
    size_t n;
} blk_t;

/* Blocks: first 8 bytes = size, then pattern seeded by address ^ size. */
static void *new_block(hs_rng_t *r, int big)
{
    /* big: 90% up to 2 KiB, 9.5% up to 200 KiB, 0.5% 3 MiB; else 99% / 1% / none */
    uint64_t x = hs_rng_below(r, 1000);
    size_t n = x < (big ? 900u : 990u)
                   ? 16 + (size_t)hs_rng_below(r, 2000)
                   : (x < 995 || !big ? 4096 + (size_t)hs_rng_below(r, 200000) : (size_t)3 << 20);
    char *p = malloc(n);
    if (!p) {
        fprintf(stderr, "FAIL: malloc(%zu) failed\n", n);
        abort();
    }
    uint64_t nn = n;
    memcpy(p, &nn, 8);
    hs_fill(p + 8, n - 8, (uintptr_t)p ^ n);
    return p;
}

/* Returns 0 when the block is intact. */
static int check_free(void *vp, const char *who)
{
    char *p = vp;
    uint64_t n;
    memcpy(&n, p, 8);
    size_t off = n >= 16 && n < (64u << 20) ? hs_check_fill(p + 8, n - 8, (uintptr_t)p ^ n) : 0;
    if (off != SIZE_MAX) {
        char buf[256];
        int len = snprintf(buf, sizeof buf, "FAIL: %s: block %p (size %llu) corrupted at %zu\n",
                           who, (void *)p, (unsigned long long)n, off);
        if (write(2, buf, (size_t)len) < 0) return 1;
        return 1;
    }
    free(p);
    return 0;
}

static void *bg_thread(void *arg)
{
    hs_rng_t r;
    hs_rng_seed(&r, (uintptr_t)arg);
    void *local[64] = {0};
    unsigned long ops = 0;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        unsigned i = (unsigned)hs_rng_below(&r, 64);
        if (!local[i]) {
            local[i] = new_block(&r, 1);
        } else if (hs_rng_next(&r) & 1) {
            if (check_free(local[i], "parent thread")) abort();
            local[i] = NULL;
        } else {
            unsigned s = (unsigned)hs_rng_below(&r, NSLOTS);
            local[i] = (void *)atomic_exchange(&g_slots[s], (uintptr_t)local[i]);
        }
        ops++;
    }
    for (unsigned i = 0; i < 64; i++)
        if (local[i] && check_free(local[i], "parent thread exit")) abort();
    atomic_fetch_add(&g_bg_ops, ops);
    return NULL;
}

static void *child_thread(void *arg)
{
    hs_rng_t r;
    hs_rng_seed(&r, (uintptr_t)arg);
    void *b[32];
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < 32; i++) b[i] = new_block(&r, 0);
        for (int i = 0; i < 32; i++)
            if (check_free(b[i], "child thread")) return (void *)1;
    }
    return NULL;
}

/* Private_Hugetlb of /proc/self/smaps_rollup in kB (no stdio: the child
 * of a multithreaded parent), -1 when unreadable. */
static long private_hugetlb_kb(void)
{
    return hs_proc_field_raw("/proc/self/smaps_rollup", "Private_Hugetlb");
}

static int child_main(blk_t *mine, int iter)
{
    int bad = 0;
    /* hugeslab made the hugetlb memory it inherited anonymous before fork()
     * returned; a range still hugetlb lost a page to the parent, or was a
     * mapping the child was not told of. */
    long hugetlb_kb = private_hugetlb_kb();
    if (hugetlb_kb > 0) {
        char buf[160];
        int len = snprintf(buf, sizeof buf,
                           "FAIL: child: %ld kB of hugetlb memory left after fork (a page taken "
                           "back, or a mapping the child was not told of)\n",
                           hugetlb_kb);
        if (write(2, buf, (size_t)len) < 0) return 1;
        bad = 1;
    }
    /* blocks of the parent's main thread */
    for (int i = 0; i < MAIN_BLOCKS; i++)
        if (mine[i].p) bad |= check_free(mine[i].p, "child freeing parent main-thread block");
    /* blocks that were in flight between the parent's threads */
    for (int s = 0; s < NSLOTS; s++) {
        uintptr_t p = atomic_exchange(&g_slots[s], 0);
        if (p) bad |= check_free((void *)p, "child freeing parent worker block");
    }
    hs_rng_t r;
    hs_rng_seed(&r, (uint64_t)iter * 7919);
    void *local[128] = {0};
    for (int op = 0; op < 10000; op++) {
        unsigned i = (unsigned)hs_rng_below(&r, 128);
        if (local[i]) {
            bad |= check_free(local[i], "child");
            local[i] = NULL;
        } else {
            local[i] = new_block(&r, 0);
        }
    }
    for (int i = 0; i < 128; i++)
        if (local[i]) bad |= check_free(local[i], "child");
    pthread_t t;
    void *ret = (void *)1;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(iter + 1)) != 0 ||
        pthread_join(t, &ret) != 0)
        return 1;
    return bad || ret != NULL;
}

/* A figure of the 2 MiB pool from its own sysfs file (/proc/meminfo's
 * HugePages_* describe the default size, 1 GiB with default_hugepagesz=1G);
 * -1 when absent. */
static long pool_2m(const char *leaf)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-2048kB/%s", leaf);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f) return -1;
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

static long hugetlb_available(void)
{
    return pool_2m("free_hugepages") - pool_2m("resv_hugepages");
}

/* --hugetlb: when the system has a hugetlb pool, the parent uses heap memory
 * until the pool is (nearly) used up, then forks; the child writes to the
 * blocks it inherited.  Copy-on-write of private hugetlb pages needs fresh
 * pages from the pool, so an allocator that hands out MAP_PRIVATE hugetlb
 * memory makes such a child die of SIGBUS.  glibc passes trivially. */
static int hugetlb_fork_case(void)
{
    if (!hs_under_hugeslab()) hs_skip("fork_hugetlb: only meaningful under hugeslab");
    long total = pool_2m("nr_hugepages");
    if (total <= 0)
        hs_skip("fork_hugetlb: no 2 MiB hugetlb pool (hugepages-2048kB/nr_hugepages = 0)");
    long start = hugetlb_available();
    size_t cap = (size_t)(start > 0 ? start : 0) * 2 + 128; /* in MiB */
    char **b = calloc(cap, sizeof *b);
    size_t n = 0, extra = 0;
    long avail = start;
    while (n < cap) {
        char *p = malloc(1u << 20);
        if (!p) break;
        memset(p, (int)(n & 0x7f) + 1, 1u << 20);
        b[n++] = p;
        if ((n & 7) == 0) avail = hugetlb_available();
        if (avail <= 0 && ++extra > 16) break;
    }
    fprintf(stderr,
            "fork_hugetlb: pool %ld pages, %ld available at start, %ld after %zu MiB "
            "of heap blocks\n",
            total, start, hugetlb_available(), n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        for (size_t i = 0; i < n; i++) {
            if (b[i][0] != (char)((i & 0x7f) + 1)) _exit(2);
            memset(b[i], 0x55, 1u << 20); /* copy on write */
        }
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        HS_FAIL("fork_hugetlb: child died of signal %d (%s) writing to %zu MiB of heap blocks "
                "inherited over fork%s",
                WTERMSIG(st), strsignal(WTERMSIG(st)), n,
                WTERMSIG(st) == SIGBUS ? " -- copy-on-write of MAP_PRIVATE hugetlb pages failed "
                                         "because the hugetlb pool is exhausted"
                                       : "");
    else
        CHECK(WEXITSTATUS(st) == 0, "fork_hugetlb: child exit status %d", WEXITSTATUS(st));
    for (size_t i = 0; i < n; i++) free(b[i]);
    free(b);
    return hs_finish("fork_hugetlb");
}

/* Allocates 1 MiB blocks (filled with their index) into b[] from *n on, up
 * to cap, until no more than `floor` hugetlb pages are available. */
static void fill_until(char **b, size_t *n, size_t cap, long floor)
{
    while (*n < cap && hugetlb_available() > floor) {
        for (int k = 0; k < 8 && *n < cap; k++) {
            char *p = malloc(1u << 20);
            if (!p) return;
            memset(p, (int)(*n & 0x7f) + 1, 1u << 20);
            b[(*n)++] = p;
        }
    }
}

/* --hugetlb-race: at fork the pool still has a free page for each hugetlb
 * page of the parent, so a check made at fork time finds the child's copies
 * covered; then the child itself allocates until the pool is dry (as each
 * process a server forks does) and only then writes the blocks it inherited.
 * Their copy-on-write finds no page: SIGBUS, unless the child stopped
 * sharing private hugetlb pages when it was forked. */
static int hugetlb_race_case(void)
{
    if (!hs_under_hugeslab()) hs_skip("fork_hugetlb_race: only meaningful under hugeslab");
    long start = hugetlb_available();
    if (start < 6) hs_skip("fork_hugetlb_race: fewer than 6 free hugetlb pages (vm.nr_hugepages)");
    size_t cap = (size_t)start * 2 + 64, n = 0; /* 1 MiB blocks */
    char **b = calloc(cap, sizeof *b);
    fill_until(b, &n, cap, start - start / 3);
    fprintf(stderr,
            "fork_hugetlb_race: %ld pages available at start, %ld after %zu MiB in the parent\n",
            start, hugetlb_available(), n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        size_t inherited = n;
        fill_until(b, &n, cap, 0);
        for (size_t i = 0; i < inherited; i++) {
            if (b[i][0] != (char)((i & 0x7f) + 1)) _exit(2);
            memset(b[i], 0x55, 1u << 20); /* copy on write */
        }
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        HS_FAIL(
            "fork_hugetlb_race: child died of signal %d (%s) writing %zu MiB inherited over fork "
            "after it used up the hugetlb pool",
            WTERMSIG(st), strsignal(WTERMSIG(st)), n);
    else
        CHECK(WEXITSTATUS(st) == 0, "fork_hugetlb_race: child exit status %d", WEXITSTATUS(st));
    for (size_t i = 0; i < n; i++) free(b[i]);
    free(b);
    return hs_finish("fork_hugetlb_race");
}

/* --hugetlb-mt state: blocks in hugetlb memory, rewritten by writer threads
 * while the main thread forks. */
#define MT_WRITERS 3
#define MT_BLOCK ((size_t)1 << 20)
#define MT_HALF (MT_BLOCK / 2)
static char **mt_blocks;
static size_t mt_count;
static char mt_pool_saved[32]; /* nr_hugepages as found, restored as is */

static int pool_write(const char *text)
{
    int fd = open("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Writer t rewrites the second half of blocks t+1, t+1+MT_WRITERS+1, ...
 * without pause; the first half of every block keeps its fill byte. */
static void *mt_writer(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    unsigned char v = 0;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        v++;
        for (size_t i = t + 1; i < mt_count; i += MT_WRITERS + 1)
            memset(mt_blocks[i] + MT_HALF, v, MT_HALF);
    }
    return NULL;
}

/* The child: every block's first half still holds its fill byte, and none
 * of its memory is hugetlb any more; then it writes all of it. */
static int mt_child(void)
{
    for (size_t i = 0; i < mt_count; i++)
        for (size_t k = 0; k < MT_HALF; k++)
            if (mt_blocks[i][k] != (char)((i & 0x7f) + 1)) return 2;
    if (private_hugetlb_kb() != 0) return 3;
    for (size_t i = 0; i < mt_count; i++) memset(mt_blocks[i], 0x55, MT_BLOCK);
    return 0;
}

/* --hugetlb-forkers: as --hugetlb-mt, but MT_FORKERS threads fork at
 * once, 10 times each. glibc releases its atfork lock around each
 * handler, so their forks overlap in hugeslab's handlers; a fork whose
 * parent copies were still being made counted them again and every later
 * fork waited for them for ever. A fork still under way after 60 s fails
 * the test instead of hanging it. */
#define MT_FORKERS 4
static const char *mt_name;
static int mt_forks_each; /* forks of each forking thread */
static atomic_int mt_forks_done, mt_children_died, mt_children_failed;

static void mt_hung(int sig)
{
    (void)sig;
    static const char msg[] = "fork_test: forks still under way after 60 s\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
    pool_write(mt_pool_saved); /* open, write, close: safe in a handler */
    _exit(1);
}

/* Forks mt_forks_each times, each child checked by mt_child; failures
 * are counted (the checks are made once the forkers are joined). */
static void *mt_forker(void *arg)
{
    (void)arg;
    for (int it = 0; it < mt_forks_each; it++) {
        pid_t pid = fork();
        if (pid < 0) {
            atomic_fetch_add(&mt_children_failed, 1);
            fprintf(stderr, "%s: fork: %s\n", mt_name, strerror(errno));
            continue;
        }
        if (pid == 0) {
            alarm(60);
            _exit(mt_child());
        }
        int st;
        waitpid(pid, &st, 0);
        atomic_fetch_add(&mt_forks_done, 1);
        if (WIFSIGNALED(st)) {
            atomic_fetch_add(&mt_children_died, 1);
            fprintf(stderr, "%s: fork %d: child killed by signal %d (%s)%s\n", mt_name, it,
                    WTERMSIG(st), strsignal(WTERMSIG(st)),
                    WTERMSIG(st) == SIGBUS ? " -- parent threads wrote private hugetlb pages it "
                                             "shared while the pool had no page for their copy"
                                           : "");
        } else if (WEXITSTATUS(st) != 0) {
            atomic_fetch_add(&mt_children_failed, 1);
            fprintf(stderr, "%s: fork %d: child exit status %d%s\n", mt_name, it, WEXITSTATUS(st),
                    WEXITSTATUS(st) == 2   ? " (a block's contents changed)"
                    : WEXITSTATUS(st) == 3 ? " (the child still has hugetlb pages)"
                                           : "");
        }
    }
    return NULL;
}

/* Runs the forkers; returns the forks made, *died the children killed. */
static int mt_forkers_run(int forkers, int *died)
{
    signal(SIGALRM, mt_hung);
    alarm(60);
    pthread_t f[MT_FORKERS];
    int started = 0;
    for (; started < forkers && started < MT_FORKERS; started++)
        if (pthread_create(&f[started], NULL, mt_forker, NULL) != 0) break;
    CHECK(started == forkers, "%s: pthread_create of a forker", mt_name);
    for (int i = 0; i < started; i++) pthread_join(f[i], NULL);
    alarm(0);
    *died = atomic_load(&mt_children_died);
    CHECK(*died == 0, "%s: %d children killed", mt_name, *died);
    CHECK(atomic_load(&mt_children_failed) == 0,
          "%s: %d forks failed, or their children exited with an error", mt_name,
          atomic_load(&mt_children_failed));
    return atomic_load(&mt_forks_done);
}

/* --hugetlb-mt: the heap takes all the hugetlb pages the default (auto)
 * backing will from a small pool (reserved here, as root, for nothing
 * else), writer threads rewrite their blocks without pause, and another
 * thread forks again and again.  A child loses each shared page a parent
 * thread writes while the pool has no page for the parent's copy (the
 * parent owns the reservation), and that page's contents at fork() are
 * gone: the auto backing leaves free pages for those copies, so no child
 * may die of SIGBUS or find a block changed. */
static int hugetlb_mt_case(char **argv, int forkers)
{
    mt_name = forkers > 1 ? "fork_hugetlb_forkers" : "fork_hugetlb_mt";
    if (!hs_under_hugeslab()) hs_skip("%s: only meaningful under hugeslab", mt_name);
    if (geteuid() != 0) hs_skip("%s: not root: cannot reserve a hugetlb pool", mt_name);
    const char *backing = getenv("HUGESLAB_BACKING");
    if (!backing || strcmp(backing, "auto") != 0) {
        /* The backing is read at start: run again with it set. */
        setenv("HUGESLAB_BACKING", "auto", 1);
        execv("/proc/self/exe", argv);
        hs_skip("%s: cannot run again with HUGESLAB_BACKING=auto: %s", mt_name, strerror(errno));
    }
    long total = pool_2m("nr_hugepages"), avail = hugetlb_available();
    if (total < 0) hs_skip("%s: no 2 MiB hugetlb pool on this kernel", mt_name);
    snprintf(mt_pool_saved, sizeof mt_pool_saved, "%ld", total);
    /* The pages others use now, plus 24 for this test (48 MiB). */
    long want = total - (avail > 0 ? avail : 0) + 24;
    char text[32];
    snprintf(text, sizeof text, "%ld", want);
    if (pool_write(text) != 0) hs_skip("%s: cannot write nr_hugepages", mt_name);
    long start = hugetlb_available();
    fprintf(stderr, "%s: pool %ld pages (was %s), %ld available\n", mt_name,
            pool_2m("nr_hugepages"), mt_pool_saved, start);
    if (start < 8) {
        pool_write(mt_pool_saved);
        hs_skip("%s: only %ld hugetlb pages could be reserved", mt_name, start);
    }
    /* The auto backing looks at the pool again a second after it last
     * found too few pages (at start, before the pool was reserved). */
    struct timespec pause = {1, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    size_t cap = (size_t)start * 2 + 64;
    mt_blocks = calloc(cap, sizeof *mt_blocks);
    fill_until(mt_blocks, &mt_count, cap, 0);
    long hugetlb_kb = private_hugetlb_kb();
    fprintf(stderr, "%s: %zu MiB of blocks, %ld kB of them hugetlb, %ld available\n", mt_name,
            mt_count, hugetlb_kb, hugetlb_available());
    if (hugetlb_kb <= 0) {
        pool_write(mt_pool_saved);
        hs_skip("%s: the heap got no hugetlb pages", mt_name);
    }
    pthread_t w[MT_WRITERS];
    for (size_t t = 0; t < MT_WRITERS; t++)
        if (pthread_create(&w[t], NULL, mt_writer, (void *)(uintptr_t)t) != 0) {
            HS_FAIL("%s: pthread_create", mt_name);
            pool_write(mt_pool_saved);
            return hs_finish(mt_name);
        }
    /* The main thread alone forks 20 times; with forkers, each 10. */
    mt_forks_each = forkers > 1 ? 10 : 20;
    int died = 0, forks = mt_forkers_run(forkers, &died);
    atomic_store(&g_stop, 1);
    for (size_t t = 0; t < MT_WRITERS; t++) pthread_join(w[t], NULL);
    for (size_t i = 0; i < mt_count; i++) {
        CHECK(mt_blocks[i][0] == (char)((i & 0x7f) + 1), "%s: block %zu changed", mt_name, i);
        free(mt_blocks[i]);
    }
    free(mt_blocks);
    malloc_trim(0); /* the emptied SuperSlabs give their pool pages back */
    int restored = pool_write(mt_pool_saved);
    CHECK(restored == 0 && pool_2m("nr_hugepages") == atol(mt_pool_saved),
          "%s: nr_hugepages not restored to %s (now %ld)", mt_name, mt_pool_saved,
          pool_2m("nr_hugepages"));
    fprintf(stderr, "%s: %d forks, %d children killed; nr_hugepages back to %ld\n", mt_name, forks,
            died, pool_2m("nr_hugepages"));
    return hs_finish(mt_name);
}

/* ---- threads that only free, across fork() ----------------------------------- */

/* HL_THREADS threads without a heap each free HL_BLOCKS blocks of the main
 * thread's and wait: the first 64 of each go at once, the rest wait in a
 * batch lent to the thread (src/tiny/tiny.c, heapless_free_remote), which
 * the main thread's figures do not count yet (hl_round). Then they leave,
 * and every free is counted. The parent forks while its threads hold their
 * batches: the child, which has none of those threads, must get the
 * batches back and lend each of its own such threads one (the DEBUG=1
 * library asserts that a batch lent again is empty). */
#define HL_THREADS 64
#define HL_BLOCKS 100
#define HL_AT_ONCE 64
typedef void (*stats_fn)(hugeslab_stats_t *);
static pthread_barrier_t hl_freed;

static void *hl_consumer(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < HL_BLOCKS; i++) free(blocks[i]);
    pthread_barrier_wait(&hl_freed);
    pthread_barrier_wait(&hl_freed);
    return NULL;
}

/* One round in the calling process: 0 when every figure is as it should be. */
static int hl_round(stats_fn stats, const char *who)
{
    static void *blocks[HL_THREADS][HL_BLOCKS];
    pthread_t t[HL_THREADS];
    for (int k = 0; k < HL_THREADS; k++)
        for (int i = 0; i < HL_BLOCKS; i++) blocks[k][i] = malloc(64);
    hugeslab_stats_t before, holding, after;
    stats(&before);
    pthread_barrier_init(&hl_freed, NULL, HL_THREADS + 1);
    for (int k = 0; k < HL_THREADS; k++)
        if (pthread_create(&t[k], NULL, hl_consumer, blocks[k]) != 0) {
            fprintf(stderr, "FAIL: %s: pthread_create\n", who);
            return 1;
        }
    pthread_barrier_wait(&hl_freed);
    stats(&holding);
    pthread_barrier_wait(&hl_freed);
    for (int k = 0; k < HL_THREADS; k++) pthread_join(t[k], NULL);
    stats(&after);
    pthread_barrier_destroy(&hl_freed);
    unsigned long long at_once = holding.remote_frees - before.remote_frees;
    unsigned long long all = after.remote_frees - before.remote_frees;
    fprintf(stderr,
            "fork heapless: %s: %llu frees counted while the threads held their batches, "
            "%llu after they left\n",
            who, at_once, all);
    /* At most the frees made at once: fewer where a thread got a heap on
     * the way (its free started the purge thread, whose pthread_create
     * allocates on it), whose batch then held the rest. With no batch to
     * lend, all would be counted. */
    if (at_once > HL_THREADS * HL_AT_ONCE || all != HL_THREADS * HL_BLOCKS) {
        fprintf(stderr, "FAIL: %s: want at most %d, then %d\n", who, HL_THREADS * HL_AT_ONCE,
                HL_THREADS * HL_BLOCKS);
        return 1;
    }
    return 0;
}

static int heapless_case(void)
{
    stats_fn stats = (stats_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hugeslab_stats");
    if (!stats) {
        printf("SKIP: no hugeslab_stats (hugeslab not loaded)\n");
        return 0;
    }
    static void *blocks[HL_THREADS][HL_BLOCKS];
    pthread_t t[HL_THREADS];
    for (int k = 0; k < HL_THREADS; k++)
        for (int i = 0; i < HL_BLOCKS; i++) blocks[k][i] = malloc(64);
    pthread_barrier_init(&hl_freed, NULL, HL_THREADS + 1);
    for (int k = 0; k < HL_THREADS; k++)
        if (pthread_create(&t[k], NULL, hl_consumer, blocks[k]) != 0) {
            HS_FAIL("%s", "pthread_create");
            return hs_finish("fork heapless");
        }
    pthread_barrier_wait(&hl_freed); /* every batch of the pool lent, blocks waiting in it */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        _exit(hl_round(stats, "child") || hl_round(stats, "child, again"));
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        HS_FAIL("fork or waitpid: %s", strerror(errno));
        return hs_finish("fork heapless");
    }
    pthread_barrier_wait(&hl_freed);
    for (int k = 0; k < HL_THREADS; k++) pthread_join(t[k], NULL);
    pthread_barrier_destroy(&hl_freed);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's round: status %#x", st);
    CHECK(hl_round(stats, "parent") == 0, "%s", "the parent's round");
    return hs_finish("fork heapless");
}

int main(int argc, char **argv)
{
    hs_setup("fork");
    if (argc > 1 && strcmp(argv[1], "--heapless") == 0) return heapless_case();
    if (argc > 1 && strcmp(argv[1], "--hugetlb") == 0) return hugetlb_fork_case();
    if (argc > 1 && strcmp(argv[1], "--hugetlb-race") == 0) return hugetlb_race_case();
    if (argc > 1 && strcmp(argv[1], "--hugetlb-mt") == 0) return hugetlb_mt_case(argv, 1);
    if (argc > 1 && strcmp(argv[1], "--hugetlb-forkers") == 0)
        return hugetlb_mt_case(argv, MT_FORKERS);
    int forks = argc > 1 ? atoi(argv[1]) : 50;
    pthread_t bg[NBG];
    for (int i = 0; i < NBG; i++)
        if (pthread_create(&bg[i], NULL, bg_thread, (void *)(uintptr_t)(i + 100)) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
    static blk_t mine[MAIN_BLOCKS];
    hs_rng_t r;
    hs_rng_seed(&r, 42);
    for (int it = 0; it < forks; it++) {
        /* refresh some of the main thread's blocks */
        for (int k = 0; k < MAIN_BLOCKS / 2; k++) {
            unsigned i = (unsigned)hs_rng_below(&r, MAIN_BLOCKS);
            if (mine[i].p && check_free(mine[i].p, "parent main")) hs_failures++;
            mine[i].p = new_block(&r, 1);
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            HS_FAIL("fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            alarm(30);
            _exit(child_main(mine, it));
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            HS_FAIL("waitpid: %s", strerror(errno));
            break;
        }
        if (WIFSIGNALED(st))
            HS_FAIL("fork %d: child killed by signal %d (%s)%s", it, WTERMSIG(st),
                    strsignal(WTERMSIG(st)),
                    WTERMSIG(st) == SIGALRM ? " -- deadlock after fork?"
                    : WTERMSIG(st) == SIGBUS
                        ? " -- a hugetlb page it inherited was taken back (the pool had no "
                          "free page for a parent thread's copy)"
                        : "");
        else
            CHECK(WEXITSTATUS(st) == 0, "fork %d: child exited %d", it, WEXITSTATUS(st));
    }
    /* fork + exec while the threads keep going */
    for (int it = 0; it < 20; it++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            void *p = malloc(100); /* allocate between fork and exec as well */
            free(p);
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork+exec /bin/true %d: status %#x", it, st);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < NBG; i++) pthread_join(bg[i], NULL);
    for (int s = 0; s < NSLOTS; s++) {
        uintptr_t p = atomic_exchange(&g_slots[s], 0);
        if (p && check_free((void *)p, "parent drain")) hs_failures++;
    }
    for (int i = 0; i < MAIN_BLOCKS; i++)
        if (mine[i].p && check_free(mine[i].p, "parent main")) hs_failures++;
    fprintf(stderr, "fork: %d forks, background threads did %lu ops\n", forks,
            (unsigned long)atomic_load(&g_bg_ops));
    return hs_finish("fork");
}

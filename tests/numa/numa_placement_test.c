/* Where does the allocator put a thread's small blocks on a NUMA machine?
 * Runs inside a multi-node VM (tests/numa/vm-run) under LD_PRELOAD of the
 * allocator under test; the kernel says where each page is (move_pages in
 * query mode), so the figures do not depend on the allocator's own account.
 *
 *   numa_placement_test local             a. one pinned thread per node
 *   numa_placement_test remote            b. producer on node 0, consumer on 1
 *   numa_placement_test policy bind N     c. run under numactl --membind=N
 *   numa_placement_test policy preferred N   ... under numactl --preferred=N
 *   numa_placement_test policy interleave    ... under numactl --interleave=all
 *   numa_placement_test migrate           d. a thread moves from node 0 to 1
 *   numa_placement_test topology          f. a thread on every node with CPUs, some
 *                                            without memory
 *   numa_placement_test hugetlb [none]    e. as (a) with HUGESLAB_BACKING=hugetlb, on
 *                                            2 MiB pages whatever the default size
 *                                            ("none": no 2 MiB pool, a fallback)
 *
 * Each prints its figures, a line "figures: ..." that bench/numa/locality.sh
 * reads, and "result: PASS" or "result: FAIL <why>" / "result: SKIP <why>";
 * exit status 0, 1 or 77 (2 for bad usage). */
#include <stdarg.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "hugeslab.h"
#define NT_REMOTE_FREES_OFFSET offsetof(hugeslab_stats_t, remote_frees)
#include "numa_test_util.h"

_Static_assert(sizeof(hugeslab_stats_t) <= 16384, "stats buffer in numa_test_util.h");

/* Blocks per thread: about 10 MiB of 64 B..1 KiB blocks, several SuperSlabs
 * of any allocator's small-block arenas, and quick under TCG. */
#define BLOCKS 20000
#define MIN_BLOCK 64
#define MAX_BLOCK 1024
/* "Local" means at least this share of a thread's pages on its node: a few
 * pages of metadata or a shared first page may legitimately sit elsewhere. */
#define LOCAL_SHARE 0.99

typedef struct blocks_s {
    void **ptr;
    size_t *size;
    size_t count;
} blocks_t;

static void *map_array(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(NT_EXIT_USAGE);
    }
    return p;
}

static void blocks_alloc(blocks_t *b, size_t n, uint64_t seed)
{
    /* The arrays come from mmap, not the allocator under test, so that
     * they neither share pages with the blocks nor change its state. */
    b->ptr = map_array(n * sizeof *b->ptr);
    b->size = map_array(n * sizeof *b->size);
    b->count = n;
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        size_t size = MIN_BLOCK + nt_rand(&s) % (MAX_BLOCK - MIN_BLOCK + 1);
        b->ptr[i] = malloc(size);
        if (!b->ptr[i]) {
            perror("malloc");
            exit(NT_EXIT_USAGE);
        }
        memset(b->ptr[i], 0xa5, size); /* first touch happens here */
        b->size[i] = size;
    }
}

static void blocks_free(blocks_t *b)
{
    for (size_t i = 0; i < b->count; i++) free(b->ptr[i]);
}

static void blocks_release(blocks_t *b)
{
    munmap(b->ptr, b->count * sizeof *b->ptr);
    munmap(b->size, b->count * sizeof *b->size);
    memset(b, 0, sizeof *b);
}

/* Pages of blocks [from, to) per node; returns the pages with a known node. */
static long blocks_where(const blocks_t *b, size_t from, size_t to, long *per_node)
{
    nt_pages_t pages = {0};
    for (size_t i = from; i < to; i++) nt_pages_add_range(&pages, b->ptr[i], b->size[i]);
    nt_pages_finish(&pages);
    long known = nt_pages_where(&pages, per_node);
    nt_pages_free(&pages);
    return known;
}

static double share(long part, long whole) { return whole > 0 ? (double)part / whole : 0.0; }

static int nodes;     /* online nodes */
static int cpu_nodes; /* nodes with CPUs: 0..cpu_nodes-1 in the test VM */
static char why[512]; /* first failure */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (why[0]) return; /* the first failure is the one to read */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
}

/* Prints the figures line: the local share, remote frees, per-node KiB of
 * anonymous and hugetlb memory from numa_maps. */
static void print_figures(const char *case_name, double local)
{
    long kib[NT_MAX_NODES];
    char per_node[512];
    nt_numa_maps_kib(kib);
    nt_format_nodes(per_node, sizeof per_node, kib, nodes);
    long long rf = nt_remote_frees();
    char rf_text[32] = "-";
    if (rf >= 0) snprintf(rf_text, sizeof rf_text, "%lld", rf);
    printf("figures: case=%s local=%.4f remote_frees=%s numa_maps_kib=%s\n", case_name, local,
           rf_text, per_node);
}

static int finish(void)
{
    if (why[0]) {
        printf("result: FAIL %s\n", why);
        return NT_EXIT_FAIL;
    }
    printf("result: PASS\n");
    return NT_EXIT_PASS;
}

/* ---- a. one pinned thread per node -------------------------------------------- */

typedef struct local_arg_s {
    int node;
    pthread_barrier_t *start;
    long per_node[NT_MAX_NODES];
    long known;
    int ran_on;
} local_arg_t;

static void *local_thread(void *p)
{
    local_arg_t *a = p;
    if (nt_pin_to_node(a->node) != 0) perror("sched_setaffinity");
    a->ran_on = nt_current_node();
    pthread_barrier_wait(a->start);
    blocks_t b;
    blocks_alloc(&b, BLOCKS, 0x1234 + (uint64_t)a->node);
    a->known = blocks_where(&b, 0, b.count, a->per_node);
    /* Kept until the figures are printed: numa_maps must still see them. */
    pthread_barrier_wait(a->start);
    pthread_barrier_wait(a->start);
    blocks_free(&b);
    blocks_release(&b);
    return NULL;
}

static int case_local(void)
{
    pthread_t tid[NT_MAX_NODES];
    local_arg_t arg[NT_MAX_NODES];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)cpu_nodes + 1);
    for (int n = 0; n < cpu_nodes; n++) {
        arg[n] = (local_arg_t){.node = n, .start = &start};
        pthread_create(&tid[n], NULL, local_thread, &arg[n]);
    }
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&start);
    long local = 0, total = 0;
    for (int n = 0; n < cpu_nodes; n++) {
        char text[512];
        nt_format_nodes(text, sizeof text, arg[n].per_node, nodes);
        double s = share(arg[n].per_node[n], arg[n].known);
        printf("thread on node %d (cpu node %d): %ld pages: %s: %.2f%% local\n", n, arg[n].ran_on,
               arg[n].known, text, 100 * s);
        if (s < LOCAL_SHARE) fail("thread on node %d: only %.2f%% of its pages local", n, 100 * s);
        local += arg[n].per_node[n];
        total += arg[n].known;
    }
    print_figures("local", share(local, total));
    pthread_barrier_wait(&start);
    for (int n = 0; n < cpu_nodes; n++) pthread_join(tid[n], NULL);
    return finish();
}

/* ---- b. producer on node 0, consumer on node 1 -------------------------------- */

/* Producer and consumer are both fresh threads, pinned before their first
 * allocation: the allocator sees each on its node from the start (the main
 * thread already allocated, through stdio, before any pinning). */
typedef struct remote_s {
    blocks_t produced;        /* producer's first round, freed by the consumer */
    nt_pages_t first_pages;   /* pages of the first round */
    long first[NT_MAX_NODES]; /* first round per node */
    long first_known;
    long consumer[NT_MAX_NODES];
    long consumer_known;
    long second[NT_MAX_NODES]; /* producer's second round per node */
    long second_known;
    double reuse; /* share of second-round blocks on first-round pages */
    pthread_barrier_t step;
} remote_t;

static void *producer_thread(void *p)
{
    remote_t *r = p;
    nt_pin_to_node(0);
    blocks_alloc(&r->produced, BLOCKS, 0x9abc);
    for (size_t i = 0; i < r->produced.count; i++)
        nt_pages_add_range(&r->first_pages, r->produced.ptr[i], r->produced.size[i]);
    nt_pages_finish(&r->first_pages);
    r->first_known = nt_pages_where(&r->first_pages, r->first);
    pthread_barrier_wait(&r->step); /* hand the blocks over */
    pthread_barrier_wait(&r->step); /* consumer freed them and allocated its own */

    /* Allocating again, the producer should get back the memory the
     * consumer freed, still on node 0. */
    blocks_t again;
    blocks_alloc(&again, BLOCKS, 0x9abc);
    r->second_known = blocks_where(&again, 0, again.count, r->second);
    size_t reused = 0;
    for (size_t i = 0; i < again.count; i++) {
        uintptr_t page = (uintptr_t)again.ptr[i] & ~(NT_PAGE - 1);
        if (bsearch(&page, r->first_pages.page, r->first_pages.count, sizeof page, nt_cmp_uintptr))
            reused++;
    }
    r->reuse = (double)reused / (double)again.count;
    pthread_barrier_wait(&r->step); /* results ready */
    pthread_barrier_wait(&r->step); /* figures printed */
    blocks_free(&again);
    blocks_release(&again);
    return NULL;
}

static void *consumer_thread(void *p)
{
    remote_t *r = p;
    nt_pin_to_node(1);
    blocks_t warm;
    blocks_alloc(&warm, 16, 0x4242); /* the consumer has a heap of its own first */
    pthread_barrier_wait(&r->step);  /* producer done */
    blocks_free(&r->produced);       /* every one a remote free for the allocator */
    blocks_t mine;
    blocks_alloc(&mine, BLOCKS, 0x5678);
    r->consumer_known = blocks_where(&mine, 0, mine.count, r->consumer);
    pthread_barrier_wait(&r->step); /* consumer done */
    pthread_barrier_wait(&r->step); /* results ready */
    pthread_barrier_wait(&r->step); /* figures printed */
    blocks_free(&mine);
    blocks_release(&mine);
    blocks_free(&warm);
    blocks_release(&warm);
    return NULL;
}

static int case_remote(void)
{
    if (cpu_nodes < 2) {
        printf("result: SKIP needs two nodes with CPUs\n");
        return NT_EXIT_SKIP;
    }
    static remote_t r;
    pthread_barrier_init(&r.step, NULL, 3);
    pthread_t producer, consumer;
    pthread_create(&producer, NULL, producer_thread, &r);
    pthread_create(&consumer, NULL, consumer_thread, &r);
    pthread_barrier_wait(&r.step);
    pthread_barrier_wait(&r.step);
    pthread_barrier_wait(&r.step);

    char text[512];
    double first_local = share(r.first[0], r.first_known);
    nt_format_nodes(text, sizeof text, r.first, nodes);
    printf("producer (node 0), first round: %ld pages: %s: %.2f%% on node 0\n", r.first_known, text,
           100 * first_local);
    nt_format_nodes(text, sizeof text, r.consumer, nodes);
    double consumer_local = share(r.consumer[1], r.consumer_known);
    printf("consumer (node 1) after freeing them: %ld pages: %s: %.2f%% on node 1\n",
           r.consumer_known, text, 100 * consumer_local);
    nt_format_nodes(text, sizeof text, r.second, nodes);
    double producer_local = share(r.second[0], r.second_known);
    printf("producer (node 0), second round: %ld pages: %s: %.2f%% on node 0; "
           "%.2f%% of its blocks on pages of the first round\n",
           r.second_known, text, 100 * producer_local, 100 * r.reuse);
    if (first_local < LOCAL_SHARE)
        fail("producer's first blocks: only %.2f%% on node 0", 100 * first_local);
    if (consumer_local < LOCAL_SHARE)
        fail("consumer's blocks: only %.2f%% on node 1", 100 * consumer_local);
    if (producer_local < LOCAL_SHARE)
        fail("producer's second blocks: only %.2f%% on node 0", 100 * producer_local);
    if (r.reuse < 0.5) fail("producer reused only %.2f%% of the freed memory", 100 * r.reuse);
    long local = r.first[0] + r.consumer[1] + r.second[0];
    long total = r.first_known + r.consumer_known + r.second_known;
    print_figures("remote", share(local, total));
    pthread_barrier_wait(&r.step);
    pthread_join(producer, NULL);
    pthread_join(consumer, NULL);
    blocks_release(&r.produced);
    nt_pages_free(&r.first_pages);
    return finish();
}

/* ---- c. the process memory policy --------------------------------------------- */

static int case_policy(int argc, char **argv)
{
    if (argc < 3) return NT_EXIT_USAGE;
    const char *policy = argv[2];
    int target = argc > 3 ? atoi(argv[3]) : -1;
    int expected_mode = strcmp(policy, "bind") == 0         ? 2
                        : strcmp(policy, "preferred") == 0  ? 1
                        : strcmp(policy, "interleave") == 0 ? 3
                                                            : -1;
    if (expected_mode < 0 || (expected_mode != 3 && (target < 0 || target >= nodes)))
        return NT_EXIT_USAGE;
    int mode = nt_policy_mode();
    printf("process policy mode %d (expected %d from numactl)\n", mode, expected_mode);
    if (mode != expected_mode) {
        printf("result: FAIL the program does not run under the expected numactl policy\n");
        return NT_EXIT_FAIL;
    }

    /* One thread per node with CPUs, so that threads away from the policy's
     * node(s) are covered too. */
    pthread_t tid[NT_MAX_NODES];
    local_arg_t arg[NT_MAX_NODES];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)cpu_nodes + 1);
    for (int n = 0; n < cpu_nodes; n++) {
        arg[n] = (local_arg_t){.node = n, .start = &start};
        pthread_create(&tid[n], NULL, local_thread, &arg[n]);
    }
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&start);
    long sum[NT_MAX_NODES] = {0}, total = 0;
    for (int n = 0; n < cpu_nodes; n++) {
        char text[512];
        nt_format_nodes(text, sizeof text, arg[n].per_node, nodes);
        printf("thread on node %d: %ld pages: %s\n", n, arg[n].known, text);
        for (int k = 0; k < nodes; k++) sum[k] += arg[n].per_node[k];
        total += arg[n].known;
    }
    char text[512];
    nt_format_nodes(text, sizeof text, sum, nodes);
    double figure;
    if (expected_mode == 3) {
        double fair = (double)total / nodes, lo = 1e9, hi = 0;
        for (int k = 0; k < nodes; k++) {
            double r = sum[k] / fair;
            if (r < lo) lo = r;
            if (r > hi) hi = r;
        }
        printf("all threads: %ld pages: %s: per-node share %.2f..%.2f of an even split\n", total,
               text, lo, hi);
        if (lo < 0.5 || hi > 1.5) fail("interleave: per-node share %.2f..%.2f of even", lo, hi);
        figure = lo;
    } else {
        figure = share(sum[target], total);
        printf("all threads: %ld pages: %s: %.2f%% on node %d\n", total, text, 100 * figure,
               target);
        double need = expected_mode == 2 ? 1.0 : LOCAL_SHARE;
        if (figure < need)
            fail("%.2f%% on the policy's node, need %.0f%%", 100 * figure, 100 * need);
    }
    print_figures(expected_mode == 3   ? "interleave"
                  : expected_mode == 2 ? "membind"
                                       : "preferred",
                  figure);
    pthread_barrier_wait(&start);
    for (int n = 0; n < cpu_nodes; n++) pthread_join(tid[n], NULL);
    return finish();
}

/* ---- d. a thread that moves to another node ------------------------------------ */

/* Allocations after the move that may still come from the old node's
 * memory: the allocator notices a migration at its own pace. */
#define MIGRATE_GRACE 10000

static void *migrate_thread(void *p)
{
    int *rc = p;
    nt_pin_to_node(0);
    blocks_t before, grace, after;
    blocks_alloc(&before, BLOCKS, 0x1111);
    long where_before[NT_MAX_NODES];
    long known_before = blocks_where(&before, 0, before.count, where_before);
    nt_pin_to_node(1);
    int now = nt_current_node();
    blocks_alloc(&grace, MIGRATE_GRACE, 0x2222);
    blocks_alloc(&after, BLOCKS, 0x3333);
    long where_after[NT_MAX_NODES];
    long known_after = blocks_where(&after, 0, after.count, where_after);
    char text[512];
    nt_format_nodes(text, sizeof text, where_before, nodes);
    printf("on node 0: %ld pages: %s: %.2f%% on node 0\n", known_before, text,
           100 * share(where_before[0], known_before));
    nt_format_nodes(text, sizeof text, where_after, nodes);
    double after_local = share(where_after[1], known_after);
    printf("moved to node 1 (getcpu says node %d), after %d allocations: %ld pages: %s: "
           "%.2f%% on node 1\n",
           now, MIGRATE_GRACE, known_after, text, 100 * after_local);
    if (share(where_before[0], known_before) < LOCAL_SHARE)
        fail("before the move only %.2f%% on node 0", 100 * share(where_before[0], known_before));
    if (after_local < LOCAL_SHARE) fail("after the move only %.2f%% on node 1", 100 * after_local);
    print_figures("migrate", after_local);
    blocks_free(&before);
    blocks_free(&grace);
    blocks_free(&after);
    blocks_release(&before);
    blocks_release(&grace);
    blocks_release(&after);
    *rc = finish();
    return NULL;
}

/* In a fresh thread, so that its first allocation happens on node 0. */
static int case_migrate(void)
{
    if (cpu_nodes < 2) {
        printf("result: SKIP needs two nodes with CPUs\n");
        return NT_EXIT_SKIP;
    }
    int rc = NT_EXIT_USAGE;
    pthread_t tid;
    pthread_create(&tid, NULL, migrate_thread, &rc);
    pthread_join(tid, NULL);
    return rc;
}

/* ---- f. nodes of CPUs alone and nodes of memory alone ------------------------------ */

/* One pinned thread on every node with CPUs, memory or not: a thread on a
 * node without memory must get its blocks from the node with memory nearest
 * to it (by the distance table), and hugeslab must count no SuperSlab on a
 * node without memory. */
static int case_topology(void)
{
    pthread_t tid[NT_MAX_NODES];
    local_arg_t arg[NT_MAX_NODES];
    int on[NT_MAX_NODES], threads = 0, memless = 0;
    cpu_set_t cpus;
    for (int n = 0; n < nodes; n++)
        if (nt_node_cpus(n, &cpus) > 0) on[threads++] = n;
    for (int n = 0; n < nodes; n++) memless += !nt_node_has_memory(n);
    if (memless == 0) {
        printf("result: SKIP every node has memory: boot the VM with --memless\n");
        return NT_EXIT_SKIP;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        arg[i] = (local_arg_t){.node = on[i], .start = &start};
        pthread_create(&tid[i], NULL, local_thread, &arg[i]);
    }
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&start);
    long near = 0, total = 0;
    for (int i = 0; i < threads; i++) {
        char text[512];
        int expected = nt_nearest_memory_node(on[i]);
        nt_format_nodes(text, sizeof text, arg[i].per_node, nodes);
        double s = expected >= 0 ? share(arg[i].per_node[expected], arg[i].known) : 0;
        printf("thread on node %d (%s memory): %ld pages: %s: %.2f%% on node %d, the nearest "
               "with memory\n",
               on[i], nt_node_has_memory(on[i]) ? "with" : "without", arg[i].known, text, 100 * s,
               expected);
        if (s < LOCAL_SHARE)
            fail("thread on node %d: only %.2f%% of its pages on node %d", on[i], 100 * s,
                 expected);
        near += expected >= 0 ? arg[i].per_node[expected] : 0;
        total += arg[i].known;
    }
    void (*stats)(hugeslab_stats_t *) =
        (void (*)(hugeslab_stats_t *))dlsym(RTLD_DEFAULT, "hugeslab_stats");
    if (stats) {
        static hugeslab_stats_t st;
        stats(&st);
        for (int n = 0; n < nodes && n < HUGESLAB_STATS_MAX_NODES; n++) {
            printf("hugeslab: %llu SuperSlabs on node %d\n",
                   (unsigned long long)st.superslabs_by_node[n], n);
            if (!nt_node_has_memory(n) && st.superslabs_by_node[n])
                fail("hugeslab counts %llu SuperSlabs on node %d, which has no memory",
                     (unsigned long long)st.superslabs_by_node[n], n);
        }
    }
    print_figures("topology", share(near, total));
    pthread_barrier_wait(&start);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    return finish();
}

/* ---- e. hugetlb backing ----------------------------------------------------------- */

/* A figure of one hugepage size's pool, from that size's own sysfs files:
 * /proc/meminfo's HugePages_* describe the default size only. -1 unknown. */
static long pool_figure(const char *size_dir, const char *leaf)
{
    char path[256], buf[64];
    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/%s/%s", size_dir, leaf);
    return nt_read_file(path, buf, sizeof buf) < 0 ? -1 : atol(buf);
}

static long hugepages_free(int node)
{
    char path[128], buf[64];
    snprintf(path, sizeof path,
             "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages", node);
    return nt_read_file(path, buf, sizeof buf) < 0 ? -1 : atol(buf);
}

/* "Hugepagesize:" of /proc/meminfo in KiB: the default size. */
static long default_hugepage_kib(void)
{
    char buf[8192];
    if (nt_read_file("/proc/meminfo", buf, sizeof buf) < 0) return -1;
    const char *p = strstr(buf, "Hugepagesize:");
    return p ? atol(p + strlen("Hugepagesize:")) : -1;
}

/* The 1 GiB pool (x86-64's other hugepage size): hugeslab must leave it
 * alone, neither take nor promise one of its pages. */
typedef struct gigantic_pool_s {
    long total, free_pages, reserved; /* -1: no such pool in this kernel */
} gigantic_pool_t;

static gigantic_pool_t gigantic_pool_read(void)
{
    return (gigantic_pool_t){pool_figure("hugepages-1048576kB", "nr_hugepages"),
                             pool_figure("hugepages-1048576kB", "free_hugepages"),
                             pool_figure("hugepages-1048576kB", "resv_hugepages")};
}

/* The largest KernelPageSize among the process's mappings, in KiB. */
static long largest_kernel_page_kib(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[256];
    long largest = 0, kib;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "KernelPageSize: %ld kB", &kib) == 1 && kib > largest) largest = kib;
    fclose(f);
    return largest;
}

static uint64_t hugetlb_superslabs(void)
{
    void (*stats)(hugeslab_stats_t *) =
        (void (*)(hugeslab_stats_t *))dlsym(RTLD_DEFAULT, "hugeslab_stats");
    if (!stats) return 0;
    static hugeslab_stats_t st;
    stats(&st);
    return st.superslabs_hugetlb;
}

/* hugetlb: SuperSlabs on 2 MiB hugetlb pages of each thread's node, whatever
 * the default hugepage size (1 GiB with default_hugepagesz=1G).
 * "hugetlb none": no 2 MiB pool at all, so the blocks must come from THP or
 * base pages. Either way no other size's pool may lose or promise a page. */
static int case_hugetlb(int argc, char **argv)
{
    const char *backing = getenv("HUGESLAB_BACKING");
    bool expect_none = argc > 2 && strcmp(argv[2], "none") == 0;
    if (!backing || strcmp(backing, "hugetlb") != 0) {
        printf("result: SKIP run with HUGESLAB_BACKING=hugetlb\n");
        return NT_EXIT_SKIP;
    }
    long pool_2m = pool_figure("hugepages-2048kB", "nr_hugepages");
    printf("default hugepage size %ld kB; 2 MiB pool %ld pages\n", default_hugepage_kib(), pool_2m);
    if (expect_none != (pool_2m == 0)) {
        printf("result: FAIL the VM was booted with %ld 2 MiB pages, the case expects %s\n",
               pool_2m, expect_none ? "none" : "some");
        return NT_EXIT_FAIL;
    }
    long before[NT_MAX_NODES], after[NT_MAX_NODES];
    gigantic_pool_t giga_before = gigantic_pool_read(), giga_during, giga_after;
    for (int n = 0; n < nodes; n++) before[n] = hugepages_free(n);

    /* Blocks of the main thread, alive while the kernel is asked what
     * backs them. */
    blocks_t held;
    blocks_alloc(&held, BLOCKS, 0x7777);
    long largest_page = largest_kernel_page_kib();
    uint64_t hugetlb_held = hugetlb_superslabs();
    giga_during = gigantic_pool_read();
    printf("main thread's blocks: %llu hugetlb SuperSlabs, largest page in the process %ld kB\n",
           (unsigned long long)hugetlb_held, largest_page);
    if (largest_page > 2048) fail("a mapping of the process has %ld kB pages", largest_page);
    if (expect_none && hugetlb_held)
        fail("%llu hugetlb SuperSlabs without a 2 MiB pool", (unsigned long long)hugetlb_held);
    if (!expect_none && !hugetlb_held) fail("no hugetlb SuperSlab with a 2 MiB pool");

    int rc = case_local();
    blocks_free(&held);
    blocks_release(&held);
    for (int n = 0; n < nodes; n++) after[n] = hugepages_free(n);
    giga_after = gigantic_pool_read();
    long used_total = 0;
    for (int n = 0; n < nodes; n++) {
        printf("node %d: free 2 MiB hugepages %ld -> %ld\n", n, before[n], after[n]);
        used_total += before[n] - after[n];
    }
    printf("1 GiB pool: %ld pages, free %ld, reserved %ld; with blocks held: free %ld, "
           "reserved %ld; after: free %ld, reserved %ld\n",
           giga_before.total, giga_before.free_pages, giga_before.reserved, giga_during.free_pages,
           giga_during.reserved, giga_after.free_pages, giga_after.reserved);
    /* Nothing else in the test VM takes 1 GiB pages: one missing before the
     * first line of main() went to the allocator's start-up. */
    if (giga_before.free_pages + giga_before.reserved < giga_before.total)
        fail("1 GiB pages were taken before main(): %ld of %ld free", giga_before.free_pages,
             giga_before.total);
    if (giga_during.free_pages != giga_before.free_pages ||
        giga_during.reserved != giga_before.reserved ||
        giga_after.free_pages != giga_before.free_pages)
        fail("the 1 GiB pool was used: free %ld -> %ld, reserved %ld -> %ld",
             giga_before.free_pages, giga_during.free_pages, giga_before.reserved,
             giga_during.reserved);
    if (!expect_none && used_total <= 0)
        fail("no 2 MiB hugetlb page was taken: the backing is not in use");
    if (why[0]) return finish();
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s local|remote|policy MODE [NODE]|migrate|topology|hugetlb [none]\n",
                argv[0]);
        return NT_EXIT_USAGE;
    }
    nodes = nt_node_count();
    cpu_set_t cpus;
    while (cpu_nodes < nodes && nt_node_cpus(cpu_nodes, &cpus) > 0) cpu_nodes++;
    printf("%d node(s), %d with CPUs; case %s\n", nodes, cpu_nodes, argv[1]);
    if (nodes < 2) {
        printf("result: SKIP one NUMA node: nothing to place\n");
        return NT_EXIT_SKIP;
    }
    int rc = NT_EXIT_USAGE;
    if (strcmp(argv[1], "local") == 0)
        rc = case_local();
    else if (strcmp(argv[1], "remote") == 0)
        rc = case_remote();
    else if (strcmp(argv[1], "policy") == 0)
        rc = case_policy(argc, argv);
    else if (strcmp(argv[1], "migrate") == 0)
        rc = case_migrate();
    else if (strcmp(argv[1], "topology") == 0)
        rc = case_topology();
    else if (strcmp(argv[1], "hugetlb") == 0)
        rc = case_hugetlb(argc, argv);
    if (rc == NT_EXIT_USAGE) fprintf(stderr, "%s: bad arguments\n", argv[0]);
    return rc;
}

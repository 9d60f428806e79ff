/* bench_memory: how much memory an allocator holds on workloads that real
 * programs run, and how much it gives back once they go idle.
 *
 * Usage: bench_memory WORKLOAD [--threads=N] [--idle-ms=MS] [--seed=N] [--exact-peak]
 *
 * churn     threads come and go, 10 at a time, 50,000 in all; each frees
 *           the block the thread 1,000 before it left (a remote free into a
 *           slab whose thread is gone), allocates and frees 32 blocks of
 *           16-256 B, and leaves one 128-byte block alive: at most ~1,000
 *           live blocks (128 KiB) however many threads have lived.
 * large     32 slots, 160 steps: a step frees a random slot's block and puts
 *           a new one of 5-25 MiB there, writing one byte per 4 KiB page;
 *           about 32 live blocks (~480 MiB).
 * kv        a chained hash table filled with 400,000 entries (a 32-byte
 *           entry, a 16-48 B key, a 16-1024 B value), a fifth of the values
 *           replaced by values of another size, then everything freed, as a
 *           cache does on a flush.
 * small     what a short command does: 2,000 blocks of 16-256 B, a few
 *           buffers of 4-64 KiB, most of it freed again.
 * larson    Larson-style server: N threads (default 2) with 2,000 slots each
 *           of 8-1000 B; 20 rounds of 400,000 replacements per thread; after
 *           each round the threads exit and new ones take over the previous
 *           round's slots of another thread, freeing blocks allocated by a
 *           thread that is gone.
 * prodcons  N/2 producer/consumer pairs (default 1 pair): producers malloc
 *           4,000,000 blocks of 8-1000 B in all, consumers free them.
 * teardown  the main thread allocates 4,000,000 blocks of 16-256 B (a cache
 *           it builds), then waits in pthread_join while another thread
 *           frees them all in a random order (tears the cache down): every
 *           slab has blocks freed by another thread long before its last
 *           block is, while its owner sleeps.
 * crowd     1,000 threads alive at once, each holding 64 blocks of 16 B -
 *           2.2 KiB (one of each 35-byte step, written whole): 68 MiB of
 *           blocks in 64 classes' slabs in each thread's heap, as a server
 *           with a thread per connection holds them.
 * reuse     (not in the memory group) 256 MiB of 64-1024 B blocks, all
 *           freed, --pause-ms (default 0) of sleep, then the same again:
 *           refill_seconds and refill_faults say what coming back after that
 *           pause costs, for each stage idle memory goes through.
 *
 * After the work, everything is freed, and the program sleeps --idle-ms
 * (default 3000) before reading /proc/self/smaps_rollup: what an RSS monitor
 * shows for an idle program. Output, one line of key=value:
 *   ops_per_sec page_faults seconds: mallocs + frees over the work, faults
 *     (minor + major, every thread) during it, its wall time;
 *   cpu_seconds: user + system time of every thread (the allocator's own
 *     included) over the same work: on a machine shared with other jobs,
 *     the figure their load barely moves, where the wall time doubles;
 *   peak_rss_kb: VmHWM, read at the end; with --exact-peak the true peak:
 *     the program runs again under a tracer that reads its VmRSS at the
 *     entry of each system call that may release memory (bench/peak_trace.h:
 *     VmHWM misses up to the per-CPU counts' share of a peak that a release
 *     ended), the more of the tracer's figure (traced_kb) and VmHWM (hwm_kb,
 *     both printed). Each release waits a few microseconds for the tracer:
 *     churn's 80,000 releases of its threads' stacks take seconds more, and
 *     the time figures of a traced run are not the untraced program's;
 *   start_rss_kb: Rss when main() began (libraries, the program);
 *   freed_rss_kb: Rss right after everything was freed;
 *   idle_rss_kb idle_lazyfree_kb idle_anonhuge_kb: Rss, LazyFree and
 *     AnonHugePages of smaps_rollup after the idle time;
 *   malloc_from: the object that supplies malloc (checked by compare.py).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define BENCH_PROG "bench_memory"
#include "bench_common.h"
#include "peak_trace.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>

#define KiB 1024UL
#define MiB (1024UL * 1024UL)

struct rollup {
    long rss_kb, lazyfree_kb, anonhuge_kb;
};

/* smaps_rollup read into a stack buffer: stdio would allocate while the
 * figure is taken. Fields missing on an old kernel read as -1. */
static struct rollup read_rollup(void)
{
    struct rollup r = {-1, -1, -1};
    char buf[4096];
    if (read_proc_text("/proc/self/smaps_rollup", buf, sizeof buf) == 0) return r;
    r.rss_kb = proc_field(buf, "Rss");
    r.lazyfree_kb = proc_field(buf, "LazyFree");
    r.anonhuge_kb = proc_field(buf, "AnonHugePages");
    return r;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, BENCH_PROG ": malloc(%zu) failed\n", n);
        exit(1);
    }
    return p;
}

static void die(const char *what, int err)
{
    fprintf(stderr, BENCH_PROG ": %s failed: %s\n", what, strerror(err));
    exit(1);
}

static inline size_t rand_size(uint64_t *s, size_t lo, size_t hi)
{
    return lo + xorshift64s_next(s) % (uint32_t)(hi - lo + 1);
}

static uint64_t seed = 1;
static unsigned nthreads = 2;
static _Atomic uint64_t total_ops;

static void add_ops(uint64_t n) { atomic_fetch_add_explicit(&total_ops, n, memory_order_relaxed); }

static uint64_t seed_for(uint64_t stream)
{
    uint64_t s =
        (seed + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ (stream + 1) * UINT64_C(0xBF58476D1CE4E5B9);
    return s ? s : 1;
}

/* ---- churn ---------------------------------------------------------------- */

#define CHURN_TOTAL 50000
#define CHURN_BATCH 10
#define CHURN_RING 1000
#define CHURN_TEMPS 32

static void *churn_ring[CHURN_RING];

static void *churn_thread(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    uint64_t s = seed_for(i);
    void **slot = &churn_ring[i % CHURN_RING];
    free(*slot); /* the block of thread i - 1000, long gone */
    void *temps[CHURN_TEMPS];
    for (int k = 0; k < CHURN_TEMPS; k++) {
        temps[k] = xmalloc(rand_size(&s, 16, 256));
        *(volatile char *)temps[k] = (char)k;
    }
    for (int k = 0; k < CHURN_TEMPS; k++) free(temps[k]);
    char *keep = xmalloc(128);
    memset(keep, (int)i, 128);
    *slot = keep;
    add_ops(2 * CHURN_TEMPS + 2);
    return NULL;
}

static void run_churn(void)
{
    pthread_t t[CHURN_BATCH];
    for (uintptr_t i = 0; i < CHURN_TOTAL; i += CHURN_BATCH) {
        for (unsigned k = 0; k < CHURN_BATCH; k++) {
            int rc = pthread_create(&t[k], NULL, churn_thread, (void *)(i + k));
            if (rc != 0) die("pthread_create", rc);
        }
        for (unsigned k = 0; k < CHURN_BATCH; k++) pthread_join(t[k], NULL);
    }
}

static void free_churn(void)
{
    for (unsigned k = 0; k < CHURN_RING; k++) {
        free(churn_ring[k]);
        churn_ring[k] = NULL;
    }
}

/* ---- large ---------------------------------------------------------------- */

#define LARGE_SLOTS 32
#define LARGE_STEPS 160

static char *large_slot[LARGE_SLOTS];

static void run_large(void)
{
    uint64_t s = seed_for(0);
    for (unsigned step = 0; step < LARGE_STEPS; step++) {
        uint32_t k = xorshift64s_next(&s) % LARGE_SLOTS;
        if (large_slot[k]) {
            free(large_slot[k]);
            add_ops(1);
        }
        size_t size = rand_size(&s, 5 * MiB, 25 * MiB);
        char *p = xmalloc(size);
        for (size_t off = 0; off < size; off += 4096) p[off] = (char)off;
        large_slot[k] = p;
        add_ops(1);
    }
}

static void free_large(void)
{
    for (unsigned k = 0; k < LARGE_SLOTS; k++) {
        free(large_slot[k]);
        large_slot[k] = NULL;
    }
}

/* ---- kv -------------------------------------------------------------------- */

#define KV_ENTRIES 400000
#define KV_BUCKETS 524288 /* power of two */

struct kv_entry {
    struct kv_entry *next;
    char *key;
    char *value;
    size_t value_size;
};

static struct kv_entry **kv_table;

static uint64_t kv_hash(const char *key)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *key; key++) h = (h ^ (unsigned char)*key) * UINT64_C(1099511628211);
    return h;
}

static char *kv_value(uint64_t *s, size_t *size)
{
    *size = rand_size(s, 16, 1024);
    char *v = xmalloc(*size);
    memset(v, 'v', *size);
    return v;
}

static void run_kv(void)
{
    uint64_t s = seed_for(0);
    kv_table = calloc(KV_BUCKETS, sizeof *kv_table);
    if (kv_table == NULL) die("calloc", ENOMEM);
    add_ops(1);
    for (unsigned i = 0; i < KV_ENTRIES; i++) {
        size_t klen = rand_size(&s, 16, 48);
        char *key = xmalloc(klen);
        int n = snprintf(key, klen, "key:%u:", i);
        memset(key + n, 'k', klen - (size_t)n - 1);
        key[klen - 1] = '\0';
        struct kv_entry *e = xmalloc(sizeof *e);
        e->key = key;
        e->value = kv_value(&s, &e->value_size);
        uint64_t b = kv_hash(key) & (KV_BUCKETS - 1);
        e->next = kv_table[b];
        kv_table[b] = e;
        add_ops(3);
    }
    /* Updates: a fifth of the values get a new size. */
    for (uint64_t b = 0; b < KV_BUCKETS; b++) {
        for (struct kv_entry *e = kv_table[b]; e; e = e->next) {
            if (xorshift64s_next(&s) % 5 != 0) continue;
            free(e->value);
            e->value = kv_value(&s, &e->value_size);
            add_ops(2);
        }
    }
}

static void free_kv(void)
{
    for (uint64_t b = 0; b < KV_BUCKETS; b++) {
        struct kv_entry *e = kv_table[b];
        while (e) {
            struct kv_entry *next = e->next;
            free(e->key);
            free(e->value);
            free(e);
            add_ops(3);
            e = next;
        }
    }
    free(kv_table);
    kv_table = NULL;
}

/* ---- small ----------------------------------------------------------------- */

#define SMALL_BLOCKS 2000

static void *small_kept[SMALL_BLOCKS / 10];

static void run_small(void)
{
    uint64_t s = seed_for(0);
    void **blocks = xmalloc(SMALL_BLOCKS * sizeof *blocks);
    for (unsigned i = 0; i < SMALL_BLOCKS; i++) {
        blocks[i] = xmalloc(rand_size(&s, 16, 256));
        *(volatile char *)blocks[i] = 1;
    }
    void *buffers[4];
    for (unsigned i = 0; i < 4; i++) {
        size_t size = (size_t)4 * KiB << (i * 4 / 3);
        buffers[i] = xmalloc(size);
        memset(buffers[i], 0, size);
    }
    for (unsigned i = 0; i < 4; i++) free(buffers[i]);
    for (unsigned i = 0; i < SMALL_BLOCKS; i++) {
        if (i % 10 == 0)
            small_kept[i / 10] = blocks[i];
        else
            free(blocks[i]);
    }
    free(blocks);
    add_ops(2 * SMALL_BLOCKS + 8 + 2);
}

static void free_small(void)
{
    for (unsigned i = 0; i < SMALL_BLOCKS / 10; i++) {
        free(small_kept[i]);
        small_kept[i] = NULL;
    }
}

/* ---- larson ------------------------------------------------------------------ */

#define LARSON_SLOTS 2000
#define LARSON_ROUNDS 20
#define LARSON_STEPS 400000
#define LARSON_MIN 8
#define LARSON_MAX 1000

struct larson_arg {
    void **slots;
    uint64_t stream;
};

static void *larson_thread(void *arg)
{
    struct larson_arg *a = arg;
    uint64_t s = seed_for(a->stream);
    for (unsigned i = 0; i < LARSON_STEPS; i++) {
        uint32_t k = xorshift64s_next(&s) % LARSON_SLOTS;
        free(a->slots[k]);
        char *p = xmalloc(rand_size(&s, LARSON_MIN, LARSON_MAX));
        *(volatile char *)p = (char)i;
        a->slots[k] = p;
    }
    add_ops(2 * LARSON_STEPS);
    return NULL;
}

static void ***larson_arrays;

static void run_larson(void)
{
    uint64_t s = seed_for(UINT64_C(1) << 40);
    larson_arrays = xmalloc(nthreads * sizeof *larson_arrays);
    for (unsigned t = 0; t < nthreads; t++) {
        larson_arrays[t] = xmalloc(LARSON_SLOTS * sizeof(void *));
        for (unsigned k = 0; k < LARSON_SLOTS; k++)
            larson_arrays[t][k] = xmalloc(rand_size(&s, LARSON_MIN, LARSON_MAX));
    }
    pthread_t *th = xmalloc(nthreads * sizeof *th);
    struct larson_arg *args = xmalloc(nthreads * sizeof *args);
    for (unsigned r = 0; r < LARSON_ROUNDS; r++) {
        for (unsigned t = 0; t < nthreads; t++) {
            /* Round r's thread t works on what thread t + r of the first
             * round began with: every round frees blocks of exited threads. */
            args[t] = (struct larson_arg){larson_arrays[(t + r) % nthreads], r * nthreads + t};
            int rc = pthread_create(&th[t], NULL, larson_thread, &args[t]);
            if (rc != 0) die("pthread_create", rc);
        }
        for (unsigned t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    }
    free(th);
    free(args);
}

static void free_larson(void)
{
    for (unsigned t = 0; t < nthreads; t++) {
        for (unsigned k = 0; k < LARSON_SLOTS; k++) free(larson_arrays[t][k]);
        free(larson_arrays[t]);
    }
    free(larson_arrays);
    larson_arrays = NULL;
}

/* ---- prodcons ----------------------------------------------------------------- */

#define PC_TOTAL 4000000
#define PC_RING 1024 /* power of two */

struct pc_ring {
    alignas(64) _Atomic size_t head; /* consumer */
    alignas(64) _Atomic size_t tail; /* producer */
    alignas(64) void *items[PC_RING];
    uint64_t count; /* blocks this pair passes */
    uint64_t stream;
};

static void *pc_producer(void *arg)
{
    struct pc_ring *r = arg;
    uint64_t s = seed_for(r->stream);
    for (uint64_t i = 0; i < r->count; i++) {
        char *p = xmalloc(rand_size(&s, LARSON_MIN, LARSON_MAX));
        *(volatile char *)p = (char)i;
        size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (tail - atomic_load_explicit(&r->head, memory_order_acquire) == PC_RING)
            sched_yield();
        r->items[tail & (PC_RING - 1)] = p;
        atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    }
    return NULL;
}

static void *pc_consumer(void *arg)
{
    struct pc_ring *r = arg;
    for (uint64_t i = 0; i < r->count; i++) {
        size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        while (atomic_load_explicit(&r->tail, memory_order_acquire) == head) sched_yield();
        free(r->items[head & (PC_RING - 1)]);
        atomic_store_explicit(&r->head, head + 1, memory_order_release);
    }
    return NULL;
}

static void run_prodcons(void)
{
    unsigned pairs = nthreads / 2 ? nthreads / 2 : 1;
    struct pc_ring *rings = aligned_alloc(64, pairs * sizeof *rings);
    pthread_t *th = xmalloc(2 * pairs * sizeof *th);
    if (rings == NULL) die("aligned_alloc", ENOMEM);
    for (unsigned p = 0; p < pairs; p++) {
        memset(&rings[p], 0, sizeof rings[p]);
        rings[p].count = PC_TOTAL / pairs;
        rings[p].stream = p;
        int rc = pthread_create(&th[2 * p], NULL, pc_consumer, &rings[p]);
        if (rc == 0) rc = pthread_create(&th[2 * p + 1], NULL, pc_producer, &rings[p]);
        if (rc != 0) die("pthread_create", rc);
    }
    for (unsigned i = 0; i < 2 * pairs; i++) pthread_join(th[i], NULL);
    add_ops(2 * (uint64_t)(PC_TOTAL / pairs) * pairs);
    free(th);
    free(rings);
}

/* ---- teardown ---------------------------------------------------------------- */

#define TEARDOWN_BLOCKS 4000000
#define TEARDOWN_MIN 16
#define TEARDOWN_MAX 256

static void **teardown_blocks;

static void *teardown_freer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < TEARDOWN_BLOCKS; i++) free(teardown_blocks[i]);
    return NULL;
}

static void run_teardown(void)
{
    /* The pointers from mmap, outside the heap measured. */
    size_t bytes = TEARDOWN_BLOCKS * sizeof(void *);
    teardown_blocks = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (teardown_blocks == MAP_FAILED) die("mmap", errno);
    uint64_t s = seed_for(0);
    for (size_t i = 0; i < TEARDOWN_BLOCKS; i++) {
        char *p = xmalloc(rand_size(&s, TEARDOWN_MIN, TEARDOWN_MAX));
        *(volatile char *)p = (char)i;
        teardown_blocks[i] = p;
    }
    for (size_t i = TEARDOWN_BLOCKS - 1; i > 0; i--) {
        size_t j = (((uint64_t)xorshift64s_next(&s) << 32) | xorshift64s_next(&s)) % (i + 1);
        void *t = teardown_blocks[i];
        teardown_blocks[i] = teardown_blocks[j];
        teardown_blocks[j] = t;
    }
    pthread_t th;
    int rc = pthread_create(&th, NULL, teardown_freer, NULL);
    if (rc != 0) die("pthread_create", rc);
    pthread_join(th, NULL);
    add_ops(2 * (uint64_t)TEARDOWN_BLOCKS);
    munmap(teardown_blocks, bytes);
}

/* ---- crowd ------------------------------------------------------------------ */

#define CROWD_THREADS 1000
#define CROWD_BLOCKS 64 /* a thread's blocks: 16 B, then 35 B more each */
#define CROWD_STEP 35

static pthread_barrier_t crowd_all_hold; /* every thread holds its blocks */

static void *crowd_thread(void *arg)
{
    (void)arg;
    void *mine[CROWD_BLOCKS];
    for (size_t i = 0; i < CROWD_BLOCKS; i++) {
        size_t size = 16 + i * CROWD_STEP;
        mine[i] = xmalloc(size);
        memset(mine[i], (int)i, size);
    }
    pthread_barrier_wait(&crowd_all_hold);
    for (size_t i = 0; i < CROWD_BLOCKS; i++) free(mine[i]);
    return NULL;
}

static void run_crowd(void)
{
    pthread_barrier_init(&crowd_all_hold, NULL, CROWD_THREADS + 1);
    static pthread_t t[CROWD_THREADS];
    /* Small stacks: a thousand of the default 8 MiB reserve 8 GiB. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * KiB);
    for (size_t i = 0; i < CROWD_THREADS; i++) {
        int rc = pthread_create(&t[i], &attr, crowd_thread, NULL);
        if (rc != 0) die("pthread_create", rc);
    }
    pthread_barrier_wait(&crowd_all_hold);
    for (size_t i = 0; i < CROWD_THREADS; i++) pthread_join(t[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&crowd_all_hold);
    add_ops(2 * (uint64_t)CROWD_THREADS * CROWD_BLOCKS);
}

/* ---- reuse ------------------------------------------------------------------- */

#define REUSE_BYTES (256 * MiB)

static uint64_t pause_ms;
static double refill_seconds;
static long refill_faults;
static void **reuse_blocks;
static size_t reuse_count;

static double timeval_seconds(struct timeval t) { return (double)t.tv_sec + t.tv_usec * 1e-6; }

static void reuse_fill(void)
{
    uint64_t s = seed_for(0);
    size_t used = 0;
    reuse_count = 0;
    while (used < REUSE_BYTES) {
        size_t size = rand_size(&s, 64, 1024);
        char *p = xmalloc(size);
        memset(p, 1, size);
        reuse_blocks[reuse_count++] = p;
        used += size;
    }
    add_ops(reuse_count);
}

static void free_reuse(void)
{
    for (size_t i = 0; i < reuse_count; i++) free(reuse_blocks[i]);
    add_ops(reuse_count);
    reuse_count = 0;
}

static void run_reuse(void)
{
    /* At least REUSE_BYTES / 64 pointers; from mmap, outside the heap. */
    size_t bytes = REUSE_BYTES / 64 * sizeof(void *);
    reuse_blocks = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (reuse_blocks == MAP_FAILED) die("mmap", errno);
    reuse_fill();
    free_reuse();
    struct timespec pause = {(time_t)(pause_ms / 1000), (long)(pause_ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
    long f0 = page_faults_now();
    double t0 = now_seconds();
    reuse_fill();
    refill_seconds = now_seconds() - t0;
    refill_faults = page_faults_now() - f0;
}

static void free_nothing(void) {}

/* ---- main ------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
    void (*free_all)(void);
} workloads[] = {
    {"churn", run_churn, free_churn},
    {"large", run_large, free_large},
    {"kv", run_kv, free_kv},
    {"small", run_small, free_small},
    {"larson", run_larson, free_larson},
    {"prodcons", run_prodcons, free_nothing},
    {"teardown", run_teardown, free_nothing},
    {"crowd", run_crowd, free_nothing},
    {"reuse", run_reuse, free_reuse},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: " BENCH_PROG " churn|large|kv|small|larson|prodcons|teardown|crowd|reuse "
                 "[--threads=N] [--idle-ms=MS] [--pause-ms=MS] [--seed=N] [--exact-peak]\n");
}

/* The tracing parent of --exact-peak: runs this program again under the
 * tracer (BENCH_PEAK_TRACED set in its environment) and exits as it does. */
static int run_traced(char **argv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair", errno);
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) die("fork", errno);
    if (child == 0) {
        close(sv[0]);
        setenv("BENCH_PEAK_TRACED", "1", 1);
        if (peak_trace_child(sv[1]) != 0) {
            fprintf(stderr, BENCH_PROG ": --exact-peak: no seccomp notifications here: %s\n",
                    strerror(errno));
            _exit(126);
        }
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(sv[1]);
    peak_trace_t figures;
    int status = peak_trace_run(child, sv[0], &figures);
    if (status == -1) {
        fprintf(stderr, BENCH_PROG ": --exact-peak: the run could not be traced\n");
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    struct rollup start = read_rollup();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int w = -1;
    for (unsigned i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(argv[1], workloads[i].name) == 0) w = (int)i;
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (w < 0) {
        usage(stderr);
        return 2;
    }
    uint64_t idle_ms = 3000, threads = 2;
    bool exact = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--exact-peak") == 0) {
            exact = true;
        } else if (strncmp(a, "--threads=", 10) == 0) {
            if (parse_u64(a + 10, "thread count", &threads) != 0 || threads < 1 || threads > 256)
                return 2;
        } else if (strncmp(a, "--idle-ms=", 10) == 0) {
            if (parse_u64(a + 10, "idle time", &idle_ms) != 0) return 2;
        } else if (strncmp(a, "--pause-ms=", 11) == 0) {
            if (parse_u64(a + 11, "pause", &pause_ms) != 0) return 2;
        } else if (strncmp(a, "--seed=", 7) == 0) {
            if (parse_u64(a + 7, "seed", &seed) != 0) return 2;
        } else {
            usage(stderr);
            return 2;
        }
    }
    nthreads = (unsigned)threads;
    if (exact && !getenv("BENCH_PEAK_TRACED")) return run_traced(argv);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_seconds();
    workloads[w].run();
    workloads[w].free_all();
    double t1 = now_seconds();
    getrusage(RUSAGE_SELF, &ru1);
    struct rollup freed = read_rollup();

    struct timespec idle = {(time_t)(idle_ms / 1000), (long)(idle_ms % 1000) * 1000000L};
    while (nanosleep(&idle, &idle) != 0 && errno == EINTR) {
    }
    struct rollup after = read_rollup();
    long peak = peak_rss_kb(-1), hwm = peak, traced = -1;
    if (exact) {
        traced = peak_trace_mark();
        if (traced < 0) die("--exact-peak: no tracer's peak", EINVAL);
        if (traced > peak) peak = traced;
    }
    char exact_fields[64] = "";
    if (exact)
        snprintf(exact_fields, sizeof exact_fields, " hwm_kb=%ld traced_kb=%ld", hwm, traced);
    double secs = t1 - t0;
    double cpu = timeval_seconds(ru1.ru_utime) - timeval_seconds(ru0.ru_utime) +
                 timeval_seconds(ru1.ru_stime) - timeval_seconds(ru0.ru_stime);
    uint64_t ops = atomic_load(&total_ops);
    printf("ops_per_sec=%.0f page_faults=%ld peak_rss_kb=%ld seconds=%.6f start_rss_kb=%ld "
           "freed_rss_kb=%ld idle_rss_kb=%ld idle_lazyfree_kb=%ld idle_anonhuge_kb=%ld "
           "idle_ms=%" PRIu64 " workload=%s threads=%u refill_seconds=%.6f refill_faults=%ld "
           "cpu_seconds=%.6f%s malloc_from=%s\n",
           secs > 0 ? (double)ops / secs : 0.0,
           (ru1.ru_minflt - ru0.ru_minflt) + (ru1.ru_majflt - ru0.ru_majflt), peak, secs,
           start.rss_kb, freed.rss_kb, after.rss_kb, after.lazyfree_kb, after.anonhuge_kb, idle_ms,
           workloads[w].name, nthreads, refill_seconds, refill_faults, cpu, exact_fields,
           malloc_provider());
    return 0;
}

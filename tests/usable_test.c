/* Every byte malloc_usable_size reports is the program's, while pages are
 * given back around its blocks: each block is written to its usable size
 * and checked whole before it is freed or resized, and calloc's bytes read
 * zero. The sizes are those whose pages go back as the program runs: one
 * block of 48 KiB or more alone in its slab (given back at its free while
 * the heap is small), arrays that realloc grows in place and moves (the
 * small heap's give-back of what they leave), aligned blocks, and the
 * 528 B - 8 KiB classes that threads allocate and free into each other's
 * slabs (their slabs come back from the full list late once busy). And a
 * busy class's slab whose blocks were all freed must come back, and so
 * must the slabs whose blocks another thread freed, before a SuperSlab is
 * mapped, but none with a block in use.
 *
 * Usage: usable_test [small|busy|remote|threads SEED]: with no argument,
 * each phase in processes of its own: small (one thread, while the heap is
 * small; 8 seeds), busy (an 8 KiB slab of a SuperSlab's first unit, once
 * its class is busy), remote (1 KiB slabs that a second thread empties but
 * for one block in some), threads (a small heap shared by two threads,
 * then four threads that come and go as the heap grows past it). Run with
 * HUGESLAB_PURGE_DELAY_MS=0 HUGESLAB_RELEASE_DELAY_MS=0 too, so that the
 * purge thread works while the blocks around its pages live. */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <malloc.h>

#include "hugeslab.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>

#define MAGIC 0x6b1d5a7e0c3f9e21ULL
#define MIB ((size_t)1 << 20)

static atomic_ulong g_checked, g_ops;

static void die(const char *fmt, ...) HS_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL: usable: %s\n", buf);
    fflush(stderr);
    abort();
}

/* A block: word 0 its usable size ^ its address ^ MAGIC, word 1 the seed of
 * the pattern in the rest, up to its usable size. Any thread can check it
 * from the pointer alone. */
static void stamp(void *p, uint64_t seed)
{
    size_t usable = malloc_usable_size(p);
    if (usable < 16) die("malloc_usable_size(%p) = %zu", p, usable);
    uint64_t h[2] = {usable ^ (uint64_t)(uintptr_t)p ^ MAGIC, seed};
    memcpy(p, h, 16);
    hs_fill((char *)p + 16, usable - 16, seed);
}

/* Checks the first len bytes of a block stamped at orig with `usable`
 * bytes, now at p (len 0: all of them). Returns its usable size then. */
static size_t check_at(const void *p, uintptr_t orig, size_t usable, size_t len, const char *when)
{
    uint64_t h[2];
    memcpy(h, p, 16);
    if (h[0] != (usable ^ (uint64_t)orig ^ MAGIC))
        die("%s: block %p (stamped at %#lx, %zu usable) has a bad header %#llx", when, p,
            (unsigned long)orig, usable, (unsigned long long)h[0]);
    if (len == 0) len = usable;
    size_t off = hs_check_fill((const char *)p + 16, len - 16, h[1]);
    if (off != SIZE_MAX)
        die("%s: block %p (stamped at %#lx, %zu usable) lost byte %zu of %zu", when, p,
            (unsigned long)orig, usable, off + 16, len);
    atomic_fetch_add_explicit(&g_checked, len, memory_order_relaxed);
    return usable;
}

static size_t check(const void *p, const char *when)
{
    size_t usable = malloc_usable_size((void *)p);
    return check_at(p, (uintptr_t)p, usable, usable, when);
}

static void release(void *p)
{
    check(p, "free");
    free(p);
}

/* A block of n bytes by malloc, calloc (its n bytes read zero) or an
 * aligned call; stamped. */
static void *alloc_block(hs_rng_t *r, size_t n)
{
    uint64_t how = hs_rng_below(r, 10);
    void *p;
    if (how < 5) {
        p = malloc(n);
    } else if (how < 8) {
        p = calloc(1, n);
        if (p) {
            size_t off = hs_first_nonzero(p, n);
            if (off != SIZE_MAX) die("calloc(%zu) = %p: byte %zu not zero", n, p, off);
        }
    } else {
        size_t a = (size_t)32 << hs_rng_below(r, 12); /* 32 B .. 64 KiB */
        p = how == 8 ? aligned_alloc(a, (n + a - 1) & ~(a - 1)) : memalign(a, n);
        if (p && ((uintptr_t)p & (a - 1))) die("alignment %zu: %p", a, p);
    }
    if (!p) die("allocation of %zu bytes: %s", n, strerror(errno));
    if (malloc_usable_size(p) < n) die("malloc_usable_size(%p) < %zu", p, n);
    stamp(p, hs_rng_next(r));
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
    return p;
}

/* realloc to n: the first min(old usable, n) bytes kept; stamped again. */
static void *resize(hs_rng_t *r, void *p, size_t n)
{
    if (n < 16) n = 16;
    size_t usable = check(p, "before realloc");
    void *q = realloc(p, n);
    if (!q) die("realloc(%p, %zu): %s", p, n, strerror(errno));
    check_at(q, (uintptr_t)p, usable, n < usable ? n : usable, "after realloc");
    stamp(q, hs_rng_next(r));
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
    return q;
}

static size_t one_block_size(hs_rng_t *r) { return 33 * 1024 + hs_rng_below(r, 110 * 1024); }

/* ---- one thread, while the heap is small ----------------------------------- */

#define SMALL_LIVE 8
#define SMALL_RUNS 8

static void phase_small(uint64_t seed)
{
    hs_rng_t r;
    hs_rng_seed(&r, seed);
    void *live[SMALL_LIVE] = {0};
    /* An array grown and shrunk by realloc through the small heap, into a
     * run and back, among blocks of 33-143 KiB that come and go. */
    void *array = NULL;
    size_t array_n = 16 * 1024;
    for (unsigned round = 0; round < 2500; round++) {
        unsigned i = (unsigned)hs_rng_below(&r, SMALL_LIVE);
        uint64_t what = hs_rng_below(&r, 100);
        if (what < 8) {
            if (!array) {
                array = alloc_block(&r, array_n);
            } else {
                array_n = hs_rng_below(&r, 4) ? array_n + array_n / 4 + hs_rng_below(&r, 4096)
                                              : array_n / 2 + hs_rng_below(&r, array_n / 3);
                if (array_n > 640 * 1024) array_n = 16 * 1024;
                array = resize(&r, array, array_n);
            }
        } else if (what < 10 && array) {
            release(array);
            array = NULL;
            array_n = 16 * 1024 + hs_rng_below(&r, 64 * 1024);
        } else if (!live[i]) {
            size_t n = hs_rng_below(&r, 3) ? one_block_size(&r) : 16 + hs_rng_below(&r, 16 * 1024);
            live[i] = alloc_block(&r, n);
        } else if (what < 25) {
            size_t n = malloc_usable_size(live[i]);
            n = hs_rng_below(&r, 2) ? n + hs_rng_below(&r, n) + 1 : n / 3 + hs_rng_below(&r, n / 2);
            live[i] = resize(&r, live[i], n);
        } else {
            release(live[i]);
            live[i] = NULL;
        }
        /* What the frees and resizes gave back lay beside these. */
        if (round % 16 == 0) {
            for (unsigned j = 0; j < SMALL_LIVE; j++)
                if (live[j]) check(live[j], "kept");
            if (array) check(array, "kept");
        }
    }
    for (unsigned j = 0; j < SMALL_LIVE; j++)
        if (live[j]) release(live[j]);
    if (array) release(array);
}

/* ---- threads ------------------------------------------------------------------- */

#define SLOTS 512
#define LOCAL 64

static _Atomic(uintptr_t) g_slots[SLOTS];

typedef struct {
    uint64_t seed;
    unsigned long ops;
    bool small; /* blocks for a heap that stays small */
} worker_arg_t;

static size_t thread_size(hs_rng_t *r, bool small)
{
    uint64_t x = hs_rng_below(r, 100);
    if (x < 60) return 528 + hs_rng_below(r, 8192 - 528 + 1); /* the busy classes */
    if (x < 80) return 16 + hs_rng_below(r, 512);
    if (x < 99 || small) return one_block_size(r);
    return 256 * 1024 + hs_rng_below(r, 2 * MIB);
}

static void *worker(void *argp)
{
    const worker_arg_t *a = argp;
    hs_rng_t r;
    hs_rng_seed(&r, a->seed);
    void *local[LOCAL] = {0};
    unsigned local_n = a->small ? LOCAL / 4 : LOCAL;
    for (unsigned long op = 0; op < a->ops; op++) {
        unsigned i = (unsigned)hs_rng_below(&r, local_n);
        uint64_t what = hs_rng_below(&r, 100);
        if (!local[i]) {
            local[i] = alloc_block(&r, thread_size(&r, a->small));
        } else if (what < 40) {
            release(local[i]);
            local[i] = NULL;
        } else if (what < 50) {
            size_t n = malloc_usable_size(local[i]);
            n = hs_rng_below(&r, 2) ? n + hs_rng_below(&r, n) + 1 : n / 3 + hs_rng_below(&r, n / 2);
            if (n > 3 * MIB) n = 4096;
            local[i] = resize(&r, local[i], n);
        } else {
            /* To whichever thread looks at this slot next: most frees of
             * these blocks are remote ones. */
            unsigned s = (unsigned)hs_rng_below(&r, SLOTS);
            void *got = (void *)atomic_exchange(&g_slots[s], (uintptr_t)local[i]);
            local[i] = got;
            if (got) {
                check(got, "handed over");
                if (hs_rng_below(&r, 2)) {
                    release(got);
                    local[i] = NULL;
                }
            }
        }
    }
    /* Half freed here; the rest outlive the thread, in the slots. */
    for (unsigned i = 0; i < local_n; i++) {
        if (!local[i]) continue;
        if (i & 1) {
            release(local[i]);
        } else {
            void *got =
                (void *)atomic_exchange(&g_slots[hs_rng_below(&r, SLOTS)], (uintptr_t)local[i]);
            if (got) release(got);
        }
    }
    return NULL;
}

static void run_workers(unsigned at_once, unsigned generations, unsigned long ops, bool small,
                        uint64_t seed)
{
    pthread_t th[8];
    worker_arg_t args[8];
    unsigned gen = 0;
    for (unsigned i = 0; i < at_once; i++) {
        args[i] = (worker_arg_t){seed + gen++, ops, small};
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) die("pthread_create");
    }
    /* Each worker replaced as it ends: the blocks it left are freed by the
     * others, into slabs of a heap whose thread is gone. */
    for (unsigned i = 0; gen < generations * at_once; i = (i + 1) % at_once) {
        pthread_join(th[i], NULL);
        args[i] = (worker_arg_t){seed + gen++, ops, small};
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) die("pthread_create");
        /* The main thread's own blocks meanwhile: trimmed and checked. */
        if (gen % 7 == 0) malloc_trim(0);
    }
    for (unsigned i = 0; i < at_once; i++) pthread_join(th[i], NULL);
    for (unsigned s = 0; s < SLOTS; s++) {
        void *p = (void *)atomic_exchange(&g_slots[s], 0);
        if (p) release(p);
    }
}

/* ---- a busy class's slab of the SuperSlab's first unit ------------------------ */

static pthread_mutex_t g_park = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_parked;

/* A second thread with a heap, parked: a class turns busy only while two
 * threads or more have one. */
static void *parked(void *arg)
{
    (void)arg;
    free(malloc(64));
    atomic_store(&g_parked, 1);
    pthread_mutex_lock(&g_park);
    pthread_mutex_unlock(&g_park);
    return NULL;
}

/* All zero when the library has no hugeslab_stats. */
static void read_stats(hugeslab_stats_t *s)
{
    static void (*stats)(hugeslab_stats_t *);
    if (!stats) stats = (void (*)(hugeslab_stats_t *))dlsym(RTLD_DEFAULT, "hugeslab_stats");
    memset(s, 0, sizeof *s);
    if (stats) stats(s);
}

static uint64_t bytes_in_slabs(void)
{
    hugeslab_stats_t s;
    read_stats(&s);
    return s.bytes_in_slabs;
}

#define SS_BYTES ((uintptr_t)2 << 20)
#define BUSY_MAX 600

/* An 8 KiB block's slab of one unit, the first of its SuperSlab, holds two
 * blocks (the header and slab table take 8,768 bytes of that unit). Once
 * its class is busy, such a slab goes to the full list to come back with a
 * quarter of its blocks free: half a block, which must still be one, or
 * the owner's frees never bring it back, and the slab, empty, keeps its
 * SuperSlab while the thread lives. Returns 0, or 1 when that happened. */
static int phase_busy(void)
{
    pthread_t other;
    pthread_mutex_lock(&g_park);
    if (pthread_create(&other, NULL, parked, NULL) != 0) die("pthread_create");
    while (!atomic_load(&g_parked)) sched_yield();
    /* Past the small heap, whose slabs are cut one block each: 4 MiB
     * touched, then freed. */
    static char *big[128], *blocks[BUSY_MAX];
    for (unsigned i = 0; i < 128; i++) {
        big[i] = malloc(32 * 1024);
        if (!big[i]) die("malloc: %s", strerror(errno));
        memset(big[i], 1, 32 * 1024);
    }
    for (unsigned i = 0; i < 128; i++) free(big[i]);
    /* 8 KiB blocks until a slab is cut at a SuperSlab's first unit. */
    char *first = NULL;
    unsigned n = 0;
    while (n < BUSY_MAX && !first) {
        char *p = malloc(8192);
        if (!p) die("malloc: %s", strerror(errno));
        blocks[n++] = p;
        if (((uintptr_t)p & (SS_BYTES - 1)) < 32 * 1024) first = p;
    }
    int stranded = 0;
    if (!first) {
        hs_note("busy: no 8 KiB slab at a SuperSlab's first unit (%u blocks)", n);
    } else {
        /* Its two blocks: the slab made its trip to the full list as it ran
         * out. Each freed and taken again makes one more, the class busy
         * from the first on. */
        char *second = malloc(8192);
        if (!second || second != first + 8192) {
            hs_note("busy: the slab's second block is %p, not %p", (void *)second,
                    (void *)(first + 8192));
            free(second);
        } else {
            for (unsigned trip = 0; trip < 3; trip++) {
                free(second);
                /* Taken again once the slabs after it ran out. */
                static char *taken[BUSY_MAX];
                unsigned k = 0;
                char *p = NULL;
                while (k < BUSY_MAX && (p = malloc(8192)) != second) {
                    if (!p) die("malloc: %s", strerror(errno));
                    taken[k++] = p;
                }
                for (unsigned i = 0; i < k; i++) free(taken[i]);
                if (p != second) {
                    hs_note("busy: trip %u: the slab's freed block never came back (%u blocks)",
                            trip, k);
                    stranded = 1;
                    break;
                }
                /* Out of blocks again: to the full list at the next refill. */
                free(malloc(8192));
            }
            uint64_t before = bytes_in_slabs();
            free(first);
            if (!stranded) free(second);
            uint64_t after = bytes_in_slabs();
            hs_note("busy: slab at %p: slab bytes %llu -> %llu as its blocks were freed",
                    (void *)first, (unsigned long long)before, (unsigned long long)after);
            stranded |= after >= before;
        }
    }
    for (unsigned i = 0; i < n; i++)
        if (blocks[i] != first) free(blocks[i]);
    pthread_mutex_unlock(&g_park);
    pthread_join(other, NULL);
    return stranded;
}

/* ---- slabs emptied by another thread, released before a SuperSlab comes ----- */

#define REMOTE_SIZE 1000 /* the 1 KiB class: slabs of one unit, 32 blocks */
#define REMOTE_SLABS 13  /* of it; the last stays its current slab */
#define REMOTE_MAX 1024  /* blocks of it, at most */
#define REMOTE_PIN 3     /* every third of the others keeps a block in use */
#define FILL_SIZE 8000   /* the 8 KiB class, which fills SuperSlabs */
#define FILL_MAX 600     /* of it, at most: more than two SuperSlabs hold */

typedef struct {
    char **blocks;
    unsigned n;
} handed_t;

/* A block of the remote phase, stamped: no calloc nor alignment here, so
 * that each size keeps to its class. */
static char *remote_block(size_t n, uint64_t seed)
{
    char *p = malloc(n);
    if (!p) die("malloc(%zu): %s", n, strerror(errno));
    stamp(p, seed);
    atomic_fetch_add_explicit(&g_ops, 1, memory_order_relaxed);
    return p;
}

static void *free_handed(void *arg)
{
    const handed_t *h = arg;
    for (unsigned i = 0; i < h->n; i++) release(h->blocks[i]);
    return NULL;
}

/* Remote frees: by a thread that never allocates, so has no heap. */
static void free_on_other_thread(char **blocks, unsigned n)
{
    handed_t h = {blocks, n};
    pthread_t t;
    if (pthread_create(&t, NULL, free_handed, &h) != 0) die("pthread_create");
    pthread_join(t, NULL);
}

typedef struct {
    uintptr_t from, to;
} range_t;

static int by_start(const void *a, const void *b)
{
    uintptr_t x = ((const range_t *)a)->from, y = ((const range_t *)b)->from;
    return x < y ? -1 : x > y;
}

/* Slabs of one thread whose blocks another thread freed wait on their
 * remote-free stacks: no refill of their class takes them while the thread
 * allocates other sizes, and they go back only when the segment layer is
 * about to map a SuperSlab (release_remote_emptied in tiny.c). Those of
 * them that keep a block in use must stay, with the block's bytes, and not
 * hand it out again. Returns 0, or 1 when no slab went back before a
 * SuperSlab was mapped, or more went back than the emptied slabs. */
static int phase_remote(void)
{
    static char *blocks[REMOTE_MAX], *handed[REMOTE_MAX], *filler[FILL_MAX], *again[REMOTE_MAX];
    static int slab[REMOTE_MAX]; /* of each block: its index, -1 for one made before */
    static unsigned first_of[REMOTE_SLABS], pinned_at[REMOTE_SLABS];
    static uint64_t slab_bytes[REMOTE_SLABS];
    static range_t live[REMOTE_MAX + FILL_MAX + REMOTE_MAX + 1];
    hugeslab_stats_t st;
    read_stats(&st);
    uint64_t in_slabs = st.bytes_in_slabs;
    /* Blocks until the last slab is cut: a new slab shows as bytes_in_slabs
     * growing, and it holds the block malloc returned then. */
    unsigned n = 0;
    int slabs = 0;
    while (slabs < REMOTE_SLABS) {
        if (n == REMOTE_MAX) die("remote: %d slabs of %d B in %u blocks", slabs, REMOTE_SIZE, n);
        char *p = remote_block(REMOTE_SIZE, 7000 + n);
        read_stats(&st);
        if (st.bytes_in_slabs > in_slabs) {
            slab_bytes[slabs] = st.bytes_in_slabs - in_slabs;
            first_of[slabs++] = n;
        }
        in_slabs = st.bytes_in_slabs;
        slab[n] = slabs - 1;
        blocks[n++] = p;
    }
    /* Every slab but the current one ran out: on the full list. Each gets
     * one remote free, which waits on this thread's delayed list as a
     * notice; malloc_trim takes the notices, and the slabs go back to the
     * partial list. Else the other thread's last free into each would
     * release it (reclaim_empty), and this path would not be the one. */
    unsigned n_handed = 0;
    uint64_t emptied = 0;
    for (int j = 0; j + 1 < REMOTE_SLABS; j++) {
        unsigned end = first_of[j + 1], mid = (first_of[j] + end) / 2;
        pinned_at[j] = j % REMOTE_PIN == 1 ? mid : UINT32_MAX;
        if (pinned_at[j] == UINT32_MAX) emptied += slab_bytes[j];
        handed[n_handed++] = blocks[first_of[j]];
        blocks[first_of[j]] = NULL;
    }
    free_on_other_thread(handed, n_handed);
    malloc_trim(0);
    /* Then the other thread frees all the rest of them but the pinned
     * blocks: onto the slabs' remote-free stacks. */
    n_handed = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!blocks[i] || slab[i] < 0 || slab[i] + 1 == REMOTE_SLABS || pinned_at[slab[i]] == i)
            continue;
        handed[n_handed++] = blocks[i];
        blocks[i] = NULL;
    }
    free_on_other_thread(handed, n_handed);
    /* Blocks of another class until a SuperSlab is mapped: before it, the
     * emptied slabs go back, bytes_in_slabs falling by their size less the
     * new slab's. */
    read_stats(&st);
    uint64_t mapped = st.superslabs_mapped, dropped = 0, grown = 0;
    in_slabs = st.bytes_in_slabs;
    unsigned n_fill = 0;
    while (n_fill < FILL_MAX && !dropped) {
        filler[n_fill] = remote_block(FILL_SIZE, 9000 + n_fill);
        n_fill++;
        read_stats(&st);
        if (st.bytes_in_slabs < in_slabs) dropped = in_slabs - st.bytes_in_slabs;
        if (st.bytes_in_slabs > in_slabs) grown = st.bytes_in_slabs - in_slabs;
        in_slabs = st.bytes_in_slabs;
        if (!dropped && st.superslabs_mapped > mapped) break;
    }
    int failed = 0;
    hs_note("remote: %d slabs of %d B, %llu bytes of them emptied; %u blocks of %d B: "
            "slab bytes fell by %llu (a new slab %llu), SuperSlabs %llu -> %llu",
            REMOTE_SLABS, REMOTE_SIZE, (unsigned long long)emptied, n_fill, FILL_SIZE,
            (unsigned long long)dropped, (unsigned long long)grown, (unsigned long long)mapped,
            (unsigned long long)st.superslabs_mapped);
    if (!dropped) {
        hs_note("remote: no slab went back before a SuperSlab was mapped");
        failed = 1;
    } else if (dropped > emptied) {
        hs_note("remote: %llu bytes of slabs went back, the emptied ones hold %llu",
                (unsigned long long)dropped, (unsigned long long)emptied);
        failed = 1;
    }
    /* The units that went back serve again, and the pinned slabs' free
     * blocks too: as many blocks of each class as the emptied slabs held,
     * and more, none of them on a block in use. */
    unsigned n_again = 0;
    for (uint64_t b = 0; b < emptied + 64 * 1024 && n_fill < FILL_MAX; b += FILL_SIZE) {
        filler[n_fill] = remote_block(FILL_SIZE, 9000 + n_fill);
        n_fill++;
    }
    for (; n_again < n; n_again++) again[n_again] = remote_block(REMOTE_SIZE, 11000 + n_again);
    unsigned n_live = 0;
    for (unsigned i = 0; i < n; i++)
        if (blocks[i]) live[n_live++] = (range_t){(uintptr_t)blocks[i], 0};
    for (unsigned i = 0; i < n_fill; i++) live[n_live++] = (range_t){(uintptr_t)filler[i], 0};
    for (unsigned i = 0; i < n_again; i++) live[n_live++] = (range_t){(uintptr_t)again[i], 0};
    for (unsigned i = 0; i < n_live; i++)
        live[i].to = live[i].from + check((void *)live[i].from, "kept beside released slabs");
    qsort(live, n_live, sizeof *live, by_start);
    for (unsigned i = 1, last = 0; i < n_live; i++) {
        if (live[i].from < live[last].to)
            die("remote: block %#lx (%lu bytes) handed out over live %#lx (%lu bytes)",
                (unsigned long)live[i].from, (unsigned long)(live[i].to - live[i].from),
                (unsigned long)live[last].from, (unsigned long)(live[last].to - live[last].from));
        if (live[i].to > live[last].to) last = i;
    }
    for (unsigned i = 0; i < n_live; i++) release((void *)live[i].from);
    return failed;
}

/* A phase in a process of its own, started afresh: the small heap is a
 * process's first. */
static void spawn(const char *phase, uint64_t seed)
{
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl("/proc/self/exe", "usable_test", phase, seed_text, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("%s phase, seed %s: status %#x", phase, seed_text, status);
}

static void print_stats(const char *phase)
{
    /* What went back at once, where the library says: the phase's reach. */
    hugeslab_stats_t s;
    read_stats(&s);
    fprintf(stderr,
            "usable: %s: %lu blocks allocated or resized, %.1f MiB checked; %llu KiB given back "
            "at once in %llu calls\n",
            phase, (unsigned long)atomic_load(&g_ops), (double)atomic_load(&g_checked) / MIB,
            (unsigned long long)s.bytes_purged_at_once / 1024,
            (unsigned long long)s.purge_calls_at_once);
}

int main(int argc, char **argv)
{
    int on_hugeslab = hs_setup("usable");
    if (argc == 3) {
        uint64_t seed = strtoull(argv[2], NULL, 10);
        if (strcmp(argv[1], "small") == 0) {
            phase_small(seed);
        } else if (strcmp(argv[1], "busy") == 0) {
            if (on_hugeslab && phase_busy())
                die("busy: a slab whose blocks were all freed stayed on the full list");
        } else if (strcmp(argv[1], "remote") == 0) {
            if (on_hugeslab && phase_remote())
                die("remote: slabs emptied by another thread went back wrong (see above)");
        } else if (strcmp(argv[1], "threads") == 0) {
            run_workers(2, 3, 4000, true, seed);
            run_workers(4, 4, 6000, false, seed + 100);
        } else {
            fprintf(stderr, "usage: %s [small|busy|remote|threads SEED]\n", argv[0]);
            return 2;
        }
        print_stats(argv[1]);
        return 0;
    }
    for (uint64_t seed = 1; seed <= SMALL_RUNS; seed++) spawn("small", seed);
    spawn("busy", 0);
    spawn("remote", 0);
    spawn("threads", 1000);
    return hs_finish("usable");
}

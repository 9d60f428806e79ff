/* Multithreaded stress: workers do random malloc/calloc/realloc/aligned_alloc/
 * free over mixed sizes, every block carries a pattern derived from its
 * address and size that is checked at free and after realloc, and blocks
 * travel between threads through lock-free exchange slots, so that most frees
 * of shared blocks are cross-thread.  Workers exit after a number of
 * operations and are replaced, so heaps of dead threads get freed into and
 * reused.
 *
 * Usage: stress_test [threads=8] [total_ops=1500000] [ops_per_worker=15000]
 * Builds: stress_test (standard names, run under LD_PRELOAD), and with
 * -DHS_PREFIX the hugeslab_* names (stress_tsan, stress_ubsan).
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>

#ifdef HS_PREFIX
#include "hugeslab.h"
#define HS(f) hugeslab_##f
#else
#include <malloc.h>
#define HS(f) f
#endif

#define NSLOTS 1024
#define LOCAL 256
#define MAGIC 0x5eedfacecafebeefULL

static _Atomic(uintptr_t) g_slots[NSLOTS];
static atomic_ulong g_ops, g_cross, g_bytes_checked;
static atomic_int g_bad;

/* Block layout: word0 = size, word1 = size ^ addr ^ MAGIC, then the pattern
 * seeded by addr ^ size.  Minimum size 16. */
static uint64_t seed_of(uintptr_t p, size_t n) { return ((uint64_t)p) ^ ((uint64_t)n << 32) ^ n; }

static void stamp(void *p, size_t n)
{
    uint64_t h[2] = {n, n ^ (uint64_t)(uintptr_t)p ^ MAGIC};
    memcpy(p, h, 16);
    hs_fill((char *)p + 16, n - 16, seed_of((uintptr_t)p, n));
}

static void die(const char *fmt, ...) HS_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL: stress: %s\n", buf);
    fflush(stderr);
    atomic_store(&g_bad, 1);
    abort();
}

/* Verifies the first `len` bytes (len <= size) of a block stamped at `orig`
 * with size n, now living at p.  Returns n. */
static size_t verify(const void *p, uintptr_t orig, size_t n, size_t len, const char *when)
{
    uint64_t h[2];
    memcpy(h, p, 16);
    if (h[0] != n || h[1] != (n ^ (uint64_t)orig ^ MAGIC))
        die("%s: header of block %p (orig %#lx, size %zu) corrupted: %#llx %#llx", when, p,
            (unsigned long)orig, n, (unsigned long long)h[0], (unsigned long long)h[1]);
    if (len > 16) {
        size_t off = hs_check_fill((const char *)p + 16, len - 16, seed_of(orig, n));
        if (off != SIZE_MAX)
            die("%s: block %p (orig %#lx, size %zu) corrupted at offset %zu", when, p,
                (unsigned long)orig, n, off + 16);
    }
    atomic_fetch_add_explicit(&g_bytes_checked, len, memory_order_relaxed);
    return n;
}

static size_t header_size(const void *p)
{
    uint64_t n;
    memcpy(&n, p, 8);
    return (size_t)n;
}

static size_t pick_size(hs_rng_t *r)
{
    uint64_t x = hs_rng_below(r, 10000);
    if (x < 9000) /* 90%: 16 .. 1024 */
        return 16 + (size_t)hs_rng_below(r, 1009);
    if (x < 9700) /* 7%: 1 KiB .. 16 KiB */
        return 1024 + (size_t)hs_rng_below(r, 15 * 1024);
    if (x < 9995) /* ~3%: up to 256 KiB */
        return 16384 + (size_t)hs_rng_below(r, 240 * 1024);
    return (3u << 20) + (size_t)hs_rng_below(r, 4096); /* rare: 3 MiB */
}

static void release(void *p)
{
    size_t n = header_size(p);
    verify(p, (uintptr_t)p, n, n, "free");
    HS(free)(p);
}

static void *alloc_block(hs_rng_t *r)
{
    size_t n = pick_size(r);
    uint64_t how = hs_rng_below(r, 100);
    void *p;
    if (how < 70) {
        p = HS(malloc)(n);
    } else if (how < 90) {
        p = HS(calloc)(1, n);
        if (p) {
            size_t off = hs_first_nonzero(p, n);
            if (off != SIZE_MAX) die("calloc(%zu) = %p: byte %zu not zero", n, p, off);
        }
    } else {
        size_t a = (size_t)16 << hs_rng_below(r, 9); /* 16 .. 4096 */
        n = (n + a - 1) & ~(a - 1);
        p = HS(aligned_alloc)(a, n);
        if (p && ((uintptr_t)p & (a - 1))) die("aligned_alloc(%zu, %zu) = %p misaligned", a, n, p);
    }
    if (!p) die("allocation of %zu bytes failed: %s", n, strerror(errno));
    if (((uintptr_t)p & 15) != 0) die("block %p of %zu bytes is not 16-byte aligned", p, n);
    if ((hs_rng_next(r) & 63) == 0 && HS(malloc_usable_size)(p) < n)
        die("malloc_usable_size(%p) = %zu < %zu", p, HS(malloc_usable_size)(p), n);
    stamp(p, n);
    return p;
}

static void *do_realloc(hs_rng_t *r, void *p)
{
    size_t n = header_size(p);
    uintptr_t orig = (uintptr_t)p;
    verify(p, orig, n, n, "before realloc");
    size_t m = (hs_rng_next(r) & 1) ? pick_size(r) : n / 2 + 16 + (size_t)hs_rng_below(r, n + 1);
    void *q = HS(realloc)(p, m);
    if (!q) die("realloc(%#lx, %zu -> %zu) failed: %s", (unsigned long)orig, n, m, strerror(errno));
    /* the prefix still carries the old stamp (old address, old size) */
    size_t keep = n < m ? n : m;
    if (keep >= 16) verify(q, orig, n, keep, "after realloc");
    stamp(q, m);
    return q;
}

typedef struct {
    int id;
    unsigned long ops;
    unsigned gen;
} worker_arg_t;

static void *worker(void *argp)
{
    worker_arg_t *a = argp;
    hs_rng_t r;
    hs_rng_seed(&r, ((uint64_t)a->gen << 20) ^ (uint64_t)a->id);
    void *local[LOCAL];
    memset(local, 0, sizeof local);
    unsigned long cross = 0;

    for (unsigned long op = 0; op < a->ops; op++) {
        unsigned i = (unsigned)hs_rng_below(&r, LOCAL);
        if (!local[i]) {
            local[i] = alloc_block(&r);
            continue;
        }
        uint64_t what = hs_rng_below(&r, 100);
        if (what < 45) {
            release(local[i]);
            local[i] = NULL;
        } else if (what < 60) {
            local[i] = do_realloc(&r, local[i]);
        } else {
            /* hand the block to whichever thread looks at this slot next */
            unsigned s = (unsigned)hs_rng_below(&r, NSLOTS);
            uintptr_t got = atomic_exchange(&g_slots[s], (uintptr_t)local[i]);
            local[i] = (void *)got;
            if (got) {
                cross++;
                /* taken from another thread: check it now, free it sometimes */
                size_t n = header_size(local[i]);
                verify(local[i], (uintptr_t)local[i], n, n < 4096 ? n : 4096, "exchanged");
                if (hs_rng_next(&r) & 1) {
                    release(local[i]);
                    local[i] = NULL;
                }
            }
        }
    }
    /* on exit half the blocks are freed here, the rest outlive the thread */
    for (unsigned i = 0; i < LOCAL; i++) {
        if (!local[i]) continue;
        if (i & 1) {
            release(local[i]);
        } else {
            unsigned s = (unsigned)hs_rng_below(&r, NSLOTS);
            uintptr_t got = atomic_exchange(&g_slots[s], (uintptr_t)local[i]);
            if (got) release((void *)got);
        }
    }
    atomic_fetch_add(&g_ops, a->ops);
    atomic_fetch_add(&g_cross, cross);
    return NULL;
}

int main(int argc, char **argv)
{
#ifdef HS_PREFIX
    const char *name = "stress (hugeslab_* names)";
#else
    const char *name = "stress";
#endif
    hs_setup(name);
    int nthreads = argc > 1 ? atoi(argv[1]) : 8;
    unsigned long total = argc > 2 ? strtoul(argv[2], NULL, 10) : 1500000;
    unsigned long per = argc > 3 ? strtoul(argv[3], NULL, 10) : 15000;
    if (nthreads < 1 || nthreads > 512 || per < 1) {
        fprintf(stderr, "usage: %s [threads] [total_ops] [ops_per_worker]\n", argv[0]);
        return 2;
    }
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    worker_arg_t *args = calloc((size_t)nthreads, sizeof *args);
    if (!th || !args) return 2;
    unsigned long started = 0;
    unsigned gen = 0, created = 0;
    for (int i = 0; i < nthreads; i++) {
        args[i].id = i;
        args[i].gen = gen++;
        args[i].ops = per;
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
        started += per;
        created++;
    }
    /* replace each worker as it finishes until the budget is used */
    for (int i = 0; started < total; i = (i + 1) % nthreads) {
        pthread_join(th[i], NULL);
        args[i].gen = gen++;
        if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
        started += per;
        created++;
    }
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    /* drain the exchange slots from the main thread */
    unsigned long left = 0;
    for (unsigned s = 0; s < NSLOTS; s++) {
        uintptr_t p = atomic_exchange(&g_slots[s], 0);
        if (p) {
            release((void *)p);
            left++;
        }
    }
    free(th);
    free(args);
    fprintf(stderr,
            "%s: %u workers over time (%d at once), %lu ops, %lu cross-thread hand-offs, "
            "%lu freed by main, %.1f MiB checked\n",
            name, created, nthreads, (unsigned long)atomic_load(&g_ops),
            (unsigned long)atomic_load(&g_cross), left,
            (double)atomic_load(&g_bytes_checked) / (1024.0 * 1024.0));
    CHECK(atomic_load(&g_bad) == 0, "stress failures");
    CHECK(atomic_load(&g_cross) > 0, "no cross-thread hand-offs happened");
    return hs_finish(name);
}

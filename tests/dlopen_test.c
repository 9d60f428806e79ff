/* A program that is NOT preloaded dlopen()s libhugeslab.so with
 * RTLD_NOW | RTLD_LOCAL, uses the hugeslab_* functions from several threads
 * (with cross-thread frees), then dlclose()s it and keeps running.
 * dlopen must not fail with "cannot allocate memory in static TLS block".
 *
 * Usage: dlopen_test [path/to/libhugeslab.so]   (default $HUGESLAB_SO, then
 *        build/libhugeslab.so)
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>

typedef void *(*malloc_t)(size_t);
typedef void (*free_t)(void *);
typedef void *(*realloc_t)(void *, size_t);
typedef void *(*calloc_t)(size_t, size_t);
typedef void *(*aligned_alloc_t)(size_t, size_t);
typedef size_t (*usable_t)(const void *);

static malloc_t hs_malloc;
static free_t hs_free;
static realloc_t hs_realloc;
static calloc_t hs_calloc;
static aligned_alloc_t hs_aligned_alloc;
static usable_t hs_usable;

#define NTHREADS 4
#define NSLOTS 128
static _Atomic(uintptr_t) g_slots[NSLOTS];
static atomic_int g_bad;

static void *sym(void *h, const char *name)
{
    void *s = dlsym(h, name);
    if (!s) {
        fprintf(stderr, "FAIL: dlsym(%s): %s\n", name, dlerror());
        exit(1);
    }
    return s;
}

/* block: word0 = size, then pattern seeded by address */
static void *mk(size_t n, int how)
{
    char *p;
    if (how == 0)
        p = hs_malloc(n);
    else if (how == 1)
        p = hs_calloc(1, n);
    else
        p = hs_aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "FAIL: allocation of %zu failed\n", n);
        atomic_store(&g_bad, 1);
        return NULL;
    }
    if (how == 1 && hs_first_nonzero(p, n) != SIZE_MAX) {
        fprintf(stderr, "FAIL: hugeslab_calloc(%zu) not zeroed\n", n);
        atomic_store(&g_bad, 1);
    }
    if (how == 2 && ((uintptr_t)p & 63)) {
        fprintf(stderr, "FAIL: hugeslab_aligned_alloc(64) = %p\n", (void *)p);
        atomic_store(&g_bad, 1);
    }
    if (hs_usable(p) < n) {
        fprintf(stderr, "FAIL: hugeslab_malloc_usable_size(%p) = %zu < %zu\n", (void *)p,
                hs_usable(p), n);
        atomic_store(&g_bad, 1);
    }
    uint64_t nn = n;
    memcpy(p, &nn, 8);
    hs_fill(p + 8, n - 8, (uintptr_t)p);
    return p;
}

static void chk_free(void *vp)
{
    char *p = vp;
    uint64_t n;
    memcpy(&n, p, 8);
    if (hs_check_fill(p + 8, n - 8, (uintptr_t)p) != SIZE_MAX) {
        fprintf(stderr, "FAIL: block %p (%llu bytes) corrupted\n", vp, (unsigned long long)n);
        atomic_store(&g_bad, 1);
    }
    hs_free(p);
}

static void *worker(void *arg)
{
    hs_rng_t r;
    hs_rng_seed(&r, (uintptr_t)arg);
    void *local[64] = {0};
    for (int op = 0; op < 100000; op++) {
        unsigned i = (unsigned)hs_rng_below(&r, 64);
        if (!local[i]) {
            size_t n = hs_rng_below(&r, 50) ? 16 + (size_t)hs_rng_below(&r, 3000)
                                            : 100000 + (size_t)hs_rng_below(&r, 3u << 20);
            local[i] = mk(n, (int)hs_rng_below(&r, 3));
            continue;
        }
        uint64_t w = hs_rng_below(&r, 10);
        if (w < 4) {
            chk_free(local[i]);
            local[i] = NULL;
        } else if (w < 6) {
            char *p = local[i];
            uint64_t n;
            memcpy(&n, p, 8);
            if (hs_check_fill(p + 8, n - 8, (uintptr_t)p) != SIZE_MAX) {
                fprintf(stderr, "FAIL: block corrupted before realloc\n");
                atomic_store(&g_bad, 1);
            }
            size_t m = 16 + (size_t)hs_rng_below(&r, 2 * n);
            char *q = hs_realloc(p, m);
            if (!q) {
                fprintf(stderr, "FAIL: hugeslab_realloc(%zu) failed\n", m);
                atomic_store(&g_bad, 1);
                continue;
            }
            uint64_t nq = m;
            memcpy(q, &nq, 8);
            hs_fill(q + 8, m - 8, (uintptr_t)q);
            local[i] = q;
        } else {
            unsigned s = (unsigned)hs_rng_below(&r, NSLOTS);
            local[i] = (void *)atomic_exchange(&g_slots[s], (uintptr_t)local[i]);
        }
    }
    for (int i = 0; i < 64; i++)
        if (local[i]) chk_free(local[i]);
    return NULL;
}

static void *plain_thread(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    free(p);
    return NULL;
}

#define LOAD(var, name)                                                                            \
    do {                                                                                           \
        void *s_ = sym(h, name);                                                                   \
        memcpy(&var, &s_, sizeof var);                                                             \
    } while (0)

static int run_once(const char *path, int round)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "FAIL: dlopen(%s) round %d: %s\n", path, round, dlerror());
        return 1;
    }
    LOAD(hs_malloc, "hugeslab_malloc");
    LOAD(hs_free, "hugeslab_free");
    LOAD(hs_realloc, "hugeslab_realloc");
    LOAD(hs_calloc, "hugeslab_calloc");
    LOAD(hs_aligned_alloc, "hugeslab_aligned_alloc");
    LOAD(hs_usable, "hugeslab_malloc_usable_size");

    /* main thread first, then several threads */
    void *p = mk(1000, 0);
    if (p) chk_free(p);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1 + round * 100)) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    for (int s = 0; s < NSLOTS; s++) {
        uintptr_t q = atomic_exchange(&g_slots[s], 0);
        if (q) chk_free((void *)q);
    }
    if (dlclose(h) != 0) {
        fprintf(stderr, "FAIL: dlclose: %s\n", dlerror());
        return 1;
    }
    /* the process goes on after dlclose: threads, system malloc */
    pthread_t pt;
    pthread_create(&pt, NULL, plain_thread, NULL);
    pthread_join(pt, NULL);
    void *m = malloc(12345);
    memset(m, 1, 12345);
    free(m);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("HUGESLAB_SO");
    if (!path || !*path) path = "build/libhugeslab.so";
    if (getenv("LD_PRELOAD") && *getenv("LD_PRELOAD"))
        hs_note("dlopen_test is meant to run without LD_PRELOAD");
    if (access(path, R_OK) != 0) hs_skip("dlopen: %s not found", path);
    int bad = 0;
    for (int round = 0; round < 2 && !bad; round++) bad |= run_once(path, round);
    if (bad || atomic_load(&g_bad)) {
        fprintf(stderr, "FAIL: dlopen test failed\n");
        return 1;
    }
    fprintf(stderr, "PASS dlopen (%s, opened and closed twice, %d threads each)\n", path, NTHREADS);
    return 0;
}

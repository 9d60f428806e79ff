/* Multithreaded stress of the large blocks: arrays grown by realloc from
 * 1 KiB to 1-MAX MiB (slabs, slabs of pages, then runs), blocks of 256 KiB -
 * 8 MiB, and shrinking reallocs, handed between threads through exchange
 * slots so that most are freed, or resized, by a thread other than the one
 * that allocated them; a few hundred small blocks between them. Each block
 * carries its size, a word derived from its address, and a tail word, all
 * checked when it changes hands, and after each realloc its old tail and
 * header are checked at their new place. Workers run in rounds, so heaps of
 * exited threads are freed into. Run with no purge delay, the purge thread
 * gives back and reuses what the workers free while they run.
 *
 * Usage: big_stress_test [threads=4] [iterations=120] [max_mib=12]
 * Built with the hugeslab_* names on the ThreadSanitizer objects
 * (stress_tsan_big in tests/run.sh). */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>

#include "hugeslab.h"

#define SLOTS 16
#define ROUNDS 3
#define MAX_THREADS 64
#define TAIL_MUL 2654435761u
#define MAGIC 0xabcdef1234ULL

static _Atomic(uintptr_t) slots[SLOTS];
static unsigned iterations = 120, max_mib = 12;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void stamp(char *p, size_t n)
{
    uint64_t head[2] = {n, n ^ (uintptr_t)p ^ MAGIC}, tail = n * TAIL_MUL;
    memcpy(p, head, sizeof head);
    memcpy(p + n - 8, &tail, 8);
}

static void check(const char *p, const char *where)
{
    uint64_t head[2], tail;
    memcpy(head, p, sizeof head);
    size_t n = head[0];
    if (n < 24 || n > ((size_t)4 * max_mib << 20) || head[1] != (n ^ (uintptr_t)p ^ MAGIC)) {
        fprintf(stderr, "FAIL: big stress: %s: block %p has a bad header\n", where, (void *)p);
        abort();
    }
    memcpy(&tail, p + n - 8, 8);
    if (tail != n * TAIL_MUL) {
        fprintf(stderr, "FAIL: big stress: %s: block %p of %zu B has a bad tail\n", where,
                (void *)p, n);
        abort();
    }
}

/* Puts p in a random slot and frees what was there, whoever left it. */
static void hand_over(char *p, uint64_t *s, const char *where)
{
    uintptr_t old = atomic_exchange(&slots[next(s) % SLOTS], (uintptr_t)p);
    if (old) {
        check((char *)old, where);
        hugeslab_free((void *)old);
    }
}

static void grow_array(uint64_t *s)
{
    size_t n = 1024, most = ((size_t)1 << 20) + next(s) % ((size_t)(max_mib - 1) << 20);
    char *p = hugeslab_malloc(n);
    if (!p) abort();
    stamp(p, n);
    while (n < most) {
        size_t m = 2 * n + next(s) % 4096;
        char *q = hugeslab_realloc(p, m);
        if (!q) {
            fprintf(stderr, "FAIL: big stress: realloc to %zu B: %s\n", m, strerror(errno));
            abort();
        }
        uint64_t head, tail;
        memcpy(&head, q, 8);
        memcpy(&tail, q + n - 8, 8);
        if (head != n || tail != n * TAIL_MUL) {
            fprintf(stderr, "FAIL: big stress: realloc of %zu to %zu B lost its bytes\n", n, m);
            abort();
        }
        p = q;
        n = m;
        stamp(p, n);
    }
    hand_over(p, s, "array");
}

static void *worker(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7919 + 1;
    for (unsigned it = 0; it < iterations; it++) {
        switch (next(&s) % 4) {
        case 0:
            grow_array(&s);
            break;
        case 1: {
            size_t n = ((size_t)256 << 10) + next(&s) % ((size_t)8 << 20);
            char *p = hugeslab_malloc(n);
            if (!p) abort();
            stamp(p, n);
            hand_over(p, &s, "block");
            break;
        }
        case 2: {
            uintptr_t old = atomic_exchange(&slots[next(&s) % SLOTS], 0);
            if (!old) break;
            check((char *)old, "before shrinking");
            uint64_t n;
            memcpy(&n, (char *)old, 8);
            size_t m = n / 3 + 24;
            char *q = hugeslab_realloc((void *)old, m);
            if (!q) abort();
            stamp(q, m);
            hand_over(q, &s, "shrunk");
            break;
        }
        default:
            for (int j = 0; j < 200; j++) {
                size_t n = 24 + next(&s) % 3000;
                char *p = hugeslab_malloc(n);
                if (!p) abort();
                stamp(p, n);
                check(p, "small");
                hugeslab_free(p);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    if (argc > 2) iterations = (unsigned)atoi(argv[2]);
    if (argc > 3) max_mib = (unsigned)atoi(argv[3]);
    if (threads < 1 || threads > MAX_THREADS || max_mib < 2) {
        fprintf(stderr, "usage: big_stress_test [threads] [iterations] [max_mib >= 2]\n");
        return 2;
    }
    pthread_t t[MAX_THREADS];
    for (unsigned r = 0; r < ROUNDS; r++) {
        for (unsigned i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(r * threads + i + 1)) != 0)
                return 2;
        for (unsigned i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        uintptr_t p = atomic_exchange(&slots[k], 0);
        if (p) {
            check((char *)p, "at the end");
            hugeslab_free((void *)p);
        }
    }
    hugeslab_malloc_trim(0);
    printf("big stress: %u threads, %u rounds of %u iterations, arrays up to %u MiB: PASS\n",
           threads, ROUNDS, iterations, max_mib);
    return 0;
}

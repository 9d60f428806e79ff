/* Short-lived threads: 2000 threads each allocate 1 MiB in total (mixed
 * sizes), free part of it themselves, hand the rest to the main thread and
 * exit; the main thread frees those blocks after the thread is gone.  Other
 * rounds have the main thread allocate blocks that short-lived threads free.
 * The memory of exited threads must be reused: VmRSS and VmHWM stay bounded.
 *
 * The limit: at most 4 threads' 1 MiB is live at a time, and 2,000 threads
 * peaked at 14 MiB (glibc 8.7, mimalloc 2.0.9 28.7); with their blocks of
 * 128 KiB - 1 MiB in slabs of pages that stayed on the orphan lists once
 * freed, at 59-200 MiB.
 * Usage: thread_exit_test [threads=2000] [rss_limit_mib=48]
 * Run alone: LD_PRELOAD=build/libhugeslab.so HS_EXPECT_HUGESLAB=1 build/tests/thread_exit_test
 */
#define _GNU_SOURCE 1
#include "test_util.h"

#include "hugeslab.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

#define PER_THREAD_BYTES (1u << 20)
#define MAXB 4096
#define CONCURRENT 4

typedef struct {
    unsigned id;
    unsigned nb;
    void *b[MAXB];
    size_t n[MAXB];
    int bad;
} job_t;

static void *producer(void *arg)
{
    job_t *j = arg;
    hs_rng_t r;
    hs_rng_seed(&r, j->id);
    size_t total = 0;
    j->nb = 0;
    while (total < PER_THREAD_BYTES && j->nb < MAXB) {
        uint64_t x = hs_rng_below(&r, 100);
        size_t n = x < 80 ? 16 + (size_t)hs_rng_below(&r, 500)
                          : (x < 98 ? 1024 + (size_t)hs_rng_below(&r, 16384)
                                    : 65536 + (size_t)hs_rng_below(&r, 200000));
        if (total + n > PER_THREAD_BYTES)
            n = PER_THREAD_BYTES - total < 16 ? 16 : PER_THREAD_BYTES - total;
        void *p = malloc(n);
        if (!p) {
            j->bad = 1;
            return NULL;
        }
        hs_fill(p, n, (uintptr_t)p);
        total += n;
        /* a third is freed by the thread itself */
        if (hs_rng_below(&r, 3) == 0) {
            if (hs_check_fill(p, n, (uintptr_t)p) != SIZE_MAX) j->bad = 2;
            free(p);
            continue;
        }
        j->b[j->nb] = p;
        j->n[j->nb] = n;
        j->nb++;
    }
    return NULL;
}

/* The other direction: the thread frees blocks the main thread allocated. */
static void *consumer(void *arg)
{
    job_t *j = arg;
    for (unsigned i = 0; i < j->nb; i++) {
        if (hs_check_fill(j->b[i], j->n[i], (uintptr_t)j->b[i]) != SIZE_MAX) j->bad = 3;
        free(j->b[i]);
    }
    j->nb = 0;
    /* and allocates a little, so it gets a heap of its own before exiting */
    void *p = malloc(1000);
    free(p);
    return NULL;
}

/* A TLS destructor that runs after the library's (its key made later) and
 * allocates, each round setting its key again: glibc runs the destructors
 * up to PTHREAD_DESTRUCTOR_ITERATIONS rounds, the allocations took the
 * thread a heap again, and the last round's stayed attached to no thread
 * (200 such threads: 201 counted live, 7.1 MB in slabs after
 * malloc_trim). */
static pthread_key_t rearming_key;

static void rearming_destructor(void *p)
{
    free(p);
    void *x[50];
    for (int i = 0; i < 50; i++) x[i] = malloc(64);
    for (int i = 0; i < 50; i++) free(x[i]);
    pthread_setspecific(rearming_key, malloc(24));
}

static void *rearming_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(rearming_key, malloc(40));
    void *b[200];
    for (int i = 0; i < 200; i++) b[i] = malloc(16 + (size_t)i);
    for (int i = 0; i < 200; i++) free(b[i]);
    return NULL;
}

static void check_tls_destructors(void)
{
    typedef void (*stats_fn)(hugeslab_stats_t *);
    stats_fn stats = (stats_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hugeslab_stats");
    if (!stats) return;
    pthread_key_create(&rearming_key, rearming_destructor);
    for (int r = 0; r < 200; r++) {
        pthread_t t;
        if (pthread_create(&t, NULL, rearming_thread, NULL) != 0) break;
        pthread_join(t, NULL);
    }
    malloc_trim(0);
    hugeslab_stats_t s;
    stats(&s);
    fprintf(stderr,
            "thread_exit: 200 threads with an allocating TLS destructor: %llu threads "
            "live after, %llu bytes in slabs\n",
            (unsigned long long)s.threads_live, (unsigned long long)s.bytes_in_slabs);
    CHECK(s.threads_live <= 2,
          "%llu threads counted live after 200 threads whose TLS "
          "destructors allocated had exited: their heaps stayed attached",
          (unsigned long long)s.threads_live);
}

int main(int argc, char **argv)
{
    hs_setup("thread_exit");
    unsigned nthreads = argc > 1 ? (unsigned)atoi(argv[1]) : 2000;
    long limit_kib = (argc > 2 ? atol(argv[2]) : 48) * 1024;
    static job_t jobs[CONCURRENT];
    long rss_start = hs_proc_status_kib("VmRSS");
    long rss_max = rss_start, rss_at_half = 0;
    unsigned done = 0, round = 0;

    while (done < nthreads) {
        pthread_t t[CONCURRENT];
        unsigned k = nthreads - done < CONCURRENT ? nthreads - done : CONCURRENT;
        int consume_round = (round % 4) == 3;
        for (unsigned i = 0; i < k; i++) {
            job_t *j = &jobs[i];
            j->id = done + i + 1;
            j->bad = 0;
            if (consume_round) {
                /* main allocates, the thread frees */
                hs_rng_t r;
                hs_rng_seed(&r, j->id);
                j->nb = 0;
                for (size_t tot = 0; tot < PER_THREAD_BYTES / 2 && j->nb < MAXB;) {
                    size_t n = 16 + (size_t)hs_rng_below(&r, 2000);
                    void *p = malloc(n);
                    if (!p) break;
                    hs_fill(p, n, (uintptr_t)p);
                    j->b[j->nb] = p;
                    j->n[j->nb++] = n;
                    tot += n;
                }
            }
            if (pthread_create(&t[i], NULL, consume_round ? consumer : producer, j) != 0) {
                HS_FAIL("pthread_create failed after %u threads: %s", done + i, strerror(errno));
                return hs_finish("thread_exit");
            }
        }
        for (unsigned i = 0; i < k; i++) pthread_join(t[i], NULL);
        /* Every round, at its height (the threads' blocks not yet freed):
         * VmHWM alone falls short of a peak that a release ends, by up to
         * a batch of pages per CPU since Linux 6.2 (the kernel test
         * `churn` says why), and VmRSS does not. */
        long rss = hs_proc_status_kib("VmRSS");
        if (rss > rss_max) rss_max = rss;
        /* the threads are gone: free what they left behind */
        for (unsigned i = 0; i < k; i++) {
            job_t *j = &jobs[i];
            CHECK(j->bad == 0, "thread %u reported error %d", j->id, j->bad);
            for (unsigned b = 0; b < j->nb; b++) {
                size_t off = hs_check_fill(j->b[b], j->n[b], (uintptr_t)j->b[b]);
                CHECK(off == SIZE_MAX, "block %p (%zu bytes) of exited thread %u corrupted at %zu",
                      j->b[b], j->n[b], j->id, off);
                free(j->b[b]);
            }
            j->nb = 0;
        }
        done += k;
        round++;
        if (!rss_at_half && done >= nthreads / 2) rss_at_half = rss;
    }
    long rss_end = hs_proc_status_kib("VmRSS");
    long hwm = hs_proc_status_kib("VmHWM");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "thread_exit: %u threads; VmRSS start %ld KiB, half-way %ld KiB, max sampled %ld KiB, "
            "end %ld KiB; VmHWM %ld KiB; ru_maxrss %ld KiB\n",
            nthreads, rss_start, rss_at_half, rss_max, rss_end, hwm, ru.ru_maxrss);
    long peak = hwm > rss_max ? hwm : rss_max;
    CHECK(peak < limit_kib,
          "peak RSS (the more of VmHWM and the VmRSS read each round) %ld KiB >= limit %ld "
          "KiB: memory of exited threads is not reused",
          peak, limit_kib);
    CHECK(rss_end < limit_kib, "VmRSS at end %ld KiB >= limit %ld KiB", rss_end, limit_kib);
    check_tls_destructors();
    return hs_finish("thread_exit");
}

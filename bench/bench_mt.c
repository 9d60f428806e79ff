/* bench_mt: multithreaded allocator workloads.
 *
 * Usage: bench_mt larson|prodcons|falseshare|rounds|queue [--threads=N]
 *                 [--seconds=S] [--seed=N] [--handoff-every=N]
 * Defaults: --threads=2 --seconds=1 --seed=1 --handoff-every=64.
 *
 * larson      every thread churns its own array of slots (free a random
 *             slot, malloc 16..1024 B into it) and every --handoff-every
 *             steps hands HANDOFF_BATCH of its live blocks to another thread
 *             through that thread's mutex-protected mailbox; the receiver
 *             frees them.  About a third of all frees are remote frees.
 *             --handoff-every=0: no hand-offs, every thread on its own
 *             (what two threads cost that share nothing but the allocator).
 * prodcons    threads/2 producers malloc 16..1024 B blocks, write a header
 *             and a trailer byte, and push them through a lock-free
 *             single-producer single-consumer ring to their consumer, which
 *             checks the block and frees it.  Every free is a remote free.
 * falseshare  the main thread allocates threads * FS_BLOCKS small blocks in
 *             a row and deals them out round-robin; each thread frees the
 *             ones it was dealt, allocates FS_BLOCKS blocks of 8..64 B of its
 *             own, and then increments a word in each of them in a tight
 *             loop, replacing one block now and then.  An allocator that
 *             gives blocks of one cache line to two threads (actively, or
 *             passively by reusing a remotely freed block) makes those
 *             writes ping-pong between cores.  At the end the live blocks'
 *             cache lines are compared across threads: shared_lines is the
 *             count of 64-byte lines touched by blocks of two or more
 *             threads (0 for an allocator that keeps threads apart).
 * rounds      Larson's server benchmark in its original shape: each thread
 *             works on ROUNDS_SLOTS slots of 8..1000 B (filled by the main
 *             thread before the start), freeing a random slot and putting a
 *             new block there; after ROUNDS_STEPS replacements it starts a
 *             new thread on the same slots and exits.  Every generation
 *             frees blocks of a thread that is gone, and the allocator pays
 *             for threads coming and going and for what they leave behind.
 * queue       threads/2 producers and threads/2 consumers share one
 *             mutex-protected queue of batches: a producer mallocs
 *             QUEUE_BATCH blocks of 8..1000 B and a record holding their
 *             pointers and appends the record; a consumer takes the oldest
 *             record and frees its blocks and the record.  Every free is a
 *             remote free, and they come in bursts of one producer's blocks.
 *
 * The run is timed by wall clock: the threads start together on a barrier,
 * the main thread sleeps for --seconds and raises a stop flag, and the clock
 * and the page-fault counters stop when every thread has left its loop (set
 * up and clean up are outside the measure).  ops counts each malloc and each
 * free as one operation, as bench_random_mixed does, except in falseshare,
 * where an operation is one write to a block (the allocation calls are a few
 * percent of the work there; the question is how fast the writes run).
 *
 * Output: one line of key=value pairs (ops_per_sec, page_faults during the
 * timed part, peak_rss_kb = VmHWM at the end, seconds, ...) ending with
 * malloc_from=, the object that supplies malloc, so a failed LD_PRELOAD is
 * caught by bench/compare.py.  A prodcons block that arrives damaged counts
 * in errors= and makes the exit status 1.  With two threads or more and two
 * CPUs to run on, line_ns= and line_ns_after= give the one-way time of a
 * cache line between the first two of those CPUs, just before and just after
 * the run (see line_ns() below).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_barrier_t */
#endif
#define BENCH_PROG "bench_mt"
#include "bench_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#define CACHE_LINE 64
#define MAX_THREADS 1024

/* larson */
#define LARSON_SLOTS 1000
#define LARSON_MIN 16
#define LARSON_MAX 1024
#define HANDOFF_EVERY 64 /* default steps between two hand-offs */
#define HANDOFF_EVERY_MAX 10000000
#define HANDOFF_BATCH 32
#define MAILBOX_CAP 4096

/* prodcons */
#define PC_MIN 16 /* room for the 16-byte header */
#define PC_MAX 1024
#define RING_CAP 1024 /* power of two */

/* rounds */
#define ROUNDS_SLOTS 5000
#define ROUNDS_STEPS 500000
#define ROUNDS_MIN 8
#define ROUNDS_MAX 1000
#define ROUNDS_CHECK 256 /* steps between two looks at the stop flag */

/* queue */
#define QUEUE_BATCH 64
#define QUEUE_MAX 64 /* records waiting; a producer waits above it */
#define QUEUE_MIN 8
#define QUEUE_MAX_SIZE 1000

/* falseshare */
#define FS_BLOCKS 32
#define FS_MIN 8
#define FS_MAX 64
#define FS_PASSES 64 /* write passes over the blocks between two replacements */

enum workload { W_LARSON, W_PRODCONS, W_FALSESHARE, W_ROUNDS, W_QUEUE };
static const char *const workload_names[] = {"larson", "prodcons", "falseshare", "rounds", "queue"};

struct rng {
    uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    /* Mixed so that neighbouring seeds and thread ids do not start on
     * correlated states, and never on xorshift's fixed point 0. */
    r->s = (seed + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ (stream + 1) * UINT64_C(0xBF58476D1CE4E5B9);
    if (r->s == 0) r->s = 1;
}

static inline uint32_t rng_next(struct rng *r) { return xorshift64s_next(&r->s); }

static inline size_t rng_size(struct rng *r, size_t lo, size_t hi)
{
    return lo + rng_next(r) % (uint32_t)(hi - lo + 1);
}

struct mailbox {
    alignas(CACHE_LINE) pthread_mutex_t lock;
    size_t count;
    void *items[MAILBOX_CAP];
};

/* head and tail on lines of their own: the producer writes one and the
 * consumer the other, and sharing a line would make the queue itself the
 * false-sharing hot spot. */
struct ring {
    alignas(CACHE_LINE) _Atomic size_t head; /* next slot to read; consumer */
    alignas(CACHE_LINE) _Atomic size_t tail; /* next slot to write; producer */
    alignas(CACHE_LINE) void *items[RING_CAP];
};

/* One line or more per worker so that the benchmark's own counters do not
 * false-share and blur the allocator's effect. */
struct worker {
    alignas(CACHE_LINE) unsigned id;
    pthread_t thread;
    struct rng rng;
    uint64_t ops;
    uint64_t errors;
    bool producer;
    struct ring *ring;
    void **slots;     /* larson and rounds slots */
    pthread_t prev;   /* rounds: the generation before, joined by the next one */
    pthread_t last;   /* rounds: the generation that saw the stop flag */
    void **inbox_buf; /* larson: mailbox drained into this, freed outside the lock */
    void *fs_blk[FS_BLOCKS];
    size_t fs_size[FS_BLOCKS];
    void *fs_dealt[FS_BLOCKS];
};

static enum workload workload = W_LARSON;
static unsigned nthreads = 2;
static double run_seconds = 1.0;
static uint64_t seed = 1;
static unsigned handoff_every = HANDOFF_EVERY; /* larson: steps between hand-offs; 0: none */

static struct worker *workers;
static struct mailbox *mailboxes;
static atomic_bool stop_flag;
/* start: workers + main, so main reads the clock when they start; stop:
 * the same, so it reads it when the last one has left its loop. */
static pthread_barrier_t start_barrier, stop_barrier;

static inline bool stopping(void) { return atomic_load_explicit(&stop_flag, memory_order_relaxed); }

static void die(const char *what)
{
    fprintf(stderr, "bench_mt: %s failed: %s\n", what, strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "bench_mt: malloc(%zu) failed\n", n);
        exit(1);
    }
    return p;
}

/* ---- larson ------------------------------------------------------------ */

static void larson_receive(struct worker *w)
{
    struct mailbox *mb = &mailboxes[w->id];
    pthread_mutex_lock(&mb->lock);
    size_t n = mb->count;
    memcpy(w->inbox_buf, mb->items, n * sizeof(void *));
    mb->count = 0;
    pthread_mutex_unlock(&mb->lock);
    /* Freed after the unlock so senders are not held up by free(). */
    for (size_t i = 0; i < n; i++) free(w->inbox_buf[i]);
    w->ops += n;
}

static void larson_handoff(struct worker *w)
{
    void *batch[HANDOFF_BATCH];
    for (int i = 0; i < HANDOFF_BATCH; i++) {
        uint32_t k = rng_next(&w->rng) % LARSON_SLOTS;
        batch[i] = w->slots[k];
        char *p = xmalloc(rng_size(&w->rng, LARSON_MIN, LARSON_MAX));
        *(volatile char *)p = (char)i;
        w->slots[k] = p;
    }
    w->ops += HANDOFF_BATCH;
    unsigned to = w->id;
    if (nthreads > 1) to = (w->id + 1 + rng_next(&w->rng) % (nthreads - 1)) % nthreads;
    struct mailbox *mb = &mailboxes[to];
    size_t sent;
    pthread_mutex_lock(&mb->lock);
    sent = MAILBOX_CAP - mb->count;
    if (sent > HANDOFF_BATCH) sent = HANDOFF_BATCH;
    memcpy(&mb->items[mb->count], batch, sent * sizeof(void *));
    mb->count += sent;
    pthread_mutex_unlock(&mb->lock);
    /* A receiver that has fallen far behind: free locally rather than block. */
    for (size_t i = sent; i < HANDOFF_BATCH; i++) free(batch[i]);
    w->ops += HANDOFF_BATCH - sent;
}

static void larson(struct worker *w)
{
    w->slots = xmalloc(LARSON_SLOTS * sizeof(void *));
    w->inbox_buf = xmalloc(MAILBOX_CAP * sizeof(void *));
    for (int k = 0; k < LARSON_SLOTS; k++) {
        w->slots[k] = xmalloc(rng_size(&w->rng, LARSON_MIN, LARSON_MAX));
        *(volatile char *)w->slots[k] = 0;
    }
    pthread_barrier_wait(&start_barrier);
    /* Without hand-offs the stop flag is looked at every HANDOFF_EVERY steps. */
    unsigned steps = handoff_every ? handoff_every : HANDOFF_EVERY;
    while (!stopping()) {
        for (unsigned i = 0; i < steps; i++) {
            uint32_t k = rng_next(&w->rng) % LARSON_SLOTS;
            free(w->slots[k]);
            char *p = xmalloc(rng_size(&w->rng, LARSON_MIN, LARSON_MAX));
            /* volatile: the store must reach the block so its page is touched. */
            *(volatile char *)p = (char)i;
            w->slots[k] = p;
        }
        w->ops += 2 * (uint64_t)steps;
        if (handoff_every == 0) continue;
        larson_handoff(w);
        larson_receive(w);
    }
    pthread_barrier_wait(&stop_barrier);
    /* Every sender has stopped, so the mailbox can be emptied for good. */
    uint64_t ops = w->ops;
    larson_receive(w);
    w->ops = ops;
    for (int k = 0; k < LARSON_SLOTS; k++) free(w->slots[k]);
    free(w->slots);
    free(w->inbox_buf);
}

/* ---- prodcons ---------------------------------------------------------- */

/* Spin briefly, then yield: on a machine with fewer free cores than threads
 * a pure spin would burn the time slice the other side needs. */
static void backoff(unsigned *spins)
{
    if (++*spins < 64) return;
    *spins = 0;
    sched_yield();
}

static void producer(struct worker *w)
{
    struct ring *q = w->ring;
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint64_t seq = 0;
    pthread_barrier_wait(&start_barrier);
    while (!stopping()) {
        size_t size = rng_size(&w->rng, PC_MIN, PC_MAX);
        unsigned char *p = xmalloc(size);
        uint64_t hdr[2] = {size, seq};
        memcpy(p, hdr, sizeof hdr);
        /* A 16-byte block is all header; its last byte is part of seq. */
        if (size > sizeof hdr) p[size - 1] = (unsigned char)seq;
        w->ops++;
        seq++;
        unsigned spins = 0;
        while (tail - atomic_load_explicit(&q->head, memory_order_acquire) == RING_CAP) {
            if (stopping()) break;
            backoff(&spins);
        }
        if (tail - atomic_load_explicit(&q->head, memory_order_acquire) == RING_CAP) {
            free(p); /* stopped while the ring was full; not counted */
            w->ops--;
            break;
        }
        q->items[tail % RING_CAP] = p;
        atomic_store_explicit(&q->tail, ++tail, memory_order_release);
    }
    pthread_barrier_wait(&stop_barrier);
}

static bool consume_one(struct worker *w, struct ring *q, size_t head)
{
    unsigned char *p = q->items[head % RING_CAP];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    uint64_t hdr[2];
    memcpy(hdr, p, sizeof hdr);
    bool ok = hdr[0] >= PC_MIN && hdr[0] <= PC_MAX &&
              (hdr[0] == sizeof hdr || p[hdr[0] - 1] == (unsigned char)hdr[1]);
    if (!ok) w->errors++;
    free(p);
    return ok;
}

static void consumer(struct worker *w)
{
    struct ring *q = w->ring;
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t expect = 0;
    pthread_barrier_wait(&start_barrier);
    while (!stopping()) {
        unsigned spins = 0;
        while (atomic_load_explicit(&q->tail, memory_order_acquire) == head) {
            if (stopping()) goto out;
            backoff(&spins);
        }
        uint64_t seq;
        memcpy(&seq, (char *)q->items[head % RING_CAP] + 8, sizeof seq);
        if (seq != expect++) w->errors++; /* lost or duplicated block */
        consume_one(w, q, head++);
        w->ops++;
    }
out:
    pthread_barrier_wait(&stop_barrier);
    /* The producer has stopped: drain what it left, outside the measure. */
    size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    while (head != tail) consume_one(w, q, head++);
}

/* ---- rounds ------------------------------------------------------------ */

static void *rounds_generation(void *arg);

/* One generation of a rounds worker: ROUNDS_STEPS replacements, then a
 * successor on the same slots. w->ops and w->prev are handed from one
 * generation to the next by pthread_create, which orders them. */
static void rounds_run(struct worker *w, bool first)
{
    if (first)
        pthread_barrier_wait(&start_barrier);
    else
        pthread_join(w->prev, NULL);
    uint64_t steps = 0;
    while (steps < ROUNDS_STEPS && !stopping()) {
        for (int i = 0; i < ROUNDS_CHECK; i++) {
            uint32_t k = rng_next(&w->rng) % ROUNDS_SLOTS;
            free(w->slots[k]);
            char *p = xmalloc(rng_size(&w->rng, ROUNDS_MIN, ROUNDS_MAX));
            *(volatile char *)p = (char)i;
            w->slots[k] = p;
        }
        steps += ROUNDS_CHECK;
    }
    w->ops += 2 * steps;
    if (!stopping()) {
        pthread_t next;
        w->prev = pthread_self();
        errno = pthread_create(&next, NULL, rounds_generation, w);
        if (errno != 0) die("pthread_create");
        return;
    }
    w->last = pthread_self();
    pthread_barrier_wait(&stop_barrier);
}

static void *rounds_generation(void *arg)
{
    rounds_run(arg, false);
    return NULL;
}

/* ---- queue ------------------------------------------------------------- */

struct batch {
    struct batch *next;
    void *blocks[QUEUE_BATCH];
};

/* The shared queue: records in arrival order, and two conditions to wait
 * on when it is empty (consumers) or holds QUEUE_MAX (producers). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct batch *head, *tail;
    unsigned count;
} queue = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

static void queue_producer(struct worker *w)
{
    pthread_barrier_wait(&start_barrier);
    while (!stopping()) {
        struct batch *b = xmalloc(sizeof *b);
        b->next = NULL;
        for (int i = 0; i < QUEUE_BATCH; i++) {
            char *p = xmalloc(rng_size(&w->rng, QUEUE_MIN, QUEUE_MAX_SIZE));
            *(volatile char *)p = (char)i;
            b->blocks[i] = p;
        }
        w->ops += QUEUE_BATCH + 1;
        pthread_mutex_lock(&queue.lock);
        while (queue.count >= QUEUE_MAX && !stopping())
            pthread_cond_wait(&queue.not_full, &queue.lock);
        if (queue.tail)
            queue.tail->next = b;
        else
            queue.head = b;
        queue.tail = b;
        queue.count++;
        pthread_cond_signal(&queue.not_empty);
        pthread_mutex_unlock(&queue.lock);
    }
    pthread_barrier_wait(&stop_barrier);
}

static void free_batch(struct batch *b)
{
    for (int i = 0; i < QUEUE_BATCH; i++) free(b->blocks[i]);
    free(b);
}

static void queue_consumer(struct worker *w)
{
    pthread_barrier_wait(&start_barrier);
    for (;;) {
        pthread_mutex_lock(&queue.lock);
        while (!queue.head && !stopping()) pthread_cond_wait(&queue.not_empty, &queue.lock);
        struct batch *b = queue.head;
        if (b) {
            queue.head = b->next;
            if (!queue.head) queue.tail = NULL;
            queue.count--;
            pthread_cond_signal(&queue.not_full);
        }
        pthread_mutex_unlock(&queue.lock);
        if (!b) break; /* stopping, and nothing left */
        free_batch(b);
        w->ops += QUEUE_BATCH + 1;
        if (stopping()) break;
    }
    pthread_barrier_wait(&stop_barrier);
}

/* Wakes every thread waiting on the queue once the stop flag is up. Under
 * the lock: a thread that saw the flag down is already waiting. */
static void queue_wake_all(void)
{
    pthread_mutex_lock(&queue.lock);
    pthread_cond_broadcast(&queue.not_empty);
    pthread_cond_broadcast(&queue.not_full);
    pthread_mutex_unlock(&queue.lock);
}

/* ---- falseshare -------------------------------------------------------- */

static void falseshare(struct worker *w)
{
    pthread_barrier_wait(&start_barrier);
    /* Interleaved with the other threads doing the same, so an allocator
     * that hands out neighbouring blocks to different threads (active false
     * sharing) or reuses the dealt blocks (passive) shows it here. */
    for (int i = 0; i < FS_BLOCKS; i++) {
        free(w->fs_dealt[i]);
        w->fs_size[i] = rng_size(&w->rng, FS_MIN, FS_MAX);
        w->fs_blk[i] = xmalloc(w->fs_size[i]);
        memset(w->fs_blk[i], 0, w->fs_size[i]);
    }
    uint64_t ops = 0;
    while (!stopping()) {
        for (int pass = 0; pass < FS_PASSES; pass++)
            for (int i = 0; i < FS_BLOCKS; i++) (*(volatile uint64_t *)w->fs_blk[i])++;
        ops += FS_PASSES * FS_BLOCKS;
        /* Keep the allocator in the loop: blocks come and go in real
         * programs, and each new one may land on someone else's line. */
        uint32_t k = rng_next(&w->rng) % FS_BLOCKS;
        free(w->fs_blk[k]);
        w->fs_size[k] = rng_size(&w->rng, FS_MIN, FS_MAX);
        w->fs_blk[k] = xmalloc(w->fs_size[k]);
        memset(w->fs_blk[k], 0, w->fs_size[k]);
    }
    w->ops = ops;
    pthread_barrier_wait(&stop_barrier);
    /* The blocks stay allocated: main compares their cache lines. */
}

struct line_owner {
    uintptr_t line;
    unsigned thread;
};

static int cmp_line_owner(const void *a, const void *b)
{
    const struct line_owner *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return (x->thread > y->thread) - (x->thread < y->thread);
}

/* Lines covered by blocks of more than one thread. */
static long count_shared_lines(void)
{
    size_t cap = 0, n = 0;
    for (unsigned t = 0; t < nthreads; t++)
        for (int i = 0; i < FS_BLOCKS; i++)
            cap += (workers[t].fs_size[i] + CACHE_LINE - 1) / CACHE_LINE + 1;
    struct line_owner *v = xmalloc(cap * sizeof *v);
    for (unsigned t = 0; t < nthreads; t++) {
        for (int i = 0; i < FS_BLOCKS; i++) {
            uintptr_t a = (uintptr_t)workers[t].fs_blk[i];
            uintptr_t last = (a + workers[t].fs_size[i] - 1) / CACHE_LINE;
            for (uintptr_t l = a / CACHE_LINE; l <= last; l++) v[n++] = (struct line_owner){l, t};
        }
    }
    qsort(v, n, sizeof *v, cmp_line_owner);
    long shared = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        bool multi = false;
        for (; j < n && v[j].line == v[i].line; j++)
            if (v[j].thread != v[i].thread) multi = true;
        shared += multi;
        i = j;
    }
    free(v);
    return shared;
}

/* ---- driver ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    switch (workload) {
    case W_LARSON:
        larson(w);
        break;
    case W_PRODCONS:
        if (w->producer)
            producer(w);
        else
            consumer(w);
        break;
    case W_FALSESHARE:
        falseshare(w);
        break;
    case W_ROUNDS:
        rounds_run(w, true);
        break;
    case W_QUEUE:
        if (w->producer)
            queue_producer(w);
        else
            queue_consumer(w);
        break;
    }
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_mt larson|prodcons|falseshare|rounds|queue [--threads=N] "
                 "[--seconds=S] [--seed=N] [--handoff-every=N]\n"
                 "defaults: --threads=2 --seconds=1 --seed=1 --handoff-every=64 (larson; 0: "
                 "none)\n");
}

/* Accepts "--name=value" and "--name value". */
static const char *option_value(const char *name, int argc, char **argv, int *i)
{
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) != 0) return NULL;
    if (argv[*i][len] == '=') return argv[*i] + len + 1;
    if (argv[*i][len] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

static int parse_args(int argc, char **argv)
{
    bool have_workload = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        char *end;
        errno = 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if ((v = option_value("--threads", argc, argv, &i)) != NULL) {
            unsigned long n = strtoul(v, &end, 10);
            if (*v == '-' || errno || *end || n < 1 || n > MAX_THREADS) {
                fprintf(stderr, "bench_mt: --threads must be 1..%d\n", MAX_THREADS);
                return -1;
            }
            nthreads = (unsigned)n;
        } else if ((v = option_value("--seconds", argc, argv, &i)) != NULL) {
            run_seconds = strtod(v, &end);
            if (errno || *end || !(run_seconds > 0 && run_seconds <= 3600)) {
                fprintf(stderr, "bench_mt: --seconds must be in (0, 3600]\n");
                return -1;
            }
        } else if ((v = option_value("--handoff-every", argc, argv, &i)) != NULL) {
            unsigned long n = strtoul(v, &end, 10);
            if (*v == '-' || *v == '\0' || errno || *end || n > HANDOFF_EVERY_MAX) {
                fprintf(stderr, "bench_mt: --handoff-every must be 0..%d\n", HANDOFF_EVERY_MAX);
                return -1;
            }
            handoff_every = (unsigned)n;
        } else if ((v = option_value("--seed", argc, argv, &i)) != NULL) {
            seed = strtoull(v, &end, 10);
            if (*v == '-' || errno || *end) {
                fprintf(stderr, "bench_mt: bad --seed '%s'\n", v);
                return -1;
            }
        } else if (argv[i][0] != '-' && !have_workload) {
            size_t k;
            for (k = 0; k < sizeof workload_names / sizeof *workload_names; k++)
                if (strcmp(argv[i], workload_names[k]) == 0) break;
            if (k == sizeof workload_names / sizeof *workload_names) {
                fprintf(stderr, "bench_mt: unknown workload '%s'\n", argv[i]);
                return -1;
            }
            workload = (enum workload)k;
            have_workload = true;
        } else {
            fprintf(stderr, "bench_mt: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (!have_workload) {
        fprintf(stderr, "bench_mt: no workload given\n");
        return -1;
    }
    return 0;
}

/* ---- line_ns ----------------------------------------------------------------- */

/* How long a cache line takes to go from one CPU to another: the
 * cross-thread workloads move lines between cores at every remote free, and
 * what one move costs depends on where the machine runs the two CPUs. On a
 * guest it may change from one minute to the next (the host moves the
 * vCPUs between cores that share a cache and cores that do not, 50 against
 * 220 ns on the 2-vCPU development VM), and the allocators' ratios change
 * with it; each run prints the figure so that runs are compared under the
 * same one. Two threads pinned to the first two CPUs the process may use
 * pass a counter back and forth; the result is one way, in ns. */
#define LINE_PROBE_TRIPS 20000

struct line_probe {
    alignas(CACHE_LINE) _Atomic uint64_t turn;
    alignas(CACHE_LINE) _Atomic unsigned ready; /* sides pinned (or given up) */
    _Atomic bool failed;                        /* a side could not be pinned */
    int cpu[2];
    double ns; /* side 0's result */
};

struct line_probe_side {
    struct line_probe *lp;
    unsigned side;
};

/* Side 0 writes odd turns, side 1 even ones; each waits for the other's.
 * Both wait until both are pinned, and play only if both were. */
static void *line_probe_side(void *arg)
{
    const struct line_probe_side *me = arg;
    struct line_probe *lp = me->lp;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(lp->cpu[me->side], &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        atomic_store(&lp->failed, true);
    atomic_fetch_add(&lp->ready, 1);
    while (atomic_load(&lp->ready) < 2)
        ;
    if (atomic_load(&lp->failed)) return NULL;
    double t0 = now_seconds();
    for (uint64_t i = 0; i < LINE_PROBE_TRIPS; i++) {
        uint64_t mine = 2 * i + 1 + me->side;
        while (atomic_load_explicit(&lp->turn, memory_order_acquire) != mine - 1)
            ;
        atomic_store_explicit(&lp->turn, mine, memory_order_release);
    }
    if (me->side == 0) lp->ns = (now_seconds() - t0) * 1e9 / (2.0 * LINE_PROBE_TRIPS);
    return NULL;
}

/* One-way ns between the first two CPUs of the process's affinity mask, or
 * -1 where it has fewer than two (a run pinned to one CPU) or a side could
 * not be started or pinned. The main thread keeps its own mask: each side
 * runs on a thread of its own. */
static double line_ns(void)
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return -1;
    struct line_probe lp = {.cpu = {-1, -1}, .ns = -1};
    for (int c = 0, found = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &mask)) lp.cpu[found++] = c;
    if (lp.cpu[1] < 0) return -1;
    atomic_init(&lp.turn, 0);
    atomic_init(&lp.ready, 0);
    atomic_init(&lp.failed, false);
    struct line_probe_side sides[2] = {{&lp, 0}, {&lp, 1}};
    pthread_t threads[2];
    unsigned started = 0;
    for (; started < 2; started++)
        if (pthread_create(&threads[started], NULL, line_probe_side, &sides[started]) != 0) break;
    if (started < 2) {
        /* The side that started waits for a second one: stand in for it. */
        atomic_store(&lp.failed, true);
        atomic_fetch_add(&lp.ready, 2 - started);
    }
    for (unsigned i = 0; i < started; i++) pthread_join(threads[i], NULL);
    return lp.ns;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    /* prodcons pairs one producer with one consumer; an odd thread leaves a
     * core idle rather than unbalancing the pairs. */
    unsigned pairs = nthreads / 2 ? nthreads / 2 : 1;
    if (workload == W_PRODCONS || workload == W_QUEUE) nthreads = 2 * pairs;

    workers = aligned_alloc(CACHE_LINE, nthreads * sizeof *workers);
    if (workers == NULL) die("aligned_alloc");
    memset(workers, 0, nthreads * sizeof *workers);
    for (unsigned t = 0; t < nthreads; t++) {
        workers[t].id = t;
        rng_seed(&workers[t].rng, seed, t);
    }

    struct ring *rings = NULL;
    if (workload == W_LARSON) {
        size_t sz = (nthreads * sizeof *mailboxes + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
        mailboxes = aligned_alloc(CACHE_LINE, sz);
        if (mailboxes == NULL) die("aligned_alloc");
        for (unsigned t = 0; t < nthreads; t++) {
            pthread_mutex_init(&mailboxes[t].lock, NULL);
            mailboxes[t].count = 0;
        }
    } else if (workload == W_PRODCONS) {
        rings = aligned_alloc(CACHE_LINE, pairs * sizeof *rings);
        if (rings == NULL) die("aligned_alloc");
        for (unsigned p = 0; p < pairs; p++) {
            atomic_init(&rings[p].head, 0);
            atomic_init(&rings[p].tail, 0);
            workers[p].producer = true;
            workers[p].ring = &rings[p];
            workers[pairs + p].ring = &rings[p];
        }
    } else if (workload == W_ROUNDS) {
        for (unsigned t = 0; t < nthreads; t++) {
            workers[t].slots = xmalloc(ROUNDS_SLOTS * sizeof(void *));
            for (int k = 0; k < ROUNDS_SLOTS; k++) {
                workers[t].slots[k] = xmalloc(rng_size(&workers[t].rng, ROUNDS_MIN, ROUNDS_MAX));
                *(volatile char *)workers[t].slots[k] = 0;
            }
        }
    } else if (workload == W_QUEUE) {
        for (unsigned p = 0; p < pairs; p++) workers[p].producer = true;
    } else {
        /* Consecutive allocations from one thread: neighbours in memory
         * under any allocator, dealt out so neighbours go to different
         * threads. */
        struct rng r;
        rng_seed(&r, seed, MAX_THREADS);
        for (int i = 0; i < FS_BLOCKS; i++)
            for (unsigned t = 0; t < nthreads; t++) {
                workers[t].fs_dealt[i] = xmalloc(rng_size(&r, FS_MIN, FS_MAX));
                *(volatile char *)workers[t].fs_dealt[i] = 0;
            }
    }

    double line_ns_before = nthreads > 1 ? line_ns() : -1;
    atomic_init(&stop_flag, false);
    if (pthread_barrier_init(&start_barrier, NULL, nthreads + 1) != 0 ||
        pthread_barrier_init(&stop_barrier, NULL, nthreads + 1) != 0)
        die("pthread_barrier_init");
    for (unsigned t = 0; t < nthreads; t++) {
        errno = pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
        if (errno != 0) die("pthread_create");
    }

    struct rusage ru0, ru1;
    pthread_barrier_wait(&start_barrier);
    double t0 = now_seconds();
    getrusage(RUSAGE_SELF, &ru0);
    struct timespec nap = {(time_t)run_seconds,
                           (long)((run_seconds - (double)(time_t)run_seconds) * 1e9)};
    while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
        ;
    atomic_store(&stop_flag, true);
    if (workload == W_QUEUE) queue_wake_all();
    pthread_barrier_wait(&stop_barrier);
    getrusage(RUSAGE_SELF, &ru1);
    double t1 = now_seconds();
    /* A rounds worker's first thread was joined by its successor. */
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(workload == W_ROUNDS ? workers[t].last : workers[t].thread, NULL);
    double line_ns_after = nthreads > 1 ? line_ns() : -1;
    if (workload == W_ROUNDS) {
        for (unsigned t = 0; t < nthreads; t++) {
            for (int k = 0; k < ROUNDS_SLOTS; k++) free(workers[t].slots[k]);
            free(workers[t].slots);
        }
    }
    while (queue.head) {
        struct batch *b = queue.head;
        queue.head = b->next;
        free_batch(b);
    }

    uint64_t ops = 0, errors = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        ops += workers[t].ops;
        errors += workers[t].errors;
    }
    long shared = -1;
    if (workload == W_FALSESHARE) {
        shared = count_shared_lines();
        for (unsigned t = 0; t < nthreads; t++)
            for (int i = 0; i < FS_BLOCKS; i++) free(workers[t].fs_blk[i]);
    }
    free(rings);
    free(mailboxes);
    free(workers);

    double seconds = t1 - t0;
    long faults = (ru1.ru_minflt - ru0.ru_minflt) + (ru1.ru_majflt - ru0.ru_majflt);
    long peak_kb = peak_rss_kb(ru1.ru_maxrss);
    const char *provider = malloc_provider();
    char shared_buf[48] = "";
    if (shared >= 0) snprintf(shared_buf, sizeof shared_buf, " shared_lines=%ld", shared);
    char line_buf[64] = "";
    if (line_ns_before >= 0 && line_ns_after >= 0)
        snprintf(line_buf, sizeof line_buf, " line_ns=%.0f line_ns_after=%.0f", line_ns_before,
                 line_ns_after);
    /* malloc_from stays last: it is a path and may contain spaces. */
    printf("ops_per_sec=%.0f page_faults=%ld peak_rss_kb=%ld seconds=%.6f workload=%s"
           " threads=%u ops=%" PRIu64 "%s%s errors=%" PRIu64 " seed=%" PRIu64 " malloc_from=%s\n",
           seconds > 0 ? (double)ops / seconds : 0.0, faults, peak_kb, seconds,
           workload_names[workload], nthreads, ops, shared_buf, line_buf, errors, seed, provider);
    return errors ? 1 : 0;
}

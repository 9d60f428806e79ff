/* rss_replay: a program's heap without the program. Replays a trace of
 * bench/sizes/recorder.c with this process's allocator (run it under
 * LD_PRELOAD), each recorded thread's calls on a thread of its own and all
 * of them in the recorded order (thread 0, the program's first, on the main
 * thread; another one started when its first call comes, by the thread
 * whose call came before, and ended after its last call once the trace
 * says it exited), writing every byte of every block, and
 * prints the resident memory that took. The same calls for every
 * allocator, and none of the program's own pages, timing or other
 * mappings: where a real program's peak RSS differs between two
 * allocators by a few MiB run to run, this tells how much is the heap's.
 *
 *   rss_replay [--stats] TRACE
 *
 * One line of key=value, sizes in KiB:
 *   threads      threads that allocated in the trace
 *   calls        records replayed
 *   peak_live    the most bytes asked for and not yet freed at one time
 *   start_rss    VmRSS before the first call (the replay's table included)
 *   rss_at_peak  VmRSS right after the call that reached peak_live
 *   hwm          VmHWM after the last call
 *   overhead     hwm - start_rss - peak_live: what the allocator held at its
 *                high-water mark beyond the blocks at their peak
 *   faults       page faults of the process while the calls ran (getrusage,
 *                minor and major; not KiB)
 *   seconds      the replay's wall time
 *   malloc_from  the object that malloc came from
 * --stats: at the live peak, hugeslab_stats_print() when the allocator is
 * hugeslab (looked up by name; nothing otherwise).
 *
 * The same file built with RSS_LAYOUT and linked with the library's
 * objects is rss_layout (make build/bench/rss_layout), whose --layout
 * writes, at the live peak, where the heap's bytes lie: the SuperSlabs'
 * free units and pages, each class's slabs, the blocks' rounding
 * (bench/sizes/layout.c). It runs without LD_PRELOAD: the library is its
 * malloc.
 *
 * The calls run back to back: the pauses between them in the program, which
 * an allocator's timed work (hugeslab's purge delays) is measured against,
 * are not replayed, and a change can show in the program and not here.
 * A free or realloc of an address not seen allocated (before the recorder
 * started) is skipped. Traces recorded before threads were told apart
 * (trace.h) replay on one thread. */
#define _GNU_SOURCE
#ifdef RSS_LAYOUT
#define BENCH_PROG "rss_layout"
#else
#define BENCH_PROG "rss_replay"
#endif
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include "../bench_common.h"
#include "table.h"
#include "trace.h"
#ifdef RSS_LAYOUT
#include "layout.h"
#endif

#define THREADS_MAX 1024
#define CHUNK_RECORDS 32768

/* The trace, read a chunk at a time by whichever thread holds the turn
 * (only one ever runs: a thread hands the turn on with a semaphore post,
 * which orders everything it wrote before the next thread's reads). */
static int trace_fd;
static const char *trace_path;
static sizes_record_t chunk[CHUNK_RECORDS];
static size_t chunk_len, chunk_at; /* records in chunk, the next one */
static uint64_t replayed;          /* records applied */
static bool finished;

static sem_t turn[THREADS_MAX];
static pthread_t thread_of[THREADS_MAX];
static bool started[THREADS_MAX];       /* thread_of[t] made (0: the main thread) */
static uint64_t last_call[THREADS_MAX]; /* records applied after t's last one */
static bool exits[THREADS_MAX];         /* the trace says t exited */
static unsigned thread_count;           /* 1 + the largest thread number seen */
static uint64_t peak_at;                /* records applied when the live bytes peak */
static uint64_t peak_live;
static long rss_at_peak_kib;
static bool stats_at_peak;
#ifdef RSS_LAYOUT
static bool layout_at_peak;
#endif

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* The next record, or NULL at the trace's end. */
static const sizes_record_t *next_record(void)
{
    if (chunk_at == chunk_len) {
        ssize_t got;
        do got = read(trace_fd, chunk, sizeof chunk);
        while (got < 0 && errno == EINTR);
        if (got < 0) die(trace_path);
        chunk_len = (size_t)got / sizeof(sizes_record_t);
        chunk_at = 0;
        /* Records never straddle two reads of a regular file, but be sure. */
        size_t rest = (size_t)got - chunk_len * sizeof(sizes_record_t);
        if (rest && lseek(trace_fd, -(off_t)rest, SEEK_CUR) < 0) die(trace_path);
        if (chunk_len == 0) return NULL;
    }
    return &chunk[chunk_at];
}

static void rewind_trace(void)
{
    if (lseek(trace_fd, 0, SEEK_SET) < 0) die(trace_path);
    chunk_len = chunk_at = 0;
}

/* VmRSS in KiB, read without stdio (which would allocate from the
 * allocator measured); -1 when unreadable. */
static long rss_kib(void)
{
    char text[4096];
    if (read_proc_text("/proc/self/status", text, sizeof text) == 0) return -1;
    return proc_field(text, "VmRSS");
}

/* ---- the first pass: the live peak and the threads, nothing allocated ----- */

static void survey(void)
{
    uint64_t live = 0, at = 0, live_entries = 0, most_entries = 0;
    for (const sizes_record_t *r; (r = next_record()) != NULL; chunk_at++) {
        if (r->thread >= THREADS_MAX) {
            fprintf(stderr, BENCH_PROG ": thread %u: at most %d threads\n", r->thread, THREADS_MAX);
            exit(1);
        }
        if (r->thread + 1 > thread_count) thread_count = r->thread + 1;
        last_call[r->thread] = at + 1;
        entry_t *e;
        switch (r->op) {
        case SIZES_THREAD_EXIT:
            exits[r->thread] = true;
            break;
        case SIZES_FREE:
            if ((e = find(r->ptr)) != NULL) {
                live -= e->size;
                remove_entry(e);
                live_entries--;
            }
            break;
        case SIZES_REALLOC:
            if ((e = find(r->old)) == NULL) break;
            live -= e->size;
            remove_entry(e);
            live_entries--;
            __attribute__((fallthrough)); /* the new block */
        case SIZES_MALLOC:
        case SIZES_CALLOC:
        case SIZES_ALIGNED:
            if ((e = find(r->ptr)) != NULL) { /* reused before its free was seen */
                live -= e->size;
                remove_entry(e);
                live_entries--;
            }
            insert_entry((entry_t){.key = r->ptr, .size = r->size});
            live += r->size;
            live_entries++;
            break;
        default:
            fprintf(stderr, BENCH_PROG ": bad record %" PRIu64 " (op %u)\n", at, r->op);
            exit(1);
        }
        at++;
        if (live > peak_live) {
            peak_live = live;
            peak_at = at;
        }
        if (live_entries > most_entries) most_entries = live_entries;
    }
    /* Thread 0 runs on the main thread, which waits for the others' end. */
    exits[0] = false;
    /* Empty again, and big enough never to grow while the replay runs: its
     * pages are written now, before start_rss. */
    munmap(table, table_cap * sizeof(entry_t));
    table = NULL;
    table_cap = table_used = 0;
    do grow();
    while (table_cap < 2 * most_entries + 2);
    memset(table, 0, table_cap * sizeof(entry_t));
    rewind_trace();
}

/* ---- the replay ---------------------------------------------------------- */

/* Writes every byte of a block: its pages are resident, as the program's
 * are once it fills them. */
static void fill(void *block, uint64_t from, uint64_t to)
{
    if (to > from) memset((char *)block + from, 0x5a, to - from);
}

static void *checked(void *block, uint64_t size)
{
    if (block == NULL) {
        fprintf(stderr, BENCH_PROG ": allocation of %" PRIu64 " bytes failed\n", size);
        exit(1);
    }
    return block;
}

static void drop(uint64_t key)
{
    entry_t *e = find(key);
    if (e == NULL) return;
    free(e->block);
    remove_entry(e);
}

static void apply(const sizes_record_t *r)
{
    uint64_t size = r->size ? r->size : 1;
    void *block = NULL;
    switch (r->op) {
    case SIZES_THREAD_EXIT:
        return;
    case SIZES_FREE:
        drop(r->ptr);
        return;
    case SIZES_MALLOC:
        block = checked(malloc(size), size);
        fill(block, 0, r->size);
        break;
    case SIZES_CALLOC:
        block = checked(calloc(1, size), size);
        fill(block, 0, r->size);
        break;
    case SIZES_ALIGNED: {
        size_t align = r->old < sizeof(void *) ? sizeof(void *) : (size_t)r->old;
        if (posix_memalign(&block, align, size) != 0) block = NULL;
        checked(block, size);
        fill(block, 0, r->size);
        break;
    }
    case SIZES_REALLOC: {
        entry_t *e = find(r->old);
        if (e == NULL) return;
        uint64_t had = e->size;
        block = checked(realloc(e->block, size), size);
        remove_entry(e);
        fill(block, had, r->size);
        break;
    }
    }
    drop(r->ptr); /* an address reused before its free was seen */
    insert_entry((entry_t){.key = r->ptr, .block = block, .size = r->size});
}

#ifdef RSS_LAYOUT
/* The replay's blocks at the live peak, for layout_print. */
static void print_layout(void)
{
    layout_blocks_t blocks = {0};
    for (uint64_t i = 0; i < table_cap; i++) {
        if (table[i].key == 0 || table[i].block == NULL) continue;
        blocks.count++;
        blocks.requested += table[i].size;
        blocks.usable += malloc_usable_size(table[i].block);
    }
    layout_print(STDERR_FILENO, &blocks);
}
#endif

static void note_peak(void)
{
    rss_at_peak_kib = rss_kib();
#ifdef RSS_LAYOUT
    if (layout_at_peak) print_layout();
#endif
    if (!stats_at_peak) return;
    void (*print)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "hugeslab_stats_print");
    if (print) print();
}

static void *replay_thread(void *arg);

/* Gives the turn to the thread of the next record, started now if it has
 * not run yet; at the trace's end, wakes every thread to leave. Called by
 * the thread that holds the turn. */
static void hand_on(void)
{
    const sizes_record_t *r = next_record();
    if (r == NULL) {
        finished = true;
        for (unsigned t = 0; t < thread_count; t++) sem_post(&turn[t]);
        return;
    }
    unsigned t = r->thread;
    if (!started[t]) {
        started[t] = true;
        int err = pthread_create(&thread_of[t], NULL, replay_thread, (void *)(uintptr_t)t);
        if (err) {
            errno = err;
            die("pthread_create");
        }
    }
    sem_post(&turn[t]);
}

/* Applies the records while they are this thread's, then hands the turn
 * on; returns at the trace's end, or after its last record when the trace
 * says it exited. */
static void *replay_thread(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    for (;;) {
        while (sem_wait(&turn[me]) != 0) {
        }
        for (;;) {
            if (finished) return NULL;
            const sizes_record_t *r = next_record();
            if (r == NULL || r->thread != me) {
                hand_on();
                break;
            }
            apply(r);
            chunk_at++;
            if (++replayed == peak_at) note_peak();
            if (exits[me] && replayed == last_call[me]) {
                hand_on();
                return NULL;
            }
        }
    }
}

int main(int argc, char **argv)
{
    int arg = 1;
    for (; arg < argc; arg++) {
        if (strcmp(argv[arg], "--stats") == 0) {
            stats_at_peak = true;
#ifdef RSS_LAYOUT
        } else if (strcmp(argv[arg], "--layout") == 0) {
            layout_at_peak = true;
#endif
        } else {
            break;
        }
    }
    if (arg + 1 != argc) {
#ifdef RSS_LAYOUT
        fprintf(stderr, "usage: rss_layout [--stats] [--layout] TRACE\n");
#else
        fprintf(stderr, "usage: rss_replay [--stats] TRACE\n");
#endif
        return 2;
    }
    trace_path = argv[arg];
    trace_fd = open(trace_path, O_RDONLY | O_CLOEXEC);
    if (trace_fd < 0) die(trace_path);
    grow();
    survey();
    if (thread_count == 0) {
        fprintf(stderr, BENCH_PROG ": %s holds no record\n", trace_path);
        return 1;
    }
    for (unsigned t = 0; t < thread_count; t++)
        if (sem_init(&turn[t], 0, 0) != 0) die("sem_init");
    long start_kib = rss_kib();
    long faults = page_faults_now();
    double start = now_seconds();
    /* This thread is thread 0; the first record's thread starts. */
    started[0] = true;
    hand_on();
    replay_thread((void *)(uintptr_t)0);
    for (unsigned t = 1; t < thread_count; t++)
        if (started[t]) pthread_join(thread_of[t], NULL);
    double seconds = now_seconds() - start;
    faults = page_faults_now() - faults;
    long hwm_kib = peak_rss_kb(-1);
    const char *from = malloc_provider();
    printf("threads=%u calls=%" PRIu64 " peak_live=%" PRIu64 " start_rss=%ld rss_at_peak=%ld "
           "hwm=%ld overhead=%" PRId64 " faults=%ld seconds=%.3f malloc_from=%s\n",
           thread_count, replayed, peak_live / 1024, start_kib, rss_at_peak_kib, hwm_kib,
           (int64_t)hwm_kib - start_kib - (int64_t)(peak_live / 1024), faults, seconds, from);
    return 0;
}

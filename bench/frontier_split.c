/* frontier split: an experiment, an LD_PRELOAD library placed in front of
 * the allocator under test, that splits the huge page at the end of what a
 * program wrote into a large block once that end has stopped moving.
 *
 *   LD_PRELOAD="build/bench/libfrontiersplit.so build/libhugeslab.so" prog
 *
 * A THP run is faulted a huge page at a time, so the chunk where a program
 * stops writing is resident whole (sort's text ends 1 MiB into a chunk, ls's
 * table of files 428 KiB before one ends). Which chunk that is cannot be
 * known when the run is mapped (bench/README.md, "Runs of 2 MiB chunks"). A
 * thread of this library looks every FRONTIER_MS ms (default 200) at each
 * live block of FRONTIER_MIN_MB MiB or more (default 4): a 2 MiB chunk that
 * is resident whole beside one that is not (or beside the block's end) and
 * has FRONTIER_MIN_ZERO (default 64) or more pages of zeros at that side,
 * the same count as at the look before (and at most FRONTIER_MAX_ZERO,
 * default 512), gets MADV_NOHUGEPAGE and MADV_COLD
 * over one page, which splits its huge page; since Linux 6.12 the split
 * maps the subpages that hold only zeros to the shared zero page, so they
 * leave RSS (a write there later is a fault). At most FRONTIER_MAX splits
 * a block (default 1). FRONTIER_LOG=FILE appends the splits to FILE at exit.
 *
 * Blocks are followed through malloc, calloc, realloc, reallocarray and
 * free; the thread starts at the first large block. It reads the block's
 * memory while the program may write it: what it reads decides only whether
 * to split, and the kernel keeps any subpage that holds data at the split. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOCKS 256
#define CHUNK ((uintptr_t)2 << 20)
#define PAGE ((uintptr_t)4096)
#define EDGES 4 /* frontier chunks remembered per block between looks */

typedef struct block_s {
    char *start;           /* the block as the program sees it; NULL: free slot */
    size_t size;           /* bytes asked for */
    int splits;            /* huge pages split in it so far */
    uintptr_t edge[EDGES]; /* its frontier chunks at the last look */
    int edge_zeros[EDGES]; /* pages of zeros each had on its open side */
} block_t;

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static block_t blocks[MAX_BLOCKS];
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER; /* guards blocks */
static pthread_t looker;
static int looker_started;   /* blocks_lock */
static size_t min_block;     /* bytes of the smallest block followed */
static int total_splits;     /* the looker's */
static int total_zero;       /* pages of zeros in the chunks it split */
static char split_log[4096]; /* one line per split, written out at exit */
static int split_log_len;

static int option(const char *name, int fallback)
{
    const char *v = getenv(name);
    return v ? atoi(v) : fallback;
}

static int resident(int pagemap, uintptr_t address)
{
    uint64_t entry = 0;
    if (pread(pagemap, &entry, sizeof entry, (off_t)(address / PAGE * sizeof entry)) !=
        (ssize_t)sizeof entry)
        return 0;
    return (int)(entry >> 63);
}

static int zero_page(const volatile uint64_t *words)
{
    for (unsigned i = 0; i < PAGE / sizeof *words; i++)
        if (words[i]) return 0;
    return 1;
}

/* Pages of zeros at the chunk's low end (high == 0) or high end. */
static int zeros_at(uintptr_t chunk, int high)
{
    int n = 0;
    while (n < 512 &&
           zero_page((const volatile uint64_t *)(chunk + PAGE * (unsigned)(high ? 511 - n : n))))
        n++;
    return n;
}

static void look_at(block_t *b, int pagemap, int min_zero, int max_zero, int max_splits)
{
    uintptr_t first = (uintptr_t)b->start & ~(CHUNK - 1);
    uintptr_t end = ((uintptr_t)b->start + b->size + CHUNK - 1) & ~(CHUNK - 1);
    uintptr_t seen[EDGES] = {0};
    int seen_zeros[EDGES] = {0};
    int n_seen = 0, below = 0;
    for (uintptr_t c = first; c < end && n_seen < EDGES; c += CHUNK) {
        int whole = resident(pagemap, c) && resident(pagemap, c + CHUNK - PAGE);
        int above = c + CHUNK < end ? resident(pagemap, c + CHUNK) : 0;
        /* The block's first chunk holds the run's header and whatever lies
         * before the block: never split. */
        if (whole && (!below || !above) && c >= (uintptr_t)b->start) {
            int zeros = zeros_at(c, !above);
            int still = 0;
            for (int i = 0; i < EDGES; i++)
                if (b->edge[i] == c && b->edge_zeros[i] == zeros) still = 1;
            seen[n_seen] = c;
            seen_zeros[n_seen++] = zeros;
            if (still && zeros >= min_zero && zeros <= max_zero && b->splits < max_splits) {
                madvise((void *)c, CHUNK, MADV_NOHUGEPAGE);
                madvise((void *)(c + (above ? 0 : CHUNK - PAGE)), PAGE, MADV_COLD);
                b->splits++;
                total_splits++;
                total_zero += zeros;
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (split_log_len < (int)sizeof split_log - 160)
                    split_log_len += snprintf(
                        split_log + split_log_len, sizeof split_log - (size_t)split_log_len,
                        "split: block of %zu B, chunk %lu of %lu, %d pages of zeros at its %s "
                        "end, %ld.%03ld s\n",
                        b->size, (unsigned long)((c - first) / CHUNK),
                        (unsigned long)((end - first) / CHUNK), zeros, above ? "low" : "high",
                        (long)now.tv_sec, now.tv_nsec / 1000000);
            }
        }
        below = whole;
    }
    memcpy(b->edge, seen, sizeof seen);
    memcpy(b->edge_zeros, seen_zeros, sizeof seen_zeros);
}

static void *looker_main(void *arg)
{
    (void)arg;
    int period_ms = option("FRONTIER_MS", 200);
    int min_zero = option("FRONTIER_MIN_ZERO", 64);
    int max_zero = option("FRONTIER_MAX_ZERO", 512);
    int max_splits = option("FRONTIER_MAX", 1);
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    for (;;) {
        struct timespec pause = {period_ms / 1000, (period_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        /* Nothing here allocates: the program's allocator may wait for
         * blocks_lock. */
        pthread_mutex_lock(&blocks_lock);
        for (int i = 0; i < MAX_BLOCKS; i++)
            if (blocks[i].start && blocks[i].splits < max_splits)
                look_at(&blocks[i], pagemap, min_zero, max_zero, max_splits);
        pthread_mutex_unlock(&blocks_lock);
    }
    return NULL;
}

static void follow(void *p, size_t size)
{
    if (!p || size < min_block) return;
    pthread_mutex_lock(&blocks_lock);
    for (int i = 0; i < MAX_BLOCKS; i++) {
        if (blocks[i].start) continue;
        memset(&blocks[i], 0, sizeof blocks[i]);
        blocks[i].start = p;
        blocks[i].size = size;
        break;
    }
    int start = !looker_started;
    looker_started = 1;
    pthread_mutex_unlock(&blocks_lock);
    if (start) pthread_create(&looker, NULL, looker_main, NULL);
}

static void forget(void *p)
{
    if (!p) return;
    pthread_mutex_lock(&blocks_lock);
    for (int i = 0; i < MAX_BLOCKS; i++)
        if (blocks[i].start == p) blocks[i].start = NULL;
    pthread_mutex_unlock(&blocks_lock);
}

static void find_next(void)
{
    if (next_malloc) return;
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    min_block = (size_t)option("FRONTIER_MIN_MB", 4) << 20;
}

/* coreutils close stderr before exit: the log goes to a file. Copied out
 * under the lock, written without it: fopen and fclose allocate and free. */
__attribute__((destructor)) static void write_log(void)
{
    const char *path = getenv("FRONTIER_LOG");
    if (!path) return;
    static char text[sizeof split_log];
    pthread_mutex_lock(&blocks_lock);
    int splits = total_splits, zero = total_zero;
    memcpy(text, split_log, sizeof text);
    pthread_mutex_unlock(&blocks_lock);
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "splits %d, pages of zeros %d\n%s", splits, zero, text);
    fclose(f);
}

void *malloc(size_t size)
{
    find_next();
    void *p = next_malloc(size);
    follow(p, size);
    return p;
}

void *calloc(size_t n, size_t size)
{
    /* dlsym may call calloc before the lookup is done: no block then. */
    if (!next_calloc) {
        find_next();
        if (!next_calloc) return NULL;
    }
    void *p = next_calloc(n, size);
    follow(p, n * size);
    return p;
}

void *realloc(void *old, size_t size)
{
    find_next();
    forget(old);
    void *p = next_realloc(old, size);
    follow(p ? p : old, size);
    return p;
}

void *reallocarray(void *old, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n * size);
}

void free(void *p)
{
    find_next();
    forget(p);
    next_free(p);
}

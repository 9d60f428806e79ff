/* bench_random_mixed: random malloc/free churn over a small working set.
 *
 * Usage: bench_random_mixed [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED
 *                           [MIN_SIZE [MAX_SIZE]]]]]
 * Defaults: 1000000 400 1 16 1040, --rng=libc.
 *
 * Each step draws a slot index; an occupied slot is freed, an empty one gets
 * a new block whose first byte is written.  Sizes are
 *     min + r % (max - min + 1)
 * so with the defaults (16..1040) this is 16 + r % 1025: both ends included,
 * and not the same sequence as 16 + (r & 0x3FF).  The formula is kept
 * fixed so that figures from different runs and allocators stay comparable;
 * change MIN_SIZE/MAX_SIZE, not the formula.
 *
 * Only the loop is timed, and page_faults (minor + major) cover only the
 * loop.  peak_rss_kb is read at the end, after everything is freed (see
 * peak_rss_kb() for why it is VmHWM rather than ru_maxrss; both are printed).
 * Output is one line of key=value pairs on stdout, meant for scripts
 * (bench/compare.py).  The program calls plain
 * malloc()/free(), so LD_PRELOAD picks the allocator under test;
 * malloc_from= names the object that actually supplies malloc, so a preload
 * that silently failed is caught instead of being reported as a result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, Dl_info */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum rng_kind { RNG_LIBC, RNG_XORSHIFT };

static enum rng_kind rng_kind = RNG_LIBC;
static uint64_t xorshift_state;

/* xorshift64*: a handful of cycles, so the allocator rather than rand()'s
 * lock and state update dominates the profile. */
static inline uint32_t next_rand(void)
{
    if (rng_kind == RNG_LIBC)
        return (uint32_t)rand();
    uint64_t x = xorshift_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    xorshift_state = x;
    return (uint32_t)((x * UINT64_C(0x2545F4914F6CDD1D)) >> 32);
}

static void seed_rng(uint64_t seed)
{
    srand((unsigned)seed);
    /* xorshift has a fixed point at 0; mix the seed so seed 0 still works
     * and small seeds do not start with long runs of zero bits. */
    xorshift_state = seed * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x853C49E6748FEA9B);
    if (xorshift_state == 0)
        xorshift_state = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_random_mixed [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED "
            "[MIN_SIZE [MAX_SIZE]]]]]\n"
            "defaults: 1000000 400 1 16 1040 --rng=libc\n");
}

static int parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull accepts a leading '-' and wraps; reject it explicitly. */
    if (*s == '-' || *s == '\0')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    fprintf(stderr, "bench_random_mixed: bad %s: '%s'\n", what, s);
    return -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak RSS of this process image in KiB.  ru_maxrss survives execve(), so a
 * benchmark started from a large parent (python's subprocess forks it) would
 * report the parent's footprint instead of its own; VmHWM belongs to the
 * address space created by execve() and so measures only this program.
 * ru_maxrss is the fallback when /proc is not mounted. */
static long peak_rss_kb(long ru_maxrss)
{
    /* open/read into a stack buffer: stdio would allocate and fault in
     * pages of its own just before the value is read. */
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ru_maxrss;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return ru_maxrss;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nVmHWM:");
    long kb;
    if (p == NULL || sscanf(p + 1, "VmHWM: %ld", &kb) != 1)
        return ru_maxrss;
    return kb;
}

static const char *malloc_provider(void)
{
    /* Resolve through the dynamic linker rather than taking &malloc: in a
     * non-PIE build &malloc may be the executable's own PLT stub. */
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
        return "unknown";
    return info.dli_fname;
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"iterations", "slots", "seed", "min size", "max size"};
    uint64_t val[5] = {1000000, 400, 1, 16, 1040};
    int npos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--rng=libc") == 0) {
            rng_kind = RNG_LIBC;
        } else if (strcmp(a, "--rng=xorshift") == 0) {
            rng_kind = RNG_XORSHIFT;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "bench_random_mixed: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (npos < 5) {
            if (parse_u64(a, names[npos], &val[npos]) != 0)
                return 2;
            npos++;
        } else {
            usage(stderr);
            return 2;
        }
    }

    uint64_t iterations = val[0], slots = val[1], seed = val[2];
    uint64_t min_size = val[3], max_size = val[4];
    /* The first byte of every block is written, so a zero-size request
     * would be out of bounds; sizes must also fit rand()'s 31-bit range. */
    if (slots == 0 || slots > RAND_MAX || min_size == 0 || min_size > max_size ||
        max_size - min_size >= (uint64_t)RAND_MAX) {
        fprintf(stderr, "bench_random_mixed: need SLOTS in 1..%d and 1 <= MIN_SIZE <= MAX_SIZE "
                        "with MAX_SIZE - MIN_SIZE < %d\n",
                RAND_MAX, RAND_MAX);
        return 2;
    }
    uint32_t span = (uint32_t)(max_size - min_size + 1);
    uint32_t ws = (uint32_t)slots;

    /* calloc'ed before the timed loop so its pages are not counted. */
    char **slot = calloc(ws, sizeof *slot);
    if (slot == NULL) {
        fprintf(stderr, "bench_random_mixed: cannot allocate %" PRIu32 " slots\n", ws);
        return 1;
    }
    seed_rng(seed);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_seconds();

    for (uint64_t i = 0; i < iterations; i++) {
        uint32_t k = next_rand() % ws;
        if (slot[k] != NULL) {
            free(slot[k]);
            slot[k] = NULL;
        } else {
            size_t size = (size_t)(min_size + next_rand() % span);
            char *p = malloc(size);
            if (p == NULL) {
                fprintf(stderr, "bench_random_mixed: malloc(%zu) failed at step %" PRIu64 "\n",
                        size, i);
                return 1;
            }
            /* volatile: the store must reach memory so the page is touched,
             * even though nothing reads it before free(). */
            *(volatile char *)p = (char)i;
            slot[k] = p;
        }
    }

    double t1 = now_seconds();
    getrusage(RUSAGE_SELF, &ru1);

    for (uint32_t k = 0; k < ws; k++)
        free(slot[k]);
    free(slot);

    struct rusage ru_end;
    getrusage(RUSAGE_SELF, &ru_end);

    double seconds = t1 - t0;
    long faults = (ru1.ru_minflt - ru0.ru_minflt) + (ru1.ru_majflt - ru0.ru_majflt);
    double ops = seconds > 0 ? (double)iterations / seconds : 0.0;
    /* Before malloc_provider(): dladdr() walks symbol tables and would
     * fault in pages that are not the allocator's. */
    long peak_kb = peak_rss_kb(ru_end.ru_maxrss);
    const char *provider = malloc_provider();

    /* malloc_from stays last: it is a path and may contain spaces. */
    printf("ops_per_sec=%.0f page_faults=%ld peak_rss_kb=%ld seconds=%.6f ru_maxrss_kb=%ld"
           " iterations=%" PRIu64
           " slots=%" PRIu32 " seed=%" PRIu64 " min_size=%" PRIu64 " max_size=%" PRIu64
           " rng=%s malloc_from=%s\n",
           ops, faults, peak_kb, seconds, ru_end.ru_maxrss, iterations, ws, seed, min_size,
           max_size, rng_kind == RNG_LIBC ? "libc" : "xorshift", provider);
    return 0;
}

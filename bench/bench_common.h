/* Pieces shared by bench_random_mixed.c, thp_workload.c, bench_mt.c,
 * bench_memory.c and sizes/rss_replay.c.
 *
 * Header-only (static functions) so that each benchmark stays a single
 * translation unit built by one compiler command, and the hot loop and the
 * generator can be inlined into it exactly as before.
 *
 * Define BENCH_PROG to the program's name before including: it prefixes
 * every message, and bench/compare.py and bench/thp-compare show those
 * messages as they are.
 *
 * The "mixed" part (mixed_run and what it calls) is the workload of
 * bench_random_mixed; thp_workload runs the very same code so that both
 * programs make the same sequence of calls for a given seed.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

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

#ifndef BENCH_PROG
#error "define BENCH_PROG before including bench_common.h"
#endif

/* xorshift64*: a handful of cycles, so the allocator rather than the
 * generator dominates the profile. */
static inline uint32_t xorshift64s_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * UINT64_C(0x2545F4914F6CDD1D)) >> 32);
}

static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads a small /proc file whole into buf (NUL-terminated) with open and
 * read only; returns its length, 0 when it cannot be read. */
static inline size_t read_proc_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return (size_t)n;
}

/* The number after "name:" at the start of a line of a /proc text read by
 * read_proc_text (smaps_rollup, status: KiB for the sizes); -1 when no line
 * has it. */
static inline long proc_field(const char *buf, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = buf; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncmp(p, name, len) == 0 && p[len] == ':') return strtol(p + len + 1, NULL, 10);
    }
    return -1;
}

/* Page faults of the process so far, minor and major. */
static inline long page_faults_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}

/* Peak RSS of this process image in KiB.  ru_maxrss survives execve(), so a
 * benchmark started from a large parent (python's subprocess forks it) would
 * report the parent's footprint instead of its own; VmHWM belongs to the
 * address space created by execve() and so measures only this program.
 * fallback (the caller's ru_maxrss) is for when /proc is not mounted. */
static inline long peak_rss_kb(long fallback)
{
    /* open/read into a stack buffer: stdio would allocate and fault in
     * pages of its own just before the value is read. */
    char buf[4096];
    if (read_proc_text("/proc/self/status", buf, sizeof buf) == 0) return fallback;
    const char *p = strstr(buf, "\nVmHWM:");
    long kb;
    if (p == NULL || sscanf(p + 1, "VmHWM: %ld", &kb) != 1) return fallback;
    return kb;
}

/* The object that actually supplies malloc, printed as malloc_from= so that
 * a preload that silently failed is caught instead of being reported as a
 * result.  Call it after the last measurement: dladdr() walks symbol tables
 * and would fault in pages that are not the allocator's. */
static inline const char *malloc_provider(void)
{
    /* Resolve through the dynamic linker rather than taking &malloc: in a
     * non-PIE build &malloc may be the executable's own PLT stub. */
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) return "unknown";
    return info.dli_fname;
}

static inline int parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull accepts a leading '-' and wraps; reject it explicitly. */
    if (*s == '-' || *s == '\0') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    fprintf(stderr, BENCH_PROG ": bad %s: '%s'\n", what, s);
    return -1;
}

/* ---- the mixed workload ------------------------------------------------ */

enum rng_kind { RNG_LIBC, RNG_XORSHIFT };

static enum rng_kind rng_kind = RNG_LIBC;
static uint64_t xorshift_state;

static inline uint32_t next_rand(void)
{
    if (rng_kind == RNG_LIBC) return (uint32_t)rand();
    return xorshift64s_next(&xorshift_state);
}

static inline void seed_rng(uint64_t seed)
{
    srand((unsigned)seed);
    /* xorshift has a fixed point at 0; mix the seed so seed 0 still works
     * and small seeds do not start with long runs of zero bits. */
    xorshift_state = seed * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x853C49E6748FEA9B);
    if (xorshift_state == 0) xorshift_state = 1;
}

static inline const char *rng_name(void) { return rng_kind == RNG_LIBC ? "libc" : "xorshift"; }

struct mixed_params {
    uint64_t iterations, slots, seed, min_size, max_size;
};

/* [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED [MIN_SIZE [MAX_SIZE]]]]].
 * Returns -1 when the program should go on, otherwise its exit status. */
static inline int mixed_parse(int argc, char **argv, struct mixed_params *mp, void (*usage)(FILE *))
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
            fprintf(stderr, BENCH_PROG ": unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (npos < 5) {
            if (parse_u64(a, names[npos], &val[npos]) != 0) return 2;
            npos++;
        } else {
            usage(stderr);
            return 2;
        }
    }

    mp->iterations = val[0];
    mp->slots = val[1];
    mp->seed = val[2];
    mp->min_size = val[3];
    mp->max_size = val[4];
    /* The first byte of every block is written, so a zero-size request
     * would be out of bounds; sizes must also fit rand()'s 31-bit range. */
    if (mp->slots == 0 || mp->slots > RAND_MAX || mp->min_size == 0 ||
        mp->min_size > mp->max_size || mp->max_size - mp->min_size >= (uint64_t)RAND_MAX) {
        fprintf(stderr,
                BENCH_PROG ": need SLOTS in 1..%d and 1 <= MIN_SIZE <= MAX_SIZE "
                           "with MAX_SIZE - MIN_SIZE < %d\n",
                RAND_MAX, RAND_MAX);
        return 2;
    }
    return -1;
}

struct mixed_result {
    char **slot;      /* the live set, still allocated; see mixed_free() */
    double seconds;   /* the loop only */
    long page_faults; /* minor + major, the loop only */
};

/* Runs the timed loop and returns with the live set still allocated, so a
 * caller can measure the footprint the loop ran with before mixed_free().
 * Returns 0, or an exit status after printing why. */
static inline int mixed_loop(const struct mixed_params *mp, struct mixed_result *res)
{
    uint64_t iterations = mp->iterations, min_size = mp->min_size;
    uint32_t span = (uint32_t)(mp->max_size - min_size + 1);
    uint32_t ws = (uint32_t)mp->slots;

    /* calloc'ed before the timed loop so its pages are not counted. */
    char **slot = calloc(ws, sizeof *slot);
    if (slot == NULL) {
        fprintf(stderr, BENCH_PROG ": cannot allocate %" PRIu32 " slots\n", ws);
        return 1;
    }
    seed_rng(mp->seed);

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
                fprintf(stderr, BENCH_PROG ": malloc(%zu) failed at step %" PRIu64 "\n", size, i);
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

    res->slot = slot;
    res->seconds = t1 - t0;
    res->page_faults = (ru1.ru_minflt - ru0.ru_minflt) + (ru1.ru_majflt - ru0.ru_majflt);
    return 0;
}

/* Both steps at once, for main().  Returns -1 when the program should go
 * on (the live set is then in res), otherwise its exit status. */
static inline int mixed_run(int argc, char **argv, void (*usage)(FILE *), struct mixed_params *mp,
                            struct mixed_result *res)
{
    int rc = mixed_parse(argc, argv, mp, usage);
    if (rc >= 0) return rc;
    rc = mixed_loop(mp, res);
    return rc != 0 ? rc : -1;
}

static inline void mixed_free(const struct mixed_params *mp, struct mixed_result *res)
{
    for (uint32_t k = 0; k < (uint32_t)mp->slots; k++) free(res->slot[k]);
    free(res->slot);
    res->slot = NULL;
}

static inline double mixed_ops_per_sec(const struct mixed_params *mp,
                                       const struct mixed_result *res)
{
    return res->seconds > 0 ? (double)mp->iterations / res->seconds : 0.0;
}

#endif

/* Shared helpers for the hugeslab tests: failure counting, deterministic
 * pattern fill/check, hugeslab detection, /proc readers.
 *
 * Exit status convention of every test program (tests/run.sh relies on it):
 *   0  all checks passed            (last line "PASS")
 *   1  at least one check failed    (lines "FAIL: reason" on stderr)
 *   77 the test does not apply here (line "SKIP: reason")
 * Anything else (signal, other code) is a failure as well.
 */
#ifndef HS_TEST_UTIL_H
#define HS_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HS_EXIT_SKIP 77

#if defined(__GNUC__)
#define HS_UNUSED __attribute__((unused))
#define HS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HS_UNUSED
#define HS_PRINTF(a, b)
#endif

static int hs_failures HS_UNUSED;
static int hs_checks HS_UNUSED;

/* Prints "FAIL: <file>:<line>: message" to stderr (first 50 only) and counts it. */
static HS_PRINTF(3, 4) HS_UNUSED void hs_fail_at(const char *file, int line, const char *fmt, ...)
{
    hs_failures++;
    if (hs_failures > 50) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL: %s:%d: %s\n", file, line, buf);
    fflush(stderr);
}

#define HS_FAIL(...) (hs_checks++, hs_fail_at(__FILE__, __LINE__, __VA_ARGS__))

/* CHECK(cond, fmt, ...): counts a check, reports a failure when cond is false. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        hs_checks++;                                                                               \
        if (!(cond)) hs_fail_at(__FILE__, __LINE__, "(" #cond ") " __VA_ARGS__);                   \
    } while (0)

static HS_UNUSED void hs_note(const char *fmt, ...) HS_PRINTF(1, 2);
static HS_UNUSED void hs_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static HS_UNUSED HS_PRINTF(1, 2) void hs_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(HS_EXIT_SKIP);
}

/* Ends a test program: prints the verdict and returns the exit status. */
static HS_UNUSED int hs_finish(const char *name)
{
    if (hs_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, hs_failures, hs_checks);
        return 1;
    }
    fprintf(stderr, "PASS %s (%d checks)\n", name, hs_checks);
    return 0;
}

/* Hides a value from the optimizer (sizes near SIZE_MAX would otherwise draw
 * -Walloc-size-larger-than warnings or constant folding). */
static inline size_t hs_opaque(size_t x)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(x));
#endif
    return x;
}

static inline void *hs_opaque_ptr(void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(p));
#endif
    return p;
}

/* ---- deterministic patterns ------------------------------------------- */

static inline uint64_t hs_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Word i of the pattern for `seed`; independent of the total length so that a
 * prefix of a filled block matches the pattern of the shorter length. */
static inline uint64_t hs_pattern_word(uint64_t seed, size_t i)
{
    return hs_mix64(seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i + 1);
}

static HS_UNUSED void hs_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *c = (unsigned char *)p;
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = hs_pattern_word(seed, i);
        memcpy(c + i * 8, &w, 8);
    }
    if (n % 8) {
        uint64_t w = hs_pattern_word(seed, words);
        memcpy(c + words * 8, &w, n % 8);
    }
}

/* Returns the offset of the first byte that differs from the pattern, or
 * SIZE_MAX when all n bytes match. */
static HS_UNUSED size_t hs_check_fill(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *c = (const unsigned char *)p;
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = hs_pattern_word(seed, i), got;
        memcpy(&got, c + i * 8, 8);
        if (got != w) {
            for (size_t b = 0; b < 8; b++)
                if (((const unsigned char *)&got)[b] != ((const unsigned char *)&w)[b])
                    return i * 8 + b;
        }
    }
    if (n % 8) {
        uint64_t w = hs_pattern_word(seed, words);
        if (memcmp(c + words * 8, &w, n % 8) != 0) {
            for (size_t b = 0; b < n % 8; b++)
                if (c[words * 8 + b] != ((const unsigned char *)&w)[b]) return words * 8 + b;
        }
    }
    return SIZE_MAX;
}

/* Offset of the first non-zero byte, or SIZE_MAX. */
static HS_UNUSED size_t hs_first_nonzero(const void *p, size_t n)
{
    const unsigned char *c = (const unsigned char *)p;
    size_t i = 0;
    while (i < n && ((uintptr_t)(c + i) & 7))
        if (c[i++]) return i - 1;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, c + i, 8);
        if (w) break;
    }
    for (; i < n; i++)
        if (c[i]) return i;
    return SIZE_MAX;
}

/* ---- random numbers ---------------------------------------------------- */

typedef struct {
    uint64_t s;
} hs_rng_t;

static inline void hs_rng_seed(hs_rng_t *r, uint64_t seed)
{
    r->s = hs_mix64(seed + 0x1234567ULL) | 1;
}

static inline uint64_t hs_rng_next(hs_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static inline uint64_t hs_rng_below(hs_rng_t *r, uint64_t n) { return n ? hs_rng_next(r) % n : 0; }

/* ---- environment ------------------------------------------------------- */

/* True when the process runs on hugeslab: either the test was built against
 * the hugeslab_* names (HS_PREFIX), or `malloc` resolves into a loaded object
 * that also defines hugeslab_malloc. */
static HS_UNUSED int hs_under_hugeslab(void)
{
#ifdef HS_PREFIX
    return 1;
#else
    void *hm = dlsym(RTLD_DEFAULT, "hugeslab_malloc");
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!hm || !m) return 0;
    Dl_info a, b;
    if (!dladdr(hm, &a) || !dladdr(m, &b)) return 0;
    return a.dli_fbase == b.dli_fbase;
#endif
}

static HS_UNUSED int hs_expect_hugeslab(void)
{
    const char *e = getenv("HS_EXPECT_HUGESLAB");
    return e && *e && strcmp(e, "0") != 0;
}

/* Verifies the environment: when HS_EXPECT_HUGESLAB=1 and malloc is not
 * hugeslab's, that is a failure (the preload did not take). Returns whether
 * hugeslab-specific checks should run. */
static HS_UNUSED int hs_setup(const char *name)
{
    int hs = hs_under_hugeslab();
    if (hs_expect_hugeslab() && !hs) {
        fprintf(stderr,
                "FAIL: %s: HS_EXPECT_HUGESLAB=1 but malloc is not hugeslab's "
                "(LD_PRELOAD missing or not effective)\n",
                name);
        exit(1);
    }
    if (!hs) hs_note("%s: running on the system allocator; hugeslab-specific checks off", name);
    return hs;
}

/* Reads the number after "Key:" in a /proc file of "Key:   123 kB" lines
 * (/proc/self/status, /proc/meminfo); -1 when absent. */
static HS_UNUSED long hs_proc_field(const char *path, const char *key)
{
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static HS_UNUSED long hs_proc_status_kib(const char *key)
{
    return hs_proc_field("/proc/self/status", key);
}

/* A file (of /proc) into buf whole, at most cap - 1 bytes and a NUL, with
 * read(2) and no stdio, which allocates: usable where malloc may fail
 * (RLIMIT_AS), in the child of a multithreaded parent's fork, and between
 * two looks that no block may come between. Its length; -1 when it cannot
 * be opened. */
static HS_UNUSED long hs_read_file_raw(const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    while (len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)r;
    close(fd);
    buf[len] = 0;
    return (long)len;
}

/* hs_proc_field without stdio (hs_read_file_raw): usable where malloc may
 * fail, in a fork child, and in a thread whose first block is to be
 * counted. */
static HS_UNUSED long hs_proc_field_raw(const char *path, const char *key)
{
    char buf[8192];
    long v = -1;
    size_t kl = strlen(key);
    if (hs_read_file_raw(path, buf, sizeof buf) < 0) return -1;
    for (char *l = buf; l && *l;) {
        if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
            v = strtol(l + kl + 1, NULL, 10);
            break;
        }
        l = strchr(l, '\n');
        if (l) l++;
    }
    return v;
}

static HS_UNUSED long hs_proc_status_kib_raw(const char *key)
{
    return hs_proc_field_raw("/proc/self/status", key);
}

/* ---- another thread's frees ---------------------------------------------- */

typedef struct {
    void **blocks;  /* blocks to free */
    unsigned count; /* how many */
} hs_frees_t;

static HS_UNUSED void *hs_free_all(void *arg)
{
    hs_frees_t *f = (hs_frees_t *)arg;
    for (unsigned i = 0; i < f->count; i++) free(f->blocks[i]);
    return NULL;
}

/* Sleeps ms milliseconds, through signals. */
static HS_UNUSED void hs_sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Frees the blocks on another thread while this one waits in pthread_join
 * (their owner sleeps). False, counted as a failure, when the thread could
 * not be made. */
static HS_UNUSED bool hs_free_on_other_thread(void **blocks, unsigned count)
{
    hs_frees_t f = {blocks, count};
    pthread_t t;
    if (pthread_create(&t, NULL, hs_free_all, &f) != 0) {
        HS_FAIL("pthread_create");
        return false;
    }
    pthread_join(t, NULL);
    return true;
}

#endif /* HS_TEST_UTIL_H */

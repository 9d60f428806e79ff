/* purge_bench: what returning idle memory costs with each purge backend
 * (HUGESLAB_PURGE_BACKEND=madvise|uring) and advice (HUGESLAB_PURGE=free|
 * dontneed), and what it does to a program thread running meanwhile.
 *
 * Usage: purge_bench [--runs N] [--mb M]
 *        purge_bench --child [--mb M]
 *
 * The driver runs every combination N times (default 5), round-robin with the
 * first combination rotated each round so that drift on a shared machine
 * lands on all of them, each run in a fresh process (the options are read
 * from the environment at load time, and a used heap would not be a clean
 * start). It prints one raw line per run and a Markdown table of medians.
 *
 * One run (--child):
 * 1. a program thread starts a malloc/free loop on 100 slots of 64..1024 B
 *    and counts operations per 10 ms window, until the end;
 * 2. M MiB (default 512) of 64..1024 B blocks are allocated, touched and all
 *    freed; the pointer array is mmap()ed and pre-faulted before the
 *    baseline, so it is neither heap nor part of the RSS delta;
 * 3. every 1 ms the main thread samples hugeslab_stats(): bytes_purged_total
 *    and purge_calls less what threads gave back at once (the purge thread's
 *    share), and the kernel's Rss / LazyFree (hugeslab_stats reads
 *    /proc/self/smaps_rollup itself), until the memory is back and the
 *    purge counter has been still for 300 ms.
 *
 * Figures (one key=value line):
 *   latency_ms    end of the frees until the footprint (Rss - LazyFree for
 *                 MADV_FREE, Rss for MADV_DONTNEED) has lost 95% of its rise
 *                 over the baseline; includes HUGESLAB_PURGE_DELAY_MS
 *   wall_gib_s    bytes purged after the first move of bytes_purged_total
 *                 divided by the time to its last move (the counter moves
 *                 after each batch, so the first batch is not timed)
 *   purge_cpu_ms  CPU of the hugeslab-purge thread over the run's purge
 *   iowq_cpu_ms   CPU of io-wq workers (iou-wrk-*) found in /proc/self/task
 *   iowq_threads  how many there were
 *   cpu_gib_s     bytes purged / (purge_cpu + iowq_cpu)
 *   ops_ratio     program ops/s in the 10 ms windows overlapping the purge
 *                 over the windows between the frees and the purge
 *   purge_calls   from hugeslab_stats
 *
 * Thread CPU comes from the per-thread CPU clock (nanoseconds), because
 * utime + stime in /proc/self/task/TID/stat count 10 ms ticks, coarser than
 * the whole purge; the tick figures are printed too (stat_ticks).
 *
 * Linked against libhugeslab (-lhugeslab before libc), so malloc is
 * hugeslab's; the child checks that the heap really grew in hugeslab.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hugeslab.h"

#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * MiB)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift64s(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t block_size(uint64_t *state) { return 64 + (size_t)(xorshift64s(state) % 961); }

/* ---- the program thread ---------------------------------------------------- */

#define WINDOW_NS 10000000u
#define MAX_WINDOWS 8192
#define PROGRAM_SLOTS 100

typedef struct window_s {
    uint64_t start, end, ops;
} window_t;

static window_t windows[MAX_WINDOWS];
static atomic_uint window_count;
static atomic_bool program_stop;

static void *program_main(void *arg)
{
    (void)arg;
    void *slots[PROGRAM_SLOTS] = {0};
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    uint64_t start = now_ns(), ops = 0;
    while (!atomic_load_explicit(&program_stop, memory_order_relaxed)) {
        /* The clock is read every 64 operations: often enough for 10 ms
         * windows, rarely enough not to be what is measured. */
        for (int i = 0; i < 64; i++) {
            uint64_t r = xorshift64s(&rng);
            unsigned slot = (unsigned)(r % PROGRAM_SLOTS);
            if (slots[slot]) {
                free(slots[slot]);
                slots[slot] = NULL;
            } else {
                slots[slot] = malloc(64 + (size_t)((r >> 32) % 961));
                if (slots[slot]) *(volatile char *)slots[slot] = 1;
            }
        }
        ops += 64;
        uint64_t t = now_ns();
        if (t - start >= WINDOW_NS) {
            unsigned n = atomic_load_explicit(&window_count, memory_order_relaxed);
            if (n < MAX_WINDOWS) {
                windows[n] = (window_t){start, t, ops};
                atomic_store_explicit(&window_count, n + 1, memory_order_release);
            }
            start = t;
            ops = 0;
        }
    }
    for (unsigned i = 0; i < PROGRAM_SLOTS; i++) free(slots[i]);
    return NULL;
}

/* ---- thread CPU ---------------------------------------------------------------- */

/* The kernel's clock id for one thread of this process, as glibc's
 * pthread_getcpuclockid builds it; the purge thread and io-wq workers have
 * no pthread_t here, only a TID. */
static clockid_t thread_clock(pid_t tid) { return (clockid_t)((~(unsigned)tid << 3) | 4 | 2); }

static int64_t thread_cpu_ns(pid_t tid)
{
    struct timespec ts;
    if (clock_gettime(thread_clock(tid), &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = '\0';
    return (int)n;
}

/* utime + stime from /proc/self/task/TID/stat, in clock ticks. */
static long stat_ticks(pid_t tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    if (read_small(path, buf, sizeof buf) < 0) return -1;
    /* comm may hold spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (long)(utime + stime);
}

typedef struct task_cpu_s {
    pid_t purge_tid;
    int64_t purge_ns;
    long purge_ticks;
    unsigned iowq_threads;
    int64_t iowq_ns;
    long iowq_ticks;
} task_cpu_t;

static void scan_tasks(task_cpu_t *out)
{
    memset(out, 0, sizeof *out);
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        pid_t tid = (pid_t)atoi(de->d_name);
        char path[64], comm[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
        if (read_small(path, comm, sizeof comm) < 0) continue;
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, "hugeslab-purge") == 0) {
            out->purge_tid = tid;
            out->purge_ns = thread_cpu_ns(tid);
            out->purge_ticks = stat_ticks(tid);
        } else if (strncmp(comm, "iou-wrk-", 8) == 0) {
            int64_t ns = thread_cpu_ns(tid);
            long ticks = stat_ticks(tid);
            out->iowq_threads++;
            if (ns > 0) out->iowq_ns += ns;
            if (ticks > 0) out->iowq_ticks += ticks;
        }
    }
    closedir(dir);
}

/* ---- one run ------------------------------------------------------------------- */

#define MAX_SAMPLES 30000 /* 30 s at 1 ms */

typedef struct sample_s {
    uint64_t t, purged, calls;
    int64_t footprint;
} sample_t;

static sample_t samples[MAX_SAMPLES];

static int64_t footprint(const hugeslab_stats_t *s, bool dontneed)
{
    /* MADV_FREE pages stay in Rss until reclaim; LazyFree is what says they
     * are given back. */
    return dontneed ? s->kernel_rss : s->kernel_rss - s->kernel_lazy_free;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static double median(double *v, unsigned n);

static int run_child(size_t total_bytes)
{
    const char *advice = getenv("HUGESLAB_PURGE");
    const char *backend = getenv("HUGESLAB_PURGE_BACKEND");
    bool dontneed = advice && strcmp(advice, "dontneed") == 0;

    /* Sizes are drawn twice from the same seed: once to size the pointer
     * array, once to allocate, so the array can be faulted in up front. */
    uint64_t rng = 42;
    size_t count = 0;
    for (size_t sum = 0; sum < total_bytes; count++) sum += block_size(&rng);
    void **blocks = mmap(NULL, count * sizeof *blocks, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (blocks == MAP_FAILED) {
        perror("purge_bench: mmap");
        return 1;
    }

    pthread_t program;
    if (pthread_create(&program, NULL, program_main, NULL) != 0) {
        fprintf(stderr, "purge_bench: cannot start the program thread\n");
        return 1;
    }
    /* Let the program thread's heap settle into the baseline. */
    sleep_until(now_ns() + 100000000u);
    hugeslab_stats_t s0, s;
    hugeslab_stats(&s0);
    int64_t baseline = footprint(&s0, dontneed);

    rng = 42;
    for (size_t i = 0; i < count; i++) {
        size_t size = block_size(&rng);
        char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "purge_bench: malloc(%zu) failed\n", size);
            return 1;
        }
        memset(p, (int)i, size);
        blocks[i] = p;
    }
    hugeslab_stats(&s);
    int64_t anon_huge = s.kernel_anon_huge;
    if (s.bytes_in_slabs < s0.bytes_in_slabs + total_bytes / 2) {
        fprintf(stderr, "purge_bench: the blocks did not come from hugeslab\n");
        return 1;
    }
    /* Freed in 16 strided passes rather than in order: in order, each
     * SuperSlab turns idle at its own moment over the whole free loop, and
     * the purges would follow those moments (one small pass every few ms)
     * instead of the backend's speed. Strided, every SuperSlab empties in
     * the last pass, so they all fall due together and are purged in one
     * burst, like a program dropping a large structure. */
    uint64_t t_free_start = now_ns();
    for (size_t pass = 0; pass < 16; pass++)
        for (size_t i = pass; i < count; i += 16) free(blocks[i]);
    uint64_t t_free_end = now_ns();
    task_cpu_t cpu0, cpu1;
    scan_tasks(&cpu0);

    unsigned n = 0;
    int64_t peak = baseline;
    uint64_t last_move = 0, last_purged = UINT64_MAX, t = t_free_end;
    int64_t threshold = INT64_MIN;
    uint64_t t_reached = 0;
    bool timed_out = false;
    for (;;) {
        hugeslab_stats(&s);
        samples[n] = (sample_t){now_ns(), s.bytes_purged_total - s.bytes_purged_at_once,
                                s.purge_calls - s.purge_calls_at_once, footprint(&s, dontneed)};
        if (n == 0) {
            peak = samples[0].footprint;
            threshold = peak - (peak - baseline) * 95 / 100;
            last_purged = samples[0].purged;
        }
        if (samples[n].footprint > peak) {
            /* Faults still landing after the frees: the peak moves. */
            peak = samples[n].footprint;
            threshold = peak - (peak - baseline) * 95 / 100;
        }
        if (!t_reached && samples[n].footprint <= threshold) t_reached = samples[n].t;
        if (samples[n].purged != last_purged) {
            last_purged = samples[n].purged;
            last_move = samples[n].t;
        }
        n++;
        if (t_reached && last_move && samples[n - 1].t - last_move > 300000000u) break;
        if (n == MAX_SAMPLES) {
            timed_out = true;
            break;
        }
        t += 1000000u;
        sleep_until(t);
    }
    scan_tasks(&cpu1);
    atomic_store(&program_stop, true);
    pthread_join(program, NULL);

    /* The counter moves once per batch, after the batch: the first move
     * ends the first batch, the last move ends the purge. */
    uint64_t start_purged = samples[0].purged;
    unsigned first = 0, last = 0;
    for (unsigned i = 1; i < n; i++)
        if (samples[i].purged != samples[i - 1].purged) {
            if (!first) first = i;
            last = i;
        }
    uint64_t purged = samples[n - 1].purged - (s0.bytes_purged_total - s0.bytes_purged_at_once);
    double wall_gib_s = -1;
    if (first && last > first)
        wall_gib_s = (double)(samples[last].purged - samples[first].purged) / GiB /
                     ((double)(samples[last].t - samples[first].t) / 1e9);
    else if (first)
        /* All of it in one batch between two samples: at most 1 ms. */
        wall_gib_s = (double)(samples[first].purged - start_purged) / GiB /
                     ((double)(samples[first].t - samples[first - 1].t) / 1e9);
    /* The purge began at most one sample interval before the first move
     * (plus the first batch); before that the program ran next to an idle
     * purge thread. */
    uint64_t purge_begin = first ? samples[first - 1].t : 0;
    uint64_t purge_end = last ? samples[last].t : 0;

    double before[MAX_WINDOWS], during[MAX_WINDOWS];
    unsigned nb = 0, nd = 0, nw = atomic_load(&window_count);
    for (unsigned i = 0; i < nw; i++) {
        double rate = (double)windows[i].ops / ((double)(windows[i].end - windows[i].start) / 1e9);
        if (windows[i].start >= t_free_end + 20000000u && windows[i].end <= purge_begin)
            before[nb++] = rate;
        else if (windows[i].end > purge_begin && windows[i].start < purge_end + 1000000u)
            during[nd++] = rate;
    }
    double ops_before = nb ? median(before, nb) : -1;
    double ops_during = nd ? median(during, nd) : -1;

    int64_t purge_ns =
        cpu1.purge_ns >= 0 && cpu0.purge_ns >= 0 ? cpu1.purge_ns - cpu0.purge_ns : -1;
    int64_t iowq_ns = cpu1.iowq_ns - cpu0.iowq_ns;
    double cpu_s = (double)(purge_ns > 0 ? purge_ns : 0) / 1e9 + (double)iowq_ns / 1e9;
    printf("result backend=%s advice=%s latency_ms=%.1f wall_gib_s=%.2f purge_cpu_ms=%.2f "
           "iowq_cpu_ms=%.2f iowq_threads=%u cpu_gib_s=%.2f ops_before=%.0f ops_during=%.0f "
           "ops_ratio=%.3f windows_before=%u windows_during=%u purge_calls=%" PRIu64
           " purged_mib=%.1f purge_span_ms=%.1f peak_delta_mib=%.1f anon_huge_mib=%.1f "
           "free_ms=%.1f stat_ticks_purge=%ld stat_ticks_iowq=%ld timed_out=%d\n",
           backend ? backend : "madvise", dontneed ? "dontneed" : "free",
           t_reached ? (double)(t_reached - t_free_end) / 1e6 : -1.0, wall_gib_s,
           (double)purge_ns / 1e6, (double)iowq_ns / 1e6, cpu1.iowq_threads,
           cpu_s > 0 ? (double)purged / GiB / cpu_s : -1.0, ops_before, ops_during,
           ops_before > 0 && ops_during > 0 ? ops_during / ops_before : -1.0, nb, nd,
           samples[n - 1].calls - (s0.purge_calls - s0.purge_calls_at_once), (double)purged / MiB,
           first ? (double)(purge_end - purge_begin) / 1e6 : -1.0, (double)(peak - baseline) / MiB,
           (double)anon_huge / MiB, (double)(t_free_end - t_free_start) / 1e6,
           cpu1.purge_ticks - cpu0.purge_ticks, cpu1.iowq_ticks - cpu0.iowq_ticks, timed_out);
    fflush(stdout);
    return timed_out ? 2 : 0;
}

/* ---- the driver ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

enum {
    F_LATENCY,
    F_WALL,
    F_PURGE_CPU,
    F_IOWQ_CPU,
    F_IOWQ_THREADS,
    F_CPU_GIB,
    F_RATIO,
    F_CALLS,
    F_PURGED,
    F_COUNT
};
static const char *const field_keys[F_COUNT] = {"latency_ms",  "wall_gib_s",   "purge_cpu_ms",
                                                "iowq_cpu_ms", "iowq_threads", "cpu_gib_s",
                                                "ops_ratio",   "purge_calls",  "purged_mib"};

static const struct {
    const char *backend, *advice;
} configs[4] = {
    {"madvise", "free"}, {"uring", "free"}, {"madvise", "dontneed"}, {"uring", "dontneed"}};

#define MAX_RUNS 101
static double values[4][F_COUNT][MAX_RUNS];
static unsigned ok_runs[4], failed_runs[4];

static bool parse_result(const char *line, double *out)
{
    for (int f = 0; f < F_COUNT; f++) {
        char key[48];
        snprintf(key, sizeof key, " %s=", field_keys[f]);
        const char *p = strstr(line, key);
        if (!p) return false;
        out[f] = strtod(p + strlen(key), NULL);
    }
    return true;
}

static int run_one(const char *self, int config, const char *mb)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        setenv("HUGESLAB_PURGE_BACKEND", configs[config].backend, 1);
        setenv("HUGESLAB_PURGE", configs[config].advice, 1);
        /* hugetlb SuperSlabs are unmapped, not madvised: they would measure
         * neither backend. */
        setenv("HUGESLAB_BACKING", "thp", 0);
        execl(self, self, "--child", "--mb", mb, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    char line[2048];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof line - 1 && (got = read(pipefd[0], line + len, sizeof line - 1 - len)) > 0)
        len += (size_t)got;
    line[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    fputs(len ? line : "result (no output)\n", stdout);
    double fields[F_COUNT];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !parse_result(line, fields)) {
        failed_runs[config]++;
        return 0;
    }
    unsigned k = ok_runs[config]++;
    for (int f = 0; f < F_COUNT; f++) values[config][f][k] = fields[f];
    return 0;
}

static double med_of(int config, int field)
{
    double tmp[MAX_RUNS];
    unsigned n = ok_runs[config];
    if (!n) return -1;
    memcpy(tmp, values[config][field], n * sizeof *tmp);
    return median(tmp, n);
}

static double min_of(int config, int field)
{
    double m = values[config][field][0];
    for (unsigned i = 1; i < ok_runs[config]; i++)
        if (values[config][field][i] < m) m = values[config][field][i];
    return m;
}

static double max_of(int config, int field)
{
    double m = values[config][field][0];
    for (unsigned i = 1; i < ok_runs[config]; i++)
        if (values[config][field][i] > m) m = values[config][field][i];
    return m;
}

int main(int argc, char **argv)
{
    bool child = false;
    int runs = 5;
    const char *mb = "512";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child") == 0) {
            child = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            mb = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--runs N] [--mb M] | --child [--mb M]\n", argv[0]);
            return 2;
        }
    }
    size_t total = (size_t)strtoull(mb, NULL, 10) * 1024 * 1024;
    if (total == 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "purge_bench: bad --mb or --runs (1..%d)\n", MAX_RUNS);
        return 2;
    }
    if (child) return run_child(total);

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        perror("purge_bench: /proc/self/exe");
        return 1;
    }
    self[len] = '\0';
    for (int round = 0; round < runs; round++)
        for (int j = 0; j < 4; j++)
            if (run_one(self, (round + j) % 4, mb) != 0) {
                perror("purge_bench: fork");
                return 1;
            }

    printf("\n%s MiB of 64..1024 B blocks freed at once; medians of %d runs "
           "(latency: min-max)\n\n",
           mb, runs);
    printf("| backend | advice | purge latency ms | throughput GiB/s (wall) | purge thread CPU ms "
           "| io-wq CPU ms (threads) | GiB per CPU-s | program ops/s during/before | purge_calls "
           "| purged MiB |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int failures = 0;
    for (int c = 0; c < 4; c++) {
        if (!ok_runs[c]) {
            printf("| %s | %s | failed (%u runs) | - | - | - | - | - | - | - |\n",
                   configs[c].backend, configs[c].advice, failed_runs[c]);
            failures++;
            continue;
        }
        printf("| %s | %s | %.0f (%.0f-%.0f) | %.1f | %.2f | %.2f (%.0f) | %.1f | %.2f | %.0f | "
               "%.0f |\n",
               configs[c].backend, configs[c].advice, med_of(c, F_LATENCY), min_of(c, F_LATENCY),
               max_of(c, F_LATENCY), med_of(c, F_WALL), med_of(c, F_PURGE_CPU),
               med_of(c, F_IOWQ_CPU), med_of(c, F_IOWQ_THREADS), med_of(c, F_CPU_GIB),
               med_of(c, F_RATIO), med_of(c, F_CALLS), med_of(c, F_PURGED));
        if (failed_runs[c]) failures++;
    }
    for (int c = 0; c < 4; c++)
        if (failed_runs[c])
            printf("\n%s/%s: %u run(s) failed, left out of the medians\n", configs[c].backend,
                   configs[c].advice, failed_runs[c]);
    return failures ? 1 : 0;
}

/* thp_workload: bench_random_mixed's loop plus page-size figures, for
 * bench/thp-compare.
 *
 * Usage: thp_workload [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED
 *                     [MIN_SIZE [MAX_SIZE]]]]]
 *        thp_workload --exec CMD [ARG...]
 *
 * Workload mode runs exactly the loop of bench/bench_random_mixed.c (the
 * same code, from bench_common.h: same arguments, same defaults, same RNGs,
 * same size formula min + r % span, so the same sequence of calls for a
 * given seed) and, just before freeing the live set, reads this process's
 * /proc/self/smaps_rollup and /proc/meminfo.
 * It prints one line of key=value pairs:
 *
 *   ops_per_sec page_faults peak_rss_kb seconds  as bench_random_mixed
 *   anon_huge_kb    AnonHugePages of this process with the live set in place
 *   rss_kb          Rss of this process at the same moment
 *   hugetlb_kb      Private_Hugetlb + Shared_Hugetlb (hugetlbfs pages mapped)
 *   huge_free_delta HugePages_Free at start of main() minus at that moment,
 *                   in pages (system-wide; hugetlb pages this run faulted in)
 *   ... malloc_from=PATH (last: a path may contain spaces)
 *
 * Exec mode runs CMD (fork + execvp), samples /proc/PID/smaps_rollup and
 * /proc/meminfo every 10 ms while it runs, and after it exits prints one line
 * "thp_exec: key=value ..." with seconds (wall), page_faults and peak_rss_kb
 * (from wait4()'s rusage: minor + major, ru_maxrss), and the peaks of the
 * sampled anon_huge_kb, rss_kb, hugetlb_kb, huge_free_delta; exit status is
 * the command's (128 + signal when it was killed).  ru_maxrss is usable here
 * because it survives execve(): the command inherits this small program's
 * figure (about 1 MiB), not that of the python script that started us.
 *
 * /proc files are read with open/read into stack buffers: stdio would call
 * malloc and fault in pages of its own right where we measure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* wait4 */
#endif
#define BENCH_PROG "thp_workload"
#include "bench_common.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: thp_workload [--rng=libc|xorshift] [ITERATIONS [SLOTS [SEED "
                 "[MIN_SIZE [MAX_SIZE]]]]]\n"
                 "       thp_workload --exec CMD [ARG...]\n"
                 "defaults: 1000000 400 1 16 1040 --rng=libc\n");
}

/* Read a small /proc file into buf (NUL-terminated); -1 when unreadable. */
static ssize_t read_proc(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == size - 1) break;
    }
    close(fd);
    buf[n] = '\0';
    return n > 0 ? (ssize_t)n : -1;
}

/* Value of "Key:   123 kB" (or a bare number) in a /proc text; -1 if absent. */
static long proc_field(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
            long v;
            if (sscanf(p + klen + 1, " %ld", &v) == 1) return v;
            return -1;
        }
    }
    return -1;
}

struct mem_figures {
    long anon_huge_kb, rss_kb, hugetlb_kb; /* from smaps_rollup, -1 unknown */
    long huge_free;                        /* HugePages_Free, -1 unknown */
    long vm_hwm_kb;                        /* VmHWM, -1 unknown */
};

static void read_figures(const char *procdir, struct mem_figures *f)
{
    char path[64], buf[8192];
    f->anon_huge_kb = f->rss_kb = f->hugetlb_kb = f->huge_free = f->vm_hwm_kb = -1;
    snprintf(path, sizeof path, "%s/smaps_rollup", procdir);
    if (read_proc(path, buf, sizeof buf) > 0) {
        f->anon_huge_kb = proc_field(buf, "AnonHugePages");
        f->rss_kb = proc_field(buf, "Rss");
        long a = proc_field(buf, "Private_Hugetlb"), b = proc_field(buf, "Shared_Hugetlb");
        if (a >= 0 || b >= 0) f->hugetlb_kb = (a > 0 ? a : 0) + (b > 0 ? b : 0);
    }
    snprintf(path, sizeof path, "%s/status", procdir);
    if (read_proc(path, buf, sizeof buf) > 0) f->vm_hwm_kb = proc_field(buf, "VmHWM");
    if (read_proc("/proc/meminfo", buf, sizeof buf) > 0)
        f->huge_free = proc_field(buf, "HugePages_Free");
}

static long max_l(long a, long b) { return a > b ? a : b; }

static pid_t exec_child = -1;

static void forward_signal(int sig)
{
    if (exec_child > 0) kill(exec_child, sig);
}

static int run_exec(char **argv)
{
    struct mem_figures start, cur;
    read_figures("/proc/self", &start);
    double t0 = now_seconds();
    pid_t pid = fork();
    if (pid < 0) {
        perror("thp_workload: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "thp_workload: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    exec_child = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    char procdir[32];
    snprintf(procdir, sizeof procdir, "/proc/%d", (int)pid);
    long anon = -1, rss = -1, htlb = -1, min_free = start.huge_free;
    int status = 0;
    struct rusage ru;
    for (;;) {
        pid_t r = wait4(pid, &status, WNOHANG, &ru);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            perror("thp_workload: wait4");
            return 1;
        }
        read_figures(procdir, &cur);
        anon = max_l(anon, cur.anon_huge_kb);
        rss = max_l(rss, cur.rss_kb);
        htlb = max_l(htlb, cur.hugetlb_kb);
        if (cur.huge_free >= 0 && (min_free < 0 || cur.huge_free < min_free))
            min_free = cur.huge_free;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double secs = now_seconds() - t0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    long faults = ru.ru_minflt + ru.ru_majflt;
    long delta = (start.huge_free >= 0 && min_free >= 0) ? start.huge_free - min_free : -1;
    fflush(stdout);
    printf("thp_exec: seconds=%.6f page_faults=%ld peak_rss_kb=%ld anon_huge_kb=%ld rss_kb=%ld "
           "hugetlb_kb=%ld huge_free_delta=%ld exit_status=%d\n",
           secs, faults, ru.ru_maxrss, anon, rss, htlb, delta, code);
    return code;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--exec") == 0) {
        int first = 2;
        if (argc > first && strcmp(argv[first], "--") == 0) first++;
        if (argc <= first) {
            usage(stderr);
            return 2;
        }
        return run_exec(argv + first);
    }

    /* Before anything of ours allocates; the allocator may already have
     * mapped its first pages while the process started. */
    struct mem_figures start;
    read_figures("/proc/self", &start);

    struct mixed_params mp;
    struct mixed_result res;
    int rc = mixed_run(argc, argv, usage, &mp, &res);
    if (rc >= 0) return rc;

    /* With the live set still allocated: this is the footprint the loop
     * ran with (about SLOTS / 2 blocks). */
    struct mem_figures live;
    read_figures("/proc/self", &live);

    mixed_free(&mp, &res);

    struct rusage ru_end;
    getrusage(RUSAGE_SELF, &ru_end);
    struct mem_figures end;
    read_figures("/proc/self", &end);

    long peak_kb = end.vm_hwm_kb >= 0 ? end.vm_hwm_kb : ru_end.ru_maxrss;
    long delta =
        (start.huge_free >= 0 && live.huge_free >= 0) ? start.huge_free - live.huge_free : -1;
    const char *provider = malloc_provider();

    printf("ops_per_sec=%.0f page_faults=%ld peak_rss_kb=%ld seconds=%.6f anon_huge_kb=%ld"
           " rss_kb=%ld hugetlb_kb=%ld huge_free_delta=%ld anon_huge_end_kb=%ld"
           " iterations=%" PRIu64 " slots=%" PRIu64 " seed=%" PRIu64 " min_size=%" PRIu64
           " max_size=%" PRIu64 " rng=%s malloc_from=%s\n",
           mixed_ops_per_sec(&mp, &res), res.page_faults, peak_kb, res.seconds, live.anon_huge_kb,
           live.rss_kb, live.hugetlb_kb, delta, end.anon_huge_kb, mp.iterations, mp.slots, mp.seed,
           mp.min_size, mp.max_size, rng_name(), provider);
    return 0;
}

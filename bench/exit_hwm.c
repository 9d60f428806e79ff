/* exit_hwm: a command's peak RSS, exactly.
 *
 *   build/bench/exit_hwm [-v] [-a] [-o FILE] LIB|- command [args...]
 *
 * Runs the command (with LD_PRELOAD=LIB; "-" leaves the environment's as it
 * is) and prints its peak RSS in KiB: the most of its VmRSS at the entry of
 * each system call that may release memory and at its exit (peak_trace.h).
 * -a: the largest peak of any process it runs (as /usr/bin/time's %M, over
 * the processes it waits for), for a command whose work is a child's (git
 * gc: git pack-objects). -v also prints the VmHWM /proc gave as the
 * command began to exit and how many of its calls waited for the reading:
 * `peak_kb=P hwm_kb=H stops=N`. The command's output is thrown away, but
 * with -o, where the figures go to FILE and the command keeps exit_hwm's
 * standard input and output (exit_hwm then exits with its status).
 * Neither of the kernel's own figures is exact on kernels since 6.2: what
 * /usr/bin/time -f %M prints (getrusage's ru_maxrss) is the high-water mark
 * of the shared total of per-CPU counters, 128 KiB steps behind the truth
 * (1148 KiB for a `true` whose VmHWM is 1348), and VmHWM, read at the exit,
 * is exact for a process whose RSS is at its peak then but short by up to
 * the per-CPU parts for a peak that a release ended. */
#define _GNU_SOURCE
#define BENCH_PROG "exit_hwm"
#include "peak_trace.h"

int main(int argc, char **argv)
{
    bool verbose = false, largest = false;
    const char *out_path = NULL;
    int a = 1;
    for (; a < argc && argv[a][0] == '-' && argv[a][1] != '\0'; a++) {
        if (strcmp(argv[a], "-v") == 0) {
            verbose = true;
        } else if (strcmp(argv[a], "-a") == 0) {
            largest = true;
        } else if (strcmp(argv[a], "-o") == 0 && a + 1 < argc) {
            out_path = argv[++a];
        } else {
            break;
        }
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [-v] [-a] [-o FILE] LIB|- command [args...]\n", argv[0]);
        return 2;
    }
    const char *lib = argv[a];
    char **command = argv + a + 1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        close(sv[0]);
        if (strcmp(lib, "-") != 0) setenv("LD_PRELOAD", lib, 1);
        int null = out_path ? -1 : open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        if (peak_trace_child(sv[1]) != 0) _exit(126);
        execvp(command[0], command);
        _exit(127);
    }
    close(sv[1]);
    peak_trace_t peak;
    int status = peak_trace_run(child, sv[0], &peak);
    if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) >= 126 && !out_path)) {
        fprintf(stderr, "exit_hwm: %s could not be run and traced (seccomp notifications)\n",
                command[0]);
        return 1;
    }
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        perror(out_path);
        return 1;
    }
    long kb = largest ? peak.largest_kb : peak.peak_kb;
    if (verbose)
        fprintf(out, "peak_kb=%ld hwm_kb=%ld stops=%lu\n", kb, peak.exit_hwm_kb, peak.stops);
    else
        fprintf(out, "%ld\n", kb);
    if (out_path && fclose(out) != 0) return 1;
    if (!out_path) return 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

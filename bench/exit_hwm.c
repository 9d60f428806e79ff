/* exit_hwm: a command's peak RSS, exactly.
 *
 *   build/bench/exit_hwm [-v] LIB|- command [args...]
 *
 * Runs the command (with LD_PRELOAD=LIB, none for "-"; its output thrown
 * away) and prints its peak RSS in KiB: the most of its VmRSS at the entry
 * of each system call that may release memory and at its exit
 * (peak_trace.h). -v also prints the VmHWM /proc gave as it began to exit
 * and how many calls waited for the reading: `peak_kb=P hwm_kb=H stops=N`.
 * Neither of the kernel's own figures is exact on kernels since 6.2: what
 * /usr/bin/time -f %M prints (getrusage's ru_maxrss) is the high-water mark
 * of the shared total of per-CPU counters, 128 KiB steps behind the truth
 * (1148 KiB for a `true` whose VmHWM is 1348), and VmHWM, read at the exit,
 * is exact for a process whose RSS is at its peak then but short by up to
 * the per-CPU parts for a peak that a release ended. */
#define _GNU_SOURCE
#include "peak_trace.h"

int main(int argc, char **argv)
{
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    if (argc < 3 + verbose) {
        fprintf(stderr, "usage: %s [-v] LIB|- command [args...]\n", argv[0]);
        return 2;
    }
    const char *lib = argv[1 + verbose];
    char **command = argv + 2 + verbose;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        close(sv[0]);
        if (strcmp(lib, "-") != 0) setenv("LD_PRELOAD", lib, 1);
        int null = open("/dev/null", O_WRONLY);
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
    if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) >= 126)) {
        fprintf(stderr, "exit_hwm: %s could not be run and traced (seccomp notifications)\n",
                command[0]);
        return 1;
    }
    if (verbose)
        printf("peak_kb=%ld hwm_kb=%ld stops=%lu\n", peak.peak_kb, peak.exit_hwm_kb, peak.stops);
    else
        printf("%ld\n", peak.peak_kb);
    return 0;
}

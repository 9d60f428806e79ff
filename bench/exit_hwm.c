/* exit_hwm: a command's peak RSS, exactly.
 *
 *   build/bench/exit_hwm LIB|- command [args...]
 *
 * Runs the command (with LD_PRELOAD=LIB, none for "-"; its output thrown
 * away) and prints its VmHWM in KiB, read from /proc at its exit (the
 * PTRACE_EVENT_EXIT stop: the memory is still mapped, the exit path has run).
 * What /usr/bin/time -f %M prints (getrusage's ru_maxrss) is not exact on
 * kernels since 6.2: it is the high-water mark of per-CPU counters that fold
 * into the total 32 pages at a time, so it moves in 128 KiB steps and stays
 * behind the true figure by up to that much per CPU (1148 KiB for a `true`
 * whose VmHWM is 1348). VmHWM sums the counters. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

/* The VmHWM line of /proc/PID/status, in KiB; -1 if unreadable. */
static long read_hwm(pid_t pid)
{
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *line = strstr(text, "VmHWM:");
    return line ? strtol(line + 6, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LIB|- command [args...]\n", argv[0]);
        return 2;
    }
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        if (strcmp(argv[1], "-") != 0) setenv("LD_PRELOAD", argv[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) < 0 || !WIFSTOPPED(status)) return 1; /* at its exec */
    ptrace(PTRACE_SETOPTIONS, child, NULL, (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL));
    ptrace(PTRACE_CONT, child, NULL, NULL);
    long hwm = -1;
    while (waitpid(child, &status, 0) == child && WIFSTOPPED(status)) {
        int pass = 0; /* a signal stop's signal goes on to the child */
        if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8)))
            hwm = read_hwm(child);
        else
            pass = WSTOPSIG(status);
        ptrace(PTRACE_CONT, child, NULL, (void *)(long)pass);
    }
    if (hwm < 0) return 1;
    printf("%ld\n", hwm);
    return 0;
}

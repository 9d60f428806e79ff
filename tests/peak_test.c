/* peak_test: a program whose peaks its releases end, for tests/peak/run.sh.
 *
 *   peak_test FILE
 *
 * Eight times it touches a few hundred pages of a fresh mapping, reads its
 * VmRSS (exact: /proc sums the per-CPU page counts) and unmaps the pages,
 * then reads its VmHWM. It writes to FILE the most VmRSS it read before a
 * munmap and the VmHWM it read after the last one: on kernels whose page
 * counts are per-CPU counters (6.2 on), the mark behind VmHWM is raised
 * from their shared total at the munmap, and falls short of the reading by
 * what the per-CPU parts held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A field of /proc/self/status in KiB; -1 if unreadable. Read with read(2)
 * into the stack, so that the reading itself maps no new memory. */
static long status_kb(const char *name)
{
    char text[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    const char *line = strstr(text, name);
    return line ? strtol(line + strlen(name), NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: peak_test FILE\n");
        return 2;
    }
    const size_t page = 4096;
    long most = 0;
    for (unsigned round = 0; round < 8; round++) {
        size_t pages = 300 + 97 * round;
        char *p =
            mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        /* Base pages: a huge page would make the counts move 512 at a time. */
        madvise(p, pages * page, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < pages; i++) p[i * page] = 1;
        long rss = status_kb("VmRSS:");
        if (rss > most) most = rss;
        munmap(p, pages * page);
    }
    long hwm = status_kb("VmHWM:");
    FILE *out = fopen(argv[1], "w");
    if (!out) return 1;
    fprintf(out, "%ld %ld\n", most, hwm);
    return fclose(out) == 0 ? 0 : 1;
}

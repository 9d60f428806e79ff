/* first_touch: what the first write to fresh anonymous memory costs, on huge
 * pages or on base pages, and how that depends on when the memory was freed.
 *
 *   build/bench/first_touch MIB thp|base GAP_S [ROUNDS]
 *
 * Each round maps MIB MiB, 2 MiB-aligned, with MADV_HUGEPAGE (thp) or
 * MADV_NOHUGEPAGE (base), writes one byte per 4 KiB page, and prints the
 * time of those writes and the huge pages the kernel gave (AnonHugePages
 * of the range); then unmaps it and sleeps GAP_S seconds before the next
 * round (4 rounds by default). A round after a gap of 0 s gets the pages
 * the last one freed; after a few seconds, on a virtual machine whose
 * balloon reports free pages, it gets blocks the host has taken back
 * (bench/README, "Free page reporting"). The library is not involved. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define HUGE_BYTES (2UL << 20)
#define PAGE_BYTES 4096UL

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* AnonHugePages of the mapping that starts at addr, in KiB; -1 if not found. */
static long anon_huge_kb(const char *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = (unsigned long)addr >= lo && (unsigned long)addr < hi;
            continue;
        }
        if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[2], "thp") != 0 && strcmp(argv[2], "base") != 0)) {
        fprintf(stderr, "usage: first_touch MIB thp|base GAP_S [ROUNDS]\n");
        return 2;
    }
    size_t len = (size_t)strtoul(argv[1], NULL, 10) << 20;
    int huge = strcmp(argv[2], "thp") == 0;
    double gap = atof(argv[3]);
    int rounds = argc > 4 ? atoi(argv[4]) : 4;
    if (len == 0 || rounds < 1) {
        fprintf(stderr, "first_touch: MIB and ROUNDS must be positive\n");
        return 2;
    }
    for (int r = 0; r < rounds; r++) {
        /* One huge page more, to place the range on a 2 MiB boundary. */
        char *map = mmap(NULL, len + HUGE_BYTES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) {
            perror("first_touch: mmap");
            return 1;
        }
        char *a = (char *)(((unsigned long)map + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1));
        if (madvise(a, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
            perror("first_touch: madvise");
            return 1;
        }
        double t = now_seconds();
        for (size_t i = 0; i < len; i += PAGE_BYTES) a[i] = 1;
        t = now_seconds() - t;
        printf("round %d: %zu MiB %s, first touch %.1f ms, %.3f ms per 2 MiB, %.2f GB/s, "
               "AnonHugePages %ld kB",
               r, len >> 20, argv[2], t * 1e3, t * 1e3 / (double)(len / HUGE_BYTES),
               (double)len / t / 1e9, anon_huge_kb(a));
        if (r)
            printf(", %.1f s after the last round's munmap\n", gap);
        else
            printf("\n");
        fflush(stdout);
        munmap(map, len + HUGE_BYTES);
        if (r + 1 < rounds) usleep((useconds_t)(gap * 1e6));
    }
    return 0;
}

/* peak_test: a program whose peaks its releases end, for tests/peak/run.sh.
 *
 *   peak_test FILE
 *
 * Eight times it touches a few hundred pages of a fresh mapping, reads its
 * VmRSS (exact: /proc sums the per-CPU page counts) and unmaps the pages;
 * then it writes a page of each of four huge pages, reads VmRSS and splits
 * them with MADV_COLD; then it reads its VmHWM. It writes to FILE the most
 * VmRSS it read before a munmap or the split, and the VmHWM it read after
 * the last one: on kernels whose page counts are per-CPU counters (6.2
 * on), the mark behind VmHWM is raised from their shared total at the
 * munmap, and falls short of the reading by what the per-CPU parts held.
 * /proc is read with read(2) only (hs_proc_status_kib_raw): the reading
 * maps no memory of its own. */
#include "test_util.h"

#include <stdint.h>
#include <sys/mman.h>

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
        long rss = hs_proc_status_kib_raw("VmRSS");
        if (rss > most) most = rss;
        munmap(p, pages * page);
    }
    /* Then four huge pages with a page written in each, more than any round
     * above, split by MADV_COLD over another page of each: since Linux 6.12
     * the split maps their pages of zeros to the zero page, out of RSS, and
     * the kernel raises no high-water mark for it (the library splits huge
     * pages so, segment/frontier.c). Where THP is off, or the kernel
     * older, the reading is a peak all the same. */
    const size_t chunk = 2u << 20, chunks = 4;
    char *m = mmap(NULL, (chunks + 1) * chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) return 1;
    char *huge = (char *)(((uintptr_t)m + chunk - 1) & ~(uintptr_t)(chunk - 1));
    madvise(huge, chunks * chunk, MADV_HUGEPAGE);
    for (size_t c = 0; c < chunks; c++) huge[c * chunk] = 1;
    long rss = hs_proc_status_kib_raw("VmRSS");
    if (rss > most) most = rss;
    for (size_t c = 0; c < chunks; c++) madvise(huge + (c + 1) * chunk - page, page, MADV_COLD);
    long hwm = hs_proc_status_kib_raw("VmHWM");
    FILE *out = fopen(argv[1], "w");
    if (!out) return 1;
    fprintf(out, "%ld %ld\n", most, hwm);
    return fclose(out) == 0 ? 0 : 1;
}

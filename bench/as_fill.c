/* as_fill: how much a program gets from malloc under an address-space limit
 * (RLIMIT_AS, `ulimit -v`), which counts every mapping: the allocator's
 * reserves, its grain and its idle memory as much as the blocks.
 *
 *   build/bench/as_fill [SIZE] [LIMIT_KIB]
 *
 * Sets RLIMIT_AS to LIMIT_KIB (default 200000; what is mapped already,
 * the allocator's registry included, counts in it), then allocates blocks
 * of SIZE bytes (default 100000), writing each whole, until malloc returns
 * NULL; then frees one block in ten and asks for 16 bytes, which must still
 * be had. Prints one line of key=value:
 *   blocks       blocks had
 *   block_kib    their bytes, KiB
 *   errno        errno of the refusal (12: ENOMEM)
 *   vmsize_kb    VmSize at the refusal
 *   rss_kb       VmRSS at the refusal
 *   after        1 when malloc(16) succeeded after the refusal and the frees
 *   malloc_from  the object that malloc came from
 * Run it under LD_PRELOAD for each allocator. Not part of `make bench`. */
#define BENCH_PROG "as_fill"
#include "bench_common.h"

int main(int argc, char **argv)
{
    uint64_t size = 100000, limit_kib = 200000;
    if (argc > 3 || (argc > 1 && parse_u64(argv[1], "size", &size) != 0) ||
        (argc > 2 && parse_u64(argv[2], "limit", &limit_kib) != 0) || size < sizeof(void *)) {
        fprintf(stderr, "usage: " BENCH_PROG " [SIZE >= %zu] [LIMIT_KIB]\n", sizeof(void *));
        return 2;
    }
    struct rlimit limit = {.rlim_cur = limit_kib * 1024, .rlim_max = RLIM_INFINITY};
    if (getrlimit(RLIMIT_AS, &limit) == 0) limit.rlim_cur = limit_kib * 1024;
    if (setrlimit(RLIMIT_AS, &limit) != 0) {
        perror(BENCH_PROG ": setrlimit");
        return 1;
    }
    /* The blocks are listed through their first word: a list of their
     * own would take address space in proportion to their number. */
    void *list = NULL, *p;
    size_t n = 0;
    while ((p = malloc(size)) != NULL) {
        memset(p, 1, size);
        *(void **)p = list;
        list = p;
        n++;
    }
    int refusal = errno;
    char status[4096];
    read_proc_text("/proc/self/status", status, sizeof status);
    long vmsize = proc_field(status, "VmSize"), rss = proc_field(status, "VmRSS");
    /* Every tenth block freed, scattered over the heap as a program's
     * frees are: a small block must be had again from that room. */
    size_t i = 0;
    for (void **link = &list; *link; i++) {
        void *block = *link;
        if (i % 10 == 0) {
            *link = *(void **)block;
            free(block);
        } else {
            link = (void **)block;
        }
    }
    void *small = malloc(16);
    printf("blocks=%zu block_kib=%llu errno=%d vmsize_kb=%ld rss_kb=%ld after=%d malloc_from=%s\n",
           n, (unsigned long long)(n * size / 1024), refusal, vmsize, rss, small != NULL,
           malloc_provider());
    return 0;
}

/* hugeslab: a malloc for Linux built on 2 MiB SuperSlabs.
 *
 * Loaded with LD_PRELOAD (or linked in), hugeslab replaces the whole glibc
 * allocation API: malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, free_sized,
 * free_aligned_sized, mallopt, malloc_trim, malloc_stats, mallinfo, mallinfo2.
 *
 * The functions below are the same allocator under its own names, so that a
 * program (or a dlopen()ed copy of the library) can call hugeslab explicitly.
 *
 * Contract shared by every function here:
 * - Every block is at least 16 bytes and 16-byte aligned.
 * - On exhaustion the allocating calls return NULL with errno = ENOMEM, and
 *   the process can allocate again once memory is back. A size that overflows
 *   (calloc, reallocarray, sizes near SIZE_MAX) is ENOMEM as well.
 * - A bad alignment (not a power of two, or not a multiple of sizeof(void *)
 *   for posix_memalign) is EINVAL; memalign, as glibc's, rounds one up to a
 *   power of two, and fails only above SIZE_MAX / 2 + 1.
 * - free() of a pointer hugeslab never handed out, or a double free, is
 *   reported on stderr as "hugeslab: ..." naming the pointer, then abort().
 * - free() and the query functions leave errno as it was.
 */
#ifndef HUGESLAB_H
#define HUGESLAB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The soname, libhugeslab.so.0, carries the major version only: a name
 * whose ABI changes keeps its old definition under its old symbol version,
 * so a program built against an older 0.x header runs on a newer library
 * without a rebuild. 0.2 appended two fields to hugeslab_stats_t: a program
 * built against 0.1 calls hugeslab_stats@HUGESLAB_0.1, which writes 0.1's
 * fields only; one built against this header calls
 * hugeslab_stats@@HUGESLAB_0.2, as does dlsym() (a program built against
 * 0.1 that looks it up must ask dlvsym() for HUGESLAB_0.1). New fields go at
 * the end of a struct. */
#define HUGESLAB_VERSION_MAJOR 0
#define HUGESLAB_VERSION_MINOR 2

void *hugeslab_malloc(size_t size);
void hugeslab_free(void *ptr);
void *hugeslab_calloc(size_t count, size_t size);
void *hugeslab_realloc(void *ptr, size_t size);
void *hugeslab_reallocarray(void *ptr, size_t count, size_t size);
int hugeslab_posix_memalign(void **out, size_t alignment, size_t size);
void *hugeslab_aligned_alloc(size_t alignment, size_t size);
void *hugeslab_memalign(size_t alignment, size_t size);
void *hugeslab_valloc(size_t size);
void *hugeslab_pvalloc(size_t size);
size_t hugeslab_malloc_usable_size(const void *ptr);
void hugeslab_free_sized(void *ptr, size_t size);
void hugeslab_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* Returns cached memory to the kernel at once; 1 if any was returned
 * (malloc_trim; hugeslab_trim is the same function). */
int hugeslab_malloc_trim(size_t pad);
int hugeslab_trim(size_t pad);

/* glibc's tuning and reporting calls. mallopt accepts every parameter and
 * changes nothing (hugeslab's options are HUGESLAB_* variables). */
struct mallinfo;
struct mallinfo2;
int hugeslab_mallopt(int param, int value);
struct mallinfo hugeslab_mallinfo(void);
struct mallinfo2 hugeslab_mallinfo2(void);
void hugeslab_malloc_stats(void);
int hugeslab_malloc_info(int options, FILE *fp);

/* Figures about the whole process, as the allocator sees them, next to what
 * the kernel reports for it (the kernel_* fields; -1 when unreadable). */
#define HUGESLAB_STATS_MAX_NODES 8
typedef struct hugeslab_stats_s {
    uint64_t superslabs_mapped;  /* 2 MiB SuperSlabs reserved from the kernel, runs included */
    uint64_t superslabs_hugetlb; /* of which on hugetlbfs 2 MiB pages */
    uint64_t superslabs_thp;     /* of which hinted for transparent huge pages */
    uint64_t superslabs_base;    /* of which on base pages */
    uint64_t superslabs_cached;  /* empty, pages still resident, kept for reuse */
    uint64_t superslabs_purged;  /* empty, pages given back, address kept for reuse */
    uint64_t superslabs_by_node[HUGESLAB_STATS_MAX_NODES]; /* mapped, by their pages' kernel node */
    uint64_t remote_frees_by_node[HUGESLAB_STATS_MAX_NODES]; /* by the block's kernel node */
    uint64_t bytes_mapped;                                   /* address space mapped for blocks */
    uint64_t bytes_in_slabs;     /* bytes of SuperSlabs given to slabs of small blocks */
    uint64_t bytes_in_runs;      /* bytes of runs holding one large or huge block each */
    uint64_t bytes_cached;       /* idle bytes still resident (SuperSlabs and runs) */
    uint64_t bytes_purged_now;   /* bytes given back and not reused since */
    uint64_t bytes_purged_total; /* bytes given back since start, by every path (see below) */
    uint64_t purge_calls;        /* madvise and munmap calls (or io_uring submissions) made */
    uint64_t huge_blocks;        /* live blocks with a mapping of their own */
    uint64_t remote_frees;       /* frees of blocks owned by another thread, since start,
                                    counted as they reach their slabs: a freeing thread
                                    hands them over up to 64 at a time (a caller without
                                    a heap, its own first) */
    uint64_t threads_live;       /* threads with a heap */
    uint64_t orphan_slabs;       /* slabs of exited threads not yet taken over */
    uint64_t page_faults;        /* minor + major faults of the process (getrusage) */
    int64_t kernel_rss;          /* Rss of /proc/self/smaps_rollup, bytes */
    int64_t kernel_anon_huge;    /* AnonHugePages, bytes */
    int64_t kernel_lazy_free;    /* LazyFree, bytes */
    int64_t kernel_hugetlb;      /* Private_Hugetlb, bytes */
    /* What the kernel really gave, next to the hints above: 2 MiB pages in
     * hugeslab's own mappings, from /proc/self/smaps; -1 when unreadable. */
    int64_t kernel_thp_superslabs;     /* THP SuperSlabs that are a huge page */
    int64_t kernel_hugetlb_superslabs; /* hugetlb SuperSlabs with their page in place */
    /* Of bytes_purged_total and purge_calls, what the thread that freed or
     * resized a block gave back at once (a huge block's munmap, a small
     * heap's large block, realloc's move out of a SuperSlab, a run's tail);
     * the rest is idle memory the background thread or malloc_trim returned.
     * Last, so that the fields above keep their places. */
    uint64_t bytes_purged_at_once; /* bytes given back at once, since start */
    uint64_t purge_calls_at_once;  /* the calls that gave them */
} hugeslab_stats_t;

void hugeslab_stats(hugeslab_stats_t *out);

/* Prints the statistics as HUGESLAB_STATS=1 does at exit: to stderr, or to
 * HUGESLAB_STATS_FILE (%p: pid, %e: program; JSON for .json, Prometheus text
 * for .prom, else text), replaced whole by a rename. Each report names the
 * pid, the program, the version and the time. */
void hugeslab_stats_print(void);

/* The same figures as one JSON object, with "pid", "program", "version",
 * "time" and "time_unix" first, written into buf (NUL-terminated, truncated
 * to size). Returns the length the whole text needs. */
size_t hugeslab_stats_json(char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* HUGESLAB_H */

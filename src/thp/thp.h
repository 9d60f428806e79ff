/* thp: the OS-primitive layer. Every mmap, munmap, mremap and madvise of
 * hugeslab is here, each behind a function that states its contract, plus
 * what the kernel tells about huge pages.
 * - Functions that map return NULL on failure with errno = ENOMEM; they never
 *   abort and never print.
 * - The THP hint is per mapping (MADV_HUGEPAGE); the process-wide setting
 *   (prctl PR_SET_THP_DISABLE) is never touched, so children keep theirs.
 * Never: call into segment/ or tiny/. */
#ifndef HS_THP_H
#define HS_THP_H

#include <stdbool.h>
#include <stddef.h>

/* How a range of memory got its pages. */
typedef enum thp_backing_e {
    THP_BACKING_BASE = 0,    /* 4 KiB pages, one fault each */
    THP_BACKING_THP = 1,     /* anonymous, 2 MiB-aligned, MADV_HUGEPAGE */
    THP_BACKING_HUGETLB = 2, /* hugetlbfs 2 MiB pages, reserved at map time */
    THP_BACKING_COUNT
} thp_backing_t;

/* The system THP mode, from /sys/kernel/mm/transparent_hugepage/enabled. */
typedef enum thp_mode_e {
    THP_MODE_UNKNOWN = 0, /* no THP support in the kernel, or sysfs unreadable */
    THP_MODE_NEVER,
    THP_MODE_MADVISE,
    THP_MODE_ALWAYS,
} thp_mode_t;

/* Reads the kernel's facts once; call before the first mapping. */
void thp_init(void);
thp_mode_t thp_system_mode(void);
const char *thp_mode_name(thp_mode_t mode);
const char *thp_backing_name(thp_backing_t backing);

/* Maps `size` bytes (a multiple of 2 MiB) at an address aligned to `align`
 * (a power of two >= 2 MiB), read-write, zero-filled on first touch, backed
 * as `wanted` or by the next backing down the chain hugetlb -> thp -> base
 * when that one cannot be had (pool empty, THP off). *got says what the range
 * really is. hugetlb pages are reserved here, at map time, never at fault
 * time (no MAP_NORESERVE), so touching them cannot raise SIGBUS.
 * NULL + ENOMEM only when no backing at all could be mapped. */
void *thp_map_aligned(size_t size, size_t align, thp_backing_t wanted, thp_backing_t *got);

/* Faults the whole range in now, with one call (MADV_POPULATE_WRITE, Linux
 * 5.14+). Where a fault would fail -- a hugetlb page that the memory policy's
 * nodes cannot supply -- this returns -errno instead of raising SIGBUS later. */
int thp_populate(void *addr, size_t size);

/* 2 MiB pages in the hugetlb pool: configured (nr_hugepages) and free. */
unsigned long thp_hugetlb_pages_total(void);
unsigned long thp_hugetlb_pages_free(void);
/* Free pages not promised to a mapping already (free minus reserved). */
unsigned long thp_hugetlb_pages_available(void);

/* Replaces the hugetlb range [addr, addr+size) by anonymous memory (THP
 * hinted) with the same contents at the same address: a private copy that
 * needs nothing from the hugetlb pool. Returns 0 or -errno (range intact). */
int thp_hugetlb_to_anonymous(void *addr, size_t size);

/* Hands the pages of [addr, addr+size) back to the kernel, keeping the
 * mapping: MADV_FREE (lazy, counted as LazyFree until reclaimed) unless
 * `dontneed`, or where the kernel lacks it. Ranges are whole SuperSlabs of
 * THP or base backing, so a huge page is never split. Returns 0 or -errno. */
int thp_purge(void *addr, size_t size, bool dontneed);

/* The same for many ranges at once, through one io_uring submission when
 * thp_uring_available(); else one madvise each. Returns how many failed. */
typedef struct thp_range_s {
    void *addr;
    size_t size;
} thp_range_t;
int thp_purge_batch(const thp_range_t *ranges, unsigned count, bool dontneed, bool use_uring);
bool thp_uring_available(void);

/* Whole 2 MiB huge pages mapped in the process (AnonHugePages of
 * /proc/self/smaps_rollup, in bytes), and its LazyFree and Rss; -1 fields
 * when unreadable. For statistics, never for decisions on a fast path. */
typedef struct thp_rollup_s {
    long long rss, anon_huge, lazy_free, private_hugetlb;
} thp_rollup_t;
void thp_read_rollup(thp_rollup_t *out);
/* Minor + major page faults of the process so far (getrusage), -1 on error. */
long long thp_page_faults(void);

/* Unmaps a range returned by thp_map_aligned or a part of it cut at 2 MiB
 * boundaries. Failure is impossible for such ranges; it is ignored. */
void thp_unmap(void *addr, size_t size);

/* Grows or moves the mapping [addr, addr+old_size) to new_size bytes, keeping
 * its contents without copying and the 2 MiB alignment of its start. Returns
 * the new start, or NULL (mapping untouched) when no room could be found. */
void *thp_remap(void *addr, size_t old_size, size_t new_size, thp_backing_t backing);

/* Plain zeroed pages for hugeslab's own metadata (page-granular, never
 * freed). NULL on failure. */
void *thp_map_metadata(size_t size);

/* 64 random bits from the kernel (getrandom), or a weaker mix when it fails. */
unsigned long thp_random_bits(void);

#endif

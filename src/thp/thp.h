/* thp: the hugepage policy. How a range gets its pages: the backing chain
 * hugetlb -> THP -> base, the per-mapping THP hints, the system THP mode and
 * the hugetlb pool's figures. The system calls themselves are os/'s.
 * - Functions that map return NULL on failure with errno = ENOMEM; they never
 *   abort and never print.
 * - The THP hint is per mapping (MADV_HUGEPAGE); the process-wide setting
 *   (prctl PR_SET_THP_DISABLE) is never touched, so children keep theirs,
 *   but it is read: a process that turned THP off whole, at its start
 *   (inherited) or since, gets base pages, counted as base pages.
 * Never: call into segment/, tiny/ or numa/; make a system call but
 *   through os/. */
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
/* Whether the process turned THP off whole (prctl PR_SET_THP_DISABLE
 * without PR_THP_DISABLE_EXCEPT_ADVISED): no hint gives it a huge page. */
bool thp_process_off(void);
/* The process changed its setting (the library's prctl): read it again.
 * Mappings from then on follow it; those already made keep their backing
 * (the kernel keeps the huge pages it gave them). */
void thp_process_setting_changed(void);
const char *thp_mode_name(thp_mode_t mode);
const char *thp_backing_name(thp_backing_t backing);

/* Maps `size` bytes (a multiple of 2 MiB) at an address aligned to `align`
 * (a power of two >= 2 MiB), read-write, zero-filled on first touch, backed
 * as `wanted` or by the next backing down the chain hugetlb -> thp -> base
 * when that one cannot be had (pool empty, THP off). *got says what the range
 * really is. hugetlb pages are reserved here, at map time, never at fault
 * time (no MAP_NORESERVE), so touching them cannot raise SIGBUS.
 * NULL + ENOMEM only when no backing at all could be mapped.
 * A THP range comes back without its hint: the caller settles it before
 * any page of it is touched, by thp_settle_huge or thp_defer_fresh. One
 * that starts on base pages then costs no hint at all where the system mode
 * is "madvise" (it never had one), where a hint at the mapping and another
 * at the deferral cost two, and the first MADV_HUGEPAGE of a process is the
 * kernel's slowest (8-35 us, against 1 for the next: it registers the
 * process with khugepaged). `locked`: the process is under
 * mlockall(MCL_FUTURE), which faults a mapping in as it is made: a THP or
 * base range comes back faulted in, hinted huge where THP allows, before
 * the caller binds it to a node (thp.c, map_locked). */
void *thp_map_unsettled(size_t size, size_t align, thp_backing_t wanted, bool locked,
                        thp_backing_t *got);
/* A THP range of thp_map_unsettled made a huge page from its first touch:
 * THP_BACKING_THP, or THP_BACKING_BASE where the kernel refused the hint. */
thp_backing_t thp_settle_huge(void *addr, size_t size);
/* A THP range of thp_map_unsettled, untouched and never hinted since,
 * left on base pages as thp_defer_huge leaves a range: its one hint is
 * needed in "always" mode only. In "madvise" mode its faults take the
 * folio sizes the system gives memory without a hint (4 KiB unless the
 * administrator made a smaller multi-size THP "always"). */
void thp_defer_fresh(void *addr, size_t size);

/* A THP range whose huge pages wait: its pages are base pages, faulted one
 * at a time as they are touched, until thp_allow_huge() hints it again (the
 * kernel's khugepaged then collapses what it finds dense). For a heap too
 * small to fill a 2 MiB page. */
void thp_defer_huge(void *addr, size_t size);
/* True when the range is hinted huge again: false where THP is off for the
 * system or the process, or the kernel refused the hint. */
bool thp_allow_huge(void *addr, size_t size);
/* A range thp_allow_huge hinted again whose base pages a program is about
 * to fill: they become huge pages now, their contents kept, rather than
 * each page left faulting in alone. */
void thp_collapse(void *addr, size_t size);

/* The huge page holding [addr, addr+size) (part of one THP 2 MiB page) is
 * split into base pages now, so that MADV_DONTNEED of the range frees its
 * pages at once. Without it the kernel only unmaps them: Rss drops, but the
 * huge page stays allocated whole until its deferred split, which waits for
 * memory pressure (200 such halves freed no MemFree at all). */
void thp_split_huge(void *addr, size_t size);

/* 2 MiB pages in the hugetlb pool: configured (nr_hugepages) and free.
 * Always the 2 MiB size's own figures (sysfs hugepages-2048kB), never
 * /proc/meminfo's HugePages_*, which describe the default size only. */
unsigned long thp_hugetlb_pages_total(void);
unsigned long thp_hugetlb_pages_free(void);
/* Free pages no mapping has a reservation on: those a copy-on-write after
 * fork() can have. */
unsigned long thp_hugetlb_pages_available(void);
/* The 2 MiB pool, and the default hugepage size when it is another one, as
 * hs_message() lines (HUGESLAB_VERBOSE). Reads sysfs and /proc: slow. */
void thp_describe(void);

/* Replaces the hugetlb range [addr, addr+size) by anonymous memory (THP
 * hinted) at the same address, filled by fill(copy, addr, size, ctx): a
 * private copy that needs nothing from the hugetlb pool. Returns 0, or
 * -errno (ENOMEM, or fill's error) with the range intact. */
typedef int (*thp_fill_fn)(void *copy, const void *addr, size_t size, void *ctx);
int thp_hugetlb_to_anonymous(void *addr, size_t size, thp_fill_fn fill, void *ctx);

/* Grows or moves the mapping [addr, addr+old_size) to new_size bytes, keeping
 * its contents without copying and the 2 MiB alignment of its start. `claim`
 * is asked first for each range the mapping would then cover (the caller's
 * registry must be able to name it); a range it refuses is not used.
 * Returns the new start, or NULL (mapping untouched) when no room could be
 * found or claimed. */
void *thp_remap(void *addr, size_t old_size, size_t new_size, thp_backing_t backing,
                bool (*claim)(void *addr, size_t size));

#endif

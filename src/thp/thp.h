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
    THP_BACKING_BASE = 0, /* 4 KiB pages, one fault each */
    THP_BACKING_THP = 1,  /* anonymous, 2 MiB-aligned, MADV_HUGEPAGE */
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
 * (a power of two >= 2 MiB), read-write, zero-filled on first touch. With
 * want_thp, the range is hinted with MADV_HUGEPAGE when the kernel allows;
 * *got says what the range really is set up for. NULL + ENOMEM on failure. */
void *thp_map_aligned(size_t size, size_t align, bool want_thp, thp_backing_t *got);

/* Unmaps a range returned by thp_map_aligned or a part of it cut at 2 MiB
 * boundaries. Failure is impossible for such ranges; it is ignored. */
void thp_unmap(void *addr, size_t size);

/* Grows or moves the mapping [addr, addr+old_size) to new_size bytes, keeping
 * its contents without copying and the 2 MiB alignment of its start. Returns
 * the new start, or NULL (mapping untouched) when no room could be found. */
void *thp_remap(void *addr, size_t old_size, size_t new_size, bool want_thp);

/* Plain zeroed pages for hugeslab's own metadata (page-granular, never
 * freed). NULL on failure. */
void *thp_map_metadata(size_t size);

/* 64 random bits from the kernel (getrandom), or a weaker mix when it fails. */
unsigned long thp_random_bits(void);

#endif

/* os/fault: kernel failures on demand, for tests. Compiled in only with
 * -DHS_FAULT_INJECTION=1 (the fault test's own objects); in every other
 * build OS_FAULT(site) is the constant false and the os_ functions are what
 * they were, at no cost.
 * - Each os_ function that calls the kernel asks OS_FAULT(its site) first
 *   and, when told to fail, returns what that call's own failure returns
 *   (NULL + ENOMEM for a mapping, -ENOMEM for mremap, madvise and mbind,
 *   EAGAIN for a thread, -1 for a file) without calling the kernel; "place"
 *   is the kernel's answer that os_map_aligned cannot use, not a failure.
 * - Which calls fail is read from the environment once, at the first call,
 *   with getenv (no malloc):
 *     HUGESLAB_FAULT_SITES    sites that may fail, e.g. "mmap,madvise", or
 *                             "all" (the default)
 *     HUGESLAB_FAULT_NTH      by count: the N-th call to one of those sites
 *                             fails (1 = the first) ...
 *     HUGESLAB_FAULT_REPEAT   ... and so do the next REPEAT-1 (default 1;
 *                             0: every call from the N-th on)
 *     HUGESLAB_FAULT_PERCENT  at random: each call fails with this chance ...
 *     HUGESLAB_FAULT_SEED     ... drawn from this seed (default 1), so that a
 *                             run can be repeated
 *     HUGESLAB_FAULT_REPORT   1: one line on stderr at exit, calls and
 *                             failures by site
 *   Without NTH or PERCENT nothing fails.
 * - Thread-safe: the counters are atomics; the n-th call is the n-th to
 *   take a ticket, whichever thread makes it.
 * Never: allocate, take a lock, or print except the exit report. */
#ifndef HS_OS_FAULT_H
#define HS_OS_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/* The calls that can be made to fail, one site each. */
typedef enum os_fault_site_e {
    OS_FAULT_MMAP,    /* os_map_aligned, os_map_pages */
    OS_FAULT_MUNMAP,  /* os_unmap */
    OS_FAULT_MREMAP,  /* os_remap_in_place, os_remap_onto */
    OS_FAULT_MADVISE, /* os_advise_hugepage, os_advise_fork, os_populate, os_purge, batched
                         purges */
    OS_FAULT_MBIND,   /* os_mbind, os_set_home_node, os_get_mempolicy */
    OS_FAULT_URING,   /* os_uring_setup */
    OS_FAULT_THREAD,  /* os_thread_start (pthread_create) */
    OS_FAULT_FILE,    /* every /proc and /sys read (os_read_file) */
    OS_FAULT_PIPE,    /* os_copy_own, os_pipe (a fork child's copy of its hugetlb memory) */
    OS_FAULT_PLACE,   /* os_map_aligned's one-call way: the kernel's placement read as
                         off a 2 MiB boundary, as an older kernel's is */
    OS_FAULT_SITES
} os_fault_site_t;

#if defined(HS_FAULT_INJECTION) && HS_FAULT_INJECTION
/* True when this call at `site` must fail (and counts it). */
bool os_fault_hit(os_fault_site_t site);
#define OS_FAULT(site) HS_UNLIKELY(os_fault_hit(site))

/* For the fault test, linked with these objects: stop (false) or resume
 * (true) injecting, e.g. while it sets up blocks that must not fail. Calls
 * made while stopped are neither counted nor failed. */
void os_fault_arm(bool armed);
/* Calls counted and failures injected at a site so far. */
void os_fault_counts(os_fault_site_t site, uint64_t *calls, uint64_t *failed);
/* "mmap", "munmap", ... as HUGESLAB_FAULT_SITES spells them. */
const char *os_fault_site_name(os_fault_site_t site);
#else
#define OS_FAULT(site) false
#endif

#endif

/* Mappings and advice: every mmap, munmap, mremap, mprotect, madvise and
 * mlock of hugeslab. */
#include <errno.h>
#include <linux/mman.h> /* MAP_HUGE_2MB: the kernel's own encoding of the page size */
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/common.h"
#include "os/fault.h"
#include "os/os.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

#define PAGE_GRANULE (4 * HS_KiB)

/* A call's result as 0 or -errno, errno itself put back as the caller had
 * it: a hint the kernel refuses (MADV_COLLAPSE, a remap in place) is no
 * failure of the malloc that asked for it, and a malloc that succeeds
 * leaves errno alone. */
static int call_result(bool ok, int saved_errno)
{
    int r = ok ? 0 : -errno;
    errno = saved_errno;
    return r;
}

/* madvise with that result: one copy of it for every kind of advice. */
static int advise(void *addr, size_t size, int advice)
{
    int saved_errno = errno;
    return call_result(madvise(addr, size, advice) == 0, saved_errno);
}

/* mmap that keeps errno at ENOMEM for every failure, as malloc promises,
 * with the protection `prot`: inlined in its two callers, so that the
 * mapping every process makes passes no more than it did. */
HS_INLINE void *map_with(size_t size, int prot, int extra_flags)
{
    hs_assert_no_lock_for_slow_call("mmap");
    if (OS_FAULT(OS_FAULT_MMAP)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    if ((uintptr_t)p + size > ((uintptr_t)1 << HS_ADDRESS_BITS)) {
        /* Only with 5-level paging and a high hint; the registry cannot
         * describe such addresses, so refuse them. */
        munmap(p, size);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

static void *map_anonymous(size_t size, int extra_flags)
{
    return map_with(size, PROT_READ | PROT_WRITE, extra_flags);
}

/* [raw, raw + span) trimmed at both ends to `size` bytes from its first
 * `align` boundary. */
HS_INLINE char *trim_to_aligned(char *raw, size_t span, size_t size, size_t align)
{
    char *start = (char *)hs_align_up((uintptr_t)raw, align);
    size_t head = (size_t)(start - raw);
    os_unmap(raw, head);
    os_unmap(start + size, span - head - size);
    return start;
}

/* A recent kernel built with THP places an anonymous mapping whose length
 * is a multiple of 2 MiB on a 2 MiB boundary, in any THP mode (Linux 6.18
 * here does): one mmap where mapping more and trimming the ends takes two
 * or three calls (an munmap costs 3-4 us here, and every SuperSlab and run
 * is such a mapping). Cleared the first time the kernel places one
 * elsewhere (an older kernel, one without THP, an address space too full
 * to choose): the way that always works from then on. */
static _Atomic bool kernel_aligns_2mib = true;

/* Over-maps and trims both ends. For hugetlb the kernel aligns to 2 MiB
 * itself and can only trim at 2 MiB, so that is the granule. */
void *os_map_aligned(size_t size, size_t align, bool hugetlb)
{
    size_t granule = hugetlb ? HS_SUPERSLAB_SIZE : PAGE_GRANULE;
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    /* A size the kernel does not align (not a multiple of 2 MiB: no caller's)
     * comes back unaligned, and clears the flag. */
    if (!hugetlb && align == HS_SUPERSLAB_SIZE &&
        atomic_load_explicit(&kernel_aligns_2mib, memory_order_relaxed)) {
        char *p = map_anonymous(size, 0);
        if (!p || ((uintptr_t)p % HS_SUPERSLAB_SIZE == 0 && !OS_FAULT(OS_FAULT_PLACE))) return p;
        os_unmap(p, size);
        atomic_store_explicit(&kernel_aligns_2mib, false, memory_order_relaxed);
    }
    size_t span = align > granule ? size + align - granule : size;
    /* MAP_HUGE_2MB names the pool: plain MAP_HUGETLB takes the default
     * size, 1 GiB on a machine booted with default_hugepagesz=1G, where one
     * SuperSlab would take a whole gigantic page meant for something else. */
    char *raw = map_anonymous(span, hugetlb ? MAP_HUGETLB | MAP_HUGE_2MB : 0);
    return raw ? trim_to_aligned(raw, span, size, align) : NULL;
}

HS_SELDOM void *os_map_inaccessible(size_t size, size_t align)
{
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    /* Placed aligned by the kernel where it does (above): under MCL_FUTURE
     * an unprivileged process's mappings count against RLIMIT_MEMLOCK as
     * they are made, inaccessible ones too, and a span of twice the size
     * needed twice the room under the limit. */
    if (align == HS_SUPERSLAB_SIZE &&
        atomic_load_explicit(&kernel_aligns_2mib, memory_order_relaxed)) {
        char *p = map_with(size, PROT_NONE, 0);
        if (!p || ((uintptr_t)p % HS_SUPERSLAB_SIZE == 0 && !OS_FAULT(OS_FAULT_PLACE))) return p;
        os_unmap(p, size);
        atomic_store_explicit(&kernel_aligns_2mib, false, memory_order_relaxed);
    }
    size_t span = size + align - PAGE_GRANULE;
    char *raw = map_with(span, PROT_NONE, 0);
    return raw ? trim_to_aligned(raw, span, size, align) : NULL;
}

void *os_map_pages(size_t size) { return map_anonymous(hs_align_up(size, PAGE_GRANULE), 0); }

void os_unmap(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("munmap");
    if (!size) return;
    int saved_errno = errno;
    if (!OS_FAULT(OS_FAULT_MUNMAP) && munmap(addr, size) == 0) return;
    /* munmap fails (ENOMEM) when cutting a mapping would pass
     * vm.max_map_count. The range stays mapped, but its pages go back:
     * MADV_DONTNEED never splits a mapping, so only address space is lost,
     * never memory. */
    madvise(addr, size, MADV_DONTNEED);
    errno = saved_errno;
}

/* ThreadSanitizer does not intercept mremap: the range a mapping moved
 * away from keeps the shadow of its accesses, and blocks of a later
 * mapping there were reported racing with them (google/sanitizers issue
 * 1099; large blocks grown by realloc and freed by other threads, with
 * mremap: 2 reports in 3 runs within seconds, without: none in 3 runs of
 * 160 s). Its build refuses every remap, and the callers copy, as when
 * the kernel refuses one. */
#ifdef HS_TSAN
#define OS_REMAP_REFUSED 1
#else
#define OS_REMAP_REFUSED 0
#endif

int os_remap_in_place(void *addr, size_t old_size, size_t new_size)
{
    hs_assert_no_lock_for_slow_call("mremap");
    if (OS_REMAP_REFUSED || OS_FAULT(OS_FAULT_MREMAP)) return -ENOMEM;
    int saved_errno = errno;
    return call_result(mremap(addr, old_size, new_size, 0) != MAP_FAILED, saved_errno);
}

int os_remap_onto(void *addr, size_t old_size, size_t new_size, void *dest)
{
    hs_assert_no_lock_for_slow_call("mremap");
    if (OS_REMAP_REFUSED || OS_FAULT(OS_FAULT_MREMAP)) return -ENOMEM;
    int saved_errno = errno;
    void *p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    return call_result(p != MAP_FAILED, saved_errno);
}

int os_make_writable(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("mprotect");
    /* madvise's fault site: both change what the kernel keeps of a range. */
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    /* Through syscall(), which the library imports already: one more
     * imported name grew the symbol tables that every process reads whole
     * past a page (`true` peaked 4 KiB higher). */
    int saved_errno = errno;
    return call_result(syscall(SYS_mprotect, addr, size, PROT_READ | PROT_WRITE) == 0, saved_errno);
}

HS_SELDOM int os_map_zeroes_read_only(void *addr, size_t size)
{
    int saved_errno = errno;
    if (mmap(addr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
        return 0;
    int err = errno;
    /* A kernel may have unmapped the range before it failed, leaving a
     * hole: zeroes again, writable, as they were. */
    (void)mmap(addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    errno = saved_errno;
    return -err;
}

#ifdef MCL_ONFAULT
_Static_assert(OS_LOCK_CURRENT == MCL_CURRENT && OS_LOCK_FUTURE == MCL_FUTURE &&
                   OS_LOCK_ON_FAULT == MCL_ONFAULT,
               "mlockall's flags are the kernel's");
#endif

HS_SELDOM int os_lock_all(int flags)
{
    hs_assert_no_lock_for_slow_call("mlockall");
    int saved_errno = errno;
    return call_result(syscall(SYS_mlockall, flags) == 0, saved_errno);
}

HS_SELDOM int os_unlock_all(void)
{
    hs_assert_no_lock_for_slow_call("munlockall");
    int saved_errno = errno;
    return call_result(syscall(SYS_munlockall) == 0, saved_errno);
}

HS_SELDOM int os_lock_range(void *addr, size_t size, bool on_fault)
{
    hs_assert_no_lock_for_slow_call("mlock2");
    int saved_errno = errno;
    /* MLOCK_ONFAULT is 1 (linux/mman.h); mlock2 is Linux 4.4. */
    return call_result(syscall(SYS_mlock2, addr, size, on_fault ? 1 : 0) == 0, saved_errno);
}

HS_SELDOM int os_unlock_range(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("munlock");
    int saved_errno = errno;
    return call_result(syscall(SYS_munlock, addr, size) == 0, saved_errno);
}

HS_SELDOM uint64_t os_lock_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)limit.rlim_cur;
}

/* The system call straight, not through syscall(): it runs in every
 * process's first allocation, where syscall() and keeping errno as malloc
 * promises took the text every process runs about 40 bytes more. The
 * kernel refuses (EINVAL) any argument after the first that is not zero. */
long os_thp_process_setting(void)
{
    register long arg4 __asm__("r10") = 0, arg5 __asm__("r8") = 0;
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_prctl), "D"((long)OS_PRCTL_GET_THP_DISABLE), "S"(0L), "d"(0L),
                       "r"(arg4), "r"(arg5)
                     : "rcx", "r11", "memory");
    return r;
}

int os_advise_hugepage(void *addr, size_t size, bool on)
{
    hs_assert_no_lock_for_slow_call("madvise");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    return advise(addr, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

int os_advise_cold(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("madvise");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    return advise(addr, size, MADV_COLD);
}

HS_COLD long os_resident_pages(void *addr, size_t size)
{
    unsigned char in_core[HS_SUPERSLAB_SIZE / PAGE_GRANULE];
    if (size > HS_SUPERSLAB_SIZE) return -1;
    int saved_errno = errno;
    bool ok = mincore(addr, size, in_core) == 0;
    errno = saved_errno;
    if (!ok) return -1;
    long pages = 0;
    for (size_t i = 0; i < size / PAGE_GRANULE; i++) pages += in_core[i] & 1;
    return pages;
}

int os_populate(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("MADV_POPULATE_WRITE");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    return advise(addr, size, MADV_POPULATE_WRITE);
}

int os_collapse(void *addr, size_t size)
{
    hs_assert_no_lock_for_slow_call("MADV_COLLAPSE");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    return advise(addr, size, MADV_COLLAPSE);
}

HS_APART int os_advise_fork(void *addr, size_t size, bool inherit)
{
    hs_assert_no_lock_for_slow_call("madvise");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    return advise(addr, size, inherit ? MADV_DOFORK : MADV_DONTFORK);
}

int os_purge(void *addr, size_t size, bool dontneed)
{
    hs_assert_no_lock_for_slow_call("madvise");
    if (OS_FAULT(OS_FAULT_MADVISE)) return -ENOMEM;
    if (!dontneed) {
        int r = advise(addr, size, MADV_FREE);
        if (r != -EINVAL) return r;
        /* MADV_FREE unknown (before 4.5): fall through to DONTNEED. */
    }
    return advise(addr, size, MADV_DONTNEED);
}

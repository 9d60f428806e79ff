/* The hugepage policy: the backing chain hugetlb -> THP -> base, the
 * per-mapping THP hints, and the hugetlb pool's figures. The calls to the
 * kernel are os/'s. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "common/common.h"
#include "os/os.h"
#include "thp/thp.h"

/* thp's state: what the kernel said at thp_init, and since. */
HS_START_STATE static struct thp_state_s {
    thp_mode_t system_mode; /* /sys/kernel/mm/transparent_hugepage/enabled */
    /* Whether a hint can give this process huge pages: system_mode allows
     * them, and the process has not turned THP off (prctl), which it may do
     * while other threads map: read and written by any thread. */
    _Atomic(bool) huge_allowed;
} thp = {.system_mode = THP_MODE_UNKNOWN};

HS_INLINE bool thp_allowed(void)
{
    return atomic_load_explicit(&thp.huge_allowed, memory_order_relaxed);
}

/* From system_mode and the process's own setting: inherited from the
 * parent, or set by the program since (api/prctl.c). */
HS_INLINE void note_process_setting(void)
{
    bool allowed =
        thp.system_mode >= THP_MODE_MADVISE && os_thp_process_setting() != OS_THP_PROCESS_OFF;
    atomic_store_explicit(&thp.huge_allowed, allowed, memory_order_relaxed);
}

void thp_init(void)
{
    /* The mode is the word in brackets ("always [madvise] never"). Words of
     * one size, no pointers: nothing the loader relocates. */
    static const char bracketed[][10] = {[THP_MODE_NEVER] = "[never]",
                                         [THP_MODE_MADVISE] = "[madvise]",
                                         [THP_MODE_ALWAYS] = "[always]"};
    char buf[256];
    if (os_read_thp_enabled(buf, sizeof buf) <= 0) return;
    for (thp_mode_t mode = THP_MODE_NEVER; mode <= THP_MODE_ALWAYS; mode++)
        if (strstr(buf, bracketed[mode])) thp.system_mode = mode;
    note_process_setting();
}

thp_mode_t thp_system_mode(void) { return thp.system_mode; }

HS_SELDOM bool thp_process_off(void) { return os_thp_process_setting() == OS_THP_PROCESS_OFF; }

HS_SELDOM void thp_process_setting_changed(void) { note_process_setting(); }

HS_SELDOM const char *thp_mode_name(thp_mode_t mode)
{
    switch (mode) {
    case THP_MODE_NEVER:
        return "never";
    case THP_MODE_MADVISE:
        return "madvise";
    case THP_MODE_ALWAYS:
        return "always";
    default:
        return "unavailable";
    }
}

HS_SELDOM const char *thp_backing_name(thp_backing_t backing)
{
    switch (backing) {
    case THP_BACKING_HUGETLB:
        return "hugetlb";
    case THP_BACKING_THP:
        return "thp";
    default:
        return "base";
    }
}

/* A range never hinted stays on base pages: in "always" mode only by a hint
 * of its own. */
void thp_defer_fresh(void *addr, size_t size)
{
    if (thp.system_mode == THP_MODE_ALWAYS) os_advise_hugepage(addr, size, false);
}

/* thp_map_unsettled under mlockall(MCL_FUTURE), where the kernel faults a
 * mapping in whole as it makes it, before any hint: mapped inaccessible,
 * hinted huge where THP allows, then made writable, which faults it in
 * (one fault a huge page, against 512). Its memory policy comes after, so
 * its pages are where the process's policy puts them. */
HS_SELDOM HS_NOINLINE static void *map_locked(size_t size, size_t align, thp_backing_t wanted,
                                              thp_backing_t *got)
{
    void *p = os_map_inaccessible(size, align);
    if (!p) return NULL;
    *got = wanted == THP_BACKING_THP && thp_allowed() && os_advise_hugepage(p, size, true) == 0
               ? THP_BACKING_THP
               : THP_BACKING_BASE;
    if (*got == THP_BACKING_BASE) thp_defer_fresh(p, size);
    if (os_make_writable(p, size) == 0) return p;
    os_unmap(p, size);
    errno = ENOMEM;
    return NULL;
}

void *thp_map_unsettled(size_t size, size_t align, thp_backing_t wanted, bool locked,
                        thp_backing_t *got)
{
    HS_ASSERT(size % HS_SUPERSLAB_SIZE == 0 && hs_is_pow2(align) && align >= HS_SUPERSLAB_SIZE);
    void *p;
    if (wanted == THP_BACKING_HUGETLB) {
        /* MAP_HUGETLB without MAP_NORESERVE: the pool's pages are reserved
         * now, and an empty pool is an ENOMEM here rather than a SIGBUS at
         * the first touch. os_map_aligned names the 2 MiB pool
         * (MAP_HUGE_2MB): plain MAP_HUGETLB takes the default size, 1 GiB on
         * a machine booted with default_hugepagesz=1G. */
        p = os_map_aligned(size, align, true);
        if (p) {
            *got = THP_BACKING_HUGETLB;
            return p;
        }
        wanted = THP_BACKING_THP;
    }
    if (HS_UNLIKELY(locked)) return map_locked(size, align, wanted, got);
    p = os_map_aligned(size, align, false);
    if (!p) return NULL;
    if (wanted == THP_BACKING_THP && thp_allowed()) {
        *got = THP_BACKING_THP;
        return p;
    }
    /* Base pages, asked for or the end of the chain. */
    thp_defer_fresh(p, size);
    *got = THP_BACKING_BASE;
    return p;
}

thp_backing_t thp_settle_huge(void *addr, size_t size)
{
    /* In "always" mode the hint still matters: the defrag setting's
     * "madvise" (the default) compacts memory for hinted ranges only. In
     * "madvise" mode it is what makes the first touch a single 2 MiB
     * fault. */
    if (os_advise_hugepage(addr, size, true) == 0) return THP_BACKING_THP;
    thp_defer_fresh(addr, size);
    return THP_BACKING_BASE;
}

void thp_defer_huge(void *addr, size_t size)
{
    if (thp_allowed()) os_advise_hugepage(addr, size, false);
}

bool thp_allow_huge(void *addr, size_t size)
{
    return thp_allowed() && os_advise_hugepage(addr, size, true) == 0;
}

void thp_collapse(void *addr, size_t size)
{
    if (thp_allowed()) os_collapse(addr, size);
}

void thp_split_huge(void *addr, size_t size)
{
    if (thp_allowed()) os_advise_cold(addr, size);
}

unsigned long thp_hugetlb_pages_total(void) { return os_hugetlb_count(OS_HUGETLB_TOTAL); }

unsigned long thp_hugetlb_pages_free(void) { return os_hugetlb_count(OS_HUGETLB_FREE); }

unsigned long thp_hugetlb_pages_available(void)
{
    unsigned long free = thp_hugetlb_pages_free(), promised = os_hugetlb_count(OS_HUGETLB_RESERVED);
    return free > promised ? free - promised : 0;
}

HS_SELDOM void thp_describe(void)
{
    unsigned long total = thp_hugetlb_pages_total(), default_kib = os_default_hugepage_kib();
    if (total == 0)
        hs_message("hugetlb: no 2 MiB pages reserved (hugepages-2048kB/nr_hugepages is 0): "
                   "SuperSlabs use THP or base pages");
    else
        hs_message("hugetlb: 2 MiB pool of %lu pages, %lu free, %lu of them promised", total,
                   thp_hugetlb_pages_free(), os_hugetlb_count(OS_HUGETLB_RESERVED));
    if (default_kib && default_kib != HS_SUPERSLAB_SIZE / HS_KiB)
        hs_message("hugetlb: the default hugepage size is %lu KiB; hugeslab asks for 2 MiB pages "
                   "by name and never takes that pool's pages",
                   default_kib);
}

HS_APART int thp_hugetlb_to_anonymous(void *addr, size_t size, thp_fill_fn fill, void *ctx)
{
    void *copy = os_map_aligned(size, HS_SUPERSLAB_SIZE, false);
    if (!copy) return -ENOMEM;
    if (thp_allowed()) os_advise_hugepage(copy, size, true);
    int rc = fill(copy, addr, size, ctx);
    if (rc == 0) rc = os_remap_onto(copy, size, size, addr);
    if (rc != 0) os_unmap(copy, size);
    return rc;
}

HS_SELDOM void *thp_remap(void *addr, size_t old_size, size_t new_size, thp_backing_t backing,
                          bool (*claim)(void *addr, size_t size))
{
    /* hugetlb mappings keep their reservation rules under mremap only on
     * recent kernels: let the caller copy instead. */
    if (backing == THP_BACKING_HUGETLB) return NULL;
    /* In place first: no new address, no page-table moves. */
    if (claim(addr, new_size) && os_remap_in_place(addr, old_size, new_size) == 0) {
        if (new_size > old_size && backing == THP_BACKING_THP && thp_allowed())
            os_advise_hugepage((char *)addr + old_size, new_size - old_size, true);
        return addr;
    }
    if (new_size < old_size) return NULL;
    /* Move: reserve an aligned destination, then let the kernel move the
     * page tables onto it (MREMAP_FIXED replaces the reservation). */
    void *dest = os_map_aligned(new_size, HS_SUPERSLAB_SIZE, false);
    if (!dest) return NULL;
    if (!claim(dest, new_size) || os_remap_onto(addr, old_size, new_size, dest) != 0) {
        os_unmap(dest, new_size);
        errno = ENOMEM;
        return NULL;
    }
    if (backing == THP_BACKING_THP && thp_allowed()) os_advise_hugepage(dest, new_size, true);
    return dest;
}

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/common.h"
#include "thp/thp.h"

static thp_mode_t system_mode = THP_MODE_UNKNOWN;

/* Reads a sysfs file such as "always [madvise] never" and returns the word
 * in brackets. No stdio: this runs inside the first malloc. */
static bool read_bracketed(const char *path, char *word, size_t cap)
{
    char buf[256];
    size_t n = hs_read_file(path, buf, sizeof buf);
    if (n == (size_t)-1 || n == 0) return false;
    char *open_br = strchr(buf, '[');
    char *close_br = open_br ? strchr(open_br, ']') : NULL;
    if (!close_br || (size_t)(close_br - open_br - 1) >= cap) return false;
    memcpy(word, open_br + 1, (size_t)(close_br - open_br - 1));
    word[close_br - open_br - 1] = '\0';
    return true;
}

void thp_init(void)
{
    char word[32];
    system_mode = THP_MODE_UNKNOWN;
    if (!read_bracketed("/sys/kernel/mm/transparent_hugepage/enabled", word, sizeof word)) return;
    if (strcmp(word, "always") == 0)
        system_mode = THP_MODE_ALWAYS;
    else if (strcmp(word, "madvise") == 0)
        system_mode = THP_MODE_MADVISE;
    else if (strcmp(word, "never") == 0)
        system_mode = THP_MODE_NEVER;
}

thp_mode_t thp_system_mode(void) { return system_mode; }

const char *thp_mode_name(thp_mode_t mode)
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

const char *thp_backing_name(thp_backing_t backing)
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

/* mmap that keeps errno at ENOMEM for every failure, as malloc promises. */
static void *map_anonymous(size_t size, int extra_flags)
{
    void *p =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
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

/* Maps size bytes aligned to align by over-mapping and trimming both ends
 * (for hugetlb, the kernel aligns to 2 MiB itself and trims at 2 MiB). */
static void *map_trimmed(size_t size, size_t align, int extra_flags, size_t granule)
{
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    size_t span = align > granule ? size + align - granule : size;
    char *raw = map_anonymous(span, extra_flags);
    if (!raw) return NULL;
    char *start = (char *)hs_align_up((uintptr_t)raw, align);
    size_t head = (size_t)(start - raw);
    size_t tail = span - head - size;
    if (head) munmap(raw, head);
    if (tail) munmap(start + size, tail);
    return start;
}

static bool thp_allowed(void)
{
    return system_mode == THP_MODE_MADVISE || system_mode == THP_MODE_ALWAYS;
}

void *thp_map_aligned(size_t size, size_t align, thp_backing_t wanted, thp_backing_t *got)
{
    HS_ASSERT(size % HS_SUPERSLAB_SIZE == 0 && hs_is_pow2(align) && align >= HS_SUPERSLAB_SIZE);
    void *p;
    if (wanted == THP_BACKING_HUGETLB) {
        /* MAP_HUGETLB without MAP_NORESERVE: the pool's pages are reserved
         * now, and an empty pool is an ENOMEM here rather than a SIGBUS at
         * the first touch. */
        p = map_trimmed(size, align, MAP_HUGETLB, HS_SUPERSLAB_SIZE);
        if (p) {
            *got = THP_BACKING_HUGETLB;
            return p;
        }
        wanted = THP_BACKING_THP;
    }
    /* The 4 KiB granule of the over-map: anything smaller than `align` is
     * trimmed away again. */
    p = map_trimmed(size, align, 0, 4 * HS_KiB);
    if (!p) return NULL;
    if (wanted == THP_BACKING_THP && thp_allowed() && madvise(p, size, MADV_HUGEPAGE) == 0) {
        /* In "always" mode the hint is redundant but harmless; in "madvise"
         * mode it is what makes the first touch a single 2 MiB fault. */
        *got = THP_BACKING_THP;
        return p;
    }
    /* Base pages, asked for or the end of the chain. Keep the kernel from
     * giving a huge page anyway in "always" mode, for this range only. */
    if (system_mode == THP_MODE_ALWAYS) madvise(p, size, MADV_NOHUGEPAGE);
    *got = THP_BACKING_BASE;
    return p;
}

int thp_populate(void *addr, size_t size)
{
    /* On a kernel without it (EINVAL), pages fault in on first touch. */
    return madvise(addr, size, 23 /* MADV_POPULATE_WRITE */) == 0 ? 0 : -errno;
}

static unsigned long read_ulong_file(const char *path)
{
    char buf[32];
    if (hs_read_file(path, buf, sizeof buf) == (size_t)-1) return 0;
    unsigned long v = 0;
    for (char *c = buf; *c >= '0' && *c <= '9'; c++) v = v * 10 + (unsigned long)(*c - '0');
    return v;
}

unsigned long thp_hugetlb_pages_total(void)
{
    return read_ulong_file("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
}

unsigned long thp_hugetlb_pages_free(void)
{
    return read_ulong_file("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
}

unsigned long thp_hugetlb_pages_available(void)
{
    unsigned long free_pages = thp_hugetlb_pages_free();
    unsigned long reserved =
        read_ulong_file("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages");
    return free_pages > reserved ? free_pages - reserved : 0;
}

int thp_hugetlb_to_anonymous(void *addr, size_t size)
{
    void *copy = map_trimmed(size, HS_SUPERSLAB_SIZE, 0, 4 * HS_KiB);
    if (!copy) return -ENOMEM;
    if (thp_allowed()) madvise(copy, size, MADV_HUGEPAGE);
    /* Reading the hugetlb pages needs no copy-on-write; writing them would. */
    memcpy(copy, addr, size);
    if (mremap(copy, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, addr) == MAP_FAILED) {
        int err = errno;
        munmap(copy, size);
        return -err;
    }
    return 0;
}

void thp_unmap(void *addr, size_t size)
{
    if (size) munmap(addr, size);
}

void *thp_remap(void *addr, size_t old_size, size_t new_size, thp_backing_t backing)
{
    /* hugetlb mappings keep their reservation rules under mremap only on
     * recent kernels: let the caller copy instead. */
    if (backing == THP_BACKING_HUGETLB) return NULL;
    /* In place first: no new address, no page-table moves. */
    void *p = mremap(addr, old_size, new_size, 0);
    if (p != MAP_FAILED) {
        if (new_size > old_size && backing == THP_BACKING_THP && thp_allowed())
            madvise((char *)addr + old_size, new_size - old_size, MADV_HUGEPAGE);
        return addr;
    }
    if (new_size < old_size) return NULL;
    /* Move: reserve an aligned destination, then let the kernel move the
     * page tables onto it (MREMAP_FIXED replaces the reservation). */
    void *dest = map_trimmed(new_size, HS_SUPERSLAB_SIZE, 0, 4 * HS_KiB);
    if (!dest) return NULL;
    p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    if (p == MAP_FAILED) {
        munmap(dest, new_size);
        errno = ENOMEM;
        return NULL;
    }
    if (backing == THP_BACKING_THP && thp_allowed()) madvise(p, new_size, MADV_HUGEPAGE);
    return p;
}

int thp_purge(void *addr, size_t size, bool dontneed)
{
    if (!dontneed) {
        if (madvise(addr, size, MADV_FREE) == 0) return 0;
        if (errno != EINVAL) return -errno;
        /* MADV_FREE unknown (before 4.5): fall through to DONTNEED. */
    }
    return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : -errno;
}

/* Reads one "Key:   N kB" field of smaps_rollup text, in bytes. */
static long long rollup_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p) return -1;
    p += strlen(key);
    while (*p == ' ' || *p == '\t') p++;
    long long kb = 0;
    while (*p >= '0' && *p <= '9') kb = kb * 10 + (*p++ - '0');
    return kb * 1024;
}

void thp_read_rollup(thp_rollup_t *out)
{
    char text[4096];
    out->rss = out->anon_huge = out->lazy_free = out->private_hugetlb = -1;
    if (hs_read_file("/proc/self/smaps_rollup", text, sizeof text) == (size_t)-1) return;
    out->rss = rollup_field(text, "\nRss:");
    out->anon_huge = rollup_field(text, "AnonHugePages:");
    out->lazy_free = rollup_field(text, "LazyFree:");
    out->private_hugetlb = rollup_field(text, "Private_Hugetlb:");
}

void *thp_map_metadata(size_t size) { return map_anonymous(hs_align_up(size, 4 * HS_KiB), 0); }

unsigned long thp_random_bits(void)
{
    unsigned long v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v && v) return v;
    /* Weaker, still per process: the stack address and the cycle counter. */
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    v = ((unsigned long)hi << 32 | lo) ^ (unsigned long)(uintptr_t)&v;
    v ^= v >> 29;
    v *= 0xbf58476d1ce4e5b9UL;
    return v | 1;
}

long long thp_page_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long long)ru.ru_minflt + ru.ru_majflt;
}

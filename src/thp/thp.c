#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/common.h"
#include "thp/thp.h"

static thp_mode_t system_mode = THP_MODE_UNKNOWN;

/* Reads a sysfs file such as "always [madvise] never" and returns the word
 * in brackets. No stdio: this runs inside the first malloc. */
static bool read_bracketed(const char *path, char *word, size_t cap)
{
    char buf[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
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
    if (!read_bracketed("/sys/kernel/mm/transparent_hugepage/enabled", word, sizeof word))
        return;
    if (strcmp(word, "always") == 0) system_mode = THP_MODE_ALWAYS;
    else if (strcmp(word, "madvise") == 0) system_mode = THP_MODE_MADVISE;
    else if (strcmp(word, "never") == 0) system_mode = THP_MODE_NEVER;
}

thp_mode_t thp_system_mode(void) { return system_mode; }

const char *thp_mode_name(thp_mode_t mode)
{
    switch (mode) {
    case THP_MODE_NEVER: return "never";
    case THP_MODE_MADVISE: return "madvise";
    case THP_MODE_ALWAYS: return "always";
    default: return "unavailable";
    }
}

const char *thp_backing_name(thp_backing_t backing)
{
    return backing == THP_BACKING_THP ? "thp" : "base";
}

/* mmap that keeps errno at ENOMEM for every failure, as malloc promises. */
static void *map_anonymous(void *hint, size_t size)
{
    void *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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

static void apply_hint(void *addr, size_t size, bool want_thp, thp_backing_t *got)
{
    thp_backing_t backing = THP_BACKING_BASE;
    if (want_thp && system_mode != THP_MODE_NEVER && system_mode != THP_MODE_UNKNOWN) {
        /* In "always" mode the hint is redundant but harmless; in "madvise"
         * mode it is what makes the first touch a single 2 MiB fault. */
        if (madvise(addr, size, MADV_HUGEPAGE) == 0) backing = THP_BACKING_THP;
    } else if (!want_thp && system_mode == THP_MODE_ALWAYS) {
        /* Base backing asked for explicitly: keep the kernel from giving a
         * huge page anyway, for this range only. */
        madvise(addr, size, MADV_NOHUGEPAGE);
    }
    if (got) *got = backing;
}

void *thp_map_aligned(size_t size, size_t align, bool want_thp, thp_backing_t *got)
{
    HS_ASSERT(size % HS_SUPERSLAB_SIZE == 0 && hs_is_pow2(align) && align >= HS_SUPERSLAB_SIZE);
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    /* Over-map by the alignment and trim both ends: two extra munmap calls,
     * but only on the slow path that creates a SuperSlab or a run. */
    size_t span = size + align - HS_KiB * 4;
    char *raw = map_anonymous(NULL, span);
    if (!raw) return NULL;
    char *start = (char *)hs_align_up((uintptr_t)raw, align);
    size_t head = (size_t)(start - raw);
    size_t tail = span - head - size;
    if (head) munmap(raw, head);
    if (tail) munmap(start + size, tail);
    apply_hint(start, size, want_thp, got);
    return start;
}

void thp_unmap(void *addr, size_t size)
{
    if (size) munmap(addr, size);
}

void *thp_remap(void *addr, size_t old_size, size_t new_size, bool want_thp)
{
    /* In place first: no new address, no page-table moves. */
    void *p = mremap(addr, old_size, new_size, 0);
    if (p != MAP_FAILED) {
        if (new_size > old_size)
            apply_hint((char *)addr + old_size, new_size - old_size, want_thp, NULL);
        return addr;
    }
    if (new_size < old_size) return NULL;
    /* Move: reserve an aligned destination, then let the kernel move the
     * page tables onto it (MREMAP_FIXED replaces the reservation). */
    void *dest = thp_map_aligned(new_size, HS_SUPERSLAB_SIZE, want_thp, NULL);
    if (!dest) return NULL;
    p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    if (p == MAP_FAILED) {
        munmap(dest, new_size);
        errno = ENOMEM;
        return NULL;
    }
    apply_hint(p, new_size, want_thp, NULL);
    return p;
}

void *thp_map_metadata(size_t size)
{
    return map_anonymous(NULL, hs_align_up(size, 4 * HS_KiB));
}

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

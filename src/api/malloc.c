/* The malloc family, under its glibc names and under hugeslab_ names. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "hugeslab.h"
#include "os/os.h"
#include "segment/segment.h"
#include "tiny/tiny.h"

/* Every entry point is defined once as hugeslab_<name>; the glibc name is an
 * alias of the same code, so interposing costs no extra call. */
#define HS_ALIAS(target) __attribute__((alias(#target), visibility("default"), used))

/* ---- routing ---------------------------------------------------------------- */

static HS_NOINLINE void *malloc_run(size_t size, size_t alignment, bool *fresh)
{
    hs_init();
    bool fresh_ignored;
    return seg_run_alloc(size, alignment, seg_thread_node(), fresh ? fresh : &fresh_ignored);
}

HS_INLINE void *hs_malloc(size_t size)
{
    if (HS_LIKELY(size <= TINY_TABLE_MAX)) return tiny_malloc_small(size);
    if (size <= TINY_MAX_SIZE) return tiny_malloc(size);
    return malloc_run(size, 16, NULL);
}

/* What the reports of bad pointers and malloc_info print: in the seldom
 * read-only data, not in .rodata, which shares the library's first
 * mapping with the symbol tables every process reads (4 pages with them,
 * 3 without). */
static const char msg_not_handed_out[] HS_SELDOM_DATA =
    "%s of %p, which hugeslab never handed out (or already returned)";
static const char msg_double_free_large[] HS_SELDOM_DATA = "double free of %p (large block)";
static const char msg_freed_large[] HS_SELDOM_DATA = "%s of %p after it was freed (large block)";
static const char msg_inside_large[] HS_SELDOM_DATA =
    "%s of %p: points into the large block at %p, not at its start";
static const char malloc_info_format[] HS_SELDOM_DATA =
    "<malloc version=\"hugeslab-%d.%d\">\n"
    "<total type=\"mapped\" size=\"%llu\"/>\n"
    "<total type=\"slabs\" size=\"%llu\"/>\n"
    "<total type=\"runs\" size=\"%llu\"/>\n"
    "<total type=\"cached\" count=\"%llu\" size=\"%llu\"/>\n"
    "</malloc>\n";

/* run_of_block's report naming p: out of the text every process runs. */
HS_SELDOM HS_NOINLINE HS_NORETURN static void
report_not_a_run_block(const void *p, const seg_superslab_t *run, const char *what)
{
    if (run && run->run_block == NULL) {
        if (what[0] == 'f') hs_fatal(msg_double_free_large, p); /* "free" */
        hs_fatal(msg_freed_large, what, p);
    }
    if (run) hs_fatal(msg_inside_large, what, p, run->run_block);
    hs_fatal(msg_not_handed_out, what, p);
}

/* The run whose block starts at p, or an abort naming p. */
static HS_NOINLINE seg_superslab_t *run_of_block(const void *p, const char *what)
{
    seg_superslab_t *run = seg_run_of(p);
    if (!run || run->run_block != p) report_not_a_run_block(p, run, what);
    return run;
}

/* Everything but a block in a SuperSlab of slabs: NULL, a large block, or
 * a pointer to report. */
static HS_NOINLINE void free_other(void *p)
{
    if (!p) return;
    if (seg_chunk_kind(p) == SEG_CHUNK_NONE) hs_fatal(msg_not_handed_out, "free", p);
    int saved_errno = errno;
    seg_run_free(run_of_block(p, "free"));
    errno = saved_errno;
}

HS_INLINE void hs_free(void *p)
{
    if (HS_LIKELY(seg_chunk_kind(p) == SEG_CHUNK_SLABS)) {
        tiny_free(p);
        return;
    }
    free_other(p);
}

/* Usable bytes from p to the end of its block, after validating p. */
static size_t usable_size(const void *p, const char *what)
{
    seg_chunk_kind_t kind = seg_chunk_kind(p);
    if (kind == SEG_CHUNK_SLABS) return tiny_usable_size(p, what);
    if (kind == SEG_CHUNK_NONE) hs_fatal(msg_not_handed_out, what, p);
    seg_superslab_t *run = run_of_block(p, what);
    return seg_run_usable(run, p);
}

static void *malloc_aligned(size_t alignment, size_t size)
{
    hs_assert_no_lock_held("an aligned allocation");
    if (alignment <= 16) return hs_malloc(size);
    if (size > SIZE_MAX - alignment) {
        errno = ENOMEM;
        return NULL;
    }
    if (alignment <= 64 * HS_KiB && size + alignment - 16 <= TINY_MAX_SIZE)
        return tiny_malloc_aligned(alignment, size);
    return malloc_run(size, alignment, NULL);
}

/* ---- the API ------------------------------------------------------------------ */

/* Debug builds check at each entry that the allocator is not re-entered
 * from inside itself with a lock held (rule 2 of common/locks.h). */
HS_EXPORT void *hugeslab_malloc(size_t size)
{
    hs_assert_no_lock_held("malloc");
    return hs_malloc(size);
}
void *malloc(size_t size) HS_ALIAS(hugeslab_malloc);

HS_EXPORT void hugeslab_free(void *ptr)
{
    hs_assert_no_lock_held("free");
    hs_free(ptr);
}
void free(void *ptr) HS_ALIAS(hugeslab_free);

HS_EXPORT void *hugeslab_calloc(size_t count, size_t size)
{
    hs_assert_no_lock_held("calloc");
    /* pthread_create's first allocation: the fork handlers' moment (locks.h). */
    hs_fork_handlers_arm_if_threaded();
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (HS_LIKELY(total <= TINY_MAX_SIZE)) {
        tiny_fresh_block = NULL;
        void *p = tiny_malloc(total);
        if (p) memset(p, 0, p == tiny_fresh_block ? sizeof(tiny_block_t) : total);
        return p;
    }
    bool fresh = false;
    void *p = malloc_run(total, 16, &fresh);
    if (p && !fresh) memset(p, 0, total);
    return p;
}
void *calloc(size_t count, size_t size) HS_ALIAS(hugeslab_calloc);

HS_EXPORT void *hugeslab_realloc(void *ptr, size_t size)
{
    hs_assert_no_lock_held("realloc");
    if (!ptr) return hs_malloc(size);
    if (size == 0) {
        /* As glibc does: free, and return NULL. */
        hs_free(ptr);
        return NULL;
    }
    seg_chunk_kind_t kind = seg_chunk_kind(ptr);
    size_t usable = usable_size(ptr, "realloc");
    /* Stay in place while the block fits and is not more than twice too
     * big, or a large block's run would lose less than a chunk. */
    if (size <= usable && (size >= usable / 2 || (kind != SEG_CHUNK_SLABS && size > TINY_MAX_SIZE &&
                                                  usable - size < HS_SUPERSLAB_SIZE))) {
        if (kind != SEG_CHUNK_SLABS) seg_run_block_resized(ptr, size);
        return ptr;
    }
    if (kind != SEG_CHUNK_SLABS && size > TINY_MAX_SIZE) {
        void *moved = seg_run_resize(seg_run_of(ptr), size);
        if (moved) return moved;
    }
    if (kind == SEG_CHUNK_SLABS && size > usable && size <= TINY_MAX_SIZE &&
        tiny_grow_in_place(ptr, size))
        return ptr;
    if (kind == SEG_CHUNK_SLABS && size > TINY_MAX_SIZE &&
        size <= HS_SUPERSLAB_SIZE - SEG_HEADER_SIZE) {
        void *moved = tiny_lone_block_to_run(ptr, size);
        if (moved) return moved;
    }
    void *fresh = hs_malloc(size);
    if (!fresh) return NULL; /* errno is ENOMEM; the old block is intact */
    memcpy(fresh, ptr, size < usable ? size : usable);
    /* kind is known: hs_free's own look at the registry would only add a
     * second inlined copy of tiny_free to this function. */
    if (kind != SEG_CHUNK_SLABS) {
        free_other(ptr);
        return fresh;
    }
    /* An array that grew through the small heap's base pages leaves them
     * for good (segment.h, seg_small_heap_give_back). */
    if (usable >= TINY_PASSING_MIN &&
        atomic_load_explicit(&seg_superslab_of(ptr)->hinted_late, memory_order_relaxed))
        tiny_lone_give_back(ptr);
    tiny_realloc_free(ptr, size);
    return fresh;
}
void *realloc(void *ptr, size_t size) HS_ALIAS(hugeslab_realloc);

HS_EXPORT void *hugeslab_reallocarray(void *ptr, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hugeslab_realloc(ptr, total);
}
void *reallocarray(void *ptr, size_t count, size_t size) HS_ALIAS(hugeslab_reallocarray);

HS_EXPORT int hugeslab_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!hs_is_pow2(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved_errno = errno;
    void *p = malloc_aligned(alignment, size);
    errno = saved_errno;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
int posix_memalign(void **out, size_t alignment, size_t size) HS_ALIAS(hugeslab_posix_memalign);

HS_EXPORT void *hugeslab_aligned_alloc(size_t alignment, size_t size)
{
    if (!hs_is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return malloc_aligned(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) HS_ALIAS(hugeslab_aligned_alloc);

/* As glibc's memalign (every version; only its aligned_alloc became strict,
 * in 2.38): an alignment of 16 or less is malloc's own, any other is
 * rounded up to a power of two, and only one above SIZE_MAX / 2 + 1, which
 * no power of two is, fails with EINVAL. A program that asks for the
 * alignment of a 24-byte struct got NULL, as if out of memory. Seldom
 * text, as valloc's: programs ask posix_memalign or aligned_alloc. */
HS_SELDOM HS_EXPORT void *hugeslab_memalign(size_t alignment, size_t size)
{
    if (alignment <= 16) return hugeslab_malloc(size);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!hs_is_pow2(alignment)) alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
    return malloc_aligned(alignment, size);
}
void *memalign(size_t alignment, size_t size) HS_ALIAS(hugeslab_memalign);

HS_SELDOM HS_EXPORT void *hugeslab_valloc(size_t size)
{
    return malloc_aligned(os_page_size(), size);
}
void *valloc(size_t size) HS_ALIAS(hugeslab_valloc);

HS_SELDOM HS_EXPORT void *hugeslab_pvalloc(size_t size)
{
    size_t page = os_page_size();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size ? hs_align_up(size, page) : page;
    return malloc_aligned(page, rounded);
}
void *pvalloc(size_t size) HS_ALIAS(hugeslab_pvalloc);

HS_EXPORT size_t hugeslab_malloc_usable_size(const void *ptr)
{
    if (!ptr) return 0;
    return usable_size(ptr, "malloc_usable_size");
}
size_t malloc_usable_size(void *ptr) HS_ALIAS(hugeslab_malloc_usable_size);

/* The size tells hugeslab nothing it does not know (the slab or run says
 * it): free's own code, one jump away, rather than a copy of it. */
HS_EXPORT void hugeslab_free_sized(void *ptr, size_t size)
{
    (void)size;
    hugeslab_free(ptr);
}
void free_sized(void *ptr, size_t size) HS_ALIAS(hugeslab_free_sized);

HS_EXPORT void hugeslab_free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    hugeslab_free(ptr);
}
void free_aligned_sized(void *ptr, size_t alignment, size_t size)
    HS_ALIAS(hugeslab_free_aligned_sized);

/* ---- glibc's tuning and reporting calls ------------------------------------------ */

HS_SELDOM HS_EXPORT int hugeslab_trim(size_t pad)
{
    (void)pad;
    hs_assert_no_lock_held("malloc_trim");
    int saved_errno = errno;
    hs_init();
    int released = seg_trim(tiny_trim);
    errno = saved_errno;
    return released;
}
int malloc_trim(size_t pad) HS_ALIAS(hugeslab_trim);
int hugeslab_malloc_trim(size_t pad) HS_ALIAS(hugeslab_trim);

/* glibc's knobs tune glibc's arenas; none applies here, so each is accepted
 * and has no effect (returning 0 would make some programs stop). */
HS_SELDOM HS_EXPORT int hugeslab_mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}
int mallopt(int param, int value) HS_ALIAS(hugeslab_mallopt);

static size_t in_use_bytes(const hugeslab_stats_t *s)
{
    return s->bytes_in_slabs + s->bytes_in_runs;
}

HS_SELDOM HS_EXPORT struct mallinfo2 hugeslab_mallinfo2(void)
{
    hugeslab_stats_t s;
    hs_stats_gather(&s, false); /* none of its fields is the kernel's */
    struct mallinfo2 mi = {0};
    mi.arena = s.bytes_mapped;
    mi.hblks = s.huge_blocks;
    mi.uordblks = in_use_bytes(&s);
    mi.fordblks = s.bytes_mapped > mi.uordblks ? s.bytes_mapped - mi.uordblks : 0;
    mi.keepcost = s.superslabs_cached * HS_SUPERSLAB_SIZE;
    return mi;
}
struct mallinfo2 mallinfo2(void) HS_ALIAS(hugeslab_mallinfo2);

static int clamp_int(size_t v) { return v > (size_t)INT32_MAX ? INT32_MAX : (int)v; }

HS_SELDOM HS_EXPORT struct mallinfo hugeslab_mallinfo(void)
{
    struct mallinfo2 m2 = hugeslab_mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = clamp_int(m2.arena);
    mi.hblks = clamp_int(m2.hblks);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.keepcost = clamp_int(m2.keepcost);
    return mi;
}
struct mallinfo mallinfo(void) HS_ALIAS(hugeslab_mallinfo);

HS_SELDOM HS_EXPORT void hugeslab_malloc_stats(void) { hugeslab_stats_print(); }
void malloc_stats(void) HS_ALIAS(hugeslab_malloc_stats);

HS_SELDOM HS_EXPORT int hugeslab_malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    fprintf(fp, malloc_info_format, HUGESLAB_VERSION_MAJOR, HUGESLAB_VERSION_MINOR,
            (unsigned long long)s.bytes_mapped, (unsigned long long)s.bytes_in_slabs,
            (unsigned long long)s.bytes_in_runs, (unsigned long long)s.superslabs_cached,
            (unsigned long long)(s.superslabs_cached * HS_SUPERSLAB_SIZE));
    return 0;
}
int malloc_info(int options, FILE *fp) HS_ALIAS(hugeslab_malloc_info);

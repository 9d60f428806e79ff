/* layout.c: a hugeslab heap's bytes by where they lie, for rss_layout.
 *
 * The lines it writes (sizes in KiB):
 *   layout superslabs=N thp= base= hugetlb= resident_kib= metadata_kib=
 *          free_units= free_unit_kib= free_page_kib= purged= other_kib=
 *     SuperSlabs of slabs the registry names in this process's mappings
 *     (/proc/self/smaps, read with the library's os_walk_smaps), by
 *     the backing their header records; resident: their pages in memory
 *     (mincore); metadata: the header, page map and client area at the
 *     start of each one (SEG_FIRST_SLAB_BYTE); free units: units in no
 *     slab (their KiB less unit 0's metadata); free pages: pages that slabs
 *     of pages left in units they share (the page map); purged: SuperSlabs
 *     whose first page is not in memory (given back, header unread), counted
 *     in none of the other figures; other: the SuperSlabs' bytes that
 *     neither the metadata, the free units and pages nor a slab holds, 0
 *     when the walk accounts for every byte.
 *   layout resident_kib= metadata= free_units= carved= past_carve= pages=
 *          other=
 *     The same SuperSlabs' pages in memory, each counted once, where its
 *     first byte lies: in the metadata; in a free unit; in a slab of units,
 *     before or past the end of its carved blocks (past_carve: pages that an
 *     earlier slab of those units wrote, or that a huge page brought in); in
 *     a unit that slabs of pages use, whole or in part; other: in a unit
 *     taken but not yet a slab's. The figures add up to resident_kib.
 *   layout superslab=ADDRESS backing= resident_kib= free_units=
 *          free_unit_resident_kib=
 *     One line per SuperSlab walked, by address: which ones hold the free
 *     units in memory (under THP, those of the newest huge page as a rule).
 *   layout slabs=N of=FIRST-LAST slab_kib= carved_kib= in_use_kib=
 *     Slabs whose class lies in FIRST-LAST bytes (one line for the classes
 *     up to 8 KiB, one for those above): the bytes they span, the blocks
 *     ever handed to their free lists (carved) and those handed out and not
 *     freed (in use; blocks on a remote-free stack or a delayed list still
 *     count), each at the class's size.
 *   layout slabs=N of=pages slab_kib= in_use_kib=
 *     Slabs of pages (one block each, its request rounded up to a page).
 *   layout runs=N run_kib= cached=
 *     Runs (blocks above 1 MiB) by their mapping, and those the run cache
 *     holds with no block.
 *   layout blocks=N requested_kib= usable_kib=
 *     The caller's live blocks (layout_blocks_t): usable - requested is the
 *     classes' rounding.
 *   layout class=SIZE slabs= slab_kib= carved_kib= in_use_kib=
 *     The same figures for each class that has slabs.
 * So the SuperSlabs' bytes are metadata + free units + free pages + slab
 * bytes (+ other), and what the program holds beyond its blocks' requests
 * is free units and pages, slab bytes not in use, the rounding (usable -
 * requested) and the metadata. */
#define _GNU_SOURCE
#include "layout.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "os/os.h"
#include "segment/segment.h"
#include "thp/thp.h"
#include "tiny/tiny.h"

typedef struct slab_figures_s {
    uint64_t slabs;
    uint64_t bytes;  /* spanned */
    uint64_t carved; /* bytes of blocks carved */
    uint64_t in_use; /* bytes of blocks handed out */
} slab_figures_t;

/* The walk's sums; static, so that nothing comes from the heap walked. */
static slab_figures_t by_class[TINY_CLASS_COUNT], pages_slabs;
static uint64_t superslabs, by_backing[THP_BACKING_COUNT], resident_pages, purged;
static uint64_t free_units, free_unit_bytes, free_pages, runs, run_bytes, runs_cached;
/* Pages in memory by where they lie (the `layout resident_kib=` line). */
typedef enum {
    PAGE_META,
    PAGE_FREE_UNIT,
    PAGE_CARVED,
    PAGE_PAST_CARVE,
    PAGE_PAGES,
    PAGE_OTHER,
    PAGE_KINDS
} page_kind_t;
static uint64_t resident_by_kind[PAGE_KINDS];
/* One `layout superslab=` line per SuperSlab, written after the summary
 * (walk_superslab runs before it is known); at most this many. */
#define LAYOUT_SUPERSLABS_MAX 4096
static struct {
    uintptr_t address;
    unsigned backing, resident_pages, free_units, free_unit_resident_pages;
} superslab_lines[LAYOUT_SUPERSLABS_MAX];
static char line[512];

static void say(int fd, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(line, sizeof line, format, ap);
    va_end(ap);
    if (n > 0) {
        ssize_t wrote = write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)wrote;
    }
}

static uint64_t kib(uint64_t bytes) { return bytes / 1024; }

static void walk_slab(tiny_slab_t *s, unsigned unit)
{
    if (s->sized) {
        uint64_t bytes = hs_align_up(s->block_size, SEG_PAGE_SIZE);
        pages_slabs.slabs++;
        pages_slabs.bytes += bytes;
        pages_slabs.in_use += (s->used + s->full_bias) ? bytes : 0;
        return;
    }
    if (s->cls >= TINY_CLASS_COUNT) return;
    slab_figures_t *f = &by_class[s->cls];
    f->slabs++;
    f->bytes += (uint64_t)s->units * HS_UNIT_SIZE - (unit == 0 ? SEG_FIRST_SLAB_BYTE : 0);
    f->carved += (uint64_t)s->carved * s->block_size;
    f->in_use += (uint64_t)(s->used + s->full_bias) * s->block_size;
}

static void walk_superslab(seg_superslab_t *ss)
{
    unsigned char vec[HS_SUPERSLAB_SIZE / 4096];
    /* Before any read: a read of a page given back would map one. */
    if (mincore(ss, HS_SUPERSLAB_SIZE, vec) != 0 || !(vec[0] & 1) || ss->kind != SEG_CHUNK_SLABS) {
        purged++;
        return;
    }
    unsigned in_memory = 0, free_unit_in_memory = 0;
    for (size_t i = 0; i < sizeof vec; i++) in_memory += vec[i] & 1;
    resident_pages += in_memory;
    if (ss->backing < THP_BACKING_COUNT) by_backing[ss->backing]++;
    free_units += (uint64_t)__builtin_popcountll(ss->free_units);
    /* Unit 0 begins with the metadata, counted apart. */
    free_unit_bytes += (uint64_t)__builtin_popcountll(ss->free_units) * HS_UNIT_SIZE -
                       (ss->free_units & 1 ? SEG_FIRST_SLAB_BYTE : 0);
    const seg_page_map_t *map = seg_page_map(ss);
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u++)
        free_pages += (uint64_t)__builtin_popcount(map->free[u]);
    tiny_client_area_t *area = tiny_client_area(ss);
    for (size_t page = 0; page < sizeof vec; page++) {
        if (!(vec[page] & 1)) continue;
        size_t offset = page * 4096;
        unsigned u = (unsigned)(offset / HS_UNIT_SIZE);
        const tiny_slab_t *s = area->head[u];
        page_kind_t kind;
        if (offset < SEG_FIRST_SLAB_BYTE) {
            kind = PAGE_META;
        } else if (ss->free_units >> u & 1) {
            kind = PAGE_FREE_UNIT;
            free_unit_in_memory++;
        } else if (map->free[u] != 0 || s->sized) {
            kind = PAGE_PAGES;
        } else if (s == &tiny_sentinel_slab) {
            kind = PAGE_OTHER;
        } else {
            uintptr_t carved_end =
                (uintptr_t)s->start +
                (uintptr_t)atomic_load_explicit(&s->carved, memory_order_relaxed) * s->block_size;
            kind = (uintptr_t)ss + offset < carved_end ? PAGE_CARVED : PAGE_PAST_CARVE;
        }
        resident_by_kind[kind]++;
    }
    if (superslabs < LAYOUT_SUPERSLABS_MAX) {
        superslab_lines[superslabs].address = (uintptr_t)ss;
        superslab_lines[superslabs].backing = ss->backing;
        superslab_lines[superslabs].resident_pages = in_memory;
        superslab_lines[superslabs].free_units = (unsigned)__builtin_popcountll(ss->free_units);
        superslab_lines[superslabs].free_unit_resident_pages = free_unit_in_memory;
    }
    superslabs++;
    for (unsigned u = 0; u < HS_UNITS_PER_SUPERSLAB; u++) {
        /* A slab starts at u when u's head is u's own descriptor (the unit
         * where a slab of pages ends may name the next one's). */
        if (ss->free_units >> u & 1 || area->head[u] != &area->unit[u].slab) continue;
        walk_slab(&area->unit[u].slab, u);
    }
}

static void walk_chunk(uintptr_t chunk)
{
    seg_superslab_t *ss = (seg_superslab_t *)(chunk << HS_SUPERSLAB_SHIFT);
    switch (seg_kind_at(chunk)) {
    case SEG_CHUNK_SLABS:
        walk_superslab(ss);
        break;
    case SEG_CHUNK_RUN:
        runs++;
        run_bytes += ss->run_size;
        runs_cached += ss->run_block == NULL;
        break;
    default:
        break;
    }
}

/* A mapping of /proc/self/smaps (os_walk_smaps): its 2 MiB chunks that the
 * registry names. */
static void walk_range(void *ctx, uintptr_t start, uintptr_t end, long long anon_huge,
                       long long hugetlb)
{
    (void)ctx, (void)anon_huge, (void)hugetlb;
    for (uintptr_t c = (start + HS_SUPERSLAB_MASK) >> HS_SUPERSLAB_SHIFT;
         c < SEG_MAP_ENTRIES && (c + 1) << HS_SUPERSLAB_SHIFT <= end; c++)
        walk_chunk(c);
}

static void print_slabs(int fd, const char *of, const slab_figures_t *f, bool carved)
{
    say(fd, "layout slabs=%" PRIu64 " of=%s slab_kib=%" PRIu64, f->slabs, of, kib(f->bytes));
    if (carved) say(fd, " carved_kib=%" PRIu64, kib(f->carved));
    say(fd, " in_use_kib=%" PRIu64 "\n", kib(f->in_use));
}

void layout_print(int fd, const layout_blocks_t *blocks)
{
    /* Each call walks afresh. */
    memset(by_class, 0, sizeof by_class);
    memset(&pages_slabs, 0, sizeof pages_slabs);
    memset(by_backing, 0, sizeof by_backing);
    superslabs = resident_pages = purged = 0;
    memset(resident_by_kind, 0, sizeof resident_by_kind);
    free_units = free_unit_bytes = free_pages = runs = run_bytes = runs_cached = 0;
    /* Chunks are looked up for the mapped ranges only (the library's own
     * walk of smaps): the registry is 64 MiB of mostly untouched pages. */
    if (os_walk_smaps(walk_range, NULL) != 0) {
        say(fd, "layout: /proc/self/smaps unreadable\n");
        return;
    }
    say(fd,
        "layout superslabs=%" PRIu64 " thp=%" PRIu64 " base=%" PRIu64 " hugetlb=%" PRIu64
        " resident_kib=%" PRIu64 " metadata_kib=%" PRIu64 " free_units=%" PRIu64
        " free_unit_kib=%" PRIu64 " free_page_kib=%" PRIu64 " purged=%" PRIu64,
        superslabs, by_backing[THP_BACKING_THP], by_backing[THP_BACKING_BASE],
        by_backing[THP_BACKING_HUGETLB], resident_pages * 4, kib(superslabs * SEG_FIRST_SLAB_BYTE),
        free_units, kib(free_unit_bytes), kib(free_pages * SEG_PAGE_SIZE), purged);
    slab_figures_t small = {0}, medium = {0};
    for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
        slab_figures_t *sum = tiny_class_size[c] <= TINY_INDEXED_MAX ? &small : &medium;
        sum->slabs += by_class[c].slabs;
        sum->bytes += by_class[c].bytes;
        sum->carved += by_class[c].carved;
        sum->in_use += by_class[c].in_use;
    }
    /* What no figure holds: 0 unless the walk missed a slab or counted one
     * twice (or the purge thread moved units meanwhile). */
    int64_t other =
        (int64_t)(superslabs * (HS_SUPERSLAB_SIZE - SEG_FIRST_SLAB_BYTE) - free_unit_bytes -
                  free_pages * SEG_PAGE_SIZE - small.bytes - medium.bytes - pages_slabs.bytes);
    say(fd, " other_kib=%" PRId64 "\n", other / 1024);
    say(fd,
        "layout resident_kib=%" PRIu64 " metadata=%" PRIu64 " free_units=%" PRIu64
        " carved=%" PRIu64 " past_carve=%" PRIu64 " pages=%" PRIu64 " other=%" PRIu64 "\n",
        resident_pages * 4, resident_by_kind[PAGE_META] * 4, resident_by_kind[PAGE_FREE_UNIT] * 4,
        resident_by_kind[PAGE_CARVED] * 4, resident_by_kind[PAGE_PAST_CARVE] * 4,
        resident_by_kind[PAGE_PAGES] * 4, resident_by_kind[PAGE_OTHER] * 4);
    for (uint64_t i = 0; i < superslabs && i < LAYOUT_SUPERSLABS_MAX; i++)
        say(fd,
            "layout superslab=%#" PRIxPTR " backing=%s resident_kib=%u free_units=%u"
            " free_unit_resident_kib=%u\n",
            superslab_lines[i].address, thp_backing_name(superslab_lines[i].backing),
            superslab_lines[i].resident_pages * 4, superslab_lines[i].free_units,
            superslab_lines[i].free_unit_resident_pages * 4);
    print_slabs(fd, "16-8192", &small, true);
    print_slabs(fd, "9216-1048576", &medium, true);
    print_slabs(fd, "pages", &pages_slabs, false);
    say(fd, "layout runs=%" PRIu64 " run_kib=%" PRIu64 " cached=%" PRIu64 "\n", runs,
        kib(run_bytes), runs_cached);
    say(fd, "layout blocks=%" PRIu64 " requested_kib=%" PRIu64 " usable_kib=%" PRIu64 "\n",
        blocks->count, kib(blocks->requested), kib(blocks->usable));
    for (unsigned c = 0; c < TINY_CLASS_COUNT; c++) {
        if (by_class[c].slabs == 0) continue;
        say(fd,
            "layout class=%" PRIu32 " slabs=%" PRIu64 " slab_kib=%" PRIu64 " carved_kib=%" PRIu64
            " in_use_kib=%" PRIu64 "\n",
            tiny_class_size[c], by_class[c].slabs, kib(by_class[c].bytes), kib(by_class[c].carved),
            kib(by_class[c].in_use));
    }
}

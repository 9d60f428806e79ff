/* size replay: reads a trace of bench/sizes/recorder.c and answers, for the
 * requests of up to 1 MiB (the range that size classes serve), how much
 * memory their blocks take.
 *
 *   size_replay real TRACE     replays every call with this process's
 *                              allocator (run it under LD_PRELOAD) and sums
 *                              malloc_usable_size, as Redis's used_memory does
 *   size_replay model TRACE    the same sums for the candidate class
 *                              spacings, computed without allocating
 *   size_replay sizes TRACE    the requests themselves, by 16 bytes of size:
 *                              one line "granule n_peak bytes_peak n_all
 *                              bytes_all" per granule asked for (sizes
 *                              16 g - 15 .. 16 g; size 0 in granule 1), so
 *                              that any class table's waste can be summed
 *                              from it (bench/sizes/classes.py)
 *
 * Each prints one line of key=value per allocator or spacing:
 *   calls        allocation calls of up to 1 MiB (realloc counts as one)
 *   requested    bytes those calls asked for
 *   usable       bytes their blocks had (sum over all calls)
 *   peak_live    the most bytes asked for and not yet freed at one time
 *   live_usable  bytes the blocks live at that moment had
 *   large        calls above 1 MiB (left out of the sums)
 * model adds classes (how many classes the calls touched) and slab_floor: at the peak, for each
 * class, the whole slabs its live blocks need (slab geometry of src/tiny/tiny.c, class_units),
 * summed: what finer classes cost in partly used slabs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "table.h"
#include "trace.h"

#define CLASS_MAX (1u << 20) /* largest class: TINY_MAX_SIZE */
#define UNIT (32u * 1024)    /* HS_UNIT_SIZE */

/* ---- the candidate spacings ----------------------------------------------- */

/* Classes of 16-byte steps up to `linear_max`, then `per_doubling` classes
 * per doubling up to 1 MiB; named "linear_max/per_doubling". Rows from
 * `fill_from` up to 8 KiB instead take the largest multiples of 16 that
 * fill a 64 KiB slab with a whole number of blocks: 64 KiB / n for n
 * falling in equal steps from 64 KiB / base to 64 KiB / (2 base) (from 4 to
 * 8 KiB: 4368, 4672, ... 7280, 8192 for n = 15 .. 8). Rows from `fine_from`
 * up to 8 KiB have 16 classes instead of per_doubling. `header` adds the
 * classes for a power of two and a header: 528, 1040 and 2112 (the largest
 * multiples of 16 that fill 64 KiB with 124, 63 and 31 blocks). */
typedef struct model_s {
    const char *name;
    unsigned linear_max;
    unsigned per_doubling;
    unsigned fill_from; /* 0: no filled rows */
    unsigned fine_from; /* 0: no finer rows */
    bool header;        /* with 528, 1040 and 2112 */
    unsigned count;
    uint32_t size[256];
    uint64_t live_blocks[256]; /* now */
    uint64_t peak_blocks[256]; /* at the last recorded peak */
    bool touched[256];
    uint64_t requested, usable, calls, live, live_usable, peak_live, peak_live_usable;
} model_t;

static model_t models[] = {
    {.name = "128/4", .linear_max = 128, .per_doubling = 4}, /* hugeslab before the study */
    {.name = "128/8", .linear_max = 128, .per_doubling = 8},
    {.name = "512/8", .linear_max = 512, .per_doubling = 8}, /* hugeslab before the fill */
    {.name = "1K/4", .linear_max = 1024, .per_doubling = 4},
    {.name = "1K/8", .linear_max = 1024, .per_doubling = 8},
    {.name = "512/8+4K16", .linear_max = 512, .per_doubling = 8, .fine_from = 4096},
    {.name = "512/8+fill4K", .linear_max = 512, .per_doubling = 8, .fill_from = 4096},
    {.name = "512/8+fill1K", .linear_max = 512, .per_doubling = 8, .fill_from = 1024},
    {.name = "512/8+fill4K+hdr",
     .linear_max = 512,
     .per_doubling = 8,
     .fill_from = 4096,
     .header = true}, /* now */
};
#define MODEL_COUNT (sizeof models / sizeof models[0])

static void model_build(model_t *m)
{
    m->count = 0;
    for (unsigned s = 16; s <= m->linear_max; s += 16) m->size[m->count++] = s;
    for (unsigned base = m->linear_max; base < CLASS_MAX; base *= 2) {
        unsigned per = m->fine_from && base >= m->fine_from && base < 8192 ? 16 : m->per_doubling;
        bool fill = m->fill_from && base >= m->fill_from && base < 8192;
        if (m->header && base >= 512 && base <= 2048)
            m->size[m->count++] = base == 2048 ? 2112 : base + 16;
        for (unsigned k = 1; k <= per; k++) {
            unsigned most = 65536 / base, n = most - k * most / 16;
            m->size[m->count++] = fill ? 65536 / n / 16 * 16 : base + k * (base / per);
        }
    }
}

static unsigned model_class(const model_t *m, uint64_t size)
{
    unsigned lo = 0, hi = m->count - 1;
    if (size == 0) size = 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (m->size[mid] >= size)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Bytes of one slab of blocks of `size`: class_units() of src/tiny/tiny.c. */
static uint64_t slab_bytes(uint64_t size)
{
    uint64_t bytes = 64 * size < 64 * 1024 ? 64 * size : 64 * 1024;
    if (size <= 8 * 1024) return (bytes + UNIT - 1) / UNIT * UNIT;
    uint64_t least = (size + UNIT - 1) / UNIT, most = (8 * size + UNIT - 1) / UNIT;
    if (most > 512 * 1024 / UNIT) most = least > 512 * 1024 / UNIT ? least : 512 * 1024 / UNIT;
    uint64_t best = least, best_tail = least * UNIT % size;
    for (uint64_t n = least + 1; n <= most; n++)
        if (n * UNIT % size * best <= best_tail * n) {
            best = n;
            best_tail = n * UNIT % size;
        }
    return best * UNIT;
}

static uint64_t slab_floor(const model_t *m)
{
    uint64_t total = 0;
    for (unsigned c = 0; c < m->count; c++) {
        uint64_t bytes = slab_bytes(m->size[c]);
        uint64_t per_slab = bytes / m->size[c];
        total += (m->peak_blocks[c] + per_slab - 1) / per_slab * bytes;
    }
    return total;
}

/* ---- the replay ----------------------------------------------------------- */

typedef struct sums_s {
    uint64_t calls, large, requested, usable, live, live_usable, peak_live, peak_live_usable;
    uint64_t last_snapshot; /* peak_live when the models' block counts were copied */
} sums_t;

static bool real_mode;
static sums_t sums;

/* sizes mode: blocks and bytes asked for by granule (16 bytes of size),
 * live now, live at the last peak snapshot, and over all calls. */
#define GRANULES (CLASS_MAX / 16 + 1)
static bool sizes_mode;
static uint64_t gran_live_n[GRANULES], gran_live_b[GRANULES];
static uint64_t gran_peak_n[GRANULES], gran_peak_b[GRANULES];
static uint64_t gran_all_n[GRANULES], gran_all_b[GRANULES];

static unsigned granule(uint64_t size) { return size ? (unsigned)((size + 15) / 16) : 1; }

/* A live block goes: out of the sums, the models' counts and the table. */
static void forget(entry_t *e)
{
    sums.live -= e->size;
    sums.live_usable -= e->usable;
    if (sizes_mode) {
        gran_live_n[granule(e->size)]--;
        gran_live_b[granule(e->size)] -= e->size;
    }
    if (real_mode)
        free(e->block);
    else
        for (unsigned i = 0; i < MODEL_COUNT; i++) {
            model_t *m = &models[i];
            unsigned c = model_class(m, e->size);
            m->live_blocks[c]--;
            m->live_usable -= m->size[c];
        }
    remove_entry(e);
}

static void on_alloc(uint64_t key, uint64_t size, void *block)
{
    if (size > CLASS_MAX) {
        sums.large++;
        if (real_mode) free(block);
        return;
    }
    entry_t *stale = find(key); /* an address reused before its free was seen */
    if (stale) forget(stale);
    uint64_t usable = real_mode ? malloc_usable_size(block) : size;
    sums.calls++;
    sums.requested += size;
    sums.usable += usable;
    sums.live += size;
    sums.live_usable += usable;
    if (sizes_mode) {
        unsigned g = granule(size);
        gran_live_n[g]++;
        gran_live_b[g] += size;
        gran_all_n[g]++;
        gran_all_b[g] += size;
    }
    if (!real_mode)
        for (unsigned i = 0; i < MODEL_COUNT; i++) {
            model_t *m = &models[i];
            unsigned c = model_class(m, size);
            m->touched[c] = true;
            m->live_blocks[c]++;
            m->usable += m->size[c];
            m->live_usable += m->size[c];
        }
    if (sums.live > sums.peak_live) {
        sums.peak_live = sums.live;
        sums.peak_live_usable = sums.live_usable;
        /* Copy the per-class counts at the peak, every 64 KiB of growth. */
        bool snapshot = sums.peak_live >= sums.last_snapshot + 64 * 1024;
        if (snapshot) sums.last_snapshot = sums.peak_live;
        if (snapshot && sizes_mode) {
            memcpy(gran_peak_n, gran_live_n, sizeof gran_live_n);
            memcpy(gran_peak_b, gran_live_b, sizeof gran_live_b);
        }
        if (!real_mode)
            for (unsigned i = 0; i < MODEL_COUNT; i++) {
                model_t *m = &models[i];
                m->peak_live_usable = m->live_usable;
                if (snapshot) memcpy(m->peak_blocks, m->live_blocks, sizeof m->live_blocks);
            }
    }
    insert_entry((entry_t){.key = key, .block = block, .size = size, .usable = usable});
}

static void on_free(uint64_t key)
{
    entry_t *e = find(key);
    if (e) forget(e); /* else large, or allocated before the trace began */
}

static void replay(const sizes_record_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (r[i].op) {
        case SIZES_MALLOC:
        case SIZES_CALLOC:
            on_alloc(r[i].ptr, r[i].size, real_mode ? malloc(r[i].size ? r[i].size : 1) : NULL);
            break;
        case SIZES_ALIGNED: {
            void *b = NULL;
            if (real_mode && posix_memalign(&b, r[i].old < 8 ? 8 : r[i].old, r[i].size)) b = NULL;
            if (real_mode && b == NULL) {
                fprintf(stderr, "size_replay: aligned allocation of %" PRIu64 " failed\n",
                        r[i].size);
                exit(1);
            }
            on_alloc(r[i].ptr, r[i].size, b);
            break;
        }
        case SIZES_REALLOC: {
            /* The replay's realloc moves the block as its allocator would. */
            entry_t *e = find(r[i].old);
            void *b = NULL;
            if (real_mode) {
                if (e) {
                    b = realloc(e->block, r[i].size ? r[i].size : 1);
                    e->block = NULL; /* gone into b */
                } else {
                    b = malloc(r[i].size ? r[i].size : 1);
                }
            }
            if (e) on_free(r[i].old);
            on_alloc(r[i].ptr, r[i].size, b);
            break;
        }
        case SIZES_FREE:
            on_free(r[i].ptr);
            break;
        case SIZES_THREAD_EXIT:
            break;
        default:
            fprintf(stderr, "size_replay: bad record %zu (op %u)\n", i, r[i].op);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "real") != 0 && strcmp(argv[1], "model") != 0 &&
                      strcmp(argv[1], "sizes") != 0)) {
        fprintf(stderr, "usage: size_replay real|model|sizes TRACE\n");
        return 2;
    }
    real_mode = strcmp(argv[1], "real") == 0;
    sizes_mode = strcmp(argv[1], "sizes") == 0;
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    grow();
    for (unsigned i = 0; i < MODEL_COUNT; i++) model_build(&models[i]);
    /* In pieces: a trace may be larger than the memory left. */
    enum { CHUNK = 32768 };
    static sizes_record_t chunk[CHUNK];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0) {
            perror(argv[2]);
            return 1;
        }
        if (got == 0) break;
        /* Records never straddle two reads of a regular file, but be sure. */
        size_t whole = (size_t)got / sizeof(sizes_record_t);
        replay(chunk, whole);
        size_t rest = (size_t)got - whole * sizeof(sizes_record_t);
        if (rest) lseek(fd, -(off_t)rest, SEEK_CUR);
    }
    close(fd);
    if (real_mode) {
        printf("calls=%" PRIu64 " requested=%" PRIu64 " usable=%" PRIu64 " peak_live=%" PRIu64
               " live_usable=%" PRIu64 " large=%" PRIu64 "\n",
               sums.calls, sums.requested, sums.usable, sums.peak_live, sums.peak_live_usable,
               sums.large);
        return 0;
    }
    if (sizes_mode) {
        printf("peak_live=%" PRIu64 " large=%" PRIu64 "\n", sums.peak_live, sums.large);
        for (unsigned g = 1; g < GRANULES; g++)
            if (gran_all_n[g])
                printf("%u %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", g, gran_peak_n[g],
                       gran_peak_b[g], gran_all_n[g], gran_all_b[g]);
        return 0;
    }
    for (unsigned i = 0; i < MODEL_COUNT; i++) {
        const model_t *m = &models[i];
        unsigned touched = 0;
        for (unsigned c = 0; c < m->count; c++) touched += m->touched[c];
        printf("model=%s class_count=%u calls=%" PRIu64 " requested=%" PRIu64 " usable=%" PRIu64
               " peak_live=%" PRIu64 " live_usable=%" PRIu64 " large=%" PRIu64
               " classes=%u slab_floor=%" PRIu64 "\n",
               m->name, m->count, sums.calls, sums.requested, m->usable, sums.peak_live,
               m->peak_live_usable, sums.large, touched, slab_floor(m));
    }
    return 0;
}

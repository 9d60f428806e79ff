/* SuperSlabs and runs: the registry, the per-node pools, the run cache. */
#include <errno.h>
#include <string.h>

#include "numa/numa.h"
#include "segment/segment.h"

uint8_t seg_chunk_map[SEG_MAP_ENTRIES];

/* One pool per NUMA node. Invariant: partial holds exactly the SuperSlabs of
 * this node with 0 < free units < all and on_partial set; empty holds the
 * SuperSlabs with every unit free. */
typedef struct node_pool_s {
    hs_lock_t lock;
    seg_superslab_t *partial; /* SuperSlabs with some free units */
    seg_superslab_t *empty;   /* cached SuperSlabs, all units free */
    size_t empty_count;       /* length of empty */
} node_pool_t;

static node_pool_t pools[HS_MAX_NODES];

/* Freed runs kept for reuse, most recent first. */
static hs_lock_t run_cache_lock = HS_LOCK_INIT;
static seg_superslab_t *run_cache;
static size_t run_cache_bytes;

static void (*client_init)(seg_superslab_t *ss);

/* Figures for hugeslab_stats (relaxed; read without locks). */
static _Atomic uint64_t stat_superslabs_by_backing[THP_BACKING_COUNT];
static _Atomic uint64_t stat_superslabs_cached;
static _Atomic uint64_t stat_bytes_mapped;
static _Atomic uint64_t stat_run_bytes_live;

#define ALL_UNITS_FREE (~(uint32_t)0)
_Static_assert(HS_UNITS_PER_SUPERSLAB == 32, "free_units is a 32-bit map");

void seg_init(void)
{
    for (unsigned n = 0; n < HS_MAX_NODES; n++) pthread_mutex_init(&pools[n].lock, NULL);
}

void seg_set_client_init(void (*init)(seg_superslab_t *ss)) { client_init = init; }

static size_t cache_limit(void) { return (size_t)hs_option(HS_OPT_CACHE_MB) * HS_MiB; }

static bool want_thp(void) { return hs_option(HS_OPT_BACKING) != HS_BACKING_BASE; }

/* ---- registry ------------------------------------------------------------ */

static void registry_set(void *base, size_t size, seg_chunk_kind_t head_kind)
{
    uintptr_t first = (uintptr_t)base >> HS_SUPERSLAB_SHIFT;
    uintptr_t count = size >> HS_SUPERSLAB_SHIFT;
    seg_chunk_map[first] = (uint8_t)head_kind;
    for (uintptr_t c = 1; c < count; c++) seg_chunk_map[first + c] = SEG_CHUNK_TAIL;
}

static void registry_clear(void *base, size_t size)
{
    uintptr_t first = (uintptr_t)base >> HS_SUPERSLAB_SHIFT;
    memset(&seg_chunk_map[first], 0, size >> HS_SUPERSLAB_SHIFT);
}

/* ---- mapping and unmapping ---------------------------------------------- */

static seg_superslab_t *map_superslabs(size_t size, size_t align, seg_chunk_kind_t kind,
                                       unsigned node)
{
    thp_backing_t got;
    seg_superslab_t *ss = thp_map_aligned(size, align, want_thp(), &got);
    if (!ss) return NULL;
    ss->kind = (uint8_t)kind;
    ss->backing = (uint8_t)got;
    ss->node = (uint16_t)node;
    ss->run_size = size;
    hs_count_add(&stat_superslabs_by_backing[got], (int64_t)(size >> HS_SUPERSLAB_SHIFT));
    hs_count_add(&stat_bytes_mapped, (int64_t)size);
    registry_set(ss, size, kind);
    return ss;
}

static void unmap_superslabs(seg_superslab_t *ss, size_t size)
{
    hs_count_add(&stat_superslabs_by_backing[ss->backing], -(int64_t)(size >> HS_SUPERSLAB_SHIFT));
    hs_count_add(&stat_bytes_mapped, -(int64_t)size);
    registry_clear(ss, size);
    thp_unmap(ss, size);
}

/* ---- SuperSlabs of slabs ------------------------------------------------- */

static void list_push(seg_superslab_t **head, seg_superslab_t *ss)
{
    ss->prev = NULL;
    ss->next = *head;
    if (*head) (*head)->prev = ss;
    *head = ss;
}

static void list_remove(seg_superslab_t **head, seg_superslab_t *ss)
{
    if (ss->prev) ss->prev->next = ss->next;
    else *head = ss->next;
    if (ss->next) ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
}

/* Bit u of the result is set when units u..u+n-1 are all free and offer
 * min_bytes. */
static uint32_t fitting_starts(uint32_t free_units, unsigned n, size_t min_bytes)
{
    uint32_t starts = free_units;
    for (unsigned i = 1; i < n && starts; i++) starts &= free_units >> i;
    if (n < 32) starts &= (uint32_t)(((uint64_t)1 << (32 - n + 1)) - 1);
    if ((starts & 1) && n * HS_UNIT_SIZE - SEG_FIRST_SLAB_BYTE < min_bytes) starts &= ~1u;
    return starts;
}

static seg_superslab_t *take_superslab(node_pool_t *pool, unsigned node)
{
    seg_superslab_t *ss = pool->empty;
    if (ss) {
        list_remove(&pool->empty, ss);
        pool->empty_count--;
        hs_count_add(&stat_superslabs_cached, -1);
    } else {
        ss = map_superslabs(HS_SUPERSLAB_SIZE, HS_SUPERSLAB_SIZE, SEG_CHUNK_SLABS, node);
        if (!ss) return NULL;
    }
    ss->free_units = ALL_UNITS_FREE;
    ss->on_partial = 0;
    if (client_init) client_init(ss);
    return ss;
}

seg_superslab_t *seg_units_alloc(unsigned node, unsigned n_units, size_t min_bytes,
                                 unsigned *first_unit)
{
    HS_ASSERT(n_units >= 1 && n_units <= HS_UNITS_PER_SUPERSLAB);
    HS_ASSERT(min_bytes <= n_units * HS_UNIT_SIZE);
    node_pool_t *pool = &pools[node];
    hs_lock(&pool->lock);
    seg_superslab_t *ss;
    uint32_t starts = 0;
    for (ss = pool->partial; ss; ss = ss->next) {
        starts = fitting_starts(ss->free_units, n_units, min_bytes);
        if (starts) break;
    }
    if (!ss) {
        ss = take_superslab(pool, node);
        if (!ss) {
            hs_unlock(&pool->lock);
            errno = ENOMEM;
            return NULL;
        }
        starts = fitting_starts(ss->free_units, n_units, min_bytes);
        list_push(&pool->partial, ss);
        ss->on_partial = 1;
    }
    unsigned first = (unsigned)__builtin_ctz(starts);
    uint32_t bits = (n_units == 32 ? ALL_UNITS_FREE : ((1u << n_units) - 1)) << first;
    ss->free_units &= ~bits;
    if (ss->free_units == 0) {
        list_remove(&pool->partial, ss);
        ss->on_partial = 0;
    }
    hs_unlock(&pool->lock);
    *first_unit = first;
    return ss;
}

void seg_units_free(seg_superslab_t *ss, unsigned first_unit, unsigned n_units)
{
    node_pool_t *pool = &pools[ss->node];
    uint32_t bits = (n_units == 32 ? ALL_UNITS_FREE : ((1u << n_units) - 1)) << first_unit;
    seg_superslab_t *release = NULL;
    hs_lock(&pool->lock);
    HS_ASSERT((ss->free_units & bits) == 0);
    ss->free_units |= bits;
    if (ss->free_units == ALL_UNITS_FREE) {
        if (ss->on_partial) list_remove(&pool->partial, ss);
        ss->on_partial = 0;
        if ((pool->empty_count + 1) * HS_SUPERSLAB_SIZE <= cache_limit()) {
            list_push(&pool->empty, ss);
            pool->empty_count++;
            hs_count_add(&stat_superslabs_cached, 1);
        } else {
            release = ss;
        }
    } else if (!ss->on_partial) {
        list_push(&pool->partial, ss);
        ss->on_partial = 1;
    }
    hs_unlock(&pool->lock);
    if (release) unmap_superslabs(release, HS_SUPERSLAB_SIZE);
}

/* ---- runs ----------------------------------------------------------------- */

static size_t run_block_offset(size_t align)
{
    return align <= SEG_HEADER_SIZE ? SEG_HEADER_SIZE : align;
}

static seg_superslab_t *run_cache_take(size_t size)
{
    seg_superslab_t *best = NULL;
    hs_lock(&run_cache_lock);
    for (seg_superslab_t *r = run_cache; r; r = r->next) {
        /* Accept up to a quarter more than needed: less waste than a fresh
         * mapping costs in faults. */
        if (r->run_size >= size && r->run_size - size <= size / 4 &&
            (!best || r->run_size < best->run_size))
            best = r;
    }
    if (best) {
        list_remove(&run_cache, best);
        run_cache_bytes -= best->run_size;
    }
    hs_unlock(&run_cache_lock);
    return best;
}

void *seg_run_alloc(size_t size, size_t align, unsigned node, bool *fresh)
{
    size_t offset = run_block_offset(align);
    if (size > SIZE_MAX / 2 - offset - HS_SUPERSLAB_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t total = hs_align_up(offset + size, HS_SUPERSLAB_SIZE);
    size_t map_align = align > HS_SUPERSLAB_SIZE ? align : HS_SUPERSLAB_SIZE;
    seg_superslab_t *run = NULL;
    *fresh = false;
    if (map_align == HS_SUPERSLAB_SIZE && total < (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB)
        run = run_cache_take(total);
    if (!run) {
        run = map_superslabs(total, map_align, SEG_CHUNK_RUN, node);
        if (!run) return NULL;
        *fresh = true;
    }
    run->run_block = (char *)run + offset;
    hs_count_add(&stat_run_bytes_live, (int64_t)run->run_size);
    if (run->run_size >= (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB)
        hs_count_add(&hs_counters.huge_blocks, 1);
    return run->run_block;
}

seg_superslab_t *seg_run_of(const void *p)
{
    uintptr_t chunk = (uintptr_t)p >> HS_SUPERSLAB_SHIFT;
    if (chunk >= SEG_MAP_ENTRIES) return NULL;
    while (seg_chunk_map[chunk] == SEG_CHUNK_TAIL) chunk--;
    if (seg_chunk_map[chunk] != SEG_CHUNK_RUN) return NULL;
    return (seg_superslab_t *)(chunk << HS_SUPERSLAB_SHIFT);
}

void seg_run_free(seg_superslab_t *run)
{
    size_t size = run->run_size;
    hs_count_add(&stat_run_bytes_live, -(int64_t)size);
    if (size >= (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB) {
        hs_count_add(&hs_counters.huge_blocks, -1);
        unmap_superslabs(run, size);
        return;
    }
    run->run_block = NULL;
    hs_lock(&run_cache_lock);
    if (run_cache_bytes + size <= cache_limit()) {
        list_push(&run_cache, run);
        run_cache_bytes += size;
        run = NULL;
    }
    hs_unlock(&run_cache_lock);
    if (run) unmap_superslabs(run, size);
}

void *seg_run_resize(seg_superslab_t *run, size_t new_size)
{
    size_t offset = (size_t)((char *)run->run_block - (char *)run);
    if (new_size > SIZE_MAX / 2 - offset - HS_SUPERSLAB_SIZE) return NULL;
    size_t total = hs_align_up(offset + new_size, HS_SUPERSLAB_SIZE);
    size_t old_total = run->run_size;
    if (total == old_total) return run->run_block;
    bool was_huge = old_total >= (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB;
    thp_backing_t backing = (thp_backing_t)run->backing;
    /* The registry must never describe a range the kernel has moved: clear
     * it first, and describe whatever the result is afterwards. */
    registry_clear(run, old_total);
    seg_superslab_t *moved = thp_remap(run, old_total, total, want_thp());
    if (!moved) {
        registry_set(run, old_total, SEG_CHUNK_RUN);
        return NULL;
    }
    hs_count_add(&stat_superslabs_by_backing[backing],
                 ((int64_t)total - (int64_t)old_total) >> HS_SUPERSLAB_SHIFT);
    hs_count_add(&stat_bytes_mapped, (int64_t)total - (int64_t)old_total);
    hs_count_add(&stat_run_bytes_live, (int64_t)total - (int64_t)old_total);
    moved->run_size = total;
    moved->run_block = (char *)moved + offset;
    registry_set(moved, total, SEG_CHUNK_RUN);
    bool is_huge = total >= (size_t)hs_option(HS_OPT_HUGE_MB) * HS_MiB;
    if (is_huge != was_huge) hs_count_add(&hs_counters.huge_blocks, is_huge ? 1 : -1);
    return moved->run_block;
}

/* ---- trimming, figures, fork ---------------------------------------------- */

int seg_trim(void)
{
    int released = 0;
    for (unsigned n = 0; n < numa_node_count(); n++) {
        node_pool_t *pool = &pools[n];
        hs_lock(&pool->lock);
        seg_superslab_t *list = pool->empty;
        pool->empty = NULL;
        hs_count_add(&stat_superslabs_cached, -(int64_t)pool->empty_count);
        pool->empty_count = 0;
        hs_unlock(&pool->lock);
        while (list) {
            seg_superslab_t *next = list->next;
            unmap_superslabs(list, HS_SUPERSLAB_SIZE);
            list = next;
            released = 1;
        }
    }
    hs_lock(&run_cache_lock);
    seg_superslab_t *runs = run_cache;
    run_cache = NULL;
    run_cache_bytes = 0;
    hs_unlock(&run_cache_lock);
    while (runs) {
        seg_superslab_t *next = runs->next;
        unmap_superslabs(runs, runs->run_size);
        runs = next;
        released = 1;
    }
    return released;
}

void seg_stats(hugeslab_stats_t *out)
{
    uint64_t thp = atomic_load_explicit(&stat_superslabs_by_backing[THP_BACKING_THP],
                                        memory_order_relaxed);
    uint64_t base = atomic_load_explicit(&stat_superslabs_by_backing[THP_BACKING_BASE],
                                         memory_order_relaxed);
    out->superslabs_thp = thp;
    out->superslabs_base = base;
    out->superslabs_mapped = thp + base;
    out->superslabs_cached = atomic_load_explicit(&stat_superslabs_cached, memory_order_relaxed);
    hs_lock(&run_cache_lock);
    out->superslabs_cached += run_cache_bytes >> HS_SUPERSLAB_SHIFT;
    hs_unlock(&run_cache_lock);
    out->bytes_mapped = atomic_load_explicit(&stat_bytes_mapped, memory_order_relaxed);
    out->bytes_in_runs = atomic_load_explicit(&stat_run_bytes_live, memory_order_relaxed);
}

void seg_fork_prepare(void)
{
    for (unsigned n = 0; n < HS_MAX_NODES; n++) hs_lock(&pools[n].lock);
    hs_lock(&run_cache_lock);
}

void seg_fork_parent(void)
{
    hs_unlock(&run_cache_lock);
    for (unsigned n = HS_MAX_NODES; n-- > 0;) hs_unlock(&pools[n].lock);
}

void seg_fork_child(void)
{
    pthread_mutex_init(&run_cache_lock, NULL);
    for (unsigned n = 0; n < HS_MAX_NODES; n++) pthread_mutex_init(&pools[n].lock, NULL);
}

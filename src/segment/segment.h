/* segment: owns every address range hugeslab maps for blocks.
 * - A SuperSlab is 2 MiB, 2 MiB-aligned; its header sits at its base. A
 *   "slabs" SuperSlab is cut into 64 units of 32 KiB that tiny/ turns into
 *   slabs, of whole units, or of pages for a slab of one large block
 *   (seg_pages_alloc: the units such slabs share are in the page map after
 *   the header); a "run" is one block spanning one or more whole
 *   SuperSlabs.
 * - The registry (seg_chunk_map) says, for every 2 MiB chunk of the address
 *   space, whether hugeslab owns it and what it is. seg_chunk_kind(p) answers
 *   from the registry alone; it never reads memory at p.
 * - SuperSlabs are handed out from per-NUMA-node pools; an empty one goes
 *   back to its node's pool, and runs to the run cache, for reuse.
 * - Only the purge thread (purge.c) hands idle memory back to the kernel,
 *   after HUGESLAB_PURGE_DELAY_MS, in whole SuperSlabs, or in free units of
 *   a SuperSlab in use where that splits no huge page (or where at most a
 *   quarter of it is in slabs, after both delays with no slab cut on its
 *   node meanwhile); malloc and free
 *   never purge. malloc_trim() does it at once, on the caller's thread,
 *   and a huge block (HUGESLAB_HUGE_MB or more) is unmapped by its free.
 * - A run's chunks are huge pages but the one where its block ends, when
 *   the block fills at most half of it: base pages from there to the run's
 *   end. Placing a block in a run (fresh, cached, resized) sets those
 *   hints, and gives back what a reused run holds past the block's end in
 *   that range: no byte of a live block.
 * - It is tiny/'s one way down: memory (SuperSlabs, runs, metadata pages)
 *   and the calling thread's NUMA node come from here; thp/ (how pages are
 *   backed), numa/ (which node) and os/ (the system calls) sit below it.
 * - Locks here are taken after tiny's, never before; nothing is called with
 *   one held but the thp/, numa/ and os/ layers and the client-init callback
 *   (and the hugetlb list's lock, inside a node's).
 * Never: call into tiny/ or api/ (tiny registers callbacks instead); fill
 *   the public hugeslab_stats_t (api/ does, from seg_stats_t). */
#ifndef HS_SEGMENT_H
#define HS_SEGMENT_H

#include "common/common.h"
#include "numa/numa.h"

/* What the registry says of a 2 MiB chunk. */
typedef enum seg_chunk_kind_e {
    SEG_CHUNK_NONE = 0,  /* not hugeslab's */
    SEG_CHUNK_SLABS = 1, /* a SuperSlab of slabs; header here */
    SEG_CHUNK_RUN = 2,   /* the first chunk of a run; header here */
    SEG_CHUNK_TAIL = 3,  /* a later chunk of a run; header in an earlier chunk */
} seg_chunk_kind_t;

#define SEG_MAP_ENTRIES ((size_t)1 << (HS_ADDRESS_BITS - HS_SUPERSLAB_SHIFT))
/* One byte per 2 MiB of address space: 64 MiB of zeroes, read-only in the
 * shared library until a range is named there (registry.c), of which only
 * the pages covering hugeslab's ranges are ever written. */
/* Atomic bytes, read and written relaxed. The purge thread clears the
 * entries of a range it unmaps; mmap may hand the range to another thread
 * at once, which sets them again and gives out blocks in it, and their
 * frees read them. munmap and mmap order all that in the kernel, which the
 * C memory model does not see: as plain bytes these would be data races
 * (ThreadSanitizer reports them). It costs free() one instruction: a
 * load and a compare instead of a compare with memory. */
extern _Atomic uint8_t seg_chunk_map[SEG_MAP_ENTRIES];
/* At seg_chunk_map where the registry is a segment of its own (the shared
 * library), elsewhere in a static link (registry.c). */
extern const char seg_registry_segment_mark[1];

/* The registry entry of chunk index `chunk` (< SEG_MAP_ENTRIES). */
HS_INLINE seg_chunk_kind_t seg_kind_at(uintptr_t chunk)
{
    return (seg_chunk_kind_t)atomic_load_explicit(&seg_chunk_map[chunk], memory_order_relaxed);
}

/* The same with acquire: once it names the chunk, the header that
 * seg_chunk_header wrote before naming it is visible (still_named in
 * small_heap.c). */
HS_INLINE seg_chunk_kind_t seg_kind_named_at(uintptr_t chunk)
{
    return (seg_chunk_kind_t)atomic_load_explicit(&seg_chunk_map[chunk], memory_order_acquire);
}

HS_INLINE seg_chunk_kind_t seg_chunk_kind(const void *p)
{
    uintptr_t chunk = (uintptr_t)p >> HS_SUPERSLAB_SHIFT;
    if (HS_UNLIKELY(chunk >= SEG_MAP_ENTRIES)) return SEG_CHUNK_NONE;
    return seg_kind_at(chunk);
}

typedef struct seg_superslab_s seg_superslab_t;

/* The header at the base of every SuperSlab and run.
 * Invariants (checked by seg_superslab_validate in debug builds):
 * - kind matches the registry entry of the header's chunk;
 * - slabs: a unit is in free_units iff no slab covers it (but for units
 *   whose pages the purge thread is giving back, in neither meanwhile); the
 *   SuperSlab is on one of its node's partial lists iff free_units != 0 and
 *   it is not empty, the one of its longest run of free units;
 * - run: run_block lies in [header + SEG_HEADER_SIZE, header + run_size);
 *   base_tail is 0 or names one of its chunks. */
struct seg_superslab_s {
    uint8_t kind;    /* SEG_CHUNK_SLABS or SEG_CHUNK_RUN */
    uint8_t backing; /* thp_backing_t the range really got (thp/thp.h) */
    uint16_t node;   /* node whose pool the memory belongs to */
    union {
        uint32_t units_changed_ms; /* slabs: when free_units last changed (the clock's
                                      low 32 bits; node lock) */
        uint32_t frontier_split;   /* run on frontier.c's list: 1 + the index of the
                                      chunk whose huge page it split; 0: none */
    };
    size_t run_size; /* bytes mapped from the header on (2 MiB for slabs) */
    union {
        void *run_block;      /* run: the block handed out; NULL while cached */
        uint64_t fresh_units; /* slabs: bit u set = unit u has not been in a slab
                                 since the SuperSlab was mapped, so every byte of
                                 it past the client area is zero (node lock) */
    };
    seg_superslab_t *next; /* pool lists (node lock) or run cache (cache lock) */
    seg_superslab_t *prev;
    union {
        uint64_t idle_since_ms;       /* idle SuperSlabs and cached runs: when they
                                         became empty */
        uintptr_t owner;              /* slabs in use: the client's tag of the caller
                                         whose slabs it holds (seg_units_alloc), or 0
                                         for any caller's (node lock) */
        uint64_t frontier_zero_pages; /* run on frontier.c's list with a split chunk:
                                         its pages on the zero page at the last look;
                                         UINT64_MAX before the first */
    };
    union {
        uint8_t on_partial;      /* slabs: 1 + the partial list it is on, 0: none */
        uint8_t frontier_listed; /* run: 1 while on frontier.c's list of live THP runs
                                    (run cache lock) */
    };
    uint8_t units_purged; /* slabs: the free units' pages went back since
                             free_units last changed (node lock) */
    uint16_t memory_node; /* node its pages are bound to (differs from `node`
                             under numactl --membind/--interleave) */
    union {
        uint32_t base_tail;           /* run: 1 + the index of the first chunk hinted to
                                         base pages (they go to the run's end); 0: none */
        _Atomic uint32_t hinted_late; /* slabs: 1 = the small heap deferred it and,
                                         when it grew, hinted it huge or kept it on
                                         base pages, and seg_small_heap_give_back
                                         has not looked at it since (small_heap.c) */
    };
    union {
        uint64_t free_units;    /* slabs: bit u set = unit u not in a slab (node lock) */
        uint64_t frontier_seen; /* run on frontier.c's list: what its last look found
                                   (the purge thread's, while it looks) */
    };
};
#define SEG_HEADER_SIZE 64
/* Pages of the units that slabs of pages (seg_pages_alloc) left partly
 * used, in a SuperSlab of slabs: the line after the header.
 * Invariants (node lock):
 * - free[u] is 0 for a unit in free_units, for one in a slab of units, and
 *   for one that slabs of pages fill whole; else (partly used) its bit i
 *   is set when page i of the unit is free, and it is not 0xff (a unit
 *   whose pages all come back goes back to free_units);
 * - free[0] is 0: slabs of pages start past unit 0. */
typedef struct seg_page_map_s {
    uint8_t free[HS_UNITS_PER_SUPERSLAB];
} seg_page_map_t;
#define SEG_PAGE_MAP_SIZE 64
/* Bytes after the header and the page map that belong to the client
 * (tiny/'s slab table: a pointer and 256 bytes of metadata per unit). */
#define SEG_CLIENT_AREA_SIZE (HS_UNITS_PER_SUPERSLAB * (8 + 256))
/* First byte a slab may use: unit 0 starts after the header, the page map
 * and the client area. */
#define SEG_FIRST_SLAB_BYTE (SEG_HEADER_SIZE + SEG_PAGE_MAP_SIZE + SEG_CLIENT_AREA_SIZE)
/* The page grain of slabs of pages. */
#define SEG_PAGE_SIZE ((size_t)4096)
#define SEG_PAGES_PER_UNIT (HS_UNIT_SIZE / SEG_PAGE_SIZE)

_Static_assert(sizeof(seg_superslab_t) == SEG_HEADER_SIZE, "header size");

HS_INLINE seg_superslab_t *seg_superslab_of(const void *p)
{
    return (seg_superslab_t *)((uintptr_t)p & ~(uintptr_t)HS_SUPERSLAB_MASK);
}
_Static_assert(sizeof(seg_page_map_t) == SEG_PAGE_MAP_SIZE, "page map size");
_Static_assert(SEG_PAGES_PER_UNIT == 8, "a unit's pages in one byte of the page map");

HS_INLINE seg_page_map_t *seg_page_map(seg_superslab_t *ss)
{
    return (seg_page_map_t *)((char *)ss + SEG_HEADER_SIZE);
}
HS_INLINE void *seg_client_area(seg_superslab_t *ss)
{
    return (char *)ss + SEG_HEADER_SIZE + SEG_PAGE_MAP_SIZE;
}

/* Start-up of everything below tiny/: the options and the process key
 * (common/), thp/, numa/, then the pools. Safe to call any number of times
 * from any thread; the first call does the work, the others wait for it.
 * Nothing in it calls malloc: it runs inside the process's first one. */
void seg_init(void);

/* The calling thread's NUMA node, for the pool to take memory from: a
 * per-thread cache that asks the kernel every NUMA_REFRESH_CALLS calls
 * (numa_current_node). seg_thread_node_refresh() asks it now. */
HS_INLINE unsigned seg_thread_node(void) { return numa_current_node(); }
HS_INLINE unsigned seg_thread_node_refresh(void) { return numa_current_node_refresh(); }

/* Plain zeroed pages for a module's own metadata (tiny/'s heaps), page
 * granular and never given back. NULL on failure. */
void *seg_map_metadata(size_t size);
/* Lets another thread run: for a wait on another thread's short critical
 * section (sched_yield). */
void seg_yield(void);

/* Check the invariants written above seg_superslab_s and above the pools,
 * and abort naming the one that is broken ("hugeslab: invariant ...").
 * seg_superslab_validate needs, for a SuperSlab of slabs, its node's lock
 * held or the SuperSlab in no list; seg_pool_validate takes node's lock and
 * checks its partial, idle and purged lists and each SuperSlab on them.
 * Debug builds call them on every SuperSlab handed out or taken back and on
 * each pool the purge thread or malloc_trim visits; tests call them in any
 * build. */
void seg_superslab_validate(const seg_superslab_t *ss);
void seg_pool_validate(unsigned node);

/* For tests: the clock that stamps idle SuperSlabs and runs and that the
 * purge thread compares with HUGESLAB_PURGE_DELAY_MS (default os_now_ms). */
void seg_set_clock(uint64_t (*now_ms)(void));
/* That clock (os_now_ms unless a test set another), and its time in
 * milliseconds: idle times and purge deadlines here, the owner tags' wait
 * in tiny/ (slab_owner). */
extern uint64_t (*seg_clock)(void);
HS_INLINE uint64_t seg_now_ms(void) { return seg_clock(); }
/* Milliseconds from `since` to `now`; 0 where `since` is the later. A
 * purge pass reads the clock before it takes the locks under which other
 * threads stamp what they make idle, so a stamp may be newer than the
 * pass's clock: subtracted as it is, the difference wrapped to about 2^64
 * and memory made idle a moment before was taken at once (segment_test: a
 * pass 1 ms behind an idle SuperSlab's stamp took it). */
HS_INLINE uint64_t seg_ms_since(uint64_t now, uint64_t since)
{
    return now > since ? now - since : 0;
}
/* The same for stamps kept as the clock's low 32 bits: a difference in the
 * upper half is a stamp newer than `now`. */
HS_INLINE uint64_t seg_ms_since32(uint32_t now, uint32_t since)
{
    uint32_t d = now - since;
    return d > UINT32_MAX / 2 ? 0 : d;
}

/* Called (with no lock held) for each SuperSlab of slabs before its first
 * unit is handed out, fresh or reused, to reset the client area. */
void seg_set_client_init(void (*init)(seg_superslab_t *ss));
/* Called (with no segment lock held, on the thread of a seg_units_alloc)
 * when no SuperSlab in use has room and none is idle, before a SuperSlab
 * is mapped or revived: the client gives back, through seg_units_free, what
 * that thread holds but no longer uses, and returns whether it gave any. */
void seg_set_client_reclaim(bool (*reclaim)(void));
/* Called (with the node's lock held: it must take no lock and make no
 * system call) for the owner tag of a SuperSlab in use: true when that
 * caller is gone, so another owner may claim the SuperSlab. */
void seg_set_client_owner_gone(bool (*gone)(uintptr_t owner));
/* Called (with no segment lock held, on the thread of a seg_units_alloc)
 * when a THP SuperSlab of slabs is mapped for it and the small heap does
 * not defer it: true when that thread's slabs are sparse, and the new
 * SuperSlab then starts on base pages (small_heap.c, "Sparse heaps"). */
void seg_set_client_sparse(bool (*sparse)(void));

/* CPUs the process may run on (os_cpus_allowed, asked once), at least 1. */
unsigned seg_cpus_allowed(void);

/* Who asks seg_units_alloc for units. */
typedef struct seg_owner_s {
    uintptr_t tag;               /* 0, or the caller's (tiny/: its heap) */
    const seg_superslab_t *home; /* tagged: the SuperSlab of its own to cut
                                    from first while it has room (compared
                                    only: it may be gone); NULL for none */
    bool owned;                  /* set by seg_units_alloc: tagged, and the
                                    units came from a SuperSlab it owns */
} seg_owner_t;

/* Finds *n_units contiguous free units in a SuperSlab of `node` offering at
 * least min_bytes (unit 0 is shorter: it starts at SEG_FIRST_SLAB_BYTE).
 * An owner tagged 0 takes them in any SuperSlab in use. Any other tag: the
 * units come from its home, else from a SuperSlab that it owns, or that no
 * one owns or whose owner is gone (seg_set_client_owner_gone), which it
 * then owns; else, once it has a home, from another owner's; else from a
 * new one, which it owns.
 * Units freed by one thread and cut again by another were written last on
 * the first one's core, and a heap's slabs spread over SuperSlabs shared
 * with other heaps keep its empty ones from being kept (tiny.c).
 * When no SuperSlab in use has that many in a row but one has min_units
 * (which offer min_bytes too), takes those and lowers *n_units: a smaller
 * slab in a SuperSlab already resident, not a new one for the larger.
 * The units are the first of the free run chosen, or its last with at_end
 * (for a slab likely to go back soon: its units then rejoin the run's rest
 * instead of leaving a hole between the slabs cut after it).
 * Sets *first_unit, and *fresh to whether no byte of the
 * units was written since they were mapped: all zero, for a calloc to leave
 * as it is. NULL + ENOMEM when no memory can be had. */
seg_superslab_t *seg_units_alloc(unsigned node, seg_owner_t *owner, unsigned *n_units,
                                 unsigned min_units, size_t min_bytes, bool at_end,
                                 unsigned *first_unit, bool *fresh);
/* Takes the n_units units from first_unit on for a slab that ends just
 * before them and grows in place, if all are free. False (nothing taken)
 * when one is not. */
bool seg_units_extend(seg_superslab_t *ss, unsigned first_unit, unsigned n_units);

/* `pages` pages (SEG_PAGE_SIZE; two units' or more, at most 62 units')
 * for a slab not made of whole units, in units 1-63 of a SuperSlab of
 * `node`: the shortest free run of pages that holds them among those of
 * the first SuperSlabs of the partial lists that may hold one (those of
 * shorter runs first), where a run is the free pages at
 * the end of a unit in which such a slab ends, whole free units, and the
 * free pages at the start of a unit in which one starts; else whole units
 * from seg_units_alloc (a new SuperSlab if need be). The slab starts at
 * the run's first page: returns its SuperSlab and sets *first_page (the
 * page's index in it) and *fresh (every byte of the pages is zero: whole
 * units never in a slab); NULL with errno ENOMEM when memory is out. At
 * most one such slab starts in a unit (a run of more than a unit's pages
 * that starts inside one goes to its end), so the client keeps one
 * descriptor per unit. */
seg_superslab_t *seg_pages_alloc(unsigned node, unsigned pages, unsigned *first_page, bool *fresh);
/* Takes the pages [first_page, first_page + pages) of ss, for a slab of
 * pages that ends at first_page, when they are all free (and in ss):
 * true, else false with nothing taken. */
bool seg_pages_extend(seg_superslab_t *ss, unsigned first_page, unsigned pages);
/* Gives back the pages [first_page, first_page + pages) of ss that
 * seg_pages_alloc handed out; units left with no page in use go back as
 * seg_units_free's do. */
void seg_pages_free(seg_superslab_t *ss, unsigned first_page, unsigned pages);
/* Whether the heap is still small: its slabs all lie in the process's first
 * SuperSlabs of slabs (one, or two while the first is sparse), which stay
 * on base pages until the heap grows past them (then they become huge
 * pages, and every later one is from its first touch, but an overflow:
 * see seg_units_returning). tiny/ cuts slabs of
 * few units meanwhile, so that a program with a few hundred KiB of blocks
 * in many size classes needs few of them. A relaxed read: a heuristic for
 * slab sizes. */
bool seg_small_heap(void);
/* Set while SuperSlabs of slabs are kept on base pages for a small heap or
 * an overflow. */
extern _Atomic bool seg_small_heap_deferred;
/* Units of slabs that other threads are emptying while their owner does not
 * look (tiny/ adds a slab's units when the first remote free into it waits
 * on its owner's delayed list, and takes them off when that notice is
 * taken): they come back to their SuperSlabs once their last block is
 * freed. A SuperSlab mapped while SEG_RETURNING_UNITS_MIN of them are on
 * the way is an overflow that those units will soon absorb, and starts on
 * base pages (seg_small_heap_note in small_heap.c). */
extern _Atomic long seg_units_returning;
/* tiny/ carved blocks [from, from + bytes) of a slab, about to be handed
 * out, while seg_small_heap_deferred is set: the pages they span count
 * towards the small heap's budget of faults on base pages, and the carve
 * that reaches it makes the heap grown. Makes system calls (mincore,
 * madvise): call it holding no lock. */
void seg_small_heap_carved(const void *from, size_t bytes);
/* tiny/ made units [first_unit, first_unit + n_units) of ss a slab of one
 * large block, which an array grown by realloc passes through on its way
 * to a run, leaving them free: while ss is a deferred SuperSlab of the small
 * heap, their pages do not count as the dense heap that makes the next
 * SuperSlab a huge page (they still count towards the budget of faults).
 * Units handed out again count again. */
void seg_small_heap_passing(seg_superslab_t *ss, unsigned first_unit, unsigned n_units);
/* realloc has copied the block of a one-block slab of TINY_PASSING_MIN
 * bytes or more (tiny/) out of ss, a SuperSlab with hinted_late set, and is
 * about to free it: the pages of [from, from + bytes) go back now (MADV_DONTNEED)
 * where the kernel still maps ss with base pages (PAGEMAP_SCAN: no huge
 * page), while a budget of such pages for the process's life lasts. Once
 * per SuperSlab. Python's list of 1 M strings grows in place up to the end
 * of its first SuperSlab (394,912 B), while the heap grows, and moves on
 * from there: 13 units resident and free that no slab needs, and not
 * purgeable once hinted huge (288-416 KiB of its peak). Makes system
 * calls (seg_give_back_now, counted as given back at once): call it
 * holding no lock. */
void seg_small_heap_give_back(seg_superslab_t *ss, void *from, size_t bytes);
/* Gives units back; a SuperSlab left empty returns to its node's pool. In
 * a SuperSlab of base pages (or one of the small heap's first, while it is), free
 * units whose SuperSlab has not changed for HUGESLAB_PURGE_DELAY_MS go back
 * to the kernel too, with MADV_DONTNEED, in whole pages: a SuperSlab kept by
 * one live slab no longer keeps every page its freed slabs touched. Those
 * of a slab of 2 units or more go back at once while the heap is small,
 * in its deferred SuperSlabs: tiny/ frees a large block's slab with it, as
 * glibc unmaps such a block (a system call: no lock held; counted as given
 * back at once, seg_give_back_now in segment_internal.h). */
void seg_units_free(seg_superslab_t *ss, unsigned first_unit, unsigned n_units);

/* A block that realloc grows past the slabs' sizes, alone in its
 * SuperSlab, becomes a run of one chunk where it is, rather than copied to
 * a new mapping while the old huge page stays resident for the copy
 * (sqlite3's 2 MB buffer, grown by doubling in place through one-block
 * slabs: 2 MiB on its peak). seg_lone_slab_claim takes ss out of its pool
 * when units first_unit .. first_unit + n_units - 1 are its only ones in a
 * slab and its pages may hold a run; false leaves it as it was. Then,
 * once the slab is out of tiny/'s lists, seg_lone_slab_to_run makes it a
 * run and moves `bytes` from block to the run's block, of `size` bytes
 * (at most HS_SUPERSLAB_SIZE - SEG_HEADER_SIZE), which it returns. */
bool seg_lone_slab_claim(seg_superslab_t *ss, unsigned first_unit, unsigned n_units);
void *seg_lone_slab_to_run(seg_superslab_t *ss, const void *block, size_t bytes, size_t size);

/* ss held a slab of one block that realloc has just moved to a run: if
 * that left ss empty (the newest idle SuperSlab of the calling thread's
 * node), its pages go back now, with MADV_DONTNEED on the purge thread,
 * woken for it, rather than after the purge delays. See
 * seg_release_outgrown in purge.c. */
void seg_release_outgrown(seg_superslab_t *ss);

/* A block of `size` bytes aligned to `align` (power of two) in a run of its
 * own. *fresh says the memory is known to be zero. NULL + ENOMEM. */
void *seg_run_alloc(size_t size, size_t align, unsigned node, bool *fresh);
/* The run holding p (its header chunk), or NULL when p is not in a run. */
seg_superslab_t *seg_run_of(const void *p);
void seg_run_free(seg_superslab_t *run);
HS_INLINE size_t seg_run_usable(const seg_superslab_t *run, const void *p)
{
    return (size_t)((const char *)run + run->run_size - (const char *)p);
}
/* Resizes a run's block to at least new_size, in place or by moving the
 * mapping without copying. Returns the block (maybe moved) or NULL with the
 * run untouched. */
void *seg_run_resize(seg_superslab_t *run, size_t new_size);
/* realloc kept a run's block where it is, now new_size bytes (not past
 * the run's end): where the block now reaches into the chunks hinted to
 * base pages, the chunk where it ends gets what the block holds of it
 * (base pages or a huge page, run.c's run_hint_tail). */
void seg_run_block_resized(const void *block, size_t new_size);

/* Runs `first` (NULL for nothing: the layers above give back what they
 * hold), then returns every idle SuperSlab and run to the kernel now, on
 * the calling thread (malloc_trim). The purge thread's pass under way, if
 * any, ends first, and none starts until this returns: what the pass had
 * taken is back too. 1 if any was. */
int seg_trim(void (*first)(void));

/* mlockall(2) and munlockall(2) for the program (api/memlock.c), which
 * keep the registry's never-written pages out of memory (segment.c): with
 * MCL_CURRENT and without MCL_ONFAULT, they are given back once the kernel
 * has locked everything else; while MCL_FUTURE is in force, the registry's
 * pages made writable are locked too. An unprivileged MCL_CURRENT that the
 * kernel refused (ENOMEM) for an address space over RLIMIT_MEMLOCK with the
 * registry is checked and made again without it, mapping by mapping.
 * Return 0 or -errno, the kernel's. */
int seg_lock_all(int flags);
int seg_unlock_all(void);

/* segment's figures (relaxed reads: figures, not invariants). */
typedef struct seg_stats_s {
    uint64_t superslabs_hugetlb;               /* mapped on hugetlbfs pages, runs included */
    uint64_t superslabs_thp;                   /* mapped with the THP hint */
    uint64_t superslabs_base;                  /* mapped on base pages */
    uint64_t superslabs_by_node[HS_MAX_NODES]; /* mapped, by the node of their pages */
    uint64_t superslabs_cached;                /* idle, pages resident, in the pools */
    uint64_t superslabs_purged;                /* idle, pages given back, address kept */
    uint64_t bytes_mapped;                     /* address space mapped for blocks */
    uint64_t bytes_in_runs;                    /* runs holding a live block */
    uint64_t bytes_cached;                     /* idle and resident: SuperSlabs and runs */
    uint64_t bytes_purged_total;               /* given back since start, by every path: idle memory
                                                  (purge thread, malloc_trim) and at once */
    uint64_t purge_calls;                      /* madvise and munmap calls or io_uring submissions
                                                  made, by every path */
    uint64_t bytes_purged_at_once;             /* of bytes_purged_total, blocks' pages given back by
                                                  the thread that freed or resized them */
    uint64_t purge_calls_at_once;              /* of purge_calls, the calls that gave them */
    uint64_t huge_blocks;                      /* live blocks with a mapping of their own */
} seg_stats_t;
void seg_stats(seg_stats_t *out);

/* What the kernel really gave hugeslab's mappings, from /proc/self/smaps
 * (slow: statistics only): 2 MiB huge pages in them, transparent
 * (AnonHugePages) and hugetlbfs (Private_Hugetlb). -1 when unreadable. */
typedef struct seg_kernel_pages_s {
    int64_t thp_huge_pages;     /* THP-hinted memory the kernel maps with 2 MiB pages */
    int64_t hugetlb_huge_pages; /* hugetlbfs pages in place */
} seg_kernel_pages_t;
void seg_kernel_pages(seg_kernel_pages_t *out);

/* Work the background thread does besides purging (tiny/ sweeps orphans)
 * after each pass; it returns true to be run again after the purge delay
 * even when nothing else falls due. */
void seg_set_idle_work(bool (*work)(void));
/* Tells the background thread that the idle work has something to do
 * (tiny/ left slabs of an exited thread as orphans): it runs it now and,
 * while it returns true, again after each purge delay, so slabs whose
 * blocks all come back go back to their SuperSlabs, and those to the kernel,
 * even when no SuperSlab ever fell idle before. Starts the thread the first
 * time (once the caller holds no lock). */
void seg_idle_work_pending(void);
/* Work the background thread does a purge delay after a free emptied a
 * slab that no one else would take back soon (tiny/ releases the slabs of
 * running threads' heaps whose blocks all wait on remote-free stacks). It
 * returns true when it passed something over (a heap busy at the time):
 * it runs again an eighth of the delay later, then twice as long each
 * time, up to the delay, until it returns false. */
void seg_set_emptied_work(bool (*work)(void));
/* Such a free happened (tiny/, holding no lock): the first since the last
 * run of that work wakes the background thread, which runs it a purge
 * delay later; the others cost one atomic load. */
void seg_emptied_slab_seen(void);
/* A thread that allocated is leaving (tiny/, from its thread-exit
 * destructor, holding no lock); last_ones: at most one other such thread
 * still runs. Once the main thread has left by pthread_exit, the process
 * ends when its last thread does, and the background thread, which counts
 * as one, looks whether it is that one, and if so ends the process. */
void seg_thread_left(bool last_ones);
/* Work the background thread does every interval_ms (the live statistics
 * file), with no lock held; set once, before seg_start_background. */
void seg_set_periodic_work(void (*work)(void), uint64_t interval_ms);
/* Starts the background thread now rather than when memory first turns
 * idle (periodic work needs it from the start). Starts a thread, which may
 * allocate: never call it with a lock held. */
void seg_start_background(void);
/* The library's constructor has run (its fork handlers and periodic work
 * are set): from now on the background thread may start, and starts now
 * if work waits for it. Before, none starts (purge.c). No lock held. */
void seg_allow_background(void);

/* Fork, in the C library's order: seg_fork_begin with no lock held (waits
 * for the hugetlb mappings and copies under way, frees the spare hugetlb
 * reservations), then, with tiny's locks taken, seg_fork_prepare (takes
 * segment's locks). */
void seg_fork_begin(void);
void seg_fork_prepare(void);
/* What seg_fork_parent leaves for seg_fork_parent_unlocked. */
typedef struct seg_fork_token_s {
    int child_done; /* the pipe end the child hangs up once it has copied its hugetlb
                       memory, or -1 */
    bool shared;    /* the parent still shares hugetlb pages with the child */
} seg_fork_token_t;
/* Releases segment's locks; returns what seg_fork_parent_unlocked needs. */
seg_fork_token_t seg_fork_parent(void);
/* In the parent once no lock of the fork is held any more, with what
 * seg_fork_parent returned: makes the parent's copies of the hugetlb ranges
 * seg_fork_parent marked, then reserves again the spare hugetlb pages the
 * fork freed (seg_hugetlb_range_t), which may wait up to a second for the child. */
void seg_fork_parent_unlocked(seg_fork_token_t token);
void seg_fork_child(void);
/* At exit: the purge thread stops; nothing is waited for. */
void seg_shutdown(void);

#endif

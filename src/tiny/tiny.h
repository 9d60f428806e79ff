/* tiny: size classes, slabs inside SuperSlabs, and the per-thread heap whose
 * fast paths serve every block up to TINY_MAX_SIZE (1 MiB).
 * - Each thread has a heap (tiny_heap_tls); a thread that never allocated
 *   points at tiny_empty_heap, whose classes all look exhausted, so the fast
 *   path needs no "initialised?" test.
 * - A slab belongs to one heap. Only the owner thread pops blocks and pushes
 *   local frees, without atomics; other threads push onto the slab's
 *   remote_free stack (one CAS), and the owner takes it with one exchange.
 * - A freed block holds its successor in word 0 and free_mark in word 1;
 *   free_mark == address ^ hs_free_key means "free", which is how a double
 *   free is caught before any write.
 * - Slabs of exited threads become orphans that other threads adopt.
 * Never: make a system call or take a lock on a fast path; call up into the
 * API layer. */
#ifndef HS_TINY_H
#define HS_TINY_H

#include "common/common.h"
#include "segment/segment.h"

/* ---- size classes ---------------------------------------------------------
 * 16..128 in steps of 16, then four classes per doubling up to 1 MiB:
 * 160 192 224 256 320 384 448 512 640 ... 1 MiB. Every class is a multiple
 * of 16, so every block is 16-aligned. */
#define TINY_CLASS_COUNT 60
#define TINY_MAX_SIZE HS_MiB
#define TINY_TABLE_MAX 1024 /* sizes served by the lookup table */

extern const uint8_t tiny_class_by_size16[TINY_TABLE_MAX / 16 + 1];
extern const uint32_t tiny_class_size[TINY_CLASS_COUNT];

/* The class serving `size` (<= TINY_MAX_SIZE), without division. */
HS_INLINE unsigned tiny_class_by_table(size_t size) { return tiny_class_by_size16[(size + 15) >> 4]; }

HS_INLINE unsigned tiny_class_of(size_t size)
{
    if (HS_LIKELY(size <= TINY_TABLE_MAX)) return tiny_class_by_table(size);
    size_t s = size - 1;
    unsigned log2 = 63u - (unsigned)__builtin_clzl(s);
    unsigned step = (unsigned)(s >> (log2 - 2)) & 3u;
    return 8u + (log2 - 7u) * 4u + step;
}

/* ---- blocks, slabs, heaps ------------------------------------------------- */

typedef struct tiny_block_s tiny_block_t;
struct tiny_block_s {
    tiny_block_t *next;  /* next free block */
    uintptr_t free_mark; /* address ^ hs_free_key while free, 0 once handed out */
};

typedef struct tiny_heap_s tiny_heap_t;
typedef struct tiny_slab_s tiny_slab_t;

/* remote_free's low bit: the owner keeps this slab on its full list and
 * wants to be told when it has room. The first remote free to see the bit
 * clears it and puts its block on the owner heap's delayed list instead;
 * the owner drains that list and moves the slab back to its partial list. */
#define TINY_REMOTE_FULL ((uintptr_t)1)
/* The rest of remote_free: the stack's top block in bits 4..47 (blocks are
 * 16-aligned, addresses below 2^47) and the stack's length in bits 48..63
 * (a slab holds at most 4096 blocks). */
#define TINY_REMOTE_PTR_MASK ((((uintptr_t)1 << HS_ADDRESS_BITS) - 1) & ~(uintptr_t)15)
#define TINY_REMOTE_COUNT_SHIFT 48
/* owner_word's low bit: the slab is on the owner's full list. */
#define TINY_OWNER_FULL ((uintptr_t)1)

/* One descriptor per 64 KiB unit, in the SuperSlab's client area. The
 * descriptor of a slab's first unit describes the slab; every unit's `head`
 * points to it (to tiny_sentinel_slab for units in no slab).
 * Invariants (tiny_slab_validate, debug builds):
 * - blocks [0, carved) have been handed to the free list at least once;
 *   [carved, capacity) were never touched (carved lazily, a page at a time,
 *   so a fresh slab costs no more faults than it is used);
 * - used == carved - (blocks on free, local_free and collected lists);
 *   blocks on remote_free and on heaps' delayed lists still count as used;
 * - only the heap's current slab for a class may have free != NULL;
 * - owner_word's FULL bit is set iff the slab is on its owner's full list;
 *   remote_free's FULL bit is only ever set while it is, and is cleared by
 *   the owner or by the one remote free that notifies it. */
struct tiny_slab_s {
    /* First cache line: what the owner's fast paths touch. */
    tiny_block_t *free;       /* blocks ready to hand out (owner only) */
    tiny_block_t *local_free; /* blocks the owner freed since the last refill */
    uint32_t used;            /* blocks handed out and not yet seen free */
    _Atomic uint32_t carved;  /* blocks put on the free list so far (see above);
                                 written by the owner, read by any freeing thread */
    uint32_t block_size;      /* bytes per block (the class size) */
    uint8_t cls;              /* size class */
    uint8_t units;            /* 64 KiB units the slab spans */
    uint8_t first_unit;       /* index of the slab's first unit */
    _Atomic uint8_t has_aligned; /* an aligned allocation handed out an inner pointer */
    char *start;              /* first block */
    uint64_t recip;           /* floor(2^40 / block_size) + 1: block index by multiply */
    _Atomic uintptr_t owner_word; /* owning heap | TINY_OWNER_FULL; 0 for an orphan */
    tiny_slab_t *head;        /* the descriptor of the slab this unit belongs to */
    /* Second cache line: lists, and what other threads write. */
    tiny_slab_t *next;        /* in the owner's partial or full list, or the orphans */
    tiny_slab_t *prev;
    _Atomic uintptr_t remote_free; /* blocks freed by other threads: length | top | FULL */
    uint32_t capacity;        /* blocks the slab can hold */
    uint8_t pad_[HS_CACHE_LINE - 3 * sizeof(void *) - sizeof(uint32_t)];
};
_Static_assert(sizeof(tiny_slab_t) == 2 * HS_CACHE_LINE, "two cache lines");
_Static_assert(HS_UNITS_PER_SUPERSLAB * sizeof(tiny_slab_t) <= SEG_CLIENT_AREA_SIZE,
               "slab table fits the client area");

/* Exact for every offset inside a slab (< 2 MiB) and class (<= 1 MiB). */
#define TINY_RECIP_SHIFT 40

struct tiny_heap_s {
    tiny_slab_t *current[TINY_CLASS_COUNT]; /* slab to pop from; sentinel when none */
    tiny_slab_t *partial[TINY_CLASS_COUNT]; /* slabs that may have room, current first */
    tiny_slab_t *full[TINY_CLASS_COUNT];    /* slabs found without room */
    _Atomic(tiny_block_t *) delayed;        /* blocks other threads freed into full slabs */
    tiny_slab_t *kept_empty;                /* the one empty slab kept as a current slab */
    unsigned node;                          /* NUMA node its SuperSlabs come from */
    bool attached;                          /* belongs to a running thread */
    tiny_heap_t *next_free;                 /* in the pool of heaps to reuse */
    tiny_heap_t *all_next;                  /* every heap ever made (never unlinked) */
    /* Frees of other threads' blocks made by this thread, by the block's
     * node: written by this thread only, summed by hugeslab_stats(). A
     * shared counter here would be a cache line every thread fights over. */
    _Atomic uint64_t remote_frees_by_node[HS_MAX_NODES];
};

extern tiny_heap_t tiny_empty_heap;
extern tiny_slab_t tiny_sentinel_slab;
extern __thread tiny_heap_t *tiny_heap_tls;

HS_INLINE tiny_slab_t *tiny_slab_table(seg_superslab_t *ss)
{
    return (tiny_slab_t *)seg_client_area(ss);
}

/* The slab descriptor for a pointer known to lie in a SuperSlab of slabs. */
HS_INLINE tiny_slab_t *tiny_slab_of(const void *p)
{
    unsigned unit = (unsigned)((uintptr_t)p >> HS_UNIT_SHIFT) & (HS_UNITS_PER_SUPERSLAB - 1);
    return tiny_slab_table(seg_superslab_of(p))[unit].head;
}

/* ---- slow paths (tiny.c) -------------------------------------------------- */
void tiny_init(void);
void *tiny_malloc_refill(tiny_heap_t *heap, unsigned cls);
void tiny_free_slow(void *p, tiny_slab_t *slab);
void tiny_free_unusual(void *p, tiny_slab_t *slab);
HS_COLD HS_NORETURN void tiny_report_double_free(const void *p, const tiny_slab_t *slab);
void *tiny_malloc_aligned(size_t alignment, size_t size);
/* Bytes usable from p to the end of its block; aborts on an invalid pointer. */
size_t tiny_usable_size(const void *p);
void tiny_trim(void);
void tiny_stats(hugeslab_stats_t *out);
void tiny_fork_prepare(void);
void tiny_fork_parent(void);
void tiny_fork_child(void);

/* ---- fast paths ------------------------------------------------------------ */

/* Pops a block of class cls from the thread's current slab. */
HS_INLINE void *tiny_malloc_class(unsigned cls)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *slab = heap->current[cls];
    tiny_block_t *block = slab->free;
    if (HS_UNLIKELY(block == NULL)) return tiny_malloc_refill(heap, cls);
    slab->free = block->next;
    slab->used++;
    block->free_mark = 0;
    return block;
}

HS_INLINE void *tiny_malloc(size_t size) { return tiny_malloc_class(tiny_class_of(size)); }

/* p lies in a SuperSlab of slabs (the registry said so). */
HS_INLINE void tiny_free(void *p)
{
    tiny_slab_t *slab = tiny_slab_of(p);
    uintptr_t offset = (uintptr_t)p - (uintptr_t)slab->start;
    uint64_t index = (offset * slab->recip) >> TINY_RECIP_SHIFT;
    /* Not the start of a block of this slab: an aligned block's inner
     * pointer, or an invalid free. Both are rare; decide off the fast path. */
    uint32_t carved = atomic_load_explicit(&slab->carved, memory_order_relaxed);
    if (HS_UNLIKELY(index >= carved || index * slab->block_size != offset)) {
        tiny_free_unusual(p, slab);
        return;
    }
    tiny_block_t *block = (tiny_block_t *)p;
    uintptr_t mark = (uintptr_t)block ^ hs_free_key;
    if (HS_LIKELY(atomic_load_explicit(&slab->owner_word, memory_order_relaxed) ==
                  (uintptr_t)tiny_heap_tls)) {
        if (HS_UNLIKELY(block->free_mark == mark)) tiny_report_double_free(p, slab);
        block->next = slab->local_free;
        block->free_mark = mark;
        slab->local_free = block;
        if (HS_UNLIKELY(--slab->used == 0)) tiny_free_slow(NULL, slab);
        return;
    }
    tiny_free_slow(p, slab);
}

#endif

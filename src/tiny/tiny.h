/* tiny: size classes, slabs inside SuperSlabs, and the per-thread heap whose
 * fast paths serve every block up to TINY_MAX_SIZE (1 MiB).
 * - Each thread has a heap (tiny_heap_tls); a thread that never allocated
 *   points at tiny_empty_heap, whose classes all look exhausted, so the fast
 *   path needs no "initialised?" test.
 * - A slab belongs to one heap. Only the owner thread pops blocks and pushes
 *   its own frees, onto the one free list malloc pops from, without atomics;
 *   other threads push onto the slab's remote-free stack (one CAS), and the
 *   owner takes it with one exchange when the free list runs out.
 * - A freed block holds the link to its successor in word 0 and free_mark
 *   in word 1; free_mark == address ^ hs_free_key means "free", which is
 *   how a double free is caught before any write. Links are encoded with
 *   the key and the block's own address and checked when followed, so a
 *   write into a freed block ends in a report and abort(), never in a
 *   block handed out at a wild address.
 * - Slabs of exited threads become orphans that other threads adopt.
 * - A thread that only frees never gets a heap: its remote frees are counted
 *   in shared, striped counters.
 * Never: make a system call or take a lock on a fast path; call up into the
 *   API layer; reach os/, thp/ or numa/ but through segment/. */
#ifndef HS_TINY_H
#define HS_TINY_H

#include "common/common.h"
#include "segment/segment.h"

/* ---- size classes ---------------------------------------------------------
 * 16..512 in steps of 16, then eight classes per doubling up to 1 MiB:
 * 528 576 640 ... 1024 1040 1152 ... 2048 2112 2304 ... 4096, 4368 4672
 * 5040 5456 5952 6544 7280 8192, 9216 ... 1 MiB. Every class is a multiple
 * of 16, so every block is 16-aligned. Up to 512 bytes a request wastes
 * less than 16 bytes (glibc's chunks waste 8 to 23), above it about 1/8 of
 * the request at most (the most: 7,281 bytes in an 8,192-byte block,
 * 12.51 %). 528, 1040 and 2112 are a ninth class in their rows, for a
 * power of two and a small header (Redis keeps a 512-byte value as a
 * 518-byte string, which took 576 bytes): each fills 64 KiB with 124, 63
 * and 31 blocks. Between 4 and 8 KiB the classes are the
 * largest multiples of 16 that fill a slab's 64 KiB with 15, 14, ..., 8
 * blocks, so a slab's tail is at most 16 bytes a block: equal eighths
 * (4608 ... 8192) left up to 8.6 % of a slab after its last block, and a
 * 4 KiB page with its header (sqlite3's page cache asks for 4,368 bytes)
 * took a 4,608-byte block. bench/README.md
 * ("Size classes") measured this spacing and others on real programs'
 * requests: finer steps up to 1 KiB save little there, and a thread that
 * touches every class up to 1 KiB would need more slabs than one
 * SuperSlab holds. */
#define TINY_CLASS_COUNT 123
#define TINY_MAX_SIZE HS_MiB
#define TINY_TABLE_MAX 1024   /* sizes served by the heap's direct table */
#define TINY_LINEAR_MAX 512   /* the last class of the 16-byte steps */
#define TINY_INDEXED_MAX 8192 /* the last class found through tiny_class_index */

/* Blocks from which on a slab of one block is one that an array grown by
 * realloc passes through (seg_small_heap_passing): ls -lR /usr's table of
 * files went through slabs of 332,800 and 665,600 B, 34 units resident
 * whole, and made its first SuperSlab look dense (9.9 MiB peak RSS with
 * the second a huge page, glibc 7.1). The densest small heaps,
 * bench_memory kv and larson, fill slabs of many small blocks. */
#define TINY_PASSING_MIN ((size_t)256 << 10)

#define TINY_HEADER_CLASSES 3 /* 528, 1040, 2112: classes beyond eight a doubling */

/* The first class whose blocks each get a slab of pages sized to the
 * request once the slabs hold TINY_MIDDLE_HEAP_BYTES past the small heap
 * (sized.c): sizes above 128 KiB. From 64 KiB, git gc --aggressive with one
 * delta thread peaked 2 MiB lower, but a malloc of 64-128 KiB ran ten times
 * the instructions of a class slab's (bench/README.md). */
#define TINY_SIZED_CLASS_MIN 99

extern const uint32_t tiny_class_size[TINY_CLASS_COUNT];
/* The class of sizes TINY_LINEAR_MAX + 1 .. TINY_INDEXED_MAX, by
 * (size - 1 - TINY_LINEAR_MAX) / 16. */
extern const uint8_t tiny_class_index[(TINY_INDEXED_MAX - TINY_LINEAR_MAX) / 16];

/* The class serving `size` (<= TINY_MAX_SIZE), without division: up to
 * TINY_LINEAR_MAX (size - 1) / 16 (size 0 goes with 1..16), up to
 * TINY_INDEXED_MAX one load from tiny_class_index, above it the doubling
 * (log2 of size - 1) and the eighth of it. */
HS_INLINE unsigned tiny_class_of(size_t size)
{
    if (HS_LIKELY(size <= TINY_LINEAR_MAX)) return (unsigned)((size - (size != 0)) >> 4);
    if (size <= TINY_INDEXED_MAX) return tiny_class_index[(size - 1 - TINY_LINEAR_MAX) >> 4];
    size_t s = size - 1;
    unsigned log2 = 63u - (unsigned)__builtin_clzl(s);
    unsigned step = (unsigned)(s >> (log2 - 3)) & 7u;
    return TINY_LINEAR_MAX / 16 + TINY_HEADER_CLASSES + (log2 - 9u) * 8u + step;
}

/* Slab bytes below which the classes above TINY_LINEAR_MAX get slabs of
 * their fewest units (tiny.c, slab_units), as every class does while the
 * heap has not left its first SuperSlab. Their full-size slabs (2 units
 * from 528 B, 8 blocks above 8 KiB) end up holding a block or two among
 * pages that earlier blocks touched: each class keeps its own high-water
 * mark, which a heap of a few MiB in many classes pays in full.
 * `git log -p` (base pages) held 4.5 MiB of resident slab pages for
 * 2.8 MiB of blocks at its peak, 1.7 MiB of it in the 576 B - 64 KiB
 * classes with under a third of their blocks in use (the 32 KiB class:
 * 256 KiB resident, one block live). Slabs of one unit, or one block, go
 * back when emptied, and their units serve any class next. Above 8 KiB
 * the fewest units are those that leave at most an eighth after the last
 * block (tiny.c, short_units), not one: a unit holds one block of 18,000
 * bytes and 14 KiB of nothing, two of 11,200 and 10 KiB, and past the
 * small heap that tail lies in a huge page, resident. gawk's array of
 * 39,000 keys (785 blocks of 11,200 B) peaked at 19.0 MiB with slabs of
 * one unit and at 17.0-17.2 with slabs of three (glibc 15.4). Above this a
 * heap keeps its full-size slabs (but for the short ones of the classes
 * above 8 KiB, tiny.c one_thread_short), for the refills they save:
 * bench_random_mixed 8-64 KiB (400 blocks, 14 MiB) runs 0.5 % more
 * instructions with one-block slabs for its first 8 MiB. */
#define TINY_MIDDLE_HEAP_BYTES (8 * HS_MiB)

/* The first of the classes (528 B - 8 KiB, bits of tiny_state.busy_classes)
 * that get full-size slabs under TINY_MIDDLE_HEAP_BYTES too once a slab of
 * one unit of theirs has gone to the full list for a
 * TINY_BUSY_TRIPS_SHARE-th of its blocks (tiny.c, note_trip). A quarter:
 * larson's classes are busy within a few milliseconds, before its peak
 * either way (a sixteenth and sixteen times its blocks peaked as high). */
#define TINY_BUSY_CLASS_MIN (TINY_LINEAR_MAX / 16)
#define TINY_BUSY_TRIPS_SHARE 4

/* Trips to the full list after which a slab comes back only with a quarter
 * of its blocks free, not a thirty-second, while two threads or more have a
 * heap (tiny.c, move_to_full). bench_mt rounds at 2 threads, M operations
 * per CPU-second: 155.5 at a thirty-second always, 181.9 with a quarter
 * after 16 trips, 173.1 with an eighth after 16, mimalloc 173.7. A quarter
 * after 4 trips raised bench_memory kv's peak by 22.0 MiB, an eighth after
 * 8 by 2 MiB; a quarter after 16 in one thread sqlite3's (1 M rows) by
 * 1.8-2.7 MiB, a SuperSlab. */
#define TINY_WIDE_TRIPS 16

/* The first class above 8 KiB (9,216 B), from which slabs may be short
 * (tiny.c, slab_units, one_thread_short). */
#define TINY_SHORT_CLASS_MIN 67
/* A class whose slabs asked for more than 1 / this of the slab bytes gets
 * full-size slabs again in a heap of one thread (one_thread_short): it is
 * the heap's bulk, whose short slabs' tails (up to an eighth) cost more
 * than the full-size slab's reserve. A quarter, not a half: tclsh's dict
 * of 300,000 entries holds 742 blocks of 38,400 B in the 40,960-byte
 * class, a third of its slabs, whose short slabs (4 units, 3 blocks)
 * leave 8 KiB each: 103.9 MiB peak at a half against 101.9 at a quarter
 * (and with full-size slabs past 64 MiB, before). */
#define TINY_SHORT_CUT_SHARE 4

/* ---- blocks, slabs, heaps ------------------------------------------------- */

typedef struct tiny_block_s tiny_block_t;
struct tiny_block_s {
    uintptr_t link;      /* next free block, encoded: see tiny_link */
    uintptr_t free_mark; /* address ^ hs_free_key while free, 0 once handed out */
};

/* Hardened free lists. A link is next ^ block ^ key: the next block's
 * address, this block's address and the process's secret (hs_free_key,
 * which each slab keeps as free_key). Decoded with the key, a link gives
 * next ^ block, which is below 2 MiB when the two blocks share a SuperSlab
 * and equals the block's address when the list ends (next == NULL). A
 * program that writes into a freed block leaves a link that decodes to
 * neither, unless it knew the key: the list is reported as corrupted and
 * the process aborts instead of following the pointer. Every list of
 * free blocks is linked this way: a slab's free list and remote-free stack
 * (blocks of one slab), and a heap's delayed list (blocks of any slab,
 * checked against the registry instead). */
HS_INLINE uintptr_t tiny_link(const tiny_block_t *block, const tiny_block_t *next, uintptr_t key)
{
    return (uintptr_t)next ^ (uintptr_t)block ^ key;
}

typedef struct tiny_heap_s tiny_heap_t;
typedef struct tiny_slab_s tiny_slab_t;

/* The remote word's low bit: the owner keeps this slab on its full list and
 * wants to be told when it has room. The first remote free to see the bit
 * clears it and puts its block on the owner heap's delayed list instead;
 * the owner drains that list and moves the slab back to its partial list. */
#define TINY_REMOTE_FULL ((uintptr_t)1)
/* The rest of the remote word: the stack's top block in bits 4..47 (blocks are
 * 16-aligned, addresses below 2^47) and the stack's length in bits 48..63
 * (a slab holds at most 4096 blocks). */
#define TINY_REMOTE_PTR_MASK ((((uintptr_t)1 << HS_ADDRESS_BITS) - 1) & ~(uintptr_t)15)
#define TINY_REMOTE_COUNT_SHIFT 48

/* One descriptor per 32 KiB unit, in the SuperSlab's client area (see
 * tiny_client_area_t). The descriptor of a slab's first unit describes the
 * slab; every unit's head points to it (to tiny_sentinel_slab for units in
 * no slab), but the unit where a slab of pages ends inside, whose head is
 * the next one's if it starts there (sized.c).
 * Invariants (tiny_slab_validate, debug builds):
 * - blocks [0, carved) have been handed to the free list at least once;
 *   [carved, capacity) were never touched (carved lazily, a page at a time,
 *   so a fresh slab costs no more faults than it is used);
 * - key_limit == tiny_key_limit(carved, recip, block_size);
 * - used + full_bias == carved - (blocks on the free list); blocks on
 *   the remote-free stack and on heaps' delayed lists still count as used;
 * - every block on the free list is marked free (free_mark);
 * - full_bias is 0 unless the slab is on its owner's full list (on_full);
 *   there, used >= 1: it counts down the owner's frees still to come before
 *   the slab goes back to the partial list (see move_to_full in tiny.c);
 * - the remote word's FULL bit is only ever set while on_full is, and is
 *   cleared by the owner or by the one remote free that notifies it. */
struct tiny_slab_s {
    /* First cache line: what every free reads, the owner's and other
     * threads', and the owner writes only when it carves or the slab
     * changes hands. Apart from the fields the owner writes at each malloc
     * and free: on one line with them, each remote free read the line while
     * the owner kept writing it, and it went back and forth between the
     * cores (bench_mt larson at 2 threads on an idle machine: 70 % of
     * free's samples on the load of recip, 15 % of malloc's on `free`). */
    uintptr_t free_key;           /* hs_free_key, kept here because free's fast
                                     path has this line in cache already */
    char *start;                  /* first block */
    uint64_t recip;               /* floor(2^64 / block_size) + 1: see tiny_block_recip */
    _Atomic uint64_t key_limit;   /* carved blocks' tiny_block_key are below it
                                     (tiny_key_limit); written with carved */
    _Atomic uintptr_t owner_word; /* owning heap; 0 for an orphan */
    _Atomic uint32_t carved;      /* blocks put on the free list so far (see above);
                                     written by the owner, read by any freeing thread */
    uint32_t block_size;          /* bytes per block (the class size) */
    uint32_t capacity;            /* blocks the slab can hold */
    uint8_t cls;                  /* size class */
    uint8_t units;                /* 32 KiB units the slab spans */
    uint8_t first_unit;           /* index of the slab's first unit */
    _Atomic uint8_t has_aligned;  /* an aligned allocation handed out an inner pointer */
    uint8_t sized;                /* a slab of pages: one block, sized to its request (sized.c) */
    _Atomic uint8_t crowd;        /* its owner is a crowd heap: written with owner_word,
                                     read by other threads' frees */
    /* Second cache line: what the owner writes at each malloc and free,
     * and its lists; the stack other threads push on is in the client
     * area's remote words. `free`: blocks ready to hand out; the owner's
     * frees go here too (owner only). */
    _Alignas(HS_CACHE_LINE) tiny_block_t *free;
    uint32_t used;      /* blocks handed out and not yet seen free, less full_bias;
                           free lowers it after its block is on the list */
    uint32_t full_bias; /* owner only: blocks left out of used while on_full */
    tiny_slab_t *next;  /* in the owner's partial or full list, or the orphans */
    tiny_slab_t *prev;
    bool on_full;  /* owner only: on the owner's full list */
    uint8_t trips; /* owner only: times it went to the full list,
                      up to 255 (move_to_full, note_trip) */
    bool recycled; /* owner only: a refill collected remote frees into it
                      since it last carved (borrow_from_larger, tiny.c) */
    uint8_t pad_[HS_CACHE_LINE - 3 * sizeof(void *) - 2 * sizeof(uint32_t) - 2 * sizeof(bool) -
                 sizeof(uint8_t)];
};
_Static_assert(sizeof(tiny_slab_t) == 2 * HS_CACHE_LINE, "two cache lines");

/* The client area of a SuperSlab of slabs: the units' heads, which every
 * free reads, then each unit's metadata. Heads apart from the descriptors: a new
 * SuperSlab has all 64 heads set (to the sentinel) in 512 bytes of its
 * first page, and a descriptor's page is written only once a slab starts
 * at its unit; as one table of descriptors with a head each, setting the
 * heads wrote two pages, the second one for nothing in a small heap. */
/* A unit's metadata: 256 bytes on a 128-byte boundary, four cache lines.
 * 1. The remote word: a slab's remote-free stack (length | top | FULL,
 *    above), blocks freed by threads other than the owner, one CAS each.
 *    On a line of its own: on the descriptor's second line, each remote
 *    free took that line from the owner's core, and the owner's next malloc
 *    from the slab waited to take it back (bench_mt larson at 2 threads: 55 %
 *    of malloc's samples on the load of `free`; 31.1 -> 37.1 M operations
 *    per CPU-second apart).
 * 2, 3. The descriptor: the line every free reads, then the line the owner
 *    writes at each malloc and free.
 * 4. Nothing: so that the owner's line has lines of its own slab on both
 *    sides. With the descriptors packed one after the other, its second
 *    line lay next to the first line of the next unit's slab, which may be
 *    another thread's; cores fetch the line next to one they miss along
 *    with it (the L2's adjacent-line prefetchers), and a line that one core
 *    writes at every malloc should not be fetched by another. bench_mt larson
 *    --handoff-every=0, two threads whose first slabs share a SuperSlab,
 *    vCPUs far apart: 367.0 M operations per second packed, 391.7 in this
 *    order, 398.7 with the remote word after the descriptor (which put it
 *    in one 128-byte pair with the owner's line and cost larson with
 *    hand-offs a tenth), mimalloc 442.2 (8 rounds, medians); descriptors
 *    packed but each on a 128-byte pair: no change (371.3 against 372.8).
 *    The remote freer's two lines, the remote word and the descriptor's
 *    first, share a 128-byte pair. */
typedef struct tiny_unit_meta_s {
    _Alignas(HS_CACHE_LINE) _Atomic uintptr_t remote; /* the remote word */
    uint8_t pad_remote_[HS_CACHE_LINE - sizeof(uintptr_t)];
    tiny_slab_t slab;                  /* descriptor of a slab starting at the unit */
    uint8_t pad_after_[HS_CACHE_LINE]; /* nothing, on purpose (above) */
} tiny_unit_meta_t;
_Static_assert(sizeof(tiny_unit_meta_t) == 4 * HS_CACHE_LINE, "four lines");
_Static_assert(offsetof(tiny_unit_meta_t, slab) + offsetof(tiny_slab_t, free) == 2 * HS_CACHE_LINE,
               "the owner's line is the unit's third: its neighbours are the unit's own");

/* segment/'s page map (64 bytes after the header) puts unit[] on a
 * 128-byte boundary. */
typedef struct tiny_client_area_s {
    tiny_slab_t *head[HS_UNITS_PER_SUPERSLAB];     /* unit -> descriptor of its slab */
    tiny_unit_meta_t unit[HS_UNITS_PER_SUPERSLAB]; /* metadata of a slab starting at the unit */
} tiny_client_area_t;
_Static_assert(sizeof(tiny_client_area_t) <= SEG_CLIENT_AREA_SIZE,
               "heads and metadata fit the client area");
_Static_assert((SEG_HEADER_SIZE + SEG_PAGE_MAP_SIZE + offsetof(tiny_client_area_t, unit)) %
                       (2 * HS_CACHE_LINE) ==
                   0,
               "units' metadata start on a 128-byte boundary");

/* Tells a block's first byte from any other offset in its slab with one
 * multiply. With recip = floor(2^64 / size) + 1, recip * size is
 * 2^64 + step, step = size - 2^64 mod size (0 < step <= size). For an offset
 * k * size + r (r < size) below 2 MiB, offset * recip mod 2^64 is
 * k * step + r * recip: k * step, below 2^21, when r == 0, and at least
 * recip (above 2^43, as size <= 1 MiB) otherwise. An offset below the
 * slab's start, -m with m < 2 MiB, wraps to 2^64 - (m * recip mod 2^64),
 * at least recip - 2^22. So offset * recip mod 2^64 < carved * step says at
 * once that offset is a block's first byte and that the block was carved:
 * free's check is one `imul` and one compare against the slab's
 * key_limit, where a 128-bit `mul` for the index and remainder needed a
 * second compare against carved (tests/internal_test.c tries every offset
 * of a SuperSlab, either side of the start, for every class). */
HS_INLINE uint64_t tiny_block_recip(size_t size)
{
    /* floor(2^64 / size) from 64-bit operands: 2^64 = UINT64_MAX + 1, one
     * more than a multiple of size exactly when UINT64_MAX leaves size - 1.
     * A 128-bit dividend called libgcc's __udivti3: with __divti3, 603
     * bytes linked into the text every process runs (src/hugeslab.ld). */
    uint64_t q = UINT64_MAX / size;
    return q + (UINT64_MAX % size == size - 1) + 1;
}

/* How far apart consecutive blocks' tiny_block_key values are. */
HS_INLINE uint64_t tiny_block_step(uint64_t recip, size_t size) { return recip * size; }

/* k * tiny_block_step for the first byte of block k; at least 2^43 for any
 * other offset (see tiny_block_recip). */
HS_INLINE uint64_t tiny_block_key(uintptr_t offset, uint64_t recip) { return offset * recip; }

/* The slab's key_limit for `carved` blocks. */
HS_INLINE uint64_t tiny_key_limit(uint32_t carved, uint64_t recip, size_t size)
{
    return carved * tiny_block_step(recip, size);
}

/* Entries of tiny_heap_t.direct: one per 16 bytes of request up to
 * TINY_TABLE_MAX, so malloc goes from the size to the slab in one load. */
#define TINY_DIRECT_COUNT (TINY_TABLE_MAX / 16 + 1)
/* The classes served through it: the last one's size is TINY_TABLE_MAX
 * (tests/internal_test.c checks it). */
#define TINY_DIRECT_CLASSES 41

/* SuperSlabs in which a heap may keep empty current slabs and spares: each
 * can stay resident whole (a 2 MiB huge page) after the program freed
 * everything and its threads went to sleep, so one. */
#define TINY_KEPT_SUPERSLABS 1

/* Units a heap cuts into slabs in SuperSlabs it may share with other
 * heaps before it takes SuperSlabs of its own (slab_owner in tiny.c): a
 * SuperSlab's worth. */
#define TINY_HOME_UNITS_CUT HS_UNITS_PER_SUPERSLAB
/* How long a heap goes on cutting slabs after that, while another thread
 * has a heap, before it takes them from SuperSlabs of its own (slab_owner
 * in tiny.c): its thread has been at work a while, and will likely go on.
 * A heap of one thread alone never reads the clock for it. */
#define TINY_HOME_AGE_MS 50
/* Slabs larger than this are cut where best fit puts them, owner or not
 * (slab_owner in tiny.c). */
#define TINY_HOME_SLAB_UNITS_MAX 2

/* Frees of other threads' blocks of at most TINY_REMOTE_BATCH_BLOCK_MAX
 * bytes that a heap gathers before it hands them to their slabs at once
 * (tiny_flush_remote_batch in tiny.c). */
#define TINY_REMOTE_BATCH 64
#define TINY_REMOTE_BATCH_BLOCK_MAX 1024
/* A thread without a heap frees its first TINY_HEAPLESS_BATCH_AFTER such
 * blocks at once, then in a batch lent to it from a pool of
 * TINY_HEAPLESS_BATCHES (heapless_free_remote in tiny.c). */
#define TINY_HEAPLESS_BATCH_AFTER 64
#define TINY_HEAPLESS_BATCHES 64

/* Slabs a heap cuts between two looks at the other heaps' slabs that other
 * threads freed whole (tiny_reclaim_from_others in tiny.c), and the most
 * slabs one look releases. bench_mt larson at 16 threads on 2 CPUs, peak
 * RSS and M operations per second: 202-214 MiB and 205 with no look,
 * 118-122 and 158 every 16 slabs, 124-126 and 200 every 64, 104-110 and
 * 95 every 4 (mimalloc 2.0.9: 89-93 MiB, 86-91). */
#define TINY_RECLAIM_EVERY_CUTS 64
#define TINY_RECLAIM_MAX 256

/* A sleeping owner's delayed list of n notices is walked for the slabs that
 * other threads emptied (reclaim_empty in tiny.c) at most once per
 * n / TINY_RECLAIM_WALK_SHARE slabs emptied. */
#define TINY_RECLAIM_WALK_SHARE 16

/* A crowded process's shared first blocks (crowd_malloc in tiny.c): from
 * HUGESLAB_CROWD_THREADS threads with a heap on, a thread's blocks of a
 * class up to TINY_CROWD_SIZE_MAX come from its node's crowd heap, whose
 * slabs every thread of the node shares, until it has taken
 * TINY_CROWD_BLOCKS of them or TINY_CROWD_BYTES; then its own slabs serve
 * it. A slab of its own costs a thread at least a page a class: 1,000
 * threads each holding 64 blocks of 16 B - 2.2 KiB (68 MiB) kept 200 MiB
 * resident that way, most of it the pages' unused rest. */
#define TINY_CROWD_SIZE_MAX 4096
#define TINY_CROWD_BLOCKS 32
#define TINY_CROWD_BYTES (16 * HS_KiB)
/* The classes up to TINY_CROWD_SIZE_MAX (tests/internal_test.c checks it). */
#define TINY_CROWD_CLASSES 59

/* Classes below this one (5,456 bytes and less) never have a slab of one
 * block: a SuperSlab's shorter first unit holds four. The classes from it
 * on have a bit each in a heap's one_block_ words. */
#define TINY_ONE_BLOCK_CLASS_MIN 64
_Static_assert(TINY_CLASS_COUNT - TINY_ONE_BLOCK_CLASS_MIN <= 64, "one word of class bits");
_Static_assert(TINY_CLASS_COUNT <= 128 && TINY_ONE_BLOCK_CLASS_MIN == 64,
               "two words of class bits, the second one the one-block classes'");

struct tiny_heap_s {
    /* The fields lie in the order a one-thread program touches them: the
     * heap's first page holds all that such a program writes (the line
     * other threads write, the tables of the classes in use, the scalars),
     * its second only the spares of the classes from 2,816 B up and what
     * other threads' blocks need. With the tables of every class first,
     * `sleep` wrote both pages (16 KiB of Rss in the mapping of heaps and
     * its neighbour, 12 now).
     * Blocks other threads freed into full slabs. The one field other
     * threads write, so it has a cache line of its own: next to the
     * owner's fields, their CASes stole that line from the owner's refill
     * path (Larson at 2 threads lost 15 % when `node` shared it). */
    _Alignas(HS_CACHE_LINE) _Atomic(tiny_block_t *) delayed;
    /* Held by the owner through its slow paths, tried by a thread that
     * would release one of its slabs (heap_enter in tiny_internal.h,
     * reclaim_empty in tiny.c); on this line, which other threads write anyway. */
    _Atomic uint32_t busy;
    /* Written by other threads under busy (reclaim_empty): the notices the
     * last walk of the delayed list left on it, and the slabs found empty
     * since, whose walk was put off. The owner's drain zeroes the first. */
    _Atomic uint32_t reclaim_notices;
    _Atomic uint32_t reclaim_put_off;
    /* Nothing, on purpose: a core that fetches the line above also fetches
     * its neighbour (the L2's adjacent-line prefetch), and the owner reads
     * direct at every malloc; the client area's units keep such a line
     * for the same reason (tiny_unit_meta_t). */
    uint8_t pad_after_shared_[2 * HS_CACHE_LINE - sizeof(void *) - 3 * sizeof(uint32_t)];
    /* current[tiny_class_of(size)], by (size + 15) / 16: malloc's way
     * in for requests up to TINY_TABLE_MAX. Written only by
     * heap_set_current (tiny_internal.h), with current. */
    tiny_slab_t *direct[TINY_DIRECT_COUNT];
    tiny_slab_t *current[TINY_CLASS_COUNT]; /* slab to pop from; sentinel when none */
    /* By class, bit cls - TINY_ONE_BLOCK_CLASS_MIN (see
     * make_room_for_one_block in tiny.c): its empty slab of one block went
     * back for another class's (released); its class needed a slab again
     * after that, so its empty slabs stay current (recurring). */
    uint64_t one_block_released;
    uint64_t one_block_recurring;
    /* By class, bit cls % 64 of word cls / 64 (word 1 has the bits above):
     * set when a refill makes a slab current[cls] (note_current in tiny.c).
     * The walks over a heap's current slabs (make_room_for_one_block,
     * tiny_release_kept_empty_in) look at these classes only. A bit stays
     * when its slab goes (the walks pass over the sentinel) until the heap
     * is abandoned: at most one per class the thread has used. */
    uint64_t current_classes[2];
    uint32_t spares_held;   /* entries of spare[] set */
    unsigned node;          /* NUMA node its SuperSlabs come from */
    _Atomic bool attached;  /* belongs to a running thread; read by other
                               threads (heap_owner_gone in tiny.c) */
    tiny_heap_t *next_free; /* in the pool of heaps to reuse */
    tiny_heap_t *all_next;  /* every heap ever made (never unlinked) */
    /* Units this heap has cut into slabs since its thread took it, counted
     * up to TINY_HOME_UNITS_CUT, from which on (and once home_aged) its
     * new slabs come from SuperSlabs of its own (slab_owner in tiny.c).
     * Owner only. */
    uint32_t units_cut;
    bool owner_slot; /* holds an owner slot (tiny_take_owner_slot); owner only */
    bool home_aged;  /* home_after_ms has passed; owner only */
    /* Slabs cut since it last looked at the other heaps' slabs
     * (TINY_RECLAIM_EVERY_CUTS). Owner only. */
    uint16_t cuts_since_reclaim;
    /* The SuperSlab its last slab came from when that slab was cut under
     * its owner tag (slab_owner in tiny.c), else NULL; compared, never read
     * through (it may be gone). Its empty current slabs are kept there only
     * (slab_now_empty). Owner only. */
    const seg_superslab_t *home;
    /* When the heap asks as an owner from: TINY_HOME_AGE_MS after its first
     * slab cut past TINY_HOME_UNITS_CUT units while another thread had a
     * heap; 0 before that cut. Owner only. */
    uint64_t home_after_ms;
    tiny_slab_t *partial[TINY_CLASS_COUNT]; /* slabs that may have room, the current one too */
    tiny_slab_t *full[TINY_CLASS_COUNT];    /* slabs found without room */
    /* The SuperSlabs that hold every empty slab kept as a current slab
     * or a spare (slab_now_empty), most recently used first; NULL when
     * unused. */
    seg_superslab_t *kept_in[TINY_KEPT_SUPERSLABS];
    /* A slab of pages whose block came back, kept for the next request it
     * fits (sized.c); NULL when none. Owner only. */
    tiny_slab_t *sized_spare;
    /* By class: an empty slab off the lists, which the class's next new
     * slab will be (spare_wanted in tiny.c); NULL when none. Owner only. */
    tiny_slab_t *spare[TINY_CLASS_COUNT];
    /* Frees of other threads' blocks made by this thread, by the block's
     * node: written by this thread only, summed by hugeslab_stats(). A
     * shared counter here would be a cache line every thread fights over. */
    _Atomic uint64_t remote_frees_by_node[HS_MAX_NODES];
    /* Other threads' blocks this thread freed and has not yet handed to
     * their slabs (tiny_flush_remote_batch in tiny.c); owner only. */
    tiny_block_t *remote_batch[TINY_REMOTE_BATCH];
    unsigned remote_batched; /* entries in use */
    /* Set for good on a node's crowd heap, which no thread owns: the
     * threads that take blocks from it hold its busy flag as its owner
     * while they do (crowd_malloc in tiny.c). */
    bool crowd;
};
_Static_assert(offsetof(tiny_heap_t, direct) == 2 * HS_CACHE_LINE,
               "the shared line and an empty one before the owner's");
_Static_assert(offsetof(tiny_heap_t, spare) < 4096 &&
                   offsetof(tiny_heap_t, remote_frees_by_node) >= 4096,
               "a one-thread heap's writes on its first page");

extern tiny_heap_t tiny_empty_heap;
extern tiny_slab_t tiny_sentinel_slab;
extern __thread tiny_heap_t *tiny_heap_tls;
/* The block this thread's last new slab handed out first, when the slab was
 * cut from units never written since mapped: zero but for the free-list
 * words carve wrote (a tiny_block_t). calloc sets it to NULL, then finds
 * its block here when the block came from such a slab, and clears only
 * those words: the block's untouched pages stay out of memory (git log
 * -p's 524,256-byte table, sparsely used, was resident whole). */
extern __thread void *tiny_fresh_block;

HS_INLINE tiny_client_area_t *tiny_client_area(seg_superslab_t *ss)
{
    return (tiny_client_area_t *)seg_client_area(ss);
}

/* The remote word of s, a descriptor in a SuperSlab's client area (never
 * the sentinel): the line before it. */
HS_INLINE _Atomic uintptr_t *tiny_remote_word(const tiny_slab_t *s)
{
    HS_ASSERT(s != &tiny_sentinel_slab); /* no client area behind it */
    return (_Atomic uintptr_t *)((uintptr_t)s - offsetof(tiny_unit_meta_t, slab));
}

/* The slab descriptor for a pointer known to lie in a SuperSlab of slabs. */
HS_INLINE tiny_slab_t *tiny_slab_of(const void *p)
{
    uintptr_t units = (uintptr_t)p >> HS_UNIT_SHIFT;
    uintptr_t chunk = units >> (HS_SUPERSLAB_SHIFT - HS_UNIT_SHIFT);
    /* The SuperSlab as chunk << 21, from the chunk index free's registry
     * look-up has in a register already: left visible, GCC turns it back
     * into p & ~mask, on a copy of p (one instruction more a free). */
    __asm__("" : "+r"(chunk));
    seg_superslab_t *ss = (seg_superslab_t *)(chunk << HS_SUPERSLAB_SHIFT);
    return tiny_client_area(ss)->head[units & (HS_UNITS_PER_SUPERSLAB - 1)];
}

/* ---- slow paths (tiny.c; lone.c, trim.c) ----------------------------------- */
HS_COLD HS_NORETURN void tiny_report_corrupt_list(const tiny_block_t *block, unsigned block_size,
                                                  const char *list);
HS_COLD tiny_block_t *tiny_link_out_of_slab(const tiny_block_t *block, uintptr_t decoded,
                                            unsigned block_size);
HS_NOINLINE void *tiny_pop_last(tiny_slab_t *slab, tiny_block_t *block, uintptr_t decoded);
/* Start-up of tiny/ and, first, of the layers below it (seg_init). Safe to
 * call any number of times from any thread; a thread's first heap calls it. */
void tiny_init(void);
void *tiny_malloc_refill(tiny_heap_t *heap, unsigned cls, size_t size);
void tiny_free_slow(void *p, tiny_slab_t *slab);
void tiny_free_unusual(void *p, tiny_slab_t *slab);
HS_COLD HS_NORETURN void tiny_report_double_free(const void *p, const tiny_slab_t *slab);
void *tiny_malloc_aligned(size_t alignment, size_t size);
/* Bytes usable from p to the end of its block; aborts on an invalid pointer,
 * naming `what` (the call: realloc, malloc_usable_size). */
size_t tiny_usable_size(const void *p, const char *what);
/* realloc of p (a block of a SuperSlab of slabs, already validated) to
 * size (up to TINY_MAX_SIZE, more than it holds): true when the block could
 * grow where it is, the only block of a slab of the calling thread's whose
 * SuperSlab has free units right after it, which the slab then takes. */
bool tiny_grow_in_place(void *p, size_t size);
/* realloc of p, a block of a one-block slab of the calling thread's that
 * is alone in its SuperSlab, to `size` bytes above TINY_MAX_SIZE that fit
 * one chunk: the SuperSlab becomes a run holding the block where it was
 * (seg_lone_slab_claim in segment.h). Returns the block's new address, or
 * NULL, with p as it was, when p is no such block. */
void *tiny_lone_block_to_run(void *p, size_t size);
/* realloc copied p, a block of TINY_PASSING_MIN bytes or more in a
 * SuperSlab the small heap hinted huge when it grew (hinted_late),
 * to a new block and is about to free it: when p is the block of a
 * one-block slab of the calling thread's, the slab's pages but the block's
 * first may go back now (seg_small_heap_give_back). */
HS_COLD void tiny_lone_give_back(void *p);
void tiny_trim(void);
/* tiny's figures (relaxed reads: figures, not invariants). */
typedef struct tiny_stats_s {
    uint64_t remote_frees_by_node[HS_MAX_NODES]; /* frees of other threads' blocks, by the
                                                    block's node */
    uint64_t remote_frees;                       /* their sum */
    uint64_t bytes_in_slabs;                     /* SuperSlab bytes given to slabs */
    uint64_t threads_live;                       /* heaps attached to a running thread */
    uint64_t orphan_slabs;                       /* slabs of exited threads not yet adopted */
} tiny_stats_t;
void tiny_stats(tiny_stats_t *out);
void tiny_fork_prepare(void);
void tiny_fork_parent(void);
void tiny_fork_child(void);

/* ---- fast paths ------------------------------------------------------------ */

/* The block after `block` on a list of blocks of one slab (its free list or
 * remote-free stack), or NULL; reports a corrupted link. */
HS_INLINE tiny_block_t *tiny_next_in_slab(const tiny_slab_t *slab, const tiny_block_t *block)
{
    uintptr_t decoded = block->link ^ slab->free_key; /* next ^ block */
    if (HS_UNLIKELY(decoded >= HS_SUPERSLAB_SIZE))
        return tiny_link_out_of_slab(block, decoded, slab->block_size);
    return (tiny_block_t *)(decoded ^ (uintptr_t)block);
}

/* Pops `block`, the head of slab's free list. The list's last block, and a
 * corrupted link, go to tiny_pop_last: a tail call, so the fast path keeps
 * no registers across a call. */
HS_INLINE void *tiny_pop(tiny_slab_t *slab, tiny_block_t *block)
{
    uintptr_t decoded = block->link ^ slab->free_key; /* next ^ block */
    if (HS_UNLIKELY(decoded >= HS_SUPERSLAB_SIZE)) return tiny_pop_last(slab, block, decoded);
    tiny_block_t *next = (tiny_block_t *)(decoded ^ (uintptr_t)block);
    /* The next malloc of the class takes `next`: its line is asked for now
     * and comes in while the program works. A block another thread freed
     * comes back last written on that thread's core, and the load of its
     * link was 78 % of malloc's samples in bench_mt larson at 2 threads.
     * One instruction more a malloc. On x86-64 without -mprfchw this is
     * prefetcht0, a read: a real prefetchw here and before a remote free's
     * first load of its block gave larson with hand-offs nothing (70.9-72.3
     * against 71.2 M operations per second, vCPUs far apart). */
    __builtin_prefetch(next, 1);
    slab->free = next;
    slab->used++;
    block->free_mark = 0;
    return block;
}

/* size <= TINY_TABLE_MAX: no class lookup on the way to the slab. */
HS_INLINE void *tiny_malloc_small(size_t size)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *slab = heap->direct[(size + 15) >> 4];
    tiny_block_t *block = slab->free;
    if (HS_UNLIKELY(block == NULL)) return tiny_malloc_refill(heap, tiny_class_of(size), size);
    return tiny_pop(slab, block);
}

HS_INLINE void *tiny_malloc(size_t size)
{
    if (HS_LIKELY(size <= TINY_TABLE_MAX)) return tiny_malloc_small(size);
    tiny_heap_t *heap = tiny_heap_tls;
    unsigned cls = tiny_class_of(size);
    tiny_slab_t *slab = heap->current[cls];
    tiny_block_t *block = slab->free;
    if (HS_UNLIKELY(block == NULL)) return tiny_malloc_refill(heap, cls, size);
    return tiny_pop(slab, block);
}

/* Lowers s->used by one, for a free whose block is on s's free list by
 * now, and returns the new count. The fall comes after that store: another
 * thread that reads `used` under the heap's flag may take the slab once it
 * agrees with the remote-free count (all_blocks_remote in tiny.c), and the
 * free's stores must be done by then. x86-64 keeps stores in order, and the
 * fence keeps the compiler from swapping them (it did: the `sub` came
 * first). A release store says the same in C11's terms, which
 * ThreadSanitizer checks, so its build uses one; elsewhere it would be a
 * load, a `sub` and a store where one `sub` to memory does, two
 * instructions more per free. */
HS_INLINE uint32_t tiny_used_fall(tiny_slab_t *s)
{
#ifdef HS_TSAN
    uint32_t used = s->used - 1;
    __atomic_store_n(&s->used, used, __ATOMIC_RELEASE);
    return used;
#else
    atomic_signal_fence(memory_order_release);
    return --s->used;
#endif
}

/* p lies in a SuperSlab of slabs (the registry said so). Checks before any
 * write: p is the first byte of a block that was carved (else an aligned
 * block's inner pointer or an invalid free: tiny_free_unusual decides), the
 * block is not marked free (a double free), and the caller owns the slab
 * (else a remote free: tiny_free_slow). A slab on the owner's full list
 * takes its owner's frees here too; its biased `used` reaching 0 is what
 * sends it back to the partial list. */
HS_INLINE void tiny_free(void *p)
{
    tiny_slab_t *slab = tiny_slab_of(p);
    uint64_t key = tiny_block_key((uintptr_t)p - (uintptr_t)slab->start, slab->recip);
    if (HS_UNLIKELY(key >= atomic_load_explicit(&slab->key_limit, memory_order_relaxed))) {
        tiny_free_unusual(p, slab);
        return;
    }
    if (HS_UNLIKELY(atomic_load_explicit(&slab->owner_word, memory_order_relaxed) !=
                    (uintptr_t)tiny_heap_tls)) {
        tiny_free_slow(p, slab);
        return;
    }
    tiny_block_t *block = (tiny_block_t *)p;
    uintptr_t mark = (uintptr_t)block ^ slab->free_key;
    if (HS_UNLIKELY(block->free_mark == mark)) tiny_report_double_free(p, slab);
    block->free_mark = mark;
    block->link = (uintptr_t)slab->free ^ mark; /* tiny_link(block, slab->free, key) */
    slab->free = block;
    if (HS_UNLIKELY(tiny_used_fall(slab) == 0)) tiny_free_slow(NULL, slab);
}

/* realloc copied p, a block of a SuperSlab of slabs, to a new block of
 * `size` bytes: frees p. A block grown past TINY_MAX_SIZE (to a run now)
 * will not come back to the slabs, so the SuperSlab it grew through goes
 * back at once if that left it idle (seg_release_outgrown), not after the
 * purge delays. */
HS_INLINE void tiny_realloc_free(void *p, size_t size)
{
    tiny_free(p);
    if (size > TINY_MAX_SIZE) seg_release_outgrown(seg_superslab_of(p));
}

#endif

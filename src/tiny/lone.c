/* lone.c: blocks asked about one by one: malloc_usable_size, aligned
 * blocks and their inner pointers, and the slab of one block that realloc
 * grows in place or turns into a run.
 * - A slab with has_aligned set may be freed through an inner pointer;
 *   block_of accepts one only there, and only the one an aligned
 *   allocation handed out: the word before it holds its aligned_record
 *   while the block is in use (a free of another inner pointer of that
 *   slab, of any block, freed the whole block silently).
 * - A lone slab (lone_slab_of) is the calling thread's, of capacity 1, its
 *   block in use: no other thread frees into it, so it changes under the
 *   owner's busy flag alone. */
#include "tiny/tiny_internal.h"

/* The word tiny_malloc_aligned writes before the inner pointer it hands
 * out (in the block's padding, 16 bytes past its start at least), read
 * with the process's secret: no mark (address ^ key) and no link looks
 * like it. */
static inline uintptr_t aligned_record(const void *inner, const tiny_slab_t *s)
{
    return ~((uintptr_t)inner ^ s->free_key);
}

static inline uintptr_t *aligned_record_word(const void *inner)
{
    return (uintptr_t *)((uintptr_t)inner - sizeof(uintptr_t));
}

/* block_of's report of a p that may not be freed: the reason found again,
 * out of the text every process runs. */
HS_SELDOM HS_NOINLINE HS_NORETURN static void
report_not_a_block(const void *p, const tiny_slab_t *s, const char *what)
{
    if (s == &tiny_sentinel_slab)
        hs_fatal("%s of %p: hugeslab owns this SuperSlab but no slab is there", what, p);
    uintptr_t offset = (uintptr_t)p - (uintptr_t)s->start;
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    if ((uintptr_t)p < (uintptr_t)s->start || offset >= (uintptr_t)carved * s->block_size)
        hs_fatal("%s of %p: not inside any block of its %u-byte slab", what, p, s->block_size);
    uintptr_t block_start = (uintptr_t)s->start + offset / s->block_size * s->block_size;
    hs_fatal("%s of %p: points %zu bytes into a %u-byte block at %p", what, p,
             (size_t)((uintptr_t)p - block_start), s->block_size, (void *)block_start);
}

/* The start of the block holding p, after checking p may be freed. */
static tiny_block_t *block_of(const void *p, const tiny_slab_t *s, const char *what)
{
    uintptr_t offset = (uintptr_t)p - (uintptr_t)s->start;
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    if (s == &tiny_sentinel_slab || (uintptr_t)p < (uintptr_t)s->start ||
        offset >= (uintptr_t)carved * s->block_size)
        report_not_a_block(p, s, what);
    uintptr_t block_start = (uintptr_t)s->start + offset / s->block_size * s->block_size;
    if (block_start != (uintptr_t)p &&
        (!atomic_load_explicit(&s->has_aligned, memory_order_relaxed) ||
         (uintptr_t)p - block_start < 16 || ((uintptr_t)p & 15) != 0 ||
         *aligned_record_word(p) != aligned_record(p, s)))
        report_not_a_block(p, s, what);
    return (tiny_block_t *)block_start;
}

HS_NOINLINE void tiny_free_unusual(void *p, tiny_slab_t *s)
{
    tiny_block_t *b = block_of(p, s, "free");
    /* An aligned allocation's inner pointer: free the whole block, its
     * record gone first (a block of the slab handed out later may hold
     * anything there but that). */
    if ((void *)b != p) *aligned_record_word(p) = 0;
    tiny_free_slow(b, s);
}

size_t tiny_usable_size(const void *p, const char *what)
{
    tiny_slab_t *s = tiny_slab_of(p);
    tiny_block_t *b = block_of(p, s, what);
    if (b->free_mark == ((uintptr_t)b ^ s->free_key))
        hs_fatal("%s of %p after it was freed (%u-byte class)", what, p, s->block_size);
    return (size_t)((char *)b + s->block_size - (const char *)p);
}

/* The slab of one block, in use, that realloc grows, if the calling thread
 * owns it and p is its block; NULL otherwise. */
static tiny_slab_t *lone_slab_of(tiny_heap_t *heap, const void *p)
{
    tiny_slab_t *s = tiny_slab_of(p);
    if (heap == &tiny_empty_heap ||
        atomic_load_explicit(&s->owner_word, memory_order_relaxed) != (uintptr_t)heap ||
        s->capacity != 1 || (const char *)p != s->start ||
        atomic_load_explicit(&s->has_aligned, memory_order_relaxed))
        return NULL;
    return s;
}

/* Takes a lone_slab_of out of its class's lists, under the heap's flag
 * (a reclaiming thread may be taking another slab out of them): its one
 * block is in use, so no other thread frees into it and no FULL notice
 * can be pending. */
static void lone_slab_unlist(tiny_heap_t *heap, tiny_slab_t *s)
{
    unsigned cls = s->cls;
    if (s->on_full) {
        slab_list_remove(&heap->full[cls], s);
        s->on_full = false;
        atomic_store_explicit(tiny_remote_word(s), 0, memory_order_relaxed);
    } else {
        slab_list_remove(&heap->partial[cls], s);
        if (heap->current[cls] == s) heap_set_current(heap, cls, &tiny_sentinel_slab);
    }
}

/* A program that grows an array with realloc (ls -lR, its table of files:
 * 22 KiB, 44, 88, 176, 352) had every old copy left in the pages it
 * touched: a slab of one block grows into the free units after it instead,
 * as glibc's top chunk does, and the copy is saved too. */
bool tiny_grow_in_place(void *p, size_t size)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *s = lone_slab_of(heap, p);
    if (!s) return false;
    if (s->sized) return tiny_sized_grow(heap, s, size);
    seg_superslab_t *ss = seg_superslab_of(p);
    unsigned new_cls = tiny_class_of(size);
    size_t new_size = tiny_class_size[new_cls];
    size_t end = (size_t)(s->start - (char *)ss) + new_size;
    unsigned units = (unsigned)((end + HS_UNIT_SIZE - 1) / HS_UNIT_SIZE) - s->first_unit;
    if (units > s->units && !seg_units_extend(ss, s->first_unit + s->units, units - s->units))
        return false;
    uint32_t was = heap_enter(heap);
    lone_slab_unlist(heap, s);
    char *slab_end =
        (char *)ss + (size_t)(s->first_unit + (units > s->units ? units : s->units)) * HS_UNIT_SIZE;
    s->block_size = (uint32_t)new_size;
    s->cls = (uint8_t)new_cls;
    s->recip = tiny_block_recip(new_size);
    atomic_store_explicit(
        &s->key_limit,
        tiny_key_limit(atomic_load_explicit(&s->carved, memory_order_relaxed), s->recip, new_size),
        memory_order_relaxed);
    s->capacity = (uint32_t)((size_t)(slab_end - s->start) / new_size);
    if (units > s->units) {
        tiny_client_area_t *area = tiny_client_area(ss);
        for (unsigned u = s->first_unit + s->units; u < s->first_unit + units; u++)
            area->head[u] = s;
        hs_count_add(&tiny_state.stat_bytes_in_slabs, (int64_t)((units - s->units) * HS_UNIT_SIZE));
        s->units = (uint8_t)units;
    }
    tiny_note_passing(s, ss);
    slab_list_push(&heap->partial[new_cls], s);
    heap_leave(heap, was);
    TINY_VALIDATE(s);
    return true;
}

void *tiny_lone_block_to_run(void *p, size_t size)
{
    tiny_heap_t *heap = tiny_heap_tls;
    tiny_slab_t *s = lone_slab_of(heap, p);
    if (!s) return NULL;
    seg_superslab_t *ss = seg_superslab_of(p);
    if (!seg_lone_slab_claim(ss, s->first_unit, s->units)) return NULL;
    size_t bytes = s->block_size;
    uint32_t was = heap_enter(heap);
    lone_slab_unlist(heap, s);
    heap_leave(heap, was);
    hs_count_add(&tiny_state.stat_bytes_in_slabs,
                 -(int64_t)(s->sized ? s->block_size : s->units * HS_UNIT_SIZE));
    /* The slab's descriptor lies in the slab table, which the block's
     * bytes now overwrite: nothing reads it after this. */
    return seg_lone_slab_to_run(ss, p, bytes, size);
}

void tiny_lone_give_back(void *p)
{
    const tiny_slab_t *s = lone_slab_of(tiny_heap_tls, p);
    if (!s || s->sized) return;
    seg_superslab_t *ss = seg_superslab_of(p);
    /* free writes its links into the block's first bytes: that page stays. */
    char *from = (char *)p + sizeof(tiny_block_t);
    char *end = (char *)ss + (size_t)(s->first_unit + s->units) * HS_UNIT_SIZE;
    seg_small_heap_give_back(ss, from, (size_t)(end - from));
}

/* Over-allocates by the alignment inside one block and returns the aligned
 * inner pointer; the slab is marked so free() accepts inner pointers. */
void *tiny_malloc_aligned(size_t alignment, size_t size)
{
    /* A zero-byte request still gets a byte: the aligned pointer must lie
     * inside its block, not at the end, which is the next block's start. */
    if (size == 0) size = 1;
    size_t padded = size + alignment - 16; /* blocks are already 16-aligned */
    char *p = tiny_malloc(padded);
    if (!p) return NULL;
    tiny_slab_t *s = tiny_slab_of(p);
    char *aligned = (char *)hs_align_up((uintptr_t)p, alignment);
    if (aligned != p) {
        *aligned_record_word(aligned) = aligned_record(aligned, s);
        atomic_store_explicit(&s->has_aligned, 1, memory_order_relaxed);
    }
    return aligned;
}

/* validate.c: the invariants of a slab (written above tiny_slab_s in
 * tiny.h), which debug builds check through TINY_VALIDATE; release builds
 * compile nothing here. */
#include "tiny/tiny_internal.h"

#if defined(HS_DEBUG) && HS_DEBUG
/* Checks the invariants written above tiny_slab_s for a slab of the calling
 * thread's: every free-list block is a carved block of this slab, marked
 * free, listed once (the walk stops at capacity), and the list's length
 * agrees with `used`. */
void tiny_slab_validate(const tiny_slab_t *s)
{
    uint32_t carved = atomic_load_explicit(&s->carved, memory_order_relaxed);
    uint32_t used = s->used + s->full_bias;
    HS_ASSERT(carved <= s->capacity && used <= carved);
    HS_ASSERT(atomic_load_explicit(&s->key_limit, memory_order_relaxed) ==
              tiny_key_limit(carved, s->recip, s->block_size));
    HS_ASSERT(s->on_full ? s->used >= 1 : s->full_bias == 0);
    uint32_t listed = 0;
    for (const tiny_block_t *b = s->free; b; b = tiny_next_in_slab(s, b)) {
        uintptr_t offset = (uintptr_t)b - (uintptr_t)s->start;
        HS_ASSERT(offset % s->block_size == 0 && offset / s->block_size < carved);
        HS_ASSERT(b->free_mark == ((uintptr_t)b ^ s->free_key));
        HS_ASSERT(++listed <= carved);
    }
    HS_ASSERT(listed == carved - used);
}
#endif

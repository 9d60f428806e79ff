/* Helpers for the tests that look into tiny/'s slabs: those built with the
 * library's objects and src/ on the include path (internal_test,
 * orphan_test). */
#ifndef HS_SLAB_UTIL_H
#define HS_SLAB_UTIL_H

#include "test_util.h"
#include "tiny/tiny.h"

/* Moves up to `most` of blocks[0..n) that lie in slab s to out (NULL in
 * blocks from then on); returns how many. */
static HS_UNUSED unsigned hs_take_blocks_of(const tiny_slab_t *s, void **blocks, unsigned n,
                                            void **out, unsigned most)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < most; i++)
        if (blocks[i] && tiny_slab_of(blocks[i]) == s) {
            out[k++] = blocks[i];
            blocks[i] = NULL;
        }
    return k;
}

#endif /* HS_SLAB_UTIL_H */

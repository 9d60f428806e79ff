/* The arithmetic the fast paths rely on, checked exhaustively against plain
 * division: linked with the static archive and built against src/ headers.
 *   - tiny_class_of() gives the smallest class of tiny_class_size that
 *     holds the size, for every size up to 1 MiB;
 *   - tiny_block_index() gives offset / size and tells block starts from
 *     inner pointers for every class and every offset of a SuperSlab;
 *   - malloc of every size up to TINY_MAX_SIZE lands in a slab of the
 *     right class (the heap's direct table for sizes up to 1 KiB). */
#include "test_util.h"

#include "hugeslab.h"
#include "tiny/tiny.h"

static void check_classes(void)
{
    for (size_t size = 0; size <= TINY_MAX_SIZE; size++) {
        unsigned cls = tiny_class_of(size);
        size_t want_min = size == 0 ? 1 : size;
        if (cls >= TINY_CLASS_COUNT || tiny_class_size[cls] < want_min ||
            (cls > 0 && tiny_class_size[cls - 1] >= want_min)) {
            HS_FAIL("size %zu: class %u (%u bytes) is not the smallest that holds it", size, cls,
                    cls < TINY_CLASS_COUNT ? tiny_class_size[cls] : 0);
            return;
        }
    }
    hs_checks++;
}

static void check_block_index(void)
{
    for (unsigned cls = 0; cls < TINY_CLASS_COUNT; cls++) {
        uint64_t size = tiny_class_size[cls];
        uint64_t recip = tiny_block_recip(size);
        for (uint64_t offset = 0; offset < HS_SUPERSLAB_SIZE; offset++) {
            uint64_t index = tiny_block_index(offset, recip);
            uint64_t want = offset % size == 0 ? offset / size : UINT64_MAX;
            if (index != want) {
                HS_FAIL("class %u (%llu bytes), offset %llu: index %llu, want %llu", cls,
                        (unsigned long long)size, (unsigned long long)offset,
                        (unsigned long long)index, (unsigned long long)want);
                return;
            }
        }
        /* A pointer below the slab's start wraps to a huge offset. */
        for (uint64_t below = 1; below <= 4096; below++)
            if (tiny_block_index(-below, recip) < (1u << 16)) {
                HS_FAIL("class %u: a pointer %llu bytes before the start has index %llu", cls,
                        (unsigned long long)below,
                        (unsigned long long)tiny_block_index(-below, recip));
                return;
            }
    }
    hs_checks++;
}

static void check_malloc_classes(void)
{
    for (size_t size = 0; size <= TINY_MAX_SIZE; size += size < 4096 ? 1 : 509) {
        void *p = hugeslab_malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (!p) return;
        unsigned cls = tiny_class_of(size);
        const tiny_slab_t *slab = tiny_slab_of(p);
        if (slab->cls != cls) {
            HS_FAIL("malloc(%zu) came from a %u-byte slab, want %u", size, slab->block_size,
                    tiny_class_size[cls]);
            hugeslab_free(p);
            return;
        }
        hugeslab_free(p);
    }
    hs_checks++;
}

int main(void)
{
    check_classes();
    check_block_index();
    check_malloc_classes();
    return hs_finish("internal");
}

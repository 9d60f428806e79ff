/* The class sizes, and the index tiny_class_of() in tiny.h reads for sizes
 * of 513 bytes to 8 KiB; tests/internal_test.c checks tiny_class_of()
 * against tiny_class_size for every size up to 1 MiB. bench/README.md
 * ("Size classes") says how the spacing was chosen. */
#include "tiny/tiny.h"

/* Two rows of 16-byte steps, then one row per doubling: eighths of it, but
 * from 4 to 8 KiB 64 KiB / n rounded down to 16 for n = 15 .. 8, which
 * leaves at most 16 bytes per block of a 64 KiB slab unused. The rows from
 * 512 B, 1 KiB and 2 KiB start with one class more, for a power of two and
 * a header (Redis stores a 512-byte value as a 518-byte string): 528, 1040
 * and 2112, the largest multiples of 16 that fill 64 KiB with 124, 63 and
 * 31 blocks, where 576, 1152 and 2304 fit 113, 56 and 28. 4 KiB and a
 * header already has 4368 (15 blocks; 4112 would fit no more). */
/* clang-format off */
const uint32_t tiny_class_size[TINY_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
    272, 288, 304, 320, 336, 352, 368, 384, 400, 416, 432, 448, 464, 480, 496, 512,
    528, 576, 640, 704, 768, 832, 896, 960, 1024,
    1040, 1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048,
    2112, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
    4368, 4672, 5040, 5456, 5952, 6544, 7280, 8192,
    9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384,
    18432, 20480, 22528, 24576, 26624, 28672, 30720, 32768,
    36864, 40960, 45056, 49152, 53248, 57344, 61440, 65536,
    73728, 81920, 90112, 98304, 106496, 114688, 122880, 131072,
    147456, 163840, 180224, 196608, 212992, 229376, 245760, 262144,
    294912, 327680, 360448, 393216, 425984, 458752, 491520, 524288,
    589824, 655360, 720896, 786432, 851968, 917504, 983040, 1048576,
};
/* clang-format on */

/* Sizes (below, size] go to class cls: index (below - 512) / 16 on. */
/* clang-format off */
#define SPAN(below, size, cls) \
    [((below) - TINY_LINEAR_MAX) / 16 ... ((size) - TINY_LINEAR_MAX) / 16 - 1] = (cls)
/* A row of eight equal steps from `base`, its first class `cls` serving
 * sizes above `from` (base, or the header class that starts the row). */
#define ROW8(base, from, cls) \
    SPAN(from, base / 8 * 9, cls), SPAN(base / 8 * 9, base / 8 * 10, cls + 1), \
    SPAN(base / 8 * 10, base / 8 * 11, cls + 2), SPAN(base / 8 * 11, base / 8 * 12, cls + 3), \
    SPAN(base / 8 * 12, base / 8 * 13, cls + 4), SPAN(base / 8 * 13, base / 8 * 14, cls + 5), \
    SPAN(base / 8 * 14, base / 8 * 15, cls + 6), SPAN(base / 8 * 15, base * 2, cls + 7)

const uint8_t tiny_class_index[(TINY_INDEXED_MAX - TINY_LINEAR_MAX) / 16] = {
    SPAN(512, 528, 32), ROW8(512, 528, 33),
    SPAN(1024, 1040, 41), ROW8(1024, 1040, 42),
    SPAN(2048, 2112, 50), ROW8(2048, 2112, 51),
    SPAN(4096, 4368, 59), SPAN(4368, 4672, 60), SPAN(4672, 5040, 61), SPAN(5040, 5456, 62),
    SPAN(5456, 5952, 63), SPAN(5952, 6544, 64), SPAN(6544, 7280, 65), SPAN(7280, 8192, 66),
};
/* clang-format on */

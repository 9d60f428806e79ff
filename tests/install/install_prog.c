/* Built against an installed hugeslab with pkg-config (tests/install/run.sh):
 * checks that malloc is hugeslab's, through the public header and library. */
#include <hugeslab.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { COUNT = 1000 };
    static void *blocks[COUNT];
    for (int i = 0; i < COUNT; i++) {
        blocks[i] = malloc(48);
        if (!blocks[i]) {
            printf("FAIL: malloc returned NULL\n");
            return 1;
        }
        memset(blocks[i], i, 48);
    }
    hugeslab_stats_t s;
    hugeslab_stats(&s);
    /* malloc's blocks come from hugeslab's SuperSlabs only if its malloc is the
     * one the program calls, not glibc's. */
    if (s.superslabs_mapped == 0 || s.bytes_in_slabs == 0) {
        printf("FAIL: malloc is not hugeslab's (superslabs_mapped %llu, bytes_in_slabs %llu)\n",
               (unsigned long long)s.superslabs_mapped, (unsigned long long)s.bytes_in_slabs);
        return 1;
    }
    if (hugeslab_malloc_usable_size(blocks[0]) < 48) {
        printf("FAIL: hugeslab does not know malloc's block\n");
        return 1;
    }
    for (int i = 0; i < COUNT; i++) free(blocks[i]);
    printf("OK hugeslab %d.%d, %llu SuperSlab(s)\n", HUGESLAB_VERSION_MAJOR, HUGESLAB_VERSION_MINOR,
           (unsigned long long)s.superslabs_mapped);
    return 0;
}

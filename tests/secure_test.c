/* The program tests/secure.sh runs setuid root as another user: linked
 * with the library's archive (as a setuid program would be: LD_PRELOAD is
 * not honoured there), it allocates and frees through the library and
 * says whether it runs in secure-execution mode (AT_SECURE). The library
 * must read none of its environment then (src/os/process.c,
 * os_environment). */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include "hugeslab.h"

int main(void)
{
    for (int i = 0; i < 1000; i++) {
        char *p = hugeslab_malloc(100 + (size_t)i);
        if (!p) return 1;
        memset(p, 1, 100);
        hugeslab_free(p);
    }
    printf("secure %lu\n", getauxval(AT_SECURE));
    return 0;
}

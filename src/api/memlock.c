/* mlockall and munlockall, which the shared library defines for the
 * program: mlockall(MCL_CURRENT) faults in every readable page, and the
 * registry's 64 MiB of read-only zeroes would be made resident and locked
 * (segment.c, "mlockall"); segment/ gives the pages never written back
 * once the kernel has locked the rest. Nothing else changes: the flags go
 * to the kernel as given, and its answer comes back, errno included.
 * Shared library only, like compat.c: in a static link the registry is
 * .bss, writable from the start, and nothing of it could be told apart
 * as never written. Not versioned, like the malloc family
 * (src/hugeslab.map), so that a reference to mlockall@GLIBC_2.2.5 binds
 * here. */
#include <errno.h>

#include "common/common.h"
#include "segment/segment.h"

/* <sys/mman.h>'s, which only os/ includes (scripts/check-layers.py). */
int mlockall(int flags);
int munlockall(void);

HS_SELDOM HS_EXPORT int mlockall(int flags)
{
    int r = seg_lock_all(flags);
    if (r == 0) return 0;
    errno = -r;
    return -1;
}

HS_SELDOM HS_EXPORT int munlockall(void)
{
    int r = seg_unlock_all();
    if (r == 0) return 0;
    errno = -r;
    return -1;
}

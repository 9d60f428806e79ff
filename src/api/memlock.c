/* mlockall and munlockall, which the library defines for the
 * program: mlockall(MCL_CURRENT) faults in every readable page, and the
 * registry's 64 MiB of read-only zeroes would be made resident and locked
 * (segment.c, "mlockall"); segment/ gives the pages never written back
 * once the kernel has locked the rest. The flags go to the kernel as
 * given, and its answer comes back, errno included, but for one: the
 * ENOMEM of an unprivileged MCL_CURRENT whose address space passes
 * RLIMIT_MEMLOCK with the registry only, which segment/ answers as the
 * kernel would without it. In
 * the archive too, like prctl: a static link's registry is mapped
 * read-only before the lock (segment.c, registry_settle); with libc's
 * mlockall, a program linked with the archive locked its 64 MiB whole.
 * Not versioned, like the malloc family (src/hugeslab.map), so that a
 * reference to mlockall@GLIBC_2.2.5 binds here. */
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

/* prctl, which the library defines for the program so that it sees the
 * program turn THP off for itself: Redis does so under THP "always"
 * (PR_SET_THP_DISABLE), after its first allocations, and its SuperSlabs
 * then get base pages from the kernel however they are hinted. thp/ reads
 * the setting again, and the SuperSlabs mapped from then on are base pages
 * in the library's accounts too, whose free units go back after the purge
 * delay instead of waiting for a huge page to empty (units.c). Every call
 * goes to the kernel as made, its five words as glibc's own prctl passes
 * them, and its answer comes back, errno included. Not versioned, like
 * mlockall (memlock.c); in the archive too, where the setting a process
 * starts with is read at the first allocation all the same. */
#include <errno.h>
#include <stdarg.h>

#include "api/api.h"
#include "common/common.h"
#include "common/options.h"
#include "os/os.h"
#include "thp/thp.h"

/* <sys/prctl.h>'s, which only os/ includes (scripts/check-layers.py). */
int prctl(int option, ...);

HS_SELDOM HS_EXPORT int prctl(int option, ...)
{
    va_list args;
    va_start(args, option);
    unsigned long arg2 = va_arg(args, unsigned long), arg3 = va_arg(args, unsigned long);
    unsigned long arg4 = va_arg(args, unsigned long), arg5 = va_arg(args, unsigned long);
    va_end(args);
    long r = os_prctl(option, arg2, arg3, arg4, arg5);
    if (option != OS_PRCTL_SET_THP_DISABLE || r != 0) return (int)r;
    int saved_errno = errno;
    /* Started first, so that thp_init's own reading cannot come after. */
    hs_init();
    thp_process_setting_changed();
    bool off = thp_process_off();
    if (hs_option(HS_OPT_VERBOSE))
        hs_message("THP %s for this process (prctl PR_SET_THP_DISABLE): SuperSlabs mapped from "
                   "now on are %s",
                   off ? "off" : "on", off ? "base pages" : "huge pages where the THP mode allows");
    errno = saved_errno;
    return 0;
}

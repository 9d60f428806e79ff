/* What common declares for the whole process: the free key, and the
 * start-up of common itself. */
#include "common/common.h"
#include "os/os.h"

uintptr_t hs_free_key;

void hs_common_init(void)
{
    hs_options_load();
    hs_free_key = (uintptr_t)os_random_bits();
}

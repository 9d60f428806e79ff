/* api: the malloc family. Checks arguments, routes each size to tiny/ or to
 * segment/ runs, and sets errno. The entry points live in malloc.c so the
 * compiler can inline the tiny/ fast paths into them.
 * - Sizes up to TINY_MAX_SIZE (1 MiB) are tiny/ blocks; larger ones are runs.
 * - errno: ENOMEM for exhaustion and overflow, EINVAL for bad alignment;
 *   free() and the query functions leave errno unchanged.
 * - It assembles the public statistics (hugeslab_stats_t) from each module's
 *   own figures, and is the only user of include/hugeslab.h.
 * Never: be called from below; hold a lock. */
#ifndef HS_API_H
#define HS_API_H

/* Process start-up; safe to call any number of times from any thread. */
void hs_init(void);

#endif

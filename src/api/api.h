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

#include <stdbool.h>

#include "hugeslab.h"

/* Process start-up; safe to call any number of times from any thread. */
void hs_init(void);

/* Statistics reports (report.c). Start: after hs_init, outside any lock; it
 * keeps a copy of stderr for the exit report and, with
 * HUGESLAB_STATS_INTERVAL_MS, starts the live file. Exit: the report of
 * HUGESLAB_STATS=1. Fork child: the live file goes on in the child. */
/* One past the highest kernel node id the statistics have figures for
 * (hugeslab_stats_t's by-node arrays are indexed by kernel node id). */
unsigned hs_stats_node_limit(void);
/* hugeslab_stats, with the kernel's figures (smaps_rollup, and smaps for
 * the SuperSlabs' huge pages: milliseconds for a heap of a GiB) or
 * without them (0), as mallinfo asks, which some programs call often. */
void hs_stats_gather(hugeslab_stats_t *out, bool kernel_figures);
void hs_report_start(void);
void hs_report_exit(void);
void hs_report_fork_child(void);

#endif

/* Purging many SuperSlabs at once: one io_uring submission of
 * IORING_OP_MADVISE requests, or one madvise call per range.
 * io_uring batches the submission only: the kernel punts each madvise to an
 * io-wq worker, so the work itself is the same. It is optional (built when
 * liburing is present, chosen with HUGESLAB_PURGE_BACKEND=uring), and the
 * plain path always works: io_uring can be refused by
 * kernel.io_uring_disabled or by a seccomp filter. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "os/fault.h"
#include "os/os.h"

#if defined(HS_HAVE_URING) && HS_HAVE_URING
#include <liburing.h>

/* The ring, used by the purge thread alone, so no lock. */
static struct uring_state_s {
    struct io_uring ring; /* set up by the first os_uring_setup */
    int state;            /* 0 untried, 1 ready, else -errno of the refusal */
} uring;
#define RING_ENTRIES 64

HS_SELDOM int os_uring_setup(void)
{
    if (uring.state == 0) {
        int rc =
            OS_FAULT(OS_FAULT_URING) ? -ENOMEM : io_uring_queue_init(RING_ENTRIES, &uring.ring, 0);
        /* A fork's child gets no copy of the ring's shared mappings (see
         * os_uring_fork_child); if the kernel refuses that, it has them
         * and never uses them. */
        if (rc == 0) (void)io_uring_ring_dontfork(&uring.ring);
        uring.state = rc == 0 ? 1 : rc;
    }
    return uring.state == 1 ? 0 : uring.state;
}

/* The ring's head and tail lie in memory the kernel shares with every
 * process that maps it: a child that submitted on its parent's ring moved
 * the head past the parent's tail, after which the parent's submissions
 * found no entry and its purges did nothing (a parent that had filled and
 * freed 64 MiB held 67,480 KiB after its purge, 10,140 with this). The
 * child closes its copy of the ring's descriptor and sets up its own at
 * its first purge. */
HS_APART void os_uring_fork_child(void)
{
    if (uring.state == 1) (void)close(uring.ring.ring_fd);
    memset(&uring, 0, sizeof uring);
}

/* Submits up to RING_ENTRIES ranges and waits for them; returns failures. */
HS_SELDOM static int uring_round(const os_range_t *ranges, unsigned count, int advice)
{
    unsigned queued = 0;
    for (; queued < count; queued++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&uring.ring);
        if (!sqe) break;
        io_uring_prep_madvise(sqe, ranges[queued].addr, (off_t)ranges[queued].size, advice);
        io_uring_sqe_set_data(sqe, (void *)&ranges[queued]);
    }
    int failed = 0;
    if (io_uring_submit_and_wait(&uring.ring, queued) < 0) return (int)queued;
    for (unsigned done = 0; done < queued; done++) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&uring.ring, &cqe) != 0) return failed + (int)(queued - done);
        if (cqe->res < 0) {
            const os_range_t *r = io_uring_cqe_get_data(cqe);
            /* MADV_FREE refused: the plain path knows the fallback. */
            if (os_purge(r->addr, r->size, advice == MADV_DONTNEED) != 0) failed++;
        }
        io_uring_cqe_seen(&uring.ring, cqe);
    }
    return failed;
}
#else
HS_SELDOM int os_uring_setup(void) { return -ENOSYS; }
HS_APART void os_uring_fork_child(void) {}
#endif

/* One madvise call per range. */
static int purge_each(const os_range_t *ranges, unsigned count, bool dontneed)
{
    int failed = 0;
    for (unsigned i = 0; i < count; i++)
        if (os_purge(ranges[i].addr, ranges[i].size, dontneed) != 0) failed++;
    return failed;
}

#if defined(HS_HAVE_URING) && HS_HAVE_URING
/* Seldom: only HUGESLAB_PURGE_BACKEND=uring comes here. */
HS_SELDOM HS_NOINLINE static int purge_by_uring(const os_range_t *ranges, unsigned count,
                                                bool dontneed)
{
    if (os_uring_setup() != 0) return purge_each(ranges, count, dontneed);
    int advice = dontneed ? MADV_DONTNEED : MADV_FREE, failed = 0;
    for (unsigned i = 0; i < count; i += RING_ENTRIES) {
        unsigned n = count - i < RING_ENTRIES ? count - i : RING_ENTRIES;
        failed += uring_round(ranges + i, n, advice);
    }
    return failed;
}
#endif

/* Not HS_SELDOM, but for the io_uring path: every purge pass that advises a
 * SuperSlab comes here, and with it in the seldom text a program that freed
 * a few MiB kept that text's 64 KiB window in its RSS (52 KiB). */
int os_purge_batch(const os_range_t *ranges, unsigned count, bool dontneed, bool use_uring)
{
    hs_assert_no_lock_for_slow_call("madvise");
#if defined(HS_HAVE_URING) && HS_HAVE_URING
    if (use_uring) return purge_by_uring(ranges, count, dontneed);
#else
    (void)use_uring;
#endif
    return purge_each(ranges, count, dontneed);
}

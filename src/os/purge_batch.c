/* Purging many SuperSlabs at once: one io_uring submission of
 * IORING_OP_MADVISE requests, or one madvise call per range.
 * io_uring batches the submission only: the kernel punts each madvise to an
 * io-wq worker, so the work itself is the same. It is optional (built when
 * the kernel's io_uring header is present, chosen with
 * HUGESLAB_PURGE_BACKEND=uring), and the
 * plain path always works: io_uring can be refused by
 * kernel.io_uring_disabled or by a seccomp filter. */
#include <errno.h>
#include <sys/mman.h>

#include "common/common.h"
#include "os/fault.h"
#include "os/os.h"

#if defined(HS_HAVE_URING) && HS_HAVE_URING
#include <linux/io_uring.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The ring, used by the purge thread alone, so no lock. Set up with the
 * system calls themselves rather than liburing: the library was linked into
 * every program that loaded hugeslab (24 KiB resident and one more object
 * for the loader), for a backend that is off by default. */
static struct uring_state_s {
    int fd;                    /* the ring's descriptor */
    int state;                 /* 0 untried, 1 ready, else -errno of the refusal */
    unsigned *sq_tail;         /* submission ring: the kernel reads up to here */
    unsigned sq_mask;          /* its entries - 1 */
    unsigned *sq_array;        /* slot of each submission ring entry */
    struct io_uring_sqe *sqes; /* the submission entries */
    unsigned *cq_head;         /* completion ring: read up to here */
    const unsigned *cq_tail;   /* the kernel writes up to here */
    unsigned cq_mask;          /* its entries - 1 */
    struct io_uring_cqe *cqes; /* the completion entries */
} uring = {.fd = -1};
#define RING_ENTRIES 64

static void *ring_map(int fd, size_t size, off_t offset)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}

/* io_uring_setup(2) and the three shared areas (two on kernels that map
 * both rings at once, IORING_FEAT_SINGLE_MMAP); 0 or -errno. */
static int ring_create(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0) return -errno;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cq_size > sq_size) sq_size = cq_size;
    char *sq = ring_map(fd, sq_size, IORING_OFF_SQ_RING);
    char *cq = single ? sq : ring_map(fd, cq_size, IORING_OFF_CQ_RING);
    void *sqes = ring_map(fd, p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);
    if (!sq || !cq || !sqes) {
        int rc = -errno;
        if (sqes) munmap(sqes, p.sq_entries * sizeof(struct io_uring_sqe));
        if (cq && cq != sq) munmap(cq, cq_size);
        if (sq) munmap(sq, sq_size);
        close(fd);
        return rc;
    }
    uring.fd = fd;
    uring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    uring.sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    uring.sq_array = (unsigned *)(sq + p.sq_off.array);
    uring.sqes = sqes;
    uring.cq_head = (unsigned *)(cq + p.cq_off.head);
    uring.cq_tail = (const unsigned *)(cq + p.cq_off.tail);
    uring.cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    uring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

int os_uring_setup(void)
{
    if (uring.state == 0) {
        int rc = OS_FAULT(OS_FAULT_URING) ? -ENOMEM : ring_create();
        uring.state = rc == 0 ? 1 : rc;
    }
    return uring.state == 1 ? 0 : uring.state;
}

/* Submits up to RING_ENTRIES ranges and waits for them; returns failures.
 * The kernel reads the submission tail and writes the completion tail from
 * other threads (io-wq workers): those are acquire and release accesses. */
static int uring_round(const os_range_t *ranges, unsigned count, int advice)
{
    unsigned tail = *uring.sq_tail;
    for (unsigned i = 0; i < count; i++, tail++) {
        unsigned slot = tail & uring.sq_mask;
        struct io_uring_sqe *sqe = &uring.sqes[slot];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_MADVISE;
        sqe->fd = -1;
        sqe->addr = (uint64_t)(uintptr_t)ranges[i].addr;
        sqe->len = (uint32_t)ranges[i].size;
        sqe->fadvise_advice = (uint32_t)advice;
        sqe->user_data = i;
        uring.sq_array[slot] = slot;
    }
    __atomic_store_n(uring.sq_tail, tail, __ATOMIC_RELEASE);
    unsigned submit = count, done = 0;
    int failed = 0;
    while (done < count) {
        long rc = syscall(__NR_io_uring_enter, uring.fd, submit, count - done,
                          IORING_ENTER_GETEVENTS, NULL, 0);
        if (rc < 0 && errno != EINTR) {
            /* Entries may be left in the ring: it is not used again. */
            uring.state = -errno;
            return failed + (int)(count - done);
        }
        if (rc > 0) submit -= (unsigned)rc < submit ? (unsigned)rc : submit;
        unsigned head = *uring.cq_head;
        unsigned ready = __atomic_load_n(uring.cq_tail, __ATOMIC_ACQUIRE);
        for (; head != ready; head++, done++) {
            const struct io_uring_cqe *cqe = &uring.cqes[head & uring.cq_mask];
            if (cqe->res < 0 && cqe->user_data < count) {
                const os_range_t *r = &ranges[cqe->user_data];
                /* MADV_FREE refused: the plain path knows the fallback. */
                if (os_purge(r->addr, r->size, advice == MADV_DONTNEED) != 0) failed++;
            }
        }
        __atomic_store_n(uring.cq_head, head, __ATOMIC_RELEASE);
    }
    return failed;
}
#else
int os_uring_setup(void) { return -ENOSYS; }
#endif

int os_purge_batch(const os_range_t *ranges, unsigned count, bool dontneed, bool use_uring)
{
    int failed = 0;
#if defined(HS_HAVE_URING) && HS_HAVE_URING
    if (use_uring && os_uring_setup() == 0) {
        int advice = dontneed ? MADV_DONTNEED : MADV_FREE;
        for (unsigned i = 0; i < count; i += RING_ENTRIES) {
            unsigned n = count - i < RING_ENTRIES ? count - i : RING_ENTRIES;
            failed += uring_round(ranges + i, n, advice);
        }
        return failed;
    }
#else
    (void)use_uring;
#endif
    for (unsigned i = 0; i < count; i++)
        if (os_purge(ranges[i].addr, ranges[i].size, dontneed) != 0) failed++;
    return failed;
}

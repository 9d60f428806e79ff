/* peak_trace.h: a process's peak RSS, exactly, where VmHWM is not.
 *
 * Since Linux 6.2 a process's page counts are per-CPU counters that fold
 * into a shared total 32 pages at a time (the percpu_counter batch, 2 per
 * CPU on larger machines). /proc/PID/status sums them for VmRSS, which is
 * exact (it agrees with smaps_rollup's page walk), but the high-water mark
 * behind VmHWM is raised from the shared total alone, at each release of
 * memory (munmap, madvise, brk, ...), just before the release: a peak that
 * a release ends is recorded short of the pages the per-CPU parts held, up
 * to 31 per CPU for anonymous and file pages each. On the development
 * machine (2 vCPUs, Linux 6.18) a program that touches pages and unmaps them
 * read its VmHWM 16-212 KiB below the VmRSS it read just before the munmap,
 * and `python3 -c pass` 4-344 KiB below its true peak.
 *
 * Without memory pressure RSS falls only where the process releases memory,
 * so its peak is its largest VmRSS at the entry of a system call that may
 * release memory, or at its exit. A seccomp filter makes each such call of
 * the process (and of whatever it starts: threads, children, programs it
 * runs) wait for the tracer, a user-space notification (SECCOMP_RET_USER_NOTIF,
 * Linux 5.5): the tracer reads the process's VmRSS and lets the call go on
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE). Nothing else waits: threads start and
 * other calls run as untraced (a ptrace tracer would hold each new thread
 * until it let it go), and madvise waits only with the advice that discards
 * pages, not with the hints allocators give as they map. A release waits a
 * few microseconds more, which moves a program's timing where it releases
 * often (bench_memory churn: its threads' 80,000 stacks). What the kernel
 * takes back on its own under memory pressure (reclaim of MADV_FREE pages,
 * the split of underused huge pages) is not seen.
 *
 * After fork the child calls peak_trace_child() before its exec or its
 * work, the parent peak_trace_run(), which returns once the child and all
 * it started are gone. A traced process learns the peak so far from
 * peak_trace_mark() (bench_memory: the end of its measured window).
 * Include it as bench_common.h, after defining BENCH_PROG. */
#ifndef PEAK_TRACE_H
#define PEAK_TRACE_H

#include "bench_common.h" /* read_proc_text, proc_field */

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define PEAK_TRACE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PEAK_TRACE_ARCH AUDIT_ARCH_AARCH64
#endif

/* peak_trace_mark's call: a madvise of no bytes with an advice no kernel
 * knows, which the tracer answers with the peak (untraced: EINVAL). */
#define PEAK_TRACE_MARK_ADVICE 0x5e5e7a11

/* Sends fd over the socket sock; 0 or -1. */
static inline int peak_trace_send_fd(int sock, int fd)
{
    char byte = 0, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    memset(control, 0, sizeof control);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

/* The fd peak_trace_send_fd sent over sock; -1 if none came. */
static inline int peak_trace_recv_fd(int sock)
{
    char byte, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    if (recvmsg(sock, &msg, 0) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* In the child, after fork, with its end of a socketpair: installs the
 * filter and hands its listener to the parent. Returns 0, or -1 with
 * errno set (no seccomp notifications here): the child must not go on to
 * its work then, which the parent would not see. */
static inline int peak_trace_child(int sock)
{
#ifndef PEAK_TRACE_ARCH
    (void)sock;
    errno = ENOSYS;
    return -1;
#else
    /* The calls that unmap or shrink memory, the two that end an image (the
     * old one's pages go) and the process's exit; madvise only with the
     * advice that takes pages away at once: its hints (MADV_HUGEPAGE, ...,
     * which allocators give as they map) would make threads wait for
     * nothing, and MADV_FREE's pages stay in RSS until the kernel needs
     * them. MADV_COLD counts: over part of a huge page it splits it, and
     * since Linux 6.12 the split maps the subpages of zeros to the zero
     * page, out of RSS, with no raise of the high-water mark first (a
     * bzip2 whose huge page the library split so read 8,076 KiB, where
     * VmRSS polled every half millisecond had reached 10,104). A call of
     * another architecture's numbering passes. */
    static const unsigned calls[] = {
        SYS_munmap,          SYS_brk,      SYS_mremap,     SYS_shmdt,
        SYS_execve,          SYS_execveat, SYS_exit_group,
#ifdef SYS_io_uring_enter
        SYS_io_uring_enter, /* an IORING_OP_MADVISE's pages go in it */
#endif
#ifdef SYS_process_madvise
        SYS_process_madvise,
#endif
    };
    static const unsigned advice[] = {
        4 /* MADV_DONTNEED */, 9 /* MADV_REMOVE */,           20 /* MADV_COLD */,
        21 /* MADV_PAGEOUT */, 24 /* MADV_DONTNEED_LOCKED */, PEAK_TRACE_MARK_ADVICE};
    enum { N = sizeof calls / sizeof calls[0], A = sizeof advice / sizeof advice[0] };
    /* 0 the arch, 1 its test, 2 ALLOW, 3 the call's number, then its tests
     * against calls[] (to NOTIFY) and against madvise (else to ALLOW), the
     * advice and its tests (to NOTIFY), ALLOW, NOTIFY. A jump's offset
     * counts from the instruction after it, forward only. */
    struct sock_filter filter[8 + N + A];
    const unsigned allow = 6 + N + A, notify = allow + 1;
    unsigned k = 0;
    filter[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PEAK_TRACE_ARCH, 1, 0);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < N; i++, k++)
        filter[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, calls[i],
                                                 (unsigned char)(notify - k - 1), 0);
    filter[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0,
                                             (unsigned char)(allow - k - 1));
    k++;
    /* The advice's low 32 bits: the kernel reads it as an int. */
    filter[k++] = (struct sock_filter)BPF_STMT(
        BPF_LD | BPF_W | BPF_ABS,
        offsetof(struct seccomp_data, args[2]) + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0));
    for (unsigned i = 0; i < A; i++, k++)
        filter[k] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, advice[i],
                                                 (unsigned char)(notify - k - 1), 0);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    struct sock_fprog prog = {(unsigned short)k, filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    int listener =
        (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) return -1;
    /* From here each trapped call waits for the parent: none lies between. */
    int sent = peak_trace_send_fd(sock, listener);
    close(listener);
    close(sock);
    return sent;
#endif
}

/* In a traced process: its peak so far in KiB (the moment of this call
 * left out: it may fault in code the measured moment did not hold, which
 * the caller reads from /proc on its own); -1 if not traced. */
static inline long peak_trace_mark(void)
{
    long peak = syscall(SYS_madvise, (void *)0, (size_t)0, (long)PEAK_TRACE_MARK_ADVICE);
    return peak >= 0 ? peak : -1;
}

/* A field of /proc/TID/status ("VmRSS") in KiB, and in *tgid the process
 * the thread belongs to; -1 if it is gone. */
static inline long peak_trace_field(pid_t tid, const char *name, pid_t *tgid)
{
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    if (read_proc_text(path, text, sizeof text) == 0) return -1;
    *tgid = (pid_t)proc_field(text, "Tgid");
    return proc_field(text, name);
}

typedef struct peak_trace_s {
    long peak_kb;        /* the most VmRSS of the child's process seen: its peak */
    long largest_kb;     /* the most VmRSS of any process under the filter (the
                            child, or a process it started): the largest's peak */
    long exit_hwm_kb;    /* VmHWM as the child's process began to exit; -1 if not read */
    unsigned long stops; /* release calls of the child's process waited on */
} peak_trace_t;

/* In the parent, with its end of the socketpair: serves the child's
 * trapped calls until it and all it started are gone, then returns the
 * child's wait status (-1 if it could not be traced: its filter never
 * came), with *out filled. */
static inline int peak_trace_run(pid_t child, int sock, peak_trace_t *out)
{
    *out = (peak_trace_t){0, 0, -1, 0};
    int listener = peak_trace_recv_fd(sock);
    close(sock);
    int status = -1;
    if (listener < 0) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        return -1;
    }
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    bool child_gone = false;
    for (;;) {
        /* POLLHUP once no task is left under the filter (Linux 5.10); before
         * that kernel, the end is the child's exit and a quiet moment. */
        struct pollfd p = {listener, POLLIN, 0};
        int ready = poll(&p, 1, 200);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (ready == 0) {
            if (child_gone) break;
            child_gone = waitpid(child, &status, WNOHANG) == child;
            continue;
        }
        if (!(p.revents & POLLIN)) break;
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
            if (errno == EINTR || errno == ENOENT) continue; /* the caller died meanwhile */
            break;
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        pid_t tid = (pid_t)req.pid;
        if (req.data.nr == SYS_madvise && req.data.args[0] == 0 && req.data.args[1] == 0 &&
            (uint32_t)req.data.args[2] == PEAK_TRACE_MARK_ADVICE) {
            resp.val = out->peak_kb; /* the mark: answered, not run */
        } else {
            pid_t tgid = 0;
            long rss = peak_trace_field(tid, "VmRSS", &tgid);
            if (rss > out->largest_kb) out->largest_kb = rss;
            if (rss >= 0 && tgid == child) {
                if (rss > out->peak_kb) out->peak_kb = rss;
                out->stops++;
                if (req.data.nr == SYS_exit_group)
                    out->exit_hwm_kb = peak_trace_field(tid, "VmHWM", &tgid);
            }
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        }
        /* ENOENT: the caller died before the answer; nothing waits. */
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    close(listener);
    if (!child_gone)
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    return status;
}

#endif

/* The process and its threads: NUMA system calls, clocks, randomness, page
 * fault counts, the page size, and starting hugeslab's own thread. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/common.h"
#include "os/fault.h"
#include "os/os.h"

#ifndef SYS_set_mempolicy_home_node
#define SYS_set_mempolicy_home_node 450 /* x86-64, Linux 5.17 */
#endif

int os_get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode, unsigned long flags)
{
    if (OS_FAULT(OS_FAULT_MBIND)) return -ENOMEM;
    long r = syscall(SYS_get_mempolicy, mode, mask, maxnode, (void *)0, flags);
    return r == 0 ? 0 : -errno;
}

int os_mbind(void *addr, size_t len, int mode, const unsigned long *mask, unsigned long maxnode)
{
    if (OS_FAULT(OS_FAULT_MBIND)) return -ENOMEM;
    long r = syscall(SYS_mbind, addr, len, (unsigned long)mode, mask, maxnode, 0UL);
    return r == 0 ? 0 : -errno;
}

int os_set_home_node(void *addr, size_t len, unsigned home)
{
    if (OS_FAULT(OS_FAULT_MBIND)) return -ENOMEM;
    long r = syscall(SYS_set_mempolicy_home_node, (unsigned long)addr, (unsigned long)len,
                     (unsigned long)home, 0UL);
    return r == 0 ? 0 : -errno;
}

unsigned os_current_kernel_node(void)
{
    unsigned cpu = 0, node = 0;
    if (getcpu(&cpu, &node) != 0) return 0;
    return node;
}

uint64_t os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void os_deadline_after(uint64_t ms, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

unsigned long os_random_bits(void)
{
    unsigned long v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v && v) return v;
    /* Weaker, still per process: the stack address and the cycle counter. */
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    v = ((unsigned long)hi << 32 | lo) ^ (unsigned long)(uintptr_t)&v;
    v ^= v >> 29;
    v *= 0xbf58476d1ce4e5b9UL;
    return v | 1;
}

long long os_page_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long long)ru.ru_minflt + ru.ru_majflt;
}

long long os_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec;
}

char **os_environment(void) { return environ; }

void os_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void os_yield(void) { sched_yield(); }

ssize_t os_copy_own(void *dest, const void *src, size_t len)
{
    if (OS_FAULT(OS_FAULT_PIPE)) return -EMFILE;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    size_t done = 0;
    while (done < len) {
        /* The default pipe holds 64 KiB: a write of more would wait for a
         * reader that is this thread. */
        size_t chunk = len - done < 65536 ? len - done : 65536;
        ssize_t n = write(fds[1], (const char *)src + done, chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EFAULT: unreadable from here on */
        for (ssize_t got = 0; got < n;) {
            ssize_t r = read(fds[0], (char *)dest + done + got, (size_t)(n - got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                n = got; /* cannot happen with both ends open; stop short */
                break;
            }
            got += r;
        }
        done += (size_t)n;
        if ((size_t)n < chunk) break;
    }
    close(fds[0]);
    close(fds[1]);
    return (ssize_t)done;
}

int os_pipe(int fds[2])
{
    if (OS_FAULT(OS_FAULT_PIPE)) return -EMFILE;
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

bool os_wait_hangup(int fd, unsigned ms)
{
    uint64_t deadline = os_now_ms() + ms;
    for (;;) {
        uint64_t now = os_now_ms();
        if (now >= deadline) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        char byte;
        ssize_t got = read(fd, &byte, 1);
        if (got == 0) return true;
        if (got < 0 && errno != EINTR && errno != EAGAIN) return false;
    }
}

int os_pid(void) { return (int)getpid(); }

size_t os_page_size(void)
{
    /* Any thread may be first: each stores the same value, atomically. */
    static _Atomic size_t cached;
    size_t size = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!size) {
        size = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&cached, size, memory_order_relaxed);
    }
    return size;
}

int os_thread_start(void *(*fn)(void *), void *arg, size_t stack_size)
{
    if (OS_FAULT(OS_FAULT_THREAD)) return EAGAIN;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    pthread_attr_t tattr;
    pthread_attr_init(&tattr);
    pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&tattr, stack_size);
    int saved_errno = errno;
    int rc = pthread_create(&thread, &tattr, fn, arg);
    errno = saved_errno;
    pthread_attr_destroy(&tattr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

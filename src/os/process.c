/* The process and its threads: NUMA system calls, clocks, randomness, page
 * fault counts, the page size, and starting hugeslab's own thread. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/auxv.h>
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
    hs_assert_no_lock_for_slow_call("mbind");
    if (OS_FAULT(OS_FAULT_MBIND)) return -ENOMEM;
    long r = syscall(SYS_mbind, addr, len, (unsigned long)mode, mask, maxnode, 0UL);
    return r == 0 ? 0 : -errno;
}

int os_set_home_node(void *addr, size_t len, unsigned home)
{
    hs_assert_no_lock_for_slow_call("set_mempolicy_home_node");
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

HS_APART_LATE bool os_is_main_thread(void) { return syscall(SYS_gettid) == getpid(); }

HS_APART_LATE unsigned os_cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- clocks ---------------------------------------------------------------- */

/* The clocks are read through the vDSO's clock_gettime, called directly.
 * libc's clock_gettime is a function of its own, on a page of libc's text
 * that a program which never reads a clock (sort -R) does not otherwise
 * touch, and the kernel maps up to 16 pages around it (fault-around): the
 * first slab's time stamp cost such a program 64 KiB of RSS. getauxval,
 * which finds the vDSO, lies among the functions every process runs. */
typedef int (*vdso_clock_fn)(clockid_t clock, struct timespec *ts);

/* strcmp's answer without libc's strcmp (a page of its own, as above). */
static bool same_name(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* The vDSO's symbol `name`, or NULL (no vDSO, no DT_HASH, not found). */
static void *vdso_symbol(const char *name)
{
    const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    if (!base) return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)base;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(const void *)(base + eh->e_phoff);
    const Elf64_Dyn *dyn = NULL;
    uintptr_t bias = 0;
    bool have_load = false;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_load) {
            bias = (uintptr_t)base + ph[i].p_offset - ph[i].p_vaddr;
            have_load = true;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const Elf64_Dyn *)(const void *)(base + ph[i].p_offset);
        }
    }
    if (!dyn || !have_load) return NULL;
    const Elf64_Sym *syms = NULL;
    const char *strs = NULL;
    const Elf64_Word *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB) syms = (const Elf64_Sym *)(bias + dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_STRTAB) strs = (const char *)(bias + dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_HASH) hash = (const Elf64_Word *)(bias + dyn->d_un.d_ptr);
    }
    if (!syms || !strs || !hash) return NULL;
    /* DT_HASH's second word is the number of symbols. */
    for (Elf64_Word i = 0; i < hash[1]; i++) {
        if (ELF64_ST_TYPE(syms[i].st_info) != STT_FUNC || syms[i].st_shndx == SHN_UNDEF) continue;
        if (same_name(strs + syms[i].st_name, name)) return (void *)(bias + syms[i].st_value);
    }
    return NULL;
}

/* NULL until looked up; libc's clock_gettime where the vDSO has none. */
HS_START_STATE static _Atomic(vdso_clock_fn) clock_fn;

static int read_clock(clockid_t clock, struct timespec *ts)
{
    vdso_clock_fn fn = atomic_load_explicit(&clock_fn, memory_order_relaxed);
    if (HS_UNLIKELY(!fn)) {
        /* Threads that race here find the same function. */
        fn = (vdso_clock_fn)vdso_symbol("__vdso_clock_gettime");
        if (!fn) fn = clock_gettime;
        atomic_store_explicit(&clock_fn, fn, memory_order_relaxed);
    }
    return fn(clock, ts);
}

uint64_t os_now_ms(void)
{
    struct timespec ts;
    read_clock(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void os_deadline_after(uint64_t ms, struct timespec *out)
{
    read_clock(CLOCK_MONOTONIC, out);
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
    read_clock(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec;
}

/* A setuid or setgid program, or one with file capabilities (AT_SECURE),
 * runs with an environment its caller chose: none of it is read, as glibc
 * reads no MALLOC_ variable there. Read, HUGESLAB_STATS_FILE let any user
 * overwrite a file of root's with a report, and HUGESLAB_CONFIG printed
 * the lines of one that only root may read. */
char **os_environment(void) { return getauxval(AT_SECURE) ? NULL : environ; }

void os_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void os_yield(void) { sched_yield(); }

HS_SELDOM long os_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
                        unsigned long arg5)
{
    return syscall(SYS_prctl, option, arg2, arg3, arg4, arg5);
}

HS_SELDOM ssize_t os_copy_own(void *dest, const void *src, size_t len)
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

HS_SELDOM bool os_wait_hangup(int fd, unsigned ms)
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
    HS_START_STATE static _Atomic size_t cached;
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
    if (stack_size) pthread_attr_setstacksize(&tattr, stack_size);
    int saved_errno = errno;
    int rc = pthread_create(&thread, &tattr, fn, arg);
    errno = saved_errno;
    pthread_attr_destroy(&tattr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

HS_APART_LATE static void *exit_with(void *status) { exit((int)(intptr_t)status); }

HS_APART_LATE bool os_exit_on_new_thread(int status)
{
    return os_thread_start(exit_with, (void *)(intptr_t)status, 0) == 0;
}

void os_thread_park(void)
{
    for (;;) pause();
}

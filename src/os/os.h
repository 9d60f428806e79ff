/* os: the one door to the kernel. Every system call hugeslab makes (mmap,
 * munmap, mremap, mprotect, madvise, mlock, mbind, get_mempolicy, getcpu,
 * getrandom, getrusage, open/read/write/close, pipes, sockets, io_uring,
 * the threads it starts) and every /proc or /sys file it reads is a
 * function here, each with its contract below: what it needs aligned, what
 * it returns on failure, whether it may block.
 * - Nothing here calls malloc or stdio: all of it may run inside the
 *   process's first malloc and with any hugeslab lock held.
 * - Functions that map return NULL with errno = ENOMEM on any failure; the
 *   others return 0 or -errno, or say what they return on failure. None
 *   prints, aborts or retries beyond EINTR. The unmapping, remapping and
 *   advice calls (memory.c) leave errno as they found it: a refused hint is
 *   no failure of the malloc that asked for it.
 * - No policy: which backing, which node, when to purge is decided above
 *   (thp/, numa/, segment/), and the kernel's answer is handed back as is.
 * Never: include another module's header but common.h; keep state beyond
 *   the io_uring ring of the purge thread. */
#ifndef HS_OS_H
#define HS_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ---- mappings (memory.c) --------------------------------------------------- */

/* Anonymous, private, read-write, zero-filled memory of `size` bytes (a
 * multiple of the page size, or rounded up to it) at an address aligned to
 * `align` (a power of two, at least 4 KiB), by mapping more and trimming
 * both ends, or in one call where the kernel places it aligned (below,
 * memory.c). `hugetlb`: MAP_HUGETLB | MAP_HUGE_2MB (the 2 MiB pool, whatever
 * the default hugepage size) without MAP_NORESERVE, so the pool's
 * 2 MiB pages are reserved now (an empty pool is ENOMEM here, never a
 * SIGBUS at first touch); size and align are then multiples of 2 MiB.
 * Refuses ranges above HS_ADDRESS_BITS. NULL + ENOMEM on failure. */
void *os_map_aligned(size_t size, size_t align, bool hugetlb);

/* os_map_aligned without hugetlb, PROT_NONE until os_make_writable: for a
 * process under mlockall(MCL_FUTURE), whose mappings the kernel otherwise
 * faults in whole as it makes them, before any hint or memory policy is
 * set. Maps more and trims both ends. NULL + ENOMEM. */
void *os_map_inaccessible(size_t size, size_t align);

/* Plain pages for hugeslab's own metadata: os_map_aligned at page alignment,
 * size rounded up to whole pages. NULL + ENOMEM. */
void *os_map_pages(size_t size);

/* munmap of a range (or part of one cut at page boundaries) that one of the
 * os_map functions returned; size 0 does nothing. Where the kernel refuses
 * (ENOMEM: the cut would pass vm.max_map_count) the range stays mapped but
 * its pages are dropped (MADV_DONTNEED): address space is lost, memory not. */
void os_unmap(void *addr, size_t size);

/* mremap without moving: grows or shrinks [addr, addr+old_size) to new_size
 * in place. Returns 0, or -errno (ENOMEM: the next range is taken; always,
 * in a ThreadSanitizer build, as os_remap_onto: see memory.c). */
int os_remap_in_place(void *addr, size_t old_size, size_t new_size);

/* Moves the mapping [addr, addr+old_size) onto dest (a range this process
 * mapped, which it replaces) with new_size bytes, moving page tables, not
 * copying. Returns 0, or -errno with both ranges untouched. */
int os_remap_onto(void *addr, size_t old_size, size_t new_size, void *dest);

/* mprotect to PROT_READ | PROT_WRITE of a page-aligned range of this
 * process's (the registry's pages, read-only until first written; a
 * mapping made inaccessible, which MCL_FUTURE then faults in). Returns
 * 0, or -errno (ENOMEM: the commit limit of vm.overcommit_memory=2, or
 * vm.max_map_count). */
int os_make_writable(void *addr, size_t size);

/* Replaces the page-aligned range [addr, addr+size) of this process's,
 * which nothing else may use meanwhile, with a private mapping of zeroes
 * that can only be read: no commit charge, nothing in VmData, and what
 * mlockall faults in of it can be given back (the registry of a static
 * link, segment.c). Returns 0, or -errno with the range zeroes, readable
 * and writable as before (mapped afresh where the kernel had taken it). */
int os_map_zeroes_read_only(void *addr, size_t size);

/* mlockall(2) with the caller's flags (MCL_CURRENT, MCL_FUTURE,
 * MCL_ONFAULT), and munlockall(2). MCL_CURRENT without MCL_ONFAULT faults
 * in every page of every mapping that can be read, read-only ones too (the
 * registry's 64 MiB: Linux 6.18 gives each a page of its own). Return 0 or
 * -errno (ENOMEM: RLIMIT_MEMLOCK, which an unprivileged mlockall with
 * MCL_CURRENT checks against the whole address space; EPERM; EINVAL). */
int os_lock_all(int flags);
int os_unlock_all(void);
/* mlockall's flags: the kernel's values, which <sys/mman.h> names MCL_*. */
#define OS_LOCK_CURRENT 1  /* MCL_CURRENT */
#define OS_LOCK_FUTURE 2   /* MCL_FUTURE */
#define OS_LOCK_ON_FAULT 4 /* MCL_ONFAULT, Linux 4.4 */
/* mlock2(2) of a page-aligned range, MLOCK_ONFAULT when `on_fault` (its
 * pages then locked as they fault), and munlock(2): unlocked pages stay
 * in memory. Return 0 or -errno. */
int os_lock_range(void *addr, size_t size, bool on_fault);
int os_unlock_range(void *addr, size_t size);
/* RLIMIT_MEMLOCK's soft limit in bytes, UINT64_MAX where there is none
 * (or getrlimit fails). */
uint64_t os_lock_limit(void);

/* MADV_HUGEPAGE (`on`) or MADV_NOHUGEPAGE on a page-aligned range: the THP
 * hint for this range only. Returns 0 or -errno (EINVAL without THP). */
int os_advise_hugepage(void *addr, size_t size, bool on);

/* The process's own THP setting (prctl PR_GET_THP_DISABLE), which a fork
 * child inherits and execve keeps: OS_THP_PROCESS_OFF where the process
 * turned THP off whole (PR_SET_THP_DISABLE), hinted ranges too;
 * OS_THP_PROCESS_ADVISED where it keeps only unhinted ranges off (Linux
 * 6.18's PR_THP_DISABLE_EXCEPT_ADVISED), so MADV_HUGEPAGE still works;
 * OS_THP_PROCESS_DEFAULT where it did neither. -errno where the kernel
 * refuses the call (before Linux 3.15; a seccomp filter); errno is kept. */
long os_thp_process_setting(void);
#define OS_THP_PROCESS_DEFAULT 0
#define OS_THP_PROCESS_OFF 1     /* the kernel's 0b01 */
#define OS_THP_PROCESS_ADVISED 3 /* the kernel's 0b11 */

/* MADV_COLD on a page-aligned range: its pages are the first to reclaim,
 * and a huge page the range covers only in part is split into base pages
 * (since Linux 5.4). Returns 0 or -errno (EINVAL on older kernels). */
int os_advise_cold(void *addr, size_t size);

/* Pages of a page-aligned range of at most 2 MiB that are in memory
 * (mincore). -1 when the kernel cannot say. */
long os_resident_pages(void *addr, size_t size);

/* Faults [addr, addr+size) in now, writable, with one MADV_POPULATE_WRITE
 * (Linux 5.14+). A page that cannot be had (a hugetlb page the memory
 * policy's nodes lack) is -errno here instead of a SIGBUS later; EINVAL on
 * older kernels, whose pages then fault at first touch. May block while
 * the kernel reclaims memory. */
int os_populate(void *addr, size_t size);

/* Makes the base pages of a 2 MiB-aligned range of a THP mapping huge
 * pages now, their contents copied (MADV_COLLAPSE, Linux 6.1+). Returns 0
 * or -errno: EINVAL on older kernels, EAGAIN or ENOMEM when no huge page
 * could be had; the range is then as it was. May block while the kernel
 * compacts memory. */
int os_collapse(void *addr, size_t size);

/* MADV_DOFORK (`inherit`) or MADV_DONTFORK on a page-aligned range: whether
 * a child of fork() gets it. Returns 0 or -errno. */
int os_advise_fork(void *addr, size_t size, bool inherit);

/* Hands the pages of a page-aligned range back to the kernel, keeping the
 * mapping: MADV_FREE (lazy, LazyFree until reclaimed) unless `dontneed` or
 * the kernel lacks it (before 4.5), else MADV_DONTNEED. Returns 0 or -errno. */
int os_purge(void *addr, size_t size, bool dontneed);

/* ---- many purges at once (purge_batch.c) ----------------------------------- */

typedef struct os_range_s {
    void *addr;  /* page-aligned start */
    size_t size; /* bytes, a multiple of the page size */
} os_range_t;

/* os_purge on each range, through io_uring submissions of IORING_OP_MADVISE
 * when `use_uring` and os_uring_setup() succeeds, else one madvise each. Returns
 * how many ranges failed. Called by one thread at a time (the ring is the
 * purge thread's): not thread-safe. Waits for the kernel's answers. */
int os_purge_batch(const os_range_t *ranges, unsigned count, bool dontneed, bool use_uring);
/* Sets the ring up on the first call (the purge thread's). Returns 0 when
 * it is ready, else the -errno of that first try: ENOSYS when liburing was
 * absent at build time, EPERM or ENOSYS when kernel.io_uring_disabled or a
 * seccomp filter refuses it. */
int os_uring_setup(void);
/* In a fork's child: the parent's ring is not the child's; the child's
 * first os_uring_setup sets up its own. */
void os_uring_fork_child(void);

/* ---- NUMA system calls (process.c; numa/ is their one caller) ------------- */

/* get_mempolicy(2) of the calling thread (no address: never faults pages
 * in). mask holds maxnode - 1 bits. Returns 0 or -errno (ENOSYS without
 * CONFIG_NUMA, EPERM under some seccomp profiles). Never blocks. */
int os_get_mempolicy(int *mode, unsigned long *mask, unsigned long maxnode, unsigned long flags);

/* mbind(2) without MPOL_MF_* flags on a page-aligned range: sets the policy
 * of its VMAs (splitting them at the ends); pages already present are not
 * moved. Returns 0 or -errno (EINVAL: nodes outside the cpuset; EPERM or
 * ENOSYS: refused for good). Takes mmap_lock for writing; no I/O. */
int os_mbind(void *addr, size_t len, int mode, const unsigned long *mask, unsigned long maxnode);

/* set_mempolicy_home_node(2), Linux 5.17, for a range whose policy is
 * MPOL_BIND or MPOL_PREFERRED_MANY: its pages come from kernel node `home`
 * first. Returns 0 or -errno (ENOSYS before 5.17, EOPNOTSUPP otherwise). */
int os_set_home_node(void *addr, size_t len, unsigned home);

/* The kernel node of the CPU the caller runs on (getcpu, vDSO on x86-64:
 * no system call); 0 when the kernel cannot say. Stale once the thread
 * migrates. */
unsigned os_current_kernel_node(void);

/* CPUs the calling thread may run on (sched_getaffinity: taskset and
 * cpusets count), at least 1. A system call. */
unsigned os_cpus_allowed(void);

/* ---- kernel files (files.c) -------------------------------------------------
 * Each reads one small /proc or /sys file whole with open/read, NUL-
 * terminated, and returns its length, or -1 when it cannot be read. */

/* /sys/kernel/mm/transparent_hugepage/enabled ("always [madvise] never"). */
ssize_t os_read_thp_enabled(char *buf, size_t cap);
/* /sys/devices/system/node/online (a list such as "0-3"). */
ssize_t os_read_nodes_online(char *buf, size_t cap);
/* /sys/devices/system/node/has_memory: the online nodes with memory (a
 * node of CPUs alone is not in it). */
ssize_t os_read_nodes_with_memory(char *buf, size_t cap);
/* /sys/devices/system/node/node<kernel_node>/<leaf> ("distance",
 * "cpulist", "hugepages/hugepages-2048kB/free_hugepages", ...). */
ssize_t os_read_node_file(unsigned kernel_node, const char *leaf, char *buf, size_t cap);

/* Counters of the 2 MiB hugetlb pool, from
 * /sys/kernel/mm/hugepages/hugepages-2048kB/<name>; 0 when unreadable. */
typedef enum os_hugetlb_count_e {
    OS_HUGETLB_TOTAL,    /* nr_hugepages */
    OS_HUGETLB_FREE,     /* free_hugepages */
    OS_HUGETLB_RESERVED, /* resv_hugepages: free but promised to a mapping */
} os_hugetlb_count_t;
unsigned long os_hugetlb_count(os_hugetlb_count_t which);
/* Whether the 2 MiB pool has pages or may lend surplus ones: nr_hugepages
 * or nr_overcommit_hugepages above 0 (false when unreadable). Two small
 * reads, in the text every process runs: the constructor asks. */
bool os_hugetlb_pool_configured(void);

/* The default hugepage size in KiB ("Hugepagesize:" of /proc/meminfo, the
 * one figure there that is not about the default size's pool alone); 0 when
 * unknown. hugeslab never maps from that pool: it names 2 MiB itself. */
unsigned long os_default_hugepage_kib(void);

/* The process's memory as /proc/self/smaps_rollup reports it, in bytes;
 * -1 for a field that cannot be read. For statistics only: slow. */
typedef struct os_rollup_s {
    long long rss;             /* Rss */
    long long anon_huge;       /* AnonHugePages: whole 2 MiB THP pages */
    long long lazy_free;       /* LazyFree: MADV_FREE pages not yet reclaimed */
    long long private_hugetlb; /* Private_Hugetlb */
} os_rollup_t;
void os_read_rollup(os_rollup_t *out);

/* Walks /proc/self/smaps and calls on_range(ctx, ...) once per mapping with
 * its bounds and its AnonHugePages and Private_Hugetlb, in bytes. Reads
 * through a stack buffer (no allocation). Returns 0, or -1 when the file
 * cannot be read. For statistics only: slow. */
typedef void (*os_smaps_fn)(void *ctx, uintptr_t start, uintptr_t end, long long anon_huge,
                            long long private_hugetlb);
int os_walk_smaps(os_smaps_fn on_range, void *ctx);

/* Walks /proc/self/maps and calls on_range(ctx, ...) once per mapping with
 * its bounds and its permissions (OS_MAP_*), in address order. Reads
 * through a stack buffer (no allocation); a callback that changes the
 * mappings (mlock splits and merges them) gets the next line from where
 * the last one ended. Returns 0, or -1 when the file cannot be read.
 * Cheaper than os_walk_smaps (no page counts), still one line per
 * mapping. */
#define OS_MAP_READABLE 1u
#define OS_MAP_WRITABLE 2u
#define OS_MAP_EXECUTABLE 4u
typedef void (*os_maps_fn)(void *ctx, uintptr_t start, uintptr_t end, unsigned perms);
int os_walk_maps(os_maps_fn on_range, void *ctx);

/* Whether [addr, addr + size) has a huge page mapped in it (PAGEMAP_SCAN
 * of /proc/self/pagemap, Linux 6.7): 1 or 0, -1 when the kernel cannot
 * say. One open, ioctl and close. HS_APART: the text every process runs
 * had no room for it, and as seldom code it cost a process that calls it
 * (realloc's give-back in small_heap.c) the seldom window, 52 KiB. */
int os_holds_huge(void *addr, size_t size);

/* A run of pages alike in a range os_scan_present describes. */
typedef struct os_page_run_s {
    uintptr_t start; /* first byte */
    uintptr_t end;   /* past the last byte */
    unsigned kinds;  /* OS_PAGES_* they are */
} os_page_run_t;
#define OS_PAGES_ZERO 1u /* mapped to the kernel's shared zero page: no RSS */
#define OS_PAGES_HUGE 2u /* part of a huge page mapped whole */
/* The pages of [addr, addr + size) that are mapped (anonymous memory the
 * program or the kernel's zero page holds), as at most `max` runs of pages
 * alike, in address order (PAGEMAP_SCAN of /proc/self/pagemap, Linux 6.7);
 * what is not in a run is not mapped. Returns how many runs it wrote, and
 * sets *scanned_to to where it stopped (the range's end, or where `max`
 * ran out); -1 when the kernel cannot say. `fd`: /proc/self/pagemap open
 * for reading, so that a caller scanning many ranges opens it once. Reads
 * no page, faults none in. */
int os_scan_present(int fd, void *addr, size_t size, os_page_run_t *out, unsigned max,
                    uintptr_t *scanned_to);
/* /proc/self/pagemap open for os_scan_present (close it with os_close), or -1. */
int os_open_pagemap(void);
/* Whether the running kernel's release is major.minor or later (uname). */
bool os_kernel_at_least(unsigned major, unsigned minor);

/* Any small file (a HUGESLAB_CONFIG file), like the readers above; returns
 * its length or -1. */
ssize_t os_read_file(const char *path, char *buf, size_t cap);

/* Threads of the process still running, the caller among them, from
 * /proc/self/stat: its num_threads, less one when the main thread has
 * exited (a main thread that calls pthread_exit stays a zombie, counted
 * there, until the last thread ends). -1 when /proc cannot tell. One open,
 * read and close. */
int os_threads_running(void);

/* ---- files and sockets (files.c) ---------------------------------------------- */

/* open(2) for writing, created or truncated, close-on-exec, mode 0644.
 * Returns the descriptor or -errno. */
int os_open_for_writing(const char *path);
/* Writes all of buf, retrying short writes and EINTR; gives up silently on
 * an error (a message must never fail the program). */
void os_write_all(int fd, const char *buf, size_t len);
void os_close(int fd);
/* Replaces the file at `path` by `len` bytes of text in one step: a reader
 * sees the old file or the new one, never part of either. The text is
 * written to an unnamed file (O_TMPFILE), given the name `tmp` (a path in
 * the same folder) and renamed over `path`, so a process killed while
 * writing leaves nothing behind; where the file system has no O_TMPFILE,
 * `tmp` is created, written and renamed. Returns 0 or -errno. */
int os_replace_file(const char *path, const char *tmp, const char *text, size_t len);
/* What a descriptor refers to (device and inode), to tell whether a number
 * kept from earlier still names the same file. */
typedef struct os_file_id_s {
    unsigned long long device; /* st_dev */
    unsigned long long inode;  /* st_ino */
} os_file_id_t;
/* fstat(2) of fd; false when fd is not open. */
bool os_file_id(int fd, os_file_id_t *out);
/* A close-on-exec copy of fd numbered 100 or more (F_DUPFD_CLOEXEC), so
 * that it outlives a program closing fd itself. The copy or -errno. */
int os_dup_high(int fd);

/* ---- time, randomness, threads (process.c) --------------------------------- */

/* Monotonic milliseconds from a coarse clock (vDSO: no system call; up to
 * a scheduler tick behind). */
uint64_t os_now_ms(void);
/* The CLOCK_MONOTONIC time `ms` from now, for pthread_cond_clockwait. */
void os_deadline_after(uint64_t ms, struct timespec *out);

/* 64 random bits from the kernel (getrandom, non-blocking), or a weaker mix
 * of the cycle counter and a stack address when it fails. Never 0. */
unsigned long os_random_bits(void);
/* Minor + major page faults of the process so far (getrusage), -1 on error. */
long long os_page_faults(void);
/* Seconds since 1970 (CLOCK_REALTIME, vDSO). */
long long os_wall_seconds(void);
/* The process's environment (environ), NAME=value strings, NULL-ended;
 * NULL in a secure-execution process (AT_SECURE: setuid, setgid, file
 * capabilities), whose environment its caller chose. */
char **os_environment(void);
/* Sleeps ms milliseconds (nanosleep; a signal may end it early). */
void os_sleep_ms(unsigned ms);
/* Whether the caller is the process's main thread (its thread id is the
 * process id: in a fork child, the thread that forked). Two system calls. */
bool os_is_main_thread(void);
/* Gives the CPU to another runnable thread (sched_yield). */
void os_yield(void);
/* Copies len bytes of the process's own memory from src to dest through a
 * pipe (write, then read back): a page of src that cannot be read
 * (unmapped, or a hugetlb page the kernel took back) ends the copy with a
 * short count instead of raising SIGSEGV or SIGBUS. Plain reads, never a
 * page pin, so a page shared copy-on-write stays shared. Returns the bytes
 * copied, or -errno when no pipe can be had. */
ssize_t os_copy_own(void *dest, const void *src, size_t len);
/* A close-on-exec pipe: fds[0] reads, fds[1] writes. 0 or -errno. */
int os_pipe(int fds[2]);
/* Waits until no write end of the pipe that fd reads from is open any
 * more (bytes written meanwhile are read and dropped), for at most ms
 * milliseconds (poll; the coarse clock may add a few). True when every
 * write end was closed in time. */
bool os_wait_hangup(int fd, unsigned ms);
/* The process id (getpid). */
int os_pid(void);
/* prctl(option, arg2, ..., arg5) passed on as the program made it (api/
 * prctl.c): the kernel's result, or -1 with errno set. */
long os_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5);
/* The options of it that hugeslab reads (<linux/prctl.h>'s values). */
#define OS_PRCTL_SET_THP_DISABLE 41
#define OS_PRCTL_GET_THP_DISABLE 42
/* The base page size (sysconf, asked once). */
size_t os_page_size(void);

/* Starts a detached thread running fn(arg) with a stack of `stack_size`
 * bytes (0: glibc's default, what a thread of the program gets) and every
 * signal blocked, so it never takes a signal meant for the program; the
 * caller's signal mask is unchanged afterwards and errno is kept. Returns 0
 * or the pthread_create error. May allocate (glibc's thread stack cache):
 * never call it with a lock held. */
int os_thread_start(void *(*fn)(void *), void *arg, size_t stack_size);
/* Ends the process with exit(status) on a new thread of the default stack
 * size (os_thread_start: every signal blocked there), whose exit handlers,
 * the program's among them, then run on a stack as large as a thread of
 * the program would have had. False when no thread could be started. */
bool os_exit_on_new_thread(int status);
/* Sleeps until the process ends (pause, again and again), for a thread
 * started by os_thread_start: with every signal blocked, nothing else wakes
 * it. Its stack and the code that brought it here stay as they are. */
__attribute__((noreturn)) void os_thread_park(void);

#endif

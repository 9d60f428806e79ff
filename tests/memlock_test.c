/* mlockall and munlockall as a program calls them: first, before any
 * allocation (the library's locks are set up by the first one, and
 * mlockall's give-back of what rests takes some), then with blocks of
 * every kind live and freed, again after the frees (idle and purged
 * SuperSlabs rest, and are unmapped before the kernel faults them in), with
 * MCL_ONFAULT, in a fork's child (which inherits no lock), and, as root, in
 * a child that gave root up (unprivileged_lock). Every block
 * is written whole and checked before it is freed, and the first lock
 * holds at most 32 MiB (VmLck). memlock_static is the same program linked
 * statically with the archive (HS_PREFIX). Exits 77 (skip) without
 * CAP_IPC_LOCK and with a RLIMIT_MEMLOCK, under which the rounds' blocks
 * cannot all be locked. tests/kernel asserts the
 * kernel's figures (Rss, VmLck, faults); this runs on the DEBUG=1 library
 * too (debug_memlock), whose lock checks see every step. */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

enum { BLOCKS = 3000 };

static char *blocks[BLOCKS];
static size_t sizes[BLOCKS];

static size_t block_size(size_t i)
{
    if (i % 300 == 299) return (i % 7 + 1) * ((size_t)1 << 20); /* runs: 1 - 7 MiB */
    if (i % 50 == 49) return 128 * 1024 + i * 97;               /* slabs of pages */
    return 16 + (i * 131) % 9000;                               /* classes */
}

static int fill(unsigned seed)
{
    for (size_t i = 0; i < BLOCKS; i++) {
        sizes[i] = block_size(i + seed);
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i]) {
            fprintf(stderr, "FAIL: malloc(%zu): %s\n", sizes[i], strerror(errno));
            return 1;
        }
        memset(blocks[i], (int)(i + seed), sizes[i]);
    }
    return 0;
}

static int check_and_free(unsigned seed)
{
    for (size_t i = 0; i < BLOCKS; i++) {
        for (size_t b = 0; b < sizes[i]; b += 4093)
            if (blocks[i][b] != (char)(i + seed)) {
                fprintf(stderr, "FAIL: block %zu (%zu B) changed at %zu\n", i, sizes[i], b);
                return 1;
            }
        free(blocks[i]);
    }
    return 0;
}

static int round_trip(int flags, unsigned seed)
{
    if (mlockall(flags) != 0) {
        fprintf(stderr, "FAIL: mlockall(%d): %s\n", flags, strerror(errno));
        return 1;
    }
    if (fill(seed) || check_and_free(seed)) return 1;
    if (munlockall() != 0) {
        fprintf(stderr, "FAIL: munlockall: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* The KiB of this process's read-only anonymous mappings (the library's
 * registry: 64 MiB of zeroes, less its pages written), from /proc/self/maps;
 * -1 when it cannot be read. */
static long read_only_anonymous_kib(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return -1;
    char line[512];
    long kib = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end, inode;
        char perms[8];
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %n", &start, &end, perms, &inode, &name_at) < 4)
            continue;
        if (strcmp(perms, "r--p") == 0 && inode == 0 && (line[name_at] == '\n' || !line[name_at]))
            kib += (long)((end - start) / 1024);
    }
    fclose(maps);
    return kib;
}

static int lock_expecting(int expected_errno, const char *limit_name)
{
    int r = mlockall(MCL_CURRENT | MCL_FUTURE);
    if (expected_errno == 0 && r != 0) {
        fprintf(stderr, "FAIL: unprivileged mlockall under %s: %s\n", limit_name, strerror(errno));
        return 1;
    }
    if (expected_errno != 0 && (r == 0 || errno != expected_errno)) {
        fprintf(stderr, "FAIL: unprivileged mlockall under %s: %s, not %s\n", limit_name,
                r == 0 ? "locked" : strerror(errno), strerror(expected_errno));
        return 1;
    }
    return 0;
}

/* A user's program, without CAP_IPC_LOCK: the kernel refuses
 * mlockall(MCL_CURRENT) (ENOMEM) unless the whole address space fits
 * RLIMIT_MEMLOCK, where glibc's small program fits the default 8 MiB. Its
 * own mappings here are all but the read-only anonymous ones (the
 * registry). Under a limit of those and 4-16 MiB more (as far as the hard
 * limit goes), below the address space under the library, the lock must
 * succeed, and 2 MiB of blocks allocated under MCL_FUTURE then; under
 * 1 MiB it must fail with ENOMEM, as the kernel answers a program of that
 * size. In a child that gives root up, before the program allocates:
 * exits 77, saying why, where it cannot. */
static int unprivileged_lock(void)
{
    long size_kib = hs_proc_status_kib_raw("VmSize");
    long read_only_kib = read_only_anonymous_kib();
    struct rlimit hard;
    if (size_kib < 0 || read_only_kib < 0 || getrlimit(RLIMIT_MEMLOCK, &hard) != 0) {
        printf("unprivileged child: /proc/self or getrlimit unreadable\n");
        return 77;
    }
    long own_kib = size_kib - read_only_kib, limit_kib = own_kib + 16 * 1024;
    if (hard.rlim_max != RLIM_INFINITY && (rlim_t)limit_kib * 1024 > hard.rlim_max)
        limit_kib = (long)(hard.rlim_max / 1024);
    if (limit_kib < own_kib + 4 * 1024) {
        printf("unprivileged child: hard RLIMIT_MEMLOCK %ld KiB, under %ld KiB of mappings and 4 "
               "MiB\n",
               limit_kib, own_kib);
        return 77;
    }
    struct rlimit low = {1024 * 1024, (rlim_t)limit_kib * 1024};
    if (setrlimit(RLIMIT_MEMLOCK, &low) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
        printf("unprivileged child: setrlimit, setgid or setuid refused: %s\n", strerror(errno));
        return 77;
    }
    if (lock_expecting(ENOMEM, "1 MiB")) return 1;
    struct rlimit fits = {(rlim_t)limit_kib * 1024, (rlim_t)limit_kib * 1024};
    if (setrlimit(RLIMIT_MEMLOCK, &fits) != 0 || lock_expecting(0, "the program's mappings"))
        return 1;
    long locked_kib = hs_proc_status_kib_raw("VmLck");
    if (locked_kib <= 0 || locked_kib > limit_kib) {
        fprintf(stderr, "FAIL: VmLck %ld KiB under a limit of %ld KiB\n", locked_kib, limit_kib);
        return 1;
    }
    enum { HELD = 32, HELD_SIZE = 64 * 1024 };
    char *held[HELD];
    for (size_t i = 0; i < HELD; i++) {
        held[i] = malloc(HELD_SIZE);
        if (!held[i]) {
            fprintf(stderr, "FAIL: malloc(64 KiB) under MCL_FUTURE, %zu held: %s\n", i,
                    strerror(errno));
            return 1;
        }
        memset(held[i], (int)i, HELD_SIZE);
    }
    for (size_t i = 0; i < HELD; i++) {
        if (held[i][HELD_SIZE - 1] != (char)i) return 1;
        free(held[i]);
    }
    if (munlockall() != 0) return 1;
    printf("unprivileged child: address space %ld KiB, %ld of it read-only anonymous, limit %ld; "
           "%ld KiB locked, 2 MiB of blocks under MCL_FUTURE\n",
           size_kib, read_only_kib, limit_kib, locked_kib);
    return 0;
}

/* Whether this process may lock what the rounds below lock (up to some
 * 40 MiB under MCL_FUTURE): CAP_IPC_LOCK (bit 14 of CapEff), or no
 * RLIMIT_MEMLOCK. Read without stdio, which would allocate before the
 * first lock. */
static bool may_lock_freely(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur == RLIM_INFINITY) return true;
    char text[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return false;
    ssize_t len = read(fd, text, sizeof text - 1);
    close(fd);
    text[len > 0 ? len : 0] = 0;
    const char *caps = strstr(text, "CapEff:");
    return caps && (strtoull(caps + 7, NULL, 16) >> 14) & 1;
}

/* unprivileged_lock in a child: 0 where it passed, 77 where it could not
 * run, 1 where it failed. */
static int unprivileged_child(void)
{
    if (geteuid() != 0) return 77;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("FAIL: fork");
        return 1;
    }
    if (pid == 0) {
        int r = unprivileged_lock();
        fflush(stdout);
        _exit(r);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 77)) {
        fprintf(stderr, "FAIL: the unprivileged child exited with status %d\n", status);
        return 1;
    }
    return WEXITSTATUS(status);
}

int main(void)
{
    /* A user's program locking itself first, while its mappings are few. */
    int unprivileged = unprivileged_child();
    if (unprivileged == 1) return 1;
    /* Then with CAP_IPC_LOCK, before any allocation of the program's. */
    if (!may_lock_freely() || mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        printf("SKIP: mlockall: %s (CAP_IPC_LOCK or ulimit -l unlimited needed)\n",
               may_lock_freely() ? strerror(errno) : "RLIMIT_MEMLOCK");
        return 77;
    }
    /* Kernel truth: what the lock holds then. The registry's 64 MiB of
     * zeroes, faulted in and locked whole, is what memlock_static held
     * with the archive of 69fb6e8 (68,820 KiB; a static program of
     * glibc's own locks under 1 MiB). */
    long locked_kib = hs_proc_status_kib_raw("VmLck");
    if (locked_kib < 0 || locked_kib > 32 * 1024) {
        fprintf(stderr, "FAIL: VmLck %ld KiB after the first mlockall (at most 32 MiB)\n",
                locked_kib);
        return 1;
    }
    hs_setup("memlock_test");
    if (fill(1) || check_and_free(1) || munlockall() != 0) return 1;
    /* Freed blocks rest now: locked again with them idle or purged. */
    usleep(200 * 1000);
    if (round_trip(MCL_CURRENT | MCL_FUTURE, 2)) return 1;
    if (round_trip(MCL_CURRENT, 3)) return 1;
    if (round_trip(MCL_FUTURE, 4)) return 1;
#ifdef MCL_ONFAULT
    if (round_trip(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT, 5)) return 1;
#endif
    /* A fork's child inherits no lock, and locks its own. */
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) return 1;
    pid_t pid = fork();
    if (pid < 0) {
        perror("FAIL: fork");
        return 1;
    }
    if (pid == 0) _exit(fill(6) || check_and_free(6) || round_trip(MCL_CURRENT | MCL_FUTURE, 7));
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: the child exited with status %d\n", status);
        return 1;
    }
    if (fill(8) || check_and_free(8) || munlockall() != 0) return 1;
    printf("RESULT: %ld KiB locked after the first mlockall; 7 rounds of %d blocks of 16 B - 7 "
           "MiB under mlockall, a fork's child too%s\n",
           locked_kib, BLOCKS,
           unprivileged == 0 ? ", an unprivileged child under RLIMIT_MEMLOCK" : "");
    return 0;
}

/* mlockall and munlockall as a program calls them: first, before any
 * allocation (the library's locks are set up by the first one, and
 * mlockall's give-back of what rests takes some), then with blocks of
 * every kind live and freed, again after the frees (idle and purged
 * SuperSlabs rest, and are unmapped before the kernel faults them in), with
 * MCL_ONFAULT, and in a fork's child (which inherits no lock). Every block
 * is written whole and checked before it is freed, and the first lock
 * holds at most 32 MiB (VmLck). memlock_static is the same program linked
 * statically with the archive (HS_PREFIX). Exits 77 (skip) where
 * the kernel refuses the first lock: without CAP_IPC_LOCK, RLIMIT_MEMLOCK
 * is checked against the whole address space. tests/kernel asserts the
 * kernel's figures (Rss, VmLck, faults); this runs on the DEBUG=1 library
 * too (debug_memlock), whose lock checks see every step. */
#define _GNU_SOURCE 1
#include "test_util.h"

#include <errno.h>
#include <sys/mman.h>
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

int main(void)
{
    /* First, before any allocation of the program's. */
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        printf("SKIP: mlockall: %s (CAP_IPC_LOCK or ulimit -l unlimited needed)\n",
               strerror(errno));
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
           "MiB under mlockall, a fork's child too\n",
           locked_kib, BLOCKS);
    return 0;
}

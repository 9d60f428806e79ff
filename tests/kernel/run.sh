#!/bin/bash
# Kernel-facing proof tests: faults per SuperSlab for each backing, the
# background purge, the fallbacks, and the statistics against the kernel.
# Sets the system THP mode and the hugetlb pool when root, and restores both
# on exit; without root, the cases that need them are skipped with a reason.
# Usage: tests/kernel/run.sh [BUILD_DIR]   (prints PASS/FAIL/SKIP lines and a summary)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bin=$build/tests/kernel_test
thp_file=/sys/kernel/mm/transparent_hugepage/enabled
# The 2 MiB pool's own files: /proc/sys/vm/nr_hugepages and /proc/meminfo's
# HugePages_* are the default size's, 1 GiB on a machine booted with
# default_hugepagesz=1G.
pool_dir=/sys/kernel/mm/hugepages/hugepages-2048kB
hugepages_file=$pool_dir/nr_hugepages
pass=0 fail=0 skip=0

orig_thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$thp_file" 2>/dev/null)
# Surplus pages (another process's, in use past the pool's size) are not
# put back as the pool's own.
orig_hugepages=$(( $(cat "$hugepages_file" 2>/dev/null || echo 0) - $(cat "$pool_dir/surplus_hugepages" 2>/dev/null || echo 0) ))
restore() {
    [ -n "$orig_thp" ] && echo "$orig_thp" >"$thp_file" 2>/dev/null
    echo "$orig_hugepages" >"$hugepages_file" 2>/dev/null
}
trap restore EXIT
trap 'exit 130' INT TERM

thp_mode() { sed -n 's/.*\[\(.*\)\].*/\1/p' "$thp_file" 2>/dev/null; }
set_thp() { echo "$1" >"$thp_file" 2>/dev/null && [ "$(thp_mode)" = "$1" ]; }
# A pool with exactly $1 pages free and unreserved, beyond what other
# processes hold or have reserved.
pool() { cat "$pool_dir/$1" 2>/dev/null || echo 0; }
# A /proc/meminfo figure in kB (0 when absent), e.g. MemAvailable.
meminfo() { awk -v key="$1:" '$1 == key { print $2; found = 1 } END { if (!found) print 0 }' /proc/meminfo; }
set_pool_free() {
    local taken
    taken=$(( $(pool nr_hugepages) - $(pool free_hugepages) + $(pool resv_hugepages) ))
    echo $(( taken + $1 )) >"$hugepages_file" 2>/dev/null || return 1
    [ $(( $(pool free_hugepages) - $(pool resv_hugepages) )) -eq "$1" ]
}

run_case() { # name, then env assignments and arguments
    local name=$1 out rc
    shift
    out=$(env "$@" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/    /'
    if [ $rc -eq 0 ]; then
        echo "PASS $name"
        pass=$((pass + 1))
    else
        echo "FAIL $name: exit $rc"
        fail=$((fail + 1))
    fi
}
skip_case() { echo "SKIP $1: $2"; skip=$((skip + 1)); }
# Whether the running kernel is $1.$2 or later.
kernel_at_least() {
    local major minor
    IFS=. read -r major minor _ <<<"$(uname -r)"
    minor=${minor%%[!0-9]*}
    [ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "${minor:-0}" -ge "$2" ]; }
}

if [ ! -x "$bin" ]; then
    echo "FAIL kernel: $bin is missing (make test builds it)"
    echo "0 passed, 1 failed"
    exit 1
fi
is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1
# Whether memory can be locked past RLIMIT_MEMLOCK: CAP_IPC_LOCK (bit 14 of
# CapEff), which root lacks in some containers, or no limit.
can_lock=0
[ $(((0x$(awk '/^CapEff:/ {print $2}' /proc/self/status) >> 14) & 1)) -eq 1 ] && can_lock=1
[ "$(ulimit -l)" = unlimited ] && can_lock=1

# THP needs "madvise" or "always"; switch from "never" when we may.
thp_ok=0
case "$(thp_mode)" in
    madvise|always) thp_ok=1 ;;
    never) [ $is_root -eq 1 ] && set_thp madvise && thp_ok=1 ;;
esac

if [ $thp_ok -eq 1 ]; then
    run_case faults-thp HUGESLAB_BACKING=thp "$bin" faults thp 32
    if [ "$(meminfo MemAvailable)" -gt $((3 * 1024 * 1024)) ]; then
        run_case faults-thp-1g HUGESLAB_BACKING=thp "$bin" faults thp 512
    else
        skip_case faults-thp-1g "less than 3 GiB of memory available"
    fi
    # 8 GiB of 64-byte blocks (and their 1 GiB pointer array): the fault
    # bound holds for a heap of that size too, where the machine has it.
    if [ "$(meminfo MemAvailable)" -gt $((12 * 1024 * 1024)) ]; then
        run_case faults-thp-8g HUGESLAB_BACKING=thp "$bin" faults thp 4096
    else
        skip_case faults-thp-8g "less than 12 GiB of memory available"
    fi
    run_case stats HUGESLAB_BACKING=thp "$bin" stats
    # The small heap's SuperSlab without the hint pair MADV_HUGEPAGE, then
    # MADV_NOHUGEPAGE (8-35 us of every process's first malloc), in the
    # mode as found; huge hints once the heap grows.
    run_case hints HUGESLAB_BACKING=thp "$bin" hints
    run_case purge-free HUGESLAB_BACKING=thp HUGESLAB_PURGE=free HUGESLAB_PURGE_DELAY_MS=500 \
        "$bin" purge free 3000
    run_case purge-dontneed HUGESLAB_BACKING=thp HUGESLAB_PURGE=dontneed \
        HUGESLAB_PURGE_DELAY_MS=500 "$bin" purge dontneed 3000
    run_case purge-uring HUGESLAB_BACKING=thp HUGESLAB_PURGE_BACKEND=uring \
        HUGESLAB_PURGE_DELAY_MS=500 "$bin" purge free 3000
    run_case purge-held-off HUGESLAB_BACKING=thp HUGESLAB_PURGE_DELAY_MS=3600000 \
        "$bin" purge none 1500
    # The defaults: MADV_FREE, then MADV_DONTNEED; Rss itself (LazyFree
    # included) back within 8 MiB of the start in 3 s. Fails with
    # HUGESLAB_RELEASE_DELAY_MS=3600000, where only LazyFree grows.
    run_case purge-release HUGESLAB_BACKING=thp "$bin" purge release 3000
    # 20,000 threads leave at most 1,000 live 128-byte blocks: under 16 MiB
    # (the old adoption of whichever orphan came first grew to 36 MiB).
    run_case churn-thp HUGESLAB_BACKING=thp "$bin" churn 20000 16
    # 10,000 threads leave at most 1,000 live blocks of 4 KiB: under 10 MiB
    # more than at the start (5.3 MiB; glibc 7.5), where orphans that went
    # back only at a refill of their class or the purge thread's sweep grew
    # to 16.6 MiB.
    run_case churn-4k-thp HUGESLAB_BACKING=thp "$bin" churn 10000 10 4096
    # A block in each class up to 64 KiB: one SuperSlab, no huge page (two
    # huge pages when slabs keep their usual size while the heap is small).
    run_case small-heap HUGESLAB_BACKING=thp "$bin" small-heap
    # A small heap's 832 KiB block gives its pages back when freed (sort's
    # buffer), and keeps them when its size comes again.
    run_case small-heap-large HUGESLAB_BACKING=thp "$bin" small-heap-large
    # A small heap whose blocks of 32-64 KiB each have a slab, cut and
    # released at each turn: pages given back and faulted again at each one
    # (17,900 faults in 20,000 turns), and the purge thread woken by the frees
    # (1,300 times).
    run_case small-heap-churn HUGESLAB_BACKING=thp "$bin" small-heap-churn
    # Blocks of their own run: the chunk where an 8 MiB block ends holds 64
    # bytes and costs a page, not a 2 MiB huge page (one of 9 MiB, which
    # fills more than half of it, shows the huge page).
    run_case run-tail HUGESLAB_BACKING=thp "$bin" run-tail
    # A block whose writing stopped 400 KiB into a chunk: that chunk's huge
    # page is split once the purge thread's looks find it unchanged, its
    # zeros leave Rss and its bytes stay (Linux 6.12 and later map the
    # zeros of a split huge page to the zero page; before, a split frees
    # nothing, and the library does not split). Not with
    # HUGESLAB_SPLIT_SPARSE=0.
    if kernel_at_least 6 12; then
        run_case frontier-thp HUGESLAB_BACKING=thp "$bin" frontier
        run_case frontier-kept-thp HUGESLAB_BACKING=thp HUGESLAB_SPLIT_SPARSE=0 "$bin" frontier kept
        # Threads that write parts of large blocks, wait, resize and free
        # them, and forks meanwhile: no byte lost to a look's split.
        run_case frontier-churn-thp HUGESLAB_BACKING=thp "$bin" frontier-churn
        # A run of one chunk, split, freed and trimmed: unmapped (its header's
        # page went back with the split chunk, and the purge kept it mapped,
        # taken for a SuperSlab of slabs).
        run_case frontier-header-thp HUGESLAB_BACKING=thp "$bin" frontier-header
    else
        skip_case frontier-thp "Linux $(uname -r) keeps the zeros of a split huge page (6.12 maps them to the zero page)"
        skip_case frontier-kept-thp "as frontier-thp"
        skip_case frontier-churn-thp "as frontier-thp"
        skip_case frontier-header-thp "as frontier-thp"
    fi
    # Large blocks written to their usable size keep every byte while other
    # runs are mapped and freed: nothing past the size asked for goes back.
    run_case usable-kept HUGESLAB_BACKING=thp "$bin" usable-kept
    # An array alone in its SuperSlab grows by realloc into a run: that
    # SuperSlab leaves Rss at once (before, it stayed cached, then LazyFree,
    # through the purge and release delays: Rss +4 MiB instead of +2).
    run_case outgrown HUGESLAB_BACKING=thp "$bin" outgrown
    # A block of the small heap's first SuperSlab, which the heap outgrew
    # (base pages still, hinted huge or not), moved by realloc: its pages
    # leave at once (before, its units stayed resident and free).
    run_case given-back HUGESLAB_BACKING=thp "$bin" given-back
    # The small heap's first SuperSlab left sparse, then outgrown: it stays on
    # base pages, not hinted huge (khugepaged made the hinted ones whole:
    # Python's list of 1 M strings, 2 MiB above its usual peak).
    run_case sparse-stays-base HUGESLAB_BACKING=thp "$bin" sparse-stays-base
    # A small heap that ran out of units in three SuperSlabs with few pages
    # written: the fourth stays on base pages too (a huge page before: git
    # blame's peak 2 MiB higher).
    run_case sparse-four HUGESLAB_BACKING=thp "$bin" sparse-four
    # A dense heap whose first SuperSlab ran out of units with room under the
    # budget: the second on base pages while the heap is small (a huge page
    # before: man ls, 2 MiB above glibc), a huge page once it grows
    # (MADV_COLLAPSE, Linux 6.1 and later; before, khugepaged's, later).
    if kernel_at_least 6 1; then
        run_case dense-room HUGESLAB_BACKING=thp "$bin" dense-room
    else
        skip_case dense-room "Linux $(uname -r) has no MADV_COLLAPSE (6.1)"
    fi
    # What the statistics count as given back left Rss: a small heap's 832 KiB
    # block as it is freed, a cached run at malloc_trim (neither counted
    # before: only the purge thread's madvise was).
    run_case counted HUGESLAB_BACKING=thp "$bin" counted
    # 32 MiB left by exited threads and freed by the main thread: back within
    # 8 MiB of the start in 3 s (never, while orphans waited for a SuperSlab
    # to fall idle before anything swept them).
    run_case orphans-thp HUGESLAB_BACKING=thp "$bin" orphans 3000
    # A cache built six times over by one thread and torn down each time by
    # three others in a random order while the builder keeps allocating:
    # back within 8 MiB of the start in 3 s (170 MB stayed while only the
    # builder's refills took back the slabs the others emptied; 163 MiB of
    # slabs now and then on busy CPUs, when the last round's slabs went to
    # the builder's delayed list while its heap was busy and no free asked
    # the purge thread for a look).
    run_case emptied-thp HUGESLAB_BACKING=thp "$bin" emptied 3000
    # malloc_trim while the purge thread advises what the frees left idle (no
    # purge delay): every call returns with nothing LazyFree, Rss within 8 MiB
    # of the start (3 to 24 of 200 calls left up to 12 MiB LazyFree while
    # malloc_trim did not wait for the thread's pass).
    run_case trim-turns HUGESLAB_BACKING=thp HUGESLAB_PURGE_DELAY_MS=0 "$bin" trim-turns 200
    # Freed memory left mapped for reuse (purging held off), then RLIMIT_AS 8 MiB
    # above VmSize: a block that needs a new mapping is had once what rests is
    # unmapped (NULL before, as the address space was full of cached SuperSlabs).
    run_case as-limit HUGESLAB_BACKING=thp HUGESLAB_PURGE_DELAY_MS=3600000 "$bin" as-limit
    # 64 MiB of small blocks freed and LazyFree, then 64 MiB of runs: the
    # lazily freed pages leave as the runs come, Rss under 32 MiB above (+4;
    # +64, both, while they waited for the release delay, an hour here).
    run_case fresh-thp HUGESLAB_BACKING=thp HUGESLAB_RELEASE_DELAY_MS=3600000 "$bin" fresh
    # One thread's heap past 80 MiB of slabs, then a block of each of thirty
    # sizes of 9-125 KiB (22 classes): short slabs, Rss under the blocks and
    # half again plus a huge page (+4,232 KiB; full-size slabs took +6,280).
    run_case medium-short-thp HUGESLAB_BACKING=thp "$bin" medium-short
    # One thread's heap past its small heap, under 8 MiB of slabs, then 180
    # blocks of 18,000 B: slabs of 3 units (5 blocks), Rss under the blocks
    # and a quarter again plus 1 MiB (+4,228 KiB; slabs of one unit, one
    # block and a 14 KiB tail each, took +6,280).
    run_case middle-tails-thp HUGESLAB_BACKING=thp "$bin" middle-tails
    # A thread waiting in pthread_join has its full slabs emptied by another,
    # which needs a new SuperSlab meanwhile: those slabs come back only with
    # their last block, and the new SuperSlab is on base pages (a 2 MiB huge
    # page before). The same with no frees, a growing heap: a huge page.
    run_case overflow-returning HUGESLAB_BACKING=thp "$bin" overflow returning
    run_case overflow-growing HUGESLAB_BACKING=thp "$bin" overflow growing
    # Threads with a few dozen blocks in each of many classes: the
    # SuperSlabs mapped for their sparse slabs are base pages.
    run_case sparse-threads-thp HUGESLAB_BACKING=thp "$bin" sparse-threads
    # The same with threads whose heaps have no slab yet when the SuperSlabs
    # for them are mapped; 96 threads, each with slabs of its own
    # (HUGESLAB_CROWD_THREADS=0: with the default, their first blocks fill
    # the crowd heap's shared slabs, dense, and `crowd` below tests those).
    run_case sparse-threads-fresh-thp HUGESLAB_BACKING=thp HUGESLAB_CROWD_THREADS=0 "$bin" sparse-threads fresh
    # HUGESLAB_SPLIT_SPARSE=0: the same SuperSlabs are huge pages.
    run_case sparse-threads-kept-thp HUGESLAB_BACKING=thp HUGESLAB_SPLIT_SPARSE=0 "$bin" sparse-threads kept
    # The small heap's first SuperSlab is on base pages: its free units go
    # back while a block keeps it in use.
    run_case free-units-thp HUGESLAB_BACKING=thp "$bin" free-units 2000
    # 32 MiB freed but one block in each THP SuperSlab: within 4 MiB of the
    # start in 3 s, its huge pages given up (never with
    # HUGESLAB_RELEASE_DELAY_MS=3600000, nor while a huge page was never split).
    run_case sparse-thp HUGESLAB_BACKING=thp "$bin" sparse 3000
    # The same with HUGESLAB_SPLIT_SPARSE=0: every huge page is still whole
    # after 3 s.
    run_case sparse-kept-thp HUGESLAB_BACKING=thp HUGESLAB_SPLIT_SPARSE=0 "$bin" sparse 3000 kept
    # The same blocks allocated again right after the frees, over about 4 s:
    # no SuperSlab gives up its huge page while the heap grows into them.
    run_case sparse-regrow-thp HUGESLAB_BACKING=thp "$bin" sparse 3000 regrow
    # The same as seldom-text-base (below) on huge pages.
    run_case seldom-text-thp HUGESLAB_BACKING=thp HUGESLAB_PURGE_DELAY_MS=100 "$bin" seldom-text
    # The process turns THP off for itself (prctl PR_SET_THP_DISABLE) after
    # its first allocation, as Redis does under THP "always", or before it
    # (inherited across execve): no huge page, the SuperSlabs mapped since
    # counted as base pages, and with half of 64 MiB of blocks freed their
    # free units go back (67,016 KiB of Rss still after 3 s while they
    # were counted as huge pages; 35,784 after 518 ms since).
    run_case thp-off-late HUGESLAB_BACKING=thp "$bin" thp-off late 3000
    run_case thp-off-start HUGESLAB_BACKING=thp "$bin" thp-off start 3000
    # Off but for hinted ranges (Linux 6.18): huge pages still.
    if kernel_at_least 6 18; then
        run_case thp-off-advised HUGESLAB_BACKING=thp "$bin" thp-off advised 3000
    else
        skip_case thp-off-advised "PR_THP_DISABLE_EXCEPT_ADVISED needs Linux 6.18 ($(uname -r))"
    fi
    # mlockall (below), and under MCL_FUTURE, which faults a mapping in as it
    # is made, 64 MiB of blocks cost at most 1.1 faults a SuperSlab plus 512
    # (16,384 before they were hinted first) and are huge pages.
    if [ $can_lock -eq 1 ]; then
        run_case mlockall-thp HUGESLAB_BACKING=thp HUGESLAB_PURGE_DELAY_MS=100 "$bin" mlockall thp
    else
        skip_case mlockall-thp "locking 150 MiB needs CAP_IPC_LOCK or ulimit -l unlimited (here $(ulimit -l) KiB)"
    fi
else
    for c in faults-thp faults-thp-1g stats hints purge-free purge-dontneed purge-uring purge-held-off purge-release \
        churn-thp churn-4k-thp small-heap small-heap-large small-heap-churn run-tail frontier-thp frontier-kept-thp frontier-churn-thp frontier-header-thp usable-kept outgrown given-back sparse-stays-base sparse-four dense-room counted orphans-thp trim-turns as-limit fresh-thp medium-short-thp middle-tails-thp overflow-returning overflow-growing sparse-threads-thp sparse-threads-fresh-thp sparse-threads-kept-thp free-units-thp sparse-thp sparse-kept-thp sparse-regrow-thp seldom-text-thp thp-off-late thp-off-start thp-off-advised mlockall-thp; do
        skip_case $c "THP is unavailable ($(thp_mode)) and cannot be switched without root"
    done
fi
# 256 threads alive at once, each holding 64 blocks of 16 B - 2.2 KiB: Rss
# grows by at most what they hold plus half and 16 KiB a thread (with
# a slab per thread and class, 2.8 times what they hold), and is back
# within 8 MiB of the start after the frees and malloc_trim.
run_case crowd "$bin" crowd
# Blocks of 4,000 B until malloc refuses one under RLIMIT_AS, one in ten
# freed: smaller blocks are had in their room (NULL before: no unit was
# left for a slab of their class).
run_case as-filled "$bin" as-filled
# The registry is a read-only mapping until written: VmData (private writable
# memory, the commit charge of vm.overcommit_memory=2) under 16 MiB at start
# (66 MiB while it was .bss).
run_case data-charge "$bin" data-charge
# mlockall(MCL_CURRENT | MCL_FUTURE): Rss and VmLck grow by less than 32
# MiB (the registry's 64 MiB of read-only zeroes were made resident and
# locked), blocks come and go under it, and mlockall and munlockall again
# and again while threads name runs in fresh registry pages lose none.
# madvise refuses locked pages: the SuperSlabs the freed blocks leave idle
# are unmapped (Rss 152,480 -> 11,168 KiB; 29,604 while they stayed,
# counted as purged, 72,608 in `mlockall thp`), and the statistics count
# what left.
# Needs memory locks beyond RLIMIT_MEMLOCK: CAP_IPC_LOCK (can_lock, above),
# or an unlimited limit.
if [ $can_lock -eq 1 ]; then
    run_case mlockall HUGESLAB_PURGE_DELAY_MS=100 "$bin" mlockall
else
    skip_case mlockall "locking 150 MiB needs CAP_IPC_LOCK or ulimit -l unlimited (here $(ulimit -l) KiB)"
fi
# A purge pass and a small heap's give-back run no seldom code: none of the
# library's seldom or apart text is mapped in a process after them (60 KiB of
# RSS while the lazy stage's look was marked seldom).
run_case seldom-text-base HUGESLAB_BACKING=base HUGESLAB_PURGE_DELAY_MS=100 "$bin" seldom-text
run_case faults-base HUGESLAB_BACKING=base "$bin" faults base 8
run_case purge-base HUGESLAB_BACKING=base HUGESLAB_PURGE_DELAY_MS=500 "$bin" purge free 3000
# 1.7 MiB freed in a SuperSlab that one block keeps in use: its free units
# leave RSS within 2 s (never, when only whole idle SuperSlabs went back).
run_case free-units-base HUGESLAB_BACKING=base "$bin" free-units 2000
run_case consumer-no-heap "$bin" consumer

if [ $is_root -eq 1 ] && set_pool_free 40; then
    run_case faults-hugetlb HUGESLAB_BACKING=hugetlb "$bin" faults hugetlb 32
else
    skip_case faults-hugetlb "cannot reserve 40 hugetlb pages (needs root and free memory)"
fi
if [ $is_root -eq 1 ] && [ "$(meminfo MemAvailable)" -gt $((3 * 1024 * 1024)) ] &&
    set_pool_free 530; then
    run_case faults-hugetlb-1g HUGESLAB_BACKING=hugetlb "$bin" faults hugetlb 512
else
    skip_case faults-hugetlb-1g "cannot reserve 530 hugetlb pages (needs root and 3 GiB free)"
fi
if [ $is_root -eq 1 ] && [ "$(meminfo MemAvailable)" -gt $((12 * 1024 * 1024)) ] &&
    set_pool_free 4160; then
    run_case faults-hugetlb-8g HUGESLAB_BACKING=hugetlb "$bin" faults hugetlb 4096
else
    skip_case faults-hugetlb-8g "cannot reserve 4,160 hugetlb pages (needs root and 12 GiB free)"
fi
if [ $is_root -eq 1 ] && set_pool_free 2; then
    out=$(HUGESLAB_BACKING=hugetlb HUGESLAB_VERBOSE=1 "$bin" fallback-hugetlb 2 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/    /'
    warnings=$(printf '%s\n' "$out" | grep -c 'hugetlb pool ran dry')
    if [ $rc -eq 0 ] && [ "$warnings" -eq 1 ]; then
        echo "PASS fallback-hugetlb"; pass=$((pass + 1))
    else
        echo "FAIL fallback-hugetlb: exit $rc, $warnings 'ran dry' warnings (want 1)"
        fail=$((fail + 1))
    fi
else
    skip_case fallback-hugetlb "cannot set a hugetlb pool of 2 free pages (needs root)"
fi
echo "$orig_hugepages" >"$hugepages_file" 2>/dev/null

# The same in the other mode that gives huge pages, where base pages need
# their hint.
other_mode=always
[ "$(thp_mode)" = always ] && other_mode=madvise
if [ $is_root -eq 1 ] && set_thp $other_mode; then
    run_case hints-$other_mode HUGESLAB_BACKING=thp "$bin" hints
    run_case thp-off-late-$other_mode HUGESLAB_BACKING=thp "$bin" thp-off late 3000
    [ -n "$orig_thp" ] && set_thp "$orig_thp"
else
    skip_case hints-$other_mode "cannot switch THP to $other_mode (needs root)"
    skip_case thp-off-late-$other_mode "cannot switch THP to $other_mode (needs root)"
fi
if [ $is_root -eq 1 ] && set_thp never; then
    run_case fallback-thp-never HUGESLAB_BACKING=thp "$bin" fallback-thp-never
    [ -n "$orig_thp" ] && set_thp "$orig_thp"
else
    skip_case fallback-thp-never "cannot switch THP to never (needs root)"
fi

echo "kernel: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# NUMA placement tests: each case runs in a throw-away QEMU guest with 2 and
# with 4 NUMA nodes (tests/numa/vm-run), and the kernel says where the pages
# went (move_pages, /proc/self/numa_maps).
#
#   tests/numa/run.sh                    hugeslab (build/libhugeslab.so)
#   tests/numa/run.sh --alloc glibc      the same cases with glibc's malloc,
#                                        to show the tests themselves are right
#   tests/numa/run.sh --nodes 2 local    only some node counts / cases
#   tests/numa/run.sh -v                 print every program's output
#
# Cases (see numa_placement_test.c and numa_module_test.c):
#   local remote migrate membind preferred interleave hugetlb   placement
#   cpuless                        the last node has memory and no CPUs (a CXL
#                                  expander): numactl --membind to it works
#   memless module-topology        4 nodes: node 1 has CPUs and no memory, node 3
#                                  memory and no CPUs, node 1 nearest to node 3:
#                                  no pool on node 1, its threads get node 3's
#   many-nodes                     66 nodes with memory, 2 with CPUs: one line at
#                                  start-up says pools go to the first 64 only
#   hugetlb-1g hugetlb-1g-none     booted with default_hugepagesz=1G: SuperSlabs
#                                  on 2 MiB pages, the 1 GiB pool untouched;
#                                  with no 2 MiB pool, a fallback and a message
#   module module-bind module-preferred module-interleave module-cap module-off
#                                        src/numa alone (hugeslab only)
#   module-bind-cap                4 nodes, --membind=1,2 with HUGESLAB_NUMA_NODES=2
#                                  (pools 0 and 1): SuperSlabs bound to 1 and 2
#   module-bind-relative           4 nodes, node 1 without memory: a bind to
#                                  relative nodes 0,1 is one to nodes 0 and 2
# Before them, numa/vm-run/timeout: a guest past vm-run's --timeout exits 124,
# which run_case's second boot of a guest that hung at boot relies on.
# Prints PASS/FAIL/SKIP lines and ends with "N passed, N failed, N skipped";
# exits 1 when a case failed. Without qemu or a guest kernel every case is
# skipped, not failed. Environment: CC, BUILD (default build).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/numa
vm=$here/vm-run
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
out=$BUILD/tests/numa
CC=${CC:-cc}

alloc=hugeslab verbose=0 node_counts="2 4" cases=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --alloc) alloc=$2; shift 2 ;;
        --nodes) node_counts=$2; shift 2 ;;
        -v) verbose=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) cases+=("$1"); shift ;;
    esac
done
[[ $alloc == hugeslab || $alloc == glibc ]] || { echo "--alloc hugeslab|glibc" >&2; exit 2; }
placement_cases="local local-crowd remote migrate membind preferred interleave hugetlb cpuless memless many-nodes hugetlb-1g hugetlb-1g-none"
module_cases="module module-bind module-preferred module-interleave module-cap module-off module-topology module-bind-cap module-bind-relative"
if [[ ${#cases[@]} -eq 0 ]]; then
    cases=($placement_cases)
    [[ $alloc == hugeslab ]] && cases+=($module_cases)
fi

passed=0 failed=0 skipped=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
skip() { echo "SKIP $1: $2"; skipped=$((skipped + 1)); }
summary() {
    echo "$passed passed, $failed failed, $skipped skipped"
    [[ $failed -eq 0 ]]
    exit
}

# ---- can we boot a guest at all? ------------------------------------------------
missing=""
command -v qemu-system-x86_64 >/dev/null || missing="qemu-system-x86_64 (apt-get install qemu-system-x86)"
command -v busybox >/dev/null || missing="${missing:+$missing, }busybox (apt-get install busybox-static)"
command -v cpio >/dev/null || missing="${missing:+$missing, }cpio"
if [[ -z ${NUMA_VM_KERNEL:-} ]] && ! compgen -G '/boot/vmlinuz-*' >/dev/null; then
    missing="${missing:+$missing, }a guest kernel (apt-get install linux-image-amd64)"
fi
if [[ -n $missing ]]; then
    for n in $node_counts; do
        for c in "${cases[@]}"; do skip "numa/${n}n/$c" "no $missing"; done
    done
    summary
fi

# ---- build ----------------------------------------------------------------------------
mkdir -p "$out/logs"
cflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -O2 -g -pthread -I$root/include -I$root/src"
build_log=$out/build.log
if ! $CC $cflags -o "$out/numa_placement_test" "$here/numa_placement_test.c" -ldl >"$build_log" 2>&1 ||
   ! $CC $cflags -Wstrict-prototypes -Wmissing-prototypes -o "$out/numa_module_test" \
        "$here/numa_module_test.c" "$root/src/numa/numa.c" "$root/src/common/log.c" \
        "$root/src/common/text.c" "$root/src/os/files.c" "$root/src/os/process.c" \
        "$root/src/os/memory.c" \
        >>"$build_log" 2>&1; then
    cat "$build_log"
    fail "numa/build" "the test programs do not compile"
    summary
fi
so=$BUILD/libhugeslab.so
preload=()
if [[ $alloc == hugeslab ]]; then
    if ! make -C "$root" -s lib BUILD="$BUILD" >"$build_log" 2>&1; then
        cat "$build_log"
        fail "numa/build" "make lib failed"
        summary
    fi
    preload=(--file "$so" --env "LD_PRELOAD=$so")
fi
hugetlb_support=0
# The output is read whole before grep: grep -q leaves at its first match,
# and the writer's SIGPIPE would then fail the pipeline under pipefail.
if [[ $alloc == hugeslab ]]; then
    verbose_options=$(HUGESLAB_VERBOSE=1 LD_PRELOAD=$so /bin/true 2>&1 || true)
    if grep -q hugetlb <<<"$verbose_options"; then hugetlb_support=1; fi
fi
has_numactl=0
command -v numactl >/dev/null && has_numactl=1

# ---- one case in one guest ------------------------------------------------------------
# run_case NAME NODES [--expect-log REGEX] [vm-run options] -- PROGRAM ARGS
# --expect-log: the case passes only if its output (stdout and stderr) has
# a line matching REGEX, e.g. a message hugeslab must print.
run_case() {
    local name=$1 nodes=$2; shift 2
    local vm_opts=() expect_log=''
    if [[ $1 == --expect-log ]]; then expect_log=$2; shift 2; fi
    while [[ $1 != -- ]]; do vm_opts+=("$1"); shift; done
    shift
    local log=$out/logs/${name//\//_}.log rc=0
    "$vm" --nodes "$nodes" --timeout 90 "${vm_opts[@]}" -- "$@" >"$log" 2>&1 || rc=$?
    # A guest that timed out or failed before the program printed anything
    # or vm-run saw the program start never booted (an emulator hiccup on
    # a loaded host, a guest kernel's soft lockup at boot): boot it once
    # more. vm-run's own lines, the console's among them, and qemu's are not
    # the program's. A program that started and then hung is a failure,
    # and stays one.
    if [[ $rc == 124 || $rc == 125 ]] && ! grep -qav -e '^vm-run:' -e '^qemu: ' "$log" &&
        ! grep -qa -e '^vm-run: the program had started' \
            -e '^vm-run: console: .*===== program start =====' "$log"; then
        echo "    (guest did not boot: $(head -c 200 "$log" | tr '\n' ' '); booting it again)"
        rc=0
        "$vm" --nodes "$nodes" --timeout 90 "${vm_opts[@]}" -- "$@" >"$log" 2>&1 || rc=$?
    fi
    [[ $verbose == 1 ]] && sed 's/^/    /' "$log"
    local result
    result=$(grep -a '^result: ' "$log" | tail -n 1)
    if [[ $rc == 0 && -n $expect_log ]] && ! grep -qaE -- "$expect_log" "$log"; then
        rc=1 result="result: FAIL no line matching '$expect_log' in the output"
    fi
    case $rc in
        0) pass "$name" ;;
        77) skip "$name" "${result#result: SKIP }" ;;
        *)
            local why=${result#result: FAIL }
            [[ -z $result ]] && why="exit status $rc (log: $log)"
            fail "$name" "$why"
            [[ $verbose == 1 ]] || sed 's/^/    /' "$log" | grep -av '^    hugeslab[^:]*: option' | tail -n 15
            ;;
    esac
}

# ---- vm-run's timeout ------------------------------------------------------------------
# run_case boots a guest again when the first timed out before its program
# printed anything (exit status 124): a guest that outlives --timeout must
# say so. A grep that found nothing in qemu's output made vm-run exit 1
# there under pipefail, and a guest that hung at boot failed its case.
rc=0
"$vm" --nodes 2 --timeout 2 -- /bin/sleep 60 >"$out/logs/vm-run_timeout.log" 2>&1 || rc=$?
if [[ $rc == 124 ]]; then
    pass numa/vm-run/timeout
else
    fail numa/vm-run/timeout "a guest past --timeout 2: exit status $rc, not 124 (log: $out/logs/vm-run_timeout.log)"
fi

test_prog=$out/numa_placement_test
module_prog=$out/numa_module_test
for n in $node_counts; do
    for c in "${cases[@]}"; do
        name=numa/${n}n/$c
        case $c in
            local|remote|migrate)
                run_case "$name" "$n" "${preload[@]}" -- "$test_prog" "$c" ;;
            local-crowd)
                # local with every thread's first blocks of each class from
                # its node's crowd heap (HUGESLAB_CROWD_THREADS=1): those
                # heaps' slabs are on their node too.
                if [[ $alloc != hugeslab ]]; then skip "$name" "hugeslab's own option"; continue; fi
                run_case "$name" "$n" "${preload[@]}" --env HUGESLAB_CROWD_THREADS=1 -- "$test_prog" local ;;
            membind|preferred|interleave)
                if [[ $has_numactl == 0 ]]; then skip "$name" "no numactl"; continue; fi
                case $c in
                    membind) run_case "$name" "$n" "${preload[@]}" -- numactl --membind=1 "$test_prog" policy bind 1 ;;
                    preferred) run_case "$name" "$n" "${preload[@]}" -- numactl --preferred=1 "$test_prog" policy preferred 1 ;;
                    interleave) run_case "$name" "$n" "${preload[@]}" -- numactl --interleave=all "$test_prog" policy interleave ;;
                esac ;;
            hugetlb)
                if [[ $alloc != hugeslab ]]; then skip "$name" "hugeslab's own backing; glibc has none to test"; continue; fi
                if [[ $hugetlb_support == 0 ]]; then
                    skip "$name" "the library does not offer HUGESLAB_BACKING=hugetlb (no 'hugetlb' in HUGESLAB_VERBOSE's options)"
                    continue
                fi
                hp=$(seq -s, 0 $((n - 1)) | sed 's/\([0-9]*\)/\1:24/g')
                run_case "$name" "$n" --hugepages "$hp" "${preload[@]}" --env HUGESLAB_BACKING=hugetlb -- "$test_prog" hugetlb ;;
            cpuless)
                if [[ $has_numactl == 0 ]]; then skip "$name" "no numactl"; continue; fi
                last=$((n - 1))
                run_case "$name" "$n" --cpus "$last" "${preload[@]}" -- \
                    numactl --membind="$last" "$test_prog" policy bind "$last" ;;
            memless|module-topology)
                [[ $n -eq 4 ]] || continue # one node count is enough
                odd_nodes=(--cpus 3 --memless 1 --distance 1:3:15)
                if [[ $c == memless ]]; then
                    run_case "$name" "$n" "${odd_nodes[@]}" "${preload[@]}" -- "$test_prog" topology
                else
                    run_case "$name" "$n" "${odd_nodes[@]}" -- "$module_prog" topology
                fi ;;
            many-nodes)
                [[ $n -eq 2 ]] || continue # one run is enough
                if [[ $alloc != hugeslab ]]; then skip "$name" "hugeslab's own message"; continue; fi
                run_case "numa/66n/$c" 66 --expect-log 'hugeslab(\[[^]]*\])?: 66 NUMA nodes have memory, more than the 64' \
                    --cpus 2 --mem-mib 8448 --hugepages 0 --timeout 200 "${preload[@]}" -- "$test_prog" local ;;
            hugetlb-1g|hugetlb-1g-none)
                # One node count is enough. A 1 GiB page needs a free,
                # 1 GiB-aligned GiB of one node: 2 GiB per node gives one.
                [[ $n -eq 2 ]] || continue
                if [[ $alloc != hugeslab || $hugetlb_support == 0 ]]; then
                    skip "$name" "needs hugeslab's hugetlb backing"
                    continue
                fi
                gigantic=(--mem-mib 4096 --append "default_hugepagesz=1G hugepagesz=1G hugepages=1")
                if [[ $c == hugetlb-1g ]]; then
                    run_case "$name" "$n" --hugepages 0:24,1:24 "${gigantic[@]}" "${preload[@]}" \
                        --env HUGESLAB_BACKING=hugetlb -- "$test_prog" hugetlb
                else
                    run_case "$name" "$n" --expect-log 'hugeslab\[[0-9]+ [^]]+\]: hugetlb: no 2 MiB pages reserved' \
                        --hugepages 0 "${gigantic[@]}" "${preload[@]}" --env HUGESLAB_BACKING=hugetlb \
                        --env HUGESLAB_VERBOSE=1 -- "$test_prog" hugetlb none
                fi ;;
            module)
                run_case "$name" "$n" -- "$module_prog" default ;;
            module-bind|module-preferred|module-interleave)
                if [[ $has_numactl == 0 ]]; then skip "$name" "no numactl"; continue; fi
                [[ $n -ge 4 ]] || continue # one node count is enough
                case $c in
                    module-bind) run_case "$name" "$n" -- numactl --membind=1,2 "$module_prog" bind 1,2 ;;
                    module-preferred) run_case "$name" "$n" -- numactl --preferred=3 "$module_prog" preferred 3 ;;
                    module-interleave) run_case "$name" "$n" -- numactl --interleave=all "$module_prog" interleave ;;
                esac ;;
            module-bind-cap)
                if [[ $has_numactl == 0 ]]; then skip "$name" "no numactl"; continue; fi
                [[ $n -ge 4 ]] || continue # one node count is enough
                run_case "$name" "$n" --env HUGESLAB_NUMA_NODES=2 -- \
                    numactl --membind=1,2 "$module_prog" range-bind 1,2 ;;
            module-bind-relative)
                [[ $n -eq 4 ]] || continue # one node count is enough
                run_case "$name" "$n" --cpus 3 --memless 1 -- \
                    "$module_prog" range-bind 0,2 relative 0,1 ;;
            module-cap)
                [[ $n -ge 4 ]] || continue # one node count is enough
                run_case "$name" "$n" --env HUGESLAB_NUMA_NODES=2 -- "$module_prog" default ;;
            module-off)
                [[ $n -eq 2 ]] || continue
                run_case "$name" "$n" --env HUGESLAB_NUMA=off -- "$module_prog" default ;;
            *) fail "$name" "unknown case (see the top of tests/numa/run.sh)" ;;
        esac
    done
done
summary

#!/bin/bash
# The hugeslab command (tools/hugeslab): what `run` sets, `doctor` against
# sysfs and /proc, `pool` reserving and releasing per node (as root; the pool
# is put back), `stats` and `top` against /proc/PID/smaps_rollup; then doctor
# and pool again inside 2- and 4-node QEMU guests (tests/numa/vm-run), one
# node of the four without CPUs.
# Prints PASS/FAIL/SKIP lines (tool/...); exits 1 when a case failed.
#
# Usage: tests/tool/run.sh [BUILD]
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
hs=$BUILD/hugeslab
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-tool.XXXXXX") || exit 1
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

pass() { echo "PASS tool/$1"; }
fail() { echo "FAIL tool/$1: $2"; failed=1; }
skip() { echo "SKIP tool/$1: $2"; }

if [ ! -x "$hs" ]; then
    for c in run doctor pool stats top; do
        skip "$c" "$hs not built (needs libnuma-dev and libhugetlbfs-dev)"
    done
    exit 0
fi

# ---- run: the variables it promises, and that the library obeys them ----
case_run() {
    local env out json
    env=$("$hs" run --profile database --backing base --stats "$tmp/run.json" --set purge_delay_ms=7 \
          -- env 2>&1) || { fail run "hugeslab run -- env failed: $env"; return; }
    for want in HUGESLAB_PROFILE=database HUGESLAB_BACKING=base HUGESLAB_STATS_FILE="$tmp/run.json" \
                HUGESLAB_PURGE_DELAY_MS=7; do
        grep -qx "$want" <<<"$env" || { fail run "the environment lacks $want"; return; }
    done
    grep -q '^LD_PRELOAD=.*/libhugeslab\.so' <<<"$env" || { fail run "LD_PRELOAD does not name libhugeslab"; return; }
    # The library takes them: verbose lists them, the statistics show the backing.
    out=$("$hs" run --backing base --verbose --set purge_delay_ms=7 --stats "$tmp/base.json" -- \
          python3 -c 'x = [bytes(100) for i in range(20000)]' 2>&1)
    grep -q "option BACKING=base" <<<"$out" && grep -q "option PURGE_DELAY_MS=7" <<<"$out" ||
        { fail run "the library did not report BACKING=base and PURGE_DELAY_MS=7: $(head -c 300 <<<"$out")"; return; }
    json=$(cat "$tmp/base.json" 2>/dev/null)
    grep -Eq '"superslabs_base": [1-9]' <<<"$json" ||
        { fail run "--backing base, but the statistics show no base SuperSlab: $json"; return; }
    # The opposite setting gives the other figure.
    "$hs" run --backing thp --stats "$tmp/thp.json" -- python3 -c 'x = [bytes(100) for i in range(20000)]'
    grep -q '"superslabs_base": 0' "$tmp/thp.json" 2>/dev/null ||
        { fail run "--backing thp still shows base SuperSlabs: $(cat "$tmp/thp.json" 2>/dev/null)"; return; }
    out=$("$hs" run --profile no-such -- true 2>&1) && { fail run "an unknown profile was accepted"; return; }
    grep -q "unknown profile 'no-such'; profiles: .*database" <<<"$out" || { fail run "bad message: $out"; return; }
    out=$("$hs" run --backing huge -- true 2>&1) && { fail run "an unknown backing was accepted"; return; }
    grep -q "backings: auto hugetlb thp base" <<<"$out" || { fail run "bad message: $out"; return; }
    pass run
}

# ---- doctor: every figure it prints equals the kernel's ----
bracket() { sed -n 's/.*\[\(.*\)\].*/\1/p' "$1"; }
# doctor's multi-size THP line ($1: its output) against sysfs: every folio
# size below the PMD size not "never", smallest first.
multi_size_said() {
    local thp=/sys/kernel/mm/transparent_hugepage want="not in this kernel" kb f
    if [ -d $thp/hugepages-2048kB ]; then
        want=
        kb=8
        while [ $kb -lt $(( $(cat $thp/hpage_pmd_size) / 1024 )) ]; do
            f=$thp/hugepages-${kb}kB/enabled
            [ -r "$f" ] && [ "$(bracket "$f")" != never ] && want="${want:+$want, }${kb}kB $(bracket "$f")"
            kb=$((kb * 2))
        done
        [ -n "$want" ] || want="none below the PMD size"
    fi
    grep -q "multi-size THP: $want\b" <<<"$1" && return 0
    fail doctor "multi-size THP is '$want', doctor says: $(grep 'multi-size THP' <<<"$1")"
    return 1
}
case_doctor() {
    local out want node n f size_kb
    out=$("$hs" doctor 2>&1) || { fail doctor "exit status $?: $out"; return; }
    echo "$out" >"$tmp/doctor.out"
    local thp=/sys/kernel/mm/transparent_hugepage
    if [ -r $thp/enabled ]; then
        grep -q "THP enabled: $(bracket $thp/enabled)\b" <<<"$out" || { fail doctor "THP enabled is $(bracket $thp/enabled), doctor says: $(grep 'THP enabled' <<<"$out")"; return; }
        grep -q "THP defrag: $(bracket $thp/defrag)\b" <<<"$out" || { fail doctor "THP defrag is $(bracket $thp/defrag), doctor says: $(grep 'THP defrag' <<<"$out")"; return; }
        multi_size_said "$out" || return
        # As root, once more with 64 KiB folios for memory without a hint
        # (the setting put back after).
        local m64=$thp/hugepages-64kB/enabled was
        if [ "$(id -u)" -eq 0 ] && [ -w $m64 ]; then
            was=$(bracket $m64)
            echo always >$m64
            local said=0
            multi_size_said "$("$hs" doctor 2>&1)" || said=1
            echo "$was" >$m64
            [ $said -eq 0 ] || return
        fi
    fi
    for node in /sys/devices/system/node/node[0-9]*; do
        n=${node##*node}
        # cpus and memory of the node
        local cpus total_mb
        cpus=$(cat "$node/cpulist"); [ -n "$cpus" ] || cpus=none
        total_mb=$(( $(awk '/MemTotal/ {print $4}' "$node/meminfo") / 1024 ))
        grep -q "node $n: cpus $cpus, memory $total_mb MiB" <<<"$out" ||
            { fail doctor "node $n has cpus $cpus and $total_mb MiB; doctor says: $(grep "node $n:" <<<"$out" | head -1)"; return; }
        if [ -z "$(cat "$node/cpulist")" ] && ! grep "node $n: cpus" <<<"$out" | grep -q "CPU-less"; then
            fail doctor "node $n has no CPUs and doctor does not say so"; return
        fi
        grep -q "distances node $n: $(cat "$node/distance")\$" <<<"$out" ||
            { fail doctor "node $n distances $(cat "$node/distance"); doctor says: $(grep "distances node $n:" <<<"$out")"; return; }
        for f in "$node"/hugepages/hugepages-*; do
            [ -d "$f" ] || continue
            size_kb=${f##*hugepages-}; size_kb=${size_kb%kB}
            # The pools may change under another program: read twice around.
            want="hugetlb $size_kb kB pages, node $n: $(cat "$f/nr_hugepages") total, $(cat "$f/free_hugepages") free, $(cat "$f/surplus_hugepages") surplus"
            if ! grep -q "$want" <<<"$out"; then
                out=$("$hs" doctor 2>&1)
                want="hugetlb $size_kb kB pages, node $n: $(cat "$f/nr_hugepages") total, $(cat "$f/free_hugepages") free, $(cat "$f/surplus_hugepages") surplus"
                grep -q "$want" <<<"$out" || { fail doctor "sysfs: '$want'; doctor: $(grep "kB pages, node $n" <<<"$out" | tr '\n' ' ')"; return; }
            fi
        done
    done
    local cpus_allowed mems_allowed
    cpus_allowed=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
    mems_allowed=$(awk '/^Mems_allowed_list/ {print $2}' /proc/self/status)
    grep -q "cpuset $(cat /proc/self/cpuset): cpus $cpus_allowed, mems $mems_allowed" <<<"$out" ||
        { fail doctor "cpuset: doctor says $(grep cpuset <<<"$out")"; return; }
    grep -q "memory policy: default" <<<"$out" || { fail doctor "memory policy: $(grep 'memory policy' <<<"$out")"; return; }
    # The THP setting a program inherits: off where a parent set
    # PR_SET_THP_DISABLE (python3 sets it through ctypes, then runs doctor).
    if [ "$(awk '/^THP_enabled:/ {print $2}' /proc/self/status)" = 1 ]; then
        grep -q "THP for programs started from here: as the system's mode" <<<"$out" ||
            { fail doctor "THP_enabled is 1; doctor: $(grep 'programs started' <<<"$out")"; return; }
    fi
    if command -v python3 >/dev/null; then
        out2=$(python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])' "$hs" doctor 2>&1)
        grep -q "\[note\] THP for programs started from here: off (prctl PR_SET_THP_DISABLE, inherited)" <<<"$out2" ||
            { fail doctor "under PR_SET_THP_DISABLE: $(grep 'programs started' <<<"$out2")"; return; }
    fi
    # A policy set by numactl is the one it reports.
    if command -v numactl >/dev/null; then
        out2=$(numactl --preferred=0 "$hs" doctor 2>&1)
        grep -q "memory policy: preferred nodes 0" <<<"$out2" ||
            { fail doctor "under numactl --preferred=0: $(grep 'memory policy' <<<"$out2")"; return; }
        out2=$(numactl --membind=0 "$hs" doctor 2>&1)
        grep -q "memory policy: bind nodes 0" <<<"$out2" ||
            { fail doctor "under numactl --membind=0: $(grep 'memory policy' <<<"$out2")"; return; }
    fi
    # The limits a program inherits: ulimit -v's MiB, with the registry's
    # 64 MiB named, and too little to start under 68 MiB.
    local as_limit
    as_limit=$(ulimit -v)
    if [ "$as_limit" = unlimited ]; then want="address space limit (ulimit -v): unlimited"
    else want="address space limit (ulimit -v): $((as_limit / 1024)) MiB"; fi
    grep -q "$want" <<<"$out" || { fail doctor "wanted '$want'; doctor: $(grep 'address space' <<<"$out")"; return; }
    out2=$(ulimit -v 1000000 && "$hs" doctor 2>&1)
    grep -q "\[warn\] address space limit (ulimit -v): 976 MiB: hugeslab's registry takes 64 MiB" <<<"$out2" &&
        grep -q "fix: ulimit -v unlimited" <<<"$out2" ||
        { fail doctor "under ulimit -v 1000000: $(grep -A1 'address space' <<<"$out2")"; return; }
    out2=$(ulimit -v 60000 && "$hs" doctor 2>&1)
    grep -q "address space limit (ulimit -v): 58 MiB: .*a program cannot start with it" <<<"$out2" ||
        { fail doctor "under ulimit -v 60000: $(grep 'address space' <<<"$out2")"; return; }
    # ulimit -l: without CAP_IPC_LOCK and under 80 MiB, a note of what a
    # program that locks itself can hold. 64 KiB: at most any hard limit
    # (a container's default).
    out2=$(ulimit -l 64 && "$hs" doctor 2>&1)
    grep -q "locked memory limit (ulimit -l): 64 KiB" <<<"$out2" ||
        { fail doctor "under ulimit -l 64: $(grep 'locked memory' <<<"$out2")"; return; }
    if command -v setpriv >/dev/null && grep -q "and CAP_IPC_LOCK" <<<"$out2"; then
        out2=$(ulimit -l 64 && setpriv --bounding-set -ipc_lock "$hs" doctor 2>&1)
        grep -q "\[note\] locked memory limit (ulimit -l): 64 KiB, no CAP_IPC_LOCK: .*2 MiB for each SuperSlab" <<<"$out2" &&
            grep -q "fix: ulimit -l unlimited, or CAP_IPC_LOCK" <<<"$out2" ||
            { fail doctor "without CAP_IPC_LOCK: $(grep -A1 'locked memory' <<<"$out2")"; return; }
    fi
    grep -q "overcommit: $(cat /proc/sys/vm/overcommit_memory) " <<<"$out" ||
        { fail doctor "overcommit is $(cat /proc/sys/vm/overcommit_memory); doctor: $(grep overcommit <<<"$out")"; return; }
    if [ -r /proc/sys/kernel/io_uring_disabled ]; then
        grep -q "kernel.io_uring_disabled = $(cat /proc/sys/kernel/io_uring_disabled))" <<<"$out" ||
            { fail doctor "io_uring: $(grep io_uring <<<"$out")"; return; }
    fi
    # Free page reporting: the order, and the balloons that negotiated it
    # (feature bit 5 of a bound virtio balloon, device id 5).
    local rep=/sys/module/page_reporting/parameters/page_reporting_order balloons=0 dev
    if [ -r $rep ]; then
        for dev in /sys/bus/virtio/devices/*; do
            [ -e "$dev/driver" ] && [ "$(( $(cat "$dev/device") ))" -eq 5 ] &&
                [ "$(cut -c6 "$dev/features")" = 1 ] && balloons=$((balloons + 1))
        done
        if [ $balloons -eq 0 ]; then want="free page reporting: order $(cat $rep), but no virtio balloon"
        else want="free page reporting: order $(cat $rep) ([0-9]* KiB blocks) to the host through $balloons virtio"; fi
        grep -q "$want" <<<"$out" || { fail doctor "wanted '$want'; doctor: $(grep 'page reporting' <<<"$out")"; return; }
    else
        grep -q "free page reporting: not in this kernel" <<<"$out" || { fail doctor "no $rep; doctor: $(grep 'page reporting' <<<"$out")"; return; }
    fi
    # Each warning or note that can be fixed carries its command.
    if grep -q "THP enabled: never" <<<"$out" && ! grep -q "fix: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled" <<<"$out"; then
        fail doctor "THP never without its fix"; return
    fi
    pass doctor
}

# ---- pool: reserves and releases on a node, says what it got ----
case_pool() {
    local f=/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages before out now
    [ "$(id -u)" -eq 0 ] || { skip pool "needs root to change the hugetlb pool"; return; }
    [ -w "$f" ] || { skip pool "no writable $f"; return; }
    before=$(cat "$f")
    out=$("$hs" pool --reserve $(( (before + 2) * 2 ))M --node 0 2>&1)
    now=$(cat "$f")
    if [ "$now" -ne $((before + 2)) ]; then
        echo "$before" >"$f"
        fail pool "asked $((before + 2)) pages on node 0, sysfs has $now: $out"; return
    fi
    grep -q "node 0: asked $((before + 2)) pages (.*), got $now (was $before)" <<<"$out" ||
        { echo "$before" >"$f"; fail pool "report: $out"; return; }
    out=$("$hs" pool --release 4M --node 0 2>&1)
    now=$(cat "$f")
    echo "$before" >"$f"
    [ "$now" -eq "$before" ] || { fail pool "released 2 pages: sysfs has $now, expected $before: $out"; return; }
    grep -q "node 0: asked $before pages" <<<"$out" || { fail pool "release report: $out"; return; }
    out=$("$hs" pool --reserve 3M --node 0 --spread 2>&1) && { fail pool "--node with --spread accepted"; return; }
    out=$("$hs" pool --reserve lots 2>&1) && { fail pool "a bad size accepted"; return; }
    grep -q "'lots' is not a size" <<<"$out" || { fail pool "bad size message: $out"; return; }
    # A size whose rounding to pages wrapped to 0 (it emptied the pool), and
    # a node number past int's range (it was node 0).
    out=$("$hs" pool --reserve 18446744073709551615 2>&1) && { echo "$before" >"$f"; fail pool "2^64 - 1 bytes accepted: $out"; return; }
    grep -q "is more than this machine's memory" <<<"$out" || { fail pool "huge size message: $out"; return; }
    out=$("$hs" pool --node 4294967296 2>&1) && { fail pool "node 4294967296 accepted: $out"; return; }
    [ "$(cat "$f")" -eq "$before" ] || { fail pool "the pool was not put back"; return; }
    pass pool
}

# ---- stats, top: the kernel's figures for a live process ----
case_stats() {
    local pid out field want got plain
    "$hs" run --stats "$tmp/live-%p.json" --interval 100 -- python3 -c '
import sys, time
x = [bytes(200) for i in range(100000)]
sys.stdout.write("ready\n"); sys.stdout.flush()
time.sleep(60)' >"$tmp/ready" 2>&1 &
    pid=$!
    pids="$pids $pid"
    for _ in $(seq 100); do grep -q ready "$tmp/ready" && break; sleep 0.1; done
    sleep 0.3
    for attempt in 1 2 3; do
        out=$("$hs" stats "$pid" 2>&1)
        local ok=1
        for field in Rss AnonHugePages LazyFree; do
            want=$(awk -v k="$field:" '$1 == k {print $2}' "/proc/$pid/smaps_rollup")
            got=$(awk -v k="$field" '$1 == k {print $2}' <<<"$out")
            [ "$want" = "$got" ] || { ok=0; why="$field: smaps_rollup $want kB, stats $got kB"; }
        done
        want=$(( $(awk '$1 == "Private_Hugetlb:" || $1 == "Shared_Hugetlb:" {s += $2} END {print s + 0}' "/proc/$pid/smaps_rollup") ))
        got=$(awk '$1 == "Hugetlb" {print $2}' <<<"$out")
        [ "$want" = "$got" ] || { ok=0; why="Hugetlb: smaps_rollup $want kB, stats $got kB"; }
        [ $ok = 1 ] && break
    done
    [ $ok = 1 ] || { fail stats "$why"; return; }
    # pages per node: numa_maps summed by node, the same order as Rss
    got=$(awk '$1 == "node" {s += $3} END {print s + 0}' <<<"$out")
    want=$(awk '$1 == "Rss" {print $2}' <<<"$out")
    [ "$got" -gt 0 ] && [ "$got" -le $((want * 2)) ] || { fail stats "per-node total $got kB against Rss $want kB"; return; }
    grep -q "^pid $pid (python3)" <<<"$out" || { fail stats "header: $(head -1 <<<"$out")"; return; }
    grep -q "^hugeslab ($tmp/live-$pid.json, written [0-9]* s ago):" <<<"$out" ||
        { fail stats "does not show the file the process publishes: $out"; return; }
    grep -Eq "^  superslabs_mapped +[1-9]" <<<"$out" || { fail stats "no superslabs_mapped from the file: $out"; return; }
    grep -Eq "^  pid +$pid\$" <<<"$out" || { fail stats "the file's pid is not $pid: $out"; return; }
    out=$("$hs" stats 999999999 2>&1) && { fail stats "a missing process gave no error"; return; }
    out=$("$hs" stats $((4294967296 + pid)) 2>&1) && { fail stats "pid 2^32 + $pid taken for $pid: $out"; return; }
    # Another user's HUGESLAB_STATS_FILE is read from its environment: a
    # long pattern with %e in it (it wrote past the path's buffer).
    local long_name="$tmp/$(printf 'l%.0s' $(seq 60))" long_file
    ln -sf "$(command -v sleep)" "$long_name"
    long_file="$tmp/$(printf 'x%.0s' $(seq 470))%e"
    HUGESLAB_STATS_FILE="$long_file" LD_PRELOAD="$BUILD/libhugeslab.so" "$long_name" 30 &
    pids="$pids $!"
    sleep 0.3
    out=$("$hs" stats $! 2>&1) || { fail stats "a long HUGESLAB_STATS_FILE pattern: exit $?: $(tail -n 3 <<<"$out")"; return; }
    grep -q "xxxxllll* not written yet" <<<"$out" || { fail stats "a long pattern's file not shown expanded: $(tail -n 2 <<<"$out")"; return; }
    pass stats

    # top lists the process running hugeslab, not a plain one (unless --all)
    sleep 30 &
    plain=$!
    pids="$pids $plain"
    out=$("$hs" top --once 2>&1)
    grep -Eq "^ *$pid +python3 .* [1-9][0-9]*  0:" <<<"$out" || { fail top "python3 ($pid) missing, or without its SuperSlabs: $out"; return; }
    grep -Eq "^ *$plain +sleep " <<<"$out" && { fail top "a process without hugeslab listed"; return; }
    "$hs" top --once --all | grep -Eq "^ *$plain +sleep " || { fail top "--all does not list $plain"; return; }
    pass top
}

# ---- doctor and pool in 2- and 4-node guests (node 3 of 4 without CPUs) ----
case_vm() {
    local vm=$root/tests/numa/vm-run missing="" nodes cpus out rc
    command -v qemu-system-x86_64 >/dev/null || missing="qemu-system-x86_64 (apt-get install qemu-system-x86)"
    command -v busybox >/dev/null || missing="${missing:+$missing, }busybox (apt-get install busybox-static)"
    command -v cpio >/dev/null || missing="${missing:+$missing, }cpio"
    if [ -z "${NUMA_VM_KERNEL:-}" ] && ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
        missing="${missing:+$missing, }a guest kernel (apt-get install linux-image-amd64)"
    fi
    for nodes in 2 4; do
        if [ -n "$missing" ]; then
            skip "vm-${nodes}n-doctor" "no $missing"; skip "vm-${nodes}n-pool" "no $missing"
            continue
        fi
        cpus=$nodes
        [ "$nodes" = 4 ] && cpus=3 # the last node has memory and no CPU
        for attempt in 1 2; do
            rc=0
            out=$("$vm" --nodes "$nodes" --cpus "$cpus" --timeout 90 --file "$hs" -- \
                  /bin/sh "$root/tests/tool/vm-guest.sh" "$hs" "$nodes" 2>&1) || rc=$?
            grep -q "^PASS tool/\|^FAIL tool/" <<<"$out" && break
        done
        if ! grep -q "^PASS tool/\|^FAIL tool/" <<<"$out"; then
            fail "vm-${nodes}n-doctor" "the guest did not run (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
            continue
        fi
        grep "^PASS tool/\|^FAIL tool/\|^    " <<<"$out"
        grep -q "^FAIL tool/" <<<"$out" && failed=1
    done
}

case_run
case_doctor
case_pool
case_stats
case_vm
exit $failed

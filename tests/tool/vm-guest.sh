#!/bin/sh
# Runs inside a NUMA guest (tests/tool/run.sh boots it with tests/numa/vm-run):
# `hugeslab doctor` against the guest's sysfs, then `hugeslab pool` reserving
# and releasing per node. Prints PASS/FAIL lines (tool/vm-...).
# Usage: vm-guest.sh HUGESLAB NODES
hs=$1
nodes=$2
fail=0
out=$("$hs" doctor 2>&1)
bad=""
for n in $(seq 0 $((nodes - 1))); do
    d=/sys/devices/system/node/node$n
    cpus=$(cat $d/cpulist)
    [ -n "$cpus" ] || cpus=none
    mem=$(( $(awk '/MemTotal/ {print $4}' $d/meminfo) / 1024 ))
    echo "$out" | grep -q "node $n: cpus $cpus, memory $mem MiB" || bad="$bad node$n(cpus $cpus, $mem MiB)"
    if [ "$cpus" = none ]; then
        echo "$out" | grep "node $n: cpus none" | grep -q "CPU-less" || bad="$bad node$n-not-called-CPU-less"
    fi
    echo "$out" | grep -q "distances node $n: $(cat $d/distance)\$" || bad="$bad node$n-distances($(cat $d/distance))"
    h=$d/hugepages/hugepages-2048kB
    want="hugetlb 2048 kB pages, node $n: $(cat $h/nr_hugepages) total, $(cat $h/free_hugepages) free, $(cat $h/surplus_hugepages) surplus"
    echo "$out" | grep -q "$want" || bad="$bad node$n-pool($want)"
done
echo "$out" | grep -q "NUMA: $nodes node(s) configured" || bad="$bad node-count"
if [ -n "$bad" ]; then
    echo "FAIL tool/vm-${nodes}n-doctor: differs from sysfs:$bad"
    echo "$out" | sed 's/^/    /'
    fail=1
else
    echo "PASS tool/vm-${nodes}n-doctor"
fi

# pool: node 1 to 6 pages, then 8 pages spread over the nodes with memory,
# then every free page released.
pages() { cat /sys/devices/system/node/node$1/hugepages/hugepages-2048kB/nr_hugepages; }
bad=""
out=$("$hs" pool --reserve 12M --node 1 2>&1)
[ "$(pages 1)" -eq 6 ] || bad="$bad node1=$(pages 1)-not-6"
echo "$out" | grep -q "node 1: asked 6 pages (12 MiB), got 6" || bad="$bad report:$out"
out=$("$hs" pool --reserve $((nodes * 4))M --spread 2>&1)
for n in $(seq 0 $((nodes - 1))); do
    [ "$(pages $n)" -eq 2 ] || bad="$bad spread-node$n=$(pages $n)"
done
echo "$out" | grep -c "asked 2 pages" | grep -q "^$nodes\$" || bad="$bad spread-report:$out"
out=$("$hs" pool --release 2>&1)
for n in $(seq 0 $((nodes - 1))); do
    [ "$(pages $n)" -eq 0 ] || bad="$bad released-node$n=$(pages $n)"
done
out=$("$hs" pool --reserve 4M --node $nodes 2>&1) && bad="$bad a-missing-node-accepted"
if [ -n "$bad" ]; then
    echo "FAIL tool/vm-${nodes}n-pool:$bad"
    fail=1
else
    echo "PASS tool/vm-${nodes}n-pool"
fi
exit $fail

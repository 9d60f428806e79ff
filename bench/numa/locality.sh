#!/usr/bin/env bash
# NUMA locality of hugeslab and other allocators: where do a thread's blocks
# land? Runs in throw-away QEMU guests with 2 and 4 NUMA nodes
# (tests/numa/vm-run); the kernel reports each page's node. Placement is the
# figure here, not time: under QEMU's TCG timings mean nothing.
#
#   bench/numa/locality.sh [--nodes "2 4"] [--alloc "hugeslab glibc ..."] [--out FILE]
#
# Cases, for every allocator (one guest per allocator and node count):
#   local       one thread pinned per node, 20000 blocks of 64 B..1 KiB each
#               (tests/numa case a); figure: share of pages on the thread's node
#   remote      producer on node 0, consumer on node 1 frees its blocks and
#               allocates, then the producer allocates again (case b)
#   membind     under numactl --membind=1: share of pages on node 1
#   preferred   under numactl --preferred=1: share of pages on node 1
#   interleave  under numactl --interleave=all: the emptiest node's share of
#               an even split (1.00 = perfectly even)
#   kv          bench/numa/kv_workload.c: shared hash table, one thread per
#               node, values 16 B..4 KiB, 50% insert 30% lookup 20% delete;
#               share of live value pages on the allocating thread's node
#   kv-bound    the same under numactl --cpunodebind=1 --membind=1
# Columns: remote frees from hugeslab_stats() (hugeslab only), and anonymous
# plus hugetlb memory per node from /proc/self/numa_maps at the end, in MiB.
# Prints a Markdown table (also written to --out when given).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
vm=$root/tests/numa/vm-run
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
out_dir=$BUILD/bench/numa
CC=${CC:-cc}
libdir=/usr/lib/x86_64-linux-gnu

node_counts="2 4" allocs="hugeslab glibc mimalloc jemalloc tcmalloc" out_file=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --nodes) node_counts=$2; shift 2 ;;
        --alloc) allocs=$2; shift 2 ;;
        --out) out_file=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in qemu-system-x86_64 busybox numactl; do
    command -v "$tool" >/dev/null || { echo "locality.sh: needs $tool (apt-get install qemu-system-x86 busybox-static numactl linux-image-amd64)" >&2; exit 2; }
done

mkdir -p "$out_dir/logs"
cflags="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -pthread -I$root/include -I$root/tests/numa"
$CC $cflags -o "$out_dir/numa_placement_test" "$root/tests/numa/numa_placement_test.c" -ldl || exit 1
$CC $cflags -o "$out_dir/kv_workload" "$root/bench/numa/kv_workload.c" -ldl || exit 1
make -C "$root" -s lib BUILD="$BUILD" >/dev/null || exit 1

lib_of() {
    case $1 in
        hugeslab) echo "$BUILD/libhugeslab.so" ;;
        glibc) echo "" ;;
        mimalloc) echo "$libdir/libmimalloc.so.2" ;;
        jemalloc) echo "$libdir/libjemalloc.so.2" ;;
        tcmalloc) echo "$libdir/libtcmalloc_minimal.so.4" ;;
        *) echo "unknown allocator $1" >&2; exit 2 ;;
    esac
}

place=$out_dir/numa_placement_test kv=$out_dir/kv_workload
# Every case of one guest, each preceded by a marker line the parser keys on.
script="
echo '@@case local'; $place local
echo '@@case remote'; $place remote
echo '@@case membind'; numactl --membind=1 $place policy bind 1
echo '@@case preferred'; numactl --preferred=1 $place policy preferred 1
echo '@@case interleave'; numactl --interleave=all $place policy interleave
echo '@@case kv'; $kv
echo '@@case kv-bound'; numactl --cpunodebind=1 --membind=1 $kv
true"

rows=()
for n in $node_counts; do
    for a in $allocs; do
        lib=$(lib_of "$a")
        opts=(--nodes "$n" --timeout 300 --file "$place" --file "$kv")
        if [[ -n $lib ]]; then
            [[ -r $lib ]] || { echo "locality.sh: skipping $a: $lib not installed" >&2; continue; }
            opts+=(--file "$lib" --env "LD_PRELOAD=$lib")
        fi
        log=$out_dir/logs/$a-${n}n.log
        echo "locality.sh: $a, $n nodes ..." >&2
        "$vm" "${opts[@]}" -- /bin/sh -c "$script" >"$log" 2>&1 || echo "locality.sh: $a on $n nodes: the guest failed, see $log" >&2
        while IFS= read -r row; do rows+=("$row"); done < <(awk -v alloc="$a" -v nodes="$n" '
            /^@@case / { c = $2; next }
            /^figures: / {
                local = ""; rf = "-"; kib = ""
                for (i = 2; i <= NF; i++) {
                    split($i, kv, "=")
                    if (kv[1] == "local") local = kv[2]
                    else if (kv[1] == "remote_frees") rf = kv[2]
                    else if (kv[1] == "numa_maps_kib") kib = substr($i, length("numa_maps_kib=") + 1)
                }
                m = split(kib, parts, ",")
                mib = ""
                for (j = 1; j <= m; j++) {
                    split(parts[j], p, "=")
                    mib = mib (j > 1 ? " " : "") sprintf("%s=%.0f", p[1], p[2] / 1024)
                }
                printf "| %s | %s | %s | %.4f | %s | %s |\n", alloc, nodes, c, local, rf, mib
            }' "$log")
    done
done

{
    echo "| allocator | nodes | case | local pages | remote frees | per-node MiB (numa_maps) |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} | tee ${out_file:+"$out_file"}

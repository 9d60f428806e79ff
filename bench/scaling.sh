#!/bin/bash
# Thread scaling of the cross-thread workloads: bench_mt at several thread
# counts under hugeslab and the allocators in LIB_DIR, alternating, ROUNDS
# rounds of 1 s runs, then a table of medians (bench/scaling.py): larson
# (with and without hand-offs), prodcons, rounds and queue at THREADS,
# falseshare at the most of them, and larson and prodcons at THREADS_MI.
#
#   bench/scaling.sh OUT_DIR
#
# Meant for a machine with many cores, where the comparison allocators may be
# plain copies: nothing is built or installed here. Environment:
#   SO        hugeslab's library      (build/libhugeslab.so)
#   MT_BIN    bench_mt                (build/bench/bench_mt)
#   LIB_DIR   libmimalloc.so.2, libjemalloc.so.2, libtcmalloc_minimal.so.4
#             (/usr/lib/x86_64-linux-gnu); a missing one is left out
#   THREADS   thread counts for every allocator        ("2 16")
#   THREADS_MI  more thread counts, hugeslab and mimalloc only ("4 8"; "" for none)
#   ROUNDS    runs per allocator and row                (3)
# A run's line goes to OUT_DIR/mt.txt as it comes: lib=... T=... args=...
# and bench_mt's key=value pairs.
set -u
out=${1:?usage: bench/scaling.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
so=${SO:-$root/build/libhugeslab.so}
mt_bin=${MT_BIN:-$root/build/bench/bench_mt}
lib_dir=${LIB_DIR:-/usr/lib/x86_64-linux-gnu}
threads=${THREADS:-2 16}
threads_mi=${THREADS_MI-4 8}
rounds=${ROUNDS:-3}
for f in "$so" "$mt_bin"; do
    [ -e "$f" ] || { echo "scaling.sh: $f is missing (make lib build/bench/bench_mt)" >&2; exit 2; }
done
mkdir -p "$out"
results=$out/mt.txt
: >"$results"

declare -A preload=([hugeslab]=$so [glibc]=)
others=()
for pair in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    name=${pair%%:*} file=$lib_dir/${pair#*:}
    if [ -e "$file" ]; then preload[$name]=$file; others+=("$name"); fi
done
all=(hugeslab "${others[@]}" glibc)
pair=(hugeslab)
[ -n "${preload[mimalloc]:-}" ] && pair+=(mimalloc)

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  cpus: $(nproc)  kernel: $(uname -r)"
    grep -m1 "model name" /proc/cpuinfo
    ldd --version 2>&1 | head -1
    echo "thp: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    lscpu 2>/dev/null | grep -E "^(L2|L3|NUMA node\(s\))"
} | tee "$out/env.txt"

run_one() { # allocator threads workload-args...
    local name=$1 t=$2
    shift 2
    local line
    line=$(LD_PRELOAD=${preload[$name]} timeout 60 "$mt_bin" "$@" --threads="$t" --seconds=1 2>&1 | tail -1)
    echo "lib=$name T=$t args=$(echo "$*" | tr ' ' '_') $line" >>"$results"
}

workloads=("larson" "larson --handoff-every=0" "prodcons" "rounds" "queue")
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
    for t in $threads; do
        for w in "${workloads[@]}"; do
            for name in "${all[@]}"; do run_one "$name" "$t" $w; done
        done
    done
    most=$(printf '%s\n' $threads | sort -n | tail -1)
    for name in "${all[@]}"; do run_one "$name" "$most" falseshare; done
    for t in $threads_mi; do
        for w in "larson" "larson --handoff-every=0" "prodcons"; do
            for name in "${pair[@]}"; do run_one "$name" "$t" $w; done
        done
    done
    echo "round $r of $rounds done after $((SECONDS - start)) s"
done
python3 "$root/bench/scaling.py" "$results" | tee "$out/table.md"

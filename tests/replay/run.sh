#!/bin/sh
# bench/sizes' recorder and rss_replay: a Python program whose three threads
# allocate and free blocks of 600 B - 70 KB while its main thread holds four
# zeroed blocks of 4 MiB it never writes is recorded on glibc, and its
# trace replayed under glibc and under hugeslab. The trace must number four
# threads (the main thread and three workers) and log the workers' exits.
# Each replay must give every recorded thread a thread of its own, replay
# every record, find the live peak that
# the trace itself gives (counted here), and hold the blocks live at that
# peak in resident memory (VmRSS grew by at least their bytes: every byte is
# written). --stats prints hugeslab's statistics at the peak, which count
# no more heaps than the trace has threads. rss_layout (the replay linked
# with the library's objects) replays it the same way, and its --layout walk
# at the peak must account for every byte of the SuperSlabs (other_kib=0),
# find the peak's blocks (requested_kib, the live peak; usable_kib no less)
# and, among the slabs, bytes in use no more than carved ones nor these
# than the slabs' span; its pages in memory, counted where they lie and
# SuperSlab by SuperSlab, must each add up to the SuperSlabs' resident KiB.
# Usage: tests/replay/run.sh BUILD SO. Prints PASS/FAIL/SKIP replay.
set -u
build=$1 so=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
recorder=$build/bench/libsizerecord.so replay=$build/bench/rss_replay
layout=$build/bench/rss_layout
command -v python3 >/dev/null || { echo "SKIP replay: no python3"; exit 0; }
for f in "$recorder" "$replay" "$layout"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "FAIL replay: $f not built"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-replay.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/work.py" <<'PY'
import random, threading
def work(seed):
    r = random.Random(seed)
    kept = []
    for _ in range(20000):
        kept.append(bytearray(r.randrange(600, 70000)))
        if len(kept) > 150:
            del kept[r.randrange(len(kept))]
# calloc'd and never written by the program: resident in the replay only
# because it writes every block
untouched = [bytes(4 << 20) for _ in range(4)]
threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
del untouched
PY
SIZES_TRACE_DIR=$tmp LD_PRELOAD=$(cd "$(dirname "$recorder")" && pwd)/$(basename "$recorder") \
    python3 "$tmp/work.py" || { echo "FAIL replay: the recorded program failed"; exit 1; }
trace=$(ls -S "$tmp"/*.trace 2>/dev/null | head -n 1)
[ -n "$trace" ] || { echo "FAIL replay: no trace written"; exit 1; }

# What the trace says, read here: records, threads, the live peak in KiB.
want=$(python3 - "$trace" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
live, peak, sizes, threads, n, exits = 0, 0, {}, set(), 0, set()
for op, thread, size, ptr, old in struct.iter_unpack("<IIQQQ", data):
    n += 1
    threads.add(thread)
    if op == 6:
        exits.add(thread)
        continue
    if op == 5:
        live -= sizes.pop(ptr, 0)
        continue
    if op == 3:
        if old not in sizes:
            continue
        live -= sizes.pop(old)
    live -= sizes.pop(ptr, 0)
    sizes[ptr] = size
    live += size
    peak = max(peak, live)
print(n, max(threads) + 1, len(threads), peak // 1024, len(exits))
PY
) || { echo "FAIL replay: the trace could not be read"; exit 1; }
set -- $want
records=$1 count=$2 distinct=$3 peak=$4 exited=$5
echo "trace: $records records, $distinct threads numbered 0-$(($count - 1)), $exited exits logged, live peak $peak KiB"
[ "$distinct" -ge 4 ] && [ "$count" -eq "$distinct" ] ||
    { echo "FAIL replay: the trace should number 4 threads 0-3, it has $distinct in 0-$(($count - 1))"; exit 1; }
[ "$exited" -eq 3 ] || { echo "FAIL replay: the trace should log the 3 workers' exits, it logs $exited"; exit 1; }

check() { # name preload program [--stats|--layout]
    name=$1 preload=$2 program=$3
    shift 3
    out=$(LD_PRELOAD=$preload timeout 120 "$program" "$@" "$trace" 2>"$tmp/$name.err")
    rc=$?
    echo "$name: $out"
    [ $rc -eq 0 ] || { echo "FAIL replay: under $name it exited $rc: $(tail -n 2 "$tmp/$name.err")"; exit 1; }
    field() { echo "$out" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    [ "$(field threads)" = "$count" ] || { echo "FAIL replay: under $name threads=$(field threads), not $count"; exit 1; }
    [ "$(field calls)" = "$records" ] || { echo "FAIL replay: under $name calls=$(field calls), not $records"; exit 1; }
    [ "$(field peak_live)" = "$peak" ] || { echo "FAIL replay: under $name peak_live=$(field peak_live), not $peak"; exit 1; }
    grew=$(($(field rss_at_peak) - $(field start_rss)))
    [ "$grew" -ge "$peak" ] ||
        { echo "FAIL replay: under $name VmRSS grew by $grew KiB at the peak, less than the $peak KiB live"; exit 1; }
}
check glibc "" "$replay"
check hugeslab "$so" "$replay" --stats
grep -q "^hugeslab: statistics" "$tmp/hugeslab.err" ||
    { echo "FAIL replay: --stats printed no statistics under hugeslab"; exit 1; }
# No heap but the recorded threads': one more (the replay's own) would turn
# on hugeslab's rules for several threads in the replay of a single one.
heaps=$(sed -n 's/.* threads \([0-9]*\),.*/\1/p' "$tmp/hugeslab.err" | head -n 1)
echo "hugeslab: $heaps heaps at the peak"
[ -n "$heaps" ] && [ "$heaps" -le "$count" ] ||
    { echo "FAIL replay: hugeslab had ${heaps:-no} heaps at the peak, more than the $count threads recorded"; exit 1; }
check layout "" "$layout" --layout
lfield() { # line-key field: the field of the first `layout LINE-KEY` line
    sed -n "s/^layout $1[ =].*/&/p" "$tmp/layout.err" | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
sed -n '/^layout [a-z]*=[0-9a-z-]* /p' "$tmp/layout.err" | grep -v '^layout class=' | sed 's/^/  /'
superslabs=$(lfield superslabs superslabs) other=$(lfield superslabs other_kib)
requested=$(lfield blocks requested_kib) usable=$(lfield blocks usable_kib)
[ -n "$superslabs" ] && [ "$superslabs" -ge 1 ] ||
    { echo "FAIL replay: rss_layout --layout found ${superslabs:-no} SuperSlabs"; exit 1; }
[ "$other" = 0 ] ||
    { echo "FAIL replay: rss_layout --layout left ${other:-?} KiB of the SuperSlabs unaccounted"; exit 1; }
[ "$requested" = "$peak" ] && [ "$usable" -ge "$requested" ] ||
    { echo "FAIL replay: rss_layout --layout saw blocks of ${requested:-?} KiB (usable ${usable:-?}) at the peak of $peak KiB"; exit 1; }
parts=$(sed -n 's/^layout resident_kib=\([0-9]*\) metadata=\([0-9]*\) free_units=\([0-9]*\) carved=\([0-9]*\) past_carve=\([0-9]*\) pages=\([0-9]*\) other=\([0-9]*\)$/\1 \2+\3+\4+\5+\6+\7/p' "$tmp/layout.err")
resident=$(lfield superslabs resident_kib)
set -- $parts
[ -n "$parts" ] && [ "$1" = "$resident" ] && [ $(($2)) -eq "$resident" ] ||
    { echo "FAIL replay: rss_layout --layout's pages in memory by where they lie (${parts:-no line}) do not add up to resident_kib=$resident"; exit 1; }
lines=$(grep -c '^layout superslab=' "$tmp/layout.err")
by_superslab=$(sed -n 's/^layout superslab=.* resident_kib=\([0-9]*\) .*/\1/p' "$tmp/layout.err" | paste -sd+ -)
[ "$lines" -eq "$superslabs" ] && [ $(($by_superslab)) -eq "$resident" ] ||
    { echo "FAIL replay: rss_layout --layout printed $lines SuperSlab lines (${by_superslab:-none}) for $superslabs SuperSlabs of $resident KiB in memory"; exit 1; }
for of in 16-8192 9216-1048576; do
    line=$(grep "^layout slabs=[0-9]* of=$of " "$tmp/layout.err")
    get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    [ -n "$line" ] && [ "$(get in_use_kib)" -le "$(get carved_kib)" ] && [ "$(get carved_kib)" -le "$(get slab_kib)" ] ||
        { echo "FAIL replay: rss_layout --layout's slabs of $of: ${line:-no line}"; exit 1; }
done
echo "PASS replay"

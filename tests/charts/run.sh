#!/bin/sh
# bench/compare.py's charts, from a results folder made up here (no benchmark
# runs): every group gets its panels with error bars and a title with the
# date, the machine and the run count. First its mt group at several thread
# counts on a stand-in bench_mt. Prints PASS/FAIL/SKIP charts.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v python3 >/dev/null || { echo "SKIP charts: no python3"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-charts.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# The mt group at several thread counts (--threads 2,16, as make
# bench-scaling runs it), on a stand-in for bench_mt: round n of a row
# answers (base + 10 n^2) x threads M operations per second, so the median
# (n = 2) is not the mean; hugeslab's queue at 16 threads crashes once.
so=${SO:-build/libhugeslab.so}
case $so in /*) ;; *) so=$root/$so ;; esac
mkdir -p "$tmp/scaling/counts"
cat >"$tmp/scaling/bench_mt" <<'SH'
#!/bin/sh
workload=$1 threads=0
for a in "$@"; do case $a in --threads=*) threads=${a#--threads=} ;; esac; done
case ${LD_PRELOAD:-} in *libhugeslab*) lib=hs base=200 ;; *) lib=glibc base=50 ;; esac
key=$(echo "$lib-$*" | tr -c 'a-z0-9' '_')
n=$(( $(cat "$COUNTS/$key" 2>/dev/null || echo 0) + 1 ))
echo $n >"$COUNTS/$key"
if [ $lib = hs ] && [ "$workload" = queue ] && [ "$threads" = 16 ] && [ $n = 2 ]; then
    echo "bench_mt: crashed" >&2; exit 1
fi
echo "ops_per_sec=$(( (base + 10 * n * n) * threads * 1000000 )) page_faults=1 peak_rss_kb=$(( 1024 * n * n )) seconds=1 errors=0 malloc_from=unknown"
SH
chmod +x "$tmp/scaling/bench_mt"
COUNTS=$tmp/scaling/counts python3 "$root/bench/compare.py" --groups mt --threads 2,16 --runs 3 \
    --only hugeslab,glibc --so "$so" --mt-bin "$tmp/scaling/bench_mt" --no-save \
    >"$tmp/scaling/table" 2>&1 ||
    { echo "FAIL charts: compare.py --threads 2,16 failed: $(tail -n 3 "$tmp/scaling/table" | tr '\n' ' ')"; exit 1; }
for want in "| mt | larson 2T 1s | hugeslab | 480.0 |" "| mt | larson 16T 1s | glibc | 1440.0 |" \
    "| mt | larson no hand-offs 16T 1s | hugeslab | 3840.0 |" "| mt | prodcons 16T 1s | glibc | 1440.0 |" \
    "| mt | falseshare 2T 1s | hugeslab | 480.0 |" "| mt | queue 16T 1s | hugeslab | crash |"; do
    grep -qF "$want" "$tmp/scaling/table" ||
        { echo "FAIL charts: no '$want' in compare.py --threads 2,16: $(cat "$tmp/scaling/table")"; exit 1; }
done
grep -q "hugeslab, queue 16T 1s: 1/3 runs: exit 1" "$tmp/scaling/table" ||
    { echo "FAIL charts: the crashed run is not named: $(tail -n 3 "$tmp/scaling/table")"; exit 1; }

command -v gnuplot >/dev/null || { echo "SKIP charts: no gnuplot (make test and make bench install gnuplot-nox)"; exit 0; }
python3 - "$tmp" <<'PY'
import csv, random, sys
out = sys.argv[1]
random.seed(1)
fields = ["round", "group", "workload", "short", "allocator", "status", "ops_per_sec",
          "page_faults", "peak_rss_kb", "seconds", "shared_lines", "line_ns", "start_rss_kb",
          "freed_rss_kb", "idle_rss_kb", "idle_lazyfree_kb", "idle_anonhuge_kb",
          "returncode", "malloc_from", "detail"]
rows = []
for rnd in range(1, 4):
    for group, loads in (("mixed", ["16-1040B"]), ("mt", ["larson", "prodcons"]),
                         ("memory", ["churn", "kv"])):
        for w in loads:
            for a, speed in (("hugeslab", 1.2), ("glibc", 0.7), ("mimalloc", 1.0)):
                r = {"round": rnd, "group": group, "workload": w, "short": w, "allocator": a,
                     "status": "ok", "ops_per_sec": speed * 1e7 * (1 + 0.1 * rnd),
                     "page_faults": 100 * rnd if a == "hugeslab" else 5000 * rnd,
                     "peak_rss_kb": 20000 + 1000 * rnd, "seconds": 1.0 / speed,
                     "returncode": 0, "malloc_from": "x"}
                if group == "mt":
                    # bench_mt's line_ns: two runs near, one far
                    r.update(line_ns=50 if rnd < 3 else 220)
                if group == "memory":
                    r.update(start_rss_kb=2000, freed_rss_kb=9000, idle_rss_kb=3000 + 500 * rnd,
                             idle_lazyfree_kb=0, idle_anonhuge_kb=0)
                rows.append(r)
with open(out + "/raw.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
with open(out + "/machine.txt", "w") as f:
    f.write("date: 2026-11-30T09:15:00+00:00\nchart machine: Test CPU 9000, 2 CPUs, Linux 6.1\n")
PY
python3 "$root/bench/compare.py" --replot "$tmp" >"$tmp/table.out" 2>&1 ||
    { echo "FAIL charts: compare.py --replot failed: $(tail -n 3 "$tmp/table.out" | tr '\n' ' ')"; exit 1; }
for g in mixed mt memory; do
    gp=$tmp/$g.gp
    [ -s "$tmp/$g.png" ] || { echo "FAIL charts: no $g.png"; exit 1; }
    # gnuplot draws every panel without a complaint (an empty panel warns)
    err=$(cd "$tmp" && gnuplot "$g.gp" 2>&1)
    [ -z "$err" ] || { echo "FAIL charts: gnuplot on $g.gp: $err"; exit 1; }
    # error bars on every panel: three columns (median, min, max) per bar
    grep -q "set style histogram errorbars" "$gp" || { echo "FAIL charts: $g: no error bars"; exit 1; }
    panels=$(grep -c '^plot ' "$gp")
    [ "$panels" -eq 3 ] || { echo "FAIL charts: $g has $panels panels, not 3"; exit 1; }
    grep -q "page faults" "$gp" || { echo "FAIL charts: $g: no page-fault panel"; exit 1; }
    grep -q "RSS" "$gp" || { echo "FAIL charts: $g: no RSS panel"; exit 1; }
    title=$(grep 'set multiplot' "$gp")
    for want in "2026-11-30 09:15" "Test CPU 9000, 2 CPUs, Linux 6.1" "3 runs per allocator"; do
        case "$title" in *"$want"*) ;; *) echo "FAIL charts: $g title lacks '$want': $title"; exit 1 ;; esac
    done
    # the error bars are the runs' min and max: hugeslab's first bar, 1.1e7..1.3e7 / mimalloc's median 1.2e7
    if [ $g = mixed ]; then
        line=$(sed -n 2p "$tmp/mixed.dat")
        set -- $line
        # after the label: hugeslab's ratio median, min, max
        [ "$2" = 1.2 ] && [ "$3" = 1.1 ] && [ "$4" = 1.3 ] ||
            { echo "FAIL charts: hugeslab's ops bar is $2 ($3..$4), expected 1.2 (1.1..1.3)"; exit 1; }
    fi
done
# the mt rows give the placement they ran under: the median, and the range
# since the runs differ; the single-threaded rows have none
grep -q '^| mt | larson | hugeslab |.*| 50 (50-220) |$' "$tmp/table.out" ||
    { echo "FAIL charts: no line ns (50, 50-220) on larson's row: $(grep '| larson | hugeslab' "$tmp/table.out")"; exit 1; }
grep -q '^| mixed | 16-1040B | hugeslab |.*| - |$' "$tmp/table.out" ||
    { echo "FAIL charts: the mixed row has a line ns: $(grep '| 16-1040B | hugeslab' "$tmp/table.out")"; exit 1; }
echo "PASS charts"

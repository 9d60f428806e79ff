#!/bin/sh
# The exact peak of bench/peak_trace.h, as build/bench/exit_hwm and
# build/bench/bench_memory --exact-peak report it.
# - peak_test touches pages, reads its VmRSS and unmaps them, eight times,
#   then writes a page of each of four huge pages, reads VmRSS and splits
#   them (MADV_COLD, whose split frees the pages of zeros on Linux 6.12 and
#   later):
#   exit_hwm's peak must be at least the most it read (VmHWM falls short of
#   it on kernels with per-CPU page counts, which the log shows), and no more
#   than that plus what the program's own exit path maps; with the library
#   preloaded as without.
# - bench_memory small and larson under --exact-peak: peak_rss_kb the more
#   of the tracer's peak (traced_kb, above the start's RSS: it saw the run)
#   and VmHWM (hwm_kb), and the workload's output otherwise whole.
# - A command that starts children and threads runs to its end traced.
# Usage: tests/peak/run.sh BUILD SO. Prints PASS/FAIL/SKIP peak.
set -u
build=$1 so=$2
hwm=$build/bench/exit_hwm bm=$build/bench/bench_memory prog=$build/tests/peak_test
for f in "$hwm" "$bm" "$prog"; do
    [ -x "$f" ] || { echo "FAIL peak: $f not built"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-peak.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Tracing needs seccomp filters with user notifications (Linux 5.5): where
# the system has none, there is nothing to check.
if ! "$hwm" - true >"$tmp/probe" 2>&1; then
    echo "SKIP peak: no seccomp notifications here: $(cat "$tmp/probe")"
    exit 0
fi

short=""
for lib in - "$so"; do
    for run in 1 2 3; do
        line=$("$hwm" -v "$lib" "$prog" "$tmp/read") ||
            { echo "FAIL peak: exit_hwm failed on peak_test ($lib)"; exit 1; }
        read -r most hwm_prog <"$tmp/read"
        peak=${line#peak_kb=}; peak=${peak%% *}
        echo "exit_hwm $lib run $run: $line; peak_test read VmRSS $most at most, VmHWM $hwm_prog"
        [ "$peak" -ge "$most" ] ||
            { echo "FAIL peak: exit_hwm gave $peak KiB, the program read $most before a munmap ($lib)"; exit 1; }
        # The exit path (stdio, the output file) maps a few pages more.
        [ "$peak" -le $((most + 1024)) ] ||
            { echo "FAIL peak: exit_hwm gave $peak KiB, over the $most the program read by more than its exit needs ($lib)"; exit 1; }
        [ "$hwm_prog" -lt "$most" ] && short="$short $((most - hwm_prog))"
    done
done
echo "VmHWM short of the true peak by (KiB):${short:- never}"

for w in small larson; do
    out=$(LD_PRELOAD=$so "$bm" $w --idle-ms=0 --exact-peak) ||
        { echo "FAIL peak: bench_memory $w --exact-peak failed"; exit 1; }
    echo "bench_memory $w: $out"
    peak=$(echo "$out" | sed -n 's/.*peak_rss_kb=\([0-9]*\).*/\1/p')
    h=$(echo "$out" | sed -n 's/.* hwm_kb=\([0-9]*\).*/\1/p')
    traced=$(echo "$out" | sed -n 's/.* traced_kb=\([0-9]*\).*/\1/p')
    start=$(echo "$out" | sed -n 's/.* start_rss_kb=\([0-9]*\).*/\1/p')
    case "$out" in *ops_per_sec=*malloc_from=*libhugeslab*) ;;
        *) echo "FAIL peak: bench_memory $w --exact-peak printed no whole result"; exit 1 ;; esac
    [ -n "$peak" ] && [ -n "$h" ] && [ -n "$traced" ] && [ -n "$start" ] ||
        { echo "FAIL peak: bench_memory $w --exact-peak lacks peak_rss_kb, hwm_kb or traced_kb"; exit 1; }
    # The tracer saw the program's releases: more than its start held.
    [ "$traced" -gt "$start" ] ||
        { echo "FAIL peak: bench_memory $w: the tracer's peak $traced is no more than the start's $start"; exit 1; }
    [ "$peak" -eq "$h" ] || [ "$peak" -eq "$traced" ] && [ "$peak" -ge "$h" ] && [ "$peak" -ge "$traced" ] ||
        { echo "FAIL peak: bench_memory $w: peak $peak is not the more of $traced and $h"; exit 1; }
done

# Children and threads of the traced command, and programs they run.
if command -v python3 >/dev/null; then
    "$hwm" "$so" python3 -c '
import subprocess, threading
def work():
    b = [bytearray(200000) for _ in range(20)]
ts = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
assert subprocess.run(["sh", "-c", "ls / | sort | wc -l"], capture_output=True).returncode == 0
' >"$tmp/py" 2>&1 || { echo "FAIL peak: a traced command with threads and children failed: $(cat "$tmp/py")"; exit 1; }
    echo "python3 with threads and children: peak $(cat "$tmp/py") KiB"
fi
echo "PASS peak"

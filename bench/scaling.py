#!/usr/bin/env python3
"""The table of bench/scaling.sh: for each workload and thread count, the
median M operations per second of every allocator with its median peak RSS
(MiB) beside it, and hugeslab's median over mimalloc's.

    python3 bench/scaling.py OUT_DIR/mt.txt

A run that printed no ops_per_sec (a crash, a timeout) is counted and named
below the table, never averaged in as zero."""
import collections
import statistics
import sys

ORDER = ["larson", "larson --handoff-every=0", "prodcons", "queue", "rounds", "falseshare"]
ALLOCATORS = ["hugeslab", "mimalloc", "jemalloc", "tcmalloc", "glibc"]


def main(path):
    ops = collections.defaultdict(list)
    rss = collections.defaultdict(list)
    failed = []
    for line in open(path):
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        key = (fields["args"].replace("_", " "), int(fields["T"]), fields["lib"])
        if "ops_per_sec" not in fields or fields.get("errors", "0") != "0":
            failed.append(line.strip())
            continue
        ops[key].append(float(fields["ops_per_sec"]) / 1e6)
        rss[key].append(int(fields["peak_rss_kb"]) / 1024)
    rows = sorted({k[:2] for k in ops}, key=lambda r: (ORDER.index(r[0]) if r[0] in ORDER else 99, r[1]))
    present = [a for a in ALLOCATORS if any(k[2] == a for k in ops)]
    print("| workload | threads | " + " | ".join(present) + " | hugeslab / mimalloc |")
    print("|---|---:|" + "---:|" * len(present) + "---:|")
    for workload, threads in rows:
        cells = []
        for a in present:
            k = (workload, threads, a)
            cells.append("%.1f (%.1f)" % (statistics.median(ops[k]), statistics.median(rss[k])) if k in ops else "")
        hs, mi = (workload, threads, "hugeslab"), (workload, threads, "mimalloc")
        ratio = "%.2f" % (statistics.median(ops[hs]) / statistics.median(ops[mi])) if hs in ops and mi in ops else ""
        print("| %s | %d | %s | %s |" % (workload, threads, " | ".join(cells), ratio))
    print("\nM operations per second, median (peak RSS in MiB, median).")
    if failed:
        print("\n%d runs failed:" % len(failed))
        for line in failed:
            print("  " + line)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

#!/usr/bin/env python3
"""Which request sizes a class table wastes memory on, from the study's
recordings (bench/sizes/study.py --traces DIR --keep): each trace is read
once by `size_replay sizes` (blocks and bytes asked for, per 16 bytes of
size, at the peak and over all calls; cached beside the trace as .sizes),
then any class table is summed in a moment.

    python3 bench/sizes/classes.py --traces DIR [--top 12] [--tables now,hdr,...]

Prints, for the table `now` (src/tiny/sizeclass.c), the granules that waste
the most bytes at each program's peak, then each table's waste at the peak
and over all calls, the classes the program touches and its slab floor (the
whole slabs, of src/tiny/tiny.c's class_units, that each class's blocks at
the peak need) as Markdown."""
import argparse
import os
import subprocess
import sys

UNIT = 32 * 1024
CLASS_MAX = 1 << 20


def eighths(linear_max=512, fill_from=4096):
    """16 .. linear_max by 16, then 8 classes per doubling; from fill_from
    to 8 KiB 64 KiB / n for n = 15 .. 8 rounded down to 16."""
    sizes = list(range(16, linear_max + 1, 16))
    base = linear_max
    while base < CLASS_MAX:
        for k in range(1, 9):
            if fill_from and fill_from <= base < 8192:
                most = 65536 // base
                n = most - k * most // 16
                sizes.append(65536 // n // 16 * 16)
            else:
                sizes.append(base + k * base // 8)
        base *= 2
    return sizes


def with_extra(extra):
    return sorted(set(eighths()) | set(extra))


def sixteenths(lo, hi):
    """`now` with 16 classes per doubling from lo to hi."""
    sizes = [s for s in eighths() if s <= lo or s > hi]
    base = lo
    while base < hi:
        sizes += [base + k * base // 16 for k in range(1, 17)]
        base *= 2
    return sorted(set(sizes))


TABLES = {
    "now": eighths(),
    # a class 16 bytes above 512 and 1 KiB, and 64 above 2 KiB: each the
    # largest multiple of 16 that fills 64 KiB with 124, 63 and 31 blocks
    "hdr": with_extra([528, 1040, 2112]),
    "hdr16": with_extra([528, 1040, 2064]),
    "hdr512": with_extra([528]),
    "hdr4K": with_extra([528, 1040, 2112, 4112]),
    "hdr+32": with_extra([528, 544, 1040, 1056, 2064, 2112]),
    "16th512-2K": sixteenths(512, 2048),
    "16th512-4K": sixteenths(512, 4096),
}


def slab_bytes(size):
    """class_units() of src/tiny/tiny.c, in bytes."""
    b = min(64 * size, 64 * 1024)
    if size <= 8 * 1024:
        return (b + UNIT - 1) // UNIT * UNIT
    least, most = (size + UNIT - 1) // UNIT, (8 * size + UNIT - 1) // UNIT
    if most > 16:
        most = least if least > 16 else 16
    best, best_tail = least, least * UNIT % size
    for n in range(least + 1, most + 1):
        if n * UNIT % size * best <= best_tail * n:
            best, best_tail = n, n * UNIT % size
    return best * UNIT


def read_sizes(replay, trace):
    cache = trace + ".sizes"
    if not os.path.exists(cache) or os.path.getmtime(cache) < os.path.getmtime(trace):
        out = subprocess.run([replay, "sizes", trace], stdout=subprocess.PIPE, check=True).stdout
        with open(cache, "wb") as f:
            f.write(out)
    rows = []
    with open(cache) as f:
        f.readline()
        for line in f:
            rows.append(tuple(int(x) for x in line.split()))
    return rows


def class_of(table, size):
    lo, hi = 0, len(table) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if table[mid] >= size:
            hi = mid
        else:
            lo = mid + 1
    return lo


def evaluate(table, rows):
    asked_peak = asked_all = used_peak = used_all = 0
    blocks = {}
    touched = set()
    for g, n_peak, b_peak, n_all, b_all in rows:
        c = class_of(table, 16 * g)
        touched.add(c)
        size = table[c]
        asked_peak += b_peak
        used_peak += n_peak * size
        asked_all += b_all
        used_all += n_all * size
        blocks[c] = blocks.get(c, 0) + n_peak
    floor = 0
    for c, n in blocks.items():
        b = slab_bytes(table[c])
        per = b // table[c]
        floor += (n + per - 1) // per * b
    return {
        "peak": 100.0 * (used_peak - asked_peak) / max(asked_peak, 1),
        "all": 100.0 * (used_all - asked_all) / max(asked_all, 1),
        "live": asked_peak / 2**20,
        "touched": len(touched),
        "floor": floor / 2**20,
        "waste_peak": (used_peak - asked_peak) / 2**20,
    }


def largest_trace(folder):
    traces = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".trace")]
    return max(traces, key=os.path.getsize) if traces else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", required=True)
    ap.add_argument("--build", default="build")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--tables", default=",".join(TABLES))
    args = ap.parse_args()
    replay = os.path.join(args.build, "bench", "size_replay")
    names = args.tables.split(",")
    programs = []
    for w in sorted(os.listdir(args.traces)):
        folder = os.path.join(args.traces, w)
        trace = os.path.isdir(folder) and largest_trace(folder)
        if trace:
            print("classes: %s (%s)" % (w, os.path.basename(trace)), file=sys.stderr)
            programs.append((w, read_sizes(replay, trace)))

    now = TABLES["now"]
    print("Bytes wasted at the peak by the granules that waste the most (table `now`):\n")
    print("| program | sizes | class | blocks at peak | MiB wasted | share of the waste |")
    print("|---|---|---:|---:|---:|---:|")
    for w, rows in programs:
        total = sum(n * now[class_of(now, 16 * g)] - b for g, n, b, _, _ in rows)
        top = sorted(rows, key=lambda r: -(r[1] * now[class_of(now, 16 * r[0])] - r[2]))
        for g, n, b, _, _ in top[:args.top]:
            waste = n * now[class_of(now, 16 * g)] - b
            if waste <= 0:
                break
            print("| %s | %d-%d | %d | %d | %.2f | %.1f %% |" % (
                w, 16 * g - 15, 16 * g, now[class_of(now, 16 * g)], n, waste / 2**20,
                100.0 * waste / max(total, 1)))

    results = {w: {t: evaluate(TABLES[t], rows) for t in names} for w, rows in programs}
    print("\nWaste at the peak, % (MiB live at the peak):\n")
    print("| program | MiB | " + " | ".join("`%s`" % t for t in names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for w, _ in programs:
        r = results[w]
        print("| %s | %.1f | " % (w, r[names[0]]["live"])
              + " | ".join("%.2f" % r[t]["peak"] for t in names) + " |")
    print("\nWaste over all calls, %:\n")
    print("| program | " + " | ".join("`%s`" % t for t in names) + " |")
    print("|---|" + "---:|" * len(names))
    for w, _ in programs:
        print("| %s | " % w + " | ".join("%.2f" % results[w][t]["all"] for t in names) + " |")
    print("\nClasses touched / slab floor at the peak (MiB):\n")
    print("| program | " + " | ".join("`%s`" % t for t in names) + " |")
    print("|---|" + "---:|" * len(names))
    for w, _ in programs:
        print("| %s | " % w + " | ".join(
            "%d / %.1f" % (results[w][t]["touched"], results[w][t]["floor"]) for t in names) + " |")
    print("\nClasses in each table: " + ", ".join(
        "`%s` %d" % (t, len(TABLES[t])) for t in names))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Run the benchmark suite under each allocator and print a Markdown table.

Workloads come in groups: `mixed` (bench_random_mixed 16..1040 B with
rand() and with xorshift), `sizes` (bench_random_mixed over four size
ranges), `mt` (bench_mt: larson with and without hand-offs, prodcons,
falseshare, rounds, queue; at each count of `--threads 2,4,8,16`) and `memory`
(bench_memory: thread churn, large blocks, a key-value fill and flush, a
small program, Larson-style rounds, producer/consumer, a teardown by another
thread, a thousand threads alive at once; peak RSS and RSS once the program has freed everything and gone
idle).  `--cmd` replaces them with bench_random_mixed workloads of one's own
(group `custom`).

Allocators are selected with LD_PRELOAD: hugeslab (build/libhugeslab.so),
glibc (no preload), and mimalloc, jemalloc, tcmalloc when installed (in
/usr/lib/x86_64-linux-gnu, or --lib-dir).  Runs go round-robin across
allocators, with the starting allocator rotated each round, so slow drift
on a shared machine (other jobs, thermal, page cache) spreads over every
allocator instead of penalising whichever ran last.

Results (table.md, raw.csv, machine.txt and, when gnuplot exists, one PNG
per group) go to bench/results/<date-time>/.  Each chart has a panel for
ops/s (the memory group: peak and idle RSS), one for page faults and one
for peak RSS, every bar with the runs' min and max as error bars, and the
date, machine and run count in its title; `--replot DIR` draws them again
from DIR/raw.csv.  A crash, timeout or failed preload marks that
allocator's row and the comparison goes on.

Only the standard library is used, so it runs on a bare Debian python3.
"""

import argparse
import csv
import datetime
import mmap
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIBDIR = "/usr/lib/x86_64-linux-gnu"

GROUPS = ["mixed", "sizes", "mt", "memory"]
GROUP_TITLES = {
    "mixed": "bench_random_mixed, 16-1040 B, rand() and xorshift",
    "sizes": "bench_random_mixed (xorshift) by size range",
    "mt": "bench_mt, multithreaded",
    "memory": "bench_memory: peak RSS and RSS after 3 s idle",
    "custom": "bench_random_mixed",
}
# (short label for the charts, bench_random_mixed arguments)
MIXED_WORKLOADS = [
    ("16-1040 B rand()", "10000000 400 1 16 1040"),
    ("16-1040 B xorshift", "10000000 400 1 16 1040 --rng=xorshift"),
]
# --full: the 1M runs of the earlier suite, to compare with older figures.
MIXED_FULL_EXTRA = [
    ("1M rand()", "1000000 400 1 16 1040"),
    ("1M xorshift", "1000000 400 1 16 1040 --rng=xorshift"),
]
SIZE_WORKLOADS = [
    ("8-128 B", "10000000 400 1 8 128 --rng=xorshift"),
    ("16-1024 B", "10000000 400 1 16 1024 --rng=xorshift"),
    ("1-8 KiB", "10000000 400 1 1024 8192 --rng=xorshift"),
    ("8-64 KiB", "10000000 400 1 8192 65536 --rng=xorshift"),
]
# (short name, bench_mt arguments before --threads and --seconds)
MT_WORKLOADS = [("larson", ["larson"]),
                ("larson no hand-offs", ["larson", "--handoff-every=0"]),
                ("prodcons", ["prodcons"]), ("falseshare", ["falseshare"]),
                ("rounds", ["rounds"]), ("queue", ["queue"])]
# bench_mt runs these in producer/consumer pairs.
MT_PAIRED = ("prodcons", "queue")
# bench_memory workloads (fixed work, then everything freed and 3 s idle).
MEMORY_WORKLOADS = ["churn", "large", "kv", "small", "larson", "prodcons", "teardown", "crowd"]
# The extra figures bench_memory prints (KiB), kept when present.
MEMORY_FIELDS = ["start_rss_kb", "freed_rss_kb", "idle_rss_kb", "idle_lazyfree_kb",
                 "idle_anonhuge_kb"]

# (name, shared object file name, Debian package for machine.txt)
SYSTEM_ALLOCATORS = [
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
]

BASELINE = "mimalloc"
ALL_NAMES = ["hugeslab", "glibc"] + [a[0] for a in SYSTEM_ALLOCATORS]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "bench_random_mixed"),
                   help="bench_random_mixed binary (default: build/bench/bench_random_mixed)")
    p.add_argument("--mt-bin", default=os.path.join(ROOT, "build", "bench", "bench_mt"),
                   help="bench_mt binary (default: build/bench/bench_mt)")
    p.add_argument("--mem-bin", default=os.path.join(ROOT, "build", "bench", "bench_memory"),
                   help="bench_memory binary (default: build/bench/bench_memory)")
    p.add_argument("--so", default=os.path.join(ROOT, "build", "libhugeslab.so"),
                   help="hugeslab shared library (default: build/libhugeslab.so)")
    p.add_argument("--lib-dir", default=LIBDIR,
                   help="where to look for libmimalloc.so.2, libjemalloc.so.2 and "
                        "libtcmalloc_minimal.so.4 (default %s)" % LIBDIR)
    p.add_argument("--runs", type=int, default=None,
                   help="runs per allocator and workload (default 5, 3 with --quick, 11 with --full)")
    p.add_argument("--memory-runs", type=int, default=None,
                   help="runs per allocator in the memory group, whose runs last seconds "
                        "and whose memory figures barely vary (default 3, 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer runs (3), for a fast check")
    p.add_argument("--full", action="store_true",
                   help="11 runs, 2 s per multithreaded run, and the 1M-iteration mixed workloads")
    p.add_argument("--groups", default=",".join(GROUPS), metavar="G,G",
                   help="workload groups to run, from %s (default: all)" % ",".join(GROUPS))
    p.add_argument("--threads", default="2", metavar="N,N",
                   help="threads for the mt group, one count or several (`2,4,8,16`: every "
                        "mt workload at each); the memory group's use the first (default 2)")
    p.add_argument("--mt-seconds", type=float, default=None,
                   help="length of one multithreaded run (default 1, 2 with --full)")
    p.add_argument("--cmd", action="append", metavar="ARGS",
                   help="bench_random_mixed arguments, e.g. '--cmd \"1000000 400 1 16 1040 --rng=xorshift\"'; "
                        "repeat for several workloads; replaces the groups")
    p.add_argument("--only", metavar="A,B",
                   help="comma-separated allocators to run (hugeslab,glibc,mimalloc,jemalloc,tcmalloc)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before one run counts as hung (default 120)")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin the runs to this CPU, to avoid migrations on a busy machine "
                        "(the mt group then runs all its threads on that one CPU)")
    p.add_argument("--out", default=None,
                   help="results directory (default bench/results/<date-time>)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-page-reporting", action="store_true",
                   help="on a virtual machine whose balloon reports free pages to the host, "
                        "stop it for the run (root; put back at the end): a huge page made of "
                        "a reported block costs the host a fault and a clear, so the runs of "
                        "an allocator on THP depend on how long ago the last run freed its "
                        "memory (bench/README, \"Free page reporting\")")
    p.add_argument("--replot", metavar="DIR",
                   help="run nothing: the table and charts again from DIR/raw.csv "
                        "(a results folder)")
    a = p.parse_args()
    if a.runs is None:
        a.runs = 3 if a.quick else 11 if a.full else 5
    if a.memory_runs is None:
        a.memory_runs = min(a.runs, 1 if a.quick else 3)
    if a.runs < 1 or a.memory_runs < 1:
        p.error("--runs and --memory-runs must be at least 1")
    try:
        a.threads = [int(t) for t in a.threads.split(",") if t.strip()]
    except ValueError:
        a.threads = []
    if not a.threads or min(a.threads) < 1:
        p.error("--threads: one or more counts of at least 1, comma-separated")
    if a.mt_seconds is None:
        a.mt_seconds = 2.0 if a.full else 1.0
    a.groups = [g.strip() for g in a.groups.split(",") if g.strip()]
    bad = [g for g in a.groups if g not in GROUPS]
    if bad or not a.groups:
        p.error("--groups: unknown group %s (known: %s)" % (",".join(bad), ",".join(GROUPS)))
    return a


def build_workloads(args):
    """The workloads to run, in table order, as dicts."""
    def mixed(group, short, argstr):
        return {"group": group, "short": short, "bin": args.bin, "args": shlex.split(argstr),
                "label": "random_mixed " + workload_label(argstr)}
    if args.cmd:
        return [mixed("custom", workload_label(c), c) for c in args.cmd]
    out = []
    if "mixed" in args.groups:
        for short, a in MIXED_WORKLOADS + (MIXED_FULL_EXTRA if args.full else []):
            out.append(mixed("mixed", short, a))
    if "sizes" in args.groups:
        for short, a in SIZE_WORKLOADS:
            out.append(mixed("sizes", short, a))
    if "mt" in args.groups:
        for threads in args.threads:
            for name, argv in MT_WORKLOADS:
                a = argv + ["--threads=%d" % threads, "--seconds=%g" % args.mt_seconds]
                # Paired workloads run in producer/consumer pairs: label what runs.
                n = max(2, threads // 2 * 2) if name in MT_PAIRED else threads
                # The charts' bar labels: which count, where there are several.
                short = name if len(args.threads) == 1 else "%s %dT" % (name, n)
                out.append({"group": "mt", "short": short, "bin": args.mt_bin, "args": a,
                            "label": "%s %dT %gs" % (name, n, args.mt_seconds)})
    if "memory" in args.groups:
        for name in MEMORY_WORKLOADS:
            a = [name]
            label = name
            if name in ("larson", "prodcons"):
                threads = args.threads[0]
                a.append("--threads=%d" % threads)
                label = "%s %dT" % (name, max(2, threads // 2 * 2) if name == "prodcons"
                                    else threads)
            # hugetlb pages are not counted in Rss or VmHWM: with a pool on
            # the machine, hugeslab's default (auto) would look smaller than
            # it is. THP pages are counted like everyone else's.
            out.append({"group": "memory", "short": name, "bin": args.mem_bin, "args": a,
                        "label": label, "runs": args.memory_runs,
                        "env": {"HUGESLAB_BACKING": "thp"}})
    return out


def find_allocators(so_path, lib_dir):
    """Return (present, skipped): present as (name, so or None), skipped as (name, why)."""
    present, skipped = [], []
    if os.path.exists(so_path):
        present.append(("hugeslab", os.path.abspath(so_path)))
    else:
        skipped.append(("hugeslab", "not built"))
    present.append(("glibc", None))
    for name, fname, _pkg in SYSTEM_ALLOCATORS:
        so = os.path.abspath(os.path.join(lib_dir, fname))
        if os.path.exists(so):
            present.append((name, so))
        else:
            skipped.append((name, "not installed"))
    return present, skipped


def run_once(binary, args, so, timeout, extra_env=None):
    """Run the benchmark once; return a dict with status 'ok' or a failure tag."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if so:
        env["LD_PRELOAD"] = so
        env.update(extra_env or {})
    res = {"status": "ok", "returncode": "", "detail": ""}
    try:
        cp = subprocess.run([binary] + args, env=env, capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        res.update(status="timeout", detail="over %gs" % timeout)
        return res
    res["returncode"] = cp.returncode
    err = cp.stderr.strip().splitlines()
    out = cp.stdout.strip().splitlines()
    if cp.returncode != 0:
        if cp.returncode < 0:
            try:
                why = signal.Signals(-cp.returncode).name
            except ValueError:
                why = "signal %d" % -cp.returncode
        else:
            why = "exit %d" % cp.returncode
        last = err[-1] if err else (out[-1][:120] if out else "")
        res.update(status="crash", detail=why + (": " + last if last else ""))
        return res
    line = out[-1] if out else ""
    res["line"] = line
    m = re.search(r"malloc_from=(.*)$", line)
    fields = dict(kv.split("=", 1) for kv in line[:m.start()].split() if "=" in kv) if m else {}
    try:
        res["ops_per_sec"] = float(fields["ops_per_sec"])
        res["page_faults"] = int(fields["page_faults"])
        res["peak_rss_kb"] = int(fields["peak_rss_kb"])
        res["seconds"] = float(fields["seconds"])
        res["shared_lines"] = int(fields["shared_lines"]) if "shared_lines" in fields else ""
        res["line_ns"] = int(fields["line_ns"]) if "line_ns" in fields else ""
        if "cpu_seconds" in fields:
            res["cpu_seconds"] = float(fields["cpu_seconds"])
        for k in MEMORY_FIELDS:
            if k in fields:
                res[k] = int(fields[k])
    except (KeyError, ValueError):
        res.update(status="bad output", detail=(line or (err[-1] if err else "no output"))[:200])
        return res
    res["malloc_from"] = m.group(1).strip()
    # ld.so only warns when a preload fails and the program then runs on
    # glibc; without this check those figures would be filed under the wrong name.
    src = res["malloc_from"]
    if src != "unknown":
        if so and os.path.realpath(src) != os.path.realpath(so):
            res.update(status="preload failed", detail="malloc from " + src)
        elif not so and "libc.so" not in os.path.basename(src):
            res.update(status="preload failed", detail="malloc from " + src)
    return res


def humanize_count(n):
    for div, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return "%d%s" % (n // div, suffix)
    return str(n)


def workload_label(argstr):
    """First positional argument (iterations) shortened: '10M 400 1 16 1040'."""
    parts = shlex.split(argstr)
    for i, p in enumerate(parts):
        if p.isdigit():
            parts[i] = humanize_count(int(p))
            break
    return " ".join(parts) if parts else "(defaults)"


def summarise(runs):
    """Collapse the runs of one (workload, allocator) into a table row dict."""
    bad = [r for r in runs if r["status"] != "ok"]
    if bad:
        tags = sorted({r["status"] for r in bad})
        # Any failing run fails the row: a median over the survivors would
        # hide an allocator that crashes some of the time.
        label = "crash" if "crash" in tags else tags[0]
        return {"ok": False, "label": label,
                "detail": "%d/%d runs: %s" % (len(bad), len(runs), bad[0]["detail"])}
    ops = [r["ops_per_sec"] for r in runs]
    med = statistics.median(ops)
    shared = [r["shared_lines"] for r in runs if r.get("shared_lines") != ""]
    line = [r["line_ns"] for r in runs if r.get("line_ns") not in (None, "")]
    mem = {k: statistics.median(r[k] for r in runs) / 1024.0 for k in MEMORY_FIELDS
           if all(k in r and r[k] >= 0 for r in runs)}
    faults = [r["page_faults"] for r in runs]
    rss = [r["peak_rss_kb"] / 1024.0 for r in runs]
    idle = [r["idle_rss_kb"] / 1024.0 for r in runs
            if r.get("idle_rss_kb") not in (None, "") and r["idle_rss_kb"] >= 0]
    return {
        "mem": mem,
        "seconds": statistics.median(r["seconds"] for r in runs),
        "cpu_seconds": (statistics.median(r["cpu_seconds"] for r in runs)
                        if all("cpu_seconds" in r for r in runs) else None),
        "ok": True,
        "runs": len(runs),
        # The spread of the runs, drawn as error bars on the charts.
        "ops_min": min(ops), "ops_max": max(ops),
        "faults_min": min(faults), "faults_max": max(faults),
        "rss_min": min(rss), "rss_max": max(rss),
        "idle_min": min(idle) if len(idle) == len(runs) else None,
        "idle_max": max(idle) if len(idle) == len(runs) else None,
        "ops": med,
        "spread": (max(ops) - min(ops)) / med * 100 if med else 0.0,
        "faults": statistics.median(r["page_faults"] for r in runs),
        "rss_mib": statistics.median(r["peak_rss_kb"] for r in runs) / 1024.0,
        # The memory group: why a peak is VmHWM, not the exact one (exact_peak).
        "peak_from": sorted({r["peak_from"] for r in runs
                             if r.get("peak_from", "exact") != "exact"}),
        # The worst run: one layout with shared lines is enough to matter.
        "shared": max(shared) if shared else None,
        # bench_mt's line_ns before each run: under which placement of the
        # CPUs the row ran (median, and the range where runs differ).
        "line_ns": statistics.median(line) if line else None,
        "line_min": min(line) if line else None, "line_max": max(line) if line else None,
    }


def baseline_of(allocators):
    """mimalloc, or glibc where mimalloc is not there to compare with."""
    names = [n for n, _ in allocators]
    return BASELINE if BASELINE in names else "glibc" if "glibc" in names else None


def ratio(rows, w, name, base):
    r, b = rows.get((id(w), name)), rows.get((id(w), base))
    if r and r["ok"] and b and b["ok"] and b["ops"]:
        return r["ops"] / b["ops"]
    return None


def render_memory_table(workloads, allocators, rows, skipped):
    """The memory group: time (fixed work), faults, peak RSS and the RSS an
    idle program keeps, with LazyFree and AnonHugePages beside it."""
    base = baseline_of(allocators)
    head = ["workload", "allocator", "seconds (median)", "vs %s" % (base or BASELINE),
            "CPU s", "vs %s" % (base or BASELINE), "page faults", "peak RSS", "RSS at start",
            "RSS after free", "RSS idle 3 s", "of it LazyFree", "of it AnonHuge"]
    out = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    notes = []
    why_skipped = dict(skipped)
    present = [n for n, _ in allocators]
    dash = ["-"] * (len(head) - 3)
    for w in workloads:
        for name in ALL_NAMES:
            if name in why_skipped:
                out.append("| " + " | ".join([w["label"], name, why_skipped[name]] + dash) + " |")
                continue
            if name not in present:
                continue
            r = rows[(id(w), name)]
            if not r["ok"]:
                out.append("| " + " | ".join([w["label"], name, r["label"]] + dash) + " |")
                notes.append("%s, %s: %s" % (name, w["label"], r["detail"]))
                continue
            b = rows.get((id(w), base))
            rt = r["seconds"] / b["seconds"] if b and b["ok"] and b["seconds"] else None
            cpu = r["cpu_seconds"]
            b_cpu = b["cpu_seconds"] if b and b["ok"] else None
            cpu_rt = cpu / b_cpu if cpu is not None and b_cpu else None
            m = r["mem"]
            mib = lambda k: "%.1f" % m[k] if k in m else "-"
            if r.get("peak_from"):
                notes.append("%s, %s: peak RSS is %s"
                             % (name, w["label"], "; ".join(r["peak_from"])))
            out.append("| " + " | ".join([
                w["label"], name, "%.3g" % r["seconds"], "%.2f" % rt if rt is not None else "n/a",
                "%.3g" % cpu if cpu is not None else "-",
                "%.2f" % cpu_rt if cpu_rt is not None else "n/a", "%g" % r["faults"],
                "%.1f" % r["rss_mib"], mib("start_rss_kb"), mib("freed_rss_kb"),
                mib("idle_rss_kb"), mib("idle_lazyfree_kb"), mib("idle_anonhuge_kb")]) + " |")
    text = "\n".join(out) + "\n"
    text += ("\nMiB except seconds and faults; medians. seconds: wall time of the fixed work "
             "(lower is better; vs %s: time ratio); CPU s: user + system time of every "
             "thread over the same work, which other jobs on a shared machine move far less "
             "than the wall time (but for prodcons, whose threads yield in a loop while they "
             "wait); page faults: minor + major during it; "
             "peak RSS: the true peak, the most VmRSS at each call that may release memory "
             "in a traced run of its own (bench_memory --exact-peak), where VmHWM can fall "
             "short of it; RSS at start: when main() began; after free: right after the "
             "program freed everything; idle 3 s: smaps_rollup Rss 3 s later, with its "
             "LazyFree (MADV_FREE pages the kernel has not taken yet) and AnonHugePages. "
             "hugeslab runs with HUGESLAB_BACKING=thp here: hugetlb pages, which its default "
             "takes where the system has a pool, are in neither Rss nor VmHWM.\n"
             % (base or BASELINE))
    if notes:
        text += "\nFailures:\n" + "".join("- %s\n" % n for n in notes)
    return text


def render_table(workloads, allocators, rows, skipped):
    mem = [w for w in workloads if w["group"] == "memory"]
    rest = [w for w in workloads if w["group"] != "memory"]
    text = render_ops_table(rest, allocators, rows, skipped) if rest else ""
    if mem:
        text += ("\n" if text else "") + render_memory_table(mem, allocators, rows, skipped)
    return text


def render_ops_table(workloads, allocators, rows, skipped):
    base = baseline_of(allocators)
    show_shared = any(w["short"].startswith("falseshare") for w in workloads)
    show_line = any(r.get("line_ns") is not None for r in rows.values() if r["ok"])
    head = ["group", "workload", "allocator", "ops/s (M, median)", "spread",
            "vs %s" % (base or BASELINE), "page faults", "peak RSS (MiB)"]
    align = ["---", "---", "---", "---:", "---:", "---:", "---:", "---:"]
    if show_shared:
        head.append("shared lines")
        align.append("---:")
    if show_line:
        head.append("line ns")
        align.append("---:")
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    notes = []
    why_skipped = dict(skipped)
    present = [n for n, _ in allocators]
    dash = ["-"] * (len(head) - 4)
    for w in workloads:
        lead = [w["group"], w["label"]]
        for name in ALL_NAMES:
            if name in why_skipped:
                out.append("| " + " | ".join(lead + [name, why_skipped[name]] + dash) + " |")
                continue
            if name not in present:
                continue
            r = rows[(id(w), name)]
            if not r["ok"]:
                out.append("| " + " | ".join(lead + [name, r["label"]] + dash) + " |")
                notes.append("%s, %s: %s" % (name, w["label"], r["detail"]))
                continue
            rt = ratio(rows, w, name, base)
            cells = lead + [name, "%.1f" % (r["ops"] / 1e6), "%.0f%%" % r["spread"],
                            "%.2f" % rt if rt is not None else "n/a", "%g" % r["faults"],
                            "%.1f" % r["rss_mib"]]
            if show_shared:
                cells.append("%d" % r["shared"] if r["shared"] is not None else "-")
            if show_line:
                cells.append(line_cell(r))
            out.append("| " + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n"
    text += ("\nspread = (max - min) / median of ops/s over the runs; page faults are "
             "minor + major during the timed part (median); peak RSS is the process "
             "high-water mark, VmHWM (median).")
    if any(w["group"] == "mt" for w in workloads):
        text += (" mt: ops are mallocs + frees, except falseshare, where an op is one "
                 "write to a block.")
    if show_shared:
        text += (" shared lines: 64-byte lines holding blocks of two or more threads at "
                 "the end of falseshare (largest over the runs; 0 is right).")
    if show_line:
        text += (" line ns: one-way time of a cache line between the first two CPUs the run "
                 "may use, measured by bench_mt just before each run (median, and the "
                 "range where the runs differ by more than a quarter). On a guest whose "
                 "vCPUs the host moves between cores that share a cache and cores that "
                 "do not, the cross-thread rows change with it (bench/README.md, "
                 "\"line_ns\"): compare allocators at the same figure.")
    text += "\n"
    if notes:
        text += "\nFailures:\n" + "".join("- %s\n" % n for n in notes)
    return text


def line_cell(r):
    if r.get("line_ns") is None:
        return "-"
    lo, hi = r["line_min"], r["line_max"]
    if hi - lo > 0.25 * r["line_ns"]:
        return "%.0f (%d-%d)" % (r["line_ns"], lo, hi)
    return "%.0f" % r["line_ns"]


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "(unavailable)"


REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"


def reporting_off():
    """Sets page_reporting_order above the largest order of a free block
    (/proc/buddyinfo's columns), so that no block is reported; the kernel
    may refuse it (an older one takes the largest order only, which spares
    the 2 MiB blocks that do not merge). Returns (the value to put back or
    None, a line for machine.txt)."""
    before = read_file(REPORTING_ORDER)
    if not before.isdigit():
        return None, "no free page reporting in this kernel"
    try:
        with open("/proc/buddyinfo") as f:
            orders = max(len(line.split()) - 4 for line in f)
    except (OSError, ValueError):
        orders = 11
    for value in (orders, orders - 1):
        try:
            with open(REPORTING_ORDER, "w") as f:
                f.write("%d\n" % value)
        except OSError as e:
            err = e
            continue
        warm_free_blocks()
        return before, "held at %d for the run (%s before, put back after)" % (value, before)
    print("compare: --no-page-reporting: %s: %s" % (REPORTING_ORDER, err), file=sys.stderr)
    return None, "left at %s (%s: %s)" % (before, REPORTING_ORDER, err.strerror)


def warm_free_blocks(mib=1024):
    """Touches and frees mib MiB on huge pages, so that the free blocks the
    runs take first are ones the host has backed again, not ones it took
    back while reporting was on."""
    try:
        m = mmap.mmap(-1, mib << 20)
    except OSError:
        return
    with m:
        if hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, mib << 20, 4096):
            m[off] = 1


def reporting_restore(before):
    if before is None:
        return
    try:
        with open(REPORTING_ORDER, "w") as f:
            f.write(before + "\n")
    except OSError as e:
        print("compare: could not put %s back to %s: %s" % (REPORTING_ORDER, before, e),
              file=sys.stderr)


def read_file(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "(unavailable)"


def machine_info(args, allocators):
    keep = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core", "Core(s) per socket",
            "Socket(s)", "CPU max MHz", "CPU MHz", "BogoMIPS", "Hypervisor vendor",
            "L1d cache", "L2 cache", "L3 cache", "NUMA node(s)")
    lscpu = "\n".join(l for l in sh(["lscpu"]).splitlines()
                      if l.split(":", 1)[0].strip() in keep)
    libc = " ".join(os.confstr("CS_GNU_LIBC_VERSION").split()) if hasattr(os, "confstr") else "?"
    pkgs = []
    for name, fname, pkg in SYSTEM_ALLOCATORS:
        so = os.path.join(args.lib_dir, fname)
        if os.path.realpath(args.lib_dir) == os.path.realpath(LIBDIR):
            ver = sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"
            pkgs.append("%s: %s (%s %s)" % (name, so, pkg, ver))
        else:
            # Copies from elsewhere: the package database says nothing
            # about them; the resolved file name usually carries the version.
            pkgs.append("%s: %s -> %s" % (name, so, os.path.realpath(so) if os.path.exists(so)
                                           else "not found"))
    lines = [
        "date: %s" % datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uname: %s" % sh(["uname", "-a"]),
        "glibc: %s" % libc,
        "compiler: %s" % (sh([os.environ.get("CC", "cc"), "--version"]).splitlines() or ["?"])[0],
        "nproc: %s" % (os.cpu_count() or "?"),
        "THP enabled: %s" % read_file("/sys/kernel/mm/transparent_hugepage/enabled"),
        "THP defrag: %s" % read_file("/sys/kernel/mm/transparent_hugepage/defrag"),
        # A guest that reports free 2 MiB blocks to its host makes a fresh
        # huge page several times dearer (bench/README, "Free page reporting").
        "free page reporting order: %s" % (
            getattr(args, "reporting_note", None) or read_file(REPORTING_ORDER)),
        "load average at start: %s" % " ".join(read_file("/proc/loadavg").split()[:3]),
        "hugeslab: %s" % (args.so if any(n == "hugeslab" for n, _ in allocators) else "not built"),
        "hugeslab tree: %s" % (sh(["git", "-C", ROOT, "describe", "--always", "--dirty"]) or "no commit"),
    ] + pkgs + [
        "runs per allocator: %d (memory group: %d), cpu pin: %s" % (
            args.runs, args.memory_runs, args.cpu if args.cpu is not None else "none"),
        "groups: %s; mt threads: %s, seconds per run: %g" % (
            "custom (--cmd)" if args.cmd else ",".join(args.groups),
            ",".join(str(t) for t in args.threads), args.mt_seconds),
        "python: %s" % platform.python_version(),
        "chart machine: %s" % machine_line(),
        "",
        "lscpu:",
        lscpu,
    ]
    return "\n".join(lines) + "\n"


def gp_quote(s):
    """A gnuplot double-quoted string; a newline becomes gnuplot's own \\n."""
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def gp_preamble(png, n_workloads, panels):
    """What every chart starts with: clustered bars with error bars (the
    runs' min and max around the median), one panel below the other."""
    return [
        "set terminal pngcairo size 1100,%d font 'sans,11'" % (150 + 330 * panels),
        "set output '%s'" % png,
        # Plain text: workload names contain '_', a subscript otherwise.
        "set termoption noenhanced",
        "set datafile missing '-'",
        # Equal margins so the panels' clusters line up.
        "set lmargin 12",
        "set rmargin 16",
        "set xrange [-0.6:%g]" % (n_workloads - 0.4),
        "set style data histograms",
        "set style histogram errorbars gap 1 lw 1",
        "set style fill solid 0.85 border -1",
        "set bars front",
        "set grid ytics",
        "set key outside right top",
    ]


def machine_line():
    """'<CPU model>, <n> CPUs, Linux <release>' for chart titles."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = " ".join(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return "%s, %s CPUs, Linux %s" % (model, os.cpu_count() or "?", platform.release())


def chart_title(group, date, machine, runs):
    """Group title, then when, where and how many runs the bars stand for."""
    run_text = ("%d runs" % min(runs) if min(runs) == max(runs)
                else "%d-%d runs" % (min(runs), max(runs)))
    return "%s\n%s, %s\n%s per allocator; bar: median, whiskers: min and max of the runs" % (
        GROUP_TITLES.get(group, group), date, machine, run_text)


def write_chart(outdir, group, ws, names, panels, title):
    """One PNG for a group. panels: (y label, value(w, name) -> (median, lo, hi)
    or None, gnuplot settings) from top to bottom. Returns the PNG's name or None."""
    dat = "%s.dat" % group
    with open(os.path.join(outdir, dat), "w") as f:
        # A comment, not a header: histograms would draw a header row as a cluster.
        f.write("# workload, then per panel and allocator: median min max\n")
        for w in ws:
            vals = []
            for _label, value, _settings in panels:
                for n in names:
                    v = value(w, n)
                    vals += (["%.6g" % x for x in v] if v is not None else ["-"] * 3)
            f.write("%s %s\n" % (gp_quote(w["short"]), " ".join(vals)))
    k = len(names)
    png = "%s.png" % group
    script = gp_preamble(png, len(ws), len(panels)) + [
        "set multiplot layout %d,1 title %s" % (len(panels), gp_quote(title))]
    for p, (label, _value, settings) in enumerate(panels):
        first = 2 + p * 3 * k
        cols = ", ".join("'%s' using %d:%d:%d:xtic(1) title %s" % (
            dat, first + 3 * i, first + 3 * i + 1, first + 3 * i + 2, gp_quote(names[i]))
            for i in range(k))
        script += ["unset logscale y", "unset arrow 1", "set yrange [0:*]"] + settings + [
            "set ylabel %s" % gp_quote(label), "plot " + cols]
    script += ["unset multiplot", ""]
    gp = "%s.gp" % group
    with open(os.path.join(outdir, gp), "w") as f:
        f.write("\n".join(script))
    cp = subprocess.run(["gnuplot", gp], cwd=outdir, capture_output=True, text=True, timeout=30)
    if cp.returncode != 0:
        print("compare: gnuplot failed for %s: %s" % (group, cp.stderr.strip()[-300:]),
              file=sys.stderr)
        return None
    return png


def plot(outdir, workloads, allocators, rows, date=None, machine=None):
    """One PNG per group, every panel with the runs' spread as error bars:
    ops/s relative to the baseline (time for the memory group's RSS panels),
    page faults and peak RSS; the memory group adds the RSS left after 3 s
    idle. The title says the date, the machine and the number of runs.
    Skipped quietly without gnuplot."""
    if not shutil.which("gnuplot"):
        return []
    base = baseline_of(allocators)
    names = [n for n, _ in allocators]
    date = date or datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = machine or machine_line()

    def row(w, n):
        r = rows.get((id(w), n))
        return r if r and r["ok"] else None

    def ops_ratio(w, n):
        r, b = row(w, n), row(w, base)
        if not r or not b or not b["ops"]:
            return None
        return (r["ops"] / b["ops"], r["ops_min"] / b["ops"], r["ops_max"] / b["ops"])

    def faults(w, n):
        r = row(w, n)
        # log scale: a zero would vanish, so it is drawn at 1
        return (max(r["faults"], 1), max(r["faults_min"], 1), max(r["faults_max"], 1)) if r else None

    def rss(w, n):
        r = row(w, n)
        return (r["rss_mib"], r["rss_min"], r["rss_max"]) if r else None

    def idle(w, n):
        r = row(w, n)
        if not r or "idle_rss_kb" not in r["mem"] or r["idle_min"] is None:
            return None
        return (r["mem"]["idle_rss_kb"], r["idle_min"], r["idle_max"])

    fault_panel = ("page faults during the run (log; lower is better)", faults,
                   ["set logscale y", "set yrange [1:*]"])
    made = []
    for group in dict.fromkeys(w["group"] for w in workloads):
        ws = [w for w in workloads if w["group"] == group]
        runs = [rows[(id(w), n)]["runs"] for w in ws for n in names
                if rows.get((id(w), n)) and rows[(id(w), n)]["ok"]] or [0]
        if group == "memory":
            panels = [
                ("peak RSS, MiB (VmHWM, log; lower is better)", rss,
                 ["set logscale y", "set yrange [0.5:*]"]),
                ("RSS 3 s after freeing everything, MiB (log)", idle,
                 ["set logscale y", "set yrange [0.5:*]"]),
                fault_panel]
        else:
            panels = [
                ("ops/s relative to %s (higher is better)" % base, ops_ratio,
                 # The reference line: bars above 1 beat the baseline.
                 ["set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 front"]),
                fault_panel,
                ("peak RSS, MiB (VmHWM; lower is better)", rss, [])]
        png = write_chart(outdir, group, ws, names, panels,
                          chart_title(group, date, machine, runs))
        if png:
            made.append(png)
    return made


def replot(outdir):
    """Charts and table again from a results folder's raw.csv (--replot)."""
    path = os.path.join(outdir, "raw.csv")
    with open(path, newline="") as f:
        raw = list(csv.DictReader(f))
    if not raw:
        sys.exit("compare: %s holds no runs" % path)
    workloads, by_key, names = [], {}, []
    results = {}
    for r in raw:
        key = (r["group"], r["workload"])
        if key not in by_key:
            by_key[key] = {"group": r["group"], "label": r["workload"],
                           "short": r.get("short") or r["workload"]}
            workloads.append(by_key[key])
        if r["allocator"] not in names:
            names.append(r["allocator"])
        run = {"status": r["status"], "detail": r.get("detail", "")}
        if r["status"] == "ok":
            run.update(ops_per_sec=float(r["ops_per_sec"]), page_faults=int(r["page_faults"]),
                       peak_rss_kb=int(r["peak_rss_kb"]), seconds=float(r["seconds"]),
                       shared_lines=int(r["shared_lines"]) if r.get("shared_lines") else "",
                       line_ns=int(r["line_ns"]) if r.get("line_ns") else "")
            if r.get("cpu_seconds") not in (None, ""):
                run["cpu_seconds"] = float(r["cpu_seconds"])
            for k in MEMORY_FIELDS:
                if r.get(k) not in (None, ""):
                    run[k] = int(r[k])
            if r["group"] == "memory":
                run["peak_from"] = r.get("peak_from") or "VmHWM (results from before exact peaks)"
        results.setdefault((id(by_key[key]), r["allocator"]), []).append(run)
    allocators = [(n, None) for n in ALL_NAMES if n in names]
    rows = {k: summarise(v) for k, v in results.items()}
    date = machine = None
    info = read_file(os.path.join(outdir, "machine.txt"))
    for line in info.splitlines():
        if line.startswith("date: "):
            try:
                date = datetime.datetime.fromisoformat(line[6:]).strftime("%Y-%m-%d %H:%M %Z")
            except ValueError:
                date = line[6:]
        if line.startswith("chart machine: "):
            machine = line[len("chart machine: "):]
    print(render_table(workloads, allocators, rows, []), end="")
    made = plot(outdir, workloads, allocators, rows, date, machine)
    print("\ncharts: %s" % (", ".join(os.path.join(outdir, m) for m in made) or "none (no gnuplot)"),
          file=sys.stderr)
    return 0


def exact_peak(r, w, so, timeout, env):
    """The memory group's peak RSS from a second, traced run of the same
    work (bench_memory --exact-peak, bench/peak_trace.h): VmHWM falls short
    of a peak that a release ended, on kernels since 6.2 by up to the
    per-CPU page counts (tens to hundreds of KiB), and the tracer's waits
    slow a run down (churn's 80,000 thread stacks), so the untraced run keeps
    every other figure; its VmHWM is kept as vmhwm_kb, the traced run's as
    traced_hwm_kb. Without seccomp notifications the VmHWM stays, marked."""
    t = run_once(w["bin"], w["args"] + ["--exact-peak", "--idle-ms=0"], so, timeout, env)
    r["vmhwm_kb"] = r["peak_rss_kb"]
    m = re.search(r" hwm_kb=(\d+) traced_kb=\d+ ", t.get("line", ""))
    if t["status"] == "ok" and m:
        r["peak_rss_kb"] = t["peak_rss_kb"]
        r["traced_hwm_kb"] = int(m.group(1))
        r["peak_from"] = "exact"
    else:
        why = t["detail"] or (t["status"] if t["status"] != "ok" else "no exact peak printed")
        r["peak_from"] = "VmHWM (the traced run: %s)" % why


def run_rounds(args, workloads, allocators):
    """Every run, round-robin over the allocators: (results by (workload,
    allocator), the raw rows)."""
    results = {(id(w), n): [] for w in workloads for n, _ in allocators}
    raw = []
    total = sum(w.get("runs", args.runs) for w in workloads) * len(allocators)
    done = 0
    # Under make the output is usually a log, where \r progress is noise.
    tty = sys.stderr.isatty()
    rounds = max(w.get("runs", args.runs) for w in workloads)
    for rnd in range(rounds):
        k = rnd % len(allocators)
        order = allocators[k:] + allocators[:k]
        for w in workloads:
            if rnd >= w.get("runs", args.runs):
                continue
            for name, so in order:
                env = w.get("env") if name == "hugeslab" else None
                r = run_once(w["bin"], w["args"], so, args.timeout, env)
                if w["group"] == "memory" and r["status"] == "ok":
                    exact_peak(r, w, so, args.timeout, env)
                results[(id(w), name)].append(r)
                raw.append({"round": rnd + 1, "group": w["group"], "workload": w["label"],
                            "short": w["short"], "allocator": name, **r})
                done += 1
                if tty:
                    print("\r\033[K[%d/%d] %s, %s: %s" % (
                        done, total, name, w["label"],
                        "%.1fM ops/s" % (r["ops_per_sec"] / 1e6) if r["status"] == "ok"
                        else r["status"]), end="", file=sys.stderr, flush=True)
        if not tty:
            print("round %d/%d done" % (rnd + 1, rounds), file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    return results, raw


def main():
    args = parse_args()
    if args.replot:
        return replot(args.replot)
    workloads = build_workloads(args)
    for b in sorted({w["bin"] for w in workloads}):
        if not os.access(b, os.X_OK):
            sys.exit("compare: benchmark binary %s not found; run `make %s` first"
                     % (b, os.path.relpath(b, ROOT)))
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    allocators, skipped = find_allocators(args.so, args.lib_dir)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        allocators = [a for a in allocators if a[0] in wanted]
        skipped = [s for s in skipped if s[0] in wanted]

    reporting_before = None
    if args.no_page_reporting:
        reporting_before, args.reporting_note = reporting_off()
    try:
        results, raw = run_rounds(args, workloads, allocators)
    finally:
        reporting_restore(reporting_before)

    rows = {key: summarise(rs) for key, rs in results.items()}
    table = render_table(workloads, allocators, rows, skipped)
    print(table, end="")

    if not args.no_save:
        outdir = args.out or os.path.join(
            HERE, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "table.md"), "w") as f:
            f.write("%d runs per allocator (memory group: %d), round-robin; see machine.txt\n\n"
                    % (args.runs, args.memory_runs))
            f.write(table)
        fields = (["round", "group", "workload", "short", "allocator", "status", "ops_per_sec",
                   "page_faults", "peak_rss_kb", "seconds", "cpu_seconds", "shared_lines", "line_ns"]
                  + MEMORY_FIELDS + ["vmhwm_kb", "traced_hwm_kb", "peak_from", "returncode",
                                     "malloc_from", "detail"])
        with open(os.path.join(outdir, "raw.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            wr.writeheader()
            wr.writerows(raw)
        with open(os.path.join(outdir, "machine.txt"), "w") as f:
            f.write(machine_info(args, allocators))
        try:
            plot(outdir, workloads, allocators, rows)
        except (OSError, subprocess.SubprocessError) as e:
            print("compare: no charts: %s" % e, file=sys.stderr)
        print("\nresults: %s" % os.path.relpath(outdir, os.getcwd()), file=sys.stderr)

    # Failures of individual allocators are reported in the table; only a
    # benchmark that ran nowhere is an error of the benchmark itself.
    return 0 if any(r["ok"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run bench_random_mixed under each allocator and print a Markdown table.

Allocators are selected with LD_PRELOAD: hugeslab (build/libhugeslab.so),
glibc (no preload), and mimalloc, jemalloc, tcmalloc when installed.  Runs
go round-robin across allocators, with the starting allocator rotated each
round, so slow drift on a shared machine (other jobs, thermal, page cache)
spreads over every allocator instead of penalising whichever ran last.

Results (table.md, raw.csv, machine.txt, ops.svg when gnuplot exists) go to
bench/results/<date-time>/.  A crash, timeout or failed preload marks that
allocator's row and the comparison goes on.

Only the standard library is used, so it runs on a bare Debian python3.
"""

import argparse
import csv
import datetime
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

DEFAULT_WORKLOADS = [
    "1000000 400 1 16 1040",
    "10000000 400 1 16 1040",
]

# (name, shared object or None for no preload, Debian package for machine.txt)
SYSTEM_ALLOCATORS = [
    ("mimalloc", os.path.join(LIBDIR, "libmimalloc.so.2"), "libmimalloc2.0"),
    ("jemalloc", os.path.join(LIBDIR, "libjemalloc.so.2"), "libjemalloc2"),
    ("tcmalloc", os.path.join(LIBDIR, "libtcmalloc_minimal.so.4"), "libtcmalloc-minimal4"),
]

BASELINE = "mimalloc"
ALL_NAMES = ["hugeslab", "glibc"] + [a[0] for a in SYSTEM_ALLOCATORS]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "bench_random_mixed"),
                   help="benchmark binary (default: build/bench/bench_random_mixed)")
    p.add_argument("--so", default=os.path.join(ROOT, "build", "libhugeslab.so"),
                   help="hugeslab shared library (default: build/libhugeslab.so)")
    p.add_argument("--runs", type=int, default=None,
                   help="runs per allocator and workload (default 5, 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer runs (3), for a fast check")
    p.add_argument("--cmd", action="append", metavar="ARGS",
                   help="benchmark arguments, e.g. '--cmd \"1000000 400 1 16 1040 --rng=xorshift\"'; "
                        "repeat for several workloads; replaces the default 1M and 10M workloads")
    p.add_argument("--only", metavar="A,B",
                   help="comma-separated allocators to run (hugeslab,glibc,mimalloc,jemalloc,tcmalloc)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds before one run counts as hung (default 120)")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin the runs to this CPU, to avoid migrations on a busy machine")
    p.add_argument("--out", default=None,
                   help="results directory (default bench/results/<date-time>)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    a = p.parse_args()
    if a.runs is None:
        a.runs = 3 if a.quick else 5
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return a


def find_allocators(so_path):
    """Return (present, skipped): present as (name, so or None), skipped as (name, why)."""
    present, skipped = [], []
    if os.path.exists(so_path):
        present.append(("hugeslab", os.path.abspath(so_path)))
    else:
        skipped.append(("hugeslab", "not built"))
    present.append(("glibc", None))
    for name, so, _pkg in SYSTEM_ALLOCATORS:
        if os.path.exists(so):
            present.append((name, so))
        else:
            skipped.append((name, "not installed"))
    return present, skipped


def run_once(binary, args, so, timeout):
    """Run the benchmark once; return a dict with status 'ok' or a failure tag."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if so:
        env["LD_PRELOAD"] = so
    res = {"status": "ok", "returncode": "", "detail": ""}
    try:
        cp = subprocess.run([binary] + args, env=env, capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        res.update(status="timeout", detail="over %gs" % timeout)
        return res
    res["returncode"] = cp.returncode
    err = cp.stderr.strip().splitlines()
    if cp.returncode != 0:
        if cp.returncode < 0:
            try:
                why = signal.Signals(-cp.returncode).name
            except ValueError:
                why = "signal %d" % -cp.returncode
        else:
            why = "exit %d" % cp.returncode
        res.update(status="crash", detail=why + (": " + err[-1] if err else ""))
        return res
    line = cp.stdout.strip().splitlines()[-1] if cp.stdout.strip() else ""
    m = re.search(r"malloc_from=(.*)$", line)
    fields = dict(kv.split("=", 1) for kv in line[:m.start()].split() if "=" in kv) if m else {}
    try:
        res["ops_per_sec"] = float(fields["ops_per_sec"])
        res["page_faults"] = int(fields["page_faults"])
        res["peak_rss_kb"] = int(fields["peak_rss_kb"])
        res["seconds"] = float(fields["seconds"])
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
    return {
        "ok": True,
        "ops": med,
        "spread": (max(ops) - min(ops)) / med * 100 if med else 0.0,
        "faults": statistics.median(r["page_faults"] for r in runs),
        "rss_mib": statistics.median(r["peak_rss_kb"] for r in runs) / 1024.0,
    }


def render_table(workloads, allocators, rows, skipped):
    out = ["| workload | allocator | ops/s (M, median) | spread | vs mimalloc | page faults | peak RSS (MiB) |",
           "|---|---|---:|---:|---:|---:|---:|"]
    notes = []
    why_skipped = dict(skipped)
    for w in workloads:
        base = rows.get((w, BASELINE))
        base_ops = base["ops"] if base and base["ok"] else None
        for name in ALL_NAMES:
            if name in why_skipped:
                out.append("| %s | %s | %s | - | - | - | - |" % (workload_label(w), name,
                                                                   why_skipped[name]))
                continue
            if (w, name) not in rows:
                continue
            r = rows[(w, name)]
            if not r["ok"]:
                out.append("| %s | %s | %s | - | - | - | - |" % (workload_label(w), name, r["label"]))
                notes.append("%s, %s: %s" % (name, workload_label(w), r["detail"]))
                continue
            ratio = "%.2f" % (r["ops"] / base_ops) if base_ops else "n/a"
            out.append("| %s | %s | %.1f | %.0f%% | %s | %g | %.1f |" % (
                workload_label(w), name, r["ops"] / 1e6, r["spread"], ratio, r["faults"],
                r["rss_mib"]))
    text = "\n".join(out) + "\n"
    text += ("\nspread = (max - min) / median of ops/s over the runs; page faults are "
             "minor + major during the timed loop (median); peak RSS is the process high-water mark, VmHWM (median).\n")
    if notes:
        text += "\nFailures:\n" + "".join("- %s\n" % n for n in notes)
    return text


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "(unavailable)"


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
    for name, so, pkg in SYSTEM_ALLOCATORS:
        ver = sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"
        pkgs.append("%s: %s (%s %s)" % (name, so, pkg, ver))
    lines = [
        "date: %s" % datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "uname: %s" % sh(["uname", "-a"]),
        "glibc: %s" % libc,
        "compiler: %s" % (sh([os.environ.get("CC", "cc"), "--version"]).splitlines() or ["?"])[0],
        "THP enabled: %s" % read_file("/sys/kernel/mm/transparent_hugepage/enabled"),
        "THP defrag: %s" % read_file("/sys/kernel/mm/transparent_hugepage/defrag"),
        "load average at start: %s" % " ".join(read_file("/proc/loadavg").split()[:3]),
        "hugeslab: %s" % (args.so if any(n == "hugeslab" for n, _ in allocators) else "not built"),
        "hugeslab tree: %s" % (sh(["git", "-C", ROOT, "describe", "--always", "--dirty"]) or "no commit"),
    ] + pkgs + [
        "runs per allocator: %d, cpu pin: %s" % (args.runs, args.cpu if args.cpu is not None else "none"),
        "python: %s" % platform.python_version(),
        "",
        "lscpu:",
        lscpu,
    ]
    return "\n".join(lines) + "\n"


def plot(outdir, workloads, allocators, rows):
    """Grouped bar chart of median ops/s; skipped quietly without gnuplot."""
    if not shutil.which("gnuplot"):
        return
    dat = os.path.join(outdir, "ops.dat")
    with open(dat, "w") as f:
        f.write("allocator " + " ".join('"%s"' % workload_label(w) for w in workloads) + "\n")
        for name, _so in allocators:
            vals = []
            for w in workloads:
                r = rows[(w, name)]
                vals.append("%.3f" % (r["ops"] / 1e6) if r["ok"] else "0")
            f.write("%s %s\n" % (name, " ".join(vals)))
    cols = ", ".join(
        "'ops.dat' using %d:xtic(1) title columnheader(%d)" % (i + 2, i + 2)
        for i in range(len(workloads)))
    script = (
        "set terminal svg size 900,480 dynamic font 'sans,11'\n"
        "set output 'ops.svg'\n"
        "set style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset yrange [0:*]\nset grid ytics\n"
        "set ylabel 'M ops/s (median)'\nset title 'bench_random_mixed'\n"
        "set key top left\nplot " + cols + "\n")
    with open(os.path.join(outdir, "ops.gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", "ops.gp"], cwd=outdir, capture_output=True, timeout=30)


def main():
    args = parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("compare: benchmark binary %s not found; run `make %s` first"
                 % (args.bin, os.path.relpath(args.bin, ROOT)))
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    workloads = args.cmd or DEFAULT_WORKLOADS
    allocators, skipped = find_allocators(args.so)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        allocators = [a for a in allocators if a[0] in wanted]
        skipped = [s for s in skipped if s[0] in wanted]

    results = {(w, n): [] for w in workloads for n, _ in allocators}
    raw = []
    total = args.runs * len(workloads) * len(allocators)
    done = 0
    # Under make the output is usually a log, where \r progress is noise.
    tty = sys.stderr.isatty()
    for rnd in range(args.runs):
        k = rnd % len(allocators)
        order = allocators[k:] + allocators[:k]
        for w in workloads:
            for name, so in order:
                r = run_once(args.bin, shlex.split(w), so, args.timeout)
                results[(w, name)].append(r)
                raw.append({"round": rnd + 1, "workload": w, "allocator": name, **r})
                done += 1
                if tty:
                    print("\r\033[K[%d/%d] %s, %s: %s" % (
                        done, total, name, workload_label(w),
                        "%.1fM ops/s" % (r["ops_per_sec"] / 1e6) if r["status"] == "ok"
                        else r["status"]), end="", file=sys.stderr, flush=True)
        if not tty:
            print("round %d/%d done" % (rnd + 1, args.runs), file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)

    rows = {key: summarise(rs) for key, rs in results.items()}
    table = render_table(workloads, allocators, rows, skipped)
    print(table, end="")

    if not args.no_save:
        outdir = args.out or os.path.join(
            HERE, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "table.md"), "w") as f:
            f.write("bench_random_mixed, %d runs per allocator, round-robin\n\n" % args.runs)
            f.write(table)
        fields = ["round", "workload", "allocator", "status", "ops_per_sec", "page_faults",
                  "peak_rss_kb", "seconds", "returncode", "malloc_from", "detail"]
        with open(os.path.join(outdir, "raw.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            wr.writeheader()
            wr.writerows(raw)
        with open(os.path.join(outdir, "machine.txt"), "w") as f:
            f.write(machine_info(args, allocators))
        try:
            plot(outdir, workloads, allocators, rows)
        except (OSError, subprocess.SubprocessError):
            pass
        print("\nresults: %s" % os.path.relpath(outdir, os.getcwd()), file=sys.stderr)

    # Failures of individual allocators are reported in the table; only a
    # benchmark that ran nowhere is an error of the benchmark itself.
    return 0 if any(r["ok"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Exact peak RSS of short commands under several allocators, alternating.

    python3 bench/short_peaks.py ROUNDS LIB [LIB...]

Each LIB is a shared library to preload (a path), `glibc` (none) or `mi`
(Debian's mimalloc). Every round runs each command under each library in
turn through build/bench/exit_hwm, which gives the command's true peak RSS
(its VmRSS at each call that may release memory and at its exit:
bench/peak_trace.h; `/usr/bin/time -f %M` moves in 128 KiB steps, and VmHWM
falls short of a peak that a release ended), and the medians (min-max) in
KiB are printed a line per command. hugeslab runs with
HUGESLAB_BACKING=thp, so that a system hugetlb pool (whose pages VmRSS
leaves out) does not make its figures look small.

The commands: true, ls -lR /usr/share/doc, sort -R /etc/services,
python3 -c pass, python3 building a list of 1 M strings (strs, from a
script file written to STRS_FILE, default a fresh temporary directory), and
git log -p of this repository or of GIT_REPO (gitlog). CMDS=true,strs
limits them; PYTHON=path chooses the interpreter (default: python3 on
PATH, resolved to its real file, since a wrapper script would be the
process measured).
bench/README.md's sections name this script /tmp/s21/exact.py, where it was
first kept, and ran strs from /tmp/m/strs.py. The script's path moves
strs' peak: with the library of 01ada5f it peaked at 99,020 KiB from
/tmp/m/strs.py and at 99,644 from /tmp/short_peaks.XXXXXXXX/strs.py, with
that of 8285373 at 99,556 and 99,648, glibc at 98,352 and 98,256: the
realloc give-back of 1a90c7d showed from the first path only, since the
second moved the list's slab to 159 pages, over its budget of 128 (256
since 52727bc; bench/README.md, "Short commands: strs.py's path").
Compare libraries in one run, from one path."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_HWM = os.path.join(ROOT, "build", "bench", "exit_hwm")
ALIASES = {"glibc": "-", "mi": "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"}
STRS = "x = [str(i) * 3 for i in range(10**6)]"


def python_path():
    chosen = os.environ.get("PYTHON") or shutil.which("python3") or "python3"
    out = subprocess.run([chosen, "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or chosen


def commands(scratch):
    python = python_path()
    strs = os.environ.get("STRS_FILE") or os.path.join(scratch, "strs.py")
    with open(strs, "w") as f:
        f.write(STRS + "\n")
    table = {
        "true": ["true"],
        "ls": ["ls", "-lR", "/usr/share/doc"],
        "sort": ["sort", "-R", "/etc/services"],
        "pypass": [python, "-c", "pass"],
        "strs": [python, strs],
        "gitlog": ["git", "-C", os.environ.get("GIT_REPO", ROOT), "log", "-p"],
    }
    chosen = os.environ.get("CMDS")
    if chosen:
        table = {name: argv for name, argv in table.items() if name in chosen.split(",")}
    return table


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    if not os.access(EXIT_HWM, os.X_OK):
        sys.exit("short_peaks: build it first: make %s" % os.path.relpath(EXIT_HWM, ROOT))
    rounds, libs = int(sys.argv[1]), sys.argv[2:]
    scratch = tempfile.mkdtemp(prefix="short_peaks.")
    table = commands(scratch)
    env = dict(os.environ, HUGESLAB_BACKING="thp")
    peaks = {(name, lib): [] for name in table for lib in libs}
    for _ in range(rounds):
        for name, argv in table.items():
            for lib in libs:
                run = subprocess.run([EXIT_HWM, ALIASES.get(lib, lib)] + argv, env=env,
                                     capture_output=True, text=True)
                try:
                    peaks[(name, lib)].append(int(run.stdout.split()[-1]))
                except (IndexError, ValueError):
                    print("short_peaks: %s under %s failed: %s" % (name, lib, run.stderr[-300:]),
                          file=sys.stderr)
    for name in table:
        row = [name]
        for lib in libs:
            got = peaks[(name, lib)]
            label = os.path.basename(lib)
            row.append("%s=%d(%d-%d)" % (label, statistics.median(got), min(got), max(got))
                       if got else "%s=?" % label)
        print("  ".join(row))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

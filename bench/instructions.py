#!/usr/bin/env python3
"""Instructions each allocator spends per operation, counted by callgrind.

Runs bench_random_mixed (default `1000000 400 1 16 1040 --rng=xorshift`)
under `valgrind --tool=callgrind --toggle-collect=main` for hugeslab, glibc
and, when installed, mimalloc, jemalloc and tcmalloc. Collection covers
main() and everything it calls, so process start-up and exit (the dynamic
loader, library constructors) are left out. main's own instructions (the
loop, the RNG, the first-byte writes) are the same under every allocator
and are subtracted: what remains is the allocator's work inside the loop,
PLT stubs included, divided by the number of operations (one per step,
as the benchmark counts them).

Prints one Markdown table; only the standard library and valgrind are used.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIBDIR = "/usr/lib/x86_64-linux-gnu"
OTHERS = [("mimalloc", "libmimalloc.so.2"), ("jemalloc", "libjemalloc.so.2"),
          ("tcmalloc", "libtcmalloc_minimal.so.4")]


def count(binary, args, preload):
    """Returns (instructions collected, main's own instructions)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if preload:
            env["LD_PRELOAD"] = preload
        subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=main",
                        "--callgrind-out-file=" + out, binary] + args,
                       env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        text = subprocess.run(["callgrind_annotate", "--threshold=100", out],
                              check=True, capture_output=True, text=True).stdout
    total = main_self = None
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(\([^)]*\)\s+)?(.*)$", line)
        if not m:
            continue
        value = int(m.group(1).replace(",", ""))
        what = m.group(3)
        if "PROGRAM TOTALS" in what:
            total = value
        elif main_self is None and re.search(r":main( |$)", what):
            main_self = value
    if total is None or main_self is None:
        raise RuntimeError("callgrind_annotate output without totals or main")
    return total, main_self


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bench/bench_random_mixed"))
    ap.add_argument("--so", default=os.path.join(ROOT, "build/libhugeslab.so"))
    ap.add_argument("--lib-dir", default=LIBDIR)
    ap.add_argument("args", nargs="*",
                    default=["1000000", "400", "1", "16", "1040", "--rng=xorshift"],
                    help="bench_random_mixed arguments (iterations first)")
    opts = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.exit(f"instructions.py: {tool} not found (Debian package valgrind)")
    if not os.path.exists(opts.bin):
        sys.exit(f"instructions.py: {opts.bin} not found (make bench-instructions builds it)")
    iterations = int(opts.args[0])
    rows = [("hugeslab", os.path.abspath(opts.so)), ("glibc", None)]
    rows += [(name, os.path.join(opts.lib_dir, f)) for name, f in OTHERS
             if os.path.exists(os.path.join(opts.lib_dir, f))]
    results = []
    for name, so in rows:
        total, main_self = count(opts.bin, opts.args, so)
        results.append((name, total, main_self, (total - main_self) / iterations))
        print(f"{name}: {results[-1][3]:.1f} instructions per operation", file=sys.stderr)
    ref = next((r[3] for r in results if r[0] == "mimalloc"), None)
    print(f"bench_random_mixed {' '.join(opts.args)}: instructions in main() and below "
          f"(callgrind), less main's own\n")
    print("| allocator | collected (M) | main's own (M) | allocator per op | vs mimalloc |")
    print("|---|---:|---:|---:|---:|")
    for name, total, main_self, per_op in results:
        vs = f"{per_op / ref:.2f}" if ref else "-"
        print(f"| {name} | {total / 1e6:.1f} | {main_self / 1e6:.1f} | {per_op:.1f} | {vs} |")


if __name__ == "__main__":
    main()

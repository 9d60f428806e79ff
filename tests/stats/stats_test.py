#!/usr/bin/env python3
"""Statistics files and messages, against the library as programs load it.

Cases (one PASS/FAIL/SKIP line each, names stats/...):
  live      HUGESLAB_STATS_FILE with %e and %p and HUGESLAB_STATS_INTERVAL_MS:
            a running multi-process program (forked and exec'd children) gets
            one file per process, each rewritten while it runs, never seen
            half-written, with pid, program, version and time
  formats   .json parses, .prom passes a strict parser of the text format
            (and promtool when installed), text carries the same header;
            HUGESLAB_STATS_FILE alone is enough
  unwritable  one message per process, and the exit report on stderr
  stderr    the exit report of a program that closes stderr (ls)
  stderr_reused  ... and of one that closes every descriptor and reuses the
            numbers: the report never lands in the program's own file
  messages  every unknown name and bad value, profiles and config lines
  verbose   verbose lines name the pid and the program
  nopool    "no hugetlb pool" rather than "the pool ran dry"

Usage: stats_test.py LIBHUGESLAB.so
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SO = os.path.abspath(sys.argv[1])
# The interpreter itself, not a wrapper script that would be preloaded too.
PY = os.path.realpath(shutil.which("python3") or "/usr/bin/python3")
if "pyenv/shims" in PY or not os.path.exists(PY):
    PY = "/usr/bin/python3"
failed = 0


def report(status, name, why=""):
    global failed
    if status == "FAIL":
        failed = 1
    print("%s stats/%s%s" % (status, name, ": " + why if why else ""), flush=True)


def run(args, env_extra, timeout=60, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUGESLAB_")}
    env["LD_PRELOAD"] = SO
    env.update(env_extra)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=stdin)


# ---- a strict parser of the Prometheus text format (0.0.4) -----------------------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(r"^(%s)(\{(%s=%s)(,%s=%s)*\})? (\S+)( -?\d+)?$" % (
    NAME, LABEL, LABEL_VALUE, LABEL, LABEL_VALUE))


def parse_prom(text):
    """Returns {(name, labels): value}; raises ValueError naming the first fault."""
    if not text.endswith("\n"):
        raise ValueError("does not end with a newline")
    types, helps, samples, seen_names, current = {}, {}, {}, [], None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    raise ValueError("line %d: bad %s" % (n, line))
                continue
            kind, name, rest = m.groups()
            table = types if kind == "TYPE" else helps
            if name in table:
                raise ValueError("line %d: second %s for %s" % (n, kind, name))
            if kind == "TYPE":
                if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError("line %d: type %s" % (n, rest))
                if name in seen_names:
                    raise ValueError("line %d: TYPE of %s after its samples" % (n, name))
            table[name] = rest
            continue
        if not line.strip():
            raise ValueError("line %d: empty line" % n)
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("line %d: not a sample: %s" % (n, line))
        name, labels, value = m.group(1), m.group(2) or "", m.group(5)
        float(value)  # raises on a bad value
        if name != current:
            if name in seen_names:
                raise ValueError("line %d: samples of %s are not together" % (n, name))
            seen_names.append(name)
            current = name
        if name not in types:
            raise ValueError("line %d: %s has no TYPE" % (n, name))
        if types[name] == "counter" and not name.endswith("_total"):
            raise ValueError("line %d: counter %s does not end in _total" % (n, name))
        key = (name, labels)
        if key in samples:
            raise ValueError("line %d: duplicate series %s%s" % (n, name, labels))
        names = re.findall(r"(%s)=" % LABEL, labels)
        if len(set(names)) != len(names):
            raise ValueError("line %d: a label twice" % n)
        samples[key] = float(value)
    return samples


def label_of(labels, name):
    m = re.search(r'%s="((?:[^"\\]|\\.)*)"' % name, labels)
    return m.group(1) if m else None


# ---- cases --------------------------------------------------------------------------------
WORKLOAD = r"""
import os, subprocess, sys, time
out = sys.argv[1]
def grow(steps):
    keep = []
    for i in range(steps):
        keep.append([bytes(3000) for _ in range(3000)])   # about 9 MB a step
        time.sleep(0.25)
    return keep
kids = []
for i in range(2):
    pid = os.fork()
    if pid == 0:
        grow(6)
        os._exit(0)
    kids.append(pid)
exe = subprocess.Popen([sys.executable, "-c",
                        "import time; x = [bytes(3000) for _ in range(5000)]; time.sleep(1.5)"])
keep = grow(6)
for pid in kids:
    os.waitpid(pid, 0)
exe.wait()
with open(out, "w") as f:
    f.write("%d %s %d\n" % (os.getpid(), " ".join(map(str, kids)), exe.pid))
"""


def case_live(tmp):
    d = os.path.join(tmp, "live")
    os.makedirs(d)
    pattern = os.path.join(d, "hs-%e-%p.json")
    pids_file = os.path.join(tmp, "pids")
    env = {"HUGESLAB_STATS_FILE": pattern, "HUGESLAB_STATS_INTERVAL_MS": "100"}
    envp = {k: v for k, v in os.environ.items() if not k.startswith("HUGESLAB_")}
    envp.update(env, LD_PRELOAD=SO)
    proc = subprocess.Popen([PY, "-c", WORKLOAD, pids_file], env=envp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = {}  # file -> list of (time_unix, bytes_in_slabs, mtime)
    reads = 0
    deadline = time.time() + 30
    while proc.poll() is None and time.time() < deadline:
        for f in os.listdir(d):
            if ".tmp." in f:
                continue
            path = os.path.join(d, f)
            try:
                with open(path) as fh:
                    text = fh.read()
                st = os.stat(path)
            except FileNotFoundError:
                continue
            reads += 1
            try:
                j = json.loads(text)
            except ValueError:
                return report("FAIL", "live", "%s read half-written: %r" % (f, text[:200]))
            seen.setdefault(f, []).append((j["time_unix"], j["bytes_in_slabs"], st.st_mtime_ns, j))
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    if proc.returncode != 0:
        return report("FAIL", "live", "workload exit %s: %s" % (proc.returncode, err[-300:]))
    parent, kid1, kid2, exe = map(int, open(pids_file).read().split())
    prog = os.path.basename(PY)
    for pid in (parent, kid1, kid2, exe):
        name = "hs-%s-%d.json" % (prog, pid)
        if name not in seen:
            return report("FAIL", "live", "no live file %s while it ran (saw %s)" % (
                name, sorted(seen)))
        obs = seen[name]
        last = obs[-1][3]
        if last["pid"] != pid or last["program"] != prog or last["version"] != "0.2":
            return report("FAIL", "live", "%s says pid %s program %s version %s" % (
                name, last["pid"], last["program"], last["version"]))
        if abs(last["time_unix"] - time.time()) > 120 or not re.match(
                r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", last["time"]):
            return report("FAIL", "live", "%s time %s (%s)" % (name, last["time"], last["time_unix"]))
        # rewritten while the process ran: several versions of the file
        if len({o[2] for o in obs}) < 3:
            return report("FAIL", "live", "%s written %d time(s) while it ran" % (
                name, len({o[2] for o in obs})))
        # the forked children and the parent grow: their figures follow
        if pid != exe and max(o[1] for o in obs) <= min(o[1] for o in obs):
            return report("FAIL", "live", "%s: bytes_in_slabs never grew (%s)" % (
                name, [o[1] for o in obs]))
    leftovers = [f for f in os.listdir(d) if ".tmp." in f]
    if leftovers:
        return report("FAIL", "live", "temporary files left: %s" % leftovers)
    report("PASS", "live")
    print("    %d reads of %d files, none half-written" % (reads, len(seen)))


def case_formats(tmp):
    # HUGESLAB_STATS_FILE alone, without HUGESLAB_STATS=1
    prog = os.path.basename(PY)
    results = {}
    for ext in ("json", "prom", "txt"):
        path = os.path.join(tmp, "report." + ext)
        r = run([PY, "-c", "x = [bytes(100) for i in range(50000)]"], {"HUGESLAB_STATS_FILE": path})
        if r.returncode != 0 or not os.path.exists(path):
            return report("FAIL", "formats", "no %s report (exit %d): %s" % (ext, r.returncode,
                                                                           r.stderr[-200:]))
        results[ext] = (open(path).read(), r)
    j = json.loads(results["json"][0])
    for key in ("pid", "program", "version", "time", "superslabs_mapped", "kernel_rss"):
        if key not in j:
            return report("FAIL", "formats", "JSON lacks %s" % key)
    try:
        samples = parse_prom(results["prom"][0])
    except ValueError as e:
        return report("FAIL", "formats", "Prometheus text: %s" % e)
    info = [k for k in samples if k[0] == "hugeslab_info"]
    if not info or label_of(info[0][1], "program") != prog or label_of(info[0][1], "version") != "0.2" \
            or not (label_of(info[0][1], "pid") or "").isdigit():
        return report("FAIL", "formats", "hugeslab_info labels: %s" % info)
    if not any(k[0] == "hugeslab_report_time_seconds" for k in samples):
        return report("FAIL", "formats", "no hugeslab_report_time_seconds")
    mapped = sum(v for k, v in samples.items() if k[0] == "hugeslab_superslabs")
    if mapped < 1:
        return report("FAIL", "formats", "hugeslab_superslabs sums to %s" % mapped)
    # The parser is strict: a broken copy must fail it.
    for broken in (results["prom"][0].replace("# TYPE hugeslab_threads gauge\n", ""),
                   results["prom"][0].replace('version="0.2"', 'version=0.2', 1),
                   results["prom"][0] + "hugeslab_info{} 1\n"):
        try:
            parse_prom(broken)
            return report("FAIL", "formats", "the strict parser accepted a broken file")
        except ValueError:
            pass
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=results["prom"][0],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return report("FAIL", "formats", "promtool: %s" % (p.stdout + p.stderr)[-300:])
    text = results["txt"][0]
    if not re.match(r"^hugeslab: statistics of pid \d+ \(%s\), hugeslab 0\.2, "
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" % re.escape(prog), text):
        return report("FAIL", "formats", "text header: %s" % text.splitlines()[0])
    # A program that names itself at length (argv[0] of 2,063 bytes; the
    # name is in every sample): the report is written, the label cut short
    # at a character's start (64 bytes would end inside the first e-acute).
    path = os.path.join(tmp, "long-name.prom")
    long_name = "x" * 63 + "\u00e9" * 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUGESLAB_")}
    env.update(LD_PRELOAD=SO, HUGESLAB_STATS_FILE=path)
    r = subprocess.run([long_name, "-c", "x = [bytes(100) for i in range(50000)]"],
                       executable=PY, env=env, capture_output=True, text=True, timeout=60)
    if not os.path.exists(path):
        return report("FAIL", "formats", "a program named by 2,063 bytes: no report (%s)"
                      % r.stderr[-200:])
    try:
        long_samples = parse_prom(open(path).read())
    except ValueError as e:
        return report("FAIL", "formats", "a program named by 2,063 bytes: %s" % e)
    info = [k for k in long_samples if k[0] == "hugeslab_info"]
    if not info or label_of(info[0][1], "program") != "x" * 63:
        return report("FAIL", "formats", "a program named by 2,063 bytes: its label %s" % info[:1])
    report("PASS", "formats")
    print("    prom: %d samples; promtool %s" % (len(samples), "passed" if promtool
                                                 else "not installed, strict parser only"))


def case_unwritable(tmp):
    r = run([PY, "-c", "import os\nif os.fork() == 0: os._exit(0)\nos.wait()"],
            {"HUGESLAB_STATS_FILE": "/nonexistent-dir/s.json", "HUGESLAB_STATS_INTERVAL_MS": "50"})
    lines = [l for l in r.stderr.splitlines() if "cannot write HUGESLAB_STATS_FILE" in l]
    # parent and forked child: one message each at most, the parent's at least
    if not 1 <= len(lines) <= 2:
        return report("FAIL", "unwritable", "%d messages: %s" % (len(lines), r.stderr[-300:]))
    if "no such folder" not in lines[0] or "stderr instead" not in lines[0]:
        return report("FAIL", "unwritable", "message: %s" % lines[0])
    if "hugeslab: statistics of pid" not in r.stderr:
        return report("FAIL", "unwritable", "no exit report on stderr")
    report("PASS", "unwritable")


def case_stderr(tmp):
    ls = shutil.which("ls") or "/bin/ls"
    r = run([ls, "/"], {"HUGESLAB_STATS": "1"})
    if "hugeslab: statistics of pid" not in r.stderr or "(ls)" not in r.stderr:
        return report("FAIL", "stderr", "ls closes stderr; no report: %r" % r.stderr[-200:])
    report("PASS", "stderr")


def case_stderr_reused(tmp):
    """A program that closes every descriptor and reuses the numbers: the
    copy of stderr hugeslab kept is gone, and the report must not land in
    the program's own file that now has its number."""
    victim = os.path.join(tmp, "victim")
    script = ("import os\nos.closerange(3, 1024)\n"
              "fd = os.open(%r, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
              "for n in range(100, 130): os.dup2(fd, n)\n" % victim)
    r = run([PY, "-c", script], {"HUGESLAB_STATS": "1"})
    size = os.path.getsize(victim) if os.path.exists(victim) else -1
    if size != 0:
        return report("FAIL", "stderr_reused", "the program's file got %d bytes" % size)
    if "hugeslab: statistics of pid" not in r.stderr:
        return report("FAIL", "stderr_reused", "no report on stderr: %r" % r.stderr[-200:])
    report("PASS", "stderr_reused")


def case_messages(tmp):
    true = shutil.which("true") or "/bin/true"
    cases = [
        ({"HUGESLAB_STAT": "1"}, "ignoring HUGESLAB_STAT: no such option; the closest is HUGESLAB_STATS"),
        ({"HUGESLAB_PURGE_DELAY": "100"},
         "ignoring HUGESLAB_PURGE_DELAY: no such option; the closest is HUGESLAB_PURGE_DELAY_MS"),
        ({"HUGESLAB_PROFIL": "database"}, "the closest is HUGESLAB_PROFILE"),
        ({"HUGESLAB_backing": "thp"}, "the closest is HUGESLAB_BACKING"),
        ({"HUGESLAB_PROFILE": "databse"},
         "ignoring HUGESLAB_PROFILE=databse: valid profiles are database, default, hugetlb, "
         "low-memory, thp-off, throughput; keeping the defaults"),
    ]
    choices = {"VERBOSE": ("0, 1", "0"), "STATS": ("0, 1", "0"),
               "BACKING": ("auto, hugetlb, thp, base", "auto"), "PREFAULT": ("0, 1", "0"),
               "PURGE": ("free, dontneed", "free"), "PURGE_BACKEND": ("madvise, uring", "madvise"),
               "NUMA": ("auto, off", "auto")}
    for name, (valid, kept) in choices.items():
        cases.append(({"HUGESLAB_" + name: "bogus"},
                      "ignoring HUGESLAB_%s=bogus from the environment: valid values are %s; "
                      "keeping %s" % (name, valid, kept)))
    numbers = {"PURGE_DELAY_MS": (0, 3600000, 500), "RESERVE_MB": (0, 1048576, 4),
               "CACHE_MB": (0, 1048576, 1024), "HUGE_MB": (2, 1048576, 32),
               "NUMA_NODES": (0, 64, 0), "STATS_INTERVAL_MS": (0, 3600000, 0),
               "CROWD_THREADS": (0, 1048576, 16)}
    for name, (lo, hi, kept) in numbers.items():
        for bad in ("x1", str(hi + 1)):
            cases.append(({"HUGESLAB_" + name: bad},
                          "ignoring HUGESLAB_%s=%s from the environment: valid values are whole "
                          "numbers from %d to %d; keeping %d" % (name, bad, lo, hi, kept)))
    # a profile's value is the one kept
    cases.append(({"HUGESLAB_PROFILE": "database", "HUGESLAB_PURGE_DELAY_MS": "-1"},
                  "valid values are whole numbers from 0 to 3600000; keeping 2000"))
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("purge_dealy_ms=100\nbacking=huge\n")
    cases.append(({"HUGESLAB_CONFIG": conf},
                  "ignoring line 'purge_dealy_ms=100' in %s (not KEY=VALUE with a known key); "
                  "the closest key is 'purge_delay_ms'" % conf))
    cases.append(({"HUGESLAB_CONFIG": conf},
                  "ignoring backing=huge from %s: valid values are auto, hugetlb, thp, base; "
                  "keeping auto" % conf))
    # A file too long for the reader is ignored whole: cut, its last line
    # was applied half read.
    big = os.path.join(tmp, "big.conf")
    with open(big, "w") as f:
        f.write("".join("# line %05d of comments\n" % i for i in range(800)) + "cache_mb=1024\n")
    cases.append(({"HUGESLAB_CONFIG": big},
                  "ignoring HUGESLAB_CONFIG=%s: longer than 16382 bytes; using the defaults" % big))
    cases.append(({"HUGESLAB_STATS_INTERVAL_MS": "100"},
                  "ignoring HUGESLAB_STATS_INTERVAL_MS: it rewrites HUGESLAB_STATS_FILE, which "
                  "is not set"))
    # without HUGESLAB_STATS at all (the loop below adds it to the case above)
    cases.append(({"HUGESLAB_STATS_INTERVAL_MS": "200"},
                  "ignoring HUGESLAB_STATS_INTERVAL_MS: it rewrites the statistics of "
                  "HUGESLAB_STATS=1, which is not set"))
    bad = []
    for env, want in cases:
        if "HUGESLAB_STATS_INTERVAL_MS" in env and len(env) == 1 and env["HUGESLAB_STATS_INTERVAL_MS"] == "100":
            env = dict(env, HUGESLAB_STATS="1")
        r = run([true], env)
        lines = [l for l in r.stderr.splitlines() if want in l]
        if len(lines) != 1 or r.returncode != 0:
            bad.append("%s: want one line '%s', got: %s" % (env, want, r.stderr.strip()[-200:]))
    # a clean environment says nothing
    r = run([true], {})
    if r.stderr:
        bad.append("no options, yet: %s" % r.stderr[-200:])
    if bad:
        return report("FAIL", "messages", "; ".join(bad[:3]))
    report("PASS", "messages")
    print("    %d bad names and values, each with its one line" % len(cases))


def case_verbose(tmp):
    r = run(["/bin/sh", "-c", "%s -c 'pass'; /bin/true" % PY], {"HUGESLAB_VERBOSE": "1"})
    progs = {}
    for line in r.stderr.splitlines():
        m = re.match(r"^hugeslab\[(\d+) ([^\]]+)\]: ", line)
        if not m:
            return report("FAIL", "verbose", "a line without pid and program: %s" % line)
        progs.setdefault(m.group(2), set()).add(m.group(1))
    if not {"sh", os.path.basename(PY), "true"} <= set(progs):
        return report("FAIL", "verbose", "programs named: %s" % progs)
    report("PASS", "verbose")


def case_nopool(tmp):
    total = int(open("/proc/sys/vm/nr_hugepages").read())
    if total != 0:
        return report("SKIP", "nopool", "the system has a hugetlb pool (%d pages); "
                      "tests/kernel checks 'ran dry'" % total)
    r = run([PY, "-c", "x = [bytes(10000) for i in range(300)]"],
            {"HUGESLAB_BACKING": "hugetlb", "HUGESLAB_VERBOSE": "1"})
    if "no hugetlb pool (nr_hugepages is 0)" not in r.stderr or "ran dry" in r.stderr:
        return report("FAIL", "nopool", " / ".join(
            [l for l in r.stderr.splitlines() if "pool" in l and "option" not in l][-2:]))
    report("PASS", "nopool")


def main():
    tmp = tempfile.mkdtemp(prefix="hugeslab-stats.")
    try:
        for case in (case_live, case_formats, case_unwritable, case_stderr, case_stderr_reused,
                     case_messages,
                     case_verbose, case_nopool):
            try:
                case(tmp)
            except Exception as e:  # a broken case fails, the others still run
                report("FAIL", case.__name__[5:], "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Real programs under each allocator: peak RSS, RSS once idle, time.

Three sections, each run under hugeslab (LD_PRELOAD, default options),
glibc, mimalloc, jemalloc and tcmalloc, round-robin with the starting
allocator rotated each round, 3 rounds, medians:

  postgres  Debian's PostgreSQL: a server in a temporary data directory
            under `numactl --membind=0 --cpunodebind=0` with the allocator
            preloaded, pgbench (TPC-B) for a few seconds, then one backend
            runs a sort (an ordered aggregate over every account), a hash join
            and a hash GROUP BY with work_mem large enough to stay in memory.
            Figures: that backend's peak RSS (VmHWM: its heap and the shared
            buffers it touched) and, apart, the most of its RssAnon (the
            heap) and of its RssShmem over polls every 0.01 s, its RSS 3 s
            after the query, the server's peak (the most, over polls every
            0.1 s, of the summed Rss and RssAnon of the postmaster and its
            children), query time.
  redis     Debian's redis-server filled through `redis-cli --pipe` with N
            512-byte values, every other thousand of them deleted and 3 s
            idle, then FLUSHALL and 3 s idle: peak RSS (VmHWM), INFO
            used_memory (the sum of malloc_usable_size), RSS, LazyFree and
            AnonHugePages (smaps_rollup) filled, 3 s after the deletes,
            right after FLUSHALL and 3 s later.
            Debian links redis-server with libjemalloc; the preloaded
            allocator takes malloc, calloc, realloc, free and
            malloc_usable_size (for glibc, libc.so.6 itself is preloaded),
            which `LD_DEBUG=bindings` confirms for each allocator.
  small     git log -p, git gc --aggressive, sqlite3 with 1 M rows, xz -d,
            python3 building a dict of 2 M entries, ls -lR /usr, sort of 2 M
            lines, node with 4 worker threads compressing buffers: peak RSS
            (the largest process's true peak, build/bench/exit_hwm -a, in a
            second run of each, where it is built and can trace: else
            /usr/bin/time's %M), time and minor faults from /usr/bin/time.
            More programs on request (--programs, TOOL_PROGRAMS): compilers
            (gcc, clang), interpreters (perl, jq, awk, tclsh), compressors
            (bzip2, zstd) and file walkers (du, find), git blame.

Every section compares its output with glibc's (query results, DEBUG DIGEST,
a SHA-1 of stdout) and marks an allocator whose output differs, that crashes,
or whose preload did not take.  Missing Debian packages are installed with
scripts/ensure-packages.sh when root; otherwise it prints the command and the
section is skipped.

Only the standard library is used, so it runs on a bare Debian python3.
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ in the source tree
import compare  # noqa: E402  (find_allocators: the same allocators as make bench)

SECTIONS = ["postgres", "redis", "small"]
SMALL_PROGRAMS = ["git_log", "git_gc", "sqlite3", "xz_d", "python3", "ls_lR", "sort", "node"]
# Run only when --programs names them: everyday tools whose heaps are a few
# MiB to a few hundred, where a process's last SuperSlab and the ends of its
# large blocks weigh most.
TOOL_PROGRAMS = ["gcc", "clang", "perl", "jq", "awk", "tcl", "bzip2", "zstd", "du", "find",
                 "git_blame"]
# Debian packages each section needs (ensure-packages.sh installs them as root).
PACKAGES = {
    "postgres": ["postgresql", "numactl"],
    "redis": ["redis-server"],
    "small": ["git", "sqlite3", "xz-utils", "time", "python3", "nodejs"],
}
# The tools' packages, installed only when one of them is asked for.
TOOL_PACKAGES = ["gcc", "clang", "perl", "jq", "mawk", "tcl", "bzip2", "zstd", "coreutils",
                 "findutils"]
# What each program reads from libc's malloc; glibc under Redis needs libc
# preloaded, since the binary itself links libjemalloc ahead of libc.
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--so", default=os.path.join(ROOT, "build", "libhugeslab.so"),
                   help="hugeslab shared library (default: build/libhugeslab.so)")
    p.add_argument("--lib-dir", default=compare.LIBDIR,
                   help="where libmimalloc.so.2, libjemalloc.so.2 and "
                        "libtcmalloc_minimal.so.4 are (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="rounds per allocator (default 3)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="comma-separated subset of " + ",".join(SECTIONS))
    p.add_argument("--allocators", default=",".join(compare.ALL_NAMES),
                   help="comma-separated subset of " + ",".join(compare.ALL_NAMES))
    p.add_argument("--programs", default=",".join(SMALL_PROGRAMS),
                   help="small programs to run: " + ",".join(SMALL_PROGRAMS) +
                        " (default), and on request " + ",".join(TOOL_PROGRAMS))
    p.add_argument("--pg-scale", type=int, default=20, help="pgbench scale (default 20)")
    p.add_argument("--pg-seconds", type=int, default=5, help="pgbench run (default 5 s)")
    p.add_argument("--redis-keys", type=int, default=1000000,
                   help="512-byte values stored in Redis (default 1000000)")
    p.add_argument("--git-repo", default=ROOT,
                   help="repository for `git log -p` (default: this one; a long history "
                        "such as a clone of redis makes a bigger heap)")
    p.add_argument("--gc-repo", default=None,
                   help="repository that `git gc --aggressive` repacks, a bare copy of it "
                        "for every run (default: --git-repo; a clone of redis's 2.6 branch, "
                        "15,065 objects, takes about a minute on 2 cores)")
    p.add_argument("--idle", type=float, default=3.0,
                   help="seconds idle before the 'after' RSS (default 3)")
    p.add_argument("--hs-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the hugeslab runs only "
                        "(e.g. HUGESLAB_PURGE=dontneed); may be repeated")
    p.add_argument("--no-page-reporting", action="store_true",
                   help="hold a virtual machine's free page reporting for the run, as "
                        "compare.py --no-page-reporting does (root; put back at the end)")
    p.add_argument("--work", default=None,
                   help="folder for inputs and logs (default: a temporary one, removed)")
    return p.parse_args()


# --- /proc readers ----------------------------------------------------------

def proc_fields(path, names):
    """The kB figures NAME: of a /proc status-style file, 0 for absent ones."""
    out = dict.fromkeys(names, 0)
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in out:
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def status(pid):
    """VmHWM, VmRSS, RssAnon and HugetlbPages (hugetlbfs pages, which Rss leaves out)."""
    return proc_fields("/proc/%d/status" % pid, ["VmHWM", "VmRSS", "RssAnon", "HugetlbPages"])


def rollup(pid):
    """smaps_rollup's Rss with the process's hugetlb pages added, LazyFree, AnonHugePages."""
    r = proc_fields("/proc/%d/smaps_rollup" % pid,
                    ["Rss", "LazyFree", "AnonHugePages", "Private_Hugetlb", "Shared_Hugetlb"])
    r["Rss"] += r["Private_Hugetlb"] + r["Shared_Hugetlb"]
    return r


def proportional(pid):
    """Pss of pid (each shared page divided among the processes that map it), its
    private hugetlb pages added (Pss leaves them out; shared ones are left out)."""
    r = proc_fields("/proc/%d/smaps_rollup" % pid, ["Pss", "Private_Hugetlb"])
    return r["Pss"] + r["Private_Hugetlb"]


def resident(pid):
    """Resident kB of pid, hugetlb pages included (VmRSS alone leaves them out)."""
    s = status(pid)
    return s["VmRSS"] + s["HugetlbPages"]


def hugetlb_pool():
    """(pages, free) of the 2 MiB hugetlb pool."""
    d = "/sys/kernel/mm/hugepages/hugepages-2048kB/"
    try:
        with open(d + "nr_hugepages") as a, open(d + "free_hugepages") as b:
            return int(a.read()), int(b.read())
    except (OSError, ValueError):
        return 0, 0


def children(pid):
    """Direct children of pid (from /proc/PID/task/*/children, else a scan)."""
    kids = []
    task_dir = "/proc/%d/task" % pid
    try:
        for tid in os.listdir(task_dir):
            with open(os.path.join(task_dir, tid, "children")) as f:
                kids += [int(x) for x in f.read().split()]
        return kids
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = proc_fields("/proc/%s/status" % name, ["PPid"])["PPid"]
            if ppid == pid:
                kids.append(int(name))
    return kids


def mb(kb):
    return kb / 1024.0


# --- allocators --------------------------------------------------------------

def allocators(args):
    present, skipped = compare.find_allocators(args.so, args.lib_dir)
    want = args.allocators.split(",")
    for name, why in skipped:
        if name in want:
            log("programs: %s skipped: %s" % (name, why))
    return [(n, so) for n, so in present if n in want]


def preload_env(name, so, force_libc=False):
    """Environment for one allocator (None: glibc without a preload)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["LC_ALL"] = "C"
    if so:
        env["LD_PRELOAD"] = so
    elif force_libc:
        env["LD_PRELOAD"] = LIBC
    return env


def malloc_binding(binary, env):
    """The object ld.so binds BINARY's malloc to under ENV (from LD_DEBUG=bindings)."""
    e = dict(env, LD_DEBUG="bindings", LD_BIND_NOW="1")
    try:
        cp = subprocess.run([binary, "--version"], env=e, capture_output=True, text=True,
                            timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    pat = re.compile(r"binding file %s \[0\] to (\S+) \[0\]: normal symbol `malloc'"
                     % re.escape(binary))
    for line in cp.stderr.splitlines():
        m = pat.search(line)
        if m:
            return m.group(1)
    return "?"


def check_binding(binary, name, so, env):
    """'' when BINARY's malloc comes from the allocator NAME, else why not."""
    got = malloc_binding(binary, env)
    want = so or LIBC
    if got == "?":
        return ""  # not visible (static binary, no --version): the maps check remains
    if os.path.realpath(got) != os.path.realpath(want):
        return "malloc of %s binds to %s, not %s" % (os.path.basename(binary), got, name)
    return ""


def section_packages(args, section):
    pkgs = list(PACKAGES[section])
    if section == "small" and set(args.programs.split(",")) & set(TOOL_PROGRAMS):
        pkgs += TOOL_PACKAGES
    return pkgs


def ensure_packages(pkgs):
    cp = subprocess.run([os.path.join(ROOT, "scripts", "ensure-packages.sh")] + pkgs,
                        capture_output=True, text=True)
    if cp.stdout.strip():
        log(cp.stdout.strip())
    return cp.returncode == 0


# hugeslab runs that started while the hugetlb pool had free pages, per section:
# with the default backing (auto) they ran on hugetlb pages, not THP.
POOL_RUNS = {}


def rounds(names, runs, section):
    """Round-robin order, the first allocator rotated each round."""
    POOL_RUNS[section] = [0, 0]
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if name == "hugeslab":
                POOL_RUNS[section][0] += hugetlb_pool()[1] > 0
                POOL_RUNS[section][1] += 1
            yield r, name


def pool_note(section, hs_env):
    backing = dict(kv.split("=", 1) for kv in hs_env).get("HUGESLAB_BACKING", "auto")
    if backing not in ("auto", "hugetlb"):
        return "hugeslab with HUGESLAB_BACKING=%s." % backing
    on_pool, total = POOL_RUNS.get(section, (0, 0))
    if not on_pool:
        return "hugeslab ran with no free hugetlb pages in the system pool (THP backing)."
    return ("%d of %d hugeslab runs started while the system's hugetlb pool had free pages: "
            "they took hugetlb pages (counted in the RSS figures)." % (on_pool, total))


# --- tables -----------------------------------------------------------------

def median_of(results, name, key):
    vals = [r[key] for r in results.get(name, []) if r.get("ok") and key in r]
    return statistics.median(vals) if vals else None


def render(title, columns, names, results, notes):
    """A Markdown table: one row per allocator, medians of each column."""
    lines = ["", "### " + title, "",
             "| allocator | " + " | ".join(c[1] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for name in names:
        runs = results.get(name, [])
        bad = [r for r in runs if not r.get("ok")]
        if runs and len(bad) == len(runs):
            lines.append("| %s | %s |" % (name, bad[0].get("why", "failed")))
            continue
        cells = []
        for key, _label, fmt in columns:
            v = median_of(results, name, key)
            cells.append("-" if v is None else fmt % v)
        extra = " (%d of %d runs failed: %s)" % (len(bad), len(runs), bad[0]["why"]) if bad else ""
        lines.append("| %s%s | %s |" % (name, extra, " | ".join(cells)))
    lines += [""] + notes
    return "\n".join(lines)


# --- PostgreSQL ---------------------------------------------------------------

PG_CONF = """
listen_addresses = ''
unix_socket_directories = '{tmp}'
port = {port}
shared_buffers = 128MB
max_connections = 20
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
huge_pages = off
"""

# One backend: a sort of every account (ordered aggregate), a hash join of the
# accounts with a derived table, a hash aggregate with half a million groups.
# Only aid and bid, which pgbench's TPC-B never changes, so every allocator's
# output must be the same.
PG_QUERY = r"""
SET work_mem = '1GB';
SET enable_mergejoin = off;
SET enable_nestloop = off;
\o {tmp}/pid.out
SELECT pg_backend_pid();
\o {tmp}/query-{tag}.out
\! date +%s.%N > {tmp}/t0
SELECT md5(string_agg(aid::text, ',' ORDER BY md5(aid::text))) FROM pgbench_accounts;
SELECT count(*), sum(a.bid), sum(length(b.m)), md5(min(b.m) || max(b.m))
  FROM pgbench_accounts a JOIN (SELECT aid, md5(aid::text) AS m FROM pgbench_accounts) b
  ON a.aid = b.aid;
SELECT count(*), sum(c), sum(s), md5(string_agg(g, ',' ORDER BY g)) FROM
  (SELECT md5((aid % 500000)::text) AS g, count(*) AS c, sum(bid) AS s
   FROM pgbench_accounts GROUP BY g) x;
\! date +%s.%N > {tmp}/t1
SELECT pg_sleep({sleep});
"""


class Poller(threading.Thread):
    """Every INTERVAL s, sums Rss and RssAnon over ROOT and its children (only the
    children with with_root=False), hugetlb pages included in both; keeps the most
    of the sums and of each process.  VmHWM alone would miss hugetlb pages, which
    hugeslab takes by default while the system's pool has free ones."""

    def __init__(self, root_pid, interval=0.1, with_root=True, deep=False, pss=False):
        super().__init__(daemon=True)
        self.root = root_pid
        self.interval = interval
        self.with_root = with_root
        self.deep = deep  # every descendant, not only the children (git gc's pack-objects)
        # Also sum Pss (smaps_rollup, a walk of each process's page tables):
        # the processes of a server share memory (PostgreSQL's shared
        # buffers), which the sum of their Rss counts once per process that
        # touched it, so that a run that did more transactions, each backend
        # touching more of the buffers, shows more Rss for the same memory.
        self.pss = pss
        self.peak_rss = 0
        self.peak_anon = 0
        self.peak_pss = 0
        self.peak_of = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            rss = anon = pss = 0
            pids = children(self.root)
            if self.deep:
                todo = list(pids)
                while todo:
                    kids = children(todo.pop())
                    pids += kids
                    todo += kids
            for pid in ([self.root] if self.with_root else []) + pids:
                s = status(pid)
                rss += s["VmRSS"] + s["HugetlbPages"]
                anon += s["RssAnon"] + s["HugetlbPages"]
                self.peak_of[pid] = max(self.peak_of.get(pid, 0),
                                        s["VmHWM"], s["VmRSS"] + s["HugetlbPages"])
                if self.pss:
                    pss += proportional(pid)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_pss = max(self.peak_pss, pss)
            self.stop.wait(self.interval)


class BackendPoller(threading.Thread):
    """Every INTERVAL s, the backend's RssAnon (hugetlb pages added) and RssShmem;
    keeps the most of each.  VmHWM counts the shared buffers the backend touched
    (RssShmem, which depends on which table pages it read and the other backends
    before it) as well as its own heap, so the heap's peak is the anon one."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_anon = 0  # kB, the most of RssAnon + HugetlbPages seen
        self.peak_shmem = 0  # kB, the most of RssShmem seen
        self.stop = threading.Event()

    def run(self):
        path = "/proc/%d/status" % self.pid
        while not self.stop.is_set():
            s = proc_fields(path, ["RssAnon", "RssShmem", "HugetlbPages"])
            self.peak_anon = max(self.peak_anon, s["RssAnon"] + s["HugetlbPages"])
            self.peak_shmem = max(self.peak_shmem, s["RssShmem"])
            self.stop.wait(self.interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_file(path, timeout, proc=None):
    """Wait until PATH has content; False on timeout or when PROC ended first."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            if os.path.getsize(path) > 0:
                return True
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            return os.path.exists(path) and os.path.getsize(path) > 0
        time.sleep(0.02)
    return False


def section_postgres(args, allocs, work):
    names = [n for n, _ in allocs]
    title = "PostgreSQL: pgbench, then a sort / hash join / hash aggregate in one backend"
    bindirs = sorted((d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                                  for v in (os.listdir("/usr/lib/postgresql")
                                            if os.path.isdir("/usr/lib/postgresql") else []))
                      if os.path.exists(os.path.join(d, "postgres"))),
                     key=lambda d: [int(x) for x in re.findall(r"\d+", d)])
    if not bindirs:
        return "\n### %s\n\nSkipped: PostgreSQL is not installed.\n" % title
    bindir = bindirs[-1]
    numa = ["numactl", "--membind=0", "--cpunodebind=0"]
    if shutil.which("numactl") is None or subprocess.run(numa + ["true"]).returncode != 0:
        log("programs: numactl --membind=0 fails here; the server runs without it")
        numa = []
    root = os.getuid() == 0
    if root:
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            return "\n### %s\n\nSkipped: running as root and there is no postgres user.\n" % title
        as_db = ["runuser", "-u", "postgres", "--"]
    else:
        as_db = []
    tmp = tempfile.mkdtemp(prefix="pg.", dir=work)
    os.chmod(tmp, 0o755)
    copies = {}
    for name, so in allocs:
        if so:
            copies[name] = os.path.join(tmp, os.path.basename(so))
            shutil.copy(so, copies[name])
    if root:
        subprocess.run(["chown", "-R", "postgres:", tmp], check=True)
    data = os.path.join(tmp, "data")
    port = free_port()
    base_env = dict(os.environ, PGHOST=tmp, PGPORT=str(port), LC_ALL="C")
    base_env.pop("LD_PRELOAD", None)

    def db_argv(cmd):
        return as_db + ["env", "PGHOST=" + tmp, "PGPORT=%d" % port] + cmd

    def db(cmd, env=None, **kw):
        return subprocess.run(db_argv(cmd), env=env or base_env, **kw)

    def pg_ctl(action, env=None, extra=()):
        return db([os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-t", "120", action]
                  + list(extra), env=env, capture_output=True, text=True)

    cp = db([os.path.join(bindir, "initdb"), "-D", data, "-N", "-A", "trust", "-U", "postgres"],
            capture_output=True, text=True)
    if cp.returncode != 0:
        return "\n### %s\n\nSkipped: initdb failed: %s\n" % (title, cp.stderr.strip()[-300:])
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(PG_CONF.format(tmp=tmp, port=port))
    psql = os.path.join(bindir, "psql")
    pgbench = os.path.join(bindir, "pgbench")
    log("programs: postgres: pgbench -i -s %d (glibc, not measured)" % args.pg_scale)
    if pg_ctl("start", extra=["-l", os.path.join(tmp, "init.log")]).returncode != 0:
        return "\n### %s\n\nSkipped: the server did not start under glibc.\n" % title
    cp = db([pgbench, "-i", "-q", "-s", str(args.pg_scale), "postgres"],
            capture_output=True, text=True)
    db([psql, "-q", "-c", "VACUUM ANALYZE", "postgres"], capture_output=True)
    pg_ctl("stop", extra=["-m", "fast"])
    if cp.returncode != 0:
        return "\n### %s\n\nSkipped: pgbench -i failed: %s\n" % (title, cp.stderr.strip()[-300:])

    results = {n: [] for n in names}
    reference = None
    binding = {}
    for rnd, name in rounds(names, args.runs, "postgres"):
        so = copies.get(name)
        env = preload_env(name, so)
        if name == "hugeslab":
            env.update(kv.split("=", 1) for kv in args.hs_env)
        if name not in binding:
            binding[name] = check_binding(os.path.join(bindir, "postgres"), name, so, env)
        tag = "%s-%d" % (name, rnd)
        res = {"ok": False, "why": binding[name]}
        results[name].append(res)
        if res["why"]:
            continue
        log("programs: postgres round %d: %s" % (rnd + 1, name))
        srv_log = os.path.join(tmp, "server-%s.log" % tag)
        cp = subprocess.run(as_db + ["env"] + ["%s=%s" % kv for kv in env.items()
                                               if kv[0].startswith(("LD_PRELOAD", "HUGESLAB_"))]
                            + numa + [os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-t",
                                      "120", "-l", srv_log, "start"],
                            env=base_env, capture_output=True, text=True)
        if cp.returncode != 0:
            res["why"] = "the server did not start"
            continue
        with open(os.path.join(data, "postmaster.pid")) as f:
            master = int(f.readline())
        poller = Poller(master, pss=True)
        poller.start()
        try:
            run_postgres_round(args, res, db, db_argv, psql, pgbench, tmp, tag, master, so,
                               poller)
        finally:
            poller.stop.set()
            poller.join()
            pg_ctl("stop", extra=["-m", "fast"])
        res["server_rss"] = mb(poller.peak_rss)
        res["server_anon"] = mb(poller.peak_anon)
        res["server_pss"] = mb(poller.peak_pss)
        if "backend_anon_peak" in res:
            log("programs: postgres round %d: %s: backend peak %.0f, heap %.0f, shared "
                "buffers %.0f MiB" % (rnd + 1, name, res["backend_hwm"],
                                      res["backend_anon_peak"], res["backend_shmem_peak"]))
        with open(srv_log, errors="replace") as f:
            bad = [ln for ln in f if re.search(r"terminated by signal|PANIC|hugeslab:", ln)]
        if bad and res["ok"]:
            res.update(ok=False, why="server log: " + bad[0].strip()[:160])
        out = os.path.join(tmp, "query-%s.out" % tag)
        if res["ok"]:
            with open(out, "rb") as f:
                got = f.read()
            if reference is None:
                reference = (name, got)
            elif got != reference[1]:
                res.update(ok=False, why="query output differs from %s's" % reference[0])
    ref_note = "the same under every allocator" if reference else "not compared"
    with open(os.path.join(data, "PG_VERSION")) as f:
        version = f.read().strip()
    notes = [
        "PostgreSQL %s, pgbench scale %d (%d accounts), %d s of TPC-B with 4 clients, then "
        "one psql session; shared_buffers 128MB, work_mem 1GB, no parallel workers, jit "
        "off, autovacuum off; the server under `%s`. Query output %s. Query backend "
        "peak: its VmHWM, which counts the shared buffers it touched as well as its heap; "
        "the heap and the shared buffers: the most of its RssAnon and of its RssShmem, "
        "polled every 0.01 s from the query's start (not at the same moment, so they need "
        "not add up to the peak). Server: the most, "
        "over polls every 0.1 s, of the Rss (and RssAnon) summed over the postmaster and "
        "its children, and of their Pss, where the shared buffers count once "
        "(the Rss sum counts them in every process that touched them, more of them "
        "where pgbench ran more transactions). Medians of %d runs."
        % (version, args.pg_scale, args.pg_scale * 100000, args.pg_seconds,
           " ".join(numa) or "no numactl", ref_note, args.runs), "", pool_note("postgres", args.hs_env)]
    columns = [("backend_hwm", "query backend peak MiB", "%.0f"),
               ("backend_anon_peak", "of it: heap (RssAnon) MiB", "%.0f"),
               ("backend_shmem_peak", "shared buffers (RssShmem) MiB", "%.0f"),
               ("backend_after", "backend Rss %gs after MiB" % args.idle, "%.0f"),
               ("backend_anon_after", "backend RssAnon after MiB", "%.0f"),
               ("server_rss", "server peak Rss MiB", "%.0f"),
               ("server_anon", "server peak RssAnon MiB", "%.0f"),
               ("server_pss", "server peak Pss MiB", "%.0f"),
               ("query_s", "query s", "%.2f"),
               ("tps", "pgbench tps", "%.0f")]
    return render(title, columns, names, results, notes)


def run_postgres_round(args, res, db, db_argv, psql, pgbench, tmp, tag, master, so, poller):
    """pgbench, then the query in one backend; fills RES."""
    cp = db([pgbench, "-n", "-T", str(args.pg_seconds), "-c", "4", "-j", "2", "postgres"],
            capture_output=True, text=True)
    m = re.search(r"tps = ([\d.]+)", cp.stdout)
    if cp.returncode != 0 or not m:
        res["why"] = "pgbench failed: " + (cp.stderr.strip().splitlines() or ["?"])[-1][:160]
        return
    res["tps"] = float(m.group(1))
    for f in ("pid.out", "t0", "t1"):
        try:
            os.unlink(os.path.join(tmp, f))
        except OSError:
            pass
    script = os.path.join(tmp, "query-%s.sql" % tag)
    with open(script, "w") as f:
        f.write(PG_QUERY.format(tmp=tmp, tag=tag, sleep=args.idle + 2))
    os.chmod(script, 0o644)
    proc = subprocess.Popen(
        db_argv([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", script,
                 "postgres"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    heap = None
    try:
        # The backend's pid is written before the query starts (t0): poll its
        # heap from there on.
        if wait_file(os.path.join(tmp, "pid.out"), 120, proc):
            with open(os.path.join(tmp, "pid.out")) as f:
                heap = BackendPoller(int(f.read().split()[0]))
            heap.start()
        if not wait_file(os.path.join(tmp, "t1"), 900, proc):
            out, err = proc.communicate(timeout=30)
            res["why"] = "the query failed: " + (err.strip().splitlines() or ["?"])[-1][:160]
            return
        with open(os.path.join(tmp, "pid.out")) as f:
            backend = int(f.read().split()[0])
        if backend not in children(master):
            res["why"] = "backend %d is not a child of the postmaster" % backend
            return
        if so and so not in open("/proc/%d/maps" % backend).read():
            res["why"] = "the backend does not map " + os.path.basename(so)
            return
        hwm = status(backend)
        time.sleep(args.idle)
        after = status(backend)
        res["rollup_after"] = rollup(backend)
        with open(os.path.join(tmp, "t0")) as f0, open(os.path.join(tmp, "t1")) as f1:
            res["query_s"] = float(f1.read()) - float(f0.read())
        res["backend_hwm"] = mb(max(hwm["VmHWM"], poller.peak_of.get(backend, 0),
                                    hwm["VmRSS"] + hwm["HugetlbPages"]))
        if heap is not None:
            heap.stop.set()
            heap.join()
            res["backend_anon_peak"] = mb(heap.peak_anon)
            res["backend_shmem_peak"] = mb(heap.peak_shmem)
        res["backend_after"] = mb(after["VmRSS"] + after["HugetlbPages"])
        res["backend_anon_after"] = mb(after["RssAnon"] + after["HugetlbPages"])
        proc.communicate(timeout=60)
        res["ok"] = proc.returncode == 0
        if not res["ok"]:
            res["why"] = "psql exit %d" % proc.returncode
    finally:
        if heap is not None:
            heap.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- Redis --------------------------------------------------------------------

def redis_cli(port, *cmd, timeout=120):
    cp = subprocess.run(["redis-cli", "-p", str(port)] + list(cmd), capture_output=True,
                        text=True, timeout=timeout)
    return cp.stdout.strip()


def redis_info(port):
    info = {}
    for line in redis_cli(port, "INFO", "memory").splitlines():
        k, _, v = line.strip().partition(":")
        info[k] = v
    return info


def redis_fill(port, keys):
    """SET key:NNNNNNNN to 512 bytes for every key, through redis-cli --pipe."""
    proc = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def feed():
        batch = []
        for i in range(keys):
            val = (b"%08d" % i) * 64
            batch.append(b"*3\r\n$3\r\nSET\r\n$12\r\nkey:%08d\r\n$512\r\n%s\r\n" % (i, val))
            if len(batch) == 10000:
                proc.stdin.write(b"".join(batch))
                batch = []
        proc.stdin.write(b"".join(batch))
        proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = proc.stdout.read().decode(errors="replace")
    writer.join()
    proc.wait()
    m = re.search(r"errors: (\d+), replies: (\d+)", out)
    if proc.returncode != 0 or not m or m.group(1) != "0" or int(m.group(2)) != keys:
        return "redis-cli --pipe: " + out.strip().splitlines()[-1][:160] if out.strip() else "?"
    return ""


def section_redis(args, allocs, work):
    names = [n for n, _ in allocs]
    title = ("Redis: %d values of 512 bytes, every other thousand deleted, then FLUSHALL; "
             "%g s idle after each" % (args.redis_keys, args.idle))
    server = shutil.which("redis-server")
    if not server or not shutil.which("redis-cli"):
        return "\n### %s\n\nSkipped: redis-server is not installed.\n" % title
    tmp = tempfile.mkdtemp(prefix="redis.", dir=work)
    results = {n: [] for n in names}
    reference = None
    binding = {}
    for rnd, name in rounds(names, args.runs, "redis"):
        so = dict(allocs)[name]
        env = preload_env(name, so, force_libc=True)
        if name == "hugeslab":
            env.update(kv.split("=", 1) for kv in args.hs_env)
        if name not in binding:
            binding[name] = check_binding(server, name, so, env)
        res = {"ok": False, "why": binding[name]}
        results[name].append(res)
        if res["why"]:
            continue
        log("programs: redis round %d: %s" % (rnd + 1, name))
        port = free_port()
        srv_log = os.path.join(tmp, "redis-%s-%d.log" % (name, rnd))
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", tmp,
                                 "--enable-debug-command", "local", "--logfile", srv_log],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run_redis_round(args, res, port, proc)
            if res["ok"]:
                if reference is None:
                    reference = (name, res["digest"])
                elif res["digest"] != reference[1]:
                    res.update(ok=False, why="DEBUG DIGEST differs from %s's" % reference[0])
        finally:
            if proc.poll() is None:
                redis_cli(port, "SHUTDOWN", "NOSAVE")
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc.returncode not in (0, None) and res["ok"]:
            res.update(ok=False, why="redis-server exit %d" % proc.returncode)
    version = subprocess.run([server, "--version"], capture_output=True,
                             text=True).stdout.split()[2:3]
    notes = [
        "Redis %s (Debian, linked with libjemalloc; the preloaded allocator takes malloc, "
        "checked with `LD_DEBUG=bindings`: INFO's mem_allocator still says jemalloc). Filled "
        "with `redis-cli --pipe` (SET key:%%08d, 512-byte values), checked with DBSIZE and "
        "DEBUG DIGEST (%s); then every other thousand keys deleted (one EVAL: keys that go "
        "together, as a tenant's sessions expire, leave holes of 500 KB among the data kept), "
        "%g s idle; then FLUSHALL, which is synchronous. used_memory: Redis's sum of "
        "malloc_usable_size after the fill. Redis turns THP off for itself (prctl "
        "PR_SET_THP_DISABLE) when the system's mode is always. Medians of %d runs."
        % ("".join(version).replace("v=", ""),
           "the same under every allocator" if reference else "not compared", args.idle,
           args.runs),
        "", pool_note("redis", args.hs_env)]
    columns = [("start_rss", "RSS at start MiB", "%.1f"),
               ("peak", "peak RSS MiB", "%.0f"),
               ("used_memory", "used_memory MiB", "%.0f"),
               ("filled_rss", "RSS filled MiB", "%.0f"),
               ("half_rss", "RSS %gs after deleting half MiB" % args.idle, "%.0f"),
               ("half_lazy", "of it LazyFree", "%.0f"),
               ("flush_rss", "RSS after FLUSHALL MiB", "%.0f"),
               ("flush_lazy", "of it LazyFree", "%.0f"),
               ("idle_rss", "RSS %gs later MiB" % args.idle, "%.1f"),
               ("idle_lazy", "of it LazyFree", "%.0f"),
               ("filled_thp", "AnonHugePages filled MiB", "%.0f"),
               ("fill_s", "fill s", "%.1f")]
    return render(title, columns, names, results, notes)


def note_rollup(res, pid, **fields):
    """res[key] = the MiB of smaps_rollup's `field`, for each key=field."""
    now = rollup(pid)
    for key, field in fields.items():
        res[key] = mb(now[field])


def run_redis_round(args, res, port, proc):
    end = time.time() + 30
    while redis_cli(port, "PING") != "PONG":
        if proc.poll() is not None or time.time() > end:
            res["why"] = "redis-server did not start (exit %s)" % proc.poll()
            return
        time.sleep(0.05)
    pid = proc.pid
    res["start_rss"] = mb(resident(pid))
    poller = Poller(pid, interval=0.05)
    poller.start()
    try:
        redis_measure(args, res, port, pid)
    finally:
        poller.stop.set()
        poller.join()
    res["peak"] = mb(max(poller.peak_rss, status(pid)["VmHWM"]))


def redis_measure(args, res, port, pid):
    t = time.time()
    why = redis_fill(port, args.redis_keys)
    res["fill_s"] = time.time() - t
    if why:
        res["why"] = why
        return
    dbsize = redis_cli(port, "DBSIZE")
    if dbsize != str(args.redis_keys):
        res["why"] = "DBSIZE %s after storing %d keys" % (dbsize, args.redis_keys)
        return
    res["digest"] = redis_cli(port, "DEBUG", "DIGEST")
    info = redis_info(port)
    res["used_memory"] = mb(int(info.get("used_memory", 0)) / 1024)
    note_rollup(res, pid, filled_rss="Rss", filled_thp="AnonHugePages")
    # Keys that go together (a tenant's sessions): every other thousand
    # deleted, so that the memory freed lies in holes of 500 KB between
    # the data kept, as expiry leaves it, not in whole regions.
    script = ("for i = 0, %d do if math.floor(i / 1000) %% 2 == 0 then "
              "redis.call('DEL', string.format('key:%%08d', i)) end end return 1"
              % (args.redis_keys - 1))
    if redis_cli(port, "EVAL", script, "0") != "1":
        res["why"] = "EVAL of the deletes failed"
        return
    kept = sum(1 for i in range(args.redis_keys) if (i // 1000) % 2 == 1)
    dbsize = redis_cli(port, "DBSIZE")
    if dbsize != str(kept):
        res["why"] = "DBSIZE %s after deleting every other thousand keys, not %d" % (dbsize, kept)
        return
    time.sleep(args.idle)
    note_rollup(res, pid, half_rss="Rss", half_lazy="LazyFree")
    if redis_cli(port, "FLUSHALL") != "OK":
        res["why"] = "FLUSHALL failed"
        return
    note_rollup(res, pid, flush_rss="Rss", flush_lazy="LazyFree")
    time.sleep(args.idle)
    note_rollup(res, pid, idle_rss="Rss", idle_lazy="LazyFree")
    if redis_cli(port, "PING") != "PONG":
        res["why"] = "redis-server stopped answering after FLUSHALL"
        return
    res["ok"] = True


# --- small programs -------------------------------------------------------------

SQLITE_SQL = """
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER, pad TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000000)
INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), i % 1000,
                     printf('%050d', i * 7) FROM c;
CREATE INDEX t_k ON t(k);
SELECT count(*), sum(v), count(DISTINCT k) FROM t;
SELECT v, count(*), sum(length(pad)) FROM t GROUP BY v ORDER BY v LIMIT 5;
SELECT k, id FROM t ORDER BY k LIMIT 3 OFFSET 500000;
SELECT count(*) FROM t a JOIN t b ON a.k = b.k WHERE a.v < 10;
"""

PYTHON_DICT = """
d = {}
for i in range(2000000):
    d['key%d' % i] = (i, str(i) * 3)
l = sorted(d.items(), key=lambda kv: kv[1][1])
print(len(d), sum(len(v[1]) for v in d.values()), l[0][0], l[-1][0])
"""


TCL_DICT = """
set d [dict create]
for {set i 0} {$i < 300000} {incr i} { dict set d k$i [string repeat x [expr {$i % 40}]] }
puts [dict size $d]
"""


PERL_HASH = """
my %h;
for my $i (1..1000000) { $h{"k$i"} = "v" x ($i % 50); }
my @k = sort keys %h;
print scalar(@k), "\\n";
"""


# 300,000 records of 5,000 names, written by awk (no json module needed),
# as tests/programs.sh writes its 50,000.
JSON_RECORDS = ["awk", "-v", "n=300000", "-v", "seed=1", "-f",
                os.path.join(ROOT, "tests", "programs", "records.awk")]


# Node.js: 4 worker threads, each compressing and inflating 3,000 buffers
# of up to 64 KiB (zlib's state and V8's external buffers come from malloc)
# and keeping a few dozen slow buffers of up to 200 KB alive, then 64 gzip
# jobs on libuv's thread pool and one child process. Many blocks are freed
# by another thread than the one that allocated them (364,073 in one run,
# HUGESLAB_STATS=1). Deterministic output: one SHA-256 per worker.
NODE_WORKERS = r"""
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const zlib = require('zlib'), crypto = require('crypto'), cp = require('child_process');
function work(id, rounds) {
  const h = crypto.createHash('sha256');
  const keep = [];
  for (let i = 0; i < rounds; i++) {
    const n = 1 + ((i * 7919 + id * 104729) % 65536);
    const b = Buffer.alloc(n, (i + id) & 255);
    for (let k = 0; k < n; k += 13) b[k] = (k * id) & 255;
    h.update(zlib.inflateSync(zlib.deflateSync(b)));
    keep.push(Buffer.allocUnsafeSlow(1 + (i % 200000)));
    if (keep.length > 32) keep.splice((i * 31) % keep.length, 1);
  }
  return id + ' ' + h.digest('hex');
}
if (isMainThread) {
  const workers = 4, rounds = 3000, out = [];
  let done = 0;
  for (let w = 0; w < workers; w++) {
    const wk = new Worker(__filename, { workerData: { id: w, rounds } });
    wk.on('error', e => { console.error(e); process.exit(1); });
    wk.on('message', m => {
      out[w] = m;
      if (++done < workers) return;
      out.forEach(x => console.log(x));
      console.log(cp.execSync('echo child').toString().trim());
      let pending = 64;
      const sums = [];
      for (let j = 0; j < 64; j++)
        zlib.gzip(Buffer.alloc(100000 + j, j), (e, r) => {
          sums[j] = crypto.createHash('md5').update(zlib.gunzipSync(r)).digest('hex');
          if (--pending === 0) console.log(crypto.createHash('md5').update(sums.join()).digest('hex'));
        });
    });
  }
} else {
  parentPort.postMessage(work(workerData.id, workerData.rounds));
}
"""


def small_inputs(work):
    """Builds the inputs once (glibc, not measured): a sort file and an xz file."""
    sort_in = os.path.join(work, "sort_input.txt")
    if not os.path.exists(sort_in):
        with open(sort_in, "w") as f:
            subprocess.run(["awk", 'BEGIN { srand(1); for (i = 0; i < 2000000; i++) '
                            'printf "%d %s%d\\n", int(rand() * 1000000000), '
                            'substr("qwertyuiopasdfghjkl", 1 + i % 13, 1 + i % 6), i % 1000 }'],
                           stdout=f, check=True)
    xz_in = os.path.join(work, "seq.xz")
    if not os.path.exists(xz_in):
        # A 64 MiB dictionary at the fast preset: xz -d allocates all of it.
        seq = subprocess.Popen(["seq", "1", "15000000"], stdout=subprocess.PIPE)
        with open(xz_in, "wb") as f:
            subprocess.run(["xz", "-T1", "--lzma2=preset=1,dict=64MiB", "-c"],
                           stdin=seq.stdout, stdout=f, check=True)
        seq.wait()
    sql = os.path.join(work, "rows.sql")
    with open(sql, "w") as f:
        f.write(SQLITE_SQL)
    py = os.path.join(work, "dict.py")
    with open(py, "w") as f:
        f.write(PYTHON_DICT)
    js = os.path.join(work, "workers.js")
    with open(js, "w") as f:
        f.write(NODE_WORKERS)
    inputs = {"sort": sort_in, "xz": xz_in, "sql": sql, "py": py, "js": js}
    for name, text in (("tcl", TCL_DICT), ("pl", PERL_HASH)):
        inputs[name] = os.path.join(work, "script." + name)
        with open(inputs[name], "w") as f:
            f.write(text)
    inputs["json"] = os.path.join(work, "records.json")
    if not os.path.exists(inputs["json"]):
        with open(inputs["json"], "w") as f:
            subprocess.run(JSON_RECORDS, stdout=f, check=True)
    return inputs


def gc_source(work):
    return os.path.join(work, "gc_source.git")


def gc_copy(work):
    return os.path.join(work, "gc_run.git")


def git_out(repo, *cmd):
    """stdout of a git command in REPO under glibc (not measured)."""
    return subprocess.run(["git", "-C", repo] + list(cmd), capture_output=True, text=True,
                          env=preload_env("glibc", None), timeout=600).stdout


def gc_label(args, work):
    """(objects, pack threads) of the repository git gc repacks."""
    src = gc_source(work)
    if not os.path.isdir(src):
        # A bare copy made once (git clone --no-local writes a fresh pack of what is
        # reachable from its branches and tags), so every run repacks the same objects.
        subprocess.run(["git", "clone", "--quiet", "--bare", "--no-local",
                        args.gc_repo or args.git_repo, src], check=True,
                       env=preload_env("glibc", None))
    objects = sum(int(line.split()[1]) for line in git_out(src, "count-objects", "-v").splitlines()
                  if line.split()[0] in ("count:", "in-pack:"))
    # pack-objects runs pack.threads threads, or one per online CPU when unset.
    threads = git_out(src, "config", "--get", "pack.threads").strip() or "0"
    if threads == "0":
        threads = str(os.sysconf("SC_NPROCESSORS_ONLN"))
    return "{:,}".format(objects), threads


def gc_prepare(work):
    """A fresh copy of the source before each git gc run (gc repacks in place)."""
    shutil.rmtree(gc_copy(work), ignore_errors=True)
    shutil.copytree(gc_source(work), gc_copy(work), symlinks=True)


def gc_result(work):
    """(digest, packed KiB, why): the digest covers the object count, the packs and
    every object's name, type and size, so the repacks of different allocators compare
    equal while their deltas may differ; why is set when git fsck finds a fault."""
    repo = gc_copy(work)
    fsck = subprocess.run(["git", "-C", repo, "fsck", "--no-progress", "--no-dangling"],
                          capture_output=True, text=True, env=preload_env("glibc", None))
    if fsck.returncode != 0:
        return "", 0, "git fsck: " + (fsck.stdout + fsck.stderr).strip()[-160:]
    counts = dict(line.split(": ") for line in git_out(repo, "count-objects", "-v").splitlines())
    objects = git_out(repo, "cat-file", "--batch-all-objects",
                      "--batch-check=%(objectname) %(objecttype) %(objectsize)")
    h = hashlib.sha1()
    for key in ("count", "in-pack", "packs", "garbage"):
        h.update(("%s %s\n" % (key, counts.get(key))).encode())
    h.update(objects.encode())
    return h.hexdigest(), int(counts.get("size-pack", 0)), ""


def small_programs(args, inputs, work, want):
    """name -> (argv, stdin file or None, label for the README)."""
    commits = subprocess.run(["git", "-C", args.git_repo, "rev-list", "--count", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "?"
    progs = {
        "git_log": (["git", "-C", args.git_repo, "log", "-p", "--no-color"], None,
                    "git log -p, %s commits" % commits),
        "sqlite3": (["sqlite3", ":memory:"], inputs["sql"], "sqlite3, 1 M rows in memory"),
        "xz_d": (["xz", "-d", "-c", inputs["xz"]], None, "xz -d, 64 MiB dictionary"),
        "python3": (["python3", inputs["py"]], None, "python3, dict of 2 M entries"),
        "ls_lR": (["ls", "-lR", "/usr"], None, "ls -lR /usr"),
        "sort": (["sort", inputs["sort"]], None, "sort, 2 M lines"),
        "node": (["node", inputs["js"]], None, "node, 4 worker threads compressing buffers"),
    }
    sources = os.path.join(ROOT, "src")
    compile_args = ["-O2", "-I" + sources, "-I" + os.path.join(ROOT, "include"), "-S", "-o", "-",
                    os.path.join(sources, "tiny", "tiny.c")]
    progs.update({
        "gcc": (["gcc"] + compile_args, None, "gcc -O2 -S of src/tiny/tiny.c"),
        "clang": (["clang"] + compile_args, None, "clang -O2 -S of src/tiny/tiny.c"),
        "perl": (["perl", inputs["pl"]], None, "perl, hash of 1 M keys, sorted"),
        "jq": (["jq", "-c", "group_by(.name) | map({n: .[0].name, c: length}) | length",
                inputs["json"]], None, "jq, group_by over 300,000 records"),
        "awk": (["awk", "{ c[$2] += $1 } END { n = 0; for (k in c) n++; print n }",
                 inputs["sort"]], None, "awk, an array of the sort file's keys"),
        "tcl": (["tclsh", inputs["tcl"]], None, "tclsh, dict of 300,000 entries"),
        "bzip2": (["bzip2", "-9", "-c", inputs["xz"]], None, "bzip2 -9 of the xz file"),
        "zstd": (["zstd", "-12", "-T1", "-c", inputs["json"]], None,
                 "zstd -12 of the jq input"),
        "du": (["du", "-a", "/usr/share"], None, "du -a /usr/share"),
        "find": (["find", "/usr", "-name", "*.h"], None, "find /usr -name '*.h'"),
        "git_blame": (["git", "-C", args.git_repo, "blame", "README.md"], None,
                      "git blame README.md"),
    })
    if "git_gc" in want:
        progs["git_gc"] = (["git", "-C", gc_copy(work), "gc", "--aggressive", "--quiet"], None,
                           "git gc --aggressive, %s objects, %s threads" % gc_label(args, work))
    return progs


EXIT_HWM = os.path.join(ROOT, "build", "bench", "exit_hwm")


def exact_peaks():
    """Whether build/bench/exit_hwm can give true peaks here (peak_trace.h:
    VmHWM and %M fall short of a peak that a release ended)."""
    if not hasattr(exact_peaks, "ok"):
        exact_peaks.ok = os.access(EXIT_HWM, os.X_OK) and subprocess.run(
            [EXIT_HWM, "-", "true"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL).returncode == 0
    return exact_peaks.ok


def run_small(argv, stdin_path, env, timeout=900, traced=False):
    """One run under /usr/bin/time, and with traced under build/bench/exit_hwm
    -a (whose waits at each release slow a program that releases often: its
    time and faults are not the untraced program's): (peak KiB, seconds,
    minor faults, sha1, rc, err)."""
    tfile = tempfile.NamedTemporaryFile(prefix="time.", delete=False)
    tfile.close()
    pfile = tfile.name + ".peak"
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        # The environment's LD_PRELOAD ("-") reaches time and the program.
        tracer = [EXIT_HWM, "-a", "-o", pfile, "-"] if traced else []
        proc = subprocess.Popen(tracer + ["/usr/bin/time", "-f", "%M %e %R", "-o", tfile.name]
                                + argv, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        poller = Poller(proc.pid, interval=0.02, with_root=False, deep=True)
        poller.start()
        h = hashlib.sha1()
        err = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            h.update(chunk)
        proc.wait(timeout=timeout)
        reader.join()
        poller.stop.set()
        poller.join()
        with open(tfile.name) as f:
            last = f.read().strip().splitlines()[-1].split()
        # The largest process's peak, hugetlb pages left out (the polls add
        # them): the tracer's where it ran, else %M.
        peak = int(last[0])
        if tracer:
            with open(pfile) as f:
                peak = int(f.read().split()[0])
        return (max([peak] + list(poller.peak_of.values())), float(last[1]),
                int(last[2]), h.hexdigest(), proc.returncode,
                err[0].decode(errors="replace") if err else "")
    finally:
        if stdin_path:
            stdin.close()
        for path in (tfile.name, pfile):
            if os.path.exists(path):
                os.unlink(path)


def small_run(p, argv, stdin_path, env, work, traced=False):
    """run_small of program p, git gc's repository reset first: (its result,
    None), or (None, why the run failed)."""
    try:
        if p == "git_gc":
            gc_prepare(work)
        run = run_small(argv, stdin_path, env, traced=traced)
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError) as e:
        return None, "%s: %s" % (type(e).__name__, e)
    rc, err = run[4], run[5]
    if rc != 0 and not (p == "ls_lR" and rc == 1):
        return None, "exit %d: %s" % (rc, err.strip()[-160:])
    return run, None


def section_small(args, allocs, work):
    names = [n for n, _ in allocs]
    inputs = small_inputs(work)
    want = [p for p in args.programs.split(",") if p in SMALL_PROGRAMS + TOOL_PROGRAMS]
    progs = small_programs(args, inputs, work, want)
    results = {p: {n: [] for n in names} for p in want}
    reference = {}
    for rnd, name in rounds(names, args.runs, "small"):
        so = dict(allocs)[name]
        env = preload_env(name, so)
        if name == "hugeslab":
            env.update(kv.split("=", 1) for kv in args.hs_env)
        log("programs: small programs round %d: %s" % (rnd + 1, name))
        for p in want:
            argv, stdin_path, _label = progs[p]
            res = {"ok": False}
            results[p][name].append(res)
            binary = shutil.which(argv[0])
            why = check_binding(binary, name, so, env) if binary else argv[0] + " is missing"
            if why:
                res["why"] = why
                continue
            run, why = small_run(p, argv, stdin_path, env, work)
            if why:
                res["why"] = why
                continue
            kb, secs, faults, digest, rc, err = run
            if "hugeslab:" in err:
                res["why"] = "hugeslab on stderr: " + err[err.index("hugeslab:"):][:160]
                continue
            if p == "git_gc":
                # gc prints nothing: what it left in the repository is its output.
                digest, res["pack"], why = gc_result(work)
                if why:
                    res["why"] = why
                    continue
            if p not in reference:
                reference[p] = (name, digest)
            elif reference[p][1] != digest:
                res["why"] = "stdout differs from %s's" % reference[p][0]
                continue
            if exact_peaks():
                # The peak from a second, traced run; the time and faults stay
                # the untraced run's.
                run, why = small_run(p, argv, stdin_path, env, work, traced=True)
                if why:
                    res["why"] = "traced run: " + why
                    continue
                kb = run[0]
            res.update(ok=True, peak=mb(kb), secs=secs, faults=faults)
    return render_small(args, names, want, progs, results)


def render_small(args, names, want, progs, results):
    out = []
    for key, what, fmt in [("peak", "peak RSS (MiB)", "%.1f"), ("secs", "time (s)", "%.2f"),
                           ("faults", "minor faults", "%.0f")]:
        lines = ["", "### Small programs: %s, medians of %d runs" % (what, args.runs), "",
                 "| program | " + " | ".join(names) + " |",
                 "|---|" + "---:|" * len(names)]
        for p in want:
            cells = []
            for n in names:
                runs = results[p][n]
                bad = [r for r in runs if not r["ok"]]
                v = median_of(results[p], n, key)
                cell = "-" if v is None else fmt % v
                if bad:
                    cell += " (%d failed: %s)" % (len(bad), bad[0]["why"][:80])
                cells.append(cell)
            lines.append("| %s | %s |" % (progs[p][2], " | ".join(cells)))
        out.append("\n".join(lines))
    peak_from = ("the largest process's true peak in a second run of its own, traced "
                 "(`build/bench/exit_hwm -a`: its VmRSS at each call that may release memory; "
                 "VmHWM and %M fall short of a peak that a release ended)"
                 if exact_peaks() else "%M")
    out.append("\n`/usr/bin/time -f '%M %e %R'` around the program alone (peak RSS: the larger "
               "of " + peak_from + " and the largest RSS plus hugetlb pages of one of its "
               "processes, polled every 20 ms); stdout (SHA-1) compared "
               "with the first allocator's run, a difference marks the run failed. "
               + pool_note("small", args.hs_env) + "\n")
    if "git_gc" in want:
        packs = ["%s %s" % (n, "-" if median_of(results["git_gc"], n, "pack") is None
                            else "{:,.0f}".format(median_of(results["git_gc"], n, "pack")))
                 for n in names]
        out.append("git gc --aggressive repacks a fresh copy of a bare clone of %s each run "
                   "(the copy is not timed); its output is `git count-objects -v` and every "
                   "object's name, type and size after the run, and `git fsck` must pass. "
                   "Peak RSS is the largest process's (git pack-objects), faults are summed "
                   "over git gc and every git it runs. Pack size (KiB, median): %s.\n"
                   % (args.gc_repo or args.git_repo, ", ".join(packs)))
    return "\n".join(out)


# --- main ---------------------------------------------------------------------

def main():
    args = parse_args()
    if args.runs < 1:
        sys.exit("programs: --runs must be at least 1")
    if any("=" not in kv for kv in args.hs_env):
        sys.exit("programs: --hs-env takes NAME=VALUE")
    allocs = allocators(args)
    if not allocs:
        sys.exit("programs: no allocator to run")
    work = args.work or tempfile.mkdtemp(prefix="hugeslab-programs.")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    sections = {"postgres": section_postgres, "redis": section_redis, "small": section_small}
    print("## Real programs (%s, %s)\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                          compare.machine_line()))
    print("Allocators: " + ", ".join("%s (%s)" % (n, so or "no preload") for n, so in allocs))
    pages, free = hugetlb_pool()
    print("\nhugetlb pool: %d pages of 2 MiB, %d free at the start%s. Every RSS figure "
          "includes the process's hugetlb pages (HugetlbPages, Private_Hugetlb), which the "
          "kernel's Rss and VmHWM leave out." % (pages, free, "; hugeslab's default backing "
                                                  "(auto) takes from it" if free else ""))
    reporting_before, note = None, compare.read_file(compare.REPORTING_ORDER)
    if args.no_page_reporting:
        reporting_before, note = compare.reporting_off()
    print("\nFree page reporting order: %s." % note)
    try:
        for sec in args.sections.split(","):
            if sec not in sections:
                sys.exit("programs: unknown section %s (have %s)" % (sec, ",".join(SECTIONS)))
            pkgs = section_packages(args, sec)
            if not ensure_packages(pkgs):
                print("\n### %s\n\nSkipped: missing packages (%s).\n" % (sec, " ".join(pkgs)))
                continue
            t = time.time()
            print(sections[sec](args, allocs, work), flush=True)
            log("programs: %s took %.0f s" % (sec, time.time() - t))
    finally:
        compare.reporting_restore(reporting_before)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The size-class study (bench/README.md, "Size classes"): records the
allocation requests of real programs on glibc (bench/sizes/recorder.c), then
replays each trace (bench/sizes/replay.c) against the candidate class
spacings and under each allocator, and prints the waste as Markdown tables.

    python3 bench/sizes/study.py [--workloads python-objects,redis,...]
                                 [--traces DIR] [--keep]

Programs: python3 building objects (PYTHONMALLOC=malloc, so that objects go
through malloc rather than Python's own arenas) and parsing JSON; PostgreSQL
15 (a backend running a sort, a hash aggregate and a hash join); Redis 7
(redis-benchmark SETs, lists and hashes of several value sizes); git (log -p
and blame over this repository); sqlite3 (a table, an index, a group-by);
bench_memory's kv workload. A program that is not installed is left out.

Waste is (bytes the blocks have - bytes asked for) / bytes asked for, over
requests of up to 1 MiB: over all calls, and over the blocks live at the
moment the program had the most bytes asked for (Redis's used_memory is that
sum of malloc_usable_size)."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

PY_OBJECTS = """
d = {}
for i in range(1000000):
    d[str(i)] = (i, str(i) * 3, i * 0.5)
"""

PY_JSON = """
import json
doc = [{"id": i, "name": "user%d" % i, "tags": ["t" * (i % 23), "x"], "score": i * 0.25,
        "text": "lorem ipsum " * (i % 40)} for i in range(150000)]
text = json.dumps(doc)
del doc
back = json.loads(text)
"""

PG_QUERIES = """
SET work_mem = '512MB';
SELECT count(*) FROM (SELECT md5(g::text) AS h, repeat('x', g % 300) AS pad
                      FROM generate_series(1, 300000) g ORDER BY h) s;
SELECT count(*) FROM (SELECT g % 50000 AS k, count(*), max(md5(g::text))
                      FROM generate_series(1, 500000) g GROUP BY k) s;
CREATE TABLE t AS SELECT g AS id, md5(g::text) AS name, repeat('y', g % 200) AS pad
                  FROM generate_series(1, 200000) g;
SELECT count(*) FROM t a JOIN t b ON a.name = b.name;
SELECT name, count(*) FROM t GROUP BY name ORDER BY 2 DESC LIMIT 3;
"""

SQLITE_SCRIPT = """
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, pad TEXT);
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 200000)
INSERT INTO t SELECT i, hex(randomblob(16)), substr(hex(zeroblob(200)), 1, i % 300) FROM g;
CREATE INDEX t_name ON t(name);
SELECT count(*), max(length(pad)) FROM t GROUP BY id % 1000 ORDER BY 1 LIMIT 1;
SELECT count(*) FROM t a JOIN t b ON a.name = b.name;
"""

SPACING_NOTE = {
    "128/4": "16-128 by 16, then 4 per doubling: hugeslab before this study",
    "128/8": "16-128 by 16, then 8 per doubling",
    "512/8": "16-512 by 16, then 8 per doubling: hugeslab before the filled row",
    "1K/4": "16-1024 by 16, then 4 per doubling",
    "1K/8": "16-1024 by 16, then 8 per doubling",
    "512/8+4K16": "`512/8` with 16 classes from 4 to 8 KiB",
    "512/8+fill4K": "`512/8` with 64 KiB / n for n = 15 .. 8 from 4 to 8 KiB (4368, 4672, "
                     "5040, 5456, 5952, 6544, 7280, 8192)",
    "512/8+fill1K": "the same rule from 1 KiB: 64 KiB / n, n = 60, 56 .. 32, then 30, 28 .. 16",
    "512/8+fill4K+hdr": "`512/8+fill4K` and 528, 1040, 2112 for a power of two and a header: "
                        "hugeslab now",
}


def run(cmd, env=None, check=True, **kw):
    full = dict(os.environ)
    if env:
        full.update(env)
    return subprocess.run(cmd, env=full, check=check, **kw)


def real_python():
    """The interpreter itself, not a wrapper script (pyenv's shims are shell)."""
    return sys.executable


def record_python(out, rec, code):
    run([real_python(), "-c", code],
        env={"LD_PRELOAD": rec, "SIZES_TRACE_DIR": out, "PYTHONMALLOC": "malloc"})


def record_git(out, rec, repo):
    env = {"LD_PRELOAD": rec, "SIZES_TRACE_DIR": out}
    run(["git", "-C", repo, "log", "-p", "--stat", "-n", "400"], env=env,
        stdout=subprocess.DEVNULL)
    run(["git", "-C", repo, "blame", "src/tiny/tiny.c"], env=env, stdout=subprocess.DEVNULL)


def record_sqlite(out, rec):
    run(["sqlite3", ":memory:"], env={"LD_PRELOAD": rec, "SIZES_TRACE_DIR": out},
        input=SQLITE_SCRIPT.encode(), stdout=subprocess.DEVNULL)


def record_kv(out, rec, bench_memory):
    run([bench_memory, "kv", "--idle-ms=0"], env={"LD_PRELOAD": rec, "SIZES_TRACE_DIR": out},
        stdout=subprocess.DEVNULL)


def wait_for(cmd, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def record_redis(out, rec):
    port = "63791"
    server = subprocess.Popen(
        ["redis-server", "--port", port, "--save", "", "--appendonly", "no",
         "--bind", "127.0.0.1", "--databases", "8"],
        env=dict(os.environ, LD_PRELOAD=rec, SIZES_TRACE_DIR=out), stdout=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", port]
    try:
        if not wait_for(cli + ["ping"]):
            raise RuntimeError("redis-server did not answer")
        for db, size in enumerate([16, 100, 512, 1000, 4000]):
            run(["redis-benchmark", "-p", port, "-q", "--dbnum", str(db), "-t", "set",
                 "-n", "100000", "-r", "100000", "-d", str(size)], stdout=subprocess.DEVNULL)
        run(["redis-benchmark", "-p", port, "-q", "--dbnum", "5", "-t", "lpush,hset",
             "-n", "200000", "-r", "100000", "-d", "64"], stdout=subprocess.DEVNULL)
        info = run(cli + ["info", "memory"], stdout=subprocess.PIPE).stdout.decode()
        used = [l for l in info.splitlines() if l.startswith("used_memory:")]
        print("redis under the recorder (glibc): %s" % (used[0] if used else "?"), file=sys.stderr)
        run(cli + ["shutdown", "nosave"], check=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def record_postgres(out, rec):
    bindirs = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                                 for v in os.listdir("/usr/lib/postgresql"))
                     if os.path.exists(os.path.join(d, "postgres")))
    bindir = bindirs[-1]
    root = os.geteuid() == 0
    as_db = ["runuser", "-u", "postgres", "--"] if root else []
    tmp = tempfile.mkdtemp(prefix="sizes-pg.")
    os.chmod(tmp, 0o777)
    os.chmod(out, 0o777)
    recorder = os.path.join(tmp, "libsizerecord.so")
    shutil.copy(rec, recorder)
    os.chmod(recorder, 0o755)
    data = os.path.join(tmp, "data")
    port = "54339"
    try:
        run(as_db + [bindir + "/initdb", "-D", data, "-N", "-A", "trust", "-U", "postgres"],
            stdout=subprocess.DEVNULL)
        with open(os.path.join(data, "postgresql.conf"), "a") as conf:
            conf.write("listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n"
                       "fsync = off\nlogging_collector = off\nmax_parallel_workers_per_gather = 0\n"
                       % (tmp, port))
        run(as_db + ["env", "LD_PRELOAD=" + recorder, "SIZES_TRACE_DIR=" + out,
                     bindir + "/pg_ctl", "-D", data, "-l", tmp + "/server.log", "-w", "start"],
            stdout=subprocess.DEVNULL)
        run(as_db + ["env", "PGHOST=" + tmp, "PGPORT=" + port, bindir + "/psql", "-q", "-X",
                     "-v", "ON_ERROR_STOP=1", "postgres"], input=PG_QUERIES.encode(),
            stdout=subprocess.DEVNULL)
    finally:
        run(as_db + [bindir + "/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def available(name):
    if name == "redis":
        return all(shutil.which(p) for p in ("redis-server", "redis-cli", "redis-benchmark"))
    if name == "postgres":
        return os.path.isdir("/usr/lib/postgresql")
    if name in ("git", "sqlite3"):
        return shutil.which(name) is not None
    return True


def largest_trace(folder, prefix=None):
    """The trace of the process that allocated the most (a server's backend,
    not its launcher)."""
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".trace")
             and (prefix is None or f.startswith(prefix))]
    return max(files, key=os.path.getsize) if files else None


def parse(line):
    return dict(kv.split("=", 1) for kv in line.split())


def replay_real(replay, trace, preload):
    env = {"LD_PRELOAD": preload} if preload else {}
    out = run([replay, "real", trace], env=env, stdout=subprocess.PIPE).stdout.decode()
    return parse(out.strip())


def replay_models(replay, trace):
    out = run([replay, "model", trace], stdout=subprocess.PIPE).stdout.decode()
    return [parse(l) for l in out.strip().splitlines()]


def waste(d, total_key, used_key):
    req = int(d[total_key])
    return 100.0 * (int(d[used_key]) - req) / req if req else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--so", default=None, help="hugeslab library (default BUILD/libhugeslab.so)")
    ap.add_argument("--lib-dir", default="/usr/lib/x86_64-linux-gnu")
    ap.add_argument("--workloads",
                    default="python-objects,python-json,postgres,redis,git,sqlite3,kv")
    ap.add_argument("--traces", default=None,
                    help="folder of recordings (one subfolder per workload): reused when there, "
                         "recorded into otherwise")
    ap.add_argument("--keep", action="store_true", help="keep the temporary recordings")
    ap.add_argument("--repo", default=os.getcwd(), help="git repository for the git workload")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="one more allocator to replay under (another hugeslab build)")
    args = ap.parse_args()

    rec = os.path.abspath(os.path.join(args.build, "bench", "libsizerecord.so"))
    replay = os.path.abspath(os.path.join(args.build, "bench", "size_replay"))
    bench_memory = os.path.abspath(os.path.join(args.build, "bench", "bench_memory"))
    so = os.path.abspath(args.so or os.path.join(args.build, "libhugeslab.so"))
    traces = args.traces or tempfile.mkdtemp(prefix="sizes.")
    os.makedirs(traces, exist_ok=True)
    allocators = [("glibc", None),
                  ("mimalloc", os.path.join(args.lib_dir, "libmimalloc.so.2")),
                  ("jemalloc", os.path.join(args.lib_dir, "libjemalloc.so.2")),
                  ("hugeslab", so)]
    allocators += [tuple(a.split("=", 1)) for a in args.also]
    allocators = [(n, p) for n, p in allocators if p is None or os.path.exists(p)]

    recorders = {
        "python-objects": lambda d: record_python(d, rec, PY_OBJECTS),
        "python-json": lambda d: record_python(d, rec, PY_JSON),
        "postgres": lambda d: record_postgres(d, rec),
        "redis": lambda d: record_redis(d, rec),
        "git": lambda d: record_git(d, rec, args.repo),
        "sqlite3": lambda d: record_sqlite(d, rec),
        "kv": lambda d: record_kv(d, rec, bench_memory),
    }
    prefixes = {"postgres": "postgres.", "redis": "redis-server."}
    rows = []
    for name in args.workloads.split(","):
        folder = os.path.join(traces, name)
        if not (os.path.isdir(folder) and largest_trace(folder, prefixes.get(name))):
            if not available(name):
                print("sizes: %s is not installed, left out" % name, file=sys.stderr)
                continue
            os.makedirs(folder, exist_ok=True)
            print("sizes: recording %s" % name, file=sys.stderr)
            recorders[name](folder)
        trace = largest_trace(folder, prefixes.get(name))
        if trace is None:
            print("sizes: %s left no trace, left out" % name, file=sys.stderr)
            continue
        print("sizes: replaying %s (%s)" % (name, os.path.basename(trace)), file=sys.stderr)
        models = replay_models(replay, trace)
        real = [(a, replay_real(replay, trace, p)) for a, p in allocators]
        rows.append((name, models, real))
    if not args.traces and not args.keep:
        shutil.rmtree(traces, ignore_errors=True)
    elif not args.traces:
        print("sizes: recordings kept in %s" % traces, file=sys.stderr)
    if not rows:
        return 1

    names = [m["model"] for m in rows[0][1]]
    alloc_names = [a for a, _ in rows[0][2]]
    print("Spacings: " + "; ".join("`%s` = %s (%s classes)" % (n, SPACING_NOTE.get(n, n),
                                                               m["class_count"])
                                   for n, m in zip(names, rows[0][1])))
    print("\nAllocators: the replay's sums of malloc_usable_size under each.")
    head = "| program | calls | MiB asked |" + "".join(" `%s` |" % n for n in names) + \
        "".join(" %s |" % a for a in alloc_names)
    rule = "|---|---:|---:|" + "---:|" * (len(names) + len(alloc_names))
    for title, asked, used, label in (
            ("Waste over all calls of up to 1 MiB (% of the bytes asked for):",
             "requested", "usable", "MiB asked"),
            ("Waste of the blocks live at the peak (used_memory - bytes asked for, % of the "
             "bytes asked for):", "peak_live", "live_usable", "MiB live at peak")):
        print("\n" + title + "\n")
        print(head.replace("MiB asked", label))
        print(rule)
        for name, models, real in rows:
            print("| %s | %s | %.1f |" % (name, models[0]["calls"], int(models[0][asked]) / 2**20)
                  + "".join(" %.1f |" % waste(m, asked, used) for m in models)
                  + "".join(" %.1f |" % waste(r, asked, used) for _, r in real))
    print("\nClasses touched / the whole slabs the live blocks need at the peak (MiB; slab "
          "geometry of src/tiny/tiny.c, class_units):\n")
    print("| program |" + "".join(" `%s` |" % n for n in names))
    print("|---|" + "---:|" * len(names))
    for name, models, real in rows:
        print("| %s |" % name +
              "".join(" %s / %.1f |" % (m["classes"], int(m["slab_floor"]) / 2**20)
                      for m in models))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/bin/bash
# PostgreSQL on hugeslab: Debian's server started as an unprivileged user in
# a temporary data directory, under `numactl --membind=0`, with hugeslab in
# LD_PRELOAD of the server's environment; pgbench initialised at a small
# scale, then a read-only (-S) and a TPC-B run of a few seconds each, then
# pg_amcheck (amcheck extension) over every table and index.  Twice:
#   postgres/auto     HUGESLAB_BACKING=auto (the machine's default)
#   postgres/hugetlb  HUGESLAB_BACKING=hugetlb with a hugetlb pool too small
#                     for the whole server (set as root, put back afterwards):
#                     SuperSlabs fall back to THP when it runs dry, and no
#                     process may die of SIGBUS.
# Each case passes when every server process maps hugeslab (seen in
# /proc/PID/maps of the backends while pgbench runs), pgbench reports zero
# failed transactions, pg_amcheck is clean and the server log shows no
# process killed by a signal.  Performance is not measured here.
#
# Usage: tests/postgres/run.sh LIBHUGESLAB.so
# Prints PASS/FAIL/SKIP lines (postgres/...).  Environment:
#   PG_SECONDS=5    each pgbench run
#   PG_SCALE=2      pgbench's scale factor
#   PG_HUGEPAGES=1  the small pool, in 2 MiB pages.  The server's processes
#                   hold few at once with HUGESLAB_BACKING=hugetlb (62 of a
#                   pool of 64 stayed free on 2 busy vCPUs; a pool of 4 ran
#                   dry on an idle machine and not on a busy one, where it
#                   failed 2 runs of 3): one page is too small however busy
#                   the machine is.
#   PG_KEEP=DIR     keep the logs of a failed case there
set -u
so=$1
seconds=${PG_SECONDS:-5}
scale=${PG_SCALE:-2}
small_pool=${PG_HUGEPAGES:-1}
cases="auto hugetlb"

skip_all() {
    for c in $cases; do echo "SKIP postgres/$c: $1"; done
    exit 0
}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] && [ -x "$bindir/postgres" ] ||
    skip_all "PostgreSQL is not installed (apt-get install postgresql postgresql-contrib)"
for prog in initdb pg_ctl pgbench pg_amcheck psql; do
    [ -x "$bindir/$prog" ] || skip_all "$bindir/$prog is missing"
done
[ -f "$(dirname "$bindir")/lib/amcheck.so" ] || skip_all "the amcheck extension is missing (postgresql-contrib)"
command -v numactl >/dev/null || skip_all "numactl is not installed"
numactl --membind=0 true 2>/dev/null || skip_all "numactl --membind=0 fails here (no NUMA system calls)"
[ -f "$so" ] || skip_all "$so is not built"

# The server refuses to run as root: as root, run it as the postgres user.
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || skip_all "running as root and there is no postgres user"
    as_db() { runuser -u postgres -- "$@"; }
else
    as_db() { "$@"; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-pg.XXXXXX") || exit 1
# The 2 MiB pool's own files: /proc/sys/vm/nr_hugepages and HugePages_* of
# /proc/meminfo are the default size's, 1 GiB with default_hugepagesz=1G.
pool_dir=/sys/kernel/mm/hugepages/hugepages-2048kB
pool_file=$pool_dir/nr_hugepages
pool_before=$(cat "$pool_file" 2>/dev/null || echo 0)
cleanup() {
    [ -f "$tmp/data/postmaster.pid" ] && as_db "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1
    [ "$(cat "$pool_file" 2>/dev/null)" != "$pool_before" ] && echo "$pool_before" >"$pool_file" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# A copy the postgres user can surely read, whatever the build folder's modes.
cp "$so" "$tmp/libhugeslab.so"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$tmp"
chmod 755 "$tmp"
data=$tmp/data
port=54329
pg() { as_db env PGHOST="$tmp" PGPORT=$port "$@"; }

if ! as_db "$bindir/initdb" -D "$data" -N -A trust -U postgres >"$tmp/initdb.log" 2>&1; then
    skip_all "initdb failed: $(tail -n 2 "$tmp/initdb.log" | tr '\n' ' ')"
fi
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$tmp'
port = $port
shared_buffers = 32MB
max_connections = 20
huge_pages = off
fsync = off
synchronous_commit = off
logging_collector = off
EOF

# start BACKING: the server under numactl with hugeslab preloaded.
start() {
    as_db env LD_PRELOAD="$tmp/libhugeslab.so" HUGESLAB_BACKING="$1" \
        numactl --membind=0 "$bindir/pg_ctl" -D "$data" -l "$tmp/server-$1.log" -w -t 60 start \
        >"$tmp/pg_ctl-$1.log" 2>&1
}

stop() { as_db "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1; }

# Every process of the server (postmaster and children): how many there are,
# how many map hugeslab, how many have the bind:0 policy, the hugetlb memory
# (kB) they hold, and what all processes of the machine hold.
inspect() {
    local master pids p on=0 all=0 bound=0 hugetlb=0 kb
    master=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
    pids="$master $(awk -v m="$master" '/^PPid:/ && $2 == m {split(FILENAME, f, "/"); print f[3]}' \
        /proc/[0-9]*/status 2>/dev/null | tr '\n' ' ')"
    for p in $pids; do
        [ -r "/proc/$p/maps" ] || continue
        all=$((all + 1))
        grep -q 'libhugeslab\.so' "/proc/$p/maps" 2>/dev/null && on=$((on + 1))
        grep -q ' bind:0 ' "/proc/$p/numa_maps" 2>/dev/null && bound=$((bound + 1))
        kb=$(awk '/^Private_Hugetlb:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
        hugetlb=$((hugetlb + ${kb:-0}))
    done
    local everyone
    everyone=$(cat /proc/[0-9]*/smaps_rollup 2>/dev/null | awk '/^Private_Hugetlb:|^Shared_Hugetlb:/ {s += $2} END {print s + 0}')
    echo "$on $all $bound $hugetlb $everyone"
}

# pgbench_run NAME ARGS...: runs pgbench; prints "processed failed exit-status".
pgbench_run() {
    local name=$1
    shift
    pg "$bindir/pgbench" -n -T "$seconds" -c 4 -j 2 "$@" postgres >"$tmp/pgbench-$name.log" 2>&1
    local rc=$?
    local done failed
    done=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/pgbench-$name.log")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$tmp/pgbench-$name.log")
    echo "${done:-0} ${failed:-?} $rc"
}

# keep_logs: copies the server's and the tools' logs to $PG_KEEP when set;
# says where they are in $kept.
keep_logs() {
    if [ -n "${PG_KEEP:-}" ] && mkdir -p "$PG_KEEP" && cp "$tmp"/*.log "$PG_KEEP"/ 2>/dev/null; then
        kept="logs in $PG_KEEP"
    else
        kept="PG_KEEP=DIR keeps the logs"
    fi
}

# run_case NAME BACKING: one server start and its checks.
run_case() {
    local name=$1 backing=$2 why="" detail=""
    if ! start "$backing"; then
        keep_logs
        echo "FAIL postgres/$name: the server did not start: $(grep -m2 -E 'FATAL|PANIC|signal' "$tmp/server-$backing.log" | tr '\n' ' ' | cut -c1-300) ($kept)"
        return
    fi
    if [ "$name" = auto ]; then
        pg "$bindir/pgbench" -i -q -s "$scale" postgres >"$tmp/pgbench-init.log" 2>&1 ||
            why="pgbench -i failed: $(tail -n 2 "$tmp/pgbench-init.log" | tr '\n' ' ')"
    fi
    local ro rw maps min_free=-1 free hugetlb_kb=0 others_kb=0
    if [ -z "$why" ]; then
        ro=$(pgbench_run "$name-ro" -S)
        # TPC-B in the background: look at the backends while they work, and
        # at the hugetlb pool.
        pgbench_run "$name-tpcb" >"$tmp/tpcb-$name.result" &
        local bench=$!
        sleep 1.5
        maps=$(inspect)
        while kill -0 $bench 2>/dev/null; do
            free=$(cat "$pool_dir/free_hugepages")
            if [ "$min_free" -lt 0 ] || [ "$free" -lt "$min_free" ]; then min_free=$free; fi
            sleep 0.2
        done
        wait $bench
        rw=$(cat "$tmp/tpcb-$name.result")
        set -- $ro
        [ "$1" -gt 0 ] && [ "$2" = 0 ] && [ "$3" = 0 ] ||
            why="read-only pgbench: $1 transactions, $2 failed, exit $3 ($(grep -m1 -iE 'error|fatal' "$tmp/pgbench-$name-ro.log"))"
        detail="pgbench -S $1 tx"
        set -- $rw
        [ -n "$why" ] || { [ "$1" -gt 0 ] && [ "$2" = 0 ] && [ "$3" = 0 ]; } ||
            why="TPC-B pgbench: $1 transactions, $2 failed, exit $3 ($(grep -m1 -iE 'error|fatal' "$tmp/pgbench-$name-tpcb.log"))"
        detail="$detail, TPC-B $1 tx, 0 failed"
        set -- $maps
        [ -n "$why" ] || { [ "$2" -ge 4 ] && [ "$1" = "$2" ]; } ||
            why="only $1 of $2 server processes map libhugeslab.so"
        [ -n "$why" ] || [ "$3" = "$2" ] || why="only $3 of $2 server processes have the bind:0 policy"
        detail="$detail; $1 of $2 processes map hugeslab, bound to node 0"
        hugetlb_kb=$4
        others_kb=$(($5 - $4))
    fi
    if [ -z "$why" ]; then
        if pg "$bindir/pg_amcheck" --install-missing --heapallindexed -d postgres >"$tmp/amcheck-$name.log" 2>&1; then
            detail="$detail; pg_amcheck clean"
        else
            why="pg_amcheck: $(head -n 3 "$tmp/amcheck-$name.log" | tr '\n' ' ' | cut -c1-300)"
        fi
    fi
    stop
    local killed
    killed=$(grep -m1 -E 'terminated by signal|was terminated|PANIC|hugeslab:' "$tmp/server-$backing.log")
    [ -n "$why" ] || [ -z "$killed" ] || why="server log: $killed"
    if [ "$name" = hugetlb ] && [ -z "$why" ]; then
        # The pool must have been used by the server and run dry: hugeslab
        # took what there was and fell back for the rest.
        if [ "$hugetlb_kb" -eq 0 ] && [ "$others_kb" -gt 0 ]; then
            echo "SKIP postgres/$name: other processes took the pool ($((others_kb / 1024)) MiB of hugetlb pages held outside the server)"
            return
        fi
        [ "$hugetlb_kb" -gt 0 ] || why="no server process held hugetlb pages"
        [ -n "$why" ] || [ "$min_free" -eq 0 ] ||
            why="the pool of $small_pool pages never ran dry (min free $min_free): not too small"
        detail="$detail; pool of $small_pool pages ran dry (min free $min_free), server held $((hugetlb_kb / 1024)) MiB of it"
    fi
    if [ -n "$why" ]; then
        keep_logs
        echo "FAIL postgres/$name: $why ($kept)"
    else
        echo "PASS postgres/$name ($detail)"
    fi
}

run_case auto auto

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP postgres/hugetlb: sizing the hugetlb pool needs root"
elif [ "$pool_before" -ne 0 ]; then
    echo "SKIP postgres/hugetlb: the machine already has a hugetlb pool ($pool_before pages) that others may use"
else
    echo "$small_pool" >"$pool_file" 2>/dev/null
    got=$(cat "$pool_file")
    if [ "$got" -lt 1 ]; then
        echo "SKIP postgres/hugetlb: the kernel gave no hugetlb pages"
    else
        small_pool=$got
        run_case hugetlb hugetlb
    fi
    echo "$pool_before" >"$pool_file"
fi

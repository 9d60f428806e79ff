#!/bin/sh
# Real Debian programs under LD_PRELOAD=libhugeslab.so: stdout and exit status
# must equal the plain glibc run byte for byte.
#
# Usage: tests/programs.sh [path/to/libhugeslab.so] [program...]
#   programs: python3 sqlite3 sort gcc ls grep awk perl (default: all)
# Prints one line per program: "PASS prog_X", "FAIL prog_X: reason" or
# "SKIP prog_X: reason"; exits 1 if any failed.
set -u

SO=${1:-${HUGESLAB_SO:-build/libhugeslab.so}}
[ $# -gt 0 ] && shift
case "$SO" in /*) ;; *) SO="$(pwd)/$SO" ;; esac
TESTS_DIR=$(cd "$(dirname "$0")" && pwd)
PROGDIR="$TESTS_DIR/programs"
ALL="python3 sqlite3 sort gcc ls grep awk perl"
WANT=${*:-$ALL}
TIMEOUT=${HS_PROGRAM_TIMEOUT:-180}
CC_FOR_TEST=${HS_PROGRAM_CC:-gcc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hugeslab-programs.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
export LC_ALL=C

failed=0

if [ ! -f "$SO" ]; then
    for p in $WANT; do echo "SKIP prog_$p: $SO not built"; done
    exit 0
fi

# The preload must actually take: cat lists its own mappings.
if ! LD_PRELOAD="$SO" cat /proc/self/maps 2>/dev/null | grep -q libhugeslab; then
    for p in $WANT; do echo "FAIL prog_$p: LD_PRELOAD=$SO is not effective"; done
    exit 1
fi

# run_both NAME 'shell command'
# Runs the command under glibc, then under hugeslab, and compares.
run_both() {
    name=$1
    cmd=$2
    d="$TMP/$name"
    mkdir -p "$d"
    (cd "$d" && env -u LD_PRELOAD timeout "$TIMEOUT" sh -c "$cmd") >"$d/ref.out" 2>"$d/ref.err"
    ref_rc=$?
    (cd "$d" && LD_PRELOAD="$SO" timeout "$TIMEOUT" sh -c "$cmd") >"$d/hs.out" 2>"$d/hs.err"
    hs_rc=$?
    reason=""
    if [ "$ref_rc" -ne 0 ]; then
        reason="reference (glibc) run failed with status $ref_rc: $(tail -c 300 "$d/ref.err" | tr '\n' ' ')"
    elif [ "$hs_rc" -ne 0 ]; then
        if [ "$hs_rc" -eq 124 ]; then
            reason="timed out after ${TIMEOUT}s under hugeslab"
        elif [ "$hs_rc" -gt 128 ]; then
            reason="killed by signal $((hs_rc - 128)) under hugeslab"
        else
            reason="exit status $hs_rc under hugeslab (glibc: 0)"
        fi
        reason="$reason; stderr: $(tail -c 400 "$d/hs.err" | tr '\n' ' ')"
    elif ! cmp -s "$d/ref.out" "$d/hs.out"; then
        first=$(cmp "$d/ref.out" "$d/hs.out" 2>&1 | head -1)
        reason="stdout differs from the glibc run ($first; $(wc -c <"$d/ref.out") vs $(wc -c <"$d/hs.out") bytes)"
        if [ -s "$d/hs.err" ]; then
            reason="$reason; stderr: $(tail -c 300 "$d/hs.err" | tr '\n' ' ')"
        fi
    elif grep -q 'hugeslab:' "$d/hs.err"; then
        reason="hugeslab reported on stderr: $(grep 'hugeslab:' "$d/hs.err" | head -2 | tr '\n' ' ')"
    fi
    if [ -n "$reason" ]; then
        echo "FAIL prog_$name: $reason"
        failed=1
        # keep the evidence
        if [ -n "${HS_LOG_DIR:-}" ]; then
            mkdir -p "$HS_LOG_DIR/prog_$name"
            cp "$d"/*.out "$d"/*.err "$HS_LOG_DIR/prog_$name/" 2>/dev/null
        fi
    else
        echo "PASS prog_$name"
    fi
    rm -rf "$d"
}

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "SKIP prog_$2: $1 not installed"
        return 1
    fi
    return 0
}

sort_input="$TMP/sort_input.txt"
make_sort_input() {
    [ -f "$sort_input" ] && return 0
    env -u LD_PRELOAD awk 'BEGIN { srand(1);
        for (i = 0; i < 2000000; i++)
            printf "%d %s%d\n", int(rand() * 1000000000), substr("qwertyuiopasdfghjkl", 1 + i % 13, 1 + i % 6), i % 1000 }' \
        >"$sort_input"
}

for p in $WANT; do
    case "$p" in
    python3)
        py=/usr/bin/python3
        [ -x "$py" ] || py=$(command -v python3)
        need "$py" python3 &&
            run_both python3 "PYTHONHASHSEED=0 PYTHONMALLOC=malloc '$py' '$PROGDIR/workload.py'"
        ;;
    sqlite3)
        need sqlite3 sqlite3 &&
            run_both sqlite3 "sqlite3 :memory: <'$PROGDIR/workload.sql' && sqlite3 db.sqlite <'$PROGDIR/workload.sql' && rm -f db.sqlite"
        ;;
    sort)
        need sort sort && make_sort_input &&
            run_both sort "sort -n '$sort_input' | cksum && sort '$sort_input' | cksum &&
                sort -S 16M --parallel=2 -T . -k2,2 -k1,1n '$sort_input' | cksum &&
                sort -u -t' ' -k2,2 '$sort_input'"
        ;;
    gcc)
        need "$CC_FOR_TEST" gcc && need objdump gcc &&
            run_both gcc "$CC_FOR_TEST -O2 -c '$PROGDIR/sample.c' -o sample.o && objdump -d sample.o &&
                $CC_FOR_TEST -O2 -Wall '$PROGDIR/sample.c' -o sample && ./sample &&
                $CC_FOR_TEST -O1 -g -c '$TESTS_DIR/api_test.c' -I'$TESTS_DIR' -o api.o && objdump -d api.o"
        ;;
    ls)
        run_both ls "ls -lR /usr/include /usr/share/perl5 2>/dev/null; ls -la --time-style=+%s /usr/lib | head -200"
        ;;
    grep)
        run_both grep "grep -rn 'alloc' /usr/include | sort && grep -rcE '^#(define|include)' /usr/include | sort | tail -500"
        ;;
    awk)
        need awk awk && make_sort_input &&
            run_both awk "awk '{ c[\$2]++; s[\$2] += \$1; t = t \$2; if (length(t) > 10000) t = \"\" } END { for (k in c) print k, c[k], s[k] }' '$sort_input' | sort"
        ;;
    perl)
        need perl perl &&
            run_both perl "PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 perl -e '
                my %h; for my \$i (1..600000) { \$h{\"k\" . (\$i * 7919 % 1000003)} .= \"x\" x (\$i % 7) }
                my \$s = 0; \$s += length(\$h{\$_}) for sort keys %h; print scalar(keys %h), \" \$s\n\";
                my @a = sort { \$a <=> \$b } map { (\$_ * 31337) % 1000007 } 1..500000; print \"@a[0..5] \$a[-1]\n\";
                my \$str = join(\",\", map { \$_ x 3 } 1..200000); my @p = split /,/, \$str; print scalar(@p), \"\n\";'"
        ;;
    *)
        echo "FAIL prog_$p: unknown program"
        failed=1
        ;;
    esac
done
exit $failed

#!/bin/sh
# Real Debian programs under LD_PRELOAD=libhugeslab.so: stdout and exit status
# must equal the plain glibc run byte for byte.
#
# Usage: tests/programs.sh [path/to/libhugeslab.so] [program...]
#   programs: python3 sqlite3 sort gcc ls grep awk perl clang git jq tcl
#             compress find (default: all)
# Prints one line per program: "PASS prog_X", "FAIL prog_X: reason" or
# "SKIP prog_X: reason"; exits 1 if any failed.
set -u

SO=${1:-${HUGESLAB_SO:-build/libhugeslab.so}}
[ $# -gt 0 ] && shift
case "$SO" in /*) ;; *) SO="$(pwd)/$SO" ;; esac
TESTS_DIR=$(cd "$(dirname "$0")" && pwd)
PROGDIR="$TESTS_DIR/programs"
ALL="python3 sqlite3 sort gcc ls grep awk perl clang git jq tcl compress find"
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
    clang)
        # LLVM allocates its own way, not gcc's: many small objects from
        # malloc, and its bump allocators' slabs of 4 KiB and more.
        need clang clang && need objdump clang &&
            run_both clang "clang -O2 -c '$PROGDIR/sample.c' -o sample.o && objdump -d sample.o &&
                clang -O1 -g -c '$TESTS_DIR/api_test.c' -I'$TESTS_DIR' -o api.o && objdump -d api.o"
        ;;
    git)
        # A repository made here, so that the output is the same on every
        # machine; git gc --aggressive runs pack-objects' threads (blocks
        # freed by threads that did not allocate them). The pack itself may
        # differ from run to run with threads: what must match is every
        # object and the history.
        need git git &&
            run_both git "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t \
                    GIT_COMMITTER_EMAIL=t@t GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' \
                    GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' GIT_CONFIG_NOSYSTEM=1 HOME=.
                rm -rf r && git init -q -b main r && cd r && git config pack.threads 2 &&
                for i in \$(seq 1 60); do
                    awk -v i=\$i 'BEGIN { for (l = 0; l < 400; l++) print l, (l * i) % 97, (l % 7 == i % 7 ? i : l) }' >f\$((i % 6)).txt &&
                    git add . && git commit -q -m \"c\$i\" || exit 1
                done &&
                git log -p --stat | cksum && git blame -s f3.txt | cksum &&
                git gc --aggressive --quiet && git fsck --no-progress --strict &&
                git count-objects -v | grep -E '^(count|in-pack|packs|garbage)' &&
                git cat-file --batch-all-objects --batch-check | sort | cksum &&
                git log -p | cksum"
        ;;
    jq)
        need jq jq &&
            run_both jq "env -u LD_PRELOAD awk -v n=50000 -v seed=2 -f '$PROGDIR/records.awk' >in.json &&
                jq -c 'group_by(.name) | map({n: .[0].name, c: length, s: (map(.score) | add)}) | sort_by(-.s) | .[0:20]' in.json &&
                jq -c '[.[] | select(.score > 500) | .tags[0]] | unique' in.json &&
                jq -c 'map(.name) | join(\",\") | length' in.json"
        ;;
    tcl)
        need tclsh tcl &&
            run_both tcl "echo '
                set d [dict create]
                for {set i 0} {\$i < 200000} {incr i} { dict set d k\$i [string repeat x [expr {\$i % 40}]] }
                set l [lsort [dict keys \$d]]
                puts \"[dict size \$d] [lindex \$l 0] [lindex \$l end]\"
                set s {}; foreach k [lrange \$l 0 50000] { append s [dict get \$d \$k] }
                puts [string length \$s]
                array set a {}; for {set i 0} {\$i < 100000} {incr i} { set a(\$i) [list \$i [expr {\$i * 3}]] }
                puts [array size a]' | tclsh"
        ;;
    compress)
        # Compressors take their tables and windows in blocks of MiBs.
        need bzip2 compress && need xz compress && make_sort_input &&
            run_both compress "head -c 2000000 '$sort_input' >in.txt &&
                bzip2 -9 -c in.txt | cksum && bzip2 -c in.txt | bzip2 -d | cksum &&
                xz -6 -T1 -c in.txt | cksum && xz -1 -T2 --block-size=1MiB -c in.txt | xz -d | cksum"
        ;;
    find)
        run_both find "find /usr/include /usr/share/perl5 -name '*.h' -o -name '*.pm' | sort | cksum &&
            du -a /usr/include /usr/share/perl5 2>/dev/null | sort | cksum"
        ;;
    *)
        echo "FAIL prog_$p: unknown program"
        failed=1
        ;;
    esac
done
exit $failed

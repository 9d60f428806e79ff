# JSON records for jq: an array of n objects (id, one of 5,000 names, a
# random score, two tags), from srand(seed), so that a run is the same on
# every machine. Used by tests/programs.sh (jq) and bench/programs.py (jq,
# zstd).   awk -v n=COUNT -v seed=SEED -f records.awk
BEGIN {
    srand(seed)
    printf "["
    for (i = 0; i < n; i++)
        printf "%s{\"id\":%d,\"name\":\"user%d\",\"score\":%d,\"tags\":[%d,%d]}",
            (i ? "," : ""), i, i % 5000, int(rand() * 1000), i % 13, i % 17
    print "]"
}

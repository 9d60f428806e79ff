-- Allocation-heavy SQLite workload for tests/programs.sh.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t(id, grp, name, val, blob)
SELECT x, x % 97, printf('name-%08d-%s', (x * 7919) % 100003, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
       (x * 31337) % 100000 / 7.0, zeroblob(x % 200)
FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT count(*), sum(grp), round(sum(val), 3), sum(length(blob)) FROM t;
SELECT grp, count(*), round(avg(val), 4), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 20;
SELECT name, id FROM t ORDER BY name DESC LIMIT 10;
SELECT grp, group_concat(id, ',') FROM (SELECT grp, id FROM t WHERE id % 1000 = 0 ORDER BY id) GROUP BY grp ORDER BY grp LIMIT 10;
UPDATE t SET name = name || '-updated' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), count(DISTINCT substr(name, 1, 9)), max(length(name)) FROM t;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 AND a.grp = (b.grp + 1) % 97 GROUP BY a.grp ORDER BY 2 DESC, 1 LIMIT 5;
CREATE TABLE s AS SELECT name, val FROM t ORDER BY val, name;
SELECT count(*), min(name), max(name) FROM s;

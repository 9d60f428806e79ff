# Allocation-heavy Python workload for tests/programs.sh; prints checksums only,
# so the output must be identical under any allocator.
import hashlib
import json
import random

rng = random.Random(12345)
h = hashlib.sha256()

# dicts and lists of strings
d = {}
for i in range(300000):
    k = "key%07d" % rng.randrange(10**7)
    d.setdefault(k, []).append(i)
h.update(str(len(d)).encode())
h.update(str(sum(len(v) for v in d.values())).encode())
for k in sorted(d)[::997]:
    h.update(k.encode())

# string building and slicing
parts = []
for i in range(200000):
    parts.append(("x" * (i % 97)) + str(i))
s = "|".join(parts)
h.update(str(len(s)).encode())
h.update(s[::1013].encode())
del parts, s

# json round trip of a big structure
big = {"items": [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 17)] * (i % 5),
                  "score": (i * 7919) % 10007 / 13.0} for i in range(150000)]}
txt = json.dumps(big, sort_keys=True)
back = json.loads(txt)
assert back == big
h.update(hashlib.sha256(txt.encode()).digest())
del big, back, txt

# sorting 1e6 items
nums = [rng.random() for _ in range(1000000)]
nums.sort()
h.update(repr(nums[0]).encode() + repr(nums[-1]).encode() + repr(nums[500000]).encode())
words = sorted(str(rng.randrange(10**9)) for _ in range(200000))
h.update("".join(words[::1000]).encode())
del nums, words

# many small objects, sets, tuples, bytearrays
objs = [(i, str(i), frozenset((i, i + 1))) for i in range(200000)]
h.update(str(sum(len(o[1]) for o in objs)).encode())
ba = bytearray()
for i in range(100000):
    ba += bytes([i % 256]) * (i % 13)
h.update(hashlib.sha256(ba).digest())
print(h.hexdigest())

#!/usr/bin/env python3
"""genfiles.py [--random] DIR COUNT MIN_BYTES MAX_BYTES: a benchmark's storage, deterministic.

COUNT files with log-uniform sizes skewed to small ones (u²: a platform holds many small JSON
files and fewer large images; with 4 KB-1 MB the median is ~17 KB and the mean ~110 KB), spread
over content/, images/ and media/ in folders of 300. content/ holds text (compressible), the
others random bytes (incompressible); with --random every file is random bytes. Each file
starts with its number, so no two are the same.
"""
import os
import random
import sys

args = sys.argv[1:]
every_random = args[:1] == ["--random"]
if every_random:
    args = args[1:]
d, n, lo, hi = args[0], int(args[1]), int(args[2]), int(args[3])
rnd = random.Random(42)
blob = os.urandom(hi + 4096)
words = b"the chapter of a webnovel told in many words and lines " * (hi // 50 + 100)
for i in range(n):
    prefix = ("content", "images", "media")[i % 3]
    folder = os.path.join(d, prefix, str(i // 300))
    os.makedirs(folder, exist_ok=True)
    size = int(lo * (hi / lo) ** (rnd.random() ** 2))
    off = rnd.randrange(0, 4096)
    src = words if prefix == "content" and not every_random else blob
    with open(os.path.join(folder, "f%06d.bin" % i), "wb") as f:
        f.write(i.to_bytes(8, "little") + src[off:off + max(size - 8, 0)])

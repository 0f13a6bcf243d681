#!/usr/bin/env python3
"""genfiles.py DIR COUNT MIN_BYTES MAX_BYTES: the issue benchmark's storage, deterministic.

COUNT files with log-uniform sizes skewed to small ones, spread over folders of 300: content/
holds text (compressible), images/ and media/ random bytes (incompressible). Each file starts
with its number, so no two are the same.
"""
import os
import random
import sys

d, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(42)
blob = os.urandom(hi + 4096)
words = b"the chapter of a webnovel told in many words and lines " * (hi // 50 + 100)
for i in range(n):
    prefix = ("content", "images", "media")[i % 3]
    folder = os.path.join(d, prefix, str(i // 300))
    os.makedirs(folder, exist_ok=True)
    size = int(lo * (hi / lo) ** (rnd.random() ** 2))
    off = rnd.randrange(0, 4096)
    src = words if prefix == "content" else blob
    with open(os.path.join(folder, "f%06d.bin" % i), "wb") as f:
        f.write(i.to_bytes(8, "little") + src[off:off + max(size - 8, 0)])

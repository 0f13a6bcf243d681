#!/usr/bin/env bash
# Benchmark (by hand, not in CI): peak RSS of a local files-only backup of many small files,
# which shows whether the coordinator's memory grows with the number of files.
#
#   bench/rss.sh [N...]            # file counts; default 150000 1000000
#
#   SIZE=16          bytes per file
#   WORKERS=2        --workers
#   BIN=path         the binary to measure (default: built from this tree); run once with
#                    the binary of an earlier commit to compare
#   TMPDIR=/dev/shm  where the files and the backup go (default /tmp); a tmpfs needs about
#                    8 KB of memory per file (source and copy), so 1M files take ~8 GB
#
# Prints, per N, GNU time's peak RSS (%M) and the wall time. Needs Go, python3, GNU time.
set -euo pipefail
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(150000 1000000)
SIZE=${SIZE:-16} WORKERS=${WORKERS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-rss.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
  BIN="$WORK/webnovel-backup"
fi

# gen DIR COUNT: COUNT files of SIZE bytes under content/, images/, media/ in 1000-file folders.
gen() {
  python3 - "$1" "$2" "$SIZE" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    folder = os.path.join(d, ("content", "images", "media")[i % 3], "d%04d" % (i // 3000))
    if i % 3000 < 3:
        os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "file%07d.txt" % i), "wb") as f:
        f.write(i.to_bytes(8, "little") + b"x" * max(size - 8, 0))
PY
}

for n in "${COUNTS[@]}"; do
  echo "== $n files of $SIZE B"
  gen "$WORK/data" "$n"
  mkdir -p "$WORK/out"
  /usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" backup --skip-db --storage "$WORK/data" \
    --workers "$WORKERS" --backup-dir "$WORK/out" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; exit 1; }
  read -r KB SECS <"$WORK/time"
  lines=$(cat "$WORK"/out/backup_*/SHA256SUMS | wc -l)
  [ "$lines" -ge "$n" ] || { echo "SHA256SUMS has $lines lines, want $n or more" >&2; exit 1; }
  awk -v kb="$KB" -v s="$SECS" -v n="$n" 'BEGIN{printf "  peak RSS %.0f MB (%.0f B a file), %.0fs\n", kb / 1024, kb * 1024 / n, s}'
  rm -rf "$WORK/data" "$WORK/out"
done

#!/usr/bin/env bash
# Benchmark (by hand, not in CI): what a second backup costs when 1% of the files changed.
#
#   bench/incremental.sh
#
# Sizes come from the environment:
#   FILES=100000 MIN_KB=1 MAX_KB=1024   storage: FILES files from MIN_KB to MAX_KB, mostly small,
#                                       under content/ (text), images/ and media/ (random bytes:
#                                       incompressible), plus the demo database (SQLite)
#   CHANGE_PCT=1                        share of the files rewritten before the second backup
#   WORKERS=4                           --workers of every backup
#   LATENCY=20ms                        delay the fake S3 adds to every request (part s)
#   PARTS=ls                            l: local destination (against rsync --link-dest);
#                                       s: S3 destination on the fake S3 (request counts)
#
# (l) local storage → local backup folder: a first backup, then a second after CHANGE_PCT% of
#     the files changed; against `rsync -a` then `rsync -a --link-dest` of the same change into
#     a second folder. Wall times, the space the second backup adds (du counts a hard-linked
#     file once), and peak RSS (GNU time) of each run.
# (s) the same two backups into an S3 destination on bench/fakes3: wall times and the second
#     run's requests by kind (its GETs and PUTs of file data should be about the changed
#     files).
set -euo pipefail
FILES=${FILES:-100000} MIN_KB=${MIN_KB:-1} MAX_KB=${MAX_KB:-1024} CHANGE_PCT=${CHANGE_PCT:-1}
WORKERS=${WORKERS:-4} LATENCY=${LATENCY:-20ms} PARTS=${PARTS:-ls}
part() { [[ $PARTS == *"$1"* ]]; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-incr.XXXXXX")
FAKE_PID=
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v rsync >/dev/null || { echo "rsync is missing: apt-get install -y rsync" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup && go build -o "$WORK/fakes3" ./bench/fakes3)
BIN="$WORK/webnovel-backup"

echo "== demo database"
"$BIN" demo --path "$WORK/platform" --books 40 --chapters 50 --file-bytes 0 --no-backup >/dev/null
DB="sqlite:///$WORK/platform/db.sqlite3"
STORE="$WORK/platform/media"
rm -rf "$STORE"

# gen DIR COUNT MIN MAX: the issue benchmark's files (bench/genfiles.py).
gen() { python3 "$ROOT/bench/genfiles.py" "$@"; }

# change DIR PCT: rewrites PCT% of the files (same size, new bytes, new mtime); prints the
# changed bytes.
change() {
  python3 - "$@" <<'EOF'
import os, random, sys
d, pct = sys.argv[1], float(sys.argv[2])
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)
rnd = random.Random(7)
picked = rnd.sample(files, max(1, int(len(files) * pct / 100)))
total = 0
for p in picked:
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.write(os.urandom(min(size, 64)))
    total += size
print(total)
EOF
}

echo "== generating $FILES files of $MIN_KB-$MAX_KB KB"
gen "$STORE" "$FILES" $((MIN_KB * 1024)) $((MAX_KB * 1024))
sync
BYTES=$(du -sb --apparent-size "$STORE" | cut -f1)
echo "   $(find "$STORE" -type f | wc -l) files, $(awk "BEGIN{printf \"%.1f\", $BYTES / 1e9}") GB"

now() { date +%s.%N; }
# measured NAME CMD...: runs CMD under GNU time; wall seconds into T_NAME, peak RSS MB into M_NAME.
measured() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; exit 1; }
  read -r secs kb <"$WORK/time"
  printf -v "T_$name" '%s' "$secs"
  printf -v "M_$name" '%s' "$((kb / 1024))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
newest() { find "$1" -maxdepth 1 -name 'backup_*' -type d | sort | tail -1; }

restore_store() { rm -rf "$STORE"; gen "$STORE" "$FILES" $((MIN_KB * 1024)) $((MAX_KB * 1024)); sync; }

if part l; then
  echo
  echo "== (l) local → local, then $CHANGE_PCT% changed"
  OUT="$WORK/out"; mkdir -p "$OUT" "$WORK/rsync"
  measured first "$BIN" backup --database "$DB" --storage "$STORE" --workers "$WORKERS" --backup-dir "$OUT"
  FIRST=$(newest "$OUT")
  measured rs1 rsync -a "$STORE/" "$WORK/rsync/1/"
  sleep 1.1 # a new second: backup names are per second
  CHANGED=$(change "$STORE" "$CHANGE_PCT"); sync
  measured second "$BIN" backup --database "$DB" --storage "$STORE" --workers "$WORKERS" --backup-dir "$OUT"
  SECOND=$(newest "$OUT")
  measured rs2 rsync -a --link-dest="$WORK/rsync/1/" "$STORE/" "$WORK/rsync/2/"
  # du counts each inode once across its arguments: the second folder's own bytes.
  ADDED=$(du -sb "$FIRST" "$SECOND" | tail -1 | cut -f1)
  FIXTURES=$(du -cb "$SECOND"/db_*.json | tail -1 | cut -f1)
  RSADDED=$(du -sb "$WORK/rsync/1" "$WORK/rsync/2" | tail -1 | cut -f1)
  echo "  first backup:            ${T_first}s  (peak RSS ${M_first} MB)"
  echo "  second backup:           ${T_second}s  (peak RSS ${M_second} MB)  = $(ratio "$T_second" "$T_first")× the first"
  echo "  rsync -a / --link-dest:  ${T_rs1}s / ${T_rs2}s   second backup / rsync --link-dest = $(ratio "$T_second" "$T_rs2")×"
  echo "  changed bytes $CHANGED; second backup adds $ADDED bytes (fixtures $FIXTURES) = $(ratio "$ADDED" "$((CHANGED + FIXTURES))")× (changed + fixtures); rsync adds $RSADDED"
  # Where the added space goes besides the changed files: the manifest, the index (none in a
  # self-indexed backup: local into local), folders.
  INDEX=$(stat -c %s "$SECOND"/files_index.jsonl* 2>/dev/null || echo "none (self-indexed)")
  echo "  second backup's own files: SHA256SUMS $(stat -c %s "$SECOND/SHA256SUMS"), index $INDEX, folders $(find "$SECOND" -type d -printf '%s\n' | awk '{s += $1} END {print s}') bytes"
  "$BIN" list --backup-dir "$OUT" | tail -3
  rm -rf "$OUT" "$WORK/rsync"
  restore_store
fi

if part s; then
  echo
  echo "== (s) local → S3 (fake, $LATENCY per request), then $CHANGE_PCT% changed"
  "$WORK/fakes3" -latency "$LATENCY" -bucket backups >"$WORK/fakes3.out" 2>"$WORK/fakes3.log" &
  FAKE_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/fakes3.out" ] && break; sleep 0.1; done
  ENDPOINT=$(head -1 "$WORK/fakes3.out")
  [ -n "$ENDPOINT" ] || { cat "$WORK/fakes3.log" >&2; exit 1; }
  export AWS_ACCESS_KEY_ID=AKIABENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  DEST="s3://backups/nightly?endpoint=$ENDPOINT&path_style=true&region=us-east-1"
  measured s3first "$BIN" backup --database "$DB" --storage "$STORE" --workers "$WORKERS" --backup-dir "$DEST"
  FIRSTREQ=$(curl -s "$ENDPOINT/_stats?reset=1")
  sleep 1.1
  CHANGED=$(change "$STORE" "$CHANGE_PCT"); sync
  NCHANGED=$(awk "BEGIN{print int($FILES * $CHANGE_PCT / 100)}")
  measured s3second "$BIN" backup --database "$DB" --storage "$STORE" --workers "$WORKERS" --backup-dir "$DEST"
  SECONDREQ=$(curl -s "$ENDPOINT/_stats?reset=1")
  echo "  first backup:   ${T_s3first}s (peak RSS ${M_s3first} MB)  requests $FIRSTREQ"
  echo "  second backup:  ${T_s3second}s (peak RSS ${M_s3second} MB) = $(ratio "$T_s3second" "$T_s3first")× the first"
  echo "  second backup's requests: $SECONDREQ  ($NCHANGED files changed, $CHANGED bytes)"
  # File data is what goes to or comes from the content store (objects/sha256/…); the other
  # PUTs are the backup's own files (fixtures, lists, sums, index, manifest).
  DATAREQ=$(python3 -c 'import json, sys; c = json.loads(sys.argv[1]); print(c.get("put_file_object", 0), c.get("get_file_object", 0))' "$SECONDREQ")
  echo "  second backup's file data: PUT ${DATAREQ% *}, GET ${DATAREQ#* } objects for $NCHANGED changed files"
fi
echo
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"

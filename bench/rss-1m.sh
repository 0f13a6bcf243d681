#!/usr/bin/env bash
# Benchmark (by hand, not in CI): peak RSS of backup, a second (incremental) backup on a local
# folder, verify and restore of many tiny files,
# on a local folder and on S3 (bench/fakes3 on a loopback port), to show that none of them
# grows with the number of files (target: 100 MB at 1M files).
#
#   bench/rss-1m.sh [N]            # file count; default 1000000
#
#   SIZE=16          bytes per file
#   WORKERS=2        --workers
#   PARTS="local s3" which parts to run: local, s3, archive (a --compress backup: its verify,
#                    copy and restore, each reading the archive through)
#   BIN=path         the binary to measure (default: built from this tree); run once with
#                    the binary of an earlier commit to compare
#   TMPDIR=/path     where the files, the backups and the restores go (default /tmp)
#   MEMPROF=DIR      write each command's heap profile at its peak heap to DIR (--memprofile)
#
# Prints GNU time's peak RSS (%M), the wall and CPU time of each command, and the CPU time
# the fake S3 spent meanwhile. The fake S3 keeps its
# objects in its own memory (a few GB at 1M files); it is a separate process, not measured.
# Needs Go, python3, GNU time.
#
# Measured (2 shared cores, 16 B files, 2 workers): local, 1M files: backup 73 MB, verify
# 70 MB, restore 66 MB; S3, 100k files: verify 76 MB, restore 75 MB (verify at 300k: 73 MB),
# backup 118-165 MB (S3 source and destination). Then S3 clients were shared by the process
# (each open had parsed AWS_CA_BUNDLE and kept its own connections) and a default soft memory
# limit of 64 MiB set: S3 backup 98-99 MB at 100k files, 99 MB at 300k (heap in use at its
# peak 47-53 MB, most of it the upload part buffers of the backup's sums at the end). With
# the limit at 48 MiB, S3 backup at 200k files: 88 MB (heap at its peak 34 MB, 24 MB of it
# three 8 MiB part buffers of SHA256SUMS); with the manifests' uploads held to two parts
# (Bucket.PutLowMemory): 86.5 MB, heap at its peak 27 MB. Where an S3 run's time goes (200k
# files): the backup makes 6 requests a file (GET, PUT staging, HEAD, HEAD, COPY, DELETE),
# about 1.6 ms of CPU a file in this process (mostly the AWS SDK's per-request work) and
# 0.9 ms in the fake S3; both grow linearly, so 1M files take about 45 CPU-minutes for the
# backup alone — over an hour of wall time on 2 shared cores.
set -euo pipefail
N=${1:-1000000}
SIZE=${SIZE:-16} WORKERS=${WORKERS:-2} PARTS=${PARTS:-local s3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-rss1m.XXXXXX")
FAKE_PID=
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
  BIN="$WORK/webnovel-backup"
fi
(cd "$ROOT" && go build -o "$WORK/fakes3" ./bench/fakes3)

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

# measure LABEL ARGS...: runs the binary under GNU time and prints its peak RSS and wall time.
measure() {
  local label=$1
  shift
  if [ -n "${MEMPROF:-}" ]; then
    mkdir -p "$MEMPROF"
    set -- "$@" --memprofile "$MEMPROF/$(echo "$label" | tr -c 'a-zA-Z0-9\n' '_').pprof"
  fi
  local fake0
  fake0=$(fake_cpu)
  /usr/bin/time -f "%M %e %U %S" -o "$WORK/time" "$BIN" "$@" >"$WORK/cmd.log" 2>&1 || {
    echo "$label failed:" >&2
    tail -20 "$WORK/cmd.log" >&2
    exit 1
  }
  read -r KB SECS USR SYS <"$WORK/time"
  awk -v l="$label" -v kb="$KB" -v s="$SECS" -v n="$N" -v u="$USR" -v sy="$SYS" -v fake="$(($(fake_cpu) - fake0))" \
    'BEGIN{printf "  %-16s peak RSS %4.0f MB (%5.1f B a file) %6.0fs wall %6.1fs CPU (fake S3 %.1fs CPU)\n", l, kb / 1024, kb * 1024 / n, s, u + sy, fake / 100}'
}

# fake_cpu: the fake S3's CPU time so far in clock ticks (0 without it), to tell its share apart.
fake_cpu() {
  if [ -n "$FAKE_PID" ] && [ -r "/proc/$FAKE_PID/stat" ]; then
    awk '{print $14 + $15}' "/proc/$FAKE_PID/stat"
  else
    echo 0
  fi
}

# count_files DIR: regular files under DIR.
count_files() { find "$1" -type f | wc -l; }

echo "== $N files of $SIZE B, $WORKERS workers"
gen "$WORK/data" "$N"

for part in $PARTS; do
  case $part in
  local)
    mkdir -p "$WORK/out"
    measure "backup (local)" backup --skip-db --storage "$WORK/data" --workers "$WORKERS" --backup-dir "$WORK/out"
    B=$(ls -d "$WORK"/out/backup_*)
    # The nightly case: a second backup, incremental on the first (every file unchanged,
    # hard-linked), which joins the whole listing with the first's SHA256SUMS.
    sleep 1.1 # backup names are per second
    measure "second backup (local, incremental)" backup --skip-db --storage "$WORK/data" --workers "$WORKERS" --backup-dir "$WORK/out"
    rm -rf "$(ls -d "$WORK"/out/backup_* | sort | tail -1)"
    measure "verify (local)" verify --workers "$WORKERS" "$B"
    measure "restore (local)" restore --skip-db --force --workers "$WORKERS" --storage "$WORK/restored" "$B"
    got=$(count_files "$WORK/restored")
    [ "$got" -eq "$N" ] || { echo "restored $got files, want $N" >&2; exit 1; }
    rm -rf "$WORK/out" "$WORK/restored"
    ;;
  s3)
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
    "$WORK/fakes3" -bucket backups -load "media/platform=$WORK/data" >"$WORK/fakes3.out" 2>"$WORK/fakes3.log" &
    FAKE_PID=$!
    for _ in $(seq 1200); do [ -s "$WORK/fakes3.out" ] && break; sleep 0.5; done
    EP=$(head -1 "$WORK/fakes3.out")
    [ -n "$EP" ] || { echo "fakes3 did not start" >&2; cat "$WORK/fakes3.log" >&2; exit 1; }
    Q="endpoint=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$EP")&path_style=true&region=us-east-1"
    measure "backup (S3)" backup --skip-db --storage "s3://media/platform?$Q" --workers "$WORKERS" --backup-dir "s3://backups/nightly?$Q"
    NAME=$(grep -o 'backup_[0-9]*_[0-9]*' "$WORK/cmd.log" | head -1)
    [ -n "$NAME" ] || { echo "no backup name in the backup's output" >&2; cat "$WORK/cmd.log" >&2; exit 1; }
    measure "verify (S3)" verify --workers "$WORKERS" "s3://backups/nightly/$NAME?$Q"
    measure "restore (S3)" restore --skip-db --force --workers "$WORKERS" --storage "$WORK/restored" "s3://backups/nightly/$NAME?$Q"
    got=$(count_files "$WORK/restored")
    [ "$got" -eq "$N" ] || { echo "restored $got files, want $N" >&2; exit 1; }
    kill "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=
    rm -rf "$WORK/restored"
    ;;
  archive)
    mkdir -p "$WORK/out" "$WORK/copy"
    measure "backup (.tar.gz)" backup --skip-db --compress --storage "$WORK/data" --workers "$WORKERS" --backup-dir "$WORK/out"
    A=$(ls "$WORK"/out/backup_*.tar.gz)
    measure "verify (.tar.gz)" verify --workers "$WORKERS" "$A"
    measure "copy (.tar.gz)" copy "$A" "$WORK/copy"
    measure "restore (.tar.gz)" restore --skip-db --force --workers "$WORKERS" --storage "$WORK/restored" "$A"
    got=$(count_files "$WORK/restored")
    [ "$got" -eq "$N" ] || { echo "restored $got files, want $N" >&2; exit 1; }
    rm -rf "$WORK/out" "$WORK/copy" "$WORK/restored"
    ;;
  esac
done

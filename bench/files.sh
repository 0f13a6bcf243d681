#!/usr/bin/env bash
# Benchmark (by hand, not in CI): file-storage backups, from S3 and from a local folder.
#
#   bench/files.sh [N...]          # worker counts for (a) and (b); default 1 2 4 8
#
# Sizes come from the environment:
#   FILES=2000 MIN_KB=4 MAX_KB=1024   data for (a), (b), (c): FILES files from MIN_KB to MAX_KB,
#                                     mostly small (~215 MB), under content/, images/, media/
#   LATENCY=20ms                      delay the fake S3 adds to every request
#   RUNS=3                            alternating runs of (c), each side
#   LOCAL_WORKERS=4                   --workers of (c) and (d)
#   SMALL_FILES=100000 SMALL_KB=1     data for (d)
#   PARTS=abcd                        which parts to run ((a) and (b) run together: a or b)
#
# (a) webnovel-backup backup --skip-db --workers N from a fake S3 (bench/fakes3: gofakes3 in
#     memory, LATENCY per request) into a local folder: wall time, files/s, MB/s.
# (b) rclone copy --transfers N of the same objects from the same endpoint to a local folder,
#     alternating with (a) for each N.
# (c) local folder → local folder: webnovel-backup backup --skip-db --storage DIR against
#     cp -a DIR DEST, and against cp -a followed by an fsync of each file (a published backup
#     is on disk; cp's copy is not), RUNS alternating runs each, best and median.
# (d) peak RSS (GNU time %M) of backup --skip-db of SMALL_FILES files of SMALL_KB.
#
# The wall times include the tool's fixed costs (embedded NATS server start, planning,
# SHA256SUMS and metadata), as a user sees them. Needs Go, python3, GNU time and rclone
# (apt-get install -y rclone).
set -euo pipefail
WORKERS=("$@")
[ ${#WORKERS[@]} -gt 0 ] || WORKERS=(1 2 4 8)
FILES=${FILES:-2000} MIN_KB=${MIN_KB:-4} MAX_KB=${MAX_KB:-1024} LATENCY=${LATENCY:-20ms}
RUNS=${RUNS:-3} LOCAL_WORKERS=${LOCAL_WORKERS:-4} SMALL_FILES=${SMALL_FILES:-100000} SMALL_KB=${SMALL_KB:-1}
PARTS=${PARTS:-abcd}
part() { [[ $PARTS == *"$1"* ]]; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-files.XXXXXX") # TMPDIR: the filesystem to measure on
FAKE_PID=
cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v rclone >/dev/null || { echo "rclone is missing: apt-get install -y rclone" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup && go build -o "$WORK/fakes3" ./bench/fakes3)
BIN="$WORK/webnovel-backup"

# gen DIR COUNT MIN_BYTES MAX_BYTES: COUNT files of random bytes (bench/genfiles.py --random).
gen() { python3 "$ROOT/bench/genfiles.py" --random "$@"; }

echo "== generating $FILES files of ${MIN_KB}-${MAX_KB} KB"
gen "$WORK/data" "$FILES" $((MIN_KB * 1024)) $((MAX_KB * 1024))
# On disk before anything is timed: a backup syncs its files (one syncfs of the filesystem per
# task), which would otherwise also write out the generator's data and be charged for it.
sync
BYTES=$(du -sb --apparent-size "$WORK/data" | cut -f1)
COUNT=$(find "$WORK/data" -type f | wc -l)
MB=$(awk "BEGIN{printf \"%.1f\", $BYTES / 1e6}")
echo "   $COUNT files, $MB MB"

now() { date +%s.%N; }
# check DIR: the copy holds every file of the data set.
check() {
  local n
  n=$(find "$1" -type f -name 'f*.bin' | wc -l)
  [ "$n" = "$COUNT" ] || { echo "copy in $1 has $n files, want $COUNT" >&2; exit 1; }
}
# timed VAR CMD...: runs CMD, its wall time in seconds into VAR.
timed() {
  local var=$1 t0 t1; shift
  t0=$(now)
  "$@" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; exit 1; }
  t1=$(now)
  printf -v "$var" '%s' "$(awk "BEGIN{print $t1 - $t0}")"
}
row() { # label seconds
  awk -v l="$1" -v s="$2" -v n="$COUNT" -v b="$BYTES" \
    'BEGIN{printf "  %-36s %8.2fs %9.1f files/s %8.1f MB/s\n", l, s, n / s, b / 1e6 / s}'
}

if part a || part b; then
echo "== starting the fake S3 (latency $LATENCY)"
"$WORK/fakes3" -latency "$LATENCY" -load "media/platform=$WORK/data" >"$WORK/fakes3.out" 2>"$WORK/fakes3.log" &
FAKE_PID=$!
for _ in $(seq 100); do [ -s "$WORK/fakes3.out" ] && break; sleep 0.1; done
ENDPOINT=$(head -1 "$WORK/fakes3.out")
[ -n "$ENDPOINT" ] || { cat "$WORK/fakes3.log" >&2; exit 1; }
echo "   $ENDPOINT"
export AWS_ACCESS_KEY_ID=AKIABENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
# The endpoint is plain HTTP on loopback; rclone's SDK refuses a CA bundle on its transport.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
STORAGE_URL="s3://media/platform?endpoint=$ENDPOINT&path_style=true&region=us-east-1"
export RCLONE_CONFIG_FAKE_TYPE=s3 RCLONE_CONFIG_FAKE_PROVIDER=Other RCLONE_CONFIG_FAKE_ENDPOINT=$ENDPOINT
export RCLONE_CONFIG_FAKE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_FAKE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_FAKE_REGION=us-east-1 RCLONE_CONFIG_FAKE_FORCE_PATH_STYLE=true

declare -A OURS RCLONE
echo
echo "== (a)/(b) S3 ($LATENCY per request) → local folder, $COUNT files, $MB MB"
for n in "${WORKERS[@]}"; do
  rm -rf "$WORK/out" "$WORK/rc"; mkdir -p "$WORK/out"; sync
  timed OURS[$n] "$BIN" backup --skip-db --storage "$STORAGE_URL" --workers "$n" --backup-dir "$WORK/out"
  check "$WORK/out"
  rm -rf "$WORK/out"; sync
  timed RCLONE[$n] rclone copy -q --config /dev/null "fake:media/platform" "$WORK/rc" --transfers "$n"
  check "$WORK/rc"
done
for n in "${WORKERS[@]}"; do
  row "webnovel-backup --workers $n" "${OURS[$n]}"
  row "rclone copy --transfers $n" "${RCLONE[$n]}"
done
first=${WORKERS[0]} last=${WORKERS[-1]}
awk -v a="${OURS[$first]}" -v b="${OURS[$last]}" -v f="$first" -v l="$last" \
  'BEGIN{printf "  speed-up webnovel-backup %s→%s workers: %.2f×\n", f, l, a / b}'
for n in "${WORKERS[@]}"; do
  awk -v a="${OURS[$n]}" -v b="${RCLONE[$n]}" -v n="$n" \
    'BEGIN{printf "  N=%s: webnovel-backup throughput / rclone = %.2f\n", n, b / a}'
done
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true; FAKE_PID=
rm -rf "$WORK/out" "$WORK/rc"
fi

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "best %6.2fs  median %6.2fs", a[1], a[int((NR+1)/2)]}'; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if part c; then
echo
echo "== (c) local → local, $COUNT files, $MB MB, $RUNS alternating runs each"
# A backup is on disk when it is published (every file fsynced); cp -a leaves its copy in the
# page cache, so the same copy followed by an fsync of each file is shown too.
cp_synced() { cp -a "$1" "$2" && find "$2" -type f -exec sync {} +; }
ours=() theirs=() synced=()
for _ in $(seq "$RUNS"); do
  rm -rf "$WORK/out" "$WORK/cp"; mkdir -p "$WORK/out"; sync
  timed t "$BIN" backup --skip-db --storage "$WORK/data" --workers "$LOCAL_WORKERS" --backup-dir "$WORK/out"
  check "$WORK/out"; ours+=("$t")
  rm -rf "$WORK/out"; sync
  timed t cp -a "$WORK/data" "$WORK/cp"
  check "$WORK/cp"; theirs+=("$t")
  rm -rf "$WORK/cp"; sync
  timed t cp_synced "$WORK/data" "$WORK/cp"
  check "$WORK/cp"; synced+=("$t")
done
echo "  webnovel-backup --workers $LOCAL_WORKERS:  $(stats "${ours[@]}")"
echo "  cp -a:                         $(stats "${theirs[@]}")"
echo "  cp -a, then sync each file:    $(stats "${synced[@]}")"
awk -v a="$(best "${ours[@]}")" -v b="$(best "${theirs[@]}")" -v c="$(best "${synced[@]}")" \
  'BEGIN{printf "  best webnovel-backup / best cp -a: %.2f×   / best cp -a + sync: %.2f×\n", a / b, a / c}'
# The disk makes single runs vary a lot (see the README): medians say more than best times.
awk -v a="$(median "${ours[@]}")" -v b="$(median "${theirs[@]}")" -v c="$(median "${synced[@]}")" \
  'BEGIN{printf "  median webnovel-backup / median cp -a: %.2f×   / median cp -a + sync: %.2f×\n", a / b, a / c}'
fi
rm -rf "$WORK/out" "$WORK/cp" "$WORK/data"

if part d; then

echo
echo "== (d) peak memory, $SMALL_FILES files of $SMALL_KB KB"
gen "$WORK/small" "$SMALL_FILES" $((SMALL_KB * 1024)) $((SMALL_KB * 1024))
mkdir -p "$WORK/out"
/usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" backup --skip-db --storage "$WORK/small" \
  --workers "$LOCAL_WORKERS" --backup-dir "$WORK/out" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; exit 1; }
read -r KB SECS <"$WORK/time"
n=$(find "$WORK/out" -type f -name 'f*.bin' | wc -l)
[ "$n" = "$SMALL_FILES" ] || { echo "small copy has $n files, want $SMALL_FILES" >&2; exit 1; }
awk -v kb="$KB" -v s="$SECS" -v n="$SMALL_FILES" -v w="$LOCAL_WORKERS" \
  'BEGIN{printf "  backup --skip-db --workers %s: peak RSS %.0f MB, %.1fs (%.0f files/s)\n", w, kb / 1024, s, n / s}'
fi
echo
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"

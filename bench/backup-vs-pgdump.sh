#!/usr/bin/env bash
# Benchmark (by hand, not in CI): the database side of a backup against pg_dump.
#
#   RUNS=3 bench/backup-vs-pgdump.sh [D1|D2|both]
#
# Data sets, from the demo generator into a throwaway PostgreSQL (PostgreSQL 15 binaries
# first on PATH):
#   D1  `demo --books 200 --chapters 100 --users 2000 --authors 500 --file-bytes 0` (~98k rows)
#   D2  `demo --books 2000 --chapters 100 --file-bytes 0`                            (~930k rows)
# Then, RUNS times, alternating (ours, pg-j2, pg-z0-j2, ours, ...), each into a new folder:
#   ours      webnovel-backup backup --skip-files --workers 2
#   pg-j2     pg_dump -Fd -j 2          (compressed: pg_dump's default)
#   pg-z0-j2  pg_dump -Fd -Z0 -j 2      (uncompressed)
# and prints for each the median wall time, peak RSS (GNU time), the CPU seconds of the
# command and of the PostgreSQL server (what its backends used, summed by the postmaster):
# on a shared machine the wall time varies with the load, the CPU seconds much less. Then our
# medians over theirs, and a CPU profile of one more run of ours: the top functions and the
# share of the wall time our process spent on a CPU.
#
# BASE=path/to/an/earlier/build adds it to the alternation (mode "base", same flags as ours), to
# measure a change before and after on the same data and load.
#
# WNB_SKIP_1M unset also fills a 1M-row books_chapter table and reports the peak RSS of a
# backup of that model alone.
set -euo pipefail
SETS=${1:-both}
export PATH=/usr/lib/postgresql/15/bin:$PATH
source "$(dirname "$0")/postgres.sh"
RUNS=${RUNS:-3}
MODES=(ours pg-j2 pg-z0-j2)
[ -n "${BASE:-}" ] && MODES=(ours base pg-j2 pg-z0-j2)
BASECHILDREN=$(pgrep -c -P "$(head -1 "$WORK/pg/postmaster.pid")")
TCK=$(getconf CLK_TCK)

# servercpu: CPU seconds of the server's exited processes (backends are reaped by the postmaster).
servercpu() { awk -v t="$TCK" '{printf "%.2f", ($16 + $17) / t}' "/proc/$(head -1 "$WORK/pg/postmaster.pid")/stat"; }

# waitreaped: waits (5 s at most) until the command's backends have exited and been reaped,
# so that their CPU is counted in this run and not the next one.
waitreaped() {
  local pm i
  pm=$(head -1 "$WORK/pg/postmaster.pid")
  for i in $(seq 50); do
    [ "$(pgrep -c -P "$pm")" -le "$BASECHILDREN" ] && return
    sleep 0.1
  done
}

# timed NAME LOG CMD...: runs CMD under GNU time; appends "wall rss_kb cpu server_cpu" to $WORK/NAME.
# The wall time comes from the nanosecond clock around it: GNU time's has centiseconds.
timed() {
  local name=$1 log=$2 s0 s1 t0 t1
  shift 2
  s0=$(servercpu)
  t0=$(date +%s%N)
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.out" "$@" >"$log" 2>&1 || { echo "$name failed:"; tail -20 "$log"; exit 1; }
  t1=$(date +%s%N)
  waitreaped
  s1=$(servercpu)
  awk -v s="$(awk "BEGIN{print $s1 - $s0}")" -v w="$(((t1 - t0) / 1000))" \
    '{printf "%.3f %s %s %s\n", w / 1e6, $2, $3 + $4, s}' "$WORK/time.out" >>"$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1" | median; }

bench_set() {
  local set=$1 db=src_${1,,} url
  shift
  echo "== $set: demo $*"
  "${PSQL[@]}" -c "CREATE DATABASE $db"
  url=$(pgurl "$db")
  "$BIN" demo --path "$WORK/demo-$set" --postgres "$url" --no-backup "$@" >/dev/null
  "${PSQL[@]}" -d "$db" -c "VACUUM ANALYZE"
  echo "   $("${PSQL[@]}" -d "$db" -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables") rows," \
    "$("${PSQL[@]}" -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")"
  rm -f "${MODES[@]/#/$WORK/}"
  for i in $(seq "$RUNS"); do
    for mode in "${MODES[@]}"; do
      rm -rf "$WORK/out" && mkdir -p "$WORK/out"
      case $mode in
      ours) timed ours "$WORK/log" "$BIN" backup --database "$url" --skip-files --workers 2 --backup-dir "$WORK/out" ;;
      base) timed base "$WORK/log" "$BASE" backup --database "$url" --skip-files --workers 2 --backup-dir "$WORK/out" ;;
      pg-j2) timed pg-j2 "$WORK/log" "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -Fd -j 2 -f "$WORK/out/dump" "$db" ;;
      pg-z0-j2) timed pg-z0-j2 "$WORK/log" "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -Fd -Z0 -j 2 -f "$WORK/out/dump" "$db" ;;
      esac
      [ "$i" = 1 ] && printf '   %-9s output %s\n' "$mode" "$(du -sh "$WORK/out" | cut -f1)"
    done
  done
  echo "   medians over $RUNS runs (load average: $(cut -d' ' -f1-3 /proc/loadavg)):"
  for mode in "${MODES[@]}"; do
    printf '   %-9s %6.3f s  %4.0f MB  cpu %5.2f s  server cpu %5.2f s   (runs: %s)\n' "$mode" "$(col "$mode" 1)" \
      "$(awk "BEGIN{print $(col "$mode" 2)/1024}")" "$(col "$mode" 3)" "$(col "$mode" 4)" "$(awk '{printf "%s ", $1}' "$WORK/$mode")"
  done
  echo "   ours / pg_dump -j 2: $(awk "BEGIN{printf \"%.2f\", $(col ours 1) / $(col pg-j2 1)}")x;" \
    "ours / pg_dump -Z0 -j 2: $(awk "BEGIN{printf \"%.2f\", $(col ours 1) / $(col pg-z0-j2 1)}")x (medians)"
  [ -n "${BASE:-}" ] && echo "   ours / base: $(awk "BEGIN{printf \"%.2f\", $(col ours 1) / $(col base 1)}")x wall," \
    "$(awk "BEGIN{printf \"%.2f\", $(col ours 3) / $(col base 3)}")x cpu (medians)"
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  /usr/bin/time -f "%e %U %S" -o "$WORK/time.out" "$BIN" backup --database "$url" --skip-files --workers 2 \
    --backup-dir "$WORK/out" --cpuprofile "$WORK/$set.prof" >/dev/null 2>&1
  read -r wall user sys <"$WORK/time.out"
  echo "   profile of ours: ${wall}s wall, on a CPU $(awk "BEGIN{printf \"%.0f\", 100 * ($user + $sys) / $wall}")% of it (the rest waits for the server); top functions:"
  (cd "$ROOT" && go tool pprof -top -nodecount=25 "$BIN" "$WORK/$set.prof" 2>/dev/null) | sed -n '/flat%/,$p' | sed 's/^/     /'
  echo "   where it goes (cumulative): the rows' encoding, reading them off the wire, writing and"
  echo "   hashing the fixtures as they are written (each byte once), SHA-256 alone:"
  (cd "$ROOT" && go tool pprof -top -cum -nodecount=400 "$BIN" "$WORK/$set.prof" 2>/dev/null) |
    grep -E '[./](database\.\(\*exportPlan\)\.appendPGRow|pgconn\.\(\*ResultReader\)\.NextRow|fixture\.\(\*Writer\)\.Flush|sha256\.\(\*Digest\)\.Write|database\.\(\*Snapshot\)\.Plan)$' |
    sed 's/^/     /'
}

case $SETS in
D1 | both) bench_set D1 --books 200 --chapters 100 --users 2000 --authors 500 --file-bytes 0 ;;
esac
case $SETS in
D2 | both) bench_set D2 --books 2000 --chapters 100 --file-bytes 0 ;;
esac

[ -n "${WNB_SKIP_1M:-}" ] && exit 0
echo "== filling a 1M-row books_chapter table"
"${PSQL[@]}" -c "CREATE DATABASE bench1m"
"$BIN" demo --path "$WORK/demo1m" --postgres "$(pgurl bench1m)" --no-backup --only-chapters 1000000 --file-bytes 0 >/dev/null
"${PSQL[@]}" -d bench1m -c "VACUUM ANALYZE"
rm -rf "$WORK/out1m"; mkdir -p "$WORK/out1m"
/usr/bin/time -f "%M %e" -o "$WORK/time1m" "$BIN" backup --database "$(pgurl bench1m)" --skip-files \
  --models books.Chapter --workers 2 --backup-dir "$WORK/out1m" >/dev/null 2>&1
read -r KB SECS < "$WORK/time1m"
echo "== 1M chapters: peak RSS $((KB / 1024)) MB, ${SECS}s, fixture $(du -sh "$WORK"/out1m/backup_*/db_books_chapter.json | cut -f1)"

#!/usr/bin/env bash
# Benchmark (by hand, not in CI): the database side of a restore against pg_restore.
#
#   RUNS=3 bench/restore-db.sh [D1|D2|both]
#
# Data sets, from the demo generator into a throwaway PostgreSQL (PostgreSQL 15 binaries
# first on PATH):
#   D1  `demo --books 200 --chapters 100 --file-bytes 0`   (~93k rows; a tenth of D2: the
#       generator's bare defaults make only ~300 rows)
#   D2  `demo --books 2000 --chapters 100 --file-bytes 0`  (~930k rows, ~190 MB)
# Each is backed up with `webnovel-backup backup --skip-files` and dumped with `pg_dump -Fd`.
# Then, RUNS times, alternating, each into a fresh database:
#   ours        restore --force (one transaction; into a copy of an empty migrated database)
#   ours-j2     restore --force --jobs 2 (same target)
#   pg-single   pg_restore --single-transaction (into an empty database: it creates the schema)
#   pg-j2       pg_restore -j 2
# and prints, for each, the median wall time, peak RSS (GNU time), the client's CPU seconds and
# the server's (the cluster's CPU time, read from its postmaster, which reaps the sessions'
# processes); our medians over theirs; the load average (the machine may be shared: compare
# only runs of one script run); and a CPU profile of one more run of each of our modes: the
# top functions and the share of the wall time our process spent on a CPU.
set -euo pipefail
SETS=${1:-both}
export PATH=/usr/lib/postgresql/15/bin:$PATH
source "$(dirname "$0")/postgres.sh"
RUNS=${RUNS:-3}
"${PSQL[@]}" -c "CREATE DATABASE migrated"
"$BIN" demo --path "$WORK/empty" --postgres "$(pgurl migrated)" --no-backup --books 0 --users 0 --languages 0 \
  --authors 0 --file-bytes 0 >/dev/null

# servercpu: CPU seconds of the cluster so far: the postmaster's own and its reaped children's.
servercpu() { awk '{print ($14 + $15 + $16 + $17) / 100}' "/proc/$(head -1 "$WORK/pg/postmaster.pid")/stat"; }

# timed NAME LOG CMD...: runs CMD under GNU time; appends "seconds rss_kb client_cpu server_cpu"
# to $WORK/NAME. The wall time comes from the nanosecond clock around it: GNU time's has
# centiseconds, 4% of a restore of D1.
timed() {
  local name=$1 log=$2 s0 s1 t0 t1
  shift 2
  s0=$(servercpu)
  t0=$(date +%s%N)
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.out" "$@" >"$log" 2>&1 || { echo "$name failed:"; tail -20 "$log"; exit 1; }
  t1=$(date +%s%N)
  sleep 1 # the postmaster reaps the last sessions' processes
  s1=$(servercpu)
  awk -v s="$(awk -v a="$s0" -v b="$s1" 'BEGIN {print b - a}')" -v w="$(((t1 - t0) / 1000))" \
    '{printf "%.3f %s %s %s\n", w / 1e6, $2, $3 + $4, s}' "$WORK/time.out" >>"$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1" | median; }

bench_set() {
  local set=$1 db=src_${1,,}
  shift
  echo "== $set: demo $*"
  "${PSQL[@]}" -c "CREATE DATABASE $db"
  "$BIN" demo --path "$WORK/demo-$set" --postgres "$(pgurl "$db")" --no-backup "$@" >/dev/null
  "${PSQL[@]}" -d "$db" -c "VACUUM ANALYZE"
  echo "   $("${PSQL[@]}" -d "$db" -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables") rows," \
    "$("${PSQL[@]}" -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")"
  "$BIN" backup --database "$(pgurl "$db")" --skip-files --workers 2 --backup-dir "$WORK/out-$set" >/dev/null 2>&1
  local backup
  backup=$(ls -d "$WORK/out-$set"/backup_*)
  "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -Fd -j 2 -f "$WORK/dump-$set" "$db"
  rm -f "$WORK"/{ours,ours-j2,pg-single,pg-j2}
  for i in $(seq "$RUNS"); do
    for mode in ours ours-j2 pg-single pg-j2; do
      local t="t_${set,,}_${i}_${mode//-/_}"
      case $mode in
      ours*) "${PSQL[@]}" -c "CREATE DATABASE $t TEMPLATE migrated" ;;
      *) "${PSQL[@]}" -c "CREATE DATABASE $t" ;;
      esac
      case $mode in
      ours) timed ours "$WORK/log" "$BIN" restore "$backup" --database "$(pgurl "$t")" --force ;;
      ours-j2) timed ours-j2 "$WORK/log" "$BIN" restore "$backup" --database "$(pgurl "$t")" --force --jobs 2 ;;
      pg-single) timed pg-single "$WORK/log" "$PGBIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres --single-transaction -d "$t" "$WORK/dump-$set" ;;
      pg-j2) timed pg-j2 "$WORK/log" "$PGBIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -j 2 -d "$t" "$WORK/dump-$set" ;;
      esac
      "${PSQL[@]}" -c "DROP DATABASE $t"
    done
  done
  echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "   medians over $RUNS runs: wall s / peak RSS MB / client CPU s / server CPU s:"
  for mode in ours ours-j2 pg-single pg-j2; do
    printf '   %-10s %6.3f s  %5.0f MB  %5.2f s  %5.2f s   (wall: %s)\n' "$mode" "$(col "$mode" 1)" \
      "$(awk "BEGIN{print $(col "$mode" 2)/1024}")" "$(col "$mode" 3)" "$(col "$mode" 4)" \
      "$(awk '{printf "%s ", $1}' "$WORK/$mode")"
  done
  echo "   ours / pg_restore --single-transaction: $(awk "BEGIN{printf \"%.2f\", $(col ours 1) / $(col pg-single 1)}")x;" \
    "ours --jobs 2 / pg_restore -j 2: $(awk "BEGIN{printf \"%.2f\", $(col ours-j2 1) / $(col pg-j2 1)}")x (medians)"
  for mode in ours ours-j2; do
    local t="p_${set,,}_${mode//-/_}" jobs=1
    [ "$mode" = ours-j2 ] && jobs=2
    "${PSQL[@]}" -c "CREATE DATABASE $t TEMPLATE migrated"
    "$BIN" restore "$backup" --database "$(pgurl "$t")" --force --jobs "$jobs" --cpuprofile "$WORK/$set-$mode.prof" >/dev/null 2>&1
    "${PSQL[@]}" -c "DROP DATABASE $t"
    echo "   -- CPU profile, $mode ($set): cumulative CPU of Reader.Next (JSON parse, one goroutine a table)," \
      "pgRowSource.decode (checks and binary COPY encoding, one goroutine a core; encodeFast: the" \
      "objects in plain form, loadPlan.decode: the others), gcBgMarkWorker/mallocgc (memory), sha256" \
      "(the checksum checks), Syscall6 (I/O); wall time not on a CPU is waiting for the server"
    go tool pprof -top -nodecount=1 "$BIN" "$WORK/$set-$mode.prof" 2>/dev/null | grep -E "^Duration" | sed 's/^/      /'
    go tool pprof -top -cum -nodecount=60 "$BIN" "$WORK/$set-$mode.prof" 2>/dev/null |
      grep -E "fixture\.\(\*Reader\)\.Next$|\(\*pgRowSource\)\.(decode|encodeFast)$|\(\*loadPlan\)\.decode$|runtime\.gcBgMarkWorker$|sha256\.\(\*Digest\)\.Write$|runtime\.mallocgc$|Syscall6$" |
      awk '{printf "      %-8s %-7s %s\n", $4, $5, $6}'
    if [ -n "${WNB_PROFILE_DIR:-}" ]; then cp "$WORK/$set-$mode.prof" "$WNB_PROFILE_DIR/"; fi
  done
}

case $SETS in
D1 | both) bench_set D1 --books 200 --chapters 100 --file-bytes 0 ;;
esac
case $SETS in
D2 | both) bench_set D2 --books 2000 --chapters 100 --file-bytes 0 ;;
esac

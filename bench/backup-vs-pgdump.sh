#!/usr/bin/env bash
# Benchmark (by hand, not in CI): webnovel-backup against pg_dump on the same PostgreSQL data.
#
#   bench/backup-vs-pgdump.sh [WORKERS]
#
# 1. Starts a throwaway PostgreSQL cluster on a free loopback port (as the postgres user when
#    run as root), fills it with the demo generator: ~100k rows, 20k chapters, no files.
# 2. Times `webnovel-backup backup --skip-files --workers N` and `pg_dump -Fd -j N` of the same
#    database, alternately, 3 runs each, and prints the best and median wall times.
# 3. Fills a second database with a 1M-row books_chapter table and reports the peak RSS of
#    `webnovel-backup backup --skip-files --models books.Chapter` (GNU time).
N=${1:-2}
source "$(dirname "$0")/postgres.sh"
"${PSQL[@]}" -c "CREATE DATABASE bench" -c "CREATE DATABASE bench1m"
URL=$(pgurl bench)
URL1M=$(pgurl bench1m)

echo "== filling: 200 books x 100 chapters, 2000 users, no files"
"$BIN" demo --path "$WORK/demo" --postgres "$URL" --no-backup --books 200 --chapters 100 \
  --users 2000 --authors 500 --file-bytes 0
"${PSQL[@]}" -d bench -c "VACUUM ANALYZE"
ROWS=$("${PSQL[@]}" -d bench -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
echo "   $ROWS rows, database $("${PSQL[@]}" -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")"

ours=(); theirs=()
for i in 1 2 3; do
  rm -rf "$WORK/out" "$WORK/dump"; mkdir -p "$WORK/out"
  t0=$(now); "$BIN" backup --database "$URL" --skip-files --workers "$N" --backup-dir "$WORK/out" ${WNB_BACKUP_ARGS:-} >/dev/null 2>&1; t1=$(now)
  ours+=("$(awk "BEGIN{print $t1 - $t0}")")
  t0=$(now); "$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -Fd -j "$N" -f "$WORK/dump" bench; t1=$(now)
  theirs+=("$(awk "BEGIN{print $t1 - $t0}")")
done
echo "== backup --skip-files, $N workers:  $(stats "${ours[@]}")   ($(du -sh "$WORK/out" | cut -f1))"
echo "== pg_dump -Fd -j $N:                $(stats "${theirs[@]}")   ($(du -sh "$WORK/dump" | cut -f1))"

[ -n "${WNB_SKIP_1M:-}" ] && exit 0
echo "== filling a 1M-row books_chapter table"
"$BIN" demo --path "$WORK/demo1m" --postgres "$URL1M" --no-backup --only-chapters 1000000 --file-bytes 0
"${PSQL[@]}" -d bench1m -c "VACUUM ANALYZE"
rm -rf "$WORK/out1m"; mkdir -p "$WORK/out1m"
/usr/bin/time -f "%M %e" -o "$WORK/time1m" "$BIN" backup --database "$URL1M" --skip-files \
  --models books.Chapter --workers "$N" --backup-dir "$WORK/out1m" >/dev/null 2>&1
read -r KB SECS < "$WORK/time1m"
echo "== 1M chapters: peak RSS $((KB / 1024)) MB, ${SECS}s, fixture $(du -sh "$WORK"/out1m/backup_*/db_books_chapter.json | cut -f1)"

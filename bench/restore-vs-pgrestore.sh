#!/usr/bin/env bash
# Benchmark (by hand, not in CI): webnovel-backup restore against pg_restore on the same data.
#
#   bench/restore-vs-pgrestore.sh [WORKERS]
#
# The data set of bench/backup-vs-pgdump.sh (~100k rows, 20k chapters, no files). It backs the
# database up with webnovel-backup (--skip-files) and with pg_dump -Fd, then, RUNS (5) times each,
# alternately: `webnovel-backup restore --skip-files --force` into an empty migrated database,
# `pg_restore -j N` into an empty database, and `pg_restore --single-transaction` (the only
# pg_restore mode that, like ours, changes nothing when it fails; it cannot be combined with
# -j). Prints best and median wall times and our best time over each of theirs.
N=${1:-2}
source "$(dirname "$0")/postgres.sh"
"${PSQL[@]}" -c "CREATE DATABASE bench" -c "CREATE DATABASE migrated"

echo "== filling: 200 books x 100 chapters, 2000 users, no files"
"$BIN" demo --path "$WORK/demo" --postgres "$(pgurl bench)" --no-backup --books 200 --chapters 100 \
  --users 2000 --authors 500 --file-bytes 0 >/dev/null
# An empty migrated database to copy: the schema and migrate's rows, no data.
"$BIN" demo --path "$WORK/empty" --postgres "$(pgurl migrated)" --no-backup --books 0 --users 0 --languages 0 \
  --authors 0 --file-bytes 0 >/dev/null
"$BIN" backup --database "$(pgurl bench)" --skip-files --workers "$N" --backup-dir "$WORK/out" >/dev/null 2>&1
BACKUP=$(ls -d "$WORK"/out/backup_*)
"$PGBIN/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres -Fd -j "$N" -f "$WORK/dump" bench

ours=(); theirs=(); single=()
for i in $(seq "${RUNS:-5}"); do
  "${PSQL[@]}" -c "CREATE DATABASE ours$i TEMPLATE migrated" -c "CREATE DATABASE theirs$i" -c "CREATE DATABASE single$i"
  t0=$(now)
  "$BIN" restore "$BACKUP" --database "$(pgurl ours$i)" --skip-files --force --workers "$N" ${WNB_PROFILE:+--cpuprofile "$WNB_PROFILE.$i"} -v >"$WORK/restore$i.log" 2>&1; [ -n "${WNB_RESTORE_LOG:-}" ] && cp "$WORK/restore$i.log" "$WNB_RESTORE_LOG.$i"
  t1=$(now); ours+=("$(awk "BEGIN{print $t1 - $t0}")")
  t0=$(now)
  "$PGBIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres -j "$N" -d "theirs$i" "$WORK/dump"
  t1=$(now); theirs+=("$(awk "BEGIN{print $t1 - $t0}")")
  t0=$(now)
  "$PGBIN/pg_restore" -h 127.0.0.1 -p "$PORT" -U postgres --single-transaction -d "single$i" "$WORK/dump"
  t1=$(now); single+=("$(awk "BEGIN{print $t1 - $t0}")")
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
ROWS=$("${PSQL[@]}" -d ours1 -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
echo "== restore --skip-files ($ROWS rows), $N workers: $(stats "${ours[@]}")"
echo "== pg_restore -j $N:                        $(stats "${theirs[@]}")"
echo "== pg_restore --single-transaction:         $(stats "${single[@]}")"
echo "== ours / pg_restore -j $N: $(awk "BEGIN{printf \"%.2f\", $(best "${ours[@]}") / $(best "${theirs[@]}")}")x;" \
  "ours / pg_restore --single-transaction: $(awk "BEGIN{printf \"%.2f\", $(best "${ours[@]}") / $(best "${single[@]}")}")x (best times)"

#!/usr/bin/env bash
# Benchmark (by hand, not in CI): the database at scale, the four comparisons in one run.
#
#   RUNS=5 bench/database.sh [D1|D2|both]
#
# Runs bench/backup-vs-pgdump.sh (export: ours against pg_dump -Fd -j 2 and pg_dump -Fd -Z0
# -j 2) and then bench/restore-db.sh (restore: one transaction against pg_restore
# --single-transaction, --jobs 2 against pg_restore -j 2) on the same data sets, each
# alternating its modes RUNS times (RESTORE_RUNS for the restores, 11 by default: a restore
# of D1 takes half a second, where the machine's noise is largest), with their medians and
# CPU profiles; then prints the four ratios and their targets together.
set -euo pipefail
SETS=${1:-both}
HERE=$(dirname "$0")
LOG=$(mktemp /tmp/wnb-database.XXXXXX)
trap 'rm -f "$LOG"' EXIT
export WNB_SKIP_1M=${WNB_SKIP_1M-1}
RUNS=${RUNS:-5} bash "$HERE/backup-vs-pgdump.sh" "$SETS" | tee "$LOG"
RUNS=${RESTORE_RUNS:-11} bash "$HERE/restore-db.sh" "$SETS" | tee -a "$LOG"

echo
echo "== the four comparisons (medians; targets from the issue)"
awk '
  /^== D[12]/ { set = $2; sub(":", "", set) }
  /ours \/ pg_dump -j 2:/ {
    split($0, a, /: |x; |x \(/)
    printf "   %s  export / pg_dump -Fd -j 2            %s  (target <= 1.0)\n", set, a[2] "x"
    printf "   %s  export / pg_dump -Fd -Z0 -j 2        %s  (target on D2 <= 1.5)\n", set, a[4] "x"
  }
  /ours \/ pg_restore --single-transaction:/ {
    split($0, a, /: |x; |x \(/)
    printf "   %s  restore / pg_restore --single-trans. %s  (target <= 1.0)\n", set, a[2] "x"
    printf "   %s  restore --jobs 2 / pg_restore -j 2   %s  (target <= 1.0)\n", set, a[4] "x"
  }' "$LOG"

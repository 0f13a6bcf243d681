# Sourced by the PostgreSQL benchmarks: builds the binary ($BIN) and starts a throwaway
# PostgreSQL cluster on a free loopback port (as the postgres user when run as root), stopped
# and removed on exit. Gives PGBIN, WORK, PORT, PSQL (an array) and pgurl DB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/wnb-bench.XXXXXX)
PGBIN=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
RUNAS=()
if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); chown postgres "$WORK"; chmod 755 "$WORK"; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
BIN="$WORK/webnovel-backup"

echo "== starting PostgreSQL on 127.0.0.1:$PORT"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres -E UTF8 --locale=C >/dev/null
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-h 127.0.0.1 -p $PORT -k $WORK -c fsync=off -c max_connections=100" start >/dev/null
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qAt)
pgurl() { echo "postgres://postgres@127.0.0.1:$PORT/$1"; }
now() { date +%s.%N; }
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "best %.2fs  median %.2fs", a[1], a[int((NR+1)/2)]}'; }

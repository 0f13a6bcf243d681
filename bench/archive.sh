#!/usr/bin/env bash
# Benchmark (by hand, not in CI): a compressed backup against tar | pigz and against a folder
# backup of the same demo platform, in one run, alternating.
#
#   bench/archive.sh
#
# Sizes come from the environment:
#   BOOKS=40 CHAPTERS=50 MEDIA=2 FILE_BYTES=400000   demo platform (images, audio and book
#                                                    files are random bytes: incompressible)
#   WORKERS=2 RUNS=3                                 --workers of the backups; runs of each
#
# Times, best of RUNS each:
#   (1) webnovel-backup backup --compress                  (gzip, built from parts)
#   (2) webnovel-backup backup --compression zstd
#   (3) tar cf - db.sqlite3 media | pigz -p 2 > x.tar.gz   (the same platform, raw)
#   (4) webnovel-backup backup                             (a folder)
# and the ratios (1)/(3) (target <= 0.5) and (1)/(4) (target <= 1.2).
set -euo pipefail
BOOKS=${BOOKS:-40} CHAPTERS=${CHAPTERS:-50} MEDIA=${MEDIA:-2} FILE_BYTES=${FILE_BYTES:-400000}
WORKERS=${WORKERS:-2} RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-archive.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
command -v pigz >/dev/null || { echo "pigz is missing: apt-get install -y pigz" >&2; exit 1; }

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
BIN="$WORK/webnovel-backup"
echo "== demo platform: $BOOKS books x $CHAPTERS chapters, $MEDIA media each, ~$FILE_BYTES bytes a file"
"$BIN" demo --path "$WORK/demo" --no-backup --books "$BOOKS" --chapters "$CHAPTERS" \
  --media-per-chapter "$MEDIA" --file-bytes "$FILE_BYTES" >/dev/null
sync
DB="sqlite:///$WORK/demo/db.sqlite3"
echo "   $(find "$WORK/demo/media" -type f | wc -l) files, $(du -sh --apparent-size "$WORK/demo/media" | cut -f1)"

now() { date +%s.%N; }
# timed NAME CMD...: runs CMD (output into $WORK/out, emptied first), prints the seconds.
timed() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out" && sync
  local t0 t1
  t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
  awk "BEGIN{printf \"%.3f\", $t1 - $t0}"
}
backup() { "$BIN" backup --database "$DB" --storage "$WORK/demo/media" --workers "$WORKERS" --backup-dir "$WORK/out" --skip-preflight "$@"; }
tarpigz() { tar cf - -C "$WORK/demo" db.sqlite3 media | pigz -p 2 > "$WORK/out/x.tar.gz"; }
best() { printf '%s\n' "$@" | sort -n | head -1; }

declare -a gz zst tp dir
for i in $(seq "$RUNS"); do
  gz+=("$(timed backup --compress)");            gzsize=$(du -sb "$WORK/out" | cut -f1)
  zst+=("$(timed backup --compression zstd)");   zstsize=$(du -sb "$WORK/out" | cut -f1)
  tp+=("$(timed tarpigz)");                      tpsize=$(du -sb "$WORK/out" | cut -f1)
  dir+=("$(timed backup)");                      dirsize=$(du -sb "$WORK/out" | cut -f1)
done
G=$(best "${gz[@]}") Z=$(best "${zst[@]}") T=$(best "${tp[@]}") D=$(best "${dir[@]}")
mb() { awk "BEGIN{printf \"%.1f MB\", $1 / 1e6}"; }
echo "== best of $RUNS (seconds; output size)"
echo "   backup --compress (gzip):     $G   ($(mb "$gzsize"))   runs: ${gz[*]}"
echo "   backup --compression zstd:    $Z   ($(mb "$zstsize"))   runs: ${zst[*]}"
echo "   tar cf - | pigz -p 2:         $T   ($(mb "$tpsize"))   runs: ${tp[*]}"
echo "   backup (folder):              $D   ($(mb "$dirsize"))   runs: ${dir[*]}"
echo "== ratios"
echo "   --compress / tar|pigz:  $(awk "BEGIN{printf \"%.2f\", $G / $T}")   (target <= 0.5)"
echo "   --compress / folder:    $(awk "BEGIN{printf \"%.2f\", $G / $D}")   (target <= 1.2)"
echo "   zstd / folder:          $(awk "BEGIN{printf \"%.2f\", $Z / $D}")"

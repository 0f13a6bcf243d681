#!/usr/bin/env bash
# Benchmark (by hand, not in CI): a compressed backup against tar | pigz and against a folder
# backup of the same demo platform, in one run, alternating.
#
#   bench/archive.sh
#   BASE=<git revision> bench/archive.sh     also times that revision's binary, alternating
#
# Sizes come from the environment:
#   BOOKS=40 CHAPTERS=50 MEDIA=2 FILE_BYTES=400000   demo platform (images, audio and book
#                                                    files are random bytes: incompressible)
#   WORKERS=2 RUNS=3                                 --workers of the backups; runs of each
#   PIGZ=1                                           0 leaves tar | pigz out (it is slow)
#
# Times, median [min–max] of RUNS each, one of each per round:
#   (1) webnovel-backup backup --compress                  (gzip, built from parts)
#   (2) webnovel-backup backup --compression zstd
#   (3) tar cf - db.sqlite3 media | pigz -p 2 > x.tar.gz   (the same platform, raw)
#   (4) webnovel-backup backup                             (a folder)
# and the ratios of the medians (1)/(3) (target <= 0.5) and (1)/(4) (target <= 1.2), with
# the load average before and after (the machine may be shared).
set -euo pipefail
BOOKS=${BOOKS:-40} CHAPTERS=${CHAPTERS:-50} MEDIA=${MEDIA:-2} FILE_BYTES=${FILE_BYTES:-400000}
WORKERS=${WORKERS:-2} RUNS=${RUNS:-3} PIGZ=${PIGZ:-1} BASE=${BASE:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-archive.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [ "$PIGZ" = 1 ]; then
  command -v pigz >/dev/null || { echo "pigz is missing: apt-get install -y pigz" >&2; exit 1; }
fi

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
BIN="$WORK/webnovel-backup"
if [ -n "$BASE" ]; then
  mkdir -p "$WORK/base-src"
  git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base-src"
  (cd "$WORK/base-src" && go build -o "$WORK/webnovel-backup-base" ./cmd/webnovel-backup)
fi
echo "== demo platform: $BOOKS books x $CHAPTERS chapters, $MEDIA media each, ~$FILE_BYTES bytes a file"
"$BIN" demo --path "$WORK/demo" --no-backup --books "$BOOKS" --chapters "$CHAPTERS" \
  --media-per-chapter "$MEDIA" --file-bytes "$FILE_BYTES" >/dev/null
sync
DB="sqlite:///$WORK/demo/db.sqlite3"
echo "   $(find "$WORK/demo/media" -type f | wc -l) files, $(du -sh --apparent-size "$WORK/demo/media" | cut -f1)"

now() { date +%s.%N; }
# timed CMD...: runs CMD (output into $WORK/out, emptied first), prints the seconds.
timed() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out" && sync
  local t0 t1
  t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
  awk "BEGIN{printf \"%.3f\", $t1 - $t0}"
}
backup() { "$BIN" backup --database "$DB" --storage "$WORK/demo/media" --workers "$WORKERS" --backup-dir "$WORK/out" --skip-preflight "$@"; }
backup_base() { "$WORK/webnovel-backup-base" backup --database "$DB" --storage "$WORK/demo/media" --workers "$WORKERS" --backup-dir "$WORK/out" --skip-preflight "$@"; }
tarpigz() { tar cf - -C "$WORK/demo" db.sqlite3 media | pigz -p 2 > "$WORK/out/x.tar.gz"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s-%s", lo, hi}'; }
mb() { awk "BEGIN{printf \"%.1f MB\", $1 / 1e6}"; }
size() { du -sb "$WORK/out" | cut -f1; }

echo "== load before: $(uptime | sed 's/.*load average/load average/')"
declare -a gz zst tp dir bgz bdir
for i in $(seq "$RUNS"); do
  gz+=("$(timed backup --compress)");            gzsize=$(size)
  dir+=("$(timed backup)");                      dirsize=$(size)
  if [ -n "$BASE" ]; then
    bgz+=("$(timed backup_base --compress)")
    bdir+=("$(timed backup_base)")
  fi
  zst+=("$(timed backup --compression zstd)");   zstsize=$(size)
  if [ "$PIGZ" = 1 ]; then tp+=("$(timed tarpigz)"); tpsize=$(size); fi
done
echo "== load after:  $(uptime | sed 's/.*load average/load average/')"
G=$(median "${gz[@]}") Z=$(median "${zst[@]}") D=$(median "${dir[@]}")
echo "== median [range] of $RUNS (seconds; output size)"
echo "   backup --compress (gzip):     $G [$(range "${gz[@]}")]   ($(mb "$gzsize"))   runs: ${gz[*]}"
echo "   backup --compression zstd:    $Z [$(range "${zst[@]}")]   ($(mb "$zstsize"))   runs: ${zst[*]}"
echo "   backup (folder):              $D [$(range "${dir[@]}")]   ($(mb "$dirsize"))   runs: ${dir[*]}"
if [ "$PIGZ" = 1 ]; then
  T=$(median "${tp[@]}")
  echo "   tar cf - | pigz -p 2:         $T [$(range "${tp[@]}")]   ($(mb "$tpsize"))   runs: ${tp[*]}"
fi
if [ -n "$BASE" ]; then
  BG=$(median "${bgz[@]}") BD=$(median "${bdir[@]}")
  echo "   $BASE --compress:       $BG [$(range "${bgz[@]}")]   runs: ${bgz[*]}"
  echo "   $BASE folder:           $BD [$(range "${bdir[@]}")]   runs: ${bdir[*]}"
fi
echo "== ratios (medians)"
[ "$PIGZ" = 1 ] && echo "   --compress / tar|pigz:  $(awk "BEGIN{printf \"%.2f\", $G / $T}")   (target <= 0.5)"
echo "   --compress / folder:    $(awk "BEGIN{printf \"%.2f\", $G / $D}")   (target <= 1.2)"
echo "   zstd / folder:          $(awk "BEGIN{printf \"%.2f\", $Z / $D}")"
if [ -n "$BASE" ]; then
  echo "   $BASE --compress / folder: $(awk "BEGIN{printf \"%.2f\", $BG / $BD}")"
fi

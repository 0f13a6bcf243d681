#!/usr/bin/env bash
# Benchmark (by hand, not in CI): a compressed backup against tar | pigz and against a folder
# backup of the same demo platform, in one run, alternating.
#
#   bench/archive.sh
#   BASE=<git revision> bench/archive.sh     also times that revision's binary, alternating
#
# Sizes come from the environment:
#   DATA=demo                                        demo: the demo platform below, text-heavy
#                                                    (its fixtures and chapters); files: the
#                                                    issue's benchmark (bench/genfiles.py, as
#                                                    bench/incremental.sh) with the demo database
#   BOOKS=10 CHAPTERS=50 MEDIA=2 FILE_BYTES=400000   demo platform (images, audio and book
#                                                    files are random bytes: incompressible)
#   FILES=100000 MIN_KB=1 MAX_KB=1024                DATA=files: its files
#   WORKERS=2 RUNS=3                                 --workers of the backups; runs of each
#   PIGZ=1                                           0 leaves tar | pigz out (it is slow; pigz
#                                                    itself is run without it: it reads PIGZ)
#
# Times (wall and CPU: user + system), median [min–max] of RUNS each, one of each per round:
#   (1) webnovel-backup backup --compress                  (gzip, built from parts)
#   (2) webnovel-backup backup --compression zstd
#   (3) tar cf - db.sqlite3 media | pigz -p 2 > x.tar.gz   (the same platform, raw)
#   (4) webnovel-backup backup                             (a folder)
# with the size and the peak RSS of each, and the ratios of the medians (1)/(3) (target <= 0.5) and (1)/(4) (target <= 1.2), with
# the load average before and after (the machine may be shared).
set -euo pipefail
BOOKS=${BOOKS:-10} CHAPTERS=${CHAPTERS:-50} MEDIA=${MEDIA:-2} FILE_BYTES=${FILE_BYTES:-400000}
WORKERS=${WORKERS:-2} RUNS=${RUNS:-3} PIGZ=${PIGZ:-1} BASE=${BASE:-} DATA=${DATA:-demo}
FILES=${FILES:-100000} MIN_KB=${MIN_KB:-1} MAX_KB=${MAX_KB:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-archive.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }
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
if [ "$DATA" = files ]; then
  echo "== the issue's benchmark: $FILES files of $MIN_KB-$MAX_KB KB and the demo database"
  "$BIN" demo --path "$WORK/demo" --books 40 --chapters 50 --file-bytes 0 --no-backup >/dev/null
  rm -rf "$WORK/demo/media"
  python3 "$ROOT/bench/genfiles.py" "$WORK/demo/media" "$FILES" $((MIN_KB * 1024)) $((MAX_KB * 1024))
else
  echo "== demo platform: $BOOKS books x $CHAPTERS chapters, $MEDIA media each, ~$FILE_BYTES bytes a file"
  "$BIN" demo --path "$WORK/demo" --no-backup --books "$BOOKS" --chapters "$CHAPTERS" \
    --media-per-chapter "$MEDIA" --file-bytes "$FILE_BYTES" >/dev/null
fi
sync
DB="sqlite:///$WORK/demo/db.sqlite3"
echo "   $(find "$WORK/demo/media" -type f | wc -l) files, $(du -sh --apparent-size "$WORK/demo/media" | cut -f1)"

# childcpu: the user + system seconds of every child this shell has waited for so far
# (times runs in this shell: a subshell's would count only its own children).
childcpu() {
  times >"$WORK/times"
  awk 'NR==2{for(i=1;i<=2;i++){split($i,a,/[ms]/); t+=a[1]*60+a[2]} printf "%.3f", t}' "$WORK/times"
}
now() { date +%s.%N; }
# timed CMD...: runs CMD (output into $WORK/out, emptied first) and sets WALL and CPU to its
# seconds (CPU: user + system of CMD's processes, steadier than wall on a shared machine),
# and RSS to the peak resident memory in MB of a backup it ran (backup writes it: GNU time).
timed() {
  rm -rf "$WORK/out" "$WORK/rss" && mkdir -p "$WORK/out" && sync
  local t0 t1 c0 c1
  childcpu >"$WORK/c0"; t0=$(now)
  "$@" >/dev/null 2>"$WORK/stderr" || { tail "$WORK/stderr" >&2; exit 1; }
  t1=$(now); childcpu >"$WORK/c1"
  c0=$(cat "$WORK/c0") c1=$(cat "$WORK/c1")
  WALL=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}") CPU=$(awk "BEGIN{printf \"%.3f\", $c1 - $c0}")
  RSS=$(( $(tail -1 "$WORK/rss" 2>/dev/null || echo 0) / 1024 ))
}
backup() { /usr/bin/time -f %M -o "$WORK/rss" "$BIN" backup --database "$DB" --storage "$WORK/demo/media" --workers "$WORKERS" --backup-dir "$WORK/out" --skip-preflight "$@"; }
backup_base() { "$WORK/webnovel-backup-base" backup --database "$DB" --storage "$WORK/demo/media" --workers "$WORKERS" --backup-dir "$WORK/out" --skip-preflight "$@"; }
tarpigz() { tar cf - -C "$WORK/demo" db.sqlite3 media | env -u PIGZ pigz -p 2 > "$WORK/out/x.tar.gz"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s-%s", lo, hi}'; }
mb() { awk "BEGIN{printf \"%.1f MB\", $1 / 1e6}"; }
size() { du -sb "$WORK/out" | cut -f1; }

echo "== load before: $(uptime | sed 's/.*load average/load average/')"
declare -a gz zst tp dir bgz bdir gzc zstc tpc dirc bgzc bdirc
for i in $(seq "$RUNS"); do
  timed backup --compress;                  gz+=("$WALL") gzc+=("$CPU") gzsize=$(size) gzrss=$((RSS > ${gzrss:-0} ? RSS : ${gzrss:-0}))
  timed backup;                             dir+=("$WALL") dirc+=("$CPU") dirsize=$(size) dirrss=$((RSS > ${dirrss:-0} ? RSS : ${dirrss:-0}))
  if [ -n "$BASE" ]; then
    timed backup_base --compress;           bgz+=("$WALL") bgzc+=("$CPU")
    timed backup_base;                      bdir+=("$WALL") bdirc+=("$CPU")
  fi
  timed backup --compression zstd;          zst+=("$WALL") zstc+=("$CPU") zstsize=$(size) zstrss=$((RSS > ${zstrss:-0} ? RSS : ${zstrss:-0}))
  if [ "$PIGZ" = 1 ]; then timed tarpigz;   tp+=("$WALL") tpc+=("$CPU") tpsize=$(size); fi
done
echo "== load after:  $(uptime | sed 's/.*load average/load average/')"
G=$(median "${gz[@]}") Z=$(median "${zst[@]}") D=$(median "${dir[@]}")
GC=$(median "${gzc[@]}") ZC=$(median "${zstc[@]}") DC=$(median "${dirc[@]}")
# line LABEL WALLS CPUS: the median [range] of the wall and of the CPU seconds.
line() {
  local label=$1; shift
  local -a w=() c=()
  read -ra w <<<"$1"; read -ra c <<<"$2"
  printf '   %-30s wall %s [%s]  cpu %s [%s]\n' "$label" "$(median "${w[@]}")" "$(range "${w[@]}")" \
    "$(median "${c[@]}")" "$(range "${c[@]}")"
}
echo "== median [range] of $RUNS (seconds)"
line "backup --compress (gzip):" "${gz[*]}" "${gzc[*]}";   echo "      $(mb "$gzsize"), peak RSS $gzrss MB"
line "backup --compression zstd:" "${zst[*]}" "${zstc[*]}"; echo "      $(mb "$zstsize"), peak RSS $zstrss MB"
line "backup (folder):" "${dir[*]}" "${dirc[*]}";           echo "      $(mb "$dirsize"), peak RSS $dirrss MB"
if [ "$PIGZ" = 1 ]; then
  T=$(median "${tp[@]}") TC=$(median "${tpc[@]}")
  line "tar cf - | pigz -p 2:" "${tp[*]}" "${tpc[*]}";      echo "      $(mb "$tpsize")"
fi
if [ -n "$BASE" ]; then
  BG=$(median "${bgz[@]}") BD=$(median "${bdir[@]}") BGC=$(median "${bgzc[@]}") BDC=$(median "${bdirc[@]}")
  line "$BASE --compress:" "${bgz[*]}" "${bgzc[*]}"
  line "$BASE folder:" "${bdir[*]}" "${bdirc[*]}"
fi
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
echo "== ratios (medians: wall, cpu)"
[ "$PIGZ" = 1 ] && echo "   --compress / tar|pigz:  $(ratio "$G" "$T"), $(ratio "$GC" "$TC")   (target <= 0.5)"
echo "   --compress / folder:    $(ratio "$G" "$D"), $(ratio "$GC" "$DC")   (target <= 1.2)"
echo "   zstd / folder:          $(ratio "$Z" "$D"), $(ratio "$ZC" "$DC")"
if [ -n "$BASE" ]; then
  echo "   $BASE --compress / folder: $(ratio "$BG" "$BD"), $(ratio "$BGC" "$BDC")"
  echo "   --compress / $BASE --compress: $(ratio "$G" "$BG"), $(ratio "$GC" "$BGC")"
fi

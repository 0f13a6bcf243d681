#!/usr/bin/env bash
# Benchmark (by hand, not in CI): encrypted backups and restores against plain ones, as one-off
# runs of the command on a demo platform, alternating.
#
#   bench/encryption.sh
#
# Sizes come from the environment:
#   DATA=demo                                       demo: the demo platform below; files: the
#                                                   incremental issue's benchmark (bench/
#                                                   genfiles.py) with the demo database
#   BOOKS=20 CHAPTERS=25 MEDIA=2 FILE_BYTES=60000   demo platform (~1,550 files, ~90 MB)
#   FILES=100000 MIN_KB=1 MAX_KB=1024               DATA=files: its files
#   BACKUPS=7                                       backups of each (after one untimed of each)
#   RUNS=2                                          restores of each
#   QUIET=65                                        seconds of quiet before each restore
#
# For each mode (a full folder backup, a --compress .tar.gz) it times BACKUPS backups, plain and
# encrypted to one age recipient, in turns (plain first in odd rounds, encrypted first in even
# ones, each after a sync), after one untimed backup of each (the first run
# of a mode reads a cold cache: with two runs, its median flattered the encrypted one); then RUNS
# restores of each into a fresh target. Last, the nightly case: BACKUPS rounds of 1% of the files
# changed, then an incremental folder backup of each.
# It prints the medians and encrypted ÷ plain. Why the quiet: right after a folder of thousands
# of files is deleted, ext4 makes every new file cost more for about a minute
# (recently_deleted), and an encrypted archive's restore creates each file twice (it unpacks the
# decrypted archive once, checked, before it changes anything). A loop that deletes as it goes
# (go test -bench Encryption) measures that, not the encryption.
set -euo pipefail
BOOKS=${BOOKS:-20} CHAPTERS=${CHAPTERS:-25} MEDIA=${MEDIA:-2} FILE_BYTES=${FILE_BYTES:-60000}
BACKUPS=${BACKUPS:-7} RUNS=${RUNS:-2} QUIET=${QUIET:-65} DATA=${DATA:-demo}
FILES=${FILES:-100000} MIN_KB=${MIN_KB:-1} MAX_KB=${MAX_KB:-1024}
[ "$RUNS" -le "$BACKUPS" ] || { echo "RUNS ($RUNS) must not exceed BACKUPS ($BACKUPS): each restore restores a timed backup" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wnb-enc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
command -v age-keygen >/dev/null || { echo "age-keygen is missing: apt-get install -y age" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }

echo "== building"
(cd "$ROOT" && go build -o "$WORK/webnovel-backup" ./cmd/webnovel-backup)
BIN="$WORK/webnovel-backup"
if [ "$DATA" = files ]; then
  "$BIN" demo --path "$WORK/src" --books 40 --chapters 50 --file-bytes 0 --no-backup >/dev/null
  rm -rf "$WORK/src/media"
  python3 "$ROOT/bench/genfiles.py" "$WORK/src/media" "$FILES" $((MIN_KB * 1024)) $((MAX_KB * 1024))
else
  "$BIN" demo --path "$WORK/src" --books "$BOOKS" --chapters "$CHAPTERS" --media-per-chapter "$MEDIA" \
    --file-bytes "$FILE_BYTES" --no-backup >/dev/null
fi
age-keygen -o "$WORK/key.txt" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/key.txt" | head -1)
SRC=(--database "sqlite:///$WORK/src/db.sqlite3" --storage "$WORK/src/media")
echo "   $(find "$WORK/src/media" -type f | wc -l) files, $(du -sm "$WORK/src/media" | cut -f1) MB"

# in_turn I: the order of round I's two backups, alternating: a backup's writes reach the disk
# after it ends, and the next one on a write-heavy disk pays for them (on a VM, up to seconds).
# The sync in timed takes most of it; the turns take the rest.
in_turn() { if [ $(($1 % 2)) = 1 ]; then echo plain enc; else echo enc plain; fi; }
keyflag() { [ "$1" = enc ] && echo "--recipient $RECIPIENT" || true; }

# timed FILE CMD...: appends CMD's wall seconds to FILE, after a sync (none pays for the
# writeback of what ran before it).
timed() {
  local out=$1; shift
  sync
  /usr/bin/time -f "%e" -o "$WORK/t" "$@" >"$WORK/cmd.log" 2>&1 || { cat "$WORK/cmd.log" >&2; exit 1; }
  cat "$WORK/t" >>"$out"
}
median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
report() { # report WHAT MODE
  local p e
  p=$(median "$WORK/$1-$2-plain") e=$(median "$WORK/$1-$2-enc")
  printf "  %-8s %-11s plain %6.3fs  encrypted %6.3fs  = %.2f×\n" "$1" "$2" "$p" "$e" "$(awk -v a="$e" -v b="$p" 'BEGIN{print a / b}')"
}

for mode in folder archive; do
  flags=(--full)
  [ $mode = archive ] && flags=(--compress)
  echo "== $mode: one untimed backup of each, then $BACKUPS of each, alternating"
  for kind in plain enc; do
    sleep 1.1 # backup names are per second
    key=()
    [ $kind = enc ] && key=(--recipient "$RECIPIENT")
    "$BIN" backup -q "${SRC[@]}" --backup-dir "$WORK/out/warm-$mode-$kind" "${flags[@]}" "${key[@]}" >/dev/null 2>&1
  done
  # The disk holds few copies of a large storage; the quiet after a delete, as before restores.
  rm -rf "$WORK"/out/warm-*; sync; sleep "$QUIET"
  for i in $(seq "$BACKUPS"); do
    for kind in $(in_turn "$i"); do
      sleep 1.1
      timed "$WORK/backup-$mode-$kind" "$BIN" backup -q "${SRC[@]}" --backup-dir "$WORK/out/$mode-$kind/$i" "${flags[@]}" $(keyflag "$kind")
    done
    # Only the first RUNS are restored. The others are deleted only where the disk needs it
    # (DATA=files): a delete slows the rounds after it, plain and encrypted alike, which
    # narrows the ratio.
    if [ "$i" -gt "$RUNS" ] && [ "$DATA" = files ]; then
      rm -rf "$WORK/out/$mode-plain/$i" "$WORK/out/$mode-enc/$i"; sync; sleep "$QUIET"
    fi
  done
  echo "== $mode: $RUNS restores of each, alternating, ${QUIET}s of quiet before each"
  for i in $(seq "$RUNS"); do
    for kind in plain enc; do
      backup=$(find "$WORK/out/$mode-$kind/$i" -maxdepth 1 -name 'backup_*' ! -name '*.json' | head -1)
      target="$WORK/target-$mode-$kind-$i"
      "$BIN" demo --path "$target" --books 1 --chapters 1 --no-backup >/dev/null
      key=()
      [ $kind = enc ] && key=(--identity "$WORK/key.txt")
      sleep "$QUIET"
      timed "$WORK/restore-$mode-$kind" "$BIN" restore -q "$backup" --force "${key[@]}" \
        --database "sqlite:///$target/db.sqlite3" --storage "$target/media"
      rm -rf "$target"
    done
  done
  rm -rf "$WORK/out"; sync
done

# The nightly case: an incremental folder backup after 1% of the files changed. Only the changed
# files are read and encrypted; the others are linked from the base (an encrypted backup's from
# its encrypted base).
change_some() { # rewrites 1% of the storage's files (at least one) with new bytes of their size
  local n
  n=$(( $(find "$WORK/src/media" -type f | wc -l) / 100 + 1 ))
  find "$WORK/src/media" -type f | shuf -n "$n" | while IFS= read -r f; do
    head -c "$(stat -c %s "$f")" /dev/urandom >"$f.new" && mv "$f.new" "$f"
  done
}
echo "== incremental: a base of each, then $BACKUPS rounds of (1% changed, one backup of each)"
for kind in plain enc; do
  key=()
  [ $kind = enc ] && key=(--recipient "$RECIPIENT")
  "$BIN" backup -q "${SRC[@]}" --backup-dir "$WORK/out/incremental-$kind" "${key[@]}" >/dev/null 2>&1
done
for i in $(seq "$BACKUPS"); do
  change_some
  for kind in $(in_turn "$i"); do
    sleep 1.1
    timed "$WORK/backup-incremental-$kind" "$BIN" backup -q "${SRC[@]}" --backup-dir "$WORK/out/incremental-$kind" $(keyflag "$kind")
  done
done
echo
echo "== medians (target: encrypted ≤ 1.2× plain)"
for what in backup restore; do
  for mode in folder archive; do report $what $mode; done
done
report backup incremental
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)"

# The floor: the CPU an encrypted folder backup must spend beyond a plain one, whatever the
# code around it: per file, one X25519 stanza (each NAME.age is a standalone age file); per
# byte, ChaCha20-Poly1305 and a second SHA-256 (SHA256SUMS covers the stored bytes, the
# encrypted manifest the plaintext). Each at this machine's speed, one core. At 1.2×, the
# encrypted backup may take 0.2 × the plain one's wall time more, so all cores together have
# 0.2 × plain × cores of CPU for it: less than the floor, and no encrypted folder backup of
# this data meets the target here.
echo
echo "== floor: the encryption's own CPU against what 1.2× leaves (folder backup)"
bench=$(cd "$ROOT" && go test ./internal/encryption -run '^$' -benchtime 3000x \
  -bench 'Floor(SHA256|ChaCha20Poly1305)$|X25519Wrap/circl/^wrap$')
ns() { awk -v b="$1" '$1 ~ b {for (i = 1; i < NF; i++) if ($(i + 1) == "ns/op") print $i}' <<<"$bench"; }
files=$(find "$WORK/src/media" -type f | wc -l)
bytes=$(find "$WORK/src/media" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
awk -v files="$files" -v bytes="$bytes" -v wrap="$(ns X25519Wrap/circl/wrap)" \
  -v sha="$(ns FloorSHA256)" -v chacha="$(ns FloorChaCha20Poly1305)" \
  -v plain="$(median "$WORK/backup-folder-plain")" -v cores="$(nproc)" 'BEGIN {
  perbyte = (sha + chacha) / 65536
  floor = (files * wrap + bytes * perbyte) / 1e9
  budget = 0.2 * plain * cores
  printf "  %d files × %.1f µs + %.1f MB × %.2f ns = %.3f s of CPU\n", files, wrap / 1000, bytes / 1e6, perbyte, floor
  printf "  1.2× a %.3f s plain backup leaves %.3f s on %d cores: %s\n", plain, budget, cores,
    (floor > budget ? "out of reach on this machine" : "within reach")
}'

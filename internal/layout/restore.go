package layout

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// RestoreScript returns the content of restore.sh for a backup described by
// m. The script finds its own folder but stays in the caller's, so that the
// caller's settings (DATABASE_URL, STORAGE_URL, and the defaults relative to
// the current folder) name the target; if webnovel-backup is on PATH it
// runs `webnovel-backup restore <absolute folder> "$@"`, otherwise it prints the
// manual steps (loaddata of each fixture in m.Models order, which is the
// dependency order, and copying files/ into MEDIA_ROOT) and exits 1.
// Write it with mode 0755 (WriteRestoreScript does).
func RestoreScript(m *Metadata) []byte {
	var b bytes.Buffer
	name := Name(m.BackupTimestamp)
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# Restore the webnovel backup %s", name)
	if m.ToolVersion != "" {
		fmt.Fprintf(&b, " (written by webnovel-backup %s)", shComment(m.ToolVersion))
	}
	b.WriteString(".\n")
	b.WriteString(`# Usage: sh restore.sh [webnovel-backup restore flags, e.g. --dry-run, --force]
set -eu

# The folder holding this script, whatever the current folder. The restore runs from the
# caller's folder: the target is the caller's platform (DATABASE_URL, STORAGE_URL, or the
# defaults ./db.sqlite3 and ./media there), never the backup itself.
case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
here=$(cd -- "$here" && pwd)

if command -v webnovel-backup >/dev/null 2>&1; then
	exec webnovel-backup restore "$here" "$@"
fi

echo "webnovel-backup is not on PATH. To restore this backup by hand, from the Django project folder:" >&2
`)
	if len(m.Models) == 0 {
		b.WriteString("echo \"  (this backup holds no database fixtures)\" >&2\n")
	} else {
		b.WriteString("echo \"  1. Load the fixtures, in this order:\" >&2\n")
		for _, e := range m.Models {
			// checkFixtureName keeps parsed names to a safe character set;
			// quote anyway for metadata built in code.
			fmt.Fprintf(&b, "printf \"     python manage.py loaddata '%%s'\\n\" \"$here\"/%s >&2\n", shQuote(e.File))
		}
	}
	b.WriteString(`if [ -d "$here/files" ]; then
	echo "  2. Copy the storage files into MEDIA_ROOT:" >&2
	printf "     cp -a '%s/files/.' \"\$MEDIA_ROOT\"/\n" "$here" >&2
`)
	if m.StorageBackend == StorageS3 {
		b.WriteString(`	echo "     or, for S3 storage: aws s3 cp --recursive files/ s3://BUCKET/PREFIX/" >&2
`)
	}
	b.WriteString(`fi
`)
	if m.Files.Store == StoreObjects {
		// The files are not under this backup but in the destination's object store, each
		// at the key the index names (relative to the destination, this folder's parent).
		index, read := m.Files.Index, "cat "
		if index == "" || index == FileIndexGz {
			index, read = FileIndexGz, "gzip -dc "
		}
		for _, line := range []string{
			`  2. Copy the storage files: each line of ` + index + ` names a file ("k") and its`,
			`     object ("s", under the backup destination, the parent of this backup), e.g.:`,
			`     ` + read + index + ` | jq -r '[.s, .k] | @tsv' | while IFS="$(printf '\t')" read -r obj key; do`,
			`       aws s3 cp "s3://BUCKET/PREFIX/$obj" "$MEDIA_ROOT/$key"; done`,
		} {
			fmt.Fprintf(&b, "printf '%%s\\n' %s >&2\n", shQuote(line))
		}
	}
	b.WriteString(`echo "Or install webnovel-backup and run: webnovel-backup restore $here" >&2
exit 1
`)
	return b.Bytes()
}

// shQuote quotes s for a POSIX shell word.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shComment keeps s on one comment line.
func shComment(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

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
	if m.Encryption != nil {
		writeDecryptSteps(&b, m)
	} else {
		writeLoadSteps(&b, m)
		writeFileSteps(&b, m)
	}
	if m.Files.DefaultMode != "" {
		// The backup's own copies are private (0600, folders 0700); the platform's modes
		// are in the metadata.
		writeLines(&b, "  3. Give the files their permissions: "+m.Files.DefaultMode+", and for the files that",
			`     backup_metadata.json's files.modes lists, the mode it lists them under:`,
			`     find "$MEDIA_ROOT" -type d -exec chmod 755 {} + && find "$MEDIA_ROOT" -type f -exec chmod `+m.Files.DefaultMode+` {} +`)
	}
	b.WriteString(`echo "Or install webnovel-backup and run: webnovel-backup restore $here" >&2
exit 1
`)
	return b.Bytes()
}

// writeLoadSteps prints the loaddata of each fixture, in m.Models order.
func writeLoadSteps(b *bytes.Buffer, m *Metadata) {
	if len(m.Models) == 0 {
		b.WriteString("echo \"  (this backup holds no database fixtures)\" >&2\n")
		return
	}
	b.WriteString("echo \"  1. Load the fixtures, in this order:\" >&2\n")
	for _, e := range m.Models {
		// checkFixtureName keeps parsed names to a safe character set;
		// quote anyway for metadata built in code.
		fmt.Fprintf(b, "printf \"     python manage.py loaddata '%%s'\\n\" \"$here\"/%s >&2\n", shQuote(e.File))
	}
}

// writeFileSteps prints how to copy the storage files into MEDIA_ROOT.
func writeFileSteps(b *bytes.Buffer, m *Metadata) {
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
		writeLines(b, `  2. Copy the storage files: each line of `+index+` names a file ("k") and its`,
			`     object ("s", under the backup destination, the parent of this backup), e.g.:`,
			`     `+read+index+` | jq -r '[.s, .k] | @tsv' | while IFS="$(printf '\t')" read -r obj key; do`,
			`       aws s3 cp "s3://BUCKET/PREFIX/$obj" "$MEDIA_ROOT/$key"; done`)
	}
}

// writeDecryptSteps prints the steps for an encrypted backup: each fixture and file is
// NAME.age, which stock age opens with the secret key (in passphrase mode, the backup's own
// key, sealed in backup_key.age with the passphrase).
func writeDecryptSteps(b *bytes.Buffer, m *Metadata) {
	key := "key.txt (your secret age key)"
	if m.Encryption.Mode == "passphrase" {
		writeLines(b, "  0. This backup is encrypted: unseal its key with the passphrase (age asks for it):")
		fmt.Fprintf(b, "printf \"     age -d '%%s/%s' > key.txt\\n\" \"$here\" >&2\n", shComment(m.Encryption.Key))
		key = "key.txt"
	}
	writeLines(b, "  The fixtures and files are encrypted with age (NAME.age); with "+key+":")
	if len(m.Models) == 0 {
		b.WriteString("echo \"  (this backup holds no database fixtures)\" >&2\n")
	} else {
		b.WriteString("echo \"  1. Decrypt and load the fixtures, in this order:\" >&2\n")
		for _, e := range m.Models {
			plain := strings.TrimSuffix(e.File, EncryptedExt) // the stored name may say .age already
			fmt.Fprintf(b, "printf \"     age -d -i key.txt '%%s' > %s && python manage.py loaddata %s\\n\" \"$here\"/%s >&2\n",
				shQuote(plain), shQuote(plain), shQuote(plain+EncryptedExt))
		}
	}
	writeLines(b, "  2. Decrypt the storage files into MEDIA_ROOT:")
	b.WriteString(`printf "     (cd '%s/files' && find . -type f -name '*.age' | while IFS= read -r f; do\n" "$here" >&2
`)
	writeLines(b, `       mkdir -p "$MEDIA_ROOT/${f%/*}" && age -d -i "$OLDPWD/key.txt" "$f" > "$MEDIA_ROOT/${f%.age}"; done)`)
}

// writeLines prints each line as it is to standard error.
func writeLines(b *bytes.Buffer, lines ...string) {
	for _, line := range lines {
		fmt.Fprintf(b, "printf '%%s\\n' %s >&2\n", shQuote(line))
	}
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

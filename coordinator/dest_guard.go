package coordinator

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// RefuseDestinationInBackup refuses a destination (the folder or s3:// location that holds
// backups: backup's --backup-dir and --copy-to, copy's DEST) that is a backup itself or lies
// inside one, symlinks resolved: what a run wrote there would change that backup, which would
// then hold another backup in its files or its folder. A local folder is inside a backup when
// it or a folder above it holds a backup's metadata or is named as a backup is; an s3://
// location when a part of its prefix is named as a backup is. flag names the option for the
// error, a usage error: nothing has been written yet.
func RefuseDestinationInBackup(flag, dest string) error {
	backup, ok := enclosingBackup(dest)
	if !ok {
		return nil
	}
	return outcome.Usagef("%s %s lies inside the backup %s: what is written there would change that backup; give the folder that holds the backups (nothing was changed)",
		flag, redact.URL(dest), redact.URL(backup))
}

// enclosingBackup is the backup dest is or lies in, if any.
func enclosingBackup(dest string) (string, bool) {
	if storage.IsS3(dest) {
		return s3EnclosingBackup(dest)
	}
	p, err := resolvePath(storage.LocalPath(dest))
	if err != nil {
		return "", false // the destination's own checks speak of it
	}
	for d := p; ; d = filepath.Dir(d) {
		if layout.IsBackupName(filepath.Base(d)) {
			return d, true
		}
		if fi, err := os.Stat(filepath.Join(d, layout.FileMetadata)); err == nil && fi.Mode().IsRegular() {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// s3EnclosingBackup looks at the parts of an s3:// location's prefix.
func s3EnclosingBackup(dest string) (string, bool) {
	u, err := url.Parse(dest)
	if err != nil {
		return "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i, part := range parts {
		if layout.IsBackupName(part) {
			return "s3://" + u.Host + "/" + path.Join(parts[:i+1]...), true
		}
	}
	return "", false
}

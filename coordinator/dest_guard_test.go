package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// TestRefuseDestinationInBackup: a destination that is a backup, or lies in one (by its
// metadata or its name, through a symlink, still to be made, on S3), is refused naming the
// flag and the backup; the folder that holds backups, and others, pass.
func TestRefuseDestinationInBackup(t *testing.T) {
	root := t.TempDir()
	backups := filepath.Join(root, "backups")
	named := filepath.Join(backups, "backup_20240101_000000") // named as a backup
	renamed := filepath.Join(backups, "nightly-copy")         // a backup by its metadata only
	for _, d := range []string{filepath.Join(named, "files"), filepath.Join(renamed, "files", "media")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(renamed, layout.FileMetadata), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(filepath.Join(renamed, "files"), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dest, backup string // backup: "" when the destination is accepted
	}{
		{backups, ""},
		{filepath.Join(root, "new", "folder"), ""},
		{"s3://bucket/backups?region=x", ""},
		{named, named},
		{filepath.Join(named, "files"), named},
		{filepath.Join(named, "files", "to", "be", "made"), named},
		{renamed, renamed},
		{"file://" + filepath.Join(renamed, "files", "media"), renamed},
		{filepath.Join(link, "media"), renamed},
		{"s3://bucket/backups/backup_20240101_000000?region=x", "s3://bucket/backups/backup_20240101_000000"},
		{"s3://bucket/backups/backup_20240101_000000.tar.gz/x", "s3://bucket/backups/backup_20240101_000000.tar.gz"},
	}
	for _, tt := range tests {
		err := RefuseDestinationInBackup("--backup-dir", tt.dest)
		switch {
		case tt.backup == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.dest, err)
		case tt.backup != "" && err == nil:
			t.Errorf("%s: accepted; it lies in the backup %s", tt.dest, tt.backup)
		case tt.backup != "" && (outcome.Of(err).Code != outcome.CodeUsage || !strings.Contains(err.Error(), "--backup-dir") ||
			!strings.Contains(err.Error(), "inside the backup "+tt.backup+":")):
			t.Errorf("%s: %v (exit %d); want a usage error naming the flag and the backup %s", tt.dest, err, outcome.Of(err).Code, tt.backup)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(named, "files")); len(entries) != 0 {
		t.Errorf("the check made %v in the backup", entries)
	}
}

package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// A backup folder inside the storage it backs up is refused, symlinks resolved; one beside it
// is not.
func TestRefuseBackupsInStorage(t *testing.T) {
	dir := t.TempDir()
	media := filepath.Join(dir, "media")
	if err := os.MkdirAll(filepath.Join(media, "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(media, "uploads"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		backupDir, storage string
		refused            bool
	}{
		{filepath.Join(media, "backups"), media, true},
		{media, media, true},
		{filepath.Join(dir, "link", "backups"), "file://" + media, true},
		{filepath.Join(dir, "backups"), media, false},
		{filepath.Join(dir, "media-backups"), media, false},
		{"s3://bucket/backups", media, false},
	} {
		err := refuseBackupsInStorage(tt.backupDir, tt.storage)
		if refused := err != nil; refused != tt.refused {
			t.Errorf("%s in %s: %v, want refused %v", tt.backupDir, tt.storage, err, tt.refused)
		}
		if err != nil && (outcome.Of(err).Status != outcome.Usage || !strings.Contains(err.Error(), "--backup-dir")) {
			t.Errorf("%s in %s: %v, want a usage error naming --backup-dir", tt.backupDir, tt.storage, err)
		}
	}
}

package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// TestPeekBackup reads what a local backup holds from its metadata alone, so that a
// database-only restore starts no queue and a files-only one demands no database.
func TestPeekBackup(t *testing.T) {
	fixtures := []layout.ModelEntry{{Label: "books.Book", File: "db_books_book.json"}}
	tests := []struct {
		name       string
		meta       *layout.Metadata // nil: no metadata at all
		opts       RestoreOptions
		want       BackupContents
		needsQueue bool
	}{
		{"no backup", nil, RestoreOptions{}, BackupContents{}, true},
		{"database and files", &layout.Metadata{FormatVersion: 1, Models: fixtures, BackupOptions: layout.BackupOptions{IncludeFiles: true}},
			RestoreOptions{}, BackupContents{Known: true, Database: true, Files: true}, true},
		{"database only", &layout.Metadata{FormatVersion: 1, Models: fixtures},
			RestoreOptions{}, BackupContents{Known: true, Database: true}, false},
		{"database only, dry run", &layout.Metadata{FormatVersion: 1, Models: fixtures},
			RestoreOptions{DryRun: true}, BackupContents{Known: true, Database: true}, true},
		{"files only (--skip-db)", &layout.Metadata{FormatVersion: 1, BackupOptions: layout.BackupOptions{IncludeFiles: true, SkipDB: true}},
			RestoreOptions{}, BackupContents{Known: true, Files: true}, true},
		{"files restored with --skip-files", &layout.Metadata{FormatVersion: 1, Models: fixtures, BackupOptions: layout.BackupOptions{IncludeFiles: true}},
			RestoreOptions{SkipFiles: true}, BackupContents{Known: true, Database: true, Files: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.meta != nil {
				tt.meta.BackupTimestamp = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
				data, err := tt.meta.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, layout.FileMetadata), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := PeekBackup(context.Background(), dir); got != tt.want {
				t.Errorf("PeekBackup = %+v, want %+v", got, tt.want)
			}
			tt.opts.Source = dir
			if got := RestoreNeedsQueue(context.Background(), tt.opts); got != tt.needsQueue {
				t.Errorf("RestoreNeedsQueue = %v, want %v", got, tt.needsQueue)
			}
		})
	}
}

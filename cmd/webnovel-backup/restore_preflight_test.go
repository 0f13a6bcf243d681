package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// TestRestorePreflightConfig: a restore's preflight checks the storage by one file, not by
// summing it (nor the working directory when ./media does not exist yet), measures no
// database (but keeps it open for the restore), and leaves the storage out for a backup known
// to hold no files.
func TestRestorePreflightConfig(t *testing.T) {
	fixtures := []layout.ModelEntry{{Label: "books.Book", File: "db_books_book.json"}}
	for _, tt := range []struct {
		name        string
		files       bool
		wantStorage bool
	}{{"database only", false, false}, {"database and files", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			meta := &layout.Metadata{FormatVersion: 1, Models: fixtures, BackupOptions: layout.BackupOptions{IncludeFiles: tt.files},
				BackupTimestamp: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)}
			data, err := meta.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, layout.FileMetadata), data, 0o600); err != nil {
				t.Fatal(err)
			}
			var o restoreOptions
			o.Source, o.DatabaseURL, o.StorageURL = dir, "sqlite:///db.sqlite3", filepath.Join(t.TempDir(), "media")
			pc := o.preflight(context.Background(), "", nil)
			if (pc.StorageURL != "") != tt.wantStorage || !pc.SpaceAfterPlan || !pc.NoDatabaseSize || pc.DatabaseURL == "" || !pc.KeepDatabase {
				t.Errorf("preflight config %+v: want the storage checked %v, by one file, the database unmeasured and kept for the load", pc, tt.wantStorage)
			}
		})
	}
}

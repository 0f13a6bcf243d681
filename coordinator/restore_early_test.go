package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// earlyBackup writes a backup folder with metadata listing fixtures of the given sizes (by
// file name) and returns it.
func earlyBackup(t *testing.T, meta *layout.Metadata, sizes map[string]int) string {
	t.Helper()
	dir := t.TempDir()
	for _, label := range []string{"books.Language", "books.Author", "books.Book"} {
		file := "db_" + strings.ReplaceAll(strings.ToLower(label), ".", "_") + ".json"
		meta.Models = append(meta.Models, layout.ModelEntry{Label: label, File: file})
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strings.Repeat("x", sizes[file])), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	meta.FormatVersion, meta.BackupTimestamp = 1, time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	data, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, layout.FileMetadata), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStartEarlySums: only a parallel, unconfirmed restore of a local unencrypted folder
// hashes its fixtures before it starts, largest first, and those of the selected models only;
// each hash is the file's.
func TestStartEarlySums(t *testing.T) {
	sizes := map[string]int{"db_books_language.json": 10, "db_books_author.json": 3000, "db_books_book.json": 200}
	plain := earlyBackup(t, &layout.Metadata{}, sizes)
	encrypted := earlyBackup(t, &layout.Metadata{Encryption: &layout.Encryption{Format: "age"}}, sizes)
	yes := func(*RestorePlan) (bool, error) { return true, nil }
	tests := []struct {
		name string
		o    RestoreOptions
		want []string // the files hashed, in order; nil: none
	}{
		{"jobs", RestoreOptions{Source: plain, Jobs: 2},
			[]string{"db_books_author.json", "db_books_book.json", "db_books_language.json"}},
		{"jobs, some models", RestoreOptions{Source: plain, Jobs: 2, Models: []string{"books.language", "books.book"}},
			[]string{"db_books_book.json", "db_books_language.json"}},
		{"one transaction", RestoreOptions{Source: plain, Jobs: 1}, nil},
		{"confirmed", RestoreOptions{Source: plain, Jobs: 2, Confirm: yes}, nil},
		{"dry run", RestoreOptions{Source: plain, Jobs: 2, DryRun: true}, nil},
		{"files only", RestoreOptions{Source: plain, Jobs: 2, SkipDB: true}, nil},
		{"encrypted", RestoreOptions{Source: encrypted, Jobs: 2}, nil},
		{"no backup", RestoreOptions{Source: t.TempDir(), Jobs: 2}, nil},
		{"S3", RestoreOptions{Source: "s3://bucket/backup_20261203_060000", Jobs: 2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range earlyFixtures(tt.o) {
				got = append(got, f.rel)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("hashed early: %v, want %v", got, tt.want)
			}
			e := StartEarlySums(context.Background(), tt.o)
			defer e.Stop()
			if (e != nil) != (tt.want != nil) {
				t.Fatalf("StartEarlySums = %v, want one: %v", e, tt.want != nil)
			}
			if e != nil {
				<-e.finished // asked earlier, a file not reached yet is the restore's to hash
			}
			for _, rel := range tt.want {
				sum, size, ok, err := e.sum(context.Background(), tt.o.Source, rel)
				want, wantSize, herr := layout.HashFile(context.Background(), filepath.Join(tt.o.Source, rel))
				if err != nil || herr != nil || !ok || sum != want || size != wantSize {
					t.Errorf("%s: sum %s %d ok %v err %v, want %s %d", rel, sum, size, ok, err, want, wantSize)
				}
			}
		})
	}
}

// TestEarlySumsTaken: a file the restore asks for before the early hashing reached it is the
// restore's to hash (not ok), and the early hashing skips it; files of another folder, or
// not listed, are never answered.
func TestEarlySumsTaken(t *testing.T) {
	dir := earlyBackup(t, &layout.Metadata{}, map[string]int{"db_books_language.json": 10, "db_books_author.json": 30, "db_books_book.json": 20})
	files := earlyFixtures(RestoreOptions{Source: dir, Jobs: 2})
	ctx := context.Background()
	e := newEarlySums(dir, files)
	if _, _, ok, err := e.sum(ctx, dir, "db_books_book.json"); ok || err != nil {
		t.Fatalf("a file not started: ok %v, err %v; want the restore to hash it", ok, err)
	}
	e.start(ctx, files)
	defer e.Stop()
	<-e.finished
	if s := e.files["db_books_book.json"]; s.state.Load() != earlyTaken || s.sum != "" {
		t.Fatalf("the taken file was hashed early: state %d, sum %q", s.state.Load(), s.sum)
	}
	if _, _, ok, _ := e.sum(ctx, dir, "db_books_author.json"); !ok {
		t.Fatal("a file hashed early is not answered")
	}
	for _, c := range []struct{ dir, rel string }{{t.TempDir(), "db_books_author.json"}, {dir, "db_other.json"}} {
		if _, _, ok, _ := e.sum(ctx, c.dir, c.rel); ok {
			t.Errorf("%s in %s answered", c.rel, c.dir)
		}
	}
	var none *EarlySums
	if _, _, ok, _ := none.sum(ctx, dir, "db_books_author.json"); ok {
		t.Error("no early hashing answered")
	}
	none.Stop()
}

package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

// restore --book/--select on the command line: a dry run prints the graph per model and the
// conflicts; a refused conflict exits 2 naming the row; bad combinations are usage errors.
func TestRestoreSelectFlags(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup_data"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	db := filepath.Join(dir, "db.sqlite3")
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"dry run", []string{"--book", "1", "--select", "books.Chapter=15", "--dry-run"}, 0,
			[]string{"Restore selected rows", "books.chapter", "selected", "Dry run"}},
		{"bad mode", []string{"--book", "1", "--on-conflict", "overwrite"}, 2, []string{"--on-conflict"}},
		{"mode alone", []string{"--on-conflict", "keep"}, 2, []string{"needs --book or --select"}},
		{"with models", []string{"--book", "1", "--models", "books.Book"}, 2, []string{"--models"}},
		{"unknown slug", []string{"--book", "no-such-slug", "--force"}, 2, []string{"--book no-such-slug"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := cli(t, dir, append([]string{"restore", backup}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	sqlitetest.Exec(t, db, "UPDATE books_chapter SET title = 'edited' WHERE id = 1")
	code, out := cli(t, dir, "restore", backup, "--book", "1", "--dry-run", "--json")
	var rep struct {
		Status    string
		Selection struct {
			Conflicts []struct {
				Model  string
				PK     int64
				Fields []string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Status != "dry-run" || len(rep.Selection.Conflicts) != 1 ||
		rep.Selection.Conflicts[0].Model != "books.chapter" || rep.Selection.Conflicts[0].PK != 1 {
		t.Fatalf("dry run --json: exit %d, %v\n%s", code, err, out)
	}
	code, out = cli(t, dir, "restore", backup, "--book", "1", "--force")
	if code != 2 || !strings.Contains(out, "books.chapter pk 1 (title)") || strings.Contains(out, "Restore finished") {
		t.Fatalf("conflict: exit %d (a refusal, with no report of a restore)\n%s", code, out)
	}
	code, out = cli(t, dir, "restore", backup, "--book", "1", "--force", "--on-conflict", "replace")
	if code != 0 {
		t.Fatalf("replace: exit %d\n%s", code, out)
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
)

// TestRestoreTamperedFixturePostgres: a fixture changed after the backup, still a valid
// fixture the load would accept, is refused by its checksum in every mode, and the target
// keeps its rows: the one-transaction restore (which checks the sums alongside its COPYs
// when nobody confirms) rolls back, the confirmed one and --jobs check before loading.
func TestRestoreTamperedFixturePostgres(t *testing.T) {
	opts := demo.Options{Books: 3, ChaptersPerBook: 4, Users: 5, Authors: 2, Languages: 2, Seed: 7, NoFiles: true}
	src := filledPlatform(t, database.Postgres, opts)
	os.MkdirAll(src.storage, 0o755)
	backup := backupOf(t, src, false)
	p := filepath.Join(backup, "db_books_chapter.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"title": "`), []byte(`"title": "Tampered `), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("no title to tamper with")
	}
	if err := os.WriteFile(p, tampered, 0o644); err != nil {
		t.Fatal(err)
	}

	opts.Seed = 8
	filled := filledPlatform(t, database.Postgres, opts)
	os.MkdirAll(filled.storage, 0o755)
	empty := emptyTarget(t, database.Postgres)
	os.MkdirAll(empty.storage, 0o755)
	yes := func(*coordinator.RestorePlan) (bool, error) { return true, nil }
	for _, tt := range []struct {
		name   string
		target platformFixture
		o      coordinator.RestoreOptions
		early  bool
	}{
		{"one transaction", filled, coordinator.RestoreOptions{Source: backup}, false},
		{"one transaction, confirmed", filled, coordinator.RestoreOptions{Source: backup, Confirm: yes}, false},
		{"jobs", empty, coordinator.RestoreOptions{Source: backup, Jobs: 2}, false},
		{"jobs, hashed early", empty, coordinator.RestoreOptions{Source: backup, Jobs: 2}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.early {
				if tt.o.EarlySums = coordinator.StartEarlySums(context.Background(), tt.o); tt.o.EarlySums == nil {
					t.Fatal("no early hashing for a parallel restore")
				}
				defer tt.o.EarlySums.Stop()
			}
			before := state(t, tt.target)
			_, err := restoreNoQueue(t, tt.target, tt.o)
			if err == nil || !strings.Contains(err.Error(), "db_books_chapter.json is corrupt") {
				t.Fatalf("err = %v, want the fixture's checksum to refuse it", err)
			}
			if state(t, tt.target) != before {
				t.Fatal("the tampered restore changed the target")
			}
		})
	}
}

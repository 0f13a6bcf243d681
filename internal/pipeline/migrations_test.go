package pipeline_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// addMigration records a Django migration as applied in a platform database of either engine
// (with an explicit id: the seeded rows did not move PostgreSQL's sequence).
func addMigration(t *testing.T, url, app, name string, more ...string) {
	t.Helper()
	execSQL(t, url, append([]string{
		"INSERT INTO django_migrations (id, app, name, applied) SELECT max(id) + 1, '" + app + "', '" + name + "', '2024-06-01 00:00:00' FROM django_migrations",
	}, more...)...)
}

func readMeta(t *testing.T, dir string) *layout.Metadata {
	t.Helper()
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// A backup records, read in its snapshot, the applied migrations of the apps its models
// belong to (books and accounts), in the order applied, and of no other app.
func TestBackupRecordsMigrations(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			addMigration(t, p.dbURL, "books", "0002_book_subtitle")
			addMigration(t, p.dbURL, "sessions", "0001_initial") // an app no backed-up model is in
			got := readMeta(t, backupOf(t, p, false)).Migrations
			want := map[string][]string{
				"accounts": {"0001_initial", "0002_initial"},
				"books":    {"0001_initial", "0002_book_subtitle"},
			}
			if len(got) != len(want) || !slices.Equal(got["books"], want["books"]) || !slices.Equal(got["accounts"], want["accounts"]) {
				t.Fatalf("recorded migrations %v, want %v", got, want)
			}
		})
	}
}

// A database without django_migrations is backed up with no record and a warning saying so.
func TestBackupWithoutMigrationsTable(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			execSQL(t, p.dbURL, "DROP TABLE django_migrations")
			meta := readMeta(t, backupOf(t, p, false))
			if meta.Migrations != nil {
				t.Fatalf("recorded %v from a database without django_migrations", meta.Migrations)
			}
			if !slices.ContainsFunc(meta.Warnings, func(w string) bool { return strings.Contains(w, "django_migrations") }) {
				t.Fatalf("no warning about django_migrations: %v", meta.Warnings)
			}
		})
	}
}

// A target that lacks a migration the backup's database had is refused before anything
// changes (exit 2), naming it and saying to run migrate: a whole restore, a dry run and a
// restore of selected rows alike.
func TestRestoreRefusesTargetBehindBackup(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			backup := backupOf(t, filledPlatform(t, engine, demo.DefaultOptions()), false)
			other := demo.DefaultOptions()
			other.Seed = 99
			target := filledPlatform(t, engine, other)
			execSQL(t, target.dbURL, "DELETE FROM django_migrations WHERE app = 'accounts' AND name = '0002_initial'")
			before := state(t, target)
			for _, o := range []coordinator.RestoreOptions{
				{Source: backup},
				{Source: backup, DryRun: true},
				{Source: backup, Merge: true},
				{Source: backup, Select: &coordinator.SelectOptions{Books: []string{"2"}}},
			} {
				_, err := restoreInto(t, target, o)
				if err == nil || outcome.Of(err).Code != outcome.CodeUsage ||
					!strings.Contains(err.Error(), "accounts.0002_initial") || !strings.Contains(err.Error(), "manage.py migrate") {
					t.Fatalf("dry run %v, select %v: err = %v (exit %d), want a refusal naming accounts.0002_initial", o.DryRun, o.Select != nil, err, outcome.Of(err).Code)
				}
				if state(t, target) != before {
					t.Fatal("a refused restore changed the target")
				}
			}
		})
	}
}

// A target ahead of the backup (a newer migration that added a nullable column) restores,
// with a warning naming the newer migration; the dry run shows the comparison.
func TestRestoreIntoTargetAheadOfBackup(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			backup := backupOf(t, filledPlatform(t, engine, demo.DefaultOptions()), false)
			target := emptyTarget(t, engine)
			addMigration(t, target.dbURL, "books", "0002_book_subtitle", "ALTER TABLE books_book ADD COLUMN subtitle varchar(200) NULL")
			rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup, DryRun: true})
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			mc := rep.Plan.Migrations
			if mc == nil || !mc.Recorded || !mc.Compared || len(mc.Missing) != 0 || !slices.Equal(mc.Newer, []string{"books.0002_book_subtitle"}) {
				t.Fatalf("dry run's comparison: %+v", mc)
			}
			rep, err = restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rep.Plan.Warnings, func(w string) bool { return strings.Contains(w, "books.0002_book_subtitle") }) {
				t.Fatalf("no warning names the newer migration: %v", rep.Plan.Warnings)
			}
			compareWithBackup(t, backup, target)
		})
	}
}

// A target ahead whose newer migration removed a column the backup's rows fill is refused by
// the column check, naming the column.
func TestRestoreTargetAheadWithoutAColumn(t *testing.T) {
	backup := backupOf(t, filledPlatform(t, database.SQLite, demo.DefaultOptions()), false)
	target := emptyTarget(t, database.SQLite)
	addMigration(t, target.dbURL, "books", "0002_remove_book_description", "ALTER TABLE books_book DROP COLUMN description")
	_, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
	if err == nil || !strings.Contains(err.Error(), "books_book is missing column description") {
		t.Fatalf("err = %v, want the column check to refuse", err)
	}
	if n := queryText(t, target.dbURL, "SELECT count(*) FROM books_chapter")[0]; n != "0" {
		t.Fatalf("a refused restore wrote %s chapters", n)
	}
}

// A backup without the record (written by an older webnovel-backup, or by the Python
// command) gets the column check only: it restores into a target that lacks a migration.
func TestRestoreWithoutMigrationRecord(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	recorded := backupOf(t, p, false)
	older := copyTree(t, recorded)
	meta := readMeta(t, older)
	meta.Migrations = nil
	data, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(older, layout.FileMetadata), data, 0o644); err != nil {
		t.Fatal(err)
	}
	target := emptyTarget(t, database.SQLite)
	execSQL(t, target.dbURL, "DELETE FROM django_migrations WHERE app = 'books'")
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: recorded, DryRun: true}); err == nil || !strings.Contains(err.Error(), "books.0001_initial") {
		t.Fatalf("the backup with the record: err = %v, want a refusal", err)
	}
	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: older})
	if err != nil {
		t.Fatalf("older backup: %v", err)
	}
	if mc := rep.Plan.Migrations; mc == nil || mc.Recorded || mc.Compared {
		t.Fatalf("comparison of a backup without the record: %+v", mc)
	}
	compareWithBackup(t, older, target)

	python := pythonBackup(t)
	target = emptyTarget(t, database.SQLite)
	execSQL(t, target.dbURL, "DELETE FROM django_migrations WHERE app = 'books'")
	if rep, err = restoreInto(t, target, coordinator.RestoreOptions{Source: python}); err != nil {
		t.Fatalf("Python backup: %v", err)
	}
	if mc := rep.Plan.Migrations; mc == nil || mc.Recorded {
		t.Fatalf("comparison of a Python backup: %+v", mc)
	}
}

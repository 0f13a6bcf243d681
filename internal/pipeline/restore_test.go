package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/roundtrip"
	"github.com/webnovel/webnovel-backup/storage"
)

// emptyTarget makes an empty platform database of an engine and a storage folder.
func emptyTarget(t *testing.T, engine string) platformFixture {
	t.Helper()
	dir := t.TempDir()
	url := "sqlite:///" + filepath.Join(dir, "target.sqlite3")
	if engine == database.Postgres {
		url = pgtest.URL(t)
	}
	db, err := database.Create(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	return platformFixture{dbURL: url, storage: filepath.Join(dir, "media")}
}

func filledPlatform(t *testing.T, engine string, opts demo.Options) platformFixture {
	t.Helper()
	if engine == database.SQLite {
		return sqlitePlatform(t, opts)
	}
	p := platformFixture{dbURL: pgtest.URL(t), storage: filepath.Join(t.TempDir(), "media")}
	sum, err := demo.Fill(context.Background(), p.dbURL, p.storage, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.summary = sum
	return p
}

func backupOf(t *testing.T, p platformFixture, compress bool) string {
	t.Helper()
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: compress, ChunkRows: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Path
}

func restoreInto(t *testing.T, target platformFixture, o coordinator.RestoreOptions) (*coordinator.RestoreReport, error) {
	t.Helper()
	s := startSession(t, target, 2, queue.Config{})
	o.DatabaseURL, o.StorageURL, o.TempDir = target.dbURL, target.storage, t.TempDir()
	return s.Coordinator.Restore(context.Background(), o)
}

// compareWithBackup asserts that target holds exactly what the backup folder holds.
func compareWithBackup(t *testing.T, dir string, target platformFixture) {
	t.Helper()
	rep := &roundtrip.Report{}
	if err := roundtrip.CompareDatabase(context.Background(), rep, dir, target.dbURL, "restored database"); err != nil {
		t.Fatal(err)
	}
	if err := roundtrip.CompareFiles(context.Background(), rep, filepath.Join(dir, layout.FilesDir), target.storage, "restored storage"); err != nil {
		t.Fatal(err)
	}
	if len(rep.Differences) > 0 {
		t.Fatalf("%d differences, e.g.:\n%s", len(rep.Differences), strings.Join(rep.Differences[:min(10, len(rep.Differences))], "\n"))
	}
}

func TestRestoreRoundTrips(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		compress bool
	}{
		{"sqlite to sqlite, folder", database.SQLite, database.SQLite, false},
		{"sqlite to sqlite, tar.gz", database.SQLite, database.SQLite, true},
		{"postgres to postgres, folder", database.Postgres, database.Postgres, false},
		{"sqlite to postgres", database.SQLite, database.Postgres, false},
		{"postgres to sqlite, tar.gz", database.Postgres, database.SQLite, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filledPlatform(t, tt.from, demo.DefaultOptions())
			backup := backupOf(t, src, tt.compress)
			target := emptyTarget(t, tt.to)
			// A file the platform held before the restore is never swept, though it is named
			// like the tool's temporary files: only what this restore's workers left is.
			older := filepath.Join(target.storage, "content", "2020", storage.TempPrefix+"0123456789abcdef")
			if tt.name == "sqlite to sqlite, folder" {
				os.MkdirAll(filepath.Dir(older), 0o755)
				os.WriteFile(older, []byte("an upload"), 0o644)
				time.Sleep(1100 * time.Millisecond) // past the sweep's second of slack
			}
			rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "sqlite to sqlite, folder" {
				if b, err := os.ReadFile(older); err != nil || string(b) != "an upload" {
					t.Fatalf("the restore removed or changed the platform's %s: %v", older, err)
				}
			}
			if len(rep.Loaded) != 10 || rep.Files == 0 || rep.Failed != 0 {
				t.Fatalf("loaded %d models, %d files, %d failed", len(rep.Loaded), rep.Files, rep.Failed)
			}
			dir := backup
			if tt.compress {
				dir = t.TempDir()
				f, _ := os.Open(backup)
				defer f.Close()
				top, err := extract(f, dir)
				if err != nil {
					t.Fatal(err)
				}
				dir = filepath.Join(dir, top)
			}
			compareWithBackup(t, dir, target)
			// Sequences are past the restored ids: a new row gets a fresh id.
			db, err := database.Open(context.Background(), target.dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			n, err := db.BulkInsert(context.Background(), "books_language", []string{"code", "name"}, oneRow([]any{"new", "New"}))
			if err != nil || n != 1 {
				t.Fatalf("insert after restore: %d %v", n, err)
			}
		})
	}
}

func oneRow(row []any) func() ([]any, bool) {
	done := false
	return func() ([]any, bool) {
		if done {
			return nil, false
		}
		done = true
		return row, true
	}
}

// state is what a refused restore must leave untouched: every model's export and every file.
func state(t *testing.T, p platformFixture) string {
	t.Helper()
	db, err := database.Open(context.Background(), p.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b bytes.Buffer
	for _, m := range platform.Default.Models {
		if _, err := db.Export(context.Background(), "", m, database.Range{}, fixtureLines, &b); err != nil {
			t.Fatal(err)
		}
	}
	files := treeFiles(t, p.storage)
	for _, k := range slices.Sorted(maps.Keys(files)) {
		b.WriteString(k)
		b.Write(files[k])
	}
	return b.String()
}

// backupAndOtherTarget is a backup of a demo platform, another platform (other rows, other
// files) to restore it into, and that target's state before.
func backupAndOtherTarget(t *testing.T) (backup string, target platformFixture, before string) {
	t.Helper()
	backup = backupOf(t, sqlitePlatform(t, demo.DefaultOptions()), false)
	other := demo.DefaultOptions()
	other.Seed = 99
	target = sqlitePlatform(t, other)
	return backup, target, state(t, target)
}

// TestRestoreRefusalsChangeNothing: every check happens before anything changes.
func TestRestoreRefusalsChangeNothing(t *testing.T) {
	clean, target, before := backupAndOtherTarget(t)

	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the backup path to restore
		want   string
	}{
		{"corrupt fixture byte", func(t *testing.T, dir string) string {
			flipByte(t, filepath.Join(dir, "db_books_chapter.json"))
			return dir
		}, "db_books_chapter.json is corrupt"},
		{"corrupt file byte", func(t *testing.T, dir string) string {
			var victim string
			for k := range treeFiles(t, filepath.Join(dir, "files")) {
				if strings.HasPrefix(k, "content/") {
					victim = k
				}
			}
			flipByte(t, filepath.Join(dir, "files", victim))
			return dir
		}, "is corrupt"},
		{"missing metadata", func(t *testing.T, dir string) string {
			os.Remove(filepath.Join(dir, layout.FileMetadata))
			return dir
		}, "not a complete backup"},
		{"file not in SHA256SUMS", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "files", "content", "intruder.json"), []byte("{}"), 0o644)
			return dir
		}, "files/content/intruder.json is not listed in SHA256SUMS"},
		{"dangling reference (rolled back)", func(t *testing.T, dir string) string {
			replaceInFixture(t, dir, "db_books_chapter.json", `"book": 1,`, `"book": 999,`)
			return dir
		}, "books"},
		{"hostile archive entry", func(t *testing.T, dir string) string {
			return hostileArchive(t, dir)
		}, "unsafe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, clean)
			path := tt.damage(t, dir)
			_, err := restoreInto(t, target, coordinator.RestoreOptions{Source: path})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if state(t, target) != before {
				t.Fatal("a refused restore changed the target")
			}
		})
	}

	t.Run("missing table", func(t *testing.T) {
		broken := emptyTarget(t, database.SQLite)
		dropTable(t, broken.dbURL, "books_bookfile")
		_, err := restoreInto(t, broken, coordinator.RestoreOptions{Source: clean})
		if err == nil || !strings.Contains(err.Error(), "books_bookfile") || !strings.Contains(err.Error(), "migrate") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("confirmation refused", func(t *testing.T) {
		asked := false
		_, err := restoreInto(t, target, coordinator.RestoreOptions{Source: clean, Confirm: func(p *coordinator.RestorePlan) (bool, error) {
			asked = len(p.Models) == 10 && p.Files > 0
			return false, nil
		}})
		if !errors.Is(err, coordinator.ErrRefused) || !asked {
			t.Fatalf("err = %v, asked with a full plan: %v", err, asked)
		}
		if state(t, target) != before {
			t.Fatal("a refused restore changed the target")
		}
	})
	t.Run("dry run", func(t *testing.T) {
		rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: clean, DryRun: true})
		if err != nil || !rep.DryRun || len(rep.Plan.Models) != 10 {
			t.Fatalf("dry run: %v %+v", err, rep)
		}
		if state(t, target) != before {
			t.Fatal("a dry run changed the target")
		}
	})
}

// A file that cannot be written is reported; the rest are restored and the run is partial.
func TestRestorePartialFiles(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.SQLite)
	var victim string
	for k := range treeFiles(t, filepath.Join(backup, "files")) {
		if strings.HasPrefix(k, "content/") {
			victim = k
			break
		}
	}
	// A folder where the file should go: the rename onto it fails.
	if err := os.MkdirAll(filepath.Join(target.storage, victim, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
	var partial *coordinator.PartialError
	if !errors.As(err, &partial) || rep.Failed != 1 || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], victim) {
		t.Fatalf("err = %v, report %+v", err, rep)
	}
	if rep.Files != int64(src.summary.Files)-1 {
		t.Fatalf("restored %d files, want all %d but one", rep.Files, src.summary.Files)
	}
}

// refuseWrites makes dir a folder nothing can be created in: immutable as root (where chmod
// does not stop anyone), read-only otherwise. It is undone when the test ends.
func refuseWrites(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("chattr +i (needed to refuse root a folder): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

// A file that cannot be replaced is one listed failure, with its path and cause; every other
// file and the database are restored, and the run is partial (exit 3), its message naming it.
func TestRestoreUnreplaceableFileIsPartial(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.SQLite)
	var victim string
	for _, k := range slices.Sorted(maps.Keys(treeFiles(t, filepath.Join(backup, "files")))) {
		if strings.HasPrefix(k, "content/") {
			victim = k
			break
		}
	}
	blocked := filepath.Join(target.storage, filepath.Dir(victim))
	if err := os.MkdirAll(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	inBlocked := 0
	for k := range treeFiles(t, filepath.Join(backup, "files")) {
		if filepath.Dir(k) == filepath.Dir(victim) {
			inBlocked++
		}
	}
	refuseWrites(t, blocked)

	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
	if got := outcome.Of(err); got.Code != outcome.CodePartial {
		t.Fatalf("exit code %d (err %v), want %d (partial)", got.Code, err, outcome.CodePartial)
	}
	if !strings.HasPrefix(err.Error(), "restore partial: ") || !strings.Contains(err.Error(), victim) {
		t.Fatalf("message %q: want the partial prefix and the path %s", err, victim)
	}
	if rep.Failed != int64(inBlocked) || len(rep.Failures) != inBlocked {
		t.Fatalf("%d failed, failures %q; want the %d files of %s", rep.Failed, rep.Failures, inBlocked, filepath.Dir(victim))
	}
	for _, f := range rep.Failures {
		if !strings.HasPrefix(f, filepath.Dir(victim)+"/") || !strings.Contains(f, "not permitted") && !strings.Contains(f, "permission denied") {
			t.Fatalf("failure %q does not name its path and cause", f)
		}
	}
	if rep.Files != int64(src.summary.Files-inBlocked) {
		t.Fatalf("restored %d files, want all %d but the %d refused", rep.Files, src.summary.Files, inBlocked)
	}
	if len(rep.Loaded) == 0 {
		t.Fatal("the database was not restored")
	}
}

// --models narrows the database only: a restore that would write the whole storage as well
// says so in its plan, and with --skip-files it does not touch the storage.
func TestRestoreModelsSaysFilesAreRestored(t *testing.T) {
	src := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.SQLite)
	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup, Models: []string{"books.language"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(rep.Plan.Warnings, "--models", "storage files", "--skip-files") {
		t.Fatalf("plan warnings %q: want one saying every storage file is restored too", rep.Plan.Warnings)
	}
	rep, err = restoreInto(t, target, coordinator.RestoreOptions{Source: backup, Models: []string{"books.language"}, SkipFiles: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if hasWarning(rep.Plan.Warnings, "--models") {
		t.Fatalf("plan warnings %q: --skip-files writes no file", rep.Plan.Warnings)
	}
}

// A JSONField that cannot be NULL may hold JSON's null, which the fixture writes as null, as
// dumpdata does: a restore puts JSON's null back (it was refused as "not nullable"), on both
// engines, from either.
func TestRestoreJSONNullInNotNullField(t *testing.T) {
	for _, tt := range []struct{ from, to string }{{database.SQLite, database.Postgres}, {database.Postgres, database.SQLite}} {
		t.Run(tt.from+" to "+tt.to, func(t *testing.T) {
			src := filledPlatform(t, tt.from, demo.DefaultOptions())
			null := "'null'"
			if tt.from == database.Postgres {
				null = "'null'::jsonb"
			}
			execSQL(t, src.dbURL, "UPDATE books_book SET metadata = "+null+" WHERE id = 1")
			backup := backupOf(t, src, false)
			target := emptyTarget(t, tt.to)
			if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup}); err != nil {
				t.Fatal(err)
			}
			got := queryText(t, target.dbURL, "SELECT CASE WHEN metadata IS NULL THEN 'SQL NULL' ELSE CAST(metadata AS text) END FROM books_book WHERE id = 1")
			if len(got) != 1 || got[0] != "null" {
				t.Fatalf("restored metadata: %q, want JSON null (not SQL NULL)", got)
			}
		})
	}
}

// A stored value the export cannot write fails the backup at its first attempt, naming the
// row and the field (the snapshot holds it at every attempt: retrying only delays the
// failure); a JSONField number JSON has no form for is written as dumpdata writes it, with a
// warning naming it, with or without the storage's files.
func TestBackupUnwritableValues(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backup := func(skipFiles bool) (*coordinator.BackupReport, error) {
		return s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), SkipFiles: skipFiles})
	}
	execSQL(t, p.dbURL, `UPDATE books_book SET metadata = '{"n": 1e400}' WHERE id = 1`)
	for _, skipFiles := range []bool{false, true} {
		rep, err := backup(skipFiles)
		if err != nil {
			t.Fatalf("skip files %v: %v", skipFiles, err)
		}
		if !hasWarning(rep.Warnings, "books.book pk 1 field metadata", "Infinity") {
			t.Errorf("skip files %v: no warning names books.book pk 1 field metadata: %q", skipFiles, rep.Warnings)
		}
	}
	execSQL(t, p.dbURL, `UPDATE books_book SET metadata = '{}', created_at = 'not a date' WHERE id = 1`)
	_, err := backup(false)
	if err == nil || !strings.Contains(err.Error(), "pk 1 field created_at") || !strings.Contains(err.Error(), "attempt 1 ") {
		t.Fatalf("backup of an unwritable date: %v; want it failed at attempt 1 naming pk 1 field created_at", err)
	}
	// A date of a day its month does not have is no date either (a restore refuses it).
	pk := queryText(t, p.dbURL, "SELECT min(id) FROM accounts_translationassignment")[0]
	execSQL(t, p.dbURL, `UPDATE books_book SET created_at = '2024-01-01 00:00:00' WHERE id = 1`,
		`UPDATE accounts_translationassignment SET due_date = '2024-02-30' WHERE id = `+pk)
	_, err = backup(true)
	if err == nil || !strings.Contains(err.Error(), "pk "+pk+" field due_date") || !strings.Contains(err.Error(), "2024-02-30") {
		t.Fatalf("backup of February 30: %v; want it failed naming pk %s field due_date", err, pk)
	}
}

// Users' memberships of Django's auth groups name rows no backup holds (only the platform's
// own models are backed up, as its commands did): a backup of users in groups says so, with
// the count; one without memberships says nothing.
func TestBackupNamesUnheldGroups(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backup := func() *coordinator.BackupReport {
		t.Helper()
		rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), SkipFiles: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := backup(); hasWarning(rep.Warnings, "auth.group") {
		t.Fatalf("no user is in a group, yet: %q", rep.Warnings)
	}
	execSQL(t, p.dbURL, "INSERT INTO auth_group (id, name) VALUES (1, 'editors')",
		"INSERT INTO accounts_user_groups (user_id, group_id) SELECT id, 1 FROM accounts_user ORDER BY id LIMIT 2")
	if rep := backup(); !hasWarning(rep.Warnings, "accounts.user field groups holds 2 references to auth.group") {
		t.Fatalf("warnings %q: want one naming the 2 memberships of auth.group", rep.Warnings)
	}
}

// Users' permissions are auth permission ids, which follow the order migrations ran in: the
// backup records which permission each id was, and a restore into a target that gives an id
// another permission is refused before anything changes, naming it; into one that agrees, it
// restores.
func TestRestoreChecksPermissionIDs(t *testing.T) {
	src := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	meta := readMetadata(t, backup)
	if len(meta.Permissions) < 2 {
		t.Fatalf("metadata permissions %v: the demo's users should name at least two", meta.Permissions)
	}
	ids := slices.Sorted(maps.Keys(meta.Permissions))
	target := emptyTarget(t, database.SQLite)
	// Another migration order: two of the ids name each other's permission.
	execSQL(t, target.dbURL,
		"UPDATE auth_permission SET id = -1 WHERE id = "+ids[0],
		"UPDATE auth_permission SET id = "+ids[0]+" WHERE id = "+ids[1],
		"UPDATE auth_permission SET id = "+ids[1]+" WHERE id = -1")
	before := dumpAll(t, target.dbURL)
	_, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
	if outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), "id "+ids[0]+" is ") || !strings.Contains(fmt.Sprint(err), meta.Permissions[ids[0]]+" in the backup") {
		t.Fatalf("restore into a target with other permission ids: exit %d, %v; want refused naming id %s", outcome.Of(err).Code, err, ids[0])
	}
	assertSameRows(t, before, dumpAll(t, target.dbURL))

	// A selective restore of a user who holds one of those permissions is refused the same
	// way; into a target that agrees, it goes through.
	users := queryText(t, src.dbURL, "SELECT user_id FROM accounts_user_user_permissions WHERE permission_id = "+ids[0]+" ORDER BY user_id")
	if len(users) == 0 {
		t.Fatalf("no user of the demo holds permission %s", ids[0])
	}
	selectUser := &coordinator.SelectOptions{Rows: []string{"accounts.user=" + users[0]}}
	_, err = restoreInto(t, target, coordinator.RestoreOptions{Source: backup, Select: selectUser})
	if outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), "id "+ids[0]+" is ") {
		t.Fatalf("selective restore of user %s into a target with other permission ids: exit %d, %v; want refused naming id %s", users[0], outcome.Of(err).Code, err, ids[0])
	}
	assertSameRows(t, before, dumpAll(t, target.dbURL))
	if _, err := restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: backup, Select: selectUser}); err != nil {
		t.Fatalf("selective restore of user %s into a target with the same permission ids: %v", users[0], err)
	}

	// A target that lacks one of the ids is refused the same way.
	lacking := emptyTarget(t, database.SQLite)
	execSQL(t, lacking.dbURL, "DELETE FROM auth_permission WHERE id = "+ids[1])
	_, err = restoreInto(t, lacking, coordinator.RestoreOptions{Source: backup})
	if outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), "id "+ids[1]+" ("+meta.Permissions[ids[1]]+") is not in the target") {
		t.Fatalf("restore into a target lacking permission %s: exit %d, %v", ids[1], outcome.Of(err).Code, err)
	}

	agreeing := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, agreeing, coordinator.RestoreOptions{Source: backup}); err != nil {
		t.Fatalf("restore into a target with the same permission ids: %v", err)
	}
}

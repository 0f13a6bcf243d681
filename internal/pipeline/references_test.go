package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/verify"
)

// brokenRef is a row whose file the storage lost.
type brokenRef struct{ model, pk, field, path string }

// loseFiles removes from the storage the file of the first row of each (table, field) whose
// field names one, and returns the rows that named them (every row naming a removed file).
func loseFiles(t *testing.T, p platformFixture) []brokenRef {
	t.Helper()
	var lost []brokenRef
	for _, c := range []struct{ model, table, field string }{
		{"books.book", "books_book", "cover_image"},
		{"books.chaptermedia", "books_chaptermedia", "file"},
	} {
		key := queryText(t, p.dbURL, fmt.Sprintf("SELECT %s FROM %s WHERE %s <> '' ORDER BY id LIMIT 1", c.field, c.table, c.field))[0]
		removeStorageFile(t, p.storage, key)
		for _, pk := range queryText(t, p.dbURL, fmt.Sprintf("SELECT id FROM %s WHERE %s = '%s' ORDER BY id", c.table, c.field, key)) {
			lost = append(lost, brokenRef{c.model, pk, c.field, key})
		}
	}
	return lost
}

// assertMissing checks that refs lists exactly the lost references and the warnings name
// each by model, pk, field and path.
func assertMissing(t *testing.T, what string, refs *layout.References, warnings []string, lost []brokenRef) {
	t.Helper()
	if refs == nil || !refs.Checked || refs.Refs == 0 {
		t.Fatalf("%s: references %+v, want a check", what, refs)
	}
	if refs.Missing != int64(len(lost)) || len(refs.MissingList) != len(lost) {
		t.Fatalf("%s: %d missing (%+v), want %d: %+v", what, refs.Missing, refs.MissingList, len(lost), lost)
	}
	for _, l := range lost {
		found := false
		for _, m := range refs.MissingList {
			found = found || (m == layout.MissingReference{Model: l.model, PK: l.pk, Field: l.field, Path: l.path})
		}
		if !found {
			t.Errorf("%s: %+v not in the missing list %+v", what, l, refs.MissingList)
		}
		if !hasWarning(warnings, l.model+" pk "+l.pk, "field "+l.field, l.path) {
			t.Errorf("%s: no warning names %+v: %q", what, l, warnings)
		}
	}
}

func backupWith(t *testing.T, p platformFixture, o coordinator.BackupOptions) *coordinator.BackupReport {
	t.Helper()
	s := startSession(t, p, 2, queue.Config{})
	o.DatabaseURL, o.StorageURL, o.BackupDir, o.ChunkRows = p.dbURL, p.storage, t.TempDir(), 50
	rep, err := s.Coordinator.Backup(context.Background(), o)
	if err != nil {
		t.Fatalf("backup of a platform with broken references: %v (a broken platform is not a broken backup)", err)
	}
	return rep
}

// doctorReferences runs doctor --references against the live platform.
func doctorReferences(t *testing.T, p platformFixture) preflight.Report {
	t.Helper()
	return preflight.Run(context.Background(), preflight.Config{DatabaseURL: p.dbURL, StorageURL: p.storage, References: true, Timeout: 10 * time.Second})
}

func doctorCheck(t *testing.T, rep preflight.Report) preflight.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == preflight.CheckReferences {
			return c
		}
	}
	t.Fatalf("doctor --references made no references check: %+v", rep.Checks)
	return preflight.Check{}
}

// A row naming a file the storage lost is a warning of the backup, naming the model, pk,
// field and path, in its metadata and report; the backup succeeds. verify finds the same,
// and doctor --references on the live platform. A clean platform gives no such warning.
func TestBackupCrossChecksReferences(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			doc := doctorReferences(t, p)
			if ch := doctorCheck(t, doc); ch.Status != preflight.StatusOK || doc.References == nil || doc.References.Missing != 0 || doc.References.Refs == 0 {
				t.Fatalf("doctor --references on a clean platform: %+v %+v", ch, doc.References)
			}
			clean := backupWith(t, p, coordinator.BackupOptions{})
			if r := clean.References; r == nil || !r.Checked || r.Refs == 0 || r.Missing != 0 {
				t.Fatalf("clean platform: references %+v, want every reference checked and found", r)
			}
			if hasWarning(clean.Warnings, "storage does not hold") {
				t.Fatalf("clean platform warned: %q", clean.Warnings)
			}
			lost := loseFiles(t, p)
			doc = doctorReferences(t, p)
			ch := doctorCheck(t, doc)
			if ch.Status != preflight.StatusFail || doc.OK {
				t.Fatalf("doctor --references on a platform that lost files: %+v", ch)
			}
			assertMissing(t, "doctor --references", doc.References, ch.Warnings, lost)
			rep := backupWith(t, p, coordinator.BackupOptions{})
			assertMissing(t, "report", rep.References, rep.Warnings, lost)
			if rep.References.Refs != clean.References.Refs {
				t.Errorf("refs %d, the clean backup's %d", rep.References.Refs, clean.References.Refs)
			}
			meta, err := layout.ReadMetadata(rep.Path)
			if err != nil {
				t.Fatal(err)
			}
			assertMissing(t, "metadata", meta.References, meta.Warnings, lost)

			vr, err := verify.Verify(context.Background(), rep.Path, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !vr.OK {
				t.Fatalf("verify: a broken platform made the backup fail: %q", vr.Problems)
			}
			assertMissing(t, "verify", vr.References, vr.Warnings, lost)
			vc, err := verify.Verify(context.Background(), clean.Path, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r := vc.References; !vc.OK || r == nil || !r.Checked || r.Missing != 0 || r.Refs != clean.References.Refs {
				t.Fatalf("verify of the clean backup: ok %v references %+v", vc.OK, r)
			}
		})
	}
}

// The check works on an encrypted backup (the coordinator cannot read its fixtures); verify
// repeats it with the key and says it cannot without.
func TestEncryptedBackupCrossChecksReferences(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	lost := loseFiles(t, p)
	key := newAgeKey(t)
	rep := backupWith(t, p, coordinator.BackupOptions{Recipients: key.recipients(t)})
	assertMissing(t, "report", rep.References, rep.Warnings, lost)
	meta, err := layout.ReadMetadata(rep.Path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Encryption == nil {
		t.Fatal("the backup is not encrypted")
	}
	assertMissing(t, "metadata", meta.References, meta.Warnings, lost)

	vr, err := verify.Verify(context.Background(), rep.Path, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := vr.References; r == nil || r.Checked || !strings.Contains(r.Reason, "key") {
		t.Fatalf("verify without the key: references %+v, want not checked for want of the key", r)
	}
	vr, err = verify.Verify(context.Background(), rep.Path, verify.Options{Decrypt: true, Identities: key.identities(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK {
		t.Fatalf("verify --decrypt: %q", vr.Problems)
	}
	assertMissing(t, "verify --decrypt", vr.References, vr.Warnings, lost)
}

// --skip-files has nothing to check rows against, and says so.
func TestBackupSkipFilesSaysReferencesUnchecked(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	loseFiles(t, p)
	rep := backupWith(t, p, coordinator.BackupOptions{SkipFiles: true})
	if r := rep.References; r == nil || r.Checked || !strings.Contains(r.Reason, "--skip-files") {
		t.Fatalf("references %+v, want not checked naming --skip-files", r)
	}
	if hasWarning(rep.Warnings, "storage does not hold") {
		t.Fatalf("warned about files the backup does not hold: %q", rep.Warnings)
	}
}

// An archive's copy tasks record no storage key per file: the check takes it from the path,
// and finds exactly the lost files; verify of the archive too.
func TestCompressedBackupCrossChecksReferences(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	lost := loseFiles(t, p)
	rep := backupWith(t, p, coordinator.BackupOptions{Compress: true})
	assertMissing(t, "report", rep.References, rep.Warnings, lost)
	vr, err := verify.Verify(context.Background(), rep.Path, verify.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK {
		t.Fatalf("verify: %q", vr.Problems)
	}
	assertMissing(t, "verify", vr.References, vr.Warnings, lost)
}

package layout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var publishTime = time.Date(2024, 12, 1, 14, 30, 22, 0, time.Local)

// newFilledStaging returns a staging folder holding a fixture and the metadata.
func newFilledStaging(t *testing.T, backupDir, runID string) *Staging {
	t.Helper()
	s, err := NewStaging(backupDir, runID)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(s.Path(), "db_books_book.json"), "[\n]\n"+runID)
	if err := WriteMetadata(s.Path(), &Metadata{BackupTimestamp: publishTime, RunID: runID, Status: StatusComplete}); err != nil {
		t.Fatal(err)
	}
	return s
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestStagingIsHidden(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStaging(filepath.Join(dir, "backups"), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(s.Path())
	if !strings.HasPrefix(base, ".") || IsBackupName(base) || !IsStagingName(base) {
		t.Errorf("staging name %q is not hidden or looks like a backup", base)
	}
	if fi, err := os.Stat(s.Path()); err != nil || !fi.IsDir() {
		t.Fatalf("staging folder: %v", err)
	}
	// Reopening the same run reuses the folder.
	writeTestFile(t, filepath.Join(s.Path(), "x"), "x")
	s2, err := NewStaging(filepath.Join(dir, "backups"), "run-1")
	if err != nil || s2.Path() != s.Path() {
		t.Fatalf("reopen staging: %v", err)
	}
	for _, bad := range []string{"", "a/b", "..", "a b", strings.Repeat("x", 129)} {
		if _, err := NewStaging(dir, bad); err == nil {
			t.Errorf("NewStaging run id %q: no error", bad)
		}
	}
}

func TestStagingAbort(t *testing.T) {
	dir := t.TempDir()
	s := newFilledStaging(t, dir, "run1")
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("after Abort, backup dir holds %v", got)
	}
	if _, err := s.PublishDir(publishTime); err == nil {
		t.Error("PublishDir after Abort: no error")
	}
}

func TestPublishDir(t *testing.T) {
	dir := t.TempDir()
	s := newFilledStaging(t, dir, "run1")
	final, err := s.PublishDir(publishTime)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "backup_20241201_143022"); final != want {
		t.Errorf("final = %s, want %s", final, want)
	}
	if got := listDir(t, dir); !equalStrings(got, []string{"backup_20241201_143022"}) {
		t.Errorf("backup dir holds %v", got)
	}
	if got := listDir(t, final); !equalStrings(got, []string{"backup_metadata.json", "db_books_book.json"}) {
		t.Errorf("backup holds %v", got)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(final); err != nil {
		t.Errorf("Abort after publish removed the backup: %v", err)
	}
}

func TestPublishDirRefusesIncomplete(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStaging(dir, "run1")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(s.Path(), "db_books_book.json"), "[]")
	if _, err := s.PublishDir(publishTime); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("PublishDir without metadata: %v", err)
	}
	if got := listDir(t, dir); !equalStrings(got, []string{".wnb-staging-run1", ".wnb-staging-run1" + OwnerSuffix}) {
		t.Errorf("backup dir holds %v", got)
	}
}

// TestPublishDirSameSecond publishes runs started in the same second, at
// once: each gets its own name and no backup is replaced.
func TestPublishDirSameSecond(t *testing.T) {
	dir := t.TempDir()
	// An archive of the first name already exists: folders skip it too.
	writeTestFile(t, filepath.Join(dir, "backup_20241201_143022.tar.gz"), "old archive")
	const n = 6
	stagings := make([]*Staging, n)
	for i := range stagings {
		stagings[i] = newFilledStaging(t, dir, fmt.Sprintf("run%d", i))
	}
	finals := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range stagings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			finals[i], errs[i] = s.PublishDir(publishTime)
		}()
	}
	wg.Wait()
	want := []string{"backup_20241201_143022-2", "backup_20241201_143022-3", "backup_20241201_143022-4",
		"backup_20241201_143022-5", "backup_20241201_143022-6", "backup_20241201_143022-7",
		"backup_20241201_143022.tar.gz"}
	if got := listDir(t, dir); !equalStrings(got, want) {
		t.Errorf("backup dir holds %v, want %v", got, want)
	}
	for i := range stagings {
		if errs[i] != nil {
			t.Fatalf("run%d: %v", i, errs[i])
		}
		// Each backup holds its own run's files.
		data, err := os.ReadFile(filepath.Join(finals[i], "db_books_book.json"))
		if err != nil || !strings.HasSuffix(string(data), fmt.Sprintf("run%d", i)) {
			t.Errorf("run%d published %s holding %q (%v)", i, finals[i], data, err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "backup_20241201_143022.tar.gz")); string(data) != "old archive" {
		t.Errorf("existing archive replaced")
	}
}

func TestPublishArchive(t *testing.T) {
	dir := t.TempDir()
	// The plain name is taken by a folder, -2 by an archive.
	if err := os.Mkdir(filepath.Join(dir, "backup_20241201_143022"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "backup_20241201_143022-2.tar.gz"), "old")
	s := newFilledStaging(t, dir, "run1")
	var tops []string
	final, err := s.PublishArchive(publishTime, func(w io.Writer, top string) error {
		tops = append(tops, top)
		_, err := io.WriteString(w, "archive of "+top)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "backup_20241201_143022-3.tar.gz"); final != want {
		t.Errorf("final = %s, want %s", final, want)
	}
	if !equalStrings(tops, []string{"backup_20241201_143022-3"}) {
		t.Errorf("write called with tops %v", tops)
	}
	if data, _ := os.ReadFile(final); string(data) != "archive of backup_20241201_143022-3" {
		t.Errorf("archive holds %q", data)
	}
	// No temporary file and no staging folder remain.
	want := []string{"backup_20241201_143022", "backup_20241201_143022-2.tar.gz", "backup_20241201_143022-3.tar.gz"}
	if got := listDir(t, dir); !equalStrings(got, want) {
		t.Errorf("backup dir holds %v, want %v", got, want)
	}
}

// TestPublishArchiveRace: the chosen name is taken while the archive is
// written; the archive is written again under the next name.
func TestPublishArchiveRace(t *testing.T) {
	dir := t.TempDir()
	s := newFilledStaging(t, dir, "run1")
	calls := 0
	final, err := s.PublishArchive(publishTime, func(w io.Writer, top string) error {
		calls++
		if calls == 1 {
			writeTestFile(t, filepath.Join(dir, top+".tar.gz"), "other run")
			// Partial output of this attempt must not survive into the next.
			_, err := io.WriteString(w, "long partial output that the next attempt truncates")
			return err
		}
		_, err := io.WriteString(w, top)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || filepath.Base(final) != "backup_20241201_143022-2.tar.gz" {
		t.Errorf("calls %d, final %s", calls, final)
	}
	if data, _ := os.ReadFile(final); string(data) != "backup_20241201_143022-2" {
		t.Errorf("archive holds %q", data)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "backup_20241201_143022.tar.gz")); string(data) != "other run" {
		t.Errorf("other run's archive replaced: %q", data)
	}
}

func TestPublishArchiveWriteError(t *testing.T) {
	dir := t.TempDir()
	s := newFilledStaging(t, dir, "run1")
	boom := errors.New("boom")
	_, err := s.PublishArchive(publishTime, func(w io.Writer, top string) error {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1000))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	// Nothing named like a backup, no temporary file; staging kept for Abort.
	if got := listDir(t, dir); !equalStrings(got, []string{".wnb-staging-run1", ".wnb-staging-run1" + OwnerSuffix}) {
		t.Errorf("backup dir holds %v", got)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("after Abort, backup dir holds %v", got)
	}
}

func TestReadWriteMetadata(t *testing.T) {
	dir := t.TempDir()
	m := sampleMetadata()
	if err := WriteMetadata(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunID != m.RunID || len(got.Models) != len(m.Models) {
		t.Errorf("ReadMetadata = %+v", got)
	}
	if _, err := ReadMetadata(t.TempDir()); err == nil {
		t.Error("ReadMetadata of an empty folder: no error")
	}
	if got := listDir(t, dir); !equalStrings(got, []string{FileMetadata}) {
		t.Errorf("WriteMetadata left %v", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

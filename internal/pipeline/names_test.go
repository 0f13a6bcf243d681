package pipeline_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// oddNames are storage files whose names a local file system holds but that are not plain
// text: bytes that are not UTF-8, a backslash, a newline, control characters, '%' (the
// escape character of S3 backups) and a leading '-'.
var oddNames = map[string]string{
	"media/caf\xe9\xff.txt":       "latin-1 name",
	"media/dir\xfe/inner.txt":     "in a folder whose name is not UTF-8",
	"media/back\\slash.txt":       "backslash",
	"media/new\nline.txt":         "newline",
	"media/ctl\x01\r\x7f.txt":     "control characters",
	"media/100%.txt":              "percent",
	"media/%41%zz.txt":            "looks escaped already",
	"-leading-dash.txt":           "leading dash at the top",
	"content/\xc3\x28 mixed é.js": "invalid sequence beside valid UTF-8",
}

// platformWithOddNames is a demo platform whose storage also holds oddNames.
func platformWithOddNames(t *testing.T) platformFixture {
	t.Helper()
	p := sqlitePlatform(t, demo.DefaultOptions())
	for name, content := range oddNames {
		full := filepath.Join(p.storage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o640); err != nil {
			t.Skipf("this file system does not hold the name %q: %v", name, err)
		}
	}
	return p
}

// checkOddNamesRestored asserts that every odd name came back, byte for byte.
func checkOddNamesRestored(t *testing.T, storageDir string) {
	t.Helper()
	for name, want := range oddNames {
		got, err := os.ReadFile(filepath.Join(storageDir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("restored %q: %q, %v; want %q", name, got, err, want)
		}
	}
}

// Item 1: every name a local file system holds backs up and restores to the same bytes,
// to a local backup (names kept as they are, SHA256SUMS checkable by sha256sum -c) and to an
// S3 one (names escaped, recorded in the metadata, unescaped by the restore).
func TestOddFileNamesRoundTrip(t *testing.T) {
	s3 := s3test.Start(t, nil, "backups")
	tests := []struct {
		name     string
		dest     string
		compress bool
	}{
		{"local folder", t.TempDir(), false},
		{"local archive", t.TempDir(), true},
		{"S3 folder", s3.URL("backups", "plain", ""), false},
		{"S3 archive", s3.URL("backups", "packed", ""), true},
	}
	p := platformWithOddNames(t)
	s := startSession(t, p, 2, queue.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: tt.dest, Compress: tt.compress, FilesPerTask: 5,
			})
			if err != nil {
				t.Fatalf("backup: %v", err)
			}
			if len(rep.Warnings) > 0 {
				t.Fatalf("backup warned: %q", rep.Warnings)
			}
			if want := int64(p.summary.Files + len(oddNames)); rep.Files != want {
				t.Fatalf("backed up %d files, want %d", rep.Files, want)
			}
			if !tt.compress && !strings.Contains(tt.dest, "://") {
				sha256sumCheck(t, rep.Path)
				for name, want := range oddNames {
					got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, filepath.FromSlash(name)))
					if err != nil || string(got) != want {
						t.Errorf("files/%q in the backup: %q, %v", name, got, err)
					}
				}
			}
			// A copy into a local folder keeps every name too (its key lists carry where the
			// backup stores each file, which need not be UTF-8).
			cp, err := s.Coordinator.Copy(context.Background(), coordinator.CopyOptions{Backup: rep.Path, Dest: t.TempDir()})
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			for _, from := range []string{rep.Path, cp.Path} {
				target := emptyTarget(t, database.SQLite)
				if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: from}); err != nil {
					t.Fatalf("restore %s: %v", from, err)
				}
				checkOddNamesRestored(t, target.storage)
				if got, want := len(treeFiles(t, target.storage)), p.summary.Files+len(oddNames); got != want {
					t.Fatalf("restored %d files from %s, want %d", got, from, want)
				}
			}
		})
	}
}

// Item 3: symlinks, FIFOs, sockets and devices in the storage are not backed up, never
// followed, and each is a warning naming its path and kind, counted in the metadata; the run
// is still complete.
func TestSpecialFilesAreNamedAndCounted(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	media := filepath.Join(p.storage, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(media, "real.txt")
	if err := os.WriteFile(inside, []byte("real"), 0o644); err != nil {
		t.Fatal(err)
	}
	type special struct {
		name, kind, warning string
		make                func(path string) error
	}
	rows := []special{
		{"media/link-in", "symlink", "skipped symlink media/link-in -> real.txt", func(p string) error { return os.Symlink("real.txt", p) }},
		{"media/link-out", "symlink", "skipped symlink media/link-out -> " + outside + " (outside the storage)", func(p string) error { return os.Symlink(outside, p) }},
		{"media/pipe", "fifo", "skipped FIFO media/pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"media/sock", "socket", "skipped socket media/sock", func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		}},
		{"media/null", "char device", "skipped char device media/null", func(p string) error {
			if os.Geteuid() != 0 {
				return errNeedsRoot
			}
			return syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3) // 1:3, /dev/null
		}},
	}
	want := map[string]int64{}
	var made []special
	for _, r := range rows {
		if err := r.make(filepath.Join(p.storage, filepath.FromSlash(r.name))); err != nil {
			t.Logf("no %s in this test: %v", r.kind, err)
			continue
		}
		want[r.kind]++
		made = append(made, r)
	}
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	for _, r := range made {
		if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.HasPrefix(w, r.warning) }) {
			t.Errorf("no warning %q in %q", r.warning, rep.Warnings)
		}
		if _, err := os.Lstat(filepath.Join(rep.Path, layout.FilesDir, filepath.FromSlash(r.name))); err == nil {
			t.Errorf("%s is in the backup", r.name)
		}
	}
	meta := readMetadata(t, rep.Path)
	if meta.Status != layout.StatusComplete || !mapsEqual(meta.Files.Skipped, want) {
		t.Fatalf("metadata status %q skipped %v, want complete and %v", meta.Status, meta.Files.Skipped, want)
	}
	if !slices.Equal(meta.Warnings, rep.Warnings) {
		t.Fatalf("metadata warnings %q, report %q", meta.Warnings, rep.Warnings)
	}
	if got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, "media", "real.txt")); err != nil || string(got) != "real" {
		t.Fatalf("media/real.txt in the backup: %q, %v", got, err)
	}
}

var errNeedsRoot = os.ErrPermission

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A platform's file whose name only begins like the temporary names this tool gives
// (".wnb-tmp-") is data: backed up, restored, and never swept from the target storage. A file
// under a real temporary name (a write in progress, or one a killed write left) is left out of
// the backup with a warning naming it, and a restore sweeps such leftovers from the storage.
func TestTempNameLookalikesAreData(t *testing.T) {
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 5, NoFiles: true})
	files := map[string]string{
		"notes/.wnb-tmp-draft.txt":            "the operator's draft",
		"notes/a.txt":                         "plain",
		"notes/.wnb-tmp-0123456789abcdef0123": "not hex-only of the right length",
	}
	inFlight := "notes/.wnb-tmp-0123456789abcdef"
	files[inFlight] = "half written"
	for name, content := range files {
		full := filepath.Join(p.storage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	meta := readMetadata(t, rep.Path)
	if meta.Files.Count != 3 || meta.Files.Skipped["temporary file"] != 1 {
		t.Fatalf("files %d, skipped %v: want the 3 data files backed up and the one in flight skipped", meta.Files.Count, meta.Files.Skipped)
	}
	if !hasWarning(rep.Warnings, "skipped temporary file", inFlight) {
		t.Errorf("no warning names %s: %q", inFlight, rep.Warnings)
	}

	target := emptyTarget(t, database.SQLite)
	theirs := filepath.Join(target.storage, "other", ".wnb-tmp-2024-notes.txt")
	leftover := filepath.Join(target.storage, "other", ".wnb-tmp-fedcba9876543210")
	for _, f := range []string{theirs, leftover} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(target.storage, filepath.FromSlash(name)))
		switch {
		case name == inFlight && !os.IsNotExist(err):
			t.Errorf("%s was restored (%v): it was not backed up", name, err)
		case name != inFlight && string(got) != want:
			t.Errorf("restored %s: %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("the restore removed the storage's own %s: %v", theirs, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("a killed write's leftover %s was not swept: %v", leftover, err)
	}
}

// A file whose mode the backup cannot keep as it is (no permissions at all, which a mode of 0
// cannot say apart from "not recorded"; a setuid or sticky bit, which a restore never sets)
// is backed up, and a warning names it and what a restore gives it.
func TestModesNotKeptAreNamed(t *testing.T) {
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 6, NoFiles: true})
	modes := map[string]os.FileMode{"bin/none": 0, "bin/suid": 0o755 | os.ModeSetuid, "bin/plain": 0o640}
	for name, mode := range modes {
		full := filepath.Join(p.storage, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := os.Open(filepath.Join(p.storage, "bin", "none")); err != nil {
		t.Skip("this user cannot read a file without permissions:", err)
	} else {
		f.Close()
	}
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if meta := readMetadata(t, rep.Path); meta.Files.Count != 3 {
		t.Fatalf("%d files backed up, want all 3", meta.Files.Count)
	}
	if !hasWarning(rep.Warnings, "bin/none", "no permissions", "0644") {
		t.Errorf("no warning names bin/none: %q", rep.Warnings)
	}
	if !hasWarning(rep.Warnings, "bin/suid", "setuid", "0755") {
		t.Errorf("no warning names bin/suid: %q", rep.Warnings)
	}
	if hasWarning(rep.Warnings, "bin/plain") {
		t.Errorf("a warning names bin/plain, whose mode is kept: %q", rep.Warnings)
	}
}

// A file dated past 2262 (or before 1678), which a backup cannot record in nanoseconds, is
// named by a warning; a folder backup's copy and the restore still keep its time, and a second
// backup copies it again rather than trust a time it could not compare.
func TestTimesNotRecordedAreNamed(t *testing.T) {
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 6, NoFiles: true})
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	full := filepath.Join(p.storage, "far", "future.txt")
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte("far"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := unix.TimeToTimespec(far) // not os.Chtimes: it goes through UnixNano too
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.UtimesNano(full, []unix.Timespec{ts, ts}); err != nil {
		t.Fatal(err)
	}
	s := startSession(t, p, 2, queue.Config{})
	dir := t.TempDir()
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(rep.Warnings, "far/future.txt", "2300-01-01", "1678 to 2262") {
		t.Errorf("no warning names far/future.txt: %q", rep.Warnings)
	}
	if fi, err := os.Stat(filepath.Join(rep.Path, "files", "far", "future.txt")); err != nil || !fi.ModTime().Equal(far) {
		t.Errorf("the backup's copy: %v, %v; want dated %v", fi.ModTime(), err, far)
	}
	if err := os.Remove(full); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{Source: rep.Path, StorageURL: p.storage, SkipDB: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(full); err != nil || !fi.ModTime().Equal(far) {
		t.Errorf("the restored file: %v, %v; want dated %v", fi.ModTime(), err, far)
	}
	time.Sleep(1100 * time.Millisecond) // backup names are per second
	again, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if meta := readMetadata(t, again.Path); meta.Files.New.Files != 1 {
		t.Errorf("the second backup stored %d files anew, want the far-dated one", meta.Files.New.Files)
	}
}

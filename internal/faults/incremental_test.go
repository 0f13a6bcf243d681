//go:build unix

package faults

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// copyStorage copies a storage folder with its files' modification times.
func copyStorage(t *testing.T, src, dst string) (files int) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
			return err
		}
		files++
		return os.Chtimes(target, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// someFiles returns n storage keys (files under dir), in walk order.
func someFiles(t *testing.T, dir string, n int) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(out) < n {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if len(out) < n {
		t.Fatalf("storage has %d files, want %d", len(out), n)
	}
	return out
}

// A coordinator killed (SIGKILL) in any phase of an incremental backup (planning against the
// base, while the workers link and copy, assembling, publishing) loses nothing: the base
// backup still verifies, unchanged, and `backup --resume` completes an incremental backup that
// verifies and holds the changed files' new content.
func TestKillDuringIncrementalBackup(t *testing.T) {
	cases := []struct {
		phase string
		// withDB: the assemble halt is at the first fixture, so that phase needs the database.
		withDB bool
	}{
		{phase: "plan"},
		{phase: "copy"},
		{phase: "assemble", withDB: true},
		{phase: "publish"},
	}
	for _, tc := range cases {
		t.Run(tc.phase, func(t *testing.T) {
			killIncremental(t, tc.phase, tc.withDB)
		})
	}
}

// killIncremental takes a full backup, changes three files, kills the incremental backup's
// coordinator at phase, resumes it and checks both backups.
func killIncremental(t *testing.T, phase string, withDB bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	sc := newScene(t)
	storageDir := filepath.Join(t.TempDir(), "media")
	files := copyStorage(t, sc.p.Storage, storageDir)
	env := append(sc.env, "STORAGE_URL="+storageDir) // the last value wins
	var extra []string
	if !withDB {
		extra = append(extra, "--skip-db")
	}
	proctest.StartWorker(t, sc.bin, env, "--name", "w1", "--concurrency", "2")
	first := waitBackup(t, ctx, proctest.Start(t, sc.bin, env, backupArgs(sc.backups, extra...)...))
	before := sumsOf(t, first)

	changed := someFiles(t, storageDir, 3)
	for _, k := range changed {
		p := filepath.Join(storageDir, filepath.FromSlash(k))
		if err := os.WriteFile(p, []byte("changed: "+k), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The second backup runs on a cluster of its own, so that its run is the only one there.
	srv2 := proctest.StartNATS(t, proctest.NATSOptions{})
	env2 := append(env, "NATS_URL="+srv2.URL())
	mon := newMonitor(t, srv2.URL())
	proctest.StartWorker(t, sc.bin, env2, "--name", "w2", "--concurrency", "2")
	coord := proctest.Start(t, sc.bin, runEnv(env2, phase), backupArgs(sc.backups, extra...)...)
	rec := haltAndKill(t, ctx, mon, coord, phase)

	verifyBackup(t, sc.bin, first, files)
	if after := sumsOf(t, first); !bytes.Equal(after, before) {
		t.Fatal("the base backup's SHA256SUMS changed")
	}
	resumed := proctest.Start(t, sc.bin, runEnv(env2, ""), "backup", "--workers", "0", "--resume", rec.ID, "-v")
	second := waitBackup(t, ctx, resumed)
	verifyBackup(t, sc.bin, second, files)
	verifyBackup(t, sc.bin, first, files)
	checkIncremental(t, first, second, files, changed)
}

// checkIncremental checks that second is based on first and stored only the changed files,
// with their new content.
func checkIncremental(t *testing.T, first, second string, files int, changed []string) {
	t.Helper()
	meta, err := layout.ReadMetadata(second)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Files.Base != filepath.Base(first) || meta.Files.Reused.Files != int64(files-len(changed)) || meta.Files.New.Files != int64(len(changed)) {
		t.Fatalf("resumed backup: base %q new %+v reused %+v; want base %s, %d new, %d reused",
			meta.Files.Base, meta.Files.New, meta.Files.Reused, filepath.Base(first), len(changed), files-len(changed))
	}
	for _, k := range changed {
		got, err := os.ReadFile(filepath.Join(second, layout.FilesDir, filepath.FromSlash(k)))
		if err != nil || string(got) != "changed: "+k {
			t.Fatalf("%s in the resumed backup: %q, %v", k, got, err)
		}
	}
}

func sumsOf(t *testing.T, backup string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backup, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

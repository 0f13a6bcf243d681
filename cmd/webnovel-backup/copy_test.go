package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// backupWithCopy is the --json report of backup --copy-to, as far as these tests read it.
type backupWithCopy struct {
	Status string `json:"status"`
	Path   string `json:"path"`
	Error  string `json:"error"`
	Copy   *struct {
		Status string `json:"status"`
		Dest   string `json:"dest"`
		Path   string `json:"path"`
		Error  string `json:"error"`
	} `json:"copy"`
}

// backup --copy-to copies the backup as the run's last step: success is exit 0 with the copy
// in DEST; a copy that fails (DEST cannot be written, or is no valid location) keeps the
// backup complete, exits 3 (partial) naming DEST, and never prints a secret given in DEST.
func TestBackupCopyTo(t *testing.T) {
	dir := sitePlatform(t)
	blocker := filepath.Join(dir, "a-file")
	os.WriteFile(blocker, []byte("not a folder"), 0o600)
	tests := []struct {
		name     string
		dest     string
		code     int
		status   outcome.Status
		mentions string
	}{
		{"copied", filepath.Join(dir, "offsite"), outcome.CodeOK, outcome.Complete, ""},
		{"destination unwritable", filepath.Join(blocker, "offsite"), outcome.CodePartial, outcome.Partial, filepath.Join(blocker, "offsite")},
		{"secret in destination", "s3://AKIAEXAMPLE:hunter2-secret@bucket/offsite", outcome.CodePartial, outcome.Partial, "bucket/offsite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backups := filepath.Join(t.TempDir(), "backups")
			code, out := cli(t, dir, "backup", "--quiet", "--json", "--backup-dir", backups, "--copy-to", tt.dest)
			var rep backupWithCopy
			if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):strings.LastIndex(out, "}")+1]), &rep); err != nil {
				t.Fatalf("exit %d, report: %v\n%s", code, err, out)
			}
			if code != tt.code || rep.Status != string(tt.status) || rep.Copy == nil || rep.Copy.Status != string(tt.status) {
				t.Fatalf("exit %d, status %q, copy %+v; want %d, %s\n%s", code, rep.Status, rep.Copy, tt.code, tt.status, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Fatalf("a secret of the destination was printed:\n%s", out)
			}
			if !strings.Contains(rep.Error, tt.mentions) || !strings.Contains(rep.Copy.Error, tt.mentions) {
				t.Fatalf("the error does not name %q: %q / %q", tt.mentions, rep.Error, rep.Copy.Error)
			}
			backup := onlyBackup(t, backups)
			if _, err := os.Stat(filepath.Join(backup, layout.FileMetadata)); err != nil || rep.Path != backup {
				t.Fatalf("the local backup is not complete at %s (report: %s): %v", backup, rep.Path, err)
			}
			if tt.code == outcome.CodeOK {
				copied := onlyBackup(t, tt.dest)
				if filepath.Base(copied) != filepath.Base(backup) || rep.Copy.Path != copied {
					t.Fatalf("copied to %s (report: %s), backup %s", copied, rep.Copy.Path, backup)
				}
			}
		})
	}
}

// copy BACKUP DEST copies, then finds the backup already there; a missing argument is a usage
// error.
func TestCopyCommand(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--quiet"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	dest := filepath.Join(t.TempDir(), "offsite")
	for i, want := range []string{"Copy complete: " + filepath.Join(dest, filepath.Base(backup)), "Already there"} {
		code, out := cli(t, dir, "copy", backup, dest, "--quiet")
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("copy #%d: exit %d, want %q in\n%s", i+1, code, want, out)
		}
	}
	if code, _ := cli(t, dir, "copy", backup); code != outcome.CodeUsage {
		t.Fatalf("copy with one argument: exit %d", code)
	}
	// Into the backup itself, or its files: refused, the backup as it was.
	before := treeOf(t, backup)
	for _, args := range [][]string{
		{"copy", backup, backup},
		{"copy", backup, filepath.Join(backup, "files")},
		{"backup", "--backup-dir", filepath.Join(backup, "files")},
		{"backup", "--backup-dir", filepath.Join(dir, "backups2"), "--copy-to", backup},
	} {
		code, out := cli(t, dir, append(args, "--quiet")...)
		if code != outcome.CodeUsage || !strings.Contains(out, "lies inside the backup "+backup) {
			t.Errorf("%v: exit %d, want %d and the backup named:\n%s", args, code, outcome.CodeUsage, out)
		}
	}
	if after := treeOf(t, backup); !slices.Equal(before, after) {
		t.Fatalf("a refused copy changed the backup:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "backups2")); !os.IsNotExist(err) {
		t.Fatalf("a refused --copy-to made its backup first (%v)", err)
	}
}

// treeOf lists every path under root.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestFileURLLocations: a file:// URL names the same folder as its path, for backup's
// --backup-dir (it made ./file:/… before), verify and restore, as for --storage.
func TestFileURLLocations(t *testing.T) {
	dir := sitePlatform(t)
	out := filepath.Join(t.TempDir(), "out")
	if code, o := cli(t, dir, "backup", "--quiet", "--skip-preflight", "--backup-dir", "file://"+out); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, o)
	}
	if _, err := os.Stat(filepath.Join(dir, "file:")); !os.IsNotExist(err) {
		t.Fatalf("the backup went into ./file:/… (%v)", err)
	}
	backup := onlyBackup(t, out)
	if code, o := cli(t, dir, "verify", "file://"+backup); code != 0 {
		t.Fatalf("verify file://: exit %d\n%s", code, o)
	}
	if code, o := cli(t, dir, "restore", "file://"+backup, "--dry-run"); code != 0 {
		t.Fatalf("restore file:// --dry-run: exit %d\n%s", code, o)
	}
}

// TestArchiveRefusesPathsItCannotUnpack: a storage path longer than an archive can be unpacked
// with (under a restore's temporary folder, within 4,096 bytes a path) fails a --compress
// backup before anything is written, naming the file and the way out; a folder backup holds it.
func TestArchiveRefusesPathsItCannotUnpack(t *testing.T) {
	dir := sitePlatform(t)
	deep := filepath.Join(dir, "media", "deep")
	for range 19 {
		deep = filepath.Join(deep, strings.Repeat("d", 200))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "f.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	archives := filepath.Join(dir, "archives")
	code, out := cli(t, dir, "backup", "--quiet", "--skip-preflight", "--compress", "--backup-dir", archives)
	if code == 0 || !strings.Contains(out, "paths too long for an archive") || !strings.Contains(out, "deep/ddd") || !strings.Contains(out, "without --compress") {
		t.Fatalf("backup --compress: exit %d, want a refusal naming the file:\n%s", code, out)
	}
	if entries, _ := os.ReadDir(archives); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return layout.IsBackupName(e.Name()) }) {
		t.Fatalf("a refused backup wrote %v", entries)
	}
	if code, out := cli(t, dir, "backup", "--quiet", "--skip-preflight", "--backup-dir", filepath.Join(dir, "folders")); code != 0 {
		t.Fatalf("folder backup: exit %d\n%s", code, out)
	}
}

// TestReadersOfABackupBeingPruned: while a prune deletes a backup, a restore, a verify or a
// copy of it is refused, saying so, instead of reading it half-deleted.
func TestReadersOfABackupBeingPruned(t *testing.T) {
	dir := sitePlatform(t)
	out := filepath.Join(t.TempDir(), "out")
	if code, o := cli(t, dir, "backup", "--quiet", "--skip-preflight", "--backup-dir", out); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, o)
	}
	backup := onlyBackup(t, out)
	release, err := layout.Claim(backup)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, args := range [][]string{
		{"restore", backup, "--dry-run"},
		{"verify", backup},
		{"copy", backup, filepath.Join(t.TempDir(), "second")},
	} {
		code, o := cli(t, dir, args...)
		if code == 0 || !strings.Contains(o, "prune is deleting it") {
			t.Errorf("%s of a backup being pruned: exit %d\n%s", args[0], code, o)
		}
	}
}

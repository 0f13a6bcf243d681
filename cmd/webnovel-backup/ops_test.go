package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/retention"
)

// backupsDir writes n complete backup folders, one a day ending yesterday, and returns the
// folder and their names, newest first.
func backupsDir(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for i := 1; i <= n; i++ {
		ts := time.Now().Add(-time.Duration(i) * 24 * time.Hour).Truncate(time.Second)
		name := layout.Name(ts)
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := layout.WriteMetadata(p, &layout.Metadata{BackupTimestamp: ts, RunID: "r", Status: layout.StatusComplete}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return dir, names
}

func TestPruneCLI(t *testing.T) {
	dir, names := backupsDir(t, 3)
	tests := []struct {
		name string
		args []string
		code int
		out  string
		left int
	}{
		{"no keep rule", []string{"prune", "--backup-dir", dir}, outcome.CodeUsage, "at least one of --keep-last", 3},
		{"negative", []string{"prune", "--backup-dir", dir, "--keep-last", "-1"}, outcome.CodeUsage, "negative", 3},
		{"unknown flag", []string{"prune", "--backup-dir", dir, "--keep-yearly", "1"}, outcome.CodeUsage, "unknown flag", 3},
		{"negative grace", []string{"prune", "--backup-dir", dir, "--keep-last", "1", "--grace", "-1h"}, outcome.CodeUsage, "--grace", 3},
		{"missing destination", []string{"prune", "--backup-dir", filepath.Join(dir, "nope"), "--keep-last", "1"}, outcome.CodeFailure, "no such file", 3},
		{"dry run", []string{"prune", "--backup-dir", dir, "--keep-last", "1", "--dry-run"}, outcome.CodeOK, "would remove  " + names[2], 3},
		{"prune", []string{"prune", "--backup-dir", dir, "--keep-last", "1"}, outcome.CodeOK, "Removed 2 of 3", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := cli(t, dir, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant it to hold %q", code, tt.code, out, tt.out)
			}
			if es, _ := os.ReadDir(dir); len(es) != tt.left {
				t.Errorf("%d entries left, want %d", len(es), tt.left)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, names[0])); err != nil {
		t.Errorf("the newest backup is gone: %v", err)
	}
}

func TestListCLI(t *testing.T) {
	dir, names := backupsDir(t, 2)
	os.Mkdir(filepath.Join(dir, layout.StagingPrefix+"run1"), 0o755)
	code, out := cli(t, dir, "list", "--backup-dir", dir, "--json")
	if code != outcome.CodeOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	var bs []retention.Backup
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(bs) != 3 || bs[0].Status != retention.StatusInProgress || bs[1].Name != names[0] || bs[1].Status != retention.StatusComplete {
		t.Errorf("listed %+v", bs)
	}
	code, out = cli(t, dir, "list", "--backup-dir", dir)
	if code != outcome.CodeOK || !strings.Contains(out, names[1]) || !strings.Contains(out, "in progress") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	if code, _ := cli(t, dir, "list", "--backup-dir", filepath.Join(dir, "nope")); code != outcome.CodeFailure {
		t.Errorf("missing destination: exit %d, want %d", code, outcome.CodeFailure)
	}
}

func TestDoctorCLI(t *testing.T) {
	dir := sitePlatform(t)
	code, out := cli(t, dir, "doctor")
	if code != outcome.CodeOK || !hasCheckLine(out, "OK", "database") || !strings.Contains(out, "embedded: nothing to check") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	file := filepath.Join(dir, "somefile")
	os.WriteFile(file, nil, 0o644)
	code, out = cli(t, dir, "doctor", "--backup-dir", filepath.Join(file, "backups"), "--json")
	if code != outcome.CodeFailure {
		t.Errorf("unwritable destination: exit %d, want %d", code, outcome.CodeFailure)
	}
	var rep preflight.Report
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if rep.OK || len(rep.Failed()) != 1 || rep.Failed()[0].Name != preflight.CheckDestination || rep.Failed()[0].Advice == "" {
		t.Errorf("report %+v", rep)
	}
	code, out = cli(t, dir, "doctor", "--database", "sqlite:///missing.sqlite3")
	if code != outcome.CodeFailure || !hasCheckLine(out, "FAIL", "database") || !strings.Contains(out, "fix: the SQLite file must exist") {
		t.Errorf("missing database: exit %d, output:\n%s", code, out)
	}
}

// hasCheckLine reports whether doctor's output has a line for check name with status.
func hasCheckLine(out, status, name string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == status && f[1] == name {
			return true
		}
	}
	return false
}

// A --models backup newer than the only full backup: prune --keep-last 1 keeps both (rules
// apply per scope), and list shows each one's scope.
func TestPruneCLIPerScope(t *testing.T) {
	dir := t.TempDir()
	write := func(age time.Duration, opts layout.BackupOptions) string {
		t.Helper()
		ts := time.Now().Add(-age).Truncate(time.Second)
		p := filepath.Join(dir, layout.Name(ts))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		m := &layout.Metadata{BackupTimestamp: ts, RunID: "r", Status: layout.StatusComplete, FormatVersion: layout.FormatVersion, BackupOptions: opts}
		if err := layout.WriteMetadata(p, m); err != nil {
			t.Fatal(err)
		}
		return filepath.Base(p)
	}
	oldFull := write(72*time.Hour, layout.BackupOptions{IncludeFiles: true})
	full := write(48*time.Hour, layout.BackupOptions{IncludeFiles: true})
	models := write(24*time.Hour, layout.BackupOptions{Models: layout.ModelSelection{Labels: []string{"books.Book"}}})

	code, out := cli(t, dir, "list", "--backup-dir", dir)
	if code != outcome.CodeOK || !strings.Contains(out, "SCOPE") || !strings.Contains(out, "models books.Book") || !strings.Contains(out, "full") {
		t.Errorf("list: exit %d, output:\n%s", code, out)
	}
	code, out = cli(t, dir, "list", "--backup-dir", dir, "--json")
	var bs []retention.Backup
	if err := json.Unmarshal([]byte(out), &bs); code != outcome.CodeOK || err != nil || len(bs) != 3 ||
		bs[0].Scope != "models books.Book" || bs[1].Scope != retention.ScopeFull {
		t.Errorf("list --json: exit %d, %v, %+v", code, err, bs)
	}
	code, out = cli(t, dir, "prune", "--backup-dir", dir, "--keep-last", "1")
	if code != outcome.CodeOK || !strings.Contains(out, "Removed 1 of 3") {
		t.Errorf("prune: exit %d, output:\n%s", code, out)
	}
	for name, want := range map[string]bool{oldFull: false, full: true, models: true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s present = %v, want %v", name, err == nil, want)
		}
	}
}

// TestPruneKeepsWholeArchivesBeforeACutOne: real archives of every compression, the newest cut
// short (a copy that stopped): list calls it incomplete, and prune --keep-last 1 keeps the
// newest whole archive rather than counting the cut one as the backup to keep.
func TestPruneKeepsWholeArchivesBeforeACutOne(t *testing.T) {
	t.Setenv(envRecipients, "")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"gzip", []string{"--compression", "gzip"}},
		{"zstd", []string{"--compression", "zstd"}},
		{"none", []string{"--compression", "none"}},
		{"encrypted", []string{"--compress", "--recipient", newRecipient(t)}}, // its sidecar records its size
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := sitePlatform(t)
			backups := filepath.Join(dir, "backups")
			var names []string
			for i := 0; i < 2; i++ {
				args := append([]string{"backup", "--quiet", "--skip-preflight", "--backup-dir", backups}, tt.args...)
				if code, out := cli(t, dir, args...); code != 0 {
					t.Fatalf("backup: exit %d\n%s", code, out)
				}
				names = append(names, newestArchive(t, backups))
				time.Sleep(1100 * time.Millisecond) // backup names are per second
			}
			cut := filepath.Join(backups, names[1])
			fi, err := os.Stat(cut)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(cut, fi.Size()*2/3); err != nil {
				t.Fatal(err)
			}
			code, out := cli(t, dir, "list", "--backup-dir", backups)
			if code != 0 || !strings.Contains(out, "incomplete") || !strings.Contains(out, "cut short") {
				t.Fatalf("list: exit %d, want the cut archive named incomplete:\n%s", code, out)
			}
			code, out = cli(t, dir, "prune", "--backup-dir", backups, "--keep-last", "1")
			if code != 0 {
				t.Fatalf("prune: exit %d\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(backups, names[0])); err != nil {
				t.Fatalf("prune removed the whole archive %s, keeping only the cut one:\n%s", names[0], out)
			}
		})
	}
}

// newestArchive is the name of the newest archive in dir (its sidecar left out).
func newestArchive(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if name := entries[i].Name(); !strings.HasSuffix(name, layout.SidecarExt) {
			return name
		}
	}
	t.Fatalf("no archive in %s", dir)
	return ""
}

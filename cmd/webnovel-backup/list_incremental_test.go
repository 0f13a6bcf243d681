package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/retention"
)

// list shows, for an incremental backup, its base and the files it stored anew and reused,
// in text and in --json; a full backup keeps the plain count.
func TestListShowsNewAndReused(t *testing.T) {
	dir := t.TempDir()
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	full, inc := layout.Name(ts.Add(-time.Hour)), layout.Name(ts)
	write := func(name string, ts time.Time, files layout.FilesSummary) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		m := &layout.Metadata{BackupTimestamp: ts, RunID: "r", Status: layout.StatusComplete, Files: files}
		if err := layout.WriteMetadata(filepath.Join(dir, name), m); err != nil {
			t.Fatal(err)
		}
	}
	write(full, ts.Add(-time.Hour), layout.FilesSummary{Count: 1200, New: layout.FileCount{Files: 1200, Bytes: 5 << 20}})
	write(inc, ts, layout.FilesSummary{Count: 1200, Base: full,
		New: layout.FileCount{Files: 12, Bytes: 3 << 20}, Reused: layout.FileCount{Files: 1188, Bytes: 2 << 20}})

	code, out := cli(t, dir, "list", "--backup-dir", dir)
	if code != outcome.CodeOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	want := "1200 (new 12, 3.0 MiB; reused 1188 from " + full + ")"
	if !strings.Contains(out, want) {
		t.Errorf("list does not show %q:\n%s", want, out)
	}
	if strings.Contains(out, "new 1200") {
		t.Errorf("a full backup is shown with new/reused counts:\n%s", out)
	}

	code, out = cli(t, dir, "list", "--backup-dir", dir, "--json")
	if code != outcome.CodeOK {
		t.Fatalf("exit %d: %s", code, out)
	}
	var bs []retention.Backup
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(bs) != 2 || bs[0].Base != full || bs[0].New != (layout.FileCount{Files: 12, Bytes: 3 << 20}) || bs[0].Reused.Files != 1188 {
		t.Errorf("listed %+v", bs)
	}
}

// --base with --full, --compress or --skip-files cannot be honoured: a usage error naming the
// flags, and nothing is done. --help says an archive is always full.
func TestIncrementalFlags(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NATS_URL", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"base and full", []string{"backup", "--base", "backup_20240101_000000", "--full"}, "--base and --full"},
		{"base and compress", []string{"backup", "--base", "backup_20240101_000000", "--compress"}, "--compress archive is always a full backup"},
		{"base and skip-files", []string{"backup", "--base", "backup_20240101_000000", "--skip-files"}, "--skip-files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := cli(t, dir, tt.args...)
			if code != outcome.CodeUsage || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want %d and %q in:\n%s", code, outcome.CodeUsage, tt.want, out)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Fatalf("a usage error did something: %v", entries)
			}
		})
	}
	code, out := cli(t, dir, "backup", "--help")
	if code != outcome.CodeOK || !strings.Contains(out, "always a full backup") || !strings.Contains(out, "--checksum") {
		t.Fatalf("backup --help (exit %d) does not say --compress is always full:\n%s", code, out)
	}
}

// backup's report names the base and splits the files into new and reused, in text and JSON.
func TestBackupReportShowsNewAndReused(t *testing.T) {
	rep := &coordinator.BackupReport{Path: "/b/backup_20240102_000000", Files: 1200, Bytes: 9 << 20, Base: "backup_20240101_000000",
		New: layout.FileCount{Files: 12, Bytes: 3 << 20}, Reused: layout.FileCount{Files: 1188, Bytes: 6 << 20}}
	var out, errOut bytes.Buffer
	printBackupReport(console{out: &out, err: &errOut}, rep)
	if want := "files: 1200 (new 12, 3145728 bytes; reused 1188 from backup_20240101_000000)"; !strings.Contains(out.String(), want) {
		t.Errorf("report does not hold %q:\n%s", want, out.String())
	}
	data, err := json.Marshal(backupJSON(rep, nil))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Base   string           `json:"base"`
		New    layout.FileCount `json:"new"`
		Reused layout.FileCount `json:"reused"`
	}
	if err := json.Unmarshal(data, &j); err != nil || j.Base != rep.Base || j.New != rep.New || j.Reused != rep.Reused {
		t.Errorf("--json report %s", data)
	}
}

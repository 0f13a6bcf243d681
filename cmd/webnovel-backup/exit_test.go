package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// Usage errors are recognised by their type, whatever cobra's text: a bad flag, a missing or
// extra argument and an unknown command all exit 2, and nothing is done.
func TestUsageExitCodes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "")
	t.Setenv("STORAGE_URL", "")
	t.Setenv("NATS_URL", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"backup", "--no-such-flag"}, "unknown flag"},
		{"bad flag value", []string{"backup", "--workers", "many"}, "invalid argument"},
		{"bad duration", []string{"restore", "x", "--stall-timeout", "soon"}, "stall-timeout"},
		{"unknown shorthand", []string{"list", "-Z"}, "unknown shorthand"},
		{"missing argument", []string{"restore"}, "restore PATH"},
		{"extra argument", []string{"worker", "extra"}, "unknown command"},
		{"too many arguments", []string{"probe", "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}, "accepts at most 1 arg"},
		{"unknown command", []string{"bakcup"}, "unknown command"},
		{"negative stall timeout", []string{"backup", "--stall-timeout", "-1s"}, "--stall-timeout"},
		{"negative worker stall timeout", []string{"worker", "--nats", "nats://127.0.0.1:1", "--stall-timeout", "-1s"}, "--stall-timeout"},
		{"negative lock timeout", []string{"restore", "x", "--lock-timeout", "-1s"}, "--lock-timeout"},
		{"negative lock timeout, round trip", []string{"test-backup-restore", "--lock-timeout", "-1s"}, "--lock-timeout"},
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
}

// A restore whose database loads but one file cannot be written is partial: exit 3, and the
// --json status says so, both from outcome.Of.
func TestPartialRestoreExitsThree(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--quiet"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	media := filepath.Join(t.TempDir(), "media")
	blockOneFile(t, filepath.Join(backup, "files"), media)
	t.Setenv("STORAGE_URL", media)
	code, out := cli(t, dir, "restore", backup, "--force", "--skip-db", "--quiet", "--max-deliver", "1")
	if code != outcome.CodePartial || !strings.Contains(out, "restore partial") {
		t.Fatalf("partial restore: exit %d, want %d\n%s", code, outcome.CodePartial, out)
	}
	code, out = cli(t, dir, "restore", backup, "--force", "--skip-db", "--quiet", "--json", "--max-deliver", "1")
	var rep struct {
		Status string `json:"status"`
		Failed int64  `json:"failed"`
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil || code != outcome.CodePartial {
		t.Fatalf("partial restore --json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Status != string(outcome.Partial) || rep.Failed != 1 {
		t.Fatalf("partial restore --json: status %q failed %d\n%s", rep.Status, rep.Failed, out)
	}
}

// blockOneFile makes the restore of one backed-up file into media impossible: a non-empty
// folder stands where the file would go.
func blockOneFile(t *testing.T, files, media string) {
	t.Helper()
	var first string
	filepath.WalkDir(files, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && first == "" {
			first = p
		}
		return err
	})
	if first == "" {
		t.Fatal("the backup holds no files")
	}
	rel, _ := filepath.Rel(files, first)
	if err := os.MkdirAll(filepath.Join(media, rel, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A command whose context is cancelled (Ctrl-C, SIGTERM) exits 130, and its --json report
// says interrupted.
func TestInterruptedExitCode(t *testing.T) {
	dir := sitePlatform(t)
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(old)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"backup", "--json", "--quiet"}, &out, &errOut)
	var rep struct{ Status string }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != outcome.CodeInterrupted || rep.Status != string(outcome.Interrupted) {
		t.Fatalf("cancelled backup: exit %d, status %q (%v)\n%s%s", code, rep.Status, err, out.String(), errOut.String())
	}
}

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

// runSplit runs one command line and returns its exit code, stdout and stderr apart.
func runSplit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVerifyCommand(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--backup-dir", "b"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "b"))
	if code, out := cli(t, dir, "backup", "--backup-dir", "c", "--compress"); code != 0 {
		t.Fatalf("backup --compress: exit %d\n%s", code, out)
	}
	arch := onlyBackup(t, filepath.Join(dir, "c"))

	for _, p := range []string{backup, arch} {
		code, out, errOut := runSplit(t, "verify", p)
		if code != outcome.CodeOK {
			t.Fatalf("verify %s: exit %d\n%s%s", p, code, out, errOut)
		}
		for _, want := range []string{"OK  metadata", "OK  checksums", "OK  fixtures", "OK  rows", "OK  files", "Backup OK: 10 models"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify %s: output lacks %q:\n%s", p, want, out)
			}
		}
	}

	code, out, _ := runSplit(t, "verify", "--json", backup)
	if code != outcome.CodeOK {
		t.Fatalf("verify --json: exit %d\n%s", code, out)
	}
	var rep struct {
		Path   string `json:"path"`
		OK     bool   `json:"ok"`
		Format int    `json:"format"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
		Problems []string `json:"problems"`
		Models   []struct {
			Label string `json:"label"`
			Rows  int64  `json:"rows"`
		} `json:"models"`
		Files           int64    `json:"files"`
		DurationSeconds *float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if !rep.OK || rep.Path != backup || rep.Format != 1 || len(rep.Checks) != 6 || len(rep.Models) != 10 ||
		rep.Files == 0 || rep.DurationSeconds == nil || rep.Problems == nil {
		t.Errorf("--json report: %+v", rep)
	}

	// A corrupt backup: exit 1, every check listed, the problem named, in both outputs.
	fixture := filepath.Join(backup, "db_books_book.json")
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fixture, bytes.Replace(data, []byte(`"pk": 2,`), []byte(`"pk": 1,`), 1), 0o644)
	code, out, errOut := runSplit(t, "verify", backup)
	if code != outcome.CodeFailure {
		t.Fatalf("verify of a corrupt backup: exit %d\n%s", code, out)
	}
	for _, want := range []string{"FAIL  checksums", "FAIL  fixtures", "OK    rows", "db_books_book.json (books.book): pk 1 appears 2 times", "Backup FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "problems found") {
		t.Errorf("stderr %q", errOut)
	}
	code, out, _ = runSplit(t, "verify", "--json", backup)
	if code != outcome.CodeFailure {
		t.Fatalf("verify --json of a corrupt backup: exit %d", code)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.OK || len(rep.Problems) == 0 {
		t.Errorf("--json of a corrupt backup: %v %+v", err, rep)
	}
}

func TestVerifyCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "backup_20241201_143022.tar.gz")
	os.WriteFile(bad, []byte("not gzip"), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"verify"}, outcome.CodeUsage, "one PATH"},
		{[]string{"verify", "a", "b"}, outcome.CodeUsage, "one PATH"},
		{[]string{"verify", "--nope", dir}, outcome.CodeUsage, "unknown flag"},
		{[]string{"verify", filepath.Join(dir, "missing")}, outcome.CodeFailure, "no such file"},
		{[]string{"verify", bad}, outcome.CodeFailure, "1 problems found"},
		{[]string{"verify", dir}, outcome.CodeFailure, "problems found"}, // an empty folder is no backup
	}
	for _, tt := range tests {
		code, out, errOut := runSplit(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%q: exit %d, want %d with %q\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
	// With --json, a backup that cannot be checked at all is still a report on standard output.
	code, out, _ := runSplit(t, "verify", "--json", filepath.Join(dir, "missing"))
	var rep struct {
		OK     bool   `json:"ok"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != outcome.CodeFailure || rep.OK || rep.Status != "failed" || !strings.Contains(rep.Error, "no such file") {
		t.Errorf("verify --json of a missing backup: exit %d, %v, %+v\n%s", code, err, rep, out)
	}
}

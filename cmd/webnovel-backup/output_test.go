package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
)

func TestJSONReports(t *testing.T) {
	dir := sitePlatform(t)
	code, out := cli(t, dir, "backup", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	var rep struct {
		Status string `json:"status"`
		Path   string `json:"path"`
		RunID  string `json:"run_id"`
		Models []struct {
			Label string `json:"label"`
			Rows  int64  `json:"rows"`
		} `json:"models"`
		Files int64 `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("backup --json printed more than JSON: %v\n%s", err, out)
	}
	if rep.Status != "complete" || len(rep.Models) != 10 || rep.Files == 0 || rep.RunID == "" {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(rep.Path); err != nil {
		t.Fatalf("reported path: %v", err)
	}

	code, out = cli(t, dir, "backup", "--json", "--quiet", "--database", "sqlite:///missing.sqlite3")
	var failed struct{ Status, Error string }
	if code != 1 || json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &failed) != nil || failed.Status != "failed" || !strings.Contains(failed.Error, "does not exist") {
		t.Fatalf("failed backup: exit %d\n%s", code, out)
	}

	// A dry run reports its plan as JSON, with the database it would replace.
	code, out = cli(t, dir, "restore", rep.Path, "--dry-run", "--json", "--quiet")
	var dry struct {
		Status string `json:"status"`
		Models []any  `json:"models"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &dry) != nil || dry.Status != "dry-run" || len(dry.Models) != 10 {
		t.Fatalf("restore --dry-run --json: exit %d\n%s", code, out)
	}
}

func TestLogFormats(t *testing.T) {
	dir := sitePlatform(t)
	code, out := cli(t, dir, "backup", "--log-format", "json", "--skip-files")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	jsonLines := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") {
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("not a JSON log line: %s", line)
			}
			jsonLines++
		}
	}
	if jsonLines == 0 {
		t.Fatalf("no JSON log lines:\n%s", out)
	}
	if code, out := cli(t, dir, "backup", "--log-format", "xml"); code != 2 || !strings.Contains(out, "--log-format") {
		t.Fatalf("bad log format: exit %d\n%s", code, out)
	}
	// --quiet leaves only the report: no informational log lines.
	code, out = cli(t, dir, "backup", "--quiet", "--skip-files")
	if code != 0 || strings.Contains(out, "level=INFO") {
		t.Fatalf("quiet backup logged:\n%s", out)
	}
}

func TestMetricsFileAndPreflight(t *testing.T) {
	dir := sitePlatform(t)
	mf := dir + "/wnb.prom"
	if code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--metrics-file", mf); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(mf)
	if err != nil || !strings.Contains(string(b), `wnb_last_success_timestamp_seconds{kind="backup"}`) {
		t.Fatalf("metrics file: %v\n%s", err, b)
	}
	// The preflight fails fast on a destination that cannot be written, naming it.
	os.WriteFile(dir+"/afile", []byte("x"), 0o644)
	code, out := cli(t, dir, "backup", "--quiet", "--backup-dir", dir+"/afile/backups")
	if code != 1 || !strings.Contains(out, "destination") {
		t.Fatalf("unwritable destination: exit %d\n%s", code, out)
	}
}

// `runs` lists what coordinators recorded on the cluster.
func TestRunsCommand(t *testing.T) {
	dir := sitePlatform(t)
	embURL := queuetest.Server(t)
	if code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--nats", embURL, "--workers", "2"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	code, out := cli(t, dir, "runs", "--nats", embURL, "--json")
	var runs []struct{ ID, Kind, State, Path string }
	if code != 0 || json.Unmarshal([]byte(out), &runs) != nil || len(runs) != 1 || runs[0].State != "complete" || runs[0].Kind != "backup" || runs[0].Path == "" {
		t.Fatalf("runs: exit %d\n%s", code, out)
	}
	if code, out := cli(t, dir, "runs"); code != 2 || !strings.Contains(out, "--nats") {
		t.Fatalf("runs without a cluster: exit %d\n%s", code, out)
	}
}

// `--stall-timeout` reaches the coordinator: a backup on a cluster where no worker runs fails
// once that long has passed without progress, naming its pending tasks and the missing
// workers, and leaves no backup behind.
func TestStallTimeoutFlag(t *testing.T) {
	dir := sitePlatform(t)
	url := queuetest.Server(t)
	start := time.Now()
	code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--nats", url, "--workers", "0", "--stall-timeout", "2s")
	if took := time.Since(start); code != 1 || took > 60*time.Second {
		t.Fatalf("backup without workers: exit %d after %s\n%s", code, took, out)
	}
	for _, want := range []string{"stalled", "no task finished for 2s", "export-", "0 workers waiting"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "backups")); len(entries) > 0 {
		t.Errorf("a stalled backup left %v", entries)
	}
}

// The embedded queue starts while the preflight runs; a failed preflight still reports its own
// error and stops the queue it started, leaving no store behind.
func TestFailedPreflightStopsEarlyQueue(t *testing.T) {
	dir := sitePlatform(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	os.WriteFile(dir+"/afile", []byte("x"), 0o644)
	code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--workers", "2", "--backup-dir", dir+"/afile/backups")
	if code != 1 || !strings.Contains(out, "preflight") || !strings.Contains(out, "destination") {
		t.Fatalf("unwritable destination: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Fatalf("a failed preflight left %v in the temporary directory", entries)
	}
}

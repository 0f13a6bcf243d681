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

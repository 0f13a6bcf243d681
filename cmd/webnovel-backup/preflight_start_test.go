package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The embedded server starts while the preflight runs; a backup the preflight refuses stops
// it again, leaving neither its store nor a backup behind, and reports the preflight's
// verdict, not anything of the server's.
func TestRefusedPreflightStopsTheEarlyServer(t *testing.T) {
	dir := sitePlatform(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	os.WriteFile(filepath.Join(dir, "afile"), []byte("x"), 0o644)
	code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--backup-dir", filepath.Join(dir, "afile", "backups"))
	if code != 1 || !strings.Contains(out, "destination") {
		t.Fatalf("unwritable destination: exit %d\n%s", code, out)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "wnb-nats-*"))
	if len(left) > 0 {
		t.Errorf("the embedded server's store outlived the refused backup: %v", left)
	}
	// The server did start (so the check above means something): a backup that passes the
	// preflight runs on it and, stopped, removes it too.
	if code, out := cli(t, dir, "backup", "--quiet", "--skip-files", "--backup-dir", filepath.Join(dir, "ok")); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "wnb-nats-*")); len(left) > 0 {
		t.Errorf("the embedded server's store outlived the backup: %v", left)
	}
}

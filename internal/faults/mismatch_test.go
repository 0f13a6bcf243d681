//go:build unix

package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// A worker configured for another database and storage, beside a correctly configured one:
// it hands the tasks it takes back (late, so that they do not run out of deliveries) instead
// of failing them, and the backup completes, every task done by the good worker.
func TestMisconfiguredWorkerBesideAGoodOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	sc := newScene(t)
	mon := newMonitor(t, sc.srv.URL())
	p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups

	// Another platform: a copy of the database elsewhere (it opens, but is not the run's)
	// and another storage folder.
	data, err := os.ReadFile(p.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	otherDB := filepath.Join(t.TempDir(), "other.sqlite3")
	if err := os.WriteFile(otherDB, data, 0o600); err != nil {
		t.Fatal(err)
	}
	wrongEnv := append(env, "DATABASE_URL=sqlite:///"+otherDB, "STORAGE_URL="+t.TempDir())
	wrong := proctest.StartWorker(t, bin, wrongEnv, "--name", "wrong", "--concurrency", "2")
	coord := proctest.Start(t, bin, env, backupArgs(backups)...)
	waitFor(t, ctx, "the misconfigured worker to hand a task back", func() bool {
		if coord.Exited() {
			t.Fatalf("the run ended before the misconfigured worker handed a task back:\n%s", lastLines(coord.Stderr(), 5))
		}
		return strings.Contains(wrong.Stderr(), "handing task back to a worker configured for its platform")
	})
	start := time.Now()
	proctest.StartWorker(t, bin, env, "--name", "good", "--concurrency", "2")

	path := waitBackup(t, ctx, coord)
	t.Logf("backup complete %s after the good worker started", time.Since(start).Round(time.Millisecond))
	verifyBackup(t, bin, path, p.Files)
	for id, r := range mon.results(ctx) {
		if !r.OK() || r.Worker != "good" {
			t.Errorf("task %s: worker %q, error %q; want it done by the good worker", id, r.Worker, r.Error)
		}
	}
	if strings.Contains(wrong.Stderr(), "task failed") {
		t.Errorf("the misconfigured worker failed a task instead of handing it back:\n%s", lastLines(wrong.Stderr(), 10))
	}
}

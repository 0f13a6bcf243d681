//go:build unix

package faults

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// completeBackups lists the complete backups of a destination.
func completeBackups(t *testing.T, ctx context.Context, dest string) []string {
	t.Helper()
	d, err := retention.OpenDestination(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, retention.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		if b.Status == retention.StatusComplete {
			out = append(out, b.Name)
		}
	}
	return out
}

// waitCopy waits for a copy process to succeed and returns the copy's path (from its report).
func waitCopy(t *testing.T, ctx context.Context, p *proctest.Proc) string {
	t.Helper()
	code, err := p.Wait(ctx)
	if err != nil || code != 0 {
		t.Fatalf("copy exited %d (%v):\n%s", code, err, lastLines(p.Stderr(), 20))
	}
	for _, line := range strings.Split(p.Stdout(), "\n") {
		if path, ok := strings.CutPrefix(line, "Copy complete: "); ok {
			return strings.TrimSpace(path)
		}
	}
	t.Fatalf("copy exited 0 without naming the copy:\n%s", p.Stdout())
	return ""
}

// A copy's coordinator killed (SIGKILL) while files are being copied, or in the middle of
// its publication, leaves no complete backup in the destination (list shows nothing, or an
// incomplete prefix), and a new copy then completes, and verifies.
func TestCopyKilledMidway(t *testing.T) {
	cases := []struct {
		phase string
		s3    bool
	}{
		{phase: "copy"},
		{phase: "publish"},
		{phase: "copy", s3: true},
		{phase: "publish", s3: true},
	}
	for _, tc := range cases {
		name := tc.phase
		if tc.s3 {
			name += "-s3"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			sc := newScene(t)
			dest := filepath.Join(t.TempDir(), "offsite")
			if tc.s3 {
				// Before any process starts: they take its credentials from the environment.
				dest = s3test.Start(t, nil, "offsite").URL("offsite", "copies", "")
			}
			proctest.StartWorker(t, sc.bin, sc.env, "--name", "w1", "--concurrency", "2")
			backup := waitBackup(t, ctx, proctest.Start(t, sc.bin, sc.env, backupArgs(sc.backups)...))
			args := []string{"copy", backup, dest, "--workers", "0", "--files-per-task", "20", "-v"}
			env := runEnv(sc.env, tc.phase)
			coord := proctest.Start(t, sc.bin, env, args...)
			waitFor(t, ctx, "the copy to halt at "+tc.phase, func() bool {
				if coord.Exited() {
					t.Fatalf("the copy ended (exit %d) before halting at %s:\n%s", coord.ExitCode(), tc.phase, lastLines(coord.Stderr(), 10))
				}
				return strings.Contains(coord.Stderr(), "WNB_TEST_HALT reached "+tc.phase)
			})
			coord.Kill()
			if got := completeBackups(t, ctx, dest); len(got) != 0 {
				t.Fatalf("after the kill the destination shows complete backups %v", got)
			}
			copied := waitCopy(t, ctx, proctest.Start(t, sc.bin, runEnv(sc.env, ""), args...))
			if got := completeBackups(t, ctx, dest); len(got) != 1 || got[0] != filepath.Base(backup) {
				t.Fatalf("after the rerun the destination shows complete backups %v, want %s", got, filepath.Base(backup))
			}
			if tc.s3 {
				// Read back through a local copy: every file checked on arrival again.
				local := t.TempDir()
				copied = waitCopy(t, ctx, proctest.Start(t, sc.bin, sc.env, "copy", copied, local, "--workers", "0"))
			}
			verifyBackup(t, sc.bin, copied, sc.p.Files)
		})
	}
}

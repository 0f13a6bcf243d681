//go:build unix

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/retention"
)

// bigPlatform is a demo platform large enough that a backup is still running when the test
// interrupts it.
func bigPlatform(t *testing.T) (db, media string) {
	t.Helper()
	dir := t.TempDir()
	db, media = "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	o := demo.DefaultOptions()
	o.Books, o.ChaptersPerBook, o.ChangeLogsPerChapter, o.FileBytes = 20, 60, 10, 20000
	if _, err := demo.Fill(context.Background(), db, media, o); err != nil {
		t.Fatal(err)
	}
	return db, media
}

// waitStaging waits, up to a deadline, until the backup has started writing its staging folder.
func waitStaging(t *testing.T, p *proctest.Proc, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ms, _ := filepath.Glob(filepath.Join(dir, layout.StagingPrefix+"*", "*")); len(ms) > 0 {
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("no staging folder with files in %s within 30s (exited: %v):\n%s", dir, p.Exited(), p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ctrl-C during a backup: "stopping" on stderr at once, exit 130 within about two seconds (a
// second Ctrl-C: at once), and nothing left that looks complete or in progress.
func TestInterruptedBackup(t *testing.T) {
	db, media := bigPlatform(t)
	tests := []struct {
		name    string
		signals int
		within  time.Duration // from the last signal; 2s plus slack for a loaded machine
	}{
		{"one Ctrl-C", 1, 2500 * time.Millisecond},
		{"two Ctrl-C", 2, 1 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backups := t.TempDir()
			p := proctest.Start(t, os.Args[0], []string{envAsCommand + "=1"},
				"backup", "--database", db, "--storage", media, "--backup-dir", backups, "--workers", "2")
			waitStaging(t, p, backups)
			for i := 0; i < tt.signals; i++ {
				if err := p.Signal(syscall.SIGINT); err != nil {
					if i > 0 && p.Exited() {
						// The first Ctrl-C's orderly stop was already done: nothing left to
						// hurry. Its exit code and leftovers are still checked below.
						t.Logf("the backup stopped before Ctrl-C %d", i+1)
						break
					}
					t.Fatalf("the backup ended before Ctrl-C %d: %v\n%s", i+1, err, p.Stderr())
				}
				if i == 0 {
					waitLog(t, p, "stopping")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.within)
			defer cancel()
			code, err := p.Wait(ctx)
			if err != nil {
				t.Fatalf("not ended %s after Ctrl-C: %v", tt.within, err)
			}
			if code != outcome.CodeInterrupted {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, outcome.CodeInterrupted, p.Stderr())
			}
			checkNothingComplete(t, backups)
		})
	}
}

// checkNothingComplete fails if dir holds a backup, or a staging folder listed as in progress.
func checkNothingComplete(t *testing.T, dir string) {
	t.Helper()
	d, err := retention.OpenDestination(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(context.Background(), retention.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Kind != retention.KindStaging || b.Status != retention.StatusAbandoned {
			t.Errorf("left behind: %s %s %s", b.Name, b.Kind, b.Status)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "backup_") {
			t.Errorf("left behind a backup: %s", e.Name())
		}
	}
}

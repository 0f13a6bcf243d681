//go:build unix

package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// A run's temporary files — the embedded NATS store and, for a backup to S3, the SQLite
// snapshot copy — live in the system's temporary folder while it runs, named after their
// process, and are gone when it ends, whether it succeeded or failed.
func TestTemporaryFilesRemovedOnEveryExit(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s3 := s3test.Start(t, nil, "backups")
	tests := []struct {
		name    string
		workers int
		// interrupt cancels the run once its snapshot copy is in the temporary folder (with
		// no worker, the run cannot finish before).
		interrupt bool
	}{
		{"success", 2, false},
		{"failed run", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			leftover := deadOwnersLeftover(t, tmp)
			s, err := pipeline.Start(context.Background(), pipeline.Config{
				Workers: tt.workers, DatabaseURL: p.dbURL, StorageURL: p.storage,
				Queue:   queue.Config{MaxDeliver: 2},
				Backoff: func(int) time.Duration { return 20 * time.Millisecond },
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(leftover); !os.IsNotExist(err) {
				t.Fatalf("the next run kept a dead process's %s (err %v)", leftover, err)
			}
			if got := tempEntries(t, tmp); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("wnb-nats-%d.", os.Getpid())) {
				t.Fatalf("while running, %s holds %v: want the embedded store named after this process", tmp, got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sawSnapshot := make(chan bool, 1)
			if tt.interrupt {
				go func() { sawSnapshot <- cancelOnSnapshot(ctx, cancel, tmp) }()
			}
			_, err = s.Coordinator.Backup(ctx, coordinator.BackupOptions{
				DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: s3.URL("backups", strings.ReplaceAll(tt.name, " ", "-"), ""), SkipFiles: true,
			})
			if (err != nil) != tt.interrupt {
				t.Fatalf("backup: %v (want failure: %v)", err, tt.interrupt)
			}
			if tt.interrupt && !<-sawSnapshot {
				t.Fatalf("no snapshot copy appeared in %s", tmp)
			}
			s.Close()
			if got := tempEntries(t, tmp); len(got) > 0 {
				t.Fatalf("after the run, %s still holds %v", tmp, got)
			}
		})
	}
}

// deadOwnersLeftover makes in dir what a SIGKILLed process leaves: a snapshot folder named
// after a process that no longer exists.
func deadOwnersLeftover(t *testing.T, dir string) string {
	t.Helper()
	gone := exec.Command(os.Args[0], "-test.run=^$")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("wnb-snapshot-%d.1-left", gone.Process.Pid))
	if err := os.MkdirAll(filepath.Join(p, "copy"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// cancelOnSnapshot waits (until ctx ends) for a SQLite snapshot copy named after this process
// to appear in dir, then cancels; it reports whether one appeared.
func cancelOnSnapshot(ctx context.Context, cancel context.CancelFunc, dir string) bool {
	defer cancel()
	pattern := filepath.Join(dir, fmt.Sprintf("wnb-snapshot-%d.*", os.Getpid()), "wnb-snapshot-*.sqlite3")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// tempEntries lists the program's temporary files and folders in dir.
func tempEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "wnb-") {
			out = append(out, e.Name())
		}
	}
	return out
}

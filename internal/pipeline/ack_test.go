package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// syncBuffer is a bytes.Buffer safe for the workers' concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Quick backups, each in its own session closed right after it (as the command does): no
// task's settlement races the session's shutdown into a warning.
func TestQuickBackupsLogNoSettleWarning(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	for i := range 5 {
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		s, err := pipeline.Start(context.Background(), pipeline.Config{
			Workers: 4, DatabaseURL: p.dbURL, StorageURL: p.storage, Queue: queue.Config{}, Logger: log,
			Backoff: func(int) time.Duration { return 20 * time.Millisecond },
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: filepath.Join(t.TempDir(), "b"), Workers: 4,
		})
		s.Close()
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				t.Errorf("backup %d logged: %s", i, line)
			}
		}
	}
}
